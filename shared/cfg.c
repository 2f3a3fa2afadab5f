/*
 * The config loader (cfg.h). The master runs it at start, on SIGHUP and for
 * `webproxyd -t`; the unit tests call it directly. It owns nothing once it
 * returns and takes no locks.
 *
 * A file is read in three steps:
 *
 * 1. libyaml walks the events once: syntax errors (with libyaml's own
 *    position), aliases, non-string keys and a second document stop here.
 * 2. libcyaml loads the shape: the known sections and keys, lists and
 *    mappings where they belong. Every value is taken as a string; the key
 *    table types it in step 3, because libcyaml 1.3 reads any unknown word
 *    as boolean true and integers in base 0 ("010" is 8), and has no
 *    ranges. libcyaml does not say where a problem is, so its debug log is
 *    used to count the events it consumed: the walker of step 1 replays
 *    the same events up to that one and knows the key path and position.
 * 3. Each key of cfg_keys.h present in the file is parsed, range checked
 *    and stored over the defaults. A bad value is located by walking the
 *    events again until the node with that key path.
 *
 * Errors are one line: "file:line:col: key.path: problem" (line and column
 * from 1; key.path like grok.models[2].name, or "(top level)"). A file
 * that cannot be read gives "file: problem". Values of string keys are
 * never echoed: they may be secrets.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cyaml/cyaml.h>
#include <yaml.h>

#include "cfg.h"
#include "cfg_keys.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define CFG_FILE_MAX  (1024 * 1024) /* a config file is a few KiB */
#define CFG_DEPTH_MAX 16            /* ours is 4 deep; more is an error */
#define CFG_PATH_MAX  256
#define CFG_WHY_MAX   192
#define CFG_TOP_NAME  "(top level)"

enum cfg_type {
	CFG_T_STR,
	CFG_T_INT,
	CFG_T_BOOL,
	CFG_T_ENUM,
	CFG_T_STRLIST,
	CFG_T_INTLIST,
	CFG_T_MODELS,
};

enum cfg_apply { CFG_APPLY_RELOAD, CFG_APPLY_RESTART };

enum cfg_sect {
	CFG_SECT_SERVER,
	CFG_SECT_PROJECTS_GROK,
	CFG_SECT_GROK,
	CFG_SECT_MODEL,
};

/*
 * Extra check of a value. Returns 0, or WP_EPARSE / WP_ERANGE with a
 * reason in why. ENUM checks also store the number of the name in *val.
 */
typedef int cfg_chk_fn(const char *s, int64_t *val, char *why, size_t len);

/* One row of cfg_keys.h, with the offsets the generic code needs. */
struct cfg_key {
	const char *path; /* "server.listen"; just "name" for a model key */
	const char *def;  /* NULL: a new model must give it */
	const char *doc;
	cfg_chk_fn *chk;
	int64_t min, max;
	size_t off, size;            /* member in struct cfg / cfg_model */
	size_t elem;                 /* size of one list entry */
	size_t cnt_off;              /* list count member in struct cfg */
	size_t raw_off, raw_cnt_off; /* in the libcyaml section struct */
	uint8_t type;                /* enum cfg_type */
	uint8_t sect;                /* enum cfg_sect */
	uint8_t apply;               /* enum cfg_apply */
};

/* A file being loaded. */
struct cfg_ld {
	const char *path;
	char *buf;
	size_t len;
	char *err;
	size_t errlen;
	bool failed;   /* err holds the first error */
	char *errpath; /* set: only note where the parse stopped, quietly */
};

/* One open mapping or sequence while walking the events. */
struct cfg_frame {
	yaml_mark_t mark; /* of the current key, or of the current entry */
	unsigned n;       /* sequence: entries seen */
	bool seq;
	bool want_key; /* mapping: the next node is a key */
	char key[CFG_NAME_MAX];
};

struct cfg_walk {
	struct cfg_frame st[CFG_DEPTH_MAX];
	int depth;
	unsigned long events;
	int docs;
};

/* Where a walk stopped. */
struct cfg_where {
	char path[CFG_PATH_MAX];
	size_t line, col; /* from 1 */
	long idx;         /* sequence entry index, or -1 */
	yaml_event_type_t type;
};

/* What libcyaml told its log function. */
struct cfg_cylog {
	unsigned long events;  /* "Event:" debug lines: events consumed */
	char msg[CFG_WHY_MAX]; /* its first error line */
};

static cfg_chk_fn cfg_chk_none, cfg_chk_hostport, cfg_chk_http_url,
    cfg_chk_proxy_url, cfg_chk_argon2, cfg_chk_log_level, cfg_chk_image_mode,
    cfg_chk_pool, cfg_chk_reasoning, cfg_chk_cidr;

/*
 * The libcyaml side: one struct per section, a char * per scalar (NULL when
 * the key is absent), a char ** and count per list.
 */
struct cfg_raw_model;

#define CFG_RAW_STR(k)     char *k;
#define CFG_RAW_INT(k)     char *k;
#define CFG_RAW_BOOL(k)    char *k;
#define CFG_RAW_ENUM(k)    char *k;
#define CFG_RAW_STRLIST(k) CFG_RAW_LIST(k)
#define CFG_RAW_INTLIST(k) CFG_RAW_LIST(k)
#define CFG_RAW_LIST(k)                                                        \
	char **k;                                                              \
	unsigned k##_count;
#define CFG_RAW_MODELS(k)                                                      \
	struct cfg_raw_model *k;                                               \
	unsigned k##_count;
#define CFG_RAW(k, T, ...) CFG_RAW_##T(k)

struct cfg_raw_model {
	CFG_KEYS_MODEL(CFG_RAW)
};
struct cfg_raw_server {
	CFG_KEYS_SERVER(CFG_RAW)
};
struct cfg_raw_projects_grok {
	CFG_KEYS_PROJECTS_GROK(CFG_RAW)
};
struct cfg_raw_grok {
	CFG_KEYS_GROK(CFG_RAW)
};
struct cfg_raw_projects {
	struct cfg_raw_projects_grok *grok;
};
struct cfg_raw {
	struct cfg_raw_server *server;
	struct cfg_raw_projects *projects;
	struct cfg_raw_grok *grok;
};

