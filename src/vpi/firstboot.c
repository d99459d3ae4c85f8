/* vpi/firstboot: the virtual first boot (see firstboot.h for what it checks).
 *
 * Called from any thread on a board that is not running firmware on a bus.
 * The root file systems are compared without mounting: each is copied to a
 * private temp file (decrypted through vpi-gadget's LUKS reader when it is
 * LUKS2), checked with `e2fsck -fn`, then walked with batched debugfs
 * commands (`ls -p`, `dump_extents -l`, `stat`, `ea_list`); regular file and
 * slow symlink contents are hashed straight from the image by their extents
 * (holes and unwritten extents read as zeros). */
#include "vpi/firstboot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "vpi/bootloader.h"
#include "vpi/eeprom_dev.h"
#include "vpi/luks.h"
#include "vpi/storage.h"

extern char **environ;

#define TOOL_OUT_MAX (256u << 20)

static void fail(struct vpi_firstboot_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(struct vpi_firstboot_report *r, const char *fmt, ...)
{
	va_list ap;

	if (r->reason[0])
		return;   /* keep the first failure */
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

/* Run @argv (PATH lookup, no shell); stdout into *out when @out, stderr
 * dropped. Returns the exit status (>= 0) or -errno. */
static int run_tool(const char *const cargv[], char **out, size_t *outlen)
{
	char **argv = NULL;
	size_t na = 0;
	static char mtools_env[] = "MTOOLS_SKIP_CHECK=1";
	char **envp = NULL;
	size_t ne = 0;
	posix_spawn_file_actions_t fa;
	int pfd[2] = { -1, -1 }, status = 0, r;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	pid_t pid;

	while (environ && environ[ne])
		ne++;
	envp = calloc(ne + 2, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	memcpy(envp, environ, ne * sizeof(*envp));
	envp[ne] = mtools_env;   /* mtools: no geometry check on image files */
	while (cargv[na])
		na++;
	argv = calloc(na + 1, sizeof(*argv));
	for (size_t i = 0; argv && i < na; i++)
		if (!(argv[i] = strdup(cargv[i]))) {
			for (size_t k = 0; k < i; k++)
				free(argv[k]);
			free(argv);
			argv = NULL;
		}
	if (!argv) {
		free(envp);
		return -ENOMEM;
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		r = -errno;
		free(envp);
		goto free_argv;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		r = -r;
		goto free_argv;
	}
	for (;;) {
		ssize_t n;
		if (len + 65536 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 131072;
			nb = realloc(buf, cap);
			if (!nb || cap > TOOL_OUT_MAX) {
				free(nb ? nb : buf);
				buf = NULL;
				r = -ENOMEM;
				break;
			}
			buf = nb;
		}
		n = read(pfd[0], buf + len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r) {
		free(buf);
		goto free_argv;
	}
	if (buf)
		buf[len] = '\0';
	if (out) {
		*out = buf;
		*outlen = len;
	} else {
		free(buf);
	}
	r = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
free_argv:
	for (size_t i = 0; i < na; i++)
		free(argv[i]);
	free(argv);
	return r;
}

struct mbr_part {
	uint8_t type;
	uint64_t start, size;
};

static int read_mbr(int fd, struct mbr_part p[4])
{
	uint8_t s[512];

	if (pread(fd, s, sizeof(s), 0) != (ssize_t)sizeof(s))
		return -EIO;
	if (s[510] != 0x55 || s[511] != 0xAA)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = s + 446 + 16 * i;
		p[i].type = e[4];
		p[i].start = (uint64_t)(e[8] | e[9] << 8 | e[10] << 16 | (uint32_t)e[11] << 24) * 512;
		p[i].size = (uint64_t)(e[12] | e[13] << 8 | e[14] << 16 | (uint32_t)e[15] << 24) * 512;
	}
	return 0;
}

/* Copy bytes through @reader into a sparse temp file. */
typedef int (*read_fn)(void *ctx, uint64_t off, void *buf, size_t len);

static int copy_out(read_fn rd, void *ctx, uint64_t size, const char *dst)
{
	const size_t chunk = 1u << 20;
	uint8_t *buf = malloc(chunk);
	int fd = -1, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		bool zero = true;
		r = rd(ctx, off, buf, n);
		if (r)
			goto out;
		for (size_t i = 0; i < n && zero; i++)
			zero = buf[i] == 0;
		if (!zero && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			r = -EIO;
			goto out;
		}
	}
	if (ftruncate(fd, (off_t)size) != 0)
		r = -errno;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

struct fd_region {
	int fd;
	uint64_t base;
};

static int read_region(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct fd_region *fr = ctx;
	ssize_t n = pread(fr->fd, buf, len, (off_t)(fr->base + off));

	if (n < 0)
		return -errno;
	if ((size_t)n < len)
		memset((uint8_t *)buf + n, 0, len - (size_t)n);
	return 0;
}

static int read_luks(void *ctx, uint64_t off, void *buf, size_t len)
{
	return vpi_luks_reader_read(ctx, off, buf, len);
}

/* ---- ext4 tree walk through debugfs ------------------------------------ */

struct entry {
	char *path;
	unsigned long mode;
	unsigned long uid, gid;
	uint64_t size;
	uint8_t hash[32];
	char *xattrs;
};

struct tree {
	struct entry *v;
	size_t n, cap;
	unsigned block_size;
};

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].xattrs);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Run debugfs on @img with @cmds (one per line, echoed back); split the
 * output into one section per command. */
static int debugfs_batch(const char *img, const char *tmpdir, const char *cmds, char ***secs,
			 size_t *nsecs, char **raw)
{
	char *cmdfile = NULL, *out = NULL;
	char **v = NULL;
	size_t outlen = 0, n = 0, cap = 0;
	FILE *f;
	int r;

	*secs = NULL;
	*nsecs = 0;
	*raw = NULL;
	if (asprintf(&cmdfile, "%s/debugfs.cmds", tmpdir) < 0)
		return -ENOMEM;
	f = fopen(cmdfile, "w");
	if (!f) {
		r = -errno;
		goto out;
	}
	fputs(cmds, f);
	fclose(f);
	{
		const char *argv[] = { "debugfs", "-f", cmdfile, img, NULL };
		r = run_tool(argv, &out, &outlen);
	}
	if (r < 0)
		goto out;
	if (r != 0 || !out) {
		r = -EIO;
		goto out;
	}
	r = 0;
	for (char *p = out; p && *p;) {
		char *nl = strchr(p, '\n');
		if (strncmp(p, "debugfs: ", 9) == 0) {
			if (n == cap) {
				char **nv;
				cap = cap ? cap * 2 : 256;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					r = -ENOMEM;
					goto out;
				}
				v = nv;
			}
			v[n++] = nl ? nl + 1 : p + strlen(p);
			*p = '\0';   /* terminates the previous section */
		}
		p = nl ? nl + 1 : NULL;
	}
	*secs = v;
	*nsecs = n;
	*raw = out;
	v = NULL;
	out = NULL;
out:
	if (cmdfile) {
		unlink(cmdfile);
		free(cmdfile);
	}
	free(v);
	free(out);
	return r;
}

