/*
 * The token pool's admin routes under /api/projects/grok/tokens: list
 * (with filters), add (a paste of tokens, one per line or comma
 * separated), delete, edit tags / note / status, export as token.json,
 * and test a token against grok.com's rate-limits endpoint.
 *
 * A token is named by an opaque id "<row>.<generation>" of the shared
 * table, so an id never reaches a token that later took the same row.
 * Answers carry a fingerprint (log_tok), never the token itself; only the
 * export hands the tokens out. Every change goes straight into the shared
 * table (every worker sees it at once); the master persists it.
 *
 * Worker only; one thread. The token table's lock is taken inside tok.c,
 * for copies only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "adm.h"
#include "buf.h"
#include "err.h"
#include "grok.h"
#include "log.h"
#include "tok.h"
#include "tokfile.h"
#include "util.h"

#define ADM_ID_LEN        24 /* "4294967295.4294967295" */
#define ADM_PREVIEW       24 /* bytes of a rejected entry shown back */
#define ADM_TEST_MAGIC    0x41545354u
#define ADM_PROBE_MAGIC   0x4150524fu
#define ADM_TEST_TIMEOUT  20000L /* ms one rate-limits call may take */
#define ADM_TEST_BODY_MAX 65536

/* ---- ids and the JSON of a token ---------------------------------------- */

static void
adm_id(uint32_t row, uint32_t gen, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%u.%u", row, gen);
}

static int
adm_id_parse(const char *s, uint32_t *row, uint32_t *gen)
{
	char part[16];
	const char *dot = strchr(s, '.');
	int64_t v;
	size_t n;

	if (dot == NULL || (n = (size_t)(dot - s)) == 0 || n >= sizeof(part))
		return WP_EINVAL;
	memcpy(part, s, n);
	part[n] = '\0';
	if (util_parse_i64(part, 0, UINT32_MAX, &v) != 0)
		return WP_EINVAL;
	*row = (uint32_t)v;
	if (util_parse_i64(dot + 1, 1, UINT32_MAX, &v) != 0)
		return WP_EINVAL;
	*gen = (uint32_t)v;
	return 0;
}

