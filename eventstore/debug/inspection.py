"""Inspection for debugging: the state at a position, and why an event is in the log.

    summary = state_at(store, 1200, streams=["session:s1"])   # what s1 looked like at 1200
    report = why(store, "session:s1", 17)                      # event 17 of s1, its command, its neighbours

Both read only. The state is the projections replayed to the position (`timetravel.view_at`,
which uses cached snapshots), summarised per domain: sessions with their lease,
queue, inputs and head; and every projection table generically (its row count, and its
rows per `status` or `state` when it has such a column), so a domain added later shows
up without any change here. Liveness (is a lease or a claim live?) is judged at the
time the event at that position was recorded: the moment the state describes.

`eventstore.debug.statediff` compares two positions; the `eventstore replay`, `diff` and `why`
commands print these results.
"""

from __future__ import annotations

from typing import Any, Sequence

import attrs

from .describe_events import describe
from ..errors import InvalidArgument
from ..log import validate_stream
from ..storage import Storage
from ..store import Store
from .timetravel import view_at

COMMAND_LIMIT = 500
"""The most events `why` groups into one command on each side of the event."""
SESSION_LIMIT = 200
"""Sessions summarised one by one (beyond that, only the table counts say how many)."""


# --- shared table helpers -----------------------------------------------------------------------


def columns(db: Storage, table: str) -> list[str]:
    """The column names of a table (empty when it does not exist)."""
    return db.table_columns(table)


def primary_key(db: Storage, table: str) -> list[str]:
    """The primary key columns of a table, in key order (all columns when it has none)."""
    return db.table_primary_key(table)


