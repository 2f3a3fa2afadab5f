/*
 * libcurl's multi handles in the worker's epoll loop (the multi_socket
 * API): curl tells us which sockets to watch and when its timer is due;
 * we tell it what became ready. Transfers end in their done callback.
 * Worker only; one thread, no locks.
 *
 * Why several multi handles: libcurl 7.88 looks for a connection to reuse
 * by walking every connection of the host (ConnectionExists), in use or
 * not. Over HTTP/1.1 each running transfer holds its own connection, so
 * with 5,000 streams every new transfer walked 5,000 connections (26 % of
 * a worker's time at 10,000 streams). A transfer goes to the first multi
 * handle with fewer than WRK_UP_FILL running, so no walk is longer than
 * that; at low load everything shares the first one and its connections,
 * as before (HTTP/2 multiplexes on one connection there).
 *
 * Curl's timers need no timerfd: each multi handle's deadline is kept
 * here and the loop's epoll_wait timeout honours the earliest one
 * (wrk_up_timeout_ms), then wrk_up_run_due runs what is due. curl asks
 * for a 0 ms timeout on every curl_multi_add_handle; that used to cost a
 * timerfd_settime and a wake-up each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "wrk.h"

/* A Chrome-like TLS offer, as far as OpenSSL through libcurl allows. */
#define WRK_TLS12_CIPHERS                                                      \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-GCM-SHA256:"         \
	"AES256-GCM-SHA384:AES128-SHA:AES256-SHA"
#define WRK_TLS13_CIPHERS                                                      \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                       \
	"TLS_CHACHA20_POLY1305_SHA256"

#define WRK_UP_MAGIC 0x55504d31u
#define WRK_UP_FILL  256 /* running transfers before the next handle */
/* Idle connections kept: the first handle's, and each overflow one's. */
#define WRK_UP_IDLE_FIRST 256L
#define WRK_UP_IDLE_MORE  16L
#define WRK_UP_BUFFER     4096L  /* CURLOPT_BUFFERSIZE: wrk_up_defaults */
#define WRK_UP_BUFFER_BIG 16384L /* curl's default: wrk_up_easy big */

/* One multi handle with its own connection cache and deadline. */
struct wrk_up {
	unsigned magic;
	struct wrk *w;
	CURLM *multi;
	unsigned running; /* transfers added and not removed */
	int64_t due_ms;   /* curl's timer, monotonic ms; -1 = none */
	bool timer_set;   /* curl called wrk_up_timerfn */
};

static void
wrk_up_check_done(struct wrk *w, struct wrk_up *u)
{
	struct wrk_xfer *x;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		(void)curl_easy_getinfo(
		    msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CHECK_OBJ(x, WRK_XFER_MAGIC);
		WP_ASSERT(x->up == u);
		/* Copy rc first: removing the handle invalidates msg. */
		CURLcode rc = msg->data.result;

		(void)curl_multi_remove_handle(u->multi, x->easy);
		u->running--;
		x->running = false;
		x->up = NULL;
		x->done(w, x, rc);
	}
}

static void
wrk_up_on_sock(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct wrk_up *u = ev->arg;
	int flags = 0, running;

	CHECK_OBJ(u, WRK_UP_MAGIC);
	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	(void)curl_multi_socket_action(u->multi, ev->fd, flags, &running);
	wrk_up_check_done(w, u);
}

static int
wrk_up_sockfn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct wrk_up *u = userp;
	struct wrk_ev *ev = socketp;
	struct wrk *w;
	uint32_t events = 0;

	(void)easy;
	CHECK_OBJ(u, WRK_UP_MAGIC);
	w = u->w;
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL) {
			wrk_ev_del(w, ev);
			(void)curl_multi_assign(u->multi, s, NULL);
			ev->next_dead = w->dead; /* may be in this batch */
			w->dead = ev;
		}
		return 0;
	}
	if (ev == NULL) {
		if ((ev = calloc(1, sizeof(*ev))) == NULL)
			return -1;
		ev->fd = s;
		ev->fn = wrk_up_on_sock;
		ev->arg = u;
		(void)curl_multi_assign(u->multi, s, ev);
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (wrk_ev_mod(w, ev, events) != 0) {
		log_warn("epoll: upstream socket %d", (int)s);
		return -1;
	}
	return 0;
}

/* curl's timer: only remembered; the loop waits for it (no syscall). */
static int
wrk_up_timerfn(CURLM *multi, long timeout_ms, void *userp)
{
	struct wrk_up *u = userp;

	(void)multi;
	CHECK_OBJ(u, WRK_UP_MAGIC);
	u->due_ms = timeout_ms < 0 ? -1 : util_mono_ms() + timeout_ms;
	u->timer_set = true;
	return 0;
}

static struct wrk_up *
wrk_up_new(struct wrk *w, long idle_max)
{
	struct wrk_up *u;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->magic = WRK_UP_MAGIC;
	u->w = w;
	u->due_ms = -1;
	if ((u->multi = curl_multi_init()) == NULL) {
		free(u);
		errno = ENOMEM;
		return NULL;
	}
	(void)curl_multi_setopt(
	    u->multi, CURLMOPT_SOCKETFUNCTION, wrk_up_sockfn);
	(void)curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	(void)curl_multi_setopt(
	    u->multi, CURLMOPT_TIMERFUNCTION, wrk_up_timerfn);
	(void)curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	/* Many streams to one host: share connections, HTTP/2 multiplexed. */
	(void)curl_multi_setopt(
	    u->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	(void)curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	(void)curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, idle_max);
	return u;
}

static void
wrk_up_free(struct wrk_up *u)
{
	if (u == NULL)
		return;
	CHECK_OBJ(u, WRK_UP_MAGIC);
	(void)curl_multi_cleanup(u->multi);
	u->magic = 0;
	free(u);
}

