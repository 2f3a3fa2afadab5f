/*
 * The admin panel at /projects/grok and its JSON API under /api/: the
 * gate every API request passes (a configured password, a session, a
 * JSON content type for writes), the routing table, and what the admin
 * modules share: answers, request bodies, and requests that wait.
 *
 * Sessions and login live in adm_sess.c, the token pool in adm_tok.c,
 * statistics, cache and settings in adm_stats.c, the panel's files in
 * adm_www.c. Runs on the worker's one thread; takes no lock itself (the
 * modules take the admin and token locks for copies only).
 *
 * A request that must wait (a token test upstream, a cache clear) is an
 * adm_job: its connection is suspended, the job is listed in
 * w->adm_jobs, and the answer is queued when MHD calls the access
 * handler again after the resume (rq->on_resume). rq->on_free ends it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <microhttpd.h>

#include "adm.h"
#include "err.h"
#include "log.h"
#include "oai.h"
#include "util.h"

#define ADM_TOK_PREFIX "/api/projects/grok/tokens"

/* ---- answers ---------------------------------------------------------- */

/* Bodies may hold tokens (export) or ids: wipe them when MHD is done. */
static void
adm_wipe_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, strlen(p));
	free(p);
}

int
adm_reply(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    const char *ctype, char *body, const struct adm_hdr *hdrs, size_t nhdrs)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	size_t i;

	if (body == NULL)
		return MHD_NO; /* out of memory: drop the connection */
	resp = MHD_create_response_from_buffer_with_free_callback(
	    strlen(body), body, adm_wipe_free);
	if (resp == NULL) {
		adm_wipe_free(body);
		return MHD_NO;
	}
	(void)MHD_add_response_header(resp, "Content-Type", ctype);
	(void)MHD_add_response_header(resp, "Cache-Control", "no-store");
	(void)MHD_add_response_header(
	    resp, "X-Content-Type-Options", "nosniff");
	for (i = 0; i < nhdrs; i++)
		(void)MHD_add_response_header(
		    resp, hdrs[i].name, hdrs[i].value);
	if (rq->w->draining)
		(void)MHD_add_response_header(resp, "Connection", "close");
	rq->status = status;
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

int
adm_json(
    struct wrk_req *rq, struct MHD_Connection *conn, unsigned status, json_t *j)
{
	char *s;

	if (j == NULL)
		return adm_error(rq, conn, 500, NULL, "internal_error",
		    "out of memory while building the answer");
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return adm_reply(rq, conn, status, "application/json", s, NULL, 0);
}

int
adm_error(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    const char *param, const char *code, const char *fmt, ...)
{
	char msg[768], *body;
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	body = oai_error(msg, oai_error_type(status), param, code);
	if (body == NULL) {
		/*
		 * Not UTF-8 (a quoted URL, a name cut mid-character): JSON
		 * cannot carry it, so the answer says '?' rather than nothing.
		 */
		for (i = 0; msg[i] != '\0'; i++)
			if ((unsigned char)msg[i] >= 0x80)
				msg[i] = '?';
		body = oai_error(msg, oai_error_type(status), param, code);
	}
	return adm_reply(rq, conn, status, "application/json", body, NULL, 0);
}

json_t *
adm_body(struct wrk_req *rq, struct MHD_Connection *conn, int *mhd_rc)
{
	json_error_t jerr;
	json_t *j;

	if (rq->body == NULL || rq->len == 0) {
		*mhd_rc = adm_error(rq, conn, 400, "body", "invalid_json",
		    "The request body is empty; expected a JSON object");
		return NULL;
	}
	j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		*mhd_rc = adm_error(rq, conn, 400, "body", "invalid_json",
		    "The request body is not valid JSON (line %d, column %d): "
		    "%s",
		    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*mhd_rc = adm_error(rq, conn, 400, "body", "invalid_json",
		    "The request body must be a JSON object");
		return NULL;
	}
	return j;
}

/* ---- requests that wait ------------------------------------------------ */

static int
adm_job_resumed(struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct adm_job *j = rq->ext;
	json_t *answer;

	CHECK_OBJ(j, ADM_JOB_MAGIC);
	if (!j->finished) {
		MHD_suspend_connection(conn); /* woken early: keep waiting */
		return MHD_YES;
	}
	answer = j->answer;
	j->answer = NULL;
	rq->on_resume = NULL; /* answered: MHD will not ask again */
	return adm_json(rq, conn, j->status, answer);
}

static void
adm_job_freed(struct wrk_req *rq)
{
	struct adm_job *j = rq->ext;
	struct wrk *w;

	if (j == NULL)
		return;
	CHECK_OBJ(j, ADM_JOB_MAGIC);
	w = j->w;
	if (!j->finished && j->cancel != NULL)
		j->cancel(j);
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		w->adm_jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	json_decref(j->answer);
	j->magic = 0;
	free(j);
	rq->ext = NULL;
}

int
adm_job_start(struct wrk_req *rq, struct MHD_Connection *conn, void *arg,
    void (*cancel)(struct adm_job *j), struct adm_job **jp)
{
	struct adm_job *j;

	*jp = NULL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return adm_error(
		    rq, conn, 500, NULL, "internal_error", "out of memory");
	j->magic = ADM_JOB_MAGIC;
	j->w = rq->w;
	j->rq = rq;
	j->conn = conn;
	j->arg = arg;
	j->cancel = cancel;
	j->next = rq->w->adm_jobs;
	if (j->next != NULL)
		j->next->prev = j;
	rq->w->adm_jobs = j;
	rq->ext = j;
	rq->on_resume = adm_job_resumed;
	rq->on_free = adm_job_freed;
	MHD_suspend_connection(conn);
	*jp = j;
	return MHD_YES;
}

