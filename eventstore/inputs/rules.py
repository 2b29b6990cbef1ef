"""Pending turn inputs: enqueue, claim, abandon, cancel, complete, interrupt. `store.inputs`.

Each change is an event on `session:<id>` (events.py); the rows are the `inputs`
projection. Rules (docs/semantics.md §5, laws 49-59):

* a draft's ingress is ActiveTurn(turn_id, min_boundary) (state PENDING_ACTIVE) or
  NextTurn (state DEFERRED_NEXT_TURN);
* a source key that is already known returns its row whatever its state when the
  content (ingress, input, explicit input id) is identical, and raises
  PendingTurnInputSourceKeyConflict when it differs (laws 49-50);
* an active-turn claim at checkpoint C of turn T takes T's PENDING_ACTIVE inputs that C
  admits (AFTER_WORK admits AFTER_WORK inputs, BEFORE_COMPLETION admits both), in order,
  and makes them ACCEPTED; a next-turn claim takes DEFERRED_NEXT_TURN inputs and leaves
  their state. Claims follow the queue's generation liveness: live exactly while the
  session lease holds the generation they were taken under;
* better than the reference: an ACCEPTED input whose claim is no longer live (its lease
  expired or was taken over) is claimable, listable as pending and cancellable again,
  without an explicit abandon;
* cancel (by id, by source key, in bulk, or every input from an anchor on) answers
  Cancelled, AlreadyClaimed (a live claim holds it), AlreadyCompleted, AlreadyCancelled
  or NotFound, in target order (laws 51-55);
* an interrupt of turn T completes what the interrupting claim accepted, moves T's
  inputs that no live claim accepted to the next turn, and touches nothing else; a
  cancelled input never comes back (laws 58-59).

The documented functions for the runtime commit: `plan_input_enqueue`,
`decide_active_claim`, `check_input_completion`, `interrupt_events`, `vacuum_events`.
The facade (`store.inputs`) is in facade.py.
"""

from __future__ import annotations

import enum
import hashlib
from typing import TYPE_CHECKING, Any, Sequence

import attrs

from .. import codec
from ..errors import InvalidArgument, StoreError
from ..checks import canonical_msgpack, sha256_hex
from ..checks import check_text as _check_text
from .events import (
    ActiveTurn,
    CheckpointKind,
    InputState,
    NextTurn,
    TurnInputEnqueued,
    TurnInputsClaimed,
    TurnInputsCompleted,
    TurnInputsDeferred,
    TurnInputsVacuumed,
)
from ..leases.owners import LeaseOwner
from ..queue.claims import lease_token

if TYPE_CHECKING:
    from ..leases import LeaseFence
    from ..storage import Storage

DEFAULT_MAX_INPUTS = 16
MAX_INPUTS_LIMIT = 10_000

UNREAD: Any = object()
"""Default of the `live_generation` arguments: read the session's live lease generation."""

# --- errors ----------------------------------------------------------------------------------


class PendingTurnInputSourceKeyConflict(StoreError):
    """A source key was reused with different content (ingress, input or input id)."""

    def __init__(self, session_id: str, source_key: str, input_id: str) -> None:
        self.session_id = session_id
        self.source_key = source_key
        self.input_id = input_id
        super().__init__(f"session {session_id!r}: source key {source_key!r} already names input {input_id!r} "
                         "with different content")


class PendingTurnInputIdConflict(StoreError):
    """An explicit input id was reused with different content."""

    def __init__(self, session_id: str, input_id: str) -> None:
        self.session_id = session_id
        self.input_id = input_id
        super().__init__(f"session {session_id!r}: input id {input_id!r} already exists with different content")


class TurnInputClaimSuperseded(StoreError):
    """A completion names a claim that no longer holds every listed input under a live
    generation. Nothing was written."""

    def __init__(self, session_id: str, claim_id: str, reason: str) -> None:
        self.session_id = session_id
        self.claim_id = claim_id
        self.reason = reason
        super().__init__(f"session {session_id!r}: turn-input claim {claim_id!r} is superseded: {reason}")


# --- arguments and results -------------------------------------------------------------------


@attrs.frozen
class TurnInputDraft:
    """An input to record. `input` is any msgpack-encodable value (text, a dict of parts)."""

    session_id: str
    input: Any
    ingress: ActiveTurn | NextTurn = NextTurn()
    input_id: str | None = None
    """None: derived as `ti:` + sha256 of the session, source key, time and sequence."""
    source_key: str | None = None


