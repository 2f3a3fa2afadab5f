/*
 * Unit tests of token.json handling (shared/tokfile.c): the seed's
 * example, round trips with unknown fields, the written file's shape and
 * mode, parse and schema errors with positions, merging an operator's
 * edits, and failed writes that must leave the old file alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "tok.h"
#include "tokfile.h"
#include "util.h"

#include "th.h"

#define T0 1700000000000LL

/* Exactly the example of seed/grok-integration.md. */
static const char seed_json[] = "{\n"
                                "  \"ssoNormal\": {\n"
                                "    \"your-token-1\": {\n"
                                "      \"createdTime\": 1706745600000,\n"
                                "      \"remainingQueries\": -1,\n"
                                "      \"heavyremainingQueries\": -1,\n"
                                "      \"status\": \"active\",\n"
                                "      \"failedCount\": 0,\n"
                                "      \"lastFailureTime\": null,\n"
                                "      \"lastFailureReason\": null,\n"
                                "      \"tags\": [],\n"
                                "      \"note\": \"\"\n"
                                "    },\n"
                                "    \"your-token-2\": {\n"
                                "      \"createdTime\": 1706745600000,\n"
                                "      \"remainingQueries\": -1,\n"
                                "      \"heavyremainingQueries\": -1,\n"
                                "      \"status\": \"active\",\n"
                                "      \"failedCount\": 0,\n"
                                "      \"lastFailureTime\": null,\n"
                                "      \"lastFailureReason\": null,\n"
                                "      \"tags\": [],\n"
                                "      \"note\": \"\"\n"
                                "    }\n"
                                "  },\n"
                                "  \"ssoSuper\": {\n"
                                "    \"your-super-token\": {\n"
                                "      \"createdTime\": 1706745600000,\n"
                                "      \"remainingQueries\": -1,\n"
                                "      \"heavyremainingQueries\": -1,\n"
                                "      \"status\": \"active\",\n"
                                "      \"failedCount\": 0,\n"
                                "      \"lastFailureTime\": null,\n"
                                "      \"lastFailureReason\": null,\n"
                                "      \"tags\": [],\n"
                                "      \"note\": \"\"\n"
                                "    }\n"
                                "  }\n"
                                "}\n";

/* Every field set, old-style createdTime, unknown fields at both levels. */
static const char full_json[] =
    "{\n"
    "  \"ssoSuper\": {\n"
    "    \"sup-1\": {\"createdTime\": \"1735100000000\",\n"
    "      \"remainingQueries\": 12, \"heavyremainingQueries\": 3,\n"
    "      \"status\": \"active\", \"failedCount\": 1,\n"
    "      \"lastFailureTime\": 1735100001000,\n"
    "      \"lastFailureReason\": \"500: upstream\",\n"
    "      \"tags\": [\"pool-a\", \"vip\"],\n"
    "      \"note\": \"\xe5\xa4\x87\xe7\x94\xa8 spare\",\n"
    "      \"lastUsedTime\": 1735100002000,\n"
    "      \"x-extra\": {\"k\": [1, 2, \"three\"]}}\n"
    "  },\n"
    "  \"version\": 7,\n"
    "  \"ssoNormal\": {\n"
    "    \"norm-1\": {\"createdTime\": 1735000000000,\n"
    "      \"remainingQueries\": 0, \"heavyremainingQueries\": -1,\n"
    "      \"status\": \"cooling\", \"failedCount\": 0,\n"
    "      \"lastFailureTime\": null, \"lastFailureReason\": null,\n"
    "      \"tags\": [], \"note\": \"\", \"cooldownUntil\": 1900000000000},\n"
    "    \"norm-2\": {\"status\": \"expired\", \"failedCount\": 3,\n"
    "      \"remainingQueries\": 40, \"mystery\": true}\n"
    "  },\n"
    "  \"comment\": \"kept\"\n"
    "}\n";

static char dir[64];

static void
path_in(char *buf, size_t len, const char *name)
{
	(void)snprintf(buf, len, "%s/%s", dir, name);
}

static void
put_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "we");

	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
		perror(path);
		exit(2);
	}
}

