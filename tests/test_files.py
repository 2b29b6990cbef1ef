"""Opening files: bad files get a typed error and stay byte-for-byte untouched; new files
are private (0600), in WAL mode, stamped; many processes may create one file at once."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

import eventstore
from eventstore.log import APPLICATION_ID, SCHEMA_VERSION
from tests import strategies as gen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(directory) -> dict[str, str]:
    """The name and SHA-256 of every file in a directory."""
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as fh:
            out[name] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _store_file(tmp_path, events: int = 50) -> str:
    path = str(tmp_path / "store.db")
    with gen.open_store(path) as store:
        for i in range(events):
            store.append(f"s:{i % 3}", [gen.NoteAdded("payload " * 20)])
    return path


def _assert_refused(path: str, error: type, *words: str) -> eventstore.FileError:
    directory = os.path.dirname(path)
    before = _snapshot(directory)
    with pytest.raises(error) as info:
        eventstore.open(path)
    assert isinstance(info.value, eventstore.FileError) and info.value.path == path
    for word in words:
        assert word in str(info.value)
    assert _snapshot(directory) == before  # same files, same bytes: nothing written, nothing left
    return info.value


# --- bad files --------------------------------------------------------------------------------


def test_file_written_by_a_newer_schema_is_refused_untouched(tmp_path):
    path = _store_file(tmp_path)
    gen.edit_file(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    err = _assert_refused(path, eventstore.SchemaTooNew, str(SCHEMA_VERSION + 1))
    assert (err.found, err.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_event_store_stamp_with_schema_zero_is_not_an_event_store(tmp_path):
    path = _store_file(tmp_path)
    gen.edit_file(path, "PRAGMA user_version = 0")
    _assert_refused(path, eventstore.NotAnEventStore, "schema version is 0")


@pytest.mark.parametrize("setup", [
    "CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL); INSERT INTO invoices VALUES (1, 9.5)",
    "PRAGMA application_id = 1234",
    "PRAGMA user_version = 7; CREATE TABLE t (x)",
    f"PRAGMA application_id = {APPLICATION_ID + 1}; CREATE TABLE events (x)",
], ids=["tables", "other-app-id", "other-user-version", "lookalike"])
def test_sqlite_file_of_another_application_is_refused_untouched(tmp_path, setup):
    path = str(tmp_path / "foreign.db")
    conn = sqlite3.connect(path)
    conn.executescript(setup)
    conn.close()
    _assert_refused(path, eventstore.NotAnEventStore, "another application")


@pytest.mark.parametrize("content", [
    os.urandom(8192),
    b"hello, this is a text file\n" * 10,
    b"x",
    b"SQLite format 3\x00" + b"\x00\x03" + bytes(82),  # right magic, impossible page size
], ids=["random", "text", "one-byte", "bad-page-size"])
def test_garbage_is_not_a_database_and_stays_untouched(tmp_path, content):
    path = str(tmp_path / "garbage.db")
    with open(path, "wb") as fh:
        fh.write(content)
    _assert_refused(path, eventstore.NotADatabase)


@pytest.mark.parametrize("keep", [50, 100, 4096, 0.5, -4096, -1], ids=lambda k: f"keep{k}")
def test_truncated_store_file_is_refused_untouched(tmp_path, keep):
    path = _store_file(tmp_path, events=200)
    with open(path, "rb") as fh:
        data = fh.read()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep > 0 else len(data) + keep)
    with open(path, "wb") as fh:
        fh.write(data[:cut])
    _assert_refused(path, eventstore.TruncatedFile, str(cut))


def test_zero_length_file_is_treated_as_new(tmp_path):
    path = str(tmp_path / "empty.db")
    open(path, "wb").close()
    with gen.open_store(path) as store:
        store.append("s", [gen.NoteAdded("first")])
    with gen.open_store(path) as store:
        assert [e.data.text for e in store.read_all()] == ["first"]


def test_unusable_paths_are_file_errors(tmp_path):
    for path in (str(tmp_path), str(tmp_path / "no" / "such" / "dir.db")):
        with pytest.raises(eventstore.FileError) as info:
            eventstore.open(path)
        assert info.value.path == path
    with pytest.raises(eventstore.FileError, match="create=False"):
        eventstore.open(str(tmp_path / "missing.db"), create=False)
    assert not os.path.exists(tmp_path / "missing.db")


# --- new files --------------------------------------------------------------------------------


def test_new_file_is_private_in_wal_mode_and_stamped(tmp_path):
    path = str(tmp_path / "new.db")
    old = os.umask(0)  # even with a permissive umask
    try:
        with gen.open_store(path) as store:
            store.append("s", [gen.NoteAdded("x")])
            for suffix in ("", "-wal", "-shm"):
                assert stat.S_IMODE(os.stat(path + suffix).st_mode) == 0o600, suffix
            assert gen.query_file(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        os.umask(old)
    assert gen.query_file(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert gen.query_file(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_in_memory_store_works_without_a_file(tmp_path):
    os.chdir(tmp_path)
    with gen.open_store(":memory:") as store:
        store.append("s", [gen.NoteAdded("x")])
        assert store.verify().ok
    assert os.listdir(tmp_path) == []


_OPENER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import eventstore
from eventstore.demo import UserMessage
from projections.catalogue import catalogue
path, me = sys.argv[2], sys.argv[3]
open(os.path.join(os.path.dirname(path), "ready-" + me), "w").close()
go = os.path.join(os.path.dirname(path), "go")
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
with eventstore.open(path, synchronous="normal", projections=[catalogue]) as store:
    print(store.append("opener:" + me, [UserMessage(me)]).first_position)
"""


