"""The claim columns that the queue and the turn-input projections share.

Both tables record a claim the same way (who holds it, under which lease generation,
with a per-row fencing counter that only grows); these fragments keep the two in step.
"""

from __future__ import annotations

from typing import Any

SET_CLAIM = (
    "claim_fencing_token = claim_fencing_token + 1, claim_id = ?, claim_owner_id = ?, "
    "claim_incarnation_id = ?, claim_token = ?, claim_generation = ?, claimed_at_ms = ?"
)
"""SET clause stamping a claim; bind with `claim_values(event)`."""

CLEAR_CLAIM = (
    "claim_id = NULL, claim_owner_id = NULL, claim_incarnation_id = NULL, claim_token = NULL, "
    "claim_generation = NULL, claimed_at_ms = NULL"
)
"""SET clause clearing a claim; the fencing counter stays, so the next claim gets a higher one."""


def claim_values(e: Any) -> tuple[Any, ...]:
    """The parameters of SET_CLAIM from a claimed event (queue or inputs)."""
    return (e.claim_id, e.owner.owner_id, e.owner.incarnation_id, e.lease_token, e.generation, e.claimed_at_ms)
