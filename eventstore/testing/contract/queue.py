"""Queued-work laws (docs/semantics.md §4, laws 28-48) as a backend contract."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from typing import Any, Iterator

import pytest

import eventstore
from eventstore.inputs import ActiveTurn, CheckpointKind, TurnInputDraft
from eventstore.leases import Acquired, SessionExecutionLeaseExpired, LeaseOwner, LocalProcessLiveness
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


class QueueContract:
    """Laws 28-48; subclass with a `backend` fixture."""

    def setup_session(self, backend: Backend, sid: str = "s1") -> eventstore.Store:
        backend.store.sessions.create(sid)
        return backend.store

    def enqueue(self, store: eventstore.Store, draft: QueuedWorkDraft) -> Any:
        return store.queue.enqueue(draft).batch

    # --- law 28 -------------------------------------------------------------------------

    def test_law_28_queue_claims_require_a_live_fence(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        b = self.enqueue(store, task("s1", "a"))
        store.inputs.enqueue(TurnInputDraft("s1", "hi", ActiveTurn("t1")))
        fence = fence_of(store, "s1", owner("a"), ttl_ms=1_000)
        clock.advance(1_000)  # expired
        before = store.last_position()
        calls = [lambda f: store.queue.claim_ready(f), lambda f: store.queue.claim_session_command(f),
                 lambda f: store.queue.claim_by_ids(f, [b.batch_id]),
                 lambda f: store.queue.claim_checkpoint(f, "t1", CheckpointKind.AFTER_WORK)]
        for call in calls:
            with pytest.raises(SessionExecutionLeaseExpired):
                call(fence)
        newer = fence_of(store, "s1", owner("b"))
        before = store.last_position()
        for call in calls:  # a superseded fence is refused the same way
            with pytest.raises(SessionExecutionLeaseExpired):
                call(fence)
        assert store.last_position() == before
        assert store.queue.claim_ready(newer).batch_ids == (b.batch_id,)

    # --- law 29 -------------------------------------------------------------------------

    def test_law_29_source_key_replay_returns_the_original_batch_and_payload(self, backend):
        store = self.setup_session(backend)
        first = store.queue.enqueue(task("s1", "first", source_key="source:first"))
        before = store.last_position()
        replay = store.queue.enqueue(task("s1", "different replay payload", slot=EXCL, source_key="source:first"))
        assert first.created and not replay.created and replay.disposition == "present"
        assert replay.batch.batch_id == first.batch.batch_id
        assert replay.batch.items[0].item_id == first.batch.items[0].item_id
        assert texts([replay.batch]) == ["first"] and replay.batch.slot_policy is JOIN
        assert store.last_position() == before  # a replay appends nothing
        assert len(store.queue.list("s1")) == 1

    # --- law 30 -------------------------------------------------------------------------

    def test_law_30_listing_is_in_enqueue_order_and_scoped_to_one_session(self, backend):
        store = self.setup_session(backend)
        store.sessions.create("other")
        a = self.enqueue(store, task("s1", "a"))
        self.enqueue(store, task("other", "elsewhere"))
        b = self.enqueue(store, task("s1", "b", slot=EXCL))
        listed = store.queue.list("s1")
        assert [x.batch_id for x in listed] == [a.batch_id, b.batch_id]
        assert listed[0].enqueue_seq < listed[1].enqueue_seq
        assert texts(store.queue.list("other")) == ["elsewhere"]
        assert store.queue.list("never-created") == []

    # --- law 31 -------------------------------------------------------------------------

    def test_law_31_concurrent_claims_have_one_winner_and_pending_hides_the_claimed(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "only", slot=EXCL))
        fence = fence_of(store, "s1", owner("a"))
        handles = [backend.open(), backend.open()]
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]
        errors: list[BaseException] = []

        def race(i: int) -> None:
            try:
                barrier.wait(timeout=10)
                results[i] = handles[i].queue.claim_ready(fence)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        winners = [r for r in results if r is not None]
        assert len(winners) == 1 and winners[0].batch_ids == (b.batch_id,)
        assert store.queue.list_pending("s1") == []
        assert [x.state for x in store.queue.list("s1")] == ["claimed"]

    # --- law 32 -------------------------------------------------------------------------

    def test_law_32_checkpoint_claim_grants_both_families_once_per_generation(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "work"))
        i = store.inputs.enqueue(TurnInputDraft("s1", "steer", ActiveTurn("t1"))).input
        fence = fence_of(store, "s1", owner("a"))
        got = store.queue.claim_checkpoint(fence, "t1", CheckpointKind.AFTER_WORK)
        assert got.inputs.input_ids == (i.input_id,) and got.queue.batch_ids == (b.batch_id,)
        assert got.inputs.generation == got.queue.generation == fence.fencing_token
        assert got.queue.claim_id.startswith("qwc:") and got.inputs.claim_id.startswith("tic:")
        assert store.queue.claim_checkpoint(fence, "t1", CheckpointKind.AFTER_WORK).empty  # once per generation
        store.leases.release(fence)
        again = store.queue.claim_checkpoint(fence_of(store, "s1", owner("b")), "t1", CheckpointKind.BEFORE_COMPLETION)
        assert again.inputs.input_ids == (i.input_id,) and again.queue.batch_ids == (b.batch_id,)
        assert again.queue.generation == fence.fencing_token + 1
        assert_consistent(store)

    # --- law 33 -------------------------------------------------------------------------

    def test_law_33_empty_or_deferred_checkpoint_probe_opens_no_write_transaction(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1", owner("a"))
        self.enqueue(store, task("s1", "deferred", delivery=AFTER))  # a deferred head
        self.enqueue(store, task("s1", "behind it"))
        store.inputs.enqueue(TurnInputDraft("s1", "for another turn", ActiveTurn("t2")))
        store.inputs.enqueue(TurnInputDraft("s1", "before completion only",
                                            ActiveTurn("t1", CheckpointKind.BEFORE_COMPLETION)))
        head = store.anchor()
        with write_transactions(store) as seen:
            got = store.queue.claim_checkpoint(fence, "t1", CheckpointKind.AFTER_WORK)
        assert got.empty
        assert True not in seen  # no BEGIN IMMEDIATE at all: only the read-only probe
        assert store.anchor() == head
        # ... and with nothing queued at all
        store.sessions.create("empty")
        empty_fence = fence_of(store, "empty", owner("a"))
        head = store.anchor()
        with write_transactions(store) as seen:
            assert store.queue.claim_checkpoint(empty_fence, "t1", CheckpointKind.BEFORE_COMPLETION).empty
        assert True not in seen and store.anchor() == head
        # the same probe with something to claim does open one write transaction
        with write_transactions(store) as seen:
            assert store.queue.claim_checkpoint(fence, "t1", CheckpointKind.BEFORE_COMPLETION).inputs is not None
        assert seen.count(True) >= 1

    # --- law 34 -------------------------------------------------------------------------

    def test_law_34_deferred_work_is_still_claimable_at_idle(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "after commit", delivery=AFTER))
        fence = fence_of(store, "s1", owner("a"))
        assert store.queue.claim_ready(fence, boundary=CHECKPOINT) is None
        assert store.queue.claim_ready(fence, boundary=IDLE).batch_ids == (b.batch_id,)

    # --- law 35 -------------------------------------------------------------------------

    def test_law_35_cancel_removes_only_unclaimed_or_not_live_batches(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        free = self.enqueue(store, task("s1", "cancel me", slot=EXCL))
        cancelled = store.queue.cancel("s1", free.batch_id)
        assert cancelled.batch_id == free.batch_id and cancelled.state == "cancelled" and texts([cancelled]) == ["cancel me"]
        assert store.queue.list("s1") == []
        held = self.enqueue(store, task("s1", "claimed", slot=EXCL))
        fence = fence_of(store, "s1", owner("a"), ttl_ms=1_000)
        store.queue.claim_ready(fence)
        before = store.last_position()
        assert store.queue.cancel("s1", held.batch_id) is None  # a live claim holds it
        assert store.last_position() == before and len(store.queue.list("s1")) == 1
        clock.advance(1_000)  # the claim's generation is no longer live
        assert store.queue.cancel("s1", held.batch_id).batch_id == held.batch_id
        assert store.queue.cancel("s1", held.batch_id) is None  # gone
        assert store.queue.cancel("s1", "qwb:unknown") is None

    # --- law 36 -------------------------------------------------------------------------

    def test_law_36_live_claim_is_hidden_from_pending_but_stays_in_the_full_list(self, backend):
        store = self.setup_session(backend)
        claimed = self.enqueue(store, task("s1", "a", slot=EXCL))
        waiting = self.enqueue(store, task("s1", "b", slot=EXCL))
        fence = fence_of(store, "s1", owner("a"))
        store.queue.claim_ready(fence)
        assert [b.batch_id for b in store.queue.list_pending("s1")] == [waiting.batch_id]
        full = store.queue.list("s1")
        assert [(b.batch_id, b.state) for b in full] == [(claimed.batch_id, "claimed"), (waiting.batch_id, "pending")]
        assert full[0].claim.owner_id == "a" and full[0].claim.generation == fence.fencing_token and full[0].claim.live

    # --- law 37 -------------------------------------------------------------------------

    def test_law_37_abandoned_work_becomes_pending_and_cancellable_again(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "a", slot=EXCL))
        fence = fence_of(store, "s1", owner("a"))
        claim = store.queue.claim_ready(fence)
        assert store.queue.abandon(claim).batch_ids == (b.batch_id,)
        assert store.queue.abandon(claim).batch_ids == ()  # nothing left to give back
        pending = store.queue.list_pending("s1")
        assert [x.batch_id for x in pending] == [b.batch_id] and pending[0].claim is None
        assert pending[0].claim_fencing_token == 1  # the counter is kept
        again = store.queue.claim_ready(fence)  # the same generation may claim it again after an abandon
        assert again.fencing_token == 2 and again.claim_id == f"qwc:{b.enqueue_seq}:2"
        store.queue.abandon(again)
        assert store.queue.cancel("s1", b.batch_id) is not None

    # --- law 38 -------------------------------------------------------------------------

    def test_law_38_exact_id_claim_keeps_the_gate_never_merges_exclusive_and_may_skip_ahead(self, backend):
        store = self.setup_session(backend)
        first = self.enqueue(store, task("s1", "first", slot=EXCL))
        deferred = self.enqueue(store, task("s1", "deferred", delivery=AFTER))
        j1 = self.enqueue(store, task("s1", "j1"))
        excl = self.enqueue(store, task("s1", "excl", slot=EXCL))
        j2 = self.enqueue(store, task("s1", "j2"))
        cmd = self.enqueue(store, command("s1"))
        fence = fence_of(store, "s1", owner("a"))
        before = store.last_position()
        assert store.queue.claim_by_ids(fence, [deferred.batch_id], boundary=CHECKPOINT) is None  # the gate holds
        assert store.queue.claim_by_ids(fence, [j1.batch_id, excl.batch_id]) is None  # never merges Exclusive
        assert store.queue.claim_by_ids(fence, [excl.batch_id, j2.batch_id]) is None
        assert store.queue.claim_by_ids(fence, [cmd.batch_id]) is None  # commands are not turn work
        assert store.queue.claim_by_ids(fence, [j1.batch_id, "qwb:missing"]) is None
        assert store.last_position() == before
        # j2 then j1: out of enqueue order, skipping `first` and `deferred`, not adjacent
        claim = store.queue.claim_by_ids(fence, [j2.batch_id, j1.batch_id])
        assert claim.batch_ids == (j2.batch_id, j1.batch_id)
        assert claim.claim_id == f"qwc:{j2.enqueue_seq}:1"
        assert store.queue.claim_by_ids(fence, [j1.batch_id]) is None  # held by this generation
        assert store.queue.claim_ready(fence).batch_ids == (first.batch_id,)
        assert store.queue.claim_by_ids(fence, [deferred.batch_id], boundary=IDLE).batch_ids == (deferred.batch_id,)

    # --- law 39 -------------------------------------------------------------------------

    def test_law_39_turn_claim_never_skips_a_leading_command_nor_a_command_earlier_turn_work(self, backend):
        store = self.setup_session(backend)
        cmd = self.enqueue(store, command("s1"))
        work = self.enqueue(store, task("s1", "after the command"))
        cmd2 = self.enqueue(store, command("s1", "again"))
        fence = fence_of(store, "s1", owner("a"))
        assert store.queue.claim_ready(fence) is None  # the command leads
        got = store.queue.claim_session_command(fence)
        assert got.batch_ids == (cmd.batch_id,) and got.mode == "session_command"
        assert store.queue.claim_session_command(fence) is None  # turn work is now the head
        claim = store.queue.claim_ready(fence)
        assert claim.batch_ids == (work.batch_id,)  # the later command does not join turn work
        assert store.queue.claim_session_command(fence).batch_ids == (cmd2.batch_id,)

    # --- law 40 -------------------------------------------------------------------------

    def test_law_40_after_commit_work_at_the_head_waits_for_idle(self, backend):
        store = self.setup_session(backend)
        head = self.enqueue(store, task("s1", "after commit", delivery=AFTER))
        safe = self.enqueue(store, task("s1", "safe"))
        fence = fence_of(store, "s1", owner("a"))
        assert store.queue.claim_ready(fence, boundary=CHECKPOINT) is None  # not even the safe one behind it
        idle = store.queue.claim_ready(fence, boundary=IDLE)
        assert idle.batch_ids == (head.batch_id,)  # different delivery policies never join
        assert store.queue.claim_ready(fence, boundary=CHECKPOINT).batch_ids == (safe.batch_id,)

    # --- law 41 -------------------------------------------------------------------------

    def test_law_41_reclaim_raises_the_fence_and_the_old_completion_is_superseded(self, backend):
        store = self.setup_session(backend)
        b = self.enqueue(store, task("s1", "a", slot=EXCL))
        dead, heir = owner("dead", pid=101), owner("heir", pid=202)
        store.leases.read_process_start = lambda pid: None  # every pid reads as gone: `dead` is provably dead
        got = store.leases.claim("s1", dead, 60_000)
        old = store.queue.claim_ready(got.lease.fence)
        taken = store.leases.reclaim("s1", heir, got.lease, 60_000)
        assert isinstance(taken, Acquired) and taken.lease.fencing_token == got.lease.fencing_token + 1
        new = store.queue.claim_ready(taken.lease.fence)
        assert new.batch_ids == (b.batch_id,) and new.fencing_token == old.fencing_token + 1
        before = store.last_position()
        with pytest.raises(QueuedWorkClaimSuperseded):
            store.queue.complete(old.completion())
        assert store.last_position() == before and [x.batch_id for x in store.queue.list("s1")] == [b.batch_id]
        assert store.queue.complete(new.completion()).batch_ids == (b.batch_id,)

    # --- law 42 -------------------------------------------------------------------------

    def test_law_42_no_second_claim_within_a_generation_but_a_new_generation_may(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        b = self.enqueue(store, task("s1", "a"))
        fence = fence_of(store, "s1", owner("a"))
        first = store.queue.claim_ready(fence)
        assert store.queue.claim_ready(fence) is None
        assert store.queue.claim_by_ids(fence, [b.batch_id]) is None
        store.leases.release(fence)  # a new generation through release
        second_fence = fence_of(store, "s1", owner("b"), ttl_ms=1_000)
        second = store.queue.claim_ready(second_fence)
        assert second.batch_ids == (b.batch_id,) and second.generation == fence.fencing_token + 1
        with pytest.raises(QueuedWorkClaimSuperseded):
            store.queue.complete(first.completion())
        clock.advance(1_000)  # ... and through takeover after expiry
        third = store.queue.claim_ready(fence_of(store, "s1", owner("c")))
        assert third.batch_ids == (b.batch_id,) and third.fencing_token == 3
        with pytest.raises(QueuedWorkClaimSuperseded):
            store.queue.complete(second.completion())

    # --- law 43 -------------------------------------------------------------------------

    def test_law_43_rows_of_an_old_generation_show_pending_and_can_be_cancelled(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        store.leases.read_process_start = lambda pid: None
        ending = ("release", "expiry", "takeover")
        batches = [self.enqueue(store, task("s1", how, slot=EXCL)) for how in ending]
        for how, b in zip(ending, batches):
            who = owner(f"holder-{how}", pid=300)
            got = store.leases.claim("s1", who, 1_000)
            claim = store.queue.claim_by_ids(got.lease.fence, [b.batch_id])
            assert store.queue.get("s1", b.batch_id).state == "claimed"
            if how == "release":
                store.leases.release(got.lease.fence)
            elif how == "expiry":
                clock.advance(1_000)
            else:
                assert isinstance(store.leases.reclaim("s1", owner("heir", pid=301), got.lease, 1_000), Acquired)
            row = store.queue.get("s1", b.batch_id)
            assert row.state == "pending" and row.claim.claim_id == claim.claim_id and not row.claim.live
            assert b.batch_id in [x.batch_id for x in store.queue.list_pending("s1")]
            assert store.queue.cancel("s1", b.batch_id).batch_id == b.batch_id
            if how == "takeover":
                store.leases.release(store.leases.get("s1").holder.fence)
            clock.advance(1_000)
        assert store.queue.list("s1") == []

    # --- law 44 -------------------------------------------------------------------------

    def test_law_44_one_generation_drains_a_queue_longer_than_the_scan_surplus(self, backend):
        store = self.setup_session(backend)
        ids = [self.enqueue(store, task("s1", f"t{i}", slot=EXCL)).batch_id for i in range(34)]
        fence = fence_of(store, "s1", owner("a"))
        claimed = []
        for _ in range(34):  # never completed: every earlier row stays held by this generation
            claim = store.queue.claim_ready(fence, max_batches=1)
            assert claim is not None
            claimed.extend(claim.batch_ids)
        assert claimed == ids
        assert store.queue.claim_ready(fence, max_batches=1) is None

    # --- law 45 -------------------------------------------------------------------------

    def test_law_45_not_ready_skipped_exclusive_alone_sessions_isolated_max_caps_join(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        store.sessions.create("s2")
        later = self.enqueue(store, task("s1", "later", available_at_ms=clock() + 5_000))
        joins = [self.enqueue(store, task("s1", f"j{i}")).batch_id for i in range(3)]
        excl = [self.enqueue(store, task("s1", f"x{i}", slot=EXCL)).batch_id for i in range(2)]
        other = self.enqueue(store, task("s2", "elsewhere"))
        fence = fence_of(store, "s1", owner("a"))
        first = store.queue.claim_ready(fence, max_batches=2)
        assert first.batch_ids == tuple(joins[:2])  # the not-ready head is skipped; max caps the join
        assert store.queue.claim_ready(fence, max_batches=8).batch_ids == (joins[2],)  # stops at Exclusive
        assert store.queue.claim_ready(fence, max_batches=8).batch_ids == (excl[0],)
        assert store.queue.claim_ready(fence, max_batches=8).batch_ids == (excl[1],)
        assert store.queue.claim_ready(fence) is None  # s2's work is not s1's
        assert store.queue.claim_ready(fence, max_batches=0) is None
        clock.advance(5_000)
        assert store.queue.claim_ready(fence).batch_ids == (later.batch_id,)
        assert store.queue.claim_ready(fence_of(store, "s2", owner("a"))).batch_ids == (other.batch_id,)

    # --- law 46 -------------------------------------------------------------------------

    def test_law_46_join_groups_only_adjacent_batches_of_one_policy_and_merge_key(self, backend):
        store = self.setup_session(backend)
        g = MergeKey.group("g")
        a1 = self.enqueue(store, task("s1", "a1", merge=g)).batch_id
        a2 = self.enqueue(store, task("s1", "a2", merge=g)).batch_id
        b1 = self.enqueue(store, task("s1", "b1", merge=MergeKey.group("h"))).batch_id
        a3 = self.enqueue(store, task("s1", "a3", merge=g)).batch_id
        d1 = self.enqueue(store, task("s1", "d1", delivery=AFTER, merge=g)).batch_id
        n1 = self.enqueue(store, task("s1", "n1", merge=MergeKey.NEVER)).batch_id
        n2 = self.enqueue(store, task("s1", "n2", merge=MergeKey.NEVER)).batch_id
        fence = fence_of(store, "s1", owner("a"))
        got = [store.queue.claim_ready(fence).batch_ids for _ in range(6)]
        assert got == [(a1, a2), (b1,), (a3,), (d1,), (n1,), (n2,)]  # NEVER never joins

    # --- law 47 -------------------------------------------------------------------------

    def test_law_47_tampered_completion_fails_and_a_valid_one_deletes_the_batches(self, backend):
        store = self.setup_session(backend)
        ids = (self.enqueue(store, task("s1", "a")).batch_id, self.enqueue(store, task("s1", "b")).batch_id)
        claim = store.queue.claim_ready(fence_of(store, "s1", owner("a")))
        good = claim.completion()
        before = store.last_position()
        for bad in (QueuedWorkCompletion("s1", good.claim_id, good.lease_token + "x", good.batch_ids),
                    QueuedWorkCompletion("s1", "qwc:9:9", good.lease_token, good.batch_ids),
                    QueuedWorkCompletion("s1", good.claim_id, good.lease_token, good.batch_ids + ("qwb:x",)),
                    QueuedWorkCompletion("other", good.claim_id, good.lease_token, good.batch_ids)):
            with pytest.raises(QueuedWorkClaimSuperseded):
                store.queue.complete(bad)
        assert store.last_position() == before and len(store.queue.list("s1")) == 2
        assert store.queue.complete(good).batch_ids == ids
        assert store.queue.list("s1") == []
        with pytest.raises(QueuedWorkClaimSuperseded):  # completing twice
            store.queue.complete(good)

    # --- law 48 -------------------------------------------------------------------------

    def test_law_48_a_wake_enqueued_twice_is_one_batch_and_is_removed_once(self, backend):
        store = self.setup_session(backend)
        wake = ProcessWake("proc-7", 3, "wake:abc", "process.completed")
        first = store.queue.enqueue(QueuedWorkDraft.for_wake("s1", wake))
        second = store.queue.enqueue(QueuedWorkDraft.for_wake("s1", wake))
        assert first.batch.source_key == "process:proc-7:event:3:wake"
        assert not second.created and second.batch.batch_id == first.batch.batch_id
        assert len(store.queue.list("s1")) == 1
        claim = store.queue.claim_ready(fence_of(store, "s1", owner("a")))
        assert claim.batch_ids == (first.batch.batch_id,)
        store.queue.complete(claim)
        assert store.queue.list("s1") == []
        completed = [e for e in store.read_stream("session:s1") if e.type == "queue.completed"]
        assert len(completed) == 1 and completed[0].data.batch_ids == (first.batch.batch_id,)
        assert_consistent(store)

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
