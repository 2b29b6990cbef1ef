"""A hypothesis state machine for session execution leases against a small pure model.

Several owners (two incarnations of one owner id, another local process, an opaque
remote worker) claim, renew, release and reclaim one session's lease while the clock
moves and their processes die or have their pids reused. The model predicts every
outcome; after every step the machine checks that at most one fence is live, that
fencing tokens strictly increase across acquisitions, and that the live projections
equal a rebuild from the log and a time-travel replay (eventstore.testing.helpers.assert_consistent).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

import eventstore
from eventstore.leases import (
    Acquired, Busy, SessionExecutionLease, SessionExecutionLeaseExpired, is_generation_live,
    require_live_fence,
)
from eventstore.leases import LeaseOwner, LocalProcessLiveness, ObservedHolder, OpaqueLiveness
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine

SID = "s"
START = 1_000  # every owner's process start time while it runs

OWNERS = (
    LeaseOwner("a", "a-1", LocalProcessLiveness("host", "boot", 10, START)),
    LeaseOwner("a", "a-2", LocalProcessLiveness("host", "boot", 11, START)),  # same id, new incarnation
    LeaseOwner("b", "b-1", LocalProcessLiveness("host", "boot", 12, START)),
    LeaseOwner("c", "c-1", OpaqueLiveness()),  # a remote worker: never provably dead
)
owners = st.integers(0, len(OWNERS) - 1)
ttls = st.sampled_from([0, 1, 50, 200, 1_000])


@attrs.frozen
class ModelLease:
    """The model's holder: which owner, which fence, until when."""

    owner: int
    fence: int
    expires_at: int


class LeaseModel:
    """The pure reference: docs/semantics.md §3 in a dozen lines."""

    def __init__(self) -> None:
        self.fence = 0
        self.holder: ModelLease | None = None

    def live(self, now: int) -> ModelLease | None:
        return self.holder if self.holder is not None and now < self.holder.expires_at else None

    def claim(self, owner: int, ttl: int, now: int) -> str:
        live = self.live(now)
        if live is None:
            self.fence += 1
            self.holder = ModelLease(owner, self.fence, now + ttl)
            return "acquired"
        if OWNERS[live.owner].same_owner(OWNERS[owner]):
            self.holder = attrs.evolve(live, expires_at=now + ttl)
            return "reentry"
        return "busy"

    def reclaim(self, owner: int, observed_fence: int, holder_dead: bool, ttl: int, now: int) -> str:
        live = self.live(now)
        if live is None:
            return self.claim(owner, ttl, now)
        if observed_fence == live.fence and holder_dead:
            self.fence += 1
            self.holder = ModelLease(owner, self.fence, now + ttl)
            return "acquired"
        return "busy"

    def renew(self, fence: int, ttl: int, now: int) -> bool:
        live = self.live(now)
        if live is None or live.fence != fence:
            return False
        self.holder = attrs.evolve(live, expires_at=now + ttl)
        return True

    def release(self, fence: int) -> bool:
        if self.holder is None or self.holder.fence != fence:
            return False
        self.holder = None
        return True


class Proc:
    """The fake /proc the store reads: pid -> start time (absent: no such process)."""

    def __init__(self) -> None:
        self.starts = {o.liveness.pid: START for o in OWNERS if isinstance(o.liveness, LocalProcessLiveness)}

    def __call__(self, pid: int) -> int | None:
        return self.starts.get(pid)

    def dead(self, holder: LeaseOwner, claimant: LeaseOwner) -> bool:
        h, c = holder.liveness, claimant.liveness
        if not isinstance(h, LocalProcessLiveness) or not isinstance(c, LocalProcessLiveness):
            return False
        return self.starts.get(h.pid) != h.process_start


