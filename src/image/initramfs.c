/* initramfs: augment the cryptroot initramfs with the gold image's kernel
 * modules (see initramfs.h). libarchive for cpio + zstd, libext2fs (via
 * ext4.h) for the modules. Any thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "image/initramfs.h"

const char *const initramfs_default_modules[] = {
	"dm-crypt", "algif_skcipher", "xts", "aes", "adiantum", "nhpoly1305", "xchacha12",
};
const size_t initramfs_default_modules_count =
	sizeof(initramfs_default_modules) / sizeof(initramfs_default_modules[0]);

#define SCRIPT_MAX (1u << 20)
#define INDEX_MAX (32u << 20)
#define MODULE_MAX (64u << 20)
#define MOD_DEPTH_MAX 16

/* A growing list of strings (small: names in one archive or one flavour). */
struct strlist {
	char **v;
	size_t n, cap;
};

static int sl_add(struct strlist *l, const char *s)
{
	char *d;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	d = strdup(s);
	if (!d)
		return -ENOMEM;
	l->v[l->n++] = d;
	return 0;
}

static bool sl_has(const struct strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

static void sl_free(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static const char *norm_name(const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	while (*p == '/')
		p++;
	return p;
}

static bool dropped(const char *name)
{
	static const char prefix[] = "usr/lib/modules";
	size_t n = sizeof(prefix) - 1;

	return !strncmp(name, prefix, n) && (name[n] == '\0' || name[n] == '/');
}

static void append(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t cap, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

struct membuf {
	char *p;
	size_t n, cap;
};

static int mem_cb(void *usr, const void *data, size_t len)
{
	struct membuf *m = usr;

	if (m->n + len + 1 > m->cap) {
		size_t cap = (m->n + len + 1) * 2;
		char *p = realloc(m->p, cap);

		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->n, data, len);
	m->n += len;
	m->p[m->n] = '\0';
	return 0;
}

/* Read an ext4 file into memory (NUL-terminated). */
static int ext4_slurp(struct ext4_fs *fs, const char *path, size_t max, struct membuf *m,
		      struct art_err *err)
{
	struct ext4_stat st;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = ext4_stat_path(fs, path, true, &st, err);
	if (rc)
		return rc;
	if (!S_ISREG(st.mode))
		return art_err_set(err, -EINVAL, "%s is not a regular file", path);
	rc = mem_cb(m, "", 0);
	if (!rc)
		rc = ext4_read_file(fs, st.ino, max, mem_cb, m, err);
	if (rc) {
		free(m->p);
		memset(m, 0, sizeof(*m));
	}
	return rc;
}

/* ---- writing entries */

struct writer {
	struct archive *a;
	struct strlist dirs;	/* directories present in the output */
	time_t mtime;
	struct art_err *err;
};

static int aw_err(struct writer *w, const char *what)
{
	return art_err_set(w->err, -EIO, "cannot write the initramfs (%s): %s", what,
			   archive_error_string(w->a) ? archive_error_string(w->a) : "unknown");
}

static int add_dir(struct writer *w, const char *path)
{
	struct archive_entry *e;
	char *parent, *slash;
	int rc = 0;

	if (!*path || sl_has(&w->dirs, path))
		return 0;
	parent = strdup(path);
	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (slash) {
		*slash = '\0';
		rc = add_dir(w, parent);
	}
	free(parent);
	if (rc)
		return rc;
	e = archive_entry_new();
	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	archive_entry_set_mtime(e, w->mtime, 0);
	archive_entry_set_nlink(e, 2);
	archive_entry_set_size(e, 0);
	if (archive_write_header(w->a, e) != ARCHIVE_OK)
		rc = aw_err(w, path);
	archive_entry_free(e);
	return rc ? rc : sl_add(&w->dirs, path);
}

static int aw_data_cb(void *usr, const void *data, size_t len)
{
	struct writer *w = usr;

	if (archive_write_data(w->a, data, len) != (la_ssize_t)len)
		return aw_err(w, "module data");
	return 0;
}

/* Copy one file of the root fs to @dst inside the initramfs. */
static int add_ext4_file(struct writer *w, struct ext4_fs *fs, const char *src, const char *dst)
{
	struct archive_entry *e;
	struct ext4_stat st;
	char *dir, *slash;
	int rc;

	rc = ext4_stat_path(fs, src, true, &st, w->err);
	if (rc)
		return rc;
	if (!S_ISREG(st.mode))
		return art_err_set(w->err, -EINVAL, "%s in the root file system is not a file", src);
	if (st.size > MODULE_MAX)
		return art_err_set(w->err, -EFBIG, "%s is %llu bytes: too large for the initramfs",
				   src, (unsigned long long)st.size);
	dir = strdup(dst);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		rc = add_dir(w, dir);
	}
	free(dir);
	if (rc)
		return rc;
	e = archive_entry_new();
	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, dst);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, st.mode & 07777);
	archive_entry_set_size(e, (la_int64_t)st.size);
	archive_entry_set_mtime(e, st.mtime, 0);
	archive_entry_set_nlink(e, 1);
	if (archive_write_header(w->a, e) != ARCHIVE_OK)
		rc = aw_err(w, dst);
	else
		rc = ext4_read_file(fs, st.ino, MODULE_MAX, aw_data_cb, w, w->err);
	archive_entry_free(e);
	return rc;
}

