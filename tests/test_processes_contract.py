"""The process registry contract (laws 73-86, the behaviour around them, and segment handovers) against SQLite."""

from eventstore.testing.contract.process_behaviour import ProcessBehaviourContract
from eventstore.testing.contract.process_handovers import ProcessHandoverContract
from eventstore.testing.contract.process_parity import ProcessParityContract
from eventstore.testing.contract.processes import ProcessContract


class TestProcessContractSqlite(ProcessContract, ProcessBehaviourContract, ProcessHandoverContract,
                                ProcessParityContract):
    """Runs every process contract test with the `backend` fixture from tests/conftest.py."""
