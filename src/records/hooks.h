/* hooks: the operator's customisation scripts, with the names, positional
 * arguments and environment of Raspberry Pi's provisioner.
 *
 *   <hooks_dir>/<provisioner>-<stage>.sh
 *   provisioner: sb-provisioner | fde-provisioner | naked-provisioner
 *   stage:       bootstrap | provision-started | bootfs-mounted | rootfs-mounted |
 *                post-flash | provision-failed
 *
 * A hook runs without a shell in between (fork + execve of the file, so its
 * #! line decides the interpreter), with a clean environment, stdin from
 * /dev/null, no inherited descriptors, its stdout and stderr logged line by
 * line into the board's log, and a time limit after which its whole process
 * group gets SIGTERM and, HOOK_KILL_GRACE_MS later, SIGKILL. doc/flags-and-hooks.md
 * has the table of stages, arguments and variables. */
#ifndef RPI_SB_RECORDS_HOOKS_H
#define RPI_SB_RECORDS_HOOKS_H

#include <stdbool.h>
#include <stddef.h>

#include "records/boardlog.h"

#define HOOK_KILL_GRACE_MS 2000

enum hook_provisioner {
	HOOK_PROV_SB,
	HOOK_PROV_FDE,
	HOOK_PROV_NAKED,
	HOOK_PROV_COUNT
};

enum hook_stage {
	HOOK_BOOTSTRAP,           /* board found, before EEPROM work */
	HOOK_PROVISION_STARTED,   /* provisioner starts */
	HOOK_BOOTFS_MOUNTED,      /* boot file system of the image mounted */
	HOOK_ROOTFS_MOUNTED,      /* right after bootfs-mounted */
	HOOK_POST_FLASH,          /* written and verified; manufacturing fields known */
	HOOK_PROVISION_FAILED,    /* any phase failed (the caller ignores its result) */
	HOOK_STAGE_COUNT
};

enum hook_failed_context {
	HOOK_FAILED_BOOTSTRAP,     /* PROVISION_FAILED_CONTEXT=bootstrap */
	HOOK_FAILED_PROVISIONING,  /* PROVISION_FAILED_CONTEXT=provisioning */
};

/* One extra variable (post-flash manufacturing field). NULL value = empty. */
struct hook_field {
	const char *key;
	const char *value;
};

/* The upper-case manufacturing field names post-flash may be given. */
extern const char *const hooks_post_flash_fields[];
extern const size_t hooks_post_flash_fields_len;

/* What the caller knows about the board; NULL means unknown (passed as ""). */
struct hook_call {
	const char *hooks_dir;            /* config [paths] hooks_dir */
	enum hook_provisioner prov;
	enum hook_stage stage;
	unsigned timeout_s;               /* config [timeouts] hook; >= 1 */

	const char *serial;               /* TARGET_DEVICE_SERIAL */
	const char *family;               /* TARGET_DEVICE_FAMILY: USB PID, e.g. 2712 */
	const char *usb_path;             /* TARGET_USB_PATH: e.g. 1-1.2 */
	const char *device_path;          /* TARGET_DEVICE_PATH: e.g. /dev/bus/usb/001/005 */
	const char *fastboot_specifier;   /* FASTBOOT_DEVICE_SPECIFIER */
	const char *storage_type;         /* RPI_DEVICE_STORAGE_TYPE: sd|emmc|nvme */
	const char *storage_device;       /* argument "storage": the block device, e.g. mmcblk0 */
	const char *os_kind;              /* GOLD_MASTER_OS_KIND; NULL = "image" */
	const char *boot_mount;           /* bootfs-/rootfs-mounted arguments */
	const char *rootfs_mount;

	enum hook_failed_context failed_context;  /* provision-failed only */
	bool failed_permanent;                    /* PROVISION_FAILED_PERMANENT=1 */

	const struct hook_field *fields;  /* post-flash, bootfs-/rootfs-mounted: names from hooks_post_flash_fields */
	size_t n_fields;
};

enum hook_outcome {
	HOOK_OK,                      /* ran, exit status 0 */
	HOOK_FAILED,                  /* exit status != 0, killed by a signal, or not executable by the kernel */
	HOOK_TIMED_OUT,               /* ran past the timeout: process group terminated */
	HOOK_SKIPPED_ABSENT,          /* no such file: nothing to do */
	HOOK_SKIPPED_NOT_EXECUTABLE,  /* present but not executable: disabled (logged) */
};

struct hook_result {
	enum hook_outcome outcome;
	int exit_code;      /* exit status when it exited, else -1 */
	int signal;         /* signal that ended it, else 0 */
	int exec_errno;     /* execve's errno when the file could not be executed, else 0 */
	long duration_ms;   /* wall time from start to reaped */
};

const char *hooks_provisioner_name(enum hook_provisioner prov);  /* "sb-provisioner" ... */
/* The provisioner of a configuration mode ([station] mode): "secure-boot" ->
 * HOOK_PROV_SB, "fde-only" -> HOOK_PROV_FDE, "naked" -> HOOK_PROV_NAKED. 0 or -EINVAL. */
int hooks_provisioner_for_mode(const char *mode, enum hook_provisioner *out);
const char *hooks_stage_name(enum hook_stage stage);              /* "post-flash" ... */
const char *hooks_outcome_name(enum hook_outcome outcome);        /* "ok", "failed", ... */

/* True when the step may go on: the hook ran fine or there was none. */
bool hooks_result_ok(const struct hook_result *res);

/* "<hooks_dir>/<prov>-<stage>.sh" (caller frees), NULL on ENOMEM or bad call. */
char *hooks_path(const struct hook_call *call);

/* Run the hook @call names, if there is one, logging into @log (may be NULL:
 * stderr). Blocks until the hook is done or killed. Returns 0 with *res filled
 * (whatever the hook did), -EINVAL for a bad call (unknown stage, fields on a
 * stage other than post-flash or with an unknown name, timeout 0), or -errno
 * when it could not be started (pipe, fork); such failures are logged too.
 * Any thread may call it; it does not touch process-wide signal state. */
int hooks_run(const struct hook_call *call, struct boardlog *log, struct hook_result *res);

#endif
