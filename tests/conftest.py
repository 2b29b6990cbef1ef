"""Shared fixtures and hypothesis profiles.

Profiles: `default` is fast for local runs; `ci` (chosen when the CI environment
variable is set, as in .ci/run) runs more examples with no deadline; `deep` is for a
long local run: `HYPOTHESIS_PROFILE=deep python -m pytest`.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import eventstore
from eventstore.testing import SqliteBackend

settings.register_profile("default", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


@pytest.fixture
def clock() -> eventstore.ManualClock:
    """A manual clock starting at a fixed time."""
    return eventstore.ManualClock(1_700_000_000_000)


@pytest.fixture
def db_path(tmp_path) -> str:
    """A path for a new store file."""
    return str(tmp_path / "store.db")


@pytest.fixture
def store(db_path, clock):
    """A fresh store on a file, with the manual clock."""
    with eventstore.open(db_path, clock=clock, synchronous="normal") as s:
        yield s


@pytest.fixture
def backend(tmp_path, clock):
    """The SQLite backend for contract tests."""
    b = SqliteBackend(str(tmp_path / "contract.db"), clock)
    yield b
    b.close()
