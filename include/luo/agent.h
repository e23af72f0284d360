/* SPDX-License-Identifier: MIT */
#ifndef LUO_AGENT_H
#define LUO_AGENT_H

/**
 * DOC: the wire protocols of luod (the agent) and of a service's control socket
 *
 * Both run over AF_UNIX SOCK_SEQPACKET sockets: one message per send, kept
 * whole, fds passed as SCM_RIGHTS with the message that announces them.
 * Every struct starts with its size and follows the kernel's extensible
 * struct rules (copy_struct_from_user()):
 *
 *  - a receiver refuses a message shorter than the struct's first version
 *    (the *_SIZE_VER0 constants) or whose size field is not the number of
 *    bytes received (-EBADMSG);
 *  - bytes past the receiver's own sizeof must all be zero, else -E2BIG
 *    (a newer peer asked for something this one does not know);
 *  - a shorter struct is zero-extended: zero is always the old behaviour;
 *  - replies are written at min(the size the requester gave in
 *    reply_size, the replier's sizeof), never less than *_SIZE_VER0.
 *
 * Every message carries LUO_AGENT_PROTO_VERSION; another version is
 * answered with -EPROTONOSUPPORT (the reply carries the replier's version)
 * and nothing else is done. Strings are NUL-padded fixed arrays: a name
 * without its NUL inside the array, or with bytes after the NUL that are
 * not zero, is -EINVAL. Unknown op: -EOPNOTSUPP. Unknown flag bits:
 * -EINVAL. A message larger than LUO_AGENT_MSG_MAX, truncated
 * (MSG_TRUNC / MSG_CTRUNC), carrying fds it does not announce, or
 * carrying more than LUO_AGENT_FDS_PER_MSG, is refused with -EBADMSG and
 * the fds it brought are closed; the agent then closes the connection,
 * since the stream of messages can no longer be trusted. Requests are
 * answered in order, one at a time. Each reply (struct luo_agent_reply)
 * echoes the op and the seq of the request it answers -- a DEPOSIT's
 * reply, after its last OP_FDS message, op DEPOSIT and the DEPOSIT's seq;
 * the control socket's, LUO_CONTROL_OP_UPDATE -- and the messages that
 * follow a reply (OP_FDS, OP_INFO, LUO_CONTROL_OP_REPORT / _DONE) carry
 * that seq too; a requester refuses anything else (-EBADMSG). A message
 * refused before its header could be read (shorter than the header,
 * truncated, oversized) is answered with seq 0 (by the agent, op 0).
 *
 * The agent (luod)
 * ----------------
 * Socket: $LUO_AGENT_SOCKET if set, else LUO_AGENT_SOCKET_SYSTEM for
 * root and $XDG_RUNTIME_DIR/LUO_AGENT_SOCKET_USER for other users.
 * Ownership comes from SO_PEERCRED at connect time: a uid sees, retrieves
 * and drops only its own sessions; root sees and drops all (a request's
 * uid field picks the owner; LUO_AGENT_UID_SELF means the caller's own).
 * A held session is the handover blob of one session (a sealed memfd,
 * include/luo/abi.h, whose "fd" properties are meaningless here) and the
 * session's fds, in the order its files appear in the blob. The agent does
 * not parse the blob: it checks that the memfd is sealed and within
 * LUO_ABI_BLOB_MAX, counts fds and bytes against the owner's limits, and
 * hands everything back as it was given. The retriever parses the blob as
 * hostile input.
 *
 * Requests (struct luo_agent_request; the reply is struct luo_agent_reply,
 * error 0 or a negative errno, with a reason for people):
 *
 *   DEPOSIT   name, flags (LUO_AGENT_DEPOSIT_*), n_fds = 1 + the session's
 *             files. The blob memfd is the first fd; fds travel with this
 *             message and as many LUO_AGENT_OP_FDS messages as needed, at
 *             most LUO_AGENT_FDS_PER_MSG each, before the reply. Replaces
 *             a session of that name and owner atomically: until the last
 *             fd arrived, the previous deposit is what is held. The
 *             session is attached to this connection (see DETACH).
 *             Errors: -EINVAL bad name or flags, n_fds 0 or over
 *             LUO_AGENT_SESSION_FDS_MAX; -EBADFD the first fd is not a
 *             sealed memfd; -EFBIG the blob is over LUO_ABI_BLOB_MAX;
 *             -EDQUOT the owner's session, fd (its other deposits under
 *             way counted) or byte limit; -ENFILE the
 *             agent is out of fds.
 *   RETRIEVE  name, uid. Reply: n_fds as deposited, then the fds: with the
 *             reply and as many OP_FDS messages as needed (the agent keeps
 *             its own references: a retrieve takes nothing away). -ENOENT
 *             no such session (for this uid); -EPERM uid not the caller's
 *             and the caller not root.
 *   LIST      uid (LUO_AGENT_UID_ALL: every owner the caller may see).
 *             Reply: count, then count messages of struct
 *             luo_agent_session_info, written at min(info_size, ours).
 *   DROP      name, uid: forget the session, close the agent's fds.
 *             -ENOENT, -EPERM as above.
 *   DETACH    the sessions this connection deposited no longer depend on
 *             it: they are held until dropped. A connection that closes
 *             without DETACH (its process exited or crashed) takes along
 *             its sessions deposited without LUO_AGENT_DEPOSIT_KEEP_ON_CRASH.
 *   STATUS    reply: count 1, then struct luo_agent_status (at min(
 *             info_size, ours)): the agent's pid, liveupdate-number,
 *             totals; the caller's own usage and limits.
 *   UPDATE    the agent updates itself (exec handover of its own binary):
 *             root or the agent's uid only (-EPERM). Every held session,
 *             every connection and the listening socket survive; requests
 *             sent meanwhile wait in the sockets and are answered by the
 *             new image. The reply comes from the new image: error 0 and
 *             its liveupdate-number, or the refusal (the old image keeps
 *             serving). -EUCLEAN the new image refused the handover and
 *             libluo rolled back: the old image, back with the same state,
 *             answers with the new one's reason. -EBUSY an update is
 *             already under way.
 *
 * The control socket of a service
 * -------------------------------
 * A libluo service may listen (luo_control_listen()) on the abstract
 * AF_UNIX address "\0" LUO_CONTROL_ADDRESS_PREFIX "<pid>". luoctl checks
 * SO_PEERCRED of the listener: the pid must be the one asked for, the uid
 * the caller's (or the caller is root); the service checks the caller's
 * the same way (same uid or root, else the connection is closed). The
 * address is predictable, so any process may take it first: the service
 * then listens on "\0" LUO_CONTROL_ADDRESS_PREFIX "<pid>.<16 hex digits>",
 * the digits random, and luoctl finds that name among the sockets the
 * process PID itself holds (/proc/PID/fd and /proc/net/unix), never by
 * trying the names others may have made.
 *
 *   UPDATE    struct luo_control_update: the new binary's path (absolute).
 *             The service calls luo_update() with its own argv. A refusal
 *             is answered at once: struct luo_agent_reply with the error,
 *             count = the number of struct luo_control_report messages
 *             that follow (the per-entry negotiation report). On success
 *             the connection crosses the exec and the new image answers
 *             from luo_ready(): error 0, then one struct luo_control_done
 *             (count 1) with the timings. If the new image rolls back,
 *             the old image answers from its luo_ready(): -EUCLEAN and the
 *             reason the new one gave.
 */

