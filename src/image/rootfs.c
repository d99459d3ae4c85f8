/* rootfs: block copy + resize2fs + sparse of the root file system (see
 * rootfs.h). Any thread. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/ext4.h"
#include "image/rootfs.h"

extern char **environ;

#define COPY_CHUNK (1u << 20)

uint64_t rootfs_container_bytes(uint64_t partition_bytes, uint64_t luks_header_bytes)
{
	return partition_bytes > luks_header_bytes ? partition_bytes - luks_header_bytes : 0;
}

int rootfs_run_tool(const char *const argv[], struct art_err *err)
{
	static const char *const dirs[] = {"/sbin", "/usr/sbin"};
	posix_spawn_file_actions_t fa;
	char path[256], out[4096], *last;
	int pipefd[2], status = 0, rc;
	size_t n = 0, i;
	pid_t pid;

	snprintf(path, sizeof(path), "%s", argv[0]);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char cand[256];

		snprintf(cand, sizeof(cand), "%s/%s", dirs[i], argv[0]);
		if (access(cand, X_OK) == 0) {
			snprintf(path, sizeof(path), "%s", cand);
			break;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return art_err_set(err, -errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = posix_spawnp(&pid, path, &fa, NULL, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc) {
		close(pipefd[0]);
		return art_err_set(err, -rc, "cannot run %s: %s (install e2fsprogs)", argv[0],
				   strerror(rc));
	}
	for (;;) {
		ssize_t r = read(pipefd[0], out + n, sizeof(out) - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof(out) - 1) {	/* keep the tail */
			memmove(out, out + n / 2, n - n / 2);
			n -= n / 2;
		}
	}
	out[n] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	last = strrchr(out, '\n');
	return art_err_set(err, -EIO, "%s failed (%s %d): %s", argv[0],
			   WIFEXITED(status) ? "exit" : "signal",
			   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			   last ? last + 1 : out);
}

static int add_extent_cb(void *usr, uint64_t off, uint64_t len)
{
	return extents_add(usr, off, len);
}

static int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len,
		      uint8_t *buf)
{
	while (len) {
		size_t n = len > COPY_CHUNK ? COPY_CHUNK : (size_t)len;
		ssize_t r = pread(in, buf, n, (off_t)in_off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		if (pwrite(out, buf, (size_t)r, (off_t)out_off) != r)
			return -errno ? -errno : -EIO;
		in_off += (uint64_t)r;
		out_off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

int rootfs_build(const char *image, uint64_t part_offset, uint64_t part_bytes,
		 uint64_t container_bytes, const char *work_dir, const char *out_simg,
		 rootfs_edit_fn edit, void *edit_usr, struct rootfs_stats *stats,
		 struct art_err *err)
{
	struct extent_list ext = {0};
	struct ext4_fs *fs = NULL;
	struct rootfs_stats st;
	uint64_t target_blocks, bs;
	char *raw = NULL, blocks_arg[32];
	uint8_t *buf = NULL;
	int in = -1, out = -1, rc;
	size_t i;

	memset(&st, 0, sizeof(st));
	rc = ext4_open(image, part_offset, part_bytes, &fs, err);
	if (rc)
		return rc;
	bs = ext4_block_size(fs);
	st.block_size = (uint32_t)bs;
	st.source_bytes = ext4_blocks(fs) * bs;
	target_blocks = container_bytes / bs;
	/* the sparse image is in 4096-byte blocks: the file system must end on one */
	target_blocks = target_blocks * bs / SIMG_BLOCK * SIMG_BLOCK / bs;
	if (target_blocks < 64) {
		rc = art_err_set(err, -ENOSPC, "LUKS container of %llu bytes is too small for a "
				 "root file system", (unsigned long long)container_bytes);
		goto out;
	}
	st.fs_bytes = target_blocks * bs;
	rc = ext4_used_extents(fs, add_extent_cb, &ext, err);
	ext4_close(fs);
	fs = NULL;
	if (rc)
		goto out;
	if (asprintf(&raw, "%s/rootfs.raw", work_dir) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	in = open(image, O_RDONLY | O_CLOEXEC);
	out = open(raw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || out < 0) {
		rc = art_err_set(err, -errno, "cannot open %s or create %s: %s", image, raw,
				 strerror(errno));
		goto out;
	}
	buf = malloc(COPY_CHUNK);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	if (ftruncate(out, (off_t)(st.source_bytes > st.fs_bytes ? st.source_bytes : st.fs_bytes)) < 0) {
		rc = art_err_set(err, -errno, "cannot size %s: %s", raw, strerror(errno));
		goto out;
	}
	for (i = 0; i < ext.n; i++) {
		rc = copy_range(in, part_offset + ext.v[i].off, out, ext.v[i].off, ext.v[i].len, buf);
		if (rc) {
			art_err_set(err, rc, "cannot copy the root file system to %s: %s", raw,
				    strerror(-rc));
			goto out;
		}
	}
	if (fsync(out) < 0) {
		rc = art_err_set(err, -errno, "cannot flush %s: %s", raw, strerror(errno));
		goto out;
	}
	if (target_blocks * bs != st.source_bytes) {
		const char *argv[] = {"resize2fs", "-f", raw, blocks_arg, NULL};

		snprintf(blocks_arg, sizeof(blocks_arg), "%llu", (unsigned long long)target_blocks);
		rc = rootfs_run_tool(argv, err);
		if (rc) {
			art_err_prefix(err, "cannot fit the root file system (%llu bytes) to the "
				       "%llu-byte LUKS container: ",
				       (unsigned long long)st.source_bytes,
				       (unsigned long long)container_bytes);
			goto out;
		}
		st.resized = true;
	}
	if (ftruncate(out, (off_t)st.fs_bytes) < 0) {
		rc = art_err_set(err, -errno, "cannot size %s: %s", raw, strerror(errno));
		goto out;
	}
	if (edit) {
		rc = edit(edit_usr, raw, err);
		if (rc)
			goto out;
		if (ftruncate(out, (off_t)st.fs_bytes) < 0) {	/* the editor must not resize */
			rc = art_err_set(err, -errno, "cannot size %s: %s", raw, strerror(errno));
			goto out;
		}
	}
	extents_free(&ext);
	rc = ext4_open(raw, 0, st.fs_bytes, &fs, err);
	if (!rc)
		rc = ext4_used_extents(fs, add_extent_cb, &ext, err);
	if (rc)
		goto out;
	if (ext4_blocks(fs) * bs != st.fs_bytes) {
		rc = art_err_set(err, -EIO, "resize2fs left %llu blocks, %llu wanted",
				 (unsigned long long)ext4_blocks(fs), (unsigned long long)target_blocks);
		goto out;
	}
	rc = simg_write(out, 0, st.fs_bytes, &ext, out_simg, &st.simg, err);
	if (rc)
		goto out;
	if (stats)
		*stats = st;
out:
	ext4_close(fs);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (raw)
		unlink(raw);
	free(raw);
	free(buf);
	extents_free(&ext);
	return rc;
}
