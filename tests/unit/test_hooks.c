/* Unit tests of records/hooks: clean environment, positional arguments,
 * exit status, timeout, skipped hooks, no inherited descriptors, output
 * captured into the board's log. The hooks are small /bin/sh scripts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/paths.h"
#include "records/boardlog.h"
#include "records/hooks.h"

struct fixture {
	char *root;
	char *hooks;
	struct boardlog *log;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->root = strdup("/tmp/test_hooks.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	f->hooks = path_join(f->root, "scripts");
	if (mkdir(f->hooks, 0755) < 0)
		return -1;
	{
		char *logdir = path_join(f->root, "log");

		if (boardlog_open(logdir, "1-1.4", &f->log) < 0)
			return -1;
		free(logdir);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd;

	boardlog_close(f->log);
	if (asprintf(&cmd, "rm -rf '%s'", f->root) > 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", f->root);
		free(cmd);
	}
	free(f->hooks);
	free(f->root);
	free(f);
	return 0;
}

static void write_hook(struct fixture *f, const char *name, const char *body, mode_t mode)
{
	char *p = path_join(f->hooks, name);
	FILE *fp = fopen(p, "w");

	assert_non_null(fp);
	fputs(body, fp);
	fclose(fp);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

/* The board's log of @phase; only the lines the hook printed, prefix cut. */
static char *hook_output(struct fixture *f, enum blog_phase phase, const char *hook)
{
	char *dir = boardlog_dir(f->log), *path, *line = NULL, *out = NULL, *head;
	size_t cap = 0, outlen = 0;
	FILE *fp, *mem = open_memstream(&out, &outlen);

	assert_true(asprintf(&path, "%s/%s.log", dir, blog_phase_name(phase)) > 0);
	assert_true(asprintf(&head, "] hook %s: ", hook) > 0);
	fp = fopen(path, "r");
	if (fp) {
		while (getline(&line, &cap, fp) > 0) {
			char *h = strstr(line, head);

			if (h && h - line == 24 && strncmp(h + strlen(head), "running with", 12) &&
			    strncmp(h + strlen(head), "exited with", 11))
				fputs(h + strlen(head), mem);
		}
		fclose(fp);
	}
	fclose(mem);
	free(line);
	free(head);
	free(path);
	free(dir);
	return out;
}

static char *whole_log(struct fixture *f, enum blog_phase phase)
{
	char *dir = boardlog_dir(f->log), *path, *buf = NULL;
	size_t cap = 0;
	FILE *fp;

	assert_true(asprintf(&path, "%s/%s.log", dir, blog_phase_name(phase)) > 0);
	fp = fopen(path, "r");
	if (!fp || getdelim(&buf, &cap, '\0', fp) < 0) {
		free(buf);
		buf = strdup("");
	}
	if (fp)
		fclose(fp);
	free(path);
	free(dir);
	return buf;
}

static struct hook_call base_call(struct fixture *f, enum hook_stage stage)
{
	return (struct hook_call){
		.hooks_dir = f->hooks,
		.prov = HOOK_PROV_SB,
		.stage = stage,
		.timeout_s = 10,
		.serial = "0123456789abcdef",
		.family = "2712",
		.usb_path = "1-1.4",
		.device_path = "/dev/bus/usb/001/007",
		.fastboot_specifier = "usb:1-1.4",
		.storage_type = "emmc",
		.storage_device = "mmcblk0",
	};
}

static void test_absent_and_not_executable(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_BOOTSTRAP);
	struct hook_result res;
	char *log;

	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_SKIPPED_ABSENT);
	assert_true(hooks_result_ok(&res));
	write_hook(f, "sb-provisioner-bootstrap.sh", "#!/bin/sh\necho ran\nexit 1\n", 0644);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_SKIPPED_NOT_EXECUTABLE);
	assert_true(hooks_result_ok(&res));
	log = whole_log(f, BLOG_BOOTSTRAP);
	assert_non_null(strstr(log, "hook sb-provisioner-bootstrap.sh: present but not executable: skipped"));
	assert_null(strstr(log, "ran"));
	free(log);
	/* other provisioners' hooks are other files */
	c.prov = HOOK_PROV_FDE;
	write_hook(f, "fde-provisioner-bootstrap.sh", "#!/bin/sh\nexit 0\n", 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_OK);
	assert_int_equal(res.exit_code, 0);
}

