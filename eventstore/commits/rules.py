"""Pure rules of the runtime commit: the typed errors, validating a graph delta and the
other parts of a commit, and turning a decided commit into its event.

Nothing here touches the store: the facade (`commit.py`) reads the state inside its
write transaction, calls these functions, and appends what they return.
"""

from __future__ import annotations

from typing import Any, Callable, cast, Sequence

from ..checks import check_int
from ..errors import InvalidArgument, StoreError
from .events import CommitDetails, HeadChange, SessionCommitted, StoredNode
from .model import (
    AgentFrame,
    GraphAppend,
    GraphReplace,
    GraphUnchanged,
    ModelConfig,
    SessionNode,
    TurnStamp,
    UsageDelta,
)

# --- errors ------------------------------------------------------------------------------


class HeadRevisionConflict(StoreError):
    """The commit expected another head revision; nothing was written."""

    def __init__(self, session_id: str, expected: int | None, actual: int) -> None:
        self.session_id = session_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"session {session_id!r}: expected head revision {expected}, actual {actual}")


class SessionBindingMismatch(StoreError):
    """Part of a commit (fence, frame, claim, outbox batch) names another session than the
    one it commits to; nothing was written."""


class RuntimeTurnCommitConflict(StoreError):
    """The turn id was already committed with another hash (or a stamp names another
    session); nothing was written."""


class InvalidGraphDelta(StoreError):
    """The graph delta would break the tree: a duplicate node id, a missing parent or leaf."""


# --- checks ------------------------------------------------------------------------------


def _where(session_id: str) -> str:
    return f"session {session_id!r}"


def check_graph_delta(session_id: str, delta: Any, exists: Callable[[str], bool],
                      live: Callable[[str], bool]) -> None:
    """Validate a delta against the current graph.

    `exists(node_id)` says whether the id is taken (tombstoned nodes included) and
    `live(node_id)` whether it is a live node. Node ids must be new and unique, every
    parent must be a live node or an earlier node of the delta, and the leaf must be a
    live node (the reference does not check the leaf; a dangling leaf makes the active
    path empty, so we refuse it).
    """
    # The messages name the session; its repr is built only when one is raised.
    if isinstance(delta, GraphUnchanged):
        if delta.leaf is not None and (not isinstance(delta.leaf, str) or not live(delta.leaf)):
            raise InvalidGraphDelta(f"{_where(session_id)}: graph.leaf {delta.leaf!r} is not a live node")
        return
    if not isinstance(delta, (GraphAppend, GraphReplace)):
        raise InvalidArgument(f"{_where(session_id)}: commit.graph must be GraphUnchanged, GraphAppend or GraphReplace, "
                              f"got {type(delta).__name__}")
    replace = isinstance(delta, GraphReplace)
    if not isinstance(delta.nodes, (tuple, list)):
        raise InvalidArgument(f"{_where(session_id)}: graph.nodes must be a tuple of SessionNode")
    new: set[str] = set()
    for i, node in enumerate(delta.nodes):
        if not isinstance(node, SessionNode):
            raise InvalidArgument(f"{_where(session_id)}: graph.nodes[{i}] must be a SessionNode, got {type(node).__name__}")
        if not isinstance(node.node_id, str) or not node.node_id:
            raise InvalidGraphDelta(f"{_where(session_id)}: graph.nodes[{i}] has an empty or non-string node_id")
        if node.node_id in new or (not replace and exists(node.node_id)):
            raise InvalidGraphDelta(f"{_where(session_id)}: duplicate node id {node.node_id!r} (graph.nodes[{i}])")
        parent = node.parent_node_id
        if parent is not None and parent not in new and (replace or not live(parent)):
            raise InvalidGraphDelta(
                f"{_where(session_id)}: graph.nodes[{i}] ({node.node_id!r}) has parent {parent!r}, which is not a live node "
                f"or an earlier node of this commit")
        new.add(node.node_id)
    leaf = delta.leaf
    if leaf is not None and leaf not in new and (replace or not isinstance(leaf, str) or not live(leaf)):
        raise InvalidGraphDelta(f"{_where(session_id)}: graph.leaf {leaf!r} is not a node of the graph")


