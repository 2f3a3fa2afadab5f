/*
 * What knows grok.com's web protocol (and nothing of OpenAI's): the chat
 * payload, the request headers and x-statsig-id, the flattening of a chat
 * history into grok's single message, the incremental NDJSON stream
 * translator, and the parsers of rate-limit and error answers. Pure code
 * over jansson and libcurl's header list; no I/O. Worker only.
 */
#ifndef WP_GROK_H
#define WP_GROK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "cfg.h"

/* ---- requests ---------------------------------------------------------- */

/*
 * Flatten OpenAI `messages` into the one upstream message, with role
 * labels (system, developer, user, assistant, tool), stripping echoed
 * <think>...</think> blocks from assistant turns. content may be a string,
 * an array of parts, or null. Image parts (image_url as http(s), data:
 * URI, or bare base64) are not put in the text: their URLs are appended
 * to *images (caller frees each and the array) in order.
 * Returns 0, or WP_EINVAL with a message in err and the offending
 * parameter ("messages[2].content") in param, or WP_ETOOBIG / WP_ENOMEM.
 */
int grok_flatten(const json_t *messages, struct buf *out, char ***images,
    size_t *nimages, char *err, size_t errlen, char *param, size_t paramlen);

/* Options of one chat request that reach the payload. */
struct grok_req_opts {
	const struct cfg_model *model;
	const char *message;         /* flattened */
	const char *const *file_ids; /* uploaded attachments */
	size_t nfiles;
	bool temporary;
	bool video; /* videoGen tool override (media issue) */
	/*
	 * Video only: the image reference put in front of the prompt
	 * (https://grok.com/imagine/<post id>, or the asset URL of the
	 * upload when no post was made). NULL or "" for none.
	 */
	const char *video_ref;
	unsigned image_count; /* imageGenerationCount; 0 = the default, 2 */
};

/*
 * The conversations/new JSON body (malloc'ed), or NULL with errno set
 * (ENOMEM; EILSEQ when message is not UTF-8). With o->video the video
 * payload of the reference (section 3.2): temporary, the first file only,
 * message "<video_ref>  <message> --mode=custom", toolOverrides.videoGen.
 */
char *grok_payload(const struct grok_req_opts *o);

/*
 * A dynamic x-statsig-id as the reference describes, with prefix put in
 * front of the generated error text (empty prefix: the reference's "e:"
 * shape minus the prefix). Writes a NUL-terminated value into out.
 */
void grok_statsig_generate(const char *prefix, char *out, size_t len);

/* A fresh x-xai-request-id (UUID v4). out must hold 37 bytes. */
void grok_request_id(char *out);

/*
 * The header list for one grok.com call: the browser-like headers of the
 * reference, Cookie: sso-rw=<token>; sso=<token>[; cf_clearance=...],
 * x-statsig-id, x-xai-request-id, User-Agent, Content-Type. NULL on
 * ENOMEM. One allocation (no node of it may be freed alone or appended
 * to): the caller frees it with grok_headers_free.
 */
struct curl_slist *grok_headers(const struct cfg *c, const char *token,
    const char *statsig, const char *request_id);
void grok_headers_free(struct curl_slist *l);
/*
 * The same, with another Referer (the video flow's
 * <upstream>/imagine/<post id>; NULL = "<upstream>/") and another
 * Content-Type (NULL = application/json). Every value, from config or
 * not, has its control bytes dropped (no header injection) and cookie
 * values their separators; a leading "sso=" / "cf_clearance=" is removed.
 * Accept-Encoding is left to CURLOPT_ACCEPT_ENCODING (a hand-made one
 * would hand compressed bytes to the NDJSON reader); "Expect:" is sent
 * empty so libcurl never adds 100-continue, which no browser sends.
 */
struct curl_slist *grok_headers_ext(const struct cfg *c, const char *token,
    const char *statsig, const char *request_id, const char *referer,
    const char *content_type);

/* ---- the answer stream ------------------------------------------------- */

enum grok_ev_kind {
	GROK_EV_TOKEN,          /* text; thinking; header (messageTag header) */
	GROK_EV_SEARCH,         /* one web-search hit: title, url, preview */
	GROK_EV_IMAGE_PROGRESS, /* index, progress */
	GROK_EV_IMAGES,         /* generated image paths: urls, nurls */
	GROK_EV_VIDEO_PROGRESS, /* progress */
	GROK_EV_VIDEO,          /* url (video path), title = thumbnail path */
	GROK_EV_FINAL, /* modelResponse: text = message, title = model */
	GROK_EV_ERROR, /* in-band error: text = message, code */
};

