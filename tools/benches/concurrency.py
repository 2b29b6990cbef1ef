"""Concurrency: many callers of one store handle sharing write transactions (group commit).

Callers are threads, or asyncio tasks through `eventstore.aio`; each appends 1-event
commands to a stream of its own (the core benchmark's ~200-byte event), or runs a
realistic mix per session (a runtime commit of one message, an enqueue, a lease
renewal). Rates are events (or commands) per second over all callers; latencies are
per call, pooled over callers (p50 and p99 in the notes).

References, measured in the same run:
* raw apsw, one writer: BEGIN IMMEDIATE, one INSERT of the same row shape, COMMIT;
* raw apsw, N writer processes on one file (what N processes of the store would face);
* the path an append took before group commit (BEGIN IMMEDIATE, the append, COMMIT, no
  queue), for the latency of one caller alone.

Run it through the harness: `python tools/bench.py --only concurrency [--quick]`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import apsw
import attrs
import msgpack

import eventstore
import eventstore.aio
from benches import row, warm_up
from benches.core import EVENTS_DDL, INSERT, RAW_HASH, make_event

TITLE = "Concurrency: group commit against raw SQLite"

_RAW_CHILD = r"""
import os, sys, time, apsw, msgpack
path, n, sync, insert, me = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = apsw.Connection(path); c.set_busy_timeout(60000)
c.execute(f"PRAGMA synchronous={sync}")
payload = msgpack.packb({"k": "x" * 180})
open(f"{path}.ready{me}", "w").close()
while not os.path.exists(path + ".go"):
    time.sleep(0.001)
for i in range(n):
    c.execute("BEGIN IMMEDIATE")
    c.execute(insert, (None, f"raw{me}", i, "bench.tool_called", 1, 0, 2, payload, bytes(32)))
    c.execute("COMMIT")
