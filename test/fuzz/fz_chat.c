/*
 * Fuzz target "chat": a POST /v1/chat/completions body through the pure
 * steps worker/wrk_chat.c takes before any I/O, as far as public
 * functions reach (the body's type checks, chat_check_body, are static
 * there): json_loadb, the model lookup and reasoning_format, then
 * grok_flatten, the token estimate, the inline images (media_image_get
 * on data: URIs and bare base64) and grok_payload.
 *
 * Invariants checked: grok_flatten gives the same answer twice; on
 * success the text is terminated, under its cap, not blank unless there
 * are images, and every image is a non-empty string; on failure err and
 * param say something, no image is handed over and the output buffer is
 * left as it was; with a small cap it either gives the same text or
 * fails; grok_payload always succeeds on flattened text and carries it
 * unchanged (the text is handed over as wrk_chat.c hands it: buf_take,
 * NULL when nothing was written, which must give ""); an inline image
 * calls back once, at once, with a sniffed type or a message.
 *
 * Input: the request body, as a client sends it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "cfg.h"
#include "err.h"
#include "grok.h"
#include "media.h"
#include "oai_out.h"
#include "wrk.h"

#include "fuzz.h"

const char fuzz_name[] = "chat";

#define CHAT_MSG_MAX   (16u << 20) /* wrk_chat.c's cap on the history */
#define CHAT_SMALL_MAX 200         /* a cap that inputs do reach */

/* Process-wide, like the worker's: the defaults, built once. */
static struct cfg chat_cfg;
static struct wrk chat_wrk;

struct chat_flat {
	int rc;
	struct buf out;
	char **images;
	size_t nimages;
	char err[512], param[96]; /* wrk_chat.c's sizes */
};

static void
chat_flat_free(struct chat_flat *f)
{
	size_t i;

	for (i = 0; i < f->nimages; i++)
		free(f->images[i]);
	free(f->images);
	buf_fini(&f->out);
}

/* grok_flatten into an empty buffer, as wrk_chat.c calls it. */
static void
chat_flatten(const json_t *messages, size_t max, struct chat_flat *f)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	buf_init(&f->out, max);
	memset(f->err, 'x', sizeof(f->err));
	memset(f->param, 'x', sizeof(f->param));
	f->rc = grok_flatten(messages, &f->out, &f->images, &f->nimages, f->err,
	    sizeof(f->err), f->param, sizeof(f->param));
	FUZZ_CHECK(memchr(f->err, '\0', sizeof(f->err)) != NULL);
	FUZZ_CHECK(memchr(f->param, '\0', sizeof(f->param)) != NULL);
	FUZZ_CHECK(f->out.len <= f->out.max);
	FUZZ_CHECK(
	    f->out.p == NULL ? f->out.len == 0 : f->out.p[f->out.len] == '\0');
	if (f->rc != 0) {
		FUZZ_CHECK(f->rc == WP_EINVAL || f->rc == WP_ETOOBIG);
		FUZZ_CHECK(f->err[0] != '\0' && f->param[0] != '\0');
		FUZZ_CHECK(strncmp(f->param, "messages", 8) == 0);
		FUZZ_CHECK(f->images == NULL && f->nimages == 0);
		FUZZ_CHECK(f->out.len == 0); /* left as we found it */
		return;
	}
	FUZZ_CHECK(f->err[0] == '\0' && f->param[0] == '\0');
	FUZZ_CHECK(f->out.len > 0 || f->nimages > 0);
	FUZZ_CHECK((f->images == NULL) == (f->nimages == 0));
	for (i = 0; i < f->nimages; i++)
		FUZZ_CHECK(f->images[i] != NULL && f->images[i][0] != '\0');
}

static bool
chat_flat_eq(const struct chat_flat *a, const struct chat_flat *b)
{
	size_t i;

	if (a->rc != b->rc || a->out.len != b->out.len ||
	    (a->out.len > 0 && memcmp(a->out.p, b->out.p, a->out.len) != 0) ||
	    a->nimages != b->nimages)
		return false;
	for (i = 0; i < a->nimages; i++)
		if (strcmp(a->images[i], b->images[i]) != 0)
			return false;
	return true;
}