int
wrk_up_init(struct wrk *w)
{
	if ((w->up[0] = wrk_up_new(w, WRK_UP_IDLE_FIRST)) == NULL)
		return WP_ENOMEM;
	w->nup = 1;
	return 0;
}

void
wrk_up_fini(struct wrk *w)
{
	unsigned i;

	for (i = 0; i < 2; i++)
		while (w->nspare[i] > 0)
			curl_easy_cleanup(w->spare[i][--w->nspare[i]]);
	for (i = 0; i < w->nup; i++) {
		wrk_up_free(w->up[i]);
		w->up[i] = NULL;
	}
	w->nup = 0;
}

void
wrk_up_easy_defaults(const struct wrk *w, CURL *easy, bool big)
{
	wrk_up_defaults(w, easy);
	if (big)
		(void)curl_easy_setopt(
		    easy, CURLOPT_BUFFERSIZE, WRK_UP_BUFFER_BIG);
}

CURL *
wrk_up_easy(struct wrk *w, bool big)
{
	CURL *easy;

	if (w->nspare[big] > 0)
		easy = w->spare[big][--w->nspare[big]];
	else if ((easy = curl_easy_init()) == NULL)
		return NULL;
	wrk_up_easy_defaults(w, easy, big);
	return easy;
}

void
wrk_up_easy_put(struct wrk *w, CURL *easy, bool big)
{
	if (easy == NULL)
		return;
	if (w->nspare[big] == WRK_UP_SPARE) {
		curl_easy_cleanup(easy);
		return;
	}
	curl_easy_reset(easy); /* forgets our pointers and the cookie */
	w->spare[big][w->nspare[big]++] = easy;
}

/*
 * The first multi handle with room, a new one when all are full, or the
 * least busy when there may be no more.
 */
static struct wrk_up *
wrk_up_pick(struct wrk *w)
{
	struct wrk_up *u, *least = w->up[0];
	unsigned i;

	for (i = 0; i < w->nup; i++) {
		u = w->up[i];
		if (u->running < WRK_UP_FILL)
			return u;
		if (u->running < least->running)
			least = u;
	}
	if (w->nup < WRK_UP_MAX &&
	    (u = wrk_up_new(w, WRK_UP_IDLE_MORE)) != NULL) {
		w->up[w->nup++] = u;
		return u;
	}
	return least; /* walks grow, nothing fails */
}

int
wrk_up_start(struct wrk *w, struct wrk_xfer *x)
{
	struct wrk_up *u;

	CHECK_OBJ(x, WRK_XFER_MAGIC);
	WP_ASSERT(!x->running);
	u = wrk_up_pick(w);
	(void)curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK)
		return WP_EINVAL;
	u->running++;
	x->up = u;
	x->running = true;
	return 0;
}

void
wrk_up_stop(struct wrk *w, struct wrk_xfer *x)
{
	(void)w;
	CHECK_OBJ(x, WRK_XFER_MAGIC);
	if (!x->running)
		return;
	CHECK_OBJ(x->up, WRK_UP_MAGIC);
	(void)curl_multi_remove_handle(x->up->multi, x->easy);
	x->up->running--;
	x->up = NULL;
	x->running = false;
}

int
wrk_up_timeout_ms(const struct wrk *w, int64_t now, int timeout)
{
	const struct wrk_up *u;
	unsigned i;

	for (i = 0; i < w->nup; i++) {
		u = w->up[i];
		if (u->due_ms < 0)
			continue;
		if (u->due_ms <= now)
			return 0;
		if (u->due_ms - now < timeout)
			timeout = (int)(u->due_ms - now);
	}
	return timeout;
}

static void
wrk_up_ask_timer(struct wrk_up *u, int64_t now)
{
	long ms = -1;

	if (curl_multi_timeout(u->multi, &ms) != CURLM_OK)
		ms = 1;
	u->due_ms = ms < 0 ? -1 : now + ms;
}

void
wrk_up_run_due(struct wrk *w)
{
	struct wrk_up *u;
	int64_t now = util_mono_ms();
	unsigned i;
	int running;

	/* w->nup may grow under us (a done callback starts a transfer). */
	for (i = 0; i < w->nup; i++) {
		u = w->up[i];
		if (u->due_ms < 0 || u->due_ms > now)
			continue;
		u->timer_set = false;
		(void)curl_multi_socket_action(
		    u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		/*
		 * curl calls back only when its deadline moves, and not
		 * always when its last timer goes (7.88 leaves an idle
		 * worker waking every ms). It did not call: ask it (1 while
		 * less than a ms is left, -1 when none).
		 */
		if (!u->timer_set)
			wrk_up_ask_timer(u, now);
		wrk_up_check_done(w, u);
	}
}

void
wrk_up_defaults(const struct wrk *w, CURL *easy)
{
	(void)curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	(void)curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	(void)curl_easy_setopt(
	    easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	(void)curl_easy_setopt(
	    easy, CURLOPT_SSL_CIPHER_LIST, WRK_TLS12_CIPHERS);
	(void)curl_easy_setopt(easy, CURLOPT_TLS13_CIPHERS, WRK_TLS13_CIPHERS);
	(void)curl_easy_setopt(
	    easy, CURLOPT_SSL_EC_CURVES, "X25519:P-256:P-384");
	(void)curl_easy_setopt(
	    easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	/*
	 * curl keeps a receive buffer per transfer (16 KiB by default), for
	 * its whole life: 160 MiB at 10,000 streams. grok's lines are a few
	 * hundred bytes; a bigger body only takes more reads.
	 */
	(void)curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, WRK_UP_BUFFER);
	/* The stream reader wants plain bytes: let curl undo compression. */
	(void)curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	(void)curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)w;
}
