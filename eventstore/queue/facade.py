"""Queued work: enqueue, claim, abandon, cancel, complete, list. `store.queue`.

Each change is an event on the session's stream `session:<id>` (events.py); the
queue is the `queue` projection. The drafts and the enqueue decision live in
enqueue.py, the claim rules and the completion check in claims.py; this module
holds the claim results and the facade. The package's `__init__` lists the public names.

Source keys of settled batches stay known for `store.queue.completed_source_key_retention_ms`
(default 7 days, None = forever): replaying one returns the settled batch instead of
enqueuing the work twice; `forget_settled_source_keys` prunes older keys.

The documented functions the runtime commit calls inside its own transaction are
`plan_enqueue` (its outbox), `check_queue_completion` and `queue_completion_events`.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar, cast

import attrs

from ..checks import check_int as _check_int
from ..checks import check_text as _check_text
from ..errors import InvalidArgument
from ..facades import register_facade
from ..leases.owners import LeaseOwner
from .claims import (
    QueuedWorkClaimSuperseded,
    QueuedWorkCompletion,
    check_completion_shape,
    check_queue_completion,
    completion_event,
    claim_scan_limit,
    decide_claim,
    exact_selection_ok,
    queue_completion_events,
    select_leading_command,
    select_turn_work_prefix,
)
from .enqueue import (
    DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS,
    DEFAULT_MAX_BATCHES,
    MAX_BATCHES_LIMIT,
    Enqueued,
    EnqueuePlan,
    InvalidBatchPayloads,
    QueuedWorkDraft,
    check_draft,
    check_draft_packed,
    check_retention,
    plan_checked,
    decide_enqueue,
    derive_batch_id,
    plan_enqueue,
)
from .events import (
    AgentFrameTask,
    ClaimBoundary,
    DeliveryPolicy,
    MergeKey,
    ProcessWake,
    QueuedSourceKeysForgotten,
    QueuedWorkCancelled,
    QueuedWorkClaimAbandoned,
    QueuedWorkClaimed,
    RefreshToolCatalog,
    ResetSession,
    SlotPolicy,
    WorkClass,
)
from ..sessions.events import session_stream
from ..leases import facade as lease_facade
from ..sessions import facade as session_facade

if TYPE_CHECKING:
    from ..inputs import CheckpointKind
    from ..leases import LeaseFence
    from ..storage import Storage
    from ..store import StoreContext
    from projections.queue import QueuedBatch

_R = TypeVar("_R")

# --- claim results -------------------------------------------------------------------------


@attrs.frozen
class QueuedWorkClaim:
    """A claim on batches: present `completion()` to settle them, or abandon it."""

    session_id: str
    claim_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    generation: int
    """The session lease fencing token the claim was taken under: live while that lease is."""
    claimed_at_ms: int
    mode: str
    batches: tuple[Any, ...]  # projections.queue.QueuedBatch
    claimant: LeaseOwner | None = None
    """Who took the claim: the caller's claimant, else the lease holder (`owner`)."""

    @property
    def batch_ids(self) -> tuple[str, ...]:
        """The claimed batches' ids, in claim order."""
        return tuple(b.batch_id for b in self.batches)

    def completion(self) -> QueuedWorkCompletion:
        """The completion that settles every batch of this claim."""
        return QueuedWorkCompletion(self.session_id, self.claim_id, self.lease_token, self.batch_ids)


@attrs.frozen
class AbandonResult:
    """The batches an abandon gave back (empty when the claim no longer held any)."""

    session_id: str
    claim_id: str
    batch_ids: tuple[str, ...]


@attrs.frozen
class CompletionResult:
    """The batches a completion settled (removed from the queue)."""

    session_id: str
    claim_id: str
    batch_ids: tuple[str, ...]
    completed_at_ms: int


