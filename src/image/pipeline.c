/* pipeline: gold image → flashable artefacts per mode, through the cache
 * (see pipeline.h). Any worker thread; concurrent calls for the same inputs
 * share one build (cache.c's lock). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artefacts/payload.h"
#include "image/bootfiles.h"
#include "image/ext4.h"
#include "image/fat.h"
#include "image/initramfs.h"
#include "image/mbr.h"
#include "image/pipeline.h"
#include "image/rootfs.h"
#include "image/source.h"

#define TEXT_MAX (1u << 20)
#define MIB (1ull << 20)
#define BOOT_IMG_WARN (96ull << 20)

const char *pipeline_mode_name(enum pipeline_mode m)
{
	switch (m) {
	case PIPELINE_SECURE_BOOT:
		return "secure-boot";
	case PIPELINE_FDE_ONLY:
		return "fde-only";
	case PIPELINE_NAKED:
		return "naked";
	}
	return "?";
}

int pipeline_mode_parse(const char *s, enum pipeline_mode *m)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "secure-boot"))
		*m = PIPELINE_SECURE_BOOT;
	else if (!strcmp(s, "fde-only"))
		*m = PIPELINE_FDE_ONLY;
	else if (!strcmp(s, "naked"))
		*m = PIPELINE_NAKED;
	else
		return -EINVAL;
	return 0;
}

int pipeline_sign_with_signer(void *usr, const char *boot_img, const char *sig_out,
			      struct art_err *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	rc = payload_boot_sig(usr, boot_img, &text, &len, err);
	if (rc)
		return rc;
	f = fopen(sig_out, "we");
	if (!f) {
		rc = art_err_set(err, -errno, "cannot create %s: %s", sig_out, strerror(errno));
	} else {
		if (fwrite(text, 1, len, f) != len)
			rc = art_err_set(err, -EIO, "cannot write %s", sig_out);
		if (fclose(f) != 0 && !rc)
			rc = art_err_set(err, -errno, "cannot write %s: %s", sig_out, strerror(errno));
	}
	free(text);
	return rc;
}

static void warn(struct pipeline_outputs *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void warn(struct pipeline_outputs *o, const char *fmt, ...)
{
	size_t n = strlen(o->warnings);
	va_list ap;

	if (n + 2 >= sizeof(o->warnings))
		return;
	if (n) {
		memcpy(o->warnings + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(o->warnings + n, sizeof(o->warnings) - n, fmt, ap);
	va_end(ap);
}

/* ---- small file helpers */

static int read_text(const char *path, char **out, size_t *len, struct art_err *err)
{
	struct stat st;
	char *buf;
	int fd;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_size > TEXT_MAX) {
		close(fd);
		return art_err_set(err, -EFBIG, "%s is missing or larger than 1 MiB", path);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return art_err_set(err, -EIO, "cannot read %s", path);
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	return 0;
}

static int write_text(const char *path, const char *data, size_t len, time_t mtime,
		      struct art_err *err)
{
	struct timespec ts[2];
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return art_err_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len)
		rc = art_err_set(err, -EIO, "cannot write %s", path);
	if (!rc && mtime) {
		ts[0].tv_sec = ts[1].tv_sec = mtime;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		futimens(fd, ts);
	}
	if (close(fd) < 0 && !rc)
		rc = art_err_set(err, -errno, "cannot write %s: %s", path, strerror(errno));
	return rc;
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = t;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	utimensat(AT_FDCWD, path, ts, 0);
}

static char *pjoin(const char *a, const char *b)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

/* manifest: key=value lines describing an entry (so a hit knows sizes). */
static int manifest_write(const char *dir, const char *text, struct art_err *err)
{
	char *p = pjoin(dir, "manifest");
	int rc;

	if (!p)
		return -ENOMEM;
	rc = write_text(p, text, strlen(text), 0, err);
	free(p);
	return rc;
}