/* An inline image: the callback runs once, before media_image_get returns. */
static void
chat_image_done(struct wrk *w, void *arg, int idx, const struct media_res *res)
{
	unsigned *calls = arg;

	FUZZ_CHECK(w == &chat_wrk && idx == 3);
	(*calls)++;
	if (res->rc != 0) {
		FUZZ_CHECK(res->err != NULL && res->err[0] != '\0');
		return;
	}
	FUZZ_CHECK(res->bytes != NULL && res->len > 0 && res->mime != NULL);
	FUZZ_CHECK(strncmp(res->mime, "image/", 6) == 0);
}

static void
chat_image(const char *src)
{
	struct media_op *op = NULL;
	unsigned calls = 0;

	if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0)
		return; /* a download: needs the worker's loop */
	FUZZ_CHECK(media_image_get(
	               &chat_wrk, src, chat_image_done, &calls, 3, &op) == 0);
	FUZZ_CHECK(op == NULL && calls == 1);
}

/*
 * grok_payload on what the request would send. The message is what
 * wrk_chat.c keeps: buf_take of the flattened text, NULL when no text
 * was written (messages with images only).
 */
static void
chat_payload(const struct cfg_model *m, struct chat_flat *f)
{
	char *text = buf_take(&f->out);
	const char *ids[2] = { NULL, NULL };
	struct grok_req_opts o;
	json_error_t jerr;
	json_t *j;
	char *s, *want = NULL;
	size_t n;

	memset(&o, 0, sizeof(o));
	o.model = m;
	o.message = text;
	o.temporary = true;
	o.file_ids = ids;
	o.nfiles = f->nimages < 2 ? f->nimages : 2;
	for (n = 0; n < o.nfiles; n++)
		ids[n] = f->images[n];
	if (m->video && f->nimages > 0) {
		o.video = true;
		o.video_ref = f->images[0];
		n = strlen(o.video_ref) + (text != NULL ? strlen(text) : 0) +
		    32;
		want = malloc(n);
		FUZZ_CHECK(want != NULL);
		(void)snprintf(want, n, "%s  %s --mode=custom", o.video_ref,
		    text != NULL ? text : ""); /* sized for it */
	}
	s = grok_payload(&o);
	FUZZ_CHECK(s != NULL); /* flattened text is always UTF-8 */
	j = json_loads(s, 0, &jerr);
	FUZZ_CHECK(json_is_object(j));
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "message")),
	               want != NULL       ? want
	                   : text != NULL ? text
	                                  : "") == 0);
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "modelName")),
	               m->upstream) == 0);
	json_decref(j);
	free(s);
	free(want);
	free(text);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	cfg_defaults(&chat_cfg);
	chat_wrk.cfg = &chat_cfg;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct cfg_model *m;
	struct chat_flat big, again, small;
	enum oai_reasoning rf;
	json_error_t jerr;
	json_t *root, *v, *messages;
	size_t i;

	root = json_loadb((const char *)data, size, 0, &jerr);
	if (!json_is_object(root))
		goto out;
	v = json_object_get(root, "model");
	if (!json_is_string(v) || json_string_length(v) == 0)
		goto out;
	if ((m = cfg_model_find(&chat_cfg, json_string_value(v))) != NULL)
		FUZZ_CHECK(strcmp(m->name, json_string_value(v)) == 0);
	else
		m = &chat_cfg.models[0]; /* still flatten: a 404 comes later */
	v = json_object_get(root, "reasoning_format");
	if (json_is_string(v) &&
	    oai_reasoning_parse(json_string_value(v), &rf) == 0)
		FUZZ_CHECK(
		    strcmp(oai_reasoning_name[rf], json_string_value(v)) == 0);
	messages = json_object_get(root, "messages");

	chat_flatten(messages, CHAT_MSG_MAX, &big);
	chat_flatten(messages, CHAT_MSG_MAX, &again);
	FUZZ_CHECK(chat_flat_eq(&big, &again));
	chat_flatten(messages, CHAT_SMALL_MAX, &small);
	if (small.rc == 0)
		FUZZ_CHECK(chat_flat_eq(&big, &small));
	if (big.rc != 0)
		FUZZ_CHECK(small.rc != 0);

	if (big.rc == 0) {
		FUZZ_CHECK(oai_count_tokens(big.out.p, big.out.len) >=
		    (big.out.len + 3) / 4);
		for (i = 0; i < big.nimages && i < 8; i++)
			chat_image(big.images[i]);
		chat_payload(m, &big);
	}
	chat_flat_free(&big);
	chat_flat_free(&again);
	chat_flat_free(&small);
out:
	json_decref(root);
	return 0;
}
