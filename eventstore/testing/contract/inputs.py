"""Pending-turn-input laws (docs/semantics.md §5, laws 28 and 49-59) as a backend contract."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import eventstore
from eventstore.inputs import ActiveTurn, CheckpointKind, InputState, NextTurn
from eventstore.inputs import (
    BySourceKey, CancelOutcome, PendingTurnInputIdConflict, PendingTurnInputSourceKeyConflict,
    TurnInputClaimSuperseded, TurnInputCompletion, TurnInputDraft,
)
from eventstore.leases import Acquired, SessionExecutionLeaseExpired, LeaseOwner
from eventstore.testing import Backend
from eventstore.testing.helpers import assert_consistent

AFTER_WORK, BEFORE_COMPLETION = CheckpointKind.AFTER_WORK, CheckpointKind.BEFORE_COMPLETION


def fence_of(store: eventstore.Store, sid: str, name: str, ttl_ms: int = 60_000) -> Any:
    """Acquire the session lease for owner `name` and return its fence."""
    got = store.leases.claim(sid, LeaseOwner(name, "i1"), ttl_ms)
    assert isinstance(got, Acquired), got
    return got.lease.fence


def draft(text: str, turn: str | None = "t1", sid: str = "s1", boundary: CheckpointKind = AFTER_WORK,
          **kw: Any) -> TurnInputDraft:
    """An input for turn `turn` (None: for the next turn)."""
    return TurnInputDraft(sid, text, ActiveTurn(turn, boundary) if turn else NextTurn(), **kw)


def outcomes(cancels: Any) -> list[CancelOutcome]:
    """The outcome of each cancel, in order."""
    return [c.outcome for c in cancels]


class InputContract:
    """Laws 28 and 49-59; subclass with a `backend` fixture."""

    def setup_session(self, backend: Backend, sid: str = "s1") -> eventstore.Store:
        backend.store.sessions.create(sid)
        return backend.store

    def add(self, store: eventstore.Store, d: TurnInputDraft) -> Any:
        return store.inputs.enqueue(d).input

    # --- law 28 -------------------------------------------------------------------------

    def test_law_28_input_claims_require_a_live_fence(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        self.add(store, draft("now"))
        self.add(store, draft("later", None))
        fence = fence_of(store, "s1", "a", ttl_ms=1_000)
        clock.advance(1_000)
        before = store.last_position()
        for call in (lambda: store.inputs.claim_active(fence, "t1"), lambda: store.inputs.claim_next_turn(fence),
                     lambda: store.inputs.interrupt(fence, "t1")):
            with pytest.raises(SessionExecutionLeaseExpired):
                call()
        assert store.last_position() == before
        assert store.inputs.claim_active(fence_of(store, "s1", "b"), "t1") is not None

    # --- law 31 (inputs) ------------------------------------------------------------------

    def test_law_31_concurrent_input_claims_have_one_winner_and_pending_hides_the_claimed(self, backend):
        store = self.setup_session(backend)
        i = self.add(store, draft("only"))
        fence = fence_of(store, "s1", "a")
        handles = [backend.open(), backend.open()]
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]
        errors: list[BaseException] = []

        def race(k: int) -> None:
            try:
                barrier.wait(timeout=10)
                results[k] = handles[k].inputs.claim_active(fence, "t1")
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        winners = [r for r in results if r is not None]
        assert len(winners) == 1 and winners[0].input_ids == (i.input_id,)
        assert store.inputs.list_pending("s1") == []

    # --- law 49 -------------------------------------------------------------------------

    def test_law_49_source_key_replay_returns_the_original_row_and_changed_content_conflicts(self, backend):
        store = self.setup_session(backend)
        first = store.inputs.enqueue(draft("hello", source_key="k"))
        replay = store.inputs.enqueue(draft("hello", source_key="k"))
        assert first.created and not replay.created and replay.input.input_id == first.input.input_id
        before = store.last_position()
        for changed in (draft("hello!", source_key="k"), draft("hello", "t2", source_key="k"),
                        draft("hello", boundary=BEFORE_COMPLETION, source_key="k"), draft("hello", None, source_key="k"),
                        draft("hello", source_key="k", input_id="explicit")):
            with pytest.raises(PendingTurnInputSourceKeyConflict):
                store.inputs.enqueue(changed)
        assert store.last_position() == before and len(store.inputs.list("s1")) == 1

    # --- law 50 -------------------------------------------------------------------------

    def test_law_50_an_exact_replay_after_cancel_or_completion_returns_the_terminal_row(self, backend):
        store = self.setup_session(backend)
        cancelled = self.add(store, draft("c", source_key="kc"))
        done = self.add(store, draft("d", source_key="kd"))
        store.inputs.cancel("s1", cancelled.input_id)
        fence = fence_of(store, "s1", "a")
        claim = store.inputs.claim_active(fence, "t1")
        assert claim.input_ids == (done.input_id,)
        store.inputs.complete(claim)
        before = store.last_position()
        again_c = store.inputs.enqueue(draft("c", source_key="kc"))
        again_d = store.inputs.enqueue(draft("d", source_key="kd"))
        assert not again_c.created and again_c.input.state is InputState.CANCELLED
        assert not again_d.created and again_d.input.state is InputState.COMPLETED
        assert store.last_position() == before

    # --- law 51 -------------------------------------------------------------------------

    def test_law_51_cancel_is_idempotent_and_answers_already_cancelled(self, backend):
        store = self.setup_session(backend)
        i = self.add(store, draft("x"))
        first = store.inputs.cancel("s1", i.input_id)
        assert first.outcome is CancelOutcome.CANCELLED and first.input.state is InputState.CANCELLED
        before = store.last_position()
        assert store.inputs.cancel("s1", i.input_id).outcome is CancelOutcome.ALREADY_CANCELLED
        assert store.last_position() == before

    # --- law 52 -------------------------------------------------------------------------

    def test_law_52_vacuum_prunes_only_terminal_rows_and_then_cancel_answers_not_found(self, backend):
        store = self.setup_session(backend)
        gone = self.add(store, draft("cancel me", source_key="k"))
        done = self.add(store, draft("complete me"))
        kept = self.add(store, draft("keep me", "t2"))
        store.inputs.cancel("s1", gone.input_id)
        store.inputs.complete(store.inputs.claim_active(fence_of(store, "s1", "a"), "t1"))
        assert store.inputs.vacuum("s1") == 2
        assert [i.input_id for i in store.inputs.list("s1")] == [kept.input_id]
        assert store.inputs.cancel("s1", gone.input_id).outcome is CancelOutcome.NOT_FOUND
        assert store.inputs.cancel("s1", done.input_id).outcome is CancelOutcome.NOT_FOUND
        assert store.inputs.vacuum("s1") == 0
        fresh = store.inputs.enqueue(draft("cancel me", source_key="k"))  # the key is unknown now
        assert fresh.created and fresh.input.input_id != gone.input_id
        assert_consistent(store)

    # --- law 53 -------------------------------------------------------------------------

    def test_law_53_bulk_cancel_returns_outcomes_in_target_order(self, backend):
        store = self.setup_session(backend)
        a = self.add(store, draft("a"))
        b = self.add(store, draft("b", source_key="kb"))
        c = self.add(store, draft("c", "t2"))
        d = self.add(store, draft("d", None))
        store.inputs.cancel("s1", d.input_id)
        claim = store.inputs.claim_active(fence_of(store, "s1", "a"), "t2")
        assert claim.input_ids == (c.input_id,)
        got = store.inputs.cancel_many("s1", [b.input_id, "ti:missing", a.input_id, c.input_id, a.input_id,
                                              d.input_id, BySourceKey("kb"), BySourceKey("nope")])
        assert outcomes(got) == [CancelOutcome.CANCELLED, CancelOutcome.NOT_FOUND, CancelOutcome.CANCELLED,
                                 CancelOutcome.ALREADY_CLAIMED, CancelOutcome.ALREADY_CANCELLED,
                                 CancelOutcome.ALREADY_CANCELLED, CancelOutcome.ALREADY_CANCELLED,
                                 CancelOutcome.NOT_FOUND]
        assert [x.target for x in got][:2] == [b.input_id, "ti:missing"] and got[1].input is None
        assert got[3].input.claim.claim_id == claim.claim_id and got[3].input.claim.live  # diagnostics

    # --- law 54 -------------------------------------------------------------------------

    def test_law_54_suffix_cancel_reports_live_claims_and_a_missing_anchor(self, backend):
        store = self.setup_session(backend)
        before_anchor = self.add(store, draft("0"))
        anchor = self.add(store, draft("1"))
        held = self.add(store, draft("2", "t2"))
        tail = self.add(store, draft("3", None))
        store.inputs.claim_active(fence_of(store, "s1", "a"), "t2")
        missing = store.inputs.cancel_from("s1", "ti:nope")
        assert not missing.anchor_found and missing.cancels == ()
        got = store.inputs.cancel_from("s1", anchor.input_id)
        assert got.anchor_found
        assert [(c.target, c.outcome) for c in got.cancels] == [
            (anchor.input_id, CancelOutcome.CANCELLED), (held.input_id, CancelOutcome.ALREADY_CLAIMED),
            (tail.input_id, CancelOutcome.CANCELLED)]
        assert store.inputs.get("s1", before_anchor.input_id).state is InputState.PENDING_ACTIVE

    def test_law_54_a_suffix_cancel_may_be_anchored_by_source_key(self, backend):
        """cancel_from accepts BySourceKey like every other cancel: the keyed input and every
        later one are cancelled; an unknown key is AnchorNotFound and changes nothing."""
        store = self.setup_session(backend)
        before_anchor = self.add(store, draft("0"))
        anchor = self.add(store, draft("1", source_key="msg-1"))
        tail = self.add(store, draft("2", None))
        position = store.last_position()
        missing = store.inputs.cancel_from("s1", BySourceKey("msg-404"))
        assert (missing.anchor_found, missing.anchor_input_id, missing.anchor_source_key) == (False, None, "msg-404")
        assert missing.cancels == () and store.last_position() == position
        got = store.inputs.cancel_from("s1", BySourceKey("msg-1"))
        assert (got.anchor_found, got.anchor_input_id, got.anchor_source_key) == (True, anchor.input_id, "msg-1")
        assert [(c.target, c.outcome) for c in got.cancels] == [
            (anchor.input_id, CancelOutcome.CANCELLED), (tail.input_id, CancelOutcome.CANCELLED)]
        assert store.inputs.get("s1", before_anchor.input_id).state is InputState.PENDING_ACTIVE
        with pytest.raises(eventstore.InvalidArgument, match="source_key"):
            store.inputs.cancel_from("s1", BySourceKey(""))

    # --- law 55 -------------------------------------------------------------------------

    def test_law_55_a_claimed_input_cannot_be_cancelled_and_is_hidden(self, backend):
        store = self.setup_session(backend)
        active = self.add(store, draft("a"))
        nxt = self.add(store, draft("n", None))
        fence = fence_of(store, "s1", "a")
        store.inputs.claim_active(fence, "t1")
        store.inputs.claim_next_turn(fence)
        assert store.inputs.list_pending("s1") == []
        before = store.last_position()
        for i in (active, nxt):
            assert store.inputs.cancel("s1", i.input_id).outcome is CancelOutcome.ALREADY_CLAIMED
        assert store.last_position() == before
        states = {i.input_id: i.state for i in store.inputs.list("s1")}
        assert states == {active.input_id: InputState.ACCEPTED, nxt.input_id: InputState.DEFERRED_NEXT_TURN}

    # --- law 56 -------------------------------------------------------------------------

    def test_law_56_abandon_then_reclaim_raises_the_fence_and_the_stale_completion_fails(self, backend):
        store = self.setup_session(backend)
        i = self.add(store, draft("x"))
        fence = fence_of(store, "s1", "a")
        old = store.inputs.claim_active(fence, "t1")
        assert store.inputs.abandon(old).input_ids == (i.input_id,)
        assert store.inputs.get("s1", i.input_id).state is InputState.PENDING_ACTIVE
        new = store.inputs.claim_active(fence, "t1")
        assert new.fencing_token == old.fencing_token + 1 and new.claim_id == f"tic:{i.enqueue_seq}:2"
        before = store.last_position()
        with pytest.raises(TurnInputClaimSuperseded):
            store.inputs.complete(old)
        assert store.last_position() == before
        row = store.inputs.get("s1", i.input_id)
        assert row.state is InputState.ACCEPTED and row.claim.claim_id == new.claim_id  # the live claim is intact
        assert store.inputs.complete(new).input_ids == (i.input_id,)

    # --- law 57 -------------------------------------------------------------------------

    def test_law_57_a_completed_input_can_be_neither_claimed_nor_cancelled(self, backend):
        store = self.setup_session(backend)
        i = self.add(store, draft("x"))
        fence = fence_of(store, "s1", "a")
        store.inputs.complete(store.inputs.claim_active(fence, "t1"))
        assert store.inputs.claim_active(fence, "t1", BEFORE_COMPLETION) is None
        assert store.inputs.claim_next_turn(fence) is None
        assert store.inputs.cancel("s1", i.input_id).outcome is CancelOutcome.ALREADY_COMPLETED
        store.leases.release(fence)
        assert store.inputs.claim_active(fence_of(store, "s1", "b"), "t1", BEFORE_COMPLETION) is None

    # --- law 58 -------------------------------------------------------------------------

    def test_law_58_interrupt_completes_accepted_defers_unaccepted_and_spares_other_turns(self, backend):
        store = self.setup_session(backend)
        accepted = self.add(store, draft("seen", boundary=AFTER_WORK))
        fence = fence_of(store, "s1", "a")
        claim = store.inputs.claim_active(fence, "t1", AFTER_WORK)
        late = self.add(store, draft("typed later"))
        unadmitted = self.add(store, draft("before completion", boundary=BEFORE_COMPLETION))
        other = self.add(store, draft("other turn", "t2"))
        result = store.inputs.interrupt(fence, "t1", claim.completion())
        assert result.completed_input_ids == (accepted.input_id,)
        assert result.deferred_input_ids == (late.input_id, unadmitted.input_id)
        rows = {i.input_id: i for i in store.inputs.list("s1")}
        assert rows[accepted.input_id].state is InputState.COMPLETED
        for moved in (late, unadmitted):
            assert rows[moved.input_id].state is InputState.DEFERRED_NEXT_TURN
            assert rows[moved.input_id].ingress == NextTurn()
        assert rows[other.input_id].state is InputState.PENDING_ACTIVE and rows[other.input_id].ingress.turn_id == "t2"
        assert store.inputs.claim_next_turn(fence).input_ids == (late.input_id, unadmitted.input_id)
        assert_consistent(store)

    # --- law 59 -------------------------------------------------------------------------

    def test_law_59_deferral_never_brings_a_cancelled_input_back(self, backend):
        store = self.setup_session(backend)
        cancelled = self.add(store, draft("never mind"))
        pending = self.add(store, draft("still wanted"))
        store.inputs.cancel("s1", cancelled.input_id)
        fence = fence_of(store, "s1", "a")
        assert store.inputs.interrupt(fence, "t1").deferred_input_ids == (pending.input_id,)
        assert store.inputs.get("s1", cancelled.input_id).state is InputState.CANCELLED
        assert store.inputs.claim_next_turn(fence).input_ids == (pending.input_id,)

    # --- beyond the reference ------------------------------------------------------------

    def test_an_input_accepted_under_a_dead_generation_is_claimable_again_without_abandon(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        i = self.add(store, draft("x"))
        crashed = store.inputs.claim_active(fence_of(store, "s1", "crashed", ttl_ms=1_000), "t1")
        assert store.inputs.get("s1", i.input_id).state is InputState.ACCEPTED
        clock.advance(1_000)  # the owner crashed: its lease expired, nobody abandoned the claim
        row = store.inputs.get("s1", i.input_id)
        assert row.state is InputState.PENDING_ACTIVE and not row.claim.live
        assert [x.input_id for x in store.inputs.list_pending("s1")] == [i.input_id]
        heir = store.inputs.claim_active(fence_of(store, "s1", "heir"), "t1")
        assert heir.input_ids == (i.input_id,) and heir.fencing_token == crashed.fencing_token + 1
        with pytest.raises(TurnInputClaimSuperseded):
            store.inputs.complete(crashed)
        assert store.inputs.complete(heir).input_ids == (i.input_id,)

    def test_a_dead_claims_accepted_input_can_be_cancelled_and_is_deferred_by_an_interrupt(self, backend):
        store, clock = self.setup_session(backend), backend.clock
        a = self.add(store, draft("a"))
        b = self.add(store, draft("b"))
        store.inputs.claim_active(fence_of(store, "s1", "crashed", ttl_ms=1_000), "t1")
        clock.advance(1_000)
        assert store.inputs.cancel("s1", a.input_id).outcome is CancelOutcome.CANCELLED
        assert store.inputs.interrupt(fence_of(store, "s1", "heir"), "t1").deferred_input_ids == (b.input_id,)

    def test_checkpoints_admit_inputs_by_their_minimum_boundary(self, backend):
        store = self.setup_session(backend)
        early = self.add(store, draft("after work", boundary=AFTER_WORK))
        late = self.add(store, draft("before completion", boundary=BEFORE_COMPLETION))
        fence = fence_of(store, "s1", "a")
        assert store.inputs.claim_active(fence, "t1", AFTER_WORK).input_ids == (early.input_id,)
        assert store.inputs.claim_active(fence, "t1", AFTER_WORK) is None
        assert store.inputs.claim_active(fence, "t1", BEFORE_COMPLETION).input_ids == (late.input_id,)
        assert store.inputs.claim_active(fence, "t2", BEFORE_COMPLETION) is None

    def test_an_explicit_input_id_is_idempotent_and_conflicts_on_different_content(self, backend):
        store = self.setup_session(backend)
        first = store.inputs.enqueue(draft("x", input_id="mine"))
        assert first.input.input_id == "mine"
        assert not store.inputs.enqueue(draft("x", input_id="mine")).created
        with pytest.raises(PendingTurnInputIdConflict):
            store.inputs.enqueue(draft("y", input_id="mine"))

    def test_enqueue_is_refused_for_unknown_or_deleted_sessions_and_delete_wipes_inputs(self, backend):
        from eventstore.sessions import SessionDeleted, SessionNotFound

        store = self.setup_session(backend)
        with pytest.raises(SessionNotFound):
            store.inputs.enqueue(draft("x", sid="nobody"))
        self.add(store, draft("x"))
        store.sessions.delete("s1")
        assert store.inputs.list("s1") == []
        with pytest.raises(SessionDeleted):
            store.inputs.enqueue(draft("y"))
        store.sessions.purge("s1")
        assert_consistent(store)

    def test_time_travel_shows_inputs_as_they_were_and_refuses_commands(self, backend):
        store = self.setup_session(backend)
        i = self.add(store, draft("x"))
        at = store.last_position()
        store.inputs.cancel("s1", i.input_id)
        with store.at(at) as view:
            assert view.inputs.get("s1", i.input_id).state is InputState.PENDING_ACTIVE
            with pytest.raises(eventstore.ReadOnlyView):
                view.inputs.cancel("s1", i.input_id)
            with pytest.raises(eventstore.ReadOnlyView):
                view.inputs.cancel_from("s1", i.input_id)
        assert store.inputs.get("s1", i.input_id).state is InputState.CANCELLED

    def test_malformed_arguments_are_typed_errors(self, backend):
        store = self.setup_session(backend)
        fence = fence_of(store, "s1", "a")
        before = store.last_position()
        for call in (lambda: store.inputs.enqueue(TurnInputDraft("s1", None)),
                     lambda: store.inputs.enqueue(TurnInputDraft("s1", "x", "turn-1")),
                     lambda: store.inputs.enqueue(TurnInputDraft("s1", object())),
                     lambda: store.inputs.claim_active(fence, ""),
                     lambda: store.inputs.claim_active(fence, "t1", "after_work"),
                     lambda: store.inputs.claim_next_turn(fence, max_inputs=-1),
                     lambda: store.inputs.complete(TurnInputCompletion("s1", "c", "t", ())),
                     lambda: store.inputs.cancel_many("s1", "not-a-list")):
            with pytest.raises(eventstore.InvalidArgument):
                call()
        assert store.last_position() == before

    def test_runtime_commit_functions_work_inside_the_callers_transaction(self, backend):
        from eventstore.inputs import (
            check_input_completion, interrupt_events, plan_input_enqueue, vacuum_events,
        )

        store = self.setup_session(backend)
        now = backend.clock()
        with store.transaction():
            plan = plan_input_enqueue(store.db, [draft("a", source_key="k"), draft("b"), draft("a", source_key="k")],
                                      now)
            assert [r.created for r in plan.results] == [True, True, False]
            store.append("session:s1", list(plan.events), now_ms=now)
        claim = store.inputs.claim_active(fence_of(store, "s1", "a"), "t1", max_inputs=1)
        with store.transaction():
            done = check_input_completion(store.db, claim.completion(), now)
            deferred = interrupt_events(store.db, "s1", "t1", now, done.input_ids)
            assert deferred[0].input_ids == (plan.events[1].input_id,)
            store.append("session:s1", [done, *deferred], now_ms=now)
        with store.transaction():
            events = vacuum_events(store.db, "s1", now)
            assert events[0].input_ids == (plan.events[0].input_id,)
            store.append("session:s1", events, now_ms=now)
        assert [i.state for i in store.inputs.list("s1")] == [InputState.DEFERRED_NEXT_TURN]