static uint64_t manifest_u64(const char *dir, const char *key)
{
	char *p = pjoin(dir, "manifest"), *text = NULL, *hit;
	size_t len, kl = strlen(key);
	uint64_t v = 0;

	if (p && read_text(p, &text, &len, NULL) == 0) {
		for (hit = text; (hit = strstr(hit, key)); hit += kl) {
			if ((hit == text || hit[-1] == '\n') && hit[kl] == '=') {
				v = strtoull(hit + kl + 1, NULL, 10);
				break;
			}
		}
	}
	free(text);
	free(p);
	return v;
}

/* ---- the gold image */

struct gold {
	char *raw;
	int fd;
	struct mbr mbr;
	const struct mbr_part *boot, *root;
};

static bool is_fat_type(uint8_t t)
{
	return t == 0x01 || t == 0x04 || t == 0x06 || t == 0x0b || t == 0x0c || t == 0x0e;
}

static int gold_open(const char *raw, struct gold *g, bool need_two, struct art_err *err)
{
	int rc;

	memset(g, 0, sizeof(*g));
	g->fd = open(raw, O_RDONLY | O_CLOEXEC);
	if (g->fd < 0)
		return art_err_set(err, -errno, "cannot open gold image %s: %s", raw, strerror(errno));
	rc = mbr_read_fd(g->fd, &g->mbr, err);
	if (rc) {
		art_err_prefix(err, "gold image %s: ", raw);
		return rc;
	}
	g->boot = &g->mbr.part[0];
	g->root = &g->mbr.part[1];
	if (need_two && (!is_fat_type(g->boot->type) || g->root->type != MBR_TYPE_LINUX))
		return art_err_set(err, -EINVAL, "gold image %s is not pi-gen style: partition 1 "
				   "must be FAT (type 0c) and partition 2 Linux (83); found %02x "
				   "and %02x", raw, g->boot->type, g->root->type);
	return 0;
}

static void gold_close(struct gold *g)
{
	if (g->fd > 0)
		close(g->fd);
	g->fd = -1;
}

/* ---- boot entry */

/* A FAT volume serial that follows the gold image (same image, same bytes). */
static uint32_t volume_id(const char *sha_hex)
{
	char head[9];

	memcpy(head, sha_hex, 8);
	head[8] = '\0';
	return (uint32_t)strtoul(head, NULL, 16);
}

struct build_ctx {
	const struct pipeline_inputs *in;
	struct pipeline_outputs *out;
	const char *raw;
};

/* rpi-make-boot-image -b pi<family> -a 64 (spec §5.1): Pi 4 boards drop the
 * pre-Pi4 firmware and kernels, the start4cd/db/x variants, bcm2708-2710
 * DTBs and the 2712 kernel; -a 64 drops kernel7l.img everywhere. */
static int prune_boot_tree(const char *dir, const char *family, struct art_err *err)
{
	static const char *const pi4_drop[] = {
		"bootcode.bin", "start.elf", "start_cd.elf", "start_db.elf", "start_x.elf",
		"fixup.dat", "fixup_cd.dat", "fixup_db.dat", "fixup_x.dat", "start4cd.elf",
		"start4db.elf", "start4x.elf", "fixup4cd.dat", "fixup4db.dat", "fixup4x.dat",
		"kernel.img", "kernel7.img", "kernel_2712.img", "initramfs_2712", "initramfs7",
		"bcm2708*.dtb", "bcm2709*.dtb", "bcm2710*.dtb",
	};
	bool pi4 = family && !strcmp(family, "4");
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;
	size_t i;

	if (!d)
		return art_err_set(err, -errno, "cannot read %s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		bool drop = !strcmp(de->d_name, "kernel7l.img") || !strcmp(de->d_name, "initramfs7l");

		for (i = 0; pi4 && !drop && i < sizeof(pi4_drop) / sizeof(pi4_drop[0]); i++)
			drop = fnmatch(pi4_drop[i], de->d_name, 0) == 0;
		if (drop) {
			char *p = pjoin(dir, de->d_name);

			if (!p || unlink(p) < 0) {
				rc = p ? art_err_set(err, -errno, "cannot remove %s", p) : -ENOMEM;
				free(p);
				break;
			}
			free(p);
		}
	}
	closedir(d);
	return rc;
}

