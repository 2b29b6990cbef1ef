"""PostgreSQL: what gap-free, commit-ordered positions cost, measured on raw psycopg.

Every variant writes the same rows (position, stream, version, payload, hash) over psycopg 3
to a fresh schema, synchronous_commit on, and differs only in how positions are assigned:

* `sequence`: a BIGSERIAL position, no lock. Fast, but positions can commit out of order
  (a reader may see 11 before 10) and rolled-back inserts leave gaps: the baseline that
  gives no ordering guarantee.
* `advisory lock`: `pg_advisory_xact_lock(store key)` first, then read the head
  (position, hash), chain the new row's hash to it and insert: what the store's backend does.
  The lock is held through COMMIT, so the WAL flush of one writer is inside the lock.
* `advisory lock, 10 commands per commit`: the same, with ten one-event commands sharing one
  transaction (what a group commit does): one lock and one flush for ten commands.
* `the store`: the same one-event appends through `eventstore.open(url)` (every projection
  kept, synchronous="full"), alone and ten per `store.transaction()`.

Run alone: `python tools/benches/postgres.py [--quick] [--dsn DSN]`. Through tools/bench.py
the module is discovered like the others. Figures go to docs/postgres.md.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import time
import uuid
from typing import Any

TITLE = "PostgreSQL: position assignment (raw psycopg)"
DSN = os.environ.get("EVENTSTORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_LOCK_KEY = 0x4C415348

_DDL = """
CREATE TABLE {s}.events (
    position BIGINT PRIMARY KEY, stream TEXT NOT NULL, version BIGINT NOT NULL,
    payload BYTEA, hash BYTEA NOT NULL, UNIQUE (stream, version));
CREATE TABLE {s}.seq_events (
    position BIGSERIAL PRIMARY KEY, stream TEXT NOT NULL, version BIGINT NOT NULL,
    payload BYTEA, hash BYTEA NOT NULL, UNIQUE (stream, version));
"""


def _writer(dsn: str, schema: str, mode: str, writer: int, n: int, per_commit: int,
            out: Any) -> None:
    import psycopg

    payload = os.urandom(120)
    if mode == "store":
        _store_writer(dsn, schema, writer, n, per_commit, out)
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        stream = f"w{writer}"
        version = 0
        started = time.perf_counter()
        done = 0
        while done < n:
            with conn.transaction():
                if mode == "sequence":
                    for _ in range(per_commit):
                        version += 1
                        conn.execute(f"INSERT INTO {schema}.seq_events (stream, version, payload, hash) "
                                     "VALUES (%s, %s, %s, %s)",
                                     (stream, version, payload, hashlib.sha256(payload).digest()))
                else:
                    # The lock first, the head read in a later statement: under READ COMMITTED
                    # that statement's snapshot is taken after the lock was granted.
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    row = conn.execute(f"SELECT position, hash FROM {schema}.events "
                                       "ORDER BY position DESC LIMIT 1").fetchone()
                    position, prev = row if row else (0, b"\0" * 32)
                    for _ in range(per_commit):
                        version += 1
                        position += 1
                        prev = hashlib.sha256(prev + position.to_bytes(8, "big") + payload).digest()
                        conn.execute(f"INSERT INTO {schema}.events VALUES (%s, %s, %s, %s, %s)",
                                     (position, stream, version, payload, prev))
            done += per_commit
        out.put((done, time.perf_counter() - started))


def _store_writer(dsn: str, schema: str, writer: int, n: int, per_commit: int, out: Any) -> None:
    """The same work through the store: eventstore.open(url), one-event appends, commands of
    `per_commit` appends sharing one store.transaction()."""
    import eventstore
    from tools.benches._pg_events import BenchNote

    sep = "&" if "?" in dsn else "?"
    with eventstore.open(f"{dsn}{sep}schema={schema}_store", synchronous="full") as store:
        stream = f"w{writer}"
        event = BenchNote("x" * 120)
        started = time.perf_counter()
        done = 0
        while done < n:
            with store.transaction():
                for _ in range(per_commit):
                    store.append(stream, [event])
            done += per_commit
        out.put((done, time.perf_counter() - started))


def measure(dsn: str, mode: str, writers: int, n: int, per_commit: int = 1) -> float:
    """Events/s for `writers` processes each appending `n` one-event commands."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(_DDL.format(s=schema))
    if mode == "store":  # the store creates its own schema: created once, before the writers race
        import eventstore

        sep = "&" if "?" in dsn else "?"
        eventstore.open(f"{dsn}{sep}schema={schema}_store").close()
    try:
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(dsn, schema, mode, w, n, per_commit, out))
                 for w in range(writers)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get(timeout=600) for _ in procs]
        elapsed = time.perf_counter() - started
        for p in procs:
            p.join()
        total = sum(r[0] for r in results)
        return total / elapsed
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.execute(f"DROP SCHEMA IF EXISTS {schema}_store CASCADE")


def run(workdir: str, quick: bool) -> list[dict]:
    """Rows for tools/bench.py: each variant with 1 and 8 writer processes."""
    from tools.benches import row

    n1, n8 = (100, 25) if quick else (2000, 500)
    rows = []
    variants = (("sequence", "sequence", 1), ("advisory lock", "lock", 1), ("advisory lock", "lock", 10),
                ("the store (eventstore.open)", "store", 1), ("the store (eventstore.open)", "store", 10))
    for label, mode, per_commit in variants:
        if per_commit > 1:
            label = f"{label}, {per_commit} commands per commit"
        for writers, n in ((1, n1), (8, n8)):
            rate = measure(DSN, mode, writers, n, per_commit)
            rows.append(row(f"{label}, {writers} writer(s)", round(rate), note="raw psycopg, one-event commands"))
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--dsn" in sys.argv:
        DSN = sys.argv[sys.argv.index("--dsn") + 1]
    # This folder has modules named like the standard library's (queue.py): the repository
    # root replaces it at the head of the path.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for r in run("", quick):
        print(f"{r['work']:<55} {r['value']:>8} ev/s")
