"""Clocks. Only the command side reads a clock; projections never do.

A clock is any zero-argument callable returning integer milliseconds since the epoch.
Tests and replays inject a `ManualClock` so that every decision is reproducible.
"""

from __future__ import annotations

import threading
import time


def system_clock() -> int:
    """Wall-clock time in integer milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = int(start_ms)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move the clock forward by `ms` milliseconds and return the new time."""
        if ms < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += int(ms)
            return self._now

    def set(self, now_ms: int) -> None:
        """Set the clock to an absolute time (may move it backwards, to test skew)."""
        with self._lock:
            self._now = int(now_ms)
