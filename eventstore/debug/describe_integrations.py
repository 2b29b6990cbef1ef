"""Readable lines for the framework integrations' events (see `eventstore.debug.describe`):
LangGraph checkpoints and writes (`langgraph.*`) and Agents SDK session items (`agents.*`).

Registered on import; `describe_events` imports this module. Every renderer reads only the
event's fields, so the lines print without LangGraph or the SDK installed (values stay
serialized: a line names channels and counts items, it does not decode them).
"""

from __future__ import annotations

import json
from typing import Any

from ..integrations.events import checkpoint_id_text, peek_head, thread_of
from .describe_events import renderer, templates


def _channel_summary(channels: list[Any]) -> str:
    parts = []
    for entry in channels:
        name, kind, data = entry[0], entry[2], entry[3]
        if kind == "ref":  # unchanged: the value is in an earlier event
            continue
        if kind == "append":
            parts.append(f"{name} +{len(data[3])}")
        elif kind == "list":
            parts.append(f"{name} [{len(data)}]")
        elif kind == "empty":
            parts.append(f"{name} (empty)")
        else:
            parts.append(str(name))
    return ", ".join(parts) if parts else "no channel changed"


def step_and_source(head: Any) -> tuple[Any, Any]:
    """(step, source) from a checkpoint event's metadata; (None, None) when its serde is
    not plain msgpack (the line then names neither)."""
    peeked = peek_head(head)
    if peeked is None:
        return None, None
    return peeked[1].get("step"), peeked[1].get("source")


@renderer("langgraph.checkpoint_saved")
def _checkpoint_saved(e: Any, ev: Any) -> str:
    ns = f" ns {e.ns!r}" if e.ns else ""
    step, source = step_and_source(e.head)
    shown_step = f" step {step}" if step is not None else ""
    shown_source = f" ({source})" if source else ""
    return (
        f"thread {thread_of(ev.stream)}{ns} checkpoint {checkpoint_id_text(e.id)}{shown_step}{shown_source}: "
        f"{_channel_summary(e.channels)}"
    )


@renderer("langgraph.writes_saved")
def _writes_saved(e: Any, ev: Any) -> str:
    channels = ", ".join(str(w[0]) for w in e.writes) or "nothing"
    return f"thread {e.thread_id} task {e.task_id} wrote {channels} after checkpoint {e.checkpoint_id}"


templates(
    {
        "langgraph.checkpoints_removed": (
            "thread {thread_id}: {checkpoints:count checkpoint} removed by {reason}"
        ),
        "langgraph.thread_deleted": "thread {thread_id} deleted by {reason} (its events stay in the log)",
        "langgraph.thread_copied": (
            "thread {source_thread_id} copied to {target_thread_id} ({checkpoints:plural checkpoint})"
        ),
    }
)


def _item_summary(text: str) -> str:
    try:
        item = json.loads(text)
    except ValueError:
        return "?"
    if isinstance(item, dict):
        role = item.get("role") or item.get("type") or "item"
        content = item.get("content")
        if isinstance(content, list):  # output parts: [{"type": "output_text", "text": ...}, ...]
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict)) or None
        if isinstance(content, str):
            short = content if len(content) <= 40 else content[:39] + "…"
            return f"{role}: {short!r}"
        return str(role)
    return type(item).__name__


@renderer("agents.items_added")
def _added(e: Any, ev: Any) -> str:
    shown = "; ".join(_item_summary(t) for t in e.items[:3])
    more = f" (+{len(e.items) - 3} more)" if len(e.items) > 3 else ""
    return f"session {e.session_id}: {len(e.items)} item(s) added: {shown}{more}"


templates(
    {
        "agents.item_popped": "session {session_id}: newest item popped (added at position {added_at})",
        "agents.session_cleared": (
            "session {session_id} cleared ({items:plural item} removed; events stay in the log)"
        ),
    }
)