/* The whole file, malloc'd, or NULL. */
static char *
get_file(const char *path)
{
	FILE *fp = fopen(path, "re");
	char *buf;
	size_t n;

	if (fp == NULL)
		return NULL;
	buf = calloc(1, 1 << 20);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	buf[n] = '\0';
	(void)fclose(fp); /* read only */
	return buf;
}

struct tbl {
	void *mem;
	size_t size;
	struct tok_table *t;
};

static struct tok_table *
tbl_new(struct tbl *b, uint32_t cap)
{
	b->size = tok_table_size(cap);
	b->mem = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (b->mem == MAP_FAILED || tok_table_init(b->mem, cap, &b->t) != 0) {
		fprintf(stderr, "table setup failed\n");
		exit(2);
	}
	return b->t;
}

static void
tbl_free(struct tbl *b)
{
	(void)munmap(b->mem, b->size); /* teardown */
}

static struct tok_info
get(struct tok_table *t, const char *token)
{
	struct tok_info ti;
	uint32_t row = 0, gen = 0;

	memset(&ti, 0, sizeof(ti));
	ti.token[0] = '\0';
	if (tok_find(t, token, &row, &gen) == 0)
		(void)tok_get(t, row, gen, &ti); /* found just now */
	return ti;
}

static int
has(struct tok_table *t, const char *token)
{
	uint32_t row, gen;

	return tok_find(t, token, &row, &gen) == 0;
}

/* Read path into a new table of cap rows. */
static struct tok_table *
load(struct tbl *b, uint32_t cap, const char *path, struct tokfile **fp)
{
	char err[512];
	struct tok_table *t = tbl_new(b, cap);
	int rc;

	*fp = NULL;
	if ((rc = tokfile_read(path, fp, err, sizeof(err))) != 0) {
		printf("  read %s: %s\n", path, err);
		return t;
	}
	if ((rc = tokfile_load(t, *fp, err, sizeof(err))) != 0)
		printf("  load %s: %s\n", path, err);
	return t;
}

TEST(t_seed_example)
{
	char path[128], err[512];
	struct tokfile *f = NULL;
	struct tok_info ti;
	struct tok_table *t;
	struct tbl b;

	path_in(path, sizeof(path), "seed.json");
	put_file(path, seed_json);
	EXPECT_INT_EQ(tokfile_read(path, &f, err, sizeof(err)), 0);
	EXPECT_INT_EQ(tokfile_count(f), 3);
	t = tbl_new(&b, 8);
	EXPECT_INT_EQ(tokfile_load(t, f, err, sizeof(err)), 0);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_NORMAL), 2);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_SUPER), 1);
	ti = get(t, "your-token-2");
	EXPECT_STR_EQ(ti.token, "your-token-2");
	EXPECT_INT_EQ(ti.type, TOK_NORMAL);
	EXPECT_INT_EQ(ti.created_ms, 1706745600000LL);
	EXPECT_INT_EQ(ti.remaining, -1);
	EXPECT_INT_EQ(ti.heavy_remaining, -1);
	EXPECT_INT_EQ(ti.status, TOK_ST_ACTIVE);
	EXPECT_INT_EQ(ti.failed_count, 0);
	EXPECT_INT_EQ(ti.last_failure_ms, 0);
	EXPECT_STR_EQ(ti.last_failure_reason, "");
	EXPECT_INT_EQ(ti.ntags, 0);
	EXPECT_STR_EQ(ti.note, "");
	EXPECT_INT_EQ(ti.cooldown_until_ms, 0);
	ti = get(t, "your-super-token");
	EXPECT_INT_EQ(ti.type, TOK_SUPER);
	tokfile_forget(f); /* what a forked child does: no leak either */
	tbl_free(&b);
}

