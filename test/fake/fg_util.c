/*
 * fakegrok helpers: capped growable buffers, JSON string escaping, ids,
 * timestamps and base64. Pure functions, safe from any thread; the random
 * ids use a per-thread generator.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "err.h"
#include "util.h"

#include "fg.h"

int
fg_buf_add_jesc(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	char esc[6];
	int rc;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		size_t elen = 2;

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		if ((rc = buf_append(b, s + run, i - run)) != 0)
			return rc;
		run = i + 1;
		esc[0] = '\\';
		switch (ch) {
		case '"':
		case '\\':
			esc[1] = (char)ch;
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 0xf];
			elen = 6;
			break;
		}
		if ((rc = buf_append(b, esc, elen)) != 0)
			return rc;
	}
	return buf_append(b, s + run, n - run);
}

int
fg_buf_add_jstr(struct buf *b, const char *s, size_t n)
{
	int rc;

	if ((rc = buf_append(b, "\"", 1)) != 0 ||
	    (rc = fg_buf_add_jesc(b, s, n)) != 0)
		return rc;
	return buf_append(b, "\"", 1);
}

/*
 * Per-thread xorshift state: ids need to be unique, not secret, and a
 * syscall per id would cost more than the rest of a short request.
 */
static _Thread_local uint64_t fg_rng;

static uint64_t
fg_rand64(void)
{
	uint64_t x;

	if (fg_rng == 0) {
		if (getrandom(&fg_rng, sizeof(fg_rng), 0) != sizeof(fg_rng))
			fg_rng = fg_mono_ns() ^ (uint64_t)(uintptr_t)&x;
		fg_rng |= 1;
	}
	x = fg_rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fg_rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void
fg_uuid_fmt(uint64_t hi, uint64_t lo, char out[37])
{
	/* Version 4, variant 10xx. */
	hi = (hi & ~0xf000ull) | 0x4000ull;
	lo = (lo & ~(0xc000ull << 48)) | (0x8000ull << 48);
	(void)snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx",
	    (unsigned)(hi >> 32), (unsigned)((hi >> 16) & 0xffff),
	    (unsigned)(hi & 0xffff), (unsigned)(lo >> 48),
	    (unsigned long long)(lo & 0xffffffffffffull));
}

void
fg_uuid(char out[37])
{
	uint64_t hi = fg_rand64();

	fg_uuid_fmt(hi, fg_rand64(), out);
}

void
fg_uuid_from(const char *seed, char out[37])
{
	size_t n = strlen(seed);

	fg_uuid_fmt(fg_hash(seed, n, 0x9e3779b97f4a7c15ull),
	    fg_hash(seed, n, 0xc2b2ae3d27d4eb4full), out);
}

uint64_t
fg_hash(const char *s, size_t n, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33; /* FNV-1a, then a final mix for the low bits */
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

uint64_t
fg_mono_ns(void)
{
	return util_mono_ns();
}

void
fg_iso_time(char out[40])
{
	struct timespec ts;
	struct tm tm;
	char tmp[128]; /* the compiler cannot see that years have 4 digits */

	(void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail here */
	(void)gmtime_r(&ts.tv_sec, &tm);
	(void)snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000);
	(void)util_strlcpy(out, tmp, 40);
}

static int
fg_b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
fg_b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	size_t i, o = 0, pad = 0;

	*outlen = 0;
	if (n % 4 != 0)
		return WP_EINVAL;
	if (n > 0 && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	for (i = 0; i < n; i += 4) {
		int v[4], k;
		uint32_t w = 0;
		size_t keep = 3;

		for (k = 0; k < 4; k++) {
			bool last = i + 4 == n;

			if (last && s[i + (size_t)k] == '=' &&
			    k >= 4 - (int)pad)
				v[k] = 0;
			else if ((v[k] = fg_b64_val(s[i + (size_t)k])) < 0)
				return WP_EINVAL;
			w = w << 6 | (uint32_t)v[k];
		}
		if (i + 4 == n)
			keep = 3 - pad;
		out[o++] = (unsigned char)(w >> 16);
		if (keep > 1)
			out[o++] = (unsigned char)(w >> 8);
		if (keep > 2)
			out[o++] = (unsigned char)w;
	}
	*outlen = o;
	return 0;
}
