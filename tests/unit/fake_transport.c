/* fake_transport: scripted struct transport for the protocol unit tests
 * (rpiboot, fastboot, sparse). Single-threaded: the test's own thread. It is
 * written from the transport seam's contract, not from any device model. */
#include "fake_transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ft_step {
	enum ft_kind kind;
	struct usb_ctrl_setup setup;
	uint8_t *data;      /* expected OUT bytes, or the IN reply */
	size_t len;
	size_t done;        /* bulk OUT bytes consumed so far */
	bool compare;       /* compare bulk OUT bytes */
	int err;            /* non-zero: fail with this */
	size_t after;       /* bulk OUT error: bytes accepted before failing */
};

struct fake_transport {
	struct transport t;
	struct ft_step *steps;
	size_t n, cap, pos;
	size_t packet_size;
	char deviation[512];
	size_t max_out;
	unsigned zlp_outs, short_mid;
};

static void ft_close(struct transport *t)
{
	(void)t; /* the test owns the fake and frees it with ft_free() */
}

static int deviate(struct fake_transport *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int deviate(struct fake_transport *f, const char *fmt, ...)
{
	va_list ap;

	if (!f->deviation[0]) {
		int n = snprintf(f->deviation, sizeof(f->deviation), "step %zu: ", f->pos);

		va_start(ap, fmt);
		vsnprintf(f->deviation + n, sizeof(f->deviation) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

static struct ft_step *cur(struct fake_transport *f)
{
	return f->pos < f->n ? &f->steps[f->pos] : NULL;
}

static const char *kind_name(enum ft_kind k)
{
	static const char *const names[] = { "control OUT", "control IN", "bulk OUT", "bulk IN" };

	return names[k];
}

static int ft_control(struct transport *t, const struct usb_ctrl_setup *s, void *data,
		      unsigned timeout_ms)
{
	struct fake_transport *f = t->priv;
	struct ft_step *st = cur(f);
	enum ft_kind k = (s->bmRequestType & 0x80) ? FT_CTRL_IN : FT_CTRL_OUT;

	(void)timeout_ms;
	if (!st)
		return deviate(f, "unexpected %s (script finished)", kind_name(k));
	if (st->kind != k)
		return deviate(f, "got %s, expected %s", kind_name(k), kind_name(st->kind));
	if (st->err) {
		f->pos++;
		return st->err;
	}
	if (memcmp(&st->setup, s, sizeof(*s)) != 0)
		return deviate(f, "%s setup %02x %02x %04x %04x %04x, expected %02x %02x %04x %04x %04x",
			       kind_name(k), s->bmRequestType, s->bRequest, s->wValue, s->wIndex,
			       s->wLength, st->setup.bmRequestType, st->setup.bRequest,
			       st->setup.wValue, st->setup.wIndex, st->setup.wLength);
	f->pos++;
	if (k == FT_CTRL_IN) {
		size_t n = st->len < s->wLength ? st->len : s->wLength;

		memcpy(data, st->data, n);
		return (int)n;
	}
	return 0;
}

static int ft_bulk_out_cb(struct transport *t, const void *data, size_t len, unsigned timeout_ms)
{
	struct fake_transport *f = t->priv;
	struct ft_step *st = cur(f);
	size_t left;

	(void)timeout_ms;
	if (len == 0)
		f->zlp_outs++;
	if (len > f->max_out)
		f->max_out = len;
	if (!st)
		return deviate(f, "unexpected bulk OUT of %zu bytes (script finished)", len);
	if (st->kind != FT_BULK_OUT)
		return deviate(f, "got bulk OUT of %zu bytes, expected %s", len, kind_name(st->kind));
	if (st->err) {
		size_t take = st->after - st->done;

		if (take > len)
			take = len;
		st->done += take;
		if (st->done >= st->after) {
			f->pos++;
			return st->err;
		}
		return (int)take;
	}
	left = st->len - st->done;
	if (len > left)
		return deviate(f, "bulk OUT of %zu bytes overruns the expected phase (%zu left of %zu)",
			       len, left, st->len);
	if (st->compare && memcmp((const uint8_t *)st->data + st->done, data, len) != 0) {
		size_t i = 0;

		while (((const uint8_t *)data)[i] == st->data[st->done + i])
			i++;
		return deviate(f, "bulk OUT differs at byte %zu of the phase", st->done + i);
	}
	if (f->packet_size && len % f->packet_size && len != left)
		f->short_mid++;
	st->done += len;
	if (st->done == st->len)
		f->pos++;
	return (int)len;
}

static int ft_bulk_in_cb(struct transport *t, void *data, size_t len, unsigned timeout_ms)
{
	struct fake_transport *f = t->priv;
	struct ft_step *st = cur(f);

	(void)timeout_ms;
	if (!st)
		return deviate(f, "unexpected bulk IN (script finished)");
	if (st->kind != FT_BULK_IN)
		return deviate(f, "got bulk IN, expected %s", kind_name(st->kind));
	f->pos++;
	if (st->err)
		return st->err;
	if (st->len > len)
		return deviate(f, "bulk IN of %zu bytes asked, the device sends %zu (overflow)", len, st->len);
	memcpy(data, st->data, st->len);
	return (int)st->len;
}

static const struct transport_ops ft_ops = {
	.control = ft_control,
	.bulk_out = ft_bulk_out_cb,
	.bulk_in = ft_bulk_in_cb,
	.close = ft_close,
};

struct fake_transport *ft_new(enum transport_kind kind, uint16_t pid, size_t packet_size)
{
	struct fake_transport *f = calloc(1, sizeof(*f));

	if (!f)
		abort();
	f->t.ops = &ft_ops;
	f->t.kind = kind;
	f->t.vid = 0x0a5c;
	f->t.pid = pid;
	snprintf(f->t.serial, sizeof(f->t.serial), "ba7f425f");
	snprintf(f->t.port_path, sizeof(f->t.port_path), "1-1.3");
	f->t.ep_out = 0x01;
	f->t.ep_in = 0x81;
	f->t.priv = f;
	f->packet_size = packet_size;
	return f;
}

struct transport *ft_transport(struct fake_transport *f)
{
	return &f->t;
}

static struct ft_step *add(struct fake_transport *f, enum ft_kind k)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->steps = realloc(f->steps, f->cap * sizeof(*f->steps));
		if (!f->steps)
			abort();
	}
	memset(&f->steps[f->n], 0, sizeof(f->steps[0]));
	f->steps[f->n].kind = k;
	return &f->steps[f->n++];
}

static uint8_t *dupbytes(const void *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (!d)
		abort();
	if (n)
		memcpy(d, p, n);
	return d;
}

void ft_ctrl_out(struct fake_transport *f, uint8_t req_type, uint16_t value, uint16_t index,
		 uint16_t length)
{
	struct ft_step *s = add(f, FT_CTRL_OUT);

	s->setup = (struct usb_ctrl_setup){ req_type, 0, value, index, length };
}

void ft_ctrl_in(struct fake_transport *f, uint8_t req_type, uint16_t value, uint16_t index,
		uint16_t length, const void *reply, size_t n)
{
	struct ft_step *s = add(f, FT_CTRL_IN);

	s->setup = (struct usb_ctrl_setup){ req_type, 0, value, index, length };
	s->data = dupbytes(reply, n);
	s->len = n;
}

void ft_bulk_out(struct fake_transport *f, const void *bytes, size_t n)
{
	struct ft_step *s = add(f, FT_BULK_OUT);

	s->data = dupbytes(bytes, n);
	s->len = n;
	s->compare = true;
}

void ft_bulk_out_any(struct fake_transport *f, size_t n)
{
	struct ft_step *s = add(f, FT_BULK_OUT);

	s->len = n;
}

void ft_bulk_in(struct fake_transport *f, const void *reply, size_t n)
{
	struct ft_step *s = add(f, FT_BULK_IN);

	s->data = dupbytes(reply, n);
	s->len = n;
}

void ft_bulk_in_str(struct fake_transport *f, const char *reply)
{
	ft_bulk_in(f, reply, strlen(reply));
}

void ft_error(struct fake_transport *f, enum ft_kind kind, int err, size_t after)
{
	struct ft_step *s = add(f, kind);

	s->err = err;
	s->after = after;
	s->len = after;
}

int ft_verify(struct fake_transport *f)
{
	if (f->deviation[0]) {
		fprintf(stderr, "fake transport: %s\n", f->deviation);
		return -1;
	}
	if (f->pos != f->n) {
		fprintf(stderr, "fake transport: script not finished: stopped at step %zu of %zu (%s)\n",
			f->pos, f->n, kind_name(f->steps[f->pos].kind));
		return -1;
	}
	return 0;
}

size_t ft_max_bulk_out(const struct fake_transport *f)
{
	return f->max_out;
}

unsigned ft_zero_length_outs(const struct fake_transport *f)
{
	return f->zlp_outs;
}

unsigned ft_short_midphase(const struct fake_transport *f)
{
	return f->short_mid;
}

size_t ft_steps_left(const struct fake_transport *f)
{
	return f->n - f->pos;
}

void ft_free(struct fake_transport *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->steps[i].data);
	free(f->steps);
	free(f);
}
