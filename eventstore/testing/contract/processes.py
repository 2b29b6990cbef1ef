"""Process registry contract: docs/semantics.md §8, laws 73-86 (one or more tests per law).

Every backend subclasses `ProcessContract` (and `ProcessBehaviourContract` from
`process_behaviour.py`, the validation and edge cases around the laws) and provides
the `backend` fixture. The helpers here build the registrations both modules use.
"""

from __future__ import annotations

import os

import pytest

import eventstore
from eventstore.leases import LocalProcessLiveness, read_process_start, this_process
from eventstore.processes import (
    Abandoned, AbandonEvidence, AbandonWriter, Acquired, AppendEventRequest, Busy, Cancelled,
    CompletionAuthorityRejected, Disposition, EngineInput, EventTypeSpec, ExternalInput, ExternalOwner,
    ExternalRef, ExternalRefConflict, Failure, HandleDescriptor, HostScope, Pointer, Present,
    ProcessAlreadyTerminal, ProcessEvent, ProcessLeaseExpired, ProcessRegistration, ProcessStatus, Provenance,
    PruneFilter, ReconciledAbandon, RegistrationConflict, ReplayKeyConflict, ReplayKeyRequired,
    SessionScope, Success, TerminalSpec, UnknownProcess, WaitState, WakeSpec, WorkflowKey, process_stream,
)
from eventstore.leases import LeaseOwner
from eventstore.testing.helpers import assert_consistent

HOST = Provenance(HostScope())
S1 = SessionScope("s1")
S2 = SessionScope("s2")


def wake_type(name: str = "producer.wake") -> EventTypeSpec:
    """A type that wakes with the payload's /wake_input when that field is present."""
    return EventTypeSpec(name, wake=WakeSpec(Pointer("/wake_input"), when=Present("/wake_input")))


def plain_type(name: str = "producer.line") -> EventTypeSpec:
    """A type with no semantics."""
    return EventTypeSpec(name)


def registration(pid: str, *extra: EventTypeSpec, disposition: Disposition = Disposition.EXTERNALLY_OWNED,
                 wake_target: SessionScope | None = None, provenance: Provenance = HOST) -> ProcessRegistration:
    """An external registration (or, for other dispositions, an engine one with an env ref)."""
    if disposition is Disposition.EXTERNALLY_OWNED:
        return ProcessRegistration(pid, ExternalInput({"n": 1}), disposition, provenance, extra,
                                   wake_target=wake_target)
    return ProcessRegistration(pid, EngineInput("test-engine"), disposition, provenance, extra,
                               env_ref=f"env:{pid}", wake_target=wake_target)


def owner(name: str, incarnation: str = "i1") -> LeaseOwner:
    """An opaque lease owner."""
    return LeaseOwner(name, incarnation)


def terminal_events(store: eventstore.Store, pid: str) -> list[ProcessEvent]:
    """The terminal process events of one process."""
    return [e for e in store.processes.events_after(pid) if e.terminal is not None]


