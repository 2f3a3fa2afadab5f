/*
 * Unit tests of grok.com's protocol module (worker/grok.c, grok_nd.c,
 * grok_msg.c): flattening of messages, the payloads, x-statsig-id and
 * request ids, the header list, the NDJSON reader fed whole, byte by byte
 * and in random pieces, rate-limit answers and error descriptions.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "cfg.h"
#include "err.h"
#include "grok.h"
#include "util.h"

#include "th.h"

/* ---- helpers ----------------------------------------------------------- */

static json_t *
jparse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	if (j == NULL) {
		fprintf(stderr, "bad test JSON: %s: %s\n", e.text, s);
		exit(2);
	}
	return j;
}

struct flat {
	int rc;
	char text[4096];
	char **img;
	size_t nimg;
	char err[256], param[128];
};

static void
flat_free(struct flat *f)
{
	size_t i;

	for (i = 0; i < f->nimg; i++)
		free(f->img[i]);
	free(f->img);
	f->img = NULL;
	f->nimg = 0;
}

/* Flatten the messages in s (JSON) into f. */
static void
flat(struct flat *f, const char *s, size_t max)
{
	json_t *j = jparse(s);
	struct buf b;

	memset(f, 0, sizeof(*f));
	buf_init(&b, max);
	f->rc = grok_flatten(j, &b, &f->img, &f->nimg, f->err, sizeof(f->err),
	    f->param, sizeof(f->param));
	(void)util_strlcpy(f->text, b.p != NULL ? b.p : "",
	    sizeof(f->text)); /* tests stay small */
	buf_fini(&b);
	json_decref(j);
}

/* ---- flatten ----------------------------------------------------------- */

