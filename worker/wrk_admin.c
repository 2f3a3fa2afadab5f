/*
 * The admin panel at /projects/grok and its JSON API under /api/.
 * XXX: #5 builds it; until then both answer 404.
 */
#include <microhttpd.h>

#include "wrk.h"

int
wrk_admin_static(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	(void)method;
	return wrk_send_error(rq, conn, 404, NULL, "not_found",
	    "The admin panel is not part of this build yet");
}

int
wrk_admin_api(
    struct wrk_req *rq, struct MHD_Connection *conn, const char *method)
{
	(void)method;
	return wrk_send_error(rq, conn, 404, NULL, "not_found",
	    "The admin API is not part of this build yet");
}
