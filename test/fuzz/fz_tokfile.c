/*
 * Fuzz target "tokfile": token.json through the master's loader,
 * tokfile_read (the input, in a memfd: it wants a path), then
 * tokfile_load into a token table laid out by tok_table_init in
 * malloc'ed memory (the daemon's lives in shared memory), then what the
 * daemon does with a loaded table: merge, dump, pick, charge, fail.
 *
 * Invariants checked: errors are documented codes with a message that
 * starts with the path and never quotes a token; the fast reader gives
 * exactly what jansson alone (TOKFILE_SLOW) gives, the same error or
 * the same tokens, fields and unknown fields; a loaded table passes
 * tok_table_check and holds every token of the file (or says it is
 * full); merging a file with itself changes nothing; tokfile_dump reads
 * back, loads into a fresh table with every field equal, and dumps to
 * the same text; the table stays consistent through picks, charges,
 * failures and cooling; a dump is byte for byte what json_dumps prints
 * for the same document.
 *
 * Input: the token.json file.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "err.h"
#include "tok.h"
#include "tokfile.h"

#include "fuzz.h"

const char fuzz_name[] = "tokfile";

#define TF_CAP      16 /* small: "more tokens than max_tokens" is reachable */
#define TF_NOW      1700000000000LL
#define TF_ALIGN    4096
#define TF_COOL(ms) ((ms) > 1 ? (ms) : 0)

struct tf_table {
	void *mem;
	struct tok_table *t;
};

static void
tf_table_new(struct tf_table *tt)
{
	size_t size = tok_table_size(TF_CAP);

	size = (size + TF_ALIGN - 1) / TF_ALIGN * TF_ALIGN;
	tt->mem = aligned_alloc(TF_ALIGN, size);
	FUZZ_CHECK(tt->mem != NULL);
	memset(tt->mem, 0, size);
	FUZZ_CHECK(tok_table_init(tt->mem, TF_CAP, &tt->t) == 0);
}

static void
tf_table_free(struct tf_table *tt)
{
	sodium_memzero(tt->mem, tok_table_size(TF_CAP)); /* tokens */
	free(tt->mem);
}

/*
 * An error message must not quote a token (it goes to the log). Checks
 * the tokens of the input that cannot be mistaken for the message's own
 * words: 12 bytes or more, with a digit, not part of the path.
 */
static void
tf_check_secret(
    const uint8_t *data, size_t size, const char *path, const char *err)
{
	static const char *const maps[] = { "ssoNormal", "ssoSuper" };
	json_error_t jerr;
	const char *token;
	json_t *doc, *v;
	size_t i;

	FUZZ_CHECK(strstr(err, " near '") == NULL);
	doc = json_loadb((const char *)data, size, 0, &jerr);
	for (i = 0; i < 2; i++) {
		json_object_foreach(json_object_get(doc, maps[i]), token, v)
		{
			if (strlen(token) < 12 ||
			    strpbrk(token, "0123456789") == NULL ||
			    strstr(path, token) != NULL)
				continue;
			FUZZ_CHECK(strstr(err, token) == NULL);
		}
	}
	json_decref(doc);
}

/*
 * The scanner is only a faster way to the same result: jansson alone
 * must give the same error, or a document with the same tokens in the
 * same order, every field and every unknown field equal.
 */