TEST(flatten_single_user_as_is)
{
	struct flat f;

	flat(&f, "[{\"role\":\"user\",\"content\":\"Say hi\"}]", 1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text, "Say hi");
	EXPECT_INT_EQ(f.nimg, 0);
	flat_free(&f);

	/* Parts: still no label, text parts joined by a newline. */
	flat(&f,
	    "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
	    "\"line one\"},{\"type\":\"text\",\"text\":\"line two\"}]}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text, "line one\nline two");
	flat_free(&f);
}

TEST(flatten_every_role)
{
	struct flat f;

	flat(&f,
	    "[{\"role\":\"system\",\"content\":\"Be terse.\"},"
	    "{\"role\":\"system\",\"content\":\"Answer in English.\"},"
	    "{\"role\":\"developer\",\"content\":\"No emoji.\"},"
	    "{\"role\":\"user\",\"name\":\"alice\",\"content\":\"Weather?\"},"
	    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
	    "\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Berlin\\\"}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":"
	    "\"21 C, sunny\"},"
	    "{\"role\":\"assistant\",\"content\":\"Sunny, 21 C.\"},"
	    "{\"role\":\"user\",\"content\":\"And tomorrow?\"}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text,
	    "system: Be terse.\n\n"
	    "system: Answer in English.\n\n"
	    "developer: No emoji.\n\n"
	    "user (alice): Weather?\n\n"
	    "assistant: [tool call call_1: get_weather({\"city\":\"Berlin\"})]\n\n"
	    "tool (call_1): 21 C, sunny\n\n"
	    "assistant: Sunny, 21 C.\n\n"
	    "And tomorrow?");
	flat_free(&f);

	/* A history that ends on the assistant keeps every label. */
	flat(&f,
	    "[{\"role\":\"user\",\"content\":\"Hi\"},"
	    "{\"role\":\"assistant\",\"content\":\"Hello\",\"tool_calls\":"
	    "[{\"id\":\"c2\",\"function\":{\"name\":\"f\",\"arguments\":"
	    "{\"a\":1}}}]}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text,
	    "user: Hi\n\nassistant: Hello\n"
	    "[tool call c2: f({\"a\":1})]");
	flat_free(&f);

	/* Legacy function role and function_call. */
	flat(&f,
	    "[{\"role\":\"assistant\",\"content\":\"\",\"function_call\":"
	    "{\"name\":\"g\",\"arguments\":\"{}\"}},"
	    "{\"role\":\"function\",\"name\":\"g\",\"content\":\"ok\"},"
	    "{\"role\":\"tool\",\"name\":\"h\",\"tool_call_id\":\"c3\","
	    "\"content\":\"x\\ny\"}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text,
	    "assistant: [tool call: g({})]\n\n"
	    "function (g): ok\n\n"
	    "tool (h, c3): x\ny");
	flat_free(&f);
}

TEST(flatten_null_and_empty_content)
{
	struct flat f;

	flat(&f,
	    "[{\"role\":\"system\",\"content\":null},"
	    "{\"role\":\"assistant\",\"content\":\"\"},"
	    "{\"role\":\"assistant\"},"
	    "{\"role\":\"user\",\"content\":\"Q\"}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text, "Q");
	flat_free(&f);

	flat(&f, "[{\"role\":\"user\",\"content\":null}]", 1 << 20);
	EXPECT_INT_EQ(f.rc, WP_EINVAL);
	EXPECT_STR_EQ(f.param, "messages");
	flat_free(&f);
}

TEST(flatten_think_stripped)
{
	struct flat f;

	flat(&f,
	    "[{\"role\":\"user\",\"content\":\"A\"},"
	    "{\"role\":\"assistant\",\"content\":\"<think>\\nplan\\n</think>"
	    "\\n\\nAnswer one\"},"
	    "{\"role\":\"assistant\",\"content\":\"x<think>a</think>y<think>b"
	    "</think>z\"},"
	    "{\"role\":\"assistant\",\"content\":\"  <think>cut off while "
	    "thinking\"},"
	    "{\"role\":\"assistant\",\"content\":\"Use <think> tags <think>"
	    "\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
	    "\"<think>p\"},{\"type\":\"text\",\"text\":\"q</think>Parts\"}]},"
	    "{\"role\":\"user\",\"content\":\"<think>user text stays"
	    "</think>\"}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text,
	    "user: A\n\n"
	    "assistant: Answer one\n\n"
	    "assistant: xyz\n\n"
	    "assistant: Use <think> tags <think>\n\n"
	    "assistant: Parts\n\n"
	    "<think>user text stays</think>");
	flat_free(&f);
}

TEST(flatten_images_in_order)
{
	struct flat f;

	flat(&f,
	    "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
	    "\"image_url\":{\"url\":\"https://example.com/1.png\"}}]},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"image_url\","
	    "\"image_url\":\"data:image/png;base64,AAAA\"}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
	    "\"compare\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
	    "\"iVBORw0KGgo=\",\"detail\":\"high\"}},{\"type\":\"text\","
	    "\"text\":\"these\"}]}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text, "compare\nthese");
	EXPECT_INT_EQ(f.nimg, 3);
	if (f.nimg == 3) {
		EXPECT_STR_EQ(f.img[0], "https://example.com/1.png");
		EXPECT_STR_EQ(f.img[1], "data:image/png;base64,AAAA");
		EXPECT_STR_EQ(f.img[2], "iVBORw0KGgo=");
	}
	flat_free(&f);

	/* An image alone is a request. */
	flat(&f,
	    "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
	    "\"image_url\":{\"url\":\"https://example.com/2.png\"}}]}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, 0);
	EXPECT_STR_EQ(f.text, "");
	EXPECT_INT_EQ(f.nimg, 1);
	flat_free(&f);
}

struct bad_case {
	const char *json, *err, *param;
};

TEST(flatten_wrong_types)
{
	static const struct bad_case cases[] = {
		{ "[{\"role\":\"user\",\"content\":\"a\"},"
		  "{\"role\":\"assistant\",\"content\":\"b\"},"
		  "{\"role\":\"user\",\"content\":42}]",
		    "messages[2].content must be a string, an array of parts, "
		    "or null",
		    "messages[2].content" },
		{ "[{\"role\":\"user\",\"content\":{\"text\":\"a\"}}]",
		    "messages[0].content must be a string, an array of parts, "
		    "or null",
		    "messages[0].content" },
		{ "{\"role\":\"user\"}", "messages must be an array",
		    "messages" },
		{ "[]", "messages must not be empty", "messages" },
		{ "[\"hi\"]", "messages[0] must be an object", "messages[0]" },
		{ "[{\"content\":\"a\"}]", "messages[0].role must be a string",
		    "messages[0].role" },
		{ "[{\"role\":\"bot\",\"content\":\"a\"}]",
		    "messages[0].role must be one of system, developer, user, "
		    "assistant, tool",
		    "messages[0].role" },
		{ "[{\"role\":\"user\",\"content\":[\"a\"]}]",
		    "messages[0].content[0] must be an object",
		    "messages[0].content[0]" },
		{ "[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
		  "\"text\":\"a\"},{\"type\":\"text\",\"text\":5}]}]",
		    "messages[0].content[1].text must be a string",
		    "messages[0].content[1].text" },
		{ "[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]",
		    "messages[0].content[0].type must be a string",
		    "messages[0].content[0].type" },
		{ "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
		  "\"image_url\":{}}]}]",
		    "messages[0].content[0].image_url must be an object with a "
		    "url string, or a url string",
		    "messages[0].content[0].image_url" },
		{ "[{\"role\":\"user\",\"content\":[{\"type\":"
		  "\"input_audio\"}]}]",
		    "messages[0].content[0].type \"input_audio\" is not "
		    "supported (use text or image_url)",
		    "messages[0].content[0].type" },
		{ "[{\"role\":\"assistant\",\"content\":\"a\",\"tool_calls\":"
		  "{}}]",
		    "messages[0].tool_calls must be an array",
		    "messages[0].tool_calls" },
	};
	struct flat f;
	size_t i;

	for (i = 0; i < ARRAY_LEN(cases); i++) {
		flat(&f, cases[i].json, 1 << 20);
		EXPECT_INT_EQ(f.rc, WP_EINVAL);
		EXPECT_STR_EQ(f.err, cases[i].err);
		EXPECT_STR_EQ(f.param, cases[i].param);
		EXPECT(f.img == NULL && f.nimg == 0);
		EXPECT_STR_EQ(f.text, "");
		flat_free(&f);
	}

	/* Images collected before the error are freed (ASan checks). */
	flat(&f,
	    "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
	    "\"image_url\":\"https://example.com/a.png\"}]},"
	    "{\"role\":\"user\",\"content\":true}]",
	    1 << 20);
	EXPECT_INT_EQ(f.rc, WP_EINVAL);
	EXPECT_STR_EQ(f.param, "messages[1].content");
	EXPECT(f.img == NULL && f.nimg == 0);
	flat_free(&f);
}

TEST(flatten_too_big)
{
	struct flat f;

	flat(&f, "[{\"role\":\"user\",\"content\":\"0123456789abcdef\"}]", 10);
	EXPECT_INT_EQ(f.rc, WP_ETOOBIG);
	EXPECT_STR_EQ(f.param, "messages");
	flat_free(&f);
}

/* ---- payload ----------------------------------------------------------- */

static const struct cfg_model model_fast = { "grok-4-fast",
	"grok-4-mini-thinking-tahoe", "MODEL_MODE_GROK_4_MINI_THINKING",
	"grok-4-mini-thinking-tahoe", 1, CFG_POOL_NORMAL, 0, { 0 } };
static const struct cfg_model model_heavy = { "grok-4-heavy", "grok-4-heavy",
	"MODEL_MODE_HEAVY", "grok-4-heavy", 1, CFG_POOL_SUPER, 0, { 0 } };
static const struct cfg_model model_video = { "grok-imagine-0.9", "grok-3",
	"MODEL_MODE_FAST", "grok-3", 1, CFG_POOL_NORMAL, 1, { 0 } };

TEST(payload_reference_example)
{
	/* Reference section 3.1's example, byte for byte. */
	static const char *const want =
	    "{\"temporary\":true,\"modelName\":\"grok-4-mini-thinking-tahoe\","
	    "\"message\":\"Describe this picture\",\"fileAttachments\":"
	    "[\"6f1c0d2e-aaaa-bbbb-cccc-000000000001\"],\"imageAttachments\":"
	    "[],\"disableSearch\":false,\"enableImageGeneration\":true,"
	    "\"returnImageBytes\":false,\"returnRawGrokInXaiRequest\":false,"
	    "\"enableImageStreaming\":true,\"imageGenerationCount\":2,"
	    "\"forceConcise\":false,\"toolOverrides\":{},\"enableSideBySide\":"
	    "true,\"sendFinalMetadata\":true,\"isReasoning\":false,"
	    "\"webpageUrls\":[],\"disableTextFollowUps\":true,"
	    "\"responseMetadata\":{\"requestModelDetails\":{\"modelId\":"
	    "\"grok-4-mini-thinking-tahoe\"}},\"disableMemory\":false,"
	    "\"forceSideBySide\":false,\"modelMode\":"
	    "\"MODEL_MODE_GROK_4_MINI_THINKING\",\"isAsyncChat\":false}";
	const char *files[] = { "6f1c0d2e-aaaa-bbbb-cccc-000000000001" };
	struct grok_req_opts o = { .model = &model_fast,
		.message = "Describe this picture",
		.file_ids = files,
		.nfiles = 1,
		.temporary = true };
	char *s = grok_payload(&o);

	EXPECT_STR_EQ(s, want);
	free(s);
}

TEST(payload_heavy_fields)
{
	struct grok_req_opts o = { .model = &model_heavy,
		.message = "line \"one\"\n\xc3\xa9",
		.temporary = false };
	json_t *j;
	char *s;

	if ((s = grok_payload(&o)) == NULL) {
		TH_FAILED("%s", "grok_payload failed");
		return;
	}
	j = jparse(s);
	EXPECT(json_is_false(json_object_get(j, "temporary")));
	EXPECT_STR_EQ(
	    json_string_value(json_object_get(j, "modelName")), "grok-4-heavy");
	EXPECT_STR_EQ(json_string_value(json_object_get(j, "modelMode")),
	    "MODEL_MODE_HEAVY");
	EXPECT_STR_EQ(json_string_value(json_object_get(j, "message")),
	    "line \"one\"\n\xc3\xa9");
	EXPECT_INT_EQ(
	    json_array_size(json_object_get(j, "fileAttachments")), 0);
	EXPECT(json_is_array(json_object_get(j, "fileAttachments")));
	EXPECT_STR_EQ(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(j, "responseMetadata"),
	            "requestModelDetails"),
	        "modelId")),
	    "grok-4-heavy");
	EXPECT_INT_EQ(
	    json_integer_value(json_object_get(j, "imageGenerationCount")), 2);
	EXPECT_INT_EQ(json_object_size(j), 23);
	json_decref(j);
	free(s);

	/* A message that is not UTF-8: NULL with EILSEQ, not ENOMEM. */
	o.message = "bad \xff byte";
	errno = 0;
	EXPECT(grok_payload(&o) == NULL);
	EXPECT_INT_EQ(errno, EILSEQ);
}

TEST(payload_video)
{
	const char *files[] = { "file-1", "file-2" };
	struct grok_req_opts o = { .model = &model_video,
		.message = "make the sun rise",
		.file_ids = files,
		.nfiles = 2,
		.temporary = false,
		.video = true,
		.video_ref = "https://grok.com/imagine/3f9a" };
	char *s = grok_payload(&o);

	EXPECT_STR_EQ(s,
	    "{\"temporary\":true,\"modelName\":\"grok-3\",\"message\":"
	    "\"https://grok.com/imagine/3f9a  make the sun rise --mode=custom\","
	    "\"fileAttachments\":[\"file-1\"],\"toolOverrides\":{\"videoGen\":"
	    "true}}");
	free(s);
}

/* ---- statsig and request id -------------------------------------------- */

static bool
statsig_text_ok(const char *t, const char *prefix)
{
	static const char *const heads[] = {
		"TypeError: Cannot read properties of null (reading "
		"'children['",
		"TypeError: Cannot read properties of undefined (reading '",
	};
	size_t pl = strlen(prefix), i, k, n;
	const char *r;

	if (strncmp(t, prefix, pl) != 0)
		return false;
	t += pl;
	for (i = 0; i < 2; i++) {
		if (strncmp(t, heads[i], strlen(heads[i])) != 0)
			continue;
		r = t + strlen(heads[i]);
		n = i == 0 ? 5 : 10;
		for (k = 0; k < n; k++) {
			if (!((r[k] >= 'a' && r[k] <= 'z') ||
			        (i == 0 && r[k] >= '0' && r[k] <= '9')))
				return false;
		}
		return strcmp(r + n, i == 0 ? "']')" : "')") == 0;
	}
	return false;
}

TEST(statsig_shape)
{
	char out[256], bin[256];
	size_t binlen, i, seen[2] = { 0, 0 };

	for (i = 0; i < 200; i++) {
		grok_statsig_generate("e:", out, sizeof(out));
		EXPECT(strlen(out) == 100 || strlen(out) == 96);
		if (sodium_base642bin((unsigned char *)bin, sizeof(bin) - 1,
		        out, strlen(out), NULL, &binlen, NULL,
		        sodium_base64_VARIANT_ORIGINAL) != 0) {
			TH_FAILED("not base64: %s", out);
			continue;
		}
		bin[binlen] = '\0';
		EXPECT(binlen == 73 || binlen == 71);
		seen[binlen == 73]++;
		if (!statsig_text_ok(bin, "e:"))
			TH_FAILED("bad statsig text: %s", bin);
	}
	EXPECT(seen[0] > 0 && seen[1] > 0); /* both shapes, 2^-200 odds */

	/* Another prefix, an empty one, and an out too short for it. */
	grok_statsig_generate("x:", out, sizeof(out));
	EXPECT(sodium_base642bin((unsigned char *)bin, sizeof(bin) - 1, out,
	           strlen(out), NULL, &binlen, NULL,
	           sodium_base64_VARIANT_ORIGINAL) == 0);
	bin[binlen] = '\0';
	EXPECT(statsig_text_ok(bin, "x:"));
	grok_statsig_generate("", out, sizeof(out));
	EXPECT(sodium_base642bin((unsigned char *)bin, sizeof(bin) - 1, out,
	           strlen(out), NULL, &binlen, NULL,
	           sodium_base64_VARIANT_ORIGINAL) == 0);
	bin[binlen] = '\0';
	EXPECT(statsig_text_ok(bin, "") && bin[0] == 'T');
	grok_statsig_generate("e:", out, 50);
	EXPECT_STR_EQ(out, "");
}

TEST(request_id_uuid4)
{
	char a[37], b[37];
	size_t i;

	grok_request_id(a);
	grok_request_id(b);
	EXPECT_INT_EQ(strlen(a), 36);
	EXPECT(strcmp(a, b) != 0);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			EXPECT(a[i] == '-');
		else
			EXPECT((a[i] >= '0' && a[i] <= '9') ||
			    (a[i] >= 'a' && a[i] <= 'f'));
	}
	EXPECT(a[14] == '4');
	EXPECT(strchr("89ab", a[19]) != NULL);
}

