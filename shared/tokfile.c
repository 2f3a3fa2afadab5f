/*
 * token.json (tokfile.h): reading, checking, loading into the token
 * table, three-way merging of the operator's edits, and atomic writing.
 * Master only; takes no lock itself (the tok_* calls take the table's).
 *
 * A struct tokfile is what the file last read or written says. The
 * master keeps one all its life (the merge base), so it is compact: per
 * token its fields and offsets into one block of strings, the token's
 * keys we do not know as the text of a JSON object (none for most
 * tokens), the same for the top level, and a hash index by token.
 *
 * Reading first tries a scanner made for token.json's shape, which gives
 * up at the first thing it is not sure of. A token's object it will not
 * read (a key we do not know, a real number, a wrong value) goes through
 * jansson alone; anything else (broken JSON, a duplicate key, a schema
 * error) sends the whole file through jansson as before, so every error
 * and its position come from there. Writing prints the text itself,
 * byte for byte as jansson would, without a jansson tree of the pool.
 * Tokens never reach an error message: log_tok() fingerprints do.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "tok.h"
#include "tokfile.h"
#include "util.h"

#define TOKFILE_MAX_BYTES   (256u << 20) /* ~400k tokens: far past any cap */
#define TOKFILE_STRS_MAX    (1u << 30)   /* strings of one struct tokfile */
#define TOKFILE_KEY_MAX     1024         /* longer keys: jansson reads them */
#define TOKFILE_DEPTH_MAX   512          /* deeper values: jansson reads them */
#define TOKFILE_TOKEN_BYTES 400 /* per token in our files, a bit over */

/* The fields we read and write; any other key of a token is kept. */
enum tokfile_key {
	TOKFILE_K_CREATED,
	TOKFILE_K_REMAINING,
	TOKFILE_K_HEAVY,
	TOKFILE_K_STATUS,
	TOKFILE_K_FAILED,
	TOKFILE_K_FAIL_TIME,
	TOKFILE_K_FAIL_REASON,
	TOKFILE_K_TAGS,
	TOKFILE_K_NOTE,
	TOKFILE_K_COOLDOWN,
	TOKFILE_K_USED,
	TOKFILE_NKEYS
};

static const char *const tokfile_key_name[] = {
	[TOKFILE_K_CREATED] = "createdTime",
	[TOKFILE_K_REMAINING] = "remainingQueries",
	[TOKFILE_K_HEAVY] = "heavyremainingQueries",
	[TOKFILE_K_STATUS] = "status",
	[TOKFILE_K_FAILED] = "failedCount",
	[TOKFILE_K_FAIL_TIME] = "lastFailureTime",
	[TOKFILE_K_FAIL_REASON] = "lastFailureReason",
	[TOKFILE_K_TAGS] = "tags",
	[TOKFILE_K_NOTE] = "note",
	[TOKFILE_K_COOLDOWN] = "cooldownUntil",
	[TOKFILE_K_USED] = "lastUsedTime",
};

/* One token as the file has it; strings are offsets into strs. */
struct tokfile_ent {
	int64_t created_ms;
	int64_t last_failure_ms;
	int64_t cooldown_until_ms;
	int64_t last_used_ms;
	int32_t remaining;
	int32_t heavy_remaining;
	uint32_t failed_count;
	uint32_t token;
	uint32_t note;
	uint32_t reason;
	uint32_t tags;  /* ntags strings, one after the other */
	uint32_t extra; /* its unknown keys as a JSON object; 0 = none */
	uint8_t type;
	uint8_t status;
	uint8_t ntags;
};

/* The index by token: open addressing, linear probing. */
struct tokfile_slot {
	uint32_t ent1; /* entry + 1, 0 = empty */
	uint32_t hash;
};

struct tokfile {
	struct tokfile_ent *ents; /* in the file's order */
	size_t n, cap;
	struct tokfile_slot *index;
	uint32_t mask; /* slots - 1 */
	char *strs;    /* NUL-terminated strings; offset 0 is "" */
	size_t strs_len, strs_cap;
	uint32_t top; /* unknown top-level keys as a JSON object; 0 = none */
	_Atomic uint32_t *seen; /* while read: entries so far (or NULL) */
};

/* What is wrong with one token's entry. */
struct tokfile_bad {
	const char *field; /* NULL: the entry itself */
	char why[96];
};

/* ---- the compact document ---- */

/*
 * Eight bytes at a time, as a start-up hashes 100,000 tokens. Tokens come
 * from the operator, not from clients.
 */
static uint32_t
tokfile_hash(const char *s)
{
	size_t n = strlen(s);
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0xff51afd7ed558ccdULL;
	return (uint32_t)(h ^ h >> 29);
}

void
tokfile_forget(struct tokfile *f)
{
	if (f == NULL)
		return;
	free(f->strs);
	free(f->index);
	free(f->ents);
	free(f);
}

void
tokfile_free(struct tokfile *f)
{
	if (f != NULL && f->strs != NULL)
		explicit_bzero(f->strs, f->strs_len); /* tokens */
	tokfile_forget(f);
}

/*
 * An empty document, sized for about ntok tokens and strs bytes of
 * strings (hints: it grows past them).
 */
static struct tokfile *
tokfile_new(size_t ntok, size_t strs)
{
	struct tokfile *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if (ntok > TOKFILE_MAX_BYTES / 64)
		ntok = TOKFILE_MAX_BYTES / 64;
	for (f->mask = 15; f->mask / 2 < ntok; f->mask = f->mask * 2 + 1)
		;
	f->strs_cap = strs < 4096     ? 4096
	    : strs < TOKFILE_STRS_MAX ? strs
	                              : TOKFILE_STRS_MAX;
	if ((f->index = calloc(f->mask + 1, sizeof(*f->index))) == NULL ||
	    (f->strs = malloc(f->strs_cap)) == NULL) {
		tokfile_free(f);
		return NULL;
	}
	f->strs[0] = '\0';
	f->strs_len = 1;
	return f;
}

/* A copy of the n bytes at s, NUL-terminated, into strs; *off says where. */
static int
tokfile_strs_add(struct tokfile *f, const char *s, size_t n, uint32_t *off)
{
	size_t cap = f->strs_cap;
	char *p;

	if (n >= TOKFILE_STRS_MAX - f->strs_len)
		return WP_ENOMEM;
	while (f->strs_len + n + 1 > cap)
		cap *= 2;
	if (cap != f->strs_cap) {
		/* Not realloc: the old block holds tokens and is wiped. */
		if ((p = malloc(cap)) == NULL)
			return WP_ENOMEM;
		memcpy(p, f->strs, f->strs_len);
		explicit_bzero(f->strs, f->strs_len);
		free(f->strs);
		f->strs = p;
		f->strs_cap = cap;
	}
	memcpy(f->strs + f->strs_len, s, n);
	f->strs[f->strs_len + n] = '\0';
	*off = (uint32_t)f->strs_len;
	f->strs_len += n + 1;
	return 0;
}

/* The index slot of token: its entry's, or the empty one it would take. */
static uint32_t
tokfile_slot(const struct tokfile *f, const char *token, uint32_t h)
{
	const struct tokfile_slot *x;
	uint32_t i;

	for (i = h & f->mask; (x = &f->index[i])->ent1 != 0;
	     i = (i + 1) & f->mask)
		if (x->hash == h &&
		    strcmp(f->strs + f->ents[x->ent1 - 1].token, token) == 0)
			break;
	return i;
}

/* A token's entry (f may be NULL), or NULL. */
static const struct tokfile_ent *
tokfile_lookup(const struct tokfile *f, const char *token)
{
	uint32_t i;

	if (f == NULL)
		return NULL;
	i = tokfile_slot(f, token, tokfile_hash(token));
	return f->index[i].ent1 != 0 ? &f->ents[f->index[i].ent1 - 1] : NULL;
}

