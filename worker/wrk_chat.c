/*
 * POST /v1/chat/completions: one request from the client's body to the
 * last byte of its answer. It picks a token from the shared pool, sends
 * conversations/new through the worker's curl multi handle, retries
 * before the first byte reaches the client (403: fresh proxy; the
 * retry_status_codes: another token, with backoff), turns grok's NDJSON
 * events into OpenAI output as they arrive, and keeps the token's books.
 *
 * The client connection is suspended in MHD while we wait for upstream
 * bytes, and resumed when there is something to send. While suspended its
 * fd is watched for a hang-up, so a client that leaves stops the upstream
 * transfer at once. struct wrk_chat is owned by the request (wrk_req) and
 * freed only in MHD's completion callback. Worker only; one thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "grok.h"
#include "log.h"
#include "media.h"
#include "oai.h"
#include "oai_out.h"
#include "tok.h"
#include "util.h"
#include "wrk.h"

#define CHAT_PATH          "/rest/app-chat/conversations/new"
#define CHAT_MAGIC         0x43484154u
#define CHAT_RL_MAGIC      0x43524c31u
#define CHAT_SSE_MAX       (1u << 20)  /* client this far behind: dropped */
#define CHAT_ANSWER_MAX    (64u << 20) /* a non-stream answer: base64 images */
#define CHAT_MEDIA_MAX     8           /* images in; images or videos out */
#define CHAT_LINE_MAX      (4u << 20)  /* one upstream NDJSON object */
#define CHAT_ERRBODY_MAX   8192        /* what we keep of a failed answer */
#define CHAT_MSG_MAX       (16u << 20) /* the flattened history */
#define CHAT_PING_MS       15000
#define CHAT_MAX_403       5 /* more tries after a 403, new proxy each */
#define CHAT_MAX_RETRY     3 /* more tries for retry_status_codes */
#define CHAT_403_WAIT_MS   200
#define CHAT_RETRY_WAIT_MS 100   /* doubled each time */
#define CHAT_COOL_429_MS   60000 /* until the rate-limits answer says */

/* Why an attempt ended before the answer began. */
enum chat_fail {
	CHAT_F_NONE,
	CHAT_F_HTTP,    /* a non-200 status */
	CHAT_F_INBAND,  /* 200, then an error event */
	CHAT_F_EMPTY,   /* 200 with no answer */
	CHAT_F_NET,     /* transport failure */
	CHAT_F_TIMEOUT, /* our first-response timeout */
	CHAT_F_SLOW,    /* the client fell CHAT_SSE_MAX behind */
};

struct wrk_chat {
	unsigned magic;
	struct wrk *w;
	struct wrk_req *rq;
	struct MHD_Connection *conn;
	struct wrk_chat *next, *prev; /* w->chats */
	const struct cfg_model *model;
	char *message; /* flattened history */
	bool stream;
	uint32_t max_tokens; /* 0 = none */

	/* The current attempt. */
	struct wrk_xfer x;
	struct curl_slist *hdrs;
	char *payload;
	long status;
	int64_t retry_after_s; /* from a 429's Retry-After */
	struct buf errbody;
	struct tok_lease lease;
	bool leased;
	char proxy[CFG_STR_MAX]; /* of the current attempt */
	unsigned n403, nretry;
	int64_t retry_at_ms; /* waiting to try again; 0 = not */
	enum chat_fail fail;
	int fail_code; /* in-band error code */
	char fail_msg[256];
	long last_status;    /* the last failed attempt, for the answer */
	char last_what[256]; /* when no token is left to try */

	/* The answer. */
	struct grok_nd nd;
	struct oai_out out;
	struct buf sse;   /* stream: bytes the client has not taken */
	char *final_text; /* modelResponse.message, if no token came */
	bool committed;   /* the answer began: no more retries */
	bool saw_text;    /* a token of text arrived */
	bool cut;         /* stopped at max_tokens */
	bool finished;    /* the end (or error) is in sse / answer ready */
	bool suspended;
	bool client_gone;
	bool queued;            /* an MHD response is queued */
	unsigned answer_status; /* non-stream or error answer, to queue */
	char *answer_body;
	char retry_after[24];
	int64_t t_start_ms, t_up_ms, t_out_ms;

	/* Media: input images, generated images and videos. */
	char base_url[CFG_STR_MAX]; /* of the links we hand out */
	size_t nin;                 /* input images */
	struct chat_in {
		char *src;
		struct buf bytes;
		char mime[32];
		char *file_id, *file_uri;
	} in[CHAT_MEDIA_MAX];
	bool uploaded;    /* for the token now leased */
	char *post_id;    /* the media post of a video request */
	unsigned pending; /* media ops running */
	struct media_op *ops[2 * CHAT_MEDIA_MAX];
	size_t nout;
	struct chat_out {
		char *path; /* upstream asset path */
		enum media_kind kind;
		char name[48]; /* cache file; "" when the download failed */
	} out_media[CHAT_MEDIA_MAX];
	int img_progress[CHAT_MEDIA_MAX], video_progress;
	bool media_started;
	struct wrk_sig_fetch *sig; /* asking the statsig signer */
	bool sig_asked;
	/* POST /v1/images/generations */
	bool images_api;
	unsigned images_n;
	bool images_b64;
};

/* A quota refresh after an answer: /rest/rate-limits for one token. */
struct chat_rl {
	unsigned magic;
	struct wrk_xfer x;
	struct curl_slist *hdrs;
	char *payload;
	uint32_t row, row_gen;
	bool heavy;
	struct buf body;
};

static void chat_attempt(struct wrk_chat *c);
static void chat_send(struct wrk_chat *c);
static void chat_prep(struct wrk_chat *c);
static void chat_finish(struct wrk_chat *c);
static bool chat_media_start(struct wrk_chat *c);
static void chat_media_emit(struct wrk_chat *c);
static void chat_images_answer(struct wrk_chat *c);
static void chat_wake(struct wrk_chat *c);

static const char *
chat_pool_name(const struct wrk_chat *c)
{
	return c->model->pool == CFG_POOL_SUPER ? "ssoSuper"
	                                        : "ssoNormal/ssoSuper";
}

/* ---- the client side ---------------------------------------------------- */

static void
chat_on_hangup(void *arg)
{
	struct wrk_chat *c = arg;

	CHECK_OBJ(c, CHAT_MAGIC);
	log_debug("chat: client left while waiting");
	c->client_gone = true;
	wrk_up_stop(c->w, &c->x);
	chat_wake(c);
}

/* Park the client until there is something to send it. */
static void
chat_suspend(struct wrk_chat *c)
{
	if (c->suspended || c->client_gone)
		return;
	MHD_suspend_connection(c->conn);
	c->suspended = true;
	/* MHD does not see a hang-up while suspended: we watch for it. */
	if (c->rq->conn != NULL)
		(void)wrk_conn_park(c->w, c->rq->conn, chat_on_hangup, c);
	/* else (or on failure) pings will notice instead */
}

static void
chat_wake(struct wrk_chat *c)
{
	if (!c->suspended)
		return;
	if (c->rq->conn != NULL)
		wrk_conn_unpark(c->rq->conn);
	c->suspended = false;
	wrk_http_resume(c->w, c->conn); /* runs its MHD daemon at once */
}

static void
chat_answer(struct wrk_chat *c, unsigned status, char *body)
{
	free(c->answer_body);
	c->answer_status = status;
	c->answer_body = body;
	c->finished = true;
	/* Out of memory for the answer itself: close, never park the client. */
	if (body == NULL)
		c->client_gone = true;
	chat_wake(c);
}

static void chat_answer_error(
    struct wrk_chat *c, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An error before or instead of the answer: the OpenAI envelope. */
static void
chat_answer_error(
    struct wrk_chat *c, unsigned status, const char *code, const char *fmt, ...)
{
	struct buf *o = &c->sse;
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status >= 500)
		atomic_fetch_add_explicit(
		    &c->w->me->c.upstream_errors, 1, memory_order_relaxed);
	if (c->committed && c->stream) {
		/* Streaming began: an error event, then [DONE]. */
		if (!c->finished &&
		    oai_out_error(
		        &c->out, msg, oai_error_type(status), code, o) != 0)
			c->client_gone = true; /* cannot even say it: close */
		c->finished = true;
		chat_wake(c);
		return;
	}
	chat_answer(
	    c, status, oai_error(msg, oai_error_type(status), NULL, code));
}

