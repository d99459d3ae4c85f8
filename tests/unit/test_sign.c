/* test_sign: the customer-key signer (PEM and external HSM wrapper), key
 * checks, key generation, fingerprints. openssl is the oracle for every
 * signature made here (spec §2.2, §3, §7). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "artefacts/keyfile.h"
#include "artefacts/secmem.h"
#include "artefacts/sig.h"
#include "artefacts/sign.h"
#include "test_sign_helpers.h"

static char *dir;		/* per-run temp dir with keys and wrapper scripts */
static char key600[512], pub[512], other_pub[512];

static char *tpath(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void script(const char *name, const char *body)
{
	char *p = tpath(name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(p, 0755);
}

static int setup(void **state)
{
	char cmd[2048], body[1024];

	(void)state;
	dir = th_tmpdir();
	if (!dir)
		return -1;
	snprintf(key600, sizeof(key600), "%s/key.pem", dir);
	snprintf(pub, sizeof(pub), "%s", FIX("example-public.pem"));
	snprintf(other_pub, sizeof(other_pub), "%s/other-pub.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && cp '%s' key.pem && chmod 600 key.pem && "
		 "openssl genrsa -out rsa1024.pem 1024 2>/dev/null && "
		 "openssl genrsa -out rsa2560.pem 2560 2>/dev/null && "
		 "openssl genrsa -out other.pem 2048 2>/dev/null && chmod 600 *.pem && "
		 "openssl rsa -in other.pem -pubout -out other-pub.pem 2>/dev/null && "
		 "openssl ecparam -name prime256v1 -genkey -noout -out ec.pem && chmod 600 ec.pem && "
		 "printf 'other data' > other.data", dir, FIX("example-private.pem"));
	if (th_sh(cmd) != 0)
		return -1;
#define SIGN_HEX(k, f) "openssl dgst -sha256 -sign '" k "' " f " | od -An -v -tx1 | tr -d ' \\n'"
	snprintf(body, sizeof(body),
		 "[ \"$1\" = -a ] && [ \"$2\" = rsa2048-sha256 ] && [ -f \"$3\" ] && [ $# = 3 ] || "
		 "{ echo \"bad arguments: $*\" >&2; exit 3; }\n"
		 "[ -z \"$SIGNER_TEST_SECRET\" ] || { echo 'environment leaked' >&2; exit 4; }\n"
		 "openssl dgst -sha256 -sign '%s' \"$3\" | od -An -v -tx1 | tr -d ' \\n'", key600);
	script("good.sh", body);
	snprintf(body, sizeof(body),
		 "printf '  '; openssl dgst -sha256 -sign '%s' \"$3\" | od -An -v -tx1 | "
		 "tr -d ' \\n' | tr a-f A-F; echo", key600);
	script("good-upper-lf.sh", body);
	script("empty.sh", "exit 0");
	script("garbage.sh", "echo 'hello, I am not a signature'");
	snprintf(body, sizeof(body),
		 "openssl dgst -sha256 -sign '%s' '%s/other.data' | od -An -v -tx1 | tr -d ' \\n'",
		 key600, dir);
	script("otherdata.sh", body);
	script("fail.sh", "echo 'token not present' >&2; exit 1");
	script("sleep.sh", "sleep 1000; echo too late");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmrf(dir);
	return 0;
}

static uint8_t *bootconf_rsa(void)
{
	static struct sig_file sig;
	struct art_err err = { "" };

	assert_int_equal(sig_load(FIX("bootconf.sig"), &sig, &err), 0);
	return sig.rsa;
}

/* PKCS#1 v1.5 is deterministic: we must reproduce the fixture's signature. */
static void test_pem_reproduces_bootconf_sig(void **state)
{
	struct art_err err = { "" };
	struct signer *s;
	uint8_t sig[256], *cfg;
	size_t cl;

	(void)state;
	assert_int_equal(signer_open_pem(key600, &s, &err), 0);
	assert_null(signer_warning(s));
	cfg = th_read(FIX("bootconf.txt"), &cl);
	assert_int_equal(signer_sign(s, cfg, cl, sig, &err), 0);
	assert_memory_equal(sig, bootconf_rsa(), 256);
	assert_int_equal(th_openssl_verify(dir, pub, cfg, cl, sig), 0);
	cfg[0] ^= 1;	/* the oracle can say no */
	assert_int_not_equal(th_openssl_verify(dir, pub, cfg, cl, sig), 0);
	free(cfg);
	signer_close(s);
}

static void expect_perm_refused(const char *what)
{
	struct art_err err = { "" };
	struct signer *s = NULL;

	assert_int_equal(signer_open_pem(key600, &s, &err), -EPERM);
	assert_null(s);
	if (!strstr(err.msg, key600) || !strstr(err.msg, what) || !strstr(err.msg, "refused"))
		fail_msg("refusal of %s lacks '%s': %s", key600, what, err.msg);
}

/* A key others can read or write is refused, naming the file, mode and owner. */
static void test_pem_mode_refused(void **state)
{
	struct art_err err = { "" };
	struct signer *s;
	uint8_t sig[256];
	char owner[32];

	(void)state;
	snprintf(owner, sizeof(owner), "owner uid %u", (unsigned)geteuid());
	chmod(key600, 0640);
	expect_perm_refused("mode 0640");
	expect_perm_refused(owner);
	chmod(key600, 0604);
	expect_perm_refused("mode 0604");
	chmod(key600, 0620);	/* writable by the group: someone could swap the key */
	expect_perm_refused("chmod 600");
	chmod(key600, 0400);
	assert_int_equal(signer_open_pem(key600, &s, &err), 0);
	/* Loosened after loading: the next signature re-reads and refuses. */
	chmod(key600, 0644);
	assert_int_equal(signer_sign(s, (const uint8_t *)"x", 1, sig, &err), -EPERM);
	assert_non_null(strstr(err.msg, "mode 0644"));
	signer_close(s);
	chmod(key600, 0600);
}

/* Owned by someone else than root or us (needs root to set up). */
static void test_pem_owner_refused(void **state)
{
	char msg[64];

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(chown(key600, 65534, 65534), 0);
	snprintf(msg, sizeof(msg), "owned by uid 65534");
	expect_perm_refused(msg);
	assert_int_equal(chown(key600, 0, 0), 0);
	struct art_err err = { "" };
	struct signer *s;
	assert_int_equal(signer_open_pem(key600, &s, &err), 0);	/* root's is fine */
	signer_close(s);
}

/* The policy itself, on fabricated stat data (works without root). */
static void test_keyfile_policy(void **state)
{
	struct art_err err = { "" };
	struct stat st = { .st_mode = S_IFREG | 0600, .st_uid = geteuid() };

	(void)state;
	assert_int_equal(keyfile_check_mode("k.pem", &st, &err), 0);
	st.st_uid = 0;
	assert_int_equal(keyfile_check_mode("k.pem", &st, &err), 0);
	st.st_uid = geteuid() + 1000;
	assert_int_equal(keyfile_check_mode("k.pem", &st, &err), -EPERM);
	assert_non_null(strstr(err.msg, "k.pem"));
	st.st_uid = geteuid();
	st.st_mode = S_IFREG | 0660;
	assert_int_equal(keyfile_check_mode("k.pem", &st, &err), -EPERM);
	st.st_mode = S_IFREG | 0601;
	assert_int_equal(keyfile_check_mode("k.pem", &st, &err), -EPERM);
	st.st_mode = S_IFDIR | 0700;
	assert_int_equal(keyfile_check_mode("k.pem", &st, &err), -EINVAL);
}

static void expect_refused(const char *file, const char *what)
{
	struct art_err err = { "" };
	struct signer *s = NULL;

	assert_int_equal(signer_open_pem(file, &s, &err), -EINVAL);
	assert_null(s);
	if (!strstr(err.msg, what) || !strstr(err.msg, file))
		fail_msg("message for %s lacks '%s': %s", file, what, err.msg);
}

static void test_bad_keys(void **state)
{
	struct art_err err = { "" };
	struct rsa_pubkey k;
	struct signer *s = NULL;

	(void)state;
	expect_refused(tpath("rsa1024.pem"), "RSA-1024");
	expect_refused(tpath("rsa2560.pem"), "RSA-2560");	/* 4096 takes seconds to make */
	expect_refused(tpath("ec.pem"), "EC");
	/* (copies with mode 0600: the mode check comes first) */
	char cmd[1536];
	snprintf(cmd, sizeof(cmd), "cd '%s' && cp '%s' pub600.pem && cp good.sh notpem600 && "
		 "chmod 600 pub600.pem notpem600", dir, pub);
	assert_int_equal(th_sh(cmd), 0);
	expect_refused(tpath("pub600.pem"), "public key");
	expect_refused(tpath("notpem600"), "not an unencrypted PEM");
	assert_int_equal(signer_open_pem(tpath("missing.pem"), &s, &err), -ENOENT);
	assert_int_equal(pubkey_load_pem(tpath("ec.pem"), &k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "RSA-2048"));
}

static struct signer *external(const char *script_name, const char *pubkey, unsigned ms)
{
	struct art_err err = { "" };
	struct signer *s = NULL;

	if (signer_open_external(tpath(script_name), pubkey, ms, &s, &err) < 0)
		fail_msg("%s", err.msg);
	return s;
}

static void test_external_good(void **state)
{
	struct art_err err = { "" };
	struct signer *s;
	uint8_t sig[256], hash[32], *cfg;
	size_t cl;

	(void)state;
	setenv("SIGNER_TEST_SECRET", "1", 1);	/* must not reach the wrapper */
	cfg = th_read(FIX("bootconf.txt"), &cl);
	s = external("good.sh", pub, 10000);
	if (signer_sign(s, cfg, cl, sig, &err) < 0)
		fail_msg("%s", err.msg);
	assert_memory_equal(sig, bootconf_rsa(), 256);
	assert_int_equal(th_openssl_verify(dir, pub, cfg, cl, sig), 0);
	memset(sig, 0, sizeof(sig));
	assert_int_equal(signer_sign_file(s, FIX("bootconf.txt"), hash, sig, &err), 0);
	assert_memory_equal(sig, bootconf_rsa(), 256);
	signer_close(s);

	s = external("good-upper-lf.sh", pub, 10000);
	assert_int_equal(signer_sign(s, cfg, cl, sig, &err), 0);
	assert_memory_equal(sig, bootconf_rsa(), 256);
	signer_close(s);
	unsetenv("SIGNER_TEST_SECRET");
	free(cfg);
}

static void expect_external_refused(const char *name, const char *pubkey, unsigned ms,
				    int want, const char *what)
{
	static const uint8_t data[] = "some bytes to sign";
	struct art_err err = { "" };
	struct signer *s = external(name, pubkey, ms);
	uint8_t sig[256];

	assert_int_equal(signer_sign(s, data, sizeof(data), sig, &err), want);
	if (!strstr(err.msg, what))
		fail_msg("%s: message lacks '%s': %s", name, what, err.msg);
	signer_close(s);
}

static void test_external_refusals(void **state)
{
	struct timespec t0, t1;
	long ms;

	(void)state;
	expect_external_refused("empty.sh", pub, 10000, -EBADMSG, "0 characters");
	expect_external_refused("garbage.sh", pub, 10000, -EBADMSG, "exactly 512 hex");
	expect_external_refused("otherdata.sh", pub, 10000, -EBADMSG, "does not verify");
	expect_external_refused("good.sh", other_pub, 10000, -EBADMSG, "does not verify");
	expect_external_refused("fail.sh", pub, 10000, -EIO, "token not present");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_external_refused("sleep.sh", pub, 300, -ETIMEDOUT, "killed");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 300 && ms < 5000);
}

static void test_open_config(void **state)
{
	struct art_err err = { "" };
	struct signer *s = NULL;

	(void)state;
	assert_int_equal(signer_open_config(key600, "x", pub, 0, &s, &err), -EINVAL);
	assert_int_equal(signer_open_config(NULL, "", NULL, 0, &s, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "[key] pem"));
	assert_int_equal(signer_open_config(NULL, tpath("good.sh"), NULL, 0, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "[key] public"));
	assert_int_equal(signer_open_config(NULL, "no-such-signer-program --x", pub, 0, &s, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "no-such-signer-program"));
	assert_int_equal(signer_open_config(NULL, tpath("good.sh"), tpath("ec.pem"), 0, &s, &err),
			 -EINVAL);
	assert_int_equal(signer_open_config(key600, NULL, NULL, 0, &s, &err), 0);
	assert_non_null(strstr(signer_describe(s), key600));
	signer_close(s);
}

static void test_fingerprint(void **state)
{
	struct art_err err = { "" };
	struct rsa_pubkey k, back;
	uint8_t bin[PUBKEY_BIN_LEN];
	char fp[65], fp2[65];

	(void)state;
	assert_int_equal(pubkey_load_pem(pub, &k, &err), 0);
	pubkey_fingerprint(&k, fp);
	/* V1: SHA-256 of pubkey.bin, not of the DER SubjectPublicKeyInfo (79808217…). */
	assert_string_equal(fp, "8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee");
	pubkey_to_bin(&k, bin);
	assert_memory_equal(bin, "\xdd\xf6\x8d\xf2\x4d\xd7\xf8\xb9", 8);
	assert_memory_equal(bin + 256, "\x01\x00\x01\x00\x00\x00\x00\x00", 8);
	assert_int_equal(pubkey_from_bin(bin, &back, &err), 0);
	assert_memory_equal(&back, &k, sizeof(k));
	/* The private PEM gives the same fingerprint. */
	assert_int_equal(pubkey_load_pem(key600, &back, &err), 0);
	pubkey_fingerprint(&back, fp2);
	assert_string_equal(fp, fp2);
}

static void test_generate(void **state)
{
	struct art_err err = { "" };
	struct rsa_pubkey k;
	struct signer *s;
	char *pem = NULL, *pubpem = NULL;
	uint8_t sig[256];
	static const uint8_t data[] = "generated key test";

	(void)state;
	size_t len = 0;

	assert_int_equal(sign_generate_key(&pem, &len, &k, &err), 0);
	assert_non_null(strstr(pem, "PRIVATE KEY"));
	assert_int_equal(th_write(tpath("gen.pem"), pem, len), 0);
	chmod(tpath("gen.pem"), 0600);
	secmem_free(pem);
	assert_int_equal(signer_open_pem(tpath("gen.pem"), &s, &err), 0);
	assert_memory_equal(signer_pubkey(s), &k, sizeof(k));
	assert_int_equal(k.e[7], 0x01);
	assert_int_equal(k.e[5], 0x01);	/* 65537 */
	assert_int_equal(signer_sign(s, data, sizeof(data), sig, &err), 0);
	assert_int_equal(pubkey_to_pem(&k, &pubpem), 0);
	assert_int_equal(th_write(tpath("gen-pub.pem"), pubpem, strlen(pubpem)), 0);
	assert_int_equal(th_openssl_verify(dir, tpath("gen-pub.pem"), data, sizeof(data), sig), 0);
	free(pubpem);
	signer_close(s);
}

static void test_secmem(void **state)
{
	uint8_t *p = secmem_alloc(100);

	(void)state;
	assert_non_null(p);
	assert_int_equal(secmem_size(p), 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 0);
	memset(p, 0x42, 100);
	/* The mapping holding it is locked (never swapped) and left out of
	 * core dumps: smaps VmFlags "lo" and "dd". */
	{
		FILE *f = fopen("/proc/self/smaps", "r");
		char line[512];
		bool in = false, checked = false;

		assert_non_null(f);
		while (fgets(line, sizeof(line), f)) {
			unsigned long lo, hi;

			if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
				in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			else if (in && strncmp(line, "VmFlags:", 8) == 0) {
#ifndef __SANITIZE_ADDRESS__	/* ASan turns mlock() into a no-op */
				assert_non_null(strstr(line, " lo"));
#endif
				assert_non_null(strstr(line, " dd"));
				checked = true;
			}
		}
		fclose(f);
		assert_true(checked);
	}
	secmem_free(p);
	secmem_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pem_reproduces_bootconf_sig),
		cmocka_unit_test(test_pem_mode_refused),
		cmocka_unit_test(test_pem_owner_refused),
		cmocka_unit_test(test_keyfile_policy),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_external_good),
		cmocka_unit_test(test_external_refusals),
		cmocka_unit_test(test_open_config),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_secmem),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