static json_t *
adm_ms(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

/*
 * A JSON string of s even when s is not UTF-8 (a reason cut mid-character
 * by its field's size, a hand-edited file): such bytes become '?'.
 */
static json_t *
adm_jstr(const char *s)
{
	char tmp[TOK_LEN_MAX + 1];
	json_t *j;
	size_t i;

	if ((j = json_string(s)) != NULL)
		return j;
	for (i = 0; s[i] != '\0' && i < sizeof(tmp) - 1; i++)
		tmp[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	tmp[i] = '\0';
	return json_string(tmp);
}

static json_t *
adm_tok_json(const struct tok_info *ti)
{
	char id[ADM_ID_LEN], fp[LOG_TOK_LEN];
	json_t *tags;
	uint32_t i;

	adm_id(ti->row, ti->row_gen, id, sizeof(id));
	(void)log_tok(ti->token, fp, sizeof(fp));
	if ((tags = json_array()) == NULL)
		return NULL;
	for (i = 0; i < ti->ntags; i++)
		(void)json_array_append_new(tags, adm_jstr(ti->tags[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:I, s:o, s:o, "
	                 "s:o, s:o, s:I, s:o, s:I}",
	    "id", id, "fingerprint", fp, "type", tok_type_name[ti->type],
	    "status", tok_status_name[ti->status], "remainingQueries",
	    (int)ti->remaining, "heavyremainingQueries",
	    (int)ti->heavy_remaining, "cooldownUntil",
	    adm_ms(ti->cooldown_until_ms > 1 ? ti->cooldown_until_ms : 0),
	    "failedCount", (json_int_t)ti->failed_count, "lastFailureTime",
	    adm_ms(ti->last_failure_ms), "lastFailureReason",
	    ti->last_failure_reason[0] != '\0'
	        ? adm_jstr(ti->last_failure_reason)
	        : json_null(),
	    "tags", tags, "note", adm_jstr(ti->note), "createdTime",
	    (json_int_t)ti->created_ms, "lastUsedTime",
	    adm_ms(ti->last_used_ms), "inflight", (json_int_t)ti->inflight);
}

/* ---- GET: the list ------------------------------------------------------ */

static int
adm_type_parse(const char *s, enum tok_type *type)
{
	if (strcmp(s, tok_type_name[TOK_NORMAL]) == 0)
		*type = TOK_NORMAL;
	else if (strcmp(s, tok_type_name[TOK_SUPER]) == 0)
		*type = TOK_SUPER;
	else
		return WP_EINVAL;
	return 0;
}

static bool
adm_has_tag(const struct tok_info *ti, const char *tag)
{
	uint32_t i;

	for (i = 0; i < ti->ntags; i++)
		if (strcmp(ti->tags[i], tag) == 0)
			return true;
	return false;
}

static int
adm_tok_list(struct wrk_req *rq, struct MHD_Connection *conn)
{
	const char *qtype, *qstatus, *qtag;
	enum tok_type type = TOK_NORMAL;
	enum tok_status st = TOK_ST_ACTIVE;
	struct tok_info ti;
	uint32_t iter = 0;
	json_t *list, *o;
	int bad = 0;

	qtype =
	    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "type");
	qstatus =
	    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
	qtag = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "tag");
	if (qtype != NULL && adm_type_parse(qtype, &type) != 0)
		return adm_error(rq, conn, 400, "type", "invalid_filter",
		    "'type' must be ssoNormal or ssoSuper");
	if (qstatus != NULL && tok_status_parse(qstatus, &st) != 0)
		return adm_error(rq, conn, 400, "status", "invalid_filter",
		    "'status' must be active, cooling, expired or disabled");
	if ((list = json_array()) == NULL)
		return adm_json(rq, conn, 500, NULL);
	while (bad == 0 && tok_next(rq->w->shm->tok, &iter, &ti) == 0) {
		if ((qtype != NULL && ti.type != type) ||
		    (qstatus != NULL && ti.status != st) ||
		    (qtag != NULL && !adm_has_tag(&ti, qtag)))
			continue;
		if ((o = adm_tok_json(&ti)) == NULL)
			bad = 1;
		else
			bad = json_array_append_new(list, o);
	}
	explicit_bzero(&ti, sizeof(ti));
	if (bad != 0) {
		json_decref(list);
		return adm_json(rq, conn, 500, NULL);
	}
	return adm_json(rq, conn, 200, json_pack("{s:o}", "tokens", list));
}

/* ---- tags and note, as the operator sends them --------------------------- */

/*
 * Tags from a JSON array into e: trimmed, not empty, at most TOK_TAG_MAX
 * bytes, no control characters or commas (the panel edits them as a
 * comma-separated list), duplicates dropped. Writes a reason into why.
 */
static int
adm_tags_parse(const json_t *a, struct tok_edit *e, char *why, size_t len)
{
	const char *s;
	size_t i, k, n;
	json_t *v;

	if (!json_is_array(a)) {
		(void)snprintf(why, len, "'tags' must be an array of strings");
		return WP_EINVAL;
	}
	e->ntags = 0;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v)) {
			(void)snprintf(
			    why, len, "tags[%zu] is not a string", i);
			return WP_EINVAL;
		}
		s = json_string_value(v);
		while (*s == ' ' || *s == '\t')
			s++;
		n = strlen(s);
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == 0 || n > TOK_TAG_MAX) {
			(void)snprintf(why, len,
			    "tags[%zu] must be 1 to %d bytes long", i,
			    TOK_TAG_MAX);
			return WP_EINVAL;
		}
		for (k = 0; k < n; k++) {
			if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f ||
			    s[k] == ',') {
				(void)snprintf(why, len,
				    "tags[%zu] holds a comma or a control "
				    "character",
				    i);
				return WP_EINVAL;
			}
		}
		for (k = 0; k < e->ntags; k++)
			if (strlen(e->tags[k]) == n &&
			    memcmp(e->tags[k], s, n) == 0)
				break;
		if (k < e->ntags)
			continue; /* a duplicate: once is enough */
		if (e->ntags == TOK_TAGS_MAX) {
			(void)snprintf(
			    why, len, "at most %d tags a token", TOK_TAGS_MAX);
			return WP_EINVAL;
		}
		memcpy(e->tags[e->ntags], s, n);
		e->tags[e->ntags][n] = '\0';
		e->ntags++;
	}
	e->set_tags = true;
	return 0;
}

