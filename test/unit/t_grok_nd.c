/*
 * Unit tests of the NDJSON reader's shallow scan (worker/grok_nd.c), the
 * part that reads most lines without jansson. Every body here is read
 * both ways, by the scan and by jansson alone (tree_only), whole, byte by
 * byte and cut in two at every offset, and must give the same events and
 * counts; the lines the scan is meant to read itself are checked to cost
 * no jansson allocation. Each piece is copied to a buffer of its exact
 * size, so under ASan a read past a piece's end is caught.
 *
 * The string scan reads 16 and 8 bytes at a time, so the cases put a
 * quote, an escape, a control byte and each length of UTF-8 sequence at
 * and across every such boundary; cutting at every offset puts the end
 * of a piece right after each quote and inside each sequence.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "grok.h"
#include "util.h"

#include "th.h"

/* ---- helpers ----------------------------------------------------------- */

static unsigned nd_jallocs; /* jansson allocations so far (nd_jmalloc) */

static void *
nd_jmalloc(size_t n)
{
	nd_jallocs++;
	return malloc(n);
}

/* What one run gave: its events written out, and the counts. */
struct nd_out {
	struct buf ev;
	unsigned malformed, objects, jallocs;
	bool seen_response;
	int rc;
};

static void
nd_put(struct buf *b, const char *s, size_t n)
{
	(void)buf_printf(b, " %zu:", n);
	(void)buf_append(b, s, n);
}

static int
nd_rec(void *arg, const struct grok_ev *ev)
{
	struct buf *b = arg;
	size_t i;

	WP_ASSERT(strlen(ev->text) == ev->len);
	(void)buf_printf(b, "%s t%d h%d i%d p%d c%d", grok_ev_name[ev->kind],
	    ev->thinking, ev->header, ev->index, ev->progress, ev->code);
	nd_put(b, ev->text, ev->len);
	nd_put(b, ev->title, strlen(ev->title));
	nd_put(b, ev->url, strlen(ev->url));
	nd_put(b, ev->preview, strlen(ev->preview));
	for (i = 0; i < ev->nurls; i++)
		nd_put(b, ev->urls[i], strlen(ev->urls[i]));
	(void)buf_puts(b, "\n");
	return 0;
}

/* Feed one piece from a buffer of its exact size. */
static int
nd_piece(struct grok_nd *p, const char *s, size_t n, struct buf *ev)
{
	char *c = malloc(n > 0 ? n : 1);
	int rc;

	WP_ASSERT(c != NULL);
	memcpy(c, s, n);
	rc = grok_nd_feed(p, c, n, nd_rec, ev);
	free(c);
	return rc;
}

/* Start o and p for a run: no events yet, a reader of lines up to max. */
static void
nd_begin(struct nd_out *o, struct grok_nd *p, size_t max)
{
	memset(o, 0, sizeof(*o));
	buf_init(&o->ev, 1 << 20);
	grok_nd_init(p, max);
}

/* End the stream unless it failed, and take p's counts into o. */
static void
nd_finish(struct nd_out *o, struct grok_nd *p)
{
	if (o->rc == 0)
		o->rc = grok_nd_end(p, nd_rec, &o->ev);
	(void)buf_puts(&o->ev, ""); /* a NUL after the events, even none */
	o->malformed = p->malformed;
	o->objects = p->objects;
	o->seen_response = p->seen_response;
	grok_nd_fini(p);
}

/*
 * Feed body: whole (cut 0), cut in two at cut, or a byte at a time
 * (bytes); tree: jansson for every object.
 */
static void
nd_run(struct nd_out *o, const char *body, size_t len, size_t cut, bool bytes,
    bool tree)
{
	struct grok_nd p;
	size_t off;
	unsigned j0 = nd_jallocs;

	nd_begin(o, &p, 1 << 16);
	p.tree_only = tree;
	if (bytes) {
		for (off = 0; off < len && o->rc == 0; off++)
			o->rc = nd_piece(&p, body + off, 1, &o->ev);
	} else if (cut > 0 && cut < len) {
		o->rc = nd_piece(&p, body, cut, &o->ev);
		if (o->rc == 0)
			o->rc = nd_piece(&p, body + cut, len - cut, &o->ev);
	} else {
		o->rc = nd_piece(&p, body, len, &o->ev);
	}
	nd_finish(o, &p);
	o->jallocs = nd_jallocs - j0;
}

