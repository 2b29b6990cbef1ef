"""Decoding a payload straight from bytes into its class, for the classes where that is safe.

The careful path of every read is msgpack's `unpackb` into a map, then the generated
decoder of `codec.ClassCodec` (the map has exactly the class's fields, each value of its
annotated type, then the map becomes the instance's `__dict__`). For flat classes,
msgspec does the same parse and the same checks in one C call, about twice as fast.

It is used only where it accepts exactly what the careful path accepts, which is why
the rules below are narrow:

* the class has no init logic (validators, converters, pre/post-init hooks), no
  defaults (every field must be present) and at most 15 fields;
* every field is a scalar (`str`, `int`, `float`, `bool`, `bytes`, `None`), an optional
  scalar, `Any`/`object`, `dict[str, Any]`, an enum msgspec can decode by value, or a
  `tuple[X, ...]`, `list[X]` or `frozenset[X]` of scalars. Nested attrs classes and
  unions of classes stay on the careful path: msgspec would ignore an unknown field
  inside them.
* msgspec ignores unknown fields, so the caller checks the map's entry count first: the
  payload must start with the fixmap header of exactly as many entries as the class has
  fields. With every field required, that leaves no room for an unknown one.
* msgspec turns the msgpack timestamp extension into a `datetime` where the careful path
  keeps msgpack's own object, and other extensions go through `ext_hook` (which refuses
  them here), so the caller sends a payload holding the byte 0xff (which every timestamp
  extension does, and UTF-8 text never does) to the careful path.
* a payload holding a compact id (extension 85, eventstore/ids.py) would fail in a
  decoder typed like the class, since msgspec takes no extension for a `str` field, so
  the caller sends a payload holding the first byte of that extension's header (0xd8,
  msgpack's fixext 16; one memchr, where the two-byte `ids.ID_MARK` costs a substring
  search) to the class's second decoder, `Direct.decode_ids`, which decodes payloads
  with or without compact ids alike: a mirror (below) in which every place the
  encoder compacts (`str`, `str | None`, `tuple`/`list`/`frozenset` of `str`) is typed
  `str | Ext`, and the generated code turns an `Ext` of code 85 and 16 bytes into the
  string `ids.ext_hook` gives (one dict lookup for a recent id); any other `Ext` raises,
  and the careful path then raises its typed error. `Any` values go through `_ids_ext`,
  which does the same for extension 85 and refuses the others. A field whose strings
  sit deeper (a fixed tuple holding a `str`, a `dict[str, str]`) is left as `Raw` and
  decoded by the careful path's converter for it. Map keys are never compacted, so a
  key holding an extension is refused here and decoded by the careful path.

Anything the direct decoder refuses or fails on goes to the careful path, which either
decodes it the same way or raises the typed error naming the field.

Classes with nested attrs classes (a commit's nodes, a claim's owner) take a second kind
of direct decoder, `_build_nested`: msgspec decodes the payload into generated
`msgspec.Struct` mirrors of the classes, one per class, with every field required and
unknown fields forbidden (so the map must hold exactly the class's fields, at every
level), and generated code then builds the attrs instances from the mirrors, as the
careful path builds them (the same `__dict__` or slots, or the class's own `__init__`).
A field msgspec cannot check the way the careful path does (a union of classes, stored
as `[class name, map]`) is left as `msgspec.Raw`: its bytes go through the careful
path's own parse and converter for that field.
"""

from __future__ import annotations

import enum
import types
import typing
import weakref
from typing import Any, Callable, NamedTuple, cast

import attrs
import msgspec

from .codec import _SCALARS, _converters, _dict_setter, _no_init_logic, _plain_slots, unpack
from .ids import EXT_ID, ext_hook, str_kind, texts

MAX_FIELDS = 15
"""The most fields a fixmap header can count (one byte: 0x80 | n)."""


def _refuse_ext(code: int, data: memoryview) -> Any:
    raise ValueError(f"msgpack extension type {code}")


_Ext = msgspec.msgpack.Ext
_EXT_ID = EXT_ID
_id_string = ext_hook
_known = texts.get


