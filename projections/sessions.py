"""The session catalogue: one row per session id with its meta, status and generation.

Status is "active", "deleted" or "purged". A deleted or purged row is the id's
tombstone: it stays forever, so that a late command for the id is refused instead of
bringing the session back. A purge drops the row's meta (the purged events carried it)
and keeps only what the `session.purged` event itself records, because a rebuild
after the purge sees nothing else: the session's own events no longer have payloads
and are skipped.

Event counts and last activity are not kept here: the stream catalogue
(`projections.catalogue`) already has them for `session:<id>`.
"""

from __future__ import annotations

from typing import Any, cast

import attrs

from eventstore.sessions.events import (
    SessionCreated,
    SessionDeletedEvent,
    SessionMeta,
    SessionMetaSaved,
    SessionPurged,
    SessionRelation,
)

from projections.base import REGISTRY, Projection, replace_row
from projections._rows import row_reader, text
from projections._select import select_where

ACTIVE = "active"
DELETED = "deleted"
PURGED = "purged"
STATUSES = (ACTIVE, DELETED, PURGED)

sessions = REGISTRY.register(
    Projection(
        name="sessions",
        version=1,
        tables=("sessions_index",),
        ddl=(
            """CREATE TABLE IF NOT EXISTS sessions_index (
                session_id        TEXT PRIMARY KEY,
                status            TEXT    NOT NULL,
                generation        INTEGER NOT NULL,
                name              TEXT,
                model             TEXT,
                cwd               TEXT,
                parent_session_id TEXT,
                relation_kind     TEXT,
                created_at_ms     INTEGER,
                deleted_at_ms     INTEGER,
                purged_at_ms      INTEGER
            ) WITHOUT ROWID""",
        ),
    )
)


_COLUMNS = ("session_id, status, generation, name, model, cwd, parent_session_id, relation_kind, created_at_ms, "
            "deleted_at_ms, purged_at_ms")
_CREATED = replace_row("sessions_index", _COLUMNS, "session_id", "VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL)")
_PURGED = replace_row("sessions_index", _COLUMNS, "session_id", "VALUES (?,?,?,NULL,NULL,NULL,NULL,NULL,NULL,?,?)")


@sessions.on(SessionCreated)
def _created(db: Any, ev: Any) -> None:
    e: SessionCreated = ev.data
    m = e.meta
    rel = m.relation
    # A whole-row replace: a recreate overwrites the tombstone with the new generation's row.
    db.execute(
        _CREATED,
        (e.session_id, ACTIVE, e.generation, m.name, m.model, m.cwd,
         rel.parent_session_id if rel else None, rel.kind if rel else None, e.created_at_ms),
    )


@sessions.on(SessionMetaSaved)
def _meta_saved(db: Any, ev: Any) -> None:
    e: SessionMetaSaved = ev.data
    m = e.meta
    rel = m.relation
    db.execute("UPDATE sessions_index SET name = ?, model = ?, cwd = ?, parent_session_id = ?, relation_kind = ? "
               "WHERE session_id = ?",
               (m.name, m.model, m.cwd, rel.parent_session_id if rel else None, rel.kind if rel else None,
                e.session_id))


@sessions.on(SessionDeletedEvent)
def _deleted(db: Any, ev: Any) -> None:
    e: SessionDeletedEvent = ev.data
    db.execute("UPDATE sessions_index SET status = ?, deleted_at_ms = ? WHERE session_id = ?",
               (DELETED, e.deleted_at_ms, e.session_id))


@sessions.on(SessionPurged)
def _purged(db: Any, ev: Any) -> None:
    e: SessionPurged = ev.data
    # Written from the purge event alone: a rebuild reaches this point with no row at
    # all (the purged events were skipped), the live table with the full deleted row;
    # both must end with the same tombstone.
    db.execute(
        _PURGED,
        (e.session_id, PURGED, e.generation, e.deleted_at_ms, e.purged_at_ms),
    )


# --- reads ---------------------------------------------------------------------------


@attrs.frozen
class SessionRow:
    """One session as the catalogue projection stores it."""

    session_id: str
    status: str
    generation: int
    meta: SessionMeta
    created_at_ms: int | None
    deleted_at_ms: int | None
    purged_at_ms: int | None


_COLUMNS = ("session_id, status, generation, name, model, cwd, parent_session_id, relation_kind, "
            "created_at_ms, deleted_at_ms, purged_at_ms")


@row_reader("sessions_index")
def _row(r: tuple[Any, ...]) -> SessionRow:
    relation = SessionRelation(r[6], r[7]) if r[6] is not None else None
    return SessionRow(text(r[0], "session_id"), r[1], r[2], SessionMeta(r[3], r[4], r[5], relation), r[8], r[9],
                      r[10])


def get(db: Any, session_id: str) -> SessionRow | None:
    """The row of one session id (tombstones included), or None if it was never created."""
    r = db.one(f"SELECT {_COLUMNS} FROM sessions_index WHERE session_id = ?", (session_id,))
    return None if r is None else _row(r)


def status(db: Any, session_id: str) -> tuple[str, int, int | None] | None:
    """(status, generation, deleted_at_ms) of one session id, or None if it was never
    created: what a command checks before deciding, without building the whole row."""
    return cast("tuple[str, int, int | None] | None",
                db.one("SELECT status, generation, deleted_at_ms FROM sessions_index WHERE session_id = ?",
                       (session_id,)))


def list_rows(db: Any, status: str | None = None, limit: int | None = None) -> list[SessionRow]:
    """Rows ordered by session id; only those with `status` when given."""
    sql, params = select_where(f"SELECT {_COLUMNS} FROM sessions_index", ("status = ?", status),
                               order_by="session_id", limit=limit)
    return [_row(r) for r in db.query(sql, params)]


def counts(db: Any) -> dict[str, int]:
    """How many session ids are in each status."""
    out = {s: 0 for s in STATUSES}
    for status, n in db.query("SELECT status, count(*) FROM sessions_index GROUP BY status"):
        out[status] = n
    return out
