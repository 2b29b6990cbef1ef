"""kill -9 in the middle of group commits: no acknowledged command lost, none partly present.

A child process runs several threads on one store handle, so their commands meet in
groups: each thread appends commands of 1-3 events to its own stream with the exact
expected version, and every third command also appends to a shared stream in the same
`store.transaction()`. A thread writes its acknowledgement to a file only after the call
returned (that is, after its group committed). The parent SIGKILLs the child at a random
moment, many times over one file, and audits it after each kill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict

import eventstore
from eventstore import codec
from eventstore.demo import UserMessage  # noqa: F401 - registers the event class the child writes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 20
THREADS = 4

_CHILD = r"""
import os, sys, threading
sys.path.insert(0, sys.argv[1])
import eventstore
from eventstore.demo import UserMessage
path, acks, rnd, threads = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
store = eventstore.open(path, synchronous="normal")
fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def work(t):
    stream = f"t{t}"
    version = store.stream_version(stream)
    seq = 0
    while True:
        seq += 1
        k = 1 + seq % 3
        tag = f"{rnd}/{t}/{seq}"
        events = [UserMessage(f"{tag}/{j}/{k}") for j in range(k)]
        if seq % 3 == 0:
            with store.transaction():
                r = store.append(stream, events, expected_version=version)
                store.append("shared", [UserMessage(f"{tag}/shared/1")])
        else:
            r = store.append(stream, events, expected_version=version)
        version = r.stream_version
        os.write(fd, f"{tag} {r.first_position} {r.last_position}\n".encode())  # only after it returned

for t in range(threads):
    threading.Thread(target=work, args=(t,), daemon=True).start()
os.write(fd, b"started\n")
while True:  # how many commands shared their groups so far
    threading.Event().wait(0.02)
    g = store.db.group
    os.write(fd, f"stats {g.groups} {g.commands}\n".encode())
"""


def _audit(path: str, acks: list[tuple[str, int, int]]) -> int:
    """Check the file after a kill; returns how many commands it holds."""
    with eventstore.open(path) as store:
        assert store.verify(check_file=True).ok
        assert store.verify_projections().ok
        commands: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
        for e in store.read_all():
            tag, rest = e.data.text.rsplit("/", 2)[0], e.data.text.rsplit("/", 2)[1:]
            commands[tag].append((e.position, e.stream, int(rest[1])))
        flags = {p: f & codec.COMMAND_FLAGS
                 for p, f in store.db.query("SELECT position, flags FROM events")}
        for tag, rows in commands.items():
            seq = int(tag.split("/")[2])
            own = [r for r in rows if r[1] != "shared"]
            k = own[0][2]
            # Whole: every event of the command is there, in one adjacent run of positions.
            assert len(own) == k and len(rows) == k + (seq % 3 == 0), (tag, rows)
            positions = sorted(r[0] for r in rows)
            assert positions == list(range(positions[0], positions[0] + len(rows))), (tag, rows)
            assert flags[positions[0]] == codec.FLAG_COMMAND_START
            assert all(flags[p] == codec.FLAG_COMMAND_CONTINUES for p in positions[1:])
        for tag, first, last in acks:  # acknowledged means present, where it was acknowledged
            assert tag in commands, f"acknowledged command {tag} is missing"
            own = sorted(r[0] for r in commands[tag] if r[1] != "shared")
            assert (own[0], own[-1]) == (first, last), tag
        return len(commands)


def test_sigkill_during_group_commits_loses_no_acknowledged_command(tmp_path):
    """Twenty kills at random moments: acknowledged commands all present, every command whole."""
    path, ack_path = str(tmp_path / "crash.db"), str(tmp_path / "acks")
    eventstore.open(path).close()
    rng = random.Random(17)
    acks: list[tuple[str, int, int]] = []
    held = 0
    shared = False  # some groups held more than one command
    for rnd in range(ROUNDS):
        open(ack_path, "w").close()
        child = subprocess.Popen([sys.executable, "-c", _CHILD, ROOT, path, ack_path, str(rnd), str(THREADS)],
                                 stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while "started" not in open(ack_path).read():
                assert child.poll() is None, child.stderr.read() if child.stderr else ""
                assert time.monotonic() < deadline, "child never started"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            if child.stderr:
                child.stderr.close()
        for line in open(ack_path).read().splitlines():
            parts = line.split()
            if parts[0] == "stats":
                shared = shared or int(parts[2]) > int(parts[1])
            elif len(parts) == 3:
                acks.append((parts[0], int(parts[1]), int(parts[2])))
        held_now = _audit(path, acks)
        assert held_now >= held
        held = held_now
    assert len(acks) > ROUNDS  # the kills did land among running commands
    assert shared  # ...and among groups of several commands
