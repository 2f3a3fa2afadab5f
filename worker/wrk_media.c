/*
 * The media routes: GET/HEAD /images/image/<file> and /images/video/<file>
 * serve the cache (strict names only, so no path can leave the folder;
 * Range for video; the kernel sends the bytes), and POST
 * /v1/images/generations is an image chat answered in the OpenAI images
 * shape (wrk_chat.c). Worker only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "err.h"
#include "media.h"
#include "util.h"
#include "wrk.h"

int
wrk_media_generate(struct wrk_req *rq, struct MHD_Connection *conn)
{
	return wrk_chat_images(rq->w, rq, conn);
}

/*
 * "bytes=a-b", "bytes=a-" or "bytes=-n" against size. Returns 1 with the
 * range, 0 when there is no (usable) Range header, -1 when unsatisfiable.
 */
static int
media_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
	const char *dash;
	char a[24], b[24];
	int64_t x, y;
	size_t n;

	if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
		return 0;
	h += 6;
	if ((dash = strchr(h, '-')) == NULL)
		return 0;
	n = (size_t)(dash - h);
	if (n >= sizeof(a) || strlen(dash + 1) >= sizeof(b))
		return 0;
	memcpy(a, h, n);
	a[n] = '\0';
	(void)snprintf(b, sizeof(b), "%s", dash + 1);
	if (a[0] == '\0') { /* the last y bytes */
		if (util_parse_i64(b, 1, INT64_MAX, &y) != 0)
			return 0;
		if (size == 0)
			return -1;
		*len = (uint64_t)y < size ? (uint64_t)y : size;
		*off = size - *len;
		return 1;
	}
	if (util_parse_i64(a, 0, INT64_MAX, &x) != 0)
		return 0;
	if ((uint64_t)x >= size)
		return -1;
	if (b[0] == '\0')
		y = (int64_t)size - 1;
	else if (util_parse_i64(b, x, INT64_MAX, &y) != 0)
		return 0;
	if ((uint64_t)y >= size)
		y = (int64_t)size - 1;
	*off = (uint64_t)x;
	*len = (uint64_t)(y - x + 1);
	return 1;
}

static int
media_not_found(struct wrk_req *rq, struct MHD_Connection *conn)
{
	return wrk_send_error(
	    rq, conn, 404, NULL, "not_found", "File not found");
}

int
wrk_media_serve(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	char dir[CFG_STR_MAX + 32], path[CFG_STR_MAX + 96], cr[96];
	struct MHD_Response *resp;
	enum media_kind want, kind;
	const char *name, *url = rq->url;
	uint64_t off = 0, len;
	struct stat st;
	unsigned status = 200;
	int fd, rg, r;

	(void)method; /* HEAD: MHD leaves out the body itself */
	if (strncmp(url, "/images/image/", 14) == 0) {
		want = MEDIA_IMAGE;
		name = url + 14;
	} else if (strncmp(url, "/images/video/", 14) == 0) {
		want = MEDIA_VIDEO;
		name = url + 14;
	} else
		return media_not_found(rq, conn);
	/* Only names we make: nothing else can be asked for, ".." least. */
	if (!media_name_ok(name, &kind) || kind != want)
		return media_not_found(rq, conn);
	media_dir(rq->w->cfg, kind, dir, sizeof(dir));
	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return media_not_found(rq, conn);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close_fd(&fd);
		return media_not_found(rq, conn);
	}
	len = (uint64_t)st.st_size;
	rg = media_range(
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Range"),
	    (uint64_t)st.st_size, &off, &len);
	if (rg < 0) {
		close_fd(&fd);
		(void)snprintf(
		    cr, sizeof(cr), "bytes */%" PRIu64, (uint64_t)st.st_size);
		resp = MHD_create_response_from_buffer(
		    0, NULL, MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return MHD_NO;
		(void)MHD_add_response_header(resp, "Content-Range", cr);
		rq->status = 416;
		r = MHD_queue_response(conn, 416, resp);
		MHD_destroy_response(resp);
		return r;
	}
	/* An unlinked file stays readable: a sweep never breaks a transfer. */
	resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
	if (resp == NULL) {
		close_fd(&fd);
		return MHD_NO;
	}
	if (rg > 0) {
		status = 206;
		(void)snprintf(cr, sizeof(cr),
		    "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
		    off + len - 1, (uint64_t)st.st_size);
		(void)MHD_add_response_header(resp, "Content-Range", cr);
	}
	(void)MHD_add_response_header(resp, "Content-Type", media_mime(name));
	(void)MHD_add_response_header(resp, "Accept-Ranges", "bytes");
	(void)MHD_add_response_header(
	    resp, "Cache-Control", "public, max-age=86400");
	(void)MHD_add_response_header(
	    resp, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
	rq->status = status;
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}
