"""Crash safety: start a writer, SIGKILL it at a random moment, reopen the file and audit it.

After every kill the audit checks, from the worker's acknowledgement file (see
crash_worker.py) and the reopened store:

* **lost**: every acknowledged op's newest row is still there with the chain hash the
  writer saw when the op returned (the chain covers every row before it);
* **partial** (counted as corrupt): every event after the trial's starting position
  belongs to exactly one op, in order; the op that was in flight when the kill came
  landed whole (its marker, or all `n` events of a plain append) or not at all;
* **corrupt**: the store opens, `verify()` passes, every projection equals a rebuild
  (`verify_projections()`), no projection is stale;
* per mode, that the interrupted operation can be run again: `rebuild()`,
  `sessions.gc()` (and every rooted checkpoint still loads whole), `sessions.purge()`
  of every deleted session (and a purge is all or nothing: payloads dropped exactly
  when its record exists).
"""

from __future__ import annotations

import collections
import glob
import json
import os
import random
import signal
import tempfile
import time
from typing import Any

import attrs

import eventstore

from .common import Budget, Result, remove_store, start_worker, wait_for, worker_stderr
from .crash_worker import marker_of
from .workload import Workload, raw_tag

SETTLE_S = 90.0
"""Longest wait for a worker to start (or reach its target operation) or to die: a bound,
never reached normally. Generous because a loaded machine once took over 30 s to reach a
worker's first blob GC."""


@attrs.define
class Audit:
    """What one post-crash audit found."""

    lost: int = 0
    partial: int = 0
    corrupt: int = 0
    errors: int = 0
    in_flight: str = ""
    """The kind of the op the kill interrupted, with ':none' or ':all' (what landed)."""
    acked: int = 0
    problems: list = attrs.Factory(list)


def read_acks(path: str) -> tuple[list[dict], int]:
    """The records of an acknowledgement file, and how many lines were unreadable."""
    records, bad = [], 0
    try:
        with open(path, "rb") as fh:
            for line in fh.read().split(b"\n"):
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    bad += 1
    except FileNotFoundError:
        pass
    return records, bad


def _row_hash(store: eventstore.Store, position: int) -> str | None:
    row = store.db.one("SELECT hash FROM events WHERE position = ?", (position,))
    return None if row is None else bytes(row[0]).hex()


def audit_acks(store: eventstore.Store, records: list[dict], audit: Audit) -> None:
    """Account for every event after the start record (see the module docstring)."""
    start = next((r for r in records if r.get("phase") == "start"), None)
    if start is None:
        return  # killed before it wrote anything: nothing was acknowledged
    begin = start["last"]
    last = store.last_position()
    events = {e.position: e for e in store.read_all(begin + 1, raw=True)} if last > begin else {}
    intents = {r["op"]: r for r in records if r.get("phase") == "intent" and r["op"] > 0}
    acks = {r["op"]: r for r in records if r.get("phase") == "ack"}
    cursor = begin
    ops = sorted(intents)
    for i in ops:
        intent, ack = intents[i], acks.get(i)
        raw = intent.get("raw")
        if ack is not None:
            audit.acked += 1
            if _row_hash(store, ack["head"]) != ack["hash"] and ack["head"] > 0:
                audit.lost += 1
                audit.problems.append(f"op {i} ({intent['kind']}) acknowledged at {ack['head']} is gone or changed")
                continue
            if raw is not None:
                if ack["outcome"] != "ok":
                    continue
                if ack["first"] != cursor + 1 or ack["last"] != cursor + raw or not _raw_whole(events, ack["first"], raw):
                    audit.partial += 1
                    audit.problems.append(f"op {i}: plain append at {ack['first']}..{ack['last']} after {cursor}")
                cursor = ack["last"]
            else:
                mark = events.get(ack["marker"])
                rec = marker_of(mark.data) if mark is not None else None
                if (ack["first"] != cursor + 1 or ack["marker"] != ack["last"] + 1 or rec is None
                        or rec["marker"] != i):
                    audit.partial += 1
                    audit.problems.append(f"op {i} ({intent['kind']}): span {ack['first']}..{ack['marker']} "
                                          f"does not follow {cursor} or its marker is wrong")
                cursor = ack["marker"]
            continue
        # Not acknowledged: the op the kill interrupted. Only the newest intent may be one.
        if i != ops[-1]:
            audit.errors += 1
            audit.problems.append(f"op {i} has no acknowledgement but later ops ran")
        landed = "none"
        if last > cursor:
            if raw is not None:
                whole = last == cursor + raw and _raw_whole(events, cursor + 1, raw)
            else:
                rec = marker_of(events[last].data) if last in events else None
                whole = rec is not None and rec["marker"] == i and rec["first"] == cursor + 1 and rec["last"] == last - 1
            if whole:
                landed = "all"
                cursor = last
            else:
                landed = "partial"
                audit.partial += 1
                audit.problems.append(f"op {i} ({intent['kind']}) in flight left {last - cursor} events "
                                      f"that are not one whole command")
                cursor = last
        audit.in_flight = f"{intent['kind']}:{landed}"
    if cursor != last:
        audit.partial += 1
        audit.problems.append(f"events {cursor + 1}..{last} belong to no op")


