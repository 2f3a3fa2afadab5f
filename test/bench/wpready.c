/*
 * wpready: how long webproxyd takes to start. It binds a unix datagram
 * socket, runs the command with NOTIFY_SOCKET pointing at it (what
 * systemd does for Type=notify), and times from fork to the first
 * "READY=1" datagram, then to the first "200" from GET /healthz on
 * 127.0.0.1:PORT (READY=1 is sent once the workers are forked, not when
 * they serve: both times are worth knowing).
 *
 *   wpready -p PORT [-t TIMEOUT_MS] -- COMMAND [ARG]...
 *
 * Prints {"ready_ms":..,"healthz_ms":..,"pid":..} on stdout, then waits:
 * on SIGTERM, SIGINT or end of stdin it sends the daemon SIGTERM, reaps
 * it and exits (so the daemon never outlives its timer). Exits 1 if the
 * daemon did not get ready in time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t wr_quit; /* set by SIGTERM/SIGINT */

static void
wr_on_signal(int sig)
{
	(void)sig;
	wr_quit = 1;
}

static double
wr_ms(const struct timespec *t0)
{
	struct timespec t;

	(void)clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* One GET /healthz on a fresh connection: true on a 200. */
static bool
wr_healthz(unsigned port)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: b\r\n"
	                          "Connection: close\r\n\r\n";
	struct sockaddr_in sa;
	char buf[64];
	ssize_t n;
	bool ok = false;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) ==
	        (ssize_t)sizeof(req) - 1 &&
	    (n = recv(fd, buf, sizeof(buf) - 1, 0)) >= 12) {
		buf[n] = '\0';
		ok = strncmp(buf + 9, "200", 3) == 0;
	}
	(void)close(fd); /* a socket */
	return ok;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sa;
	struct timespec t0;
	struct sigaction act;
	struct pollfd pfd[2];
	double ready_ms = -1, healthz_ms = -1, timeout_ms = 10000;
	unsigned port = 0;
	char path[64], msg[512];
	pid_t pid;
	int ch, fd, st;
	ssize_t n;

	while ((ch = getopt(argc, argv, "p:t:")) != -1) {
		if (ch == 'p')
			port = (unsigned)strtoul(optarg, NULL, 10);
		else if (ch == 't')
			timeout_ms = atof(optarg);
		else
			optind = argc + 1;
	}
	if (optind >= argc || port == 0) {
		(void)fprintf(stderr,
		    "usage: wpready -p port [-t timeout_ms] "
		    "-- command [arg]...\n");
		return 2;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = wr_on_signal;
	(void)sigaction(SIGTERM, &act, NULL);
	(void)sigaction(SIGINT, &act, NULL);
	(void)snprintf(
	    path, sizeof(path), "/tmp/wpready.%d.sock", (int)getpid());
	(void)unlink(path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	(void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("wpready: notify socket");
		return 2;
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((pid = fork()) < 0) {
		perror("wpready: fork");
		return 2;
	}
	if (pid == 0) {
		(void)setenv("NOTIFY_SOCKET", path, 1);
		execvp(argv[optind], argv + optind);
		perror("wpready: exec");
		_exit(127);
	}
	while (ready_ms < 0 && !wr_quit && wr_ms(&t0) < timeout_ms) {
		pfd[0].fd = fd;
		pfd[0].events = POLLIN;
		if (poll(pfd, 1, 10) <= 0)
			continue;
		n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = '\0';
		if (strncmp(msg, "READY=1", 7) == 0 ||
		    strstr(msg, "\nREADY=1") != NULL)
			ready_ms = wr_ms(&t0);
	}
	while (ready_ms >= 0 && healthz_ms < 0 && !wr_quit &&
	    wr_ms(&t0) < timeout_ms) {
		if (wr_healthz(port))
			healthz_ms = wr_ms(&t0);
		else
			(void)usleep(500);
	}
	(void)unlink(path);
	(void)printf("{\"ready_ms\":%.2f,\"healthz_ms\":%.2f,\"pid\":%d}\n",
	    ready_ms, healthz_ms, (int)pid);
	(void)fflush(stdout);
	/* Hold the daemon until told to stop, or stdin closes. */
	while (healthz_ms >= 0 && !wr_quit) {
		pfd[0].fd = 0;
		pfd[0].events = POLLIN;
		pfd[1].fd = fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, 200) > 0) {
			if (pfd[0].revents != 0 &&
			    (read(0, msg, sizeof(msg)) <= 0))
				break;
			if (pfd[1].revents != 0)
				(void)recv(fd, msg, sizeof(msg), 0);
		}
		if (waitpid(pid, &st, WNOHANG) == pid)
			return 1; /* the daemon died on its own */
	}
	(void)kill(pid, SIGTERM);
	(void)waitpid(pid, &st, 0);
	return healthz_ms >= 0 ? 0 : 1;
}
