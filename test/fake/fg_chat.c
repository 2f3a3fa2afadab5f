/*
 * fakegrok's POST /rest/app-chat/conversations/new: checks the payload
 * like grok.com, picks a scenario from the model and the prompt (see the
 * keyword list at the top of fakegrok.c and README.md), applies a fault
 * the token or prompt asks for, charges the token's quota, and streams
 * the answer as NDJSON.
 *
 * A stream is generated line by line from a short plan of segments, so
 * it costs a few hundred bytes whatever its length. The content reader
 * runs in an MHD thread: an untimed stream packs as many lines as fit
 * into MHD's buffer; a timed one writes one line and then suspends the
 * connection until fg_timer.c resumes it when the next line is due.
 * Owns each stream (freed by MHD's response-free callback); takes no
 * lock itself (the token store takes its own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "log.h"
#include "util.h"

#include "fg.h"

#define FG_STREAM_MAGIC  0x46475354u
#define FG_OUT_MAX       ((size_t)256 << 20) /* one line, at most */
#define FG_TOKENS_MAX    1000000
#define FG_LONG_TOKENS   2000
#define FG_DRIP_MS       500
#define FG_CUT_LINES     7
#define FG_INBAND_AFTER  3
#define FG_GARBAGE_EVERY 5
#define FG_IMAGES_MAX    16 /* [images=N] */
#define FG_IMAGES_DEF    2  /* without imageGenerationCount */

const char *const fg_fault_name[] = {
	[FG_F_NONE] = "none",
	[FG_F_401] = "401",
	[FG_F_403BOT] = "403bot",
	[FG_F_403CF] = "403cf",
	[FG_F_429] = "429",
	[FG_F_500] = "500",
	[FG_F_DRIP] = "drip",
	[FG_F_STALL] = "stall",
	[FG_F_STALLFIRST] = "stallfirst",
	[FG_F_CUT] = "cut",
	[FG_F_MALFORMED] = "malformed",
	[FG_F_INBAND] = "inband",
	[FG_F_INBANDFIRST] = "inbandfirst",
	[FG_F_RESPERROR] = "resperror",
	[FG_F_MODELERROR] = "modelerror",
	[FG_F_EMPTY] = "empty",
	[FG_F_DATAPFX] = "datapfx",
	[FG_F_RUNON] = "runon",
};

enum fg_answer {
	FG_ANS_DEFAULT,
	FG_ANS_TAGS,
	FG_ANS_ECHO,
	FG_ANS_IMAGE, /* the short text before generated images */
};

static const char *const fg_answer_name[] = {
	[FG_ANS_DEFAULT] = "default",
	[FG_ANS_TAGS] = "tags",
	[FG_ANS_ECHO] = "echo",
	[FG_ANS_IMAGE] = "image",
};

enum fg_framing {
	FG_FR_NDJSON,
	FG_FR_DATAPFX,
	FG_FR_RUNON,
};

enum fg_seg_kind {
	FG_SEG_CONV,
	FG_SEG_USER,
	FG_SEG_THINK,
	FG_SEG_ANSWER,
	FG_SEG_INBAND,    /* {"error":{"code":8,...}} */
	FG_SEG_INBANDBOT, /* {"error":{"code":7,...anti-bot...}} */
	FG_SEG_RESPERROR, /* {"result":{"response":{"error":{...}}}} */
	FG_SEG_FINALMETA,
	FG_SEG_MODELRESP,
	FG_SEG_TITLE,
	FG_SEG_IMAGE,    /* streamingImageGenerationResponse, per image */
	FG_SEG_VIDEO,    /* streamingVideoGenerationResponse */
	FG_SEG_SOFTSTOP, /* the video's closing token, isSoftStop */
};

/* Image progress steps (each image goes through all) and video ones. */
static const int fg_image_steps[] = { 0, 50, 100 };
static const int fg_video_steps[] = { 1, 45, 95, 100 };

struct fg_seg {
	enum fg_seg_kind kind;
	uint64_t count; /* lines in this segment */
};

/* What the prompt asked for. */
struct fg_scn {
	enum fg_answer answer;
	int64_t ntok;        /* -1: the answer's natural length */
	int thinking;        /* -1: decided by the model */
	int64_t interval_ms; /* 0: no pacing */
	int64_t firstdelay_ms;
	int64_t stall_after; /* -1: never */
	int64_t cut_after;   /* -1: never */
	enum fg_fault fault;
	bool stamp;
	int64_t images; /* -1: none; 0: imageGenerationCount; else N */
	bool png;       /* images as image.png rather than image.jpg */
};

struct fg_stream {
	unsigned magic;
	struct fg_wait wait;
	char *msg; /* the user's message, as received */
	size_t msglen;
	char *model;
	char *files; /* the request's fileAttachments, as JSON text */
	bool temporary;
	bool thinking;
	bool malformed;
	bool modelerror;
	bool stamp; /* answer tokens are send times, for the benchmark */
	enum fg_answer answer;
	enum fg_framing framing;
	uint64_t ntok;
	int64_t interval_ms;
	int64_t stall_after;
	int64_t cut_after;
	char cid[37], uid[37], rid[37], tcid[37];
	char created[40];
	unsigned nimg; /* images generated, 0 for none */
	bool png;      /* their paths end in .png */
	bool video;    /* toolOverrides.videoGen */
	char user[37]; /* the account's UUID, from the sso token */
	char vid[37];  /* the video's id */
	char post[37]; /* the image post the video came from */
	struct fg_seg seg[12];
	size_t nseg, iseg;
	uint64_t ipos;
	bool garbage_done;
	uint64_t nlines;
	struct buf out; /* bytes generated, not yet given to MHD */
	size_t off;
	uint64_t next_due_ns;
	bool done, cut, aborted;
};

/* The default answer: about 50 tokens, with JSON-hostile characters. */
static const char *const fg_default_toks[] = {
	"Hello",
	"!",
	" I'm",
	" Grok",
	",",
	" built",
	" by",
	" xAI",
	".",
	" The",
	" sky",
	" looks",
	" blue",
	" because",
	" air",
	" molecules",
	" scatter",
	" short",
	" (blue)",
	" wavelengths",
	" of",
	" sunlight",
	" far",
	" more",
	" than",
	" long",
	" ones",
	" \xe2\x80\x94",
	" this",
	" is",
	" called",
	" *Rayleigh",
	" scattering*",
	".\n\n",
	"At",
	" sunset",
	",",
	" light",
	" crosses",
	" more",
	" air",
	", so",
	" reds",
	" dominate",
	". Today",
	" it's",
	" 21\xc2\xb0"
	"C",
	" and \"sunny\"",
	" \xf0\x9f\x8c\xa4\xef\xb8\x8f",
	" Anything else?",
};