/* Feed body in three pieces, cut at a and b (0 < a < b < len). */
static void
nd_run3(struct nd_out *o, const char *body, size_t len, size_t a, size_t b,
    size_t max)
{
	struct grok_nd p;

	nd_begin(o, &p, max);
	o->rc = nd_piece(&p, body, a, &o->ev);
	if (o->rc == 0)
		o->rc = nd_piece(&p, body + a, b - a, &o->ev);
	if (o->rc == 0)
		o->rc = nd_piece(&p, body + b, len - b, &o->ev);
	nd_finish(o, &p);
}

/* body read by jansson alone, whole, with max. */
static void
nd_run_tree(struct nd_out *o, const char *body, size_t len, size_t max)
{
	struct grok_nd p;

	nd_begin(o, &p, max);
	p.tree_only = true;
	o->rc = nd_piece(&p, body, len, &o->ev);
	nd_finish(o, &p);
}

static bool
nd_out_eq(const struct nd_out *a, const struct nd_out *b)
{
	return a->rc == b->rc && a->malformed == b->malformed &&
	    a->objects == b->objects && a->seen_response == b->seen_response &&
	    a->ev.len == b->ev.len && memcmp(a->ev.p, b->ev.p, a->ev.len) == 0;
}

/*
 * body (len bytes) read by the scan cut at cut (0: whole, len: byte by
 * byte) gives tree, what jansson alone gives; fast: the scan read every
 * object itself. Returns false (and says so) if not.
 */
static bool
nd_same_as(const char *name, const char *body, size_t len, size_t cut,
    bool fast, const struct nd_out *tree)
{
	struct nd_out o;
	bool ok = true;

	nd_run(&o, body, len, cut, cut == len, false);
	if (!nd_out_eq(&o, tree)) {
		TH_FAILED("%s: cut at %zu%s: rc %d malformed %u objects %u "
		          "events:\n%s--- jansson: rc %d malformed %u "
		          "objects %u events:\n%s",
		    name, cut, cut == len ? " (bytes)" : "", o.rc, o.malformed,
		    o.objects, o.ev.p, tree->rc, tree->malformed, tree->objects,
		    tree->ev.p);
		ok = false;
	} else if (fast && o.jallocs != 0) {
		TH_FAILED("%s: cut at %zu: jansson read it (%u allocations)",
		    name, cut, o.jallocs);
		ok = false;
	}
	buf_fini(&o.ev);
	return ok;
}

/*
 * body read by the scan whole, byte by byte and cut at each offset from
 * lo to hi gives what jansson alone gives; fast: the scan read it all
 * itself when fed whole.
 */
static bool
nd_same_cuts(const char *name, const char *body, size_t len, bool fast,
    size_t lo, size_t hi)
{
	struct nd_out tree;
	size_t cut;
	bool ok;

	nd_run(&tree, body, len, 0, false, true);
	ok = nd_same_as(name, body, len, 0, fast, &tree) &&
	    nd_same_as(name, body, len, len, false, &tree);
	for (cut = lo; cut <= hi && cut < len && ok; cut++)
		ok = nd_same_as(name, body, len, cut, false, &tree);
	buf_fini(&tree.ev);
	return ok;
}

static bool
nd_same_n(const char *name, const char *body, size_t len, bool fast)
{
	return nd_same_cuts(name, body, len, fast, 1, len - 1);
}

static bool
nd_same(const char *name, const char *body, bool fast)
{
	return nd_same_n(name, body, strlen(body), fast);
}

/*
 * A token line with tok (n bytes) as the token's raw JSON text; last: the
 * token is the last member, so the scan reads its end eight or one bytes
 * at a time (fewer than 16 are left before the object's end).
 */
