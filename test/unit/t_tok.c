/*
 * Unit tests of the token table (shared/tok.c): add/find/remove, the
 * selection order (against a model of it, under random operations),
 * pools, cooling, failures, capacity, invariants under random
 * operations, repair after a crash, and the cost of a pick as the table
 * grows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "tok.h"
#include "util.h"

#include "th.h"

#define T0 1700000000000LL /* a fixed "now" */

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
	if (b->mem == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	if (tok_table_init(b->mem, cap, &b->t) != 0) {
		fprintf(stderr, "tok_table_init failed\n");
		exit(2);
	}
	return b->t;
}

static void
tbl_free(struct tbl *b)
{
	(void)munmap(b->mem, b->size); /* test teardown */
}

static void
info(struct tok_info *ti, const char *token, enum tok_type type,
    int32_t remaining, int32_t heavy)
{
	memset(ti, 0, sizeof(*ti));
	(void)util_strlcpy(ti->token, token, sizeof(ti->token)); /* short */
	ti->type = (uint8_t)type;
	ti->status = TOK_ST_ACTIVE;
	ti->remaining = remaining;
	ti->heavy_remaining = heavy;
	ti->created_ms = T0;
}

static uint32_t
add(struct tok_table *t, const char *token, enum tok_type type,
    int32_t remaining, int32_t heavy)
{
	struct tok_info ti;
	uint32_t row = UINT32_MAX;
	int rc;

	info(&ti, token, type, remaining, heavy);
	rc = tok_add(t, &ti, &row);
	if (rc != 0)
		printf("  add %s: %s\n", token, wp_strerror(rc));
	return row;
}

static uint32_t
gen_of(struct tok_table *t, const char *token)
{
	uint32_t row, gen = 0;

	(void)tok_find(t, token, &row, &gen); /* 0 = not found */
	return gen;
}

/* Pick and release at now; returns the token picked or "" . */
static const char *
pick_at(struct tok_table *t, enum cfg_pool pool, int64_t now, uint32_t exclude,
    int *rcp)
{
	static struct tok_lease lease; /* returned string lives here */
	int64_t retry = 0;
	int rc;

	memset(&lease, 0, sizeof(lease));
	rc = tok_pick(t, pool, now, exclude, &lease, &retry);
	if (rcp != NULL)
		*rcp = rc;
	if (rc != 0)
		return "";
	tok_release(t, &lease);
	return lease.token;
}

static struct tok_info
get(struct tok_table *t, const char *token)
{
	struct tok_info ti;
	uint32_t row = 0, gen = 0;

	memset(&ti, 0, sizeof(ti));
	if (tok_find(t, token, &row, &gen) == 0)
		(void)tok_get(t, row, gen, &ti); /* found just now */
	return ti;
}

TEST(t_add_find_remove)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 8);
	struct tok_info ti;
	uint32_t ra, rb, rc_row, row, gen, iter;
	uint64_t d0;
	char big[TOK_LEN_MAX + 2];
	int n;

	EXPECT_INT_EQ(tok_table_cap(t), 8);
	d0 = tok_table_dirty(t);
	ra = add(t, "tok-a", TOK_NORMAL, -1, -1);
	rb = add(t, "tok-b", TOK_SUPER, 5, 2);
	EXPECT(tok_table_dirty(t) > d0);
	EXPECT_INT_EQ(tok_table_count(t), 2);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_NORMAL), 1);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_SUPER), 1);
	EXPECT_INT_EQ(tok_find(t, "tok-a", &row, &gen), 0);
	EXPECT_INT_EQ(row, ra);
	EXPECT_INT_EQ(gen, 1);
	EXPECT_INT_EQ(tok_find(t, "tok-zz", &row, &gen), WP_ENOENT);
	info(&ti, "tok-a", TOK_SUPER, 1, 1);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_EEXIST);
	EXPECT_INT_EQ(tok_get(t, rb, 1, &ti), 0);
	EXPECT_STR_EQ(ti.token, "tok-b");
	EXPECT_INT_EQ(ti.type, TOK_SUPER);
	EXPECT_INT_EQ(ti.remaining, 5);
	EXPECT_INT_EQ(ti.heavy_remaining, 2);
	EXPECT_INT_EQ(ti.created_ms, T0);

	/* Bad tokens. */
	info(&ti, "", TOK_NORMAL, -1, -1);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_EINVAL);
	info(&ti, "a b", TOK_NORMAL, -1, -1);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_EINVAL);
	info(&ti, "a;b", TOK_NORMAL, -1, -1);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_EINVAL);
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	EXPECT_INT_EQ(tok_validate(big), WP_EINVAL);
	big[TOK_LEN_MAX] = '\0';
	EXPECT_INT_EQ(tok_validate(big), 0);
	/* Every byte against RFC 6265's cookie-octet, alone and inside. */
	for (n = 1; n < 256; n++) {
		char one[2] = { (char)n, '\0' }, mid[4] = { 'a', (char)n, 'b' };
		int want = n > 0x20 && n < 0x7f && n != '"' && n != ',' &&
		        n != ';' && n != '\\'
		    ? 0
		    : WP_EINVAL;

		EXPECT_INT_EQ(tok_validate(one), want);
		EXPECT_INT_EQ(tok_validate(mid), want);
	}
	info(&ti, "x", TOK_NORMAL, -1, -1);
	memset(ti.token, 'x', sizeof(ti.token)); /* unterminated */
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_EINVAL);

	/* Remove, then the row is reused with a new generation. */
	EXPECT_INT_EQ(tok_remove(t, "tok-a"), 0);
	EXPECT_INT_EQ(tok_remove(t, "tok-a"), WP_ENOENT);
	EXPECT_INT_EQ(tok_get(t, ra, 1, &ti), WP_ENOENT);
	EXPECT_INT_EQ(tok_find(t, "tok-a", &row, &gen), WP_ENOENT);
	EXPECT_INT_EQ(tok_table_count(t), 1);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_NORMAL), 0);
	rc_row = add(t, "tok-c", TOK_NORMAL, 3, -1);
	EXPECT_INT_EQ(rc_row, ra);
	EXPECT_INT_EQ(gen_of(t, "tok-c"), 2);
	EXPECT_INT_EQ(tok_get(t, ra, 1, &ti), WP_ENOENT);
	EXPECT_INT_EQ(tok_get(t, ra, 2, &ti), 0);
	EXPECT_STR_EQ(ti.token, "tok-c");

	/* Iteration sees each row once. */
	n = 0;
	iter = 0;
	while (tok_next(t, &iter, &ti) == 0)
		n++;
	EXPECT_INT_EQ(n, 2);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_order)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l1, l2;
	int64_t now = T0, retry;
	uint32_t row, gen;

	add(t, "A", TOK_NORMAL, 10, -1);
	add(t, "B", TOK_NORMAL, -1, -1);
	add(t, "C", TOK_NORMAL, 50, -1);
	add(t, "D", TOK_NORMAL, -1, -1);
	add(t, "E", TOK_NORMAL, -1, -1);
	/* Unknowns first, least recently used among them: they rotate. */
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "B");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "D");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "E");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "B");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "D");
	/* Known quotas: largest first. */
	(void)tok_find(t, "B", &row, &gen);
	EXPECT_INT_EQ(tok_set_quota(t, row, gen, false, 5, 0, now), 0);
	(void)tok_find(t, "D", &row, &gen);
	EXPECT_INT_EQ(tok_set_quota(t, row, gen, false, 20, 0, now), 0);
	(void)tok_find(t, "E", &row, &gen);
	EXPECT_INT_EQ(tok_set_quota(t, row, gen, false, 30, 0, now), 0);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "C");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "C");
	(void)tok_find(t, "C", &row, &gen);
	EXPECT_INT_EQ(tok_set_quota(t, row, gen, false, 1, 0, now), 0);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "E");
	EXPECT_INT_EQ(tok_set_quota(t, row, gen, false, -7, 0, now), 0);
	EXPECT_INT_EQ(get(t, "C").remaining, -1); /* below -1 is unknown */
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "C");

	/* Equal quotas: least recently used; requests in flight count. */
	(void)tok_remove(t, "A");
	(void)tok_remove(t, "B");
	(void)tok_remove(t, "C");
	(void)tok_remove(t, "D");
	(void)tok_remove(t, "E");
	add(t, "P", TOK_NORMAL, 10, -1);
	add(t, "Q", TOK_NORMAL, 10, -1);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, &l1, &retry), 0);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, &l2, &retry), 0);
	EXPECT(strcmp(l1.token, l2.token) != 0);
	EXPECT_INT_EQ(get(t, l1.token).inflight, 1);
	EXPECT_INT_EQ(get(t, l1.token).last_used_ms, now - 1);
	tok_release(t, &l1);
	tok_release(t, &l2);
	tok_release(t, &l2); /* a second release does not underflow */
	EXPECT_INT_EQ(get(t, l2.token).inflight, 0);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_pools)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	int64_t now = T0, retry;
	int rc;

	/* Normal falls back to super, with the normal quota. */
	add(t, "S1", TOK_SUPER, 40, 3);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, &l, &retry), 0);
	EXPECT_STR_EQ(l.token, "S1");
	EXPECT_INT_EQ(l.type, TOK_SUPER);
	EXPECT_INT_EQ(l.heavy, 0);
	EXPECT_INT_EQ(tok_charge(t, &l, 4, now), 0);
	tok_release(t, &l);
	EXPECT_INT_EQ(get(t, "S1").remaining, 36);
	EXPECT_INT_EQ(get(t, "S1").heavy_remaining, 3);
	/* A normal token wins even with less quota. */
	add(t, "N1", TOK_NORMAL, 2, -1);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "N1");
	/* Heavy: super only, its own quota. */
	add(t, "S2", TOK_SUPER, 1, -1);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_SUPER, ++now, UINT32_MAX, &l, &retry), 0);
	EXPECT_STR_EQ(l.token, "S2");
	EXPECT_INT_EQ(l.heavy, 1);
	EXPECT_INT_EQ(tok_charge(t, &l, 1, now), 0);
	tok_release(t, &l);
	EXPECT_INT_EQ(get(t, "S2").heavy_remaining, -1); /* unknown stays */
	EXPECT_INT_EQ(get(t, "S2").remaining, 1);
	(void)tok_remove(t, "S1");
	(void)tok_remove(t, "S2");
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_SUPER, ++now, UINT32_MAX, &rc), "");
	EXPECT_INT_EQ(rc, WP_ENOTOKEN);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, &rc), "N1");
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_exclude)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	uint32_t ra, rb, rs;
	int64_t now = T0;

	ra = add(t, "A", TOK_NORMAL, 30, -1);
	rb = add(t, "B", TOK_NORMAL, 20, -1);
	add(t, "C", TOK_NORMAL, 25, -1);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, ++now, UINT32_MAX, NULL), "A");
	/* The next best, wherever it sits among the root's children. */
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, ++now, ra, NULL), "C");
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, ++now, rb, NULL), "A");
	(void)tok_remove(t, "B");
	(void)tok_remove(t, "C");
	/* Only the excluded one: better it than nothing. */
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, ++now, ra, NULL), "A");
	/* Excluding the only normal token moves to super. */
	rs = add(t, "S", TOK_SUPER, 5, 5);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, ++now, ra, NULL), "S");
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_SUPER, ++now, rs, NULL), "S");
	tbl_free(&b);
}

