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
  extension does, and UTF-8 text never does) to the careful path. A payload holding a
  compact id (extension 85, eventstore/ids.py) would fail here, since msgspec takes no
  extension for a `str` field, so the caller sends one holding that extension's header
  (`ids.ID_MARK`) to the careful path too.

Anything the direct decoder refuses or fails on goes to the careful path, which either
decodes it the same way or raises the typed error naming the field.
"""

from __future__ import annotations

import enum
import types
import typing
import weakref
from typing import Any, Callable

import attrs
import msgspec

from .codec import _SCALARS, _no_init_logic

MAX_FIELDS = 15
"""The most fields a fixmap header can count (one byte: 0x80 | n)."""


def _refuse_ext(code: int, data: memoryview) -> Any:
    raise ValueError(f"msgpack extension type {code}")


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


_CACHE: "weakref.WeakKeyDictionary[type, tuple[Callable[[bytes], Any], int] | None]" = weakref.WeakKeyDictionary()


def direct_decoder(cls: type) -> tuple[Callable[[bytes], Any], int] | None:
    """(decode(payload) -> instance, the fixmap header byte its payloads start with) for a
    class msgspec decodes exactly as the careful path does; None for any other class.
    Cached per class: every read that filters by type builds its own decoder table."""
    try:
        return _CACHE[cls]
    except KeyError:
        found = _CACHE[cls] = _build(cls)
        return found


def _build(cls: type) -> tuple[Callable[[bytes], Any], int] | None:
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
    return decoder.decode, 0x80 | len(fields)
