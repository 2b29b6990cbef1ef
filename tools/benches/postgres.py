"""PostgreSQL: the store's backend against raw psycopg, the eventsourcing library's
PostgreSQL recorder and the store on SQLite, in one run.

Every contender writes rows of the same shape (stream, version, type, payload of about
120 bytes) with synchronous_commit on (SQLite: synchronous=FULL), each in a fresh schema
(file):

* raw psycopg: `INSERT INTO events (...) VALUES (...)` into a table whose position is a
  BIGSERIAL, one autocommit statement per one-event command (one round trip), a multi-row
  insert per 1,000-event batch; reads `SELECT ... ORDER BY position LIMIT 1000` pages and
  unpacks each payload with msgpack. No ordering guarantee: positions can become visible
  out of order, which is what the store's lock prevents.
* eventsourcing: `PostgresApplicationRecorder.insert_events` (its table lock serialises
  writers) and `select_notifications` pages of 1,000.
* the store: `eventstore.open("postgresql://...")` with every projection kept, one-event
  appends, 1,000-event appends, `read_all`; many callers in one process (threads sharing one
  handle: the group commit); a runtime commit (`store.sessions.commit`).
* the store on SQLite: the same work on a file (synchronous="full").

Writers are processes (8 of them for the concurrent rows). Run alone:
`python tools/benches/postgres.py [--quick] [--dsn DSN]`; through tools/bench.py it is
discovered like the others. docs/postgres.md quotes the figures.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

TITLE = "PostgreSQL backend"
DSN = os.environ.get("EVENTSTORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PAYLOAD = {"text": "x" * 110}

_RAW_DDL = """
CREATE TABLE {s}.events (
    position BIGSERIAL PRIMARY KEY, stream TEXT NOT NULL, version BIGINT NOT NULL, type TEXT NOT NULL,
    schema BIGINT NOT NULL, recorded_at_ms BIGINT NOT NULL, flags BIGINT NOT NULL, payload BYTEA,
    hash BYTEA NOT NULL, UNIQUE (stream, version))
