"""Effect journal events: one stream `effect:<scope>` per execution scope.

An effect (a model call, a tool call, a sleep) is journaled under (scope, replay key):

    effect.started       in progress under a lease (owner, token, expiry), attempt 1
    effect.lease_renewed the holder pushed its expiry forward while the effect runs
    effect.taken_over    a successor took an in-progress effect whose lease expired
                         (or whose holder is provably dead): a new token, attempt + 1
    effect.completed     the outcome, recorded by the lease holder
    effect.failed        the error, recorded by the lease holder

Awaited external events live in the same stream (see `await_events`). Every time a
decision used (expiry, due time) is in the event, so appliers never read a clock.
"""

from __future__ import annotations

from typing import Any

from ..events import event
from ..leases.owners import LeaseOwner


def effect_stream(scope: str) -> str:
    """The stream of one execution scope's effects."""
    return f"effect:{scope}"


@event("effect.started")
class EffectStarted:
    """The first attempt of an effect: recorded in progress before the effect runs."""

    scope: str
    replay_key: str
    kind: str
    """'call' or 'sleep'."""
    envelope: Any
    """The JSON-like request envelope; a later call under the same key must match it."""
    envelope_hash: str
    owner: LeaseOwner
    lease_token: str
    lease_expires_at_ms: int
    attempt: int
    due_at_ms: int | None
    """For sleeps: when the sleep ends. A replay waits only until then."""
    at_ms: int


@event("effect.taken_over")
class EffectTakenOver:
    """A successor took over an in-progress effect (expired lease, or a dead holder)."""

    scope: str
    replay_key: str
    previous_owner: LeaseOwner
    previous_token: str
    owner: LeaseOwner
    lease_token: str
    lease_expires_at_ms: int
    attempt: int
    reason: str
    """'expired' or 'holder_dead'."""
    at_ms: int


@event("effect.lease_renewed")
class EffectLeaseRenewed:
    """The holder renewed its lease while the effect runs."""

    scope: str
    replay_key: str
    lease_token: str
    lease_expires_at_ms: int
    at_ms: int


@event("effect.completed")
class EffectCompleted:
    """The effect's JSON-like outcome, recorded under a lease that was still held."""

    scope: str
    replay_key: str
    lease_token: str
    outcome: Any
    at_ms: int


@event("effect.failed")
class EffectFailureRecorded:
    """The effect raised: its error type and message, recorded under a held lease."""

    scope: str
    replay_key: str
    lease_token: str
    error_type: str
    error_message: str
    at_ms: int


@event("effect.forgotten")
class EffectForgotten:
    """A finished entry removed from the journal on request: the next call runs afresh."""

    scope: str
    replay_key: str
    status: str
    """The status the entry had (completed or failed)."""
    error_type: str | None
    at_ms: int
