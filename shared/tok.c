/*
 * The token table (tok.h): every SSO token and its state in one block of
 * shared memory, laid out by the master and used in place by every
 * process. Takes and gives the table's robust mutex itself; critical
 * sections do no I/O, malloc or logging and are O(1) or O(log n).
 *
 * Layout (offsets from the table header, no pointers):
 *
 *   header | rows[cap] | hash slots[2^k >= 2 cap] | heaps[6][cap]
 *          | positions[cap][4]
 *
 * - Rows hold each token's state. Free rows form a list through
 *   next_free; rows never used sit above the high-water mark, so a large
 *   table touches only the pages it needs.
 * - The hash index maps a token to its row: open addressing with linear
 *   probing and backward-shift deletion (no tombstones), FNV-1a hash.
 * - Heaps, per token type: "avail" (usable, by remainingQueries), "heavy"
 *   (super only: usable, by heavyremainingQueries) and "cool" (by the end
 *   of the cooldown). They are 4-ary, and an entry carries its row's sort
 *   key, so a sift reads one cache line of the heap a level and no 1 KB
 *   row: with 100,000 rows, the rows a sift compared and the positions it
 *   wrote back were a cache miss each (issue #6). The key is a copy of
 *   row fields; tok_place() is the one place that refreshes it and
 *   decides which heaps a row belongs to.
 * - Positions: each row's index in the heap of each kind of its type, or
 *   NONE, 16 bytes a row beside the heaps (not in the rows, for the same
 *   reason), so any update re-sorts a row in O(log n).
 *
 * Quota state: a field (remaining or heavy_remaining) at 0 is exhausted;
 * the row then carries a cooldown_until_ms and sits in its cool heap.
 * Status cooling means the whole token is out: a 429 (tok_cool), or
 * every field its type uses is exhausted. When the cooldown ends (checked
 * by tok_pick) the token is active again and its exhausted fields become
 * -1 (unknown), so it is tried and its real quota refreshed.
 *
 * Crash safety: every mutating section sets `busy` first and clears it
 * last. A process that dies holding the lock leaves busy set; the next
 * lock_take() runs tok_repair(), which rebuilds the hash index, the free
 * list, the counts and every heap from the rows, O(n log n).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "tok.h"
#include "util.h"

#define TOK_MAGIC     0x544f4b5441424c31ULL /* "TOKTABL1" */
#define TOK_NONE      UINT32_MAX
#define TOK_CAP_MAX   (1u << 22) /* keeps every index and size in range */
#define TOK_SWEEP_MAX 32         /* cooldowns ended per pick: short holds */
#define TOK_ALIGN     64
#define TOK_HEAP_D    4  /* children per heap node: one cache line */
#define TOK_KEY_BITS  33 /* of a usable heap's key (struct tok_hent) */
#define TOK_ROW_BITS  31 /* of a heap entry's lo */
#define TOK_SIGN      (1ULL << 63)
#define TOK_POS_N     4 /* positions a row: TOK_NHK, and 16 bytes */

/* Heap kinds; heap number = type * TOK_NHK + kind. */
enum tok_hkind { TOK_HK_AVAIL, TOK_HK_HEAVY, TOK_HK_COOL, TOK_NHK };
#define TOK_NHEAPS (TOK_NTYPES * TOK_NHK)

const char *const tok_type_name[] = {
	[TOK_NORMAL] = "ssoNormal",
	[TOK_SUPER] = "ssoSuper",
};

const char *const tok_status_name[] = {
	[TOK_ST_ACTIVE] = "active",
	[TOK_ST_COOLING] = "cooling",
	[TOK_ST_EXPIRED] = "expired",
	[TOK_ST_DISABLED] = "disabled",
};

/*
 * A heap entry: 128 bits, compared as one unsigned number (hi, then lo),
 * so the four children of a node fill one cache line. Every heap sorts
 * ascending by (key, tie, row), the three packed in that order with row
 * in the low TOK_ROW_BITS of lo:
 * - cool heap: key = the cooldown end, 64 bits, in hi; no tie.
 * - usable heap: key = 0 for an unknown quota, else the requests in
 *   flight less the quota, plus 2^31 (most quota not in flight first),
 *   TOK_KEY_BITS; tie = last_used_ms, 64 bits.
 * Signed times are biased by 2^63 to sort as unsigned.
 */
struct tok_hent {
	uint64_t hi;
	uint64_t lo;
};

struct tok_slot {
	uint32_t row1; /* row + 1; 0 = empty */
	uint32_t hash;
};

/*
 * A row starts a cache line, and that first line holds all that a chat
 * reads and writes (pick, charge, sync check, release) unless the token
 * had failed; the token a pick copies out comes next. With 100,000 rows
 * the picked row is cold and each of its lines a miss (issue #6); whole
 * lines cost 40 bytes a row.
 */
struct tok_row {
	int64_t last_used_ms;
	int64_t cooldown_until_ms;
	int64_t synced_ms[2]; /* rate-limits last asked: normal, heavy */
	int32_t remaining;
	int32_t heavy_remaining;
	uint32_t failed_count;
	uint32_t inflight;
	uint32_t gen;
	uint8_t in_use;
	uint8_t type;
	uint8_t status;
	uint8_t fail401; /* 401s in a row */
	uint8_t cool429; /* cooling was ordered by the upstream */
	uint8_t failure; /* last_failure_ms or reason set: a charge clears */
	uint8_t pad[6];
	char token[TOK_LEN_MAX + 1];
	int64_t last_failure_ms;
	int64_t created_ms;
	uint32_t hash;
	uint32_t next_free;
	uint32_t ntags;
	uint32_t pad2;
	char reason[TOK_REASON_MAX + 1]; /* "" = null */
	char note[TOK_NOTE_MAX + 1];
	char tags[TOK_TAGS_MAX][TOK_TAG_MAX + 1];
} __attribute__((aligned(TOK_ALIGN)));

struct tok_table {
	uint64_t magic;
	uint32_t cap;
	uint32_t hash_mask;
	uint32_t hwm;       /* rows ever used: [0, hwm) */
	uint32_t free_head; /* free rows below hwm */
	uint32_t busy;      /* a mutating section is running */
	uint32_t pad;
	_Atomic uint32_t count;
	_Atomic uint32_t count_type[TOK_NTYPES];
	uint32_t heap_len[TOK_NHEAPS];
	uint64_t rows_off;
	uint64_t hash_off;
	uint64_t heap_off[TOK_NHEAPS];
	_Atomic uint64_t dirty;
	struct lock lock;
	uint64_t pos_off; /* uint32_t [cap][TOK_POS_N] */
} __attribute__((aligned(TOK_ALIGN)));

_Static_assert(sizeof(struct tok_row) % TOK_ALIGN == 0, "rows start a line");
_Static_assert(offsetof(struct tok_row, token) == TOK_ALIGN, "one hot line");
_Static_assert(sizeof(struct tok_slot) == 8, "hash slot size");
_Static_assert(sizeof(struct tok_hent) * TOK_HEAP_D == TOK_ALIGN,
    "a node's children fill a cache line");
