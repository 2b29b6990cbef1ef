"""A hypothesis state machine over runtime commits: two writers (two connections) commit
random graph deltas, checkpoints, frames, usage, turn stamps, queue completions and
outbox batches, with stale revisions, stale fences after lease loss, replays of stamped
turns, tombstones, vacuum and blob GC.

The machine keeps a pure model of the session and predicts every outcome (which typed
error, in the reference's order of checks, or success). Invariants after every step:
* the loaded head and graph equal the model;
* the head equals a pure fold of the `session:s1` events in the log;
* a failed commit appended nothing;
* GC never deletes a reachable blob (after a GC exactly the reachable blobs remain);
* the projections equal a rebuild and a time-travel replay (helpers.assert_consistent).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

import eventstore
from eventstore.blobs import ref_of
from eventstore.commits import HeadRevisionConflict, InvalidGraphDelta, RuntimeTurnCommitConflict
from eventstore.commits import RuntimeCommit
from eventstore.commits import (
    AgentFrame, Checkpoint, EventPayload, GraphAppend, GraphReplace, GraphUnchanged, SessionNode, TurnState,
    UsageDelta,
)
from eventstore.leases import Acquired, SessionExecutionLeaseExpired, LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkClaimSuperseded, QueuedWorkDraft
from eventstore.commits import stamp_turn
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine

SID = "s1"
TTL_MS = 10_000
TOOL_STATES = (b"tools-a", b"tools-b", b"tools-c")
SOURCES = (("turn", "m1"), ("tool", "m1"), ("turn", "m2"))


def fold(events: Any) -> dict:
    """A pure fold of a session's events: the head and graph the log implies."""
    order: list[str] = []
    parent: dict[str, str | None] = {}
    tomb: set[str] = set()
    ledger: dict[tuple[str, str], list[int]] = {}
    state: dict[str, Any] = {"revision": 0, "leaf": None, "checkpoint_ref": None}
    for ev in events:
        d = ev.data
        if ev.type == "session.committed":
            if d.details is not None and d.details.graph_replaced:
                order.clear()
                tomb.clear()
            for n in d.nodes:
                order.append(n.id)
                parent[n.id] = n.parent
            state["revision"], state["leaf"] = d.revision, d.leaf_node_id
            if d.checkpoint_ref is not None:
                state["checkpoint_ref"] = d.checkpoint_ref
            for source, model, *counts in d.usage:
                acc = ledger.setdefault((source, model), [0] * 5)
                for i, c in enumerate(counts):
                    acc[i] += c
        elif ev.type == "session.nodes_tombstoned":
            tomb |= set(d.node_ids)
        elif ev.type == "session.vacuumed":
            order[:] = [n for n in order if n not in tomb]
            tomb.clear()
    state["live"] = [n for n in order if n not in tomb]
    state["ledger"] = [UsageDelta(s, m, *acc) for (s, m), acc in ledger.items() if sum(acc)]
    return state


@attrs.define
class Model:
    """What the session must look like."""

    revision: int = 0
    order: list[str] = attrs.Factory(list)
    parent: dict[str, str | None] = attrs.Factory(dict)
    tomb: set[str] = attrs.Factory(set)
    leaf: str | None = None
    checkpoint: tuple[int, bytes] | None = None
    frame_state: bytes | None = None
    ledger: dict[tuple[str, str], list[int]] = attrs.Factory(dict)
    stamps: dict[str, tuple[RuntimeCommit, Any]] = attrs.Factory(dict)

    def live(self) -> list[str]:
        return [n for n in self.order if n not in self.tomb]

    def path(self, leaf: str | None) -> list[str]:
        out: list[str] = []
        present = set(self.order)
        node = leaf
        while node is not None and node in present and node not in self.tomb:
            out.append(node)
            node = self.parent[node]
        return out[::-1]


