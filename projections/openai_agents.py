"""OpenAI Agents SDK sessions: the items each session holds, in order.

`agents_items` has one row per live item: (session id, position of the event that
added it, index in that event). The item's JSON text stays in the event; reads fetch
it from there. Order is (position, index): the order the items were added.
"""

from __future__ import annotations

from typing import Any

from eventstore.storage import Storage

from eventstore.integrations.events import ItemPopped, ItemsAdded, SessionCleared

from .base import REGISTRY, Projection

sessions = REGISTRY.register(
    Projection(
        name="agent_sessions",
        version=1,
        tables=("agents_items",),
        ddl=(
            """CREATE TABLE IF NOT EXISTS agents_items (
                session_id TEXT NOT NULL,
                position   INTEGER NOT NULL,
                idx        INTEGER NOT NULL,
                PRIMARY KEY (session_id, position, idx)
            ) WITHOUT ROWID""",
        ),
    )
)


@sessions.on(ItemsAdded)
def _added(db: Storage, ev: Any) -> None:
    e: ItemsAdded = ev.data
    db.executemany("INSERT INTO agents_items VALUES (?,?,?)",
                   [(e.session_id, ev.position, i) for i in range(len(e.items))])


@sessions.on(ItemPopped)
def _popped(db: Storage, ev: Any) -> None:
    e: ItemPopped = ev.data
    db.execute("DELETE FROM agents_items WHERE session_id = ? AND position = ? AND idx = ?",
               (e.session_id, e.added_at, e.index))


@sessions.on(SessionCleared)
def _cleared(db: Storage, ev: Any) -> None:
    db.execute("DELETE FROM agents_items WHERE session_id = ?", (ev.data.session_id,))


# --- reads ---------------------------------------------------------------------------


def newest(db: Storage, session_id: str, limit: int | None) -> list[tuple[int, int]]:
    """(position, index) of the session's items, oldest first; only the newest `limit`
    when it is given."""
    if limit is None:
        return db.query("SELECT position, idx FROM agents_items WHERE session_id = ? ORDER BY position, idx",
                        (session_id,))
    rows = db.query("SELECT position, idx FROM agents_items WHERE session_id = ? "
                    "ORDER BY position DESC, idx DESC LIMIT ?", (session_id, limit))
    return rows[::-1]


def count(db: Storage, session_id: str) -> int:
    """How many items the session holds."""
    return int(db.scalar("SELECT count(*) FROM agents_items WHERE session_id = ?", (session_id,), 0))
