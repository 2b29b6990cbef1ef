"""Pending turn inputs: enqueue, claim at a checkpoint, complete, defer, cancel and interrupt.

This module is the domain's public API: import from `eventstore.inputs`, not its submodules.
"""

from __future__ import annotations

from .events import (
    ActiveTurn,
    CheckpointKind,
    Ingress,
    InputState,
    NextTurn,
    TERMINAL_STATES,
    TurnInputClaimAbandoned,
    TurnInputEnqueued,
    TurnInputsCancelled,
    TurnInputsClaimed,
    TurnInputsCompleted,
    TurnInputsDeferred,
    TurnInputsVacuumed,
)
from .facade import (
    InputAbandonResult,
    InputCompletionResult,
    Inputs,
)
from .rules import (
    BySourceKey,
    CancelOutcome,
    check_input_completion,
    interrupt_events,
    PendingTurnInputIdConflict,
    PendingTurnInputSourceKeyConflict,
    plan_input_enqueue,
    TurnInputClaimSuperseded,
    TurnInputCompletion,
    TurnInputDraft,
    vacuum_events,
)

__all__ = [
    "ActiveTurn",
    "BySourceKey",
    "CancelOutcome",
    "check_input_completion",
    "CheckpointKind",
    "Ingress",
    "InputAbandonResult",
    "InputCompletionResult",
    "Inputs",
    "InputState",
    "interrupt_events",
    "NextTurn",
    "PendingTurnInputIdConflict",
    "PendingTurnInputSourceKeyConflict",
    "plan_input_enqueue",
    "TERMINAL_STATES",
    "TurnInputClaimAbandoned",
    "TurnInputClaimSuperseded",
    "TurnInputCompletion",
    "TurnInputDraft",
    "TurnInputEnqueued",
    "TurnInputsCancelled",
    "TurnInputsClaimed",
    "TurnInputsCompleted",
    "TurnInputsDeferred",
    "TurnInputsVacuumed",
    "vacuum_events",
]
