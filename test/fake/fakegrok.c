/*
 * fakegrok: a fake grok.com (and assets.grok.com) for webproxyd's tests
 * and benchmarks. It follows ../shared/reference/grok-web-protocol.md
 * (§1, §2, §5, §9, §15): it checks what the real service checks, streams
 * NDJSON in the [E] shape, and fails on demand. README.md has the same
 * lists with examples.
 *
 *   fakegrok [-d] [-l HOST:PORT] [-t THREADS] [-c MAXCONN] [-r RECORDS]
 *            [-m MODEL]... [-q QUOTA] [-H HEAVY] [-w WINDOW_S]
 *            [-W FAULT_WAIT_S] [-T IDLE_S] [-M CONN_MEM] [-P]
 *
 *   -l  listen address (127.0.0.1:0; port 0 picks a free port)
 *   -d  debug log on stderr, one line per request
 *   -t  MHD polling threads (2)        -c  connection limit (20000)
 *   -r  requests kept for /__fake/requests (1000; 0 = none)
 *   -m  one more known modelName (repeatable)
 *   -q  remainingTokens per token (80) -H  heavy queries per token (20)
 *   -w  windowSizeSeconds (72000)      -W  waitTimeSeconds of fault-429
 *   -T  idle connection timeout, s (600; 0 = none)
 *   -M  MHD memory per connection, bytes (16384; MHD touches all of it)
 *   -P  a thread per connection; a timed line sleeps in it instead of
 *       suspending the connection (smooth lines for test/bench)
 *
 * Prints exactly one line to stdout, "listening HOST:PORT", once it
 * accepts connections. SIGINT/SIGTERM stop it; exit 0, 1 if it cannot
 * listen, 2 for a bad command line.
 *
 * Routes (all on one port):
 *   POST /rest/app-chat/conversations/new   NDJSON answer
 *   POST /rest/rate-limits                  both response shapes at once
 *   POST /rest/app-chat/upload-file         checks and keeps the bytes
 *   POST /rest/media/post/create            snake_case or camelCase
 *   GET  /<anything else>                   an asset (assets.grok.com)
 *   /__fake/...                             test control, see below
 *
 * Checks, in this order, on every /rest/ and asset request:
 *   token fault-403cf               403 Cloudflare "Just a moment..." page
 *   no or empty sso cookie          401 {"error":{"code":16,
 *                                   "message":"unauthenticated",...}}
 *                                   (assets: 403)
 *   token fault-401                 401 as above
 *   x-statsig-id missing or not base64 (not for assets)
 *                                   403 {"error":{"code":7,"message":
 *                                   "Request rejected by anti-bot rules."}}
 *   token fault-403bot (or -403)    403 as above
 *   body over 64 MiB                413
 * then chat: body not a JSON object, message not a string, modelName
 * missing, bad modelMode/fileAttachments/imageAttachments/toolOverrides/
 * temporary types, an unknown modelName, a fileAttachments id that is not
 * an upload of this token's account, or a bad video payload (below) ->
 * 400 {"error":{"code":3,..}}.
 * Upload: fileName a plain name, fileMimeType type/subtype, content
 * standard base64 of at least one byte; image/png, image/jpeg, image/gif
 * and image/webp must match the bytes' magic number -> else 400. Kept at
 * fileUri "users/<account>/<fileMetadataId>/content", <account> a UUID
 * derived from the sso token. Media post: an image post's mediaUrl must
 * end in such a fileUri of the same account; the post id is derived from
 * it. Assets: "users/<account>/..." of another account -> 403.
 * Known models: grok-3, grok-4-mini-thinking-tahoe, grok-4, grok-4-heavy,
 * grok-4-1-non-thinking-w-tool, grok-4-1-thinking-1108b, and each -m.
 *
 * Scenario keywords, anywhere in the chat "message" (combinable):
 *   [tags]            answer with <xaiartifact>, <grok:render> and
 *                     <xai:tool_usage_card> blocks, some split in two
 *   [echo]            the answer is the received message, one token
 *   [long]            2000 answer tokens
 *   [tokens=N]        exactly N answer tokens (0..1000000)
 *   [think]/[nothink] force thinking on or off (default: by model)
 *   [interval=MS]     one line every MS ms (first line at once)
 *   [stamp]           each answer token is " ~T<ns>~", the CLOCK_MONOTONIC
 *                     time its line was written (for test/bench)
 *   [firstdelay=MS]   wait MS ms before the status line
 *   [stallafter=N]    N lines, then nothing until the client leaves
 *   [cutafter=N]      N lines, half of the next, then a dropped connection
 *   [fault=NAME]      any fault below for this request only (not counted)
 *   [image]           generate images (imageGenerationCount of them, 2
 *                     without it); so does a user turn (the message's
 *                     last paragraph) that starts with "draw" or says
 *                     "image of" / "picture of", any case
 *   [images=N]        generate N images (1..16; 0 = none even if asked)
 *   [png]             generated images are image.png, not image.jpg
 * Image answer (example C of the reference): 7 answer tokens, then per
 * step 0, 50, 100 one streamingImageGenerationResponse line per image
 * (imageIndex, progress; imageUrl at 100; imageAttachmentInfo on the
 * first), then modelResponse with generatedImageUrls
 * "users/<account>/generated/<uuid>/image.jpg".
 * Video (toolOverrides.videoGen true, example D): fileAttachments must
 * hold an upload of this account and message be "<ref>  <prompt>
 * --mode=custom", <ref> https://grok.com/imagine/<that file's post id> or
 * <anything>/post/<its fileUri>; the answer is streamingVideoGeneration-
 * Response at progress 1, 45, 95, then 100 with videoUrl ".../generated/
 * <uuid>/generated_video.mp4" and thumbnailImageUrl, then one token
 * "I generated a video" with isSoftStop, and no modelResponse.
 * Thinking happens when modelName contains "thinking" (not
 * "non-thinking"), or modelMode is MODEL_MODE_EXPERT, MODEL_MODE_HEAVY or
 * a *_THINKING mode: 13 lines of isThinking tokens (messageTag "header"
 * and "analysis"), one of them a webSearchResults card and one the
 * <xai:tool_usage_card> token, before the answer.
 *
 * Faults, by the sso token's value "fault-NAME[xK][-anything]": with xK
 * only the token's first K faulting requests fail, then it is normal.
 *   401         401 on every route
 *   403cf       403 Cloudflare HTML on every route
 *   403bot, 403 403 anti-bot JSON on every route
 *   429         chat 429 {"error":{"code":8,"message":"rate limited"}};
 *               rate-limits say 0 left, waitTimeSeconds -W (3600)
 *   500         chat 500
 *   drip        a line every 500 ms
 *   stall       status line and headers, then nothing
 *   stallfirst  accept the request, never answer
 *   cut         7 lines, half a line, then the connection drops
 *   malformed   non-JSON lines among the answer tokens
 *   inband      3 answer tokens, then {"error":{"code":8,...}}, end
 *   inbandfirst only {"error":{"code":7,...anti-bot...}}, HTTP 200
 *   resperror   3 answer tokens, then {"result":{"response":{"error":..}}}
 *   modelerror  modelResponse carries "error"
 *   empty       HTTP 200 with an empty body
 *   datapfx     every line is "data: <json>\n\n", text/event-stream
 *   runon       JSON objects with no newline between them
 *
 * Quota: each token starts with -q remainingTokens (80) and -H heavy
 * queries (20). A chat costs 1, or 4 with MODEL_MODE_EXPERT; grok-4-heavy
 * (or MODEL_MODE_HEAVY) costs 1 heavy query. Too little left -> 429. The
 * window (-w, 72000 s) starts at the first charge and resets all.
 *
 * Test control (no auth, never recorded):
 *   GET    /__fake/requests[?since=SEQ&token=T&path=PREFIX]  records
 *   DELETE /__fake/requests   forget them (seq keeps counting)
 *   GET    /__fake/stats      counters; DELETE resets them
 *   GET    /__fake/tokens     per-token quota and counters; DELETE clears
 *   POST   /__fake/tokens     {"token":T,"remaining":N,"heavy":N,
 *                             "wait":S,"fault_hits":N}
 *   GET    /__fake/uploads    [{"fileUri","fileName","fileMimeType","size"}]
 *   DELETE /__fake/uploads    forget uploaded files
 *   GET    /__fake/proxy      a proxy-pool API: the next proxy URL of a
 *                             list set with POST (see fg_proxy.c)
 *   POST   /__fake/reset      all of the above
 *
 * Threads: MHD's (epoll, -t of them), the timer thread of fg_timer.c and
 * main, which only waits for a signal. Locks: see fg_store.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"

#include "fg.h"

#define FG_IDLE_S   600
#define FG_CONN_MEM (16 * 1024)
#define FG_THREADS  2
#define FG_STACK    (256 * 1024) /* -P: per connection thread */

