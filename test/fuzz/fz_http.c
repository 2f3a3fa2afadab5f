/*
 * Fuzz target "http": the small parsers that take what a client or the
 * upstream sends over HTTP. The first byte picks one (enum http_sel);
 * the rest is its input, strings separated by NUL bytes.
 *
 *	names     media_name_ok, media_mime (cache file routes)
 *	cidr      util_cidr_parse, util_cidr_match, util_addr_parse
 *	hostport  util_split_hostport
 *	i64       util_parse_i64
 *	ratelim   grok_ratelimits_parse
 *	describe  grok_error_describe, its text through oai_error
 *	baseurl   media_base_url: Host, X-Forwarded-Host/-Proto, peer
 *	client    adm_client_addr (X-Forwarded-For), adm_client_https
 *	image     media_image_get on data: URIs and bare base64
 *	headers   tok_validate, grok_headers_ext (header injection)
 *	error     oai_error on any text
 *	enums     the enum parsers and oai_error_type
 *
 * media_base_url and adm_client_addr read the request through
 * libmicrohttpd; this file defines MHD_lookup_connection_value and
 * MHD_get_connection_info, which the linker prefers to the library's,
 * so they read http_req instead.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>

#include "adm.h"
#include "cfg.h"
#include "err.h"
#include "grok.h"
#include "log.h"
#include "media.h"
#include "oai.h"
#include "oai_out.h"
#include "tok.h"
#include "util.h"
#include "wrk.h"

#include "fuzz.h"

const char fuzz_name[] = "http";

enum http_sel {
	HTTP_NAMES,
	HTTP_CIDR,
	HTTP_HOSTPORT,
	HTTP_I64,
	HTTP_RATELIM,
	HTTP_DESCRIBE,
	HTTP_BASEURL,
	HTTP_CLIENT,
	HTTP_IMAGE,
	HTTP_HEADERS,
	HTTP_ERROR,
	HTTP_ENUMS,
	HTTP_NSEL
};

/* The request the fake libmicrohttpd functions answer from. */
static struct {
	const char *host, *xfh, *xfp, *xff;
	bool has_addr;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	union MHD_ConnectionInfo ci;
} http_req;

static struct cfg http_def; /* the defaults */
static struct cfg http_cfg; /* what an input sets */
static struct wrk http_wrk;

const char *
MHD_lookup_connection_value(
    struct MHD_Connection *connection, enum MHD_ValueKind kind, const char *key)
{
	(void)connection; /* there is one: http_req */
	if (kind != MHD_HEADER_KIND)
		return NULL;
	if (strcasecmp(key, "Host") == 0)
		return http_req.host;
	if (strcasecmp(key, "X-Forwarded-Host") == 0)
		return http_req.xfh;
	if (strcasecmp(key, "X-Forwarded-Proto") == 0)
		return http_req.xfp;
	if (strcasecmp(key, "X-Forwarded-For") == 0)
		return http_req.xff;
	return NULL;
}

const union MHD_ConnectionInfo *
MHD_get_connection_info(struct MHD_Connection *connection,
    enum MHD_ConnectionInfoType info_type, ...)
{
	(void)connection;
	if (info_type != MHD_CONNECTION_INFO_CLIENT_ADDRESS ||
	    !http_req.has_addr)
		return NULL;
	return &http_req.ci;
}

/* Whether every byte of s is printable: no line breaks, no escapes. */
static bool
http_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void
http_names(struct fuzz_in *in)
{
	char *s = fuzz_str(in);
	enum media_kind kind = (enum media_kind)99;
	const char *mime;

	if (media_name_ok(s, &kind)) {
		FUZZ_CHECK(strlen(s) >= 36 && strlen(s) <= 37);
		FUZZ_CHECK(strchr(s, '/') == NULL && strstr(s, "..") == NULL);
		mime = media_mime(s);
		FUZZ_CHECK(
		    strncmp(mime, kind == MEDIA_VIDEO ? "video/" : "image/",
		        6) == 0);
	} else {
		FUZZ_CHECK(kind == (enum media_kind)99);
	}
	FUZZ_CHECK(media_mime(s) != NULL);
	free(s);
}

