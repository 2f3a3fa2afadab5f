/*
 * Unit tests of the admin panel's pure helpers (worker/adm_*.c): the scan
 * that finds a request body's "model" for the per-model statistics. It
 * reads what clients send, so it must neither be fooled by nesting and
 * strings nor run past the buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "err.h"

#include "th.h"

static const char *
peek(const char *s)
{
	static char out[64]; /* returned string lives here */

	if (adm_peek_model(s, strlen(s), out, sizeof(out)) != 0)
		return "(none)";
	return out;
}

TEST(t_peek_found)
{
	EXPECT_STR_EQ(peek("{\"model\":\"grok-4.1\"}"), "grok-4.1");
	EXPECT_STR_EQ(
	    peek(" \n{ \"model\" : \"grok-3-fast\" , \"x\":1}"), "grok-3-fast");
	/* After values of every kind, nested ones holding "model" too. */
	EXPECT_STR_EQ(peek("{\"messages\":[{\"role\":\"user\",\"content\":"
	                   "\"say \\\"model\\\": \\\"no\\\"\"},{\"model\":"
	                   "\"inner\"}],\"n\":-1.5e3,\"s\":true,\"z\":null,"
	                   "\"o\":{\"model\":\"deep\",\"a\":[[],{}]},"
	                   "\"model\":\"grok-4-heavy\",\"stream\":true}"),
	    "grok-4-heavy");
	EXPECT_STR_EQ(peek("{\"modelx\":\"a\",\"model\":\"b\"}"), "b");
	EXPECT_STR_EQ(peek("{\"model\":\"\"}"), "");
}

TEST(t_peek_refused)
{
	char big[200];

	EXPECT_STR_EQ(peek(""), "(none)");
	EXPECT_STR_EQ(peek("[\"model\",\"x\"]"), "(none)");
	EXPECT_STR_EQ(peek("{\"messages\":[]}"), "(none)");
	EXPECT_STR_EQ(peek("{\"model\":5}"), "(none)");
	EXPECT_STR_EQ(peek("{\"model\":\"gr\\u006fk\"}"), "(none)");
	EXPECT_STR_EQ(peek("{\"model\":\"unterminated"), "(none)");
	EXPECT_STR_EQ(
	    peek("{\"a\":\"unterminated, \"model\":\"x\"}"), "(none)");
	EXPECT_STR_EQ(peek("{\"a\" 1, \"model\":\"x\"}"), "(none)");
	EXPECT_STR_EQ(peek("{\"a\":[1,2"), "(none)");
	EXPECT_STR_EQ(peek("{\"a\":\"\\"), "(none)");
	memset(big, 'm', sizeof(big));
	memcpy(big, "{\"model\":\"", 10);
	memcpy(big + sizeof(big) - 3, "\"}", 3);
	EXPECT_STR_EQ(peek(big), "(none)"); /* longer than out */
}

/* Never reads past n: a body cut anywhere is refused or still found. */
TEST(t_peek_cut)
{
	const char *full = "{\"stream\":true,\"messages\":[{\"content\":"
	                   "\"hi\"}],\"model\":\"grok-4.1\"}";
	size_t n = strlen(full), k;
	char out[64];
	char *p;
	int rc;

	for (k = 0; k <= n; k++) {
		p = malloc(k + 1); /* exact size: ASan sees any overread */
		memcpy(p, full, k);
		rc = adm_peek_model(p, k, out, sizeof(out));
		if (k < n - 1)
			EXPECT_INT_EQ(rc, WP_EINVAL);
		else
			EXPECT_STR_EQ(out, "grok-4.1");
		free(p);
	}
}

int
main(void)
{
	RUN(t_peek_found);
	RUN(t_peek_refused);
	RUN(t_peek_cut);
	TH_DONE();
}
