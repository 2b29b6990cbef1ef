"""Payload codec: attrs instances <-> msgpack named maps, and lz4 by profile.

A payload is the msgpack encoding of a map from field name to value. Field values
are converted according to the field's annotation:

* ``str int bool bytes float None`` and ``typing.Any``: stored as msgpack scalars, except
  a ``str`` that is a canonical uuid: its 16 bytes as an extension (eventstore/ids.py);
* ``Optional[X]`` / ``X | None``: ``None`` or X;
* ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``frozenset[X]``: msgpack arrays;
* ``dict[K, V]``: msgpack maps;
* ``enum.Enum`` subclasses: their ``value``;
* nested attrs classes: named maps;
* a union of several attrs classes: ``[class name, named map]``.

Encoding checks every value against its annotation, so a wrong-typed field is an
InvalidArgument at append time instead of a surprise at read time. Decoding checks
the shape again, because stored bytes may have been tampered with or imported.

Per class the converters are built once (generated code for the flat fields, closures
for nested ones), because decoding is on the hot path of every read and replay.
"""

from __future__ import annotations

import enum
import threading
import types
import typing
from typing import Any, Callable, cast

import attrs
import lz4.block
import msgpack

from .errors import DecodeError, InvalidArgument, PayloadTooLarge
from .ids import compact_id, compacted as _compacted, str_kind, unpackb as _unpackb_ids

FLAG_LZ4 = 1
"""Row flag: the stored payload is an lz4 block with a 4-byte little-endian size prefix."""

FLAG_COMMAND_START = 2
"""Row flag, not about the payload: the row is the first one its command (one caller's
write, alone in its transaction or in a group commit's savepoint) appended. Set under store layout 2 and later; see eventstore/log.py."""

FLAG_COMMAND_CONTINUES = 4
"""Row flag, not about the payload: the row was appended by the same command as the row
before it. A row written under store layout 1 has neither command flag."""

COMMAND_FLAGS = FLAG_COMMAND_START | FLAG_COMMAND_CONTINUES
KNOWN_FLAGS = FLAG_LZ4 | COMMAND_FLAGS

PROFILES: dict[str, int | None] = {"low_latency": None, "balanced": 4096, "compact": 1024}
"""Compression threshold in bytes per store profile (None: never compress)."""

DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
"""Default limit on one encoded payload and on one decompressed payload, in bytes."""


class ShapeError(Exception):
    """Internal: a value does not match its annotation (converted to a typed error by callers)."""


_MISSING = object()
_SCALARS = {str, int, bool, bytes, float, type(None)}


@attrs.frozen
class Limits:
    """Size limits applied to every payload the store encodes or decodes."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD
    max_decompressed_bytes: int = DEFAULT_MAX_PAYLOAD


# --- value converters ------------------------------------------------------------

Conv = Callable[[Any], Any]


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _scalar_check(tp: type) -> Conv:
    name = tp.__name__
    if tp is float:

        def conv_float(v: Any) -> Any:
            if v.__class__ is float:
                return v
            if v.__class__ is int:
                return float(v)
            raise ShapeError(f"expected float, got {type(v).__name__}")

        return conv_float

    def conv(v: Any) -> Any:
        if v.__class__ is not tp:
            raise ShapeError(f"expected {name}, got {type(v).__name__}")
        return v

    return conv


def _enc_str(v: Any) -> Any:
    """A `str` field's encoder: a canonical uuid becomes its 16 bytes (eventstore/ids.py)."""
    if v.__class__ is not str:
        raise ShapeError(f"expected str, got {type(v).__name__}")
    return compact_id(v) if len(v) == 36 else v