_Static_assert(TOK_CAP_MAX <= 1ULL << TOK_ROW_BITS, "rows fit heap entries");
_Static_assert(TOK_KEY_BITS + TOK_ROW_BITS == 64, "key, tie, row: 128 bits");
_Static_assert(TOK_NHK <= TOK_POS_N, "positions of a row");
_Static_assert(sizeof(struct tok_table) % TOK_ALIGN == 0, "header size");
/*
 * test/integration/k_kill.test.mjs reads these (and the magic, cap) through
 * /proc/PID/mem: new fields go after the lock.
 */
_Static_assert(offsetof(struct tok_table, busy) == 24 &&
        offsetof(struct tok_table, count) == 32 &&
        offsetof(struct tok_table, lock) == 144,
    "header offsets a test knows");
_Static_assert(TOK_FAIL_EXPIRE < 255, "fail401 is a byte");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "lock-free dirty counter");

static size_t
tok_round(size_t n)
{
	return (n + TOK_ALIGN - 1) & ~(size_t)(TOK_ALIGN - 1);
}

static uint32_t
tok_hash_cap(uint32_t cap)
{
	uint32_t n = 8;

	while (n < 2 * cap)
		n <<= 1;
	return n;
}

/* Section offsets for a table of cap rows; returns the total size. */
static size_t
tok_layout(uint32_t cap, uint64_t *rows_off, uint64_t *hash_off,
    uint64_t *heap_off, uint64_t *pos_off)
{
	size_t off = sizeof(struct tok_table);
	unsigned h;

	*rows_off = off;
	off = tok_round(off + (size_t)cap * sizeof(struct tok_row));
	*hash_off = off;
	off = tok_round(
	    off + (size_t)tok_hash_cap(cap) * sizeof(struct tok_slot));
	/*
	 * Each heap starts one entry before a line, so the children of a
	 * node, 4i + 1 to 4i + 4, share a line.
	 */
	for (h = 0; h < TOK_NHEAPS; h++) {
		off += TOK_ALIGN - sizeof(struct tok_hent);
		heap_off[h] = off;
		off = tok_round(off + (size_t)cap * sizeof(struct tok_hent));
	}
	*pos_off = off;
	return tok_round(off + (size_t)cap * TOK_POS_N * sizeof(uint32_t));
}

static struct tok_row *
tok_row(struct tok_table *t, uint32_t i)
{
	return (struct tok_row *)((char *)t + t->rows_off) + i;
}

static struct tok_slot *
tok_slots(struct tok_table *t)
{
	return (struct tok_slot *)((char *)t + t->hash_off);
}

static struct tok_hent *
tok_heap(struct tok_table *t, unsigned h)
{
	return (struct tok_hent *)((char *)t + t->heap_off[h]);
}

/* Where a row's position in its heap of this kind is kept. */
static uint32_t *
tok_pos(struct tok_table *t, unsigned kind, uint32_t row)
{
	return (uint32_t *)((char *)t + t->pos_off) + (size_t)row * TOK_POS_N +
	    kind;
}

static unsigned
tok_heap_id(enum tok_type type, unsigned kind)
{
	return (unsigned)type * TOK_NHK + kind;
}

/* FNV-1a, folded to 32 bits. Tokens come from the operator, not clients. */
static uint32_t
tok_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return (uint32_t)(h ^ (h >> 32));
}

/* ---- hash index ---- */

static uint32_t
tok_hash_find(struct tok_table *t, const char *token, uint32_t h)
{
	struct tok_slot *s = tok_slots(t);
	uint32_t i = h & t->hash_mask;

	/* Ends: the index is at most half full. */
	while (s[i].row1 != 0) {
		if (s[i].hash == h &&
		    strcmp(tok_row(t, s[i].row1 - 1)->token, token) == 0)
			return i;
		i = (i + 1) & t->hash_mask;
	}
	return TOK_NONE;
}

static void
tok_hash_insert(struct tok_table *t, uint32_t row, uint32_t h)
{
	struct tok_slot *s = tok_slots(t);
	uint32_t i = h & t->hash_mask;

	while (s[i].row1 != 0)
		i = (i + 1) & t->hash_mask;
	s[i].row1 = row + 1;
	s[i].hash = h;
}

static void
tok_hash_delete(struct tok_table *t, uint32_t i)
{
	struct tok_slot *s = tok_slots(t);
	uint32_t m = t->hash_mask, j = i, home;

	/*
	 * Backward shift: pull later entries of the cluster into the hole
	 * unless their home lies cyclically in (hole, entry].
	 */
	for (;;) {
		j = (j + 1) & m;
		if (s[j].row1 == 0)
			break;
		home = s[j].hash & m;
		if (((j - home) & m) >= ((j - i) & m)) {
			s[i] = s[j];
			i = j;
		}
	}
	s[i].row1 = 0;
	s[i].hash = 0;
}

/* ---- quota state of one row ---- */

static bool
tok_live(const struct tok_row *r)
{
	return r->status == TOK_ST_ACTIVE || r->status == TOK_ST_COOLING;
}

/* Some field its type uses is exhausted. */
static bool
tok_has_zero(const struct tok_row *r)
{
	return r->remaining == 0 ||
	    (r->type == TOK_SUPER && r->heavy_remaining == 0);
}

/* Some field its type uses is not exhausted. */
static bool
tok_has_quota(const struct tok_row *r)
{
	return r->remaining != 0 ||
	    (r->type == TOK_SUPER && r->heavy_remaining != 0);
}

static bool
tok_wants(const struct tok_row *r, unsigned kind)
{
	switch (kind) {
	case TOK_HK_AVAIL:
		return r->status == TOK_ST_ACTIVE && r->remaining != 0;
	case TOK_HK_HEAVY:
		return r->type == TOK_SUPER && r->status == TOK_ST_ACTIVE &&
		    r->heavy_remaining != 0;
	default:
		return tok_live(r) && r->cooldown_until_ms != 0;
	}
}

/*
 * Put a row's fields in a state the heaps can rely on after an outside
 * edit (tok_add, tok_set): values below -1 mean unknown; a cooling token
 * or an exhausted field always has a cooldown end; an active token with
 * nothing left is cooling.
 */
static void
tok_settle(struct tok_row *r)
{
	if (r->remaining < -1)
		r->remaining = -1;
	if (r->heavy_remaining < -1)
		r->heavy_remaining = -1;
	if (r->cooldown_until_ms < 0)
		r->cooldown_until_ms = 0;
	if (!tok_live(r)) {
		r->cool429 = 0;
		return;
	}
	if (r->status == TOK_ST_ACTIVE && !tok_has_quota(r))
		r->status = TOK_ST_COOLING;
	/* No end known (a hand-edited or old file): retry at the next pick. */
	if (r->cooldown_until_ms == 0 &&
	    (r->status == TOK_ST_COOLING || tok_has_zero(r)))
		r->cooldown_until_ms = 1;
	if (r->status != TOK_ST_COOLING)
		r->cool429 = 0;
	else if (!tok_has_zero(r))
		r->cool429 = 1; /* cooling with quota left: the upstream said */
}

/* A field reached 0: cool it until `until`. */
static void
tok_exhaust(struct tok_row *r, int64_t until)
{
	if (!tok_live(r))
		return;
	if (r->cooldown_until_ms == 0)
		r->cooldown_until_ms = until;
	else if (r->status == TOK_ST_ACTIVE && until < r->cooldown_until_ms)
		r->cooldown_until_ms = until; /* the other field comes back */
	else if (r->status == TOK_ST_COOLING && until > r->cooldown_until_ms)
		r->cooldown_until_ms = until; /* never shorten a cooling */
	if (r->status == TOK_ST_ACTIVE && !tok_has_quota(r))
		r->status = TOK_ST_COOLING;
}