/*
 * The [tags] answer: Grok-internal blocks, some whole in one token, some
 * split across two (see README.md for the text a filter should leave).
 */
static const char *const fg_tags_toks[] = {
	"Here is the code",
	" you asked for:\n\n",
	"<xaiartifact artifact_id=\"8d5e2a4c-0000-4000-8000-000000000001\" "
	"artifact_version_id=\"v1\" title=\"hello.py\" "
	"contentType=\"text/python\">",
	"print(\"hello\")\n",
	"</xaiartifact>",
	"\n\nAccording to the docs",
	"<grok:render type=\"render_inline_citation\"><argument "
	"name=\"citation_id\">1</argument></grok:render>",
	" it works.",
	" I searched",
	"<xai:tool_usage_card><xai:tool_usage_card_id>"
	"9b2f4c1e-0000-4000-8000-000000000002</xai:tool_usage_card_id>"
	"<xai:tool_name>web_search</xai:tool_name><xai:tool_args><![CDATA["
	"{\"query\":\"hello world python\"}]]></xai:tool_args>"
	"</xai:tool_usage_card>",
	" first.",
	" Split:",
	"<xaiart",
	"ifact artifact_id=\"8d5e2a4c-0000-4000-8000-000000000003\" "
	"title=\"notes.txt\" contentType=\"text/plain\">",
	"inner text",
	"</xaiar",
	"tifact>",
	" then",
	"<grok:render type=\"render_inline_citation\"><argument "
	"name=\"citation_id\">",
	"2</argument></grok:render>",
	" and",
	"<xai:tool_usage_",
	"card><xai:tool_name>web_search</xai:tool_name></xai:tool_usage_card>",
	" done.",
};

/* The text before generated images (the image scenario). */
static const char *const fg_image_toks[] = {
	"Here",
	" is",
	" what",
	" I",
	" drew",
	" for",
	" you.",
};

enum fg_think_kind {
	FG_TH_TEXT,
	FG_TH_SEARCH, /* the webSearchResults card */
	FG_TH_CARD,   /* the <xai:tool_usage_card> token */
};

static const struct fg_think_line {
	enum fg_think_kind kind;
	const char *tag;
	const char *tok;
} fg_think[] = {
	{ FG_TH_TEXT, "header", "Thinking about your request" },
	{ FG_TH_TEXT, "analysis", "The user" },
	{ FG_TH_TEXT, "analysis", " asks why" },
	{ FG_TH_TEXT, "analysis", " the sky is blue." },
	{ FG_TH_TEXT, "analysis", " Let me search" },
	{ FG_TH_TEXT, "analysis", " the web first." },
	{ FG_TH_SEARCH, "tool_usage_card", "" },
	{ FG_TH_CARD, "tool_usage_card", NULL },
	{ FG_TH_TEXT, "header", "Reviewing the results" },
	{ FG_TH_TEXT, "analysis", "Found two" },
	{ FG_TH_TEXT, "analysis", " good sources" },
	{ FG_TH_TEXT, "analysis", " on Rayleigh scattering." },
	{ FG_TH_TEXT, "analysis", " Writing the answer." },
};

static const struct fg_hit {
	const char *title, *url, *preview;
} fg_hits[] = {
	{ "Why Is the Sky Blue? | NASA Space Place",
	    "https://spaceplace.nasa.gov/blue-sky/",
	    "Sunlight reaches Earth's atmosphere and is scattered in all "
	    "directions.\nBlue light is scattered more than other colors." },
	{ "Rayleigh scattering - Wikipedia",
	    "https://en.wikipedia.org/wiki/Rayleigh_scattering",
	    "Rayleigh scattering is the scattering of light by particles\n"
	    "much smaller than the wavelength of the radiation." },
	{ "Berlin forecast", "https://weather.example/berlin",
	    "Sunny,\n21\xc2\xb0"
	    "C" },
};

/* Models of the protocol reference's [E] table (§3.3). */
static const char *const fg_models[] = {
	"grok-3",
	"grok-4-mini-thinking-tahoe",
	"grok-4",
	"grok-4-heavy",
	"grok-4-1-non-thinking-w-tool",
	"grok-4-1-thinking-1108b",
};

bool
fg_model_known(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(fg_models); i++)
		if (strcmp(name, fg_models[i]) == 0)
			return true;
	for (i = 0; i < fg_conf.nmodels; i++)
		if (strcmp(name, fg_conf.models[i]) == 0)
			return true;
	return false;
}

enum fg_fault
fg_fault_lookup(const char *name, size_t n)
{
	size_t i;

	for (i = 1; i < FG_F__N; i++)
		if (strlen(fg_fault_name[i]) == n &&
		    memcmp(fg_fault_name[i], name, n) == 0)
			return (enum fg_fault)i;
	if (n == 3 && memcmp(name, "403", 3) == 0)
		return FG_F_403BOT;
	return FG_F_NONE;
}

void
fg_fault_parse(const char *tok, struct fg_fault_spec *fs)
{
	const char *p, *e;
	size_t n;

	fs->fault = FG_F_NONE;
	fs->times = 0;
	if (strncmp(tok, "fault-", 6) != 0)
		return;
	p = tok + 6;
	/* The name runs to the next '-', or to an 'x' followed by a digit. */
	for (e = p; *e != '\0' && *e != '-'; e++)
		if (*e == 'x' && e[1] >= '0' && e[1] <= '9')
			break;
	n = (size_t)(e - p);
	if ((fs->fault = fg_fault_lookup(p, n)) == FG_F_NONE)
		return;
	if (*e == 'x') {
		int64_t k = 0;

		for (e++; *e >= '0' && *e <= '9' && k < 1000000000; e++)
			k = k * 10 + (*e - '0');
		fs->times = k > 0 ? k : 1;
	}
}

/* ---- reading the prompt ---- */

/* "[name=NUMBER]" anywhere in msg: 0 and *v, or WP_ENOENT. */
static int
fg_kw_num(
    const char *msg, size_t len, const char *name, int64_t max, int64_t *v)
{
	char key[32], num[24];
	const char *p, *e;
	size_t klen;

	klen = (size_t)snprintf(key, sizeof(key), "[%s=", name);
	if ((p = memmem(msg, len, key, klen)) == NULL)
		return WP_ENOENT;
	p += klen;
	e = memchr(p, ']', len - (size_t)(p - msg));
	if (e == NULL || (size_t)(e - p) >= sizeof(num))
		return WP_ENOENT;
	memcpy(num, p, (size_t)(e - p));
	num[e - p] = '\0';
	return util_parse_i64(num, 0, max, v) == 0 ? 0 : WP_ENOENT;
}

static bool
fg_kw(const char *msg, size_t len, const char *kw)
{
	return memmem(msg, len, kw, strlen(kw)) != NULL;
}