/* The libcyaml schema, from the same rows. */
#define CFG_CY_OPT  (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define CFG_CY_NULL (CYAML_FLAG_POINTER_NULL | CYAML_FLAG_OPTIONAL)
#define CFG_CY_SCALAR(st, k)                                                   \
	CYAML_FIELD_STRING_PTR(#k, CFG_CY_OPT, st, k, 0, CYAML_UNLIMITED)
#define CFG_CY_STR(st, k, m)  CFG_CY_SCALAR(st, k)
#define CFG_CY_INT(st, k, m)  CFG_CY_SCALAR(st, k)
#define CFG_CY_BOOL(st, k, m) CFG_CY_SCALAR(st, k)
#define CFG_CY_ENUM(st, k, m) CFG_CY_SCALAR(st, k)
/*
 * An empty api_keys: is an empty list; an empty retry_status_codes: is more
 * likely a mistake than "retry nothing", which is written [].
 */
#define CFG_CY_STRLIST(st, k, m)                                               \
	CYAML_FIELD_SEQUENCE(#k, CFG_CY_NULL, st, k, &cfg_cy_str, 0,           \
	    ARRAY_LEN(((struct cfg *)NULL)->m))
#define CFG_CY_INTLIST(st, k, m)                                               \
	CYAML_FIELD_SEQUENCE(#k, CFG_CY_OPT, st, k, &cfg_cy_str, 0,            \
	    ARRAY_LEN(((struct cfg *)NULL)->m))
#define CFG_CY_MODELS(st, k, m)                                                \
	CYAML_FIELD_SEQUENCE(                                                  \
	    #k, CFG_CY_NULL, st, k, &cfg_cy_model, 0, CFG_MODELS)
#define CFG_CY_MODEL_F(k, T, m, ...)  CFG_CY_##T(struct cfg_raw_model, k, m),
#define CFG_CY_SERVER_F(k, T, m, ...) CFG_CY_##T(struct cfg_raw_server, k, m),
#define CFG_CY_PROJECTS_F(k, T, m, ...)                                        \
	CFG_CY_##T(struct cfg_raw_projects_grok, k, m),
#define CFG_CY_GROK_F(k, T, m, ...) CFG_CY_##T(struct cfg_raw_grok, k, m),

static const cyaml_schema_value_t cfg_cy_str = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

/* clang-format cannot lay out tables expanded from rows. */
/* clang-format off */
static const cyaml_schema_field_t cfg_cy_model_fields[] = {
	CFG_KEYS_MODEL(CFG_CY_MODEL_F)
	CYAML_FIELD_END
};

static const cyaml_schema_value_t cfg_cy_model = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_raw_model,
	    cfg_cy_model_fields),
};

