/*
 * OpenAI chat output (see oai_out.h): one answer as chat.completion.chunk
 * frames or one chat.completion object. Worker only; pure (no I/O, no
 * locks, no globals but constant tables).
 *
 * Every piece of text takes the same road in both modes, so the
 * non-stream body is exactly the concatenation of the stream's deltas:
 * tag filter (per source) -> UTF-8 repair (per source, carrying a split
 * sequence to the next piece) -> reasoning format (<think> markup) ->
 * a frame (stream) or the accumulators (non-stream).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "err.h"
#include "oai_out.h"
#include "util.h"

/* The two sources of text; index of oai_out.carry/ncarry. */
enum oai_src { OAI_SRC_ANSWER, OAI_SRC_REASON };

/* The two places text goes in the answer. */
enum oai_chan { OAI_CHAN_CONTENT, OAI_CHAN_REASONING };

#define OAI_THINK_OPEN  "<think>\n"
#define OAI_THINK_CLOSE "\n</think>\n"
#define OAI_ID_PREFIX   "chatcmpl-"
#define OAI_ID_RAND     24
_Static_assert(
    sizeof(OAI_ID_PREFIX) - 1 + OAI_ID_RAND < sizeof(((struct oai_out *)0)->id),
    "the id fits in oai_out.id");

/* The hold of a tag filter: "</" + the longest name + slack. */
#define OAI_HOLD_MAX (OAI_TAG_LEN + 16)
/* Room for what the repair adds: at most 3 bytes out per byte in. */
#define OAI_SLACK 64

const char *const oai_reasoning_name[] = {
	[OAI_RF_THINK_TAGS] = "think_tags",
	[OAI_RF_REASONING_CONTENT] = "reasoning_content",
	[OAI_RF_HIDDEN] = "hidden",
};

int
oai_reasoning_parse(const char *s, enum oai_reasoning *rf)
{
	size_t i;

	if (s == NULL)
		return WP_EINVAL;
	for (i = 0; i < ARRAY_LEN(oai_reasoning_name); i++) {
		if (strcmp(s, oai_reasoning_name[i]) == 0) {
			*rf = (enum oai_reasoning)i;
			return 0;
		}
	}
	return WP_EINVAL;
}

uint32_t
oai_count_tokens(const char *text, size_t len)
{
	uint64_t n;

	(void)text; /* the estimate needs only the length */
	n = ((uint64_t)len + 3) / 4;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* ---- the tag filter ---------------------------------------------------- */

static bool
oai_tagf_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

/* What may follow a tag's name: a blank, ">" or "/". */
static bool
oai_tagf_delim(char c)
{
	return oai_tagf_blank(c) || c == '>' || c == '/';
}

static bool
oai_tagf_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len >= OAI_TAG_LEN)
		return false;
	for (i = 0; i < len; i++) {
		if (oai_tagf_delim(s[i]) || s[i] == '<' || s[i] == '=' ||
		    s[i] == '"' || s[i] == '\'' || s[i] == ',')
			return false;
	}
	return true;
}

void
oai_tagf_init(struct oai_tagf *f, const char *tags)
{
	const char *p = tags, *next, *e;
	size_t n;

	memset(f, 0, sizeof(*f));
	buf_init(&f->hold, OAI_HOLD_MAX);
	f->inside = -1;
	f->hdr = -1;
	for (; p != NULL && *p != '\0' && f->ntags < OAI_TAGS_MAX; p = next) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		next = *e == ',' ? e + 1 : e;
		while (p < e && oai_tagf_blank(*p))
			p++;
		while (e > p && oai_tagf_blank(e[-1]))
			e--;
		n = (size_t)(e - p);
		if (!oai_tagf_name_ok(p, n))
			continue;
		memcpy(f->tags[f->ntags], p, n);
		f->tags[f->ntags][n] = '\0';
		f->ntags++;
	}
}

void
oai_tagf_fini(struct oai_tagf *f)
{
	buf_fini(&f->hold);
}

static void
oai_tagf_reset(struct oai_tagf *f)
{
	buf_reset(&f->hold);
	f->inside = -1;
	f->depth = 0;
	f->hdr = -1;
}

