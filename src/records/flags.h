/* flags: the special per-board flag files, as Raspberry Pi's provisioner keeps them.
 *
 *   <flags_dir>/special-skip-eeprom/<serial>          skip every EEPROM/OTP step
 *   <flags_dir>/special-reprovision-device/<serial>   Pi 5 family: let a fused board
 *                                                     run recovery again (same key)
 *
 * The file's content decides its life: `once` (surrounding white space ignored)
 * is consumed after the board's next successful bootstrap; anything else (also
 * an empty file) persists until cleared. <serial> is the 16-hex DUID or its low
 * 8 hex (the ROM serial a board shows in boot mode), lowercase; a flag under
 * either name applies to the board in every phase. */
#ifndef RPI_SB_RECORDS_FLAGS_H
#define RPI_SB_RECORDS_FLAGS_H

#include <stdbool.h>

enum flag_kind {
	FLAG_SKIP_EEPROM,
	FLAG_REPROVISION,
	FLAG_COUNT
};

enum flag_state {
	FLAG_NONE,
	FLAG_ONCE,
	FLAG_PERSISTENT
};

#define FLAGS_SERIAL_MAX 17 /* 16 hex + NUL */

/* "skip-eeprom" | "reprovision" (the command's names). */
const char *flags_name(enum flag_kind flag);
/* "special-skip-eeprom" | "special-reprovision-device" (the directories). */
const char *flags_subdir(enum flag_kind flag);
/* "none" | "once" | "persistent". */
const char *flags_state_name(enum flag_state state);
/* Parse a command name (also accepts the directory names). 0 or -EINVAL. */
int flags_parse(const char *name, enum flag_kind *out);
/* Validate 8 or 16 hex digits and lowercase into @out. 0 or -EINVAL. */
int flags_serial_normalise(const char *serial, char out[FLAGS_SERIAL_MAX]);

/* The flag's state for the board @serial (8 or 16 hex). Looks up the exact
 * name first; for a 16-hex serial then its low 8 hex; for an 8-hex serial then
 * any 16-hex name ending in it. 0 (state set, FLAG_NONE when absent), -EINVAL
 * for a bad serial, or -errno when the directory cannot be read. */
int flags_lookup(const char *dir, const char *serial, enum flag_kind flag, enum flag_state *state);

/* Create or replace <dir>/<subdir>/<serial> (atomically: temp file + rename)
 * with `once` or `persistent`. Creates the subdirectory. 0, -EINVAL, -errno. */
int flags_set(const char *dir, const char *serial, enum flag_kind flag, bool once);

/* Remove every file under which the flag applies to @serial (both name
 * forms). 0 when something was removed, -ENOENT when nothing was set,
 * -EINVAL, -errno. */
int flags_clear(const char *dir, const char *serial, enum flag_kind flag);

/* After a successful bootstrap: remove the `once` files of every flag for the
 * board (both name forms); persistent ones stay. Returns the number removed
 * (>= 0), -EINVAL or -errno. */
int flags_consume_once(const char *dir, const char *serial);

/* Call @fn for each flag file, by flag then name (sorted). @name is the file
 * name as found (not necessarily a valid serial). A non-zero return from @fn
 * stops the walk and is returned. */
typedef int (*flags_list_fn)(void *usrptr, enum flag_kind flag, const char *name,
			     enum flag_state state);
int flags_list(const char *dir, flags_list_fn fn, void *usrptr);

#endif
