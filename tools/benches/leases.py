"""Sessions and execution leases: command rates against a raw SQLite mutable table.

The reference is what the lash runtime does: one mutable row per session, read and
updated under BEGIN IMMEDIATE with the stdlib sqlite3 driver (WAL, synchronous=NORMAL),
no log, no hash chain, no projections. Our store does the same decision with the same
durability setting but appends a hash-chained event and updates the projections inline.

Rows:
* claim + renew + release: one full lease cycle (three commands, three commits);
* claim bounced with Busy: a read-only decision (nothing appended);
* fence check: `require_live_fence` inside a read transaction, what every fenced
  write elsewhere pays;
* create session, and list sessions (meta + status + event count + last activity).

Run it through the harness: `python tools/bench.py --only leases [--quick]`.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from typing import Any, Callable

import eventstore
from eventstore.leases import Acquired, require_live_fence, LeaseOwner
from eventstore.sessions import SessionMeta

TITLE = "Sessions and execution leases"
REFERENCE = "raw sqlite3 mutable table"
OWNER = LeaseOwner("bench-worker", "inc-1")
OTHER = LeaseOwner("bench-other", "inc-1")
TTL = 30_000

RAW_DDL = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, name TEXT, model TEXT, cwd TEXT, status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, last_activity_ms INTEGER NOT NULL, event_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_execution_leases (
    session_id TEXT PRIMARY KEY, owner_id TEXT, incarnation_id TEXT, liveness_json TEXT,
    lease_token TEXT, fencing_token INTEGER NOT NULL, claimed_at_ms INTEGER, expires_at_ms INTEGER
);
"""


def _now() -> int:
    return time.time_ns() // 1_000_000