static int
adm_note_parse(const json_t *v, struct tok_edit *e, char *why, size_t len)
{
	const char *s;
	size_t i, n;

	if (!json_is_string(v)) {
		(void)snprintf(why, len, "'note' must be a string");
		return WP_EINVAL;
	}
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > TOK_NOTE_MAX) {
		(void)snprintf(
		    why, len, "'note' is longer than %d bytes", TOK_NOTE_MAX);
		return WP_EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '\0' ||
		    ((unsigned char)s[i] < 0x20 && s[i] != '\n' &&
		        s[i] != '\t')) {
			(void)snprintf(
			    why, len, "'note' holds a control character");
			return WP_EINVAL;
		}
	}
	memcpy(e->note, s, n + 1);
	e->set_note = true;
	return 0;
}

/* ---- POST: add a paste of tokens ----------------------------------------- */

/* What to show of a rejected entry: its start, printable ASCII only. */
static json_t *
adm_rejected(const char *s, size_t n, const char *reason)
{
	char show[ADM_PREVIEW + 4];
	size_t i, k = 0;

	for (i = 0; i < n && i < ADM_PREVIEW; i++)
		show[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (n > ADM_PREVIEW) {
		memcpy(show + k, "...", 3);
		k += 3;
	}
	show[k] = '\0';
	return json_pack("{s:s, s:s}", "value", show, "reason", reason);
}

/* Why s (n bytes) cannot be a token (said in why), or NULL when it can. */
static const char *
adm_tok_why(const char *s, size_t n, char *why, size_t len)
{
	size_t i;

	if (n > TOK_LEN_MAX)
		return "longer than 511 bytes";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			return "holds a control or non-ASCII byte";
		if (c == ' ' || c == '"' || c == ';' || c == '\\') {
			(void)snprintf(why, len,
			    "holds '%c', which a cookie value cannot", c);
			return why;
		}
	}
	return NULL;
}

/*
 * An entry may name its own type ("ssoSuper:<token>"), so one paste can
 * fill both pools; without one it takes the request's type. Real tokens
 * never start so (JWTs are base64url and dots).
 */
static enum tok_type
adm_entry_type(const char **s, size_t *n, enum tok_type def)
{
	size_t k;
	int t;

	for (t = 0; t < TOK_NTYPES; t++) {
		k = strlen(tok_type_name[t]);
		if (*n > k + 1 && memcmp(*s, tok_type_name[t], k) == 0 &&
		    (*s)[k] == ':') {
			*s += k + 1;
			*n -= k + 1;
			while (*n > 0 && (**s == ' ' || **s == '\t')) {
				(*s)++;
				(*n)--;
			}
			return (enum tok_type)t;
		}
	}
	return def;
}

struct adm_add {
	struct wrk *w;
	enum tok_type type;
	const struct tok_edit *extra; /* tags and note for every token */
	json_t *added, *dups, *invalid;
	unsigned nadded, ndups, ninvalid, ntype[TOK_NTYPES];
	bool oom;
};

static void
adm_add_one(struct adm_add *a, const char *s, size_t n)
{
	struct tok_info ti;
	char id[ADM_ID_LEN], fp[LOG_TOK_LEN], whybuf[64];
	enum tok_type type;
	const char *why;
	uint32_t row, gen, i;
	int rc;

	type = adm_entry_type(&s, &n, a->type);
	if (n > 4 && memcmp(s, "sso=", 4) == 0) {
		s += 4; /* pasted as a cookie */
		n -= 4;
	}
	if ((why = adm_tok_why(s, n, whybuf, sizeof(whybuf))) != NULL) {
		a->ninvalid++;
		a->oom |= json_array_append_new(
		              a->invalid, adm_rejected(s, n, why)) != 0;
		return;
	}
	memset(&ti, 0, sizeof(ti));
	memcpy(ti.token, s, n);
	ti.type = (uint8_t)type;
	ti.status = TOK_ST_ACTIVE;
	ti.remaining = ti.heavy_remaining = -1;
	ti.created_ms = util_now_ms();
	ti.ntags = a->extra->ntags;
	for (i = 0; i < ti.ntags; i++)
		memcpy(ti.tags[i], a->extra->tags[i], sizeof(ti.tags[i]));
	memcpy(ti.note, a->extra->note, sizeof(ti.note));
	rc = tok_add(a->w->shm->tok, &ti, &row);
	if (rc == 0) {
		a->nadded++;
		a->ntype[type]++;
		/* Its generation: a delete in between leaves a dead id. */
		gen = 0;
		(void)tok_find(a->w->shm->tok, ti.token, &row, &gen);
		adm_id(row, gen, id, sizeof(id));
		a->oom |= json_array_append_new(a->added, json_string(id)) != 0;
	} else if (rc == WP_EEXIST) {
		a->ndups++;
		(void)log_tok(ti.token, fp, sizeof(fp));
		a->oom |= json_array_append_new(a->dups, json_string(fp)) != 0;
	} else {
		a->ninvalid++;
		a->oom |= json_array_append_new(a->invalid,
		              adm_rejected(s, n,
		                  rc == WP_ETOOBIG ? "the token table is full "
		                                     "(grok.max_tokens)"
		                                   : wp_strerror(rc))) != 0;
	}
	explicit_bzero(&ti, sizeof(ti));
}

