"""The pending-turn-input table: one row per input, in enqueue order per session.

A row keeps its stored state (pending_active, deferred_next_turn, accepted, cancelled,
completed) and the claim that last took it. Whether that claim is *live* depends on
the session lease at the reader's `now`, so readers pass the live lease generation in,
and the read model reports an ACCEPTED row whose claim is not live as PENDING_ACTIVE:
it is claimable again without an explicit abandon (the reference leaves it stuck).

`inputs_sessions` keeps each session's last enqueue sequence number; it survives the
session's deletion, and a purge raises it to the purged stream's version, so ids are
never reused.
"""

from __future__ import annotations

from typing import Any, cast, Sequence

import attrs

from eventstore import codec
from eventstore.inputs.events import (
    ActiveTurn,
    CheckpointKind,
    InputState,
    NextTurn,
    TurnInputClaimAbandoned,
    TurnInputEnqueued,
    TurnInputsCancelled,
    TurnInputsClaimed,
    TurnInputsCompleted,
    TurnInputsDeferred,
    TurnInputsVacuumed,
)
from eventstore.sessions.events import SessionDeletedEvent, SessionPurged

from projections._claims import CLEAR_CLAIM, SET_CLAIM, claim_values
from projections.base import REGISTRY, Projection
from projections._rows import row_reader

inputs = REGISTRY.register(
    Projection(
        name="inputs",
        version=2,
        tables=("inputs_pending", "inputs_sessions"),
        ddl=(
            """CREATE TABLE IF NOT EXISTS inputs_pending (
                session_id           TEXT    NOT NULL,
                enqueue_seq          INTEGER NOT NULL,
                input_id             TEXT    NOT NULL,
                source_key           TEXT,
                content_hash         TEXT    NOT NULL,
                ingress_kind         TEXT    NOT NULL,
                turn_id              TEXT,
                min_boundary         TEXT,
                state                TEXT    NOT NULL,
                input                BLOB    NOT NULL,
                enqueued_at_ms       INTEGER NOT NULL,
                claim_fencing_token  INTEGER NOT NULL,
                claim_id             TEXT,
                claim_owner_id       TEXT,
                claim_incarnation_id TEXT,
                claim_token          TEXT,
                claim_generation     INTEGER,
                claimed_at_ms        INTEGER,
                settled_at_ms        INTEGER,
                PRIMARY KEY (session_id, enqueue_seq)
            ) WITHOUT ROWID""",
            "CREATE UNIQUE INDEX IF NOT EXISTS inputs_pending_by_id ON inputs_pending (session_id, input_id)",
            "CREATE UNIQUE INDEX IF NOT EXISTS inputs_pending_by_source_key ON inputs_pending (session_id, source_key) "
            "WHERE source_key IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS inputs_pending_by_claim ON inputs_pending (session_id, claim_id) "
            "WHERE claim_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS inputs_pending_by_turn ON inputs_pending (session_id, turn_id, enqueue_seq) "
            "WHERE turn_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS inputs_pending_by_state ON inputs_pending (session_id, state, enqueue_seq)",
            """CREATE TABLE IF NOT EXISTS inputs_sessions (
                session_id       TEXT PRIMARY KEY,
                last_enqueue_seq INTEGER NOT NULL
            ) WITHOUT ROWID""",
        ),
    )
)

_CLEAR_CLAIM = CLEAR_CLAIM


@inputs.on(TurnInputEnqueued)
def _enqueued(db: Any, ev: Any) -> None:
    e: TurnInputEnqueued = ev.data
    if isinstance(e.ingress, ActiveTurn):
        kind, turn, boundary, state = "active_turn", e.ingress.turn_id, e.ingress.min_boundary.value, "pending_active"
    else:
        kind, turn, boundary, state = "next_turn", None, None, "deferred_next_turn"
    db.execute(
        "INSERT INTO inputs_pending VALUES (?,?,?,?,?,?,?,?,?,?,?,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL)",
        (e.session_id, e.enqueue_seq, e.input_id, e.source_key, e.content_hash, kind, turn, boundary, state,
         codec.pack(e.input), e.enqueued_at_ms),
    )
    db.execute(
        "INSERT INTO inputs_sessions VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE "
        "SET last_enqueue_seq = excluded.last_enqueue_seq WHERE excluded.last_enqueue_seq > inputs_sessions.last_enqueue_seq",
        (e.session_id, e.enqueue_seq),
    )


