/*
 * Small helpers for every process (see util.h). No state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "util.h"

void
util_assert_fail(const char *file, int line, const char *expr)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf), "assertion failed: %s:%d: %s\n", file,
	    line, expr);
	if (n > 0)
		(void)util_write_all(2, buf,
		    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	abort();
}

uint64_t
util_mono_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t
util_mono_ms(void)
{
	return (int64_t)(util_mono_ns() / 1000000u);
}

int64_t
util_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return WP_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return WP_EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return WP_ERANGE;
	*out = v;
	return 0;
}

int
util_strlcpy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);

	if (dstlen == 0)
		return WP_ETOOBIG;
	if (n >= dstlen) {
		memcpy(dst, src, dstlen - 1);
		dst[dstlen - 1] = '\0';
		return WP_ETOOBIG;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

void
close_fd(int *fdp)
{
	int saved = errno;

	if (*fdp >= 0)
		(void)close(*fdp); /* nothing useful to do on failure */
	*fdp = -1;
	errno = saved;
}

int
util_ct_streq(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char d = 0;
	size_t i;

	/* Walk b's length whatever a is, so time depends on b only. */
	for (i = 0; i < blen; i++)
		d |= (unsigned char)(a[i < alen ? i : 0] ^ b[i]);
	return d == 0 && alen == blen && alen > 0;
}

int
util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return WP_ESYS;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
util_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *hs;
	size_t hl;
	int64_t p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return WP_EINVAL;
		hs = s + 1;
		hl = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return WP_EINVAL;
		hs = s;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return WP_EINVAL;
	if (util_parse_i64(colon + 1, 0, 65535, &p) != 0)
		return WP_EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int
util_addr_parse(const char *s, uint8_t addr[16])
{
	struct in_addr a4;

	if (inet_pton(AF_INET6, s, addr) == 1)
		return 0;
	if (inet_pton(AF_INET, s, &a4) != 1)
		return WP_EINVAL;
	memset(addr, 0, 10);
	addr[10] = addr[11] = 0xff;
	memcpy(addr + 12, &a4, 4);
	return 0;
}

int
util_cidr_parse(const char *s, struct util_cidr *c)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
	int64_t bits;
	bool v4;

	if (n == 0 || n >= sizeof(host))
		return WP_EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (util_addr_parse(host, c->addr) != 0)
		return WP_EINVAL;
	v4 = strchr(host, ':') == NULL;
	if (slash == NULL)
		bits = v4 ? 32 : 128;
	else if (util_parse_i64(slash + 1, 0, v4 ? 32 : 128, &bits) != 0)
		return WP_EINVAL;
	c->bits = (unsigned)bits + (v4 ? 96u : 0u);
	return 0;
}

int
util_cidr_match(const struct util_cidr *c, const uint8_t addr[16])
{
	unsigned full = c->bits / 8, rest = c->bits % 8;

	if (memcmp(c->addr, addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) ==
	    0;
}

/*
 * Random bytes from a pool filled by one getrandom: ids and the statsig
 * text took ~8 syscalls a request (libsodium asks the kernel for every
 * call). A forked child must never hand out its parent's pool, nor its
 * pid: the atfork handler forgets both in the child.
 */
static struct {
	unsigned char b[512];
	size_t used;
} util_pool = { .used = sizeof(util_pool.b) };
static pid_t util_mypid;

static void
util_fork_child(void)
{
	sodium_memzero(util_pool.b, sizeof(util_pool.b));
	util_pool.used = sizeof(util_pool.b);
	util_mypid = 0;
}

static void
util_atfork_once(void)
{
	static bool done;

	if (!done) {
		(void)pthread_atfork(NULL, NULL, util_fork_child);
		done = true;
	}
}

pid_t
util_pid(void)
{
	if (util_mypid == 0) {
		util_atfork_once();
		util_mypid = getpid();
	}
	return util_mypid;
}

void
util_random(void *out, size_t n)
{
	unsigned char *o = out;
	size_t k;

	util_atfork_once();
	while (n > 0) {
		if (util_pool.used == sizeof(util_pool.b)) {
			randombytes_buf(util_pool.b, sizeof(util_pool.b));
			util_pool.used = 0;
		}
		k = sizeof(util_pool.b) - util_pool.used;
		if (k > n)
			k = n;
		memcpy(o, util_pool.b + util_pool.used, k);
		sodium_memzero(util_pool.b + util_pool.used, k); /* used once */
		util_pool.used += k;
		o += k;
		n -= k;
	}
}

void
util_rand_chars(char *out, size_t n, const char *alphabet)
{
	size_t k = strlen(alphabet), i = 0, j, want;
	unsigned lim = 256 - 256 % (unsigned)k; /* no modulo bias */
	unsigned char r[64];

	/* Bytes a round at a time, with a quarter more for the ones refused. */
	while (i < n) {
		want = n - i + (n - i) / 4 + 1;
		if (want > sizeof(r))
			want = sizeof(r);
		util_random(r, want);
		for (j = 0; j < want && i < n; j++)
			if (r[j] < lim)
				out[i++] = alphabet[r[j] % k];
	}
	out[n] = '\0';
}

size_t
util_utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n > avail)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* a NUL stops here too */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
util_utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n;

	while (*p != '\0') {
		if ((n = util_utf8_seq(p, 4)) == 0) { /* NUL ends it */
			*p++ = '?';
			continue;
		}
		p += n;
	}
}
