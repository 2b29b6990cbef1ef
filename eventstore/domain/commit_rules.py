"""Pure rules of the runtime commit: validating a graph delta and turning a commit into events.

Nothing here touches the store: the facade (`commits.py`) reads the state inside its
write transaction, calls these functions, and appends what they return.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import InvalidArgument, StoreError
from .commit_events import GraphReplaced, NodeAdded, SessionCommitted
from .graph_model import (
    AgentFrame,
    GraphAppend,
    GraphReplace,
    GraphUnchanged,
    ModelConfig,
    SessionNode,
    TurnStamp,
    UsageDelta,
)


class HeadRevisionConflict(StoreError):
    """The commit expected another head revision; nothing was written."""

    def __init__(self, session_id: str, expected: int | None, actual: int) -> None:
        self.session_id = session_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"session {session_id!r}: expected head revision {expected}, actual {actual}")


class SessionBindingMismatch(StoreError):
    """Part of a commit names another session than the one it commits to."""


class RuntimeTurnCommitConflict(StoreError):
    """The turn id was already committed with another hash (or a stamp names another session)."""


class InvalidGraphDelta(StoreError):
    """The graph delta would break the tree: a duplicate node id, a missing parent or leaf."""


def check_graph_delta(session_id: str, delta: Any, exists: Callable[[str], bool],
                      live: Callable[[str], bool]) -> None:
    """Validate a delta against the current graph.

    `exists(node_id)` says whether the id is taken (tombstoned nodes included) and
    `live(node_id)` whether it is a live node. Node ids must be new and unique, every
    parent must be a live node or one of the new nodes, and the leaf must exist (the
    reference does not check the leaf; a dangling leaf makes the active path empty).
    """
    where = f"session {session_id!r}"
    if isinstance(delta, GraphUnchanged):
        if delta.leaf is not None and not live(delta.leaf):
            raise InvalidGraphDelta(f"{where}: leaf {delta.leaf!r} is not a live node")
        return
    if not isinstance(delta, (GraphAppend, GraphReplace)):
        raise InvalidArgument(f"{where}: graph must be GraphUnchanged, GraphAppend or GraphReplace")
    replace = isinstance(delta, GraphReplace)
    new: set[str] = set()
    for i, node in enumerate(delta.nodes):
        if not isinstance(node, SessionNode):
            raise InvalidArgument(f"{where}: graph.nodes[{i}] must be a SessionNode")
        if not node.node_id:
            raise InvalidGraphDelta(f"{where}: graph.nodes[{i}] has an empty node_id")
        if node.node_id in new or (not replace and exists(node.node_id)):
            raise InvalidGraphDelta(f"{where}: duplicate node id {node.node_id!r} (graph.nodes[{i}])")
        parent = node.parent_node_id
        if parent is not None and parent not in new and (replace or not live(parent)):
            raise InvalidGraphDelta(
                f"{where}: graph.nodes[{i}] ({node.node_id!r}) has parent {parent!r}, which is not a live node")
        new.add(node.node_id)
    if delta.leaf is not None and delta.leaf not in new and (replace or not live(delta.leaf)):
        raise InvalidGraphDelta(f"{where}: leaf {delta.leaf!r} is not a node of the graph")


def commit_events(session_id: str, revision: int, delta: Any, previous_leaf: str | None,
                  checkpoint_ref: str | None, config: ModelConfig | None,
                  frames: tuple[AgentFrame, ...] | None, current_agent_frame_id: str | None,
                  usage: tuple[UsageDelta, ...], turn: TurnStamp | None,
                  batch_ids: tuple[str, ...], attachment_ids: tuple[str, ...]) -> list[Any]:
    """The events of one commit, in the order they must be applied."""
    events: list[Any] = []
    if isinstance(delta, GraphReplace):
        events.append(GraphReplaced(session_id))
    if isinstance(delta, (GraphAppend, GraphReplace)):
        events.extend(NodeAdded(session_id, node) for node in delta.nodes)
    leaf = delta.leaf if delta.leaf is not None or isinstance(delta, GraphReplace) else previous_leaf
    events.append(SessionCommitted(
        session_id=session_id, revision=revision, leaf_node_id=leaf, checkpoint_ref=checkpoint_ref,
        config=config, frames=frames, current_agent_frame_id=current_agent_frame_id, usage=usage,
        turn=turn, enqueued_batch_ids=batch_ids, committed_attachment_ids=attachment_ids))
    return events
