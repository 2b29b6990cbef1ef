"""Events of the runtime commit: graph nodes, the committed head, tombstones, vacuum,
attachments, artifact pointers and blob GC.

A commit appends, in one atomic append on `session:<id>`: `session.graph_replaced`
(only for a full replace), one `session.node_added` per new node, then one
`session.committed` carrying the new head as a delta of the previous one (config and
frames only when they changed), so the log grows with what changed, not with the size
of the session.
"""

from __future__ import annotations

from typing import Any

from ..events import event
from .graph_model import AgentFrame, ModelConfig, SessionNode, TurnStamp, UsageDelta


@event("session.node_added")
class NodeAdded:
    """A node joined the conversation tree. Its payload lives only in this event."""

    session_id: str
    node: SessionNode


@event("session.graph_replaced")
class GraphReplaced:
    """Every node of the session was dropped; the node_added events that follow start again."""

    session_id: str


@event("session.committed")
class SessionCommitted:
    """A runtime commit landed: the head moved to `revision`.

    `config` and `frames` are None when unchanged since the previous commit.
    """

    session_id: str
    revision: int
    leaf_node_id: str | None
    checkpoint_ref: str | None
    config: ModelConfig | None = None
    frames: tuple[AgentFrame, ...] | None = None
    current_agent_frame_id: str | None = None
    usage: tuple[UsageDelta, ...] = ()
    turn: TurnStamp | None = None
    enqueued_batch_ids: tuple[str, ...] = ()
    committed_attachment_ids: tuple[str, ...] = ()


@event("session.nodes_tombstoned")
class NodesTombstoned:
    """Nodes hidden from reads (still stored until vacuum)."""

    session_id: str
    node_ids: tuple[str, ...]


@event("session.vacuumed")
class SessionVacuumed:
    """Vacuum removed tombstoned nodes and terminal input rows from the projections."""

    session_id: str
    removed_node_count: int
    removed_pending_turn_input_tombstone_count: int


@event("session.attachment_intent_recorded")
class AttachmentIntentRecorded:
    """An upload is about to happen: the ref is live (a GC root) from now on."""

    session_id: str
    attachment_id: str
    blob_ref: str
    owner_kind: str | None
    owner_id: str | None


@event("session.attachment_intents_forgotten")
class AttachmentIntentsForgotten:
    """Aged uncommitted intents whose owner is dead were dropped."""

    session_id: str
    attachment_ids: tuple[str, ...]


@event("store.artifact_ref_set")
class ArtifactRefSet:
    """A named pointer (namespace, name) now points at a blob (None: removed)."""

    namespace: str
    artifact_ref: str
    blob_ref: str | None


@event("store.blob_gc_ran")
class BlobGcRan:
    """A blob GC run and its report (the blob table is not a projection: this is the record)."""

    root_count: int
    retained_blob_count: int
    deleted_blob_count: int
    deleted_refs_digest: str
    """SHA-256 of the sorted deleted refs, joined by newlines (the refs themselves may be many)."""


__all__ = [
    "NodeAdded",
    "GraphReplaced",
    "SessionCommitted",
    "NodesTombstoned",
    "SessionVacuumed",
    "AttachmentIntentRecorded",
    "AttachmentIntentsForgotten",
    "ArtifactRefSet",
    "BlobGcRan",
    "Any",
]
