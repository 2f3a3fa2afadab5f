/*
 * Numbers and settings for the admin panel and for Prometheus: request
 * counters by status and by model, tokens by state, the media cache
 * (GET /api/cache, DELETE /api/cache/{image,video}), GET /api/stats,
 * GET /metrics and GET /api/settings (the effective config with secrets
 * masked).
 *
 * Counters: each worker adds to its own process slot (by status) and to
 * the shared per-model slots in the shm header; readers sum with relaxed
 * loads. Tokens by state come from tok_table_stats(). A cache clear bumps
 * the janitor's clear_req, wakes it, and waits (a timer, at most
 * ADM_CLEAR_WAIT_MS) for clear_done to catch up.
 *
 * Worker only; one thread. No lock of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "adm.h"
#include "buf.h"
#include "cfg_keys.h"
#include "err.h"
#include "log.h"
#include "tok.h"
#include "util.h"

#define ADM_CLEAR_MAGIC   0x41434c52u
#define ADM_CLEAR_WAIT_MS 5000 /* then 202: the janitor is still at it */
#define ADM_CLEAR_POLL_MS 50
#define ADM_METRICS_MAX   (1u << 20)

static const char *const adm_cache_kind[] = { "image", "video" };

/* ---- counting ------------------------------------------------------------ */

/*
 * Find the slot named name, or claim a free one for it. Two workers
 * claiming the same new name at once may get two slots: readers add
 * slots of the same name together.
 */
static int
adm_model_claim(struct shm *s, const char *name)
{
	struct shm_model_stat *m = s->hdr->models;
	uint32_t zero;
	int i;

	for (i = 0; i < SHM_MODEL_SLOTS; i++) {
		if (atomic_load_explicit(&m[i].state, memory_order_acquire) ==
		        2 &&
		    strcmp(m[i].name, name) == 0)
			return i;
	}
	for (i = 0; i < SHM_MODEL_SLOTS; i++) {
		zero = 0;
		if (!atomic_compare_exchange_strong(&m[i].state, &zero, 1))
			continue;
		(void)util_strlcpy(m[i].name, name, sizeof(m[i].name));
		atomic_store_explicit(&m[i].state, 2, memory_order_release);
		return i;
	}
	return -1; /* full: more model names than slots ever seen */
}