#include <stdint.h>

#define LUO_AGENT_PROTO_VERSION 1u

/* Socket locations (see the DOC above). */
#define LUO_AGENT_SOCKET_ENV "LUO_AGENT_SOCKET"
#define LUO_AGENT_SOCKET_SYSTEM "/run/luo/agent.sock"
#define LUO_AGENT_SOCKET_USER "luo/agent.sock" /* under $XDG_RUNTIME_DIR */
#define LUO_CONTROL_ADDRESS_PREFIX "luo-control."

/* Bounds: every message, every count. */
#define LUO_AGENT_MSG_MAX 8192u
#define LUO_AGENT_FDS_PER_MSG 250u      /* the kernel allows 253 (SCM_MAX_FD) */
#define LUO_AGENT_SESSION_FDS_MAX 4097u /* the blob + LUO_SESSION_FILES_MAX */
#define LUO_AGENT_NAME_SIZE 64u         /* 1..63 bytes + NUL: LUO_SESSION_NAME_MAX */
#define LUO_AGENT_REASON_SIZE 160u
#define LUO_CONTROL_REPORT_LINE_SIZE 640u /* a whole report line: fits LUO_REPORT_WHY_SIZE and the rest */
#define LUO_AGENT_PATH_SIZE 4096u       /* PATH_MAX */

