"""Queued-work behaviour beyond the numbered laws (docs/semantics.md §4) as a backend contract.

`QueueExtendedContract` is mixed into `QueueContract` (queue.py), so every backend that
binds the queue contract runs these tests too. The helpers that build owners, drafts and
fences live here and are shared with queue.py.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator

import pytest

import eventstore
from eventstore.leases import Acquired, LeaseOwner, LocalProcessLiveness
from eventstore.processes import AppendEventRequest, ExternalOwner, SessionScope, Success
from eventstore.queue import (
    AgentFrameTask, ClaimBoundary, DeliveryPolicy, MergeKey, ProcessWake, QueuedWorkClaimSuperseded,
    QueuedWorkCompletion, QueuedWorkDraft, RefreshToolCatalog, SlotPolicy,
)
from eventstore.testing.contract.processes import S1, registration, wake_type
from eventstore.testing import Backend
from eventstore.testing.helpers import assert_consistent

SAFE = DeliveryPolicy.EARLIEST_SAFE_BOUNDARY
AFTER = DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT
JOIN, EXCL = SlotPolicy.JOIN, SlotPolicy.EXCLUSIVE
IDLE, CHECKPOINT = ClaimBoundary.IDLE, ClaimBoundary.ACTIVE_TURN_CHECKPOINT


def owner(name: str, incarnation: str = "i1", pid: int | None = None) -> LeaseOwner:
    """An opaque owner, or a local-process one on a test host when `pid` is given."""
    if pid is None:
        return LeaseOwner(name, incarnation)
    return LeaseOwner(name, incarnation, LocalProcessLiveness("host-1", "boot-1", pid, 500))


def fence_of(store: eventstore.Store, sid: str, who: LeaseOwner, ttl_ms: int = 60_000) -> Any:
    """Acquire the session lease for `who` and return its fence."""
    got = store.leases.claim(sid, who, ttl_ms)
    assert isinstance(got, Acquired), got
    return got.lease.fence


def task(sid: str, text: str, delivery: DeliveryPolicy = SAFE, slot: SlotPolicy = JOIN,
         merge: MergeKey = MergeKey.PAYLOAD_DEFAULT, **kw: Any) -> QueuedWorkDraft:
    """A one-task turn-work draft."""
    return QueuedWorkDraft(sid, (AgentFrameTask("frame-1", text),), delivery, slot, merge, **kw)


def command(sid: str, reason: str = "tools changed") -> QueuedWorkDraft:
    """A session-command draft."""
    return QueuedWorkDraft(sid, (RefreshToolCatalog(reason),), slot_policy=EXCL)


def texts(batches: Any) -> list[str]:
    """The task text of each batch."""
    return [b.items[0].payload.task if isinstance(b.items[0].payload, AgentFrameTask) else "cmd" for b in batches]


@contextlib.contextmanager
def write_transactions(store: eventstore.Store) -> Iterator[list[bool]]:
    """After the block: one True per write transaction the store's connection began in it
    (read through the storage seam's counter, so any backend can be observed)."""
    seen: list[bool] = []
    before = store.db.write_serial
    try:
        yield seen
    finally:
        seen.extend([True] * (store.db.write_serial - before))


class QueueExtendedContract:
    """Batch shape checks, source keys of pruned processes and wakes aimed at a frame;
    mixed into `QueueContract`."""

    def setup_session(self, backend: Backend, sid: str = "s1") -> eventstore.Store:
        backend.store.sessions.create(sid)
        return backend.store

    def enqueue(self, store: eventstore.Store, draft: QueuedWorkDraft) -> Any:
        return store.queue.enqueue(draft).batch

    # --- beyond the reference ------------------------------------------------------------

    def test_an_empty_or_mixed_batch_is_refused_at_enqueue_and_nothing_is_written(self, backend):
        from eventstore.queue import InvalidBatchPayloads

        store = self.setup_session(backend)
        before = store.last_position()
        for payloads in ((), (AgentFrameTask("f", "x"), RefreshToolCatalog()), ("not a payload",)):
            with pytest.raises(InvalidBatchPayloads):
                store.queue.enqueue(QueuedWorkDraft("s1", payloads))
        with pytest.raises(eventstore.InvalidArgument, match="merge_key"):
            store.queue.enqueue(task("s1", "x", merge=MergeKey("group")))
        with pytest.raises(eventstore.InvalidArgument, match="available_at_ms"):
            store.queue.enqueue(task("s1", "x", available_at_ms=-1))
        assert store.last_position() == before and store.queue.list("s1") == []

    def test_a_completed_source_key_stays_known_so_a_replayed_wake_is_not_enqueued_twice(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        wake = ProcessWake("proc-1", 1, "wake:1")
        first = store.queue.enqueue(QueuedWorkDraft.for_wake("s1", wake))
        store.queue.complete(store.queue.claim_ready(fence_of(store, "s1", owner("a"))))
        clock.advance(60_000)
        before = store.last_position()
        replay = store.queue.enqueue(QueuedWorkDraft.for_wake("s1", wake))
        assert not replay.created and replay.disposition == "completed"
        assert replay.batch.batch_id == first.batch.batch_id and replay.batch.state == "completed"
        assert replay.batch.items == first.batch.items
        assert store.last_position() == before and store.queue.list("s1") == []
        # a cancelled batch's key is remembered the same way
        gone = store.queue.enqueue(task("s1", "x", source_key="k"))
        store.queue.cancel("s1", gone.batch.batch_id)
        assert store.queue.enqueue(task("s1", "x", source_key="k")).disposition == "cancelled"

    def test_source_key_retention_is_configurable_and_an_expired_key_enqueues_again(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        assert store.queue.completed_source_key_retention_ms == 7 * 86_400_000
        store.queue.completed_source_key_retention_ms = 10_000
        first = store.queue.enqueue(task("s1", "x", source_key="k"))
        store.queue.complete(store.queue.claim_ready(fence_of(store, "s1", owner("a"))))
        clock.advance(9_999)
        assert not store.queue.enqueue(task("s1", "x", source_key="k")).created
        clock.advance(1)
        again = store.queue.enqueue(task("s1", "x", source_key="k"))
        assert again.created and again.batch.batch_id != first.batch.batch_id
        assert store.queue.source_key("s1", "k").batch_id == again.batch.batch_id
        with pytest.raises(eventstore.InvalidArgument):
            store.queue.completed_source_key_retention_ms = -1
        store.queue.completed_source_key_retention_ms = None  # forever
        assert store.queue.completed_source_key_retention_ms is None

    def test_forgetting_settled_source_keys_prunes_only_keys_older_than_the_retention(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        store.queue.completed_source_key_retention_ms = 1_000
        fence = fence_of(store, "s1", owner("a"), ttl_ms=10 ** 9)
        store.queue.enqueue(task("s1", "old", slot=EXCL, source_key="old"))
        store.queue.complete(store.queue.claim_ready(fence))
        clock.advance(2_000)
        store.queue.enqueue(task("s1", "new", slot=EXCL, source_key="new"))
        store.queue.complete(store.queue.claim_ready(fence))
        store.queue.enqueue(task("s1", "queued", source_key="queued"))
        assert store.queue.forget_settled_source_keys("s1") == 1
        assert store.queue.source_key("s1", "old") is None
        assert store.queue.source_key("s1", "new").status == "completed"
        assert store.queue.source_key("s1", "queued").status == "present"
        assert store.queue.forget_settled_source_keys("s1") == 0
        assert_consistent(store)

    # --- source keys of pruned processes ------------------------------------------------

    def wake(self, store: eventstore.Store, pid: str, text: str = "w") -> Any:
        """Register `pid` waking s1 (idempotent), append a wake event; the wake's `Enqueued`."""
        store.processes.register(registration(pid, wake_type(), wake_target=S1))
        request = AppendEventRequest("producer.wake", {"wake_input": text})
        return store.processes.append_event_and_enqueue(pid, request).enqueued

    def wake_and_settle(self, store: eventstore.Store, fence: Any, pid: str, text: str = "w") -> Any:
        """`wake`, then complete the wake's batch (its key settles)."""
        woke = self.wake(store, pid, text)
        claim = store.queue.claim_by_ids(fence, [woke.batch.batch_id])
        assert claim is not None
        store.queue.complete(claim)
        return woke

    def finish_and_prune(self, backend: Any, *pids: str) -> None:
        """Make the processes terminal and prune them (a millisecond later, so they are older)."""
        for pid in pids:
            backend.store.processes.complete(pid, Success(None), ExternalOwner("ops"))
        assert backend.store.processes.prune(backend.clock.advance(1)).pruned_processes == tuple(sorted(pids))

    def test_a_pruned_process_registered_again_wakes_its_session_again(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1", owner("a"), ttl_ms=10 ** 9)
        old = self.wake_and_settle(store, fence, "p1", "old")
        key = "process:p1:event:1:wake"
        assert old.batch.source_key == key and store.queue.source_key("s1", key).status == "completed"
        self.finish_and_prune(backend, "p1")
        assert store.queue.source_key("s1", key) is None  # the prune forgot the settled key
        new = self.wake(store, "p1", "new")  # registered again: its events restart at 1
        assert new.created and new.disposition == "enqueued" and new.batch.source_key == key
        assert new.batch.batch_id != old.batch.batch_id
        assert [b.batch_id for b in store.queue.list("s1")] == [new.batch.batch_id]
        assert_consistent(store)

    def test_a_process_prune_forgets_exactly_the_pruned_ids_wake_keys(self, backend):
        # Ids that a LIKE pattern or a bare prefix would confuse: `_` and `%` are LIKE
        # wildcards, `p1` is a prefix of `p10`, and `p1:event:1`'s keys start with `p1`'s prefix.
        store = self.setup_session(backend)
        fence = fence_of(store, "s1", owner("a"), ttl_ms=10 ** 9)
        pruned, kept = ("p1", "p_1", "p%"), ("p10", "px1", "pzz", "p1:event:1")
        for pid in pruned + kept:
            self.wake_and_settle(store, fence, pid)
        manual = task("s1", "x", slot=EXCL, source_key="process:p1:event:x:wake")  # not a wake key of p1
        store.queue.complete(store.queue.claim_by_ids(fence, [self.enqueue(store, manual).batch_id]))
        self.finish_and_prune(backend, *pruned)
        for pid in pruned:
            assert store.queue.source_key("s1", f"process:{pid}:event:1:wake") is None, pid
        for key in [f"process:{pid}:event:1:wake" for pid in kept] + ["process:p1:event:x:wake"]:
            assert store.queue.source_key("s1", key).status == "completed", key
        assert_consistent(store)

    def test_a_wake_queued_when_its_process_is_pruned_stays_queued_and_its_key_goes_when_it_settles(self, backend):
        # Pending work is never dropped: the old wake stays queued under its key, and the
        # re-registered id's wake with that key joins it (law 29). Once it settles the key
        # is forgotten, not remembered, so the new process's later wakes are never lost.
        store = self.setup_session(backend)
        fence = fence_of(store, "s1", owner("a"), ttl_ms=10 ** 9)
        old = [self.wake(store, "p1", "old 1"), self.wake(store, "p1", "old 2")]
        self.finish_and_prune(backend, "p1")
        keys = [w.batch.source_key for w in old]
        assert [store.queue.source_key("s1", k).status for k in keys] == ["present", "present"]
        store.queue.complete(store.queue.claim_by_ids(fence, [old[1].batch.batch_id]))  # settles before its rewake
        assert store.queue.source_key("s1", keys[1]) is None
        joined, fresh = self.wake(store, "p1", "new 1"), self.wake(store, "p1", "new 2")
        assert (joined.created, joined.disposition, joined.batch.batch_id) == (False, "present", old[0].batch.batch_id)
        assert (fresh.created, fresh.disposition, fresh.batch.source_key) == (True, "enqueued", keys[1])
        store.queue.complete(store.queue.claim_by_ids(fence, [old[0].batch.batch_id]))
        assert store.queue.source_key("s1", keys[0]) is None
        assert store.queue.source_key("s1", keys[1]).batch_id == fresh.batch.batch_id
        assert_consistent(store)

    # --- wakes aimed at a frame ------------------------------------------------------------

    def test_a_wake_aimed_at_a_frame_is_claimed_back_with_its_scope_and_input(self, backend):
        store = self.setup_session(backend)
        store.processes.register(registration("p", wake_type(), wake_target=SessionScope("s1", "f1")))
        request = AppendEventRequest("producer.wake", {"wake_input": "build failed"})
        woke = store.processes.append_event_and_enqueue("p", request)
        delivery = woke.append.wake_delivery
        assert delivery.target_scope_id == "session:s1/frame:f1"
        claim = store.queue.claim_ready(fence_of(store, "s1", owner("a")))
        [wake] = [item.payload for batch in claim.batches for item in batch.items]
        assert (wake.target_scope_id, wake.frame_id, wake.input) == ("session:s1/frame:f1", "f1", "build failed")
        assert (wake.process_id, wake.sequence, wake.wake_id) == ("p", 1, delivery.wake_id)
        assert store.queue.list("s1")[0].items[0].payload == wake  # the read model keeps them too
        assert_consistent(store)

    def test_a_wake_aimed_at_the_whole_session_has_no_frame(self, backend):
        store = self.setup_session(backend)
        woke = self.wake(store, "p", "tests passed")
        [wake] = woke.batch.payloads
        assert (wake.target_scope_id, wake.frame_id, wake.input) == ("session:s1", None, "tests passed")
        claim = store.queue.claim_ready(fence_of(store, "s1", owner("a")))
        assert claim.batches[0].payloads == (wake,)
        assert_consistent(store)

    def test_a_wake_aimed_at_another_session_is_refused_at_enqueue_and_nothing_is_written(self, backend):
        store = self.setup_session(backend)
        before = store.last_position()
        for scope in ("session:s2", "session:s2/frame:f1", "session:s1/frame:", "host", "session:s10"):
            wake = ProcessWake("p", 1, "w", "t", scope, "x")
            with pytest.raises(eventstore.InvalidArgument, match=r"payloads\[0\]\.target_scope_id"):
                store.queue.enqueue(QueuedWorkDraft.for_wake("s1", wake))
        assert store.last_position() == before and store.queue.list("s1") == []

    def test_ids_and_claim_tokens_are_derived_from_recorded_data(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, QueuedWorkDraft("s1", (AgentFrameTask("f", "x"), AgentFrameTask("f", "y")),
                                                source_key="sk"))
        ev = [e for e in store.read_stream("session:s1") if e.type == "queue.batch_enqueued"][-1].data
        seed = f"s1:{'sk'!r}:{ev.enqueued_at_ms}:{ev.enqueue_seq}"
        assert b.batch_id == "qwb:" + hashlib.sha256(seed.encode()).hexdigest()
        assert [i.item_id for i in b.items] == [f"{b.batch_id}:item:0", f"{b.batch_id}:item:1"]
        who = owner("a")
        claim = store.queue.claim_ready(fence_of(store, "s1", who))
        assert claim.claim_id == f"qwc:{b.enqueue_seq}:1" and claim.fencing_token == 1
        token_seed = f"s1:a:i1:{claim.claim_id}:{claim.claimed_at_ms}"
        assert claim.lease_token == hashlib.sha256(token_seed.encode()).hexdigest()

    def test_enqueue_is_refused_for_an_unknown_or_deleted_session(self, backend):
        from eventstore.sessions import SessionDeleted, SessionNotFound

        store = self.setup_session(backend)
        with pytest.raises(SessionNotFound):
            store.queue.enqueue(task("nobody", "x"))
        store.sessions.delete("s1")
        with pytest.raises(SessionDeleted):
            store.queue.enqueue(task("s1", "x"))

    def test_deleting_a_session_wipes_its_queue_and_purging_keeps_projections_rebuildable(self, backend):
        store = self.setup_session(backend)
        self.enqueue(store, task("s1", "x", source_key="k"))
        store.sessions.delete("s1")
        assert store.queue.list("s1") == [] and store.queue.source_key("s1", "k") is None
        store.sessions.purge("s1")
        assert_consistent(store)

    def test_time_travel_shows_the_queue_as_it_was_and_refuses_commands(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "x"))
        at = store.last_position()
        fence = fence_of(store, "s1", owner("a"))
        store.queue.complete(store.queue.claim_ready(fence))
        with store.at(at) as view:
            assert [x.batch_id for x in view.queue.list("s1")] == [b.batch_id]
            with pytest.raises(eventstore.ReadOnlyView):
                view.queue.enqueue(task("s1", "y"))
            with pytest.raises(eventstore.ReadOnlyView):
                view.queue.claim_ready(fence)
        assert store.queue.list("s1") == []

    def test_queue_and_claims_survive_a_reopen(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "x"))
        fence = fence_of(store, "s1", owner("a"))
        claim = store.queue.claim_ready(fence)
        store = backend.reopen()
        assert [(x.batch_id, x.state) for x in store.queue.list("s1")] == [(b.batch_id, "claimed")]
        assert store.queue.complete(claim.completion()).batch_ids == (b.batch_id,)

    def test_a_completion_under_an_expired_lease_is_superseded(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        self.enqueue(store, task("s1", "x"))
        claim = store.queue.claim_ready(fence_of(store, "s1", owner("a"), ttl_ms=1_000))
        clock.advance(1_000)
        with pytest.raises(QueuedWorkClaimSuperseded, match="not live"):
            store.queue.complete(claim)
        assert len(store.queue.list("s1")) == 1

    def test_malformed_arguments_are_typed_errors(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1", owner("a"))
        for call in (lambda: store.queue.claim_ready(fence, max_batches=-1),
                     lambda: store.queue.claim_ready(fence, boundary="idle"),
                     lambda: store.queue.claim_by_ids(fence, []),
                     lambda: store.queue.claim_by_ids(fence, ["a", "a"]),
                     lambda: store.queue.claim_ready("not a fence"),
                     lambda: store.queue.complete(QueuedWorkCompletion("s1", "c", "t", ())),
                     lambda: store.queue.enqueue("not a draft"),
                     lambda: store.queue.list("")):
            with pytest.raises(eventstore.InvalidArgument):
                call()

    def test_runtime_commit_functions_plan_and_settle_inside_the_callers_transaction(self, backend):
        from eventstore.queue import check_queue_completion, plan_enqueue

        store = self.setup_session(backend)
        now = backend.clock()
        with store.transaction():
            plan = plan_enqueue(store.db, [task("s1", "a", source_key="k"), task("s1", "b"),
                                           task("s1", "again", source_key="k")], now)
            assert [r.created for r in plan.results] == [True, True, False]
            assert [e.enqueue_seq for e in plan.events] == [1, 2]
            store.append("session:s1", list(plan.events), now_ms=now)
        claim = store.queue.claim_ready(fence_of(store, "s1", owner("a")))
        with store.transaction():
            ev = check_queue_completion(store.db, claim.completion(), now)
            store.append("session:s1", [ev], now_ms=now)
        assert store.queue.list("s1") == []
