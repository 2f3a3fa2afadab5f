/*
 * THE shared-memory layout of webproxyd. One POSIX segment
 * (shm_open("/webproxyd.<pid>") + mmap, mode 0600), created by the master
 * before it forks and unlinked right after mapping, so children inherit it
 * and nothing stale is left after a crash. No pointers live in it: the
 * header holds offsets to each section.
 *
 *   header | config slots [2] | process slots [SHM_PROCS] | token table
 *
 * Config: only the master writes, into the slot nobody reads, then bumps
 * cfg_gen (release). Process slots: each written by its owner (pid, role,
 * heartbeat, counters) except pid/role/gen, which the master sets at fork.
 * Token table: tok.h, under its robust mutex.
 *
 * Changing any struct here bumps SHM_ABI_VERSION.
 */
#ifndef WP_SHM_H
#define WP_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "tok.h"

#define SHM_MAGIC       0x5750524f58594400ULL /* "WPROXYD\0" */
#define SHM_ABI_VERSION 6
#define SHM_PROCS       160 /* old and new workers during a reload, janitor */
#define SHM_NOTE_MAX    256

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics across processes");

enum shm_role { SHM_ROLE_FREE, SHM_ROLE_WORKER, SHM_ROLE_JANITOR };
extern const char *const shm_role_name[];

enum shm_pstate {
	SHM_PS_STARTING,
	SHM_PS_READY,
	SHM_PS_DRAINING,
	SHM_PS_EXITED,
};
extern const char *const shm_pstate_name[];

#define SHM_STATUS_MIN 400
#define SHM_STATUS_N   200 /* statuses counted: 400..599 */

/* Counters a process owns and only it writes (relaxed atomics). */
struct shm_counters {
	_Atomic uint64_t requests;        /* HTTP requests answered */
	_Atomic uint64_t errors_4xx;      /* client mistakes */
	_Atomic uint64_t errors_5xx;      /* our or upstream failures */
	_Atomic uint64_t chat;            /* chat completions started */
	_Atomic uint64_t upstream_errors; /* upstream failures seen */
	_Atomic uint64_t active;          /* requests in flight now */
	/* Client errors and failures by HTTP status, 400..599. */
	_Atomic uint64_t by_status[SHM_STATUS_N];
};

struct shm_proc {
	_Atomic int32_t pid; /* 0 = free */
	_Atomic uint32_t role;
	_Atomic uint32_t state;
	uint32_t wslot; /* worker slot: which listen socket */
	_Atomic uint64_t gen;
	_Atomic int64_t heartbeat_ms; /* monotonic */
	struct shm_counters c;
	char note[SHM_NOTE_MAX]; /* last words before an abort */
} __attribute__((aligned(64)));

/*
 * The proxy every worker uses when grok.proxy_pool_url is set: fetched by
 * one worker at a time (refresher), read by all under a sequence count.
 */
struct shm_proxy {
	_Atomic uint32_t seq;               /* odd while url is written */
	_Atomic int32_t refresher;          /* pid fetching now, 0 = none */
	_Atomic int64_t refresh_started_ms; /* wall clock */
	_Atomic int64_t fetched_ms;         /* last good fetch; 0 = never */
	_Atomic int64_t failed_ms;          /* last failed fetch; 0 = none */
	_Atomic uint64_t changes;           /* proxies taken from the pool */
	char url[CFG_STR_MAX];
};

/* Admin panel sessions and login throttling (worker/wrk_admin.c). */
#define SHM_SESS_MAX  256
#define SHM_LOGIN_MAX 256

struct shm_sess {
	uint8_t id_hash[32]; /* of the cookie value; the value is not kept */
	int64_t created_ms;  /* wall clock */
	int64_t expires_ms;  /* wall clock; 0 = free slot */
};

struct shm_login {
	uint8_t addr[16]; /* client address (IPv4 mapped into IPv6) */
	uint32_t fails;   /* in the current window */
	uint32_t pad;
	int64_t window_start_ms;
	int64_t blocked_until_ms;
};

struct shm_admin {
	struct lock lock; /* guards sess and login; copy-only sections */
	struct shm_sess sess[SHM_SESS_MAX];
	struct shm_login login[SHM_LOGIN_MAX];
};