class ProcessContract:
    """The process registry laws, one or more tests per law (73-86), and the event reads
    beside law 79 (`recent_events`, `count_events_through`)."""

    # --- law 73: registration ----------------------------------------------------------------

    def test_law_73_registration_is_idempotent_and_a_different_one_conflicts(self, backend):
        procs = backend.store.processes
        first = procs.register(registration("p"))
        backend.clock.advance(5)
        again = procs.register(registration("p"))
        assert again == first
        assert backend.store.stream_version(process_stream("p")) == 1
        with pytest.raises(RegistrationConflict) as err:
            procs.register(registration("p", wake_type()))
        assert err.value.existing_hash == first.registration_hash
        assert backend.store.stream_version(process_stream("p")) == 1
        assert procs.get("p") == first

    def test_law_73_core_lifecycle_types_are_added_and_hashed(self, backend):
        record = backend.store.processes.register(registration("p", plain_type()))
        names = [t.name for t in record.registration.event_types]
        assert names[0] == "producer.line"
        assert {"process.cancel_requested", "process.waiting", "process.resumed", "process.completed",
                "process.failed", "process.cancelled", "process.abandoned"} <= set(names)
        # Declaring the core types explicitly is the same registration.
        explicit = registration("p", plain_type(), *record.registration.event_types[1:])
        assert backend.store.processes.register(explicit).registration_hash == record.registration_hash

    # --- law 74: external ref ------------------------------------------------------------------

    def test_law_74_external_ref_first_value_sticks(self, backend):
        procs = backend.store.processes
        ref = ExternalRef("worker", "job-123", {"queue": "critical"})
        with pytest.raises(UnknownProcess):
            procs.set_external_ref("missing", ref)
        procs.register(registration("p"))
        assert procs.set_external_ref("p", ref).external_ref == ref
        version = backend.store.stream_version(process_stream("p"))
        assert procs.set_external_ref("p", ExternalRef("worker", "job-123", {"queue": "critical"})).external_ref == ref
        assert backend.store.stream_version(process_stream("p")) == version
        for different in (ExternalRef("worker", "job-999", {"queue": "critical"}),
                          ExternalRef("worker", "job-123", {"queue": "bulk"}), ExternalRef("worker", "job-123")):
            with pytest.raises(ExternalRefConflict):
                procs.set_external_ref("p", different)
        assert backend.store.stream_version(process_stream("p")) == version
        assert procs.get("p").external_ref == ref

    # --- law 75: grants ----------------------------------------------------------------------------

    def test_law_75_grants_and_revokes_show_in_has_grant_and_listings(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        assert not procs.has_grant(S1, "p")
        grant = procs.grant(S1, "p", HandleDescriptor("test", "external ref"))
        assert grant.scope_id == "session:s1" and grant.session_id == "s1"
        assert procs.has_grant(S1, "p")
        assert [e.grant.process_id for e in procs.grants(S1)] == ["p"]
        assert [g.scope_id for g in procs.grants_for_process("p")] == ["session:s1"]
        assert procs.revoke(S1, "p") is True
        assert not procs.has_grant(S1, "p")
        assert procs.grants(S1) == []
        assert procs.revoke(S1, "p") is False
        assert procs.events_after("p") == []  # grants are not process events

    def test_law_75_grants_per_scope_kind_and_live_listing(self, backend):
        procs = backend.store.processes
        frame = SessionScope("s1", "f1")
        host = HostScope("ops")
        for pid in ("done", "live"):
            procs.register(registration(pid))
            for scope in (S1, frame, host):
                procs.grant(scope, pid, HandleDescriptor("tool", pid))
        procs.complete("done", Success(None), ExternalOwner("session:s1"))
        assert [g.scope_id for g in procs.grants_for_process("live")] == ["host:ops", "session:s1",
                                                                          "session:s1/frame:f1"]
        assert [e.grant.process_id for e in procs.grants(frame)] == ["done", "live"]
        assert [e.grant.process_id for e in procs.grants(frame, live_only=True)] == ["live"]
        assert procs.grants(host, live_only=True)[0].record.status is ProcessStatus.RUNNING
        assert not procs.has_grant(S2, "live")

    # --- law 76: replay keys -------------------------------------------------------------------------

    def test_law_76_replay_appends_nothing_and_keeps_sequence_and_wake_id(self, backend):
        procs = backend.store.processes
        target = SessionScope("target-session", "target-frame")
        procs.register(registration("p", wake_type()))
        request = AppendEventRequest("producer.wake", {"line": "build failed", "wake_input": "custom wake"},
                                     "custom-wake:build-failed", target)
        first = procs.append_event("p", request)
        version = backend.store.stream_version(process_stream("p"))
        backend.clock.advance(1000)
        replay = procs.append_event("p", request)
        assert replay.replayed and not first.replayed
        assert replay.event == first.event
        assert replay.wake_delivery.wake_id == first.wake_delivery.wake_id
        assert first.wake_delivery.dedupe_key == "p:1" and first.wake_delivery.target_scope_id == target.scope_id
        assert backend.store.stream_version(process_stream("p")) == version
        assert len(procs.events_after("p")) == 1
        with pytest.raises(ReplayKeyConflict) as err:
            procs.append_event("p", AppendEventRequest("producer.wake", {"wake_input": "changed"},
                                                       "custom-wake:build-failed"))
        assert err.value.sequence == 1
        with pytest.raises(ReplayKeyConflict):
            procs.append_event("p", AppendEventRequest("process.waiting", request.payload, request.replay_key))
        assert backend.store.stream_version(process_stream("p")) == version

    # --- law 77: keys for terminal and cancel events ---------------------------------------------------

    def test_law_77_terminal_events_and_cancel_requests_need_a_replay_key(self, backend):
        procs = backend.store.processes
        custom = EventTypeSpec("job.crashed", terminal=TerminalSpec(ProcessStatus.FAILED, Pointer("/error")))
        procs.register(registration("p", custom))
        for event_type, payload in (("process.completed", {"await_output": {"type": "success", "value": 1}}),
                                    ("process.cancel_requested", {"reason": "user"}),
                                    ("job.crashed", {"error": "boom"})):
            with pytest.raises(ReplayKeyRequired) as err:
                procs.append_event("p", AppendEventRequest(event_type, payload))
            assert err.value.field == "replay_key"
        assert procs.events_after("p") == [] and procs.get("p").status is ProcessStatus.RUNNING
        procs.append_event("p", AppendEventRequest("process.cancel_requested", {"reason": "user"}, "cancel-1"))
        crashed = procs.append_event("p", AppendEventRequest("job.crashed", {"error": "boom"}, "crash-1"))
        assert crashed.event.terminal.status is ProcessStatus.FAILED
        assert procs.get("p").await_output == Failure("execution", "process_failed", "boom", "boom")

    # --- law 78: wakes --------------------------------------------------------------------------------

    def test_law_78_acked_wakes_hidden_false_when_suppresses_no_target_no_delivery(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", wake_type(), plain_type()))
        woke = procs.append_event("p", AppendEventRequest("producer.wake", {"wake_input": "deploy failed"},
                                                          wake_target=S1))
        assert woke.wake_delivery.input == "deploy failed"
        quiet = procs.append_event("p", AppendEventRequest("producer.wake", {"other": 1}, wake_target=S1))
        assert quiet.event.wake is None and quiet.wake_delivery is None
        untargeted = procs.append_event("p", AppendEventRequest("producer.wake", {"wake_input": "nobody"}))
        assert untargeted.event.wake.input == "nobody" and untargeted.wake_delivery is None
        assert [e.sequence for e in procs.wake_events_after("p")] == [1, 3]
        assert procs.ack_wake("p", 1) is True
        assert procs.ack_wake("p", 1) is False
        assert [e.sequence for e in procs.wake_events_after("p")] == [3]
        assert [e.sequence for e in procs.events_after("p")] == [1, 2, 3]

    # --- law 79: events_after ---------------------------------------------------------------------------

    def test_law_79_events_after_never_returns_the_cursor_or_older(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", plain_type(), wake_type()))
        for i in range(3):
            procs.append_event("p", AppendEventRequest("producer.line", {"i": i}))
        procs.grant(S1, "p")  # other events on the stream are not process events
        assert [e.sequence for e in procs.events_after("p", 0)] == [1, 2, 3]
        assert [(e.sequence, e.payload) for e in procs.events_after("p", 1)] == [(2, {"i": 1}), (3, {"i": 2})]
        assert procs.events_after("p", 3) == [] and procs.events_after("p", 99) == []
        assert [e.sequence for e in procs.events_after("p", 1, limit=1)] == [2]
        with pytest.raises(UnknownProcess):
            procs.events_after("missing")

    def test_recent_events_are_the_newest_limit_oldest_first(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", plain_type()))
        for i in range(5):
            procs.append_event("p", AppendEventRequest("producer.line", {"i": i}))
        procs.grant(S1, "p")  # not a process event
        recent = procs.recent_events("p", 2)
        assert [(e.sequence, e.payload) for e in recent] == [(4, {"i": 3}), (5, {"i": 4})]
        assert recent == procs.events_after("p", 3)
        assert [e.sequence for e in procs.recent_events("p", 50)] == [1, 2, 3, 4, 5]
        assert procs.recent_events("p", 0) == []
        with pytest.raises(UnknownProcess):
            procs.recent_events("missing", 1)

    def test_count_events_through_counts_sequences_up_to_the_given_one(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", plain_type(), wake_type()))
        for event_type in ("producer.line", "producer.wake", "producer.line", "producer.line"):
            procs.append_event("p", AppendEventRequest(event_type, {}))
        assert [procs.count_events_through("p", s) for s in range(6)] == [0, 1, 2, 3, 4, 4]
        assert [procs.count_events_through("p", s, "producer.line") for s in range(6)] == [0, 1, 1, 2, 3, 3]
        assert procs.count_events_through("p", 4, "producer.wake") == 1
        assert procs.count_events_through("p", 4, "never.declared") == 0
        with pytest.raises(UnknownProcess):
            procs.count_events_through("missing", 1)

    @pytest.mark.parametrize("call, name", [
        (lambda p: p.recent_events("p", -1), "limit"), (lambda p: p.recent_events("p", "3"), "limit"),
        (lambda p: p.recent_events("p", True), "limit"), (lambda p: p.recent_events("p", None), "limit"),
        (lambda p: p.count_events_through("p", -1), "sequence"), (lambda p: p.count_events_through("p", 1.5), "sequence"),
        (lambda p: p.count_events_through("p", 1, ""), "event_type"),
        (lambda p: p.count_events_through("p", 1, 7), "event_type"),
    ])
    def test_event_reads_refuse_bad_arguments_naming_them(self, backend, call, name):
        procs = backend.store.processes
        procs.register(registration("p"))
        with pytest.raises(eventstore.InvalidArgument, match=name):
            call(procs)

    # --- law 80: write-once fields, terminal rejections ----------------------------------------------------

    def test_law_80_first_start_and_abandon_are_write_once_and_terminal_rejects(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        first = procs.record_first_started("p", "worker-a").first_started
        backend.clock.advance(10)
        assert procs.record_first_started("p", "worker-b").first_started == first
        req = procs.request_abandon("p", "ops", "stuck").abandon_request
        assert procs.request_abandon("p", "someone-else", "other").abandon_request == req
        procs.complete("p", Success("done"), ExternalOwner("session:owner"))
        version = backend.store.stream_version(process_stream("p"))
        with pytest.raises(ProcessAlreadyTerminal):
            procs.request_abandon("p", "ops")
        with pytest.raises(ProcessAlreadyTerminal):
            procs.complete("p", Failure("tool", "late", "too late"), ExternalOwner("session:owner"))
        with pytest.raises(ProcessAlreadyTerminal):
            procs.append_event("p", AppendEventRequest("process.cancelled", {"await_output": "x"}, "late-cancel"))
        assert backend.store.stream_version(process_stream("p")) == version
        assert len(terminal_events(backend.store, "p")) == 1

    # --- law 81: completion authority -------------------------------------------------------------------------

    def test_law_81_authority_is_checked_against_the_disposition(self, backend):
        procs = backend.store.processes
        abandoned = Abandoned(AbandonEvidence(AbandonWriter.RECONCILED_REQUEST, None, 7))
        cases = [
            (Disposition.EXTERNALLY_OWNED, Success(1), ExternalOwner("session:owner"), True),
            (Disposition.EXTERNALLY_OWNED, Success(1), WorkflowKey("wf"), False),
            (Disposition.EXTERNALLY_OWNED, Success(1), ReconciledAbandon(), False),
            (Disposition.EXTERNALLY_OWNED, abandoned, ReconciledAbandon(), True),
            (Disposition.OWNER_BOUND, Success(1), WorkflowKey("wf"), True),
            (Disposition.OWNER_BOUND, Success(1), ExternalOwner("session:owner"), False),
            (Disposition.OWNER_BOUND, abandoned, ReconciledAbandon(), False),
            (Disposition.RERUNNABLE, Cancelled("stop"), WorkflowKey("wf"), True),
            (Disposition.RERUNNABLE, Success(1), ExternalOwner("session:owner"), False),
        ]
        for i, (disposition, output, authority, allowed) in enumerate(cases):
            pid = f"auth-{i}"
            procs.register(registration(pid, disposition=disposition))
            version = backend.store.stream_version(process_stream(pid))
            if allowed:
                record = procs.complete(pid, output, authority)
                assert record.await_output == output and record.is_terminal
                payload = terminal_events(backend.store, pid)[0].payload
                assert payload["completion_authority"]["authority"] == authority.KIND
            else:
                with pytest.raises(CompletionAuthorityRejected):
                    procs.complete(pid, output, authority)
                assert backend.store.stream_version(process_stream(pid)) == version
                assert not procs.get(pid).is_terminal

    def test_law_81_authority_reads_the_live_disposition_after_re_registration(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        procs.complete("p", Success("first"), ExternalOwner("session:owner"))
        backend.clock.advance(1)
        assert procs.prune(backend.clock()).pruned_processes == ("p",)
        procs.register(registration("p", disposition=Disposition.OWNER_BOUND))
        with pytest.raises(CompletionAuthorityRejected):
            procs.complete("p", Success("first"), ExternalOwner("session:owner"))
        assert not procs.get("p").is_terminal
        assert procs.complete("p", Success("ran"), WorkflowKey("p")).await_output == Success("ran")
        assert_consistent(backend.store)

    # --- law 82: wait ---------------------------------------------------------------------------------------

    def test_law_82_terminal_transition_clears_the_wait(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        wait = WaitState("signal", {"name": "approve"})
        waiting = procs.set_wait("p", wait)
        assert waiting.wait == WaitState("signal", {"name": "approve"}, backend.clock())
        assert [r.process_id for r in procs.list(waiting=True)] == ["p"]
        assert procs.clear_wait("p").wait is None
        assert procs.list(waiting=True) == []
        procs.set_wait("p", wait)
        done = procs.complete("p", Success({"done": True}), ExternalOwner("o"))
        assert done.wait is None
        with pytest.raises(ProcessAlreadyTerminal):
            procs.set_wait("p", WaitState("signal", {"name": "again"}))

    # --- law 83: change feed --------------------------------------------------------------------------------------

    def test_law_83_change_feed_is_ordered_resumable_idempotent_and_shows_terminals(self, backend):
        procs = backend.store.processes
        for pid in ("a", "b", "c"):
            procs.register(registration(pid, plain_type()))
        procs.append_event("a", AppendEventRequest("producer.line", {"x": 1}))
        procs.complete("b", Success(2), ExternalOwner("o"))
        procs.grant(S1, "c")  # grants do not change the record
        seen, cursor = [], 0
        while True:
            page = procs.changes_since(cursor, limit=2)
            assert procs.changes_since(cursor, limit=2) == page  # a reread is idempotent
            if not page.records:
                assert page.next_cursor == cursor
                break
            assert page.next_cursor > cursor
            assert [r.change_seq for r in page.records] == sorted(r.change_seq for r in page.records)
            seen.extend(page.records)
            cursor = page.next_cursor
        assert [r.process_id for r in seen] == ["c", "a", "b"]
        assert seen[-1].status is ProcessStatus.COMPLETED
        assert procs.changes_since(cursor, limit=0) == procs.changes_since(cursor) == type(page)((), cursor)
        procs.complete("a", Failure("tool", "x", "boom"), ExternalOwner("o"))
        later = procs.changes_since(cursor)
        assert [(r.process_id, r.status) for r in later.records] == [("a", ProcessStatus.FAILED)]

    # --- law 84: process leases -------------------------------------------------------------------------------------

    def test_law_84_busy_carries_the_holder_and_reentry_is_stable(self, backend):
        procs = backend.store.processes
        with pytest.raises(UnknownProcess):
            procs.claim_lease("missing", owner("a"), 60_000)
        procs.register(registration("p"))
        first = procs.claim_lease("p", owner("a"), 60_000)
        assert isinstance(first, Acquired) and first.lease.fencing_token == 1
        busy = procs.claim_lease("p", owner("b"), 60_000)
        assert busy == Busy(first.lease)
        assert isinstance(procs.claim_lease("p", owner("a", "i2"), 60_000), Busy)  # new incarnation: another owner
        backend.clock.advance(1000)
        again = procs.claim_lease("p", owner("a"), 60_000)
        assert again.lease.lease_token == first.lease.lease_token
        assert again.lease.fencing_token == first.lease.fencing_token
        assert again.lease.expires_at_ms == backend.clock() + 60_000
        assert procs.get_lease("p") == again.lease

    def test_law_84_superseded_lease_cannot_renew(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        old = procs.claim_lease("p", owner("a"), 0).lease  # born expired
        new = procs.claim_lease("p", owner("b"), 60_000).lease
        assert new.fencing_token == old.fencing_token + 1
        with pytest.raises(ProcessLeaseExpired, match="missing or expired"):
            procs.renew_lease(old, 60_000)
        assert procs.get_lease("p") == new

    def test_law_84_renewal_outlives_the_original_ttl_and_expired_cannot_renew(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        lease = procs.claim_lease("p", owner("a"), 20).lease
        renewed = procs.renew_lease(lease, 60_000)
        backend.clock.advance(30)
        renewed = procs.renew_lease(renewed, 60_000)
        assert renewed.expires_at_ms == backend.clock() + 60_000
        backend.clock.advance(60_000)
        with pytest.raises(ProcessLeaseExpired):
            procs.renew_lease(renewed, 60_000)

    def test_law_84_reclaim_bumps_the_fence_and_release_keeps_it(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        first = procs.claim_lease("p", owner("a"), 60_000).lease
        assert procs.release_lease(first) is True
        assert procs.get_lease("p") is None and procs.lease_state("p").fencing_token == 1
        second = procs.claim_lease("p", owner("b"), 60_000).lease
        assert second.fencing_token > first.fencing_token

    def test_law_84_stale_or_expired_leases_cannot_complete_release_or_disturb(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        old = procs.claim_lease("p", owner("a"), 0).lease
        current = procs.claim_lease("p", owner("b"), 60_000).lease
        version = backend.store.stream_version(process_stream("p"))
        assert procs.release_lease(old) is False
        with pytest.raises(ProcessLeaseExpired):
            procs.complete_with_lease(old, Success("stale"))
        assert backend.store.stream_version(process_stream("p")) == version
        assert isinstance(procs.claim_lease("p", owner("c"), 60_000), Busy)
        assert procs.renew_lease(current, 60_000).lease_token == current.lease_token
        backend.clock.advance(120_000)
        with pytest.raises(ProcessLeaseExpired):
            procs.complete_with_lease(current, Success("too late"))
        assert not procs.get("p").is_terminal

    def test_law_84_reclaim_takes_only_a_provably_dead_holder(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        me = this_process("claimant")
        start = read_process_start(os.getpid())
        alive = LeaseOwner("alive", "i", me.liveness)
        dead = LeaseOwner("dead", "i", LocalProcessLiveness(me.liveness.host_id, me.liveness.boot_id,
                                                            os.getpid(), start + 1))  # pid reused: proven dead
        held = procs.claim_lease("p", alive, 60_000).lease
        assert isinstance(procs.reclaim_lease("p", me, held, 60_000), Busy)  # alive holder
        procs.release_lease(held)
        held = procs.claim_lease("p", dead, 60_000).lease
        assert isinstance(procs.claim_lease("p", me, 60_000), Busy)  # a plain claim never takes over
        # The observation is the owner (id and incarnation) and the fencing token: a view
        # with another fence, or another incarnation, is stale.
        stale_view = held.__class__(held.process_id, held.owner, held.lease_token, held.fencing_token - 1,
                                    held.claimed_at_ms, held.expires_at_ms)
        assert isinstance(procs.reclaim_lease("p", me, stale_view, 60_000), Busy)
        other_incarnation = held.__class__(held.process_id, LeaseOwner(held.owner.owner_id, "other-inc"),
                                           held.lease_token, held.fencing_token, held.claimed_at_ms,
                                           held.expires_at_ms)
        assert isinstance(procs.reclaim_lease("p", me, other_incarnation, 60_000), Busy)
        taken = procs.reclaim_lease("p", me, held, 60_000)
        assert isinstance(taken, Acquired) and taken.lease.fencing_token == held.fencing_token + 1
        with pytest.raises(ProcessLeaseExpired):
            procs.renew_lease(held, 1000)
        assert_consistent(backend.store)

    # --- law 85: leased completion -----------------------------------------------------------------------------------

    def test_law_85_leased_completion_is_atomic_and_idempotent(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", disposition=Disposition.RERUNNABLE))
        lease = procs.claim_lease("p", owner("a"), 60_000).lease
        before = backend.store.last_position()
        done = procs.complete_with_lease(lease, Success({"answer": 42}))
        tail = list(backend.store.read_all(before + 1))
        assert [e.type for e in tail] == ["process.event_appended", "process.lease_released"]
        assert done.status is ProcessStatus.COMPLETED and procs.get_lease("p") is None
        assert procs.complete_with_lease(lease, Success({"answer": 42})) == done  # replay: no lease needed
        assert backend.store.last_position() == tail[-1].position
        with pytest.raises(ReplayKeyConflict):
            procs.complete_with_lease(lease, Success({"answer": 43}))
        with pytest.raises((ProcessAlreadyTerminal, ProcessLeaseExpired)):
            procs.complete_with_lease(lease, Failure("tool", "late", "late"))
        assert len(terminal_events(backend.store, "p")) == 1
        assert procs.wait_for("p", timeout_s=0) == Success({"answer": 42})

    # --- law 86: prune --------------------------------------------------------------------------------------------------

    def test_law_86_prune_takes_only_old_terminal_rows_and_they_read_as_unknown(self, backend):
        store, procs = backend.store, backend.store.processes
        for pid in ("old-done", "old-running", "new-done"):
            procs.register(registration(pid, wake_type(), wake_target=S1))
            procs.grant(S1, pid)
            procs.append_event(pid, AppendEventRequest("producer.wake", {"wake_input": pid}))
            procs.ack_wake(pid, 1)
        procs.claim_lease("old-done", owner("a"), 60_000)
        procs.complete("old-done", Success(1), ExternalOwner("o"))
        cutoff = backend.clock.advance(100)
        procs.complete("new-done", Success(2), ExternalOwner("o"))
        at_cutoff = procs.prune(procs.get("new-done").updated_at_ms, dry_run=True)
        assert at_cutoff.pruned_processes == ("old-done",)  # updated_at < cutoff is strict
        report = procs.prune(cutoff)
        assert report.pruned_processes == ("old-done",) and report.pruned_events == 2
        assert report.purged_payloads == store.stream_version(process_stream("old-done"))
        assert procs.get("old-done") is None
        for read in (procs.events_after, procs.lease_state, procs.grants_for_process, procs.require):
            with pytest.raises(UnknownProcess):
                read("old-done")
        assert not procs.has_grant(S1, "old-done")
        assert all(e.data is None for e in store.read_stream(process_stream("old-done")))
        assert procs.get("old-running").status is ProcessStatus.RUNNING
        assert procs.prune(cutoff).pruned_processes == ()  # idempotent
        assert store.verify().ok
        assert_consistent(store)
        store = backend.reopen()
        assert store.processes.get("old-done") is None and store.processes.get("new-done") is not None

    def test_law_86_prune_removes_the_segment_handovers_with_the_process(self, backend):
        store, procs = backend.store, backend.store.processes
        for pid in ("done", "running"):
            procs.register(registration(pid))
            procs.put_handover(pid, 0, {"state": b"s0"})
            procs.put_handover(pid, 1, {"state": b"s1"})
        procs.complete("done", Success(1), ExternalOwner("o"))
        assert procs.prune(backend.clock.advance(1)).pruned_processes == ("done",)
        assert [h.segment_ordinal for h in procs.handovers("running")] == [0, 1]
        procs.register(registration("done"))  # registered again: no handover comes back
        assert procs.handovers("done") == [] and procs.latest_handover("done") is None
        assert store.verify().ok
        assert_consistent(store)
        with store.at() as view:  # a replay skips the purged puts: it agrees
            assert view.processes.handovers("done") == []

    def test_law_71_pruning_a_process_removes_its_two_session_stores(self, backend):
        store, procs = backend.store, backend.store.processes
        procs.register(registration("p71"))
        owned = ("process-env:p71", "process-session-turn:p71")
        for sid in owned:
            store.sessions.create(sid)
        store.sessions.create("bystander")
        procs.complete("p71", Success(1), ExternalOwner("o"))
        cutoff = backend.clock.advance(10)
        assert procs.prune(cutoff).pruned_processes == ("p71",)
        for sid in owned:
            assert store.sessions.get(sid).status == "purged"
            assert all(e.data is None for e in store.read_stream(f"session:{sid}"))
        assert store.sessions.get("bystander").status == "active"
        assert store.verify().ok
        assert_consistent(store)

    def test_law_86_prune_respects_filter_and_watermark(self, backend):
        procs = backend.store.processes
        procs.register(registration("ext-1"))
        procs.register(registration("eng-1", disposition=Disposition.RERUNNABLE))
        procs.register(registration("ext-2"))
        procs.complete("ext-1", Success(1), ExternalOwner("o"))
        procs.complete("eng-1", Cancelled("stop"), WorkflowKey("wf"))
        watermark = procs.get("eng-1").change_seq
        procs.complete("ext-2", Failure("tool", "e", "boom"), ExternalOwner("o"))
        cutoff = backend.clock.advance(1)
        only_cancelled = PruneFilter(statuses=(ProcessStatus.CANCELLED,))
        assert procs.prune(cutoff, filter=only_cancelled).pruned_processes == ("eng-1",)
        external = PruneFilter(input_kind="external", owner_scope_id="host")
        assert procs.prune(cutoff, filter=external, up_to_change_seq=watermark).pruned_processes == ("ext-1",)
        assert procs.prune(cutoff).pruned_processes == ("ext-2",)
        assert procs.list() == []
        assert_consistent(backend.store)
