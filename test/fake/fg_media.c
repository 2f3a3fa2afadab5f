/*
 * fakegrok's file routes: POST /rest/app-chat/upload-file, POST
 * /rest/media/post/create, and asset downloads (GET of any path outside
 * /rest/ and /__fake/, standing in for https://assets.grok.com/<path>).
 *
 * An upload must name a plain fileName and a type/subtype fileMimeType,
 * and carry standard base64 that decodes to at least one byte; an image
 * MIME type (image/png...) must match the bytes' magic number. It is
 * kept (fg_store.c) at users/<account>/<fileMetadataId>/content, where
 * <account> is a UUID derived from the sso token, and served back at that
 * fileUri. An image media post must point at such an upload of the same
 * account; its id is derived from the file, so the videoGen chat can
 * check it.
 *
 * Any other "users/..." path ending in .jpg/.jpeg, .png or .mp4 gets
 * small synthetic bytes of that type; the JPEG, PNG and MP4 carry the
 * path in a comment, tEXt chunk or free box, so a test can tell which
 * asset a cached file came from. A "users/<uuid>/..." path of another
 * account than the cookie's is 403, like the real assets host. Runs in
 * MHD threads; no state of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "log.h"
#include "util.h"

#include "fg.h"

/* A 1x1 RGB PNG. */
static const unsigned char fg_png[] = {
	0x89,
	0x50,
	0x4e,
	0x47,
	0x0d,
	0x0a,
	0x1a,
	0x0a,
	0x00,
	0x00,
	0x00,
	0x0d,
	0x49,
	0x48,
	0x44,
	0x52,
	0x00,
	0x00,
	0x00,
	0x01,
	0x00,
	0x00,
	0x00,
	0x01,
	0x08,
	0x02,
	0x00,
	0x00,
	0x00,
	0x90,
	0x77,
	0x53,
	0xde,
	0x00,
	0x00,
	0x00,
	0x0c,
	0x49,
	0x44,
	0x41,
	0x54,
	0x78,
	0x9c,
	0x63,
	0x30,
	0x4e,
	0x3b,
	0x03,
	0x00,
	0x02,
	0x35,
	0x01,
	0x66,
	0x8a,
	0x92,
	0x44,
	0x32,
	0x00,
	0x00,
	0x00,
	0x00,
	0x49,
	0x45,
	0x4e,
	0x44,
	0xae,
	0x42,
	0x60,
	0x82,
};

/* SOI and a JFIF header; a COM segment with the path follows. */
static const unsigned char fg_jpeg_head[] = {
	0xff,
	0xd8,
	0xff,
	0xe0,
	0x00,
	0x10,
	0x4a,
	0x46,
	0x49,
	0x46,
	0x00,
	0x01,
	0x01,
	0x00,
	0x00,
	0x01,
	0x00,
	0x01,
	0x00,
	0x00,
};

/*
 * A grey 1x1 baseline JPEG: flat quantisation table, one-code Huffman
 * tables (DC difference 0, AC end-of-block), one block of scan data.
 */
static const unsigned char fg_jpeg_tail[] = {
	0xff,
	0xdb,
	0x00,
	0x43,
	0x00, /* DQT, 64 ones follow */
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	1,
	0xff,
	0xc0,
	0x00,
	0x0b,
	0x08,
	0x00,
	0x01,
	0x00,
	0x01,
	0x01,
	0x01,
	0x11,
	0x00, /* SOF0 1x1, one component */
	0xff,
	0xc4,
	0x00,
	0x14,
	0x00,
	0x01,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0x00, /* DHT DC 0 */
	0xff,
	0xc4,
	0x00,
	0x14,
	0x10,
	0x01,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0,
	0x00, /* DHT AC 0 */
	0xff,
	0xda,
	0x00,
	0x08,
	0x01,
	0x01,
	0x00,
	0x00,
	0x3f,
	0x00, /* SOS */
	0x3f, /* "00" + padding */
	0xff,
	0xd9,
};

/* ftyp isom; a free box with the path and an empty mdat follow. */
static const unsigned char fg_mp4_head[] = {
	0x00,
	0x00,
	0x00,
	0x18,
	'f',
	't',
	'y',
	'p',
	'i',
	's',
	'o',
	'm',
	0x00,
	0x00,
	0x02,
	0x00,
	'i',
	's',
	'o',
	'm',
	'm',
	'p',
	'4',
	'1',
};

