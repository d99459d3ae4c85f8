/* vpi/tcpfront: fastboot over TCP for the virtual Pi (spec §2): FB01
 * handshake, 8-byte big-endian length frames, a sequential accept loop. */
#ifndef RPI_SB_VPI_TCPFRONT_H
#define RPI_SB_VPI_TCPFRONT_H

#include <signal.h>
#include <stdint.h>

#include "vpi/board.h"
#include "vpi/fastbootd.h"

#define VPI_TCP_HANDSHAKE_MS 2000

struct vpi_tcpfront_opts {
	const char *bind_addr;       /* NULL = 127.0.0.1 (loopback only) */
	uint16_t port;               /* 0 = pick a free port (see bound_port) */
	enum vpi_fb_mode mode;       /* FULL (`-i tcp`) or DATA_PLANE (`-i usb+tcp`) */
};

struct vpi_tcpfront;

int vpi_tcpfront_listen(const struct vpi_tcpfront_opts *o, struct vpi_tcpfront **out);
uint16_t vpi_tcpfront_port(const struct vpi_tcpfront *t);
/* Serve connections one at a time, each a fresh fastbootd session, until
 * *@stop becomes non-zero (checked at least every 200 ms) or the board ends
 * for good (reboot/shutdown/unplug: returned as vpi_fastbootd_serve does). */
int vpi_tcpfront_run(struct vpi_tcpfront *t, struct vpi_board *b, volatile sig_atomic_t *stop);
void vpi_tcpfront_close(struct vpi_tcpfront *t);

#endif
