/*
 * wptok: the cost of choosing a token, as the pool grows. For each size
 * on the command line it lays out a token table of that many ssoNormal
 * tokens in anonymous shared memory (as the master does), then times
 * what a chat does with it: tok_pick, tok_charge (the answer began) and
 * tok_release (it ended), with known quotas so the heaps really move.
 *
 *   wptok [-i OPS] SIZE...
 *
 * Prints one JSON object: per size, the median and p99 over batches of
 * 1,000 operations of the time of one pick + charge (each timed on its
 * own, so two clock reads are in it, ~40 ns), and the median of pick +
 * charge + release timed per batch, in µs.
 *
 * The sizes take turns, a batch each (after 100 untimed operations on
 * the same table): this VM's speed switches between two levels every
 * few seconds (test/bench/README.md), and sizes timed one after the
 * other would compare the two levels as often as the two sizes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "tok.h"
#include "util.h"

#define WT_BATCH 1000

static int
wt_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
wt_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A table of n tokens with known, large quotas; exits on failure. */
static struct tok_table *
wt_table(uint32_t n, void **mem, size_t *size)
{
	struct tok_table *t;
	struct tok_info ti;
	uint32_t i, row;
	int rc;

	*size = tok_table_size(n);
	*mem = mmap(NULL, *size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (*mem == MAP_FAILED || tok_table_init(*mem, n, &t) != 0) {
		(void)fprintf(stderr, "wptok: no table of %u\n", n);
		exit(2);
	}
	for (i = 0; i < n; i++) {
		memset(&ti, 0, sizeof(ti));
		(void)snprintf(ti.token, sizeof(ti.token),
		    "bench-token-%08u-abcdefghijklmnopqrstuvwxyz0123456789", i);
		ti.type = TOK_NORMAL;
		ti.status = TOK_ST_ACTIVE;
		ti.remaining = 1000000 + (int32_t)(i % 97);
		ti.heavy_remaining = -1;
		ti.created_ms = 1700000000000LL;
		if ((rc = tok_add(t, &ti, &row)) != 0) {
			(void)fprintf(
			    stderr, "wptok: add: %s\n", wp_strerror(rc));
			exit(2);
		}
	}
	return t;
}

#define WT_WARM 100 /* untimed operations before each batch */

/*
 * One batch on t: returns µs per op of pick + charge alone (the release
 * is outside the clock) and, in *all, with the release.
 */
static double
wt_batch(struct tok_table *t, double *all)
{
	struct tok_lease lease;
	int64_t now = util_now_ms(), retry;
	double t0 = 0, t1, in = 0;
	long i;
	int rc;

	for (i = -WT_WARM; i < WT_BATCH; i++) {
		if (i == 0)
			t0 = wt_ns();
		t1 = wt_ns();
		rc = tok_pick(
		    t, CFG_POOL_NORMAL, now, UINT32_MAX, &lease, &retry);
		if (rc != 0) {
			(void)fprintf(
			    stderr, "wptok: pick: %s\n", wp_strerror(rc));
			exit(2);
		}
		(void)tok_charge(t, &lease, 1, now);
		if (i >= 0)
			in += wt_ns() - t1;
		tok_release(t, &lease);
	}
	*all = (wt_ns() - t0) / WT_BATCH / 1000.0;
	return in / WT_BATCH / 1000.0;
}

int
main(int argc, char **argv)
{
	long ops = 200000, nb, b;
	struct tok_table *t[16];
	double *pc[16], *all[16];
	void *mem[16];
	size_t size[16];
	int64_t v;
	int ch, i, ns;

	while ((ch = getopt(argc, argv, "i:")) != -1) {
		if (ch != 'i') {
			(void)fprintf(
			    stderr, "usage: wptok [-i ops] size...\n");
			return 2;
		}
		if (util_parse_i64(optarg, 1, INT64_MAX / 2, &v) != 0) {
			(void)fprintf(stderr,
			    "wptok: -i %s: a positive number\n", optarg);
			return 2;
		}
		ops = (long)v;
	}
	nb = ops / WT_BATCH > 0 ? ops / WT_BATCH : 1;
	ns = argc - optind;
	if (ns < 1 || ns > (int)ARRAY_LEN(t)) {
		(void)fprintf(stderr, "wptok: 1 to %zu sizes\n", ARRAY_LEN(t));
		return 2;
	}
	for (i = 0; i < ns; i++) {
		if (util_parse_i64(argv[optind + i], 1, 1000000, &v) != 0) {
			(void)fprintf(stderr,
			    "wptok: %s: a size of 1 to 1000000\n",
			    argv[optind + i]);
			return 2;
		}
		t[i] = wt_table((uint32_t)v, &mem[i], &size[i]);
		if ((pc[i] = calloc((size_t)nb, sizeof(double))) == NULL ||
		    (all[i] = calloc((size_t)nb, sizeof(double))) == NULL)
			return 2;
	}
	for (b = 0; b < nb; b++)
		for (i = 0; i < ns; i++)
			pc[i][b] = wt_batch(t[i], &all[i][b]);
	(void)printf("{");
	for (i = 0; i < ns; i++) {
		if (tok_table_check(t[i]) != 0) {
			(void)fprintf(stderr, "wptok: table broken\n");
			return 1;
		}
		qsort(pc[i], (size_t)nb, sizeof(double), wt_cmp);
		qsort(all[i], (size_t)nb, sizeof(double), wt_cmp);
		(void)printf("%s\"%s\":{\"median_us\":%.3f,\"p99_us\":%.3f,"
		             "\"with_release_us\":%.3f,\"ops\":%ld}",
		    i > 0 ? "," : "", argv[optind + i], pc[i][nb / 2],
		    pc[i][(size_t)((double)nb * 0.99)], all[i][nb / 2],
		    nb * WT_BATCH);
		(void)munmap(mem[i], size[i]);
		free(pc[i]);
		free(all[i]);
	}
	(void)printf("}\n");
	return 0;
}