/* The PNG signature (8 bytes) and its IHDR chunk (25 bytes). */
#define FG_PNG_HEAD 33

static uint32_t
fg_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
	size_t i;
	int k;

	crc = ~crc;
	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
	}
	return ~crc;
}

/* A PNG tEXt chunk "Comment" = text[0..n). */
static int
fg_png_text(struct buf *b, const char *text, size_t n)
{
	static const unsigned char kw[] = "tEXtComment"; /* and its NUL */
	unsigned char be[4];
	size_t len = sizeof(kw) - 4 + n; /* "Comment", NUL, text */
	uint32_t crc;
	int rc;

	be[0] = (unsigned char)(len >> 24);
	be[1] = (unsigned char)(len >> 16);
	be[2] = (unsigned char)(len >> 8);
	be[3] = (unsigned char)len;
	if ((rc = buf_append(b, be, 4)) != 0 ||
	    (rc = buf_append(b, kw, sizeof(kw))) != 0 ||
	    (rc = buf_append(b, text, n)) != 0)
		return rc;
	crc = fg_crc32(0, kw, sizeof(kw));
	crc = fg_crc32(crc, (const unsigned char *)text, n);
	be[0] = (unsigned char)(crc >> 24);
	be[1] = (unsigned char)(crc >> 16);
	be[2] = (unsigned char)(crc >> 8);
	be[3] = (unsigned char)crc;
	return buf_append(b, be, 4);
}

static const char *
fg_ext(const char *path)
{
	const char *dot = strrchr(path, '.');

	return dot != NULL && strchr(dot, '/') == NULL ? dot + 1 : "";
}

/* Synthetic bytes for path, or WP_ENOENT for a type we do not make. */
static int
fg_asset_make(const char *path, struct buf *b, const char **ctype)
{
	const char *ext = fg_ext(path);
	size_t n = strlen(path);
	unsigned char len[4];
	int rc;

	if (n > 60000)
		n = 60000;
	if (strcasecmp(ext, "jpg") == 0 || strcasecmp(ext, "jpeg") == 0) {
		*ctype = "image/jpeg";
		len[0] = (unsigned char)((n + 2) >> 8);
		len[1] = (unsigned char)(n + 2);
		if ((rc = buf_append(b, fg_jpeg_head, sizeof(fg_jpeg_head))) ||
		    (rc = buf_append(b, "\xff\xfe", 2)) ||
		    (rc = buf_append(b, len, 2)) ||
		    (rc = buf_append(b, path, n)))
			return rc;
		return buf_append(b, fg_jpeg_tail, sizeof(fg_jpeg_tail));
	}
	if (strcasecmp(ext, "png") == 0) {
		/* Signature and IHDR, a tEXt chunk with the path, the rest */
		*ctype = "image/png";
		if ((rc = buf_append(b, fg_png, FG_PNG_HEAD)) != 0 ||
		    (rc = fg_png_text(b, path, n)) != 0)
			return rc;
		return buf_append(
		    b, fg_png + FG_PNG_HEAD, sizeof(fg_png) - FG_PNG_HEAD);
	}
	if (strcasecmp(ext, "mp4") == 0) {
		*ctype = "video/mp4";
		len[0] = (unsigned char)((n + 8) >> 24);
		len[1] = (unsigned char)((n + 8) >> 16);
		len[2] = (unsigned char)((n + 8) >> 8);
		len[3] = (unsigned char)(n + 8);
		if ((rc = buf_append(b, fg_mp4_head, sizeof(fg_mp4_head))) ||
		    (rc = buf_append(b, len, 4)) ||
		    (rc = buf_append(b, "free", 4)) ||
		    (rc = buf_append(b, path, n)))
			return rc;
		return buf_append(b, "\x00\x00\x00\x08mdat", 8);
	}
	return WP_ENOENT;
}

/*
 * "users/<uuid>/..." names the account that owns an asset. Whether path
 * belongs to another account than token's: the real assets host answers
 * 403 to a cookie that is valid but not the owner's.
 */
static bool
fg_asset_foreign(const char *token, const char *path)
{
	char user[37];

	if (strncmp(path, "users/", 6) != 0 || strlen(path) < 6 + 37 ||
	    path[6 + 36] != '/')
		return false;
	fg_uuid_from(token, user);
	return memcmp(path + 6, user, 36) != 0;
}