/* A whole tag was read: open, close or self-closing. */
static void
oai_tagf_apply(struct oai_tagf *f, int idx, bool close, bool self)
{
	if (f->inside < 0) {
		if (!close && !self) {
			f->inside = idx;
			f->depth = 1;
		}
		return; /* a stray close or a self-closing tag: just removed */
	}
	if (close) {
		if (--f->depth == 0)
			f->inside = -1;
	} else if (!self && f->depth < UINT32_MAX) {
		f->depth++;
	}
}

/*
 * In "<name ...": skip to the ">" that ends it (not one inside a quoted
 * attribute value). Returns the bytes consumed.
 */
static size_t
oai_tagf_hdr(struct oai_tagf *f, const char *s, size_t len)
{
	size_t i;
	char c;

	for (i = 0; i < len; i++) {
		c = s[i];
		if (f->hdr_quote != 0) {
			if (c == f->hdr_quote)
				f->hdr_quote = 0;
			continue;
		}
		if (c == '>') {
			oai_tagf_apply(
			    f, f->hdr, f->hdr_close, f->hdr_last == '/');
			f->hdr = -1;
			return i + 1;
		}
		if ((c == '"' || c == '\'') && f->hdr_last == '=')
			f->hdr_quote = c;
		else if (!oai_tagf_blank(c))
			f->hdr_last = c;
	}
	return len;
}

/*
 * Is name[0..len) a prefix of a tag we look for (exact: *full set to its
 * index)? Inside a tag, only that tag's name matters.
 */
static bool
oai_tagf_prefix(
    const struct oai_tagf *f, const char *name, size_t len, int *full)
{
	unsigned i, lo = 0, hi = f->ntags;
	bool any = false;

	*full = -1;
	if (f->inside >= 0) {
		lo = (unsigned)f->inside;
		hi = lo + 1;
	}
	for (i = lo; i < hi; i++) {
		if (strncmp(f->tags[i], name, len) != 0)
			continue;
		any = true;
		if (f->tags[i][len] == '\0')
			*full = (int)i;
	}
	return any;
}

/*
 * One byte after a held "<...". Returns 1 when c was used, 0 when the
 * hold was decided to be text and c must be looked at again as text,
 * or a buf error.
 */
static int
oai_tagf_lt(struct oai_tagf *f, char c, struct buf *out)
{
	const char *body = f->hold.p + 1;
	size_t blen = f->hold.len - 1;
	bool close = blen > 0 && body[0] == '/';
	const char *name = body + (close ? 1 : 0);
	size_t nlen = blen - (close ? 1 : 0);
	int full, rc;

	if (blen == 0 && c == '/')
		return buf_append(&f->hold, &c, 1) == 0 ? 1 : WP_ETOOBIG;
	if (nlen > 0 && oai_tagf_delim(c) &&
	    oai_tagf_prefix(f, name, nlen, &full) && full >= 0) {
		buf_reset(&f->hold);
		f->hdr_close = close;
		f->hdr_quote = 0;
		f->hdr_last = c;
		if (c == '>')
			oai_tagf_apply(f, full, close, false);
		else
			f->hdr = full;
		return 1;
	}
	if (c != '\0' && nlen + 1 < OAI_TAG_LEN) {
		char cand[OAI_TAG_LEN];

		/* c != NUL: strncmp would stop at it and match a shorter name
		 */
		memcpy(cand, name, nlen);
		cand[nlen] = c;
		if (oai_tagf_prefix(f, cand, nlen + 1, &full))
			return buf_append(&f->hold, &c, 1) == 0 ? 1
			                                        : WP_ETOOBIG;
	}
	/* Not one of ours: the held bytes are text. */
	if (f->inside < 0 && (rc = buf_append(out, f->hold.p, f->hold.len)))
		return rc;
	buf_reset(&f->hold);
	return 0;
}

int
oai_tagf_feed(struct oai_tagf *f, const char *in, size_t len, struct buf *out)
{
	const char *lt;
	size_t i = 0, n;
	int rc;

	if (f->ntags == 0)
		return buf_append(out, in, len);
	while (i < len) {
		if (f->hdr >= 0) {
			i += oai_tagf_hdr(f, in + i, len - i);
			continue;
		}
		if (f->hold.len > 0) {
			if ((rc = oai_tagf_lt(f, in[i], out)) < 0)
				return rc;
			i += (size_t)rc;
			continue;
		}
		lt = memchr(in + i, '<', len - i);
		n = lt != NULL ? (size_t)(lt - (in + i)) : len - i;
		if (f->inside < 0 && n > 0 &&
		    (rc = buf_append(out, in + i, n)) != 0)
			return rc;
		i += n;
		if (lt != NULL) {
			if ((rc = buf_append(&f->hold, "<", 1)) != 0)
				return rc;
			i++;
		}
	}
	return 0;
}

