"""Damaged pages: bytes overwritten in the file itself (the store closed), then every way
of using the file is tried and judged.

A pristine store is filled by the domain workload and closed (its WAL checkpointed into
the main file). Each trial copies it, overwrites a run of bytes at a random offset
(random bytes, or zeros as a failed disk returns them; 1 byte to a whole 4 KiB page;
some trials aim at the 100-byte SQLite header), and then, each step on its own:
opens the store, reads every event (`read_all`), every stream (`read_stream`, which
goes through an index), the domain reads (sessions, leases, queues, inputs, processes,
triggers), verifies the chain against an anchor taken before the damage, compares the
projections with a rebuild, rebuilds them and reads the domains again.

Each trial is classified:

* `flagged`: some step raised a typed error (a StoreError subclass), or `verify` /
  `verify_projections` reported a problem: the damage is visible;
* `no effect`: every step answered exactly what the pristine file answers (the bytes
  hit free space or slack);
* `silent`: every step succeeded, nothing was reported, and some answer differs from
  the pristine file's: a silent wrong answer (counted as undetected);
* `untyped`: some step raised an exception that is not a StoreError (counted as error);
* `crash` / `hang`: the probing process died or stopped answering (counted as error).

Trials run in a child process (tools/torture_worker.py probe) so that a crash or a hang
is observed, not suffered; the child is restarted after one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import traceback
from typing import Any

import eventstore

from .common import Budget, Result, remove_store, worker_command

FIXED_NOW = 1_700_000_000_000
"""Liveness in queue and input reads is judged at this time, so answers are comparable."""
TRIAL_TIMEOUT_S = 60.0


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def domain_answers(store: eventstore.Store) -> dict[str, str]:
    """A digest of every domain read the harness compares (from the live projections)."""
    out = {}
    sessions = store.sessions.list()
    out["sessions"] = _digest(sessions)
    out["leases"] = _digest(store.leases.list())
    for s in sessions:
        if s.status == "active":
            sid = s.session_id
            out[f"queue:{sid}"] = _digest(store.queue.list(sid, now_ms=FIXED_NOW))
            out[f"inputs:{sid}"] = _digest(store.inputs.list(sid, now_ms=FIXED_NOW))
            out[f"load:{sid}"] = _digest(store.sessions.load(sid, graph="full"))
    out["processes"] = _digest(store.processes.list())
    out["triggers"] = _digest(store.triggers.list())
    return out


def log_answers(store: eventstore.Store) -> dict[str, str]:
    """A digest of the whole log read by position, and of each stream read by version."""
    out = {"read_all": _digest(list(store.read_all(raw=True)))}
    for info in store.streams():
        out[f"stream:{info.stream}"] = _digest(list(store.read_stream(info.stream, raw=True)))
    return out


def _where(exc: BaseException) -> str:
    """The innermost frame of the store's own code that an exception passed through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/eventstore/" in f.filename or "/projections/" in f.filename]
    if not frames:
        return "?"
    f = frames[-1]
    parts = f.filename.split(os.sep)
    return f"{'/'.join(parts[-2:])}:{f.lineno} ({f.name})"


def integrity_problem(path: str) -> str | None:
    """SQLite's own `PRAGMA integrity_check` (b-trees, and every index against its table):
    None when sound. Run on a silent case, to say whether the check would have caught it
    (verify runs it since commit 7f6732b; this stays to explain any silent case left)."""
    import apsw

    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error as exc:
        return f"cannot open: {exc}"
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except apsw.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return None if rows == [("ok",)] else str(rows[0][0])[:200]


