/*
 * Media operations (see media.h): input images, uploads, media posts and
 * cache downloads, each a transfer on the worker's curl multi handle.
 * Writes go to a temporary name in the cache folder and are renamed into
 * place when complete, so nothing half written is ever served or swept.
 * Worker only; one thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "grok.h"
#include "log.h"
#include "media.h"
#include "util.h"

#define MEDIA_MAGIC       0x4d454431u
#define MEDIA_FETCH_MS    15000
#define MEDIA_UPSTREAM_MS 30000
#define MEDIA_DOWNLOAD_MS 120000
#define MEDIA_REPLY_MAX   65536
#define MEDIA_PATH_MAX    (CFG_STR_MAX + 96)

enum media_op_type {
	MEDIA_OP_FETCH,
	MEDIA_OP_UPLOAD,
	MEDIA_OP_POST,
	MEDIA_OP_DL
};

struct media_op {
	unsigned magic;
	struct wrk *w;
	struct wrk_xfer x;
	enum media_op_type type;
	enum media_kind kind;
	media_done_fn *fn;
	void *arg;
	int idx;
	struct buf body;
	struct curl_slist *hdrs;
	char *payload;
	int fd;
	int werr; /* errno of a failed write into the cache */
	size_t got;
	char refused[160]; /* why an address was refused, if it was */
	char tmp[MEDIA_PATH_MAX], final[MEDIA_PATH_MAX], name[48];
};

/* ---- names and places -------------------------------------------------- */

void
media_dir(const struct cfg *c, enum media_kind kind, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%s/data/temp/%s", c->data_dir,
	    kind == MEDIA_VIDEO ? "video" : "image");
}

static const struct {
	const char *ext, *mime;
	enum media_kind kind;
} media_types[] = {
	{ "jpg", "image/jpeg", MEDIA_IMAGE },
	{ "png", "image/png", MEDIA_IMAGE },
	{ "webp", "image/webp", MEDIA_IMAGE },
	{ "gif", "image/gif", MEDIA_IMAGE },
	{ "mp4", "video/mp4", MEDIA_VIDEO },
	{ "webm", "video/webm", MEDIA_VIDEO },
};