TEST(t_round_trip)
{
	char in[128], out[128], err[512];
	struct tokfile *f = NULL, *f2 = NULL;
	struct tok_table *t, *t2;
	struct tok_info a, c;
	struct tbl b, b2;
	json_t *doc, *e;
	json_error_t jerr;
	uint32_t iter = 0;
	char *text;

	path_in(in, sizeof(in), "full.json");
	path_in(out, sizeof(out), "full-out.json");
	put_file(in, full_json);
	t = load(&b, 8, in, &f);
	EXPECT_INT_EQ(tok_table_count(t), 3);
	a = get(t, "sup-1");
	EXPECT_INT_EQ(a.created_ms, 1735100000000LL);
	EXPECT_INT_EQ(a.remaining, 12);
	EXPECT_INT_EQ(a.heavy_remaining, 3);
	EXPECT_INT_EQ(a.failed_count, 1);
	EXPECT_INT_EQ(a.last_failure_ms, 1735100001000LL);
	EXPECT_STR_EQ(a.last_failure_reason, "500: upstream");
	EXPECT_INT_EQ(a.ntags, 2);
	EXPECT_STR_EQ(a.tags[1], "vip");
	EXPECT_STR_EQ(a.note, "\xe5\xa4\x87\xe7\x94\xa8 spare");
	EXPECT_INT_EQ(a.last_used_ms, 1735100002000LL);
	EXPECT_INT_EQ(get(t, "norm-1").status, TOK_ST_COOLING);
	EXPECT_INT_EQ(get(t, "norm-1").cooldown_until_ms, 1900000000000LL);
	EXPECT_INT_EQ(get(t, "norm-2").status, TOK_ST_EXPIRED);
	EXPECT_INT_EQ(get(t, "norm-2").created_ms, 0);

	EXPECT_INT_EQ(tokfile_write(t, out, &f), 0);
	t2 = load(&b2, 8, out, &f2);
	EXPECT_INT_EQ(tok_table_count(t2), 3);
	/* Every field of every token survives. */
	while (tok_next(t, &iter, &a) == 0) {
		c = get(t2, a.token);
		c.row = a.row;
		c.row_gen = a.row_gen;
		if (memcmp(&a, &c, sizeof(a)) != 0)
			TH_FAILED(
			    "token %s changed in the round trip", a.token);
	}
	/* Unknown fields survive, at the top and per token. */
	doc = json_load_file(out, 0, &jerr);
	EXPECT(doc != NULL);
	EXPECT_INT_EQ(json_integer_value(json_object_get(doc, "version")), 7);
	EXPECT_STR_EQ(
	    json_string_value(json_object_get(doc, "comment")), "kept");
	e = json_object_get(json_object_get(doc, "ssoSuper"), "sup-1");
	EXPECT_STR_EQ(
	    json_string_value(json_array_get(
	        json_object_get(json_object_get(e, "x-extra"), "k"), 2)),
	    "three");
	e = json_object_get(json_object_get(doc, "ssoNormal"), "norm-2");
	EXPECT(json_is_true(json_object_get(e, "mystery")));
	json_decref(doc);
	/* And again, from what we wrote (the new base). */
	EXPECT_INT_EQ(tokfile_write(t2, out, &f2), 0);
	text = get_file(out);
	/* Byte for byte what jansson prints, unknown fields included. */
	doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	EXPECT(doc != NULL);
	{
		char *again = json_dumps(doc, JSON_INDENT(2));

		EXPECT(again != NULL && strlen(text) == strlen(again) + 1 &&
		    strncmp(text, again, strlen(again)) == 0);
		free(again);
	}
	json_decref(doc);
	EXPECT_CONTAINS(text, "\"mystery\": true");
	EXPECT_CONTAINS(text, "\"x-extra\": {");
	EXPECT_CONTAINS(text, "\"comment\": \"kept\"");
	free(text);
	(void)err;
	tokfile_free(f);
	tokfile_free(f2);
	tbl_free(&b);
	tbl_free(&b2);
}