TEST(t_charge_and_cool)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	struct tok_info ti;
	int64_t now = T0, retry = 0;
	int rc;

	add(t, "A", TOK_NORMAL, 10, -1);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry), 0);
	EXPECT_INT_EQ(tok_charge(t, &l, 1, now), 0);
	EXPECT_INT_EQ(get(t, "A").remaining, 9);
	EXPECT_INT_EQ(tok_charge(t, &l, 4, now), 0);
	EXPECT_INT_EQ(get(t, "A").remaining, 5);
	EXPECT_INT_EQ(tok_charge(t, &l, 4, now), 0);
	EXPECT_INT_EQ(tok_charge(t, &l, 4, now), 0); /* 1 - 4: stops at 0 */
	tok_release(t, &l);
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.remaining, 0);
	EXPECT_INT_EQ(ti.status, TOK_ST_COOLING);
	EXPECT_INT_EQ(ti.cooldown_until_ms, now + TOK_COOL_DEF_MS);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, now + 1, UINT32_MAX, &l, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, now + TOK_COOL_DEF_MS);
	/* Time passes: active again, quota unknown so it gets refreshed. */
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, now + TOK_COOL_DEF_MS, UINT32_MAX, &rc),
	    "A");
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.status, TOK_ST_ACTIVE);
	EXPECT_INT_EQ(ti.remaining, -1);
	EXPECT_INT_EQ(ti.cooldown_until_ms, 0);

	/* 429: cools until the time given; the other token serves. */
	now += TOK_COOL_DEF_MS;
	add(t, "B", TOK_NORMAL, 3, -1);
	EXPECT_INT_EQ(tok_cool(t, get(t, "A").row, get(t, "A").row_gen,
	                  now + 60000, "429: too many", now),
	    0);
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.status, TOK_ST_COOLING);
	EXPECT_STR_EQ(ti.last_failure_reason, "429: too many");
	EXPECT_INT_EQ(ti.failed_count, 0);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, now + 1, UINT32_MAX, NULL), "B");
	/* A positive quota does not lift a cooling the upstream ordered. */
	EXPECT_INT_EQ(
	    tok_set_quota(t, ti.row, ti.row_gen, false, 40, 0, now), 0);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_COOLING);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, now + 60000, UINT32_MAX, NULL), "A");
	EXPECT_INT_EQ(get(t, "A").remaining, 40);

	/* Quota 0 with a wait from the upstream. */
	now += 60000;
	ti = get(t, "B");
	EXPECT_INT_EQ(
	    tok_set_quota(t, ti.row, ti.row_gen, false, 0, 30, now), 0);
	EXPECT_INT_EQ(get(t, "B").cooldown_until_ms, now + 30000);
	EXPECT_INT_EQ(get(t, "B").status, TOK_ST_COOLING);
	/* Our own count ran out, but the upstream says there is more. */
	EXPECT_INT_EQ(
	    tok_set_quota(t, ti.row, ti.row_gen, false, 7, 0, now), 0);
	EXPECT_INT_EQ(get(t, "B").status, TOK_ST_ACTIVE);
	EXPECT_INT_EQ(get(t, "B").cooldown_until_ms, 0);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_super_heavy_quota)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	int64_t now = T0, retry = 0;
	struct tok_info ti;

	add(t, "S", TOK_SUPER, 50, 4);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_SUPER, now, UINT32_MAX, &l, &retry), 0);
	EXPECT_INT_EQ(tok_charge(t, &l, 4, now), 0);
	tok_release(t, &l);
	ti = get(t, "S");
	EXPECT_INT_EQ(ti.heavy_remaining, 0);
	/* Heavy spent: no heavy, but it still serves the normal pool. */
	EXPECT_INT_EQ(ti.status, TOK_ST_ACTIVE);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_SUPER, now + 1, UINT32_MAX, &l, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, now + TOK_COOL_DEF_MS);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, now + 1, UINT32_MAX, NULL), "S");
	/*
	 * Both spent: the whole token cools, until the earlier end (one
	 * cooldown per token: the other quota is then unknown and refreshed).
	 */
	EXPECT_INT_EQ(
	    tok_set_quota(t, ti.row, ti.row_gen, false, 0, 600, now + 2), 0);
	EXPECT_INT_EQ(get(t, "S").status, TOK_ST_COOLING);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, now + 3, UINT32_MAX, &l, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, now + 2 + 600000);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_SUPER, now + 2 + 600000, UINT32_MAX, NULL),
	    "S");
	ti = get(t, "S");
	EXPECT_INT_EQ(ti.heavy_remaining, -1);
	EXPECT_INT_EQ(ti.remaining, -1);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_cooling_vs_notoken)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	struct tok_info ti;
	int64_t now = T0, retry = 0;

	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry),
	    WP_ENOTOKEN);
	add(t, "A", TOK_NORMAL, 5, -1);
	add(t, "B", TOK_NORMAL, 5, -1);
	add(t, "S", TOK_SUPER, 5, 5);
	ti = get(t, "A");
	(void)tok_cool(t, ti.row, ti.row_gen, now + 100000, "429", now);
	ti = get(t, "B");
	(void)tok_cool(t, ti.row, ti.row_gen, now + 70000, "429", now);
	ti = get(t, "S");
	(void)tok_cool(t, ti.row, ti.row_gen, now + 50000, "429", now);
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, now + 50000); /* the earliest, super included */
	(void)tok_remove(t, "S");
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, now + 70000);
	/* Heavy looks at super tokens only. */
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_SUPER, now, UINT32_MAX, &l, &retry),
	    WP_ENOTOKEN);
	/* Expired and disabled tokens will never serve. */
	ti = get(t, "A");
	ti.status = TOK_ST_DISABLED;
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), 0);
	ti = get(t, "B");
	ti.status = TOK_ST_EXPIRED;
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), 0);
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry),
	    WP_ENOTOKEN);
	/* An operator's "active" brings it back. */
	ti.status = TOK_ST_ACTIVE;
	ti.cooldown_until_ms = 0;
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), 0);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, now, UINT32_MAX, NULL), "B");
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_fail_expire)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	struct tok_info ti;
	int64_t now = T0, retry;
	uint32_t row, gen;
	int i;

	add(t, "A", TOK_NORMAL, -1, -1);
	(void)tok_find(t, "A", &row, &gen);
	EXPECT_INT_EQ(tok_fail(t, row, gen, 401, "401: unauthorized", now), 0);
	EXPECT_INT_EQ(tok_fail(t, row, gen, 401, "401: unauthorized", now), 0);
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.failed_count, 2);
	EXPECT_INT_EQ(ti.last_failure_ms, now);
	EXPECT_STR_EQ(ti.last_failure_reason, "401: unauthorized");
	/* A success resets the run. */
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry), 0);
	EXPECT_INT_EQ(tok_charge(t, &l, 1, now), 0);
	tok_release(t, &l);
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.failed_count, 0);
	EXPECT_INT_EQ(ti.last_failure_ms, 0);
	EXPECT_STR_EQ(ti.last_failure_reason, "");
	/* Other failures count but never expire, and break a 401 run. */
	for (i = 0; i < 5; i++)
		EXPECT_INT_EQ(
		    tok_fail(t, row, gen, 502, "502: bad gateway", now), 0);
	EXPECT_INT_EQ(get(t, "A").failed_count, 5);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_ACTIVE);
	(void)tok_fail(t, row, gen, 401, "401", now);
	(void)tok_fail(t, row, gen, 401, "401", now);
	(void)tok_fail(t, row, gen, 500, "500", now);
	(void)tok_fail(t, row, gen, 401, "401", now);
	(void)tok_fail(t, row, gen, 401, "401", now);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_ACTIVE);
	(void)tok_fail(t, row, gen, 401, "401: third in a row", now);
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.status, TOK_ST_EXPIRED);
	EXPECT_INT_EQ(ti.failed_count, 11);
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &l, &retry),
	    WP_ENOTOKEN);
	/* A stale lease cannot touch a reused row. */
	(void)tok_remove(t, "A");
	add(t, "B", TOK_NORMAL, 9, -1);
	EXPECT_INT_EQ(tok_fail(t, row, gen, 401, "401", now), WP_ENOENT);
	EXPECT_INT_EQ(tok_charge(t, &l, 1, now), WP_ENOENT);
	EXPECT_INT_EQ(get(t, "B").remaining, 9);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