static int rewrite_file(const char *dir, const char *name, bool config, struct art_err *err)
{
	char *p = pjoin(dir, name), *text = NULL, *res = NULL;
	struct stat st;
	size_t len;
	int rc;

	if (!p)
		return -ENOMEM;
	rc = read_text(p, &text, &len, err);
	if (rc) {
		art_err_prefix(err, "gold image boot partition: ");
		goto out;
	}
	rc = config ? bootfiles_config_rewrite(text, len, &res, err)
		    : bootfiles_cmdline_rewrite(text, len, &res, err);
	if (rc)
		goto out;
	rc = stat(p, &st);
	rc = write_text(p, res, strlen(res), rc == 0 ? st.st_mtime : 0, err);
out:
	free(p);
	free(text);
	free(res);
	return rc;
}

static int extent_cb(void *usr, uint64_t off, uint64_t len)
{
	return extents_add(usr, off, len);
}

static int simg_of_fat(const char *fat_path, const char *simg_path, uint64_t bytes,
		       struct simg_stats *st, unsigned *bits, struct art_err *err)
{
	struct extent_list ext = {0};
	struct fat_vol *v = NULL;
	int fd, rc;

	fd = open(fat_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "cannot open %s: %s", fat_path, strerror(errno));
	rc = fat_open(fd, 0, bytes, &v, err);
	if (!rc)
		rc = fat_used_extents(v, extent_cb, &ext, err);
	if (!rc && bits)
		*bits = fat_bits(v);
	if (!rc)
		rc = simg_write(fd, 0, bytes, &ext, simg_path, st, err);
	fat_close(v);
	extents_free(&ext);
	close(fd);
	return rc;
}