def _raw_whole(events: dict, first: int, count: int) -> bool:
    """True when positions first.. hold one plain command's `count` events, in order."""
    tags = [raw_tag(events[p].data) if p in events else None for p in range(first, first + count)]
    return all(t is not None and t["i"] == k and t["n"] == count for k, t in enumerate(tags))


def audit_store(store: eventstore.Store, audit: Audit) -> None:
    """The chain verifies, nothing is stale, every projection equals a rebuild."""
    report = store.verify()
    if not report.ok:
        audit.corrupt += 1
        audit.problems.append(f"verify: {report}")
    stale = [p.name for p in store.projection_status() if p.stale]
    if stale:
        audit.corrupt += 1
        audit.problems.append(f"stale projections after reopening: {stale}")
    check = store.verify_projections()
    if not check.ok:
        audit.corrupt += 1
        audit.problems.append(f"projections: {check}")


def rerun_interrupted(store: eventstore.Store, mode: str, path: str, dead_pid: int | None, audit: Audit) -> int:
    """Run the kind of operation the kill interrupted again; returns leftover scratch files."""
    leftovers = 0
    if mode == "rebuild":
        pattern = f"{path}.*-{dead_pid}-*.tmp" if dead_pid else f"{path}.*.tmp"
        for scratch in glob.glob(pattern) + glob.glob(pattern + "-*"):
            leftovers += scratch.endswith(".tmp")
            remove_store(scratch)  # the dead process's scratch file: harmless, but it takes disk space
        store.rebuild()
    elif mode == "gc":
        store.sessions.gc()
        for info in store.sessions.list(status="active"):
            loaded = store.sessions.load(info.session_id, graph="none")
            if loaded is not None and loaded.checkpoint_ref is not None:
                cp = loaded.checkpoint
                if cp is None or (cp.tool_state_ref is not None and cp.tool_state is None):
                    audit.lost += 1
                    audit.problems.append(f"session {info.session_id}: a rooted checkpoint blob was swept")
    elif mode == "purge":
        for info in store.sessions.list():
            stream = f"session:{info.session_id}"
            total = store.db.scalar("SELECT count(*) FROM events WHERE stream = ?", (stream,), 0)
            dropped = store.db.scalar("SELECT count(*) FROM events WHERE stream = ? AND payload IS NULL", (stream,), 0)
            record = store.stream_version(f"session-purge:{info.session_id}") > 0
            if (dropped not in (0, total)) or ((dropped == total and total > 0) != record):
                audit.corrupt += 1
                audit.problems.append(f"session {info.session_id}: {dropped}/{total} payloads dropped, "
                                      f"purge record {'present' if record else 'absent'}")
            if info.status == "deleted":
                store.sessions.purge(info.session_id)
    if mode in ("rebuild", "gc", "purge"):
        audit_store(store, audit)
    return leftovers