class LeaseMachine(BackendMachine):
    """Claims, renewals, releases, reclaims, clock moves and process deaths on one session."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock()
        self.store = self.open_backend(self.clock).store
        self.proc = Proc()
        self.store.leases.read_process_start = self.proc
        self.store.sessions.create(SID)
        self.model = LeaseModel()
        self.issued: list[SessionExecutionLease] = []  # every lease handed out, in order
        self.acquired_fences: list[int] = []


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(max_examples=25, stateful_step_count=30)

    def _record(self, outcome: object, expected: str) -> None:
        if expected == "busy":
            assert isinstance(outcome, Busy), outcome
            return
        assert isinstance(outcome, Acquired), outcome
        assert outcome.reentry == (expected == "reentry")
        holder = self.model.holder
        assert holder is not None
        assert outcome.lease.fencing_token == holder.fence
        assert outcome.lease.expires_at_ms == holder.expires_at
        if not outcome.reentry:
            self.acquired_fences.append(outcome.lease.fencing_token)
        self.issued.append(outcome.lease)

    # --- rules ---

    @rule(owner=owners, ttl=ttls)
    def claim(self, owner: int, ttl: int) -> None:
        expected = self.model.claim(owner, ttl, self.clock())
        self._record(self.store.leases.claim(SID, OWNERS[owner], ttl), expected)

    @precondition(lambda self: self.issued)
    @rule(owner=owners, pick=st.integers(0, 1_000), ttl=ttls)
    def reclaim(self, owner: int, pick: int, ttl: int) -> None:
        observed: Any = self.issued[pick % len(self.issued)]
        if pick % 2 == 0:  # half the time, observe the lease as it is now
            current = self.store.leases.get(SID)
            holder = current.holder if current is not None else None
            observed = holder if holder is not None else observed
        live = self.model.live(self.clock())
        dead = live is not None and self.proc.dead(OWNERS[live.owner], OWNERS[owner])
        expected = self.model.reclaim(owner, observed.fencing_token, dead, ttl, self.clock())
        if pick % 3 == 1:  # only what a caller can know of the holder: its owner and fence
            observed = ObservedHolder(observed.owner, observed.fencing_token)
        self._record(self.store.leases.reclaim(SID, OWNERS[owner], observed, ttl), expected)

    @precondition(lambda self: self.issued)
    @rule(pick=st.integers(0, 1_000), ttl=ttls)
    def renew(self, pick: int, ttl: int) -> None:
        lease = self.issued[pick % len(self.issued)]
        ok = self.model.renew(lease.fencing_token, ttl, self.clock())
        try:
            renewed = self.store.leases.renew(lease.fence, ttl)
        except SessionExecutionLeaseExpired:
            assert not ok
        else:
            assert ok and renewed.expires_at_ms == self.clock() + ttl

    @precondition(lambda self: self.issued)
    @rule(pick=st.integers(0, 1_000))
    def release(self, pick: int) -> None:
        lease = self.issued[pick % len(self.issued)]
        assert self.store.leases.release(lease.fence).released == self.model.release(lease.fencing_token)

    @rule(ms=st.integers(0, 300))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    @rule(owner=st.integers(0, 2), fate=st.sampled_from(["dies", "pid reused", "runs"]))
    def process(self, owner: int, fate: str) -> None:
        liveness = OWNERS[owner].liveness
        assert isinstance(liveness, LocalProcessLiveness)
        pid = liveness.pid
        if fate == "dies":
            self.proc.starts.pop(pid, None)
        else:
            self.proc.starts[pid] = START + 1 if fate == "pid reused" else START

    # --- invariants ---

    @invariant()
    def projection_matches_the_model(self) -> None:
        state = self.store.leases.get(SID)
        if self.model.fence == 0:
            assert state is None
            return
        assert state is not None and state.fencing_token == self.model.fence
        holder = self.model.holder
        if holder is None:
            assert state.holder is None
        else:
            assert state.holder is not None and state.holder.owner == OWNERS[holder.owner]
            assert (state.holder.fencing_token, state.holder.expires_at_ms) == (holder.fence, holder.expires_at)

    @invariant()
    def at_most_one_live_holder(self) -> None:
        now = self.clock()
        live = set()
        for lease in self.issued:
            try:
                require_live_fence(self.store.db, lease.fence, now)
            except SessionExecutionLeaseExpired:
                continue
            live.add(lease.fencing_token)
        assert len(live) <= 1
        generations = {lease.fencing_token for lease in self.issued}
        state = self.store.leases.get(SID)
        assert sum(is_generation_live(state, g, now) for g in generations) == len(live)

    @invariant()
    def fences_strictly_increase_across_acquisitions(self) -> None:
        f = self.acquired_fences
        assert all(a < b for a, b in zip(f, f[1:])), f
        assert f == list(range(1, len(f) + 1))

    @invariant()
    def projections_equal_a_rebuild_and_a_replay(self) -> None:
        assert_consistent(self.store)