/* Entries of one pasted text: split on new lines and commas, trimmed. */
static void
adm_add_text(struct adm_add *a, const char *s, size_t len)
{
	const char *end = s + len, *p, *q;

	for (p = s; p < end; p = q + 1) {
		q = p;
		while (q < end && *q != '\n' && *q != '\r' && *q != ',')
			q++;
		while (p < q && (*p == ' ' || *p == '\t'))
			p++;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if (q > p)
			adm_add_one(a, p, (size_t)(q - p));
		while (q < end && *q != '\n' && *q != '\r' && *q != ',')
			q++; /* past the trailing blanks trimmed above */
		if (q >= end)
			break;
	}
}

static int
adm_tok_add(struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct adm_add a;
	struct tok_edit extra;
	json_t *body, *v, *toks;
	char why[160];
	size_t i;
	int rc;

	if ((body = adm_body(rq, conn, &rc)) == NULL)
		goto out;
	memset(&a, 0, sizeof(a));
	memset(&extra, 0, sizeof(extra));
	a.w = rq->w;
	a.extra = &extra;
	v = json_object_get(body, "type");
	if (!json_is_string(v) ||
	    adm_type_parse(json_string_value(v), &a.type) != 0) {
		rc = adm_error(rq, conn, 400, "type", "invalid_type",
		    "'type' must be \"ssoNormal\" or \"ssoSuper\"");
		goto out;
	}
	toks = json_object_get(body, "tokens");
	if (!json_is_string(toks) && !json_is_array(toks)) {
		rc = adm_error(rq, conn, 400, "tokens", "invalid_tokens",
		    "'tokens' must be a string (one token per line or comma "
		    "separated) or an array of strings");
		goto out;
	}
	json_array_foreach(toks, i, v)
	{
		if (!json_is_string(v)) {
			rc = adm_error(rq, conn, 400, "tokens",
			    "invalid_tokens", "tokens[%zu] is not a string", i);
			goto out;
		}
	}
	if ((v = json_object_get(body, "tags")) != NULL &&
	    adm_tags_parse(v, &extra, why, sizeof(why)) != 0) {
		rc =
		    adm_error(rq, conn, 400, "tags", "invalid_tags", "%s", why);
		goto out;
	}
	if ((v = json_object_get(body, "note")) != NULL &&
	    adm_note_parse(v, &extra, why, sizeof(why)) != 0) {
		rc =
		    adm_error(rq, conn, 400, "note", "invalid_note", "%s", why);
		goto out;
	}
	a.added = json_array();
	a.dups = json_array();
	a.invalid = json_array();
	if (a.added == NULL || a.dups == NULL || a.invalid == NULL) {
		json_decref(a.added);
		json_decref(a.dups);
		json_decref(a.invalid);
		rc = adm_json(rq, conn, 500, NULL);
		goto out;
	}
	if (json_is_string(toks))
		adm_add_text(
		    &a, json_string_value(toks), json_string_length(toks));
	json_array_foreach(toks, i, v)
	    adm_add_text(&a, json_string_value(v), json_string_length(v));
	log_notice("admin: added %u ssoNormal and %u ssoSuper tokens (%u "
	           "duplicates, %u invalid)",
	    a.ntype[TOK_NORMAL], a.ntype[TOK_SUPER], a.ndups, a.ninvalid);
	if (a.oom) {
		json_decref(a.added);
		json_decref(a.dups);
		json_decref(a.invalid);
		rc = adm_json(rq, conn, 500, NULL);
		goto out;
	}
	rc = adm_json(rq, conn, 200,
	    json_pack("{s:o, s:o, s:o}", "added", a.added, "duplicates", a.dups,
	        "invalid", a.invalid));
out:
	json_decref(body);
	if (rq->body != NULL)
		explicit_bzero(rq->body, rq->len); /* it held tokens */
	return rc;
}

/* ---- DELETE: several by id --------------------------------------------- */

