"""Compact ids: uuid-shaped strings stored as their 16 bytes, read back as the same strings.

Runtimes name sessions, nodes and batches with uuids, and every event and index row
that names one would otherwise carry its 36 characters. Two forms, both exact:

* in an event payload, a string field whose value is a *canonical* uuid (32 lowercase
  hex digits in the 8-4-4-4-12 hyphenated layout) is packed as the msgpack extension
  `EXT_ID` holding the 16 bytes (18 bytes instead of 38); every payload read turns the
  extension back into the same string (`ext_hook`, `unpackb`);
* in a projection column, `id_key` gives a BLOB: the 16 bytes for a canonical uuid, the
  UTF-8 bytes for any other id (padded with one 0xFF byte when they are exactly 16 bytes
  long, so the two never meet: UTF-8 never holds 0xFF); `id_from_key` undoes it.

Any other spelling (upper case, braces, no hyphens) is not compacted: it would not read
back byte for byte. docs/log-format.md describes both forms.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Callable

import msgpack

__all__ = ["EXT_ID", "ID_MARK", "compact_id", "ext_hook", "id_from_key", "id_key", "is_canonical_uuid", "str_kind", "unpackb"]

EXT_ID = 0x55
"""The msgpack extension type code of a compacted id (85, "U"): 16 bytes, a canonical uuid."""

ID_MARK = bytes((0xD8, EXT_ID))
"""The first two bytes of a packed compact id (msgpack's fixext 16 header, then the code)."""

_ExtType = msgpack.ExtType
_fromhex = bytes.fromhex
_tuple_new = tuple.__new__

# The ids most recently converted, both ways: a commit names its node's id twice (the node
# and the leaf) and the previous node as the parent, and most events name their session.
# A hit is one dict lookup instead of the conversion (about 0.7 microseconds). Bounded:
# emptied when full; the dicts are only ever read, stored into and cleared, which the GIL
# keeps consistent when threads encode at once.
_CACHE_SIZE = 1024
compacted: dict[str, Any] = {}
"""36-character string -> its msgpack form (compact_id's answers; the encoders look here first)."""
texts: dict[bytes, str] = {}
"""16 bytes -> the uuid string (ext_hook's answers; the direct decoders look here first)."""


def _uuid_bytes(v: str) -> bytes | None:
    """The 16 bytes of a canonical uuid string, or None for any other string."""
    digits = v.replace("-", "")
    if len(digits) != 32 or len(v) != 36:  # exactly four hyphens
        return None
    try:
        b = _fromhex(digits)
    except ValueError:  # not hex (or not ASCII)
        return None
    # fromhex also takes upper case and skips spaces: only what hex() gives back is canonical.
    if b.hex() != digits or v[8] != "-" or v[13] != "-" or v[18] != "-" or v[23] != "-":
        return None
    return b


def is_canonical_uuid(v: str) -> bool:
    """True when `v` is a uuid in its canonical spelling (lowercase, hyphenated 8-4-4-4-12)."""
    return v.__class__ is str and _uuid_bytes(v) is not None


def compact_id(v: str) -> Any:
    """The msgpack form of a string field: `ExtType(EXT_ID, 16 bytes)` for a canonical
    uuid, the string itself otherwise. Callers check the length (36) first, inline."""
    out = compacted.get(v)
    if out is None:
        b = _uuid_bytes(v)
        # tuple.__new__: ExtType's own constructor checks its arguments in Python, which
        # costs more than the rest of this function (these arguments are known good).
        out = v if b is None else _tuple_new(_ExtType, (EXT_ID, b))
        if len(compacted) >= _CACHE_SIZE:
            compacted.clear()
        compacted[v] = out
    return out


def str_kind(tp: Any) -> str | None:
    """"str" for a `str` annotation, "optional" for `str | None`, else None: the flat
    fields whose values the codec's generated encoders compact (eventstore/codec.py)."""
    if tp is str:
        return "str"
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and set(typing.get_args(tp)) == {str, type(None)}:
        return "optional"
    return None


def _uuid_text(b: bytes) -> str:
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ext_hook(code: int, data: bytes) -> Any:
    """msgpack's `ext_hook` for payloads: a compacted id becomes its string again; any
    other extension stays msgpack's `ExtType`, as without the hook."""
    if code == EXT_ID and len(data) == 16:
        text = texts.get(data)
        if text is None:
            text = _uuid_text(data)
            if len(texts) >= _CACHE_SIZE:
                texts.clear()
            texts[data] = text
        return text
    return _ExtType(code, data)


unpackb: Callable[..., Any] = functools.partial(msgpack.unpackb, ext_hook=ext_hook)
"""`msgpack.unpackb` with `ext_hook`: what every read of a stored payload unpacks with."""


def id_key(v: str) -> bytes:
    """The projection-column form of an id: 16 bytes for a canonical uuid, else its UTF-8
    bytes (plus one 0xFF byte when those are exactly 16 long, so that no text key is 16)."""
    if len(v) == 36:
        b = _uuid_bytes(v)
        if b is not None:
            return b
    raw = v.encode()
    return raw + b"\xff" if len(raw) == 16 else raw


def id_from_key(k: bytes) -> str:
    """The id an `id_key` stands for (exactly the string that was keyed)."""
    if k.__class__ is not bytes:
        k = bytes(k)  # a driver's memoryview
    if len(k) == 16:
        return _uuid_text(k)
    if k[-1:] == b"\xff":
        k = k[:-1]
    return k.decode()