static void
http_cidr(struct fuzz_in *in)
{
	char *s = fuzz_str(in);
	struct util_cidr c;
	uint8_t a[16];

	if (util_cidr_parse(s, &c) == 0) {
		FUZZ_CHECK(c.bits <= 128);
		FUZZ_CHECK(util_cidr_match(&c, c.addr) == 1);
		if (strchr(s, '/') == NULL) {
			FUZZ_CHECK(c.bits == 128);
			FUZZ_CHECK(util_addr_parse(s, a) == 0 &&
			    memcmp(a, c.addr, 16) == 0);
		}
		memcpy(a, c.addr, 16);
		a[15] ^= 1; /* a neighbour: only a /128 leaves it out */
		FUZZ_CHECK(util_cidr_match(&c, a) == (c.bits < 128));
	}
	free(s);
}

static void
http_hostport(struct fuzz_in *in)
{
	size_t hostlen = fuzz_u8(in) % 80;
	char *s = fuzz_str(in), host[81];
	uint16_t port = 0;

	memset(host, 'x', sizeof(host));
	if (util_split_hostport(s, host, hostlen, &port) == 0) {
		FUZZ_CHECK(
		    hostlen > 0 && strlen(host) > 0 && strlen(host) < hostlen);
		FUZZ_CHECK(strstr(s, host) != NULL);
	}
	FUZZ_CHECK(host[hostlen] == 'x' || hostlen == 0); /* stays inside */
	free(s);
}

static void
http_i64(struct fuzz_in *in)
{
	int64_t min = (int64_t)fuzz_u32(in) - (1LL << 31);
	int64_t max = min + fuzz_u32(in);
	char *s = fuzz_str(in);
	int64_t v = 12345;
	int rc;

	rc = util_parse_i64(s, min, max, &v);
	FUZZ_CHECK(rc == 0 || rc == WP_EINVAL || rc == WP_ERANGE);
	if (rc == 0)
		FUZZ_CHECK(v >= min && v <= max);
	else
		FUZZ_CHECK(v == 12345);
	free(s);
}

static void
http_ratelim(struct fuzz_in *in)
{
	bool heavy = fuzz_u8(in) & 1;
	char *body = fuzz_dup(in->p, in->n);
	int32_t remaining = -7;
	int64_t wait_s = -7;

	if (grok_ratelimits_parse(body, in->n, heavy, &remaining, &wait_s) == 0)
		FUZZ_CHECK(remaining >= 0 && wait_s >= 0);
	else
		FUZZ_CHECK(wait_s == 0);
	free(body);
}

static void
http_describe(struct fuzz_in *in)
{
	long status = (long)(int16_t)fuzz_u16(in);
	size_t outlen = fuzz_u8(in) % 2 ? 512 : fuzz_u8(in);
	char *body = fuzz_dup(in->p, in->n), out[513], *env;
	bool anti_bot;

	memset(out, 'x', sizeof(out));
	grok_error_describe(status, body, in->n, out, outlen, &anti_bot);
	FUZZ_CHECK(out[outlen] == 'x'); /* stays inside */
	if (outlen > 0) {
		FUZZ_CHECK(memchr(out, '\0', outlen) != NULL);
		FUZZ_CHECK(strncmp(out, "HTTP", 4) == 0 || outlen <= 4);
		FUZZ_CHECK(http_printable(out)); /* it goes to logs */
		/* ... and to the client, as wrk_chat.c sends it. */
		env =
		    oai_error(out, oai_error_type(502), NULL, "upstream_error");
		FUZZ_CHECK(env != NULL);
		free(env);
	}
	free(body);
}

