/*
 * Fuzz target "nd": grok.com's answer stream through every pure step of
 * a chat request. Arbitrary bytes go to the NDJSON translator
 * (grok_nd_feed, grok_nd_end) in pieces whose sizes come from the input;
 * its events go on, the way worker/wrk_chat.c hands them on, into the
 * OpenAI output (oai_out_*) in stream and non-stream mode at once; the
 * same bytes also go through the tag filter (oai_tagf_*) alone.
 *
 * Invariants checked:
 * - the events, and the malformed/objects counts, do not depend on how
 *   the body was cut into pieces, nor on whether the shallow scan or
 *   jansson read an object (tree_only); every event is well-formed;
 * - the SSE output is whole `data: ...\n\n` frames, each valid JSON
 *   without a raw line break, one role, no text after finish_reason, the
 *   usage chunk when asked, an error only at the end, [DONE] last;
 * - the non-stream object parses, and its content and reasoning_content
 *   are exactly the concatenation of the stream's deltas, with the same
 *   usage; reasoning_content appears only in that reasoning format;
 * - the tag filter's output does not depend on the pieces, only ever
 *   drops bytes, and passes text through untouched when it has no tag
 *   or no "<".
 *
 * Input: byte 0 options (ND_O_*), byte 1 the number of piece sizes (low
 * four bits; 0 = one byte at a time) and more options (ND_P_*), then the
 * piece sizes (used in turn; 0 = the rest), then the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "grok.h"
#include "oai_out.h"

#include "fuzz.h"

const char fuzz_name[] = "nd";

#define ND_O_LINE     0x03         /* max_line: nd_line_max[] */
#define ND_O_RF_SHIFT 2            /* 2 bits: reasoning format (3 wraps to 0) */
#define ND_O_USAGE    0x10         /* stream_options.include_usage */
#define ND_O_TAGS_LO  5            /* 2 bits: low bits of the nd_tags[] index */
#define ND_O_CUT      0x80         /* a max_tokens small enough to cut */
#define ND_P_NSPLIT   0x0f         /* piece sizes that follow */
#define ND_P_SMALL    0x10         /* tiny output caps: WP_ETOOBIG paths */
#define ND_P_TAGS_HI  0x20         /* high bit of the nd_tags[] index */
#define ND_BIG        (256u << 20) /* caps that fuzz inputs never reach */
#define ND_MEDIA_MAX  8            /* CHAT_MEDIA_MAX */
#define ND_FAIL_MSG   256          /* sizeof(wrk_chat.fail_msg) */
#define ND_SMALL_SSE  512
#define ND_SMALL_ANSW 64

static const size_t nd_line_max[] = { 64, 512, 8192, 4u << 20 };

static bool nd_debug; /* FUZZ_DEBUG set: print every SSE frame */

/* filtered_tags values, the config's and the corner cases of the parser. */
static const char *const nd_tags[] = {
	NULL,
	"xaiartifact",
	"xai:tool_usage_card, grok:render ,xaiartifact",
	"think",
	"a,ab,abc",
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu,"
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv,b",
	"x y,<a>,a=b,\"q\",,  ,ok, a/b ,'s'",
	"t0,t1,t2,t3,t4,t5,t6,t7,t8,t9,t10,t11,t12,t13,t14,t15,t16",
};

/* The piece sizes of one input. */
struct nd_split {
	const uint8_t *len;
	size_t n;
};

/* What wrk_chat.c keeps of one answer, for the output side. */
struct nd_out {
	struct oai_out s, ns; /* stream and non-stream */
	struct buf sse, body;
	enum oai_reasoning rf;
	bool include_usage, small;
	uint32_t max_tokens;
	bool committed, saw_text, cut, failed, error;
	char *final_text;
	char fail_msg[ND_FAIL_MSG];
	int img_progress[ND_MEDIA_MAX], video_progress;
};

/* One pass of the body through the translator. */
struct nd_run {
	struct grok_nd nd;
	struct buf log; /* every event, serialised */
	struct nd_out out;
};

