"""The hypothesis state machines of the domains, run against PostgreSQL.

Each machine is the SQLite one unchanged (its rules, model and invariants, including
`assert_consistent`: projections equal a rebuild and a replay after every step); only the
store path it opens is routed to a fresh schema of the test server. Fewer examples than on
SQLite: every step's invariant rebuilds the projections. Fails, never skips, without the server.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

import eventstore
import eventstore.store
from tests import postgres_support as pg
from tests import test_commits_machine, test_effects_machine, test_inputs_machine, test_leases_machine
from tests import test_processes_machine, test_queue_machine, test_triggers_machine

_SETTINGS = settings(max_examples=int(os.environ.get("EVENTSTORE_PG_MACHINE_EXAMPLES", "4")),
                     stateful_step_count=20, deadline=None)


def _on_postgres(machine: type) -> type:
    """The machine's TestCase as a new class (its own settings; the SQLite one is untouched)."""
    case = type(f"{machine.__name__}OnPostgres", (machine,), {}).TestCase
    case.settings = _SETTINGS
    return case


TestLeaseMachinePostgres = _on_postgres(test_leases_machine.LeaseMachine)
TestQueueMachinePostgres = _on_postgres(test_queue_machine.QueueMachine)
TestInputMachinePostgres = _on_postgres(test_inputs_machine.InputMachine)
TestCommitMachinePostgres = _on_postgres(test_commits_machine.CommitMachine)
TestEffectMachinePostgres = _on_postgres(test_effects_machine.EffectJournalMachine)
TestProcessMachinePostgres = _on_postgres(test_processes_machine.ProcessMachine)
TestTriggerMachinePostgres = _on_postgres(test_triggers_machine.TriggerStoreMachine)


@pytest.fixture(autouse=True, scope="module")
def _route_store_files_to_postgres():
    """eventstore.open(<file path>) opens a schema of the test server for this module's run."""
    pg.connect().close()
    schemas = pg.SchemaMap()
    original = eventstore.store.open

    def open_on_postgres(path, **kw):
        path = os.fspath(path)
        return original(path if "://" in path else schemas.url(path)[0], **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(eventstore, "open", open_on_postgres)
    try:
        yield
        assert schemas.by_path, "no machine opened its store through the PostgreSQL routing"
    finally:
        mp.undo()
        schemas.drop_all()
