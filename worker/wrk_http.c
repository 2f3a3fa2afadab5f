/*
 * The worker's HTTP side: accepting on the listening socket, the
 * libmicrohttpd daemons (external-epoll mode) that serve the connections,
 * routing, the API-key check, request bodies under a cap, and the routes
 * that need no upstream. One struct wrk_req per request, freed only in
 * the completion callback. Runs on the worker's one thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "err.h"
#include "log.h"
#include "oai.h"
#include "tok.h"
#include "util.h"
#include "wrk.h"

enum wrk_route {
	WRK_RT_NONE,
	WRK_RT_HEALTHZ,
	WRK_RT_METRICS,
	WRK_RT_MODELS,
	WRK_RT_MODEL,
	WRK_RT_CHAT,
	WRK_RT_IMAGES,
	WRK_RT_MEDIA,
	WRK_RT_PANEL,
	WRK_RT_ADMIN,
};

static const struct wrk_route_def {
	const char *path;
	bool prefix;
	const char *methods; /* for Allow: and the 405 check */
	enum wrk_route route;
} wrk_routes[] = {
	{ "/healthz", false, "GET, HEAD", WRK_RT_HEALTHZ },
	{ "/metrics", false, "GET", WRK_RT_METRICS },
	{ "/v1/models", false, "GET", WRK_RT_MODELS },
	{ "/v1/models/", true, "GET", WRK_RT_MODEL },
	{ "/v1/chat/completions", false, "POST", WRK_RT_CHAT },
	{ "/v1/images/generations", false, "POST", WRK_RT_IMAGES },
	{ "/images/", true, "GET, HEAD", WRK_RT_MEDIA },
	{ "/projects/grok", false, "GET, HEAD", WRK_RT_PANEL },
	{ "/projects/grok/", false, "GET, HEAD", WRK_RT_PANEL },
	{ "/projects/grok/", true, "GET, HEAD", WRK_RT_PANEL },
	{ "/api/", true, "GET, POST, PATCH, DELETE", WRK_RT_ADMIN },
};

/* Routes that answer without an API key: health, media, the panel. */
static bool
wrk_route_public(enum wrk_route r)
{
	return r == WRK_RT_HEALTHZ || r == WRK_RT_MEDIA || r == WRK_RT_PANEL ||
	    r == WRK_RT_ADMIN;
}

static const struct wrk_route_def *
wrk_route_find(const char *url)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(wrk_routes); i++) {
		const struct wrk_route_def *r = &wrk_routes[i];

		if (r->prefix ? strncmp(url, r->path, strlen(r->path)) == 0 &&
		            url[strlen(r->path)] != '\0'
		              : strcmp(url, r->path) == 0)
			return r;
	}
	return NULL;
}

