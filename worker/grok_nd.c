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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
	GROK_ND_HELD,    /* a template line cut by the piece: in pend */
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
 * whole object the way json_loadb would and looks at four levels only:
 * the top, result, result.response and its modelResponse, with the keys
 * grok_nd_object acts on. Whenever it is unsure (a key that gives another
 * event, a \u escape jansson may refuse, a number that may overflow, a
 * duplicate result) it says so and the object goes to the tree parser:
 * both ways give the same events and counts, which the nd fuzz target
 * checks by running every input both ways (grok_nd.tree_only).
 *
 * Even so the scan was the largest cost of a chat in the worker, so it
 * reads string bodies 16 or 8 bytes at a time (grok_nd_plain_end), checks
 * the values nothing is read from in one loop without a call per value
 * (grok_nd_skip), and only the four levels above recurse. Each step takes
 * the position and returns the next one, or NULL when unsure. Most lines
 * are the token line before them with another token; those are read by
 * comparing them with it (grok_nd_tmpl_scan), and held unread when a
 * piece cuts them (grok_nd_held).
 */
static bool
grok_nd_space(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The objects the scan looks into; the top one is at depth 1. */
enum grok_nd_level {
	ND_L_TOP,
	ND_L_RESULT,   /* result */
	ND_L_RESPONSE, /* result.response */
	ND_L_MODEL,    /* result.response.modelResponse */
};

/* The keys the scan looks at, at whichever level they matter. */
enum grok_nd_key {
	ND_K_OTHER,
	ND_K_ERROR,
	ND_K_RESULT,
	ND_K_RESPONSE,
	ND_K_TOKEN,
	ND_K_THINKING, /* isThinking */
	ND_K_TAG,      /* messageTag */
	ND_K_FINAL,    /* modelResponse */
	ND_K_EVENT,    /* a key of response that gives another event */
	ND_K_MESSAGE,
	ND_K_MODEL,
	ND_K_IMAGES, /* generatedImageUrls */
};

#define ND_SCAN_DEPTH 64 /* deeper: unsure (jansson allows 2048) */
#define ND_MODEL_MAX  64 /* a longer model name: unsure */
/* Brackets a value inside the object of level l may open. */
#define ND_ROOM(l) (ND_SCAN_DEPTH - 1 - (unsigned)(l))

/* A string value as it lies in the line; set false: absent or no string. */
struct grok_nd_span {
	const unsigned char *s;
	size_t n;
	bool set, esc;
};

/* What the scan found in an object; end is where its bytes end. */
struct grok_nd_scan {
	const unsigned char *end;
	bool response; /* result.response is an object */
	bool thinking; /* its isThinking is true */
	bool header;   /* its messageTag is "header" */
	bool final;    /* its modelResponse is an object */
	struct grok_nd_span tok, msg, model; /* token; modelResponse's */
};

/*
 * Past white space but the newline: one inside an object ends it. Most
 * lines have none, so one compare sees most bytes through.
 */
static inline const unsigned char *
grok_nd_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && *p <= ' ' && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
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

#define ND_ONES  0x0101010101010101ull
#define ND_HIGHS 0x8080808080808080ull
/* The string scan, in every caller's loop: a call was a third of it. */
#define ND_INLINE inline __attribute__((always_inline))

/* The index of the first byte in memory order whose high bit m has. */
static ND_INLINE unsigned
grok_nd_first(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (unsigned)__builtin_clzll(m) >> 3;
#else
	return (unsigned)__builtin_ctzll(m) >> 3;
#endif
}

/*
 * The high bit of each byte of x that is not grok_nd_plain, and perhaps
 * of bytes after the first such one: a byte gets it when it has it itself
 * (>= 0x80), or when taking 0x20 from it (a control byte) or 1 from it
 * xor '"' or '\\' wraps. A byte that wraps borrows from the next one,
 * which may then show up too, but below the first byte to wrap none does:
 * the lowest such byte is exact.
 */
static ND_INLINE uint64_t
grok_nd_stops8(uint64_t x)
{
	return (x | (x - ND_ONES * 0x20) | ((x ^ ND_ONES * '"') - ND_ONES) |
	           ((x ^ ND_ONES * '\\') - ND_ONES)) &
	    ND_HIGHS;
}

/*
 * The first byte at or after q that is not grok_nd_plain, or end: 16
 * bytes at a time with SSE2 (every x86-64 has it; a signed compare below
 * 0x20 catches the bytes >= 0x80 too), then 8 with grok_nd_stops8, then
 * one by one. Never a read past end.
 */
static ND_INLINE const unsigned char *
grok_nd_plain_end(const unsigned char *q, const unsigned char *end)
{
	uint64_t x, m;
#ifdef __SSE2__
	__m128i v, stop;
	unsigned bits;

	while (end - q >= 16) {
		memcpy(&v, q, 16);
		stop = _mm_or_si128(
		    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
		        _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
		    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
		if ((bits = (unsigned)_mm_movemask_epi8(stop)) != 0)
			return q + __builtin_ctz(bits);
		q += 16;
	}
#endif
	while (end - q >= 8) {
		memcpy(&x, q, 8);
		if ((m = grok_nd_stops8(x)) != 0)
			return q + grok_nd_first(m);
		q += 8;
	}
	while (q < end && grok_nd_plain[*q])
		q++;
	return q;
}

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
 * Past the string byte at q that is neither plain nor the closing quote:
 * an escape or a UTF-8 sequence. NULL when unsure: a control byte, bad
 * UTF-8, a cut or unknown escape, and the escapes jansson refuses (NUL, a
 * lone surrogate: pairs are left to it as well).
 */
static const unsigned char *
grok_nd_str_odd(const unsigned char *q, const unsigned char *end)
{
	size_t k;
	long cp;

	if (*q < 0x20)
		return NULL;
	if (*q != '\\') {
		k = util_utf8_seq(q, (size_t)(end - q));
		return k == 0 ? NULL : q + k;
	}
	if (end - q < 2)
		return NULL;
	switch (q[1]) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		return q + 2;
	case 'u':
		if (end - q < 6 || (cp = grok_nd_u(q)) <= 0 ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return NULL;
		return q + 6;
	default:
		return NULL;
	}
}

/*
 * The closing quote of a string whose body starts at q, or NULL when
 * unsure (grok_nd_str_odd) or cut short. *esc set: it has escapes.
 */
static ND_INLINE const unsigned char *
grok_nd_str_end(const unsigned char *q, const unsigned char *end, bool *esc)
{
	for (;;) {
		q = grok_nd_plain_end(q, end);
		if (q == end)
			return NULL;
		if (*q == '"')
			return q;
		*esc |= *q == '\\';
		if ((q = grok_nd_str_odd(q, end)) == NULL)
			return NULL;
	}
}

/*
 * Past a number at p: an integer or plain fraction. NULL for exponents
 * and long ones (unsure: jansson refuses what overflows) and non-numbers.
 */
static const unsigned char *
grok_nd_num_end(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *q = p, *d;

	if (q < end && *q == '-')
		q++;
	d = q;
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	if (q == d || (*d == '0' && q - d > 1))
		return NULL;
	if (q < end && *q == '.') {
		d = ++q;
		while (q < end && *q >= '0' && *q <= '9')
			q++;
		if (q == d)
			return NULL;
	}
	if (q - p > 15 || (q < end && (*q == 'e' || *q == 'E')))
		return NULL;
	return q;
}

/* Past the literal lit (n bytes) at p, or NULL. */
static inline const unsigned char *
grok_nd_lit_end(
    const unsigned char *p, const unsigned char *end, const char *lit, size_t n)
{
	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

/*
 * Past the colon after a key whose closing quote is at q: at the value
 * (before end), or NULL. Lines come without white space, so that is
 * tried first.
 */
static ND_INLINE const unsigned char *
grok_nd_colon(const unsigned char *q, const unsigned char *end)
{
	const unsigned char *p;

	if (end - q >= 3 && q[1] == ':' && q[2] > ' ')
		return q + 2;
	p = grok_nd_ws(q + 1, end);
	if (p == end || *p != ':')
		return NULL;
	p = grok_nd_ws(p + 1, end);
	return p == end ? NULL : p;
}

/*
 * After a member or element at *pp: 0 with *pp past the comma and white
 * space, 1 with *pp past the closing bracket close, -1 when neither.
 */
static ND_INLINE int
grok_nd_next(
    const unsigned char **pp, const unsigned char *end, unsigned char close)
{
	const unsigned char *p = *pp;

	if (end - p >= 2 && p[0] == ',' && p[1] > ' ') {
		*pp = p + 1;
		return 0;
	}
	p = grok_nd_ws(p, end);
	if (p == end)
		return -1;
	if (*p == close) {
		*pp = p + 1;
		return 1;
	}
	if (*p != ',')
		return -1;
	*pp = grok_nd_ws(p + 1, end);
	return 0;
}

/* Past a key at p (on its quote, or end) and its colon, or NULL. */
static ND_INLINE const unsigned char *
grok_nd_key_end(const unsigned char *p, const unsigned char *end)
{
	bool esc = false;

	if (p == end || *p != '"' ||
	    (p = grok_nd_str_end(p + 1, end, &esc)) == NULL)
		return NULL;
	return grok_nd_colon(p, end);
}

/* Past a string, literal or number at p (before end), or NULL. */
static ND_INLINE const unsigned char *
grok_nd_scalar(const unsigned char *p, const unsigned char *end)
{
	bool esc = false;

	switch (*p) {
	case '"':
		p = grok_nd_str_end(p + 1, end, &esc);
		return p == NULL ? NULL : p + 1;
	case 't':
		return grok_nd_lit_end(p, end, "true", 4);
	case 'f':
		return grok_nd_lit_end(p, end, "false", 5);
	case 'n':
		return grok_nd_lit_end(p, end, "null", 4);
	default:
		return grok_nd_num_end(p, end);
	}
}

/* The closing bracket of the innermost open one (objs' low bit). */
#define ND_CLOSE(objs) (((objs)&1) != 0 ? '}' : ']')

/*
 * Past an object or array at p that nothing is read from, checked the
 * way json_loadb checks it, with at most room brackets open in it. One
 * loop for it however deep: objs holds a bit per open bracket (1: an
 * object), the innermost lowest. Escaped keys are fine here, where no
 * key is looked at.
 */
static const unsigned char *
grok_nd_skip_nest(
    const unsigned char *p, const unsigned char *end, unsigned room)
{
	unsigned d = 0;
	uint64_t objs = 0;
	int r;

	for (;;) {
		if (*p == '{' || *p == '[') {
			if (d == room)
				return NULL;
			objs = objs << 1 | (*p == '{');
			d++;
			p = grok_nd_ws(p + 1, end);
			if (p < end && *p == ND_CLOSE(objs)) {
				p++;
				d--;
				objs >>= 1;
			} else {
				if ((objs & 1) != 0 &&
				    (p = grok_nd_key_end(p, end)) == NULL)
					return NULL;
				if (p == end)
					return NULL;
				continue; /* at the first value in it */
			}
		} else if ((p = grok_nd_scalar(p, end)) == NULL) {
			return NULL;
		}
		/* After a value: close brackets up to a comma, or the end. */
		for (;;) {
			if (d == 0)
				return p;
			if ((r = grok_nd_next(&p, end, ND_CLOSE(objs))) < 0)
				return NULL;
			if (r == 0)
				break;
			d--;
			objs >>= 1;
		}
		if ((objs & 1) != 0 && (p = grok_nd_key_end(p, end)) == NULL)
			return NULL;
		if (p == end)
			return NULL;
	}
}

/* Past a value at p (before end) that nothing is read from, or NULL. */
static ND_INLINE const unsigned char *
grok_nd_skip(const unsigned char *p, const unsigned char *end, unsigned room)
{
	if (*p == '{' || *p == '[')
		return grok_nd_skip_nest(p, end, room);
	return grok_nd_scalar(p, end);
}

/* Which key the n bytes at k are (a key without escapes). */
static enum grok_nd_key
grok_nd_key(const unsigned char *k, size_t n)
{
#define ND_KEY(lit, kind)                                                      \
	do {                                                                   \
		if (memcmp(k, lit, sizeof(lit) - 1) == 0)                      \
			return kind;                                           \
	} while (0)
	switch (n) {
	case 5:
		ND_KEY("token", ND_K_TOKEN);
		ND_KEY("error", ND_K_ERROR);
		ND_KEY("model", ND_K_MODEL);
		break;
	case 6:
		ND_KEY("result", ND_K_RESULT);
		break;
	case 7:
		ND_KEY("message", ND_K_MESSAGE);
		break;
	case 8:
		ND_KEY("response", ND_K_RESPONSE);
		break;
	case 10:
		ND_KEY("isThinking", ND_K_THINKING);
		ND_KEY("messageTag", ND_K_TAG);
		break;
	case 13:
		ND_KEY("modelResponse", ND_K_FINAL);
		break;
	case 15:
		ND_KEY("toolUsageCardId", ND_K_EVENT);
		break;
	case 16:
		ND_KEY("webSearchResults", ND_K_EVENT);
		break;
	case 18:
		ND_KEY("generatedImageUrls", ND_K_IMAGES);
		break;
	case 32:
		ND_KEY("streamingImageGenerationResponse", ND_K_EVENT);
		ND_KEY("streamingVideoGenerationResponse", ND_K_EVENT);
		break;
	default:
		break;
	}
	return ND_K_OTHER;
#undef ND_KEY
}

static const unsigned char *grok_nd_scan_object(
    struct grok_nd_scan *sc, const unsigned char *p, enum grok_nd_level l);

/* Whether the n bytes at k are the string literal lit. */
#define ND_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)

/* A value of the object at level l that matters when it is a string. */
static const unsigned char *
grok_nd_scan_span(struct grok_nd_scan *sc, const unsigned char *p,
    enum grok_nd_level l, struct grok_nd_span *sp)
{
	const unsigned char *q;

	sp->set = *p == '"';
	if (!sp->set)
		return grok_nd_skip(p, sc->end, ND_ROOM(l));
	sp->esc = false;
	if ((q = grok_nd_str_end(p + 1, sc->end, &sp->esc)) == NULL)
		return NULL;
	sp->s = p + 1;
	sp->n = (size_t)(q - sp->s);
	return q + 1;
}

/*
 * The value at p of key k in result.response. One that would give an
 * event other than a token or the final text makes the scan unsure.
 */
static const unsigned char *
grok_nd_scan_response(
    struct grok_nd_scan *sc, const unsigned char *p, enum grok_nd_key k)
{
	struct grok_nd_span tag;

	if (k == ND_K_TOKEN)
		return grok_nd_scan_span(sc, p, ND_L_RESPONSE, &sc->tok);
	if (k == ND_K_THINKING) {
		sc->thinking = *p == 't';
	} else if (k == ND_K_TAG) {
		if ((p = grok_nd_scan_span(sc, p, ND_L_RESPONSE, &tag)) ==
		        NULL ||
		    (tag.set && tag.esc))
			return NULL;
		sc->header = tag.set && ND_IS(tag.s, tag.n, "header");
		return p;
	} else if (k == ND_K_FINAL) {
		if (sc->final)
			return NULL; /* twice */
		sc->final = *p == '{';
		if (sc->final)
			return grok_nd_scan_object(sc, p, ND_L_MODEL);
	} else if (k == ND_K_ERROR || k == ND_K_EVENT) {
		return NULL;
	}
	return grok_nd_skip(p, sc->end, ND_ROOM(ND_L_RESPONSE));
}

/* The value at p of key k in modelResponse: its text, model, no images. */
static const unsigned char *
grok_nd_scan_model(
    struct grok_nd_scan *sc, const unsigned char *p, enum grok_nd_key k)
{
	const unsigned char *q;

	if (k == ND_K_ERROR)
		return NULL;
	if (k == ND_K_MESSAGE)
		return grok_nd_scan_span(sc, p, ND_L_MODEL, &sc->msg);
	if (k == ND_K_MODEL)
		return grok_nd_scan_span(sc, p, ND_L_MODEL, &sc->model);
	if (k == ND_K_IMAGES && *p == '[') {
		q = grok_nd_ws(p + 1, sc->end);
		if (q == sc->end || *q != ']')
			return NULL; /* images: the tree gives those */
	}
	return grok_nd_skip(p, sc->end, ND_ROOM(ND_L_MODEL));
}

/*
 * The value at p of result (l top) or response (l result): the level
 * below when it is an object. Only the last of two equal keys counts in
 * jansson: a second one makes the scan unsure.
 */
static const unsigned char *
grok_nd_scan_once(struct grok_nd_scan *sc, const unsigned char *p,
    enum grok_nd_level l, unsigned *seen)
{
	if ((*seen)++ > 0)
		return NULL;
	if (*p != '{')
		return grok_nd_skip(p, sc->end, ND_ROOM(l));
	sc->response = l == ND_L_RESULT;
	return grok_nd_scan_object(sc, p, l + 1);
}

/*
 * The value at p of key k in an object at level l. Other keys that occur
 * twice are simply read again: the last one counts, as in jansson.
 */
static const unsigned char *
grok_nd_scan_member(struct grok_nd_scan *sc, const unsigned char *p,
    enum grok_nd_level l, enum grok_nd_key k, unsigned *seen)
{
	switch (l) {
	case ND_L_TOP:
		if (k == ND_K_ERROR)
			return NULL;
		if (k == ND_K_RESULT)
			return grok_nd_scan_once(sc, p, l, seen);
		break;
	case ND_L_RESULT:
		if (k == ND_K_RESPONSE)
			return grok_nd_scan_once(sc, p, l, seen);
		break;
	case ND_L_RESPONSE:
		return grok_nd_scan_response(sc, p, k);
	case ND_L_MODEL:
		return grok_nd_scan_model(sc, p, k);
	}
	return grok_nd_skip(p, sc->end, ND_ROOM(l));
}

/* Past an object at p (on its brace) at level l, or NULL. */
static const unsigned char *
grok_nd_scan_object(
    struct grok_nd_scan *sc, const unsigned char *p, enum grok_nd_level l)
{
	const unsigned char *q, *end = sc->end;
	enum grok_nd_key k;
	unsigned seen = 0;
	bool esc = false;
	int r;

	p = grok_nd_ws(p + 1, end);
	if (p < end && *p == '}')
		return p + 1;
	do {
		if (p == end || *p != '"' ||
		    (q = grok_nd_str_end(p + 1, end, &esc)) == NULL || esc)
			return NULL; /* an escaped key may be any key */
		k = grok_nd_key(p + 1, (size_t)(q - p - 1));
		if ((p = grok_nd_colon(q, end)) == NULL ||
		    (p = grok_nd_scan_member(sc, p, l, k, &seen)) == NULL)
			return NULL;
	} while ((r = grok_nd_next(&p, end, '}')) == 0);
	return r > 0 ? p : NULL;
}

/* The span's text, escapes undone, into out (n + 1 bytes); its length. */
static size_t
grok_nd_unescape(const struct grok_nd_span *sp, char *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const unsigned char *s = sp->s, *bs;
	size_t i = 0, o = 0, k;
	long cp;

	if (!sp->esc) {
		memcpy(out, s, sp->n);
		out[sp->n] = '\0';
		return sp->n;
	}
	for (;;) {
		/* The run up to the next backslash, copied at once. */
		bs = memchr(s + i, '\\', sp->n - i);
		k = (bs != NULL ? (size_t)(bs - s) : sp->n) - i;
		memcpy(out + o, s + i, k);
		o += k;
		i += k;
		if (i == sp->n)
			break;
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

/* The token event of a token string the scan read (under 1024 bytes). */
static int
grok_nd_token_event(const struct grok_nd_span *tok, bool thinking, bool header,
    grok_ev_fn *fn, void *arg)
{
	char text[1024];
	struct grok_ev ev;

	if (!tok->set || tok->n == 0)
		return 0;
	grok_nd_ev_init(&ev, GROK_EV_TOKEN);
	ev.len = grok_nd_unescape(tok, text);
	ev.text = text;
	ev.thinking = thinking;
	ev.header = header;
	return fn(arg, &ev);
}

/* The events of a scanned object: its token, then its final text. */
static int
grok_nd_fast_events(const struct grok_nd_scan *sc, grok_ev_fn *fn, void *arg)
{
	char model[ND_MODEL_MAX];
	struct grok_ev ev;
	char *msg;
	int rc;

	if ((rc = grok_nd_token_event(
	         &sc->tok, sc->thinking, sc->header, fn, arg)) != 0)
		return rc;
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
 * The object at u (before end) when it is the template line
 * (grok_nd.tmpl) with another token: its end, and the token in tok; the
 * rest of what the scan would find is the template's. The scan reads a
 * line left to right and never looks back at a token string it has read,
 * so where the bytes before and after the token's body are those of a
 * line it read, only the token can differ: checking the new body as a
 * string is all that is left to do.
 * NULL with *other set: another line, for the scan. NULL without: the
 * template line cut short by the piece, or with a token the scan is
 * unsure of; the scan would stop where this did, so it need not run.
 * *cut: the bytes up to end are the start of the template line, outside
 * its token (grok_nd_held).
 */
static ND_INLINE const unsigned char *
grok_nd_tmpl_scan(const struct grok_nd *p, const unsigned char *u,
    const unsigned char *end, struct grok_nd_span *tok, bool *other, bool *cut)
{
	const unsigned char *q, *body = u + p->tmpl_head;
	size_t left = (size_t)(end - u);

	*other = true;
	*cut = false;
	if (p->tmpl_head == 0 ||
	    memcmp(u, p->tmpl, left < p->tmpl_head ? left : p->tmpl_head) != 0)
		return NULL;
	*other = false;
	*cut = left < p->tmpl_head;
	tok->esc = false;
	if (*cut || (q = grok_nd_str_end(body, end, &tok->esc)) == NULL)
		return NULL;
	left = (size_t)(end - q);
	if (memcmp(q, p->tmpl + p->tmpl_head,
	        left < p->tmpl_tail ? left : p->tmpl_tail) != 0) {
		*other = true;
		return NULL;
	}
	if ((*cut = left < p->tmpl_tail))
		return NULL;
	tok->set = true;
	tok->s = body;
	tok->n = (size_t)(q - body);
	return q + p->tmpl_tail;
}

/*
 * Keep the line at u (its object ends at e), which the scan read into sc,
 * as the template when it is a token line: most lines of an answer are
 * the one before with another token.
 */
static void
grok_nd_tmpl_keep(struct grok_nd *p, const struct grok_nd_scan *sc,
    const unsigned char *u, const unsigned char *e)
{
	size_t head, tail;

	if (!sc->response || !sc->tok.set || sc->final)
		return;
	head = (size_t)(sc->tok.s - u);
	tail = (size_t)(e - (sc->tok.s + sc->tok.n));
	if (head + tail > sizeof(p->tmpl))
		return;
	memcpy(p->tmpl, u, head);
	memcpy(p->tmpl + head, sc->tok.s + sc->tok.n, tail);
	p->tmpl_head = (uint16_t)head;
	p->tmpl_tail = (uint16_t)tail;
	p->tmpl_thinking = sc->thinking;
	p->tmpl_header = sc->header;
}

/*
 * grok_nd_fast for a line the template does not give: the scan. Keeps the
 * line as the template when it can be one.
 */
static size_t
grok_nd_fast_scan(struct grok_nd *p, const unsigned char *u, size_t n,
    size_t max, grok_ev_fn *fn, void *arg, int *rc)
{
	struct grok_nd_scan sc = { .end = u + n };
	const unsigned char *q;
	size_t len;

	if ((q = grok_nd_scan_object(&sc, u, ND_L_TOP)) == NULL)
		return 0;
	grok_nd_tmpl_keep(p, &sc, u, q);
	len = (size_t)(q - u);
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

/*
 * The object at s (at most n bytes; its end is where the scan finds it)
 * when the shallow scan is sure of it: counted, its events handed on,
 * its length returned. 0: the tree parser is to read it (or it is cut
 * short, or longer than max); *cut as grok_nd_tmpl_scan says.
 */
static size_t
grok_nd_fast(struct grok_nd *p, const char *s, size_t n, size_t max,
    grok_ev_fn *fn, void *arg, int *rc, bool *cut)
{
	const unsigned char *u = (const unsigned char *)s, *q;
	struct grok_nd_span tok;
	bool other;

	*cut = false;
	if (p->tree_only || n == 0 || *s != '{')
		return 0;
	if ((q = grok_nd_tmpl_scan(p, u, u + n, &tok, &other, cut)) == NULL)
		return other ? grok_nd_fast_scan(p, u, n, max, fn, arg, rc) : 0;
	if ((size_t)(q - u) > max || tok.n >= 1024)
		return 0;
	p->objects++;
	p->seen_response = true;
	*rc = grok_nd_token_event(
	    &tok, p->tmpl_thinking, p->tmpl_header, fn, arg);
	return (size_t)(q - u);
}

static int
grok_nd_parse(
    struct grok_nd *p, const char *s, size_t n, grok_ev_fn *fn, void *arg)
{
	json_error_t jerr;
	json_t *o;
	bool cut;
	int rc;

	if (grok_nd_fast(p, s, n, n, fn, arg, &rc, &cut) == n)
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
	case GROK_ND_HELD:
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

/*
 * The first byte at or after q that grok_nd_inside acts on, or end. This
 * is the way through an object cut by a piece's end (it is read again
 * whole when its end comes), so strings, most of its bytes, go 16 at a
 * time: in one only a quote, backslash or newline counts. Outside, the
 * brackets too: x & 0xdf is '[' for '[' and '{' only, ']' for ']', '}'.
 */
static const unsigned char *
grok_nd_stop_end(const unsigned char *q, const unsigned char *end, bool in_str)
{
#ifdef __SSE2__
	__m128i v, stop, b;
	unsigned bits;

	while (end - q >= 16) {
		memcpy(&v, q, 16);
		stop = _mm_or_si128(
		    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
		        _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
		    _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
		if (!in_str) {
			b = _mm_and_si128(v, _mm_set1_epi8((char)0xdf));
			stop = _mm_or_si128(stop,
			    _mm_or_si128(_mm_cmpeq_epi8(b, _mm_set1_epi8('[')),
			        _mm_cmpeq_epi8(b, _mm_set1_epi8(']'))));
		}
		if ((bits = (unsigned)_mm_movemask_epi8(stop)) != 0)
			return q + __builtin_ctz(bits);
		q += 16;
	}
#else
	(void)in_str;
#endif
	while (q < end && !grok_nd_stop[*q])
		q++;
	return q;
}

/*
 * Take up pend, held unscanned (GROK_ND_HELD), as the bracket counter
 * would have left it: it holds the start of a template line (no newline,
 * no end), so every byte just moves the counter on.
 */
static void
grok_nd_unhold(struct grok_nd *p)
{
	size_t i;

	p->state = GROK_ND_OBJ;
	p->depth = 1;
	p->in_str = p->esc = false;
	p->scan = p->pend.len;
	for (i = 1; i < p->pend.len; i++)
		(void)grok_nd_inside(p, (unsigned char)p->pend.p[i]);
}

/*
 * The rest of a template line the last piece cut (GROK_ND_HELD): its
 * bytes up to the first newline (an object cannot hold one), at most max
 * in all, joined to pend and read at once. When that does not give the
 * object, pend goes to the bracket counter as if it had never been held
 * and the piece is read from its start. *ip: where the piece goes on.
 */
static int
grok_nd_held(struct grok_nd *p, const char *data, size_t len, grok_ev_fn *fn,
    void *arg, size_t *ip)
{
	const char *nl = memchr(data, '\n', len);
	size_t old = p->pend.len, k = nl != NULL ? (size_t)(nl - data) : len, n;
	bool cut;
	int rc = 0;

	*ip = 0;
	if (k > p->pend.max - old)
		k = p->pend.max - old;
	if (buf_append(&p->pend, data, k) == 0 &&
	    (n = grok_nd_fast(p, p->pend.p, p->pend.len, p->pend.max, fn, arg,
	         &rc, &cut)) != 0) {
		WP_ASSERT(n > old); /* what was held has no end */
		*ip = n - old;
		buf_reset(&p->pend);
		p->state = GROK_ND_IDLE;
		return rc;
	}
	buf_truncate(&p->pend, old);
	grok_nd_unhold(p);
	return 0;
}

int
grok_nd_feed(
    struct grok_nd *p, const char *data, size_t len, grok_ev_fn *fn, void *arg)
{
	size_t i = 0, n, start = 0; /* where the current object starts */
	enum grok_nd_step st;
	bool cut;
	int rc;

	if (p->state == GROK_ND_HELD &&
	    (rc = grok_nd_held(p, data, len, fn, arg, &i)) != 0)
		return rc;
	for (; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (p->state != GROK_ND_OBJ) {
			if (!grok_nd_outside(p, ch))
				continue;
			start = i;
			/* Most objects lie whole in the piece: one pass. */
			if ((n = grok_nd_fast(p, data + i, len - i, p->pend.max,
			         fn, arg, &rc, &cut)) != 0) {
				p->state = GROK_ND_IDLE;
				i += n - 1;
				if (rc != 0)
					return rc;
				continue;
			}
			if (cut && len - i <= p->pend.max) {
				/* The rest is a template line's start. */
				p->state = GROK_ND_HELD;
				break;
			}
			continue;
		}
		if (!p->esc) { /* most bytes change nothing: skip them */
			size_t j =
			    (size_t)(grok_nd_stop_end(
			                 (const unsigned char *)data + i,
			                 (const unsigned char *)data + len,
			                 p->in_str) -
			        (const unsigned char *)data);

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
	if ((p->state == GROK_ND_OBJ || p->state == GROK_ND_HELD) &&
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
	if (p->state == GROK_ND_OBJ || p->state == GROK_ND_HELD ||
	    p->state == GROK_ND_FIELD)
		p->malformed++;
	buf_reset(&p->pend);
	p->state = GROK_ND_IDLE;
	return 0;
}
