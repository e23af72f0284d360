/* SPDX-License-Identifier: MIT */
#ifndef LUOD_H
#define LUOD_H

/*
 * DOC: luod's state and limits, and its base layer (base.c)
 *
 * luod is split by concept, in layers; each file calls only the files
 * below it, never back, and has its own header for what it offers:
 *
 *   main.c      options, the socket, systemd, signals, the epoll loop
 *     request.c   (request.h) the requests of agent.h on one connection:
 *                 framing checks, the DEPOSIT state machine, the answers
 *     handover.c  (handover.h) luod's own live update: everything it holds
 *                 mapped into libluo sessions and one component, and back
 *       conn.c      (conn.h) one client connection: accept, adopt, replies
 *                   and the bounded output queue, in-flight fds, close
 *         table.c     (table.h) held sessions keyed by (uid, name), per-uid
 *                     usage, limits, the closer thread
 *           base.c      (this header) the log, the clocks, epoll
 *
 * This header holds the state every layer reads (struct luod, struct conn,
 * struct held) and the limits. A self-update asked for (conn.c) is state
 * in struct luod that the loop hands to handover_poll(): the lower layer
 * never calls the upper one.
 *
 * Everything runs on one thread -- but for the closer thread (table.c),
 * which only close()s fds whose close may wait for a filesystem -- and no
 * function here blocks on a client.
 * Errors are negative errnos.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "luo/agent.h"
#include "luo/luo.h"

/* Every limit a named maximum. */
#define LUOD_CONNECTIONS_MAX 1024u        /* accepted at once; more wait in the backlog */
/*
 * One uid's share of them (root has none: it is trusted), and the last
 * connections kept for root: a uid that opens more is accepted and closed
 * at once, so it never fills the backlog in front of the others. It takes
 * LUOD_CONNECTIONS_MAX / LUOD_CONNECTIONS_PER_UID_MAX uids to fill luod.
 */
#define LUOD_CONNECTIONS_PER_UID_MAX 64u
#define LUOD_CONNECTIONS_ROOT_RESERVE 32u
#define LUOD_ACCEPT_PAUSE_MS 100u        /* accept4() out of fds or memory: listen again after this */
#define LUOD_BACKLOG 128
#define LUOD_DEFAULT_MAX_SESSIONS 4096u   /* per uid */
#define LUOD_DEFAULT_MAX_FDS 16384u       /* per uid */
#define LUOD_DEFAULT_MAX_BYTES (1ull << 30) /* per uid: 1 GiB */
#define LUOD_LIMIT_SESSIONS_MAX 65536u    /* what --max-sessions accepts */
#define LUOD_LIMIT_FDS_MAX LUO_FILES_MAX  /* what --max-fds accepts */
#define LUOD_LIMIT_BYTES_MAX (1ull << 50)
/*
 * Fds held for all owners together (deposits under way included). A
 * self-update hands over these, the connections and the listener in
 * libluo sessions, which hold LUO_FILES_MAX files at most.
 */
#define LUOD_HELD_FDS_MAX (LUO_FILES_MAX - LUOD_CONNECTIONS_MAX - 16u)
/*
 * Of that budget, 1/LUOD_HELD_FDS_ROOT_RESERVE_DIV is root's alone: the
 * other uids together stop short of it (-ENFILE), so root's deposits and
 * retrieves go on while they are all at their limits. And --max-fds is
 * clamped to 1/LUOD_HELD_FDS_UID_SHARE_DIV of what the other uids share:
 * one uid never holds it all (a low RLIMIT_NOFILE shrinks the budget
 * below the default --max-fds).
 */
#define LUOD_HELD_FDS_ROOT_RESERVE_DIV 8u
#define LUOD_HELD_FDS_UID_SHARE_DIV 2u
/* Bytes of replies queued for one slow reader (a LIST of every session fits). */
#define LUOD_OUTQ_BYTES_MAX (16u << 20)
/*
 * A deposit under way, or a reply the client does not read, holds fds and
 * budget of its uid: past this, luod closes the connection (sessions kept,
 * detached), which frees them. Checked every LUOD_STALL_CHECK_MS.
 */
#define LUOD_STALL_MS 10000u
#define LUOD_STALL_CHECK_MS 1000
/* How long an update waits for deposits under way and queued replies. */
#define LUOD_UPDATE_DRAIN_MS 2000
/* libluo session names for the handover: "luod.<n>". */
#define LUOD_HANDOVER_SESSION_PREFIX "luod."

struct luod_limits {
	uint64_t max_sessions;
	uint64_t max_fds;
	uint64_t max_bytes;
};

struct conn;

/* One held session. */
struct held {
	struct held *hnext;             /* hash chain */
	struct held *prev, *next;       /* every session, oldest first */
	uint32_t uid;
	uint32_t flags;                 /* LUO_AGENT_DEPOSIT_* */
	uint32_t n_fds;                 /* fds[0] is the blob memfd */
	int *fds;
	uint64_t bytes;
	uint64_t deposited_s, updated_s, generation;
	struct conn *owner;             /* the attached depositor, NULL if detached */
	uint32_t first_token;           /* handover only */
	char name[LUO_AGENT_NAME_SIZE];
};