static int
adm_tok_delete(struct wrk_req *rq, struct MHD_Connection *conn)
{
	json_t *body, *ids, *v, *deleted = NULL, *missing = NULL;
	uint32_t row, gen;
	size_t i;
	int rc;

	if ((body = adm_body(rq, conn, &rc)) == NULL)
		return rc;
	ids = json_object_get(body, "ids");
	if (!json_is_array(ids)) {
		rc = adm_error(rq, conn, 400, "ids", "invalid_ids",
		    "'ids' must be an array of token ids");
		goto out;
	}
	json_array_foreach(ids, i, v)
	{
		if (!json_is_string(v) ||
		    adm_id_parse(json_string_value(v), &row, &gen) != 0) {
			rc = adm_error(rq, conn, 400, "ids", "invalid_ids",
			    "ids[%zu] is not a token id (\"<row>.<gen>\" as "
			    "the list gives)",
			    i);
			goto out;
		}
	}
	if ((deleted = json_array()) == NULL ||
	    (missing = json_array()) == NULL) {
		rc = adm_json(rq, conn, 500, NULL);
		goto out;
	}
	json_array_foreach(ids, i, v)
	{
		(void)adm_id_parse(json_string_value(v), &row, &gen);
		(void)json_array_append(
		    tok_remove_row(rq->w->shm->tok, row, gen) == 0 ? deleted
		                                                   : missing,
		    v);
	}
	log_notice("admin: deleted %zu tokens", json_array_size(deleted));
	rc = adm_json(rq, conn, 200,
	    json_pack("{s:O, s:O}", "deleted", deleted, "missing", missing));
out:
	json_decref(deleted);
	json_decref(missing);
	json_decref(body);
	return rc;
}

/* ---- one token: GET, PATCH ------------------------------------------------
 */

static int
adm_tok_one(struct wrk_req *rq, struct MHD_Connection *conn, uint32_t row,
    uint32_t gen, unsigned status)
{
	struct tok_info ti;
	json_t *o;

	if (tok_get(rq->w->shm->tok, row, gen, &ti) != 0)
		return adm_error(rq, conn, 404, NULL, "token_not_found",
		    "No token with id %u.%u (deleted, or never there)", row,
		    gen);
	o = adm_tok_json(&ti);
	explicit_bzero(&ti, sizeof(ti));
	return adm_json(rq, conn, status, json_pack("{s:o}", "token", o));
}

static int
adm_tok_patch(
    struct wrk_req *rq, struct MHD_Connection *conn, uint32_t row, uint32_t gen)
{
	struct tok_edit e;
	enum tok_status st;
	const char *key;
	json_t *body, *v;
	char why[160];
	int rc;

	if ((body = adm_body(rq, conn, &rc)) == NULL)
		return rc;
	memset(&e, 0, sizeof(e));
	json_object_foreach(body, key, v)
	{
		if (strcmp(key, "tags") == 0) {
			if (adm_tags_parse(v, &e, why, sizeof(why)) != 0) {
				rc = adm_error(rq, conn, 400, "tags",
				    "invalid_tags", "%s", why);
				goto out;
			}
		} else if (strcmp(key, "note") == 0) {
			if (adm_note_parse(v, &e, why, sizeof(why)) != 0) {
				rc = adm_error(rq, conn, 400, "note",
				    "invalid_note", "%s", why);
				goto out;
			}
		} else if (strcmp(key, "status") == 0) {
			if (!json_is_string(v) ||
			    tok_status_parse(json_string_value(v), &st) != 0 ||
			    (st != TOK_ST_ACTIVE && st != TOK_ST_DISABLED)) {
				rc = adm_error(rq, conn, 400, "status",
				    "invalid_status",
				    "'status' must be \"active\" or "
				    "\"disabled\"");
				goto out;
			}
			e.set_status = true;
			e.status = (uint8_t)st;
		} else {
			rc = adm_error(rq, conn, 400, key, "unknown_field",
			    "Unknown field '%.64s': a token takes tags, note "
			    "and status",
			    key);
			goto out;
		}
	}
	if (!e.set_tags && !e.set_note && !e.set_status) {
		rc = adm_error(rq, conn, 400, "body", "empty_patch",
		    "Send at least one of tags, note and status");
		goto out;
	}
	rc = tok_edit(rq->w->shm->tok, row, gen, &e);
	if (rc == WP_ENOENT) {
		rc = adm_error(rq, conn, 404, NULL, "token_not_found",
		    "No token with id %u.%u (deleted, or never there)", row,
		    gen);
		goto out;
	}
	if (rc != 0) {
		rc = adm_error(rq, conn, 500, NULL, "internal_error",
		    "The token could not be changed: %s", wp_strerror(rc));
		goto out;
	}
	if (e.set_status)
		log_notice("admin: token %u.%u %s", row, gen,
		    e.status == TOK_ST_DISABLED ? "disabled" : "enabled");
	rc = adm_tok_one(rq, conn, row, gen, 200);
out:
	json_decref(body);
	return rc;
}

