/* fbclient_cli: a small command-line wrapper around the station's fastboot
 * client (src/proto/fastboot.c, sparse.c) over the TCP transport, for the
 * integration tests and benchmarks (the station itself has no such command).
 *
 *   fbclient_cli [-S MAX_DOWNLOAD] tcp:HOST[:PORT] getvar NAME
 *   fbclient_cli ... oem ARG...         INFO lines printed as "(bootloader) ..."
 *   fbclient_cli ... erase PART
 *   fbclient_cli ... flash PART FILE    sparse or raw FILE, split to MAX_DOWNLOAD
 *   fbclient_cli ... download FILE
 *   fbclient_cli ... raw COMMAND
 * Exit 0 on success, 1 when the device or the transport failed, 2 on usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/fastboot.h"
#include "proto/sparse.h"
#include "transport/tcp.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_info(void *usrptr, const char *line)
{
	(void)usrptr;
	printf("(bootloader) %s\n", line);
}

static int usage(void)
{
	fprintf(stderr, "usage: fbclient_cli [-S MAX_DOWNLOAD] tcp:HOST[:PORT] "
			"getvar NAME | oem ARG... | erase PART | flash PART FILE | download FILE | raw CMD\n");
	return 2;
}

static int do_flash(struct fb *fb, const char *part, const char *path, uint64_t maxdl)
{
	struct sparse_file *s = NULL;
	struct stat sb;
	double t0 = now_s(), dt;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0 || fstat(fd, &sb) < 0) {
		fprintf(stderr, "fbclient_cli: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	r = sparse_open_image(fd, &s);
	if (r < 0) {
		fprintf(stderr, "fbclient_cli: %s is neither a sparse nor a raw image\n", path);
		close(fd);
		return r;
	}
	r = fb_flash_sparse(fb, part, s, maxdl);
	dt = now_s() - t0;
	if (r == 0)
		fprintf(stderr, "flashed %s (%lld bytes) to %s in %.3f s (%.1f MiB/s)\n", path,
			(long long)sb.st_size, part, dt, (double)sb.st_size / (1 << 20) / dt);
	sparse_destroy_image(s);
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	struct transport *t = NULL;
	struct fb fb;
	char host[256], resp[FB_MSG_MAX + 1];
	uint16_t port;
	uint64_t maxdl = 0;
	int i = 1, r;

	if (argc > 2 && strcmp(argv[1], "-S") == 0) {
		if (fb_parse_size(argv[2], &maxdl) < 0)
			return usage();
		i = 3;
	}
	if (argc - i < 2 || transport_tcp_parse_spec(argv[i], host, sizeof(host), &port) < 0)
		return usage();
	r = transport_tcp_open(host, port, 5000, &t);
	if (r < 0) {
		fprintf(stderr, "fbclient_cli: cannot reach %s: %s\n", argv[i], strerror(-r));
		return 1;
	}
	fb_init(&fb, t, NULL);
	fb_set_callbacks(&fb, print_info, NULL, NULL);
	i++;
	if (strcmp(argv[i], "getvar") == 0 && argc - i == 2) {
		r = fb_getvar(&fb, argv[i + 1], resp, sizeof(resp));
		if (r == 0)
			printf("%s: %s\n", argv[i + 1], resp);
	} else if (strcmp(argv[i], "oem") == 0 && argc - i >= 2) {
		char args[FB_CMD_MAX + 1] = "";
		size_t n = 0;

		for (int j = i + 1; j < argc; j++)
			n += (size_t)snprintf(args + n, n < sizeof(args) ? sizeof(args) - n : 0, "%s%s",
					      j > i + 1 ? " " : "", argv[j]);
		r = n < sizeof(args) ? fb_oem(&fb, args, 0, NULL, resp, sizeof(resp)) : -E2BIG;
		if (r == 0 && resp[0])
			printf("OKAY %s\n", resp);
	} else if (strcmp(argv[i], "erase") == 0 && argc - i == 2) {
		r = fb_erase(&fb, argv[i + 1]);
	} else if (strcmp(argv[i], "flash") == 0 && argc - i == 3) {
		r = do_flash(&fb, argv[i + 1], argv[i + 2], maxdl);
	} else if (strcmp(argv[i], "download") == 0 && argc - i == 2) {
		int fd = open(argv[i + 1], O_RDONLY | O_CLOEXEC);
		struct stat sb;

		r = fd < 0 || fstat(fd, &sb) < 0 ? -errno : fb_download_fd(&fb, fd, 0, (uint64_t)sb.st_size);
		if (fd >= 0)
			close(fd);
	} else if (strcmp(argv[i], "raw") == 0 && argc - i == 2) {
		r = fb_command_raw(&fb, argv[i + 1], 0, resp, sizeof(resp), NULL, NULL);
		if (r == 0)
			printf("OKAY %s\n", resp);
	} else {
		fb_fini(&fb);
		transport_close(t);
		return usage();
	}
	if (r < 0)
		fprintf(stderr, "fbclient_cli: %s\n", fb_last_error(&fb)[0] ? fb_last_error(&fb) : strerror(-r));
	fb_fini(&fb);
	transport_close(t);
	return r < 0 ? 1 : 0;
}
