"""The contract suites of the domains ported to PostgreSQL (sessions, leases), run against a
fresh schema of the test server per test. The server must be reachable: these fail, never
skip, without it."""

from __future__ import annotations

import pytest

from tests import postgres_support as pg
from tests.contract.leases import LeaseContract
from tests.contract.sessions import SessionContract


@pytest.fixture
def backend(clock):
    """Handles on a fresh PostgreSQL schema, dropped afterwards."""
    b = pg.PostgresBackend(clock)
    yield b
    b.close()


class TestSessionContractPostgres(SessionContract):
    """Every session law, run against PostgreSQL."""


class TestLeaseContractPostgres(LeaseContract):
    """Every lease law, run against PostgreSQL."""