/* ---- heaps ---- */

/* The entry of a row in a heap of this kind, from the row's fields. */
static void
tok_hent_of(
    const struct tok_row *r, uint32_t row, unsigned kind, struct tok_hent *e)
{
	int32_t v = kind == TOK_HK_HEAVY ? r->heavy_remaining : r->remaining;
	uint64_t key, tie;

	if (kind == TOK_HK_COOL) {
		e->hi = (uint64_t)r->cooldown_until_ms ^ TOK_SIGN;
		e->lo = row;
		return;
	}
	/* In [1, 2^33): inflight <= UINT32_MAX, 0 <= v <= INT32_MAX. */
	key = v < 0 ? 0 : (uint64_t)r->inflight - (uint64_t)v + (1ULL << 31);
	tie = (uint64_t)r->last_used_ms ^ TOK_SIGN;
	e->hi = key << TOK_ROW_BITS | tie >> TOK_KEY_BITS;
	e->lo = tie << TOK_ROW_BITS | row;
}

static uint32_t
tok_hent_row(const struct tok_hent *e)
{
	return (uint32_t)(e->lo & ((1ULL << TOK_ROW_BITS) - 1));
}

/* The cooldown end of an entry of a cool heap. */
static int64_t
tok_hent_until(const struct tok_hent *e)
{
	return (int64_t)(e->hi ^ TOK_SIGN);
}

/* Whether entry a goes above entry b in a heap. */
static bool
tok_before(const struct tok_hent *a, const struct tok_hent *b)
{
	/* One compare, no branch: ties are common and mispredicted. */
	return ((unsigned __int128)a->hi << 64 | a->lo) <
	    ((unsigned __int128)b->hi << 64 | b->lo);
}

static void
tok_heap_put(
    struct tok_table *t, unsigned h, uint32_t i, const struct tok_hent *e)
{
	tok_heap(t, h)[i] = *e;
	*tok_pos(t, h % TOK_NHK, tok_hent_row(e)) = i;
}

/* The best child of node i in a heap of n entries, or NONE. */
static uint32_t
tok_heap_child(const struct tok_hent *a, uint32_t n, uint32_t i)
{
	uint64_t first = (uint64_t)i * TOK_HEAP_D + 1, c, best;
	uint64_t end = first + TOK_HEAP_D < n ? first + TOK_HEAP_D : n;

	if (first >= n)
		return TOK_NONE;
	/*
	 * The children's children, four lines in a row: a sift that goes on
	 * finds the next level on its way while this one is compared.
	 */
	for (c = first; c < end && c * TOK_HEAP_D + 1 < n; c++)
		__builtin_prefetch(&a[c * TOK_HEAP_D + 1]);
	for (best = first, c = first + 1; c < end; c++)
		if (tok_before(&a[c], &a[best]))
			best = c;
	return (uint32_t)best;
}

static uint32_t
tok_heap_up(struct tok_table *t, unsigned h, uint32_t i)
{
	struct tok_hent *a = tok_heap(t, h), e = a[i];
	uint32_t p;

	while (i > 0) {
		p = (i - 1) / TOK_HEAP_D;
		if (!tok_before(&e, &a[p]))
			break;
		tok_heap_put(t, h, i, &a[p]);
		i = p;
	}
	tok_heap_put(t, h, i, &e);
	return i;
}

static void
tok_heap_down(struct tok_table *t, unsigned h, uint32_t i)
{
	struct tok_hent *a = tok_heap(t, h), e = a[i];
	uint32_t n = t->heap_len[h], c;

	while ((c = tok_heap_child(a, n, i)) != TOK_NONE &&
	    tok_before(&a[c], &e)) {
		tok_heap_put(t, h, i, &a[c]);
		i = c;
	}
	tok_heap_put(t, h, i, &e);
}

static void
tok_heap_fix(struct tok_table *t, unsigned h, uint32_t i)
{
	if (tok_heap_up(t, h, i) == i)
		tok_heap_down(t, h, i);
}

static void
tok_heap_insert(struct tok_table *t, unsigned h, const struct tok_hent *e)
{
	uint32_t i = t->heap_len[h]++;

	tok_heap_put(t, h, i, e);
	(void)tok_heap_up(t, h, i); /* where it lands does not matter */
}

static void
tok_heap_remove(struct tok_table *t, unsigned h, uint32_t row)
{
	uint32_t *pos = tok_pos(t, h % TOK_NHK, row);
	uint32_t i = *pos, last = --t->heap_len[h];

	*pos = TOK_NONE;
	if (i != last) {
		tok_heap_put(t, h, i, &tok_heap(t, h)[last]);
		tok_heap_fix(t, h, i);
	}
}

/* The best row of heap h other than exclude, or NONE. O(1). */
static uint32_t
tok_heap_best(struct tok_table *t, unsigned h, uint32_t exclude)
{
	struct tok_hent *a = tok_heap(t, h);
	uint32_t n = t->heap_len[h];

	if (n == 0)
		return TOK_NONE;
	if (tok_hent_row(&a[0]) != exclude)
		return tok_hent_row(&a[0]);
	/* The second best is a child of the root. */
	return n == 1 ? TOK_NONE : tok_hent_row(&a[tok_heap_child(a, n, 0)]);
}

/*
 * Make a row's heap memberships, keys and positions match its fields.
 * Every change to a field a key copies ends here.
 */
static void
tok_place(struct tok_table *t, uint32_t row)
{
	struct tok_row *r = tok_row(t, row);
	struct tok_hent e, *cur;
	unsigned kind, h;
	uint32_t pos;

	for (kind = 0; kind < TOK_NHK; kind++) {
		h = tok_heap_id(r->type, kind);
		pos = *tok_pos(t, kind, row);
		if (!r->in_use || !tok_wants(r, kind)) {
			if (pos != TOK_NONE)
				tok_heap_remove(t, h, row);
			continue;
		}
		tok_hent_of(r, row, kind, &e);
		if (pos == TOK_NONE) {
			tok_heap_insert(t, h, &e);
			continue;
		}
		cur = &tok_heap(t, h)[pos];
		if (cur->hi == e.hi && cur->lo == e.lo)
			continue; /* still in order */
		*cur = e;
		tok_heap_fix(t, h, pos);
	}
}

static void
tok_unplace(struct tok_table *t, uint32_t row)
{
	struct tok_row *r = tok_row(t, row);
	unsigned kind;

	for (kind = 0; kind < TOK_NHK; kind++)
		if (*tok_pos(t, kind, row) != TOK_NONE)
			tok_heap_remove(t, tok_heap_id(r->type, kind), row);
}

/* A row in no heap: before its first tok_place(). */
static void
tok_pos_clear(struct tok_table *t, uint32_t row)
{
	unsigned kind;

	for (kind = 0; kind < TOK_NHK; kind++)
		*tok_pos(t, kind, row) = TOK_NONE;
}

/* ---- locking and repair ---- */

static void
tok_count_add(struct tok_table *t, enum tok_type type, int d)
{
	atomic_fetch_add_explicit(&t->count, (uint32_t)d, memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &t->count_type[type], (uint32_t)d, memory_order_relaxed);
}