/* uid field values. */
#define LUO_AGENT_UID_SELF UINT32_MAX
#define LUO_AGENT_UID_ALL (UINT32_MAX - 1)

enum luo_agent_op {
	LUO_AGENT_OP_DEPOSIT = 1,
	LUO_AGENT_OP_RETRIEVE = 2,
	LUO_AGENT_OP_LIST = 3,
	LUO_AGENT_OP_DROP = 4,
	LUO_AGENT_OP_DETACH = 5,
	LUO_AGENT_OP_STATUS = 6,
	LUO_AGENT_OP_UPDATE = 7,
	/* More fds of the message before; either direction. */
	LUO_AGENT_OP_FDS = 8,
	/* Messages that follow a reply (count of them). */
	LUO_AGENT_OP_INFO = 9,
	/* The control socket of a service. */
	LUO_CONTROL_OP_UPDATE = 64,
	LUO_CONTROL_OP_REPORT = 65,
	LUO_CONTROL_OP_DONE = 66,
};

/* DEPOSIT flags. */
#define LUO_AGENT_DEPOSIT_KEEP_ON_CRASH (1u << 0)
#define LUO_AGENT_DEPOSIT_FLAGS_ALL LUO_AGENT_DEPOSIT_KEEP_ON_CRASH

/* Every message starts so. */
struct luo_agent_header {
	uint32_t size;    /* bytes of the whole message's struct */
	uint16_t version; /* LUO_AGENT_PROTO_VERSION */
	uint16_t op;      /* enum luo_agent_op */
	uint32_t seq;     /* chosen by the requester, echoed */
};

struct luo_agent_request {
	struct luo_agent_header hdr;
	uint32_t flags;      /* per op; 0 if none */
	uint32_t n_fds;      /* DEPOSIT: the blob and the files; else 0 */
	uint32_t uid;        /* RETRIEVE / LIST / DROP: LUO_AGENT_UID_* or a uid */
	uint32_t reply_size; /* sizeof the requester's struct luo_agent_reply */
	uint32_t info_size;  /* sizeof its luo_agent_session_info / _status */
	uint32_t reserved;   /* zero */
	char name[LUO_AGENT_NAME_SIZE];
};
#define LUO_AGENT_REQUEST_SIZE_VER0 100u

struct luo_agent_reply {
	struct luo_agent_header hdr;
	int32_t error;       /* 0 or a negative errno */
	uint32_t n_fds;      /* fds that follow: with this message, then OP_FDS */
	uint32_t count;      /* OP_INFO / control messages that follow */
	uint32_t reserved[2]; /* zero */
	uint64_t lu_number;  /* the replier's liveupdate-number */
	char reason[LUO_AGENT_REASON_SIZE];
};
#define LUO_AGENT_REPLY_SIZE_VER0 200u

/* More fds; the fds ride as SCM_RIGHTS. */
struct luo_agent_fds {
	struct luo_agent_header hdr;
	uint32_t n_fds;      /* in this message: 1..LUO_AGENT_FDS_PER_MSG */
	uint32_t reserved;
};
#define LUO_AGENT_FDS_SIZE_VER0 20u

