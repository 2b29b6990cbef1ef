"""Process leases: one execution lease per process, mirroring session leases (law 84).

* claim: re-entry by the holder's own incarnation keeps token and fence and moves the
  expiry to now+ttl; anyone else facing a live lease gets `Busy(holder)`; a free,
  released or expired lease is acquired with fence = stored fence + 1 (the stored
  fence survives release) and token sha256("{pid}:{owner}:{incarnation}:{now}:{fence}").
* reclaim: takes a *live* lease only when the caller's observation of the holder is
  still current and the holder is provably dead (owners.definitely_dead, read from
  /proc by the command at decision time); anything else is Busy.
* renew: needs the same token, fence and incarnation, and an unexpired lease; anything
  else is `ProcessLeaseExpired` ("missing or expired"). A superseded lease never renews.
* release: clears the holder when token and fence match; otherwise a silent no-op, so a
  stale or expired lease cannot release (or otherwise disturb) the current owner.

Owner identity, liveness and LeaseTimings come from `eventstore.leases` (owners.py). Deciders are pure.
"""

from __future__ import annotations

from typing import Any, Callable, TypeGuard

import attrs

from projections import processes as proj

from ..checks import derived_token
from ..errors import InvalidArgument
from ..leases.owners import (
    Acquired,
    Busy,
    LeaseOwner,
    LeaseTimings,
    LocalProcessLiveness,
    ObservedHolder,
    check_observed,
    check_owner,
    definitely_dead,
    holder_matches,
    read_process_start,
)
from .base import ProcessFacadeBase, check_process_id
from .errors import ProcessLeaseExpired
from .events import ProcessLease, ProcessLeaseAcquired, ProcessLeaseReleased, ProcessLeaseRenewed


ClaimOutcome = Acquired[ProcessLease] | Busy[ProcessLease]
"""The same `Acquired` / `Busy` types session leases return (defined in owners.py)."""


@attrs.frozen
class ProcessLeaseState:
    """A process's lease row: its fencing-token counter and its holder, if any."""

    process_id: str
    fencing_token: int
    """The fence of the latest acquisition (kept after release and expiry; 0: never leased)."""
    holder: ProcessLease | None
    """The holder, live or expired; None when never leased or released."""


def lease_token(process_id: str, owner: LeaseOwner, now_ms: int, fence: int) -> str:
    """The token of a new acquisition (deterministic from the decision's inputs)."""
    return derived_token(process_id, owner.owner_id, owner.incarnation_id, now_ms, fence)


def check_ttl(ttl: Any) -> int:
    """A TTL in ms (>= 0; 0 yields a lease born expired) or a LeaseTimings (its ttl_ms)."""
    if isinstance(ttl, LeaseTimings):
        return ttl.ttl_ms
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise InvalidArgument(f"ttl_ms must be an integer >= 0 or a LeaseTimings, got {ttl!r}")
    return ttl


def check_lease(lease: Any) -> ProcessLease:
    """Validate a ProcessLease argument."""
    if not isinstance(lease, ProcessLease):
        raise InvalidArgument(f"lease must be a ProcessLease, got {type(lease).__name__}")
    return lease


def lease_is_current(holder: ProcessLease | None, lease: ProcessLease, now_ms: int) -> TypeGuard[ProcessLease]:
    """True when `lease` is the live lease: same token, fence and incarnation, unexpired."""
    return (holder is not None and holder.lease_token == lease.lease_token
            and holder.fencing_token == lease.fencing_token and holder.owner.same_owner(lease.owner)
            and holder.is_live(now_ms))


def _acquire(pid: str, fence: int, owner: LeaseOwner, ttl: int, now: int,
             reclaimed: ProcessLease | None = None, dead_start: int | None = None) -> tuple[Acquired[ProcessLease], list[Any]]:
    new_fence = fence + 1
    token = lease_token(pid, owner, now, new_fence)
    lease = ProcessLease(pid, owner, token, new_fence, now, now + ttl)
    ev = ProcessLeaseAcquired(pid, owner, token, new_fence, now, now + ttl,
                              reclaimed.owner if reclaimed else None,
                              reclaimed.fencing_token if reclaimed else None, dead_start)
    return Acquired(lease, False, reclaimed.owner if reclaimed else None), [ev]