static const cyaml_schema_field_t cfg_cy_server[] = {
	CFG_KEYS_SERVER(CFG_CY_SERVER_F)
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_cy_projects_grok[] = {
	CFG_KEYS_PROJECTS_GROK(CFG_CY_PROJECTS_F)
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_cy_grok[] = {
	CFG_KEYS_GROK(CFG_CY_GROK_F)
	CYAML_FIELD_END
};
/* clang-format on */

/* A section left empty ("grok:" with every key commented out) is fine. */
static const cyaml_schema_field_t cfg_cy_projects[] = {
	CYAML_FIELD_MAPPING_PTR("grok", CFG_CY_NULL, struct cfg_raw_projects,
	    grok, cfg_cy_projects_grok),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_cy_top[] = {
	CYAML_FIELD_MAPPING_PTR(
	    "server", CFG_CY_NULL, struct cfg_raw, server, cfg_cy_server),
	CYAML_FIELD_MAPPING_PTR(
	    "projects", CFG_CY_NULL, struct cfg_raw, projects, cfg_cy_projects),
	CYAML_FIELD_MAPPING_PTR(
	    "grok", CFG_CY_NULL, struct cfg_raw, grok, cfg_cy_grok),
	CYAML_FIELD_END
};

/* An empty document ("---") is an empty config, like an empty file. */
static const cyaml_schema_value_t cfg_cy_schema = {
	CYAML_VALUE_MAPPING(
	    CYAML_FLAG_POINTER_NULL, struct cfg_raw, cfg_cy_top),
};

/* Freeing needs a config but no log. */
static const cyaml_config_t cfg_cy_quiet = {
	.log_fn = NULL,
	.mem_fn = cyaml_mem,
	.log_level = CYAML_LOG_ERROR,
	.flags = CYAML_CFG_NO_ALIAS,
};

/* The key descriptors, from the same rows. */
#define CFG_CNT_api_keys           n_api_keys
#define CFG_CNT_retry_status_codes n_retry_codes
#define CFG_CNT_trusted_proxies    n_trusted_proxies
#define CFG_CNT_image_fetch_allow  n_image_fetch_allow
#define CFG_CNT_models             n_models

#define CFG_LIST_ELEM(st, m)       sizeof(((st *)NULL)->m[0])
#define CFG_LIST_CNT(st, m)        offsetof(st, CFG_CNT_##m)
#define CFG_ELEM_STR(st, m)        0
#define CFG_ELEM_INT(st, m)        0
#define CFG_ELEM_BOOL(st, m)       0
#define CFG_ELEM_ENUM(st, m)       0
#define CFG_ELEM_STRLIST(st, m)    CFG_LIST_ELEM(st, m)
#define CFG_ELEM_INTLIST(st, m)    CFG_LIST_ELEM(st, m)
#define CFG_ELEM_MODELS(st, m)     CFG_LIST_ELEM(st, m)
#define CFG_CNTOFF_STR(st, m)      0
#define CFG_CNTOFF_INT(st, m)      0
#define CFG_CNTOFF_BOOL(st, m)     0
#define CFG_CNTOFF_ENUM(st, m)     0
#define CFG_CNTOFF_STRLIST(st, m)  CFG_LIST_CNT(st, m)
#define CFG_CNTOFF_INTLIST(st, m)  CFG_LIST_CNT(st, m)
#define CFG_CNTOFF_MODELS(st, m)   CFG_LIST_CNT(st, m)
#define CFG_RAWCNT_STR(rst, k)     0
#define CFG_RAWCNT_INT(rst, k)     0
#define CFG_RAWCNT_BOOL(rst, k)    0
#define CFG_RAWCNT_ENUM(rst, k)    0
#define CFG_RAWCNT_STRLIST(rst, k) offsetof(rst, k##_count)
#define CFG_RAWCNT_INTLIST(rst, k) offsetof(rst, k##_count)
#define CFG_RAWCNT_MODELS(rst, k)  offsetof(rst, k##_count)

#define CFG_KEY(sect_, pfx, st, rst, k, T, m, d, lo, hi, ck, ap, doc_)         \
	{                                                                      \
		.path = pfx #k,                                                \
		.def = d,                                                      \
		.doc = doc_,                                                   \
		.chk = cfg_chk_##ck,                                           \
		.min = lo,                                                     \
		.max = hi,                                                     \
		.off = offsetof(st, m),                                        \
		.size = sizeof(((st *)NULL)->m),                               \
		.elem = CFG_ELEM_##T(st, m),                                   \
		.cnt_off = CFG_CNTOFF_##T(st, m),                              \
		.raw_off = offsetof(rst, k),                                   \
		.raw_cnt_off = CFG_RAWCNT_##T(rst, k),                         \
		.type = CFG_T_##T,                                             \
		.sect = sect_,                                                 \
		.apply = CFG_APPLY_##ap,                                       \
	},
#define CFG_KEY_SERVER(...)                                                    \
	CFG_KEY(CFG_SECT_SERVER, "server.", struct cfg, struct cfg_raw_server, \
	    __VA_ARGS__)
#define CFG_KEY_PROJECTS(...)                                                  \
	CFG_KEY(CFG_SECT_PROJECTS_GROK, "projects.grok.", struct cfg,          \
	    struct cfg_raw_projects_grok, __VA_ARGS__)
#define CFG_KEY_GROK(...)                                                      \
	CFG_KEY(CFG_SECT_GROK, "grok.", struct cfg, struct cfg_raw_grok,       \
	    __VA_ARGS__)
#define CFG_KEY_MODEL(...)                                                     \
	CFG_KEY(CFG_SECT_MODEL, "", struct cfg_model, struct cfg_raw_model,    \
	    __VA_ARGS__)

/* clang-format off */
static const struct cfg_key cfg_keytab[] = {
	CFG_KEYS_SERVER(CFG_KEY_SERVER)
	CFG_KEYS_PROJECTS_GROK(CFG_KEY_PROJECTS)
	CFG_KEYS_GROK(CFG_KEY_GROK)
};
/* clang-format on */

static const struct cfg_key cfg_modeltab[] = { CFG_KEYS_MODEL(CFG_KEY_MODEL) };

static const char *const cfg_image_mode_name[] = {
	[CFG_IMAGE_URL] = "url",
	[CFG_IMAGE_BASE64] = "base64",
};

static const char *const cfg_reasoning_name[] = {
	[CFG_RF_THINK_TAGS] = "think_tags",
	[CFG_RF_REASONING_CONTENT] = "reasoning_content",
	[CFG_RF_HIDDEN] = "hidden",
};

static const char *const cfg_pool_name[] = {
	[CFG_POOL_NORMAL] = "normal",
	[CFG_POOL_SUPER] = "super",
};

/*
 * The seed's eight models, in the order /v1/models lists them
 * (reference/grok-web-protocol.md section 3.3).
 */
static const struct cfg_model cfg_builtin_models[] = {
	{ "grok-3-fast", "grok-3", "MODEL_MODE_FAST", "grok-3", 1,
	    CFG_POOL_NORMAL, 0, { 0 } },
	{ "grok-4.1", "grok-4-1-non-thinking-w-tool", "MODEL_MODE_GROK_4_1",
	    "grok-4-1-non-thinking-w-tool", 1, CFG_POOL_NORMAL, 0, { 0 } },
	{ "grok-4.1-thinking", "grok-4-1-thinking-1108b", "MODEL_MODE_AUTO",
	    "grok-4-1-thinking-1108b", 1, CFG_POOL_NORMAL, 0, { 0 } },
	{ "grok-4-fast", "grok-4-mini-thinking-tahoe",
	    "MODEL_MODE_GROK_4_MINI_THINKING", "grok-4-mini-thinking-tahoe", 1,
	    CFG_POOL_NORMAL, 0, { 0 } },
	{ "grok-4-fast-expert", "grok-4-mini-thinking-tahoe",
	    "MODEL_MODE_EXPERT", "grok-4-mini-thinking-tahoe", 4,
	    CFG_POOL_NORMAL, 0, { 0 } },
	{ "grok-4-expert", "grok-4", "MODEL_MODE_EXPERT", "grok-4", 4,
	    CFG_POOL_NORMAL, 0, { 0 } },
	{ "grok-4-heavy", "grok-4-heavy", "MODEL_MODE_HEAVY", "grok-4-heavy", 1,
	    CFG_POOL_SUPER, 0, { 0 } },
	{ "grok-imagine-0.9", "grok-3", "MODEL_MODE_FAST", "grok-3", 1,
	    CFG_POOL_NORMAL, 1, { 0 } },
};

/* ---- value checks ---- */

static int
cfg_chk_none(const char *s, int64_t *val, char *why, size_t len)
{
	(void)s;
	(void)val;
	(void)why;
	(void)len;
	return 0;
}

static int
cfg_chk_hostport(const char *s, int64_t *val, char *why, size_t len)
{
	char host[CFG_STR_MAX];
	uint16_t port;

	(void)val;
	if (util_split_hostport(s, host, sizeof(host), &port) != 0) {
		(void)snprintf(
		    why, len, "expected host:port, [ipv6]:port, or name:port");
		return WP_EPARSE;
	}
	return 0;
}

/* Whether s starts with one of the schemes (each with "://") and a host. */
static bool
cfg_url_scheme(const char *s, const char *const *schemes, size_t n)
{
	size_t i, sl;

	for (i = 0; i < n; i++) {
		sl = strlen(schemes[i]);
		if (strncasecmp(s, schemes[i], sl) == 0 && s[sl] != '\0' &&
		    s[sl] != '/' && strchr(s, ' ') == NULL)
			return true;
	}
	return false;
}

static int
cfg_chk_http_url(const char *s, int64_t *val, char *why, size_t len)
{
	static const char *const schemes[] = { "http://", "https://" };

	(void)val;
	if (*s == '\0' || cfg_url_scheme(s, schemes, ARRAY_LEN(schemes)))
		return 0;
	(void)snprintf(why, len, "expected an http:// or https:// URL");
	return WP_EPARSE;
}

static int
cfg_chk_proxy_url(const char *s, int64_t *val, char *why, size_t len)
{
	static const char *const schemes[] = { "http://", "https://",
		"socks5://", "socks5h://" };

	(void)val;
	if (*s == '\0' || cfg_url_scheme(s, schemes, ARRAY_LEN(schemes)))
		return 0;
	(void)snprintf(why, len,
	    "expected an http://, https://, socks5:// or socks5h:// URL");
	return WP_EPARSE;
}

static int
cfg_chk_argon2(const char *s, int64_t *val, char *why, size_t len)
{
	(void)val;
	if (*s == '\0' || strncmp(s, "$argon2id$", 10) == 0)
		return 0;
	(void)snprintf(why, len,
	    "expected an argon2id hash ($argon2id$...) from "
	    "webproxyd --hash-password");
	return WP_EPARSE;
}

static int
cfg_chk_cidr(const char *s, int64_t *val, char *why, size_t len)
{
	struct util_cidr c;

	(void)val;
	if (util_cidr_parse(s, &c) == 0)
		return 0;
	(void)snprintf(
	    why, len, "\"%.64s\" is not an address or address/bits range", s);
	return WP_EPARSE;
}

static int
cfg_enum(const char *const *names, size_t n, const char *s, int64_t *val,
    char *why, size_t len)
{
	size_t i, off;
	int r;

	for (i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0) {
			*val = (int64_t)i;
			return 0;
		}
	}
	r = snprintf(why, len, "\"%.32s\" is not one of", s);
	off = r > 0 && (size_t)r < len ? (size_t)r : len;
	for (i = 0; i < n && off < len; i++) {
		r = snprintf(
		    why + off, len - off, "%s %s", i > 0 ? "," : "", names[i]);
		off += r > 0 ? (size_t)r : len;
	}
	return WP_EPARSE;
}

static int
cfg_chk_log_level(const char *s, int64_t *val, char *why, size_t len)
{
	enum log_level lvl;

	if (log_level_parse(s, &lvl) == 0) {
		*val = (int64_t)lvl;
		return 0;
	}
	(void)snprintf(why, len,
	    "\"%.32s\" is not one of debug, info, notice, warn, error", s);
	return WP_EPARSE;
}

static int
cfg_chk_image_mode(const char *s, int64_t *val, char *why, size_t len)
{
	return cfg_enum(cfg_image_mode_name, ARRAY_LEN(cfg_image_mode_name), s,
	    val, why, len);
}

static int
cfg_chk_reasoning(const char *s, int64_t *val, char *why, size_t len)
{
	return cfg_enum(cfg_reasoning_name, ARRAY_LEN(cfg_reasoning_name), s,
	    val, why, len);
}

static int
cfg_chk_pool(const char *s, int64_t *val, char *why, size_t len)
{
	return cfg_enum(
	    cfg_pool_name, ARRAY_LEN(cfg_pool_name), s, val, why, len);
}

static int
cfg_parse_bool(const char *s, int64_t *val)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	size_t i;

	for (i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*val = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*val = 0;
			return 0;
		}
	}
	return WP_EPARSE;
}

