/* Unit tests of records/lock: one holder at a time (also within one
 * process), the kernel frees the lock when its holder dies, bad keys. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/paths.h"
#include "records/lock.h"

static char *dir_root;
static char *lock_dir;

static int setup(void **state)
{
	(void)state;
	dir_root = strdup("/tmp/test_lock.XXXXXX");
	if (!mkdtemp(dir_root))
		return -1;
	lock_dir = path_join(dir_root, "run/locks"); /* created on demand */
	return 0;
}

static int teardown(void **state)
{
	char *cmd;

	(void)state;
	if (asprintf(&cmd, "rm -rf '%s'", dir_root) > 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir_root);
		free(cmd);
	}
	free(lock_dir);
	free(dir_root);
	return 0;
}

static void test_same_process(void **state)
{
	struct board_lock a = BOARD_LOCK_INIT, b = BOARD_LOCK_INIT, c = BOARD_LOCK_INIT;
	struct stat st;
	char *p;

	(void)state;
	assert_int_equal(lock_try(lock_dir, "0123456789abcdef", &a), 0);
	assert_true(a.fd >= 0);
	assert_int_equal(stat(lock_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	/* a second open of the same key conflicts, even in this process */
	assert_int_equal(lock_try(lock_dir, "0123456789abcdef", &b), -EBUSY);
	assert_int_equal(b.fd, -1);
	/* other keys are independent */
	assert_int_equal(lock_try(lock_dir, "1-1.2", &c), 0);
	assert_int_equal(lock_holder(lock_dir, "1-1.2"), (int)getpid());
	lock_release(&a);
	assert_int_equal(a.fd, -1);
	assert_int_equal(lock_try(lock_dir, "0123456789abcdef", &b), 0);
	/* the file stays (never unlinked) */
	p = path_join(lock_dir, "0123456789abcdef.lock");
	assert_int_equal(stat(p, &st), 0);
	free(p);
	lock_release(&b);
	lock_release(&c);
	lock_release(&c); /* twice is fine */
}

static void test_bad_keys(void **state)
{
	struct board_lock l = BOARD_LOCK_INIT;

	(void)state;
	assert_int_equal(lock_try(lock_dir, "../x", &l), -EINVAL);
	assert_int_equal(lock_try(lock_dir, ".hidden", &l), -EINVAL);
	assert_int_equal(lock_try(lock_dir, "", &l), -EINVAL);
	assert_int_equal(lock_try(lock_dir, "a/b", &l), -EINVAL);
	assert_int_equal(lock_try("", "abc", &l), -EINVAL);
	assert_int_equal(l.fd, -1);
}

/* Lock in a child; while it holds, we get -EBUSY; SIGKILL it: free at once. */
static void test_holder_killed(void **state)
{
	struct board_lock l = BOARD_LOCK_INIT;
	int ready[2];
	pid_t pid;
	char byte;
	int status;

	(void)state;
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct board_lock mine = BOARD_LOCK_INIT;
		char ok = lock_try(lock_dir, "cafef00d", &mine) == 0 ? 'y' : 'n';

		if (write(ready[1], &ok, 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &byte, 1), 1);
	close(ready[0]);
	assert_int_equal(byte, 'y');
	assert_int_equal(lock_holder(lock_dir, "cafef00d"), (int)pid);
	assert_int_equal(lock_try(lock_dir, "cafef00d", &l), -EBUSY);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(lock_try(lock_dir, "cafef00d", &l), 0);
	assert_int_equal(lock_holder(lock_dir, "cafef00d"), (int)getpid());
	lock_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_process),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_holder_killed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
