/* SPDX-License-Identifier: MIT */
/*
 * DOC: the addresses of libluo's sockets (agent.h)
 *
 * The agent's socket is a path: $LUO_AGENT_SOCKET when it is set and not
 * empty, else LUO_AGENT_SOCKET_SYSTEM for root, else
 * $XDG_RUNTIME_DIR/LUO_AGENT_SOCKET_USER when XDG_RUNTIME_DIR is an absolute
 * path. The variables are read through luo_getenv() (none in a
 * secure-execution image). A service's control socket is the abstract
 * address "\0" LUO_CONTROL_ADDRESS_PREFIX "<pid>": per network namespace,
 * nothing on disk; "<pid>.<nonce>" when another process holds that one. Written once here for libluo; luod and luoctl have the
 * same rules (agent.h).
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "luo/agent.h"

int luo_agent_socket_path(uid_t euid, char *buf, size_t len)
{
	const char *env = luo_getenv(LUO_AGENT_SOCKET_ENV), *xdg;
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (euid == 0)
		n = snprintf(buf, len, "%s", LUO_AGENT_SOCKET_SYSTEM);
	else if ((xdg = luo_getenv("XDG_RUNTIME_DIR")) && *xdg == '/')
		n = snprintf(buf, len, "%s/%s", xdg, LUO_AGENT_SOCKET_USER);
	else
		return -ENOENT;
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int luo_agent_socket_address(uid_t euid, struct sockaddr_un *sa, socklen_t *ret_len)
{
	int r;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	r = luo_agent_socket_path(euid, sa->sun_path, sizeof(sa->sun_path));
	if (r < 0)
		return r;
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1);
	return 0;
}

int luo_control_socket_address_nonce(pid_t pid, uint64_t nonce, struct sockaddr_un *sa, socklen_t *ret_len)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "%s%d.%016llx", LUO_CONTROL_ADDRESS_PREFIX, (int)pid,
		     (unsigned long long)nonce);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path) - 1)
		return -ENAMETOOLONG;
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	return 0;
}

int luo_control_socket_address(pid_t pid, struct sockaddr_un *sa, socklen_t *ret_len)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "%s%d", LUO_CONTROL_ADDRESS_PREFIX, (int)pid);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path) - 1)
		return -ENAMETOOLONG;
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	return 0;
}
