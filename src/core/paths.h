/* paths: where the station keeps its files, relocatable under one root.
 *
 * Defaults follow Raspberry Pi's provisioner so its operators feel at home;
 * `--root DIR` (or RPI_SB_ROOT) puts every one of them under DIR, so tests and
 * non-root users can run the station anywhere. */
#ifndef RPI_SB_CORE_PATHS_H
#define RPI_SB_CORE_PATHS_H

struct paths {
	char *root;        /* "" for the real file system, else the relocation prefix */
	char *etc;         /* /etc/rpi-sb-provisioner */
	char *config;      /* <etc>/provisioner.ini */
	char *vendor;      /* /usr/share/rpi-sb-provisioner (package-provided defaults) */
	char *srv;         /* /srv/rpi-sb-provisioner */
	char *log;         /* /var/log/rpi-sb-provisioner */
	char *run;         /* /run/rpi-sb-provisioner */
};

/* Fill @p from @root (NULL or "" for none). Returns 0 or -ENOMEM. */
int paths_init(struct paths *p, const char *root);
void paths_free(struct paths *p);

/* Prefix an absolute default path with the root. Caller frees. NULL on ENOMEM. */
char *paths_rooted(const struct paths *p, const char *abs_path);

/* malloc'd "a/b" join; NULL on ENOMEM. */
char *path_join(const char *a, const char *b);

/* mkdir -p with @mode for each created component. 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

#endif