/* Whether needle occurs in s[0..n), ignoring ASCII case. */
static bool
fg_has_nocase(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++)
		if (strncasecmp(s + i, needle, k) == 0)
			return true;
	return false;
}

/*
 * Whether a plain prompt asks for a picture, as grok.com decides from the
 * words: the user's turn (the last paragraph of the flattened message)
 * starts with "draw", or says "image of" or "picture of".
 */
static bool
fg_asks_image(const char *msg, size_t len)
{
	const char *p = msg, *q;
	size_t n;

	while ((q = memmem(p, len - (size_t)(p - msg), "\n\n", 2)) != NULL)
		p = q + 2;
	while (p < msg + len && (*p == ' ' || *p == '\n' || *p == '\t'))
		p++;
	n = len - (size_t)(p - msg);
	if (n >= 4 && strncasecmp(p, "draw", 4) == 0 &&
	    (n == 4 ||
	        !((p[4] >= 'a' && p[4] <= 'z') ||
	            (p[4] >= 'A' && p[4] <= 'Z'))))
		return true;
	return fg_has_nocase(p, n, "image of") ||
	    fg_has_nocase(p, n, "picture of");
}

static void
fg_scn_parse(const char *msg, size_t len, struct fg_scn *s)
{
	static const char fkey[] = "[fault=";
	const char *p, *e;

	s->answer = FG_ANS_DEFAULT;
	s->ntok = -1;
	s->thinking = -1;
	s->interval_ms = 0;
	s->firstdelay_ms = 0;
	s->stall_after = -1;
	s->cut_after = -1;
	s->fault = FG_F_NONE;
	s->images = -1;
	s->png = fg_kw(msg, len, "[png]");
	if (fg_kw(msg, len, "[image]") || fg_asks_image(msg, len))
		s->images = 0;
	if (fg_kw_num(msg, len, "images", FG_IMAGES_MAX, &s->images) == 0 &&
	    s->images == 0)
		s->images = -1; /* [images=0]: a plain answer after all */
	if (fg_kw(msg, len, "[tags]"))
		s->answer = FG_ANS_TAGS;
	if (fg_kw(msg, len, "[echo]"))
		s->answer = FG_ANS_ECHO;
	if (fg_kw(msg, len, "[long]"))
		s->ntok = FG_LONG_TOKENS;
	if (fg_kw(msg, len, "[think]"))
		s->thinking = 1;
	if (fg_kw(msg, len, "[nothink]"))
		s->thinking = 0;
	s->stamp = fg_kw(msg, len, "[stamp]");
	(void)fg_kw_num(msg, len, "tokens", FG_TOKENS_MAX, &s->ntok);
	(void)fg_kw_num(msg, len, "interval", 600000, &s->interval_ms);
	(void)fg_kw_num(msg, len, "firstdelay", 3600000, &s->firstdelay_ms);
	(void)fg_kw_num(msg, len, "stallafter", INT32_MAX, &s->stall_after);
	(void)fg_kw_num(msg, len, "cutafter", INT32_MAX, &s->cut_after);
	if ((p = memmem(msg, len, fkey, sizeof(fkey) - 1)) != NULL) {
		p += sizeof(fkey) - 1;
		if ((e = memchr(p, ']', len - (size_t)(p - msg))) != NULL)
			s->fault = fg_fault_lookup(p, (size_t)(e - p));
	}
}

static bool
fg_thinking_model(const char *model, const char *mode)
{
	if (strstr(model, "thinking") != NULL &&
	    strstr(model, "non-thinking") == NULL)
		return true;
	return strcmp(mode, "MODEL_MODE_EXPERT") == 0 ||
	    strcmp(mode, "MODEL_MODE_HEAVY") == 0 ||
	    (strstr(mode, "THINKING") != NULL &&
	        strstr(mode, "NON_THINKING") == NULL);
}

/* ---- NDJSON lines ---- */

static const char *
fg_answer_tok(const struct fg_stream *st, uint64_t i, size_t *len)
{
	const char *t;

	switch (st->answer) {
	case FG_ANS_ECHO:
		*len = st->msglen;
		return st->msg;
	case FG_ANS_TAGS:
		t = fg_tags_toks[i % ARRAY_LEN(fg_tags_toks)];
		break;
	case FG_ANS_IMAGE:
		t = fg_image_toks[i % ARRAY_LEN(fg_image_toks)];
		break;
	case FG_ANS_DEFAULT:
	default:
		t = fg_default_toks[i % ARRAY_LEN(fg_default_toks)];
		break;
	}
	*len = strlen(t);
	return t;
}

/* The end of every "response" line. */
static int
fg_line_tail(struct fg_stream *st, bool thinking)
{
	return buf_printf(&st->out,
	    ",\"isThinking\":%s,\"isSoftStop\":false,\"responseId\":\"%s\"}}}",
	    thinking ? "true" : "false", st->rid);
}

static int
fg_line_conv(struct fg_stream *st)
{
	return buf_printf(&st->out,
	    "{\"result\":{\"conversation\":{\"conversationId\":\"%s\","
	    "\"title\":\"New conversation\",\"starred\":false,"
	    "\"createTime\":\"%s\",\"modifyTime\":\"%s\","
	    "\"systemPromptName\":\"\",\"temporary\":%s,"
	    "\"mediaTypes\":[]}}}",
	    st->cid, st->created, st->created,
	    st->temporary ? "true" : "false");
}

static int
fg_line_user(struct fg_stream *st)
{
	int rc;

	if ((rc = buf_printf(&st->out,
	         "{\"result\":{\"response\":{\"userResponse\":{"
	         "\"responseId\":\"%s\",\"message\":",
	         st->uid)) != 0 ||
	    (rc = fg_buf_add_jstr(&st->out, st->msg, st->msglen)) != 0 ||
	    (rc = buf_printf(&st->out,
	         ",\"sender\":\"human\",\"createTime\":\"%s\","
	         "\"manual\":false,\"partial\":false,\"shared\":false,"
	         "\"query\":\"\",\"queryType\":\"\",\"webSearchResults\":[],"
	         "\"xpostIds\":[],\"xposts\":[],\"generatedImageUrls\":[],"
	         "\"imageAttachments\":[],\"fileAttachments\":%s,"
	         "\"cardAttachmentsJson\":[],\"fileUris\":[],"
	         "\"fileAttachmentsMetadata\":[],\"isControl\":false,"
	         "\"steps\":[],\"mediaTypes\":[],\"model\":",
	         st->created, st->files)) != 0 ||
	    (rc = fg_buf_add_jstr(&st->out, st->model, strlen(st->model))) != 0)
		return rc;
	/* The user turn has its own responseId; the tail names ours. */
	return buf_printf(&st->out,
	    "},\"isThinking\":false,\"isSoftStop\":false,"
	    "\"responseId\":\"%s\"}}}",
	    st->uid);
}

