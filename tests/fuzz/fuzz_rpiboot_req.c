/* fuzz_rpiboot_req: the rpiboot file server (src/proto/rpiboot.c) fed with
 * device FileMessages from the input. The input is a list of records
 * `u16 little-endian length + bytes`; each record is the data stage of one
 * "read FileMessage" control IN. Control OUT and bulk OUT always succeed; when
 * the records run out the device "unplugs" (-ENODEV). Files are served from a
 * small payload directory created once, beside a file outside it that must
 * never be sent. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/rpiboot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
	const uint8_t *p, *end;
	uint64_t bulk_bytes;
};

static int dirfd_ = -1;
static uint64_t secret_size;
static char top_dir[64];

static int f_control(struct transport *t, const struct usb_ctrl_setup *s, void *buf, unsigned ms)
{
	struct feed *f = t->priv;
	size_t n;

	(void)ms;
	if (!(s->bmRequestType & 0x80)) {
		/* a size reply or announce of the outside file's size = a leak */
		if (((uint32_t)s->wIndex << 16 | s->wValue) == secret_size)
			abort();
		return 0;
	}
	if (f->end - f->p < 2)
		return -ENODEV;
	n = (size_t)(f->p[0] | f->p[1] << 8);
	f->p += 2;
	if (n > (size_t)(f->end - f->p))
		n = (size_t)(f->end - f->p);
	if (n > s->wLength)
		n = s->wLength;
	memcpy(buf, f->p, n);
	f->p += n;
	return (int)n;
}

static int f_bulk_out(struct transport *t, const void *d, size_t n, unsigned ms)
{
	struct feed *f = t->priv;

	(void)d;
	(void)ms;
	if (n == 0 || n > RPIBOOT_BULK_CHUNK)
		abort(); /* no zero-length packets, no oversized transfers */
	f->bulk_bytes += n;
	return (int)n;
}

static int f_bulk_in(struct transport *t, void *d, size_t n, unsigned ms)
{
	(void)t; (void)d; (void)n; (void)ms;
	abort(); /* rpiboot never reads bulk IN */
}

static void f_close(struct transport *t)
{
	(void)t;
}

static const struct transport_ops ops = { f_control, f_bulk_out, f_bulk_in, f_close };

static void put(const char *dir, const char *name, size_t n)
{
	char path[1024];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	if (!fp)
		abort();
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), fp);
	fclose(fp);
}

static void cleanup_dir(void)
{
	static const char *const files[] = {
		"payload/link-out", "payload/2711/bootmain", "payload/pieeprom.bin",
		"payload/config.txt", "secret", "payload/2711", "payload", "",
	};
	char path[128];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", top_dir, files[i]);
		if (unlink(path) < 0)
			rmdir(path);
	}
}

static void setup_dir(void)
{
	char top[] = "/tmp/fuzz_rpiboot.XXXXXX", dir[64], path[128];

	if (!mkdtemp(top))
		abort();
	snprintf(top_dir, sizeof(top_dir), "%s", top);
	atexit(cleanup_dir);
	snprintf(dir, sizeof(dir), "%s/payload", top);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/2711", dir);
	mkdir(path, 0755);
	put(top, "secret", 7777);
	secret_size = 7777;
	put(dir, "config.txt", 40);
	put(dir, "pieeprom.bin", 20000);
	put(dir, "2711/bootmain", 100);
	snprintf(path, sizeof(path), "%s/link-out", dir);
	if (symlink("../secret", path) < 0)
		abort();
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	if (dirfd_ < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = { data, data + size, 0 };
	struct transport t = { .ops = &ops, .kind = TRANSPORT_SIM, .vid = 0x0a5c, .pid = 0x2711, .priv = &f };
	struct rpiboot_metadata md;
	struct rpiboot_status st;
	struct rpiboot_opts o;
	uint32_t cmd;
	char name[RPIBOOT_FNAME_LEN];

	if (dirfd_ < 0)
		setup_dir();
	rpiboot_filemsg_parse(data, size, &cmd, name);
	rpiboot_opts_default(&o);
	rpiboot_metadata_init(&md);
	rpiboot_serve_files(&t, dirfd_, &md, &o, NULL, NULL, &st);
	if (st.files_served == 0 && f.bulk_bytes)
		abort(); /* bytes went out without a served file */
	rpiboot_metadata_clear(&md);
	return 0;
}