def check_usage(session_id: str, usage: Sequence[Any]) -> None:
    """Usage deltas: UsageDelta values with string source and model and token counts >= 0."""
    for i, u in enumerate(usage):
        if not isinstance(u, UsageDelta):
            raise InvalidArgument(f"session {session_id!r}: commit.usage_deltas[{i}] must be a UsageDelta, "
                                  f"got {type(u).__name__}")
        for name in ("source", "model"):
            if not isinstance(getattr(u, name), str):
                raise InvalidArgument(f"session {session_id!r}: commit.usage_deltas[{i}].{name} must be a string")
        for name in ("input", "output", "cache_read_input", "cache_write_input", "reasoning_output"):
            value = getattr(u, name)
            check_int(value, f"session {session_id!r}: commit.usage_deltas[{i}].{name}")


def check_text_ids(session_id: str, ids: Sequence[Any], what: str) -> tuple[str, ...]:
    """A tuple of non-empty strings (attachment ids, ...), naming the bad entry."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (tuple, list)):
        raise InvalidArgument(f"session {session_id!r}: {what} must be a tuple of strings")
    for i, x in enumerate(ids):
        if not isinstance(x, str) or not x:
            raise InvalidArgument(f"session {session_id!r}: {what}[{i}] must be a non-empty string, got {x!r}")
    return tuple(ids)


# --- the event ---------------------------------------------------------------------------


def head_fingerprint(config: ModelConfig | None, frames: Sequence[AgentFrame], current: str | None) -> bytes:
    """The encoded (config, frames, current frame): equal exactly when a commit leaves them as
    they are. Compared encoded, because values of `Any` fields come back from storage as
    lists where the caller may have passed tuples."""
    from .. import codec

    try:
        return codec.pack(codec.class_codec(HeadChange).to_plain(HeadChange(config, tuple(frames), current)))
    except (codec.ShapeError, InvalidArgument) as exc:
        raise InvalidArgument(f"commit config / agent_frames / current_agent_frame_id: {exc}") from None



def new_leaf(delta: Any, previous_leaf: str | None) -> str | None:
    """The leaf after applying `delta`: its own leaf, or the previous one when it names none
    (a full replace with no leaf has none)."""
    if delta.leaf is not None or isinstance(delta, GraphReplace):
        return cast("str | None", delta.leaf)
    return previous_leaf


def commit_event(revision: int, delta: Any, previous_leaf: str | None, checkpoint_ref: str | None,
                 previous_checkpoint_ref: str | None, head: tuple[ModelConfig | None, tuple[AgentFrame, ...],
                                                                   str | None] | None,
                 usage: Sequence[UsageDelta], turn: TurnStamp | None, batch_ids: tuple[str, ...],
                 attachment_ids: tuple[str, ...]) -> SessionCommitted:
    """The `session.committed` event of a decided commit.

    `head` is (config, frames, current frame) when any of them changed, else None. The
    checkpoint ref is written only when it differs from the previous one.
    """
    replaced = delta.__class__ is GraphReplace or isinstance(delta, GraphReplace)
    if delta.__class__ is GraphAppend or replaced or isinstance(delta, GraphAppend):
        nodes = tuple([StoredNode.from_node(n) for n in delta.nodes])
    else:
        nodes = ()
    details = None
    # The common turn has no details: none is built (CommitDetails.is_empty() would say so).
    if replaced or head is not None or turn is not None or batch_ids or attachment_ids:
        details = CommitDetails(
            graph_replaced=replaced, head=HeadChange(*head) if head is not None else None,
            turn=turn, enqueued_batch_ids=batch_ids, committed_attachment_ids=attachment_ids)
        if details.is_empty():
            details = None
    leaf = delta.leaf
    return SessionCommitted(
        revision=revision, nodes=nodes,
        leaf_node_id=leaf if leaf is not None or replaced else previous_leaf,
        checkpoint=bytes.fromhex(checkpoint_ref) if checkpoint_ref is not None and checkpoint_ref != previous_checkpoint_ref
        else None,
        usage=tuple([(u.source, u.model, u.input, u.output, u.cache_read_input, u.cache_write_input,
                      u.reasoning_output) for u in usage]) if usage else (),
        details=details)


__all__ = [
    "HeadRevisionConflict",
    "InvalidGraphDelta",
    "RuntimeTurnCommitConflict",
    "SessionBindingMismatch",
    "check_graph_delta",
    "check_text_ids",
    "check_usage",
    "commit_event",
    "head_fingerprint",
    "new_leaf",
]
