"""Trigger occurrence retention (docs/semantics.md §9) as a backend contract.

`TriggerRetentionContract` is mixed into `TriggerContract` (triggers.py), so every
backend that binds the trigger contract runs these tests too. The helpers that build
registrations and occurrences live here and are shared with triggers.py.
"""

from __future__ import annotations

import pytest

import eventstore
from eventstore.processes import ExternalOwner, Success
from eventstore.testing.contract.processes import registration
from eventstore.testing.helpers import assert_consistent
from eventstore.triggers import (
    DEFAULT_OCCURRENCE_RETENTION_MS, MAINTENANCE_STREAM, DeleteSubscription, OccurrenceConflict, OccurrenceRequest,
    OccurrencesForgotten, PruneTriggers, RegisterSubscription, TriggerDefinition,
)

PUSH = TriggerDefinition("webhook", "github:push", "run-ci", {"branch": "main"})
PUSH_V2 = TriggerDefinition("webhook", "github:push", "run-ci", {"branch": "release"})


def register(store: eventstore.Store, op: str, scope: str = "host", key: str = "ci",
             definition: TriggerDefinition = PUSH):
    return store.triggers.execute(op, RegisterSubscription(scope, key, definition))


def push(key: str, payload: object = None, session_id: str | None = None,
         source_key: str = "github:push") -> OccurrenceRequest:
    return OccurrenceRequest("webhook", source_key, key, payload if payload is not None else {"n": key},
                             session_id)