class RawLeases:
    """The reference: lash's lease rules on a mutable table (stdlib sqlite3)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(RAW_DDL)

    def create(self, sid: str) -> None:
        now = _now()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT OR IGNORE INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                        (sid, sid, "model", "/srv", "active", now, now, 1))
        self.db.execute("COMMIT")

    def claim(self, sid: str, owner: LeaseOwner) -> bool:
        now = _now()
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT owner_id, incarnation_id, lease_token, fencing_token, expires_at_ms "
                              "FROM session_execution_leases WHERE session_id=?", (sid,)).fetchone()
        if row is not None and row[2] is not None and row[4] > now:
            same = row[0] == owner.owner_id and row[1] == owner.incarnation_id
            if same:
                self.db.execute("UPDATE session_execution_leases SET expires_at_ms=? WHERE session_id=?",
                                (now + TTL, sid))
            self.db.execute("COMMIT")
            return same
        fence = (row[3] if row else 0) + 1
        token = f"{sid}:{owner.owner_id}:{owner.incarnation_id}:{now}:{fence}"
        self.db.execute("INSERT OR REPLACE INTO session_execution_leases VALUES (?,?,?,?,?,?,?,?)",
                        (sid, owner.owner_id, owner.incarnation_id, '{"kind":"opaque"}', token, fence, now, now + TTL))
        self.db.execute("COMMIT")
        return True

    def renew(self, sid: str, owner: LeaseOwner) -> None:
        now = _now()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("UPDATE session_execution_leases SET expires_at_ms=? WHERE session_id=? AND owner_id=? "
                        "AND incarnation_id=? AND expires_at_ms>?", (now + TTL, sid, owner.owner_id,
                                                                    owner.incarnation_id, now))
        self.db.execute("COMMIT")

    def release(self, sid: str, owner: LeaseOwner) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("UPDATE session_execution_leases SET owner_id=NULL, incarnation_id=NULL, liveness_json=NULL, "
                        "lease_token=NULL, claimed_at_ms=NULL, expires_at_ms=NULL WHERE session_id=? AND owner_id=? "
                        "AND incarnation_id=?", (sid, owner.owner_id, owner.incarnation_id))
        self.db.execute("COMMIT")

    def fence_ok(self, sid: str, fence: int) -> bool:
        self.db.execute("BEGIN")
        row = self.db.execute("SELECT fencing_token FROM session_execution_leases WHERE session_id=? "
                              "AND lease_token IS NOT NULL AND expires_at_ms>?", (sid, _now())).fetchone()
        self.db.execute("COMMIT")
        return row is not None and row[0] == fence

    def list(self) -> int:
        return len(self.db.execute("SELECT * FROM sessions ORDER BY session_id").fetchall())

    def close(self) -> None:
        self.db.close()


def _rate(n: int, fn: Callable[[int], Any], rounds: int) -> float:
    """The median rate (calls/s) of `fn(i)` for i in range(n), over `rounds` rounds."""
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(n):
            fn(i)
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def run(workdir: str, quick: bool) -> list[dict]:
    """Measure the rows described in the module docstring."""
    n_cycles = 300 if quick else 2_000
    n_checks = 1_000 if quick else 10_000
    n_sessions = 300 if quick else 2_000
    rounds = 3
    store = eventstore.open(os.path.join(workdir, "leases.db"), synchronous="normal")
    raw = RawLeases(os.path.join(workdir, "raw.db"))
    try:
        store.sessions.create("bench")
        raw.create("bench")

        def ours_cycle(_i: int) -> None:
            out = store.leases.claim("bench", OWNER, TTL)
            lease = store.leases.renew(out.lease.fence, TTL)
            store.leases.release(lease.fence)

        def raw_cycle(_i: int) -> None:
            raw.claim("bench", OWNER)
            raw.renew("bench", OWNER)
            raw.release("bench", OWNER)

        cycle, cycle_ref = _rate(n_cycles, ours_cycle, rounds), _rate(n_cycles, raw_cycle, rounds)

        held = store.leases.claim("bench", OWNER, 3_600_000)
        assert isinstance(held, Acquired)
        raw.claim("bench", OWNER)
        busy = _rate(n_checks, lambda _i: store.leases.claim("bench", OTHER, TTL), rounds)
        busy_ref = _rate(n_checks, lambda _i: raw.claim("bench", OTHER), rounds)

        fence = held.lease.fence

        def ours_check(_i: int) -> None:
            with store.read_transaction():
                require_live_fence(store.db, fence, store.now_ms())

        check = _rate(n_checks, ours_check, rounds)
        check_ref = _rate(n_checks, lambda _i: raw.fence_ok("bench", fence.fencing_token), rounds)

        meta = SessionMeta("bench session", "model", "/srv")
        counter = iter(range(10 ** 9))
        create = _rate(n_sessions, lambda _i: store.sessions.create(f"s-{next(counter):07d}", meta), 1)
        raw_counter = iter(range(10 ** 9))
        create_ref = _rate(n_sessions, lambda _i: raw.create(f"s-{next(raw_counter):07d}"), 1)

        listed = len(store.sessions.list())
        list_rate = _rate(1, lambda _i: store.sessions.list(), rounds) * listed
        list_ref = _rate(1, lambda _i: raw.list(), rounds) * raw.list()
    finally:
        store.close()
        raw.close()
    note = "synchronous=NORMAL on both sides"
    return [
        {"work": "claim + renew + release (lease cycles)", "value": cycle, "unit": "cycles/s",
         "reference": cycle_ref, "reference_name": REFERENCE, "note": f"3 commits per cycle; {note}"},
        {"work": "claim bounced with Busy", "value": busy, "unit": "claims/s", "reference": busy_ref,
         "reference_name": REFERENCE, "note": "nothing appended"},
        {"work": "fence check (require_live_fence)", "value": check, "unit": "checks/s", "reference": check_ref,
         "reference_name": REFERENCE, "note": "in a read transaction"},
        {"work": "create session", "value": create, "unit": "sessions/s", "reference": create_ref,
         "reference_name": REFERENCE, "note": note},
        {"work": f"list sessions ({listed:,} sessions)", "value": list_rate, "unit": "sessions/s",
         "reference": list_ref, "reference_name": REFERENCE,
         "note": "ours adds event count and last activity from the stream catalogue"},
    ]