def _converters(tp: Any, owner: type) -> tuple[Conv | None, Conv | None]:
    """Return (encode, decode) for one annotation; None means 'identity, no check'."""
    if tp is Any or tp is object:
        return None, None
    if tp in _SCALARS:
        c = _scalar_check(tp)
        return (_enc_str if tp is str else c), c
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) != len(args)
        if len(non_none) == 1:
            enc, dec = _converters(non_none[0], owner)
        elif all(attrs.has(a) for a in non_none):
            enc, dec = _tagged_union(non_none, owner)
        elif all(a in _SCALARS for a in non_none):
            allowed = tuple(non_none)
            label = " | ".join(a.__name__ for a in allowed)

            def conv_any_of(v: Any) -> Any:
                if v.__class__ not in allowed:
                    raise ShapeError(f"expected {label}, got {type(v).__name__}")
                return v

            enc = dec = conv_any_of
        else:
            raise TypeError(f"{owner.__name__}: unsupported union {tp}")
        if not optional:
            return enc, dec
        return _optional(enc), _optional(dec)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if isinstance(tp, type) and attrs.has(tp):
        codec = class_codec(tp)
        if codec.building:  # a recursive class: resolve lazily at call time
            inner_enc: Conv = lambda v: codec.to_plain(v)  # noqa: E731
            inner_dec: Conv = lambda v: codec.from_plain(v)  # noqa: E731
        else:
            inner_enc, inner_dec = codec.encoder(), codec.decoder()

        def enc_nested(v: Any) -> Any:
            if v.__class__ is not tp:
                raise ShapeError(f"expected {tp.__name__}, got {type(v).__name__}")
            return inner_enc(v)

        return enc_nested, inner_dec
    if origin in (tuple, list, frozenset) or tp in (tuple, list, frozenset):
        return _sequence(origin or tp, args, owner)
    if origin is dict or tp is dict:
        return _mapping(args, owner)
    raise TypeError(f"{owner.__name__}: unsupported field annotation {tp!r}")


def _optional(conv: Conv | None) -> Conv | None:
    if conv is None:
        return None

    def opt(v: Any) -> Any:
        return None if v is None else conv(v)

    return opt


def _enum(tp: type[enum.Enum]) -> tuple[Conv, Conv]:
    def enc(v: Any) -> Any:
        if not isinstance(v, tp):
            raise ShapeError(f"expected {tp.__name__}, got {type(v).__name__}")
        return v.value

    def dec(v: Any) -> Any:
        try:
            return tp(v)
        except (ValueError, TypeError):
            raise ShapeError(f"{v!r} is not a valid {tp.__name__}") from None

    return enc, dec


def _sequence(kind: type, args: tuple, owner: type) -> tuple[Conv, Conv]:
    if kind is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        convs = [_converters(a, owner) for a in args]
        n = len(convs)

        def enc_fixed(v: Any) -> Any:
            if not isinstance(v, (tuple, list)) or len(v) != n:
                raise ShapeError(f"expected a tuple of {n}")
            return [c[0](x) if c[0] else x for c, x in zip(convs, v)]

        def dec_fixed(v: Any) -> Any:
            if v.__class__ is not list or len(v) != n:
                raise ShapeError(f"expected an array of {n}")
            return tuple(c[1](x) if c[1] else x for c, x in zip(convs, v))

        return enc_fixed, dec_fixed
    item = args[0] if args else Any
    ienc, idec = _converters(item, owner)
    build = {tuple: tuple, list: list, frozenset: frozenset}[kind]
    accepted = (tuple, list, frozenset, set) if kind is frozenset else (tuple, list)
    label = kind.__name__

    def enc(v: Any) -> Any:
        if not isinstance(v, accepted):
            raise ShapeError(f"expected {label}, got {type(v).__name__}")
        if kind is frozenset:
            v = sorted(v, key=repr)  # a stable order, so equal sets encode equally
        return [ienc(x) for x in v] if ienc else list(v)

    def dec(v: Any) -> Any:
        if v.__class__ is not list:
            raise ShapeError(f"expected an array for {label}, got {type(v).__name__}")
        return build(idec(x) for x in v) if idec else build(v)

    return enc, dec


