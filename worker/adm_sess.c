/*
 * Admin sessions and login. A session is a random 256-bit cookie; shared
 * memory (struct shm_admin) keeps only a BLAKE2b hash of it with its
 * expiry, so every worker honours it and a reader of the segment cannot
 * replay one. Failed logins are counted per client address there too:
 * ADM_LOGIN_FAILS wrong passwords within ADM_LOGIN_WIN_MS block that
 * address for ADM_LOGIN_BLK_MS.
 *
 * The password check (libsodium crypto_pwhash_str_verify against the
 * argon2id hash in server.admin_password) takes about 0.1 s and 64 MiB
 * and blocks this worker's one thread meanwhile; the per-address limit is
 * what keeps that from becoming a way to stall the proxy.
 *
 * Worker only. Takes the shm admin lock, for copies and counter updates
 * only: hashing, password checks and logging happen outside it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "adm.h"
#include "err.h"
#include "lock.h"
#include "log.h"
#include "oai.h"
#include "util.h"

#define ADM_SID_BYTES 32 /* 256 bits of randomness */
#define ADM_SID_LEN   43 /* base64url of 32 bytes, no padding */
#define ADM_PW_MAX    4096

static void
adm_sid_hash(const char *sid, uint8_t out[32])
{
	crypto_generichash(
	    out, 32, (const unsigned char *)sid, strlen(sid), NULL, 0);
}

/*
 * Whether the request's cookie names a live session; its expiry into
 * *expires. With drop, the session ends (logout).
 */
static bool
adm_sess_find(
    struct wrk *w, struct MHD_Connection *conn, bool drop, int64_t *expires)
{
	struct shm_admin *a = &w->shm->hdr->admin;
	const char *sid;
	uint8_t h[32];
	int64_t now = util_now_ms();
	bool found = false;
	int i;

	sid = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, ADM_COOKIE);
	if (sid == NULL || strlen(sid) != ADM_SID_LEN)
		return false;
	adm_sid_hash(sid, h);
	if (lock_take(&a->lock, NULL, NULL) != 0)
		return false;
	for (i = 0; i < SHM_SESS_MAX; i++) {
		if (a->sess[i].expires_ms > now &&
		    sodium_memcmp(a->sess[i].id_hash, h, sizeof(h)) == 0) {
			found = true;
			*expires = a->sess[i].expires_ms;
			if (drop)
				memset(&a->sess[i], 0, sizeof(a->sess[i]));
			break;
		}
	}
	lock_give(&a->lock);
	return found;
}

bool
adm_sess_valid(struct wrk *w, struct MHD_Connection *conn)
{
	int64_t expires;

	return adm_sess_find(w, conn, false, &expires);
}

/*
 * Store a new session's hash. With every slot live, the one closest to
 * its end makes room: the newest login always works.
 */
static int
adm_sess_add(struct wrk *w, const uint8_t h[32], int64_t now, int64_t expires)
{
	struct shm_admin *a = &w->shm->hdr->admin;
	int i, pick = 0, rc;

	if ((rc = lock_take(&a->lock, NULL, NULL)) != 0)
		return rc;
	for (i = 0; i < SHM_SESS_MAX; i++) {
		if (a->sess[i].expires_ms <= now) {
			pick = i;
			break;
		}
		if (a->sess[i].expires_ms < a->sess[pick].expires_ms)
			pick = i;
	}
	memcpy(a->sess[pick].id_hash, h, 32);
	a->sess[pick].created_ms = now;
	a->sess[pick].expires_ms = expires;
	lock_give(&a->lock);
	return 0;
}

/* ---- client address ---------------------------------------------------- */

static bool
adm_peer_trusted(const struct wrk *w, const uint8_t peer[16])
{
	struct util_cidr c;
	uint32_t i;

	for (i = 0; i < w->cfg->n_trusted_proxies; i++)
		if (util_cidr_parse(w->cfg->trusted_proxies[i], &c) == 0 &&
		    util_cidr_match(&c, peer))
			return true;
	return false;
}

static int
adm_peer_addr(struct MHD_Connection *conn, uint8_t addr[16])
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return WP_EINVAL;
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		memcpy(addr, &in6->sin6_addr, 16);
		return 0;
	}
	return WP_EINVAL;
}

int
adm_client_addr(
    const struct wrk *w, struct MHD_Connection *conn, uint8_t addr[16])
{
	const char *xff, *p;
	char last[64];
	size_t n;
	int rc;

	if ((rc = adm_peer_addr(conn, addr)) != 0)
		return rc;
	if (!adm_peer_trusted(w, addr))
		return 0;
	xff = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, "X-Forwarded-For");
	if (xff == NULL)
		return 0;
	/* The last hop is the one our trusted proxy saw. */
	p = strrchr(xff, ',');
	p = p != NULL ? p + 1 : xff;
	while (*p == ' ')
		p++;
	n = strcspn(p, " ");
	if (n == 0 || n >= sizeof(last))
		return 0;
	memcpy(last, p, n);
	last[n] = '\0';
	(void)util_addr_parse(last, addr); /* unparsable: keep the peer */
	return 0;
}

