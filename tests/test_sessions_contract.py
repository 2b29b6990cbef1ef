"""The session lifecycle contract (laws 68-70) on the SQLite backend."""

from eventstore.testing.contract.sessions import SessionContract


class TestSessionContractSqlite(SessionContract):
    """Every session law, run against SQLite (the `backend` fixture of tests/conftest.py)."""
