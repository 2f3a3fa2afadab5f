/*
 * wpload: the benchmark's load generator. One thread, one epoll loop and
 * a minimal HTTP/1.1 client, so the timing is ours and not a library's,
 * and so 10,000 open streams fit in one process.
 *
 *   wpload -a HOST:PORT -q REQFILE [-c CONNS] [-n REQUESTS] [-d SECS]
 *          [-w WARMUP_S] [-r OPENS_PER_S] [-K] [-f none|sse|nd]
 *          [-C NEEDLE] [-D NEEDLE] [-e STAMPS] [-t TIMEOUT_S] [-o CSV]
 *
 * REQFILE holds the raw request, sent as it is on every request. CONNS
 * connections (opened at OPENS_PER_S, or all at once) each send it, read
 * the answer, and send it again (keep-alive; -K: a new connection for
 * each request) until REQUESTS were sent or the SECS of measurement after
 * WARMUP_S are over. Answers in Content-Length, chunked or
 * close-delimited bodies are read.
 *
 * Per request it records: time to the first byte of the answer (ttfb),
 * to the first content (tfc: the first frame that has a stamp, or NEEDLE
 * not followed by '"'), every gap between two content frames, the total
 * time, and whether the answer was complete: status 200, the whole body,
 * the -D NEEDLE seen (e.g. "[DONE]") and exactly -e STAMPS stamps. Frames
 * are split on "\n\n" (-f sse) or "\n" (-f nd). A stamp is "~T<ns>~", the
 * CLOCK_MONOTONIC time at which the fake wrote the line ([stamp]); its
 * delay is the frame's arrival time minus that.
 *
 * Prints one JSON object on stdout: counts, requests/s, peak open
 * requests, and p50/p90/p99/p99.9/max/mean in microseconds of each
 * series. -o writes one CSV line per request. Stderr gets
 * "wpload: all N requests sent" once the last request went out (the
 * driver times a reload by it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WL_HDR_MAX   4096
#define WL_FRAME_MAX (1u << 20) /* one frame, at most */
#define WL_READ_MAX  65536
#define WL_EVENTS    512

enum wl_framing { WL_FR_NONE, WL_FR_SSE, WL_FR_ND };

enum wl_state {
	WL_ST_CONNECTING,
	WL_ST_SENDING,
	WL_ST_HEADERS,
	WL_ST_BODY,
};

enum wl_body { WL_B_LENGTH, WL_B_CHUNKED, WL_B_EOF };

enum wl_chunk { WL_CH_SIZE, WL_CH_DATA, WL_CH_DATA_END, WL_CH_TRAILER };

/* A growable series of nanosecond samples. */
struct wl_vec {
	uint64_t *v;
	size_t n, cap;
};

struct wl_conn {
	int fd;
	uint32_t idx, gen; /* epoll data: stale events of a closed fd */
	enum wl_state state;
	size_t woff;
	char hdr[WL_HDR_MAX];
	size_t hlen;
	enum wl_body body;
	uint64_t left; /* Content-Length bytes, or of this chunk */
	enum wl_chunk chunk;
	char line[64]; /* a chunk-size or trailer line */
	size_t llen;
	bool keepalive;
	char *frame; /* bytes of the frame being read */
	size_t flen, fcap;
	/* This request. */
	int status;
	uint64_t t_req, t_first, t_content, t_last;
	uint32_t nstamps;
	bool saw_done;
};

/* Everything the options set and the loop counts. */
struct wl {
	struct sockaddr_in addr;
	char *req;
	size_t reqlen;
	long conns, nreq;
	double dur_s, warm_s, rate, timeout_s;
	bool oneshot;
	enum wl_framing framing;
	const char *needle, *done;
	long expect;
	FILE *csv;

	int epfd;
	struct wl_conn *c;
	long opened;  /* connection slots started */
	long issued;  /* requests sent */
	long settled; /* requests that ended, one way or another */
	long open_now, peak_open;
	long ok, incomplete, bad_status, net_errors;
	bool all_sent_said, stopping;
	uint64_t t0, warm_end, end, deadline;
	struct wl_vec lat, ttfb, tfc, gap, delay;
	char rbuf[WL_READ_MAX];
};

