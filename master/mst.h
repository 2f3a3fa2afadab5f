/*
 * The master process: owns the config, the shared segment, the listening
 * sockets and token.json; forks and supervises the workers and the
 * janitor. It never talks to grok.com and never blocks on the network.
 */
#ifndef WP_MST_H
#define WP_MST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cfg.h"
#include "shm.h"
#include "tokfile.h"

#define MST_WSLOTS 64 /* most workers (server.workers range) */

/* What the command line says, applied over every config load. */
struct mst_opts {
	const char *config;
	const char *listen;   /* -l */
	const char *data_dir; /* -d */
	const char *pidfile;  /* -p */
	int workers;          /* -w, -1 = not given */
	bool foreground;      /* -f */
};

/* One live child. */
struct mst_child {
	pid_t pid; /* 0 = free entry */
	enum shm_role role;
	int wslot; /* worker slot, -1 for the janitor */
	int pslot; /* shm process slot */
	uint64_t gen;
	int64_t started_ms; /* monotonic */
	int64_t kill_at_ms; /* escalate to SIGKILL then; 0 = not stopping */
	bool retiring;      /* told to drain */
};

/* A worker slot: one listening socket, one current worker. */
struct mst_wslot {
	int fd;              /* SO_REUSEPORT socket, -1 = none */
	int64_t respawn_ms;  /* when to start the next worker; 0 = now */
	unsigned quick_dies; /* deaths soon after start, for backoff */
};

struct mst {
	struct mst_opts opts;
	struct cfg cfg; /* the active config; children inherit it */
	uint64_t gen;
	struct shm shm;
	struct tokfile *tok_base; /* token.json as last read or written */
	char tok_path[CFG_STR_MAX + 32];
	char pid_path[CFG_STR_MAX + 32];
	uint64_t tok_saved;   /* dirty counter at the last write */
	int64_t tok_saved_ms; /* monotonic time of the last write */
	unsigned nworkers;    /* wanted */
	struct mst_wslot ws[MST_WSLOTS];
	struct mst_child ch[SHM_PROCS];
	int janitor_respawn_ms;
	int64_t janitor_at_ms;
	int sigfd;
	bool stopping;
	/*
	 * token.json is written by a thread, so a large pool (seconds to
	 * write) never stalls the loop; only it touches tok_base meanwhile.
	 */
	pthread_t writer;
	bool writer_on;
	_Atomic bool writer_done;
	int writer_rc, writer_errno;
	uint64_t writer_dirty;
	bool stop_fast; /* SIGTERM seen: children get SIGTERM */
};

/* Parse, check and apply the command line over c. */
void mst_apply_opts(const struct mst_opts *o, struct cfg *c);
/* Checks beyond one key: empty api_keys only on loopback. */
int mst_check_cfg(const struct cfg *c, char *err, size_t errlen);
/* Number of workers c asks for. */
unsigned mst_nworkers(const struct cfg *c);

/* mst_loop.c: set up and run until stopped. Returns the exit status. */
int mst_run(struct mst *m);

/* mst_spawn.c */
int mst_listen_open(struct mst *m, unsigned n, char *err, size_t errlen);
void mst_listen_close_from(struct mst *m, unsigned n);
pid_t mst_spawn(struct mst *m, enum shm_role role, int wslot);
struct mst_child *mst_child_find(struct mst *m, pid_t pid);
/* "worker 2" or "janitor", for logs; returns buf (24 bytes or more). */
const char *mst_child_label(
    enum shm_role role, int wslot, char *buf, size_t len);

/* mst_title.c: process titles as ps shows them. */
void mst_title_init(int argc, char **argv);
void mst_title_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mst_notify.c: the systemd notify protocol without libsystemd. */
void mst_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* jan_main.c: the cache janitor's life; never returns. */
void jan_main(struct shm *shm, const struct cfg *cfg, int pslot, int sigfd)
    __attribute__((noreturn));

#endif
