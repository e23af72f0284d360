/* SPDX-License-Identifier: MIT */
/*
 * DOC: who is at the other end of a unix socket
 *
 * SO_PEERCRED gives a pid, and a pid is only a number: the process that
 * connected (or listened) may have exited and its number gone to another
 * process since. A pidfd names the process itself:
 *
 *   luo_peer_pidfd()    SO_PEERPIDFD (Linux 6.5+): the very process that
 *                       called connect() or listen(), exited or not.
 *                       Fallback, older kernels: pidfd_open() of the
 *                       SO_PEERCRED pid, which names whoever holds that
 *                       number now; *ret_exact says which one was got.
 *   luo_pidfd_pid()     the number a pidfd's process has now (fdinfo's
 *                       "Pid:"), -ESRCH once it has exited: a pidfd whose
 *                       process still has the number @pid is that process.
 *   luo_peer_may_ptrace() whether the peer could ptrace(2) this process
 *                       (PTRACE_MODE_ATTACH_REALCREDS, as the kernel's
 *                       __ptrace_may_access() and cap_ptrace_access_check()
 *                       decide): CAP_SYS_PTRACE in its effective set, or
 *                       its real uid and gid equal to all of ours, this
 *                       process dumpable, and our permitted capabilities a
 *                       subset of its permitted ones. The peer's are read
 *                       from /proc/PID/status and count only if its pidfd
 *                       still has that pid afterwards. Not modelled: Yama's
 *                       ptrace_scope (stricter: we may accept a peer that
 *                       Yama would refuse, never the other way), LSMs, and
 *                       user namespaces (capabilities compared as numbers).
 *
 * The residual gap of the fallback: a peer that exits, and whose pid is
 * recycled, between its connect() and our pidfd_open(). The control
 * protocol covers it on the requester's side with SCM_CREDENTIALS on every
 * answer (luoctl), which the kernel fills with the sender's pid at send.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "base.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef CAP_SYS_PTRACE
#define CAP_SYS_PTRACE 19
#endif
/* /proc/PID/status and fdinfo are a few KiB; what we read of them. */
#define PROC_TEXT_MAX 8192

static int read_text(const char *path, char *buf, size_t cap)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return 0;
}

/* The text after "\n@key" (or at the start), or NULL. */
static const char *field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, key, klen) == 0)
			return p + klen;
	}
	return NULL;
}

int luo_pidfd_pid(int pidfd)
{
	char path[64], text[PROC_TEXT_MAX];
	const char *v;
	long pid;
	char *end;
	int r;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	r = read_text(path, text, sizeof(text));
	if (r < 0)
		return r;
	v = field(text, "Pid:");
	if (!v)
		return -EBADF; /* not a pidfd */
	errno = 0;
	pid = strtol(v, &end, 10);
	if (errno || end == v || (*end != '\n' && *end != '\0'))
		return -EBADMSG;
	if (pid <= 0 || pid > INT32_MAX)
		return -ESRCH; /* -1: exited; 0: not in our pid namespace */
	return (int)pid;
}

int luo_peer_pidfd(int sock, pid_t pid, bool *ret_exact)
{
	int pidfd = -1;
	socklen_t len = sizeof(pidfd);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && len == sizeof(pidfd) && pidfd >= 0) {
		(void)luo_set_cloexec(pidfd, true); /* the kernel's is already: made sure */
		*ret_exact = true;
		return pidfd;
	}
	/*
	 * Only "unknown option" falls back. The kernel refuses a pidfd for a
	 * process that has exited (-EINVAL or -ESRCH, by version): then
	 * pidfd_open() of its pid would name its successor, the very mistake.
	 */
	if (errno == EINVAL || errno == ESRCH)
		return -ESRCH;
	if (errno != ENOPROTOOPT)
		return -errno;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	(void)luo_set_cloexec(pidfd, true);
	*ret_exact = false;
	return pidfd;
}

struct proc_creds {
	unsigned long uid[4], gid[4]; /* real, effective, saved, fs */
	unsigned long long cap_prm, cap_eff;
};

static int parse_ids(const char *v, unsigned long out[4])
{
	char *end;

	if (!v)
		return -EBADMSG;
	for (int i = 0; i < 4; i++) {
		errno = 0;
		out[i] = strtoul(v, &end, 10);
		if (errno || end == v)
			return -EBADMSG;
		v = end;
	}
	return 0;
}

static int parse_caps(const char *v, unsigned long long *out)
{
	char *end;

	if (!v)
		return -EBADMSG;
	errno = 0;
	*out = strtoull(v, &end, 16);
	return errno || end == v ? -EBADMSG : 0;
}

static int read_creds(const char *status_path, struct proc_creds *c)
{
	char text[PROC_TEXT_MAX];
	int r = read_text(status_path, text, sizeof(text));

	if (r < 0)
		return r;
	r = parse_ids(field(text, "Uid:"), c->uid);
	if (!r)
		r = parse_ids(field(text, "Gid:"), c->gid);
	if (!r)
		r = parse_caps(field(text, "CapPrm:"), &c->cap_prm);
	if (!r)
		r = parse_caps(field(text, "CapEff:"), &c->cap_eff);
	return r;
}

int luo_peer_may_ptrace(int pidfd, pid_t pid)
{
	struct proc_creds peer, self;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = read_creds(path, &peer);
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	/* Read after the creds: they were that process's, not a successor's. */
	r = luo_pidfd_pid(pidfd);
	if (r < 0)
		return r;
	if (r != pid)
		return -ESRCH;
	if (peer.cap_eff & (1ULL << CAP_SYS_PTRACE))
		return 0;
	r = read_creds("/proc/self/status", &self);
	if (r < 0)
		return r;
	for (int i = 0; i < 3; i++)
		if (peer.uid[0] != self.uid[i] || peer.gid[0] != self.gid[i])
			return -EPERM;
	if (prctl(PR_GET_DUMPABLE) != 1)
		return -EPERM;
	if ((self.cap_prm & ~peer.cap_prm) != 0)
		return -EPERM;
	return 0;
}
