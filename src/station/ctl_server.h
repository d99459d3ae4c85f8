/* ctl_server: the engine's end of the control socket.
 *
 * It listens on a Unix stream socket (mode 0660, the station group), greets
 * each viewer with the station info and a snapshot of the model, then copies
 * every event to it. Commands from a viewer go to one handler; a viewer that
 * asked to be read-only, or whose peer credentials (SO_PEERCRED) are neither
 * root, the engine's user nor a member of the station group, gets -EPERM.
 * Each viewer has a bounded output buffer: one that does not read falls
 * behind, loses the events in between and gets a fresh snapshot when it
 * catches up; the engine never waits for it. Front-end thread only. */
#ifndef RPI_SB_STATION_CTL_SERVER_H
#define RPI_SB_STATION_CTL_SERVER_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "station/ctl.h"
#include "station/events.h"
#include "station/model.h"

#define CTL_CLIENT_BUF_MAX (1u << 20)  /* bytes of events queued per viewer */
#define CTL_MAX_CLIENTS 32

/* Who sent a command. */
struct ctl_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool may_act;
	char user[64];                /* the uid's name, else its number */
};

/* Carry out @cmd for @peer (allowed to act). 0 or -errno, with a sentence
 * for the operator in @reply either way. */
typedef int (*ctl_handler_fn)(void *usrptr, const struct ctl_peer *peer, const struct ctl_cmd *cmd,
			      char *reply, size_t len);

struct ctl_server_opts {
	const char *path;
	gid_t group;                  /* the station group (owner group of the socket) */
	const struct station_model *model;   /* for snapshots */
	const struct ctl_info *info;         /* for the hello; read_only is set per viewer */
	ctl_handler_fn handler;
	void *usrptr;
	size_t client_buf_max;        /* 0: CTL_CLIENT_BUF_MAX */
};

struct ctl_server;

/* Bind and listen. -EADDRINUSE when an engine already answers on @path (a
 * stale socket is replaced). 0 or -errno. */
int ctl_server_new(const struct ctl_server_opts *o, struct ctl_server **out);
/* Close every connection and remove the socket. */
void ctl_server_free(struct ctl_server *s);

/* The descriptors to poll (listener and viewers): fills up to @max, returns
 * how many. */
size_t ctl_server_pollfds(struct ctl_server *s, struct pollfd *fds, size_t max);
/* Act on what poll() reported for those descriptors. */
void ctl_server_dispatch(struct ctl_server *s, const struct pollfd *fds, size_t n);
/* Copy @ev (already folded into the model) to every viewer. */
void ctl_server_event(struct ctl_server *s, const struct event *ev);
/* The info changed (OTP armed, configuration reloaded): tell every viewer. */
void ctl_server_info_changed(struct ctl_server *s);
/* The model changed other than by an event (tiles cleared): every viewer
 * gets a fresh snapshot. */
void ctl_server_resync_all(struct ctl_server *s);
size_t ctl_server_clients(const struct ctl_server *s);

/* The permission rule, for tests: whether a peer may act. */
bool ctl_peer_may_act(uid_t peer_uid, const gid_t *peer_groups, size_t ngroups, gid_t peer_gid,
		      uid_t engine_uid, gid_t station_group);

#endif