class TriggerRetentionContract:
    """Occurrences forgotten past their retention, refires, and the retention setting."""

    def test_forgetting_an_occurrence_past_retention_lets_a_refire_record_a_new_one(self, backend):
        store, clock = backend.store, backend.clock
        first = store.triggers.ingest(push("delivery-1"))
        clock.advance(DEFAULT_OCCURRENCE_RETENTION_MS + 1)
        assert store.triggers.forget_occurrences() == 1
        assert store.triggers.occurrence("delivery-1") is None
        forgot = list(store.read_stream(MAINTENANCE_STREAM))[-1].data
        assert forgot == OccurrencesForgotten(clock() - DEFAULT_OCCURRENCE_RETENTION_MS, 1, clock())
        clock.advance(5)
        again = store.triggers.ingest(push("delivery-1"))
        assert again.status == "reserved"
        assert again.occurrence.occurred_at_ms == clock() > first.occurrence.occurred_at_ms
        assert again.occurrence.occurrence_id == first.occurrence.occurrence_id  # still derived from the key
        assert store.triggers.ingest(push("delivery-1")).status == "already_reserved"
        assert_consistent(store)

    def test_a_refire_inside_the_retention_window_is_still_deduplicated(self, backend):
        store, clock = backend.store, backend.clock
        store.triggers.ingest(push("delivery-1"))
        clock.advance(DEFAULT_OCCURRENCE_RETENTION_MS - 1)
        before = store.last_position()
        assert store.triggers.forget_occurrences() == 0
        assert store.last_position() == before  # nothing forgettable: nothing written
        assert store.triggers.ingest(push("delivery-1")).status == "already_reserved"
        with pytest.raises(OccurrenceConflict):
            store.triggers.ingest(push("delivery-1", payload={"other": True}))
        assert_consistent(store)

    def test_an_occurrence_whose_delivery_is_in_flight_is_never_forgotten(self, backend):
        store, clock = backend.store, backend.clock
        register(store, "op-reg")
        kept = store.triggers.ingest(push("delivery-1"))
        store.processes.register(registration(kept.deliveries[0].process_id))
        clock.advance(DEFAULT_OCCURRENCE_RETENTION_MS + 1)
        assert store.triggers.forget_occurrences() == 0
        assert store.triggers.forget_occurrences(clock()) == 0  # an explicit cutoff obeys the same rule
        assert store.triggers.ingest(push("delivery-1")).status == "already_reserved"
        # Terminal and pruned from the registry: the delivery is finished, the key can go.
        store.processes.complete(kept.deliveries[0].process_id, Success("ran"), ExternalOwner("host"))
        clock.advance(1)
        store.processes.prune(clock())
        assert store.triggers.deliveries() == []
        assert store.triggers.forget_occurrences() == 1
        again = store.triggers.ingest(push("delivery-1"))
        # The re-fire reserves the same deterministic process id, free again after the prune.
        assert [d.process_id for d in again.deliveries] == [d.process_id for d in kept.deliveries]
        assert again.status == "reserved" and store.triggers.deliveries() == list(again.deliveries)
        assert_consistent(store)

    def test_a_replay_after_a_refire_reports_the_new_recordings_deliveries(self, backend):
        store, clock = backend.store, backend.clock
        register(store, "op-reg")
        store.triggers.ingest(push("delivery-1"))
        store.triggers.execute("op-del", DeleteSubscription("host", "ci", 1))
        clock.advance(1)
        store.triggers.execute("op-prune", PruneTriggers(clock()))  # retires the delivery with the tombstone
        assert store.triggers.forget_occurrences(clock()) == 1
        register(store, "op-reg-2")
        fresh = store.triggers.ingest(push("delivery-1"))
        replay = store.triggers.ingest(push("delivery-1"))
        assert replay.status == "already_reserved" and replay.occurrence == fresh.occurrence
        assert [d.incarnation for d in replay.deliveries] == [2]
        assert_consistent(store)

    def test_time_travel_before_a_forget_still_shows_the_occurrence(self, backend):
        store, clock = backend.store, backend.clock
        store.triggers.ingest(push("delivery-1"))
        before_forget = store.last_position()
        clock.advance(1)
        assert store.triggers.forget_occurrences(clock()) == 1
        with store.at(before_forget) as view:
            assert view.triggers.occurrence("delivery-1").idempotency_key == "delivery-1"
            assert view.triggers.forget_occurrences(clock(), dry_run=True) == 1
            with pytest.raises(eventstore.ReadOnlyView):
                view.triggers.forget_occurrences(clock())
        assert store.triggers.occurrence("delivery-1") is None
        assert store.verify_projections().ok
        assert_consistent(store)

    def test_dry_run_and_no_retention_forget_nothing_and_write_nothing(self, backend):
        store, clock = backend.store, backend.clock
        store.triggers.ingest(push("delivery-1"))
        clock.advance(DEFAULT_OCCURRENCE_RETENTION_MS + 1)
        before = store.last_position()
        assert store.triggers.forget_occurrences(dry_run=True) == 1
        store.triggers.occurrence_retention_ms = None
        assert store.triggers.forget_occurrences() == 0
        assert store.last_position() == before and store.triggers.occurrence("delivery-1") is not None
        store.triggers.occurrence_retention_ms = 0
        assert store.triggers.forget_occurrences() == 1

    @pytest.mark.parametrize("kwargs, match", [
        ({"older_than_ms": -1}, "older_than_ms"), ({"older_than_ms": True}, "older_than_ms"),
        ({"older_than_ms": "1"}, "older_than_ms"), ({"older_than_ms": 2 ** 70}, "older_than_ms"),
        ({"dry_run": 1}, "dry_run"),
    ])
    def test_bad_forget_arguments_raise_invalid_argument_and_append_nothing(self, backend, kwargs, match):
        store = backend.store
        store.triggers.ingest(push("delivery-1"))
        before = store.last_position()
        with pytest.raises(eventstore.InvalidArgument, match=match):
            store.triggers.forget_occurrences(**kwargs)
        with pytest.raises(eventstore.InvalidArgument, match="future"):
            store.triggers.forget_occurrences(backend.clock() + 1)
        for bad in (-1, 1.5, "7d", False):
            with pytest.raises(eventstore.InvalidArgument, match="occurrence_retention_ms"):
                store.triggers.occurrence_retention_ms = bad
        assert store.triggers.occurrence_retention_ms == DEFAULT_OCCURRENCE_RETENTION_MS
        assert store.last_position() == before
