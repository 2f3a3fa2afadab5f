/*
 * A worker process: one thread, one epoll loop holding the worker slot's
 * inherited listening socket, libmicrohttpd daemons in external-epoll
 * mode that serve the connections it accepts, libcurl multi handles in
 * socket mode for every upstream transfer, the signalfd and a one-second
 * tick. Every request is served on that thread; nothing blocks it, and
 * nothing on the hot path takes a lock.
 */
#ifndef WP_WRK_H
#define WP_WRK_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "cfg.h"
#include "shm.h"

#define WRK_MAGIC    0x57524b31u
#define WRK_UP_MAX   64  /* curl multi handles per worker */
#define WRK_UP_SPARE 32  /* idle curl easy handles kept for reuse */
#define WRK_MHD_MAX  256 /* libmicrohttpd daemons per worker */

struct MHD_Connection;
struct wrk_mhd;
struct wrk;
struct wrk_ev;
struct wrk_chat;
struct adm_job;

/* A file descriptor in the worker's epoll set, and what to do when ready. */
typedef void wrk_ev_fn(struct wrk *w, struct wrk_ev *ev, uint32_t events);

struct wrk_ev {
	wrk_ev_fn *fn;
	void *arg;
	int fd;
	bool added;
	struct wrk_ev *next_dead; /* freed after the current epoll batch */
};

int wrk_ev_add(struct wrk *w, struct wrk_ev *ev, uint32_t events);
int wrk_ev_mod(struct wrk *w, struct wrk_ev *ev, uint32_t events);
void wrk_ev_del(struct wrk *w, struct wrk_ev *ev);

/*
 * One upstream transfer on one of the worker's multi handles. done runs once
 * when it ends (rc from libcurl), unless the owner stopped it first.
 */
struct wrk_xfer;
typedef void wrk_xfer_done_fn(struct wrk *w, struct wrk_xfer *x, CURLcode rc);

struct wrk_up;

struct wrk_xfer {
	unsigned magic;
	CURL *easy;
	wrk_xfer_done_fn *done;
	void *arg;
	bool running;
	struct wrk_up *up; /* the multi handle it runs on (wrk_up.c) */
};

#define WRK_XFER_MAGIC 0x58464552u

struct wrk {
	unsigned magic;
	struct shm *shm;
	const struct cfg *cfg; /* inherited from the master: this generation */
	struct shm_proc *me;
	uint32_t pslot; /* me's index: this worker's lease journal */
	struct wrk_mhd *mhd[WRK_MHD_MAX]; /* MHD daemons (wrk_http.c) */
	unsigned nmhd;
	bool accept_paused; /* out of fds: listen again on the next tick */
	struct wrk_up *up[WRK_UP_MAX]; /* curl multi handles (wrk_up.c) */
	unsigned nup;
	CURL *spare[2][WRK_UP_SPARE]; /* easy handles done with, by size */
	unsigned nspare[2];
	int lfd; /* listening socket (the master keeps its own copy) */
	int epfd;
	int sigfd;
	struct wrk_ev ev_sig, ev_tick, ev_listen;
	struct wrk_ev *dead; /* events to free after this batch */
	bool draining;
	bool stop;
	int64_t drain_until_ms;
	struct wrk_conn *conns;   /* open client connections */
	struct wrk_chat *chats;   /* chat requests in progress */
	int64_t next_due_ms;      /* earliest retry wait, 0 = none */
	struct adm_job *adm_jobs; /* admin requests waiting (wrk_admin.c) */
};

/* A client connection, tracked to close idle ones when draining. */
struct wrk_conn {
	struct wrk_conn *next, *prev;
	int fd;
	struct wrk_mhd *m;     /* the MHD daemon that serves it */
	unsigned busy;         /* requests in progress on it */
	int64_t idle_since_ms; /* monotonic; meaningful while busy == 0 */
	bool shut;             /* we closed it while draining */
	/*
	 * MHD sees no hang-up while a request is suspended: its fd stays in
	 * our set (EPOLLRDHUP) from the first park to its close, and a
	 * hang-up calls on_hup once if a request is parked (wrk_conn_park).
	 */
	struct wrk_ev hup;
	void (*on_hup)(void *arg);
	void *hup_arg;
};