static ssize_t
chat_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct wrk_chat *c = cls;
	size_t n;

	(void)pos;
	CHECK_OBJ(c, CHAT_MAGIC);
	if (c->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (c->sse.len > 0) {
		n = c->sse.len < max ? c->sse.len : max;
		memcpy(out, c->sse.p, n);
		buf_consume(&c->sse, n);
		c->t_out_ms = util_mono_ms();
		return (ssize_t)n;
	}
	if (c->finished)
		return MHD_CONTENT_READER_END_OF_STREAM;
	chat_suspend(c);
	return 0;
}

int
wrk_chat_resumed(struct wrk_chat *c, struct MHD_Connection *conn)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	CHECK_OBJ(c, CHAT_MAGIC);
	if (c->client_gone)
		return MHD_NO;
	if (c->queued)
		return MHD_YES;
	if (c->answer_body != NULL) {
		c->queued = true;
		r = (enum MHD_Result)wrk_send_json(c->rq, conn,
		    c->answer_status, c->answer_body,
		    c->retry_after[0] ? c->retry_after : NULL);
		c->answer_body = NULL;
		return r;
	}
	if (!(c->committed && c->stream)) {
		chat_suspend(c); /* woken early: nothing to say yet */
		return MHD_YES;
	}
	/*
	 * The block is a buffer MHD allocates per response and fills only
	 * for HTTP/1.0 (chunked frames go straight to the connection's
	 * buffer): 16 KiB of it was ~130 MiB at 10,000 streams.
	 */
	resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, 1024, chat_reader, c, NULL);
	if (resp == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(
	    resp, "Content-Type", "text/event-stream; charset=utf-8");
	(void)MHD_add_response_header(
	    resp, "Cache-Control", "no-cache, no-transform");
	(void)MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	wrk_cors(c->w, conn, resp);
	c->rq->status = 200;
	c->queued = true;
	r = MHD_queue_response(conn, 200, resp);
	MHD_destroy_response(resp);
	return r;
}

/* ---- the token's books --------------------------------------------------- */

static void
chat_release(struct wrk_chat *c)
{
	if (!c->leased)
		return;
	wrk_lease_release(c->w, &c->lease);
	c->leased = false;
}

static size_t
chat_rl_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct chat_rl *r = arg;

	CHECK_OBJ(r, CHAT_RL_MAGIC);
	if (buf_append(&r->body, data, size * nmemb) != 0)
		return 0;
	return size * nmemb;
}

static void
chat_rl_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct chat_rl *r = x->arg;
	int64_t wait_s = 0;
	int32_t remaining;
	long status = 0;

	CHECK_OBJ(r, CHAT_RL_MAGIC);
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status == 200 &&
	    grok_ratelimits_parse(r->body.p != NULL ? r->body.p : "",
	        r->body.len, r->heavy, &remaining, &wait_s) == 0)
		(void)tok_set_quota(w->shm->tok, r->row, r->row_gen, r->heavy,
		    remaining, wait_s, util_now_ms());
	else
		log_debug("rate-limits: status %ld, %s", status,
		    curl_easy_strerror(rc));
	wrk_up_easy_put(w, x->easy, false);
	grok_headers_free(r->hdrs);
	free(r->payload);
	buf_fini(&r->body);
	r->magic = 0;
	free(r);
}

/* Ask grok.com what the token has left; the answer lands in the table. */
static void
chat_refresh_quota(struct wrk_chat *c)
{
	struct wrk *w = c->w;
	char url[CFG_STR_MAX + 32], statsig[160], rid[40], proxy[CFG_STR_MAX];
	struct chat_rl *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return;
	r->magic = CHAT_RL_MAGIC;
	r->row = c->lease.row;
	r->row_gen = c->lease.row_gen;
	r->heavy = c->lease.heavy;
	buf_init(&r->body, 16384);
	r->payload = grok_ratelimits_body(c->model->rate_limit_model);
	(void)wrk_statsig(
	    w, "POST", "/rest/rate-limits", statsig, sizeof(statsig));
	grok_request_id(rid);
	r->hdrs = grok_headers(w->cfg, c->lease.token, statsig, rid);
	r->x.magic = WRK_XFER_MAGIC;
	r->x.arg = r;
	r->x.done = chat_rl_done;
	if (r->payload == NULL || r->hdrs == NULL ||
	    (r->x.easy = wrk_up_easy(w, false)) == NULL)
		goto fail;
	(void)snprintf(
	    url, sizeof(url), "%s/rest/rate-limits", w->cfg->upstream_url);
	wrk_proxy_get(w, proxy, sizeof(proxy));
	(void)curl_easy_setopt(r->x.easy, CURLOPT_URL, url);
	(void)curl_easy_setopt(r->x.easy, CURLOPT_PROXY, proxy);
	(void)curl_easy_setopt(r->x.easy, CURLOPT_HTTPHEADER, r->hdrs);
	(void)curl_easy_setopt(r->x.easy, CURLOPT_POSTFIELDS, r->payload);
	(void)curl_easy_setopt(r->x.easy, CURLOPT_TIMEOUT_MS, 30000L);
	(void)curl_easy_setopt(r->x.easy, CURLOPT_WRITEFUNCTION, chat_rl_write);
	(void)curl_easy_setopt(r->x.easy, CURLOPT_WRITEDATA, r);
	if (wrk_up_start(w, &r->x) != 0)
		goto fail;
	return;
fail:
	wrk_up_easy_put(w, r->x.easy, false);
	grok_headers_free(r->hdrs);
	free(r->payload);
	buf_fini(&r->body);
	free(r);
}

/* The answer began: no more retries; the token pays for it. */
static void
chat_commit(struct wrk_chat *c)
{
	if (c->committed)
		return;
	c->committed = true;
	if (c->leased)
		(void)tok_charge(
		    c->w->shm->tok, &c->lease, c->model->cost, util_now_ms());
	if (c->stream)
		chat_wake(c); /* MHD asks again and gets the SSE response */
}

/* ---- the upstream answer ------------------------------------------------ */

static int
chat_text(struct wrk_chat *c, const char *text, size_t len, bool thinking)
{
	int rc;

	if (len == 0)
		return 0;
	chat_commit(c);
	rc = oai_out_text(&c->out, text, len, thinking, &c->sse);
	if (rc != 0) {
		c->fail = CHAT_F_SLOW;
		return rc;
	}
	if (c->max_tokens != 0 && c->out.completion_tokens >= c->max_tokens) {
		c->cut = true;
		return 1; /* stop reading: the answer is long enough */
	}
	if (c->stream && c->sse.len > 0)
		chat_wake(c);
	return 0;
}

static int
chat_search(struct wrk_chat *c, const struct grok_ev *ev)
{
	char line[1024];
	size_t i, n = 0;
	int len;

	/* A hit inside the thinking block, as a Markdown link. */
	len = snprintf(line, sizeof(line), "\n- [%s](%s", ev->title, ev->url);
	if (len < 0 || (size_t)len >= sizeof(line) - 4)
		return 0;
	n = (size_t)len;
	if (ev->preview[0] != '\0') {
		line[n++] = ' ';
		line[n++] = '"';
		for (i = 0; ev->preview[i] != '\0' && n < sizeof(line) - 4;
		     i++) {
			char ch = ev->preview[i];

			/* One line per hit: a line break becomes a space. */
			if (ch == '\n' || ch == '\r' || ch == '\t')
				ch = ' ';
			if (ch == ' ' && line[n - 1] == ' ')
				continue;
			line[n++] = ch == '"' ? '\'' : ch;
		}
		line[n++] = '"';
	}
	line[n++] = ')';
	line[n++] = '\n';
	return chat_text(c, line, n, true);
}

