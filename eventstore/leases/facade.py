"""Session execution leases with fencing: claim, reclaim, renew, release. `store.leases`.

One lease per session says which process may run it. Each acquisition gets a fencing
token one higher than the last (1 for a new session generation); every write made
under the lease carries the fence, and `require_live_fence` refuses a fence that is no
longer the live one. So a holder that stalled past its expiry, and whose lease was
taken over, cannot write: its fence is stale. docs/concepts.md explains the rules.

Rules (docs/semantics.md §3, laws 16-28):
* live = held (has a token) and `now < expires_at_ms`;
* claim: live and same incarnation -> re-entry (expiry = now + ttl, token, fence and
  claim time kept); live and anyone else -> Busy(holder); otherwise acquire with
  fence + 1. A TTL of 0 yields a lease that is already expired;
* reclaim: a free or expired lease is claimed plainly; a live one is taken only when the
  caller's observation is still current and the holder is proven dead (owners.py);
  anything else is Busy. Commands serialise on the write lock, so of racing reclaims
  exactly one sees its observation current;
* renew needs the same incarnation, token and fence and an unexpired lease, otherwise
  SessionExecutionLeaseExpired; release clears the holder, keeps the fence, and is a
  no-op for a stale fence.

The shared checks later domains call inside their own write transaction are
`require_live_fence(db, fence, now_ms)` and `is_generation_live(state, generation, now_ms)`
/ `live_generation(db, session_id, now_ms)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..checks import derived_token
from ..errors import InvalidArgument, StoreError
from ..facades import register_facade
from .events import (
    LeaseFence,
    SessionExecutionLease,
    SessionLeaseAcquired,
    SessionLeaseReleased,
    SessionLeaseRenewed,
    SessionLeaseState,
)
from .owners import (
    Acquired,
    Busy,
    LeaseOwner,
    LeaseTimings,
    ObservedHolder,
    ProcessStartReader,
    check_observed,
    check_owner,
    definitely_dead,
    holder_matches,
    read_process_start,
)
from ..sessions.events import session_stream
from ..sessions.facade import check_session_id, require_live_generation, require_live_session

if TYPE_CHECKING:
    from ..store import StoreContext
    from .keepalive import SessionLeaseKeepAlive

MAX_TTL_MS = 10 ** 12
"""The longest TTL accepted (about 31 years): keeps now + ttl far inside 64 bits."""

# --- errors and results ----------------------------------------------------------------------


class SessionExecutionLeaseExpired(StoreError):
    """A fence is not the live lease: expired, released, superseded, or never issued.

    Raised by renew and by every fenced write (`require_live_fence`). Nothing was written.
    """

    def __init__(self, fence: LeaseFence, reason: str, what: str = "") -> None:
        self.session_id = fence.session_id
        self.fence = fence
        self.reason = reason
        super().__init__(
            f"session {fence.session_id!r}: {what + ': ' if what else ''}the lease with fencing token "
            f"{fence.fencing_token} of owner {fence.owner.owner_id!r} (incarnation "
            f"{fence.owner.incarnation_id!r}) is not live: {reason}")


ClaimOutcome = Acquired[SessionExecutionLease] | Busy[SessionExecutionLease]
"""`Acquired` and `Busy` are the types process leases return too (defined in owners.py)."""


@attrs.frozen
class ReleaseResult:
    """What `release` did: `released` is False for a stale fence (a no-op, law 19)."""

    session_id: str
    released: bool
    fencing_token: int | None
    """The session's fencing token after the call (kept by a release); None if it has none."""


# --- validation ----------------------------------------------------------------------------


def check_ttl(ttl: Any, what: str = "ttl_ms") -> int:
    """A TTL in ms: an int in [0, MAX_TTL_MS], or the ttl_ms of a LeaseTimings."""
    if isinstance(ttl, LeaseTimings):
        return ttl.ttl_ms
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidArgument(f"{what} must be an integer of milliseconds or a LeaseTimings, got {ttl!r}")
    if not 0 <= ttl <= MAX_TTL_MS:
        raise InvalidArgument(f"{what} must be between 0 and {MAX_TTL_MS} ms, got {ttl}")
    return ttl


