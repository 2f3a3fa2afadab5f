/*
 * Unit tests of shared/buf.c: the cap, and buf_json_str against what
 * jansson dumps for the same string (the hand-made frames must read the
 * same as the ones jansson made before them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"

#include "th.h"

/* s as jansson dumps it. */
static char *
jdump(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	char *out = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);

	json_decref(j);
	return out;
}

static void
same_as_jansson(const char *s, size_t n)
{
	struct buf b;
	char *want = jdump(s, n);

	buf_init(&b, 1 << 20);
	EXPECT(want != NULL);
	EXPECT_INT_EQ(buf_puts(&b, "x"), 0);
	EXPECT_INT_EQ(buf_json_str(&b, s, n), 0);
	EXPECT(b.len == strlen(want) + 1);
	EXPECT_STR_EQ(b.p + 1, want);
	free(want);
	buf_fini(&b);
}

/* A string literal, without its NUL. */
#define SAME(lit) same_as_jansson(lit, sizeof(lit) - 1)

/* buf_put_i64 writes what printf's %lld does, at the ends too. */
TEST(t_put_i64)
{
	static const int64_t v[] = { 0, 7, -1, 10, 1700000000, -987654321,
		INT64_MAX, INT64_MIN };
	char want[32];
	struct buf b;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_init(&b, 64);
		EXPECT_INT_EQ(buf_put_i64(&b, v[i]), 0);
		(void)snprintf(want, sizeof(want), "%lld", (long long)v[i]);
		EXPECT_STR_EQ(b.p, want);
		buf_fini(&b);
	}
	buf_init(&b, 3); /* over the cap: an error, b unchanged */
	EXPECT_INT_EQ(buf_put_i64(&b, 1234), WP_ETOOBIG);
	EXPECT_INT_EQ(b.len, 0);
	buf_fini(&b);
}

TEST(t_json_str)
{
	char all[128];
	size_t i;

	for (i = 0; i < sizeof(all); i++)
		all[i] = (char)i; /* every ASCII byte, NUL and controls too */
	same_as_jansson(all, sizeof(all));
	same_as_jansson("", 0);
	SAME("plain");
	SAME("\"");
	SAME("a\\b/c</script>\x7f");
	SAME("\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xe2\x80\xa8");
	SAME("end\n");
}

TEST(t_json_str_cap)
{
	struct buf b;
	size_t cap;

	/* At the cap: all or nothing, the buffer as it was. */
	for (cap = 0; cap < 16; cap++) {
		buf_init(&b, 3 + cap);
		EXPECT_INT_EQ(buf_puts(&b, "ab,"), 0);
		if (buf_json_str(&b, "q\"\n\x01z", 5) == 0) {
			EXPECT_STR_EQ(b.p, "ab,\"q\\\"\\n\\u0001z\"");
		} else {
			EXPECT_INT_EQ(b.len, 3);
			EXPECT_STR_EQ(b.p, "ab,");
		}
		buf_fini(&b);
	}
}

int
main(void)
{
	RUN(t_put_i64);
	RUN(t_json_str);
	RUN(t_json_str_cap);
	TH_DONE();
}