static bool
wrk_method_ok(const char *allowed, const char *method)
{
	size_t n = strlen(method);
	const char *p = allowed;

	while ((p = strstr(p, method)) != NULL) {
		if ((p == allowed || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}

static void
wrk_count(struct wrk *w, const struct wrk_req *rq, unsigned status)
{
	struct shm_counters *c = &w->me->c;

	wrk_admin_count(w, rq->model_slot, status);
	atomic_fetch_add_explicit(&c->requests, 1, memory_order_relaxed);
	if (status >= 500)
		atomic_fetch_add_explicit(
		    &c->errors_5xx, 1, memory_order_relaxed);
	else if (status >= 400)
		atomic_fetch_add_explicit(
		    &c->errors_4xx, 1, memory_order_relaxed);
}

void
wrk_cors(
    const struct wrk *w, struct MHD_Connection *conn, struct MHD_Response *resp)
{
	const char *origin, *list = w->cfg->cors_origins, *p;
	size_t n;

	if (strcmp(list, "*") == 0) {
		(void)MHD_add_response_header(
		    resp, "Access-Control-Allow-Origin", "*");
		return;
	}
	origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	if (origin == NULL)
		return;
	n = strlen(origin);
	for (p = list; (p = strstr(p, origin)) != NULL; p += n)
		if ((p == list || p[-1] == ',' || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ')) {
			(void)MHD_add_response_header(
			    resp, "Access-Control-Allow-Origin", origin);
			(void)MHD_add_response_header(resp, "Vary", "Origin");
			return;
		}
}

/* Queue body (taken: freed here) with status and content type. */
static enum MHD_Result
wrk_send(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    const char *ctype, char *body, const char *allow, const char *retry_after)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	size_t len;

	if (body == NULL)
		return MHD_NO; /* out of memory: drop the connection */
	len = strlen(body);
	resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	(void)MHD_add_response_header(resp, "Content-Type", ctype);
	if (strncmp(rq->url, "/v1/", 4) == 0)
		wrk_cors(rq->w, conn, resp);
	if (allow != NULL)
		(void)MHD_add_response_header(resp, "Allow", allow);
	if (allow != NULL && status == 204) { /* a CORS preflight */
		(void)MHD_add_response_header(
		    resp, "Access-Control-Allow-Methods", allow);
		(void)MHD_add_response_header(resp,
		    "Access-Control-Allow-Headers",
		    "Authorization, Content-Type");
		(void)MHD_add_response_header(
		    resp, "Access-Control-Max-Age", "86400");
	}
	if (retry_after != NULL)
		(void)MHD_add_response_header(resp, "Retry-After", retry_after);
	if (rq->w->draining)
		(void)MHD_add_response_header(resp, "Connection", "close");
	rq->status = status;
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

int
wrk_send_json(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    char *body, const char *retry_after)
{
	return wrk_send(
	    rq, conn, status, "application/json", body, NULL, retry_after);
}

int
wrk_send_error(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    const char *param, const char *code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return wrk_send_json(rq, conn, status,
	    oai_error(msg, oai_error_type(status), param, code), NULL);
}

/* Bearer key against server.api_keys, in constant time. */
static bool
wrk_authorized(const struct wrk *w, struct MHD_Connection *conn, bool *missing)
{
	const char *h, *key;
	bool ok = false;
	uint32_t i;

	*missing = false;
	if (w->cfg->n_api_keys == 0)
		return true;
	h = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		*missing = true;
		return false;
	}
	key = h + 7;
	while (*key == ' ')
		key++;
	/* Compare with every key, so time does not say which matched. */
	for (i = 0; i < w->cfg->n_api_keys; i++)
		ok |= util_ct_streq(key, strlen(key), w->cfg->api_keys[i],
		    strlen(w->cfg->api_keys[i]));
	return ok;
}

static enum MHD_Result
wrk_models(struct wrk_req *rq, struct MHD_Connection *conn, const char *id)
{
	struct tok_table *t = rq->w->shm->tok;
	bool has_super = tok_table_count_type(t, TOK_SUPER) > 0;
	bool has_any = has_super || tok_table_count_type(t, TOK_NORMAL) > 0;
	char *s;

	s = oai_models(rq->w->cfg, has_any, has_super, id);
	if (s == NULL && id != NULL)
		return wrk_send_error(rq, conn, 404, "model", "model_not_found",
		    "The model '%.100s' does not exist or has no token in its "
		    "pool; GET /v1/models lists the available ones",
		    id);
	return wrk_send_json(rq, conn, 200, s, NULL);
}

static enum MHD_Result
wrk_dispatch(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	const struct wrk_route_def *def = wrk_route_find(rq->url);
	bool missing;

	if (strcmp(method, "OPTIONS") == 0 && strncmp(rq->url, "/v1/", 4) == 0)
		return wrk_send(rq, conn, 204, "text/plain", strdup(""),
		    "GET, POST, OPTIONS", NULL);
	if (def == NULL)
		return wrk_send_error(rq, conn, 404, NULL, "not_found",
		    "No route for %.200s %.200s", method, rq->url);
	if (!wrk_method_ok(def->methods, method))
		return wrk_send(rq, conn, 405, "application/json",
		    oai_error("Method not allowed", "invalid_request_error",
		        NULL, "method_not_allowed"),
		    def->methods, NULL);
	if (!wrk_route_public(def->route) &&
	    !wrk_authorized(rq->w, conn, &missing))
		return wrk_send_error(rq, conn, 401, NULL, "invalid_api_key",
		    missing ? "Missing API key: send 'Authorization: Bearer "
		              "<key>' with one of server.api_keys"
		            : "Incorrect API key provided");
	switch (def->route) {
	case WRK_RT_HEALTHZ:
		return wrk_send_json(
		    rq, conn, 200, strdup("{\"status\":\"ok\"}"), NULL);
	case WRK_RT_METRICS:
		return (enum MHD_Result)wrk_admin_metrics(rq, conn);
	case WRK_RT_MODELS:
		return wrk_models(rq, conn, NULL);
	case WRK_RT_MODEL:
		return wrk_models(rq, conn, rq->url + strlen(def->path));
	case WRK_RT_CHAT:
		rq->model_slot = wrk_admin_model_slot(rq->w, rq->body, rq->len);
		return (enum MHD_Result)wrk_chat_start(
		    rq->w, rq, conn, rq->body, rq->len);
	case WRK_RT_IMAGES:
		rq->model_slot = wrk_admin_model_slot(rq->w, rq->body, rq->len);
		return (enum MHD_Result)wrk_media_generate(rq, conn);
	case WRK_RT_MEDIA:
		return (enum MHD_Result)wrk_media_serve(rq, conn, method);
	case WRK_RT_PANEL:
		return (enum MHD_Result)wrk_admin_static(rq, conn, method);
	case WRK_RT_ADMIN:
		return (enum MHD_Result)wrk_admin_api(rq, conn, method);
	case WRK_RT_NONE:
		break;
	}
	return MHD_NO;
}

static bool
wrk_has_body(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

static int
wrk_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

struct wrk_hdr_count {
	unsigned cl, te;
	const char *cl_first;
	bool cl_differ;
};

static enum MHD_Result
wrk_count_hdr(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct wrk_hdr_count *n = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (n->cl++ == 0)
			n->cl_first = value;
		else if (value == NULL || n->cl_first == NULL ||
		    strcmp(value, n->cl_first) != 0)
			n->cl_differ = true;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		n->te++;
	return MHD_YES;
}

/*
 * Framing a front proxy could read differently from us: both
 * Content-Length and Transfer-Encoding, or Content-Lengths that differ.
 * libmicrohttpd 0.9.75 does not refuse these itself (RFC 9112 6.3).
 */
static bool
wrk_smuggling(struct MHD_Connection *conn)
{
	struct wrk_hdr_count n;

	memset(&n, 0, sizeof(n));
	(void)MHD_get_connection_values(
	    conn, MHD_HEADER_KIND, wrk_count_hdr, &n);
	return (n.cl > 0 && n.te > 0) || n.te > 1 || n.cl_differ;
}

static enum MHD_Result
wrk_refuse_framing(struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	char *body;

	body = oai_error("The request's length is ambiguous (both "
	                 "Content-Length and Transfer-Encoding, or several "
	                 "Content-Lengths)",
	    "invalid_request_error", NULL, "bad_framing");
	if (body == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(
	    strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	(void)MHD_add_response_header(resp, "Content-Type", "application/json");
	/* Nothing after this request on the connection is trusted. */
	(void)MHD_add_response_header(resp, "Connection", "close");
	rq->status = 400;
	r = MHD_queue_response(conn, 400, resp);
	MHD_destroy_response(resp);
	return r;
}

/*
 * Percent-decoding as libmicrohttpd's own, except that "%00" is left as
 * it is: a NUL would make the path we check shorter than the one asked.
 */
static size_t
wrk_unescape(void *cls, struct MHD_Connection *conn, char *uri)
{
	char *r = uri, *o = uri;
	int hi, lo;

	(void)cls;
	(void)conn;
	while (*r != '\0') {
		if (r[0] == '%' && (hi = wrk_hex(r[1])) >= 0 &&
		    (lo = wrk_hex(r[2])) >= 0 && (hi | lo) != 0) {
			*o++ = (char)(hi * 16 + lo);
			r += 3;
			continue;
		}
		*o++ = *r++;
	}
	*o = '\0';
	return (size_t)(o - uri);
}

static enum MHD_Result
wrk_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct wrk *w = cls;
	struct wrk_req *rq = *req_cls;
	const union MHD_ConnectionInfo *ci;
	const char *cl;
	int64_t clen;

	(void)version;
	CHECK_OBJ(w, WRK_MAGIC);
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		rq->magic = WRK_REQ_MAGIC;
		rq->w = w;
		rq->url = url;
		ci = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (ci != NULL && ci->socket_context != NULL) {
			rq->conn = ci->socket_context;
			rq->conn->busy++;
		}
		*req_cls = rq;
		atomic_fetch_add_explicit(
		    &w->me->c.active, 1, memory_order_relaxed);
		if (wrk_smuggling(conn))
			return wrk_refuse_framing(rq, conn);
		/*
		 * Answer on the next call, as for a body: libmicrohttpd
		 * 0.9.75 closes a keep-alive connection whose answer was
		 * queued on the first call.
		 */
		if (!wrk_has_body(method))
			return MHD_YES;
		/* Refuse an announced oversized body before reading it. */
		cl = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL &&
		    (util_parse_i64(cl, 0, INT64_MAX, &clen) != 0 ||
		        (uint64_t)clen > w->cfg->max_body_bytes))
			return wrk_send_error(rq, conn, 413, NULL,
			    "request_too_large",
			    "The request body is larger than "
			    "server.max_body_bytes (%llu bytes)",
			    (unsigned long long)w->cfg->max_body_bytes);
		if (cl != NULL)
			rq->announced = (size_t)clen; /* the buffer's size */
		return MHD_YES;
	}
	CHECK_OBJ(rq, WRK_REQ_MAGIC);
	if (rq->chat != NULL) /* called again after a resume */
		return (enum MHD_Result)wrk_chat_resumed(rq->chat, conn);
	if (rq->on_resume != NULL)
		return (enum MHD_Result)rq->on_resume(rq, conn);
	if (rq->status != 0) {
		/* Answered already (413): throw the rest away. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		if (rq->len + n > w->cfg->max_body_bytes) {
			/*
			 * A chunked body past the cap. libmicrohttpd cannot
			 * answer in the middle of a body: close instead of
			 * reading the rest (an announced length got its 413).
			 */
			rq->status = 413;
			return MHD_NO;
		}
		if (rq->len + n + 1 > rq->cap) {
			/*
			 * An announced length is what MHD passes on, at most:
			 * no slack to carry for a stream's whole life.
			 */
			size_t cap = rq->cap    ? rq->cap
			    : rq->announced > 0 ? rq->announced + 1
			                        : 4096;
			char *p;

			while (cap < rq->len + n + 1)
				cap *= 2;
			if ((p = realloc(rq->body, cap)) == NULL)
				return MHD_NO;
			rq->body = p;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload_data, n);
		rq->len += n;
		rq->body[rq->len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	return wrk_dispatch(rq, conn, method);
}

static void
wrk_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct wrk *w = cls;
	struct wrk_req *rq = *req_cls;

	(void)conn;
	(void)toe;
	CHECK_OBJ(w, WRK_MAGIC);
	if (rq == NULL)
		return;
	CHECK_OBJ(rq, WRK_REQ_MAGIC);
	if (rq->chat != NULL)
		wrk_chat_free(w, rq->chat);
	rq->chat = NULL;
	if (rq->on_free != NULL)
		rq->on_free(rq);
	wrk_count(w, rq, rq->status);
	atomic_fetch_sub_explicit(&w->me->c.active, 1, memory_order_relaxed);
	if (rq->conn != NULL && --rq->conn->busy == 0)
		rq->conn->idle_since_ms = util_mono_ms();
	free(rq->body);
	rq->magic = 0;
	free(rq);
	*req_cls = NULL;
}

/*
 * Why several MHD daemons: libmicrohttpd 0.9.75 walks every suspended
 * connection of a daemon on the first MHD_run after any resume
 * (resume_suspended_connections), and a stream is suspended between two
 * frames. With 5,000 streams on one daemon, each frame cost a walk of
 * 5,000 connections (~150 ns each here: cold, one page apart), most of
 * the worker's time at 10,000 streams. So the worker accepts itself and
 * hands each connection to the first daemon with fewer than WRK_MHD_FILL
 * connections: a walk covers at most about that many. At low load the
 * first daemon serves everything, as before. Each daemon runs only when
 * its epoll fd fires, a resume or a new connection marks it, or its
 * timeout is due.
 */
#define WRK_MHD_MAGIC    0x4d484431u
#define WRK_MHD_FILL     64
#define WRK_ACCEPT_BATCH 128 /* accepts per wake-up: the rest next turn */
#define WRK_MHD_RERUN    3   /* extra runs in a row while MHD wants them */
/*
 * MHD's memory per connection: the request head (16 KiB at most, 8 of
 * it for a Cookie header MHD copies again: webproxyd(8)), then the
 * response head and the frames on their way out. MHD zeroes the half it
 * read the request into when the answer starts, so the 64 KiB it had
 * touched ~25 KiB per stream; 16 KiB touches at most 16 (and is
 * malloc'ed, not a mapping of its own).
 */
#define WRK_MHD_POOL (16 * 1024)

struct wrk_mhd {
	unsigned magic;
	struct wrk *w;
	struct MHD_Daemon *d;
	struct wrk_ev ev; /* d's epoll fd in the worker's set */
	unsigned nconn;   /* its connections (from the notify callback) */
	bool ready;       /* run d on this turn */
	int64_t due_ms;   /* MHD's own timeout, monotonic; -1 = none */
};

static void
wrk_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
    enum MHD_ConnectionNotificationCode toe)
{
	struct wrk_mhd *m = cls;
	struct wrk *w;
	struct wrk_conn *c = *socket_ctx;
	const union MHD_ConnectionInfo *ci;

	CHECK_OBJ(m, WRK_MHD_MAGIC);
	w = m->w;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		m->nconn++;
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return; /* untracked: only drain is less tidy */
		ci = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c->fd = ci != NULL ? ci->connect_fd : -1;
		c->m = m;
		c->idle_since_ms = util_mono_ms();
		c->next = w->conns;
		if (w->conns != NULL)
			w->conns->prev = c;
		w->conns = c;
		*socket_ctx = c;
		return;
	}
	m->nconn--;
	if (c == NULL)
		return;
	wrk_ev_del(w, &c->hup);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	*socket_ctx = NULL;
}

static void
wrk_conn_on_hup(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct wrk_conn *c = ev->arg;
	void (*fn)(void *) = c->on_hup;

	(void)events;
	if (fn == NULL) {
		/* Nothing parked: MHD reads the end itself (no repeats). */
		wrk_ev_del(w, ev);
		return;
	}
	c->on_hup = NULL;
	fn(c->hup_arg);
}

int
wrk_conn_park(
    struct wrk *w, struct wrk_conn *c, void (*on_hup)(void *), void *arg)
{
	if (!c->hup.added) {
		c->hup.fd = c->fd;
		c->hup.fn = wrk_conn_on_hup;
		c->hup.arg = c;
		if (c->fd < 0 || wrk_ev_add(w, &c->hup, EPOLLRDHUP) != 0)
			return WP_ESYS;
	}
	c->on_hup = on_hup;
	c->hup_arg = arg;
	return 0;
}

void
wrk_conn_unpark(struct wrk_conn *c)
{
	c->on_hup = NULL;
	c->hup_arg = NULL;
}

static void
wrk_mhd_on_epoll(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct wrk_mhd *m = ev->arg;

	(void)w;
	(void)events;
	CHECK_OBJ(m, WRK_MHD_MAGIC);
	m->ready = true; /* wrk_http_run does the work */
}

static void
wrk_mhd_free(struct wrk *w, struct wrk_mhd *m)
{
	if (m == NULL)
		return;
	CHECK_OBJ(m, WRK_MHD_MAGIC);
	wrk_ev_del(w, &m->ev);
	if (m->d != NULL)
		MHD_stop_daemon(m->d);
	m->magic = 0;
	free(m);
}

static struct wrk_mhd *
wrk_mhd_new(struct wrk *w)
{
	struct wrk_mhd *m;
	const union MHD_DaemonInfo *di;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->magic = WRK_MHD_MAGIC;
	m->w = w;
	m->due_ms = -1;
	m->ev.fd = -1;
	m->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	        MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET,
	    0, NULL, NULL, wrk_access, w, MHD_OPTION_NOTIFY_COMPLETED,
	    wrk_completed, w, MHD_OPTION_NOTIFY_CONNECTION, wrk_conn_notify, m,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)w->cfg->max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)w->cfg->connection_timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WRK_MHD_POOL,
	    MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_UNESCAPE_CALLBACK,
	    wrk_unescape, w, MHD_OPTION_END);
	if (m->d == NULL ||
	    (di = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD)) ==
	        NULL) {
		log_errx("libmicrohttpd: cannot start a daemon");
		wrk_mhd_free(w, m);
		return NULL;
	}
	m->ev.fd = di->epoll_fd;
	m->ev.fn = wrk_mhd_on_epoll;
	m->ev.arg = m;
	if (wrk_ev_add(w, &m->ev, EPOLLIN) != 0) {
		log_warn("epoll: libmicrohttpd's epoll fd");
		wrk_mhd_free(w, m);
		return NULL;
	}
	return m;
}