def probe(path: str, anchor: str, expected: dict[str, dict[str, str]]) -> dict:
    """Use a damaged file every way the module docstring lists; return the classification."""
    steps: dict[str, str] = {}
    flagged = wrong = untyped = False

    def step(name: str, fn: Any) -> Any:
        nonlocal flagged, untyped
        try:
            value = fn()
            steps[name] = "ok"
            return value
        except eventstore.StoreError as exc:
            flagged = True
            steps[name] = f"typed {type(exc).__name__}"
        except Exception as exc:  # the finding this harness looks for
            untyped = True
            steps[name] = f"untyped {type(exc).__name__} at {_where(exc)}: {exc}"[:300]
        return None

    store = step("open", lambda: eventstore.open(path, synchronous="normal"))
    if store is not None:
        try:
            got = step("read log", lambda: log_answers(store))
            if got is not None and got != expected["log"]:
                wrong = True
                steps["read log"] = "differs"
            got = step("read domains", lambda: domain_answers(store))
            if got is not None and got != expected["domains"]:
                wrong = True
                steps["read domains"] = "differs"
            report = step("verify", lambda: store.verify(anchor=anchor))
            if report is not None and not report.ok:
                flagged = True
                steps["verify"] = f"reports {report.problem} at {report.position}"
            check = step("verify projections", store.verify_projections)
            if check is not None and not check.ok:
                flagged = True
                steps["verify projections"] = "reports a mismatch"
            step("rebuild", store.rebuild)
            got = step("read domains after rebuild", lambda: domain_answers(store))
            if got is not None and got != expected["domains"]:
                wrong = True
                steps["read domains after rebuild"] = "differs"
        finally:
            try:
                store.close()
            except Exception:
                pass
    integrity = integrity_problem(path) if (wrong and not flagged) else None
    if untyped:
        verdict = "untyped"
    elif flagged:
        verdict = "flagged"
    elif wrong:
        verdict = "silent"
    else:
        verdict = "no effect"
    return {"verdict": verdict, "steps": steps, "integrity_check": integrity}


def damage(path: str, offset: int, length: int, zeros: bool, seed: int) -> None:
    """Overwrite `length` bytes at `offset` (random bytes, or zeros)."""
    data = bytes(length) if zeros else random.Random(seed).randbytes(length)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def child_main(spec_path: str, out_path: str) -> int:
    """The probing child: run each trial of the spec file, one JSON line of result per trial."""
    with open(spec_path) as fh:
        spec = json.load(fh)
    done = set()
    if os.path.exists(out_path):
        with open(out_path) as fh:
            done = {json.loads(line)["trial"] for line in fh if line.strip()}
    fd = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for trial in spec["trials"]:
        if trial["trial"] in done or trial["trial"] in spec.get("skip", []):
            continue
        os.write(fd, (json.dumps({"start": trial["trial"]}) + "\n").encode())
        work = spec["work"]
        remove_store(work)
        shutil.copyfile(spec["pristine"], work)
        damage(work, trial["offset"], trial["length"], trial["zeros"], trial["trial"])
        try:
            result = probe(work, spec["anchor"], spec["expected"])
        except BaseException:
            result = {"verdict": "untyped", "steps": {"harness": traceback.format_exc()[-300:]}}
        os.write(fd, (json.dumps({"trial": trial["trial"], **trial, **result}) + "\n").encode())
    os.close(fd)
    return 0


def build_pristine(path: str, ops: int, seed: int) -> tuple[str, dict]:
    """A closed store filled by the workload; returns its anchor and the expected answers."""
    from .workload import Workload

    clock = eventstore.ManualClock(1_700_000_000_000)  # same bytes on every run: trials are reproducible
    with eventstore.open(path, synchronous="normal", clock=clock) as store:
        workload = Workload(store, random.Random(seed), "pages")
        for _ in range(ops):
            op = workload.next_op()
            try:
                op.run()
            except eventstore.StoreError as exc:
                workload.observe(op, exc)
            clock.advance(7)
        anchor = str(store.anchor())
    with eventstore.open(path, synchronous="normal", clock=clock) as store:
        expected = {"log": log_answers(store), "domains": domain_answers(store)}
    # Closing the last connection checkpointed the WAL into the file; make sure of it.
    assert not os.path.exists(path + "-wal") or os.path.getsize(path + "-wal") == 0
    return anchor, expected