/* ---- headers ----------------------------------------------------------- */

static struct cfg hcfg;

static void
hcfg_init(const char *ua, const char *cf)
{
	memset(&hcfg, 0, sizeof(hcfg));
	(void)util_strlcpy(hcfg.upstream_url, "https://grok.com/",
	    sizeof(hcfg.upstream_url)); /* fits */
	(void)util_strlcpy(
	    hcfg.user_agent, ua, sizeof(hcfg.user_agent)); /* fits */
	(void)util_strlcpy(
	    hcfg.cf_clearance, cf, sizeof(hcfg.cf_clearance)); /* fits */
}

/* The value of header name in l, or NULL. */
static const char *
hget(const struct curl_slist *l, const char *name)
{
	size_t n = strlen(name);

	for (; l != NULL; l = l->next) {
		if (strncasecmp(l->data, name, n) == 0 && l->data[n] == ':')
			return l->data[n + 1] == ' ' ? l->data + n + 2
			                             : l->data + n + 1;
	}
	return NULL;
}

#define UA_WIN                                                                 \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "        \
	"(KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36"
#define UA_MAC                                                                 \
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "  \
	"(KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"

TEST(headers_browser_set)
{
	struct curl_slist *l;

	hcfg_init(UA_WIN, "");
	l = grok_headers(&hcfg, "eyJ.tok.sig",
	    "c3RhdHNpZw==", "0b7a9c1e-1111-4222-8333-444455556666");
	if (l == NULL) {
		TH_FAILED("%s", "grok_headers failed");
		return;
	}
	EXPECT_STR_EQ(hget(l, "Accept"), "*/*");
	EXPECT_STR_EQ(hget(l, "Accept-Language"), "zh-CN,zh;q=0.9");
	EXPECT_STR_EQ(hget(l, "Content-Type"), "application/json");
	EXPECT_STR_EQ(hget(l, "Origin"), "https://grok.com");
	EXPECT_STR_EQ(hget(l, "Referer"), "https://grok.com/");
	EXPECT_STR_EQ(hget(l, "Priority"), "u=1, i");
	EXPECT_STR_EQ(hget(l, "User-Agent"), UA_WIN);
	EXPECT_STR_EQ(hget(l, "Sec-Ch-Ua"),
	    "\"Not(A:Brand\";v=\"99\", \"Google Chrome\";v=\"133\", "
	    "\"Chromium\";v=\"133\"");
	EXPECT_STR_EQ(hget(l, "Sec-Ch-Ua-Mobile"), "?0");
	EXPECT_STR_EQ(hget(l, "Sec-Ch-Ua-Platform"), "\"Windows\"");
	EXPECT_STR_EQ(hget(l, "Sec-Fetch-Dest"), "empty");
	EXPECT_STR_EQ(hget(l, "Sec-Fetch-Mode"), "cors");
	EXPECT_STR_EQ(hget(l, "Sec-Fetch-Site"), "same-origin");
	EXPECT_STR_EQ(hget(l, "Baggage"),
	    "sentry-environment=production,sentry-public_key="
	    "b311e0f2690c81f25e2c4cf6d4f7ce1c");
	EXPECT_STR_EQ(hget(l, "x-statsig-id"), "c3RhdHNpZw==");
	EXPECT_STR_EQ(hget(l, "x-xai-request-id"),
	    "0b7a9c1e-1111-4222-8333-444455556666");
	EXPECT_STR_EQ(hget(l, "Cookie"), "sso-rw=eyJ.tok.sig; sso=eyJ.tok.sig");
	EXPECT_STR_EQ(hget(l, "Expect"), "");
	EXPECT(hget(l, "Accept-Encoding") == NULL); /* libcurl's job */
	grok_headers_free(l);

	/* Hints follow the UA; a non-Chromium UA sends none. */
	hcfg_init(UA_MAC, "");
	l = grok_headers_ext(&hcfg, "t", "", NULL,
	    "https://grok.com/imagine/p-1", "text/plain;charset=UTF-8");
	EXPECT_STR_EQ(hget(l, "Sec-Ch-Ua-Platform"), "\"macOS\"");
	EXPECT_CONTAINS(hget(l, "Sec-Ch-Ua"), "v=\"136\"");
	EXPECT_STR_EQ(hget(l, "Referer"), "https://grok.com/imagine/p-1");
	EXPECT_STR_EQ(hget(l, "Content-Type"), "text/plain;charset=UTF-8");
	EXPECT(hget(l, "x-statsig-id") == NULL);
	EXPECT(hget(l, "x-xai-request-id") == NULL);
	grok_headers_free(l);
	hcfg_init("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 "
	          "Firefox/128.0",
	    "");
	l = grok_headers(&hcfg, "t", "s", "r");
	EXPECT(hget(l, "Sec-Ch-Ua") == NULL);
	EXPECT(hget(l, "Sec-Ch-Ua-Platform") == NULL);
	EXPECT_STR_EQ(hget(l, "Sec-Fetch-Mode"), "cors");
	grok_headers_free(l);

	/*
	 * The fixed lines are kept between calls: the same config object
	 * with another upstream must not get the old Origin.
	 */
	hcfg_init(UA_WIN, "");
	l = grok_headers(&hcfg, "t", "s", "r");
	EXPECT_STR_EQ(hget(l, "Origin"), "https://grok.com");
	grok_headers_free(l);
	(void)util_strlcpy(hcfg.upstream_url, "http://127.0.0.1:9/",
	    sizeof(hcfg.upstream_url)); /* fits */
	l = grok_headers(&hcfg, "t", "s", "r");
	EXPECT_STR_EQ(hget(l, "Origin"), "http://127.0.0.1:9");
	EXPECT_STR_EQ(hget(l, "Referer"), "http://127.0.0.1:9/");
	EXPECT_STR_EQ(hget(l, "User-Agent"), UA_WIN);
	EXPECT_STR_EQ(hget(l, "Cookie"), "sso-rw=t; sso=t");
	grok_headers_free(l);
}

TEST(headers_cookie)
{
	struct curl_slist *l;

	hcfg_init(UA_WIN, "cf_clearance=abc.DEF-123_456");
	l = grok_headers(&hcfg, "sso=eyJ.x.y", "s", "r");
	EXPECT_STR_EQ(hget(l, "Cookie"),
	    "sso-rw=eyJ.x.y; sso=eyJ.x.y; cf_clearance=abc.DEF-123_456");
	grok_headers_free(l);

	hcfg_init(UA_WIN, "abc");
	l = grok_headers(&hcfg, " eyJ.x.y", "s", "r");
	EXPECT_STR_EQ(
	    hget(l, "Cookie"), "sso-rw=eyJ.x.y; sso=eyJ.x.y; cf_clearance=abc");
	grok_headers_free(l);
}

TEST(headers_no_injection)
{
	const struct curl_slist *n;
	struct curl_slist *l;

	hcfg_init(UA_WIN "\r\nX-Evil: ua", "v\r\nX-Evil: cf; admin=1");
	(void)util_strlcpy(hcfg.upstream_url, "https://grok.com\nX-Evil: o",
	    sizeof(hcfg.upstream_url)); /* fits */
	l = grok_headers(&hcfg, "tok\r\nX-Evil: tok; other=1", "st\nX-Evil: s",
	    "id\rX-Evil: i");
	if (l == NULL) {
		TH_FAILED("%s", "grok_headers failed");
		return;
	}
	for (n = l; n != NULL; n = n->next) {
		EXPECT(strchr(n->data, '\r') == NULL);
		EXPECT(strchr(n->data, '\n') == NULL);
		EXPECT(strncasecmp(n->data, "X-Evil", 6) != 0);
	}
	EXPECT_STR_EQ(hget(l, "Cookie"),
	    "sso-rw=tokX-Evil:tokother=1; sso=tokX-Evil:tokother=1; "
	    "cf_clearance=vX-Evil:cfadmin=1");
	EXPECT_STR_EQ(hget(l, "x-statsig-id"), "stX-Evil: s");
	grok_headers_free(l);
}

/* ---- the NDJSON reader ------------------------------------------------- */

/* Events written out as lines, so two runs compare as strings. */
struct rec {
	struct buf out;
	int stop_after; /* stop (return 42) after that many events; 0: never */
	int n;
};

static int
rec_ev(void *arg, const struct grok_ev *ev)
{
	struct rec *r = arg;
	size_t i;

	WP_ASSERT(ev->text != NULL && ev->title != NULL && ev->url != NULL &&
	    ev->preview != NULL);
	WP_ASSERT(strlen(ev->text) == ev->len);
	(void)buf_puts(&r->out, grok_ev_name[ev->kind]); /* tests stay small */
	switch (ev->kind) {
	case GROK_EV_TOKEN:
		(void)buf_printf(&r->out, "%s%s:%s",
		    ev->thinking ? " think" : "", ev->header ? " header" : "",
		    ev->text);
		break;
	case GROK_EV_SEARCH:
		(void)buf_printf(&r->out, "%s:%s|%s|%s",
		    ev->thinking ? " think" : "", ev->title, ev->url,
		    ev->preview);
		break;
	case GROK_EV_IMAGE_PROGRESS:
		(void)buf_printf(
		    &r->out, ":%d:%d:%s", ev->index, ev->progress, ev->url);
		break;
	case GROK_EV_IMAGES:
		for (i = 0; i < ev->nurls; i++)
			(void)buf_printf(
			    &r->out, "%c%s", i ? ',' : ':', ev->urls[i]);
		break;
	case GROK_EV_VIDEO_PROGRESS:
		(void)buf_printf(&r->out, ":%d", ev->progress);
		break;
	case GROK_EV_VIDEO:
		(void)buf_printf(&r->out, ":%s|%s", ev->url, ev->title);
		break;
	case GROK_EV_FINAL:
		(void)buf_printf(&r->out, ":%s|%s", ev->text, ev->title);
		break;
	case GROK_EV_ERROR:
		(void)buf_printf(&r->out, ":%d:%s", ev->code, ev->text);
		break;
	}
	(void)buf_puts(&r->out, "\n");
	if (r->stop_after > 0 && ++r->n >= r->stop_after)
		return 42;
	return 0;
}

struct ndrun {
	int rc;
	unsigned malformed, objects;
	bool seen_response;
	char *events;
};

static uint64_t rng_state;

static uint32_t
rng(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/* Feed s in pieces (whole, one byte each, or random sizes) and record. */
static void
ndrun(
    struct ndrun *r, const char *s, size_t len, enum split how, size_t max_line)
{
	struct grok_nd p;
	struct rec rc;
	size_t off = 0, n;

	memset(r, 0, sizeof(*r));
	memset(&rc, 0, sizeof(rc));
	buf_init(&rc.out, 1 << 20);
	grok_nd_init(&p, max_line);
	while (off < len && r->rc == 0) {
		n = len - off;
		if (how == SPLIT_BYTES)
			n = 1;
		else if (how == SPLIT_RANDOM)
			n = 1 + rng() % (n < 40 ? n : 40);
		r->rc = grok_nd_feed(&p, s + off, n, rec_ev, &rc);
		off += n;
	}
	if (r->rc == 0)
		r->rc = grok_nd_end(&p, rec_ev, &rc);
	r->malformed = p.malformed;
	r->objects = p.objects;
	r->seen_response = p.seen_response;
	r->events = buf_take(&rc.out);
	if (r->events == NULL)
		r->events = strdup("");
	grok_nd_fini(&p);
}

/*
 * Feed body whole, byte by byte and in 50 random splittings: every run
 * must give want, and the same counters.
 */
static void
nd_check(const char *name, const char *body, const char *want,
    unsigned malformed, unsigned objects)
{
	struct ndrun r;
	int i;

	rng_state = 20251225;
	for (i = 0; i < 52; i++) {
		ndrun(&r, body, strlen(body),
		    i == 0       ? SPLIT_WHOLE
		        : i == 1 ? SPLIT_BYTES
		                 : SPLIT_RANDOM,
		    1 << 16);
		if (r.rc != 0 || strcmp(r.events, want) != 0 ||
		    r.malformed != malformed || r.objects != objects) {
			TH_FAILED("%s run %d: rc %d malformed %u objects %u "
			          "events:\n%s--- want:\n%s",
			    name, i, r.rc, r.malformed, r.objects, r.events,
			    want);
			free(r.events);
			return;
		}
		free(r.events);
	}
}

static const char ex_a[] =
    "{\"result\":{\"conversation\":{\"conversationId\":\"c0a8e1f2-1111-4222-8333-444455556666\",\"title\":\"New conversation\",\"temporary\":true}}}\n"
    "{\"result\":{\"response\":{\"userResponse\":{\"responseId\":\"u-01\",\"message\":\"Say hi\",\"sender\":\"human\",\"model\":\"grok-3\"},\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"u-01\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"Hello\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"r-01\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"! How can I help?\",\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"r-01\",\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"finalMetadata\":{\"followUpSuggestions\":[],\"feedbackLabels\":[],\"toolsUsed\":{}}}}}\n"
    "{\"result\":{\"response\":{\"modelResponse\":{\"responseId\":\"r-01\",\"message\":\"Hello! How can I help?\",\"sender\":\"assistant\",\"model\":\"grok-3\",\"generatedImageUrls\":[],\"webSearchResults\":[]},\"isThinking\":false,\"isSoftStop\":false,\"responseId\":\"r-01\"}}}\n"
    "{\"result\":{\"title\":{\"newTitle\":\"Greeting\"}}}\n";
static const char ex_a_want[] = "token:Hello\n"
                                "token:! How can I help?\n"
                                "final:Hello! How can I help?|grok-3\n";

static const char ex_b[] =
    "{\"result\":{\"conversation\":{\"conversationId\":\"c-02\"}}}\n"
    "{\"result\":{\"response\":{\"userResponse\":{\"responseId\":\"u-02\",\"model\":\"grok-4-mini-thinking-tahoe\"}}}}\n"
    "{\"result\":{\"response\":{\"token\":\"Thinking about the weather\",\"isThinking\":true,\"messageTag\":\"header\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"The user wants today's weather.\",\"isThinking\":true,\"messageTag\":\"analysis\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"\",\"isThinking\":true,\"messageTag\":\"tool_usage_card\",\"toolUsageCardId\":\"tc-1\",\"webSearchResults\":{\"results\":[{\"title\":\"Berlin forecast\",\"url\":\"https://weather.example/berlin\",\"preview\":\"Sunny,\\n21°C\"}]}}}}\n"
    "{\"result\":{\"response\":{\"token\":\"<xai:tool_usage_card><xai:tool_name>web_search</xai:tool_name></xai:tool_usage_card>\",\"isThinking\":true,\"messageTag\":\"tool_usage_card\",\"toolUsageCardId\":\"tc-1\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"Found a forecast.\",\"isThinking\":true,\"messageTag\":\"analysis\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"It is sunny, \",\"isThinking\":false,\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"token\":\"21°C in Berlin.\",\"isThinking\":false,\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"modelResponse\":{\"responseId\":\"r-02\",\"message\":\"It is sunny, 21°C in Berlin.\",\"model\":\"grok-4-mini-thinking-tahoe\",\"generatedImageUrls\":[]}}}}\n";
static const char ex_b_want[] =
    "token think header:Thinking about the weather\n"
    "token think:The user wants today's weather.\n"
    "search think:Berlin forecast|https://weather.example/berlin|Sunny,\n21°C\n"
    "token think:<xai:tool_usage_card><xai:tool_name>web_search</xai:tool_name></xai:tool_usage_card>\n"
    "token think:Found a forecast.\n"
    "token:It is sunny, \n"
    "token:21°C in Berlin.\n"
    "final:It is sunny, 21°C in Berlin.|grok-4-mini-thinking-tahoe\n";

static const char ex_c[] =
    "{\"result\":{\"conversation\":{\"conversationId\":\"c-03\"}}}\n"
    "{\"result\":{\"response\":{\"userResponse\":{\"responseId\":\"u-03\",\"model\":\"grok-3\"}}}}\n"
    "{\"result\":{\"response\":{\"token\":\"Here is a moon for you.\",\"isThinking\":false,\"messageTag\":\"final\"}}}\n"
    "{\"result\":{\"response\":{\"imageAttachmentInfo\":{\"imageCount\":2},\"streamingImageGenerationResponse\":{\"imageIndex\":0,\"progress\":0}}}}\n"
    "{\"result\":{\"response\":{\"streamingImageGenerationResponse\":{\"imageIndex\":0,\"progress\":50}}}}\n"
    "{\"result\":{\"response\":{\"streamingImageGenerationResponse\":{\"imageIndex\":1,\"progress\":50}}}}\n"
    "{\"result\":{\"response\":{\"streamingImageGenerationResponse\":{\"imageIndex\":0,\"progress\":100,\"imageUrl\":\"users/u1/generated/img-a/image.jpg\"}}}}\n"
    "{\"result\":{\"response\":{\"streamingImageGenerationResponse\":{\"imageIndex\":1,\"progress\":100,\"imageUrl\":\"users/u1/generated/img-b/image.jpg\"}}}}\n"
    "{\"result\":{\"response\":{\"modelResponse\":{\"responseId\":\"r-03\",\"message\":\"Here is a moon for you.\",\"model\":\"grok-3\",\"generatedImageUrls\":[\"users/u1/generated/img-a/image.jpg\",\"users/u1/generated/img-b/image.jpg\"]}}}}\n";
static const char ex_c_want[] =
    "token:Here is a moon for you.\n"
    "image_progress:0:0:\n"
    "image_progress:0:50:\n"
    "image_progress:1:50:\n"
    "image_progress:0:100:users/u1/generated/img-a/image.jpg\n"
    "image_progress:1:100:users/u1/generated/img-b/image.jpg\n"
    "images:users/u1/generated/img-a/image.jpg,users/u1/generated/img-b/image.jpg\n"
    "final:Here is a moon for you.|grok-3\n";

static const char ex_d[] =
    "{\"result\":{\"conversation\":{\"conversationId\":\"c-04\"}}}\n"
    "{\"result\":{\"response\":{\"userResponse\":{\"responseId\":\"u-04\",\"model\":\"grok-3\"}}}}\n"
    "{\"result\":{\"response\":{\"streamingVideoGenerationResponse\":{\"videoId\":\"v-1\",\"progress\":1,\"videoPostId\":\"p-1\"}}}}\n"
    "{\"result\":{\"response\":{\"streamingVideoGenerationResponse\":{\"videoId\":\"v-1\",\"progress\":45,\"videoPostId\":\"p-1\"}}}}\n"
    "{\"result\":{\"response\":{\"streamingVideoGenerationResponse\":{\"videoId\":\"v-1\",\"progress\":95,\"videoPostId\":\"p-1\"}}}}\n"
    "{\"result\":{\"response\":{\"streamingVideoGenerationResponse\":{\"videoId\":\"v-1\",\"progress\":100,\"videoPostId\":\"p-1\",\"videoUrl\":\"users/u1/generated/v-1/generated_video.mp4\",\"thumbnailImageUrl\":\"users/u1/generated/v-1/preview_image.jpg\",\"moderated\":false}}}}\n"
    "{\"result\":{\"response\":{\"token\":\"I generated a video\",\"isSoftStop\":true}}}\n";
static const char ex_d_want[] =
    "video_progress:1\n"
    "video_progress:45\n"
    "video_progress:95\n"
    "video_progress:100\n"
    "video:users/u1/generated/v-1/generated_video.mp4|users/u1/generated/v-1/preview_image.jpg\n"
    "token:I generated a video\n";

static const char ex_e[] = "{\"error\":{\"code\":7,\"message\":\"Request "
                           "rejected by anti-bot rules.\",\"details\":[]}}\n";
static const char ex_e_want[] = "error:7:Request rejected by anti-bot rules.\n";

TEST(nd_reference_examples)
{
	struct ndrun r;

	nd_check("A", ex_a, ex_a_want, 0, 7);
	nd_check("B", ex_b, ex_b_want, 0, 10);
	nd_check("C", ex_c, ex_c_want, 0, 9);
	nd_check("D", ex_d, ex_d_want, 0, 7);
	nd_check("E", ex_e, ex_e_want, 0, 1);

	ndrun(&r, ex_a, strlen(ex_a), SPLIT_WHOLE, 1 << 16);
	EXPECT(r.seen_response);
	free(r.events);
	ndrun(&r, ex_e, strlen(ex_e), SPLIT_WHOLE, 1 << 16);
	EXPECT(!r.seen_response);
	free(r.events);
}

/* s with each line turned into "data: <line>\r\n\r\n", plus SSE extras. */
static char *
to_sse(const char *s)
{
	struct buf b;
	const char *nl;

	buf_init(&b, 1 << 20);
	(void)buf_puts(
	    &b, ": hello\r\nevent: message\r\nid: 1\r\nretry: 5\r\n");
	for (; (nl = strchr(s, '\n')) != NULL; s = nl + 1) {
		(void)buf_puts(&b, "data: ");
		(void)buf_append(&b, s, (size_t)(nl - s));
		(void)buf_puts(&b, "\r\n\r\n");
	}
	(void)buf_puts(&b, "data: [DONE]\r\n\r\n");
	return buf_take(&b);
}

/* s with the newlines taken out: objects run together. */
static char *
run_on(const char *s)
{
	char *o = strdup(s), *w = o;

	for (; *s; s++) {
		if (*s != '\n')
			*w++ = *s;
	}
	*w = '\0';
	return o;
}

TEST(nd_framings)
{
	char *s;

	s = to_sse(ex_b);
	nd_check("B sse", s, ex_b_want, 0, 10);
	free(s);
	s = to_sse(ex_c);
	nd_check("C sse", s, ex_c_want, 0, 9);
	free(s);
	s = run_on(ex_b);
	nd_check("B run-on", s, ex_b_want, 0, 10);
	free(s);
	s = run_on(ex_a);
	nd_check("A run-on", s, ex_a_want, 0, 7);
	free(s);
	/* Blank lines, leading blanks, no final newline. */
	nd_check("blank",
	    "\n\n  {\"result\":{\"response\":{\"token\":\"a\"}}}\r\n\r\n\t\n"
	    "{\"result\":{\"response\":{\"token\":\"b\"}}}",
	    "token:a\ntoken:b\n", 0, 2);
}

TEST(nd_strings_and_utf8)
{
	/* Braces and escaped quotes inside strings, UTF-8 split anywhere. */
	nd_check("strings",
	    "{\"result\":{\"response\":{\"token\":\"say \\\"}{\\\" \\\\\\\\ "
	    "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 [\\u00e9]\\\\\"}}}\n",
	    "token:say \"}{\" \\\\ \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 "
	    "[\xc3\xa9]\\\n",
	    0, 1);
	/* An escaped quote then closers: the object is not over. */
	nd_check("escaped quote",
	    "{\"result\":{\"response\":{\"token\":\"q\\\"}}}x\\\\\"}}}"
	    "{\"result\":{\"response\":{\"token\":\"r\"}}}",
	    "token:q\"}}}x\\\ntoken:r\n", 0, 2);
	/* A token that is not a string, or empty, gives no event. */
	nd_check("non-string tokens",
	    "{\"result\":{\"response\":{\"token\":[\"a\"]}}}\n"
	    "{\"result\":{\"response\":{\"token\":7}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":null}}}\n",
	    "", 0, 4);
	/* Search hits without a card id are not search events. */
	nd_check("search without card",
	    "{\"result\":{\"response\":{\"webSearchResults\":{\"results\":"
	    "[{\"title\":\"t\"}]}}}}\n"
	    "{\"result\":{\"response\":{\"toolUsageCardId\":\"c\","
	    "\"webSearchResults\":{\"results\":[{\"title\":\"t1\",\"url\":"
	    "\"u1\"},5,{\"title\":\"t2\",\"preview\":\"p2\"}]}}}}\n",
	    "search:t1|u1|\nsearch:t2||p2\n", 0, 2);
}