/* Room for one more entry, with the index at most half full. */
static int
tokfile_reserve(struct tokfile *f)
{
	struct tokfile_slot *index;
	struct tokfile_ent *ents;
	uint32_t slots, i, j;
	size_t cap;

	if (f->n == f->cap) {
		cap = f->cap == 0 ? 64 : f->cap * 2;
		if (cap > UINT32_MAX / 4)
			return WP_ENOMEM;
		if ((ents = realloc(f->ents, cap * sizeof(*ents))) == NULL)
			return WP_ENOMEM;
		f->ents = ents;
		f->cap = cap;
	}
	if ((f->n + 1) * 2 <= (size_t)f->mask + 1)
		return 0;
	slots = (f->mask + 1) * 2;
	if ((index = calloc(slots, sizeof(*index))) == NULL)
		return WP_ENOMEM;
	for (i = 0; i <= f->mask; i++) {
		if (f->index[i].ent1 == 0)
			continue;
		for (j = f->index[i].hash & (slots - 1); index[j].ent1 != 0;)
			j = (j + 1) & (slots - 1);
		index[j] = f->index[i];
	}
	free(f->index);
	f->index = index;
	f->mask = slots - 1;
	return 0;
}

/*
 * Add ti (already checked: by tokfile_info, the scanner or the table)
 * with the text of its unknown keys (NULL: none). Returns 0, WP_EEXIST
 * (the token is there already) or WP_ENOMEM.
 */
static int
tokfile_add(struct tokfile *f, const struct tok_info *ti, const char *extra)
{
	struct tokfile_ent e;
	uint32_t h = tokfile_hash(ti->token), slot, i, off;
	int rc;

	memset(&e, 0, sizeof(e));
	if ((rc = tokfile_reserve(f)) != 0)
		return rc;
	if (f->index[slot = tokfile_slot(f, ti->token, h)].ent1 != 0)
		return WP_EEXIST;
	if ((rc = tokfile_strs_add(
	         f, ti->token, strlen(ti->token), &e.token)) != 0 ||
	    (ti->note[0] != '\0' &&
	        (rc = tokfile_strs_add(
	             f, ti->note, strlen(ti->note), &e.note)) != 0) ||
	    (ti->last_failure_reason[0] != '\0' &&
	        (rc = tokfile_strs_add(f, ti->last_failure_reason,
	             strlen(ti->last_failure_reason), &e.reason)) != 0) ||
	    (extra != NULL &&
	        (rc = tokfile_strs_add(f, extra, strlen(extra), &e.extra)) !=
	            0))
		return rc;
	for (i = 0; i < ti->ntags; i++) {
		if ((rc = tokfile_strs_add(
		         f, ti->tags[i], strlen(ti->tags[i]), &off)) != 0)
			return rc;
		if (i == 0)
			e.tags = off;
	}
	e.created_ms = ti->created_ms;
	e.last_failure_ms = ti->last_failure_ms;
	e.cooldown_until_ms = ti->cooldown_until_ms;
	e.last_used_ms = ti->last_used_ms;
	e.remaining = ti->remaining;
	e.heavy_remaining = ti->heavy_remaining;
	e.failed_count = ti->failed_count;
	e.type = ti->type;
	e.status = ti->status;
	e.ntags = (uint8_t)ti->ntags;
	f->ents[f->n++] = e;
	f->index[slot].ent1 = (uint32_t)f->n;
	f->index[slot].hash = h;
	if (f->seen != NULL && f->n % TOKFILE_SEEN_STEP == 0)
		atomic_store_explicit(
		    f->seen, (uint32_t)f->n, memory_order_relaxed);
	return 0;
}

/* An entry as a struct tok_info (its strings fit: they were checked). */
static void
tokfile_get(
    const struct tokfile *f, const struct tokfile_ent *e, struct tok_info *ti)
{
	const char *tag = f->strs + e->tags;
	uint32_t i;

	memset(ti, 0, sizeof(*ti));
	(void)util_strlcpy(ti->token, f->strs + e->token, sizeof(ti->token));
	(void)util_strlcpy(ti->note, f->strs + e->note, sizeof(ti->note));
	(void)util_strlcpy(ti->last_failure_reason, f->strs + e->reason,
	    sizeof(ti->last_failure_reason));
	for (i = 0; i < e->ntags; i++) {
		(void)util_strlcpy(ti->tags[i], tag, sizeof(ti->tags[i]));
		tag += strlen(tag) + 1;
	}
	ti->ntags = e->ntags;
	ti->type = e->type;
	ti->status = e->status;
	ti->remaining = e->remaining;
	ti->heavy_remaining = e->heavy_remaining;
	ti->failed_count = e->failed_count;
	ti->created_ms = e->created_ms;
	ti->last_failure_ms = e->last_failure_ms;
	ti->last_used_ms = e->last_used_ms;
	ti->cooldown_until_ms = e->cooldown_until_ms;
}

/*
 * The next entry of one type from *i on (f may be NULL), or NULL: the
 * file's order within each map, ssoNormal's tokens before ssoSuper's.
 */
static const struct tokfile_ent *
tokfile_next(const struct tokfile *f, enum tok_type type, size_t *i)
{
	for (; f != NULL && *i < f->n; (*i)++)
		if (f->ents[*i].type == type)
			return &f->ents[(*i)++];
	return NULL;
}

size_t
tokfile_count(const struct tokfile *f)
{
	return f != NULL ? f->n : 0;
}

bool
tokfile_same(const struct tokfile *a, const struct tokfile *b)
{
	const struct tokfile_ent *ea, *eb;
	struct tok_info ta, tb;
	size_t ia, ib;
	unsigned i;
	bool same =
	    a->n == b->n && strcmp(a->strs + a->top, b->strs + b->top) == 0;

	for (i = 0; same && i < TOK_NTYPES; i++) {
		ia = ib = 0;
		do {
			ea = tokfile_next(a, (enum tok_type)i, &ia);
			eb = tokfile_next(b, (enum tok_type)i, &ib);
			if (ea == NULL || eb == NULL) {
				same = ea == eb;
				break;
			}
			tokfile_get(a, ea, &ta);
			tokfile_get(b, eb, &tb);
			same = memcmp(&ta, &tb, sizeof(ta)) == 0 &&
			    strcmp(a->strs + ea->extra, b->strs + eb->extra) ==
			        0;
		} while (same);
	}
	return same;
}

/* ---- one token: JSON <-> struct tok_info ---- */

/*
 * An integer field in [min, max]. Missing or null (when null_ok) gives
 * dflt. Old files may hold digits in a string (str_ok) or an integral
 * real written by another tool.
 */
static int
tokfile_int(json_t *o, const char *key, int64_t min, int64_t max, bool null_ok,
    bool str_ok, int64_t dflt, int64_t *out, struct tokfile_bad *bad)
{
	json_t *v = json_object_get(o, key);
	double d;
	int64_t x;

	bad->field = key;
	if (v == NULL || (null_ok && json_is_null(v))) {
		*out = dflt;
		return 0;
	}
	d = json_is_real(v) ? json_real_value(v) : 0.5;
	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (d >= -9.2e18 && d <= 9.2e18 && (double)(int64_t)d == d) {
		x = (int64_t)d; /* an integral real, from another tool */
	} else if (str_ok && json_is_string(v) &&
	    util_parse_i64(json_string_value(v), min, max, &x) == 0) {
		/* digits in a string, as old files have */
	} else {
		(void)snprintf(bad->why, sizeof(bad->why), "must be %s",
		    null_ok ? "an integer or null" : "an integer");
		return WP_EPARSE;
	}
	if (x < min || x > max) {
		(void)snprintf(bad->why, sizeof(bad->why),
		    "%lld is out of range [%lld, %lld]", (long long)x,
		    (long long)min, (long long)max);
		return WP_EPARSE;
	}
	*out = x;
	return 0;
}

/*
 * A string field into dst. Missing or null gives "". Overlong is an error
 * unless cut_ok (then it is cut on a UTF-8 boundary).
 */
