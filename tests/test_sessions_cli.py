"""`eventstore sessions` and `eventstore leases`, and the sessions demo chapter."""

from __future__ import annotations

import json

import pytest

import eventstore
from eventstore import demo
from eventstore.cli import EXIT_ERROR, EXIT_OK, main
from eventstore.leases import Acquired, LeaseOwner
from eventstore.sessions import SessionMeta, SessionRelation


@pytest.fixture
def populated(tmp_path):
    """A store with an active session holding a live lease, a released one, an expired one,
    and a deleted session. Uses the system clock, as the CLI does."""
    path = str(tmp_path / "cli.db")
    with eventstore.open(path) as store:
        store.sessions.create("alpha", SessionMeta("Alpha", "model-a", "/srv/a"))
        store.sessions.create("beta", SessionMeta("Beta", "model-b", None, SessionRelation("alpha", "subagent")))
        store.sessions.create("gamma")
        store.sessions.create("doomed")
        live = store.leases.claim("alpha", LeaseOwner("worker-1", "inc-1"), 3_600_000)
        assert isinstance(live, Acquired)
        done = store.leases.claim("beta", LeaseOwner("worker-2", "inc-1"), 3_600_000)
        store.leases.release(done.lease.fence)
        store.leases.claim("gamma", LeaseOwner("worker-3", "inc-1"), 0)
        store.sessions.delete("doomed")
    return path


def test_sessions_prints_a_table_with_status_and_event_counts(populated, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich folds cells to the terminal width
    assert main(["sessions", populated]) == EXIT_OK
    out = capsys.readouterr().out
    for text in ("alpha", "Alpha", "model-a", "subagent", "doomed", "deleted", "4 session(s)"):
        assert text in out


def test_sessions_json_has_one_line_per_session_with_meta_and_activity(populated, capsys):
    assert main(["sessions", populated, "--json"]) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_id = {r["session_id"]: r for r in rows}
    assert sorted(by_id) == ["alpha", "beta", "doomed", "gamma"]
    assert by_id["alpha"]["meta"]["model"] == "model-a" and by_id["alpha"]["event_count"] == 2
    assert by_id["beta"]["meta"]["relation"] == {"parent_session_id": "alpha", "kind": "subagent"}
    assert by_id["beta"]["event_count"] == 3 and by_id["doomed"]["status"] == "deleted"
    assert all(isinstance(r["last_activity_ms"], int) for r in rows)


def test_sessions_status_filter_keeps_only_that_status(populated, capsys):
    assert main(["sessions", populated, "--json", "--status", "deleted"]) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["session_id"] for r in rows] == ["doomed"]


def test_leases_reports_live_released_and_expired_leases(populated, capsys):
    assert main(["leases", populated, "--json"]) == EXIT_OK
    rows = {r["session_id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(rows) == ["alpha", "beta", "gamma"]  # the deleted session's lease was wiped
    assert rows["alpha"]["status"] == "live" and rows["alpha"]["holder"]["owner"]["owner_id"] == "worker-1"
    assert rows["beta"]["status"] == "released" and rows["beta"]["holder"] is None
    assert rows["beta"]["fencing_token"] == 1
    assert rows["gamma"]["status"] == "expired"


def test_leases_table_and_session_filter(populated, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["leases", populated, "--session", "alpha"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "worker-1" in out and "live" in out and "worker-3" not in out and "1 lease(s)" in out


def test_cli_errors_are_one_line_with_exit_2(populated, tmp_path, capsys):
    assert main(["sessions", str(tmp_path / "missing.db")]) == EXIT_ERROR
    assert "no such file" in capsys.readouterr().err
    assert main(["leases", populated, "--session", ""]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("eventstore leases: error:") and "session_id" in err


def test_the_demo_chapter_claims_renews_bounces_a_second_owner_releases_and_reclaims_from_a_crashed_one(tmp_path):
    chapters = {title: fn for _order, title, fn in demo._CHAPTERS}
    lines: list[str] = []
    with eventstore.open(str(tmp_path / "demo.db")) as store:
        chapters["sessions and execution leases"](store, lines.append)
        text = "\n".join(lines)
        assert "acquired the lease: fencing token 1" in text and "renewed" in text
        assert "Busy" in text and "released=True" in text
        # fence 2: the worker process that crashed holding it; fence 3: the reclaim.
        assert "claimed the lease and crashed" in text and "plain claim: Busy" in text
        assert "reclaimed it" in text and "fencing token 3" in text
        (state,) = store.leases.list()
        assert state.holder is None and state.fencing_token == 3
        assert store.verify().ok