static int
chat_out_add(struct wrk_chat *c, const char *path, enum media_kind kind)
{
	size_t i;

	for (i = 0; i < c->nout; i++) /* the same asset said twice */
		if (strcmp(c->out_media[i].path, path) == 0)
			return 0;
	if ((c->out_media[c->nout].path = strdup(path)) == NULL)
		return WP_ENOMEM;
	c->out_media[c->nout].kind = kind;
	c->out_media[c->nout].name[0] = '\0';
	c->nout++;
	return 0;
}

/* Progress of an image or video, shown inside the reasoning. */
static int
chat_progress(struct wrk_chat *c, const struct grok_ev *ev)
{
	int *last = ev->kind == GROK_EV_VIDEO_PROGRESS ? &c->video_progress
	    : ev->index >= 0 && ev->index < CHAT_MEDIA_MAX
	    ? &c->img_progress[ev->index]
	    : NULL;
	char line[96];
	int n;

	if (last == NULL || ev->progress <= *last)
		return 0;
	*last = ev->progress;
	if (ev->kind == GROK_EV_VIDEO_PROGRESS)
		n = snprintf(line, sizeof(line), "Generating video: %d%%\n",
		    ev->progress);
	else
		n = snprintf(line, sizeof(line), "Generating image %d: %d%%\n",
		    ev->index + 1, ev->progress);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return 0;
	return chat_text(c, line, (size_t)n, true);
}

static int
chat_on_event(void *arg, const struct grok_ev *ev)
{
	struct wrk_chat *c = arg;
	size_t i;

	CHECK_OBJ(c, CHAT_MAGIC);
	switch (ev->kind) {
	case GROK_EV_TOKEN:
		if (ev->len == 0)
			return 0;
		c->saw_text = true;
		if (ev->header) {
			char hdr[512];
			int n =
			    snprintf(hdr, sizeof(hdr), "\n\n%s\n\n", ev->text);

			if (n > 0 && (size_t)n < sizeof(hdr))
				return chat_text(
				    c, hdr, (size_t)n, ev->thinking);
		}
		return chat_text(c, ev->text, ev->len, ev->thinking);
	case GROK_EV_SEARCH:
		return chat_search(c, ev);
	case GROK_EV_FINAL:
		chat_commit(c);
		if (!c->saw_text && ev->len > 0 && c->final_text == NULL)
			c->final_text = strdup(ev->text);
		return 0;
	case GROK_EV_ERROR:
		c->fail_code = ev->code;
		(void)snprintf(
		    c->fail_msg, sizeof(c->fail_msg), "%s", ev->text);
		c->fail = CHAT_F_INBAND;
		return 1; /* stop: handled when the transfer ends */
	case GROK_EV_IMAGE_PROGRESS:
	case GROK_EV_VIDEO_PROGRESS:
		return chat_progress(c, ev);
	case GROK_EV_IMAGES:
		for (i = 0; i < ev->nurls && c->nout < CHAT_MEDIA_MAX; i++)
			if (chat_out_add(c, ev->urls[i], MEDIA_IMAGE) != 0)
				return 1;
		chat_commit(c);
		return 0;
	case GROK_EV_VIDEO:
		if (c->nout < CHAT_MEDIA_MAX &&
		    chat_out_add(c, ev->url, MEDIA_VIDEO) != 0)
			return 1;
		chat_commit(c);
		return 0;
	}
	return 0;
}

static size_t
chat_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wrk_chat *c = arg;
	size_t n = size * nmemb;
	int64_t v;
	char tmp[32];

	CHECK_OBJ(c, CHAT_MAGIC);
	if (n > 12 && n < 12 + sizeof(tmp) &&
	    strncasecmp(data, "retry-after:", 12) == 0) {
		size_t k = 0, i = 12;

		while (i < n && data[i] == ' ')
			i++;
		while (i < n && data[i] >= '0' && data[i] <= '9')
			tmp[k++] = data[i++];
		tmp[k] = '\0';
		if (util_parse_i64(tmp, 0, 86400 * 7, &v) == 0)
			c->retry_after_s = v;
	}
	return n;
}

static size_t
chat_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wrk_chat *c = arg;
	size_t n = size * nmemb;

	CHECK_OBJ(c, CHAT_MAGIC);
	c->t_up_ms = util_mono_ms();
	if (c->status == 0)
		(void)curl_easy_getinfo(
		    c->x.easy, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->status != 200) {
		/* Keep the start of a failure's body for its message. */
		if (c->errbody.len < CHAT_ERRBODY_MAX)
			(void)buf_append(&c->errbody, data,
			    CHAT_ERRBODY_MAX - c->errbody.len < n
			        ? CHAT_ERRBODY_MAX - c->errbody.len
			        : n);
		return n;
	}
	if (grok_nd_feed(&c->nd, data, n, chat_on_event, c) != 0)
		return 0; /* abort: chat_done reads why */
	return n;
}

static bool
chat_retry_code(const struct wrk_chat *c, long status)
{
	return cfg_retry_code(c->w->cfg, (int)status);
}

/* Try again after wait_ms: with a new token when another_token. */
static void
chat_retry_later(struct wrk_chat *c, int64_t wait_ms, bool another_token)
{
	if (another_token)
		chat_release(c);
	c->retry_at_ms = util_mono_ms() + wait_ms;
	if (c->w->next_due_ms == 0 || c->retry_at_ms < c->w->next_due_ms)
		c->w->next_due_ms = c->retry_at_ms;
}

/* Cool the token after a 429 and learn from grok.com for how long. */
static void
chat_book_429(struct wrk_chat *c)
{
	int64_t ms =
	    c->retry_after_s > 0 ? c->retry_after_s * 1000 : CHAT_COOL_429_MS;

	(void)tok_cool(c->w->shm->tok, c->lease.row, c->lease.row_gen,
	    util_now_ms() + ms, "429: rate limited by grok.com", util_now_ms());
	chat_refresh_quota(c);
}

static void
chat_fail_final(struct wrk_chat *c, long status, const char *what)
{
	char fp[LOG_TOK_LEN];
	int64_t retry_at = 0;

	(void)log_tok(c->lease.token, fp, sizeof(fp));
	if (status == 401) {
		chat_answer_error(c, 502, "upstream_unauthorized",
		    "grok.com rejected the %s token %s (401: %s) on every try; "
		    "a token is marked expired after %d such answers in a "
		    "row: replace it in the admin panel (/projects/grok) or "
		    "in token.json",
		    c->lease.type == TOK_SUPER ? "ssoSuper" : "ssoNormal", fp,
		    what, TOK_FAIL_EXPIRE);
	} else if (status == 403) {
		chat_answer_error(c, 502, "upstream_blocked",
		    "grok.com refused the request (403: %s) after %u tries: "
		    "this server's address is blocked; set grok.cf_clearance, "
		    "grok.proxy_url or grok.proxy_pool_url",
		    what, c->n403 + 1);
	} else if (status == 429) {
		struct tok_lease l;

		/* When does any token of this pool come back? */
		if (tok_pick(c->w->shm->tok, (enum cfg_pool)c->model->pool,
		        util_now_ms(), UINT32_MAX, &l, &retry_at) == 0) {
			tok_release(c->w->shm->tok, &l);
			retry_at = util_now_ms() + 1000;
		}
		if (retry_at > 0)
			(void)snprintf(c->retry_after, sizeof(c->retry_after),
			    "%lld",
			    (long long)((retry_at - util_now_ms() + 999) /
			        1000));
		chat_answer_error(c, 429, "rate_limit_exceeded",
		    "grok.com rate-limited every %s token tried for %s (429: "
		    "%s); try again later or add tokens",
		    chat_pool_name(c), c->model->name, what);
	} else {
		chat_answer_error(c, 502, "upstream_error",
		    "grok.com answered %ld: %s", status, what);
	}
}

/* A proxy URL without its user and password, for messages. */
static void
chat_proxy_shown(const char *proxy, char *out, size_t len)
{
	const char *scheme = strstr(proxy, "://"), *at;

	at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
	if (at == NULL)
		(void)snprintf(out, len, "%s", proxy);
	else
		(void)snprintf(out, len, "%.*s://%s", (int)(scheme - proxy),
		    proxy, at + 1);
}

