/* cmd_config: the `config` command.
 *
 *   config check [--config FILE]     validate; a one-screen summary, or every problem
 *   config dump [--config FILE]      every setting's effective value and its source
 *   config import FILE [-o OUT]      convert the peer's shell-style config to our INI
 *   config schema --markdown|--ini   the reference table / a commented example file
 *
 * Main thread only. Exit codes per core/cli.h: 0 fine, 1 failed, 2 usage or
 * configuration problems. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/allowlist.h"
#include "config/config.h"
#include "config/goldimage.h"
#include "core/cli.h"

#define IMPORT_MAX_FILE (1u << 20)

static void usage(FILE *f)
{
	fputs("Usage: rpi-sb-provisioner config check [--config FILE]\n"
	      "       rpi-sb-provisioner config dump [--config FILE]\n"
	      "       rpi-sb-provisioner config import PEER_CONFIG [-o OUT]\n"
	      "       rpi-sb-provisioner config schema --markdown|--ini\n", f);
}

/* Parse "--config FILE" after the sub-command. 0, or EXIT_USAGE. */
static int parse_config_opt(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	optind = 0; /* a fresh getopt state: permute options after operands again */
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cli->config_path = optarg; break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "config %s: unexpected argument '%s'\n", argv[0], argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

/* Problems in file order: by file as found, then by line, the ones without a line last. */
static void print_problems(const struct config_problems *p, bool warnings)
{
	const struct config_problem **order = calloc(p->n ? p->n : 1, sizeof(*order));
	size_t n = 0;

	if (!order) {
		for (size_t i = 0; i < p->n; i++)
			if (p->v[i].warning == warnings)
				config_problem_print(stderr, &p->v[i]);
		return;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct config_problem *pr = &p->v[i];
		size_t j = n;

		if (pr->warning != warnings)
			continue;
		/* stable insertion: move later-sorting entries of the same file up */
		while (j > 0 && strcmp(order[j - 1]->file, pr->file) == 0 &&
		       (order[j - 1]->line == 0 ? INT_MAX : order[j - 1]->line) >
		       (pr->line == 0 ? INT_MAX : pr->line)) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = pr;
		n++;
	}
	for (size_t i = 0; i < n; i++)
		config_problem_print(stderr, order[i]);
	free(order);
}

static void human_size(char *buf, size_t len, unsigned long long bytes)
{
	if (bytes >= 10ull << 30)
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1 << 30));
	else if (bytes >= 1ull << 20)
		snprintf(buf, len, "%.1f MiB", (double)bytes / (1 << 20));
	else
		snprintf(buf, len, "%llu bytes", bytes);
}

static void summary_image(const char *label, const char *gold)
{
	struct goldimage_info info;
	char err[GOLDIMAGE_ERRLEN], total[32], boot[32], root[32];

	if (!*gold) {
		printf("  %-11s (none)\n", label);
		return;
	}
	if (goldimage_check(gold, &info, err, sizeof(err)) < 0) {
		printf("  %-11s %s (%s)\n", label, gold, err);
		return;
	}
	human_size(total, sizeof(total), info.file_size);
	human_size(boot, sizeof(boot), info.boot.size);
	human_size(root, sizeof(root), info.root.size);
	printf("  %-11s %s\n  %-11s %s: boot FAT%u %s, root ext4 %s\n", label, gold, "", total,
	       info.fat_bits, boot, root);
}

