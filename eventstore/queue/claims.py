"""Queued-work claims and completions: the pure selection rules, claim identity, and the
completion check and settling events the runtime commit calls inside its transaction.

Claim rules (docs/semantics.md §4; laws 31-47):
* a claim is live exactly while the session lease is held, unexpired, with the fencing
  token (the *generation*) stamped on the claim. Claims have no TTL of their own: every
  claim call validates the caller's fence first, which makes every row stamped with
  another generation claimable again;
* candidates are the session's ready rows (`available_at_ms <= now`) not held by the
  caller's generation, in enqueue order. Rows held by the caller's generation are
  filtered before the scan limit of `max_batches + 32` (law 44); rows that are not ready
  are skipped and never block the rows behind them;
* a turn claim needs turn work at the head: an earlier session command is never skipped
  (law 39); at the ACTIVE_TURN_CHECKPOINT boundary the head must be
  EARLIEST_SAFE_BOUNDARY (law 40); an Exclusive head is claimed alone; a Join head
  extends through the following Join turn work of the same delivery policy and merge
  key, up to `max_batches` (laws 45-46);
* a session-command claim takes exactly one batch, and only when the head is a command;
* a claim by batch ids may jump ahead of other work, but every id must be present,
  ready, claimable turn work, and the set, in the order given, must pass the same
  boundary, slot and merge rules (law 38);
* claim identity: fencing token = the head row's claim counter + 1, claim id
  `qwc:{head_seq}:{fence}`, lease token sha256(`{session}:{owner}:{incarnation}:{claim_id}:{now}`).

Completion: accepted only while the claim still holds every listed batch (same claim id
and lease token) under a live generation; otherwise QueuedWorkClaimSuperseded and
nothing changes (laws 41, 47).
"""

from __future__ import annotations

from typing import Any, Sequence

import attrs

from ..checks import derived_token
from ..errors import InvalidArgument, StoreError
from ..leases.owners import LeaseOwner
from .events import ClaimBoundary, DeliveryPolicy, QueuedWorkClaimed, QueuedWorkCompleted, SlotPolicy, WorkClass

UNREAD: Any = object()
"""Default of `live_generation` arguments: read the session's live lease generation."""

SCAN_SURPLUS = 32
"""How many candidate rows past `max_batches` one claim scans (the reference's `claim_scan_limit`)."""


class QueuedWorkClaimSuperseded(StoreError):
    """A completion (or settlement) names a claim that no longer holds every listed batch:
    its lease generation is not live, or a newer claim took a batch, or the batch is gone.
    Nothing was written."""

    def __init__(self, session_id: str, claim_id: str, reason: str) -> None:
        self.session_id = session_id
        self.claim_id = claim_id
        self.reason = reason
        super().__init__(f"session {session_id!r}: queued-work claim {claim_id!r} is superseded: {reason}")


@attrs.frozen
class QueuedWorkCompletion:
    """What a claim's holder presents to complete (settle) its batches."""

    session_id: str
    claim_id: str
    lease_token: str
    batch_ids: tuple[str, ...]


def claim_scan_limit(max_batches: int) -> int:
    """How many candidate rows a claim of up to `max_batches` reads: max + 32."""
    return max_batches + SCAN_SURPLUS


# --- pure selection --------------------------------------------------------------------


def select_leading_command(candidates: Sequence[Any]) -> int:
    """1 when the earliest candidate is a session command, else 0 (a command never jumps
    ahead of earlier turn work, law 39)."""
    return 1 if candidates and candidates[0].work_class is WorkClass.SESSION_COMMAND else 0


def select_turn_work_prefix(candidates: Sequence[Any], boundary: ClaimBoundary, max_batches: int) -> int:
    """How many leading candidates one turn claim takes (0: none). See the module docstring."""
    if max_batches <= 0 or not candidates:
        return 0
    first = candidates[0]
    if first.work_class is not WorkClass.TURN_WORK:
        return 0  # never skip a leading session command (law 39)
    if boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT and first.delivery_policy is not DeliveryPolicy.EARLIEST_SAFE_BOUNDARY:
        return 0  # after-commit work at the head waits for Idle (law 40)
    if first.slot_policy is not SlotPolicy.JOIN or first.merge_key.kind == "never":
        return 1
    taken = 1
    for c in candidates[1:]:
        if (taken >= max_batches or c.work_class is not WorkClass.TURN_WORK or c.slot_policy is not SlotPolicy.JOIN
                or c.delivery_policy is not first.delivery_policy or not first.merge_key.joins(c.merge_key)):
            break
        taken += 1
    return taken


def exact_selection_ok(rows: Sequence[Any], boundary: ClaimBoundary, now_ms: int, generation: int) -> bool:
    """Whether the named rows (in the order given) may be claimed together (law 38).

    Every row must be present, ready, not held by `generation`, and turn work; the first
    must pass the boundary gate; more than one row needs Join rows of one delivery
    policy and one joinable merge key (an Exclusive batch is never merged).
    """
    if not rows or any(r is None for r in rows):
        return False
    for r in rows:
        if r.available_at_ms > now_ms or r.work_class is not WorkClass.TURN_WORK:
            return False
        if r.claim_token is not None and r.claim_generation == generation:
            return False
    first = rows[0]
    if boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT and first.delivery_policy is not DeliveryPolicy.EARLIEST_SAFE_BOUNDARY:
        return False
    if len(rows) == 1:
        return True
    return all(r.slot_policy is SlotPolicy.JOIN and r.delivery_policy is first.delivery_policy
               and first.merge_key.joins(r.merge_key) for r in rows)


