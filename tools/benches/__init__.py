"""Benchmark modules discovered by tools/bench.py, and small helpers they share.

Each public module here (a name not starting with "_") defines

    TITLE = "Session leases"
    def run(workdir: str, quick: bool) -> list[dict]: ...

returning rows {"work", "value", "unit", "reference", "reference_name", "note"} and,
optionally, "target" ("ratio >= 0.5", "value <= 32", ...), which the harness checks
against the measured figures. See docs/contributing.md and docs/benchmarks.md.

The helpers below make side-by-side measurements fair on a shared, noisy machine:
contenders run in rounds with their order rotated, and writers start from the WAL's
steady state.
"""

from __future__ import annotations

import gc
import os
import statistics
from typing import Any, Callable

Contender = Callable[[], tuple[int, float]]
"""One measurement: does the work once and returns (operations, seconds)."""


def row(work: str, value: float | None, unit: str = "events/s", reference: float | None = None,
        reference_name: str = "", note: str = "", target: str | None = None) -> dict:
    """A row dict in the harness's format (target only when given)."""
    out = {"work": work, "value": value, "unit": unit, "reference": reference,
           "reference_name": reference_name, "note": note}
    if target:
        out["target"] = target
    return out


def measure(contenders: dict[str, Contender], rounds: int) -> dict[str, float]:
    """Median operations/s per contender over `rounds` rounds.

    The order rotates every round so that a drift in the machine's load (other jobs on
    shared cores) does not always land on the same contender.
    """
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            count, seconds = contenders[name]()
            rates[name].append(count / seconds)
    return {name: statistics.median(v) for name, v in rates.items()}


def warm_up(path: str, write: Callable[[int], Any], chunk: int, limit: int = 100) -> None:
    """Call write(chunk) until the WAL file of `path` stops growing (at most `limit` times).

    Why: until its first checkpoint a WAL grows with every commit, and an fsync that
    extends a file costs more than one that overwrites in place (on this machine's ext4,
    about 0.23 against 0.17 ms). A long-lived store runs with a full-size WAL whose
    frames are overwritten from the start, so every writer is measured in that state.
    """
    wal = path + "-wal"
    last = -1
    for _ in range(limit):
        write(chunk)
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        if size == last:
            return
        last = size
