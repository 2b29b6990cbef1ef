"""The session execution lease table: one row per session that ever had a lease.

The row keeps the fencing token across releases and expiries (the next acquisition
takes it + 1), and holds the holder's identity, token and times while the lease is
held. Deleting or purging a session wipes its row, so a recreated session starts
again at fence 1 (law 70).

Appliers copy what the events recorded; liveness ("is it expired?") is a question
for the reader, asked with the reader's own `now`.
"""

from __future__ import annotations

from typing import Any

from eventstore.leases.events import (
    SessionExecutionLease,
    SessionLeaseAcquired,
    SessionLeaseReleased,
    SessionLeaseRenewed,
    SessionLeaseState,
)
from eventstore.leases.owners import LeaseOwner, LocalProcessLiveness, OpaqueLiveness
from eventstore.sessions.events import SessionDeletedEvent, SessionPurged

from projections.base import REGISTRY, Projection, replace_row
from projections._rows import row_reader

leases = REGISTRY.register(
    Projection(
        name="leases",
        version=1,
        tables=("lease_sessions",),
        ddl=(
            # owner_id IS NULL means "no holder" (never claimed since a release).
            """CREATE TABLE IF NOT EXISTS lease_sessions (
                session_id     TEXT PRIMARY KEY,
                fencing_token  INTEGER NOT NULL,
                owner_id       TEXT,
                incarnation_id TEXT,
                host_id        TEXT,
                boot_id        TEXT,
                pid            INTEGER,
                process_start  INTEGER,
                lease_token    TEXT,
                claimed_at_ms  INTEGER,
                expires_at_ms  INTEGER
            ) WITHOUT ROWID""",
        ),
    )
)


_ACQUIRED = replace_row("lease_sessions", "session_id, fencing_token, owner_id, incarnation_id, host_id, boot_id, "
                        "pid, process_start, lease_token, claimed_at_ms, expires_at_ms", "session_id",
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)")


@leases.on(SessionLeaseAcquired)
def _acquired(db: Any, ev: Any) -> None:
    e: SessionLeaseAcquired = ev.data
    o = e.owner
    live = o.liveness
    local = live if isinstance(live, LocalProcessLiveness) else None
    db.execute(
        _ACQUIRED,
        (e.session_id, e.fencing_token, o.owner_id, o.incarnation_id,
         local.host_id if local is not None else None, local.boot_id if local is not None else None,
         local.pid if local is not None else None, local.process_start if local is not None else None,
         e.lease_token, e.claimed_at_ms, e.expires_at_ms),
    )


@leases.on(SessionLeaseRenewed)
def _renewed(db: Any, ev: Any) -> None:
    e: SessionLeaseRenewed = ev.data
    db.execute("UPDATE lease_sessions SET expires_at_ms = ? WHERE session_id = ? AND lease_token = ? "
               "AND fencing_token = ?", (e.expires_at_ms, e.session_id, e.lease_token, e.fencing_token))


@leases.on(SessionLeaseReleased)
def _released(db: Any, ev: Any) -> None:
    e: SessionLeaseReleased = ev.data
    # The fencing token stays: the next acquisition must get a higher one (law 20).
    db.execute(
        "UPDATE lease_sessions SET owner_id = NULL, incarnation_id = NULL, host_id = NULL, boot_id = NULL, "
        "pid = NULL, process_start = NULL, lease_token = NULL, claimed_at_ms = NULL, expires_at_ms = NULL "
        "WHERE session_id = ? AND lease_token = ? AND fencing_token = ?",
        (e.session_id, e.lease_token, e.fencing_token),
    )


@leases.on(SessionDeletedEvent, SessionPurged)
def _wiped(db: Any, ev: Any) -> None:
    db.execute("DELETE FROM lease_sessions WHERE session_id = ?", (ev.data.session_id,))


# --- reads ---------------------------------------------------------------------------


_COLUMNS = ("session_id, fencing_token, owner_id, incarnation_id, host_id, boot_id, pid, process_start, "
            "lease_token, claimed_at_ms, expires_at_ms")


@row_reader("lease_sessions")
def _state(r: tuple[Any, ...]) -> SessionLeaseState:
    holder = None
    if r[2] is not None:
        liveness = (LocalProcessLiveness(r[4], r[5], r[6], r[7]) if r[4] is not None else OpaqueLiveness())
        holder = SessionExecutionLease(r[0], LeaseOwner(r[2], r[3], liveness), r[8], r[1], r[9], r[10])
    return SessionLeaseState(r[0], r[1], holder)


def get(db: Any, session_id: str) -> SessionLeaseState | None:
    """The lease row of one session, or None if it never had a lease (in this generation)."""
    r = db.one(f"SELECT {_COLUMNS} FROM lease_sessions WHERE session_id = ?", (session_id,))
    return None if r is None else _state(r)


def holder(db: Any, session_id: str) -> tuple[str | None, str | None, str | None, int, int | None] | None:
    """(owner_id, incarnation_id, lease_token, fencing_token, expires_at_ms) of the
    session's lease row, or None: what a fence check compares, with no objects built."""
    row: tuple[str | None, str | None, str | None, int, int | None] | None = db.one(
        "SELECT owner_id, incarnation_id, lease_token, fencing_token, expires_at_ms FROM lease_sessions "
        "WHERE session_id = ?", (session_id,))
    return row


def list_states(db: Any, session_id: str | None = None) -> list[SessionLeaseState]:
    """Lease rows ordered by session id (only that session's when `session_id` is given)."""
    if session_id is not None:
        state = get(db, session_id)
        return [] if state is None else [state]
    return [_state(r) for r in db.query(f"SELECT {_COLUMNS} FROM lease_sessions ORDER BY session_id")]


def live_generation(db: Any, session_id: str, now_ms: int) -> int | None:
    """The fencing token of the session's live lease at `now_ms`, or None when none is live.

    One indexed lookup; later domains compare it with the generation stamped on their
    claims (a claim is live exactly while this equals its generation).
    """
    token: int | None = db.scalar("SELECT fencing_token FROM lease_sessions WHERE session_id = ? "
                                  "AND owner_id IS NOT NULL AND expires_at_ms > ?", (session_id, now_ms))
    return token


_SESSION_AND_LEASE = (
    "SELECT s.status, s.generation, s.deleted_at_ms, "
    + ", ".join("l." + c.strip() for c in _COLUMNS.split(","))  # the lease row as `get` reads it
    + " FROM sessions_index s LEFT JOIN lease_sessions l ON l.session_id = s.session_id "
    "WHERE s.session_id = CAST(? AS TEXT)")
# Why the CAST: see projections.graph.commit_state (a bound value SQLite propagates into
# a join makes the statement be prepared again at every execution).


def session_and_lease(db: Any, session_id: str) -> tuple[Any, ...] | None:
    """A lease command's one read: the session's (status, generation, deleted_at_ms) from
    the `sessions` projection followed by its lease row's columns (`_COLUMNS`, as `get` reads them,
    all None when it has no lease row), or None when the session id was never created."""
    row: tuple[Any, ...] | None = db.one(_SESSION_AND_LEASE, (session_id,))
    return row


def state_of(row: tuple[Any, ...]) -> SessionLeaseState | None:
    """The lease state in a `session_and_lease` row (None when it has no lease row)."""
    return None if row[3] is None else _state(row[3:])