/* ---- GET export: token.json ------------------------------------------------
 */

static int
adm_tok_export(struct wrk_req *rq, struct MHD_Connection *conn)
{
	const struct adm_hdr h = { "Content-Disposition",
		"attachment; filename=\"token.json\"" };
	char *text;

	if ((text = tokfile_dump(rq->w->shm->tok)) == NULL)
		return adm_json(rq, conn, 500, NULL);
	log_notice(
	    "admin: exported %u tokens", tok_table_count(rq->w->shm->tok));
	return adm_reply(rq, conn, 200, "application/json", text, &h, 1);
}

/* ---- POST test: ask grok.com's rate-limits endpoint -----------------------
 */

struct adm_test;

/* One rate-limits call: the plain quota, or a super token's heavy one. */
struct adm_probe {
	unsigned magic;
	struct adm_test *t;
	struct wrk_xfer x;
	struct curl_slist *hdrs;
	char *payload;
	struct buf body;
	bool heavy, used, done;
	long status;
	CURLcode rc;
};

struct adm_test {
	unsigned magic;
	struct adm_job *job;
	struct wrk *w;
	uint32_t row, gen;
	unsigned pending;
	struct adm_probe probe[2];
};

static void
adm_probe_fini(struct wrk *w, struct adm_probe *p)
{
	if (!p->used)
		return;
	if (p->x.easy != NULL) {
		wrk_up_stop(w, &p->x);
		curl_easy_cleanup(p->x.easy);
		p->x.easy = NULL;
	}
	grok_headers_free(p->hdrs); /* it holds the token's cookie */
	p->hdrs = NULL;
	free(p->payload);
	p->payload = NULL;
	buf_fini(&p->body);
	p->used = false;
}

static void
adm_test_free(struct adm_test *t)
{
	adm_probe_fini(t->w, &t->probe[0]);
	adm_probe_fini(t->w, &t->probe[1]);
	t->magic = 0;
	free(t);
}

static void
adm_test_cancel(struct adm_job *j)
{
	struct adm_test *t = j->arg;

	CHECK_OBJ(t, ADM_TEST_MAGIC);
	adm_test_free(t);
	j->arg = NULL;
}

/* The rate-limits model name of the first model of a pool. */
static const char *
adm_rl_model(const struct cfg *c, enum cfg_pool pool)
{
	uint32_t i;

	for (i = 0; i < c->n_models; i++)
		if (c->models[i].pool == pool && !c->models[i].video)
			return c->models[i].rate_limit_model;
	return pool == CFG_POOL_SUPER ? "grok-4-heavy" : "grok-3";
}

/* What one probe says; the verdict of the test is the worst of them. */
struct adm_verdict {
	const char *result; /* valid, limited, expired, blocked, error */
	int rank;           /* higher is worse */
	long status;
	char msg[256];
};

static void
adm_probe_judge(
    struct adm_test *t, struct adm_probe *p, struct adm_verdict *v, json_t *out)
{
	struct tok_table *tt = t->w->shm->tok;
	struct adm_verdict pv = { "valid", 0, p->status, "" };
	int64_t wait_s = 0, now = util_now_ms();
	int32_t remaining;
	bool anti_bot = false;
	char what[200];
	const char *body = p->body.p != NULL ? p->body.p : "";