static size_t
adm_ws(const char *s, size_t n, size_t i)
{
	while (i < n &&
	    (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* Past the closing quote of the string that opens at s[i]; SIZE_MAX if
 * it never closes. */
static size_t
adm_str_end(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return SIZE_MAX;
}

/* Past the value that starts at s[i] (at the ',' or '}' after a scalar). */
static size_t
adm_skip_value(const char *s, size_t n, size_t i)
{
	unsigned depth = 0;

	while (i < n) {
		if (s[i] == '"') {
			if ((i = adm_str_end(s, n, i)) == SIZE_MAX)
				return n;
			if (depth == 0)
				return i;
			continue;
		}
		if (s[i] == '{' || s[i] == '[') {
			depth++;
		} else if (s[i] == '}' || s[i] == ']') {
			if (depth == 0)
				return i;
			if (--depth == 0)
				return i + 1;
		} else if (depth == 0 && s[i] == ',') {
			return i;
		}
		i++;
	}
	return n;
}

int
adm_peek_model(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i = adm_ws(s, n, 0), k, end;
	bool is_model;

	if (i >= n || s[i] != '{')
		return WP_EINVAL;
	for (i++;;) {
		i = adm_ws(s, n, i);
		if (i >= n || s[i] != '"')
			return WP_EINVAL;
		if ((k = adm_str_end(s, n, i)) == SIZE_MAX)
			return WP_EINVAL;
		is_model = k - i == 7 && memcmp(s + i + 1, "model", 5) == 0;
		i = adm_ws(s, n, k);
		if (i >= n || s[i] != ':')
			return WP_EINVAL;
		i = adm_ws(s, n, i + 1);
		if (is_model) {
			if (i >= n || s[i] != '"')
				return WP_EINVAL;
			end = adm_str_end(s, n, i);
			if (end == SIZE_MAX || end - i < 2 ||
			    end - i - 2 >= outlen ||
			    memchr(s + i + 1, '\\', end - i - 2) != NULL)
				return WP_EINVAL;
			memcpy(out, s + i + 1, end - i - 2);
			out[end - i - 2] = '\0';
			return 0;
		}
		i = adm_ws(s, n, adm_skip_value(s, n, i));
		if (i >= n || s[i] != ',')
			return WP_EINVAL;
		i++;
	}
}

uint32_t
wrk_admin_model_slot(struct wrk *w, const char *body, size_t len)
{
	char name[CFG_NAME_MAX];
	int i;

	if (body == NULL || adm_peek_model(body, len, name, sizeof(name)) != 0)
		return 0;
	/* Only models of the table: a client cannot fill the slots. */
	if (cfg_model_find(w->cfg, name) == NULL)
		return 0;
	i = adm_model_claim(w->shm, name);
	return i < 0 ? 0 : (uint32_t)i + 1;
}

void
wrk_admin_count(struct wrk *w, uint32_t model_slot, unsigned status)
{
	struct shm_model_stat *m;

	if (status >= SHM_STATUS_MIN && status < SHM_STATUS_MIN + SHM_STATUS_N)
		atomic_fetch_add_explicit(
		    &w->me->c.by_status[status - SHM_STATUS_MIN], 1,
		    memory_order_relaxed);
	if (model_slot == 0 || model_slot > SHM_MODEL_SLOTS)
		return;
	m = &w->shm->hdr->models[model_slot - 1];
	atomic_fetch_add_explicit(&m->requests, 1, memory_order_relaxed);
	if (status >= 400)
		atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
}

/* ---- reading ----------------------------------------------------------------
 */

/* Per-model totals, slots of the same name added together. */
struct adm_model_sum {
	char name[CFG_NAME_MAX];
	uint64_t requests, errors;
};

static unsigned
adm_models(const struct shm *s, struct adm_model_sum *out)
{
	const struct shm_model_stat *m = s->hdr->models;
	unsigned n = 0, i, k;

	for (i = 0; i < SHM_MODEL_SLOTS; i++) {
		if (atomic_load_explicit(&m[i].state, memory_order_acquire) !=
		    2)
			continue;
		for (k = 0; k < n; k++)
			if (strcmp(out[k].name, m[i].name) == 0)
				break;
		if (k == n) {
			memset(&out[n], 0, sizeof(out[n]));
			(void)util_strlcpy(
			    out[n].name, m[i].name, sizeof(out[n].name));
			n++;
		}
		out[k].requests +=
		    atomic_load_explicit(&m[i].requests, memory_order_relaxed);
		out[k].errors +=
		    atomic_load_explicit(&m[i].errors, memory_order_relaxed);
	}
	return n;
}

static json_t *
adm_cache_json(const struct wrk *w, unsigned k)
{
	const struct shm_cache *c = &w->shm->hdr->cache;
	int32_t mb = k == 0 ? w->cfg->image_cache_max_size_mb
	                    : w->cfg->video_cache_max_size_mb;

	return json_pack("{s:I, s:I, s:I, s:b}", "bytes",
	    (json_int_t)atomic_load(&c->bytes[k]), "files",
	    (json_int_t)atomic_load(&c->files[k]), "maxBytes",
	    (json_int_t)mb * 1024 * 1024, "clearing",
	    atomic_load(&c->clear_req[k]) != atomic_load(&c->clear_done[k]));
}

static json_t *
adm_tokens_json(const struct tok_stats *ts, unsigned type)
{
	const uint32_t *b = ts->by_status[type];
	json_t *o;

	o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "total",
	    (int)(b[TOK_ST_ACTIVE] + b[TOK_ST_COOLING] + b[TOK_ST_EXPIRED] +
	        b[TOK_ST_DISABLED]),
	    "active", (int)b[TOK_ST_ACTIVE], "cooling", (int)b[TOK_ST_COOLING],
	    "expired", (int)b[TOK_ST_EXPIRED], "disabled",
	    (int)b[TOK_ST_DISABLED], "unknownQuota", (int)ts->unknown[type],
	    "exhaustedQuota", (int)ts->exhausted[type], "remainingQueries",
	    (json_int_t)ts->remaining[type]);
	if (o != NULL && type == TOK_SUPER) {
		(void)json_object_set_new(
		    o, "heavyUnknownQuota", json_integer(ts->heavy_unknown));
		(void)json_object_set_new(o, "heavyremainingQueries",
		    json_integer((json_int_t)ts->heavy_remaining));
	}
	return o;
}

int
adm_stats(struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct adm_model_sum ms[SHM_MODEL_SLOTS];
	struct shm *s = rq->w->shm;
	struct shm_totals t;
	struct tok_stats ts;
	json_t *by_status, *models, *o;
	char code[8];
	unsigned i, n;
	int64_t now = util_now_ms();

	shm_totals(s, &t);
	if (tok_table_stats(s->tok, &ts) != 0)
		memset(&ts, 0, sizeof(ts));
	by_status = json_object();
	models = json_array();
	if (by_status == NULL || models == NULL) {
		json_decref(by_status);
		json_decref(models);
		return adm_json(rq, conn, 500, NULL);
	}
	for (i = 0; i < SHM_STATUS_N; i++) {
		if (t.by_status[i] == 0)
			continue;
		(void)snprintf(code, sizeof(code), "%u", SHM_STATUS_MIN + i);
		(void)json_object_set_new(
		    by_status, code, json_integer((json_int_t)t.by_status[i]));
	}
	n = adm_models(s, ms);
	for (i = 0; i < n; i++)
		(void)json_array_append_new(models,
		    json_pack("{s:s, s:I, s:I}", "model", ms[i].name,
		        "requests", (json_int_t)ms[i].requests, "errors",
		        (json_int_t)ms[i].errors));
	o = json_pack("{s:I, s:I, s:i, s:I, s:I, "
	              "s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:o, "
	              "s:{s:i, s:i, s:o, s:o}, s:o, s:{s:o, s:o}}",
	    "startedTime", (json_int_t)s->hdr->started_ms, "uptimeSeconds",
	    (json_int_t)((now - (int64_t)s->hdr->started_ms) / 1000), "workers",
	    (int)t.workers, "reloads",
	    (json_int_t)atomic_load(&s->hdr->reloads), "respawns",
	    (json_int_t)atomic_load(&s->hdr->respawns), "requests", "total",
	    (json_int_t)t.requests, "active", (json_int_t)t.active, "chat",
	    (json_int_t)t.chat, "errors4xx", (json_int_t)t.errors_4xx,
	    "errors5xx", (json_int_t)t.errors_5xx, "upstreamErrors",
	    (json_int_t)t.upstream_errors, "errorsByStatus", by_status,
	    "tokens", "total", (int)tok_table_count(s->tok), "inflight",
	    (int)ts.inflight, "ssoNormal", adm_tokens_json(&ts, TOK_NORMAL),
	    "ssoSuper", adm_tokens_json(&ts, TOK_SUPER), "models", models,
	    "cache", "image", adm_cache_json(rq->w, 0), "video",
	    adm_cache_json(rq->w, 1));
	return adm_json(rq, conn, 200, o);
}

/* ---- GET /metrics
 * ------------------------------------------------------------ */

/* A Prometheus label value: backslash, quote and newline escaped. */
static int
adm_label(struct buf *b, const char *s)
{
	int rc = 0;

	for (; *s != '\0' && rc == 0; s++) {
		if (*s == '\\' || *s == '"')
			rc = buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			rc = buf_puts(b, "\\n");
		else
			rc = buf_append(b, s, 1);
	}
	return rc;
}

static int
adm_metrics_tokens(struct buf *b, const struct tok_stats *ts)
{
	unsigned ty, st;
	int rc;

	rc = buf_puts(b, "# TYPE webproxyd_tokens_by_status gauge\n");
	for (ty = 0; ty < TOK_NTYPES && rc == 0; ty++)
		for (st = 0; st < TOK_NSTATUS && rc == 0; st++)
			rc = buf_printf(b,
			    "webproxyd_tokens_by_status{type=\"%s\","
			    "status=\"%s\"} %u\n",
			    tok_type_name[ty], tok_status_name[st],
			    ts->by_status[ty][st]);
	if (rc == 0)
		rc = buf_printf(b,
		    "# TYPE webproxyd_tokens_unknown_quota gauge\n"
		    "webproxyd_tokens_unknown_quota{type=\"ssoNormal\"} %u\n"
		    "webproxyd_tokens_unknown_quota{type=\"ssoSuper\"} %u\n"
		    "# TYPE webproxyd_tokens_exhausted gauge\n"
		    "webproxyd_tokens_exhausted{type=\"ssoNormal\"} %u\n"
		    "webproxyd_tokens_exhausted{type=\"ssoSuper\"} %u\n"
		    "# TYPE webproxyd_token_remaining_queries gauge\n"
		    "webproxyd_token_remaining_queries{type=\"ssoNormal\"} "
		    "%llu\n"
		    "webproxyd_token_remaining_queries{type=\"ssoSuper\"} "
		    "%llu\n"
		    "# TYPE webproxyd_token_heavy_remaining_queries gauge\n"
		    "webproxyd_token_heavy_remaining_queries %llu\n"
		    "# TYPE webproxyd_tokens_inflight gauge\n"
		    "webproxyd_tokens_inflight %u\n",
		    ts->unknown[TOK_NORMAL], ts->unknown[TOK_SUPER],
		    ts->exhausted[TOK_NORMAL], ts->exhausted[TOK_SUPER],
		    (unsigned long long)ts->remaining[TOK_NORMAL],
		    (unsigned long long)ts->remaining[TOK_SUPER],
		    (unsigned long long)ts->heavy_remaining, ts->inflight);
	return rc;
}

static int
adm_metrics_more(struct buf *b, struct wrk *w, const struct shm_totals *t)
{
	struct adm_model_sum ms[SHM_MODEL_SLOTS];
	const struct shm_cache *c = &w->shm->hdr->cache;
	unsigned i, k, n;
	int rc;

	rc =
	    buf_puts(b, "# TYPE webproxyd_responses_by_status_total counter\n");
	for (i = 0; i < SHM_STATUS_N && rc == 0; i++)
		if (t->by_status[i] != 0)
			rc = buf_printf(b,
			    "webproxyd_responses_by_status_total{status="
			    "\"%u\"} %llu\n",
			    SHM_STATUS_MIN + i,
			    (unsigned long long)t->by_status[i]);
	n = adm_models(w->shm, ms);
	for (k = 0; k < 2 && rc == 0; k++) {
		rc = buf_printf(b, "# TYPE webproxyd_model_%s_total counter\n",
		    k == 0 ? "requests" : "errors");
		for (i = 0; i < n && rc == 0; i++) {
			rc = buf_printf(b, "webproxyd_model_%s_total{model=\"",
			    k == 0 ? "requests" : "errors");
			if (rc == 0)
				rc = adm_label(b, ms[i].name);
			if (rc == 0)
				rc = buf_printf(b, "\"} %llu\n",
				    (unsigned long long)(k == 0
				            ? ms[i].requests
				            : ms[i].errors));
		}
	}
	if (rc == 0)
		rc = buf_printf(b,
		    "# TYPE webproxyd_cache_bytes gauge\n"
		    "webproxyd_cache_bytes{kind=\"image\"} %llu\n"
		    "webproxyd_cache_bytes{kind=\"video\"} %llu\n"
		    "# TYPE webproxyd_cache_files gauge\n"
		    "webproxyd_cache_files{kind=\"image\"} %llu\n"
		    "webproxyd_cache_files{kind=\"video\"} %llu\n"
		    "# TYPE webproxyd_start_time_seconds gauge\n"
		    "webproxyd_start_time_seconds %llu\n",
		    (unsigned long long)atomic_load(&c->bytes[0]),
		    (unsigned long long)atomic_load(&c->bytes[1]),
		    (unsigned long long)atomic_load(&c->files[0]),
		    (unsigned long long)atomic_load(&c->files[1]),
		    (unsigned long long)(w->shm->hdr->started_ms / 1000));
	return rc;
}

int
wrk_admin_metrics(struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct shm *s = rq->w->shm;
	struct shm_totals t;
	struct tok_stats ts;
	struct buf b;
	int rc;

	shm_totals(s, &t);
	if (tok_table_stats(s->tok, &ts) != 0)
		memset(&ts, 0, sizeof(ts));
	buf_init(&b, ADM_METRICS_MAX);
	rc = buf_printf(&b,
	    "# TYPE webproxyd_requests_total counter\n"
	    "webproxyd_requests_total %llu\n"
	    "# TYPE webproxyd_errors_total counter\n"
	    "webproxyd_errors_total{class=\"4xx\"} %llu\n"
	    "webproxyd_errors_total{class=\"5xx\"} %llu\n"
	    "# TYPE webproxyd_chat_requests_total counter\n"
	    "webproxyd_chat_requests_total %llu\n"
	    "# TYPE webproxyd_upstream_errors_total counter\n"
	    "webproxyd_upstream_errors_total %llu\n"
	    "# TYPE webproxyd_requests_active gauge\n"
	    "webproxyd_requests_active %llu\n"
	    "# TYPE webproxyd_workers gauge\n"
	    "webproxyd_workers %u\n"
	    "# TYPE webproxyd_tokens gauge\n"
	    "webproxyd_tokens{type=\"ssoNormal\"} %u\n"
	    "webproxyd_tokens{type=\"ssoSuper\"} %u\n"
	    "# TYPE webproxyd_reloads_total counter\n"
	    "webproxyd_reloads_total %llu\n"
	    "# TYPE webproxyd_respawns_total counter\n"
	    "webproxyd_respawns_total %llu\n"
	    "# TYPE webproxyd_lock_recoveries_total counter\n"
	    "webproxyd_lock_recoveries_total %llu\n",
	    (unsigned long long)t.requests, (unsigned long long)t.errors_4xx,
	    (unsigned long long)t.errors_5xx, (unsigned long long)t.chat,
	    (unsigned long long)t.upstream_errors, (unsigned long long)t.active,
	    t.workers, tok_table_count_type(s->tok, TOK_NORMAL),
	    tok_table_count_type(s->tok, TOK_SUPER),
	    (unsigned long long)atomic_load(&s->hdr->reloads),
	    (unsigned long long)atomic_load(&s->hdr->respawns),
	    (unsigned long long)atomic_load(
	        &tok_table_lock(s->tok)->recovered));
	if (rc == 0)
		rc = adm_metrics_tokens(&b, &ts);
	if (rc == 0)
		rc = adm_metrics_more(&b, rq->w, &t);
	if (rc != 0) {
		buf_fini(&b);
		return MHD_NO;
	}
	return adm_reply(
	    rq, conn, 200, "text/plain; version=0.0.4", buf_take(&b), NULL, 0);
}

/* ---- the media cache ------------------------------------------------------
 */

int
adm_cache(struct wrk_req *rq, struct MHD_Connection *conn)
{
	return adm_json(rq, conn, 200,
	    json_pack("{s:o, s:o, s:I}", "image", adm_cache_json(rq->w, 0),
	        "video", adm_cache_json(rq->w, 1), "swept",
	        (json_int_t)atomic_load(&rq->w->shm->hdr->cache.swept)));
}

/* A clear in progress: the request waits for the janitor's answer. */
struct adm_clear {
	unsigned magic;
	struct adm_job *job;
	struct wrk *w;
	struct wrk_ev ev; /* a timerfd, ADM_CLEAR_POLL_MS */
	unsigned kind;
	uint64_t target; /* clear_done must reach it */
	int64_t deadline_ms;
};

static void
adm_clear_free(struct adm_clear *c)
{
	wrk_ev_del(c->w, &c->ev);
	close_fd(&c->ev.fd);
	c->magic = 0;
	free(c);
}

static void
adm_clear_cancel(struct adm_job *j)
{
	struct adm_clear *c = j->arg;

	CHECK_OBJ(c, ADM_CLEAR_MAGIC);
	adm_clear_free(c);
	j->arg = NULL;
}

static void
adm_clear_tick(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct adm_clear *c = ev->arg;
	struct adm_job *j;
	uint64_t ticks, done;
	unsigned kind;
	bool ok;

	(void)events;
	CHECK_OBJ(c, ADM_CLEAR_MAGIC);
	if (read(ev->fd, &ticks, sizeof(ticks)) < 0)
		ticks = 0; /* spurious: look anyway */
	done = atomic_load(&w->shm->hdr->cache.clear_done[c->kind]);
	ok = done >= c->target;
	if (!ok && util_mono_ms() < c->deadline_ms)
		return;
	j = c->job;
	kind = c->kind;
	adm_clear_free(c);
	if (ok)
		log_notice("admin: %s cache cleared", adm_cache_kind[kind]);
	adm_job_finish(j, ok ? 200 : 202,
	    json_pack("{s:b, s:s, s:o}", "cleared", ok, "kind",
	        adm_cache_kind[kind], "cache", adm_cache_json(w, kind)));
}

int
adm_cache_clear(struct wrk_req *rq, struct MHD_Connection *conn, unsigned kind)
{
	struct shm_cache *sc = &rq->w->shm->hdr->cache;
	struct itimerspec its;
	struct adm_clear *c;
	struct adm_job *j;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return adm_json(rq, conn, 500, NULL);
	c->magic = ADM_CLEAR_MAGIC;
	c->w = rq->w;
	c->kind = kind;
	c->ev.fn = adm_clear_tick;
	c->ev.arg = c;
	c->ev.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_nsec = its.it_interval.tv_nsec =
	    ADM_CLEAR_POLL_MS * 1000000L;
	if (c->ev.fd < 0 || timerfd_settime(c->ev.fd, 0, &its, NULL) != 0 ||
	    wrk_ev_add(rq->w, &c->ev, EPOLLIN) != 0) {
		log_warn("admin: cache clear timer");
		adm_clear_free(c);
		return adm_error(rq, conn, 500, NULL, "internal_error",
		    "Could not wait for the janitor");
	}
	c->target = atomic_fetch_add(&sc->clear_req[kind], 1) + 1;
	c->deadline_ms = util_mono_ms() + ADM_CLEAR_WAIT_MS;
	shm_wake_janitor(rq->w->shm);
	rc = adm_job_start(rq, conn, c, adm_clear_cancel, &j);
	if (j == NULL) {
		adm_clear_free(c);
		return rc;
	}
	c->job = j;
	return rc;
}

/* ---- GET /api/settings ------------------------------------------------------
 */

/* Keys whose values are secrets: shown only as set or not. */
static bool
adm_secret_key(const char *key)
{
	return strcmp(key, "api_keys") == 0 ||
	    strcmp(key, "admin_password") == 0 ||
	    strcmp(key, "cf_clearance") == 0;
}

/* "********" plus the last 4 characters of a long secret, "" if unset. */
static json_t *
adm_masked(const char *s)
{
	char out[16];
	size_t n = strlen(s);

	if (n == 0)
		return json_string("");
	if (n < 16)
		return json_string("********");
	(void)snprintf(out, sizeof(out), "********%s", s + n - 4);
	return json_string(out);
}

/* A URL with its password (user:password@) masked. */
static json_t *
adm_url_masked(const char *s)
{
	char out[CFG_STR_MAX + 16];
	const char *scheme = strstr(s, "://"), *at, *colon, *end;

	if (scheme == NULL)
		return json_string(s);
	end = scheme + 3 + strcspn(scheme + 3, "/?#");
	at = memchr(scheme + 3, '@', (size_t)(end - scheme - 3));
	if (at == NULL)
		return json_string(s);
	colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
	if (colon == NULL)
		return json_string(s);
	(void)snprintf(
	    out, sizeof(out), "%.*s:********%s", (int)(colon - s), s, at);
	return json_string(out);
}

static json_t *
adm_setting_str(const char *key, const char *v)
{
	return adm_secret_key(key) ? adm_masked(v) : adm_url_masked(v);
}

/* A list of strings of stride bytes each (the rows of a char[][N]). */
static json_t *
adm_setting_strs(const char *key, const char *v, size_t stride, uint32_t n)
{
	json_t *a = json_array();
	uint32_t i;

	for (i = 0; a != NULL && i < n; i++)
		(void)json_array_append_new(
		    a, adm_setting_str(key, v + (size_t)i * stride));
	return a;
}

static json_t *
adm_setting_ints(const int32_t *v, uint32_t n)
{
	json_t *a = json_array();
	uint32_t i;

	for (i = 0; a != NULL && i < n; i++)
		(void)json_array_append_new(a, json_integer(v[i]));
	return a;
}

static const char *
adm_enum_log_level(int32_t v)
{
	return v >= 0 && v <= LOG_LVL_DEBUG ? log_level_name[v] : "?";
}

static const char *
adm_enum_image_mode(int32_t v)
{
	return v == CFG_IMAGE_BASE64 ? "base64" : "url";
}

static const char *
adm_enum_reasoning_format(int32_t v)
{
	return v == CFG_RF_REASONING_CONTENT ? "reasoning_content"
	    : v == CFG_RF_HIDDEN             ? "hidden"
	                                     : "think_tags";
}

static json_t *
adm_setting_models(const struct cfg *c)
{
	json_t *a = json_array();
	uint32_t i;

	for (i = 0; a != NULL && i < c->n_models; i++) {
		const struct cfg_model *m = &c->models[i];

		(void)json_array_append_new(a,
		    json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:b}", "name",
		        m->name, "upstream", m->upstream, "mode", m->mode,
		        "rate_limit_model", m->rate_limit_model, "cost",
		        (int)m->cost, "pool",
		        m->pool == CFG_POOL_SUPER ? "super" : "normal", "video",
		        (int)m->video));
	}
	return a;
}