bool
media_name_ok(const char *name, enum media_kind *kind)
{
	size_t i;

	for (i = 0; i < 32; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		        (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	if (name[32] != '.')
		return false;
	for (i = 0; i < ARRAY_LEN(media_types); i++)
		if (strcmp(name + 33, media_types[i].ext) == 0) {
			*kind = media_types[i].kind;
			return true;
		}
	return false;
}

const char *
media_mime(const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t i;

	for (i = 0; dot != NULL && i < ARRAY_LEN(media_types); i++)
		if (strcmp(dot + 1, media_types[i].ext) == 0)
			return media_types[i].mime;
	return "application/octet-stream";
}

/* Our name for an asset path: a hash, and the path's known extension. */
static void
media_name_for(const char *path, enum media_kind kind, char *out, size_t len)
{
	unsigned char h[16];
	const char *dot = strrchr(path, '.'), *ext = NULL;
	char hex[33];
	size_t i;

	for (i = 0; dot != NULL && i < ARRAY_LEN(media_types); i++)
		if (strcasecmp(dot + 1, media_types[i].ext) == 0 ||
		    (strcasecmp(dot + 1, "jpeg") == 0 &&
		        strcmp(media_types[i].ext, "jpg") == 0))
			ext = media_types[i].ext;
	if (ext == NULL)
		ext = kind == MEDIA_VIDEO ? "mp4" : "jpg";
	crypto_generichash(
	    h, sizeof(h), (const unsigned char *)path, strlen(path), NULL, 0);
	(void)sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	(void)snprintf(out, len, "%s.%s", hex, ext);
}

/* An upstream asset path: relative, plain characters, no "..". */
static bool
media_path_ok(const char *p)
{
	size_t i;

	if (p[0] == '\0' || p[0] == '/' || strstr(p, "..") != NULL ||
	    strlen(p) > 512)
		return false;
	for (i = 0; p[i] != '\0'; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		        (p[i] >= 'A' && p[i] <= 'Z') ||
		        (p[i] >= '0' && p[i] <= '9') || strchr("/_.-", p[i])))
			return false;
	return true;
}

static const char *
media_sniff(const unsigned char *b, size_t n)
{
	if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return "image/jpeg";
	if (n >= 6 && memcmp(b, "GIF8", 4) == 0)
		return "image/gif";
	if (n >= 12 && memcmp(b, "RIFF", 4) == 0 &&
	    memcmp(b + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

int
media_base_url(
    const struct wrk *w, struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const char *host, *proto = "http", *fh, *fp;
	uint8_t addr[16];
	bool trusted = false;
	uint32_t i;
	size_t k;

	if (w->cfg->base_url[0] != '\0') {
		(void)snprintf(buf, len, "%s", w->cfg->base_url);
		return 0;
	}
	host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		memset(addr, 0, sizeof(addr));
		if (ci->client_addr->sa_family == AF_INET) {
			addr[10] = addr[11] = 0xff;
			memcpy(addr + 12,
			    &((const struct sockaddr_in *)(const void *)
			            ci->client_addr)
			         ->sin_addr,
			    4);
		} else if (ci->client_addr->sa_family == AF_INET6) {
			memcpy(addr,
			    &((const struct sockaddr_in6 *)(const void *)
			            ci->client_addr)
			         ->sin6_addr,
			    16);
		}
		for (i = 0; i < w->cfg->n_trusted_proxies; i++) {
			struct util_cidr c;

			if (util_cidr_parse(w->cfg->trusted_proxies[i], &c) ==
			        0 &&
			    util_cidr_match(&c, addr))
				trusted = true;
		}
	}
	if (trusted) {
		fh = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, "X-Forwarded-Host");
		fp = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
		if (fh != NULL)
			host = fh;
		if (fp != NULL &&
		    (strcmp(fp, "https") == 0 || strcmp(fp, "http") == 0))
			proto = fp;
	}
	if (host == NULL || host[0] == '\0' || strlen(host) > 255)
		return WP_EINVAL;
	/* A Host header goes into links: plain host[:port] only. */
	for (k = 0; host[k] != '\0'; k++)
		if (!((host[k] >= 'a' && host[k] <= 'z') ||
		        (host[k] >= 'A' && host[k] <= 'Z') ||
		        (host[k] >= '0' && host[k] <= '9') ||
		        strchr(".-:[]", host[k])))
			return WP_EINVAL;
	(void)snprintf(buf, len, "%s://%s", proto, host);
	return 0;
}

/* ---- the op's life ---------------------------------------------------- */

static struct media_op *
media_op_new(enum media_op_type type, media_done_fn *fn, void *arg, int idx,
    size_t body_max)
{
	struct media_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return NULL;
	op->magic = MEDIA_MAGIC;
	op->type = type;
	op->fn = fn;
	op->arg = arg;
	op->idx = idx;
	op->fd = -1;
	buf_init(&op->body, body_max);
	op->x.magic = WRK_XFER_MAGIC;
	op->x.arg = op;
	return op;
}

static void
media_op_free(struct media_op *op)
{
	if (op == NULL)
		return;
	if (op->x.easy != NULL)
		curl_easy_cleanup(op->x.easy);
	grok_headers_free(op->hdrs);
	free(op->payload);
	buf_fini(&op->body);
	if (op->fd >= 0) {
		close_fd(&op->fd);
		(void)unlink(op->tmp); /* never finished: not ours to keep */
	}
	op->magic = 0;
	free(op);
}

void
media_cancel(struct wrk *w, struct media_op *op)
{
	if (op == NULL)
		return;
	wrk_up_stop(w, &op->x);
	media_op_free(op);
}

static void media_fail(struct wrk *w, struct media_op *op, int rc,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
media_fail(struct wrk *w, struct media_op *op, int rc, const char *fmt, ...)
{
	struct media_res res;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&res, 0, sizeof(res));
	res.rc = rc;
	res.err = msg;
	op->fn(w, op->arg, op->idx, &res);
	media_op_free(op);
}

static size_t
media_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct media_op *op = arg;
	size_t n = size * nmemb;

	CHECK_OBJ(op, MEDIA_MAGIC);
	if (op->fd >= 0) {
		long status = 0;

		(void)curl_easy_getinfo(
		    op->x.easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			if (op->got + n > MEDIA_ASSET_MAX)
				return 0;
			if (util_write_all(op->fd, data, n) != 0) {
				op->werr = errno;
				return 0;
			}
			op->got += n;
			return n;
		}
	}
	if (buf_append(&op->body, data, n) != 0)
		return 0;
	return n;
}

/* Upstream calls: headers with the token's cookie, proxy, timeout. */
static int
media_upstream(struct wrk *w, struct media_op *op, const char *token,
    const char *url, long timeout_ms)
{
	char statsig[160], rid[40], proxy[CFG_STR_MAX];
	const char *path;

	/* The path after the host names the call for a signer. */
	path = strstr(url, "://");
	path = path != NULL ? strchr(path + 3, '/') : NULL;
	(void)wrk_statsig(w, op->payload != NULL ? "POST" : "GET",
	    path != NULL ? path : "/", statsig, sizeof(statsig));
	grok_request_id(rid);
	if ((op->hdrs = grok_headers(w->cfg, token, statsig, rid)) == NULL ||
	    (op->x.easy = curl_easy_init()) == NULL)
		return WP_ENOMEM;
	wrk_up_defaults(w, op->x.easy);
	wrk_proxy_get(w, proxy, sizeof(proxy));
	(void)curl_easy_setopt(op->x.easy, CURLOPT_URL, url);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_PROXY, proxy);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_HTTPHEADER, op->hdrs);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_WRITEFUNCTION, media_on_body);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_WRITEDATA, op);
	if (op->payload != NULL)
		(void)curl_easy_setopt(
		    op->x.easy, CURLOPT_POSTFIELDS, op->payload);
	return 0;
}