def decide_claim(pid: str, fence: int, holder: ProcessLease | None, owner: LeaseOwner, ttl: int,
                 now: int) -> tuple[ClaimOutcome, list[Any]]:
    """Claim: re-entry, Busy, or a fresh acquisition. Pure."""
    if holder is not None and holder.is_live(now):
        if holder.owner.same_owner(owner):
            renewed = attrs.evolve(holder, expires_at_ms=now + ttl)
            return Acquired(renewed, True), [ProcessLeaseRenewed(pid, holder.lease_token, holder.fencing_token, now,
                                                           now + ttl, reentry=True)]
        return Busy(holder), []
    return _acquire(pid, fence, owner, ttl, now)


def decide_reclaim(pid: str, fence: int, holder: ProcessLease | None, owner: LeaseOwner,
                   observed: ObservedHolder | ProcessLease, holder_dead: bool, dead_start: int | None, ttl: int,
                   now: int) -> tuple[ClaimOutcome, list[Any]]:
    """Reclaim: a free or expired lease is a plain claim; a live one is taken only when
    the observation (owner and incarnation, fencing token) is current and the holder was
    proven dead. Pure."""
    if holder is None or not holder.is_live(now):
        return decide_claim(pid, fence, holder, owner, ttl, now)
    current = holder_matches(holder, ObservedHolder(observed.owner, observed.fencing_token))
    if current and holder_dead:
        return _acquire(pid, fence, owner, ttl, now, reclaimed=holder, dead_start=dead_start)
    return Busy(holder), []


def decide_renew(holder: ProcessLease | None, lease: ProcessLease, ttl: int, now: int) -> tuple[ProcessLease, list[Any]]:
    """Renew: only the live, current lease moves its expiry. Pure."""
    if not lease_is_current(holder, lease, now):
        why = "superseded or released" if holder is None or holder.lease_token != lease.lease_token else "expired"
        raise ProcessLeaseExpired(lease.process_id, why)
    renewed = attrs.evolve(holder, expires_at_ms=now + ttl)
    return renewed, [ProcessLeaseRenewed(lease.process_id, lease.lease_token, lease.fencing_token, now, now + ttl)]


def decide_release(holder: ProcessLease | None, lease: ProcessLease, now: int) -> list[Any]:
    """Release: clears the holder when token and fence match; else nothing. Pure."""
    if holder is None or holder.lease_token != lease.lease_token or holder.fencing_token != lease.fencing_token:
        return []
    return [ProcessLeaseReleased(lease.process_id, lease.lease_token, lease.fencing_token, now)]


