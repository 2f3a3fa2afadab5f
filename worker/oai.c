/*
 * OpenAI response shapes (see oai.h). Worker only; pure.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "oai.h"
#include "util.h"

/* What /v1/models says a model was created: a fixed date, 2025-01-01. */
#define OAI_MODEL_CREATED 1735689600

char *
oai_error(
    const char *message, const char *type, const char *param, const char *code)
{
	json_t *root;
	char *s, *msg, *p = NULL;

	/* Messages quote what clients and grok.com sent: make them UTF-8. */
	if ((msg = strdup(message)) == NULL ||
	    (param != NULL && (p = strdup(param)) == NULL)) {
		free(msg);
		return NULL;
	}
	util_utf8_clean(msg);
	if (p != NULL)
		util_utf8_clean(p);
	root = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", msg,
	    "type", type, "param", p, "code", code);
	free(msg);
	free(p);
	if (root == NULL)
		return NULL;
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

const char *
oai_error_type(unsigned status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 429:
		return "rate_limit_error";
	default:
		return status < 500 ? "invalid_request_error" : "server_error";
	}
}

static bool
oai_model_listed(const struct cfg_model *m, bool has_any, bool has_super)
{
	return m->pool == CFG_POOL_SUPER ? has_super : has_any;
}

static json_t *
oai_model_obj(const struct cfg_model *m)
{
	return json_pack("{s:s, s:s, s:i, s:s}", "id", m->name, "object",
	    "model", "created", OAI_MODEL_CREATED, "owned_by", "x-ai");
}

char *
oai_models(const struct cfg *c, bool has_any, bool has_super, const char *id)
{
	json_t *root = NULL, *data, *o;
	char *s = NULL;
	uint32_t i;

	if (!c->grok_enabled)
		has_any = has_super = false;
	if (id != NULL) {
		const struct cfg_model *m = cfg_model_find(c, id);

		if (m == NULL || !oai_model_listed(m, has_any, has_super))
			return NULL;
		root = oai_model_obj(m);
		goto out;
	}
	if ((root = json_pack("{s:s, s:[]}", "object", "list", "data")) == NULL)
		return NULL;
	data = json_object_get(root, "data");
	for (i = 0; i < c->n_models; i++) {
		if (!oai_model_listed(&c->models[i], has_any, has_super))
			continue;
		if ((o = oai_model_obj(&c->models[i])) == NULL ||
		    json_array_append_new(data, o) != 0) {
			json_decref(root); /* a partial list would mislead */
			return NULL;
		}
	}
out:
	if (root != NULL)
		s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}