TEST(t_written_shape)
{
	static const char *const keys[] = { "createdTime", "remainingQueries",
		"heavyremainingQueries", "status", "failedCount",
		"lastFailureTime", "lastFailureReason", "tags", "note" };
	char in[128], out[128];
	struct tokfile *f = NULL;
	struct tok_table *t;
	struct stat st;
	struct tbl b;
	json_t *doc, *e, *v;
	json_error_t jerr;
	const char *key;
	char *text;
	size_t i;

	path_in(in, sizeof(in), "seed2.json");
	path_in(out, sizeof(out), "sub/dir/token.json");
	put_file(in, seed_json);
	t = load(&b, 8, in, &f);
	EXPECT_INT_EQ(tokfile_write(t, out, &f), 0);
	EXPECT_INT_EQ(stat(out, &st), 0);
	EXPECT_INT_EQ(st.st_mode & 07777, 0600);
	path_in(in, sizeof(in), "sub/dir");
	EXPECT_INT_EQ(stat(in, &st), 0);
	EXPECT_INT_EQ(st.st_mode & 07777, 0700);
	text = get_file(out);
	EXPECT(strncmp(text,
	           "{\n  \"ssoNormal\": {\n    \"your-token-1\": {\n"
	           "      \"createdTime\": 1706745600000,\n",
	           69) == 0);
	EXPECT(strstr(text, "\"ssoNormal\"") < strstr(text, "\"ssoSuper\""));
	EXPECT(text[strlen(text) - 1] == '\n');
	free(text);
	doc = json_load_file(out, JSON_REJECT_DUPLICATES, &jerr);
	EXPECT(json_is_object(doc));
	EXPECT_INT_EQ(json_object_size(json_object_get(doc, "ssoNormal")), 2);
	EXPECT_INT_EQ(json_object_size(json_object_get(doc, "ssoSuper")), 1);
	json_object_foreach(json_object_get(doc, "ssoNormal"), key, e)
	{
		for (i = 0; i < ARRAY_LEN(keys); i++)
			if (json_object_get(e, keys[i]) == NULL)
				TH_FAILED("%s missing", keys[i]);
		EXPECT(json_is_integer(json_object_get(e, "createdTime")));
		EXPECT(json_is_integer(json_object_get(e, "remainingQueries")));
		EXPECT(json_is_string(json_object_get(e, "status")));
		EXPECT(json_is_null(json_object_get(e, "lastFailureTime")));
		EXPECT(json_is_null(json_object_get(e, "lastFailureReason")));
		EXPECT(json_is_array(json_object_get(e, "tags")));
		v = json_object_get(e, "note");
		EXPECT(json_is_string(v));
	}
	json_decref(doc);
	/* No temp file left behind. */
	path_in(in, sizeof(in), "sub/dir");
	{
		DIR *d = opendir(in);
		struct dirent *de;
		int n = 0;

		while (d != NULL && (de = readdir(d)) != NULL)
			n += de->d_name[0] != '.';
		if (d != NULL)
			(void)closedir(d); /* read only */
		EXPECT_INT_EQ(n, 1);
	}
	tokfile_free(f);
	tbl_free(&b);
}

/* Read text as a file; expect WP_EPARSE and an error naming want. */
static void
expect_bad(const char *text, const char *want, const char *also)
{
	char path[128], err[512], pre[160];
	struct tokfile *f = NULL;

	path_in(path, sizeof(path), "bad.json");
	put_file(path, text);
	EXPECT_INT_EQ(tokfile_read(path, &f, err, sizeof(err)), WP_EPARSE);
	EXPECT(f == NULL);
	(void)snprintf(pre, sizeof(pre), "%s:%s", path, want);
	if (strncmp(err, pre, strlen(pre)) != 0)
		TH_FAILED(
		    "error \"%s\", expected it to start with \"%s\"", err, pre);
	if (also != NULL)
		EXPECT_CONTAINS(err, also);
	if (strstr(err, "secret-token") != NULL)
		TH_FAILED("error \"%s\" shows a token", err);
}

