/*
 * grok.com's web protocol, the request side and the small answers (see
 * grok.h): the conversations/new payload, the browser-like header list
 * with x-statsig-id and x-xai-request-id, the rate-limits body and
 * answer, and a readable account of a failed answer. The stream reader
 * is grok_nd.c, the flattening of messages grok_msg.c.
 *
 * Worker only; pure (jansson, libsodium's RNG, libcurl's slist), no I/O,
 * no locks, no state: may run anywhere, callbacks included.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "grok.h"
#include "util.h"

/* ---- the chat payload -------------------------------------------------- */

/* The uploaded files as a JSON array (at most max of them). */
static json_t *
grok_files(const struct grok_req_opts *o, size_t max)
{
	json_t *a;
	size_t i;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < o->nfiles && i < max; i++) {
		if (o->file_ids[i] == NULL || o->file_ids[i][0] == '\0')
			continue;
		if (json_array_append_new(a, json_string(o->file_ids[i])) !=
		    0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Whether s is well-formed UTF-8 (what a JSON string must be). */
static bool
grok_utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	for (; *p != '\0'; p += n)
		if ((n = util_utf8_seq(p, 4)) == 0) /* NUL ends a sequence */
			return false;
	return true;
}

/* Append text; then s as a JSON string. Returns 0, EILSEQ or ENOMEM. */
static int
grok_put(struct buf *b, const char *text, const char *s)
{
	if (buf_puts(b, text) != 0)
		return ENOMEM;
	if (s == NULL)
		return 0;
	if (!grok_utf8_ok(s))
		return EILSEQ;
	return buf_json_str(b, s, strlen(s)) == 0 ? 0 : ENOMEM;
}

/*
 * The standard payload, every field and in the order of the reference
 * (section 3.1): the web page sends them all, and a request that looks
 * like the page's is the one least likely to be refused. Written out
 * here rather than through json_pack: it is on every request, and the
 * profile found jansson's build and dump at a tenth of the worker's time.
 * Returns 0 or an errno value.
 */
static int
grok_payload_chat(const struct grok_req_opts *o, struct buf *b)
{
	const struct cfg_model *m = o->model;
	const char *sep = "";
	char count[96];
	size_t i;
	int rc;

	if ((rc = grok_put(b,
	         o->temporary ? "{\"temporary\":true,\"modelName\":"
	                      : "{\"temporary\":false,\"modelName\":",
	         m->upstream)) != 0 ||
	    (rc = grok_put(b, ",\"message\":", o->message)) != 0 ||
	    (rc = grok_put(b, ",\"fileAttachments\":[", NULL)) != 0)
		return rc;
	for (i = 0; i < o->nfiles; i++) {
		if (o->file_ids[i] == NULL || o->file_ids[i][0] == '\0')
			continue;
		if ((rc = grok_put(b, sep, o->file_ids[i])) != 0)
			return rc;
		sep = ",";
	}
	(void)snprintf(count, sizeof(count),
	    ",\"enableImageStreaming\":true,\"imageGenerationCount\":%u,",
	    o->image_count ? o->image_count : 2);
	if ((rc = grok_put(b,
	         "],\"imageAttachments\":[],\"disableSearch\":false,"
	         "\"enableImageGeneration\":true,\"returnImageBytes\":false,"
	         "\"returnRawGrokInXaiRequest\":false",
	         NULL)) != 0 ||
	    (rc = grok_put(b, count, NULL)) != 0 ||
	    (rc = grok_put(b,
	         "\"forceConcise\":false,\"toolOverrides\":{},"
	         "\"enableSideBySide\":true,\"sendFinalMetadata\":true,"
	         "\"isReasoning\":false,\"webpageUrls\":[],"
	         "\"disableTextFollowUps\":true,\"responseMetadata\":"
	         "{\"requestModelDetails\":{\"modelId\":",
	         m->upstream)) != 0 ||
	    (rc = grok_put(b,
	         "}},\"disableMemory\":false,\"forceSideBySide\":false,"
	         "\"modelMode\":",
	         m->mode)) != 0)
		return rc;
	return grok_put(b, ",\"isAsyncChat\":false}", NULL);
}

/*
 * The video payload (reference section 3.2): always temporary, only the
 * first image, "<ref>  <prompt> --mode=custom" (two spaces, as the page
 * sends it).
 */
static json_t *
grok_payload_video(const struct grok_req_opts *o)
{
	const char *ref = o->video_ref != NULL ? o->video_ref : "";
	struct buf b;
	json_t *j = NULL;

	buf_init(&b, strlen(ref) + strlen(o->message) + 32);
	if (buf_printf(&b, "%s%s%s --mode=custom", ref, *ref ? "  " : "",
	        o->message) != 0)
		goto out;
	j = json_pack("{s:b, s:s, s:s%, s:o, s:{s:b}}", "temporary", 1,
	    "modelName", o->model->upstream, "message", b.p, b.len,
	    "fileAttachments", grok_files(o, 1), "toolOverrides", "videoGen",
	    1);
out:
	buf_fini(&b);
	return j;
}

char *
grok_payload(const struct grok_req_opts *o)
{
	struct grok_req_opts fixed;
	struct buf b;
	json_t *j;
	char *s = NULL;
	int rc;

	if (o->message == NULL) { /* images alone: no text */
		fixed = *o;
		fixed.message = "";
		o = &fixed;
	}
	if (o->video) {
		if (!grok_utf8_ok(o->message)) {
			errno = EILSEQ;
			return NULL;
		}
		if ((j = grok_payload_video(o)) != NULL)
			s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (s == NULL)
			errno = ENOMEM;
		return s;
	}
	buf_init(&b, SIZE_MAX / 8);
	if ((rc = grok_payload_chat(o, &b)) == 0 && (s = buf_take(&b)) == NULL)
		rc = ENOMEM;
	buf_fini(&b);
	if (rc != 0)
		errno = rc;
	return s;
}

/* ---- x-statsig-id and x-xai-request-id ---------------------------------- */

void
grok_statsig_generate(const char *prefix, char *out, size_t len)
{
	char r[11], text[512];
	unsigned char coin;
	int n;

	if (len == 0)
		return;
	out[0] = '\0';
	if (prefix == NULL)
		prefix = "";
	/* Reference section 9.1: a coin picks one of two browser errors. */
	util_random(&coin, 1);
	if ((coin & 1) == 0) {
		util_rand_chars(r, 5, "abcdefghijklmnopqrstuvwxyz0123456789");
		n = snprintf(text, sizeof(text),
		    "%sTypeError: Cannot read properties of null (reading "
		    "'children['%s']')",
		    prefix, r);
	} else {
		util_rand_chars(r, 10, "abcdefghijklmnopqrstuvwxyz");
		n = snprintf(text, sizeof(text),
		    "%sTypeError: Cannot read properties of undefined "
		    "(reading '%s')",
		    prefix, r);
	}
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    len < sodium_base64_ENCODED_LEN(
	              (size_t)n, sodium_base64_VARIANT_ORIGINAL))
		return; /* an absurd prefix or a short out: send none */
	(void)sodium_bin2base64(out, len, (const unsigned char *)text,
	    (size_t)n, sodium_base64_VARIANT_ORIGINAL); /* len checked */
}