/* The first daemon with room, a new one, or the least busy. */
static struct wrk_mhd *
wrk_mhd_pick(struct wrk *w)
{
	struct wrk_mhd *m, *least = w->mhd[0];
	unsigned i;

	for (i = 0; i < w->nmhd; i++) {
		m = w->mhd[i];
		if (m->nconn < WRK_MHD_FILL)
			return m;
		if (m->nconn < least->nconn)
			least = m;
	}
	if (w->nmhd < WRK_MHD_MAX && (m = wrk_mhd_new(w)) != NULL) {
		w->mhd[w->nmhd++] = m;
		return m;
	}
	return least;
}

static void wrk_http_listen(struct wrk *w, bool on);

static void
wrk_http_on_listen(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	unsigned i, n = wrk_http_connections(w);
	struct sockaddr_storage ss;
	struct wrk_mhd *m;
	socklen_t sl;
	int fd;

	(void)ev;
	(void)events;
	for (i = 0; i < WRK_ACCEPT_BATCH; i++, n++) {
		if (n >= (unsigned)w->cfg->max_connections) {
			wrk_http_listen(w, false); /* back when one closes */
			return;
		}
		sl = sizeof(ss);
		fd = accept4(w->lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warn("accept: pausing for a second");
				w->accept_paused = true; /* wrk_http_tick */
				wrk_http_listen(w, false);
			}
			return; /* EAGAIN, or the client gave up already */
		}
		m = wrk_mhd_pick(w);
		m->ready = true; /* MHD_USE_TURBO: it reads on its next run */
		/* On failure MHD has closed fd and says why itself. */
		(void)MHD_add_connection(m->d, fd, (struct sockaddr *)&ss, sl);
	}
}

