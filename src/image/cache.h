/* cache: content-addressed artefact cache (`[paths] cache_dir`).
 *
 * An entry is a directory <cache>/<key>/ where key is the SHA-256 over every
 * input of the artefact (image hash, key fingerprint, firmware hash, configs,
 * settings, mode, storage, cipher, program version...), so a changed input
 * can never meet a stale artefact: it simply has another key. An entry is
 * built in <cache>/.tmp-<key>-XXXXXX and renamed into place, so it is either
 * whole or absent; a crash leaves only a temp dir, removed by the next build
 * of that key. Builders of the same key take flock(<cache>/<key>.lock), which
 * excludes other threads (each call opens its own descriptor) and other
 * processes alike: concurrent boards wait for one build and then share it.
 *
 * The SHA-256 of a multi-GB gold image is computed once and remembered in
 * <cache>/image-sha256/ keyed by (device, inode, size, mtime). Any thread. */
#ifndef RPI_SB_IMAGE_CACHE_H
#define RPI_SB_IMAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/sha256.h>

#include "artefacts/art_err.h"

#define CACHE_KEY_HEX 65

struct cache_key {
	mbedtls_sha256_context ctx;
};

/* Start a key for artefacts of kind @purpose ("boot", "rootfs"...); the
 * program version is always part of it. */
void cache_key_init(struct cache_key *k, const char *purpose);
/* Add a named input. Values are length-framed: ("a","bc") ≠ ("ab","c"); a
 * NULL string is distinct from "". */
void cache_key_add(struct cache_key *k, const char *name, const void *data, size_t len);
void cache_key_add_str(struct cache_key *k, const char *name, const char *value);
void cache_key_add_u64(struct cache_key *k, const char *name, uint64_t value);
/* The SHA-256 of a file's contents (for small inputs: configs, initramfs). */
int cache_key_add_file(struct cache_key *k, const char *name, const char *path,
		       struct art_err *err);
void cache_key_final(struct cache_key *k, char hex[CACHE_KEY_HEX]);

/* Build the entry in @tmp_dir; return 0 or a negative errno. */
typedef int (*cache_build_fn)(void *usr, const char *tmp_dir, struct art_err *err);

/* Find or build the entry for @key. *entry_dir (malloc'd) is the entry's path;
 * *hit says whether it already existed. */
int cache_get(const char *cache_dir, const char *key, cache_build_fn build, void *usr,
	      char **entry_dir, bool *hit, struct art_err *err);

/* Remove every entry, temp dir and remembered hash (lock files stay, so a
 * builder holding one is not split in two). */
int cache_clear(const char *cache_dir, struct art_err *err);

/* SHA-256 (hex) of the file at @path, remembered across calls and processes
 * for as long as its device, inode, size and mtime stay the same. */
int cache_file_sha256(const char *cache_dir, const char *path, char hex[CACHE_KEY_HEX],
		      bool *was_cached, struct art_err *err);

/* Stream the SHA-256 of a file (no memory). */
int cache_sha256_path(const char *path, uint8_t out[32], struct art_err *err);

/* rm -rf. */
int cache_remove_tree(const char *path);

#endif
