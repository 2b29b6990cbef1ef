"""Events of the runtime commit: the committed turn, tombstones, vacuum, attachments,
artifact pointers and blob GC.

One commit is one `session.committed` event on `session:<id>` (plus the settlement,
interrupt and outbox events of the queue and input domains, in the same append). It
carries the new nodes themselves: the log is the only copy of a conversation, and the
graph projection keeps an index pointing into these events.

Why one event and why this shape: every event row costs a hash, a header and an index
entry (about 100-170 bytes with a uuid session id), so a turn that appends one message
pays that once, and the event holds only what changed. The session id is the stream's
(`session:<id>`), not repeated in the payload; the rarer parts of a commit (a full graph
replace, a changed config / frames / current frame, a turn stamp, outbox batch ids,
attachment ids) sit in an optional `details` map that is None for an ordinary turn; the
checkpoint ref is written only when it changed. A conversation growing by one message
per turn therefore grows the log by about one message plus a small constant
(docs/benchmarks.md, "Runtime commit").
"""

from __future__ import annotations

from typing import Any

import attrs

from ..events import event
from .model import AgentFrame, EventPayload, ModelConfig, PluginPayload, SessionNode, TurnStamp, UsageDelta

SESSION_STREAM_PREFIX = "session:"


def session_of(stream: str) -> str | None:
    """The session id of a `session:<id>` stream (None for any other stream)."""
    return stream[len(SESSION_STREAM_PREFIX):] if stream.startswith(SESSION_STREAM_PREFIX) else None


@attrs.frozen
class StoredNode:
    """A SessionNode as a commit event stores it: the same facts under short field names
    (a node is written once per turn, so its field names are a visible part of the
    per-turn cost). `plugin` is None for an EventPayload (whose `event` is in `event`);
    for a PluginPayload it is the plugin type and `event` holds the body."""

    id: str
    parent: str | None
    cause: str | None
    frame: str | None
    at: str
    event: Any
    plugin: str | None = None

    @classmethod
    def from_node(cls, node: SessionNode) -> "StoredNode":
        """The stored form of a node."""
        p = node.payload
        if isinstance(p, PluginPayload):
            return cls(node.node_id, node.parent_node_id, node.caused_by, node.agent_frame_id, node.timestamp,
                       p.body, p.plugin_type)
        return cls(node.node_id, node.parent_node_id, node.caused_by, node.agent_frame_id, node.timestamp,
                   p.event)

    def to_node(self) -> SessionNode:
        """The SessionNode this stands for."""
        payload = EventPayload(self.event) if self.plugin is None else PluginPayload(self.plugin, self.event)
        return SessionNode(self.id, payload, self.parent, self.cause, self.frame, self.at)


@attrs.frozen
class HeadChange:
    """The head's config, agent frames and current frame, written when any of them changed.

    Frames carry `execution_state_ref` (the snapshot bytes live in a blob).
    """

    config: ModelConfig | None
    frames: tuple[AgentFrame, ...]
    current_agent_frame_id: str | None


@attrs.frozen
class CommitDetails:
    """The rarer parts of a commit; the event carries None when all of them are empty."""

    graph_replaced: bool = False
    """True for a full graph replace: every node (tombstoned ones too) was dropped before `nodes`."""
    head: HeadChange | None = None
    """None: config, frames and current frame are unchanged."""
    turn: TurnStamp | None = None
    enqueued_batch_ids: tuple[str, ...] = ()
    """The outbox batches this commit enqueued (their own events follow in the same append)."""
    committed_attachment_ids: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when nothing here differs from the defaults."""
        return self == _EMPTY_DETAILS


_EMPTY_DETAILS = CommitDetails()


@event("session.committed")
class SessionCommitted:
    """A runtime commit landed on `session:<id>`: the head moved to `revision`.

    `nodes` are the nodes this commit added, in order (their payloads live only here;
    `StoredNode.to_node()` gives the SessionNode). `leaf_node_id` is the leaf after the
    commit. `checkpoint` is the new checkpoint's ref as its 32 raw SHA-256 bytes, None
    when the checkpoint did not change (`checkpoint_ref` gives the hex ref). `usage` are
    the token deltas as (source, model, input, output, cache_read_input,
    cache_write_input, reasoning_output) rows.
    """

    revision: int
    nodes: tuple[StoredNode, ...]
    leaf_node_id: str | None
    checkpoint: bytes | None = None
    usage: tuple[tuple[str, str, int, int, int, int, int], ...] = ()
    details: CommitDetails | None = None

    @property
    def checkpoint_ref(self) -> str | None:
        """The new checkpoint ref (64 hex digits), or None when it did not change."""
        return self.checkpoint.hex() if self.checkpoint is not None else None

    def usage_deltas(self) -> tuple[UsageDelta, ...]:
        """The usage rows as UsageDelta values."""
        return tuple(UsageDelta(*u) for u in self.usage)


@event("session.nodes_tombstoned")
class NodesTombstoned:
    """Nodes hidden from reads (still indexed until vacuum)."""

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
    blob_ref: str | None
    """The blob in this store that holds the bytes (None: the bytes live elsewhere, see `uri`)."""
    owner_kind: str | None
    owner_id: str | None
    uri: str | None = None
    """The attachment's canonical URI when the caller gave one (older events: None)."""
    media_type: str | None = None
    label: str | None = None
    size: int | None = None


@event("session.attachments_committed")
class AttachmentsCommitted:
    """Existing manifest rows were stamped committed outside a runtime commit."""

    session_id: str
    attachment_ids: tuple[str, ...]


@event("session.attachment_intents_forgotten")
class AttachmentIntentsForgotten:
    """Manifest rows were dropped (explicitly, or aged intents whose owner is dead)."""

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
    "ArtifactRefSet",
    "AttachmentIntentRecorded",
    "AttachmentIntentsForgotten",
    "AttachmentsCommitted",
    "BlobGcRan",
    "CommitDetails",
    "HeadChange",
    "NodesTombstoned",
    "SESSION_STREAM_PREFIX",
    "SessionCommitted",
    "SessionVacuumed",
    "StoredNode",
    "session_of",
]