@attrs.frozen
class InputEnqueued:
    """What enqueue did: `created` False means the source key (or input id) named an existing row."""

    input: Any  # projections.inputs.PendingTurnInput
    created: bool


@attrs.frozen
class TurnInputCompletion:
    """What a claim's holder presents to complete its inputs."""

    session_id: str
    claim_id: str
    lease_token: str
    input_ids: tuple[str, ...]


@attrs.frozen
class TurnInputClaim:
    """A claim on inputs: "active_turn" (now ACCEPTED) or "next_turn" (still DEFERRED_NEXT_TURN)."""

    session_id: str
    claim_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    generation: int
    claimed_at_ms: int
    mode: str
    turn_id: str | None
    checkpoint: CheckpointKind | None
    inputs: tuple[Any, ...]  # projections.inputs.PendingTurnInput
    claimant: LeaseOwner | None = None
    """Who took the claim: the caller's claimant, else the lease holder (`owner`)."""

    @property
    def input_ids(self) -> tuple[str, ...]:
        """The claimed inputs' ids, in order."""
        return tuple(i.input_id for i in self.inputs)

    def completion(self) -> TurnInputCompletion:
        """The completion that consumes every input of this claim."""
        return TurnInputCompletion(self.session_id, self.claim_id, self.lease_token, self.input_ids)


class CancelOutcome(enum.Enum):
    """The answer of one cancel target."""

    CANCELLED = "cancelled"
    ALREADY_CLAIMED = "already_claimed"
    ALREADY_COMPLETED = "already_completed"
    ALREADY_CANCELLED = "already_cancelled"
    NOT_FOUND = "not_found"


@attrs.frozen
class BySourceKey:
    """A cancel target naming an input by its source key (a plain string names an input id)."""

    source_key: str


@attrs.frozen
class InputCancel:
    """One target's outcome; `input` is the row after the call (None when not found), and
    for ALREADY_CLAIMED `input.claim` tells who holds it."""

    outcome: CancelOutcome
    target: str
    input: Any = None  # projections.inputs.PendingTurnInput | None


@attrs.frozen
class SuffixCancel:
    """A suffix cancel's answer: `anchor_found` False means AnchorNotFound (nothing changed)."""

    anchor_input_id: str | None
    """The anchor's input id (None when a source-key anchor names no input)."""
    anchor_found: bool
    cancels: tuple[InputCancel, ...] = ()
    anchor_source_key: str | None = None
    """The source key the anchor was given by, when it was a `BySourceKey`."""


@attrs.frozen
class InterruptResult:
    """What an interrupt did to turn `turn_id`'s inputs."""

    session_id: str
    turn_id: str
    completed_input_ids: tuple[str, ...]
    deferred_input_ids: tuple[str, ...]


@attrs.frozen
class InputEnqueuePlan:
    """`plan_input_enqueue`'s answer: one InputEnqueued per draft and the events to append."""

    results: tuple[InputEnqueued, ...]
    events: tuple[TurnInputEnqueued, ...]


# --- validation and hashing ------------------------------------------------------------------




def _ingress_plain(ingress: Any) -> list[Any]:
    if isinstance(ingress, ActiveTurn):
        return ["active_turn", ingress.turn_id, ingress.min_boundary.value]
    return ["next_turn"]


def content_hash(draft: TurnInputDraft) -> str:
    """sha256 (hex) of a draft's canonical content: ingress, input, explicit input id."""
    return sha256_hex(canonical_msgpack([_ingress_plain(draft.ingress), draft.input, draft.input_id]))


def check_input_draft(draft: Any, what: str = "draft") -> str:
    """Validate a TurnInputDraft (naming the wrong field); returns its content hash."""
    from ..sessions import check_session_id

    if not isinstance(draft, TurnInputDraft):
        raise InvalidArgument(f"{what} must be a TurnInputDraft, got {type(draft).__name__}")
    check_session_id(draft.session_id, f"{what}.session_id")
    ingress = draft.ingress
    if isinstance(ingress, ActiveTurn):
        _check_text(ingress.turn_id, f"{what}.ingress.turn_id")
        if not isinstance(ingress.min_boundary, CheckpointKind):
            raise InvalidArgument(f"{what}.ingress.min_boundary must be a CheckpointKind, got {ingress.min_boundary!r}")
    elif not isinstance(ingress, NextTurn):
        raise InvalidArgument(f"{what}.ingress must be ActiveTurn(turn_id, min_boundary) or NextTurn(), got {ingress!r}")
    if draft.input is None:
        raise InvalidArgument(f"{what}.input must be a value (text, a dict of parts, ...), got None")
    try:
        canonical_msgpack(draft.input)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}.input: {exc}") from None
    for name in ("input_id", "source_key"):
        if getattr(draft, name) is not None:
            _check_text(getattr(draft, name), f"{what}.{name}")
    return content_hash(draft)