static const char *const allowed_env[] = {
	"PATH", "LANG", "TARGET_USB_PATH", "TARGET_DEVICE_PATH", "TARGET_DEVICE_SERIAL",
	"TARGET_DEVICE_FAMILY", "FASTBOOT_DEVICE_SPECIFIER", "RPI_DEVICE_STORAGE_TYPE",
	"GOLD_MASTER_OS_KIND",
};

/* Each line "KEY=value" of @env must be allowed; each allowed key present. */
static void check_env(const char *env, const char *const *extra, size_t n_extra)
{
	size_t n_allowed = sizeof(allowed_env) / sizeof(allowed_env[0]);
	size_t seen = 0;

	for (const char *p = env; *p;) {
		const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
		bool ok = false;

		assert_non_null(nl);
		assert_non_null(eq);
		for (size_t i = 0; i < n_allowed + n_extra; i++) {
			const char *k = i < n_allowed ? allowed_env[i] : extra[i - n_allowed];

			if (strlen(k) == (size_t)(eq - p) && !strncmp(p, k, (size_t)(eq - p)))
				ok = true;
		}
		if (!ok)
			fail_msg("unexpected variable in a hook's environment: %.*s", (int)(nl - p), p);
		seen++;
		p = nl + 1;
	}
	assert_int_equal(seen, n_allowed + n_extra);
}

static const char env_dump[] = "#!/bin/sh\ntr '\\0' '\\n' < /proc/$$/environ\n";

static void test_env_is_clean(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_PROVISION_STARTED);
	struct hook_result res;
	char *env;

	setenv("RPI_SB_TEST_SECRET", "must-not-leak", 1);
	setenv("LD_PRELOAD", "", 1);
	write_hook(f, "sb-provisioner-provision-started.sh", env_dump, 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_OK);
	env = hook_output(f, BLOG_PROVISIONER, "sb-provisioner-provision-started.sh");
	check_env(env, NULL, 0);
	assert_non_null(strstr(env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
	assert_non_null(strstr(env, "LANG=C.UTF-8\n"));
	assert_non_null(strstr(env, "TARGET_DEVICE_SERIAL=0123456789abcdef\n"));
	assert_non_null(strstr(env, "TARGET_DEVICE_FAMILY=2712\n"));
	assert_non_null(strstr(env, "TARGET_USB_PATH=1-1.4\n"));
	assert_non_null(strstr(env, "TARGET_DEVICE_PATH=/dev/bus/usb/001/007\n"));
	assert_non_null(strstr(env, "FASTBOOT_DEVICE_SPECIFIER=usb:1-1.4\n"));
	assert_non_null(strstr(env, "RPI_DEVICE_STORAGE_TYPE=emmc\n"));
	assert_non_null(strstr(env, "GOLD_MASTER_OS_KIND=image\n"));
	free(env);
	unsetenv("RPI_SB_TEST_SECRET");
	unsetenv("LD_PRELOAD");
}

static void test_env_post_flash_and_failed(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_POST_FLASH);
	const struct hook_field fields[] = {
		{ "BOARDNAME", "Raspberry Pi 5" }, { "ETH_MAC", "d8:3a:dd:00:00:01" },
		{ "JTAG_LOCKED", NULL },
	};
	const char *const extra_pf[] = { "BOARDNAME", "ETH_MAC", "JTAG_LOCKED" };
	const char *const extra_failed[] = { "PROVISION_FAILED_CONTEXT", "PROVISION_FAILED_PERMANENT" };
	struct hook_result res;
	char *env;

	c.fields = fields;
	c.n_fields = 3;
	write_hook(f, "sb-provisioner-post-flash.sh", env_dump, 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_OK);
	env = hook_output(f, BLOG_PROVISIONER, "sb-provisioner-post-flash.sh");
	check_env(env, extra_pf, 3);
	assert_non_null(strstr(env, "BOARDNAME=Raspberry Pi 5\n"));
	assert_non_null(strstr(env, "JTAG_LOCKED=\n"));
	free(env);

	c = base_call(f, HOOK_PROVISION_FAILED);
	c.failed_context = HOOK_FAILED_BOOTSTRAP;
	c.failed_permanent = true;
	c.os_kind = "idp";
	write_hook(f, "sb-provisioner-provision-failed.sh", env_dump, 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	env = hook_output(f, BLOG_BOOTSTRAP, "sb-provisioner-provision-failed.sh");
	check_env(env, extra_failed, 2);
	assert_non_null(strstr(env, "PROVISION_FAILED_CONTEXT=bootstrap\n"));
	assert_non_null(strstr(env, "PROVISION_FAILED_PERMANENT=1\n"));
	assert_non_null(strstr(env, "GOLD_MASTER_OS_KIND=idp\n"));
	free(env);
}

static void test_bad_calls(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_BOOTSTRAP);
	const struct hook_field evil[] = { { "LD_PRELOAD", "/tmp/x.so" } };
	const struct hook_field ok[] = { { "SERIAL", "x" } };
	const struct hook_field dup[] = { { "SERIAL", "x" }, { "SERIAL", "y" } };
	struct hook_result res;

	c.fields = ok;
	c.n_fields = 1;
	assert_int_equal(hooks_run(&c, f->log, &res), -EINVAL); /* fields only for post-flash and *-mounted */
	c.stage = HOOK_POST_FLASH;
	c.fields = evil;
	assert_int_equal(hooks_run(&c, f->log, &res), -EINVAL);
	c.fields = dup;
	c.n_fields = 2;
	assert_int_equal(hooks_run(&c, f->log, &res), -EINVAL);
	c = base_call(f, HOOK_BOOTSTRAP);
	c.timeout_s = 0;
	assert_int_equal(hooks_run(&c, f->log, &res), -EINVAL);
	c = base_call(f, HOOK_STAGE_COUNT);
	assert_int_equal(hooks_run(&c, f->log, &res), -EINVAL);
}

