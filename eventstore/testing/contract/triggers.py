"""Trigger store laws (docs/semantics.md §9, law 87) as a backend contract.

Each part of law 87 has a `test_law_87_*` test; the other tests cover the rest of the
trigger behaviour (receipts, occurrences, session binding, validation, time travel).
"""

from __future__ import annotations

import threading

import attrs
import pytest

import eventstore
from eventstore.triggers import (
    DeleteSubscription, DeliveryReserved, DisableSubscription, EnableSubscription, OccurrenceConflict,
    OccurrenceRecorded, OccurrenceRequest, OperationIdConflict, PruneSubscriptions, PruneTriggerHistory,
    PruneTriggers, RegisterSubscription, ReviveSubscription, SubscriptionExists, SubscriptionNotDeleted,
    SubscriptionNotFound, SubscriptionRegistered, SubscriptionRevisionConflict, SubscriptionTombstoned,
    TombstonedSubscription, TriggerDefinition, UpdateSubscription,
)
from eventstore.testing.contract.trigger_retention import PUSH, PUSH_V2, TriggerRetentionContract, push, register
from eventstore.testing.helpers import assert_consistent


def stream_types(store: eventstore.Store, stream: str) -> list[str]:
    return [ev.type for ev in store.read_stream(stream)]


class TriggerContract(TriggerRetentionContract):
    """The trigger store contract: every part of law 87, and the rest of §6's triggers
    (occurrence retention comes from `TriggerRetentionContract`)."""

    # --- law 87 ------------------------------------------------------------------

    def test_law_87_reregistering_the_same_definition_is_unchanged(self, backend):
        store = backend.store
        first = register(store, "op-1")
        again = register(store, "op-2")
        assert (first.outcome, first.revision, first.incarnation) == ("registered", 1, 1)
        assert (again.outcome, again.revision, again.replayed) == ("unchanged", 1, False)
        sub = store.triggers.get("host", "ci")
        assert sub.revision == 1 and sub.definition == PUSH
        assert stream_types(store, f"trigger:{first.subscription_id}") == [
            "trigger.subscription_registered", "trigger.command_answered"]
        assert_consistent(store)

    def test_law_87_register_does_not_upsert(self, backend):
        store = backend.store
        register(store, "op-1")
        with pytest.raises(SubscriptionExists, match="register does not upsert"):
            register(store, "op-2", definition=PUSH_V2)
        sub = store.triggers.get("host", "ci")
        assert sub.definition == PUSH and sub.revision == 1
        assert_consistent(store)

    def test_law_87_concurrent_update_cas_calls_have_one_winner(self, backend):
        store = backend.store
        register(store, "op-reg")
        handles = [backend.open(), backend.open()]
        for round_ in range(4):
            revision = store.triggers.get("host", "ci").revision
            barrier = threading.Barrier(2)
            results: list[object] = [None, None]

            def race(i: int) -> None:
                barrier.wait()
                d = TriggerDefinition("webhook", "github:push", f"run-ci-{round_}-{i}")
                try:
                    results[i] = handles[i].triggers.execute(f"op-{round_}-{i}",
                                                             UpdateSubscription("host", "ci", revision, d))
                except SubscriptionRevisionConflict as exc:
                    results[i] = exc

            threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            winners = [r for r in results if not isinstance(r, Exception)]
            losers = [r for r in results if isinstance(r, SubscriptionRevisionConflict)]
            assert len(winners) == 1 and len(losers) == 1, results
            assert losers[0].expected_revision == revision and losers[0].actual_revision == revision + 1
            sub = store.triggers.get("host", "ci")
            assert sub.revision == revision + 1
            assert sub.definition.process_name == f"run-ci-{round_}-{results.index(winners[0])}"
        assert_consistent(store)

    def test_law_87_receipts_outlive_later_revisions(self, backend):
        store = backend.store
        register(store, "op-reg")
        first = store.triggers.execute("op-upd-1", UpdateSubscription("host", "ci", 1, PUSH_V2))
        store.triggers.execute("op-dis", DisableSubscription("host", "ci", 2))
        store.triggers.execute("op-upd-2", UpdateSubscription("host", "ci", 3, PUSH))
        replay = store.triggers.execute("op-upd-1", UpdateSubscription("host", "ci", 1, PUSH_V2))
        assert replay.replayed and (replay.outcome, replay.revision) == ("updated", 2)
        assert replay == attrs.evolve(first, replayed=True)
        assert store.triggers.get("host", "ci").revision == 4  # the replay changed nothing
        store = backend.reopen()  # receipts are projection rows derived from the log: they survive a reopen
        again = store.triggers.execute("op-reg", RegisterSubscription("host", "ci", PUSH))
        assert again.replayed and again.outcome == "registered" and again.revision == 1
        assert_consistent(store)

    def test_law_87_receipts_follow_retention(self, backend):
        store, clock = backend.store, backend.clock
        register(store, "op-old")
        old_at = clock()
        clock.advance(10_000)
        store.triggers.execute("op-new", DisableSubscription("host", "ci", 1))
        pruned = store.triggers.execute("op-prune", PruneTriggers(old_at + 1))
        assert (pruned.outcome, pruned.pruned_receipts, pruned.pruned_subscriptions) == ("pruned", 1, 0)
        assert store.triggers.receipt("host", "op-old") is None
        assert store.triggers.receipt("host", "op-new").outcome == "disabled"
        # With its receipt gone, the old operation id runs afresh (and finds the key taken).
        assert register(store, "op-old").outcome == "unchanged"
        assert store.triggers.execute("op-prune", PruneTriggers(old_at + 1)).replayed
        assert_consistent(store)

    def test_law_87_disable_keeps_existing_reservations(self, backend):
        store = backend.store
        sid = register(store, "op-reg").subscription_id
        kept = store.triggers.ingest(push("delivery-1")).deliveries
        store.triggers.execute("op-dis", DisableSubscription("host", "ci", 1))
        assert store.triggers.deliveries(subscription_id=sid) == list(kept)
        assert store.triggers.ingest(push("delivery-2")).deliveries == ()
        store.triggers.execute("op-en", EnableSubscription("host", "ci", 2))
        assert len(store.triggers.ingest(push("delivery-3")).deliveries) == 1
        assert [d.occurrence_id for d in store.triggers.deliveries(subscription_id=sid)] == [
            kept[0].occurrence_id, store.triggers.occurrence("delivery-3").occurrence_id]
        assert_consistent(store)

    def test_law_87_delete_keeps_history(self, backend):
        store = backend.store
        sid = register(store, "op-reg").subscription_id
        store.triggers.ingest(push("delivery-1"))
        deleted = store.triggers.execute("op-del", DeleteSubscription("host", "ci", 1))
        assert (deleted.outcome, deleted.revision) == ("deleted", 2)
        sub = store.triggers.get("host", "ci")
        assert sub.deleted and sub.state == "deleted" and sub.definition == PUSH and sub.deliveries == 1
        assert len(store.triggers.deliveries(subscription_id=sid)) == 1
        assert stream_types(store, f"trigger:{sid}") == ["trigger.subscription_registered",
                                                         "trigger.subscription_deleted"]
        assert store.triggers.ingest(push("delivery-2")).deliveries == ()
        with pytest.raises(SubscriptionTombstoned, match="revive"):
            register(store, "op-reg-again")
        with pytest.raises(SubscriptionTombstoned):
            store.triggers.execute("op-upd", UpdateSubscription("host", "ci", 2, PUSH_V2))
        assert store.triggers.execute("op-del-2", DeleteSubscription("host", "ci", 2)).outcome == "unchanged"
        assert_consistent(store)

    def test_law_87_revive_gives_a_new_incarnation(self, backend):
        store = backend.store
        register(store, "op-reg")
        first = store.triggers.ingest(push("delivery-1")).deliveries[0]
        store.triggers.execute("op-del", DeleteSubscription("host", "ci", 1))
        revived = store.triggers.execute("op-rev", ReviveSubscription("host", "ci", 2, PUSH_V2))
        assert (revived.outcome, revived.incarnation, revived.revision) == ("revived", 2, 3)
        sub = store.triggers.get("host", "ci")
        assert sub.enabled and not sub.deleted and sub.definition == PUSH_V2
        second = store.triggers.ingest(push("delivery-2")).deliveries[0]
        assert (first.incarnation, second.incarnation) == (1, 2)
        assert second.process_id.split(":")[2] == "2" and first.process_id != second.process_id
        assert second.input_template == {"branch": "release"}
        with pytest.raises(SubscriptionNotDeleted):
            store.triggers.execute("op-rev-2", ReviveSubscription("host", "ci", 3))
        assert_consistent(store)

    def test_law_87_session_cleanup_spares_host_owned_rows(self, backend):
        store = backend.store
        for i, scope in enumerate(["host", "host:eu", "session:s1", "session:s1/frame:f1", "session:s2"]):
            register(store, f"op-{i}", scope=scope, key="watch")
        report = store.triggers.delete_session_subscriptions("s1")
        assert sorted(report.deleted) == sorted(
            store.triggers.get(s, "watch").subscription_id for s in ("session:s1", "session:s1/frame:f1"))
        states = {s.owner_scope: s.state for s in store.triggers.list()}
        assert states == {"host": "enabled", "host:eu": "enabled", "session:s1": "deleted",
                          "session:s1/frame:f1": "deleted", "session:s2": "enabled"}
        again = store.triggers.delete_session_subscriptions("s1")
        assert again.deleted == () and again.already_deleted == 2
        assert_consistent(store)

    def test_law_87_occurrence_ingest_is_atomic(self, backend):
        store = backend.store
        for i in range(3):
            register(store, f"op-{i}", key=f"ci-{i}")
        before = store.last_position()
        inline = store.log.on_append
        calls = {"n": 0}

        def fail_on_second_reservation(db, events):
            reservations = [e for e in events if isinstance(e.data, DeliveryReserved)]
            if len(reservations) >= 2:
                calls["n"] += 1
                raise RuntimeError("disk vanished while reserving")
            inline(db, events)

        store.log.on_append = fail_on_second_reservation
        try:
            with pytest.raises(RuntimeError):
                store.triggers.ingest(push("delivery-1"))
        finally:
            store.log.on_append = inline
        assert calls["n"] == 1
        assert store.last_position() == before
        assert store.triggers.occurrence("delivery-1") is None and store.triggers.deliveries() == []
        got = store.triggers.ingest(push("delivery-1"))
        events = list(store.read_stream(f"trigger-occurrence:{got.occurrence.occurrence_id}"))
        assert [type(e.data) for e in events] == [OccurrenceRecorded] + [DeliveryReserved] * 3
        assert len({e.recorded_at_ms for e in events}) == 1 and len(got.deliveries) == 3
        assert_consistent(store)

    def test_law_87_occurrence_ingest_is_idempotent(self, backend):
        store = backend.store
        register(store, "op-reg")
        first = store.triggers.ingest(push("delivery-1", {"sha": "abc"}))
        register(store, "op-reg-2", key="ci-2")  # a later subscription must not join the replay
        position = store.last_position()
        again = store.triggers.ingest(push("delivery-1", {"sha": "abc"}))
        assert (first.status, again.status) == ("reserved", "already_reserved")
        assert again.deliveries == first.deliveries and again.occurrence == first.occurrence
        assert store.last_position() == position
        with pytest.raises(OccurrenceConflict, match="delivery-1"):
            store.triggers.ingest(push("delivery-1", {"sha": "def"}))
        assert store.last_position() == position
        assert_consistent(store)

    # --- receipts and commands -----------------------------------------------------

    def test_a_replayed_conflict_is_the_original_conflict_even_when_it_would_now_succeed(self, backend):
        store = backend.store
        with pytest.raises(SubscriptionNotFound) as first:
            store.triggers.execute("op-upd", UpdateSubscription("host", "ci", 1, PUSH_V2))
        assert not first.value.replayed
        register(store, "op-reg")
        with pytest.raises(SubscriptionNotFound) as again:
            store.triggers.execute("op-upd", UpdateSubscription("host", "ci", 1, PUSH_V2))
        assert again.value.replayed and again.value.operation_id == "op-upd"
        assert store.triggers.get("host", "ci").definition == PUSH
        assert store.triggers.receipt("host", "op-upd").conflict_code == "subscription_not_found"
        assert_consistent(store)

    def test_the_same_operation_id_with_different_content_is_a_conflict_and_writes_nothing(self, backend):
        store = backend.store
        register(store, "op-1")
        position = store.last_position()
        with pytest.raises(OperationIdConflict, match="op-1"):
            store.triggers.execute("op-1", DisableSubscription("host", "ci", 1))
        with pytest.raises(OperationIdConflict):
            register(store, "op-1", definition=PUSH_V2)
        assert store.last_position() == position and store.triggers.get("host", "ci").enabled

    def test_enable_disable_and_update_of_the_current_state_are_unchanged(self, backend):
        store = backend.store
        register(store, "op-reg")
        assert store.triggers.execute("op-en", EnableSubscription("host", "ci", 1)).outcome == "unchanged"
        assert store.triggers.execute("op-upd", UpdateSubscription("host", "ci", 1, PUSH)).outcome == "unchanged"
        assert store.triggers.execute("op-dis", DisableSubscription("host", "ci", 1)).revision == 2
        assert store.triggers.execute("op-dis-2", DisableSubscription("host", "ci", 2)).outcome == "unchanged"

    def test_prune_retires_old_tombstones_and_a_new_registration_continues_their_numbering(self, backend):
        store, clock = backend.store, backend.clock
        sid = register(store, "op-reg").subscription_id
        store.triggers.ingest(push("delivery-1"))
        store.triggers.execute("op-del", DeleteSubscription("host", "ci", 1))
        clock.advance(1_000)
        result = store.triggers.execute("op-prune", PruneTriggers(clock()))
        assert (result.pruned_subscriptions, result.pruned_deliveries) == (1, 1)
        assert store.triggers.get("host", "ci") is None and store.triggers.deliveries() == []
        assert "trigger.subscription_registered" in stream_types(store, f"trigger:{sid}")  # the log keeps it
        fresh = register(store, "op-reg-2")
        assert (fresh.outcome, fresh.incarnation, fresh.revision) == ("registered", 2, 3)
        assert store.triggers.ingest(push("delivery-2")).deliveries[0].incarnation == 2
        # a replay of the pruned occurrence still reports its original delivery
        assert len(store.triggers.ingest(push("delivery-1")).deliveries) == 1
        assert_consistent(store)

    # --- prune by name -------------------------------------------------------------

    def test_prune_by_name_tombstones_the_named_live_subscriptions_of_one_owner_scope(self, backend):
        """PruneSubscriptions deletes each named, live key of its scope at its current revision,
        skips keys that are missing or already deleted, and leaves other scopes alone."""
        store = backend.store
        for i, key in enumerate(("a", "b", "c", "d")):
            register(store, f"op-{i}", key=key)
        register(store, "op-s", scope="session:s1", key="a")
        store.triggers.execute("op-upd", UpdateSubscription("host", "b", 1, PUSH_V2))
        store.triggers.execute("op-del", DeleteSubscription("host", "c", 1))
        keys = ("b", "a", "c", "missing", "a")
        result = store.triggers.execute("op-prune", PruneSubscriptions("host", keys))
        ids = {k: store.triggers.get("host", k).subscription_id for k in "abcd"}
        assert (result.command, result.outcome, result.replayed, result.owner_scope) == (
            "prune", "pruned", False, "host")
        assert result.tombstoned == (TombstonedSubscription("a", ids["a"], 2, 1),
                                     TombstonedSubscription("b", ids["b"], 3, 1))
        states = {(s.owner_scope, s.subscription_key): (s.state, s.revision) for s in store.triggers.list()}
        assert states == {("host", "a"): ("deleted", 2), ("host", "b"): ("deleted", 3),
                          ("host", "c"): ("deleted", 2), ("host", "d"): ("enabled", 1),
                          ("session:s1", "a"): ("enabled", 1)}
        tomb = list(store.read_stream(f"trigger:{ids['a']}"))[-1].data
        assert (tomb.reason, tomb.revision, tomb.operation_id) == ("pruned", 2, None)
        assert stream_types(store, "trigger-owner:host") == ["trigger.subscriptions_pruned"]
        # tombstones stop matching, and keep their history like any delete
        assert sorted(d.owner_scope for d in store.triggers.ingest(push("delivery-1")).deliveries) == [
            "host", "session:s1"]
        revived = store.triggers.execute("op-rev", ReviveSubscription("host", "a", 2))
        assert (revived.incarnation, revived.revision) == (2, 3)
        receipt = store.triggers.receipt("host", "op-prune")
        assert (receipt.command, receipt.outcome) == ("prune", "pruned")
        assert receipt.tombstoned == result.tombstoned
        assert_consistent(store)

    def test_a_replayed_prune_by_name_returns_the_original_result_and_writes_nothing(self, backend):
        """The prune is receipted: the same request (keys in any order, repeated or not)
        replays the original answer even after the subscriptions moved on."""
        store = backend.store
        register(store, "op-a", key="a")
        register(store, "op-b", key="b")
        first = store.triggers.execute("op-prune", PruneSubscriptions("host", ["a", "b"]))
        store.triggers.execute("op-rev", ReviveSubscription("host", "a", 2))
        position = store.last_position()
        again = store.triggers.execute("op-prune", PruneSubscriptions("host", ("b", "a", "b")))
        assert again == attrs.evolve(first, replayed=True)
        assert store.last_position() == position and store.triggers.get("host", "a").state == "enabled"
        backend.reopen()  # the receipt is a projection row rebuilt from the log
        assert backend.store.triggers.execute("op-prune", PruneSubscriptions("host", ("a", "b"))).replayed
        assert_consistent(backend.store)

    def test_a_prune_by_name_reusing_an_operation_id_with_other_content_is_a_conflict(self, backend):
        """Another key set, or another command, under a prune's operation id (same scope) is
        OperationIdConflict and writes nothing."""
        store = backend.store
        register(store, "op-a", key="a")
        register(store, "op-b", key="b")
        store.triggers.execute("op-prune", PruneSubscriptions("host", ("a",)))
        position = store.last_position()
        with pytest.raises(OperationIdConflict, match="op-prune"):
            store.triggers.execute("op-prune", PruneSubscriptions("host", ("a", "b")))
        with pytest.raises(OperationIdConflict):
            store.triggers.execute("op-prune", DeleteSubscription("host", "b", 1))
        with pytest.raises(OperationIdConflict):
            store.triggers.execute("op-a", PruneSubscriptions("host", ("b",)))
        assert store.last_position() == position and store.triggers.get("host", "b").state == "enabled"

    def test_a_prune_by_name_that_finds_nothing_live_is_unchanged_and_still_receipted(self, backend):
        """Naming only missing or deleted keys (or none) changes nothing but answers 'unchanged'
        under a receipt, so a retry replays it."""
        store = backend.store
        register(store, "op-a", key="a")
        store.triggers.execute("op-del", DeleteSubscription("host", "a", 1))
        for op, keys in (("op-p1", ("a", "never")), ("op-p2", ())):
            result = store.triggers.execute(op, PruneSubscriptions("host", keys))
            assert (result.outcome, result.tombstoned) == ("unchanged", ())
            assert store.triggers.execute(op, PruneSubscriptions("host", keys)).replayed
        assert store.triggers.get("host", "a").revision == 2
        assert_consistent(store)

    def test_prune_trigger_history_is_the_retention_prune_and_prune_triggers_its_old_name(self, backend):
        """Retention kept its behaviour under its own name: it retires tombstones (a prune by
        name's too) and old receipts, is receipted in the host scope, and the old name works."""
        store, clock = backend.store, backend.clock
        assert PruneTriggers is PruneTriggerHistory
        register(store, "op-a", key="a")
        store.triggers.execute("op-prune", PruneSubscriptions("host", ("a",)))
        clock.advance(1)
        retention = store.triggers.execute("op-history", PruneTriggerHistory(clock()))
        r = retention
        assert (r.command, r.outcome) == ("prune_history", "pruned")
        assert (r.pruned_subscriptions, r.pruned_receipts) == (1, 2)
        assert store.triggers.get("host", "a") is None
        assert store.triggers.receipt("host", "op-history").command == "prune_history"
        assert store.triggers.execute("op-history", PruneTriggers(clock())).replayed
        assert register(store, "op-again", key="a").incarnation == 2  # numbering continues
        assert_consistent(store)

    # --- receipts per owner scope ----------------------------------------------------

    def test_the_same_operation_id_in_two_owner_scopes_gives_two_independent_receipts(self, backend):
        """Receipts are keyed by (owner scope, operation id): one tenant's operation ids never
        collide with another's, and each replays its own answer."""
        store = backend.store
        s1 = store.triggers.execute("op-1", RegisterSubscription("session:s1", "watch", PUSH))
        s2 = store.triggers.execute("op-1", RegisterSubscription("session:s2", "watch", PUSH_V2))
        assert (s1.outcome, s2.outcome) == ("registered", "registered")
        assert not s1.replayed and not s2.replayed
        with pytest.raises(SubscriptionNotFound):  # a conflict is receipted per scope too
            store.triggers.execute("op-1", DisableSubscription("host", "watch", 1))
        pruned = store.triggers.execute("op-1", PruneSubscriptions("host:eu", ("watch",)))
        assert pruned.outcome == "unchanged" and not pruned.replayed
        assert store.triggers.execute("op-1", RegisterSubscription("session:s2", "watch", PUSH_V2)) == \
            attrs.evolve(s2, replayed=True)
        with pytest.raises(SubscriptionNotFound) as replayed:
            store.triggers.execute("op-1", DisableSubscription("host", "watch", 1))
        assert replayed.value.replayed
        with pytest.raises(OperationIdConflict, match="session:s1"):
            store.triggers.execute("op-1", RegisterSubscription("session:s1", "other", PUSH))
        receipts = {scope: store.triggers.receipt(scope, "op-1") for scope in
                    ("session:s1", "session:s2", "host", "host:eu", "session:s3")}
        assert {k: (r.owner_scope, r.command, r.outcome) if r else None for k, r in receipts.items()} == {
            "session:s1": ("session:s1", "register", "registered"),
            "session:s2": ("session:s2", "register", "registered"),
            "host": ("host", "disable", "conflict"), "host:eu": ("host:eu", "prune", "unchanged"),
            "session:s3": None}
        with pytest.raises(eventstore.InvalidArgument, match="owner_scope"):
            store.triggers.receipt("op-1", "session:s1")  # the scope comes first, like get()
        assert_consistent(store)

    # --- occurrences ---------------------------------------------------------------

    def test_session_bound_occurrences_reach_only_that_sessions_owners(self, backend):
        store = backend.store
        for i, scope in enumerate(["host", "session:s1", "session:s1/frame:f", "session:s2"]):
            register(store, f"op-{i}", scope=scope)
        bound = store.triggers.ingest(push("delivery-1", session_id="s1"))
        assert sorted(d.owner_scope for d in bound.deliveries) == ["session:s1", "session:s1/frame:f"]
        unbound = store.triggers.ingest(push("delivery-2"))
        assert len(unbound.deliveries) == 4
        assert_consistent(store)

    def test_deliveries_carry_a_deterministic_process_id_and_the_revision_they_saw(self, backend):
        store = backend.store
        reg = register(store, "op-reg")
        store.triggers.execute("op-upd", UpdateSubscription("host", "ci", 1, PUSH_V2))
        got = store.triggers.ingest(push("delivery-1")).deliveries[0]
        occ = store.triggers.occurrence("delivery-1").occurrence_id
        assert got.process_id == f"trigger:{reg.subscription_id}:1:{occ}"
        assert got.revision_seen == 2 and got.process_name == "run-ci"
        assert got.input_template == {"branch": "release"}

    def test_a_subscription_without_source_key_matches_every_key_of_its_type(self, backend):
        store = backend.store
        register(store, "op-any", key="any", definition=TriggerDefinition("webhook", None, "audit"))
        register(store, "op-one", key="one")
        other = store.triggers.ingest(push("delivery-1", source_key="gitlab:push"))
        assert [d.process_name for d in other.deliveries] == ["audit"]
        both = store.triggers.ingest(push("delivery-2"))
        assert sorted(d.process_name for d in both.deliveries) == ["audit", "run-ci"]

    # --- validation, views ---------------------------------------------------------

    @pytest.mark.parametrize("command, field", [
        (RegisterSubscription("nobody", "k", PUSH), "owner_scope"),
        (RegisterSubscription("session:", "k", PUSH), "owner_scope"),
        (RegisterSubscription("host", "", PUSH), "subscription_key"),
        (RegisterSubscription("host", "k", TriggerDefinition("webhook", "x", "p", {"when": {1, 2}})),
         "input_template"),
        (RegisterSubscription("host", "k", TriggerDefinition("", "x", "p")), "source_type"),
        (UpdateSubscription("host", "k", 0, PUSH), "expected_revision"),
        (EnableSubscription("host", "k", True), "expected_revision"),
        (PruneTriggers(-1), "older_than_ms"),
        (PruneSubscriptions("host", "ci"), "subscription_keys must be a tuple or list"),  # type: ignore[arg-type]  # on purpose
        (PruneSubscriptions("host", ("ci", "")), r"subscription_keys\[1\]"),
        (PruneSubscriptions("host", ("k",) * 1001), "at most 1000"),
        (PruneSubscriptions("tenant-a", ("ci",)), "owner_scope"),
        ("register please", "command"),
    ])
    def test_bad_commands_raise_invalid_argument_naming_the_field_and_append_nothing(self, backend, command, field):
        store = backend.store
        position = store.last_position()
        with pytest.raises(eventstore.InvalidArgument, match=field):
            store.triggers.execute("op-bad", command)
        assert store.last_position() == position and store.triggers.receipt("host", "op-bad") is None

    def test_bad_occurrences_and_future_prunes_raise_invalid_argument(self, backend):
        store = backend.store
        with pytest.raises(eventstore.InvalidArgument, match="payload"):
            store.triggers.ingest(OccurrenceRequest("webhook", "k", "i", {"x": float("nan")}))
        with pytest.raises(eventstore.InvalidArgument, match="idempotency_key"):
            store.triggers.ingest(OccurrenceRequest("webhook", "k", ""))
        with pytest.raises(eventstore.InvalidArgument, match="future"):
            store.triggers.execute("op", PruneTriggers(backend.clock() + 1))
        with pytest.raises(eventstore.InvalidArgument, match="operation_id"):
            store.triggers.execute("", PruneTriggers(0))
        assert store.last_position() == 0

    def test_time_travel_shows_earlier_revisions_and_refuses_commands(self, backend):
        store = backend.store
        register(store, "op-reg")
        at_first = store.last_position()
        store.triggers.execute("op-upd", UpdateSubscription("host", "ci", 1, PUSH_V2))
        with store.at(at_first) as view:
            assert view.triggers.get("host", "ci").definition == PUSH
            with pytest.raises(eventstore.ReadOnlyView):
                view.triggers.execute("op-x", DisableSubscription("host", "ci", 1))
            with pytest.raises(eventstore.ReadOnlyView):
                view.triggers.ingest(push("delivery-1"))
        assert store.triggers.get("host", "ci").definition == PUSH_V2

    def test_registration_events_record_the_decision_time_and_session(self, backend):
        store, clock = backend.store, backend.clock
        register(store, "op-reg", scope="session:s9/frame:f", key="k")
        ev = next(e for e in store.read_all() if isinstance(e.data, SubscriptionRegistered))
        assert ev.data.at_ms == clock() == ev.recorded_at_ms and ev.data.session_id == "s9"