static const char fg_cf_page[] =
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment..."
    "</title><meta http-equiv=\"Content-Type\" content=\"text/html; "
    "charset=UTF-8\"><meta name=\"robots\" content=\"noindex,nofollow\">"
    "</head><body><div class=\"main-wrapper\" role=\"main\"><div "
    "class=\"main-content\"><h1 class=\"zone-name-title h1\">grok.com</h1>"
    "<h2 class=\"h2\" id=\"challenge-running\">Checking if the site "
    "connection is secure</h2><div id=\"cf-chl-widget-fake\"></div>"
    "<noscript><span id=\"challenge-error-text\">Enable JavaScript and "
    "cookies to continue</span></noscript></div></div><script>(function()"
    "{window._cf_chl_opt={cvId:'3',cZone:\"grok.com\",cType:'managed',"
    "cRay:'8f1e2d3c4b5a6978',cUPMDTk:\"/?__cf_chl_tk=fake\"};var cpo="
    "document.createElement('script');cpo.src='/cdn-cgi/"
    "challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f1e2d3c4b5a6978';"
    "document.getElementsByTagName('head')[0].appendChild(cpo);}());"
    "</script></body></html>\n";

static void
fg_usage(void)
{
	(void)fprintf(stderr,
	    "usage: fakegrok [-d] [-l host:port] [-t threads] [-c maxconn] "
	    "[-r records]\n"
	    "                [-m model]... [-q quota] [-H heavy] [-w window_s]"
	    "\n                [-W fault_wait_s] [-T idle_s] [-M conn_mem] [-P]"
	    "\n");
}

/* ---- replies ---- */