static void summary(const struct config *c, const struct allowlist *al)
{
	const char *pem = config_get(c, "key", "pem"), *signer = config_get(c, "key", "signer");
	const char *gpio = config_get(c, "otp", "rpiboot_gpio");

	printf("%s: valid\n", config_file(c));
	printf("  %-11s %s, mode %s, family %s%s%s\n", "station", config_get(c, "station", "id"),
	       config_get(c, "station", "mode"), config_get(c, "station", "family"),
	       strcmp(config_get(c, "station", "hold"), "none") ? ", hold " : "",
	       strcmp(config_get(c, "station", "hold"), "none") ? config_get(c, "station", "hold") : "");
	summary_image("image", config_get(c, "image", "gold"));
	printf("  %-11s %s, cipher %s\n", "storage", config_get(c, "image", "storage"),
	       config_get(c, "image", "cipher"));
	if (*pem)
		printf("  %-11s PEM private key %s\n", "key", pem);
	else if (*signer)
		printf("  %-11s external signer (command set), public key %s\n", "key",
		       config_get(c, "key", "public"));
	else
		printf("  %-11s none\n", "key");
	printf("  %-11s jtag_lock %s, eeprom_write_protect %s, rpiboot_gpio %s\n", "OTP",
	       config_get_bool(c, "otp", "jtag_lock") ? "YES" : "no",
	       config_get_bool(c, "otp", "eeprom_write_protect") ? "YES" : "no", *gpio ? gpio : "(unset)");
	printf("  %-11s %s\n", "bootloader",
	       *config_get(c, "bootloader", "firmware") ? config_get(c, "bootloader", "firmware")
							 : config_get(c, "bootloader", "firmware_dir"));
	for (size_t i = 0; i < config_families_len; i++) {
		char sec[16];
		bool any = false;

		snprintf(sec, sizeof(sec), "family.%s", config_families[i]);
		for (size_t r = 0; r < config_schema_len; r++) {
			const char *v;

			if (strcmp(config_schema[r].section, "family") != 0 ||
			    !*(v = config_get(c, sec, config_schema[r].key)))
				continue;
			if (!any)
				printf("  %-11s", sec);
			printf("%s %s %s", any ? "," : "", config_schema[r].key, v);
			any = true;
		}
		if (any)
			putchar('\n');
	}
	printf("  %-11s %s\n", "database", config_get(c, "paths", "database"));
	printf("  %-11s %s\n", "logs", config_get(c, "paths", "log_dir"));
	printf("  %-11s %s\n", "cache", config_get(c, "paths", "cache_dir"));
	if (al->n)
		printf("  %-11s %zu rule%s from %zu file%s (other ports are skipped)\n", "USB ports", al->n,
		       al->n == 1 ? "" : "s", al->files, al->files == 1 ? "" : "s");
	else
		printf("  %-11s all ports (no allow-list rules)\n", "USB ports");
}

static int do_check(struct cli *cli, int argc, char **argv)
{
	struct config_problems probs = { 0 };
	struct config *c = NULL;
	struct allowlist *al = NULL;
	int rc = parse_config_opt(cli, argc, argv), r;
	size_t errors;

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	r = config_load(cli->config_path, &cli->paths, &c, &probs);
	if (!c) {
		fprintf(stderr, "config check: cannot load %s: %s\n", cli->config_path, strerror(-r));
		rc = EXIT_FAILED;
		goto out;
	}
	r = allowlist_load(config_get(c, "paths", "usb_ports_vendor_dir"),
			   config_get(c, "paths", "usb_ports_dir"), &al, &probs);
	if (r == -ENOMEM) {
		fprintf(stderr, "config check: out of memory\n");
		rc = EXIT_FAILED;
		goto out;
	}
	errors = config_problems_errors(&probs);
	if (errors) {
		print_problems(&probs, false);
		print_problems(&probs, true);
		fprintf(stderr, "%s: %zu problem%s; fix %s and run `config check` again\n",
			cli->config_path, errors, errors == 1 ? "" : "s", errors == 1 ? "it" : "them");
		rc = EXIT_USAGE;
		goto out;
	}
	summary(c, al);
	print_problems(&probs, true);
	rc = EXIT_OK;
out:
	allowlist_free(al);
	config_free(c);
	config_problems_free(&probs);
	return rc;
}

static int do_dump(struct cli *cli, int argc, char **argv)
{
	struct config_problems probs = { 0 };
	struct config *c = NULL;
	const char *prev = "";
	int rc = parse_config_opt(cli, argc, argv), r;

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	r = config_load(cli->config_path, &cli->paths, &c, &probs);
	if (!c) {
		fprintf(stderr, "config dump: cannot load %s: %s\n", cli->config_path, strerror(-r));
		rc = EXIT_FAILED;
		goto out;
	}
	printf("# effective configuration from %s\n", config_file(c));
	for (size_t r2 = 0; r2 < config_schema_len; r2++) {
		const struct config_setting *s = &config_schema[r2];
		size_t nsec = strcmp(s->section, "family") == 0 ? config_families_len : 1;

		if (nsec == 1 && strcmp(prev, s->section) != 0)
			printf("\n[%s]\n", s->section);
		prev = s->section;
		if (nsec > 1)
			continue; /* family sections are printed below, one after another */
		{
			const char *v = config_get(c, s->section, s->key), *file = NULL;
			int line = 0, set = config_origin(c, s->section, s->key, &file, &line);
			char src[64];

			if (set > 0)
				snprintf(src, sizeof(src), ":%d", line);
			printf("%s = %s ; %s%s\n", s->key, s->secret && *v ? "(set)" : v,
			       set > 0 ? file : *v ? "default" : "unset",
			       set > 0 ? src : "");
		}
	}
	for (size_t f = 0; f < config_families_len; f++) {
		char sec[16];

		snprintf(sec, sizeof(sec), "family.%s", config_families[f]);
		printf("\n[%s]\n", sec);
		for (size_t r2 = 0; r2 < config_schema_len; r2++) {
			const struct config_setting *s = &config_schema[r2];
			const char *file = NULL;
			int line = 0;

			if (strcmp(s->section, "family") != 0)
				continue;
			if (config_origin(c, sec, s->key, &file, &line) > 0)
				printf("%s = %s ; %s:%d\n", s->key, config_get(c, sec, s->key), file, line);
			else
				printf("#%s = ; unset: uses %s\n", s->key, s->overrides);
		}
	}
	if (config_problems_errors(&probs))
		fprintf(stderr, "note: %s has %zu problem%s; run `config check` to see them\n",
			config_file(c), config_problems_errors(&probs),
			config_problems_errors(&probs) == 1 ? "" : "s");
	rc = EXIT_OK;
out:
	config_free(c);
	config_problems_free(&probs);
	return rc;
}