/* The attempt failed before the answer began: retry or answer. */
static void
chat_failed(struct wrk_chat *c, CURLcode rc)
{
	struct tok_table *t = c->w->shm->tok;
	char what[256];
	bool anti_bot = false;
	long status = c->status;

	if (c->fail == CHAT_F_INBAND) {
		/* An error line in a 200: take its kind from its code. */
		(void)snprintf(what, sizeof(what), "%s", c->fail_msg);
		status = c->fail_code == 7 ? 403
		    : c->fail_code == 8    ? 429
		    : c->fail_code == 16   ? 401
		                           : 502;
	} else if (c->fail == CHAT_F_TIMEOUT) {
		chat_answer_error(c, 504, "upstream_timeout",
		    "grok.com sent no answer within %d s "
		    "(grok.stream_first_response_timeout)",
		    c->w->cfg->stream_first_response_timeout);
		return;
	} else if (c->fail == CHAT_F_NET) {
		chat_answer_error(c, 502, "upstream_cut",
		    "the grok.com answer broke off before it began: %s",
		    curl_easy_strerror(rc));
		return;
	} else if (c->fail == CHAT_F_EMPTY) {
		chat_answer_error(c, 502, "upstream_empty",
		    "grok.com answered 200 with no answer in it");
		return;
	} else if (rc != CURLE_OK && c->status == 0 && c->proxy[0] != '\0' &&
	    (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_PROXY ||
	        rc == CURLE_PROXY || rc == CURLE_RECV_ERROR ||
	        rc == CURLE_SEND_ERROR)) {
		char shown[CFG_STR_MAX];

		chat_proxy_shown(c->proxy, shown, sizeof(shown));
		chat_answer_error(c, 502, "proxy_unreachable",
		    "could not reach grok.com through the proxy %s "
		    "(grok.proxy_url or grok.proxy_pool_url): %s",
		    shown, curl_easy_strerror(rc));
		return;
	} else if (rc != CURLE_OK && c->status == 0) {
		chat_answer_error(c, 502, "upstream_unreachable",
		    "could not reach grok.com (%s): %s",
		    c->w->cfg->upstream_url, curl_easy_strerror(rc));
		return;
	} else {
		grok_error_describe(status,
		    c->errbody.p != NULL ? c->errbody.p : "", c->errbody.len,
		    what, sizeof(what), &anti_bot);
	}
	if (status == 403) {
		/* The address, not the token: a fresh proxy, same token. */
		if (c->n403 < CHAT_MAX_403) {
			c->n403++;
			wrk_proxy_refresh(c->w, true);
			/* A signed value may be what it refused: sign anew. */
			wrk_statsig_forget(c->w, "POST", CHAT_PATH);
			c->sig_asked = false;
			chat_retry_later(c, CHAT_403_WAIT_MS, false);
			return;
		}
		chat_fail_final(c, status, what);
		return;
	}
	if (status == 401)
		(void)tok_fail(t, c->lease.row, c->lease.row_gen, 401, what,
		    util_now_ms());
	else if (status == 429)
		chat_book_429(c);
	if (chat_retry_code(c, status) && c->nretry < CHAT_MAX_RETRY) {
		char fp[LOG_TOK_LEN];

		log_info("chat: token %s: grok.com answered %ld (%s); trying "
		         "again",
		    log_tok(c->lease.token, fp, sizeof(fp)), status, what);
		c->last_status = status;
		(void)snprintf(c->last_what, sizeof(c->last_what), "%s", what);
		c->nretry++;
		chat_retry_later(
		    c, (int64_t)CHAT_RETRY_WAIT_MS << (c->nretry - 1), true);
		return;
	}
	chat_fail_final(c, status, what);
}

static void
chat_finish(struct wrk_chat *c)
{
	char *body;

	if (c->nout > 0 && !c->media_started && chat_media_start(c))
		return; /* the last download calls again */
	if (c->images_api) {
		chat_images_answer(c);
		return;
	}
	if (c->final_text != NULL && !c->saw_text)
		(void)chat_text(c, c->final_text, strlen(c->final_text), false);
	if (c->nout > 0)
		chat_media_emit(c);
	if (oai_out_finish(&c->out, c->cut ? "length" : "stop", &c->sse) != 0) {
		chat_answer_error(c, 502, "internal_error",
		    "the answer could not be encoded");
		return;
	}
	if (c->stream) {
		c->finished = true;
		chat_wake(c);
		return;
	}
	/* Non-stream: sse holds the chat.completion object. */
	body = buf_take(&c->sse);
	buf_init(&c->sse, CHAT_SSE_MAX);
	chat_answer(c, 200, body);
}

static void
chat_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct wrk_chat *c = x->arg;

	(void)w;
	CHECK_OBJ(c, CHAT_MAGIC);
	if (c->status == 0)
		(void)curl_easy_getinfo(
		    x->easy, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->status == 200 && c->fail == CHAT_F_NONE && !c->cut)
		(void)grok_nd_end(&c->nd, chat_on_event, c);
	if (c->status == 200 && c->fail == CHAT_F_NONE && !c->committed) {
		if (rc == CURLE_OK)
			c->fail = CHAT_F_EMPTY;
		else if (c->status == 200)
			c->fail = CHAT_F_NET;
	}
	if (!c->committed) {
		chat_failed(c, rc);
		if (c->retry_at_ms == 0)
			chat_release(c);
		return;
	}
	if (c->fail == CHAT_F_INBAND || c->fail == CHAT_F_SLOW) {
		chat_answer_error(c, 502, "upstream_error",
		    "grok.com failed mid-answer: %s",
		    c->fail == CHAT_F_SLOW ? "the client fell too far behind"
		                           : c->fail_msg);
	} else if (rc != CURLE_OK && !c->cut) {
		chat_answer_error(c, 502, "upstream_cut",
		    "the grok.com answer broke off: %s",
		    curl_easy_strerror(rc));
	} else {
		chat_finish(c);
	}
	if (c->leased &&
	    tok_sync_due(c->w->shm->tok, &c->lease, util_mono_ms()))
		chat_refresh_quota(c);
	chat_release(c);
}

/* ---- media: images in, images and videos out ----------------------------- */

static void
chat_cancel_ops(struct wrk_chat *c)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(c->ops); i++) {
		media_cancel(c->w, c->ops[i]);
		c->ops[i] = NULL;
	}
	c->pending = 0;
}

/* A step of the input pipeline failed: tell the client which image. */
static void
chat_prep_failed(struct wrk_chat *c, const struct media_res *res)
{
	chat_cancel_ops(c);
	if (res->rc == WP_EINVAL || res->rc == WP_ETOOBIG)
		chat_answer_error(c, 400, "invalid_image", "%s", res->err);
	else
		chat_answer_error(c, 502, "upstream_error", "%s", res->err);
	chat_release(c);
}

/* A media op could not even start. */
static void
chat_prep_nostart(struct wrk_chat *c, const char *what)
{
	struct media_res res;

	c->pending--;
	memset(&res, 0, sizeof(res));
	res.rc = WP_ESYS;
	res.err = what;
	chat_prep_failed(c, &res);
}

static void
chat_posted(struct wrk *w, void *arg, int idx, const struct media_res *res)
{
	struct wrk_chat *c = arg;

	(void)w;
	CHECK_OBJ(c, CHAT_MAGIC);
	c->ops[idx] = NULL;
	c->pending--;
	/* Without a post the video still works from the asset URL. */
	if (res->rc == 0 && (c->post_id = strdup(res->post_id)) == NULL)
		res = NULL;
	if (res != NULL && res->rc != 0)
		log_info("chat: media post: %s", res->err);
	c->uploaded = true;
	chat_send(c);
}