static const char args_dump[] =
	"#!/bin/sh\necho \"argc=$#\"\nfor a in \"$@\"; do printf 'arg=[%s]\\n' \"$a\"; done\n";

static void test_positional_args(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_BOOTSTRAP);
	struct hook_result res;
	char *out, *canary = path_join(f->root, "pwned");
	char hostile[256];
	struct stat st;

	write_hook(f, "sb-provisioner-bootstrap.sh", args_dump, 0755);
	write_hook(f, "sb-provisioner-post-flash.sh", args_dump, 0755);
	write_hook(f, "sb-provisioner-bootfs-mounted.sh", args_dump, 0755);
	write_hook(f, "naked-provisioner-provision-failed.sh", args_dump, 0755);

	/* bootstrap: serial, family, usb path, device node; no shell in between */
	snprintf(hostile, sizeof(hostile), "$(touch %s); `touch %s` ;x", canary, canary);
	c.serial = hostile;
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	out = hook_output(f, BLOG_BOOTSTRAP, "sb-provisioner-bootstrap.sh");
	{
		char *want;

		assert_true(asprintf(&want, "argc=4\narg=[%s]\narg=[2712]\narg=[1-1.4]\n"
				     "arg=[/dev/bus/usb/001/007]\n", hostile) > 0);
		assert_string_equal(out, want);
		free(want);
	}
	free(out);
	assert_int_equal(stat(canary, &st), -1);

	/* post-flash: fastboot specifier, serial, storage */
	c = base_call(f, HOOK_POST_FLASH);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	out = hook_output(f, BLOG_PROVISIONER, "sb-provisioner-post-flash.sh");
	assert_string_equal(out, "argc=3\narg=[usb:1-1.4]\narg=[0123456789abcdef]\narg=[mmcblk0]\n");
	free(out);

	/* bootfs-mounted: boot mount, rootfs mount; unknown = "" */
	c = base_call(f, HOOK_BOOTFS_MOUNTED);
	c.boot_mount = "/srv/x/boot mnt";
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	out = hook_output(f, BLOG_PROVISIONER, "sb-provisioner-bootfs-mounted.sh");
	assert_string_equal(out, "argc=2\narg=[/srv/x/boot mnt]\narg=[]\n");
	free(out);

	/* provision-failed, provisioning context: the provisioner's arguments */
	c = base_call(f, HOOK_PROVISION_FAILED);
	c.prov = HOOK_PROV_NAKED;
	c.failed_context = HOOK_FAILED_PROVISIONING;
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	out = hook_output(f, BLOG_PROVISIONER, "naked-provisioner-provision-failed.sh");
	assert_string_equal(out, "argc=3\narg=[usb:1-1.4]\narg=[0123456789abcdef]\narg=[mmcblk0]\n");
	free(out);
	free(canary);
}