static char *
nd_token_line(const char *tok, size_t n, bool last)
{
	struct buf b;

	buf_init(&b, 1 << 16);
	(void)buf_puts(&b,
	    last ? "{\"result\":{\"response\":{\"isThinking\":"
	           "false,\"token\":\""
	         : "{\"result\":{\"response\":{\"token\":\"");
	(void)buf_append(&b, tok, n);
	(void)buf_puts(&b,
	    last ? "\"}}}\n"
	         : "\",\"isThinking\":false,\"messageTag\":"
	           "\"final\"}}}\n");
	return buf_take(&b);
}

/* The offsets of the token's body in nd_token_line. */
#define ND_TOK_AT      32
#define ND_TOK_AT_LAST 51

/*
 * Token lines whose token is a run of n letters (n = 0..40) with ins (its
 * own length) put in at offsets around each 8- and 16-byte boundary of
 * the scan; the closing quote lands at each offset. Cut around the token
 * only: the rest of the line is the same each time.
 */
static void
nd_insert_at(
    const char *what, const char *ins, size_t inslen, bool fast, bool last)
{
	static const size_t ats[] = { 0, 1, 6, 7, 8, 9, 14, 15, 16, 17, 23, 24,
		25, 31, 32, 33 };
	size_t first = last ? ND_TOK_AT_LAST : ND_TOK_AT;
	char tok[128], name[96];
	char *line;
	size_t n, i, at, len;

	for (n = 0; n <= 40; n++) {
		for (i = 0; i < sizeof(ats) / sizeof(ats[0]); i++) {
			at = ats[i] < n ? ats[i] : n;
			memset(tok, 'a' + (int)(n % 26), n);
			memcpy(tok + at, ins, inslen);
			memset(tok + at + inslen, 'z', n - at);
			line = nd_token_line(tok, n + inslen, last);
			len = strlen(line);
			(void)snprintf(name, sizeof(name), "%s at %zu of %zu%s",
			    what, at, n, last ? ", last" : "");
			if (!nd_same_cuts(name, line, len, fast, first - 1,
			        first + n + inslen + 18)) {
				free(line);
				return;
			}
			free(line);
			if (at == n)
				break; /* the rest would be at n again */
		}
	}
}

/* nd_insert_at with the token first and last in its line. */
static void
nd_insert_everywhere(
    const char *what, const char *ins, size_t inslen, bool fast)
{
	nd_insert_at(what, ins, inslen, fast, false);
	nd_insert_at(what, ins, inslen, fast, true);
}

/* ---- the string scan --------------------------------------------------- */

TEST(nd_scan_lengths)
{
	nd_insert_everywhere("nothing", "", 0, true);
}

TEST(nd_scan_escapes_at_boundaries)
{
	nd_insert_everywhere("\\n", "\\n", 2, true);
	nd_insert_everywhere("\\\"", "\\\"", 2, true);
	nd_insert_everywhere("\\\\", "\\\\", 2, true);
	nd_insert_everywhere("\\u00e9", "\\u00e9", 6, true);
	nd_insert_everywhere("\\u4f60", "\\u4F60", 6, true);
	/* The scan leaves these to jansson: the same either way. */
	nd_insert_everywhere("\\u0000", "\\u0000", 6, false);
	nd_insert_everywhere("pair", "\\ud83d\\ude00", 12, false);
	nd_insert_everywhere("lone", "\\udc00", 6, false);
	nd_insert_everywhere("\\x", "\\x", 2, false);
	nd_insert_everywhere("\\u12", "\\u12", 4, false);
}

TEST(nd_scan_utf8_across_boundaries)
{
	nd_insert_everywhere("2 bytes", "\xc3\xa9", 2, true);
	nd_insert_everywhere("3 bytes", "\xe4\xbd\xa0", 3, true);
	nd_insert_everywhere("4 bytes", "\xf0\x9f\x98\x80", 4, true);
	nd_insert_everywhere("DEL", "\x7f", 1, true);
}

