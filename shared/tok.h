/*
 * The token table: every SSO token of the grok pool and all of its state,
 * in shared memory, used by every worker and persisted by the master
 * (tokfile.h). One robust mutex guards the whole table; every function
 * here takes and gives it itself, holding it only for a copy or a counter
 * update (never I/O, malloc or logging under it).
 *
 * Selection never scans the table: per pool, usable tokens sit in 4-ary
 * heaps (in shm) ordered by remaining quota (unknown, -1, first,
 * then the largest, less the requests in flight on it, so a burst spreads
 * over tokens instead of piling on one), then least recently used;
 * cooling tokens sit in a heap ordered by the end of their cooldown.
 * Pick, charge and release are O(log n).
 *
 * Quota: remaining (and, for super tokens, heavy_remaining) at 0 is
 * exhausted until cooldown_until_ms, then unknown (-1) again, so the
 * token is tried and refreshed. Status cooling means the whole token is
 * out: a 429, or every quota its type uses is exhausted; a super token
 * whose heavy quota alone is spent still serves the normal pool.
 *
 * Rows are addressed by index plus a generation that changes when a row
 * is reused, so a lease or admin id never reaches the wrong token.
 */
#ifndef WP_TOK_H
#define WP_TOK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "lock.h"

#define TOK_LEN_MAX      511 /* one SSO cookie value */
#define TOK_NOTE_MAX     255
#define TOK_TAGS_MAX     8
#define TOK_TAG_MAX      31
#define TOK_REASON_MAX   127
#define TOK_FAIL_EXPIRE  3                   /* 401s in a row that expire */
#define TOK_COOL_DEF_MS  (2 * 3600 * 1000LL) /* window when upstream is mute */
#define TOK_SYNC_MS      (60 * 1000LL) /* rate-limits asked at most this often */
#define TOK_SYNC_SOON_MS 1000LL        /* ... when unknown or low */
#define TOK_SYNC_LOW     8             /* low: at most this many left */

enum tok_type { TOK_NORMAL, TOK_SUPER, TOK_NTYPES };
enum tok_status {
	TOK_ST_ACTIVE,
	TOK_ST_COOLING,
	TOK_ST_EXPIRED,
	TOK_ST_DISABLED,
	TOK_NSTATUS
};

extern const char *const tok_type_name[];   /* "ssoNormal", "ssoSuper" */
extern const char *const tok_status_name[]; /* "active", ... */

/* Parse "active" etc. Returns 0 or WP_EINVAL. */
int tok_status_parse(const char *s, enum tok_status *st);
/*
 * Whether s can be a token: 1..TOK_LEN_MAX bytes of RFC 6265 cookie-octet
 * (it goes into a Cookie header). Returns 0 or WP_EINVAL.
 */
int tok_validate(const char *token);

/* One token's state, copied out of (or into) the table. */
struct tok_info {
	char token[TOK_LEN_MAX + 1];
	char note[TOK_NOTE_MAX + 1];
	char tags[TOK_TAGS_MAX][TOK_TAG_MAX + 1];
	char last_failure_reason[TOK_REASON_MAX + 1]; /* "" = null */
	uint32_t ntags;
	uint8_t type;   /* enum tok_type */
	uint8_t status; /* enum tok_status */
	uint8_t pad[2];
	int32_t remaining;       /* remainingQueries, -1 = unknown */
	int32_t heavy_remaining; /* heavyremainingQueries, -1 = unknown */
	uint32_t failed_count;
	uint32_t inflight;
	int64_t created_ms;
	int64_t last_failure_ms;   /* 0 = null */
	int64_t last_used_ms;      /* 0 = never */
	int64_t cooldown_until_ms; /* 0 = none */
	uint32_t row;              /* filled by tok_get / tok_next */
	uint32_t row_gen;
};

/* What a worker holds while a request uses a token. */
struct tok_lease {
	uint32_t row;
	uint32_t row_gen;
	uint8_t type;
	uint8_t heavy; /* charges heavy_remaining */
	uint8_t pad[2];
	uint32_t journal; /* the worker's journal entry (shm_leases) */
	char token[TOK_LEN_MAX + 1]; /* copy, for the cookie */
};

struct tok_table; /* lives in shared memory; layout in tok.c */