static void test_exit_status_and_output(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_PROVISION_STARTED);
	struct hook_result res;
	char *out, *log;

	write_hook(f, "sb-provisioner-provision-started.sh",
		   "#!/bin/sh\necho to stdout\necho to stderr >&2\nprintf 'esc \\033[2J\\n'\n"
		   "printf 'no newline at end'\nexit 3\n", 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_FAILED);
	assert_int_equal(res.exit_code, 3);
	assert_false(hooks_result_ok(&res));
	out = hook_output(f, BLOG_PROVISIONER, "sb-provisioner-provision-started.sh");
	assert_string_equal(out, "to stdout\nto stderr\nesc \\x1b[2J\nno newline at end\n");
	free(out);
	log = whole_log(f, BLOG_PROVISIONER);
	assert_non_null(strstr(log, "hook sb-provisioner-provision-started.sh: exited with status 3 after "));
	free(log);

	/* killed by a signal */
	write_hook(f, "sb-provisioner-provision-started.sh", "#!/bin/sh\nkill -SEGV $$\n", 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_FAILED);
	assert_int_equal(res.signal, 11);

	/* no #! line: run by /bin/sh, like the peer */
	write_hook(f, "sb-provisioner-provision-started.sh", "echo plain script\nexit 0\n", 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_OK);

	/* an interpreter that does not exist */
	write_hook(f, "sb-provisioner-provision-started.sh", "#!/nonexistent/interpreter\n", 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_FAILED);
	assert_int_equal(res.exec_errno, ENOENT);
	log = whole_log(f, BLOG_PROVISIONER);
	assert_non_null(strstr(log, "could not be executed: No such file or directory"));
	free(log);
}

static void test_no_inherited_fds(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_ROOTFS_MOUNTED);
	struct hook_result res;
	char *canary = path_join(f->root, "leakcanary"), *out;
	int leak = open(canary, O_CREAT | O_RDWR, 0600); /* deliberately without O_CLOEXEC */
	int p[2];
	int n_fds = 0;

	assert_true(leak >= 0);
	assert_int_equal(pipe(p), 0);
	write_hook(f, "sb-provisioner-rootfs-mounted.sh",
		   "#!/bin/sh\nexec ls -l /proc/self/fd/\n", 0755);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	assert_int_equal(res.outcome, HOOK_OK);
	out = hook_output(f, BLOG_PROVISIONER, "sb-provisioner-rootfs-mounted.sh");
	assert_null(strstr(out, "leakcanary"));
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *arrow = strstr(line, " -> ");
		int fd;

		if (!arrow)
			continue; /* "total 0" */
		n_fds++;
		/* "lr-x------ 1 user group 64 <date> <fd> -> <target>" */
		{
			char *q = arrow;

			while (q > line && q[-1] != ' ')
				q--;
			fd = atoi(q);
		}
		if (fd == 0)
			assert_non_null(strstr(arrow, "/dev/null"));
		else if (fd == 1 || fd == 2)
			assert_non_null(strstr(arrow, "pipe:"));
		else if (fd == 3)
			assert_non_null(strstr(arrow, "/fd")); /* ls's own directory handle */
		else
			fail_msg("hook inherited descriptor: %s", line);
	}
	assert_int_equal(n_fds, 4);
	free(out);
	close(leak);
	close(p[0]);
	close(p[1]);
	free(canary);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_POST_FLASH);
	struct hook_result res;
	struct timespec t0, t1;
	long ms;
	char *log;

	c.timeout_s = 1;
	write_hook(f, "sb-provisioner-post-flash.sh", "#!/bin/sh\necho started\nsleep 100\n", 0755);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(res.outcome, HOOK_TIMED_OUT);
	assert_false(hooks_result_ok(&res));
	assert_true(ms >= 1000);
	assert_true(ms < 1000 + HOOK_KILL_GRACE_MS); /* sh and sleep die on SIGTERM */
	log = whole_log(f, BLOG_PROVISIONER);
	assert_non_null(strstr(log, "hook sb-provisioner-post-flash.sh: started"));
	assert_non_null(strstr(log, "still running after the 1 s timeout"));
	free(log);
}

/* A hook that ignores SIGTERM (and whose children inherit that) and leaves a
 * background child: SIGKILL to the group after the grace period gets them all. */
