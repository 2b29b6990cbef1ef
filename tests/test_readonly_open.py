"""Opening without writing: `open(path, readonly=True)` and the read-only CLI commands.

The tests run as root, for whom file permissions do not bite (root may write a 0400 file
in a 0500 directory), so "read-only" is made real with a read-only bind mount, and a full
disk with a small tmpfs: both need root, which these tests have. What each proves:
* behind a writer holding BEGIN IMMEDIATE, read-only opens and commands never wait
  (the open uses a zero busy timeout: waiting at all would fail at once);
* on a read-only mount (file and directory unwritable for everyone, root included), a
  store can be read, verified and exported; the file's bytes do not change;
* on a full disk, reads, verify and the read-only commands work, and a write fails
  with DiskFull, a StoreError of its own;
* an empty file is not a store for anything that does not create one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import eventstore
from eventstore.cli import main
from tests import debug_store
from tests.debug_store import Note

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
"""Run a command as the unprivileged user `nobody` (root ignores file permissions)."""

READ_COMMANDS = [["info"], ["log"], ["verify"], ["anchor"], ["sessions"], ["leases"], ["processes"],
                 ["triggers"], ["effects"], ["export"], ["replay", "--no-cache"], ["replay"],
                 ["diff", "--from", "1"], ["queue", "--session", "triage"],
                 ["inputs", "--session", "triage"], ["show", "triage"], ["why", "--stream", "session:triage",
                                                                        "--version", "1"]]


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """(writable source directory, the same directory mounted read-only)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    mounted = False

    def mount() -> str:
        nonlocal mounted
        _mount("--bind", str(src), str(ro))
        mounted = True
        _mount("-o", "remount,ro,bind", str(ro))
        return str(ro)

    yield src, mount
    if mounted:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs, and a function that fills it up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk))

    def fill() -> None:
        fd = os.open(str(disk / "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        os.close(fd)

    yield disk, fill
    subprocess.run(["umount", str(disk)], check=True)


def _store(path: str) -> None:
    debug_store.session_store(path)


def _cli_ok(capsys, path: str) -> None:
    for command in READ_COMMANDS:
        status = main([command[0], path, *command[1:]])
        captured = capsys.readouterr()
        assert status == 0, (command, captured.err)


# --- item 4: an empty file ----------------------------------------------------------------------------------

def test_an_empty_file_is_not_an_event_store_and_stays_empty(tmp_path, capsys):
    """`verify` used to say "ok: 0 events" after turning the empty file into a store."""
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    for kw in ({"create": False}, {"readonly": True}):
        with pytest.raises(eventstore.NotAnEventStore, match="empty"):
            eventstore.open(str(path), **kw)
    for command in (["verify"], ["info"], ["log"], ["sessions"], ["anchor"], ["rebuild"]):
        assert main([command[0], str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "empty" in err, err
    assert path.stat().st_size == 0
    assert os.listdir(tmp_path) == ["empty.db"]


# --- item 6: read-only opens --------------------------------------------------------------------------------

def test_readonly_open_never_waits_behind_a_writers_transaction(tmp_path):
    """With a zero busy timeout, any wait for the writer's lock would fail at once."""
    path = str(tmp_path / "s.db")
    _store(path)
    with eventstore.open(path) as writer:
        head = writer.anchor()
        with writer.transaction():
            writer.append("notes:held", [Note("not committed")])
            with eventstore.open(path, readonly=True, busy_timeout_ms=0) as reader:
                assert reader.anchor() == head
                assert reader.verify().ok
                assert reader.sessions.get("triage") is not None
                assert reader.info().events == head.position


def test_read_commands_never_wait_behind_a_writers_transaction(tmp_path, capsys):
    """`eventstore sessions` and every other read command used to wait 15 s for the write
    lock, then fail with "the database stayed locked"."""
    path = str(tmp_path / "s.db")
    _store(path)
    with eventstore.open(path) as writer:
        with writer.transaction():
            writer.append("notes:held", [Note("not committed")])
            _cli_ok(capsys, path)


def test_writes_through_a_readonly_handle_raise_read_only_store_naming_the_mode(tmp_path):
    path = str(tmp_path / "s.db")
    _store(path)
    before = _digest(path)
    with eventstore.open(path, readonly=True) as store:
        for write in (lambda: store.append("notes:a", [Note("x")]), lambda: store.rebuild(),
                      lambda: store.blobs.put(b"data"), lambda: store.sessions.create("new-session")):
            with pytest.raises(eventstore.ReadOnlyStore, match="readonly=True"):
                write()
        assert store.verify().ok
    assert _digest(path) == before


def test_a_store_on_a_read_only_mount_can_be_read_verified_and_exported(readonly_dir, capsys):
    src, mount = readonly_dir
    _store(str(src / "s.db"))
    assert os.listdir(src) == ["s.db"]  # closed cleanly: no side files, as an evidence copy usually is
    before = _digest(str(src / "s.db"))
    ro = mount()
    path = os.path.join(ro, "s.db")
    with pytest.raises(OSError):
        open(os.path.join(ro, "probe"), "w")  # the mount really is read-only, for root too
    with eventstore.open(path, readonly=True) as store:
        assert store.db.immutable  # no DB-shm on a read-only mount: read as immutable
        assert store.verify().ok and store.last_position() > 0
        assert store.sessions.get("triage") is not None
    _cli_ok(capsys, path)
    assert main(["verify", path, "--projections"]) == 0
    assert _digest(path) == before


def test_a_read_only_file_in_a_read_only_directory_can_be_read_by_an_unprivileged_user():
    """File 0444 in a directory 0555, read by `nobody`, for whom those modes do bite."""
    base = tempfile.mkdtemp(prefix="eventstore-ro-")
    try:
        os.chmod(base, 0o755)
        evidence = os.path.join(base, "evidence")
        os.mkdir(evidence)
        path = os.path.join(evidence, "s.db")
        _store(path)
        before = _digest(path)
        with eventstore.open(path, readonly=True) as store:
            last = store.last_position()
        os.chmod(path, 0o444)
        os.chmod(evidence, 0o555)
        env = dict(os.environ, PYTHONPATH=ROOT)

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*NOBODY, *args], capture_output=True, text=True, env=env, cwd=base,
                                  timeout=120)

        assert run("touch", os.path.join(evidence, "probe")).returncode != 0  # really read-only for nobody
        assert run("touch", path).returncode != 0
        for command in (["verify"], ["info"], ["log"], ["sessions"], ["show", "triage"]):
            done = run(sys.executable, "-m", "eventstore", command[0], path, *command[1:])
            assert done.returncode == 0, (command, done.stderr)
        snippet = ("import eventstore, sys\n"
                   "from tests.debug_store import Note\n"
                   "with eventstore.open(sys.argv[1], readonly=True) as s:\n"
                   "    print(s.verify().ok, s.last_position())\n"
                   "    try:\n"
                   "        s.append('notes:a', [Note('x')])\n"
                   "    except eventstore.ReadOnlyStore as exc:\n"
                   "        print(type(exc).__name__)\n")
        done = run(sys.executable, "-c", snippet, path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["True", str(last), "ReadOnlyStore"]
        assert _digest(path) == before
    finally:
        for root, dirs, _files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(base)


def test_a_read_only_mount_with_committed_frames_in_the_wal_shows_them(readonly_dir):
    """A copy taken while a writer ran has DB-wal (and DB-shm): its commits must be seen."""
    src, mount = readonly_dir
    live = str(src.parent / "live.db")
    _store(live)
    with eventstore.open(live) as writer:
        writer.append("notes:late", [Note("only in the wal")])
        head = writer.anchor()
        for suffix in ("", "-wal", "-shm"):
            shutil.copy(live + suffix, str(src / ("s.db" + suffix)))
    ro = mount()
    with eventstore.open(os.path.join(ro, "s.db"), readonly=True) as store:
        assert not store.db.immutable  # DB-shm is there: an ordinary reader
        assert store.anchor() == head
        assert [e.data.text for e in store.read_stream("notes:late")] == ["only in the wal"]


def test_a_read_only_mount_with_a_wal_but_no_shm_is_refused_rather_than_read_without_the_wal(readonly_dir):
    """Without -shm, SQLite can read such a copy only as immutable, which ignores the WAL:
    its newest commits would be silently missing, so the open refuses and says why."""
    src, mount = readonly_dir
    live = str(src.parent / "live.db")
    _store(live)
    with eventstore.open(live) as writer:
        writer.append("notes:late", [Note("only in the wal")])
        for suffix in ("", "-wal"):
            shutil.copy(live + suffix, str(src / ("s.db" + suffix)))
    ro = mount()
    with pytest.raises(eventstore.FileError, match="-wal"):
        eventstore.open(os.path.join(ro, "s.db"), readonly=True)


def test_on_a_full_disk_reads_and_read_commands_work(tiny_disk, capsys):
    """Opening read-only needs no space: where SQLite cannot create DB-shm it reads the
    (cleanly closed) file as immutable."""
    disk, fill = tiny_disk
    path = str(disk / "s.db")
    _store(path)
    with eventstore.open(path) as store:
        head = store.anchor()
    fill()
    with eventstore.open(path, readonly=True) as store:
        assert store.db.immutable  # DB-shm could not be created: the fallback was taken
        assert store.verify().ok and store.anchor() == head
        assert store.sessions.get("triage") is not None
    for command in (["log"], ["verify"], ["info"], ["sessions"], ["anchor"], ["show", "triage"]):
        assert main([command[0], path, *command[1:]]) == 0, capsys.readouterr().err
    capsys.readouterr()


# --- item 14: DiskFull --------------------------------------------------------------------------------------

def test_a_full_disk_raises_disk_full_and_commits_nothing(tiny_disk):
    """A runtime must tell a full disk from a bug: DiskFull, a StoreError of its own, on an
    append through an open handle and on opening for writing."""
    disk, fill = tiny_disk
    path = str(disk / "s.db")
    _store(path)
    fill()
    with pytest.raises(eventstore.DiskFull, match="full"):
        eventstore.open(path)
    os.unlink(str(disk / "filler"))
    with eventstore.open(path) as writer:
        head = writer.anchor()
        fill()
        with pytest.raises(eventstore.DiskFull, match="full"):
            with writer.transaction():
                for i in range(400):
                    writer.append("notes:a", [Note("x" * 3000 + str(i))])
        assert writer.anchor() == head
    assert issubclass(eventstore.DiskFull, eventstore.StoreError)
    os.unlink(str(disk / "filler"))
    with eventstore.open(path) as store:
        assert store.verify().ok and store.anchor() == head


def test_an_export_to_a_full_disk_raises_disk_full_and_leaves_no_file(tiny_disk, tmp_path, capsys):
    """The export (2.7 MB of base64) does not fit in the 1 MiB left on the tiny disk."""
    disk, _fill = tiny_disk
    path = str(tmp_path / "s.db")
    _store(path)
    with eventstore.open(path) as store:
        for _i in range(20):
            store.blobs.put(os.urandom(100_000))
    with open(str(disk / "filler"), "wb") as fh:
        fh.write(b"\0" * (3 * 1024 * 1024))
    out = str(disk / "out.jsonl")
    assert main(["export", path, "-o", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk is full" in err, err
    assert sorted(os.listdir(disk)) == ["filler"]