static void
tf_same_as_slow(const char *path, const uint8_t *data, size_t size,
    const struct tokfile *f, int rc, const char *err)
{
	struct tokfile *g = NULL, *h = NULL;
	char gerr[512], herr[512];
	size_t skip = 0;
	int grc;

	if (size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		skip = 3;
	grc = tokfile_parse(path, (const char *)data + skip, size - skip,
	    TOKFILE_SLOW, &g, gerr, sizeof(gerr));
	FUZZ_CHECK(grc == rc);
	FUZZ_CHECK(strcmp(gerr, err) == 0);
	FUZZ_CHECK((g == NULL) == (f == NULL));
	if (f != NULL)
		FUZZ_CHECK(tokfile_same(f, g));
	/* What the scanner takes on its own, jansson takes the same way. */
	if (tokfile_parse(path, (const char *)data + skip, size - skip,
	        TOKFILE_FAST, &h, herr, sizeof(herr)) == 0)
		FUZZ_CHECK(g != NULL && tokfile_same(h, g));
	tokfile_free(g);
	tokfile_free(h);
}

static struct tokfile *
tf_read(const void *data, size_t size, int *rcp, char *err, size_t errlen)
{
	struct tokfile *f = NULL;
	char path[64];
	int fd;

	fd = fuzz_memfd(data, size, path, sizeof(path));
	memset(err, 'x', errlen);
	*rcp = tokfile_read(path, &f, err, errlen);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	tf_same_as_slow(path, data, size, f, *rcp, err);
	if (*rcp != 0) {
		FUZZ_CHECK(f == NULL);
		FUZZ_CHECK(*rcp == WP_EPARSE);
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
		tf_check_secret(data, size, path, err);
	} else {
		FUZZ_CHECK(f != NULL && err[0] == '\0');
	}
	(void)close(fd); /* a memfd */
	return f;
}

static void
tf_same(const struct tok_info *a, const struct tok_info *b)
{
	uint32_t i;

	FUZZ_CHECK(strcmp(a->token, b->token) == 0);
	FUZZ_CHECK(strcmp(a->note, b->note) == 0);
	FUZZ_CHECK(strcmp(a->last_failure_reason, b->last_failure_reason) == 0);
	FUZZ_CHECK(a->ntags == b->ntags && a->ntags <= TOK_TAGS_MAX);
	for (i = 0; i < a->ntags; i++)
		FUZZ_CHECK(strcmp(a->tags[i], b->tags[i]) == 0);
	FUZZ_CHECK(a->type == b->type && a->status == b->status);
	FUZZ_CHECK(a->remaining == b->remaining &&
	    a->heavy_remaining == b->heavy_remaining);
	FUZZ_CHECK(a->failed_count == b->failed_count);
	FUZZ_CHECK(a->created_ms == b->created_ms &&
	    a->last_failure_ms == b->last_failure_ms);
	/* tokfile.c: a cooldown end of 1 ("none known") is written as none. */
	FUZZ_CHECK(a->last_used_ms == b->last_used_ms &&
	    TF_COOL(a->cooldown_until_ms) == TF_COOL(b->cooldown_until_ms));
}

/* The text is exactly what jansson prints for the same document. */
static void
tf_as_jansson(const char *text)
{
	json_error_t jerr;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	char *again;

	FUZZ_CHECK(doc != NULL);
	again = json_dumps(doc, JSON_INDENT(2));
	FUZZ_CHECK(again != NULL && strcmp(again, text) == 0);
	sodium_memzero(again, strlen(again));
	free(again);
	json_decref(doc);
}

/* tokfile_dump of t reads back into an equal table that dumps the same. */
static void
tf_round_trip(struct tok_table *t)
{
	struct tokfile *f2;
	struct tf_table t2;
	struct tok_info a, b;
	uint32_t iter = 0, row, gen;
	char err[512], *dump, *dump2;
	int rc;

	dump = tokfile_dump(t);
	FUZZ_CHECK(dump != NULL);
	tf_as_jansson(dump);
	f2 = tf_read(dump, strlen(dump), &rc, err, sizeof(err));
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(tokfile_count(f2) == tok_table_count(t));
	tf_table_new(&t2);
	FUZZ_CHECK(tokfile_load(t2.t, f2, err, sizeof(err)) == 0);
	FUZZ_CHECK(tok_table_check(t2.t) == 0);
	while (tok_next(t, &iter, &a) == 0) {
		FUZZ_CHECK(tok_find(t2.t, a.token, &row, &gen) == 0);
		FUZZ_CHECK(tok_get(t2.t, row, gen, &b) == 0);
		tf_same(&a, &b);
	}
	dump2 = tokfile_dump(t2.t);
	FUZZ_CHECK(dump2 != NULL && strcmp(dump, dump2) == 0);
	sodium_memzero(dump, strlen(dump));
	sodium_memzero(dump2, strlen(dump2));
	free(dump);
	free(dump2);
	tokfile_free(f2);
	tf_table_free(&t2);
}

/* What requests do to a loaded table; it must stay consistent. */
static void
tf_use(struct tok_table *t, uint8_t how)
{
	struct tok_lease lease;
	int64_t retry;
	unsigned k;
	int rc;

	for (k = 0; k < 4; k++) {
		rc = tok_pick(t,
		    (how >> k) & 1 ? CFG_POOL_SUPER : CFG_POOL_NORMAL,
		    TF_NOW + k * 3600000LL, UINT32_MAX, &lease, &retry);
		FUZZ_CHECK(rc == 0 || rc == WP_ENOTOKEN || rc == WP_ECOOLING);
		if (rc != 0)
			continue;
		switch ((how >> (2 * k)) & 3) {
		case 0:
			(void)tok_charge(t, &lease, 4, TF_NOW);
			break;
		case 1:
			(void)tok_fail(
			    t, lease.row, lease.row_gen, 401, "401", TF_NOW);
			break;
		case 2:
			(void)tok_cool(t, lease.row, lease.row_gen,
			    TF_NOW + 60000, "429", TF_NOW);
			break;
		default:
			(void)tok_set_quota(t, lease.row, lease.row_gen,
			    lease.heavy, 0, 30, TF_NOW);
			break;
		}
		tok_release(t, &lease);
		FUZZ_CHECK(tok_table_check(t) == 0);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tokfile *f;
	struct tf_table tt;
	unsigned added, removed, changed;
	char err[512];
	int rc;

	if ((f = tf_read(data, size, &rc, err, sizeof(err))) == NULL)
		return 0;
	tf_table_new(&tt);
	memset(err, 'x', sizeof(err));
	rc = tokfile_load(tt.t, f, err, sizeof(err));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	FUZZ_CHECK(tok_table_check(tt.t) == 0);
	if (rc != 0) {
		/* tokfile_read checked each entry: only the count can fail. */
		FUZZ_CHECK(rc == WP_ETOOBIG && tokfile_count(f) > TF_CAP);
		FUZZ_CHECK(err[0] != '\0');
		tf_check_secret(data, size, "", err);
		goto out;
	}
	FUZZ_CHECK(err[0] == '\0');
	FUZZ_CHECK(tok_table_count(tt.t) == tokfile_count(f));
	FUZZ_CHECK(tokfile_merge(tt.t, f, f, &added, &removed, &changed) == 0);
	FUZZ_CHECK(added == 0 && removed == 0 && changed == 0);
	FUZZ_CHECK(tok_table_count(tt.t) == tokfile_count(f));
	FUZZ_CHECK(tok_table_check(tt.t) == 0);
	tf_round_trip(tt.t);
	tf_use(tt.t, size > 0 ? data[size - 1] : 0);
	tf_round_trip(tt.t);
out:
	tokfile_free(f);
	tf_table_free(&tt);
	return 0;
}