/* Store v into an integer member of size bytes (ranges keep it in). */
static void
cfg_store_int(void *dst, size_t size, int64_t v)
{
	uint8_t u8 = (uint8_t)v;
	int32_t i32 = (int32_t)v;

	switch (size) {
	case 1:
		memcpy(dst, &u8, 1);
		break;
	case 4:
		memcpy(dst, &i32, 4);
		break;
	case 8:
		memcpy(dst, &v, 8);
		break;
	default:
		util_assert_fail(__FILE__, __LINE__, "integer member size");
	}
}

/*
 * Parse s as a value of key k of the given type (a list passes its entry
 * type) into dst, a member of size bytes. Returns 0, or WP_EPARSE /
 * WP_ERANGE with the reason in why.
 */
static int
cfg_set_scalar(const struct cfg_key *k, int type, const char *s, void *dst,
    size_t size, char *why, size_t len)
{
	int64_t v = 0;
	size_t i, n;
	int rc;

	switch (type) {
	case CFG_T_STR:
	case CFG_T_STRLIST:
		n = strlen(s);
		if (n < (size_t)k->min) {
			(void)snprintf(why, len, "must not be empty");
			return WP_EPARSE;
		}
		if (n > (size_t)k->max) {
			(void)snprintf(why, len, "longer than %lld bytes",
			    (long long)k->max);
			return WP_ERANGE;
		}
		for (i = 0; i < n; i++) {
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
				(void)snprintf(
				    why, len, "contains a control character");
				return WP_EPARSE;
			}
		}
		if ((rc = k->chk(s, &v, why, len)) != 0)
			return rc;
		WP_ASSERT(n < size);
		memcpy(dst, s, n + 1);
		/* "<url>/path" is how every user joins them. */
		if (k->chk == cfg_chk_http_url)
			while (n > 0 && ((char *)dst)[n - 1] == '/')
				((char *)dst)[--n] = '\0';
		return 0;
	case CFG_T_INT:
	case CFG_T_INTLIST:
		rc = util_parse_i64(s, k->min, k->max, &v);
		if (rc == WP_ERANGE) {
			(void)snprintf(why, len,
			    "%.32s is out of range %lld..%lld", s,
			    (long long)k->min, (long long)k->max);
			return WP_ERANGE;
		}
		if (rc != 0) {
			(void)snprintf(
			    why, len, "expected an integer, got \"%.32s\"", s);
			return WP_EPARSE;
		}
		break;
	case CFG_T_BOOL:
		if (cfg_parse_bool(s, &v) != 0) {
			(void)snprintf(why, len,
			    "expected true or false, got \"%.32s\"", s);
			return WP_EPARSE;
		}
		break;
	case CFG_T_ENUM:
		if ((rc = k->chk(s, &v, why, len)) != 0)
			return rc;
		break;
	default:
		util_assert_fail(__FILE__, __LINE__, "scalar type");
	}
	cfg_store_int(dst, size, v);
	return 0;
}

/* ---- error messages ---- */

/* Write the first error of this load; later ones are consequences. */
static int cfg_fail(struct cfg_ld *ld, int rc, size_t line, size_t col,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int
cfg_fail(struct cfg_ld *ld, int rc, size_t line, size_t col, const char *key,
    const char *fmt, ...)
{
	va_list ap;
	size_t off = 0, i;
	int r, saved = errno;

	if (ld->failed || ld->errlen == 0)
		return rc;
	ld->failed = true;
	if (line > 0)
		r = snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s: ", ld->path,
		    line, col, *key != '\0' ? key : CFG_TOP_NAME);
	else
		r = snprintf(ld->err, ld->errlen, "%s: ", ld->path);
	if (r > 0)
		off = (size_t)r < ld->errlen ? (size_t)r : ld->errlen - 1;
	va_start(ap, fmt);
	(void)vsnprintf(ld->err + off, ld->errlen - off, fmt, ap);
	va_end(ap);
	/* One line, whatever the file or libyaml put in it. */
	for (i = 0; ld->err[i] != '\0'; i++)
		if ((unsigned char)ld->err[i] < 0x20 || ld->err[i] == 0x7f)
			ld->err[i] = '?';
	errno = saved;
	return rc;
}

