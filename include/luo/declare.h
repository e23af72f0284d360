/* SPDX-License-Identifier: MIT */
#ifndef LUO_DECLARE_H
#define LUO_DECLARE_H

/**
 * DOC: libluo's declaration macros (include them through <luo/luo.h>)
 *
 * Macros used at file scope that record what a binary carries over in its
 * .note.luo section (abi.h's records), read by luoctl and by the old
 * image's luo_update() without running the binary: components
 * (LUO_COMPONENT(), which also registers them), file handlers
 * (LUO_FILE_HANDLER_DECLARE()), payload layouts (LUO_LAYOUT(),
 * LUO_FIELD()) and the types luo-describe describes (LUO_PAYLOAD_TYPE(),
 * LUO_ARENA_TYPE(), LUO_HANDLER_DATA_TYPE()). Names ending in _ are the
 * macros' own.
 */

#include "luo/abi.h"
#include "luo/handler.h"
#include "luo/service.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__has_attribute)
#if __has_attribute(retain)
#define LUO_NOTE_RETAIN_ __attribute__((retain))
#endif
#endif
#ifndef LUO_NOTE_RETAIN_
#define LUO_NOTE_RETAIN_
#endif
#define LUO_NOTE_ATTR_ __attribute__((section(LUO_ABI_NOTE_SECTION), used, aligned(4))) LUO_NOTE_RETAIN_
#define LUO_NOTE_HEADER_(desc_type, note_type) \
	{ sizeof(LUO_ABI_NOTE_OWNER), sizeof(desc_type), (note_type), LUO_ABI_NOTE_OWNER }

#define LUO_RANGES_VALID_(rmin, rmax, wmin, wmax) \
	((rmin) >= 1 && (rmin) <= (rmax) && (rmin) <= (wmin) && (wmin) <= (wmax) && (wmax) <= (rmax))

/* The checks and the .note.luo record both component declarations share. */
#define LUO_COMPONENT_NOTE_(ident, cname, rmin, rmax, wmin, wmax, cflags)                                \
	_Static_assert(sizeof(cname) >= 2 && sizeof(cname) <= LUO_ABI_NOTE_NAME_SIZE,                      \
		       "LUO_COMPONENT: the name must be a string literal of 1..47 bytes");                  \
	_Static_assert(LUO_RANGES_VALID_(rmin, rmax, wmin, wmax),                                         \
		       "LUO_COMPONENT: need 1 <= read_min <= write_min <= write_max <= read_max");          \
	_Static_assert(((cflags) & ~LUO_COMPONENT_OPTIONAL) == 0, "LUO_COMPONENT: unknown flags");         \
	static const struct {                                                                             \
		struct luo_abi_note_header h;                                                             \
		struct luo_abi_note_component d;                                                          \
	} ident##_luo_note LUO_NOTE_ATTR_ = {                                                             \
		LUO_NOTE_HEADER_(struct luo_abi_note_component, LUO_ABI_NOTE_COMPONENT),                   \
		{ LUO_ABI_KIND_COMPONENT, (cflags), (rmin), (rmax), (wmin), (wmax), cname },               \
	}

/**
 * LUO_COMPONENT() - declare, record and register a component.
 * @ident: a C identifier for the objects the macro defines (static).
 * @cname: the name, a string literal of 1..LUO_COMPONENT_NAME_MAX bytes.
 * @rmin, @rmax, @wmin, @wmax: readable and writable versions (constants).
 * @cflags: 0 or LUO_COMPONENT_OPTIONAL.
 * @save_fn, @load_fn: the callbacks.
 *
 * Use it at file scope, followed by a semicolon. Names too long, bad
 * ranges and unknown flags fail to compile; a name with a byte outside
 * 0x21..0x7e makes luo_open() fail. The macros are C (C11 with GNU
 * extensions), not C++. In a library that is dlclose()d, the component
 * is unregistered (unless a struct luo is open: then it is only ignored).
 * Components of libraries the program dlopen()s, or that are not a direct
 * DT_NEEDED dependency, are missing from the manifest an old image reads:
 * negotiation refuses a mandatory one and drops an optional one.
 */
#define LUO_COMPONENT(ident, cname, rmin, rmax, wmin, wmax, cflags, save_fn, load_fn)                    \
	LUO_COMPONENT_NOTE_(ident, cname, rmin, rmax, wmin, wmax, cflags);                                \
	static const struct luo_component ident;                                                          \
	__attribute__((constructor)) static void ident##_luo_register(void)                               \
	{                                                                                                 \
		(void)luo_component_register(&ident);                                                     \
	}                                                                                                 \
	__attribute__((destructor)) static void ident##_luo_unregister(void)                              \
	{                                                                                                 \
		luo_component_unregister(&ident);                                                         \
	}                                                                                                 \
	static const struct luo_component ident = { cname, (rmin), (rmax), (wmin), (wmax), (cflags),     \
						    (save_fn), (load_fn) }