int
oai_tagf_flush(struct oai_tagf *f, struct buf *out)
{
	int rc = 0;

	if (f->hdr < 0 && f->inside < 0 && f->hold.len > 0)
		rc = buf_append(out, f->hold.p, f->hold.len);
	oai_tagf_reset(f);
	return rc;
}

/* ---- UTF-8 repair ------------------------------------------------------ */

/*
 * How many bytes of s[0..len) form a valid UTF-8 sequence (the rules
 * jansson checks: no overlongs, surrogates or values past U+10FFFF).
 * 0 when s[0] starts none; when the sequence is cut off by the end of s
 * but valid so far, *cut is set and the return is 0.
 */
static size_t
oai_u8_seq(const unsigned char *s, size_t len, bool *cut)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*cut = false;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (i = 1; i < need; i++) {
		if (i == len) {
			*cut = true;
			return 0;
		}
		if (s[i] < lo || s[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

/*
 * Valid UTF-8 of s into out, one U+FFFD for each byte that starts no
 * valid sequence. Unless final, a sequence cut off by the end is not
 * written: its length goes to *keep.
 */
static int
oai_u8_repair(
    const char *s, size_t len, bool final, struct buf *out, size_t *keep)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0, n;
	bool cut;
	int rc;

	*keep = 0;
	while (i + run < len) {
		if ((n = oai_u8_seq(u + i + run, len - i - run, &cut)) > 0) {
			run += n;
			continue;
		}
		if ((rc = buf_append(out, s + i, run)) != 0)
			return rc;
		i += run;
		run = 0;
		if (cut && !final) {
			*keep = len - i;
			return 0;
		}
		if ((rc = buf_append(out, "\xef\xbf\xbd", 3)) != 0)
			return rc;
		i++;
	}
	return buf_append(out, s + i, run);
}

/* ---- frames ------------------------------------------------------------ */

struct oai_dump {
	struct buf *b;
	int rc;
};

static int
oai_dump_cb(const char *buffer, size_t size, void *data)
{
	struct oai_dump *d = data;

	/*
	 * Once a piece did not fit, refuse the rest too: jansson does not
	 * stop at every failed piece, and a smaller one after it would fit,
	 * leaving a frame with a hole in it.
	 */
	if (d->rc != 0 || (d->rc = buf_append(d->b, buffer, size)) != 0)
		return -1;
	return 0;
}

/* A JSON string of s, repaired first (text from elsewhere: messages). */
static json_t *
oai_jstr_fix(const char *s)
{
	struct buf t;
	json_t *j = NULL;
	size_t keep, len = strlen(s);

	buf_init(&t, len * 3 + OAI_SLACK);
	if (oai_u8_repair(s, len, true, &t, &keep) == 0)
		j = json_stringn(t.p != NULL ? t.p : "", t.len);
	buf_fini(&t);
	return j;
}

/*
 * Append "data: <j>\n\n" (or just j when sse is false) to out, all or
 * nothing. Takes j's reference.
 */
static int
oai_put_json(json_t *j, bool sse, struct buf *out)
{
	struct oai_dump d = { out, 0 };
	size_t mark = out->len;
	int rc;

	if (j == NULL)
		return WP_ENOMEM;
	if (sse && (rc = buf_append(out, "data: ", 6)) != 0)
		goto out;
	if (json_dump_callback(j, oai_dump_cb, &d, JSON_COMPACT) != 0 ||
	    d.rc != 0) {
		rc = d.rc != 0 ? d.rc : WP_ENOMEM;
		goto out;
	}
	rc = sse ? buf_append(out, "\n\n", 2) : 0;
out:
	json_decref(j);
	if (rc != 0)
		buf_truncate(out, mark);
	return rc;
}

static json_t *
oai_usage(const struct oai_out *o)
{
	return json_pack("{s:I, s:I, s:I}", "prompt_tokens",
	    (json_int_t)o->prompt_tokens, "completion_tokens",
	    (json_int_t)o->completion_tokens, "total_tokens",
	    (json_int_t)o->prompt_tokens + (json_int_t)o->completion_tokens);
}

/* The fields every object of this answer starts with. */
static json_t *
oai_head(const struct oai_out *o, const char *object)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:n}", "id", o->id, "object",
	    object, "created", (json_int_t)o->created, "model", o->model,
	    "system_fingerprint");
}

