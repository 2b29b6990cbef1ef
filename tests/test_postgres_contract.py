"""Every domain's contract suite (tests/contract/) run against PostgreSQL: each test gets a
fresh schema of the test server (handles on it are separate connections), dropped afterwards.
The server must be reachable: these fail, never skip, without it."""

from __future__ import annotations

import pytest

from tests import postgres_support as pg
from tests.contract.commit_behaviour import CommitBehaviourContract
from tests.contract.commits import CommitContract
from tests.contract.effects import EffectContract
from tests.contract.inputs import InputContract
from tests.contract.leases import LeaseContract
from tests.contract.process_behaviour import ProcessBehaviourContract
from tests.contract.process_handovers import ProcessHandoverContract
from tests.contract.processes import ProcessContract
from tests.contract.queue import QueueContract
from tests.contract.sessions import SessionContract
from tests.contract.triggers import TriggerContract


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


class TestQueueContractPostgres(QueueContract):
    """Every queue law, run against PostgreSQL."""


class TestInputContractPostgres(InputContract):
    """Every turn-input law, run against PostgreSQL."""


class TestCommitContractPostgres(CommitContract):
    """Every runtime-commit law, run against PostgreSQL."""


class TestCommitBehaviourContractPostgres(CommitBehaviourContract):
    """The runtime commit's behaviour tests, run against PostgreSQL."""


class TestEffectContractPostgres(EffectContract):
    """Every effect-journal law, run against PostgreSQL."""


class TestProcessContractPostgres(ProcessContract):
    """Every process-registry law, run against PostgreSQL."""


class TestProcessBehaviourContractPostgres(ProcessBehaviourContract):
    """The process registry's behaviour tests, run against PostgreSQL."""


class TestProcessHandoverContractPostgres(ProcessHandoverContract):
    """Segment handovers, run against PostgreSQL."""


class TestTriggerContractPostgres(TriggerContract):
    """Every trigger law, run against PostgreSQL."""