void
adm_job_finish(struct adm_job *j, unsigned status, json_t *answer)
{
	CHECK_OBJ(j, ADM_JOB_MAGIC);
	if (j->finished) {
		json_decref(answer);
		return;
	}
	j->finished = true;
	j->status = status;
	j->answer = answer;
	j->arg = NULL; /* the kind freed its state before calling */
	wrk_http_resume(j->w, j->conn); /* MHD_run it on this turn */
}

void
wrk_admin_abort_all(struct wrk *w)
{
	struct adm_job *j;

	for (j = w->adm_jobs; j != NULL; j = j->next) {
		if (j->finished)
			continue;
		if (j->cancel != NULL)
			j->cancel(j);
		adm_job_finish(j, 503,
		    json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message",
		        "The worker is stopping; try again", "type",
		        "server_error", "param", "code", "shutting_down"));
	}
}

/* ---- the gate and the routes ------------------------------------------ */

static bool
adm_is_json(struct MHD_Connection *conn)
{
	const char *ct = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = strlen("application/json");

	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int
adm_not_allowed(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *allow)
{
	const struct adm_hdr h = { "Allow", allow };

	return adm_reply(rq, conn, 405, "application/json",
	    oai_error("Method not allowed", "invalid_request_error", NULL,
	        "method_not_allowed"),
	    &h, 1);
}

/* One fixed route: path under /api, the method it takes, the handler. */
struct adm_route {
	const char *path;
	const char *method;
	int (*fn)(struct wrk_req *rq, struct MHD_Connection *conn);
};

static int
adm_cache_clear_image(struct wrk_req *rq, struct MHD_Connection *conn)
{
	return adm_cache_clear(rq, conn, 0);
}

static int
adm_cache_clear_video(struct wrk_req *rq, struct MHD_Connection *conn)
{
	return adm_cache_clear(rq, conn, 1);
}

static const struct adm_route adm_routes[] = {
	{ "/api/logout", "POST", adm_logout },
	{ "/api/session", "GET", adm_session },
	{ "/api/cache", "GET", adm_cache },
	{ "/api/cache/image", "DELETE", adm_cache_clear_image },
	{ "/api/cache/video", "DELETE", adm_cache_clear_video },
	{ "/api/stats", "GET", adm_stats },
	{ "/api/settings", "GET", adm_settings },
};

static int
adm_route(struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	const char *url = rq->url;
	size_t i, n = strlen(ADM_TOK_PREFIX);

	if (strncmp(url, ADM_TOK_PREFIX, n) == 0 &&
	    (url[n] == '\0' || url[n] == '/'))
		return adm_tok_route(rq, conn, method, url + n);
	for (i = 0; i < ARRAY_LEN(adm_routes); i++) {
		if (strcmp(url, adm_routes[i].path) != 0)
			continue;
		if (strcmp(method, adm_routes[i].method) != 0)
			return adm_not_allowed(rq, conn, adm_routes[i].method);
		return adm_routes[i].fn(rq, conn);
	}
	return adm_error(rq, conn, 404, NULL, "not_found",
	    "No admin route for %.200s %.200s", method, url);
}

int
wrk_admin_api(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	bool write = strcmp(method, "GET") != 0;

	if (rq->w->cfg->admin_password[0] == '\0')
		return adm_error(rq, conn, 403, NULL, "admin_disabled",
		    "The admin API is off: server.admin_password is empty. "
		    "Make a hash with 'webproxyd --hash-password', put it in "
		    "server.admin_password in config.yaml and reload");
	if (strcmp(rq->url, "/api/login") == 0) {
		if (strcmp(method, "POST") != 0)
			return adm_not_allowed(rq, conn, "POST");
		if (!adm_is_json(conn))
			return adm_error(rq, conn, 415, NULL,
			    "unsupported_media_type",
			    "Send the body as Content-Type: application/json");
		return adm_login(rq, conn);
	}
	if (!adm_sess_valid(rq->w, conn))
		return adm_error(rq, conn, 401, NULL, "login_required",
		    "Log in first: POST /api/login with the admin password "
		    "sets the " ADM_COOKIE " cookie");
	/*
	 * A cross-site form can post only form types; asking for JSON makes
	 * a browser preflight, which we never answer. SameSite=Strict on
	 * the cookie is the other half.
	 */
	if (write && !adm_is_json(conn))
		return adm_error(rq, conn, 415, NULL, "unsupported_media_type",
		    "Send Content-Type: application/json with every %s to "
		    "the admin API",
		    method);
	return adm_route(rq, conn, method);
}

int
wrk_admin_static(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	const char *url = rq->url, *base = "/projects/grok";
	size_t n = strlen(base);

	(void)method; /* GET or HEAD: MHD leaves the body out for HEAD */
	if (strncmp(url, base, n) != 0)
		return adm_error(
		    rq, conn, 404, NULL, "not_found", "No such file");
	url += n;
	if (*url == '/')
		url++;
	return adm_www_serve(rq, conn, url);
}