static int build_boot(void *usr, const char *tmp, struct art_err *err)
{
	struct build_ctx *c = usr;
	const struct pipeline_inputs *in = c->in;
	struct pipeline_outputs *out = c->out;
	bool zero2w = in->family && !strcmp(in->family, "2W") && in->mode == PIPELINE_FDE_ONLY;
	char *work = pjoin(tmp, "work"), *boot = NULL, *part = NULL, *p = NULL, *q = NULL;
	char *bootimg = pjoin(tmp, "boot.img"), *bootsig = pjoin(tmp, "boot.sig");
	char *fatimg = pjoin(tmp, "bootfs.img"), *simg = pjoin(tmp, "bootfs.simg");
	struct initramfs_report rep;
	struct fat_mkfs_opts fo;
	struct simg_stats ss;
	struct fat_vol *v = NULL;
	struct ext4_fs *root = NULL;
	struct gold g = {.fd = -1};
	struct stat st;
	uint64_t part_bytes, bootimg_bytes = 0;
	unsigned bits = 0, part_bits = 0;
	time_t stamp = 0;
	char manifest[512];
	int rc;

	if (!work || !bootimg || !bootsig || !fatimg || !simg) {
		rc = -ENOMEM;
		goto out;
	}
	boot = pjoin(work, "boot");
	part = pjoin(work, "part");
	if (!boot || !part) {
		rc = -ENOMEM;
		goto out;
	}
	if (mkdir(work, 0700) < 0 || mkdir(boot, 0755) < 0 || mkdir(part, 0755) < 0) {
		rc = art_err_set(err, -errno, "cannot create %s: %s", work, strerror(errno));
		goto out;
	}
	rc = gold_open(c->raw, &g, true, err);
	if (rc)
		goto out;
	/* 1. the boot files, straight out of the FAT (no mount) */
	rc = fat_open(g.fd, mbr_part_offset(g.boot), mbr_part_bytes(g.boot), &v, err);
	if (!rc)
		rc = fat_extract_tree(v, boot, err);
	fat_close(v);
	v = NULL;
	if (rc) {
		art_err_prefix(err, "gold image boot partition: ");
		goto out;
	}
	/* 2. text edits (peer §4.2 steps 5-6; the Zero 2 W path keeps config.txt) */
	rc = rewrite_file(boot, "cmdline.txt", false, err);
	if (!rc && !zero2w)
		rc = rewrite_file(boot, "config.txt", true, err);
	if (rc)
		goto out;
	p = pjoin(boot, "config.txt");
	if (p && stat(p, &st) == 0)
		stamp = st.st_mtime;
	free(p);
	p = NULL;
	/* 3. the cryptroot initramfs with this image's modules */
	rc = ext4_open(c->raw, mbr_part_offset(g.root), mbr_part_bytes(g.root), &root, err);
	if (rc)
		goto out;
	p = pjoin(boot, "initramfs8");
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	{
		struct initramfs_opts io = {
			.in_path = in->initramfs, .out_path = p, .root = root,
			.modules = in->modules, .nmodules = in->nmodules,
			.device = bootfiles_storage_device(in->storage),
		};

		if (!io.device) {
			rc = art_err_set(err, -EINVAL, "storage \"%s\" is not sd, emmc or nvme",
					 in->storage ? in->storage : "(unset)");
			goto out;
		}
		if (!in->initramfs) {
			rc = art_err_set(err, -EINVAL, "no cryptroot initramfs configured: "
					 "%s needs one", pipeline_mode_name(in->mode));
			goto out;
		}
		rc = initramfs_augment(&io, &rep, err);
		if (rc)
			goto out;
		if (rep.warnings[0])
			warn(out, "initramfs: %s", rep.warnings);
	}
	if (stamp)
		set_mtime(p, stamp);
	/* 4. per-board customisation of the boot tree */
	if (in->on_boot_tree) {
		rc = in->on_boot_tree(in->tree_usr, boot, err);
		if (rc)
			goto out;
	}
	part_bytes = (mbr_part_bytes(g.boot) + MIB - 1) / MIB * MIB;
	if (zero2w) {
		/* plain boot files + initramfs8 in the partition itself */
		uint64_t size = part_bytes;
		int tries;

		for (tries = 0; tries < 6; tries++, size *= 2) {
			fat_opts_boot_partition(&fo, size);
			fo.timestamp = in->timestamp;
			fo.volume_id = volume_id(out->image_sha256) ^ 0x00010001u;
			rc = fat_build_from_dir(boot, &fo, fatimg, &part_bits, err);
			if (rc != -ENOSPC)
				break;
		}
		if (rc)
			goto out;
		part_bytes = size;
	} else {
		/* 5. boot.img, as rpi-make-boot-image -b pi<family> -a 64 makes it */
		rc = prune_boot_tree(boot, in->family, err);
		if (rc)
			goto out;
		fat_opts_boot_img(&fo);
		fo.timestamp = in->timestamp;
		fo.volume_id = volume_id(out->image_sha256);
		rc = fat_build_from_dir(boot, &fo, bootimg, &bits, err);
		if (rc)
			goto out;
		if (stat(bootimg, &st) == 0)
			bootimg_bytes = (uint64_t)st.st_size;
		if (bootimg_bytes > BOOT_IMG_WARN)
			warn(out, "boot.img is %" PRIu64 " MiB: bootloaders before 2022 refuse "
			     "more than 96 MiB", bootimg_bytes >> 20);
		out->boot_img_fat_bits = bits;
		/* 6. boot.sig */
		if (in->mode == PIPELINE_SECURE_BOOT) {
			if (!in->sign) {
				rc = art_err_set(err, -EINVAL, "secure-boot needs a signing key to "
						 "sign boot.img: set [key] pem or [key] signer");
				goto out;
			}
			rc = in->sign(in->sign_usr, bootimg, bootsig, err);
			if (rc)
				goto out;
		}
		/* 7. the boot partition: boot.img, boot.sig, config.txt */
		q = pjoin(part, "boot.img");
		if (!q || link(bootimg, q) < 0) {
			rc = q ? art_err_set(err, -errno, "cannot link %s: %s", q, strerror(errno))
			       : -ENOMEM;
			goto out;
		}
		free(q);
		q = NULL;
		if (in->mode == PIPELINE_SECURE_BOOT) {
			q = pjoin(part, "boot.sig");
			if (!q || link(bootsig, q) < 0) {
				rc = q ? art_err_set(err, -errno, "cannot link %s: %s", q,
						     strerror(errno)) : -ENOMEM;
				goto out;
			}
			free(q);
			q = NULL;
		}
		q = pjoin(part, "config.txt");
		if (!q) {
			rc = -ENOMEM;
			goto out;
		}
		rc = write_text(q, bootfiles_ramdisk_config, strlen(bootfiles_ramdisk_config),
				stamp, err);
		if (rc)
			goto out;
		if (stamp) {
			set_mtime(bootimg, stamp);
			if (in->mode == PIPELINE_SECURE_BOOT)
				set_mtime(bootsig, stamp);
		}
		fat_opts_boot_partition(&fo, part_bytes);
		fo.timestamp = in->timestamp;
		fo.volume_id = volume_id(out->image_sha256) ^ 0x00010001u;
		rc = fat_build_from_dir(part, &fo, fatimg, &part_bits, err);
		if (rc) {
			art_err_prefix(err, "boot partition of %" PRIu64 " bytes: ", part_bytes);
			goto out;
		}
	}
	/* 8. sparse: only the FAT's used clusters */
	rc = simg_of_fat(fatimg, simg, part_bytes, &ss, NULL, err);
	if (rc)
		goto out;
	unlink(fatimg);
	if (in->mode != PIPELINE_SECURE_BOOT)
		unlink(bootsig);
	snprintf(manifest, sizeof(manifest),
		 "mode=%s\nbootfs_bytes=%" PRIu64 "\nbootfs_file_bytes=%" PRIu64
		 "\nbootfs_fat_bits=%u\nboot_img_bytes=%" PRIu64 "\nboot_img_fat_bits=%u\n",
		 pipeline_mode_name(in->mode), ss.expanded_bytes, ss.file_bytes, part_bits,
		 bootimg_bytes, bits);
	rc = manifest_write(tmp, manifest, err);
	if (!rc)
		cache_remove_tree(work);
out:
	ext4_close(root);
	gold_close(&g);
	free(work);
	free(boot);
	free(part);
	free(p);
	free(q);
	free(bootimg);
	free(bootsig);
	free(fatimg);
	free(simg);
	return rc;
}

