"""The command line as a person uses it: unknown names exit 2 with one line, bad output
paths, `--json` everywhere, help and usage, the `anchor` command and its old name."""

from __future__ import annotations

import io
import json
import os
import warnings

import pytest

import eventstore
from eventstore.cli import main
from tests import debug_store


@pytest.fixture(scope="module")
def triage(tmp_path_factory) -> str:
    """docs/debugging.md's store: session `triage` (stream `session:triage`), 25 events."""
    path = str(tmp_path_factory.mktemp("usability") / "triage.db")
    debug_store.session_store(path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


# --- item 18: an unknown stream or session is an error, not empty output ---------------------------


@pytest.mark.parametrize("argv", [
    ("replay", "{db}", "--stream", "session:nope"),
    ("replay", "{db}", "--stream", "session:triage", "--stream", "session:nope"),
    ("diff", "{db}", "--from", "1", "--stream", "session:nope"),
    ("log", "{db}", "--stream", "session:nope"),
    ("why", "{db}", "--stream", "session:nope", "--version", "1"),
])
def test_an_unknown_stream_exits_2_with_one_line_naming_it(triage, capsys, argv):
    """replay, diff, log --stream and why on a stream with no event: exit 2, one line naming it."""
    code, out, err = run(capsys, *(a.format(db=triage) for a in argv))
    assert_one_line_error(code, err, "no stream 'session:nope'")
    assert out == ""


@pytest.mark.parametrize("command", ["queue", "inputs", "leases"])
def test_an_unknown_session_exits_2_with_one_line_naming_it(triage, capsys, command):
    """queue, inputs and leases --session on a session never created: exit 2, like `show`."""
    code, out, err = run(capsys, command, triage, "--session", "nope")
    assert_one_line_error(code, err, "no session 'nope'")
    assert out == ""


def test_a_known_session_and_stream_still_answer(triage, capsys):
    """The checks only refuse unknown names: the session's queue and its stream's log print."""
    assert run(capsys, "queue", triage, "--session", "triage")[0] == 0
    code, out, _ = run(capsys, "log", triage, "--stream", "session:triage", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2


# --- item 19: export to a directory or into a missing folder ---------------------------------------


def test_export_to_a_directory_exits_2_with_one_line(triage, tmp_path, capsys):
    """`export -o DIR`: one line naming the path, exit 2, no traceback; the directory is untouched."""
    code, out, err = run(capsys, "export", triage, "-o", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path), "is a directory")
    assert os.listdir(tmp_path) == []


def test_export_into_a_missing_folder_exits_2_with_one_line(triage, tmp_path, capsys):
    """`export -o missing/x.jsonl`: one line naming the missing folder, exit 2, nothing created."""
    target = tmp_path / "missing" / "x.jsonl"
    code, out, err = run(capsys, "export", triage, "-o", str(target))
    assert_one_line_error(code, err, "no such directory")
    assert not (tmp_path / "missing").exists()


# --- item 20: --json for verify, import, anchor and rebuild ----------------------------------------


def test_every_command_but_demo_and_export_takes_json():
    """The promise of docs/debugging.md: each subcommand's parser knows --json (export writes JSON lines;
    the viewer's `view` writes an HTML page and `serve` answers JSON over HTTP)."""
    from eventstore.cli import _subparser, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [name for name, sub in commands.items()
               if name not in ("demo", "export", "view", "serve") and "--json" not in sub._option_string_actions]
    assert not missing and len(commands) > 20
    assert _subparser(parser, "verify") is commands["verify"]


def test_verify_json_reports_the_chain_and_the_projections(triage, capsys):
    """`verify --json --projections`: one JSON object with ok, the chain report and the projection check."""
    code, out, _ = run(capsys, "verify", triage, "--json", "--projections")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    assert doc["chain"]["checked"] == 25 and doc["chain"]["problem"] is None
    assert doc["projections"]["ok"] is True and doc["projections"]["position"] == 25


def test_verify_json_of_a_bad_anchor_says_not_ok_and_exits_1(triage, capsys):
    """A failed check still prints JSON (ok false, the problem) and exits 1."""
    code, out, _ = run(capsys, "verify", triage, "--json", "--anchor", "25:" + "0" * 64)
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["chain"]["problem"] is not None
    assert doc["projections"] is None


def test_rebuild_json_prints_the_rebuild_report(tmp_path, capsys):
    """`rebuild --json`: the projections rebuilt, the events read and the position."""
    path = str(tmp_path / "r.db")
    debug_store.session_store(path)
    code, out, _ = run(capsys, "rebuild", path, "--json", "--projection", "sessions")
    doc = json.loads(out)
    assert code == 0 and doc["projections"] == ["sessions"] and doc["position"] == 25


def test_import_json_prints_the_import_report(triage, tmp_path, capsys):
    """`import --json`: the report with the new file's anchor, equal to the source's."""
    dump = str(tmp_path / "dump.jsonl")
    assert run(capsys, "export", triage, "-o", dump)[0] == 0
    code, out, _ = run(capsys, "import", dump, str(tmp_path / "copy.db"), "--json")
    doc = json.loads(out)
    with eventstore.open(triage) as store:
        assert code == 0 and doc["anchor"] == str(store.anchor()) and doc["chained"] is True


def test_anchor_json_and_the_old_command_name(triage, capsys):
    """`anchor --json` gives position, hash and the POSITION:HASH text; `checkpoint` still works."""
    code, out, _ = run(capsys, "anchor", triage, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["position"] == 25 and doc["anchor"] == f"25:{doc['hash']}"
    code, out, _ = run(capsys, "checkpoint", triage)
    assert code == 0 and out.strip() == doc["anchor"]


# --- item 25: the anchor has its own name in the API ------------------------------------------------


def test_store_anchor_is_the_name_and_checkpoint_a_deprecated_alias(triage):
    """store.anchor() gives (position, hash); store.checkpoint() gives the same with a DeprecationWarning."""
    with eventstore.open(triage) as store:
        anchor = store.anchor()
        assert anchor.position == 25 and store.verify(anchor).ok
        with pytest.warns(DeprecationWarning, match="anchor"):
            assert store.checkpoint() == anchor
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            store.anchor()


# --- item 21: help and usage -----------------------------------------------------------------------


@pytest.mark.parametrize("command, option, words", [
    ("why", "--stream S", "the stream the event is on"),
    ("diff", "--from P1", "the log position to compare from"),
])
def test_every_option_has_help_text(capsys, command, option, words):
    """`why --stream` and `diff --from` are explained in --help."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    options = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    assert f"{option} {words}" in options, options


def test_no_option_of_any_subcommand_lacks_help_text():
    """`--help` explains every argument of every subcommand (none is bare)."""
    import argparse

    from eventstore.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    bare = [(name, a.option_strings or a.dest) for name, sub in commands.items() for a in sub._actions
            if not a.help and not isinstance(a, argparse._HelpAction)]
    assert not bare


def test_an_unknown_option_prints_the_subcommands_usage(triage, capsys):
    """`log DB --bogus`: the usage shown is `eventstore log ...`, not the top-level one; exit 2."""
    with pytest.raises(SystemExit) as info:
        main(["log", triage, "--bogus"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith("usage: eventstore log ") and "--stream" in err
    assert "eventstore log: error: unrecognized arguments: --bogus" in err


def test_vacuum_of_an_unknown_session_does_not_say_create_it_first(triage, capsys):
    """Creating a session in order to vacuum it is no advice: the error just names it."""
    code, _, err = run(capsys, "vacuum", triage, "nope")
    assert_one_line_error(code, err, "'nope'", "no such session")
    assert "create it first" not in err


def test_a_future_forget_cutoff_is_named_as_a_date_not_milliseconds(triage, capsys):
    """`forget-occurrences --older-than 2099-01-01`: the error shows the date, no epoch milliseconds."""
    code, _, err = run(capsys, "forget-occurrences", triage, "--older-than", "2099-01-01")
    assert_one_line_error(code, err, "2099-01-01T00:00:00.000Z", "in the future")
    assert "4070908800000" not in err


# --- item 17: tables never break an id -------------------------------------------------------------


LONG_ID = "session-" + "0123456789abcdef" * 3


@pytest.fixture(scope="module")
def long_ids(tmp_path_factory) -> str:
    """A store with a 56-character session id and a long name, model and working directory."""
    from eventstore.sessions import SessionMeta

    path = str(tmp_path_factory.mktemp("tables") / "long.db")
    with eventstore.open(path) as store:
        meta = SessionMeta(name="a rather long name for a session", model="claude-demo-x",
                           cwd="/home/someone/projects/with/a/long/path")
        store.sessions.create(LONG_ID, meta)
        store.sessions.create("short-1")
    return path


def test_piped_tables_are_plain_lines_that_grep_finds(long_ids):
    """`eventstore sessions DB | grep ID`: one tab-separated line per row, the id whole in it."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "eventstore", "sessions", long_ids], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, COLUMNS="80"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "# 2 session(s)"
    assert lines[1].split("\t")[:3] == ["session", "status", "gen"]
    found = [line for line in lines if LONG_ID in line]
    assert len(found) == 1 and found[0].split("\t")[0] == LONG_ID
    assert found[0].split("\t")[3] == "a rather long name for a session"
    assert len(lines) == 4


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_table_at_80_columns_never_breaks_an_id_or_a_time(long_ids, monkeypatch):
    """On an 80-column terminal the id column and the timestamps stay whole on one line."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr("sys.stdout", _Terminal())
    import sys

    assert main(["sessions", long_ids]) == 0
    out = sys.stdout.getvalue()
    assert any(LONG_ID in line for line in out.splitlines()), out
    with eventstore.open(long_ids) as store:
        last = store.sessions.get(LONG_ID).last_activity_ms
    from eventstore.debug.describe_events import timestamp

    assert any(timestamp(last) in line for line in out.splitlines()), out


# --- items 22 and 26: the demo's ids and its closing advice ----------------------------------------


def _demo(capsys, *argv: str) -> str:
    assert main(["demo", *argv]) == 0
    return capsys.readouterr().out


def test_the_demo_gives_a_new_file_the_same_ids_and_a_rerun_new_ones(tmp_path, capsys):
    """Two new files get the same session ids (the docs use them); a second run into one file,
    or another --seed, gets others, so a rerun never collides with the first."""
    def sessions(path: str) -> list[str]:
        with eventstore.open(path) as store:
            return [s.session_id for s in store.sessions.list()]

    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    _demo(capsys, a)
    _demo(capsys, b)
    assert sessions(a) == sessions(b) == ["support-0a5d2f34", "support-42485e3a", "triage-d82c07cd"]
    _demo(capsys, a)
    assert len(sessions(a)) == 6
    c = str(tmp_path / "c.db")
    _demo(capsys, c, "--seed", "7")
    assert not set(sessions(c)) & set(sessions(b))


def test_the_demo_closing_advice_uses_the_narrated_position_and_points_at_the_api_and_docs(tmp_path, capsys):
    """"Try next" replays, diffs and shows the position the time-travel narration used, on its
    session; then it names the Python entry point and the docs."""
    import re

    out = _demo(capsys, str(tmp_path / "d.db"))
    narrated = re.search(r"time travel to position (\d+) \(after turn 2\)", out)
    assert narrated is not None
    position = narrated.group(1)
    advice = out.split("Try next:", 1)[1]
    sid = re.search(r"eventstore show \S+ (support-\w+)", advice).group(1)
    assert f"eventstore replay {tmp_path / 'd.db'} --at {position} --stream session:{sid}" in advice
    assert f"--from {position} --stream session:{sid}" in advice
    assert f"{sid} --at {position} --active-path" in advice
    positions = {int(p) for p in re.findall(r"--(?:at|from) (\d+)", advice)}
    assert positions == {int(position)}
    assert "eventstore.open(path)" in advice and "api.md" in advice and "cli.md" in advice
    assert "debugging.md" in advice


def test_an_argument_that_is_not_utf8_is_one_line_exit_2(triage, capsys):
    """Bytes that are not UTF-8 on the command line arrive as lone surrogates: a typed error, exit 2."""
    code, out, err = run(capsys, "log", triage, "--stream", "a\udcff")
    assert_one_line_error(code, err, "stream is not valid text")
