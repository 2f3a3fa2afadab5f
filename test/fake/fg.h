/*
 * fakegrok, the fake grok.com upstream for webproxyd's tests: what its
 * files share. Not part of the daemon; only test/fake/ includes this.
 *
 * Threads: MHD's polling threads run every callback; fg_timer.c runs one
 * thread that resumes suspended connections. The stores in fg_store.c
 * (tokens, uploads, records) each have their own mutex; the counters in
 * fg_stats are atomics.
 */
#ifndef FG_H
#define FG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "buf.h"

/* Biggest request body we take (an upload carries a base64 image). */
#define FG_BODY_MAX ((size_t)64 << 20)
/* Recorded bodies bigger than this are stored with long strings cut. */
#define FG_REC_BODY_MAX ((size_t)64 << 10)

/* ---- fg_util.c: buffers, JSON text, ids, base64 ---- */

/*
 * Buffers are shared/buf.h's (a hard cap fixed at init); these add JSON
 * text to one.
 */
/* Append s[0..n) as a quoted JSON string (UTF-8 kept raw). */
int fg_buf_add_jstr(struct buf *b, const char *s, size_t n);
/* The same without the quotes, to build one string from pieces. */
int fg_buf_add_jesc(struct buf *b, const char *s, size_t n);

/* A random version-4 UUID, lower case with dashes. Thread-safe. */
void fg_uuid(char out[37]);
/* A UUID-shaped id derived from seed: the same seed gives the same id. */
void fg_uuid_from(const char *seed, char out[37]);
/* Wall-clock time as "2025-12-25T10:00:00.123456Z". */
void fg_iso_time(char out[40]);
uint64_t fg_hash(const char *s, size_t n, uint64_t seed);
uint64_t fg_mono_ns(void);

/*
 * Standard base64 with padding. fg_b64_decode writes at most n / 4 * 3
 * bytes to out; returns 0 or WP_EINVAL for anything not canonical.
 */
int fg_b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

/* ---- fg_timer.c: suspended connections and when to resume them ---- */

enum fg_wait_mode {
	FG_WAIT_DUE,  /* resume at due_ns */
	FG_WAIT_HOLD, /* resume only when the client leaves or on shutdown */
};

/*
 * One suspended connection. The owner (a stream or a request) embeds it,
 * suspends wait.conn itself and then calls fg_timer_add(). After the
 * resume, aborted says whether the client went away (or we are quitting).
 */
struct fg_wait {
	struct MHD_Connection *conn;
	int fd; /* the client socket, peeked for EOF while suspended */
	enum fg_wait_mode mode;
	uint64_t due_ns;
	/*
	 * Resume on a grid of this step (0: exactly at due_ns). MHD 0.9.75
	 * walks every suspended connection each time it resumes any, so
	 * 10,000 streams need resumes batched, not spread over the second.
	 */
	uint64_t slack_ns;
	uint64_t key_ns; /* heap order: min(due, next liveness check) */
	size_t heap_idx;
	atomic_bool aborted;
};

int fg_timer_start(void);
/* w->conn was just suspended by the caller (an MHD thread). */
void fg_timer_add(struct fg_wait *w);
/* The grid step for a wait of about this long: 1/64 of it, at most 20 ms. */
uint64_t fg_timer_slack(uint64_t wait_ns);
/* Resume every waiting connection with aborted set, now and from now on. */
void fg_timer_quit(void);
/* Join the thread; call after MHD_stop_daemon. */
void fg_timer_stop(void);
/*
 * -P (a thread per connection): instead of suspending, sleep in the
 * calling thread until w->due_ns (FG_WAIT_DUE) or for good (FG_WAIT_HOLD),
 * watching w->fd for the client leaving and fg_timer_quit. Returns 0 when
 * due, WP_EINVAL (w->aborted set) when the client left or we are quitting.
 */
int fg_timer_sleep(struct fg_wait *w);
size_t fg_timer_count(void);

/* ---- fg_store.c: configuration, counters, tokens, uploads, records ---- */