/* What the stream's frames added up to. */
struct nd_sum {
	struct buf content, reasoning;
	bool role, finished, usage_chunk, error, done;
	json_int_t completion_tokens;
};

/* ---- the output side, as wrk_chat.c drives it ---------------------------- */

static int
nd_text(struct nd_out *o, const char *text, size_t len, bool thinking)
{
	int rc, rc2;

	if (len == 0)
		return 0;
	o->committed = true;
	rc = oai_out_text(&o->s, text, len, thinking, &o->sse);
	rc2 = oai_out_text(&o->ns, text, len, thinking, &o->body);
	FUZZ_CHECK(o->body.len == 0); /* non-stream only accumulates */
	if (!o->small)
		FUZZ_CHECK(rc == 0 && rc2 == 0);
	FUZZ_CHECK(rc == 0 || rc == WP_ETOOBIG);
	FUZZ_CHECK(rc2 == 0 || rc2 == WP_ETOOBIG);
	if (rc != 0 || rc2 != 0) {
		o->failed = true; /* CHAT_F_SLOW */
		return 1;
	}
	FUZZ_CHECK(o->s.completion_tokens == o->ns.completion_tokens);
	if (o->max_tokens != 0 && o->s.completion_tokens >= o->max_tokens) {
		o->cut = true;
		return 1;
	}
	return 0;
}

/* chat_search: a hit as a Markdown line inside the reasoning. */
static int
nd_search(struct nd_out *o, const struct grok_ev *ev)
{
	char line[1024];
	size_t i, n;
	int len;

	len = snprintf(line, sizeof(line), "\n- [%s](%s", ev->title, ev->url);
	if (len < 0 || (size_t)len >= sizeof(line) - 4)
		return 0;
	n = (size_t)len;
	if (ev->preview[0] != '\0') {
		line[n++] = ' ';
		line[n++] = '"';
		for (i = 0; ev->preview[i] != '\0' && n < sizeof(line) - 4;
		     i++) {
			if (ev->preview[i] == '\n' || ev->preview[i] == '\r')
				continue;
			line[n++] =
			    ev->preview[i] == '"' ? '\'' : ev->preview[i];
		}
		line[n++] = '"';
	}
	line[n++] = ')';
	line[n++] = '\n';
	return nd_text(o, line, n, true);
}

/* chat_progress */
static int
nd_progress(struct nd_out *o, const struct grok_ev *ev)
{
	int *last = ev->kind == GROK_EV_VIDEO_PROGRESS ? &o->video_progress
	    : ev->index >= 0 && ev->index < ND_MEDIA_MAX
	    ? &o->img_progress[ev->index]
	    : NULL;
	char line[96];
	int n;

	if (last == NULL || ev->progress <= *last)
		return 0;
	*last = ev->progress;
	if (ev->kind == GROK_EV_VIDEO_PROGRESS)
		n = snprintf(line, sizeof(line), "Generating video: %d%%\n",
		    ev->progress);
	else
		n = snprintf(line, sizeof(line), "Generating image %d: %d%%\n",
		    ev->index + 1, ev->progress);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return 0;
	return nd_text(o, line, (size_t)n, true);
}

/* chat_on_event, less the media downloads. */
static int
nd_deliver(struct nd_out *o, const struct grok_ev *ev)
{
	char hdr[512];
	int n;

	switch (ev->kind) {
	case GROK_EV_TOKEN:
		o->saw_text = true;
		if (ev->header) {
			n = snprintf(hdr, sizeof(hdr), "\n\n%s\n\n", ev->text);
			if (n > 0 && (size_t)n < sizeof(hdr))
				return nd_text(o, hdr, (size_t)n, ev->thinking);
		}
		return nd_text(o, ev->text, ev->len, ev->thinking);
	case GROK_EV_SEARCH:
		return nd_search(o, ev);
	case GROK_EV_FINAL:
		o->committed = true;
		if (!o->saw_text && ev->len > 0 && o->final_text == NULL) {
			o->final_text = strdup(ev->text);
			FUZZ_CHECK(o->final_text != NULL);
		}
		return 0;
	case GROK_EV_ERROR:
		(void)snprintf(o->fail_msg, sizeof(o->fail_msg), "%s",
		    ev->text); /* cut like wrk_chat.c cuts it */
		o->error = true;
		return 1;
	case GROK_EV_IMAGE_PROGRESS:
	case GROK_EV_VIDEO_PROGRESS:
		return nd_progress(o, ev);
	case GROK_EV_IMAGES:
	case GROK_EV_VIDEO:
		o->committed = true;
		return 0;
	}
	fuzz_fail(__FILE__, __LINE__, "an event kind outside the enum");
}

