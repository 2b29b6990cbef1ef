"""Queued work: enqueue and claim+complete rates, and how claim latency grows with the backlog.

The reference is what the lash runtime does: a mutable `queued_work_batches` table (plus
its items) in stdlib sqlite3 (WAL, synchronous=NORMAL), enqueue = one INSERT transaction,
claim = BEGIN IMMEDIATE + candidate scan (max + 32 rows) + UPDATE, complete = ownership
count + DELETE. Our store makes the same decisions but appends a hash-chained event per
command and updates the projections inline, and every claim first validates the session
lease fence.

Rows:
* enqueue (one command per batch, into a 10,000-batch backlog);
* claim + complete (one batch per claim, both commands, from a 10,000-batch backlog);
* claim latency (median of single claims) at backlogs of 100, 1,000 and 10,000: it must
  stay flat, because the candidate scan is a range scan from the head of the session's
  queue (primary key (session, enqueue_seq)), not a scan of the whole queue. The rows at
  1,000 and 10,000 use the latency at 100 as their reference, with the target ratio <= 2.

Run it through the harness: `python tools/bench.py --only queue [--quick]`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import statistics
import time
from typing import Any

import eventstore
from eventstore.leases import Acquired, LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft, SlotPolicy, plan_enqueue

TITLE = "Queued work: enqueue, claim + complete, claim latency against the backlog"
REFERENCE = "raw sqlite3 mutable queue table"
OWNER = LeaseOwner("bench-worker", "inc-1")
SESSION = "bench"
BACKLOG = 10_000

RAW_DDL = """
CREATE TABLE IF NOT EXISTS queued_work_batches (
    enqueue_seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
    source_key TEXT, delivery_policy TEXT NOT NULL, slot_policy TEXT NOT NULL, merge_key_json TEXT NOT NULL,
    available_at_ms INTEGER NOT NULL, enqueued_at_ms INTEGER NOT NULL, claim_id TEXT, claim_owner_id TEXT,
    claim_owner_incarnation_id TEXT, claim_token TEXT, claim_fencing_token INTEGER NOT NULL DEFAULT 0,
    claim_session_lease_generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queued_work_batches_session ON queued_work_batches (session_id, enqueue_seq);
CREATE INDEX IF NOT EXISTS queued_work_batches_claim ON queued_work_batches (session_id, claim_id);
CREATE TABLE IF NOT EXISTS queued_work_items (
    batch_id TEXT NOT NULL REFERENCES queued_work_batches (batch_id) ON DELETE CASCADE,
    item_index INTEGER NOT NULL, item_id TEXT NOT NULL, payload_json TEXT NOT NULL,
    PRIMARY KEY (batch_id, item_index)
);
"""


def _now() -> int:
    return time.time_ns() // 1_000_000


def draft(i: int) -> QueuedWorkDraft:
    """The i-th benchmark batch: one agent-frame task, claimed alone."""
    return QueuedWorkDraft(SESSION, (AgentFrameTask("frame-1", f"summarise incident INC-{i}"),),
                           slot_policy=SlotPolicy.EXCLUSIVE)


class RawQueue:
    """The reference: lash's queue rules on mutable tables (stdlib sqlite3)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(RAW_DDL)
        self.nonce = 0

    def _row(self, i: int) -> tuple[tuple, tuple]:
        now = _now()
        self.nonce += 1
        batch_id = "qwb:" + hashlib.sha256(f"{SESSION}:None:{now}:{self.nonce}".encode()).hexdigest()
        payload = json.dumps({"type": "agent_frame_task", "frame_id": "frame-1", "task": f"summarise incident INC-{i}"})
        return ((batch_id, SESSION, None, "earliest_safe_boundary", "exclusive", '"payload_default"', now, now),
                (batch_id, 0, f"{batch_id}:item:0", payload))

    def enqueue(self, i: int) -> None:
        """One batch in one transaction."""
        batch, item = self._row(i)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
                        "slot_policy, merge_key_json, available_at_ms, enqueued_at_ms) VALUES (?,?,?,?,?,?,?,?)", batch)
        self.db.execute("INSERT INTO queued_work_items VALUES (?,?,?,?)", item)
        self.db.execute("COMMIT")

    def fill(self, n: int) -> None:
        """n batches in one transaction (setup, not measured)."""
        rows = [self._row(i) for i in range(n)]
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
                            "slot_policy, merge_key_json, available_at_ms, enqueued_at_ms) VALUES (?,?,?,?,?,?,?,?)",
                            [r[0] for r in rows])
        self.db.executemany("INSERT INTO queued_work_items VALUES (?,?,?,?)", [r[1] for r in rows])
        self.db.execute("COMMIT")

    def claim(self, generation: int) -> tuple[str, str, list[str]] | None:
        """Claim the head batch for `generation`: (claim id, token, batch ids), or None."""
        now = _now()
        self.db.execute("BEGIN IMMEDIATE")
        rows = self.db.execute(
            "SELECT enqueue_seq, batch_id, claim_fencing_token FROM queued_work_batches WHERE session_id = ? "
            "AND available_at_ms <= ? AND (claim_token IS NULL OR claim_session_lease_generation <> ?) "
            "ORDER BY enqueue_seq LIMIT 33", (SESSION, now, generation)).fetchall()
        if not rows:
            self.db.execute("COMMIT")
            return None
        seq, batch_id, counter = rows[0]
        claim_id = f"qwc:{seq}:{counter + 1}"
        token = hashlib.sha256(f"{SESSION}:w:i:{claim_id}:{now}".encode()).hexdigest()
        self.db.execute("UPDATE queued_work_batches SET claim_id=?, claim_owner_id='w', claim_owner_incarnation_id='i', "
                        "claim_token=?, claim_fencing_token=claim_fencing_token+1, claim_session_lease_generation=? "
                        "WHERE batch_id=?", (claim_id, token, generation, batch_id))
        items = [r[0] for r in self.db.execute("SELECT payload_json FROM queued_work_items WHERE batch_id=? "
                                               "ORDER BY item_index", (batch_id,))]
        self.db.execute("COMMIT")
        return claim_id, token, [batch_id] if items else []

    def complete(self, claim_id: str, token: str, batch_ids: list[str]) -> None:
        """Delete the claim's batches if it still owns all of them."""
        self.db.execute("BEGIN IMMEDIATE")
        n = self.db.execute("SELECT count(*) FROM queued_work_batches WHERE session_id=? AND claim_id=? "
                            "AND claim_token=?", (SESSION, claim_id, token)).fetchone()[0]
        if n != len(batch_ids):
            raise RuntimeError("superseded")
        self.db.execute("DELETE FROM queued_work_batches WHERE session_id=? AND claim_id=? AND claim_token=?",
                        (SESSION, claim_id, token))
        self.db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()