/* The request's headers and peer, and the trusted proxies, from in. */
static void
http_req_read(struct fuzz_in *in, char **strs)
{
	uint8_t flags = fuzz_u8(in), addr[16];
	size_t i;

	for (i = 0; i < 16; i++)
		addr[i] = fuzz_u8(in);
	for (i = 0; i < 6; i++)
		strs[i] = fuzz_str(in);
	memset(&http_req, 0, sizeof(http_req));
	http_req.host = (flags & 0x01) ? strs[0] : NULL;
	http_req.xfh = (flags & 0x02) ? strs[1] : NULL;
	http_req.xfp = (flags & 0x04) ? strs[2] : NULL;
	http_req.xff = (flags & 0x08) ? strs[3] : NULL;
	http_req.has_addr = (flags & 0x10) != 0;
	if (flags & 0x20) {
		http_req.sin6.sin6_family = AF_INET6;
		memcpy(&http_req.sin6.sin6_addr, addr, 16);
		http_req.ci.client_addr = (struct sockaddr *)&http_req.sin6;
	} else {
		http_req.sin.sin_family = AF_INET;
		memcpy(&http_req.sin.sin_addr, addr, 4);
		http_req.ci.client_addr = (struct sockaddr *)&http_req.sin;
	}
	http_cfg = http_def;
	for (i = 0; i < 2; i++)
		if (strs[4 + i][0] != '\0')
			(void)util_strlcpy(
			    http_cfg
			        .trusted_proxies[http_cfg.n_trusted_proxies++],
			    strs[4 + i], CFG_CIDR_MAX); /* cut: still a test */
	if (flags & 0x40)
		(void)util_strlcpy(http_cfg.base_url, "https://pub.example",
		    sizeof(http_cfg.base_url)); /* fits */
}

static void
http_req_free(char **strs)
{
	size_t i;

	for (i = 0; i < 6; i++)
		free(strs[i]);
}

static void
http_baseurl(struct fuzz_in *in)
{
	char *strs[6], buf[CFG_STR_MAX + 1], *host;
	size_t k;
	int rc;

	http_req_read(in, strs);
	memset(buf, 'x', sizeof(buf));
	rc = media_base_url(&http_wrk, NULL, buf, CFG_STR_MAX);
	FUZZ_CHECK(buf[CFG_STR_MAX] == 'x'); /* stays inside */
	if (http_cfg.base_url[0] != '\0')
		FUZZ_CHECK(rc == 0 && strcmp(buf, http_cfg.base_url) == 0);
	FUZZ_CHECK(rc == 0 || rc == WP_EINVAL);
	if (rc == 0 && http_cfg.base_url[0] == '\0') {
		/* A link's base: http(s)://host[:port], nothing else. */
		FUZZ_CHECK(strncmp(buf, "http://", 7) == 0 ||
		    strncmp(buf, "https://", 8) == 0);
		host = strstr(buf, "://") + 3;
		FUZZ_CHECK(host[0] != '\0');
		for (k = 0; host[k] != '\0'; k++)
			FUZZ_CHECK((host[k] >= 'a' && host[k] <= 'z') ||
			    (host[k] >= 'A' && host[k] <= 'Z') ||
			    (host[k] >= '0' && host[k] <= '9') ||
			    strchr(".-:[]", host[k]) != NULL);
	}
	http_req_free(strs);
}

