/*
 * mst_notify: the systemd notify datagrams the master sends itself, to a
 * path socket and to an abstract one, and nothing when NOTIFY_SOCKET is
 * unset or odd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mst.h"
#include "th.h"

static int
listen_dgram(const char *name, bool abstract)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (abstract) {
		memcpy(sa.sun_path + 1, name, strlen(name));
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		    strlen(name));
	} else {
		(void)unlink(name);
		memcpy(sa.sun_path, name, strlen(name));
		len = sizeof(sa);
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) != 0)
		return -1;
	return fd;
}

static ssize_t
recv_msg(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

TEST(t_path_socket)
{
	char path[64], buf[512];
	int fd;

	(void)snprintf(path, sizeof(path), "/tmp/wpd-notify-%d", (int)getpid());
	fd = listen_dgram(path, false);
	EXPECT(fd >= 0);
	(void)setenv("NOTIFY_SOCKET", path, 1);
	mst_notify("READY=1\nSTATUS=serving\nMAINPID=%d", 42);
	EXPECT(recv_msg(fd, buf, sizeof(buf)) > 0);
	EXPECT_STR_EQ(buf, "READY=1\nSTATUS=serving\nMAINPID=42");
	mst_notify("RELOADING=1\nMONOTONIC_USEC=%llu", 123456789ULL);
	EXPECT(recv_msg(fd, buf, sizeof(buf)) > 0);
	EXPECT_STR_EQ(buf, "RELOADING=1\nMONOTONIC_USEC=123456789");
	(void)close(fd);
	(void)unlink(path);
}

TEST(t_abstract_socket)
{
	char name[64], env[80], buf[512];
	int fd;

	(void)snprintf(name, sizeof(name), "wpd-notify-%d", (int)getpid());
	fd = listen_dgram(name, true);
	EXPECT(fd >= 0);
	(void)snprintf(env, sizeof(env), "@%s", name);
	(void)setenv("NOTIFY_SOCKET", env, 1);
	mst_notify("STOPPING=1");
	EXPECT(recv_msg(fd, buf, sizeof(buf)) > 0);
	EXPECT_STR_EQ(buf, "STOPPING=1");
	(void)close(fd);
}

TEST(t_no_socket)
{
	/* Unset, relative or missing: silently nothing, never a crash. */
	(void)unsetenv("NOTIFY_SOCKET");
	mst_notify("READY=1");
	(void)setenv("NOTIFY_SOCKET", "relative/path", 1);
	mst_notify("READY=1");
	(void)setenv("NOTIFY_SOCKET", "/nonexistent/dir/sock", 1);
	mst_notify("READY=1");
	EXPECT(1);
}

int
main(void)
{
	RUN(t_path_socket);
	RUN(t_abstract_socket);
	RUN(t_no_socket);
	TH_DONE();
}
