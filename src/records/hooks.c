/* hooks: owns running the operator's hook scripts: their file names, argument
 * vectors and environment (the peer's contract), the child process (clean
 * environment, no inherited descriptors, own process group), capturing its
 * output into the board's log, and the time limit.
 *
 * Called from a board's worker thread; several boards may run hooks at once.
 * Everything the child needs is built before fork(): between fork() and
 * execve() the child calls only async-signal-safe functions. No process-wide
 * signal disposition is changed; the child is reaped by its own pid. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/paths.h"
#include "records/boardlog.h"
#include "records/hooks.h"

#define HOOK_LINE_MAX 4096  /* longer output lines are logged in pieces */
#define HOOK_POLL_FALLBACK_MS 20

static const char *const prov_names[HOOK_PROV_COUNT] = {
	[HOOK_PROV_SB] = "sb-provisioner",
	[HOOK_PROV_FDE] = "fde-provisioner",
	[HOOK_PROV_NAKED] = "naked-provisioner",
};

static const char *const stage_names[HOOK_STAGE_COUNT] = {
	[HOOK_BOOTSTRAP] = "bootstrap",
	[HOOK_PROVISION_STARTED] = "provision-started",
	[HOOK_BOOTFS_MOUNTED] = "bootfs-mounted",
	[HOOK_ROOTFS_MOUNTED] = "rootfs-mounted",
	[HOOK_POST_FLASH] = "post-flash",
	[HOOK_PROVISION_FAILED] = "provision-failed",
};

const char *const hooks_post_flash_fields[] = {
	"BOARDNAME", "SERIAL", "ETH_MAC", "WIFI_MAC", "BT_MAC", "MMC_SIZE", "MMC_CID",
	"RPI_DUID", "BOARD_REVISION", "PROCESSOR", "MEMORY", "MANUFACTURER", "SECURE",
	"JTAG_LOCKED", "EEPROM_WRITE_PROTECTED", "PUBKEY_PROGRAMMED", "DEVKEY_REVOKED",
	"SIGNED_BOOT_ENABLED", "OS_IMAGE_FILENAME", "OS_IMAGE_SHA256", "CONNECT_REGISTERED",
	"CONNECT_DEVICE_ID", "EEPROM_SIZE", "EEPROM_JEDEC", "EEPROM_UNIQUE_ID",
	"BOOTLOADER_BUILD_TIMESTAMP", "CUSTOMER_KEY_FINGERPRINT", "CUSTOMER_KEY_LABEL",
};
const size_t hooks_post_flash_fields_len =
	sizeof(hooks_post_flash_fields) / sizeof(hooks_post_flash_fields[0]);

const char *hooks_provisioner_name(enum hook_provisioner prov)
{
	return (unsigned)prov < HOOK_PROV_COUNT ? prov_names[prov] : "unknown";
}

