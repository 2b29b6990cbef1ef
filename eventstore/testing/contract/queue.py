"""Queued-work laws (docs/semantics.md §4, laws 28-48) as a backend contract."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from eventstore.inputs import ActiveTurn, CheckpointKind, TurnInputDraft
from eventstore.leases import Acquired, SessionExecutionLeaseExpired
from eventstore.queue import MergeKey, ProcessWake, QueuedWorkClaimSuperseded, QueuedWorkCompletion, QueuedWorkDraft
from eventstore.testing.contract.queue_extended import (
    AFTER, CHECKPOINT, EXCL, IDLE, JOIN, QueueExtendedContract, command, fence_of, owner, task, texts,
    write_transactions,
)
from eventstore.testing.helpers import assert_consistent


class QueueContract(QueueExtendedContract):
    """Laws 28-48 (and, from `QueueExtendedContract`, the behaviour beyond them); subclass
    with a `backend` fixture."""

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
