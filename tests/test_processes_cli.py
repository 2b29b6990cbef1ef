"""`eventstore processes`, `eventstore process` and `eventstore prune`."""

from __future__ import annotations

import json

import pytest

import eventstore
from eventstore.cli import EXIT_ERROR, EXIT_OK, main
from eventstore.cli.processes import parse_date
from eventstore.processes import (
    AppendEventRequest, Disposition, EventTypeSpec, ExternalInput, ExternalOwner, HandleDescriptor, Pointer,
    ProcessRegistration, Provenance, SessionScope, Success, ToolCallInput, WakeSpec, process_stream,
)
from eventstore.leases import LeaseOwner

DAY_MS = 86_400_000
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Tables are drawn by rich, which folds cells to the terminal width (80 when piped)."""
    monkeypatch.setenv("COLUMNS", "240")


@pytest.fixture
def populated(tmp_path):
    """A store with a completed tool call (2023-11-14) and a running external process (a day later)."""
    path = str(tmp_path / "cli.db")
    clock = eventstore.ManualClock(T0)
    with eventstore.open(path, clock=clock) as store:
        procs = store.processes
        wake = EventTypeSpec("tool.progress", wake=WakeSpec(Pointer("/message")))
        procs.register(ProcessRegistration("tool-1", ToolCallInput("search", "c1", {"q": "refunds"}),
                                           Disposition.RERUNNABLE, Provenance(SessionScope("s1")), (wake,),
                                           env_ref="env:1", wake_target=SessionScope("s1")))
        procs.grant(SessionScope("s1"), "tool-1", HandleDescriptor("tool", "search"))
        procs.append_event("tool-1", AppendEventRequest("tool.progress", {"message": "half way"}))
        lease = procs.claim_lease("tool-1", LeaseOwner("worker", "i1"), 60_000).lease
        procs.complete_with_lease(lease, Success({"hits": 3}))
        clock.advance(DAY_MS)
        procs.register(ProcessRegistration("ext-1", ExternalInput({"job": 7}), Disposition.EXTERNALLY_OWNED,
                                           Provenance(SessionScope("s2"))))
        procs.claim_lease("ext-1", LeaseOwner("watcher", "i9"), 60_000)
    return path


def test_processes_lists_with_filters(populated, capsys):
    assert main(["processes", populated]) == EXIT_OK
    out = capsys.readouterr().out
    assert "tool-1" in out and "ext-1" in out and "completed" in out
    assert main(["processes", populated, "--status", "running", "--json"]) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["process_id"] for r in rows] == ["ext-1"] and rows[0]["status"] == "running"
    assert main(["processes", populated, "--scope", "session:s1", "--json"]) == EXIT_OK
    assert [json.loads(line)["process_id"] for line in capsys.readouterr().out.splitlines()] == ["tool-1"]


def test_process_shows_record_events_grants_and_lease(populated, capsys):
    assert main(["process", populated, "tool-1"]) == EXIT_OK
    out = capsys.readouterr().out
    for text in ("status:       completed", "tool.progress", "process.completed", "session:s1", "search",
                 "lease:        free (fencing token 1)"):
        assert text in out
    assert main(["process", populated, "ext-1", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["record"]["status"] == "running" and doc["events"] == [] and doc["grants"] == []
    assert doc["lease"]["holder"]["owner"]["owner_id"] == "watcher"


def test_process_unknown_id_is_an_error(populated, capsys):
    assert main(["process", populated, "nope"]) == EXIT_ERROR
    assert "unknown process 'nope'" in capsys.readouterr().err


def test_prune_dry_run_then_prune(populated, capsys):
    assert main(["prune", populated, "--before", "2023-11-15", "--dry-run"]) == EXIT_OK
    assert "would prune 1 terminal process(es)" in capsys.readouterr().out
    with eventstore.open(populated) as store:
        assert store.processes.get("tool-1") is not None
    assert main(["prune", populated, "--before", "2023-11-15T00:00:00Z", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["pruned_processes"] == ["tool-1"] and report["pruned_events"] == 2
    with eventstore.open(populated) as store:
        assert store.processes.get("tool-1") is None and store.processes.get("ext-1") is not None
        assert store.verify().ok
        assert all(e.data is None for e in store.read_stream(process_stream("tool-1")))
    assert main(["prune", populated, "--before", "2023-11-15"]) == EXIT_OK
    assert "pruned 0 terminal process(es)" in capsys.readouterr().out


def test_prune_cutoff_is_strict_and_filters_by_status(populated, capsys):
    cutoff = str(T0)  # tool-1 was last changed exactly at T0: not before it
    assert main(["prune", populated, "--before", cutoff, "--dry-run", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["pruned_processes"] == []
    assert main(["prune", populated, "--before", "2030-01-01", "--status", "failed", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["pruned_processes"] == []


def test_prune_rejects_a_bad_date(populated, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prune", populated, "--before", "last tuesday"])
    assert exc.value.code == 2
    assert "is not a date" in capsys.readouterr().err


def test_parse_date_accepts_dates_times_offsets_and_milliseconds():
    assert parse_date("2023-11-15") == 1_700_006_400_000
    assert parse_date("2023-11-15T00:00:00Z") == 1_700_006_400_000
    assert parse_date("2023-11-15T02:00:00+02:00") == 1_700_006_400_000
    assert parse_date("1700006400000") == 1_700_006_400_000


def test_completion_without_lease_shows_authority_in_json(tmp_path, capsys):
    path = str(tmp_path / "auth.db")
    with eventstore.open(path) as store:
        store.processes.register(ProcessRegistration("x", ExternalInput(), Disposition.EXTERNALLY_OWNED,
                                                     Provenance(SessionScope("s"))))
        store.processes.complete("x", Success(1), ExternalOwner("session:s"))
    assert main(["process", path, "x", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["events"][0]["payload"]["completion_authority"] == {"authority": "external_owner",
                                                                   "granted_to": "session:s"}


def test_process_recent_shows_only_the_newest_events_and_the_handovers(tmp_path, capsys):
    path = str(tmp_path / "segments.db")
    with eventstore.open(path, clock=eventstore.ManualClock(T0)) as store:
        procs = store.processes
        procs.register(ProcessRegistration("job", ExternalInput(), Disposition.EXTERNALLY_OWNED,
                                           Provenance(SessionScope("s1")), (EventTypeSpec("job.line"),)))
        for i in range(4):
            procs.append_event("job", AppendEventRequest("job.line", {"line": f"line-{i}"}))
        for n in range(3):
            procs.put_handover("job", n, {"segment": n, "engine_state": bytes([n])})
    assert main(["process", path, "job", "--recent", "2"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "the newest 2 of 4 event(s)" in out and "line-3" in out and "line-1" not in out
    assert "2 segment handover(s)" in out and '"segment":2' in out
    assert main(["process", path, "job", "--recent", "1", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert [e["sequence"] for e in doc["events"]] == [4]
    assert [(h["segment_ordinal"], h["payload"]["engine_state"]) for h in doc["handovers"]] == [
        (1, {"$bytes": "AQ=="}), (2, {"$bytes": "Ag=="})]
    assert main(["process", path, "job", "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)["events"]) == 4


def test_process_recent_must_be_a_whole_number(populated, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["process", populated, "tool-1", "--recent", "-1"])
    assert exc.value.code == 2
    assert "must be at least 0" in capsys.readouterr().err