TEST(t_errors)
{
	char path[128], err[512];
	struct tokfile *f = NULL;

	/* Syntax: jansson's line and column. */
	expect_bad("{\n  \"ssoNormal\": {\n    \"a\": {,\n", "3:11: ", NULL);
	expect_bad("[1, 2]", "1:1: ", "top level");
	/* Schema: the key of the bad field. */
	expect_bad("{\"ssoNormal\": {\n \"secret-token\": {\n"
	           "  \"note\": \"\",\n  \"remainingQueries\": \"many\"}}}",
	    "4:3: ", "ssoNormal: token tok:");
	expect_bad("{\"ssoNormal\": {\n \"secret-token\": {\n"
	           "  \"note\": \"\",\n  \"remainingQueries\": \"many\"}}}",
	    "4:3: ", ": remainingQueries: must be an integer");
	expect_bad(
	    "{\"ssoSuper\": {\"secret-token\": {\"status\": \"bogus\"}}}",
	    "1:", "status: must be");
	expect_bad("{\"ssoSuper\": {\"secret-token\": {\"tags\": [1]}}}",
	    "1:", "tags: tag 1 is not a string");
	expect_bad("{\"ssoSuper\": {\"secret-token\": {\"failedCount\": -2}}}",
	    "1:", "failedCount: -2 is out of range");
	expect_bad(
	    "{\"ssoSuper\": {\"secret-token\": 5}}", "1:", "must be an object");
	expect_bad("{\n\"ssoNormal\": []}", "2:1: ", "ssoNormal: must be");
	expect_bad("{\"ssoNormal\": {\"secret-token\": {}},\n"
	           " \"ssoSuper\": {\"secret-token\": {}}}",
	    "2:15: ", "in both");
	expect_bad("{\"ssoNormal\": {\"secret-token\": {},\n"
	           " \"secret-token\": {}}}",
	    "2:", "duplicate");
	expect_bad("{\"ssoNormal\": {\"bad token\": {}}}", "1:", "not a token");
	expect_bad(
	    "{\"ssoNormal\": {\"secret-token\": {\"note\": secret-token}}}",
	    "1:", "invalid token");

	/* Missing file, missing maps: an empty pool. */
	path_in(path, sizeof(path), "nope.json");
	EXPECT_INT_EQ(tokfile_read(path, &f, err, sizeof(err)), 0);
	EXPECT_INT_EQ(tokfile_count(f), 0);
	tokfile_free(f);
	path_in(path, sizeof(path), "empty.json");
	put_file(path, "{}");
	EXPECT_INT_EQ(tokfile_read(path, &f, err, sizeof(err)), 0);
	EXPECT_INT_EQ(tokfile_count(f), 0);
	tokfile_free(f);
	/* A folder where the file should be. */
	EXPECT_INT_EQ(tokfile_read(dir, &f, err, sizeof(err)), WP_ESYS);
	EXPECT_CONTAINS(err, dir);
}

TEST(t_too_many)
{
	char path[128], err[512];
	struct tokfile *f = NULL;
	struct tok_table *t;
	struct tbl b;

	path_in(path, sizeof(path), "seed3.json");
	put_file(path, seed_json);
	EXPECT_INT_EQ(tokfile_read(path, &f, err, sizeof(err)), 0);
	t = tbl_new(&b, 2);
	EXPECT_INT_EQ(tokfile_load(t, f, err, sizeof(err)), WP_ETOOBIG);
	EXPECT_CONTAINS(err, "3 tokens, more than grok.max_tokens (2)");
	tokfile_free(f);
	tbl_free(&b);
}

/* tokfile_read_seen counts what it has read, in steps, for the master. */
TEST(t_read_seen)
{
	char path[128], err[512];
	struct tokfile *f = NULL;
	_Atomic uint32_t seen = 0;
	struct buf b;
	FILE *fp;
	int i;

	buf_init(&b, 1u << 20);
	EXPECT_INT_EQ(buf_puts(&b, "{\"ssoNormal\":{"), 0);
	for (i = 0; i < 2500; i++)
		EXPECT_INT_EQ(
		    buf_printf(&b, "%s\"seen-tok-%05d\":{}", i ? "," : "", i),
		    0);
	EXPECT_INT_EQ(buf_puts(&b, "},\"ssoSuper\":{}}"), 0);
	path_in(path, sizeof(path), "seen.json");
	fp = fopen(path, "w");
	EXPECT(fp != NULL && fwrite(b.p, 1, b.len, fp) == b.len);
	if (fp != NULL)
		(void)fclose(fp);
	EXPECT_INT_EQ(tokfile_read_seen(path, &f, err, sizeof(err), &seen), 0);
	EXPECT_INT_EQ(tokfile_count(f), 2500);
	/* Every TOKFILE_SEEN_STEP entries: 1,024 and 2,048 of 2,500. */
	EXPECT_INT_EQ(atomic_load(&seen), 2 * TOKFILE_SEEN_STEP);
	tokfile_free(f);
	buf_fini(&b);
}