def check_fence(fence: Any, what: str = "fence") -> LeaseFence:
    """Validate a LeaseFence argument, naming the field that is wrong."""
    if not isinstance(fence, LeaseFence):
        raise InvalidArgument(f"{what} must be a LeaseFence (lease.fence), got {type(fence).__name__}")
    check_session_id(fence.session_id, f"{what}.session_id")
    check_owner(fence.owner, f"{what}.owner")
    if not isinstance(fence.lease_token, str) or not fence.lease_token:
        raise InvalidArgument(f"{what}.lease_token must be a non-empty string, got {fence.lease_token!r}")
    if isinstance(fence.fencing_token, bool) or not isinstance(fence.fencing_token, int) or fence.fencing_token < 1:
        raise InvalidArgument(f"{what}.fencing_token must be an integer >= 1, got {fence.fencing_token!r}")
    return fence


def _check_observed(observed: Any, session_id: str) -> ObservedHolder:
    seen = check_observed(observed)
    other = getattr(observed, "session_id", session_id)
    if other != session_id:
        raise InvalidArgument(f"session_id {session_id!r}: observed is a lease of session {other!r}, not of the "
                              f"session reclaimed")
    return seen


# --- pure deciders ---------------------------------------------------------------------------


def lease_token(session_id: str, owner: LeaseOwner, now_ms: int, fencing_token: int, generation: int) -> str:
    """The token of a new acquisition: `session:owner:incarnation:now:fence:generation`.

    Opaque to callers. The session generation keeps a recreated session's tokens apart
    from those its previous generation issued with the same fence.
    """
    return derived_token(session_id, owner.owner_id, owner.incarnation_id, now_ms, fencing_token, generation,
                         hashed=False)


def _acquire(state: SessionLeaseState | None, generation: int, session_id: str, owner: LeaseOwner,
             ttl_ms: int, now_ms: int, dead: SessionExecutionLease | None = None,
             dead_start: int | None = None) -> tuple[Acquired[SessionExecutionLease], list[Any]]:
    fence = (state.fencing_token if state is not None else 0) + 1
    token = lease_token(session_id, owner, now_ms, fence, generation)
    lease = SessionExecutionLease(session_id, owner, token, fence, now_ms, now_ms + ttl_ms)
    event = SessionLeaseAcquired(session_id, owner, token, fence, now_ms, now_ms + ttl_ms,
                                 dead.owner if dead else None, dead.fencing_token if dead else None,
                                 dead_start if dead else None)
    return Acquired(lease, False, dead.owner if dead else None), [event]


def decide_claim(state: SessionLeaseState | None, generation: int, session_id: str, owner: LeaseOwner,
                 ttl_ms: int, now_ms: int) -> tuple[ClaimOutcome, list[Any]]:
    """Decide a plain claim (see the module docstring). Pure."""
    live = state.live_holder(now_ms) if state is not None else None
    if live is None:
        return _acquire(state, generation, session_id, owner, ttl_ms, now_ms)
    if live.owner.same_owner(owner):
        renewed = _extended(live, now_ms + ttl_ms)
        return Acquired(renewed, True), [SessionLeaseRenewed(session_id, live.lease_token, live.fencing_token,
                                                             now_ms, now_ms + ttl_ms, True)]
    return Busy(live), []


def decide_reclaim(state: SessionLeaseState | None, generation: int, session_id: str, owner: LeaseOwner,
                   observed: ObservedHolder | SessionExecutionLease, holder_dead: bool, dead_start: int | None,
                   ttl_ms: int, now_ms: int) -> tuple[ClaimOutcome, list[Any]]:
    """Decide a reclaim. Pure: `holder_dead` is the proof the command read from /proc.

    A free or expired lease is claimed plainly. A live lease is taken only when it is
    still the `observed` holder (same owner and incarnation, same fencing token) and its
    holder is proven dead; the fence then goes up by one. Everything else is Busy.
    """
    live = state.live_holder(now_ms) if state is not None else None
    if live is None:
        return decide_claim(state, generation, session_id, owner, ttl_ms, now_ms)
    current = holder_matches(live, ObservedHolder(observed.owner, observed.fencing_token))
    if current and holder_dead:
        return _acquire(state, generation, session_id, owner, ttl_ms, now_ms, live, dead_start)
    return Busy(live), []


def _extended(lease: SessionExecutionLease, expires_at_ms: int) -> SessionExecutionLease:
    """`attrs.evolve(lease, expires_at_ms=...)`, written out (evolve inspects the class's
    fields on every call)."""
    return SessionExecutionLease(lease.session_id, lease.owner, lease.lease_token, lease.fencing_token,
                                 lease.claimed_at_ms, expires_at_ms)


