/*
 * A tiny unit-test harness. Each t_<module>.c defines tests with TEST()
 * and lists them in main() with RUN(); the binary's last line is
 * "N passed, N failed", and its exit status is 1 if any failed.
 */
#ifndef WP_TH_H
#define WP_TH_H

#include <stdio.h>
#include <string.h>

static int th_pass, th_fail, th_cur_failed;

#define TEST(name) static void name(void)

#define RUN(name)                                                              \
	do {                                                                   \
		th_cur_failed = 0;                                             \
		name();                                                        \
		if (th_cur_failed) {                                           \
			th_fail++;                                             \
			printf("not ok - %s\n", #name);                        \
		} else {                                                       \
			th_pass++;                                             \
			printf("ok - %s\n", #name);                            \
		}                                                              \
	} while (0)

#define TH_FAILED(fmt, ...)                                                    \
	do {                                                                   \
		printf("  %s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__); \
		th_cur_failed = 1;                                             \
	} while (0)

#define EXPECT(e)                                                              \
	do {                                                                   \
		if (!(e))                                                      \
			TH_FAILED("expected %s", #e);                          \
	} while (0)

#define EXPECT_INT_EQ(a, b)                                                    \
	do {                                                                   \
		long long th_a = (long long)(a), th_b = (long long)(b);        \
		if (th_a != th_b)                                              \
			TH_FAILED(                                             \
			    "%s == %lld, expected %lld", #a, th_a, th_b);      \
	} while (0)

#define EXPECT_STR_EQ(a, b)                                                    \
	do {                                                                   \
		const char *th_a = (a), *th_b = (b);                           \
		if (th_a == NULL || th_b == NULL || strcmp(th_a, th_b) != 0)   \
			TH_FAILED("%s == \"%s\", expected \"%s\"", #a,         \
			    th_a ? th_a : "(null)", th_b ? th_b : "(null)");   \
	} while (0)

#define EXPECT_CONTAINS(hay, needle)                                           \
	do {                                                                   \
		const char *th_h = (hay), *th_n = (needle);                    \
		if (th_h == NULL || strstr(th_h, th_n) == NULL)                \
			TH_FAILED("%s == \"%s\", expected to contain \"%s\"",  \
			    #hay, th_h ? th_h : "(null)", th_n);               \
	} while (0)

#define TH_DONE()                                                              \
	do {                                                                   \
		printf("%d passed, %d failed\n", th_pass, th_fail);            \
		return th_fail != 0;                                           \
	} while (0)

#endif