/* ---- the translator side ------------------------------------------------- */

static void
nd_log_str(struct buf *log, const char *s, size_t n)
{
	FUZZ_CHECK(s != NULL);
	FUZZ_CHECK(buf_printf(log, "%zu:", n) == 0);
	FUZZ_CHECK(buf_append(log, s, n) == 0);
}

/* Check one event's promises (grok.h) and write it down. */
static void
nd_log_event(struct buf *log, const struct grok_ev *ev)
{
	size_t i;

	FUZZ_CHECK(ev->kind >= GROK_EV_TOKEN && ev->kind <= GROK_EV_ERROR);
	FUZZ_CHECK(ev->text != NULL && ev->text[ev->len] == '\0');
	FUZZ_CHECK(ev->title != NULL && ev->url != NULL && ev->preview != NULL);
	FUZZ_CHECK((ev->urls == NULL) == (ev->nurls == 0));
	if (ev->kind == GROK_EV_TOKEN)
		FUZZ_CHECK(ev->len > 0);
	if (ev->kind == GROK_EV_ERROR)
		FUZZ_CHECK(ev->len > 0 && strlen(ev->text) == ev->len);
	FUZZ_CHECK(buf_printf(log, "%s %d %d %d %d %d %zu ",
	               grok_ev_name[ev->kind], ev->thinking, ev->header,
	               ev->index, ev->progress, ev->code, ev->nurls) == 0);
	nd_log_str(log, ev->text, ev->len);
	nd_log_str(log, ev->title, strlen(ev->title));
	nd_log_str(log, ev->url, strlen(ev->url));
	nd_log_str(log, ev->preview, strlen(ev->preview));
	for (i = 0; i < ev->nurls; i++) {
		FUZZ_CHECK(ev->urls[i] != NULL && ev->urls[i][0] != '\0');
		nd_log_str(log, ev->urls[i], strlen(ev->urls[i]));
	}
	FUZZ_CHECK(buf_puts(log, "\n") == 0);
}

static int
nd_on_event(void *arg, const struct grok_ev *ev)
{
	struct nd_run *r = arg;

	nd_log_event(&r->log, ev);
	return nd_deliver(&r->out, ev);
}

static void
nd_out_init(struct nd_out *o, uint8_t opt, uint8_t par, const char *tags,
    uint32_t max_tokens)
{
	size_t cap = (par & ND_P_SMALL) ? ND_SMALL_ANSW : ND_BIG;

	memset(o, 0, sizeof(*o));
	o->rf = (enum oai_reasoning)(((opt >> ND_O_RF_SHIFT) & 3) % 3);
	o->include_usage = (opt & ND_O_USAGE) != 0;
	o->small = (par & ND_P_SMALL) != 0;
	o->max_tokens = max_tokens;
	FUZZ_CHECK(oai_out_init(&o->s, "grok-4", true, o->include_usage, o->rf,
	               tags, 17, cap) == 0);
	FUZZ_CHECK(oai_out_init(&o->ns, "grok-4", false, o->include_usage,
	               o->rf, tags, 17, cap) == 0);
	buf_init(&o->sse, o->small ? ND_SMALL_SSE : ND_BIG);
	buf_init(&o->body, ND_BIG);
}

static void
nd_out_fini(struct nd_out *o)
{
	oai_out_fini(&o->s);
	oai_out_fini(&o->ns);
	buf_fini(&o->sse);
	buf_fini(&o->body);
	free(o->final_text);
}