def decide_renew(state: SessionLeaseState | None, fence: LeaseFence, ttl_ms: int,
                 now_ms: int) -> tuple[SessionExecutionLease, list[Any]]:
    """Decide a renew: the extended lease, or SessionExecutionLeaseExpired. Pure."""
    holder = _matching_live_holder(state, fence, now_ms, "renew")
    renewed = _extended(holder, now_ms + ttl_ms)
    return renewed, [SessionLeaseRenewed(fence.session_id, holder.lease_token, holder.fencing_token,
                                         now_ms, now_ms + ttl_ms)]


def decide_release(state: SessionLeaseState | None, fence: LeaseFence, now_ms: int) -> tuple[ReleaseResult, list[Any]]:
    """Decide a release: clear the holder when the fence matches it (expired or not);
    a stale fence is a no-op (idempotent, law 19). Pure."""
    counter = state.fencing_token if state is not None else None
    holder = state.holder if state is not None else None
    if holder is None or not _same_fence(holder, fence):
        return ReleaseResult(fence.session_id, False, counter), []
    return ReleaseResult(fence.session_id, True, counter), [
        SessionLeaseReleased(fence.session_id, holder.lease_token, holder.fencing_token, now_ms)]


def _same_fence(holder: SessionExecutionLease, fence: LeaseFence) -> bool:
    return (holder.owner.same_owner(fence.owner) and holder.lease_token == fence.lease_token
            and holder.fencing_token == fence.fencing_token)


def _matching_live_holder(state: SessionLeaseState | None, fence: LeaseFence, now_ms: int,
                          what: str) -> SessionExecutionLease:
    holder = state.holder if state is not None else None
    if holder is None:
        raise SessionExecutionLeaseExpired(fence, "no lease is held (released, or never claimed)", what)
    if not _same_fence(holder, fence):
        raise SessionExecutionLeaseExpired(
            fence, f"superseded: the lease is now fencing token {holder.fencing_token} held by "
            f"{holder.owner.owner_id!r} (incarnation {holder.owner.incarnation_id!r})", what)
    if not holder.is_live(now_ms):
        raise SessionExecutionLeaseExpired(
            fence, f"expired at {holder.expires_at_ms} ms (now {now_ms} ms)", what)
    return holder


def is_generation_live(state: SessionLeaseState | None, generation: int, now_ms: int) -> bool:
    """Is lease generation `generation` (a fencing token) still live at `now_ms`? Pure.

    A claim stamped with a generation (queue work, turn inputs) is live exactly while the
    session lease has a holder, is unexpired, and its fencing token equals the generation.
    """
    live = state.live_holder(now_ms) if state is not None else None
    return live is not None and live.fencing_token == generation


# --- the shared fence check ---------------------------------------------------------------------


def require_live_fence(db: Any, fence: LeaseFence, now_ms: int, what: str = "") -> SessionExecutionLease:
    """The live lease `fence` names; raises otherwise. Call inside your write transaction.

    Raises SessionNotFound / SessionDeleted when the session is unknown or deleted, and
    SessionExecutionLeaseExpired when the fence (session, owner incarnation, lease token,
    fencing token) is not the live lease at `now_ms`. Read `now_ms` once per command
    from `ctx.now_ms()` and use the same value for the rest of the decision.
    """
    import projections.leases as proj

    check_fence(fence)
    require_live_session(db, fence.session_id, what)
    return _matching_live_holder(proj.get(db, fence.session_id), fence, now_ms, what)


def require_live_holder(db: Any, fence: LeaseFence, now_ms: int, what: str = "") -> SessionExecutionLease:
    """`require_live_fence` for a command that already called `require_live_session` for
    the fence's session in this transaction and validated the fence (`check_fence`): the
    lease check alone, one lookup. Raises SessionExecutionLeaseExpired."""
    import projections.leases as proj

    return _matching_live_holder(proj.get(db, fence.session_id), fence, now_ms, what)


def check_live_holder(db: Any, fence: LeaseFence, now_ms: int, what: str = "") -> None:
    """`require_live_holder` for a command that needs no lease value back: the same check
    and errors, the row compared as read (the lease objects are built only to raise)."""
    import projections.leases as proj

    r = proj.holder(db, fence.session_id)
    owner = fence.owner
    if (r is not None and r[0] == owner.owner_id and r[1] == owner.incarnation_id and r[2] == fence.lease_token
            and r[3] == fence.fencing_token and r[4] is not None and now_ms < r[4]):
        return
    require_live_holder(db, fence, now_ms, what)  # not the live holder: raises, saying why


