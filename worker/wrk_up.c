/*
 * libcurl's multi handle in the worker's epoll loop (the multi_socket
 * API): curl tells us which sockets to watch and when its one timer is
 * due; we tell it what became ready. Transfers end in their done
 * callback. Worker only; one thread, no locks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
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

static void
wrk_up_check_done(struct wrk *w)
{
	struct wrk_xfer *x;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		(void)curl_easy_getinfo(
		    msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CHECK_OBJ(x, WRK_XFER_MAGIC);
		/* Copy rc first: removing the handle invalidates msg. */
		CURLcode rc = msg->data.result;

		(void)curl_multi_remove_handle(w->multi, x->easy);
		x->running = false;
		x->done(w, x, rc);
	}
}

static void
wrk_up_on_sock(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	(void)curl_multi_socket_action(w->multi, ev->fd, flags, &running);
	wrk_up_check_done(w);
}

static void
wrk_up_on_timer(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	uint64_t n;
	int running;

	(void)events;
	if (read(ev->fd, &n, sizeof(n)) < 0)
		n = 0; /* spurious: curl will say when it is due */
	(void)curl_multi_socket_action(
	    w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	wrk_up_check_done(w);
}

static int
wrk_up_sockfn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct wrk *w = userp;
	struct wrk_ev *ev = socketp;
	uint32_t events = 0;

	(void)easy;
	CHECK_OBJ(w, WRK_MAGIC);
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL) {
			wrk_ev_del(w, ev);
			(void)curl_multi_assign(w->multi, s, NULL);
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
		(void)curl_multi_assign(w->multi, s, ev);
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

static int
wrk_up_timerfn(CURLM *multi, long timeout_ms, void *userp)
{
	struct wrk *w = userp;
	struct itimerspec its;

	(void)multi;
	CHECK_OBJ(w, WRK_MAGIC);
	memset(&its, 0, sizeof(its));
	if (timeout_ms == 0)
		its.it_value.tv_nsec = 1; /* now; 0 would disarm */
	else if (timeout_ms > 0) {
		its.it_value.tv_sec = timeout_ms / 1000;
		its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000;
	}
	return timerfd_settime(w->ev_curl_timer.fd, 0, &its, NULL) == 0 ? 0
	                                                                : -1;
}

int
wrk_up_init(struct wrk *w)
{
	w->ev_curl_timer.fn = wrk_up_on_timer;
	w->ev_curl_timer.fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->ev_curl_timer.fd < 0 ||
	    wrk_ev_add(w, &w->ev_curl_timer, EPOLLIN) != 0)
		return WP_ESYS;
	if ((w->multi = curl_multi_init()) == NULL)
		return WP_ENOMEM;
	(void)curl_multi_setopt(
	    w->multi, CURLMOPT_SOCKETFUNCTION, wrk_up_sockfn);
	(void)curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
	(void)curl_multi_setopt(
	    w->multi, CURLMOPT_TIMERFUNCTION, wrk_up_timerfn);
	(void)curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
	/* Many streams to one host: share connections, HTTP/2 multiplexed. */
	(void)curl_multi_setopt(
	    w->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	(void)curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	(void)curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, 256L);
	return 0;
}

void
wrk_up_fini(struct wrk *w)
{
	if (w->multi != NULL)
		(void)curl_multi_cleanup(w->multi);
	w->multi = NULL;
	close_fd(&w->ev_curl_timer.fd);
}

int
wrk_up_start(struct wrk *w, struct wrk_xfer *x)
{
	CHECK_OBJ(x, WRK_XFER_MAGIC);
	(void)curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(w->multi, x->easy) != CURLM_OK)
		return WP_EINVAL;
	x->running = true;
	return 0;
}

void
wrk_up_stop(struct wrk *w, struct wrk_xfer *x)
{
	CHECK_OBJ(x, WRK_XFER_MAGIC);
	if (!x->running)
		return;
	(void)curl_multi_remove_handle(w->multi, x->easy);
	x->running = false;
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
	/* The stream reader wants plain bytes: let curl undo compression. */
	(void)curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	(void)curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)w;
}
