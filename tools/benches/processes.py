"""Process registry benchmark: event appends, the change feed, and await latency across processes.

* event append rate into one process, and spread round-robin over 1,000 processes
  (each append is one command: read the record, check the replay key, decide, append,
  apply the projection, commit), side by side with raw apsw inserting one row per
  transaction in the same run;
* change-feed read rate (records per second, pages of 1,000) and events_after read rate;
* await latency: a second OS process blocks in `wait_for`; the time from the completing
  commit to the waiter returning, median over several rounds, for two poll intervals.

Run it through the harness: `python tools/bench.py --only processes [--quick]`.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any

import apsw
import msgpack

import eventstore
from eventstore.processes import (
    AppendEventRequest, Disposition, EventTypeSpec, ExternalInput, ExternalOwner, HostScope, PayloadSchema,
    ProcessRegistration, Provenance, SessionScope, Success,
)

TITLE = "Process registry: event appends, change feed, await latency"

LINE = EventTypeSpec("tool.output", PayloadSchema("object", ("line",)))
PAYLOAD = {"line": "collected 120 items; running tests/test_api.py", "stream": "stdout", "bytes": 48}

_WAITER = r"""
import sys, time, eventstore
path, poll = sys.argv[1], float(sys.argv[2])
with eventstore.open(path) as store:
    for line in sys.stdin:
        pid = line.strip()
        print("ready", flush=True)
        store.processes.wait_for(pid, timeout_s=30, poll_interval_s=poll)
        print(repr(time.time()), flush=True)
"""


def _registration(pid: str) -> ProcessRegistration:
    return ProcessRegistration(pid, ExternalInput({"job": pid}), Disposition.EXTERNALLY_OWNED,
                               Provenance(HostScope()), (LINE,), wake_target=SessionScope("bench"))


def _raw_apsw_rate(path: str, n: int) -> float:
    """Rows per second for raw apsw: one INSERT per BEGIN IMMEDIATE/COMMIT, WAL, NORMAL."""
    conn = apsw.Connection(path)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, "
                 "version INTEGER NOT NULL, type TEXT NOT NULL, payload BLOB, UNIQUE (stream, version))")
    blob = msgpack.packb(PAYLOAD)
    started = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events VALUES (NULL, 'process:p', ?, 'tool.output', ?)", (i + 1, blob))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    conn.close()
    return rate


def _append_rate(store: eventstore.Store, pids: list[str], n: int) -> float:
    append = store.processes.append_event
    request = AppendEventRequest("tool.output", PAYLOAD)
    k = len(pids)
    started = time.perf_counter()
    for i in range(n):
        append(pids[i % k], request)
    return n / (time.perf_counter() - started)


def _feed_rate(store: eventstore.Store) -> tuple[int, float]:
    procs = store.processes
    started = time.perf_counter()
    cursor, n = 0, 0
    while True:
        page = procs.changes_since(cursor, limit=1000)
        if not page.records:
            return n, time.perf_counter() - started
        n += len(page.records)
        cursor = page.next_cursor


def _await_latency(path: str, rounds: int, poll: float) -> float:
    """Median ms from the completing commit to a waiter in another process returning."""
    with eventstore.open(path, synchronous="normal") as store:
        procs = store.processes
        child = subprocess.Popen([sys.executable, "-c", _WAITER, path, str(poll)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1)
        latencies = []
        try:
            for r in range(rounds):
                pid = f"await-{poll}-{r}"
                procs.register(_registration(pid))
                child.stdin.write(pid + "\n")
                child.stdin.flush()
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError("the waiting process did not start")
                time.sleep(random.uniform(0.01, 0.03))  # land anywhere in the waiter's poll cycle
                procs.complete(pid, Success(r), ExternalOwner("bench"))
                committed = time.time()
                returned = float(child.stdout.readline())
                latencies.append((returned - committed) * 1000)
        finally:
            child.stdin.close()
            child.wait(30)
    return statistics.median(latencies)


def run(workdir: str, quick: bool) -> list[dict[str, Any]]:
    """Measure and return the rows (see the module docstring)."""
    n_one = 2_000 if quick else 10_000
    n_many = 3_000 if quick else 20_000
    n_procs = 1_000
    rows: list[dict[str, Any]] = []
    raw = _raw_apsw_rate(os.path.join(workdir, "raw.db"), n_one)
    raw_name = "raw apsw, 1 row per transaction, WAL NORMAL (same run)"

    path = os.path.join(workdir, "processes.db")
    with eventstore.open(path, synchronous="normal") as store:
        procs = store.processes
        procs.register(_registration("one"))
        rate = _append_rate(store, ["one"], n_one)
        rows.append({"work": "append_event, one process", "value": round(rate), "unit": "events/s",
                     "reference": round(raw), "reference_name": raw_name,
                     "note": f"{n_one:,} appends, synchronous=normal"})
        pids = [f"proc-{i:04d}" for i in range(n_procs)]
        started = time.perf_counter()
        for pid in pids:
            procs.register(_registration(pid))
        reg_rate = n_procs / (time.perf_counter() - started)
        rows.append({"work": "register", "value": round(reg_rate), "unit": "processes/s", "reference": round(raw),
                     "reference_name": raw_name, "note": "registration hash + validation + one event each"})
        rate = _append_rate(store, pids, n_many)
        rows.append({"work": "append_event, spread over 1,000 processes", "value": round(rate), "unit": "events/s",
                     "reference": round(raw), "reference_name": raw_name,
                     "note": f"{n_many:,} appends round-robin"})
        n, seconds = _feed_rate(store)
        rows.append({"work": "change feed read (pages of 1,000)", "value": round(n / seconds), "unit": "records/s",
                     "reference": None, "reference_name": "", "note": f"{n:,} records from cursor 0"})
        started = time.perf_counter()
        events = procs.events_after("one")
        seconds = time.perf_counter() - started
        rows.append({"work": "events_after, one process", "value": round(len(events) / seconds), "unit": "events/s",
                     "reference": None, "reference_name": "", "note": f"{len(events):,} events, decoded from the log"})

    rounds = 5 if quick else 20
    for poll in (0.05, 0.005):
        ms = _await_latency(os.path.join(workdir, "await.db"), rounds, poll)
        rows.append({"work": f"await latency from a second process (poll {poll * 1000:g} ms)", "value": round(ms, 1),
                     "unit": "ms", "reference": poll * 1000, "reference_name": "poll interval",
                     "note": f"median of {rounds}: completing commit -> wait_for returns"})
    return rows


if __name__ == "__main__":  # a direct run, without the harness
    import tempfile

    for row in run(tempfile.mkdtemp(prefix="bench-processes-"), quick="--quick" in sys.argv):
        print(row)