/* Whether a charge has a failure to clear (it sits a line away). */
static void
tok_failure_note(struct tok_row *r)
{
	r->failure = r->last_failure_ms != 0 || r->reason[0] != '\0';
}

static void
tok_row_sanitize(struct tok_row *r)
{
	unsigned i;

	r->token[TOK_LEN_MAX] = '\0';
	r->note[TOK_NOTE_MAX] = '\0';
	r->reason[TOK_REASON_MAX] = '\0';
	if (r->ntags > TOK_TAGS_MAX)
		r->ntags = TOK_TAGS_MAX;
	for (i = 0; i < TOK_TAGS_MAX; i++)
		r->tags[i][TOK_TAG_MAX] = '\0';
	if (r->type >= TOK_NTYPES)
		r->type = TOK_NORMAL;
	if (r->status >= TOK_NSTATUS)
		r->status = TOK_ST_DISABLED;
	tok_settle(r);
	tok_failure_note(r);
}

/*
 * Rebuild everything derived from the rows: the hash index, the free
 * list, the counts and the heaps. Only after a writer died mid-update.
 */
static void
tok_rebuild(struct tok_table *t)
{
	struct tok_row *r;
	uint32_t i, h;
	unsigned k;

	if (t->hwm > t->cap)
		t->hwm = t->cap;
	memset(tok_slots(t), 0,
	    (size_t)(t->hash_mask + 1) * sizeof(struct tok_slot));
	for (k = 0; k < TOK_NHEAPS; k++)
		t->heap_len[k] = 0;
	atomic_store_explicit(&t->count, 0, memory_order_relaxed);
	for (k = 0; k < TOK_NTYPES; k++)
		atomic_store_explicit(
		    &t->count_type[k], 0, memory_order_relaxed);
	for (i = 0; i < t->hwm; i++) {
		r = tok_row(t, i);
		if (!r->in_use)
			continue;
		tok_row_sanitize(r);
		tok_pos_clear(t, i);
		h = tok_hash(r->token);
		/* A half-added row can duplicate nothing but be empty. */
		if (r->token[0] == '\0' ||
		    tok_hash_find(t, r->token, h) != TOK_NONE) {
			r->in_use = 0;
			continue;
		}
		r->hash = h;
		tok_hash_insert(t, i, h);
		tok_count_add(t, r->type, 1);
		tok_place(t, i);
	}
	t->free_head = TOK_NONE;
	for (i = t->hwm; i-- > 0;) {
		r = tok_row(t, i);
		if (r->in_use)
			continue;
		r->next_free = t->free_head;
		t->free_head = i;
	}
}

static void
tok_repair(void *arg)
{
	struct tok_table *t = arg;

	if (t->busy == 0)
		return; /* the owner died in a read-only section */
	tok_rebuild(t);
	t->busy = 0;
}

/* Take the lock for a section that reads only. */
static int
tok_rlock(struct tok_table *t)
{
	return lock_take(&t->lock, tok_repair, t);
}

/* Take the lock for a section that writes. */
static int
tok_begin(struct tok_table *t)
{
	int rc;

	if ((rc = lock_take(&t->lock, tok_repair, t)) != 0)
		return rc;
	t->busy = 1;
	/*
	 * Only a dying process can observe the flag half-way, and death
	 * drains its stores: the compiler must just not move the writes
	 * of the section above the flag.
	 */
	atomic_signal_fence(memory_order_seq_cst);
	return 0;
}

static void
tok_end(struct tok_table *t, bool changed)
{
	atomic_signal_fence(memory_order_seq_cst);
	t->busy = 0;
	if (changed)
		atomic_fetch_add_explicit(&t->dirty, 1, memory_order_relaxed);
	lock_give(&t->lock);
}

/* The row if it is in use with this generation, else NULL. */
static struct tok_row *
tok_row_get(struct tok_table *t, uint32_t row, uint32_t gen)
{
	struct tok_row *r;

	if (row >= t->hwm)
		return NULL;
	r = tok_row(t, row);
	if (!r->in_use || r->gen != gen)
		return NULL;
	return r;
}

/* ---- public ---- */

int
tok_status_parse(const char *s, enum tok_status *st)
{
	unsigned i;

	for (i = 0; i < TOK_NSTATUS; i++) {
		if (strcmp(s, tok_status_name[i]) == 0) {
			*st = (enum tok_status)i;
			return 0;
		}
	}
	return WP_EINVAL;
}

/* RFC 6265 cookie-octet: a token goes into a Cookie header. */
#define TOK_OCTET(c)                                                           \
	((c) > 0x20 && (c) < 0x7f && (c) != '"' && (c) != ',' && (c) != ';' && \
	    (c) != '\\')
#define TOK_OCTET4(c)                                                          \
	TOK_OCTET(c), TOK_OCTET((c) + 1), TOK_OCTET((c) + 2), TOK_OCTET((c) + 3)
#define TOK_OCTET16(c)                                                         \
	TOK_OCTET4(c), TOK_OCTET4((c) + 4), TOK_OCTET4((c) + 8),               \
	    TOK_OCTET4((c) + 12)

int
tok_validate(const char *token)
{
	/* A table, not six tests a byte: start-up checks 100,000 tokens. */
	static const bool octet[128] = { TOK_OCTET16(0x00), TOK_OCTET16(0x10),
		TOK_OCTET16(0x20), TOK_OCTET16(0x30), TOK_OCTET16(0x40),
		TOK_OCTET16(0x50), TOK_OCTET16(0x60), TOK_OCTET16(0x70) };
	size_t i;
	unsigned char c;

	for (i = 0; (c = (unsigned char)token[i]) != '\0'; i++)
		if (c >= 0x80 || !octet[c] || i == TOK_LEN_MAX)
			return WP_EINVAL;
	return i == 0 ? WP_EINVAL : 0;
}

size_t
tok_table_size(uint32_t cap)
{
	uint64_t rows_off, hash_off, heap_off[TOK_NHEAPS], pos_off;

	if (cap == 0 || cap > TOK_CAP_MAX)
		return 0;
	return tok_layout(cap, &rows_off, &hash_off, heap_off, &pos_off);
}

int
tok_table_init(void *mem, uint32_t cap, struct tok_table **tp)
{
	struct tok_table *t = mem;
	int rc;

	*tp = NULL;
	if (mem == NULL || cap == 0 || cap > TOK_CAP_MAX ||
	    ((uintptr_t)mem % TOK_ALIGN) != 0)
		return WP_EINVAL;
	memset(t, 0, sizeof(*t));
	t->cap = cap;
	t->hash_mask = tok_hash_cap(cap) - 1;
	t->free_head = TOK_NONE;
	(void)tok_layout(
	    cap, &t->rows_off, &t->hash_off, t->heap_off, &t->pos_off);
	/*
	 * Rows, heaps and positions need no setup (a row's positions are
	 * set when it is first used); the index must read as empty.
	 */
	memset(tok_slots(t), 0,
	    (size_t)(t->hash_mask + 1) * sizeof(struct tok_slot));
	if ((rc = lock_init(&t->lock)) != 0)
		return rc;
	t->magic = TOK_MAGIC;
	*tp = t;
	return 0;
}

uint32_t
tok_table_cap(const struct tok_table *t)
{
	return t->cap;
}

