/* cmd_key: the `key` command.
 *
 *   key generate [-o FILE]   new RSA-2048 key (e = 65537), PKCS#1 PEM, mode 0600,
 *                            never overwriting; default <etc>/keys/customer-key.pem
 *   key fingerprint FILE     fingerprint of a public or private PEM key
 *
 * The fingerprint is SHA-256 of the key's pubkey.bin encoding, i.e. the OTP
 * customer key hash recovery.bin prints; its last 8 hex characters are what
 * an operator types to arm OTP programming. Main thread only. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artefacts/pubkey.h"
#include "artefacts/secmem.h"
#include "artefacts/sign.h"
#include "artefacts/keyfile.h"
#include "core/cli.h"

#define KEY_DEFAULT_NAME "keys/customer-key.pem"

static void print_key(FILE *f, const struct rsa_pubkey *pub)
{
	char fp[FINGERPRINT_HEX_LEN + 1], *pem = NULL;

	pubkey_fingerprint(pub, fp);
	fprintf(f, "fingerprint: %s\n", fp);
	if (pubkey_to_pem(pub, &pem) == 0)
		fputs(pem, f);
	free(pem);
	fprintf(f, "To arm OTP key programming for a batch, type the last %d hex of the "
		"fingerprint: %s\n", FINGERPRINT_ARM_LEN, fp + FINGERPRINT_HEX_LEN - FINGERPRINT_ARM_LEN);
}

static int key_generate(struct cli *cli, const char *out_path)
{
	struct art_err err = { "" };
	struct rsa_pubkey pub;
	char *path = NULL, *dir = NULL, *pem = NULL;
	size_t pem_len = 0;
	int fd = -1, rc = EXIT_FAILED, e;

	path = out_path ? strdup(out_path) : path_join(cli->paths.etc, KEY_DEFAULT_NAME);
	if (!path || !(dir = strdup(path))) {
		fprintf(stderr, "key generate: out of memory\n");
		goto out;
	}
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "key generate: %s already exists; refusing to overwrite a key. Move "
			"it away first, or choose another file with -o\n", path);
		rc = EXIT_USAGE;
		goto out;
	}
	e = mkdir_p(dirname(dir), 0700);
	if (e < 0) {
		fprintf(stderr, "key generate: cannot create %s: %s\n", dir, strerror(-e));
		goto out;
	}
	if (sign_generate_key(&pem, &pem_len, &pub, &err) < 0) {
		fprintf(stderr, "key generate: %s\n", err.msg);
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		fprintf(stderr, "key generate: %s: %s%s\n", path, strerror(e),
			e == EEXIST ? "; refusing to overwrite a key" : "");
		rc = e == EEXIST ? EXIT_USAGE : EXIT_FAILED;
		goto out;
	}
	e = fchmod(fd, 0600) < 0 ? -errno : keyfile_write_all(fd, pem, pem_len);
	if (e == 0 && fsync(fd) < 0)
		e = -errno;
	if (close(fd) < 0 && e == 0)
		e = -errno;
	fd = -1;
	if (e < 0) {
		fprintf(stderr, "key generate: writing %s failed: %s; removed it\n", path,
			strerror(-e));
		unlink(path);
		goto out;
	}
	printf("wrote %s (RSA-2048 private key, mode 0600): keep it secret and backed up\n", path);
	print_key(stdout, &pub);
	rc = EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	secmem_free(pem);
	free(dir);
	free(path);
	return rc;
}

static int key_fingerprint(const char *file)
{
	struct art_err err = { "" }, perm = { "" };
	struct rsa_pubkey pub;
	struct signer *s = NULL;
	int r = signer_open_pem(file, &s, &perm);

	if (r == 0) {
		pub = *signer_pubkey(s);
		signer_close(s);
	} else if (r == -EPERM) {
		/* The fingerprint is public; say that signing would refuse this file. */
		fprintf(stderr, "warning: %s\n", perm.msg);
	}
	if (r != 0 && pubkey_load_pem(file, &pub, &err) < 0) {
		fprintf(stderr, "key fingerprint: %s\n", err.msg);
		return EXIT_FAILED;
	}
	print_key(stdout, &pub);
	return EXIT_OK;
}

static int key_usage(void)
{
	fprintf(stderr, "usage: rpi-sb-provisioner key generate [-o FILE]\n"
		"       rpi-sb-provisioner key fingerprint FILE\n");
	return EXIT_USAGE;
}

int cmd_key(struct cli *cli, int argc, char **argv)
{
	if (argc < 2)
		return key_usage();
	if (!strcmp(argv[1], "generate")) {
		const char *out = NULL;

		for (int i = 2; i < argc; i++) {
			if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
				out = argv[++i];
			else
				return key_usage();
		}
		return key_generate(cli, out);
	}
	if (!strcmp(argv[1], "fingerprint") && argc == 3)
		return key_fingerprint(argv[2]);
	return key_usage();
}