static void
http_client(struct fuzz_in *in)
{
	char *strs[6], last[64];
	uint8_t peer[16], got[16], hop[16];
	struct util_cidr c;
	const char *p;
	bool trusted = false;
	uint32_t i;
	size_t n;
	int rc;

	http_req_read(in, strs);
	memset(got, 0xee, sizeof(got));
	rc = adm_client_addr(&http_wrk, NULL, got);
	(void)adm_client_https(&http_wrk, NULL);
	if (!http_req.has_addr) {
		FUZZ_CHECK(rc == WP_EINVAL);
		goto out;
	}
	FUZZ_CHECK(rc == 0);
	memset(peer, 0, sizeof(peer));
	if (http_req.ci.client_addr->sa_family == AF_INET6) {
		memcpy(peer, &http_req.sin6.sin6_addr, 16);
	} else {
		peer[10] = peer[11] = 0xff;
		memcpy(peer + 12, &http_req.sin.sin_addr, 4);
	}
	if (memcmp(got, peer, 16) == 0)
		goto out;
	/* Only a trusted peer's X-Forwarded-For may move it: its last hop. */
	for (i = 0; i < http_cfg.n_trusted_proxies; i++)
		if (util_cidr_parse(http_cfg.trusted_proxies[i], &c) == 0 &&
		    util_cidr_match(&c, peer))
			trusted = true;
	FUZZ_CHECK(trusted && http_req.xff != NULL);
	p = strrchr(http_req.xff, ',');
	p = p != NULL ? p + 1 : http_req.xff;
	p += strspn(p, " ");
	n = strcspn(p, " ");
	FUZZ_CHECK(n > 0 && n < sizeof(last));
	memcpy(last, p, n);
	last[n] = '\0';
	FUZZ_CHECK(
	    util_addr_parse(last, hop) == 0 && memcmp(hop, got, 16) == 0);
out:
	http_req_free(strs);
}

static void
http_image_done(struct wrk *w, void *arg, int idx, const struct media_res *res)
{
	unsigned *calls = arg;

	FUZZ_CHECK(w == &http_wrk && idx == 0);
	(*calls)++;
	if (res->rc != 0) {
		FUZZ_CHECK(res->rc == WP_EINVAL || res->rc == WP_ETOOBIG);
		FUZZ_CHECK(res->err != NULL && http_printable(res->err));
		return;
	}
	FUZZ_CHECK(res->bytes != NULL && res->len > 0 && res->mime != NULL);
}

static void
http_image(struct fuzz_in *in)
{
	char *src = fuzz_str(in);
	struct media_op *op = NULL;
	unsigned calls = 0;

	if (strncmp(src, "http://", 7) != 0 &&
	    strncmp(src, "https://", 8) != 0) {
		FUZZ_CHECK(media_image_get(&http_wrk, src, http_image_done,
		               &calls, 0, &op) == 0);
		FUZZ_CHECK(op == NULL && calls == 1);
	}
	free(src);
}

/* The Cookie line: sso-rw=<t>; sso=<t>[; cf_clearance=<v>], nothing more. */
static void
http_check_cookie(const char *line, const char *token)
{
	const char *v = line + 8;
	size_t parts = 1;

	FUZZ_CHECK(strncmp(v, "sso-rw=", 7) == 0);
	for (; *v != '\0'; v++) {
		FUZZ_CHECK(strchr(" ,\"\\", *v) == NULL || v[-1] == ';');
		if (*v == ';') {
			FUZZ_CHECK(v[1] == ' ');
			parts++;
		}
	}
	FUZZ_CHECK(parts == 2 || parts == 3);
	if (tok_validate(token) == 0 && strncmp(token, "sso=", 4) != 0) {
		FUZZ_CHECK(strncmp(line + 15, token, strlen(token)) == 0);
		FUZZ_CHECK(
		    strncmp(line + 15 + strlen(token), "; sso=", 6) == 0);
	}
}

