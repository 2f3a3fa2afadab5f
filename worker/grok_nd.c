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

static bool
grok_nd_has(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle)) != NULL;
}

/*
 * The line most of an answer is made of, {"result":{"response":{"token":
 * "<plain text>",...}}}, read without building a tree: the benchmark
 * found json_loadb on these lines to be most of a request's cost. Only
 * the plainest form qualifies (that prefix, no escape, no key that would
 * give another event); anything else returns false and gets the full
 * parser, so both ways give the same events.
 */
static bool
grok_nd_fast(struct grok_nd *p, const char *s, size_t n, grok_ev_fn *fn,
    void *arg, int *rc)
{
	static const char pre[] = "{\"result\":{\"response\":{\"token\":\"";
	static const char *const acts[] = { "\"error\"", "\"webSearchResults\"",
		"\"toolUsageCardId\"", "\"modelResponse\"", "\"streaming",
		"\"userResponse\"", "\"imageAttachmentInfo\"",
		"\"cardAttachment\"", "\"token\"" };
	const char *tok = s + sizeof(pre) - 1, *end, *rest, *lim = s + n;
	char text[1024];
	struct grok_ev ev;
	size_t i, len, rn;

	if (n < sizeof(pre) - 1 || memcmp(s, pre, sizeof(pre) - 1) != 0)
		return false;
	for (end = tok; end < lim && *end != '"'; end++)
		if (*end == '\\' || (unsigned char)*end < 0x20)
			return false;
	len = (size_t)(end - tok);
	if (end == lim || len >= sizeof(text))
		return false;
	rest = end + 1;
	rn = (size_t)(lim - rest);
	/* Values with no escapes cannot hide a key inside a string. */
	if (memchr(rest, '\\', rn) != NULL || rn < 3 ||
	    memcmp(lim - 3, "}}}", 3) != 0)
		return false;
	for (i = 0; i < ARRAY_LEN(acts); i++)
		if (grok_nd_has(rest, rn, acts[i]))
			return false;
	p->objects++;
	p->seen_response = true;
	*rc = 0;
	if (len == 0)
		return true;
	memcpy(text, tok, len);
	text[len] = '\0';
	grok_nd_ev_init(&ev, GROK_EV_TOKEN);
	ev.text = text;
	ev.len = len;
	ev.thinking = grok_nd_has(rest, rn, "\"isThinking\":true");
	ev.header = grok_nd_has(rest, rn, "\"messageTag\":\"header\"");
	*rc = fn(arg, &ev);
	return true;
}

static int
grok_nd_parse(
    struct grok_nd *p, const char *s, size_t n, grok_ev_fn *fn, void *arg)
{
	json_error_t jerr;
	json_t *o;
	int rc;

	if (grok_nd_fast(p, s, n, fn, arg, &rc))
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
grok_nd_space(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
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

int
grok_nd_feed(
    struct grok_nd *p, const char *data, size_t len, grok_ev_fn *fn, void *arg)
{
	size_t i, start = 0; /* where the current object starts in data */
	enum grok_nd_step st;
	int rc;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (p->state != GROK_ND_OBJ) {
			if (grok_nd_outside(p, ch))
				start = i;
			continue;
		}
		if (++p->scan > p->pend.max) {
			buf_reset(&p->pend);
			p->state = GROK_ND_SKIP;
			return WP_ETOOBIG;
		}
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