static int
tokfile_str(json_t *o, const char *key, char *dst, size_t size, bool cut_ok,
    struct tokfile_bad *bad)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	size_t n;

	bad->field = key;
	dst[0] = '\0';
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		(void)snprintf(
		    bad->why, sizeof(bad->why), "must be a string or null");
		return WP_EPARSE;
	}
	s = json_string_value(v);
	n = strlen(s);
	if (n >= size) {
		if (!cut_ok) {
			(void)snprintf(bad->why, sizeof(bad->why),
			    "longer than %zu bytes", size - 1);
			return WP_EPARSE;
		}
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static int
tokfile_tags(json_t *o, struct tok_info *ti, struct tokfile_bad *bad)
{
	json_t *v = json_object_get(o, "tags"), *tag;
	size_t i;

	bad->field = "tags";
	ti->ntags = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		(void)snprintf(
		    bad->why, sizeof(bad->why), "must be an array of strings");
		return WP_EPARSE;
	}
	if (json_array_size(v) > TOK_TAGS_MAX) {
		(void)snprintf(bad->why, sizeof(bad->why), "more than %d tags",
		    TOK_TAGS_MAX);
		return WP_EPARSE;
	}
	json_array_foreach(v, i, tag)
	{
		if (!json_is_string(tag)) {
			(void)snprintf(bad->why, sizeof(bad->why),
			    "tag %zu is not a string", i + 1);
			return WP_EPARSE;
		}
		if (util_strlcpy(ti->tags[i], json_string_value(tag),
		        sizeof(ti->tags[i])) != 0) {
			(void)snprintf(bad->why, sizeof(bad->why),
			    "tag %zu is longer than %d bytes", i + 1,
			    TOK_TAG_MAX);
			return WP_EPARSE;
		}
		ti->ntags++;
	}
	return 0;
}

/* One token's object into ti. Returns 0 or WP_EPARSE with *bad filled. */
static int
tokfile_info(const char *token, json_t *o, enum tok_type type,
    struct tok_info *ti, struct tokfile_bad *bad)
{
	enum tok_status st;
	json_t *v;
	int64_t x;

	memset(ti, 0, sizeof(*ti));
	bad->field = NULL;
	bad->why[0] = '\0';
	if (tok_validate(token) != 0) {
		(void)snprintf(bad->why, sizeof(bad->why),
		    "not a token (1 to %d cookie characters)", TOK_LEN_MAX);
		return WP_EPARSE;
	}
	memcpy(ti->token, token, strlen(token) + 1);
	ti->type = (uint8_t)type;
	if (!json_is_object(o)) {
		(void)snprintf(bad->why, sizeof(bad->why), "must be an object");
		return WP_EPARSE;
	}
	if (tokfile_int(o, "createdTime", 0, INT64_MAX, true, true, 0,
	        &ti->created_ms, bad) != 0 ||
	    tokfile_int(o, "lastFailureTime", 0, INT64_MAX, true, true, 0,
	        &ti->last_failure_ms, bad) != 0 ||
	    tokfile_int(o, "cooldownUntil", 0, INT64_MAX, true, true, 0,
	        &ti->cooldown_until_ms, bad) != 0 ||
	    tokfile_int(o, "lastUsedTime", 0, INT64_MAX, true, true, 0,
	        &ti->last_used_ms, bad) != 0)
		return WP_EPARSE;
	if (tokfile_int(o, "remainingQueries", INT32_MIN, INT32_MAX, true,
	        false, -1, &x, bad) != 0)
		return WP_EPARSE;
	ti->remaining = (int32_t)x;
	if (tokfile_int(o, "heavyremainingQueries", INT32_MIN, INT32_MAX, true,
	        false, -1, &x, bad) != 0)
		return WP_EPARSE;
	ti->heavy_remaining = (int32_t)x;
	if (tokfile_int(
	        o, "failedCount", 0, UINT32_MAX, true, false, 0, &x, bad) != 0)
		return WP_EPARSE;
	ti->failed_count = (uint32_t)x;
	bad->field = "status";
	st = TOK_ST_ACTIVE; /* old files may not say */
	if ((v = json_object_get(o, "status")) != NULL &&
	    (!json_is_string(v) ||
	        tok_status_parse(json_string_value(v), &st) != 0)) {
		(void)snprintf(bad->why, sizeof(bad->why),
		    "must be \"active\", \"cooling\", \"expired\" or "
		    "\"disabled\"");
		return WP_EPARSE;
	}
	ti->status = (uint8_t)st;
	if (tokfile_str(o, "lastFailureReason", ti->last_failure_reason,
	        sizeof(ti->last_failure_reason), true, bad) != 0 ||
	    tokfile_str(o, "note", ti->note, sizeof(ti->note), false, bad) !=
	        0 ||
	    tokfile_tags(o, ti, bad) != 0)
		return WP_EPARSE;
	return 0;
}

/*
 * The keys of o other than known[0..n) as the text of a JSON object, in
 * *textp (malloc'ed; NULL when there are none). Returns 0 or WP_ENOMEM.
 */
static int
tokfile_extras(json_t *o, const char *const *known, size_t n, char **textp)
{
	json_t *x = NULL, *v;
	const char *key;
	size_t i;
	int rc = 0;

	*textp = NULL;
	json_object_foreach(o, key, v)
	{
		for (i = 0; i < n && strcmp(key, known[i]) != 0; i++)
			;
		if (i < n)
			continue;
		if ((x == NULL && (x = json_object()) == NULL) ||
		    json_object_set(x, key, v) != 0) {
			rc = WP_ENOMEM;
			goto out;
		}
	}
	if (x != NULL && (*textp = json_dumps(x, JSON_COMPACT)) == NULL)
		rc = WP_ENOMEM;
out:
	json_decref(x);
	return rc;
}

/* One token's object o into f: its fields, and its keys we do not know. */
static int
tokfile_add_json(
    struct tokfile *f, const char *token, json_t *o, enum tok_type type)
{
	struct tokfile_bad bad;
	struct tok_info ti;
	char *extra = NULL;
	int rc;

	if (tokfile_info(token, o, type, &ti, &bad) != 0)
		return WP_EPARSE;
	if ((rc = tokfile_extras(o, tokfile_key_name, TOKFILE_NKEYS, &extra)) ==
	    0)
		rc = tokfile_add(f, &ti, extra);
	free(extra);
	explicit_bzero(&ti, sizeof(ti)); /* a token */
	return rc;
}

/* ---- reading: the scanner ---- */

struct tokfile_scan {
	const char *p, *end;
	struct tokfile *f;
	struct buf top; /* unknown top-level members, as "{...}" text */
	char tok[TOK_LEN_MAX + 1];
	char key[TOKFILE_KEY_MAX];
};

