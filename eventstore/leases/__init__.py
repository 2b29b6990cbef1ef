"""Session execution leases: claim, renew, release and reclaim with fencing tokens; lease owners
and their liveness evidence.

This module is the domain's public API: import from `eventstore.leases`, not its submodules.
"""

from __future__ import annotations

from .events import (
    LeaseFence,
    SessionExecutionLease,
    SessionLeaseAcquired,
    SessionLeaseReleased,
    SessionLeaseRenewed,
    SessionLeaseState,
)
from .facade import (
    Acquired,
    Busy,
    check_fence,
    check_ttl,
    ClaimOutcome,
    decide_claim,
    decide_reclaim,
    decide_release,
    decide_renew,
    is_generation_live,
    lease_token,
    Leases,
    live_generation,
    ReleaseResult,
    require_live_fence,
    require_live_holder,
    check_live_holder,
    SessionExecutionLeaseExpired,
)
from .keepalive import SessionLeaseKeepAlive
from .owners import (
    check_observed,
    MAX_OWNER_ID_BYTES,
    check_owner,
    holder_matches,
    ObservedHolder,
    definitely_dead,
    LeaseOwner,
    LeaseTimings,
    LocalProcessLiveness,
    OpaqueLiveness,
    read_process_start,
    this_process,
)

__all__ = [
    "MAX_OWNER_ID_BYTES",
    "Acquired",
    "Busy",
    "check_fence",
    "check_observed",
    "check_owner",
    "check_ttl",
    "ClaimOutcome",
    "decide_claim",
    "decide_reclaim",
    "decide_release",
    "decide_renew",
    "definitely_dead",
    "holder_matches",
    "is_generation_live",
    "lease_token",
    "LeaseFence",
    "LeaseOwner",
    "Leases",
    "LeaseTimings",
    "live_generation",
    "LocalProcessLiveness",
    "ObservedHolder",
    "OpaqueLiveness",
    "read_process_start",
    "ReleaseResult",
    "require_live_fence",
    "require_live_holder",
    "check_live_holder",
    "SessionExecutionLease",
    "SessionExecutionLeaseExpired",
    "SessionLeaseAcquired",
    "SessionLeaseKeepAlive",
    "SessionLeaseReleased",
    "SessionLeaseRenewed",
    "SessionLeaseState",
    "this_process",
]
