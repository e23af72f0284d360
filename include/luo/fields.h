/* SPDX-License-Identifier: MIT */
#ifndef LUO_FIELDS_H
#define LUO_FIELDS_H

/*
 * Declared component state: fields described once (included by luo.h).
 *
 * Instead of a save() and a load() per version, a component may describe
 * its state as fields of one struct, each with the versions that carry it,
 * a default and flags. libluo writes each field as a property of the
 * component's node in the handover blob and reads it back by name into the
 * new image's struct:
 *
 *   - a field the reader declares and the blob carries crosses, its
 *     integer widened, or narrowed only when the value fits (else the load
 *     is refused, naming the field);
 *   - a field the blob lacks takes its default, or refuses the load when
 *     the reader marks it LUO_STATE_REQUIRED (and the version carries it);
 *   - a field the reader does not know is dropped, or refuses the load
 *     when the writer marked it LUO_STATE_MUST_UNDERSTAND.
 *
 * So a field added without a version bump crosses both ways: the newer
 * image defaults it when the older one sent none, the older drops it. The
 * list also goes into the manifest (abi.h, "Declared fields"): before the
 * switch, luo_update() and luoctl check name each field that crosses, is
 * defaulted or is lost, and refuse a required field the old image does not
 * write or a must-understand one the new image does not read.
 *
 *   static struct counter_state { uint64_t count, updates; char note[16]; } counter;
 *   LUO_COMPONENT_STATE(counter_c, "counter", 1, 2, 1, 2, 0, struct counter_state, &counter,
 *           LUO_STATE_VALUE(struct counter_state, count, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
 *           LUO_STATE_VALUE(struct counter_state, updates, 2, LUO_STATE_LATEST, 0, 0),
 *           LUO_STATE_STRING(struct counter_state, note, 2, LUO_STATE_LATEST, 0));
 *
 * To an image that declares no fields for the component (one built before
 * them), the state goes as the "struct image" of the version: the fields
 * that version carries, in declaration order, naturally aligned -- the
 * struct such an image declared with LUO_PAYLOAD_TYPE(). Keep those type
 * declarations while a release that reads them is supported.
 *
 * The load happens in luo_open() into a copy of the struct, committed
 * only when every field was read: a refused load leaves the struct as it
 * was. Save and load take no lock of the program's: the struct must not
 * change while luo_update() runs (as for a save() callback). A component
 * that fields cannot describe keeps LUO_COMPONENT() with save()/load().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luo/abi.h"

#define LUO_STATE_REQUIRED LUO_ABI_FIELD_REQUIRED
#define LUO_STATE_MUST_UNDERSTAND LUO_ABI_FIELD_MUST_UNDERSTAND
/* An integer field that holds the version the state is written at (libluo sets and checks it). */
#define LUO_STATE_VERSION LUO_ABI_FIELD_VERSION
#define LUO_STATE_LATEST LUO_ABI_FIELD_LATEST

struct luo_component_state {
	const char *name;
	uint32_t read_min, read_max;
	uint32_t write_min, write_max;
	uint32_t flags; /* 0 or LUO_COMPONENT_OPTIONAL */
	const struct luo_abi_note_fields *fields;
	const struct luo_abi_note_fielddecl *decls; /* fields->n_fields of them */
	void *instance;                             /* the live struct, fields->struct_size bytes */
};

/**
 * luo_component_register_state() - what LUO_COMPONENT_STATE() calls at start-up.
 *
 * Return: as luo_component_register(); -EINVAL also when the field list
 * is malformed (names, types, sizes, offsets, overlaps, versions, flags,
 * a default that does not fit). An error is remembered for luo_open().
 */
LUO_EXPORT int luo_component_register_state(const struct luo_component_state *state);

/** luo_component_unregister_state() - what LUO_COMPONENT_STATE() calls at unload. */
LUO_EXPORT void luo_component_unregister_state(const struct luo_component_state *state);

