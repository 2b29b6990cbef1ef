"""The process registry contract (laws 73-86 and the behaviour around them) against SQLite."""

from tests.contract.process_behaviour import ProcessBehaviourContract
from tests.contract.processes import ProcessContract


class TestProcessContractSqlite(ProcessContract, ProcessBehaviourContract):
    """Runs every process contract test with the `backend` fixture from tests/conftest.py."""