static void
chat_uploaded(struct wrk *w, void *arg, int idx, const struct media_res *res)
{
	struct wrk_chat *c = arg;
	struct chat_in *in = &c->in[idx];

	CHECK_OBJ(c, CHAT_MAGIC);
	c->ops[idx] = NULL;
	c->pending--;
	if (res->rc != 0) {
		chat_prep_failed(c, res);
		return;
	}
	free(in->file_id);
	free(in->file_uri);
	in->file_id = strdup(res->file_id);
	in->file_uri = strdup(res->file_uri != NULL ? res->file_uri : "");
	if (in->file_id == NULL || in->file_uri == NULL) {
		chat_cancel_ops(c);
		chat_answer_error(c, 500, "internal_error", "out of memory");
		chat_release(c);
		return;
	}
	if (c->pending > 0)
		return;
	if (c->model->video && c->nin > 0) {
		free(c->post_id);
		c->post_id = NULL;
		c->pending++;
		if (media_post_create(w, c->lease.token, c->in[0].file_uri,
		        chat_posted, c, 0, &c->ops[0]) != 0) {
			c->pending--;
			c->uploaded = true;
			chat_send(c);
		}
		return;
	}
	c->uploaded = true;
	chat_send(c);
}

static void
chat_upload_all(struct wrk_chat *c)
{
	size_t i;

	for (i = 0; i < c->nin; i++) {
		c->pending++;
		if (media_upload(c->w, c->lease.token,
		        (const unsigned char *)c->in[i].bytes.p,
		        c->in[i].bytes.len, c->in[i].mime, chat_uploaded, c,
		        (int)i, &c->ops[i]) != 0) {
			chat_prep_nostart(c, "cannot start an image upload");
			return;
		}
	}
}

static void
chat_fetched(struct wrk *w, void *arg, int idx, const struct media_res *res)
{
	struct wrk_chat *c = arg;
	struct chat_in *in = &c->in[idx];

	(void)w;
	CHECK_OBJ(c, CHAT_MAGIC);
	c->ops[idx] = NULL;
	c->pending--;
	if (res->rc != 0) {
		chat_prep_failed(c, res);
		return;
	}
	buf_reset(&in->bytes);
	if (buf_append(&in->bytes, res->bytes, res->len) != 0) {
		chat_cancel_ops(c);
		chat_answer_error(
		    c, 400, "invalid_image", "image %d is too large", idx + 1);
		chat_release(c);
		return;
	}
	(void)snprintf(in->mime, sizeof(in->mime), "%s", res->mime);
	if (c->pending == 0 && !c->finished)
		chat_upload_all(c);
}

/* Input images: fetched once, uploaded for each token that serves us. */
static void
chat_prep(struct wrk_chat *c)
{
	size_t i;

	if (c->in[0].bytes.len > 0) {
		chat_upload_all(c); /* a retry on another token */
		return;
	}
	/* Count them all first: a data: URI finishes at once. */
	c->pending = (unsigned)c->nin;
	for (i = 0; i < c->nin && !c->finished; i++) {
		if (media_image_get(c->w, c->in[i].src, chat_fetched, c, (int)i,
		        &c->ops[i]) != 0) {
			chat_prep_nostart(c, "cannot start an image download");
			return;
		}
	}
}

static void
chat_downloaded(struct wrk *w, void *arg, int idx, const struct media_res *res)
{
	struct wrk_chat *c = arg;
	struct chat_out *o = &c->out_media[idx];

	(void)w;
	CHECK_OBJ(c, CHAT_MAGIC);
	c->ops[CHAT_MEDIA_MAX + idx] = NULL;
	c->pending--;
	if (res->rc == 0)
		(void)snprintf(o->name, sizeof(o->name), "%s", res->name);
	else
		log_warnx(
		    "media: %s; linking the grok.com asset instead", res->err);
	if (c->pending == 0)
		chat_finish(c);
}

/* Start downloading what grok made; false when there is nothing to wait. */
static bool
chat_media_start(struct wrk_chat *c)
{
	size_t i;

	c->media_started = true;
	for (i = 0; i < c->nout; i++) {
		c->pending++;
		if (media_download(c->w, c->lease.token, c->out_media[i].path,
		        c->out_media[i].kind, chat_downloaded, c, (int)i,
		        &c->ops[CHAT_MEDIA_MAX + i]) != 0) {
			c->pending--;
			log_warnx("media cache: cannot download an asset; "
			          "linking the grok.com asset instead");
		}
	}
	return c->pending > 0;
}

/* A cached file as a data: URI (base64 mode), deleted once read. */
static int
chat_data_uri(struct wrk_chat *c, const char *name, struct buf *out)
{
	char path[CFG_STR_MAX + 96], dir[CFG_STR_MAX + 32];
	struct buf raw;
	char chunk[65536];
	ssize_t n;
	size_t enc;
	int fd, rc = WP_ESYS;

	media_dir(c->w->cfg, MEDIA_IMAGE, dir, sizeof(dir));
	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	buf_init(&raw, MEDIA_IMAGE_MAX);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		goto out;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if ((rc = buf_append(&raw, chunk, (size_t)n)) != 0)
			goto out;
	if (n < 0) {
		rc = WP_ESYS;
		goto out;
	}
	enc =
	    sodium_base64_ENCODED_LEN(raw.len, sodium_base64_VARIANT_ORIGINAL);
	if ((rc = buf_printf(out, "data:%s;base64,", media_mime(name))) != 0 ||
	    (rc = buf_append(out, "", 0)) != 0)
		goto out;
	if (out->len + enc > out->max) {
		rc = WP_ETOOBIG;
		goto out;
	}
	{
		char *p = realloc(out->p, out->len + enc + 1);

		if (p == NULL) {
			rc = WP_ENOMEM;
			goto out;
		}
		out->p = p;
		out->cap = out->len + enc + 1;
	}
	(void)sodium_bin2base64(out->p + out->len, enc,
	    (const unsigned char *)raw.p, raw.len,
	    sodium_base64_VARIANT_ORIGINAL);
	out->len += enc - 1;
	(void)unlink(path); /* base64 answers keep nothing in the cache */
	rc = 0;
out:
	close_fd(&fd);
	buf_fini(&raw);
	return rc;
}

/* The answer's media, as Markdown image links or video tags. */
static void
chat_media_emit(struct wrk_chat *c)
{
	const struct cfg *cfg = c->w->cfg;
	struct buf t;
	size_t i;

	buf_init(&t, CHAT_ANSWER_MAX);
	for (i = 0; i < c->nout; i++) {
		const struct chat_out *o = &c->out_media[i];
		bool video = o->kind == MEDIA_VIDEO;

		buf_reset(&t);
		/* The first link after text starts a line of its own. */
		if (i == 0 && c->saw_text)
			(void)buf_puts(&t, "\n");
		if (o->name[0] == '\0')
			(void)buf_printf(&t,
			    video
			        ? "<video src=\"%s/%s\" controls=\"controls\">"
			          "</video>\n"
			        : "![image](%s/%s)\n",
			    cfg->assets_url, o->path);
		else if (video)
			(void)buf_printf(&t,
			    "<video src=\"%s/images/video/%s\" "
			    "controls=\"controls\"></video>\n",
			    c->base_url, o->name);
		else if (cfg->image_mode == CFG_IMAGE_BASE64) {
			(void)buf_puts(&t, "![image](");
			if (chat_data_uri(c, o->name, &t) != 0) {
				buf_reset(&t);
				(void)buf_printf(&t,
				    "![image](%s/images/image/%s", c->base_url,
				    o->name);
			}
			(void)buf_puts(&t, ")\n");
		} else
			(void)buf_printf(&t, "![image](%s/images/image/%s)\n",
			    c->base_url, o->name);
		if (t.len > 0) {
			if (c->sse.max < t.len + CHAT_SSE_MAX)
				c->sse.max = t.len + CHAT_SSE_MAX;
			(void)chat_text(c, t.p, t.len, false);
		}
	}
	buf_fini(&t);
}