/* ---- rootfs entry */

static int build_rootfs(void *usr, const char *tmp, struct art_err *err)
{
	struct build_ctx *c = usr;
	struct rootfs_stats st;
	struct gold g = {.fd = -1};
	char *simg = pjoin(tmp, "rootfs.simg"), manifest[256];
	int rc;

	if (!simg)
		return -ENOMEM;
	rc = gold_open(c->raw, &g, true, err);
	if (!rc)
		rc = rootfs_build(c->raw, mbr_part_offset(g.root), mbr_part_bytes(g.root),
				  c->in->container_bytes, tmp, simg, c->in->on_root_image,
				  c->in->root_usr, &st, err);
	gold_close(&g);
	if (!rc) {
		snprintf(manifest, sizeof(manifest),
			 "rootfs_bytes=%" PRIu64 "\nrootfs_file_bytes=%" PRIu64
			 "\nrootfs_source_bytes=%" PRIu64 "\ncontainer_bytes=%" PRIu64 "\n",
			 st.simg.expanded_bytes, st.simg.file_bytes, st.source_bytes,
			 c->in->container_bytes);
		rc = manifest_write(tmp, manifest, err);
	}
	free(simg);
	return rc;
}

/* ---- naked */

struct naked_ctx {
	struct extent_list *ext;
	uint64_t base;
};

static int naked_add(void *usr, uint64_t off, uint64_t len)
{
	struct naked_ctx *n = usr;

	return extents_add(n->ext, n->base + off, len);
}