/* The leading decimal number of s (0 when none or negative). */
static long
wl_num(const char *s)
{
	long v = strtol(s, NULL, 10);

	return v < 0 ? 0 : v;
}

static volatile sig_atomic_t wl_quit; /* set by SIGINT/SIGTERM */

static void
wl_on_signal(int sig)
{
	(void)sig;
	wl_quit = 1;
}

static uint64_t
wl_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
wl_die(const char *what)
{
	(void)fprintf(stderr, "wpload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
wl_push(struct wl_vec *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? s->cap * 2 : 4096;
		uint64_t *p = realloc(s->v, cap * sizeof(*p));

		if (p == NULL)
			wl_die("realloc");
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
}

/* ---- statistics ---- */

static int
wl_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted series, in microseconds. */
static double
wl_pct(const struct wl_vec *s, double q)
{
	size_t i;

	if (s->n == 0)
		return 0;
	i = (size_t)(q * (double)s->n + 0.999999);
	if (i > 0)
		i--;
	if (i >= s->n)
		i = s->n - 1;
	return (double)s->v[i] / 1000.0;
}

static size_t
wl_count_ge(const struct wl_vec *s, uint64_t ns)
{
	size_t i, n = 0;

	for (i = 0; i < s->n; i++)
		n += s->v[i] >= ns;
	return n;
}

static void
wl_print_series(const char *name, struct wl_vec *s, bool last)
{
	double sum = 0;
	size_t i;

	if (s->n > 0) /* an empty series has no array to sort */
		qsort(s->v, s->n, sizeof(*s->v), wl_cmp);
	for (i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	(void)printf("\"%s\":{\"n\":%zu,\"p50\":%.1f,\"p90\":%.1f,"
	             "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f,"
	             "\"ge1ms\":%zu,\"ge5ms\":%zu,\"ge40ms\":%zu}%s",
	    name, s->n, wl_pct(s, 0.50), wl_pct(s, 0.90), wl_pct(s, 0.99),
	    wl_pct(s, 0.999), wl_pct(s, 1.0),
	    s->n != 0 ? sum / (double)s->n / 1000.0 : 0.0,
	    wl_count_ge(s, 1000000), wl_count_ge(s, 5000000),
	    wl_count_ge(s, 40000000), last ? "" : ",");
}

static void
wl_report(struct wl *l, uint64_t t_end)
{
	double secs;

	if (l->dur_s > 0)
		secs = l->dur_s;
	else
		secs = (double)(t_end - l->t0) / 1e9;
	(void)printf("{\"requests\":%ld,\"ok\":%ld,\"incomplete\":%ld,"
	             "\"bad_status\":%ld,\"net_errors\":%ld,\"sent\":%ld,"
	             "\"unfinished\":%ld,\"peak_open\":%ld,\"seconds\":%.3f,"
	             "\"rps\":%.1f,",
	    l->ok + l->incomplete, l->ok, l->incomplete, l->bad_status,
	    l->net_errors, l->issued, l->open_now, l->peak_open, secs,
	    secs > 0 ? (double)(l->ok + l->incomplete) / secs : 0.0);
	wl_print_series("latency_us", &l->lat, false);
	wl_print_series("ttfb_us", &l->ttfb, false);
	wl_print_series("tfc_us", &l->tfc, false);
	wl_print_series("gap_us", &l->gap, false);
	wl_print_series("delay_us", &l->delay, true);
	(void)printf("}\n");
	(void)fflush(stdout);
}

/* ---- one request's end ---- */

static bool
wl_counts(const struct wl *l, uint64_t now)
{
	if (l->dur_s <= 0)
		return true;
	return now >= l->warm_end && now <= l->end;
}

/* The answer ended; http_ok says the body was read to its end. */
static void
wl_settle(struct wl *l, struct wl_conn *c, uint64_t now, bool http_ok)
{
	bool complete = http_ok && c->status == 200 &&
	    (l->done == NULL || c->saw_done) &&
	    (l->expect < 0 || c->nstamps == (uint32_t)l->expect);

	l->settled++;
	l->open_now--;
	if (!wl_counts(l, now))
		return;
	if (complete)
		l->ok++;
	else
		l->incomplete++;
	if (!http_ok)
		l->net_errors++;
	else if (c->status != 200)
		l->bad_status++;
	if (c->t_content == 0 && l->framing == WL_FR_NONE && http_ok)
		c->t_content = now; /* no frames: the content is the body */
	wl_push(&l->lat, now - c->t_req);
	if (c->t_first != 0)
		wl_push(&l->ttfb, c->t_first - c->t_req);
	if (c->t_content != 0)
		wl_push(&l->tfc, c->t_content - c->t_req);
	if (l->csv != NULL)
		(void)fprintf(l->csv, "%.1f,%.1f,%.1f,%.1f,%d,%u,%d\n",
		    (double)(c->t_req - l->t0) / 1000.0,
		    c->t_first ? (double)(c->t_first - c->t_req) / 1000.0 : -1,
		    c->t_content ? (double)(c->t_content - c->t_req) / 1000.0
		                 : -1,
		    (double)(now - c->t_req) / 1000.0, c->status, c->nstamps,
		    complete);
}

/* ---- frames ---- */

/* Every "~T<digits>~" in the frame: one delay sample each. */
static uint32_t
wl_stamps(struct wl *l, const char *p, size_t n, uint64_t now)
{
	const char *e = p + n, *q;
	uint32_t found = 0;
	uint64_t v;

	while ((q = memmem(p, (size_t)(e - p), "~T", 2)) != NULL) {
		p = q + 2;
		v = 0;
		while (p < e && *p >= '0' && *p <= '9')
			v = v * 10 + (uint64_t)(*p++ - '0');
		if (p < e && *p == '~' && p > q + 2) {
			wl_push(&l->delay, now > v ? now - v : 0);
			found++;
		}
	}
	return found;
}

static bool
wl_has_content(const struct wl *l, const char *p, size_t n)
{
	size_t k;
	const char *q;

	if (l->needle == NULL)
		return false;
	k = strlen(l->needle);
	while ((q = memmem(p, n, l->needle, k)) != NULL) {
		if (q + k < p + n && q[k] != '"')
			return true;
		n -= (size_t)(q + k - p);
		p = q + k;
	}
	return false;
}

static void
wl_frame(struct wl *l, struct wl_conn *c, const char *p, size_t n, uint64_t now)
{
	uint32_t st = wl_stamps(l, p, n, now);

	c->nstamps += st;
	if (l->done != NULL && memmem(p, n, l->done, strlen(l->done)) != NULL)
		c->saw_done = true;
	if (st == 0 && !wl_has_content(l, p, n))
		return;
	if (c->t_content == 0)
		c->t_content = now;
	else
		wl_push(&l->gap, now - c->t_last);
	c->t_last = now;
}

/* Body bytes, already de-chunked. */
static void
wl_body(struct wl *l, struct wl_conn *c, const char *p, size_t n, uint64_t now)
{
	const char *delim = l->framing == WL_FR_SSE ? "\n\n" : "\n";
	size_t dlen = strlen(delim), from, start = 0;
	char *hit;

	if (l->framing == WL_FR_NONE || n == 0)
		return;
	if (c->flen + n > WL_FRAME_MAX) {
		c->flen = 0; /* a frame this big is not one we look into */
		return;
	}
	if (c->flen + n > c->fcap) {
		size_t cap = c->fcap != 0 ? c->fcap : 1024;
		char *q;

		while (cap < c->flen + n)
			cap *= 2;
		if ((q = realloc(c->frame, cap)) == NULL)
			wl_die("realloc");
		c->frame = q;
		c->fcap = cap;
	}
	from = c->flen >= dlen - 1 ? c->flen - (dlen - 1) : 0;
	memcpy(c->frame + c->flen, p, n);
	c->flen += n;
	while ((hit = memmem(c->frame + from, c->flen - from, delim, dlen)) !=
	    NULL) {
		size_t end = (size_t)(hit - c->frame);

		wl_frame(l, c, c->frame + start, end - start, now);
		start = from = end + dlen;
	}
	if (start > 0) {
		memmove(c->frame, c->frame + start, c->flen - start);
		c->flen -= start;
	}
}

/* ---- HTTP ---- */

static size_t
wl_line_len(const char *p, const char *e)
{
	const char *nl = memchr(p, '\n', (size_t)(e - p));

	return nl != NULL ? (size_t)(nl - p) : (size_t)(e - p);
}

/* Parse the response head in c->hdr[0..end). */
static int
wl_head(struct wl_conn *c, size_t end)
{
	char *p = c->hdr, *e = c->hdr + end, *nl;

	if (end < 12 || strncmp(p, "HTTP/1.", 7) != 0)
		return -1;
	c->status = (int)wl_num(p + 9); /* "HTTP/1.1 200" */
	c->body = WL_B_EOF;
	c->keepalive = p[7] == '1';
	while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		p = nl + 1;
		if (strncasecmp(p, "content-length:", 15) == 0) {
			c->body = WL_B_LENGTH;
			c->left = strtoull(p + 15, NULL, 10);
		} else if (strncasecmp(p, "transfer-encoding:", 18) == 0 &&
		    memmem(p, wl_line_len(p, e), "chunked", 7) != NULL) {
			c->body = WL_B_CHUNKED;
			c->chunk = WL_CH_SIZE;
			c->llen = 0;
		} else if (strncasecmp(p, "connection:", 11) == 0) {
			const char *v = p + 11;

			while (*v == ' ')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				c->keepalive = false;
		}
	}
	if (c->status == 204 || c->status == 304) {
		c->body = WL_B_LENGTH;
		c->left = 0;
	}
	return 0;
}

/*
 * Consume n body bytes at p. Returns how many were used; sets *end when
 * the message is over.
 */
static size_t
wl_dechunk(struct wl *l, struct wl_conn *c, const char *p, size_t n,
    uint64_t now, bool *end)
{
	size_t used = 0, k;

	*end = false;
	if (c->body == WL_B_EOF) {
		wl_body(l, c, p, n, now);
		return n;
	}
	if (c->body == WL_B_LENGTH) {
		k = n < c->left ? n : (size_t)c->left;
		wl_body(l, c, p, k, now);
		c->left -= k;
		*end = c->left == 0;
		return k;
	}
	while (used < n && !*end) {
		switch (c->chunk) {
		case WL_CH_DATA:
			k = n - used < c->left ? n - used : (size_t)c->left;
			wl_body(l, c, p + used, k, now);
			used += k;
			c->left -= k;
			if (c->left == 0) {
				c->chunk = WL_CH_DATA_END;
				c->llen = 0;
			}
			break;
		case WL_CH_SIZE:
		case WL_CH_DATA_END:
		case WL_CH_TRAILER:
		default:
			/* A line: chunk size, the CRLF after data, trailers. */
			while (used < n && p[used] != '\n') {
				if (c->llen < sizeof(c->line) - 1)
					c->line[c->llen++] = p[used];
				used++;
			}
			if (used == n)
				break;
			used++; /* the '\n' */
			c->line[c->llen] = '\0';
			if (c->chunk == WL_CH_DATA_END) {
				c->chunk = WL_CH_SIZE;
			} else if (c->chunk == WL_CH_SIZE) {
				c->left = strtoull(c->line, NULL, 16);
				c->chunk =
				    c->left != 0 ? WL_CH_DATA : WL_CH_TRAILER;
			} else if (c->llen == 0 ||
			    (c->llen == 1 && c->line[0] == '\r')) {
				*end = true; /* the blank line after trailers */
			}
			c->llen = 0;
			break;
		}
	}
	return used;
}

/* ---- connections ---- */

static void wl_open(struct wl *l, struct wl_conn *c);
static void wl_send(struct wl *l, struct wl_conn *c);

static bool
wl_more(const struct wl *l)
{
	if (l->stopping || wl_quit)
		return false;
	return l->nreq <= 0 || l->issued < l->nreq;
}

static void
wl_close(struct wl_conn *c)
{
	if (c->fd >= 0)
		(void)close(c->fd); /* a socket: nothing to flush */
	c->fd = -1;
	c->flen = 0;
}

/* The request on c is over (or failed); go on with the next one. */
static void
wl_next(struct wl *l, struct wl_conn *c, uint64_t now, bool http_ok)
{
	bool reuse = http_ok && c->keepalive && !l->oneshot;

	wl_settle(l, c, now, http_ok);
	if (!reuse)
		wl_close(c);
	if (!wl_more(l)) {
		wl_close(c);
		return;
	}
	if (reuse) {
		c->state = WL_ST_SENDING;
		c->woff = 0;
		wl_send(l, c);
	} else {
		wl_open(l, c);
	}
}

static void
wl_start_request(struct wl *l, struct wl_conn *c)
{
	c->woff = 0;
	c->hlen = 0;
	c->flen = 0;
	c->status = 0;
	c->t_first = c->t_content = c->t_last = 0;
	c->nstamps = 0;
	c->saw_done = false;
	c->t_req = wl_now();
	l->issued++;
	l->open_now++;
	if (l->open_now > l->peak_open)
		l->peak_open = l->open_now;
	if (l->nreq > 0 && l->issued == l->nreq && !l->all_sent_said) {
		(void)fprintf(
		    stderr, "wpload: all %ld requests sent\n", l->issued);
		l->all_sent_said = true;
	}
}

static void
wl_send(struct wl *l, struct wl_conn *c)
{
	ssize_t n;

	if (c->woff == 0)
		wl_start_request(l, c);
	while (c->woff < l->reqlen) {
		n = send(
		    c->fd, l->req + c->woff, l->reqlen - c->woff, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT tells when to go on */
		if (n < 0) {
			wl_next(l, c, wl_now(), false);
			return;
		}
		c->woff += (size_t)n;
	}
	c->state = WL_ST_HEADERS;
}

static void
wl_open(struct wl *l, struct wl_conn *c)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		wl_die("socket");
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	c->gen++;
	ev.data.u64 = (uint64_t)c->gen << 32 | c->idx;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		wl_die("epoll_ctl");
	c->state = WL_ST_CONNECTING;
	c->woff = 0;
	if (connect(c->fd, (struct sockaddr *)&l->addr, sizeof(l->addr)) == 0 ||
	    errno == EINPROGRESS)
		return;
	/* Count the failure as a request that broke. */
	wl_start_request(l, c);
	wl_next(l, c, wl_now(), false);
}

/* Bytes arrived on c; handle as many messages as they hold. */
static void
wl_input(struct wl *l, struct wl_conn *c, const char *p, size_t n, uint64_t now)
{
	char *eoh;
	size_t k, used;
	bool end;

	while (n > 0 && c->fd >= 0) {
		if (c->state != WL_ST_HEADERS && c->state != WL_ST_BODY)
			return; /* bytes we did not ask for: ignore */
		if (c->t_first == 0)
			c->t_first = now;
		if (c->state == WL_ST_HEADERS) {
			k = n < sizeof(c->hdr) - 1 - c->hlen
			    ? n
			    : sizeof(c->hdr) - 1 - c->hlen;
			memcpy(c->hdr + c->hlen, p, k);
			c->hdr[c->hlen + k] = '\0';
			eoh = strstr(c->hdr, "\r\n\r\n");
			if (eoh == NULL) {
				c->hlen += k;
				if (c->hlen == sizeof(c->hdr) - 1) {
					wl_next(l, c, now, false);
					return;
				}
				return;
			}
			used = (size_t)(eoh + 4 - c->hdr) - c->hlen;
			if (wl_head(c, (size_t)(eoh + 2 - c->hdr)) != 0) {
				wl_next(l, c, now, false);
				return;
			}
			p += used;
			n -= used;
			c->state = WL_ST_BODY;
			if (c->body == WL_B_LENGTH && c->left == 0) {
				wl_next(l, c, now, true);
				continue;
			}
		}
		used = wl_dechunk(l, c, p, n, now, &end);
		p += used;
		n -= used;
		if (end)
			wl_next(l, c, now, true);
	}
}

static void
wl_readable(struct wl *l, struct wl_conn *c, uint32_t events)
{
	bool hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
	uint32_t gen = c->gen;
	uint64_t now;
	ssize_t n;

	for (;;) {
		n = recv(c->fd, l->rbuf, sizeof(l->rbuf), 0);
		now = wl_now();
		if (n > 0) {
			wl_input(l, c, l->rbuf, (size_t)n, now);
			if (c->fd < 0 || c->gen != gen)
				return; /* closed, or a new connection */
			/*
			 * A short read emptied the socket; edge-triggered
			 * epoll tells of new bytes, but not again of a FIN
			 * that came with these.
			 */
			if ((size_t)n < sizeof(l->rbuf) && !hup)
				return;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			if (!hup)
				return;
			n = 0; /* the peer left: treat as EOF below */
		}
		break;
	}
	/* EOF or error. */
	if (c->state == WL_ST_BODY && c->body == WL_B_EOF && n == 0)
		wl_next(l, c, now, true);
	else
		wl_next(l, c, now, false);
}

static void
wl_event(struct wl *l, struct wl_conn *c, uint32_t events)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (c->fd < 0)
		return;
	if (c->state == WL_ST_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		(void)getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0 || (events & EPOLLERR)) {
			wl_start_request(l, c);
			wl_next(l, c, wl_now(), false);
			return;
		}
		c->state = WL_ST_SENDING;
	}
	if (c->state == WL_ST_SENDING && (events & EPOLLOUT))
		wl_send(l, c);
	if (c->fd >= 0 &&
	    (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		wl_readable(l, c, events);
}

/* ---- set-up and the loop ---- */

static void
wl_usage(void)
{
	(void)fprintf(stderr,
	    "usage: wpload -a host:port -q reqfile [-c conns] [-n requests] "
	    "[-d secs]\n"
	    "              [-w warmup_s] [-r opens_per_s] [-K] "
	    "[-f none|sse|nd]\n"
	    "              [-C needle] [-D needle] [-e stamps] [-t timeout_s] "
	    "[-o csv]\n");
	exit(2);
}

static char *
wl_slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) <= 0 ||
	    fseek(fp, 0, SEEK_SET) != 0 || (p = malloc((size_t)n)) == NULL ||
	    fread(p, 1, (size_t)n, fp) != (size_t)n)
		wl_die(path);
	(void)fclose(fp); /* read-only */
	*len = (size_t)n;
	return p;
}

