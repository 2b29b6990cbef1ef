"""The trigger store contract (law 87) on the SQLite backend, rebuilding a log written before
receipts were keyed by owner scope, and the trigger CLI commands."""

from __future__ import annotations

import json

import attrs
import pytest

import eventstore
from eventstore.cli import main
from eventstore.testing.contract.triggers import PUSH, TriggerContract, push
from eventstore.testing.helpers import assert_consistent
from eventstore.triggers import (
    DeleteSubscription, OperationIdConflict, RegisterSubscription, SubscriptionNotFound,
    SubscriptionRegistered, TriggerDefinition, UpdateSubscription,
)
from tests import strategies as gen


class TestTriggerContractSqlite(TriggerContract):
    """Every trigger law, run against SQLite (the `backend` fixture of tests/conftest.py)."""


def test_cli_triggers_lists_subscriptions_with_state_revision_and_deliveries(backend, capsys):
    store = backend.store
    store.triggers.execute("op-1", RegisterSubscription("host", "ci", PUSH))
    store.triggers.execute("op-2", RegisterSubscription("session:s1", "watch",
                                                        TriggerDefinition("webhook", None, "audit")))
    store.triggers.ingest(push("delivery-1"))
    store.triggers.execute("op-3", DeleteSubscription("session:s1", "watch", 1))
    store.close()
    assert main(["triggers", backend.path, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["owner_scope"], r["state"], r["revision"], r["deliveries"]) for r in rows] == [
        ("host", "enabled", 1, 1), ("session:s1", "deleted", 2, 1)]
    assert rows[0]["definition"]["input_template"] == {"branch": "main"}
    assert main(["triggers", backend.path, "--scope", "host"]) == 0
    out = capsys.readouterr().out
    assert "1 subscription(s), 1 occurrence(s) ingested" in out and "run-ci" in out