/* POST /v1/images/generations: the images, in the OpenAI shape. */
static void
chat_images_answer(struct wrk_chat *c)
{
	json_t *root, *data, *o;
	struct buf b64;
	char link[CFG_STR_MAX + 96];
	size_t i;
	unsigned n = 0;

	root = json_pack("{s:I, s:[]}", "created",
	    (json_int_t)(util_now_ms() / 1000), "data");
	data = json_object_get(root, "data");
	buf_init(&b64, CHAT_ANSWER_MAX);
	for (i = 0; root != NULL && i < c->nout && n < c->images_n; i++) {
		const struct chat_out *m = &c->out_media[i];

		if (m->kind != MEDIA_IMAGE)
			continue;
		o = NULL;
		if (c->images_b64 && m->name[0] != '\0') {
			buf_reset(&b64);
			if (chat_data_uri(c, m->name, &b64) == 0)
				o = json_pack("{s:s}", "b64_json",
				    strchr(b64.p, ',') + 1);
		} else {
			if (m->name[0] != '\0')
				(void)snprintf(link, sizeof(link),
				    "%s/images/image/%s", c->base_url, m->name);
			else
				(void)snprintf(link, sizeof(link), "%s/%s",
				    c->w->cfg->assets_url, m->path);
			o = json_pack("{s:s, s:s}", "url", link,
			    "revised_prompt", c->message);
		}
		if (o != NULL && json_array_append_new(data, o) == 0)
			n++;
	}
	buf_fini(&b64);
	if (root == NULL || n == 0) {
		json_decref(root);
		chat_answer_error(c, 502, "no_image",
		    "grok.com made no image for this prompt");
		return;
	}
	chat_answer(c, 200, json_dumps(root, JSON_COMPACT));
	json_decref(root);
}

/* ---- one attempt -------------------------------------------------------- */

static void
chat_attempt_reset(struct wrk_chat *c)
{
	grok_headers_free(c->hdrs);
	c->hdrs = NULL;
	free(c->payload);
	c->payload = NULL;
	c->status = 0;
	c->retry_after_s = 0;
	c->fail = CHAT_F_NONE;
	c->fail_code = 0;
	c->fail_msg[0] = '\0';
	buf_reset(&c->errbody);
	grok_nd_fini(&c->nd);
	grok_nd_init(&c->nd, CHAT_LINE_MAX);
}

/* Pick a token (unless we keep the one we have) and send. */
static void
chat_attempt(struct wrk_chat *c)
{
	struct wrk *w = c->w;
	int64_t retry_at = 0;
	/* A retry on another token skips the one that just failed. */
	uint32_t exclude = c->nretry > 0 ? c->lease.row : UINT32_MAX;
	int rc;

	c->retry_at_ms = 0;
	chat_attempt_reset(c);
	if (!c->leased) {
		rc = wrk_lease_pick(w, (enum cfg_pool)c->model->pool, exclude,
		    &c->lease, &retry_at);
		if (rc != 0 && c->last_status != 0) {
			/* No token left to retry on: say what failed. */
			chat_fail_final(c, c->last_status, c->last_what);
			return;
		}
		if (rc == WP_ECOOLING) {
			(void)snprintf(c->retry_after, sizeof(c->retry_after),
			    "%lld",
			    (long long)((retry_at - util_now_ms() + 999) /
			        1000));
			chat_answer_error(c, 429, "rate_limit_exceeded",
			    "every token of the %s pool is cooling down or "
			    "out of quota for %s; the first comes back in %s s",
			    chat_pool_name(c), c->model->name, c->retry_after);
			return;
		}
		if (rc != 0) {
			chat_answer_error(c, 503, "no_token_available",
			    "no usable SSO token in the %s pool for %s: add "
			    "tokens in the admin panel (/projects/grok) or in "
			    "<data_dir>/accounts/grok/token.json and reload",
			    chat_pool_name(c), c->model->name);
			return;
		}
		c->leased = true;
		c->uploaded = false; /* file ids belong to one account */
	}
	if (c->nin > 0 && !c->uploaded) {
		chat_prep(c);
		return;
	}
	chat_send(c);
}

static void
chat_sig_ready(struct wrk *w, void *arg)
{
	struct wrk_chat *c = arg;

	(void)w;
	CHECK_OBJ(c, CHAT_MAGIC);
	c->sig = NULL;
	if (!c->client_gone && !c->finished)
		chat_send(c);
}

/* Send conversations/new with the leased token (and its uploads). */
static void
chat_send(struct wrk_chat *c)
{
	struct wrk *w = c->w;
	const struct cfg *cfg = w->cfg;
	struct grok_req_opts o;
	char url[CFG_STR_MAX + 48], statsig[160], rid[40];
	char ref[CFG_STR_MAX + 600], referer[CFG_STR_MAX + 64];
	const char *ids[CHAT_MEDIA_MAX];
	size_t i;
	bool video = c->model->video && c->nin > 0;

	/* The pool's first proxy is on its way: wait for it, briefly. */
	if (wrk_proxy_pending(w) && util_mono_ms() - c->t_start_ms < 10000) {
		chat_retry_later(c, 50, false);
		return;
	}
	/* With a signer and no fresh value, ask it first, once. */
	if (wrk_statsig(w, "POST", CHAT_PATH, statsig, sizeof(statsig)) == 1 &&
	    !c->sig_asked) {
		c->sig_asked = true;
		if (wrk_statsig_fetch(
		        w, "POST", CHAT_PATH, chat_sig_ready, c, &c->sig) == 0)
			return;
	}
	memset(&o, 0, sizeof(o));
	o.model = c->model;
	o.message = c->message;
	o.temporary = cfg->temporary;
	for (i = 0; i < c->nin; i++)
		ids[i] = c->in[i].file_id;
	o.file_ids = ids;
	o.nfiles = c->nin;
	if (c->images_api && c->images_n > 2)
		o.image_count = c->images_n;
	referer[0] = '\0';
	if (video) {
		/* The first image becomes a video (reference section 3.2). */
		o.video = true;
		o.nfiles = 1;
		if (c->post_id != NULL) {
			(void)snprintf(ref, sizeof(ref),
			    "https://grok.com/imagine/%s", c->post_id);
			(void)snprintf(referer, sizeof(referer),
			    "%s/imagine/%s", cfg->upstream_url, c->post_id);
		} else
			(void)snprintf(ref, sizeof(ref), "%s/post/%s",
			    cfg->assets_url,
			    c->in[0].file_uri ? c->in[0].file_uri : "");
		o.video_ref = ref;
	}
	if ((c->payload = grok_payload(&o)) == NULL) {
		chat_answer_error(c, errno == EILSEQ ? 400 : 500,
		    "invalid_request",
		    errno == EILSEQ ? "the messages are not valid UTF-8"
		                    : "out of memory");
		return;
	}
	grok_request_id(rid);
	if ((c->hdrs = grok_headers_ext(cfg, c->lease.token, statsig, rid,
	         referer[0] ? referer : NULL, NULL)) == NULL) {
		chat_answer_error(c, 500, "internal_error", "out of memory");
		return;
	}
	/*
	 * A whole answer is held anyway: read it in 16 KiB pieces (a 10 KB
	 * answer: one recv and one poll, not three each). Streams keep the
	 * small buffer (10,000 of them).
	 */
	if (c->x.easy != NULL) { /* a retry */
		curl_easy_reset(c->x.easy);
		wrk_up_easy_defaults(w, c->x.easy, !c->stream);
	} else if ((c->x.easy = wrk_up_easy(w, !c->stream)) == NULL) {
		chat_answer_error(c, 500, "internal_error", "out of memory");
		return;
	}
	wrk_proxy_get(w, c->proxy, sizeof(c->proxy));
	(void)snprintf(url, sizeof(url), "%s/rest/app-chat/conversations/new",
	    cfg->upstream_url);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_URL, url);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_PROXY, c->proxy);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_HTTPHEADER, c->hdrs);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_POSTFIELDS, c->payload);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_WRITEFUNCTION, chat_on_body);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_WRITEDATA, c);
	(void)curl_easy_setopt(
	    c->x.easy, CURLOPT_HEADERFUNCTION, chat_on_header);
	(void)curl_easy_setopt(c->x.easy, CURLOPT_HEADERDATA, c);
	c->x.magic = WRK_XFER_MAGIC;
	c->x.arg = c;
	c->x.done = chat_done;
	c->t_up_ms = util_mono_ms();
	if (wrk_up_start(w, &c->x) != 0)
		chat_answer_error(c, 500, "internal_error",
		    "cannot start the upstream request");
}

/* ---- the request -------------------------------------------------------- */

