/* attach: the TUI's command, its connection to the engine, and its loop.
 *
 * Owns the terminal: curses set-up and tear-down, the signal handlers that
 * restore it (a crash resets the tty with async-signal-safe calls, then
 * re-raises), and the poll() loop over the control socket, the keyboard, the
 * image hasher and a self-pipe for signals. Events and keys only mark the
 * screen dirty; it is painted at most every PAINT_MIN_NS, so a busy station
 * costs little CPU. When no engine answers on the socket, a transient one is
 * started in its own session (fork + setsid + exec of this program's
 * `daemon`), so closing the TUI or losing the terminal never stops it.
 * Main (front-end) thread only. */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <term.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "attach.h"
#include "tui.h"

#define PAINT_MIN_NS 100000000ull     /* at most ten paints a second */
#define SPAWN_WAIT_MS 60000           /* an ASan engine on a loaded machine is slow */
#define RECONNECT_NS 1000000000ull

static int sig_pipe[2] = { -1, -1 };
static struct termios saved_tty;
static bool have_tty;
static char reset_seq[128];
static size_t reset_len;

uint64_t tui_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tui_message(struct tui *t, bool bad, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->message, sizeof(t->message), fmt, ap);
	va_end(ap);
	t->message_bad = bad;
	t->message_ns = tui_now_ns();
	t->dirty = true;
}

struct tile *tui_selected(struct tui *t)
{
	struct station_model *m = t->ctl ? ctl_model(t->ctl) : NULL;

	if (!m || !m->n)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->tiles[i].port, t->sel_port) == 0)
			return &m->tiles[i];
	return &m->tiles[0];
}

int tui_config_load(struct tui *t, struct config **c, struct config_problems *probs)
{
	const struct ctl_info *in = t->ctl ? ctl_info(t->ctl) : NULL;
	const char *path = in && in->config_path[0] ? in->config_path : t->cli->config_path;

	memset(probs, 0, sizeof(*probs));
	return config_load(path, &t->cli->paths, c, probs);
}

void tui_settings_load(struct tui *t)
{
	struct config *c = NULL;
	struct config_problems probs;

	tui_config_load(t, &c, &probs);
#define COPY_SETTING(field, sec, key) \
	snprintf(t->field, sizeof(t->field), "%s", c ? config_get(c, sec, key) : "")
	COPY_SETTING(db_path, "paths", "database");
	COPY_SETTING(flags_dir, "paths", "flags_dir");
	COPY_SETTING(hooks_dir, "paths", "hooks_dir");
	COPY_SETTING(cache_dir, "paths", "cache_dir");
	COPY_SETTING(gold, "image", "gold");
	COPY_SETTING(mode, "station", "mode");
#undef COPY_SETTING
	config_free(c);
	config_problems_free(&probs);
	t->firstrun = 0;
}

/* ---- signals ---------------------------------------------------------- */

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;

	if (write(sig_pipe[1], &b, 1) < 0) {
		/* The pipe is full: a quit is already pending. */
	}
	errno = saved;
}

/* A crash: put the terminal back with async-signal-safe calls only, then die
 * of the same signal so the exit status (and a core) tell the truth. */
