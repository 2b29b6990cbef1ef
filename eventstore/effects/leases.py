"""The effect journal's errors, lease records and pure deciders.

`decide_begin` answers "may this caller run the effect?": replay a finished entry, wait
for a live holder, take over an expired (or provably dead) holder, or claim a new entry.
`decide_renew` and `decide_finish` check that a lease is still held: same token, still
in progress, and not expired by the injected clock. All are pure functions of
(entry, request, now); the facade reads the clock and the liveness proof.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..checks import check_text as _check_text
from ..checks import derived_token
from ..errors import StoreError
from .envelopes import structural_diff
from .events import EffectCompleted, EffectFailureRecorded, EffectLeaseRenewed, EffectStarted, EffectTakenOver
from ..leases.owners import LeaseOwner, LeaseTimings

MAX_SCOPE = 400  # the stream name `effect:<scope>` must stay under the log's 512-byte limit
MAX_KEY = 1024

# --- errors --------------------------------------------------------------------------


class EffectError(StoreError):
    """Base class of the effect journal's errors."""

    def __init__(self, message: str, scope: str, replay_key: str) -> None:
        self.scope = scope
        self.replay_key = replay_key
        super().__init__(message)


class EffectMismatch(EffectError):
    """The replay key was journaled with a different request envelope (or effect kind)."""

    def __init__(self, scope: str, replay_key: str, differences: list[str]) -> None:
        self.differences = tuple(differences)
        shown = "; ".join(differences) or "the envelopes hash differently"
        super().__init__(f"effect {replay_key!r} in scope {scope!r} was journaled with a different request "
                         f"(recorded != requested): {shown}", scope, replay_key)


class EffectLeaseLost(EffectError):
    """The caller no longer holds the effect's lease: it expired, was taken over, or the
    effect already finished. Nothing was recorded."""

    def __init__(self, scope: str, replay_key: str, lease_token: str, reason: str) -> None:
        self.lease_token = lease_token
        self.reason = reason
        super().__init__(f"effect {replay_key!r} in scope {scope!r}: lease lost ({reason}); "
                         f"the outcome was not recorded", scope, replay_key)


class EffectReplayMissing(EffectError):
    """Strict replay found no journal entry for the key: the run asked for an effect (or an
    await) the recorded run never journaled, so it has diverged. Nothing was written."""

    def __init__(self, scope: str, replay_key: str, detail: str = "nothing was journaled under this key") -> None:
        super().__init__(f"strict replay: effect {replay_key!r} in scope {scope!r}: {detail}", scope, replay_key)


class EffectBusy(EffectError):
    """Another owner held the effect's live lease for longer than the caller would wait."""

    def __init__(self, scope: str, replay_key: str, holder: LeaseOwner | None, expires_at_ms: int | None,
                 waited_s: float) -> None:
        self.holder = holder
        self.expires_at_ms = expires_at_ms
        who = f"{holder.owner_id}/{holder.incarnation_id}" if holder else "another owner"
        super().__init__(f"effect {replay_key!r} in scope {scope!r} is in progress under {who}'s lease "
                         f"(expires at {expires_at_ms}); gave up after waiting {waited_s:.1f}s", scope, replay_key)


class EffectFailed(EffectError):
    """The effect raised. Raised on the first call (chained to the original exception) and
    on every replay, with the recorded error type and message."""

    def __init__(self, scope: str, replay_key: str, error_type: str, error_message: str, replayed: bool) -> None:
        self.error_type = error_type
        self.error_message = error_message
        self.replayed = replayed
        super().__init__(f"effect {replay_key!r} in scope {scope!r} failed: {error_type}: {error_message}"
                         + (" (replayed from the journal)" if replayed else ""), scope, replay_key)


OUTCOME_NOT_JOURNALED = "eventstore.EffectOutcomeNotJournaled"
"""The error type journaled for an effect that ran but returned a value the journal cannot hold."""


class EffectOutcomeNotJournaled(EffectFailed):
    """The effect ran and returned, but its return value is not JSON-like (a set, an
    object), so it could not be journaled. The entry records that (not as an error of the
    function) and every replay raises this again: nothing is run twice behind the caller's
    back. Fix the function, then `store.effects.forget(scope, replay_key)` to run it anew."""

    def __init__(self, scope: str, replay_key: str, detail: str, replayed: bool) -> None:
        self.error_type = OUTCOME_NOT_JOURNALED
        self.error_message = detail
        self.replayed = replayed
        EffectError.__init__(
            self, f"effect {replay_key!r} in scope {scope!r} ran, but its return value could not be "
            f"journaled ({detail})" + (" (replayed from the journal)" if replayed else "")
            + f"; return JSON-like values, then call store.effects.forget({scope!r}, {replay_key!r}) "
            "to let the next call run it again", scope, replay_key)


class EffectNotFinished(EffectError):
    """`forget` was asked for an entry that is still in progress or waiting."""


# --- records -------------------------------------------------------------------------


@attrs.frozen
class EffectLease:
    """The right to run and finish one effect: proof is the token, checked at finish."""

    scope: str
    replay_key: str
    kind: str
    owner: LeaseOwner
    lease_token: str
    expires_at_ms: int
    attempt: int
    due_at_ms: int | None = None


@attrs.frozen
class BeginOutcome:
    """What `Effects.begin` decided.

    status 'claimed': run the effect and finish it with `lease` (`taken_over` tells
    whether an earlier attempt was abandoned); 'replay': `entry` is finished, use its
    outcome or error; 'busy': another owner holds a live lease on `entry`.
    """

    status: str
    lease: EffectLease | None = None
    entry: Any = None
    taken_over: bool = False


