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
