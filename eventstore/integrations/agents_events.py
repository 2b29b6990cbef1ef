"""Event classes of the OpenAI Agents SDK session (`eventstore.integrations.openai_agents`).

Every session is one stream, `agents:<session_id>`:

* `agents.items_added`: one `add_items` call; each item is kept as the JSON text the
  SDK's own SQLite session would store, so both read back the same values.
* `agents.item_popped`: `pop_item`; names the popped item by the position of the event
  that added it and its index there (decided under the write lock).
* `agents.session_cleared`: `clear_session`; the items leave the projection, the events
  that added them stay in the log (readable with `eventstore show` or `store.at(p)`).

This module imports only the log core (projections import it), never the SDK.
"""

from __future__ import annotations

from ..describe import renderer, templates
from ..events import event

STREAM_PREFIX = "agents:"


def session_stream(session_id: str) -> str:
    """The stream holding one Agents SDK session: `agents:<session_id>`."""
    return STREAM_PREFIX + session_id


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


def _item_summary(text: str) -> str:
    import json

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
def _added(e: ItemsAdded, ev: object) -> str:
    shown = "; ".join(_item_summary(t) for t in e.items[:3])
    more = f" (+{len(e.items) - 3} more)" if len(e.items) > 3 else ""
    return f"session {e.session_id}: {len(e.items)} item(s) added: {shown}{more}"


templates({
    "agents.item_popped": "session {session_id}: newest item popped (added at position {added_at})",
    "agents.session_cleared": "session {session_id} cleared ({items:plural item} removed; events stay in the log)",
})
