"""The session execution lease contract (laws 16-28) on the SQLite backend."""

from eventstore.testing.contract.leases import LeaseContract


class TestLeaseContractSqlite(LeaseContract):
    """Every lease law, run against SQLite (the `backend` fixture of tests/conftest.py)."""
