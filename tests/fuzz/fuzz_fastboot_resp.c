/* fuzz_fastboot_resp: fastboot response parsing (src/proto/fastboot.c).
 * The whole input goes through fb_parse_response(); then it is cut into
 * records `u8 length + bytes`, each returned by one bulk IN, and fed to
 * fb_command_raw(), getvar, oem (INFO lines, small answer buffers) and a
 * download, as a misbehaving gadget would; fb_parse_size() gets the input as
 * a string. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/fastboot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
	const uint8_t *p, *end;
};

static int f_control(struct transport *t, const struct usb_ctrl_setup *s, void *d, unsigned ms)
{
	(void)t; (void)s; (void)d; (void)ms;
	return -EOPNOTSUPP;
}

static int f_bulk_out(struct transport *t, const void *d, size_t n, unsigned ms)
{
	(void)t; (void)d; (void)ms;
	if (n == 0)
		abort(); /* never a zero-length packet */
	return (int)n;
}

static int f_bulk_in(struct transport *t, void *d, size_t n, unsigned ms)
{
	struct feed *f = t->priv;
	size_t len;

	(void)ms;
	if (f->p >= f->end)
		return -ETIMEDOUT;
	len = f->p[0];
	f->p++;
	if (len > (size_t)(f->end - f->p))
		len = (size_t)(f->end - f->p);
	if (len > n)
		return -EOVERFLOW;
	memcpy(d, f->p, len);
	f->p += len;
	return (int)len;
}

static void f_close(struct transport *t)
{
	(void)t;
}

static void on_info(void *usrptr, const char *line)
{
	(void)usrptr;
	if (strlen(line) > FB_MSG_MAX)
		abort();
}

static const struct transport_ops ops = { f_control, f_bulk_out, f_bulk_in, f_close };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = { data, data + size };
	struct transport t = { .ops = &ops, .kind = TRANSPORT_SIM, .priv = &f };
	struct fb fb;
	struct fb_lines lines = { 0 };
	enum fb_status st;
	char msg[FB_MSG_MAX + 1], resp[64], val[17], str[80];
	uint64_t dsz = 0, m;
	static uint8_t blob[3000];

	fb_parse_response(data, size, &st, msg, sizeof(msg), &dsz);
	memcpy(str, data, size < sizeof(str) - 1 ? size : sizeof(str) - 1);
	str[size < sizeof(str) - 1 ? size : sizeof(str) - 1] = '\0';
	if (fb_parse_size(str, &m) == 0 && !strchr("0123456789", str[0]))
		abort();
	if (fb_init(&fb, &t, NULL) < 0)
		abort();
	fb.o.chunk_size = 1024;
	fb_command_raw(&fb, "getvar:all", 0, resp, sizeof(resp), &lines, NULL);
	if (strlen(resp) >= sizeof(resp))
		abort();
	fb_lines_free(&lines);
	fb_set_callbacks(&fb, on_info, NULL, NULL);
	if (fb_getvar(&fb, "serialno", val, sizeof(val)) == 0 && strlen(val) >= sizeof(val))
		abort();
	fb_oem(&fb, "bmap-verify mmcblk0p2", 0, &lines, val, sizeof(val));
	for (size_t i = 0; i < lines.n; i++)
		if (strlen(lines.v[i]) > FB_MSG_MAX)
			abort();
	fb_lines_free(&lines);
	fb_get_max_download(&fb, &m);
	fb_download(&fb, blob, sizeof(blob));
	fb_download_abort(&fb);
	fb_flash(&fb, "mmcblk0p1");
	fb_fini(&fb);
	return 0;
}