/**
 * LUO_COMPONENT_WITH_DATA() - LUO_COMPONENT() whose callbacks get a user pointer.
 * @save_fn: int (*)(uint32_t version, struct luo_payload *out, void *userdata)
 * @load_fn: int (*)(uint32_t version, const void *data, size_t len, void *userdata)
 * @udata:   the pointer passed to both, a constant (the address of a static object).
 *
 * The same note and the same rules as LUO_COMPONENT().
 */
#define LUO_COMPONENT_WITH_DATA(ident, cname, rmin, rmax, wmin, wmax, cflags, save_fn, load_fn, udata)  \
	LUO_COMPONENT_NOTE_(ident, cname, rmin, rmax, wmin, wmax, cflags);                                \
	static const struct luo_component_with_data ident;                                                \
	__attribute__((constructor)) static void ident##_luo_register(void)                               \
	{                                                                                                 \
		(void)luo_component_register_with_data(&ident);                                           \
	}                                                                                                 \
	__attribute__((destructor)) static void ident##_luo_unregister(void)                              \
	{                                                                                                 \
		luo_component_unregister(&ident.base);                                                    \
	}                                                                                                 \
	static const struct luo_component_with_data ident = {                                             \
		{ cname, (rmin), (rmax), (wmin), (wmax), (cflags), NULL, NULL }, (save_fn), (load_fn), (udata) \
	}

/**
 * LUO_FILE_HANDLER_DECLARE() - define a file handler and record it in the
 * manifest, so that an old image's negotiation finds it in this binary.
 * Register it with luo_file_handler_register() as before.
 * @ident: the name of the const struct luo_file_handler defined.
 * @hname: a string literal of 1..LUO_HANDLER_NAME_MAX bytes; @hversion: >= 1.
 */
#define LUO_FILE_HANDLER_DECLARE(ident, hname, hversion, hdata_size, hops)                             \
	_Static_assert(sizeof(hname) >= 2 && sizeof(hname) <= LUO_HANDLER_NAME_MAX + 1,                   \
		       "LUO_FILE_HANDLER_DECLARE: the name must be a string literal of 1..31 bytes");       \
	_Static_assert((hversion) >= 1, "LUO_FILE_HANDLER_DECLARE: version 0");                            \
	static const struct {                                                                             \
		struct luo_abi_note_header h;                                                             \
		struct luo_abi_note_component d;                                                          \
	} ident##_luo_note LUO_NOTE_ATTR_ = {                                                             \
		LUO_NOTE_HEADER_(struct luo_abi_note_component, LUO_ABI_NOTE_COMPONENT),                   \
		{ LUO_ABI_KIND_HANDLER, 0, (hversion), (hversion), (hversion), (hversion), hname },        \
	};                                                                                                \
	const struct luo_file_handler ident = { hname, (hversion), (hdata_size), (hops) }

/**
 * LUO_LAYOUT() - record the layout of a struct a component writes.
 * @ident: a C identifier for the note object.
 * @cname: the component's name (string literal); @cversion: the version
 *         whose payload is this struct.
 * @stype: the struct type; then one LUO_FIELD() per member, at most
 *         LUO_ABI_LAYOUT_FIELDS_MAX.
 *
 * Put it next to the struct. luoctl manifest prints a fingerprint per
 * (component, version) computed from the struct's size and each field's
 * name, declared type, offset and size; a test pins them (see the README,
 * "ABI guard"), and luo_update() refuses to use a version whose layouts
 * differ between the two images.
 */
#define LUO_LAYOUT(ident, cname, cversion, stype, ...)                                                 \
	_Static_assert(sizeof(cname) >= 2 && sizeof(cname) <= LUO_ABI_NOTE_NAME_SIZE,                      \
		       "LUO_LAYOUT: the name must be a string literal of 1..47 bytes");                     \
	_Static_assert((cversion) >= 1, "LUO_LAYOUT: version 0");                                          \
	_Static_assert(sizeof((struct luo_abi_note_field[]){ __VA_ARGS__ }) <=                             \
			       sizeof(((struct luo_abi_note_layout *)0)->fields),                                  \
		       "LUO_LAYOUT: more than LUO_ABI_LAYOUT_FIELDS_MAX fields");                          \
	static const struct {                                                                             \
		struct luo_abi_note_header h;                                                             \
		struct luo_abi_note_layout d;                                                             \
	} ident LUO_NOTE_ATTR_ = {                                                                        \
		LUO_NOTE_HEADER_(struct luo_abi_note_layout, LUO_ABI_NOTE_LAYOUT),                         \
		{ cname, (cversion), sizeof(stype), { __VA_ARGS__ } },                                     \
	}

