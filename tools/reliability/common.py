"""What every part of the reliability harness shares: result rows, the table, time budgets,
and starting worker processes with bounded waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Iterable, Sequence

import attrs

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TOOLS)
WORKER = os.path.join(TOOLS, "torture_worker.py")


@attrs.frozen
class Result:
    """One line of the result table: a test, how many cases it ran, and what went wrong.

    `lost`: acknowledged data missing afterwards. `corrupt`: a store that does not verify,
    projections that differ from a rebuild, a partial command, or a wrong answer.
    `undetected`: a modification or corruption that nothing reported. `errors`: untyped
    exceptions, hangs, crashes of the harness's own children, protocol violations.
    """

    suite: str
    name: str
    count: int
    unit: str
    lost: int = 0
    corrupt: int = 0
    undetected: int = 0
    errors: int = 0
    detail: str = ""
    extra: dict = attrs.field(factory=dict, eq=False, repr=False)
    """Figures for tests and JSON (counts by kind); not printed in the table."""

    @property
    def ok(self) -> bool:
        """True when nothing was lost, corrupt, undetected or unexplained."""
        return not (self.lost or self.corrupt or self.undetected or self.errors)

    def as_dict(self) -> dict:
        """A JSON-ready dict (with `ok`)."""
        return {**attrs.asdict(self), "ok": self.ok}


class Budget:
    """A deadline: suites check `left()` between trials and stop early when time is up."""

    def __init__(self, seconds: float | None) -> None:
        self.started = time.monotonic()
        self.deadline = None if seconds is None else self.started + seconds

    def left(self) -> float:
        """Seconds left (infinity without a deadline)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.left() <= 0

    def share(self, fraction: float) -> "Budget":
        """A sub-budget of `fraction` of what is left (unbounded stays unbounded)."""
        left = self.left()
        return Budget(None if left == float("inf") else max(0.0, left * fraction))


def format_table(results: Sequence[Result]) -> str:
    """The result table as aligned text."""
    head = ("suite", "test", "count", "lost", "corrupt", "undetected", "errors", "result")
    rows = [head] + [(r.suite, r.name, f"{r.count} {r.unit}", str(r.lost), str(r.corrupt), str(r.undetected),
                      str(r.errors), "ok" if r.ok else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    details = [f"  {r.suite}/{r.name}: {r.detail}" for r in results if r.detail]
    return "\n".join(lines + ([""] + details if details else []))


def format_markdown(results: Sequence[Result]) -> str:
    """The result table as Markdown (what docs/reliability.md shows)."""
    out = ["| suite | test | count | lost | corrupt | undetected | errors | result | detail |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        out.append(f"| {r.suite} | {r.name} | {r.count} {r.unit} | {r.lost} | {r.corrupt} | {r.undetected} | "
                   f"{r.errors} | {'ok' if r.ok else 'FAIL'} | {r.detail.replace('|', '/')} |")
    return "\n".join(out)


def dumps(results: Iterable[Result]) -> str:
    """The results as one JSON document."""
    return json.dumps([r.as_dict() for r in results], indent=2)


def worker_command(*args: str) -> list[str]:
    """The command line that starts tools/torture_worker.py with `args`."""
    return [sys.executable, WORKER, *args]


def start_worker(args: Sequence[str], log_dir: str, name: str) -> subprocess.Popen:
    """Start a worker process; its stdout and stderr go to files in `log_dir`."""
    out = open(os.path.join(log_dir, f"{name}.out"), "wb")
    err = open(os.path.join(log_dir, f"{name}.err"), "wb")
    try:
        return subprocess.Popen(worker_command(*args), stdout=out, stderr=err, cwd=ROOT)
    finally:
        out.close()
        err.close()


def worker_stderr(log_dir: str, name: str) -> str:
    """What a worker wrote to stderr (empty when nothing)."""
    try:
        with open(os.path.join(log_dir, f"{name}.err"), "rb") as fh:
            return fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(predicate: Any, timeout: float, poll: float = 0.01) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)


def remove_store(path: str) -> None:
    """Delete a store file and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