static const char merge_base[] =
    "{\"ssoNormal\": {\n"
    "  \"keep\": {\"remainingQueries\": 50, \"note\": \"k\"},\n"
    "  \"gone\": {\"remainingQueries\": 5},\n"
    "  \"edit\": {\"remainingQueries\": 20, \"note\": \"old\","
    "   \"tags\": [\"a\"]},\n"
    "  \"move\": {\"remainingQueries\": 9},\n"
    "  \"dead\": {\"remainingQueries\": 9}\n"
    "}, \"ssoSuper\": {}}\n";

static const char merge_edited[] =
    "{\"ssoNormal\": {\n"
    "  \"keep\": {\"remainingQueries\": 50, \"note\": \"k\"},\n"
    "  \"edit\": {\"remainingQueries\": 20, \"note\": \"new note\","
    "   \"tags\": [\"a\", \"b\"], \"status\": \"disabled\"},\n"
    "  \"dead\": {\"remainingQueries\": 9},\n"
    "  \"hand\": {\"note\": \"added by hand\"}\n"
    "}, \"ssoSuper\": {\n"
    "  \"move\": {\"remainingQueries\": 9, \"heavyremainingQueries\": 2}\n"
    "}}\n";

TEST(t_merge)
{
	char pb[128], pe[128], err[512];
	struct tokfile *base = NULL, *edited = NULL;
	struct tok_lease lease;
	struct tok_info ti;
	struct tok_table *t;
	unsigned added, removed, changed;
	uint32_t row, gen;
	int64_t retry;
	struct tbl b;

	path_in(pb, sizeof(pb), "merge-base.json");
	path_in(pe, sizeof(pe), "merge-edited.json");
	put_file(pb, merge_base);
	put_file(pe, merge_edited);
	t = load(&b, 16, pb, &base);
	/* Live changes since base. */
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &lease, &retry), 0);
	EXPECT_STR_EQ(lease.token, "keep");
	EXPECT_INT_EQ(tok_charge(t, &lease, 4, T0), 0);
	tok_release(t, &lease);
	(void)tok_find(t, "edit", &row, &gen);
	EXPECT_INT_EQ(tok_set_quota(t, row, gen, false, 17, 0, T0), 0);
	memset(&ti, 0, sizeof(ti));
	(void)util_strlcpy(ti.token, "live", sizeof(ti.token));
	ti.remaining = -1;
	ti.heavy_remaining = -1;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	EXPECT_INT_EQ(tok_remove(t, "dead"), 0); /* deleted in the admin UI */

	EXPECT_INT_EQ(tokfile_read(pe, &edited, err, sizeof(err)), 0);
	EXPECT_INT_EQ(
	    tokfile_merge(t, base, edited, &added, &removed, &changed), 0);
	EXPECT_INT_EQ(added, 1);
	EXPECT_INT_EQ(removed, 1);
	EXPECT_INT_EQ(changed, 2);
	EXPECT(has(t, "hand"));
	EXPECT_STR_EQ(get(t, "hand").note, "added by hand");
	EXPECT(!has(t, "gone"));
	EXPECT(!has(t, "dead")); /* untouched by hand: stays deleted */
	EXPECT(has(t, "live"));  /* added live, not in base: kept */
	EXPECT_INT_EQ(get(t, "keep").remaining, 46); /* live counter kept */
	ti = get(t, "edit");
	EXPECT_STR_EQ(ti.note, "new note");
	EXPECT_INT_EQ(ti.ntags, 2);
	EXPECT_STR_EQ(ti.tags[1], "b");
	EXPECT_INT_EQ(ti.status, TOK_ST_DISABLED);
	EXPECT_INT_EQ(ti.remaining, 17); /* not edited: live value */
	ti = get(t, "move");
	EXPECT_INT_EQ(ti.type, TOK_SUPER);
	EXPECT_INT_EQ(ti.heavy_remaining, 2);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_SUPER), 1);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	/* More than the table holds: refused before anything changes. */
	{
		char pf[128], big[4096];
		struct tokfile *fat = NULL;
		size_t n = 0;
		uint32_t before = tok_table_count(t);
		int k;

		n += (size_t)snprintf(
		    big + n, sizeof(big) - n, "{\"ssoNormal\": {\"keep\": {}");
		for (k = 0; k < 20; k++)
			n += (size_t)snprintf(
			    big + n, sizeof(big) - n, ", \"fat-%d\": {}", k);
		(void)snprintf(big + n, sizeof(big) - n, "}}");
		path_in(pf, sizeof(pf), "merge-fat.json");
		put_file(pf, big);
		EXPECT_INT_EQ(tokfile_read(pf, &fat, err, sizeof(err)), 0);
		EXPECT_INT_EQ(
		    tokfile_merge(t, edited, fat, &added, &removed, &changed),
		    WP_ETOOBIG);
		EXPECT_INT_EQ(tok_table_count(t), before);
		EXPECT(has(t, "edit"));
		EXPECT(!has(t, "fat-0"));
		tokfile_free(fat);
	}
	/* Merging the same edit again changes nothing. */
	EXPECT_INT_EQ(
	    tokfile_merge(t, edited, edited, &added, &removed, &changed), 0);
	EXPECT_INT_EQ(added + removed + changed, 0);
	tokfile_free(base);
	tokfile_free(edited);
	tbl_free(&b);
}