uint32_t
tok_table_count(const struct tok_table *t)
{
	return atomic_load_explicit(&t->count, memory_order_relaxed);
}

uint32_t
tok_table_count_type(const struct tok_table *t, enum tok_type type)
{
	if ((unsigned)type >= TOK_NTYPES)
		return 0;
	return atomic_load_explicit(&t->count_type[type], memory_order_relaxed);
}

struct lock *
tok_table_lock(struct tok_table *t)
{
	return &t->lock;
}

uint64_t
tok_table_dirty(const struct tok_table *t)
{
	return atomic_load_explicit(&t->dirty, memory_order_relaxed);
}

static bool
tok_str_ok(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* Check what tok_add and tok_set take from ti. Outside the lock. */
static int
tok_info_check(const struct tok_info *ti, bool need_token)
{
	uint32_t i;

	if (need_token &&
	    (!tok_str_ok(ti->token, sizeof(ti->token)) ||
	        tok_validate(ti->token) != 0))
		return WP_EINVAL;
	if (!tok_str_ok(ti->note, sizeof(ti->note)) ||
	    !tok_str_ok(
	        ti->last_failure_reason, sizeof(ti->last_failure_reason)) ||
	    ti->ntags > TOK_TAGS_MAX || ti->type >= TOK_NTYPES ||
	    ti->status >= TOK_NSTATUS)
		return WP_EINVAL;
	for (i = 0; i < ti->ntags; i++)
		if (!tok_str_ok(ti->tags[i], sizeof(ti->tags[i])))
			return WP_EINVAL;
	return 0;
}

/* Copy the operator-editable fields of ti into r (both checked). */
static void
tok_row_fill(struct tok_row *r, const struct tok_info *ti)
{
	uint32_t i;

	memcpy(r->note, ti->note, strlen(ti->note) + 1);
	memcpy(r->reason, ti->last_failure_reason,
	    strlen(ti->last_failure_reason) + 1);
	r->ntags = ti->ntags;
	for (i = 0; i < ti->ntags; i++)
		memcpy(r->tags[i], ti->tags[i], strlen(ti->tags[i]) + 1);
	r->status = ti->status;
	r->remaining = ti->remaining;
	r->heavy_remaining = ti->heavy_remaining;
	r->failed_count = ti->failed_count;
	r->created_ms = ti->created_ms;
	r->last_failure_ms = ti->last_failure_ms;
	r->cooldown_until_ms = ti->cooldown_until_ms;
	tok_failure_note(r);
}

static void
tok_row_copyout(const struct tok_row *r, uint32_t row, struct tok_info *out)
{
	uint32_t i;

	memset(out, 0, sizeof(*out));
	memcpy(out->token, r->token, strlen(r->token) + 1);
	memcpy(out->note, r->note, strlen(r->note) + 1);
	memcpy(out->last_failure_reason, r->reason, strlen(r->reason) + 1);
	out->ntags = r->ntags;
	for (i = 0; i < r->ntags; i++)
		memcpy(out->tags[i], r->tags[i], strlen(r->tags[i]) + 1);
	out->type = r->type;
	out->status = r->status;
	out->remaining = r->remaining;
	out->heavy_remaining = r->heavy_remaining;
	out->failed_count = r->failed_count;
	out->inflight = r->inflight;
	out->created_ms = r->created_ms;
	out->last_failure_ms = r->last_failure_ms;
	out->last_used_ms = r->last_used_ms;
	out->cooldown_until_ms = r->cooldown_until_ms;
	out->row = row;
	out->row_gen = r->gen;
}

/* Give row the token and state of ti (checked) and index it. Locked. */
static void
tok_row_new(
    struct tok_table *t, uint32_t row, const struct tok_info *ti, uint32_t h)
{
	struct tok_row *r = tok_row(t, row);

	if (++r->gen == 0)
		r->gen = 1; /* 0 is never a valid generation */
	memcpy(r->token, ti->token, strlen(ti->token) + 1);
	tok_row_fill(r, ti);
	r->type = ti->type;
	r->last_used_ms = ti->last_used_ms;
	r->inflight = 0;
	r->fail401 = 0;
	r->cool429 = 0;
	r->synced_ms[0] = r->synced_ms[1] = 0;
	r->hash = h;
	r->next_free = TOK_NONE;
	tok_pos_clear(t, row);
	tok_settle(r);
	r->in_use = 1;
	tok_hash_insert(t, row, h);
	tok_count_add(t, r->type, 1);
}

int
tok_add(struct tok_table *t, const struct tok_info *ti, uint32_t *rowp)
{
	uint32_t h, row;
	int rc;

	if ((rc = tok_info_check(ti, true)) != 0)
		return rc;
	h = tok_hash(ti->token);
	if ((rc = tok_begin(t)) != 0)
		return rc;
	if (tok_hash_find(t, ti->token, h) != TOK_NONE) {
		rc = WP_EEXIST;
		goto out;
	}
	if (t->free_head != TOK_NONE) {
		row = t->free_head;
		t->free_head = tok_row(t, row)->next_free;
	} else if (t->hwm < t->cap) {
		row = t->hwm++;
		tok_row(t, row)->gen = 0;
	} else {
		rc = WP_ETOOBIG;
		goto out;
	}
	tok_row_new(t, row, ti, h);
	tok_place(t, row);
	*rowp = row;
	rc = 0;
out:
	tok_end(t, rc == 0);
	return rc;
}

/*
 * Every heap from the rows at once: each row appended to the heaps it
 * belongs in, then sifted down from the middle, O(n) in all. Locked; the
 * heaps are empty.
 */
static void
tok_heaps_build(struct tok_table *t)
{
	struct tok_hent e;
	struct tok_row *r;
	uint32_t row, i;
	unsigned kind, h;

	for (row = 0; row < t->hwm; row++) {
		r = tok_row(t, row);
		for (kind = 0; r->in_use && kind < TOK_NHK; kind++) {
			h = tok_heap_id(r->type, kind);
			if (!tok_wants(r, kind))
				continue;
			tok_hent_of(r, row, kind, &e);
			tok_heap_put(t, h, t->heap_len[h]++, &e);
		}
	}
	/* From the last node with a child, (n - 2) / D, up to the root. */
	for (h = 0; h < TOK_NHEAPS; h++)
		for (i = (t->heap_len[h] + TOK_HEAP_D - 2) / TOK_HEAP_D;
		     i-- > 0;)
			tok_heap_down(t, h, i);
}

int
tok_add_all(struct tok_table *t, tok_source_fn *src, void *arg)
{
	struct tok_info ti;
	uint32_t h, row;
	int rc;

	if ((rc = tok_begin(t)) != 0)
		return rc;
	if (t->hwm != 0) {
		tok_end(t, false);
		return WP_EINVAL;
	}
	while ((rc = src(arg, &ti)) == 0) {
		if ((rc = tok_info_check(&ti, true)) != 0)
			break;
		h = tok_hash(ti.token);
		if (tok_hash_find(t, ti.token, h) != TOK_NONE) {
			rc = WP_EEXIST;
			break;
		}
		if (t->hwm == t->cap) {
			rc = WP_ETOOBIG;
			break;
		}
		row = t->hwm++;
		tok_row(t, row)->gen = 0;
		tok_row_new(t, row, &ti, h);
	}
	tok_heaps_build(t);
	explicit_bzero(&ti, sizeof(ti)); /* a token */
	tok_end(t, t->hwm > 0);
	return rc == WP_ENOENT ? 0 : rc;
}

int
tok_table_prefault(struct tok_table *t, uint32_t first, uint32_t n)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo, hi;

	if (first >= t->cap)
		return 0;
	if (n > t->cap - first)
		n = t->cap - first;
	/* Every page a row of the range touches, the partial ones too. */
	lo = (uintptr_t)tok_row(t, first) & ~(pg - 1);
	hi = ((uintptr_t)tok_row(t, first + n) + pg - 1) & ~(pg - 1);
	if (hi > lo && madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) != 0)
		return WP_ESYS;
	return 0;
}