static int
fg_line_token(struct fg_stream *st, const char *tok, size_t len, bool thinking,
    const char *tag)
{
	int rc;

	if ((rc = buf_puts(
	         &st->out, "{\"result\":{\"response\":{\"token\":")) != 0 ||
	    (rc = fg_buf_add_jstr(&st->out, tok, len)) != 0 ||
	    (rc = buf_printf(&st->out,
	         ",\"isThinking\":%s,\"isSoftStop\":false,"
	         "\"responseId\":\"%s\",\"messageTag\":\"%s\"",
	         thinking ? "true" : "false", st->rid, tag)) != 0)
		return rc;
	if (strcmp(tag, "tool_usage_card") == 0 &&
	    (rc = buf_printf(
	         &st->out, ",\"toolUsageCardId\":\"%s\"", st->tcid)) != 0)
		return rc;
	return buf_puts(&st->out, "}}}");
}

static int
fg_search_results(struct buf *b)
{
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < ARRAY_LEN(fg_hits); i++) {
		if ((rc = buf_puts(b, i == 0 ? "{\"url\":" : ",{\"url\":")) !=
		        0 ||
		    (rc = fg_buf_add_jstr(
		         b, fg_hits[i].url, strlen(fg_hits[i].url))) != 0 ||
		    (rc = buf_puts(b, ",\"title\":")) != 0 ||
		    (rc = fg_buf_add_jstr(
		         b, fg_hits[i].title, strlen(fg_hits[i].title))) != 0 ||
		    (rc = buf_puts(b, ",\"preview\":")) != 0 ||
		    (rc = fg_buf_add_jstr(b, fg_hits[i].preview,
		         strlen(fg_hits[i].preview))) != 0)
			break;
		rc = buf_puts(b, "}");
	}
	return rc;
}

static int
fg_line_think(struct fg_stream *st, uint64_t i)
{
	const struct fg_think_line *t = &fg_think[i];
	char card[512];
	int rc, n;

	switch (t->kind) {
	case FG_TH_SEARCH:
		if ((rc = buf_printf(&st->out,
		         "{\"result\":{\"response\":{\"token\":\"\","
		         "\"isThinking\":true,\"isSoftStop\":false,"
		         "\"responseId\":\"%s\",\"messageTag\":"
		         "\"tool_usage_card\",\"toolUsageCardId\":\"%s\","
		         "\"webSearchResults\":{\"results\":[",
		         st->rid, st->tcid)) != 0 ||
		    (rc = fg_search_results(&st->out)) != 0)
			return rc;
		return buf_puts(&st->out, "]}}}}");
	case FG_TH_CARD:
		n = snprintf(card, sizeof(card),
		    "<xai:tool_usage_card><xai:tool_usage_card_id>%s"
		    "</xai:tool_usage_card_id><xai:tool_name>web_search"
		    "</xai:tool_name><xai:tool_args><![CDATA[{\"query\":"
		    "\"why is the sky blue\"}]]></xai:tool_args>"
		    "</xai:tool_usage_card>",
		    st->tcid);
		WP_ASSERT(n > 0 && (size_t)n < sizeof(card));
		return fg_line_token(st, card, (size_t)n, true, t->tag);
	case FG_TH_TEXT:
	default:
		return fg_line_token(st, t->tok, strlen(t->tok), true, t->tag);
	}
}

/* Where generated image i is, on the assets host. */
static void
fg_image_path(const struct fg_stream *st, unsigned i, char *out, size_t len)
{
	char seed[64], id[37];

	(void)snprintf(seed, sizeof(seed), "%s/image/%u", st->rid, i);
	fg_uuid_from(seed, id);
	(void)snprintf(out, len, "users/%s/generated/%s/image.%s", st->user, id,
	    st->png ? "png" : "jpg");
}

/* The generatedImageUrls list's items, comma separated. */
static int
fg_image_urls(struct fg_stream *st)
{
	char path[160];
	unsigned i;
	int rc;

	for (i = 0; i < st->nimg; i++) {
		fg_image_path(st, i, path, sizeof(path));
		if ((rc = buf_printf(
		         &st->out, "%s\"%s\"", i > 0 ? "," : "", path)) != 0)
			return rc;
	}
	return 0;
}

/*
 * Image progress (example C of the reference): every image at each step
 * in turn, the imageUrl with 100, imageAttachmentInfo on the first line.
 */
static int
fg_line_image(struct fg_stream *st, uint64_t i)
{
	unsigned idx = (unsigned)(i % st->nimg);
	int step = fg_image_steps[i / st->nimg];
	char path[160];
	int rc;

	if ((rc = buf_puts(&st->out, "{\"result\":{\"response\":{")) != 0)
		return rc;
	if (i == 0 &&
	    (rc = buf_printf(&st->out,
	         "\"imageAttachmentInfo\":{\"imageCount\":%u},", st->nimg)) !=
	        0)
		return rc;
	if ((rc = buf_printf(&st->out,
	         "\"streamingImageGenerationResponse\":{\"imageIndex\":%u,"
	         "\"progress\":%d",
	         idx, step)) != 0)
		return rc;
	if (step == 100) {
		fg_image_path(st, idx, path, sizeof(path));
		if ((rc = buf_printf(&st->out,
		         ",\"imageUrl\":\"%s\",\"isFinal\":true,"
		         "\"moderated\":false",
		         path)) != 0)
			return rc;
	}
	if ((rc = buf_puts(&st->out, "}")) != 0)
		return rc;
	return fg_line_tail(st, false);
}

/* Video progress (example D): the last step carries the URLs. */
static int
fg_line_video(struct fg_stream *st, uint64_t i)
{
	int step = fg_video_steps[i], rc;

	if ((rc = buf_printf(&st->out,
	         "{\"result\":{\"response\":{"
	         "\"streamingVideoGenerationResponse\":{\"videoId\":\"%s\","
	         "\"progress\":%d,\"videoPostId\":\"%s\"",
	         st->vid, step, st->post)) != 0)
		return rc;
	if (step == 100 &&
	    (rc = buf_printf(&st->out,
	         ",\"videoUrl\":\"users/%s/generated/%s/generated_video.mp4\","
	         "\"thumbnailImageUrl\":\"users/%s/generated/%s/"
	         "preview_image.jpg\",\"moderated\":false,"
	         "\"resolutionName\":\"480p\"",
	         st->user, st->vid, st->user, st->vid)) != 0)
		return rc;
	if ((rc = buf_puts(&st->out, "}")) != 0)
		return rc;
	return fg_line_tail(st, false);
}

/* The token that closes a video answer (example D): a soft stop. */
static int
fg_line_softstop(struct fg_stream *st)
{
	return buf_printf(&st->out,
	    "{\"result\":{\"response\":{\"token\":\"I generated a video\","
	    "\"isThinking\":false,\"isSoftStop\":true,\"responseId\":\"%s\","
	    "\"messageTag\":\"final\"}}}",
	    st->rid);
}

