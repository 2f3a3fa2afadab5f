/*
 * What knows OpenAI's chat output (and nothing of grok's): one request's
 * answer as SSE chat.completion.chunk frames (stream) or one
 * chat.completion object (non-stream), built from pieces of answer and
 * reasoning text. It owns the reasoning format (<think> tags inside
 * content, the reasoning_content field, or hidden), the filtered_tags
 * filter (tags and their content removed even when split across pieces),
 * finish_reason, usage and [DONE]. Pure; no I/O. Worker only.
 */
#ifndef WP_OAI_OUT_H
#define WP_OAI_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum oai_reasoning {
	OAI_RF_THINK_TAGS, /* <think>...</think> at the start of content */
	OAI_RF_REASONING_CONTENT, /* {delta,message}.reasoning_content */
	OAI_RF_HIDDEN,            /* dropped */
};

/* "think_tags", "reasoning_content", "hidden": for logs and config. */
extern const char *const oai_reasoning_name[];

/* Parse "think_tags" etc. Returns 0 or WP_EINVAL. */
int oai_reasoning_parse(const char *s, enum oai_reasoning *rf);

#define OAI_TAGS_MAX 16
#define OAI_TAG_LEN  48

/*
 * The streaming tag filter: removes <tag ...>...</tag> and <tag .../> for
 * each configured tag name, holding back only as much text as it needs to
 * decide (an unfinished "<..." at the end of a piece).
 *
 * A tag is "<" or "</", a configured name (case-sensitive), then a blank,
 * ">" or "/": "<xaiartifactual>" is not "<xaiartifact>" and passes. Its
 * attributes run to the first ">" outside a quoted value. Nested tags of
 * the same name count; a stray close tag is removed. At most "</" plus the
 * longest name is ever held back.
 */
struct oai_tagf {
	unsigned ntags;
	char tags[OAI_TAGS_MAX][OAI_TAG_LEN];
	struct buf hold; /* undecided text */
	int inside;      /* index of the tag whose content we drop, or -1 */
	unsigned depth;  /* nesting of that tag */
	/* Inside a tag's "<name ...>" itself, after the name: */
	int hdr;        /* that tag's index, or -1 */
	bool hdr_close; /* it is "</name" */
	char hdr_quote; /* the quote of the value we are in, or 0 */
	char hdr_last;  /* the last non-blank byte ("/" at ">": self-closing) */
};

/*
 * tags: comma separated, blanks trimmed; empty or NULL = filter nothing.
 * Names of OAI_TAG_LEN bytes or more, names holding a blank, "<", ">",
 * "/", "=" or a quote, and names past the OAI_TAGS_MAX-th are ignored.
 */
void oai_tagf_init(struct oai_tagf *f, const char *tags);
void oai_tagf_fini(struct oai_tagf *f);
/* Filtered text of in goes to out. Returns 0 or a buf error. */
int oai_tagf_feed(
    struct oai_tagf *f, const char *in, size_t len, struct buf *out);
/* End of text: release what is held (an unclosed tag's content is dropped). */
int oai_tagf_flush(struct oai_tagf *f, struct buf *out);

struct oai_out {
	char id[48];    /* chatcmpl-..., one per answer */
	char model[64]; /* the public model name */
	int64_t created;
	bool stream;
	bool include_usage; /* stream_options.include_usage */
	enum oai_reasoning rf;
	bool sent_role;  /* role goes in the first delta only */
	bool in_think;   /* a <think> block is open */
	bool think_done; /* the answer started: later reasoning is dropped */
	struct oai_tagf tf_content, tf_reason;
	struct buf content, reasoning; /* non-stream: accumulated, capped */
	uint32_t prompt_tokens, completion_tokens;
	bool done;          /* finished or failed: no more output */
	uint64_t out_bytes; /* text emitted (content + reasoning_content) */
	/* Per source (answer, reasoning): an incomplete UTF-8 sequence at
	 * the end of the last piece, completed by the next. */
	char carry[2][4];
	uint8_t ncarry[2];
	struct buf raw, txt, rtxt; /* scratch, reused across pieces */
	struct buf head;           /* stream: how every text frame begins */
};

/*
 * Start an answer. prompt_tokens is the caller's estimate. Returns 0, or
 * WP_EINVAL when model does not fit in o->model. max_bytes caps what
 * non-stream mode accumulates (content and reasoning each). The process
 * must have called sodium_init() (the master does, before forking).
 */
int oai_out_init(struct oai_out *o, const char *model, bool stream,
    bool include_usage, enum oai_reasoning rf, const char *filtered_tags,
    uint32_t prompt_tokens, size_t max_bytes);
void oai_out_fini(struct oai_out *o);

/*
 * A piece of answer (thinking false) or reasoning (thinking true) text.
 * Stream: appends zero or more `data: {...}\n\n` frames to out.
 * Non-stream: accumulates. Text that is not valid UTF-8 is repaired
 * (U+FFFD); a sequence split across pieces is joined. Returns 0,
 * WP_ETOOBIG (out or the non-stream cap is full; out never holds half a
 * frame), WP_ENOMEM, or WP_EINVAL after finish/error.
 */
int oai_out_text(struct oai_out *o, const char *text, size_t len, bool thinking,
    struct buf *out);

/*
 * The end of the answer with finish_reason "stop" or "length" (NULL:
 * "stop"; anything else: WP_EINVAL). Stream:
 * closes an open <think>, sends the chunk carrying finish_reason and
 * usage, the usage-only chunk (empty choices) when include_usage, and
 * `data: [DONE]`. Non-stream: the whole chat.completion JSON (with usage).
 */
int oai_out_finish(
    struct oai_out *o, const char *finish_reason, struct buf *out);

/*
 * An error after the stream began: an error event
 * (`data: {"error":{...}}`) then `data: [DONE]`. Stream mode only
 * (WP_EINVAL otherwise, or after finish). code may be NULL (JSON null).
 */
int oai_out_error(struct oai_out *o, const char *message, const char *type,
    const char *code, struct buf *out);

/*
 * Rough token count of text for usage: one token per 4 bytes, rounded up
 * (so any non-empty text is at least 1). Not a tokenizer: close for
 * English, low for CJK (3 bytes a character, about 1 token each).
 */
uint32_t oai_count_tokens(const char *text, size_t len);

#endif
