/*
 * Every key of conf/config.yaml, described once. cfg.c expands these
 * tables into the defaults, the libcyaml schema, the range checks and
 * cfg_restart_diff(); man/webproxyd.yaml.5 and conf/config.yaml document
 * the same rows (test/unit/t_cfg.c checks that each key appears in both).
 *
 * One row per key:
 *
 *	X(key, type, member, default, min, max, check, apply, doc)
 *
 * key	   the YAML key; its path is the table's section plus the key
 *	   ("server." "listen" is server.listen).
 * type	   STR      a string; min..max bound its length in bytes
 *	   INT      a decimal integer in min..max
 *	   BOOL     true/false (also yes/no, on/off)
 *	   ENUM     one of the names the check function knows
 *	   STRLIST  a list of STR, each min..max bytes long
 *	   INTLIST  a list of INT, each in min..max
 *	   MODELS   the model table (CFG_KEYS_MODEL describes one entry)
 *	   Lists hold at most as many entries as the member's array.
 * member  the field of struct cfg (struct cfg_model for CFG_KEYS_MODEL).
 * default the value as it would be written in the file, parsed and checked
 *	   by the same code as the file ("401,429" for a list; NULL in
 *	   CFG_KEYS_MODEL means a new model must give it).
 * check   extra validation of the value: none, hostport, http_url,
 *	   proxy_url, argon2; or, for ENUM, the name set: log_level,
 *	   image_mode, pool.
 * apply   RELOAD: SIGHUP applies it (a reload starts new workers, so every
 *	   key a worker reads applies live); RESTART: only a restart does,
 *	   because the master uses it once at start (the socket, the data
 *	   folder, the size of the shared token table).
 * doc	   one line for humans.
 *
 * Only macros here: the names in the rows (CFG_STR_MAX, CFG_NAME_MAX) come
 * from cfg.h.
 */
#ifndef WP_CFG_KEYS_H
#define WP_CFG_KEYS_H

#include "cfg.h"

/* One row per key reads better than what clang-format would make of it. */
/* clang-format off */

#define CFG_UA_DEFAULT                                                       \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "      \
	"(KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36"

/* server: */
#define CFG_KEYS_SERVER(X)                                                   \
	X(listen, STR, listen, "127.0.0.1:3000", 1, CFG_STR_MAX - 1,         \
	    hostport, RESTART, "address:port to listen on")                  \
	X(workers, INT, workers, "0", 0, 64, none, RELOAD,                   \
	    "worker processes; 0 = one per CPU")                             \
	X(api_keys, STRLIST, api_keys, "", 1, CFG_KEY_MAX - 1, none, RELOAD, \
	    "bearer keys clients must send; empty only on loopback")         \
	X(admin_password, STR, admin_password, "", 0, CFG_STR_MAX - 1,       \
	    argon2, RELOAD, "argon2id hash of the admin password")           \
	X(data_dir, STR, data_dir, "var", 1, CFG_STR_MAX - 1, none, RESTART, \
	    "folder for accounts/ and temp/")                                \
	X(log_file, STR, log_file, "", 0, CFG_STR_MAX - 1, none, RELOAD,     \
	    "log file; empty = stderr")                                      \
	X(log_level, ENUM, log_level, "notice", 0, 0, log_level, RELOAD,     \
	    "debug, info, notice, warn or error")                            \
	X(max_connections, INT, max_connections, "16384", 1, 1000000, none,  \
	    RELOAD, "open client connections per worker")                    \
	X(connection_timeout, INT, connection_timeout, "30", 1, 3600, none,  \
	    RELOAD, "seconds a client connection may stay idle")             \
	X(drain_timeout, INT, drain_timeout, "30", 0, 86400, none, RELOAD,   \
	    "seconds a stopping worker may finish requests")                 \
	X(max_body_bytes, INT, max_body_bytes, "20971520", 1024, 1073741824, \
	    none, RELOAD, "largest request body accepted")                   \
	X(cors_origins, STR, cors_origins, "*", 1, CFG_STR_MAX - 1, none,    \
	    RELOAD, "origins browsers may call /v1/* from; * = any")         \
	X(trusted_proxies, STRLIST, trusted_proxies, "", 1,                  \
	    CFG_CIDR_MAX - 1, cidr, RELOAD,                                  \
	    "proxies whose X-Forwarded-Proto/Host are believed")

/* projects: grok: */
#define CFG_KEYS_PROJECTS_GROK(X)                                            \
	X(enabled, BOOL, grok_enabled, "true", 0, 1, none, RELOAD,           \
	    "serve the grok models")