TEST(nd_garbage)
{
	nd_check("garbage lines",
	    "garbage line\n"
	    "{\"result\":{\"response\":{\"token\":\"a\"}}}\n"
	    "<html>oops</html>\n"
	    "{\"result\":{\"response\":{\"token\":\"b\"}}}\n"
	    "}}}]]] stray closers \"quote\n"
	    "{\"result\":{\"response\":{\"token\":\"c\"}}}\n",
	    "token:a\ntoken:b\ntoken:c\n", 3, 3);
	/* A line cut short (in a string, or between members) loses itself
	 * only, never the next object. */
	nd_check("cut lines",
	    "{\"result\":{\"response\":{\"token\":\"unterminated\n"
	    "{\"result\":{\"response\":{\"token\":\"a\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"x\",\n"
	    "{\"result\":{\"response\":{\"token\":\"b\"}}}\n",
	    "token:a\ntoken:b\n", 2, 2);
	/* Balanced but not JSON; junk before an object on its line. */
	nd_check("bad json",
	    "{\"a\":1,}\n"
	    "{bad}{\"result\":{\"response\":{\"token\":\"a\"}}}\n"
	    "oops {\"result\":{\"response\":{\"token\":\"b\"}}}\n"
	    "data: nope\n"
	    "dat@ {\"result\":{\"response\":{\"token\":\"c\"}}}\n"
	    "{\"result\":{\"response\":{\"token\":\"d\"}}}",
	    "token:a\ntoken:b\ntoken:c\ntoken:d\n", 5, 4);
	/* The end of the body in the middle of an object. */
	nd_check("truncated end",
	    "{\"result\":{\"response\":{\"token\":\"a\"}}}\n{\"result\":{\"re",
	    "token:a\n", 1, 1);
}

