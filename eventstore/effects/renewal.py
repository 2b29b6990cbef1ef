"""Background renewal of effect leases while the effects run.

One scheduler thread per process renews every running effect's lease each
`renew_every_ms`. A running effect registers a slot before it starts and removes it
before it records its outcome; `remove` waits for a renewal of that slot that is in
flight, so no renewal ever lands after the outcome. Why one shared thread and not one
per effect: starting and joining a thread costs more than the journal's own two commits
for a short effect, and effects are often short (a cached tool, a local computation).

The thread renews through its own store handle (a `Database` is one connection and is
not shared across threads), opened on the first renewal a facade needs and closed when
no effect is running. It exits after `IDLE_EXIT_S` without any running effect; the next
effect starts a new one. In-memory stores have a single connection and are not renewed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..errors import StoreError
from .leases import EffectLease, EffectLeaseLost

IDLE_EXIT_S = 0.5
THREAD_NAME = "effect-lease-renewer"


class RenewalSlot:
    """One running effect's lease, renewed by the scheduler until removed."""

    __slots__ = ("effects", "lease", "every_s", "due", "renewing", "renewals", "lost", "last_error")

    def __init__(self, effects: Any, lease: EffectLease) -> None:
        self.effects = effects
        self.lease = lease
        self.every_s = effects.options.timings.renew_every_ms / 1000
        self.due = time.monotonic() + self.every_s
        self.renewing = False
        self.renewals = 0
        self.lost: EffectLeaseLost | None = None
        self.last_error: StoreError | None = None


class RenewalScheduler:
    """The process's lease-renewal thread and the slots it serves."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slots: set[RenewalSlot] = set()
        self._thread: threading.Thread | None = None
        self._handles: dict[int, Any] = {}  # id(facade) -> its renewal handle; touched by the thread only

    def add(self, effects: Any, lease: EffectLease) -> RenewalSlot:
        """Start renewing `lease` (every renew interval of the facade's timings)."""
        slot = RenewalSlot(effects, lease)
        with self._cond:
            self._slots.add(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return slot

    def remove(self, slot: RenewalSlot) -> None:
        """Stop renewing; returns once no renewal of this slot is in flight."""
        with self._cond:
            self._slots.discard(slot)
            while slot.renewing:
                self._cond.wait()
            self._cond.notify_all()

    def active(self) -> int:
        """How many leases are being renewed now."""
        with self._cond:
            return len(self._slots)

    def _next(self) -> RenewalSlot | None:
        """Wait for the next slot due for renewal; None when idle long enough to exit."""
        idle_since: float | None = None
        with self._cond:
            while True:
                now = time.monotonic()
                if not self._slots:
                    if self._handles:
                        return None  # close the handles outside the lock, then come back
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= IDLE_EXIT_S:
                        self._thread = None  # under the lock: the next add() starts a new thread
                        return None
                    self._cond.wait(IDLE_EXIT_S - (now - idle_since))
                    continue
                idle_since = None
                slot = min(self._slots, key=lambda s: s.due)
                if slot.due > now:
                    self._cond.wait(slot.due - now)
                    continue
                slot.renewing = True
                return slot

    def _loop(self) -> None:
        while True:
            slot = self._next()
            if slot is None:
                if not self._close_idle_handles():
                    return
                continue
            try:
                self._renew(slot)
            finally:
                with self._cond:
                    slot.renewing = False
                    slot.due = time.monotonic() + slot.every_s
                    self._cond.notify_all()

    def _renew(self, slot: RenewalSlot) -> None:
        try:
            handle = self._handle(slot.effects)
            handle.effects.configure(timings=slot.effects.options.timings)
            slot.lease = handle.effects.renew(slot.lease)
            slot.renewals += 1
        except EffectLeaseLost as exc:
            slot.lost = exc  # finishing will raise EffectLeaseLost as well: stop renewing this one
            with self._cond:
                self._slots.discard(slot)
        except StoreError as exc:
            slot.last_error = exc  # for example StoreBusy: try again at the next interval

    def _handle(self, effects: Any) -> Any:
        handle = self._handles.get(id(effects))
        if handle is None:
            from ..store import open as open_store

            ctx = effects.ctx
            handle = open_store(ctx.path, clock=ctx.clock, profile=ctx.profile, synchronous=ctx.db.synchronous,
                                busy_timeout_ms=ctx.db.busy_timeout_ms)
            self._handles[id(effects)] = handle
        return handle

    def _close_idle_handles(self) -> bool:
        """Close every renewal handle (called with no slot left). False when the thread should exit."""
        handles, self._handles = self._handles, {}
        for h in handles.values():
            h.close()
        with self._cond:
            return self._thread is threading.current_thread()


SCHEDULER = RenewalScheduler()
"""The process-wide renewal scheduler used by `store.effects`."""
