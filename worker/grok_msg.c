/*
 * The flattening of an OpenAI chat history into grok.com's one upstream
 * message (see grok.h). Worker only; pure (jansson), no locks.
 *
 * The shape is the better of the two older proxies (reference section
 * 4.2, [R]): one block per message, blocks joined with a blank line, each
 * block labelled "<role>: " so the model can tell who said what. [E]
 * glued every text together with no separator and no role ("Be
 * terse.Hi"), which garbles any multi-turn context. We differ from [R]
 * in one point: only the *final* message goes unlabelled, and only when
 * it is the user's turn (the question being asked now), where [R] left
 * the last user message unlabelled wherever it was. So a lone user
 * message with plain text reaches grok exactly as typed, like a person
 * typing into the web page, and a history ending in an assistant or tool
 * turn stays unambiguous.
 *
 *	system: Be terse.
 *
 *	user (alice): Hi
 *
 *	assistant: Hello!
 *	[tool call call_1: get_weather({"city":"Berlin"})]
 *
 *	tool (call_1): 21 C, sunny
 *
 *	And tomorrow?
 *
 * Messages whose text is empty are left out (their images still count).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "grok.h"
#include "util.h"

#define GROK_FL_PATH 128 /* "messages[N].content[N].image_url" */

enum grok_fl_role {
	GROK_FL_SYSTEM,
	GROK_FL_DEVELOPER,
	GROK_FL_USER,
	GROK_FL_ASSISTANT,
	GROK_FL_TOOL,
	GROK_FL_FUNCTION, /* the legacy form of tool */
};

static const char *const grok_fl_role_name[] = {
	[GROK_FL_SYSTEM] = "system",
	[GROK_FL_DEVELOPER] = "developer",
	[GROK_FL_USER] = "user",
	[GROK_FL_ASSISTANT] = "assistant",
	[GROK_FL_TOOL] = "tool",
	[GROK_FL_FUNCTION] = "function",
};

struct grok_fl {
	struct buf *out;
	struct buf body; /* one message, before its label */
	struct buf raw;  /* an assistant's text, before <think> removal */
	char **img;
	size_t nimg, capimg;
	char *err, *param;
	size_t errlen, paramlen;
};

/* "<param> <what>" into err, param into param; returns WP_EINVAL. */
static int
grok_fl_invalid(struct grok_fl *f, const char *param, const char *what)
{
	if (f->errlen > 0)
		(void)snprintf(f->err, f->errlen, "%s %s", param,
		    what); /* a cut message is still a message */
	if (f->paramlen > 0)
		(void)util_strlcpy(f->param, param, f->paramlen); /* same */
	return WP_EINVAL;
}

static int
grok_fl_image(struct grok_fl *f, const char *url)
{
	char **n;
	size_t cap;

	if (f->nimg == f->capimg) {
		cap = f->capimg ? f->capimg * 2 : 4;
		if ((n = realloc(f->img, cap * sizeof(*n))) == NULL)
			return WP_ENOMEM;
		f->img = n;
		f->capimg = cap;
	}
	if ((f->img[f->nimg] = strdup(url)) == NULL)
		return WP_ENOMEM;
	f->nimg++;
	return 0;
}

/* Text parts of one message are joined with a newline. */
static int
grok_fl_text(struct buf *to, const char *s, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (to->len > 0 && (rc = buf_puts(to, "\n")) != 0)
		return rc;
	return buf_append(to, s, n);
}

/* For labels: names and ids from the client lose their control bytes. */
static int
grok_fl_label_str(struct buf *to, const char *s)
{
	int rc;

	for (; *s != '\0'; s++) {
		char ch = (unsigned char)*s < 0x20 ? ' ' : *s;

		if ((rc = buf_append(to, &ch, 1)) != 0)
			return rc;
	}
	return 0;
}

static int
grok_fl_part(
    struct grok_fl *f, size_t i, size_t j, const json_t *part, struct buf *to)
{
	const json_t *v, *url;
	char path[GROK_FL_PATH], what[160];
	const char *type;