/* Non-zero 4 KiB blocks of [off, off+len) of @fd. */
static int add_nonzero(int fd, uint64_t off, uint64_t len, struct extent_list *ext,
		       struct art_err *err)
{
	uint8_t *buf = malloc(1u << 20);
	uint64_t end = off + len;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (off < end && !rc) {
		size_t want = end - off > (1u << 20) ? (1u << 20) : (size_t)(end - off), i;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				rc = art_err_set(err, -errno, "cannot read the gold image: %s",
						 strerror(errno));
			break;
		}
		for (i = 0; i < (size_t)n && !rc; i += SIMG_BLOCK) {
			size_t bl = (size_t)n - i < SIMG_BLOCK ? (size_t)n - i : SIMG_BLOCK;

			if (buf[i] || memcmp(buf + i, buf + i + 1, bl - 1))
				rc = extents_add(ext, off + i, bl);
		}
		off += (uint64_t)n;
	}
	free(buf);
	return rc;
}

/* The byte ranges of a whole-disk image that must be flashed: the MBR, the
 * non-zero blocks outside partitions, used clusters/blocks of FAT and ext4
 * partitions, the non-zero blocks of any other partition. */
static int naked_extents(const char *raw, const struct gold *g, uint64_t size,
			 struct extent_list *ext, struct pipeline_outputs *o, struct art_err *err)
{
	int rc, i, order[MBR_PARTS], n = 0, a, b;
	uint64_t pos = 0;

	for (i = 0; i < MBR_PARTS; i++)
		if (g->mbr.part[i].type)
			order[n++] = i;
	for (a = 0; a < n; a++)		/* by start sector */
		for (b = a + 1; b < n; b++)
			if (g->mbr.part[order[b]].lba_start < g->mbr.part[order[a]].lba_start) {
				int t = order[a];

				order[a] = order[b];
				order[b] = t;
			}
	rc = extents_add(ext, 0, MBR_SECTOR);	/* the partition table itself */
	for (a = 0; a < n && !rc; a++) {
		const struct mbr_part *p = &g->mbr.part[order[a]];
		uint64_t off = mbr_part_offset(p), len = mbr_part_bytes(p);
		struct naked_ctx nc = {.ext = ext, .base = off};
		struct art_err ignore;
		int r = -1;

		if (off > pos)
			rc = add_nonzero(g->fd, pos, off - pos, ext, err);
		if (rc)
			break;
		if (is_fat_type(p->type)) {
			struct fat_vol *v = NULL;

			r = fat_open(g->fd, off, len, &v, &ignore);
			if (!r)
				r = fat_used_extents(v, naked_add, &nc, &ignore);
			fat_close(v);
		} else if (p->type == MBR_TYPE_LINUX) {
			struct ext4_fs *fs = NULL;

			r = ext4_open(raw, off, len, &fs, &ignore);
			if (!r)
				r = ext4_used_extents(fs, naked_add, &nc, &ignore);
			ext4_close(fs);
		}
		if (r) {
			if (r != -1 && o)
				warn(o, "partition %d: %s; copying its non-zero blocks", order[a] + 1,
				     ignore.msg);
			rc = add_nonzero(g->fd, off, len, ext, err);
		}
		pos = off + len;
	}
	if (!rc && pos < size)
		rc = add_nonzero(g->fd, pos, size - pos, ext, err);
	return rc;
}

/* disk.simg of @raw into @simg; manifest text into @manifest. */
static int naked_simg(const char *raw, const char *simg, struct pipeline_outputs *o,
		      struct simg_stats *ss, struct art_err *err)
{
	struct extent_list ext = {0};
	struct gold g = {.fd = -1};
	struct stat st;
	int rc;