@inputs.on(TurnInputsClaimed)
def _claimed(db: Any, ev: Any) -> None:
    e: TurnInputsClaimed = ev.data
    state = "state = 'accepted', " if e.mode == "active_turn" else ""
    values = claim_values(e)
    db.executemany(
        f"UPDATE inputs_pending SET {state}{SET_CLAIM} WHERE session_id = ? AND input_id = ?",
        [(*values, e.session_id, i) for i in e.input_ids],
    )


@inputs.on(TurnInputClaimAbandoned)
def _abandoned(db: Any, ev: Any) -> None:
    e: TurnInputClaimAbandoned = ev.data
    db.executemany(
        "UPDATE inputs_pending SET state = CASE state WHEN 'accepted' THEN 'pending_active' ELSE state END, "
        f"{_CLEAR_CLAIM} WHERE session_id = ? AND input_id = ? AND claim_id = ? AND claim_token = ?",
        [(e.session_id, i, e.claim_id, e.lease_token) for i in e.input_ids],
    )


def _terminal(db: Any, session_id: str, input_ids: Sequence[str], state: str, at_ms: int) -> None:
    db.executemany(
        f"UPDATE inputs_pending SET state = ?, settled_at_ms = ?, {_CLEAR_CLAIM} WHERE session_id = ? AND input_id = ?",
        [(state, at_ms, session_id, i) for i in input_ids],
    )


@inputs.on(TurnInputsCancelled)
def _cancelled(db: Any, ev: Any) -> None:
    e: TurnInputsCancelled = ev.data
    _terminal(db, e.session_id, e.input_ids, "cancelled", e.cancelled_at_ms)


@inputs.on(TurnInputsCompleted)
def _completed(db: Any, ev: Any) -> None:
    e: TurnInputsCompleted = ev.data
    _terminal(db, e.session_id, e.input_ids, "completed", e.completed_at_ms)


@inputs.on(TurnInputsDeferred)
def _deferred(db: Any, ev: Any) -> None:
    e: TurnInputsDeferred = ev.data
    db.executemany(
        "UPDATE inputs_pending SET state = 'deferred_next_turn', ingress_kind = 'next_turn', turn_id = NULL, "
        f"min_boundary = NULL, {_CLEAR_CLAIM} WHERE session_id = ? AND input_id = ?",
        [(e.session_id, i) for i in e.input_ids],
    )


@inputs.on(TurnInputsVacuumed)
def _vacuumed(db: Any, ev: Any) -> None:
    e: TurnInputsVacuumed = ev.data
    db.executemany("DELETE FROM inputs_pending WHERE session_id = ? AND input_id = ? "
                   "AND state IN ('cancelled', 'completed')", [(e.session_id, i) for i in e.input_ids])


@inputs.on(SessionDeletedEvent)
def _session_deleted(db: Any, ev: Any) -> None:
    # Delete wipes the session's inputs (law 70); the sequence counter stays.
    db.execute("DELETE FROM inputs_pending WHERE session_id = ?", (ev.data.session_id,))


@inputs.on(SessionPurged)
def _session_purged(db: Any, ev: Any) -> None:
    # A rebuild after a purge sees none of the session's events: the rows go, and the
    # counter is raised to the stream's version at the purge (carried by the purge record,
    # so a rebuild agrees), so that no input id or claim id of the purged generation is
    # ever issued again (see projections/queue.py).
    db.execute("DELETE FROM inputs_pending WHERE session_id = ?", (ev.data.session_id,))
    db.execute("INSERT INTO inputs_sessions VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE "
               "SET last_enqueue_seq = excluded.last_enqueue_seq WHERE excluded.last_enqueue_seq > inputs_sessions.last_enqueue_seq",
               (ev.data.session_id, ev.data.through_version))


# --- reads -----------------------------------------------------------------------------


@attrs.frozen
class InputClaimInfo:
    """The claim that last took an input, and whether it is live at the read's `now`."""

    claim_id: str
    owner_id: str
    incarnation_id: str
    generation: int
    claimed_at_ms: int
    live: bool