/* ---- input images ------------------------------------------------------ */

static bool
media_addr_forbidden(const struct wrk *w, const uint8_t a[16])
{
	static const char *const deny[] = {
		"0.0.0.0/8",
		"10.0.0.0/8",
		"100.64.0.0/10",
		"127.0.0.0/8",
		"169.254.0.0/16",
		"172.16.0.0/12",
		"192.0.0.0/24",
		"192.168.0.0/16",
		"198.18.0.0/15",
		"224.0.0.0/3",
		"::/128",
		"::1/128",
		"fc00::/7",
		"fe80::/10",
		"ff00::/8",
		"64:ff9b::/96",
	};
	struct util_cidr c;
	size_t i;

	for (i = 0; i < w->cfg->n_image_fetch_allow; i++)
		if (util_cidr_parse(w->cfg->image_fetch_allow[i], &c) == 0 &&
		    util_cidr_match(&c, a))
			return false;
	for (i = 0; i < ARRAY_LEN(deny); i++)
		if (util_cidr_parse(deny[i], &c) == 0 && util_cidr_match(&c, a))
			return true;
	return false;
}

/*
 * Every connection the fetch opens, redirects included, passes here with
 * the address curl resolved: a name that resolves to a private address is
 * caught as surely as a literal one.
 */
static curl_socket_t
media_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct media_op *op = arg;
	char shown[64] = "?";
	uint8_t a[16];

	(void)purpose;
	CHECK_OBJ(op, MEDIA_MAGIC);
	memset(a, 0, sizeof(a));
	if (sa->family == AF_INET) {
		const struct sockaddr_in *in =
		    (const struct sockaddr_in *)(const void *)&sa->addr;

		a[10] = a[11] = 0xff;
		memcpy(a + 12, &in->sin_addr, 4);
		(void)inet_ntop(AF_INET, &in->sin_addr, shown, sizeof(shown));
	} else if (sa->family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)(const void *)&sa->addr;

		memcpy(a, &in6->sin6_addr, 16);
		(void)inet_ntop(
		    AF_INET6, &in6->sin6_addr, shown, sizeof(shown));
	} else {
		(void)snprintf(op->refused, sizeof(op->refused),
		    "not an internet address");
		return CURL_SOCKET_BAD;
	}
	if (media_addr_forbidden(op->w, a)) {
		(void)snprintf(op->refused, sizeof(op->refused),
		    "%s is a loopback, private, link-local or metadata address",
		    shown);
		return CURL_SOCKET_BAD;
	}
	return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

