/*
 * Media operations of a worker, each one asynchronous on the worker's
 * curl multi handle: get a client's input image (a data: URI, bare
 * base64, or an http(s) URL fetched without ever reaching a private
 * address), upload it to grok.com, create the media post a video needs,
 * and download a generated image or video into the cache. Each op calls
 * its callback exactly once, unless cancelled first. Worker only.
 */
#ifndef WP_MEDIA_H
#define WP_MEDIA_H

#include <stdbool.h>
#include <stddef.h>

#include "wrk.h"

#define MEDIA_IMAGE_MAX (20u << 20)  /* an input image */
#define MEDIA_ASSET_MAX (200u << 20) /* a generated video */

enum media_kind { MEDIA_IMAGE, MEDIA_VIDEO };

struct media_op;

/* What an op produced; strings valid only during the callback. */
struct media_res {
	int rc;                     /* 0, or a WP_E* code */
	const char *err;            /* a sentence for the client when rc != 0 */
	const unsigned char *bytes; /* image_get: the image */
	size_t len;
	const char *mime;               /* image_get: its type */
	const char *file_id, *file_uri; /* upload */
	const char *post_id;            /* post_create */
	const char *name;               /* download: the cache file name */
};

typedef void media_done_fn(
    struct wrk *w, void *arg, int idx, const struct media_res *res);

/* A client's image: data: URI and base64 may finish before this returns. */
int media_image_get(struct wrk *w, const char *src, media_done_fn *fn,
    void *arg, int idx, struct media_op **opp);
/* POST /rest/app-chat/upload-file with the token's cookie. */
int media_upload(struct wrk *w, const char *token, const unsigned char *bytes,
    size_t len, const char *mime, media_done_fn *fn, void *arg, int idx,
    struct media_op **opp);
/* POST /rest/media/post/create for an uploaded image. */
int media_post_create(struct wrk *w, const char *token, const char *file_uri,
    media_done_fn *fn, void *arg, int idx, struct media_op **opp);
/* GET <assets_url>/<path> into the cache (temp name, then rename). */
int media_download(struct wrk *w, const char *token, const char *path,
    enum media_kind kind, media_done_fn *fn, void *arg, int idx,
    struct media_op **opp);
/* Stop an op; its callback will not run. NULL is fine. */
void media_cancel(struct wrk *w, struct media_op *op);

/* The cache folder of kind: <data_dir>/data/temp/{image,video}. */
void media_dir(
    const struct cfg *c, enum media_kind kind, char *buf, size_t len);
/* Whether name is one we make: 32 hex digits, a dot, a known extension. */
bool media_name_ok(const char *name, enum media_kind *kind);
/* The MIME type for a cache file name. */
const char *media_mime(const char *name);
/*
 * The public base of links: grok.base_url, or built from the request's
 * Host (X-Forwarded-* from a trusted proxy only). Returns 0 or WP_EINVAL.
 */
struct MHD_Connection;
int media_base_url(
    const struct wrk *w, struct MHD_Connection *conn, char *buf, size_t len);

#endif