/* ---- walking the events with libyaml ---- */

static void
cfg_path(const struct cfg_walk *wk, int depth, char *buf, size_t len)
{
	const struct cfg_frame *f;
	size_t off = 0;
	int i, r;

	buf[0] = '\0';
	for (i = 0; i < depth; i++) {
		f = &wk->st[i];
		if (f->seq && f->n == 0)
			break;
		if (f->seq)
			r = snprintf(buf + off, len - off, "[%u]", f->n - 1);
		else
			r = snprintf(buf + off, len - off, "%s%s",
			    off > 0 ? "." : "", f->key);
		if (r < 0 || (size_t)r >= len - off)
			return; /* truncated, still terminated */
		off += (size_t)r;
	}
}

static void
cfg_where_set(struct cfg_where *w, const struct cfg_walk *wk, int depth,
    const yaml_mark_t *mark, long idx, yaml_event_type_t type)
{
	cfg_path(wk, depth, w->path, sizeof(w->path));
	w->line = mark->line + 1;
	w->col = mark->column + 1;
	w->idx = idx;
	w->type = type;
}

/*
 * A node event: a mapping key, a mapping value, a sequence entry or the
 * document root. Returns 1 when it is where the walk should stop (w set),
 * 0 to go on, or an error.
 */
static int
cfg_walk_node(struct cfg_ld *ld, struct cfg_walk *wk, const yaml_event_t *ev,
    unsigned long stop, const char *want, struct cfg_where *w)
{
	struct cfg_frame *top = wk->depth > 0 ? &wk->st[wk->depth - 1] : NULL;
	const yaml_mark_t *mark = &ev->start_mark;
	struct cfg_where here;
	long idx = -1;
	bool hit;

	if (top != NULL && !top->seq && top->want_key) {
		if (ev->type != YAML_SCALAR_EVENT) {
			cfg_where_set(
			    &here, wk, wk->depth - 1, mark, -1, ev->type);
			return cfg_fail(ld, WP_EPARSE, here.line, here.col,
			    here.path, "a key must be a plain string");
		}
		(void)util_strlcpy(top->key,
		    (const char *)ev->data.scalar.value, sizeof(top->key));
		top->mark = *mark; /* truncated keys are unknown anyway */
		top->want_key = false;
	} else if (top != NULL && !top->seq) {
		top->want_key = true;
		mark = &top->mark; /* a value is shown at its key */
	} else if (top != NULL) {
		top->n++;
		top->mark = *mark;
		idx = (long)top->n - 1;
	}
	cfg_where_set(&here, wk, wk->depth, mark, idx, ev->type);
	if (ev->type == YAML_ALIAS_EVENT)
		return cfg_fail(ld, WP_EPARSE, here.line, here.col, here.path,
		    "aliases (*name) are not supported");
	if (ld->errpath != NULL) /* the last node before a bad byte */
		(void)util_strlcpy(ld->errpath, here.path, CFG_PATH_MAX);
	hit = wk->events == stop ||
	    (want != NULL && strcmp(here.path, want) == 0);
	if (hit) {
		*w = here;
		return 1;
	}
	if (ev->type == YAML_MAPPING_START_EVENT ||
	    ev->type == YAML_SEQUENCE_START_EVENT) {
		if (wk->depth == CFG_DEPTH_MAX)
			return cfg_fail(ld, WP_EPARSE, here.line, here.col,
			    here.path, "nested too deeply");
		top = &wk->st[wk->depth++];
		memset(top, 0, sizeof(*top));
		top->seq = ev->type == YAML_SEQUENCE_START_EVENT;
		top->want_key = !top->seq;
		top->mark = *mark;
	}
	return 0;
}

static int
cfg_walk_event(struct cfg_ld *ld, struct cfg_walk *wk, const yaml_event_t *ev,
    unsigned long stop, const char *want, struct cfg_where *w)
{
	const yaml_mark_t *mark = &ev->start_mark;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
	case YAML_ALIAS_EVENT:
		return cfg_walk_node(ld, wk, ev, stop, want, w);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (wk->depth == 0) /* libyaml pairs them; be safe */
			return cfg_fail(ld, WP_EPARSE, mark->line + 1,
			    mark->column + 1, "", "unbalanced YAML events");
		if (wk->events == stop) {
			cfg_where_set(w, wk, wk->depth - 1,
			    &wk->st[wk->depth - 1].mark, -1, ev->type);
			return 1;
		}
		wk->depth--;
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		if (++wk->docs > 1)
			return cfg_fail(ld, WP_EPARSE, mark->line + 1,
			    mark->column + 1, "",
			    "more than one YAML document");
		break;
	case YAML_NO_EVENT:
	case YAML_STREAM_START_EVENT:
	case YAML_STREAM_END_EVENT:
	case YAML_DOCUMENT_END_EVENT:
		break;
	}
	if (wk->events == stop) {
		cfg_where_set(w, wk, 0, mark, -1, ev->type);
		return 1;
	}
	return 0;
}

static int cfg_walk(struct cfg_ld *ld, unsigned long stop, const char *want,
    struct cfg_where *w);

/*
 * The key path a parse error is in: the key whose value was being read,
 * else the mapping or list around it.
 */
static void
cfg_walk_here(const struct cfg_walk *wk, char *path, size_t len)
{
	const struct cfg_frame *top;
	int depth = wk->depth;

	top = depth > 0 ? &wk->st[depth - 1] : NULL;
	if (top != NULL && (top->seq || top->want_key))
		depth--;
	cfg_path(wk, depth, path, len);
}

/* Report a libyaml parse error at libyaml's own position. */
static int
cfg_walk_error(
    struct cfg_ld *ld, const struct cfg_walk *wk, const yaml_parser_t *p)
{
	char path[CFG_PATH_MAX];
	struct cfg_ld cut;
	size_t line, col, i;