void
grok_request_id(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	util_random(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
}

/* ---- request headers --------------------------------------------------- */

#define GROK_HDR_MAX 8192 /* one header line; the cookie is the long one */

/* Sent by the web page on every call (reference section 2.1). */
#define GROK_BAGGAGE                                                           \
	"sentry-environment=production,sentry-public_key="                     \
	"b311e0f2690c81f25e2c4cf6d4f7ce1c"

/*
 * Bytes that would end or break a header line (any control byte: CR,
 * LF, NUL...): GROK_HDR_BAD; also what would end a cookie value and start
 * another (RFC 6265 cookie-octet): GROK_HDR_BAD_COOKIE. NUL is both, so a
 * scan stops at the end of its string.
 */
#define GROK_HDR_BAD        1
#define GROK_HDR_BAD_COOKIE 2
#define GROK_HDR_C(c)                                                          \
	((c) < 0x20 || (c) == 0x7f ? GROK_HDR_BAD | GROK_HDR_BAD_COOKIE        \
	        : ((c) == ' ' || (c) == ';' || (c) == ',' || (c) == '"' ||     \
	              (c) == '\\')                                             \
	        ? GROK_HDR_BAD_COOKIE                                          \
	        : 0)
#define GROK_HDR_C4(c)                                                         \
	GROK_HDR_C(c), GROK_HDR_C((c) + 1), GROK_HDR_C((c) + 2),               \
	    GROK_HDR_C((c) + 3)
#define GROK_HDR_C16(c)                                                        \
	GROK_HDR_C4(c), GROK_HDR_C4((c) + 4), GROK_HDR_C4((c) + 8),            \
	    GROK_HDR_C4((c) + 12)
#define GROK_HDR_C64(c)                                                        \
	GROK_HDR_C16(c), GROK_HDR_C16((c) + 16), GROK_HDR_C16((c) + 32),       \
	    GROK_HDR_C16((c) + 48)
static const unsigned char grok_hdr_bad[256] = { GROK_HDR_C64(0),
	GROK_HDR_C64(64), GROK_HDR_C64(128), GROK_HDR_C64(192) };
#undef GROK_HDR_C64
#undef GROK_HDR_C16
#undef GROK_HDR_C4
#undef GROK_HDR_C

/*
 * Append s without the bytes that would end or break a header line. With
 * cookie, also without what would end a cookie value and start another:
 * a token pasted as "abc; admin=1" must not become two cookies.
 */
static int
grok_hdr_clean(struct buf *b, const char *s, bool cookie)
{
	unsigned mask = cookie ? GROK_HDR_BAD_COOKIE : GROK_HDR_BAD;
	size_t n;
	int rc;

	while (*s != '\0') {
		for (n = 0; (grok_hdr_bad[(unsigned char)s[n]] & mask) == 0;
		     n++)
			;
		if (n > 0 && (rc = buf_append(b, s, n)) != 0)
			return rc;
		s += n;
		if (*s != '\0')
			s++; /* the byte we drop */
	}
	return 0;
}

/* Drop a leading "name=" an operator pasted along with the value. */
static const char *
grok_hdr_unprefix(const char *v, const char *prefix)
{
	size_t n = strlen(prefix);

	while (*v == ' ' || *v == '\t')
		v++;
	return strncmp(v, prefix, n) == 0 ? v + n : v;
}

/* "Name: value" with value cleaned, ended by a NUL, appended to b. */
static int
grok_hdr_add(struct buf *b, const char *name, const char *value)
{
	size_t len = b->len;
	int rc;

	if ((rc = buf_puts(b, name)) != 0 || (rc = buf_puts(b, ": ")) != 0 ||
	    (rc = grok_hdr_clean(b, value, false)) != 0 ||
	    (rc = buf_append(b, "", 1)) != 0)
		buf_truncate(b, len);
	return rc;
}

/* The Chrome (or Edge) major version in a user agent, or 0. */
static unsigned
grok_ua_version(const char *ua, const char *product)
{
	const char *p = strstr(ua, product);
	unsigned v = 0;

	if (p == NULL)
		return 0;
	for (p += strlen(product); *p >= '0' && *p <= '9' && v < 100000; p++)
		v = v * 10 + (unsigned)(*p - '0');
	return v;
}

/*
 * Client hints that agree with the configured User-Agent: Chrome sends
 * them, and a Windows UA with "macOS" hints is a bot's tell. A
 * non-Chromium UA (Firefox, Safari) sends none.
 */
static int
grok_hdr_hints(struct buf *b, const char *ua)
{
	unsigned chrome = grok_ua_version(ua, "Chrome/");
	unsigned edge = grok_ua_version(ua, "Edg/");
	const char *platform = NULL;
	char v[160];
	int rc;

	if (chrome == 0)
		return 0;
	(void)snprintf(v, sizeof(v),
	    "\"Not(A:Brand\";v=\"99\", \"%s\";v=\"%u\", "
	    "\"Chromium\";v=\"%u\"",
	    edge ? "Microsoft Edge" : "Google Chrome", edge ? edge : chrome,
	    chrome); /* fits: versions are at most 6 digits */
	if ((rc = grok_hdr_add(b, "Sec-Ch-Ua", v)) != 0 ||
	    (rc = grok_hdr_add(b, "Sec-Ch-Ua-Mobile",
	         strstr(ua, "Mobile") ? "?1" : "?0")) != 0)
		return rc;
	if (strstr(ua, "Android"))
		platform = "\"Android\"";
	else if (strstr(ua, "Windows"))
		platform = "\"Windows\"";
	else if (strstr(ua, "Macintosh") || strstr(ua, "Mac OS X"))
		platform = "\"macOS\"";
	else if (strstr(ua, "CrOS"))
		platform = "\"Chrome OS\"";
	else if (strstr(ua, "Linux"))
		platform = "\"Linux\"";
	if (platform == NULL)
		return 0;
	return grok_hdr_add(b, "Sec-Ch-Ua-Platform", platform);
}

/* sso-rw=<t>; sso=<t>[; cf_clearance=<v>], as the browser sends it. */
static int
grok_hdr_cookie(struct buf *b, const struct cfg *c, const char *token)
{
	const char *t = grok_hdr_unprefix(token, "sso=");
	const char *cf = grok_hdr_unprefix(c->cf_clearance, "cf_clearance=");
	int rc;

	if ((rc = buf_puts(b, "Cookie: sso-rw=")) != 0 ||
	    (rc = grok_hdr_clean(b, t, true)) != 0 ||
	    (rc = buf_puts(b, "; sso=")) != 0 ||
	    (rc = grok_hdr_clean(b, t, true)) != 0)
		return rc;
	if (*cf != '\0' &&
	    ((rc = buf_puts(b, "; cf_clearance=")) != 0 ||
	        (rc = grok_hdr_clean(b, cf, true)) != 0))
		return rc;
	return buf_append(b, "", 1);
}

/* upstream_url without trailing slashes, into o. */
static void
grok_origin(const struct cfg *c, char *o, size_t len)
{
	size_t n;

	(void)util_strlcpy(o, c->upstream_url, len); /* same size as cfg */
	for (n = strlen(o); n > 0 && o[n - 1] == '/'; n--)
		o[n - 1] = '\0';
}

/*
 * The lines in b (each ended by its NUL) as a curl_slist in one block:
 * the nodes, then the text they point into. free() releases it all.
 */
static struct curl_slist *
grok_hdr_list(const struct buf *b)
{
	const char *p, *end = b->p + b->len;
	struct curl_slist *l;
	size_t i, n = 0;
	char *text;

	for (p = b->p; (p = memchr(p, '\0', (size_t)(end - p))) != NULL; p++)
		n++;
	if (n == 0 || (l = malloc(n * sizeof(*l) + b->len)) == NULL)
		return NULL;
	text = memcpy((char *)(l + n), b->p, b->len);
	for (i = 0; i < n; i++) {
		l[i].data = text;
		l[i].next = i + 1 < n ? &l[i + 1] : NULL;
		text += strlen(text) + 1;
	}
	return l;
}

/* The lines from Accept to Baggage, each ended by its NUL, appended to b. */
static int
grok_hdr_fixed(struct buf *b, const struct cfg *c, const char *referer,
    const char *content_type)
{
	char origin[CFG_STR_MAX], ref[CFG_STR_MAX + 1];

	grok_origin(c, origin, sizeof(origin));
	(void)snprintf(ref, sizeof(ref), "%s/", origin); /* fits: +1 */
	if (grok_hdr_add(b, "Accept", "*/*") != 0 ||
	    grok_hdr_add(b, "Accept-Language", "zh-CN,zh;q=0.9") != 0 ||
	    grok_hdr_add(b, "Content-Type",
	        content_type != NULL ? content_type : "application/json") !=
	        0 ||
	    grok_hdr_add(b, "Origin", origin) != 0 ||
	    grok_hdr_add(b, "Referer", referer != NULL ? referer : ref) != 0 ||
	    grok_hdr_add(b, "Priority", "u=1, i") != 0 ||
	    grok_hdr_add(b, "User-Agent", c->user_agent) != 0 ||
	    grok_hdr_hints(b, c->user_agent) != 0 ||
	    grok_hdr_add(b, "Sec-Fetch-Dest", "empty") != 0 ||
	    grok_hdr_add(b, "Sec-Fetch-Mode", "cors") != 0 ||
	    grok_hdr_add(b, "Sec-Fetch-Site", "same-origin") != 0 ||
	    grok_hdr_add(b, "Baggage", GROK_BAGGAGE) != 0)
		return WP_ENOMEM;
	return 0;
}

/*
 * Those lines with the default referer and content type, as every chat
 * sends them: they hang on upstream_url and user_agent alone, so they
 * are built once per pair (most of what a chat's headers cost).
 */
static struct {
	char url[CFG_STR_MAX], ua[CFG_STR_MAX];
	size_t len; /* 0: none kept */
	char text[2048];
} grok_fixed;

static int
grok_hdr_fixed_default(struct buf *b, const struct cfg *c)
{
	size_t start = b->len;
	int rc;

	if (grok_fixed.len > 0 &&
	    strcmp(grok_fixed.url, c->upstream_url) == 0 &&
	    strcmp(grok_fixed.ua, c->user_agent) == 0)
		return buf_append(b, grok_fixed.text, grok_fixed.len);
	if ((rc = grok_hdr_fixed(b, c, NULL, NULL)) != 0)
		return rc;
	grok_fixed.len = 0;
	if (b->len - start <= sizeof(grok_fixed.text)) {
		memcpy(grok_fixed.text, b->p + start, b->len - start);
		(void)util_strlcpy(grok_fixed.url, c->upstream_url,
		    sizeof(grok_fixed.url)); /* same size as cfg */
		(void)util_strlcpy(
		    grok_fixed.ua, c->user_agent, sizeof(grok_fixed.ua));
		grok_fixed.len = b->len - start;
	}
	return 0;
}

struct curl_slist *
grok_headers_ext(const struct cfg *c, const char *token, const char *statsig,
    const char *request_id, const char *referer, const char *content_type)
{
	struct curl_slist *l = NULL;
	struct buf b;

	buf_init(&b, GROK_HDR_MAX);
	if ((referer == NULL && content_type == NULL
	            ? grok_hdr_fixed_default(&b, c)
	            : grok_hdr_fixed(&b, c, referer, content_type)) != 0)
		goto out;
	/* An empty statsig ([E]'s fixed mode with no value) goes unsent. */
	if (statsig != NULL && *statsig != '\0' &&
	    grok_hdr_add(&b, "x-statsig-id", statsig) != 0)
		goto out;
	if (request_id != NULL && *request_id != '\0' &&
	    grok_hdr_add(&b, "x-xai-request-id", request_id) != 0)
		goto out;
	/* "Expect:" with no value: libcurl then adds no 100-continue. */
	if (grok_hdr_cookie(&b, c, token) != 0 ||
	    buf_append(&b, "Expect:", sizeof("Expect:")) != 0)
		goto out;
	l = grok_hdr_list(&b);
out:
	buf_fini(&b);
	return l;
}

void
grok_headers_free(struct curl_slist *l)
{
	free(l);
}

struct curl_slist *
grok_headers(const struct cfg *c, const char *token, const char *statsig,
    const char *request_id)
{
	return grok_headers_ext(c, token, statsig, request_id, NULL, NULL);
}

/* ---- rate limits ------------------------------------------------------- */

/* A JSON number as an int64 (clamped); false when not a number. */
static bool
grok_num(const json_t *v, int64_t *out)
{
	double d;

	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return true;
	}
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	if (d != d)
		return false;
	*out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
	return true;
}

