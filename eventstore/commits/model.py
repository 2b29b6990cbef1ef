"""The session graph and the runtime commit: the value types a turn's results travel in.

A session's conversation is a tree of nodes with branches; `leaf_node_id` picks the
active branch. A `RuntimeCommit` lands one turn: a graph delta, the head (config,
agent frames, current frame), a checkpoint, usage deltas, an optional turn stamp,
claims to settle, outbox batches and attachment ids (docs/semantics.md §1).

Message and protocol payloads are kept as plain msgpack-able values (`Any`): the store
does not interpret them, only the runtime does.
"""

from __future__ import annotations

from typing import Any

import attrs

# --- nodes ---------------------------------------------------------------------------


@attrs.frozen
class EventPayload:
    """A node holding a message or a protocol event."""

    event: Any


@attrs.frozen
class PluginPayload:
    """A node holding a plugin's record."""

    plugin_type: str
    body: Any


@attrs.frozen
class SessionNode:
    """One node of the conversation tree."""

    node_id: str
    payload: EventPayload | PluginPayload
    parent_node_id: str | None = None
    caused_by: str | None = None
    agent_frame_id: str | None = None
    timestamp: str = ""
    """RFC 3339, as the runtime wrote it."""


# --- graph deltas --------------------------------------------------------------------


@attrs.frozen
class GraphUnchanged:
    """Move only the leaf pointer (or leave it where it is when `leaf` is None)."""

    leaf: str | None = None


@attrs.frozen
class GraphAppend:
    """Add nodes (ids must be new) and set the leaf."""

    nodes: tuple[SessionNode, ...]
    leaf: str | None = None


@attrs.frozen
class GraphReplace:
    """Drop every node (tombstoned ones included) and start again from these."""

    nodes: tuple[SessionNode, ...]
    leaf: str | None = None


GraphDelta = GraphUnchanged | GraphAppend | GraphReplace


# --- head ----------------------------------------------------------------------------


@attrs.frozen
class ModelConfig:
    """Which provider and model the session runs on."""

    provider_id: str
    model: str


@attrs.frozen
class AgentFrame:
    """An agent frame (a sub-agent's stack frame) as the head records it.

    `execution_state_snapshot` carries inline bytes on the way in; the store moves them
    to a blob and keeps only `execution_state_ref`.
    """

    frame_id: str
    session_id: str
    status: str = "active"
    previous_frame_id: str | None = None
    reason: str | None = None
    caused_by: str | None = None
    created_at: str = ""
    assignment: Any = None
    protocol_turn_options: Any = None
    execution_state_ref: str | None = None
    execution_state_snapshot: bytes | None = None


# --- checkpoints ---------------------------------------------------------------------


@attrs.frozen
class TurnState:
    """Where the turn loop stands."""

    turn_index: int = 0
    token_usage: Any = None
    last_prompt_usage: Any = None
    protocol_turn_options: Any = None


@attrs.frozen
class Checkpoint:
    """A checkpoint as a commit carries it (snapshots inline) or a load returns it.

    On commit each present snapshot becomes a blob; an absent snapshot carries the
    caller's ref forward. On load, children whose blobs are gone come back as None.
    """

    turn_state: TurnState = TurnState()
    tool_state: bytes | None = None
    tool_state_ref: str | None = None
    plugin_snapshot: bytes | None = None
    plugin_snapshot_ref: str | None = None
    plugin_snapshot_revision: int | None = None
    execution_state: bytes | None = None
    execution_state_ref: str | None = None


@attrs.frozen
class CheckpointManifest:
    """What the manifest blob holds (schema_version 1); its hash is the checkpoint ref."""

    schema_version: int
    turn_state: TurnState
    tool_state_ref: str | None = None
    plugin_snapshot_ref: str | None = None
    plugin_snapshot_revision: int | None = None
    execution_state_ref: str | None = None


# --- usage ---------------------------------------------------------------------------


@attrs.frozen
class UsageDelta:
    """Tokens spent by one source on one model (a row of the append-only ledger)."""

    source: str
    model: str
    input: int = 0
    output: int = 0
    cache_read_input: int = 0
    cache_write_input: int = 0
    reasoning_output: int = 0

    def total(self) -> int:
        """All tokens of the delta."""
        return (self.input + self.output + self.cache_read_input + self.cache_write_input
                + self.reasoning_output)


# --- the commit ----------------------------------------------------------------------


@attrs.frozen
class TurnStamp:
    """Identifies a turn's final commit: replaying the same stamp is idempotent."""

    session_id: str
    turn_id: str
    turn_commit_hash: str


@attrs.frozen
class RuntimeCommitResult:
    """What a commit returns (and what a replayed turn stamp returns again)."""

    head_revision: int
    checkpoint_ref: str | None
    enqueued_batch_ids: tuple[str, ...] = ()
    replayed: bool = False
    outbox_batches: tuple[Any, ...] = ()
    """The outbox as queued batches (`projections.queue.QueuedBatch`), one per enqueued
    draft in order, as they were enqueued; a replay returns the original ones."""