/*
 * A success clears the last failure however it was set: by the upstream,
 * the operator or token.json (a reason without a time, a time without a
 * reason).
 */
TEST(t_charge_clears_failure)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	struct tok_info ti;
	int64_t retry;
	uint32_t row;
	unsigned i;

	info(&ti, "reason-only", TOK_NORMAL, 50, -1);
	(void)util_strlcpy(ti.last_failure_reason, "from the file",
	    sizeof(ti.last_failure_reason));
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	info(&ti, "time-only", TOK_NORMAL, 40, -1);
	ti.last_failure_ms = T0 - 5;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	add(t, "set", TOK_NORMAL, 30, -1);
	ti = get(t, "set");
	(void)util_strlcpy(
	    ti.last_failure_reason, "by hand", sizeof(ti.last_failure_reason));
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), 0);
	add(t, "cooled", TOK_NORMAL, 20, -1);
	ti = get(t, "cooled");
	EXPECT_INT_EQ(tok_cool(t, ti.row, ti.row_gen, T0 + 10, "429", T0), 0);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	/* Largest quota first: the order they were made in; the 429 over. */
	for (i = 0; i < 4; i++) {
		EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, T0 + 10 + i,
		                  UINT32_MAX, &l, &retry),
		    0);
		EXPECT_INT_EQ(tok_charge(t, &l, 1, T0 + 10 + i), 0);
		tok_release(t, &l);
		ti = get(t, l.token);
		EXPECT_INT_EQ(ti.last_failure_ms, 0);
		EXPECT_STR_EQ(ti.last_failure_reason, "");
		EXPECT_INT_EQ(ti.failed_count, 0);
		EXPECT_INT_EQ(tok_table_check(t), 0);
		EXPECT_INT_EQ(tok_remove(t, l.token), 0); /* the next one */
	}
	EXPECT_STR_EQ(l.token, "cooled");
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_full)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 4);
	struct tok_info ti;
	uint32_t row;

	add(t, "A", TOK_NORMAL, -1, -1);
	add(t, "B", TOK_NORMAL, -1, -1);
	add(t, "C", TOK_SUPER, -1, -1);
	add(t, "D", TOK_SUPER, -1, -1);
	info(&ti, "E", TOK_NORMAL, -1, -1);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_ETOOBIG);
	EXPECT_INT_EQ(tok_table_count(t), 4);
	EXPECT_INT_EQ(tok_remove(t, "B"), 0);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	EXPECT_INT_EQ(tok_add(t, &ti, &row), WP_EEXIST);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	EXPECT_INT_EQ(tok_table_size(0), 0);
	tbl_free(&b);
}

