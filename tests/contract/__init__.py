"""The domain laws as a contract suite that every backend subclasses.

Each module here defines a `*Contract` class whose tests take a `backend` fixture (see
`Backend` below). A backend's test module subclasses the contract as `Test...` and
provides the fixture; tests/conftest.py provides it for SQLite. A future PostgreSQL
backend reuses every law by providing its own `backend` fixture.

Test names carry the law number from DOMAIN.md §7: `test_law_16_reentry_keeps_token_and_fence`.
"""

from __future__ import annotations

from typing import Protocol

import eventstore


class Backend(Protocol):
    """What a contract test needs from a backend."""

    clock: eventstore.ManualClock
    store: eventstore.Store
    """The main handle."""

    def open(self) -> eventstore.Store:
        """Another, independent handle on the same store (another connection)."""

    def reopen(self) -> eventstore.Store:
        """Close the main handle and open it again; returns (and sets) the new store."""