TEST(nd_too_big)
{
	char big[300];
	struct ndrun r;
	struct grok_nd p;
	struct rec rc;
	const char *ok = "{\"result\":{\"response\":{\"token\":\"ok\"}}}\n";
	size_t oklen = strlen(ok) - 1; /* without the newline */

	memset(big, 0, sizeof(big));
	(void)snprintf(big, sizeof(big),
	    "{\"result\":{\"response\":{\"token\":\"%0200d\"}}}\n%s", 0, ok);
	ndrun(&r, big, strlen(big), SPLIT_WHOLE, 100);
	EXPECT_INT_EQ(r.rc, WP_ETOOBIG);
	free(r.events);
	ndrun(&r, big, strlen(big), SPLIT_BYTES, 100);
	EXPECT_INT_EQ(r.rc, WP_ETOOBIG);
	free(r.events);

	/* Exactly max fits, in pieces or not; one byte more does not. */
	ndrun(&r, ok, strlen(ok), SPLIT_BYTES, oklen);
	EXPECT_INT_EQ(r.rc, 0);
	EXPECT_STR_EQ(r.events, "token:ok\n");
	free(r.events);
	ndrun(&r, ok, strlen(ok), SPLIT_WHOLE, oklen - 1);
	EXPECT_INT_EQ(r.rc, WP_ETOOBIG);
	free(r.events);

	/* After ETOOBIG the reader skips that line and goes on. */
	memset(&rc, 0, sizeof(rc));
	buf_init(&rc.out, 4096);
	grok_nd_init(&p, 100);
	EXPECT_INT_EQ(grok_nd_feed(&p, big, 120, rec_ev, &rc), WP_ETOOBIG);
	EXPECT_INT_EQ(grok_nd_feed(&p, "0000\"}}}\n", 9, rec_ev, &rc), 0);
	EXPECT_INT_EQ(grok_nd_feed(&p, ok, strlen(ok), rec_ev, &rc), 0);
	EXPECT_INT_EQ(grok_nd_end(&p, rec_ev, &rc), 0);
	EXPECT_STR_EQ(rc.out.p, "token:ok\n");
	grok_nd_fini(&p);
	buf_fini(&rc.out);
}

