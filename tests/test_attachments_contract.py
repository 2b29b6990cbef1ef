"""The attachment store contract (put/get/release/reclaim, commit_refs, id-keyed refs,
canonical URIs, GC grace) on the SQLite backend."""

from eventstore.testing.contract.attachments import AttachmentContract


class TestAttachmentContractSqlite(AttachmentContract):
    """Every attachment behaviour, run against SQLite (the `backend` fixture of tests/conftest.py)."""
