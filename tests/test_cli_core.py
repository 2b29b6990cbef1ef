"""The core command line: demo, info, log, verify, rebuild, checkpoint; exit codes; errors
as one line on stderr without a traceback."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile

import pytest

from eventstore.cli import main
from tests import strategies as gen

EVENTS = [
    ("chat:1", gen.NoteAdded("hello")),
    ("chat:1", gen.CounterChanged("tokens", 812)),
    ("tool:x", gen.PayloadAttached("state", b"\x00\x01binary\xff")),
    ("chat:1", gen.NoteAdded("line one\nline two \x1b[31mred")),
    ("chat:2", gen.NoteAdded("second chat")),
    ("tool:x", gen.CounterChanged("calls", 1)),
]


@pytest.fixture
def db(tmp_path) -> str:
    """A store with six known events (every projection the code has, so none is stale)."""
    path = str(tmp_path / "cli.db")
    with gen.open_store(path, projections=None) as store:
        for stream, event in EVENTS:
            store.append(stream, [event])
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("eventstore ") and ": error: " in err
    assert "Traceback" not in err
    for word in words:
        assert word in err


# --- demo ---------------------------------------------------------------------------------------


def test_demo_runs_on_a_given_file_and_ends_with_a_sound_verify(capsys, tmp_path):
    path = str(tmp_path / "demo.db")
    status, out, _err = run(capsys, "demo", path)
    assert status == 0
    assert "chain: ok" in out and "projections: ok" in out
    assert f"eventstore verify {path} --anchor " in out
    assert run(capsys, "verify", path)[0] == 0


def test_demo_without_a_file_uses_a_fresh_temporary_one(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    status, out, _err = run(capsys, "demo")
    assert status == 0
    created = out.splitlines()[0].removeprefix("demo store: ")
    assert created.startswith(str(tmp_path)) and os.path.exists(created)


# --- info ---------------------------------------------------------------------------------------


def test_info_summarises_the_file(capsys, db):
    status, out, _err = run(capsys, "info", db)
    assert status == 0
    assert "events:       6 in 3 streams" in out
    assert "head:         6:" in out and "catalogue" in out


def test_info_json_is_one_json_document(capsys, db):
    with gen.open_store(db, projections=None) as store:
        head = store.anchor()
    status, out, _err = run(capsys, "info", db, "--json")
    assert status == 0
    info = json.loads(out)
    assert (info["events"], info["streams"], info["last_position"], info["head"]) == (6, 3, 6, head.hash)
    assert {p["name"]: p["stale"] for p in info["projections"]}["catalogue"] is False


# --- log ----------------------------------------------------------------------------------------


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_log_json_lines_carry_every_event_with_bytes_as_base64(capsys, db):
    status, out, _err = run(capsys, "log", db, "--json")
    assert status == 0
    rows = _json_lines(out)
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [(r["stream"], r["version"]) for r in rows][:3] == [("chat:1", 1), ("chat:1", 2), ("tool:x", 1)]
    assert rows[0]["type"] == "test.note_added" and rows[0]["schema"] == 1 and rows[0]["data"] == {"text": "hello"}
    assert base64.b64decode(rows[2]["data"]["content"]["$bytes"]) == b"\x00\x01binary\xff"
    assert rows[3]["data"]["text"] == "line one\nline two \x1b[31mred"
    assert all(isinstance(r["recorded_at_ms"], int) for r in rows)


LOG_FILTERS = [
    (["--stream", "chat:1"], [1, 2, 4]),
    (["--stream", "chat:1", "--from", "2"], [2, 4]),
    (["--stream", "chat:1", "--type", "test.note_added"], [1, 4]),
    (["--type", "test.counter_changed"], [2, 6]),
    (["--type", "test.counter_changed", "--type", "test.payload_attached"], [2, 3, 6]),
    (["--from", "4"], [4, 5, 6]),
    (["--limit", "2"], [1, 2]),
    (["--from", "3", "--limit", "2"], [3, 4]),
]


@pytest.mark.parametrize("args,positions", LOG_FILTERS)
def test_log_filters(capsys, db, args, positions):
    status, out, _err = run(capsys, "log", db, "--json", *args)
    assert status == 0
    assert [r["position"] for r in _json_lines(out)] == positions


@pytest.mark.parametrize("args,positions", LOG_FILTERS)
def test_log_follow_applies_the_same_filters_to_the_events_already_there(capsys, db, args, positions):
    status, out, _err = run(capsys, "log", db, "--json", "--follow", "--idle-timeout", "0.2", *args)
    assert status == 0
    assert [r["position"] for r in _json_lines(out)] == positions


def _follow_command(db: str, *args: str) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "eventstore"), "log", db, "--json", "--follow", *args]


def _follower(db: str, *args: str) -> subprocess.Popen:
    # Without PYTHONUNBUFFERED a pipe is block-buffered: what the follower prints reaches
    # the reader only because it flushes each event.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.Popen(_follow_command(db, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _next_line(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()  # the follower flushes each event; exits by its idle timeout
    assert line, f"the follower ended early: {proc.stderr.read()}"
    return json.loads(line)


def test_log_follow_prints_events_another_handle_commits_while_it_runs(db):
    proc = _follower(db, "--stream", "chat:1", "--idle-timeout", "20")
    try:
        assert [_next_line(proc)["position"] for _ in range(3)] == [1, 2, 4]  # what was there
        with gen.open_store(db, projections=None) as store:
            store.append("chat:2", [gen.NoteAdded("not followed")])
            store.append("chat:1", [gen.NoteAdded("new one")])
        new = _next_line(proc)
        assert (new["position"], new["stream"], new["data"]) == (8, "chat:1", {"text": "new one"})
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_log_follow_ends_quietly_on_ctrl_c_and_after_its_idle_timeout(db):
    import signal

    proc = _follower(db)
    assert [_next_line(proc)["position"] for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "" and err == ""
    done = subprocess.run(_follow_command(db, "--idle-timeout", "0.3"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 6


def test_log_idle_timeout_needs_follow_and_a_positive_number(capsys, db):
    status, _out, err = run(capsys, "log", db, "--idle-timeout", "1")
    assert_one_line_error(status, err, "--idle-timeout only applies with --follow")
    with pytest.raises(SystemExit) as info:
        main(["log", db, "--follow", "--idle-timeout", "0"])
    assert info.value.code == 2


def test_log_text_is_one_escaped_line_per_event(capsys, db):
    status, out, _err = run(capsys, "log", db)
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 6
    assert "chat:1@1" in lines[0] and "test.note_added" in lines[0]
    assert "\x1b" not in out  # stored control characters never reach the terminal


def test_log_refuses_a_position_below_one(capsys, db):
    with pytest.raises(SystemExit) as info:
        main(["log", db, "--from", "0"])
    assert info.value.code == 2
    assert "at least 1" in capsys.readouterr().err


# --- verify, checkpoint ---------------------------------------------------------------------------


def test_verify_exits_0_when_sound_and_1_naming_the_first_bad_position(capsys, db):
    status, out, _err = run(capsys, "verify", db)
    assert (status, out.startswith("ok: 6 events verified")) == (0, True)
    gen.edit_file(db, "UPDATE events SET payload = ? WHERE position = 4", (b"\x81\xa4text\xa3bad",))
    gen.edit_file(db, "UPDATE events SET recorded_at_ms = recorded_at_ms + 1 WHERE position = 5")
    status, out, _err = run(capsys, "verify", db)
    assert status == 1
    assert "FAILED at position 4: altered" in out


def test_checkpoint_anchor_round_trip_through_verify(capsys, db):
    status, out, _err = run(capsys, "checkpoint", db)
    anchor = out.strip()
    with gen.open_store(db, projections=None) as store:
        assert status == 0 and anchor == str(store.anchor())
        store.append("chat:3", [gen.NoteAdded("after the anchor")])
    assert run(capsys, "verify", db, "--anchor", anchor)[0] == 0
    gen.edit_file(db, "DELETE FROM events WHERE position >= 6")
    status, out, _err = run(capsys, "verify", db, "--anchor", anchor)
    assert status == 1 and "FAILED at position 6: truncated" in out


def test_verify_projections_finds_a_hand_edited_row(capsys, db):
    status, out, _err = run(capsys, "verify", db, "--projections")
    assert status == 0 and "projections ok" in out
    gen.edit_file(db, "UPDATE catalogue_streams SET event_count = 40 WHERE stream = 'chat:2'")
    status, out, _err = run(capsys, "verify", db, "--projections")
    assert status == 1
    assert "MISMATCH" in out and "catalogue_streams" in out and "chat:2" in out


# --- rebuild ------------------------------------------------------------------------------------


def test_rebuild_repairs_projections(capsys, db):
    gen.edit_file(db, "DELETE FROM catalogue_streams")
    status, out, _err = run(capsys, "rebuild", db, "--projection", "catalogue")
    assert status == 0 and out.startswith("rebuilt catalogue from 6 events up to position 6")
    assert run(capsys, "verify", db, "--projections")[0] == 0
    status, out, _err = run(capsys, "rebuild", db)
    assert status == 0 and "catalogue" in out


# --- errors -------------------------------------------------------------------------------------


def test_missing_file_is_one_line_exit_2_and_not_created(capsys, tmp_path):
    path = str(tmp_path / "nope.db")
    for command in ("info", "log", "verify", "rebuild", "checkpoint"):
        status, _out, err = run(capsys, command, path)
        assert_one_line_error(status, err, f"eventstore {command}", "nope.db", "no such file")
    assert not os.path.exists(path)


@pytest.mark.parametrize("content,words", [
    (b"not a database at all, just text\n" * 20, ["not a SQLite database"]),
    (b"SQLite format 3\x00" + bytes(30), ["TruncatedFile", "shorter"]),
], ids=["garbage", "truncated"])
def test_bad_file_is_one_line_exit_2(capsys, tmp_path, content, words):
    path = str(tmp_path / "bad.db")
    with open(path, "wb") as fh:
        fh.write(content)
    status, _out, err = run(capsys, "verify", path)
    assert_one_line_error(status, err, *[w for w in words if w != "TruncatedFile"])
    with open(path, "rb") as fh:
        assert fh.read() == content


@pytest.mark.parametrize("anchor", ["12", "x:abc", "3:" + "z" * 64])
def test_bad_anchor_is_one_line_exit_2(capsys, db, anchor):
    status, _out, err = run(capsys, "verify", db, "--anchor", anchor)
    assert_one_line_error(status, err, "anchor")


def test_undecodable_stored_payload_is_one_line_exit_2_naming_the_position(capsys, db):
    gen.edit_file(db, "UPDATE events SET payload = ? WHERE position = 5", (b"\xc1\xc1",))
    status, out, err = run(capsys, "log", db, "--json")
    assert_one_line_error(status, err, "position 5")
    assert [r["position"] for r in _json_lines(out)] == [1, 2, 3, 4]  # it stops there: 6 is not shown


def test_unknown_projection_is_one_line_exit_2(capsys, db):
    status, _out, err = run(capsys, "rebuild", db, "--projection", "nope")
    assert_one_line_error(status, err, "nope")


def test_console_script_runs_the_same_main(db):
    script = os.path.join(os.path.dirname(sys.executable), "eventstore")
    ok = subprocess.run([script, "checkpoint", db], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("6:")
    missing = subprocess.run([script, "info", db + ".missing"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
