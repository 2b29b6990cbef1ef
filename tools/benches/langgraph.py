"""LangGraph checkpointer: EventStoreSaver against LangGraph's own SqliteSaver, in one run.

The workload is a growing conversation, as a LangGraph agent produces it: step i saves a
checkpoint whose `messages` channel holds i messages of about 200 bytes (the newest one
new), plus a small `step` channel; `new_versions` names both. Both savers get the same
checkpoints, on files with the same durability (WAL, synchronous=FULL: an acknowledged
put survives power loss).

The two savers run side by side in one process and take turns, step by step (and read
by read), so that a change in the machine's load hits both alike.

Rows:
* put: median latency of one `put` over the whole run (every step's state larger);
* get_tuple, latest checkpoint: median latency on the saver that wrote the thread (ours
  then serves the serialized list items from its position-keyed cache; LangGraph's reads
  its row and blob). A second row reads with a fresh saver on the same store (cold
  cache: ours reads the thread's events back from the log in one query);
* bytes stored after 50 and 500 steps: file growth over the empty file (WAL checkpointed
  into it), against SqliteSaver's on the same steps;
* storage after 50 and 500 steps / final state: those bytes divided by the bytes of the
  final state (the serde's bytes of the final `messages` value); the target is 3x.

Run it through the harness: `python tools/bench.py --only langgraph [--quick]`.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import statistics
import time
from typing import Any, Callable

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.sqlite import SqliteSaver

import eventstore
from eventstore.integrations.langgraph import EventStoreSaver

TITLE = "LangGraph checkpointer (EventStoreSaver vs SqliteSaver)"
REFERENCE = "LangGraph SqliteSaver"


def message(i: int) -> dict:
    """One ~200-byte chat message."""
    role = "user" if i % 2 == 0 else "assistant"
    return {
        "role": role,
        "id": f"msg-{i:06d}",
        "content": (f"message {i}: " + "lorem ipsum dolor sit amet " * 7)[:170],
    }


def steps(n: int) -> list[tuple[dict, dict, dict]]:
    """(checkpoint, metadata, new_versions) for steps 1..n of one growing conversation."""
    out = []
    messages: list[dict] = []
    for i in range(1, n + 1):
        messages = messages + [message(i)]
        c = empty_checkpoint()
        c["id"] = str(uuid6(clock_seq=i))
        c["channel_values"] = {"messages": messages, "step": i}
        c["channel_versions"] = {"messages": i, "step": i}
        c["versions_seen"] = {"model": {"messages": i - 1}}
        out.append((c, {"source": "loop", "step": i, "parents": {}}, {"messages": i, "step": i}))
    return out


def _size(path: str, checkpoint: Callable[[], None]) -> int:
    checkpoint()
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


class Side:
    """One saver on its own file, with what it takes to measure the file."""

    def __init__(self, name: str, workdir: str) -> None:
        self.name = name
        self.path = os.path.join(workdir, f"{name}.db")
        if name == "ours":
            self.store = eventstore.open(self.path, synchronous="full")
            self.saver: Any = EventStoreSaver(self.store)
            self.wal = lambda: self.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self.saver = SqliteSaver(self.conn)
            self.saver.setup()
            self.conn.execute("PRAGMA synchronous=FULL")
            self.wal = lambda: self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.empty = _size(self.path, self.wal)

    def close(self) -> None:
        if self.name == "ours":
            self.store.close()
        else:
            self.conn.close()

    def grown(self) -> int:
        return _size(self.path, self.wal) - self.empty

    def breakdown(self) -> dict[str, int]:
        """Bytes per table group (the log, its index, the langgraph projection) via dbstat."""
        if self.name != "ours":
            return {}
        self.wal()
        rows = self.store.db.query("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
        out = {"log": 0, "log index": 0, "projection": 0}
        for name, size in rows:
            if name == "events":
                out["log"] += size
            elif name.startswith("sqlite_autoindex_events"):
                out["log index"] += size
            elif name.startswith("langgraph_"):
                out["projection"] += size
        return out


def put_all(sides: list[Side], thread: str, work: list[tuple[dict, dict, dict]]) -> dict[str, list[float]]:
    """Put every step on `thread` on each side, the sides taking turns step by step (so a
    change in the machine's load hits both alike); each put's latency in microseconds."""
    configs: dict[str, dict] = {
        s.name: {"configurable": {"thread_id": thread, "checkpoint_ns": ""}} for s in sides
    }
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    for i, (checkpoint, metadata, versions) in enumerate(work):
        for side in sides if i % 2 == 0 else sides[::-1]:
            started = time.perf_counter()
            configs[side.name] = side.saver.put(configs[side.name], checkpoint, metadata, versions)
            times[side.name].append((time.perf_counter() - started) * 1e6)
    return times


def get_latency(savers: dict[str, Any], thread: str, rounds: int, length: int) -> dict[str, float]:
    """Median latency of get_tuple on the thread's latest checkpoint per saver, the savers
    taking turns, in microseconds."""
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    times: dict[str, list[float]] = {name: [] for name in savers}
    for _ in range(rounds):
        for name, saver in savers.items():
            started = time.perf_counter()
            tup = saver.get_tuple(config)
            times[name].append((time.perf_counter() - started) * 1e6)
            assert tup is not None and len(tup.checkpoint["channel_values"]["messages"]) == length
    return {name: statistics.median(t) for name, t in times.items()}


def run(workdir: str, quick: bool) -> list[dict]:
    """The rows described in the module docstring."""
    small, large = (10, 50) if quick else (50, 500)
    rounds = 20 if quick else 200
    cold_rounds = 3 if quick else 9
    work_small, work_large = steps(small), steps(large)
    serde = EventStoreSaver.serde
    final_bytes = {
        n: len(serde.dumps_typed(w[-1][0]["channel_values"]["messages"])[1])
        for n, w in ((small, work_small), (large, work_large))
    }
    results: dict[str, dict[str, Any]] = {"ours": {}, "sqlite": {}}
    gc.disable()
    sides = [Side("ours", workdir), Side("sqlite", workdir)]
    try:
        put_all(sides, "small", work_small)
        grown_small = {s.name: s.grown() for s in sides}
        puts = put_all(sides, "large", work_large)
        grown_large = {s.name: s.grown() - grown_small[s.name] for s in sides}
        warm = get_latency({s.name: s.saver for s in sides}, "large", rounds, large)
        # A fresh saver per read: nothing of the thread is cached on our side.
        colds = [
            get_latency(
                {"ours": EventStoreSaver(sides[0].store), "sqlite": SqliteSaver(sides[1].conn)},
                "large",
                1,
                large,
            )
            for _ in range(cold_rounds)
        ]
        cold = {name: statistics.median(c[name] for c in colds) for name in ("ours", "sqlite")}
        for side in sides:
            results[side.name] = {
                "put": statistics.median(puts[side.name]),
                "warm": warm[side.name],
                "cold": cold[side.name],
                "parts": side.breakdown(),
                "bytes": {small: grown_small[side.name], large: grown_large[side.name]},
                small: grown_small[side.name] / final_bytes[small],
                large: grown_large[side.name] / final_bytes[large],
            }
    finally:
        for side in sides:
            side.close()
        gc.enable()
    ours, ref = results["ours"], results["sqlite"]
    note_d = (
        "same checkpoints, WAL + synchronous=FULL on both, the savers taking turns step by step; "
        "median over every step (state growing)"
    )
    rows = [
        {
            "work": f"put, {large}-step growing conversation",
            "value": ours["put"],
            "unit": "us/op",
            "reference": ref["put"],
            "reference_name": REFERENCE,
            "note": note_d,
            "target": "ratio <= 1",
        },
        {
            "work": f"get_tuple latest, {large} messages (saver that wrote it)",
            "value": ours["warm"],
            "unit": "us",
            "reference": ref["warm"],
            "reference_name": REFERENCE,
            "note": f"median of {rounds}, taking turns; ours serves list items from its position-keyed cache",
            "target": "ratio <= 2",
        },
        {
            "work": f"get_tuple latest, {large} messages (fresh saver, cold)",
            "value": ours["cold"],
            "unit": "us",
            "reference": ref["cold"],
            "reference_name": REFERENCE,
            "note": f"median of {cold_rounds} reads, each by a new saver: ours reads the thread's events "
            "back from the log in one query",
            "target": "",
        },
    ]
    steps_total = small + large
    per_step = ", ".join(f"{k} {v / steps_total:,.0f} B" for k, v in ours["parts"].items())
    for n in (small, large):
        rows.append(
            {
                "work": f"bytes stored after {n} steps",
                "value": ours["bytes"][n],
                "unit": "B",
                "reference": ref["bytes"][n],
                "reference_name": REFERENCE,
                "note": f"file growth (WAL checkpointed into the file) incl. indexes and projection rows; "
                f"per step: {per_step}",
                "target": "",
            }
        )
    for n in (small, large):
        rows.append(
            {
                "work": f"storage after {n} steps / final state bytes",
                "value": ours[n],
                "unit": "x",
                "reference": ref[n],
                "reference_name": REFERENCE,
                "note": f"final state {final_bytes[n]:,} B ({final_bytes[n] / n:,.0f} B per message): "
                f"the serde's bytes of the last checkpoint's messages",
                "target": "value <= 3",
            }
        )
    for row in rows:
        if not row["target"]:
            del row["target"]
    return rows