def _ids_ext(code: int, data: memoryview) -> Any:
    """ext_hook of the decoders for payloads holding compact ids (it sees the extensions
    in `Any` positions only): a compact id becomes its string, as `ids.ext_hook` makes it;
    any other extension is refused (the careful path keeps it as msgpack's ExtType)."""
    if code == _EXT_ID and len(data) == 16:
        return _id_string(code, bytes(data))
    raise ValueError(f"msgpack extension type {code} ({len(data)} bytes)")


def _id_text(v: Any) -> str:
    """The string of a compact id decoded where a `str` belongs (msgspec gives an `Ext`
    there); any other extension is refused, as the careful path refuses it for a str."""
    if v.__class__ is _Ext and v.code == _EXT_ID:
        data = cast(bytes, v.data)  # msgspec's Ext holds bytes
        text = _known(data)  # the ids most recently read: one lookup
        if text is not None:
            return text
        if len(data) == 16:
            return cast(str, _id_string(_EXT_ID, data))
    raise ValueError(f"expected str, got an extension of type {getattr(v, 'code', '?')}")


def _id_items(kind: type) -> Callable[[Any], Any]:
    """For a `tuple`/`list`/`frozenset` of `str` decoded as a list of `str | Ext`."""

    def items(v: Any) -> Any:
        return kind([x if x.__class__ is str else _id_text(x) for x in v])

    return items


def _has_str(tp: Any) -> bool:
    """True when the annotation has a `str` where the encoder compacts uuid strings: a
    value anywhere in it, not a map's key (keys are stored as they are)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict:
        args = args[1:]
    return tp is str or any(_has_str(a) for a in args)


def _flat(tp: Any) -> bool:
    """True when the careful path and msgspec check a value of this annotation alike."""
    if tp in _SCALARS or tp is Any or tp is object:
        return True
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return True  # msgspec refuses an enum it cannot decode by value: then the class is not eligible
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return len(args) == 2 and type(None) in args and all(a in _SCALARS for a in args)
    if origin is dict:
        return len(args) == 2 and args[0] is str and args[1] in (Any, object)
    if origin in (tuple, list, frozenset):
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            return False
        return len(args) >= 1 and args[0] in _SCALARS
    return False


class Direct(NamedTuple):
    """A class's direct decoders and the fixmap header byte its payloads start with."""

    decode: Callable[[bytes], Any]
    """For payloads without the byte 0xd8 (no compact id can be in them)."""
    decode_ids: Callable[[bytes], Any] | None
    """For any payload, compact ids or not (None: those with 0xd8 take the careful path)."""
    header: int


_CACHE: "weakref.WeakKeyDictionary[type, Direct | None]" = weakref.WeakKeyDictionary()


def direct_decoder(cls: type) -> Direct | None:
    """The direct decoders of a class msgspec decodes exactly as the careful path does;
    None for any other class. Cached per class: every read that filters by type builds
    its own decoder table."""
    try:
        return _CACHE[cls]
    except KeyError:
        found = _CACHE[cls] = _direct(cls)
        return found


def _direct(cls: type) -> Direct | None:
    decode = _build(cls) or _build_nested(cls, ids=False)
    if decode is None:
        return None
    return Direct(decode, _build_nested(cls, ids=True), 0x80 | len(attrs.fields(cls)))


def _build(cls: type) -> Callable[[bytes], Any] | None:
    if not attrs.has(cls) or not _no_init_logic(cls):
        return None
    fields = attrs.fields(cls)
    if not 0 < len(fields) <= MAX_FIELDS:
        return None
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        return None
    for f in fields:
        if f.default is not attrs.NOTHING or getattr(f, "alias", f.name) not in (None, f.name):
            return None
        if not _flat(hints.get(f.name, Any)):
            return None
    try:
        decoder = msgspec.msgpack.Decoder(cls, ext_hook=_refuse_ext)
    except (TypeError, ValueError):  # a type msgspec does not support (e.g. a mixed enum)
        return None
    return decoder.decode


# --- classes with nested attrs classes ---------------------------------------------------------------


