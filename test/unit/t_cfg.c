/*
 * Unit tests of the config loader (shared/cfg.c): the shipped file, the
 * built-in and configured model table, every kind of bad file with the
 * exact position it is reported at, and cfg_restart_diff(). Run from the
 * repository root (it reads conf/config.yaml and man/webproxyd.yaml.5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "cfg_keys.h"
#include "err.h"
#include "log.h"
#include "util.h"

#include "th.h"

static char err[CFG_ERR_MAX];

/* Load yaml from a temporary file; err holds the message. */
static int
load(const char *yaml, struct cfg *c)
{
	char path[] = "/tmp/t_cfg.XXXXXX";
	int fd, rc;

	if ((fd = mkstemp(path)) < 0) {
		perror("mkstemp");
		exit(2);
	}
	if (util_write_all(fd, yaml, strlen(yaml)) != 0) {
		perror("write");
		exit(2);
	}
	close_fd(&fd);
	rc = cfg_load(path, c, err, sizeof(err));
	(void)unlink(path); /* a leftover in /tmp is harmless */
	return rc;
}

/* Read a whole small file of the repository into a new string. */
static char *
slurp(const char *path)
{
	static char buf[256 * 1024];
	FILE *fp;
	size_t n;

	if ((fp = fopen(path, "re")) == NULL) {
		perror(path);
		exit(2);
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	(void)fclose(fp); /* read-only */
	return buf;
}

TEST(t_defaults)
{
	struct cfg c;

	cfg_defaults(&c);
	EXPECT_STR_EQ(c.listen, "127.0.0.1:3000");
	EXPECT_INT_EQ(c.workers, 0);
	EXPECT_INT_EQ(c.n_api_keys, 0);
	EXPECT_STR_EQ(c.admin_password, "");
	EXPECT_STR_EQ(c.data_dir, "var");
	EXPECT_STR_EQ(c.log_file, "");
	EXPECT_INT_EQ(c.log_level, LOG_LVL_NOTICE);
	EXPECT_INT_EQ(c.max_connections, 16384);
	EXPECT_INT_EQ(c.connection_timeout, 30);
	EXPECT_INT_EQ(c.drain_timeout, 30);
	EXPECT_INT_EQ(c.max_body_bytes, 20971520);
	EXPECT_INT_EQ(c.grok_enabled, 1);
	EXPECT_STR_EQ(c.base_url, "");
	EXPECT_STR_EQ(c.x_statsig_id, "");
	EXPECT_INT_EQ(c.dynamic_statsig, 1);
	EXPECT_INT_EQ(c.temporary, 0);
	EXPECT_STR_EQ(c.proxy_url, "");
	EXPECT_STR_EQ(c.proxy_pool_url, "");
	EXPECT_INT_EQ(c.proxy_pool_interval, 300);
	EXPECT_INT_EQ(c.n_retry_codes, 2);
	EXPECT_INT_EQ(c.retry_status_codes[0], 401);
	EXPECT_INT_EQ(c.retry_status_codes[1], 429);
	EXPECT_STR_EQ(
	    c.filtered_tags, "xaiartifact,xai:tool_usage_card,grok:render");
	EXPECT_INT_EQ(c.show_thinking, 1);
	EXPECT_INT_EQ(c.image_mode, CFG_IMAGE_URL);
	EXPECT_INT_EQ(c.image_cache_max_size_mb, 500);
	EXPECT_INT_EQ(c.video_cache_max_size_mb, 500);
	EXPECT_STR_EQ(c.upstream_url, "https://grok.com");
	EXPECT_STR_EQ(c.assets_url, "https://assets.grok.com");
	EXPECT_STR_EQ(c.cf_clearance, "");
	EXPECT_STR_EQ(c.user_agent, CFG_UA_DEFAULT);
	EXPECT_INT_EQ(c.stream_first_response_timeout, 30);
	EXPECT_INT_EQ(c.stream_chunk_timeout, 120);
	EXPECT_INT_EQ(c.stream_total_timeout, 600);
	EXPECT_INT_EQ(c.max_tokens, 10000);
	EXPECT(cfg_retry_code(&c, 401));
	EXPECT(cfg_retry_code(&c, 429));
	EXPECT(!cfg_retry_code(&c, 403));
}

/* The file `make run` uses says exactly what the defaults are. */
TEST(t_shipped_file)
{
	struct cfg c, d;
	int rc;

	rc = cfg_load("conf/config.yaml", &c, err, sizeof(err));
	EXPECT_INT_EQ(rc, 0);
	EXPECT_STR_EQ(err, "");
	cfg_defaults(&d);
	EXPECT(memcmp(&c, &d, sizeof(c)) == 0);
	EXPECT_STR_EQ(c.listen, "127.0.0.1:3000");
	EXPECT_STR_EQ(c.data_dir, "var");
}

TEST(t_builtin_models)
{
	static const char *const names[] = { "grok-3-fast", "grok-4.1",
		"grok-4.1-thinking", "grok-4-fast", "grok-4-fast-expert",
		"grok-4-expert", "grok-4-heavy", "grok-imagine-0.9" };
	const struct cfg_model *m;
	struct cfg c;
	size_t i;

	cfg_defaults(&c);
	EXPECT_INT_EQ(c.n_models, 8);
	for (i = 0; i < ARRAY_LEN(names); i++)
		EXPECT_STR_EQ(c.models[i].name, names[i]);

	m = cfg_model_find(&c, "grok-3-fast");
	EXPECT(m == &c.models[0]);
	EXPECT_STR_EQ(m->upstream, "grok-3");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_FAST");
	EXPECT_STR_EQ(m->rate_limit_model, "grok-3");
	EXPECT_INT_EQ(m->cost, 1);
	EXPECT_INT_EQ(m->pool, CFG_POOL_NORMAL);
	EXPECT_INT_EQ(m->video, 0);

	m = cfg_model_find(&c, "grok-4.1");
	EXPECT_STR_EQ(m->upstream, "grok-4-1-non-thinking-w-tool");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_GROK_4_1");
	EXPECT_STR_EQ(m->rate_limit_model, "grok-4-1-non-thinking-w-tool");

	m = cfg_model_find(&c, "grok-4.1-thinking");
	EXPECT_STR_EQ(m->upstream, "grok-4-1-thinking-1108b");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_AUTO");

	m = cfg_model_find(&c, "grok-4-fast");
	EXPECT_STR_EQ(m->upstream, "grok-4-mini-thinking-tahoe");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_GROK_4_MINI_THINKING");
	EXPECT_INT_EQ(m->cost, 1);

	m = cfg_model_find(&c, "grok-4-fast-expert");
	EXPECT_STR_EQ(m->upstream, "grok-4-mini-thinking-tahoe");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_EXPERT");
	EXPECT_INT_EQ(m->cost, 4);

	m = cfg_model_find(&c, "grok-4-expert");
	EXPECT_STR_EQ(m->upstream, "grok-4");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_EXPERT");
	EXPECT_INT_EQ(m->cost, 4);

	m = cfg_model_find(&c, "grok-4-heavy");
	EXPECT_STR_EQ(m->upstream, "grok-4-heavy");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_HEAVY");
	EXPECT_INT_EQ(m->cost, 1);
	EXPECT_INT_EQ(m->pool, CFG_POOL_SUPER);

	m = cfg_model_find(&c, "grok-imagine-0.9");
	EXPECT_STR_EQ(m->upstream, "grok-3");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_FAST");
	EXPECT_INT_EQ(m->video, 1);

	EXPECT(cfg_model_find(&c, "grok-5") == NULL);
	EXPECT(cfg_model_find(&c, "") == NULL);
}

TEST(t_models_override_and_add)
{
	const struct cfg_model *m;
	struct cfg c;
	int rc;

	rc = load("grok:\n"
	          "  models:\n"
	          "    - name: grok-4.1\n"
	          "      upstream: grok-4-1-v2\n"
	          "    - name: grok-4-heavy\n"
	          "      cost: 2\n"
	          "    - name: my-model\n"
	          "      upstream: my-up\n"
	          "      mode: MODEL_MODE_AUTO\n"
	          "    - name: my-video\n"
	          "      upstream: v-up\n"
	          "      mode: MODEL_MODE_FAST\n"
	          "      rate_limit_model: grok-3\n"
	          "      cost: 4\n"
	          "      pool: super\n"
	          "      video: true\n",
	    &c);
	EXPECT_INT_EQ(rc, 0);
	EXPECT_STR_EQ(err, "");
	EXPECT_INT_EQ(c.n_models, 10);

	/* Replaced in place, in the built-in order; untouched keys kept. */
	EXPECT_STR_EQ(c.models[1].name, "grok-4.1");
	m = cfg_model_find(&c, "grok-4.1");
	EXPECT(m == &c.models[1]);
	EXPECT_STR_EQ(m->upstream, "grok-4-1-v2");
	EXPECT_STR_EQ(m->rate_limit_model, "grok-4-1-v2");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_GROK_4_1");
	EXPECT_INT_EQ(m->cost, 1);

	m = cfg_model_find(&c, "grok-4-heavy");
	EXPECT(m == &c.models[6]);
	EXPECT_INT_EQ(m->cost, 2);
	EXPECT_INT_EQ(m->pool, CFG_POOL_SUPER);
	EXPECT_STR_EQ(m->upstream, "grok-4-heavy");

	/* New ones appended, with defaults for what they leave out. */
	m = cfg_model_find(&c, "my-model");
	EXPECT(m == &c.models[8]);
	EXPECT_STR_EQ(m->upstream, "my-up");
	EXPECT_STR_EQ(m->mode, "MODEL_MODE_AUTO");
	EXPECT_STR_EQ(m->rate_limit_model, "my-up");
	EXPECT_INT_EQ(m->cost, 1);
	EXPECT_INT_EQ(m->pool, CFG_POOL_NORMAL);
	EXPECT_INT_EQ(m->video, 0);

	m = cfg_model_find(&c, "my-video");
	EXPECT(m == &c.models[9]);
	EXPECT_STR_EQ(m->rate_limit_model, "grok-3");
	EXPECT_INT_EQ(m->cost, 4);
	EXPECT_INT_EQ(m->pool, CFG_POOL_SUPER);
	EXPECT_INT_EQ(m->video, 1);
}

TEST(t_models_bad)
{
	struct cfg c;
	char yaml[8192];
	size_t off;
	int i, rc;

	rc = load("grok:\n"
	          "  models:\n"
	          "    - name: new-one\n"
	          "      upstream: up\n",
	    &c);
	EXPECT_INT_EQ(rc, WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:7: grok.models[0]: a new model needs mode");

	rc = load("grok:\n"
	          "  models:\n"
	          "    - upstream: up\n",
	    &c);
	EXPECT_INT_EQ(rc, WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:7: grok.models[0]: a model needs a name");

	rc = load("grok:\n"
	          "  models:\n"
	          "    - name: grok-4.1\n"
	          "      cost: 0\n",
	    &c);
	EXPECT_INT_EQ(rc, WP_ERANGE);
	EXPECT_CONTAINS(
	    err, ":4:7: grok.models[0].cost: 0 is out of range 1..100");

	rc = load("grok:\n"
	          "  models:\n"
	          "    - name: grok-4.1\n"
	          "      pool: gold\n",
	    &c);
	EXPECT_INT_EQ(rc, WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":4:7: grok.models[0].pool: \"gold\" is not one "
	    "of normal, super");

	rc = load("grok:\n"
	          "  models:\n"
	          "    - name: grok-4.1\n"
	          "    - name: grok-4.1\n",
	    &c);
	EXPECT_INT_EQ(rc, WP_EPARSE);
	EXPECT_CONTAINS(err, ":4:7: grok.models[1].name: model listed twice");

	/* 8 built-in + 24 new = 32; the 25th new one is one too many. */
	off = (size_t)snprintf(yaml, sizeof(yaml), "grok:\n  models:\n");
	for (i = 0; i < 25; i++)
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
		    "    - { name: m%d, upstream: u, mode: M }\n", i);
	rc = load(yaml, &c);
	EXPECT_INT_EQ(rc, WP_ERANGE);
	EXPECT_CONTAINS(err, ":27:7: grok.models[24]: more than 32 models");
}

/* Every row of cfg_keys.h is documented in the man page and the file. */
#define KEY_NAME(k, ...) #k,
TEST(t_keys_documented)
{
	static const char *const keys[] = { CFG_KEYS_SERVER(KEY_NAME)
		    CFG_KEYS_PROJECTS_GROK(KEY_NAME) CFG_KEYS_GROK(KEY_NAME)
		        CFG_KEYS_MODEL(KEY_NAME) };
	char needle[128];
	const char *man, *conf;
	size_t i;

	man = strdup(slurp("man/webproxyd.yaml.5"));
	conf = slurp("conf/config.yaml");
	WP_ASSERT(man != NULL);
	for (i = 0; i < ARRAY_LEN(keys); i++) {
		(void)snprintf(needle, sizeof(needle), ".It Cm %s\n", keys[i]);
		if (strstr(man, needle) == NULL)
			TH_FAILED("%s not in man/webproxyd.yaml.5", keys[i]);
		(void)snprintf(needle, sizeof(needle), " %s:", keys[i]);
		if (strstr(conf, needle) == NULL)
			TH_FAILED("%s not in conf/config.yaml", keys[i]);
	}
	free((void *)(uintptr_t)man);
}

TEST(t_partial_and_empty)
{
	struct cfg c, d;
	int rc;

	cfg_defaults(&d);
	rc = load("", &c);
	EXPECT_INT_EQ(rc, 0);
	EXPECT(memcmp(&c, &d, sizeof(c)) == 0);

	rc = load("# nothing but a comment\n", &c);
	EXPECT_INT_EQ(rc, 0);
	EXPECT(memcmp(&c, &d, sizeof(c)) == 0);

	rc = load("---\n", &c);
	EXPECT_INT_EQ(rc, 0);

	/* Sections whose keys are all commented out. */
	rc = load("server:\n  # workers: 4\ngrok:\nprojects:\n  grok:\n", &c);
	EXPECT_INT_EQ(rc, 0);
	EXPECT_STR_EQ(err, "");
	EXPECT(memcmp(&c, &d, sizeof(c)) == 0);

	rc = load(
	    "grok:\n"
	    "  image_mode: base64\n"
	    "  show_thinking: off\n"
	    "  temporary: yes\n"
	    "  base_url: \"https://proxy.example.com/\"\n"
	    "  proxy_url: socks5h://127.0.0.1:1080\n"
	    "  retry_status_codes: []\n"
	    "projects:\n"
	    "  grok:\n"
	    "    enabled: false\n"
	    "server:\n"
	    "  listen: \"[::1]:8080\"\n"
	    "  workers: \"4\"\n"
	    "  log_level: debug\n"
	    "  api_keys:\n"
	    "  admin_password: \"$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA\"\n",
	    &c);
	EXPECT_INT_EQ(rc, 0);
	EXPECT_STR_EQ(err, "");
	EXPECT_INT_EQ(c.image_mode, CFG_IMAGE_BASE64);
	EXPECT_INT_EQ(c.show_thinking, 0);
	EXPECT_INT_EQ(c.temporary, 1);
	EXPECT_STR_EQ(c.base_url, "https://proxy.example.com");
	EXPECT_STR_EQ(c.proxy_url, "socks5h://127.0.0.1:1080");
	EXPECT_INT_EQ(c.n_retry_codes, 0);
	EXPECT(!cfg_retry_code(&c, 401));
	EXPECT_INT_EQ(c.grok_enabled, 0);
	EXPECT_STR_EQ(c.listen, "[::1]:8080");
	EXPECT_INT_EQ(c.workers, 4);
	EXPECT_INT_EQ(c.log_level, LOG_LVL_DEBUG);
	EXPECT_INT_EQ(c.n_api_keys, 0);
	EXPECT_INT_EQ(c.dynamic_statsig, 1); /* untouched */
	EXPECT_INT_EQ(c.max_tokens, 10000);

	rc = load("server:\n  api_keys: [k1, \"k 2\"]\n"
	          "grok:\n  retry_status_codes: [500]\n",
	    &c);
	EXPECT_INT_EQ(rc, 0);
	EXPECT_INT_EQ(c.n_api_keys, 2);
	EXPECT_STR_EQ(c.api_keys[0], "k1");
	EXPECT_STR_EQ(c.api_keys[1], "k 2");
	EXPECT_INT_EQ(c.n_retry_codes, 1);
	EXPECT(cfg_retry_code(&c, 500));
	EXPECT(!cfg_retry_code(&c, 429));
}

TEST(t_unknown_key)
{
	struct cfg c;

	EXPECT_INT_EQ(load("server:\n"
	                   "  listen: \"127.0.0.1:3000\"\n"
	                   "  bogus: 1\n",
	                  &c),
	    WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:3: server.bogus: unknown key");
	EXPECT_CONTAINS(err, "/tmp/t_cfg.");

	EXPECT_INT_EQ(
	    load("grok:\n  x: 1\nservr:\n  listen: x\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: grok.x: unknown key");

	EXPECT_INT_EQ(load("servr:\n  listen: x\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":1:1: servr: unknown key");

	EXPECT_INT_EQ(
	    load("projects:\n  grok:\n    enabeld: true\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:5: projects.grok.enabeld: unknown key");

	EXPECT_INT_EQ(
	    load("server:\n  workers: 1\n  workers: 2\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:3: server.workers: duplicate key");
}

TEST(t_wrong_type)
{
	struct cfg c;

	EXPECT_INT_EQ(load("# comment\n"
	                   "server:\n"
	                   "  workers: many\n",
	                  &c),
	    WP_EPARSE);
	EXPECT_CONTAINS(
	    err, ":3:3: server.workers: expected an integer, got \"many\"");

	EXPECT_INT_EQ(load("server:\n  workers: 010x\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: server.workers: expected an integer");

	EXPECT_INT_EQ(load("grok:\n  show_thinking: maybe\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":2:3: grok.show_thinking: expected true or "
	    "false, got \"maybe\"");

	EXPECT_INT_EQ(load("server:\n  listen: [a, b]\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(
	    err, ":2:3: server.listen: expected a single value, got a list");

	EXPECT_INT_EQ(load("server: 5\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":1:1: server: expected a mapping, got a single "
	    "value");

	EXPECT_INT_EQ(
	    load("grok:\n  retry_status_codes: 401\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: grok.retry_status_codes: expected a list");

	EXPECT_INT_EQ(
	    load("grok:\n  models:\n    - grok-4.1\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:7: grok.models[0]: expected a mapping");

	EXPECT_INT_EQ(load("- server\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":1:1: (top level): expected a mapping, got a "
	    "list");
}

TEST(t_out_of_range)
{
	struct cfg c;
	char yaml[512];

	EXPECT_INT_EQ(load("server:\n  workers: 65\n", &c), WP_ERANGE);
	EXPECT_CONTAINS(err, ":2:3: server.workers: 65 is out of range 0..64");

	EXPECT_INT_EQ(load("grok:\n  proxy_pool_interval: 9\n", &c), WP_ERANGE);
	EXPECT_CONTAINS(err,
	    ":2:3: grok.proxy_pool_interval: 9 is out of "
	    "range 10..86400");

	EXPECT_INT_EQ(
	    load("server:\n  max_body_bytes: 99999999999999999999\n", &c),
	    WP_ERANGE);
	EXPECT_CONTAINS(err, ":2:3: server.max_body_bytes:");

	EXPECT_INT_EQ(
	    load("grok:\n  retry_status_codes: [401, 700]\n", &c), WP_ERANGE);
	EXPECT_CONTAINS(err,
	    ":2:29: grok.retry_status_codes[1]: 700 is out "
	    "of range 100..599");

	(void)snprintf(yaml, sizeof(yaml), "grok:\n  user_agent: %0300d\n", 7);
	EXPECT_INT_EQ(load(yaml, &c), WP_ERANGE);
	EXPECT_CONTAINS(err, ":2:3: grok.user_agent: longer than 255 bytes");

	EXPECT_INT_EQ(load("server:\n  data_dir: \"\"\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: server.data_dir: must not be empty");

	EXPECT_INT_EQ(load("server:\n  api_keys: [\"\"]\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:14: server.api_keys[0]: must not be empty");
}

TEST(t_too_many_api_keys)
{
	struct cfg c;
	char yaml[1024];
	size_t off;
	int i;

	off = (size_t)snprintf(yaml, sizeof(yaml), "server:\n  api_keys:\n");
	for (i = 0; i < CFG_API_KEYS + 1; i++)
		off += (size_t)snprintf(
		    yaml + off, sizeof(yaml) - off, "    - key-%d\n", i);
	EXPECT_INT_EQ(load(yaml, &c), WP_ERANGE);
	EXPECT_CONTAINS(
	    err, ":19:7: server.api_keys[16]: too many entries (at most 16)");

	/* Exactly the maximum is fine. */
	off = (size_t)snprintf(yaml, sizeof(yaml), "server:\n  api_keys:\n");
	for (i = 0; i < CFG_API_KEYS; i++)
		off += (size_t)snprintf(
		    yaml + off, sizeof(yaml) - off, "    - key-%d\n", i);
	EXPECT_INT_EQ(load(yaml, &c), 0);
	EXPECT_INT_EQ(c.n_api_keys, CFG_API_KEYS);
	EXPECT_STR_EQ(c.api_keys[15], "key-15");
}

TEST(t_bad_enum)
{
	struct cfg c;

	EXPECT_INT_EQ(load("grok:\n"
	                   "  show_thinking: false\n"
	                   "  image_mode: jpeg\n",
	                  &c),
	    WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":3:3: grok.image_mode: \"jpeg\" is not one of "
	    "url, base64");

	EXPECT_INT_EQ(load("server:\n  log_level: loud\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":2:3: server.log_level: \"loud\" is not one of "
	    "debug, info, notice, warn, error");
}

TEST(t_bad_values)
{
	struct cfg c;

	EXPECT_INT_EQ(
	    load("grok:\n  upstream_url: \"ftp://grok.com\"\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":2:3: grok.upstream_url: expected an http:// or "
	    "https:// URL");

	EXPECT_INT_EQ(
	    load("grok:\n  assets_url: \"https://\"\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: grok.assets_url: expected an http://");

	EXPECT_INT_EQ(
	    load("grok:\n  base_url: localhost:3000\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: grok.base_url: expected an http://");

	EXPECT_INT_EQ(load("grok:\n  proxy_url: socks4://10.0.0.1:1080\n", &c),
	    WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":2:3: grok.proxy_url: expected an http://, "
	    "https://, socks5:// or socks5h:// URL");
	/* A proxy URL may hold a password: never echo string values. */
	EXPECT(strstr(err, "10.0.0.1") == NULL);

	EXPECT_INT_EQ(
	    load("grok:\n  proxy_pool_url: socks5://x:1\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: grok.proxy_pool_url: expected an http://");

	EXPECT_INT_EQ(load("server:\n  listen: localhost\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:3: server.listen: expected host:port");

	EXPECT_INT_EQ(
	    load("server:\n  admin_password: hunter2\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":2:3: server.admin_password: expected an "
	    "argon2id hash");
	EXPECT(strstr(err, "hunter2") == NULL);

	EXPECT_INT_EQ(load("grok:\n  user_agent: \"a\\nb\"\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(
	    err, ":2:3: grok.user_agent: contains a control character");
}

TEST(t_syntax_error)
{
	struct cfg c;

	EXPECT_INT_EQ(load("grok:\n"
	                   "  temporary: false\n"
	                   "\tshow_thinking: true\n",
	                  &c),
	    WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":3:1: grok.temporary: YAML syntax: found a tab character that "
	    "violates indentation");

	EXPECT_INT_EQ(
	    load("grok:\n  temporary: false\n  proxy_url: a: b\n", &c),
	    WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":3:15: grok: YAML syntax: mapping values are not allowed "
	    "in this context");

	EXPECT_INT_EQ(
	    load("server:\n  listen: \"127.0.0.1:3000\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":3:1: server.listen: YAML syntax: found "
	    "unexpected end of stream");

	EXPECT_INT_EQ(
	    load("server:\n  workers: 1\n listen: x\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":3:2: (top level): YAML syntax: did not find "
	    "expected key");

	EXPECT_INT_EQ(
	    load("server:\n  listen: &a x\n  data_dir: *a\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":3:3: server.data_dir: aliases (*name) are not "
	    "supported");

	EXPECT_INT_EQ(load("server: {}\n---\ngrok: {}\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:1: (top level): more than one YAML document");

	EXPECT_INT_EQ(load("server:\n  ? [a]\n  : b\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":2:5: server: a key must be a plain string");

	EXPECT_INT_EQ(
	    load("grok:\n  filtered_tags: \"\xff\"\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err,
	    ":2:19: grok.filtered_tags: YAML syntax: invalid "
	    "leading UTF-8 octet");
	EXPECT(strchr(err, '\n') == NULL);

	/* In a comment: named after the last key before it. */
	EXPECT_INT_EQ(
	    load("grok:\n  temporary: false\n  # caf\xff\n", &c), WP_EPARSE);
	EXPECT_CONTAINS(err, ":3:8: grok.temporary: YAML syntax: invalid");
}

TEST(t_unreadable)
{
	struct cfg c;

	EXPECT_INT_EQ(
	    cfg_load("/nonexistent/config.yaml", &c, err, sizeof(err)),
	    WP_ESYS);
	EXPECT_INT_EQ(errno, ENOENT);
	EXPECT_STR_EQ(err,
	    "/nonexistent/config.yaml: cannot open: No such file or directory");

	EXPECT_INT_EQ(cfg_load("conf", &c, err, sizeof(err)), WP_ESYS);
	EXPECT_CONTAINS(err, "conf: cannot read:");

	/* A tiny buffer still gets a terminated message. */
	EXPECT_INT_EQ(
	    cfg_load("/nonexistent/config.yaml", &c, err, 8), WP_ESYS);
	EXPECT_STR_EQ(err, "/nonexi");
}

TEST(t_restart_diff)
{
	struct cfg a, b;
	char buf[128];

	cfg_defaults(&a);
	cfg_defaults(&b);
	EXPECT_INT_EQ(cfg_restart_diff(&a, &b, buf, sizeof(buf)), 0);
	EXPECT_STR_EQ(buf, "");

	/* Keys a reload applies are not listed. */
	b.workers = 8;
	b.show_thinking = 0;
	(void)util_strlcpy(
	    b.upstream_url, "http://127.0.0.1:9", sizeof(b.upstream_url));
	EXPECT_INT_EQ(cfg_restart_diff(&a, &b, buf, sizeof(buf)), 0);

	(void)util_strlcpy(b.listen, "0.0.0.0:3000", sizeof(b.listen));
	b.max_tokens = 20000;
	EXPECT_INT_EQ(cfg_restart_diff(&a, &b, buf, sizeof(buf)), 2);
	EXPECT_STR_EQ(buf, "server.listen, grok.max_tokens");

	(void)util_strlcpy(
	    b.data_dir, "/var/lib/webproxyd", sizeof(b.data_dir));
	EXPECT_INT_EQ(cfg_restart_diff(&a, &b, buf, sizeof(buf)), 3);
	EXPECT_STR_EQ(buf, "server.listen, server.data_dir, grok.max_tokens");

	/* Too small a buffer: still counted, still terminated. */
	EXPECT_INT_EQ(cfg_restart_diff(&a, &b, buf, 10), 3);
	EXPECT_STR_EQ(buf, "server.li");
	EXPECT_INT_EQ(cfg_restart_diff(&a, &b, buf, 0), 3);
}

int
main(void)
{
	RUN(t_defaults);
	RUN(t_shipped_file);
	RUN(t_builtin_models);
	RUN(t_models_override_and_add);
	RUN(t_models_bad);
	RUN(t_keys_documented);
	RUN(t_partial_and_empty);
	RUN(t_unknown_key);
	RUN(t_wrong_type);
	RUN(t_out_of_range);
	RUN(t_too_many_api_keys);
	RUN(t_bad_enum);
	RUN(t_bad_values);
	RUN(t_syntax_error);
	RUN(t_unreadable);
	RUN(t_restart_diff);
	TH_DONE();
}