/* The media cache as the janitor last measured it (worker/wrk_media.c). */
struct shm_cache {
	_Atomic uint64_t bytes[2]; /* [0] image, [1] video */
	_Atomic uint64_t files[2];
	_Atomic uint64_t swept;        /* files the janitor deleted */
	_Atomic uint64_t clear_req[2]; /* bumped to ask for a clear */
	_Atomic uint64_t clear_done[2];
};

/*
 * Requests per public model name, for /api/stats and /metrics. Keyed by
 * name, not by index, because a reload may reorder the model table. A
 * slot is claimed once (state 0 -> 1 by CAS, name written, then 2) and
 * never freed; readers skip slots not yet at 2. Any worker adds to the
 * counters (relaxed atomics). See worker/adm_stats.c.
 */
#define SHM_MODEL_SLOTS 64

struct shm_model_stat {
	_Atomic uint32_t state; /* 0 free, 1 being named, 2 named */
	uint32_t pad;
	char name[CFG_NAME_MAX];
	_Atomic uint64_t requests; /* answered */
	_Atomic uint64_t errors;   /* answered with a status >= 400 */
};

struct shm_cfg_slot {
	uint64_t gen;
	struct cfg cfg;
};

struct shm_hdr {
	uint64_t magic;
	uint32_t abi;
	uint32_t hdr_size;
	uint64_t seg_size;
	int32_t master_pid;
	uint32_t nprocs;
	uint64_t started_ms; /* wall clock */
	_Atomic uint32_t cfg_slot;
	uint32_t pad;
	_Atomic uint64_t cfg_gen;
	_Atomic uint64_t reloads;
	_Atomic uint64_t respawns;
	struct shm_counters retired; /* of process slots since reused */
	struct shm_proxy proxy;
	struct shm_cache cache;
	struct shm_admin admin;
	struct shm_model_stat models[SHM_MODEL_SLOTS];
	uint64_t cfg_off[2];
	uint64_t proc_off;
	uint64_t tok_off;
	uint64_t tok_size;
	uint64_t lease_off; /* SHM_PROCS journals of SHM_LEASES entries */
};

struct shm {
	struct shm_hdr *hdr; /* the mapping starts here */
	size_t size;
	struct tok_table *tok;
	int wake_fd; /* eventfd: a worker wakes the janitor (inherited) */
};

/*
 * Create, map and unlink the segment for a table of tok_cap rows.
 * Returns 0 or WP_ESYS / WP_ENOMEM. Master only, before forking.
 */
int shm_create(struct shm *s, uint32_t tok_cap);
/*
 * Each worker journals the tokens it holds, so the master can give back
 * the leases of a worker that died holding them. An entry is 0 when free,
 * else ((row + 1) << 32 | row_gen); only its worker writes it, the master
 * reads and clears it once the worker is gone. A worker with more leases
 * at once than SHM_LEASES leaves the rest unjournaled.
 */
#define SHM_LEASES 16384
_Atomic uint64_t *shm_leases(const struct shm *s, uint32_t pslot);

/* Wake the janitor (after a download, a clear request or a reload). */
void shm_wake_janitor(const struct shm *s);
/* Unmap (master at exit; children never). */
void shm_destroy(struct shm *s);
/* Check magic, version and sizes of a mapping. Returns 0 or WP_EVERSION. */
int shm_check(const struct shm *s);

/* Publish cfg as generation gen (master only). */
void shm_cfg_publish(struct shm *s, const struct cfg *cfg, uint64_t gen);
/* Copy the current config out; returns its generation. */
uint64_t shm_cfg_read(const struct shm *s, struct cfg *out);

struct shm_proc *shm_proc(const struct shm *s, uint32_t i);
/* A free process slot, or -1. Master only. */
int shm_proc_alloc(struct shm *s);
/* Plain totals of the per-process counters, for /metrics. */
struct shm_totals {
	uint64_t requests, errors_4xx, errors_5xx, chat, upstream_errors,
	    active;
	uint64_t by_status[SHM_STATUS_N];
	uint32_t workers; /* live worker processes */
};

/* Sum every process slot's counters (those of exited ones included). */
void shm_totals(const struct shm *s, struct shm_totals *sum);

#endif
