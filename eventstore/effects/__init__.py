"""The effect replay journal: journaled calls, strict replay, effect leases, awaits and their
resolution tokens.

This module is the domain's public API: import from `eventstore.effects`, not its submodules.
"""

from __future__ import annotations

from .events import (
    EffectCompleted,
    EffectFailureRecorded,
    EffectForgotten,
    EffectLeaseRenewed,
    EffectStarted,
    EffectTakenOver,
)
from .await_events import (
    AwaitCancelled,
    AwaitRegistered,
    AwaitResolved,
    SessionAwaitsRevoked,
)
from .awaits import (
    AwaitResolution,
    AwaitSessionRevoked,
    AwaitTimeout,
    AwaitTokenInvalid,
    RevocationReport,
)
from .envelopes import (
    digest,
    json_value,
    short_id,
)
from .facade import (
    EffectOptions,
    Effects,
)
from .leases import (
    BeginOutcome,
    EffectBusy,
    EffectError,
    EffectFailed,
    EffectLease,
    EffectLeaseLost,
    EffectMismatch,
    EffectNotFinished,
    EffectOutcomeNotJournaled,
    EffectReplayMissing,
    OUTCOME_NOT_JOURNALED,
)
from .renewal import (
    SCHEDULER,
    THREAD_NAME,
)

__all__ = [
    "EffectOutcomeNotJournaled",
    "EffectNotFinished",
    "EffectForgotten",
    "OUTCOME_NOT_JOURNALED",
    "AwaitCancelled",
    "AwaitRegistered",
    "AwaitResolution",
    "AwaitResolved",
    "AwaitSessionRevoked",
    "AwaitTimeout",
    "AwaitTokenInvalid",
    "BeginOutcome",
    "digest",
    "EffectBusy",
    "EffectCompleted",
    "EffectError",
    "EffectFailed",
    "EffectFailureRecorded",
    "EffectLease",
    "EffectLeaseLost",
    "EffectLeaseRenewed",
    "EffectMismatch",
    "EffectOptions",
    "EffectReplayMissing",
    "Effects",
    "EffectStarted",
    "EffectTakenOver",
    "json_value",
    "RevocationReport",
    "SCHEDULER",
    "SessionAwaitsRevoked",
    "short_id",
    "THREAD_NAME",
]