/* ---- one kernel flavour */

struct modindex {
	struct strlist names;	/* normalised module name */
	struct strlist paths;	/* path relative to the version dir */
};

static void mod_norm(const char *base, char *out, size_t cap)
{
	static const char *const exts[] = {".ko.zst", ".ko.xz", ".ko.gz", ".ko"};
	size_t n = strlen(base), i;

	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t e = strlen(exts[i]);

		if (n > e && !strcmp(base + n - e, exts[i])) {
			n -= e;
			break;
		}
	}
	if (n >= cap)
		n = cap - 1;
	for (i = 0; i < n; i++)
		out[i] = base[i] == '-' ? '_' : base[i];
	out[n] = '\0';
}

static bool is_module_file(const char *name)
{
	return strstr(name, ".ko") != NULL;
}

struct scan_ctx {
	struct ext4_fs *fs;
	struct modindex *ix;
	const char *rel;	/* path relative to the version dir */
	const char *verdir;
	int depth;
	struct art_err *err;
};

static int scan_kernel_dir(struct scan_ctx *s);

static int scan_cb(void *usr, const char *name, uint32_t ino, bool is_dir)
{
	struct scan_ctx *s = usr;
	const char *old = s->rel;
	char *rel = NULL;
	int rc = 0;

	(void)ino;
	if (asprintf(&rel, "%s/%s", old, name) < 0)
		return -ENOMEM;
	if (is_dir) {
		if (s->depth < MOD_DEPTH_MAX) {
			s->rel = rel;
			s->depth++;
			rc = scan_kernel_dir(s);
			s->depth--;
			s->rel = old;
		}
	} else if (is_module_file(name)) {
		char key[256];

		mod_norm(name, key, sizeof(key));
		rc = sl_add(&s->ix->names, key);
		if (!rc)
			rc = sl_add(&s->ix->paths, rel);
	}
	free(rel);
	return rc;
}

static int scan_kernel_dir(struct scan_ctx *s)
{
	char *full = NULL;
	int rc;

	if (asprintf(&full, "%s/%s", s->verdir, s->rel) < 0)
		return -ENOMEM;
	rc = ext4_list_dir(s->fs, full, scan_cb, s, s->err);
	free(full);
	return rc;
}

static const char *ix_lookup(const struct modindex *ix, const char *name)
{
	char key[256];
	size_t i;

	mod_norm(name, key, sizeof(key));
	for (i = 0; i < ix->names.n; i++)
		if (!strcmp(ix->names.v[i], key))
			return ix->paths.v[i];
	return NULL;
}

/* modules.alias: "alias <alias> <module>" lines; exact alias match only. */
static const char *alias_lookup(const char *aliases, const char *alias, char *out, size_t cap)
{
	const char *p = aliases;
	size_t al = strlen(alias);

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);

		if (n > 6 + al && !strncmp(p, "alias ", 6) && !strncmp(p + 6, alias, al) &&
		    p[6 + al] == ' ') {
			const char *m = p + 7 + al;
			size_t ml = n - 7 - al;

			if (ml && ml < cap) {
				memcpy(out, m, ml);
				out[ml] = '\0';
				return out;
			}
		}
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}