/* Bytes a table of cap rows needs (cap >= 1). */
size_t tok_table_size(uint32_t cap);
/* Lay out an empty table in mem (tok_table_size(cap) zeroed bytes). */
int tok_table_init(void *mem, uint32_t cap, struct tok_table **tp);
uint32_t tok_table_cap(const struct tok_table *t);
/* Rows in use, all types. */
uint32_t tok_table_count(const struct tok_table *t);
/* Rows of one type, any status. */
uint32_t tok_table_count_type(const struct tok_table *t, enum tok_type type);
/* The table lock, for tests and recovery counters. */
struct lock *tok_table_lock(struct tok_table *t);
/* Bumped on every change; the master persists when it moves. */
uint64_t tok_table_dirty(const struct tok_table *t);

/*
 * Add a token with the state in ti (its token, type, status and counters;
 * not inflight). Returns 0 and *row, WP_EEXIST (the token is there
 * already), WP_ETOOBIG (table full), WP_EINVAL (token fails tok_validate,
 * or an unterminated string or bad enum in ti).
 */
int tok_add(struct tok_table *t, const struct tok_info *ti, uint32_t *row);
/*
 * Gives the next token to add into ti: 0, or WP_ENOENT after the last.
 * Runs inside the table's lock: no locking, blocking or allocation.
 */
typedef int tok_source_fn(void *arg, struct tok_info *ti);
/*
 * Start-up: fill a table nothing was ever added to with every token src
 * gives, as tok_add one by one would, but in one critical section with
 * each heap built once at the end (O(n), not a sift per token): only
 * while no other process uses the table. Stops at the first error and
 * keeps the tokens before it. Returns 0, WP_EINVAL (the table was used,
 * or as tok_add), WP_EEXIST, WP_ETOOBIG or src's error.
 */
int tok_add_all(struct tok_table *t, tok_source_fn *src, void *arg);
/*
 * Start-up, beside tok_add_all of a large pool: faulting in the rows'
 * pages is most of that work, and another thread can do its share. Brings
 * in the pages of rows [first, first + n) without writing them (no lock:
 * safe beside tok_add_all). Returns 0 or WP_ESYS (an old kernel: the
 * load faults them in itself).
 */
int tok_table_prefault(struct tok_table *t, uint32_t first, uint32_t n);
/* Remove by token value. Returns 0 or WP_ENOENT. */
int tok_remove(struct tok_table *t, const char *token);
/* Find by token value. Returns 0 and *row, *row_gen, or WP_ENOENT. */
int tok_find(
    struct tok_table *t, const char *token, uint32_t *row, uint32_t *row_gen);
/* Copy row out. Returns 0 or WP_ENOENT (free row or wrong generation). */
int tok_get(
    struct tok_table *t, uint32_t row, uint32_t row_gen, struct tok_info *out);
/*
 * Iterate rows in use: start with *iter = 0; returns 0 and fills out,
 * or WP_ENOENT at the end.
 */
int tok_next(struct tok_table *t, uint32_t *iter, struct tok_info *out);
/*
 * Replace the operator-editable fields of a row (type, tags, note,
 * status, counters, created and cooldown times) with those of ti, keeping
 * the token, inflight and last_used. Returns 0, WP_ENOENT or WP_EINVAL.
 */
int tok_set(struct tok_table *t, uint32_t row, uint32_t row_gen,
    const struct tok_info *ti);

/*
 * What the admin panel may change of a row, each part only when its flag
 * is set: tags and note replace the row's; status takes TOK_ST_ACTIVE or
 * TOK_ST_DISABLED. Enabling a disabled or expired token makes it active
 * again (its 401 streak forgotten, its quota state kept, so an exhausted
 * one goes on cooling); enabling a cooling one changes nothing.
 */
struct tok_edit {
	bool set_tags, set_note, set_status;
	uint8_t status; /* enum tok_status */
	uint32_t ntags;
	char tags[TOK_TAGS_MAX][TOK_TAG_MAX + 1];
	char note[TOK_NOTE_MAX + 1];
};

/*
 * Apply e to a row in one critical section, so counters that a request
 * updates meanwhile are never overwritten (tok_get + tok_set could).
 * Returns 0, WP_ENOENT (free row or wrong generation) or WP_EINVAL (an
 * unterminated string, too many tags, a status other than the two).
 */
int tok_edit(struct tok_table *t, uint32_t row, uint32_t row_gen,
    const struct tok_edit *e);
/* Remove by row and generation. Returns 0 or WP_ENOENT. */
int tok_remove_row(struct tok_table *t, uint32_t row, uint32_t row_gen);

