/*
 * The configuration of webproxyd: conf/config.yaml parsed (libcyaml),
 * validated and flattened into struct cfg. The struct holds no pointers,
 * so the master copies it into shared memory as the config snapshot
 * (shm.h) and every process reads it in place.
 *
 * Every key is described once in cfg_keys.h (type, default, range, whether
 * SIGHUP applies it). Errors are reported as "file:line:col: key: problem".
 */
#ifndef WP_CFG_H
#define WP_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_STR_MAX     256 /* URLs, paths, hashes, user agent */
#define CFG_KEY_MAX     128 /* one API key */
#define CFG_API_KEYS    16  /* api_keys entries */
#define CFG_RETRY_CODES 16  /* retry_status_codes entries */
#define CFG_MODELS      32  /* model table entries, built-in included */
#define CFG_NAME_MAX    64  /* model names */
#define CFG_ERR_MAX     512 /* one error message */
#define CFG_CIDRS       16  /* entries of an address-range list */
#define CFG_CIDR_MAX    64  /* one "addr/bits" */

enum cfg_image_mode { CFG_IMAGE_URL, CFG_IMAGE_BASE64 };

/* Where reasoning goes; the values match enum oai_reasoning. */
enum cfg_reasoning {
	CFG_RF_THINK_TAGS,
	CFG_RF_REASONING_CONTENT,
	CFG_RF_HIDDEN,
};

/* Which tokens a model may use, and which quota it spends. */
enum cfg_pool {
	CFG_POOL_NORMAL, /* ssoNormal first, then ssoSuper; remainingQueries */
	CFG_POOL_SUPER,  /* ssoSuper only; heavyremainingQueries */
};

struct cfg_model {
	char name[CFG_NAME_MAX];             /* public name, e.g. grok-4.1 */
	char upstream[CFG_NAME_MAX];         /* payload modelName */
	char mode[CFG_NAME_MAX];             /* payload modelMode */
	char rate_limit_model[CFG_NAME_MAX]; /* /rest/rate-limits modelName */
	int32_t cost;  /* quota spent per request: 1 or 4 */
	uint8_t pool;  /* enum cfg_pool */
	uint8_t video; /* can turn an image into a video */
	uint8_t pad[2];
};

struct cfg {
	/* server: */
	char listen[CFG_STR_MAX]; /* "127.0.0.1:3000" */
	int32_t workers;          /* 0 = one per CPU */
	uint32_t n_api_keys;
	char api_keys[CFG_API_KEYS][CFG_KEY_MAX];
	char admin_password[CFG_STR_MAX]; /* argon2id hash, or empty */
	char data_dir[CFG_STR_MAX];
	char log_file[CFG_STR_MAX]; /* empty = stderr */
	int32_t log_level;          /* enum log_level */
	int32_t max_connections;    /* per worker */
	int32_t connection_timeout; /* seconds of client inactivity */
	int32_t drain_timeout;      /* seconds a stopping worker may take */
	uint64_t max_body_bytes;
	char cors_origins[CFG_STR_MAX]; /* "*" or comma separated origins */
	uint32_t n_trusted_proxies;     /* whose X-Forwarded-* we believe */
	char trusted_proxies[CFG_CIDRS][CFG_CIDR_MAX];

	/* projects: */
	uint8_t grok_enabled;

	/* grok: (the seed's keys) */
	uint8_t dynamic_statsig;
	uint8_t temporary;
	uint8_t show_thinking;
	int32_t image_mode; /* enum cfg_image_mode */
	char base_url[CFG_STR_MAX];
	char x_statsig_id[CFG_STR_MAX];
	char proxy_url[CFG_STR_MAX];
	char proxy_pool_url[CFG_STR_MAX];
	int32_t proxy_pool_interval; /* seconds */
	uint32_t n_retry_codes;
	int32_t retry_status_codes[CFG_RETRY_CODES];
	char filtered_tags[CFG_STR_MAX]; /* comma separated */
	int32_t image_cache_max_size_mb;
	int32_t video_cache_max_size_mb;

	/* grok: (what grok.com needs that the seed leaves implicit) */
	char upstream_url[CFG_STR_MAX];
	char assets_url[CFG_STR_MAX];
	char cf_clearance[CFG_STR_MAX];
	char user_agent[CFG_STR_MAX];
	int32_t stream_first_response_timeout; /* seconds */
	int32_t stream_chunk_timeout;          /* seconds */
	int32_t stream_total_timeout;          /* seconds */
	uint32_t max_tokens;                   /* token table capacity */
	int32_t reasoning_format;              /* enum cfg_reasoning */
	char statsig_prefix[64];               /* of generated x-statsig-id */
	char statsig_signer_url[CFG_STR_MAX];
	uint32_t n_image_fetch_allow; /* private ranges image_url may reach */
	char image_fetch_allow[CFG_CIDRS]
	                      [CFG_CIDR_MAX]; /* external signer, or "" */

	/* The model table: built-in defaults, then config overrides. */
	uint32_t n_models;
	struct cfg_model models[CFG_MODELS];
};

/* Fill c with every default, including the seed's eight models. */
void cfg_defaults(struct cfg *c);

/*
 * Load path into c (defaults first, then the file). On failure returns
 * WP_EPARSE, WP_ERANGE or WP_ESYS and writes one line
 * "path:line:col: key: problem" into err (errlen bytes); c is then
 * unspecified. Allocates only while loading; c owns nothing.
 */
int cfg_load(const char *path, struct cfg *c, char *err, size_t errlen);

/* The model named name, or NULL. */
const struct cfg_model *cfg_model_find(const struct cfg *c, const char *name);

/* Whether code is listed in retry_status_codes. */
bool cfg_retry_code(const struct cfg *c, int code);

/*
 * Keys whose value differs between a and b and that only a restart can
 * apply: writes their names, comma separated, into buf and returns how many.
 */
int cfg_restart_diff(
    const struct cfg *a, const struct cfg *b, char *buf, size_t len);

#endif
