"""`store.inputs`: the facade of pending turn inputs (rules and deciders in inputs.py).

Every command reads the projections and decides inside one write transaction
(BEGIN IMMEDIATE), reads the clock once, and appends its events on `session:<id>` or
raises a typed error having written nothing. Commands refuse on time-travel views.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Callable, cast, Sequence, TypeVar

import attrs

from ..errors import InvalidArgument
from ..facades import register_facade
from ..checks import check_int as _check_int
from ..checks import check_text as _check_text
from .events import CheckpointKind, TurnInputClaimAbandoned, TurnInputsCancelled
from .rules import (
    DEFAULT_MAX_INPUTS,
    MAX_INPUTS_LIMIT,
    BySourceKey,
    CancelOutcome,
    InputCancel,
    InputEnqueued,
    InterruptResult,
    SuffixCancel,
    TurnInputClaim,
    TurnInputCompletion,
    TurnInputDraft,
    cancel_outcome,
    check_completion,
    check_input_completion,
    check_input_draft,
    claim_from_event,
    decide_active_claim,
    decide_input_claim,
    interrupt_events,
    plan_input_enqueue,
    vacuum_events,
)
from ..sessions.events import session_stream

if TYPE_CHECKING:
    from ..leases import LeaseFence, LeaseOwner
    from ..storage import Storage
    from ..store import StoreContext
    from projections.inputs import PendingTurnInput

_R = TypeVar("_R")


@attrs.frozen
class InputAbandonResult:
    """The inputs an abandon gave back (empty when the claim no longer held any)."""

    session_id: str
    claim_id: str
    input_ids: tuple[str, ...]


@attrs.frozen
class InputCompletionResult:
    """The inputs a completion consumed."""

    session_id: str
    claim_id: str
    input_ids: tuple[str, ...]
    completed_at_ms: int


class Inputs:
    """`store.inputs`: pending turn inputs of sessions."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx

    # --- plumbing ---

    def _fresh(self) -> None:
        for name in ("inputs", "leases", "sessions"):
            self.ctx.require_fresh(name)

    def _live_generation(self, session_id: str, now: int) -> int | None:
        from projections import leases as lease_proj

        return lease_proj.live_generation(self.ctx.db, session_id, now)

    def _append(self, session_id: str, events: list[Any], now: int) -> None:
        if events:
            self.ctx.append(session_stream(session_id), events, now_ms=now)

    def _claim(self, fence: LeaseFence, what: str, choose: Callable[[Any, int], Any],
               claimant: LeaseOwner | None = None) -> TurnInputClaim | None:
        from ..leases.facade import check_fence, require_live_fence
        from ..queue.facade import _check_claimant, _with_claimant

        self.ctx.require_writable(what)
        check_fence(fence)
        _check_claimant(claimant)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            require_live_fence(self.ctx.db, fence, now, what)  # law 28
            ev = choose(self.ctx.db, now)
            if ev is None:
                return None
            ev = _with_claimant(ev, claimant)
            self._append(fence.session_id, [ev], now)
            return claim_from_event(self.ctx.db, ev)

    # --- commands ---

    def enqueue(self, draft: TurnInputDraft) -> InputEnqueued:
        """Record an input (or return the row its source key or input id already names).

        Raises PendingTurnInputSourceKeyConflict / PendingTurnInputIdConflict when the key
        or id names different content, SessionNotFound / SessionDeleted for an unknown or
        deleted session, InvalidArgument for a malformed draft; nothing is written then.
        """
        from ..sessions import require_live_session

        self.ctx.require_writable("inputs.enqueue")
        check_input_draft(draft)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            require_live_session(self.ctx.db, draft.session_id, "inputs.enqueue")
            plan = plan_input_enqueue(self.ctx.db, [draft], now)
            self._append(draft.session_id, list(plan.events), now)
        return plan.results[0]

    def claim_active(self, fence: LeaseFence, turn_id: str, checkpoint: CheckpointKind = CheckpointKind.AFTER_WORK, *,
                     max_inputs: int = DEFAULT_MAX_INPUTS,
                     claimant: LeaseOwner | None = None) -> TurnInputClaim | None:
        """Claim turn `turn_id`'s inputs that `checkpoint` admits (they become ACCEPTED), or None."""
        _check_text(turn_id, "turn_id")
        if not isinstance(checkpoint, CheckpointKind):
            raise InvalidArgument(f"checkpoint must be a CheckpointKind, got {checkpoint!r}")
        _check_int(max_inputs, "max_inputs", 0, MAX_INPUTS_LIMIT)
        return self._claim(fence, "inputs.claim_active",
                           lambda db, now: decide_active_claim(db, fence, turn_id, checkpoint, max_inputs, now),
                           claimant)

    def claim_next_turn(self, fence: LeaseFence, *, max_inputs: int = DEFAULT_MAX_INPUTS,
                        claimant: LeaseOwner | None = None) -> TurnInputClaim | None:
        """Claim inputs waiting for the next turn (they stay DEFERRED_NEXT_TURN), or None."""
        from projections import inputs as proj

        _check_int(max_inputs, "max_inputs", 0, MAX_INPUTS_LIMIT)

        def choose(db: Any, now: int) -> Any:
            if max_inputs == 0:
                return None
            rows = proj.next_turn_candidates(db, fence.session_id, fence.fencing_token, max_inputs)
            return decide_input_claim(fence.session_id, fence.owner, fence.fencing_token, rows, "next_turn", None,
                                      None, now)

        return self._claim(fence, "inputs.claim_next_turn", choose, claimant)

    def abandon(self, claim: TurnInputClaim | TurnInputCompletion) -> InputAbandonResult:
        """Give back the inputs `claim` still holds: ACCEPTED ones return to PENDING_ACTIVE."""
        from projections import inputs as proj

        self.ctx.require_writable("inputs.abandon")
        c = check_completion(claim, "claim")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            listed = set(c.input_ids)
            held = tuple(r.input_id for r in proj.claim_holdings(self.ctx.db, c.session_id, c.claim_id)
                         if r.claim_token == c.lease_token and r.input_id in listed)
            if held:
                self._append(c.session_id, [TurnInputClaimAbandoned(c.session_id, c.claim_id, c.lease_token, held,
                                                                    now)], now)
        return InputAbandonResult(c.session_id, c.claim_id, held)

    def _cancel(self, session_id: str, targets: Sequence[Any], what: str) -> tuple[InputCancel, ...]:
        from projections import inputs as proj

        from ..sessions import check_session_id

        self.ctx.require_writable(what)
        check_session_id(session_id)
        if isinstance(targets, (str, bytes)) or not isinstance(targets, (list, tuple)):
            raise InvalidArgument(f"targets must be a list of input ids or BySourceKey, got {type(targets).__name__}")
        for i, t in enumerate(targets):
            if isinstance(t, BySourceKey):
                _check_text(t.source_key, f"targets[{i}].source_key")
            else:
                _check_text(t, f"targets[{i}]")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            db = self.ctx.db
            live = self._live_generation(session_id, now)
            decided: list[tuple[CancelOutcome, str, str | None]] = []
            cancelled: list[str] = []
            for t in targets:
                row = (proj.row_by_source_key(db, session_id, t.source_key) if isinstance(t, BySourceKey)
                       else proj.row_by_id(db, session_id, t))
                outcome = cancel_outcome(row, live, set(cancelled))
                if outcome is CancelOutcome.CANCELLED and row is not None:  # CANCELLED implies a row
                    cancelled.append(row.input_id)
                decided.append((outcome, t.source_key if isinstance(t, BySourceKey) else t,
                                row.input_id if row is not None else None))
            self._append(session_id, [TurnInputsCancelled(session_id, tuple(cancelled), now)] if cancelled else [],
                         now)
            return tuple(InputCancel(o, target, proj.get(db, session_id, iid, live) if iid else None)
                         for o, target, iid in decided)

    def cancel(self, session_id: str, input_id: str) -> InputCancel:
        """Cancel one input by id: Cancelled, AlreadyClaimed, AlreadyCompleted, AlreadyCancelled
        or NotFound (idempotent: a second cancel answers AlreadyCancelled, law 51)."""
        _check_text(input_id, "input_id")
        return self._cancel(session_id, [input_id], "inputs.cancel")[0]

    def cancel_by_source_key(self, session_id: str, source_key: str) -> InputCancel:
        """Cancel the input enqueued with `source_key` (outcomes as `cancel`)."""
        return self._cancel(session_id, [BySourceKey(source_key)], "inputs.cancel_by_source_key")[0]

    def cancel_many(self, session_id: str, targets: Sequence[str | BySourceKey]) -> tuple[InputCancel, ...]:
        """Cancel several inputs in one transaction; outcomes in target order, one per
        target, duplicates and misses included (law 53)."""
        return self._cancel(session_id, targets, "inputs.cancel_many")

    def cancel_from(self, session_id: str, anchor: str | BySourceKey) -> SuffixCancel:
        """Cancel the anchor and every later input of the session (law 54). The anchor is
        an input id or a `BySourceKey`, like every other cancel target.

        Inputs a live claim holds answer AlreadyClaimed; an unknown anchor answers
        `anchor_found=False` (AnchorNotFound) and changes nothing.
        """
        from projections import inputs as proj

        from ..sessions import check_session_id

        self.ctx.require_writable("inputs.cancel_from")
        check_session_id(session_id)
        if isinstance(anchor, BySourceKey):
            _check_text(anchor.source_key, "anchor.source_key")
        else:
            _check_text(anchor, "anchor_input_id")
        key = anchor.source_key if isinstance(anchor, BySourceKey) else None
        with self.ctx.transaction():  # the suffix and its cancels from one snapshot under the write lock
            self.ctx.require_fresh("inputs")
            row = (proj.row_by_source_key(self.ctx.db, session_id, anchor.source_key)
                   if isinstance(anchor, BySourceKey) else proj.row_by_id(self.ctx.db, session_id, anchor))
            if row is None:
                return SuffixCancel(None if isinstance(anchor, BySourceKey) else anchor, False, (), key)
            ids = [r.input_id for r in proj.rows_from(self.ctx.db, session_id, row.enqueue_seq)]
            return SuffixCancel(row.input_id, True, self._cancel(session_id, ids, "inputs.cancel_from"), key)

    def complete(self, completion: TurnInputCompletion | TurnInputClaim) -> InputCompletionResult:
        """Consume a claim's inputs outside a runtime commit (they become COMPLETED).

        Raises TurnInputClaimSuperseded, writing nothing, unless the claim still holds
        every listed input under a live session lease generation (law 56).
        """
        self.ctx.require_writable("inputs.complete")
        completion = check_completion(completion)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            ev = check_input_completion(self.ctx.db, completion, now)
            self._append(completion.session_id, [ev], now)
        return InputCompletionResult(ev.session_id, ev.claim_id, ev.input_ids, now)

    def interrupt(self, fence: LeaseFence, turn_id: str,
                  completion: TurnInputCompletion | TurnInputClaim | None = None) -> InterruptResult:
        """Interrupt turn `turn_id` under `fence` (laws 58-59).

        The inputs `completion` names (what the turn accepted) complete; the turn's other
        inputs that no live claim holds move to the next turn; other turns and cancelled
        inputs are untouched. All in one transaction; a superseded completion raises
        TurnInputClaimSuperseded and nothing changes.
        """
        from ..leases import check_fence, require_live_fence

        self.ctx.require_writable("inputs.interrupt")
        check_fence(fence)
        _check_text(turn_id, "turn_id")
        if completion is not None:
            completion = check_completion(completion)
            if completion.session_id != fence.session_id:
                raise InvalidArgument(f"completion is for session {completion.session_id!r}, the fence for "
                                      f"{fence.session_id!r}")
        sid = fence.session_id
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            require_live_fence(self.ctx.db, fence, now, "inputs.interrupt")
            done = [check_input_completion(self.ctx.db, completion, now)] if completion is not None else []
            completing = done[0].input_ids if done else ()
            deferred = interrupt_events(self.ctx.db, sid, turn_id, now, completing)
            self._append(sid, done + deferred, now)
        return InterruptResult(sid, turn_id, tuple(completing), deferred[0].input_ids if deferred else ())

    def vacuum(self, session_id: str) -> int:
        """Prune the session's cancelled and completed inputs; returns how many (law 52).

        Afterwards their ids and source keys are unknown: cancel answers NotFound, and a
        source-key replay records a new input.
        """
        from ..sessions import check_session_id

        self.ctx.require_writable("inputs.vacuum")
        check_session_id(session_id)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._fresh()
            events = vacuum_events(self.ctx.db, session_id, now)
            self._append(session_id, events, now)
        return len(events[0].input_ids) if events else 0

    # --- reads ---

    def _read(self, session_id: str, now_ms: int | None, fn: Callable[[Storage, int | None], _R]) -> _R:
        from ..sessions import check_session_id

        check_session_id(session_id)
        if now_ms is not None:
            _check_int(now_ms, "now_ms")
        self.ctx.require_fresh("inputs")
        self.ctx.require_fresh("leases")
        with self.ctx.db.transaction(write=False):
            from projections import leases as lease_proj

            now = self.ctx.now_ms() if now_ms is None else now_ms
            return fn(self.ctx.db, lease_proj.live_generation(self.ctx.db, session_id, now))

    def list(self, session_id: str, *, now_ms: int | None = None) -> list[Any]:
        """Every input row of the session in enqueue order, terminal ones included."""
        from projections import inputs as proj

        return cast("list[Any]", self._read(session_id, now_ms, lambda db, gen: proj.list_inputs(db, session_id, gen)))

    def list_pending(self, session_id: str, *, now_ms: int | None = None) -> builtins.list[PendingTurnInput]:
        """Pending and deferred inputs that no live claim holds (accepted ones whose claim
        died included), in enqueue order."""
        from projections import inputs as proj

        return self._read(session_id, now_ms, lambda db, gen: proj.list_inputs(db, session_id, gen, pending_only=True))

    def get(self, session_id: str, input_id: str, *, now_ms: int | None = None) -> Any:
        """One input row, or None."""
        from projections import inputs as proj

        _check_text(input_id, "input_id")
        return self._read(session_id, now_ms, lambda db, gen: proj.get(db, session_id, input_id, gen))


register_facade("inputs", Inputs)

__all__ = ["InputAbandonResult", "InputCompletionResult", "Inputs"]