/* Watch the listening socket, or stop (at the limit, or draining). */
static void
wrk_http_listen(struct wrk *w, bool on)
{
	if (on == w->ev_listen.added || w->lfd < 0)
		return;
	if (!on) {
		wrk_ev_del(w, &w->ev_listen);
		return;
	}
	if (wrk_ev_add(w, &w->ev_listen, EPOLLIN) != 0)
		log_warn("epoll: the listening socket");
}

int
wrk_http_start(struct wrk *w)
{
	if ((w->mhd[0] = wrk_mhd_new(w)) == NULL)
		return WP_ESYS;
	w->nmhd = 1;
	w->ev_listen.fd = w->lfd;
	w->ev_listen.fn = wrk_http_on_listen;
	if (wrk_ev_add(w, &w->ev_listen, EPOLLIN) != 0)
		return WP_ESYS;
	return 0;
}

void
wrk_http_resume(struct wrk *w, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	struct wrk_conn *c;

	(void)w;
	MHD_resume_connection(conn);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	c = ci != NULL ? ci->socket_context : NULL;
	/* Untracked: MHD's epoll fd tells us a turn later. */
	if (c != NULL)
		c->m->ready = true;
}

int
wrk_http_timeout_ms(const struct wrk *w, int64_t now, int timeout)
{
	const struct wrk_mhd *m;
	unsigned i;

	for (i = 0; i < w->nmhd; i++) {
		m = w->mhd[i];
		if (m->ready)
			return 0;
		if (m->due_ms < 0)
			continue;
		if (m->due_ms <= now)
			return 0;
		if (m->due_ms - now < timeout)
			timeout = (int)(m->due_ms - now);
	}
	return timeout;
}

