/* fake_transport: a scripted struct transport for protocol unit tests.
 *
 * A test lists the exchanges it expects, in order; the fake checks every call
 * the protocol code makes against the script and answers from it:
 *   ft_ctrl_out(setup)            a control OUT with exactly this setup packet
 *   ft_ctrl_in(setup, reply, n)   a control IN; answers n bytes (may be short)
 *   ft_bulk_out(bytes, n)         n bytes of bulk OUT, split over any number of
 *                                 transfers (each checked against the packet rules)
 *   ft_bulk_out_any(n)            n bytes of bulk OUT, content not compared
 *   ft_bulk_in(reply, n)          one bulk IN transfer answering n bytes
 *   ft_error(kind, err, after)    the next call of `kind` fails with err
 *                                 (for bulk OUT after accepting `after` bytes)
 * Any deviation makes the call return -EPROTO and is recorded; ft_verify()
 * then fails the test with the first deviation. */
#ifndef RPI_SB_TEST_FAKE_TRANSPORT_H
#define RPI_SB_TEST_FAKE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

enum ft_kind { FT_CTRL_OUT, FT_CTRL_IN, FT_BULK_OUT, FT_BULK_IN };

struct fake_transport;

/* A fresh fake; its struct transport is ft_transport(). packet_size: bulk
 * wMaxPacketSize used to check "only the last transfer of a data phase may be
 * short" (0 = no check). */
struct fake_transport *ft_new(enum transport_kind kind, uint16_t pid, size_t packet_size);
struct transport *ft_transport(struct fake_transport *f);

void ft_ctrl_out(struct fake_transport *f, uint8_t req_type, uint16_t value, uint16_t index,
		 uint16_t length);
void ft_ctrl_in(struct fake_transport *f, uint8_t req_type, uint16_t value, uint16_t index,
		uint16_t length, const void *reply, size_t n);
void ft_bulk_out(struct fake_transport *f, const void *bytes, size_t n);
void ft_bulk_out_any(struct fake_transport *f, size_t n);
void ft_bulk_in(struct fake_transport *f, const void *reply, size_t n);
void ft_bulk_in_str(struct fake_transport *f, const char *reply);
void ft_error(struct fake_transport *f, enum ft_kind kind, int err, size_t after);

/* 0 when the whole script was consumed without deviation; otherwise prints
 * the first deviation and returns -1. */
int ft_verify(struct fake_transport *f);
/* Diagnostics the packet-rule tests look at. */
size_t ft_max_bulk_out(const struct fake_transport *f);
unsigned ft_zero_length_outs(const struct fake_transport *f);
unsigned ft_short_midphase(const struct fake_transport *f);
size_t ft_steps_left(const struct fake_transport *f);
/* Frees the fake (also reachable via transport_close). */
void ft_free(struct fake_transport *f);

#endif