"""
_RAW_INSERT = ("INSERT INTO {s}.events (stream, version, type, schema, recorded_at_ms, flags, payload, hash) "
               "VALUES (%s, %s, 'bench.pg_note', 1, %s, 0, %s, %s)")


def _note() -> Any:
    try:
        from benches._pg_events import BenchNote
    except ImportError:
        from tools.benches._pg_events import BenchNote
    return BenchNote


def _url(schema: str) -> str:
    return f"{DSN}{'&' if '?' in DSN else '?'}schema={schema}"


# --- the contenders' writers (each runs in its own process) ------------------------------

def _raw_writer(target: str, writer: int, n: int, batch: int) -> int:
    import hashlib

    import msgpack
    import psycopg

    payload = msgpack.packb(PAYLOAD)
    digest = hashlib.sha256(payload).digest()
    sql = _RAW_INSERT.format(s=target)
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        stream, version = f"w{writer}", 0
        for _ in range(n):
            rows = []
            for _ in range(batch):
                version += 1
                rows.append((stream, version, int(time.time() * 1000), payload, digest))
            if batch == 1:
                conn.execute(sql, rows[0])
            else:
                values = ", ".join(["(%s, %s, 'bench.pg_note', 1, %s, 0, %s, %s)"] * len(rows))
                conn.execute(sql.split(" VALUES ")[0] + " VALUES " + values, [v for r in rows for v in r])
    return n * batch


def _es_recorder(target: str) -> Any:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = psycopg_conninfo()
    datastore = PostgresDatastore(parts.get("dbname", "test"), parts.get("host", "127.0.0.1"),
                                  parts.get("port", "5432"), parts.get("user", "postgres"),
                                  parts.get("password", ""), schema=target)
    recorder = PostgresApplicationRecorder(datastore)
    return recorder


def psycopg_conninfo() -> dict[str, str]:
    """The DSN's parts (host, port, dbname, user, password) for eventsourcing's settings."""
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(DSN).items()}


def _es_writer(target: str, writer: int, n: int, batch: int) -> int:
    import msgpack
    from eventsourcing.persistence import StoredEvent

    recorder = _es_recorder(target)
    payload = msgpack.packb(PAYLOAD)
    originator = uuid.uuid4()
    version = 0
    for _ in range(n):
        events = []
        for _ in range(batch):
            version += 1
            events.append(StoredEvent(originator, version, "bench.pg_note", payload))
        recorder.insert_events(events)
    recorder.datastore.close()
    return n * batch


def _store_writer(target: str, writer: int, n: int, batch: int) -> int:
    import eventstore

    note = _note()(PAYLOAD["text"])
    with eventstore.open(target, synchronous="full") as store:
        stream = f"w{writer}"
        events = [note] * batch
        for _ in range(n):
            store.append(stream, events)
    return n * batch


_WRITERS: dict[str, Callable[[str, int, int, int], int]] = {
    "raw": _raw_writer, "es": _es_writer, "store": _store_writer, "sqlite": _store_writer}


def _child(kind: str, target: str, writer: int, n: int, batch: int, start: Any, out: Any) -> None:
    try:
        start.wait()
        began = time.perf_counter()
        done = _WRITERS[kind](target, writer, n, batch)
        out.put((done, began, time.perf_counter()))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        out.put(exc)


def _writers(kind: str, target: str, writers: int, n: int, batch: int = 1, first: int = 0) -> float:
    """Events/s for `writers` processes each writing `n` commands of `batch` events."""
    ctx = multiprocessing.get_context("fork")
    out, start = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_child, args=(kind, target, first + w, n, batch, start, out))
             for w in range(writers)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # every writer connected and waiting: the clock starts with all of them
    start.set()
    results = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    total = sum(r[0] for r in results)
    return total / (max(r[2] for r in results) - min(r[1] for r in results))


# --- setup and reads ------------------------------------------------------------------------

class _Targets:
    """Fresh schemas (files) for each contender, dropped at the end."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.schemas: list[str] = []

    def new(self, kind: str) -> str:
        import psycopg

        import eventstore

        name = f"bench_{kind}_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            path = os.path.join(self.workdir, name + ".db")
            eventstore.open(path, synchronous="full").close()
            return path
        self.schemas.append(name)
        if kind == "store":
            eventstore.open(_url(name)).close()
            return _url(name)
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
            if kind == "raw":
                conn.execute(_RAW_DDL.format(s=name))
        if kind == "es":
            recorder = _es_recorder(name)
            recorder.create_table()
            recorder.datastore.close()
        return name

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(DSN, autocommit=True) as conn:
            for name in self.schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _read(kind: str, target: str) -> float:
    """Events/s reading everything back in pages of 1,000 (payloads unpacked)."""
    started = time.perf_counter()
    count = 0
    if kind == "raw":
        import msgpack
        import psycopg

        unpack = msgpack.unpackb
        with psycopg.connect(DSN, autocommit=True) as conn:
            position = 0
            while True:
                rows = conn.execute(f"SELECT position, stream, version, type, schema, recorded_at_ms, flags, "
                                    f"payload FROM {target}.events WHERE position > %s ORDER BY position "
                                    f"LIMIT 1000", (position,)).fetchall()
                for r in rows:
                    unpack(r[7])
                count += len(rows)
                if len(rows) < 1000:
                    break
                position = rows[-1][0]
    elif kind == "es":
        import msgpack

        recorder = _es_recorder(target)
        start = 1
        while True:
            page = recorder.select_notifications(start, 1000)
            for n in page:
                msgpack.unpackb(n.state)
            count += len(page)
            if len(page) < 1000:
                break
            start = page[-1].id + 1
        recorder.datastore.close()
    else:
        import eventstore

        with eventstore.open(target) as store:
            started = time.perf_counter()
            for _ev in store.read_all():
                count += 1
    return count / (time.perf_counter() - started)


def _threads(target: str, callers: int, n: int) -> tuple[float, float]:
    """(events/s, commands per commit) for `callers` threads appending through one handle."""
    import eventstore

    note = _note()(PAYLOAD["text"])
    with eventstore.open(target, synchronous="full") as store:
        group = store.db.group
        groups0, commands0 = group.groups, group.commands
        barrier = threading.Barrier(callers + 1)

        def caller(i: int) -> None:
            barrier.wait()
            for _ in range(n):
                store.append(f"t{i}", [note])

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        for t in threads:
            t.join()
        rate = callers * n / (time.perf_counter() - started)
        per = (group.commands - commands0) / max(group.groups - groups0, 1)
    return rate, per


def _runtime_commits(target: str, n: int) -> float:
    """Runtime commits/s (one message node, a checkpoint, usage) on one session."""
    import eventstore
    from eventstore.commits import (
        Checkpoint, EventPayload, GraphAppend, ModelConfig, RuntimeCommit, SessionNode, TurnState, UsageDelta,
    )
    from eventstore.leases import Acquired, LeaseOwner

    model = ModelConfig("anthropic", "claude-x")
    with eventstore.open(target, synchronous="full") as store:
        store.sessions.create("s1")
        got = store.leases.claim("s1", LeaseOwner("bench-runtime", "i1"), 3_600_000)
        assert isinstance(got, Acquired)
        parent = None
        started = time.perf_counter()
        for i in range(n):
            node = SessionNode(f"n{i}", EventPayload({"role": "user", "parts": [{"kind": "text", "content": "hi"}]}),
                               parent, timestamp="2026-03-02T09:00:00.000Z")
            store.sessions.commit(RuntimeCommit(
                "s1", got.lease.fence, GraphAppend((node,), f"n{i}"), expected_head_revision=i, config=model,
                checkpoint=Checkpoint(TurnState(i, {"input": i})),
                usage_deltas=(UsageDelta("turn", model.model, 100, 20),)))
            parent = f"n{i}"
        return n / (time.perf_counter() - started)