/* The size of the k-th piece (0 = the rest). */
static size_t
nd_piece(const struct nd_split *sp, size_t k, size_t left)
{
	size_t n;

	if (sp->n == 0)
		return 1;
	n = sp->len[k % sp->n];
	return n == 0 || n > left ? left : n;
}

/*
 * Feed body in pieces (sp NULL: whole), stopping at the first non-zero
 * return as wrk_chat.c does (it aborts the transfer), then the end.
 */
static void
nd_feed(
    struct nd_run *r, const char *body, size_t len, const struct nd_split *sp)
{
	size_t off = 0, n, k = 0;
	int rc = 0;

	while (off < len) {
		n = sp != NULL ? nd_piece(sp, k++, len - off) : len - off;
		rc = grok_nd_feed(&r->nd, body + off, n, nd_on_event, r);
		FUZZ_CHECK(rc == 0 || rc == 1 || rc == WP_ETOOBIG);
		FUZZ_CHECK(r->nd.pend.len <= r->nd.pend.max);
		off += n;
		if (rc != 0)
			return;
	}
	FUZZ_CHECK(grok_nd_end(&r->nd, nd_on_event, r) == 0);
}

/* ---- checking the output ------------------------------------------------- */

static bool
nd_jstr_eq(const json_t *j, const char *s, size_t n)
{
	return json_is_string(j) && json_string_length(j) == n &&
	    (n == 0 || memcmp(json_string_value(j), s, n) == 0);
}

static void
nd_check_chunk(
    const struct nd_out *o, json_t *j, struct nd_sum *sum, const char *finish)
{
	json_t *choices, *ch, *delta, *fr, *v;

	FUZZ_CHECK(!sum->error);
	FUZZ_CHECK(nd_jstr_eq(
	    json_object_get(j, "object"), "chat.completion.chunk", 21));
	FUZZ_CHECK(
	    nd_jstr_eq(json_object_get(j, "id"), o->s.id, strlen(o->s.id)));
	FUZZ_CHECK(nd_jstr_eq(json_object_get(j, "model"), "grok-4", 6));
	choices = json_object_get(j, "choices");
	FUZZ_CHECK(json_is_array(choices));
	if (json_array_size(choices) == 0) {
		/* The usage-only chunk, after the finish chunk. */
		FUZZ_CHECK(o->include_usage && sum->finished);
		FUZZ_CHECK(!sum->usage_chunk);
		FUZZ_CHECK(json_is_object(json_object_get(j, "usage")));
		sum->usage_chunk = true;
		return;
	}
	FUZZ_CHECK(json_array_size(choices) == 1);
	FUZZ_CHECK(!sum->finished); /* nothing after finish_reason */
	ch = json_array_get(choices, 0);
	delta = json_object_get(ch, "delta");
	FUZZ_CHECK(json_is_object(delta));
	v = json_object_get(delta, "role");
	FUZZ_CHECK(v == NULL || !sum->role);
	FUZZ_CHECK(v != NULL || sum->role); /* the first chunk has it */
	if (v != NULL)
		FUZZ_CHECK(nd_jstr_eq(v, "assistant", 9));
	sum->role = true;
	if ((v = json_object_get(delta, "content")) != NULL) {
		FUZZ_CHECK(json_is_string(v));
		FUZZ_CHECK(buf_append(&sum->content, json_string_value(v),
		               json_string_length(v)) == 0);
	}
	if ((v = json_object_get(delta, "reasoning_content")) != NULL) {
		FUZZ_CHECK(o->rf == OAI_RF_REASONING_CONTENT);
		FUZZ_CHECK(json_is_string(v));
		FUZZ_CHECK(buf_append(&sum->reasoning, json_string_value(v),
		               json_string_length(v)) == 0);
	}
	fr = json_object_get(ch, "finish_reason");
	if (json_is_null(fr)) {
		FUZZ_CHECK(json_object_get(j, "usage") == NULL);
		return;
	}
	FUZZ_CHECK(finish != NULL);
	FUZZ_CHECK(nd_jstr_eq(fr, finish, strlen(finish)));
	v = json_object_get(json_object_get(j, "usage"), "completion_tokens");
	FUZZ_CHECK(json_is_integer(v));
	sum->completion_tokens = json_integer_value(v);
	sum->finished = true;
}