	if (!json_is_object(part)) {
		(void)snprintf(path, sizeof(path), "messages[%zu].content[%zu]",
		    i, j); /* fits: see GROK_FL_PATH */
		return grok_fl_invalid(f, path, "must be an object");
	}
	if ((type = json_string_value(json_object_get(part, "type"))) == NULL) {
		(void)snprintf(path, sizeof(path),
		    "messages[%zu].content[%zu].type", i, j); /* fits */
		return grok_fl_invalid(f, path, "must be a string");
	}
	if (strcmp(type, "text") == 0 || strcmp(type, "input_text") == 0 ||
	    strcmp(type, "output_text") == 0) {
		if (!json_is_string(v = json_object_get(part, "text"))) {
			(void)snprintf(path, sizeof(path),
			    "messages[%zu].content[%zu].text", i, j); /* fits */
			return grok_fl_invalid(f, path, "must be a string");
		}
		return grok_fl_text(
		    to, json_string_value(v), json_string_length(v));
	}
	if (strcmp(type, "refusal") == 0) {
		v = json_object_get(part, "refusal");
		return grok_fl_text(to,
		    json_string_value(v) ? json_string_value(v) : "",
		    json_string_length(v));
	}
	if (strcmp(type, "image_url") == 0 ||
	    strcmp(type, "input_image") == 0) {
		v = json_object_get(part, "image_url");
		url = json_is_string(v) ? v : json_object_get(v, "url");
		if (!json_is_string(url) || json_string_length(url) == 0) {
			(void)snprintf(path, sizeof(path),
			    "messages[%zu].content[%zu].image_url", i,
			    j); /* fits */
			return grok_fl_invalid(f, path,
			    "must be an object with a url string, or a url string");
		}
		return grok_fl_image(f, json_string_value(url));
	}
	(void)snprintf(path, sizeof(path), "messages[%zu].content[%zu].type", i,
	    j); /* fits */
	(void)snprintf(what, sizeof(what),
	    "\"%.64s\" is not supported (use text or image_url)",
	    type); /* %.64s: fits */
	return grok_fl_invalid(f, path, what);
}

static int
grok_fl_content(
    struct grok_fl *f, size_t i, const json_t *content, struct buf *to)
{
	char path[GROK_FL_PATH];
	const json_t *part;
	size_t j;
	int rc;

	if (content == NULL || json_is_null(content))
		return 0;
	if (json_is_string(content))
		return buf_append(to, json_string_value(content),
		    json_string_length(content));
	if (!json_is_array(content)) {
		(void)snprintf(
		    path, sizeof(path), "messages[%zu].content", i); /* fits */
		return grok_fl_invalid(
		    f, path, "must be a string, an array of parts, or null");
	}
	json_array_foreach(content, j, part)
	{
		if ((rc = grok_fl_part(f, i, j, part, to)) != 0)
			return rc;
	}
	return 0;
}

static bool
grok_fl_blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	}
	return true;
}

/*
 * Copy s to `to` without <think>...</think> blocks, which clients echo
 * back from earlier answers and which would teach the model to answer
 * with its reasoning. A <think> with no end is dropped to the end only
 * when nothing but blanks comes before it (an answer cut off while
 * thinking); elsewhere it is text the user may mean.
 */
static int
grok_fl_unthink(const char *s, size_t n, struct buf *to)
{
	static const char open[] = "<think>", close[] = "</think>";
	const char *p = s, *end = s + n, *o, *c;
	size_t start = to->len;
	int rc;

	while ((o = memmem(p, (size_t)(end - p), open, sizeof(open) - 1)) !=
	    NULL) {
		c = memmem(o, (size_t)(end - o), close, sizeof(close) - 1);
		if ((rc = buf_append(to, p, (size_t)(o - p))) != 0)
			return rc;
		if (c == NULL) {
			if (grok_fl_blank(to->p + start, to->len - start))
				return 0;
			p = o;
			break;
		}
		p = c + sizeof(close) - 1;
	}
	return buf_append(to, p, (size_t)(end - p));
}

