"""The queued-work contract (laws 28-48 and the store's improvements) on the SQLite backend."""

import json

import eventstore
from eventstore.cli import EXIT_ERROR, EXIT_OK, main
from eventstore.domain.input_events import ActiveTurn
from eventstore.domain.inputs import TurnInputDraft
from eventstore.domain.owners import LeaseOwner
from eventstore.domain.queue import AgentFrameTask, ProcessWake, QueuedWorkDraft, SlotPolicy
from tests.contract.queue import QueueContract


class TestQueueContractSqlite(QueueContract):
    """Every queued-work law, run against SQLite (the `backend` fixture of tests/conftest.py)."""

    # --- the command line (SQLite files) -----------------------------------------------------

    def test_cli_queue_shows_pending_and_claimed_batches_with_owner_and_generation(self, tmp_path, capsys,
                                                                                   monkeypatch):
        path = _cli_store(str(tmp_path / "cli.db"))
        monkeypatch.setenv("COLUMNS", "250")  # rich folds cells to the terminal width
        assert main(["queue", path, "--session", "s1"]) == EXIT_OK
        out = capsys.readouterr().out
        for text in ("claimed", "pending", "runtime-a (inc-1)", "live lease generation 1", "2 batch(es)",
                     "process:p1:event:3:wake", "ProcessWake"):
            assert text in out, text
        assert main(["queue", path, "--session", "s1", "--pending", "--json"]) == EXIT_OK
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["state"] for r in rows] == ["pending"] and rows[0]["claim"] is None

    def test_cli_inputs_and_time_travel(self, tmp_path, capsys, monkeypatch):
        path = _cli_store(str(tmp_path / "cli.db"))
        monkeypatch.setenv("COLUMNS", "250")
        assert main(["inputs", path, "--session", "s1", "--json"]) == EXIT_OK
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["state"], r["input"]) for r in rows] == [("pending_active", {"text": "hi"})]
        assert main(["queue", path, "--session", "s1", "--at", "1", "--json"]) == EXIT_OK
        assert capsys.readouterr().out == ""  # position 1 created the session: no batch yet
        assert main(["queue", path, "--session", "s1", "--at", "2", "--json"]) == EXIT_OK
        assert [json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()] == ["pending"]
        assert main(["queue", path, "--session", "nope"]) == EXIT_OK
        assert "0 batch(es)" in capsys.readouterr().out
        assert main(["queue", str(tmp_path / "missing.db"), "--session", "s1"]) == EXIT_ERROR


def _cli_store(path: str) -> str:
    """A store (system clock, as the CLI uses) with one claimed and one pending batch and an input."""
    with eventstore.open(path) as store:
        store.sessions.create("s1")
        store.queue.enqueue(QueuedWorkDraft.for_wake("s1", ProcessWake("p1", 3, "w")))
        store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", "x"),), slot_policy=SlotPolicy.EXCLUSIVE))
        fence = store.leases.claim("s1", LeaseOwner("runtime-a", "inc-1"), 3_600_000).lease.fence
        store.queue.claim_ready(fence)
        store.inputs.enqueue(TurnInputDraft("s1", {"text": "hi"}, ActiveTurn("t1")))
    return path