/*
 * Walk the SSE output frame by frame. finish: the finish_reason the
 * answer ended with, NULL if it did not finish (error, or a cap).
 */
static void
nd_check_sse(const struct nd_out *o, const char *finish, struct nd_sum *sum)
{
	const char *p = o->sse.p, *end, *q;
	json_error_t jerr;
	json_t *j;
	size_t n;

	if (p == NULL)
		return; /* nothing was ever written */
	end = p + o->sse.len;
	while (p < end) {
		FUZZ_CHECK(!sum->done); /* [DONE] is the last frame */
		FUZZ_CHECK(
		    (size_t)(end - p) > 6 && memcmp(p, "data: ", 6) == 0);
		p += 6;
		q = memmem(p, (size_t)(end - p), "\n\n", 2);
		FUZZ_CHECK(q != NULL); /* never half a frame */
		n = (size_t)(q - p);
		FUZZ_CHECK(memchr(p, '\n', n) == NULL);
		FUZZ_CHECK(memchr(p, '\r', n) == NULL);
		if (n == 6 && memcmp(p, "[DONE]", 6) == 0) {
			sum->done = true;
			p = q + 2;
			continue;
		}
		j = json_loadb(p, n, 0, &jerr);
		if (nd_debug)
			(void)fprintf(stderr, "frame: %.*s\n", (int)n, p);
		else if (!json_is_object(j))
			(void)fprintf(stderr, "frame: %.*s\njansson: %s\n",
			    (int)n, p, jerr.text); /* for the report */
		FUZZ_CHECK(json_is_object(j));
		if (json_object_get(j, "error") != NULL) {
			FUZZ_CHECK(!sum->error && !sum->finished);
			FUZZ_CHECK(json_is_string(json_object_get(
			    json_object_get(j, "error"), "message")));
			sum->error = true;
		} else {
			nd_check_chunk(o, j, sum, finish);
		}
		json_decref(j);
		p = q + 2;
	}
}

/* The non-stream object against what the stream said. */
static void
nd_check_body(
    const struct nd_out *o, const char *finish, const struct nd_sum *sum)
{
	json_t *j, *ch, *msg, *v;
	json_error_t jerr;

	j = json_loadb(o->body.p, o->body.len, 0, &jerr);
	FUZZ_CHECK(json_is_object(j));
	FUZZ_CHECK(
	    nd_jstr_eq(json_object_get(j, "object"), "chat.completion", 15));
	FUZZ_CHECK(
	    nd_jstr_eq(json_object_get(j, "id"), o->ns.id, strlen(o->ns.id)));
	ch = json_array_get(json_object_get(j, "choices"), 0);
	FUZZ_CHECK(nd_jstr_eq(
	    json_object_get(ch, "finish_reason"), finish, strlen(finish)));
	msg = json_object_get(ch, "message");
	FUZZ_CHECK(nd_jstr_eq(json_object_get(msg, "role"), "assistant", 9));
	FUZZ_CHECK(nd_jstr_eq(
	    json_object_get(msg, "content"), sum->content.p, sum->content.len));
	v = json_object_get(msg, "reasoning_content");
	if (sum->reasoning.len == 0)
		FUZZ_CHECK(v == NULL);
	else
		FUZZ_CHECK(nd_jstr_eq(v, sum->reasoning.p, sum->reasoning.len));
	v = json_object_get(json_object_get(j, "usage"), "completion_tokens");
	FUZZ_CHECK(json_is_integer(v) &&
	    json_integer_value(v) == sum->completion_tokens);
	json_decref(j);
}

