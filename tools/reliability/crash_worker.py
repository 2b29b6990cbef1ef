"""The writer the crash harness kills: it runs commands and acknowledges each one outside the store.

Acknowledgement protocol (one JSON line per record, each written with a single
`os.write` on an O_APPEND file descriptor, so a SIGKILL can never leave half a line, and
the line is in the kernel as soon as the call returns; a process kill loses nothing that
was written, a power loss could, which is why this harness can only speak for crashes):

* `{"phase": "start", "last": P}`: the log's last position when the worker began;
* `{"phase": "intent", "op": i, "kind": K, "raw": n | null}`: written *before* op i runs;
* `{"phase": "ack", "op": i, "first": a, "last": b, "marker": m, "hash": h, "outcome": ...}`:
  written *after* op i returned (or was refused with a typed error).

Plain log appends (`raw` = the number of events) are acknowledged with the positions
the append returned. A domain command appends a number of events known only once it
ran, so it runs inside one `store.transaction()` followed, in that same transaction, by
a *marker* event on `torture-ops:<prefix>` that records the positions the command
wrote; the marker commits if and only if the command's events do, which lets the
harness tell an in-flight command that landed whole from one that landed in part.
`hash` is the chain hash of the newest row once the op returned: finding that exact
hash at that position after a crash proves the acknowledged prefix of the log is intact.

Modes: `mix` (the realistic workload), `rebuild` (projection rebuilds in a loop while a
second thread appends), `gc` (commits that orphan checkpoint blobs, and blob GC),
`purge` (sessions created, filled, deleted and purged).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any, Callable

import eventstore
from eventstore.demo import UserMessage

from .workload import RAW_STREAM_PREFIX, Op, Workload, raw_event

MARKER_STREAM_PREFIX = "torture-ops:"


class AckLog:
    """An append-only file of JSON lines outside the store (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lock = threading.Lock()

    def write(self, record: dict) -> None:
        """Write one record with one write(2): it is whole in the file or absent."""
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self.lock:
            os.write(self.fd, data)


def marker_event(op: int, first: int, last: int) -> Any:
    """The marker recording that op `op` wrote positions first..last (first > last: nothing)."""
    return UserMessage(json.dumps({"marker": op, "first": first, "last": last}))


def marker_of(data: Any) -> dict | None:
    """The {"marker", "first", "last"} record of a marker event (raw or decoded data), or None."""
    text = data.get("text") if isinstance(data, dict) else getattr(data, "text", None)
    if not isinstance(text, str) or not text.startswith('{"marker"'):
        return None
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and {"marker", "first", "last"} <= set(rec) else None


class AckedRunner:
    """Runs Ops and writes the intent and acknowledgement records around each."""

    def __init__(self, store: eventstore.Store, acks: AckLog, prefix: str, observe: Callable[[Op, BaseException], None] | None = None) -> None:
        self.store = store
        self.acks = acks
        self.marker_stream = MARKER_STREAM_PREFIX + prefix
        self.observe = observe
        self.op = 0

    def run(self, op: Op) -> None:
        """Run one op under the protocol; typed refusals are acknowledged as outcomes."""
        self.op += 1
        i = self.op
        store = self.store
        self.acks.write({"phase": "intent", "op": i, "kind": op.kind, "raw": op.raw_events})
        outcome = "ok"
        if op.raw_events is not None:
            try:
                result = op.run()
                first, last, marker = result.first_position, result.last_position, None
            except eventstore.StoreError as exc:
                outcome = type(exc).__name__
                first, last, marker = 0, -1, None
                if self.observe:
                    self.observe(op, exc)
        else:
            # Why one outer transaction: the marker must commit exactly when the command's
            # events do. The command's own transaction becomes a savepoint inside it.
            with store.transaction():
                before = store.last_position()
                try:
                    op.run()
                except eventstore.StoreError as exc:
                    outcome = type(exc).__name__
                    if self.observe:
                        self.observe(op, exc)
                after = store.last_position()
                marker = store.append(self.marker_stream, [marker_event(i, before + 1, after)]).last_position
                first, last = before + 1, after
        head = store.anchor()
        self.acks.write({"phase": "ack", "op": i, "first": first, "last": last, "marker": marker,
                         "head": head.position, "hash": head.hash, "outcome": outcome})


# --- modes -------------------------------------------------------------------------------


def run_mix(store: eventstore.Store, acks: AckLog, prefix: str, seed: int, limit_s: float) -> None:
    """The realistic workload until killed (or `limit_s` passes)."""
    workload = Workload(store, random.Random(seed), prefix)
    runner = AckedRunner(store, acks, prefix, workload.observe)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        runner.run(workload.next_op())


def run_rebuild(store: eventstore.Store, acks: AckLog, prefix: str, seed: int, limit_s: float,
                path: str, synchronous: str) -> None:
    """Rebuild every projection in a loop while a second handle appends plain commands."""
    stop = threading.Event()

    def writer() -> None:
        rng = random.Random(seed)
        with eventstore.open(path, synchronous=synchronous) as other:
            version = other.stream_version(RAW_STREAM_PREFIX + prefix)
            runner = AckedRunner(other, acks, prefix)
            while not stop.is_set():
                count = rng.randint(1, 4)
                events = [raw_event(runner.op + 1, k, count, rng) for k in range(count)]

                def append(events: list = events, expected: int = version) -> Any:
                    return other.append(RAW_STREAM_PREFIX + prefix, events, expected_version=expected)

                runner.run(Op("log.append", append, raw_events=count))
                version += count
                time.sleep(rng.uniform(0.0, 0.01))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    deadline = time.monotonic() + limit_s
    rebuilds = 0
    try:
        while time.monotonic() < deadline:
            rebuilds += 1
            acks.write({"phase": "intent", "op": -rebuilds, "kind": "rebuild", "raw": None})
            store.rebuild()
            acks.write({"phase": "note", "op": -rebuilds, "kind": "rebuild", "done": True})
    finally:
        stop.set()
        thread.join(timeout=10)


def run_gc(store: eventstore.Store, acks: AckLog, prefix: str, seed: int, limit_s: float) -> None:
    """Commits that replace checkpoints (orphaning the old blobs) and blob GC, until killed."""
    rng = random.Random(seed)
    workload = Workload(store, rng, prefix, blob_bytes=16 * 1024,
                        weights={"create": 1.0, "claim": 1.0, "commit": 6.0, "raw": 0.5})
    runner = AckedRunner(store, acks, prefix, workload.observe)

    def garbage() -> Any:
        # Uploads nobody roots (an attachment that was never committed): GC's work.
        with store.transaction():
            return [store.blobs.put(rng.randbytes(rng.randint(64, 4096))) for _ in range(rng.randint(200, 2000))]

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        pick = rng.random()
        if workload.op_counter and pick < 0.15:
            runner.run(Op("sessions.gc", store.sessions.gc))
        elif pick < 0.3:
            runner.run(Op("blobs.put", garbage))
        else:
            runner.run(workload.next_op())


def run_purge(store: eventstore.Store, acks: AckLog, prefix: str, seed: int, limit_s: float) -> None:
    """Sessions created, filled with hundreds of events, deleted and purged, until killed."""
    from eventstore.queue import AgentFrameTask, QueuedWorkDraft, plan_enqueue

    rng = random.Random(seed)
    runner = AckedRunner(store, acks, prefix)
    deadline = time.monotonic() + limit_s
    n = 0
    while time.monotonic() < deadline:
        n += 1
        sid = f"{prefix}-purge{n}"
        runner.run(Op("sessions.create", lambda sid=sid: store.sessions.create(sid)))
        for _ in range(rng.randint(3, 6)):
            def fill(sid: str = sid) -> Any:
                drafts = [QueuedWorkDraft(sid, (AgentFrameTask("f", "w" * rng.randint(10, 400)),))
                          for _ in range(rng.randint(300, 900))]
                with store.transaction():
                    now = store.now_ms()
                    plan = plan_enqueue(store.db, drafts, now)
                    return store.append(f"session:{sid}", list(plan.events), now_ms=now)

            runner.run(Op("queue.enqueue_many", fill))
        runner.run(Op("sessions.delete", lambda sid=sid: store.sessions.delete(sid)))
        runner.run(Op("sessions.purge", lambda sid=sid: store.sessions.purge(sid)))


def main(args: Any) -> int:
    """Entry point used by tools/torture_worker.py (arguments parsed there)."""
    acks = AckLog(args.acks)
    with eventstore.open(args.path, synchronous=args.synchronous) as store:
        acks.write({"phase": "start", "last": store.last_position(), "pid": os.getpid()})
        if args.mode == "mix":
            run_mix(store, acks, args.prefix, args.seed, args.seconds)
        elif args.mode == "rebuild":
            run_rebuild(store, acks, args.prefix, args.seed, args.seconds, args.path, args.synchronous)
        elif args.mode == "gc":
            run_gc(store, acks, args.prefix, args.seed, args.seconds)
        elif args.mode == "purge":
            run_purge(store, acks, args.prefix, args.seed, args.seconds)
        else:
            raise SystemExit(f"unknown crash mode {args.mode!r}")
    acks.write({"phase": "end"})
    return 0
