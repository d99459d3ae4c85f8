/* test_image_driver: drives the image pipeline from shell tests and
 * benchmarks (tests/integration/image_*.sh), since the station's commands
 * are not the place for a build-only entry point. Not a test by itself.
 *
 *   test_image_driver build MODE GOLD CACHE [options]
 *       --initramfs F --storage S --family F --container BYTES --key PEM
 *       --root-edit DEBUGFS_CMDS (run `debugfs -w -f` on the fitted root fs)
 *       --disk-edit SCRIPT (naked, per board: `bash SCRIPT DISK_IMAGE`, result
 *       in a new temp dir, not cached)
 *   prints key=value lines (paths, sizes, hits, seconds, peak RSS KiB).
 *   test_image_driver fat-build SRC_DIR OUT [bootimg|partition BYTES]
 *   test_image_driver fat-extract IMG OFFSET DIR
 *   test_image_driver clear CACHE */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "artefacts/pubkey.h"
#include "artefacts/sign.h"
#include "image/cache.h"
#include "image/fat.h"
#include "image/pipeline.h"
#include "image/rootfs.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The rootfs-mounted hook point, done with debugfs commands from a file. */
static int root_edit(void *usr, const char *image, struct art_err *err)
{
	const char *argv[] = {"debugfs", "-w", "-f", usr, image, NULL};

	return rootfs_run_tool(argv, err);
}

/* A per-board naked edit: bash SCRIPT IMAGE. */
static int disk_edit(void *usr, const char *image, struct art_err *err)
{
	const char *argv[] = {"bash", usr, image, NULL};

	return rootfs_run_tool(argv, err);
}

static int usage(void)
{
	fprintf(stderr, "usage: test_image_driver build MODE GOLD CACHE [--initramfs F] "
		"[--storage S] [--family F] [--container BYTES] [--key PEM] [--root-edit CMDS]\n"
		"       [--disk-edit SCRIPT]\n"
		"       test_image_driver fat-build SRC OUT [bootimg|partition BYTES]\n"
		"       test_image_driver fat-extract IMG OFFSET DIR\n"
		"       test_image_driver clear CACHE\n");
	return 2;
}