/* LIST: one held session. */
struct luo_agent_session_info {
	struct luo_agent_header hdr; /* op LUO_AGENT_OP_INFO */
	uint32_t uid;          /* owner */
	uint32_t flags;        /* LUO_AGENT_DEPOSIT_* */
	uint32_t n_fds;        /* the blob included */
	int32_t owner_pid;     /* the attached depositor, 0 if detached */
	uint32_t reserved;
	uint64_t bytes;        /* counted against the owner: blob + memfds */
	uint64_t deposited_s;  /* CLOCK_REALTIME seconds of the first deposit */
	uint64_t updated_s;    /* of the last deposit */
	uint64_t generation;   /* deposits under this name, 1.. */
	char name[LUO_AGENT_NAME_SIZE];
};
#define LUO_AGENT_SESSION_INFO_SIZE_VER0 128u

/* STATUS: the agent, and the caller's share of it. */
struct luo_agent_status {
	struct luo_agent_header hdr; /* op LUO_AGENT_OP_INFO */
	int32_t pid;
	uint32_t connections;
	uint32_t reserved;
	uint64_t lu_number;    /* the agent's own live updates */
	uint64_t started_s;    /* CLOCK_REALTIME seconds of the first start */
	uint64_t sessions;     /* held, all owners */
	uint64_t fds;
	uint64_t bytes;
	uint64_t own_sessions; /* the caller's */
	uint64_t own_fds;
	uint64_t own_bytes;
	uint64_t max_sessions; /* the per-uid limits */
	uint64_t max_fds;
	uint64_t max_bytes;
};
#define LUO_AGENT_STATUS_SIZE_VER0 112u

/* The control socket: ask the service to update to @path. */
struct luo_control_update {
	struct luo_agent_header hdr; /* op LUO_CONTROL_OP_UPDATE */
	uint32_t flags;      /* 0 or LUO_CONTROL_UPDATE_STRICT */
	uint32_t reply_size;
	uint32_t info_size;  /* sizeof the requester's luo_control_report / _done */
	uint32_t reserved;
	char path[LUO_AGENT_PATH_SIZE];
};
#define LUO_CONTROL_UPDATE_SIZE_VER0 4124u
/*
 * For this update, luo_update() refuses what luoctl check --strict answers
 * no to: a downgrade, unproven types (as LUO_OPEN_STRICT_TYPES) and a
 * dropped component.
 */
#define LUO_CONTROL_UPDATE_STRICT 1u

/* One entry of a refused (or accepted) negotiation: struct luo_report_entry. */
struct luo_control_report {
	struct luo_agent_header hdr; /* op LUO_CONTROL_OP_REPORT */
	uint32_t kind;       /* LUO_ABI_KIND_* */
	uint32_t verdict;    /* enum luo_verdict */
	uint32_t version;
	uint32_t reserved;
	char name[48];       /* LUO_ABI_NOTE_NAME_SIZE */
	char line[LUO_AGENT_REASON_SIZE]; /* luo_report_entry_format(), cut to fit */
	/* size 876 and up: the whole line, never cut (its why names the member) */
	char full_line[LUO_CONTROL_REPORT_LINE_SIZE];
};
#define LUO_CONTROL_REPORT_SIZE_VER0 236u
#define LUO_CONTROL_REPORT_SIZE_VER1 876u

/* The update is done: the new image's luo_ready() ran. */
struct luo_control_done {
	struct luo_agent_header hdr; /* op LUO_CONTROL_OP_DONE */
	int32_t pid;
	uint32_t reserved[2];
	uint64_t lu_number;
	uint64_t freeze_ns;  /* struct luo_timings */
	uint64_t serialize_ns;
	uint64_t exec_ns;
	uint64_t restore_ns;
	uint64_t ready_ns;
	uint64_t blackout_ns;
};
#define LUO_CONTROL_DONE_SIZE_VER0 80u

#endif /* LUO_AGENT_H */
