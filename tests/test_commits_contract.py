"""The runtime-commit contract (laws 1-15, 60-67, 71 and 72) on the SQLite backend, plus
checks that reach into the SQLite file (stored flags, a damaged blob)."""

import pytest

from eventstore.commits import CheckpointDecodeError, RuntimeCommit, Checkpoint, TurnState
from eventstore.testing.contract.commit_behaviour import CommitBehaviourContract
from eventstore.testing.contract.commits import CommitContract, append, fence_of, node


class TestCommitContractSqlite(CommitContract, CommitBehaviourContract):
    """Every runtime-commit law and behaviour, run against SQLite (the `backend` fixture of tests/conftest.py)."""

    def test_law_62_a_rooted_manifest_that_cannot_be_decoded_aborts_gc_and_keeps_everything(self, backend):
        store = self.setup_session(backend)
        r = store.sessions.commit(RuntimeCommit("s1", fence_of(store, "s1"),
                                                checkpoint=Checkpoint(TurnState(1), tool_state=b"tools")))
        orphan = store.blobs.put(b"unreferenced")
        store.db.execute("UPDATE blobs SET content = ?, flags = 0, size = 4 WHERE ref = ?", (b"\xc1bad", r.checkpoint_ref))
        before = store.last_position()
        report = store.sessions.gc()
        assert r.checkpoint_ref in report.aborted and report.deleted_blob_count == 0  # bytes that fail their hash
        assert store.blobs.has(orphan) and store.last_position() == before
        garbage = store.blobs.put(b"\xc1 not msgpack")  # intact bytes that are no manifest
        store.db.execute("UPDATE graph_heads SET checkpoint_ref = ? WHERE session_id = 's1'", (garbage,))
        report = store.sessions.gc()
        assert f"checkpoint {garbage}" in report.aborted and store.blobs.has(orphan)
        with pytest.raises(CheckpointDecodeError):  # a head whose checkpoint cannot be read is an error
            store.sessions.load("s1")

    def test_a_large_commit_is_compressed_and_loads_the_same(self, backend):
        store = self.setup_session(backend)
        big = node("big", None, "x" * 20_000)
        self.commit(store, "s1", fence_of(store, "s1"), append(big, node("small", "big")))
        rows = store.db.query("SELECT flags & 1 FROM events WHERE type = 'session.committed'")
        assert rows == [(1,)]  # lz4 (the balanced profile compresses from 4 KiB)
        assert store.sessions.load("s1").nodes == (big, node("small", "big"))
        assert store.sessions.load_node("s1", "big") == big