static int read_small_file(const char *path, char **buf, size_t *len)
{
	struct stat st;
	int fd, rc = 0;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)IMPORT_MAX_FILE) {
		rc = -EFBIG;
		goto out;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (*len < (size_t)st.st_size) {
		ssize_t r = read(fd, *buf + *len, (size_t)st.st_size - *len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		*len += (size_t)r;
	}
out:
	close(fd);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

static int do_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *outpath = NULL;
	char *buf = NULL, *tmp = NULL;
	FILE *out = stdout;
	size_t len;
	int c, r, rc = EXIT_FAILED;

	optind = 0; /* a fresh getopt state: permute options after operands again */
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': outpath = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "config import: give exactly one file: the peer's config "
			"(usually /etc/rpi-sb-provisioner/config)\n");
		return EXIT_USAGE;
	}
	r = read_small_file(argv[optind], &buf, &len);
	if (r < 0) {
		fprintf(stderr, "config import: cannot read %s: %s\n", argv[optind],
			r == -EFBIG ? "not a regular file of at most 1 MiB" : strerror(-r));
		return EXIT_USAGE;
	}
	if (outpath) {
		int fd;

		/* Write beside the target, then rename: never a half-written config. */
		if (asprintf(&tmp, "%s.XXXXXX", outpath) < 0) {
			tmp = NULL;
			goto out;
		}
		fd = mkstemp(tmp);
		if (fd < 0 || !(out = fdopen(fd, "w"))) {
			fprintf(stderr, "config import: cannot create %s: %s\n", tmp, strerror(errno));
			if (fd >= 0)
				close(fd);
			free(tmp);
			tmp = NULL;
			out = stdout;
			goto out;
		}
		if (fchmod(fd, 0644) < 0)
			fprintf(stderr, "config import: cannot set the mode of %s: %s\n", tmp, strerror(errno));
	}
	r = config_import_peer(argv[optind], buf, len, out, stderr);
	if (r == -ENOMEM) {
		fprintf(stderr, "config import: out of memory\n");
		goto out;
	}
	rc = r == -EINVAL ? EXIT_USAGE : EXIT_OK;
	if (tmp) {
		FILE *f = out;

		out = stdout;
		if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, outpath) < 0) {
			fprintf(stderr, "config import: cannot write %s: %s\n", outpath, strerror(errno));
			unlink(tmp);
			rc = EXIT_FAILED;
		} else {
			fprintf(stderr, "wrote %s; check it with: rpi-sb-provisioner --config %s config check\n",
				outpath, outpath);
		}
		free(tmp);
		tmp = NULL;
	}
out:
	if (tmp) {
		fclose(out);
		unlink(tmp);
		free(tmp);
	}
	free(buf);
	return rc;
}

static int do_schema(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--markdown") == 0)
		return config_schema_markdown(stdout) < 0 ? EXIT_FAILED : EXIT_OK;
	if (argc == 2 && strcmp(argv[1], "--ini") == 0)
		return config_schema_ini(stdout) < 0 ? EXIT_FAILED : EXIT_OK;
	usage(stderr);
	return EXIT_USAGE;
}

int cmd_config(struct cli *cli, int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "check") == 0)
		return do_check(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "dump") == 0)
		return do_dump(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "import") == 0)
		return do_import(argc - 1, argv + 1);
	if (strcmp(argv[1], "schema") == 0)
		return do_schema(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	fprintf(stderr, "config: unknown sub-command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
