/*
 * Bounded growable buffers (see buf.h). Any process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
buf_fini(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
buf_truncate(struct buf *b, size_t len)
{
	b->len = len;
	if (b->p != NULL)
		b->p[len] = '\0';
}

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t need, cap;
	char *p;

	if (more > b->max || b->len > b->max - more)
		return WP_ETOOBIG;
	need = b->len + more + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return WP_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	int rc;

	if ((rc = buf_reserve(b, len)) != 0)
		return rc;
	if (len > 0)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_put_i64(struct buf *b, int64_t v)
{
	char d[24], *p = d + sizeof(d);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	return buf_append(b, p, (size_t)(d + sizeof(d) - p));
}

int
buf_json_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, run, mark = b->len;
	unsigned char c;
	char esc[6] = { '\\', 'u', '0', '0' };
	int rc;

	if ((rc = buf_append(b, "\"", 1)) != 0)
		return rc;
	for (i = 0; i < n; i += run + 1) {
		for (run = 0; i + run < n; run++) {
			c = (unsigned char)s[i + run];
			if (c < 0x20 || c == '"' || c == '\\')
				break;
		}
		if (run > 0 && (rc = buf_append(b, s + i, run)) != 0)
			goto fail;
		if (i + run == n)
			break;
		c = (unsigned char)s[i + run];
		esc[1] = c == '"' ? '"'
		    : c == '\\'   ? '\\'
		    : c == '\b'   ? 'b'
		    : c == '\f'   ? 'f'
		    : c == '\n'   ? 'n'
		    : c == '\r'   ? 'r'
		    : c == '\t'   ? 't'
		                  : 'u';
		esc[4] = hex[c >> 4];
		esc[5] = hex[c & 15];
		if ((rc = buf_append(b, esc, esc[1] == 'u' ? 6 : 2)) != 0)
			goto fail;
	}
	if ((rc = buf_append(b, "\"", 1)) == 0)
		return 0;
fail:
	buf_truncate(b, mark);
	return rc;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return WP_EINVAL;
	if ((rc = buf_reserve(b, (size_t)n)) != 0)
		return rc;
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->p, b->p + n, b->len - n + 1);
	b->len -= n;
}

char *
buf_take(struct buf *b)
{
	char *p = b->p;

	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}
