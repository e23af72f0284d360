/* SPDX-License-Identifier: MIT */
/*
 * DOC: the work every transport shares (handover.h)
 *
 * Incoming, whatever brought the blob (an exec, a rollback, the agent): the
 * sealed memfd mapped read-only, each recorded file adopted after its
 * handler's check, the components loaded. Outgoing: the components' saves
 * with their errors clamped to errnos, the blob sealed in a memfd, and the
 * environment of the exec. One struct luo at a time; the callers hold its
 * lock where it says so.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "handover.h"

#define HANDOVER_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
#define BLOB_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* ------------------------------------------------------------------------ */
/* Incoming                                                                  */

/*
 * Check that @fd is a memfd sealed against write, shrink and grow, of
 * 1..LUO_ABI_BLOB_MAX bytes, and map it read-only. Nothing else is done to
 * @fd. Also arena.c's reservation before main().
 */
int luo_handover_map(int fd, void **ret_addr, size_t *ret_len, char *reason, size_t rlen)
{
	struct stat st;
	void *addr;
	int seals;

	if (fcntl(fd, F_GETFD) < 0) {
		luo_reasonf(reason, rlen, "%s names fd %d, which is not open", LUO_HANDOVER_FD_ENV, fd);
		return -EBADF;
	}
	/* Seals first: once sealed, the size read next cannot change. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & HANDOVER_SEALS) != HANDOVER_SEALS) {
		luo_reasonf(reason, rlen, "handover fd %d is not a memfd sealed against write, shrink and grow", fd);
		return -EBADMSG;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > LUO_ABI_BLOB_MAX) {
		luo_reasonf(reason, rlen, "handover memfd %d is not of 1..%u bytes", fd, LUO_ABI_BLOB_MAX);
		return -EBADMSG;
	}
	addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (addr == MAP_FAILED) {
		luo_reasonf(reason, rlen, "cannot map the handover memfd: %s", strerror(errno));
		return -EBADMSG;
	}
	*ret_addr = addr;
	*ret_len = (size_t)st.st_size;
	return 0;
}

/*
 * Adopt one recorded file, whose fd is @fd: the recorded number for an exec
 * handover, a received one for the agent (agent-client.c). Returns 0 or the
 * reason it cannot be, written to @reason. A file that fails its handler's
 * check is added with fd -1: @fd is left to the caller.
 */
int luo_adopt_file(struct luo_session *s, const struct luo_blob_file *bf, int fd, int handover_fd, char *reason,
		   size_t rlen)
{
	const struct luo_file_handler *h = luo_handler_by_name(bf->handler);
	struct luo_file *f;
	int r;

	LUO_FAULT_POINT("restore");
	if (!h) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: no handler '%s' in this build", s->name,
			    (unsigned long long)bf->token, bf->handler);
		return -ENOENT;
	}
	if (bf->handler_version != h->version) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: handler '%s' version %u; this build reads %u", s->name,
			    (unsigned long long)bf->token, h->name, bf->handler_version, h->version);
		return -EPROTO;
	}
	if (bf->data_len != h->data_size) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: %u bytes of '%s' data, expected %u", s->name,
			    (unsigned long long)bf->token, bf->data_len, h->name, h->data_size);
		return -EBADMSG;
	}
	if (fd == handover_fd) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: fd %d is the handover memfd itself", s->name,
			    (unsigned long long)bf->token, fd);
		return -EBADMSG;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: fd %d is not open", s->name, (unsigned long long)bf->token,
			    fd);
		return -EBADF;
	}
	r = luo_session_add_incoming_file(s, h, bf->token, fd, bf->data);
	if (r < 0)
		return r;
	f = s->files[s->n_files - 1];
	if (bf->name) /* checked by the reader */
		snprintf(f->name, sizeof(f->name), "%s", bf->name);
	r = luo_op_retrieve(f);
	if (r < 0) {
		f->fd = -1; /* not known to be ours: leave it alone */
		if (r == -ENOMEM || r == -EBADMSG) {
			luo_reasonf(reason, rlen,
				    "session '%s', token %llu: malformed '%s' record", s->name,
				    (unsigned long long)bf->token, h->name);
			return r;
		}
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: fd %d is not the recorded '%s' object", s->name,
			    (unsigned long long)bf->token, fd, h->name);
		return -EBADFD;
	}
	f->validated = true;
	return luo_set_cloexec(f->fd, true);
}

/*
 * load() gets its payload aligned for any type (max_align_t): the blob
 * aligns properties to 4 bytes only, so a payload that is not is copied.
 */