def lease_token(session_id: str, owner: LeaseOwner, claim_id: str, now_ms: int) -> str:
    """A claim's lease token: sha256 of `{session}:{owner}:{incarnation}:{claim_id}:{now}` (hex)."""
    return derived_token(session_id, owner.owner_id, owner.incarnation_id, claim_id, now_ms)


def decide_claim(session_id: str, owner: LeaseOwner, generation: int, selected: Sequence[Any], mode: str,
                 now_ms: int) -> QueuedWorkClaimed | None:
    """The claim event for the selected rows (the first is the head), or None when empty. Pure."""
    if not selected:
        return None
    head = selected[0]
    fence = head.claim_fencing_token + 1
    claim_id = f"qwc:{head.enqueue_seq}:{fence}"
    return QueuedWorkClaimed(session_id, claim_id, lease_token(session_id, owner, claim_id, now_ms), fence,
                             generation, owner, tuple(r.batch_id for r in selected), now_ms, mode)


# --- completion --------------------------------------------------------------------------


def check_completion_shape(completion: Any, what: str = "completion") -> QueuedWorkCompletion:
    """Validate a QueuedWorkCompletion argument, naming the field that is wrong."""
    if not isinstance(completion, QueuedWorkCompletion):
        raise InvalidArgument(f"{what} must be a QueuedWorkCompletion (claim.completion()), "
                              f"got {type(completion).__name__}")
    for name in ("session_id", "claim_id", "lease_token"):
        value = getattr(completion, name)
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"{what}.{name} must be a non-empty string, got {value!r}")
    ids = completion.batch_ids
    if not isinstance(ids, (tuple, list)) or not ids or not all(isinstance(b, str) and b for b in ids):
        raise InvalidArgument(f"{what}.batch_ids must be a non-empty tuple of batch ids, got {ids!r}")
    if len(set(ids)) != len(ids):
        raise InvalidArgument(f"{what}.batch_ids lists a batch twice: {list(ids)!r}")
    return completion


def decide_completion(completion: QueuedWorkCompletion, holdings: dict[str, tuple[str, int]],
                      live_generation: int | None, now_ms: int) -> QueuedWorkCompleted:
    """The settling event of a completion, or QueuedWorkClaimSuperseded. Pure.

    `holdings` maps each batch the claim id still holds to (lease token, generation).
    """
    sid, cid = completion.session_id, completion.claim_id
    for batch_id in completion.batch_ids:
        held = holdings.get(batch_id)
        if held is None:
            raise QueuedWorkClaimSuperseded(sid, cid, f"batch {batch_id!r} is no longer held by this claim "
                                            "(completed, cancelled, abandoned or claimed again)")
        token, generation = held
        if token != completion.lease_token:
            raise QueuedWorkClaimSuperseded(sid, cid, f"batch {batch_id!r} is held under another lease token")
        if generation != live_generation:
            live = "no live lease" if live_generation is None else f"the live generation is {live_generation}"
            raise QueuedWorkClaimSuperseded(sid, cid, f"the claim's session lease generation {generation} "
                                            f"is not live ({live})")
    return QueuedWorkCompleted(sid, cid, completion.lease_token, tuple(completion.batch_ids), now_ms)


def check_queue_completion(db: Any, completion: QueuedWorkCompletion, now_ms: int, *,
                           live_generation: Any = UNREAD) -> QueuedWorkCompleted:
    """Check a completion against the live tables; return its settling event or raise.

    For the runtime commit: call it inside your write transaction, for every completion,
    before appending anything; then append the returned events (on `session:<id>`)
    together with the commit's own. Raises QueuedWorkClaimSuperseded unless the claim
    still holds every listed batch under a live session lease generation, and
    InvalidArgument for a malformed completion.
    """
    return completion_event(db, check_completion_shape(completion), now_ms, live_generation=live_generation)


def completion_event(db: Any, completion: QueuedWorkCompletion, now_ms: int, *,
                     live_generation: Any = UNREAD) -> QueuedWorkCompleted:
    """`check_queue_completion` for a completion that already passed `check_completion_shape`.

    A caller that has just checked the session's live lease passes its fencing token as
    `live_generation` (None: no live lease), which is then not read again."""
    import projections.leases as lease_proj
    import projections.queue as proj

    holdings = {b: (token, gen) for b, token, gen in proj.claim_holdings(db, completion.session_id, completion.claim_id)}
    live = (lease_proj.live_generation(db, completion.session_id, now_ms) if live_generation is UNREAD
            else live_generation)
    return decide_completion(completion, holdings, live, now_ms)


def queue_completion_events(db: Any, completions: Sequence[QueuedWorkCompletion], now_ms: int) -> list[Any]:
    """The settling events of several completions (all checked first; raises on the first
    superseded one, before anything is appended)."""
    return [check_queue_completion(db, c, now_ms) for c in completions]


__all__ = [
    "QueuedWorkClaimSuperseded",
    "QueuedWorkCompletion",
    "SCAN_SURPLUS",
    "check_completion_shape",
    "check_queue_completion",
    "claim_scan_limit",
    "completion_event",
    "decide_claim",
    "decide_completion",
    "exact_selection_ok",
    "lease_token",
    "queue_completion_events",
    "select_leading_command",
    "select_turn_work_prefix",
]