/* Take row (in use, found at hash slot) out of the table. Locked. */
static void
tok_drop(struct tok_table *t, uint32_t slot, uint32_t row)
{
	struct tok_row *r = tok_row(t, row);

	tok_unplace(t, row);
	tok_hash_delete(t, slot);
	r->in_use = 0;
	tok_count_add(t, r->type, -1);
	explicit_bzero(r->token, sizeof(r->token)); /* a secret */
	r->next_free = t->free_head;
	t->free_head = row;
}

int
tok_remove(struct tok_table *t, const char *token)
{
	uint32_t slot;
	int rc;

	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((slot = tok_hash_find(t, token, tok_hash(token))) == TOK_NONE) {
		rc = WP_ENOENT;
		goto out;
	}
	tok_drop(t, slot, tok_slots(t)[slot].row1 - 1);
out:
	tok_end(t, rc == 0);
	return rc;
}

int
tok_find(
    struct tok_table *t, const char *token, uint32_t *row, uint32_t *row_gen)
{
	uint32_t slot, h = tok_hash(token);
	int rc;

	if ((rc = tok_rlock(t)) != 0)
		return rc;
	if ((slot = tok_hash_find(t, token, h)) == TOK_NONE) {
		rc = WP_ENOENT;
	} else {
		*row = tok_slots(t)[slot].row1 - 1;
		*row_gen = tok_row(t, *row)->gen;
	}
	lock_give(&t->lock);
	return rc;
}

int
tok_get(
    struct tok_table *t, uint32_t row, uint32_t row_gen, struct tok_info *out)
{
	struct tok_row *r;
	int rc;

	if ((rc = tok_rlock(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL)
		rc = WP_ENOENT;
	else
		tok_row_copyout(r, row, out);
	lock_give(&t->lock);
	return rc;
}

int
tok_next(struct tok_table *t, uint32_t *iter, struct tok_info *out)
{
	uint32_t i;
	int rc;

	if ((rc = tok_rlock(t)) != 0)
		return rc;
	rc = WP_ENOENT;
	for (i = *iter; i < t->hwm; i++) {
		if (tok_row(t, i)->in_use) {
			tok_row_copyout(tok_row(t, i), i, out);
			*iter = i + 1;
			rc = 0;
			break;
		}
	}
	if (rc != 0)
		*iter = t->hwm;
	lock_give(&t->lock);
	return rc;
}

int
tok_set(struct tok_table *t, uint32_t row, uint32_t row_gen,
    const struct tok_info *ti)
{
	struct tok_row *r;
	uint8_t old_status;
	int rc;

	if ((rc = tok_info_check(ti, false)) != 0)
		return rc;
	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL) {
		rc = WP_ENOENT;
		goto out;
	}
	if (ti->type != r->type) {
		tok_unplace(t, row);
		tok_count_add(t, r->type, -1);
		r->type = ti->type;
		tok_count_add(t, r->type, 1);
	}
	old_status = r->status;
	tok_row_fill(r, ti);
	if (r->status != old_status || r->failed_count == 0)
		r->fail401 = 0;
	else if (r->fail401 > r->failed_count)
		r->fail401 = (uint8_t)r->failed_count;
	tok_settle(r);
	tok_place(t, row);
out:
	tok_end(t, rc == 0);
	return rc;
}

/* Check what tok_edit takes from e. Outside the lock. */
static int
tok_edit_check(const struct tok_edit *e)
{
	uint32_t i;

	if (e->set_status && e->status != TOK_ST_ACTIVE &&
	    e->status != TOK_ST_DISABLED)
		return WP_EINVAL;
	if (e->set_note && !tok_str_ok(e->note, sizeof(e->note)))
		return WP_EINVAL;
	if (!e->set_tags)
		return 0;
	if (e->ntags > TOK_TAGS_MAX)
		return WP_EINVAL;
	for (i = 0; i < e->ntags; i++)
		if (!tok_str_ok(e->tags[i], sizeof(e->tags[i])))
			return WP_EINVAL;
	return 0;
}

int
tok_edit(struct tok_table *t, uint32_t row, uint32_t row_gen,
    const struct tok_edit *e)
{
	struct tok_row *r;
	uint32_t i;
	int rc;

	if ((rc = tok_edit_check(e)) != 0)
		return rc;
	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL) {
		rc = WP_ENOENT;
		goto out;
	}
	if (e->set_note)
		memcpy(r->note, e->note, strlen(e->note) + 1);
	if (e->set_tags) {
		r->ntags = e->ntags;
		for (i = 0; i < e->ntags; i++)
			memcpy(r->tags[i], e->tags[i], strlen(e->tags[i]) + 1);
	}
	if (e->set_status && e->status == TOK_ST_DISABLED) {
		r->status = TOK_ST_DISABLED;
	} else if (e->set_status && !tok_live(r)) {
		r->status = TOK_ST_ACTIVE;
		r->fail401 = 0; /* a fresh start: three more 401s to expire */
	}
	tok_settle(r);
	tok_place(t, row);
out:
	tok_end(t, rc == 0);
	return rc;
}

int
tok_remove_row(struct tok_table *t, uint32_t row, uint32_t row_gen)
{
	struct tok_row *r;
	uint32_t slot;
	int rc;

	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL ||
	    (slot = tok_hash_find(t, r->token, r->hash)) == TOK_NONE) {
		rc = WP_ENOENT;
		goto out;
	}
	tok_drop(t, slot, row);
out:
	tok_end(t, rc == 0);
	return rc;
}

/* Rows walked per hold of the lock in tok_table_stats. */
#define TOK_STATS_BATCH 256

static void
tok_stats_row(const struct tok_row *r, struct tok_stats *st)
{
	st->by_status[r->type][r->status]++;
	st->inflight += r->inflight;
	if (!tok_live(r))
		return;
	if (r->remaining < 0)
		st->unknown[r->type]++;
	else if (r->remaining == 0)
		st->exhausted[r->type]++;
	else
		st->remaining[r->type] += (uint64_t)r->remaining;
	if (r->type != TOK_SUPER)
		return;
	if (r->heavy_remaining < 0)
		st->heavy_unknown++;
	else
		st->heavy_remaining += (uint64_t)r->heavy_remaining;
}

int
tok_table_stats(struct tok_table *t, struct tok_stats *st)
{
	uint32_t i = 0, end;
	int rc;

	memset(st, 0, sizeof(*st));
	for (;;) {
		if ((rc = tok_rlock(t)) != 0)
			return rc;
		end =
		    t->hwm - i > TOK_STATS_BATCH ? i + TOK_STATS_BATCH : t->hwm;
		for (; i < end; i++)
			if (tok_row(t, i)->in_use)
				tok_stats_row(tok_row(t, i), st);
		end = t->hwm;
		lock_give(&t->lock);
		if (i >= end)
			return 0;
	}
}

