/*
 * The incremental reader of grok.com's answer stream (see grok.h): finds
 * each JSON object in a body that arrives in arbitrary pieces, whether
 * the objects come one per line (NDJSON), behind SSE `data: ` fields, or
 * run together with no separator at all, and turns each into events.
 *
 * Every byte is looked at once: the scanner keeps its state (depth, in a
 * string, after a backslash) in struct grok_nd between calls, and copies
 * into pend only the part of an object that a piece leaves unfinished.
 * An object that fits in one piece is parsed where it lies.
 *
 * Garbage never costs the next object: a line that is not JSON is counted
 * and skipped up to the next newline or `{`, and a newline inside an
 * object ends it (JSON strings cannot hold a raw newline, and the
 * upstream never pretty-prints), so a line cut short is dropped alone.
 *
 * Worker only; pure (jansson), no locks, may run in a libcurl callback.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "grok.h"
#include "util.h"

enum grok_nd_state {
	GROK_ND_IDLE,    /* between objects, or at a line start */
	GROK_ND_FIELD,   /* reading an SSE field name ("data", "event") */
	GROK_ND_DATA,    /* after "data:" */
	GROK_ND_OBJ,     /* inside an object */
	GROK_ND_GARBAGE, /* skipping a bad line: up to a newline or `{` */
	GROK_ND_SKIP,    /* skipping a line that is fine to ignore */
};

const char *const grok_ev_name[] = {
	[GROK_EV_TOKEN] = "token",
	[GROK_EV_SEARCH] = "search",
	[GROK_EV_IMAGE_PROGRESS] = "image_progress",
	[GROK_EV_IMAGES] = "images",
	[GROK_EV_VIDEO_PROGRESS] = "video_progress",
	[GROK_EV_VIDEO] = "video",
	[GROK_EV_FINAL] = "final",
	[GROK_EV_ERROR] = "error",
};

void
grok_nd_init(struct grok_nd *p, size_t max_line)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->pend, max_line);
	p->state = GROK_ND_IDLE;
}

void
grok_nd_fini(struct grok_nd *p)
{
	buf_fini(&p->pend);
}

/* ---- events ------------------------------------------------------------ */

static void
grok_nd_ev_init(struct grok_ev *ev, enum grok_ev_kind kind)
{
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->text = ev->title = ev->url = ev->preview = "";
}

/* A string member, or "" when absent or not a string. */
static const char *
grok_nd_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* A numeric member as an int (clamped), or 0. */
static int
grok_nd_int(const json_t *o, const char *key)
{
	double d = json_number_value(json_object_get(o, key));

	if (d != d) /* NaN cannot come from JSON, but stay total */
		return 0;
	if (d > INT_MAX)
		return INT_MAX;
	if (d < INT_MIN)
		return INT_MIN;
	return (int)d;
}