TEST(nd_errors_in_band)
{
	nd_check("top-level error",
	    "{\"result\":{\"response\":{\"token\":\"a\"}}}\n"
	    "{\"error\":{\"message\":\"rate limited\",\"code\":8}}\n",
	    "token:a\nerror:8:rate limited\n", 0, 2);
	nd_check("response error",
	    "{\"result\":{\"response\":{\"error\":{\"message\":\"You've "
	    "reached your usage limit. Please try again later.\"}}}}\n",
	    "error:0:You've reached your usage limit. Please try again "
	    "later.\n",
	    0, 1);
	nd_check("model error",
	    "{\"result\":{\"response\":{\"modelResponse\":{\"message\":\"x\","
	    "\"model\":\"grok-3\",\"error\":\"model exploded\","
	    "\"generatedImageUrls\":[\"a\"]}}}}\n"
	    "{\"result\":{\"response\":{\"modelResponse\":{\"message\":\"y\","
	    "\"error\":\"\"}}}}\n"
	    "{\"error\":\"plain\"}\n{\"error\":{}}\n{\"error\":null}\n",
	    "error:0:model exploded\nfinal:y|\nerror:0:plain\n"
	    "error:0:upstream error without a message\n",
	    0, 5);
}

TEST(nd_stop)
{
	struct grok_nd p;
	struct rec rc;

	memset(&rc, 0, sizeof(rc));
	rc.stop_after = 2;
	buf_init(&rc.out, 4096);
	grok_nd_init(&p, 1 << 16);
	EXPECT_INT_EQ(grok_nd_feed(&p, ex_a, strlen(ex_a), rec_ev, &rc), 42);
	EXPECT_STR_EQ(rc.out.p, "token:Hello\ntoken:! How can I help?\n");
	grok_nd_fini(&p);
	buf_fini(&rc.out);
}