def live_generation(db: Any, session_id: str, now_ms: int) -> int | None:
    """The fencing token of the session's live lease at `now_ms`, or None (one lookup)."""
    import projections.leases as proj

    return proj.live_generation(db, session_id, now_ms)


# --- the facade ------------------------------------------------------------------------------


class Leases:
    """`store.leases`: session execution leases. Commands refuse on time-travel views.

    `read_process_start` is the /proc reader reclaim uses to prove a holder dead; set it
    on the facade (`store.leases.read_process_start = fake`) to test without real processes.
    """

    def __init__(self, ctx: StoreContext, read_process_start: ProcessStartReader = read_process_start) -> None:
        self.ctx = ctx
        self.read_process_start: ProcessStartReader = read_process_start

    def _state(self, session_id: str) -> SessionLeaseState | None:
        import projections.leases as proj

        self.ctx.require_fresh("leases")
        return proj.get(self.ctx.db, session_id)

    def _session(self, session_id: str, what: str) -> int:
        """The live session's generation (SessionNotFound / SessionDeleted otherwise)."""
        self.ctx.require_fresh("sessions")
        return require_live_generation(self.ctx.db, session_id, what)

    def _session_and_state(self, session_id: str, what: str) -> tuple[int, SessionLeaseState | None]:
        """(the live session's generation, its lease state): `_session` then `_state`, the
        same checks and errors, from one read of both rows."""
        import projections.leases as lease_proj

        ctx = self.ctx
        ctx.require_fresh("sessions")
        row = lease_proj.session_and_lease(ctx.db, session_id)
        if row is None or row[0] != "active":
            require_live_generation(ctx.db, session_id, what)  # raises SessionNotFound / SessionDeleted
        ctx.require_fresh("leases")
        assert row is not None  # the check above raised otherwise
        return row[1], lease_proj.state_of(row)

    def _append(self, session_id: str, events: list[Any], now: int) -> None:
        if events:
            self.ctx.append(session_stream(session_id), events, now_ms=now)

    # --- commands ---

    def claim(self, session_id: str, owner: LeaseOwner,
              ttl_ms: int | LeaseTimings = LeaseTimings()) -> ClaimOutcome:
        """Claim the session's lease for `ttl_ms` (default 30 s): Acquired or Busy(holder).

        Raises SessionNotFound / SessionDeleted for an unknown or deleted session.
        """
        self.ctx.require_writable("leases.claim")
        check_session_id(session_id)
        check_owner(owner)
        ttl = check_ttl(ttl_ms)
        # BEGIN IMMEDIATE: decide under the write lock. A closure of the write path: it
        # decides everything from what it reads (StoreContext.run_command).
        return self.ctx.run_command(lambda: self._claim(session_id, owner, ttl))

    def _claim(self, session_id: str, owner: LeaseOwner, ttl: int) -> ClaimOutcome:
        now = self.ctx.now_ms()
        generation, state = self._session_and_state(session_id, "leases.claim")
        outcome, events = decide_claim(state, generation, session_id, owner, ttl, now)
        self._append(session_id, events, now)
        return outcome

    def reclaim(self, session_id: str, owner: LeaseOwner, observed: ObservedHolder | SessionExecutionLease,
                ttl_ms: int | LeaseTimings = LeaseTimings()) -> ClaimOutcome:
        """Take the lease from a holder proven dead: Acquired, or Busy(holder).

        `observed` is the holder you saw: its owner and fencing token, as an
        `ObservedHolder` or any lease value (from `get`). If the lease changed since, or
        the holder is not proven dead (another host or boot, an opaque owner, a process
        that is still there), the answer is Busy. A free or expired lease is claimed.
        """
        self.ctx.require_writable("leases.reclaim")
        check_session_id(session_id)
        check_owner(owner)
        observed = _check_observed(observed, session_id)
        ttl = check_ttl(ttl_ms)
        with self.ctx.command():
            now = self.ctx.now_ms()
            generation = self._session(session_id, "leases.reclaim")
            state = self._state(session_id)
            live = state.live_holder(now) if state is not None else None
            dead, seen = False, None
            if live is not None:
                # The proof is read here, on the command side, under the write lock: the
                # holder it is about cannot change before the decision is recorded.
                dead, seen = _prove_dead(live.owner, owner, self.read_process_start)
            outcome, events = decide_reclaim(state, generation, session_id, owner, observed,
                                             dead, seen, ttl, now)
            self._append(session_id, events, now)
        return outcome

    def renew(self, fence: LeaseFence, ttl_ms: int | LeaseTimings = LeaseTimings()) -> SessionExecutionLease:
        """Extend a live lease to now + ttl. A stale or expired fence raises
        SessionExecutionLeaseExpired: an expired lease cannot be renewed back to life."""
        self.ctx.require_writable("leases.renew")
        check_fence(fence)
        ttl = check_ttl(ttl_ms)
        return self.ctx.run_command(lambda: self._renew(fence, ttl))

    def _renew(self, fence: LeaseFence, ttl: int) -> SessionExecutionLease:
        now = self.ctx.now_ms()
        _generation, state = self._session_and_state(fence.session_id, "leases.renew")
        lease, events = decide_renew(state, fence, ttl, now)
        self._append(fence.session_id, events, now)
        return lease

    def release(self, fence: LeaseFence) -> ReleaseResult:
        """Release the lease `fence` names: the holder is cleared, the fencing token kept.

        A stale fence (released already, or superseded) is a no-op: `released` is False.
        """
        self.ctx.require_writable("leases.release")
        check_fence(fence)
        return self.ctx.run_command(lambda: self._release(fence))

    def _release(self, fence: LeaseFence) -> ReleaseResult:
        now = self.ctx.now_ms()
        _generation, state = self._session_and_state(fence.session_id, "leases.release")
        result, events = decide_release(state, fence, now)
        self._append(fence.session_id, events, now)
        return result

    def keep_alive(self, lease: SessionExecutionLease,
                   timings: LeaseTimings = LeaseTimings()) -> "SessionLeaseKeepAlive":
        """Renew `lease` in the background every `timings.renew_every_ms` until stopped,
        released or lost (lease_keepalive.py); use it as a context manager to stop it."""
        from .keepalive import SessionLeaseKeepAlive

        self.ctx.require_writable("leases.keep_alive")
        if not isinstance(lease, SessionExecutionLease):
            raise InvalidArgument(f"lease must be the SessionExecutionLease you hold, got {type(lease).__name__}")
        check_fence(lease.fence, "lease")
        if not isinstance(timings, LeaseTimings):
            raise InvalidArgument(f"timings must be a LeaseTimings, got {type(timings).__name__}")
        return SessionLeaseKeepAlive(self, lease, timings)

    # --- reads ---

    def get(self, session_id: str) -> SessionLeaseState | None:
        """The session's lease row (fencing token and holder, live or expired), or None
        when the session never had a lease in its current generation."""
        check_session_id(session_id)
        return self._state(session_id)

    def list(self, session_id: str | None = None) -> list[SessionLeaseState]:
        """Every session's lease row, ordered by session id (or just `session_id`'s)."""
        import projections.leases as proj

        if session_id is not None:
            check_session_id(session_id)
        self.ctx.require_fresh("leases")
        return proj.list_states(self.ctx.db, session_id)


def _prove_dead(holder: LeaseOwner, claimant: LeaseOwner, reader: ProcessStartReader) -> tuple[bool, int | None]:
    """(proven dead?, what /proc showed for the holder's pid) via owners.definitely_dead."""
    seen: list[int | None] = []

    def reading(pid: int) -> int | None:
        value = reader(pid)
        seen.append(value)
        return value

    dead = definitely_dead(holder, claimant, reading)
    return dead, (seen[0] if dead and seen else None)


register_facade("leases", Leases)


__all__ = [
    "Acquired",
    "Busy",
    "ClaimOutcome",
    "ObservedHolder",
    "LeaseFence",
    "Leases",
    "ReleaseResult",
    "SessionExecutionLease",
    "SessionExecutionLeaseExpired",
    "SessionLeaseState",
    "check_fence",
    "check_live_holder",
    "check_ttl",
    "decide_claim",
    "decide_reclaim",
    "decide_release",
    "decide_renew",
    "is_generation_live",
    "lease_token",
    "live_generation",
    "require_live_fence",
    "require_live_holder",
]