def _mapping(args: tuple, owner: type) -> tuple[Conv, Conv]:
    kenc, kdec = _converters(args[0], owner) if args else (None, None)
    if args and args[0] is str:
        kenc = kdec  # map keys stay strings (msgpack's default unpacking wants string keys)
    venc, vdec = _converters(args[1], owner) if args else (None, None)
    if venc is None and vdec is None and (not args or args[0] in (str, Any, object)):
        # The common `dict[str, Any]`: check the keys and hand msgpack's (or the
        # caller's) dict through instead of rebuilding it key by key.
        check_keys = bool(args) and args[0] is str

        def enc_plain(v: Any) -> Any:
            if not isinstance(v, dict):
                raise ShapeError(f"expected dict, got {type(v).__name__}")
            if check_keys:
                for k in v:
                    if k.__class__ is not str:
                        raise ShapeError(f"expected str keys, got {type(k).__name__}")
            return v

        def dec_plain(v: Any) -> Any:
            if v.__class__ is not dict:
                raise ShapeError(f"expected a map, got {type(v).__name__}")
            if check_keys:
                for k in v:
                    if k.__class__ is not str:
                        raise ShapeError(f"expected str keys, got {type(k).__name__}")
            return v

        return enc_plain, dec_plain

    def enc(v: Any) -> Any:
        if not isinstance(v, dict):
            raise ShapeError(f"expected dict, got {type(v).__name__}")
        return {(kenc(k) if kenc else k): (venc(x) if venc else x) for k, x in v.items()}

    def dec(v: Any) -> Any:
        if v.__class__ is not dict:
            raise ShapeError(f"expected a map, got {type(v).__name__}")
        return {(kdec(k) if kdec else k): (vdec(x) if vdec else x) for k, x in v.items()}

    return enc, dec


def _tagged_union(members: list[type], owner: type) -> tuple[Conv, Conv]:
    by_class = {m: class_codec(m) for m in members}
    by_tag = {m.__name__: by_class[m] for m in members}
    if len(by_tag) != len(members):
        raise TypeError(f"{owner.__name__}: union members must have distinct class names")

    def enc(v: Any) -> Any:
        codec = by_class.get(type(v))
        if codec is None:
            names = ", ".join(by_tag)
            raise ShapeError(f"expected one of {names}, got {type(v).__name__}")
        return [type(v).__name__, codec.to_plain(v)]

    def dec(v: Any) -> Any:
        if v.__class__ is not list or len(v) != 2 or v[0].__class__ is not str:
            raise ShapeError("expected a [type name, map] pair")
        codec = by_tag.get(v[0])
        if codec is None:
            raise ShapeError(f"unknown variant {v[0]!r}")
        return codec.from_plain(v[1])

    return enc, dec


# --- per-class codec ---------------------------------------------------------------


def _no_init_logic(cls: type) -> bool:
    """True when attrs' __init__ would only store the values (nothing to run or convert)."""
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        return False
    return all(f.validator is None and f.converter is None and f.init for f in attrs.fields(cls))


def _plain_slots(cls: type, names: list[str]) -> bool:
    """True when instances can be built by setting slots directly (no init-time logic)."""
    slots = set(getattr(cls, "__slots__", ())) - {"__weakref__"}
    if slots != set(names) or hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        return False
    for f in attrs.fields(cls):
        if f.validator is not None or f.converter is not None:
            return False
    return all(type(cls.__dict__.get(n)).__name__ == "member_descriptor" for n in names)


def _dict_setter(cls: type) -> Callable[[Any, dict], None]:
    """A function that replaces an instance's __dict__: the class's own `__dict__`
    descriptor (frozen attrs classes refuse attribute assignment, and calling the
    descriptor directly skips the generic attribute lookup)."""
    for klass in cls.__mro__:
        descr = klass.__dict__.get("__dict__")
        if descr is not None and hasattr(descr, "__set__"):
            return cast("Callable[[Any, dict[Any, Any]], None]", descr.__set__)
    return lambda o, d: object.__setattr__(o, "__dict__", d)


def _passthrough_map(tp: Any) -> str | None:
    """For `dict[str, Any]` ("str") and `dict[Any, Any]` ("any"), the maps that _mapping
    hands through unconverted, what the fast paths must check of the keys; else None."""
    if typing.get_origin(tp) is not dict:
        return None
    args = typing.get_args(tp)
    if len(args) != 2 or args[1] not in (Any, object):
        return None
    if args[0] is str:
        return "str"
    return "any" if args[0] in (Any, object) else None