/* The type code of an integer or bool member; 0 for anything else. */
#define LUO_STATE_TYPE_OF_(x)                                                                           \
	_Generic((x),                                                                                     \
		_Bool: LUO_ABI_FIELD_BOOL,                                                                \
		char: ((char)-1 < 0 ? LUO_ABI_FIELD_INT : LUO_ABI_FIELD_UINT),                            \
		signed char: LUO_ABI_FIELD_INT, short: LUO_ABI_FIELD_INT, int: LUO_ABI_FIELD_INT,        \
		long: LUO_ABI_FIELD_INT, long long: LUO_ABI_FIELD_INT,                                    \
		unsigned char: LUO_ABI_FIELD_UINT, unsigned short: LUO_ABI_FIELD_UINT,                    \
		unsigned int: LUO_ABI_FIELD_UINT, unsigned long: LUO_ABI_FIELD_UINT,                      \
		unsigned long long: LUO_ABI_FIELD_UINT, default: 0u)

#define LUO_STATE_DECL_(stype, member, ftype, ffrom, fto, fflags, fdefault, check)                        \
	{ #member, (ftype), (uint32_t)sizeof(((stype *)0)->member),                                       \
	  (uint32_t)(__builtin_offsetof(stype, member) + 0 * sizeof(struct {                              \
			     _Static_assert(check, "LUO_STATE_*: " #member " has the wrong type");          \
			     _Static_assert(sizeof(#member) <= LUO_ABI_NOTE_FIELD_NAME_SIZE,                \
					    "LUO_STATE_*: " #member ": names are 1..31 bytes");            \
			     _Static_assert((ffrom) >= 1 && (ffrom) <= (fto),                               \
					    "LUO_STATE_*: " #member ": need 1 <= from <= to");             \
			     int luo_unused_;                                                             \
		     })),                                                                                 \
	  (ffrom), (fto), (fflags), (uint64_t)(fdefault) }

/*
 * LUO_STATE_VALUE() - an integer (any width, signed or not) or bool member.
 * @from, @to: the versions that carry it (@to: LUO_STATE_LATEST for all
 * from @from on); @fflags: 0, LUO_STATE_REQUIRED, LUO_STATE_MUST_UNDERSTAND,
 * LUO_STATE_VERSION (an integer: written as the version of the state,
 * whatever the struct holds; a load refuses another value);
 * @fdefault: the value a reader takes when the field did not come.
 */
#define LUO_STATE_VALUE(stype, member, from, to, fflags, fdefault)                                       \
	LUO_STATE_DECL_(stype, member, LUO_STATE_TYPE_OF_(((stype *)0)->member), from, to, fflags, fdefault, \
			LUO_STATE_TYPE_OF_(((stype *)0)->member) != 0)

/* LUO_STATE_BYTES() - a uint8_t[N] member (default: zeros). */
#define LUO_STATE_BYTES(stype, member, from, to, fflags)                                                 \
	LUO_STATE_DECL_(stype, member, LUO_ABI_FIELD_BYTES, from, to, fflags, 0,                          \
			__builtin_types_compatible_p(__typeof__(((stype *)0)->member[0]), uint8_t) &&       \
				sizeof(((stype *)0)->member) <= LUO_ABI_FIELD_SIZE_MAX)

/* LUO_STATE_STRING() - a char[N] member holding a NUL-terminated string (default: ""). */
#define LUO_STATE_STRING(stype, member, from, to, fflags)                                                \
	LUO_STATE_DECL_(stype, member, LUO_ABI_FIELD_STRING, from, to, fflags, 0,                         \
			__builtin_types_compatible_p(__typeof__(((stype *)0)->member[0]), char) &&          \
				sizeof(((stype *)0)->member) >= 2 &&                                        \
				sizeof(((stype *)0)->member) <= LUO_ABI_FIELD_SIZE_MAX)

#define LUO_STATE_COUNT_(...) (sizeof((struct luo_abi_note_fielddecl[]){ __VA_ARGS__ }) / \
			       sizeof(struct luo_abi_note_fielddecl))

/*
 * LUO_STATE_NOTE_() - the field list of component @cname over @stype, in
 * the section LUO_ABI_FIELDS_SECTION; @ident##_luo_fields_note is it.
 */
#define LUO_STATE_NOTE_(ident, cname, stype, ...)                                                        \
	_Static_assert(LUO_STATE_COUNT_(__VA_ARGS__) <= LUO_ABI_FIELDS_MAX,                               \
		       "LUO_COMPONENT_STATE: more than LUO_ABI_FIELDS_MAX fields");                       \
	static const struct {                                                                             \
		struct luo_abi_note_header h;                                                             \
		struct luo_abi_note_fields d;                                                             \
		struct luo_abi_note_fielddecl f[LUO_STATE_COUNT_(__VA_ARGS__)];                            \
	} ident##_luo_fields_note                                                                         \
		__attribute__((section(LUO_ABI_FIELDS_SECTION), used, aligned(8))) LUO_NOTE_RETAIN_ = {     \
		{ sizeof(LUO_ABI_NOTE_OWNER),                                                             \
		  (uint32_t)(sizeof(struct luo_abi_note_fields) +                                        \
			     LUO_STATE_COUNT_(__VA_ARGS__) * sizeof(struct luo_abi_note_fielddecl)),        \
		  LUO_ABI_NOTE_FIELDS, LUO_ABI_NOTE_OWNER },                                              \
		{ cname, (uint32_t)sizeof(stype), (uint32_t)LUO_STATE_COUNT_(__VA_ARGS__) },                \
		{ __VA_ARGS__ },                                                                          \
	}

/**
 * LUO_COMPONENT_STATE() - declare, record and register a component whose
 * state is the fields of a struct.
 * @ident, @cname, @rmin, @rmax, @wmin, @wmax, @cflags: as LUO_COMPONENT().
 * @stype: the struct type; @instance: the address of the live one (a
 * constant: a static object); then one LUO_STATE_VALUE(), _BYTES() or
 * _STRING() per field, at most LUO_ABI_FIELDS_MAX.
 *
 * Records the component in .note.luo as LUO_COMPONENT() does, and the
 * field list in LUO_ABI_FIELDS_SECTION. A member of the wrong kind, a name
 * longer than 31 bytes or bad versions fail to compile; the rest (names of
 * [a-z0-9_], no name twice, no overlap, a default that fits) is checked
 * at registration, and a bad list makes luo_open() fail.
 */
#define LUO_COMPONENT_STATE(ident, cname, rmin, rmax, wmin, wmax, cflags, stype, instance, ...)          \
	LUO_COMPONENT_NOTE_(ident, cname, rmin, rmax, wmin, wmax, cflags);                                \
	LUO_STATE_NOTE_(ident, cname, stype, __VA_ARGS__);                                                \
	_Static_assert(__builtin_types_compatible_p(__typeof__(*(instance)), stype),                      \
		       "LUO_COMPONENT_STATE: the instance is not a " #stype);                               \
	static const struct luo_component_state ident = { cname,                                          \
							  (rmin),                                         \
							  (rmax),                                         \
							  (wmin),                                         \
							  (wmax),                                         \
							  (cflags),                                       \
							  &ident##_luo_fields_note.d,                     \
							  ident##_luo_fields_note.f,                      \
							  (instance) };                                   \
	__attribute__((constructor)) static void ident##_luo_register(void)                               \
	{                                                                                                 \
		(void)luo_component_register_state(&ident);                                               \
	}                                                                                                 \
	__attribute__((destructor)) static void ident##_luo_unregister(void)                              \
	{                                                                                                 \
		luo_component_unregister_state(&ident);                                                   \
	}                                                                                                 \
	_Static_assert(1, "")

#endif /* LUO_FIELDS_H */