/* Token i of a mixed set: both types, every status, varied quotas. */
static void
mixed(struct tok_info *ti, unsigned i)
{
	char name[32];

	(void)snprintf(name, sizeof(name), "bulk-%u", i);
	info(ti, name, i % 3 == 0 ? TOK_SUPER : TOK_NORMAL,
	    (int32_t)(i * 7919 % 50) - 1, (int32_t)(i % 5) - 1);
	ti->status = i % 11 == 0 ? TOK_ST_DISABLED
	    : i % 13 == 0        ? TOK_ST_COOLING
	                         : TOK_ST_ACTIVE;
	ti->cooldown_until_ms = i % 13 == 0 ? T0 + i * 1000LL : 0;
	ti->last_used_ms = T0 - (int64_t)(i % 17) * 1000;
}

struct mixed_src {
	unsigned i, n;
};

static int
mixed_next(void *arg, struct tok_info *ti)
{
	struct mixed_src *s = arg;

	if (s->i == s->n)
		return WP_ENOENT;
	mixed(ti, s->i++);
	return 0;
}

static int
twice_next(void *arg, struct tok_info *ti)
{
	static const char *const names[] = { "x", "y", "x", "z" };
	unsigned *i = arg;

	if (*i == ARRAY_LEN(names))
		return WP_ENOENT;
	info(ti, names[(*i)++], TOK_NORMAL, -1, -1);
	return 0;
}

TEST(t_add_all)
{
	struct mixed_src src = { 0, 500 };
	struct tok_lease la, lb;
	struct tok_info ti;
	struct tbl a, b;
	int64_t ra, rb;
	uint32_t row;
	unsigned i;
	int rca, rcb;

	(void)tbl_new(&a, 600);
	(void)tbl_new(&b, 600);
	EXPECT_INT_EQ(tok_add_all(a.t, mixed_next, &src), 0);
	for (i = 0; i < src.n; i++) {
		mixed(&ti, i);
		EXPECT_INT_EQ(tok_add(b.t, &ti, &row), 0);
	}
	EXPECT_INT_EQ(tok_table_check(a.t), 0);
	EXPECT_INT_EQ(tok_table_count(a.t), 500);
	EXPECT_INT_EQ(tok_table_count_type(a.t, TOK_SUPER), 167);
	/* Picks in the same order as from a table filled one by one. */
	for (i = 0; i < 400; i++) {
		enum cfg_pool pool =
		    i % 4 == 0 ? CFG_POOL_SUPER : CFG_POOL_NORMAL;

		rca = tok_pick(a.t, pool, T0 + i * 100LL, UINT32_MAX, &la, &ra);
		rcb = tok_pick(b.t, pool, T0 + i * 100LL, UINT32_MAX, &lb, &rb);
		EXPECT_INT_EQ(rca, rcb);
		if (rca != 0 || rcb != 0)
			continue;
		EXPECT_STR_EQ(la.token, lb.token);
		(void)tok_charge(a.t, &la, 4, T0 + i * 100LL);
		(void)tok_charge(b.t, &lb, 4, T0 + i * 100LL);
		tok_release(a.t, &la);
		tok_release(b.t, &lb);
	}
	EXPECT_INT_EQ(tok_table_check(a.t), 0);
	/* Only into a fresh table. */
	src.i = 0;
	EXPECT_INT_EQ(tok_add_all(a.t, mixed_next, &src), WP_EINVAL);
	EXPECT_INT_EQ(tok_table_count(a.t), 500);
	tbl_free(&a);
	tbl_free(&b);
	/* Too many: the tokens that fit stay, in a sound table. */
	(void)tbl_new(&a, 100);
	src.i = 0;
	EXPECT_INT_EQ(tok_add_all(a.t, mixed_next, &src), WP_ETOOBIG);
	EXPECT_INT_EQ(tok_table_count(a.t), 100);
	EXPECT_INT_EQ(tok_table_check(a.t), 0);
	tbl_free(&a);
	/* A token twice: the ones before it stay. */
	(void)tbl_new(&a, 600);
	i = 0;
	EXPECT_INT_EQ(tok_add_all(a.t, twice_next, &i), WP_EEXIST);
	EXPECT_INT_EQ(tok_table_count(a.t), 2);
	EXPECT_INT_EQ(tok_table_check(a.t), 0);
	tbl_free(&a);
}

/* Faulting rows in changes none of them, and stays inside the table. */
TEST(t_prefault)
{
	struct mixed_src src = { 0, 300 };
	struct tok_info a, b;
	struct tbl t;
	uint32_t iter = 0;
	int rc;

	(void)tbl_new(&t, 500);
	EXPECT_INT_EQ(tok_add_all(t.t, mixed_next, &src), 0);
	rc = tok_table_prefault(t.t, 0, 500);
	EXPECT(rc == 0 || rc == WP_ESYS); /* WP_ESYS: before Linux 5.14 */
	EXPECT_INT_EQ(tok_table_prefault(t.t, 400, 1000), rc); /* cut */
	EXPECT_INT_EQ(tok_table_prefault(t.t, 500, 1), 0);     /* past */
	while (tok_next(t.t, &iter, &a) == 0) {
		mixed(&b, a.row); /* a fresh table fills rows in order */
		EXPECT_STR_EQ(a.token, b.token);
	}
	EXPECT_INT_EQ(tok_table_check(t.t), 0);
	tbl_free(&t);
}

TEST(t_set)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 8);
	struct tok_info ti;
	int64_t now = T0;

	add(t, "A", TOK_NORMAL, 3, -1);
	ti = get(t, "A");
	ti.type = TOK_SUPER;
	ti.heavy_remaining = 2;
	ti.ntags = 2;
	(void)util_strlcpy(ti.tags[0], "pool-a", sizeof(ti.tags[0]));
	(void)util_strlcpy(ti.tags[1], "vip", sizeof(ti.tags[1]));
	(void)util_strlcpy(ti.note, "bought 2025-12", sizeof(ti.note));
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), 0);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_NORMAL), 0);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_SUPER), 1);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_SUPER, now, UINT32_MAX, NULL), "A");
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.ntags, 2);
	EXPECT_STR_EQ(ti.tags[1], "vip");
	EXPECT_STR_EQ(ti.note, "bought 2025-12");
	EXPECT_INT_EQ(ti.last_used_ms, now); /* kept by tok_set */
	/* A cooling status without an end comes back at the next pick. */
	ti.status = TOK_ST_COOLING;
	ti.cooldown_until_ms = 0;
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), 0);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_SUPER, now, UINT32_MAX, NULL), "A");
	ti.ntags = TOK_TAGS_MAX + 1;
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen, &ti), WP_EINVAL);
	ti.ntags = 0;
	EXPECT_INT_EQ(tok_set(t, ti.row, ti.row_gen + 1, &ti), WP_ENOENT);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