/*
 * One chunk: delta (taken), finish_reason (NULL: null), and usage when
 * with_usage. Appended to out as a frame.
 */
static int
oai_chunk(const struct oai_out *o, json_t *delta, const char *finish,
    bool with_usage, struct buf *out)
{
	json_t *j, *ch;

	if (delta == NULL ||
	    (j = oai_head(o, "chat.completion.chunk")) == NULL) {
		json_decref(delta);
		return WP_ENOMEM;
	}
	ch = json_pack("[{s:i, s:o, s:n, s:s?}]", "index", 0, "delta", delta,
	    "logprobs", "finish_reason", finish);
	if (ch == NULL || json_object_set_new(j, "choices", ch) != 0 ||
	    (with_usage &&
	        json_object_set_new(j, "usage", oai_usage(o)) != 0)) {
		json_decref(j);
		return WP_ENOMEM;
	}
	return oai_put_json(j, true, out);
}

/* ---- the answer -------------------------------------------------------- */

int
oai_out_init(struct oai_out *o, const char *model, bool stream,
    bool include_usage, enum oai_reasoning rf, const char *filtered_tags,
    uint32_t prompt_tokens, size_t max_bytes)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t pre = sizeof(OAI_ID_PREFIX) - 1;

	memset(o, 0, sizeof(*o));
	oai_tagf_init(&o->tf_content, filtered_tags);
	oai_tagf_init(&o->tf_reason, filtered_tags);
	buf_init(&o->content, max_bytes);
	buf_init(&o->reasoning, max_bytes);
	buf_init(&o->raw, 0);
	buf_init(&o->txt, 0);
	buf_init(&o->rtxt, 0);
	buf_init(&o->head, 1024); /* id, a model name of 63 escaped */
	if (util_strlcpy(o->model, model, sizeof(o->model)) != 0)
		return WP_EINVAL;
	memcpy(o->id, OAI_ID_PREFIX, pre);
	util_rand_chars(o->id + pre, OAI_ID_RAND, alnum);
	o->created = util_now_ms() / 1000;
	o->stream = stream;
	o->include_usage = include_usage;
	o->rf = rf;
	o->prompt_tokens = prompt_tokens;
	return 0;
}

void
oai_out_fini(struct oai_out *o)
{
	oai_tagf_fini(&o->tf_content);
	oai_tagf_fini(&o->tf_reason);
	buf_fini(&o->content);
	buf_fini(&o->reasoning);
	buf_fini(&o->raw);
	buf_fini(&o->txt);
	buf_fini(&o->rtxt);
	buf_fini(&o->head);
}

/*
 * Whether a piece passes the filter and the repair unchanged: ASCII with
 * no "<", and nothing held from the last piece (a tag's name, the head
 * of a UTF-8 sequence, the inside of a dropped tag). Most are: a token of
 * English text.
 */
static bool
oai_clean_plain(const struct oai_out *o, enum oai_src src,
    const struct oai_tagf *tf, const char *text, size_t len)
{
	unsigned char any = 0;
	size_t i;

	if (o->ncarry[src] != 0 ||
	    (tf->ntags != 0 &&
	        (tf->hdr >= 0 || tf->hold.len > 0 || tf->inside >= 0)))
		return false;
	for (i = 0; i < len; i++)
		any |= (unsigned char)text[i] | (text[i] == '<' ? 0x80 : 0);
	return any < 0x80;
}

/*
 * Filter and repair a piece of one source into dst (reset first). final:
 * the source ends; release what the filter and the carry hold.
 */