def populate(path: str, synchronous: str, ops: int, raw_events: int, seed: int) -> None:
    """Fill a new store with `ops` workload commands and `raw_events` plain events (for rebuilds)."""
    from eventstore.demo import UserMessage

    with eventstore.open(path, synchronous=synchronous) as store:
        workload = Workload(store, random.Random(seed), f"seed{seed}")
        for _ in range(ops):
            op = workload.next_op()
            try:
                op.run()
            except eventstore.StoreError as exc:
                workload.observe(op, exc)
        with store.transaction():
            for start in range(0, raw_events, 500):
                store.append(f"bulk:{start // 5000}", [UserMessage(f"bulk {start + k}") for k in range(500)])


@attrs.frozen
class CrashPlan:
    """How one crash suite runs: its mode, durability, trial count and kill window."""

    mode: str
    synchronous: str
    trials: int
    kill_after: tuple[float, float]
    trials_per_file: int = 10
    populate_ops: int = 0
    populate_raw: int = 0
    target: str | None = None
    """Kill only once an op of this kind has started (then after `kill_after` seconds)."""


class AckTail:
    """Reads the records a worker appends to its acknowledgement file, incrementally."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.buffer = b""

    def new_records(self) -> list[dict]:
        """Records completed since the last call."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line]


def wait_for_target(acks: str, kind: str, skip: int, proc: Any, timeout: float) -> bool:
    """Wait until the worker starts its (skip+1)-th op of `kind`; False if it never does."""
    tail = AckTail(acks)
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for rec in tail.new_records():
            if rec.get("phase") == "intent" and rec.get("kind") == kind:
                seen += 1
                if seen > skip:
                    return True
        time.sleep(0.002)
    return False


