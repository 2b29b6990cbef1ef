"""The process registry tables: records, the events index, wakes, wake acks, grants, leases.

All of them are derived from the `process:<id>` streams and the prune events on
`processes:registry`:

* `processes_records`: one row per registered process. `change_seq` is the log
  position of the event that last changed the row: the change feed's clock. Grants,
  leases and wake acks live in their own tables and do not move it.
* `processes_events`: an index of each process's event log (sequence -> log position,
  type, replay key, payload hash); the payloads stay in the log.
* `processes_wakes` / `processes_wake_acks`: events that carry a wake, and which
  of them were consumed.
* `processes_grants`: handle grants keyed by (scope id, process id).
* `processes_leases`: one row per process ever leased; the fencing token survives
  release, the holder columns are NULL while nobody holds it.
* `processes_handovers`: the retained segment handovers (at most the two newest ordinals
  after each put), indexed like process events: the payloads stay in the log.

Version 2 added `processes_handovers` and the (process, event type, sequence) index that
`count_events_through` counts on.

A prune deletes every row of the pruned processes; their payloads are purged in the
same transaction, so a rebuild skips their events and agrees with the live tables.
"""

from __future__ import annotations

from typing import Any, cast

from eventstore import codec
from eventstore.leases.owners import LeaseOwner
from eventstore.processes.events import (
    ProcessAbandonRequested,
    ProcessEventAppended,
    ProcessesPruned,
    ProcessExternalRefSet,
    ProcessFirstStarted,
    ProcessHandleGranted,
    ProcessHandleRevoked,
    ProcessHandleTransferred,
    ProcessHandoverPut,
    ProcessHandoversDeleted,
    ProcessLease,
    ProcessLeaseAcquired,
    ProcessLeaseReleased,
    ProcessLeaseRenewed,
    ProcessRegistered,
    ProcessSessionDetached,
    ProcessWaitCleared,
    ProcessWaitSet,
    ProcessWakeAcked,
    PruneFilter,
)
from eventstore.processes.model import (
    Abandoned,
    AbandonRequest,
    Cancelled,
    ExternalRef,
    Failure,
    FirstStart,
    HandleDescriptor,
    HandleGrant,
    ProcessRecord,
    ProcessRegistration,
    ProcessStatus,
    SessionScope,
    Success,
    WaitState,
)
from eventstore.storage import Storage

from projections.base import REGISTRY, Projection, replace_row
from projections._rows import row_reader
from projections._select import select_where