def _scalar_test(tp: Any, var: str) -> str | None:
    """A Python expression that is True when `var` fits a flat annotation, or None if the
    annotation is not flat (needs a converter)."""
    if tp is Any or tp is object:
        return "True"
    if tp in _SCALARS:
        return f"{var}.__class__ is {'type(None)' if tp is type(None) else tp.__name__}"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1 and len(args) == 2 and non_none[0] in _SCALARS:
            return f"({var} is None or {var}.__class__ is {non_none[0].__name__})"
    return None


class ClassCodec:
    """Converts one attrs class to and from a plain dict of msgpack-ready values.

    Two generated paths per direction: a fast one for well-formed values (flat fields
    checked with one chained class test, no per-field error handling) and a careful one
    that runs when the fast one declines and names the offending field.
    """

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self._built = False
        self.building = False

    def _build(self) -> None:
        self.building = True
        try:
            self._generate()
        finally:
            self.building = False

    def _generate(self) -> None:
        cls = self.cls
        try:
            hints = typing.get_type_hints(cls)
        except Exception as exc:  # unresolvable forward reference
            raise TypeError(f"{cls.__name__}: cannot resolve annotations: {exc}") from exc
        fields = attrs.fields(cls)
        names = [f.name for f in fields]
        ns: dict[str, Any] = {"_cls": cls, "_M": _MISSING, "_Shape": ShapeError, "_cid": compact_id, "_idc": _compacted.get}
        enc_lines = ["def slow_to_plain(o):", "    d = {}"]
        dec_lines = [
            "def slow_from_plain(d):",
            "    if d.__class__ is not dict: raise _Shape('expected a map of fields')",
            "    kw = {}",
            "    n = 0",
        ]
        fast_tests: list[str] = []
        str_keyed: list[int] = []  # fields whose map keys the fast paths check inline
        fast_enc_items: list[str] = []
        fast_dec_args: list[str] = []
        positional = all(not f.kw_only and getattr(f, "alias", None) in (None, f.name) for f in fields)
        for i, f in enumerate(fields):
            if not f.init:
                raise TypeError(f"{cls.__name__}.{f.name}: event fields must be init fields")
            tp = hints.get(f.name, Any)
            enc, dec = _converters(tp, cls)
            ns[f"e{i}"], ns[f"d{i}"] = enc, dec
            key = f.alias if getattr(f, "alias", None) else f.name
            name = repr(f.name)
            test = _scalar_test(tp, f"v{i}")
            passthrough = _passthrough_map(tp)
            if passthrough is not None:
                # Checked inline (class, then each key) instead of calling the converter
                # and writing its unchanged result back: the common `dict[str, Any]`
                # field then costs a loop over its keys and nothing more.
                test = f"v{i}.__class__ is dict"
                if passthrough == "str":
                    str_keyed.append(i)
            if test is not None and test != "True":
                fast_tests.append(test)
            flat = test is not None or enc is None
            kind = str_kind(tp)
            if kind == "str":  # inline, so that only 36-character strings cost a call
                fast_enc_items.append(f"{name}: (v{i} if len(v{i}) != 36 else _idc(v{i}) or _cid(v{i}))")
            elif kind == "optional":
                fast_enc_items.append(f"{name}: (v{i} if v{i} is None or len(v{i}) != 36 else "
                                      f"_idc(v{i}) or _cid(v{i}))")
            else:
                fast_enc_items.append(f"{name}: v{i}" if flat else f"{name}: e{i}(v{i})")
            arg = f"v{i}" if (test is not None or dec is None) else f"d{i}(v{i})"
            fast_dec_args.append(arg if positional else f"{key}={arg}")
            enc_lines.append(
                f"    v = o.{f.name}\n"
                + (f"    try: v = e{i}(v)\n    except _Shape as x: raise _Shape({name} + ': ' + str(x))\n" if enc else "")
                + f"    d[{name}] = v"
            )
            dec_lines.append(
                f"    v = d.get({name}, _M)\n"
                f"    if v is not _M:\n"
                f"        n += 1\n"
                + (f"        try: v = d{i}(v)\n        except _Shape as x: raise _Shape({name} + ': ' + str(x))\n" if dec else "")
                + f"        kw[{key!r}] = v"
            )
        enc_lines.append("    return d")
        dec_lines.append(
            "    if n != len(d):\n"
            f"        raise _Shape('unknown fields: ' + ', '.join(sorted(map(str, set(d) - {set(names)!r}))))\n"
            "    try: return _cls(**kw)\n"
            "    except TypeError as x: raise _Shape(str(x))"
        )
        tests = " and ".join(fast_tests) or "True"

        def key_checks(slow: str) -> str:
            return "".join(f"    for k in v{i}:\n        if k.__class__ is not str: return {slow}\n"
                           for i in str_keyed)

        loads = "; ".join(f"v{i} = o.{f.name}" for i, f in enumerate(fields)) or "pass"
        fast_enc = (
            "def to_plain(o):\n"
            f"    {loads}\n"
            f"    if not ({tests}): return slow_to_plain(o)\n"
            + key_checks("slow_to_plain(o)") +
            f"    try: return {{{', '.join(fast_enc_items)}}}\n"
            "    except Exception: return slow_to_plain(o)"
        )
        dloads = "; ".join(f"v{i} = d[{f.name!r}]" for i, f in enumerate(fields)) or "pass"
        if getattr(cls, "__eventstore_plain_dict__", False) is cls and _no_init_logic(cls):
            # Classes made by @eventstore.event keep their fields in __dict__, so a decoded
            # map whose keys were just checked to be exactly the field names becomes the
            # instance's __dict__ as it is: no copy, no per-field call (converted fields
            # are written back into the map first).
            ns["_new"] = object.__new__
            ns["_setdict"] = _dict_setter(cls)
            build = ["o = _new(_cls)"]
            for i, f in enumerate(fields):
                if fast_dec_args[i] != f"v{i}":
                    build.append(f"d[{f.name!r}] = {fast_dec_args[i]}")
            build += ["_setdict(o, d)", "return o"]
        elif _plain_slots(cls, names) and positional:
            # Setting the slots directly skips attrs' generated __init__ (which, for a
            # frozen class, goes through object.__setattr__ per field): about a third
            # cheaper, and safe because the class has no validators, converters,
            # post-init hook or hidden slots, and every field was checked above.
            for i, n in enumerate(names):
                ns[f"s{i}"] = cls.__dict__[n].__set__
            ns["_new"] = object.__new__
            build = ["o = _new(_cls)"] + [f"s{i}(o, {arg})" for i, arg in enumerate(fast_dec_args)]
            build.append("return o")
        else:
            build = [f"return _cls({', '.join(fast_dec_args)})"]
        fast_dec = "\n".join(
            [
                "def from_plain(d):",
                f"    if d.__class__ is not dict or len(d) != {len(fields)}: return slow_from_plain(d)",
                f"    try: {dloads}",
                "    except KeyError: return slow_from_plain(d)",
                f"    if not ({tests}): return slow_from_plain(d)",
                *key_checks("slow_from_plain(d)").splitlines(),
                "    try:",
                *("        " + line for line in build),
                "    except Exception: return slow_from_plain(d)",
            ]
        )
        # Generated once per class: decoding is on the hot path of every read and replay.
        for src in ("\n".join(enc_lines), "\n".join(dec_lines), fast_enc, fast_dec):
            exec(src, ns)
        self._to_plain = ns["to_plain"]
        self._from_plain = ns["from_plain"]
        self._built = True

    def to_plain(self, obj: Any) -> dict:
        """Convert an instance to a dict of msgpack-ready values, checking every field."""
        if not self._built:
            self._build()
        self.to_plain = self._to_plain  # type: ignore[method-assign]
        return cast("dict[Any, Any]", self._to_plain(obj))

    def from_plain(self, data: Any) -> Any:
        """Build an instance from a decoded map, checking its shape."""
        if not self._built:
            self._build()
        self.from_plain = self._from_plain  # type: ignore[method-assign]
        return self._from_plain(data)

    def decoder(self) -> Callable[[Any], Any]:
        """The generated from_plain function itself (for tight loops)."""
        if not self._built:
            self._build()
        return cast("Callable[[Any], Any]", self._from_plain)

    def encoder(self) -> Callable[[Any], dict]:
        """The generated to_plain function itself (for tight loops)."""
        if not self._built:
            self._build()
        return cast("Callable[[Any], dict[Any, Any]]", self._to_plain)


