"""Process registry behaviour around the laws: validation with typed errors naming the
field, wake ids and deliveries, transfers, session deletion, re-registration after a
prune, await, time travel, several handles, and enqueueing wakes into the session queue."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.processes import (
    AppendEventRequest, AwaitTimeout, Cancelled, ConstDedupe, Disposition, EventTypeSpec, ExternalInput,
    ExternalOwner, Failure, HandleDescriptor, HandleNotGranted, HostScope, InvalidProcessEvent,
    InvalidRegistration, PayloadSchema, Pointer, ProcessRegistration, ProcessStatus, Provenance,
    ReplayKeyConflict, SelectorDedupe, SessionScope, Success, Template, TerminalSpec, ToolCallInput,
    UnknownProcess, WakeSpec, process_stream,
)
from eventstore.processes import wake_id
from eventstore.testing.contract.processes import HOST, S1, S2, owner, plain_type, registration, wake_type
from eventstore.testing.helpers import assert_consistent


class ProcessBehaviourContract:
    """Validation and edge cases of the process registry, for every backend."""

    def test_registration_survives_reopen(self, backend):
        record = backend.store.processes.register(registration("p", wake_type(), wake_target=S1))
        store = backend.reopen()
        assert store.processes.get("p") == record

    def test_transfer_moves_grants_all_or_nothing(self, backend):
        procs = backend.store.processes
        for pid in ("a", "b"):
            procs.register(registration(pid))
        procs.grant(S1, "a", HandleDescriptor("tool", "demo"))
        before = backend.store.last_position()
        with pytest.raises(HandleNotGranted):
            procs.transfer(S1, S2, ["a", "b"])
        assert backend.store.last_position() == before
        assert procs.has_grant(S1, "a")
        assert procs.transfer(S1, S2, ["a"]) == 1
        assert not procs.has_grant(S1, "a")
        assert procs.grants(S2)[0].grant.descriptor == HandleDescriptor("tool", "demo")
        assert procs.events_after("a") == []

    def test_delete_session_process_state_revokes_reports_and_keeps_acks(self, backend):
        procs = backend.store.processes
        deleted, remaining = SessionScope("deleted"), SessionScope("remaining")
        for pid in ("sole", "shared", "terminal"):
            procs.register(registration(pid, wake_type(), wake_target=deleted if pid == "sole" else None))
            procs.grant(deleted, pid)
        procs.grant(SessionScope("deleted", "frame-1"), "shared")
        procs.grant(remaining, "shared")
        procs.complete("terminal", Success(None), ExternalOwner("x"))
        shared_wake = procs.append_event("shared", AppendEventRequest("producer.wake", {"wake_input": "w"},
                                                                      wake_target=remaining))
        procs.ack_wake("shared", shared_wake.event.sequence)
        report = procs.delete_session_process_state("deleted")
        assert report.revoked_grants == 4
        assert report.orphaned == ("sole",)
        assert report.preserved == ("shared",)
        assert report.cleared_wake_targets == ("sole",)
        assert procs.get("sole").wake_target is None
        assert procs.grants(deleted) == [] and len(procs.grants(remaining)) == 1
        assert procs.wake_events_after("shared") == []
        # A wake with no target left is stored without a delivery.
        later = procs.append_event("sole", AppendEventRequest("producer.wake", {"wake_input": "late"}))
        assert later.event.wake is not None and later.wake_delivery is None
        assert_consistent(backend.store)

    def test_wake_ids_are_deterministic_per_scope_and_dedupe_key(self, backend):
        procs = backend.store.processes
        spec = EventTypeSpec("job.note", wake=WakeSpec(Template("{who}: {what}", {"who": Pointer("/who"),
                                                                                 "what": Pointer("/what")}),
                                                       dedupe_key=SelectorDedupe(Pointer("/topic"))))
        once = EventTypeSpec("job.ready", wake=WakeSpec(Pointer(""), dedupe_key=ConstDedupe("ready")))
        procs.register(registration("p", spec, once, wake_target=S1))
        a = procs.append_event("p", AppendEventRequest("job.note", {"who": "ci", "what": "red", "topic": "build"}))
        b = procs.append_event("p", AppendEventRequest("job.note", {"who": "ci", "what": "green", "topic": "build"}))
        c = procs.append_event("p", AppendEventRequest("job.ready", {"x": [1, 2]}))
        assert a.wake_delivery.input == "ci: red" and a.wake_delivery.dedupe_key == "build"
        assert a.wake_delivery.wake_id == b.wake_delivery.wake_id == wake_id("session:s1", "build")
        assert c.wake_delivery.input == '{"x":[1,2]}' and c.wake_delivery.dedupe_key == "ready"
        assert a.wake_delivery.queue_source_key == "process:p:event:1:wake"

    def test_append_and_deliver_rolls_back_when_delivery_fails(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", wake_type(), wake_target=S1))
        delivered = []
        ok = procs.append_event_and_deliver("p", AppendEventRequest("producer.wake", {"wake_input": "a"}),
                                            delivered.append)
        assert delivered == [ok.wake_delivery]

        def broken(delivery):
            raise RuntimeError("queue is down")

        with pytest.raises(RuntimeError):
            procs.append_event_and_deliver("p", AppendEventRequest("producer.wake", {"wake_input": "b"}), broken)
        assert [e.sequence for e in procs.events_after("p")] == [1]
        assert_consistent(backend.store)

    def test_complete_replays_exactly_and_conflicts_otherwise(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        done = procs.complete("p", Success({"v": 1}), ExternalOwner("o"))
        version = backend.store.stream_version(process_stream("p"))
        assert procs.complete("p", Success({"v": 1}), ExternalOwner("o")) == done
        with pytest.raises(ReplayKeyConflict):
            procs.complete("p", Success({"v": 2}), ExternalOwner("o"))
        assert backend.store.stream_version(process_stream("p")) == version

    def test_pruned_id_can_be_registered_again_and_starts_fresh(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", plain_type()))
        procs.append_event("p", AppendEventRequest("producer.line", {"n": 1}, "k"))
        lease = procs.claim_lease("p", owner("a"), 60_000).lease
        procs.complete_with_lease(lease, Success(None))
        procs.prune(backend.clock.advance(1))
        record = procs.register(registration("p", plain_type()))
        assert record.last_sequence == 0 and not record.is_terminal
        again = procs.append_event("p", AppendEventRequest("producer.line", {"n": 2}, "k"))
        assert again.event.sequence == 1 and not again.replayed
        assert procs.lease_state("p").fencing_token == 0
        assert_consistent(backend.store)

    @pytest.mark.parametrize("change, field", [
        (dict(id=""), "id"),
        (dict(id="a#b"), "id"),
        (dict(disposition=None), "disposition"),
        (dict(input="tool"), "input"),
        (dict(env_ref=None), "env_ref"),
        (dict(input=ExternalInput(), env_ref="env"), "env_ref"),
        (dict(input=ToolCallInput("", "c")), "input.tool"),
        (dict(input=ToolCallInput("t", "c", {1: "x"})), "input.arguments"),
        (dict(event_types=(plain_type("x"), plain_type("x"))), "event_types[1].name"),
        (dict(event_types=(EventTypeSpec(""),)), "event_types[0].name"),
        (dict(event_types=(EventTypeSpec("x", terminal=TerminalSpec(ProcessStatus.FAILED)),)),
         "event_types[0].terminal.await_output"),
        (dict(event_types=(EventTypeSpec("x", wake=WakeSpec(Pointer("no-slash"))),)), "event_types[0].wake.input.path"),
        (dict(event_types=(EventTypeSpec("process.completed"),)), "event_types[0].terminal"),
        (dict(event_types=(EventTypeSpec("x", PayloadSchema("text")),)), "event_types[0].payload_schema.type"),
        (dict(provenance=Provenance(SessionScope(""))), "provenance.originator.session_id"),
        (dict(wake_target=HostScope()), "wake_target"),
        (dict(identity=float("nan")), "identity"),
    ])
    def test_invalid_registration_names_the_field_and_writes_nothing(self, backend, change, field):
        base = dict(id="p", input=ToolCallInput("run", "c1"), disposition=Disposition.RERUNNABLE, provenance=HOST,
                    env_ref="env:1")
        base.update(change)
        with pytest.raises(InvalidRegistration) as err:
            backend.store.processes.register(ProcessRegistration(**base))
        assert err.value.field == field and field in str(err.value)
        assert backend.store.last_position() == 0

    def test_payloads_are_validated_against_the_declared_schema(self, backend):
        procs = backend.store.processes
        schema = PayloadSchema("object", ("line",), {"line": PayloadSchema("string"),
                                                     "tags": PayloadSchema("array", items=PayloadSchema("string"))})
        procs.register(registration("p", EventTypeSpec("producer.line", schema)))
        for payload, field in (({"wake_input": "x"}, "/line"), ({"line": 3}, "/line"), ("text", "/"),
                               ({"line": "ok", "tags": ["a", 2]}, "/tags/1")):
            with pytest.raises(InvalidProcessEvent) as err:
                procs.append_event("p", AppendEventRequest("producer.line", payload))
            assert err.value.field == field
        with pytest.raises(InvalidProcessEvent, match="not declared"):
            procs.append_event("p", AppendEventRequest("producer.other", {}))
        with pytest.raises(InvalidProcessEvent, match="not a JSON value"):
            procs.append_event("p", AppendEventRequest("producer.line", {"line": b"bytes"}))
        assert procs.events_after("p") == []
        assert procs.append_event("p", AppendEventRequest("producer.line", {"line": "ok", "tags": ["a"]})).event.sequence == 1

    def test_malformed_outputs_and_authorities_are_refused_before_writing(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        before = backend.store.last_position()
        for output in (Failure("tool", 5, "bad code"), Cancelled(None), Success(object()), "done"):
            with pytest.raises(eventstore.InvalidArgument):
                procs.complete("p", output, ExternalOwner("o"))
        with pytest.raises(eventstore.InvalidArgument):
            procs.complete("p", Success(1), "owner")
        assert backend.store.last_position() == before and not procs.get("p").is_terminal

    def test_wait_for_returns_output_or_times_out(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        assert procs.await_output("p") is None
        with pytest.raises(AwaitTimeout):
            procs.wait_for("p", timeout_s=0.05, poll_interval_s=0.01)
        procs.complete("p", Cancelled("user stopped it"), ExternalOwner("o"))
        assert procs.wait_for("p", timeout_s=1) == Cancelled("user stopped it")
        with pytest.raises(UnknownProcess):
            procs.wait_for("missing", timeout_s=0)

    def test_time_travel_view_reads_the_past_and_refuses_commands(self, backend):
        store, procs = backend.store, backend.store.processes
        procs.register(registration("p", plain_type()))
        procs.append_event("p", AppendEventRequest("producer.line", {"n": 1}))
        position = store.last_position()
        procs.complete("p", Success(1), ExternalOwner("o"))
        with store.at(position) as view:
            assert view.processes.get("p").status is ProcessStatus.RUNNING
            assert [e.payload for e in view.processes.events_after("p")] == [{"n": 1}]
            with pytest.raises(eventstore.ReadOnlyView):
                view.processes.append_event("p", AppendEventRequest("producer.line", {"n": 2}))
        assert procs.get("p").status is ProcessStatus.COMPLETED

    def test_two_handles_share_one_gap_free_sequence(self, backend):
        procs = backend.store.processes
        other = backend.open().processes
        procs.register(registration("p", plain_type()))
        for i in range(6):
            (procs if i % 2 else other).append_event("p", AppendEventRequest("producer.line", {"i": i}))
        assert [e.sequence for e in procs.events_after("p")] == [1, 2, 3, 4, 5, 6]
        assert [e.payload["i"] for e in other.events_after("p")] == list(range(6))

    def test_append_event_and_enqueue_puts_one_wake_batch_in_the_target_queue(self, backend):
        store, procs = backend.store, backend.store.processes
        store.sessions.create("s1")
        procs.register(registration("p", wake_type(), wake_target=S1))
        request = AppendEventRequest("producer.wake", {"wake_input": "build failed"}, "wake-1")
        first = procs.append_event_and_enqueue("p", request)
        again = procs.append_event_and_enqueue("p", request)  # a replay: same event, same batch
        assert first.enqueued.created and not again.enqueued.created and again.append.replayed
        assert again.enqueued.batch.batch_id == first.enqueued.batch.batch_id
        [batch] = store.queue.list("s1")
        assert batch.source_key == first.append.wake_delivery.queue_source_key == "process:p:event:1:wake"
        assert batch.items[0].payload.wake_id == first.append.wake_delivery.wake_id
        quiet = procs.append_event_and_enqueue("p", AppendEventRequest("producer.wake", {"other": 1}))
        assert quiet.enqueued is None and len(store.queue.list("s1")) == 1
        procs.register(registration("q", wake_type(), wake_target=SessionScope("never-created")))
        with pytest.raises(eventstore.StoreError):
            procs.append_event_and_enqueue("q", AppendEventRequest("producer.wake", {"wake_input": "x"}))
        assert procs.events_after("q") == []  # the failed enqueue took the event with it
        assert_consistent(store)