static void
grok_fl_trim(struct buf *b)
{
	size_t lead = 0;

	while (b->len > 0 && grok_fl_blank(b->p + b->len - 1, 1))
		b->len--;
	if (b->p != NULL)
		b->p[b->len] = '\0';
	while (lead < b->len && grok_fl_blank(b->p + lead, 1))
		lead++;
	buf_consume(b, lead);
}

/* One call: "[tool call <id>: <name>(<arguments>)]". */
static int
grok_fl_call(struct buf *to, const json_t *id, const json_t *fn)
{
	const json_t *args = json_object_get(fn, "arguments");
	const char *name = json_string_value(json_object_get(fn, "name"));
	char *dump = NULL;
	int rc;

	if (to->len > 0 && (rc = buf_puts(to, "\n")) != 0)
		return rc;
	if ((rc = buf_puts(to, "[tool call")) != 0)
		return rc;
	if (json_is_string(id) &&
	    ((rc = buf_puts(to, " ")) != 0 ||
	        (rc = grok_fl_label_str(to, json_string_value(id))) != 0))
		return rc;
	if ((rc = buf_puts(to, ": ")) != 0 ||
	    (rc = grok_fl_label_str(to, name != NULL ? name : "?")) != 0 ||
	    (rc = buf_puts(to, "(")) != 0)
		return rc;
	if (json_is_string(args)) {
		rc = buf_append(
		    to, json_string_value(args), json_string_length(args));
	} else if (args != NULL && !json_is_null(args)) {
		if ((dump = json_dumps(args, JSON_COMPACT)) == NULL)
			return WP_ENOMEM;
		rc = buf_puts(to, dump);
		free(dump);
	}
	if (rc != 0)
		return rc;
	return buf_puts(to, ")]");
}

/* An assistant's tool_calls (and the legacy function_call). */
static int
grok_fl_calls(struct grok_fl *f, size_t i, const json_t *m)
{
	const json_t *calls = json_object_get(m, "tool_calls"), *tc;
	char path[GROK_FL_PATH];
	size_t j;
	int rc;

	if (calls != NULL && !json_is_null(calls) && !json_is_array(calls)) {
		(void)snprintf(path, sizeof(path), "messages[%zu].tool_calls",
		    i); /* fits */
		return grok_fl_invalid(f, path, "must be an array");
	}
	json_array_foreach(calls, j, tc)
	{
		if (!json_is_object(tc)) {
			(void)snprintf(path, sizeof(path),
			    "messages[%zu].tool_calls[%zu]", i, j); /* fits */
			return grok_fl_invalid(f, path, "must be an object");
		}
		if ((rc = grok_fl_call(&f->body, json_object_get(tc, "id"),
		         json_object_get(tc, "function"))) != 0)
			return rc;
	}
	tc = json_object_get(m, "function_call");
	if (json_is_object(tc))
		return grok_fl_call(&f->body, NULL, tc);
	return 0;
}

/* "<role>: " or "<role> (<name>, <tool_call_id>): ". */
static int
grok_fl_label(struct buf *to, enum grok_fl_role role, const json_t *m)
{
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *id = json_string_value(json_object_get(m, "tool_call_id"));
	bool both = name != NULL && *name && id != NULL && *id;
	int rc;

	if ((rc = buf_puts(to, grok_fl_role_name[role])) != 0)
		return rc;
	if ((name == NULL || !*name) && (id == NULL || !*id))
		return buf_puts(to, ": ");
	if ((rc = buf_puts(to, " (")) != 0 ||
	    (rc = grok_fl_label_str(to, name != NULL ? name : "")) != 0 ||
	    (rc = buf_puts(to, both ? ", " : "")) != 0 ||
	    (rc = grok_fl_label_str(to, id != NULL ? id : "")) != 0)
		return rc;
	return buf_puts(to, "): ");
}

static int
grok_fl_role(
    struct grok_fl *f, size_t i, const json_t *m, enum grok_fl_role *role)
{
	const char *s = json_string_value(json_object_get(m, "role"));
	char path[GROK_FL_PATH];
	size_t r;