def test_sixteen_processes_opening_one_new_file_at_once_all_succeed(tmp_path):
    path = str(tmp_path / "race.db")
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, ROOT, path, str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(16)]
    try:
        deadline = time.monotonic() + 60
        while sum(name.startswith("ready-") for name in os.listdir(tmp_path)) < 16:
            assert time.monotonic() < deadline, "openers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        assert not os.path.exists(path)  # nobody has created it yet: the opens race
        open(tmp_path / "go", "w").close()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    assert sorted(int(out) for out, _ in outputs) == list(range(1, 17))
    with gen.open_store(path) as store:
        assert store.last_position() == 16 and len(store.streams()) == 16
        assert store.verify().ok and store.verify_projections().ok
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert gen.query_file(path, "SELECT count(*) FROM projection_state") == [(1,)]


_CHECKPOINTER = """
import sys
sys.path.insert(0, sys.argv[1])
import eventstore
from eventstore.demo import ToolCalled
from projections.catalogue import catalogue
for i in range(int(sys.argv[3])):
    # each close of the last connection checkpoints the WAL into the file, rewriting its header
    with eventstore.open(sys.argv[2], synchronous="normal", projections=[catalogue]) as store:
        store.append("grow", [ToolCalled("t", {"i": i}, "x" * (3000 * (i % 7)))])
"""


def test_a_sound_file_being_checkpointed_by_another_process_never_looks_truncated(tmp_path):
    from eventstore.storage.sqlite import check_file

    path = str(tmp_path / "busy.db")
    gen.open_store(path).close()
    writer = subprocess.Popen([sys.executable, "-c", _CHECKPOINTER, ROOT, path, "120"], stderr=subprocess.PIPE,
                              text=True)
    looks = 0
    try:
        deadline = time.monotonic() + 60
        while writer.poll() is None and time.monotonic() < deadline:
            assert check_file(path) is False  # never TruncatedFile, never "new"
            looks += 1
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.wait(timeout=60) == 0, writer.stderr.read()
    assert looks > 100
    with gen.open_store(path) as store:
        assert store.stream_version("grow") == 120 and store.verify().ok
