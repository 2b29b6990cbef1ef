"""The debugging tools' contract (eventstore.testing.contract.debug_tools) on SQLite."""

from eventstore.testing.contract.debug_tools import DebugToolsContract


class TestDebugToolsContractSqlite(DebugToolsContract):
    """The debugging tools on SQLite (the `backend` fixture of tests/conftest.py)."""
