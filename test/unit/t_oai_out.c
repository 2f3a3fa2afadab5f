/*
 * Unit tests of the OpenAI output (worker/oai_out.c): every SSE frame is
 * parsed with jansson and checked against the chat.completion.chunk shape
 * (one id, role only in the first delta, the model, finish_reason, usage
 * on the final chunk, the usage-only chunk, [DONE] last); the reasoning
 * formats; the tag filter at every split point and under random splits;
 * UTF-8 repair; non-stream parity with the stream; buffer caps.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "oai_out.h"

#include "th.h"

#define MODEL    "grok-4"
#define TAGS     "xaiartifact, xai:tool_usage_card ,grok:render"
#define OUT_MAX  (1u << 20)
#define MAXF     256
#define BODY_MAX (1u << 20)

struct piece {
	const char *text;
	bool thinking;
};

/* One stream answer, parsed. */
struct run {
	struct buf out;          /* raw SSE */
	json_t *f[MAXF];         /* the JSON frames, in order */
	size_t nf;               /* how many */
	bool done_last;          /* [DONE] came, and last */
	bool bad_framing;        /* a frame was not "data: ...\n\n" */
	struct buf content, rsn; /* concatenated deltas */
	long long completion;    /* usage of the finish chunk */
	char id[64];
};

static void
run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->out, OUT_MAX);
	buf_init(&r->content, OUT_MAX);
	buf_init(&r->rsn, OUT_MAX);
}

static void
run_fini(struct run *r)
{
	size_t i;

	for (i = 0; i < r->nf; i++)
		json_decref(r->f[i]);
	buf_fini(&r->out);
	buf_fini(&r->content);
	buf_fini(&r->rsn);
}

/* Split r->out into frames; every one must parse (so: valid UTF-8). */
static void
run_parse(struct run *r)
{
	const char *p = r->out.p != NULL ? r->out.p : "", *e;
	json_error_t jerr;
	json_t *j;

	while (*p != '\0') {
		if (r->done_last) {
			r->done_last = false; /* something after [DONE] */
			r->bad_framing = true;
			return;
		}
		if (strncmp(p, "data: ", 6) != 0 ||
		    (e = strstr(p, "\n\n")) == NULL) {
			r->bad_framing = true;
			return;
		}
		p += 6;
		if ((size_t)(e - p) == 6 && strncmp(p, "[DONE]", 6) == 0) {
			r->done_last = true;
		} else if ((j = json_loadb(p, (size_t)(e - p), 0, &jerr)) ==
		        NULL ||
		    r->nf == MAXF) {
			printf("  bad frame: %s: %.*s\n", jerr.text,
			    (int)(e - p), p);
			json_decref(j);
			r->bad_framing = true;
			return;
		} else {
			r->f[r->nf++] = j;
		}
		p = e + 2;
	}
}

/* Does object o have exactly these keys? */
static bool
keys_are(const json_t *o, const char *const *keys, size_t n)
{
	size_t i;

	if (!json_is_object(o) || json_object_size(o) != n)
		return false;
	for (i = 0; i < n; i++) {
		if (json_object_get(o, keys[i]) == NULL)
			return false;
	}
	return true;
}

