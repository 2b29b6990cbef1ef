"""Every domain's contract suite (eventstore.testing.contract) run against PostgreSQL: each test gets a
fresh schema of the test server (handles on it are separate connections), dropped afterwards.
The server must be reachable: these fail, never skip, without it."""

from __future__ import annotations

import pytest

from tests import postgres_support as pg
from eventstore.testing.contract.commit_behaviour import CommitBehaviourContract
from eventstore.testing.contract.commits import CommitContract
from eventstore.testing.contract.debug_tools import DebugToolsContract
from eventstore.testing.contract.effects import EffectContract
from eventstore.testing.contract.attachments import AttachmentContract
from eventstore.testing.contract.inputs import InputContract
from eventstore.testing.contract.lease_parity import LeaseParityContract
from eventstore.testing.contract.leases import LeaseContract
from eventstore.testing.contract.process_behaviour import ProcessBehaviourContract
from eventstore.testing.contract.process_handovers import ProcessHandoverContract
from eventstore.testing.contract.process_parity import ProcessParityContract
from eventstore.testing.contract.processes import ProcessContract
from eventstore.testing.contract.queue import QueueContract
from eventstore.testing.contract.sessions import SessionContract
from eventstore.testing.contract.triggers import TriggerContract


@pytest.fixture
def backend(clock):
    """Handles on a fresh PostgreSQL schema, dropped afterwards."""
    b = pg.backend(clock)
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


class TestAttachmentContractPostgres(AttachmentContract):
    """Every attachment law, run against PostgreSQL."""


class TestLeaseParityContractPostgres(LeaseParityContract):
    """The lease parity rules, run against PostgreSQL."""


class TestProcessParityContractPostgres(ProcessParityContract):
    """The process registry's parity rules, run against PostgreSQL."""


class TestDebugToolsContractPostgres(DebugToolsContract):
    """The debugging tools (why, as-of, cached time travel, stream export), on PostgreSQL."""
