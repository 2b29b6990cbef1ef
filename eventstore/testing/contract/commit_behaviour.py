"""Runtime-commit behaviour beyond the numbered laws, as a backend contract: graph-delta
validation, full replace and plugin nodes, time travel, checkpoint carry-forward,
automatic and dry-run GC, artifact pointers, interrupts inside a commit."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.commits import InvalidGraphDelta, RuntimeCommit
from eventstore.commits import (
    Checkpoint, EventPayload, GraphReplace, GraphUnchanged, PluginPayload, SessionNode, TurnState,
    UsageDelta,
)
from eventstore.inputs import ActiveTurn, InputState, TurnInputDraft
from eventstore.testing.contract.commits import CommitHelpers, append, fence_of, ids, node
from eventstore.testing.helpers import assert_consistent


class CommitBehaviourContract(CommitHelpers):
    """Behaviour of the runtime commit beyond laws 1-15 and 60-72; subclass with a `backend` fixture."""

    def test_invalid_graph_deltas_are_refused_with_nothing_written(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        self.commit(store, "s1", fence, append(node("a")))
        before = store.last_position()
        for delta, text in ((append(node("a")), "duplicate node id 'a'"),
                            (append(node("b"), node("b", "a")), "duplicate node id 'b'"),
                            (append(node("c", "ghost")), "parent 'ghost'"),
                            (append(node("d", "a"), leaf="nowhere"), "leaf 'nowhere'"),
                            (GraphUnchanged("ghost"), "leaf 'ghost'"),
                            (GraphReplace((node("e", "a"),)), "parent 'a'")):
            with pytest.raises(InvalidGraphDelta, match=text):
                self.commit(store, "s1", fence, delta, checkpoint=Checkpoint(TurnState(9), tool_state=b"t"))
        assert store.last_position() == before and store.blobs.stats()[0] == 0
        for bad, text in ((RuntimeCommit("s1", fence, usage_deltas=(UsageDelta("turn", "m", -1),)), "input"),
                          (RuntimeCommit("s1", fence, expected_head_revision=-1), "expected_head_revision"),
                          (RuntimeCommit("s1", fence, graph="append"), "graph"),
                          (RuntimeCommit("", fence), "session_id")):
            with pytest.raises(eventstore.InvalidArgument, match=text):
                store.sessions.commit(bad)
        with pytest.raises(eventstore.InvalidArgument, match="nodes"):
            self.commit(store, "s1", fence, append(SessionNode("z", EventPayload(object()))))
        assert store.last_position() == before

    def test_replace_drops_every_node_and_plugin_nodes_round_trip(self, backend):
        store = self.branched(backend)
        fence = fence_of(store, "s1")
        store.sessions.tombstone_nodes("s1", ["a1"])
        plugin = SessionNode("p", PluginPayload("memory", {"facts": ["x"]}), caused_by="u1", agent_frame_id="f")
        self.commit(store, "s1", fence, GraphReplace((node("u1"), plugin), None))
        loaded = store.sessions.load("s1")
        assert ids(loaded) == ["u1", "p"] and loaded.nodes[1] == plugin and loaded.leaf_node_id is None
        assert loaded.graph_node_count == 2 and ids(store.sessions.load("s1", graph="active_path")) == []
        self.commit(store, "s1", fence, append(node("a1", "u1")))  # a dropped id is free again
        assert_consistent(store)

    def test_load_at_a_position_shows_the_session_as_it_was(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        marks = []
        for i in range(3):
            self.commit(store, "s1", fence, append(node(f"n{i}", f"n{i - 1}" if i else None)),
                        checkpoint=Checkpoint(TurnState(i)), usage_deltas=(UsageDelta("turn", "m", 10),))
            marks.append(store.last_position())
        then = store.sessions.load("s1", at=marks[1])
        assert then.head_revision == 2 and ids(then) == ["n0", "n1"] and then.position == marks[1]
        assert then.token_ledger == (UsageDelta("turn", "m", 20),) and then.checkpoint.turn_state.turn_index == 1
        assert store.sessions.load("s1", at=1) is None
        with store.at(marks[0]) as view:
            assert ids(view.sessions.load("s1")) == ["n0"]
            with pytest.raises(eventstore.ReadOnlyView):
                view.sessions.commit(RuntimeCommit("s1", fence))
        with pytest.raises(eventstore.InvalidArgument):
            store.sessions.load("s1", at=store.last_position() + 1)

    def test_a_checkpoint_is_carried_forward_and_recorded_only_when_it_changes(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        cp = Checkpoint(TurnState(1), tool_state=b"t")
        first = self.commit(store, "s1", fence, checkpoint=cp)
        same = self.commit(store, "s1", fence, checkpoint=cp)
        carried = self.commit(store, "s1", fence)
        assert first.checkpoint_ref == same.checkpoint_ref == carried.checkpoint_ref
        refs = [e.data.checkpoint_ref for e in store.read_stream("session:s1") if e.type == "session.committed"]
        assert refs == [first.checkpoint_ref, None, None]
        assert store.sessions.load("s1").checkpoint.tool_state == b"t"

    def test_automatic_gc_runs_every_n_commits(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        store.sessions.auto_gc_every_commits = 2
        for i in range(4):
            self.commit(store, "s1", fence, checkpoint=Checkpoint(TurnState(i)))
        assert len(list(store.read_stream("store:gc"))) == 2 and store.blobs.stats()[0] == 1
        store.sessions.auto_gc_every_commits = -1
        with pytest.raises(eventstore.InvalidArgument):
            self.commit(store, "s1", fence)

    def test_gc_dry_run_reports_without_deleting_and_artifact_pointers_are_roots(self, backend):
        store = self.setup_session(backend)
        kept, loose = store.blobs.put(b"module"), store.blobs.put(b"loose")
        store.artifacts.set("lashlang_module", "mod-1", kept)
        store.artifacts.set("lashlang_module", "mod-1", kept)  # unchanged: nothing appended
        assert store.artifacts.list() == [("lashlang_module", "mod-1", kept)]
        before = store.last_position()
        dry = store.sessions.gc(dry_run=True, min_age_ms=0)
        assert dry.dry_run and dry.deleted_refs == (loose,) and store.blobs.has(loose)
        assert store.last_position() == before
        assert store.sessions.gc(min_age_ms=0).deleted_refs == (loose,) and store.blobs.has(kept)
        store.artifacts.set("lashlang_module", "mod-1", None)
        assert store.artifacts.get("lashlang_module", "mod-1") is None
        assert store.sessions.gc(min_age_ms=0).deleted_refs == (kept,)

    def test_an_interrupt_in_a_commit_defers_the_turns_unaccepted_inputs(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        store.inputs.enqueue(TurnInputDraft("s1", "taken", ActiveTurn("t1")))
        claim = store.inputs.claim_active(fence, "t1")
        store.inputs.enqueue(TurnInputDraft("s1", "late", ActiveTurn("t1")))
        self.commit(store, "s1", fence, append(node("u")), completed_turn_input_claims=(claim.completion(),),
                    interrupted_turn_input_turn_id="t1")
        assert [(i.input, i.state) for i in store.inputs.list("s1")] == [
            ("taken", InputState.COMPLETED), ("late", InputState.DEFERRED_NEXT_TURN)]

    def test_a_commit_result_returns_its_outbox_batches_and_a_replay_the_original_ones(self, backend):
        """outbox_batches are the enqueued batches (ids, payloads, source keys) in draft order;
        a replayed turn stamp returns the same batches even after they were claimed and settled."""
        from eventstore.commits import stamp_turn
        from eventstore.queue import AgentFrameTask, QueuedWorkDraft

        store = self.setup_session(backend)
        fence = fence_of(store, "s1")
        drafts = (QueuedWorkDraft("s1", (AgentFrameTask("f", "follow up"),), source_key="outbox-1"),
                  QueuedWorkDraft("s1", (AgentFrameTask("f", "and this"),)))
        c = stamp_turn(RuntimeCommit("s1", fence, append(node("u")), enqueued_queue_batches=drafts), "t1")
        first = store.sessions.commit(c)
        assert [b.batch_id for b in first.outbox_batches] == list(first.enqueued_batch_ids)
        assert [b.source_key for b in first.outbox_batches] == ["outbox-1", None]
        assert [[i.payload for i in b.items] for b in first.outbox_batches] == [[d.payloads[0]] for d in drafts]
        assert first.outbox_batches == tuple(store.queue.get("s1", b) for b in first.enqueued_batch_ids)
        claim = store.queue.claim_ready(fence, max_batches=2)
        store.queue.complete(claim)  # settled: gone from the queue
        again = backend.reopen().sessions.commit(c)
        assert again.replayed and again.outbox_batches == first.outbox_batches
        assert self.commit(backend.store, "s1", fence).outbox_batches == ()

    def test_a_store_wide_vacuum_covers_every_active_session_in_one_call(self, backend):
        """vacuum_all removes tombstoned nodes and terminal inputs of every active session,
        reports totals and the sessions it touched, and a repeat removes nothing."""
        store = self.setup_session(backend)
        for sid in ("s2", "quiet"):
            store.sessions.create(sid)
        for sid in ("s1", "s2"):
            self.commit(store, sid, fence_of(store, sid), append(node("a"), node("b", "a")))
        store.sessions.tombstone_nodes("s1", ["b"])
        store.sessions.tombstone_nodes("s2", ["a", "b"])
        gone = store.inputs.enqueue(TurnInputDraft("s2", "stale", ActiveTurn("t0"))).input
        store.inputs.cancel("s2", gone.input_id)
        report = store.sessions.vacuum_all()
        assert (report.removed_node_count, report.removed_pending_turn_input_tombstone_count) == (3, 1)
        assert [(sid, r.removed_node_count, r.removed_pending_turn_input_tombstone_count)
                for sid, r in report.sessions] == [("s1", 1, 0), ("s2", 2, 1)]
        position = store.last_position()
        again = store.sessions.vacuum_all()
        assert (again.removed_node_count, again.sessions) == (0, ()) and store.last_position() == position
        assert store.sessions.vacuum("s1").removed_node_count == 0  # the per-session call stays
        assert ids(store.sessions.load("s1")) == ["a"] and ids(store.sessions.load("s2")) == []
        assert_consistent(store)
