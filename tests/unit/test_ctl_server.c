/* test_ctl_server: the engine's end of the control socket, driven by raw
 * sockets. A viewer is greeted with hello + snapshot; a viewer that stops
 * reading never blocks the engine, loses events only while behind and then
 * gets a fresh snapshot; commands reach the handler only from viewers that
 * may act, one reply each; an overlong line closes the connection. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "station/ctl_server.h"
#include "station/ctl_wire.h"

struct fixture {
	char dir[40], path[64];
	struct station_model model;
	struct ctl_info info;
	struct ctl_server *srv;
	int calls;
	struct ctl_cmd last;
};

static int handler(void *usrptr, const struct ctl_peer *peer, const struct ctl_cmd *cmd,
		   char *reply, size_t len)
{
	struct fixture *f = usrptr;

	assert_true(peer->may_act);
	f->calls++;
	f->last = *cmd;
	snprintf(reply, len, "did %s", ctl_cmd_name(cmd->type));
	return cmd->type == CTL_CMD_RETRY ? -ENODEV : 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct event ev = { .type = EVENT_PORT_ADDED, .seq = 1, .mono_ns = 5 };

	snprintf(f->dir, sizeof(f->dir), "/tmp/ctlsrv.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/control", f->dir);
	model_init(&f->model);
	snprintf(ev.port, sizeof(ev.port), "1-1.2");
	model_apply(&f->model, &ev);
	snprintf(f->info.station_id, sizeof(f->info.station_id), "bench");
	struct ctl_server_opts o = { .path = f->path, .group = getegid(), .model = &f->model,
				     .info = &f->info, .handler = handler, .usrptr = f,
				     .client_buf_max = 4096 };
	assert_int_equal(ctl_server_new(&o, &f->srv), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ctl_server_free(f->srv);
	model_free(&f->model);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void pump(struct fixture *f)
{
	struct pollfd fds[40];
	size_t n = ctl_server_pollfds(f->srv, fds, 40);

	poll(fds, n, 0);
	ctl_server_dispatch(f->srv, fds, n);
}

static int client(struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump(f);
	return fd;
}

/* Read what is there (pumping the server meanwhile) into a growing buffer. */
static char *read_all(struct fixture *f, int fd, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0;
	int idle = 0;

	*len = 0;
	while (idle < 20) {
		if (cap - *len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap + 1);
		}
		pump(f);
		ssize_t n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT);
		if (n > 0) {
			*len += (size_t)n;
			idle = 0;
		} else {
			idle++;
			usleep(1000);
		}
	}
	buf[*len] = '\0';
	return buf;
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_hello_and_snapshot(void **state)
{
	struct fixture *f = *state;
	int fd = client(f);
	size_t len;
	char *out = read_all(f, fd, &len);
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_true(strncmp(out, "{\"msg\":\"hello\"", 14) == 0);
	assert_non_null(strstr(out, "\"station_id\":\"bench\""));
	assert_non_null(strstr(out, "\"msg\":\"tile\",\"port\":\"1-1.2\""));
	assert_non_null(strstr(out, "{\"msg\":\"snapshot-end\"}\n"));
	assert_int_equal(ctl_server_clients(f->srv), 1);
	free(out);
	close(fd);
	pump(f);
	assert_int_equal(ctl_server_clients(f->srv), 0);
	/* A second engine on the same path is refused while this one answers. */
	struct ctl_server *other;
	struct ctl_server_opts o = { .path = f->path, .model = &f->model, .info = &f->info,
				     .handler = handler };
	assert_int_equal(ctl_server_new(&o, &other), -EADDRINUSE);
}

static void test_stalled_viewer_resyncs(void **state)
{
	struct fixture *f = *state;
	int fd = client(f);
	struct event ev = { .type = EVENT_LOG, .phase = PHASE_PROVISION };
	char text[200];
	size_t len;

	snprintf(ev.port, sizeof(ev.port), "1-1.2");
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	ev.text = text;
	/* The viewer reads nothing: 20000 events (about 5 MB) must not block. */
	for (uint64_t i = 0; i < 20000; i++) {
		ev.seq = 100 + i;
		model_apply(&f->model, &ev);
		ctl_server_event(f->srv, &ev);
	}
	char *out = read_all(f, fd, &len);
	assert_int_equal(count(out, "\"msg\":\"snapshot-begin\""), 2);
	assert_non_null(strstr(out, "\"msg\":\"info\""));
	char *info = strstr(out, "{\"msg\":\"info\"");
	assert_non_null(info);
	*strchr(info, '\n') = '\0';
	assert_null(strstr(info, "\"events_dropped\":0}"));  /* it says it missed events */
	assert_non_null(strstr(info, "\"events_dropped\":"));
	info[strlen(info)] = '\n';
	assert_true(len < (2u << 20));           /* the drop happened */
	/* After the resync, live events flow again. */
	ev.seq = 999999;
	ctl_server_event(f->srv, &ev);
	free(out);
	out = read_all(f, fd, &len);
	assert_non_null(strstr(out, "\"seq\":999999"));
	free(out);
	close(fd);
}

static void test_commands(void **state)
{
	struct fixture *f = *state;
	int rw = client(f), ro = client(f);
	size_t len;
	char *out;
	const char *cmd = "{\"cmd\":\"retry\",\"id\":7,\"port\":\"1-1.2\"}\n";

	free(read_all(f, rw, &len));
	free(read_all(f, ro, &len));
	assert_int_equal(send(ro, "{\"msg\":\"read-only\"}\n", 20, 0), 20);
	assert_int_equal(send(ro, cmd, strlen(cmd), 0), (ssize_t)strlen(cmd));
	out = read_all(f, ro, &len);
	assert_non_null(strstr(out, "\"id\":7,\"rc\":-1,\"error\":\"EPERM\""));
	assert_int_equal(f->calls, 0);
	free(out);

	assert_int_equal(send(rw, cmd, strlen(cmd), 0), (ssize_t)strlen(cmd));
	const char *bad = "{\"cmd\":\"retry\",\"id\":8}\n";
	assert_int_equal(send(rw, bad, strlen(bad), 0), (ssize_t)strlen(bad));
	out = read_all(f, rw, &len);
	assert_int_equal(f->calls, 1);
	assert_string_equal(f->last.port, "1-1.2");
	assert_non_null(strstr(out, "\"id\":7,\"rc\":-19,\"error\":\"ENODEV\",\"text\":\"did retry\""));
	assert_non_null(strstr(out, "\"id\":8,\"rc\":-22,\"error\":\"EINVAL\",\"text\":\"retry: needs a port\""));
	free(out);

	/* A line longer than any command: refused, then the connection closes. */
	char *big = malloc(CTL_CMD_LINE_MAX + 100);
	memset(big, 'a', CTL_CMD_LINE_MAX + 100);
	assert_int_equal(send(rw, big, CTL_CMD_LINE_MAX + 100, 0), CTL_CMD_LINE_MAX + 100);
	free(big);
	out = read_all(f, rw, &len);
	assert_non_null(strstr(out, "EMSGSIZE"));
	free(out);
	assert_int_equal(ctl_server_clients(f->srv), 1);
	close(rw);
	close(ro);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_and_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_viewer_resyncs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