static int
oai_clean(struct oai_out *o, enum oai_src src, const char *text, size_t len,
    bool final, struct buf *dst)
{
	struct oai_tagf *tf =
	    src == OAI_SRC_ANSWER ? &o->tf_content : &o->tf_reason;
	size_t keep;
	int rc;

	if (len > (SIZE_MAX - OAI_HOLD_MAX - OAI_SLACK) / 3)
		return WP_ETOOBIG;
	if (!final && oai_clean_plain(o, src, tf, text, len)) {
		/* What the filter and the repair would give, in one copy. */
		buf_reset(dst);
		dst->max = len * 3 + OAI_SLACK;
		return buf_append(dst, text, len);
	}
	buf_reset(&o->raw);
	o->raw.max = len + OAI_HOLD_MAX + OAI_SLACK;
	if ((rc = buf_append(&o->raw, o->carry[src], o->ncarry[src])) != 0)
		return rc;
	o->ncarry[src] = 0;
	if (len > 0 && (rc = oai_tagf_feed(tf, text, len, &o->raw)) != 0)
		return rc;
	if (final && (rc = oai_tagf_flush(tf, &o->raw)) != 0)
		return rc;
	buf_reset(dst);
	dst->max = o->raw.len * 3 + OAI_SLACK;
	if (o->raw.len == 0)
		return 0;
	if ((rc = oai_u8_repair(o->raw.p, o->raw.len, final, dst, &keep)) != 0)
		return rc;
	memcpy(o->carry[src], o->raw.p + o->raw.len - keep, keep);
	o->ncarry[src] = (uint8_t)keep;
	return 0;
}

/* Put s in front of what t holds (t has room: its max has slack). */
static int
oai_prepend(struct buf *t, const char *s)
{
	size_t n = strlen(s), len = t->len;
	int rc;

	if ((rc = buf_append(t, s, n)) != 0)
		return rc;
	memmove(t->p + n, t->p, len);
	memcpy(t->p, s, n);
	return 0;
}

/*
 * oai_head's fields as text, for the objects written by hand:
 * {"id":..,"object":..,"created":..,"model":..,"system_fingerprint":null,
 */
static int
oai_head_text(const struct oai_out *o, const char *object, struct buf *b)
{
	int rc;

	if ((rc = buf_puts(b, "{\"id\":\"")) != 0 ||
	    (rc = buf_puts(b, o->id)) != 0 ||
	    (rc = buf_puts(b, "\",\"object\":\"")) != 0 ||
	    (rc = buf_puts(b, object)) != 0 ||
	    (rc = buf_puts(b, "\",\"created\":")) != 0 ||
	    (rc = buf_put_i64(b, o->created)) != 0 ||
	    (rc = buf_puts(b, ",\"model\":")) != 0 ||
	    (rc = buf_json_str(b, o->model, strlen(o->model))) != 0)
		return rc;
	return buf_puts(b, ",\"system_fingerprint\":null,");
}

/*
 * The frame oai_chunk makes for a delta of text, written out by hand: it
 * goes out for every piece of a stream, and building and dumping a tree
 * for each was most of the output side's cost. key is the member with
 * its quotes and colon. All or nothing at out's cap, like oai_put_json.
 */
static int
oai_put_frame(
    struct oai_out *o, const char *key, const struct buf *t, struct buf *out)
{
	size_t mark = out->len;
	int rc;

	if (o->head.len == 0 &&
	    ((rc = buf_puts(&o->head, "data: ")) != 0 ||
	        (rc = oai_head_text(o, "chat.completion.chunk", &o->head)) !=
	            0 ||
	        (rc = buf_puts(&o->head,
	             "\"choices\":[{\"index\":0,\"delta\":{")) != 0)) {
		buf_reset(&o->head);
		return rc;
	}
	if ((rc = buf_append(out, o->head.p, o->head.len)) != 0 ||
	    (!o->sent_role &&
	        (rc = buf_puts(out, "\"role\":\"assistant\",")) != 0) ||
	    (rc = buf_puts(out, key)) != 0 ||
	    (rc = buf_json_str(out, t->p, t->len)) != 0 ||
	    (rc = buf_puts(out,
	         "},\"logprobs\":null,\"finish_reason\":null}]}\n\n")) != 0)
		buf_truncate(out, mark);
	return rc;
}