/* The admin panel's edits: one section, counters kept, status rules. */
TEST(t_edit)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 8);
	struct tok_lease l;
	struct tok_edit e;
	struct tok_info ti;
	int64_t retry;
	int i;

	add(t, "A", TOK_NORMAL, 5, -1);
	ti = get(t, "A");
	memset(&e, 0, sizeof(e));
	e.set_tags = e.set_note = true;
	e.ntags = 1;
	(void)util_strlcpy(e.tags[0], "vip", sizeof(e.tags[0]));
	(void)util_strlcpy(e.note, "from the panel", sizeof(e.note));
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), 0);
	/* A request charged in between: tok_edit must not undo it. */
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &l, &retry), 0);
	EXPECT_INT_EQ(tok_charge(t, &l, 1, T0), 0);
	e.set_tags = false;
	(void)util_strlcpy(e.note, "again", sizeof(e.note));
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), 0);
	ti = get(t, "A");
	EXPECT_INT_EQ(ti.remaining, 4);
	EXPECT_INT_EQ(ti.inflight, 1);
	EXPECT_INT_EQ(ti.ntags, 1);
	EXPECT_STR_EQ(ti.tags[0], "vip");
	EXPECT_STR_EQ(ti.note, "again");
	tok_release(t, &l);

	/* Disabled: never picked; enabled: back. */
	memset(&e, 0, sizeof(e));
	e.set_status = true;
	e.status = TOK_ST_DISABLED;
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), 0);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, T0, UINT32_MAX, NULL), "");
	e.status = TOK_ST_ACTIVE;
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), 0);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, T0, UINT32_MAX, NULL), "A");

	/* Expired by 401s, then enabled: three more 401s to expire again. */
	for (i = 0; i < TOK_FAIL_EXPIRE; i++)
		(void)tok_fail(t, ti.row, ti.row_gen, 401, "401", T0);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_EXPIRED);
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), 0);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_ACTIVE);
	(void)tok_fail(t, ti.row, ti.row_gen, 401, "401", T0);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_ACTIVE);

	/* Enabling a cooling token leaves it cooling. */
	(void)tok_cool(t, ti.row, ti.row_gen, T0 + 60000, "429", T0);
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), 0);
	EXPECT_INT_EQ(get(t, "A").status, TOK_ST_COOLING);

	/* Bad input and stale ids. */
	e.status = TOK_ST_EXPIRED;
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), WP_EINVAL);
	memset(&e, 0, sizeof(e));
	e.set_tags = true;
	e.ntags = TOK_TAGS_MAX + 1;
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen, &e), WP_EINVAL);
	e.ntags = 0;
	EXPECT_INT_EQ(tok_edit(t, ti.row, ti.row_gen + 1, &e), WP_ENOENT);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_remove_row)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 4);
	uint32_t row, gen, row2;

	row = add(t, "A", TOK_NORMAL, -1, -1);
	gen = gen_of(t, "A");
	EXPECT_INT_EQ(tok_remove_row(t, row, gen + 1), WP_ENOENT);
	EXPECT_INT_EQ(tok_remove_row(t, row, gen), 0);
	EXPECT_INT_EQ(tok_table_count(t), 0);
	EXPECT_INT_EQ(tok_remove_row(t, row, gen), WP_ENOENT);
	/* The row is reused with a new generation: the old id stays dead. */
	row2 = add(t, "B", TOK_SUPER, -1, -1);
	EXPECT_INT_EQ(row2, row);
	EXPECT_INT_EQ(tok_remove_row(t, row, gen), WP_ENOENT);
	EXPECT_INT_EQ(tok_table_count(t), 1);
	EXPECT_INT_EQ(tok_remove_row(t, 1000, 1), WP_ENOENT);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_stats)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 1000);
	struct tok_stats st;
	struct tok_info ti;
	char name[16];
	unsigned i;

	/* More rows than one batch, so the walk gives the lock back. */
	for (i = 0; i < 600; i++) {
		(void)snprintf(name, sizeof(name), "n%u", i);
		add(t, name, TOK_NORMAL, i % 3 == 0 ? -1 : 10, -1);
	}
	add(t, "S1", TOK_SUPER, 7, 2);
	add(t, "S2", TOK_SUPER, 0, 0); /* both spent: cooling */
	ti = get(t, "n1");
	(void)tok_fail(t, ti.row, ti.row_gen, 401, "x", T0);
	(void)tok_fail(t, ti.row, ti.row_gen, 401, "x", T0);
	(void)tok_fail(t, ti.row, ti.row_gen, 401, "x", T0);
	EXPECT_INT_EQ(tok_table_stats(t, &st), 0);
	EXPECT_INT_EQ(st.by_status[TOK_NORMAL][TOK_ST_ACTIVE], 599);
	EXPECT_INT_EQ(st.by_status[TOK_NORMAL][TOK_ST_EXPIRED], 1);
	EXPECT_INT_EQ(st.by_status[TOK_SUPER][TOK_ST_ACTIVE], 1);
	EXPECT_INT_EQ(st.by_status[TOK_SUPER][TOK_ST_COOLING], 1);
	EXPECT_INT_EQ(st.unknown[TOK_NORMAL], 200);
	EXPECT_INT_EQ(st.remaining[TOK_NORMAL], 399 * 10);
	EXPECT_INT_EQ(st.remaining[TOK_SUPER], 7);
	EXPECT_INT_EQ(st.exhausted[TOK_SUPER], 1);
	EXPECT_INT_EQ(st.heavy_remaining, 2);
	EXPECT_INT_EQ(st.heavy_unknown, 0);
	tbl_free(&b);
}

/* Random operations; every invariant holds after each. */
TEST(t_random)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 64);
	struct tok_lease leases[32];
	unsigned nleases = 0, i, op, bad = 0;
	struct tok_info ti;
	char name[32];
	int64_t now = T0, retry;
	uint32_t row, gen;

	srandom(42);
	for (i = 0; i < 20000; i++) {
		now += random() % 5000;
		(void)snprintf(name, sizeof(name), "t%ld", random() % 96);
		op = (unsigned)(random() % 10);
		switch (op) {
		case 0:
			info(&ti, name,
			    random() % 3 == 0 ? TOK_SUPER : TOK_NORMAL,
			    (int32_t)(random() % 12) - 1,
			    (int32_t)(random() % 6) - 1);
			(void)tok_add(t, &ti, &row); /* may exist or be full */
			break;
		case 1:
			(void)tok_remove(t, name); /* may be gone */
			break;
		case 2:
		case 3:
		case 4:
			if (nleases < ARRAY_LEN(leases) &&
			    tok_pick(t,
			        random() % 4 == 0 ? CFG_POOL_SUPER
			                          : CFG_POOL_NORMAL,
			        now,
			        random() % 2 ? UINT32_MAX
			                     : (uint32_t)(random() % 64),
			        &leases[nleases], &retry) == 0)
				nleases++;
			break;
		case 5:
			if (nleases > 0) {
				struct tok_lease *l =
				    &leases[random() % nleases];

				(void)tok_charge(
				    t, l, random() % 2 ? 1 : 4, now);
				tok_release(t, l);
				*l = leases[--nleases];
			}
			break;
		case 6:
			if (tok_find(t, name, &row, &gen) == 0)
				(void)tok_set_quota(t, row, gen,
				    random() % 2 == 0,
				    (int32_t)(random() % 5) - 1, random() % 100,
				    now);
			break;
		case 7:
			if (tok_find(t, name, &row, &gen) == 0)
				(void)tok_cool(t, row, gen,
				    now + random() % 100000, "429", now);
			break;
		case 8:
			if (tok_find(t, name, &row, &gen) == 0)
				(void)tok_fail(t, row, gen,
				    random() % 2 ? 401 : 500, "x", now);
			break;
		default:
			if (tok_find(t, name, &row, &gen) == 0 &&
			    tok_get(t, row, gen, &ti) == 0) {
				ti.status = (uint8_t)(random() % TOK_NSTATUS);
				ti.type = (uint8_t)(random() % TOK_NTYPES);
				ti.remaining = (int32_t)(random() % 4) - 1;
				(void)tok_set(t, row, gen, &ti);
			}
			break;
		}
		if (tok_table_check(t) != 0 && bad++ == 0)
			TH_FAILED(
			    "invariant broken after op %u at step %u", op, i);
	}
	tbl_free(&b);
}

/*
 * The pick order as documented, computed from a copy of every row: what
 * the heaps must agree with. Cooldowns that ended are swept first, as
 * tok_pick does (at most TOK_SWEEP per type, earliest first).
 */
