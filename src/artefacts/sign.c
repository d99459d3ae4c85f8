/* sign: the customer-key signer, local PEM or external HSM wrapper (sign.h).
 *
 * Threads: signer_sign() keeps no mutable state in the signer (a PEM is
 * re-read per call, an external signer is a fresh child per call), so any
 * thread may call it concurrently; open/close on the owner's thread. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

#include "artefacts/hex.h"
#include "artefacts/keyfile.h"
#include "artefacts/secmem.h"
#include "artefacts/sign.h"

#define SIGNER_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SIGNER_STDOUT_MAX 65536
#define SIGNER_STDERR_MAX 2048

enum signer_kind { SIGNER_PEM, SIGNER_EXTERNAL };

struct signer {
	enum signer_kind kind;
	char *pem_path;
	char **argv;		/* external: program + args, NULL-terminated */
	size_t argc;
	unsigned timeout_ms;
	struct rsa_pubkey pub;
	char *warning;
	char *describe;
};

static int drbg_seed(mbedtls_entropy_context *ent, mbedtls_ctr_drbg_context *drbg)
{
	static const unsigned char pers[] = "rpi-sb-provisioner sign";

	mbedtls_entropy_init(ent);
	mbedtls_ctr_drbg_init(drbg);
	return mbedtls_ctr_drbg_seed(drbg, mbedtls_entropy_func, ent, pers, sizeof(pers) - 1) ?
	       -EIO : 0;
}

/* Read and parse the private key, refusing a file whose owner or mode
 * others could use (keyfile_check_mode), on every read; the caller frees @pk. */
static int pem_parse(const char *path, mbedtls_pk_context *pk, struct art_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	rc = keyfile_read(path, &buf, &len, &st, err);
	if (rc < 0)
		return rc;
	rc = keyfile_check_mode(path, &st, err);
	if (rc == 0 && mbedtls_pk_parse_key(pk, buf, len, NULL, 0) != 0) {
		if (mbedtls_pk_parse_public_key(pk, buf, len) == 0)
			rc = art_err_set(err, -EINVAL, "%s: this is a public key; signing needs the "
					 "private key ([key] pem)", path);
		else
			rc = art_err_set(err, -EINVAL, "%s: not an unencrypted PEM private key",
					 path);
	}
	secmem_free(buf);
	return rc;
}

static struct signer *signer_new(enum signer_kind kind)
{
	struct signer *s = calloc(1, sizeof(*s));

	if (s)
		s->kind = kind;
	return s;
}