/* Send or keep t (non-empty, valid UTF-8) as content or reasoning. */
static int
oai_put(
    struct oai_out *o, enum oai_chan chan, const struct buf *t, struct buf *out)
{
	const char *key = chan == OAI_CHAN_CONTENT ? "\"content\":"
	                                           : "\"reasoning_content\":";
	int rc;

	if (!o->stream) {
		rc = buf_append(
		    chan == OAI_CHAN_CONTENT ? &o->content : &o->reasoning,
		    t->p, t->len);
	} else if ((rc = oai_put_frame(o, key, t, out)) == 0) {
		o->sent_role = true;
	}
	if (rc == 0) {
		o->out_bytes += t->len;
		o->completion_tokens = o->out_bytes > UINT32_MAX * 4ULL
		    ? UINT32_MAX
		    : oai_count_tokens(NULL, (size_t)o->out_bytes);
	}
	return rc;
}

/* Cleaned reasoning text t (non-empty), in the chosen format. */
static int
oai_emit_reason(struct oai_out *o, struct buf *t, struct buf *out)
{
	int rc;

	switch (o->rf) {
	case OAI_RF_THINK_TAGS:
		if (!o->in_think && (rc = oai_prepend(t, OAI_THINK_OPEN)) != 0)
			return rc;
		if ((rc = oai_put(o, OAI_CHAN_CONTENT, t, out)) == 0)
			o->in_think = true;
		return rc;
	case OAI_RF_REASONING_CONTENT:
		return oai_put(o, OAI_CHAN_REASONING, t, out);
	case OAI_RF_HIDDEN:
		return 0;
	}
	return WP_EINVAL;
}

/* Cleaned answer text t (non-empty): closes an open think block. */
static int
oai_emit_answer(struct oai_out *o, struct buf *t, struct buf *out)
{
	int rc;

	if (o->in_think && (rc = oai_prepend(t, OAI_THINK_CLOSE)) != 0)
		return rc;
	if ((rc = oai_put(o, OAI_CHAN_CONTENT, t, out)) == 0) {
		o->in_think = false;
		o->think_done = true;
	}
	return rc;
}

/*
 * The reasoning is over (the answer started, or the end): release what
 * its filter held back, before anything of the answer.
 */
static int
oai_reason_end(struct oai_out *o, struct buf *out)
{
	int rc;

	if (o->think_done || o->rf == OAI_RF_HIDDEN)
		return 0;
	if ((rc = oai_clean(o, OAI_SRC_REASON, NULL, 0, true, &o->rtxt)) != 0)
		return rc;
	return o->rtxt.len > 0 ? oai_emit_reason(o, &o->rtxt, out) : 0;
}

int
oai_out_text(struct oai_out *o, const char *text, size_t len, bool thinking,
    struct buf *out)
{
	int rc;

	if (o->done)
		return WP_EINVAL;
	if (thinking) {
		/*
		 * Hidden, or late in think_tags mode: a <think> block can
		 * only lead the content. The reasoning_content field has no
		 * such order, so late reasoning (image progress after the
		 * answer's first words) still goes there.
		 */
		if (o->rf == OAI_RF_HIDDEN ||
		    (o->think_done && o->rf == OAI_RF_THINK_TAGS))
			return 0;
		if ((rc = oai_clean(
		         o, OAI_SRC_REASON, text, len, false, &o->txt)) != 0)
			return rc;
		return o->txt.len > 0 ? oai_emit_reason(o, &o->txt, out) : 0;
	}
	if ((rc = oai_clean(o, OAI_SRC_ANSWER, text, len, false, &o->txt)) != 0)
		return rc;
	if (o->txt.len == 0)
		return 0;
	if ((rc = oai_reason_end(o, out)) != 0)
		return rc;
	return oai_emit_answer(o, &o->txt, out);
}

/* Release everything held and close an open think block. */
static int
oai_drain(struct oai_out *o, struct buf *out)
{
	int rc;

	if ((rc = oai_reason_end(o, out)) != 0)
		return rc;
	if ((rc = oai_clean(o, OAI_SRC_ANSWER, NULL, 0, true, &o->txt)) != 0)
		return rc;
	if (o->txt.len > 0 && (rc = oai_emit_answer(o, &o->txt, out)) != 0)
		return rc;
	if (o->in_think) {
		buf_reset(&o->txt);
		o->txt.max = OAI_SLACK;
		if ((rc = buf_puts(&o->txt, OAI_THINK_CLOSE)) != 0 ||
		    (rc = oai_put(o, OAI_CHAN_CONTENT, &o->txt, out)) != 0)
			return rc;
		o->in_think = false;
	}
	return 0;
}