class _Mirror:
    """The msgspec Struct mirroring one attrs class, and the function turning one into the other."""

    __slots__ = ("struct", "convert", "body", "ns")

    def __init__(self) -> None:
        self.struct: Any = None
        self.convert: Callable[[Any], Any] | None = None
        self.body = ""  # the generated body of convert(s), and its namespace
        self.ns: dict[str, Any] = {}


def _build_nested(cls: type, ids: bool) -> Callable[[bytes], Any] | None:
    """The mirror decoder of a class; with `ids`, the one for payloads holding compact ids."""
    if not attrs.has(cls) or not 0 < len(attrs.fields(cls)) <= MAX_FIELDS:
        return None
    mirror = _mirror(cls, {}, ids)
    if mirror is None:
        return None
    try:
        decode = msgspec.msgpack.Decoder(mirror.struct, ext_hook=_ids_ext if ids else _refuse_ext).decode
    except (TypeError, ValueError):
        return None
    # convert's body with the decode in front: one Python frame per payload, not two
    ns = dict(mirror.ns, _decode=decode)
    exec(f"def decode_mirrored(payload):\n    s = _decode(payload)\n{mirror.body}", ns)
    return cast("Callable[[bytes], Any]", ns["decode_mirrored"])


def _nested_scalars(tp: Any) -> bool:
    """Sequences of fixed tuples of scalars (a commit's usage rows): msgspec checks each
    tuple's length and item types as the careful path does."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return all(a in _SCALARS for a in args)
    if origin in (tuple, list) and len(args) in (1, 2) and (origin is list or args[-1] is Ellipsis):
        return _nested_scalars(args[0])
    return False


_TAGGED = tuple[str, msgspec.Raw]
"""A member of a union of classes as the codec stores it: [class name, map of its fields]."""


def _members(tp: Any) -> list[type] | None:
    """The classes of a union of two or more attrs classes (optional or not), else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(members) < 2 or not all(isinstance(a, type) and attrs.has(a) for a in members):
        return None
    return members


def _union(tp: Any, seen: dict[type, _Mirror | None], ids: bool) -> Callable[[Any], Any] | None:
    """For a union of classes: a function from the decoded [name, raw map] pair to the
    member's instance (the map decoded by that member's mirror); None if not mirrorable."""
    members = _members(tp)
    if members is None:
        return None
    by_name: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}
    for m in members:
        inner = _mirror(m, seen, ids)
        if inner is None or inner.convert is None:
            return None
        try:
            decode = msgspec.msgpack.Decoder(inner.struct, ext_hook=_ids_ext if ids else _refuse_ext).decode
        except (TypeError, ValueError):
            return None
        by_name[m.__name__] = (decode, inner.convert)

    def member(pair: Any) -> Any:
        decode, convert = by_name[pair[0]]  # an unknown name: KeyError, the careful path reports it
        return convert(decode(pair[1]))

    return member


def _mirror(cls: type, seen: dict[type, _Mirror | None], ids: bool) -> _Mirror | None:
    """The mirror of `cls` (None when some field cannot be mirrored exactly)."""
    if cls in seen:
        return seen[cls]  # None while in progress: a recursive class is not mirrored
    seen[cls] = None
    if not _no_init_logic(cls):
        return None
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        return None
    fields = attrs.fields(cls)
    names = [f.name for f in fields]
    ns: dict[str, Any] = {"_cls": cls, "_new": object.__new__}
    struct_fields: list[tuple[str, Any]] = []
    values: list[str] = []
    for i, f in enumerate(fields):
        if getattr(f, "alias", f.name) not in (None, f.name) or f.name.startswith("_"):
            return None
        tp = hints.get(f.name, Any)
        got = _field(tp, f"s.{f.name}", i, ns, seen, cls, ids)
        if got is None:
            return None
        struct_tp, expr = got
        struct_fields.append((f.name, struct_tp))
        values.append(expr)
    try:
        struct = msgspec.defstruct(f"{cls.__name__}Mirror", struct_fields, forbid_unknown_fields=True)
    except (TypeError, ValueError):
        return None
    if getattr(cls, "__eventstore_plain_dict__", False) is cls:
        ns["_setdict"] = _dict_setter(cls)
        items = ", ".join(f"{n!r}: {v}" for n, v in zip(names, values))
        body = f"    o = _new(_cls)\n    _setdict(o, {{{items}}})\n    return o"
    elif _plain_slots(cls, names) and all(not f.kw_only for f in fields):
        for i, n in enumerate(names):
            ns[f"_s{i}"] = cls.__dict__[n].__set__
        body = "    o = _new(_cls)\n" + "".join(f"    _s{i}(o, {v})\n" for i, v in enumerate(values)) + "    return o"
    else:
        body = "    return _cls(" + ", ".join(f"{n}={v}" for n, v in zip(names, values)) + ")"
    exec(f"def convert(s):\n{body}", ns)  # generated once per class, like the codec's decoders
    mirror = _Mirror()
    mirror.struct, mirror.convert, mirror.body, mirror.ns = struct, ns["convert"], body, ns
    seen[cls] = mirror
    return mirror


