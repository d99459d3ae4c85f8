/* test_fastboot_tcp: the TCP transport and the fastboot client against a
 * minimal in-test fastboot sink (FB01 handshake, 8-byte big-endian frames),
 * including a resparsed 64 MiB image checked with simg2img, and a loopback
 * throughput figure (printed, not asserted). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/fastboot.h"
#include "proto/sparse.h"
#include "transport/tcp.h"

#include <sparse/sparse.h> /* libsparse; configure adds its include dir */

/* ---- the sink ---- */

enum sink_mode { SINK_NORMAL, SINK_BAD_HELLO };

struct sink {
	int lfd;
	uint16_t port;
	enum sink_mode mode;
	uint64_t max_download;
	const char *piece_dir;   /* store each download as piece%02d.simg; NULL = discard */
	int pieces;
	int flashes;
	uint64_t bytes;
	pthread_t th;
};

static int rd(int fd, void *b, size_t n)
{
	uint8_t *p = b;

	while (n) {
		ssize_t r = read(fd, p, n);

		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int wr_frame(int fd, const void *b, size_t n)
{
	uint8_t h[8];

	for (int i = 0; i < 8; i++)
		h[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	if (write(fd, h, 8) != 8 || (n && write(fd, b, n) != (ssize_t)n))
		return -1;
	return 0;
}

static int wr_str(int fd, const char *s)
{
	return wr_frame(fd, s, strlen(s));
}

static void *sink_main(void *arg)
{
	struct sink *k = arg;
	int fd = accept(k->lfd, NULL, NULL);
	uint8_t hdr[8], *buf = malloc((4 << 20) + 1);
	uint64_t remaining = 0;
	int piece_fd = -1;

	if (fd < 0 || !buf)
		goto out;
	if (rd(fd, hdr, 4) || memcmp(hdr, "FB01", 4))
		goto out;
	if (write(fd, k->mode == SINK_BAD_HELLO ? "XX01" : "FB01", 4) != 4)
		goto out;
	for (;;) {
		uint64_t len = 0;

		if (rd(fd, hdr, 8))
			break;
		for (int i = 0; i < 8; i++)
			len = len << 8 | hdr[i];
		if (len > (4 << 20) || rd(fd, buf, (size_t)len))
			break;
		if (remaining) {
			if (len > remaining)
				break;
			if (piece_fd >= 0 && write(piece_fd, buf, (size_t)len) != (ssize_t)len)
				break;
			remaining -= len;
			k->bytes += len;
			if (remaining == 0) {
				if (piece_fd >= 0)
					close(piece_fd);
				piece_fd = -1;
				wr_str(fd, "OKAY");
			}
			continue;
		}
		buf[len] = '\0';
		if (strcmp((char *)buf, "getvar:max-download-size") == 0) {
			char r[32];

			snprintf(r, sizeof(r), "OKAY0x%" PRIx64, k->max_download);
			wr_str(fd, r);
		} else if (strcmp((char *)buf, "getvar:version") == 0) {
			wr_str(fd, "INFOhello");
			wr_str(fd, "OKAY0.4");
		} else if (strncmp((char *)buf, "download:", 9) == 0 && len == 17) {
			char r[32];

			remaining = strtoull((char *)buf + 9, NULL, 16);
			if (remaining == 0 || remaining > k->max_download) {
				remaining = 0;
				wr_str(fd, "FAILInvalid size");
				continue;
			}
			if (k->piece_dir) {
				char path[256];

				snprintf(path, sizeof(path), "%s/piece%02d.simg", k->piece_dir, k->pieces);
				piece_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			}
			k->pieces++;
			snprintf(r, sizeof(r), "DATA%08" PRIx64, remaining);
			wr_str(fd, r);
		} else if (strncmp((char *)buf, "flash:", 6) == 0) {
			k->flashes++;
			wr_str(fd, "OKAYFlashing succeeded");
		} else if (strcmp((char *)buf, "upload") == 0) {
			memset(buf, 'u', 1000);
			wr_str(fd, "DATA000003e8");
			wr_frame(fd, NULL, 0); /* a zero-length frame is skipped */
			wr_frame(fd, buf, 1000);
			wr_str(fd, "OKAY");
		} else {
			char r[300];

			snprintf(r, sizeof(r), "FAILUnrecognized command %.200s", (char *)buf);
			wr_str(fd, r);
		}
	}
out:
	if (piece_fd >= 0)
		close(piece_fd);
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void sink_start(struct sink *k)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	k->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(k->lfd >= 0);
	assert_int_equal(bind(k->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(k->lfd, 1), 0);
	assert_int_equal(getsockname(k->lfd, (struct sockaddr *)&a, &al), 0);
	k->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&k->th, NULL, sink_main, k), 0);
}

static void sink_stop(struct sink *k)
{
	pthread_join(k->th, NULL);
	close(k->lfd);
}

/* ---- tests ---- */

static void test_spec_parse(void **state)
{
	char h[64];
	uint16_t p;

	(void)state;
	assert_int_equal(transport_tcp_parse_spec("tcp:192.168.1.5", h, sizeof(h), &p), 0);
	assert_string_equal(h, "192.168.1.5");
	assert_int_equal(p, 5554);
	assert_int_equal(transport_tcp_parse_spec("tcp:host:1234", h, sizeof(h), &p), 0);
	assert_int_equal(p, 1234);
	assert_int_equal(transport_tcp_parse_spec("tcp:[fe80::1]:99", h, sizeof(h), &p), 0);
	assert_string_equal(h, "fe80::1");
	assert_int_equal(p, 99);
	assert_int_equal(transport_tcp_parse_spec("tcp:fe80::1", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(transport_tcp_parse_spec("tcp:h:0", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(transport_tcp_parse_spec("tcp:h:99999", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(transport_tcp_parse_spec("tcp:", h, sizeof(h), &p), -EINVAL);
}

static void test_getvar_and_frames(void **state)
{
	struct sink k = { .max_download = 1 << 20 };
	struct transport *t;
	struct fb fb;
	char v[32];
	uint8_t buf[256];
	uint64_t dsz = 0;
	int got = 0, r;

	(void)state;
	sink_start(&k);
	assert_int_equal(transport_tcp_open("127.0.0.1", k.port, 2000, &t), 0);
	assert_int_equal(t->kind, TRANSPORT_TCP);
	assert_int_equal(fb_init(&fb, t, NULL), 0);
	assert_int_equal(fb_getvar(&fb, "version", v, sizeof(v)), 0);
	assert_string_equal(v, "0.4");
	assert_int_equal(fb_getvar(&fb, "nosuch", v, sizeof(v)), -EREMOTEIO);
	assert_string_equal(fb_fail_message(&fb), "Unrecognized command getvar:nosuch");
	{
		struct usb_ctrl_setup s = { 0xC0, 0, 4, 0, 4 };

		assert_int_equal(transport_control(t, &s, buf, 100), -EOPNOTSUPP);
	}
	/* A frame larger than the read is handed out over several reads. */
	assert_int_equal(fb_command_raw(&fb, "upload", 0, NULL, 0, NULL, &dsz), 0);
	assert_int_equal(dsz, 1000);
	while (got < 1000) {
		r = transport_bulk_in(t, buf, sizeof(buf), 2000);
		assert_true(r > 0 && r <= 256);
		assert_int_equal(buf[0], 'u');
		got += r;
	}
	assert_int_equal(got, 1000);
	assert_int_equal(transport_bulk_in(t, buf, sizeof(buf), 2000), 4);
	assert_memory_equal(buf, "OKAY", 4);
	fb_fini(&fb);
	transport_close(t);
	sink_stop(&k);
}

static void test_handshake_refused(void **state)
{
	struct sink k = { .mode = SINK_BAD_HELLO };
	struct transport *t = NULL;
	int lfd;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	(void)state;
	sink_start(&k);
	assert_int_equal(transport_tcp_open("127.0.0.1", k.port, 2000, &t), -EPROTO);
	assert_null(t);
	sink_stop(&k);
	/* nobody listening: refused at once, not retried forever */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	close(lfd);
	assert_int_equal(transport_tcp_open("127.0.0.1", ntohs(a.sin_port), 2000, &t), -ECONNREFUSED);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_throughput(void **state)
{
	const size_t len = 64 << 20;
	struct sink k = { .max_download = len };
	struct transport *t;
	struct fb fb;
	uint8_t *data = malloc(len);
	double t0, dt;
	const int rounds = 2;

	(void)state;
	assert_non_null(data);
	memset(data, 0xa5, len);
	sink_start(&k);
	assert_int_equal(transport_tcp_open("127.0.0.1", k.port, 2000, &t), 0);
	assert_int_equal(fb_init(&fb, t, NULL), 0);
	t0 = now_s();
	for (int i = 0; i < rounds; i++)
		assert_int_equal(fb_download(&fb, data, len), 0);
	dt = now_s() - t0;
	assert_int_equal(k.bytes, (uint64_t)len * rounds);
	printf("fastboot TCP loopback download: %d x %zu MiB in %.3f s = %.0f MiB/s\n", rounds,
	       len >> 20, dt, (double)(len * rounds) / (1 << 20) / dt);
	fb_fini(&fb);
	transport_close(t);
	sink_stop(&k);
	free(data);
}

static void test_flash_sparse_split(void **state)
{
	char dir[] = "/tmp/test_fbtcp.XXXXXX", raw[128], out[128], cmd[4096];
	struct sink k = { .max_download = 8 << 20 };
	struct transport *t;
	struct sparse_file *s;
	struct fb fb;
	uint8_t *blk = malloc(65536);
	uint32_t x = 99;
	int fd;
	size_t n;

	(void)state;
	if (system("command -v simg2img >/dev/null") != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(raw, sizeof(raw), "%s/raw.img", dir);
	snprintf(out, sizeof(out), "%s/out.img", dir);
	fd = open(raw, O_RDWR | O_CREAT | O_TRUNC, 0644);
	for (int i = 0; i < 1024; i++) { /* 64 MiB: 3/4 random, 1/4 zero */
		if (i % 4 == 3)
			memset(blk, 0, 65536);
		else
			for (size_t j = 0; j < 65536; j++) {
				x = x * 1664525u + 1013904223u;
				blk[j] = (uint8_t)(x >> 24);
			}
		assert_int_equal(write(fd, blk, 65536), 65536);
	}
	assert_int_equal(sparse_build_from_fd(fd, 0, 64 << 20, 4096, NULL, 0, SPARSE_ZERO_FILL, &s), 0);

	k.piece_dir = dir;
	sink_start(&k);
	assert_int_equal(transport_tcp_open("127.0.0.1", k.port, 2000, &t), 0);
	assert_int_equal(fb_init(&fb, t, NULL), 0);
	assert_int_equal(fb_flash_sparse(&fb, "mmcblk0", s, 0), 0); /* asks max-download-size */
	fb_fini(&fb);
	transport_close(t);
	sink_stop(&k);
	assert_true(k.pieces >= 6);
	assert_int_equal(k.flashes, k.pieces);

	n = (size_t)snprintf(cmd, sizeof(cmd), "simg2img");
	for (int i = 0; i < k.pieces; i++) {
		char p[160];
		struct stat sb;

		snprintf(p, sizeof(p), "%s/piece%02d.simg", dir, i);
		assert_int_equal(stat(p, &sb), 0);
		assert_true(sb.st_size <= 8 << 20);
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", p);
	}
	snprintf(cmd + n, sizeof(cmd) - n, " '%s' && cmp -s '%s' '%s'", out, raw, out);
	assert_int_equal(system(cmd), 0);
	sparse_file_destroy(s);
	close(fd);
	free(blk);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_parse),
		cmocka_unit_test(test_getvar_and_frames),
		cmocka_unit_test(test_handshake_refused),
		cmocka_unit_test(test_flash_sparse_split),
		cmocka_unit_test(test_throughput),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
