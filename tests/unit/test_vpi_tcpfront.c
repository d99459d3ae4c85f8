/* test_vpi_tcpfront: fastboot over TCP framing of the virtual Pi (spec §2.1):
 * FB01 handshake (FB02 accepted and answered FB01, garbage closed), 8-byte
 * big-endian frames, zero-length frames skipped, an over-long command frame
 * read as 256 bytes plus the rest as the next command, fresh state per
 * connection, and a clean stop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vpi/board.h"
#include "vpi/fastbootd.h"
#include "vpi/tcpfront.h"

struct fx {
	char dir[64];
	struct vpi_board *b;
	struct vpi_tcpfront *t;
	pthread_t th;
	volatile sig_atomic_t stop;
	int rc;
};

static void *server(void *arg)
{
	struct fx *f = arg;
	f->rc = vpi_tcpfront_run(f->t, f->b, &f->stop);
	return NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vpi_board_opts o;
	struct vpi_tcpfront_opts to = { .port = 0, .mode = VPI_FB_MODE_FULL };

	vpi_board_opts_init(&o);
	o.faults.storage_bytes = 16u << 20;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vpi-tcp-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(vpi_board_open("cm5", f->dir, &o, &f->b), 0);
	assert_int_equal(vpi_tcpfront_listen(&to, &f->t), 0);
	assert_int_not_equal(vpi_tcpfront_port(f->t), 0);
	assert_int_equal(pthread_create(&f->th, NULL, server, f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	f->stop = 1;
	pthread_join(f->th, NULL);
	assert_int_equal(f->rc, 0);
	vpi_tcpfront_close(f->t);
	vpi_fastbootd_board_reset(f->b);
	vpi_board_close(f->b);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int dial(struct fx *f)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(vpi_tcpfront_port(f->t)) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void recv_n(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

static void send_frame(int fd, const void *p, size_t len)
{
	uint8_t h[8];
	for (int i = 0; i < 8; i++)
		h[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	assert_int_equal(send(fd, h, 8, 0), 8);
	if (len)
		assert_int_equal(send(fd, p, len, 0), (ssize_t)len);
}

/* Read one frame into a NUL-terminated string. */
static char *recv_frame(int fd)
{
	uint8_t h[8];
	uint64_t len = 0;
	char *p;

	recv_n(fd, h, 8);
	for (int i = 0; i < 8; i++)
		len = len << 8 | h[i];
	assert_true(len <= 256);
	p = calloc(1, len + 1);
	recv_n(fd, p, len);
	return p;
}

static void expect(int fd, const char *want)
{
	char *got = recv_frame(fd);
	assert_string_equal(got, want);
	free(got);
}

static void test_handshake(void **state)
{
	struct fx *f = *state;
	char hs[4], c;
	int fd;

	fd = dial(f);
	assert_int_equal(send(fd, "XX01", 4, 0), 4);
	assert_int_equal(recv(fd, &c, 1, 0), 0);          /* closed, no answer */
	close(fd);
	fd = dial(f);
	assert_int_equal(send(fd, "FB00", 4, 0), 4);       /* version must be >= 1 */
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
	fd = dial(f);
	assert_int_equal(send(fd, "FB02", 4, 0), 4);
	recv_n(fd, hs, 4);
	assert_memory_equal(hs, "FB01", 4);
	send_frame(fd, "getvar:version", 14);
	expect(fd, "OKAY0.4");
	close(fd);
}

static void test_frames(void **state)
{
	struct fx *f = *state;
	char hs[4], big[300];
	int fd = dial(f);

	assert_int_equal(send(fd, "FB01", 4, 0), 4);
	recv_n(fd, hs, 4);
	send_frame(fd, NULL, 0);                           /* skipped */
	send_frame(fd, "getvar:block-devices", 20);
	expect(fd, "OKAYmmcblk0");
	memset(big, 'x', sizeof(big));
	memcpy(big, "getvar:", 7);
	send_frame(fd, big, sizeof(big));                  /* 256 + 44 bytes: two commands */
	expect(fd, "FAILUnknown variable");
	expect(fd, "FAILUnrecognized command xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	/* A download split over several frames. */
	send_frame(fd, "download:00000010", 17);
	expect(fd, "DATA00000010");
	send_frame(fd, "0123456789", 10);
	send_frame(fd, "abcdef", 6);
	expect(fd, "OKAY");
	send_frame(fd, "upload", 6);
	expect(fd, "DATA00000010");
	expect(fd, "0123456789abcdef");
	expect(fd, "OKAY");
	send_frame(fd, "download:00000004", 17);
	expect(fd, "DATA00000004");
	close(fd);                                         /* staged data is dropped */

	/* A new connection gets a fresh device object: nothing staged. */
	fd = dial(f);
	assert_int_equal(send(fd, "FB01", 4, 0), 4);
	recv_n(fd, hs, 4);
	send_frame(fd, "upload", 6);
	expect(fd, "FAILInvalid size (0)");
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frames, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