static void
tokfile_ws(struct tokfile_scan *s)
{
	while (s->p < s->end &&
	    (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

/* Past blanks, the character c. */
static bool
tokfile_eat(struct tokfile_scan *s, char c)
{
	tokfile_ws(s);
	if (s->p == s->end || *s->p != c)
		return false;
	s->p++;
	return true;
}

static bool
tokfile_null(struct tokfile_scan *s)
{
	if (s->end - s->p < 4 || memcmp(s->p, "null", 4) != 0)
		return false;
	s->p += 4;
	return true;
}

/*
 * The string at s->p into dst (size bytes with the NUL). Returns 0, or -1
 * when it does not fit, holds an escape (jansson decodes those) or is not
 * a string jansson takes (a control character, bad UTF-8).
 */
static int
tokfile_str_scan(struct tokfile_scan *s, char *dst, size_t size)
{
	const unsigned char *p = (const unsigned char *)s->p + 1, *q;
	const unsigned char *end = (const unsigned char *)s->end;
	size_t k;

	if (s->p == s->end || *s->p != '"')
		return -1;
	for (q = p; q < end && *q != '"'; q += k) {
		if (*q - 0x20u < 0x60u && *q != '\\')
			k = 1; /* printable ASCII */
		else if (*q < 0x80 ||
		    (k = util_utf8_seq(q, (size_t)(end - q))) == 0)
			return -1; /* a backslash, a control char, bad UTF-8 */
	}
	if (q == end || (size_t)(q - p) >= size)
		return -1;
	memcpy(dst, p, (size_t)(q - p));
	dst[q - p] = '\0';
	s->p = (const char *)(q + 1);
	return 0;
}

/* A JSON integer (no fraction or exponent) that fits an int64_t. */
static int
tokfile_num_scan(struct tokfile_scan *s, int64_t *out)
{
	const char *p = s->p;
	uint64_t v = 0;
	unsigned digits = 0;
	bool neg = false;

	if (p < s->end && *p == '-') {
		neg = true;
		p++;
	}
	if (p < s->end && *p == '0') {
		p++;
		digits = 1;
	} else {
		for (; p < s->end && *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 19)
				v = v * 10 + (uint64_t)(*p - '0');
	}
	if (digits == 0 || digits > 19 || v > (uint64_t)INT64_MAX + neg ||
	    (p < s->end &&
	        (*p == '.' || *p == 'e' || *p == 'E' ||
	            (*p >= '0' && *p <= '9'))))
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	s->p = p;
	return 0;
}

/*
 * An integer field as tokfile_int takes it: null (dflt), an integer, or
 * with str_ok digits in a string; in [min, max].
 */
static int
tokfile_int_scan(struct tokfile_scan *s, int64_t min, int64_t max, bool str_ok,
    int64_t dflt, int64_t *out)
{
	char digits[32];
	int64_t x;

	if (tokfile_null(s)) {
		*out = dflt;
		return 0;
	}
	if (s->p < s->end && *s->p == '"') {
		if (!str_ok ||
		    tokfile_str_scan(s, digits, sizeof(digits)) != 0 ||
		    util_parse_i64(digits, min, max, &x) != 0)
			return -1;
	} else if (tokfile_num_scan(s, &x) != 0) {
		return -1;
	}
	if (x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

static int
tokfile_tags_scan(struct tokfile_scan *s, struct tok_info *ti)
{
	ti->ntags = 0;
	if (tokfile_null(s))
		return 0;
	if (!tokfile_eat(s, '['))
		return -1;
	if (tokfile_eat(s, ']'))
		return 0;
	do {
		tokfile_ws(s);
		if (ti->ntags == TOK_TAGS_MAX ||
		    tokfile_str_scan(
		        s, ti->tags[ti->ntags], sizeof(ti->tags[0])) != 0)
			return -1;
		ti->ntags++;
	} while (tokfile_eat(s, ','));
	return tokfile_eat(s, ']') ? 0 : -1;
}

/* The value of field k into ti, as tokfile_info would read it. */
static int
tokfile_field_scan(
    struct tokfile_scan *s, enum tokfile_key k, struct tok_info *ti)
{
	enum tok_status st;
	char word[16];
	int64_t x = 0;
	int rc = -1;

	switch (k) {
	case TOKFILE_K_CREATED:
		return tokfile_int_scan(
		    s, 0, INT64_MAX, true, 0, &ti->created_ms);
	case TOKFILE_K_FAIL_TIME:
		return tokfile_int_scan(
		    s, 0, INT64_MAX, true, 0, &ti->last_failure_ms);
	case TOKFILE_K_COOLDOWN:
		return tokfile_int_scan(
		    s, 0, INT64_MAX, true, 0, &ti->cooldown_until_ms);
	case TOKFILE_K_USED:
		return tokfile_int_scan(
		    s, 0, INT64_MAX, true, 0, &ti->last_used_ms);
	case TOKFILE_K_REMAINING:
		rc = tokfile_int_scan(s, INT32_MIN, INT32_MAX, false, -1, &x);
		ti->remaining = (int32_t)x;
		break;
	case TOKFILE_K_HEAVY:
		rc = tokfile_int_scan(s, INT32_MIN, INT32_MAX, false, -1, &x);
		ti->heavy_remaining = (int32_t)x;
		break;
	case TOKFILE_K_FAILED:
		rc = tokfile_int_scan(s, 0, UINT32_MAX, false, 0, &x);
		ti->failed_count = (uint32_t)x;
		break;
	case TOKFILE_K_STATUS:
		if (tokfile_str_scan(s, word, sizeof(word)) != 0 ||
		    tok_status_parse(word, &st) != 0)
			return -1;
		ti->status = (uint8_t)st;
		return 0;
	case TOKFILE_K_FAIL_REASON:
		return tokfile_null(s)
		    ? 0
		    : tokfile_str_scan(s, ti->last_failure_reason,
		          sizeof(ti->last_failure_reason));
	case TOKFILE_K_NOTE:
		return tokfile_null(s)
		    ? 0
		    : tokfile_str_scan(s, ti->note, sizeof(ti->note));
	case TOKFILE_K_TAGS:
		return tokfile_tags_scan(s, ti);
	case TOKFILE_NKEYS:
		break;
	}
	return rc;
}

/*
 * The key at s->p: which field it names, or TOKFILE_NKEYS. Files keep the
 * order we write, so the one after prev is tried first, as it stands.
 */
static unsigned
tokfile_key_scan(struct tokfile_scan *s, unsigned prev)
{
	unsigned k = (prev + 1) % TOKFILE_NKEYS;
	size_t n = strlen(tokfile_key_name[k]);

	if ((size_t)(s->end - s->p) > n + 1 && s->p[0] == '"' &&
	    memcmp(s->p + 1, tokfile_key_name[k], n) == 0 &&
	    s->p[n + 1] == '"') {
		s->p += n + 2;
		return k;
	}
	if (tokfile_str_scan(s, s->key, sizeof(s->key)) != 0)
		return TOKFILE_NKEYS;
	for (k = 0; k < TOKFILE_NKEYS; k++)
		if (strcmp(s->key, tokfile_key_name[k]) == 0)
			break;
	return k;
}

/*
 * The object of token s->tok into ti, with tokfile_info's defaults.
 * Returns 0, or -1 for anything jansson should read: a key we do not
 * know, a value not of the usual kind, broken JSON.
 */
static int
tokfile_entry_scan(
    struct tokfile_scan *s, enum tok_type type, struct tok_info *ti)
{
	unsigned seen = 0, k = TOKFILE_NKEYS - 1;

	/* What tokfile_add reads; not the whole struct, 1.3 KB a token. */
	memcpy(ti->token, s->tok, strlen(s->tok) + 1);
	ti->note[0] = ti->last_failure_reason[0] = '\0';
	ti->ntags = 0;
	ti->type = (uint8_t)type;
	ti->status = TOK_ST_ACTIVE;
	ti->remaining = ti->heavy_remaining = -1;
	ti->failed_count = 0;
	ti->created_ms = ti->last_failure_ms = 0;
	ti->last_used_ms = ti->cooldown_until_ms = 0;
	if (!tokfile_eat(s, '{'))
		return -1;
	if (tokfile_eat(s, '}'))
		return 0;
	do {
		tokfile_ws(s);
		if ((k = tokfile_key_scan(s, k)) == TOKFILE_NKEYS ||
		    (seen & 1u << k) != 0 || !tokfile_eat(s, ':'))
			return -1;
		seen |= 1u << k;
		tokfile_ws(s);
		if (tokfile_field_scan(s, (enum tokfile_key)k, ti) != 0)
			return -1;
	} while (tokfile_eat(s, ','));
	return tokfile_eat(s, '}') ? 0 : -1;
}

static bool
tokfile_scalar_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
}

/*
 * Move past one value without reading it: strings, brackets (at most
 * TOKFILE_DEPTH_MAX deep) and the characters of numbers and words. It
 * only finds where a valid value ends; jansson judges the value after.
 */
static int
tokfile_skip(struct tokfile_scan *s)
{
	unsigned depth = 0;
	char c;

	do {
		tokfile_ws(s);
		if (s->p == s->end)
			return -1;
		c = *s->p++;
		if (c == '"') {
			for (; s->p < s->end && *s->p != '"'; s->p++)
				if (*s->p == '\\' && ++s->p == s->end)
					return -1;
			if (s->p == s->end)
				return -1;
			s->p++;
		} else if (c == '{' || c == '[') {
			if (++depth > TOKFILE_DEPTH_MAX)
				return -1;
		} else if (c == '}' || c == ']' || c == ',' || c == ':') {
			if (depth == 0)
				return -1;
			depth -= c == '}' || c == ']';
		} else if (tokfile_scalar_char(c)) {
			while (s->p < s->end && tokfile_scalar_char(*s->p))
				s->p++;
		} else {
			return -1;
		}
	} while (depth > 0);
	return 0;
}

/* The object of token s->tok through jansson, as the whole file would go. */
static int
tokfile_entry_slow(struct tokfile_scan *s, enum tok_type type,
    struct tok_info *ti, char **extra)
{
	const char *start = s->p;
	struct tokfile_bad bad;
	json_error_t jerr;
	json_t *o;
	int rc;

	*extra = NULL;
	if (tokfile_skip(s) != 0 ||
	    (o = json_loadb(start, (size_t)(s->p - start),
	         JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return -1;
	rc = tokfile_info(s->tok, o, type, ti, &bad);
	if (rc == 0)
		rc = tokfile_extras(o, tokfile_key_name, TOKFILE_NKEYS, extra);
	json_decref(o);
	return rc;
}

/* One "token": {...} of a map into s->f. */
static int
tokfile_token_scan(
    struct tokfile_scan *s, enum tok_type type, struct tok_info *ti)
{
	const char *start;
	char *extra = NULL;
	int rc;

	tokfile_ws(s);
	if (tokfile_str_scan(s, s->tok, sizeof(s->tok)) != 0 ||
	    tok_validate(s->tok) != 0 || !tokfile_eat(s, ':'))
		return -1;
	tokfile_ws(s);
	start = s->p;
	if (tokfile_entry_scan(s, type, ti) != 0) {
		s->p = start;
		if (tokfile_entry_slow(s, type, ti, &extra) != 0)
			return -1;
	}
	/* WP_EEXIST: a token twice, in one map or in both. */
	rc = tokfile_add(s->f, ti, extra);
	free(extra);
	return rc != 0 ? -1 : 0;
}

static int
tokfile_map_scan(struct tokfile_scan *s, enum tok_type type)
{
	struct tok_info ti;
	int rc;

	if (!tokfile_eat(s, '{'))
		return -1;
	if (tokfile_eat(s, '}'))
		return 0;
	do
		rc = tokfile_token_scan(s, type, &ti);
	while (rc == 0 && tokfile_eat(s, ','));
	explicit_bzero(&ti, sizeof(ti)); /* a token */
	return rc == 0 && tokfile_eat(s, '}') ? 0 : -1;
}

/* A top-level member we do not know: its key's text, then its value's. */
static int
tokfile_top_keep(struct tokfile_scan *s, const char *key, size_t keylen)
{
	const char *v = s->p;

	if (tokfile_skip(s) != 0 ||
	    buf_append(&s->top, s->top.len == 0 ? "{" : ",", 1) != 0 ||
	    buf_append(&s->top, key, keylen) != 0 ||
	    buf_append(&s->top, ":", 1) != 0 ||
	    buf_append(&s->top, v, (size_t)(s->p - v)) != 0)
		return -1;
	return 0;
}

/* The top-level members kept, through jansson, into f->top. */
static int
tokfile_top_end(struct tokfile_scan *s)
{
	json_error_t jerr;
	json_t *o;
	char *text = NULL;
	int rc;

	if (s->top.len == 0)
		return 0;
	if (buf_append(&s->top, "}", 1) != 0 ||
	    (o = json_loadb(
	         s->top.p, s->top.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return -1;
	rc = tokfile_extras(o, NULL, 0, &text);
	json_decref(o);
	if (rc == 0 && text != NULL)
		rc = tokfile_strs_add(s->f, text, strlen(text), &s->f->top);
	free(text);
	return rc;
}

static int
tokfile_top_scan(struct tokfile_scan *s)
{
	bool seen[TOK_NTYPES] = { false };
	const char *key;
	size_t keylen;
	unsigned i;
	int rc;

	if (!tokfile_eat(s, '{'))
		return -1;
	if (!tokfile_eat(s, '}')) {
		do {
			tokfile_ws(s);
			key = s->p;
			if (tokfile_str_scan(s, s->key, sizeof(s->key)) != 0)
				return -1;
			keylen = (size_t)(s->p - key);
			if (!tokfile_eat(s, ':'))
				return -1;
			for (i = 0; i < TOK_NTYPES &&
			     strcmp(s->key, tok_type_name[i]) != 0;
			     i++)
				;
			tokfile_ws(s);
			if (i == TOK_NTYPES)
				rc = tokfile_top_keep(s, key, keylen);
			else if (seen[i])
				rc = -1; /* jansson: a duplicate key */
			else
				rc = tokfile_map_scan(s, (enum tok_type)i);
			if (rc != 0)
				return -1;
			if (i < TOK_NTYPES)
				seen[i] = true;
		} while (tokfile_eat(s, ','));
		if (!tokfile_eat(s, '}'))
			return -1;
	}
	tokfile_ws(s);
	return s->p == s->end ? tokfile_top_end(s) : -1;
}

/*
 * The whole text the fast way into a new *fp. Returns 0, or -1 when
 * jansson must read it (and have the last word on what is wrong).
 */
static int
tokfile_scan(
    const char *text, size_t len, struct tokfile **fp, _Atomic uint32_t *seen)
{
	struct tokfile_scan s;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.p = text;
	s.end = text + len;
	buf_init(&s.top, TOKFILE_MAX_BYTES);
	if ((s.f = tokfile_new(len / TOKFILE_TOKEN_BYTES, len + 1)) != NULL) {
		s.f->seen = seen;
		if ((rc = tokfile_top_scan(&s)) == 0) {
			s.f->seen = NULL;
			*fp = s.f;
			s.f = NULL;
		}
	}
	tokfile_free(s.f);
	buf_fini(&s.top);
	explicit_bzero(&s, sizeof(s)); /* a token */
	return rc != 0 ? -1 : 0;
}

/* Offset of "s" (quoted) in buf at or after from, or SIZE_MAX. */
static size_t
tokfile_find(const char *buf, size_t len, size_t from, const char *s)
{
	char needle[TOK_LEN_MAX + 8];
	const char *p;
	int n;

	n = snprintf(needle, sizeof(needle), "\"%s\"", s);
	if (n < 0 || (size_t)n >= sizeof(needle) || from >= len)
		return SIZE_MAX;
	p = memmem(buf + from, len - from, needle, (size_t)n);
	return p == NULL ? SIZE_MAX : (size_t)(p - buf);
}

/*
 * Where a schema problem is, as well as text can tell: the field's key
 * after the token's key after the map's key. Falls back outward.
 */
static void
tokfile_where(const char *buf, size_t len, const char *map, const char *token,
    const char *field, int *line, int *col)
{
	size_t off = 0, o, i, bol = 0;

	if ((o = tokfile_find(buf, len, 0, map)) != SIZE_MAX)
		off = o;
	if (token != NULL &&
	    (o = tokfile_find(buf, len, off, token)) != SIZE_MAX)
		off = o;
	if (field != NULL &&
	    (o = tokfile_find(buf, len, off, field)) != SIZE_MAX)
		off = o;
	*line = 1;
	for (i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			bol = i + 1;
		}
	}
	*col = (int)(off - bol) + 1;
}

/* Check the schema of a parsed document; err gets "path:line:col: ...". */
static int
tokfile_check(json_t *doc, const char *path, const char *buf, size_t len,
    char *err, size_t errlen)
{
	struct tokfile_bad bad;
	struct tok_info ti;
	char fp[LOG_TOK_LEN];
	const char *token;
	json_t *map, *v;
	int line, col;
	unsigned i;

	for (i = 0; i < TOK_NTYPES; i++) {
		map = json_object_get(doc, tok_type_name[i]);
		if (map == NULL)
			continue;
		if (!json_is_object(map)) {
			tokfile_where(buf, len, tok_type_name[i], NULL, NULL,
			    &line, &col);
			(void)snprintf(err, errlen,
			    "%s:%d:%d: %s: must be an object", path, line, col,
			    tok_type_name[i]);
			return WP_EPARSE;
		}
		json_object_foreach(map, token, v)
		{
			if (i == TOK_SUPER &&
			    json_object_get(
			        json_object_get(doc, tok_type_name[TOK_NORMAL]),
			        token) != NULL) {
				tokfile_where(buf, len, tok_type_name[i], token,
				    NULL, &line, &col);
				(void)log_tok(token, fp, sizeof(fp));
				(void)snprintf(err, errlen,
				    "%s:%d:%d: token %s is in both %s and %s",
				    path, line, col, fp,
				    tok_type_name[TOK_NORMAL],
				    tok_type_name[TOK_SUPER]);
				return WP_EPARSE;
			}
			if (tokfile_info(
			        token, v, (enum tok_type)i, &ti, &bad) == 0)
				continue;
			tokfile_where(buf, len, tok_type_name[i], token,
			    bad.field, &line, &col);
			(void)log_tok(token, fp, sizeof(fp));
			(void)snprintf(err, errlen,
			    "%s:%d:%d: %s: token %s: %s%s%s", path, line, col,
			    tok_type_name[i], fp,
			    bad.field != NULL ? bad.field : "",
			    bad.field != NULL ? ": " : "", bad.why);
			return WP_EPARSE;
		}
	}
	return 0;
}

/* Read all of fd (at most max bytes) into a fresh buffer. */
static int
tokfile_slurp(int fd, size_t max, char **bufp, size_t *lenp)
{
	size_t len = 0, size = 65536;
	char *buf = NULL, *nbuf;
	struct stat st;
	ssize_t n;
	int rc;

	/* The size it has now: one buffer, no copies as it grows. */
	if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < max)
		size = (size_t)st.st_size + 1;
	if ((buf = malloc(size)) == NULL) {
		rc = WP_ENOMEM;
		goto out;
	}
	for (;;) {
		if (len == size) {
			if (size > max) {
				rc = WP_ETOOBIG;
				goto out;
			}
			if ((nbuf = realloc(buf, size * 2)) == NULL) {
				rc = WP_ENOMEM;
				goto out;
			}
			buf = nbuf;
			size *= 2;
		}
		n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = WP_ESYS;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		rc = WP_ETOOBIG;
		goto out;
	}
	*bufp = buf; /* the caller owns it now */
	*lenp = len;
	buf = NULL;
	rc = 0;
out:
	if (buf != NULL) {
		explicit_bzero(buf, len); /* tokens */
		free(buf);
	}
	return rc;
}

/* A document jansson read and tokfile_check passed, as a new *fp. */
static int
tokfile_from_doc(json_t *doc, size_t strs_hint, struct tokfile **fp)
{
	struct tokfile *f;
	const char *token;
	char *top = NULL;
	json_t *v;
	unsigned i;
	int rc = 0;

	if ((f = tokfile_new(json_object_size(json_object_get(
	                         doc, tok_type_name[TOK_NORMAL])) +
	             json_object_size(
	                 json_object_get(doc, tok_type_name[TOK_SUPER])),
	         strs_hint)) == NULL)
		return WP_ENOMEM;
	for (i = 0; i < TOK_NTYPES && rc == 0; i++) {
		json_object_foreach(
		    json_object_get(doc, tok_type_name[i]), token, v)
		{
			if ((rc = tokfile_add_json(
			         f, token, v, (enum tok_type)i)) != 0)
				break;
		}
	}
	if (rc == 0)
		rc = tokfile_extras(doc, tok_type_name, TOK_NTYPES, &top);
	if (rc == 0 && top != NULL)
		rc = tokfile_strs_add(f, top, strlen(top), &f->top);
	free(top);
	if (rc != 0) {
		tokfile_free(f);
		return rc;
	}
	*fp = f;
	return 0;
}

/* The whole text through jansson: what every error message comes from. */
static int
tokfile_parse_slow(const char *path, const char *text, size_t len,
    struct tokfile **fp, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc;
	char *near;
	int rc;

	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		/* "near '<text>'" may quote a token: never show it. */
		if ((near = strstr(jerr.text, " near '")) != NULL)
			*near = '\0';
		(void)snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line,
		    jerr.column, jerr.text);
		return WP_EPARSE;
	}
	if (!json_is_object(doc)) {
		rc = WP_EPARSE;
		(void)snprintf(err, errlen,
		    "%s:1:1: the top level must be an object with "
		    "\"ssoNormal\" and \"ssoSuper\"",
		    path);
	} else if ((rc = tokfile_check(doc, path, text, len, err, errlen)) ==
	    0) {
		rc = tokfile_from_doc(doc, len + 1, fp);
	}
	json_decref(doc);
	return rc;
}

/* tokfile_parse, with tokfile_read_seen's counter. */
static int
tokfile_parse_seen(const char *path, const char *text, size_t len,
    unsigned flags, struct tokfile **fp, char *err, size_t errlen,
    _Atomic uint32_t *seen)
{
	int rc;

	*fp = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((flags & TOKFILE_SLOW) == 0 &&
	    tokfile_scan(text, len, fp, seen) == 0)
		return 0;
	if ((flags & TOKFILE_FAST) != 0) {
		(void)snprintf(err, errlen, "%s: not for the scanner", path);
		return WP_EPARSE;
	}
	rc = tokfile_parse_slow(path, text, len, fp, err, errlen);
	if (rc == WP_ENOMEM && errlen > 0 && err[0] == '\0')
		(void)snprintf(err, errlen, "%s: out of memory", path);
	return rc;
}

int
tokfile_parse(const char *path, const char *text, size_t len, unsigned flags,
    struct tokfile **fp, char *err, size_t errlen)
{
	return tokfile_parse_seen(
	    path, text, len, flags, fp, err, errlen, NULL);
}

int
tokfile_read(const char *path, struct tokfile **fp, char *err, size_t errlen)
{
	return tokfile_read_seen(path, fp, err, errlen, NULL);
}

int
tokfile_read_seen(const char *path, struct tokfile **fp, char *err,
    size_t errlen, _Atomic uint32_t *seen)
{
	char *buf = NULL;
	size_t len = 0, skip = 0;
	int fd = -1, rc;

	*fp = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT) {
			rc = WP_ESYS;
			(void)snprintf(
			    err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		/* No file yet: an empty pool. */
		rc = (*fp = tokfile_new(0, 0)) == NULL ? WP_ENOMEM : 0;
		goto out;
	}
	rc = tokfile_slurp(fd, TOKFILE_MAX_BYTES, &buf, &len);
	if (rc == WP_ESYS)
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (rc == WP_ETOOBIG) {
		rc = WP_EPARSE;
		(void)snprintf(err, errlen, "%s: larger than %u bytes", path,
		    TOKFILE_MAX_BYTES);
	}
	if (rc != 0)
		goto out;
	/* Editors on Windows add a byte-order mark. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		skip = 3;
	rc = tokfile_parse_seen(
	    path, buf + skip, len - skip, 0, fp, err, errlen, seen);
out:
	if (rc == WP_ENOMEM && errlen > 0 && err[0] == '\0')
		(void)snprintf(err, errlen, "%s: out of memory", path);
	if (buf != NULL) {
		explicit_bzero(buf, len); /* tokens */
		free(buf);
	}
	close_fd(&fd);
	return rc;
}

/* ---- into the table ---- */

/* The entries of a document in load order, for tok_add_all. */
struct tokfile_src {
	const struct tokfile *f;
	const struct tokfile_ent *last; /* the one given last */
	unsigned type;
	size_t i;
};

static int
tokfile_src_next(void *arg, struct tok_info *ti)
{
	struct tokfile_src *s = arg;

	while ((s->last = tokfile_next(s->f, (enum tok_type)s->type, &s->i)) ==
	    NULL) {
		if (++s->type == TOK_NTYPES)
			return WP_ENOENT;
		s->i = 0;
	}
	tokfile_get(s->f, s->last, ti);
	return 0;
}

int
tokfile_load(
    struct tok_table *t, const struct tokfile *f, char *err, size_t errlen)
{
	struct tokfile_src src = { .f = f };
	char fp[LOG_TOK_LEN];
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	rc = tok_add_all(t, tokfile_src_next, &src);
	if (rc == WP_ETOOBIG) {
		(void)snprintf(err, errlen,
		    "%zu tokens, more than grok.max_tokens (%u)",
		    tokfile_count(f), tok_table_cap(t));
	} else if (rc != 0 && src.last != NULL) {
		(void)log_tok(f->strs + src.last->token, fp, sizeof(fp));
		(void)snprintf(err, errlen, "%s: token %s: %s",
		    tok_type_name[src.last->type], fp, wp_strerror(rc));
	} else if (rc != 0) {
		(void)snprintf(err, errlen, "%s", wp_strerror(rc));
	}
	return rc;
}

static bool
tokfile_tags_eq(const struct tok_info *a, const struct tok_info *b)
{
	uint32_t i;

	if (a->ntags != b->ntags)
		return false;
	for (i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i], b->tags[i]) != 0)
			return false;
	return true;
}

/*
 * Into n (the live state), every field that the operator changed between
 * b (NULL: not in base, so all of them) and e. Returns whether n changed.
 */
static bool
tokfile_take(
    struct tok_info *n, const struct tok_info *b, const struct tok_info *e)
{
	bool ch = false;

#define TOKFILE_TAKE(f)                                                        \
	do {                                                                   \
		if ((b == NULL || b->f != e->f) && n->f != e->f) {             \
			n->f = e->f;                                           \
			ch = true;                                             \
		}                                                              \
	} while (0)
#define TOKFILE_TAKE_STR(f)                                                    \
	do {                                                                   \
		if ((b == NULL || strcmp(b->f, e->f) != 0) &&                  \
		    strcmp(n->f, e->f) != 0) {                                 \
			memcpy(n->f, e->f, sizeof(n->f));                      \
			ch = true;                                             \
		}                                                              \
	} while (0)

	TOKFILE_TAKE(type);
	TOKFILE_TAKE(status);
	TOKFILE_TAKE(remaining);
	TOKFILE_TAKE(heavy_remaining);
	TOKFILE_TAKE(failed_count);
	TOKFILE_TAKE(created_ms);
	TOKFILE_TAKE(last_failure_ms);
	TOKFILE_TAKE(cooldown_until_ms);
	TOKFILE_TAKE_STR(last_failure_reason);
	TOKFILE_TAKE_STR(note);
	if ((b == NULL || !tokfile_tags_eq(b, e)) && !tokfile_tags_eq(n, e)) {
		memcpy(n->tags, e->tags, sizeof(n->tags));
		n->ntags = e->ntags;
		ch = true;
	}
#undef TOKFILE_TAKE
#undef TOKFILE_TAKE_STR
	return ch;
}

/* Merge one token of the edited file. */
static int
tokfile_merge_one(struct tok_table *t, const struct tokfile *base,
    const struct tokfile *edited, const struct tokfile_ent *ee, bool dry,
    unsigned *added, unsigned *changed)
{
	struct tok_info eti, bti, lti, nti;
	const struct tokfile_ent *be;
	uint32_t row, gen;
	int rc;

	tokfile_get(edited, ee, &eti);
	if ((be = tokfile_lookup(base, eti.token)) != NULL)
		tokfile_get(base, be, &bti);
	if (tok_find(t, eti.token, &row, &gen) != 0) {
		/* Deleted live since base: stays deleted unless edited. */
		if (be != NULL) {
			nti = bti;
			if (!tokfile_take(&nti, NULL, &eti))
				return 0;
		}
		if (dry || (rc = tok_add(t, &eti, &row)) == 0)
			(*added)++;
		return dry ? 0 : rc;
	}
	if (dry)
		return 0;
	if ((rc = tok_get(t, row, gen, &lti)) != 0)
		return rc == WP_ENOENT ? 0 : rc; /* deleted meanwhile */
	nti = lti;
	if (!tokfile_take(&nti, be != NULL ? &bti : NULL, &eti))
		return 0;
	if ((rc = tok_set(t, row, gen, &nti)) == 0)
		(*changed)++;
	return rc == WP_ENOENT ? 0 : rc;
}

/*
 * One pass over base (removals) and edited (additions, changes); dry only
 * counts. Returns the first error; the other tokens are merged anyway.
 */
static int
tokfile_merge_pass(struct tok_table *t, const struct tokfile *base,
    const struct tokfile *edited, bool dry, unsigned *na, unsigned *nr,
    unsigned *nc)
{
	const struct tokfile_ent *e;
	uint32_t row, gen;
	const char *token;
	size_t j;
	unsigned i;
	int rc, first = 0;

	/* Removals first: they free rows for the additions. */
	for (i = 0; i < TOK_NTYPES; i++) {
		for (j = 0;
		     (e = tokfile_next(base, (enum tok_type)i, &j)) != NULL;) {
			token = base->strs + e->token;
			if (tokfile_lookup(edited, token) != NULL)
				continue;
			if (dry ? tok_find(t, token, &row, &gen) == 0
			        : tok_remove(t, token) == 0)
				(*nr)++;
		}
	}
	for (i = 0; i < TOK_NTYPES; i++) {
		for (j = 0; (e = tokfile_next(edited, (enum tok_type)i, &j)) !=
		     NULL;) {
			rc = tokfile_merge_one(t, base, edited, e, dry, na, nc);
			if (rc != 0 && first == 0)
				first = rc;
		}
	}
	return first;
}

int
tokfile_merge(struct tok_table *t, const struct tokfile *base,
    const struct tokfile *edited, unsigned *added, unsigned *removed,
    unsigned *changed)
{
	unsigned na = 0, nr = 0, nc = 0;
	int rc;

	/* A full table is found before anything changes. */
	if ((rc = tokfile_merge_pass(t, base, edited, true, &na, &nr, &nc)) !=
	    0)
		goto out;
	if ((uint64_t)tok_table_count(t) + na - nr > tok_table_cap(t)) {
		na = nr = 0;
		rc = WP_ETOOBIG;
		goto out;
	}
	na = nr = nc = 0;
	rc = tokfile_merge_pass(t, base, edited, false, &na, &nr, &nc);
out:
	if (added != NULL)
		*added = na;
	if (removed != NULL)
		*removed = nr;
	if (changed != NULL)
		*changed = nc;
	return rc;
}

/* ---- writing ---- */

/*
 * The text is printed here as json_dumps(JSON_INDENT(2)) of the document
 * would print it, byte for byte (the fuzz target compares them), so a
 * large pool never becomes a jansson tree: with 100,000 tokens that tree
 * took seconds to build and 230 MB the master then kept.
 */
#define TOKFILE_INDENT "\n        " /* a newline, then two spaces a level */

static int
tokfile_nl(struct buf *b, unsigned depth)
{
	return buf_append(b, TOKFILE_INDENT, 1 + 2 * depth);
}

static int
tokfile_key_put(struct buf *b, const char *key)
{
	int rc;

	if ((rc = buf_json_str(b, key, strlen(key))) != 0)
		return rc;
	return buf_append(b, ": ", 2);
}

/* A string; "" is null when empty_null. Not UTF-8: jansson refuses it. */
static int
tokfile_str_put(struct buf *b, const char *s, bool empty_null)
{
	const unsigned char *p = (const unsigned char *)s, *end;
	size_t k;

	if (empty_null && *s == '\0')
		return buf_append(b, "null", 4);
	for (end = p + strlen(s); p < end; p += k)
		if ((k = util_utf8_seq(p, (size_t)(end - p))) == 0)
			return WP_EINVAL;
	return buf_json_str(b, s, strlen(s));
}

static int
tokfile_time_put(struct buf *b, int64_t ms)
{
	if (ms <= 0)
		return buf_append(b, "null", 4);
	return buf_printf(b, "%lld", (long long)ms);
}

/*
 * The members of an object's text (tokfile_extras) at depth, each after
 * a comma: jansson's own dump of each value, its lines moved in.
 */
static int
tokfile_extras_put(struct buf *b, const char *text, unsigned depth)
{
	json_error_t jerr;
	json_t *x, *v;
	const char *key, *line, *nl;
	char *d;
	bool bad = false;

	if ((x = json_loads(text, 0, &jerr)) == NULL)
		return WP_ENOMEM; /* we wrote it: out of memory */
	json_object_foreach(x, key, v)
	{
		if (buf_append(b, ",", 1) != 0 || tokfile_nl(b, depth) != 0 ||
		    tokfile_key_put(b, key) != 0 ||
		    (d = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY)) ==
		        NULL) {
			bad = true;
			break;
		}
		for (line = d; !bad && (nl = strchr(line, '\n')) != NULL;
		     line = nl + 1)
			bad = buf_append(b, line, (size_t)(nl - line)) != 0 ||
			    tokfile_nl(b, depth) != 0;
		bad = bad || buf_puts(b, line) != 0;
		free(d);
		if (bad)
			break;
	}
	json_decref(x);
	return bad ? WP_ENOMEM : 0;
}

/* One token's "token": {...} at depth 2: the seed's keys, ours, extra's. */
static int
tokfile_entry_put(struct buf *b, const struct tok_info *ti, const char *extra)
{
	uint32_t i;

	if (tokfile_key_put(b, ti->token) != 0 ||
	    buf_printf(b,
	        "{\n      \"createdTime\": %lld,\n      \"remainingQueries\": "
	        "%d,\n      \"heavyremainingQueries\": %d,\n      \"status\": "
	        "\"%s\",\n      \"failedCount\": %u,\n      "
	        "\"lastFailureTime\": ",
	        (long long)ti->created_ms, ti->remaining, ti->heavy_remaining,
	        tok_status_name[ti->status], ti->failed_count) != 0 ||
	    tokfile_time_put(b, ti->last_failure_ms) != 0 ||
	    buf_puts(b, ",\n      \"lastFailureReason\": ") != 0 ||
	    tokfile_str_put(b, ti->last_failure_reason, true) != 0 ||
	    buf_puts(b, ",\n      \"tags\": [") != 0)
		return -1;
	for (i = 0; i < ti->ntags; i++)
		if ((i > 0 && buf_append(b, ",", 1) != 0) ||
		    tokfile_nl(b, 4) != 0 ||
		    tokfile_str_put(b, ti->tags[i], false) != 0)
			return -1;
	if ((ti->ntags > 0 && tokfile_nl(b, 3) != 0) ||
	    buf_puts(b, "],\n      \"note\": ") != 0 ||
	    tokfile_str_put(b, ti->note, false) != 0 ||
	    buf_puts(b, ",\n      \"cooldownUntil\": ") != 0 ||
	    /* 1 means "no end known": the same as none once read back. */
	    tokfile_time_put(b,
	        ti->cooldown_until_ms > 1 ? ti->cooldown_until_ms : 0) != 0 ||
	    buf_puts(b, ",\n      \"lastUsedTime\": ") != 0 ||
	    tokfile_time_put(b, ti->last_used_ms) != 0 ||
	    (extra != NULL && tokfile_extras_put(b, extra, 3) != 0) ||
	    tokfile_nl(b, 2) != 0 || buf_append(b, "}", 1) != 0)
		return -1;
	return 0;
}

/* ti as reading back what tokfile_entry_put made of it gives it. */
static void
tokfile_as_written(struct tok_info *ti)
{
	if (ti->last_failure_ms < 0)
		ti->last_failure_ms = 0;
	if (ti->cooldown_until_ms <= 1)
		ti->cooldown_until_ms = 0;
	if (ti->last_used_ms < 0)
		ti->last_used_ms = 0;
}

/* The tokens of one type as the members of its map, at depth 2. */
static int
tokfile_map_put(struct buf *b, struct tok_table *t, enum tok_type type,
    const struct tokfile *base, struct tokfile *nf)
{
	const struct tokfile_ent *be;
	const char *extra;
	struct tok_info ti;
	uint32_t iter = 0;
	bool first = true, bad = false;

	while (!bad && tok_next(t, &iter, &ti) == 0) {
		if (ti.type != type)
			continue;
		be = tokfile_lookup(base, ti.token);
		extra = be != NULL && be->extra != 0 ? base->strs + be->extra
		                                     : NULL;
		bad = (!first && buf_append(b, ",", 1) != 0) ||
		    tokfile_nl(b, 2) != 0 ||
		    tokfile_entry_put(b, &ti, extra) != 0;
		first = false;
		if (!bad && nf != NULL) {
			/* WP_EEXIST: moved to the other map as we went. */
			tokfile_as_written(&ti);
			bad = tokfile_add(nf, &ti, extra) != 0;
		}
	}
	explicit_bzero(&ti, sizeof(ti)); /* a token */
	return bad || (!first && tokfile_nl(b, 1) != 0) ? -1 : 0;
}

/*
 * The live table as token.json's text into b (no final newline), keeping
 * base's unknown keys (base may be NULL); with nf, what the text says
 * also goes into nf, the next base. Returns 0 or -1 (out of memory, past
 * TOKFILE_MAX_BYTES, a string that is not UTF-8).
 */
static int
tokfile_text(struct tok_table *t, const struct tokfile *base,
    struct tokfile *nf, struct buf *b)
{
	const char *top =
	    base != NULL && base->top != 0 ? base->strs + base->top : NULL;
	unsigned i;

	if (buf_append(b, "{", 1) != 0)
		return -1;
	for (i = 0; i < TOK_NTYPES; i++)
		if ((i > 0 && buf_append(b, ",", 1) != 0) ||
		    tokfile_nl(b, 1) != 0 ||
		    tokfile_key_put(b, tok_type_name[i]) != 0 ||
		    buf_append(b, "{", 1) != 0 ||
		    tokfile_map_put(b, t, (enum tok_type)i, base, nf) != 0 ||
		    buf_append(b, "}", 1) != 0)
			return -1;
	if (top != NULL &&
	    (tokfile_extras_put(b, top, 1) != 0 ||
	        (nf != NULL &&
	            tokfile_strs_add(nf, top, strlen(top), &nf->top) != 0)))
		return -1;
	return tokfile_nl(b, 0) != 0 || buf_append(b, "}", 1) != 0 ? -1 : 0;
}

/* mkdir -p of the folder dir, new levels mode 0700. */
static int
tokfile_mkdirs(char *dir)
{
	char *p;

	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			*p = '/';
			return WP_ESYS;
		}
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return WP_ESYS;
	return 0;
}

/* Write text to a new temp file next to path, then rename it over. */
static int
tokfile_replace(const char *path, const char *text, size_t len, bool *renamed)
{
	char *dir = NULL, *tmp = NULL, *slash;
	size_t plen = strlen(path);
	int fd = -1, dfd = -1, rc, saved;

	if ((dir = strdup(path)) == NULL || (tmp = malloc(plen + 16)) == NULL) {
		rc = WP_ENOMEM;
		goto out;
	}
	if ((slash = strrchr(dir, '/')) == NULL) {
		dir[0] = '.';
		dir[1] = '\0';
	} else if (slash == dir) {
		dir[1] = '\0';
	} else {
		*slash = '\0';
		if ((rc = tokfile_mkdirs(dir)) != 0)
			goto out;
	}
	(void)snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path); /* fits */
	/* mkostemp: O_CREAT | O_EXCL, mode 0600. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		rc = WP_ESYS;
		tmp[0] = '\0'; /* nothing to unlink */
		goto out;
	}
	if (fchmod(fd, 0600) != 0 || util_write_all(fd, text, len) != 0 ||
	    fsync(fd) != 0) {
		rc = WP_ESYS;
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc != 0 || rename(tmp, path) != 0) {
		rc = WP_ESYS;
		goto out;
	}
	tmp[0] = '\0'; /* renamed: nothing to unlink */
	*renamed = true;
	/* The rename is durable only once the folder is. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(dfd) != 0) {
		rc = WP_ESYS;
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	close_fd(&fd);
	close_fd(&dfd);
	if (tmp != NULL && tmp[0] != '\0' && rc != 0)
		(void)unlink(tmp); /* best effort: the old file is intact */
	free(tmp);
	free(dir);
	errno = saved;
	return rc;
}