/* Counts over the whole table, for statistics. */
struct tok_stats {
	uint32_t by_status[TOK_NTYPES][TOK_NSTATUS];
	uint32_t unknown[TOK_NTYPES];   /* remainingQueries -1 (live rows) */
	uint32_t exhausted[TOK_NTYPES]; /* remainingQueries 0 (live rows) */
	uint64_t remaining[TOK_NTYPES]; /* sum of the known ones > 0 */
	uint32_t heavy_unknown;         /* super, live, heavy -1 */
	uint64_t heavy_remaining;       /* super, live, sum of known > 0 */
	uint32_t inflight;              /* requests using a token now */
};

/*
 * Fill st by walking every row, O(n). The lock is given back every few
 * hundred rows so picks are never held up for long; the counts are then
 * a near-snapshot, which is all statistics need. Returns 0 or WP_ELOCK.
 */
int tok_table_stats(struct tok_table *t, struct tok_stats *st);

/*
 * Pick the best token for a model of the given pool at time now_ms
 * (cooling tokens whose time is up come back first). On success fills
 * lease, counts it in flight and returns 0. Otherwise WP_ENOTOKEN (no
 * token that could ever serve: none, or all expired/disabled) or
 * WP_ECOOLING with *retry_at_ms set to the earliest cooldown end.
 * exclude_row (or UINT32_MAX) is skipped when another is usable, so a
 * retry lands on another token.
 */
int tok_pick(struct tok_table *t, enum cfg_pool pool, int64_t now_ms,
    uint32_t exclude_row, struct tok_lease *lease, int64_t *retry_at_ms);
/*
 * tok_pick that also notes the lease in *jrn (((row + 1) << 32) | gen)
 * inside the locked section, so a holder that dies at any point can have
 * its lease given back (see shm_leases). jrn may be NULL.
 */
int tok_pick_journaled(struct tok_table *t, enum cfg_pool pool, int64_t now_ms,
    uint32_t exclude_row, struct tok_lease *lease, int64_t *retry_at_ms,
    _Atomic uint64_t *jrn);
/* The request is over: no longer in flight. */
void tok_release(struct tok_table *t, const struct tok_lease *lease);

/*
 * Upstream answered 200: reset failures, spend cost from the right quota
 * (when known); a quota that reaches 0 cools for TOK_COOL_DEF_MS.
 */
int tok_charge(struct tok_table *t, const struct tok_lease *lease, int32_t cost,
    int64_t now_ms);
/*
 * Whether to ask the rate-limits endpoint about the lease's quota now:
 * once a TOK_SYNC_MS while it is known and above TOK_SYNC_LOW, once a
 * TOK_SYNC_SOON_MS while it is unknown or low (mono_ms: util_mono_ms).
 * A yes stamps the row, so of many answers on one token at once only one
 * asks; tok_charge keeps the count in between.
 */
bool tok_sync_due(
    struct tok_table *t, const struct tok_lease *lease, int64_t mono_ms);
/*
 * The rate-limits endpoint said remaining (heavy or not); wait_s > 0 when
 * it is 0 and the upstream gave a wait. At 0 the token cools until then
 * (TOK_COOL_DEF_MS when unknown).
 */
int tok_set_quota(struct tok_table *t, uint32_t row, uint32_t row_gen,
    bool heavy, int32_t remaining, int64_t wait_s, int64_t now_ms);
/* Upstream 429: cool until until_ms. */
int tok_cool(struct tok_table *t, uint32_t row, uint32_t row_gen,
    int64_t until_ms, const char *reason, int64_t now_ms);
/*
 * A failure blamed on the token (401 and the like; never 403): counts it,
 * records reason, and expires the token after TOK_FAIL_EXPIRE in a row
 * when http_status is 401.
 */
int tok_fail(struct tok_table *t, uint32_t row, uint32_t row_gen,
    int http_status, const char *reason, int64_t now_ms);

/*
 * Tests and debugging: check every invariant of the table (index, heaps,
 * positions, counts, free list) under the lock, O(n). Returns 0 or
 * WP_EINVAL.
 */
int tok_table_check(struct tok_table *t);
/*
 * Tests only: with the table lock held, leave the table as a writer that
 * died half-way through an update could (mid-update flag set, a heap out
 * of order, an index slot lost, a count wrong).
 */
void tok_table_wreck(struct tok_table *t);

#endif