void
wrk_http_run(struct wrk *w)
{
	MHD_UNSIGNED_LONG_LONG to;
	struct wrk_mhd *m;
	int64_t now = util_mono_ms();
	unsigned i, k;

	/* A callback may add a daemon (w->nmhd) or mark one run already. */
	for (i = 0; i < w->nmhd; i++) {
		m = w->mhd[i];
		if (!m->ready && (m->due_ms < 0 || m->due_ms > now))
			continue;
		m->ready = false;
		/*
		 * After an answer MHD wants two more runs at once (the
		 * connection back to reading): do them here rather than
		 * through two more turns of the loop (an epoll_wait each).
		 */
		for (k = 0;; k++) {
			(void)MHD_run(m->d); /* errors are per connection */
			if (MHD_get_timeout(m->d, &to) != MHD_YES) {
				m->due_ms = -1;
				break;
			}
			/* It changes only when it runs, or is marked. */
			m->due_ms =
			    now + (to < INT32_MAX ? (int64_t)to : INT32_MAX);
			if (to != 0 || m->ready || k == WRK_MHD_RERUN)
				break;
		}
	}
	if (!w->draining && !w->accept_paused && !w->ev_listen.added &&
	    wrk_http_connections(w) < (unsigned)w->cfg->max_connections)
		wrk_http_listen(w, true);
}

