"""Export and import must never damage a file they were not asked to write.

* `export --output` naming the store or one of its side files is refused;
* the temporary file is created exclusively (a planted symlink is not followed) and the
  export is private (0600), like the store it copies;
* the progress display on a terminal does not capture the JSON lines sent to stdout;
* a failed import leaves every file that existed before it exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import sys

import pytest

import eventstore
from eventstore.cli import main
from eventstore.debug import export as export_module
from eventstore.debug.export import export_to_path
from eventstore.debug.importer import import_store
from tests import debug_store
from tests.debug_store import Note

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture
def db(tmp_path) -> str:
    path = str(tmp_path / "s.db")
    debug_store.session_store(path)
    return path


# --- item 1: the output is the store ------------------------------------------------------------------------

def test_export_to_the_store_itself_or_a_link_to_it_is_refused_and_touches_nothing(db, tmp_path, capsys):
    """`--output DB` used to rename the export over the database (exit 0)."""
    before = _digest(db)
    os.link(db, str(tmp_path / "hard.db"))
    os.symlink(db, str(tmp_path / "soft.db"))
    for output in (db, str(tmp_path / "hard.db"), str(tmp_path / "soft.db"),
                   os.path.join(str(tmp_path), ".", "s.db")):
        assert main(["export", db, "--output", output]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is the store" in err, err
    assert _digest(db) == before
    assert sorted(os.listdir(tmp_path)) == ["hard.db", "s.db", "soft.db"]
    with eventstore.open(db) as store:
        assert store.verify().ok


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_export_to_a_side_file_of_the_store_is_refused_while_another_handle_reads(db, capsys, suffix):
    """Writing over `DB-wal` broke another process's reads ("database disk image is malformed")."""
    with eventstore.open(db) as other:
        other.append("notes:a", [Note("held in the wal")])
        wal_before = _digest(db + "-wal")
        assert main(["export", db, "-o", db + suffix]) == 2
        assert "is the store" in capsys.readouterr().err
        with pytest.raises(export_module.ExportTargetRefused):
            export_to_path(other, db + suffix)
        assert _digest(db + "-wal") == wal_before
        assert [e.data.text for e in other.read_stream("notes:a")] == ["held in the wal"]
        assert other.verify().ok


def test_export_to_standard_output_appending_to_the_store_is_refused(db, monkeypatch, capsys):
    """`eventstore export DB >> DB`: standard output is the store itself."""
    before = _digest(db)
    with open(db, "a") as same:
        monkeypatch.setattr("sys.stdout", same)
        status = main(["export", db])
    monkeypatch.undo()
    assert status == 2 and "is the store" in capsys.readouterr().err
    assert _digest(db) == before


# --- item 2: the temporary file -----------------------------------------------------------------------------

def test_export_does_not_follow_a_symlink_planted_at_the_temporary_name_and_is_private(db, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out.jsonl"
    os.symlink(str(victim), f"{out}.{os.getpid()}.tmp")  # the name the export used to write through
    old = os.umask(0o022)
    try:
        with eventstore.open(db) as store:
            report = export_to_path(store, str(out))
    finally:
        os.umask(old)
    assert victim.read_text() == "precious\n"
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert len(out.read_text().splitlines()) == report.lines
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp") and not os.path.islink(tmp_path / n)]
    assert leftovers == []


# --- item 3: stdout under the progress display --------------------------------------------------------------

def test_export_to_redirected_stdout_from_a_terminal_writes_every_line_to_the_file(tmp_path):
    """From a terminal (stderr a tty), with more events than the progress threshold, the JSON
    lines go to the redirected stdout, and the progress display is drawn on the terminal."""
    from eventstore.cli._common import PROGRESS_MIN_EVENTS

    path = str(tmp_path / "big.db")
    n = PROGRESS_MIN_EVENTS + 1
    with eventstore.open(path, synchronous="normal") as store:
        store.append("notes:big", [Note(str(i)) for i in range(n)])
    out_path = tmp_path / "out.jsonl"
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               COLUMNS="100", TERM="xterm")
    with open(out_path, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "eventstore", "export", path],
                                 stdin=slave, stdout=out, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    terminal = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    assert child.wait(timeout=120) == 0, terminal[-2000:]
    os.close(master)
    lines = out_path.read_bytes().splitlines()
    assert len(lines) == n + 2  # header, the events, end
    assert b'"kind":"event"' not in terminal
    assert f"/{n}".encode() in terminal  # the progress display (done/total) was drawn there
    assert b"exported" in terminal  # and the summary


# --- item 5: a failed import --------------------------------------------------------------------------------

def test_a_failed_import_into_an_existing_empty_file_leaves_it_exactly_as_it_was(tmp_path):
    target = tmp_path / "empty.db"
    target.write_bytes(b"")
    os.chmod(target, 0o640)
    before = os.stat(target)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind":"header"}\n')
    with pytest.raises(eventstore.StoreError):
        import_store(str(bad), str(target))
    after = os.stat(target)
    assert (after.st_ino, after.st_size, after.st_mode, after.st_mtime_ns) == \
        (before.st_ino, 0, before.st_mode, before.st_mtime_ns)
    assert sorted(os.listdir(tmp_path)) == ["bad.jsonl", "empty.db"]


def test_a_failed_import_into_a_new_file_leaves_no_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind":"header"}\n')
    with pytest.raises(eventstore.StoreError):
        import_store(str(bad), str(tmp_path / "new.db"))
    assert sorted(os.listdir(tmp_path)) == ["bad.jsonl"]