/* Entry from the master's fork. Returns the process exit status. */
int wrk_main(
    struct shm *shm, const struct cfg *cfg, int pslot, int lfd, int sigfd);

/*
 * wrk_http.c: the worker accepts on w->lfd and hands connections to
 * libmicrohttpd daemons (several under load: wrk_http.c says why).
 */
int wrk_http_start(struct wrk *w);
void wrk_http_drain(struct wrk *w);
/* While draining: close connections that stay idle (once a tick). */
void wrk_http_drain_idle(struct wrk *w);
void wrk_http_stop(struct wrk *w);
unsigned wrk_http_connections(const struct wrk *w);
/* timeout (ms), shortened to the earliest daemon that wants to run. */
int wrk_http_timeout_ms(const struct wrk *w, int64_t now, int timeout);
/* Run the daemons that have work (from the loop, never a callback). */
void wrk_http_run(struct wrk *w);
/* Once a second: run every daemon, whatever it was told. */
void wrk_http_tick(struct wrk *w);
/*
 * MHD_resume_connection, and run its daemon on this turn. Always use it:
 * in external-epoll mode MHD has no wake-up of its own for a resume (a
 * bare MHD_resume_connection waits for the once-a-second sweep).
 */
void wrk_http_resume(struct wrk *w, struct MHD_Connection *conn);
/*
 * A request of c waits suspended: on_hup(arg) if the client hangs up
 * before wrk_conn_unpark. Returns 0, or WP_ESYS (then nobody watches).
 */
int wrk_conn_park(
    struct wrk *w, struct wrk_conn *c, void (*on_hup)(void *), void *arg);
void wrk_conn_unpark(struct wrk_conn *c);

/* wrk_up.c: libcurl's multi handles in the worker's loop. */
int wrk_up_init(struct wrk *w);
void wrk_up_fini(struct wrk *w);
/* timeout (ms), shortened to curl's earliest deadline after now. */
int wrk_up_timeout_ms(const struct wrk *w, int64_t now, int timeout);
/* Run curl's timers that are due (from the loop, never a callback). */
void wrk_up_run_due(struct wrk *w);
/* Start x (its easy handle set up); returns 0 or WP_EINVAL. */
int wrk_up_start(struct wrk *w, struct wrk_xfer *x);
/* Stop x without calling done (the client went away). */
void wrk_up_stop(struct wrk *w, struct wrk_xfer *x);
/* Common options of every upstream call: timeouts, TLS like a browser. */
void wrk_up_defaults(const struct wrk *w, CURL *easy);
/*
 * An easy handle with only wrk_up_defaults set (a spare one when there
 * is), or NULL; big: a 16 KiB receive buffer instead of 4 KiB, for an
 * answer held whole anyway. Give it back stopped with wrk_up_easy_put
 * and the same big: curl 7.88 sizes a handle's buffer once, so a handle
 * never changes class. Saves curl_easy_init + curl_easy_cleanup a call
 * (~12,000 instructions).
 */
CURL *wrk_up_easy(struct wrk *w, bool big);
void wrk_up_easy_put(struct wrk *w, CURL *easy, bool big);
/* After curl_easy_reset of a handle of that class: the options above. */
void wrk_up_easy_defaults(const struct wrk *w, CURL *easy, bool big);

/* wrk_proxy.c: the proxy every worker uses, shared through shm. */
/* Copy the proxy URL to use now into buf ("" = none). */
void wrk_proxy_get(struct wrk *w, char *buf, size_t len);
/*
 * Whether the pool has not answered yet since start (a request should
 * wait a moment for it rather than leave from the server's address);
 * starts the first fetch.
 */
bool wrk_proxy_pending(struct wrk *w);
/* Refresh from the pool now (after a 403), or when it is due (tick). */
void wrk_proxy_refresh(struct wrk *w, bool force);

/* wrk_lease.c: tokens taken from the pool, journaled for the master. */
int wrk_lease_pick(struct wrk *w, enum cfg_pool pool, uint32_t exclude,
    struct tok_lease *l, int64_t *retry_at_ms);
void wrk_lease_release(struct wrk *w, struct tok_lease *l);

