/* paths: the station's default locations and their relocation under --root.
 * Pure functions of their arguments; any thread may call them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/paths.h"

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);
	char *s;

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	if (asprintf(&s, "%.*s/%s", (int)la, a, b) < 0)
		return NULL;
	return s;
}

char *paths_rooted(const struct paths *p, const char *abs_path)
{
	if (!p->root || !*p->root)
		return strdup(abs_path);
	return path_join(p->root, abs_path);
}

void paths_free(struct paths *p)
{
	free(p->root);
	free(p->etc);
	free(p->config);
	free(p->vendor);
	free(p->srv);
	free(p->log);
	free(p->run);
	memset(p, 0, sizeof(*p));
}

int paths_init(struct paths *p, const char *root)
{
	memset(p, 0, sizeof(*p));
	p->root = strdup(root ? root : "");
	if (!p->root)
		return -ENOMEM;
	p->etc = paths_rooted(p, "/etc/rpi-sb-provisioner");
	p->vendor = paths_rooted(p, "/usr/share/rpi-sb-provisioner");
	p->srv = paths_rooted(p, "/srv/rpi-sb-provisioner");
	p->log = paths_rooted(p, "/var/log/rpi-sb-provisioner");
	p->run = paths_rooted(p, "/run/rpi-sb-provisioner");
	p->config = p->etc ? path_join(p->etc, "provisioner.ini") : NULL;
	if (!p->etc || !p->vendor || !p->srv || !p->log || !p->run || !p->config) {
		paths_free(p);
		return -ENOMEM;
	}
	return 0;
}

int mkdir_p(const char *path, unsigned mode)
{
	char *buf = strdup(path);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (char *s = buf + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(buf);
	return r;
}