@attrs.frozen
class CheckpointClaims:
    """What a checkpoint claim granted: turn inputs and queued work (either may be None)."""

    inputs: Any  # inputs.TurnInputClaim | None
    queue: QueuedWorkClaim | None

    @property
    def empty(self) -> bool:
        """True when neither family had anything to claim."""
        return self.inputs is None and self.queue is None


# --- the facade ----------------------------------------------------------------------------


class Queue:
    """`store.queue`: queued work of sessions. Commands refuse on time-travel views.

    `completed_source_key_retention_ms` (default 7 days; None keeps keys forever) is how
    long a settled batch's source key stays known to enqueue.
    """

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self._retention: int | None = DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS

    @property
    def completed_source_key_retention_ms(self) -> int | None:
        """How long (ms) a completed or cancelled batch's source key stays known; None: forever."""
        return self._retention

    @completed_source_key_retention_ms.setter
    def completed_source_key_retention_ms(self, value: int | None) -> None:
        """Set it: an integer of ms >= 0, or None (InvalidArgument otherwise)."""
        self._retention = check_retention(value)

    # --- plumbing ---

    def _fresh(self) -> None:
        for name in ("queue", "leases", "sessions"):
            self.ctx.require_fresh(name)

    def _live_generation(self, session_id: str, now: int) -> int | None:
        import projections.leases as lease_proj

        return lease_proj.live_generation(self.ctx.db, session_id, now)

    def _claim(self, fence: LeaseFence, what: str, choose: Callable[[Any, int], tuple[list[Any], str]],
               claimant: LeaseOwner | None = None) -> QueuedWorkClaim | None:
        self.ctx.require_writable(what)
        lease_facade.check_fence(fence)
        _check_claimant(claimant)
        # BEGIN IMMEDIATE: two claimers cannot both see a row free. A closure of the write
        # path: it decides everything from what it reads (StoreContext.run_command).
        return self.ctx.run_command(lambda: self._claim_locked(fence, what, choose, claimant))

    def _claim_locked(self, fence: LeaseFence, what: str, choose: Callable[[Any, int], tuple[list[Any], str]],
                      claimant: LeaseOwner | None) -> QueuedWorkClaim | None:
        import projections.leases as lease_proj

        db = self.ctx.db
        now = self.ctx.now_ms()
        self._fresh()
        # law 28, before anything is read (require_live_fence, the fence checked once): the
        # session and its lease row in one read; a check that does not pass on it runs
        # the check of its own, which raises saying why.
        row = lease_proj.session_and_lease(db, fence.session_id)
        if row is None or row[0] != "active":
            session_facade.require_live_generation(db, fence.session_id, what)
        owner = fence.owner
        if not (row is not None and row[5] == owner.owner_id and row[6] == owner.incarnation_id
                and row[11] == fence.lease_token and row[4] == fence.fencing_token and row[13] is not None
                and now < row[13]):
            lease_facade.check_live_holder(db, fence, now, what)
        rows, mode = choose(db, now)
        ev = decide_claim(fence.session_id, fence.owner, fence.fencing_token, rows, mode, now)
        if ev is None:
            return None
        ev = _with_claimant(ev, claimant)
        self.ctx.append(session_stream(fence.session_id), [ev], now_ms=now)
        return claim_from_event(db, ev)

    # --- commands ---

    def enqueue(self, draft: QueuedWorkDraft) -> Enqueued:
        """Enqueue a batch (or return the batch its source key already names, law 29).

        Raises InvalidBatchPayloads for an empty or mixed batch, InvalidArgument for any
        other malformed field, SessionNotFound / SessionDeleted for an unknown or deleted
        session. Nothing is written in any of those cases.
        """
        self.ctx.require_writable("queue.enqueue")
        work_class, packed = check_draft_packed(draft)
        return self.ctx.run_command(lambda: self._enqueue(draft, work_class, packed))

    def _enqueue(self, draft: QueuedWorkDraft, work_class: Any, packed: Any) -> Enqueued:
        now = self.ctx.now_ms()
        self._fresh()
        session_facade.require_live_generation(self.ctx.db, draft.session_id, "queue.enqueue")
        # packed: the append follows at once, so the applier stores these bytes.
        plan = plan_checked(self.ctx.db, [(draft, work_class)], now, self._retention, (packed,))
        if plan.events:
            self.ctx.append(session_stream(draft.session_id), list(plan.events), now_ms=now)
        return plan.results[0]

    def claim_ready(self, fence: LeaseFence, *, boundary: ClaimBoundary = ClaimBoundary.IDLE,
                    claimant: LeaseOwner | None = None,
                    max_batches: int = DEFAULT_MAX_BATCHES) -> QueuedWorkClaim | None:
        """Claim the next ready turn work under `fence` (a live session lease), or None.

        None when the head of the ready queue is a session command (law 39), when the
        boundary gate refuses the head (law 40), or when nothing is ready. Raises
        SessionExecutionLeaseExpired when the fence is not the live lease (law 28).
        """
        if not isinstance(boundary, ClaimBoundary):
            raise InvalidArgument(f"boundary must be a ClaimBoundary, got {boundary!r}")
        _check_int(max_batches, "max_batches", 0, MAX_BATCHES_LIMIT)

        def choose(db: Any, now: int) -> tuple[list[Any], str]:
            import projections.queue as proj

            if max_batches == 0:
                return [], "ready"
            cands = proj.candidates(db, fence.session_id, now, fence.fencing_token, claim_scan_limit(max_batches))
            return cands[:select_turn_work_prefix(cands, boundary, max_batches)], "ready"

        return self._claim(fence, "queue.claim_ready", choose, claimant)

    def claim_session_command(self, fence: LeaseFence, *,
                              claimant: LeaseOwner | None = None) -> QueuedWorkClaim | None:
        """Claim exactly one batch when the head of the ready queue is a session command, else None."""

        def choose(db: Any, now: int) -> tuple[list[Any], str]:
            import projections.queue as proj

            cands = proj.candidates(db, fence.session_id, now, fence.fencing_token, 1)
            return cands[:select_leading_command(cands)], "session_command"

        return self._claim(fence, "queue.claim_session_command", choose, claimant)

    def claim_by_ids(self, fence: LeaseFence, batch_ids: Sequence[str], *, claimant: LeaseOwner | None = None,
                     boundary: ClaimBoundary = ClaimBoundary.IDLE) -> QueuedWorkClaim | None:
        """Claim exactly these batches (in this order), jumping ahead of other work, or None.

        Every id must be present, ready, claimable turn work, and the set must pass the
        boundary, slot and merge rules (law 38); otherwise None and nothing is written.
        """
        if not isinstance(boundary, ClaimBoundary):
            raise InvalidArgument(f"boundary must be a ClaimBoundary, got {boundary!r}")
        if isinstance(batch_ids, str) or not isinstance(batch_ids, (tuple, list)) or not batch_ids:
            raise InvalidArgument(f"batch_ids must be a non-empty list of batch ids, got {batch_ids!r}")
        for i, b in enumerate(batch_ids):
            _check_text(b, f"batch_ids[{i}]")
        if len(set(batch_ids)) != len(batch_ids):
            raise InvalidArgument(f"batch_ids lists a batch twice: {list(batch_ids)!r}")

        def choose(db: Any, now: int) -> tuple[list[Any], str]:
            import projections.queue as proj

            rows = proj.candidate_rows(db, fence.session_id, list(batch_ids))
            ok = exact_selection_ok(rows, boundary, now, fence.fencing_token)
            return (list(rows) if ok else []), "by_ids"

        return self._claim(fence, "queue.claim_by_ids", choose, claimant)

    def claim_checkpoint(self, fence: LeaseFence, turn_id: str, checkpoint: CheckpointKind, *, max_inputs: int = 16,
                         max_batches: int = DEFAULT_MAX_BATCHES,
                         claimant: LeaseOwner | None = None) -> CheckpointClaims:
        """At a checkpoint of the running turn `turn_id`, claim both ingress families at once.

        A read-only probe runs first: when there is neither an admitted active input for
        the turn nor queued turn work whose head is EARLIEST_SAFE_BOUNDARY, it returns an
        empty result without opening a write transaction (law 33). Otherwise one write
        transaction validates the fence once and claims inputs and work together, both
        stamped with the fence's generation (law 32).
        """
        from ..inputs import rules as inputs_mod
        from ..inputs import CheckpointKind
        from ..leases.facade import check_fence, require_live_holder
        from ..sessions.facade import require_live_session

        self.ctx.require_writable("queue.claim_checkpoint")
        check_fence(fence)
        _check_claimant(claimant)
        _check_text(turn_id, "turn_id")
        if not isinstance(checkpoint, CheckpointKind):
            raise InvalidArgument(f"checkpoint must be a CheckpointKind, got {checkpoint!r}")
        _check_int(max_inputs, "max_inputs", 0, MAX_BATCHES_LIMIT)
        _check_int(max_batches, "max_batches", 0, MAX_BATCHES_LIMIT)
        sid, gen = fence.session_id, fence.fencing_token
        for name in ("queue", "inputs", "leases", "sessions"):
            self.ctx.require_fresh(name)
        with self.ctx.db.transaction(write=False):  # the probe: one read snapshot, no write lock
            now = self.ctx.now_ms()
            pending = checkpoint_work_pending(self.ctx.db, sid, gen, turn_id, checkpoint, max_inputs,
                                              max_batches, now)
        if not pending:
            return CheckpointClaims(None, None)
        with self.ctx.command():
            now = self.ctx.now_ms()
            db = self.ctx.db
            # require_live_fence (the fence's shape was checked above), once for both families
            require_live_session(db, sid, "queue.claim_checkpoint")
            require_live_holder(db, fence, now, "queue.claim_checkpoint")
            input_ev = inputs_mod.decide_active_claim(db, fence, turn_id, checkpoint, max_inputs, now)
            queue_ev = None
            if max_batches > 0:
                import projections.queue as proj

                cands = proj.candidates(db, sid, now, gen, claim_scan_limit(max_batches))
                chosen = cands[:select_turn_work_prefix(cands, ClaimBoundary.ACTIVE_TURN_CHECKPOINT, max_batches)]
                queue_ev = decide_claim(sid, fence.owner, gen, chosen, "checkpoint", now)
            input_ev = _with_claimant(input_ev, claimant) if input_ev is not None else None
            queue_ev = _with_claimant(queue_ev, claimant) if queue_ev is not None else None
            events = [e for e in (input_ev, queue_ev) if e is not None]
            if events:
                self.ctx.append(session_stream(sid), events, now_ms=now)
            return CheckpointClaims(
                inputs_mod.claim_from_event(db, input_ev) if input_ev is not None else None,
                claim_from_event(db, queue_ev) if queue_ev is not None else None)

    def abandon(self, claim: QueuedWorkClaim | QueuedWorkCompletion) -> AbandonResult:
        """Give back the batches `claim` still holds: they become pending (and cancellable)
        again, keeping their claim counters (law 37). A claim that holds nothing is a no-op."""
        return self.abandon_many([claim])[0]

    def abandon_many(self, claims: Sequence[QueuedWorkClaim | QueuedWorkCompletion]) -> list[AbandonResult]:
        """Abandon several claims in one transaction (results in the same order)."""
        import projections.queue as proj

        self.ctx.require_writable("queue.abandon")
        if isinstance(claims, (str, bytes)) or not isinstance(claims, (list, tuple)):
            raise InvalidArgument(f"claims must be a list of claims, got {type(claims).__name__}")
        done = [check_completion_shape(c.completion() if isinstance(c, QueuedWorkClaim) else c, f"claims[{i}]")
                for i, c in enumerate(claims)]
        out = []
        with self.ctx.command():
            now = self.ctx.now_ms()
            self._fresh()
            for c in done:
                listed = set(c.batch_ids)
                held = tuple(b for b, token, _gen in proj.claim_holdings(self.ctx.db, c.session_id, c.claim_id)
                             if token == c.lease_token and b in listed)
                if held:
                    self.ctx.append(session_stream(c.session_id),
                                    [QueuedWorkClaimAbandoned(c.session_id, c.claim_id, c.lease_token, held, now)],
                                    now_ms=now)
                out.append(AbandonResult(c.session_id, c.claim_id, held))
        return out

    def cancel(self, session_id: str, batch_id: str) -> Any:
        """Remove a batch that is unclaimed or whose claim is not live (law 35).

        Returns the cancelled batch (state "cancelled"), or None when no such batch is
        queued or a live claim holds it.
        """
        import projections.queue as proj

        from ..sessions.facade import check_session_id

        self.ctx.require_writable("queue.cancel")
        check_session_id(session_id)
        _check_text(batch_id, "batch_id")
        with self.ctx.command():
            now = self.ctx.now_ms()
            self._fresh()
            batch = proj.get_batch(self.ctx.db, session_id, batch_id, self._live_generation(session_id, now))
            if batch is None or batch.state == "claimed":
                return None
            self.ctx.append(session_stream(session_id), [QueuedWorkCancelled(session_id, batch_id, now)], now_ms=now)
        return attrs.evolve(batch, state="cancelled", settled_at_ms=now)

    def complete(self, completion: QueuedWorkCompletion | QueuedWorkClaim) -> CompletionResult:
        """Settle a claim's batches outside a runtime commit (removes them; source keys stay known).

        Raises QueuedWorkClaimSuperseded, writing nothing, unless the claim still holds
        every listed batch under a live session lease generation (laws 41, 47).
        """
        self.ctx.require_writable("queue.complete")
        if isinstance(completion, QueuedWorkClaim):
            completion = completion.completion()
        check_completion_shape(completion)
        return self.ctx.run_command(lambda: self._complete(completion))

    def _complete(self, completion: QueuedWorkCompletion) -> CompletionResult:
        now = self.ctx.now_ms()
        self._fresh()
        ev = completion_event(self.ctx.db, completion, now)
        self.ctx.append(session_stream(completion.session_id), [ev], now_ms=now)
        return CompletionResult(ev.session_id, ev.claim_id, ev.batch_ids, now)

    def forget_settled_source_keys(self, session_id: str) -> int:
        """Forget the session's source keys settled longer ago than the retention; returns how many."""
        import projections.queue as proj

        from ..sessions.facade import check_session_id

        self.ctx.require_writable("queue.forget_settled_source_keys")
        check_session_id(session_id)
        if self._retention is None:
            return 0
        with self.ctx.command():
            now = self.ctx.now_ms()
            self._fresh()
            cutoff = now - self._retention
            n = proj.count_settled_source_keys(self.ctx.db, session_id, cutoff)
            if n:
                self.ctx.append(session_stream(session_id), [QueuedSourceKeysForgotten(session_id, cutoff, now)],
                                now_ms=now)
        return n

    # --- reads ---

    def _read(self, session_id: str, now_ms: int | None, fn: Callable[[Storage, int | None], _R]) -> _R:
        from ..sessions.facade import check_session_id

        check_session_id(session_id)
        if now_ms is not None:
            _check_int(now_ms, "now_ms")
        self.ctx.require_fresh("queue")
        self.ctx.require_fresh("leases")
        with self.ctx.db.transaction(write=False):  # liveness and rows from one snapshot
            now = self.ctx.now_ms() if now_ms is None else now_ms
            return fn(self.ctx.db, self._live_generation(session_id, now))

    def list(self, session_id: str, *, now_ms: int | None = None) -> list[Any]:
        """Every queued batch of the session in enqueue order, claimed ones included (law 30).

        Liveness of claims is judged at `now_ms` (default: the store's clock).
        """
        import projections.queue as proj

        return cast("list[Any]", self._read(session_id, now_ms, lambda db, gen: proj.list_batches(db, session_id, gen)))

    def list_pending(self, session_id: str, *, now_ms: int | None = None) -> builtins.list[QueuedBatch]:
        """The session's batches that no live claim holds, in enqueue order (law 36)."""
        import projections.queue as proj

        return self._read(session_id, now_ms,
                          lambda db, gen: proj.list_batches(db, session_id, gen, pending_only=True))

    def get(self, session_id: str, batch_id: str, *, now_ms: int | None = None) -> Any:
        """One queued batch, or None."""
        import projections.queue as proj

        _check_text(batch_id, "batch_id")
        return self._read(session_id, now_ms, lambda db, gen: proj.get_batch(db, session_id, batch_id, gen))

    def source_key(self, session_id: str, source_key: str) -> Any:
        """What a source key names (a present batch, or a remembered settled one), or None."""
        import projections.queue as proj

        _check_text(source_key, "source_key")
        return self._read(session_id, None, lambda db, gen: proj.get_source_key(db, session_id, source_key))