enum fg_route {
	FG_R_CHAT,
	FG_R_RATE,
	FG_R_UPLOAD,
	FG_R_POST,
	FG_R_ASSET,
	FG_R_REST_OTHER,
	FG_R_FAKE,
	FG_R__N,
};

extern const char *const fg_route_name[];

/* Settings from the command line; written once before MHD starts. */
struct fg_conf {
	int64_t quota;       /* remainingTokens a token starts with */
	int64_t heavy_quota; /* remainingQueries for grok-4-heavy */
	int64_t window_s;    /* windowSizeSeconds; counters reset after it */
	int64_t fault_wait_s;
	size_t nrecords;
	const char **models; /* extra known modelName values (--model) */
	size_t nmodels;
	bool sleep_lines; /* -P: a timed line sleeps in its own thread */
};

extern struct fg_conf fg_conf;

struct fg_stats {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t by_route[FG_R__N];
	atomic_uint_fast64_t by_status[600];
	atomic_uint_fast64_t conns_open;
	atomic_uint_fast64_t conns_total;
	atomic_uint_fast64_t streams_open;
	atomic_uint_fast64_t streams_total;
	atomic_uint_fast64_t streams_done;    /* ended normally */
	atomic_uint_fast64_t streams_aborted; /* client left or we cut */
	atomic_uint_fast64_t suspended;
	atomic_uint_fast64_t lines;
	atomic_uint_fast64_t bytes;
};

extern struct fg_stats fg_stats;

void fg_stats_reset(void);
json_t *fg_stats_json(void);

/* What /rest/rate-limits reports for one token and model kind. */
struct fg_quota {
	int64_t remaining;
	int64_t total;
	int64_t wait_s; /* seconds until the window resets; 0 if not used */
};

int fg_store_init(void);
void fg_store_fini(void);

/*
 * Fault counting for "fault-NAMExK-..." tokens: returns true if the fault
 * still applies (fewer than times hits so far; times 0 = always) and, with
 * take, counts this hit.
 */
bool fg_tok_fault(const char *tok, int64_t times, bool take);
/*
 * Charge one chat: cost from remainingTokens, or 1 from the heavy count.
 * Returns 0, or WP_EBUSY (nothing charged) when the quota is too low; q
 * gets the state after the call either way.
 */
int fg_tok_charge(
    const char *tok, bool heavy, int64_t cost, struct fg_quota *q);
void fg_tok_quota(const char *tok, bool heavy, struct fg_quota *q);
void fg_tok_count(const char *tok, enum fg_route r);
json_t *fg_tok_json(void);
/* Set a token's counters from {"token","remaining","heavy","wait"}. */
int fg_tok_set(const json_t *o);
void fg_tok_clear(void);

/* Keep an upload's bytes (takes *data) so GET <uri> can return them. */
int fg_upl_put(const char *uri, const char *mime, const char *name,
    unsigned char **data, size_t len);
/* Whether an upload with this URI is kept. */
bool fg_upl_has(const char *uri);
/* [{"fileUri","fileName","fileMimeType","size"}], oldest first. */
json_t *fg_upl_json(void);
/* A malloc'd copy of an upload, or WP_ENOENT. */
int fg_upl_get(const char *uri, unsigned char **data, size_t *len, char *mime,
    size_t mimelen);
void fg_upl_clear(void);

/* Append one request record (takes *json; token may be NULL). */
void fg_rec_add(const char *token, const char *path, char **json);
/* A JSON array of the records after seq since, filtered; malloc'd. */
char *fg_rec_dump(
    uint64_t since, const char *token, const char *path, size_t *len);
size_t fg_rec_clear(void);

/* ---- fakegrok.c and fg_chat.c: requests ---- */

/* Faults a token ("fault-NAME[xK][-...]") or a prompt ("[fault=NAME]") asks
 * for. */