static void
media_deliver_image(struct wrk *w, struct media_op *op, const unsigned char *b,
    size_t n, const char *what)
{
	struct media_res res;
	const char *mime = media_sniff(b, n);

	if (mime == NULL) {
		media_fail(w, op, WP_EINVAL,
		    "image %d (%s) is not a PNG, JPEG, GIF or WebP image",
		    op->idx + 1, what);
		return;
	}
	memset(&res, 0, sizeof(res));
	res.bytes = b;
	res.len = n;
	res.mime = mime;
	op->fn(w, op->arg, op->idx, &res);
	media_op_free(op);
}

static void
media_fetch_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct media_op *op = x->arg;
	long status = 0;

	CHECK_OBJ(op, MEDIA_MAGIC);
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (op->refused[0] != '\0') {
		media_fail(w, op, WP_EINVAL, "image %d: refused: %s",
		    op->idx + 1, op->refused);
		return;
	}
	if (rc != CURLE_OK || status != 200) {
		media_fail(w, op, WP_EINVAL,
		    "image %d could not be downloaded: %s", op->idx + 1,
		    rc != CURLE_OK    ? curl_easy_strerror(rc)
		        : status == 0 ? "no answer"
		                      : "the server did not answer 200");
		return;
	}
	media_deliver_image(w, op, (const unsigned char *)op->body.p,
	    op->body.len, "downloaded");
}

static int
media_decode(const char *b64, size_t n, struct buf *out)
{
	size_t max = n / 4 * 3 + 3, got = 0;

	if (max > out->max)
		return WP_ETOOBIG;
	if (buf_append(out, "", 0) != 0 || out->cap < max + 1) {
		char *p = realloc(out->p, max + 1);

		if (p == NULL)
			return WP_ENOMEM;
		out->p = p;
		out->cap = max + 1;
	}
	if (sodium_base642bin((unsigned char *)out->p, max, b64, n, " \r\n\t",
	        &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 &&
	    sodium_base642bin((unsigned char *)out->p, max, b64, n, " \r\n\t",
	        &got, NULL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)
		return WP_EINVAL;
	out->len = got;
	return 0;
}

int
media_image_get(struct wrk *w, const char *src, media_done_fn *fn, void *arg,
    int idx, struct media_op **opp)
{
	struct media_op *op;
	const char *comma;
	int rc;

	*opp = NULL;
	if ((op = media_op_new(
	         MEDIA_OP_FETCH, fn, arg, idx, MEDIA_IMAGE_MAX)) == NULL)
		return WP_ENOMEM;
	if (strncmp(src, "http://", 7) != 0 &&
	    strncmp(src, "https://", 8) != 0) {
		/* data:<mime>;base64,<data>, or the bare base64. */
		if (strncmp(src, "data:", 5) == 0) {
			comma = strchr(src, ',');
			if (comma == NULL || strstr(src, ";base64") == NULL ||
			    strstr(src, ";base64") > comma) {
				media_fail(w, op, WP_EINVAL,
				    "image %d: a data: URI must be base64 "
				    "(data:image/png;base64,...)",
				    idx + 1);
				return 0;
			}
			src = comma + 1;
		}
		rc = media_decode(src, strlen(src), &op->body);
		if (rc != 0) {
			media_fail(w, op, rc,
			    rc == WP_ETOOBIG
			        ? "image %d is larger than %u MiB"
			        : "image %d is neither an http(s) URL, a data: "
			          "URI nor base64",
			    idx + 1, MEDIA_IMAGE_MAX >> 20);
			return 0;
		}
		media_deliver_image(w, op, (const unsigned char *)op->body.p,
		    op->body.len, "inline");
		return 0;
	}
	if ((op->x.easy = curl_easy_init()) == NULL) {
		media_op_free(op);
		return WP_ENOMEM;
	}
	op->w = w;
	op->x.done = media_fetch_done;
	(void)curl_easy_setopt(op->x.easy, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_URL, src);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(op->x.easy, CURLOPT_FOLLOWLOCATION, 1L);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_MAXREDIRS, 3L);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_PROXY, "");
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_TIMEOUT_MS, (long)MEDIA_FETCH_MS);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MEDIA_IMAGE_MAX);
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_OPENSOCKETFUNCTION, media_opensocket);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_OPENSOCKETDATA, op);
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_WRITEFUNCTION, media_on_body);
	(void)curl_easy_setopt(op->x.easy, CURLOPT_WRITEDATA, op);
	(void)curl_easy_setopt(
	    op->x.easy, CURLOPT_USERAGENT, "webproxyd image fetch");
	if (wrk_up_start(w, &op->x) != 0) {
		media_op_free(op);
		return WP_EINVAL;
	}
	*opp = op;
	return 0;
}