#define X25 "xxxxxxxxxxxxxxxxxxxxxxxxx"

/* What the scanner reads alone, jansson reads the same. */
static void
expect_scanned(const char *text)
{
	struct tokfile *fast = NULL, *slow = NULL;
	char err[512];

	EXPECT_INT_EQ(tokfile_parse("t.json", text, strlen(text), TOKFILE_FAST,
	                  &fast, err, sizeof(err)),
	    0);
	EXPECT_INT_EQ(tokfile_parse("t.json", text, strlen(text), TOKFILE_SLOW,
	                  &slow, err, sizeof(err)),
	    0);
	EXPECT(fast != NULL && slow != NULL && tokfile_same(fast, slow));
	tokfile_free(fast);
	tokfile_free(slow);
}

TEST(t_scanner)
{
	static const char bad[] = "{\"ssoNormal\": {\"a\": {\"note\": 1}}}";
	struct tokfile *f = NULL;
	char err[512];

	/* Escapes, unknown keys and reals: jansson reads that token alone. */
	expect_scanned(seed_json);
	expect_scanned(full_json);
	expect_scanned(merge_base);
	expect_scanned(
	    "{\"ssoNormal\": {\"t-A\": {\"note\": "
	    "\"\\ud83d\\ude00 \\\"\\u00e9\\n\", \"tags\": [\"\\/\"], "
	    "\"createdTime\": 1.7e12, \"lastFailureReason\": \"" X25 X25 X25 X25
	        X25 X25 "\"}}, \"ssoSuper\": {}, \"v\": [{}]}");
	/* Anything wrong is jansson's to say. */
	EXPECT_INT_EQ(tokfile_parse("t.json", bad, strlen(bad), TOKFILE_FAST,
	                  &f, err, sizeof(err)),
	    WP_EPARSE);
	EXPECT_INT_EQ(
	    tokfile_parse("t.json", bad, strlen(bad), 0, &f, err, sizeof(err)),
	    WP_EPARSE);
	EXPECT_CONTAINS(err, "t.json:1:22: ssoNormal: token ");
	EXPECT_CONTAINS(err, ": note: must be a string or null");
}