/* Cooldowns that ended by now: back to active, exhausted fields unknown. */
static bool
tok_sweep(struct tok_table *t, enum tok_type type, int64_t now_ms)
{
	unsigned h = tok_heap_id(type, TOK_HK_COOL), n;
	struct tok_row *r;
	uint32_t row;

	for (n = 0; n < TOK_SWEEP_MAX && t->heap_len[h] > 0; n++) {
		if (tok_hent_until(&tok_heap(t, h)[0]) > now_ms)
			break;
		row = tok_hent_row(&tok_heap(t, h)[0]);
		r = tok_row(t, row);
		if (r->status == TOK_ST_COOLING)
			r->status = TOK_ST_ACTIVE;
		if (r->remaining == 0)
			r->remaining = -1;
		if (r->heavy_remaining == 0)
			r->heavy_remaining = -1;
		r->cooldown_until_ms = 0;
		r->cool429 = 0;
		tok_place(t, row);
	}
	return n > 0;
}

int
tok_pick(struct tok_table *t, enum cfg_pool pool, int64_t now_ms,
    uint32_t exclude_row, struct tok_lease *lease, int64_t *retry_at_ms)
{
	return tok_pick_journaled(
	    t, pool, now_ms, exclude_row, lease, retry_at_ms, NULL);
}

int
tok_pick_journaled(struct tok_table *t, enum cfg_pool pool, int64_t now_ms,
    uint32_t exclude_row, struct tok_lease *lease, int64_t *retry_at_ms,
    _Atomic uint64_t *jrn)
{
	static const unsigned normal[] = { TOK_NORMAL * TOK_NHK + TOK_HK_AVAIL,
		TOK_SUPER * TOK_NHK + TOK_HK_AVAIL };
	static const unsigned super[] = { TOK_SUPER * TOK_NHK + TOK_HK_HEAVY };
	const unsigned *order = pool == CFG_POOL_SUPER ? super : normal;
	unsigned norder = pool == CFG_POOL_SUPER ? 1 : 2, i, h;
	struct tok_row *r;
	uint32_t row = TOK_NONE;
	int64_t until, best = 0;
	bool changed = false;
	int rc;

	if ((rc = tok_begin(t)) != 0)
		return rc;
	if (pool != CFG_POOL_SUPER)
		changed |= tok_sweep(t, TOK_NORMAL, now_ms);
	changed |= tok_sweep(t, TOK_SUPER, now_ms);
	for (i = 0; i < norder && row == TOK_NONE; i++)
		row = tok_heap_best(t, order[i], exclude_row);
	/* Only the excluded token is usable: better it than nothing. */
	for (i = 0; i < norder && row == TOK_NONE; i++)
		if (t->heap_len[order[i]] > 0)
			row = tok_hent_row(&tok_heap(t, order[i])[0]);
	if (row == TOK_NONE) {
		rc = WP_ENOTOKEN;
		for (i = 0; i < norder; i++) {
			h = tok_heap_id(
			    (enum tok_type)(order[i] / TOK_NHK), TOK_HK_COOL);
			if (t->heap_len[h] == 0)
				continue;
			until = tok_hent_until(&tok_heap(t, h)[0]);
			if (rc == WP_ENOTOKEN || until < best)
				best = until;
			rc = WP_ECOOLING;
		}
		if (rc == WP_ECOOLING && retry_at_ms != NULL)
			*retry_at_ms = best;
		goto out;
	}
	r = tok_row(t, row);
	/*
	 * The journal learns of the lease before the count does, under the
	 * lock: a holder killed in between leaves a lease the master gives
	 * back once too often (clamped at 0), never one counted for good.
	 */
	if (jrn != NULL)
		atomic_store_explicit(jrn, ((uint64_t)row + 1) << 32 | r->gen,
		    memory_order_release);
	r->inflight++;
	r->last_used_ms = now_ms;
	tok_place(t, row);
	changed = true;
	lease->row = row;
	lease->row_gen = r->gen;
	lease->type = r->type;
	lease->heavy = pool == CFG_POOL_SUPER;
	memset(lease->pad, 0, sizeof(lease->pad));
	memcpy(lease->token, r->token, strlen(r->token) + 1);
	/*
	 * The heap's best is now the next pick's token, and with a large
	 * pool its row is cold (a miss to memory): start fetching its two
	 * lines while this request goes on.
	 */
	h = order[0];
	if (t->heap_len[h] > 0) {
		r = tok_row(t, tok_hent_row(&tok_heap(t, h)[0]));
		__builtin_prefetch(r, 1);
		__builtin_prefetch(r->token, 0);
	}
out:
	tok_end(t, changed);
	return rc;
}

void
tok_release(struct tok_table *t, const struct tok_lease *lease)
{
	struct tok_row *r;

	if (tok_begin(t) != 0)
		return; /* lock lost: the segment is rebuilt anyway */
	if ((r = tok_row_get(t, lease->row, lease->row_gen)) != NULL &&
	    r->inflight > 0) {
		r->inflight--;
		tok_place(t, lease->row);
	}
	tok_end(t, false); /* in-flight counts are not persisted */
}

int
tok_charge(struct tok_table *t, const struct tok_lease *lease, int32_t cost,
    int64_t now_ms)
{
	struct tok_row *r;
	int32_t *field;
	int rc;

	if (cost < 0)
		return WP_EINVAL;
	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, lease->row, lease->row_gen)) == NULL) {
		rc = WP_ENOENT;
		goto out;
	}
	r->failed_count = 0;
	r->fail401 = 0;
	if (r->failure) {
		r->last_failure_ms = 0;
		r->reason[0] = '\0';
		r->failure = 0;
	}
	field = lease->heavy ? &r->heavy_remaining : &r->remaining;
	if (*field >= 0) {
		*field = *field > cost ? *field - cost : 0;
		if (*field == 0)
			tok_exhaust(r, now_ms + TOK_COOL_DEF_MS);
	}
	tok_place(t, lease->row);
out:
	tok_end(t, rc == 0);
	return rc;
}

bool
tok_sync_due(struct tok_table *t, const struct tok_lease *lease, int64_t now_ms)
{
	struct tok_row *r;
	int64_t *at;
	int32_t left;
	bool due = false;

	if (tok_begin(t) != 0)
		return false;
	if ((r = tok_row_get(t, lease->row, lease->row_gen)) == NULL)
		goto out;
	at = &r->synced_ms[lease->heavy ? 1 : 0];
	left = lease->heavy ? r->heavy_remaining : r->remaining;
	due = *at == 0 || now_ms < *at ||
	    now_ms - *at >= (left < 0 || left <= TOK_SYNC_LOW ? TOK_SYNC_SOON_MS
	                                                      : TOK_SYNC_MS);
	if (due)
		*at = now_ms;
out:
	tok_end(t, false); /* the stamp is not kept in token.json */
	return due;
}