static int
oai_finish_stream(struct oai_out *o, const char *finish, struct buf *out)
{
	json_t *delta, *j;
	int rc;

	/* openai-node's stream helper needs a role once, even if empty. */
	delta = o->sent_role
	    ? json_object()
	    : json_pack("{s:s, s:s}", "role", "assistant", "content", "");
	if ((rc = oai_chunk(o, delta, finish, true, out)) != 0)
		return rc;
	o->sent_role = true;
	if (o->include_usage) {
		if ((j = oai_head(o, "chat.completion.chunk")) == NULL ||
		    json_object_set_new(j, "choices", json_array()) != 0 ||
		    json_object_set_new(j, "usage", oai_usage(o)) != 0) {
			json_decref(j);
			return WP_ENOMEM;
		}
		if ((rc = oai_put_json(j, true, out)) != 0)
			return rc;
	}
	return buf_puts(out, "data: [DONE]\n\n");
}

/* The chat.completion object, written out like oai_put_frame. */
static int
oai_finish_body(struct oai_out *o, const char *finish, struct buf *out)
{
	size_t mark = out->len;
	int rc;

	if ((rc = oai_head_text(o, "chat.completion", out)) != 0 ||
	    (rc = buf_puts(out,
	         "\"choices\":[{\"index\":0,"
	         "\"message\":{\"role\":\"assistant\",\"content\":")) != 0 ||
	    (rc = buf_json_str(out, o->content.p != NULL ? o->content.p : "",
	         o->content.len)) != 0 ||
	    (o->reasoning.len > 0 &&
	        ((rc = buf_puts(out, ",\"reasoning_content\":")) != 0 ||
	            (rc = buf_json_str(
	                 out, o->reasoning.p, o->reasoning.len)) != 0)) ||
	    (rc = buf_puts(out, "},\"logprobs\":null,\"finish_reason\":\"")) !=
	        0 ||
	    (rc = buf_puts(out, finish)) != 0 ||
	    (rc = buf_puts(out, "\"}],\"usage\":{\"prompt_tokens\":")) != 0 ||
	    (rc = buf_put_i64(out, o->prompt_tokens)) != 0 ||
	    (rc = buf_puts(out, ",\"completion_tokens\":")) != 0 ||
	    (rc = buf_put_i64(out, o->completion_tokens)) != 0 ||
	    (rc = buf_puts(out, ",\"total_tokens\":")) != 0 ||
	    (rc = buf_put_i64(
	         out, (int64_t)o->prompt_tokens + o->completion_tokens)) != 0 ||
	    (rc = buf_puts(out, "}}")) != 0)
		buf_truncate(out, mark);
	return rc;
}

int
oai_out_finish(struct oai_out *o, const char *finish_reason, struct buf *out)
{
	int rc;

	if (finish_reason == NULL)
		finish_reason = "stop";
	if (o->done ||
	    (strcmp(finish_reason, "stop") != 0 &&
	        strcmp(finish_reason, "length") != 0))
		return WP_EINVAL;
	if ((rc = oai_drain(o, out)) != 0)
		return rc;
	rc = o->stream ? oai_finish_stream(o, finish_reason, out)
	               : oai_finish_body(o, finish_reason, out);
	if (rc == 0)
		o->done = true;
	return rc;
}

int
oai_out_error(struct oai_out *o, const char *message, const char *type,
    const char *code, struct buf *out)
{
	json_t *j;
	int rc;

	if (!o->stream || o->done)
		return WP_EINVAL;
	j = json_pack("{s:{s:o, s:s, s:n, s:o?}}", "error", "message",
	    oai_jstr_fix(message != NULL ? message : ""), "type",
	    type != NULL ? type : "server_error", "param", "code",
	    code != NULL ? oai_jstr_fix(code) : NULL);
	if ((rc = oai_put_json(j, true, out)) != 0)
		return rc;
	if ((rc = buf_puts(out, "data: [DONE]\n\n")) == 0)
		o->done = true;
	return rc;
}