def _open(workdir: str, name: str) -> tuple[eventstore.Store, Any]:
    store = eventstore.open(os.path.join(workdir, name), synchronous="normal")
    store.sessions.create(SESSION)
    got = store.leases.claim(SESSION, OWNER, 3_600_000)
    assert isinstance(got, Acquired)
    return store, got.lease.fence


def _fill(store: eventstore.Store, start: int, n: int) -> None:
    """Add n batches in one transaction (setup, not measured)."""
    with store.transaction():
        plan = plan_enqueue(store.db, [draft(start + i) for i in range(n)], store.now_ms())
        store.append(f"session:{SESSION}", list(plan.events))


def _rate(n: int, fn: Any) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - started)


def _latency_us(store: eventstore.Store, fence: Any, n: int) -> float:
    """Median microseconds of one claim_ready; each claimed batch is completed and replaced
    (untimed), so the backlog stays the same size."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        claim = store.queue.claim_ready(fence, max_batches=1)
        times.append(time.perf_counter() - started)
        store.queue.complete(claim)
        store.queue.enqueue(draft(10 ** 6 + i))
    return statistics.median(times) * 1e6


def _raw_latency_us(raw: RawQueue, n: int) -> float:
    times = []
    for i in range(n):
        started = time.perf_counter()
        claim = raw.claim(1)
        times.append(time.perf_counter() - started)
        raw.complete(*claim)  # type: ignore[misc]
        raw.enqueue(10 ** 6 + i)
    return statistics.median(times) * 1e6


def run(workdir: str, quick: bool) -> list[dict]:
    """Measure the rows described in the module docstring."""
    n_enqueue = 300 if quick else 2_000
    n_cycles = 200 if quick else 1_500
    n_latency = 60 if quick else 300
    rows = []
    store, fence = _open(workdir, "queue.db")
    raw = RawQueue(os.path.join(workdir, "raw.db"))
    try:
        # enqueue rate into a backlog that grows towards 10,000
        _fill(store, 0, BACKLOG - n_enqueue)
        raw.fill(BACKLOG - n_enqueue)
        ours = _rate(n_enqueue, lambda i: store.queue.enqueue(draft(i)))
        ref = _rate(n_enqueue, raw.enqueue)
        rows.append({"work": "enqueue (1 batch per command, backlog 10,000)", "value": ours, "unit": "batches/s",
                     "reference": ref, "reference_name": REFERENCE, "note": "synchronous=NORMAL on both sides"})

        def ours_cycle(_i: int) -> None:
            store.queue.complete(store.queue.claim_ready(fence, max_batches=1))

        def raw_cycle(_i: int) -> None:
            raw.complete(*raw.claim(1))  # type: ignore[misc]

        ours = _rate(n_cycles, ours_cycle)
        ref = _rate(n_cycles, raw_cycle)
        rows.append({"work": "claim + complete (1 batch, backlog 10,000)", "value": ours, "unit": "cycles/s",
                     "reference": ref, "reference_name": REFERENCE,
                     "note": "2 commits per cycle; ours validates the lease fence in each claim"})
    finally:
        store.close()
        raw.close()

    base = None
    for backlog in (100, 1_000, BACKLOG):
        store, fence = _open(workdir, f"latency-{backlog}.db")
        raw = RawQueue(os.path.join(workdir, f"raw-latency-{backlog}.db"))
        try:
            _fill(store, 0, backlog)
            raw.fill(backlog)
            ours = _latency_us(store, fence, n_latency)
            ref = _raw_latency_us(raw, n_latency)
        finally:
            store.close()
            raw.close()
        if base is None:
            base = ours
            rows.append({"work": f"claim latency, backlog {backlog:,}", "value": ours, "unit": "µs",
                         "reference": ref, "reference_name": REFERENCE, "note": "median of single claims"})
        else:
            rows.append({"work": f"claim latency, backlog {backlog:,}", "value": ours, "unit": "µs",
                         "reference": base, "reference_name": "ours at backlog 100",
                         "note": f"flat: indexed range scan (raw sqlite3: {ref:,.0f} µs)", "target": "ratio <= 2"})
    return rows