def _median(rounds: int, kinds: tuple[str, ...], measure: Callable[[str, int], float]) -> dict[str, float]:
    """Median of `measure(kind, round)` over `rounds`, the kinds' order rotated each round."""
    got: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for k in order:
            got[k].append(measure(k, r))
    return {k: statistics.median(v) for k, v in got.items()}


# --- the table ---------------------------------------------------------------------------------

def run(workdir: str, quick: bool) -> list[dict]:
    """Rows for tools/bench.py (targets from the PostgreSQL issue)."""
    try:
        from benches import row
    except ImportError:
        from tools.benches import row

    n1, n8, batches, reads, threads_n, commits = (
        (100, 30, 4, 10_000, 25, 40) if quick else (2000, 500, 30, 100_000, 200, 500))
    _note()  # registers the event class in this process too (the read rows decode it)
    targets = _Targets(workdir)
    kinds = ("raw", "es", "store", "sqlite")
    rounds = 2 if quick else 3
    rows: list[dict] = []
    try:
        one_t = {k: targets.new(k) for k in kinds}
        eight_t = {k: targets.new(k) for k in kinds}
        full = {k: targets.new(k) for k in kinds}
        # Each measurement is repeated in rounds with the contenders' order rotated, and the
        # median kept: the load of a shared machine drifts (tools/benches/__init__.py).
        one = _median(rounds, kinds, lambda k, r: _writers(k, one_t[k], 1, n1, first=10 * r))
        eight = _median(rounds, kinds, lambda k, r: _writers(k, eight_t[k], 8, n8, first=10 * r))
        batch = _median(rounds, kinds, lambda k, r: _writers(k, full[k], 1, batches, 1000, first=10 * r))
        for k in kinds:  # grow every store to `reads` events for the read rows
            have = rounds * batches * 1000
            if have < reads:
                _writers(k, full[k], 1, (reads - have) // 1000, 1000, first=100)
        read = _median(rounds + 1, kinds, lambda k, r: _read(k, full[k]))
        group_rate, per_commit = _threads(targets.new("store"), 16, threads_n)
        commit_pg = _runtime_commits(targets.new("store"), commits)
        commit_sqlite = _runtime_commits(targets.new("sqlite"), commits)
    finally:
        targets.drop()
    raw, es = "raw psycopg", "eventsourcing PostgresApplicationRecorder"
    for label, got, targets_ in (
            ("1-event commands, 1 writer", one, ("ratio >= 0.6", None)),
            ("1-event commands, 8 writer processes", eight, ("ratio >= 0.5", "ratio >= 2")),
            ("1,000-event batches, 1 writer", batch, (None, None)),
            ("read_all (pages of 1,000, payloads unpacked)", read, ("ratio >= 0.6", None))):
        rows.append(row(f"{label}: raw psycopg", round(got["raw"]), note="BIGSERIAL positions, no ordering guarantee"))
        rows.append(row(f"{label}: eventsourcing recorder", round(got["es"]), reference=round(got["raw"]),
                        reference_name=raw, note="its table lock serialises writers"))
        rows.append(row(f"{label}: the store on PostgreSQL", round(got["store"]), reference=round(got["raw"]),
                        reference_name=raw, target=targets_[0]))
        if targets_[1]:
            rows.append(row(f"{label}: the store on PostgreSQL vs eventsourcing", round(got["store"]),
                            reference=round(got["es"]), reference_name=es, target=targets_[1]))
        rows.append(row(f"{label}: the store on SQLite", round(got["sqlite"]), reference=round(got["raw"]),
                        reference_name=raw, note="a file on this machine's disk"))
    rows.append(row("16 threads sharing one handle (group commit), the store on PostgreSQL", round(group_rate),
                    reference=round(one["raw"]), reference_name="raw psycopg, 1 writer", target="ratio >= 1",
                    note=f"{per_commit:.1f} commands per commit"))
    rows.append(row("runtime commits (one node, checkpoint, usage): the store on PostgreSQL", round(commit_pg),
                    unit="commits/s", reference=round(commit_sqlite), reference_name="the store on SQLite"))
    return rows


if __name__ == "__main__":
    if "--dsn" in sys.argv:
        DSN = sys.argv[sys.argv.index("--dsn") + 1]
    # This folder has modules named like the standard library's (queue.py): the tools
    # directory replaces it at the head of the path.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[0] = os.path.dirname(here)
    with tempfile.TemporaryDirectory() as tmp:
        for r in run(tmp, "--quick" in sys.argv):
            ratio = f"  x{r['value'] / r['reference']:.2f} of {r['reference_name']}" if r.get("reference") else ""
            print(f"{r['work']:<90} {r['value']:>8} {r['unit']}{ratio}")
