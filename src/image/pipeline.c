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
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sparse/sparse.h>

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

extern char **environ;

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

/* What pack_boot made. */
struct boot_pack {
	uint64_t bootimg_bytes;
	unsigned bits, part_bits;
	struct simg_stats ss;
};

/* Steps 5-8 of the boot entry: from the finished boot tree @boot to
 * @tmp/bootfs.simg (and @tmp/boot.img, @tmp/boot.sig in the Pi 4/5 modes),
 * through the empty directory @part; a partition of @part_bytes (the Zero 2 W
 * path doubles it while the files do not fit). @stamp: config.txt's time. */
static int pack_boot(const struct pipeline_inputs *in, struct pipeline_outputs *out,
		     const char *boot, const char *part, const char *tmp, uint64_t part_bytes,
		     time_t stamp, struct boot_pack *bp, struct art_err *err)
{
	bool zero2w = in->family && !strcmp(in->family, "2W") && in->mode == PIPELINE_FDE_ONLY;
	char *bootimg = pjoin(tmp, "boot.img"), *bootsig = pjoin(tmp, "boot.sig");
	char *fatimg = pjoin(tmp, "bootfs.img"), *simg = pjoin(tmp, "bootfs.simg"), *q = NULL;
	struct fat_mkfs_opts fo;
	struct stat st;
	int rc;

	memset(bp, 0, sizeof(*bp));
	if (!bootimg || !bootsig || !fatimg || !simg) {
		rc = -ENOMEM;
		goto out;
	}
	if (zero2w) {
		/* plain boot files + initramfs8 in the partition itself */
		uint64_t size = part_bytes;
		int tries;

		for (tries = 0; tries < 6; tries++, size *= 2) {
			fat_opts_boot_partition(&fo, size);
			fo.timestamp = in->timestamp;
			fo.volume_id = volume_id(out->image_sha256) ^ 0x00010001u;
			rc = fat_build_from_dir(boot, &fo, fatimg, &bp->part_bits, err);
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
		rc = fat_build_from_dir(boot, &fo, bootimg, &bp->bits, err);
		if (rc)
			goto out;
		if (stat(bootimg, &st) == 0)
			bp->bootimg_bytes = (uint64_t)st.st_size;
		if (bp->bootimg_bytes > BOOT_IMG_WARN)
			warn(out, "boot.img is %" PRIu64 " MiB: bootloaders before 2022 refuse "
			     "more than 96 MiB", bp->bootimg_bytes >> 20);
		out->boot_img_fat_bits = bp->bits;
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
		rc = fat_build_from_dir(part, &fo, fatimg, &bp->part_bits, err);
		if (rc) {
			art_err_prefix(err, "boot partition of %" PRIu64 " bytes: ", part_bytes);
			goto out;
		}
	}
	/* 8. sparse: only the FAT's used clusters */
	rc = simg_of_fat(fatimg, simg, part_bytes, &bp->ss, NULL, err);
	if (rc)
		goto out;
	unlink(fatimg);
	if (in->mode != PIPELINE_SECURE_BOOT)
		unlink(bootsig);
out:
	free(q);
	free(bootimg);
	free(bootsig);
	free(fatimg);
	free(simg);
	return rc;
}

static int build_boot(void *usr, const char *tmp, struct art_err *err)
{
	struct build_ctx *c = usr;
	const struct pipeline_inputs *in = c->in;
	struct pipeline_outputs *out = c->out;
	bool zero2w = in->family && !strcmp(in->family, "2W") && in->mode == PIPELINE_FDE_ONLY;
	char *work = pjoin(tmp, "work"), *boot = NULL, *part = NULL, *p = NULL;
	struct initramfs_report rep;
	struct boot_pack bp;
	struct fat_vol *v = NULL;
	struct ext4_fs *root = NULL;
	struct gold g = {.fd = -1};
	struct stat st;
	time_t stamp = 0;
	char manifest[512];
	int rc;

	if (!work) {
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
	/* 4. customisation of the boot tree (cached: the same for every board) */
	if (in->on_boot_tree) {
		rc = in->on_boot_tree(in->tree_usr, boot, err);
		if (rc)
			goto out;
	}
	/* 5-8. boot.img, boot.sig, the partition, its sparse image */
	rc = pack_boot(in, out, boot, part, tmp, (mbr_part_bytes(g.boot) + MIB - 1) / MIB * MIB,
		       stamp, &bp, err);
	if (rc)
		goto out;
	snprintf(manifest, sizeof(manifest),
		 "mode=%s\nbootfs_bytes=%" PRIu64 "\nbootfs_file_bytes=%" PRIu64
		 "\nbootfs_fat_bits=%u\nboot_img_bytes=%" PRIu64 "\nboot_img_fat_bits=%u\n",
		 pipeline_mode_name(in->mode), bp.ss.expanded_bytes, bp.ss.file_bytes, bp.part_bits,
		 bp.bootimg_bytes, bp.bits);
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

/* Copy the byte ranges @ext of @in to @out, @dst_base further on, through
 * @buf (1 MiB). */
static int copy_extents(int in, int out, const struct extent_list *ext, uint64_t dst_base,
			uint8_t *buf, struct art_err *err)
{
	for (size_t i = 0; i < ext->n; i++) {
		uint64_t off = ext->v[i].off, left = ext->v[i].len;

		while (left) {
			size_t n = left > (1u << 20) ? (1u << 20) : (size_t)left;
			ssize_t r = pread(in, buf, n, (off_t)off);

			if (r != (ssize_t)n || pwrite(out, buf, n, (off_t)(dst_base + off)) != r)
				return art_err_set(err, -EIO, "cannot copy %zu bytes at %" PRIu64,
						   n, off);
			off += n;
			left -= n;
		}
	}
	return 0;
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
	rc = copy_extents(g.fd, fd, &ext, 0, buf, err);
	if (rc) {
		art_err_prefix(err, "copying the gold image to %s: ", copy);
		goto out;
	}
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

/* ---- per-board customisation (the *-bootfs-mounted / *-rootfs-mounted hooks)
 *
 * The hooks get real directory trees of the board's own copy: the boot tree
 * (FAT, extracted with fat.c) and the root tree (`debugfs rdump` of the gold
 * image's root partition, owners and modes kept). Both trees are snapshotted
 * (lstat of every entry, ctime and inode included, so any write, rename,
 * chmod or chown shows) before and after the hooks; only a partition whose
 * tree changed is rebuilt. The boot partition is repacked from its tree (it
 * is small); the root file system is never rebuilt from the tree: the
 * changes alone are written into a copy of the cached image with `debugfs
 * -w`, so every untouched file keeps its bytes, inode, hard links and
 * xattrs. */

struct tree_entry {
	char *path;		/* relative to the tree; "" is the top */
	struct stat st;
};

struct tree_snap {
	struct tree_entry *v;
	size_t n, cap;
};

static void snap_free(struct tree_snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int snap_add(struct tree_snap *s, const char *path, const struct stat *st)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct tree_entry *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n].path = strdup(path);
	if (!s->v[s->n].path)
		return -ENOMEM;
	s->v[s->n++].st = *st;
	return 0;
}

/* Every entry under @dirfd (whose own path is @rel), depth first. */
static int snap_walk(int dirfd, const char *rel, struct tree_snap *s, struct art_err *err)
{
	struct dirent *de;
	DIR *d = fdopendir(dirfd);
	int rc = 0;

	if (!d) {
		close(dirfd);
		return art_err_set(err, -errno, "cannot read %s: %s", rel, strerror(errno));
	}
	while (!rc && (de = readdir(d))) {
		struct stat st;
		char *path = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&path, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0)
			return closedir(d), -ENOMEM;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = art_err_set(err, -errno, "%s: %s", path, strerror(errno));
		if (!rc)
			rc = snap_add(s, path, &st);
		if (!rc && S_ISDIR(st.st_mode)) {
			int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC);

			rc = fd < 0 ? art_err_set(err, -errno, "%s: %s", path, strerror(errno))
				    : snap_walk(fd, path, s, err);
		}
		free(path);
	}
	closedir(d);
	return rc;
}

static int snap_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tree_entry *)a)->path, ((const struct tree_entry *)b)->path);
}

