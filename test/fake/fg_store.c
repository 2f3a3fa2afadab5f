/*
 * fakegrok's in-memory state: the command-line settings, the counters
 * behind /__fake/stats, per-token quota and fault counters, uploaded
 * files, and the ring of recorded requests behind /__fake/requests.
 *
 * Each store has its own mutex (fg_tok_mtx, fg_upl_mtx, fg_rec_mtx; never
 * two at once), held only for a lookup, a counter update or a copy.
 * Everything is capped so that millions of requests cannot grow memory:
 * FG_TOK_MAX tokens, FG_UPL_BYTES_MAX bytes of uploads (oldest dropped
 * first), fg_conf.nrecords records.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "util.h"

#include "fg.h"

#define FG_TOK_MAX       1000000
#define FG_TOK_BUCKETS   4096
#define FG_UPL_BYTES_MAX ((size_t)512 << 20)
#define FG_UPL_MAX       100000
#define FG_UPL_BUCKETS   4096

const char *const fg_route_name[] = {
	[FG_R_CHAT] = "/rest/app-chat/conversations/new",
	[FG_R_RATE] = "/rest/rate-limits",
	[FG_R_UPLOAD] = "/rest/app-chat/upload-file",
	[FG_R_POST] = "/rest/media/post/create",
	[FG_R_ASSET] = "assets",
	[FG_R_REST_OTHER] = "/rest/other",
	[FG_R_FAKE] = "/__fake",
};

/* Settings, written by main() before any thread starts. */
struct fg_conf fg_conf = {
	.quota = 80,
	.heavy_quota = 20,
	.window_s = 72000,
	.fault_wait_s = 3600,
	.nrecords = 1000,
};

/* Counters every thread bumps; atomics, so no lock. */
struct fg_stats fg_stats;

void
fg_stats_reset(void)
{
	size_t i;

	atomic_store(&fg_stats.requests, 0);
	for (i = 0; i < FG_R__N; i++)
		atomic_store(&fg_stats.by_route[i], 0);
	for (i = 0; i < ARRAY_LEN(fg_stats.by_status); i++)
		atomic_store(&fg_stats.by_status[i], 0);
	atomic_store(&fg_stats.conns_total, 0);
	atomic_store(&fg_stats.streams_total, 0);
	atomic_store(&fg_stats.streams_done, 0);
	atomic_store(&fg_stats.streams_aborted, 0);
	atomic_store(&fg_stats.lines, 0);
	atomic_store(&fg_stats.bytes, 0);
}

static json_t *
fg_u64(atomic_uint_fast64_t *v)
{
	return json_integer((json_int_t)atomic_load(v));
}

json_t *
fg_stats_json(void)
{
	json_t *o = json_object(), *paths = json_object(),
	       *status = json_object();
	size_t i;

	for (i = 0; i < FG_R_FAKE; i++)
		(void)json_object_set_new(
		    paths, fg_route_name[i], fg_u64(&fg_stats.by_route[i]));
	for (i = 0; i < ARRAY_LEN(fg_stats.by_status); i++) {
		char k[8];

		if (atomic_load(&fg_stats.by_status[i]) == 0)
			continue;
		(void)snprintf(k, sizeof(k), "%zu", i);
		(void)json_object_set_new(
		    status, k, fg_u64(&fg_stats.by_status[i]));
	}
	(void)json_object_set_new(o, "requests", fg_u64(&fg_stats.requests));
	(void)json_object_set_new(o, "by_path", paths);
	(void)json_object_set_new(o, "by_status", status);
	(void)json_object_set_new(
	    o, "connections_open", fg_u64(&fg_stats.conns_open));
	(void)json_object_set_new(
	    o, "connections_total", fg_u64(&fg_stats.conns_total));
	(void)json_object_set_new(
	    o, "open_streams", fg_u64(&fg_stats.streams_open));
	(void)json_object_set_new(
	    o, "streams_total", fg_u64(&fg_stats.streams_total));
	(void)json_object_set_new(
	    o, "streams_done", fg_u64(&fg_stats.streams_done));
	(void)json_object_set_new(
	    o, "streams_aborted", fg_u64(&fg_stats.streams_aborted));
	(void)json_object_set_new(o, "suspended", fg_u64(&fg_stats.suspended));
	(void)json_object_set_new(o, "lines", fg_u64(&fg_stats.lines));
	(void)json_object_set_new(o, "bytes", fg_u64(&fg_stats.bytes));
	return o;
}

