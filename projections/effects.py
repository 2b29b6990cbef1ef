"""The effects projection: one row per journaled effect or await, and revoked sessions.

``effects_entries`` is keyed by (scope, replay key). Its status is one of

* ``in_progress``: started or taken over, lease held until ``lease_expires_at_ms``;
* ``completed`` / ``failed``: finished, with the outcome or the error (immutable from
  then on: the facade replays these without taking the write lock);
* ``waiting`` / ``cancelled``: an await not yet resolved / cancelled by a revocation
  (a resolved await is ``completed`` with the resolution payload as its outcome).

Envelopes are stored as canonical JSON (sorted keys) and outcomes as JSON in their
original key order, so that a replay returns exactly what the first call returned.
"""

from __future__ import annotations

import json
from typing import Any, cast

import attrs

from eventstore.effects.await_events import AwaitCancelled, AwaitRegistered, AwaitResolved, SessionAwaitsRevoked
from eventstore.checks import canonical_json
from eventstore.effects.events import (
    EffectCompleted,
    EffectFailureRecorded,
    EffectForgotten,
    EffectLeaseRenewed,
    EffectStarted,
    EffectTakenOver,
)
from eventstore.leases.owners import LeaseOwner, LocalProcessLiveness, OpaqueLiveness

from projections.base import REGISTRY, Projection
from projections._rows import row_reader
from projections._select import select_where

