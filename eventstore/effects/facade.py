"""`store.effects`: the effect replay journal.

Every side effect of an agent run (a model call, a tool call, a sleep, an awaited
external event) is journaled under (scope, replay key), so that the run can be
replayed for debugging without repeating what it already did::

    @store.effects.journaled(scope="run-42", key="weather:{city}")
    def get_weather(city: str) -> dict:
        return weather_api(city)           # runs once; later calls replay the outcome

    with store.effects.strict_replay():    # a key the journal lacks is an error
        get_weather("Paris")

First call: the entry is recorded in progress under a lease (`effect.started`), the
function runs while a background thread renews the lease, and the outcome or error is
recorded only if the lease is still held (else EffectLeaseLost). Later calls replay.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import time
import uuid
import builtins
from typing import TYPE_CHECKING, Any, Callable, cast, Iterator, ParamSpec, TypeVar

import attrs

from ..checks import check_int
from ..errors import InvalidArgument
from ..facades import register_facade
from .awaits import (  # noqa: F401  (re-exported)
    AwaitResolution,
    AwaitSessionRevoked,
    AwaitsMixin,
    AwaitTimeout,
    AwaitTokenInvalid,
    RevocationReport,
)
from .envelopes import digest, json_value
from .events import EffectForgotten, effect_stream
from .renewal import SCHEDULER
from .leases import (  # noqa: F401  (re-exported)
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
    check_scope_key,
    decide_begin,
    decide_complete,
    decide_fail,
    decide_renew,
)
from ..leases.owners import LeaseOwner, LeaseTimings, check_owner, definitely_dead, this_process

if TYPE_CHECKING:
    from ..store import StoreContext
    from projections.effects import ScopeSummary

_R = TypeVar("_R")
_P = ParamSpec("_P")

__all__ = [
    "AwaitResolution", "AwaitSessionRevoked", "AwaitTimeout", "AwaitTokenInvalid", "BeginOutcome", "EffectBusy",
    "EffectError", "EffectFailed", "EffectLease", "EffectLeaseLost", "EffectMismatch", "EffectNotFinished",
    "EffectOptions", "EffectOutcomeNotJournaled", "EffectReplayMissing", "Effects", "RevocationReport",
]


MAX_ERROR_TYPE = 256
"""The longest error type name `fail` records (a class name, not a message)."""

ENTRY_STATUSES = ("in_progress", "completed", "failed", "waiting", "cancelled")
"""The statuses `list(status=...)` filters on."""


@attrs.frozen
class EffectOptions:
    """How a facade runs effects (set with `store.effects.configure(...)`)."""

    owner: LeaseOwner | None = None
    """The lease owner of this facade's effects (default: this process, a new incarnation)."""
    timings: LeaseTimings = LeaseTimings()
    wait_timeout_s: float = 60.0
    """How long a call waits for another owner's in-progress effect (or an await) before giving up."""
    poll_interval_s: float = 0.25
    """The longest pause between two polls while waiting."""
    sleep: Callable[[float], None] = time.sleep
    """How waiting pauses (tests inject one that advances a ManualClock)."""