static void
http_headers(struct fuzz_in *in)
{
	char *token = fuzz_str(in), *statsig = fuzz_str(in);
	char *rid = fuzz_str(in), *referer = fuzz_str(in);
	char *ctype = fuzz_str(in), *cf = fuzz_str(in), *ua = fuzz_str(in);
	struct curl_slist *l, *n;
	unsigned cookies = 0;
	size_t i;

	if (tok_validate(token) == 0) {
		FUZZ_CHECK(strlen(token) >= 1 && strlen(token) <= TOK_LEN_MAX);
		for (i = 0; token[i] != '\0'; i++)
			FUZZ_CHECK((unsigned char)token[i] > 0x20 &&
			    (unsigned char)token[i] < 0x7f &&
			    strchr("\",;\\", token[i]) == NULL);
	}
	http_cfg = http_def;
	(void)util_strlcpy(http_cfg.cf_clearance, cf,
	    sizeof(http_cfg.cf_clearance)); /* cut: still a test */
	(void)util_strlcpy(
	    http_cfg.user_agent, ua, sizeof(http_cfg.user_agent)); /* same */
	l = grok_headers_ext(&http_cfg, token, statsig, rid,
	    referer[0] ? referer : NULL, ctype[0] ? ctype : NULL);
	/* A line over GROK_HDR_MAX fails it; valid tokens are far shorter. */
	FUZZ_CHECK(l != NULL || strlen(token) > TOK_LEN_MAX ||
	    strlen(statsig) + strlen(rid) + strlen(referer) + strlen(ctype) >
	        4000);
	if (l == NULL)
		goto out;
	for (n = l; n != NULL; n = n->next) {
		FUZZ_CHECK(http_printable(n->data)); /* no CR, LF, NUL... */
		FUZZ_CHECK(strchr(n->data, ':') != NULL);
		if (strncmp(n->data, "Cookie: ", 8) == 0) {
			cookies++;
			http_check_cookie(n->data, token);
		}
	}
	FUZZ_CHECK(cookies == 1);
	grok_headers_free(l);
out:
	free(token);
	free(statsig);
	free(rid);
	free(referer);
	free(ctype);
	free(cf);
	free(ua);
}

static void
http_error(struct fuzz_in *in)
{
	char *msg = fuzz_str(in), *param = fuzz_str(in), *code = fuzz_str(in);
	char *env, *c;
	json_error_t jerr;
	json_t *j;

	/* Every caller passes a literal code ("model_not_found"): ASCII. */
	for (c = code; *c != '\0'; c++)
		*c = (char)(0x20 + (unsigned char)*c % 0x5f);
	/* oai.h: NULL only when memory runs out. */
	env = oai_error(msg, "invalid_request_error", param[0] ? param : NULL,
	    code[0] ? code : NULL);
	FUZZ_CHECK(env != NULL);
	j = json_loads(env, 0, &jerr);
	FUZZ_CHECK(json_is_object(json_object_get(j, "error")));
	json_decref(j);
	free(env);
	free(msg);
	free(param);
	free(code);
}

static void
http_enums(struct fuzz_in *in)
{
	unsigned status = fuzz_u16(in);
	char *s = fuzz_str(in);
	enum oai_reasoning rf;
	enum tok_status st;
	enum log_level lvl;

	if (oai_reasoning_parse(s, &rf) == 0)
		FUZZ_CHECK(strcmp(oai_reasoning_name[rf], s) == 0);
	if (tok_status_parse(s, &st) == 0)
		FUZZ_CHECK(strcmp(tok_status_name[st], s) == 0);
	if (log_level_parse(s, &lvl) == 0)
		FUZZ_CHECK(lvl <= LOG_LVL_DEBUG);
	FUZZ_CHECK(oai_error_type(status) != NULL);
	free(s);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	cfg_defaults(&http_def);
	http_cfg = http_def;
	http_wrk.cfg = &http_cfg;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };

	switch ((enum http_sel)(fuzz_u8(&in) % HTTP_NSEL)) {
	case HTTP_NAMES:
		http_names(&in);
		break;
	case HTTP_CIDR:
		http_cidr(&in);
		break;
	case HTTP_HOSTPORT:
		http_hostport(&in);
		break;
	case HTTP_I64:
		http_i64(&in);
		break;
	case HTTP_RATELIM:
		http_ratelim(&in);
		break;
	case HTTP_DESCRIBE:
		http_describe(&in);
		break;
	case HTTP_BASEURL:
		http_baseurl(&in);
		break;
	case HTTP_CLIENT:
		http_client(&in);
		break;
	case HTTP_IMAGE:
		http_image(&in);
		break;
	case HTTP_HEADERS:
		http_headers(&in);
		break;
	case HTTP_ERROR:
		http_error(&in);
		break;
	case HTTP_ENUMS:
		http_enums(&in);
		break;
	case HTTP_NSEL:
		break;
	}
	return 0;
}
