"""Contention: N worker processes (4 and 8) against one store file, then an audit.

Scenarios (roles in contention_worker.py):

* racing lease claims: in the log, fencing tokens go 1, 2, 3, ... with one acquisition
  each, and a new generation starts only after the previous holder released or expired
  (never two live holders); every worker's reported fences are distinct and all in the log;
* a shared work queue: every enqueued batch is completed exactly once, none is lost, the
  queues end empty;
* commits racing with stale head revisions: each base revision has exactly one winner,
  the head moved once per win, and every loser got HeadRevisionConflict;
* plain appends racing on one stream's expected version: one winner per version;
* a tiny busy timeout against a process holding the write lock: the typed StoreBusy
  with a message that says so, and nothing else;
* readers (`read_all`, `follow`, `eventstore log --json`) beside writers: no gap, no
  command seen in part.

Every scenario also requires: no untyped exception and no StoreBusy under the default
timeout in any worker, the chain verifies, projections equal a rebuild.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time
from typing import Any, Callable

import eventstore
from eventstore.queue import (
    AgentFrameTask, DeliveryPolicy, QueuedWorkDraft, RefreshToolCatalog, SlotPolicy, plan_enqueue,
)

from .common import Budget, Result, remove_store, start_worker, worker_stderr
from .contention_worker import (
    CAS_STREAM,
    COMMIT_OWNER,
    COMMIT_SESSION,
    LEASE_SESSION,
    QUEUE_SESSIONS,
)

JOIN_TIMEOUT_S = 180.0


class Scenario:
    """One contention scenario: setup, the workers it starts, and its audit."""

    def __init__(self, name: str, roles: list[tuple[str, int]], seconds: float,
                 setup: Callable[[eventstore.Store], Any] | None = None,
                 audit: Callable[[eventstore.Store, list[dict], Any], tuple[int, int, str, dict]] | None = None,
                 busy_timeout_ms: dict[str, int] | None = None) -> None:
        self.name = name
        self.roles = roles
        self.seconds = seconds
        self.setup = setup
        self.audit = audit
        self.busy_timeout_ms = busy_timeout_ms or {}


def run_scenario(sc: Scenario, workdir: str) -> Result:
    """Start the workers, let them race, collect their results and audit the file."""
    path = os.path.join(workdir, "contention.db")
    remove_store(path)
    go = os.path.join(workdir, "go")
    if os.path.exists(go):
        os.unlink(go)
    with eventstore.open(path, synchronous="normal") as store:
        context = sc.setup(store) if sc.setup else None
    procs = []
    index = 0
    for role, count in sc.roles:
        for _ in range(count):
            out = os.path.join(workdir, f"result-{index}.json")
            for stale in (out, out + ".ready"):
                if os.path.exists(stale):
                    os.unlink(stale)
            args = ["contend", "--path", path, "--role", role, "--index", str(index), "--workers",
                    str(sum(c for _r, c in sc.roles)), "--out", out, "--go", go, "--seconds", str(sc.seconds),
                    "--busy-timeout-ms", str(sc.busy_timeout_ms.get(role, 15_000))]
            procs.append((role, index, out, start_worker(args, workdir, f"worker-{index}")))
            index += 1
    # Go only once every worker has opened the store, so that they really race.
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not all(os.path.exists(out + ".ready") or proc.poll() is not None for _r, _i, out, proc in procs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    open(go, "w").close()
    errors, problems, results = 0, [], []
    for role, i, out, proc in procs:
        try:
            proc.wait(timeout=sc.seconds + JOIN_TIMEOUT_S)
        except Exception:
            proc.kill()
            proc.wait()
            errors += 1
            problems.append(f"worker {i} ({role}) hung")
            continue
        try:
            with open(out) as fh:
                res = json.load(fh)
        except (OSError, ValueError):
            errors += 1
            problems.append(f"worker {i} ({role}) left no result: {worker_stderr(workdir, f'worker-{i}')[-800:]}")
            continue
        for key in ("untyped", "typed"):
            if res.get(key):
                errors += 1
                problems.append(f"worker {i} ({role}) {key}: {str(res[key]).strip().splitlines()[-1]}")
        results.append(res)
    lost = corrupt = 0
    detail, events, extra = "", 0, {}
    try:
        with eventstore.open(path, synchronous="normal") as store:
            events = store.last_position()
            report = store.verify()
            check = store.verify_projections()
            if not report.ok or not check.ok:
                corrupt += 1
                problems.append(f"verify: {report}; projections: {check}")
            if sc.audit is not None:
                a_lost, a_corrupt, detail, extra = sc.audit(store, results, context)
                lost += a_lost
                corrupt += a_corrupt
    except Exception as exc:  # the audit itself failed: a finding, never a crash of the harness
        errors += 1
        problems.append(f"audit failed: {type(exc).__name__}: {exc}")
    remove_store(path)
    workers = sum(c for _r, c in sc.roles)
    detail = f"{events} events; " + detail
    if problems:
        detail += "; problems: " + " / ".join(problems[:3])
    extra["problems"] = problems
    return Result("contention", f"{sc.name} ({workers} processes)", 1, "run", lost, corrupt, 0, errors, detail,
                  extra)


# --- scenarios -------------------------------------------------------------------------------


def _lease_setup(store: eventstore.Store) -> None:
    store.sessions.create(LEASE_SESSION)


def _lease_audit(store: eventstore.Store, results: list[dict], _ctx: Any) -> tuple[int, int, str, dict]:
    """One acquisition per generation, in order, never overlapping a live holder."""
    bad: list[str] = []
    token, expires, released = 0, 0, True
    generations = 0
    for ev in store.read_stream(f"session:{LEASE_SESSION}"):
        d = ev.data
        if ev.type == "session.lease_acquired":
            generations += 1
            if d.fencing_token != token + 1:
                bad.append(f"fence {d.fencing_token} after {token}")
            if not released and d.claimed_at_ms < expires:
                bad.append(f"fence {d.fencing_token} acquired at {d.claimed_at_ms} while {token} was live "
                           f"until {expires}")
            token, expires, released = d.fencing_token, d.expires_at_ms, False
        elif ev.type == "session.lease_renewed":
            if d.fencing_token != token:
                bad.append(f"renewal of fence {d.fencing_token} while {token} is current")
            expires = d.expires_at_ms
        elif ev.type == "session.lease_released":
            if d.fencing_token == token:
                released = True
    reported = [t for r in results for t in r.get("acquired", [])]
    if len(reported) != len(set(reported)):
        dup = [t for t, n in collections.Counter(reported).items() if n > 1]
        bad.append(f"fences reported by two workers: {dup[:5]}")
    if sorted(reported) != list(range(1, generations + 1)):
        bad.append(f"workers reported {len(reported)} acquisitions, the log has {generations}")
    busy = sum(r.get("busy", 0) for r in results)
    reentries = sum(r.get("reentries", 0) for r in results)
    return 0, len(bad), (f"{generations} generations, one holder each, fences 1..{token} strictly increasing, "
                         f"{busy} Busy answers, {reentries} re-entries by the same holder"
                         + (f"; {bad[:3]}" if bad else "")), {"generations": generations, "busy": busy,
                                                              "workers_acquiring": sum(1 for r in results if r.get("acquired"))}


def _queue_setup(batches: int) -> Callable[[eventstore.Store], list[str]]:
    def setup(store: eventstore.Store) -> list[str]:
        ids = []
        with store.transaction():
            now = store.now_ms()
            for k, sid in enumerate(QUEUE_SESSIONS):
                store.sessions.create(sid)
                drafts = []
                for i in range(batches // len(QUEUE_SESSIONS)):
                    if i % 25 == 7:
                        drafts.append(QueuedWorkDraft(sid, (RefreshToolCatalog(f"r{i}"),),
                                                      slot_policy=SlotPolicy.EXCLUSIVE))
                        continue
                    slot = SlotPolicy.EXCLUSIVE if i % 3 == 0 else SlotPolicy.JOIN
                    delivery = (DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT if i % 11 == 0
                                else DeliveryPolicy.EARLIEST_SAFE_BOUNDARY)
                    drafts.append(QueuedWorkDraft(sid, (AgentFrameTask("frame", {"k": k, "i": i}),), delivery, slot))
                plan = plan_enqueue(store.db, drafts, now)
                store.append(f"session:{sid}", list(plan.events), now_ms=now)
                ids.extend(r.batch.batch_id for r in plan.results)
        return ids

    return setup


def _queue_audit(store: eventstore.Store, results: list[dict], enqueued: list[str]) -> tuple[int, int, str, dict]:
    """Every batch completed exactly once; none lost; queues empty."""
    done = collections.Counter()
    for ev in store.read_all(types=["queue.completed"]):
        done.update(ev.data.batch_ids)
    twice = [b for b, n in done.items() if n > 1]
    missing = [b for b in enqueued if b not in done]
    left = sum(len(store.queue.list(sid)) for sid in QUEUE_SESSIONS)
    reported = collections.Counter(b for r in results for b in r.get("completed", []))
    disagree = sorted(set(reported) ^ set(done))
    superseded = sum(r.get("superseded", 0) for r in results)
    abandoned = sum(r.get("abandoned", 0) for r in results)
    detail = (f"{len(enqueued)} batches, {len(done)} completed once, {len(twice)} twice, {len(missing)} lost, "
              f"{left} left queued; {abandoned} claims abandoned and reclaimed, {superseded} superseded")
    if disagree:
        detail += f"; workers and log disagree on {len(disagree)} batches"
    return len(missing), len(twice) + len(disagree), detail, {
        "enqueued": len(enqueued), "completed": len(done), "workers_completing": sum(1 for r in results if r.get("completed"))}


def _commit_setup(store: eventstore.Store) -> None:
    store.sessions.create(COMMIT_SESSION)
    store.leases.claim(COMMIT_SESSION, COMMIT_OWNER, 600_000)


def _cas_audit(kind: str) -> Callable[[eventstore.Store, list[dict], Any], tuple[int, int, str, dict]]:
    def audit(store: eventstore.Store, results: list[dict], _ctx: Any) -> tuple[int, int, str, dict]:
        wins = [tuple(w) for r in results for w in r.get("wins", [])]
        losses = sum(r.get("losses", 0) for r in results)
        per_base = collections.Counter(base for base, _new in wins)
        doubles = [b for b, n in per_base.items() if n > 1]
        wrong = [w for w in wins if w[1] != w[0] + 1]
        if kind == "commit":
            final = store.sessions.load(COMMIT_SESSION, graph="none").head_revision
            revisions = [ev.data.revision for ev in store.read_stream(f"session:{COMMIT_SESSION}")
                         if ev.type == "session.committed"]
        else:
            final = store.stream_version(CAS_STREAM)
            revisions = list(range(1, final + 1))
        bad = len(doubles) + len(wrong) + (revisions != list(range(1, len(wins) + 1))) + (final != len(wins))
        return 0, bad, (f"{len(wins)} winners for {len(per_base)} revisions (at most one each: "
                        f"{'yes' if not doubles else 'NO'}), {losses} stale attempts refused, head at {final}"), {
                            "wins": len(wins), "losses": losses, "head": final}

    return audit


def _busy_audit(store: eventstore.Store, results: list[dict], _ctx: Any) -> tuple[int, int, str, dict]:
    writers = [r for r in results if r["role"] == "busy_writer"]
    busy = sum(r.get("busy", 0) for r in writers)
    ok = sum(r.get("ok", 0) for r in writers)
    refused_open = sum(r.get("open_refused_busy", 0) for r in writers)
    messages = [m for r in writers for m in r.get("bad_messages", [])]
    sample = next((r.get("sample") for r in writers if r.get("sample")), "")
    detail = (f"busy timeout 5 ms against a 150 ms lock holder: {busy} StoreBusy, {ok} appends succeeded, "
              f"{refused_open} opens refused with StoreBusy and retried")
    if messages:
        detail += f"; unclear messages: {messages[:2]}"
    return 0, (len(messages) > 0) + (busy == 0), detail + (f"; e.g. {sample!r}" if sample else ""), {
        "busy": busy, "ok": ok, "sample": sample}


def _readers_audit(store: eventstore.Store, results: list[dict], _ctx: Any) -> tuple[int, int, str, dict]:
    gaps = partials = seen = 0
    parts = []
    for r in results:
        for key in ("read_all", "follow", "cli"):
            v = r.get(key)
            if v is None:
                continue
            gaps += v["gap_count"]
            partials += v["partial_count"]
            seen += v["events"]
            parts.append(f"{key} saw {v['events']}")
        if r.get("failure_count"):
            gaps += r["failure_count"]
    detail = f"{'; '.join(parts)}; {gaps} gaps, {partials} commands seen in part"
    seen_by = {k: sum(r[k]["events"] for r in results if r.get(k)) for k in ("read_all", "follow", "cli")}
    return 0, gaps + partials + (seen == 0), detail, {"gaps": gaps, "partials": partials, "seen": seen_by}


def scenarios(workers: int, seconds: float, quick: bool) -> list[Scenario]:
    """The scenarios for `workers` processes."""
    batches = 200 if quick else 1200
    return [
        Scenario("racing lease claims", [("lease", workers)], seconds, _lease_setup, _lease_audit),
        Scenario("shared work queue", [("queue", workers)], seconds * 3, _queue_setup(batches), _queue_audit),
        Scenario("commits with stale head revisions", [("commit", workers)], seconds, _commit_setup,
                 _cas_audit("commit")),
        Scenario("appends with stale expected versions", [("append_cas", workers)], seconds, None,
                 _cas_audit("append")),
        Scenario("tiny busy timeout (5 ms) is typed StoreBusy", [("busy_holder", 1), ("busy_writer", workers - 1)],
                 seconds, None, _busy_audit, {"busy_writer": 5}),
        Scenario("readers beside writers", [("writer", workers - 2), ("reader", 1), ("cli_reader", 1)],
                 seconds * 2, None, _readers_audit),
    ]


def run(workdir: str | None = None, quick: bool = False, seconds: float | None = None,
        budget: Budget | None = None, sizes: tuple[int, ...] = (4, 8)) -> list[Result]:
    """Every scenario at each size; returns one Result per scenario and size."""
    budget = budget or Budget(None)
    per = seconds if seconds is not None else (1.5 if quick else 6.0)
    out = []
    with tempfile.TemporaryDirectory(prefix="torture-contention-", dir=workdir) as tmp:
        for n in sizes:
            for sc in scenarios(n, per, quick):
                if budget.expired():
                    return out
                out.append(run_scenario(sc, tmp))
    return out