/*
 * One value per cfg_keys.h row. A new list key needs its count member
 * here (ADM_CNT_*), a new enum its names (adm_enum_*): the build fails
 * until it has them, so the settings view never misses a key.
 */
#define ADM_CNT_api_keys           n_api_keys
#define ADM_CNT_trusted_proxies    n_trusted_proxies
#define ADM_CNT_image_fetch_allow  n_image_fetch_allow
#define ADM_CNT_retry_status_codes n_retry_codes

#define ADM_V_STR(k, m)  adm_setting_str(#k, c->m)
#define ADM_V_INT(k, m)  json_integer((json_int_t)c->m)
#define ADM_V_BOOL(k, m) json_boolean(c->m)
#define ADM_V_ENUM(k, m) json_string(adm_enum_##k(c->m))
#define ADM_V_STRLIST(k, m)                                                    \
	adm_setting_strs(#k, &c->m[0][0], sizeof(c->m[0]), c->ADM_CNT_##k)
#define ADM_V_INTLIST(k, m) adm_setting_ints(c->m, c->ADM_CNT_##k)
#define ADM_V_MODELS(k, m)  adm_setting_models(c)

#define ADM_SET(sect, prefix, k, T, m, d, lo, hi, ck, ap, doc)                 \
	bad |= json_object_set_new(sect, #k, ADM_V_##T(k, m));                 \
	bad |= json_array_append_new(keys,                                     \
	    json_pack("{s:s, s:s, s:s}", "key", prefix #k, "apply",            \
	        ADM_APPLY_##ap, "doc", doc));
#define ADM_APPLY_RELOAD    "reload"
#define ADM_APPLY_RESTART   "restart"
#define ADM_SET_SERVER(...) ADM_SET(server, "server.", __VA_ARGS__)
#define ADM_SET_PROJECTS(...)                                                  \
	ADM_SET(projects_grok, "projects.grok.", __VA_ARGS__)
#define ADM_SET_GROK(...) ADM_SET(grok, "grok.", __VA_ARGS__)

int
adm_settings(struct wrk_req *rq, struct MHD_Connection *conn)
{
	const struct cfg *c = rq->w->cfg;
	json_t *server, *projects_grok, *grok, *keys, *o;
	int bad = 0;

	server = json_object();
	projects_grok = json_object();
	grok = json_object();
	keys = json_array();
	if (server == NULL || projects_grok == NULL || grok == NULL ||
	    keys == NULL) {
		bad = 1;
		goto out;
	}
	/* clang-format off */
	CFG_KEYS_SERVER(ADM_SET_SERVER)
	CFG_KEYS_PROJECTS_GROK(ADM_SET_PROJECTS)
	CFG_KEYS_GROK(ADM_SET_GROK)
	/* clang-format on */
out:
	if (bad != 0) {
		json_decref(server);
		json_decref(projects_grok);
		json_decref(grok);
		json_decref(keys);
		return adm_json(rq, conn, 500, NULL);
	}
	o = json_pack("{s:{s:o, s:{s:o}, s:o}, s:o, s:I, s:s}", "config",
	    "server", server, "projects", "grok", projects_grok, "grok", grok,
	    "keys", keys, "generation",
	    (json_int_t)atomic_load_explicit(
	        &rq->w->me->gen, memory_order_relaxed),
	    "hint",
	    "Read-only. Change conf/config.yaml (or /etc/webproxyd/config.yaml) "
	    "and reload: webproxyd -s reload, or systemctl reload webproxyd. "
	    "Keys marked restart need a restart.");
	return adm_json(rq, conn, 200, o);
}