def check_completion(completion: Any, what: str = "completion") -> TurnInputCompletion:
    """Validate a TurnInputCompletion argument, naming the field that is wrong."""
    if isinstance(completion, TurnInputClaim):
        completion = completion.completion()
    if not isinstance(completion, TurnInputCompletion):
        raise InvalidArgument(f"{what} must be a TurnInputCompletion (claim.completion()), "
                              f"got {type(completion).__name__}")
    for name in ("session_id", "claim_id", "lease_token"):
        _check_text(getattr(completion, name), f"{what}.{name}")
    ids = completion.input_ids
    if not isinstance(ids, (tuple, list)) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise InvalidArgument(f"{what}.input_ids must be a non-empty tuple of input ids, got {ids!r}")
    if len(set(ids)) != len(ids):
        raise InvalidArgument(f"{what}.input_ids lists an input twice: {list(ids)!r}")
    return completion


# --- pure deciders -------------------------------------------------------------------------------


def derive_input_id(session_id: str, source_key: str | None, now_ms: int, enqueue_seq: int) -> str:
    """`ti:` + sha256 of `{session}:{source_key!r}:{now}:{seq}` (all recorded in the event)."""
    return "ti:" + hashlib.sha256(f"{session_id}:{source_key!r}:{now_ms}:{enqueue_seq}".encode()).hexdigest()


def decide_input_enqueue(draft: TurnInputDraft, digest: str, last_seq: int, by_key: Any, by_id: Any,
                         now_ms: int) -> TurnInputEnqueued | None:
    """None when the draft replays an existing row (the caller returns it), the event of a
    new row otherwise; raises on a conflicting replay. Pure. `by_key` / `by_id` are the
    rows (InputRow) the draft's source key / explicit input id already name."""
    if by_key is not None:
        if by_key.content_hash != digest:
            raise PendingTurnInputSourceKeyConflict(draft.session_id, draft.source_key or "", by_key.input_id)
        return None
    if by_id is not None:
        if by_id.content_hash != digest or by_id.source_key != draft.source_key:
            raise PendingTurnInputIdConflict(draft.session_id, by_id.input_id)
        return None
    seq = last_seq + 1
    input_id = draft.input_id or derive_input_id(draft.session_id, draft.source_key, now_ms, seq)
    return TurnInputEnqueued(draft.session_id, input_id, seq, draft.source_key, draft.ingress, draft.input, digest,
                             now_ms)


def decide_input_claim(session_id: str, owner: LeaseOwner, generation: int, rows: Sequence[Any], mode: str,
                       turn_id: str | None, checkpoint: CheckpointKind | None, now_ms: int) -> TurnInputsClaimed | None:
    """The claim event for `rows` (head first): id `tic:{head_seq}:{fence}`. Pure."""
    if not rows:
        return None
    head = rows[0]
    fence = head.claim_fencing_token + 1
    claim_id = f"tic:{head.enqueue_seq}:{fence}"
    return TurnInputsClaimed(session_id, claim_id, lease_token(session_id, owner, claim_id, now_ms), fence, generation,
                             owner, tuple(r.input_id for r in rows), mode, turn_id, checkpoint, now_ms)


def cancel_outcome(row: Any, live_generation: int | None, cancelled_now: set[str]) -> CancelOutcome:
    """The outcome of cancelling one row (InputRow or None). Pure."""
    if row is None:
        return CancelOutcome.NOT_FOUND
    if row.input_id in cancelled_now or row.state is InputState.CANCELLED:
        return CancelOutcome.ALREADY_CANCELLED
    if row.state is InputState.COMPLETED:
        return CancelOutcome.ALREADY_COMPLETED
    if row.held_by(live_generation):
        return CancelOutcome.ALREADY_CLAIMED
    return CancelOutcome.CANCELLED


