/*
 * What knows OpenAI's shapes: the error envelope and the model list.
 * Pure functions over jansson; no I/O. Worker only.
 */
#ifndef WP_OAI_H
#define WP_OAI_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

/*
 * The OpenAI error envelope {"error":{"message","type","param","code"}}
 * as a malloc'ed string (caller frees), or NULL on allocation failure.
 * param and code may be NULL (JSON null).
 */
char *oai_error(
    const char *message, const char *type, const char *param, const char *code);

/* An error type for an HTTP status ("invalid_request_error", ...). */
const char *oai_error_type(unsigned status);

/*
 * GET /v1/models: the models of c whose pool has a token (has_normal:
 * any token at all; has_super: a super token). Caller frees. When id is
 * not NULL, only that model, as a bare object; NULL when it is not there.
 */
char *oai_models(
    const struct cfg *c, bool has_any, bool has_super, const char *id);

#endif