void signer_close(struct signer *s)
{
	if (!s)
		return;
	free(s->pem_path);
	for (size_t i = 0; s->argv && i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	free(s->warning);
	free(s->describe);
	free(s);
}

int signer_open_pem(const char *pem_path, struct signer **out, struct art_err *err)
{
	mbedtls_pk_context pk;
	struct signer *s;
	int rc;

	*out = NULL;
	mbedtls_pk_init(&pk);
	s = signer_new(SIGNER_PEM);
	if (!s || !(s->pem_path = strdup(pem_path))) {
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = pem_parse(pem_path, &pk, err);
	if (rc < 0)
		goto out;
	rc = pubkey_from_pk(&pk, pem_path, &s->pub, err);
	if (rc < 0)
		goto out;
	if (asprintf(&s->describe, "key file %s", pem_path) < 0) {
		s->describe = NULL;
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	mbedtls_pk_free(&pk);
	signer_close(s);
	return rc;
}

/* argv[0] without a slash is looked up in SIGNER_PATH (not the caller's PATH). */
static char *resolve_program(const char *name)
{
	char *path = NULL;
	const char *p = SIGNER_PATH;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	while (*p) {
		size_t n = strcspn(p, ":");

		if (asprintf(&path, "%.*s/%s", (int)n, p, name) < 0)
			return NULL;
		if (access(path, X_OK) == 0)
			return path;
		free(path);
		path = NULL;
		p += n + (p[n] == ':');
	}
	return NULL;
}

int signer_open_external(const char *command, const char *public_pem, unsigned timeout_ms,
			 struct signer **out, struct art_err *err)
{
	struct signer *s;
	const char *p = command;
	int rc;

	*out = NULL;
	if (!public_pem || !*public_pem)
		return art_err_set(err, -EINVAL, "[key] signer is set but [key] public is not: the "
				   "public key PEM is needed to embed and to check signatures");
	s = signer_new(SIGNER_EXTERNAL);
	if (!s || !(s->argv = calloc(SIGNER_MAX_ARGS + 4, sizeof(char *)))) {
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	s->timeout_ms = timeout_ms ? timeout_ms : SIGNER_TIMEOUT_MS_DEFAULT;
	while (*p) {
		size_t n;

		p += strspn(p, " \t\n");
		n = strcspn(p, " \t\n");
		if (!n)
			break;
		if (s->argc == SIGNER_MAX_ARGS) {
			rc = art_err_set(err, -E2BIG, "[key] signer: more than %d words",
					 SIGNER_MAX_ARGS);
			goto out;
		}
		if (!(s->argv[s->argc++] = strndup(p, n))) {
			rc = art_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		p += n;
	}
	if (s->argc == 0) {
		rc = art_err_set(err, -EINVAL, "[key] signer is empty");
		goto out;
	}
	{
		char *prog = resolve_program(s->argv[0]);

		if (!prog) {
			rc = art_err_set(err, -ENOENT, "[key] signer: program `%s` not found or not "
					 "executable (searched %s)", s->argv[0],
					 strchr(s->argv[0], '/') ? "that path" : SIGNER_PATH);
			goto out;
		}
		free(s->argv[0]);
		s->argv[0] = prog;
	}
	rc = pubkey_load_pem(public_pem, &s->pub, err);
	if (rc < 0) {
		art_err_prefix(err, "[key] public: ");
		goto out;
	}
	if (asprintf(&s->describe, "external signer %s", s->argv[0]) < 0) {
		s->describe = NULL;
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	signer_close(s);
	return rc;
}

int signer_open_config(const char *pem, const char *command, const char *public_pem,
		       unsigned timeout_ms, struct signer **out, struct art_err *err)
{
	bool has_pem = pem && *pem, has_cmd = command && *command;

	*out = NULL;
	if (has_pem && has_cmd)
		return art_err_set(err, -EINVAL, "[key] pem and [key] signer are both set: keep "
				   "one of them");
	if (has_pem)
		return signer_open_pem(pem, out, err);
	if (has_cmd)
		return signer_open_external(command, public_pem, timeout_ms, out, err);
	return art_err_set(err, -ENOENT, "no signing key: set [key] pem, or [key] signer with "
			   "[key] public");
}

const struct rsa_pubkey *signer_pubkey(const struct signer *s)
{
	return &s->pub;
}

const char *signer_warning(const struct signer *s)
{
	return s->warning;
}

const char *signer_describe(const struct signer *s)
{
	return s->describe;
}

static int sign_pem(struct signer *s, const uint8_t hash[SHA256_BYTES],
		    uint8_t sig[RSA2048_BYTES], struct art_err *err)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context pk;
	struct rsa_pubkey now;
	size_t siglen = 0;
	int rc;

	mbedtls_pk_init(&pk);
	rc = drbg_seed(&ent, &drbg);
	if (rc < 0) {
		art_err_set(err, rc, "cannot seed the random generator for RSA blinding");
		goto out;
	}
	rc = pem_parse(s->pem_path, &pk, err);
	if (rc < 0)
		goto out;
	rc = pubkey_from_pk(&pk, s->pem_path, &now, err);
	if (rc < 0)
		goto out;
	if (memcmp(&now, &s->pub, sizeof(now)) != 0) {
		rc = art_err_set(err, -ESTALE, "%s: the key file changed since it was loaded; "
				 "restart to use the new key", s->pem_path);
		goto out;
	}
	if (mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, SHA256_BYTES, sig, &siglen,
			    mbedtls_ctr_drbg_random, &drbg) != 0 || siglen != RSA2048_BYTES) {
		rc = art_err_set(err, -EIO, "%s: RSA signing failed", s->pem_path);
		goto out;
	}
	rc = 0;
out:
	mbedtls_pk_free(&pk);	/* mbedtls wipes the key's bignums */
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rc;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000L + (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Run the wrapper on @input_path; stdout into @outbuf (bounded), first part of
 * stderr into @errbuf. Returns 0 with *status set, or -ETIMEDOUT / -errno. */
static int run_wrapper(const struct signer *s, const char *input_path, char *outbuf,
		       size_t *outlen, char *errbuf, size_t errcap, int *status)
{
	static char env_path[] = "PATH=" SIGNER_PATH, env_lc[] = "LC_ALL=C";
	char *envp[] = { env_path, env_lc, NULL };
	char *argv[SIGNER_MAX_ARGS + 4];
	static char opt_a[] = "-a", opt_alg[] = "rsa2048-sha256";
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, devnull = -1;
	size_t errlen = 0, i;
	struct timespec t0;
	bool out_open = true, err_open = true;
	pid_t pid;
	int rc = 0;

	for (i = 0; i < s->argc; i++)
		argv[i] = s->argv[i];
	argv[i++] = opt_a;
	argv[i++] = opt_alg;
	argv[i++] = (char *)(uintptr_t)input_path;
	argv[i] = NULL;
	*outlen = 0;
	errbuf[0] = '\0';
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		rc = -errno;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here to execve. */
		setpgid(0, 0);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outp[1], 1) < 0 ||
		    dup2(errp[1], 2) < 0)
			_exit(127);
		syscall(SYS_close_range, 3U, ~0U, 0U);	/* rest is O_CLOEXEC anyway */
		signal(SIGPIPE, SIG_DFL);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	setpgid(pid, pid);
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	while (out_open || err_open) {
		struct pollfd pfd[2] = { { outp[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };
		long left = (long)s->timeout_ms - elapsed_ms(&t0);
		char tmp[4096];

		if (!out_open)
			pfd[0].fd = -1;
		if (!err_open)
			pfd[1].fd = -1;
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (poll(pfd, 2, (int)left) < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (pfd[0].revents) {
			ssize_t n = read(outp[0], tmp, sizeof(tmp));

			if (n <= 0 && !(n < 0 && errno == EINTR))
				out_open = false;
			else if (n > 0) {
				size_t take = (size_t)n;

				if (*outlen + take > SIGNER_STDOUT_MAX) {
					rc = -EMSGSIZE;
					break;
				}
				memcpy(outbuf + *outlen, tmp, take);
				*outlen += take;
			}
		}
		if (pfd[1].revents) {
			ssize_t n = read(errp[0], tmp, sizeof(tmp));

			if (n <= 0 && !(n < 0 && errno == EINTR))
				err_open = false;
			else if (n > 0 && errlen + 1 < errcap) {
				size_t take = (size_t)n < errcap - 1 - errlen ? (size_t)n
									       : errcap - 1 - errlen;

				memcpy(errbuf + errlen, tmp, take);
				errlen += take;
				errbuf[errlen] = '\0';
			}
		}
	}
	/* Pipes closed (or gave up): reap, still under the deadline. */
	for (;;) {
		pid_t w;

		if (rc < 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (elapsed_ms(&t0) >= (long)s->timeout_ms) {
			rc = -ETIMEDOUT;
			continue;
		}
		nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
	}
out:
	if (devnull >= 0)
		close(devnull);
	for (i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return rc;
}

static void first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
}

/* Run the wrapper on @input (a file holding exactly the message) and check
 * its answer against @hash. */
static int sign_external_path(struct signer *s, const char *input,
			      const uint8_t hash[SHA256_BYTES], uint8_t sig[RSA2048_BYTES],
			      struct art_err *err)
{
	char *out = NULL, errbuf[SIGNER_STDERR_MAX];
	size_t outlen = 0, a, b;
	int status = 0, rc;

	out = malloc(SIGNER_STDOUT_MAX);
	if (!out)
		return art_err_set(err, -ENOMEM, "out of memory");
	rc = run_wrapper(s, input, out, &outlen, errbuf, sizeof(errbuf), &status);
	first_line(errbuf);
	if (rc == -ETIMEDOUT) {
		art_err_set(err, rc, "%s: no answer within %u ms; killed it. Check the HSM / token "
			    "and the wrapper", s->describe, s->timeout_ms);
		goto out;
	}
	if (rc == -EMSGSIZE) {
		art_err_set(err, rc, "%s: printed more than %d bytes; a signature is 512 hex "
			    "characters", s->describe, SIGNER_STDOUT_MAX);
		goto out;
	}
	if (rc < 0) {
		art_err_set(err, rc, "%s: cannot run: %s", s->describe, strerror(-rc));
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rc = art_err_set(err, -EIO, "%s: failed (%s %d)%s%s", s->describe,
				 WIFEXITED(status) ? "exit status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
				 *errbuf ? ": " : "", errbuf);
		goto out;
	}
	a = 0;
	b = outlen;
	while (a < b && strchr(" \t\r\n", out[a]))
		a++;
	while (b > a && strchr(" \t\r\n", out[b - 1]))
		b--;
	if (b - a != 2 * RSA2048_BYTES || hex_decode(out + a, b - a, sig, RSA2048_BYTES) < 0) {
		rc = art_err_set(err, -EBADMSG, "%s: output is %zu characters, not a signature of "
				 "exactly 512 hex characters%s%s", s->describe, b - a,
				 *errbuf ? "; stderr: " : "", errbuf);
		goto out;
	}
	if (pubkey_verify_hash(&s->pub, hash, sig) != 0) {
		rc = art_err_set(err, -EBADMSG, "%s: the signature does not verify with [key] "
				 "public: the wrapper uses another key, or signed other data",
				 s->describe);
		goto out;
	}
	rc = 0;
out:
	free(out);
	return rc;
}

/* The wrapper reads a file: put @data in a private temp file first. */
static int sign_external(struct signer *s, const uint8_t *data, size_t len,
			 const uint8_t hash[SHA256_BYTES], uint8_t sig[RSA2048_BYTES],
			 struct art_err *err)
{
	const char *tmpdir = getenv("TMPDIR");
	char *path = NULL;
	int fd, rc;

	if (!tmpdir || !*tmpdir)
		tmpdir = "/tmp";
	if (asprintf(&path, "%s/rpi-sb-sign.XXXXXX", tmpdir) < 0)
		return art_err_set(err, -ENOMEM, "out of memory");
	fd = mkstemp(path);
	if (fd < 0) {
		rc = art_err_set(err, -errno, "external signer: cannot create the input file in %s: "
				 "%s", tmpdir, strerror(errno));
		free(path);
		return rc;
	}
	rc = keyfile_write_all(fd, data, len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		art_err_set(err, rc, "external signer: cannot write %s: %s", path, strerror(-rc));
	else
		rc = sign_external_path(s, path, hash, sig, err);
	unlink(path);
	free(path);
	return rc;
}

static int hash_file(const char *path, uint8_t hash[SHA256_BYTES], struct art_err *err)
{
	mbedtls_sha256_context ctx;
	uint8_t buf[65536];
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "%s: %s", path, strerror(errno));
	mbedtls_sha256_init(&ctx);
	mbedtls_sha256_starts_ret(&ctx, 0);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = art_err_set(err, -errno, "%s: read: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		mbedtls_sha256_update_ret(&ctx, buf, (size_t)n);
	}
	if (rc == 0)
		mbedtls_sha256_finish_ret(&ctx, hash);
	mbedtls_sha256_free(&ctx);
	close(fd);
	return rc;
}

int signer_sign_file(struct signer *s, const char *path, uint8_t hash[SHA256_BYTES],
		     uint8_t sig[RSA2048_BYTES], struct art_err *err)
{
	int rc = hash_file(path, hash, err);

	if (rc < 0)
		return rc;
	if (s->kind == SIGNER_EXTERNAL)
		return sign_external_path(s, path, hash, sig, err);
	rc = sign_pem(s, hash, sig, err);
	if (rc == 0 && pubkey_verify_hash(&s->pub, hash, sig) != 0)
		rc = art_err_set(err, -EIO, "%s: the signature just made does not verify",
				 s->describe);
	return rc;
}

int signer_sign(struct signer *s, const uint8_t *data, size_t len, uint8_t sig[RSA2048_BYTES],
		struct art_err *err)
{
	uint8_t hash[SHA256_BYTES];
	int rc;

	mbedtls_sha256_ret(data, len, hash, 0);
	if (s->kind == SIGNER_EXTERNAL)
		return sign_external(s, data, len, hash, sig, err);
	rc = sign_pem(s, hash, sig, err);
	if (rc == 0 && pubkey_verify_hash(&s->pub, hash, sig) != 0)
		rc = art_err_set(err, -EIO, "%s: the signature just made does not verify",
				 s->describe);
	return rc;
}

int sign_generate_key(char **pem_secmem, size_t *pem_len, struct rsa_pubkey *pub,
		      struct art_err *err)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context pk;
	char *buf = NULL;
	int rc;

	*pem_secmem = NULL;
	*pem_len = 0;
	mbedtls_pk_init(&pk);
	rc = drbg_seed(&ent, &drbg);
	if (rc < 0) {
		art_err_set(err, rc, "cannot seed the random generator");
		goto out;
	}
	if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0 ||
	    mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg, 2048,
				65537) != 0) {
		rc = art_err_set(err, -EIO, "RSA-2048 key generation failed");
		goto out;
	}
	rc = pubkey_from_pk(&pk, "new key", pub, err);
	if (rc < 0)
		goto out;
	buf = secmem_alloc(4096);
	if (!buf) {
		rc = art_err_set(err, -errno, "cannot lock memory for the key: %s", strerror(errno));
		goto out;
	}
	if (mbedtls_pk_write_key_pem(&pk, (unsigned char *)buf, 4096) != 0) {
		rc = art_err_set(err, -EIO, "cannot encode the new key as PEM");
		goto out;
	}
	*pem_len = strlen(buf);
	*pem_secmem = buf;
	buf = NULL;
	rc = 0;
out:
	secmem_free(buf);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rc;
}