processes = REGISTRY.register(
    Projection(
        name="processes",
        version=3,
        tables=("processes_records", "processes_events", "processes_wakes", "processes_wake_acks",
                "processes_grants", "processes_leases", "processes_handovers"),
        ddl=(
            """CREATE TABLE IF NOT EXISTS processes_records (
                process_id          TEXT PRIMARY KEY,
                registration        BLOB NOT NULL,
                registration_hash   TEXT NOT NULL,
                disposition         TEXT NOT NULL,
                input_kind          TEXT NOT NULL,
                owner_scope_id      TEXT NOT NULL,
                status              TEXT NOT NULL,
                await_output        BLOB,
                created_at_ms       INTEGER NOT NULL,
                updated_at_ms       INTEGER NOT NULL,
                change_seq          INTEGER NOT NULL,
                last_sequence       INTEGER NOT NULL,
                external_ref        BLOB,
                first_started       BLOB,
                abandon_request     BLOB,
                wait                BLOB,
                wake_target_session TEXT,
                wake_target_frame   TEXT,
                caused_by           TEXT
            ) WITHOUT ROWID""",
            "CREATE UNIQUE INDEX IF NOT EXISTS processes_records_change ON processes_records (change_seq)",
            "CREATE INDEX IF NOT EXISTS processes_records_status ON processes_records (status, updated_at_ms)",
            "CREATE INDEX IF NOT EXISTS processes_records_scope ON processes_records (owner_scope_id)",
            "CREATE INDEX IF NOT EXISTS processes_records_wake_target ON processes_records (wake_target_session)",
            """CREATE TABLE IF NOT EXISTS processes_events (
                process_id      TEXT NOT NULL,
                sequence        INTEGER NOT NULL,
                position        INTEGER NOT NULL,
                version         INTEGER NOT NULL,
                event_type      TEXT NOT NULL,
                replay_key      TEXT,
                payload_hash    TEXT NOT NULL,
                occurred_at_ms  INTEGER NOT NULL,
                terminal_status TEXT,
                PRIMARY KEY (process_id, sequence)
            ) WITHOUT ROWID""",
            "CREATE UNIQUE INDEX IF NOT EXISTS processes_events_replay ON processes_events (process_id, replay_key) "
            "WHERE replay_key IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS processes_events_type ON processes_events (process_id, event_type, sequence)",
            """CREATE TABLE IF NOT EXISTS processes_wakes (
                process_id        TEXT NOT NULL,
                sequence          INTEGER NOT NULL,
                dedupe_key        TEXT NOT NULL,
                input             TEXT NOT NULL,
                wake_id           TEXT,
                target_session_id TEXT,
                target_scope_id   TEXT,
                created_at_ms     INTEGER NOT NULL,
                PRIMARY KEY (process_id, sequence)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS processes_wake_acks (
                process_id  TEXT NOT NULL,
                sequence    INTEGER NOT NULL,
                acked_at_ms INTEGER NOT NULL,
                PRIMARY KEY (process_id, sequence)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS processes_grants (
                scope_id      TEXT NOT NULL,
                process_id    TEXT NOT NULL,
                session_id    TEXT,
                kind          TEXT,
                label         TEXT,
                granted_at_ms INTEGER NOT NULL,
                PRIMARY KEY (scope_id, process_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX IF NOT EXISTS processes_grants_process ON processes_grants (process_id)",
            "CREATE INDEX IF NOT EXISTS processes_grants_session ON processes_grants (session_id)",
            """CREATE TABLE IF NOT EXISTS processes_leases (
                process_id    TEXT PRIMARY KEY,
                fencing_token INTEGER NOT NULL,
                owner         BLOB,
                lease_token   TEXT,
                claimed_at_ms INTEGER,
                expires_at_ms INTEGER
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS processes_handovers (
                process_id      TEXT NOT NULL,
                segment_ordinal INTEGER NOT NULL,
                position        INTEGER NOT NULL,
                payload_hash    TEXT NOT NULL,
                put_at_ms       INTEGER NOT NULL,
                PRIMARY KEY (process_id, segment_ordinal)
            ) WITHOUT ROWID""",
        ),
    )
)

# --- stored values ---------------------------------------------------------------------------------

_CLASSES = {c.__name__: c for c in (ProcessRegistration, Success, Failure, Cancelled, Abandoned, ExternalRef,
                                    FirstStart, AbandonRequest, WaitState, LeaseOwner)}


def _pack(value: Any) -> bytes | None:
    """A value as msgpack `[class name, fields]` (deterministic: same value, same bytes)."""
    if value is None:
        return None
    return codec.pack([type(value).__name__, codec.class_codec(type(value)).to_plain(value)])


def _unpack(blob: bytes | None) -> Any:
    if blob is None:
        return None
    name, plain = codec.unpack(blob)
    return codec.class_codec(_CLASSES[name]).from_plain(plain)


def _touch(db: Any, column: str, value: Any, process_id: str, at_ms: int | None, position: int) -> None:
    db.execute(f"UPDATE processes_records SET {column} = ?, updated_at_ms = ?, change_seq = ? WHERE process_id = ?",
               (value, at_ms, position, process_id))


# --- appliers --------------------------------------------------------------------------------------


@processes.on(ProcessRegistered)
def _registered(db: Any, ev: Any) -> None:
    e: ProcessRegistered = ev.data
    reg = e.registration
    target = reg.wake_target
    db.execute(
        "INSERT INTO processes_records VALUES (?,?,?,?,?,?,?,NULL,?,?,?,0,NULL,NULL,NULL,NULL,?,?,?)",
        (e.process_id, _pack(reg), e.registration_hash, reg.disposition.value, reg.input.KIND,
         reg.provenance.originator.scope_id, ProcessStatus.RUNNING.value, e.registered_at_ms, e.registered_at_ms,
         ev.position, target.session_id if target else None, target.frame_id if target else None,
         reg.provenance.caused_by),
    )


@processes.on(ProcessEventAppended)
def _appended(db: Any, ev: Any) -> None:
    e: ProcessEventAppended = ev.data
    term = e.terminal
    db.execute("INSERT INTO processes_events VALUES (?,?,?,?,?,?,?,?,?)",
               (e.process_id, e.sequence, ev.position, ev.version, e.event_type, e.replay_key, e.payload_hash,
                e.occurred_at_ms, term.status.value if term else None))
    if e.wake is not None:
        d = e.wake_delivery
        db.execute("INSERT INTO processes_wakes VALUES (?,?,?,?,?,?,?,?)",
                   (e.process_id, e.sequence, e.wake.dedupe_key, e.wake.input, d.wake_id if d else None,
                    d.target_session_id if d else None, d.target_scope_id if d else None, e.occurred_at_ms))
    if term is not None:
        # A terminal transition sets the final status and clears the wait (law 82).
        db.execute("UPDATE processes_records SET status = ?, await_output = ?, wait = NULL, last_sequence = ?, "
                   "updated_at_ms = ?, change_seq = ? WHERE process_id = ?",
                   (term.status.value, _pack(term.await_output), e.sequence, e.occurred_at_ms, ev.position,
                    e.process_id))
    else:
        db.execute("UPDATE processes_records SET last_sequence = ?, updated_at_ms = ?, change_seq = ? "
                   "WHERE process_id = ?", (e.sequence, e.occurred_at_ms, ev.position, e.process_id))


@processes.on(ProcessExternalRefSet)
def _external_ref(db: Any, ev: Any) -> None:
    e: ProcessExternalRefSet = ev.data
    _touch(db, "external_ref", _pack(e.external_ref), e.process_id, e.set_at_ms, ev.position)


@processes.on(ProcessFirstStarted)
def _first_started(db: Any, ev: Any) -> None:
    e: ProcessFirstStarted = ev.data
    # updated_at is when the store recorded the change, not the caller's start time
    # (which may be far in the past: prune compares updated_at with its cutoff).
    _touch(db, "first_started", _pack(e.first_start), e.process_id, ev.recorded_at_ms, ev.position)


@processes.on(ProcessAbandonRequested)
def _abandon_requested(db: Any, ev: Any) -> None:
    e: ProcessAbandonRequested = ev.data
    _touch(db, "abandon_request", _pack(e.request), e.process_id, ev.recorded_at_ms, ev.position)


@processes.on(ProcessWaitSet)
def _wait_set(db: Any, ev: Any) -> None:
    e: ProcessWaitSet = ev.data
    _touch(db, "wait", _pack(e.wait), e.process_id, e.wait.since_ms, ev.position)


@processes.on(ProcessWaitCleared)
def _wait_cleared(db: Any, ev: Any) -> None:
    e: ProcessWaitCleared = ev.data
    _touch(db, "wait", None, e.process_id, e.cleared_at_ms, ev.position)


_GRANT = replace_row("processes_grants", "scope_id, process_id, session_id, kind, label, granted_at_ms",
                     "scope_id, process_id", "VALUES (?,?,?,?,?,?)")
_LEASE = replace_row("processes_leases", "process_id, fencing_token, owner, lease_token, claimed_at_ms, expires_at_ms",
                     "process_id", "VALUES (?,?,?,?,?,?)")


@processes.on(ProcessHandleGranted)
def _granted(db: Any, ev: Any) -> None:
    e: ProcessHandleGranted = ev.data
    db.execute(_GRANT,
               (e.scope.scope_id, e.process_id, e.scope.session_id, e.descriptor.kind, e.descriptor.label,
                e.granted_at_ms))


@processes.on(ProcessHandleRevoked)
def _revoked(db: Any, ev: Any) -> None:
    e: ProcessHandleRevoked = ev.data
    db.execute("DELETE FROM processes_grants WHERE scope_id = ? AND process_id = ?", (e.scope_id, e.process_id))


@processes.on(ProcessHandleTransferred)
def _transferred(db: Any, ev: Any) -> None:
    e: ProcessHandleTransferred = ev.data
    row = db.one("SELECT kind, label FROM processes_grants WHERE scope_id = ? AND process_id = ?",
                 (e.from_scope_id, e.process_id))
    if row is None:  # the command checked the grant exists; nothing to move otherwise
        return
    db.execute("DELETE FROM processes_grants WHERE scope_id = ? AND process_id = ?", (e.from_scope_id, e.process_id))
    db.execute(_GRANT,
               (e.to_scope.scope_id, e.process_id, e.to_scope.session_id, row[0], row[1], e.transferred_at_ms))


@processes.on(ProcessSessionDetached)
def _session_detached(db: Any, ev: Any) -> None:
    e: ProcessSessionDetached = ev.data
    db.executemany("DELETE FROM processes_grants WHERE scope_id = ? AND process_id = ?",
                   [(s, e.process_id) for s in e.revoked_scope_ids])
    if e.wake_target_cleared:
        db.execute("UPDATE processes_records SET wake_target_session = NULL, wake_target_frame = NULL, "
                   "updated_at_ms = ?, change_seq = ? WHERE process_id = ?",
                   (e.detached_at_ms, ev.position, e.process_id))


@processes.on(ProcessWakeAcked)
def _wake_acked(db: Any, ev: Any) -> None:
    e: ProcessWakeAcked = ev.data
    db.execute("INSERT INTO processes_wake_acks VALUES (?,?,?) ON CONFLICT DO NOTHING", (e.process_id, e.sequence, e.acked_at_ms))


@processes.on(ProcessLeaseAcquired)
def _lease_acquired(db: Any, ev: Any) -> None:
    e: ProcessLeaseAcquired = ev.data
    db.execute(_LEASE,
               (e.process_id, e.fencing_token, _pack(e.owner), e.lease_token, e.claimed_at_ms, e.expires_at_ms))


@processes.on(ProcessLeaseRenewed)
def _lease_renewed(db: Any, ev: Any) -> None:
    e: ProcessLeaseRenewed = ev.data
    db.execute("UPDATE processes_leases SET expires_at_ms = ? WHERE process_id = ? AND lease_token = ? "
               "AND fencing_token = ?", (e.expires_at_ms, e.process_id, e.lease_token, e.fencing_token))


@processes.on(ProcessLeaseReleased)
def _lease_released(db: Any, ev: Any) -> None:
    e: ProcessLeaseReleased = ev.data
    # The fencing token stays: the next acquisition must get a higher one.
    db.execute("UPDATE processes_leases SET owner = NULL, lease_token = NULL, claimed_at_ms = NULL, "
               "expires_at_ms = NULL WHERE process_id = ? AND lease_token = ? AND fencing_token = ?",
               (e.process_id, e.lease_token, e.fencing_token))


@processes.on(ProcessHandoverPut)
def _handover_put(db: Any, ev: Any) -> None:
    e: ProcessHandoverPut = ev.data
    # The command listed the retained ordinals below segment_ordinal - 1: the rule
    # "a put keeps only its predecessor" is decided there, and copied here.
    db.executemany("DELETE FROM processes_handovers WHERE process_id = ? AND segment_ordinal = ?",
                   [(e.process_id, o) for o in e.dropped_ordinals])
    db.execute("INSERT INTO processes_handovers VALUES (?,?,?,?,?)",
               (e.process_id, e.segment_ordinal, ev.position, e.payload_hash, e.put_at_ms))


@processes.on(ProcessHandoversDeleted)
def _handovers_deleted(db: Any, ev: Any) -> None:
    e: ProcessHandoversDeleted = ev.data
    db.executemany("DELETE FROM processes_handovers WHERE process_id = ? AND segment_ordinal = ?",
                   [(e.process_id, o) for o in e.segment_ordinals])


@processes.on(ProcessesPruned)
def _pruned(db: Any, ev: Any) -> None:
    e: ProcessesPruned = ev.data
    rows = [(pid,) for pid in e.process_ids]
    for table in ("processes_events", "processes_wakes", "processes_wake_acks", "processes_grants",
                  "processes_leases", "processes_handovers", "processes_records"):
        db.executemany(f"DELETE FROM {table} WHERE process_id = ?", rows)


# --- reads -----------------------------------------------------------------------------------------

_RECORD_COLUMNS = ("process_id, registration, registration_hash, status, await_output, created_at_ms, updated_at_ms, "
                   "change_seq, last_sequence, external_ref, first_started, abandon_request, wait, "
                   "wake_target_session, wake_target_frame")
_RECORD_COLUMNS_R = ", ".join("r." + c.strip() for c in _RECORD_COLUMNS.split(","))


_REGISTRATIONS: dict[str, ProcessRegistration] = {}
"""Decoded registrations by registration hash (the hash covers the id and every field, so
equal hashes mean equal registrations). Decoding one costs more than the rest of an
append; records share the cached instance, which callers must treat as read-only."""


@row_reader("processes_records")
def _registration(reg_hash: str, blob: bytes) -> ProcessRegistration:
    reg = _REGISTRATIONS.get(reg_hash)
    if reg is None:
        if len(_REGISTRATIONS) >= 4096:
            _REGISTRATIONS.clear()
        reg = _REGISTRATIONS[reg_hash] = _unpack(blob)
    return reg


@row_reader("processes_records")
def _record(row: tuple[Any, ...]) -> ProcessRecord:
    (pid, reg, reg_hash, status, output, created, updated, change_seq, last_seq, ext, first, abandon, wait,
     target_session, target_frame) = row
    target = SessionScope(target_session, target_frame) if target_session is not None else None
    return ProcessRecord(pid, _registration(reg_hash, reg), reg_hash, ProcessStatus(status), _unpack(output), created, updated,
                         change_seq, last_seq, _unpack(ext), _unpack(first), _unpack(abandon), _unpack(wait), target)


def get_record(db: Any, process_id: str) -> ProcessRecord | None:
    """One process's record, or None."""
    row = db.one(f"SELECT {_RECORD_COLUMNS} FROM processes_records WHERE process_id = ?", (process_id,))
    return None if row is None else _record(row)


def list_records(db: Any, *, status: str | None = None, scope_id: str | None = None, waiting: bool | None = None,
                 after_id: str | None = None, limit: int | None = None) -> list[ProcessRecord]:
    """Records ordered by process id, filtered by status, owner scope and wait state."""
    sql, params = select_where(f"SELECT {_RECORD_COLUMNS} FROM processes_records",
                               ("status = ?", status), ("owner_scope_id = ?", scope_id),
                               None if waiting is None else ("wait IS NOT NULL" if waiting else "wait IS NULL"),
                               ("process_id > ?", after_id), order_by="process_id", limit=limit)
    return [_record(r) for r in db.query(sql, params)]


def changed_since(db: Any, cursor: int, limit: int) -> list[ProcessRecord]:
    """Records whose change_seq is above `cursor`, in change_seq order (the change feed)."""
    return [_record(r) for r in db.query(
        f"SELECT {_RECORD_COLUMNS} FROM processes_records WHERE change_seq > ? ORDER BY change_seq LIMIT ?",
        (cursor, limit))]


def event_index(db: Any, process_id: str, after_sequence: int, limit: int | None = None,
                wakes_only: bool = False) -> list[tuple[int, int, int]]:
    """(sequence, position, version) of events after `after_sequence`, in order.

    With `wakes_only`, only events that carry a wake that was not acked.
    """
    if wakes_only:
        sql = ("SELECT e.sequence, e.position, e.version FROM processes_wakes w "
               "JOIN processes_events e ON e.process_id = w.process_id AND e.sequence = w.sequence "
               "LEFT JOIN processes_wake_acks a ON a.process_id = w.process_id AND a.sequence = w.sequence "
               "WHERE w.process_id = ? AND w.sequence > ? AND a.sequence IS NULL ORDER BY w.sequence")
    else:
        sql = ("SELECT sequence, position, version FROM processes_events WHERE process_id = ? AND sequence > ? "
               "ORDER BY sequence")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return cast("list[tuple[int, int, int]]", db.query(sql, (process_id, after_sequence)))


def recent_event_index(db: Any, process_id: str, limit: int) -> list[tuple[int, int, int]]:
    """(sequence, position, version) of the newest `limit` events, oldest first."""
    rows = db.query("SELECT sequence, position, version FROM processes_events WHERE process_id = ? "
                    "ORDER BY sequence DESC LIMIT ?", (process_id, limit))
    rows.reverse()
    return cast("list[tuple[int, int, int]]", rows)


def count_events_of_type(db: Any, process_id: str, event_type: str, through_sequence: int) -> int:
    """How many events of one type have a sequence <= `through_sequence` (an index range count)."""
    n: int = db.scalar("SELECT count(*) FROM processes_events WHERE process_id = ? AND event_type = ? "
                       "AND sequence <= ?", (process_id, event_type, through_sequence), 0)
    return n


def event_by_replay_key(db: Storage, process_id: str, replay_key: str) -> tuple[int, str, int, int] | None:
    """(sequence, payload_hash, position, version) of the event stored under a replay key."""
    return db.one("SELECT sequence, payload_hash, position, version FROM processes_events "
                  "WHERE process_id = ? AND replay_key = ?", (process_id, replay_key))


def wake_acked(db: Any, process_id: str, sequence: int) -> bool:
    """True when the wake of that event was acked."""
    return db.one("SELECT 1 FROM processes_wake_acks WHERE process_id = ? AND sequence = ?",
                  (process_id, sequence)) is not None


@row_reader("processes_grants")
def _grant(row: tuple[Any, ...]) -> HandleGrant:
    scope_id, pid, session_id, kind, label, at = row
    return HandleGrant(scope_id, pid, session_id, HandleDescriptor(kind, label), at)


def get_grant(db: Any, scope_id: str, process_id: str) -> HandleGrant | None:
    """One grant, or None."""
    row = db.one("SELECT * FROM processes_grants WHERE scope_id = ? AND process_id = ?", (scope_id, process_id))
    return None if row is None else _grant(row)


def grants_for_scope(db: Any, scope_id: str, live_only: bool = False) -> list[tuple[HandleGrant, ProcessRecord]]:
    """The grants a scope holds with their records, by process id (`live_only`: running processes)."""
    sql = (f"SELECT g.*, {_RECORD_COLUMNS_R} FROM processes_grants g "
           "JOIN processes_records r ON r.process_id = g.process_id WHERE g.scope_id = ?")
    if live_only:
        sql += " AND r.status = 'running'"
    sql += " ORDER BY g.process_id"
    return [(_grant(row[:6]), _record(row[6:])) for row in db.query(sql, (scope_id,))]


def grants_for_process(db: Any, process_id: str) -> list[HandleGrant]:
    """Every grant of one process, ordered by session id then scope id (host scopes first)."""
    return [_grant(r) for r in db.query(
        "SELECT * FROM processes_grants WHERE process_id = ? ORDER BY coalesce(session_id, ''), scope_id",
        (process_id,))]


def grants_for_session(db: Any, session_id: str) -> list[HandleGrant]:
    """Every grant held by a session or one of its frames, by process id then scope id."""
    return [_grant(r) for r in db.query(
        "SELECT * FROM processes_grants WHERE session_id = ? ORDER BY process_id, scope_id", (session_id,))]


def count_grants(db: Any, process_id: str) -> int:
    """How many scopes hold a grant on the process."""
    return cast("int", db.scalar("SELECT count(*) FROM processes_grants WHERE process_id = ?", (process_id,), 0))


def wake_targeted(db: Any, session_id: str) -> list[str]:
    """Ids of processes whose default wake target is in that session."""
    return [r[0] for r in db.query(
        "SELECT process_id FROM processes_records WHERE wake_target_session = ? ORDER BY process_id", (session_id,))]


@row_reader("processes_leases")
def get_lease(db: Any, process_id: str) -> tuple[int, ProcessLease | None]:
    """(stored fencing token, current holder or None). (0, None) when never leased."""
    row = db.one("SELECT fencing_token, owner, lease_token, claimed_at_ms, expires_at_ms FROM processes_leases "
                 "WHERE process_id = ?", (process_id,))
    if row is None:
        return 0, None
    fence, owner, token, claimed, expires = row
    if token is None:
        return fence, None
    return fence, ProcessLease(process_id, _unpack(owner), token, fence, claimed, expires)


def handover_index(db: Any, process_id: str, segment_ordinal: int | None = None,
                   latest: bool = False) -> list[tuple[int, int, str, int]]:
    """(segment ordinal, position, payload hash, put_at_ms) of retained handovers, by ordinal:
    all of them, the one at `segment_ordinal`, or (`latest`) only the highest."""
    sql = "SELECT segment_ordinal, position, payload_hash, put_at_ms FROM processes_handovers WHERE process_id = ?"
    params: list[Any] = [process_id]
    if segment_ordinal is not None:
        sql += " AND segment_ordinal = ?"
        params.append(segment_ordinal)
    sql += " ORDER BY segment_ordinal DESC LIMIT 1" if latest else " ORDER BY segment_ordinal"
    return cast("list[tuple[int, int, str, int]]", db.query(sql, params))


def prune_candidates(db: Storage, cutoff_ms: int, flt: PruneFilter | None,
                     up_to_change_seq: int | None) -> list[tuple[str, int]]:
    """(process id, last sequence) of terminal rows a prune may take, by process id."""
    where = ["status != 'running'", "updated_at_ms < ?"]
    params: list[Any] = [cutoff_ms]
    if up_to_change_seq is not None:
        where.append("change_seq <= ?")
        params.append(up_to_change_seq)
    if flt is not None:
        if flt.statuses:
            where.append(f"status IN ({','.join('?' * len(flt.statuses))})")
            params.extend(s.value for s in flt.statuses)
        if flt.owner_scope_id is not None:
            where.append("owner_scope_id = ?")
            params.append(flt.owner_scope_id)
        if flt.disposition is not None:
            where.append("disposition = ?")
            params.append(flt.disposition.value)
        if flt.input_kind is not None:
            where.append("input_kind = ?")
            params.append(flt.input_kind)
        if flt.caused_by is not None:
            where.append("caused_by = ?")
            params.append(flt.caused_by)
    return db.query(f"SELECT process_id, last_sequence FROM processes_records WHERE {' AND '.join(where)} "
                    "ORDER BY process_id", params)


def counts_by_status(db: Any) -> dict[str, int]:
    """How many processes are in each status."""
    return dict(db.query("SELECT status, count(*) FROM processes_records GROUP BY status"))
