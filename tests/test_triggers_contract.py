"""The trigger store contract (law 87) on the SQLite backend, and the `eventstore triggers` CLI."""

from __future__ import annotations

import json

from eventstore.cli import main
from eventstore.triggers import DeleteSubscription, RegisterSubscription, TriggerDefinition
from tests.contract.triggers import PUSH, TriggerContract, push


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
