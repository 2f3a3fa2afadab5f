/*
 * token.json (tokfile.h): reading, checking, loading into the token
 * table, three-way merging of the operator's edits, and atomic writing.
 * Master only; takes no lock itself (the tok_* calls take the table's).
 *
 * A struct tokfile is the jansson document last read or written. It
 * always has "ssoNormal" and "ssoSuper" objects; every other key, at the
 * top and inside each token's object, is kept as it was and written back.
 * Tokens never reach an error message: log_tok() fingerprints do.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "tok.h"
#include "tokfile.h"
#include "util.h"

#define TOKFILE_MAX_BYTES (256u << 20) /* ~400k tokens: far past any cap */

struct tokfile {
	json_t *doc;
};

/* The fields we read and write; any other key of a token is kept. */
static const char *const tokfile_known[] = {
	"createdTime",
	"remainingQueries",
	"heavyremainingQueries",
	"status",
	"failedCount",
	"lastFailureTime",
	"lastFailureReason",
	"tags",
	"note",
	"cooldownUntil",
	"lastUsedTime",
};

/* What is wrong with one token's entry. */
struct tokfile_bad {
	const char *field; /* NULL: the entry itself */
	char why[96];
};

static struct tokfile *
tokfile_new(json_t *doc)
{
	struct tokfile *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->doc = doc;
	return f;
}

void
tokfile_free(struct tokfile *f)
{
	if (f == NULL)
		return;
	json_decref(f->doc);
	free(f);
}

static json_t *
tokfile_map(const struct tokfile *f, enum tok_type type)
{
	if (f == NULL)
		return NULL;
	return json_object_get(f->doc, tok_type_name[type]);
}

size_t
tokfile_count(const struct tokfile *f)
{
	unsigned i;
	size_t n = 0;

	for (i = 0; i < TOK_NTYPES; i++)
		n += json_object_size(tokfile_map(f, (enum tok_type)i));
	return n;
}