/* The end of the answer, as chat_done / chat_finish make it. */
static void
nd_end(struct nd_out *o)
{
	const char *finish;
	struct nd_sum sum;
	char msg[ND_FAIL_MSG + 64];
	int rc, rc2;

	memset(&sum, 0, sizeof(sum));
	buf_init(&sum.content, ND_BIG);
	buf_init(&sum.reasoning, ND_BIG);
	if (o->error || o->failed) {
		/* Only a stream that began says it in-band. */
		(void)snprintf(msg, sizeof(msg),
		    "grok.com failed mid-answer: %s",
		    o->error ? o->fail_msg
		             : "the client fell too far behind"); /* cut: ok */
		rc = o->committed ? oai_out_error(&o->s, msg, "server_error",
		                        "upstream_error", &o->sse)
		                  : 0;
		FUZZ_CHECK(rc == 0 || (o->small && rc == WP_ETOOBIG));
		FUZZ_CHECK(oai_out_error(&o->ns, msg, NULL, NULL, &o->body) ==
		    WP_EINVAL); /* stream mode only */
		nd_check_sse(o, NULL, &sum);
		FUZZ_CHECK(rc != 0 || !o->committed || (sum.error && sum.done));
		goto out;
	}
	if (o->final_text != NULL && !o->saw_text &&
	    nd_text(o, o->final_text, strlen(o->final_text), false) != 0 &&
	    o->failed)
		goto out;
	finish = o->cut ? "length" : "stop";
	rc = oai_out_finish(&o->s, finish, &o->sse);
	rc2 = oai_out_finish(&o->ns, finish, &o->body);
	if (!o->small)
		FUZZ_CHECK(rc == 0 && rc2 == 0);
	/*
	 * A finish that failed on a full buffer may have written its first
	 * frames (each whole): the worker then cuts the stream with an
	 * error. Only a finish that worked must have ended it.
	 */
	nd_check_sse(o, finish, &sum);
	if (rc != 0)
		goto out;
	FUZZ_CHECK(sum.finished && sum.done);
	FUZZ_CHECK(sum.usage_chunk == o->include_usage);
	FUZZ_CHECK(oai_out_text(&o->s, "x", 1, false, &o->sse) == WP_EINVAL);
	FUZZ_CHECK(oai_out_finish(&o->s, NULL, &o->sse) == WP_EINVAL);
	if (rc2 == 0)
		nd_check_body(o, finish, &sum);
out:
	buf_fini(&sum.content);
	buf_fini(&sum.reasoning);
}

/* ---- the tag filter alone ------------------------------------------------ */

/* Whether a is b with bytes taken out. */
static bool
nd_subseq(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, k;

	for (k = 0; k < bn && i < an; k++)
		if (a[i] == b[k])
			i++;
	return i == an;
}

static void
nd_tagf(
    const char *tags, const char *body, size_t len, const struct nd_split *sp)
{
	struct oai_tagf whole, cut;
	struct buf a, b;
	size_t off = 0, n, k = 0;

	oai_tagf_init(&whole, tags);
	oai_tagf_init(&cut, tags);
	FUZZ_CHECK(whole.ntags <= OAI_TAGS_MAX);
	buf_init(&a, ND_BIG);
	buf_init(&b, ND_BIG);
	FUZZ_CHECK(oai_tagf_feed(&whole, body, len, &a) == 0);
	FUZZ_CHECK(oai_tagf_flush(&whole, &a) == 0);
	while (off < len) {
		n = nd_piece(sp, k++, len - off);
		FUZZ_CHECK(oai_tagf_feed(&cut, body + off, n, &b) == 0);
		FUZZ_CHECK(cut.hold.len <= cut.hold.max);
		off += n;
	}
	FUZZ_CHECK(oai_tagf_flush(&cut, &b) == 0);
	FUZZ_CHECK(a.len == b.len && (a.len == 0 || !memcmp(a.p, b.p, a.len)));
	FUZZ_CHECK(nd_subseq(a.p, a.len, body, len));
	if (whole.ntags == 0 || memchr(body, '<', len) == NULL)
		FUZZ_CHECK(
		    a.len == len && (len == 0 || !memcmp(a.p, body, len)));
	buf_fini(&a);
	buf_fini(&b);
	oai_tagf_fini(&whole);
	oai_tagf_fini(&cut);
}

