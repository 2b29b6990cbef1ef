"""One lease shape for both families: the same Acquired/Busy types from session and process
leases, reclaim by (owner, fence) in both, and the background keep-alive of a session lease."""

from __future__ import annotations

import time

import pytest

from eventstore import leases as session_leases
from eventstore import processes as process_leases
from eventstore.leases import Acquired, Busy, LeaseOwner, LeaseTimings, ObservedHolder, SessionExecutionLeaseExpired
from eventstore.errors import InvalidArgument
from eventstore.testing.contract.leases import FakeProc, acquired, local, new_session, opaque
from eventstore.testing.contract.processes import registration
from eventstore.testing.helpers import assert_consistent


def wait_until(predicate, what: str, timeout_s: float = 20.0) -> None:
    """Poll `predicate` until it holds; fail naming `what` when it never does (a hang guard,
    not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


class LeaseParityContract:
    """Session and process leases answer alike; subclass with a `backend` fixture."""

    def test_session_and_process_leases_return_the_same_outcome_types(self, backend):
        """Acquired (with reentry and reclaimed_from) and Busy are one pair of types for both families."""
        store = backend.store
        assert session_leases.Acquired is process_leases.Acquired is Acquired
        assert session_leases.Busy is process_leases.Busy is Busy
        sid = new_session(store)
        store.processes.register(registration("p"))
        a, b = opaque("a"), opaque("b")
        for claim in (lambda who: store.leases.claim(sid, who, 60_000),
                      lambda who: store.processes.claim_lease("p", who, 60_000)):
            first = claim(a)
            assert type(first) is Acquired and not first.reentry and first.reclaimed_from is None
            again = claim(a)
            assert type(again) is Acquired and again.reentry and again.lease.fencing_token == first.lease.fencing_token
            busy = claim(b)
            assert type(busy) is Busy and busy.holder.owner == a and not busy.acquired

    def test_reclaim_needs_only_the_owner_and_the_fence_in_both_families(self, backend):
        """An ObservedHolder(owner, fencing_token) is enough to reclaim from a dead holder;
        another fence or incarnation is a stale observation (Busy); reclaimed_from names the dead."""
        store = backend.store
        store.leases.read_process_start = FakeProc({})  # every pid reads as gone: holders are dead
        sid = new_session(store)
        store.processes.register(registration("p"))
        dead, me = local("dead", "i1", 10), local("me", "i1", 11)
        families = (
            (lambda who: store.leases.claim(sid, who, 60_000),
             lambda who, seen: store.leases.reclaim(sid, who, seen, 60_000)),
            (lambda who: store.processes.claim_lease("p", who, 60_000),
             lambda who, seen: store.processes.reclaim_lease("p", who, seen, 60_000, read_start=FakeProc({}))),
        )
        for claim, reclaim in families:
            held = acquired(claim(dead)).lease
            for stale in (ObservedHolder(dead, held.fencing_token + 1),
                          ObservedHolder(LeaseOwner("dead", "i2", dead.liveness), held.fencing_token)):
                assert type(reclaim(me, stale)) is Busy
            taken = acquired(reclaim(me, ObservedHolder(dead, held.fencing_token)))
            assert taken.reclaimed_from == dead and taken.lease.fencing_token == held.fencing_token + 1
        with pytest.raises(InvalidArgument, match="observed"):
            store.leases.reclaim(sid, me, "holder", 60_000)
        with pytest.raises(InvalidArgument, match="observed"):
            store.processes.reclaim_lease("p", me, ObservedHolder(dead, 0), 60_000)

    def test_keep_alive_renews_a_session_lease_until_it_is_lost(self, backend):
        """The helper renews in the background (the lease outlives its TTL) and stops
        renewing, recording the loss, once the lease is released under it."""
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        timings = LeaseTimings(ttl_ms=30, renew_every_ms=10)
        lease = acquired(store.leases.claim(sid, opaque("runner"), timings)).lease
        with store.leases.keep_alive(lease, timings) as keeper:
            for step in range(1, 6):  # 100 ms of store time: more than three TTLs
                clock.advance(20)
                wait_until(lambda: keeper.renewals >= step, f"renewal {step}")
            assert store.leases.get(sid).holder.is_live(clock()) and keeper.active
            assert keeper.lease.expires_at_ms > lease.expires_at_ms
            store.leases.release(keeper.lease.fence)  # taken away under it
            clock.advance(20)
            wait_until(lambda: keeper.lost is not None, "the loss")
            assert isinstance(keeper.lost, SessionExecutionLeaseExpired) and not keeper.active
            with pytest.raises(SessionExecutionLeaseExpired):
                store.leases.renew(keeper.lease.fence, timings)

    def test_keep_alive_release_stops_renewing_and_frees_the_lease(self, backend):
        """release() stops the renewals (none lands after it) and releases the lease."""
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        timings = LeaseTimings(ttl_ms=30, renew_every_ms=10)
        lease = acquired(store.leases.claim(sid, opaque("runner"), timings)).lease
        keeper = store.leases.keep_alive(lease, timings)
        clock.advance(20)
        wait_until(lambda: keeper.renewals >= 1, "a renewal")
        assert keeper.release().released and not keeper.active
        renewals = keeper.renewals
        clock.advance(20)
        assert store.leases.get(sid).holder is None and keeper.renewals == renewals
        assert type(store.leases.claim(sid, opaque("next"), timings)) is Acquired
        with pytest.raises(InvalidArgument, match="lease"):
            store.leases.keep_alive("not a lease", timings)

    def test_queue_and_input_claims_record_the_claimant_beside_the_lease_holder(self, backend):
        """A claim names who took it (default: the lease holder) next to the holder whose
        fence it was taken under; the claim event in the log keeps both."""
        from eventstore.inputs import ActiveTurn, CheckpointKind, TurnInputDraft
        from eventstore.queue import AgentFrameTask, QueuedWorkDraft

        store = backend.store
        sid = new_session(store)
        holder, worker = opaque("runtime"), local("worker-7", "inc-3", 4242)
        fence = acquired(store.leases.claim(sid, holder, 60_000)).lease.fence
        for text in ("one", "two"):
            store.queue.enqueue(QueuedWorkDraft(sid, (AgentFrameTask("f", text),)))
            store.inputs.enqueue(TurnInputDraft(sid, text, ActiveTurn("t1")))
        work = store.queue.claim_ready(fence, max_batches=1, claimant=worker)
        assert (work.owner, work.claimant) == (holder, worker)
        plain = store.queue.claim_ready(fence, max_batches=1)
        assert plain.claimant == holder  # no claimant named: the lease holder took it
        inputs = store.inputs.claim_active(fence, "t1", CheckpointKind.BEFORE_COMPLETION, max_inputs=1,
                                           claimant=worker)
        assert (inputs.owner, inputs.claimant) == (holder, worker)
        both = store.queue.claim_checkpoint(fence, "t1", CheckpointKind.BEFORE_COMPLETION, claimant=worker)
        assert both.inputs.claimant == worker
        logged = [e.data for e in store.read_stream(f"session:{sid}") if e.type in ("queue.claimed", "inputs.claimed")]
        assert [(e.owner, e.claimant) for e in logged] == [(holder, worker), (holder, None), (holder, worker),
                                                            (holder, worker)]
        with pytest.raises(InvalidArgument, match="claimant"):
            store.queue.claim_ready(fence, claimant="worker-7")
        with pytest.raises(InvalidArgument, match="claimant"):
            store.inputs.claim_next_turn(fence, claimant=LeaseOwner("", "x"))
        assert_consistent(store)
