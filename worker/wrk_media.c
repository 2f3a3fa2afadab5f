/*
 * Generated media: the cache under <data_dir>/data/temp/{image,video},
 * served at /images/image/<file> and /images/video/<file>, and the
 * OpenAI images API. XXX: #4 builds it; until then 404.
 */
#include <microhttpd.h>

#include "wrk.h"

int
wrk_media_serve(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	(void)method;
	return wrk_send_error(rq, conn, 404, NULL, "not_found", "No such file");
}

int
wrk_media_generate(struct wrk_req *rq, struct MHD_Connection *conn)
{
	return wrk_send_error(rq, conn, 404, NULL, "not_found",
	    "Image generation is not part of this build yet");
}