/* "true" or "false" as a string: some clients send booleans so. */
static bool
chat_bool_str(const json_t *v)
{
	return json_is_string(v) &&
	    (strcmp(json_string_value(v), "true") == 0 ||
	        strcmp(json_string_value(v), "false") == 0);
}

/* Type checks of the body's optional fields; a message names the field. */
static int
chat_check_body(json_t *root, char *err, size_t len, char *param, size_t plen)
{
	static const struct {
		const char *name;
		int kind; /* 0 bool, 1 number, 2 positive int, 3 string,
		             4 object */
		double lo, hi;
	} fields[] = {
		{ "stream", 0, 0, 0 },
		{ "temperature", 1, 0, 2 },
		{ "top_p", 1, 0, 1 },
		{ "max_tokens", 2, 1, 1e9 },
		{ "max_completion_tokens", 2, 1, 1e9 },
		{ "reasoning_format", 3, 0, 0 },
		{ "stream_options", 4, 0, 0 },
	};
	size_t i;
	json_t *v;

	for (i = 0; i < ARRAY_LEN(fields); i++) {
		const char *want = NULL;

		v = json_object_get(root, fields[i].name);
		if (v == NULL || json_is_null(v))
			continue;
		switch (fields[i].kind) {
		case 0:
			if (!json_is_boolean(v) && !chat_bool_str(v))
				want = "a boolean";
			break;
		case 1:
			if (!json_is_number(v))
				want = "a number";
			else if (json_number_value(v) < fields[i].lo ||
			    json_number_value(v) > fields[i].hi)
				want = fields[i].hi == 2 ? "between 0 and 2"
				                         : "between 0 and 1";
			break;
		case 2:
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 1000000000)
				want = "a positive integer";
			break;
		case 3:
			if (!json_is_string(v))
				want = "a string";
			break;
		default:
			if (!json_is_object(v))
				want = "an object";
			break;
		}
		if (want != NULL) {
			(void)snprintf(
			    err, len, "'%s' must be %s", fields[i].name, want);
			(void)snprintf(param, plen, "%s", fields[i].name);
			return WP_EINVAL;
		}
	}
	v = json_object_get(
	    json_object_get(root, "stream_options"), "include_usage");
	if (v != NULL && !json_is_boolean(v) && !json_is_null(v)) {
		(void)snprintf(err, len,
		    "'stream_options.include_usage' must be a boolean");
		(void)snprintf(param, plen, "stream_options.include_usage");
		return WP_EINVAL;
	}
	return 0;
}

static enum oai_reasoning
chat_reasoning(const struct cfg *cfg, json_t *root, bool *bad)
{
	enum oai_reasoning rf = (enum oai_reasoning)cfg->reasoning_format;
	json_t *v = json_object_get(root, "reasoning_format");

	*bad = false;
	if (json_is_string(v) &&
	    oai_reasoning_parse(json_string_value(v), &rf) != 0)
		*bad = true;
	else if (!cfg->show_thinking && !json_is_string(v))
		rf = OAI_RF_HIDDEN;
	return rf;
}

/* What /v1/images/generations asks of a chat; n 0 for a plain chat. */
struct chat_images_opts {
	unsigned n;
	bool b64;
};

static int chat_start(struct wrk *w, struct wrk_req *rq,
    struct MHD_Connection *conn, const char *body, size_t len,
    const struct chat_images_opts *img);

int
wrk_chat_start(struct wrk *w, struct wrk_req *rq, struct MHD_Connection *conn,
    const char *body, size_t len)
{
	return chat_start(w, rq, conn, body, len, NULL);
}

int
wrk_chat_images(struct wrk *w, struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct chat_images_opts img = { 1, false };
	json_t *root, *v, *chat = NULL;
	const char *model = "grok-imagine-0.9";
	json_error_t jerr;
	char *body = NULL;
	int r;

	root = json_loadb(rq->body != NULL ? rq->body : "", rq->len, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return wrk_send_error(rq, conn, 400, NULL, "invalid_json",
		    "The request body must be a JSON object");
	}
	v = json_object_get(root, "prompt");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		r = wrk_send_error(rq, conn, 400, "prompt", "invalid_type",
		    "'prompt' must be a non-empty string");
		goto out;
	}
	if ((v = json_object_get(root, "n")) != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 4) {
			r = wrk_send_error(rq, conn, 400, "n", "invalid_value",
			    "'n' must be an integer from 1 to 4");
			goto out;
		}
		img.n = (unsigned)json_integer_value(v);
	}
	v = json_object_get(root, "response_format");
	if (json_is_string(v) && strcmp(json_string_value(v), "b64_json") == 0)
		img.b64 = true;
	else if (v != NULL && !json_is_null(v) &&
	    !(json_is_string(v) && strcmp(json_string_value(v), "url") == 0)) {
		r = wrk_send_error(rq, conn, 400, "response_format",
		    "invalid_value",
		    "'response_format' must be url or b64_json");
		goto out;
	}
	v = json_object_get(root, "model");
	if (json_is_string(v) && cfg_model_find(w->cfg, json_string_value(v)))
		model = json_string_value(v);
	chat = json_pack("{s:s, s:[{s:s, s:O}], s:b}", "model", model,
	    "messages", "role", "user", "content",
	    json_object_get(root, "prompt"), "stream", 0);
	if (chat == NULL || (body = json_dumps(chat, JSON_COMPACT)) == NULL) {
		r = MHD_NO;
		goto out;
	}
	r = chat_start(w, rq, conn, body, strlen(body), &img);
out:
	free(body);
	json_decref(chat);
	json_decref(root);
	return r;
}