static int snap_take(const char *dir, struct tree_snap *s, struct art_err *err)
{
	struct stat st;
	int fd, rc;

	memset(s, 0, sizeof(*s));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = art_err_set(err, -errno, "cannot read %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	rc = snap_add(s, "", &st);
	if (!rc)
		rc = snap_walk(fd, "", s, err);
	else
		close(fd);
	if (rc)
		snap_free(s);
	else
		qsort(s->v, s->n, sizeof(*s->v), snap_cmp);
	return rc;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool entry_changed(const struct stat *a, const struct stat *b)
{
	return a->st_mode != b->st_mode || a->st_uid != b->st_uid || a->st_gid != b->st_gid ||
	       a->st_ino != b->st_ino || a->st_size != b->st_size ||
	       !ts_eq(a->st_mtim, b->st_mtim) || !ts_eq(a->st_ctim, b->st_ctim) ||
	       a->st_rdev != b->st_rdev;
}

/* One change between two snapshots: @before and/or @after. */
typedef int (*snap_change_fn)(void *usr, const struct tree_entry *before,
			      const struct tree_entry *after);

static int snap_diff(const struct tree_snap *a, const struct tree_snap *b, snap_change_fn fn,
		     void *usr, size_t *changes)
{
	size_t i = 0, j = 0;
	int rc = 0;

	*changes = 0;
	while (!rc && (i < a->n || j < b->n)) {
		int c = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->v[i].path, b->v[j].path);

		if (c < 0) {
			rc = fn(usr, &a->v[i++], NULL);
		} else if (c > 0) {
			rc = fn(usr, NULL, &b->v[j++]);
		} else {
			if (entry_changed(&a->v[i].st, &b->v[j].st))
				rc = fn(usr, &a->v[i], &b->v[j]);
			else
				(*changes)--;
			i++;
			j++;
		}
		(*changes)++;
	}
	return rc;
}

static int count_change(void *usr, const struct tree_entry *before, const struct tree_entry *after)
{
	(void)usr;
	(void)before;
	(void)after;
	return 0;
}

/* Run @argv with stdout and stderr into @out_path. 0 when it exited 0. */
static int run_to_file(const char *const argv[], const char *out_path, struct art_err *err)
{
	static const char *const dirs[] = {"/sbin", "/usr/sbin", "/usr/bin", "/bin"};
	posix_spawn_file_actions_t fa;
	char path[256];
	int status = 0, rc;
	pid_t pid;

	snprintf(path, sizeof(path), "%s", argv[0]);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char cand[256];

		snprintf(cand, sizeof(cand), "%s/%s", dirs[i], argv[0]);
		if (access(cand, X_OK) == 0) {
			snprintf(path, sizeof(path), "%s", cand);
			break;
		}
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawnp(&pid, path, &fa, NULL, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return art_err_set(err, -rc, "cannot run %s: %s (install e2fsprogs)", argv[0],
				   strerror(rc));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return art_err_set(err, -EIO, "%s failed (status %d)", argv[0], status);
	return 0;
}

/* The first line of debugfs output that is neither its banner, a command
 * echo nor an "Allocated inode" note: what went wrong. NULL when none. */
static char *debugfs_first_error(const char *out_path)
{
	char *text = NULL, *line, *save = NULL, *res = NULL;
	size_t len;

	if (read_text(out_path, &text, &len, NULL) < 0)
		return strdup("(its output could not be read)");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "debugfs ", 8) || !strncmp(line, "debugfs: ", 9) ||
		    !strncmp(line, "Allocated inode: ", 17) || !*line)
			continue;
		res = strdup(line);
		break;
	}
	free(text);
	return res;
}