static int
fg_line_finalmeta(struct fg_stream *st)
{
	int rc;

	if ((rc = buf_puts(&st->out,
	         "{\"result\":{\"response\":{\"finalMetadata\":{"
	         "\"followUpSuggestions\":[],\"feedbackLabels\":[],"
	         "\"toolsUsed\":{}}")) != 0)
		return rc;
	return fg_line_tail(st, false);
}

static int
fg_line_modelresp(struct fg_stream *st)
{
	uint64_t i;
	size_t len;
	const char *t;
	int rc;

	if ((rc = buf_printf(&st->out,
	         "{\"result\":{\"response\":{\"modelResponse\":{"
	         "\"responseId\":\"%s\",\"message\":\"",
	         st->rid)) != 0)
		return rc;
	/* message = every answer token, in order (thinking is not in it). */
	for (i = 0; i < st->ntok; i++) {
		t = fg_answer_tok(st, i, &len);
		if ((rc = fg_buf_add_jesc(&st->out, t, len)) != 0)
			return rc;
	}
	if ((rc = buf_printf(&st->out,
	         "\",\"sender\":\"assistant\",\"createTime\":\"%s\","
	         "\"parentResponseId\":\"%s\",\"manual\":false,"
	         "\"partial\":false,\"shared\":false,\"query\":\"\","
	         "\"queryType\":\"\",\"webSearchResults\":[",
	         st->created, st->uid)) != 0 ||
	    (st->thinking && (rc = fg_search_results(&st->out)) != 0) ||
	    (rc = buf_puts(&st->out,
	         "],\"xpostIds\":[],\"xposts\":[],\"generatedImageUrls\":[")) !=
	        0 ||
	    (rc = fg_image_urls(st)) != 0 ||
	    (rc = buf_puts(&st->out,
	         "],\"imageAttachments\":[],\"fileAttachments\":[],"
	         "\"cardAttachmentsJson\":[],\"fileUris\":[],"
	         "\"fileAttachmentsMetadata\":[],\"isControl\":false,"
	         "\"steps\":[],\"mediaTypes\":[],\"model\":")) != 0 ||
	    (rc = fg_buf_add_jstr(&st->out, st->model, strlen(st->model))) != 0)
		return rc;
	if (st->modelerror &&
	    (rc = buf_puts(&st->out,
	         ",\"error\":\"The model failed to generate a response.\"")) !=
	        0)
		return rc;
	if ((rc = buf_puts(&st->out, "}")) != 0)
		return rc;
	return fg_line_tail(st, false);
}

static int
fg_line_other(struct fg_stream *st, enum fg_seg_kind k)
{
	int rc;

	switch (k) {
	case FG_SEG_INBAND:
		return buf_puts(&st->out,
		    "{\"error\":{\"code\":8,\"message\":\"rate limited\","
		    "\"details\":[]}}");
	case FG_SEG_INBANDBOT:
		return buf_puts(&st->out,
		    "{\"error\":{\"code\":7,\"message\":\"Request rejected by "
		    "anti-bot rules.\",\"details\":[]}}");
	case FG_SEG_RESPERROR:
		if ((rc = buf_puts(&st->out,
		         "{\"result\":{\"response\":{\"error\":{\"message\":"
		         "\"You've reached your usage limit. Please try again "
		         "later.\"}")) != 0)
			return rc;
		return fg_line_tail(st, false);
	case FG_SEG_TITLE:
		return buf_puts(&st->out,
		    "{\"result\":{\"title\":{\"newTitle\":\"Why the sky is "
		    "blue\"}}}");
	case FG_SEG_CONV:
	case FG_SEG_USER:
	case FG_SEG_THINK:
	case FG_SEG_ANSWER:
	case FG_SEG_FINALMETA:
	case FG_SEG_MODELRESP:
	case FG_SEG_IMAGE:
	case FG_SEG_VIDEO:
	case FG_SEG_SOFTSTOP:
	default:
		break;
	}
	return WP_EINVAL;
}

/* Lines that are not JSON, for fault-malformed; one blank among them. */
static int
fg_line_garbage(struct fg_stream *st)
{
	static const char *const junk[] = {
		"{\"result\":{\"response\":{\"token\":\"trunc",
		"<!DOCTYPE html><html><body>upstream hiccup</body></html>",
		"not json at all",
		"",
		"]}{",
	};

	return buf_puts(&st->out, junk[st->nlines % ARRAY_LEN(junk)]);
}

/*
 * [stamp]: the token is " ~T<ns>~", CLOCK_MONOTONIC when the line is
 * written, so a client on this machine can tell how late a proxy passed
 * it on (test/bench/wpload.c reads it).
 */
static int
fg_line_stamp(struct fg_stream *st)
{
	char tok[32];
	int n = snprintf(
	    tok, sizeof(tok), " ~T%llu~", (unsigned long long)fg_mono_ns());

	WP_ASSERT(n > 0 && (size_t)n < sizeof(tok));
	return fg_line_token(st, tok, (size_t)n, false, "final");
}

static int
fg_line(struct fg_stream *st, const struct fg_seg *sg, uint64_t i)
{
	const char *t;
	size_t len;

	switch (sg->kind) {
	case FG_SEG_CONV:
		return fg_line_conv(st);
	case FG_SEG_USER:
		return fg_line_user(st);
	case FG_SEG_THINK:
		return fg_line_think(st, i);
	case FG_SEG_ANSWER:
		if (st->stamp)
			return fg_line_stamp(st);
		t = fg_answer_tok(st, i, &len);
		return fg_line_token(st, t, len, false, "final");
	case FG_SEG_FINALMETA:
		return fg_line_finalmeta(st);
	case FG_SEG_MODELRESP:
		return fg_line_modelresp(st);
	case FG_SEG_IMAGE:
		return fg_line_image(st, i);
	case FG_SEG_VIDEO:
		return fg_line_video(st, i);
	case FG_SEG_SOFTSTOP:
		return fg_line_softstop(st);
	case FG_SEG_INBAND:
	case FG_SEG_INBANDBOT:
	case FG_SEG_RESPERROR:
	case FG_SEG_TITLE:
	default:
		return fg_line_other(st, sg->kind);
	}
}

/* Skip finished segments; false when the plan is done. */
static bool
fg_stream_more(struct fg_stream *st)
{
	while (st->iseg < st->nseg && st->ipos >= st->seg[st->iseg].count) {
		st->iseg++;
		st->ipos = 0;
		st->garbage_done = false;
	}
	return st->iseg < st->nseg;
}

/*
 * Append the next line, framed, to st->out. Returns 1 when a line was
 * written, 0 at the end of the plan, or a WP_E* code.
 */