static bool
grok_nd_true(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/*
 * An in-band error: {"message","code"} or a bare string. Whether it is
 * "set" is decided by the caller.
 */
static int
grok_nd_error(const json_t *e, grok_ev_fn *fn, void *arg)
{
	struct grok_ev ev;
	const char *msg = NULL;

	grok_nd_ev_init(&ev, GROK_EV_ERROR);
	if (json_is_string(e)) {
		msg = json_string_value(e);
	} else if (json_is_object(e)) {
		msg = json_string_value(json_object_get(e, "message"));
		ev.code = grok_nd_int(e, "code");
	}
	if (msg == NULL || *msg == '\0')
		msg = "upstream error without a message";
	ev.text = msg;
	ev.len = strlen(msg);
	return fn(arg, &ev);
}

/* An error member counts when it is a non-empty string or an object. */
static bool
grok_nd_error_set(const json_t *e)
{
	if (json_is_string(e))
		return json_string_length(e) > 0;
	return json_is_object(e);
}

static int
grok_nd_token(const json_t *r, grok_ev_fn *fn, void *arg)
{
	const json_t *tok = json_object_get(r, "token");
	struct grok_ev ev;

	/* A list-valued token happens; [E] skips it, and so do we. */
	if (!json_is_string(tok) || json_string_length(tok) == 0)
		return 0;
	grok_nd_ev_init(&ev, GROK_EV_TOKEN);
	ev.text = json_string_value(tok);
	ev.len = json_string_length(tok);
	ev.thinking = grok_nd_true(r, "isThinking");
	ev.header = strcmp(grok_nd_str(r, "messageTag"), "header") == 0;
	return fn(arg, &ev);
}

/* webSearchResults of a tool-usage card: one event per hit. */
static int
grok_nd_search(const json_t *r, grok_ev_fn *fn, void *arg)
{
	const json_t *ws, *list, *hit;
	struct grok_ev ev;
	size_t i;
	int rc;

	if (json_object_get(r, "toolUsageCardId") == NULL)
		return 0;
	ws = json_object_get(r, "webSearchResults");
	list = json_is_array(ws) ? ws : json_object_get(ws, "results");
	json_array_foreach(list, i, hit)
	{
		if (!json_is_object(hit))
			continue;
		grok_nd_ev_init(&ev, GROK_EV_SEARCH);
		ev.thinking = grok_nd_true(r, "isThinking");
		ev.title = grok_nd_str(hit, "title");
		ev.url = grok_nd_str(hit, "url");
		ev.preview = grok_nd_str(hit, "preview");
		if ((rc = fn(arg, &ev)) != 0)
			return rc;
	}
	return 0;
}

static int
grok_nd_media(const json_t *r, grok_ev_fn *fn, void *arg)
{
	const json_t *img, *vid;
	struct grok_ev ev;
	int rc;

	img = json_object_get(r, "streamingImageGenerationResponse");
	if (json_is_object(img)) {
		grok_nd_ev_init(&ev, GROK_EV_IMAGE_PROGRESS);
		ev.index = grok_nd_int(img, "imageIndex");
		ev.progress = grok_nd_int(img, "progress");
		ev.url = grok_nd_str(img, "imageUrl");
		if ((rc = fn(arg, &ev)) != 0)
			return rc;
	}
	vid = json_object_get(r, "streamingVideoGenerationResponse");
	if (json_is_object(vid)) {
		grok_nd_ev_init(&ev, GROK_EV_VIDEO_PROGRESS);
		ev.progress = grok_nd_int(vid, "progress");
		if ((rc = fn(arg, &ev)) != 0)
			return rc;
		if (*grok_nd_str(vid, "videoUrl") != '\0') {
			grok_nd_ev_init(&ev, GROK_EV_VIDEO);
			ev.progress = grok_nd_int(vid, "progress");
			ev.url = grok_nd_str(vid, "videoUrl");
			ev.title = grok_nd_str(vid, "thumbnailImageUrl");
			if ((rc = fn(arg, &ev)) != 0)
				return rc;
		}
	}
	return 0;
}

/* modelResponse: its images (if any), then FINAL; or its error. */
static int
grok_nd_final(const json_t *mr, grok_ev_fn *fn, void *arg)
{
	const json_t *list, *u;
	const char **urls = NULL;
	struct grok_ev ev;
	size_t i, n = 0;
	int rc = 0;

	if (grok_nd_error_set(json_object_get(mr, "error")))
		return grok_nd_error(json_object_get(mr, "error"), fn, arg);
	list = json_object_get(mr, "generatedImageUrls");
	if (json_array_size(list) > 0) {
		urls = calloc(json_array_size(list), sizeof(*urls));
		if (urls == NULL)
			return WP_ENOMEM;
		json_array_foreach(list, i, u)
		{
			if (json_is_string(u) && json_string_length(u) > 0)
				urls[n++] = json_string_value(u);
		}
	}
	if (n > 0) {
		grok_nd_ev_init(&ev, GROK_EV_IMAGES);
		ev.urls = urls;
		ev.nurls = n;
		if ((rc = fn(arg, &ev)) != 0)
			goto out;
	}
	grok_nd_ev_init(&ev, GROK_EV_FINAL);
	ev.text = grok_nd_str(mr, "message");
	ev.len = strlen(ev.text);
	ev.title = grok_nd_str(mr, "model");
	rc = fn(arg, &ev);
out:
	free(urls);
	return rc;
}

/*
 * One parsed object. Order within a response: its error, token, search
 * hits, image and video progress, then modelResponse. Objects without
 * any of these (conversation, userResponse, finalMetadata, title) give
 * no event.
 */
static int
grok_nd_object(struct grok_nd *p, const json_t *o, grok_ev_fn *fn, void *arg)
{
	const json_t *r, *mr;
	int rc;

	p->objects++;
	if (grok_nd_error_set(json_object_get(o, "error")))
		return grok_nd_error(json_object_get(o, "error"), fn, arg);
	r = json_object_get(json_object_get(o, "result"), "response");
	if (!json_is_object(r))
		return 0;
	p->seen_response = true;
	if (grok_nd_error_set(json_object_get(r, "error")))
		return grok_nd_error(json_object_get(r, "error"), fn, arg);
	if ((rc = grok_nd_token(r, fn, arg)) != 0 ||
	    (rc = grok_nd_search(r, fn, arg)) != 0 ||
	    (rc = grok_nd_media(r, fn, arg)) != 0)
		return rc;
	mr = json_object_get(r, "modelResponse");
	if (json_is_object(mr))
		return grok_nd_final(mr, fn, arg);
	return 0;
}

/* ---- the shallow scan: most lines without a tree ------------------------ */

/*
 * Most lines of an answer are plain tokens or carry nothing acted on
 * (conversation, userResponse, finalMetadata, title), and building a
 * jansson tree for each was most of a request's cost. The scan checks a
 * whole object the way json_loadb would and looks at three levels only:
 * the top, result, and result.response with the keys grok_nd_object
 * acts on. Whenever it is unsure (a key that gives another event, a
 * \u escape jansson may refuse, a number that may overflow, a duplicate
 * result) it says so and the object goes to the tree parser: both ways
 * give the same events and counts, which the nd fuzz target checks by
 * running every input both ways (grok_nd.tree_only).
 */
static bool
grok_nd_space(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

enum grok_nd_level {
	ND_L_ANY,
	ND_L_TOP,
	ND_L_RESULT,   /* result */
	ND_L_RESPONSE, /* result.response */
	ND_L_MODEL,    /* result.response.modelResponse */
};

#define ND_SCAN_DEPTH 64 /* deeper: unsure (jansson allows 2048) */
#define ND_MODEL_MAX  64 /* a longer model name: unsure */

/* A string value as it lies in the line; set false: absent or no string. */
struct grok_nd_span {
	const unsigned char *s;
	size_t n;
	bool set, esc;
};

struct grok_nd_scan {
	const unsigned char *p, *end;
	unsigned depth;
	bool response; /* result.response is an object */
	bool thinking; /* its isThinking is true */
	bool header;   /* its messageTag is "header" */
	bool final;    /* its modelResponse is an object */
	struct grok_nd_span tok, msg, model; /* token; modelResponse's */
};

/* Not the newline: one inside an object ends it (grok_nd_inside). */
static void
grok_nd_scan_space(struct grok_nd_scan *sc)
{
	while (sc->p < sc->end &&
	    (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\r'))
		sc->p++;
}

static int
grok_nd_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* String bytes that need no look: printable ASCII but quote, backslash. */
#define ND_P(c)   ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')
#define ND_P4(c)  ND_P(c), ND_P((c) + 1), ND_P((c) + 2), ND_P((c) + 3)
#define ND_P16(c) ND_P4(c), ND_P4((c) + 4), ND_P4((c) + 8), ND_P4((c) + 12)
#define ND_P64(c)                                                              \
	ND_P16(c), ND_P16((c) + 16), ND_P16((c) + 32), ND_P16((c) + 48)
static const bool grok_nd_plain[256] = { ND_P64(0), ND_P64(64), ND_P64(128),
	ND_P64(192) };
#undef ND_P64
#undef ND_P16
#undef ND_P4
#undef ND_P

/* \uXXXX at s (6 bytes there): the code point, or -1. */
static long
grok_nd_u(const unsigned char *s)
{
	long cp = 0;
	int i, h;

	for (i = 2; i < 6; i++) {
		if ((h = grok_nd_hex(s[i])) < 0)
			return -1;
		cp = cp * 16 + h;
	}
	return cp;
}

/*
 * A string at sc->p (on its quote): its raw bytes in *s, *n. Unsure of
 * NUL and surrogate escapes (jansson refuses NUL, and a lone surrogate).
 */
static bool
grok_nd_scan_str(
    struct grok_nd_scan *sc, const unsigned char **s, size_t *n, bool *esc)
{
	const unsigned char *q = sc->p + 1;
	size_t k;
	long cp;

	*esc = false;
	for (;;) {
		while (q < sc->end && grok_nd_plain[*q])
			q++;
		if (q == sc->end || *q == '"')
			break;
		if (*q == '\\') {
			if ((size_t)(sc->end - q) < 2)
				return false;
			*esc = true;
			if (q[1] != 'u') {
				if (strchr("\"\\/bfnrt", q[1]) == NULL ||
				    q[1] == '\0')
					return false;
				q += 2;
				continue;
			}
			if ((size_t)(sc->end - q) < 6 ||
			    (cp = grok_nd_u(q)) <= 0 ||
			    (cp >= 0xd800 && cp <= 0xdfff))
				return false;
			q += 6;
		} else if (*q < 0x20) {
			return false;
		} else {
			if ((k = util_utf8_seq(q, (size_t)(sc->end - q))) == 0)
				return false;
			q += k;
		}
	}
	if (q == sc->end)
		return false;
	*s = sc->p + 1;
	*n = (size_t)(q - *s);
	sc->p = q + 1;
	return true;
}

/* An integer or plain fraction; exponents and long ones are unsure. */
static bool
grok_nd_scan_num(struct grok_nd_scan *sc)
{
	const unsigned char *q = sc->p, *d;

	if (q < sc->end && *q == '-')
		q++;
	d = q;
	while (q < sc->end && *q >= '0' && *q <= '9')
		q++;
	if (q == d || (*d == '0' && q - d > 1))
		return false;
	if (q < sc->end && *q == '.') {
		d = ++q;
		while (q < sc->end && *q >= '0' && *q <= '9')
			q++;
		if (q == d)
			return false;
	}
	if (q - sc->p > 15 || (q < sc->end && (*q == 'e' || *q == 'E')))
		return false;
	sc->p = q;
	return true;
}

static bool
grok_nd_scan_lit(struct grok_nd_scan *sc, const char *lit, size_t n)
{
	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0)
		return false;
	sc->p += n;
	return true;
}

static bool grok_nd_scan_value(struct grok_nd_scan *sc, enum grok_nd_level l);

/* Whether the n bytes at k are the string literal lit. */
#define ND_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)

/*
 * The value of key k in an object at level l. Keys that decide an event
 * are looked at; one that would give another event than a token makes
 * the scan unsure.
 */
/* A value that matters when it is a string. */
static bool
grok_nd_scan_span(struct grok_nd_scan *sc, struct grok_nd_span *sp)
{
	sp->set = *sc->p == '"';
	if (!sp->set)
		return grok_nd_scan_value(sc, ND_L_ANY);
	return grok_nd_scan_str(sc, &sp->s, &sp->n, &sp->esc);
}

static bool
grok_nd_scan_model(struct grok_nd_scan *sc, const unsigned char *k, size_t n)
{
	const unsigned char *q = sc->p + 1;

	if (ND_IS(k, n, "error"))
		return false;
	if (ND_IS(k, n, "message"))
		return grok_nd_scan_span(sc, &sc->msg);
	if (ND_IS(k, n, "model"))
		return grok_nd_scan_span(sc, &sc->model);
	if (ND_IS(k, n, "generatedImageUrls") && *sc->p == '[') {
		while (q < sc->end && grok_nd_space(*q))
			q++;
		if (q == sc->end || *q != ']')
			return false; /* images: the tree gives those */
	}
	return grok_nd_scan_value(sc, ND_L_ANY);
}

/*
 * The value of key k in an object at level l. Keys that decide an event
 * are looked at; one that would give an event other than a token or the
 * final text makes the scan unsure.
 */
static bool
grok_nd_scan_member(struct grok_nd_scan *sc, enum grok_nd_level l,
    const unsigned char *k, size_t n, unsigned *seen)
{
	struct grok_nd_span tag;

	switch (l) {
	case ND_L_ANY:
		break;
	case ND_L_TOP:
	case ND_L_RESULT:
		if (l == ND_L_TOP && ND_IS(k, n, "error"))
			return false;
		if (l == ND_L_TOP ? !ND_IS(k, n, "result")
		                  : !ND_IS(k, n, "response"))
			break;
		if ((*seen)++ > 0)
			return false; /* the last one counts: leave it to
			                 jansson */
		if (*sc->p != '{')
			break;
		sc->response = l == ND_L_RESULT;
		return grok_nd_scan_value(sc, l + 1);
	case ND_L_RESPONSE:
		if (ND_IS(k, n, "error") || ND_IS(k, n, "toolUsageCardId") ||
		    ND_IS(k, n, "webSearchResults") ||
		    ND_IS(k, n, "streamingImageGenerationResponse") ||
		    ND_IS(k, n, "streamingVideoGenerationResponse"))
			return false;
		if (ND_IS(k, n, "token"))
			return grok_nd_scan_span(sc, &sc->tok);
		if (ND_IS(k, n, "isThinking"))
			sc->thinking = *sc->p == 't';
		if (ND_IS(k, n, "messageTag")) {
			if (!grok_nd_scan_span(sc, &tag) ||
			    (tag.set && tag.esc))
				return false;
			sc->header = tag.set && ND_IS(tag.s, tag.n, "header");
			return true;
		}
		if (ND_IS(k, n, "modelResponse")) {
			if (sc->final)
				return false; /* twice */
			sc->final = *sc->p == '{';
			if (sc->final)
				return grok_nd_scan_value(sc, ND_L_MODEL);
		}
		break;
	case ND_L_MODEL:
		return grok_nd_scan_model(sc, k, n);
	}
	return grok_nd_scan_value(sc, ND_L_ANY);
}

/*
 * Past the opening bracket (first) or a member or element: 1 when the
 * closing bracket comes (eaten), 0 when another member or element does,
 * -1 when neither.
 */
static int
grok_nd_scan_next(struct grok_nd_scan *sc, unsigned char close, bool first)
{
	grok_nd_scan_space(sc);
	if (sc->p == sc->end)
		return -1;
	if (*sc->p == close) {
		sc->p++;
		return 1;
	}
	if (!first && *sc->p++ != ',')
		return -1;
	grok_nd_scan_space(sc);
	return 0;
}

static bool
grok_nd_scan_object(struct grok_nd_scan *sc, enum grok_nd_level l)
{
	const unsigned char *k;
	unsigned seen = 0;
	size_t n;
	bool esc;
	int r;

	sc->p++; /* { */
	for (r = grok_nd_scan_next(sc, '}', true); r == 0;
	     r = grok_nd_scan_next(sc, '}', false)) {
		if (sc->p == sc->end || *sc->p != '"' ||
		    !grok_nd_scan_str(sc, &k, &n, &esc) || esc)
			return false;
		grok_nd_scan_space(sc);
		if (sc->p == sc->end || *sc->p++ != ':')
			return false;
		grok_nd_scan_space(sc);
		if (sc->p == sc->end ||
		    !grok_nd_scan_member(sc, l, k, n, &seen))
			return false;
	}
	return r == 1;
}

static bool
grok_nd_scan_array(struct grok_nd_scan *sc)
{
	int r;

	sc->p++; /* [ */
	for (r = grok_nd_scan_next(sc, ']', true); r == 0;
	     r = grok_nd_scan_next(sc, ']', false))
		if (!grok_nd_scan_value(sc, ND_L_ANY))
			return false;
	return r == 1;
}

static bool
grok_nd_scan_value(struct grok_nd_scan *sc, enum grok_nd_level l)
{
	const unsigned char *s;
	size_t n;
	bool esc, ok;

	if (sc->p == sc->end)
		return false;
	switch (*sc->p) {
	case '{':
	case '[':
		if (++sc->depth > ND_SCAN_DEPTH)
			return false;
		ok = *sc->p == '{' ? grok_nd_scan_object(sc, l)
		                   : grok_nd_scan_array(sc);
		sc->depth--;
		return ok;
	case '"':
		return grok_nd_scan_str(sc, &s, &n, &esc);
	case 't':
		return grok_nd_scan_lit(sc, "true", 4);
	case 'f':
		return grok_nd_scan_lit(sc, "false", 5);
	case 'n':
		return grok_nd_scan_lit(sc, "null", 4);
	default:
		return grok_nd_scan_num(sc);
	}
}

/* The span's text, escapes undone, into out (n + 1 bytes); its length. */
static size_t
grok_nd_unescape(const struct grok_nd_span *sp, char *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const unsigned char *s = sp->s;
	size_t i = 0, o = 0;
	long cp;

	if (!sp->esc) {
		memcpy(out, s, sp->n);
		out[sp->n] = '\0';
		return sp->n;
	}
	while (i < sp->n) {
		if (s[i] != '\\') {
			out[o++] = (char)s[i++];
			continue;
		}
		if (s[i + 1] != 'u') {
			out[o++] = to[strchr(from, s[i + 1]) - from];
			i += 2;
			continue;
		}
		cp = grok_nd_u(s + i); /* checked by the scan: 1..0xffff */
		i += 6;
		if (cp < 0x80) {
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			out[o++] = (char)(0xc0 | (cp >> 6));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		} else {
			out[o++] = (char)(0xe0 | (cp >> 12));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	out[o] = '\0';
	return o;
}

/* The events of a scanned object: its token, then its final text. */
static int
grok_nd_fast_events(const struct grok_nd_scan *sc, grok_ev_fn *fn, void *arg)
{
	char text[1024], model[ND_MODEL_MAX];
	struct grok_ev ev;
	char *msg;
	int rc;

	if (sc->tok.set && sc->tok.n > 0) {
		grok_nd_ev_init(&ev, GROK_EV_TOKEN);
		ev.len = grok_nd_unescape(&sc->tok, text);
		ev.text = text;
		ev.thinking = sc->thinking;
		ev.header = sc->header;
		if ((rc = fn(arg, &ev)) != 0)
			return rc;
	}
	if (!sc->final)
		return 0;
	grok_nd_ev_init(&ev, GROK_EV_FINAL);
	if ((msg = malloc(sc->msg.set ? sc->msg.n + 1 : 1)) == NULL)
		return WP_ENOMEM;
	msg[0] = '\0';
	if (sc->msg.set)
		ev.len = grok_nd_unescape(&sc->msg, msg);
	if (sc->model.set)
		(void)grok_nd_unescape(&sc->model, model);
	ev.text = msg;
	ev.title = sc->model.set ? model : "";
	rc = fn(arg, &ev);
	free(msg);
	return rc;
}

/*
 * The object at s (at most n bytes; its end is where the scan finds it)
 * when the shallow scan is sure of it: counted, its events handed on,
 * its length returned. 0: the tree parser is to read it (or it is cut
 * short, or longer than max).
 */
static size_t
grok_nd_fast(struct grok_nd *p, const char *s, size_t n, size_t max,
    grok_ev_fn *fn, void *arg, int *rc)
{
	struct grok_nd_scan sc = { .p = (const unsigned char *)s,
		.end = (const unsigned char *)s + n };
	size_t len;

	if (p->tree_only || n == 0 || *s != '{' ||
	    !grok_nd_scan_value(&sc, ND_L_TOP))
		return 0;
	len = (size_t)(sc.p - (const unsigned char *)s);
	/* Escapes only shorten: \uXXXX gives at most 3 bytes of its 6. */
	if (len > max ||
	    (sc.response &&
	        ((sc.tok.set && sc.tok.n >= 1024) ||
	            (sc.model.set && sc.model.n >= ND_MODEL_MAX))))
		return 0;
	p->objects++;
	*rc = 0;
	if (sc.response) {
		p->seen_response = true;
		*rc = grok_nd_fast_events(&sc, fn, arg);
	}
	return len;
}

static int
grok_nd_parse(
    struct grok_nd *p, const char *s, size_t n, grok_ev_fn *fn, void *arg)
{
	json_error_t jerr;
	json_t *o;
	int rc;

	if (grok_nd_fast(p, s, n, n, fn, arg, &rc) == n)
		return rc;
	if ((o = json_loadb(s, n, 0, &jerr)) == NULL) {
		p->malformed++;
		return 0;
	}
	rc = grok_nd_object(p, o, fn, arg);
	json_decref(o);
	return rc;
}

/* ---- the scanner ------------------------------------------------------- */

static void
grok_nd_obj_begin(struct grok_nd *p)
{
	p->state = GROK_ND_OBJ;
	p->depth = 1;
	p->in_str = p->esc = false;
	p->scan = 1;
	buf_reset(&p->pend);
}

/* A line that is not ours: count it, skip to a newline or `{`. */
static void
grok_nd_garbage(struct grok_nd *p, unsigned char ch)
{
	p->malformed++;
	if (ch == '{')
		grok_nd_obj_begin(p);
	else if (ch == '\n')
		p->state = GROK_ND_IDLE;
	else
		p->state = GROK_ND_GARBAGE;
}

static bool
grok_nd_alpha(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* The end of an SSE field name: data goes on, the others are skipped. */
static void
grok_nd_field_end(struct grok_nd *p)
{
	static const char *const ignore[] = { "event", "id", "retry" };
	size_t i;

	if (p->nfld == 4 && memcmp(p->fld, "data", 4) == 0) {
		p->state = GROK_ND_DATA;
		return;
	}
	for (i = 0; i < sizeof(ignore) / sizeof(ignore[0]); i++) {
		if (p->nfld == strlen(ignore[i]) &&
		    memcmp(p->fld, ignore[i], p->nfld) == 0) {
			p->state = GROK_ND_SKIP;
			return;
		}
	}
	grok_nd_garbage(p, ':');
}

/* One byte outside an object. Returns true when an object starts. */
static bool
grok_nd_outside(struct grok_nd *p, unsigned char ch)
{
	switch ((enum grok_nd_state)p->state) {
	case GROK_ND_IDLE:
		if (grok_nd_space(ch))
			break;
		if (ch == '{') {
			grok_nd_obj_begin(p);
		} else if (ch == ':') {
			p->state = GROK_ND_SKIP; /* SSE comment */
		} else if (grok_nd_alpha(ch)) {
			p->state = GROK_ND_FIELD;
			p->fld[0] = (char)ch;
			p->nfld = 1;
		} else {
			grok_nd_garbage(p, ch);
		}
		break;
	case GROK_ND_FIELD:
		if (ch == ':')
			grok_nd_field_end(p);
		else if (grok_nd_alpha(ch) && p->nfld < sizeof(p->fld))
			p->fld[p->nfld++] = (char)ch;
		else
			grok_nd_garbage(p, ch);
		break;
	case GROK_ND_DATA:
		if (ch == '\n')
			p->state = GROK_ND_IDLE;
		else if (ch == '{')
			grok_nd_obj_begin(p);
		else if (ch == '[')
			p->state = GROK_ND_SKIP; /* data: [DONE] */
		else if (!grok_nd_space(ch))
			grok_nd_garbage(p, ch);
		break;
	case GROK_ND_GARBAGE:
		if (ch == '\n')
			p->state = GROK_ND_IDLE;
		else if (ch == '{')
			grok_nd_obj_begin(p);
		break;
	case GROK_ND_SKIP:
		if (ch == '\n')
			p->state = GROK_ND_IDLE;
		break;
	case GROK_ND_OBJ:
		WP_ASSERT(!"grok_nd_outside inside an object");
		break;
	}
	return p->state == GROK_ND_OBJ;
}

enum grok_nd_step { GROK_ND_MORE, GROK_ND_DONE, GROK_ND_BROKEN };

/* One byte inside an object. */
static enum grok_nd_step
grok_nd_inside(struct grok_nd *p, unsigned char ch)
{
	if (ch == '\n')
		return GROK_ND_BROKEN; /* raw newlines end lines, always */
	if (p->in_str) {
		if (p->esc)
			p->esc = false;
		else if (ch == '\\')
			p->esc = true;
		else if (ch == '"')
			p->in_str = false;
		return GROK_ND_MORE;
	}
	switch (ch) {
	case '"':
		p->in_str = true;
		break;
	case '{':
	case '[':
		p->depth++;
		break;
	case '}':
	case ']':
		if (--p->depth == 0)
			return GROK_ND_DONE;
		break;
	default:
		break;
	}
	return GROK_ND_MORE;
}

/* The bytes grok_nd_inside acts on; it passes over all the others. */
static const bool grok_nd_stop[256] = { ['"'] = true,
	['\\'] = true,
	['\n'] = true,
	['{'] = true,
	['}'] = true,
	['['] = true,
	[']'] = true };

int
grok_nd_feed(
    struct grok_nd *p, const char *data, size_t len, grok_ev_fn *fn, void *arg)
{
	size_t i, n, start = 0; /* where the current object starts in data */
	enum grok_nd_step st;
	int rc;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (p->state != GROK_ND_OBJ) {
			if (!grok_nd_outside(p, ch))
				continue;
			start = i;
			/* Most objects lie whole in the piece: one pass. */
			if ((n = grok_nd_fast(p, data + i, len - i, p->pend.max,
			         fn, arg, &rc)) == 0)
				continue;
			p->state = GROK_ND_IDLE;
			i += n - 1;
			if (rc != 0)
				return rc;
			continue;
		}
		if (!p->esc) { /* most bytes change nothing: skip them */
			size_t j = i;

			while (j < len && !grok_nd_stop[(unsigned char)data[j]])
				j++;
			p->scan += j - i;
			i = j;
		}
		if (i < len)
			p->scan++;
		if (p->scan > p->pend.max) {
			buf_reset(&p->pend);
			p->state = GROK_ND_SKIP;
			return WP_ETOOBIG;
		}
		if (i == len)
			break;
		ch = (unsigned char)data[i];
		if ((st = grok_nd_inside(p, ch)) == GROK_ND_MORE)
			continue;
		p->state = GROK_ND_IDLE;
		if (st == GROK_ND_BROKEN) {
			p->malformed++;
			buf_reset(&p->pend);
			continue;
		}
		if (p->pend.len == 0) {
			rc = grok_nd_parse(
			    p, data + start, i + 1 - start, fn, arg);
		} else {
			/* Cannot pass max: scan counted these bytes. */
			if ((rc = buf_append(
			         &p->pend, data + start, i + 1 - start)) == 0)
				rc = grok_nd_parse(
				    p, p->pend.p, p->pend.len, fn, arg);
			buf_reset(&p->pend);
		}
		if (rc != 0)
			return rc;
	}
	if (p->state == GROK_ND_OBJ &&
	    (rc = buf_append(&p->pend, data + start, len - start)) != 0) {
		buf_reset(&p->pend);
		p->state = GROK_ND_SKIP;
		return rc;
	}
	return 0;
}

int
grok_nd_end(struct grok_nd *p, grok_ev_fn *fn, void *arg)
{
	(void)fn; /* a complete object was already parsed when it closed */
	(void)arg;
	/*
	 * The scanner parses an object the moment its braces balance, so
	 * what is left is cut short (an object, or "data" with no colon).
	 */
	if (p->state == GROK_ND_OBJ || p->state == GROK_ND_FIELD)
		p->malformed++;
	buf_reset(&p->pend);
	p->state = GROK_ND_IDLE;
	return 0;
}