def test_cli_triggers_on_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["triggers", str(tmp_path / "nope.db")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_cli_forget_occurrences_dry_run_counts_without_writing_then_forgets(backend, capsys):
    store, clock = backend.store, backend.clock
    store.triggers.ingest(push("delivery-1"))
    clock.advance(1)
    cutoff = clock()
    store.close()
    assert main(["forget-occurrences", backend.path, "--older-than", str(cutoff), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dry_run": True, "older_than_ms": cutoff, "forgotten": 1}
    with backend.open() as reopened:
        assert reopened.triggers.occurrence("delivery-1") is not None
    assert main(["forget-occurrences", backend.path, "--older-than", str(cutoff)]) == 0
    assert "forgot 1 occurrence(s) ingested before" in capsys.readouterr().out
    with backend.open() as reopened:
        assert reopened.triggers.occurrence("delivery-1") is None and reopened.verify_projections().ok


def test_cli_forget_occurrences_refuses_a_future_cutoff_in_one_line(backend, capsys):
    backend.store.close()
    assert main(["forget-occurrences", backend.path, "--older-than", "2999-01-01"]) == 2
    err = capsys.readouterr().err
    assert "in the future" in err and "Traceback" not in err


def _write_legacy_log(path: str, clock) -> None:
    """A log as code before scoped receipts wrote it: `trigger.command_answered` at schema 1,
    with no owner scope (receipts were keyed by operation id alone)."""
    legacy = eventstore.EventRegistry()
    legacy.register(SubscriptionRegistered, "trigger.subscription_registered")

    @eventstore.event("trigger.command_answered", schema=1, registry=legacy)
    class CommandAnswered:
        operation_id: str
        request_hash: str
        command: str
        subscription_id: str | None
        outcome: str
        revision: int | None
        incarnation: int | None
        conflict_code: str | None
        conflict_message: str | None
        expected_revision: int | None
        actual_revision: int | None
        at_ms: int

    # The events themselves come from today's code (so their hashes are the real ones);
    # each answer is then written as schema 1, without its owner scope.
    with eventstore.open(path + ".scratch", clock=clock, synchronous="normal") as scratch:
        register_cmd = RegisterSubscription("host", "ci", PUSH)
        scratch.triggers.execute("op-reg", register_cmd)
        scratch.triggers.execute("op-same", register_cmd)
        with pytest.raises(SubscriptionNotFound):
            scratch.triggers.execute("op-lost", UpdateSubscription("session:s1", "gone", 1, PUSH))
        recorded = [(e.stream, e.data) for e in scratch.read_all() if e.type.startswith("trigger.")]
    with gen.open_store(path, registry=legacy, clock=clock) as old:
        for stream, data in recorded:
            if isinstance(data, SubscriptionRegistered):
                old.append(stream, [data])
            else:
                fields = attrs.asdict(data, recurse=False)
                del fields["owner_scope"]
                old.append(stream, [CommandAnswered(**fields)])


def test_a_log_written_before_scoped_receipts_rebuilds_to_the_new_shape(tmp_path, clock):
    """Old `trigger.command_answered` events upcast and rebuild into receipts keyed by scope:
    the scope comes from the subscription the receipt is about; a receipt about a
    subscription the log never registered keeps answering for its id in every scope."""
    path = str(tmp_path / "legacy.db")
    _write_legacy_log(path, clock)
    with eventstore.open(path, clock=clock, rebuild_stale=True, synchronous="normal") as store:
        t = store.triggers
        answers = [e.data for e in store.read_all() if e.type == "trigger.command_answered"]
        assert [a.owner_scope for a in answers] == [None, None]
        same = t.receipt("host", "op-same")
        assert (same.owner_scope, same.outcome) == ("host", "unchanged")
        assert t.receipt("session:s9", "op-same") is None  # its scope was recovered: no longer global
        assert t.execute("op-same", RegisterSubscription("host", "ci", PUSH)).replayed
        assert t.execute("op-same", RegisterSubscription("session:s9", "ci", PUSH)).outcome == "registered"
        lost = t.receipt("session:s1", "op-lost")
        assert (lost.owner_scope, lost.conflict_code) == ("", "subscription_not_found")
        with pytest.raises(SubscriptionNotFound) as replayed:
            t.execute("op-lost", UpdateSubscription("session:s1", "gone", 1, PUSH))
        assert replayed.value.replayed
        with pytest.raises(OperationIdConflict):  # unknown scope: conservative, as when it was written
            t.execute("op-lost", RegisterSubscription("session:s2", "x", PUSH))
        assert_consistent(store)


def test_cli_prune_subscriptions_tombstones_named_keys_and_replays_by_operation_id(backend, capsys):
    """`eventstore prune-subscriptions DB KEY... --scope S --operation-id OP` is PruneSubscriptions."""
    store = backend.store
    for key in ("a", "b"):
        store.triggers.execute(f"op-{key}", RegisterSubscription("session:s1", key, PUSH))
    store.close()
    scoped = ["--scope", "session:s1", "--operation-id", "cli-1"]
    args = ["prune-subscriptions", backend.path, "a", "zz", *scoped]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["outcome"], out["replayed"], [t["subscription_key"] for t in out["tombstoned"]]) == (
        "pruned", False, ["a"])
    assert main(args) == 0
    assert "replayed" in capsys.readouterr().out
    assert main(["prune-subscriptions", backend.path, "b", *scoped]) == 2
    err = capsys.readouterr().err
    assert "cli-1" in err and len(err.strip().splitlines()) == 1
    with backend.open() as reopened:
        assert [s.state for s in reopened.triggers.list()] == ["deleted", "enabled"]


def test_cli_prune_trigger_history_drops_old_receipts_and_tombstones(backend, capsys):
    """`eventstore prune-trigger-history DB --older-than DATE` is PruneTriggerHistory."""
    store, clock = backend.store, backend.clock
    store.triggers.execute("op-a", RegisterSubscription("host", "a", PUSH))
    store.triggers.execute("op-del", DeleteSubscription("host", "a", 1))
    clock.advance(1)
    cutoff = clock()
    store.close()
    assert main(["prune-trigger-history", backend.path, "--older-than", str(cutoff), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["pruned_subscriptions"], out["pruned_receipts"]) == (1, 2)
    assert main(["prune-trigger-history", backend.path, "--older-than", "2999-01-01"]) == 2
    assert "in the future" in capsys.readouterr().err
    with backend.open() as reopened:
        assert reopened.triggers.list() == []