static int
fg_stream_next(struct fg_stream *st)
{
	static const char *const suffix[] = {
		[FG_FR_NDJSON] = "\n",
		[FG_FR_DATAPFX] = "\n\n",
		[FG_FR_RUNON] = "",
	};
	const struct fg_seg *sg;
	size_t start = st->out.len;
	int rc;

	if (!fg_stream_more(st))
		return 0;
	sg = &st->seg[st->iseg];
	if (st->framing == FG_FR_DATAPFX &&
	    (rc = buf_append(&st->out, "data: ", 6)) != 0)
		return rc;
	if (st->malformed && sg->kind == FG_SEG_ANSWER &&
	    st->ipos % FG_GARBAGE_EVERY == 0 && !st->garbage_done) {
		rc = fg_line_garbage(st);
		st->garbage_done = true;
	} else {
		rc = fg_line(st, sg, st->ipos);
		st->ipos++;
		st->garbage_done = false;
	}
	if (rc != 0 || (rc = buf_puts(&st->out, suffix[st->framing])) != 0)
		return rc;
	if (st->cut_after >= 0 && st->nlines >= (uint64_t)st->cut_after) {
		/* Half of this line, then the connection drops. */
		st->out.len = start + (st->out.len - start + 1) / 2;
		st->cut = true;
	}
	st->nlines++;
	(void)atomic_fetch_add(&fg_stats.lines, 1);
	return 1;
}

/*
 * Wait for the next line: 0 after suspending (MHD calls the reader again
 * after the resume), or, with -P, 1 once it is due after sleeping here.
 */