TEST(nd_scan_bad_bytes_at_boundaries)
{
	/* jansson refuses each of these: one malformed line, no event. */
	nd_insert_everywhere("control", "\x01", 1, false);
	nd_insert_everywhere("unit separator", "\x1f", 1, false);
	nd_insert_everywhere("tab", "\t", 1, false);
	nd_insert_everywhere("newline", "\n", 1, false);
	nd_insert_everywhere("continuation", "\x80", 1, false);
	nd_insert_everywhere("cut sequence", "\xe4\xbd", 2, false);
	nd_insert_everywhere("overlong", "\xc0\xaf", 2, false);
	nd_insert_everywhere("surrogate", "\xed\xa0\x80", 3, false);
	nd_insert_everywhere("past U+10FFFF", "\xf4\x90\x80\x80", 4, false);
	nd_insert_everywhere("0xff", "\xff", 1, false);
}

TEST(nd_scan_nul_byte)
{
	static const char line[] = "{\"result\":{\"response\":{\"token\":"
	                           "\"a\0b\"}}}\n{\"result\":{\"response\":"
	                           "{\"token\":\"c\"}}}\n";

	nd_same_n("NUL in a string", line, sizeof(line) - 1, false);
}

/* ---- the structure ----------------------------------------------------- */

TEST(nd_scan_white_space)
{
	nd_same("spaces everywhere",
	    " { \"result\" : { \"response\" :\t{ \"token\" : \"a\" ,\r"
	    "\"isThinking\" : true , \"messageTag\" : \"header\" } } }\n",
	    true);
	nd_same("no spaces after commas",
	    "{\"result\":{\"response\":{\"x\":[1,2,{\"y\":[]}],\"token\":"
	    "\"a\"}}}\n",
	    true);
	nd_same("newline between members",
	    "{\"result\":{\"response\":{\"token\":\"a\",\n\"isThinking\":"
	    "true}}}\n{\"result\":{\"response\":{\"token\":\"b\"}}}\n",
	    false);
	nd_same("form feed is no white space",
	    "{\"result\":{\"response\":{\"token\":\"a\"\f}}}\n", false);
}

TEST(nd_scan_values)
{
	static const char *const ok[] = { "0", "-0", "12", "-12.5", "0.25",
		"123456789012345", "true", "false", "null", "\"s\"", "[]", "{}",
		"[ ]", "{ }", "[1,[2,[3]],{\"a\":{}}]", "{\"k\\u00e9y\":1}",
		"{\"a\":1,\"a\":2}" };
	static const char *const unsure[] = { "01", "-", "1.", ".5", "1e5",
		"1E+2", "1234567890123456", "-123456789012345", "truex", "nul",
		"tru", "[1,]", "{\"a\":1,}", "{\"a\"}", "{1:2}", "[1 2]",
		"{\"a\":1 \"b\":2}", "+1", "[", "{\"a\":", "\"s", "1x", "[}",
		"{]" };
	char line[256], name[64];
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		(void)snprintf(line, sizeof(line),
		    "{\"result\":{\"response\":{\"v\":%s,\"token\":\"t\"}},"
		    "\"w\":%s}\n",
		    ok[i], ok[i]);
		(void)snprintf(name, sizeof(name), "value %s", ok[i]);
		nd_same(name, line, true);
	}
	for (i = 0; i < sizeof(unsure) / sizeof(unsure[0]); i++) {
		(void)snprintf(line, sizeof(line),
		    "{\"result\":{\"response\":{\"v\":%s,\"token\":\"t\"}}}\n"
		    "{\"result\":{\"response\":{\"token\":\"u\"}}}\n",
		    unsure[i]);
		(void)snprintf(name, sizeof(name), "value %s", unsure[i]);
		nd_same(name, line, false);
	}
}

/* A token line whose response holds a value nested n brackets deep. */
static void
nd_nested(size_t n, bool fast)
{
	struct buf b;
	char name[32];
	char *line;
	size_t i;

	buf_init(&b, 1 << 16);
	(void)buf_puts(&b, "{\"result\":{\"response\":{\"token\":\"t\",\"x\":");
	for (i = 0; i < n; i++)
		(void)buf_puts(&b, i % 2 ? "[" : "{\"k\":");
	(void)buf_puts(&b, "1");
	for (i = n; i-- > 0;)
		(void)buf_puts(&b, i % 2 ? "]" : "}");
	(void)buf_puts(&b, "}}}\n");
	line = buf_take(&b);
	(void)snprintf(name, sizeof(name), "depth %zu", n);
	nd_same(name, line, fast);
	free(line);
}