	if (p->error == YAML_MEMORY_ERROR)
		return cfg_fail(ld, WP_ENOMEM, 0, 0, "", "out of memory");
	if (ld->errpath != NULL) {
		cfg_walk_here(wk, ld->errpath, CFG_PATH_MAX);
		return WP_EPARSE;
	}
	cfg_walk_here(wk, path, sizeof(path));
	if (p->error == YAML_READER_ERROR) {
		line = 1;
		col = 1;
		for (i = 0; i < p->problem_offset && i < ld->len; i++) {
			col++;
			if (ld->buf[i] == '\n') {
				line++;
				col = 1;
			}
		}
		/*
		 * libyaml decodes the whole input before parsing it: find the
		 * key by parsing the part before the bad byte.
		 */
		cut = *ld;
		cut.len = i;
		cut.failed = true; /* quiet */
		cut.errpath = path;
		(void)cfg_walk(&cut, 0, NULL, NULL);
	} else {
		line = p->problem_mark.line + 1;
		col = p->problem_mark.column + 1;
	}
	return cfg_fail(ld, WP_EPARSE, line, col, path, "YAML syntax: %s%s%s",
	    p->problem != NULL ? p->problem : "error",
	    p->context != NULL ? " " : "",
	    p->context != NULL ? p->context : "");
}

/*
 * Walk the events of the file. With stop > 0, stop at the stop-th event;
 * with want, at the node whose key path is want. Returns 1 when stopped (w
 * set), 0 at the end of the file, or an error (written into ld->err).
 */
static int
cfg_walk(struct cfg_ld *ld, unsigned long stop, const char *want,
    struct cfg_where *w)
{
	struct cfg_walk *wk = NULL;
	yaml_parser_t p;
	yaml_event_t ev;
	bool end = false;
	int rc = 0;

	if ((wk = calloc(1, sizeof(*wk))) == NULL)
		return cfg_fail(ld, WP_ENOMEM, 0, 0, "", "out of memory");
	if (!yaml_parser_initialize(&p)) {
		free(wk);
		return cfg_fail(ld, WP_ENOMEM, 0, 0, "", "out of memory");
	}
	yaml_parser_set_input_string(
	    &p, (const unsigned char *)ld->buf, ld->len);
	while (!end && rc == 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = cfg_walk_error(ld, wk, &p);
			break;
		}
		wk->events++;
		end = ev.type == YAML_STREAM_END_EVENT;
		rc = cfg_walk_event(ld, wk, &ev, stop, want, w);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	free(wk);
	return rc;
}

/* Report why at the position of the node with key path kp. */
static int
cfg_fail_at(struct cfg_ld *ld, int rc, const char *kp, const char *why)
{
	struct cfg_where w;

	if (cfg_walk(ld, 0, kp, &w) != 1) {
		w.line = 1; /* cannot happen: the path came from this file */
		w.col = 1;
	}
	return cfg_fail(ld, rc, w.line, w.col, kp, "%s", why);
}

/* ---- libcyaml ---- */

static void cfg_cy_log(cyaml_log_t level, void *ctx, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

static void
cfg_cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list ap)
{
	struct cfg_cylog *lg = ctx;
	char line[CFG_WHY_MAX];
	const char *s = line;
	size_t n;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (strncmp(line, "Load: Event: ", 13) == 0) {
		lg->events++;
		return;
	}
	if (level < CYAML_LOG_ERROR || lg->msg[0] != '\0' || line[0] == ' ' ||
	    strncmp(line, "Load: Backtrace", 15) == 0)
		return;
	if (strncmp(s, "Load: ", 6) == 0)
		s += 6;
	(void)util_strlcpy(lg->msg, s, sizeof(lg->msg));
	n = strlen(lg->msg);
	while (n > 0 && lg->msg[n - 1] == '\n')
		lg->msg[--n] = '\0';
}

static const char *
cfg_kind(const char *cy, yaml_event_type_t type)
{
	if (cy != NULL) {
		if (strncmp(cy, "MAPPING", 7) == 0)
			return "a mapping";
		if (strncmp(cy, "SEQUENCE", 8) == 0)
			return "a list";
		return "a single value";
	}
	if (type == YAML_MAPPING_START_EVENT)
		return "a mapping";
	if (type == YAML_SEQUENCE_START_EVENT)
		return "a list";
	return "a single value";
}

/* Turn what libcyaml said into our one line, at the event it failed on. */
static int
cfg_cy_error(struct cfg_ld *ld, cyaml_err_t ce, const struct cfg_cylog *lg)
{
	struct cfg_where w;
	const char *exp;

	if (ce == CYAML_ERR_OOM)
		return cfg_fail(ld, WP_ENOMEM, 0, 0, "", "out of memory");
	memset(&w, 0, sizeof(w));
	if (lg->events == 0 || cfg_walk(ld, lg->events, NULL, &w) != 1) {
		w.line = 1; /* libcyaml changed its log: still say what */
		w.col = 1;
	}
	if (ce == CYAML_ERR_INVALID_KEY)
		return cfg_fail(
		    ld, WP_EPARSE, w.line, w.col, w.path, "unknown key");
	if (ce == CYAML_ERR_INVALID_VALUE &&
	    (exp = strstr(lg->msg, "Expecting ")) != NULL)
		return cfg_fail(ld, WP_EPARSE, w.line, w.col, w.path,
		    "expected %s, got %s", cfg_kind(exp + 10, w.type),
		    cfg_kind(NULL, w.type));
	if (ce == CYAML_ERR_SEQUENCE_ENTRIES_MAX)
		return cfg_fail(ld, WP_ERANGE, w.line, w.col, w.path,
		    "too many entries (at most %ld)", w.idx);
	if (ce == CYAML_ERR_UNEXPECTED_EVENT &&
	    strstr(lg->msg, "already seen") != NULL)
		return cfg_fail(
		    ld, WP_EPARSE, w.line, w.col, w.path, "duplicate key");
	return cfg_fail(ld, WP_EPARSE, w.line, w.col, w.path, "%s",
	    lg->msg[0] != '\0' ? lg->msg : cyaml_strerror(ce));
}

static int
cfg_cy_load(struct cfg_ld *ld, struct cfg_raw **rawp)
{
	struct cfg_cylog lg;
	cyaml_config_t cc = {
		.log_fn = cfg_cy_log,
		.log_ctx = &lg,
		.mem_fn = cyaml_mem,
		.log_level = CYAML_LOG_DEBUG, /* for the "Event:" lines */
		.flags = CYAML_CFG_NO_ALIAS,
	};
	cyaml_data_t *data = NULL;
	cyaml_err_t ce;

	memset(&lg, 0, sizeof(lg));
	ce = cyaml_load_data((const uint8_t *)ld->buf, ld->len, &cc,
	    &cfg_cy_schema, &data, NULL);
	if (ce != CYAML_OK)
		return cfg_cy_error(ld, ce, &lg);
	*rawp = data; /* NULL for an empty file */
	return 0;
}