	(void)snprintf(path, sizeof(path), "messages[%zu].role", i); /* fits */
	if (s == NULL)
		return grok_fl_invalid(f, path, "must be a string");
	for (r = 0; r < ARRAY_LEN(grok_fl_role_name); r++) {
		if (strcmp(s, grok_fl_role_name[r]) == 0) {
			*role = (enum grok_fl_role)r;
			return 0;
		}
	}
	return grok_fl_invalid(
	    f, path, "must be one of system, developer, user, assistant, tool");
}

/* One message's text into f->body (empty when it has none). */
static int
grok_fl_body(
    struct grok_fl *f, size_t i, const json_t *m, enum grok_fl_role role)
{
	const json_t *content = json_object_get(m, "content");
	int rc;

	buf_reset(&f->body);
	if (role != GROK_FL_ASSISTANT)
		return grok_fl_content(f, i, content, &f->body);
	buf_reset(&f->raw);
	if ((rc = grok_fl_content(f, i, content, &f->raw)) != 0 ||
	    (rc = grok_fl_unthink(
	         f->raw.p != NULL ? f->raw.p : "", f->raw.len, &f->body)) != 0)
		return rc;
	grok_fl_trim(&f->body);
	return grok_fl_calls(f, i, m);
}

static int
grok_fl_all(struct grok_fl *f, const json_t *messages)
{
	enum grok_fl_role role = GROK_FL_USER;
	char path[GROK_FL_PATH];
	const json_t *m;
	size_t i, n;
	int rc;

	if (!json_is_array(messages))
		return grok_fl_invalid(f, "messages", "must be an array");
	if ((n = json_array_size(messages)) == 0)
		return grok_fl_invalid(f, "messages", "must not be empty");
	json_array_foreach(messages, i, m)
	{
		if (!json_is_object(m)) {
			(void)snprintf(
			    path, sizeof(path), "messages[%zu]", i); /* fits */
			return grok_fl_invalid(f, path, "must be an object");
		}
		if ((rc = grok_fl_role(f, i, m, &role)) != 0 ||
		    (rc = grok_fl_body(f, i, m, role)) != 0)
			return rc;
		if (f->body.len == 0)
			continue;
		if (f->out->len > 0 && (rc = buf_puts(f->out, "\n\n")) != 0)
			return rc;
		/* The question asked now goes as typed (see the top). */
		if ((i + 1 < n || role != GROK_FL_USER) &&
		    (rc = grok_fl_label(f->out, role, m)) != 0)
			return rc;
		if ((rc = buf_append(f->out, f->body.p, f->body.len)) != 0)
			return rc;
	}
	if (grok_fl_blank(f->out->p != NULL ? f->out->p : "", f->out->len) &&
	    f->nimg == 0)
		return grok_fl_invalid(
		    f, "messages", "contain no text and no image");
	return 0;
}

int
grok_flatten(const json_t *messages, struct buf *out, char ***images,
    size_t *nimages, char *err, size_t errlen, char *param, size_t paramlen)
{
	struct grok_fl f;
	size_t start = out->len, i;
	int rc;

	memset(&f, 0, sizeof(f));
	f.out = out;
	f.err = err;
	f.errlen = errlen;
	f.param = param;
	f.paramlen = paramlen;
	buf_init(&f.body, out->max);
	buf_init(&f.raw, out->max);
	if (errlen > 0)
		err[0] = '\0';
	if (paramlen > 0)
		param[0] = '\0';
	*images = NULL;
	*nimages = 0;

	if ((rc = grok_fl_all(&f, messages)) == WP_ETOOBIG)
		(void)grok_fl_invalid(&f, "messages",
		    "are too long"); /* only for the text; rc stays */
	if (rc != 0)
		goto out;
	*images = f.img; /* the caller owns them now */
	*nimages = f.nimg;
	f.img = NULL;
	f.nimg = 0;
out:
	for (i = 0; i < f.nimg; i++)
		free(f.img[i]);
	free(f.img);
	buf_fini(&f.body);
	buf_fini(&f.raw);
	if (rc != 0) {
		out->len = start; /* leave out as we found it */
		if (out->p != NULL)
			out->p[start] = '\0';
	}
	return rc;
}
