"""Event classes of the framework integrations: the LangGraph checkpoint saver
(`eventstore.integrations.langgraph`) and the OpenAI Agents SDK session
(`eventstore.integrations.openai_agents`).

This module imports only the log core (projections import it), never a framework.

## LangGraph

Every LangGraph thread is one stream, `langgraph:<thread_id>`. What goes there:

* `langgraph.checkpoint_saved`: one checkpoint, as small as it can be kept, because a
  conversation saves one per step. The thread is the stream's name. The event carries:

  - `ns`, `id`: the namespace and the checkpoint id; an id that is a canonical UUID
    (LangGraph's are) is kept as its 16 bytes, see `checkpoint_id_text`;
  - `parent`: the position of the event holding the parent checkpoint (an int), or the
    parent's id (kept like `id`) when the thread does not have it, or None;
  - `run`: the metadata's run_id (what `delete_for_runs` selects by);
  - `head`: the serialized pair ``[checkpoint, metadata]``, where the checkpoint lacks its
    id, its channel values and, when they can be rebuilt from the entries, its channel
    versions; its `ts` is kept as integer microseconds, after the time in the id
    (``ts_id``: LangGraph's ids are UUID v6, which hold the time) or since the epoch
    (``ts_us``), when that rebuilds the same text; the fields equal to LangGraph's
    defaults (`HEAD_DEFAULTS`) are left out (a default field the checkpoint lacks is
    listed under ``"-"``);
  - `channels`: one entry ``[channel, version, kind, data]`` per channel version the
    checkpoint has. A channel whose version changed in this step carries its value:

    - ``"empty"`` (data None): the channel has no value at this version;
    - ``"value"`` (data: a serialized value, see below);
    - ``"blob"`` (data ``[type, ref]``): a value too large for an event, in `store.blobs`;
    - ``"list"`` (data ``[item, ...]``): a list value, one serialized item each;
    - ``"append"`` (data ``[base_position, base_index, keep, [item, ...]]``): a list
      value that starts with the first `keep` items of the list held by entry
      `base_index` of the event at `base_position`, followed by these items. A growing
      conversation therefore stores each message once.

    A channel that did not change points at the entry that holds its value:
    ``"ref"`` (data ``[position, index]``), never at another ref.

  A serialized value or item is the serde's bytes alone when its type is "msgpack"
  (LangGraph's default), else ``[type, bytes]``, or ``[type, ref]`` (a str) when the
  bytes are in the blob store. `head` is serialized the same way (never in the blob store).
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

import msgpack

from ..events import event

LANGGRAPH_STREAM_PREFIX = "langgraph:"

HEAD_DEFAULTS: dict[str, Any] = {"v": 2, "pending_sends": [], "updated_channels": None}
"""Checkpoint fields left out of `CheckpointSaved.head` when equal to these (same type)."""


def thread_stream(thread_id: str) -> str:
    """The stream holding one LangGraph thread: `langgraph:<thread_id>`."""
    return LANGGRAPH_STREAM_PREFIX + thread_id


def thread_of(stream: str) -> str:
    """The LangGraph thread id of a `langgraph:<thread_id>` stream."""
    return stream[len(LANGGRAPH_STREAM_PREFIX) :]


_HEX = frozenset("0123456789abcdef")


def compact_id(checkpoint_id: str) -> str | bytes:
    """How a checkpoint id is kept in an event: 16 bytes when the text is a canonical UUID
    (lowercase, dashed: `checkpoint_id_text` turns the bytes back into the same text),
    else the text."""
    if (
        len(checkpoint_id) == 36
        and checkpoint_id[8] == checkpoint_id[13] == checkpoint_id[18] == checkpoint_id[23] == "-"
    ):
        digits = checkpoint_id.replace("-", "")
        if len(digits) == 32 and _HEX.issuperset(digits):
            return bytes.fromhex(digits)
    return checkpoint_id


def checkpoint_id_text(kept: Any) -> Any:
    """The checkpoint id text of an id kept by `compact_id` (None stays None)."""
    if type(kept) is not bytes:
        return kept
    h = kept.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def peek_head(head: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """([checkpoint fields, metadata]) of a `head` serialized as plain msgpack, decoded
    without LangGraph's serde (for log lines and the CLI); None when it is not."""
    if type(head) is not bytes:
        return None
    try:
        pair = msgpack.unpackb(
            head, raw=False, strict_map_key=False, ext_hook=lambda code, data: f"<ext {code}>"
        )
    except Exception:  # another serde's bytes: nothing to show
        return None
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, dict) for x in pair):
        return pair[0], pair[1]
    return None


@event("langgraph.checkpoint_saved")
class CheckpointSaved:
    """One LangGraph checkpoint; its thread is the stream's (see the module docstring)."""

    ns: str
    """The checkpoint namespace ("" for the root graph)."""
    id: Any
    """The checkpoint id: 16 bytes for a canonical UUID, else its text."""
    parent: Any
    """The position of the parent checkpoint's event, or the parent's id, or None."""
    run: str | None
    """The metadata's run_id, when it is a string."""
    head: Any
    """The serialized [checkpoint, metadata] pair."""
    channels: list[Any]
    """[channel, version, kind, data] per channel version the checkpoint has."""


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