/* A token's entry in either map, and which. */
static json_t *
tokfile_lookup(const struct tokfile *f, const char *token, enum tok_type *type)
{
	json_t *v;
	unsigned i;

	for (i = 0; i < TOK_NTYPES; i++) {
		v = json_object_get(tokfile_map(f, (enum tok_type)i), token);
		if (v != NULL) {
			if (type != NULL)
				*type = (enum tok_type)i;
			return v;
		}
	}
	return NULL;
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

static int
tokfile_set_time(json_t *o, const char *key, int64_t ms)
{
	return json_object_set_new(
	    o, key, ms > 0 ? json_integer(ms) : json_null());
}

/* The JSON object of one token, in the seed's key order, then ours. */
static json_t *
tokfile_entry_json(const struct tok_info *ti, json_t *old)
{
	json_t *o, *tags, *v;
	const char *key;
	unsigned i;
	int bad = 0;

	if ((o = json_object()) == NULL || (tags = json_array()) == NULL) {
		json_decref(o);
		return NULL;
	}
	for (i = 0; i < ti->ntags; i++)
		bad |= json_array_append_new(tags, json_string(ti->tags[i]));
	bad |=
	    json_object_set_new(o, "createdTime", json_integer(ti->created_ms));
	bad |= json_object_set_new(
	    o, "remainingQueries", json_integer(ti->remaining));
	bad |= json_object_set_new(
	    o, "heavyremainingQueries", json_integer(ti->heavy_remaining));
	bad |= json_object_set_new(
	    o, "status", json_string(tok_status_name[ti->status]));
	bad |= json_object_set_new(
	    o, "failedCount", json_integer(ti->failed_count));
	bad |= tokfile_set_time(o, "lastFailureTime", ti->last_failure_ms);
	bad |= json_object_set_new(o, "lastFailureReason",
	    ti->last_failure_reason[0] != '\0'
	        ? json_string(ti->last_failure_reason)
	        : json_null());
	bad |= json_object_set_new(o, "tags", tags);
	bad |= json_object_set_new(o, "note", json_string(ti->note));
	/* 1 means "no end known": the same as none once read back. */
	bad |= tokfile_set_time(o, "cooldownUntil",
	    ti->cooldown_until_ms > 1 ? ti->cooldown_until_ms : 0);
	bad |= tokfile_set_time(o, "lastUsedTime", ti->last_used_ms);
	if (json_is_object(old)) {
		json_object_foreach(old, key, v)
		{
			for (i = 0; i < ARRAY_LEN(tokfile_known); i++)
				if (strcmp(key, tokfile_known[i]) == 0)
					break;
			if (i == ARRAY_LEN(tokfile_known))
				bad |= json_object_set(o, key, v);
		}
	}
	if (bad != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- reading ---- */

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
	ssize_t n;
	int rc;

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

/* Give doc both maps, so everything after may rely on them. */
static int
tokfile_complete(json_t *doc)
{
	unsigned i;

	for (i = 0; i < TOK_NTYPES; i++)
		if (json_object_get(doc, tok_type_name[i]) == NULL &&
		    json_object_set_new(doc, tok_type_name[i], json_object()) !=
		        0)
			return WP_ENOMEM;
	return 0;
}

int
tokfile_read(const char *path, struct tokfile **fp, char *err, size_t errlen)
{
	json_t *doc = NULL;
	json_error_t jerr;
	char *buf = NULL, *near;
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
		if ((doc = json_object()) == NULL) {
			rc = WP_ENOMEM;
			goto out;
		}
	} else {
		rc = tokfile_slurp(fd, TOKFILE_MAX_BYTES, &buf, &len);
		if (rc == WP_ESYS)
			(void)snprintf(
			    err, errlen, "%s: %s", path, strerror(errno));
		if (rc == WP_ETOOBIG) {
			rc = WP_EPARSE;
			(void)snprintf(err, errlen, "%s: larger than %u bytes",
			    path, TOKFILE_MAX_BYTES);
		}
		if (rc != 0)
			goto out;
		/* Editors on Windows add a byte-order mark. */
		if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
			skip = 3;
		doc = json_loadb(
		    buf + skip, len - skip, JSON_REJECT_DUPLICATES, &jerr);
		if (doc == NULL) {
			rc = WP_EPARSE;
			/* "near '<text>'" may quote a token: never show it. */
			if ((near = strstr(jerr.text, " near '")) != NULL)
				*near = '\0';
			(void)snprintf(err, errlen, "%s:%d:%d: %s", path,
			    jerr.line, jerr.column, jerr.text);
			goto out;
		}
		if (!json_is_object(doc)) {
			rc = WP_EPARSE;
			(void)snprintf(err, errlen,
			    "%s:1:1: the top level must be an object with "
			    "\"ssoNormal\" and \"ssoSuper\"",
			    path);
			goto out;
		}
		if ((rc = tokfile_check(
		         doc, path, buf + skip, len - skip, err, errlen)) != 0)
			goto out;
	}
	if ((rc = tokfile_complete(doc)) != 0)
		goto out;
	if ((*fp = tokfile_new(doc)) == NULL) {
		rc = WP_ENOMEM;
		goto out;
	}
	doc = NULL; /* *fp owns it */
	rc = 0;
out:
	if (rc == WP_ENOMEM && errlen > 0 && err[0] == '\0')
		(void)snprintf(err, errlen, "%s: out of memory", path);
	json_decref(doc);
	if (buf != NULL) {
		explicit_bzero(buf, len); /* tokens */
		free(buf);
	}
	close_fd(&fd);
	return rc;
}

/* ---- into the table ---- */

int
tokfile_load(
    struct tok_table *t, const struct tokfile *f, char *err, size_t errlen)
{
	struct tokfile_bad bad;
	struct tok_info ti;
	char fp[LOG_TOK_LEN];
	const char *token;
	uint32_t row;
	json_t *v;
	unsigned i;
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	for (i = 0; i < TOK_NTYPES; i++) {
		json_object_foreach(tokfile_map(f, (enum tok_type)i), token, v)
		{
			if (tokfile_info(
			        token, v, (enum tok_type)i, &ti, &bad) != 0) {
				(void)log_tok(token, fp, sizeof(fp));
				(void)snprintf(err, errlen,
				    "%s: token %s: %s%s%s", tok_type_name[i],
				    fp, bad.field != NULL ? bad.field : "",
				    bad.field != NULL ? ": " : "", bad.why);
				return WP_EPARSE;
			}
			rc = tok_add(t, &ti, &row);
			if (rc == WP_ETOOBIG) {
				(void)snprintf(err, errlen,
				    "%zu tokens, more than grok.max_tokens "
				    "(%u)",
				    tokfile_count(f), tok_table_cap(t));
				return rc;
			}
			if (rc != 0) {
				(void)log_tok(token, fp, sizeof(fp));
				(void)snprintf(err, errlen, "%s: token %s: %s",
				    tok_type_name[i], fp, wp_strerror(rc));
				return rc;
			}
		}
	}
	return 0;
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
    const char *token, json_t *ev, enum tok_type type, bool dry,
    unsigned *added, unsigned *changed)
{
	struct tok_info eti, bti, lti, nti;
	struct tokfile_bad bad;
	enum tok_type btype = TOK_NORMAL;
	json_t *bv;
	uint32_t row, gen;
	bool in_base;
	int rc;

	if ((rc = tokfile_info(token, ev, type, &eti, &bad)) != 0)
		return rc; /* tokfile_read checked it: not from there */
	bv = tokfile_lookup(base, token, &btype);
	in_base = bv != NULL && tokfile_info(token, bv, btype, &bti, &bad) == 0;
	if (tok_find(t, token, &row, &gen) != 0) {
		/* Deleted live since base: stays deleted unless edited. */
		if (in_base) {
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
	if (!tokfile_take(&nti, in_base ? &bti : NULL, &eti))
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
	uint32_t row, gen;
	const char *token;
	unsigned i;
	json_t *v;
	int rc, first = 0;

	/* Removals first: they free rows for the additions. */
	for (i = 0; i < TOK_NTYPES; i++) {
		json_object_foreach(
		    tokfile_map(base, (enum tok_type)i), token, v)
		{
			if (tokfile_lookup(edited, token, NULL) != NULL)
				continue;
			if (dry ? tok_find(t, token, &row, &gen) == 0
			        : tok_remove(t, token) == 0)
				(*nr)++;
		}
	}
	for (i = 0; i < TOK_NTYPES; i++) {
		json_object_foreach(
		    tokfile_map(edited, (enum tok_type)i), token, v)
		{
			rc = tokfile_merge_one(
			    t, base, token, v, (enum tok_type)i, dry, na, nc);
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

/* The document for the live table, keeping base's unknown fields. */
static json_t *
tokfile_build(struct tok_table *t, const struct tokfile *base)
{
	json_t *doc = NULL, *maps[TOK_NTYPES] = { NULL }, *e, *v;
	struct tok_info ti;
	const char *key;
	uint32_t iter = 0;
	unsigned i;
	int bad = 0;

	if ((doc = json_object()) == NULL)
		return NULL;
	for (i = 0; i < TOK_NTYPES; i++) {
		if ((maps[i] = json_object()) == NULL ||
		    json_object_set_new(doc, tok_type_name[i], maps[i]) != 0)
			goto fail;
	}
	if (base != NULL) {
		json_object_foreach(base->doc, key, v)
		{
			if (strcmp(key, tok_type_name[TOK_NORMAL]) != 0 &&
			    strcmp(key, tok_type_name[TOK_SUPER]) != 0)
				bad |= json_object_set(doc, key, v);
		}
	}
	while (bad == 0 && tok_next(t, &iter, &ti) == 0) {
		e = tokfile_entry_json(
		    &ti, tokfile_lookup(base, ti.token, NULL));
		if (e == NULL)
			goto fail;
		bad |= json_object_set_new(maps[ti.type], ti.token, e);
	}
	explicit_bzero(&ti, sizeof(ti));
	if (bad != 0)
		goto fail;
	return doc;
fail:
	json_decref(doc);
	return NULL;
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
	json_t *doc = NULL;
	char *text = NULL;
	size_t len = 0;
	bool renamed = false;
	int rc, saved;

	if ((doc = tokfile_build(t, *basep)) == NULL ||
	    (text = json_dumps(doc, JSON_INDENT(2))) == NULL ||
	    (nf = tokfile_new(NULL)) == NULL) {
		rc = WP_ENOMEM;
		goto out;
	}
	len = strlen(text);
	text[len] = '\n'; /* over the NUL: files end with a newline */
	rc = tokfile_replace(path, text, len + 1, &renamed);
	if (renamed) {
		/* The file is doc now, even if the folder's fsync failed. */
		nf->doc = doc;
		doc = NULL;
		tokfile_free(*basep);
		*basep = nf;
		nf = NULL;
	}
out:
	saved = errno;
	if (text != NULL) {
		explicit_bzero(text, len + 1); /* tokens */
		free(text);
	}
	json_decref(doc);
	tokfile_free(nf);
	errno = saved;
	return rc;
}

char *
tokfile_dump(struct tok_table *t)
{
	json_t *doc;
	char *text;

	if ((doc = tokfile_build(t, NULL)) == NULL)
		return NULL;
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	return text;
}