struct uid_usage {
	uint32_t uid;
	uint64_t sessions, fds, bytes;
	uint64_t pending_fds;           /* announced by this uid's deposits under way */
	uint32_t conns;                 /* its open connections */
	uint64_t inflight_fds;          /* sent to (or queued for) its connections, not yet taken */
};

enum luod_source_kind {
	LUOD_SRC_LISTEN = 1,
	LUOD_SRC_SIGNAL,
	LUOD_SRC_CONN,
};

struct outmsg {
	struct outmsg *next;
	size_t len;
	size_t n_fds;
	int fds[LUO_AGENT_FDS_PER_MSG];
	unsigned char buf[];
};

/* Why a connection is closed: decides what happens to its sessions. */
enum conn_close_why {
	CONN_CLOSE_PEER,     /* EOF or error: the client is gone (crash semantics) */
	CONN_CLOSE_PROTOCOL, /* it broke the protocol: the same, it was its doing */
	CONN_CLOSE_AGENT,    /* luod's own doing (update drain, shutdown): sessions kept, detached */
};

struct conn {
	enum luod_source_kind kind;     /* LUOD_SRC_CONN; first, for epoll */
	struct conn *prev, *next;
	int fd;
	uint32_t uid, gid;
	int32_t pid;
	uint32_t events;                /* registered with epoll */
	bool dead;                      /* close at the end of this event */
	enum conn_close_why dead_why;
	uint32_t token;                 /* handover only */
	uint16_t cur_op;                /* the request being answered (replies echo it) */
	/* A DEPOSIT under way. */
	bool depositing;
	struct luo_agent_request dep;
	uint32_t dep_got;
	int *dep_fds;
	int dep_err;                    /* refused already: fds are discarded */
	bool dep_reserved;              /* dep.n_fds counted in the uid's pending_fds */
	char dep_reason[LUO_AGENT_REASON_SIZE];
	uint64_t busy_since_ms;         /* a deposit started, or a reply queued (conn_busy()) */
	/* Replies the socket could not take yet; no request is read meanwhile. */
	struct outmsg *outq, **outq_tail;
	size_t outq_bytes;
	/*
	 * Reply fds queued or sent on this socket that the client may not
	 * have taken yet: charged to its uid's in-flight fds until the socket
	 * is seen empty (SIOCOUTQ 0: every message sent was read).
	 */
	uint64_t inflight_fds;
};

struct luod {
	int epfd, listen_fd, sig_fd;
	enum luod_source_kind listen_src, sig_src;
	struct luod_limits lim;
	uint64_t held_fds_max;          /* LUOD_HELD_FDS_MAX, or less if RLIMIT_NOFILE is lower */
	uint64_t held_fds_root_reserve; /* the part of held_fds_max only root may use */
	/* Connections. */
	struct conn *conns;
	uint32_t n_conns;
	uint64_t conns_refused;         /* over a uid's share: accepted and closed */
	uint64_t retrieves_refused;     /* over a uid's in-flight reply fds */
	/* Held sessions. */
	struct held **hash;
	struct held *first, *last;
	uint64_t n_sessions, n_fds, n_bytes;
	uint64_t pending_fds;           /* reserved by deposits under way */
	uint64_t inflight_fds;          /* of every connection (struct conn) */
	struct uid_usage *uids;
	size_t n_uids, cap_uids;
	/* Who we are. */
	uint64_t lu_number, started_s;
	char exe[LUO_AGENT_PATH_SIZE];
	char **argv;
	struct luo *luo;
	uid_t euid;
	/* A self-update asked for, waiting for the drain. */
	bool update_wanted;
	struct conn *update_conn;       /* OP_UPDATE requester, or NULL (SIGHUP) */
	uint32_t update_seq, update_reply_size;
	uint64_t update_deadline_ms;
	uint64_t accept_paused_until_ms; /* accept4() ran out of fds or memory: retry then (0: not paused) */
	bool quit;
};

/* A log line before its control bytes are escaped (4 bytes each). */
#define LUOD_LOG_LINE_MAX 1024u

/* Fds all uids together may have held (or in flight in replies) for a request of @uid's. */
static inline uint64_t luod_held_fds_limit(const struct luod *d, uint32_t uid)
{
	return uid == 0 ? d->held_fds_max : d->held_fds_max - d->held_fds_root_reserve;
}

/* base.c: the log (one write per line on stderr; control bytes as \xNN), the clocks, epoll. */
void luod_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t luod_now_s(void);
uint64_t luod_now_ms(void);
int luod_epoll_set(struct luod *d, int fd, void *src, uint32_t events, bool add);

#endif /* LUOD_H */
