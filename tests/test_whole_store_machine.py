"""The whole-store state machine (eventstore.testing.machines.whole_store) and its two pinned
chains on SQLite. Its budget follows the loaded hypothesis profile (see the machine's module)."""

import pytest

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.whole_store import WholeStoreChains, WholeStoreMachine

TestWholeStoreMachine = machine_test(WholeStoreMachine, sqlite_factory())


@pytest.fixture
def backend_factory(tmp_path):
    """SQLite stores in the test's temporary directory."""
    return sqlite_factory(str(tmp_path))


class TestWholeStoreChains(WholeStoreChains):
    """The pinned chains on SQLite."""