static int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{"initramfs", required_argument, NULL, 'i'},
		{"storage", required_argument, NULL, 's'},
		{"family", required_argument, NULL, 'f'},
		{"container", required_argument, NULL, 'c'},
		{"key", required_argument, NULL, 'k'},
		{"root-edit", required_argument, NULL, 'r'},
		{"disk-edit", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	struct pipeline_inputs in;
	struct pipeline_outputs out;
	struct art_err err = {{0}};
	struct signer *signer = NULL;
	char fp[FINGERPRINT_HEX_LEN + 1], work[] = "/tmp/image-driver.XXXXXX";
	const char *disk_script = NULL;
	struct rusage ru;
	double t0;
	int c, rc;

	memset(&in, 0, sizeof(in));
	if (argc < 4 || pipeline_mode_parse(argv[1], &in.mode))
		return usage();
	in.gold = argv[2];
	in.cache_dir = argv[3];
	in.storage = "sd";
	in.family = "5";
	in.cipher = "aes-xts-plain64";
	optind = 4;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			in.initramfs = optarg;
			break;
		case 's':
			in.storage = optarg;
			break;
		case 'f':
			in.family = optarg;
			break;
		case 'c':
			in.container_bytes = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			disk_script = optarg;
			break;
		case 'r':
			in.on_root_image = root_edit;
			in.root_usr = optarg;
			in.root_id = optarg;
			break;
		case 'k':
			rc = signer_open_pem(optarg, &signer, &err);
			if (rc) {
				fprintf(stderr, "key: %s\n", err.msg);
				return 1;
			}
			pubkey_fingerprint(signer_pubkey(signer), fp);
			in.key_fingerprint = fp;
			in.sign = pipeline_sign_with_signer;
			in.sign_usr = signer;
			break;
		default:
			return usage();
		}
	}
	t0 = now();
	if (disk_script) {
		if (!mkdtemp(work)) {
			perror("mkdtemp");
			return 1;
		}
		rc = image_pipeline_naked_custom(&in, disk_edit, (void *)(uintptr_t)disk_script, work,
						 &out, &err);
	} else {
		rc = image_pipeline_build(&in, &out, &err);
	}
	getrusage(RUSAGE_SELF, &ru);
	if (rc) {
		fprintf(stderr, "build failed (%s): %s\n", strerror(-rc), err.msg);
		signer_close(signer);
		return 1;
	}
	printf("seconds=%.3f\nmaxrss_kib=%ld\nimage_sha256=%s\n", now() - t0, ru.ru_maxrss,
	       out.image_sha256);
	if (out.bootfs_simg)
		printf("bootfs_simg=%s\nbootfs_bytes=%llu\nbootfs_file_bytes=%llu\nboot_hit=%d\n",
		       out.bootfs_simg, (unsigned long long)out.bootfs_bytes,
		       (unsigned long long)out.bootfs_file_bytes, out.boot_hit);
	if (out.boot_img)
		printf("boot_img=%s\nboot_img_fat_bits=%u\n", out.boot_img, out.boot_img_fat_bits);
	if (out.boot_sig)
		printf("boot_sig=%s\n", out.boot_sig);
	if (out.rootfs_simg)
		printf("rootfs_simg=%s\nrootfs_bytes=%llu\nrootfs_file_bytes=%llu\nrootfs_hit=%d\n",
		       out.rootfs_simg, (unsigned long long)out.rootfs_bytes,
		       (unsigned long long)out.rootfs_file_bytes, out.rootfs_hit);
	if (out.disk_simg)
		printf("disk_simg=%s\ndisk_bytes=%llu\ndisk_file_bytes=%llu\ndisk_hit=%d\n",
		       out.disk_simg, (unsigned long long)out.disk_bytes,
		       (unsigned long long)out.disk_file_bytes, out.disk_hit);
	if (out.warnings[0])
		printf("warnings=%s\n", out.warnings);
	pipeline_outputs_free(&out);
	signer_close(signer);
	return 0;
}

static int cmd_fat_build(int argc, char **argv)
{
	struct fat_mkfs_opts o;
	struct art_err err = {{0}};
	unsigned bits = 0;

	if (argc < 3)
		return usage();
	if (argc >= 5 && !strcmp(argv[3], "partition"))
		fat_opts_boot_partition(&o, strtoull(argv[4], NULL, 0));
	else
		fat_opts_boot_img(&o);
	if (fat_build_from_dir(argv[1], &o, argv[2], &bits, &err)) {
		fprintf(stderr, "fat-build: %s\n", err.msg);
		return 1;
	}
	printf("fat_bits=%u\n", bits);
	return 0;
}

static int cmd_fat_extract(int argc, char **argv)
{
	struct art_err err = {{0}};
	struct fat_vol *v = NULL;
	int fd, rc;

	if (argc < 4)
		return usage();
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	rc = fat_open(fd, strtoull(argv[2], NULL, 0), UINT64_MAX / 2, &v, &err);
	if (!rc)
		rc = fat_extract_tree(v, argv[3], &err);
	if (!rc)
		printf("fat_bits=%u\nlabel=%s\n", fat_bits(v), fat_label(v));
	fat_close(v);
	close(fd);
	if (rc)
		fprintf(stderr, "fat-extract: %s\n", err.msg);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct art_err err = {{0}};

	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "build"))
		return cmd_build(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fat-build"))
		return cmd_fat_build(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fat-extract"))
		return cmd_fat_extract(argc - 1, argv + 1);
	if (!strcmp(argv[1], "clear") && argc == 3) {
		if (cache_clear(argv[2], &err)) {
			fprintf(stderr, "clear: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	return usage();
}