def run(workdir: str | None = None, quick: bool = False, trials: int | None = None,
        budget: Budget | None = None, seed: int = 11) -> list[Result]:
    """The damaged-page trials; one Result."""
    budget = budget or Budget(None)
    n = trials if trials is not None else (30 if quick else 300)
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="torture-pages-", dir=workdir) as tmp:
        pristine = os.path.join(tmp, "pristine.db")
        anchor, expected = build_pristine(pristine, 150 if quick else 600, seed)
        size = os.path.getsize(pristine)
        plan = []
        for t in range(n):
            offset = rng.randrange(100) if t % 10 == 0 else rng.randrange(size)
            length = rng.choice((1, 1, 4, 16, 64, 512, 4096))
            plan.append({"trial": t, "offset": offset, "length": min(length, size - offset),
                         "zeros": rng.random() < 0.3})
        spec = {"pristine": pristine, "work": os.path.join(tmp, "damaged.db"), "anchor": anchor,
                "expected": expected, "trials": plan, "skip": []}
        spec_path = os.path.join(tmp, "spec.json")
        out_path = os.path.join(tmp, "results.jsonl")
        results: dict[int, dict] = {}
        while len(results) < n and not budget.expired():
            with open(spec_path, "w") as fh:
                json.dump(spec, fh)
            proc = subprocess.Popen(worker_command("probe", "--spec", spec_path, "--out", out_path),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            limit = TRIAL_TIMEOUT_S * max(1, n - len(results))
            try:
                proc.wait(timeout=min(limit, max(budget.left(), TRIAL_TIMEOUT_S)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            started_trials: list[int] = []
            with open(out_path) as fh:
                for line in fh:
                    rec = json.loads(line)
                    if "start" in rec:
                        started_trials.append(rec["start"])
                    else:
                        results[rec["trial"]] = rec
            unfinished = [t for t in started_trials if t not in results]
            for t in unfinished:  # the child died or hung on this trial
                verdict = "crash" if proc.returncode not in (0, None) and proc.returncode != -9 else "hang"
                results[t] = {"trial": t, **plan[t], "verdict": verdict, "steps": {"child": stderr[-300:]}}
                spec["skip"].append(t)
                with open(out_path, "a") as fh:
                    fh.write(json.dumps(results[t]) + "\n")
            if proc.returncode == 0 and not unfinished:
                break
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    bad = [r for r in results.values() if r["verdict"] in ("silent", "untyped", "crash", "hang")]
    silent = [r for r in results.values() if r["verdict"] == "silent"]
    caught_by_integrity = sum(1 for r in silent if r.get("integrity_check"))
    untyped_sites: dict[str, int] = {}
    for r in results.values():
        for v in r["steps"].values():
            if isinstance(v, str) and v.startswith("untyped"):
                site = v.split(":")[0] + ":" + v.split(":")[1].split(" ")[0] if " at " in v else v[:60]
                untyped_sites[site] = untyped_sites.get(site, 0) + 1
    first_steps: dict[str, int] = {}
    for r in results.values():
        if r["verdict"] == "flagged":
            first = next((f"{k}: {v}" for k, v in r["steps"].items() if v != "ok"), "")
            key = first.split(":")[0] + ": " + first.split(":")[1].split(" at ")[0].strip() if ":" in first else first
            first_steps[key] = first_steps.get(key, 0) + 1
    detail = (f"{size // 1024} KiB file; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
              + f"; first sign of damage: {dict(sorted(first_steps.items(), key=lambda kv: -kv[1])[:5])}"
              + f"; {time.monotonic() - started:.0f}s")
    if silent:
        detail += (f"; {len(silent)} silent wrong answers, of which PRAGMA integrity_check "
                   f"flags {caught_by_integrity}")
    if untyped_sites:
        detail += f"; untyped errors by place: {dict(sorted(untyped_sites.items(), key=lambda kv: -kv[1]))}"
    if bad:
        detail += "; e.g. " + " / ".join(f"trial {r['trial']} (offset {r['offset']}, {r['length']} bytes): "
                                         f"{r['verdict']} {r['steps']}" for r in bad[:2])
    return [Result("tamper", "damaged pages (bytes overwritten in the closed file)", len(results), "trials", 0, 0,
                   counts.get("silent", 0), counts.get("untyped", 0) + counts.get("crash", 0) + counts.get("hang", 0),
                   detail)]
