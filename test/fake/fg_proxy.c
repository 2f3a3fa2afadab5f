/*
 * fakegrok's proxy pool: what grok.proxy_pool_url points at. A test sets
 * a list of proxy URLs; each GET hands out the next one (cycling), as
 * text/plain, the way a proxy-pool API answers. The proxies themselves
 * can be this same fake: it answers absolute-form targets ("POST
 * http://host/rest/...") as if it were the target and records the
 * Proxy-Authorization user, so "http://NAME:x@127.0.0.1:PORT" shows in
 * /__fake/requests which proxy carried a request.
 *
 *   POST   /__fake/proxy        {"urls":[...], "per_answer":N, "status":S}
 *                               set the list; N URLs per answer, one per
 *                               line (default 1); S != 200 makes every
 *                               GET fail with S (a broken pool)
 *   GET    /__fake/proxy        the next answer (counted in "fetches")
 *   GET    /__fake/proxy/state  {"urls","per_answer","status","fetches",
 *                               "next"} without handing anything out
 *   DELETE /__fake/proxy        forget the list and the counters
 *
 * One mutex guards the state; it is held for a copy, never for I/O.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"

#include "fg.h"

#define FG_PROXY_MAX     64
#define FG_PROXY_URL_MAX 512

static pthread_mutex_t fg_proxy_mtx = PTHREAD_MUTEX_INITIALIZER;
static char fg_proxy_urls[FG_PROXY_MAX][FG_PROXY_URL_MAX];
static size_t fg_proxy_n, fg_proxy_next;
static int64_t fg_proxy_per_answer = 1, fg_proxy_status = 200;
static int64_t fg_proxy_fetches;

/* Caller holds fg_proxy_mtx. */
static void
fg_proxy_reset(void)
{
	fg_proxy_n = 0;
	fg_proxy_next = 0;
	fg_proxy_per_answer = 1;
	fg_proxy_status = 200;
	fg_proxy_fetches = 0;
}

void
fg_proxy_clear(void)
{
	(void)pthread_mutex_lock(&fg_proxy_mtx);
	fg_proxy_reset();
	(void)pthread_mutex_unlock(&fg_proxy_mtx);
}

/* Caller holds fg_proxy_mtx. */
static json_t *
fg_proxy_state(void)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < fg_proxy_n; i++)
		(void)json_array_append_new(a, json_string(fg_proxy_urls[i]));
	return json_pack("{s:o, s:I, s:I, s:I, s:I}", "urls", a, "per_answer",
	    (json_int_t)fg_proxy_per_answer, "status",
	    (json_int_t)fg_proxy_status, "fetches",
	    (json_int_t)fg_proxy_fetches, "next", (json_int_t)fg_proxy_next);
}

/*
 * {"urls":[...], "per_answer":N, "status":S}: NULL, or why not. Caller
 * holds fg_proxy_mtx.
 */
static const char *
fg_proxy_set(const json_t *o)
{
	const json_t *urls = json_object_get(o, "urls"), *v;
	const json_t *per = json_object_get(o, "per_answer");
	const json_t *st = json_object_get(o, "status");
	size_t i;

	if (!json_is_object(o) || !json_is_array(urls) ||
	    json_array_size(urls) > FG_PROXY_MAX)
		return "want {\"urls\":[up to 64 strings]}";
	for (i = 0; i < json_array_size(urls); i++) {
		v = json_array_get(urls, i);
		if (!json_is_string(v) ||
		    json_string_length(v) >= FG_PROXY_URL_MAX)
			return "urls: strings under 512 bytes";
	}
	if (per != NULL &&
	    (!json_is_integer(per) || json_integer_value(per) < 1 ||
	        json_integer_value(per) > FG_PROXY_MAX))
		return "per_answer: 1..64";
	if (st != NULL &&
	    (!json_is_integer(st) || json_integer_value(st) < 200 ||
	        json_integer_value(st) > 599))
		return "status: 200..599";
	for (i = 0; i < json_array_size(urls); i++)
		(void)util_strlcpy(fg_proxy_urls[i],
		    json_string_value(json_array_get(urls, i)),
		    FG_PROXY_URL_MAX); /* length checked above */
	fg_proxy_n = json_array_size(urls);
	fg_proxy_next = 0;
	fg_proxy_per_answer = per != NULL ? json_integer_value(per) : 1;
	fg_proxy_status = st != NULL ? json_integer_value(st) : 200;
	return NULL;
}

/* The next answer: per_answer URLs, one per line. Caller holds the lock. */
static void
fg_proxy_answer(struct fg_reply *r)
{
	struct buf b;
	int64_t k;

	fg_proxy_fetches++;
	if (fg_proxy_status != 200) {
		fg_reply_error(
		    r, (unsigned)fg_proxy_status, 14, "proxy pool unavailable");
		return;
	}
	if (fg_proxy_n == 0) {
		fg_reply_error(r, 503, 14, "no proxy configured");
		return;
	}
	buf_init(&b, FG_PROXY_MAX * (FG_PROXY_URL_MAX + 1));
	for (k = 0; k < fg_proxy_per_answer; k++) {
		/* Cannot fail: the cap holds every URL of the list. */
		(void)buf_printf(&b, "%s\n", fg_proxy_urls[fg_proxy_next]);
		fg_proxy_next = (fg_proxy_next + 1) % fg_proxy_n;
	}
	fg_reply_text(
	    r, 200, "text/plain; charset=utf-8", b.p != NULL ? b.p : "", b.len);
	buf_fini(&b);
	(void)util_strlcpy(r->note, "proxy pool", sizeof(r->note));
}

void
fg_proxy_handle(const char *path, const char *method, const json_t *body,
    struct fg_reply *r)
{
	bool state = strcmp(path, "/__fake/proxy/state") == 0;
	const char *why;

	if (!state && strcmp(path, "/__fake/proxy") != 0) {
		fg_reply_error(r, 404, 5, "Not Found");
		return;
	}
	(void)pthread_mutex_lock(&fg_proxy_mtx);
	if (state && strcmp(method, "GET") == 0) {
		fg_reply_json(r, 200, fg_proxy_state());
	} else if (state) {
		fg_reply_error(r, 405, 12, "method not allowed");
	} else if (strcmp(method, "GET") == 0) {
		fg_proxy_answer(r);
	} else if (strcmp(method, "POST") == 0) {
		if ((why = fg_proxy_set(body)) != NULL)
			fg_reply_error(r, 400, 3, why);
		else
			fg_reply_json(r, 200, fg_proxy_state());
	} else if (strcmp(method, "DELETE") == 0) {
		fg_proxy_reset();
		fg_reply_json(r, 200, fg_proxy_state());
	} else {
		fg_reply_error(r, 405, 12, "method not allowed");
	}
	(void)pthread_mutex_unlock(&fg_proxy_mtx);
}