/* grok: */
#define CFG_KEYS_GROK(X)                                                     \
	X(base_url, STR, base_url, "", 0, CFG_STR_MAX - 1, http_url, RELOAD, \
	    "public URL of this server for image/video links")               \
	X(x_statsig_id, STR, x_statsig_id, "", 0, CFG_STR_MAX - 1, none,     \
	    RELOAD, "fixed x-statsig-id when dynamic_statsig is off")        \
	X(dynamic_statsig, BOOL, dynamic_statsig, "true", 0, 1, none,        \
	    RELOAD, "generate a fresh x-statsig-id per request")             \
	X(temporary, BOOL, temporary, "false", 0, 1, none, RELOAD,           \
	    "temporary conversations (not kept in the account history)")     \
	X(proxy_url, STR, proxy_url, "", 0, CFG_STR_MAX - 1, proxy_url,      \
	    RELOAD, "static proxy: http, https, socks5 or socks5h")          \
	X(proxy_pool_url, STR, proxy_pool_url, "", 0, CFG_STR_MAX - 1,       \
	    http_url, RELOAD, "URL that returns a fresh proxy URL")          \
	X(proxy_pool_interval, INT, proxy_pool_interval, "300", 10, 86400,   \
	    none, RELOAD, "seconds between proxy pool refreshes")            \
	X(retry_status_codes, INTLIST, retry_status_codes, "401,429", 100,   \
	    599, none, RELOAD, "upstream statuses retried with backoff")     \
	X(filtered_tags, STR, filtered_tags,                                 \
	    "xaiartifact,xai:tool_usage_card,grok:render", 0,                \
	    CFG_STR_MAX - 1, none, RELOAD,                                   \
	    "comma separated Grok tags removed from answers")                \
	X(show_thinking, BOOL, show_thinking, "true", 0, 1, none, RELOAD,    \
	    "send reasoning inside <think>...</think>")                      \
	X(image_mode, ENUM, image_mode, "url", 0, 0, image_mode, RELOAD,     \
	    "generated images as a url or inline base64")                    \
	X(image_cache_max_size_mb, INT, image_cache_max_size_mb, "500", 0,   \
	    1048576, none, RELOAD, "size cap of data/temp/image in MiB")     \
	X(video_cache_max_size_mb, INT, video_cache_max_size_mb, "500", 0,   \
	    1048576, none, RELOAD, "size cap of data/temp/video in MiB")     \
	X(upstream_url, STR, upstream_url, "https://grok.com", 1,            \
	    CFG_STR_MAX - 1, http_url, RELOAD, "grok.com base URL")          \
	X(assets_url, STR, assets_url, "https://assets.grok.com", 1,         \
	    CFG_STR_MAX - 1, http_url, RELOAD, "grok asset base URL")        \
	X(cf_clearance, STR, cf_clearance, "", 0, CFG_STR_MAX - 1, none,     \
	    RELOAD, "Cloudflare cf_clearance cookie value")                  \
	X(user_agent, STR, user_agent, CFG_UA_DEFAULT, 1, CFG_STR_MAX - 1,   \
	    none, RELOAD, "User-Agent sent to grok.com")                     \
	X(stream_first_response_timeout, INT, stream_first_response_timeout, \
	    "30", 1, 3600, none, RELOAD,                                     \
	    "seconds to wait for the first upstream byte")                   \
	X(stream_chunk_timeout, INT, stream_chunk_timeout, "120", 1, 3600,   \
	    none, RELOAD, "seconds of upstream silence mid-stream")          \
	X(stream_total_timeout, INT, stream_total_timeout, "600", 1, 86400,  \
	    none, RELOAD, "seconds one upstream answer may take")            \
	X(max_tokens, INT, max_tokens, "10000", 1, 1000000, none, RESTART,   \
	    "capacity of the shared SSO token table")                        \
	X(reasoning_format, ENUM, reasoning_format, "think_tags", 0, 0,      \
	    reasoning, RELOAD,                                               \
	    "think_tags, reasoning_content or hidden")                       \
	X(statsig_prefix, STR, statsig_prefix, "e:", 0, 63, none, RELOAD,    \
	    "prefix of the generated x-statsig-id text")                     \
	X(statsig_signer_url, STR, statsig_signer_url, "", 0,                \
	    CFG_STR_MAX - 1, http_url, RELOAD,                               \
	    "external x-statsig-id signer; empty = none")                    \
	X(image_fetch_allow, STRLIST, image_fetch_allow, "", 1,              \
	    CFG_CIDR_MAX - 1, cidr, RELOAD,                                  \
	    "private address ranges image_url downloads may reach")          \
	X(models, MODELS, models, "", 0, CFG_MODELS, none, RELOAD,           \
	    "model table entries that override or add to the built-ins")

/*
 * One entry of grok.models. A NULL default means a new model must give
 * the key; an entry whose name is a built-in model changes only the keys
 * it gives. rate_limit_model "" means: the same as upstream.
 */
#define CFG_KEYS_MODEL(X)                                                    \
	X(name, STR, name, NULL, 1, CFG_NAME_MAX - 1, none, RELOAD,          \
	    "public model name clients send")                                \
	X(upstream, STR, upstream, NULL, 1, CFG_NAME_MAX - 1, none, RELOAD,  \
	    "upstream modelName")                                            \
	X(mode, STR, mode, NULL, 1, CFG_NAME_MAX - 1, none, RELOAD,          \
	    "upstream modelMode")                                            \
	X(rate_limit_model, STR, rate_limit_model, "", 0, CFG_NAME_MAX - 1,  \
	    none, RELOAD, "modelName asked at /rest/rate-limits")            \
	X(cost, INT, cost, "1", 1, 100, none, RELOAD,                        \
	    "quota spent per request")                                       \
	X(pool, ENUM, pool, "normal", 0, 0, pool, RELOAD,                    \
	    "normal (normal then super tokens) or super (super only)")       \
	X(video, BOOL, video, "false", 0, 1, none, RELOAD,                   \
	    "can turn an image into a video")

/* clang-format on */

#endif