static void on_crash(int sig)
{
	if (have_tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
		if (write(STDOUT_FILENO, reset_seq, reset_len) < 0) {
			/* nothing more can be done */
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void reset_seq_add(const char *cap)
{
	char *s = tigetstr(cap);
	size_t n;

	if (!s || s == (char *)-1)
		return;
	n = strlen(s);
	if (reset_len + n < sizeof(reset_seq)) {
		memcpy(reset_seq + reset_len, s, n);
		reset_len += n;
	}
}

static int signals_install(void)
{
	static const int quit_sigs[] = { SIGHUP, SIGINT, SIGTERM, SIGQUIT };
	static const int crash_sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
	struct sigaction sa;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	for (size_t i = 0; i < sizeof(quit_sigs) / sizeof(quit_sigs[0]); i++)
		sigaction(quit_sigs[i], &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_crash;
	sa.sa_flags = SA_RESETHAND;
	for (size_t i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
		sigaction(crash_sigs[i], &sa, NULL);
	return 0;
}

/* ---- the engine --------------------------------------------------------- */

static void spawn_log_path(struct tui *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s/engine-transient.log", t->cli->paths.run);
}

/* Start `daemon --transient --socket P` in its own session. */
static int engine_spawn(struct tui *t, const char *socket_path, const char *simulate, pid_t *out)
{
	static char a_root[] = "--root", a_config[] = "--config", a_daemon[] = "daemon",
		    a_transient[] = "--transient", a_socket[] = "--socket", a_simulate[] = "--simulate";
	char logp[512], exe[4096], root[1024], config[1024], sock[256], sim[128];
	char *argv[16];
	int argc = 0;
	ssize_t n;
	pid_t pid;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		snprintf(exe, sizeof(exe), "%s", t->cli->argv0);
	else
		exe[n] = '\0';
	snprintf(root, sizeof(root), "%s", t->cli->paths.root ? t->cli->paths.root : "");
	snprintf(config, sizeof(config), "%s", t->cli->config_path);
	snprintf(sock, sizeof(sock), "%s", socket_path);
	snprintf(sim, sizeof(sim), "%s", simulate ? simulate : "");
	argv[argc++] = exe;
	if (root[0]) {
		argv[argc++] = a_root;
		argv[argc++] = root;
	}
	argv[argc++] = a_config;
	argv[argc++] = config;
	argv[argc++] = a_daemon;
	argv[argc++] = a_transient;
	argv[argc++] = a_socket;
	argv[argc++] = sock;
	if (sim[0]) {
		argv[argc++] = a_simulate;
		argv[argc++] = sim;
	}
	argv[argc] = NULL;

	mkdir_p(t->cli->paths.run, 0755);
	spawn_log_path(t, logp, sizeof(logp));
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		struct sigaction sa;

		setsid();
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd < 0)
			fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		for (int s = 1; s < NSIG; s++)
			sigaction(s, &sa, NULL);
		/* Our descriptors (the control socket, the terminal's) stay ours. */
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		execv(exe, argv);
		_exit(127);
	}
	*out = pid;
	return 0;
}

/* Connect, starting an engine when none answers. Before curses is up. */
static int engine_attach(struct tui *t, const char *simulate)
{
	char logp[512];
	pid_t pid = 0;
	int rc, status;
	uint64_t deadline;

	rc = ctl_connect(t->socket_path, t->read_only, &t->ctl);
	if (rc == 0)
		return 0;
	if (rc != -ENOENT && rc != -ECONNREFUSED) {
		fprintf(stderr, "%s: cannot attach to the engine at %s: %s%s\n", t->cli->argv0,
			t->socket_path, strerror(-rc),
			rc == -EACCES ? " (join the station group, or use sudo)" : "");
		return rc;
	}
	rc = engine_spawn(t, t->socket_path, simulate, &pid);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot start the engine: %s\n", t->cli->argv0, strerror(-rc));
		return rc;
	}
	t->spawned = true;
	spawn_log_path(t, logp, sizeof(logp));
	deadline = tui_now_ns() + SPAWN_WAIT_MS * 1000000ull;
	for (;;) {
		rc = ctl_connect(t->socket_path, t->read_only, &t->ctl);
		if (rc == 0)
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "%s: the engine exited (%s %d) before it answered; see %s\n",
				t->cli->argv0, WIFEXITED(status) ? "status" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), logp);
			return -ECHILD;
		}
		if (tui_now_ns() > deadline) {
			fprintf(stderr, "%s: the engine did not answer on %s; see %s\n",
				t->cli->argv0, t->socket_path, logp);
			return -ETIMEDOUT;
		}
		usleep(50000);
	}
}

int tui_start_rehearsal(struct tui *t)
{
	const char *devs = t->simulate[0] ? t->simulate : "pi5:2,pi4:1,zero2w:1";
	char sock[sizeof(t->socket_path)];
	char *s = path_join(t->cli->paths.run, "control-simulate");
	pid_t pid;
	int rc;

	if (!s)
		return -ENOMEM;
	snprintf(sock, sizeof(sock), "%s", s);
	free(s);
	if (t->ctl) {
		ctl_close(t->ctl);
		t->ctl = NULL;
	}
	snprintf(t->socket_path, sizeof(t->socket_path), "%s", sock);
	snprintf(t->simulate, sizeof(t->simulate), "%s", devs);
	rc = ctl_connect(sock, t->read_only, &t->ctl);
	if (rc == 0)
		return 0;
	rc = engine_spawn(t, sock, devs, &pid);
	if (rc < 0)
		return rc;
	t->spawned = true;
	/* The loop reconnects once the rehearsal engine answers. */
	tui_message(t, false, "starting a rehearsal engine (simulate %s)...", devs);
	return 0;
}

