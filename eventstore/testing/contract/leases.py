"""Session execution lease laws (docs/semantics.md §3, laws 16-28) as a backend contract."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import eventstore
from eventstore.leases import SessionLeaseAcquired
from eventstore.leases import (
    Acquired, Busy, LeaseFence, SessionExecutionLeaseExpired, is_generation_live, live_generation,
    require_live_fence,
)
from eventstore.leases import LeaseOwner, LeaseTimings, LocalProcessLiveness, OpaqueLiveness
from eventstore.sessions import SessionDeleted, SessionNotFound
from eventstore.testing.helpers import assert_consistent

HOST, BOOT = "host-1", "boot-1"


def local(owner_id: str, incarnation: str, pid: int, start: int = 500, host: str = HOST,
          boot: str = BOOT) -> LeaseOwner:
    """An owner with local-process liveness on the test host."""
    return LeaseOwner(owner_id, incarnation, LocalProcessLiveness(host, boot, pid, start))


def opaque(owner_id: str, incarnation: str = "i1") -> LeaseOwner:
    """An owner that can never be proven dead."""
    return LeaseOwner(owner_id, incarnation, OpaqueLiveness())


class FakeProc:
    """A /proc stand-in: pid -> start time; a missing pid reads as 'no such process'."""

    def __init__(self, alive: dict[int, int] | None = None) -> None:
        self.alive = dict(alive or {})
        self.reads: list[int] = []

    def __call__(self, pid: int) -> int | None:
        self.reads.append(pid)
        return self.alive.get(pid)


def new_session(store: eventstore.Store, session_id: str = "s1") -> str:
    """Create a session and return its id."""
    store.sessions.create(session_id)
    return session_id


def acquired(outcome: object) -> Acquired[Any]:
    """Assert that a claim or reclaim acquired the lease, and return the outcome."""
    assert isinstance(outcome, Acquired), outcome
    return outcome


class LeaseContract:
    """Laws 16-28 and the lease rules around them; subclass with a `backend` fixture."""

    # --- law 16 -------------------------------------------------------------------------

    def test_law_16_reentry_keeps_token_and_fence_and_resets_expiry(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        a = opaque("a")
        first = acquired(store.leases.claim(sid, a, 1_000)).lease
        clock.advance(400)
        again = acquired(store.leases.claim(sid, a, 5_000))
        assert again.reentry
        assert again.lease.lease_token == first.lease_token
        assert again.lease.fencing_token == first.fencing_token
        assert again.lease.claimed_at_ms == first.claimed_at_ms
        assert again.lease.expires_at_ms == clock() + 5_000
        assert store.leases.get(sid).holder == again.lease

    # --- law 17 -------------------------------------------------------------------------

    def test_law_17_live_lease_excludes_other_owners_and_new_incarnations(self, backend):
        store = backend.store
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, opaque("a", "i1"), 1_000)).lease
        for other in (opaque("b", "i1"), opaque("a", "i2")):
            before = store.last_position()
            out = store.leases.claim(sid, other, 1_000)
            assert isinstance(out, Busy) and out.holder == held
            assert store.last_position() == before  # a Busy appends nothing

    # --- law 18 -------------------------------------------------------------------------

    def test_law_18_stale_renew_raises_lease_expired(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        fence = lease.fence
        stale = [
            LeaseFence(sid, fence.owner, fence.lease_token + "x", fence.fencing_token),
            LeaseFence(sid, fence.owner, fence.lease_token, fence.fencing_token + 1),
            LeaseFence(sid, opaque("a", "i2"), fence.lease_token, fence.fencing_token),
            LeaseFence(sid, opaque("b"), fence.lease_token, fence.fencing_token),
        ]
        before = store.last_position()
        for f in stale:
            with pytest.raises(SessionExecutionLeaseExpired, match="superseded"):
                store.leases.renew(f, 1_000)
        assert store.last_position() == before
        assert store.leases.renew(fence, 1_000).expires_at_ms == clock() + 1_000

    def test_an_expired_lease_cannot_be_renewed_back_to_life(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        clock.advance(1_000)  # expiry is exclusive: at expires_at_ms the lease is gone
        with pytest.raises(SessionExecutionLeaseExpired, match="expired at"):
            store.leases.renew(lease.fence, 10_000)
        assert store.leases.get(sid).holder.expires_at_ms == lease.expires_at_ms

    def test_renew_after_release_raises_lease_expired(self, backend):
        store = backend.store
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        assert store.leases.release(lease.fence).released
        with pytest.raises(SessionExecutionLeaseExpired, match="no lease is held"):
            store.leases.renew(lease.fence, 1_000)

    # --- law 19 -------------------------------------------------------------------------

    def test_law_19_stale_release_is_a_noop_and_lease_stays_busy(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        old = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        clock.advance(1_000)
        current = acquired(store.leases.claim(sid, opaque("b"), 1_000)).lease
        before = store.last_position()
        result = store.leases.release(old.fence)
        assert not result.released and result.fencing_token == current.fencing_token
        assert store.last_position() == before
        assert isinstance(store.leases.claim(sid, opaque("c"), 1_000), Busy)
        # releasing twice is idempotent too
        assert store.leases.release(current.fence).released
        assert not store.leases.release(current.fence).released

    def test_release_clears_the_holder_but_keeps_the_fence(self, backend):
        store = backend.store
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        store.leases.release(lease.fence)
        state = store.leases.get(sid)
        assert state.holder is None and state.fencing_token == lease.fencing_token

    def test_a_holder_may_release_its_own_expired_lease(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 10)).lease
        clock.advance(50)
        assert store.leases.release(lease.fence).released
        assert store.leases.get(sid).holder is None

    # --- law 20 -------------------------------------------------------------------------

    def test_law_20_every_new_acquisition_has_a_higher_fence(self, backend):
        store, clock = backend.store, backend.clock
        store.leases.read_process_start = FakeProc({})  # every pid reads as gone
        sid = new_session(store)
        fences = []
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        fences.append(lease.fencing_token)
        store.leases.release(lease.fence)  # after release
        lease = acquired(store.leases.claim(sid, opaque("b"), 1_000)).lease
        fences.append(lease.fencing_token)
        clock.advance(1_000)  # after expiry
        lease = acquired(store.leases.claim(sid, local("c", "i1", 10), 1_000)).lease
        fences.append(lease.fencing_token)
        taken = acquired(store.leases.reclaim(sid, local("d", "i1", 11), lease, 1_000))  # after reclaim
        fences.append(taken.lease.fencing_token)
        assert fences == sorted(set(fences)) and fences == [1, 2, 3, 4]

    # --- law 21 -------------------------------------------------------------------------

    def test_law_21_first_fence_for_a_session_is_one(self, backend):
        store = backend.store
        for sid in ("s1", "s2"):
            new_session(store, sid)
            assert store.leases.get(sid) is None
            assert acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease.fencing_token == 1

    # --- law 22 -------------------------------------------------------------------------

    def test_law_22_two_handles_racing_for_the_first_claim_one_wins(self, backend):
        new_session(backend.store)
        handles = [backend.open(), backend.open()]
        barrier = threading.Barrier(2)
        outcomes: list[object] = [None, None]

        def race(i: int) -> None:
            barrier.wait(timeout=10)
            outcomes[i] = handles[i].leases.claim("s1", opaque(f"owner-{i}"), 60_000)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sum(isinstance(o, Acquired) for o in outcomes) == 1
        assert sum(isinstance(o, Busy) for o in outcomes) == 1
        winner = next(o for o in outcomes if isinstance(o, Acquired))
        assert winner.lease.fencing_token == 1
        assert backend.store.leases.get("s1").holder == winner.lease

    # --- law 23 -------------------------------------------------------------------------

    def test_law_23_plain_claim_against_a_dead_holder_is_busy(self, backend):
        store = backend.store
        proc = FakeProc({})  # the holder's pid is gone
        store.leases.read_process_start = proc
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, local("a", "i1", 10), 60_000)).lease
        out = store.leases.claim(sid, local("b", "i1", 11), 60_000)
        assert isinstance(out, Busy) and out.holder == held
        taken = acquired(store.leases.reclaim(sid, local("b", "i1", 11), out.holder, 60_000))
        assert taken.reclaimed_from == held.owner and taken.lease.fencing_token == held.fencing_token + 1

    # --- law 24 -------------------------------------------------------------------------

    def test_law_24_reclaim_with_a_stale_observation_is_busy(self, backend):
        store, clock = backend.store, backend.clock
        store.leases.read_process_start = FakeProc({})
        sid = new_session(store)
        first = acquired(store.leases.claim(sid, local("a", "i1", 10), 1_000)).lease
        clock.advance(1_000)
        second = acquired(store.leases.claim(sid, local("b", "i1", 11), 60_000)).lease
        before = store.last_position()
        out = store.leases.reclaim(sid, local("c", "i1", 12), first, 60_000)  # observed the old holder
        assert isinstance(out, Busy) and out.holder == second
        assert store.last_position() == before

    # --- law 25 -------------------------------------------------------------------------

    def test_law_25_racing_reclaims_have_exactly_one_winner(self, backend):
        store = backend.store
        sid = new_session(store)
        dead = acquired(store.leases.claim(sid, local("dead", "i1", 10), 60_000)).lease
        handles = [backend.open() for _ in range(3)]
        for h in handles:
            h.leases.read_process_start = FakeProc({})
        barrier = threading.Barrier(len(handles))
        outcomes: list[object] = [None] * len(handles)

        def race(i: int) -> None:
            barrier.wait(timeout=10)
            outcomes[i] = handles[i].leases.reclaim(sid, local(f"r{i}", "i1", 20 + i), dead, 60_000)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(len(handles))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [o for o in outcomes if isinstance(o, Acquired)]
        assert len(winners) == 1 and winners[0].lease.fencing_token == dead.fencing_token + 1
        assert all(isinstance(o, Busy) and o.holder == winners[0].lease
                   for o in outcomes if not isinstance(o, Acquired))

    # --- law 26 -------------------------------------------------------------------------

    @pytest.mark.parametrize("holder,why", [
        (local("h", "i1", 10, host="other-host"), "another host"),
        (local("h", "i1", 10, boot="other-boot"), "another boot"),
        (opaque("h"), "an opaque holder"),
        (local("h", "i1", 77, start=500), "a holder that is alive"),
    ])
    def test_law_26_unprovable_holders_stay_busy(self, backend, holder, why):
        store = backend.store
        store.leases.read_process_start = FakeProc({77: 500})  # only pid 77 is alive, same start
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, holder, 60_000)).lease
        before = store.last_position()
        out = store.leases.reclaim(sid, local("c", "i1", 12), held, 60_000)
        assert isinstance(out, Busy) and out.holder == held, why
        assert store.last_position() == before

    def test_reclaim_takes_a_holder_whose_pid_was_reused(self, backend):
        store = backend.store
        store.leases.read_process_start = FakeProc({10: 999})  # pid 10 now runs another process
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, local("a", "i1", 10, start=500), 60_000)).lease
        taken = acquired(store.leases.reclaim(sid, local("b", "i1", 11), held, 60_000))
        assert taken.reclaimed_from == held.owner
        recorded = [e.data for e in store.read_stream(f"session:{sid}") if isinstance(e.data, SessionLeaseAcquired)]
        assert recorded[-1].dead_process_start == 999 and recorded[-1].reclaimed_fencing_token == 1

    def test_an_unreadable_proc_proves_nothing(self, backend):
        store = backend.store

        def unreadable(pid: int) -> int | None:
            raise PermissionError(f"/proc/{pid}/stat: permission denied")

        store.leases.read_process_start = unreadable
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, local("a", "i1", 10), 60_000)).lease
        out = store.leases.reclaim(sid, local("b", "i1", 11), held, 60_000)
        assert isinstance(out, Busy) and out.holder == held

    def test_an_opaque_claimant_cannot_reclaim(self, backend):
        store = backend.store
        store.leases.read_process_start = FakeProc({})
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, local("a", "i1", 10), 60_000)).lease
        assert isinstance(store.leases.reclaim(sid, opaque("b"), held, 60_000), Busy)

    def test_reclaim_of_a_free_or_expired_lease_is_a_plain_claim(self, backend):
        store, clock = backend.store, backend.clock
        proc = FakeProc({10: 500})  # the old holder is alive, which must not matter
        store.leases.read_process_start = proc
        sid = new_session(store)
        held = acquired(store.leases.claim(sid, local("a", "i1", 10), 1_000)).lease
        clock.advance(5_000)
        taken = acquired(store.leases.reclaim(sid, opaque("b"), held, 1_000))
        assert taken.reclaimed_from is None and taken.lease.fencing_token == 2
        assert proc.reads == []  # no proof is needed (nor read) for a lease that is not live

    # --- law 27 -------------------------------------------------------------------------

    def test_law_27_expiry_uses_the_injected_clock(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        assert lease.claimed_at_ms == clock() and lease.expires_at_ms == clock() + 1_000
        clock.advance(999)
        assert isinstance(store.leases.claim(sid, opaque("b"), 1_000), Busy)
        clock.advance(1)
        assert acquired(store.leases.claim(sid, opaque("b"), 1_000)).lease.fencing_token == 2

    def test_a_zero_ttl_yields_an_already_expired_lease(self, backend):
        store = backend.store
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 0)).lease
        assert not lease.is_live(backend.clock())
        assert acquired(store.leases.claim(sid, opaque("b"), 1_000)).lease.fencing_token == 2

    # --- law 28 -------------------------------------------------------------------------

    def test_law_28_fenced_writes_require_a_live_fence(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        db = store.db
        assert require_live_fence(db, lease.fence, clock()) == lease
        assert live_generation(db, sid, clock()) == 1
        assert is_generation_live(store.leases.get(sid), 1, clock())
        assert not is_generation_live(store.leases.get(sid), 2, clock())
        clock.advance(1_000)  # expired: the generation's claims are no longer live
        with pytest.raises(SessionExecutionLeaseExpired, match="expired"):
            require_live_fence(db, lease.fence, clock())
        assert live_generation(db, sid, clock()) is None
        assert not is_generation_live(store.leases.get(sid), 1, clock())
        newer = acquired(store.leases.claim(sid, opaque("b"), 1_000)).lease  # a takeover
        with pytest.raises(SessionExecutionLeaseExpired, match="superseded"):
            require_live_fence(db, lease.fence, clock())
        assert is_generation_live(store.leases.get(sid), newer.fencing_token, clock())
        store.leases.release(newer.fence)
        with pytest.raises(SessionExecutionLeaseExpired, match="no lease is held"):
            require_live_fence(db, newer.fence, clock())
        assert not is_generation_live(store.leases.get(sid), newer.fencing_token, clock())

    def test_the_fence_check_refuses_deleted_and_unknown_sessions(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 60_000)).lease
        store.sessions.delete(sid)
        with pytest.raises(SessionDeleted):
            require_live_fence(store.db, lease.fence, clock())
        with pytest.raises(SessionNotFound):
            require_live_fence(store.db, LeaseFence("nobody", opaque("a"), "t", 1), clock())

    # --- around the laws -----------------------------------------------------------------

    def test_lease_commands_refuse_unknown_and_deleted_sessions(self, backend):
        store = backend.store
        with pytest.raises(SessionNotFound, match="'ghost'"):
            store.leases.claim("ghost", opaque("a"), 1_000)
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 60_000)).lease
        store.sessions.delete(sid)
        before = store.last_position()
        for call in (lambda: store.leases.claim(sid, opaque("a"), 1_000),
                     lambda: store.leases.reclaim(sid, opaque("a"), lease, 1_000),
                     lambda: store.leases.renew(lease.fence, 1_000),
                     lambda: store.leases.release(lease.fence)):
            with pytest.raises(SessionDeleted, match="deleted"):
                call()
        assert store.last_position() == before

    def test_leases_accept_lease_timings_and_timings_are_validated(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        timings = LeaseTimings(ttl_ms=3_000, renew_every_ms=1_000)
        lease = acquired(store.leases.claim(sid, opaque("a"), timings)).lease
        assert lease.expires_at_ms == clock() + 3_000
        for ttl, renew in ((2_999, 1_000), (0, 1), (3, 0)):
            with pytest.raises(eventstore.InvalidArgument, match="LeaseTimings"):
                LeaseTimings(ttl_ms=ttl, renew_every_ms=renew)

    @pytest.mark.parametrize("call,match", [
        (lambda s: s.leases.claim("s1", "not an owner", 1_000), "owner must be a LeaseOwner"),
        (lambda s: s.leases.claim("s1", LeaseOwner("", "i"), 1_000), "owner.owner_id"),
        (lambda s: s.leases.claim("s1", opaque("a"), -1), "ttl_ms"),
        (lambda s: s.leases.claim("s1", opaque("a"), 1.5), "ttl_ms"),
        (lambda s: s.leases.claim("s1", opaque("a"), True), "ttl_ms"),
        (lambda s: s.leases.claim("", opaque("a"), 1), "session_id"),
        (lambda s: s.leases.renew("fence", 1_000), "LeaseFence"),
        (lambda s: s.leases.renew(LeaseFence("s1", opaque("a"), "", 1), 1_000), "fence.lease_token"),
        (lambda s: s.leases.release(LeaseFence("s1", opaque("a"), "t", 0)), "fence.fencing_token"),
        (lambda s: s.leases.reclaim("s1", opaque("a"), "holder", 1_000), "observed"),
    ])
    def test_bad_lease_arguments_raise_invalid_argument_and_write_nothing(self, backend, call, match):
        store = backend.store
        new_session(store)
        before = store.last_position()
        with pytest.raises(eventstore.InvalidArgument, match=match):
            call(store)
        assert store.last_position() == before

    def test_reclaim_refuses_an_observation_of_another_session(self, backend):
        store = backend.store
        new_session(store, "s1")
        new_session(store, "s2")
        lease = acquired(store.leases.claim("s2", opaque("a"), 1_000)).lease
        with pytest.raises(eventstore.InvalidArgument, match="lease of session 's2'"):
            store.leases.reclaim("s1", opaque("b"), lease, 1_000)

    def test_lease_commands_refuse_on_a_time_travel_view(self, backend):
        store = backend.store
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        with store.at() as view:
            assert view.leases.get(sid).holder == lease  # reads work
            for call in (lambda: view.leases.claim(sid, opaque("b"), 1),
                         lambda: view.leases.renew(lease.fence, 1),
                         lambda: view.leases.release(lease.fence),
                         lambda: view.leases.reclaim(sid, opaque("b"), lease, 1)):
                with pytest.raises(eventstore.ReadOnlyView):
                    call()

    def test_time_travel_shows_the_lease_as_it_was(self, backend):
        store, clock = backend.store, backend.clock
        sid = new_session(store)
        first = acquired(store.leases.claim(sid, opaque("a"), 1_000)).lease
        at_first = store.last_position()
        clock.advance(2_000)
        acquired(store.leases.claim(sid, opaque("b"), 1_000))
        with store.at(at_first) as view:
            assert view.leases.get(sid).holder == first
        with store.at(at_first, streams=[f"session:{sid}"]) as view:
            assert view.leases.get(sid).holder == first

    def test_leases_survive_a_reopen_and_equal_a_rebuild(self, backend):
        store = backend.store
        store.leases.read_process_start = FakeProc({})
        sid = new_session(store)
        lease = acquired(store.leases.claim(sid, local("a", "i1", 10), 1_000)).lease
        store.leases.renew(lease.fence, 2_000)
        taken = acquired(store.leases.reclaim(sid, local("b", "i1", 11), store.leases.get(sid).holder, 500))
        state = store.leases.get(sid)
        store = backend.reopen()
        assert store.leases.get(sid) == state and state.holder == taken.lease
        store.rebuild(["leases"])
        assert store.leases.get(sid) == state
        assert_consistent(store)

    def test_list_reports_every_session_lease(self, backend):
        store = backend.store
        for sid in ("b", "a", "c"):
            new_session(store, sid)
        acquired(store.leases.claim("b", opaque("x"), 1_000))
        lease = acquired(store.leases.claim("a", opaque("y"), 1_000)).lease
        store.leases.release(lease.fence)
        states = store.leases.list()
        assert [s.session_id for s in states] == ["a", "b"]
        assert states[0].holder is None and states[1].holder.owner.owner_id == "x"
        assert [s.session_id for s in store.leases.list("b")] == ["b"]
        assert store.leases.list("c") == []