#define M_ROWS  160
#define M_SWEEP 32 /* TOK_SWEEP_MAX */

struct model {
	struct tok_info ti[M_ROWS];
	unsigned n;
};

static void
m_load(struct tok_table *t, struct model *m)
{
	uint32_t iter = 0;

	m->n = 0;
	while (m->n < M_ROWS && tok_next(t, &iter, &m->ti[m->n]) == 0)
		m->n++;
}

static bool
m_live(const struct tok_info *ti)
{
	return ti->status == TOK_ST_ACTIVE || ti->status == TOK_ST_COOLING;
}

/* End the first M_SWEEP cooldowns of this type that are over by now. */
static void
m_sweep(struct model *m, enum tok_type type, int64_t now)
{
	struct tok_info *ti, *first;
	unsigned i, n;

	for (n = 0; n < M_SWEEP; n++) {
		first = NULL;
		for (i = 0; i < m->n; i++) {
			ti = &m->ti[i];
			if (ti->type != type || !m_live(ti) ||
			    ti->cooldown_until_ms == 0 ||
			    ti->cooldown_until_ms > now)
				continue;
			if (first == NULL ||
			    ti->cooldown_until_ms < first->cooldown_until_ms ||
			    (ti->cooldown_until_ms ==
			            first->cooldown_until_ms &&
			        ti->row < first->row))
				first = ti;
		}
		if (first == NULL)
			return;
		if (first->status == TOK_ST_COOLING)
			first->status = TOK_ST_ACTIVE;
		if (first->remaining == 0)
			first->remaining = -1;
		if (first->heavy_remaining == 0)
			first->heavy_remaining = -1;
		first->cooldown_until_ms = 0;
	}
}

/* Unknown first, then most quota not in flight, then LRU, then row. */
static bool
m_before(const struct tok_info *a, const struct tok_info *b, bool heavy)
{
	int32_t va = heavy ? a->heavy_remaining : a->remaining;
	int32_t vb = heavy ? b->heavy_remaining : b->remaining;
	int64_t ka = (int64_t)va - a->inflight, kb = (int64_t)vb - b->inflight;

	if ((va < 0) != (vb < 0))
		return va < 0;
	if (va >= 0 && ka != kb)
		return ka > kb;
	if (a->last_used_ms != b->last_used_ms)
		return a->last_used_ms < b->last_used_ms;
	return a->row < b->row;
}

/* The best usable row of a type other than exclude, or NULL. */
static const struct tok_info *
m_best(const struct model *m, enum tok_type type, bool heavy, uint32_t exclude)
{
	const struct tok_info *ti, *best = NULL;
	unsigned i;

	for (i = 0; i < m->n; i++) {
		ti = &m->ti[i];
		if (ti->type != type || ti->status != TOK_ST_ACTIVE ||
		    ti->row == exclude ||
		    (heavy ? ti->heavy_remaining : ti->remaining) == 0)
			continue;
		if (best == NULL || m_before(ti, best, heavy))
			best = ti;
	}
	return best;
}

/*
 * What tok_pick should answer: 0 and the row, or WP_ECOOLING and the
 * earliest cooldown end, or WP_ENOTOKEN.
 */
static int
m_pick(struct model *m, enum cfg_pool pool, int64_t now, uint32_t exclude,
    uint32_t *row, int64_t *retry)
{
	static const enum tok_type normal[] = { TOK_NORMAL, TOK_SUPER };
	static const enum tok_type super[] = { TOK_SUPER };
	const enum tok_type *order = pool == CFG_POOL_SUPER ? super : normal;
	unsigned norder = pool == CFG_POOL_SUPER ? 1 : 2, i, k;
	bool heavy = pool == CFG_POOL_SUPER;
	const struct tok_info *best = NULL;
	int rc = WP_ENOTOKEN;

	for (i = 0; i < norder; i++)
		m_sweep(m, order[i], now);
	for (i = 0; i < norder && best == NULL; i++)
		best = m_best(m, order[i], heavy, exclude);
	for (i = 0; i < norder && best == NULL; i++)
		best = m_best(m, order[i], heavy, UINT32_MAX);
	if (best != NULL) {
		*row = best->row;
		return 0;
	}
	for (i = 0; i < norder; i++) {
		for (k = 0; k < m->n; k++) {
			if (m->ti[k].type != order[i] || !m_live(&m->ti[k]) ||
			    m->ti[k].cooldown_until_ms == 0)
				continue;
			if (rc == WP_ENOTOKEN ||
			    m->ti[k].cooldown_until_ms < *retry)
				*retry = m->ti[k].cooldown_until_ms;
			rc = WP_ECOOLING;
		}
	}
	return rc;
}

/* One random change to the table, other than a pick. */
static void
m_poke(struct tok_table *t, struct tok_lease *leases, unsigned *nleases,
    int64_t now)
{
	struct tok_info ti;
	uint32_t row, gen;
	char name[32];
	long op = random() % 9;

	(void)snprintf(name, sizeof(name), "m%ld", random() % (M_ROWS + 40));
	if (op == 0) {
		info(&ti, name, random() % 3 == 0 ? TOK_SUPER : TOK_NORMAL,
		    (int32_t)(random() % 8) - 1, (int32_t)(random() % 5) - 1);
		ti.last_used_ms = now - random() % 4;
		(void)tok_add(t, &ti, &row); /* may exist or be full */
		return;
	}
	if (op == 1 && *nleases > 0) {
		struct tok_lease *l = &leases[random() % *nleases];

		if (random() % 2)
			(void)tok_charge(t, l, (int32_t)(random() % 3), now);
		tok_release(t, l);
		*l = leases[--*nleases];
		return;
	}
	if (op == 2) {
		(void)tok_remove(t, name); /* may be gone */
		return;
	}
	if (tok_find(t, name, &row, &gen) != 0)
		return;
	if (op == 3 || op == 4)
		(void)tok_set_quota(t, row, gen, random() % 3 == 0,
		    (int32_t)(random() % 6) - 1, random() % 20, now);
	else if (op == 5)
		(void)tok_cool(t, row, gen, now + random() % 30000, "429", now);
	else if (op == 6)
		(void)tok_fail(
		    t, row, gen, random() % 4 ? 500 : 401, "fail", now);
	else if (tok_get(t, row, gen, &ti) == 0) {
		ti.status = (uint8_t)(random() % TOK_NSTATUS);
		ti.type = (uint8_t)(random() % TOK_NTYPES);
		ti.remaining = (int32_t)(random() % 6) - 1;
		ti.cooldown_until_ms = random() % 2 ? now + random() % 9000 : 0;
		(void)tok_set(t, row, gen, &ti);
	}
}

/*
 * Heap order after charges, releases, quota changes, cooldowns (set,
 * ended, 429), failures and edits: every pick is the one the documented
 * order gives, in heaps several levels deep, with many equal keys.
 */