/* ---- tokens ---- */

struct fg_tok {
	struct fg_tok *next;
	uint64_t hash;
	int64_t remaining;
	int64_t heavy;
	int64_t window_start_ms; /* 0 = window not started */
	int64_t fault_hits;
	uint64_t by_route[FG_R__N];
	char name[]; /* the sso cookie value */
};

/* The token table: buckets of chains under fg_tok_mtx. */
static pthread_mutex_t fg_tok_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct fg_tok *fg_toks[FG_TOK_BUCKETS];
static size_t fg_ntoks;

/* Caller holds fg_tok_mtx. NULL when the table is full or on ENOMEM. */
static struct fg_tok *
fg_tok_get(const char *name)
{
	size_t n = strlen(name);
	uint64_t h = fg_hash(name, n, 0);
	struct fg_tok **bp = &fg_toks[h % FG_TOK_BUCKETS], *t;

	for (t = *bp; t != NULL; t = t->next)
		if (t->hash == h && strcmp(t->name, name) == 0)
			return t;
	if (fg_ntoks >= FG_TOK_MAX ||
	    (t = calloc(1, sizeof(*t) + n + 1)) == NULL)
		return NULL;
	t->hash = h;
	t->remaining = fg_conf.quota;
	t->heavy = fg_conf.heavy_quota;
	memcpy(t->name, name, n + 1);
	t->next = *bp;
	*bp = t;
	fg_ntoks++;
	return t;
}

/* Start a new window when the old one is over. Caller holds the lock. */
static void
fg_tok_window(struct fg_tok *t, int64_t now_ms)
{
	if (t->window_start_ms != 0 &&
	    now_ms >= t->window_start_ms + fg_conf.window_s * 1000) {
		t->window_start_ms = 0;
		t->remaining = fg_conf.quota;
		t->heavy = fg_conf.heavy_quota;
	}
}

static void
fg_tok_fill(
    const struct fg_tok *t, bool heavy, int64_t now_ms, struct fg_quota *q)
{
	q->remaining = heavy ? t->heavy : t->remaining;
	q->total = heavy ? fg_conf.heavy_quota : fg_conf.quota;
	q->wait_s = 0;
	if (t->window_start_ms != 0)
		q->wait_s = (t->window_start_ms + fg_conf.window_s * 1000 -
		                now_ms + 999) /
		    1000;
}

