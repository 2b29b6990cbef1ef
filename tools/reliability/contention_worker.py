"""One racer of the contention harness: a role run by N processes against one store file.

Every worker waits for the harness's "go" file, races for `--seconds` (or `--rounds`),
then writes one JSON result to `--out` (written to a temporary name and renamed, so the
harness never reads half a result). Any exception that is not a StoreError is a finding:
it is written into the result as `untyped` with its traceback, never swallowed.

Roles:
* `lease`: claim the one shared session lease, hold it briefly (renewing it once), then
  release it, or sometimes walk away and let it expire; report every fence acquired.
* `queue`: drain the shared queues under session leases: claim, complete, release.
* `commit`: all workers share one lease owner (like the threads of one runtime) and race
  commits on one session, each expecting the head revision it just read.
* `append_cas`: race plain appends on one stream, each expecting the version it just read.
* `busy_holder` / `busy_writer`: one holds the write lock for long stretches; the others
  append with a tiny busy timeout and must get the typed StoreBusy, nothing else.
* `writer` / `reader` / `cli_reader`: writers append plain multi-event commands and
  domain commands; readers (`read_all` and `follow`, or `eventstore log --json`) check
  that what they see has no gap and never ends inside a command.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

import eventstore
from eventstore.commits import RuntimeCommit, EventPayload, GraphAppend, SessionNode
from eventstore.leases import Acquired, SessionExecutionLeaseExpired, LeaseOwner
from eventstore.queue import QueuedWorkClaimSuperseded

from .workload import Workload, raw_event, raw_tag

LEASE_SESSION = "race"
COMMIT_SESSION = "cas"
CAS_STREAM = "cas:stream"
QUEUE_SESSIONS = ("work-0", "work-1", "work-2", "work-3")
COMMIT_OWNER = LeaseOwner("shared-runtime", "shared-incarnation")
LEASE_TTL_MS = 250


def _wait_go(path: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.002)


def role_lease(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Race for the shared lease; report (fencing token, claimed_at_ms) of each acquisition."""
    owner = LeaseOwner(f"racer-{args.index}", f"inc-{args.index}-{os.getpid()}")
    acquired, reentries, busy = [], 0, 0
    while time.monotonic() < end:
        out = store.leases.claim(LEASE_SESSION, owner, LEASE_TTL_MS)
        if not isinstance(out, Acquired):
            busy += 1
            time.sleep(rng.uniform(0.0, 0.01))
            continue
        if out.reentry:  # our own lease, left to expire last time, was still live: same fence
            reentries += 1
        else:
            acquired.append(out.lease.fencing_token)
        time.sleep(rng.uniform(0.0, 0.02))
        try:
            fence = store.leases.renew(out.lease.fence, LEASE_TTL_MS).fence
            if rng.random() < 0.85:
                store.leases.release(fence)
            # else: walk away; the lease expires and someone else takes generation + 1
        except SessionExecutionLeaseExpired:
            pass  # held too long on a loaded machine: it expired, which the audit allows
        time.sleep(rng.uniform(0.002, 0.02))  # other work between tenures: the others get a turn
    return {"acquired": acquired, "reentries": reentries, "busy": busy}


