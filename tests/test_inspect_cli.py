"""The debugging commands: replay, diff, why, export, import.

The walkthrough of docs/debugging.md runs as a test: its first ```python block builds the
store, then every `$ eventstore ...` line of its ```console blocks runs, in order, and the
lines shown under it must appear in its output, in order (`...` stands for anything).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

import eventstore
from eventstore.cli import main
from eventstore.debug.export import export_to_path
from tests import debug_store
from tests.strategies import edit_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "debugging.md")


def doc_blocks(lang: str) -> list[str]:
    """The ```lang blocks of docs/debugging.md, in order."""
    with open(DOC, encoding="utf-8") as fh:
        return re.findall(rf"^```{lang}\n(.*?)^```", fh.read(), flags=re.S | re.M)


def console_steps() -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) for every `$ eventstore` line of the console blocks."""
    steps: list[tuple[str, list[str]]] = []
    for block in doc_blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip() and steps:
                steps[-1][1].append(line)
    return steps


def matches(expected: list[str], output: list[str]) -> str | None:
    """None when the expected lines appear in the output in order; else the first missing one."""
    i = 0
    for want in expected:
        if want.strip() == "...":
            continue
        pattern = re.compile("^" + ".*".join(re.escape(part) for part in want.split("...")) + "$")
        while i < len(output) and not pattern.match(output[i]):
            i += 1
        if i == len(output):
            return want
        i += 1
    return None


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_debugging_walkthrough_runs_as_documented(tmp_path, monkeypatch, capsys):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    built = subprocess.run([sys.executable, "-c", doc_blocks("python")[0]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == "25"
    monkeypatch.chdir(tmp_path)
    steps = console_steps()
    assert len(steps) >= 8 and {s.split()[1] for s, _ in steps} >= {"replay", "diff", "why", "export", "import"}
    for command, expected in steps:
        argv = shlex.split(command)
        assert argv[0] == "eventstore"
        code, out, err = run(capsys, *argv[1:])
        assert code == 0, f"{command}: exit {code}: {err}"
        missing = matches(expected, (out + err).splitlines())
        assert missing is None, f"{command}: the documented line {missing!r} is not in the output:\n{out}{err}"


@pytest.fixture
def triage(tmp_path):
    """docs/debugging.md's store (three turns of `triage`), built by the test helpers."""
    path = str(tmp_path / "debug.db")
    debug_store.session_store(path)
    return path


def test_replay_json_gives_the_lease_and_head_of_a_past_position(triage, capsys):
    code, out, _ = run(capsys, "replay", triage, "--at", "17", "--stream", "session:triage", "--json")
    assert code == 0
    state = json.loads(out)
    assert state["position"] == 17 and state["streams"] == ["session:triage"]
    session = state["sessions"][0]
    assert session["lease"] == {"holder": "runtime-a/inc-1", "fencing_token": 2,
                                "expires_at_ms": debug_store.START_MS + 120_000 + 30_000, "live": True}
    assert session["head"] == {"revision": 2, "leaf_node_id": "a1", "live_nodes": 4}
    assert session["inputs"] == {"completed": 2}


def test_replay_beyond_the_end_of_the_log_exits_2_saying_where_it_ends(triage, capsys):
    code, _, err = run(capsys, "replay", triage, "--at", "26")
    assert code == 2 and "beyond the end of the log (25)" in err


def test_diff_json_carries_facts_events_and_changed_tables(triage, capsys):
    code, out, _ = run(capsys, "diff", triage, "--from", "0", "--to", "9", "--json")
    assert code == 0
    d = json.loads(out)
    assert "session triage created (generation 1, active)" in d["facts"]
    assert "lease on session triage acquired by runtime-a/inc-1 (fence 1)" in d["facts"]
    assert d["events_total"] == 9 and d["events"][0]["type"] == "session.created"
    assert {t["table"] for t in d["tables"]} >= {"sessions_index", "lease_sessions", "graph_heads"}


def test_diff_backwards_exits_2(triage, capsys):
    code, _, err = run(capsys, "diff", triage, "--from", "9", "--to", "3")
    assert code == 2 and "swap them" in err


def test_why_shows_the_event_its_command_and_its_neighbours(triage, capsys):
    code, out, _ = run(capsys, "why", triage, "--stream", "session:triage", "--version", "15", "--json")
    assert code == 0
    r = json.loads(out)
    assert r["event"]["type"] == "session.committed" and r["event"]["data"]["revision"] == 2
    assert len(r["event"]["hash"]) == 64
    # The turn commit is one command: the commit, the queue batch and the input it consumed
    # (the lease claim, enqueues and claims before it are commands of their own, all in
    # the same millisecond of the manual clock).
    assert [e["type"] for e in r["command"]] == ["session.committed", "queue.completed", "inputs.completed"]
    assert r["command_span"] == [15, 17] and r["command_basis"] == "command marks (exact)"
    assert [e["version"] for e in r["before"]] == [12, 13, 14] and [e["version"] for e in r["after"]] == [16, 17, 18]


def test_why_of_rows_without_command_marks_groups_by_stream_and_millisecond(triage, capsys):
    edit_file(triage, "UPDATE events SET flags = flags & 1")  # rows as layout 1 wrote them
    code, out, _ = run(capsys, "why", triage, "--stream", "session:triage", "--version", "15", "--json")
    r = json.loads(out)
    assert code == 0 and r["command_basis"].startswith("heuristic")
    assert [e["position"] for e in r["command"]] == list(range(10, 18))  # one millisecond: the whole turn


def test_why_of_a_missing_version_exits_2_naming_it(triage, capsys):
    code, _, err = run(capsys, "why", triage, "--stream", "session:triage", "--version", "40")
    assert code == 2 and "has no version 40 (it is at version 25)" in err


def test_export_to_standard_output_imports_with_the_same_checkpoint(triage, tmp_path, capsys):
    code, out, err = run(capsys, "export", triage)
    assert code == 0 and "exported 25 events" in err
    assert json.loads(out.splitlines()[0])["kind"] == "header"
    dump = tmp_path / "dump.jsonl"
    dump.write_text(out)
    code, out, _ = run(capsys, "import", str(dump), str(tmp_path / "copy.db"))
    assert code == 0
    with eventstore.open(triage) as a, eventstore.open(str(tmp_path / "copy.db")) as b:
        assert a.anchor() == b.anchor()
        assert f"anchor {a.anchor()}" in out


def test_import_of_a_tampered_export_exits_2_naming_the_line(triage, tmp_path, capsys):
    with eventstore.open(triage) as store:
        export_to_path(store, str(tmp_path / "dump.jsonl"))
    lines = (tmp_path / "dump.jsonl").read_text().splitlines()
    lines[6] = lines[6].replace('"schema":1', '"schema":2')
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "import", str(tmp_path / "bad.jsonl"), str(tmp_path / "copy.db"))
    assert code == 2 and "line 7:" in err
    assert not os.path.exists(tmp_path / "copy.db")
    code, _, err = run(capsys, "import", str(tmp_path / "missing.jsonl"), str(tmp_path / "copy.db"))
    assert code == 2 and "cannot read the export" in err


def test_a_stream_extract_needs_no_chain_to_import(triage, tmp_path, capsys):
    extract = str(tmp_path / "s.jsonl")
    assert run(capsys, "export", triage, "--stream", "session:triage", "--output", extract)[0] == 0
    code, _, err = run(capsys, "import", extract, str(tmp_path / "refused.db"))
    assert code == 2 and "--no-chain" in err
    code, out, _ = run(capsys, "import", extract, str(tmp_path / "fresh.db"), "--no-chain")
    assert code == 0 and "appended afresh" in out


def test_import_with_an_anchor_off_the_chain_exits_2(triage, tmp_path, capsys):
    with eventstore.open(triage) as store:
        export_to_path(store, str(tmp_path / "dump.jsonl"))
    code, _, err = run(capsys, "import", str(tmp_path / "dump.jsonl"), str(tmp_path / "copy.db"),
                       "--anchor", "3:" + "0" * 64)
    assert code == 2 and "the anchor says hash" in err
