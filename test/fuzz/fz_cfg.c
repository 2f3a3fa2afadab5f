/*
 * Fuzz target "cfg": the config loader, cfg_load, on arbitrary files
 * (the input, in a memfd: cfg_load wants a path).
 *
 * Invariants checked: the result is 0 with no message, or one of the
 * documented errors with one line that starts with the path; a loaded
 * config has every string terminated inside its array, every count
 * inside its table, every enum in range, listen a host:port, each
 * address range parseable, each model findable by its name; loading is
 * deterministic; cfg_restart_diff finds nothing between a config and
 * itself and always terminates its output.
 *
 * Input: the YAML file.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "err.h"
#include "util.h"

#include "fuzz.h"

const char fuzz_name[] = "cfg";

static struct cfg cfg_def; /* the defaults, for cfg_restart_diff */

#define CFG_TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static void
cfg_check_loaded(const struct cfg *c)
{
	char host[CFG_STR_MAX];
	struct util_cidr cidr;
	uint16_t port;
	uint32_t i;

	FUZZ_CHECK(CFG_TERMINATED(c->listen) && CFG_TERMINATED(c->data_dir));
	FUZZ_CHECK(CFG_TERMINATED(c->admin_password) &&
	    CFG_TERMINATED(c->log_file) && CFG_TERMINATED(c->cors_origins));
	FUZZ_CHECK(CFG_TERMINATED(c->base_url) &&
	    CFG_TERMINATED(c->x_statsig_id) && CFG_TERMINATED(c->proxy_url) &&
	    CFG_TERMINATED(c->proxy_pool_url));
	FUZZ_CHECK(CFG_TERMINATED(c->filtered_tags) &&
	    CFG_TERMINATED(c->upstream_url) && CFG_TERMINATED(c->assets_url));
	FUZZ_CHECK(CFG_TERMINATED(c->cf_clearance) &&
	    CFG_TERMINATED(c->user_agent) &&
	    CFG_TERMINATED(c->statsig_prefix) &&
	    CFG_TERMINATED(c->statsig_signer_url));
	FUZZ_CHECK(
	    util_split_hostport(c->listen, host, sizeof(host), &port) == 0);
	FUZZ_CHECK(c->log_level >= 0 && c->log_level <= 4);
	FUZZ_CHECK(c->image_mode == CFG_IMAGE_URL ||
	    c->image_mode == CFG_IMAGE_BASE64);
	FUZZ_CHECK(c->reasoning_format >= CFG_RF_THINK_TAGS &&
	    c->reasoning_format <= CFG_RF_HIDDEN);
	FUZZ_CHECK(c->max_tokens >= 1);
	FUZZ_CHECK(c->n_api_keys <= CFG_API_KEYS);
	for (i = 0; i < c->n_api_keys; i++)
		FUZZ_CHECK(CFG_TERMINATED(c->api_keys[i]) &&
		    c->api_keys[i][0] != '\0');
	FUZZ_CHECK(c->n_retry_codes <= CFG_RETRY_CODES);
	for (i = 0; i < c->n_retry_codes; i++)
		FUZZ_CHECK(c->retry_status_codes[i] >= 100 &&
		    c->retry_status_codes[i] <= 599 &&
		    cfg_retry_code(c, c->retry_status_codes[i]));
	FUZZ_CHECK(c->n_trusted_proxies <= CFG_CIDRS);
	for (i = 0; i < c->n_trusted_proxies; i++)
		FUZZ_CHECK(CFG_TERMINATED(c->trusted_proxies[i]) &&
		    util_cidr_parse(c->trusted_proxies[i], &cidr) == 0 &&
		    cidr.bits <= 128);
	FUZZ_CHECK(c->n_image_fetch_allow <= CFG_CIDRS);
	for (i = 0; i < c->n_image_fetch_allow; i++)
		FUZZ_CHECK(CFG_TERMINATED(c->image_fetch_allow[i]) &&
		    util_cidr_parse(c->image_fetch_allow[i], &cidr) == 0 &&
		    cidr.bits <= 128);
	FUZZ_CHECK(c->n_models >= 1 && c->n_models <= CFG_MODELS);
	for (i = 0; i < c->n_models; i++) {
		const struct cfg_model *m = &c->models[i], *f;

		FUZZ_CHECK(CFG_TERMINATED(m->name) && m->name[0] != '\0');
		FUZZ_CHECK(CFG_TERMINATED(m->upstream) &&
		    CFG_TERMINATED(m->mode) &&
		    CFG_TERMINATED(m->rate_limit_model));
		FUZZ_CHECK(
		    m->pool == CFG_POOL_NORMAL || m->pool == CFG_POOL_SUPER);
		FUZZ_CHECK(m->cost >= 1 && m->video <= 1);
		f = cfg_model_find(c, m->name);
		FUZZ_CHECK(f != NULL && strcmp(f->name, m->name) == 0);
	}
}

static void
cfg_check_diff(const struct cfg *a, const struct cfg *b, size_t len)
{
	char buf[1024];

	memset(buf, 'x', sizeof(buf));
	FUZZ_CHECK(cfg_restart_diff(a, b, buf, len) >= 0);
	if (len > 0)
		FUZZ_CHECK(memchr(buf, '\0', len) != NULL);
	FUZZ_CHECK(len == sizeof(buf) || buf[len] == 'x'); /* stays inside */
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	cfg_defaults(&cfg_def);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg c, again; /* 100 kB each: not on the stack */
	char path[64], err[CFG_ERR_MAX], err2[CFG_ERR_MAX];
	int fd, rc;

	fd = fuzz_memfd(data, size, path, sizeof(path));
	memset(err, 'x', sizeof(err));
	rc = cfg_load(path, &c, err, sizeof(err));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	FUZZ_CHECK(cfg_load(path, &again, err2, sizeof(err2)) == rc);
	FUZZ_CHECK(strcmp(err, err2) == 0);
	(void)close(fd); /* a memfd: nothing to flush */
	if (rc != 0) {
		FUZZ_CHECK(rc == WP_EPARSE || rc == WP_ERANGE);
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 &&
		    err[strlen(path)] == ':');
		FUZZ_CHECK(strchr(err, '\n') == NULL); /* one line */
		return 0;
	}
	FUZZ_CHECK(err[0] == '\0');
	FUZZ_CHECK(memcmp(&c, &again, sizeof(c)) == 0);
	cfg_check_loaded(&c);
	FUZZ_CHECK(cfg_restart_diff(&c, &c, err, sizeof(err)) == 0);
	cfg_check_diff(&cfg_def, &c, sizeof(err));
	cfg_check_diff(&cfg_def, &c, size > 0 ? (size_t)(data[0] % 40) : 0);
	FUZZ_CHECK(cfg_retry_code(&c, -1) == false);
	return 0;
}