TEST(nd_scan_depth)
{
	size_t n;

	for (n = 0; n <= 61; n++)
		nd_nested(n, true);
	for (n = 62; n <= 70; n++)
		nd_nested(n, false);
}

TEST(nd_scan_keys_looked_at)
{
	/* The last of two equal keys counts. */
	nd_same("token twice",
	    "{\"result\":{\"response\":{\"token\":\"a\",\"token\":\"b\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"a\",\"token\":5}}}\n"
	    "{\"result\":{\"response\":{\"token\":5,\"token\":\"c\"}}}\n",
	    true);
	nd_same("isThinking twice",
	    "{\"result\":{\"response\":{\"token\":\"a\",\"isThinking\":true,"
	    "\"isThinking\":false}}}\n"
	    "{\"result\":{\"response\":{\"isThinking\":false,\"token\":\"b\","
	    "\"isThinking\":true}}}\n",
	    true);
	nd_same("messageTag",
	    "{\"result\":{\"response\":{\"token\":\"a\",\"messageTag\":"
	    "\"header\",\"messageTag\":\"final\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"b\",\"messageTag\":"
	    "\"header\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"c\",\"messageTag\":"
	    "[\"header\"]}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"d\",\"messageTag\":"
	    "\"head\"}}}\n",
	    true);
	nd_same("escaped messageTag",
	    "{\"result\":{\"response\":{\"token\":\"a\",\"messageTag\":"
	    "\"h\\u0065ader\"}}}\n",
	    false);
	nd_same("escaped key",
	    "{\"result\":{\"response\":{\"tok\\u0065n\":\"a\"}}}\n", false);
	nd_same("result twice",
	    "{\"result\":{\"response\":{\"token\":\"a\"}},\"result\":{}}\n"
	    "{\"result\":{\"response\":{\"token\":\"a\"},\"response\":{"
	    "\"token\":\"b\"}}}\n",
	    false);
	nd_same("result not an object",
	    "{\"result\":[{\"response\":{\"token\":\"a\"}}]}\n"
	    "{\"result\":{\"response\":\"x\"}}\n{}\n{\"other\":1}\n",
	    true);
	nd_same("model response",
	    "{\"result\":{\"response\":{\"modelResponse\":{\"message\":"
	    "\"a\\nb\",\"model\":\"grok-3\",\"generatedImageUrls\":[],"
	    "\"webSearchResults\":[]},\"token\":\"\"}}}\n"
	    "{\"result\":{\"response\":{\"modelResponse\":{\"message\":5,"
	    "\"generatedImageUrls\":[ ]}}}}\n",
	    true);
	nd_same("model response unsure",
	    "{\"result\":{\"response\":{\"modelResponse\":{\"message\":"
	    "\"a\",\"generatedImageUrls\":[\"u\"]}}}}\n"
	    "{\"result\":{\"response\":{\"modelResponse\":{},"
	    "\"modelResponse\":{}}}}\n"
	    "{\"result\":{\"response\":{\"modelResponse\":{\"error\":\"x\"}}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"a\",\"error\":{}}}}\n"
	    "{\"error\":\"x\",\"result\":{}}\n",
	    false);
}

TEST(nd_scan_long_strings)
{
	char tok[1100], model[80];
	char *line;
	struct buf b;

	memset(tok, 'x', sizeof(tok));
	line = nd_token_line(tok, 1023, false);
	nd_same("token of 1023", line, true);
	free(line);
	line = nd_token_line(tok, 1024, true); /* the event buffer: jansson */
	nd_same("token of 1024", line, false);
	free(line);
	memset(model, 'm', sizeof(model));
	buf_init(&b, 1 << 16);
	(void)buf_printf(&b,
	    "{\"result\":{\"response\":{\"modelResponse\":{\"model\":\"%.63s\""
	    "}}}}\n{\"result\":{\"response\":{\"modelResponse\":{\"model\":"
	    "\"%.64s\"}}}}\n",
	    model, model);
	line = buf_take(&b);
	nd_same("model names", line, false);
	free(line);
}

