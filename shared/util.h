/*
 * Small helpers every process uses: time, number parsing with ranges,
 * bounded string copies, fds, asserts and magic-checked objects.
 */
#ifndef WP_UTIL_H
#define WP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WP_ASSERT(e)                                                           \
	do {                                                                   \
		if (!(e))                                                      \
			util_assert_fail(__FILE__, __LINE__, #e);              \
	} while (0)

#define CHECK_OBJ(p, m) WP_ASSERT((p) != NULL && (p)->magic == (m))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void util_assert_fail(const char *file, int line, const char *expr)
    __attribute__((noreturn));

/* Monotonic and wall clock. */
int64_t util_mono_ms(void);
uint64_t util_mono_ns(void);
int64_t util_now_ms(void);

/*
 * Parse a whole decimal string into [min, max]. Returns 0, WP_EINVAL for
 * junk (including trailing characters) or WP_ERANGE.
 */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Copy src into dst of size dstlen. Returns 0, or WP_ETOOBIG when src does
 * not fit (dst then holds a truncated, terminated copy).
 */
int util_strlcpy(char *dst, const char *src, size_t dstlen);

/* Close *fdp if it is open and set it to -1. Keeps errno. */
void close_fd(int *fdp);

/* Constant-time comparison of two byte strings of possibly unequal length. */
int util_ct_streq(const char *a, size_t alen, const char *b, size_t blen);

/* Write all of buf to fd, retrying on EINTR. Returns 0 or WP_ESYS. */
int util_write_all(int fd, const void *buf, size_t len);

/* An address range: IPv4 is kept mapped into IPv6 (::ffff:a.b.c.d). */
struct util_cidr {
	uint8_t addr[16];
	unsigned bits; /* prefix length over the 128 bits */
};

/* Parse "10.0.0.0/8", "::1", "127.0.0.1". Returns 0 or WP_EINVAL. */
int util_cidr_parse(const char *s, struct util_cidr *c);
/* Whether addr (16 bytes, IPv4 mapped) lies in c. */
int util_cidr_match(const struct util_cidr *c, const uint8_t addr[16]);
/* A numeric address (v4 or v6) into 16 bytes. Returns 0 or WP_EINVAL. */
int util_addr_parse(const char *s, uint8_t addr[16]);

/*
 * Make s valid UTF-8 in place: every byte that does not begin a valid
 * sequence (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF, nothing cut short) becomes '?'. For text that goes into JSON.
 */
void util_utf8_clean(char *s);
/* getpid(), asked of the kernel once per process (locks take it). */
pid_t util_pid(void);
/*
 * n random bytes (ids, not keys: a secret takes randombytes_buf), from a
 * pool refilled 512 bytes at a time; never the same bytes in two
 * processes. Not for threads: each process has one loop.
 */
void util_random(void *out, size_t n);
/* n characters of alphabet (1 to 256 of them), uniform, then a NUL. */
void util_rand_chars(char *out, size_t n, const char *alphabet);
/* Length of the valid UTF-8 sequence at s (avail bytes there), or 0. */
size_t util_utf8_seq(const unsigned char *s, size_t avail);

/* Parse "host:port" (IPv4, [IPv6] or name; port 0 allowed) into parts. */
int util_split_hostport(
    const char *s, char *host, size_t hostlen, uint16_t *port);

#endif