static void
wl_args(int argc, char **argv, struct wl *l)
{
	char *colon;
	int ch;

	while ((ch = getopt(argc, argv, "a:q:c:n:d:w:r:Kf:C:D:e:t:o:")) != -1) {
		switch (ch) {
		case 'a':
			if ((colon = strrchr(optarg, ':')) == NULL)
				wl_usage();
			*colon = '\0';
			l->addr.sin_family = AF_INET;
			l->addr.sin_port = htons((uint16_t)wl_num(colon + 1));
			if (inet_pton(AF_INET, optarg, &l->addr.sin_addr) != 1)
				wl_usage();
			break;
		case 'q':
			l->req = wl_slurp(optarg, &l->reqlen);
			break;
		case 'c':
			l->conns = wl_num(optarg);
			break;
		case 'n':
			l->nreq = wl_num(optarg);
			break;
		case 'd':
			l->dur_s = atof(optarg);
			break;
		case 'w':
			l->warm_s = atof(optarg);
			break;
		case 'r':
			l->rate = atof(optarg);
			break;
		case 'K':
			l->oneshot = true;
			break;
		case 'f':
			l->framing = strcmp(optarg, "sse") == 0 ? WL_FR_SSE
			    : strcmp(optarg, "nd") == 0         ? WL_FR_ND
			                                        : WL_FR_NONE;
			break;
		case 'C':
			l->needle = optarg;
			break;
		case 'D':
			l->done = optarg;
			break;
		case 'e':
			l->expect = wl_num(optarg);
			break;
		case 't':
			l->timeout_s = atof(optarg);
			break;
		case 'o':
			if ((l->csv = fopen(optarg, "w")) == NULL)
				wl_die(optarg);
			(void)fprintf(l->csv,
			    "start_us,ttfb_us,tfc_us,total_us,"
			    "status,stamps,complete\n");
			break;
		default:
			wl_usage();
		}
	}
	if (l->req == NULL || l->addr.sin_family != AF_INET || l->conns < 1 ||
	    (l->nreq <= 0 && l->dur_s <= 0))
		wl_usage();
	if (l->nreq > 0 && l->conns > l->nreq)
		l->conns = l->nreq;
}