void
fg_asset_handle(
    const char *token, const char *method, const char *path, struct fg_reply *r)
{
	unsigned char *data = NULL;
	char mime[128];
	const char *ctype = NULL;
	struct buf b;
	size_t len;
	int rc;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		fg_reply_error(r, 405, 12, "method not allowed");
		return;
	}
	while (*path == '/')
		path++;
	if (fg_asset_foreign(token, path)) {
		fg_reply_error(r, 403, 7, "Forbidden");
		(void)util_strlcpy(
		    r->note, "another account's asset", sizeof(r->note));
		return;
	}
	if (fg_upl_get(path, &data, &len, mime, sizeof(mime)) == 0) {
		fg_reply_text(r, 200, mime, (const char *)data, len);
		free(data);
		(void)util_strlcpy(r->note, "upload", sizeof(r->note));
		return;
	}
	buf_init(&b, (size_t)1 << 20);
	rc = strncmp(path, "users/", 6) == 0 ? fg_asset_make(path, &b, &ctype)
	                                     : WP_ENOENT;
	if (rc == 0)
		fg_reply_text(r, 200, ctype, b.p, b.len);
	else
		fg_reply_error(r, 404, 5, "asset not found");
	buf_fini(&b);
}

void
fg_upload_uri(const char *token, const char *id, char *out, size_t len)
{
	char user[37];

	fg_uuid_from(token, user);
	(void)snprintf(out, len, "users/%s/%s/content", user, id);
}

void
fg_post_id(const char *uri, char out[37])
{
	char seed[600];

	(void)snprintf(seed, sizeof(seed), "post/%s", uri);
	fg_uuid_from(seed, out);
}