/* ---- rate limits and errors -------------------------------------------- */

TEST(ratelimits)
{
	static const char tok_era[] =
	    "{\"windowSizeSeconds\": 72000, \"remainingTokens\": 76, "
	    "\"totalTokens\": 80, \"lowEffortRateLimits\": {\"cost\": 1, "
	    "\"remainingQueries\": 76, \"waitTimeSeconds\": 0}, "
	    "\"highEffortRateLimits\": {\"cost\": 4, \"remainingQueries\": 19, "
	    "\"waitTimeSeconds\": 30}}";
	static const char query_era[] =
	    "{\"windowSizeSeconds\": 7200, \"remainingQueries\": 46, "
	    "\"totalQueries\": 50, \"lowEffortRateLimits\": null, "
	    "\"highEffortRateLimits\": null}";
	static const char spent[] =
	    "{\"remainingQueries\": 0, "
	    "\"totalQueries\": 50, \"waitTimeSeconds\": "
	    "3600}";
	static const char tok_spent[] =
	    "{\"remainingTokens\": 0, \"lowEffortRateLimits\": "
	    "{\"waitTimeSeconds\": 12}, \"highEffortRateLimits\": "
	    "{\"waitTimeSeconds\": 30.5}}";
	static const char heavy[] = "{\"remainingQueries\": 3, "
	                            "\"remainingTokens\": 99}";
	int32_t rem = -7;
	int64_t wait = -7;
	char *body;

	EXPECT_INT_EQ(
	    grok_ratelimits_parse(tok_era, strlen(tok_era), false, &rem, &wait),
	    0);
	EXPECT_INT_EQ(rem, 76);
	EXPECT_INT_EQ(wait, 0); /* quota left: an effort's wait is moot */
	EXPECT_INT_EQ(grok_ratelimits_parse(
	                  query_era, strlen(query_era), false, &rem, &wait),
	    0);
	EXPECT_INT_EQ(rem, 46);
	EXPECT_INT_EQ(wait, 0);
	EXPECT_INT_EQ(grok_ratelimits_parse(
	                  query_era, strlen(query_era), true, &rem, &wait),
	    0);
	EXPECT_INT_EQ(rem, 46);
	EXPECT_INT_EQ(
	    grok_ratelimits_parse(spent, strlen(spent), false, &rem, &wait), 0);
	EXPECT_INT_EQ(rem, 0);
	EXPECT_INT_EQ(wait, 3600);
	EXPECT_INT_EQ(grok_ratelimits_parse(
	                  tok_spent, strlen(tok_spent), false, &rem, &wait),
	    0);
	EXPECT_INT_EQ(rem, 0);
	EXPECT_INT_EQ(wait, 30);
	EXPECT_INT_EQ(
	    grok_ratelimits_parse(heavy, strlen(heavy), true, &rem, &wait), 0);
	EXPECT_INT_EQ(rem, 3);
	EXPECT_INT_EQ(
	    grok_ratelimits_parse(heavy, strlen(heavy), false, &rem, &wait), 0);
	EXPECT_INT_EQ(rem, 99);
	/* The token era has no remainingQueries for heavy at the top. */
	EXPECT_INT_EQ(grok_ratelimits_parse(
	                  "{\"remainingTokens\": 5}", 22, true, &rem, &wait),
	    WP_EPARSE);
	EXPECT_INT_EQ(
	    grok_ratelimits_parse("{}", 2, false, &rem, &wait), WP_EPARSE);
	EXPECT_INT_EQ(
	    grok_ratelimits_parse("<html>", 6, false, &rem, &wait), WP_EPARSE);
	EXPECT_INT_EQ(
	    grok_ratelimits_parse("[1]", 3, false, &rem, &wait), WP_EPARSE);

	body = grok_ratelimits_body("grok-4-heavy");
	EXPECT_STR_EQ(body,
	    "{\"requestKind\":\"DEFAULT\",\"modelName\":\"grok-4-heavy\"}");
	free(body);
}

