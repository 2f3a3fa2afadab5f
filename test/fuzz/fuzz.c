/*
 * Helpers of the fuzz targets (see fuzz.h). Test code only: aborts on
 * anything unexpected, since an abort is what libFuzzer reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "util.h"

#include "fuzz.h"

void
fuzz_fail(const char *file, int line, const char *expr)
{
	(void)fprintf(stderr, "fuzz %s: invariant broken: %s:%d: %s\n",
	    fuzz_name, file, line, expr); /* aborting anyway */
	abort();
}

void
fuzz_init(void)
{
	if (sodium_init() < 0)
		fuzz_fail(__FILE__, __LINE__, "sodium_init() >= 0");
}

uint8_t
fuzz_u8(struct fuzz_in *in)
{
	uint8_t v;

	if (in->n == 0)
		return 0;
	v = in->p[0];
	in->p++;
	in->n--;
	return v;
}

uint16_t
fuzz_u16(struct fuzz_in *in)
{
	uint16_t hi = fuzz_u8(in);

	return (uint16_t)(hi << 8 | fuzz_u8(in));
}

uint32_t
fuzz_u32(struct fuzz_in *in)
{
	uint32_t hi = fuzz_u16(in);

	return hi << 16 | fuzz_u16(in);
}

char *
fuzz_dup(const void *p, size_t n)
{
	char *s = malloc(n > 0 ? n : 1);

	FUZZ_CHECK(s != NULL);
	if (n > 0)
		memcpy(s, p, n);
	return s;
}

char *
fuzz_str(struct fuzz_in *in)
{
	const uint8_t *nul = memchr(in->p, '\0', in->n);
	size_t n = nul != NULL ? (size_t)(nul - in->p) : in->n;
	char *s = malloc(n + 1);

	FUZZ_CHECK(s != NULL);
	if (n > 0)
		memcpy(s, in->p, n);
	s[n] = '\0';
	in->p += n;
	in->n -= n;
	if (nul != NULL) {
		in->p++;
		in->n--;
	}
	return s;
}

int
fuzz_memfd(const void *data, size_t len, char *path, size_t pathlen)
{
	int fd, n;

	fd = memfd_create("fuzz-input", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(util_write_all(fd, data, len) == 0);
	n = snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	FUZZ_CHECK(n > 0 && (size_t)n < pathlen);
	return fd;
}

bool
fuzz_utf8_ok(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, need, k;
	unsigned char lo, hi;

	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (u[i] >= 0xc2 && u[i] <= 0xdf)
			need = 1;
		else if (u[i] >= 0xe0 && u[i] <= 0xef)
			need = 2;
		else if (u[i] >= 0xf0 && u[i] <= 0xf4)
			need = 3;
		else
			return false;
		if (u[i] == 0xe0)
			lo = 0xa0;
		else if (u[i] == 0xed)
			hi = 0x9f;
		else if (u[i] == 0xf0)
			lo = 0x90;
		else if (u[i] == 0xf4)
			hi = 0x8f;
		for (k = 1; k <= need; k++) {
			if (i + k >= n || u[i + k] < lo || u[i + k] > hi)
				return false;
			lo = 0x80;
			hi = 0xbf;
		}
		i += need + 1;
	}
	return true;
}