enum fg_fault {
	FG_F_NONE,
	FG_F_401,
	FG_F_403BOT,
	FG_F_403CF,
	FG_F_429,
	FG_F_500,
	FG_F_DRIP,
	FG_F_STALL,
	FG_F_STALLFIRST,
	FG_F_CUT,
	FG_F_MALFORMED,
	FG_F_INBAND,
	FG_F_INBANDFIRST,
	FG_F_RESPERROR,
	FG_F_MODELERROR,
	FG_F_EMPTY,
	FG_F_DATAPFX,
	FG_F_RUNON,
	FG_F__N,
};

extern const char *const fg_fault_name[];

struct fg_fault_spec {
	enum fg_fault fault;
	int64_t times; /* fail only the first times requests; 0 = always */
};

/* Read the fault a token asks for; FG_F_NONE for an ordinary token. */
void fg_fault_parse(const char *tok, struct fg_fault_spec *fs);
/* The fault called name[0..n) ("401", "stall", ...), or FG_F_NONE. */
enum fg_fault fg_fault_lookup(const char *name, size_t n);

enum fg_req_state {
	FG_RQ_BODY,    /* reading the body */
	FG_RQ_WAITING, /* suspended before the response (delay, stall) */
	FG_RQ_DONE,    /* a response was queued */
};

/* One request, MHD's con_cls; freed when MHD says the request is done. */
struct fg_req {
	unsigned magic;
	enum fg_route route;
	enum fg_req_state state;
	struct buf body;
	bool too_big;
	json_t *json; /* the parsed body, if it parsed */
	char *token;  /* the sso cookie's value, or NULL */
	struct fg_wait wait;
	struct MHD_Response *pending; /* to queue after a first-byte delay */
	unsigned pending_status;
};

#define FG_REQ_MAGIC 0x46475251u

/* An answer ready to queue, built by a route handler. */
struct fg_reply {
	unsigned status; /* 0: nothing to queue (the request is waiting) */
	struct MHD_Response *resp;
	char note[64]; /* scenario or fault, for the record */
};

/* Queue-ready JSON or text replies (the body is copied). */
void fg_reply_text(struct fg_reply *r, unsigned status, const char *ctype,
    const char *body, size_t len);
void fg_reply_json(struct fg_reply *r, unsigned status, json_t *o);
/* {"error":{"code":code,"message":msg,"details":[]}} */
void fg_reply_error(
    struct fg_reply *r, unsigned status, int code, const char *msg);

/* The status replies of faults 401, 403bot, 403cf, 429 and 500. */
void fg_reply_fault(struct fg_reply *r, enum fg_fault f);

/* The client socket of c, or -1. */
int fg_conn_fd(struct MHD_Connection *c);
/*
 * Suspend c from its access handler until due (FG_WAIT_DUE) or until the
 * client leaves (FG_WAIT_HOLD); MHD then calls the handler again. A
 * response in rq->pending is queued after the wait.
 */
void fg_req_wait(struct MHD_Connection *c, struct fg_req *rq,
    enum fg_wait_mode m, uint64_t due_ns);

bool fg_model_known(const char *name);

/* fg_media.c: the file routes, after the common checks. */
void fg_upload_handle(const char *token, const json_t *o, struct fg_reply *r);
void fg_post_handle(const char *token, const json_t *o, struct fg_reply *r);
void fg_asset_handle(const char *token, const char *method, const char *path,
    struct fg_reply *r);
/* Where an upload of token's account with this fileMetadataId is kept. */
void fg_upload_uri(const char *token, const char *id, char *out, size_t len);
/* The id of the image post of an uploaded file (the same every time). */
void fg_post_id(const char *uri, char out[37]);

/* fg_proxy.c: /__fake/proxy[/state], a proxy-pool API for tests. */
void fg_proxy_handle(const char *path, const char *method, const json_t *body,
    struct fg_reply *r);
void fg_proxy_clear(void);

/* POST /rest/app-chat/conversations/new, after the common checks. */
void fg_chat_handle(
    struct MHD_Connection *c, struct fg_req *rq, struct fg_reply *r);

#endif