static void test_timeout_sigterm_ignored(void **state)
{
	struct fixture *f = *state;
	struct hook_call c = base_call(f, HOOK_POST_FLASH);
	struct hook_result res;
	struct timespec t0, t1;
	char *pidfile = path_join(f->root, "bg.pid"), *body, *statpath;
	long ms;
	FILE *fp;
	int bg = 0;

	c.timeout_s = 1;
	assert_true(asprintf(&body, "#!/bin/sh\ntrap '' TERM\nsleep 100 &\necho $! > %s\nwait\n"
			     "sleep 100\n", pidfile) > 0);
	write_hook(f, "sb-provisioner-post-flash.sh", body, 0755);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(hooks_run(&c, f->log, &res), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(res.outcome, HOOK_TIMED_OUT);
	assert_int_equal(res.signal, 9);
	assert_true(ms >= 1000 + HOOK_KILL_GRACE_MS);
	assert_true(ms < 1000 + HOOK_KILL_GRACE_MS + 1000);
	fp = fopen(pidfile, "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%d", &bg), 1);
	fclose(fp);
	/* The background sleep is gone (or a zombie waiting for init). SIGKILL
	 * was sent to the group, but under load the kernel may not have
	 * reaped the state yet: poll for up to 5 s, then fail with what was seen. */
	assert_true(asprintf(&statpath, "/proc/%d/stat", bg) > 0);
	{
		char st = 0;

		for (int i = 0; i < 500; i++) {
			fp = fopen(statpath, "r");
			if (!fp) {
				st = 0; /* gone */
				break;
			}
			if (fscanf(fp, "%*d %*s %c", &st) != 1)
				st = 0; /* exited between open and read */
			fclose(fp);
			if (st == 0 || st == 'Z' || st == 'X')
				break;
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		}
		if (st != 0 && st != 'Z' && st != 'X')
			fail_msg("background child %d still in state %c 5 s after SIGKILL", bg, st);
	}
	free(statpath);
	free(body);
	free(pidfile);
}

struct parallel {
	struct fixture *f;
	struct boardlog *log;
	char serial[17];
	struct hook_result res;
	int rc;
};

static void *parallel_main(void *arg)
{
	struct parallel *p = arg;
	struct hook_call c = base_call(p->f, HOOK_POST_FLASH);

	c.serial = p->serial;
	p->rc = hooks_run(&c, p->log, &p->res);
	return NULL;
}

/* Several boards run their hooks at once: each board's log holds its own
 * hook's output, all of it, and nothing of the others'. */
static void test_parallel_boards(void **state)
{
	struct fixture *f = *state;
	struct parallel p[4];
	pthread_t t[4];
	char *logdir = path_join(f->root, "plog");

	write_hook(f, "sb-provisioner-post-flash.sh",
		   "#!/bin/sh\ni=0\nwhile [ $i -lt 200 ]; do echo \"$TARGET_DEVICE_SERIAL $i\"; "
		   "i=$((i+1)); done\n", 0755);
	for (int k = 0; k < 4; k++) {
		char port[8];

		p[k].f = f;
		snprintf(port, sizeof(port), "5-%d", k);
		snprintf(p[k].serial, sizeof(p[k].serial), "%016x", 0xabc0 + k);
		assert_int_equal(boardlog_open(logdir, port, &p[k].log), 0);
	}
	for (int k = 0; k < 4; k++)
		assert_int_equal(pthread_create(&t[k], NULL, parallel_main, &p[k]), 0);
	for (int k = 0; k < 4; k++)
		pthread_join(t[k], NULL);
	for (int k = 0; k < 4; k++) {
		struct fixture view = *f;
		char *out, want[64];
		int n = 0;

		assert_int_equal(p[k].rc, 0);
		assert_int_equal(p[k].res.outcome, HOOK_OK);
		view.log = p[k].log;
		out = hook_output(&view, BLOG_PROVISIONER, "sb-provisioner-post-flash.sh");
		for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
			snprintf(want, sizeof(want), "%s %d", p[k].serial, n);
			assert_string_equal(line, want);
			n++;
		}
		assert_int_equal(n, 200);
		free(out);
		boardlog_close(p[k].log);
	}
	free(logdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_absent_and_not_executable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_is_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_post_flash_and_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_positional_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status_and_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_inherited_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel_boards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_sigterm_ignored, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