_CODECS: dict[type, ClassCodec] = {}


def class_codec(cls: type) -> ClassCodec:
    """The (cached) codec of an attrs class."""
    codec = _CODECS.get(cls)
    if codec is None:
        if not attrs.has(cls):
            raise TypeError(f"{cls!r} is not an attrs class")
        codec = _CODECS[cls] = ClassCodec(cls)
    return codec


# --- bytes -----------------------------------------------------------------------

_threads = threading.local()
PACKER_BUFFER_BYTES = 256 * 1024
"""msgpack's initial Packer buffer: a packer that packed more than this is dropped (see packer())."""


def packer() -> Callable[[Any], bytes]:
    """This thread's msgpack packing function (bytes stay binary, strings UTF-8).

    msgpack.packb builds a Packer, with a 256 KiB buffer, on every call; reusing one per
    thread saves about a quarter of a microsecond per event. One per thread because a
    Packer's buffer is not safe to share, and events are encoded before the write lock is
    taken. A Packer keeps its buffer at the largest size it ever packed, so after packing
    more than the initial buffer call `drop_packer()`, and the next call starts afresh.
    (msgpack resets the buffer when packing fails, so a failed call leaves it clean.)
    """
    pack = getattr(_threads, "pack", None)
    if pack is None:
        pack = _threads.pack = msgpack.Packer(use_bin_type=True).pack
    return cast("Callable[[Any], bytes]", pack)