int
tok_set_quota(struct tok_table *t, uint32_t row, uint32_t row_gen, bool heavy,
    int32_t remaining, int64_t wait_s, int64_t now_ms)
{
	struct tok_row *r;
	int rc;

	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL) {
		rc = WP_ENOENT;
		goto out;
	}
	if (remaining < 0)
		remaining = -1;
	if (heavy)
		r->heavy_remaining = remaining;
	else
		r->remaining = remaining;
	if (remaining == 0) {
		/* Caps the wait at ten years: no overflow, no forever. */
		if (wait_s > 0 && wait_s < 315360000) {
			tok_exhaust(r, now_ms + wait_s * 1000);
			/*
			 * The upstream named the reset: it replaces the guess
			 * a 429 made (it may be sooner), when this field is
			 * the one that keeps the token out.
			 */
			if (r->status == TOK_ST_COOLING && r->cool429)
				r->cooldown_until_ms = now_ms + wait_s * 1000;
		} else
			tok_exhaust(r, now_ms + TOK_COOL_DEF_MS);
	} else {
		/* Our own count ran out early; the upstream knows better. */
		if (r->status == TOK_ST_COOLING && !r->cool429 &&
		    tok_has_quota(r))
			r->status = TOK_ST_ACTIVE;
		if (r->status == TOK_ST_ACTIVE && !tok_has_zero(r))
			r->cooldown_until_ms = 0;
	}
	tok_place(t, row);
out:
	tok_end(t, rc == 0);
	return rc;
}

static void
tok_set_reason(struct tok_row *r, const char *reason, int64_t now_ms)
{
	if (reason == NULL)
		reason = "";
	/*
	 * Reasons are for humans: a cut one is fine, but it stays UTF-8
	 * (token.json refuses anything else, and would never be written).
	 */
	(void)util_strlcpy(r->reason, reason, sizeof(r->reason));
	util_utf8_clean(r->reason);
	r->last_failure_ms = now_ms;
	tok_failure_note(r);
}

int
tok_cool(struct tok_table *t, uint32_t row, uint32_t row_gen, int64_t until_ms,
    const char *reason, int64_t now_ms)
{
	struct tok_row *r;
	int rc;

	if (until_ms <= now_ms)
		until_ms = now_ms + TOK_COOL_DEF_MS;
	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL) {
		rc = WP_ENOENT;
		goto out;
	}
	tok_set_reason(r, reason, now_ms);
	if (tok_live(r)) {
		r->status = TOK_ST_COOLING;
		r->cool429 = 1;
		if (until_ms > r->cooldown_until_ms)
			r->cooldown_until_ms = until_ms;
	}
	tok_place(t, row);
out:
	tok_end(t, rc == 0);
	return rc;
}

int
tok_fail(struct tok_table *t, uint32_t row, uint32_t row_gen, int http_status,
    const char *reason, int64_t now_ms)
{
	struct tok_row *r;
	int rc;

	if ((rc = tok_begin(t)) != 0)
		return rc;
	if ((r = tok_row_get(t, row, row_gen)) == NULL) {
		rc = WP_ENOENT;
		goto out;
	}
	if (r->failed_count < UINT32_MAX)
		r->failed_count++;
	tok_set_reason(r, reason, now_ms);
	if (http_status != 401) {
		r->fail401 = 0;
	} else if (++r->fail401 >= TOK_FAIL_EXPIRE) {
		r->fail401 = TOK_FAIL_EXPIRE;
		if (tok_live(r))
			r->status = TOK_ST_EXPIRED;
		r->cool429 = 0;
	}
	tok_place(t, row);
out:
	tok_end(t, rc == 0);
	return rc;
}

/* ---- consistency, for tests ---- */

static int
tok_check_heap(struct tok_table *t, unsigned h)
{
	struct tok_hent *a = tok_heap(t, h), e;
	unsigned kind = h % TOK_NHK;
	struct tok_row *r;
	uint32_t i, row;

	if (t->heap_len[h] > t->cap)
		return WP_EINVAL;
	for (i = 0; i < t->heap_len[h]; i++) {
		if ((row = tok_hent_row(&a[i])) >= t->hwm)
			return WP_EINVAL;
		r = tok_row(t, row);
		if (!r->in_use || tok_heap_id(r->type, kind) != h ||
		    *tok_pos(t, kind, row) != i || !tok_wants(r, kind))
			return WP_EINVAL;
		/* The key is the one its row's fields give now. */
		tok_hent_of(r, row, kind, &e);
		if (memcmp(&e, &a[i], sizeof(e)) != 0)
			return WP_EINVAL;
		if (i > 0 && tok_before(&a[i], &a[(i - 1) / TOK_HEAP_D]))
			return WP_EINVAL;
	}
	return 0;
}

static int
tok_check_locked(struct tok_table *t)
{
	uint32_t i, n = 0, ntype[TOK_NTYPES] = { 0 }, nslots = 0, nfree = 0;
	struct tok_slot *s = tok_slots(t);
	struct tok_row *r;
	unsigned k;

	if (t->magic != TOK_MAGIC || t->busy != 0 || t->hwm > t->cap)
		return WP_EINVAL;
	for (k = 0; k < TOK_NHEAPS; k++)
		if (tok_check_heap(t, k) != 0)
			return WP_EINVAL;
	for (i = 0; i < t->hwm; i++) {
		r = tok_row(t, i);
		if (!r->in_use)
			continue;
		n++;
		ntype[r->type]++;
		if (tok_hash_find(t, r->token, r->hash) == TOK_NONE ||
		    tok_hash(r->token) != r->hash ||
		    r->failure !=
		        (r->last_failure_ms != 0 || r->reason[0] != '\0'))
			return WP_EINVAL;
		for (k = 0; k < TOK_NHK; k++)
			if ((*tok_pos(t, k, i) != TOK_NONE) != tok_wants(r, k))
				return WP_EINVAL;
	}
	for (i = 0; i <= t->hash_mask; i++)
		nslots += s[i].row1 != 0;
	for (i = t->free_head; i != TOK_NONE && nfree <= t->hwm;
	     i = tok_row(t, i)->next_free) {
		if (i >= t->hwm || tok_row(t, i)->in_use)
			return WP_EINVAL;
		nfree++;
	}
	if (n != tok_table_count(t) || nslots != n || n + nfree != t->hwm)
		return WP_EINVAL;
	for (k = 0; k < TOK_NTYPES; k++)
		if (ntype[k] != tok_table_count_type(t, (enum tok_type)k))
			return WP_EINVAL;
	return 0;
}

int
tok_table_check(struct tok_table *t)
{
	int rc;

	if ((rc = tok_rlock(t)) != 0)
		return rc;
	rc = tok_check_locked(t);
	lock_give(&t->lock);
	return rc;
}

void
tok_table_wreck(struct tok_table *t)
{
	unsigned h = tok_heap_id(TOK_NORMAL, TOK_HK_AVAIL);
	struct tok_hent *a = tok_heap(t, h), tmp;
	uint32_t i;

	t->busy = 1;
	/*
	 * A heap out of order with stale positions and a stale key, a lost
	 * index slot.
	 */
	if (t->heap_len[h] > 1) {
		tmp = a[0];
		a[0] = a[t->heap_len[h] - 1];
		a[t->heap_len[h] - 1] = tmp;
		a[1].hi ^= 1;
	}
	t->heap_len[h] += 3;
	for (i = 0; i <= t->hash_mask; i++) {
		if (tok_slots(t)[i].row1 != 0) {
			tok_slots(t)[i].row1 = 0;
			break;
		}
	}
	atomic_fetch_add_explicit(&t->count, 7, memory_order_relaxed);
}
