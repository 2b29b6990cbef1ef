"""Event classes of pending turn inputs, recorded on the session's stream `session:<id>`.

A pending turn input is model-visible user input waiting outside the transcript: typed
while a turn runs (ingress ActiveTurn, for that turn's next checkpoint) or meant for the
next turn (ingress NextTurn). Its row is a projection of these events; every id,
sequence number, token and time is decided by the command and recorded here.

This module imports only the log core and the owner types (projections import it).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ..events import event
from ..leases.owners import LeaseOwner


class CheckpointKind(enum.Enum):
    """A checkpoint inside a running turn (and the earliest one an active input may join)."""

    AFTER_WORK = "after_work"
    """After a unit of work: admits only inputs whose minimum boundary is AFTER_WORK."""
    BEFORE_COMPLETION = "before_completion"
    """Just before the turn completes: admits AFTER_WORK and BEFORE_COMPLETION inputs."""


class InputState(enum.Enum):
    """Where a pending turn input is in its life."""

    PENDING_ACTIVE = "pending_active"
    """Waiting for a checkpoint of its turn."""
    DEFERRED_NEXT_TURN = "deferred_next_turn"
    """Waiting for the next turn (stays in this state while a next-turn claim holds it)."""
    ACCEPTED = "accepted"
    """Taken by an active-turn claim (returns to PENDING_ACTIVE if that claim is abandoned or dies)."""
    CANCELLED = "cancelled"
    COMPLETED = "completed"


TERMINAL_STATES = frozenset({InputState.CANCELLED, InputState.COMPLETED})


@attrs.frozen
class ActiveTurn:
    """Ingress for the running turn `turn_id`, at its first checkpoint at or after `min_boundary`."""

    turn_id: str
    min_boundary: CheckpointKind = CheckpointKind.AFTER_WORK


@attrs.frozen
class NextTurn:
    """Ingress for the next turn."""


Ingress = ActiveTurn | NextTurn


# --- events ----------------------------------------------------------------------------


@event("inputs.enqueued")
class TurnInputEnqueued:
    """A pending turn input was recorded.

    `content_hash` is the sha256 of the draft's canonical content (ingress, input and
    an explicit input id): a source-key replay with the same hash returns this row, a
    different hash is a conflict.
    """

    session_id: str
    input_id: str
    enqueue_seq: int
    source_key: str | None
    ingress: ActiveTurn | NextTurn
    input: Any
    content_hash: str
    enqueued_at_ms: int


@event("inputs.claimed")
class TurnInputsClaimed:
    """A claim took inputs under session lease generation `generation`.

    mode "active_turn" moves them to ACCEPTED; mode "next_turn" leaves them DEFERRED_NEXT_TURN.
    """

    session_id: str
    claim_id: str
    lease_token: str
    fencing_token: int
    generation: int
    owner: LeaseOwner
    input_ids: tuple[str, ...]
    mode: str
    turn_id: str | None
    checkpoint: CheckpointKind | None
    claimed_at_ms: int
    claimant: LeaseOwner | None = None
    """Who took the claim, when the caller named someone other than the lease holder
    (`owner`); None: the lease holder itself (and in events written before it existed)."""


@event("inputs.claim_abandoned")
class TurnInputClaimAbandoned:
    """A claim gave its inputs back: ACCEPTED ones return to PENDING_ACTIVE, the claim is cleared."""

    session_id: str
    claim_id: str
    lease_token: str
    input_ids: tuple[str, ...]
    abandoned_at_ms: int


@event("inputs.cancelled")
class TurnInputsCancelled:
    """Inputs were cancelled (they were unclaimed, or their claim was not live)."""

    session_id: str
    input_ids: tuple[str, ...]
    cancelled_at_ms: int


@event("inputs.completed")
class TurnInputsCompleted:
    """A claim's inputs were consumed by a committed turn."""

    session_id: str
    claim_id: str
    lease_token: str
    input_ids: tuple[str, ...]
    completed_at_ms: int


@event("inputs.turn_interrupted")
class TurnInputsDeferred:
    """Turn `turn_id` was interrupted: its inputs that no live claim had accepted move to
    the next turn (DEFERRED_NEXT_TURN with ingress NextTurn)."""

    session_id: str
    turn_id: str
    input_ids: tuple[str, ...]
    deferred_at_ms: int


@event("inputs.vacuumed")
class TurnInputsVacuumed:
    """Terminal (cancelled or completed) input rows were pruned from the projection."""

    session_id: str
    input_ids: tuple[str, ...]
    vacuumed_at_ms: int


__all__ = [
    "ActiveTurn",
    "CheckpointKind",
    "Ingress",
    "InputState",
    "NextTurn",
    "TERMINAL_STATES",
    "TurnInputClaimAbandoned",
    "TurnInputEnqueued",
    "TurnInputsCancelled",
    "TurnInputsClaimed",
    "TurnInputsCompleted",
    "TurnInputsDeferred",
    "TurnInputsVacuumed",
]