bool
fg_tok_fault(const char *tok, int64_t times, bool take)
{
	struct fg_tok *t;
	bool hit = true;

	if (times <= 0)
		return true;
	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	if ((t = fg_tok_get(tok)) != NULL) {
		hit = t->fault_hits < times;
		if (hit && take)
			t->fault_hits++;
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
	return hit;
}

int
fg_tok_charge(const char *tok, bool heavy, int64_t cost, struct fg_quota *q)
{
	int64_t now = util_now_ms();
	struct fg_tok *t;
	int rc = 0;

	memset(q, 0, sizeof(*q));
	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	if ((t = fg_tok_get(tok)) == NULL) {
		WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
		return 0; /* table full: let it through uncounted */
	}
	fg_tok_window(t, now);
	if (heavy ? t->heavy < 1 : t->remaining < cost) {
		rc = WP_EBUSY;
	} else {
		if (heavy)
			t->heavy -= 1;
		else
			t->remaining -= cost;
		if (t->window_start_ms == 0)
			t->window_start_ms = now;
	}
	fg_tok_fill(t, heavy, now, q);
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
	return rc;
}

void
fg_tok_quota(const char *tok, bool heavy, struct fg_quota *q)
{
	int64_t now = util_now_ms();
	struct fg_tok *t;

	q->remaining = heavy ? fg_conf.heavy_quota : fg_conf.quota;
	q->total = q->remaining;
	q->wait_s = 0;
	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	if ((t = fg_tok_get(tok)) != NULL) {
		fg_tok_window(t, now);
		fg_tok_fill(t, heavy, now, q);
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
}

void
fg_tok_count(const char *tok, enum fg_route r)
{
	struct fg_tok *t;

	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	if ((t = fg_tok_get(tok)) != NULL)
		t->by_route[r]++;
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
}

json_t *
fg_tok_json(void)
{
	int64_t now = util_now_ms();
	json_t *all = json_object();
	size_t b, i;

	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	for (b = 0; b < FG_TOK_BUCKETS; b++) {
		struct fg_tok *t;

		for (t = fg_toks[b]; t != NULL; t = t->next) {
			json_t *o = json_object(), *req = json_object();
			struct fg_quota q;

			fg_tok_window(t, now);
			fg_tok_fill(t, false, now, &q);
			(void)json_object_set_new(
			    o, "remaining", json_integer(t->remaining));
			(void)json_object_set_new(
			    o, "heavy", json_integer(t->heavy));
			(void)json_object_set_new(
			    o, "wait", json_integer(q.wait_s));
			(void)json_object_set_new(
			    o, "fault_hits", json_integer(t->fault_hits));
			for (i = 0; i < FG_R_FAKE; i++)
				(void)json_object_set_new(req, fg_route_name[i],
				    json_integer((json_int_t)t->by_route[i]));
			(void)json_object_set_new(o, "requests", req);
			(void)json_object_set_new(all, t->name, o);
		}
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
	return all;
}

int
fg_tok_set(const json_t *o)
{
	const json_t *name = json_object_get(o, "token");
	const json_t *rem = json_object_get(o, "remaining");
	const json_t *heavy = json_object_get(o, "heavy");
	const json_t *wait = json_object_get(o, "wait");
	const json_t *hits = json_object_get(o, "fault_hits");
	int64_t now = util_now_ms();
	struct fg_tok *t;

	if (!json_is_string(name) || (rem != NULL && !json_is_integer(rem)) ||
	    (heavy != NULL && !json_is_integer(heavy)) ||
	    (wait != NULL && !json_is_integer(wait)) ||
	    (hits != NULL && !json_is_integer(hits)))
		return WP_EINVAL;
	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	if ((t = fg_tok_get(json_string_value(name))) == NULL) {
		WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
		return WP_ENOMEM;
	}
	if (rem != NULL)
		t->remaining = json_integer_value(rem);
	if (heavy != NULL)
		t->heavy = json_integer_value(heavy);
	if (hits != NULL)
		t->fault_hits = json_integer_value(hits);
	if ((rem != NULL || heavy != NULL) && t->window_start_ms == 0)
		t->window_start_ms = now; /* a set count lasts one window */
	if (wait != NULL) {
		/* The window ends wait seconds from now. */
		t->window_start_ms = now - fg_conf.window_s * 1000 +
		    json_integer_value(wait) * 1000;
		if (t->window_start_ms == 0)
			t->window_start_ms = 1;
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
	return 0;
}

void
fg_tok_clear(void)
{
	size_t b;

	WP_ASSERT(pthread_mutex_lock(&fg_tok_mtx) == 0);
	for (b = 0; b < FG_TOK_BUCKETS; b++) {
		while (fg_toks[b] != NULL) {
			struct fg_tok *t = fg_toks[b];

			fg_toks[b] = t->next;
			free(t);
		}
	}
	fg_ntoks = 0;
	WP_ASSERT(pthread_mutex_unlock(&fg_tok_mtx) == 0);
}

/* ---- uploads ---- */

struct fg_upl {
	struct fg_upl *next;  /* bucket chain */
	struct fg_upl *older; /* FIFO, for eviction */
	struct fg_upl *newer;
	uint64_t hash;
	unsigned char *data;
	size_t len;
	char mime[128];
	char name[256]; /* the fileName it was uploaded as */
	char uri[];     /* "users/<uid>/<fileMetadataId>/content" */
};

/* Uploaded files, by URI, oldest first in a FIFO; under fg_upl_mtx. */
static pthread_mutex_t fg_upl_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct fg_upl *fg_upls[FG_UPL_BUCKETS];
static struct fg_upl *fg_upl_oldest, *fg_upl_newest;
static size_t fg_upl_bytes, fg_upl_n;

/* Unlink and free u. Caller holds fg_upl_mtx. */
static void
fg_upl_drop(struct fg_upl *u)
{
	struct fg_upl **bp = &fg_upls[u->hash % FG_UPL_BUCKETS];

	while (*bp != u)
		bp = &(*bp)->next;
	*bp = u->next;
	if (u->older != NULL)
		u->older->newer = u->newer;
	else
		fg_upl_oldest = u->newer;
	if (u->newer != NULL)
		u->newer->older = u->older;
	else
		fg_upl_newest = u->older;
	fg_upl_bytes -= u->len;
	fg_upl_n--;
	free(u->data);
	free(u);
}

int
fg_upl_put(const char *uri, const char *mime, const char *name,
    unsigned char **data, size_t len)
{
	size_t n = strlen(uri);
	struct fg_upl *u;

	if ((u = calloc(1, sizeof(*u) + n + 1)) == NULL)
		return WP_ENOMEM;
	memcpy(u->uri, uri, n + 1);
	(void)util_strlcpy(u->mime, mime, sizeof(u->mime)); /* cut is ok */
	(void)util_strlcpy(u->name, name, sizeof(u->name));
	u->hash = fg_hash(uri, n, 0);
	u->data = *data;
	u->len = len;
	*data = NULL;
	WP_ASSERT(pthread_mutex_lock(&fg_upl_mtx) == 0);
	while (fg_upl_oldest != NULL &&
	    (fg_upl_n >= FG_UPL_MAX || fg_upl_bytes + len > FG_UPL_BYTES_MAX))
		fg_upl_drop(fg_upl_oldest);
	u->next = fg_upls[u->hash % FG_UPL_BUCKETS];
	fg_upls[u->hash % FG_UPL_BUCKETS] = u;
	u->older = fg_upl_newest;
	if (fg_upl_newest != NULL)
		fg_upl_newest->newer = u;
	else
		fg_upl_oldest = u;
	fg_upl_newest = u;
	fg_upl_bytes += len;
	fg_upl_n++;
	WP_ASSERT(pthread_mutex_unlock(&fg_upl_mtx) == 0);
	return 0;
}

int
fg_upl_get(const char *uri, unsigned char **data, size_t *len, char *mime,
    size_t mimelen)
{
	size_t n = strlen(uri);
	uint64_t h = fg_hash(uri, n, 0);
	struct fg_upl *u;
	int rc = WP_ENOENT;

	*data = NULL;
	*len = 0;
	WP_ASSERT(pthread_mutex_lock(&fg_upl_mtx) == 0);
	for (u = fg_upls[h % FG_UPL_BUCKETS]; u != NULL; u = u->next) {
		if (u->hash != h || strcmp(u->uri, uri) != 0)
			continue;
		/* Copy under the lock: the entry may be evicted after. */
		if ((*data = malloc(u->len + 1)) == NULL) {
			rc = WP_ENOMEM;
			break;
		}
		memcpy(*data, u->data, u->len);
		*len = u->len;
		(void)util_strlcpy(mime, u->mime, mimelen);
		rc = 0;
		break;
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_upl_mtx) == 0);
	return rc;
}

bool
fg_upl_has(const char *uri)
{
	size_t n = strlen(uri);
	uint64_t h = fg_hash(uri, n, 0);
	struct fg_upl *u;
	bool found = false;

	WP_ASSERT(pthread_mutex_lock(&fg_upl_mtx) == 0);
	for (u = fg_upls[h % FG_UPL_BUCKETS]; u != NULL && !found; u = u->next)
		found = u->hash == h && strcmp(u->uri, uri) == 0;
	WP_ASSERT(pthread_mutex_unlock(&fg_upl_mtx) == 0);
	return found;
}

json_t *
fg_upl_json(void)
{
	json_t *a = json_array(), *o;
	const struct fg_upl *u;

	WP_ASSERT(pthread_mutex_lock(&fg_upl_mtx) == 0);
	for (u = fg_upl_oldest; a != NULL && u != NULL; u = u->newer) {
		o = json_pack("{s:s, s:s, s:s, s:I}", "fileUri", u->uri,
		    "fileName", u->name, "fileMimeType", u->mime, "size",
		    (json_int_t)u->len);
		if (o == NULL || json_array_append_new(a, o) != 0) {
			json_decref(a);
			a = NULL;
		}
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_upl_mtx) == 0);
	return a;
}

void
fg_upl_clear(void)
{
	WP_ASSERT(pthread_mutex_lock(&fg_upl_mtx) == 0);
	while (fg_upl_oldest != NULL)
		fg_upl_drop(fg_upl_oldest);
	WP_ASSERT(pthread_mutex_unlock(&fg_upl_mtx) == 0);
}

/* ---- request records ---- */

struct fg_rec {
	uint64_t seq;
	char *token;
	char *path;
	char *json;
	size_t len;
};

/* The ring of the last fg_conf.nrecords requests, under fg_rec_mtx. */
static pthread_mutex_t fg_rec_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct fg_rec *fg_recs;
static size_t fg_rec_head, fg_rec_n;
static uint64_t fg_rec_seq;

static void
fg_rec_free(struct fg_rec *r)
{
	free(r->token);
	free(r->path);
	free(r->json);
	memset(r, 0, sizeof(*r));
}

void
fg_rec_add(const char *token, const char *path, char **json)
{
	struct fg_rec nr = { 0 }, old;

	if (fg_conf.nrecords == 0 || fg_recs == NULL)
		return;
	nr.token = token != NULL ? strdup(token) : NULL;
	nr.path = strdup(path);
	nr.json = *json;
	nr.len = strlen(*json);
	*json = NULL;
	if (nr.path == NULL || (token != NULL && nr.token == NULL)) {
		fg_rec_free(&nr);
		return;
	}
	WP_ASSERT(pthread_mutex_lock(&fg_rec_mtx) == 0);
	nr.seq = ++fg_rec_seq;
	old = fg_recs[fg_rec_head];
	fg_recs[fg_rec_head] = nr;
	fg_rec_head = (fg_rec_head + 1) % fg_conf.nrecords;
	if (fg_rec_n < fg_conf.nrecords)
		fg_rec_n++;
	WP_ASSERT(pthread_mutex_unlock(&fg_rec_mtx) == 0);
	fg_rec_free(&old); /* free outside the lock */
}

/*
 * Records are stored as JSON text with a "seq" member that the recorder
 * leaves for us to fill: the text starts with "{" and we prepend the seq.
 */
char *
fg_rec_dump(uint64_t since, const char *token, const char *path, size_t *lenp)
{
	struct buf b;
	size_t i, start;
	bool first = true, ok = true;

	buf_init(&b, SIZE_MAX / 2);
	ok = buf_append(&b, "[", 1) == 0;
	WP_ASSERT(pthread_mutex_lock(&fg_rec_mtx) == 0);
	start = (fg_rec_head + fg_conf.nrecords - fg_rec_n) %
	    (fg_conf.nrecords != 0 ? fg_conf.nrecords : 1);
	for (i = 0; ok && i < fg_rec_n; i++) {
		const struct fg_rec *r =
		    &fg_recs[(start + i) % fg_conf.nrecords];

		if (r->seq <= since ||
		    (token != NULL &&
		        (r->token == NULL || strcmp(token, r->token) != 0)) ||
		    (path != NULL && strncmp(r->path, path, strlen(path)) != 0))
			continue;
		ok = buf_printf(&b, "%s{\"seq\":%llu,", first ? "" : ",",
		         (unsigned long long)r->seq) == 0 &&
		    buf_append(&b, r->json + 1, r->len - 1) == 0;
		first = false;
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_rec_mtx) == 0);
	if (!ok || buf_append(&b, "]", 1) != 0) {
		buf_fini(&b);
		return NULL;
	}
	*lenp = b.len;
	return b.p;
}

size_t
fg_rec_clear(void)
{
	size_t i, n;

	WP_ASSERT(pthread_mutex_lock(&fg_rec_mtx) == 0);
	n = fg_rec_n;
	for (i = 0; i < fg_conf.nrecords; i++)
		fg_rec_free(&fg_recs[i]);
	fg_rec_head = 0;
	fg_rec_n = 0;
	WP_ASSERT(pthread_mutex_unlock(&fg_rec_mtx) == 0);
	return n;
}

int
fg_store_init(void)
{
	if (fg_conf.nrecords > 0 &&
	    (fg_recs = calloc(fg_conf.nrecords, sizeof(*fg_recs))) == NULL)
		return WP_ENOMEM;
	return 0;
}

void
fg_store_fini(void)
{
	if (fg_recs != NULL) {
		(void)fg_rec_clear();
		free(fg_recs);
		fg_recs = NULL;
	}
	fg_tok_clear();
	fg_upl_clear();
}