/* ---- applying the values ---- */

static const void *
cfg_raw_sect(const struct cfg_raw *raw, int sect)
{
	if (raw == NULL)
		return NULL;
	switch (sect) {
	case CFG_SECT_SERVER:
		return raw->server;
	case CFG_SECT_PROJECTS_GROK:
		return raw->projects != NULL ? raw->projects->grok : NULL;
	case CFG_SECT_GROK:
		return raw->grok;
	default:
		return NULL;
	}
}

static const void *
cfg_raw_ptr(const void *base, size_t off)
{
	const void *p;

	memcpy(&p, (const char *)base + off, sizeof(p));
	return p;
}

/* Set list key k of c from n strings; kp names the key in messages. */
static int
cfg_set_list(struct cfg_ld *ld, const struct cfg_key *k, char *const *items,
    size_t n, struct cfg *c)
{
	char why[CFG_WHY_MAX], kp[CFG_PATH_MAX];
	uint32_t cnt = 0;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		(void)snprintf(kp, sizeof(kp), "%s[%zu]", k->path, i);
		if (i == k->size / k->elem)
			return cfg_fail_at(
			    ld, WP_ERANGE, kp, "too many entries");
		rc = cfg_set_scalar(k, k->type, items[i],
		    (char *)c + k->off + i * k->elem, k->elem, why,
		    sizeof(why));
		if (rc != 0)
			return cfg_fail_at(ld, rc, kp, why);
		cnt++;
	}
	memcpy((char *)c + k->cnt_off, &cnt, sizeof(cnt));
	return 0;
}

/* Apply the model key k of one grok.models entry e to m. */
static int
cfg_model_key(struct cfg_ld *ld, const struct cfg_key *k, size_t i,
    const char *s, struct cfg_model *m)
{
	char why[CFG_WHY_MAX], kp[CFG_PATH_MAX];
	int rc;

	rc = cfg_set_scalar(
	    k, k->type, s, (char *)m + k->off, k->size, why, sizeof(why));
	if (rc == 0)
		return 0;
	(void)snprintf(kp, sizeof(kp), "grok.models[%zu].%s", i, k->path);
	return cfg_fail_at(ld, rc, kp, why);
}