/* ---- uploads and posts -------------------------------------------------- */

static void
media_json_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct media_op *op = x->arg;
	struct media_res res;
	json_t *root = NULL;
	const char *what =
	    op->type == MEDIA_OP_UPLOAD ? "upload" : "media post";
	char desc[256];
	bool anti_bot;
	long status = 0;

	CHECK_OBJ(op, MEDIA_MAGIC);
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		media_fail(w, op, WP_ESYS, "image %d: grok.com %s failed: %s",
		    op->idx + 1, what, curl_easy_strerror(rc));
		return;
	}
	if (status != 200) {
		grok_error_describe(status, op->body.p ? op->body.p : "",
		    op->body.len, desc, sizeof(desc), &anti_bot);
		media_fail(w, op, WP_ESYS,
		    "image %d: grok.com refused the %s (%ld: %s)", op->idx + 1,
		    what, status, desc);
		return;
	}
	root = json_loadb(op->body.p ? op->body.p : "", op->body.len, 0, NULL);
	memset(&res, 0, sizeof(res));
	if (op->type == MEDIA_OP_UPLOAD) {
		res.file_id =
		    json_string_value(json_object_get(root, "fileMetadataId"));
		res.file_uri =
		    json_string_value(json_object_get(root, "fileUri"));
		if (res.file_id == NULL || res.file_id[0] == '\0') {
			json_decref(root);
			media_fail(w, op, WP_EPARSE,
			    "image %d: grok.com's upload answer has no "
			    "fileMetadataId",
			    op->idx + 1);
			return;
		}
	} else {
		res.post_id = json_string_value(
		    json_object_get(json_object_get(root, "post"), "id"));
		if (res.post_id == NULL) {
			json_decref(root);
			media_fail(w, op, WP_EPARSE,
			    "image %d: grok.com's media post answer has no id",
			    op->idx + 1);
			return;
		}
	}
	op->fn(w, op->arg, op->idx, &res);
	json_decref(root);
	media_op_free(op);
}

/*
 * POST body (taken, even on failure) as JSON to <upstream_url><path> for
 * op, answered in media_json_done. Returns 0 (op runs) or a WP_E code.
 */
static int
media_json_call(struct wrk *w, struct media_op *op, const char *token,
    const char *path, json_t *body)
{
	char url[CFG_STR_MAX + 48];
	int rc;

	op->payload = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (op->payload == NULL)
		return WP_ENOMEM;
	(void)snprintf(url, sizeof(url), "%s%s", w->cfg->upstream_url, path);
	if ((rc = media_upstream(w, op, token, url, MEDIA_UPSTREAM_MS)) != 0)
		return rc;
	op->x.done = media_json_done;
	return wrk_up_start(w, &op->x);
}

int
media_upload(struct wrk *w, const char *token, const unsigned char *bytes,
    size_t len, const char *mime, media_done_fn *fn, void *arg, int idx,
    struct media_op **opp)
{
	char name[32];
	struct media_op *op;
	char *b64 = NULL;
	size_t b64len =
	    sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	int rc = WP_ENOMEM;

	*opp = NULL;
	if ((op = media_op_new(
	         MEDIA_OP_UPLOAD, fn, arg, idx, MEDIA_REPLY_MAX)) == NULL ||
	    (b64 = malloc(b64len)) == NULL)
		goto out;
	(void)sodium_bin2base64(
	    b64, b64len, bytes, len, sodium_base64_VARIANT_ORIGINAL);
	(void)snprintf(name, sizeof(name), "image.%s",
	    strchr(mime, '/') != NULL ? strchr(mime, '/') + 1 : "jpg");
	if ((rc = media_json_call(w, op, token, "/rest/app-chat/upload-file",
	         json_pack("{s:s, s:s, s:s}", "fileName", name, "fileMimeType",
	             mime, "content", b64))) != 0)
		goto out;
	*opp = op;
	op = NULL;
out:
	free(b64);
	media_op_free(op);
	return rc;
}