def role_queue(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Drain the queues: lease a session, claim and complete some work, release."""
    owner = LeaseOwner(f"drainer-{args.index}", f"inc-{args.index}-{os.getpid()}")
    completed, superseded, abandoned = [], 0, 0
    idle_rounds = 0
    while time.monotonic() < end and idle_rounds < 50:
        sid = rng.choice(QUEUE_SESSIONS)
        got = store.leases.claim(sid, owner, 2_000)
        if not isinstance(got, Acquired):
            time.sleep(rng.uniform(0.0, 0.005))
            continue
        fence = got.lease.fence
        worked = False
        try:
            for _ in range(rng.randint(1, 6)):
                claim = store.queue.claim_ready(fence, max_batches=rng.randint(1, 4))
                if claim is None:
                    claim = store.queue.claim_session_command(fence)
                if claim is None:
                    break
                worked = True
                if rng.random() < 0.1:
                    store.queue.abandon(claim)
                    abandoned += 1
                    continue
                done = store.queue.complete(claim.completion())
                completed.extend(done.batch_ids)
        except (QueuedWorkClaimSuperseded, SessionExecutionLeaseExpired):
            superseded += 1
        finally:
            store.leases.release(fence)
        idle_rounds = 0 if worked else idle_rounds + 1
    return {"completed": completed, "superseded": superseded, "abandoned": abandoned}


def role_commit(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Race commits on one session, each expecting the revision it just read."""
    from eventstore.commits import HeadRevisionConflict

    wins, losses = [], 0
    n = 0
    while time.monotonic() < end:
        fence = store.leases.claim(COMMIT_SESSION, COMMIT_OWNER, 600_000).lease.fence  # re-entry: same fence
        loaded = store.sessions.load(COMMIT_SESSION, graph="none")
        revision = loaded.head_revision if loaded is not None else 0
        n += 1
        node = SessionNode(f"w{args.index}-{n}", EventPayload({"by": args.index, "n": n}))
        try:
            result = store.sessions.commit(RuntimeCommit(COMMIT_SESSION, fence, GraphAppend((node,), node.node_id),
                                                         expected_head_revision=revision))
            wins.append([revision, result.head_revision])
        except HeadRevisionConflict as exc:
            losses += 1
            if exc.expected != revision:
                raise AssertionError(f"conflict names expected {exc.expected}, sent {revision}") from None
    return {"wins": wins, "losses": losses}


def role_append_cas(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Race plain appends expecting the stream version just read."""
    wins, losses = [], 0
    while time.monotonic() < end:
        version = store.stream_version(CAS_STREAM)
        try:
            r = store.append(CAS_STREAM, [raw_event(args.index, 0, 1, rng)], expected_version=version)
            wins.append([version, r.stream_version])
        except eventstore.WrongExpectedVersion:
            losses += 1
    return {"wins": wins, "losses": losses}


def role_busy_holder(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Hold the write lock for 150 ms at a time, far past the writers' busy timeout."""
    holds = 0
    while time.monotonic() < end:
        with store.transaction():
            store.append("busy:holder", [raw_event(holds, 0, 1, rng)])
            time.sleep(0.15)
        holds += 1
        time.sleep(0.01)
    return {"holds": holds}


def role_busy_writer(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Append with a tiny busy timeout; count successes and StoreBusy, check its message."""
    ok, busy, bad_messages, sample = 0, 0, [], ""
    while time.monotonic() < end:
        try:
            store.append(f"busy:{args.index}", [raw_event(ok, 0, 1, rng)])
            ok += 1
        except eventstore.StoreBusy as exc:
            busy += 1
            sample = sample or str(exc)
            if "busy timeout" not in str(exc) or "locked" not in str(exc):
                bad_messages.append(str(exc))
    return {"ok": ok, "busy": busy, "bad_messages": bad_messages[:5], "sample": sample}


def role_writer(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Plain multi-event appends and domain commands, as readers watch."""
    workload = Workload(store, rng, f"w{args.index}",
                        weights={"create": 1.0, "claim": 1.0, "renew": 0.5, "enqueue": 1.0, "claim_work": 0.5,
                                 "complete_work": 0.5, "commit": 1.0, "process": 0.5, "raw": 4.0})
    ops = 0
    while time.monotonic() < end:
        op = workload.next_op()
        try:
            op.run()
        except eventstore.StoreError as exc:
            workload.observe(op, exc)
        ops += 1
    return {"ops": ops}


class SeenChecker:
    """Checks a reader's view: consecutive positions, and plain commands never cut short."""

    def __init__(self) -> None:
        self.last = 0
        self.open_tag: dict | None = None
        self.gaps: list[str] = []
        self.partials: list[str] = []
        self.events = 0

    def see(self, position: int, data: Any) -> None:
        """One event, in the order the reader got it."""
        if position != self.last + 1:
            self.gaps.append(f"after {self.last} came {position}")
        tag = raw_tag(data)
        if self.open_tag is not None and (tag is None or tag["i"] != self.open_tag["i"] + 1):
            self.partials.append(f"a command stopped at event {self.open_tag['i'] + 1} of {self.open_tag['n']} "
                                 f"(position {self.last})")
        self.open_tag = tag if tag is not None and tag["i"] + 1 < tag["n"] else None
        self.last = position
        self.events += 1

    def end_of_read(self) -> None:
        """A read ended (the log was exhausted): it must not end inside a command."""
        if self.open_tag is not None:
            self.partials.append(f"a read ended inside a command, at event {self.open_tag['i'] + 1} of "
                                 f"{self.open_tag['n']} (position {self.last})")
            self.open_tag = None

    def result(self) -> dict:
        """The checker's findings."""
        return {"events": self.events, "last": self.last, "gaps": self.gaps[:5], "gap_count": len(self.gaps),
                "partials": self.partials[:5], "partial_count": len(self.partials)}


def role_reader(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Tail the log with read_all (pass after pass) and, in a thread, with follow()."""
    stop = threading.Event()
    followed = SeenChecker()
    follow_error: list[str] = []

    def follow() -> None:
        try:
            with eventstore.open(args.path) as other:
                for ev in other.follow(1, stop=stop, poll_interval=0.005, raw=True):
                    followed.see(ev.position, ev.data)
        except BaseException:  # reported, never swallowed
            follow_error.append(traceback.format_exc())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    tail = SeenChecker()
    passes = 0
    while time.monotonic() < end:
        for ev in store.read_all(tail.last + 1, raw=True, page_size=rng.choice((7, 50, 1000))):
            tail.see(ev.position, ev.data)
        tail.end_of_read()
        passes += 1
    time.sleep(0.2)
    stop.set()
    thread.join(timeout=30)
    return {"read_all": tail.result(), "follow": followed.result(), "passes": passes,
            "untyped": follow_error[0] if follow_error else None}


def role_cli_reader(store: eventstore.Store, args: Any, rng: random.Random, end: float) -> dict:
    """Run `eventstore log DB --json --from P` repeatedly while writers append."""
    tail = SeenChecker()
    runs, failures = 0, []
    while time.monotonic() < end:
        proc = subprocess.run([sys.executable, "-m", "eventstore", "log", args.path, "--json",
                               "--from", str(tail.last + 1)], capture_output=True, text=True, timeout=120)
        runs += 1
        if proc.returncode != 0:
            failures.append(proc.stderr[-500:])
            continue
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            tail.see(rec["position"], rec["data"])
        tail.end_of_read()
    return {"cli": tail.result(), "runs": runs, "failures": failures[:3], "failure_count": len(failures)}


ROLES = {
    "lease": role_lease, "queue": role_queue, "commit": role_commit, "append_cas": role_append_cas,
    "busy_holder": role_busy_holder, "busy_writer": role_busy_writer, "writer": role_writer,
    "reader": role_reader, "cli_reader": role_cli_reader,
}


def _open(args: Any) -> tuple[eventstore.Store, int]:
    """Open the store; with a tiny busy timeout opening itself may be refused (StoreBusy): retry."""
    refused = 0
    while True:
        try:
            return eventstore.open(args.path, synchronous="normal", busy_timeout_ms=args.busy_timeout_ms), refused
        except eventstore.StoreBusy:
            refused += 1
            time.sleep(0.005)


def main(args: Any) -> int:
    """Run one role and write its result (see the module docstring)."""
    rng = random.Random(args.index * 7919 + os.getpid())
    result: dict = {"role": args.role, "index": args.index}
    status = 0
    try:
        store, refused = _open(args)
        result["open_refused_busy"] = refused
        with store:
            open(args.out + ".ready", "w").close()  # the harness says go once every worker is here
            _wait_go(args.go)
            end = time.monotonic() + args.seconds
            result.update(ROLES[args.role](store, args, rng, end))
    except eventstore.StoreError as exc:
        result["typed"] = f"{type(exc).__name__}: {exc}"
        status = 1
    except BaseException:
        result["untyped"] = traceback.format_exc()
        status = 1
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh)
    os.replace(tmp, args.out)
    return status
