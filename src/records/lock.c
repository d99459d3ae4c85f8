/* lock: owns the per-board lock files under the locks directory.
 * Any thread may call these; a struct board_lock belongs to its job. */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/paths.h"
#include "records/lock.h"

#define LOCK_DIR_MODE 0750
#define LOCK_FILE_MODE 0640
#define LOCK_KEY_MAX 64

static bool key_ok(const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > LOCK_KEY_MAX || key[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return false;
	}
	return true;
}

static char *lock_path(const char *dir, const char *key)
{
	char *p;

	if (asprintf(&p, "%s/%s.lock", dir, key) < 0)
		return NULL;
	return p;
}

int lock_try(const char *dir, const char *key, struct board_lock *lock)
{
	char pid[24];
	int fd = -1, r, n;
	char *path = NULL;

	lock->fd = -1;
	lock->path = NULL;
	if (!dir || !*dir || !key_ok(key))
		return -EINVAL;
	path = lock_path(dir, key);
	if (!path)
		return -ENOMEM;
	r = mkdir_p(dir, LOCK_DIR_MODE);
	if (r < 0)
		goto out;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, LOCK_FILE_MODE);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	while ((r = flock(fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is only a hint; the lock itself is held */
	}
	lock->fd = fd;
	lock->path = path;
	fd = -1;
	path = NULL;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

int lock_holder(const char *dir, const char *key)
{
	char buf[24];
	char *path, *end;
	ssize_t n;
	long pid;
	int fd;

	if (!dir || !key_ok(key))
		return -EINVAL;
	path = lock_path(dir, key);
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (end == buf || pid <= 0 || pid > 0x7fffffff)
		return -ENOENT;
	return (int)pid;
}

void lock_release(struct board_lock *lock)
{
	if (!lock)
		return;
	if (lock->fd >= 0)
		close(lock->fd); /* closing the last descriptor drops the flock */
	lock->fd = -1;
	free(lock->path);
	lock->path = NULL;
}