int
tokfile_write(struct tok_table *t, const char *path, struct tokfile **basep)
{
	struct tokfile *nf = NULL;
	struct buf b;
	bool renamed = false;
	int rc, saved;

	buf_init(&b, TOKFILE_MAX_BYTES);
	if ((nf = tokfile_new(tok_table_count(t),
	         *basep != NULL ? (*basep)->strs_len : 0)) == NULL ||
	    tokfile_text(t, *basep, nf, &b) != 0 ||
	    buf_append(&b, "\n", 1) != 0) { /* files end with a newline */
		rc = WP_ENOMEM;
		goto out;
	}
	rc = tokfile_replace(path, b.p, b.len, &renamed);
	if (renamed) {
		/* The file is nf now, even if the folder's fsync failed. */
		tokfile_free(*basep);
		*basep = nf;
		nf = NULL;
	}
out:
	saved = errno;
	if (b.p != NULL)
		explicit_bzero(b.p, b.len); /* tokens */
	buf_fini(&b);
	tokfile_free(nf);
	errno = saved;
	return rc;
}

char *
tokfile_dump(struct tok_table *t)
{
	struct buf b;

	buf_init(&b, TOKFILE_MAX_BYTES);
	if (tokfile_text(t, NULL, NULL, &b) == 0)
		return buf_take(&b);
	if (b.p != NULL)
		explicit_bzero(b.p, b.len); /* tokens */
	buf_fini(&b);
	return NULL;
}