effects = REGISTRY.register(Projection(
    name="effects",
    version=1,
    tables=("effects_entries", "effects_revoked_sessions"),
    ddl=(
        """CREATE TABLE IF NOT EXISTS effects_entries (
            scope               TEXT NOT NULL,
            replay_key          TEXT NOT NULL,
            kind                TEXT NOT NULL,
            status              TEXT NOT NULL,
            envelope_json       TEXT NOT NULL,
            envelope_hash       TEXT NOT NULL,
            owner_id            TEXT,
            incarnation_id      TEXT,
            liveness_json       TEXT,
            lease_token         TEXT,
            lease_expires_at_ms INTEGER,
            attempts            INTEGER NOT NULL,
            renewals            INTEGER NOT NULL,
            due_at_ms           INTEGER,
            outcome_json        TEXT,
            error_type          TEXT,
            error_message       TEXT,
            session_id          TEXT,
            key_id              TEXT,
            started_at_ms       INTEGER NOT NULL,
            updated_at_ms       INTEGER NOT NULL,
            finished_at_ms      INTEGER,
            PRIMARY KEY (scope, replay_key)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS effects_entries_session ON effects_entries (session_id, status)",
        """CREATE TABLE IF NOT EXISTS effects_revoked_sessions (
            session_id    TEXT PRIMARY KEY,
            reason        TEXT NOT NULL,
            cancelled     INTEGER NOT NULL,
            revoked_at_ms INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
))


def liveness_json(owner: LeaseOwner) -> str:
    """The owner's liveness as JSON (kept so a claimant can test the holder for death)."""
    live = owner.liveness
    if isinstance(live, LocalProcessLiveness):
        return json.dumps({"kind": "local_process", **attrs.asdict(live)}, sort_keys=True)
    return '{"kind":"opaque"}'


@row_reader("effects_entries")
def _owner(owner_id: str | None, incarnation_id: str | None, live_json: str | None) -> LeaseOwner | None:
    if owner_id is None or incarnation_id is None:
        return None
    live = json.loads(live_json or '{"kind":"opaque"}')
    if live.pop("kind", "opaque") == "local_process":
        return LeaseOwner(owner_id, incarnation_id, LocalProcessLiveness(**live))
    return LeaseOwner(owner_id, incarnation_id, OpaqueLiveness())


# --- appliers ----------------------------------------------------------------------


@effects.on(EffectStarted)
def _started(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute(
        "INSERT INTO effects_entries VALUES (?,?,?,'in_progress',?,?,?,?,?,?,?,?,0,?,NULL,NULL,NULL,NULL,NULL,?,?,NULL)",
        (e.scope, e.replay_key, e.kind, canonical_json(e.envelope), e.envelope_hash, e.owner.owner_id,
         e.owner.incarnation_id, liveness_json(e.owner), e.lease_token, e.lease_expires_at_ms, e.attempt,
         e.due_at_ms, e.at_ms, e.at_ms),
    )


@effects.on(EffectTakenOver)
def _taken_over(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute(
        "UPDATE effects_entries SET owner_id=?, incarnation_id=?, liveness_json=?, lease_token=?, "
        "lease_expires_at_ms=?, attempts=?, updated_at_ms=? WHERE scope=? AND replay_key=?",
        (e.owner.owner_id, e.owner.incarnation_id, liveness_json(e.owner), e.lease_token, e.lease_expires_at_ms,
         e.attempt, e.at_ms, e.scope, e.replay_key),
    )


@effects.on(EffectLeaseRenewed)
def _renewed(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute("UPDATE effects_entries SET lease_expires_at_ms=?, renewals=renewals+1, updated_at_ms=? "
               "WHERE scope=? AND replay_key=?", (e.lease_expires_at_ms, e.at_ms, e.scope, e.replay_key))


def _finish_completed(db: Any, e: Any, outcome: Any) -> None:
    """Entry (e.scope, e.replay_key) completed at e.at_ms with `outcome` (JSON in its key order)."""
    db.execute("UPDATE effects_entries SET status='completed', outcome_json=?, updated_at_ms=?, finished_at_ms=? "
               "WHERE scope=? AND replay_key=?",
               (json.dumps(outcome, ensure_ascii=False, separators=(",", ":")), e.at_ms, e.at_ms, e.scope,
                e.replay_key))


def _finish_with_error(db: Any, e: Any, status: str, error_type: str, error_message: str) -> None:
    """Entry (e.scope, e.replay_key) finished at e.at_ms in `status` with the error it records."""
    db.execute("UPDATE effects_entries SET status=?, error_type=?, error_message=?, updated_at_ms=?, "
               "finished_at_ms=? WHERE scope=? AND replay_key=?",
               (status, error_type, error_message, e.at_ms, e.at_ms, e.scope, e.replay_key))


@effects.on(EffectCompleted)
def _completed(db: Any, ev: Any) -> None:
    _finish_completed(db, ev.data, ev.data.outcome)


@effects.on(EffectFailureRecorded)
def _failed(db: Any, ev: Any) -> None:
    _finish_with_error(db, ev.data, "failed", ev.data.error_type, ev.data.error_message)


@effects.on(EffectForgotten)
def _forgotten(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute("DELETE FROM effects_entries WHERE scope=? AND replay_key=?", (e.scope, e.replay_key))


@effects.on(AwaitRegistered)
def _await_registered(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute(
        "INSERT INTO effects_entries VALUES (?,?,'await','waiting',?,?,NULL,NULL,NULL,NULL,NULL,1,0,NULL,NULL,NULL,"
        "NULL,?,?,?,?,NULL)",
        (e.scope, e.replay_key, canonical_json(e.envelope), e.envelope_hash, e.session_id, e.key_id, e.at_ms,
         e.at_ms),
    )


@effects.on(AwaitResolved)
def _await_resolved(db: Any, ev: Any) -> None:
    _finish_completed(db, ev.data, ev.data.payload)


@effects.on(AwaitCancelled)
def _await_cancelled(db: Any, ev: Any) -> None:
    _finish_with_error(db, ev.data, "cancelled", "AwaitSessionRevoked", ev.data.reason)


@effects.on(SessionAwaitsRevoked)
def _revoked(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute("INSERT INTO effects_revoked_sessions VALUES (?,?,?,?)",
               (e.session_id, e.reason, len(e.cancelled), e.at_ms))


# --- read models and queries -------------------------------------------------------


@attrs.frozen
class EffectEntry:
    """One journaled effect or await."""

    scope: str
    replay_key: str
    kind: str
    status: str
    envelope: Any
    envelope_hash: str
    holder: LeaseOwner | None
    """The owner of the current (or last) lease; None for awaits."""
    lease_token: str | None
    lease_expires_at_ms: int | None
    attempts: int
    renewals: int
    due_at_ms: int | None
    outcome: Any
    error_type: str | None
    error_message: str | None
    session_id: str | None
    key_id: str | None
    started_at_ms: int
    updated_at_ms: int
    finished_at_ms: int | None

    @property
    def finished(self) -> bool:
        """True once the entry can only be replayed (completed, failed or cancelled)."""
        return self.status in ("completed", "failed", "cancelled")


_COLS = ("scope, replay_key, kind, status, envelope_json, envelope_hash, owner_id, incarnation_id, liveness_json, "
         "lease_token, lease_expires_at_ms, attempts, renewals, due_at_ms, outcome_json, error_type, error_message, "
         "session_id, key_id, started_at_ms, updated_at_ms, finished_at_ms")


@row_reader("effects_entries")
def _entry(row: tuple[Any, ...]) -> EffectEntry:
    (scope, key, kind, status, env, env_hash, owner_id, inc, live, token, expires, attempts, renewals, due,
     outcome, etype, emsg, session, key_id, started, updated, finished) = row
    return EffectEntry(scope, key, kind, status, json.loads(env), env_hash, _owner(owner_id, inc, live), token,
                       expires, attempts, renewals, due, None if outcome is None else json.loads(outcome), etype,
                       emsg, session, key_id, started, updated, finished)


def get_entry(db: Any, scope: str, replay_key: str) -> EffectEntry | None:
    """The entry (scope, replay key), or None."""
    row = db.one(f"SELECT {_COLS} FROM effects_entries WHERE scope=? AND replay_key=?", (scope, replay_key))
    return None if row is None else _entry(row)


def list_entries(db: Any, scope: str | None = None, status: str | None = None,
                 limit: int | None = None) -> list[EffectEntry]:
    """Entries in (scope, start time, key) order, optionally of one scope or one status."""
    sql, params = select_where(f"SELECT {_COLS} FROM effects_entries", ("scope=?", scope), ("status=?", status),
                               order_by="scope, started_at_ms, replay_key", limit=limit)
    return [_entry(r) for r in db.query(sql, params)]


@attrs.frozen
class FinishedEffect:
    """What a replay needs of a completed or failed entry (read without decoding the rest)."""

    scope: str
    replay_key: str
    kind: str
    status: str
    envelope_hash: str
    outcome: Any
    error_type: str | None
    error_message: str | None
    due_at_ms: int | None


@row_reader("effects_entries")
def get_finished(db: Any, scope: str, replay_key: str) -> FinishedEffect | None:
    """The entry (scope, replay key) if it is completed or failed, else None."""
    row = db.one("SELECT kind, status, envelope_hash, outcome_json, error_type, error_message, due_at_ms "
                 "FROM effects_entries WHERE scope=? AND replay_key=? AND status IN ('completed', 'failed')",
                 (scope, replay_key))
    if row is None:
        return None
    kind, status, env_hash, outcome, etype, emsg, due = row
    return FinishedEffect(scope, replay_key, kind, status, env_hash, None if outcome is None else json.loads(outcome),
                          etype, emsg, due)


def waiting_awaits_of_session(db: Any, session_id: str) -> list[tuple[str, str]]:
    """(scope, replay key) of the session's unresolved awaits."""
    rows = db.query("SELECT scope, replay_key FROM effects_entries WHERE session_id=? AND status='waiting' "
                    "ORDER BY scope, replay_key", (session_id,))
    return cast("list[tuple[str, str]]", rows)


def is_revoked(db: Any, session_id: str) -> bool:
    """True when the session's awaits were revoked."""
    return db.one("SELECT 1 FROM effects_revoked_sessions WHERE session_id=?", (session_id,)) is not None


@attrs.frozen
class ScopeSummary:
    """Counts of one scope's entries by status."""

    scope: str
    entries: int
    in_progress: int
    completed: int
    failed: int
    waiting: int
    cancelled: int
    last_update_ms: int


def list_scopes(db: Any) -> list[ScopeSummary]:
    """Every scope with its entry counts, ordered by scope."""
    rows = db.query(
        "SELECT scope, count(*), sum(CASE WHEN status = 'in_progress' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'waiting' THEN 1 ELSE 0 END), sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END), "
        "max(updated_at_ms) FROM effects_entries "
        "GROUP BY scope ORDER BY scope")
    return [ScopeSummary(*r) for r in rows]
