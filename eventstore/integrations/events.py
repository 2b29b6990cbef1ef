"""Event classes of the framework integrations: the LangGraph checkpoint saver
(`eventstore.integrations.langgraph`) and the OpenAI Agents SDK session
(`eventstore.integrations.openai_agents`).

This module imports only the log core (projections import it), never a framework.

## LangGraph

Every LangGraph thread is one stream, `langgraph:<thread_id>`. What goes there:

* `langgraph.checkpoint_saved`: one checkpoint. It carries the checkpoint without its
  channel values, the metadata, and one entry per channel whose version changed in this
  step (never the unchanged ones). An entry is ``[channel, version, kind, data]``:

  - ``"empty"`` (data None): the channel has no value at this version;
  - ``"value"`` (data: a serialized value, see below);
  - ``"blob"`` (data ``[type, ref]``): a value too large for an event, in `store.blobs`;
  - ``"list"`` (data ``[item, ...]``): a list value, one serialized item each;
  - ``"append"`` (data ``[base_position, base_index, keep, [item, ...]]``): a list value
    that starts with the first `keep` items of the list held by entry `base_index` of the
    event at `base_position`, followed by these items. A growing conversation therefore
    stores each message once.

  A serialized value or item is the serde's bytes alone when its type is "msgpack"
  (LangGraph's default), else ``[type, bytes]``, or ``[type, ref]`` (a str) when the
  bytes are in the blob store. The checkpoint and metadata fields are serialized the
  same way (never in the blob store); the checkpoint lacks its id (the event has it).
* `langgraph.writes_saved`: the pending writes of one task against one checkpoint, each
  ``[channel, idx, serialized value]``.
* `langgraph.checkpoints_removed`: checkpoints (and their writes) dropped by
  `delete_for_runs` or `prune(keep_latest)`; the ids are listed, so applying needs
  nothing but the event.
* `langgraph.thread_deleted`: the tombstone written by `delete_thread` (or
  `prune(strategy="delete")`). The thread's events stay in the log; its rows leave the
  projection. The id may be used again afterwards.
* `langgraph.thread_copied`: `copy_thread`, on the target's stream: the target gets a
  copy of every checkpoint, value and write the source has at that position.

## OpenAI Agents SDK

Every session is one stream, `agents:<session_id>`:

* `agents.items_added`: one `add_items` call; each item is kept as the JSON text the
  SDK's own SQLite session would store, so both read back the same values.
* `agents.item_popped`: `pop_item`; names the popped item by the position of the event
  that added it and its index there (decided under the write lock).
* `agents.session_cleared`: `clear_session`; the items leave the projection, the events
  that added them stay in the log (readable with `eventstore show` or `store.at(p)`).
"""

from __future__ import annotations

from typing import Any

from ..events import event

LANGGRAPH_STREAM_PREFIX = "langgraph:"


def thread_stream(thread_id: str) -> str:
    """The stream holding one LangGraph thread: `langgraph:<thread_id>`."""
    return LANGGRAPH_STREAM_PREFIX + thread_id


@event("langgraph.checkpoint_saved")
class CheckpointSaved:
    """One LangGraph checkpoint with the values of the channels that changed."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    run_id: str | None
    step: int | None
    source: str | None
    checkpoint: Any
    """The checkpoint without channel_values and id, serialized (see the module docstring)."""
    metadata: Any
    """The checkpoint metadata, serialized."""
    channels: list[Any]
    """One [channel, version, kind, data] entry per channel whose version changed."""


@event("langgraph.writes_saved")
class WritesSaved:
    """Pending writes of one task against one checkpoint."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: list[Any]
    """[channel, idx, serialized value] per write (idx < 0 for LangGraph's special channels)."""


@event("langgraph.checkpoints_removed")
class CheckpointsRemoved:
    """Checkpoints of one thread dropped, with their pending writes."""

    thread_id: str
    checkpoints: list[Any]
    """[checkpoint_ns, checkpoint_id] pairs."""
    reason: str
    """"delete_for_runs" or "prune"."""


@event("langgraph.thread_deleted")
class ThreadDeleted:
    """The tombstone of one thread: every checkpoint and write of it leaves the projection."""

    thread_id: str
    reason: str
    """"delete_thread" or "prune"."""


@event("langgraph.thread_copied")
class ThreadCopied:
    """Every checkpoint and write of the source thread copied to the target thread."""

    source_thread_id: str
    target_thread_id: str
    checkpoints: int
    """How many checkpoints the source had (for the reader of the log)."""


# --- OpenAI Agents SDK sessions --------------------------------------------------



AGENTS_STREAM_PREFIX = "agents:"


def session_stream(session_id: str) -> str:
    """The stream holding one Agents SDK session: `agents:<session_id>`."""
    return AGENTS_STREAM_PREFIX + session_id


@event("agents.items_added")
class ItemsAdded:
    """Items appended to a session's history (JSON text each)."""

    session_id: str
    items: list[str]


@event("agents.item_popped")
class ItemPopped:
    """The newest item removed by `pop_item`."""

    session_id: str
    added_at: int
    """The position of the `agents.items_added` event that holds the item."""
    index: int
    """The item's index in that event."""


@event("agents.session_cleared")
class SessionCleared:
    """Every item of the session removed by `clear_session`."""

    session_id: str
    items: int
    """How many items the session held."""