TEST(error_describe)
{
	static const char cf[] =
	    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a "
	    "moment...</title><script src=\"/cdn-cgi/challenge-platform/h/b/"
	    "orchestrate/chl_page/v1\"></script></head></html>";
	static const char ab[] =
	    "{\"error\":{\"code\":7,\"message\":\"Request "
	    "rejected by anti-bot rules.\",\"details\":[]}}";
	static const char unauth[] =
	    "{\"error\":{\"code\":16,\"message\":\"unauthenticated\","
	    "\"details\":[]}}";
	static const char gw[] = "<html><head><title>502 Bad Gateway</title>"
	                         "</head><body>nginx</body></html>";
	char out[256];
	bool ab_flag;

	grok_error_describe(403, cf, strlen(cf), out, sizeof(out), &ab_flag);
	EXPECT_CONTAINS(out, "Cloudflare challenge page");
	EXPECT_CONTAINS(out, "cf_clearance");
	EXPECT(ab_flag);

	grok_error_describe(403, ab, strlen(ab), out, sizeof(out), &ab_flag);
	EXPECT_CONTAINS(out, "anti-bot");
	EXPECT_CONTAINS(out, "Request rejected by anti-bot rules.");
	EXPECT(ab_flag);

	grok_error_describe(
	    401, unauth, strlen(unauth), out, sizeof(out), &ab_flag);
	EXPECT_STR_EQ(out, "HTTP 401: unauthenticated (code 16)");
	EXPECT(!ab_flag);

	grok_error_describe(403, "", 0, out, sizeof(out), &ab_flag);
	EXPECT(ab_flag);
	grok_error_describe(502, gw, strlen(gw), out, sizeof(out), &ab_flag);
	EXPECT_STR_EQ(out, "HTTP 502: an HTML page titled \"502 Bad Gateway\"");
	EXPECT(!ab_flag);
	grok_error_describe(
	    500, "  oops\r\nline two", 16, out, sizeof(out), &ab_flag);
	EXPECT_STR_EQ(out, "HTTP 500: oops  line two");
	grok_error_describe(403, "{\"error\":\"blocked-user\"}", 24, out,
	    sizeof(out), &ab_flag);
	EXPECT_CONTAINS(out, "account blocked");
	EXPECT(!ab_flag);
	grok_error_describe(
	    429, "{\"error\":\"too many\"}", 20, out, sizeof(out), &ab_flag);
	EXPECT_STR_EQ(out, "HTTP 429: too many");
	grok_error_describe(500, NULL, 0, out, sizeof(out), &ab_flag);
	EXPECT_STR_EQ(out, "HTTP 500 with an empty body");

	/* A long body is cut at a character boundary. */
	{
		char body[600];
		size_t i;

		for (i = 0; i + 2 < sizeof(body); i += 2)
			memcpy(body + i, "\xc3\xa9", 2);
		grok_error_describe(500, body, i, out, sizeof(out), &ab_flag);
		EXPECT(strlen(out) < sizeof(out));
		EXPECT(((unsigned char)out[strlen(out) - 1] & 0xc0) == 0x80);
		EXPECT(strncmp(out, "HTTP 500: \xc3\xa9", 12) == 0);
	}
}

int
main(void)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 2;
	}
	RUN(flatten_single_user_as_is);
	RUN(flatten_every_role);
	RUN(flatten_null_and_empty_content);
	RUN(flatten_think_stripped);
	RUN(flatten_images_in_order);
	RUN(flatten_wrong_types);
	RUN(flatten_too_big);
	RUN(payload_reference_example);
	RUN(payload_heavy_fields);
	RUN(payload_video);
	RUN(statsig_shape);
	RUN(request_id_uuid4);
	RUN(headers_browser_set);
	RUN(headers_cookie);
	RUN(headers_no_injection);
	RUN(nd_reference_examples);
	RUN(nd_framings);
	RUN(nd_strings_and_utf8);
	RUN(nd_garbage);
	RUN(nd_too_big);
	RUN(nd_errors_in_band);
	RUN(nd_stop);
	RUN(ratelimits);
	RUN(error_describe);
	TH_DONE();
}
