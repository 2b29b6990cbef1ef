"""Runtime-commit laws (docs/semantics.md §1, §2 and §6: laws 1-15, 60-67, 71, 72) as a backend contract."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import pytest

import eventstore
from eventstore.attachments import AttachmentConflict
from eventstore.commits import (
    HeadRevisionConflict, InvalidGraphDelta, RuntimeTurnCommitConflict, SessionBindingMismatch,
)
from eventstore.commits import RuntimeCommit
from eventstore.commits import (
    AgentFrame, Checkpoint, EventPayload, GraphAppend, GraphUnchanged, ModelConfig, SessionNode, TurnState,
    UsageDelta,
)
from eventstore.inputs import ActiveTurn, InputState, TurnInputClaimSuperseded, TurnInputDraft
from eventstore.leases import Acquired, SessionExecutionLeaseExpired, LeaseOwner
from eventstore.processes import Disposition, ExternalInput, HostScope, ProcessRegistration, Provenance
from eventstore.queue import AgentFrameTask, QueuedWorkClaimSuperseded, QueuedWorkDraft
from eventstore.sessions import SessionMeta, SessionRelation
from eventstore.commits import stamp_turn, turn_commit_hash
from eventstore.testing import Backend
from eventstore.testing.helpers import assert_consistent

MODEL = ModelConfig("anthropic", "claude-x")


def fence_of(store: eventstore.Store, sid: str, name: str = "runtime-a", ttl_ms: int = 60_000) -> Any:
    """Acquire the session lease for owner `name` and return its fence."""
    got = store.leases.claim(sid, LeaseOwner(name, "i1"), ttl_ms)
    assert isinstance(got, Acquired), got
    return got.lease.fence


def message(text: str, role: str = "user") -> dict[str, Any]:
    """A message-like payload (role + parts), as a runtime stores it."""
    return {"role": role, "id": f"msg-{text}", "parts": [{"kind": "text", "content": text, "prune_state": "keep"}]}


def node(nid: str, parent: str | None = None, text: str | None = None, role: str = "user") -> SessionNode:
    """A message node."""
    return SessionNode(nid, EventPayload(message(text or nid, role)), parent, timestamp="2026-01-01T00:00:00Z")


def append(*nodes: SessionNode, leaf: str | None = None) -> GraphAppend:
    """An append delta whose leaf is the last node unless given."""
    return GraphAppend(tuple(nodes), leaf if leaf is not None else nodes[-1].node_id)


def now_and_after_reopen(backend: Any) -> Any:
    """Yield the main handle, then the same store reopened (lazily: the reopen closes the first)."""
    yield backend.store
    yield backend.reopen()


def ids(loaded: Any) -> list[str]:
    """The node ids of a load, in order."""
    return [n.node_id for n in loaded.nodes]


class CommitHelpers:
    """Shared steps of the runtime-commit contracts."""

    def setup_session(self, backend: Backend, sid: str = "s1") -> eventstore.Store:
        backend.store.sessions.create(sid)
        return backend.store

    def commit(self, store: eventstore.Store, sid: str, fence: Any, graph: Any = GraphUnchanged(),
               **kw: Any) -> Any:
        return store.sessions.commit(RuntimeCommit(sid, fence, graph, **kw))

    def branched(self, backend: Any) -> eventstore.Store:
        """root -> u1 -> a1, root -> u1b (an edited user message) -> a1b; leaf a1b."""
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        self.commit(store, "s1", fence, append(node("root", None, "system"), node("u1", "root", "hi"),
                                               node("a1", "u1", "hello", "assistant")))
        self.commit(store, "s1", fence, append(node("u1b", "root", "hi, edited"),
                                               node("a1b", "u1b", "hello again", "assistant")))
        return store


class CommitContract(CommitHelpers):
    """Laws 1-15, 60-67, 71 (the session side) and 72; subclass with a `backend` fixture."""

    # --- law 1 --------------------------------------------------------------------------

    def test_law_01_a_commit_adds_one_to_the_revision_and_frames_round_trip(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        frames = (AgentFrame("f-root", "s1", assignment={"goal": "triage"}, created_at="2026-01-01T00:00:00Z",
                             execution_state_snapshot=b"\x00exec-root"),
                  AgentFrame("f-child", "s1", previous_frame_id="f-root", reason="delegate",
                             protocol_turn_options={"tools": ["grep"]}, execution_state_snapshot=b"exec-child"))
        revisions = []
        for i in range(3):
            r = self.commit(store, "s1", fence, append(node(f"n{i}", f"n{i - 1}" if i else None)),
                            expected_head_revision=i, config=MODEL, agent_frames=frames,
                            current_agent_frame_id="f-child")
            revisions.append(r.head_revision)
        assert revisions == [1, 2, 3]
        for handle in now_and_after_reopen(backend):
            loaded = handle.sessions.load("s1")
            assert loaded.head_revision == 3 and loaded.current_agent_frame_id == "f-child"
            assert [f.frame_id for f in loaded.agent_frames] == ["f-root", "f-child"]
            assert [f.execution_state_snapshot for f in loaded.agent_frames] == [b"\x00exec-root", b"exec-child"]
            assert [attrs.evolve(f, execution_state_ref=None) for f in loaded.agent_frames] == list(frames)
            assert loaded.config == MODEL
        store = backend.store
        self.commit(store, "s1", fence, expected_head_revision=3, current_agent_frame_id="f-root")
        loaded = store.sessions.load("s1")
        assert loaded.head_revision == 4 and loaded.agent_frames == () and loaded.current_agent_frame_id == "f-root"
        assert loaded.config == MODEL  # config None carries the previous one forward
        assert_consistent(store)

    # --- law 2 --------------------------------------------------------------------------

    def test_law_02_concurrent_commits_with_the_same_expected_revision_have_one_winner(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        self.commit(store, "s1", fence, append(node("root")), expected_head_revision=0)
        handles = [backend.open(), backend.open()]
        barrier = threading.Barrier(2)
        outcomes: list[Any] = [None, None]

        def writer(i: int) -> None:
            barrier.wait()
            try:
                outcomes[i] = handles[i].sessions.commit(
                    RuntimeCommit("s1", fence, append(node(f"w{i}", "root")), expected_head_revision=1))
            except HeadRevisionConflict as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        wins = [o for o in outcomes if not isinstance(o, HeadRevisionConflict)]
        losses = [o for o in outcomes if isinstance(o, HeadRevisionConflict)]
        assert len(wins) == 1 and len(losses) == 1, outcomes
        assert wins[0].head_revision == 2 and (losses[0].expected, losses[0].actual) == (1, 2)
        winner = f"w{outcomes.index(wins[0])}"
        loaded = store.sessions.load("s1")
        assert ids(loaded) == ["root", winner] and loaded.graph_node_count == 2 and loaded.leaf_node_id == winner
        assert_consistent(store)

    # --- law 3 --------------------------------------------------------------------------

    def test_law_03_a_commit_for_another_session_is_rejected(self, backend):
        store = self.setup_session(backend)
        store.sessions.create("s2")
        fence1, fence2 = fence_of(store, "s1"), fence_of(store, "s2")
        before = store.last_position()
        with pytest.raises(SessionBindingMismatch, match="s2"):
            self.commit(store, "s1", fence2, append(node("a")))
        with pytest.raises(SessionBindingMismatch, match="agent_frames"):
            self.commit(store, "s1", fence1, agent_frames=(AgentFrame("f", "s2"),))
        c = RuntimeCommit("s1", fence1, append(node("a")))
        with pytest.raises(RuntimeTurnCommitConflict, match="s2"):
            store.sessions.commit(attrs.evolve(stamp_turn(c, "t1"), turn_commit=attrs.evolve(
                stamp_turn(c, "t1").turn_commit, session_id="s2")))
        assert store.last_position() == before
        assert store.sessions.load("s1") is None and store.sessions.load("s2") is None

    # --- law 4 --------------------------------------------------------------------------

    def test_law_04_load_hydrates_tool_state_plugin_revision_and_ledger(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        checkpoint = Checkpoint(TurnState(7, {"input": 5}, {"input": 2}, {"effort": "high"}),
                                tool_state=b'{"generation": 4}', plugin_snapshot=b"plugins", plugin_snapshot_revision=9,
                                execution_state=b"exec")
        self.commit(store, "s1", fence, append(node("a")), checkpoint=checkpoint,
                    usage_deltas=(UsageDelta("turn", "m1", 10, 5), UsageDelta("tool", "m2", 1),
                                  UsageDelta("idle", "m1")))
        self.commit(store, "s1", fence, usage_deltas=(UsageDelta("turn", "m1", 1, 1, 2, 3, 4),
                                                      UsageDelta("compaction", "m1", 0, 7)))
        for handle in now_and_after_reopen(backend):
            loaded = handle.sessions.load("s1")
            cp = loaded.checkpoint
            assert cp.turn_state == TurnState(7, {"input": 5}, {"input": 2}, {"effort": "high"})
            assert (cp.tool_state, cp.plugin_snapshot, cp.plugin_snapshot_revision, cp.execution_state) == (
                b'{"generation": 4}', b"plugins", 9, b"exec")
            assert loaded.token_ledger == (UsageDelta("turn", "m1", 11, 6, 2, 3, 4), UsageDelta("tool", "m2", 1),
                                           UsageDelta("compaction", "m1", 0, 7))
            assert loaded.checkpoint_ref is not None and loaded.head_revision == 2

    # --- laws 5-7 -----------------------------------------------------------------------

    def test_law_05_full_graph_returns_every_live_branch_in_order(self, backend):
        store = self.branched(backend)
        loaded = store.sessions.load("s1")
        assert ids(loaded) == ["root", "u1", "a1", "u1b", "a1b"] and loaded.graph_node_count == 5
        assert loaded.nodes[3] == node("u1b", "root", "hi, edited")
        assert ids(store.sessions.load("s1", graph="none")) == []

    def test_law_06_active_path_without_a_leaf_uses_the_stored_leaf_and_hides_siblings(self, backend):
        store = self.branched(backend)
        assert ids(store.sessions.load("s1", graph="active_path")) == ["root", "u1b", "a1b"]
        self.commit(store, "s1", fence_of(store, "s1"), GraphUnchanged("a1"))  # move the leaf back
        loaded = store.sessions.load("s1", graph="active_path")
        assert loaded.leaf_node_id == "a1" and ids(loaded) == ["root", "u1", "a1"]

    def test_law_07_active_path_with_an_explicit_leaf_follows_that_leafs_ancestry(self, backend):
        store = self.branched(backend)
        assert ids(store.sessions.load("s1", graph="active_path", leaf="a1")) == ["root", "u1", "a1"]
        assert ids(store.sessions.load("s1", graph="active_path", leaf="u1b")) == ["root", "u1b"]
        assert ids(store.sessions.load("s1", graph="active_path", leaf="missing")) == []

    def test_law_07_an_explicit_leaf_is_the_reported_leaf(self, backend):
        """Loading the active path from a requested leaf reports that leaf, not the head's."""
        store = self.branched(backend)
        assert store.sessions.load("s1").leaf_node_id == "a1b"
        assert store.sessions.load("s1", graph="active_path", leaf="a1").leaf_node_id == "a1"
        assert store.sessions.load("s1", graph="active_path", leaf="missing").leaf_node_id == "missing"
        assert store.sessions.load("s1", graph="active_path").leaf_node_id == "a1b"

    # --- law 8 --------------------------------------------------------------------------

    def test_law_08_session_meta_round_trips(self, backend):
        store = backend.store
        meta = SessionMeta(name="triage", model="claude-x", cwd="/srv/agent", relation=SessionRelation("p", "subagent"))
        store.sessions.create("s1", meta)
        self.commit(store, "s1", fence_of(store, "s1"), append(node("a")), config=ModelConfig("other", "model"))
        assert store.sessions.get("s1").meta == meta
        assert backend.reopen().sessions.get("s1").meta == meta

    # --- laws 9-11 ----------------------------------------------------------------------

    def test_law_09_replaying_a_final_stamp_returns_the_same_result_even_without_a_lease(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        fence = fence_of(store, "s1", ttl_ms=1_000)
        first = store.sessions.commit(stamp_turn(RuntimeCommit(
            "s1", fence, append(node("u")), expected_head_revision=0, checkpoint=Checkpoint(TurnState(1))), "t1"))
        clock.advance(5_000)  # the lease expired: a fresh commit would be refused
        before = store.last_position()
        retry = stamp_turn(RuntimeCommit("s1", fence, append(node("u")), expected_head_revision=0,
                                         checkpoint=Checkpoint(TurnState(1))), "t1")
        again = store.sessions.commit(retry)
        assert (again.head_revision, again.checkpoint_ref) == (first.head_revision, first.checkpoint_ref)
        assert again.replayed and not first.replayed and store.last_position() == before
        other = backend.open()  # another connection sees the same stored result
        assert other.sessions.commit(attrs.evolve(retry, lease=None)).head_revision == 1
        assert other.sessions.load("s1").head_revision == 1
        # a requested release is still applied on a replay
        live = fence_of(store, "s1", "runtime-b")
        store.sessions.commit(attrs.evolve(retry, lease=live, release_lease=True))
        assert store.leases.get("s1").holder is None

    def test_law_10_the_turn_hash_ignores_the_expected_revision(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        c = RuntimeCommit("s1", fence, append(node("u")), expected_head_revision=0)
        assert turn_commit_hash(c) == turn_commit_hash(attrs.evolve(c, expected_head_revision=41))
        assert turn_commit_hash(c) == turn_commit_hash(attrs.evolve(c, expected_head_revision=None, lease=None))
        first = store.sessions.commit(stamp_turn(c, "t1"))
        replay = store.sessions.commit(stamp_turn(attrs.evolve(c, expected_head_revision=17), "t1"))
        assert replay.replayed and replay.head_revision == first.head_revision == 1

    def test_law_11_the_same_turn_id_with_a_new_hash_is_a_conflict(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        store.sessions.commit(stamp_turn(RuntimeCommit("s1", fence, append(node("u", text="hi"))), "t1"))
        before = store.last_position()
        with pytest.raises(RuntimeTurnCommitConflict, match="t1"):
            store.sessions.commit(stamp_turn(RuntimeCommit("s1", fence, append(node("u2", text="bye"))), "t1"))
        assert store.last_position() == before and store.sessions.load("s1").head_revision == 1

    # --- law 12 -------------------------------------------------------------------------

    def test_law_12_a_commit_without_a_live_fence_is_rejected(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        before = store.last_position()
        with pytest.raises(SessionExecutionLeaseExpired):
            self.commit(store, "s1", None, append(node("a")))
        fence = fence_of(store, "s1", ttl_ms=1_000)
        clock.advance(1_000)
        before = store.last_position()
        with pytest.raises(SessionExecutionLeaseExpired, match="expired"):
            self.commit(store, "s1", fence, append(node("a")))
        newer = fence_of(store, "s1", "runtime-b")
        with pytest.raises(SessionExecutionLeaseExpired, match="superseded"):
            self.commit(store, "s1", fence, append(node("a")))
        store.leases.release(newer)
        with pytest.raises(SessionExecutionLeaseExpired):
            self.commit(store, "s1", newer, append(node("a")))
        assert store.sessions.load("s1") is None
        assert store.last_position() == before + 2  # only the claim and the release

    # --- laws 13-15 ---------------------------------------------------------------------

    def test_law_13_a_stale_queue_completion_rejects_the_whole_commit(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        batch = store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", "do it"),))).batch
        old = fence_of(store, "s1", "runtime-a", ttl_ms=1_000)
        claim = store.queue.claim_ready(old)
        clock.advance(1_000)
        fence = fence_of(store, "s1", "runtime-b")  # a new generation: the old claim is superseded
        before = store.last_position()
        with pytest.raises(QueuedWorkClaimSuperseded):
            self.commit(store, "s1", fence, append(node("a")), completed_queue_claims=(claim.completion(),))
        assert store.last_position() == before and store.sessions.load("s1") is None
        assert [b.batch_id for b in store.queue.list("s1")] == [batch.batch_id]
        store.inputs.enqueue(TurnInputDraft("s1", "hi", ActiveTurn("t1")))
        stale_input = store.inputs.claim_active(fence, "t1")
        store.inputs.abandon(stale_input)
        fresh = store.inputs.claim_active(fence, "t1")
        before = store.last_position()
        with pytest.raises(TurnInputClaimSuperseded):
            self.commit(store, "s1", fence, append(node("a")), completed_turn_input_claims=(stale_input.completion(),))
        assert store.last_position() == before and store.sessions.load("s1") is None
        assert [i.state for i in store.inputs.list("s1")] == [InputState.ACCEPTED]
        self.commit(store, "s1", fence, append(node("a")), completed_turn_input_claims=(fresh.completion(),))
        assert [i.state for i in store.inputs.list("s1")] == [InputState.COMPLETED]

    def test_law_14_an_outbox_batch_for_another_session_rolls_back_the_completions(self, backend):
        store = self.setup_session(backend)
        store.sessions.create("s2")
        store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", "inbound"),)))
        store.inputs.enqueue(TurnInputDraft("s1", "hi", ActiveTurn("t1")))
        fence = fence_of(store, "s1")
        qclaim = store.queue.claim_ready(fence)
        iclaim = store.inputs.claim_active(fence, "t1")
        before = store.last_position()
        with pytest.raises(SessionBindingMismatch, match="s2"):
            self.commit(store, "s1", fence, append(node("a")), completed_queue_claims=(qclaim.completion(),),
                        completed_turn_input_claims=(iclaim.completion(),),
                        enqueued_queue_batches=(QueuedWorkDraft("s1", (AgentFrameTask("f", "ok"),)),
                                                QueuedWorkDraft("s2", (AgentFrameTask("f", "elsewhere"),))))
        assert store.last_position() == before and store.sessions.load("s1") is None
        assert [b.batch_id for b in store.queue.list("s1")] == list(qclaim.batch_ids)
        assert store.queue.list("s2") == [] and [i.state for i in store.inputs.list("s1")] == [InputState.ACCEPTED]
        # the same completions still settle in a sound commit
        self.commit(store, "s1", fence, append(node("a")), completed_queue_claims=(qclaim.completion(),),
                    completed_turn_input_claims=(iclaim.completion(),))
        assert store.queue.list("s1") == [] and [i.state for i in store.inputs.list("s1")] == [InputState.COMPLETED]

    def test_law_15_a_replayed_commit_returns_the_original_outbox_batch_ids(self, backend):
        store = self.setup_session(backend)
        store.inputs.enqueue(TurnInputDraft("s1", "hi", ActiveTurn("t1")))
        fence = fence_of(store, "s1")
        claim = store.inputs.claim_active(fence, "t1")
        c = stamp_turn(RuntimeCommit(
            "s1", fence, append(node("u")), completed_turn_input_claims=(claim.completion(),),
            enqueued_queue_batches=(QueuedWorkDraft("s1", (AgentFrameTask("f", "follow up"),)),
                                    QueuedWorkDraft("s1", (AgentFrameTask("f", "and this"),)))), "t1")
        first = store.sessions.commit(c)
        assert len(first.enqueued_batch_ids) == 2
        assert [b.batch_id for b in store.queue.list("s1")] == list(first.enqueued_batch_ids)
        assert [i.state for i in store.inputs.list("s1")] == [InputState.COMPLETED]  # with the outbox
        backend.clock.advance(10)  # fresh batch ids would differ now
        again = backend.reopen().sessions.commit(c)
        assert again.replayed and again.enqueued_batch_ids == first.enqueued_batch_ids
        assert [b.batch_id for b in backend.store.queue.list("s1")] == list(first.enqueued_batch_ids)

    # --- laws 60-63 ---------------------------------------------------------------------

    def test_law_60_tombstoned_nodes_are_hidden_from_load_node_and_load(self, backend):
        store = self.branched(backend)
        assert store.sessions.load_node("s1", "u1") == node("u1", "root", "hi")
        assert store.sessions.tombstone_nodes("s1", ["u1", "a1", "unknown"]) == 2
        assert store.sessions.tombstone_nodes("s1", ["u1"]) == 0  # idempotent
        assert store.sessions.load_node("s1", "u1") is None and store.sessions.load_node("s1", "nope") is None
        loaded = store.sessions.load("s1")
        assert ids(loaded) == ["root", "u1b", "a1b"] and loaded.graph_node_count == 3
        assert ids(store.sessions.load("s1", graph="active_path", leaf="a1")) == []
        with pytest.raises(InvalidGraphDelta):  # a hidden node is no parent and no leaf
            self.commit(store, "s1", fence_of(store, "s1"), append(node("x", "a1")))
        assert_consistent(store)

    def test_law_61_vacuum_reports_only_the_rows_it_removed(self, backend):
        store = self.branched(backend)
        fence = fence_of(store, "s1")
        store.inputs.enqueue(TurnInputDraft("s1", "one", ActiveTurn("t1")))
        drop = store.inputs.enqueue(TurnInputDraft("s1", "two", ActiveTurn("t1"))).input
        store.inputs.cancel("s1", drop.input_id)
        claim = store.inputs.claim_active(fence, "t1")
        self.commit(store, "s1", fence, completed_turn_input_claims=(claim.completion(),))
        store.sessions.tombstone_nodes("s1", ["u1", "a1"])
        other = backend.open()
        reports = [store.sessions.vacuum("s1"), other.sessions.vacuum("s1")]
        assert [(r.removed_node_count, r.removed_pending_turn_input_tombstone_count) for r in reports] == [
            (2, 2), (0, 0)]
        assert store.inputs.list("s1") == [] and ids(store.sessions.load("s1")) == ["root", "u1b", "a1b"]
        assert_consistent(store)

    def test_law_62_gc_is_always_safe_to_call(self, backend):
        store = backend.store
        assert store.sessions.gc().deleted_blob_count == 0  # an empty store
        self.setup_session(backend)
        fence = fence_of(store, "s1")
        r = self.commit(store, "s1", fence, append(node("a")),
                        checkpoint=Checkpoint(TurnState(1), tool_state=b"tools", execution_state=b"exec"))
        other = backend.open()
        for _ in range(2):
            other.sessions.gc()
            assert store.sessions.load("s1").checkpoint.tool_state == b"tools"
        assert r.checkpoint_ref in set(store.blobs.refs())
        # GC in a loop on another connection while this one commits new checkpoints: every
        # committed checkpoint stays whole
        stop = threading.Event()
        collector = backend.open()

        def collect() -> None:
            while not stop.is_set():
                collector.sessions.gc()

        t = threading.Thread(target=collect)
        t.start()
        try:
            for i in range(30):
                self.commit(store, "s1", fence, checkpoint=Checkpoint(TurnState(i), tool_state=b"tools %d" % i,
                                                                      execution_state=b"exec %d" % (i % 3)))
                cp = store.sessions.load("s1").checkpoint
                assert (cp.tool_state, cp.execution_state) == (b"tools %d" % i, b"exec %d" % (i % 3))
        finally:
            stop.set()
            t.join(30)
        assert len(list(store.read_stream("store:gc"))) > 2

    def test_law_63_gc_deletes_the_superseded_checkpoint_keeps_the_live_one_and_a_second_run_deletes_nothing(
            self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        old = self.commit(store, "s1", fence, checkpoint=Checkpoint(TurnState(1), tool_state=b"old tools",
                                                                     plugin_snapshot=b"kept plugins"))
        at_old = store.last_position()
        live = self.commit(store, "s1", fence, checkpoint=Checkpoint(
            TurnState(2), tool_state=b"new tools", plugin_snapshot_ref=store.sessions.load("s1").checkpoint
            .plugin_snapshot_ref, execution_state=b"exec"))
        report = store.sessions.gc()
        assert report.deleted_refs == tuple(sorted([old.checkpoint_ref, eventstore.blobs.ref_of(b"old tools")]))
        assert report.retained_blob_count == 4 and report.root_count == 1
        cp = store.sessions.load("s1").checkpoint
        assert (cp.tool_state, cp.plugin_snapshot, cp.execution_state) == (b"new tools", b"kept plugins", b"exec")
        assert store.blobs.has(live.checkpoint_ref) and not store.blobs.has(old.checkpoint_ref)
        assert store.sessions.gc().deleted_blob_count == 0
        gc_events = [e for e in store.read_stream("store:gc")]
        assert [e.data.deleted_blob_count for e in gc_events] == [2, 0]
        then = store.sessions.load("s1", at=at_old)  # time travel to the superseded checkpoint
        assert then.checkpoint_ref == old.checkpoint_ref and then.checkpoint is None  # reaped: absent

    # --- laws 64-67 (attachments, reopen) -------------------------------------------------

    def test_law_64_intents_and_commits_are_live_refs_and_refs_are_per_session(self, backend):
        store = self.setup_session(backend)
        store.sessions.create("s2")
        fence = fence_of(store, "s1")
        ref_a, ref_b = store.blobs.put(b"image a"), store.blobs.put(b"image b")
        store.attachments.record_intent("s1", "att-a", ref_a, ("turn", "t1"))
        store.attachments.record_intent("s1", "att-b", ref_b)
        self.commit(store, "s1", fence, append(node("u")), committed_attachment_ids=("att-a",))
        rows = {r.attachment_id: r for r in store.attachments.list_refs("s1")}
        assert rows["att-a"].committed_at_ms is not None and rows["att-b"].committed_at_ms is None
        assert store.attachments.holds_ref("s1", "att-a") and store.attachments.holds_ref("s1", "att-b")
        assert store.attachments.holds_blob("s1", ref_a) and store.attachments.holds_blob("s1", ref_b)
        assert not store.attachments.holds_ref("s2", "att-a") and not store.attachments.holds_blob("s2", ref_a)
        assert store.attachments.list_refs("s2") == []
        store.sessions.gc(min_age_ms=0)
        assert store.blobs.get(ref_a) == b"image a" and store.blobs.get(ref_b) == b"image b"

    def test_law_65_forget_removes_a_ref_from_holds_ref_and_from_the_gc_roots(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        fence = fence_of(store, "s1")
        refs = {name: store.blobs.put(name.encode()) for name in ("plain", "no-owner", "turn-gone", "turn-live",
                                                                   "process", "committed")}
        store.attachments.record_intent("s1", "plain", refs["plain"])
        assert store.attachments.forget("s1", ["plain", "missing"]) == 1
        assert not store.attachments.holds_ref("s1", "plain") and not store.attachments.holds_blob("s1", refs["plain"])
        store.attachments.record_intent("s1", "no-owner", refs["no-owner"])
        store.attachments.record_intent("s1", "turn-gone", refs["turn-gone"], ("turn", "t-crashed"))
        store.attachments.record_intent("s1", "process", refs["process"], ("process", "p-unknown"))
        store.processes.register(ProcessRegistration("p-known", ExternalInput({"job": 1}), Disposition.EXTERNALLY_OWNED,
                                                     Provenance(HostScope())))
        store.attachments.record_intent("s1", "process-live", store.blobs.put(b"live"), ("process", "p-known"))
        store.attachments.record_intent("s1", "committed", refs["committed"])
        self.commit(store, "s1", fence, committed_attachment_ids=("committed",))
        clock.advance(10)
        store.sessions.commit(stamp_turn(RuntimeCommit("s1", fence, append(node("u"))), "t-other"))
        clock.advance(10)
        store.attachments.record_intent("s1", "turn-live", refs["turn-live"], ("turn", "t-next"))
        cutoff = clock()
        clock.advance(10)
        store.attachments.record_intent("s1", "fresh", store.blobs.put(b"fresh"))
        # dead owners: none, a turn superseded by a later turn's commit, a process the registry does not know
        assert store.attachments.forget_aged_intents("s1", cutoff) == 3
        assert {r.attachment_id for r in store.attachments.list_refs("s1")} == {
            "turn-live", "committed", "fresh", "process-live"}
        store.sessions.gc(min_age_ms=0)
        for name in ("plain", "no-owner", "turn-gone", "process"):
            assert not store.blobs.has(refs[name]), name
        assert store.blobs.has(refs["committed"])

    def test_law_66_a_commit_stamp_survives_another_sessions_intent_and_a_repeated_intent(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        store.sessions.create("s2")
        ref = store.blobs.put(b"shared upload")
        store.attachments.record_intent("s1", "att", ref, ("turn", "t1"))
        store.sessions.commit(stamp_turn(RuntimeCommit("s1", fence_of(store, "s1"), append(node("u"))), "t1"))
        stamped = store.attachments.ref("s1", "att").committed_at_ms
        assert stamped is not None  # stamped by the turn that owns it
        clock.advance(50)
        store.attachments.record_intent("s2", "att", ref)
        store.attachments.record_intent("s1", "att", ref, ("turn", "t9"))
        row = store.attachments.ref("s1", "att")
        assert row.committed_at_ms == stamped and row.owner_id == "t9"
        assert store.attachments.ref("s2", "att").committed_at_ms is None
        with pytest.raises(AttachmentConflict):
            store.attachments.record_intent("s1", "att", store.blobs.put(b"other bytes"))
        # a commit never inserts: a forgotten row is not revived by a late commit
        store.attachments.forget("s2", ["att"])
        self.commit(store, "s2", fence_of(store, "s2"), committed_attachment_ids=("att",))
        assert store.attachments.ref("s2", "att") is None

    def test_law_67_head_queue_rows_and_intents_survive_a_reopen(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        ref = store.blobs.put(b"upload")
        store.attachments.record_intent("s1", "att", ref)
        r = self.commit(store, "s1", fence, append(node("u")), checkpoint=Checkpoint(TurnState(3)),
                        enqueued_queue_batches=(QueuedWorkDraft("s1", (AgentFrameTask("f", "later"),)),))
        reopened = backend.reopen()
        loaded = reopened.sessions.load("s1")
        assert (loaded.head_revision, loaded.checkpoint_ref, ids(loaded)) == (1, r.checkpoint_ref, ["u"])
        assert [b.batch_id for b in reopened.queue.list("s1")] == list(r.enqueued_batch_ids)
        assert reopened.attachments.ref("s1", "att").blob_ref == ref

    # --- laws 71-72 ---------------------------------------------------------------------

    def test_law_71_removing_a_session_store_drops_its_graph_and_releases_its_blobs(self, backend):
        # The process side (pruning a process deletes the sessions it owns) belongs to the
        # process registry; this is the session side: a deleted session's head, graph,
        # ledger, stamps and attachments are gone and GC reclaims its blobs.
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        store.attachments.record_intent("s1", "att", store.blobs.put(b"upload"))
        r = store.sessions.commit(stamp_turn(RuntimeCommit(
            "s1", fence, append(node("u")), checkpoint=Checkpoint(TurnState(1), tool_state=b"tools"),
            usage_deltas=(UsageDelta("turn", "m", 1),), agent_frames=(AgentFrame("f", "s1", execution_state_snapshot=b"x"),)),
            "t1"))
        store.sessions.delete("s1")
        assert store.sessions.load("s1") is None and store.attachments.list_refs("s1") == []
        # the upload, the manifest, the tool state and the frame's execution state
        assert store.sessions.gc(min_age_ms=0).deleted_blob_count == 4 and store.blobs.stats()[0] == 0
        assert not store.blobs.has(r.checkpoint_ref)
        store.sessions.create("s1", recreate=True)
        fresh = self.commit(store, "s1", fence_of(store, "s1"), append(node("u")))
        assert fresh.head_revision == 1 and store.sessions.load("s1").token_ledger == ()
        assert_consistent(store)

    def test_law_72_identical_bytes_in_two_sessions_share_one_blob_until_both_release_it(self, backend):
        store = self.setup_session(backend)
        store.sessions.create("s2")
        f1, f2 = fence_of(store, "s1"), fence_of(store, "s2")
        shared = Checkpoint(TurnState(1), tool_state=b"the same tool state")
        r1 = self.commit(store, "s1", f1, checkpoint=shared)
        r2 = self.commit(store, "s2", f2, checkpoint=shared)
        assert r1.checkpoint_ref == r2.checkpoint_ref and store.blobs.stats()[0] == 2
        self.commit(store, "s1", f1, checkpoint=Checkpoint(TurnState(2)))
        store.sessions.gc()
        assert store.sessions.load("s2").checkpoint.tool_state == b"the same tool state"
        self.commit(store, "s2", f2, checkpoint=Checkpoint(TurnState(2)))
        report = store.sessions.gc()
        assert report.deleted_refs == tuple(sorted([r1.checkpoint_ref, eventstore.blobs.ref_of(b"the same tool state")]))