TEST(t_pick_model)
{
	static struct model m;
	struct tbl b;
	struct tok_table *t = tbl_new(&b, M_ROWS);
	struct tok_lease leases[48], l;
	unsigned nleases = 0, i, bad = 0;
	int64_t now = T0, retry, want_retry = 0;
	uint32_t want_row = UINT32_MAX, exclude;
	enum cfg_pool pool;
	int rc, want;

	srandom(7);
	for (i = 0; i < 3000; i++) {
		now += random() % 3 == 0 ? random() % 4000 : 0; /* ties */
		if (random() % 3 != 0) {
			m_poke(t, leases, &nleases, now);
			continue;
		}
		pool = random() % 4 == 0 ? CFG_POOL_SUPER : CFG_POOL_NORMAL;
		exclude =
		    random() % 2 ? UINT32_MAX : (uint32_t)(random() % M_ROWS);
		m_load(t, &m);
		want = m_pick(&m, pool, now, exclude, &want_row, &want_retry);
		retry = 0;
		rc = tok_pick(t, pool, now, exclude, &l, &retry);
		if (rc != want || (rc == 0 && l.row != want_row) ||
		    (rc == WP_ECOOLING && retry != want_retry)) {
			if (bad++ == 0)
				TH_FAILED("pick %u: rc %d row %u, expected "
				          "rc %d row %u",
				    i, rc, rc == 0 ? l.row : 0, want,
				    want == 0 ? want_row : 0);
		}
		if (rc == 0 && nleases < ARRAY_LEN(leases))
			leases[nleases++] = l;
		else if (rc == 0)
			tok_release(t, &l);
		if (tok_table_check(t) != 0 && bad++ == 0)
			TH_FAILED("invariant broken at step %u", i);
	}
	EXPECT_INT_EQ(bad, 0);
	tbl_free(&b);
}

/* Keys at the ends of their ranges still sort as documented. */
TEST(t_pick_extremes)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l1, l2;
	struct tok_info ti;
	int64_t retry = 0;
	uint32_t row;

	/* Last use: any int64, the earliest first. */
	info(&ti, "late", TOK_NORMAL, 7, -1);
	ti.last_used_ms = INT64_MAX;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	info(&ti, "neg", TOK_NORMAL, 7, -1);
	ti.last_used_ms = -5;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	info(&ti, "min", TOK_NORMAL, 7, -1);
	ti.last_used_ms = INT64_MIN;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, T0, UINT32_MAX, NULL), "min");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, T0 + 1, UINT32_MAX, NULL), "neg");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, T0 + 2, UINT32_MAX, NULL), "min");
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, T0 + 3, UINT32_MAX, NULL), "neg");
	EXPECT_INT_EQ(tok_remove(t, "late"), 0);
	EXPECT_INT_EQ(tok_remove(t, "neg"), 0);
	EXPECT_INT_EQ(tok_remove(t, "min"), 0);

	/* Quotas: unknown, then the largest, less what is in flight. */
	add(t, "max", TOK_NORMAL, INT32_MAX, -1);
	add(t, "max-1", TOK_NORMAL, INT32_MAX - 1, -1);
	add(t, "one", TOK_NORMAL, 1, -1);
	add(t, "unknown", TOK_NORMAL, -1, -1);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, T0, UINT32_MAX, NULL), "unknown");
	row = get(t, "unknown").row;
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0 + 1, row, &l1, &retry), 0);
	EXPECT_STR_EQ(l1.token, "max");
	/* max is at INT32_MAX - 1 not in flight, and used later: max-1. */
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0 + 2, row, &l2, &retry), 0);
	EXPECT_STR_EQ(l2.token, "max-1");
	tok_release(t, &l1);
	tok_release(t, &l2);
	EXPECT_STR_EQ(pick_at(t, CFG_POOL_NORMAL, T0 + 3, row, NULL), "max");

	/* Cooldown ends: any positive int64, the earliest first. */
	info(&ti, "never", TOK_NORMAL, 0, -1);
	ti.status = TOK_ST_COOLING;
	ti.cooldown_until_ms = INT64_MAX;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	info(&ti, "soon", TOK_NORMAL, 0, -1);
	ti.status = TOK_ST_COOLING;
	ti.cooldown_until_ms = T0 + 10;
	EXPECT_INT_EQ(tok_add(t, &ti, &row), 0);
	EXPECT_INT_EQ(tok_remove(t, "max"), 0);
	EXPECT_INT_EQ(tok_remove(t, "max-1"), 0);
	EXPECT_INT_EQ(tok_remove(t, "one"), 0);
	EXPECT_INT_EQ(tok_remove(t, "unknown"), 0);
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &l1, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, T0 + 10);
	EXPECT_STR_EQ(
	    pick_at(t, CFG_POOL_NORMAL, T0 + 10, UINT32_MAX, NULL), "soon");
	EXPECT_INT_EQ(tok_remove(t, "soon"), 0);
	EXPECT_INT_EQ(tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &l1, &retry),
	    WP_ECOOLING);
	EXPECT_INT_EQ(retry, INT64_MAX);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

/* A table with some of everything: heaps of every kind, a free list. */
static void
crash_fill(struct tok_table *t, struct tok_lease *leases, unsigned n)
{
	struct tok_info ti;
	uint32_t row;
	int64_t retry;
	char name[32];
	unsigned i;

	for (i = 0; i < 120; i++) {
		(void)snprintf(name, sizeof(name), "crash-%u", i);
		info(&ti, name, i % 3 == 0 ? TOK_SUPER : TOK_NORMAL,
		    (int32_t)(i % 9) - 1, (int32_t)(i % 4) - 1);
		ti.last_used_ms = T0 - (int64_t)(i % 5);
		if (i % 17 == 0) {
			ti.status = TOK_ST_COOLING;
			ti.cooldown_until_ms = T0 + (int64_t)i * 100;
		}
		if (i % 23 == 0)
			ti.status = TOK_ST_DISABLED;
		(void)tok_add(t, &ti, &row);
	}
	for (i = 0; i < 120; i += 11) {
		(void)snprintf(name, sizeof(name), "crash-%u", i);
		(void)tok_remove(t, name);
	}
	for (i = 0; i < n; i++) {
		(void)tok_pick(t, i % 3 ? CFG_POOL_NORMAL : CFG_POOL_SUPER,
		    T0 + i, UINT32_MAX, &leases[i], &retry);
		if (i % 2)
			(void)tok_charge(t, &leases[i], 3, T0 + i);
	}
	(void)tok_find(t, "crash-5", &row, &ti.row_gen);
	(void)tok_cool(t, row, ti.row_gen, T0 + 5000, "429", T0);
}

static void
crash_child(struct tok_table *t)
{
	pid_t pid = fork();
	int st = -1;

	if (pid == 0) {
		if (lock_take(tok_table_lock(t), NULL, NULL) != 0)
			_exit(3);
		tok_table_wreck(t);
		_exit(0); /* holding the lock, mid-update */
	}
	EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid && st == 0);
}

/*
 * A writer dies mid-update: the repair rebuilds heaps whose every pick,
 * charge, release and sweep then matches a twin table that never broke.
 */