int hooks_provisioner_for_mode(const char *mode, enum hook_provisioner *out)
{
	static const char *const modes[HOOK_PROV_COUNT] = {
		[HOOK_PROV_SB] = "secure-boot",
		[HOOK_PROV_FDE] = "fde-only",
		[HOOK_PROV_NAKED] = "naked",
	};

	for (int i = 0; mode && i < HOOK_PROV_COUNT; i++) {
		if (!strcmp(mode, modes[i])) {
			*out = (enum hook_provisioner)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *hooks_stage_name(enum hook_stage stage)
{
	return (unsigned)stage < HOOK_STAGE_COUNT ? stage_names[stage] : "unknown";
}

const char *hooks_outcome_name(enum hook_outcome outcome)
{
	switch (outcome) {
	case HOOK_OK: return "ok";
	case HOOK_FAILED: return "failed";
	case HOOK_TIMED_OUT: return "timed-out";
	case HOOK_SKIPPED_ABSENT: return "skipped-absent";
	case HOOK_SKIPPED_NOT_EXECUTABLE: return "skipped-not-executable";
	}
	return "unknown";
}

bool hooks_result_ok(const struct hook_result *res)
{
	return res->outcome == HOOK_OK || res->outcome == HOOK_SKIPPED_ABSENT ||
	       res->outcome == HOOK_SKIPPED_NOT_EXECUTABLE;
}

char *hooks_path(const struct hook_call *call)
{
	char *p;

	if (!call->hooks_dir || (unsigned)call->prov >= HOOK_PROV_COUNT ||
	    (unsigned)call->stage >= HOOK_STAGE_COUNT)
		return NULL;
	if (asprintf(&p, "%s/%s-%s.sh", call->hooks_dir, prov_names[call->prov],
		     stage_names[call->stage]) < 0)
		return NULL;
	return p;
}

static bool field_allowed(const char *key)
{
	for (size_t i = 0; i < hooks_post_flash_fields_len; i++)
		if (!strcmp(key, hooks_post_flash_fields[i]))
			return true;
	return false;
}

/* post-flash, and the per-board customisation stages (the board's facts are
 * known before its copy of the image is customised). */
static bool stage_takes_fields(enum hook_stage stage)
{
	return stage == HOOK_POST_FLASH || stage == HOOK_BOOTFS_MOUNTED ||
	       stage == HOOK_ROOTFS_MOUNTED;
}

static int check_call(const struct hook_call *call)
{
	if (!call->hooks_dir || !*call->hooks_dir || (unsigned)call->prov >= HOOK_PROV_COUNT ||
	    (unsigned)call->stage >= HOOK_STAGE_COUNT || call->timeout_s == 0)
		return -EINVAL;
	if (call->n_fields && (!stage_takes_fields(call->stage) || !call->fields))
		return -EINVAL;
	for (size_t i = 0; i < call->n_fields; i++) {
		if (!call->fields[i].key || !field_allowed(call->fields[i].key))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(call->fields[i].key, call->fields[j].key))
				return -EINVAL;
	}
	return 0;
}

static enum blog_phase log_phase(const struct hook_call *call)
{
	if (call->stage == HOOK_BOOTSTRAP ||
	    (call->stage == HOOK_PROVISION_FAILED && call->failed_context == HOOK_FAILED_BOOTSTRAP))
		return BLOG_BOOTSTRAP;
	return BLOG_PROVISIONER;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* The positional arguments of the peer's table, after argv[0]. */
static size_t build_args(const struct hook_call *call, const char *path, const char *argv[6])
{
	size_t n = 0;
	bool boot_ctx = call->stage == HOOK_BOOTSTRAP ||
			(call->stage == HOOK_PROVISION_FAILED &&
			 call->failed_context == HOOK_FAILED_BOOTSTRAP);

	argv[n++] = path;
	if (boot_ctx) {
		argv[n++] = or_empty(call->serial);
		argv[n++] = or_empty(call->family);
		argv[n++] = or_empty(call->usb_path);
		argv[n++] = or_empty(call->device_path);
	} else if (call->stage == HOOK_BOOTFS_MOUNTED || call->stage == HOOK_ROOTFS_MOUNTED) {
		argv[n++] = or_empty(call->boot_mount);
		argv[n++] = or_empty(call->rootfs_mount);
	} else {
		argv[n++] = or_empty(call->fastboot_specifier);
		argv[n++] = or_empty(call->serial);
		argv[n++] = or_empty(call->storage_device);
	}
	argv[n] = NULL;
	return n;
}

struct envbuf {
	char **v;
	size_t n;
	int err;
};

static void env_add(struct envbuf *e, const char *key, const char *value)
{
	char **v;

	if (e->err)
		return;
	v = realloc(e->v, (e->n + 2) * sizeof(*v));
	if (!v) {
		e->err = -ENOMEM;
		return;
	}
	e->v = v;
	if (asprintf(&e->v[e->n], "%s=%s", key, or_empty(value)) < 0) {
		e->err = -ENOMEM;
		e->v[e->n] = NULL;
		return;
	}
	e->v[++e->n] = NULL;
}

static void env_free(struct envbuf *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
}

static int build_env(const struct hook_call *call, struct envbuf *e)
{
	env_add(e, "PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
	env_add(e, "LANG", "C.UTF-8");
	env_add(e, "TARGET_USB_PATH", call->usb_path);
	env_add(e, "TARGET_DEVICE_PATH", call->device_path);
	env_add(e, "TARGET_DEVICE_SERIAL", call->serial);
	env_add(e, "TARGET_DEVICE_FAMILY", call->family);
	env_add(e, "FASTBOOT_DEVICE_SPECIFIER", call->fastboot_specifier);
	env_add(e, "RPI_DEVICE_STORAGE_TYPE", call->storage_type);
	env_add(e, "GOLD_MASTER_OS_KIND", call->os_kind ? call->os_kind : "image");
	if (stage_takes_fields(call->stage))
		for (size_t i = 0; i < call->n_fields; i++)
			env_add(e, call->fields[i].key, call->fields[i].value);
	if (call->stage == HOOK_PROVISION_FAILED) {
		env_add(e, "PROVISION_FAILED_CONTEXT",
			call->failed_context == HOOK_FAILED_BOOTSTRAP ? "bootstrap" : "provisioning");
		env_add(e, "PROVISION_FAILED_PERMANENT", call->failed_permanent ? "1" : "0");
	}
	if (!e->v && !e->err)
		e->err = -ENOMEM;
	return e->err;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Move @fd to a number above 2 (so dup2 onto 0..2 in the child cannot clobber
 * it), close-on-exec. Returns the new fd or -errno. */
static int fd_above_stdio(int fd)
{
	int nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd < 0 ? -errno : nfd;
}

/* In the child: only async-signal-safe calls from here to execve. */
static _Noreturn void child_exec(const char *path, char *const argv[], char *const shargv[],
				 char *const envp[], int devnull, int out, int errpipe, int max_fd)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int e;

	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		goto fail;
	/* Everything above 2 closes at execve, including descriptors other
	 * threads opened without O_CLOEXEC; the error pipe stays usable until then. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < max_fd; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (chdir("/") < 0)
		goto fail;
	execve(path, argv, envp);
	/* No #! line: run it with /bin/sh, as execvp() and the peer's bash would. */
	if (errno == ENOEXEC)
		execve("/bin/sh", shargv, envp);
fail:
	e = errno;
	if (write(errpipe, &e, sizeof(e)) < 0) {
		/* nothing more to say: the exit status tells */
	}
	_exit(127);
}

struct linebuf {
	char buf[HOOK_LINE_MAX];
	size_t len;
};

static void emit_lines(struct linebuf *lb, struct boardlog *log, enum blog_phase phase,
		       const char *head, bool flush)
{
	size_t start = 0;

	for (size_t i = 0; i < lb->len; i++) {
		if (lb->buf[i] == '\n') {
			blog_bytes(log, phase, head, lb->buf + start, i - start);
			start = i + 1;
		}
	}
	if (start == 0 && lb->len == sizeof(lb->buf))
		flush = true; /* one line longer than the buffer: log it in pieces */
	if (flush && start < lb->len) {
		blog_bytes(log, phase, head, lb->buf + start, lb->len - start);
		start = lb->len;
	}
	memmove(lb->buf, lb->buf + start, lb->len - start);
	lb->len -= start;
}

/* Read what is there now; false at end of file (or error). */
static bool drain(int fd, struct linebuf *lb, struct boardlog *log, enum blog_phase phase,
		  const char *head)
{
	for (;;) {
		ssize_t n = read(fd, lb->buf + lb->len, sizeof(lb->buf) - lb->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN;
		if (n == 0)
			return false;
		lb->len += (size_t)n;
		emit_lines(lb, log, phase, head, false);
	}
}

int hooks_run(const struct hook_call *call, struct boardlog *log, struct hook_result *res)
{
	enum blog_phase phase;
	char *path = NULL, *head = NULL;
	const char *argv[6], *shargv[7];
	size_t nargs;
	struct envbuf env = { 0 };
	struct stat st;
	struct rlimit rl;
	struct linebuf lb = { .len = 0 };
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int devnull = -1, pidfd = -1, status = 0, exec_errno = 0, max_fd = 1024, r;
	pid_t pid = -1;
	int64_t start, deadline;
	bool out_open = true, exited = false, timed_out = false, killed = false;
	const char *name;

	*res = (struct hook_result){ .outcome = HOOK_SKIPPED_ABSENT, .exit_code = -1 };
	r = check_call(call);
	if (r < 0)
		return r;
	phase = log_phase(call);
	path = hooks_path(call);
	if (!path)
		return -ENOMEM;
	name = strrchr(path, '/') + 1;
	if (stat(path, &st) < 0) {
		r = errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
		if (r < 0)
			blog(log, phase, "hook %s: cannot check it: %s; fix the permissions of %s",
			     name, strerror(-r), call->hooks_dir);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
		res->outcome = HOOK_SKIPPED_NOT_EXECUTABLE;
		blog(log, phase, "hook %s: present but not %s: skipped (chmod +x %s to enable it)",
		     name, S_ISREG(st.st_mode) ? "executable" : "a regular file", path);
		goto out;
	}
	if (asprintf(&head, "hook %s: ", name) < 0) {
		head = NULL;
		r = -ENOMEM;
		goto out;
	}
	nargs = build_args(call, path, argv);
	shargv[0] = "/bin/sh";
	memcpy(shargv + 1, argv, (nargs + 1) * sizeof(argv[0]));
	r = build_env(call, &env);
	if (r < 0)
		goto out;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT32_MAX)
		max_fd = (int)rl.rlim_cur;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail_start;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		r = -errno;
		goto fail_start;
	}
	/* If the station runs with 0..2 closed, a pipe may sit there. */
	if ((out[1] = fd_above_stdio(out[1])) < 0 || (errp[1] = fd_above_stdio(errp[1])) < 0 ||
	    (devnull = fd_above_stdio(devnull)) < 0) {
		r = -EMFILE;
		goto fail_start;
	}
	blog(log, phase, "hook %s: running with '%s' '%s' '%s' '%s' (timeout %u s)", name,
	     argv[1], argv[2], argv[3] ? argv[3] : "", argv[3] && argv[4] ? argv[4] : "",
	     call->timeout_s);
	start = now_ms();
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail_start;
	}
	if (pid == 0)
		child_exec(path, (char *const *)(uintptr_t)argv, (char *const *)(uintptr_t)shargv,
			   env.v, devnull, out[1], errp[1], max_fd);
	setpgid(pid, pid); /* also here: no window where the group is not there yet */
	close(out[1]);
	close(errp[1]);
	close(devnull);
	out[1] = errp[1] = devnull = -1;

	/* The error pipe closes at a successful execve; else it holds errno. */
	while ((r = (int)read(errp[0], &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR)
		;
	if (r != (int)sizeof(exec_errno))
		exec_errno = 0;
	r = 0;
	fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
	pidfd = pidfd_open(pid, 0);
	deadline = start + (int64_t)call->timeout_s * 1000;

	while (!exited) {
		struct pollfd pfd[2] = {
			{ .fd = out_open ? out[0] : -1, .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
		};
		int64_t left = deadline - now_ms();
		int wait_ms;
		siginfo_t si;

		if (left <= 0) {
			if (!timed_out) {
				timed_out = true;
				kill(-pid, SIGTERM);
				deadline = now_ms() + HOOK_KILL_GRACE_MS;
				continue;
			}
			kill(-pid, SIGKILL);
			killed = true;
			break;
		}
		wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
		if (pidfd < 0 && wait_ms > HOOK_POLL_FALLBACK_MS)
			wait_ms = HOOK_POLL_FALLBACK_MS;
		if (poll(pfd, 2, wait_ms) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (out_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			out_open = drain(out[0], &lb, log, phase, head);
		/* WNOWAIT: the leader stays a zombie, so its process group id
		 * cannot be reused before we are done signalling the group. */
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
			exited = true;
	}
	/* Output written just before the exit; a background child that keeps the
	 * pipe open does not hold us up. */
	if (out_open)
		drain(out[0], &lb, log, phase, head);
	emit_lines(&lb, log, phase, head, true);
	if ((timed_out || r < 0) && !killed)
		kill(-pid, SIGKILL); /* whatever of the group ignored SIGTERM; or lost track */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	res->duration_ms = (long)(now_ms() - start);
	if (r < 0) {
		res->outcome = HOOK_FAILED;
		blog(log, phase, "hook %s: lost track of it (%s); killed it", name, strerror(-r));
		r = 0;
	} else if (timed_out) {
		res->outcome = HOOK_TIMED_OUT;
		if (WIFSIGNALED(status))
			res->signal = WTERMSIG(status);
		blog(log, phase, "hook %s: still running after the %u s timeout: its process group "
		     "got SIGTERM%s; raise [timeouts] hook if it needs longer", name, call->timeout_s,
		     killed ? " and then SIGKILL" : "");
	} else if (exec_errno) {
		res->outcome = HOOK_FAILED;
		res->exec_errno = exec_errno;
		res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		blog(log, phase, "hook %s: could not be executed: %s; check its #! line and "
		     "permissions", name, strerror(exec_errno));
	} else if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
		res->outcome = res->exit_code == 0 ? HOOK_OK : HOOK_FAILED;
		blog(log, phase, "hook %s: exited with status %d after %ld ms", name,
		     res->exit_code, res->duration_ms);
	} else {
		res->outcome = HOOK_FAILED;
		res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		blog(log, phase, "hook %s: killed by signal %d (%s) after %ld ms", name,
		     res->signal, strsignal(res->signal), res->duration_ms);
	}
	goto out;

fail_start:
	blog(log, phase, "hook %s: could not be started: %s", name, strerror(-r));
out:
	if (pidfd >= 0)
		close(pidfd);
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (devnull >= 0)
		close(devnull);
	env_free(&env);
	free(head);
	free(path);
	return r;
}
