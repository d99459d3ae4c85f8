/* keyfile: key files into locked memory + the permission policy (keyfile.h).
 * Any thread. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artefacts/keyfile.h"
#include "artefacts/secmem.h"

int keyfile_check_mode(const char *path, const struct stat *st, struct art_err *err)
{
	uid_t me = geteuid();

	if (!S_ISREG(st->st_mode))
		return art_err_set(err, -EINVAL, "%s: not a regular file", path);
	/* Whoever else may read it has the key; whoever may write it can swap
	 * in their own (and get it burned into OTP). */
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		return art_err_set(err, -EPERM,
				   "%s: private key file is accessible by group/others (mode %04o, "
				   "owner uid %u): refused; run `chmod 600 %s`", path,
				   (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, path);
	if (st->st_uid != 0 && st->st_uid != me)
		return art_err_set(err, -EPERM,
				   "%s: private key file is owned by uid %u (mode %04o), neither root "
				   "nor this station's user (uid %u): refused; run `chown %u %s`",
				   path, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777),
				   (unsigned)me, (unsigned)me, path);
	return 0;
}

int keyfile_read(const char *path, uint8_t **buf, size_t *len, struct stat *st_out,
		 struct art_err *err)
{
	struct stat st;
	uint8_t *mem = NULL;
	size_t got = 0;
	int fd, rc;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return art_err_set(err, -errno, "%s: cannot open key file: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = art_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > KEYFILE_MAX_BYTES) {
		rc = art_err_set(err, -EINVAL, "%s: not a key file (not a regular file of 1..%d bytes)",
				 path, KEYFILE_MAX_BYTES);
		goto out;
	}
	mem = secmem_alloc((size_t)st.st_size + 1);
	if (!mem) {
		rc = art_err_set(err, -errno, "%s: cannot lock memory for the key (%s); raise "
				 "RLIMIT_MEMLOCK (ulimit -l)", path, strerror(errno));
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, mem + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = art_err_set(err, n < 0 ? -errno : -EIO, "%s: short read of key file", path);
			goto out;
		}
		got += (size_t)n;
	}
	mem[got] = '\0';
	if (st_out)
		*st_out = st;
	*buf = mem;
	*len = got + 1;
	mem = NULL;
	rc = 0;
out:
	secmem_free(mem);
	close(fd);
	return rc;
}

int keyfile_write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