/* ---- objects cut by a piece ------------------------------------------- */

/*
 * Lines the scan leaves to jansson are found by the bracket counter
 * alone, as are lines cut by a piece: brackets, quotes and backslashes in
 * long strings, on each side of its 16-byte steps.
 */
TEST(nd_cut_brackets_in_strings)
{
	static const char *const strs[] = { "}}}]]]{{{[[[ closers first",
		"0123456789abcde}", "0123456789abcdef}", "0123456789abcdefg}",
		"0123456789abcde\\\"}}}", "0123456789abcdef\\\\}",
		"\\\\\\\"\\\\\\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
		"\xe4\xbd\xa0}\xe5\xa5\xbd]\xf0\x9f\x98\x80{0123456789" };
	char name[64];
	struct buf b;
	char *body;
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		buf_init(&b, 1 << 16);
		(void)buf_printf(&b,
		    "{\"result\":{\"response\":{\"token\":\"%s\"}}}\n"
		    "{\"result\":{\"response\":{\"toolUsageCardId\":\"c\","
		    "\"webSearchResults\":[{\"title\":\"%s\",\"url\":\"%s\","
		    "\"preview\":\"%s\"}]}}}\n"
		    "{\"x\":\"%s\"}{\"result\":{\"response\":{\"token\":\"%s\"}"
		    "}}{\"result\":{\"response\":{\"token\":\"t\"}}}\n",
		    strs[i], strs[i], strs[i], strs[i], strs[i], strs[i]);
		body = buf_take(&b);
		(void)snprintf(name, sizeof(name), "brackets %zu", i);
		nd_same(name, body, false);
		free(body);
	}
}

/* ---- the template line ------------------------------------------------ */

/* Token lines after one another: the later ones match the first. */
TEST(nd_template_lines)
{
	static const char *const toks[] = { "b", "", "\\n", "\\u00e9\\\"",
		"\xc3\xa9", "x\\u0000", "\\ud83d\\ude00", "\x01", "\xc3", "\\q",
		"a\",\"token\":\"z", "a\",\"isThinking\":true,\"x\":\"",
		"\"}}}{\"a\":\"" };
	struct buf b;
	char name[64];
	char *body;
	size_t i;

	for (i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
		buf_init(&b, 1 << 16);
		(void)buf_printf(&b,
		    "{\"result\":{\"response\":{\"token\":\"a\",\"isThinking\":"
		    "true,\"messageTag\":\"header\"}}}\n"
		    "{\"result\":{\"response\":{\"token\":\"%s\",\"isThinking\":"
		    "true,\"messageTag\":\"header\"}}}\n"
		    "{\"result\":{\"response\":{\"token\":\"c\",\"isThinking\":"
		    "true,\"messageTag\":\"header\"}}}\n",
		    toks[i]);
		body = buf_take(&b);
		(void)snprintf(
		    name, sizeof(name), "template, token %s", toks[i]);
		nd_same(name, body, false);
		free(body);
	}
	nd_same("template, then others",
	    "{\"result\":{\"response\":{\"token\":\"a\",\"isThinking\":"
	    "true}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"b\",\"isThinking\":"
	    "false}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"c\",\"isThinking\":"
	    "true}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"d\",\"isThinking\":"
	    "true}}}  \n"
	    "{\"result\":{\"response\":{\"token\":\"e\",\"isThinking\":"
	    "true}}}{\"result\":{\"response\":{\"token\":\"f\",\"isThinking\""
	    ":true}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"g\",\"isThinking\":"
	    "true}}\n"
	    "{\"result\":{\"response\":{\"token\":\"h\",\"isThinking\":"
	    "true}}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"i\",\"isThinking\":"
	    "true,\"modelResponse\":{}}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"i2\",\"isThinking\":"
	    "true,\"modelResponse\":{}}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"j\",\"isThinking\":"
	    "true}}}\n",
	    false);
	/* The last of two tokens is the one that changes. */
	nd_same("template with two tokens",
	    "{\"result\":{\"response\":{\"token\":\"a\",\"token\":\"b\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"a\",\"token\":\"c\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"x\",\"token\":\"d\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"x\",\"token\":5}}}\n",
	    true);
	nd_same("template, SSE",
	    "data: {\"result\":{\"response\":{\"token\":\"a\"}}}\n\n"
	    "data: {\"result\":{\"response\":{\"token\":\"b\"}}}\n\n"
	    "data: [DONE]\n\n",
	    true);
}