static int
chat_start(struct wrk *w, struct wrk_req *rq, struct MHD_Connection *conn,
    const char *body, size_t len, const struct chat_images_opts *img)
{
	const struct cfg *cfg = w->cfg;
	char err[512], param[96];
	struct wrk_chat *c = NULL;
	json_error_t jerr;
	json_t *root, *v;
	struct buf msg;
	char **images = NULL;
	size_t nimages = 0, i;
	bool include_usage, bad_rf;
	const char *model;
	enum oai_reasoning rf;
	int r;

	buf_init(&msg, CHAT_MSG_MAX);
	atomic_fetch_add_explicit(&w->me->c.chat, 1, memory_order_relaxed);
	root = json_loadb(body != NULL ? body : "", len, 0, &jerr);
	if (root == NULL)
		return wrk_send_error(rq, conn, 400, NULL, "invalid_json",
		    "The request body is not valid JSON (line %d, column %d): "
		    "%s",
		    jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		r = wrk_send_error(rq, conn, 400, NULL, "invalid_type",
		    "The request body must be a JSON object");
		goto out;
	}
	v = json_object_get(root, "model");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		r = wrk_send_error(rq, conn, 400, "model",
		    v == NULL ? "missing_required_parameter" : "invalid_type",
		    "'model' must be a non-empty string");
		goto out;
	}
	model = json_string_value(v);
	v = json_object_get(root, "messages");
	if (!json_is_array(v) || json_array_size(v) == 0) {
		r = wrk_send_error(rq, conn, 400, "messages",
		    v == NULL ? "missing_required_parameter" : "invalid_type",
		    "'messages' must be a non-empty array");
		goto out;
	}
	if (chat_check_body(root, err, sizeof(err), param, sizeof(param)) !=
	    0) {
		r = wrk_send_error(
		    rq, conn, 400, param, "invalid_type", "%s", err);
		goto out;
	}
	rf = chat_reasoning(cfg, root, &bad_rf);
	if (bad_rf) {
		r = wrk_send_error(rq, conn, 400, "reasoning_format",
		    "invalid_value",
		    "'reasoning_format' must be think_tags, reasoning_content "
		    "or hidden");
		goto out;
	}
	if (!cfg->grok_enabled) {
		r = wrk_send_error(rq, conn, 404, "model", "model_not_found",
		    "Model not available: the grok project is disabled "
		    "(projects.grok.enabled)");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = MHD_NO;
		goto out;
	}
	c->magic = CHAT_MAGIC;
	c->w = w;
	c->rq = rq;
	c->conn = conn;
	buf_init(&c->errbody, CHAT_ERRBODY_MAX);
	buf_init(&c->sse, CHAT_SSE_MAX);
	grok_nd_init(&c->nd, CHAT_LINE_MAX);
	if ((c->model = cfg_model_find(cfg, model)) == NULL) {
		r = wrk_send_error(rq, conn, 404, "model", "model_not_found",
		    "The model '%.100s' does not exist; GET /v1/models lists "
		    "the available ones",
		    model);
		goto out;
	}
	if (grok_flatten(json_object_get(root, "messages"), &msg, &images,
	        &nimages, err, sizeof(err), param, sizeof(param)) != 0) {
		r = wrk_send_error(rq, conn, 400, param[0] ? param : "messages",
		    "invalid_value", "%s", err[0] ? err : "bad messages");
		goto out;
	}
	if (nimages > CHAT_MEDIA_MAX) {
		r = wrk_send_error(rq, conn, 400, "messages", "too_many_images",
		    "at most %d images per request", CHAT_MEDIA_MAX);
		goto out;
	}
	for (i = 0; i < nimages; i++) {
		c->in[i].src = images[i];
		images[i] = NULL;
		buf_init(&c->in[i].bytes, MEDIA_IMAGE_MAX);
	}
	c->nin = nimages;
	if (media_base_url(w, conn, c->base_url, sizeof(c->base_url)) != 0) {
		r = wrk_send_error(rq, conn, 400, NULL, "invalid_host",
		    "the Host header is missing or not a host name, and "
		    "grok.base_url is not set");
		goto out;
	}
	v = json_object_get(root, "stream");
	c->stream = json_is_true(v) ||
	    (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
	if (img != NULL) {
		c->images_api = true;
		c->images_n = img->n;
		c->images_b64 = img->b64;
	}
	include_usage = json_is_true(json_object_get(
	    json_object_get(root, "stream_options"), "include_usage"));
	v = json_object_get(root, "max_completion_tokens");
	if (!json_is_integer(v))
		v = json_object_get(root, "max_tokens");
	if (json_is_integer(v))
		c->max_tokens = (uint32_t)json_integer_value(v);
	if (oai_out_init(&c->out, c->model->name, c->stream, include_usage, rf,
	        cfg->filtered_tags, oai_count_tokens(msg.p, msg.len),
	        CHAT_ANSWER_MAX) != 0) {
		r = MHD_NO;
		goto out;
	}
	/*
	 * An image model asked in words ("a red fox in the snow"): grok.com
	 * draws when the prompt asks it to, so say so.
	 */
	if (c->model->video && c->nin == 0 && msg.len > 0) {
		static const char ask[] = "Draw an image: ";
		struct buf tmp;

		buf_init(&tmp, CHAT_MSG_MAX);
		if (buf_puts(&tmp, ask) == 0 &&
		    buf_append(&tmp, msg.p, msg.len) == 0) {
			buf_fini(&msg);
			msg = tmp;
		} else
			buf_fini(&tmp);
	}
	/* Images alone flatten to no text: send "" (never NULL). */
	if (buf_append(&msg, "", 0) != 0) {
		r = MHD_NO;
		goto out;
	}
	c->message = buf_take(&msg);
	c->t_start_ms = c->t_out_ms = util_mono_ms();
	rq->chat = c;
	c->next = w->chats;
	if (w->chats != NULL)
		w->chats->prev = c;
	w->chats = c;
	c = NULL;
	chat_attempt(rq->chat);
	/* An answer may be ready already (no token): send it now. */
	if (rq->chat->answer_body != NULL)
		r = wrk_chat_resumed(rq->chat, conn);
	else {
		chat_suspend(rq->chat);
		r = MHD_YES;
	}
out:
	for (i = 0; i < nimages; i++)
		free(images[i]);
	free(images);
	buf_fini(&msg);
	if (c != NULL) {
		for (i = 0; i < c->nin; i++) {
			free(c->in[i].src);
			buf_fini(&c->in[i].bytes);
		}
		c->magic = 0;
		grok_nd_fini(&c->nd);
		buf_fini(&c->errbody);
		buf_fini(&c->sse);
		free(c);
	}
	json_decref(root);
	return r;
}

void
wrk_chat_free(struct wrk *w, struct wrk_chat *c)
{
	size_t i;

	CHECK_OBJ(c, CHAT_MAGIC);
	if (c->x.running)
		wrk_up_stop(w, &c->x);
	chat_cancel_ops(c);
	wrk_statsig_cancel(w, c->sig);
	for (i = 0; i < c->nin; i++) {
		free(c->in[i].src);
		free(c->in[i].file_id);
		free(c->in[i].file_uri);
		buf_fini(&c->in[i].bytes);
	}
	for (i = 0; i < c->nout; i++)
		free(c->out_media[i].path);
	free(c->post_id);
	if (c->rq->conn != NULL && c->rq->conn->hup_arg == c)
		wrk_conn_unpark(c->rq->conn);
	if (c->leased && !c->committed)
		log_debug("chat: client left before the answer");
	chat_release(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->chats = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	wrk_up_easy_put(w, c->x.easy, !c->stream);
	grok_headers_free(c->hdrs);
	free(c->payload);
	free(c->message);
	free(c->final_text);
	free(c->answer_body);
	buf_fini(&c->errbody);
	buf_fini(&c->sse);
	grok_nd_fini(&c->nd);
	oai_out_fini(&c->out);
	c->magic = 0;
	free(c);
}

/* Stop what runs upstream and answer per the timeout that struck. */
static void
chat_timeout(struct wrk_chat *c, const char *which, int secs)
{
	wrk_up_stop(c->w, &c->x);
	if (!c->committed) {
		c->fail = CHAT_F_TIMEOUT;
		chat_failed(c, CURLE_OPERATION_TIMEDOUT);
		chat_release(c);
		return;
	}
	chat_answer_error(c, 504, "upstream_timeout",
	    "grok.com went silent: no answer within %d s (grok.%s)", secs,
	    which);
	chat_release(c);
}

void
wrk_chat_tick(struct wrk *w)
{
	const struct cfg *cfg = w->cfg;
	int64_t now = util_mono_ms();
	struct wrk_chat *c, *next;

	for (c = w->chats; c != NULL; c = next) {
		next = c->next;
		if (c->x.running) {
			if (!c->committed &&
			    now - c->t_start_ms >
			        (int64_t)cfg->stream_first_response_timeout *
			            1000)
				chat_timeout(c, "stream_first_response_timeout",
				    cfg->stream_first_response_timeout);
			else if (c->committed &&
			    now - c->t_up_ms >
			        (int64_t)cfg->stream_chunk_timeout * 1000)
				chat_timeout(c, "stream_chunk_timeout",
				    cfg->stream_chunk_timeout);
			else if (now - c->t_start_ms >
			    (int64_t)cfg->stream_total_timeout * 1000)
				chat_timeout(c, "stream_total_timeout",
				    cfg->stream_total_timeout);
		}
		/* A comment line keeps proxies and clients from giving up. */
		if (c->stream && c->queued && !c->finished &&
		    now - c->t_out_ms >= CHAT_PING_MS && c->sse.len == 0 &&
		    buf_puts(&c->sse, ": ping\n\n") == 0) {
			c->t_out_ms = now;
			chat_wake(c);
		}
	}
}

void
wrk_chat_run_due(struct wrk *w)
{
	int64_t now = util_mono_ms(), next = 0;
	struct wrk_chat *c;

	for (c = w->chats; c != NULL; c = c->next) {
		if (c->retry_at_ms == 0)
			continue;
		if (c->retry_at_ms <= now && !c->client_gone)
			chat_attempt(c);
		else if (next == 0 || c->retry_at_ms < next)
			next = c->retry_at_ms;
	}
	w->next_due_ms = next;
}

void
wrk_chat_abort_all(struct wrk *w)
{
	struct wrk_chat *c;

	for (c = w->chats; c != NULL; c = c->next) {
		wrk_up_stop(w, &c->x);
		c->client_gone = true;
		c->retry_at_ms = 0;
		chat_wake(c);
	}
}