	if (p->rc != CURLE_OK && p->status == 0) {
		pv = (struct adm_verdict){ "error", 2, 0, "" };
		(void)snprintf(pv.msg, sizeof(pv.msg),
		    "could not reach grok.com: %s", curl_easy_strerror(p->rc));
	} else if (p->status == 200 &&
	    grok_ratelimits_parse(
	        body, p->body.len, p->heavy, &remaining, &wait_s) == 0) {
		(void)tok_set_quota(
		    tt, t->row, t->gen, p->heavy, remaining, wait_s, now);
		(void)json_object_set_new(out,
		    p->heavy ? "heavyremainingQueries" : "remainingQueries",
		    json_integer(remaining));
		if (wait_s > 0)
			(void)json_object_set_new(
			    out, "waitSeconds", json_integer(wait_s));
		if (remaining == 0) {
			pv = (struct adm_verdict){ "limited", 1, 200, "" };
			(void)snprintf(pv.msg, sizeof(pv.msg),
			    "the %s quota is used up", p->heavy ? "heavy" : "");
		}
	} else {
		grok_error_describe(p->status, body, p->body.len, what,
		    sizeof(what), &anti_bot);
		if (p->status == 401) {
			pv = (struct adm_verdict){ "expired", 4, 401, "" };
			(void)tok_fail(tt, t->row, t->gen, 401, what, now);
		} else if (p->status == 403) {
			pv = (struct adm_verdict){ "blocked", 3, 403, "" };
		} else if (p->status == 429) {
			pv = (struct adm_verdict){ "limited", 1, 429, "" };
		} else {
			pv = (struct adm_verdict){ "error", 2, p->status, "" };
		}
		(void)snprintf(pv.msg, sizeof(pv.msg),
		    "grok.com answered %ld: %s", p->status, what);
	}
	if (pv.rank >= v->rank)
		*v = pv;
}

static void
adm_test_done(struct adm_test *t)
{
	struct adm_job *j = t->job;
	struct adm_verdict v = { "valid", 0, 200, "" };
	struct tok_info ti;
	json_t *out;
	char id[ADM_ID_LEN];
	unsigned i;

	adm_id(t->row, t->gen, id, sizeof(id));
	out = json_pack("{s:s}", "id", id);
	for (i = 0; i < 2 && out != NULL; i++)
		if (t->probe[i].used)
			adm_probe_judge(t, &t->probe[i], &v, out);
	if (out != NULL) {
		(void)json_object_set_new(out, "result", json_string(v.result));
		(void)json_object_set_new(
		    out, "httpStatus", json_integer(v.status));
		(void)json_object_set_new(out, "message",
		    json_string(v.msg[0] != '\0' ? v.msg : "the token works"));
		if (tok_get(t->w->shm->tok, t->row, t->gen, &ti) == 0) {
			(void)json_object_set_new(
			    out, "token", adm_tok_json(&ti));
			explicit_bzero(&ti, sizeof(ti));
		}
	}
	log_info("admin: token %s tested: %s", id, v.result);
	adm_test_free(t);
	adm_job_finish(j, out != NULL ? 200 : 500, out);
}

static size_t
adm_probe_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct adm_probe *p = arg;

	CHECK_OBJ(p, ADM_PROBE_MAGIC);
	if (buf_append(&p->body, data, size * nmemb) != 0)
		return 0;
	return size * nmemb;
}

static void
adm_probe_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct adm_probe *p = x->arg;
	struct adm_test *t;

	(void)w;
	CHECK_OBJ(p, ADM_PROBE_MAGIC);
	t = p->t;
	CHECK_OBJ(t, ADM_TEST_MAGIC);
	p->rc = rc;
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &p->status);
	p->done = true;
	if (--t->pending == 0)
		adm_test_done(t);
}

static int
adm_probe_start(
    struct adm_test *t, struct adm_probe *p, const char *token, bool heavy)
{
	struct wrk *w = t->w;
	char url[CFG_STR_MAX + 32], statsig[160], rid[40], proxy[CFG_STR_MAX];

	p->magic = ADM_PROBE_MAGIC;
	p->t = t;
	p->heavy = heavy;
	p->used = true;
	buf_init(&p->body, ADM_TEST_BODY_MAX);
	p->payload = grok_ratelimits_body(
	    adm_rl_model(w->cfg, heavy ? CFG_POOL_SUPER : CFG_POOL_NORMAL));
	if (w->cfg->dynamic_statsig)
		grok_statsig_generate(
		    w->cfg->statsig_prefix, statsig, sizeof(statsig));
	else
		(void)util_strlcpy(
		    statsig, w->cfg->x_statsig_id, sizeof(statsig));
	grok_request_id(rid);
	p->hdrs = grok_headers(w->cfg, token, statsig, rid);
	p->x.magic = WRK_XFER_MAGIC;
	p->x.arg = p;
	p->x.done = adm_probe_done;
	if (p->payload == NULL || p->hdrs == NULL ||
	    (p->x.easy = curl_easy_init()) == NULL)
		return WP_ENOMEM;
	(void)snprintf(
	    url, sizeof(url), "%s/rest/rate-limits", w->cfg->upstream_url);
	wrk_up_defaults(w, p->x.easy);
	wrk_proxy_get(w, proxy, sizeof(proxy));
	(void)curl_easy_setopt(p->x.easy, CURLOPT_URL, url);
	(void)curl_easy_setopt(p->x.easy, CURLOPT_PROXY, proxy);
	(void)curl_easy_setopt(p->x.easy, CURLOPT_HTTPHEADER, p->hdrs);
	(void)curl_easy_setopt(p->x.easy, CURLOPT_POSTFIELDS, p->payload);
	(void)curl_easy_setopt(p->x.easy, CURLOPT_TIMEOUT_MS, ADM_TEST_TIMEOUT);
	(void)curl_easy_setopt(
	    p->x.easy, CURLOPT_WRITEFUNCTION, adm_probe_write);
	(void)curl_easy_setopt(p->x.easy, CURLOPT_WRITEDATA, p);
	if (wrk_up_start(w, &p->x) != 0)
		return WP_EINVAL;
	t->pending++;
	return 0;
}