def decide_input_completion(completion: TurnInputCompletion, holdings: dict[str, Any], live_generation: int | None,
                            now_ms: int) -> TurnInputsCompleted:
    """The completion event, or TurnInputClaimSuperseded. Pure. `holdings`: input id -> InputRow
    of every row the claim id still holds."""
    sid, cid = completion.session_id, completion.claim_id
    for input_id in completion.input_ids:
        row = holdings.get(input_id)
        if row is None:
            raise TurnInputClaimSuperseded(sid, cid, f"input {input_id!r} is no longer held by this claim "
                                           "(completed, cancelled, abandoned or claimed again)")
        if row.claim_token != completion.lease_token:
            raise TurnInputClaimSuperseded(sid, cid, f"input {input_id!r} is held under another lease token")
        if row.claim_generation != live_generation:
            live = "no live lease" if live_generation is None else f"the live generation is {live_generation}"
            raise TurnInputClaimSuperseded(sid, cid, f"the claim's session lease generation {row.claim_generation} "
                                           f"is not live ({live})")
    return TurnInputsCompleted(sid, cid, completion.lease_token, tuple(completion.input_ids), now_ms)


def decide_interrupt(session_id: str, turn_id: str, rows: Sequence[Any], live_generation: int | None,
                     completing: Sequence[str], now_ms: int) -> TurnInputsDeferred | None:
    """Which of turn `turn_id`'s inputs move to the next turn. Pure.

    PENDING_ACTIVE rows, and ACCEPTED rows no live claim holds, except those being
    completed; cancelled and completed rows stay where they are (law 59).
    """
    done = set(completing)
    ids = tuple(r.input_id for r in rows if r.input_id not in done and (
        r.state is InputState.PENDING_ACTIVE or (r.state is InputState.ACCEPTED and not r.held_by(live_generation))))
    return TurnInputsDeferred(session_id, turn_id, ids, now_ms) if ids else None


# --- functions on the live tables (for the runtime commit) ---------------------------------------


def _live_generation(db: Storage, session_id: str, now_ms: int) -> int | None:
    from projections import leases as lease_proj

    return lease_proj.live_generation(db, session_id, now_ms)


def plan_input_enqueue(db: Storage, drafts: Sequence[TurnInputDraft], now_ms: int) -> InputEnqueuePlan:
    """Decide several input enqueues in order, as if appended one by one. Call inside your
    write transaction (after `require_live_session`) and append the events to each draft's
    `session:<id>`. Raises the conflict errors before anything is appended."""
    from projections import inputs as proj

    results: list[InputEnqueued] = []
    events: list[TurnInputEnqueued] = []
    seqs: dict[str, int] = {}
    planned: dict[tuple[str, str], tuple[str, TurnInputEnqueued]] = {}
    for i, draft in enumerate(drafts):
        digest = check_input_draft(draft, f"drafts[{i}]")
        sid = draft.session_id
        by_key = proj.row_by_source_key(db, sid, draft.source_key) if draft.source_key else None
        by_id = proj.row_by_id(db, sid, draft.input_id) if draft.input_id else None
        for kind, value in (("key", draft.source_key), ("id", draft.input_id)):
            earlier = planned.get((sid, f"{kind}:{value}")) if value else None
            if earlier is not None and value:  # named by an earlier draft of this same plan (value is set then)
                if earlier[0] != digest:
                    raise (PendingTurnInputSourceKeyConflict(sid, value, earlier[1].input_id) if kind == "key"
                           else PendingTurnInputIdConflict(sid, value))
                results.append(InputEnqueued(_planned_input(earlier[1]), False))
                break
        else:
            last = seqs[sid] if sid in seqs else proj.last_enqueue_seq(db, sid)
            ev = decide_input_enqueue(draft, digest, last, by_key, by_id, now_ms)
            if ev is None:
                existing = by_key or by_id
                assert existing is not None  # the decider returns None only for a row already there
                results.append(InputEnqueued(proj.get(db, sid, existing.input_id,
                                                      _live_generation(db, sid, now_ms)), False))
                continue
            seqs[sid] = ev.enqueue_seq
            events.append(ev)
            planned[(sid, f"id:{ev.input_id}")] = (digest, ev)
            if draft.source_key:
                planned[(sid, f"key:{draft.source_key}")] = (digest, ev)
            results.append(InputEnqueued(_planned_input(ev), True))
    return InputEnqueuePlan(tuple(results), tuple(events))


def _planned_input(ev: TurnInputEnqueued) -> Any:
    from projections.inputs import PendingTurnInput

    state = InputState.PENDING_ACTIVE if isinstance(ev.ingress, ActiveTurn) else InputState.DEFERRED_NEXT_TURN
    return PendingTurnInput(ev.session_id, ev.input_id, ev.enqueue_seq, ev.source_key, ev.ingress,
                            codec.unpack(codec.pack(ev.input)), state, ev.enqueued_at_ms, content_hash=ev.content_hash)


