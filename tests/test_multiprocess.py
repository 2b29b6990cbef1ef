"""Real processes appending into one file at the same time: 4 x 500 appends give 2,000
events, gap-free, in commit order, with a sound chain and a catalogue equal to a rebuild,
and no "database is locked" ever reaches a caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from eventstore import codec
from tests import strategies as gen
from eventstore.testing.helpers import assert_consistent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = 4
APPENDS = 500

_WORKER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import eventstore
from eventstore.demo import ModelReply, UserMessage
from projections.catalogue import catalogue
path, me, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
open(os.path.join(os.path.dirname(path), f"ready-{me}"), "w").close()
go = os.path.join(os.path.dirname(path), "go")
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
out = []
with eventstore.open(path, synchronous="normal", projections=[catalogue]) as store:
    for i in range(n):
        if i % 5 == 4:  # a stream every worker appends to
            r = store.append("mp:shared", [ModelReply(f"{me}/{i}", "m", i, me)])
        else:  # its own stream, with the exact expected version
            own = i - i // 5
            r = store.append(f"mp:{me}", [UserMessage(f"{me}/{i}")], expected_version=own)
        out.append([r.first_position, r.stream, r.stream_version])
print(json.dumps(out))
"""


def test_four_processes_appending_500_times_each_leave_2000_events_gap_free(tmp_path):
    path = str(tmp_path / "mp.db")
    gen.open_store(path).close()  # created up front; creation races are test_files' business
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, ROOT, path, str(w), str(APPENDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(WORKERS)]
    try:
        deadline = time.monotonic() + 60
        while sum(n.startswith("ready-") for n in os.listdir(tmp_path)) < WORKERS:  # all started...
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "workers died"
            time.sleep(0.01)
        open(tmp_path / "go", "w").close()  # ...then all begin appending together
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "locked" not in err and "Busy" not in err, err
    results = [json.loads(out) for out, _err in outputs]
    for w, mine in enumerate(results):
        positions = [r[0] for r in mine]
        assert positions == sorted(positions)  # each process saw its appends in commit order
        assert [r[2] for r in mine if r[1] == f"mp:{w}"] == list(range(1, APPENDS - APPENDS // 5 + 1))
    everything = sorted(r[0] for mine in results for r in mine)
    assert everything == list(range(1, WORKERS * APPENDS + 1))
    shared = sorted((r[0], r[2]) for mine in results for r in mine if r[1] == "mp:shared")
    assert [v for _p, v in shared] == list(range(1, WORKERS * APPENDS // 5 + 1))  # versions follow positions

    with gen.open_store(path) as store:
        assert store.last_position() == WORKERS * APPENDS
        assert [e.position for e in store.read_all(raw=True)] == everything
        # Every append was its own command, whichever process made it and whatever ran
        # between: each row starts a command and none continues another.
        marks = {flags & codec.COMMAND_FLAGS for (flags,) in store.db.query("SELECT flags FROM events")}
        assert marks == {codec.FLAG_COMMAND_START}
        assert_consistent(store)
        counts = {s.stream: s.event_count for s in store.streams()}
        assert counts == {"mp:shared": WORKERS * APPENDS // 5,
                          **{f"mp:{w}": APPENDS - APPENDS // 5 for w in range(WORKERS)}}
        rebuilt = store.rebuild()
        assert rebuilt.events == WORKERS * APPENDS
        assert {s.stream: s.event_count for s in store.streams()} == counts


THREADED_WORKERS, THREADS, THREAD_APPENDS = 3, 4, 60

_THREADED_WORKER = """
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import eventstore
from eventstore.demo import ModelReply, UserMessage
path, me, threads, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
open(os.path.join(os.path.dirname(path), f"ready-{me}"), "w").close()
go = os.path.join(os.path.dirname(path), "go")
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
out, errors = [], []
with eventstore.open(path, synchronous="normal") as store:
    def work(t):
        try:
            for i in range(n):
                if i % 4 == 3:
                    r = store.append("mp:shared", [ModelReply(f"{me}/{t}/{i}", "m", i, me)])
                else:
                    own = i - i // 4
                    r = store.append(f"mp:{me}:{t}", [UserMessage(f"{me}/{t}/{i}")], expected_version=own)
                out.append([r.first_position, r.stream, r.stream_version, t])
        except BaseException as exc:
            errors.append(repr(exc))
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    groups, commands = store.db.group.groups, store.db.group.commands
print(json.dumps({"out": out, "errors": errors, "groups": groups, "commands": commands}))
"""


def test_processes_with_several_threads_each_share_groups_and_lose_nothing(tmp_path):
    """3 processes x 4 threads on one file: group commit inside each process, the write lock
    between them; every append lands once, gap-free, each still one command."""
    path = str(tmp_path / "mpt.db")
    gen.open_store(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", _THREADED_WORKER, ROOT, path, str(w), str(THREADS),
                               str(THREAD_APPENDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(THREADED_WORKERS)]
    try:
        deadline = time.monotonic() + 60
        while sum(n.startswith("ready-") for n in os.listdir(tmp_path)) < THREADED_WORKERS:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "workers died"
            time.sleep(0.01)
        open(tmp_path / "go", "w").close()
        outputs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    reports = [json.loads(out) for out, _err in outputs]
    assert [r["errors"] for r in reports] == [[]] * THREADED_WORKERS
    total = THREADED_WORKERS * THREADS * THREAD_APPENDS
    everything = sorted(r[0] for rep in reports for r in rep["out"])
    assert everything == list(range(1, total + 1))
    for w, rep in enumerate(reports):
        for t in range(THREADS):
            mine = [r for r in rep["out"] if r[3] == t]
            assert [r[0] for r in mine] == sorted(r[0] for r in mine)
            assert [r[2] for r in mine if r[1] == f"mp:{w}:{t}"] == list(
                range(1, THREAD_APPENDS - THREAD_APPENDS // 4 + 1))
    shared = sorted((r[0], r[2]) for rep in reports for r in rep["out"] if r[1] == "mp:shared")
    assert [v for _p, v in shared] == list(range(1, len(shared) + 1))
    with gen.open_store(path) as store:
        marks = {flags & codec.COMMAND_FLAGS for (flags,) in store.db.query("SELECT flags FROM events")}
        assert marks == {codec.FLAG_COMMAND_START}  # one command per append, groups or not
        assert_consistent(store)
