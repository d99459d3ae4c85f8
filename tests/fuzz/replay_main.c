/* replay_main: feeds every file of a fuzz corpus to LLVMFuzzerTestOneInput.
 *
 * Linked with one fuzz_*.c target into a plain program so `make check` replays
 * the checked-in corpus under the normal (ASan/UBSan) build without libFuzzer.
 * The corpus directory is compiled in (CORPUS_DIR) and may be overridden by
 * argv[1]. A crash or sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f) {
		perror(path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -1;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : CORPUS_DIR;
	struct dirent **names;
	int n, count = 0, bad = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		perror(dir);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];

		if (names[i]->d_name[0] != '.' &&
		    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < (int)sizeof(path)) {
			if (replay_file(path) < 0)
				bad++;
			else
				count++;
		}
		free(names[i]);
	}
	free(names);
	printf("replayed %d inputs from %s\n", count, dir);
	if (count == 0) {
		fprintf(stderr, "empty corpus: %s\n", dir);
		return 1;
	}
	return bad ? 1 : 0;
}