static ssize_t
fg_stream_wait(struct fg_stream *st, enum fg_wait_mode m, uint64_t due)
{
	st->wait.mode = m;
	st->wait.due_ns = due;
	if (fg_conf.sleep_lines) {
		if (fg_timer_sleep(&st->wait) != 0) {
			st->aborted = true; /* the client left, or quitting */
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		return 1;
	}
	st->wait.slack_ns =
	    fg_timer_slack((uint64_t)st->interval_ms * 1000000ull);
	MHD_suspend_connection(st->wait.conn);
	fg_timer_add(&st->wait);
	return 0; /* MHD calls us again after the resume */
}

/*
 * Fill st->out for a reader call that may take max bytes. Returns 1 with
 * bytes in st->out, or the reader's answer (0 after suspending, or an
 * MHD_CONTENT_READER_END_* code).
 */
static ssize_t
fg_stream_fill(struct fg_stream *st, size_t max)
{
	uint64_t now, step = (uint64_t)st->interval_ms * 1000000ull;
	ssize_t wr;
	int rc;

	while (!st->cut && !st->done) {
		if (st->stall_after >= 0 &&
		    st->nlines >= (uint64_t)st->stall_after) {
			if (st->out.len > 0)
				break;
			return fg_stream_wait(st, FG_WAIT_HOLD, 0);
		}
		if (step > 0) {
			if (st->out.len > 0)
				break;
			if (!fg_stream_more(st)) {
				st->done = true;
				break;
			}
			now = fg_mono_ns();
			if (now < st->next_due_ns &&
			    (wr = fg_stream_wait(
			         st, FG_WAIT_DUE, st->next_due_ns)) != 1)
				return wr;
			now = fg_mono_ns();
			st->next_due_ns += step;
			if (st->next_due_ns < now)
				st->next_due_ns = now;
		} else if (st->out.len >= max) {
			break;
		}
		if ((rc = fg_stream_next(st)) == 0) {
			st->done = true;
		} else if (rc < 0) {
			log_warnx("stream %s: %s, cutting it", st->rid,
			    wp_strerror(rc));
			st->cut = true;
		}
	}
	if (st->out.len > 0)
		return 1;
	return st->done ? MHD_CONTENT_READER_END_OF_STREAM
	                : MHD_CONTENT_READER_END_WITH_ERROR;
}

static ssize_t
fg_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fg_stream *st = cls;
	ssize_t rc;
	size_t n;

	CHECK_OBJ(st, FG_STREAM_MAGIC);
	(void)pos;
	if (atomic_load(&st->wait.aborted)) {
		st->aborted = true; /* the client left, or we are quitting */
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (st->off == st->out.len) {
		st->off = 0;
		st->out.len = 0;
		if ((rc = fg_stream_fill(st, max)) != 1)
			return rc;
	}
	n = st->out.len - st->off;
	if (n > max)
		n = max;
	memcpy(buf, st->out.p + st->off, n);
	st->off += n;
	(void)atomic_fetch_add(&fg_stats.bytes, n);
	return (ssize_t)n;
}

static void
fg_stream_free(void *cls)
{
	struct fg_stream *st = cls;

	CHECK_OBJ(st, FG_STREAM_MAGIC);
	(void)atomic_fetch_sub(&fg_stats.streams_open, 1);
	if (st->done && !st->aborted)
		(void)atomic_fetch_add(&fg_stats.streams_done, 1);
	else
		(void)atomic_fetch_add(&fg_stats.streams_aborted, 1);
	buf_fini(&st->out);
	free(st->msg);
	free(st->model);
	free(st->files);
	st->magic = 0;
	free(st);
}

static void
fg_plan_add(struct fg_stream *st, enum fg_seg_kind k, uint64_t count)
{
	WP_ASSERT(st->nseg < ARRAY_LEN(st->seg));
	st->seg[st->nseg].kind = k;
	st->seg[st->nseg].count = count;
	st->nseg++;
}

static void
fg_plan(struct fg_stream *st, enum fg_fault f)
{
	if (f == FG_F_INBANDFIRST) {
		fg_plan_add(st, FG_SEG_INBANDBOT, 1);
		return;
	}
	fg_plan_add(st, FG_SEG_CONV, 1);
	fg_plan_add(st, FG_SEG_USER, 1);
	if (st->video) {
		/* Example D: progress, URLs, a soft stop; no modelResponse */
		if (f == FG_F_INBAND || f == FG_F_RESPERROR) {
			fg_plan_add(st, FG_SEG_VIDEO, 2);
			fg_plan_add(st,
			    f == FG_F_INBAND ? FG_SEG_INBAND : FG_SEG_RESPERROR,
			    1);
			return;
		}
		fg_plan_add(st, FG_SEG_VIDEO, ARRAY_LEN(fg_video_steps));
		fg_plan_add(st, FG_SEG_SOFTSTOP, 1);
		return;
	}
	if (st->thinking)
		fg_plan_add(st, FG_SEG_THINK, ARRAY_LEN(fg_think));
	if (f == FG_F_INBAND || f == FG_F_RESPERROR) {
		fg_plan_add(st, FG_SEG_ANSWER,
		    st->ntok < FG_INBAND_AFTER ? st->ntok : FG_INBAND_AFTER);
		fg_plan_add(
		    st, f == FG_F_INBAND ? FG_SEG_INBAND : FG_SEG_RESPERROR, 1);
		return;
	}
	fg_plan_add(st, FG_SEG_ANSWER, st->ntok);
	if (st->nimg > 0) /* example C: the text, then the images */
		fg_plan_add(
		    st, FG_SEG_IMAGE, st->nimg * ARRAY_LEN(fg_image_steps));
	fg_plan_add(st, FG_SEG_FINALMETA, 1);
	fg_plan_add(st, FG_SEG_MODELRESP, 1);
	fg_plan_add(st, FG_SEG_TITLE, 1);
}

static uint64_t
fg_ntok(enum fg_answer a, int64_t want)
{
	if (a == FG_ANS_ECHO)
		return 1;
	if (want >= 0)
		return (uint64_t)want;
	return a == FG_ANS_TAGS ? ARRAY_LEN(fg_tags_toks)
	    : a == FG_ANS_IMAGE ? ARRAY_LEN(fg_image_toks)
	                        : ARRAY_LEN(fg_default_toks);
}

/* How many images to make: [images=N], or what the payload asks. */
static unsigned
fg_nimages(const json_t *o, const struct fg_scn *scn)
{
	const json_t *v = json_object_get(o, "imageGenerationCount");

	if (scn->images < 0)
		return 0;
	if (scn->images > 0)
		return (unsigned)scn->images;
	if (json_is_integer(v) && json_integer_value(v) >= 1 &&
	    json_integer_value(v) <= FG_IMAGES_MAX)
		return (unsigned)json_integer_value(v);
	return FG_IMAGES_DEF;
}

static struct fg_stream *
fg_stream_new(struct MHD_Connection *c, const json_t *o, const char *token,
    const char *post, const struct fg_scn *scn, enum fg_fault f)
{
	const json_t *msg = json_object_get(o, "message");
	const json_t *files = json_object_get(o, "fileAttachments");
	const json_t *mode = json_object_get(o, "modelMode");
	const char *model = json_string_value(json_object_get(o, "modelName"));
	struct fg_stream *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->magic = FG_STREAM_MAGIC;
	st->msglen = json_string_length(msg);
	st->model = strdup(model);
	st->files = files != NULL ? json_dumps(files, JSON_COMPACT) : NULL;
	if (st->files == NULL)
		st->files = strdup("[]");
	if ((st->msg = malloc(st->msglen + 1)) == NULL || st->model == NULL ||
	    st->files == NULL) {
		fg_stream_free(st);
		return NULL;
	}
	memcpy(st->msg, json_string_value(msg), st->msglen + 1);
	st->temporary = json_is_true(json_object_get(o, "temporary"));
	st->thinking = scn->thinking >= 0
	    ? scn->thinking != 0
	    : fg_thinking_model(
	          model, json_is_string(mode) ? json_string_value(mode) : "");
	st->answer = scn->answer;
	st->video = post != NULL;
	st->nimg = st->video ? 0 : fg_nimages(o, scn);
	st->png = scn->png;
	if (st->nimg > 0 && st->answer == FG_ANS_DEFAULT)
		st->answer = FG_ANS_IMAGE;
	st->stamp = scn->stamp;
	st->ntok = fg_ntok(st->answer, scn->ntok);
	st->framing = f == FG_F_DATAPFX ? FG_FR_DATAPFX
	    : f == FG_F_RUNON           ? FG_FR_RUNON
	                                : FG_FR_NDJSON;
	st->interval_ms = scn->interval_ms;
	if (f == FG_F_DRIP && st->interval_ms == 0)
		st->interval_ms = FG_DRIP_MS;
	st->stall_after = scn->stall_after;
	if (f == FG_F_STALL && st->stall_after < 0)
		st->stall_after = 0;
	st->cut_after = scn->cut_after;
	if (f == FG_F_CUT && st->cut_after < 0)
		st->cut_after = FG_CUT_LINES;
	st->malformed = f == FG_F_MALFORMED;
	st->modelerror = f == FG_F_MODELERROR;
	fg_uuid(st->cid);
	fg_uuid(st->uid);
	fg_uuid(st->rid);
	fg_uuid(st->tcid);
	fg_uuid(st->vid);
	fg_uuid_from(token, st->user);
	(void)util_strlcpy(
	    st->post, post != NULL ? post : "", sizeof(st->post));
	fg_iso_time(st->created);
	fg_plan(st, f);
	buf_init(&st->out, FG_OUT_MAX);
	st->wait.conn = c;
	st->wait.fd = fg_conn_fd(c);
	atomic_init(&st->wait.aborted, false);
	st->next_due_ns = fg_mono_ns();
	(void)atomic_fetch_add(&fg_stats.streams_open, 1);
	(void)atomic_fetch_add(&fg_stats.streams_total, 1);
	return st;
}

/* Check the payload the way grok.com would; NULL if it is fine. */
static const char *
fg_chat_check(const json_t *o)
{
	const json_t *v;
	size_t i;

	if (!json_is_object(o))
		return "request body must be a JSON object";
	if (!json_is_string(json_object_get(o, "message")))
		return "message: a string is required";
	v = json_object_get(o, "modelName");
	if (!json_is_string(v) || json_string_length(v) == 0)
		return "modelName: a non-empty string is required";
	if ((v = json_object_get(o, "modelMode")) != NULL &&
	    (!json_is_string(v) ||
	        strncmp(json_string_value(v), "MODEL_MODE_", 11) != 0))
		return "modelMode: must be a MODEL_MODE_* string";
	if ((v = json_object_get(o, "fileAttachments")) != NULL) {
		if (!json_is_array(v))
			return "fileAttachments: must be an array";
		for (i = 0; i < json_array_size(v); i++)
			if (!json_is_string(json_array_get(v, i)))
				return "fileAttachments: ids must be strings";
	}
	if ((v = json_object_get(o, "imageAttachments")) != NULL &&
	    !json_is_array(v))
		return "imageAttachments: must be an array";
	if ((v = json_object_get(o, "toolOverrides")) != NULL &&
	    !json_is_object(v))
		return "toolOverrides: must be an object";
	if ((v = json_object_get(o, "temporary")) != NULL &&
	    !json_is_boolean(v))
		return "temporary: must be a boolean";
	return NULL;
}

/* Every fileAttachments id must be an upload of this account. */
static bool
fg_files_known(const json_t *o, const char *token, char *msg, size_t len)
{
	const json_t *files = json_object_get(o, "fileAttachments");
	char uri[128];
	size_t i;

	for (i = 0; i < json_array_size(files); i++) {
		const char *id = json_string_value(json_array_get(files, i));

		fg_upload_uri(token, id, uri, sizeof(uri));
		if (strlen(id) > 64 || !fg_upl_has(uri)) {
			(void)snprintf(msg, len,
			    "fileAttachments: %.64s is not a file this account "
			    "uploaded",
			    id);
			return false;
		}
	}
	return true;
}

/*
 * The video payload (reference section 3.2): fileAttachments holds the
 * uploaded image, message is "<ref>  <prompt> --mode=custom" where <ref>
 * is https://grok.com/imagine/<the image's post> or, without a post,
 * <assets>/post/<the image's fileUri>. Fills post (the post id, or "");
 * NULL if it is fine, else why not.
 */
static const char *
fg_video_check(const json_t *o, const char *token, char post[37])
{
	static const char suffix[] = " --mode=custom";
	static const char imagine[] = "https://grok.com/imagine/";
	const json_t *files = json_object_get(o, "fileAttachments");
	const char *msg = json_string_value(json_object_get(o, "message"));
	const char *gap;
	char uri[128], want[37];
	size_t n = strlen(msg), reflen;

	post[0] = '\0';
	if (json_array_size(files) < 1)
		return "videoGen: fileAttachments must hold the uploaded image";
	if (n < sizeof(suffix) - 1 ||
	    strcmp(msg + n - (sizeof(suffix) - 1), suffix) != 0 ||
	    (gap = strstr(msg, "  ")) == NULL)
		return "videoGen: message must be \"<image ref>  <prompt> "
		       "--mode=custom\"";
	fg_upload_uri(token, json_string_value(json_array_get(files, 0)), uri,
	    sizeof(uri));
	reflen = (size_t)(gap - msg);
	if (strncmp(msg, imagine, sizeof(imagine) - 1) == 0) {
		fg_post_id(uri, want);
		if (reflen != sizeof(imagine) - 1 + 36 ||
		    memcmp(msg + sizeof(imagine) - 1, want, 36) != 0)
			return "videoGen: the message's imagine/<post> is not "
			       "the post of the attached image";
		(void)util_strlcpy(post, want, 37);
		return NULL;
	}
	if (reflen < strlen(uri) + 6 ||
	    memcmp(gap - strlen(uri) - 6, "/post/", 6) != 0 ||
	    memcmp(gap - strlen(uri), uri, strlen(uri)) != 0)
		return "videoGen: the message's reference is neither "
		       "https://grok.com/imagine/<post> nor "
		       "<assets>/post/<fileUri> of the attached image";
	return NULL;
}

/* Faults a chat answers with a status instead of a stream. */
static bool
fg_fault_is_status(enum fg_fault f)
{
	return f == FG_F_401 || f == FG_F_403BOT || f == FG_F_403CF ||
	    f == FG_F_429 || f == FG_F_500;
}

void
fg_chat_handle(struct MHD_Connection *c, struct fg_req *rq, struct fg_reply *r)
{
	const json_t *o = rq->json;
	const char *why, *model, *mode;
	struct fg_fault_spec fs;
	struct fg_stream *st;
	struct fg_quota q;
	struct fg_scn scn;
	struct MHD_Response *resp;
	enum fg_fault f = FG_F_NONE;
	char msg[256], post[37];
	bool heavy, video;

	if ((why = fg_chat_check(o)) != NULL) {
		fg_reply_error(r, 400, 3, why);
		return;
	}
	model = json_string_value(json_object_get(o, "modelName"));
	mode = json_string_value(json_object_get(o, "modelMode"));
	if (mode == NULL)
		mode = "";
	if (!fg_model_known(model)) {
		(void)snprintf(
		    msg, sizeof(msg), "Unknown model: %.200s", model);
		fg_reply_error(r, 400, 3, msg);
		return;
	}
	if (!fg_files_known(o, rq->token, msg, sizeof(msg))) {
		fg_reply_error(r, 400, 3, msg);
		(void)util_strlcpy(r->note, "unknown file", sizeof(r->note));
		return;
	}
	video = json_is_true(
	    json_object_get(json_object_get(o, "toolOverrides"), "videoGen"));
	if (video && (why = fg_video_check(o, rq->token, post)) != NULL) {
		fg_reply_error(r, 400, 3, why);
		(void)util_strlcpy(
		    r->note, "bad video payload", sizeof(r->note));
		return;
	}
	fg_scn_parse(json_string_value(json_object_get(o, "message")),
	    json_string_length(json_object_get(o, "message")), &scn);
	fg_fault_parse(rq->token, &fs);
	/* 401 and 403 token faults were applied before the body was read. */
	if (fs.fault != FG_F_NONE && fs.fault != FG_F_401 &&
	    fs.fault != FG_F_403BOT && fs.fault != FG_F_403CF &&
	    fg_tok_fault(rq->token, fs.times, true))
		f = fs.fault;
	else
		f = scn.fault;
	(void)snprintf(r->note, sizeof(r->note), "%s%s%s",
	    video                 ? "video"
	        : scn.images >= 0 ? "image"
	                          : fg_answer_name[scn.answer],
	    f != FG_F_NONE ? " fault-" : "",
	    f != FG_F_NONE ? fg_fault_name[f] : "");
	if (fg_fault_is_status(f)) {
		fg_reply_fault(r, f);
		return;
	}
	heavy = strcmp(model, "grok-4-heavy") == 0 ||
	    strcmp(mode, "MODEL_MODE_HEAVY") == 0;
	if (fg_tok_charge(rq->token, heavy,
	        strcmp(mode, "MODEL_MODE_EXPERT") == 0 ? 4 : 1, &q) != 0) {
		(void)util_strlcpy(r->note, "quota exhausted", sizeof(r->note));
		fg_reply_fault(r, FG_F_429);
		return;
	}
	if (f == FG_F_EMPTY) {
		fg_reply_text(r, 200, "application/json", "", 0);
		return;
	}
	if (f == FG_F_STALLFIRST) {
		r->status = 0; /* no status line will ever be sent */
		fg_req_wait(c, rq, FG_WAIT_HOLD, 0);
		return;
	}
	if ((st = fg_stream_new(
	         c, o, rq->token, video ? post : NULL, &scn, f)) == NULL ||
	    (resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256,
	         fg_stream_read, st, fg_stream_free)) == NULL) {
		if (st != NULL)
			fg_stream_free(st);
		fg_reply_error(r, 500, 13, "out of memory");
		return;
	}
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    st->framing == FG_FR_DATAPFX ? "text/event-stream"
	                                 : "application/json");
	(void)MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	r->status = 200;
	if (scn.firstdelay_ms > 0) {
		rq->wait.slack_ns =
		    fg_timer_slack((uint64_t)scn.firstdelay_ms * 1000000ull);
		rq->pending = resp;
		rq->pending_status = 200;
		fg_req_wait(c, rq, FG_WAIT_DUE,
		    fg_mono_ns() + (uint64_t)scn.firstdelay_ms * 1000000ull);
		return;
	}
	r->resp = resp;
}