static int load_aligned(const struct luo_component *c, const struct luo_blob_component *bc)
{
	_cleanup_free_ void *copy = NULL;
	const void *data = bc->data;

	if ((uintptr_t)data % _Alignof(max_align_t) != 0 && bc->data_len > 0) {
		copy = aligned_alloc(_Alignof(max_align_t),
				     (bc->data_len + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, bc->data_len);
		data = copy;
	}
	return luo_component_load(c, bc->version, data, bc->data_len);
}

/*
 * Load every component the blob carries. Returns 0 or the refusal, written
 * to @reason. Exec handover, rollback and the agent's retrieve.
 */
int luo_load_components(struct luo *luo, const struct luo_blob *b, char *reason, size_t rlen)
{
	const struct luo_component *comps[LUO_COMPONENTS_MAX];
	size_t n = luo_components_list(comps, ARRAY_SIZE(comps));

	for (size_t k = 0; k < b->n_components; k++) {
		const struct luo_blob_component *bc = &b->components[k];
		const struct luo_component *c = NULL;
		size_t i;
		int r;

		for (i = 0; i < n && !c; i++)
			if (comps[i] && strcmp(comps[i]->name, bc->name) == 0)
				c = comps[i];
		if (!c)
			continue; /* negotiation saw it in our manifest: a stale one */
		i--;
		if (bc->dropped) {
			luo->component_status[i] = -ESTALE;
			continue;
		}
		if (bc->version < c->read_min || bc->version > c->read_max) {
			if (c->flags & LUO_COMPONENT_OPTIONAL) {
				luo->component_status[i] = -EIO;
				continue;
			}
			luo_reasonf(reason, rlen,
				    "component '%s': version %u; this build reads %u..%u", c->name, bc->version,
				    c->read_min, c->read_max);
			return -EPROTO;
		}
		if (bc->has_fields) {
			char why[LUO_REASON_MAX] = "";
			const struct luo_component_state *st = luo_fields_of(c);

			/* Declared state, read by name (format/fields.c); the reason names the field. */
			r = st ? luo_fields_load_node(st, bc->version, bc->fdt, bc->fields_node, why, sizeof(why))
			       : -EPROTO;
			if (r != 0 && !(c->flags & LUO_COMPONENT_OPTIONAL)) {
				luo_reasonf(reason, rlen, "component '%s': version %u: %s", c->name, bc->version,
					    st ? why : "sent as fields; this build reads it with load()");
				return r == -ENOMEM ? r : -EIO;
			}
		} else {
			r = load_aligned(c, bc);
		}
		if (r != 0) {
			if (c->flags & LUO_COMPONENT_OPTIONAL) {
				luo->component_status[i] = -EIO;
				continue;
			}
			luo_reasonf(reason, rlen,
				    "component '%s': load of version %u failed (%d)", c->name, bc->version, r);
			return -EIO;
		}
		luo->component_status[i] = 0;
		luo->component_version[i] = bc->version;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Outgoing                                                                  */

/* Each component writes its payload at its version (handover.h). Lock held. */
int luo_components_save(struct luo_component_out *outs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r;

		if (outs[i].dropped)
			continue;
		if (outs[i].fields) {
			/* Declared state: a snapshot of the struct, written as properties (blob-write.c). */
			r = luo_fields_snapshot(outs[i].fields, &outs[i].payload);
			if (r < 0)
				return r;
			continue;
		}
		r = luo_component_save(outs[i].component, outs[i].version, &outs[i].payload);
		if (r > 0 || r < -4095)
			r = -EINVAL; /* not an errno: do not pass it on as one */
		if (r == 0)
			r = outs[i].payload.error; /* a failed write the save ignored */
		/*
		 * A payload is one value of its declared type or an array of
		 * them: another length is another struct than the one the
		 * compiler described, and the new image would misread it.
		 */
		if (r == 0 && outs[i].type_size && outs[i].payload.len % outs[i].type_size != 0)
			r = -EPROTO;
		if (r < 0)
			return r;
	}
	return 0;
}

/* A memfd holding @buf, sealed as a handover blob is (also a deposit's, agent-client.c). */
int luo_blob_to_memfd(const char *name, const void *buf, size_t len)
{
	_cleanup_close_ int fd = -1;
	size_t off = 0;

	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	LUO_FAULT_POINT(strcmp(name, "luo-deposit") == 0 ? "deposit-unsealed" : "serialize-unsealed");
	if (fcntl(fd, F_ADD_SEALS, BLOB_SEALS) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* The variables libluo sets for the next image (agent.h, abi.h). */
static const char *const our_env[] = { LUO_HANDOVER_FD_ENV, LUO_ABI_EXEC_NS_ENV, LUO_ABI_ROLLBACK_ENV,
				       LUO_ABI_REAPER_ENV, LUO_ABI_CONTROL_FD_ENV, LUO_ABI_CONTROL_LISTEN_FD_ENV };

bool luo_env_is_ours(const char *entry)
{
	for (size_t i = 0; i < ARRAY_SIZE(our_env); i++) {
		size_t len = strlen(our_env[i]);

		if (strncmp(entry, our_env[i], len) == 0 && entry[len] == '=')
			return true;
	}
	return false;
}

/* A less privileged user wrote them: no child of this image reads them. */
void luo_env_scrub(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(our_env); i++)
		unsetenv(our_env[i]);
}

/* Copy @src without our variables, then @ours, with room for the transports' entries. */
int luo_exec_env_build(char *const src[], char *const ours[], size_t n_ours, char ***ret_envp)
{
	size_t n = 0, k = 0;
	char **envp;

	while (src[n])
		n++;
	envp = calloc(n + n_ours + LUO_EXEC_ENV_TRANSPORT_SLOTS + 1, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!luo_env_is_ours(src[i]))
			envp[k++] = src[i];
	for (size_t i = 0; i < n_ours; i++)
		envp[k++] = ours[i];
	*ret_envp = envp;
	return 0;
}