def _field(tp: Any, value: str, i: int, ns: dict[str, Any], seen: dict[type, _Mirror | None],
           owner: type, ids: bool) -> tuple[Any, str] | None:
    """(the mirror's annotation, the expression building the attrs value from `value`)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if ids and _has_str(tp) and (_flat(tp) or _nested_scalars(tp)):
        # Where the encoder may have compacted a uuid string (eventstore/codec.py): msgspec
        # takes `str | Ext` there, and the compact id becomes its string here.
        ns["_id"] = _id_text
        kind = str_kind(tp)
        if kind == "str":
            return str | _Ext, f"(v{i} if (v{i} := {value}).__class__ is str else _id(v{i}))"
        if kind == "optional":
            return str | _Ext | None, f"(v{i} if (v{i} := {value}) is None or v{i}.__class__ is str else _id(v{i}))"
        if origin in (tuple, list, frozenset) and args[0] is str:
            ns[f"_c{i}"] = _id_items(origin)
            return (tuple[str | _Ext, ...] if origin is tuple else list[str | _Ext]), f"_c{i}({value})"
        # anything else holding a str (a fixed tuple with a str in it): the careful path's
        # converter for the field, below
    elif _flat(tp) or _nested_scalars(tp):
        return tp, value
    if isinstance(tp, type) and attrs.has(tp):
        inner = _mirror(tp, seen, ids)
        if inner is not None:
            ns[f"_c{i}"] = inner.convert
            return inner.struct, f"_c{i}({value})"
    elif origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        other = args[0] if args[1] is type(None) else args[1]
        if isinstance(other, type) and attrs.has(other):
            inner = _mirror(other, seen, ids)
            if inner is not None:
                ns[f"_c{i}"] = inner.convert
                return inner.struct | None, f"(None if {value} is None else _c{i}({value}))"
    elif origin in (tuple, list) and len(args) in (1, 2) and (origin is list or args[-1] is Ellipsis):
        item = args[0]
        inner_tp: Any = None
        if isinstance(item, type) and attrs.has(item):
            inner = _mirror(item, seen, ids)
            if inner is not None:
                ns[f"_c{i}"], inner_tp = inner.convert, inner.struct
        else:
            union = _union(item, seen, ids)
            if union is not None:
                ns[f"_c{i}"], inner_tp = union, _TAGGED
        if inner_tp is not None:
            kind = "tuple" if origin is tuple else "list"
            hint = tuple[inner_tp, ...] if origin is tuple else list[inner_tp]
            return hint, f"{kind}([_c{i}(x) for x in {value}])"
    if _members(tp) is not None:
        union = _union(tp, seen, ids)
        if union is not None:
            ns[f"_c{i}"] = union
            if type(None) in args:
                return _TAGGED | None, f"(None if {value} is None else _c{i}({value}))"
            return _TAGGED, f"_c{i}({value})"
    # Anything else (a union of classes, a mapping of classes, ...): the field's bytes are
    # parsed and converted by the careful path's own code for it.
    try:
        _enc, dec = _converters(tp, owner)
    except TypeError:
        return None
    ns[f"_d{i}"] = dec
    ns["_unpack"] = unpack
    return msgspec.Raw, (f"_unpack({value})" if dec is None else f"_d{i}(_unpack({value}))")