def _projection() -> Any:
    from projections import effects as p

    return p


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class Effects(AwaitsMixin):
    """The effect replay journal facade (`store.effects`)."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self.options = EffectOptions()
        self._default_owner: LeaseOwner | None = None
        self._strict_mode = contextvars.ContextVar(f"effects-strict-{id(self)}", default=False)

    # --- configuration -----------------------------------------------------------

    def configure(self, **changes: Any) -> EffectOptions:
        """Change options (owner, timings, wait_timeout_s, poll_interval_s, sleep); returns them."""
        bad = set(changes) - {f.name for f in attrs.fields(EffectOptions)}
        if bad:
            raise InvalidArgument(f"configure: unknown option(s) {sorted(bad)}")
        options = attrs.evolve(self.options, **changes)
        if options.owner is not None:
            check_owner(options.owner, "owner")
        if not isinstance(options.timings, LeaseTimings):
            raise InvalidArgument(f"timings must be a LeaseTimings, got {type(options.timings).__name__}")
        for name in ("wait_timeout_s", "poll_interval_s"):
            value = getattr(options, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidArgument(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not callable(options.sleep):
            raise InvalidArgument("sleep must be a callable taking seconds")
        self.options = options
        return options

    @property
    def owner(self) -> LeaseOwner:
        """The owner this facade's leases are taken for."""
        if self.options.owner is not None:
            return self.options.owner
        if self._default_owner is None:
            self._default_owner = this_process("effects", uuid.uuid4().hex)
        return self._default_owner

    @contextlib.contextmanager
    def strict_replay(self) -> Iterator[None]:
        """Within this block (this thread or task only), every effect must be in the
        journal: a key with no entry raises EffectReplayMissing and nothing runs. An entry
        still in progress is waited for, or taken over once its lease expired, as outside
        the block (on a read-only time-travel view that raises ReadOnlyView instead)."""
        token = self._strict_mode.set(True)
        try:
            yield
        finally:
            self._strict_mode.reset(token)

    def _strict(self) -> bool:
        return self._strict_mode.get()

    def _sleep(self, seconds: float) -> None:
        self.options.sleep(seconds)

    def _projection(self) -> Any:
        return _projection()

    # --- the lease protocol (low level) ------------------------------------------

    def begin(self, scope: str, replay_key: str, request: Any, *, kind: str = "call",
              duration_ms: int | None = None, owner: LeaseOwner | None = None) -> BeginOutcome:
        """Claim, take over, replay or report busy for one effect, without running it.

        `request` is the JSON-like envelope; `kind` is 'call' or 'sleep' (a sleep needs
        `duration_ms`, and its due time is now + duration_ms). See BeginOutcome.
        """
        return self._begin(scope, replay_key, request, kind, duration_ms, owner, False)

    def _begin(self, scope: str, replay_key: str, request: Any, kind: str, duration_ms: int | None,
               owner: LeaseOwner | None, light: bool) -> BeginOutcome:
        """begin(); with `light`, a replay carries the projection's FinishedEffect (outcome or
        error, due time) instead of the whole entry, which is all call() and sleep() need."""
        check_scope_key(scope, replay_key)
        if kind not in ("call", "sleep"):
            raise InvalidArgument(f"kind must be 'call' or 'sleep', got {kind!r}")
        if kind == "sleep" and (isinstance(duration_ms, bool) or not isinstance(duration_ms, int)
                                or duration_ms < 0):
            raise InvalidArgument(f"a sleep needs duration_ms, an integer >= 0, got {duration_ms!r}")
        if duration_ms is not None and (isinstance(duration_ms, bool) or not isinstance(duration_ms, int)
                                        or not 0 <= duration_ms < 2 ** 62):
            raise InvalidArgument(f"duration_ms must be None or an integer >= 0 (milliseconds), got {duration_ms!r}")
        owner = check_owner(owner, "owner") if owner is not None else self.owner
        envelope = json_value(request, "$", "request")
        env_hash = digest(envelope)
        p = _projection()
        strict = self._strict()
        self.ctx.require_fresh("effects")
        # A finished entry never changes again, so it is replayed from a plain read,
        # without the write lock; a strict replay's missing entry is refused without one too.
        finished = p.get_finished(self.ctx.db, scope, replay_key)
        if finished is not None and finished.kind == kind and finished.envelope_hash == env_hash:
            return BeginOutcome("replay", entry=finished if light else p.get_entry(self.ctx.db, scope, replay_key))
        entry = p.get_entry(self.ctx.db, scope, replay_key)
        if finished is not None or (strict and entry is None):  # a mismatch, or missing: decide_begin raises
            outcome, _events = decide_begin(entry, scope, replay_key, kind, envelope, env_hash, owner,
                                            self.options.timings, self.ctx.now_ms(), strict, False, None)
            return outcome
        self.ctx.require_writable("effects.begin")
        with self.ctx.transaction():  # BEGIN IMMEDIATE: one claimant wins, the others see its lease
            now = self.ctx.now_ms()
            entry = p.get_entry(self.ctx.db, scope, replay_key)
            dead = False
            if (entry is not None and entry.status == "in_progress" and entry.holder is not None
                    and entry.lease_expires_at_ms > now and not entry.holder.same_owner(owner)):
                dead = definitely_dead(entry.holder, owner)  # the liveness proof: command side only
            due = now + duration_ms if kind == "sleep" and duration_ms is not None else None  # checked above
            # `strict` again: under the lock the entry is read afresh, and strict replay still
            # never claims a key the journal lacks (entries are never deleted, so this is
            # the case above; it keeps the rule in one place, decide_begin).
            outcome, events = decide_begin(entry, scope, replay_key, kind, envelope, env_hash, owner,
                                           self.options.timings, now, strict, dead, due)
            if events:
                self.ctx.append(effect_stream(scope), events, now_ms=now)
        return outcome

    def renew(self, lease: EffectLease) -> EffectLease:
        """Push the lease's expiry to now + ttl; EffectLeaseLost if it is no longer held."""
        return self._finish(lease, "effects.renew", lambda entry, now: decide_renew(entry, lease,
                                                                                   self.options.timings, now))

    def complete(self, lease: EffectLease, outcome: Any) -> Any:
        """Record the JSON-like outcome under a held lease; returns the finished entry."""
        value = json_value(outcome, "$", "outcome")
        self._finish(lease, "effects.complete", lambda entry, now: (None, decide_complete(entry, lease, value, now)))
        return self.get(lease.scope, lease.replay_key)

    def fail(self, lease: EffectLease, error_type: str, message: str) -> Any:
        """Record an error under a held lease; returns the finished entry."""
        if not isinstance(error_type, str) or not error_type or len(error_type) > MAX_ERROR_TYPE:
            raise InvalidArgument(f"fail: error_type must be a non-empty string of at most {MAX_ERROR_TYPE} "
                                  f"characters, got {error_type!r}"[:300])
        if not isinstance(message, str):
            raise InvalidArgument(f"fail: message must be a string, got {type(message).__name__}")
        self._finish(lease, "effects.fail",
                     lambda entry, now: (None, decide_fail(entry, lease, error_type, message, now)))
        return self.get(lease.scope, lease.replay_key)

    def _finish(self, lease: EffectLease, what: str, decide: Callable[[Any, int], tuple[_R, list[Any]]]) -> _R:
        if not isinstance(lease, EffectLease):
            raise InvalidArgument(f"{what}: lease must be an EffectLease, got {type(lease).__name__}")
        self.ctx.require_writable(what)
        with self.ctx.transaction():  # the lease check and the record are one atomic step
            now = self.ctx.now_ms()
            self.ctx.require_fresh("effects")
            entry = _projection().get_entry(self.ctx.db, lease.scope, lease.replay_key)
            result, events = decide(entry, now)
            self.ctx.append(effect_stream(lease.scope), events, now_ms=now)
        return result

    # --- running effects ---------------------------------------------------------

    def call(self, scope: str, replay_key: str, request: Any, fn: Callable[[], Any], *,
             owner: LeaseOwner | None = None) -> Any:
        """Run `fn()` once as the journaled effect (scope, replay_key), or replay it.

        Returns the JSON-like outcome (the same value on the first call and on every
        replay). If `fn` raises, the error is journaled and EffectFailed is raised (now
        and on every replay). A different `request` under the same key raises
        EffectMismatch; another owner's live in-progress call is waited for.
        """
        if not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
        began = self._begin_waiting(scope, replay_key, request, "call", None, owner)
        if began.status == "replay":
            return self._replay(began.entry)
        assert began.lease is not None  # not a replay, so a claim, which carries its lease
        return self._run(began.lease, fn)

    def sleep(self, scope: str, replay_key: str, duration_ms: int, *, owner: LeaseOwner | None = None) -> int:
        """A journaled sleep: the first call records its due time and sleeps until then; a
        replay waits only until that recorded due time (usually not at all). Returns it."""
        began = self._begin_waiting(scope, replay_key, {"duration_ms": duration_ms}, "sleep", duration_ms, owner)
        if began.status == "replay":
            self._replay(began.entry)
            self._wait_until(began.entry.due_at_ms)
            return cast("int", began.entry.due_at_ms)
        lease = began.lease
        assert lease is not None and lease.due_at_ms is not None  # a claimed sleep carries its due time
        due = lease.due_at_ms
        timings = self.options.timings

        def wait() -> int:
            # The sleeping thread renews the lease itself (it has nothing else to do), in
            # slices no longer than the renew interval, so no background thread is needed.
            current, renewed_at = lease, lease.expires_at_ms - timings.ttl_ms
            while True:
                now = self.ctx.now_ms()
                if now >= due:
                    return due
                if now - renewed_at >= timings.renew_every_ms:
                    current, renewed_at = self.renew(current), now
                self._sleep(min(due - now, timings.renew_every_ms) / 1000)

        return cast("int", self._run(lease, wait, renew_in_background=False))

    def journaled(self, scope: str | Callable[..., str], key: str | Callable[..., str], *,
                  name: str | None = None,
                  exclude: tuple[str, ...] = ("self", "cls")) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
        """Decorator: every call of the function becomes a journaled effect.

        `scope` and `key` are format templates over the call's arguments
        (`"weather:{city}"`) or callables taking the same arguments. The request
        envelope is `{"effect": name, "arguments": {...}}` (default name: the function's
        qualified name; parameters in `exclude` are left out), so a changed argument
        shows in a mismatch as `$.arguments.<name>`.
        """

        def deco(fn: Callable[_P, Any]) -> Callable[_P, Any]:
            sig = inspect.signature(fn)
            effect_name = name or fn.__qualname__

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    bound = sig.bind(*args, **kwargs)
                except TypeError as exc:
                    raise InvalidArgument(f"{effect_name}: {exc}") from None
                bound.apply_defaults()
                arguments = {k: v for k, v in bound.arguments.items() if k not in exclude}
                s = _render(scope, "scope", effect_name, bound.arguments, args, kwargs)
                k = _render(key, "key", effect_name, bound.arguments, args, kwargs)
                request = {"effect": effect_name, "arguments": arguments}
                return self.call(s, k, request, lambda: fn(*args, **kwargs))

            wrapper.effect_name = effect_name  # type: ignore[attr-defined]
            return wrapper

        return deco

    def _begin_waiting(self, scope: str, replay_key: str, request: Any, kind: str, duration_ms: int | None,
                       owner: LeaseOwner | None) -> BeginOutcome:
        """begin(), polling while another owner's live lease holds the entry (bounded)."""
        started = time.monotonic()
        delay = 0.005
        while True:
            began = self._begin(scope, replay_key, request, kind, duration_ms, owner, True)
            if began.status != "busy":
                return began
            waited = time.monotonic() - started
            limit = self.options.wait_timeout_s
            if waited >= limit:
                raise EffectBusy(scope, replay_key, began.entry.holder, began.entry.lease_expires_at_ms, waited)
            self._sleep(min(delay, limit - waited))
            delay = min(delay * 2, self.options.poll_interval_s)

    def _replay(self, entry: Any) -> Any:
        if entry.status == "failed" and entry.error_type == OUTCOME_NOT_JOURNALED:
            raise EffectOutcomeNotJournaled(entry.scope, entry.replay_key, entry.error_message, True)
        if entry.status == "failed":
            raise EffectFailed(entry.scope, entry.replay_key, entry.error_type, entry.error_message, True)
        return entry.outcome

    def _run(self, lease: EffectLease, fn: Callable[[], Any], renew_in_background: bool = True) -> Any:
        slot = SCHEDULER.add(self, lease) if renew_in_background and self._can_renew() else None
        try:
            try:
                value = fn()
            finally:
                if slot is not None:
                    SCHEDULER.remove(slot)  # before finishing: no renewal may land after the outcome
        except Exception as exc:
            etype, message = _error_type(exc), str(exc)
            self.fail(lease, etype, message)
            raise EffectFailed(lease.scope, lease.replay_key, etype, message, False) from exc
        # BaseException (KeyboardInterrupt, SystemExit) is not journaled: the entry stays in
        # progress, its lease expires, and a successor takes it over, as after a crash.
        try:
            outcome = json_value(value, "$", "outcome")
        except InvalidArgument as bad:
            # The effect has run: recording it as not replayable (rather than leaving it in
            # progress, which a successor would take over and run again) keeps "at most
            # once" unless the caller chooses otherwise with forget().
            self.fail(lease, OUTCOME_NOT_JOURNALED, str(bad))
            raise EffectOutcomeNotJournaled(lease.scope, lease.replay_key, str(bad), False) from bad
        # _finish rather than complete(): the caller needs the outcome, not a re-read entry.
        self._finish(lease, "effects.complete", lambda entry, now: (None, decide_complete(entry, lease, outcome, now)))
        return outcome

    def _can_renew(self) -> bool:
        # Renewal runs on its own connection (see effect_renewal), so it needs a file; an
        # in-memory store has one connection and is not renewed.
        return not self.ctx.readonly and self.ctx.path != ":memory:"

    def _wait_until(self, due_ms: int | None) -> None:
        """Pause until the store clock reaches `due_ms`."""
        if due_ms is None:
            return
        while True:
            now = self.ctx.now_ms()
            if now >= due_ms:
                return
            self._sleep(min((due_ms - now) / 1000, self.options.poll_interval_s))

    def forget(self, scope: str, replay_key: str) -> bool:
        """Remove a finished (completed or failed) entry, so that the next call runs the
        effect again; True when an entry was forgotten, False when there was none.

        The way out of an entry that replays a failure forever (EffectOutcomeNotJournaled,
        or an error fixed since): the effect will run a second time. EffectNotFinished for
        an entry in progress or waiting (its holder may still be running it).
        """
        check_scope_key(scope, replay_key)
        self.ctx.require_writable("effects.forget")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self.ctx.require_fresh("effects")
            entry = _projection().get_entry(self.ctx.db, scope, replay_key)
            if entry is None:
                return False
            if entry.status not in ("completed", "failed"):
                raise EffectNotFinished(f"effect {replay_key!r} in scope {scope!r} is {entry.status}: only a "
                                        "completed or failed entry can be forgotten", scope, replay_key)
            self.ctx.append(effect_stream(scope), [EffectForgotten(scope, replay_key, entry.status,
                                                                   entry.error_type, now)], now_ms=now)
        return True

    # --- reads -------------------------------------------------------------------

    def get(self, scope: str, replay_key: str) -> Any:
        """The journal entry (scope, replay key), or None."""
        check_scope_key(scope, replay_key)
        self.ctx.require_fresh("effects")
        return _projection().get_entry(self.ctx.db, scope, replay_key)

    def list(self, scope: str | None = None, status: str | None = None, limit: int | None = None) -> list[Any]:
        """Journal entries in (scope, start time) order, optionally of one scope or status."""
        if scope is not None and not isinstance(scope, str):
            raise InvalidArgument(f"scope must be a string or None, got {type(scope).__name__}")
        if status is not None and status not in ENTRY_STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(ENTRY_STATUSES)} or None, got {status!r}"[:300])
        if limit is not None:
            check_int(limit, "limit", 1)
        self.ctx.require_fresh("effects")
        return cast("list[Any]", _projection().list_entries(self.ctx.db, scope, status, limit))

    def scopes(self) -> builtins.list[ScopeSummary]:
        """Every scope with its entry counts by status."""
        self.ctx.require_fresh("effects")
        found: builtins.list[ScopeSummary] = _projection().list_scopes(self.ctx.db)
        return found


def _render(spec: Any, what: str, effect_name: str, arguments: dict[str, Any], args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> str:
    if callable(spec):
        value = spec(*args, **kwargs)
    elif isinstance(spec, str):
        try:
            value = spec.format(**arguments)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidArgument(f"{effect_name}: {what} template {spec!r} cannot be filled from the "
                                  f"arguments ({type(exc).__name__}: {exc})") from None
    else:
        raise InvalidArgument(f"{effect_name}: {what} must be a template string or a callable, got {spec!r}")
    if not isinstance(value, str):
        raise InvalidArgument(f"{effect_name}: {what} must render to a string, got {value!r}")
    return value


register_facade("effects", Effects)