TEST(t_repair_order)
{
	struct tok_lease la[24], lb[24], xa, xb;
	struct tbl a, b;
	struct tok_table *ta = tbl_new(&a, 128), *tb = tbl_new(&b, 128);
	struct tok_info ia, ib;
	uint32_t ia_iter = 0, ib_iter = 0;
	int64_t now, ra = 0, rb = 0;
	unsigned i, bad = 0;
	int rca, rcb;

	memset(la, 0, sizeof(la)); /* a pick that failed leaves no lease */
	memset(lb, 0, sizeof(lb));
	crash_fill(ta, la, ARRAY_LEN(la));
	crash_fill(tb, lb, ARRAY_LEN(lb));
	crash_child(ta); /* repaired by the next taker of the lock */
	for (i = 0; i < 400; i++) {
		now = T0 + 100 + (int64_t)i * 40; /* cooldowns end meanwhile */
		rca = tok_pick(ta, i % 4 ? CFG_POOL_NORMAL : CFG_POOL_SUPER,
		    now, i % 5 ? UINT32_MAX : i % 128, &xa, &ra);
		rcb = tok_pick(tb, i % 4 ? CFG_POOL_NORMAL : CFG_POOL_SUPER,
		    now, i % 5 ? UINT32_MAX : i % 128, &xb, &rb);
		if ((rca != rcb || (rca == 0 && xa.row != xb.row) ||
		        (rca == WP_ECOOLING && ra != rb)) &&
		    bad++ == 0)
			TH_FAILED("pick %u differs: %d %u, %d %u", i, rca,
			    xa.row, rcb, xb.row);
		if (rca == 0 && i % 3 == 0)
			(void)tok_charge(ta, &xa, 1, now);
		if (rcb == 0 && i % 3 == 0)
			(void)tok_charge(tb, &xb, 1, now);
		if (rca == 0 && i % 2 == 0)
			tok_release(ta, &xa);
		if (rcb == 0 && i % 2 == 0)
			tok_release(tb, &xb);
		if (i < ARRAY_LEN(la)) {
			tok_release(ta, &la[i]);
			tok_release(tb, &lb[i]);
		}
	}
	EXPECT_INT_EQ(bad, 0);
	EXPECT_INT_EQ(atomic_load(&tok_table_lock(ta)->recovered), 1);
	EXPECT_INT_EQ(tok_table_check(ta), 0);
	EXPECT_INT_EQ(tok_table_count(ta), tok_table_count(tb));
	/* And the rows themselves are the twin's. */
	while (tok_next(ta, &ia_iter, &ia) == 0) {
		if (tok_next(tb, &ib_iter, &ib) != 0 ||
		    memcmp(&ia, &ib, sizeof(ia)) != 0) {
			TH_FAILED("row %u differs", ia.row);
			break;
		}
	}
	EXPECT_INT_EQ(tok_next(tb, &ib_iter, &ib), WP_ENOENT);
	tbl_free(&a);
	tbl_free(&b);
}

/* Not a benchmark: shows that a pick does not grow with the table. */
static void
scale(uint32_t n)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, n);
	struct tok_lease l;
	char name[32];
	uint64_t t0, dt;
	int64_t retry;
	uint32_t i, row, npicks = 100000, ok = 0;

	for (i = 0; i < n; i++) {
		(void)snprintf(name, sizeof(name), "scale-%u", i);
		row = add(t, name, i % 10 == 0 ? TOK_SUPER : TOK_NORMAL,
		    i % 7 == 0 ? -1 : (int32_t)(i % 1000) + 1, -1);
		if (row == UINT32_MAX)
			break;
	}
	EXPECT_INT_EQ(tok_table_count(t), n);
	t0 = util_mono_ns();
	for (i = 0; i < npicks; i++) {
		if (tok_pick(t, CFG_POOL_NORMAL, T0 + i, UINT32_MAX, &l,
		        &retry) == 0)
			ok++;
	}
	dt = util_mono_ns() - t0;
	EXPECT_INT_EQ(ok, npicks);
	printf("  %u tokens: %u picks, %.0f ns per pick\n", n, npicks,
	    (double)dt / npicks);
	t0 = util_mono_ns();
	for (i = 0; i < npicks; i++) {
		if (tok_pick(t, CFG_POOL_NORMAL, T0 + npicks + i, UINT32_MAX,
		        &l, &retry) == 0) {
			(void)tok_charge(t, &l, 1, T0 + npicks + i);
			tok_release(t, &l);
		}
	}
	dt = util_mono_ns() - t0;
	printf("  %u tokens: pick+charge+release, %.0f ns per request\n", n,
	    (double)dt / npicks);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

/* A reason cut inside a UTF-8 sequence is still UTF-8. */
TEST(t_reason_cut)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 4);
	char reason[TOK_REASON_MAX + 8], want[TOK_REASON_MAX + 1];
	uint32_t row = add(t, "R", TOK_NORMAL, 5, -1), gen = 0;

	memset(reason, 'a', TOK_REASON_MAX - 1);
	memcpy(reason + TOK_REASON_MAX - 1, "\xc3\xa9 tail", 8); /* é cut */
	memset(want, 'a', TOK_REASON_MAX - 1);
	memcpy(want + TOK_REASON_MAX - 1, "?", 2);
	EXPECT_INT_EQ(tok_find(t, "R", &row, &gen), 0);
	EXPECT_INT_EQ(tok_fail(t, row, gen, 500, reason, T0), 0);
	EXPECT_STR_EQ(get(t, "R").last_failure_reason, want);
	tbl_free(&b);
}

/* The rate-limits endpoint is asked once per window, not per answer. */
TEST(t_sync_due)
{
	struct tbl b;
	struct tok_table *t = tbl_new(&b, 16);
	struct tok_lease l;
	int64_t mono = 5000, retry;

	add(t, "U", TOK_SUPER, -1, 50);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &l, &retry), 0);
	/* Unknown: the first answer asks, the others within a second not. */
	EXPECT(tok_sync_due(t, &l, mono));
	EXPECT(!tok_sync_due(t, &l, mono));
	EXPECT(!tok_sync_due(t, &l, mono + TOK_SYNC_SOON_MS - 1));
	EXPECT(tok_sync_due(t, &l, mono + TOK_SYNC_SOON_MS));
	mono += TOK_SYNC_SOON_MS;
	/* Known and plenty: once a TOK_SYNC_MS. */
	EXPECT_INT_EQ(tok_set_quota(t, l.row, l.row_gen, false, 40, 0, T0), 0);
	EXPECT(!tok_sync_due(t, &l, mono + TOK_SYNC_SOON_MS));
	EXPECT(!tok_sync_due(t, &l, mono + TOK_SYNC_MS - 1));
	EXPECT(tok_sync_due(t, &l, mono + TOK_SYNC_MS));
	mono += TOK_SYNC_MS;
	/* Low: soon again. */
	EXPECT_INT_EQ(
	    tok_set_quota(t, l.row, l.row_gen, false, TOK_SYNC_LOW, 0, T0), 0);
	EXPECT(tok_sync_due(t, &l, mono + TOK_SYNC_SOON_MS));
	/* The heavy quota has its own stamp. */
	l.heavy = 1;
	EXPECT(tok_sync_due(t, &l, mono + TOK_SYNC_SOON_MS));
	EXPECT(!tok_sync_due(t, &l, mono + TOK_SYNC_SOON_MS + 1));
	/* A removed token is never due; its row reused starts afresh. */
	tok_release(t, &l);
	EXPECT_INT_EQ(tok_remove(t, "U"), 0);
	EXPECT(!tok_sync_due(t, &l, mono + TOK_SYNC_MS * 10));
	add(t, "V", TOK_NORMAL, 30, -1);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &l, &retry), 0);
	EXPECT(tok_sync_due(t, &l, 1));
	tok_release(t, &l);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	tbl_free(&b);
}

TEST(t_scale)
{
	scale(100);
	scale(10000);
	scale(100000);
}

int
main(void)
{
	RUN(t_add_find_remove);
	RUN(t_order);
	RUN(t_pools);
	RUN(t_exclude);
	RUN(t_charge_and_cool);
	RUN(t_super_heavy_quota);
	RUN(t_cooling_vs_notoken);
	RUN(t_fail_expire);
	RUN(t_charge_clears_failure);
	RUN(t_full);
	RUN(t_add_all);
	RUN(t_prefault);
	RUN(t_set);
	RUN(t_edit);
	RUN(t_remove_row);
	RUN(t_stats);
	RUN(t_random);
	RUN(t_pick_model);
	RUN(t_pick_extremes);
	RUN(t_repair_order);
	RUN(t_sync_due);
	RUN(t_reason_cut);
	RUN(t_scale);
	TH_DONE();
}
