"""describe(): one readable line per event; statediff: what changed, as domain facts."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.debug import describe_events as describe_module
from eventstore.debug.describe_events import describe, short
from eventstore.processes import handover_hash, process_stream
from eventstore.errors import InvalidArgument
from eventstore.events import event
from eventstore.debug.inspection import state_at
from eventstore.log import UNDECODED, RecordedEvent
from eventstore.debug.statediff import diff
from projections.base import REGISTRY as PROJECTIONS
from projections.base import Projection
from tests import debug_store
from eventstore.testing.contract.processes import registration

# The event types of the domain when this file was written: each must read as a sentence
# of its own, not as the generic field dump (types added later fall back until they get one).
DOMAIN_TYPES = {
    "session.created", "session.deleted", "session.purged", "session.lease_acquired", "session.lease_renewed",
    "session.lease_released", "session.committed", "session.nodes_tombstoned", "session.vacuumed",
    "session.attachment_intent_recorded", "session.attachment_intents_forgotten", "store.artifact_ref_set",
    "store.blob_gc_ran", "queue.batch_enqueued", "queue.claimed", "queue.claim_abandoned", "queue.batch_cancelled",
    "queue.completed", "queue.source_keys_forgotten", "inputs.enqueued", "inputs.claimed",
    "inputs.claim_abandoned", "inputs.cancelled", "inputs.completed", "inputs.turn_interrupted", "inputs.vacuumed",
    "process.registered", "process.event_appended", "process.lease_acquired", "process.lease_renewed",
    "process.lease_released", "process.pruned", "trigger.subscription_registered", "trigger.occurrence_recorded",
    "trigger.delivery_reserved", "trigger.subscriptions_pruned", "effect.started", "effect.completed",
    "effect.failed",
}


@pytest.fixture(scope="module")
def triage(tmp_path_factory):
    """Three turns of session `triage` (runtime A twice, then B); 25 events."""
    path = str(tmp_path_factory.mktemp("describe") / "triage.db")
    debug_store.session_store(path)
    store = eventstore.open(path)
    yield store
    store.close()


def test_domain_events_read_as_sentences(triage):
    lines = {ev.position: describe(ev) for ev in triage.read_all()}
    assert lines[1] == "session triage created (generation 1, name 'triage session', model model-1)"
    assert lines[2] == "lease on triage acquired by runtime-a/inc-1 (fence 1, ttl 30s)"
    assert lines[21].startswith("batch qwb:") and "claimed by runtime-b/inc-7 generation 3 (claim qwc:3:1" in lines[21]
    assert lines[22] == "1 input on triage claimed for the next turn by runtime-b/inc-7 generation 3 (claim tic:3:1)"
    assert lines[23] == ("triage committed revision 3: 2 nodes added (user: 'question 2'; assistant: 'answer 2'), "
                         "leaf a2, 160 tokens used")
    assert lines[25] == "1 input on triage consumed (claim tic:3:1)"


def test_raw_field_maps_read_like_decoded_events(triage):
    decoded = [describe(ev) for ev in triage.read_all()]
    raw = [describe(ev) for ev in triage.read_all(raw=True)]
    assert raw == decoded


def test_every_domain_event_type_has_a_renderer_of_its_own():
    assert DOMAIN_TYPES <= set(describe_module.registered_types())


def test_an_unknown_type_reads_as_its_fields():
    ev = RecordedEvent(1, "custom", 1, "custom.thing", 1, 0, {"a": 1, "b": "text", "c": {"deep": [1, 2, 3, 4]}})
    assert describe(ev) == "a=1, b='text', c={deep: [1, 2, 3, … 4 in all]}"


def test_a_failing_renderer_falls_back_to_the_fields(monkeypatch):
    def broken(e, ev):
        raise AttributeError("a field was renamed")

    monkeypatch.setitem(describe_module._RENDERERS, "debugtest.note", broken)
    ev = RecordedEvent(1, "notes", 1, "debugtest.note", 1, 0, debug_store.Note("hello"))
    assert describe(ev) == "text='hello', ref=None"


def test_purged_and_undecoded_payloads_say_so():
    assert "purged" in describe(RecordedEvent(1, "s", 1, "session.created", 1, 0, None))
    assert describe(RecordedEvent(1, "s", 1, "session.created", 1, 0, UNDECODED)) == "(payload not decoded)"


def test_control_characters_never_reach_the_terminal():
    ev = RecordedEvent(1, "notes", 1, "debugtest.note", 1, 0, debug_store.Note("\x1b[31mred\nline"))
    text = describe(ev)
    assert "\x1b" not in text and "\n" not in text and "red" in text


def test_long_values_fit_on_one_clipped_line():
    ev = RecordedEvent(1, "x", 1, "custom.long", 1, 0, {f"field{i}": "y" * 40 for i in range(30)})
    text = describe(ev, width=120)
    assert len(text) == 120 and text.endswith("…")


def test_ids_with_long_hex_tails_keep_a_readable_prefix():
    assert short("qwb:" + "ab12" * 16) == "qwb:ab12ab12…"
    assert short("s1:runtime-a:inc-1") == "s1:runtime-a:inc-1"


def test_segment_handover_puts_and_deletes_read_as_sentences(tmp_path):
    with eventstore.open(str(tmp_path / "h.db")) as store:
        procs = store.processes
        procs.register(registration("p"))
        for n in (0, 1, 2, 7, 7, 8):  # the second 7 is an identical repeat: nothing written
            procs.put_handover("p", n, {"segment": n})
        procs.delete_handovers("p")
        lines = [describe(ev) for ev in store.read_stream(process_stream("p"))][1:]
        raw = [describe(ev) for ev in store.read_stream(process_stream("p"), raw=True)][1:]
    payload = {n: handover_hash({"segment": n})[:8] + "…" for n in (0, 1, 2, 7, 8)}
    assert lines == [
        f"process p handed over segment 0 (payload {payload[0]})",
        f"process p handed over segment 1 (payload {payload[1]})",
        f"process p handed over segment 2 (payload {payload[2]}), dropping segment 0",
        f"process p handed over segment 7 (payload {payload[7]}), dropping segments 1, 2",
        f"process p handed over segment 8 (payload {payload[8]})",
        "process p: 2 segment handovers deleted",
    ]
    assert raw == lines


# --- diffs --------------------------------------------------------------------------------------


def test_a_diff_tells_the_lease_handover_and_the_nodes_added(triage):
    d = diff(triage, 9, 25, ["session:triage"], cache=False)
    assert d.facts[0] == "lease on session triage moved from runtime-a/inc-1 (fence 1) to runtime-b/inc-7 (fence 3)"
    assert "4 nodes added to session triage (revision 1 -> 3, leaf a0 -> a2)" in d.facts
    assert "queue of session triage: 2 enqueued, 2 claims, 2 completions; 0 -> 0 batches open" in d.facts
    assert d.events_total == 16 and [e.position for e in d.events] == list(range(10, 26))
    changed = {t.table: t for t in d.tables}
    assert changed["lease_sessions"].changed == 1 and changed["inputs_pending"].added == 2


def test_a_diff_tells_a_release_and_a_deletion(tmp_path):
    path = str(tmp_path / "s.db")
    clock = debug_store.session_store(path)
    with eventstore.open(path, clock=clock) as store:
        start = store.last_position()
        lease = store.leases.claim("triage", debug_store.RUNTIME_B, 30_000).lease  # B still holds it: re-entry
        store.leases.release(lease.fence)
        released = store.last_position()
        store.sessions.delete("triage")
        facts = diff(store, start, released).facts
        assert facts == ("lease on session triage released by runtime-b/inc-7 (fence 3, kept)",)
        gone = diff(store, released, store.last_position()).facts
        assert "session triage active -> deleted" in gone
        assert "lease state of session triage wiped (the session was deleted or purged)" in gone


def test_a_diff_runs_forwards_only(triage):
    with pytest.raises(InvalidArgument, match="after to_position"):
        diff(triage, 10, 9)
    assert diff(triage, 12, 12).facts == () and diff(triage, 12, 12).tables == ()


@event("debugtest.widget_made")
class WidgetMade:
    """A widget of the tests' own domain appeared."""

    widget_id: str