/* debugfs quoting: double quotes around a path without '"' or newline. */
static int quote_ok(const char *p)
{
	return !strpbrk(p, "\"\n");
}

static int tree_add(struct tree *t, const char *path, unsigned long mode, unsigned long uid,
		    unsigned long gid, uint64_t size)
{
	struct entry *e;

	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 1024;
		struct entry *nv = realloc(t->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = nc;
	}
	e = &t->v[t->n];
	memset(e, 0, sizeof(*e));
	e->path = strdup(path);
	if (!e->path)
		return -ENOMEM;
	e->mode = mode;
	e->uid = uid;
	e->gid = gid;
	e->size = size;
	t->n++;
	return 0;
}

/* Append text to a growing command buffer. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static int sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return 0;
		}
		{
			size_t nc = (b->cap ? b->cap * 2 : 65536) + (size_t)n;
			char *ns = realloc(b->s, nc);
			if (!ns)
				return -ENOMEM;
			b->s = ns;
			b->cap = nc;
		}
	}
}

/* Hash the logical content [0, size) of an inode from its leaf extents. */
static int hash_extents(int fd, unsigned bs, const char *sec, uint64_t size, uint8_t out[32])
{
	mbedtls_sha256_context c;
	uint8_t *blk = malloc(bs), *zero = calloc(1, bs);
	uint64_t pos = 0;   /* next logical block to hash */
	uint64_t nblocks = (size + bs - 1) / bs;
	int r = 0;

	if (!blk || !zero) {
		r = -ENOMEM;
		goto out;
	}
	mbedtls_sha256_init(&c);
	mbedtls_sha256_starts_ret(&c, 0);
	for (const char *p = sec; p && *p;) {
		unsigned lvl, maxlvl, ent, maxent;
		unsigned long long ls, le, ps, pe, len;
		char flags[32] = "";
		const char *nl = strchr(p, '\n');
		int k = sscanf(p, " %u/ %u %u/ %u %llu - %llu %llu - %llu %llu %31s", &lvl, &maxlvl,
			       &ent, &maxent, &ls, &le, &ps, &pe, &len, flags);
		if (k >= 9) {
			bool uninit = k == 10 && strstr(flags, "Uninit");
			for (unsigned long long lb = ls; lb <= le && lb < nblocks; lb++) {
				const uint8_t *d = zero;
				while (pos < lb && pos < nblocks) {   /* hole */
					uint64_t n = size - pos * bs < bs ? size - pos * bs : bs;
					mbedtls_sha256_update_ret(&c, zero, n);
					pos++;
				}
				if (!uninit) {
					if (pread(fd, blk, bs, (off_t)((ps + (lb - ls)) * bs)) != (ssize_t)bs) {
						r = -EIO;
						goto done;
					}
					d = blk;
				}
				mbedtls_sha256_update_ret(&c, d, size - lb * bs < bs ? size - lb * bs : bs);
				pos = lb + 1;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	while (pos < nblocks) {
		uint64_t n = size - pos * bs < bs ? size - pos * bs : bs;
		mbedtls_sha256_update_ret(&c, zero, n);
		pos++;
	}
done:
	mbedtls_sha256_finish_ret(&c, out);
	mbedtls_sha256_free(&c);
out:
	free(blk);
	free(zero);
	return r;
}

static char *trim_dup(const char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	return strndup(s, n);
}

static int walk_tree(const char *img, const char *tmpdir, struct tree *t, char *err, size_t errlen)
{
	char **secs = NULL, *raw = NULL;
	size_t nsecs = 0, level_start = 0;
	struct sbuf cmd = { NULL, 0, 0 };
	int fd = -1, r;

	memset(t, 0, sizeof(*t));
	r = debugfs_batch(img, tmpdir, "stats\n", &secs, &nsecs, &raw);
	if (r) {
		snprintf(err, errlen, "debugfs cannot read %s (%s)", img, strerror(-r));
		return r;
	}
	if (nsecs == 1 && strstr(secs[0], "Block size:"))
		t->block_size = (unsigned)strtoul(strstr(secs[0], "Block size:") + 11, NULL, 10);
	free(secs);
	free(raw);
	if (t->block_size < 1024 || t->block_size > 65536) {
		snprintf(err, errlen, "no ext4 file system in %s", img);
		return -EINVAL;
	}
	r = tree_add(t, "/", 040755, 0, 0, 0);
	if (r)
		return r;
	/* level by level: list every directory found in the previous level */
	while (level_start < t->n) {
		size_t level_end = t->n, nd = 0;
		size_t *dirs = NULL;

		cmd.len = 0;
		dirs = calloc(level_end - level_start, sizeof(*dirs));
		if (!dirs)
			return -ENOMEM;
		for (size_t i = level_start; i < level_end; i++) {
			if ((t->v[i].mode & 0170000) != 0040000 || !quote_ok(t->v[i].path))
				continue;
			if (sb_printf(&cmd, "ls -p \"%s\"\n", t->v[i].path)) {
				free(dirs);
				return -ENOMEM;
			}
			dirs[nd++] = i;
		}
		level_start = level_end;
		if (nd == 0) {
			free(dirs);
			break;
		}
		r = debugfs_batch(img, tmpdir, cmd.s, &secs, &nsecs, &raw);
		if (r || nsecs != nd) {
			free(dirs);
			free(secs);
			free(raw);
			snprintf(err, errlen, "debugfs listing of %s failed", img);
			r = r ? r : -EIO;
			goto out;
		}
		for (size_t d = 0; d < nd; d++) {
			char *parent = strdup(t->v[dirs[d]].path);
			for (char *p = secs[d]; p && *p;) {
				char *nl = strchr(p, '\n');
				unsigned long ino, mode, uid, gid;
				unsigned long long size = 0;
				char name[1024], path[4096];
				if (nl)
					*nl = '\0';
				/* "/ino/mode/uid/gid/name/size/" (size empty for dirs) */
				if (sscanf(p, "/%lu/%lo/%lu/%lu/%1023[^/]/%llu", &ino, &mode, &uid, &gid,
					   name, &size) >= 5 &&
				    strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
					snprintf(path, sizeof(path), "%s%s%s", parent,
						 strcmp(parent, "/") == 0 ? "" : "/", name);
					if (tree_add(t, path, mode, uid, gid, size)) {
						r = -ENOMEM;
						break;
					}
				}
				p = nl ? nl + 1 : NULL;
			}
			free(parent);
		}
		free(dirs);
		free(secs);
		free(raw);
		secs = NULL;
		raw = NULL;
		if (r)
			goto out;
	}
	/* per entry: extents (files, symlinks), stat (symlinks), xattrs */
	cmd.len = 0;
	for (size_t i = 0; i < t->n; i++) {
		unsigned long type = t->v[i].mode & 0170000;
		const char *p = t->v[i].path;
		if (!quote_ok(p))
			continue;
		if (sb_printf(&cmd, "ea_list \"%s\"\n", p) ||
		    ((type == 0100000 || type == 0120000) &&
		     sb_printf(&cmd, "dump_extents -l \"%s\"\n", p)) ||
		    (type == 0120000 && sb_printf(&cmd, "stat \"%s\"\n", p))) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = debugfs_batch(img, tmpdir, cmd.s, &secs, &nsecs, &raw);
	if (r)
		goto out;
	fd = open(img, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	{
		size_t k = 0;
		for (size_t i = 0; i < t->n && r == 0; i++) {
			struct entry *e = &t->v[i];
			unsigned long type = e->mode & 0170000;
			if (!quote_ok(e->path))
				continue;
			if (k >= nsecs) {
				r = -EIO;
				break;
			}
			e->xattrs = trim_dup(secs[k++]);
			if (!e->xattrs) {
				r = -ENOMEM;
				break;
			}
			if (type == 0100000 || type == 0120000) {
				if (k >= nsecs) {
					r = -EIO;
					break;
				}
				r = hash_extents(fd, t->block_size, secs[k++], e->size, e->hash);
			}
			if (r == 0 && type == 0120000) {
				const char *fl;
				if (k >= nsecs) {
					r = -EIO;
					break;
				}
				fl = strstr(secs[k++], "Fast link dest: \"");
				if (fl) {
					const char *q = fl + 17, *end = strrchr(q, '"');
					mbedtls_sha256_ret((const unsigned char *)q,
							   end ? (size_t)(end - q) : strlen(q), e->hash, 0);
				}
			}
		}
	}
	if (r)
		snprintf(err, errlen, "reading file contents from %s failed (%s)", img, strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	free(cmd.s);
	free(secs);
	free(raw);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* ---- the station's customisation: listed paths against its tree -------- */

static int pstr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool listed(const struct vpi_firstboot_expect *x, char *const *sorted, const char *path)
{
	return x && x->npaths && bsearch(&path, sorted, x->npaths, sizeof(*sorted), pstr_cmp);
}

static const struct entry *tree_find(const struct tree *t, const char *path)
{
	struct entry key = { .path = (char *)(uintptr_t)path };

	return bsearch(&key, t->v, t->n, sizeof(*t->v), entry_cmp);
}

/* SHA-256 and size of what @full holds on this host: a regular file's
 * contents or a symlink's target (what the board's inode must hold). */
static int host_hash(const char *full, const struct stat *st, uint8_t out[32], uint64_t *size)
{
	if (S_ISLNK(st->st_mode)) {
		char target[4096];
		ssize_t n = readlink(full, target, sizeof(target));

		if (n < 0)
			return -errno;
		if ((size_t)n == sizeof(target))
			return -ENAMETOOLONG;
		*size = (uint64_t)n;
		mbedtls_sha256_ret((const unsigned char *)target, (size_t)n, out, 0);
		return 0;
	}
	mbedtls_sha256_context c;
	uint8_t buf[65536];
	int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	*size = 0;
	mbedtls_sha256_init(&c);
	mbedtls_sha256_starts_ret(&c, 0);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		mbedtls_sha256_update_ret(&c, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	mbedtls_sha256_finish_ret(&c, out);
	mbedtls_sha256_free(&c);
	close(fd);
	return r;
}

/* Each listed path on the board (@a) against @x->tree; @g gives the gold
 * image's xattrs. Describe the first difference. */
static bool expected_equal(const struct tree *a, const struct tree *g,
			   const struct vpi_firstboot_expect *x, char *why, size_t whylen)
{
	for (size_t k = 0; k < x->npaths; k++) {
		const char *path = x->paths[k];
		const struct entry *e = tree_find(a, path), *ge = tree_find(g, path);
		char *full = NULL;
		struct stat st;
		uint8_t h[32];
		uint64_t size = 0;
		int r;

		if (path[0] != '/' || asprintf(&full, "%s%s", x->tree, path) < 0) {
			snprintf(why, whylen, "%s: not a path the station could have changed", path);
			return false;
		}
		r = lstat(full, &st) == 0 ? 0 : -errno;
		if (r == -ENOENT) {
			free(full);
			if (e) {
				snprintf(why, whylen, "%s: removed by the station's hooks but on the "
					 "board", path);
				return false;
			}
			continue;
		}
		if (r == 0 && !e) {
			snprintf(why, whylen, "%s: written by the station's hooks but missing on "
				 "the board", path);
			free(full);
			return false;
		}
		/* The top directory's own inode is not read by the walk (it
		 * is the same synthetic entry on both sides): its type only. */
		if (r == 0 && strcmp(path, "/") != 0) {
			if (e->mode != (unsigned long)st.st_mode) {
				snprintf(why, whylen, "%s: mode %lo, the station's hooks made it %lo",
					 path, e->mode, (unsigned long)st.st_mode);
				r = -EINVAL;
			} else if (e->uid != (unsigned long)st.st_uid ||
				   e->gid != (unsigned long)st.st_gid) {
				snprintf(why, whylen, "%s: owner %lu:%lu, the station's hooks made it "
					 "%lu:%lu", path, e->uid, e->gid, (unsigned long)st.st_uid,
					 (unsigned long)st.st_gid);
				r = -EINVAL;
			}
		} else if (r == 0 && !S_ISDIR(st.st_mode)) {
			snprintf(why, whylen, "/: not a directory in the station's tree");
			r = -EINVAL;
		}
		if (r == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
			r = host_hash(full, &st, h, &size);
			if (r == 0 && (e->size != size || memcmp(e->hash, h, 32) != 0)) {
				snprintf(why, whylen, "%s: contents differ from what the station's hooks "
					 "wrote (size %" PRIu64 " vs %" PRIu64 ")", path, e->size, size);
				r = -EINVAL;
			}
		}
		if (r == 0 && e->xattrs && e->xattrs[0] &&
		    !(ge && ge->xattrs && strcmp(e->xattrs, ge->xattrs) == 0)) {
			snprintf(why, whylen, "%s: extended attributes neither the gold image's nor "
				 "none", path);
			r = -EINVAL;
		}
		if (r < 0 && r != -EINVAL)
			snprintf(why, whylen, "%s: cannot read the station's tree at %s (%s)", path,
				 full, strerror(-r));
		free(full);
		if (r < 0)
			return false;
	}
	return true;
}

/* Compare two trees, the board's (@a) and the gold image's (@g), the paths
 * @x lists against its tree instead; describe the first difference. */
static bool tree_equal(struct tree *a, struct tree *g, const struct vpi_firstboot_expect *x,
		       char *why, size_t whylen)
{
	char **sorted = NULL;
	size_t i = 0, j = 0;
	bool ok = true;

	qsort(a->v, a->n, sizeof(*a->v), entry_cmp);
	qsort(g->v, g->n, sizeof(*g->v), entry_cmp);
	if (x && x->npaths) {
		sorted = malloc(x->npaths * sizeof(*sorted));
		if (!sorted) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
		memcpy(sorted, x->paths, x->npaths * sizeof(*sorted));
		qsort(sorted, x->npaths, sizeof(*sorted), pstr_cmp);
		if (!expected_equal(a, g, x, why, whylen))
			ok = false;
	}
	while (ok && (i < a->n || j < g->n)) {
		int c = i >= a->n ? 1 : j >= g->n ? -1 : strcmp(a->v[i].path, g->v[j].path);
		const char *path = c <= 0 ? a->v[i].path : g->v[j].path;

		if (listed(x, sorted, path)) {   /* checked against the station's tree */
			i += c <= 0;
			j += c >= 0;
			continue;
		}
		if (c < 0) {
			snprintf(why, whylen, "%s: on the board but not in the gold image", a->v[i].path);
			ok = false;
			break;
		}
		if (c > 0) {
			snprintf(why, whylen, "%s: in the gold image but missing on the board",
				 g->v[j].path);
			ok = false;
			break;
		}
		{
			const struct entry *e = &a->v[i], *y = &g->v[j];
			bool dir = (y->mode & 0170000) == 0040000;

			ok = false;
			if (e->mode != y->mode)
				snprintf(why, whylen, "%s: mode %lo, gold image %lo", e->path, e->mode,
					 y->mode);
			else if (e->uid != y->uid || e->gid != y->gid)
				snprintf(why, whylen, "%s: owner %lu:%lu, gold image %lu:%lu", e->path,
					 e->uid, e->gid, y->uid, y->gid);
			else if (!dir && (e->size != y->size || memcmp(e->hash, y->hash, 32) != 0))
				snprintf(why, whylen, "%s: contents differ from the gold image "
					 "(size %" PRIu64 " vs %" PRIu64 ")", e->path, e->size, y->size);
			else if (strcmp(e->xattrs ? e->xattrs : "", y->xattrs ? y->xattrs : "") != 0)
				snprintf(why, whylen, "%s: extended attributes differ from the gold "
					 "image", e->path);
			else
				ok = true;
			if (!ok)
				break;
		}
		i++;
		j++;
	}
	free(sorted);
	return ok;
}

/* ---- boot partition (FAT) via mtools ----------------------------------- */

static int fat_get(const char *img, uint64_t off, const char *name, const char *tmpdir,
		   uint8_t **data, size_t *len)
{
	char *src = NULL, *dst = NULL, *from = NULL;
	struct stat st;
	int r, fd = -1;

	*data = NULL;
	*len = 0;
	if (asprintf(&src, "%s@@%" PRIu64, img, off) < 0 || asprintf(&dst, "%s/fat.out", tmpdir) < 0 ||
	    asprintf(&from, "::%s", name) < 0) {
		r = -ENOMEM;
		goto out;
	}
	unlink(dst);
	{
		const char *argv[] = { "mcopy", "-n", "-o", "-i", src, from, dst, NULL };
		r = run_tool(argv, NULL, NULL);
	}
	if (r < 0)
		goto out;
	if (r != 0) {
		r = -ENOENT;
		goto out;
	}
	fd = open(dst, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		r = -ENOENT;
		goto out;
	}
	*data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!*data) {
		r = -ENOMEM;
		goto out;
	}
	if (read(fd, *data, (size_t)st.st_size) != st.st_size) {
		free(*data);
		*data = NULL;
		r = -EIO;
		goto out;
	}
	*len = (size_t)st.st_size;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dst)
		unlink(dst);
	free(src);
	free(dst);
	free(from);
	return r;
}

/* ---- the checks -------------------------------------------------------- */

static void check_eeprom(struct vpi_board *b, struct vpi_firstboot_report *rep, uint8_t **pubkey)
{
	enum vpi_chip chip = vpi_board_model(b)->chip;
	uint8_t *img = NULL, otp[32];
	size_t len = 0;
	const uint8_t *d;
	size_t dl;
	char why[200] = "";

	rep->eeprom_ok = true;
	if (chip != VPI_CHIP_2710) {
		if (vpi_eeprom_read(b, &img, &len) != 0 ||
		    vpi_ee_file(img, len, "bootcode.bin", &d, &dl) != 0) {
			fail(rep, "SPI EEPROM: no bootloader (erased or corrupt image)");
			rep->eeprom_ok = false;
			goto out;
		}
		vpi_otp_key_hash(b, otp);
		if (chip == VPI_CHIP_2712) {
			if (vpi_bootcode2712_check(d, dl, otp, true, NULL, why, sizeof(why)) != 0 ||
			    (vpi_ee_file(img, len, "bootsys", &d, &dl) == 0 &&
			     vpi_bootcode2712_check(d, dl, otp, true, NULL, why, sizeof(why)) != 0)) {
				fail(rep, "SPI EEPROM: ROM refuses the bootloader: %s", why);
				rep->eeprom_ok = false;
				goto out;
			}
		} else if (vpi_bootcode2711_check(d, dl, vpi_otp_devkey_revoked(b), why, sizeof(why))) {
			fail(rep, "SPI EEPROM: ROM refuses the bootloader: %s", why);
			rep->eeprom_ok = false;
			goto out;
		}
	}
	if (vpi_bootloader_eeprom_chain(b, &rep->signed_boot, pubkey, why, sizeof(why)) != 0) {
		fail(rep, "SPI EEPROM: %s", why);
		rep->eeprom_ok = false;
	}
out:
	free(img);
}

static void check_boot(const char *storage, const struct mbr_part *p1, const char *tmpdir,
		       const uint8_t *pubkey, struct vpi_firstboot_report *rep)
{
	uint8_t *img = NULL, *sig = NULL, *conf = NULL;
	size_t il = 0, sl = 0, cl = 0;
	char why[200] = "";

	fat_get(storage, p1->start, "boot.img", tmpdir, &img, &il);
	if (rep->signed_boot) {
		fat_get(storage, p1->start, "boot.sig", tmpdir, &sig, &sl);
		if (vpi_bootloader_check_boot_sig(img, il, sig, sl, pubkey, why, sizeof(why)) != 0)
			fail(rep, "boot partition: %s", why);
		else
			rep->boot_ok = true;
	} else if (il) {
		rep->boot_ok = true;   /* boot_ramdisk image, not checked without signed boot */
	} else if (fat_get(storage, p1->start, "config.txt", tmpdir, &conf, &cl) == 0) {
		rep->boot_ok = true;   /* plain boot files */
	} else {
		fail(rep, "boot partition: neither boot.img nor config.txt found");
	}
	free(img);
	free(sig);
	free(conf);
}

static bool is_luks(int fd, uint64_t off)
{
	uint8_t m[6];

	return pread(fd, m, 6, (off_t)off) == 6 && memcmp(m, "LUKS\xba\xbe", 6) == 0;
}

int vpi_board_power_on(struct vpi_board *b, const char *gold_image, struct vpi_firstboot_report *rep)
{
	return vpi_board_power_on_expect(b, gold_image, NULL, rep);
}

int vpi_board_power_on_expect(struct vpi_board *b, const char *gold_image,
			      const struct vpi_firstboot_expect *x, struct vpi_firstboot_report *rep)
{
	const char *storage = vpi_board_storage_path(b);
	char tmpdir[] = "/tmp/vpi-firstboot-XXXXXX";
	char *board_root = NULL, *gold_root = NULL, err[300] = "";
	struct mbr_part bp[4], gp[4];
	struct tree bt = { 0 }, gt = { 0 };
	struct vpi_luks_reader *lr = NULL;
	uint8_t *pubkey = NULL;
	int sfd = -1, gfd = -1, r = 0;

	memset(rep, 0, sizeof(*rep));
	if (!mkdtemp(tmpdir))
		return -errno;
	gfd = open(gold_image, O_RDONLY | O_CLOEXEC);
	if (gfd < 0) {
		r = -errno;
		vpi_log(b, "first boot: cannot open the gold image %s: %s", gold_image, strerror(-r));
		goto out;
	}
	if (read_mbr(gfd, gp) != 0 || gp[1].size == 0) {
		r = -EINVAL;
		vpi_log(b, "first boot: %s is not a gold image (MBR with a root partition 2)",
			gold_image);
		goto out;
	}
	vpi_log(b, "first boot: power on from SPI EEPROM and %s", storage);
	check_eeprom(b, rep, &pubkey);
	sfd = open(storage, O_RDONLY | O_CLOEXEC);
	if (sfd < 0 || read_mbr(sfd, bp) != 0 || bp[0].size == 0 || bp[1].size == 0) {
		fail(rep, "storage: no partition table with boot and root partitions");
		goto verdict;
	}
	if (rep->eeprom_ok)
		check_boot(storage, &bp[0], tmpdir, pubkey, rep);
	if (asprintf(&board_root, "%s/board-root.img", tmpdir) < 0 ||
	    asprintf(&gold_root, "%s/gold-root.img", tmpdir) < 0) {
		r = -ENOMEM;
		goto out;
	}
	rep->encrypted = is_luks(sfd, bp[1].start);
	if (rep->encrypted) {
		char part[32];
		snprintf(part, sizeof(part), "%sp2",
			 vpi_storage_disk_name(vpi_board_model(b)->storage));
		r = vpi_luks_open_reader(b, part, &lr);
		if (r) {
			fail(rep, "root %s: LUKS2 unlock with the device-derived key failed (%s)",
			     part, r == -ENOKEY ? "device key not provisioned" : strerror(-r));
			r = 0;
			goto verdict;
		}
		rep->unlock_ok = true;
		r = copy_out(read_luks, lr, vpi_luks_reader_size(lr), board_root);
	} else {
		struct fd_region fr = { sfd, bp[1].start };
		rep->unlock_ok = true;
		r = copy_out(read_region, &fr, bp[1].size, board_root);
	}
	if (r)
		goto out;
	{
		struct fd_region fr = { gfd, gp[1].start };
		r = copy_out(read_region, &fr, gp[1].size, gold_root);
		if (r)
			goto out;
	}
	{
		const char *argv[] = { "e2fsck", "-fn", board_root, NULL };
		int st = run_tool(argv, NULL, NULL);
		if (st < 0) {
			r = st;
			vpi_log(b, "first boot: cannot run e2fsck: %s", strerror(-r));
			goto out;
		}
		rep->fsck_ok = st == 0;
		if (!rep->fsck_ok) {
			fail(rep, "root file system: e2fsck -fn exit status %d (not clean)", st);
			goto verdict;
		}
	}
	r = walk_tree(board_root, tmpdir, &bt, err, sizeof(err));
	if (r == 0)
		r = walk_tree(gold_root, tmpdir, &gt, err, sizeof(err));
	if (r) {
		fail(rep, "root file system: %s", err);
		r = 0;
		goto verdict;
	}
	rep->entries_compared = gt.n;
	rep->entries_expected = x ? x->npaths : 0;
	rep->tree_ok = tree_equal(&bt, &gt, x, err, sizeof(err));
	if (!rep->tree_ok)
		fail(rep, "root file system: %s", err);
verdict:
	rep->pass = rep->eeprom_ok && rep->boot_ok && rep->unlock_ok && rep->fsck_ok && rep->tree_ok;
	vpi_log(b, "first boot: %s%s%s", rep->pass ? "PASS" : "FAIL", rep->pass ? "" : ": ",
		rep->pass ? "" : rep->reason);
out:
	if (lr)
		vpi_luks_reader_close(lr);
	tree_free(&bt);
	tree_free(&gt);
	if (board_root)
		unlink(board_root);
	if (gold_root)
		unlink(gold_root);
	rmdir(tmpdir);
	free(board_root);
	free(gold_root);
	free(pubkey);
	if (sfd >= 0)
		close(sfd);
	if (gfd >= 0)
		close(gfd);
	return r;
}