extern const char *const grok_ev_name[];

/*
 * One event; every pointer is valid only during the callback. Strings are
 * never NULL ("" when upstream left them out); urls is NULL when nurls is
 * 0. IMAGE_PROGRESS has url = imageUrl when the upstream gave one.
 */
struct grok_ev {
	enum grok_ev_kind kind;
	const char *text; /* NUL-terminated; len excludes the NUL */
	size_t len;
	bool thinking;
	bool header;
	const char *title, *url, *preview;
	const char *const *urls;
	size_t nurls;
	int index, progress, code;
};

/* Return non-zero to stop the feed (it returns that value). */
typedef int grok_ev_fn(void *arg, const struct grok_ev *ev);

#define GROK_ND_TMPL_MAX 256 /* a longer token line: no template */

/*
 * The incremental NDJSON reader: takes the body in arbitrary pieces,
 * finds each JSON object (newline separated, `data: ` prefixed, or run
 * together with no separator at all), and turns it into events. Lines
 * that are not JSON are counted in `malformed` and skipped. Holds at most
 * max_line bytes of one unfinished object.
 */
struct grok_nd {
	struct buf pend;    /* bytes of the object not yet complete */
	unsigned malformed; /* skipped pieces */
	unsigned objects;   /* objects parsed */
	bool seen_response; /* a result.response arrived */
	bool tree_only;     /* tests: no shallow scan, jansson for all */
	/* Scanner state across calls (for objects run together). */
	int depth;
	bool in_str, esc;
	size_t scan;   /* bytes of the current object so far */
	int state;     /* where the scanner is (grok_nd.c) */
	unsigned nfld; /* bytes of an SSE field name ("data") seen */
	char fld[8];   /* that field name */
	/*
	 * The last token line the shallow scan read, less its token's body:
	 * tmpl_head bytes before the body, then tmpl_tail from its closing
	 * quote to the end of the line's object. A line that matches both
	 * is that line with another token (grok_nd.c).
	 */
	unsigned char tmpl[GROK_ND_TMPL_MAX];
	uint16_t tmpl_head, tmpl_tail; /* bytes; 0 and 0: none yet */
	bool tmpl_thinking, tmpl_header;
};

void grok_nd_init(struct grok_nd *p, size_t max_line);
void grok_nd_fini(struct grok_nd *p);
/*
 * Returns 0, fn's non-zero value (the rest of data is then dropped),
 * WP_ETOOBIG (an object over max; the rest of data and of that line are
 * skipped) or WP_ENOMEM. A newline always ends an object: one cut short
 * cannot swallow the next line (pretty-printed JSON is not supported; no
 * upstream version sends it).
 */
int grok_nd_feed(
    struct grok_nd *p, const char *data, size_t len, grok_ev_fn *fn, void *arg);
/*
 * End of body. An object is parsed the moment its braces balance, so a
 * last one with no newline after it was handled already; one the body
 * cut short is counted in malformed. Returns 0.
 */
int grok_nd_end(struct grok_nd *p, grok_ev_fn *fn, void *arg);

/* ---- other answers ----------------------------------------------------- */

/*
 * /rest/rate-limits answer (either shape of the reference §1.2): remaining
 * for the plain (remainingTokens, else remainingQueries) or heavy
 * (remainingQueries) quota; *wait_s the waitTimeSeconds when given, else
 * 0. Returns 0 or WP_EPARSE.
 */
int grok_ratelimits_parse(const char *body, size_t len, bool heavy,
    int32_t *remaining, int64_t *wait_s);
/* The rate-limits request body for a rate-limit model name (malloc'ed). */
char *grok_ratelimits_body(const char *rate_limit_model);

/*
 * A person-readable account of a failed upstream answer (status and
 * body): the JSON error message, "Cloudflare challenge page" for HTML,
 * or the first bytes of the body. *anti_bot is set for the anti-bot
 * answers (403 with code 7 or a challenge page).
 */
void grok_error_describe(long status, const char *body, size_t len, char *out,
    size_t outlen, bool *anti_bot);

#endif