static bool
id_ok(const char *id)
{
	size_t i;

	if (id == NULL || strncmp(id, "chatcmpl-", 9) != 0 ||
	    strlen(id) != 9 + 24)
		return false;
	for (i = 9; i < 9 + 24; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static bool
usage_ok(const json_t *u, long long prompt, long long *completion)
{
	static const char *const k[] = { "prompt_tokens", "completion_tokens",
		"total_tokens" };
	long long p, c, t;

	if (!keys_are(u, k, 3))
		return false;
	p = json_integer_value(json_object_get(u, k[0]));
	c = json_integer_value(json_object_get(u, k[1]));
	t = json_integer_value(json_object_get(u, k[2]));
	*completion = c;
	return p == prompt && t == p + c && c >= 0;
}

/*
 * The OpenAI stream shape, exactly. Fills r->content / r->rsn with the
 * concatenated deltas.
 */
static void
check_stream(
    struct run *r, bool include_usage, const char *finish, long long prompt)
{
	static const char *const head[] = { "id", "object", "created", "model",
		"system_fingerprint", "choices" };
	static const char *const head_u[] = { "id", "object", "created",
		"model", "system_fingerprint", "choices", "usage" };
	static const char *const choice[] = { "index", "delta", "logprobs",
		"finish_reason" };
	size_t i, nchunks;
	long long created = 0, c2;
	bool is_final;

	run_parse(r);
	EXPECT(!r->bad_framing);
	EXPECT(r->done_last);
	nchunks = include_usage ? r->nf - 1 : r->nf;
	EXPECT(r->nf >= (include_usage ? 2u : 1u));
	for (i = 0; i < r->nf; i++) {
		const json_t *f = r->f[i], *ch, *c0, *d, *v;
		const char *id = json_string_value(json_object_get(f, "id"));

		is_final = i + 1 == nchunks;
		if (i == 0) {
			EXPECT(id_ok(id));
			snprintf(r->id, sizeof(r->id), "%s", id ? id : "");
			created =
			    json_integer_value(json_object_get(f, "created"));
			EXPECT(created > 1600000000);
		}
		EXPECT_STR_EQ(id, r->id);
		EXPECT_STR_EQ(json_string_value(json_object_get(f, "object")),
		    "chat.completion.chunk");
		EXPECT_INT_EQ(
		    json_integer_value(json_object_get(f, "created")), created);
		EXPECT_STR_EQ(
		    json_string_value(json_object_get(f, "model")), MODEL);
		EXPECT(json_is_null(json_object_get(f, "system_fingerprint")));
		ch = json_object_get(f, "choices");
		EXPECT(json_is_array(ch));
		if (i >= nchunks) { /* the usage-only chunk */
			EXPECT(keys_are(f, head_u, 7));
			EXPECT_INT_EQ(json_array_size(ch), 0);
			EXPECT(
			    usage_ok(json_object_get(f, "usage"), prompt, &c2));
			EXPECT_INT_EQ(c2, r->completion);
			continue;
		}
		EXPECT(
		    is_final ? keys_are(f, head_u, 7) : keys_are(f, head, 6));
		EXPECT_INT_EQ(json_array_size(ch), 1);
		c0 = json_array_get(ch, 0);
		EXPECT(keys_are(c0, choice, 4));
		EXPECT(json_is_integer(json_object_get(c0, "index")) &&
		    json_integer_value(json_object_get(c0, "index")) == 0);
		EXPECT(json_is_null(json_object_get(c0, "logprobs")));
		d = json_object_get(c0, "delta");
		EXPECT(json_is_object(d));
		/* role: in the first delta, and only there */
		v = json_object_get(d, "role");
		if (i == 0)
			EXPECT_STR_EQ(json_string_value(v), "assistant");
		else
			EXPECT(v == NULL);
		if (is_final) {
			EXPECT_STR_EQ(json_string_value(
			                  json_object_get(c0, "finish_reason")),
			    finish);
			EXPECT(usage_ok(json_object_get(f, "usage"), prompt,
			    &r->completion));
			EXPECT(json_object_size(d) == 0 ||
			    (i == 0 && json_object_size(d) == 2 &&
			        json_string_length(
			            json_object_get(d, "content")) == 0));
			continue;
		}
		EXPECT(json_is_null(json_object_get(c0, "finish_reason")));
		/* exactly one non-empty text field (besides role) */
		EXPECT_INT_EQ(json_object_size(d), i == 0 ? 2 : 1);
		if ((v = json_object_get(d, "content")) != NULL) {
			EXPECT(json_string_length(v) > 0);
			(void)buf_append(&r->content, json_string_value(v),
			    json_string_length(v)); /* test buffer: large */
		} else if ((v = json_object_get(d, "reasoning_content")) !=
		    NULL) {
			EXPECT(json_string_length(v) > 0);
			(void)buf_append(&r->rsn, json_string_value(v),
			    json_string_length(v)); /* test buffer: large */
		} else {
			TH_FAILED("frame %zu: delta without text", i);
		}
	}
	EXPECT_INT_EQ(
	    r->completion, oai_count_tokens(NULL, r->content.len + r->rsn.len));
}

static const char *
s_or_empty(const struct buf *b)
{
	return b->p != NULL ? b->p : "";
}

/* Feed pieces into a stream answer; run it through check_stream. */
static void
stream_run(struct run *r, enum oai_reasoning rf, const char *tags,
    bool include_usage, const struct piece *pc, size_t n, const char *finish)
{
	struct oai_out o;
	size_t i;

	run_init(r);
	EXPECT_INT_EQ(oai_out_init(&o, MODEL, true, include_usage, rf, tags, 17,
	                  BODY_MAX),
	    0);
	for (i = 0; i < n; i++)
		EXPECT_INT_EQ(oai_out_text(&o, pc[i].text, strlen(pc[i].text),
		                  pc[i].thinking, &r->out),
		    0);
	EXPECT_INT_EQ(oai_out_finish(&o, finish, &r->out), 0);
	EXPECT(o.done);
	oai_out_fini(&o);
	check_stream(r, include_usage, finish, 17);
}

/* The same pieces, non-stream: the parsed chat.completion. */
static json_t *
body_run(enum oai_reasoning rf, const char *tags, const struct piece *pc,
    size_t n, const char *finish)
{
	static const char *const top[] = { "id", "object", "created", "model",
		"system_fingerprint", "choices", "usage" };
	static const char *const choice[] = { "index", "message", "logprobs",
		"finish_reason" };
	struct oai_out o;
	struct buf out;
	json_t *j, *c0, *msg;
	size_t i;
	long long c;

	buf_init(&out, OUT_MAX);
	EXPECT_INT_EQ(
	    oai_out_init(&o, MODEL, false, false, rf, tags, 17, BODY_MAX), 0);
	for (i = 0; i < n; i++)
		EXPECT_INT_EQ(oai_out_text(&o, pc[i].text, strlen(pc[i].text),
		                  pc[i].thinking, &out),
		    0);
	EXPECT_INT_EQ(out.len, 0); /* nothing before the end */
	EXPECT_INT_EQ(oai_out_finish(&o, finish, &out), 0);
	oai_out_fini(&o);
	j = json_loads(s_or_empty(&out), 0, NULL);
	buf_fini(&out);
	EXPECT(j != NULL);
	if (j == NULL)
		return json_object();
	EXPECT(keys_are(j, top, 7));
	EXPECT(id_ok(json_string_value(json_object_get(j, "id"))));
	EXPECT_STR_EQ(
	    json_string_value(json_object_get(j, "object")), "chat.completion");
	EXPECT_STR_EQ(json_string_value(json_object_get(j, "model")), MODEL);
	EXPECT(json_is_integer(json_object_get(j, "created")));
	EXPECT_INT_EQ(json_array_size(json_object_get(j, "choices")), 1);
	c0 = json_array_get(json_object_get(j, "choices"), 0);
	EXPECT(keys_are(c0, choice, 4));
	EXPECT(json_is_null(json_object_get(c0, "logprobs")));
	EXPECT_STR_EQ(
	    json_string_value(json_object_get(c0, "finish_reason")), finish);
	msg = json_object_get(c0, "message");
	EXPECT_STR_EQ(
	    json_string_value(json_object_get(msg, "role")), "assistant");
	EXPECT(json_is_string(json_object_get(msg, "content")));
	EXPECT(usage_ok(json_object_get(j, "usage"), 17, &c));
	EXPECT_INT_EQ(c,
	    oai_count_tokens(NULL,
	        json_string_length(json_object_get(msg, "content")) +
	            json_string_length(
	                json_object_get(msg, "reasoning_content"))));
	return j;
}

static const char *
body_field(const json_t *j, const char *key)
{
	const json_t *msg = json_object_get(
	    json_array_get(json_object_get(j, "choices"), 0), "message");

	return json_string_value(json_object_get(msg, key));
}

/* Stream and non-stream over the same pieces agree, in content and
 * reasoning; returns nothing, checks against the expected strings. */
static void
both(enum oai_reasoning rf, const char *tags, const struct piece *pc, size_t n,
    const char *want_content, const char *want_rsn)
{
	struct run r;
	json_t *j;

	stream_run(&r, rf, tags, false, pc, n, "stop");
	EXPECT_STR_EQ(s_or_empty(&r.content), want_content);
	EXPECT_STR_EQ(s_or_empty(&r.rsn), want_rsn);
	j = body_run(rf, tags, pc, n, "stop");
	EXPECT_STR_EQ(body_field(j, "content"), want_content);
	if (*want_rsn == '\0')
		EXPECT(body_field(j, "reasoning_content") == NULL);
	else
		EXPECT_STR_EQ(body_field(j, "reasoning_content"), want_rsn);
	json_decref(j);
	run_fini(&r);
}

/* ---- plain answers ------------------------------------------------------ */

TEST(t_reasoning_parse)
{
	enum oai_reasoning rf = OAI_RF_HIDDEN;

	EXPECT_INT_EQ(oai_reasoning_parse("think_tags", &rf), 0);
	EXPECT_INT_EQ(rf, OAI_RF_THINK_TAGS);
	EXPECT_INT_EQ(oai_reasoning_parse("reasoning_content", &rf), 0);
	EXPECT_INT_EQ(rf, OAI_RF_REASONING_CONTENT);
	EXPECT_INT_EQ(oai_reasoning_parse("hidden", &rf), 0);
	EXPECT_INT_EQ(rf, OAI_RF_HIDDEN);
	EXPECT_INT_EQ(oai_reasoning_parse("Hidden", &rf), WP_EINVAL);
	EXPECT_INT_EQ(oai_reasoning_parse("", &rf), WP_EINVAL);
	EXPECT_INT_EQ(oai_reasoning_parse(NULL, &rf), WP_EINVAL);
	EXPECT_STR_EQ(
	    oai_reasoning_name[OAI_RF_REASONING_CONTENT], "reasoning_content");
}

TEST(t_count_tokens)
{
	EXPECT_INT_EQ(oai_count_tokens("", 0), 0);
	EXPECT_INT_EQ(oai_count_tokens("a", 1), 1);
	EXPECT_INT_EQ(oai_count_tokens("abcd", 4), 1);
	EXPECT_INT_EQ(oai_count_tokens("abcde", 5), 2);
	EXPECT_INT_EQ(oai_count_tokens(NULL, 4000), 1000);
}

/* The exact bytes of a short stream, field order included. */
TEST(t_stream_exact)
{
	struct oai_out o;
	struct buf out, want;

	buf_init(&out, OUT_MAX);
	buf_init(&want, OUT_MAX);
	EXPECT_INT_EQ(oai_out_init(&o, MODEL, true, false, OAI_RF_THINK_TAGS,
	                  TAGS, 5, BODY_MAX),
	    0);
	EXPECT_INT_EQ(oai_out_text(&o, "Hello", 5, false, &out), 0);
	EXPECT_INT_EQ(oai_out_text(&o, ", w\xc3\xb6rld", 8, false, &out), 0);
	EXPECT_INT_EQ(oai_out_finish(&o, "stop", &out), 0);
	(void)buf_printf(&want,
	    "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
	    "\"created\":%lld,\"model\":\"grok-4\",\"system_fingerprint\":"
	    "null,\"choices\":[{\"index\":0,\"delta\":{\"role\":"
	    "\"assistant\",\"content\":\"Hello\"},\"logprobs\":null,"
	    "\"finish_reason\":null}]}\n\n"
	    "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
	    "\"created\":%lld,\"model\":\"grok-4\",\"system_fingerprint\":"
	    "null,\"choices\":[{\"index\":0,\"delta\":{\"content\":"
	    "\", w\xc3\xb6rld\"},\"logprobs\":null,\"finish_reason\":null}]}"
	    "\n\n"
	    "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
	    "\"created\":%lld,\"model\":\"grok-4\",\"system_fingerprint\":"
	    "null,\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
	    "\"completion_tokens\":4,\"total_tokens\":9}}\n\n"
	    "data: [DONE]\n\n",
	    o.id, (long long)o.created, o.id, (long long)o.created, o.id,
	    (long long)o.created); /* test buffer: large */
	EXPECT_STR_EQ(s_or_empty(&out), s_or_empty(&want));
	EXPECT_INT_EQ(o.completion_tokens, 4); /* 13 bytes */
	/* finished: nothing more */
	EXPECT_INT_EQ(oai_out_text(&o, "x", 1, false, &out), WP_EINVAL);
	EXPECT_INT_EQ(oai_out_finish(&o, "stop", &out), WP_EINVAL);
	EXPECT_INT_EQ(oai_out_error(&o, "m", "t", NULL, &out), WP_EINVAL);
	oai_out_fini(&o);
	buf_fini(&out);
	buf_fini(&want);
}

TEST(t_stream_shape)
{
	static const struct piece pc[] = { { "One", false }, { "", false },
		{ " two", false }, { " three", false } };
	struct run r;

	stream_run(&r, OAI_RF_THINK_TAGS, TAGS, false, pc, 4, "stop");
	EXPECT_INT_EQ(r.nf, 4); /* the empty piece sent nothing */
	EXPECT_STR_EQ(s_or_empty(&r.content), "One two three");
	run_fini(&r);

	stream_run(&r, OAI_RF_THINK_TAGS, TAGS, true, pc, 4, "length");
	EXPECT_INT_EQ(r.nf, 5); /* + the usage-only chunk */
	EXPECT_STR_EQ(s_or_empty(&r.content), "One two three");
	EXPECT_INT_EQ(r.completion, 4);
	run_fini(&r);
}

TEST(t_ids_differ)
{
	struct oai_out a, b;

	EXPECT_INT_EQ(
	    oai_out_init(&a, MODEL, true, false, OAI_RF_HIDDEN, "", 0, 16), 0);
	EXPECT_INT_EQ(
	    oai_out_init(&b, MODEL, true, false, OAI_RF_HIDDEN, "", 0, 16), 0);
	EXPECT(id_ok(a.id));
	EXPECT(id_ok(b.id));
	EXPECT(strcmp(a.id, b.id) != 0);
	oai_out_fini(&a);
	oai_out_fini(&b);
}

/* Nothing to say: the finish chunk still carries the role once. */
TEST(t_empty_answer)
{
	struct run r;
	json_t *j;

	stream_run(&r, OAI_RF_THINK_TAGS, TAGS, true, NULL, 0, "stop");
	EXPECT_INT_EQ(r.nf, 2);
	EXPECT_INT_EQ(r.completion, 0);
	run_fini(&r);
	j = body_run(OAI_RF_THINK_TAGS, TAGS, NULL, 0, "stop");
	EXPECT_STR_EQ(body_field(j, "content"), "");
	json_decref(j);
}

TEST(t_finish_reason)
{
	struct oai_out o;
	struct buf out;

	buf_init(&out, OUT_MAX);
	EXPECT_INT_EQ(
	    oai_out_init(&o, MODEL, true, false, OAI_RF_HIDDEN, "", 0, 16), 0);
	EXPECT_INT_EQ(oai_out_finish(&o, "error", &out), WP_EINVAL);
	EXPECT_INT_EQ(out.len, 0);
	EXPECT_INT_EQ(oai_out_finish(&o, NULL, &out), 0); /* = stop */
	EXPECT_CONTAINS(out.p, "\"finish_reason\":\"stop\"");
	oai_out_fini(&o);
	buf_fini(&out);
}

TEST(t_model_too_long)
{
	struct oai_out o;
	char name[100];

	memset(name, 'm', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	EXPECT_INT_EQ(
	    oai_out_init(&o, name, true, false, OAI_RF_HIDDEN, "", 0, 16),
	    WP_EINVAL);
	oai_out_fini(&o); /* safe after a failed init */
}

/* ---- reasoning ---------------------------------------------------------- */

static const struct piece think_pc[] = {
	{ "Let me ", true },
	{ "think.", true },
	{ "The answer", false },
	/* after the answer began: dropped with think tags, kept in the
	 * reasoning_content field (which has no order to keep) */
	{ "late thought", true },
	{ " is 42.", false },
};

TEST(t_think_tags)
{
	struct run r;

	both(OAI_RF_THINK_TAGS, TAGS, think_pc, 5,
	    "<think>\nLet me think.\n</think>\nThe answer is 42.", "");
	stream_run(&r, OAI_RF_THINK_TAGS, TAGS, false, think_pc, 5, "stop");
	/* the first frame opens the block, the answer's first closes it */
	EXPECT_CONTAINS(r.out.p, "\"content\":\"<think>\\nLet me \"");
	EXPECT_CONTAINS(r.out.p, "{\"content\":\"\\n</think>\\nThe answer\"}");
	EXPECT(strstr(r.out.p, "late") == NULL);
	run_fini(&r);
}

/* The stream ends while thinking: finish closes the block. */
TEST(t_think_unclosed)
{
	static const struct piece pc[] = { { "hmm", true } };

	both(OAI_RF_THINK_TAGS, TAGS, pc, 1, "<think>\nhmm\n</think>\n", "");
	both(OAI_RF_REASONING_CONTENT, TAGS, pc, 1, "", "hmm");
	both(OAI_RF_HIDDEN, TAGS, pc, 1, "", "");
}

TEST(t_reasoning_content)
{
	struct run r;

	both(OAI_RF_REASONING_CONTENT, TAGS, think_pc, 5, "The answer is 42.",
	    "Let me think.late thought");
	stream_run(
	    &r, OAI_RF_REASONING_CONTENT, TAGS, false, think_pc, 5, "stop");
	/* the role rides on the first reasoning delta */
	EXPECT_CONTAINS(r.out.p,
	    "\"delta\":{\"role\":\"assistant\",\"reasoning_content\":"
	    "\"Let me \"}");
	EXPECT(strstr(r.out.p, "<think>") == NULL);
	run_fini(&r);
}

TEST(t_hidden)
{
	struct run r;

	both(OAI_RF_HIDDEN, TAGS, think_pc, 5, "The answer is 42.", "");
	stream_run(&r, OAI_RF_HIDDEN, TAGS, false, think_pc, 5, "stop");
	EXPECT(strstr(r.out.p, "think") == NULL);
	EXPECT_INT_EQ(r.completion, oai_count_tokens(NULL, 17));
	run_fini(&r);
}

/* Reasoning and answer each keep their own filter state. */
TEST(t_reasoning_filtered)
{
	static const struct piece pc[] = {
		{ "Search<xai:tool_usage_card><xai:tool_name>web", true },
		{ "</xai:tool_name></xai:tool_usage_card>ing <", true },
		{ "Done", false },
		{ "<grok:render card=\"1\">x</grok:render>.", false },
	};

	both(OAI_RF_THINK_TAGS, TAGS, pc, 4,
	    "<think>\nSearching <\n</think>\nDone.", "");
	both(OAI_RF_REASONING_CONTENT, TAGS, pc, 4, "Done.", "Searching <");
}

/* Answer text before any reasoning: later reasoning is dropped. */
TEST(t_answer_first)
{
	static const struct piece pc[] = { { "A", false }, { "r", true },
		{ "B", false } };

	both(OAI_RF_THINK_TAGS, TAGS, pc, 3, "AB", "");
	both(OAI_RF_REASONING_CONTENT, TAGS, pc, 3, "AB", "r");
}

/* ---- errors ------------------------------------------------------------- */

TEST(t_error_event)
{
	struct oai_out o;
	struct run r;
	const json_t *e;
	static const char *const ek[] = { "message", "type", "param", "code" };

	run_init(&r);
	EXPECT_INT_EQ(oai_out_init(&o, MODEL, true, true, OAI_RF_THINK_TAGS,
	                  TAGS, 3, BODY_MAX),
	    0);
	EXPECT_INT_EQ(oai_out_text(&o, "partial", 7, false, &r.out), 0);
	EXPECT_INT_EQ(oai_out_error(&o, "upstream gone \xff", "server_error",
	                  "upstream_error", &r.out),
	    0);
	EXPECT_INT_EQ(oai_out_text(&o, "x", 1, false, &r.out), WP_EINVAL);
	EXPECT_INT_EQ(oai_out_finish(&o, "stop", &r.out), WP_EINVAL);
	oai_out_fini(&o);
	run_parse(&r);
	EXPECT(!r.bad_framing);
	EXPECT(r.done_last);
	EXPECT_INT_EQ(r.nf, 2);
	if (r.nf == 2) {
		EXPECT(json_object_size(r.f[1]) == 1);
		e = json_object_get(r.f[1], "error");
		EXPECT(keys_are(e, ek, 4));
		EXPECT_STR_EQ(json_string_value(json_object_get(e, "message")),
		    "upstream gone \xef\xbf\xbd");
		EXPECT_STR_EQ(json_string_value(json_object_get(e, "type")),
		    "server_error");
		EXPECT(json_is_null(json_object_get(e, "param")));
		EXPECT_STR_EQ(json_string_value(json_object_get(e, "code")),
		    "upstream_error");
	}
	run_fini(&r);

	/* code NULL is JSON null; non-stream answers have no error event */
	run_init(&r);
	EXPECT_INT_EQ(
	    oai_out_init(&o, MODEL, true, false, OAI_RF_HIDDEN, "", 0, 16), 0);
	EXPECT_INT_EQ(oai_out_error(&o, "m", "t", NULL, &r.out), 0);
	EXPECT_CONTAINS(r.out.p,
	    "data: {\"error\":{\"message\":\"m\",\"type\":\"t\","
	    "\"param\":null,\"code\":null}}\n\ndata: [DONE]\n\n");
	oai_out_fini(&o);
	EXPECT_INT_EQ(
	    oai_out_init(&o, MODEL, false, false, OAI_RF_HIDDEN, "", 0, 16), 0);
	EXPECT_INT_EQ(oai_out_error(&o, "m", "t", NULL, &r.out), WP_EINVAL);
	oai_out_fini(&o);
	run_fini(&r);
}

/* ---- the tag filter ----------------------------------------------------- */

static char *
tagf_all(
    const char *tags, const char *const *pieces, const size_t *lens, size_t n)
{
	struct oai_tagf f;
	struct buf out;
	size_t i;

	buf_init(&out, OUT_MAX);
	oai_tagf_init(&f, tags);
	for (i = 0; i < n; i++) {
		EXPECT_INT_EQ(oai_tagf_feed(&f, pieces[i], lens[i], &out), 0);
		EXPECT(f.hold.len <= OAI_TAG_LEN + 2);
	}
	EXPECT_INT_EQ(oai_tagf_flush(&f, &out), 0);
	oai_tagf_fini(&f);
	if (out.p == NULL)
		(void)buf_puts(&out, ""); /* test buffer: large */
	return buf_take(&out);
}

static char *
tagf_one(const char *tags, const char *s)
{
	size_t len = strlen(s);

	return tagf_all(tags, &s, &len, 1);
}

#define EXPECT_FILTER(tags, in, want)                                          \
	do {                                                                   \
		char *th_got = tagf_one((tags), (in));                         \
		EXPECT_STR_EQ(th_got, (want));                                 \
		free(th_got);                                                  \
	} while (0)

/* Every case of the filter, each as one piece. */
TEST(t_tagf_cases)
{
	/* plain, nested, self-closing, stray */
	EXPECT_FILTER(
	    TAGS, "a<xaiartifact id=\"1\">hidden</xaiartifact>b", "ab");
	EXPECT_FILTER(TAGS,
	    "a<xaiartifact><xaiartifact>in</xaiartifact>still"
	    "</xaiartifact>b",
	    "ab");
	EXPECT_FILTER(
	    TAGS, "a<grok:render type=\"x\"/>b<grok:render/>c", "abc");
	EXPECT_FILTER(TAGS, "a</xaiartifact>b</grok:render >c", "abc");
	/* other configured tags inside one: all gone */
	EXPECT_FILTER(TAGS,
	    "a<xaiartifact><grok:render>x</grok:render>y</xaiartifact>b", "ab");
	/* a close of another name inside does not end it */
	EXPECT_FILTER(
	    TAGS, "a<xaiartifact>x</grok:render>y</xaiartifact>b", "ab");
	/* ">" inside a quoted value, both quotes, blanks around "=" */
	EXPECT_FILTER(TAGS,
	    "a<xaiartifact title=\"x>y\" t2 = 'p>q'>h</xaiartifact>b", "ab");
	EXPECT_FILTER(TAGS, "a<grok:render t=\"x>y\" u='/>'/>b", "ab");
	/* an apostrophe that is not a value does not open a quote */
	EXPECT_FILTER(TAGS, "a<grok:render it's>x</grok:render>b", "ab");
	/* name then newline / tab */
	EXPECT_FILTER(
	    TAGS, "a<grok:render\n\ttype=\"r\">x</grok:render>b", "ab");
	/* look-alikes and other markup pass untouched */
	EXPECT_FILTER(TAGS, "<xaiartifactual>F</xaiartifactual>",
	    "<xaiartifactual>F</xaiartifactual>");
	EXPECT_FILTER(
	    TAGS, "<xai>x</xai><xai:tool>y", "<xai>x</xai><xai:tool>y");
	EXPECT_FILTER(TAGS, "<b>bold</b> a < b, c<d, <<>> </ x",
	    "<b>bold</b> a < b, c<d, <<>> </ x");
	EXPECT_FILTER(TAGS, "<XAIARTIFACT>case</XAIARTIFACT>",
	    "<XAIARTIFACT>case</XAIARTIFACT>");
	EXPECT_FILTER(TAGS, "x<<xaiartifact>y</xaiartifact>z", "x<z");
	/* unterminated: the rest is dropped; a "<xa" at the end is text */
	EXPECT_FILTER(TAGS, "before<xaiartifact>never closed", "before");
	EXPECT_FILTER(TAGS, "before<xaiartifact id=\"1", "before");
	EXPECT_FILTER(TAGS, "before <xai", "before <xai");
	EXPECT_FILTER(TAGS, "before </grok:rende", "before </grok:rende");
	EXPECT_FILTER(TAGS, "end <", "end <");
	/* empty list, blanks, junk names: nothing filtered */
	EXPECT_FILTER("", "a<xaiartifact>b</xaiartifact>",
	    "a<xaiartifact>b</xaiartifact>");
	EXPECT_FILTER(NULL, "a<x>", "a<x>");
	EXPECT_FILTER(" , ,", "a<x>b</x>", "a<x>b</x>");
	EXPECT_FILTER("<x>,a b", "a<x>b</x><a b>", "a<x>b</x><a b>");
	/* a name that is a prefix of another */
	EXPECT_FILTER("grok,grok:render",
	    "1<grok>2</grok>3<grok:render>4</grok:render>5<grok:x>",
	    "135"
	    "<grok:x>");
	/* NUL bytes are text */
	{
		static const char in[] = "a\0<xaiartifact>\0</xaiartifact>\0b";
		const char *p = in;
		size_t len = sizeof(in) - 1;
		char *got = tagf_all(TAGS, &p, &len, 1);

		EXPECT(memcmp(got, "a\0\0b", 5) == 0);
		free(got);
	}
}

TEST(t_tagf_init)
{
	struct oai_tagf f;
	char long_name[OAI_TAG_LEN + 8];

	oai_tagf_init(&f, " xaiartifact ,\tgrok:render\n,,x");
	EXPECT_INT_EQ(f.ntags, 3);
	EXPECT_STR_EQ(f.tags[0], "xaiartifact");
	EXPECT_STR_EQ(f.tags[1], "grok:render");
	EXPECT_STR_EQ(f.tags[2], "x");
	oai_tagf_fini(&f);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	oai_tagf_init(&f, long_name);
	EXPECT_INT_EQ(f.ntags, 0);
	oai_tagf_fini(&f);
	oai_tagf_init(
	    &f, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s"); /* 19 > max */
	EXPECT_INT_EQ(f.ntags, OAI_TAGS_MAX);
	oai_tagf_fini(&f);
}

/* Text that cannot start a tag comes out at once, not at the end. */
TEST(t_tagf_prompt)
{
	struct oai_tagf f;
	struct buf out;

	buf_init(&out, OUT_MAX);
	oai_tagf_init(&f, TAGS);
	EXPECT_INT_EQ(oai_tagf_feed(&f, "a < b <b>bold</b>", 17, &out), 0);
	EXPECT_STR_EQ(out.p, "a < b <b>bold</b>");
	EXPECT_INT_EQ(oai_tagf_feed(&f, " x <", 4, &out), 0);
	EXPECT_STR_EQ(out.p, "a < b <b>bold</b> x "); /* "<" undecided */
	EXPECT_INT_EQ(oai_tagf_feed(&f, "xa", 2, &out), 0);
	EXPECT_STR_EQ(out.p, "a < b <b>bold</b> x "); /* "<xa" still */
	EXPECT_INT_EQ(oai_tagf_feed(&f, "mple", 4, &out), 0);
	EXPECT_STR_EQ(out.p, "a < b <b>bold</b> x <xample");
	EXPECT_INT_EQ(oai_tagf_feed(&f, " <xaiartifact", 13, &out), 0);
	EXPECT_INT_EQ(f.hold.len, 12);
	EXPECT_INT_EQ(oai_tagf_feed(&f, ">gone", 5, &out), 0);
	EXPECT_INT_EQ(f.hold.len, 0);
	EXPECT_INT_EQ(oai_tagf_flush(&f, &out), 0);
	EXPECT_STR_EQ(out.p, "a < b <b>bold</b> x <xample ");
	oai_tagf_fini(&f);
	buf_fini(&out);
}

static const char split_in[] =
    "A<xaiartifact id=\"1\" title=\"x>y\">hidden <b>x</b></xaiartifact>B"
    "<grok:render type='r'><grok:render>n</grok:render>m</grok:render>C"
    "<xai:tool_usage_card t=\"1/>2\"/>D</xaiartifact>E a < b <b>bold</b> "
    "<xaiartifactual>F</xaiartifactual> \xc3\xa9<xai:tool_usage_card>"
    "<xai:tool_name>web</xai:tool_name></xai:tool_usage_card>G </ <xai";
static const char split_want[] =
    "ABCDE a < b <b>bold</b> <xaiartifactual>F</xaiartifactual> "
    "\xc3\xa9G </ <xai";

/* One split at every byte, then two at every pair of bytes. */
TEST(t_tagf_every_split)
{
	size_t len = sizeof(split_in) - 1, i, j, lens[3];
	const char *pc[3];
	char *got;

	got = tagf_one(TAGS, split_in);
	EXPECT_STR_EQ(got, split_want);
	free(got);
	for (i = 0; i <= len; i++) {
		pc[0] = split_in;
		lens[0] = i;
		pc[1] = split_in + i;
		lens[1] = len - i;
		got = tagf_all(TAGS, pc, lens, 2);
		if (strcmp(got, split_want) != 0)
			TH_FAILED("split at %zu: \"%s\"", i, got);
		free(got);
	}
	for (i = 0; i <= len; i += 3) {
		for (j = i; j <= len; j++) {
			pc[0] = split_in;
			lens[0] = i;
			pc[1] = split_in + i;
			lens[1] = j - i;
			pc[2] = split_in + j;
			lens[2] = len - j;
			got = tagf_all(TAGS, pc, lens, 3);
			if (strcmp(got, split_want) != 0)
				TH_FAILED(
				    "split at %zu,%zu: \"%s\"", i, j, got);
			free(got);
		}
	}
}

/* A small fixed-seed generator: the same splits on every run. */
static uint32_t
lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

TEST(t_tagf_random_splits)
{
	size_t len = sizeof(split_in) - 1, n, off, lens[64];
	const char *pc[64];
	uint32_t seed = 12345;
	unsigned round;
	char *got;

	for (round = 0; round < 2000; round++) {
		n = 0;
		for (off = 0; off < len && n < 63; n++) {
			size_t k = lcg(&seed) % 12;

			if (k > len - off)
				k = len - off;
			pc[n] = split_in + off;
			lens[n] = k; /* k == 0: an empty piece */
			off += k;
		}
		pc[n] = split_in + off;
		lens[n++] = len - off;
		got = tagf_all(TAGS, pc, lens, n);
		if (strcmp(got, split_want) != 0)
			TH_FAILED("round %u: \"%s\"", round, got);
		free(got);
	}
}

/* The same text split through oai_out: stream == non-stream == want. */
TEST(t_split_through_answer)
{
	size_t len = sizeof(split_in) - 1, i;
	struct piece pc[3];
	char a[sizeof(split_in)], b[sizeof(split_in)];

	for (i = 0; i <= len; i += 7) {
		memcpy(a, split_in, i);
		a[i] = '\0';
		memcpy(b, split_in + i, len - i + 1);
		pc[0] = (struct piece){ a, false };
		pc[1] = (struct piece){ b, false };
		both(OAI_RF_THINK_TAGS, TAGS, pc, 2, split_want, "");
		pc[0] = (struct piece){ a, true };
		pc[1] = (struct piece){ b, true };
		pc[2] = (struct piece){ "ok", false };
		both(OAI_RF_REASONING_CONTENT, TAGS, pc, 3, "ok", split_want);
	}
}

/*
 * Random splits of the text into up to 16 pieces through oai_out, stream
 * and non-stream: plain ASCII pieces take a short cut past the filter
 * and the repair, and must give what the long way gives around tags, a
 * held "<" and a UTF-8 sequence cut between pieces.
 */
TEST(t_split_random_through_answer)
{
	static char txt[16][sizeof(split_in)];
	size_t len = sizeof(split_in) - 1, off, n, k;
	struct piece pc[16];
	uint32_t seed = 777;
	unsigned round;

	for (round = 0; round < 300; round++) {
		for (n = 0, off = 0; n < 15 && off < len; n++, off += k) {
			k = 1 + lcg(&seed) % 9;
			if (k > len - off)
				k = len - off;
			memcpy(txt[n], split_in + off, k);
			txt[n][k] = '\0';
			pc[n] = (struct piece){ txt[n], false };
		}
		memcpy(txt[n], split_in + off, len - off + 1);
		pc[n] = (struct piece){ txt[n], false };
		both(OAI_RF_THINK_TAGS, TAGS, pc, n + 1, split_want, "");
	}
}

/* ---- UTF-8 -------------------------------------------------------------- */

TEST(t_utf8_repair)
{
	static const struct piece bad[] = {
		{ "ok\xff\xfe bad", false },
		{ " \xc0\xaf overlong \xed\xa0\x80 surrogate", false },
		{ " \xf4\x90\x80\x80 big \xe2\x82", false }, /* cut, then */
		{ "x", false },                              /* not completed */
	};
	static const struct piece split[] = {
		{ "caf\xc3", false },
		{ "\xa9 \xe2\x82", false },
		{ "\xac \xf0\x9f", false },
		{ "\x98", false },
		{ "\x80!", false },
	};
	static const struct piece tail[] = { { "end\xe2\x82", false } };
	static const struct piece rsn[] = { { "r\xe2", true },
		{ "\x82\xac", true }, { "\xe2", true }, { "a", false } };

	both(OAI_RF_THINK_TAGS, TAGS, bad, 4,
	    "ok\xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd\xef\xbf\xbd overlong "
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate \xef\xbf\xbd"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd big \xef\xbf\xbd"
	    "\xef\xbf\xbdx",
	    "");
	/* sequences split across pieces are joined, not replaced */
	both(OAI_RF_THINK_TAGS, TAGS, split, 5,
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80!", "");
	/* cut off by the end of the answer */
	both(OAI_RF_THINK_TAGS, TAGS, tail, 1, "end\xef\xbf\xbd\xef\xbf\xbd",
	    "");
	/* the reasoning's cut sequence is released before the answer */
	both(OAI_RF_REASONING_CONTENT, TAGS, rsn, 4, "a",
	    "r\xe2\x82\xac\xef\xbf\xbd");
	both(OAI_RF_THINK_TAGS, TAGS, rsn, 4,
	    "<think>\nr\xe2\x82\xac\xef\xbf\xbd\n</think>\na", "");
}

/* ---- caps --------------------------------------------------------------- */

TEST(t_caps)
{
	struct oai_out o;
	struct buf out;
	static const char big[] = "a longer piece that will not fit in what "
	                          "is left of the output buffer";
	size_t before;

	/* stream: out too small for a frame; it keeps no half frame */
	buf_init(&out, 120);
	EXPECT_INT_EQ(
	    oai_out_init(&o, MODEL, true, false, OAI_RF_HIDDEN, "", 0, 16), 0);
	EXPECT_INT_EQ(oai_out_text(&o, "hi", 2, false, &out), WP_ETOOBIG);
	EXPECT_INT_EQ(out.len, 0);
	EXPECT(!o.sent_role);
	buf_fini(&out);
	buf_init(&out, 400);
	EXPECT_INT_EQ(oai_out_text(&o, "hi", 2, false, &out), 0);
	before = out.len;
	EXPECT_INT_EQ(
	    oai_out_text(&o, big, strlen(big), false, &out), WP_ETOOBIG);
	EXPECT_INT_EQ(out.len, before);
	EXPECT_INT_EQ(strlen(out.p), before);
	oai_out_fini(&o);
	buf_fini(&out);

	/* non-stream: max_bytes caps the content, and the reasoning */
	buf_init(&out, OUT_MAX);
	EXPECT_INT_EQ(oai_out_init(&o, MODEL, false, false,
	                  OAI_RF_REASONING_CONTENT, "", 0, 10),
	    0);
	EXPECT_INT_EQ(oai_out_text(&o, "0123456789", 10, true, &out), 0);
	EXPECT_INT_EQ(oai_out_text(&o, "!", 1, true, &out), WP_ETOOBIG);
	EXPECT_INT_EQ(oai_out_text(&o, "0123456", 7, false, &out), 0);
	EXPECT_INT_EQ(oai_out_text(&o, "7890", 4, false, &out), WP_ETOOBIG);
	EXPECT_INT_EQ(out.len, 0);
	oai_out_fini(&o);
	/* <think> markup counts against the cap too */
	EXPECT_INT_EQ(
	    oai_out_init(&o, MODEL, false, false, OAI_RF_THINK_TAGS, "", 0, 10),
	    0);
	EXPECT_INT_EQ(oai_out_text(&o, "abc", 3, true, &out), WP_ETOOBIG);
	oai_out_fini(&o);
	buf_fini(&out);
}

int
main(void)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 2;
	}
	RUN(t_reasoning_parse);
	RUN(t_count_tokens);
	RUN(t_stream_exact);
	RUN(t_stream_shape);
	RUN(t_ids_differ);
	RUN(t_empty_answer);
	RUN(t_finish_reason);
	RUN(t_model_too_long);
	RUN(t_think_tags);
	RUN(t_think_unclosed);
	RUN(t_reasoning_content);
	RUN(t_hidden);
	RUN(t_reasoning_filtered);
	RUN(t_answer_first);
	RUN(t_error_event);
	RUN(t_tagf_cases);
	RUN(t_tagf_init);
	RUN(t_tagf_prompt);
	RUN(t_tagf_every_split);
	RUN(t_tagf_random_splits);
	RUN(t_split_random_through_answer);
	RUN(t_split_through_answer);
	RUN(t_utf8_repair);
	RUN(t_caps);
	TH_DONE();
}