"""


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def _raw_single(path: str, sync: str, n: int) -> float:
    """Events/s of one raw apsw writer committing 1-row transactions."""
    c = apsw.Connection(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute(f"PRAGMA synchronous={sync}")
    c.execute(EVENTS_DDL)
    counter = [0]

    def write(k: int) -> None:
        for _ in range(k):
            counter[0] += 1
            ev = make_event(counter[0])
            c.execute("BEGIN IMMEDIATE")
            c.execute(INSERT, (None, "raw", counter[0], "bench.tool_called", 1, 0, 2,
                               msgpack.packb(attrs.asdict(ev)), RAW_HASH))
            c.execute("COMMIT")

    warm_up(path, write, 50, limit=20)
    t = time.perf_counter()
    write(n)
    rate = n / (time.perf_counter() - t)
    c.close()
    return rate


def _raw_processes(path: str, sync: str, procs: int, each: int) -> float:
    """Events/s of `procs` raw apsw writer processes on one file."""
    c = apsw.Connection(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute(EVENTS_DDL)
    c.close()
    children = [subprocess.Popen([sys.executable, "-c", _RAW_CHILD, path, str(each), sync, INSERT, str(k)])
                for k in range(procs)]
    while not all(os.path.exists(f"{path}.ready{k}") for k in range(procs)):  # all imported and connected
        time.sleep(0.01)
    t = time.perf_counter()
    open(path + ".go", "w").close()
    for ch in children:
        ch.wait()
    return procs * each / (time.perf_counter() - t)


def _ungrouped(store: eventstore.Store, n: int, lat: list[float]) -> None:
    """Latencies (s) of appends by the path before group commit: BEGIN IMMEDIATE, append, COMMIT."""
    db, log = store.db, store.log
    conn = db._conn
    assert conn is not None
    for i in range(n):
        t = time.perf_counter()
        fn = log.prepare_append("solo-old", [make_event(i)])
        with db.lock:
            conn.execute("BEGIN IMMEDIATE")
            db.serial += 1
            db.command += 1
            db._write = True
            db.depth = 1
            fn()
            db.depth = 0
            err = db._commit()
            assert err is None
        lat.append(time.perf_counter() - t)


def _grouped(store: eventstore.Store, n: int, lat: list[float]) -> None:
    """Latencies (s) of `Store.append` by a caller alone (the group commit path)."""
    for i in range(n):
        t = time.perf_counter()
        store.append("solo", [make_event(i)])
        lat.append(time.perf_counter() - t)


def _lone_p50s(store: eventstore.Store, n: int) -> tuple[float, float]:
    """(p50 grouped, p50 before group commit) in seconds, measured in alternating rounds.

    Why rounds: the two paths run back to back on one file, and at FULL the disk's fsync
    time drifts over a run (checkpoints, the WAL's restart, other processes' writes);
    measured one after the other, whichever ran second met a different disk."""
    new: list[float] = []
    old: list[float] = []
    rounds = 8
    for r in range(rounds):
        first, second = ((_grouped, new), (_ungrouped, old)) if r % 2 else ((_ungrouped, old), (_grouped, new))
        first[0](store, n // rounds, first[1])
        second[0](store, n // rounds, second[1])
    return statistics.median(new), statistics.median(old)


def _threads(callers: int, each: int, call: Callable[[int, int], Any]) -> tuple[float, list[float]]:
    """Run `call(caller, i)` from threads; (operations/s, latencies)."""
    lat: list[list[float]] = [[] for _ in range(callers)]
    start = threading.Barrier(callers + 1)

    def work(k: int) -> None:
        start.wait()
        mine = lat[k]
        for i in range(each):
            t = time.perf_counter()
            call(k, i)
            mine.append(time.perf_counter() - t)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(callers)]
    for th in ts:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in ts:
        th.join()
    return callers * each / (time.perf_counter() - t0), [x for m in lat for x in m]


def _tasks(callers: int, each: int, call: Callable[[int, int], Any]) -> tuple[float, list[float]]:
    """Run `await call(caller, i)` from asyncio tasks; (operations/s, latencies)."""
    lat: list[float] = []

    async def work(k: int) -> None:
        for i in range(each):
            t = time.perf_counter()
            await call(k, i)
            lat.append(time.perf_counter() - t)

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*[work(k) for k in range(callers)])
        return time.perf_counter() - t0

    loop = asyncio.new_event_loop()
    try:
        seconds = loop.run_until_complete(main())
    finally:
        loop.close()
    return callers * each / seconds, lat


def _note(lat: list[float], group: Any = None, before: tuple[int, int] = (0, 0)) -> str:
    """Latency percentiles; with the GroupCommit (and its counters before the run), the
    mean number of commands per committed group."""
    text = f"p50 {_pct(lat, 0.5) * 1e6:,.0f} us, p99 {_pct(lat, 0.99) * 1e6:,.0f} us per call"
    if group is not None and group.groups > before[0]:
        text += f", {(group.commands - before[1]) / (group.groups - before[0]):.1f} commands per group"
    return text


def _targets(callers: int, sync: str) -> str | None:
    if sync == "full" and callers == 8:
        return "ratio >= 5"
    if sync == "full" and callers == 32:
        return "ratio >= 10"
    if sync == "normal" and callers == 8:
        return "ratio >= 1"
    return None


def _mix_setup(store: eventstore.Store, callers: int) -> list[Any]:
    from eventstore.leases import LeaseOwner

    fences = []
    for k in range(callers):
        store.sessions.create(f"mix{k}")
        fences.append(store.leases.claim(f"mix{k}", LeaseOwner(f"w{k}", "i"), 3_600_000).lease.fence)
    return fences


def _mix_commands(k: int, i: int, fences: list[Any]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """The realistic mix of one step: (facade, method, args) x 3."""
    from eventstore.commits import EventPayload, GraphAppend, RuntimeCommit, SessionNode
    from eventstore.queue import AgentFrameTask, QueuedWorkDraft

    node = SessionNode(f"n{k}-{i}", EventPayload({"role": "assistant", "parts": [
        {"kind": "text", "content": "the refund policy allows annual plans within 30 days"}]}),
        f"n{k}-{i - 1}" if i else None, timestamp="2026-01-01T00:00:00Z")
    commit = RuntimeCommit(f"mix{k}", fences[k], GraphAppend((node,), node.node_id))
    return [("sessions", "commit", (commit,)),
            ("queue", "enqueue", (QueuedWorkDraft(f"mix{k}", (AgentFrameTask(f"f{k}-{i}", "x"),)),)),
            ("leases", "renew", (fences[k], 3_600_000))]


def run(workdir: str, quick: bool) -> list[dict]:
    """Measure the rows described in the module docstring."""
    syncs = ("full", "normal")
    counts = [1, 2, 8] if quick else [1, 2, 4, 8, 32]
    per_caller = {"full": 4 if quick else 200, "normal": 20 if quick else 1_000}
    raw_procs = [2] if quick else [8, 32]
    rows: list[dict] = []
    for sync in syncs:
        n = per_caller[sync]
        raw1 = _raw_single(os.path.join(workdir, f"raw-{sync}.db"), sync.upper(), n * 4)
        rows.append(row(f"raw apsw, 1 writer, {sync.upper()}", raw1, note="1-row transactions"))
        for p in raw_procs:
            rate = _raw_processes(os.path.join(workdir, f"rawp-{sync}-{p}.db"), sync.upper(), p, n)
            rows.append(row(f"raw apsw, {p} writer processes, {sync.upper()}", rate, reference=raw1,
                            reference_name="raw, 1 writer"))
        path = os.path.join(workdir, f"store-{sync}.db")
        with eventstore.open(path, synchronous=sync) as store:
            warm_up(path, lambda k: [store.append("warm", [make_event(i)]) for i in range(k)], 50, limit=20)
            solo, old = _lone_p50s(store, n * 4)
            rows.append(row(f"one caller alone, p50 latency, {sync.upper()}", solo * 1e6,
                            "us", old * 1e6, "append before group commit", target="ratio <= 1.1",
                            note="the two paths alternate in 8 rounds on one file"))
            for callers in counts:
                group = store.db.group
                before = (group.groups, group.commands)
                rate, lat = _threads(callers, n,
                                     lambda k, i: store.append(f"th{callers}-{k}", [make_event(i)]))
                rows.append(row(f"{callers} threads, 1-event appends, {sync.upper()}", rate, reference=raw1,
                                reference_name="raw, 1 writer", note=_note(lat, group, before),
                                target=_targets(callers, sync)))
        path = os.path.join(workdir, f"aio-{sync}.db")
        for callers in counts:
            astore = eventstore.aio.AsyncStore(eventstore.open(path, synchronous=sync), readers=0,
                                               workers=max(callers, 1))
            group = astore.sync.db.group
            before = (group.groups, group.commands)
            rate, lat = _tasks(callers, n, lambda k, i: astore.append(f"task{callers}-{k}", [make_event(i)]))
            note = _note(lat, group, before)
            asyncio.run(astore.close())
            rows.append(row(f"{callers} asyncio tasks, 1-event appends, {sync.upper()}", rate, reference=raw1,
                            reference_name="raw, 1 writer", note=note, target=_targets(callers, sync)))
        mix_counts = [1, 8] if quick else [1, 8, 32]
        steps = max(2, n // 4)
        base = None
        for callers in mix_counts:
            path = os.path.join(workdir, f"mix-{sync}-{callers}.db")
            with eventstore.open(path, synchronous=sync) as store:
                fences = _mix_setup(store, callers)

                def mix(k: int, i: int, store: eventstore.Store = store, fences: list[Any] = fences) -> None:
                    for facade, method, args in _mix_commands(k, i, fences):
                        getattr(getattr(store, facade), method)(*args)

                rate, lat = _threads(callers, steps, mix)
            base = base or rate * 3
            rows.append(row(f"mix (commit + enqueue + renew), {callers} threads, {sync.upper()}", rate * 3,
                            "commands/s", base, "mix, 1 caller", note=_note(lat).replace("call", "step")))
            path = os.path.join(workdir, f"amix-{sync}-{callers}.db")
            sync_store = eventstore.open(path, synchronous=sync)
            fences = _mix_setup(sync_store, callers)
            astore = eventstore.aio.AsyncStore(sync_store, readers=0, workers=max(callers, 1))

            async def amix(k: int, i: int, astore: Any = astore, fences: list[Any] = fences) -> None:
                for facade, method, args in _mix_commands(k, i, fences):
                    await getattr(getattr(astore, facade), method)(*args)

            rate, lat = _tasks(callers, steps, amix)
            asyncio.run(astore.close())
            rows.append(row(f"mix (commit + enqueue + renew), {callers} asyncio tasks, {sync.upper()}",
                            rate * 3, "commands/s", base, "mix, 1 caller",
                            note=_note(lat).replace("call", "step")))
    return rows