/* ---- painting ------------------------------------------------------------ */

static void paint(struct tui *t)
{
	getmaxyx(stdscr, t->rows, t->cols);
	erase();
	if (t->rows < 24 || t->cols < 80) {
		draw_fmt(0, 0, t->cols, "Terminal %dx%d: 80x24 or larger, please.", t->cols, t->rows);
		refresh();
		return;
	}
	if (t->view == VIEW_DASH && !t->firstrun_dismissed && firstrun_needed(t))
		t->view = VIEW_FIRSTRUN;
	status_draw(t, 0);
	switch (t->view) {
	case VIEW_DASH: dash_draw(t); break;
	case VIEW_DETAIL: detail_draw(t); break;
	case VIEW_RECORDS: records_draw(t); break;
	case VIEW_CONFIG:
		text_list_clear(&t->list);
		config_rows(t, &t->list);
		draw_list(t, &t->list, 2, t->rows - 4, false);
		break;
	case VIEW_IMAGES:
		text_list_clear(&t->list);
		images_rows(t, &t->list);
		draw_list(t, &t->list, 2, t->rows - 4, false);
		break;
	case VIEW_HOOKS:
		text_list_clear(&t->list);
		hooks_rows(t, &t->list);
		draw_list(t, &t->list, 2, t->rows - 4, false);
		break;
	case VIEW_HELP:
		text_list_clear(&t->list);
		keys_help_rows(t, &t->list);
		draw_list(t, &t->list, 2, t->rows - 4, false);
		break;
	case VIEW_FIRSTRUN: firstrun_draw(t); break;
	default: break;
	}
	if (t->message[0]) {
		attron(draw_attr(t, t->message_bad ? TUI_ATTR_BAD : TUI_ATTR_HEAD));
		draw_text(t->rows - 2, 0, t->cols - 30, false, t->message);
		attroff(draw_attr(t, t->message_bad ? TUI_ATTR_BAD : TUI_ATTR_HEAD));
	}
	keys_draw_bar(t, t->rows - 1);
	dialog_draw(t);
	wnoutrefresh(stdscr);
	doupdate();
}

static bool any_running(struct tui *t)
{
	struct station_model *m = t->ctl ? ctl_model(t->ctl) : NULL;

	if (!m)
		return false;
	for (size_t i = 0; i < m->n; i++)
		if (m->tiles[i].phase >= PHASE_BOOTSTRAP && m->tiles[i].phase <= PHASE_VERIFY)
			return true;
	return false;
}

static void term_setup(struct tui *t)
{
	if (tcgetattr(STDIN_FILENO, &saved_tty) == 0)
		have_tty = true;
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	reset_seq_add("sgr0");
	reset_seq_add("cnorm");
	reset_seq_add("rmkx");
	reset_seq_add("rmcup");
	draw_init(t);
	getmaxyx(stdscr, t->rows, t->cols);
}