/*
 * A template line and lines that start like it, in three pieces cut at
 * every two offsets up to 60 apart (a middle piece of more adds nothing):
 * a piece that ends inside a template line holds it unread until the
 * next one (GROK_ND_HELD), which either ends it or hands it back to the
 * bracket counter. With a max of 44 the long line does not fit.
 */
TEST(nd_template_held)
{
	static const char body[] =
	    "{\"result\":{\"response\":{\"token\":\"a\",\"x\":1}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"bc\",\"x\":1}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"d\",\"x\":12}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"e\",\"x\":1}}}"
	    "{\"result\":{\"response\":{\"token\":\"f\",\"x\":1}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"g\",\"x\":1}}\n"
	    "{\"result\":{\"response\":{\"token\":\"h\",\"x\":1,\"y\":[{"
	    "\"webSearchResults\":\"}}}\"}]}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"i\",\"x\":1}}}";
	static const size_t maxes[] = { 1 << 16, 44 };
	size_t len = sizeof(body) - 1, a, b, m;
	struct nd_out tree, o;
	bool ok = true;

	for (m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
		nd_run_tree(&tree, body, len, maxes[m]);
		for (a = 1; a < len && ok; a++) {
			for (b = a + 1; b < len && b <= a + 60 && ok; b++) {
				nd_run3(&o, body, len, a, b, maxes[m]);
				if (!nd_out_eq(&o, &tree)) {
					TH_FAILED(
					    "max %zu, cut at %zu and %zu: rc %d "
					    "malformed %u objects %u "
					    "events:\n%s--- jansson: rc %d "
					    "malformed %u objects %u "
					    "events:\n%s",
					    maxes[m], a, b, o.rc, o.malformed,
					    o.objects, o.ev.p, tree.rc,
					    tree.malformed, tree.objects,
					    tree.ev.p);
					ok = false;
				}
				buf_fini(&o.ev);
			}
		}
		buf_fini(&tree.ev);
	}
}

/* A token line that fits max, then the same line with a longer token. */
TEST(nd_template_max)
{
	static const char a[] = "{\"result\":{\"response\":{\"token\":\"a\""
	                        "}}}\n";
	static const char b[] = "{\"result\":{\"response\":{\"token\":\"bb\""
	                        "}}}\n";
	struct grok_nd p;
	struct buf ev;

	buf_init(&ev, 4096);
	grok_nd_init(&p, sizeof(a) - 2); /* a without its newline */
	EXPECT_INT_EQ(grok_nd_feed(&p, a, sizeof(a) - 1, nd_rec, &ev), 0);
	EXPECT_INT_EQ(
	    grok_nd_feed(&p, b, sizeof(b) - 1, nd_rec, &ev), WP_ETOOBIG);
	EXPECT_INT_EQ(p.objects, 1);
	grok_nd_fini(&p);
	buf_fini(&ev);
}

/* ---- a whole answer ---------------------------------------------------- */

