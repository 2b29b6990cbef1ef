"""A hypothesis state machine over the queue: owners enqueue, claim, abandon, cancel and
complete work while leases are acquired, released, expire and are taken over.

Invariants after every step:
* no batch is owned by two live claims: of all the claims ever handed out, at most one
  passes the completion check for any batch;
* nothing enqueued is lost or duplicated: the queue holds exactly the created batches
  minus the completed and cancelled ones, each once; no batch is completed twice;
* the projections equal a rebuild and a time-travel replay (helpers.assert_consistent).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

import eventstore
from eventstore.leases import Acquired, LeaseOwner, LocalProcessLiveness
from eventstore.queue import (
    AgentFrameTask, ClaimBoundary, DeliveryPolicy, MergeKey, ProcessWake, QueuedWorkClaimSuperseded,
    QueuedWorkDraft, RefreshToolCatalog, SlotPolicy, check_queue_completion,
)
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine

SESSIONS = ("s1", "s2")
OWNERS = ("alpha", "beta", "gamma")
TTL_MS = 1_000


def owner(name: str) -> LeaseOwner:
    """A local-process owner on the test host (so that a reclaim can prove it dead)."""
    return LeaseOwner(name, "i1", LocalProcessLiveness("host-1", "boot-1", 100 + OWNERS.index(name), 1))


class QueueMachine(BackendMachine):
    """The queue under several owners and lease changes."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        self.store = self.open_backend(self.clock).store
        for sid in SESSIONS:
            self.store.sessions.create(sid)
        self.store.leases.read_process_start = lambda pid: None  # every holder is provably dead
        self.fences: dict[tuple[str, str], Any] = {}
        self.claims: list = []
        self.created: dict[str, str] = {}  # batch id -> session
        self.completed: set[str] = set()
        self.cancelled: set[str] = set()


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(max_examples=20, stateful_step_count=40)

    @initialize()
    def seed(self) -> None:
        """A held lease and some work, so that claims have something to do from the start."""
        self.acquire("s1", "alpha")
        for text in ("a", "b", "c"):
            self.store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", text),)))
        self.created.update((b.batch_id, "s1") for b in self.store.queue.list("s1"))

    # --- leases ---

    @rule(sid=st.sampled_from(SESSIONS), who=st.sampled_from(OWNERS))
    def acquire(self, sid: str, who: str) -> None:
        got = self.store.leases.claim(sid, owner(who), TTL_MS)
        if isinstance(got, Acquired):
            self.fences[(sid, who)] = got.lease.fence

    @rule(sid=st.sampled_from(SESSIONS), who=st.sampled_from(OWNERS))
    def take_over(self, sid: str, who: str) -> None:
        """Reclaim a live lease from a holder proven dead (every pid reads as gone)."""
        state = self.store.leases.get(sid)
        if state is not None and state.holder is not None:
            got = self.store.leases.reclaim(sid, owner(who), state.holder, TTL_MS)
            if isinstance(got, Acquired):
                self.fences[(sid, who)] = got.lease.fence

    @rule(sid=st.sampled_from(SESSIONS), who=st.sampled_from(OWNERS))
    def release(self, sid: str, who: str) -> None:
        fence = self.fences.get((sid, who))
        if fence is not None:
            self.store.leases.release(fence)

    @rule(ms=st.sampled_from((1, 300, 300, TTL_MS)))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    # --- work ---

    @rule(sid=st.sampled_from(SESSIONS), kind=st.sampled_from(("task", "wake", "command")),
          slot=st.sampled_from(SlotPolicy), delivery=st.sampled_from(DeliveryPolicy),
          merge=st.sampled_from((MergeKey.PAYLOAD_DEFAULT, MergeKey.NEVER, MergeKey.group("g"))),
          delay=st.sampled_from((0, 0, 500)), n=st.integers(0, 3))
    def enqueue(self, sid, kind, slot, delivery, merge, delay, n) -> None:
        if kind == "command":
            payloads: tuple[Any, ...] = (RefreshToolCatalog(f"r{n}"),)
            key: str | None = None
        elif kind == "wake":
            wake = ProcessWake("proc", n, f"wake-{n}")
            payloads, key = (wake,), wake.source_key
        else:
            payloads, key = tuple(AgentFrameTask("f", i) for i in range(n + 1)), None
        draft = QueuedWorkDraft(sid, payloads, delivery, slot, merge, self.clock() + delay, key)
        result = self.store.queue.enqueue(draft)
        if result.created:
            assert result.batch.batch_id not in self.created
            self.created[result.batch.batch_id] = sid
        else:
            assert key is not None and result.batch.source_key == key
            assert result.batch.batch_id in self.created

    def _try(self, call):
        try:
            claim = call()
        except eventstore.StoreError as exc:
            assert type(exc).__name__ == "SessionExecutionLeaseExpired", exc
            return
        if claim is not None:
            assert not (set(claim.batch_ids) & (self.completed | self.cancelled))
            self.claims.append(claim)

    @precondition(lambda self: self.fences)
    @rule(data=st.data(), boundary=st.sampled_from(ClaimBoundary), max_batches=st.integers(0, 4))
    def claim_ready(self, data, boundary, max_batches) -> None:
        fence = self.fences[data.draw(st.sampled_from(sorted(self.fences)))]
        self._try(lambda: self.store.queue.claim_ready(fence, boundary=boundary, max_batches=max_batches))

    @precondition(lambda self: self.fences)
    @rule(data=st.data())
    def claim_command(self, data) -> None:
        fence = self.fences[data.draw(st.sampled_from(sorted(self.fences)))]
        self._try(lambda: self.store.queue.claim_session_command(fence))

    @precondition(lambda self: self.fences)
    @rule(data=st.data())
    def claim_by_ids(self, data) -> None:
        sid, who = data.draw(st.sampled_from(sorted(self.fences)))
        mine = sorted(b for b, s in self.created.items() if s == sid)
        if mine:
            ids = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=3, unique=True))
            self._try(lambda: self.store.queue.claim_by_ids(self.fences[(sid, who)], ids))

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def abandon(self, data) -> None:
        claim = data.draw(st.sampled_from(self.claims))
        given = self.store.queue.abandon(claim).batch_ids
        assert set(given) <= set(claim.batch_ids)

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def cancel(self, data) -> None:
        batch_id = data.draw(st.sampled_from(sorted(self.created)))
        out = self.store.queue.cancel(self.created[batch_id], batch_id)
        if out is not None:
            assert batch_id not in self.completed | self.cancelled
            self.cancelled.add(batch_id)

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def complete(self, data) -> None:
        claim = data.draw(st.sampled_from(self.claims))
        try:
            done = self.store.queue.complete(claim)
        except QueuedWorkClaimSuperseded:
            return
        assert not (set(done.batch_ids) & (self.completed | self.cancelled)), "a batch settled twice"
        self.completed.update(done.batch_ids)

    # --- invariants ---

    @invariant()
    def no_batch_is_owned_by_two_live_claims(self) -> None:
        owners: dict[str, str] = {}
        now = self.clock()
        for claim in self.claims:
            for batch_id in claim.batch_ids:
                single = attrs.evolve(claim.completion(), batch_ids=(batch_id,))
                try:
                    check_queue_completion(self.store.db, single, now)
                except QueuedWorkClaimSuperseded:
                    continue
                assert batch_id not in owners, f"{batch_id} owned by {owners.get(batch_id)} and {claim.claim_id}"
                owners[batch_id] = claim.claim_id

    @invariant()
    def nothing_is_lost_or_duplicated(self) -> None:
        assert not self.completed & self.cancelled
        listed = [b.batch_id for sid in SESSIONS for b in self.store.queue.list(sid)]
        assert len(listed) == len(set(listed))
        assert set(listed) == set(self.created) - self.completed - self.cancelled
        settled = [b for e in self.store.read_all(types=["queue.completed"]) for b in e.data.batch_ids]
        assert len(settled) == len(set(settled)) and set(settled) == self.completed

    @invariant()
    def projections_equal_rebuild_and_replay(self) -> None:
        assert_consistent(self.store)

