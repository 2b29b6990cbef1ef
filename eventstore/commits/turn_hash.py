"""The turn commit hash: the identity of a turn's final commit (docs/semantics.md §1).

The hash must not depend on things that change when the same turn is retried: the
expected head revision (law 10), the lease fields, the stamp itself, and volatile ids
and times inside the content. So the commit is turned into JSON, then:

* `expected_head_revision`, `session_execution_lease`, `release_session_execution_lease`
  and `turn_commit` are cleared;
* `id` is dropped from message-like objects (those with `role` and `parts`) and from
  part-like objects (those with `kind`, `content` and `prune_state`);
* `node_id`, `parent_node_id`, `leaf_node_id` and `timestamp` are dropped everywhere;

and the SHA-256 hex digest of the JSON with sorted keys and compact separators is the
hash. Bytes enter as hex strings.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any

import attrs

_CLEARED = ("expected_head_revision", "lease", "release_lease", "turn_commit")
_DROPPED_EVERYWHERE = frozenset({"node_id", "parent_node_id", "leaf_node_id", "timestamp", "leaf"})


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    return value


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        message_like = "role" in value and "parts" in value
        part_like = "kind" in value and "content" in value and "prune_state" in value
        out = {}
        for k, v in value.items():
            if k in _DROPPED_EVERYWHERE:
                continue
            if k == "id" and (message_like or part_like):
                continue
            out[k] = _strip(v)
        return out
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def turn_commit_hash(commit: Any) -> str:
    """The SHA-256 hex identity of a RuntimeCommit, ignoring revision, lease and volatile ids."""
    plain = _plain(commit)
    if isinstance(plain, dict):
        for name in _CLEARED:
            plain.pop(name, None)
        # The graph delta's variant matters (append vs replace), its class name says which.
        graph = getattr(commit, "graph", None)
        if graph is not None:
            plain["graph"] = {"variant": type(graph).__name__, **_plain(graph)}
    text = json.dumps(_strip(plain), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def stamp_turn(commit: Any, turn_id: str) -> Any:
    """The commit with its turn stamp set: `TurnStamp(session_id, turn_id, turn_commit_hash(commit))`.

    A runtime that retries a turn after a crash rebuilds the same commit, stamps it the
    same way and gets the original result back (law 9) instead of a second commit.
    """
    from .model import TurnStamp

    if not isinstance(turn_id, str) or not turn_id:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"turn_id must be a non-empty string, got {turn_id!r}")
    return attrs.evolve(commit, turn_commit=TurnStamp(commit.session_id, turn_id, turn_commit_hash(commit)))


__all__ = ["stamp_turn", "turn_commit_hash"]
