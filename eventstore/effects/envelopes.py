"""JSON-like values for journaled requests and outcomes: checking, canonical text, hashes, diffs.

Effect envelopes, effect outcomes, trigger definitions and occurrence payloads are all
plain JSON-like values (dict with str keys, list, str, int, float, bool, None). This
module checks a value has that shape (naming the path of the first offending part),
turns it into canonical JSON (sorted keys, compact separators) for hashing, and
computes a structural diff between two values, so that a mismatch error can say
*where* two requests differ: ``$.arguments.city: 'Paris' != 'Lyon'``.

It imports only the core, so event modules, projections and facades may all use it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..checks import derived_token, json_digest
from ..errors import InvalidArgument

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_DEPTH = 64


class _NotJson(Exception):
    pass


def json_value(value: Any, where: str = "$", what: str = "value") -> Any:
    """Return a JSON-like copy of `value` (tuples become lists), or raise InvalidArgument.

    The message names the path of the first part that is not JSON-like, for example
    ``request $.arguments.when: datetime is not JSON-like``.
    """
    try:
        return _fast_copy(value, 0)
    except _NotJson:
        pass
    return _copy(value, where, what, 0)  # the careful walk, which names the offending path


def _fast_copy(value: Any, depth: int) -> Any:
    # Every request and outcome passes here: no path strings are built unless a value is
    # bad, in which case _copy walks again and builds them.
    cls = value.__class__
    if value is None or cls is str or cls is bool or cls is int:
        return value
    if depth > MAX_DEPTH:
        raise _NotJson
    if cls is dict:
        out = {}
        for k, v in value.items():
            if k.__class__ is not str:
                raise _NotJson
            out[k] = _fast_copy(v, depth + 1)
        return out
    if cls is list or cls is tuple:
        return [_fast_copy(v, depth + 1) for v in value]
    if cls is float and math.isfinite(value):
        return value
    raise _NotJson


def _copy(value: Any, path: str, what: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"{what} {path}: nested deeper than {MAX_DEPTH} levels")
    cls = value.__class__
    if value is None or cls is str or cls is bool or cls is int:
        return value
    if cls is float:
        if not math.isfinite(value):
            raise InvalidArgument(f"{what} {path}: {value!r} is not a finite number")
        return value
    if cls is dict:
        out = {}
        for k, v in value.items():
            if k.__class__ is not str:
                raise InvalidArgument(f"{what} {path}: key {k!r} is a {type(k).__name__}; keys must be strings")
            out[k] = _copy(v, child_path(path, k), what, depth + 1)
        return out
    if cls is list or cls is tuple:
        return [_copy(v, f"{path}[{i}]", what, depth + 1) for i, v in enumerate(value)]
    raise InvalidArgument(f"{what} {path}: {type(value).__name__} is not JSON-like "
                          f"(use dict, list, str, int, float, bool or None)")


def child_path(path: str, key: str) -> str:
    """The path of `key` inside the object at `path`: `$.a` or `$["a b"]`."""
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def digest(value: Any) -> str:
    """SHA-256 hex of the canonical JSON of a JSON-like value."""
    return json_digest(value)


def short_id(prefix: str, *parts: str, length: int = 32) -> str:
    """A deterministic id: `prefix-` and the first `length` hex digits of sha256 of the parts."""
    return derived_token(*parts, sep="\x00", prefix=f"{prefix}-", length=length)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def structural_diff(recorded: Any, requested: Any, path: str = "$", limit: int = 8) -> list[str]:
    """Where two JSON-like values differ, as `path: recorded != requested` lines (at most `limit`).

    Objects are compared key by key (a key on one side only shows `<missing>` on the
    other), arrays element by element (then their lengths), anything else by value and type.
    """
    out: list[str] = []
    _diff(recorded, requested, path, out, limit)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{child_path(path, k)}: <missing> != {_show(b[k])}")
            elif k not in b:
                out.append(f"{child_path(path, k)}: {_show(a[k])} != <missing>")
            else:
                _diff(a[k], b[k], child_path(path, k), out, limit)
            if len(out) >= limit:
                return
        return
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out, limit)
            if len(out) >= limit:
                return
        if len(a) != len(b):
            out.append(f"{path}: array of {len(a)} != array of {len(b)}")
        return
    # Classes are compared too: bool is an int subclass in Python, and 1 and 1.0 hash to
    # different canonical texts, so the diff must report them exactly when the hashes differ.
    if a.__class__ is not b.__class__ or a != b:
        out.append(f"{path}: {_show(a)} != {_show(b)}")