def run_plan(plan: CrashPlan, workdir: str, budget: Budget, seed: int = 1) -> Result:
    """Run the trials of one plan (stopping early when the budget is spent) and audit each."""
    rng = random.Random(seed)
    totals = Audit()
    landed = collections.Counter()
    leftovers = 0
    done = 0
    path = ""
    started = time.monotonic()
    for trial in range(plan.trials):
        if budget.expired():
            break
        if trial % plan.trials_per_file == 0:
            if path:
                remove_store(path)
            path = os.path.join(workdir, f"crash-{plan.mode}-{plan.synchronous}-{trial}.db")
            if plan.populate_ops or plan.populate_raw:
                populate(path, plan.synchronous, plan.populate_ops, plan.populate_raw, seed + trial)
        acks = os.path.join(workdir, f"acks-{plan.mode}-{plan.synchronous}-{trial}.jsonl")
        name = f"crash-{plan.mode}-{plan.synchronous}-{trial}"
        proc = start_worker(["crash", "--path", path, "--acks", acks, "--mode", plan.mode, "--prefix", f"t{trial}",
                             "--seed", str(rng.randrange(1 << 30)), "--synchronous", plan.synchronous,
                             "--seconds", "60"], workdir, name)
        audit = Audit()
        started_ok = wait_for(lambda: os.path.exists(acks) and os.path.getsize(acks) > 0 or proc.poll() is not None,
                              SETTLE_S)
        if started_ok and plan.target is not None:
            started_ok = wait_for_target(acks, plan.target, rng.randint(0, 3), proc, SETTLE_S)
            if not started_ok:
                audit.errors += 1
                audit.problems.append(f"the worker never started a {plan.target}")
        if started_ok and proc.poll() is None:
            time.sleep(rng.uniform(*plan.kill_after))
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=SETTLE_S)
        except Exception:  # never expected: SIGKILL cannot be ignored
            audit.errors += 1
        if not alive:
            audit.errors += 1
            audit.problems.append(f"worker exited before the kill (status {proc.returncode}): "
                                  f"{worker_stderr(workdir, name)[-2000:]}")
        records, bad = read_acks(acks)
        if plan.mode == "rebuild":
            begun = [r["op"] for r in records if r.get("kind") == "rebuild" and r.get("phase") == "intent"]
            finished = {r["op"] for r in records if r.get("kind") == "rebuild" and r.get("phase") == "note"}
            if begun and begun[-1] not in finished:
                landed["rebuild"] += 1
        if bad:
            audit.errors += 1
            audit.problems.append(f"{bad} torn acknowledgement lines")
        try:
            with eventstore.open(path, synchronous=plan.synchronous) as store:
                audit_acks(store, records, audit)
                if plan.mode == "mix":
                    audit_store(store, audit)
                else:
                    leftovers += rerun_interrupted(store, plan.mode, path, proc.pid, audit)
        except eventstore.StoreError as exc:
            audit.corrupt += 1
            audit.problems.append(f"reopening failed: {type(exc).__name__}: {exc}")
        except Exception as exc:  # an untyped error is a finding, never a crash of the harness
            audit.errors += 1
            audit.problems.append(f"untyped {type(exc).__name__}: {exc}")
        os.unlink(acks) if os.path.exists(acks) else None
        for suffix in (".out", ".err"):
            try:
                os.unlink(os.path.join(workdir, name + suffix))
            except FileNotFoundError:
                pass
        done += 1
        totals.lost += audit.lost
        totals.partial += audit.partial
        totals.corrupt += audit.corrupt
        totals.errors += audit.errors
        totals.acked += audit.acked
        totals.problems.extend(f"trial {trial}: {p}" for p in audit.problems)
        if audit.in_flight:
            landed[audit.in_flight.rsplit(":", 1)[1]] += 1
            if plan.mode != "mix":
                landed[audit.in_flight.rsplit(":", 1)[0]] += 1
    if path:
        remove_store(path)
    detail = (f"{totals.acked} acknowledged ops audited; in-flight op landed "
              f"{landed['all']}x whole, {landed['none']}x not at all, {landed['partial']}x in part")
    if plan.mode != "mix":
        kinds = {k: v for k, v in landed.items() if k not in ("all", "none", "partial")}
        detail += f"; killed inside {dict(sorted(kinds.items()))}"
    if plan.mode == "rebuild":
        detail += f"; {leftovers} scratch files left by killed rebuilds (removed, rebuild reran fine)"
    detail += f"; {time.monotonic() - started:.0f}s"
    if totals.problems:
        detail += "; first problems: " + " / ".join(totals.problems[:3])
    names = {"mix": "SIGKILL during mixed domain commands", "rebuild": "SIGKILL during projection rebuild",
             "gc": "SIGKILL during commits and blob GC", "purge": "SIGKILL during session delete and purge"}
    return Result("crash", f"{names[plan.mode]} (synchronous={plan.synchronous})", done, "trials",
                  totals.lost, totals.corrupt + totals.partial, 0, totals.errors, detail,
                  {"acked": totals.acked, "landed": dict(landed), "leftover_scratch": leftovers,
                   "problems": totals.problems[:20]})


def plans(quick: bool, trials: int | None) -> list[CrashPlan]:
    """The crash suites: the workload at both synchronous modes, then rebuild, GC and purge."""
    n = trials if trials is not None else (6 if quick else 120)
    special = max(2, n // 4) if trials is None else n
    return [
        CrashPlan("mix", "full", n, (0.05, 1.0)),
        CrashPlan("mix", "normal", n, (0.05, 1.0)),
        CrashPlan("rebuild", "normal", special, (0.0, 0.3 if quick else 1.0), trials_per_file=special,
                  populate_ops=300 if quick else 2000, populate_raw=5_000 if quick else 40_000, target="rebuild"),
        CrashPlan("gc", "full", special, (0.0, 0.03), target="sessions.gc"),
        CrashPlan("purge", "normal", special, (0.0, 0.03), target="sessions.purge"),
    ]


def run(workdir: str | None = None, quick: bool = False, trials: int | None = None,
        budget: Budget | None = None) -> list[Result]:
    """Every crash suite; returns one Result per suite."""
    budget = budget or Budget(None)
    with tempfile.TemporaryDirectory(prefix="torture-crash-", dir=workdir) as tmp:
        out = []
        suites = plans(quick, trials)
        for k, plan in enumerate(suites):
            out.append(run_plan(plan, tmp, budget.share(1 / (len(suites) - k)), seed=k + 1))
        return out