/* wrk_statsig.c: x-statsig-id values, from a signer when configured. */
struct wrk_sig_fetch;
typedef void wrk_statsig_fn(struct wrk *w, void *arg);
/*
 * The value for method and path into out. Returns 0, or 1 when a signer
 * is configured but has no fresh value (out then holds the fallback, and
 * wrk_statsig_fetch can ask it).
 */
int wrk_statsig(
    struct wrk *w, const char *method, const char *path, char *out, size_t len);
int wrk_statsig_fetch(struct wrk *w, const char *method, const char *path,
    wrk_statsig_fn *fn, void *arg, struct wrk_sig_fetch **fp);
void wrk_statsig_cancel(struct wrk *w, struct wrk_sig_fetch *f);
/* After a 403 or an anti-bot answer: ask the signer again next time. */
void wrk_statsig_forget(struct wrk *w, const char *method, const char *path);

/* wrk_chat.c: POST /v1/chat/completions. */
struct wrk_req;
/* Validate body and start; queues an error itself when it cannot start. */
int wrk_chat_start(struct wrk *w, struct wrk_req *rq,
    struct MHD_Connection *conn, const char *body, size_t len);
/* POST /v1/images/generations: an image chat, answered the images way. */
int wrk_chat_images(
    struct wrk *w, struct wrk_req *rq, struct MHD_Connection *conn);
/* MHD called the access handler again after a resume: answer now. */
int wrk_chat_resumed(struct wrk_chat *c, struct MHD_Connection *conn);
/* The request ended (MHD's completion): stop everything, free c. */
void wrk_chat_free(struct wrk *w, struct wrk_chat *c);
/* Once a second: timeouts and pings. */
void wrk_chat_tick(struct wrk *w);
/* Retries whose wait is over. */
void wrk_chat_run_due(struct wrk *w);
/* Stopping: end every chat so MHD may stop (no connection suspended). */
void wrk_chat_abort_all(struct wrk *w);

/* wrk_admin.c: the panel at /projects/grok and its JSON API at /api/. */
int wrk_admin_static(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method);
int wrk_admin_api(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method);
/* Stopping: answer every admin request still waiting (nothing suspended). */
void wrk_admin_abort_all(struct wrk *w);
/* GET /metrics (adm_stats.c): Prometheus text. */
int wrk_admin_metrics(struct wrk_req *rq, struct MHD_Connection *conn);
/*
 * The statistics slot of the "model" named in a request body (a cheap
 * scan, no parse): 1 + its index in shm's model table, or 0 for none.
 */
uint32_t wrk_admin_model_slot(struct wrk *w, const char *body, size_t len);
/* A request ended with status: count it by status and by model slot. */
void wrk_admin_count(struct wrk *w, uint32_t model_slot, unsigned status);

/* wrk_media.c: /images/{image,video}/<file>, /v1/images/generations. */
int wrk_media_serve(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method);
int wrk_media_generate(struct wrk_req *rq, struct MHD_Connection *conn);

/* wrk_http.c helpers shared with the routes' files. */
struct wrk_req {
	unsigned magic;
	struct wrk *w;
	struct wrk_conn *conn;
	int route;
	const char *url;
	char *body;
	size_t len, cap;
	size_t announced; /* Content-Length, 0 = none */
	unsigned status;
	struct wrk_chat *chat; /* a chat in progress, owned here */
	/*
	 * Other routes that suspend the connection (admin, media) park
	 * their state here: on_resume answers when MHD calls again after
	 * MHD_resume_connection; on_free runs at completion.
	 */
	void *ext;
	int (*on_resume)(struct wrk_req *rq, struct MHD_Connection *conn);
	void (*on_free)(struct wrk_req *rq);
	uint32_t model_slot; /* wrk_admin_model_slot() of the body, 0 = none */
};
#define WRK_REQ_MAGIC 0x52455131u

/* Queue a JSON body (taken, freed here) with status. */
int wrk_send_json(struct wrk_req *rq, struct MHD_Connection *conn,
    unsigned status, char *body, const char *retry_after);
/* The OpenAI error envelope with status. */
int wrk_send_error(struct wrk_req *rq, struct MHD_Connection *conn,
    unsigned status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The CORS headers of the /v1 routes on a response. */
struct MHD_Response;
void wrk_cors(const struct wrk *w, struct MHD_Connection *conn,
    struct MHD_Response *resp);

#endif
