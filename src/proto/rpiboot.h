/* rpiboot: the host side of the Raspberry Pi USB boot protocol over a
 * struct transport (spec rpiboot.md §2-4, §8-10).
 *
 * Two phases, one per USB appearance of the board:
 *   ROM (iSerialNumber index 0 or 3): rpiboot_send_second_stage() uploads the
 *     BootMessage and the second-stage image. The ROM's 4-byte status word is
 *     informational only: success is proven by the same port presenting a
 *     stage-2 device afterwards (spec §3.2), which the caller watches for.
 *   stage 2 (any other index): rpiboot_serve_files() answers the board's file
 *     requests from its payload directory and collects its metadata pushes.
 * Every call blocks with bounded timeouts and returns 0 or a negative errno;
 * a failure is described in struct rpiboot_status (board, step, error). */
#ifndef RPI_SB_PROTO_RPIBOOT_H
#define RPI_SB_PROTO_RPIBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/rpiboot_meta.h"
#include "transport/transport.h"

#define RPIBOOT_VID 0x0a5c
#define RPIBOOT_BOOTMSG_LEN 24
#define RPIBOOT_SIGNATURE_LEN 20
#define RPIBOOT_FILEMSG_LEN 260
#define RPIBOOT_FNAME_LEN 256          /* fname field, NUL included */
#define RPIBOOT_BULK_CHUNK 16384       /* usbfs memory is shared by all devices */
#define RPIBOOT_SECOND_STAGE_MAX (4u << 20) /* sanity bound; signed images are <= 110 KiB */
#define RPIBOOT_FILE_MAX 0x7fffffffu   /* the device keeps sizes in an int (pitfall P11) */

enum rpiboot_cmd {
	RPIBOOT_CMD_GET_FILE_SIZE = 0,
	RPIBOOT_CMD_READ_FILE = 1,
	RPIBOOT_CMD_DONE = 2,
};

/* Where an exchange was when it stopped: named in every error. */
enum rpiboot_step {
	RPIBOOT_STEP_NONE,
	RPIBOOT_STEP_BOOTMSG_ANNOUNCE,
	RPIBOOT_STEP_BOOTMSG_BULK,
	RPIBOOT_STEP_IMAGE_ANNOUNCE,
	RPIBOOT_STEP_IMAGE_BULK,
	RPIBOOT_STEP_STATUS_READ,
	RPIBOOT_STEP_FILEMSG_READ,
	RPIBOOT_STEP_FILE_OPEN,
	RPIBOOT_STEP_SIZE_REPLY,
	RPIBOOT_STEP_FILE_ANNOUNCE,
	RPIBOOT_STEP_FILE_BULK,
	RPIBOOT_STEP_ZERO_ACK,
	RPIBOOT_STEP_DONE,
};

/* How a file-server session ended. */
enum rpiboot_end {
	RPIBOOT_END_NONE,
	RPIBOOT_END_DONE,        /* Done command: success */
	RPIBOOT_END_EMPTY_NAME,  /* empty file name, acknowledged: success */
	RPIBOOT_END_DISCONNECT,  /* device left the bus (-ENODEV / -EIO) */
	RPIBOOT_END_ERROR,       /* any other failure */
};

enum rpiboot_log_level { RPIBOOT_LOG_ERR, RPIBOOT_LOG_WARN, RPIBOOT_LOG_INFO, RPIBOOT_LOG_DEBUG };

typedef void (*rpiboot_log_fn)(void *usrptr, enum rpiboot_log_level level, const char *msg);

struct rpiboot_opts {
	unsigned ctrl_timeout_ms;   /* control OUT: announce, size reply, zero ack (ref. 1000) */
	unsigned read_timeout_ms;   /* control IN: FileMessage, status (ref. 20000) */
	unsigned bulk_timeout_ms;   /* per bulk chunk (ref. 5000) */
	unsigned read_retries;      /* consecutive FileMessage read timeouts tolerated (ref: forever) */
	unsigned garbage_max;       /* consecutive unreadable FileMessages tolerated */
	/* BCM2835/2837 signed boot: 20 bytes copied into BootMessage.signature; NULL = zeros. */
	const uint8_t *signature;
};

/* Reference-host timeouts; a bounded retry count instead of "forever". */
void rpiboot_opts_default(struct rpiboot_opts *o);

struct rpiboot_status {
	enum rpiboot_step step;     /* last step attempted */
	enum rpiboot_end end;
	int error;                  /* 0 or the negative errno returned */
	bool rom_status_valid;      /* the ROM answered the status read */
	uint32_t rom_status;        /* its value (0 = "Successful read") */
	unsigned files_served;      /* ReadFile answered with data */
	unsigned files_missing;     /* requests answered "not found" (size 0) */
	unsigned names_refused;     /* names refused by the payload-directory confinement */
	unsigned metadata_pushes;
	char msg[320];              /* human description of the failure, "" on success */
};

const char *rpiboot_step_name(enum rpiboot_step s);
const char *rpiboot_end_name(enum rpiboot_end e);

/* Second-stage file name for a boot-mode PID: bootcode.bin (2763/2764),
 * bootcode4.bin (2711), bootcode5.bin (2712); NULL for other PIDs. */
const char *rpiboot_second_stage_name(uint16_t pid);
/* Per-SoC subdirectory tried first in a payload dir: "2710", "2711", "2712". */
const char *rpiboot_soc_prefix(uint16_t pid);
/* true when a device descriptor's iSerialNumber index means "boot ROM". */
bool rpiboot_is_rom_stage(uint8_t iserial_index);

/* Upload BootMessage + image to a ROM-stage device. Returns 0 once every byte
 * was accepted (status word in st->rom_status when the ROM answered). */
int rpiboot_send_second_stage(struct transport *t, const void *img, size_t len,
			      const struct rpiboot_opts *o, struct rpiboot_status *st);

/* Run the stage-2 file server until Done, an empty name, or disconnect.
 * Files come only from payload_dirfd (then its <soc-prefix>/ subdir first).
 * Returns 0 on Done/empty name; -ENODEV when the device left the bus
 * (st->files_served tells whether it had been served: after a served session a
 * disconnect usually means it moved on; the caller confirms by its next
 * appearance); other negative errnos on protocol or I/O failure. */
int rpiboot_serve_files(struct transport *t, int payload_dirfd, struct rpiboot_metadata *md,
			const struct rpiboot_opts *o, rpiboot_log_fn log, void *usrptr,
			struct rpiboot_status *st);

/* FileMessage parsing, exposed for tests and the fuzz target.
 * buf/n: the bytes the control IN returned. On success fills *cmd and name
 * (RPIBOOT_FNAME_LEN bytes, NUL-terminated). -EBADMSG: fewer than 4 bytes or
 * an unknown command (session-level garbage); -ENAMETOOLONG: no NUL in the name. */
int rpiboot_filemsg_parse(const uint8_t *buf, size_t n, uint32_t *cmd, char *name);

/* Confinement check of a requested name: 0 if acceptable, -EACCES otherwise
 * (empty, absolute, "..", control or non-ASCII bytes, backslash, "//"). */
int rpiboot_name_check(const char *name);

/* Open a requested file beneath payload_dirfd (symlinks may not leave it).
 * Returns an fd and *size, -ENOENT if absent, -EACCES if refused, -EFBIG if
 * too large for the protocol. */
int rpiboot_open_payload(int payload_dirfd, const char *soc_prefix, const char *name,
			 uint64_t *size);

#endif
