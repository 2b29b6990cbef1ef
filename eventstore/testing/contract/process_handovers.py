"""Segment handovers (docs/semantics.md §8 "Segment handovers"; no numbered law of its own except
law 86, whose prune test is in `processes.py`): write-once puts per ordinal, the
predecessor rule, `latest`, typed errors on unknown and terminal processes, and the
guarantees every store read has (reopen, rebuild, time travel)."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.processes import (
    AppendEventRequest, ExternalOwner, HandoverConflict, ProcessAlreadyTerminal, Success, UnknownProcess,
    handover_hash, process_stream,
)
from eventstore.testing.contract.processes import plain_type, registration
from eventstore.testing.helpers import assert_consistent


def ordinals(procs, pid: str) -> list[int]:
    """The retained handover ordinals of one process."""
    return [h.segment_ordinal for h in procs.handovers(pid)]


class ProcessHandoverContract:
    """Segment handovers, for every backend."""

    def test_an_identical_put_is_a_no_op_and_a_conflicting_one_is_an_error(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        first = procs.put_handover("p", 1, {"engine_state": b"\x00\x01", "program": "abc"})
        assert not first.replayed and first.handover.segment_ordinal == 1
        version = backend.store.stream_version(process_stream("p"))
        backend.clock.advance(50)
        again = procs.put_handover("p", 1, {"program": "abc", "engine_state": b"\x00\x01"})  # map order ignored
        assert again.replayed and again.handover == first.handover and again.dropped_ordinals == ()
        with pytest.raises(HandoverConflict) as err:
            procs.put_handover("p", 1, {"engine_state": b"\x00\x02", "program": "abc"})
        assert err.value.segment_ordinal == 1 and err.value.existing_hash == first.handover.payload_hash
        assert backend.store.stream_version(process_stream("p")) == version
        assert procs.handover("p", 1).payload == {"engine_state": b"\x00\x01", "program": "abc"}

    def test_a_put_drops_the_ordinals_below_its_predecessor(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        for n in range(3):
            procs.put_handover("p", n, {"segment": n})
        assert ordinals(procs, "p") == [1, 2]
        jump = procs.put_handover("p", 7, {"segment": 7})
        assert jump.dropped_ordinals == (1, 2) and ordinals(procs, "p") == [7]
        assert procs.handover("p", 1) is None
        procs.put_handover("p", 8, {"segment": 8})
        assert ordinals(procs, "p") == [7, 8]
        assert_consistent(backend.store)

    def test_latest_returns_the_highest_retained_ordinal(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        assert procs.latest_handover("p") is None and procs.handovers("p") == []
        procs.put_handover("p", 4, "four")
        procs.put_handover("p", 5, "five")
        assert procs.latest_handover("p").payload == "five"
        late = procs.put_handover("p", 3, "three")  # an older segment's put, as the reference stores it
        assert late.dropped_ordinals == () and ordinals(procs, "p") == [3, 4, 5]
        latest = procs.latest_handover("p")
        assert (latest.segment_ordinal, latest.payload) == (5, "five")
        assert latest.payload_hash == handover_hash("five")

    def test_handovers_of_an_unknown_or_pruned_process_are_errors(self, backend):
        procs = backend.store.processes
        before = backend.store.last_position()
        for call in (lambda: procs.put_handover("missing", 0, None), lambda: procs.latest_handover("missing"),
                     lambda: procs.handover("missing", 0), lambda: procs.handovers("missing"),
                     lambda: procs.delete_handovers("missing")):
            with pytest.raises(UnknownProcess):
                call()
        assert backend.store.last_position() == before
        procs.register(registration("p"))
        procs.put_handover("p", 0, b"state")
        procs.complete("p", Success(1), ExternalOwner("o"))
        assert procs.prune(backend.clock.advance(1)).pruned_processes == ("p",)
        with pytest.raises(UnknownProcess):
            procs.latest_handover("p")
        with pytest.raises(UnknownProcess):
            procs.put_handover("p", 0, b"state")

    def test_a_terminal_process_takes_no_new_handover_but_a_repeat_stays_a_no_op(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        stored = procs.put_handover("p", 2, b"state")
        procs.complete("p", Success(1), ExternalOwner("o"))
        version = backend.store.stream_version(process_stream("p"))
        assert procs.put_handover("p", 2, b"state").replayed
        with pytest.raises(ProcessAlreadyTerminal):
            procs.put_handover("p", 3, b"next")
        with pytest.raises(HandoverConflict):
            procs.put_handover("p", 2, b"other")
        assert backend.store.stream_version(process_stream("p")) == version
        assert procs.latest_handover("p") == stored.handover  # kept until a prune or a delete
        assert procs.delete_handovers("p") == 1 and procs.handovers("p") == []

    def test_handovers_are_not_process_events_and_do_not_move_the_change_feed(self, backend):
        procs = backend.store.processes
        procs.register(registration("p", plain_type()))
        procs.append_event("p", AppendEventRequest("producer.line", {"n": 1}))
        record = procs.get("p")
        procs.put_handover("p", 0, {"state": 1})
        procs.put_handover("p", 1, {"state": 2})
        assert procs.get("p") == record
        assert procs.changes_since(record.change_seq).records == ()
        assert [e.sequence for e in procs.events_after("p")] == [1]
        assert procs.count_events_through("p", 10) == 1

    def test_delete_removes_every_retained_handover_and_is_idempotent(self, backend):
        procs = backend.store.processes
        procs.register(registration("p"))
        procs.put_handover("p", 0, "a")
        procs.put_handover("p", 1, "b")
        assert procs.delete_handovers("p") == 2
        version = backend.store.stream_version(process_stream("p"))
        assert procs.delete_handovers("p") == 0
        assert backend.store.stream_version(process_stream("p")) == version
        assert procs.latest_handover("p") is None
        assert not procs.put_handover("p", 1, "b").replayed  # the ordinal is free again
        assert_consistent(backend.store)

    @pytest.mark.parametrize("payload, where", [
        (object(), "/"), ({"state": {1, 2}}, "/state"), ({1: "x"}, "object key 1"), ([float("inf")], "/0"),
        (bytearray(b"x"), "/"),
    ])
    def test_a_payload_that_is_not_a_msgpack_value_is_refused_naming_where(self, backend, payload, where):
        procs = backend.store.processes
        procs.register(registration("p"))
        before = backend.store.last_position()
        with pytest.raises(eventstore.InvalidArgument, match="payload") as err:
            procs.put_handover("p", 0, payload)
        assert where in str(err.value)
        assert backend.store.last_position() == before

    @pytest.mark.parametrize("ordinal", [-1, 1.0, "1", True, None, 2 ** 63])
    def test_a_bad_segment_ordinal_is_refused_naming_it(self, backend, ordinal):
        procs = backend.store.processes
        procs.register(registration("p"))
        before = backend.store.last_position()
        with pytest.raises(eventstore.InvalidArgument, match="segment_ordinal"):
            procs.put_handover("p", ordinal, b"x")
        with pytest.raises(eventstore.InvalidArgument, match="segment_ordinal"):
            procs.handover("p", ordinal)
        assert backend.store.last_position() == before

    def test_handovers_survive_reopen_and_time_travel_sees_them_as_they_were(self, backend):
        store, procs = backend.store, backend.store.processes
        procs.register(registration("p"))
        procs.put_handover("p", 0, {"state": b"zero"})
        position = store.last_position()
        procs.put_handover("p", 1, {"state": b"one"})
        procs.put_handover("p", 2, {"state": b"two"})
        with store.at(position) as view:
            assert [h.payload for h in view.processes.handovers("p")] == [{"state": b"zero"}]
            with pytest.raises(eventstore.ReadOnlyView):
                view.processes.put_handover("p", 3, None)
        with store.at(streams=[process_stream("p")]) as view:
            assert view.processes.latest_handover("p") == procs.latest_handover("p")
        reopened = backend.reopen().processes
        assert [h.payload for h in reopened.handovers("p")] == [{"state": b"one"}, {"state": b"two"}]
        assert_consistent(backend.store)