/* The image type of some bytes, by their magic number; NULL if unknown. */
static const char *
fg_sniff(const unsigned char *b, size_t n)
{
	if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return "image/jpeg";
	if (n >= 6 &&
	    (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
		return "image/gif";
	if (n >= 12 && memcmp(b, "RIFF", 4) == 0 &&
	    memcmp(b + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

static bool
fg_str_set(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

/*
 * An upload's metadata as grok.com would take it: a plain file name, a
 * "type/subtype" MIME type; NULL if fine.
 */
static const char *
fg_upload_check(const json_t *name, const json_t *mime)
{
	const char *n = json_string_value(name), *m = json_string_value(mime);
	size_t i;

	if (!fg_str_set(name) || json_string_length(name) > 255 ||
	    strchr(n, '/') != NULL || strchr(n, '\\') != NULL ||
	    strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
		return "fileName: a plain file name (no folders) is required";
	if (!fg_str_set(mime) || json_string_length(mime) > 127 ||
	    strchr(m, '/') == NULL || m[0] == '/' || strchr(m, '/')[1] == '\0')
		return "fileMimeType: a type/subtype MIME type is required";
	for (i = 0; m[i] != '\0'; i++)
		if (m[i] <= ' ' || m[i] >= 0x7f)
			return "fileMimeType: a type/subtype MIME type is "
			       "required";
	return NULL;
}

void
fg_upload_handle(const char *token, const json_t *o, struct fg_reply *r)
{
	const json_t *name = json_object_get(o, "fileName");
	const json_t *mime = json_object_get(o, "fileMimeType");
	const json_t *content = json_object_get(o, "content");
	char id[37], uri[128], now[40], msg[160];
	const char *why, *m, *is;
	unsigned char *data = NULL;
	size_t n, len;
	json_t *out;

	if (!json_is_object(o)) {
		fg_reply_error(r, 400, 3, "request body must be a JSON object");
		return;
	}
	if ((why = fg_upload_check(name, mime)) != NULL) {
		fg_reply_error(r, 400, 3, why);
		return;
	}
	if (!fg_str_set(content)) {
		fg_reply_error(r, 400, 3, "content: base64 data is required");
		return;
	}
	n = json_string_length(content);
	if ((data = malloc(n / 4 * 3 + 1)) == NULL) {
		fg_reply_error(r, 500, 13, "out of memory");
		return;
	}
	if (fg_b64_decode(json_string_value(content), n, data, &len) != 0 ||
	    len == 0) {
		free(data);
		fg_reply_error(r, 400, 3,
		    "content: not valid standard base64 (with padding, no "
		    "data: prefix)");
		(void)util_strlcpy(r->note, "bad base64", sizeof(r->note));
		return;
	}
	/* An image must be the image it says it is. */
	m = json_string_value(mime);
	is = fg_sniff(data, len);
	if (strncmp(m, "image/", 6) == 0 &&
	    (is == NULL ? strcmp(m, "image/png") == 0 ||
	                strcmp(m, "image/jpeg") == 0 ||
	                strcmp(m, "image/gif") == 0 ||
	                strcmp(m, "image/webp") == 0
	                : strcmp(m, is) != 0)) {
		free(data);
		(void)snprintf(msg, sizeof(msg),
		    "content: the bytes are %s, not %s",
		    is != NULL ? is : "no known image type", m);
		fg_reply_error(r, 400, 3, msg);
		(void)util_strlcpy(r->note, "mime mismatch", sizeof(r->note));
		return;
	}
	fg_uuid(id);
	fg_upload_uri(token, id, uri, sizeof(uri));
	if (fg_upl_put(uri, m, json_string_value(name), &data, len) != 0) {
		free(data);
		fg_reply_error(r, 500, 13, "out of memory");
		return;
	}
	fg_iso_time(now);
	out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}",
	    "fileMetadataId", id, "fileMimeType", m, "fileName",
	    json_string_value(name), "fileUri", uri, "parsedFileUri", "",
	    "createTime", now, "fileSource", "SELF_UPLOAD_FILE_SOURCE", "size",
	    (json_int_t)len);
	fg_reply_json(r, 200, out);
}

/* protobuf-JSON accepts both spellings of a field. */
static const json_t *
fg_either(const json_t *o, const char *snake, const char *camel)
{
	const json_t *v = json_object_get(o, snake);

	return v != NULL ? v : json_object_get(o, camel);
}

void
fg_post_handle(const char *token, const json_t *o, struct fg_reply *r)
{
	const json_t *type, *url, *prompt;
	const char *t, *uri = NULL;
	char id[37], user[37], now[40];
	json_t *post;

	if (!json_is_object(o)) {
		fg_reply_error(r, 400, 3, "request body must be a JSON object");
		return;
	}
	type = fg_either(o, "media_type", "mediaType");
	url = fg_either(o, "media_url", "mediaUrl");
	prompt = json_object_get(o, "prompt");
	t = json_string_value(type);
	if (t == NULL ||
	    (strcmp(t, "MEDIA_POST_TYPE_IMAGE") != 0 &&
	        strcmp(t, "MEDIA_POST_TYPE_VIDEO") != 0)) {
		fg_reply_error(r, 400, 3,
		    "mediaType: MEDIA_POST_TYPE_IMAGE or MEDIA_POST_TYPE_VIDEO "
		    "is required");
		return;
	}
	if ((url != NULL && !json_is_string(url)) ||
	    (prompt != NULL && !json_is_string(prompt))) {
		fg_reply_error(r, 400, 3, "mediaUrl and prompt are strings");
		return;
	}
	if (strcmp(t, "MEDIA_POST_TYPE_IMAGE") == 0
	        ? !fg_str_set(url)
	        : !fg_str_set(prompt) && !fg_str_set(url)) {
		fg_reply_error(r, 400, 3,
		    "an image post needs mediaUrl; a video post a prompt");
		return;
	}
	/*
	 * An image post is of a file this account uploaded: mediaUrl is
	 * <assets host>/<fileUri>. Its id is derived from the file, so a
	 * videoGen chat can tell whether it names the post of its image.
	 */
	if (url != NULL)
		uri = strstr(json_string_value(url), "/users/");
	if (strcmp(t, "MEDIA_POST_TYPE_IMAGE") == 0 &&
	    (uri == NULL || fg_asset_foreign(token, uri + 1) ||
	        !fg_upl_has(uri + 1))) {
		fg_reply_error(r, 400, 3,
		    "mediaUrl: not a file this account uploaded "
		    "(<assets>/users/<user>/<file>/content)");
		(void)util_strlcpy(
		    r->note, "unknown mediaUrl", sizeof(r->note));
		return;
	}
	if (uri != NULL)
		fg_post_id(uri + 1, id);
	else
		fg_uuid(id);
	fg_uuid_from(token, user);
	fg_iso_time(now);
	post = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "userId",
	    user, "createTime", now, "mediaType", t, "mediaUrl",
	    url != NULL ? json_string_value(url) : "", "prompt",
	    prompt != NULL ? json_string_value(prompt) : "");
	fg_reply_json(r, 200, json_pack("{s:o}", "post", post));
}
