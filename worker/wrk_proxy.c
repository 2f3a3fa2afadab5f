/*
 * The proxy to grok.com: grok.proxy_url, or the one grok.proxy_pool_url
 * hands out, refreshed every proxy_pool_interval seconds and at once
 * after a 403. The pool's answer lives in shared memory (shm_proxy) so
 * every worker uses the same proxy and one of them fetches for all; a
 * failed fetch keeps the proxy we have, or falls back to proxy_url.
 * Worker only; the fetch runs on the worker's curl multi handle.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "util.h"
#include "wrk.h"

#define PROXY_FETCH_TIMEOUT_MS 10000
#define PROXY_STEAL_MS         20000 /* a refresher silent this long died */
#define PROXY_MIN_GAP_MS       2000  /* forced refreshes closer are merged */
#define PROXY_BODY_MAX         4096

struct wrk_proxy_fetch {
	struct wrk_xfer x;
	struct buf body;
};

/*
 * One fetch at a time per worker (and per pool, through shm). Global
 * because it outlives any request; only this worker's thread touches it.
 */
static struct wrk_proxy_fetch proxy_fetch;

/* socks5:// resolves names locally; grok.com should resolve at the proxy. */
static void
proxy_normalise(const char *in, char *out, size_t len)
{
	if (strncmp(in, "socks5://", 9) == 0)
		(void)snprintf(out, len, "socks5h://%s", in + 9);
	else if (strncmp(in, "sock5://", 8) == 0 ||
	    strncmp(in, "sock5h://", 9) == 0)
		(void)snprintf(out, len, "socks5h://%s", strchr(in, ':') + 3);
	else
		(void)snprintf(out, len, "%s", in);
}

void
wrk_proxy_get(struct wrk *w, char *buf, size_t len)
{
	struct shm_proxy *p = &w->shm->hdr->proxy;
	char tmp[CFG_STR_MAX];
	uint32_t s1, s2;

	tmp[0] = '\0';
	if (w->cfg->proxy_pool_url[0] != '\0') {
		do {
			s1 =
			    atomic_load_explicit(&p->seq, memory_order_acquire);
			memcpy(tmp, p->url, sizeof(tmp));
			atomic_thread_fence(memory_order_acquire);
			s2 =
			    atomic_load_explicit(&p->seq, memory_order_relaxed);
		} while ((s1 & 1u) != 0 || s1 != s2);
		tmp[sizeof(tmp) - 1] = '\0';
	}
	if (tmp[0] == '\0')
		proxy_normalise(w->cfg->proxy_url, buf, len);
	else
		(void)snprintf(buf, len, "%s", tmp);
}

static void
proxy_publish(struct wrk *w, const char *url)
{
	struct shm_proxy *p = &w->shm->hdr->proxy;

	/* Only the refresher writes, so writers never race each other. */
	atomic_fetch_add_explicit(&p->seq, 1, memory_order_acq_rel);
	(void)util_strlcpy(p->url, url, sizeof(p->url));
	atomic_fetch_add_explicit(&p->seq, 1, memory_order_release);
	atomic_fetch_add(&p->changes, 1);
}

/* The pool answers one proxy URL, or several, one per line: take the first. */
static int
proxy_parse(const char *body, char *out, size_t len)
{
	static const char *const schemes[] = { "http://", "https://",
		"socks5://", "socks5h://", "sock5://", "sock5h://" };
	const char *s = body, *e;
	char line[CFG_STR_MAX];
	size_t i, n;

	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	for (e = s; *e != '\0' && *e != '\n' && *e != '\r' && *e != ' ';)
		e++;
	n = (size_t)(e - s);
	if (n == 0 || n >= sizeof(line))
		return WP_EPARSE;
	memcpy(line, s, n);
	line[n] = '\0';
	for (i = 0; i < ARRAY_LEN(schemes); i++)
		if (strncmp(line, schemes[i], strlen(schemes[i])) == 0) {
			proxy_normalise(line, out, len);
			return 0;
		}
	return WP_EPARSE;
}

static size_t
proxy_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wrk_proxy_fetch *f = arg;

	if (buf_append(&f->body, data, size * nmemb) != 0)
		return 0;
	return size * nmemb;
}

static void
proxy_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct wrk_proxy_fetch *f = x->arg;
	struct shm_proxy *p = &w->shm->hdr->proxy;
	char url[CFG_STR_MAX];
	long status = 0;

	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status == 200 && f->body.p != NULL &&
	    proxy_parse(f->body.p, url, sizeof(url)) == 0) {
		proxy_publish(w, url);
		atomic_store(&p->fetched_ms, util_now_ms());
		log_info("proxy pool: new proxy");
	} else {
		atomic_store(&p->failed_ms, util_now_ms());
		log_warnx("proxy pool %s: %s (status %ld); keeping %s",
		    w->cfg->proxy_pool_url,
		    rc != CURLE_OK ? curl_easy_strerror(rc) : "bad answer",
		    status,
		    p->url[0] != '\0' ? "the current proxy" : "grok.proxy_url");
	}
	curl_easy_cleanup(x->easy);
	x->easy = NULL;
	buf_fini(&f->body);
	atomic_store(&p->refresher, 0);
}

bool
wrk_proxy_pending(struct wrk *w)
{
	struct shm_proxy *p = &w->shm->hdr->proxy;

	if (w->cfg->proxy_pool_url[0] == '\0')
		return false;
	if (atomic_load(&p->fetched_ms) != 0 || atomic_load(&p->failed_ms) != 0)
		return false;
	wrk_proxy_refresh(w, false); /* the first use starts the first fetch */
	return true;
}

void
wrk_proxy_refresh(struct wrk *w, bool force)
{
	struct shm_proxy *p = &w->shm->hdr->proxy;
	struct wrk_proxy_fetch *f = &proxy_fetch;
	int64_t now = util_now_ms(), fetched, started;
	int32_t none = 0, holder;

	if (w->cfg->proxy_pool_url[0] == '\0' || f->x.running)
		return;
	fetched = atomic_load(&p->fetched_ms);
	if (force ? now - fetched < PROXY_MIN_GAP_MS
	          : now - fetched < (int64_t)w->cfg->proxy_pool_interval * 1000)
		return;
	/* One refresher for all workers; take over from a dead one. */
	if (!atomic_compare_exchange_strong(
	        &p->refresher, &none, (int32_t)getpid())) {
		holder = none;
		started = atomic_load(&p->refresh_started_ms);
		if (now - started < PROXY_STEAL_MS ||
		    !atomic_compare_exchange_strong(
		        &p->refresher, &holder, (int32_t)getpid()))
			return;
	}
	atomic_store(&p->refresh_started_ms, now);
	memset(f, 0, sizeof(*f));
	buf_init(&f->body, PROXY_BODY_MAX);
	f->x.magic = WRK_XFER_MAGIC;
	f->x.arg = f;
	f->x.done = proxy_done;
	if ((f->x.easy = curl_easy_init()) == NULL)
		goto fail;
	wrk_up_defaults(w, f->x.easy);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_URL, w->cfg->proxy_pool_url);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_PROXY, "");
	(void)curl_easy_setopt(
	    f->x.easy, CURLOPT_TIMEOUT_MS, (long)PROXY_FETCH_TIMEOUT_MS);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_WRITEFUNCTION, proxy_on_body);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_WRITEDATA, f);
	if (wrk_up_start(w, &f->x) != 0)
		goto fail;
	return;
fail:
	if (f->x.easy != NULL)
		curl_easy_cleanup(f->x.easy);
	f->x.easy = NULL;
	buf_fini(&f->body);
	atomic_store(&p->refresher, 0);
}