void
wrk_http_tick(struct wrk *w)
{
	unsigned i;

	for (i = 0; i < w->nmhd; i++)
		w->mhd[i]->ready = true;
	w->accept_paused = false;
}

/*
 * Stop accepting and close idle keep-alive connections, so clients move
 * to the new workers; requests in progress finish.
 */
void
wrk_http_drain(struct wrk *w)
{
	wrk_http_listen(w, false);
	close_fd(&w->lfd); /* the master keeps the socket open */
	wrk_http_drain_idle(w);
}

void
wrk_http_drain_idle(struct wrk *w)
{
	int64_t now = util_mono_ms();
	struct wrk_conn *c;
	int pending;

	/*
	 * A connection idle for a second, with nothing unread, is closed so
	 * its client moves on to the new workers; a younger one may carry
	 * a request on its way, and is looked at again on the next tick.
	 */
	for (c = w->conns; c != NULL; c = c->next)
		if (c->busy == 0 && c->fd >= 0 && !c->shut &&
		    now - c->idle_since_ms >= 1000 &&
		    ioctl(c->fd, FIONREAD, &pending) == 0 && pending == 0) {
			(void)shutdown(c->fd, SHUT_RDWR); /* MHD closes it */
			c->shut = true;
		}
}

void
wrk_http_stop(struct wrk *w)
{
	unsigned i;

	if (w->nmhd == 0)
		return;
	/* MHD must not stop with a connection suspended: wake them all. */
	wrk_chat_abort_all(w);
	wrk_admin_abort_all(w);
	for (i = 0; i < w->nmhd; i++)
		(void)MHD_run(w->mhd[i]->d);
	for (i = 0; i < w->nmhd; i++) {
		wrk_mhd_free(w, w->mhd[i]);
		w->mhd[i] = NULL;
	}
	w->nmhd = 0;
	wrk_http_listen(w, false);
	close_fd(&w->lfd);
}

unsigned
wrk_http_connections(const struct wrk *w)
{
	unsigned i, n = 0;

	for (i = 0; i < w->nmhd; i++)
		n += w->mhd[i]->nconn;
	return n;
}
