/* SPDX-License-Identifier: MIT */
#ifndef LUO_BASE_H
#define LUO_BASE_H

/*
 * DOC: the base layer, libluo's internal helpers
 *
 * Files: util.c (time, numbers, the environment, reasons, names, the
 * callback mark), peer.c (who is at the other end of a unix socket), self.c
 * (this image's path, build-id and argv), elf-note.c (the ELF note walk),
 * sockaddr.c (the agent's and the control socket's addresses), wire.c and
 * wire.h (agent.h's messages, shared with luod and luoctl), fault.c (fault
 * points, libluo-faults only), cleanup.h (scope-exit helpers).
 *
 * May call: libc, nothing of libluo above it. Every other layer may call it.
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "luo/abi.h"
#include "luo/luo.h"

#define LUO_REASON_MAX 256

/*
 * Fault points, for the crash matrix only (tests/crash-matrix.md): in
 * libluo-faults, built with -DLUO_FAULT_INJECTION, LUO_FAULT_POINT("name")
 * kills the process with SIGKILL when LUO_TEST_CRASH_AT names that point
 * (fault.c); in every other build it is nothing and @name is not evaluated.
 */
#ifdef LUO_FAULT_INJECTION
void luo_fault_point(const char *name);
#define LUO_FAULT_POINT(name) luo_fault_point(name)
#else
#define LUO_FAULT_POINT(name) do { } while (0)
#endif
/* libluo's own fd references are never 0..2 (stdio). */
#define LUO_FD_MIN 3

/* util.c */
uint64_t luo_now_ns(void);
int luo_parse_u64(const char *s, uint64_t max, uint64_t *ret);
int luo_set_cloexec(int fd, bool on);
/* A component's or handler's callback runs on this thread: entry points answer -EDEADLK. */
void luo_callback_enter(void);
void luo_callback_leave(void);
bool luo_in_callback(void);
/* AT_SECURE: the environment is not ours to trust (util.c's DOC). */
bool luo_secure_exec(void);
/* getenv(), or NULL for every name in a secure-execution image. */
const char *luo_getenv(const char *name);
/* 1..@max bytes (a session's, handler's or component's name). */
bool luo_name_valid(const char *name, size_t max);
/* A preserved fd's name: 1..LUO_FILE_NAME_MAX printable bytes, no space. */
bool luo_file_name_valid(const char *name);
void luo_reasonf(char *reason, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Control bytes (newlines, tabs...) made spaces: a reason on one line, for a message or a variable. */
void luo_reason_one_line(char *s);
/* "N:rest": N, decimal, 0..@max (luo_parse_u64()), and where rest starts. -EINVAL no ':' or a bad N. */
int luo_parse_u64_colon(const char *s, uint64_t max, uint64_t *ret, const char **ret_rest);

/* A mapping unmapped at scope exit: _cleanup_(luo_unmapp) struct luo_mapping m = { 0 }. */
struct luo_mapping {
	void *addr;
	size_t len;
};

static inline void luo_unmapp(struct luo_mapping *m)
{
	if (m->addr)
		munmap(m->addr, m->len);
}

/* peer.c: who is at the other end of a unix socket (its DOC) */
/* The pid @pidfd's process has now; -ESRCH it has exited. */
int luo_pidfd_pid(int pidfd);
/* A pidfd for @sock's peer, whose SO_PEERCRED pid is @pid; *@ret_exact: by SO_PEERPIDFD. */
int luo_peer_pidfd(int sock, pid_t pid, bool *ret_exact);
/* 0 if the process @pidfd (pid @pid) could ptrace this one; -EPERM, -ESRCH, -errno. */
int luo_peer_may_ptrace(int pidfd, pid_t pid);

/*
 * sockaddr.c: the agent's socket path for a process of @euid (0, -ENOENT
 * no rule applies, -ENAMETOOLONG longer than @len - 1), the same as a
 * sockaddr_un with its length, and the control socket's abstract address
 * of process @pid (0 or -ENAMETOOLONG); with a @nonce, the address taken
 * when someone else holds the first one (agent.h).
 */
int luo_agent_socket_path(uid_t euid, char *buf, size_t len);
int luo_agent_socket_address(uid_t euid, struct sockaddr_un *sa, socklen_t *ret_len);
int luo_control_socket_address(pid_t pid, struct sockaddr_un *sa, socklen_t *ret_len);
int luo_control_socket_address_nonce(pid_t pid, uint64_t nonce, struct sockaddr_un *sa, socklen_t *ret_len);

/* self.c: this image */
int luo_self_path(char *buf, size_t len);
int luo_self_build_id(uint8_t *buf, size_t len, size_t *ret_len);
int luo_self_argv(char **ret_buf, char ***ret_argv);

/* elf-note.c: one ELF note in a run of notes; owner and desc point into the run. */
struct luo_note {
	uint32_t type;
	const char *owner; /* namesz bytes */
	uint32_t namesz;
	const void *desc;  /* descsz bytes, unaligned */
	uint32_t descsz;
};
/* The note at *@off, which moves past it: 1, 0 at the end, -EBADMSG malformed. */
int luo_note_next(const uint8_t *buf, size_t len, size_t align, size_t *off, struct luo_note *ret);
bool luo_note_is_owner(const struct luo_note *n, const char *owner);

#endif /* LUO_BASE_H */