@attrs.frozen
class PendingTurnInput:
    """One pending turn input.

    `state` is the effective state: an ACCEPTED row whose claim is not live reads as
    PENDING_ACTIVE (it is claimable and cancellable again); `claim` still names the dead
    claim, with `live=False`.
    """

    session_id: str
    input_id: str
    enqueue_seq: int
    source_key: str | None
    ingress: ActiveTurn | NextTurn
    input: Any
    state: InputState
    enqueued_at_ms: int
    claim: InputClaimInfo | None = None
    settled_at_ms: int | None = None
    claim_fencing_token: int = 0
    content_hash: str = ""

    @property
    def claimed(self) -> bool:
        """True while a live claim holds the input."""
        return self.claim is not None and self.claim.live


_COLUMNS = ("session_id, enqueue_seq, input_id, source_key, content_hash, ingress_kind, turn_id, min_boundary, "
            "state, input, enqueued_at_ms, claim_fencing_token, claim_id, claim_owner_id, claim_incarnation_id, "
            "claim_generation, claimed_at_ms, settled_at_ms")


@row_reader("inputs_pending")
def _row(r: tuple[Any, ...], live_generation: int | None) -> PendingTurnInput:
    ingress = ActiveTurn(r[6], CheckpointKind(r[7])) if r[5] == "active_turn" else NextTurn()
    state = InputState(r[8])
    claim = None
    if r[12] is not None:
        live = live_generation is not None and r[15] == live_generation
        claim = InputClaimInfo(r[12], r[13], r[14], r[15], r[16], live)
        if state is InputState.ACCEPTED and not live:
            state = InputState.PENDING_ACTIVE
    return PendingTurnInput(r[0], r[2], r[1], r[3], ingress, codec.unpack(r[9]), state, r[10], claim, r[17],
                            r[11], r[4])


@attrs.frozen
class InputRow:
    """The decision-relevant columns of one input row (no payload decoding)."""

    enqueue_seq: int
    input_id: str
    source_key: str | None
    content_hash: str
    state: InputState
    turn_id: str | None
    claim_fencing_token: int
    claim_id: str | None
    claim_token: str | None
    claim_generation: int | None

    def held_by(self, generation: int | None) -> bool:
        """True when a claim of `generation` (the live one) holds this row."""
        return self.claim_token is not None and generation is not None and self.claim_generation == generation


_ROW_COLUMNS = ("enqueue_seq, input_id, source_key, content_hash, state, turn_id, claim_fencing_token, claim_id, "
                "claim_token, claim_generation")


@row_reader("inputs_pending")
def _input_row(r: tuple[Any, ...]) -> InputRow:
    return InputRow(r[0], r[1], r[2], r[3], InputState(r[4]), r[5], r[6], r[7], r[8], r[9])


def get(db: Any, session_id: str, input_id: str, live_generation: int | None) -> PendingTurnInput | None:
    """One input by id, or None."""
    r = db.one(f"SELECT {_COLUMNS} FROM inputs_pending WHERE session_id = ? AND input_id = ?", (session_id, input_id))
    return None if r is None else _row(r, live_generation)


def get_many(db: Any, session_id: str, input_ids: Sequence[str], live_generation: int | None) -> list[PendingTurnInput]:
    """Inputs by id, in enqueue order (missing ids left out)."""
    out = [x for x in (get(db, session_id, i, live_generation) for i in input_ids) if x is not None]
    return sorted(out, key=lambda x: x.enqueue_seq)


def list_inputs(db: Any, session_id: str, live_generation: int | None, *, pending_only: bool = False,
                limit: int | None = None) -> list[PendingTurnInput]:
    """The session's inputs in enqueue order; with `pending_only`, the pending and deferred
    ones (and accepted ones whose claim is not live) that no live claim holds."""
    sql = f"SELECT {_COLUMNS} FROM inputs_pending WHERE session_id = ?"
    params: list[Any] = [session_id]
    if pending_only:
        sql += " AND state IN ('pending_active', 'deferred_next_turn', 'accepted')"
        if live_generation is not None:
            sql += " AND (claim_token IS NULL OR claim_generation <> ?)"
            params.append(live_generation)
    sql += " ORDER BY enqueue_seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_row(r, live_generation) for r in db.query(sql, params)]