def drop_packer() -> None:
    """Forget this thread's Packer (see packer()): its buffer grew past the initial size."""
    _threads.pack = None


def pack(plain: Any) -> bytes:
    """msgpack-encode plain values (bytes stay binary, strings stay UTF-8)."""
    try:
        out = packer()(plain)
    except (TypeError, ValueError, OverflowError) as exc:
        drop_packer()  # it may have grown before it failed
        raise InvalidArgument(f"value cannot be encoded: {exc}") from None
    if len(out) > PACKER_BUFFER_BYTES:
        drop_packer()
    return out


def unpack(data: bytes) -> Any:
    """msgpack-decode bytes (compacted ids back to strings); raises ShapeError on anything malformed."""
    try:
        return _unpackb_ids(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ShapeError(f"undecodable msgpack ({type(exc).__name__}: {exc})") from None


def compress_for(payload: bytes, threshold: int | None) -> tuple[bytes, int]:
    """Compress with lz4 when the profile threshold says so and it actually saves bytes."""
    if threshold is None or len(payload) < threshold:
        return payload, 0
    packed = lz4.block.compress(payload, store_size=True)
    if len(packed) >= len(payload):
        return payload, 0
    return packed, FLAG_LZ4


def decompress(stored: bytes, flags: int, limit: int) -> bytes:
    """Undo compress_for; refuses frames that claim more than `limit` bytes before allocating."""
    if flags & ~KNOWN_FLAGS:
        raise ShapeError(f"unknown row flags {flags:#x} (this code knows {KNOWN_FLAGS:#x}: lz4 and the command marks)")
    if not flags & FLAG_LZ4:
        return stored
    if len(stored) < 4:
        raise ShapeError("lz4 payload shorter than its size prefix")
    size = int.from_bytes(stored[:4], "little")
    if size > limit:
        raise PayloadTooLarge(f"compressed payload claims {size} bytes, over the limit of {limit}")
    try:
        out = lz4.block.decompress(stored)
    except Exception as exc:
        raise ShapeError(f"corrupt lz4 block ({exc})") from None
    if len(out) != size:
        raise ShapeError("lz4 block size does not match its prefix")
    return cast("bytes", out)


def wrap_decode_error(exc: ShapeError, position: int | None, stream: str | None, what: str) -> DecodeError:
    """Turn an internal ShapeError into a DecodeError naming where it happened."""
    return DecodeError(f"{what}: {exc}", position=position, stream=stream)
