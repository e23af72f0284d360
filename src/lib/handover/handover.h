/* SPDX-License-Identifier: MIT */
#ifndef LUO_HANDOVER_H
#define LUO_HANDOVER_H

/*
 * DOC: the handover layer, the work every transport shares
 *
 * Files: handover.c. A blob comes in a sealed memfd (luo_handover_map()),
 * its files are adopted one by one (luo_adopt_file()) and its components
 * loaded (luo_load_components()), whether it came by exec, by rollback or
 * from the agent; a blob goes out in a sealed memfd (luo_blob_to_memfd())
 * after the components saved their payloads (luo_components_save()); an
 * exec's environment is the caller's without libluo's variables, then ours
 * (luo_exec_env_build()).
 *
 * May call: base, model, format. Called by transport, arena and core.
 */

#include <stdbool.h>
#include <stddef.h>

#include "format.h"

/*
 * Check that @fd is a memfd sealed against write, shrink and grow, of
 * 1..LUO_ABI_BLOB_MAX bytes, and map it read-only. Nothing else is done to @fd.
 */
int luo_handover_map(int fd, void **ret_addr, size_t *ret_len, char *reason, size_t reason_len);
/* A memfd named @name holding @buf, sealed write/shrink/grow/seal; an fd or -errno. */
int luo_blob_to_memfd(const char *name, const void *buf, size_t len);
/*
 * Adopt one recorded file, whose fd is @fd: the recorded number for an exec
 * handover, a received one for the agent. 0 or the reason it cannot be.
 */
int luo_adopt_file(struct luo_session *s, const struct luo_blob_file *bf, int fd, int handover_fd, char *reason,
		   size_t reason_len);
/* Load every component the blob carries: 0 or the refusal, with its reason. */
int luo_load_components(struct luo *luo, const struct luo_blob *b, char *reason, size_t reason_len);
/*
 * Each of @outs (not dropped) saves its payload at its version; a save that
 * returns no errno is -EINVAL, a failed write its error, a payload that is
 * not a whole number of its declared type -EPROTO. Lock held.
 */
int luo_components_save(struct luo_component_out *outs, size_t n);

/* An environment entry libluo sets for the next image ("NAME=..."). */
bool luo_env_is_ours(const char *entry);
/* Remove every one of them from this process's environment. */
void luo_env_scrub(void);
/* Entries the transports add to an exec's environment (transport.h's exec_env). */
#define LUO_EXEC_ENV_TRANSPORT_SLOTS 2
/*
 * @src without libluo's variables, then the @n_ours entries of @ours (the
 * pointers, filled in later by the caller if it likes), then
 * LUO_EXEC_ENV_TRANSPORT_SLOTS free slots and the final NULL. 0 or -ENOMEM.
 */
int luo_exec_env_build(char *const src[], char *const ours[], size_t n_ours, char ***ret_envp);

#endif /* LUO_HANDOVER_H */