/* After a write, the base is what reading the file back gives. */
TEST(t_base_is_written)
{
	char in[128], out[128], err[512];
	struct tokfile *f = NULL, *back = NULL;
	struct tok_lease lease;
	struct tok_table *t;
	int64_t retry;
	struct tbl b;

	path_in(in, sizeof(in), "full2.json");
	path_in(out, sizeof(out), "full2-out.json");
	put_file(in, full_json);
	t = load(&b, 8, in, &f);
	/* Live changes: a cooldown end, a last use, a failure. */
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &lease, &retry), 0);
	EXPECT_INT_EQ(
	    tok_fail(t, lease.row, lease.row_gen, 500, "boom", T0), 0);
	EXPECT_INT_EQ(
	    tok_cool(t, lease.row, lease.row_gen, T0 + 5, "429", T0), 0);
	tok_release(t, &lease);
	EXPECT_INT_EQ(tokfile_write(t, out, &f), 0);
	EXPECT_INT_EQ(tokfile_read(out, &back, err, sizeof(err)), 0);
	EXPECT(back != NULL && tokfile_same(f, back));
	tokfile_free(f);
	tokfile_free(back);
	tbl_free(&b);
}

static int
child_write_small(struct tok_table *t, const char *path, struct tokfile **f)
{
	struct rlimit rl = { 64, 64 };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGXFSZ, &sa, NULL) != 0 ||
	    setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 3;
	if (tokfile_write(t, path, f) != WP_ESYS)
		return 4;
	return errno == EFBIG ? 0 : 5;
}

TEST(t_write_fails)
{
	char in[128], path[128], file[128];
	struct tokfile *f = NULL, *old;
	struct tok_table *t;
	char *before, *after;
	struct tbl b;
	pid_t pid;
	int st;

	path_in(in, sizeof(in), "seed4.json");
	put_file(in, seed_json);
	t = load(&b, 8, in, &f);
	/* The folder cannot exist: a file is in the way. */
	path_in(file, sizeof(file), "a-file");
	put_file(file, "x");
	path_in(path, sizeof(path), "a-file/token.json");
	old = f;
	EXPECT_INT_EQ(tokfile_write(t, path, &f), WP_ESYS);
	EXPECT_INT_EQ(errno, ENOTDIR);
	EXPECT(f == old); /* the base stays */

	/* The disk fills up half-way: the old file stays as it was. */
	path_in(path, sizeof(path), "full/token.json");
	EXPECT_INT_EQ(tokfile_write(t, path, &f), 0);
	before = get_file(path);
	(void)tok_remove(t, "your-token-1");
	fflush(stdout);
	if ((pid = fork()) == 0) {
		free(before); /* the parent's: not a leak under valgrind */
		_exit(child_write_small(t, path, &f));
	}
	EXPECT_INT_EQ(waitpid(pid, &st, 0), pid);
	EXPECT(WIFEXITED(st));
	EXPECT_INT_EQ(WEXITSTATUS(st), 0);
	after = get_file(path);
	EXPECT(before != NULL && after != NULL && strcmp(before, after) == 0);
	free(before);
	free(after);
	path_in(path, sizeof(path), "full");
	{
		DIR *d = opendir(path);
		struct dirent *de;
		int n = 0;

		while (d != NULL && (de = readdir(d)) != NULL)
			n += de->d_name[0] != '.';
		if (d != NULL)
			(void)closedir(d); /* read only */
		EXPECT_INT_EQ(n, 1);       /* no temp file left */
	}
	/* Not writable (only means something when not root). */
	if (geteuid() != 0) {
		path_in(path, sizeof(path), "full");
		EXPECT_INT_EQ(chmod(path, 0500), 0);
		path_in(path, sizeof(path), "full/token.json");
		EXPECT_INT_EQ(tokfile_write(t, path, &f), WP_ESYS);
		path_in(path, sizeof(path), "full");
		(void)chmod(path, 0700); /* for the cleanup */
	}
	tokfile_free(f);
	tbl_free(&b);
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int
main(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/t_tokfile.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	RUN(t_seed_example);
	RUN(t_round_trip);
	RUN(t_written_shape);
	RUN(t_errors);
	RUN(t_too_many);
	RUN(t_read_seen);
	RUN(t_merge);
	RUN(t_scanner);
	RUN(t_base_is_written);
	RUN(t_write_fails);
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); /* cleanup */
	TH_DONE();
}