static int
cfg_model_find_idx(const struct cfg *c, const char *name)
{
	uint32_t i;

	for (i = 0; i < c->n_models; i++)
		if (strcmp(c->models[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Apply grok.models entry i: a built-in name changes the keys given, a new
 * name adds a model (name, upstream and mode required). taken[] marks the
 * models an earlier entry set, so a name listed twice is an error.
 */
static int
cfg_model_entry(struct cfg_ld *ld, const struct cfg_raw_model *e, size_t i,
    struct cfg *c, bool *taken)
{
	char kp[CFG_PATH_MAX], why[CFG_WHY_MAX];
	struct cfg_model m;
	const struct cfg_key *k;
	const char *s;
	size_t j;
	int at, rc;

	(void)snprintf(kp, sizeof(kp), "grok.models[%zu]", i);
	if (e->name == NULL)
		return cfg_fail_at(ld, WP_EPARSE, kp, "a model needs a name");
	memset(&m, 0, sizeof(m));
	if ((rc = cfg_model_key(ld, &cfg_modeltab[0], i, e->name, &m)) != 0)
		return rc;
	if ((at = cfg_model_find_idx(c, m.name)) >= 0 && taken[at]) {
		(void)snprintf(kp, sizeof(kp), "grok.models[%zu].name", i);
		return cfg_fail_at(ld, WP_EPARSE, kp, "model listed twice");
	}
	if (at >= 0)
		m = c->models[at];
	for (j = 1; j < ARRAY_LEN(cfg_modeltab); j++) {
		k = &cfg_modeltab[j];
		s = cfg_raw_ptr(e, k->raw_off);
		if (s == NULL && at < 0 && k->def == NULL) {
			(void)snprintf(
			    why, sizeof(why), "a new model needs %s", k->path);
			return cfg_fail_at(ld, WP_EPARSE, kp, why);
		}
		if (s == NULL && at < 0)
			s = k->def;
		if (s != NULL && (rc = cfg_model_key(ld, k, i, s, &m)) != 0)
			return rc;
	}
	/* A new upstream name is also what its quota is asked under. */
	if (e->upstream != NULL && e->rate_limit_model == NULL)
		m.rate_limit_model[0] = '\0';
	if (m.rate_limit_model[0] == '\0')
		memcpy(m.rate_limit_model, m.upstream, sizeof(m.upstream));
	if (at < 0) {
		if (c->n_models == CFG_MODELS) {
			(void)snprintf(why, sizeof(why),
			    "more than %d models, built-in ones included",
			    CFG_MODELS);
			return cfg_fail_at(ld, WP_ERANGE, kp, why);
		}
		at = (int)c->n_models++;
	}
	c->models[at] = m;
	taken[at] = true;
	return 0;
}

static int
cfg_apply_models(struct cfg_ld *ld, const struct cfg_raw_grok *g, struct cfg *c)
{
	bool taken[CFG_MODELS] = { false };
	size_t i;
	int rc;

	for (i = 0; i < g->models_count; i++)
		if ((rc = cfg_model_entry(ld, &g->models[i], i, c, taken)) != 0)
			return rc;
	return 0;
}

static int
cfg_apply(struct cfg_ld *ld, const struct cfg_raw *raw, struct cfg *c)
{
	char why[CFG_WHY_MAX];
	const struct cfg_key *k;
	const void *base, *v;
	struct cfg_where w;
	unsigned n;
	size_t i;
	int rc;

	for (i = 0; i < ARRAY_LEN(cfg_keytab); i++) {
		k = &cfg_keytab[i];
		if ((base = cfg_raw_sect(raw, k->sect)) == NULL)
			continue;
		v = cfg_raw_ptr(base, k->raw_off);
		switch (k->type) {
		case CFG_T_STRLIST:
		case CFG_T_INTLIST:
			/* libcyaml loads "[]" as NULL too: ask the file. */
			if (v == NULL && cfg_walk(ld, 0, k->path, &w) != 1)
				break;
			memcpy(
			    &n, (const char *)base + k->raw_cnt_off, sizeof(n));
			if ((rc = cfg_set_list(ld, k, v, n, c)) != 0)
				return rc;
			break;
		case CFG_T_MODELS:
			if ((rc = cfg_apply_models(ld, base, c)) != 0)
				return rc;
			break;
		default:
			if (v == NULL)
				break;
			rc = cfg_set_scalar(k, k->type, v, (char *)c + k->off,
			    k->size, why, sizeof(why));
			if (rc != 0)
				return cfg_fail_at(ld, rc, k->path, why);
			break;
		}
	}
	return 0;
}

/* ---- defaults ---- */

/* Split a default like "401,429" and set it as list key k. */
static void
cfg_default_list(const struct cfg_key *k, struct cfg *c)
{
	char buf[CFG_STR_MAX], *items[CFG_API_KEYS + CFG_RETRY_CODES];
	char *p, *save = NULL;
	struct cfg_ld ld;
	size_t n = 0;
	int rc;

	memset(&ld, 0, sizeof(ld));
	ld.path = "(defaults)";
	rc = util_strlcpy(buf, k->def, sizeof(buf));
	WP_ASSERT(rc == 0);
	for (p = strtok_r(buf, ",", &save); p != NULL;
	     p = strtok_r(NULL, ",", &save)) {
		WP_ASSERT(n < ARRAY_LEN(items));
		items[n++] = p;
	}
	rc = cfg_set_list(&ld, k, items, n, c);
	WP_ASSERT(rc == 0);
}

/* Never fails: every default passes its own row's checks (asserted). */
void
cfg_defaults(struct cfg *c)
{
	const struct cfg_key *k;
	char why[CFG_WHY_MAX];
	size_t i;
	int rc;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < ARRAY_LEN(cfg_keytab); i++) {
		k = &cfg_keytab[i];
		switch (k->type) {
		case CFG_T_STRLIST:
		case CFG_T_INTLIST:
			cfg_default_list(k, c);
			break;
		case CFG_T_MODELS:
			memcpy(c->models, cfg_builtin_models,
			    sizeof(cfg_builtin_models));
			c->n_models = ARRAY_LEN(cfg_builtin_models);
			break;
		default:
			rc = cfg_set_scalar(k, k->type, k->def,
			    (char *)c + k->off, k->size, why, sizeof(why));
			WP_ASSERT(rc == 0); /* rows pass their own checks */
			break;
		}
	}
}

/* ---- the rest of cfg.h ---- */

static int
cfg_read(struct cfg_ld *ld)
{
	FILE *fp = NULL;
	size_t n;
	int rc = 0;

	if ((fp = fopen(ld->path, "re")) == NULL)
		return cfg_fail(
		    ld, WP_ESYS, 0, 0, "", "cannot open: %s", strerror(errno));
	if ((ld->buf = malloc(CFG_FILE_MAX + 1)) == NULL) {
		rc = cfg_fail(ld, WP_ENOMEM, 0, 0, "", "out of memory");
		goto out;
	}
	n = fread(ld->buf, 1, CFG_FILE_MAX + 1, fp);
	if (ferror(fp)) {
		rc = cfg_fail(
		    ld, WP_ESYS, 0, 0, "", "cannot read: %s", strerror(errno));
		goto out;
	}
	if (n > CFG_FILE_MAX) {
		rc = cfg_fail(ld, WP_ERANGE, 0, 0, "", "larger than %d bytes",
		    CFG_FILE_MAX);
		goto out;
	}
	ld->len = n;
out:
	(void)fclose(fp); /* opened read-only: nothing to lose */
	return rc;
}

/*
 * Reads the file (at most CFG_FILE_MAX bytes) and frees everything it
 * allocated before returning. Returns 0, WP_EPARSE, WP_ERANGE, WP_ESYS
 * (errno kept) or WP_ENOMEM. Blocking file I/O: not for callbacks.
 */
int
cfg_load(const char *path, struct cfg *c, char *err, size_t errlen)
{
	struct cfg_raw *raw = NULL;
	struct cfg_ld ld;
	int rc;

	memset(&ld, 0, sizeof(ld));
	ld.path = path;
	ld.err = err;
	ld.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	cfg_defaults(c);
	if ((rc = cfg_read(&ld)) != 0)
		goto out;
	if ((rc = cfg_walk(&ld, 0, NULL, NULL)) != 0)
		goto out;
	if ((rc = cfg_cy_load(&ld, &raw)) != 0)
		goto out;
	rc = cfg_apply(&ld, raw, c);
out:
	if (raw != NULL)
		(void)cyaml_free(&cfg_cy_quiet, &cfg_cy_schema, raw, 0);
	free(ld.buf);
	return rc;
}

/* A pointer into c; safe anywhere, including a shm snapshot. */
const struct cfg_model *
cfg_model_find(const struct cfg *c, const char *name)
{
	int i = cfg_model_find_idx(c, name);

	return i >= 0 ? &c->models[i] : NULL;
}

bool
cfg_retry_code(const struct cfg *c, int code)
{
	uint32_t i;

	for (i = 0; i < c->n_retry_codes && i < CFG_RETRY_CODES; i++)
		if (c->retry_status_codes[i] == code)
			return true;
	return false;
}

/* Names are full key paths ("server.listen"); buf is always terminated. */
int
cfg_restart_diff(
    const struct cfg *a, const struct cfg *b, char *buf, size_t len)
{
	const struct cfg_key *k;
	const char *pa, *pb;
	size_t i, off = 0;
	bool same;
	int n = 0, r;

	if (len > 0)
		buf[0] = '\0';
	for (i = 0; i < ARRAY_LEN(cfg_keytab); i++) {
		k = &cfg_keytab[i];
		if (k->apply != CFG_APPLY_RESTART)
			continue;
		pa = (const char *)a + k->off;
		pb = (const char *)b + k->off;
		if (k->type == CFG_T_STR)
			same = strncmp(pa, pb, k->size) == 0;
		else
			same = memcmp(pa, pb, k->size) == 0;
		if (same)
			continue;
		n++;
		if (off + 1 >= len)
			continue;
		r = snprintf(
		    buf + off, len - off, "%s%s", off > 0 ? ", " : "", k->path);
		if (r > 0)
			off +=
			    (size_t)r < len - off ? (size_t)r : len - off - 1;
	}
	return n;
}
