"""Effect replay journal: first-call and replay rates against a raw SQLite journal table.

The reference is what the lash effect host does: one mutable row per (scope, replay key)
in `runtime_effect_replay`, with the stdlib sqlite3 driver (WAL, synchronous=NORMAL):
a first call is BEGIN IMMEDIATE + SELECT + INSERT in_progress + COMMIT, then the effect,
then BEGIN IMMEDIATE + conditional UPDATE to completed + COMMIT; a replay is
BEGIN IMMEDIATE + SELECT + COMMIT (lash prepares every effect under the write lock).
Ours appends two hash-chained events per first call, updates the projections inline and
starts/stops the lease-renewal thread; a replay of a finished entry is a plain read.

Rows:
* first call (journal + run a no-op effect + record its outcome);
* replay of a completed effect (`call`, and through the `@journaled` decorator);
* strict replay (the debugging mode that proves nothing runs);
* trigger occurrence ingest reserving 3 deliveries (no reference).

Run it through the harness: `python tools/bench.py --only effects [--quick]`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import time
from typing import Any, Callable

import eventstore
from eventstore.effects import digest
from eventstore.triggers import OccurrenceRequest, RegisterSubscription, TriggerDefinition

TITLE = "Effect replay journal"
REFERENCE = "raw sqlite3 journal table"
REQUEST = {"model": "agent-1", "messages": [{"role": "user", "content": "What is the refund policy?"}],
           "temperature": 0}
OUTCOME = {"text": "Annual plans are refundable within 30 days.", "usage": {"input": 812, "output": 64}}

RAW_DDL = """
CREATE TABLE IF NOT EXISTS runtime_effect_replay (
    scope_id TEXT NOT NULL, replay_key TEXT NOT NULL, envelope_hash TEXT NOT NULL, status TEXT NOT NULL,
    outcome_json TEXT, error_json TEXT, lease_owner_id TEXT, lease_token TEXT, lease_expires_at_ms INTEGER,
    due_at_ms INTEGER, created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope_id, replay_key)
);
"""


def _now() -> int:
    return time.time_ns() // 1_000_000


class RawJournal:
    """The reference: lash's effect replay rules on a mutable table (stdlib sqlite3)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(RAW_DDL)

    def call(self, scope: str, key: str, request: Any, fn: Callable[[], Any]) -> Any:
        """Replay the row for (scope, key), or claim it, run `fn` and record its outcome."""
        env_hash = digest(request)
        now = _now()
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT envelope_hash, status, outcome_json FROM runtime_effect_replay "
                              "WHERE scope_id=? AND replay_key=?", (scope, key)).fetchone()
        if row is not None:
            self.db.execute("COMMIT")
            if row[0] != env_hash:
                raise ValueError("mismatch")
            return json.loads(row[2])
        token = f"{scope}:{key}:{now}"
        self.db.execute("INSERT INTO runtime_effect_replay VALUES (?,?,?,'in_progress',NULL,NULL,?,?,?,NULL,?,?)",
                        (scope, key, env_hash, "bench", token, now + 30_000, now, now))
        self.db.execute("COMMIT")
        outcome = fn()
        now = _now()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("UPDATE runtime_effect_replay SET status='completed', outcome_json=?, updated_at_ms=? "
                        "WHERE scope_id=? AND replay_key=? AND lease_token=? AND status='in_progress' "
                        "AND lease_expires_at_ms>?", (json.dumps(outcome), now, scope, key, token, now))
        self.db.execute("COMMIT")
        return outcome

    def close(self) -> None:
        """Close the connection."""
        self.db.close()


def _rate(n: int, fn: Callable[[int], Any], rounds: int) -> float:
    """The median rate (calls/s) of `fn(i)` for i in range(n), over `rounds` rounds."""
    rates = []
    for r in range(rounds):
        started = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def run(workdir: str, quick: bool) -> list[dict]:
    """Measure the rows described in the module docstring."""
    n = 300 if quick else 2_000
    n_replay = 2_000 if quick else 20_000
    rounds = 3
    store = eventstore.open(os.path.join(workdir, "effects.db"), synchronous="normal")
    raw = RawJournal(os.path.join(workdir, "raw.db"))
    fx = store.effects
    try:
        effect = lambda: OUTCOME  # noqa: E731  (a no-op effect: the journal's own cost is measured)
        first = _rate(n, lambda i: fx.call("bench", f"model:{i}", REQUEST, effect), rounds)
        first_ref = _rate(n, lambda i: raw.call("bench", f"model:{i}", REQUEST, effect), rounds)

        keys = n * rounds
        replay = _rate(n_replay, lambda i: fx.call("bench", f"model:{i % keys}", REQUEST, effect), rounds)
        replay_ref = _rate(n_replay, lambda i: raw.call("bench", f"model:{i % keys}", REQUEST, effect), rounds)

        @fx.journaled(scope="bench-decorated", key="weather:{city}")
        def weather(city: str) -> dict:
            return {"city": city, "forecast": "rain"}

        cities = [f"city-{i}" for i in range(100)]
        for c in cities:
            weather(c)
        decorated = _rate(n_replay, lambda i: weather(cities[i % 100]), rounds)

        def strict(i: int) -> None:
            with fx.strict_replay():
                fx.call("bench", f"model:{i % keys}", REQUEST, effect)

        strict_rate = _rate(n_replay, strict, rounds)

        d = TriggerDefinition("webhook", "github:push", "run-ci", {"branch": "main"})
        for i in range(3):
            store.triggers.execute(f"bench-op-{i}", RegisterSubscription("host", f"ci-{i}", d))
        ingest = _rate(n, lambda i: store.triggers.ingest(
            OccurrenceRequest("webhook", "github:push", f"delivery-{i}", {"sha": i})), rounds)
    finally:
        store.close()
        raw.close()
    note = "synchronous=NORMAL on both sides"
    return [
        {"work": "journaled call, first time (begin + run + record)", "value": first, "unit": "calls/s",
         "reference": first_ref, "reference_name": REFERENCE,
         "note": f"2 commits per call; ours also registers the lease with the renewal thread; {note}"},
        {"work": "replay of a completed effect", "value": replay, "unit": "calls/s", "reference": replay_ref,
         "reference_name": REFERENCE, "note": "ours: a plain read (finished entries never change); "
                                              "reference: under BEGIN IMMEDIATE as in lash"},
        {"work": "replay through @journaled", "value": decorated, "unit": "calls/s", "reference": None,
         "reference_name": "", "note": "signature binding + key template + replay"},
        {"work": "strict replay", "value": strict_rate, "unit": "calls/s", "reference": None,
         "reference_name": "", "note": "the debugging mode: a missing entry raises, nothing runs"},
        {"work": "trigger occurrence ingest, 3 deliveries reserved", "value": ingest, "unit": "occurrences/s",
         "reference": None, "reference_name": "", "note": "one append of 4 events"},
    ]
