"""Runtime commits: storage growth per turn, loading a 1,000-node session, commit throughput.

* Storage: a conversation grows by one ~200-byte message per turn (a commit appending one
  node, a new checkpoint every other turn, usage on assistant turns, automatic GC every
  50 commits). After 500 turns the file is measured after `PRAGMA wal_checkpoint(TRUNCATE)`;
  the figure is the file's growth over the empty store (which holds every projection's
  empty tables), divided by the sum of the message payloads (msgpack of each message).
  Goal: at most 3x. Reference: LangGraph's SqliteSaver stores the whole state every step
  and measured 256x on the same conversation (a reference figure, not rerun here; tools/benches/langgraph.py runs SqliteSaver
  side by side for the integration's own storage row).
  Measured twice: with short ids ("s1", "n42") and with uuid session and node ids. The
  commit event and the node index hold a uuid as its 16 bytes (store layout 3,
  eventstore/ids.py); every event row and its (stream, version) index entry still spell
  the stream name `session:<uuid>` out. The cost per turn is the message plus a constant
  (about 400 B with short ids, 560 B with uuids) that rows fill 4 KiB pages in steps of:
  the ratio falls as messages grow (with short ids 3.2x at 190 B, 2.9x at 210 B, 2.1x at
  440 B; with uuids 4.0x, 3.6x, 2.3x). Growth is linear: nothing is rewritten per turn.
  The note of each row splits the growth by b-tree (SQLite's dbstat).
* Load: the head (revision, config, checkpoint hydrated, ledger) and the active path (or
  the full graph) of a 1,000-node session, against a raw stdlib sqlite3 select of the same
  1,000 rows from a lash-style `graph_nodes(node_json)` table with json decoding (a
  recursive CTE for the path). Goal: within 2x.
* Throughput: one commit per turn (one message, checkpoint, usage, under a lease, with
  the head CAS) against a raw sqlite3 lash-style commit (BEGIN IMMEDIATE, read the head,
  insert the node JSON, the manifest blob and the usage row, rewrite the head JSON).
* The other commands a runtime runs per turn, against the same lash-style mutable tables
  in stdlib sqlite3 (the references of the leases and queue modules, `RawLeases` and
  `RawQueue`: BEGIN IMMEDIATE per command, synchronous=NORMAL): a lease claim of a free
  session plus one renew (ours also checks that the session exists and is live), and one
  batch enqueued, claimed and completed (ours checks the lease fence in the claim and the
  claim's live generation in the completion). Chunks of each side interleaved, median rate.

Run it through the harness: `python tools/bench.py --only commits [--quick]`.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import statistics
import time
import uuid
from typing import Any, Callable

import msgpack

import eventstore
from eventstore.commits import RuntimeCommit
from eventstore.commits import (
    Checkpoint, EventPayload, GraphAppend, ModelConfig, SessionNode, TurnState, UsageDelta,
)
from eventstore.leases import Acquired, LeaseOwner

from benches.leases import RawLeases
from benches.queue import RawQueue
from benches.queue import draft as queue_draft

TITLE = "Runtime commits (session graph)"
MODEL = ModelConfig("anthropic", "claude-x")
RAW = "raw sqlite3, lash-style tables"
LANGGRAPH_X = 256.0


def message(i: int) -> dict:
    """The i-th message: about 200 bytes of msgpack."""
    text = f"turn {i}: " + "the quick brown fox jumps over the lazy dog " * 4
    return {"role": "user" if i % 2 == 0 else "assistant", "parts": [{"kind": "text", "content": text[:170]}]}


def _open_session(path: str, sid: str) -> tuple[eventstore.Store, Any]:
    store = eventstore.open(path, synchronous="normal")
    store.sessions.create(sid)
    got = store.leases.claim(sid, LeaseOwner("bench-runtime", "i1"), 3_600_000)
    assert isinstance(got, Acquired)
    return store, got.lease.fence


def _turn(store: eventstore.Store, sid: str, fence: Any, i: int, nid: str, parent: str | None,
          expected: int | None) -> None:
    node = SessionNode(nid, EventPayload(message(i)), parent, timestamp="2026-03-02T09:00:00.000Z")
    store.sessions.commit(RuntimeCommit(
        sid, fence, GraphAppend((node,), nid), expected_head_revision=expected, config=MODEL,
        checkpoint=Checkpoint(TurnState(i // 2, {"input": 100 * i})),
        usage_deltas=(UsageDelta("turn", MODEL.model, 100, 20),) if i % 2 else ()))


def _file_size(store: eventstore.Store) -> int:
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(store.path)


def _btree_bytes(store: eventstore.Store) -> dict[str, int]:
    """Bytes of pages per table and index (SQLite's dbstat virtual table, after a checkpoint)."""
    return dict(store.db.query("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))


def _breakdown(m: dict) -> str:
    """Where the growth went: the b-trees that grew by more than one page, largest first."""
    grew = sorted(((m["btrees"][n] - m["empty_btrees"].get(n, 0), n) for n in m["btrees"]), reverse=True)
    names = {"sqlite_autoindex_events_1": "events' (stream, version) index"}
    return ", ".join(f"{names.get(n, n)} {b:,}" for b, n in grew if b > 4096)


def storage(workdir: str, turns: int, uuids: bool) -> dict:
    """Grow one session by `turns` one-message commits; sizes in bytes."""
    path = os.path.join(workdir, f"storage-{'uuid' if uuids else 'short'}.db")
    sid = str(uuid.uuid4()) if uuids else "s1"
    store, fence = _open_session(path, sid)
    try:
        store.sessions.auto_gc_every_commits = 50
        empty = _file_size(store)
        empty_btrees = _btree_bytes(store)
        payload = 0
        parent = None
        for i in range(turns):
            nid = str(uuid.uuid4()) if uuids else f"n{i}"
            payload += len(msgpack.packb(message(i)))
            _turn(store, sid, fence, i, nid, parent, i)
            parent = nid
        size = _file_size(store)
        btrees = _btree_bytes(store)
        stored = store.db.scalar("SELECT sum(length(payload)) FROM events WHERE type = 'session.committed'")
        blobs = store.blobs.stats()[0]
    finally:
        store.close()
    return {"empty": empty, "size": size, "growth": size - empty, "payload": payload, "blobs": blobs,
            "btrees": btrees, "empty_btrees": empty_btrees, "stored": stored}


class RawGraph:
    """The reference: lash-style tables (node JSON rows, a head JSON row, blobs, usage) in stdlib sqlite3."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS graph_nodes (seq INTEGER PRIMARY KEY, node_id TEXT UNIQUE NOT NULL,
                parent_node_id TEXT, node_json TEXT NOT NULL, tombstoned INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS session_head (id INTEGER PRIMARY KEY CHECK (id = 1), head_json TEXT NOT NULL,
                head_revision INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, content BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS usage_deltas (id INTEGER PRIMARY KEY, source TEXT, model TEXT,
                input INTEGER, output INTEGER, cache_read_input INTEGER, cache_write_input INTEGER,
                reasoning_output INTEGER);
        """)

    def commit(self, i: int, nid: str, parent: str | None) -> None:
        import hashlib

        node = {"node_id": nid, "parent_node_id": parent, "timestamp": "2026-03-02T09:00:00.000Z",
                "kind": "Event", "event": message(i)}
        manifest = json.dumps({"schema_version": 1, "turn_state": {"turn_index": i // 2}}).encode()
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT head_revision FROM session_head WHERE id = 1").fetchone()
        revision = (row[0] if row else 0) + 1
        self.db.execute("INSERT INTO graph_nodes (node_id, parent_node_id, node_json) VALUES (?, ?, ?)",
                        (nid, parent, json.dumps(node)))
        self.db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (hashlib.sha256(manifest).hexdigest(), manifest))
        if i % 2:
            self.db.execute("INSERT INTO usage_deltas VALUES (NULL, 'turn', ?, 100, 20, 0, 0, 0)", (MODEL.model,))
        head = json.dumps({"schema_version": 1, "session_id": "s1", "head_revision": revision,
                           "config": {"provider_id": MODEL.provider_id, "model": MODEL.model},
                           "leaf_node_id": nid, "graph_node_count": revision, "token_ledger": []})
        self.db.execute("INSERT OR REPLACE INTO session_head VALUES (1, ?, ?)", (head, revision))
        self.db.execute("COMMIT")

    def load_path(self, leaf: str) -> list[dict]:
        head = json.loads(self.db.execute("SELECT head_json FROM session_head WHERE id = 1").fetchone()[0])
        rows = self.db.execute(
            """WITH RECURSIVE path(node_id, parent, node_json, depth) AS (
                   SELECT node_id, parent_node_id, node_json, 0 FROM graph_nodes WHERE node_id = ? AND tombstoned = 0
                   UNION ALL
                   SELECT n.node_id, n.parent_node_id, n.node_json, p.depth + 1
                     FROM graph_nodes n JOIN path p ON n.node_id = p.parent WHERE n.tombstoned = 0
               ) SELECT node_json FROM path ORDER BY depth DESC""", (leaf,)).fetchall()
        assert head["leaf_node_id"] == leaf
        return [json.loads(r[0]) for r in rows]

    def load_full(self) -> list[dict]:
        json.loads(self.db.execute("SELECT head_json FROM session_head WHERE id = 1").fetchone()[0])
        return [json.loads(r[0]) for r in self.db.execute(
            "SELECT node_json FROM graph_nodes WHERE tombstoned = 0 ORDER BY seq")]

    def close(self) -> None:
        self.db.close()


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
    """Median milliseconds of `fn()`, with the cyclic garbage collector paused while timing
    (a collection landing in one side's sample would be noise, not that side's cost)."""
    times = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return statistics.median(times) * 1000


def _interleaved(sides: dict[str, Callable[[int], Any]], n: int, chunks: int = 4) -> dict[str, float]:
    """Median rate (calls/s) of each side's `fn(i)`, i counting up across chunks; the sides
    take turns chunk by chunk, so that drift in the machine's load hits all of them."""
    rates: dict[str, list[float]] = {name: [] for name in sides}
    size = max(1, n // chunks)
    for c in range(chunks):
        for name, fn in sides.items():
            gc.collect()
            started = time.perf_counter()
            for i in range(c * size, (c + 1) * size):
                fn(i)
            rates[name].append(size / (time.perf_counter() - started))
    return {name: statistics.median(r) for name, r in rates.items()}


def lease_and_queue_cycles(workdir: str, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """(lease claim + renew rates, enqueue + claim + complete rates), ours and raw."""
    owner = LeaseOwner("bench-worker", "inc-1")
    store = eventstore.open(os.path.join(workdir, "cycles.db"), synchronous="normal")
    raw_leases = RawLeases(os.path.join(workdir, "raw-leases.db"))
    raw_queue = RawQueue(os.path.join(workdir, "raw-queue.db"))
    try:
        with store.transaction():  # setup, not measured: the sessions each claim takes
            for i in range(n + 50):
                store.sessions.create(f"lease-{i}")
        for i in range(n + 50):
            raw_leases.create(f"lease-{i}")
        store.sessions.create("bench")
        got = store.leases.claim("bench", owner, 3_600_000)
        assert isinstance(got, Acquired)
        fence = got.lease.fence

        def ours_lease(i: int) -> None:
            out = store.leases.claim(f"lease-{i}", owner, 30_000)
            store.leases.renew(out.lease.fence, 30_000)  # type: ignore[union-attr]

        def raw_lease(i: int) -> None:
            raw_leases.claim(f"lease-{i}", owner)
            raw_leases.renew(f"lease-{i}", owner)

        def ours_queue(i: int) -> None:
            store.queue.enqueue(queue_draft(i))
            claim = store.queue.claim_ready(fence, max_batches=1)
            store.queue.complete(claim)  # type: ignore[arg-type]

        def raw_queue_cycle(i: int) -> None:
            raw_queue.enqueue(i)
            raw_queue.complete(*raw_queue.claim(1))  # type: ignore[misc]

        for i in range(50):  # the WAL towards its working size on every side
            ours_queue(10 ** 6 + i)
            raw_queue_cycle(10 ** 6 + i)
        lease = _interleaved({"ours": ours_lease, "raw": raw_lease}, n)
        queue = _interleaved({"ours": ours_queue, "raw": raw_queue_cycle}, n)
    finally:
        store.close()
        raw_leases.close()
        raw_queue.close()
    return lease, queue


def run(workdir: str, quick: bool) -> list[dict]:
    """Measure the rows described in the module docstring."""
    turns = 500
    rounds = 9 if quick else 41
    n_commits = 400 if quick else 3_000
    short = storage(workdir, turns, uuids=False)
    long = storage(workdir, turns, uuids=True)

    # --- a 1,000-node session, ours and raw ---
    store, fence = _open_session(os.path.join(workdir, "load.db"), "big")
    raw = RawGraph(os.path.join(workdir, "raw-load.db"))
    try:
        parent = None
        with store.transaction():
            for i in range(1_000):
                nid = str(uuid.uuid4())
                _turn(store, "big", fence, i, nid, parent, None)
                parent = nid
        ids = [str(uuid.uuid4()) for _ in range(1_000)]
        for i, nid in enumerate(ids):
            raw.commit(i, nid, ids[i - 1] if i else None)
        assert len(store.sessions.load("big", graph="active_path").nodes) == 1_000
        assert len(raw.load_path(ids[-1])) == 1_000
        samples: dict[str, list[float]] = {"path": [], "path_ref": [], "full": [], "full_ref": []}
        for _ in range(rounds):  # interleaved, so that drift in the machine's load hits both sides
            samples["path"].append(_median_ms(lambda: store.sessions.load("big", graph="active_path"), 1))
            samples["path_ref"].append(_median_ms(lambda: raw.load_path(ids[-1]), 1))
            samples["full"].append(_median_ms(lambda: store.sessions.load("big"), 1))
            samples["full_ref"].append(_median_ms(raw.load_full, 1))
        path_ms, path_ref = statistics.median(samples["path"]), statistics.median(samples["path_ref"])
        full_ms, full_ref = statistics.median(samples["full"]), statistics.median(samples["full_ref"])
    finally:
        store.close()
        raw.close()

    # --- commit throughput ---
    store, fence = _open_session(os.path.join(workdir, "rate.db"), "rate")
    raw = RawGraph(os.path.join(workdir, "raw-rate.db"))
    try:
        warm = 200
        parent = None
        for i in range(warm):  # the WAL to its working size on both sides
            nid = f"w{i}"
            _turn(store, "rate", fence, i, nid, parent, i)
            raw.commit(i, nid, parent)
            parent = nid
        rates: dict[str, list[float]] = {"ours": [], "raw": []}
        chunk = n_commits // 4
        done = warm
        for _ in range(4):
            for side in ("ours", "raw"):
                started = time.perf_counter()
                for i in range(done, done + chunk):
                    if side == "ours":
                        _turn(store, "rate", fence, i, f"n{i}", f"n{i - 1}" if i > warm else parent, i)
                    else:
                        raw.commit(i, f"n{i}", f"n{i - 1}" if i > warm else parent)
                rates[side].append(chunk / (time.perf_counter() - started))
            done += chunk
        rate, rate_ref = statistics.median(rates["ours"]), statistics.median(rates["raw"])
    finally:
        store.close()
        raw.close()

    lease, queue = lease_and_queue_cycles(workdir, 400 if quick else 2_000)

    def growth_row(label: str, m: dict) -> dict:
        per_turn = m["growth"] / turns
        return {"work": f"storage growth / message bytes, {turns} turns, {label}", "value": m["growth"] / m["payload"],
                "unit": "x", "reference": LANGGRAPH_X, "reference_name": "LangGraph SqliteSaver (ANCHORS.md)",
                "note": f"{per_turn:,.0f} B per turn for {m['payload'] / turns:,.0f} B messages: the message plus "
                        f"{per_turn - m['payload'] / turns:,.0f} B of event row (hash, type, stream and its index "
                        f"entry, page slack), node envelope (ids, timestamp), checkpoint ref and node index; "
                        f"commit payloads {m['stored'] / turns:,.0f} B per turn; growth by b-tree (B): "
                        f"{_breakdown(m)}; {m['blobs']} blob(s) left after auto GC",
                "target": "value <= 3"}

    return [
        growth_row("short ids", short),
        growth_row("uuid session and node ids", long),
        {"work": f"whole file / message bytes at {turns} turns (uuid ids)", "value": long["size"] / long["payload"],
         "unit": "x", "reference": None, "reference_name": "",
         "note": f"{long['size']:,} B file, of which {long['empty']:,} B is the empty store (every projection's "
                 f"empty tables, one page each)"},
        {"work": "load head + active path, 1,000 nodes", "value": path_ms, "unit": "ms", "reference": path_ref,
         "reference_name": RAW, "note": "checkpoint hydrated, ledger merged; raw: recursive CTE + json.loads; medians, rounds "
                 "interleaved, Python's cyclic GC paused while timing (both sides)",
         "target": "ratio <= 2"},
        {"work": "load head + full graph, 1,000 nodes", "value": full_ms, "unit": "ms", "reference": full_ref,
         "reference_name": RAW, "note": "raw: SELECT node_json ORDER BY seq + json.loads", "target": "ratio <= 2"},
        {"work": "commit one turn (1 message, checkpoint, usage)", "value": rate, "unit": "commits/s",
         "reference": rate_ref, "reference_name": RAW,
         "note": "synchronous=NORMAL on both sides; ours: lease fence check, head CAS, hash-chained event, "
                 "projections inline",
         "target": "ratio >= 0.5"},
        {"work": "lease claim + renew (a free session)", "value": lease["ours"], "unit": "cycles/s",
         "reference": lease["raw"], "reference_name": RAW,
         "note": "2 commits per cycle; raw: leases module's RawLeases (read the row, INSERT OR REPLACE; "
                 "UPDATE); ours also checks the session; synchronous=NORMAL on both sides"},
        {"work": "enqueue + claim + complete (1 batch)", "value": queue["ours"], "unit": "cycles/s",
         "reference": queue["raw"], "reference_name": RAW,
         "note": "3 commits per cycle, empty queue; raw: queue module's RawQueue (batch + item rows, "
                 "candidate scan + UPDATE, count + DELETE); ours checks the lease fence in the claim"},
    ]