/*
 * Types that cross an update, proven by the compiler.
 *
 * Name, once, each type whose bytes cross an update: the payload a
 * component writes and reads at each version, the root of an arena a
 * component version owns (everything reachable from it through pointers,
 * arrays, nested structs and unions is part of it), a file handler's data.
 * The post-link step luo-describe(1) reads the binary's debug information
 * (DWARF, so build with -g), writes a canonical description of each into
 * the section .note.luo.types (strip keeps it) and its digest into the
 * note these macros record; it fails when a version a component can read
 * or write has no payload type, or a binary has no debug information.
 *
 * Before the switch, a version is usable only if both images describe
 * its types identically; a version described on one side only is a
 * mismatch; a binary luo-describe never ran on is "unproven", and every
 * verdict says so. A typedef of the program's own headers is part of the
 * type (its name says the unit: change the unit, change the typedef); one
 * of the system's headers (uint32_t) is resolved. See the README,
 * "Versioned components".
 *
 *   struct counter_v2 { uint64_t value; counter_msec_t last_ms; };
 *   LUO_PAYLOAD_TYPE(counter_v2_type, "counter", 2, struct counter_v2);
 *
 * LUO_PAYLOAD_TYPE() - @ctype is the payload of component @cname at
 *                      version @cversion.
 * LUO_ARENA_TYPE()   - @ctype is the root of the arena that component
 *                      @cname owns at version @cversion.
 * LUO_HANDLER_DATA_TYPE() - @ctype is the data of handler @cname at
 *                      version @cversion (its data_size must be sizeof).
 * @ident: a C identifier, unique in the program, at most 46 bytes.
 */
#define LUO_TYPE_NOTE_(ident, cname, cversion, crole, ctype)                                            \
	_Static_assert(sizeof(cname) >= 2 && sizeof(cname) <= LUO_ABI_NOTE_NAME_SIZE,                      \
		       "LUO_*_TYPE: the name must be a string literal of 1..47 bytes");                     \
	_Static_assert((cversion) >= 1, "LUO_*_TYPE: version 0");                                          \
	_Static_assert(sizeof(#ident "_luo_type_anchor") <= LUO_ABI_NOTE_ANCHOR_SIZE,                      \
		       "LUO_*_TYPE: the identifier is too long");                                           \
	__attribute__((used)) static const ctype *const ident##_luo_type_anchor = 0;                       \
	static const struct {                                                                             \
		struct luo_abi_note_header h;                                                             \
		struct luo_abi_note_type d;                                                               \
	} ident##_luo_type_note LUO_NOTE_ATTR_ = {                                                        \
		LUO_NOTE_HEADER_(struct luo_abi_note_type, LUO_ABI_NOTE_TYPE),                             \
		{ cname, (cversion), (crole), (uint32_t)sizeof(ctype), (uint32_t)_Alignof(ctype), 0,      \
		  #ident "_luo_type_anchor" },                                                            \
	}
#define LUO_PAYLOAD_TYPE(ident, cname, cversion, ctype) \
	LUO_TYPE_NOTE_(ident, cname, cversion, LUO_ABI_TYPE_PAYLOAD, ctype)
#define LUO_ARENA_TYPE(ident, cname, cversion, ctype) \
	LUO_TYPE_NOTE_(ident, cname, cversion, LUO_ABI_TYPE_ARENA, ctype)
#define LUO_HANDLER_DATA_TYPE(ident, cname, cversion, ctype) \
	LUO_TYPE_NOTE_(ident, cname, cversion, LUO_ABI_TYPE_HANDLER, ctype)

/*
 * LUO_FIELD() - one member for LUO_LAYOUT(): fails to compile if @member
 * of @stype is not of type @mtype, so the recorded type stays true.
 */
#define LUO_FIELD(stype, member, mtype)                                                                \
	{ (uint32_t)(__builtin_offsetof(stype, member) +                                                  \
		     0 * sizeof(struct {                                                                  \
			     _Static_assert(__builtin_types_compatible_p(__typeof__(((stype *)0)->member),  \
									 mtype),                            \
					    "LUO_FIELD: " #member " is not of type " #mtype);               \
			     _Static_assert(sizeof(#member) <= LUO_ABI_NOTE_FIELD_NAME_SIZE &&              \
						    sizeof(#mtype) <= LUO_ABI_NOTE_FIELD_NAME_SIZE,         \
					    "LUO_FIELD: member and type names are 1..31 bytes");            \
			     int luo_unused_;                                                             \
		     })),                                                                                 \
	  (uint32_t)sizeof(((stype *)0)->member), #member, #mtype }


#ifdef __cplusplus
}
#endif

#endif /* LUO_DECLARE_H */
