/*
 * What the admin modules share (wrk_admin.c routes; adm_sess.c sessions
 * and login; adm_tok.c the token pool; adm_stats.c statistics, cache and
 * settings; adm_www.c the panel's files). Worker only; one thread. None
 * of it is used outside these files: wrk.h has the entry points.
 */
#ifndef WP_ADM_H
#define WP_ADM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "wrk.h"

struct MHD_Connection;

#define ADM_COOKIE       "webproxyd_session"
#define ADM_SESS_TTL_MS  (12 * 3600 * 1000LL) /* a session lives 12 h */
#define ADM_LOGIN_FAILS  5                    /* wrong passwords ... */
#define ADM_LOGIN_WIN_MS (15 * 60 * 1000LL)   /* ... in this window ... */
#define ADM_LOGIN_BLK_MS (15 * 60 * 1000LL)   /* ... block for this long */

/* One extra response header. */
struct adm_hdr {
	const char *name, *value;
};

/* ---- wrk_admin.c: answers ---- */

/*
 * Queue body (a string, taken: wiped and freed once sent; NULL = out of
 * memory) with status, content type and extra headers, plus what every
 * admin answer carries (no caching, no sniffing). Returns an MHD_Result.
 */
int adm_reply(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    const char *ctype, char *body, const struct adm_hdr *hdrs, size_t nhdrs);
/* The same for a JSON value (taken); NULL answers 500. */
int adm_json(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    json_t *j);
/* The error envelope of the rest of the API: {"error":{...}}. */
int adm_error(struct wrk_req *rq, struct MHD_Connection *conn, unsigned status,
    const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* 405 with Allow: allow. */
int adm_not_allowed(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *allow);
/*
 * The request body as a JSON object (caller decrefs), or NULL after
 * queueing a 400 that says where it broke (param "body").
 */
json_t *adm_body(struct wrk_req *rq, struct MHD_Connection *conn, int *mhd_rc);

/*
 * A request that waits (a token test upstream, a cache clear): the
 * connection is suspended until adm_job_finish() hands it an answer.
 * kind-specific state hangs off arg; cancel (may be NULL) stops what it
 * started when the request ends early or the worker stops.
 */
struct adm_job {
	unsigned magic;
	struct wrk *w;
	struct wrk_req *rq;
	struct MHD_Connection *conn;
	struct adm_job *next, *prev; /* w->adm_jobs */
	bool finished;
	unsigned status;
	json_t *answer;
	void *arg;
	void (*cancel)(struct adm_job *j);
};
#define ADM_JOB_MAGIC 0x41444d4au

/* Park the request (returns MHD_YES) or answer 500 (out of memory). */
int adm_job_start(struct wrk_req *rq, struct MHD_Connection *conn, void *arg,
    void (*cancel)(struct adm_job *j), struct adm_job **jp);
/* The answer (taken) is ready: wake the connection to send it. */
void adm_job_finish(struct adm_job *j, unsigned status, json_t *answer);

/* ---- adm_sess.c: sessions and login ---- */

/* Whether the request carries a live session cookie. */
bool adm_sess_valid(struct wrk *w, struct MHD_Connection *conn);
/* POST /api/login, POST /api/logout, GET /api/session. */
int adm_login(struct wrk_req *rq, struct MHD_Connection *conn);
int adm_logout(struct wrk_req *rq, struct MHD_Connection *conn);
int adm_session(struct wrk_req *rq, struct MHD_Connection *conn);
/*
 * The client's address as 16 bytes (IPv4 mapped): the peer, or the last
 * X-Forwarded-For hop when the peer is one of server.trusted_proxies.
 * Returns 0 or WP_EINVAL.
 */
int adm_client_addr(
    const struct wrk *w, struct MHD_Connection *conn, uint8_t addr[16]);
/* Whether the client reached us over HTTPS (X-Forwarded-Proto, trusted). */
bool adm_client_https(const struct wrk *w, struct MHD_Connection *conn);

/* ---- adm_tok.c: /api/projects/grok/tokens... ---- */

/* rest: the path after /api/projects/grok/tokens ("" or "/..."). */
int adm_tok_route(struct wrk_req *rq, struct MHD_Connection *conn,
    const char *method, const char *rest);

/* ---- adm_stats.c: /api/stats, /api/cache..., /api/settings ---- */

/*
 * The top-level "model" string of the JSON object in s (n bytes, need not
 * be terminated), found by a scan that skips everything else: a chat body
 * may carry megabytes of base64, and a counter is not worth a full parse.
 * Names with escapes, or of outlen bytes or more, are not taken. Pure.
 * Returns 0 with out filled, or WP_EINVAL.
 */
int adm_peek_model(const char *s, size_t n, char *out, size_t outlen);
int adm_stats(struct wrk_req *rq, struct MHD_Connection *conn);
int adm_cache(struct wrk_req *rq, struct MHD_Connection *conn);
/* kind: 0 image, 1 video. */
int adm_cache_clear(
    struct wrk_req *rq, struct MHD_Connection *conn, unsigned kind);
int adm_settings(struct wrk_req *rq, struct MHD_Connection *conn);

/* ---- adm_www.c: the panel's files ---- */

/* name: "" for index.html, else the file name after /projects/grok/. */
int adm_www_serve(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *name);

#endif
