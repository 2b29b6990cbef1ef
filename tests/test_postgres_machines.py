"""Every hypothesis state machine of eventstore.testing.machines, run against PostgreSQL.

The same machines as on SQLite (their rules, models and invariants, including
`assert_consistent`: projections equal a rebuild and a replay after every step), bound to a
factory that gives every example a fresh schema of the test server. Fewer examples and steps
than on SQLite: every step's invariant rebuilds the projections, which costs more round trips
here (EVENTSTORE_PG_MACHINE_EXAMPLES raises the count). Fails, never skips, without the server.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from eventstore.testing.machines import machine_test
from eventstore.testing.machines.commits import CommitMachine
from eventstore.testing.machines.effects import EffectJournalMachine
from eventstore.testing.machines.inputs import InputMachine
from eventstore.testing.machines.leases import LeaseMachine
from eventstore.testing.machines.processes import ProcessMachine
from eventstore.testing.machines.queue import QueueMachine
from eventstore.testing.machines.triggers import TriggerStoreMachine
from eventstore.testing.machines.whole_store import WholeStoreChains, WholeStoreMachine
from eventstore.testing.postgres import postgres_factory
from tests import postgres_support as pg

_EXAMPLES = int(os.environ.get("EVENTSTORE_PG_MACHINE_EXAMPLES", "4"))
_SETTINGS = settings(max_examples=_EXAMPLES, stateful_step_count=20, deadline=None)
_FACTORY = postgres_factory(pg.SERVER)

TestLeaseMachinePostgres = machine_test(LeaseMachine, _FACTORY, _SETTINGS)
TestQueueMachinePostgres = machine_test(QueueMachine, _FACTORY, _SETTINGS)
TestInputMachinePostgres = machine_test(InputMachine, _FACTORY, _SETTINGS)
TestCommitMachinePostgres = machine_test(CommitMachine, _FACTORY, _SETTINGS)
TestEffectMachinePostgres = machine_test(EffectJournalMachine, _FACTORY, _SETTINGS)
TestProcessMachinePostgres = machine_test(ProcessMachine, _FACTORY, _SETTINGS)
TestTriggerMachinePostgres = machine_test(TriggerStoreMachine, _FACTORY, _SETTINGS)
TestWholeStoreMachinePostgres = machine_test(
    WholeStoreMachine, _FACTORY, settings(max_examples=_EXAMPLES, stateful_step_count=40, deadline=None))


@pytest.fixture
def backend_factory():
    """Fresh schemas of the test server."""
    return _FACTORY


class TestWholeStoreChainsPostgres(WholeStoreChains):
    """The whole-store machine's pinned chains, on PostgreSQL."""