class CommitMachine(BackendMachine):
    """One session, two writers, leases that are lost and retaken."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        backend = self.open_backend(self.clock)
        self.store = backend.store
        self.writers = [self.store, backend.open()]
        self.seen = [0, 0]
        self.model = Model()
        self.next_id = 0
        self.owner_no = 0
        self.fence: Any = None
        self.stale_fences: list[Any] = []
        self.claims: list[Any] = []  # (claim, still held)
        self.live_claims: set[str] = set()
        self.attached: dict[str, tuple[bytes, bool]] = {}  # attachment id -> (bytes, committed)


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(stateful_step_count=40)

    @initialize()
    def start(self) -> None:
        self.store.sessions.create(SID)
        self.take_lease()

    # --- helpers ---

    def take_lease(self) -> None:
        self.owner_no += 1
        got = self.store.leases.claim(SID, LeaseOwner(f"runtime-{self.owner_no}", "i1"), TTL_MS)
        assert isinstance(got, Acquired), got
        if self.fence is not None:
            self.stale_fences.append(self.fence)
        self.fence = got.lease.fence
        self.live_claims.clear()  # a new generation supersedes every older claim

    def new_node(self, parent: str | None) -> SessionNode:
        self.next_id += 1
        nid = f"n{self.next_id}"
        return SessionNode(nid, EventPayload({"role": "user", "parts": [{"kind": "text", "content": nid}]}), parent,
                           timestamp="2026-01-01T00:00:00Z")

    def pick(self, items: list[str], k: int) -> str | None:
        return items[k % len(items)] if items else None

    def reachable(self) -> set[str]:
        head = self.store.sessions.load(SID, graph="none")
        refs: set[str] = set()
        if head is not None and head.checkpoint_ref is not None:
            refs.add(head.checkpoint_ref)
            cp = head.checkpoint
            refs |= {r for r in (cp.tool_state_ref, cp.plugin_snapshot_ref, cp.execution_state_ref) if r}
        if head is not None:
            refs |= {f.execution_state_ref for f in head.agent_frames if f.execution_state_ref}
        return refs | set(self.attached)  # an attachment's id is its blob ref

    # --- rules ---

    @rule(writer=st.integers(0, 1), kind=st.sampled_from(["append", "append", "append", "unchanged", "replace",
                                                          "bad"]),
          count=st.integers(1, 3), picks=st.lists(st.integers(0, 99), min_size=4, max_size=4),
          checkpoint=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.sampled_from(TOOL_STATES))),
          frame=st.one_of(st.none(), st.sampled_from([b"exec-1", b"exec-2"])),
          usage=st.lists(st.tuples(st.sampled_from(SOURCES), st.integers(0, 3)), max_size=2),
          use_cas=st.booleans(), stale_fence=st.booleans(), stamp=st.one_of(st.none(), st.sampled_from(["t1", "t2", "t3"])),
          outbox=st.integers(0, 2), complete=st.booleans())
    def commit(self, writer: int, kind: str, count: int, picks: list[int], checkpoint: Any, frame: Any,
               usage: list, use_cas: bool, stale_fence: bool, stamp: str | None, outbox: int, complete: bool) -> None:
        m = self.model
        live = m.live()
        new_nodes: list[SessionNode] = []
        if kind in ("append", "replace"):
            pool = [] if kind == "replace" else list(live)
            first_parent = self.pick(pool + [None], picks[0])  # type: ignore[list-item]
            for i in range(count):
                n = self.new_node(first_parent if i == 0 else new_nodes[-1].node_id)
                new_nodes.append(n)
            leaf = self.pick([n.node_id for n in new_nodes], picks[1])
            graph: Any = GraphAppend(tuple(new_nodes), leaf) if kind == "append" else GraphReplace(tuple(new_nodes), leaf)
        elif kind == "unchanged":
            graph = GraphUnchanged(self.pick(live, picks[1]))
        else:  # an invalid delta: a duplicate id (tombstoned ones count), else a parent that does not exist
            taken = self.pick(m.order, picks[2])
            bad = SessionNode(taken, EventPayload("dup")) if taken is not None else self.new_node("ghost")
            graph = GraphAppend((bad,))
        fence = self.fence
        if stale_fence and self.stale_fences:
            fence = self.stale_fences[picks[3] % len(self.stale_fences)]
        claim = self.claims[picks[3] % len(self.claims)] if complete and self.claims else None
        completions = (claim.completion(),) if claim is not None else ()
        c = RuntimeCommit(
            SID, fence, graph, expected_head_revision=self.seen[writer] if use_cas else None,
            checkpoint=Checkpoint(TurnState(checkpoint[0]), tool_state=checkpoint[1]) if checkpoint else None,
            agent_frames=(AgentFrame("f1", SID, execution_state_snapshot=frame),) if frame else (),
            current_agent_frame_id="f1" if frame else None,
            usage_deltas=tuple(UsageDelta(s, mdl, n) for (s, mdl), n in usage),
            completed_queue_claims=completions,
            enqueued_queue_batches=tuple(QueuedWorkDraft(SID, (AgentFrameTask("f1", f"out-{i}"),))
                                         for i in range(outbox)))
        if stamp is not None:
            c = stamp_turn(c, stamp)
        # --- predict, in the reference's order of checks ---
        expected_error: type | None = None
        lease_live = self.clock() < self.lease_expiry and fence == self.fence
        if stamp is not None and stamp in m.stamps:
            stored_commit, stored_result = m.stamps[stamp]
            if stored_commit.turn_commit == c.turn_commit:  # same content: the original result, nothing written
                self.expect_replay(writer, c, stored_result)
                return
            expected_error = RuntimeTurnCommitConflict
        elif not lease_live:
            expected_error = SessionExecutionLeaseExpired
        elif use_cas and self.seen[writer] != m.revision:
            expected_error = HeadRevisionConflict
        elif completions and completions[0].claim_id not in self.live_claims:
            expected_error = QueuedWorkClaimSuperseded
        elif kind == "bad":
            expected_error = InvalidGraphDelta
        before = self.store.last_position()
        blobs_before = set(self.store.blobs.refs())
        try:
            result = self.writers[writer].sessions.commit(c)
        except (RuntimeTurnCommitConflict, SessionExecutionLeaseExpired, HeadRevisionConflict,
                QueuedWorkClaimSuperseded, InvalidGraphDelta) as exc:
            assert expected_error is not None and isinstance(exc, expected_error), (exc, expected_error)
            assert self.store.last_position() == before and set(self.store.blobs.refs()) == blobs_before
            if isinstance(exc, HeadRevisionConflict):
                assert exc.actual == m.revision
                self.seen[writer] = exc.actual
            return
        assert expected_error is None, f"expected {expected_error.__name__}, committed {result}"
        # --- apply to the model ---
        m.revision += 1
        assert result.head_revision == m.revision and len(result.enqueued_batch_ids) == outbox
        self.seen[writer] = m.revision
        if kind == "replace":
            m.order.clear()
            m.tomb.clear()
            m.leaf = graph.leaf
        elif graph.leaf is not None:
            m.leaf = graph.leaf
        for n in new_nodes:
            m.order.append(n.node_id)
            m.parent[n.node_id] = n.parent_node_id
        if checkpoint is not None:
            m.checkpoint = checkpoint
        m.frame_state = frame
        for (s, mdl), n in usage:
            m.ledger.setdefault((s, mdl), [0] * 5)[0] += n
        for comp in completions:
            self.live_claims.discard(comp.claim_id)
        if stamp is not None:
            m.stamps[stamp] = (c, result)

    def expect_replay(self, writer: int, c: RuntimeCommit, original: Any) -> None:
        before = self.store.last_position()
        again = self.writers[writer].sessions.commit(c)
        assert again.replayed and (again.head_revision, again.checkpoint_ref, again.enqueued_batch_ids) == (
            original.head_revision, original.checkpoint_ref, original.enqueued_batch_ids)
        assert self.store.last_position() == before

    @rule(writer=st.integers(0, 1))
    def refresh(self, writer: int) -> None:
        """A writer reads the head and catches up with the revision."""
        self.seen[writer] = self.writers[writer].sessions.load(SID, graph="none").head_revision \
            if self.model.revision else 0

    @precondition(lambda self: bool(self.model.stamps))
    @rule(k=st.integers(0, 9), writer=st.integers(0, 1), stale=st.booleans())
    def replay_stamped_turn(self, k: int, writer: int, stale: bool) -> None:
        """A retried turn gets the original result back, whatever its revision or fence."""
        c, original = list(self.model.stamps.values())[k % len(self.model.stamps)]
        self.expect_replay(writer, attrs.evolve(c, expected_head_revision=self.seen[writer] + 7,
                                                lease=self.stale_fences[0] if stale and self.stale_fences else None),
                           original)

    @rule(reclaim=st.booleans())
    def lose_lease(self, reclaim: bool) -> None:
        """The holder stalls past its TTL; maybe another runtime takes the session over."""
        self.clock.advance(TTL_MS)
        if reclaim:
            self.take_lease()

    @precondition(lambda self: self.clock() >= self.lease_expiry)
    @rule()
    def retake_lease(self) -> None:
        self.take_lease()

    @rule()
    def enqueue_and_claim(self) -> None:
        """Queued work arrives and the live holder claims it (if the lease is live)."""
        self.store.queue.enqueue(QueuedWorkDraft(SID, (AgentFrameTask("f1", f"work-{self.next_id}"),)))
        if self.clock() < self.lease_expiry:
            claim = self.store.queue.claim_ready(self.fence)
            if claim is not None:
                self.claims.append(claim)
                self.live_claims.add(claim.claim_id)

    @rule(picks=st.lists(st.integers(0, 99), min_size=1, max_size=3))
    def tombstone(self, picks: list[int]) -> None:
        live = self.model.live()
        chosen = {self.pick(live, p) for p in picks} - {None}
        assert self.store.sessions.tombstone_nodes(SID, sorted(chosen)) == len(chosen)
        self.model.tomb |= chosen  # type: ignore[arg-type]

    @rule(writer=st.integers(0, 1))
    def vacuum(self, writer: int) -> None:
        report = self.writers[writer].sessions.vacuum(SID)
        assert report.removed_node_count == len(self.model.tomb)
        self.model.order = self.model.live()
        self.model.tomb.clear()

    @rule(writer=st.integers(0, 1), k=st.integers(0, 3), action=st.sampled_from(("put", "commit_refs", "release")))
    def attachment(self, writer: int, k: int, action: str) -> None:
        """Put, stamp committed (outside a commit, no lease) or release one of four attachments."""
        data = f"attachment {k}".encode()
        att = self.writers[writer].attachments
        if action == "put":
            ref = att.put(SID, data, "text/plain", f"a{k}")
            committed = self.attached.get(ref.id, (data, False))[1]
            self.attached[ref.id] = (data, committed)
            assert (ref.committed_at_ms is not None) == committed and ref.size == len(data)
            return
        ids = [i for i, (d, _c) in self.attached.items() if d == data] or ["never-put"]
        if action == "commit_refs":
            fresh = [i for i in ids if i in self.attached and not self.attached[i][1]]
            assert att.commit_refs(SID, ids) == len(fresh)
            for i in fresh:
                self.attached[i] = (data, True)
        else:
            assert att.release(SID, ids[0]) == (ids[0] in self.attached)
            self.attached.pop(ids[0], None)

    @rule(writer=st.integers(0, 1))
    def gc(self, writer: int) -> None:
        reachable = self.reachable()
        # No minimum age here: every blob no root holds must go, attachment puts included.
        self.writers[writer].sessions.gc(min_age_ms=0)
        assert set(self.store.blobs.refs()) == reachable  # nothing reachable went, nothing else stayed
        assert self.store.sessions.gc(min_age_ms=0).deleted_blob_count == 0

    # --- invariants ---

    @property
    def lease_expiry(self) -> int:
        state = self.store.leases.get(SID)
        return state.holder.expires_at_ms if state is not None and state.holder is not None else 0

    @invariant()
    def the_attachments_match_the_model(self) -> None:
        rows = {r.attachment_id: r for r in self.store.attachments.list_refs(SID)}
        assert {i: r.committed_at_ms is not None for i, r in rows.items()} == {
            i: c for i, (_d, c) in self.attached.items()}
        for i, (data, _c) in self.attached.items():
            assert self.store.attachments.get(SID, i) == data and self.store.attachments.holds_ref(SID, i)

    @invariant()
    def the_head_matches_the_model_and_the_fold_of_the_log(self) -> None:
        m = self.model
        loaded = self.store.sessions.load(SID)
        if m.revision == 0:
            assert loaded is None
            return
        assert loaded.head_revision == m.revision and loaded.leaf_node_id == m.leaf
        assert [n.node_id for n in loaded.nodes] == m.live() and loaded.graph_node_count == len(m.live())
        path = self.store.sessions.load(SID, graph="active_path")
        assert [n.node_id for n in path.nodes] == m.path(m.leaf)
        if m.checkpoint is None:
            assert loaded.checkpoint_ref is None
        else:
            assert loaded.checkpoint.turn_state.turn_index == m.checkpoint[0]
            assert loaded.checkpoint.tool_state == m.checkpoint[1]  # every reachable blob is there
            assert loaded.checkpoint.tool_state_ref == ref_of(m.checkpoint[1])
        assert [f.execution_state_snapshot for f in loaded.agent_frames] == ([m.frame_state] if m.frame_state else [])
        assert loaded.token_ledger == tuple(UsageDelta(s, mdl, *acc) for (s, mdl), acc in m.ledger.items()
                                            if sum(acc))
        folded = fold(self.store.read_stream(f"session:{SID}"))
        assert (folded["revision"], folded["leaf"], folded["checkpoint_ref"], folded["live"]) == (
            m.revision, m.leaf, loaded.checkpoint_ref, m.live())
        assert tuple(folded["ledger"]) == loaded.token_ledger

    @invariant()
    def the_projections_equal_a_rebuild_and_a_replay(self) -> None:
        assert_consistent(self.store)

