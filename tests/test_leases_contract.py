"""The session execution lease contract (laws 16-28) and the lease shape shared with
process leases, on the SQLite backend."""

from eventstore.testing.contract.lease_parity import LeaseParityContract
from eventstore.testing.contract.leases import LeaseContract


class TestLeaseContractSqlite(LeaseContract, LeaseParityContract):
    """Every lease law, run against SQLite (the `backend` fixture of tests/conftest.py)."""
