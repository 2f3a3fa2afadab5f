/*
 * A worker process: one thread, one epoll loop holding libmicrohttpd in
 * external-epoll mode on the worker slot's inherited listening socket,
 * the signalfd and a heartbeat timer. Every request is served on that
 * thread; nothing blocks it.
 */
#ifndef WP_WRK_H
#define WP_WRK_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "shm.h"

#define WRK_MAGIC 0x57524b31u

struct MHD_Daemon;

struct wrk {
	unsigned magic;
	struct shm *shm;
	const struct cfg *cfg; /* inherited from the master: this generation */
	struct shm_proc *me;
	struct MHD_Daemon *mhd;
	int lfd; /* listening socket (the master keeps its own copy) */
	int epfd;
	int sigfd;
	int tfd; /* heartbeat timer */
	bool draining;
	bool stop;
	int64_t drain_until_ms;
	struct wrk_conn *conns; /* open client connections */
};

/* A client connection, tracked to close idle ones when draining. */
struct wrk_conn {
	struct wrk_conn *next, *prev;
	int fd;
	unsigned busy; /* requests in progress on it */
};

/* Entry from the master's fork. Returns the process exit status. */
int wrk_main(
    struct shm *shm, const struct cfg *cfg, int pslot, int lfd, int sigfd);

/* wrk_http.c: start and stop libmicrohttpd on w->lfd. */
int wrk_http_start(struct wrk *w);
void wrk_http_drain(struct wrk *w);
void wrk_http_stop(struct wrk *w);
unsigned wrk_http_connections(const struct wrk *w);

#endif
