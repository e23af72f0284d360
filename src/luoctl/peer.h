/* SPDX-License-Identifier: MIT */
#ifndef LUOCTL_PEER_H
#define LUOCTL_PEER_H

/*
 * DOC: peer.h, what peer.c offers: a connection to a service or to luod
 *
 * Callers: update.c (a service's control socket) and agent.c (luod).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* One connection: where messages come from, until when, what errors name. */
struct peer {
	int fd;
	/*
	 * > 0: every message must come from this process itself (the
	 * kernel's SCM_CREDENTIALS; SO_PASSCRED set before connect()): a
	 * control connection. 0: an agent connection.
	 */
	pid_t sender;
	int64_t deadline;     /* CLOCK_MONOTONIC ms */
	const char *what;     /* "pid N" or "agent": errors say it first */
};

/* CLOCK_MONOTONIC in ms. */
int64_t now_ms(void);

/*
 * connect() that gives up: an AF_UNIX listener whose backlog is full makes
 * a blocking connect() wait for ever; here it is retried every
 * CONNECT_RETRY_MS for CONNECT_TIMEOUT_MS (-ETIMEDOUT). The fd is blocking
 * again after.
 */
#define CONNECT_TIMEOUT_MS 5000
#define CONNECT_RETRY_MS 10
int connect_bounded(int fd, const struct sockaddr_un *sa, socklen_t len);

/*
 * The next message before @p's deadline, checked as agent.h says: size,
 * version, @op (0: any), the echoed @seq; copied into @out (@ours bytes,
 * zero-extended). Return: 0; 0 with *@closed set when the peer closed; or
 * a negative errno, said on stderr with p->what.
 */
int recv_struct(const struct peer *p, size_t ver0, uint16_t op, uint32_t seq, void *out, size_t ours, bool *closed);

#endif /* LUOCTL_PEER_H */
