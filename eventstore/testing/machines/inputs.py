"""A hypothesis state machine over pending turn inputs: owners enqueue, claim (active,
next-turn and checkpoint claims), abandon, cancel (by id, in bulk, as a suffix),
complete, interrupt and vacuum, while leases are acquired, released, expire and are
taken over.

Invariants after every step:
* no input is owned by two live claims: of all the claims ever handed out, at most one
  passes the completion check for any input;
* nothing is lost or duplicated: the table holds every recorded input except the
  vacuumed ones, each once; exactly the inputs we completed are COMPLETED and exactly
  those we cancelled are CANCELLED; a cancelled input never comes back;
* the projections equal a rebuild and a time-travel replay (helpers.assert_consistent).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

import eventstore
from eventstore.inputs import ActiveTurn, CheckpointKind, InputState, NextTurn
from eventstore.inputs import (
    CancelOutcome, PendingTurnInputSourceKeyConflict, TurnInputClaimSuperseded, TurnInputDraft,
    check_input_completion,
)
from eventstore.leases import Acquired
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine
from eventstore.testing.machines.queue import owner

OWNERS = ("alpha", "beta", "gamma")
TURNS = ("t1", "t2")
TTL_MS = 1_000


class InputMachine(BackendMachine):
    """Pending turn inputs of one session under several owners and lease changes."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        self.store = self.open_backend(self.clock).store
        self.store.sessions.create("s1")
        self.store.leases.read_process_start = lambda pid: None  # every holder is provably dead
        self.fences: dict[str, Any] = {}
        self.claims: list = []
        self.created: list[str] = []
        self.completed: set[str] = set()
        self.cancelled: set[str] = set()
        self.vacuumed: set[str] = set()


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(max_examples=20, stateful_step_count=40)

    @initialize()
    def seed(self) -> None:
        """A held lease and a few inputs, so that claims have something to do from the start."""
        self.acquire("alpha")
        for turn, text in (("t1", "a"), ("t1", "b"), (None, "c")):
            self.enqueue(turn, CheckpointKind.AFTER_WORK, text, None)

    # --- leases ---

    @rule(who=st.sampled_from(OWNERS))
    def acquire(self, who: str) -> None:
        got = self.store.leases.claim("s1", owner(who), TTL_MS)
        if isinstance(got, Acquired):
            self.fences[who] = got.lease.fence

    @rule(who=st.sampled_from(OWNERS))
    def take_over(self, who: str) -> None:
        """Reclaim a live lease from a holder proven dead (every pid reads as gone)."""
        state = self.store.leases.get("s1")
        if state is not None and state.holder is not None:
            got = self.store.leases.reclaim("s1", owner(who), state.holder, TTL_MS)
            if isinstance(got, Acquired):
                self.fences[who] = got.lease.fence

    @precondition(lambda self: self.fences)
    @rule(data=st.data())
    def release(self, data) -> None:
        self.store.leases.release(self.fences[data.draw(st.sampled_from(sorted(self.fences)))])

    @rule(ms=st.sampled_from((1, 300, 300, TTL_MS)))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    # --- inputs ---

    @rule(turn=st.sampled_from(TURNS + (None,)), boundary=st.sampled_from(CheckpointKind),
          text=st.sampled_from(("x", "y")), key=st.sampled_from((None, None, "k1", "k2")))
    def enqueue(self, turn, boundary, text, key) -> None:
        ingress = ActiveTurn(turn, boundary) if turn else NextTurn()
        try:
            got = self.store.inputs.enqueue(TurnInputDraft("s1", text, ingress, source_key=key))
        except PendingTurnInputSourceKeyConflict:
            assert key is not None
            return
        if got.created:
            assert got.input.input_id not in self.created
            self.created.append(got.input.input_id)
        else:
            assert got.input.input_id in self.created and got.input.source_key == key

    def _fence(self, data):
        return self.fences[data.draw(st.sampled_from(sorted(self.fences)))]

    def _took(self, claim) -> None:
        if claim is not None:
            assert not set(claim.input_ids) & (self.completed | self.cancelled | self.vacuumed)
            self.claims.append(claim)

    def _claiming(self, call) -> None:
        try:
            self._took(call())
        except eventstore.StoreError as exc:
            assert type(exc).__name__ == "SessionExecutionLeaseExpired", exc

    @precondition(lambda self: self.fences)
    @rule(data=st.data(), turn=st.sampled_from(TURNS), checkpoint=st.sampled_from(CheckpointKind),
          n=st.integers(0, 3))
    def claim_active(self, data, turn, checkpoint, n) -> None:
        fence = self._fence(data)
        self._claiming(lambda: self.store.inputs.claim_active(fence, turn, checkpoint, max_inputs=n))

    @precondition(lambda self: self.fences)
    @rule(data=st.data(), n=st.integers(0, 3))
    def claim_next_turn(self, data, n) -> None:
        fence = self._fence(data)
        self._claiming(lambda: self.store.inputs.claim_next_turn(fence, max_inputs=n))

    @precondition(lambda self: self.fences)
    @rule(data=st.data(), turn=st.sampled_from(TURNS), checkpoint=st.sampled_from(CheckpointKind))
    def claim_checkpoint(self, data, turn, checkpoint) -> None:
        fence = self._fence(data)
        self._claiming(lambda: self.store.queue.claim_checkpoint(fence, turn, checkpoint).inputs)

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def abandon(self, data) -> None:
        claim = data.draw(st.sampled_from(self.claims))
        assert set(self.store.inputs.abandon(claim).input_ids) <= set(claim.input_ids)

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def complete(self, data) -> None:
        claim = data.draw(st.sampled_from(self.claims))
        try:
            done = self.store.inputs.complete(claim)
        except TurnInputClaimSuperseded:
            return
        assert not set(done.input_ids) & (self.completed | self.cancelled), "an input settled twice"
        self.completed.update(done.input_ids)

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def cancel_many(self, data) -> None:
        targets = data.draw(st.lists(st.sampled_from(self.created + ["ti:missing"]), min_size=1, max_size=4))
        self._cancelled(self.store.inputs.cancel_many("s1", targets))

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def cancel_from(self, data) -> None:
        got = self.store.inputs.cancel_from("s1", data.draw(st.sampled_from(self.created)))
        self._cancelled(got.cancels)

    def _cancelled(self, cancels) -> None:
        for c in cancels:
            if c.outcome is CancelOutcome.CANCELLED:
                assert c.input.input_id not in self.completed | self.cancelled
                self.cancelled.add(c.input.input_id)
            elif c.outcome is CancelOutcome.NOT_FOUND:
                assert c.target not in self.created or c.target in self.vacuumed

    @precondition(lambda self: self.fences)
    @rule(data=st.data(), turn=st.sampled_from(TURNS))
    def interrupt(self, data, turn) -> None:
        fence = self._fence(data)
        own = [c for c in self.claims if c.generation == fence.fencing_token and c.mode == "active_turn"
               and c.turn_id == turn]
        claim = data.draw(st.sampled_from(own)) if own and data.draw(st.booleans()) else None
        try:
            result = self.store.inputs.interrupt(fence, turn, claim)
        except (TurnInputClaimSuperseded, eventstore.StoreError) as exc:
            assert type(exc).__name__ in ("TurnInputClaimSuperseded", "SessionExecutionLeaseExpired"), exc
            return
        assert not set(result.completed_input_ids) & (self.completed | self.cancelled)
        assert not set(result.deferred_input_ids) & self.cancelled  # law 59
        self.completed.update(result.completed_input_ids)

    @rule()
    def vacuum(self) -> None:
        terminal = (self.completed | self.cancelled) - self.vacuumed
        assert self.store.inputs.vacuum("s1") == len(terminal)
        self.vacuumed |= terminal

    # --- invariants ---

    @invariant()
    def no_input_is_owned_by_two_live_claims(self) -> None:
        owners: dict[str, str] = {}
        for claim in self.claims:
            for input_id in claim.input_ids:
                single = attrs.evolve(claim.completion(), input_ids=(input_id,))
                try:
                    check_input_completion(self.store.db, single, self.clock())
                except TurnInputClaimSuperseded:
                    continue
                assert input_id not in owners, f"{input_id} owned by {owners.get(input_id)} and {claim.claim_id}"
                owners[input_id] = claim.claim_id

    @invariant()
    def nothing_is_lost_or_duplicated(self) -> None:
        assert not self.completed & self.cancelled
        rows = self.store.inputs.list("s1")
        ids = [r.input_id for r in rows]
        assert len(ids) == len(set(ids)) and set(ids) == set(self.created) - self.vacuumed
        for r in rows:
            assert (r.state is InputState.COMPLETED) == (r.input_id in self.completed), r
            assert (r.state is InputState.CANCELLED) == (r.input_id in self.cancelled), r

    @invariant()
    def projections_equal_rebuild_and_replay(self) -> None:
        assert_consistent(self.store)