	rc = gold_open(raw, &g, false, err);
	if (rc)
		goto out;
	if (fstat(g.fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	rc = naked_extents(raw, &g, (uint64_t)st.st_size, &ext, o, err);
	if (!rc)
		rc = simg_write(g.fd, 0, (uint64_t)st.st_size, &ext, simg, ss, err);
out:
	gold_close(&g);
	extents_free(&ext);
	return rc;
}

static int build_naked(void *usr, const char *tmp, struct art_err *err)
{
	struct build_ctx *c = usr;
	struct simg_stats ss;
	char *simg = pjoin(tmp, "disk.simg"), manifest[256];
	int rc;

	if (!simg)
		return -ENOMEM;
	rc = naked_simg(c->raw, simg, c->out, &ss, err);
	if (!rc) {
		snprintf(manifest, sizeof(manifest),
			 "disk_bytes=%" PRIu64 "\ndisk_file_bytes=%" PRIu64 "\n", ss.expanded_bytes,
			 ss.file_bytes);
		rc = manifest_write(tmp, manifest, err);
	}
	free(simg);
	return rc;
}

int image_pipeline_naked_custom(const struct pipeline_inputs *in, pipeline_root_fn edit,
				void *usr, const char *work_dir, struct pipeline_outputs *out,
				struct art_err *err)
{
	struct extent_list ext = {0};
	struct gold g = {.fd = -1};
	struct simg_stats ss;
	struct stat st;
	char *raw = NULL, *copy = pjoin(work_dir, "disk.img"), *simg = pjoin(work_dir, "disk.simg");
	uint8_t *buf = malloc(1u << 20);
	int fd = -1, rc;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!copy || !simg || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = source_prepare(in->cache_dir, in->gold, &raw, out->image_sha256, err);
	if (rc)
		goto out;
	rc = gold_open(raw, &g, false, err);
	if (!rc && fstat(g.fd, &st) < 0)
		rc = -errno;
	if (!rc)
		rc = naked_extents(raw, &g, (uint64_t)st.st_size, &ext, out, err);
	if (rc)
		goto out;
	/* a private copy of what matters (holes elsewhere): it may get secrets */
	fd = open(copy, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, st.st_size) < 0) {
		rc = art_err_set(err, -errno, "cannot create %s: %s", copy, strerror(errno));
		goto out;
	}
	for (i = 0; i < ext.n && !rc; i++) {
		uint64_t off = ext.v[i].off, left = ext.v[i].len;

		while (left && !rc) {
			size_t n = left > (1u << 20) ? (1u << 20) : (size_t)left;
			ssize_t r = pread(g.fd, buf, n, (off_t)off);

			if (r <= 0 || pwrite(fd, buf, (size_t)r, (off_t)off) != r)
				rc = art_err_set(err, -EIO, "cannot copy the gold image to %s", copy);
			off += n;
			left -= n;
		}
	}
	if (rc)
		goto out;
	close(fd);
	fd = -1;
	gold_close(&g);
	rc = edit(usr, copy, err);
	if (rc)
		goto out;
	rc = naked_simg(copy, simg, out, &ss, err);
	if (rc)
		goto out;
	out->disk_simg = simg;
	simg = NULL;
	out->disk_bytes = ss.expanded_bytes;
	out->disk_file_bytes = ss.file_bytes;
out:
	if (fd >= 0)
		close(fd);
	gold_close(&g);
	if (copy)
		unlink(copy);
	extents_free(&ext);
	free(buf);
	free(raw);
	free(copy);
	free(simg);
	return rc;
}

/* ---- keys and the entry point */

static void key_common(struct cache_key *k, const struct pipeline_inputs *in, const char *sha)
{
	cache_key_add_str(k, "image-sha256", sha);
	cache_key_add_str(k, "mode", pipeline_mode_name(in->mode));
	cache_key_add_str(k, "settings", in->settings);
}

void pipeline_outputs_free(struct pipeline_outputs *o)
{
	free(o->boot_entry);
	free(o->rootfs_entry);
	free(o->disk_entry);
	free(o->bootfs_simg);
	free(o->boot_img);
	free(o->boot_sig);
	free(o->rootfs_simg);
	free(o->disk_simg);
	memset(o, 0, sizeof(*o));
}

int image_pipeline_build(const struct pipeline_inputs *in, struct pipeline_outputs *out,
			 struct art_err *err)
{
	struct build_ctx c = {.in = in, .out = out};
	struct cache_key k;
	char key[CACHE_KEY_HEX], *raw = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!in->gold)
		return art_err_set(err, -EINVAL, "no gold image configured ([image] gold)");
	if (!in->cache_dir)
		return art_err_set(err, -EINVAL, "no cache directory ([paths] cache_dir)");
	if (in->mode == PIPELINE_SECURE_BOOT && in->sign && !in->key_fingerprint)
		/* without it a new key would meet a boot.sig made with the old one */
		return art_err_set(err, -EINVAL, "secure-boot: the signing key's fingerprint "
				   "is needed for the cache key");
	rc = source_prepare(in->cache_dir, in->gold, &raw, out->image_sha256, err);
	if (rc)
		return rc;
	c.raw = raw;
	if (in->mode == PIPELINE_NAKED) {
		cache_key_init(&k, "naked-disk");
		key_common(&k, in, out->image_sha256);
		cache_key_final(&k, key);
		rc = cache_get(in->cache_dir, key, build_naked, &c, &out->disk_entry,
			       &out->disk_hit, err);
		if (rc)
			goto out;
		out->disk_simg = pjoin(out->disk_entry, "disk.simg");
		out->disk_bytes = manifest_u64(out->disk_entry, "disk_bytes");
		out->disk_file_bytes = manifest_u64(out->disk_entry, "disk_file_bytes");
		goto out;
	}
	cache_key_init(&k, "boot");
	key_common(&k, in, out->image_sha256);
	cache_key_add_str(&k, "family", in->family);
	cache_key_add_str(&k, "storage", in->storage);
	cache_key_add_str(&k, "cipher", in->cipher);
	cache_key_add_str(&k, "key", in->mode == PIPELINE_SECURE_BOOT ? in->key_fingerprint : NULL);
	cache_key_add_str(&k, "tree-hook", in->on_boot_tree ? (in->tree_id ? in->tree_id : "anon")
							  : NULL);
	cache_key_add_u64(&k, "timestamp", (uint64_t)in->timestamp);
	if (in->modules) {
		size_t i;

		for (i = 0; i < in->nmodules; i++)
			cache_key_add_str(&k, "module", in->modules[i]);
	}
	if (in->initramfs) {
		rc = cache_key_add_file(&k, "initramfs", in->initramfs, err);
		if (rc) {
			cache_key_final(&k, key);
			goto out;
		}
	}
	cache_key_final(&k, key);
	rc = cache_get(in->cache_dir, key, build_boot, &c, &out->boot_entry, &out->boot_hit, err);
	if (rc)
		goto out;
	out->bootfs_simg = pjoin(out->boot_entry, "bootfs.simg");
	out->bootfs_bytes = manifest_u64(out->boot_entry, "bootfs_bytes");
	out->bootfs_file_bytes = manifest_u64(out->boot_entry, "bootfs_file_bytes");
	out->boot_img_fat_bits = (unsigned)manifest_u64(out->boot_entry, "boot_img_fat_bits");
	if (out->boot_img_fat_bits)
		out->boot_img = pjoin(out->boot_entry, "boot.img");
	if (in->mode == PIPELINE_SECURE_BOOT)
		out->boot_sig = pjoin(out->boot_entry, "boot.sig");
	if (!in->container_bytes)
		goto out;
	cache_key_init(&k, "rootfs");
	cache_key_add_str(&k, "image-sha256", out->image_sha256);
	cache_key_add_u64(&k, "container-bytes", in->container_bytes);
	cache_key_add_str(&k, "root-hook", in->on_root_image ? (in->root_id ? in->root_id : "anon")
							    : NULL);
	cache_key_add_str(&k, "settings", in->settings);
	cache_key_final(&k, key);
	rc = cache_get(in->cache_dir, key, build_rootfs, &c, &out->rootfs_entry, &out->rootfs_hit,
		       err);
	if (rc)
		goto out;
	out->rootfs_simg = pjoin(out->rootfs_entry, "rootfs.simg");
	out->rootfs_bytes = manifest_u64(out->rootfs_entry, "rootfs_bytes");
	out->rootfs_file_bytes = manifest_u64(out->rootfs_entry, "rootfs_file_bytes");
out:
	free(raw);
	return rc;
}