int
media_post_create(struct wrk *w, const char *token, const char *file_uri,
    media_done_fn *fn, void *arg, int idx, struct media_op **opp)
{
	char media[CFG_STR_MAX + 600];
	struct media_op *op;
	int rc = WP_ENOMEM;

	*opp = NULL;
	if ((op = media_op_new(MEDIA_OP_POST, fn, arg, idx, MEDIA_REPLY_MAX)) ==
	    NULL)
		goto out;
	(void)snprintf(
	    media, sizeof(media), "%s/%s", w->cfg->assets_url, file_uri);
	if ((rc = media_json_call(w, op, token, "/rest/media/post/create",
	         json_pack("{s:s, s:s}", "mediaType", "MEDIA_POST_TYPE_IMAGE",
	             "mediaUrl", media))) != 0)
		goto out;
	*opp = op;
	op = NULL;
out:
	media_op_free(op);
	return rc;
}

/* ---- downloads into the cache ------------------------------------------- */

static void
media_dl_done(struct wrk *w, struct wrk_xfer *x, CURLcode rc)
{
	struct media_op *op = x->arg;
	struct media_res res;
	long status = 0;

	CHECK_OBJ(op, MEDIA_MAGIC);
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (op->werr != 0) {
		/* The disk, not grok.com: say so (ENOSPC, EDQUOT, EIO). */
		media_fail(w, op, WP_ESYS,
		    "the media cache %s cannot be written: %s", op->tmp,
		    strerror(op->werr));
		return;
	}
	if (rc != CURLE_OK || status < 200 || status >= 300 || op->got == 0) {
		media_fail(w, op, WP_ESYS, "grok.com asset download failed: %s",
		    rc != CURLE_OK ? curl_easy_strerror(rc) : "bad status");
		return;
	}
	if (close(op->fd) != 0 || rename(op->tmp, op->final) != 0) {
		op->fd = -1;
		log_warn("media cache: %s", op->final);
		(void)unlink(op->tmp);
		media_fail(w, op, WP_ESYS, "the media cache is not writable");
		return;
	}
	op->fd = -1;
	shm_wake_janitor(w->shm);
	memset(&res, 0, sizeof(res));
	res.name = op->name;
	op->fn(w, op->arg, op->idx, &res);
	media_op_free(op);
}

static int
media_mkdirs(const char *dir)
{
	char tmp[MEDIA_PATH_MAX];
	char *p;

	if (util_strlcpy(tmp, dir, sizeof(tmp)) != 0)
		return WP_ETOOBIG;
	for (p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return WP_ESYS;
		*p = '/';
	}
	return mkdir(tmp, 0700) != 0 && errno != EEXIST ? WP_ESYS : 0;
}

int
media_download(struct wrk *w, const char *token, const char *path,
    enum media_kind kind, media_done_fn *fn, void *arg, int idx,
    struct media_op **opp)
{
	char url[CFG_STR_MAX + 600], dir[CFG_STR_MAX + 32];
	struct media_op *op;
	int rc;

	*opp = NULL;
	if (!media_path_ok(path))
		return WP_EINVAL;
	if ((op = media_op_new(MEDIA_OP_DL, fn, arg, idx, MEDIA_REPLY_MAX)) ==
	    NULL)
		return WP_ENOMEM;
	op->kind = kind;
	media_dir(w->cfg, kind, dir, sizeof(dir));
	media_name_for(path, kind, op->name, sizeof(op->name));
	(void)snprintf(op->final, sizeof(op->final), "%s/%s", dir, op->name);
	(void)snprintf(op->tmp, sizeof(op->tmp), "%s/.tmp-XXXXXX", dir);
	if (media_mkdirs(dir) != 0 ||
	    (op->fd = mkostemp(op->tmp, O_CLOEXEC)) < 0) {
		log_warn("media cache: %s", dir);
		op->fd = -1;
		media_op_free(op);
		return WP_ESYS;
	}
	(void)fchmod(op->fd, 0644); /* served to anyone with the link */
	(void)snprintf(url, sizeof(url), "%s/%s", w->cfg->assets_url, path);
	if ((rc = media_upstream(w, op, token, url, MEDIA_DOWNLOAD_MS)) != 0 ||
	    (op->x.done = media_dl_done, rc = wrk_up_start(w, &op->x)) != 0) {
		media_op_free(op);
		return rc;
	}
	*opp = op;
	return 0;
}
