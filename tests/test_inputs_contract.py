"""The pending-turn-input contract (laws 28, 49-59 and the store's improvements) on SQLite."""

from eventstore.testing.contract.inputs import InputContract


class TestInputContractSqlite(InputContract):
    """Every turn-input law, run against SQLite (the `backend` fixture of tests/conftest.py)."""