/* ---- the target ---------------------------------------------------------- */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	nd_debug = getenv("FUZZ_DEBUG") != NULL;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t opt = fuzz_u8(&in), par = fuzz_u8(&in);
	struct nd_split sp;
	struct nd_run *whole, *cut, *tree;
	const char *tags;
	uint32_t max_tokens;
	char *body;

	sp.n = par & ND_P_NSPLIT;
	if (sp.n > in.n)
		sp.n = in.n;
	sp.len = in.p;
	in.p += sp.n;
	in.n -= sp.n;
	tags = nd_tags[((opt >> ND_O_TAGS_LO) & 3) |
	    ((par & ND_P_TAGS_HI) ? 4 : 0)];
	max_tokens = (opt & ND_O_CUT) ? 1 + (uint32_t)sp.n * 4 : 0;
	body = fuzz_dup(in.p, in.n); /* no NUL after it: ASan sees over-reads */

	whole = calloc(1, sizeof(*whole));
	cut = calloc(1, sizeof(*cut));
	tree = calloc(1, sizeof(*tree));
	FUZZ_CHECK(whole != NULL && cut != NULL && tree != NULL);
	grok_nd_init(&whole->nd, nd_line_max[opt & ND_O_LINE]);
	grok_nd_init(&cut->nd, nd_line_max[opt & ND_O_LINE]);
	grok_nd_init(&tree->nd, nd_line_max[opt & ND_O_LINE]);
	tree->nd.tree_only = true;
	buf_init(&whole->log, ND_BIG);
	buf_init(&cut->log, ND_BIG);
	buf_init(&tree->log, ND_BIG);
	nd_out_init(&whole->out, opt, par, tags, max_tokens);
	nd_out_init(&cut->out, opt, par, tags, max_tokens);
	nd_out_init(&tree->out, opt, par, tags, max_tokens);

	nd_feed(whole, body, in.n, NULL);
	nd_feed(cut, body, in.n, &sp);
	FUZZ_CHECK(whole->log.len == cut->log.len &&
	    (whole->log.len == 0 ||
	        memcmp(whole->log.p, cut->log.p, whole->log.len) == 0));
	FUZZ_CHECK(whole->nd.malformed == cut->nd.malformed);
	FUZZ_CHECK(whole->nd.objects == cut->nd.objects);
	FUZZ_CHECK(whole->nd.seen_response == cut->nd.seen_response);
	nd_feed(tree, body, in.n, NULL);
	if (nd_debug &&
	    (whole->log.len != tree->log.len ||
	        memcmp(whole->log.p, tree->log.p, whole->log.len)))
		fprintf(stderr, "scan:\n%.*s\ntree:\n%.*s\n",
		    (int)whole->log.len, whole->log.p, (int)tree->log.len,
		    tree->log.p);
	FUZZ_CHECK(whole->log.len == tree->log.len &&
	    (whole->log.len == 0 ||
	        memcmp(whole->log.p, tree->log.p, whole->log.len) == 0));
	FUZZ_CHECK(whole->nd.malformed == tree->nd.malformed);
	FUZZ_CHECK(whole->nd.objects == tree->nd.objects);
	FUZZ_CHECK(whole->nd.seen_response == tree->nd.seen_response);
	nd_end(&cut->out);

	nd_tagf(tags, body, in.n, &sp);

	grok_nd_fini(&whole->nd);
	grok_nd_fini(&cut->nd);
	grok_nd_fini(&tree->nd);
	buf_fini(&whole->log);
	buf_fini(&cut->log);
	buf_fini(&tree->log);
	nd_out_fini(&whole->out);
	nd_out_fini(&cut->out);
	nd_out_fini(&tree->out);
	free(whole);
	free(cut);
	free(tree);
	free(body);
	return 0;
}