/* modules.dep line for @relpath: the dependencies, blank-separated. */
static const char *dep_line(const char *deps, const char *relpath, size_t *len)
{
	const char *p = deps;
	size_t rl = strlen(relpath);

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);

		if (n > rl && !strncmp(p, relpath, rl) && p[rl] == ':') {
			*len = n - rl - 1;
			return p + rl + 1;
		}
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}

static int want_module(struct strlist *want, const char *deps, const char *relpath, int depth)
{
	const char *d;
	size_t len = 0, i = 0;
	int rc;

	if (sl_has(want, relpath))
		return 0;
	rc = sl_add(want, relpath);
	if (rc || !deps || depth > MOD_DEPTH_MAX)
		return rc;
	d = dep_line(deps, relpath, &len);
	while (d && i < len) {
		char dep[512];
		size_t s;

		while (i < len && (d[i] == ' ' || d[i] == '\t'))
			i++;
		s = i;
		while (i < len && d[i] != ' ' && d[i] != '\t')
			i++;
		if (i > s && i - s < sizeof(dep)) {
			memcpy(dep, d + s, i - s);
			dep[i - s] = '\0';
			rc = want_module(want, deps, dep, depth + 1);
			if (rc)
				return rc;
		}
	}
	return 0;
}

struct flavour_ctx {
	struct writer *w;
	const struct initramfs_opts *o;
	struct initramfs_report *rep;
	const char *moddir;
};

struct top_ctx {
	struct strlist files;	/* modules.* at the top of the version dir */
};

static int top_cb(void *usr, const char *name, uint32_t ino, bool is_dir)
{
	struct top_ctx *t = usr;

	(void)ino;
	if (!is_dir && !strncmp(name, "modules.", 8))
		return sl_add(&t->files, name);
	return 0;
}