def row_by_id(db: Any, session_id: str, input_id: str) -> InputRow | None:
    """The decision columns of one input, or None."""
    r = db.one(f"SELECT {_ROW_COLUMNS} FROM inputs_pending WHERE session_id = ? AND input_id = ?",
               (session_id, input_id))
    return None if r is None else _input_row(r)


def row_by_source_key(db: Any, session_id: str, source_key: str) -> InputRow | None:
    """The decision columns of the input enqueued with `source_key`, or None."""
    r = db.one(f"SELECT {_ROW_COLUMNS} FROM inputs_pending WHERE session_id = ? AND source_key = ?",
               (session_id, source_key))
    return None if r is None else _input_row(r)


def rows_from(db: Any, session_id: str, from_seq: int) -> list[InputRow]:
    """The decision columns of every input with enqueue_seq >= `from_seq`, in order."""
    return [_input_row(r) for r in db.query(
        f"SELECT {_ROW_COLUMNS} FROM inputs_pending WHERE session_id = ? AND enqueue_seq >= ? ORDER BY enqueue_seq",
        (session_id, from_seq))]


def active_candidates(db: Any, session_id: str, turn_id: str, checkpoint: CheckpointKind, generation: int,
                      limit: int) -> list[InputRow]:
    """Inputs an active-turn claim at `checkpoint` of `turn_id` may take, in order.

    PENDING_ACTIVE rows, and ACCEPTED rows held by another generation (a dead claim: the
    caller's generation is the live one), admitted by the checkpoint: AFTER_WORK admits
    only AFTER_WORK inputs, BEFORE_COMPLETION admits both.
    """
    boundary = "" if checkpoint is CheckpointKind.BEFORE_COMPLETION else " AND min_boundary = 'after_work'"
    return [_input_row(r) for r in db.query(
        f"SELECT {_ROW_COLUMNS} FROM inputs_pending INDEXED BY inputs_pending_by_turn WHERE session_id = ? "
        f"AND turn_id = ? AND state IN ('pending_active', 'accepted') AND (claim_token IS NULL OR claim_generation <> ?){boundary} "
        "ORDER BY enqueue_seq LIMIT ?", (session_id, turn_id, generation, limit))]


def next_turn_candidates(db: Any, session_id: str, generation: int, limit: int) -> list[InputRow]:
    """DEFERRED_NEXT_TURN inputs not held by `generation`, in order."""
    return [_input_row(r) for r in db.query(
        f"SELECT {_ROW_COLUMNS} FROM inputs_pending INDEXED BY inputs_pending_by_state WHERE session_id = ? "
        "AND state = 'deferred_next_turn' "
        "AND (claim_token IS NULL OR claim_generation <> ?) ORDER BY enqueue_seq LIMIT ?",
        (session_id, generation, limit))]


def turn_rows(db: Any, session_id: str, turn_id: str) -> list[InputRow]:
    """Every input with ingress ActiveTurn(`turn_id`), in order."""
    return [_input_row(r) for r in db.query(
        f"SELECT {_ROW_COLUMNS} FROM inputs_pending INDEXED BY inputs_pending_by_turn WHERE session_id = ? "
        "AND turn_id = ? ORDER BY enqueue_seq",
        (session_id, turn_id))]


def claim_holdings(db: Any, session_id: str, claim_id: str) -> list[InputRow]:
    """The decision columns of every input the claim `claim_id` holds."""
    return [_input_row(r) for r in db.query(
        f"SELECT {_ROW_COLUMNS} FROM inputs_pending INDEXED BY inputs_pending_by_claim WHERE session_id = ? "
        "AND claim_id = ?", (session_id, claim_id))]


def terminal_input_ids(db: Any, session_id: str) -> list[str]:
    """Ids of the session's cancelled and completed inputs (what a vacuum prunes), in order."""
    return [r[0] for r in db.query(
        "SELECT input_id FROM inputs_pending INDEXED BY inputs_pending_by_state WHERE session_id = ? "
        "AND state IN ('cancelled', 'completed') "
        "ORDER BY enqueue_seq", (session_id,))]


def last_enqueue_seq(db: Any, session_id: str) -> int:
    """The session's last input sequence number (0 before its first input)."""
    return cast("int", db.scalar("SELECT last_enqueue_seq FROM inputs_sessions WHERE session_id = ?", (session_id,), 0))
