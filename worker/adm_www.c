/*
 * The admin panel's files (www/index.html, app.js, style.css), built
 * into the binary with the assembler's .incbin: the daemon serves the
 * panel wherever it is installed or started from, and a file can never
 * be read from outside www/. The Makefile rebuilds this object when a
 * file under www/ changes.
 *
 * Served at /projects/grok (and /projects/grok/) for index.html and
 * /projects/grok/<name> for the others, with a strict Content-Security-
 * Policy (only our own script and style), an ETag and no framing.
 * Worker only; one thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "adm.h"
#include "util.h"

/* Each file between two labels, NUL-terminated, in .rodata. */
#define ADM_WWW_EMBED(sym, path)                                               \
	__asm__(".pushsection .rodata\n"                                       \
	        ".balign 16\n" #sym ":\n"                                      \
	        ".incbin \"" path "\"\n" #sym "_end:\n"                        \
	        ".byte 0\n"                                                    \
	        ".popsection\n");                                              \
	extern const char sym[], sym##_end[]

ADM_WWW_EMBED(adm_www_index, "www/index.html");
ADM_WWW_EMBED(adm_www_app, "www/app.js");
ADM_WWW_EMBED(adm_www_style, "www/style.css");

struct adm_file {
	const char *name;
	const char *ctype;
	const char *start, *end;
};

static const struct adm_file adm_files[] = {
	{ "", "text/html; charset=utf-8", adm_www_index, adm_www_index_end },
	{ "index.html", "text/html; charset=utf-8", adm_www_index,
	    adm_www_index_end },
	{ "app.js", "text/javascript; charset=utf-8", adm_www_app,
	    adm_www_app_end },
	{ "style.css", "text/css; charset=utf-8", adm_www_style,
	    adm_www_style_end },
};

#define ADM_CSP                                                                \
	"default-src 'none'; script-src 'self'; style-src 'self'; "            \
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; "       \
	"base-uri 'none'; frame-ancestors 'none'"

/* A strong ETag from the file's bytes: quoted hex of 8 hash bytes. */
static void
adm_etag(const struct adm_file *f, char *out, size_t len)
{
	unsigned char h[8];

	crypto_generichash(h, sizeof(h), (const unsigned char *)f->start,
	    (size_t)(f->end - f->start), NULL, 0);
	(void)snprintf(out, len, "\"%02x%02x%02x%02x%02x%02x%02x%02x\"", h[0],
	    h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
}

int
adm_www_serve(struct wrk_req *rq, struct MHD_Connection *conn, const char *name)
{
	const struct adm_file *f = NULL;
	struct MHD_Response *resp;
	const char *inm;
	char etag[24];
	enum MHD_Result r;
	unsigned status = 200;
	size_t i;

	for (i = 0; i < ARRAY_LEN(adm_files); i++)
		if (strcmp(adm_files[i].name, name) == 0)
			f = &adm_files[i];
	if (f == NULL)
		return adm_error(rq, conn, 404, NULL, "not_found",
		    "No such file in the admin panel");
	adm_etag(f, etag, sizeof(etag));
	inm = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm != NULL && strstr(inm, etag) != NULL)
		status = 304;
	/* PERSISTENT: MHD neither copies nor frees our read-only bytes. */
	resp = MHD_create_response_from_buffer(
	    status == 304 ? 0 : (size_t)(f->end - f->start),
	    (void *)(uintptr_t)f->start, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(resp, "Content-Type", f->ctype);
	(void)MHD_add_response_header(resp, "Cache-Control", "no-cache");
	(void)MHD_add_response_header(resp, "ETag", etag);
	(void)MHD_add_response_header(resp, "Content-Security-Policy", ADM_CSP);
	(void)MHD_add_response_header(
	    resp, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	(void)MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	if (rq->w->draining)
		(void)MHD_add_response_header(resp, "Connection", "close");
	rq->status = status;
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}
