/* lock: one board, one job. A per-board lock the kernel drops when the
 * process dies, so a crash never leaves a stale lock behind.
 *
 * flock(LOCK_EX|LOCK_NB) on <dir>/<key>.lock (dir normally <run>/locks, key a
 * board serial or a USB port path). flock locks belong to the open file
 * description: a second lock_try() on the same key fails even in the same
 * process, so a duplicate USB descriptor of a board cannot start a second job.
 * Lock files are never removed (removing one while another process has it
 * open would let two holders lock two different files of the same name); they
 * are empty-ish files on a tmpfs. */
#ifndef RPI_SB_RECORDS_LOCK_H
#define RPI_SB_RECORDS_LOCK_H

struct board_lock {
	int fd;     /* -1 when not held */
	char *path;
};

#define BOARD_LOCK_INIT { .fd = -1, .path = NULL }

/* Take the lock of @key (letters, digits, '.', '-', '_'; not starting with
 * '.'; at most 64 characters) under @dir (created 0750 if missing). Writes
 * the holder's pid into the file for diagnosis. 0 and *lock held; -EBUSY when
 * another holder (this process or another) has it; -EINVAL for a bad key;
 * -errno otherwise. Any thread may call it. */
int lock_try(const char *dir, const char *key, struct board_lock *lock);

/* The pid written by the current holder of @key's lock, or -ENOENT/-errno.
 * Only a hint for messages ("held by pid N"): it may be stale. */
int lock_holder(const char *dir, const char *key);

/* Release (close) the lock; safe on a lock that is not held. */
void lock_release(struct board_lock *lock);

#endif
