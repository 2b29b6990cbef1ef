"""Argument checks and canonical encodings shared by every domain (and the projections).

Each check raises `InvalidArgument` naming the argument, so that bad input never reaches
SQLite (which would raise `OverflowError` for an integer outside 64 bits, or store a
wrong type silently). The canonical encodings give equal content equal bytes, so their
hashes can be compared across processes and versions: a hash that was ever recorded in
an event must keep its encoding, which is why two msgpack key orders exist (see below).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import codec
from .errors import InvalidArgument

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""SQLite stores signed 64-bit integers: every integer argument must fit."""

__all__ = [
    "INT64_MAX", "INT64_MIN", "canonical_json", "canonical_msgpack", "check_int", "check_text",
    "derived_token", "json_digest", "sha256_hex", "text_keyed_msgpack",
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
    if (not allow_nul and "\x00" in value) or (max_bytes is not None and len(value.encode()) > max_bytes):
        rule = f"at most {max_bytes} bytes" if max_bytes is not None else "a string"
        raise InvalidArgument(f"{what} {value[:40]!r}: {rule}{'' if allow_nul else ' and no NUL'}")
    return value


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
