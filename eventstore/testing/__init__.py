"""The installable contract suite: every domain law as a test class a backend subclasses.

Requires the `test` extra (pytest, hypothesis). A backend runs the whole suite by
subclassing each `*Contract` class of `eventstore.testing.contract` in its own test module
and providing a `backend` pytest fixture that yields an object with the `Backend` shape
(a factory of stores on one database), the way tests/conftest.py does for SQLite with
`SqliteBackend`:

    import pytest
    from eventstore.testing import SqliteBackend
    from eventstore.testing.contract.queue import QueueContract

    @pytest.fixture
    def backend(tmp_path):
        b = SqliteBackend(str(tmp_path / "contract.db"), eventstore.ManualClock(0))
        yield b
        b.close()

    class TestQueueOnMyBackend(QueueContract):
        pass

No contract test touches the database directly: they use the public API, the log's
API and the storage seam's counters only, so a second backend passes them unchanged.
`eventstore.testing.helpers.assert_consistent` is the invariant the suite checks after
each step (chain sound, projections equal a rebuild and a time-travel replay).
"""

from __future__ import annotations

from typing import Protocol

import eventstore

__all__ = ["Backend", "SqliteBackend"]


class Backend(Protocol):
    """What a contract test needs from a backend: stores on one shared database."""

    clock: eventstore.ManualClock
    store: eventstore.Store
    """The main handle."""

    def open(self) -> eventstore.Store:
        """Another, independent handle on the same store (another connection)."""

    def reopen(self) -> eventstore.Store:
        """Close the main handle and open it again; returns (and sets) the new store."""

    def close(self) -> None:
        """Close every handle this backend opened."""


class SqliteBackend:
    """The SQLite backend of the contract suite: handles on one store file."""

    def __init__(self, path: str, clock: eventstore.ManualClock) -> None:
        self.path = path
        self.clock = clock
        self._handles: list[eventstore.Store] = []
        self.store = self.open()

    def open(self) -> eventstore.Store:
        """Another handle (connection) on the same file."""
        handle = eventstore.open(self.path, clock=self.clock, synchronous="normal")
        self._handles.append(handle)
        return handle

    def reopen(self) -> eventstore.Store:
        """Close the main handle and open a new one."""
        self.store.close()
        self.store = self.open()
        return self.store

    def close(self) -> None:
        """Close every handle."""
        for h in self._handles:
            h.close()