int
grok_ratelimits_parse(const char *body, size_t len, bool heavy,
    int32_t *remaining, int64_t *wait_s)
{
	static const char *const effort[] = { "lowEffortRateLimits",
		"highEffortRateLimits" };
	json_error_t jerr;
	json_t *j;
	int64_t v, w;
	size_t i;
	int rc = WP_EPARSE;

	*wait_s = 0;
	if ((j = json_loadb(body, len, 0, &jerr)) == NULL || !json_is_object(j))
		goto out;
	/*
	 * Heavy has its own quota in remainingQueries; the others are
	 * counted in remainingTokens in the token era, remainingQueries in
	 * the query era (reference section 1.2).
	 */
	if (!(!heavy && grok_num(json_object_get(j, "remainingTokens"), &v)) &&
	    !grok_num(json_object_get(j, "remainingQueries"), &v))
		goto out;
	*remaining = v > INT32_MAX ? INT32_MAX : v < 0 ? 0 : (int32_t)v;
	/*
	 * The top-level wait (query era); else, when the quota is spent,
	 * the longest wait of an effort level (token era).
	 */
	if (grok_num(json_object_get(j, "waitTimeSeconds"), &w)) {
		*wait_s = w;
	} else if (*remaining == 0) {
		for (i = 0; i < ARRAY_LEN(effort); i++) {
			if (grok_num(
			        json_object_get(json_object_get(j, effort[i]),
			            "waitTimeSeconds"),
			        &w) &&
			    w > *wait_s)
				*wait_s = w;
		}
	}
	if (*wait_s < 0)
		*wait_s = 0;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

char *
grok_ratelimits_body(const char *rate_limit_model)
{
	json_t *j;
	char *s;

	j = json_pack("{s:s, s:s}", "requestKind", "DEFAULT", "modelName",
	    rate_limit_model);
	if (j == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

/* ---- failed answers ---------------------------------------------------- */

#define GROK_SCAN_MAX 65536 /* how much of an error body is searched */

/* Case-insensitive search in a body that need not be NUL-terminated. */
static const char *
grok_find(const char *s, size_t n, const char *needle)
{
	size_t m = strlen(needle), i, k;

	if (n > GROK_SCAN_MAX)
		n = GROK_SCAN_MAX;
	for (i = 0; m <= n && i <= n - m; i++) {
		for (k = 0; k < m; k++) {
			if (tolower((unsigned char)s[i + k]) !=
			    tolower((unsigned char)needle[k]))
				break;
		}
		if (k == m)
			return s + i;
	}
	return NULL;
}

/*
 * At most max bytes of s, control bytes as spaces, cut at a character
 * boundary: for a log line or a client's error message.
 */
static void
grok_snippet(const char *s, size_t n, size_t max, char *out, size_t outlen)
{
	size_t k = n, i;

	if (outlen == 0)
		return;
	if (k > max)
		k = max;
	if (k > outlen - 1)
		k = outlen - 1;
	if (k < n) {
		while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--; /* s[k] starts the first character left out */
	}
	for (i = 0; i < k; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	out[k] = '\0';
}

/* The <title> of an HTML page (a proxy's or a load balancer's), or "". */
static void
grok_html_title(const char *body, size_t len, char *out, size_t outlen)
{
	const char *t = grok_find(body, len, "<title"), *gt, *end;
	size_t rest;

	out[0] = '\0';
	if (t == NULL)
		return;
	rest = len - (size_t)(t - body);
	if ((gt = memchr(t, '>', rest)) == NULL)
		return;
	gt++;
	rest = len - (size_t)(gt - body);
	if ((end = grok_find(gt, rest, "</title")) == NULL)
		return;
	grok_snippet(gt, (size_t)(end - gt), 120, out, outlen);
}

static bool
grok_is_challenge(const char *body, size_t len)
{
	static const char *const marks[] = { "just a moment",
		"challenge-platform", "__cf_chl", "cf-chl-", "cf_chl_opt",
		"attention required! | cloudflare" };
	size_t i;

	for (i = 0; i < ARRAY_LEN(marks); i++) {
		if (grok_find(body, len, marks[i]) != NULL)
			return true;
	}
	return false;
}

/* {"error":{"code","message"}}, {"error":"..."}, {"message"}, {"detail"}. */
static bool
grok_json_error(
    const char *body, size_t len, char *msg, size_t msglen, int64_t *code)
{
	const json_t *e, *m = NULL;
	json_error_t jerr;
	json_t *j;
	bool found = false;

	*code = -1;
	if ((j = json_loadb(body, len, 0, &jerr)) == NULL)
		return false;
	e = json_object_get(j, "error");
	if (json_is_object(e)) {
		m = json_object_get(e, "message");
		if (!grok_num(json_object_get(e, "code"), code))
			*code = -1;
	} else if (json_is_string(e)) {
		m = e;
	} else if (json_is_string(json_object_get(j, "message"))) {
		m = json_object_get(j, "message");
	} else if (json_is_string(json_object_get(j, "detail"))) {
		m = json_object_get(j, "detail");
	}
	if (json_is_string(m) || *code >= 0) {
		grok_snippet(json_string_value(m) ? json_string_value(m) : "",
		    json_string_length(m), 300, msg, msglen);
		found = true;
	}
	json_decref(j);
	return found;
}

void
grok_error_describe(long status, const char *body, size_t len, char *out,
    size_t outlen, bool *anti_bot)
{
	char msg[320];
	int64_t code;

	*anti_bot = false;
	if (outlen == 0)
		return;
	if (body == NULL)
		len = 0;
	while (len > 0 && isspace((unsigned char)*body)) {
		body++;
		len--;
	}
	/* Each (void)snprintf below: a cut description is still one. */
	if (grok_is_challenge(body, len) || (status == 403 && len == 0)) {
		*anti_bot = true;
		(void)snprintf(out, outlen,
		    "HTTP %ld: Cloudflare challenge page (set grok.cf_clearance "
		    "or use a proxy; the TLS fingerprint may also be refused)",
		    status);
	} else if (grok_find(body, len, "blocked-user") != NULL ||
	    grok_find(body, len, "user is blocked") != NULL) {
		grok_snippet(body, len, 200, msg, sizeof(msg));
		(void)snprintf(
		    out, outlen, "HTTP %ld: account blocked: %s", status, msg);
	} else if (grok_json_error(body, len, msg, sizeof(msg), &code)) {
		if (code == 7) {
			*anti_bot = true;
			(void)snprintf(out, outlen,
			    "HTTP %ld: anti-bot rejection (code 7): %s "
			    "(check x-statsig-id, cf_clearance, proxy)",
			    status, msg);
		} else if (code >= 0) {
			(void)snprintf(out, outlen, "HTTP %ld: %s (code %lld)",
			    status, msg[0] ? msg : "error", (long long)code);
		} else {
			(void)snprintf(
			    out, outlen, "HTTP %ld: %s", status, msg);
		}
	} else if (len > 0 && body[0] == '<') {
		grok_html_title(body, len, msg, sizeof(msg));
		(void)snprintf(out, outlen, "HTTP %ld: an HTML page%s%s%s",
		    status, msg[0] ? " titled \"" : "", msg,
		    msg[0] ? "\"" : "");
	} else if (len > 0) {
		grok_snippet(body, len, 200, msg, sizeof(msg));
		(void)snprintf(out, outlen, "HTTP %ld: %s", status, msg);
	} else {
		(void)snprintf(
		    out, outlen, "HTTP %ld with an empty body", status);
	}
	/* A Latin-1 page title or a cut character: it goes into JSON. */
	util_utf8_clean(out);
}