EvT = TypeVar("EvT")


def _check_claimant(claimant: Any) -> None:
    """A claimant is None (the lease holder) or a LeaseOwner."""
    if claimant is not None:
        from ..leases.owners import check_owner

        check_owner(claimant, "claimant")


def _with_claimant(ev: EvT, claimant: LeaseOwner | None) -> EvT:
    """The claim event recording `claimant` beside the lease holder (unchanged for None)."""
    return ev if claimant is None else attrs.evolve(ev, claimant=claimant)  # type: ignore[misc]


def claim_from_event(db: Any, ev: QueuedWorkClaimed) -> QueuedWorkClaim:
    """The QueuedWorkClaim an appended claim event stands for (batches read back in claim order)."""
    import projections.queue as proj

    batches = {b.batch_id: b for b in proj.get_batches(db, ev.session_id, ev.batch_ids, ev.generation)}
    return QueuedWorkClaim(ev.session_id, ev.claim_id, ev.owner, ev.lease_token, ev.fencing_token, ev.generation,
                           ev.claimed_at_ms, ev.mode, tuple(batches[b] for b in ev.batch_ids),
                           ev.claimant if ev.claimant is not None else ev.owner)


def checkpoint_work_pending(db: Any, session_id: str, generation: int, turn_id: str, checkpoint: Any,
                            max_inputs: int, max_batches: int, now_ms: int) -> bool:
    """The read-only checkpoint probe: is there an admitted active input for the turn, or
    ready turn work whose head is EARLIEST_SAFE_BOUNDARY, not held by `generation`?"""
    import projections.inputs as input_proj
    import projections.queue as proj

    if max_inputs > 0 and input_proj.active_candidates(db, session_id, turn_id, checkpoint, generation, 1):
        return True
    if max_batches > 0:
        head = proj.candidates(db, session_id, now_ms, generation, 1)
        return bool(select_turn_work_prefix(head, ClaimBoundary.ACTIVE_TURN_CHECKPOINT, 1))
    return False


register_facade("queue", Queue)


__all__ = [
    "DEFAULT_MAX_BATCHES",
    "AbandonResult",
    "AgentFrameTask",
    "CheckpointClaims",
    "ClaimBoundary",
    "CompletionResult",
    "DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS",
    "DeliveryPolicy",
    "Enqueued",
    "EnqueuePlan",
    "InvalidBatchPayloads",
    "MergeKey",
    "ProcessWake",
    "Queue",
    "QueuedWorkClaim",
    "QueuedWorkClaimSuperseded",
    "QueuedWorkCompletion",
    "QueuedWorkDraft",
    "RefreshToolCatalog",
    "ResetSession",
    "SlotPolicy",
    "WorkClass",
    "check_draft",
    "check_retention",
    "check_queue_completion",
    "checkpoint_work_pending",
    "claim_from_event",
    "decide_enqueue",
    "derive_batch_id",
    "plan_enqueue",
    "queue_completion_events",
]