# --- validation ----------------------------------------------------------------------


def check_text(value: Any, what: str, max_len: int) -> str:
    """A non-empty string without NUL, at most `max_len` UTF-8 bytes."""
    return _check_text(value, what, max_len, allow_nul=False)


def check_scope_key(scope: Any, replay_key: Any) -> None:
    """Validate an effect's scope and replay key."""
    check_text(scope, "scope", MAX_SCOPE)
    check_text(replay_key, "replay_key", MAX_KEY)


def lease_token(scope: str, replay_key: str, owner: LeaseOwner, now: int, attempt: int) -> str:
    """A deterministic token for one attempt of one owner."""
    return derived_token(scope, replay_key, owner.owner_id, owner.incarnation_id, now, attempt, sep="\x00",
                         prefix="efl-", length=32)


# --- deciders ------------------------------------------------------------------------


def check_matches(entry: Any, scope: str, replay_key: str, kind: str, envelope: Any, envelope_hash: str) -> None:
    """Raise EffectMismatch when the journaled entry has another kind or envelope."""
    if entry.kind != kind:
        raise EffectMismatch(scope, replay_key, [f"$: journaled as a {entry.kind}, requested as a {kind}"])
    if entry.envelope_hash != envelope_hash:
        raise EffectMismatch(scope, replay_key, structural_diff(entry.envelope, envelope))


def decide_begin(entry: Any, scope: str, replay_key: str, kind: str, envelope: Any, envelope_hash: str,
                 owner: LeaseOwner, timings: LeaseTimings, now: int, strict: bool, holder_dead: bool,
                 due_at_ms: int | None) -> tuple[BeginOutcome, list[Any]]:
    """Decide whether `owner` replays, waits, takes over or claims the effect.

    `strict` (strict replay) only refuses a missing entry: an entry in progress is part
    of the recorded run and is waited for or taken over exactly as in normal mode."""
    if entry is None:
        if strict:
            raise EffectReplayMissing(scope, replay_key)
        token = lease_token(scope, replay_key, owner, now, 1)
        expires = now + timings.ttl_ms
        lease = EffectLease(scope, replay_key, kind, owner, token, expires, 1, due_at_ms)
        ev: EffectStarted | EffectTakenOver = EffectStarted(scope, replay_key, kind, envelope, envelope_hash,
                                                            owner, token, expires, 1, due_at_ms, now)
        return BeginOutcome("claimed", lease=lease), [ev]
    check_matches(entry, scope, replay_key, kind, envelope, envelope_hash)
    if entry.status in ("completed", "failed"):
        return BeginOutcome("replay", entry=entry), []
    live = entry.lease_expires_at_ms is not None and entry.lease_expires_at_ms > now
    if live and not holder_dead:
        return BeginOutcome("busy", entry=entry), []
    attempt = entry.attempts + 1
    token = lease_token(scope, replay_key, owner, now, attempt)
    expires = now + timings.ttl_ms
    # A sleep keeps its original due time: the successor sleeps only what is left of it.
    lease = EffectLease(scope, replay_key, kind, owner, token, expires, attempt, entry.due_at_ms)
    ev = EffectTakenOver(scope, replay_key, entry.holder, entry.lease_token, owner, token, expires, attempt,
                         "expired" if not live else "holder_dead", now)
    return BeginOutcome("claimed", lease=lease, entry=entry, taken_over=True), [ev]


def _require_held(entry: Any, lease: EffectLease, now: int) -> None:
    """Raise EffectLeaseLost unless `lease` is still the live lease of an in-progress entry."""
    s, k, t = lease.scope, lease.replay_key, lease.lease_token
    if entry is None:
        raise EffectLeaseLost(s, k, t, "no such effect in the journal")
    if entry.status != "in_progress":
        raise EffectLeaseLost(s, k, t, f"the effect is already {entry.status}")
    if entry.lease_token != t or entry.holder is None or not entry.holder.same_owner(lease.owner):
        who = entry.holder.owner_id if entry.holder else "?"
        raise EffectLeaseLost(s, k, t, f"taken over by {who} (attempt {entry.attempts})")
    if entry.lease_expires_at_ms <= now:
        raise EffectLeaseLost(s, k, t, f"expired at {entry.lease_expires_at_ms}, now is {now}")


def decide_renew(entry: Any, lease: EffectLease, timings: LeaseTimings, now: int) -> tuple[EffectLease, list[Any]]:
    """Push the lease's expiry to now + ttl, if it is still held."""
    _require_held(entry, lease, now)
    expires = now + timings.ttl_ms
    ev = EffectLeaseRenewed(lease.scope, lease.replay_key, lease.lease_token, expires, now)
    return attrs.evolve(lease, expires_at_ms=expires), [ev]


def decide_complete(entry: Any, lease: EffectLease, outcome: Any, now: int) -> list[Any]:
    """Record the outcome, if the lease is still held."""
    _require_held(entry, lease, now)
    return [EffectCompleted(lease.scope, lease.replay_key, lease.lease_token, outcome, now)]


def decide_fail(entry: Any, lease: EffectLease, error_type: str, message: str, now: int) -> list[Any]:
    """Record the error, if the lease is still held."""
    _require_held(entry, lease, now)
    return [EffectFailureRecorded(lease.scope, lease.replay_key, lease.lease_token, error_type, message, now)]