static int do_flavour(struct flavour_ctx *f, const char *ver)
{
	struct modindex ix;
	struct strlist want = {0};
	struct top_ctx top = {{0}};
	struct membuf deps = {0}, aliases = {0};
	struct scan_ctx s;
	const char *const *mods = f->o->modules ? f->o->modules : initramfs_default_modules;
	size_t nmods = f->o->modules ? f->o->nmodules : initramfs_default_modules_count, i;
	char *verdir = NULL;
	unsigned found = 0;
	int rc;

	memset(&ix, 0, sizeof(ix));
	memset(&s, 0, sizeof(s));
	if (asprintf(&verdir, "%s/%s", f->moddir, ver) < 0)
		return -ENOMEM;
	s.fs = f->o->root;
	s.ix = &ix;
	s.verdir = verdir;
	s.rel = "kernel";
	s.err = f->w->err;
	rc = scan_kernel_dir(&s);
	if (rc == -ENOENT) {
		rc = 0;		/* no kernel/ dir: nothing to copy from this flavour */
	}
	if (rc)
		goto out;
	{
		char *p = NULL;
		struct art_err ignore;

		if (asprintf(&p, "%s/modules.dep", verdir) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		if (ext4_slurp(f->o->root, p, INDEX_MAX, &deps, &ignore))
			deps.p = NULL;
		free(p);
		if (asprintf(&p, "%s/modules.alias", verdir) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		if (ext4_slurp(f->o->root, p, INDEX_MAX, &aliases, &ignore))
			aliases.p = NULL;
		free(p);
	}
	for (i = 0; i < nmods; i++) {
		const char *path = ix_lookup(&ix, mods[i]);
		char alias[300], target[256];

		if (!path && aliases.p) {
			snprintf(alias, sizeof(alias), "crypto-%s", mods[i]);
			if (alias_lookup(aliases.p, alias, target, sizeof(target)) ||
			    alias_lookup(aliases.p, mods[i], target, sizeof(target)))
				path = ix_lookup(&ix, target);
		}
		if (!path) {
			append(f->rep->warnings, sizeof(f->rep->warnings), "%s: no module %s; ", ver,
			       mods[i]);
			continue;
		}
		found++;
		rc = want_module(&want, deps.p, path, 0);
		if (rc)
			goto out;
	}
	f->rep->flavours_found++;
	append(f->rep->flavours, sizeof(f->rep->flavours), "%s%s", f->rep->flavours[0] ? " " : "",
	       ver);
	if (!found)
		goto out;
	f->rep->flavours_ok++;
	for (i = 0; i < want.n; i++) {
		char *src = NULL, *dst = NULL;

		if (asprintf(&src, "%s/%s", verdir, want.v[i]) < 0 ||
		    asprintf(&dst, "usr/lib/modules/%s/%s", ver, want.v[i]) < 0) {
			free(src);
			rc = -ENOMEM;
			goto out;
		}
		rc = add_ext4_file(f->w, f->o->root, src, dst);
		free(src);
		free(dst);
		if (rc)
			goto out;
		f->rep->modules_added++;
	}
	rc = ext4_list_dir(f->o->root, verdir, top_cb, &top, f->w->err);
	for (i = 0; !rc && i < top.files.n; i++) {
		char *src = NULL, *dst = NULL;

		if (asprintf(&src, "%s/%s", verdir, top.files.v[i]) < 0 ||
		    asprintf(&dst, "usr/lib/modules/%s/%s", ver, top.files.v[i]) < 0) {
			free(src);
			rc = -ENOMEM;
			break;
		}
		rc = add_ext4_file(f->w, f->o->root, src, dst);
		free(src);
		free(dst);
	}
out:
	sl_free(&ix.names);
	sl_free(&ix.paths);
	sl_free(&want);
	sl_free(&top.files);
	free(deps.p);
	free(aliases.p);
	free(verdir);
	return rc;
}

static int ver_cb(void *usr, const char *name, uint32_t ino, bool is_dir)
{
	struct strlist *l = usr;

	(void)ino;
	return is_dir ? sl_add(l, name) : 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- main */

static int copy_entry_data(struct archive *in, struct writer *w)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK) {
		if (len && archive_write_data(w->a, buf, len) != (la_ssize_t)len)
			return aw_err(w, "data");
	}
	if (r != ARCHIVE_EOF)
		return art_err_set(w->err, -EINVAL, "cannot read the cryptroot initramfs: %s",
				   archive_error_string(in));
	return 0;
}

static int rewrite_script(struct archive *in, struct archive_entry *e, struct writer *w,
			  const char *device, unsigned *count)
{
	struct membuf m = {0}, out = {0};
	const char *p, *hit;
	int rc = 0;

	if (archive_entry_size(e) > (la_int64_t)SCRIPT_MAX)
		return art_err_set(w->err, -EFBIG, "%s is larger than 1 MiB",
				   INITRAMFS_CRYPTROOT_SCRIPT);
	for (;;) {
		char buf[8192];
		la_ssize_t n = archive_read_data(in, buf, sizeof(buf));

		if (n < 0) {
			rc = art_err_set(w->err, -EINVAL, "cannot read %s from the initramfs: %s",
					 INITRAMFS_CRYPTROOT_SCRIPT, archive_error_string(in));
			goto out;
		}
		if (n == 0)
			break;
		if (m.n + (size_t)n > SCRIPT_MAX) {
			rc = art_err_set(w->err, -EFBIG, "%s is larger than 1 MiB",
					 INITRAMFS_CRYPTROOT_SCRIPT);
			goto out;
		}
		rc = mem_cb(&m, buf, (size_t)n);
		if (rc)
			goto out;
	}
	rc = mem_cb(&out, "", 0);
	for (p = m.p ? m.p : ""; !rc && (hit = memmem(p, m.n - (size_t)(p - (m.p ? m.p : "")),
						      "mmcblk0", 7)); p = hit + 7) {
		rc = mem_cb(&out, p, (size_t)(hit - p));
		if (!rc)
			rc = mem_cb(&out, device, strlen(device));
		(*count)++;
	}
	if (!rc && m.p)
		rc = mem_cb(&out, p, m.n - (size_t)(p - m.p));
	if (rc)
		goto out;
	archive_entry_set_size(e, (la_int64_t)out.n);
	if (archive_write_header(w->a, e) != ARCHIVE_OK) {
		rc = aw_err(w, INITRAMFS_CRYPTROOT_SCRIPT);
		goto out;
	}
	if (out.n && archive_write_data(w->a, out.p, out.n) != (la_ssize_t)out.n)
		rc = aw_err(w, INITRAMFS_CRYPTROOT_SCRIPT);
out:
	free(m.p);
	free(out.p);
	return rc;
}

int initramfs_augment(const struct initramfs_opts *o, struct initramfs_report *rep,
		      struct art_err *err)
{
	struct archive *in = NULL;
	struct archive_entry *e;
	struct writer w;
	struct strlist vers = {0};
	struct ext4_stat st;
	const char *moddir = NULL;
	bool script_seen = false;
	size_t i;
	int rc = 0, r;

	memset(&w, 0, sizeof(w));
	memset(rep, 0, sizeof(*rep));
	w.err = err;
	if (!o->device || !*o->device || strchr(o->device, '/'))
		return art_err_set(err, -EINVAL, "no target device name for the initramfs");
	in = archive_read_new();
	w.a = archive_write_new();
	if (!in || !w.a) {
		rc = -ENOMEM;
		goto out;
	}
	archive_read_support_filter_all(in);
	archive_read_support_format_cpio(in);
	if (archive_read_open_filename(in, o->in_path, 65536) != ARCHIVE_OK) {
		rc = art_err_set(err, -EINVAL, "cannot open the cryptroot initramfs %s: %s",
				 o->in_path, archive_error_string(in));
		goto out;
	}
	if (archive_write_set_format_cpio_newc(w.a) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(w.a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(w.a, "zstd", "compression-level", "6") != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w.a, 1) != ARCHIVE_OK ||
	    archive_write_open_filename(w.a, o->out_path) != ARCHIVE_OK) {
		rc = aw_err(&w, o->out_path);
		goto out;
	}
	while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
		const char *name = norm_name(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");

		if (!*name || dropped(name))
			continue;
		if (archive_entry_mtime(e) > w.mtime)
			w.mtime = archive_entry_mtime(e);
		if (archive_entry_filetype(e) == AE_IFDIR) {
			rc = sl_add(&w.dirs, name);
			if (rc)
				goto out;
		}
		if (!strcmp(name, INITRAMFS_CRYPTROOT_SCRIPT) && archive_entry_filetype(e) == AE_IFREG) {
			script_seen = true;
			rc = rewrite_script(in, e, &w, o->device, &rep->replacements);
		} else if (archive_write_header(w.a, e) != ARCHIVE_OK) {
			rc = aw_err(&w, name);
		} else {
			rc = copy_entry_data(in, &w);
		}
		if (rc)
			goto out;
	}
	if (r != ARCHIVE_EOF) {
		rc = art_err_set(err, -EINVAL, "%s is not a readable cpio archive: %s", o->in_path,
				 archive_error_string(in));
		goto out;
	}
	if (!script_seen) {
		rc = art_err_set(err, -ENOENT, "%s has no %s: not a cryptroot initramfs", o->in_path,
				 INITRAMFS_CRYPTROOT_SCRIPT);
		goto out;
	}
	if (ext4_stat_path(o->root, "/usr/lib/modules", true, &st, NULL) == 0 && S_ISDIR(st.mode))
		moddir = "/usr/lib/modules";
	else if (ext4_stat_path(o->root, "/lib/modules", true, &st, NULL) == 0 && S_ISDIR(st.mode))
		moddir = "/lib/modules";
	if (!moddir) {
		rc = art_err_set(err, -ENOENT, "the gold image's root file system has no "
				 "/usr/lib/modules or /lib/modules: no kernel modules to add");
		goto out;
	}
	rc = ext4_list_dir(o->root, moddir, ver_cb, &vers, err);
	if (rc)
		goto out;
	if (vers.n)
		qsort(vers.v, vers.n, sizeof(*vers.v), str_cmp);
	for (i = 0; i < vers.n; i++) {
		struct flavour_ctx f = {.w = &w, .o = o, .rep = rep, .moddir = moddir};

		rc = do_flavour(&f, vers.v[i]);
		if (rc)
			goto out;
	}
	if (!rep->flavours_ok) {
		rc = art_err_set(err, -ENOENT, "no kernel flavour in %s of the gold image has any "
				 "module of kernel_modules.list (%s): the board could not unlock "
				 "its root", moddir, rep->warnings);
		goto out;
	}
	if (archive_write_close(w.a) != ARCHIVE_OK)
		rc = aw_err(&w, o->out_path);
out:
	if (in)
		archive_read_free(in);
	if (w.a)
		archive_write_free(w.a);
	if (rc)
		unlink(o->out_path);
	sl_free(&w.dirs);
	sl_free(&vers);
	return rc;
}