/* The fake's answer to "[tokens=50] [nothink] Why is the sky blue?", cut. */
static const char nd_answer[] =
    "{\"result\":{\"conversation\":{\"conversationId\":\"f8b799de-f240-4118-b635-92095b50d019\",\"title\":\"New conversation\",\"starred\":false,\"createTime\":\"2026-11-27T09:14:55.898658Z\",\"modifyTime\":\"2026-11-27T09:14:55.898658Z\",\"systemPromptName\":\"\",\"temporary\":false,\"mediaTypes\":[]}}}\n"
    "{\"result\":{\"response\":{\"userResponse\":{\"responseId\":\"1b6777b9-1355-417d-9bdb-fe8ddd204d5f\",\"message\":\"[tokens=50] [nothink] Why is the sky blue?\",\"sender\":\"human\",\"createTime\":\"2026-11-27T09:14:55.898658Z\",\"manual\":false,\"partial\":false,\"shared\":false,\"query\":\"\",\"queryType\":\"\",\"webSearchResults\":[],\"xpostIds\":[],\"xposts\":[],\"generatedImageUrls\":[],\"imageAttachments\":[],\"fileAttachments\":[],\"cardAttachmentsJson\":[],\"fileUris\":[],\"fileAttachmentsMetadata\":[],\"isControl\":false,\"steps\":[],\"mediaTypes\":[],\"model\":\"grok-3\"},\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"1b6777b9-1355-417d-9bdb-fe8ddd204d5f\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"Hello\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"!\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\".\\n\\n\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\" 21\xc2\xb0"
    "C\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\" and \\\"sunny\\\"\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\" \xf0\x9f\x8c\xa4\xef\xb8\x8f\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"finalMetadata\":{\"followUpSuggestions\":[],\"feedbackLabels\":[],\"toolsUsed\":{}},\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\"}}}\n"
    "{\"result\":{\"response\":{\"modelResponse\":{\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\",\"message\":\"Hello!.\\n\\n 21\xc2\xb0"
    "C and \\\"sunny\\\" \xf0\x9f\x8c\xa4\xef\xb8\x8f\",\"sender\":\"assistant\",\"createTime\":\"2026-11-27T09:14:55.898658Z\",\"parentResponseId\":\"1b6777b9-1355-417d-9bdb-fe8ddd204d5f\",\"manual\":false,\"partial\":false,\"shared\":false,\"query\":\"\",\"queryType\":\"\",\"webSearchResults\":[],\"xpostIds\":[],\"xposts\":[],\"generatedImageUrls\":[],\"imageAttachments\":[],\"fileAttachments\":[],\"cardAttachmentsJson\":[],\"fileUris\":[],\"fileAttachmentsMetadata\":[],\"isControl\":false,\"steps\":[],\"mediaTypes\":[],\"model\":\"grok-3\"},\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"9ec81437-d932-4ee1-8240-055117891f77\"}}}\n"
    "{\"result\":{\"title\":{\"newTitle\":\"Why the sky is blue\"}}}\n";

TEST(nd_scan_answer)
{
	struct nd_out o;

	nd_same("answer", nd_answer, true);
	nd_run(&o, nd_answer, strlen(nd_answer), 0, false, false);
	EXPECT_INT_EQ(o.objects, 11);
	EXPECT_INT_EQ(o.malformed, 0);
	EXPECT_CONTAINS(o.ev.p, "token t0 h0 i0 p0 c0 5:Hello");
	EXPECT_CONTAINS(o.ev.p, "token t0 h0 i0 p0 c0 3:.\n\n");
	EXPECT_CONTAINS(o.ev.p, "token t0 h0 i0 p0 c0 12: and \"sunny\"");
	EXPECT_CONTAINS(o.ev.p, "final t0 h0 i0 p0 c0 35:Hello!.");
	buf_fini(&o.ev);
}

int
main(void)
{
	json_set_alloc_funcs(nd_jmalloc, free);
	RUN(nd_scan_lengths);
	RUN(nd_scan_escapes_at_boundaries);
	RUN(nd_scan_utf8_across_boundaries);
	RUN(nd_scan_bad_bytes_at_boundaries);
	RUN(nd_scan_nul_byte);
	RUN(nd_scan_white_space);
	RUN(nd_scan_values);
	RUN(nd_scan_depth);
	RUN(nd_scan_keys_looked_at);
	RUN(nd_scan_long_strings);
	RUN(nd_cut_brackets_in_strings);
	RUN(nd_template_lines);
	RUN(nd_template_held);
	RUN(nd_template_max);
	RUN(nd_scan_answer);
	TH_DONE();
}