static void
wl_setup(struct wl *l)
{
	struct sigaction sa;
	struct rlimit rl;
	long i;

	/* One fd per connection, and 10,000 of them: take all we may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if ((rlim_t)l->conns + 16 > rl.rlim_cur) {
			(void)fprintf(stderr,
			    "wpload: %ld connections need more than the %llu "
			    "fds allowed\n",
			    l->conns, (unsigned long long)rl.rlim_cur);
			exit(2);
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wl_on_signal;
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		wl_die("epoll_create1");
	if ((l->c = calloc((size_t)l->conns, sizeof(*l->c))) == NULL)
		wl_die("calloc");
	for (i = 0; i < l->conns; i++) {
		l->c[i].fd = -1;
		l->c[i].idx = (uint32_t)i;
	}
}

/* Open the connection slots the rate allows by now. */
static void
wl_ramp(struct wl *l, uint64_t now)
{
	long allowed = l->conns;

	if (l->rate > 0) {
		allowed = 1 + (long)((double)(now - l->t0) / 1e9 * l->rate);
		if (allowed > l->conns)
			allowed = l->conns;
	}
	while (l->opened < allowed && wl_more(l))
		wl_open(l, &l->c[l->opened++]);
}

static bool
wl_finished(const struct wl *l, uint64_t now)
{
	if (wl_quit)
		return true;
	if (l->dur_s > 0 && now >= l->end)
		return true;
	if (l->timeout_s > 0 && now >= l->deadline)
		return true;
	return l->nreq > 0 && l->settled >= l->nreq;
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[WL_EVENTS];
	static struct wl l; /* big (the read buffer); one per process */
	uint64_t now;
	int i, n, timeout;
	long k;

	l.expect = -1;
	wl_args(argc, argv, &l);
	wl_setup(&l);
	l.t0 = now = wl_now();
	l.warm_end = l.t0 + (uint64_t)(l.warm_s * 1e9);
	l.end = l.warm_end + (uint64_t)(l.dur_s * 1e9);
	l.deadline = l.t0 + (uint64_t)(l.timeout_s * 1e9);
	while (!wl_finished(&l, now)) {
		wl_ramp(&l, now);
		timeout = l.opened < l.conns && l.rate > 0 ? 1 : 20;
		n = epoll_wait(l.epfd, evs, WL_EVENTS, timeout);
		if (n < 0 && errno != EINTR)
			wl_die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct wl_conn *c = &l.c[(uint32_t)evs[i].data.u64];

			if (c->gen == (uint32_t)(evs[i].data.u64 >> 32))
				wl_event(&l, c, evs[i].events);
		}
		now = wl_now();
		if (l.dur_s > 0 && now >= l.end)
			l.stopping = true;
	}
	/* What is still open did not finish in time. */
	l.stopping = true;
	if (l.dur_s <= 0)
		for (k = 0; k < l.opened; k++)
			if (l.c[k].fd >= 0 && l.c[k].state != WL_ST_CONNECTING)
				wl_settle(&l, &l.c[k], now, false);
	wl_report(&l, now);
	if (l.csv != NULL && fclose(l.csv) != 0)
		wl_die("csv");
	return 0;
}