def row_dict(db: Storage, table: str, where: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    """One row as a column -> value map, or None."""
    names = columns(db, table)
    if not names:
        return None
    row = db.one(f"SELECT * FROM {table} WHERE {where}", params)
    return None if row is None else dict(zip(names, row))


def as_of(store: Store, position: int) -> int | None:
    """The time the event at `position` was recorded (None at position 0)."""
    ev = next(store.log.read_all(position, to_position=position, only_decode=frozenset()), None) if position > 0 else None
    return None if ev is None else ev.recorded_at_ms


# --- events ------------------------------------------------------------------------------------------


@attrs.frozen
class EventInfo:
    """One event with its readable line."""

    position: int
    stream: str
    version: int
    type: str
    schema: int
    recorded_at_ms: int
    text: str
    """`describe(event)`: one readable line."""
    data: Any = None
    """The decoded field map (None when purged); set where the full event is wanted."""
    hash: str | None = None


def event_info(store: Store, ev: Any, full: bool = False) -> EventInfo:
    """An EventInfo from a RecordedEvent (raw or decoded); `full` adds the data and the hash."""
    data = hash_ = None
    if full:
        data = ev.data
        h = store.log.hash_at(ev.position)
        hash_ = None if h is None else h.hex()
    return EventInfo(ev.position, ev.stream, ev.version, ev.type, ev.schema, ev.recorded_at_ms,
                     describe(ev), data, hash_)


# --- the state at a position -------------------------------------------------------------------


@attrs.frozen
class LeaseSummary:
    """A session's lease at the summarised moment."""

    holder: str | None
    """`owner_id/incarnation_id`, or None when released (or never held)."""
    fencing_token: int
    expires_at_ms: int | None
    live: bool


@attrs.frozen
class SessionSummary:
    """One session's state: catalogue row, lease, queue, inputs and head."""

    session_id: str
    status: str
    generation: int
    name: str | None
    lease: LeaseSummary | None
    queue: dict[str, int]
    """Batches by state: `pending` and `claimed` (a claim whose lease generation is no
    longer live counts as pending)."""
    inputs: dict[str, int]
    """Input rows by effective state."""
    head: dict[str, Any] | None
    """`revision`, `leaf_node_id` and `live_nodes` of the graph head, when it has one."""


@attrs.frozen
class TableSummary:
    """One projection table: its row count and, when it has one, rows per status/state."""

    projection: str
    table: str
    rows: int
    by: str | None = None
    """The column grouped by (`status` or `state`), or None."""
    groups: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class StateSummary:
    """The state of the store (or of some streams) at one position."""

    position: int
    as_of_ms: int | None
    streams: tuple[str, ...] | None
    sessions: tuple[SessionSummary, ...]
    sessions_total: int
    tables: tuple[TableSummary, ...]


def state_at(store: Store, position: int | None = None, streams: Sequence[str] | None = None, *,
             cache: bool = True) -> StateSummary:
    """Summarise every projection replayed to `position` (default: the head)."""
    streams = _check_streams(streams)
    with view_at(store, position, streams, cache=cache) as view:
        return summarize_view(store, view.db, view.position, streams)


def summarize_view(store: Store, db: Storage, position: int, streams: Sequence[str] | None) -> StateSummary:
    """The StateSummary of an already replayed database (a view's `db`)."""
    now = as_of(store, position)
    tables = []
    for p in store.engine.projections:
        for table in p.tables:
            tables.append(_table_summary(db, p.name, table))
    sessions: list[SessionSummary] = []
    total = 0
    if columns(db, "sessions_index"):
        total = db.scalar("SELECT count(*) FROM sessions_index", (), 0)
        for (sid,) in db.query(f"SELECT session_id FROM sessions_index ORDER BY session_id LIMIT {SESSION_LIMIT}"):
            sessions.append(session_summary(db, sid, now))
    return StateSummary(position, now, tuple(streams) if streams else None, tuple(sessions), total, tuple(tables))


def _table_summary(db: Storage, projection: str, table: str) -> TableSummary:
    names = columns(db, table)
    if not names:
        return TableSummary(projection, table, 0)
    rows = db.scalar(f"SELECT count(*) FROM {table}", (), 0)
    by = next((c for c in ("status", "state") if c in names), None)
    groups: dict[str, int] = {}
    if by is not None and rows:
        for value, n in db.query(f"SELECT {by}, count(*) FROM {table} GROUP BY {by} ORDER BY {by}"):
            groups[str(value)] = n
    return TableSummary(projection, table, rows, by, groups)


def session_summary(db: Storage, session_id: str, now_ms: int | None) -> SessionSummary:
    """One session's summary read from (replayed) projection tables; parts whose tables
    this code does not have are left empty."""
    row = row_dict(db, "sessions_index", "session_id = ?", (session_id,)) or {}
    lease = None
    live_gen = None
    lrow = row_dict(db, "lease_sessions", "session_id = ?", (session_id,))
    if lrow is not None:
        holder = None if lrow.get("owner_id") is None else f"{lrow['owner_id']}/{lrow.get('incarnation_id')}"
        expires = lrow.get("expires_at_ms")
        live = holder is not None and now_ms is not None and expires is not None and now_ms < expires
        lease = LeaseSummary(holder, lrow.get("fencing_token", 0), expires, live)
        live_gen = lrow.get("fencing_token") if live else None
    queue: dict[str, int] = {}
    if columns(db, "queue_batches"):
        for gen, n in db.query("SELECT claim_generation, count(*) FROM queue_batches WHERE session_id = ? "
                               "GROUP BY claim_generation", (session_id,)):
            key = "claimed" if gen is not None and gen == live_gen else "pending"
            queue[key] = queue.get(key, 0) + n
    inputs: dict[str, int] = {}
    if columns(db, "inputs_pending"):
        for state, gen, n in db.query("SELECT state, claim_generation, count(*) FROM inputs_pending "
                                      "WHERE session_id = ? GROUP BY state, claim_generation", (session_id,)):
            if state == "accepted" and (gen is None or gen != live_gen):
                state = "pending_active"  # accepted under a dead claim: pending again (see store.inputs)
            inputs[state] = inputs.get(state, 0) + n
    head: dict[str, Any] | None = None
    hrow = row_dict(db, "graph_heads", "session_id = ?", (session_id,))
    if hrow is not None:
        head = {k: hrow[k] for k in ("revision", "leaf_node_id", "live_nodes") if k in hrow}
    return SessionSummary(session_id, row.get("status", "?"), row.get("generation", 0), row.get("name"),
                          lease, dict(sorted(queue.items())), dict(sorted(inputs.items())), head)


def _check_streams(streams: Sequence[str] | None) -> list[str] | None:
    if streams is None:
        return None
    if isinstance(streams, str):
        raise InvalidArgument(f"streams must be a list of stream names, got the string {streams!r}")
    return [validate_stream(s) for s in streams] or None


# --- why ---------------------------------------------------------------------------------------------


@attrs.frozen
class WhyReport:
    """An event, the command that appended it, and its neighbours on the stream."""

    event: EventInfo
    command: tuple[EventInfo, ...]
    """The events appended by the same command (the event itself included), at most
    COMMAND_LIMIT on each side of the event: see `command_span` for the whole command."""
    command_basis: str
    """How the command was found: "command marks (exact)" or the heuristic used."""
    before: tuple[EventInfo, ...]
    after: tuple[EventInfo, ...]
    command_span: tuple[int, int] = (0, 0)
    """(first position, last position) of the whole command."""


def why(store: Store, stream: str, version: int, *, around: int = 3) -> WhyReport:
    """Event `version` of `stream`, the events its command appended, and the `around`
    events before and after it on the stream.

    The command is exact for rows written under store layout 2 and later: each row's
    flags say whether it starts a command (one caller's write) or continues the one
    before it, so a command that appended to several streams shows all of them. Rows
    written under store layout 1 carry no marks; for them the command is found by a
    heuristic: the events of the same stream, recorded in the same millisecond, at
    adjacent positions (every command appends its events at once with one decision
    time), so two commands on one stream within one millisecond (a test clock, a burst)
    are shown as one. `command_basis` says which was used.
    """
    validate_stream(stream)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgument(f"version must be an integer >= 1, got {version!r}")
    if isinstance(around, bool) or not isinstance(around, int) or around < 0:
        raise InvalidArgument(f"around must be an integer >= 0, got {around!r}")
    with store.read_transaction():
        target = next(store.read_stream(stream, version, to_version=version, raw=True), None)
        if target is None:
            current = store.stream_version(stream)
            raise InvalidArgument(f"stream {stream!r} has no version {version} (it is at version {current})")
        position, at = target.position, target.recorded_at_ms
        first, last, basis = _command_span(store, stream, position, at)
        command = [event_info(store, ev) for ev in store.log.read_all(
            max(first, position - COMMAND_LIMIT), to_position=min(last, position + COMMAND_LIMIT), raw=True)]
        before = [event_info(store, ev) for ev in
                  store.read_stream(stream, max(1, version - around), to_version=version - 1, raw=True)] \
            if version > 1 and around else []
        after = [event_info(store, ev) for ev in
                 store.read_stream(stream, version + 1, to_version=version + around, raw=True)] if around else []
    return WhyReport(event_info(store, target, full=True), tuple(command), basis, tuple(before), tuple(after),
                     (first, last))


def _command_span(store: Store, stream: str, position: int, at: int) -> tuple[int, int, str]:
    span = store.log.command_span(position)
    if span is not None:
        return span[0], span[1], "command marks (exact)"
    # Heuristic: walk outwards while the neighbour is on the same stream at the same time
    # (at most COMMAND_LIMIT events each way, headers only, in one read of the window).
    window = store.log.read_all(max(1, position - COMMAND_LIMIT), to_position=position + COMMAND_LIMIT,
                                only_decode=frozenset())
    index = {ev.position: (ev.stream, ev.recorded_at_ms) for ev in window}
    first = last = position
    while index.get(first - 1) == (stream, at):
        first -= 1
    while index.get(last + 1) == (stream, at):
        last += 1
    return first, last, ("heuristic: adjacent events of the same stream recorded in the same millisecond "
                         "(rows written under store layout 1 carry no command marks; commands run within one "
                         "millisecond merge)")


__all__ = ["EventInfo", "LeaseSummary", "SessionSummary", "StateSummary", "TableSummary", "WhyReport",
           "as_of", "columns", "event_info", "primary_key", "row_dict", "session_summary", "state_at",
           "summarize_view", "why"]
