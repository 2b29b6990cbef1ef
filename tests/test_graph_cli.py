"""`eventstore show`, `eventstore gc` and `eventstore vacuum`, and the runtime-commit demo chapter."""

from __future__ import annotations

import base64
import json

import pytest

import eventstore
from eventstore import demo
from eventstore.cli import EXIT_ERROR, EXIT_OK, main
from eventstore.commits import RuntimeCommit
from eventstore.commits import (
    Checkpoint, EventPayload, GraphAppend, ModelConfig, PluginPayload, SessionNode, TurnState, UsageDelta,
)
from eventstore.inputs import ActiveTurn, TurnInputDraft
from eventstore.leases import Acquired, LeaseOwner


def msg(nid: str, parent: str | None, role: str, text: str) -> SessionNode:
    return SessionNode(nid, EventPayload({"role": role, "parts": [{"kind": "text", "content": text}]}), parent,
                       timestamp="2026-03-02T09:00:00Z")


@pytest.fixture
def conversation(tmp_path):
    """A session with two turns and an edited second user message (a branch); returns
    (path, position after the first turn). Uses the system clock, as the CLI does."""
    path = str(tmp_path / "cli.db")
    with eventstore.open(path) as store:
        store.sessions.create("chat")
        store.sessions.create("quiet")
        got = store.leases.claim("chat", LeaseOwner("runtime", "i1"), 3_600_000)
        assert isinstance(got, Acquired)
        fence = got.lease.fence
        store.sessions.commit(RuntimeCommit(
            "chat", fence, GraphAppend((msg("u1", None, "user", "What is the capital of France?"),
                                        msg("a1", "u1", "assistant", "Paris.")), "a1"),
            config=ModelConfig("anthropic", "claude-x"), checkpoint=Checkpoint(TurnState(1), tool_state=b"t1"),
            usage_deltas=(UsageDelta("turn", "claude-x", 120, 4),)))
        first = store.last_position()
        store.sessions.commit(RuntimeCommit(
            "chat", fence, GraphAppend((msg("u2", "a1", "user", "And of Italy?"),
                                        msg("a2", "u2", "assistant", "Rome."),
                                        SessionNode("p1", PluginPayload("memory", {"fact": "likes capitals"}), "a2")),
                                       "p1"),
            checkpoint=Checkpoint(TurnState(2), tool_state=b"t2")))
        store.sessions.commit(RuntimeCommit(
            "chat", fence, GraphAppend((msg("u2b", "a1", "user", "And of Spain?"),
                                        msg("a2b", "u2b", "assistant", "Madrid.")), "a2b"),
            checkpoint=Checkpoint(TurnState(2), tool_state=b"t2b"), usage_deltas=(UsageDelta("turn", "claude-x", 150, 3),)))
    return path, first


def test_show_prints_the_head_and_the_graph_as_a_tree_with_the_active_path_marked(conversation, capsys,
                                                                                   monkeypatch):
    path, _first = conversation
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", path, "chat"]) == EXIT_OK
    out = capsys.readouterr().out
    for text in ("revision", "3", "anthropic / claude-x", "turn 2, tool state 3 B", "in 270, out 7",
                 "7 live node(s)", "◆ a2b", "● u2b", "○ u2", "○ p1", "[plugin memory]", "user: And of Spain?"):
        assert text in out, text
    lines = out.splitlines()
    indent = {n: next(line for line in lines if f" {n} " in line).index(n) for n in ("u1", "a1", "u2", "u2b", "a2b")}
    assert indent["u1"] < indent["a1"] < indent["u2"] == indent["u2b"] < indent["a2b"]  # siblings under a1


def test_show_active_path_and_time_travel(conversation, capsys, monkeypatch):
    path, first = conversation
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", path, "chat", "--active-path"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "a2b" in out and "u2b" in out and " u2 " not in out and "p1" not in out
    assert main(["show", path, "chat", "--at", str(first)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"at position {first}" in out and "◆ a1" in out and "u2" not in out and "in 120, out 4" in out


def test_show_json_is_the_loaded_session(conversation, capsys):
    path, first = conversation
    assert main(["show", path, "chat", "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["head_revision"] == 3 and data["leaf_node_id"] == "a2b" and data["graph_node_count"] == 7
    assert [n["node_id"] for n in data["nodes"]] == ["u1", "a1", "u2", "a2", "p1", "u2b", "a2b"]
    assert base64.b64decode(data["checkpoint"]["tool_state"]["$bytes"]) == b"t2b"
    assert data["token_ledger"][0]["input"] == 270
    assert main(["show", path, "chat", "--json", "--active-path", "--at", str(first)]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert [n["node_id"] for n in data["nodes"]] == ["u1", "a1"] and data["position"] == first


def test_show_of_a_session_without_commits_and_of_an_unknown_one(conversation, capsys):
    path, _first = conversation
    assert main(["show", path, "quiet"]) == EXIT_OK
    assert "has no commits" in capsys.readouterr().out
    assert main(["show", path, "chat", "--at", "1"]) == EXIT_OK
    assert "has no commits at position 1" in capsys.readouterr().out
    assert main(["show", path, "nobody"]) == EXIT_ERROR
    assert "no session 'nobody'" in capsys.readouterr().err
    assert main(["show", path, "chat", "--at", "999999"]) == EXIT_ERROR
    assert main(["show", path + ".missing", "chat"]) == EXIT_ERROR


def test_gc_dry_run_reports_and_gc_deletes_the_superseded_checkpoints(conversation, capsys):
    path, _first = conversation
    assert main(["gc", path, "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "would delete: 4" in out and "blobs kept: 2" in out  # two superseded manifests and tool states
    with eventstore.open(path) as store:
        assert store.blobs.stats()[0] == 6 and list(store.read_stream("store:gc")) == []
    assert main(["gc", path, "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["deleted_blob_count"] == 4 and report["dry_run"] is False
    assert main(["gc", path]) == EXIT_OK
    assert "deleted: 0" in capsys.readouterr().out
    with eventstore.open(path) as store:
        assert store.blobs.stats()[0] == 2 and len(list(store.read_stream("store:gc"))) == 2


def test_vacuum_removes_tombstoned_nodes_and_terminal_inputs(conversation, capsys):
    path, _first = conversation
    with eventstore.open(path) as store:
        store.sessions.tombstone_nodes("chat", ["u2", "a2"])
        done = store.inputs.enqueue(TurnInputDraft("chat", "stale", ActiveTurn("t0"))).input
        store.inputs.cancel("chat", done.input_id)
    assert main(["vacuum", path, "chat", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {
        "session_id": "chat", "removed_node_count": 2, "removed_pending_turn_input_tombstone_count": 1}
    assert main(["vacuum", path]) == EXIT_OK  # every active session
    out = capsys.readouterr().out
    assert "chat" in out and "quiet" in out and "2 session(s)" in out
    assert main(["vacuum", path, "nobody"]) == EXIT_ERROR


def test_the_demo_chapter_commits_a_branched_conversation_and_time_travels(tmp_path):
    lines: list[str] = []
    with eventstore.open(str(tmp_path / "demo.db")) as store:
        chapter = next(fn for _order, title, fn in demo._CHAPTERS if title.startswith("runtime commits"))
        chapter(store, lines.append)
    text = "\n".join(lines)
    for expected in ("turn 3: committed revision 3", "8 nodes on two branches, the active path has 6",
                     "replayed=True, the original revision 2", "time travel to position", "Actually, pause"):
        assert expected in text, expected