void
fg_reply_text(struct fg_reply *r, unsigned status, const char *ctype,
    const char *body, size_t len)
{
	r->status = status;
	r->resp = MHD_create_response_from_buffer(len,
	    len > 0 ? (void *)(uintptr_t)body : (void *)(uintptr_t) "",
	    len > 0 ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	if (r->resp != NULL && ctype != NULL)
		(void)MHD_add_response_header(
		    r->resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

/* Like fg_reply_text, taking a malloc'd body. */
static void
fg_reply_take(struct fg_reply *r, unsigned status, const char *ctype,
    char *body, size_t len)
{
	r->status = status;
	r->resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r->resp == NULL)
		free(body);
	else
		(void)MHD_add_response_header(
		    r->resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

void
fg_reply_json(struct fg_reply *r, unsigned status, json_t *o)
{
	static const char oom[] =
	    "{\"error\":{\"code\":13,\"message\":\"out of memory\"}}";
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (s == NULL) {
		fg_reply_text(r, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	fg_reply_take(r, status, "application/json", s, strlen(s));
}

void
fg_reply_error(struct fg_reply *r, unsigned status, int code, const char *msg)
{
	fg_reply_json(r, status,
	    json_pack("{s:{s:i, s:s, s:[]}}", "error", "code", code, "message",
	        msg, "details"));
}

void
fg_reply_fault(struct fg_reply *r, enum fg_fault f)
{
	if (f == FG_F_401) {
		fg_reply_error(r, 401, 16, "unauthenticated");
	} else if (f == FG_F_403BOT) {
		fg_reply_error(
		    r, 403, 7, "Request rejected by anti-bot rules.");
	} else if (f == FG_F_403CF) {
		fg_reply_text(r, 403, "text/html; charset=UTF-8", fg_cf_page,
		    sizeof(fg_cf_page) - 1);
		if (r->resp != NULL) {
			(void)MHD_add_response_header(
			    r->resp, "Server", "cloudflare");
			(void)MHD_add_response_header(
			    r->resp, "cf-mitigated", "challenge");
			(void)MHD_add_response_header(
			    r->resp, "cf-ray", "8f1e2d3c4b5a6978-SJC");
			(void)MHD_add_response_header(r->resp,
			    MHD_HTTP_HEADER_CACHE_CONTROL,
			    "private, max-age=0, no-store, no-cache, "
			    "must-revalidate");
		}
	} else if (f == FG_F_429) {
		fg_reply_error(r, 429, 8, "rate limited");
	} else {
		fg_reply_error(r, 500, 13, "Internal server error");
	}
	if (r->note[0] == '\0')
		(void)snprintf(
		    r->note, sizeof(r->note), "fault-%s", fg_fault_name[f]);
}

/* ---- helpers over MHD ---- */

int
fg_conn_fd(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

	return ci != NULL ? ci->connect_fd : -1;
}

void
fg_req_wait(struct MHD_Connection *c, struct fg_req *rq, enum fg_wait_mode m,
    uint64_t due_ns)
{
	rq->state = FG_RQ_WAITING;
	rq->wait.conn = c;
	rq->wait.fd = fg_conn_fd(c);
	rq->wait.mode = m;
	rq->wait.due_ns = due_ns;
	MHD_suspend_connection(c);
	fg_timer_add(&rq->wait);
}

static const char *
fg_hdr(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/*
 * The value of cookie name in a Cookie header ("a=1; b=2" or "a=1;b=2"),
 * malloc'd; NULL if absent.
 */
static char *
fg_cookie(const char *hdr, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = hdr, *e;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		e = strchr(p, ';');
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			p += nlen + 1;
			return e != NULL ? strndup(p, (size_t)(e - p))
			                 : strdup(p);
		}
		p = e;
	}
	return NULL;
}

/* Non-empty standard base64, as the statsig check wants. */
static bool
fg_statsig_ok(const char *v)
{
	size_t i, n;

	if (v == NULL || (n = strlen(v)) == 0 || n % 4 != 0)
		return false;
	for (i = 0; i < n; i++) {
		char ch = v[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')
			continue;
		if (ch == '=' && i + 2 >= n)
			continue;
		return false;
	}
	return true;
}

/* The path of an origin-form or absolute-form ("http://h/p") target. */
static const char *
fg_path(const char *url, bool *absolute)
{
	const char *p;

	*absolute =
	    strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
	if (!*absolute)
		return url;
	p = strchr(strstr(url, "://") + 3, '/');
	return p != NULL ? p : "/";
}

static enum fg_route
fg_route_of(const char *path)
{
	size_t i;

	if (strncmp(path, "/__fake/", 8) == 0 || strcmp(path, "/__fake") == 0)
		return FG_R_FAKE;
	for (i = 0; i < FG_R_ASSET; i++)
		if (strcmp(path, fg_route_name[i]) == 0)
			return (enum fg_route)i;
	if (strncmp(path, "/rest/", 6) == 0 || strcmp(path, "/rest") == 0)
		return FG_R_REST_OTHER;
	return FG_R_ASSET;
}

/* ---- the recorder ---- */

static enum MHD_Result
fg_rec_hdr(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	json_t *h = cls, *old;
	char name[128];
	size_t i;

	(void)kind;
	if (json_object_size(h) >= 100)
		return MHD_NO;
	for (i = 0; key[i] != '\0' && i < sizeof(name) - 1; i++)
		name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32
		                                                : key[i]);
	name[i] = '\0';
	if (value == NULL)
		value = "";
	if ((old = json_object_get(h, name)) != NULL) {
		char *both = NULL;

		if (asprintf(&both, "%s%s%s", json_string_value(old),
		        strcmp(name, "cookie") == 0 ? "; " : ", ", value) < 0)
			return MHD_YES;
		(void)json_object_set_new(h, name, json_string(both));
		free(both);
		return MHD_YES;
	}
	(void)json_object_set_new(h, name, json_string(value));
	return MHD_YES;
}

static enum MHD_Result
fg_rec_arg(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	(void)json_object_set_new(
	    cls, key, value != NULL ? json_string(value) : json_null());
	return MHD_YES;
}

/* The user name of a "Basic" Proxy-Authorization, or NULL. */
static json_t *
fg_proxy_user(const char *pa)
{
	unsigned char dec[256];
	size_t n, len;
	char *colon;

	if (pa == NULL || strncasecmp(pa, "Basic ", 6) != 0)
		return json_null();
	pa += 6;
	n = strlen(pa);
	if (n / 4 * 3 >= sizeof(dec) || fg_b64_decode(pa, n, dec, &len) != 0)
		return json_null();
	dec[len] = '\0';
	if ((colon = strchr((char *)dec, ':')) != NULL)
		*colon = '\0';
	return json_string((char *)dec);
}

static json_t *
fg_str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/*
 * How the request reached us if a proxy carried it: an absolute-form
 * target (what an HTTP proxy forwards when pointed at us), or headers a
 * proxy adds. null when it came directly.
 */
static json_t *
fg_rec_proxy(struct MHD_Connection *c, const char *url, bool absolute)
{
	const char *pa = fg_hdr(c, "Proxy-Authorization");
	const char *via = fg_hdr(c, "Via");
	const char *xff = fg_hdr(c, "X-Forwarded-For");
	const char *fwd = fg_hdr(c, "Forwarded");
	const char *pc = fg_hdr(c, "Proxy-Connection");
	char host[256] = "";

	if (!absolute && pa == NULL && via == NULL && xff == NULL &&
	    fwd == NULL && pc == NULL)
		return json_null();
	if (absolute) {
		const char *h = strstr(url, "://") + 3;

		(void)snprintf(
		    host, sizeof(host), "%.*s", (int)strcspn(h, "/"), h);
	}
	return json_pack("{s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "absolute_form", absolute, "host",
	    absolute ? json_string(host) : json_null(), "user",
	    fg_proxy_user(pa), "authorization", fg_str_or_null(pa), "via",
	    fg_str_or_null(via), "x_forwarded_for", fg_str_or_null(xff),
	    "forwarded", fg_str_or_null(fwd), "proxy_connection",
	    fg_str_or_null(pc));
}

static json_t *
fg_rec_peer(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char a[INET6_ADDRSTRLEN], out[INET6_ADDRSTRLEN + 8];
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	if (sa == NULL)
		return json_null();
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		(void)inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		(void)snprintf(
		    out, sizeof(out), "%s:%u", a, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		(void)inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		(void)snprintf(
		    out, sizeof(out), "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		return json_null();
	}
	return json_string(out);
}

/* A copy of v with every string longer than 1 KiB cut to 1 KiB. */
static json_t *
fg_rec_cut(const json_t *v)
{
	const char *k;
	json_t *o, *x;
	size_t i, n;

	if (json_is_string(v)) {
		n = json_string_length(v);
		if (n <= 1024)
			return json_copy((json_t *)(uintptr_t)v);
		for (n = 1024;
		     n > 0 && (json_string_value(v)[n] & 0xc0) == 0x80; n--)
			; /* do not split a UTF-8 sequence */
		return json_stringn(json_string_value(v), n);
	}
	if (json_is_array(v)) {
		o = json_array();
		json_array_foreach(v, i, x)(void)
		    json_array_append_new(o, fg_rec_cut(x));
		return o;
	}
	if (json_is_object(v)) {
		o = json_object();
		json_object_foreach((json_t *)(uintptr_t)v, k, x)(void)
		    json_object_set_new(o, k, fg_rec_cut(x));
		return o;
	}
	return json_copy((json_t *)(uintptr_t)v);
}

static void
fg_rec_body(json_t *o, const struct fg_req *rq)
{
	bool cut = rq->body.len > FG_REC_BODY_MAX || rq->too_big;

	(void)json_object_set_new(
	    o, "body_len", json_integer((json_int_t)rq->body.len));
	if (rq->json != NULL) {
		(void)json_object_set_new(o, "body",
		    cut ? fg_rec_cut(rq->json) : json_incref(rq->json));
	} else if (rq->body.len > 0) {
		size_t n = cut ? FG_REC_BODY_MAX : rq->body.len;
		json_t *s = json_stringn(rq->body.p, n);

		/* Not JSON: keep the text (null if it is not UTF-8). */
		(void)json_object_set_new(o, "body", json_null());
		(void)json_object_set_new(
		    o, "body_text", s != NULL ? s : json_null());
	} else {
		(void)json_object_set_new(o, "body", json_null());
	}
	(void)json_object_set_new(o, "body_truncated", json_boolean(cut));
}

static void
fg_record(struct MHD_Connection *c, const struct fg_req *rq, const char *url,
    const char *path, const char *method, bool absolute,
    const struct fg_reply *r)
{
	json_t *o, *h, *q;
	char *cookie = NULL, *text;

	if (fg_conf.nrecords == 0)
		return; /* -r 0 (the benchmark): nothing would keep it */
	o = json_object();
	h = json_object();
	q = json_object();
	(void)MHD_get_connection_values(c, MHD_HEADER_KIND, fg_rec_hdr, h);
	(void)MHD_get_connection_values(
	    c, MHD_GET_ARGUMENT_KIND, fg_rec_arg, q);
	if (fg_hdr(c, "Cookie") != NULL)
		cookie = fg_cookie(fg_hdr(c, "Cookie"), "sso-rw");
	(void)json_object_set_new(o, "time_ms", json_integer(util_now_ms()));
	(void)json_object_set_new(o, "method", json_string(method));
	(void)json_object_set_new(o, "target", json_string(url));
	(void)json_object_set_new(o, "path", json_string(path));
	(void)json_object_set_new(o, "query", q);
	(void)json_object_set_new(
	    o, "route", json_string(fg_route_name[rq->route]));
	(void)json_object_set_new(o, "status", json_integer(r->status));
	(void)json_object_set_new(o, "note", json_string(r->note));
	(void)json_object_set_new(o, "peer", fg_rec_peer(c));
	(void)json_object_set_new(o, "token", fg_str_or_null(rq->token));
	(void)json_object_set_new(o, "sso_rw", fg_str_or_null(cookie));
	(void)json_object_set_new(
	    o, "statsig", fg_str_or_null(fg_hdr(c, "x-statsig-id")));
	(void)json_object_set_new(
	    o, "request_id", fg_str_or_null(fg_hdr(c, "x-xai-request-id")));
	(void)json_object_set_new(
	    o, "user_agent", fg_str_or_null(fg_hdr(c, "User-Agent")));
	(void)json_object_set_new(
	    o, "cookie", fg_str_or_null(fg_hdr(c, "Cookie")));
	(void)json_object_set_new(
	    o, "content_type", fg_str_or_null(fg_hdr(c, "Content-Type")));
	(void)json_object_set_new(o, "proxy", fg_rec_proxy(c, url, absolute));
	(void)json_object_set_new(o, "headers", h);
	fg_rec_body(o, rq);
	free(cookie);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text != NULL)
		fg_rec_add(rq->token, path, &text);
	free(text);
}

/* ---- routes ---- */

static void
fg_rate_handle(const char *token, const json_t *o, struct fg_reply *r)
{
	const json_t *m = json_object_get(o, "modelName");
	struct fg_fault_spec fs;
	struct fg_quota q;
	const char *model;
	int64_t wait;
	bool heavy;
	json_t *out;

	if (!json_is_object(o) || !json_is_string(m) ||
	    json_string_length(m) == 0) {
		fg_reply_error(r, 400, 3, "modelName: a string is required");
		return;
	}
	model = json_string_value(m);
	heavy =
	    strcmp(model, "grok-4-heavy") == 0 || strcmp(model, "heavy") == 0;
	fg_tok_quota(token, heavy, &q);
	/* Seconds until the window resets, had the window started. */
	wait = q.wait_s > 0 ? q.wait_s : fg_conf.window_s;
	fg_fault_parse(token, &fs);
	if (fs.fault == FG_F_429 && fg_tok_fault(token, fs.times, false)) {
		q.remaining = 0;
		wait = fg_conf.fault_wait_s;
		(void)util_strlcpy(r->note, "fault-429", sizeof(r->note));
	}
	/* The union of the token/effort shape and the query shape. */
	out = json_pack("{s:I, s:I, s:I, s:I, s:I}", "windowSizeSeconds",
	    (json_int_t)fg_conf.window_s, "remainingTokens",
	    (json_int_t)q.remaining, "totalTokens", (json_int_t)q.total,
	    "remainingQueries", (json_int_t)q.remaining, "totalQueries",
	    (json_int_t)q.total);
	if (out != NULL && heavy) {
		(void)json_object_set_new(
		    out, "lowEffortRateLimits", json_null());
		(void)json_object_set_new(
		    out, "highEffortRateLimits", json_null());
	} else if (out != NULL) {
		(void)json_object_set_new(out, "lowEffortRateLimits",
		    json_pack("{s:i, s:I, s:I}", "cost", 1, "remainingQueries",
		        (json_int_t)q.remaining, "waitTimeSeconds",
		        (json_int_t)(q.remaining < 1 ? wait : 0)));
		(void)json_object_set_new(out, "highEffortRateLimits",
		    json_pack("{s:i, s:I, s:I}", "cost", 4, "remainingQueries",
		        (json_int_t)(q.remaining / 4), "waitTimeSeconds",
		        (json_int_t)(q.remaining < 4 ? wait : 0)));
	}
	if (out != NULL && q.remaining <= 0)
		(void)json_object_set_new(
		    out, "waitTimeSeconds", json_integer(wait));
	fg_reply_json(r, 200, out);
}

static bool
fg_method_is(const char *method, const char *want, struct fg_reply *r)
{
	if (strcmp(method, want) == 0)
		return true;
	fg_reply_error(r, 405, 12, "method not allowed");
	return false;
}

/* The checks grok.com makes on every call, then the route. */
static void
fg_handle(struct MHD_Connection *c, struct fg_req *rq, const char *path,
    const char *method, struct fg_reply *r)
{
	bool asset = rq->route == FG_R_ASSET;
	struct fg_fault_spec fs = { FG_F_NONE, 0 };
	const char *tok = rq->token;

	if (tok != NULL && *tok != '\0') {
		fg_tok_count(tok, rq->route);
		fg_fault_parse(tok, &fs);
	}
	if (fs.fault == FG_F_403CF && fg_tok_fault(tok, fs.times, true)) {
		fg_reply_fault(r, FG_F_403CF);
	} else if (tok == NULL || *tok == '\0') {
		if (asset)
			fg_reply_error(r, 403, 7, "Forbidden");
		else
			fg_reply_fault(r, FG_F_401);
		(void)util_strlcpy(r->note, "no sso cookie", sizeof(r->note));
	} else if (fs.fault == FG_F_401 && fg_tok_fault(tok, fs.times, true)) {
		fg_reply_fault(r, FG_F_401);
	} else if (!asset && !fg_statsig_ok(fg_hdr(c, "x-statsig-id"))) {
		fg_reply_fault(r, FG_F_403BOT);
		(void)util_strlcpy(
		    r->note, "bad x-statsig-id", sizeof(r->note));
	} else if (fs.fault == FG_F_403BOT &&
	    fg_tok_fault(tok, fs.times, true)) {
		fg_reply_fault(r, FG_F_403BOT);
	} else if (rq->too_big) {
		fg_reply_error(r, 413, 3, "request body too large");
	} else if (rq->route == FG_R_CHAT) {
		if (fg_method_is(method, "POST", r))
			fg_chat_handle(c, rq, r);
	} else if (rq->route == FG_R_RATE) {
		if (fg_method_is(method, "POST", r))
			fg_rate_handle(tok, rq->json, r);
	} else if (rq->route == FG_R_UPLOAD) {
		if (fg_method_is(method, "POST", r))
			fg_upload_handle(tok, rq->json, r);
	} else if (rq->route == FG_R_POST) {
		if (fg_method_is(method, "POST", r))
			fg_post_handle(tok, rq->json, r);
	} else if (asset) {
		fg_asset_handle(tok, method, path, r);
	} else {
		fg_reply_error(r, 404, 5, "Not Found");
	}
}

/* ---- /__fake/ ---- */

static void
fg_fake_requests(
    struct MHD_Connection *c, const char *method, struct fg_reply *r)
{
	const char *since =
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
	int64_t from = 0;
	size_t len;
	char *s;

	if (strcmp(method, "DELETE") == 0) {
		fg_reply_json(r, 200,
		    json_pack("{s:I}", "cleared", (json_int_t)fg_rec_clear()));
		return;
	}
	if (!fg_method_is(method, "GET", r))
		return;
	if (since != NULL && util_parse_i64(since, 0, INT64_MAX, &from) != 0) {
		fg_reply_error(r, 400, 3, "since: a number is required");
		return;
	}
	s = fg_rec_dump((uint64_t)from,
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token"),
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "path"),
	    &len);
	if (s == NULL)
		fg_reply_error(r, 500, 13, "out of memory");
	else
		fg_reply_take(r, 200, "application/json", s, len);
}

static void
fg_fake(struct MHD_Connection *c, const struct fg_req *rq, const char *path,
    const char *method, struct fg_reply *r)
{
	bool del = strcmp(method, "DELETE") == 0;

	if (strcmp(path, "/__fake/requests") == 0) {
		fg_fake_requests(c, method, r);
	} else if (strcmp(path, "/__fake/stats") == 0) {
		if (del)
			fg_stats_reset();
		if (del || fg_method_is(method, "GET", r))
			fg_reply_json(r, 200, fg_stats_json());
	} else if (strcmp(path, "/__fake/tokens") == 0) {
		if (del) {
			fg_tok_clear();
			fg_reply_json(r, 200, json_object());
		} else if (strcmp(method, "POST") == 0) {
			if (fg_tok_set(rq->json) != 0)
				fg_reply_error(r, 400, 3,
				    "want {\"token\":..., \"remaining\":N, "
				    "\"heavy\":N, \"wait\":S, "
				    "\"fault_hits\":N}");
			else
				fg_reply_json(r, 200, fg_tok_json());
		} else if (fg_method_is(method, "GET", r)) {
			fg_reply_json(r, 200, fg_tok_json());
		}
	} else if (strcmp(path, "/__fake/uploads") == 0) {
		if (del) {
			fg_upl_clear();
			fg_reply_json(r, 200, json_object());
		} else if (fg_method_is(method, "GET", r)) {
			fg_reply_json(r, 200, fg_upl_json());
		}
	} else if (strncmp(path, "/__fake/proxy", 13) == 0) {
		fg_proxy_handle(path, method, rq->json, r);
	} else if (strcmp(path, "/__fake/reset") == 0) {
		if (fg_method_is(method, "POST", r)) {
			fg_proxy_clear();
			(void)fg_rec_clear();
			fg_tok_clear();
			fg_upl_clear();
			fg_stats_reset();
			fg_reply_json(r, 200, json_object());
		}
	} else {
		fg_reply_error(r, 404, 5, "Not Found");
	}
}

/* ---- MHD callbacks ---- */

static void
fg_req_free(struct fg_req *rq)
{
	if (rq == NULL)
		return;
	CHECK_OBJ(rq, FG_REQ_MAGIC);
	if (rq->pending != NULL)
		MHD_destroy_response(rq->pending); /* never queued */
	buf_fini(&rq->body);
	json_decref(rq->json);
	free(rq->token);
	rq->magic = 0;
	free(rq);
}

static struct fg_req *
fg_req_new(struct MHD_Connection *c)
{
	const char *cl = fg_hdr(c, "Content-Length");
	const char *ck = fg_hdr(c, "Cookie");
	struct fg_req *rq;
	int64_t n;

	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return NULL;
	rq->magic = FG_REQ_MAGIC;
	rq->state = FG_RQ_BODY;
	rq->wait.fd = -1;
	atomic_init(&rq->wait.aborted, false);
	buf_init(&rq->body, FG_BODY_MAX);
	if (cl != NULL &&
	    (util_parse_i64(cl, 0, INT64_MAX, &n) != 0 ||
	        (uint64_t)n > FG_BODY_MAX))
		rq->too_big = true;
	if (ck != NULL && (rq->token = fg_cookie(ck, "sso")) == NULL &&
	    strstr(ck, "sso=") != NULL) {
		fg_req_free(rq); /* strdup failed */
		return NULL;
	}
	return rq;
}

static enum MHD_Result
fg_queue(struct MHD_Connection *c, struct fg_req *rq, unsigned status,
    struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO; /* out of memory: drop the connection */
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	rq->state = FG_RQ_DONE;
	if (rq->route != FG_R_FAKE && status < ARRAY_LEN(fg_stats.by_status))
		(void)atomic_fetch_add(&fg_stats.by_status[status], 1);
	return ret;
}

static enum MHD_Result
fg_dispatch(struct MHD_Connection *c, struct fg_req *rq, const char *url,
    const char *method)
{
	struct fg_reply r;
	const char *path;
	bool absolute;

	memset(&r, 0, sizeof(r));
	path = fg_path(url, &absolute);
	rq->route = fg_route_of(path);
	if (rq->body.len > 0 && !rq->too_big)
		rq->json =
		    json_loadb(rq->body.p, rq->body.len, JSON_ALLOW_NUL, NULL);
	if (rq->route == FG_R_FAKE) {
		fg_fake(c, rq, path, method, &r);
		return fg_queue(c, rq, r.status, r.resp);
	}
	(void)atomic_fetch_add(&fg_stats.requests, 1);
	(void)atomic_fetch_add(&fg_stats.by_route[rq->route], 1);
	fg_handle(c, rq, path, method, &r);
	fg_record(c, rq, url, path, method, absolute, &r);
	log_debug("%s %s -> %u %s", method, path, r.status, r.note);
	if (rq->state == FG_RQ_WAITING)
		return MHD_YES; /* suspended; fg_req_resumed goes on */
	return fg_queue(c, rq, r.status, r.resp);
}

/* MHD calls the handler again after a wait started by fg_req_wait. */
static enum MHD_Result
fg_req_resumed(struct MHD_Connection *c, struct fg_req *rq)
{
	struct MHD_Response *resp = rq->pending;

	if (atomic_load(&rq->wait.aborted))
		return MHD_NO; /* the client left, or we are quitting */
	if (resp == NULL) {
		fg_req_wait(c, rq, FG_WAIT_HOLD, 0);
		return MHD_YES;
	}
	rq->pending = NULL;
	return fg_queue(c, rq, rq->pending_status, resp);
}

static enum MHD_Result
fg_on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct fg_req *rq = *con_cls;

	(void)cls;
	(void)version;
	if (rq == NULL) {
		if ((rq = fg_req_new(c)) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	CHECK_OBJ(rq, FG_REQ_MAGIC);
	if (rq->state == FG_RQ_WAITING)
		return fg_req_resumed(c, rq);
	if (rq->state == FG_RQ_DONE)
		return MHD_YES;
	if (*upload_data_size > 0) {
		if (!rq->too_big &&
		    buf_append(&rq->body, upload_data, *upload_data_size) !=
		        0) {
			rq->too_big = true; /* keep reading, drop the bytes */
			buf_fini(&rq->body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return fg_dispatch(c, rq, url, method);
}

static void
fg_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	fg_req_free(*con_cls);
	*con_cls = NULL;
}

static void
fg_on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
    enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)c;
	(void)socket_ctx;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		(void)atomic_fetch_add(&fg_stats.conns_open, 1);
		(void)atomic_fetch_add(&fg_stats.conns_total, 1);
	} else {
		(void)atomic_fetch_sub(&fg_stats.conns_open, 1);
	}
}

/* ---- start and stop ---- */

/* Bind host:port (port 0: any free one); returns the fd or -1. */
static int
fg_listen(const char *host, const char *port, unsigned *bound)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		log_warnx("%s:%s: %s", host, port, gai_strerror(e));
		return -1;
	}
	fd = socket(
	    res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 4096) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		log_warn("listen on %s:%s", host, port);
		close_fd(&fd);
	} else if (ss.ss_family == AF_INET6) {
		*bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	freeaddrinfo(res);
	return fd;
}

static void
fg_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("setrlimit(RLIMIT_NOFILE)");
}

/* Command-line settings that only main and fg_start use. */
struct fg_opts {
	char host[256];
	char port[8];
	int64_t threads, maxconn, idle_s, conn_mem;
	bool debug;
};

static struct MHD_Daemon *
fg_start(int fd, const struct fg_opts *o)
{
	unsigned threads = (unsigned)o->threads;
	size_t conn_mem = (size_t)o->conn_mem;
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_LISTEN_SOCKET, fd, NULL },
		{ fg_conf.sleep_lines ? MHD_OPTION_THREAD_STACK_SIZE
		                      : MHD_OPTION_LISTEN_SOCKET,
		    fg_conf.sleep_lines ? FG_STACK : fd, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->maxconn, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->idle_s, NULL },
		/*
		 * MHD touches all of it: half the default still holds a
		 * request with big cookies (-M 8192 for 10,000 streams).
		 */
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, conn_mem, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)fg_on_completed,
		    NULL },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)fg_on_connection,
		    NULL },
		{ threads > 1 && !fg_conf.sleep_lines
		        ? MHD_OPTION_THREAD_POOL_SIZE
		        : MHD_OPTION_END,
		    threads, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	/*
	 * No MHD_USE_TURBO: with it, 0.9.75 skips the shutdown() when a
	 * content reader fails, so a "cut" stream would hang until the idle
	 * timeout instead of dropping at once.
	 */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME;

	/*
	 * -P: 0.9.75 walks every suspended connection on each resume, so
	 * suspended streams need their lines batched on a grid (fg_timer.c),
	 * which makes 10,000 streams arrive in bursts of ~150 lines. A
	 * thread per connection sleeps until each line is due instead:
	 * smooth arrivals, no walks, 10,000 sleeping threads.
	 */
	if (fg_conf.sleep_lines)
		flags = MHD_USE_INTERNAL_POLLING_THREAD |
		    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
		    MHD_ALLOW_SUSPEND_RESUME;

	if (o->debug)
		flags |= MHD_USE_ERROR_LOG;
	return MHD_start_daemon(flags, 0, NULL, NULL, fg_on_request, NULL,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static int
fg_num(const char *s, int64_t min, int64_t max, const char *what, int64_t *v)
{
	if (util_parse_i64(s, min, max, v) == 0)
		return 0;
	(void)fprintf(stderr, "fakegrok: %s: want %lld..%lld, not \"%s\"\n",
	    what, (long long)min, (long long)max, s);
	return WP_EINVAL;
}

static int
fg_args(int argc, char **argv, struct fg_opts *o)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "debug", no_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-conns", required_argument, NULL, 'c' },
		{ "records", required_argument, NULL, 'r' },
		{ "model", required_argument, NULL, 'm' },
		{ "quota", required_argument, NULL, 'q' },
		{ "heavy-quota", required_argument, NULL, 'H' },
		{ "window", required_argument, NULL, 'w' },
		{ "fault-wait", required_argument, NULL, 'W' },
		{ "idle-timeout", required_argument, NULL, 'T' },
		{ "conn-mem", required_argument, NULL, 'M' },
		{ "thread-per-conn", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = "127.0.0.1:0", *colon;
	int64_t v;
	int ch, rc = 0;

	while (rc == 0 &&
	    (ch = getopt_long(
	         argc, argv, "l:dt:c:r:m:q:H:w:W:T:M:Ph", lo, NULL)) != -1) {
		switch (ch) {
		case 'l':
			listen = optarg;
			break;
		case 'd':
			o->debug = true;
			break;
		case 't':
			rc = fg_num(optarg, 1, 64, "-t", &o->threads);
			break;
		case 'c':
			rc = fg_num(optarg, 1, 1000000, "-c", &o->maxconn);
			break;
		case 'r':
			rc = fg_num(optarg, 0, 1000000, "-r", &v);
			fg_conf.nrecords = (size_t)v;
			break;
		case 'm':
			fg_conf.models[fg_conf.nmodels++] = optarg;
			break;
		case 'q':
			rc = fg_num(optarg, 0, INT32_MAX, "-q", &fg_conf.quota);
			break;
		case 'H':
			rc = fg_num(
			    optarg, 0, INT32_MAX, "-H", &fg_conf.heavy_quota);
			break;
		case 'w':
			rc = fg_num(
			    optarg, 1, INT32_MAX, "-w", &fg_conf.window_s);
			break;
		case 'W':
			rc = fg_num(
			    optarg, 1, INT32_MAX, "-W", &fg_conf.fault_wait_s);
			break;
		case 'T':
			rc = fg_num(optarg, 0, 86400, "-T", &o->idle_s);
			break;
		case 'M':
			rc = fg_num(optarg, 4096, 1 << 24, "-M", &o->conn_mem);
			break;
		case 'P':
			fg_conf.sleep_lines = true;
			break;
		default:
			rc = WP_EINVAL;
			break;
		}
	}
	if (rc != 0 || optind != argc)
		return WP_EINVAL;
	/* host:port, [v6]:port */
	if ((colon = strrchr(listen, ':')) == NULL ||
	    strlen(colon + 1) >= sizeof(o->port) || colon == listen) {
		(void)fprintf(stderr, "fakegrok: -l wants host:port\n");
		return WP_EINVAL;
	}
	(void)snprintf(
	    o->host, sizeof(o->host), "%.*s", (int)(colon - listen), listen);
	(void)snprintf(o->port, sizeof(o->port), "%s", colon + 1);
	if (o->host[0] == '[' && o->host[strlen(o->host) - 1] == ']') {
		memmove(o->host, o->host + 1, strlen(o->host));
		o->host[strlen(o->host) - 1] = '\0';
	}
	return 0;
}

/* Resume every waiting connection, then stop MHD and free everything. */
static void
fg_shutdown(struct MHD_Daemon *d)
{
	int i;

	fg_timer_quit();
	/* MHD must not stop while a connection is suspended. */
	for (i = 0; i < 500 && atomic_load(&fg_stats.suspended) > 0; i++)
		(void)usleep(10000);
	if (atomic_load(&fg_stats.suspended) > 0)
		log_warnx("%llu connections still suspended at exit",
		    (unsigned long long)atomic_load(&fg_stats.suspended));
	MHD_stop_daemon(d);
	fg_timer_stop();
	fg_store_fini();
}

int
main(int argc, char **argv)
{
	struct fg_opts o = {
		.threads = FG_THREADS,
		.maxconn = 20000,
		.idle_s = FG_IDLE_S,
		.conn_mem = FG_CONN_MEM,
	};
	struct MHD_Daemon *d;
	struct sigaction sa;
	sigset_t set;
	unsigned port = 0;
	int fd, sig = 0;

	log_procinit("fakegrok");
	if ((fg_conf.models = calloc((size_t)argc, sizeof(char *))) == NULL)
		fatal("calloc");
	if (fg_args(argc, argv, &o) != 0) {
		fg_usage();
		return 2;
	}
	log_setlevel(o.debug ? LOG_LVL_DEBUG : LOG_LVL_NOTICE);
	fg_raise_nofile();
	json_object_seed(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	/* Every thread inherits this mask; main takes the signals. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGHUP);
	(void)pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (fg_store_init() != 0)
		fatalx("out of memory");
	if ((fd = fg_listen(o.host, o.port, &port)) < 0)
		return 1;
	if (fg_timer_start() != 0)
		fatal("timer thread");
	if ((d = fg_start(fd, &o)) == NULL)
		fatalx("cannot start the HTTP daemon");
	(void)printf(strchr(o.host, ':') != NULL ? "listening [%s]:%u\n"
	                                         : "listening %s:%u\n",
	    o.host, port);
	(void)fflush(stdout);
	log_notice("listening on %s:%u, %lld threads", o.host, port,
	    (long long)o.threads);
	while (sig != SIGINT && sig != SIGTERM)
		if (sigwait(&set, &sig) != 0)
			break;
	log_notice("signal %d, stopping", sig);
	fg_shutdown(d);
	free(fg_conf.models);
	return 0;
}
