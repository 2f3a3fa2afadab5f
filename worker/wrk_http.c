/*
 * The worker's HTTP side: libmicrohttpd in external-epoll mode, routing,
 * the API-key check, request bodies under a cap, and the routes that need
 * no upstream. One struct wrk_req per request, freed only in the
 * completion callback. Runs on the worker's one thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
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
			size_t cap = rq->cap ? rq->cap : 4096;
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

static void
wrk_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
    enum MHD_ConnectionNotificationCode toe)
{
	struct wrk *w = cls;
	struct wrk_conn *c = *socket_ctx;
	const union MHD_ConnectionInfo *ci;

	CHECK_OBJ(w, WRK_MAGIC);
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return; /* untracked: only drain is less tidy */
		ci = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c->fd = ci != NULL ? ci->connect_fd : -1;
		c->idle_since_ms = util_mono_ms();
		c->next = w->conns;
		if (w->conns != NULL)
			w->conns->prev = c;
		w->conns = c;
		*socket_ctx = c;
		return;
	}
	if (c == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	*socket_ctx = NULL;
}

int
wrk_http_start(struct wrk *w)
{
	w->mhd = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO, 0, NULL,
	    NULL, wrk_access, w, MHD_OPTION_LISTEN_SOCKET, w->lfd,
	    MHD_OPTION_NOTIFY_COMPLETED, wrk_completed, w,
	    MHD_OPTION_NOTIFY_CONNECTION, wrk_conn_notify, w,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)w->cfg->max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)w->cfg->connection_timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
	    MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_UNESCAPE_CALLBACK,
	    wrk_unescape, w, MHD_OPTION_END);
	if (w->mhd == NULL) {
		log_errx("libmicrohttpd: cannot start on the listening socket");
		return WP_ESYS;
	}
	return 0;
}

/*
 * Stop accepting and close idle keep-alive connections, so clients move
 * to the new workers; requests in progress finish.
 */
void
wrk_http_drain(struct wrk *w)
{
	MHD_socket fd;

	if (w->mhd == NULL)
		return;
	fd = MHD_quiesce_daemon(w->mhd);
	if (fd != MHD_INVALID_SOCKET)
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
	if (w->mhd == NULL)
		return;
	/* MHD must not stop with a connection suspended: wake them all. */
	wrk_chat_abort_all(w);
	wrk_admin_abort_all(w);
	(void)MHD_run(w->mhd);
	MHD_stop_daemon(w->mhd);
	w->mhd = NULL;
}

unsigned
wrk_http_connections(const struct wrk *w)
{
	const union MHD_DaemonInfo *di;

	if (w->mhd == NULL)
		return 0;
	di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di != NULL ? di->num_connections : 0;
}