class ProcessLeaseCommands(ProcessFacadeBase):
    """The lease part of `store.processes`."""

    def claim_lease(self, process_id: str, owner: LeaseOwner, ttl_ms: int | LeaseTimings) -> ClaimOutcome:
        """Claim the process's lease: `Acquired(lease)` or `Busy(holder)`. UnknownProcess if unregistered."""
        check_process_id(process_id)
        check_owner(owner)
        ttl = check_ttl(ttl_ms)
        with self._write("claim_lease"):
            now = self.ctx.now_ms()
            self._require(process_id)
            fence, holder = proj.get_lease(self._db, process_id)
            outcome, events = decide_claim(process_id, fence, holder, owner, ttl, now)
            if events:
                self._append(process_id, events, now)
            return outcome

    def reclaim_lease(self, process_id: str, owner: LeaseOwner, observed: ObservedHolder | ProcessLease,
                      ttl_ms: int | LeaseTimings, *,
                      read_start: Callable[[int], int | None] = read_process_start) -> ClaimOutcome:
        """Take over a live lease whose holder (as `observed`: owner and fencing token, or
        the ProcessLease from get_lease()) is provably dead; else Busy.

        `read_start` reads a pid's start time from /proc (injectable for tests).
        """
        check_process_id(process_id)
        check_owner(owner)
        seen = check_observed(observed)
        other = getattr(observed, "process_id", process_id)
        if other != process_id:
            raise InvalidArgument(f"process_id {process_id!r} is not observed.process_id {other!r}: the observed "
                                  f"holder must be of the process reclaimed")
        observed = seen
        if not callable(read_start):
            raise InvalidArgument(f"read_start must be a callable pid -> start time, got {read_start!r}")
        ttl = check_ttl(ttl_ms)
        with self._write("reclaim_lease"):
            now = self.ctx.now_ms()
            self._require(process_id)
            fence, holder = proj.get_lease(self._db, process_id)
            dead, dead_start = False, None
            if holder is not None and holder.is_live(now):
                # The proof of death is read here, by the command, at decision time.
                dead = definitely_dead(holder.owner, owner, read_start)
                if dead and isinstance(holder.owner.liveness, LocalProcessLiveness):  # dead implies local
                    try:
                        dead_start = read_start(holder.owner.liveness.pid)
                    except (OSError, ValueError, IndexError):
                        dead_start = None
            outcome, events = decide_reclaim(process_id, fence, holder, owner, observed, dead, dead_start, ttl, now)
            if events:
                self._append(process_id, events, now)
            return outcome

    def renew_lease(self, lease: ProcessLease, ttl_ms: int | LeaseTimings) -> ProcessLease:
        """Extend the live lease to now+ttl; ProcessLeaseExpired if it is not the live lease."""
        check_lease(lease)
        ttl = check_ttl(ttl_ms)
        with self._write("renew_lease"):
            now = self.ctx.now_ms()
            if self.get(lease.process_id) is None:
                raise ProcessLeaseExpired(lease.process_id, "the process is unknown")
            _fence, holder = proj.get_lease(self._db, lease.process_id)
            renewed, events = decide_renew(holder, lease, ttl, now)
            self._append(lease.process_id, events, now)
            return renewed

    def release_lease(self, lease: ProcessLease) -> bool:
        """Release the lease; False (and nothing written) when it is not the current holder's."""
        check_lease(lease)
        with self._write("release_lease"):
            now = self.ctx.now_ms()
            if self.get(lease.process_id) is None:
                return False
            _fence, holder = proj.get_lease(self._db, lease.process_id)
            events = decide_release(holder, lease, now)
            if events:
                self._append(lease.process_id, events, now)
            return bool(events)

    def get_lease(self, process_id: str) -> ProcessLease | None:
        """The current holder's lease as stored, expired or not; None when free."""
        return self.lease_state(process_id).holder

    def lease_state(self, process_id: str) -> ProcessLeaseState:
        """The lease row: fencing-token counter and holder. UnknownProcess if unregistered."""
        with self._read():
            self._require(process_id)
            fence, holder = proj.get_lease(self._db, process_id)
        return ProcessLeaseState(process_id, fence, holder)

    def _check_completion_lease(self, lease: ProcessLease, now: int) -> list[Any]:
        """The release event for a leased completion; ProcessLeaseExpired unless `lease` is live."""
        _fence, holder = proj.get_lease(self._db, lease.process_id)
        if not lease_is_current(holder, lease, now):
            raise ProcessLeaseExpired(lease.process_id, "a stale or expired lease cannot complete the process")
        return [ProcessLeaseReleased(lease.process_id, lease.lease_token, lease.fencing_token, now)]


__all__ = ["Acquired", "Busy", "ClaimOutcome", "ObservedHolder", "ProcessLeaseCommands", "ProcessLeaseState",
           "decide_claim", "decide_reclaim", "decide_release", "decide_renew", "lease_is_current", "lease_token"]