/*
 * X-Forwarded-Proto is believed from anyone here: it can only add Secure
 * to the cookie, which costs a client that lies about it its own login.
 */
bool
adm_client_https(const struct wrk *w, struct MHD_Connection *conn)
{
	const char *p = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, "X-Forwarded-Proto");

	(void)w;
	return p != NULL && strncasecmp(p, "https", 5) == 0 &&
	    (p[5] == '\0' || p[5] == ',' || p[5] == ' ');
}

static void
adm_addr_str(const uint8_t addr[16], char *buf, size_t len)
{
	static const uint8_t v4[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
		0xff };

	if (memcmp(addr, v4, sizeof(v4)) == 0)
		(void)inet_ntop(AF_INET, addr + 12, buf, (socklen_t)len);
	else
		(void)inet_ntop(AF_INET6, addr, buf, (socklen_t)len);
}

/* ---- login throttling ---------------------------------------------------- */

/* The slot of addr, or one to reuse for it. Admin lock held. */
static struct shm_login *
adm_login_slot(struct shm_admin *a, const uint8_t addr[16], int64_t now)
{
	struct shm_login *l, *old = NULL, *idle = NULL;
	int i;

	for (i = 0; i < SHM_LOGIN_MAX; i++) {
		l = &a->login[i];
		if (memcmp(l->addr, addr, 16) == 0 &&
		    (l->window_start_ms != 0 || l->blocked_until_ms != 0))
			return l;
		if (idle == NULL && l->blocked_until_ms <= now &&
		    (l->window_start_ms == 0 ||
		        now - l->window_start_ms >= ADM_LOGIN_WIN_MS))
			idle = l;
		if (old == NULL || l->window_start_ms < old->window_start_ms)
			old = l;
	}
	l = idle != NULL ? idle : old;
	memset(l, 0, sizeof(*l));
	memcpy(l->addr, addr, 16);
	return l;
}

/* Milliseconds addr stays blocked, 0 when it may try. */
static int64_t
adm_login_blocked(struct wrk *w, const uint8_t addr[16], int64_t now)
{
	struct shm_admin *a = &w->shm->hdr->admin;
	int64_t left = 0;
	int i;

	if (lock_take(&a->lock, NULL, NULL) != 0)
		return 1000; /* cannot tell: refuse for now */
	for (i = 0; i < SHM_LOGIN_MAX; i++) {
		if (memcmp(a->login[i].addr, addr, 16) == 0 &&
		    a->login[i].blocked_until_ms > now) {
			left = a->login[i].blocked_until_ms - now;
			break;
		}
	}
	lock_give(&a->lock);
	return left;
}

/* Count a failure; returns true when it blocks the address now. */
static bool
adm_login_failed(struct wrk *w, const uint8_t addr[16], int64_t now)
{
	struct shm_admin *a = &w->shm->hdr->admin;
	struct shm_login *l;
	bool blocked = false;

	if (lock_take(&a->lock, NULL, NULL) != 0)
		return false;
	l = adm_login_slot(a, addr, now);
	if (l->window_start_ms == 0 ||
	    now - l->window_start_ms >= ADM_LOGIN_WIN_MS) {
		l->window_start_ms = now;
		l->fails = 0;
	}
	if (++l->fails >= ADM_LOGIN_FAILS) {
		l->blocked_until_ms = now + ADM_LOGIN_BLK_MS;
		l->fails = 0;
		l->window_start_ms = 0;
		blocked = true;
	}
	lock_give(&a->lock);
	return blocked;
}

static void
adm_login_forget(struct wrk *w, const uint8_t addr[16])
{
	struct shm_admin *a = &w->shm->hdr->admin;
	int i;

	if (lock_take(&a->lock, NULL, NULL) != 0)
		return;
	for (i = 0; i < SHM_LOGIN_MAX; i++)
		if (memcmp(a->login[i].addr, addr, 16) == 0)
			memset(&a->login[i], 0, sizeof(a->login[i]));
	lock_give(&a->lock);
}

/* ---- routes ----------------------------------------------------------------
 */

static int
adm_too_many(struct wrk_req *rq, struct MHD_Connection *conn, int64_t left_ms)
{
	char after[24], msg[200];
	const struct adm_hdr h = { "Retry-After", after };

	(void)snprintf(
	    after, sizeof(after), "%lld", (long long)((left_ms + 999) / 1000));
	(void)snprintf(msg, sizeof(msg),
	    "Too many wrong passwords from this address; try again in %s s",
	    after);
	return adm_reply(rq, conn, 429, "application/json",
	    oai_error(msg, "rate_limit_error", NULL, "login_rate_limited"), &h,
	    1);
}

