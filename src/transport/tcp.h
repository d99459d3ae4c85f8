/* transport/tcp: fastboot over TCP (spec fastboot.md §2.1) as a struct transport.
 *
 * bulk_out sends one frame (8-byte big-endian length + bytes); bulk_in returns
 * the bytes of the next frame (a frame larger than the caller's buffer is
 * handed out over several calls; zero-length frames are skipped); control
 * transfers are -EOPNOTSUPP. A closed or reset connection is -ENODEV. */
#ifndef RPI_SB_TRANSPORT_TCP_H
#define RPI_SB_TRANSPORT_TCP_H

#include <stdint.h>

#include "transport/transport.h"

#define TCP_FASTBOOT_PORT 5554
#define TCP_HANDSHAKE_TIMEOUT_MS 2000

/* Connect to host:port within timeout_ms, exchange the FB01 handshake (the
 * reply must come within 2 s), and return a transport in *out. host is a name
 * or a numeric IPv4/IPv6 address. Returns 0 or a negative errno
 * (-ECONNREFUSED, -ETIMEDOUT, -EPROTO for a bad handshake, ...). */
int transport_tcp_open(const char *host, uint16_t port, unsigned timeout_ms, struct transport **out);

/* Parse "tcp:HOST[:PORT]" (or "HOST[:PORT]"; IPv6 as "[addr]:port") into host
 * (hostsz bytes) and *port (default 5554). -EINVAL when malformed. */
int transport_tcp_parse_spec(const char *spec, char *host, size_t hostsz, uint16_t *port);

#endif
