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

The hypothesis state machines (`eventstore.testing.machines`) take a `BackendFactory`
instead of a fixture, because hypothesis builds a fresh machine (and so a fresh store) for
every example: `sqlite_factory()` here, `eventstore.testing.postgres.postgres_factory()`
for PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Protocol

import eventstore

__all__ = ["Backend", "BackendFactory", "SqliteBackend", "scratch_dir", "sqlite_factory"]


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


BackendFactory = Callable[[eventstore.ManualClock], Backend]
"""Makes a backend on a fresh, empty store whose handles read the given clock."""


class SqliteBackend:
    """The SQLite backend of the contract suite: handles on one store file.

    `owned_dir`, when given, is a directory this backend removes (with the file) on close().
    """

    def __init__(self, path: str, clock: eventstore.ManualClock, owned_dir: str | None = None) -> None:
        self.path = path
        self.clock = clock
        self.owned_dir = owned_dir
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
        """Close every handle (and remove the owned directory)."""
        for h in self._handles:
            h.close()
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)


def scratch_dir() -> str | None:
    """tmpfs when there is one, else None (the system's temporary directory).

    The machines' invariant rebuilds every projection into a scratch file after each step:
    on a disk they would wait on the file system rather than run."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def sqlite_factory(directory: str | None = None) -> BackendFactory:
    """A factory of SQLite backends, each on a new file in a new temporary directory
    (under `directory`, default `scratch_dir()`), removed when the backend closes."""

    def make(clock: eventstore.ManualClock) -> Backend:
        owned = tempfile.mkdtemp(prefix="eventstore-test-", dir=directory or scratch_dir())
        return SqliteBackend(os.path.join(owned, "store.db"), clock, owned_dir=owned)

    return make
