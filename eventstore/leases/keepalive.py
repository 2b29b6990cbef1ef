"""Keeping a session lease alive in the background: `store.leases.keep_alive(lease)`.

The helper renews the lease every `renew_every_ms` of its timings until it is stopped,
released, or lost, with the same behaviour as the effects' renewal helper
(effect_renewal.py): a renewal refused because the lease is no longer live (expired,
released by someone, taken over, its session deleted) records the loss in `lost` and ends
the renewals; any other store error (a busy file) is kept in `last_error` and retried at
the next interval; `stop` returns only once no renewal is in flight, so no renewal lands
after it.

It renews through its own store handle, opened on the first renewal: a `Database` is one
connection and is not shared across threads. An in-memory store has no second connection
to offer, so it cannot be kept alive this way. One thread per kept-alive lease is cheap
here: a process runs few sessions at a time and each one lives for many renewals.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import InvalidArgument, StoreError
from .events import SessionExecutionLease
from .owners import LeaseTimings

THREAD_NAME = "session-lease-keepalive"


class SessionLeaseKeepAlive:
    """A running keep-alive of one session lease; see the module docstring."""

    def __init__(self, leases: Any, lease: SessionExecutionLease, timings: LeaseTimings) -> None:
        ctx = leases.ctx
        if getattr(ctx, "path", ":memory:") == ":memory:":
            raise InvalidArgument("leases.keep_alive needs a store file: an in-memory store has no second "
                                  "connection to renew from")
        self._leases = leases
        self._timings = timings
        self._cond = threading.Condition()
        self._lease = lease
        self._stopped = False
        self.renewals = 0
        """How many renewals succeeded."""
        self.lost: StoreError | None = None
        """Why the lease was lost (the renewal's error), or None while it is held."""
        self.last_error: StoreError | None = None
        """The last transient error (retried at the next interval), or None."""
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def lease(self) -> SessionExecutionLease:
        """The lease as last renewed (its `fence` is what writes should carry)."""
        with self._cond:
            return self._lease

    @property
    def active(self) -> bool:
        """True while the helper still renews (not stopped, released or lost)."""
        return self._thread.is_alive() and not self._stopped and self.lost is None

    def stop(self) -> None:
        """Stop renewing; returns once no renewal is in flight. The lease stays held until
        it expires or is released."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def release(self) -> Any:
        """Stop renewing, then release the lease (a `ReleaseResult`)."""
        self.stop()
        return self._leases.release(self.lease.fence)

    def __enter__(self) -> "SessionLeaseKeepAlive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        from .facade import SessionExecutionLeaseExpired
        from ..sessions.facade import SessionDeleted, SessionNotFound

        every_s = self._timings.renew_every_ms / 1000
        handle = None
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopped, timeout=every_s)
                    if self._stopped:
                        return
                    fence = self._lease.fence
                try:
                    if handle is None:
                        handle = self._open()
                    renewed = handle.leases.renew(fence, self._timings)
                except (SessionExecutionLeaseExpired, SessionDeleted, SessionNotFound) as exc:
                    with self._cond:
                        self.lost = exc
                    return
                except StoreError as exc:
                    self.last_error = exc  # for example StoreBusy: try again at the next interval
                    continue
                with self._cond:
                    self._lease = renewed
                    self.renewals += 1
        finally:
            if handle is not None:
                handle.close()

    def _open(self) -> Any:
        from ..store import open as open_store

        ctx = self._leases.ctx
        return open_store(ctx.path, clock=ctx.clock, profile=ctx.profile, synchronous=ctx.db.synchronous,
                          busy_timeout_ms=ctx.db.busy_timeout_ms)


__all__ = ["SessionLeaseKeepAlive", "THREAD_NAME"]