def decide_active_claim(db: Storage, fence: LeaseFence, turn_id: str, checkpoint: CheckpointKind, max_inputs: int,
                        now_ms: int) -> TurnInputsClaimed | None:
    """The active-turn claim event at `checkpoint` of `turn_id`, or None. The caller has
    validated `fence` (require_live_fence) in the same write transaction."""
    from projections import inputs as proj

    if max_inputs <= 0:
        return None
    rows = proj.active_candidates(db, fence.session_id, turn_id, checkpoint, fence.fencing_token, max_inputs)
    return decide_input_claim(fence.session_id, fence.owner, fence.fencing_token, rows, "active_turn", turn_id,
                              checkpoint, now_ms)


def claim_from_event(db: Storage, ev: TurnInputsClaimed) -> TurnInputClaim:
    """The TurnInputClaim an appended claim event stands for (inputs read back in claim order)."""
    from projections import inputs as proj

    rows = {r.input_id: r for r in proj.get_many(db, ev.session_id, ev.input_ids, ev.generation)}
    return TurnInputClaim(ev.session_id, ev.claim_id, ev.owner, ev.lease_token, ev.fencing_token, ev.generation,
                          ev.claimed_at_ms, ev.mode, ev.turn_id, ev.checkpoint, tuple(rows[i] for i in ev.input_ids),
                          ev.claimant if ev.claimant is not None else ev.owner)


def check_input_completion(db: Storage, completion: TurnInputCompletion, now_ms: int, *,
                           live_generation: Any = UNREAD) -> TurnInputsCompleted:
    """Check a completion against the live tables; return its settling event or raise
    TurnInputClaimSuperseded (nothing is written). For the runtime commit: check every
    completion before appending anything, then append the events on `session:<id>`.
    A caller that has just checked the session's live lease passes its fencing token as
    `live_generation` (None: no live lease), which is then not read again."""
    from projections import inputs as proj

    check_completion(completion)
    holdings = {r.input_id: r for r in proj.claim_holdings(db, completion.session_id, completion.claim_id)}
    live = (_live_generation(db, completion.session_id, now_ms) if live_generation is UNREAD
            else live_generation)
    return decide_input_completion(completion, holdings, live, now_ms)


def input_completion_events(db: Storage, completions: Sequence[TurnInputCompletion], now_ms: int) -> list[Any]:
    """The settling events of several completions (all checked before any is returned)."""
    return [check_input_completion(db, c, now_ms) for c in completions]


def interrupt_events(db: Storage, session_id: str, turn_id: str, now_ms: int,
                     completing: Sequence[str] = (), *, live_generation: Any = UNREAD) -> list[Any]:
    """The event deferring turn `turn_id`'s unaccepted inputs to the next turn (empty list
    when there are none). `completing` are input ids the same commit completes;
    `live_generation` as for `check_input_completion`."""
    from projections import inputs as proj

    live = _live_generation(db, session_id, now_ms) if live_generation is UNREAD else live_generation
    ev = decide_interrupt(session_id, turn_id, proj.turn_rows(db, session_id, turn_id), live, completing, now_ms)
    return [] if ev is None else [ev]


def vacuum_events(db: Storage, session_id: str, now_ms: int) -> list[Any]:
    """The event pruning the session's terminal (cancelled, completed) inputs, or [] (for
    the maintenance vacuum: its count is `len(events[0].input_ids)`)."""
    from projections import inputs as proj

    ids = tuple(proj.terminal_input_ids(db, session_id))
    return [TurnInputsVacuumed(session_id, ids, now_ms)] if ids else []


__all__ = [
    "ActiveTurn",
    "BySourceKey",
    "CancelOutcome",
    "CheckpointKind",
    "InputCancel",
    "InputEnqueuePlan",
    "InputEnqueued",
    "InputState",
    "InterruptResult",
    "NextTurn",
    "PendingTurnInputIdConflict",
    "PendingTurnInputSourceKeyConflict",
    "SuffixCancel",
    "TurnInputClaim",
    "TurnInputClaimSuperseded",
    "TurnInputCompletion",
    "TurnInputDraft",
    "cancel_outcome",
    "check_completion",
    "check_input_completion",
    "check_input_draft",
    "claim_from_event",
    "content_hash",
    "decide_active_claim",
    "decide_input_claim",
    "decide_input_completion",
    "decide_input_enqueue",
    "decide_interrupt",
    "derive_input_id",
    "input_completion_events",
    "interrupt_events",
    "plan_input_enqueue",
    "vacuum_events",
]
