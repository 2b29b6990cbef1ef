"""Session execution leases: their value types, and their events on `session:<id>`.

A lease's whole state is derivable from the events: who holds it, its token, its
fencing token, when it was claimed and when it expires. The times are the ones the
deciding command read from the injected clock, so a replay rebuilds the same table.

The value types (`SessionExecutionLease`, `LeaseFence`, `SessionLeaseState`) live here
rather than in the facade because the projection returns them and projections may
import only event modules. This module imports only the log core and the owner types.
"""

from __future__ import annotations

import attrs

from ..events import event
from .owners import LeaseOwner


@attrs.frozen
class LeaseFence:
    """What a holder presents to prove it still holds the lease: session, owner, token, fence.

    Renew, release and every fenced write elsewhere (queue claims, turn inputs, the
    runtime commit) take one. Get it from `SessionExecutionLease.fence`.
    """

    session_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int


@attrs.frozen
class SessionExecutionLease:
    """A held lease: who holds it, its token and fencing token, and its times.

    It may be expired: ask `is_live(now_ms)`.
    """

    session_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    claimed_at_ms: int
    expires_at_ms: int

    def is_live(self, now_ms: int) -> bool:
        """Live means unexpired: `now_ms < expires_at_ms` (a TTL of 0 is born expired)."""
        return now_ms < self.expires_at_ms

    @property
    def fence(self) -> LeaseFence:
        """The fence the holder presents to renew, release, or write under this lease."""
        return LeaseFence(self.session_id, self.owner, self.lease_token, self.fencing_token)


@attrs.frozen
class SessionLeaseState:
    """A session's lease row: its fencing token counter and its holder, if any."""

    session_id: str
    fencing_token: int
    """The fence of the latest acquisition (kept after release and expiry)."""
    holder: SessionExecutionLease | None
    """The current holder, live or expired; None after a release."""

    def live_holder(self, now_ms: int) -> SessionExecutionLease | None:
        """The holder if it is live at `now_ms`, else None."""
        h = self.holder
        return h if h is not None and h.is_live(now_ms) else None


@event("session.lease_acquired")
class SessionLeaseAcquired:
    """A lease was acquired: by a plain claim of a free, released or expired lease, or by
    the reclaim of a live lease whose holder was proven dead.

    The fencing token is the previous one plus one (1 for a new session generation).
    """

    session_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    claimed_at_ms: int
    expires_at_ms: int
    reclaimed_from: LeaseOwner | None = None
    """For a reclaim of a live lease: the holder that was proven dead."""
    reclaimed_fencing_token: int | None = None
    """For such a reclaim: the fencing token the dead holder had."""
    dead_process_start: int | None = None
    """For such a reclaim: what /proc showed for the holder's pid (None: no such process)."""


@event("session.lease_renewed")
class SessionLeaseRenewed:
    """A live lease's expiry moved: a renew by its holder, or a re-entrant claim.

    Token, fencing token and claim time are unchanged.
    """

    session_id: str
    lease_token: str
    fencing_token: int
    renewed_at_ms: int
    expires_at_ms: int
    reentry: bool = False
    """True when a claim by the holder's own incarnation extended it (not renew())."""


@event("session.lease_released")
class SessionLeaseReleased:
    """The holder released the lease: the holder is cleared, the fencing token kept."""

    session_id: str
    lease_token: str
    fencing_token: int
    released_at_ms: int


__all__ = [
    "LeaseFence",
    "SessionExecutionLease",
    "SessionLeaseAcquired",
    "SessionLeaseReleased",
    "SessionLeaseRenewed",
    "SessionLeaseState",
]
