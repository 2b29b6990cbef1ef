"""Argument checks and canonical encodings shared by every domain (and the projections).

Each check raises `InvalidArgument` naming the argument, so that bad input never reaches
SQLite (which would raise `OverflowError` for an integer outside 64 bits, or store a
wrong type silently). The canonical encodings give equal content equal bytes, so their
hashes can be compared across processes and versions: a hash that was ever recorded in
an event must keep its encoding, which is why two msgpack key orders exist (see below).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from typing import Any, Callable, Iterable, TypeVar

import attrs


from . import codec
from .errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""SQLite stores signed 64-bit integers: every integer argument must fit."""

__all__ = [
    "INT64_MAX", "INT64_MIN", "canonical_json", "canonical_msgpack", "check_int", "check_text",
    "derived_token", "json_digest", "sha256_hex", "text_keyed_msgpack", "check_utf8", "find_unencodable",
    "guard_public_methods", "names_unencodable_text",
]


# --- arguments ---------------------------------------------------------------------------


def check_int(value: Any, what: str, low: int = 0, high: int | None = None) -> int:
    """An integer (not a bool) in [low, high], and always inside SQLite's signed 64 bits."""
    top = INT64_MAX if high is None else min(high, INT64_MAX)
    if isinstance(value, bool) or not isinstance(value, int) or value < max(low, INT64_MIN) or value > top:
        bound = f" and <= {high}" if high is not None else " and below 2**63 (the store's integer range)"
        raise InvalidArgument(f"{what} must be an integer >= {low}{bound}, got {value!r}"[:300])
    return value


def check_text(value: Any, what: str, max_bytes: int | None = None, *, allow_nul: bool = True) -> str:
    """A non-empty string; with `max_bytes`, at most that many UTF-8 bytes; returns it."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}"[:300])
    check_utf8(value, what)
    if (not allow_nul and "\x00" in value) or (max_bytes is not None and len(value.encode()) > max_bytes):
        rule = f"at most {max_bytes} bytes" if max_bytes is not None else "a string"
        raise InvalidArgument(f"{what} {value[:40]!r}: {rule}{'' if allow_nul else ' and no NUL'}")
    return value


def check_utf8(value: str, what: str) -> str:
    """A string that UTF-8 can encode (no lone surrogate such as "\\ud800"); returns it."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidArgument(_not_utf8(what, value, exc.start)) from None
    return value


def _not_utf8(what: str, value: str, index: int) -> str:
    return (f"{what} is not valid text: it holds a lone surrogate {value[index]!r} at index {index} "
            f"(UTF-8 cannot encode it), got {value[:40]!r}")


def find_unencodable(value: Any, what: str, depth: int = 0) -> str | None:
    """The message naming the first string inside `value` (attrs fields, dicts, lists,
    tuples) that UTF-8 cannot encode, with its path from `what`; None when there is none."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return _not_utf8(what, value, exc.start)
        return None
    if depth > 8:
        return None
    items: Iterable[tuple[str, Any]] = ()
    if attrs.has(type(value)):
        items = ((f"{what}.{f.name}", getattr(value, f.name, None)) for f in attrs.fields(type(value)))
    elif isinstance(value, dict):
        items = (entry for k, v in value.items()
                 for entry in ((f"{what} key {k!r}", k), (f"{what}[{k!r}]", v)))
    elif isinstance(value, (list, tuple)):
        items = ((f"{what}[{i}]", v) for i, v in enumerate(value))
    for path, item in items:
        found = find_unencodable(item, path, depth + 1)
        if found is not None:
            return found
    return None


def names_unencodable_text(fn: F) -> F:
    """Wrap `fn` so that a UnicodeEncodeError raised inside it (SQLite, hashing, msgpack all
    encode text as UTF-8) becomes InvalidArgument naming the argument that holds the string.

    The check runs only when the error is raised, so a valid call pays nothing for it.
    """
    signature = inspect.signature(fn)

    def explain(args: tuple[Any, ...], kw: dict[str, Any], exc: UnicodeEncodeError) -> InvalidArgument | None:
        try:
            bound = signature.bind(*args, **kw)
        except TypeError:
            return None
        for name, value in list(bound.arguments.items())[1:]:  # [0] is self
            found = find_unencodable(value, name)
            if found is not None:
                return InvalidArgument(found)
        return None

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kw: Any) -> Any:
            try:
                return (yield from fn(*args, **kw))
            except UnicodeEncodeError as exc:
                err = explain(args, kw, exc)
                if err is None:
                    raise
                raise err from None

        gen.__dict__["guards_unencodable_text"] = True
        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except UnicodeEncodeError as exc:
            err = explain(args, kw, exc)
            if err is None:
                raise
            raise err from None

    call.__dict__["guards_unencodable_text"] = True
    return call  # type: ignore[return-value]


def guard_public_methods(cls: type) -> type:
    """Apply `names_unencodable_text` to every public plain method of `cls` (own or inherited)."""
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_") and not getattr(member, "guards_unencodable_text", False):
            setattr(cls, name, names_unencodable_text(member))
    return cls


# --- canonical encodings -------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Canonical JSON text of a JSON value: sorted keys, no spaces, UTF-8 kept, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(data: str | bytes) -> str:
    """Hex SHA-256 of bytes, or of a string's UTF-8 bytes."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def json_digest(value: Any) -> str:
    """Hex SHA-256 of a JSON value's canonical JSON."""
    return sha256_hex(canonical_json(value))


def _by_packed_key(value: Any) -> Any:
    if isinstance(value, dict):
        items = [(_by_packed_key(k), _by_packed_key(v)) for k, v in value.items()]
        return dict(sorted(items, key=lambda kv: codec.pack(kv[0])))
    if isinstance(value, (list, tuple)):
        return [_by_packed_key(v) for v in value]
    return value


def canonical_msgpack(value: Any) -> bytes:
    """msgpack of a plain value with every map ordered by its keys' packed bytes.

    Works for keys of any msgpack type (mixed too); tuples encode as lists. Used for the
    content hashes of turn inputs."""
    return codec.pack(_by_packed_key(value))


def _by_text_key(value: Any) -> Any:
    cls = value.__class__
    if cls is dict:
        return {k: _by_text_key(value[k]) for k in sorted(value)}
    if cls is list or cls is tuple:
        return [_by_text_key(v) for v in value]
    return value


def text_keyed_msgpack(value: Any) -> bytes:
    """msgpack of a plain value whose map keys are strings, ordered as Python orders them.

    The encoding behind segment handover hashes, which events record: it differs from
    canonical_msgpack for keys of different lengths, so it stays as it is."""
    return codec.pack(_by_text_key(value))


def derived_token(*parts: object, sep: str = ":", hashed: bool = True, prefix: str = "",
                  length: int | None = None) -> str:
    """A deterministic token from the parts of a decision (lease and claim tokens).

    `prefix` + the parts joined by `sep` (or their SHA-256 hex when `hashed`, cut to
    `length` digits). Every lease, claim and effect token is made here, each domain with
    its own parts and format (recorded tokens keep theirs)."""
    text = sep.join(str(p) for p in parts)
    body = sha256_hex(text) if hashed else text
    return prefix + (body[:length] if length is not None else body)
