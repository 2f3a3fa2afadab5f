/*
 * The x-statsig-id of each grok.com call. With grok.statsig_signer_url
 * set, an external signer is asked for a value per method and path; the
 * answer is cached for an hour in this worker and forgotten after a 403
 * or an anti-bot answer. Without a signer, or while it fails, the value
 * is generated (dynamic_statsig, with statsig_prefix) or fixed
 * (x_statsig_id). Worker only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "grok.h"
#include "log.h"
#include "util.h"
#include "wrk.h"

#define SIG_TTL_MS   3600000
#define SIG_SLOTS    8
#define SIG_MAGIC    0x53494731u
#define SIG_BODY_MAX 4096

struct sig_slot {
	char key[96]; /* "POST /rest/..." */
	char value[160];
	int64_t at_ms;
};

/* This worker's cache; global because it outlives requests. */
static struct sig_slot sig_cache[SIG_SLOTS];

struct wrk_sig_fetch {
	unsigned magic;
	struct wrk_xfer x;
	struct buf body;
	struct curl_slist *hdrs;
	char *payload;
	char key[96];
	wrk_statsig_fn *fn;
	void *arg;
};

static struct sig_slot *
sig_find(const char *key, bool make)
{
	struct sig_slot *old = &sig_cache[0];
	size_t i;

	for (i = 0; i < SIG_SLOTS; i++) {
		if (strcmp(sig_cache[i].key, key) == 0)
			return &sig_cache[i];
		if (sig_cache[i].at_ms < old->at_ms)
			old = &sig_cache[i];
	}
	if (!make)
		return NULL;
	memset(old, 0, sizeof(*old));
	(void)snprintf(old->key, sizeof(old->key), "%s", key);
	return old;
}

static void
sig_fallback(const struct wrk *w, char *out, size_t len)
{
	if (w->cfg->dynamic_statsig)
		grok_statsig_generate(w->cfg->statsig_prefix, out, len);
	else
		(void)snprintf(out, len, "%s", w->cfg->x_statsig_id);
}

int
wrk_statsig(
    struct wrk *w, const char *method, const char *path, char *out, size_t len)
{
	struct sig_slot *s;
	char key[96];

	if (w->cfg->statsig_signer_url[0] == '\0') {
		sig_fallback(w, out, len);
		return 0;
	}
	(void)snprintf(key, sizeof(key), "%s %s", method, path);
	s = sig_find(key, false);
	if (s != NULL && s->value[0] != '\0' &&
	    util_mono_ms() - s->at_ms < SIG_TTL_MS) {
		(void)snprintf(out, len, "%s", s->value);
		return 0;
	}
	sig_fallback(w, out, len);
	return 1;
}

void
wrk_statsig_forget(struct wrk *w, const char *method, const char *path)
{
	struct sig_slot *s;
	char key[96];

	(void)w;
	(void)snprintf(key, sizeof(key), "%s %s", method, path);
	if ((s = sig_find(key, false)) != NULL)
		s->value[0] = '\0';
}

static void
sig_free(struct wrk_sig_fetch *f)
{
	if (f->x.easy != NULL)
		curl_easy_cleanup(f->x.easy);
	curl_slist_free_all(f->hdrs);
	free(f->payload);
	buf_fini(&f->body);
	f->magic = 0;
	free(f);
}

void
wrk_statsig_cancel(struct wrk *w, struct wrk_sig_fetch *f)
{
	if (f == NULL)
		return;
	wrk_up_stop(w, &f->x);
	sig_free(f);
}

static size_t
sig_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wrk_sig_fetch *f = arg;

	CHECK_OBJ(f, SIG_MAGIC);
	if (buf_append(&f->body, data, size * nmemb) != 0)
		return 0;
	return size * nmemb;
}

static void
sig_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct wrk_sig_fetch *f = x->arg;
	const char *v = NULL;
	struct sig_slot *s;
	json_t *root = NULL;
	long status = 0;
	size_t i;

	CHECK_OBJ(f, SIG_MAGIC);
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status == 200) {
		root = json_loadb(
		    f->body.p ? f->body.p : "", f->body.len, 0, NULL);
		v = json_string_value(json_object_get(root, "x-statsig-id"));
	}
	/* A header value: printable ASCII only. */
	for (i = 0; v != NULL && v[i] != '\0'; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			v = NULL;
	if (v != NULL && v[0] != '\0' && strlen(v) < sizeof(s->value)) {
		s = sig_find(f->key, true);
		(void)snprintf(s->value, sizeof(s->value), "%s", v);
		s->at_ms = util_mono_ms();
	} else {
		log_warnx("statsig signer %s: %s (status %ld); using a %s "
		          "x-statsig-id",
		    w->cfg->statsig_signer_url,
		    rc != CURLE_OK ? curl_easy_strerror(rc) : "no value",
		    status, w->cfg->dynamic_statsig ? "generated" : "fixed");
	}
	json_decref(root);
	f->fn(w, f->arg);
	sig_free(f);
}

int
wrk_statsig_fetch(struct wrk *w, const char *method, const char *path,
    wrk_statsig_fn *fn, void *arg, struct wrk_sig_fetch **fp)
{
	struct wrk_sig_fetch *f;
	json_t *body;

	*fp = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return WP_ENOMEM;
	f->magic = SIG_MAGIC;
	f->fn = fn;
	f->arg = arg;
	buf_init(&f->body, SIG_BODY_MAX);
	(void)snprintf(f->key, sizeof(f->key), "%s %s", method, path);
	body = json_pack("{s:s, s:s}", "method", method, "path", path);
	f->payload = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	f->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (f->payload == NULL || f->hdrs == NULL ||
	    (f->x.easy = curl_easy_init()) == NULL) {
		sig_free(f);
		return WP_ENOMEM;
	}
	f->x.magic = WRK_XFER_MAGIC;
	f->x.arg = f;
	f->x.done = sig_done;
	wrk_up_defaults(w, f->x.easy);
	(void)curl_easy_setopt(
	    f->x.easy, CURLOPT_URL, w->cfg->statsig_signer_url);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_PROXY, "");
	(void)curl_easy_setopt(f->x.easy, CURLOPT_HTTPHEADER, f->hdrs);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_POSTFIELDS, f->payload);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_TIMEOUT_MS, 10000L);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_WRITEFUNCTION, sig_on_body);
	(void)curl_easy_setopt(f->x.easy, CURLOPT_WRITEDATA, f);
	if (wrk_up_start(w, &f->x) != 0) {
		sig_free(f);
		return WP_EINVAL;
	}
	*fp = f;
	return 0;
}