/* A fresh session cookie: value into sid (ADM_SID_LEN + 1 bytes). */
static void
adm_sid_new(char *sid, size_t len)
{
	unsigned char raw[ADM_SID_BYTES];

	randombytes_buf(raw, sizeof(raw));
	(void)sodium_bin2base64(sid, len, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

static int
adm_login_ok(struct wrk_req *rq, struct MHD_Connection *conn,
    const uint8_t addr[16], const char *who)
{
	char sid[ADM_SID_LEN + 1], cookie[160];
	const struct adm_hdr h = { "Set-Cookie", cookie };
	int64_t now = util_now_ms(), expires = now + ADM_SESS_TTL_MS;
	uint8_t hash[32];
	int rc;

	adm_login_forget(rq->w, addr);
	adm_sid_new(sid, sizeof(sid));
	adm_sid_hash(sid, hash);
	if (adm_sess_add(rq->w, hash, now, expires) != 0)
		return adm_error(rq, conn, 500, NULL, "internal_error",
		    "The session table is not usable");
	(void)snprintf(cookie, sizeof(cookie),
	    ADM_COOKIE "=%s; Path=/api; Max-Age=%lld; HttpOnly; "
	               "SameSite=Strict%s",
	    sid, (long long)(ADM_SESS_TTL_MS / 1000),
	    adm_client_https(rq->w, conn) ? "; Secure" : "");
	sodium_memzero(sid, sizeof(sid));
	log_notice("admin: login from %s", who);
	rc = adm_reply(
	    rq, conn, 200, "application/json", strdup("{\"ok\":true}"), &h, 1);
	sodium_memzero(cookie, sizeof(cookie));
	return rc;
}

int
adm_login(struct wrk_req *rq, struct MHD_Connection *conn)
{
	struct wrk *w = rq->w;
	json_t *body, *pw;
	uint8_t addr[16];
	char who[INET6_ADDRSTRLEN];
	int64_t now = util_now_ms(), left;
	size_t len = 0;
	char *p = NULL;
	bool ok, blocked;
	int rc;

	if (adm_client_addr(w, conn, addr) != 0)
		memset(addr, 0, sizeof(addr));
	adm_addr_str(addr, who, sizeof(who));
	/* Blocked addresses do not get to spend our CPU on argon2. */
	if ((left = adm_login_blocked(w, addr, now)) > 0)
		return adm_too_many(rq, conn, left);
	if ((body = adm_body(rq, conn, &rc)) == NULL)
		goto out;
	pw = json_object_get(body, "password");
	if (!json_is_string(pw) || json_string_length(pw) == 0 ||
	    json_string_length(pw) > ADM_PW_MAX) {
		rc = adm_error(rq, conn, 400, "password", "invalid_password",
		    "'password' must be a non-empty string of at most %d "
		    "bytes",
		    ADM_PW_MAX);
		goto out;
	}
	/* Our own copy in the JSON tree: wiped below, whatever happens. */
	p = (char *)(uintptr_t)json_string_value(pw);
	len = json_string_length(pw);
	ok = crypto_pwhash_str_verify(w->cfg->admin_password, p, len) == 0;
	if (ok) {
		rc = adm_login_ok(rq, conn, addr, who);
		goto out;
	}
	blocked = adm_login_failed(w, addr, util_now_ms());
	log_warnx("admin: wrong password from %s%s", who,
	    blocked ? "; address blocked for a while" : "");
	rc = adm_error(
	    rq, conn, 401, "password", "wrong_password", "Wrong password");
out:
	if (p != NULL)
		sodium_memzero(p, len);
	json_decref(body);
	if (rq->body != NULL)
		sodium_memzero(rq->body, rq->len);
	return rc;
}

int
adm_logout(struct wrk_req *rq, struct MHD_Connection *conn)
{
	const struct adm_hdr h = { "Set-Cookie",
		ADM_COOKIE "=; Path=/api; Max-Age=0; HttpOnly; "
		           "SameSite=Strict" };
	int64_t expires;

	(void)adm_sess_find(rq->w, conn, true, &expires);
	return adm_reply(
	    rq, conn, 200, "application/json", strdup("{\"ok\":true}"), &h, 1);
}

int
adm_session(struct wrk_req *rq, struct MHD_Connection *conn)
{
	int64_t expires = 0;

	if (!adm_sess_find(rq->w, conn, false, &expires))
		return adm_error(
		    rq, conn, 401, NULL, "login_required", "Log in first");
	return adm_json(rq, conn, 200,
	    json_pack(
	        "{s:b, s:I}", "ok", 1, "expiresTime", (json_int_t)expires));
}