/* debugfs -w? -f @cmds @fs (@fs may carry "?offset=N"), failing on any
 * error line. */
static int run_debugfs(const char *fs, const char *cmds, bool write, const char *what,
		       const char *out_path, struct art_err *err)
{
	const char *argv[] = {"debugfs", write ? "-w" : "-c", "-f", cmds, fs, NULL};
	char *bad;
	int rc = run_to_file(argv, out_path, err);

	if (rc)
		return rc;
	bad = debugfs_first_error(out_path);
	if (bad) {
		rc = art_err_set(err, -EIO, "%s: debugfs: %s", what, bad);
		free(bad);
	}
	return rc;
}

/* Expand a sparse image to a plain file (holes where it has none). */
static int simg_expand(const char *simg, const char *raw, struct art_err *err)
{
	struct sparse_file *s;
	int in = open(simg, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;

	if (in < 0)
		return art_err_set(err, -errno, "cannot open %s: %s", simg, strerror(errno));
	s = sparse_file_import(in, false, false);
	if (!s) {
		close(in);
		return art_err_set(err, -EINVAL, "%s is not a sparse image", simg);
	}
	out = open(raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		rc = art_err_set(err, -errno, "cannot create %s: %s", raw, strerror(errno));
	else if (sparse_file_write(s, out, false, false, false) < 0)
		rc = art_err_set(err, -EIO, "cannot expand %s into %s", simg, raw);
	if (out >= 0 && close(out) < 0 && !rc)
		rc = art_err_set(err, -errno, "cannot write %s: %s", raw, strerror(errno));
	sparse_file_destroy(s);
	close(in);
	return rc;
}

static int simg_of_ext4(const char *img, uint64_t offset, uint64_t bytes, const char *simg_path,
			struct simg_stats *ss, struct art_err *err)
{
	struct extent_list ext = {0};
	struct ext4_fs *fs = NULL;
	int fd, rc;

	rc = ext4_open(img, offset, bytes, &fs, err);
	if (!rc)
		rc = ext4_used_extents(fs, extent_cb, &ext, err);
	ext4_close(fs);
	if (rc)
		goto out;
	fd = open(img, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = art_err_set(err, -errno, "cannot open %s: %s", img, strerror(errno));
		goto out;
	}
	rc = simg_write(fd, offset, bytes, &ext, simg_path, ss, err);
	close(fd);
out:
	extents_free(&ext);
	return rc;
}

struct pipeline_board {
	const struct pipeline_inputs *in;
	struct pipeline_outputs base;	/* the cached, un-customised artefacts */
	char *work, *boot_dir, *root_dir, *raw, *out_path;
	uint64_t boot_off, boot_len, root_off, root_len;
	char boot_label[12];
	time_t stamp;
	struct tree_snap boot_snap, root_snap;
	FILE *cmds;			/* debugfs commands being written */
	char *cmds_path;
	struct art_err *err;
	struct pipeline_board_stats stats;
	char **root_paths;		/* what the hooks changed in the root: "/etc/x" */
	size_t nroot_paths;
};

/* Collects the root tree's changed paths, "/" + path (the top is "/"), in
 * the snapshots' (sorted) order. */
static int collect_change(void *usr, const struct tree_entry *before,
			  const struct tree_entry *after)
{
	struct pipeline_board *b = usr;
	const char *rel = after ? after->path : before->path;
	char **v = realloc(b->root_paths, (b->nroot_paths + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	b->root_paths = v;
	if (asprintf(&v[b->nroot_paths], "/%s", rel) < 0)
		return -ENOMEM;
	b->nroot_paths++;
	return 0;
}

static void root_paths_free(struct pipeline_board *b)
{
	for (size_t i = 0; i < b->nroot_paths; i++)
		free(b->root_paths[i]);
	free(b->root_paths);
	b->root_paths = NULL;
	b->nroot_paths = 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int outputs_dup(struct pipeline_outputs *d, const struct pipeline_outputs *s)
{
	char **dst[] = {&d->boot_entry, &d->rootfs_entry, &d->disk_entry, &d->bootfs_simg,
			&d->boot_img, &d->boot_sig, &d->rootfs_simg, &d->disk_simg};
	char *const src[] = {s->boot_entry, s->rootfs_entry, s->disk_entry, s->bootfs_simg,
			     s->boot_img, s->boot_sig, s->rootfs_simg, s->disk_simg};

	*d = *s;
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		*dst[i] = NULL;
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		if (src[i] && !(*dst[i] = strdup(src[i]))) {
			pipeline_outputs_free(d);
			return -ENOMEM;
		}
	return 0;
}

static int extract_fat(const char *img, uint64_t off, uint64_t len, const char *dir,
		       char *label, struct art_err *err)
{
	struct fat_vol *v = NULL;
	int fd = open(img, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return art_err_set(err, -errno, "cannot open %s: %s", img, strerror(errno));
	rc = fat_open(fd, off, len, &v, err);
	if (!rc && label)
		snprintf(label, 12, "%s", fat_label(v));
	if (!rc)
		rc = fat_extract_tree(v, dir, err);
	fat_close(v);
	close(fd);
	return rc;
}

int pipeline_board_open(const struct pipeline_inputs *in, const struct pipeline_outputs *base,
			const char *parent_dir, struct pipeline_board **out, struct art_err *err)
{
	struct pipeline_board *b = calloc(1, sizeof(*b));
	char sha[CACHE_KEY_HEX], *fs = NULL, *p = NULL;
	struct gold g = {.fd = -1};
	struct stat st;
	double t0 = now_s();
	int rc;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	b->in = in;
	rc = outputs_dup(&b->base, base);
	if (rc)
		goto fail;
	if (asprintf(&b->work, "%s/board-XXXXXX", parent_dir) < 0) {
		b->work = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	if (!mkdtemp(b->work)) {	/* mode 0700: the trees may get per-board secrets */
		rc = art_err_set(err, -errno, "cannot create a work directory in %s: %s",
				 parent_dir, strerror(errno));
		free(b->work);
		b->work = NULL;
		goto fail;
	}
	b->boot_dir = pjoin(b->work, "boot");
	b->root_dir = pjoin(b->work, "root");
	b->out_path = pjoin(b->work, "debugfs.out");
	b->cmds_path = pjoin(b->work, "root.cmds");
	if (!b->boot_dir || !b->root_dir || !b->out_path || !b->cmds_path) {
		rc = -ENOMEM;
		goto fail;
	}
	if (mkdir(b->boot_dir, 0755) < 0 || mkdir(b->root_dir, 0755) < 0) {
		rc = art_err_set(err, -errno, "cannot create %s: %s", b->work, strerror(errno));
		goto fail;
	}
	rc = source_prepare(in->cache_dir, in->gold, &b->raw, sha, err);
	if (!rc)
		rc = gold_open(b->raw, &g, in->mode != PIPELINE_NAKED, err);
	if (rc)
		goto fail;
	b->boot_off = mbr_part_offset(g.boot);
	b->boot_len = mbr_part_bytes(g.boot);
	b->root_off = mbr_part_offset(g.root);
	b->root_len = mbr_part_bytes(g.root);
	gold_close(&g);
	if (in->mode == PIPELINE_NAKED && (!is_fat_type(g.boot->type) ||
					   g.root->type != MBR_TYPE_LINUX)) {
		rc = art_err_set(err, -EINVAL, "per-board hooks in naked mode need a pi-gen style "
				 "image (partition 1 FAT, partition 2 Linux)");
		goto fail;
	}
	/* The boot tree: what this mode puts in the boot partition (Pi 4/5
	 * LUKS modes: the contents of boot.img, after pruning). */
	if (in->mode == PIPELINE_NAKED) {
		rc = extract_fat(b->raw, b->boot_off, b->boot_len, b->boot_dir, b->boot_label, err);
	} else if (base->boot_img) {
		if (stat(base->boot_img, &st) < 0)
			rc = art_err_set(err, -errno, "%s: %s", base->boot_img, strerror(errno));
		else
			rc = extract_fat(base->boot_img, 0, (uint64_t)st.st_size, b->boot_dir, NULL,
					 err);
	} else {
		p = pjoin(b->work, "bootfs.raw");
		rc = p ? simg_expand(base->bootfs_simg, p, err) : -ENOMEM;
		if (!rc)
			rc = extract_fat(p, 0, base->bootfs_bytes, b->boot_dir, NULL, err);
		if (p)
			unlink(p);
	}
	if (rc) {
		art_err_prefix(err, "the boot tree for the hooks: ");
		goto fail;
	}
	free(p);
	p = pjoin(b->boot_dir, "config.txt");
	if (p && stat(p, &st) == 0)
		b->stamp = st.st_mtime;
	/* The root tree: the gold image's root file system. */
	if (asprintf(&fs, "%s?offset=%" PRIu64, b->raw, b->root_off) < 0) {
		fs = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	{
		char *cmd = NULL;
		FILE *f;

		rc = asprintf(&cmd, "rdump / \"%s\"\n", b->root_dir) < 0 ? -ENOMEM : 0;
		f = rc ? NULL : fopen(b->cmds_path, "we");
		if (!rc && (!f || fputs(cmd, f) < 0))
			rc = art_err_set(err, -EIO, "cannot write %s", b->cmds_path);
		if (f && fclose(f) != 0 && !rc)
			rc = art_err_set(err, -EIO, "cannot write %s", b->cmds_path);
		free(cmd);
		if (!rc)
			rc = run_debugfs(fs, b->cmds_path, false, "the root tree for the hooks",
					 b->out_path, err);
		if (rc)
			goto fail;
	}
	rc = snap_take(b->boot_dir, &b->boot_snap, err);
	if (!rc)
		rc = snap_take(b->root_dir, &b->root_snap, err);
	if (rc)
		goto fail;
	b->stats.open_s = now_s() - t0;
	free(fs);
	free(p);
	*out = b;
	return 0;
fail:
	gold_close(&g);
	free(fs);
	free(p);
	pipeline_board_close(b);
	return rc;
}

const char *pipeline_board_boot_dir(const struct pipeline_board *b)
{
	return b->boot_dir;
}

const char *pipeline_board_root_dir(const struct pipeline_board *b)
{
	return b->root_dir;
}

const struct pipeline_board_stats *pipeline_board_stats(const struct pipeline_board *b)
{
	return &b->stats;
}

const char *const *pipeline_board_root_changes(const struct pipeline_board *b, size_t *n)
{
	*n = b->nroot_paths;
	return (const char *const *)b->root_paths;
}

/* Names debugfs can take between double quotes. */
static int debugfs_name_ok(struct pipeline_board *b, const char *name)
{
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c < 0x20 || *c == '"' || *c == 0x7f)
			return art_err_set(b->err, -EINVAL, "the hooks left \"%s\" in the root "
					   "tree: names with quotes or control characters cannot "
					   "be written back", name);
	return 0;
}

static void cmd_attrs(struct pipeline_board *b, const char *path, const struct stat *st)
{
	fprintf(b->cmds, "sif \"/%s\" mode 0%o\n", path, (unsigned)st->st_mode);
	fprintf(b->cmds, "sif \"/%s\" uid %u\nsif \"/%s\" gid %u\n", path, (unsigned)st->st_uid,
		path, (unsigned)st->st_gid);
	fprintf(b->cmds, "sif \"/%s\" mtime @%lld\n", path, (long long)st->st_mtim.tv_sec);
}

/* Removals, deepest first (the snapshot is sorted: walk it backwards). */
static int root_removal(void *usr, const struct tree_entry *before, const struct tree_entry *after)
{
	struct pipeline_board *b = usr;
	bool retyped = before && after && (before->st.st_mode & S_IFMT) != (after->st.st_mode & S_IFMT);

	if (!before || (after && !retyped && !(S_ISREG(after->st.st_mode) ||
					       S_ISLNK(after->st.st_mode))))
		return 0;
	if (!*before->path)
		return 0;
	/* a changed file or symlink is replaced: written anew */
	int rc = debugfs_name_ok(b, before->path);

	if (!rc)
		fprintf(b->cmds, "%s \"/%s\"\n", S_ISDIR(before->st.st_mode) ? "rmdir" : "rm",
			before->path);
	return rc;
}

static int root_addition(void *usr, const struct tree_entry *before, const struct tree_entry *after)
{
	struct pipeline_board *b = usr;
	const struct stat *st;
	char *full = NULL;
	int rc;

	if (!after)
		return 0;
	st = &after->st;
	if (!*after->path) {	/* the top directory itself */
		cmd_attrs(b, "", st);
		return 0;
	}
	rc = debugfs_name_ok(b, after->path);
	if (rc)
		return rc;
	if (asprintf(&full, "%s/%s", b->root_dir, after->path) < 0)
		return -ENOMEM;
	if (S_ISDIR(st->st_mode)) {
		bool retyped = before && !S_ISDIR(before->st.st_mode);

		if (!before || retyped)
			fprintf(b->cmds, "mkdir \"/%s\"\n", after->path);
	} else if (S_ISREG(st->st_mode)) {
		fprintf(b->cmds, "write \"%s\" \"/%s\"\n", full, after->path);
	} else if (S_ISLNK(st->st_mode)) {
		char target[4096];
		ssize_t n = readlink(full, target, sizeof(target) - 1);

		if (n < 0) {
			rc = art_err_set(b->err, -errno, "%s: %s", full, strerror(errno));
			goto out;
		}
		target[n] = '\0';
		rc = debugfs_name_ok(b, target);
		if (rc)
			goto out;
		fprintf(b->cmds, "symlink \"/%s\" \"%s\"\n", after->path, target);
		fprintf(b->cmds, "sif \"/%s\" uid %u\nsif \"/%s\" gid %u\n", after->path,
			(unsigned)st->st_uid, after->path, (unsigned)st->st_gid);
		goto out;
	} else if (S_ISFIFO(st->st_mode) || S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		if (before && !S_ISDIR(before->st.st_mode) &&
		    (before->st.st_mode & S_IFMT) == (st->st_mode & S_IFMT))
			fprintf(b->cmds, "rm \"/%s\"\n", after->path);
		if (S_ISFIFO(st->st_mode))
			fprintf(b->cmds, "mknod \"/%s\" p\n", after->path);
		else
			fprintf(b->cmds, "mknod \"/%s\" %c %u %u\n", after->path,
				S_ISCHR(st->st_mode) ? 'c' : 'b', major(st->st_rdev),
				minor(st->st_rdev));
	} else {
		rc = art_err_set(b->err, -EINVAL, "the hooks left a socket at /%s in the root "
				 "tree: it cannot be written into the image", after->path);
		goto out;
	}
	cmd_attrs(b, after->path, st);
out:
	free(full);
	return rc;
}

/* Reverse the order of a snapshot's diff for removals: walk both snapshots
 * from the end. */
static int snap_diff_reverse(const struct tree_snap *a, const struct tree_snap *bb,
			     snap_change_fn fn, void *usr)
{
	size_t i = a->n, j = bb->n;
	int rc = 0;

	while (!rc && (i > 0 || j > 0)) {
		int c = i == 0 ? -1 : j == 0 ? 1 : strcmp(a->v[i - 1].path, bb->v[j - 1].path);

		if (c > 0) {
			rc = fn(usr, &a->v[--i], NULL);
		} else if (c < 0) {
			rc = fn(usr, NULL, &bb->v[--j]);
		} else {
			i--;
			j--;
			if (entry_changed(&a->v[i].st, &bb->v[j].st))
				rc = fn(usr, &a->v[i], &bb->v[j]);
		}
	}
	return rc;
}

/* The debugfs script that makes the gold root equal to the hooks' tree. */
static int root_script(struct pipeline_board *b, const struct tree_snap *after,
		       struct art_err *err)
{
	size_t n;
	int rc;

	b->err = err;
	b->cmds = fopen(b->cmds_path, "we");
	if (!b->cmds)
		return art_err_set(err, -errno, "cannot create %s: %s", b->cmds_path,
				   strerror(errno));
	rc = snap_diff_reverse(&b->root_snap, after, root_removal, b);
	if (!rc)
		rc = snap_diff(&b->root_snap, after, root_addition, b, &n);
	if (fclose(b->cmds) != 0 && !rc)
		rc = art_err_set(err, -EIO, "cannot write %s", b->cmds_path);
	b->cmds = NULL;
	return rc;
}

/* naked: the boot partition rebuilt from its tree and the root changes,
 * written into the private whole-disk copy. */
static int naked_board_edit(void *usr, const char *disk, struct art_err *err)
{
	struct pipeline_board *b = usr;
	int rc = 0;

	if (b->stats.boot_changed) {
		struct extent_list ext = {0};
		struct fat_mkfs_opts fo;
		struct fat_vol *v = NULL;
		char *part = pjoin(b->work, "bootfs.img");
		uint8_t *buf = malloc(1u << 20);
		int in = -1, out = -1;

		fat_opts_boot_partition(&fo, b->boot_len);
		fo.label = b->boot_label[0] ? b->boot_label : NULL;
		fo.volume_id = volume_id(b->base.image_sha256);
		rc = part && buf ? fat_build_from_dir(b->boot_dir, &fo, part, NULL, err) : -ENOMEM;
		if (!rc && ((in = open(part, O_RDONLY | O_CLOEXEC)) < 0 ||
			    (out = open(disk, O_WRONLY | O_CLOEXEC)) < 0))
			rc = art_err_set(err, -errno, "cannot open %s: %s", in < 0 ? part : disk,
					 strerror(errno));
		if (!rc)
			rc = fat_open(in, 0, b->boot_len, &v, err);
		if (!rc)
			rc = fat_used_extents(v, extent_cb, &ext, err);
		fat_close(v);
		if (!rc)
			rc = copy_extents(in, out, &ext, b->boot_off, buf, err);
		if (rc)
			art_err_prefix(err, "the boot partition into %s: ", disk);
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
		if (part)
			unlink(part);
		extents_free(&ext);
		free(part);
		free(buf);
		if (rc)
			return rc;
	}
	if (b->stats.root_changed) {
		char *fs = NULL;

		if (asprintf(&fs, "%s?offset=%" PRIu64, disk, b->root_off) < 0)
			return -ENOMEM;
		rc = run_debugfs(fs, b->cmds_path, true, "writing the hooks' changes into the "
				 "root file system", b->out_path, err);
		free(fs);
	}
	return rc;
}

int pipeline_board_commit(struct pipeline_board *b, struct pipeline_outputs *out,
			  struct art_err *err)
{
	struct tree_snap boot_after = {0}, root_after = {0};
	double t0 = now_s();
	int rc;

	memset(out, 0, sizeof(*out));
	root_paths_free(b);
	rc = snap_take(b->boot_dir, &boot_after, err);
	if (!rc)
		rc = snap_take(b->root_dir, &root_after, err);
	if (rc)
		goto out;
	rc = snap_diff(&b->boot_snap, &boot_after, count_change, NULL, &b->stats.boot_changes);
	if (!rc)
		rc = snap_diff(&b->root_snap, &root_after, collect_change, b,
			       &b->stats.root_changes);
	b->stats.boot_changed = b->stats.boot_changes > 0;
	b->stats.root_changed = b->stats.root_changes > 0;
	if (!rc && b->stats.root_changed)
		rc = root_script(b, &root_after, err);
	if (rc)
		goto out;
	rc = outputs_dup(out, &b->base);
	if (rc)
		goto out;
	if (b->in->mode == PIPELINE_NAKED) {
		struct pipeline_outputs custom;

		if (!b->stats.boot_changed && !b->stats.root_changed)
			goto out;
		rc = image_pipeline_naked_custom(b->in, naked_board_edit, b, b->work, &custom, err);
		if (rc)
			goto out;
		free(out->disk_simg);
		out->disk_simg = custom.disk_simg;
		custom.disk_simg = NULL;
		out->disk_bytes = custom.disk_bytes;
		out->disk_file_bytes = custom.disk_file_bytes;
		pipeline_outputs_free(&custom);
		goto out;
	}
	if (b->stats.boot_changed) {
		char *dir = pjoin(b->work, "bootout"), *part = pjoin(b->work, "bootpart");
		struct boot_pack bp;

		if (!dir || !part || mkdir(dir, 0700) < 0 || mkdir(part, 0700) < 0) {
			rc = dir && part ? art_err_set(err, -errno, "cannot create %s: %s", dir,
						       strerror(errno)) : -ENOMEM;
		} else {
			rc = pack_boot(b->in, out, b->boot_dir, part, dir, b->base.bootfs_bytes,
				       b->stamp, &bp, err);
		}
		if (!rc) {
			free(out->bootfs_simg);
			free(out->boot_img);
			free(out->boot_sig);
			out->bootfs_simg = pjoin(dir, "bootfs.simg");
			out->boot_img = bp.bits ? pjoin(dir, "boot.img") : NULL;
			out->boot_sig = b->in->mode == PIPELINE_SECURE_BOOT ? pjoin(dir, "boot.sig")
									    : NULL;
			out->bootfs_bytes = bp.ss.expanded_bytes;
			out->bootfs_file_bytes = bp.ss.file_bytes;
			out->boot_hit = false;
			if (!out->bootfs_simg)
				rc = -ENOMEM;
		}
		free(dir);
		free(part);
	}
out:
	if (rc)
		pipeline_outputs_free(out);
	b->stats.commit_s = now_s() - t0;
	snap_free(&boot_after);
	snap_free(&root_after);
	return rc;
}

int pipeline_board_commit_root(struct pipeline_board *b, const struct pipeline_outputs *base_root,
			       struct pipeline_outputs *out, struct art_err *err)
{
	char *img = NULL, *simg = NULL;
	struct simg_stats ss;
	double t0 = now_s();
	int rc;

	rc = outputs_dup(out, base_root);
	if (rc || !b->stats.root_changed || !base_root->rootfs_simg)
		return rc;
	img = pjoin(b->work, "rootfs.img");
	simg = pjoin(b->work, "rootfs.simg");
	rc = img && simg ? simg_expand(base_root->rootfs_simg, img, err) : -ENOMEM;
	if (!rc)
		rc = run_debugfs(img, b->cmds_path, true, "writing the hooks' changes into the "
				 "root file system", b->out_path, err);
	if (!rc)
		rc = simg_of_ext4(img, 0, base_root->rootfs_bytes, simg, &ss, err);
	if (img)
		unlink(img);
	if (!rc) {
		free(out->rootfs_simg);
		out->rootfs_simg = simg;
		simg = NULL;
		out->rootfs_bytes = ss.expanded_bytes;
		out->rootfs_file_bytes = ss.file_bytes;
		out->rootfs_hit = false;
	} else {
		pipeline_outputs_free(out);
	}
	b->stats.root_s = now_s() - t0;
	free(img);
	free(simg);
	return rc;
}

void pipeline_board_close(struct pipeline_board *b)
{
	if (!b)
		return;
	if (b->work)
		cache_remove_tree(b->work);
	snap_free(&b->boot_snap);
	snap_free(&b->root_snap);
	root_paths_free(b);
	pipeline_outputs_free(&b->base);
	free(b->work);
	free(b->boot_dir);
	free(b->root_dir);
	free(b->raw);
	free(b->out_path);
	free(b->cmds_path);
	free(b);
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
		/* by its remembered hash: not read again for every board */
		char ihex[CACHE_KEY_HEX];
		bool memo;

		rc = cache_file_sha256(in->cache_dir, in->initramfs, ihex, &memo, err);
		if (rc) {
			cache_key_final(&k, key);
			goto out;
		}
		cache_key_add_str(&k, "initramfs", ihex);
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