static int loop(struct tui *t)
{
	uint64_t last_paint = 0, last_tick = 0, last_try = 0;
	int rc = EXIT_OK;

	t->dirty = true;
	while (!t->quit) {
		struct pollfd fds[4];
		int nfds = 0, ctl_i = -1, hash_i = -1, timeout;
		uint64_t now = tui_now_ns();
		bool busy = any_running(t);

		if (busy && now - last_tick >= 1000000000ull) {
			t->dirty = true; /* elapsed times and ETAs move */
			last_tick = now;
		}
		if (t->message[0] && now - t->message_ns > 8000000000ull && !t->dialog.kind) {
			t->message[0] = '\0';
			t->dirty = true;
		}
		if (!t->ctl && now - last_try >= RECONNECT_NS) {
			last_try = now;
			if (ctl_connect(t->socket_path, t->read_only, &t->ctl) == 0) {
				tui_settings_load(t);
				tui_message(t, false, "attached to the engine at %s", t->socket_path);
			}
			t->dirty = true;
		}
		if (t->dirty && now - last_paint >= PAINT_MIN_NS) {
			paint(t);
			t->dirty = false;
			last_paint = now;
		}
		if (t->dirty)
			timeout = (int)((PAINT_MIN_NS - (now - last_paint)) / 1000000ull) + 1;
		else if (busy || !t->ctl)
			timeout = 1000;
		else
			timeout = 10000;

		fds[nfds].fd = STDIN_FILENO;
		fds[nfds++].events = POLLIN;
		fds[nfds].fd = sig_pipe[0];
		fds[nfds++].events = POLLIN;
		if (t->ctl) {
			ctl_i = nfds;
			fds[nfds].fd = ctl_fd(t->ctl);
			fds[nfds++].events = POLLIN;
		}
		if (images_hasher_fd(t) >= 0) {
			hash_i = nfds;
			fds[nfds].fd = images_hasher_fd(t);
			fds[nfds++].events = POLLIN;
		}
		if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
			rc = EXIT_FAILED;
			break;
		}
		if (fds[1].revents & POLLIN) {
			unsigned char b;

			while (read(sig_pipe[0], &b, 1) == 1)
				t->quit = true;
		}
		if (ctl_i >= 0 && fds[ctl_i].revents) {
			int n = ctl_read(t->ctl);

			if (n < 0) {
				ctl_close(t->ctl);
				t->ctl = NULL;
				last_try = tui_now_ns();
				tui_message(t, true, "the engine went away; reconnecting to %s",
					    t->socket_path);
			}
			t->dirty = true;
		}
		if (hash_i >= 0 && fds[hash_i].revents) {
			images_hasher_drain(t);
			t->dirty = true;
		}
		/* Always ask curses: a resize arrives as KEY_RESIZE after EINTR. */
		for (int ch; (ch = getch()) != ERR;) {
			int r;

			if (ch == KEY_RESIZE) {
				t->dirty = true;
				continue;
			}
			r = t->dialog.kind ? dialog_key(t, ch) : keys_handle(t, ch);
			if (r & KEY_RESULT_QUIT)
				t->quit = true;
			if (r)
				t->dirty = true;
		}
		while (waitpid(-1, NULL, WNOHANG) > 0) {
			/* reap an engine we started that has since ended */
		}
	}
	return rc;
}

int cmd_attach(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "simulate", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct tui t;
	const char *sock = NULL;
	int c, rc;

	memset(&t, 0, sizeof(t));
	t.cli = cli;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'r': t.read_only = true; break;
		case 'S': snprintf(t.simulate, sizeof(t.simulate), "%s", optarg); break;
		case 'h':
			printf("Usage: %s attach [--socket PATH] [--read-only] [--simulate DEVICES]\n"
			       "Open the dashboard on the engine's control socket (default %s/control;\n"
			       "with --simulate, %s/control-simulate). With no engine running, start\n"
			       "one that outlives this viewer. Keys: press ? inside.\n",
			       cli->argv0, cli->paths.run, cli->paths.run);
			return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: attach: unexpected argument '%s'\n", cli->argv0, argv[optind]);
		return EXIT_USAGE;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "%s: the dashboard needs a terminal; for scripts use "
			"`daemon --log` or `status`\n", cli->argv0);
		return EXIT_USAGE;
	}
	if (sock) {
		snprintf(t.socket_path, sizeof(t.socket_path), "%s", sock);
	} else {
		char *p = t.simulate[0] ? path_join(cli->paths.run, "control-simulate")
					: ctl_socket_path(&cli->paths);

		if (!p)
			return EXIT_FAILED;
		snprintf(t.socket_path, sizeof(t.socket_path), "%s", p);
		free(p);
	}
	setlocale(LC_ALL, "");
	if (engine_attach(&t, t.simulate) < 0)
		return EXIT_FAILED;
	if (signals_install() < 0) {
		ctl_close(t.ctl);
		return EXIT_FAILED;
	}
	tui_settings_load(&t);
	term_setup(&t);
	if (t.spawned)
		tui_message(&t, false, "started an engine (if you quit, it finishes the boards in flight, then stops)");
	rc = loop(&t);
	images_hasher_stop(&t);
	endwin();
	text_list_clear(&t.list);
	text_list_clear(&t.records);
	text_list_clear(&t.detail_db);
	if (t.ctl)
		ctl_close(t.ctl);
	return rc;
}