static int
adm_tok_test(
    struct wrk_req *rq, struct MHD_Connection *conn, uint32_t row, uint32_t gen)
{
	struct adm_test *t;
	struct adm_job *j;
	struct tok_info ti;
	int rc;

	if (tok_get(rq->w->shm->tok, row, gen, &ti) != 0)
		return adm_error(rq, conn, 404, NULL, "token_not_found",
		    "No token with id %u.%u (deleted, or never there)", row,
		    gen);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		explicit_bzero(&ti, sizeof(ti));
		return adm_json(rq, conn, 500, NULL);
	}
	t->magic = ADM_TEST_MAGIC;
	t->w = rq->w;
	t->row = row;
	t->gen = gen;
	rc = adm_job_start(rq, conn, t, adm_test_cancel, &j);
	if (j == NULL) {
		explicit_bzero(&ti, sizeof(ti));
		free(t);
		return rc;
	}
	t->job = j;
	if (adm_probe_start(t, &t->probe[0], ti.token, false) != 0 ||
	    (ti.type == TOK_SUPER &&
	        adm_probe_start(t, &t->probe[1], ti.token, true) != 0)) {
		adm_test_free(t);
		adm_job_finish(j, 500,
		    json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message",
		        "The test could not start (out of memory)", "type",
		        "server_error", "param", "code", "internal_error"));
	}
	explicit_bzero(&ti, sizeof(ti));
	return rc;
}

/* ---- routing under /api/projects/grok/tokens ---------------------------- */

int
adm_tok_route(struct wrk_req *rq, struct MHD_Connection *conn,
    const char *method, const char *rest)
{
	const char *slash;
	char idbuf[ADM_ID_LEN];
	uint32_t row, gen;
	size_t n;

	if (*rest == '\0') {
		if (strcmp(method, "GET") == 0)
			return adm_tok_list(rq, conn);
		if (strcmp(method, "POST") == 0)
			return adm_tok_add(rq, conn);
		if (strcmp(method, "DELETE") == 0)
			return adm_tok_delete(rq, conn);
		return adm_not_allowed(rq, conn, "GET, POST, DELETE");
	}
	rest++; /* the slash */
	if (strcmp(rest, "export") == 0) {
		if (strcmp(method, "GET") != 0)
			return adm_not_allowed(rq, conn, "GET");
		return adm_tok_export(rq, conn);
	}
	slash = strchr(rest, '/');
	n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	if (n >= sizeof(idbuf))
		n = sizeof(idbuf) - 1; /* too long to be an id: fails below */
	memcpy(idbuf, rest, n);
	idbuf[n] = '\0';
	if (adm_id_parse(idbuf, &row, &gen) != 0)
		return adm_error(rq, conn, 404, NULL, "token_not_found",
		    "'%.40s' is not a token id (\"<row>.<gen>\")", idbuf);
	if (slash != NULL && strcmp(slash, "/test") == 0) {
		if (strcmp(method, "POST") != 0)
			return adm_not_allowed(rq, conn, "POST");
		return adm_tok_test(rq, conn, row, gen);
	}
	if (slash != NULL)
		return adm_error(rq, conn, 404, NULL, "not_found",
		    "No admin route for %.200s", rq->url);
	if (strcmp(method, "GET") == 0)
		return adm_tok_one(rq, conn, row, gen, 200);
	if (strcmp(method, "PATCH") == 0)
		return adm_tok_patch(rq, conn, row, gen);
	return adm_not_allowed(rq, conn, "GET, PATCH");
}