@event("debugtest.widget_done")
class WidgetDone:
    """A widget was finished."""

    widget_id: str


def _widgets() -> Projection:
    p = Projection(name="widgets", version=1, tables=("widgets_items",), ddl=(
        "CREATE TABLE IF NOT EXISTS widgets_items (widget_id TEXT PRIMARY KEY, status TEXT NOT NULL) WITHOUT ROWID",))
    p.on(WidgetMade)(lambda db, ev: db.execute("INSERT INTO widgets_items VALUES (?, 'made')", (ev.data.widget_id,)))
    p.on(WidgetDone)(lambda db, ev: db.execute("UPDATE widgets_items SET status = 'done' WHERE widget_id = ?",
                                               (ev.data.widget_id,)))
    return p


def test_a_domain_this_code_does_not_know_shows_up_in_replays_and_diffs(tmp_path):
    with eventstore.open(str(tmp_path / "w.db"), projections=[*PROJECTIONS.all(), _widgets()]) as store:
        store.append("widget:w1", [WidgetMade("w1")])
        store.append("widget:w2", [WidgetMade("w2")])
        store.append("widget:w1", [WidgetDone("w1")])
        summary = {t.table: t for t in state_at(store, cache=False).tables}
        assert summary["widgets_items"].rows == 2
        assert summary["widgets_items"].groups == {"done": 1, "made": 1}
        d = diff(store, 1, 3, cache=False)
        assert d.facts == ("widgets_items (w1): made -> done", "widgets_items (w2): (new) -> made")
        rows = {t.table: t for t in d.tables}["widgets_items"]
        assert (rows.added, rows.changed, rows.removed) == (1, 1, 0)
        assert rows.examples == ("~ (w1): status made -> done", "+ (w2)")


def test_forgotten_trigger_occurrences_read_as_a_sentence():
    from eventstore.triggers import OccurrencesForgotten

    ev = RecordedEvent(9, "triggers:maintenance", 1, "trigger.occurrences_forgotten", 1, 5_000,
                       OccurrencesForgotten(older_than_ms=1_000, forgotten=2, at_ms=5_000))
    assert describe(ev) == ("occurrence retention: 2 occurrences ingested before 1970-01-01T00:00:01.000Z "
                            "forgotten (their idempotency keys with them)")


def test_a_prune_by_name_reads_as_a_sentence():
    """`trigger.subscriptions_pruned` (the receipt of PruneSubscriptions) says what it tombstoned."""
    from eventstore.triggers import SubscriptionsPruned

    data = SubscriptionsPruned("session:s1", "op-1", "h", ("a", "b", "c"), ("a",), ("sub-1",), (2,), (1,),
                               5_000)
    ev = RecordedEvent(9, "trigger-owner:session:s1", 1, "trigger.subscriptions_pruned", 1, 5_000, data)
    assert describe(ev) == "trigger prune by name in session:s1: 1 subscription tombstoned, of 3 keys named"
