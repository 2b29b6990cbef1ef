"""Replay and debugging: time travel of a 10,000-event session, offline rebuild at scale,
export and import.

* time travel: the state of one 10,000-event session (sessions, leases, queue, inputs,
  runtime commits and processes, written through the facades) at 20 random positions,
  read as a reader of that session reads it (its row, then `sessions.load`):
  `store.at(p, streams=[s])` (a replay of the session's stream from position 1 of the
  projections the reads touch; target: a median of at most 25 ms), the same view with
  every projection replayed (for comparison), and `eventstore.debug.timetravel.view_at`
  (the replay from the nearest cached snapshot, one every 1,000 events; its first call,
  which writes the snapshots, is reported apart; target: at most 50 ms at any position).
* offline rebuild: `store.rebuild()` of every projection over a log of realistic domain
  events (the session above cloned under other ids, byte for byte, with its chain
  recomputed; appended in large transactions), in a child process whose peak RSS growth
  over its own baseline after opening the store is reported. Targets: at least 60,000
  events/s, at most 32 MiB of growth. Full mode: 1,000,000 events; quick: 60,000.
* export and import (with every check and the projections applied) of that log.

Run it through the harness: `python tools/bench.py --only replay [--quick]`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any

import eventstore
from eventstore import chain, codec
from eventstore.commits import RuntimeCommit, EventPayload, GraphAppend, SessionNode, UsageDelta
from eventstore.inputs import NextTurn, TurnInputDraft
from eventstore.leases import LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.sessions import SessionMeta

from benches import row

TITLE = "Replay: time travel, offline rebuild, export and import"
TOKEN = "S000000000"
"""The template session id; clones use ids of the same length, so that replacing it in the
msgpack bytes keeps every length prefix valid."""
SESSION_EVENTS = 10_000

_CHILD = r"""
import json, resource, sys, time
import eventstore


def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


path = sys.argv[1]
with eventstore.open(path, synchronous="normal") as store:
    # Reset the peak to the current RSS (Linux: clear_refs 5), so that the peak read after
    # the rebuild is the rebuild's own, not a transient of the imports before it.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base, how = status("VmRSS"), "VmHWM"
    except OSError:
        base, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    started, cpu = time.perf_counter(), time.process_time()
    report = store.rebuild()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = status("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"events": report.events, "seconds": seconds, "cpu": cpu, "base_kib": base, "peak_kib": peak,
                  "how": how}))
"""


# --- a realistic session through the facades --------------------------------------------------------


def _processes_api() -> Any:
    """The processes domain module, or None when this code has none."""
    try:
        from eventstore import processes
    except ImportError:
        return None
    return processes


def build_session(store: eventstore.Store, clock: eventstore.ManualClock, sid: str, events: int,
                  one_transaction: bool = True) -> int:
    """Write turns on session `sid` until it has at least `events` events; returns turns.

    With `one_transaction` (the default, fast) everything is one write transaction;
    without it each facade call is its own command, as a runtime writes them.

    A turn: renew (or claim) the lease, enqueue work and a user input, claim both,
    commit two nodes with usage and both completions; every 10th turn releases the lease
    (the next claim is by the other runtime) and runs a tool process (register, two
    output events, completion) that wakes the session.
    """
    store.sessions.create(sid, SessionMeta(name="bench", model="model-1", cwd="/srv/agent"))
    owners = [LeaseOwner("runtime-a", "inc-1"), LeaseOwner("runtime-b", "inc-2")]
    p = _processes_api()
    line = p.EventTypeSpec("tool.output", p.PayloadSchema("object", ("line",))) if p else None
    lease = None
    leaf = None
    turn = 0
    with store.transaction() if one_transaction else contextlib.nullcontext():
        while store.stream_version(f"session:{sid}") < events:
            clock.advance(1000)
            if lease is None:
                lease = store.leases.claim(sid, owners[(turn // 10) % 2], 30_000).lease
            else:
                lease = store.leases.renew(lease.fence, 30_000)
            store.queue.enqueue(QueuedWorkDraft(sid, (AgentFrameTask("main", f"step {turn}"),)))
            store.inputs.enqueue(TurnInputDraft(sid, {"text": f"user message {turn}"}, NextTurn()))
            qc = store.queue.claim_ready(lease.fence)
            ic = store.inputs.claim_next_turn(lease.fence)
            user = SessionNode(f"n{turn}u", EventPayload({"role": "user", "text": f"user message {turn}"}),
                               parent_node_id=leaf)
            reply = SessionNode(f"n{turn}a", EventPayload({"role": "assistant", "text": "ok, " * 40}),
                                parent_node_id=user.node_id)
            leaf = reply.node_id
            release = turn % 10 == 9
            store.sessions.commit(RuntimeCommit(
                sid, lease.fence, GraphAppend((user, reply), leaf), usage_deltas=(UsageDelta("turn", "model-1", 900, 60),),
                completed_queue_claims=(qc.completion(),), completed_turn_input_claims=(ic.completion(),),
                release_lease=release))
            if release:
                lease = None
                if p is not None:
                    pid = f"{sid}-tool-{turn:06d}"
                    reg = p.ProcessRegistration(pid, p.ExternalInput({"job": pid}),
                                                   p.Disposition.EXTERNALLY_OWNED, p.Provenance(p.HostScope()),
                                                   (line,), wake_target=p.SessionScope(sid))
                    store.processes.register(reg)
                    for k in range(2):
                        store.processes.append_event(pid, p.AppendEventRequest("tool.output", {"line": f"out {k}"}))
                    store.processes.complete(pid, p.Success({"exit": 0}), p.ExternalOwner("bench"))
            turn += 1
    return turn


# --- a large log, cloned from the template at the byte level -------------------------------------------


def template_rows(store: eventstore.Store) -> list[tuple]:
    """(stream, version, type, schema, recorded_at_ms, raw uncompressed payload, command mark)
    of every event."""
    rows = []
    for _position, stream, version, type_, schema, at, flags, payload in store.db.query(
            "SELECT position, stream, version, type, schema, recorded_at_ms, flags, payload FROM events "
            "ORDER BY position"):
        raw = codec.decompress(payload, flags, 1 << 30)
        rows.append((stream, version, type_, schema, at, bytes(raw), flags & codec.COMMAND_FLAGS))
    return rows


def write_clones(path: str, template: list[tuple], total: int, chunk: int = 50_000) -> int:
    """A new store at `path` holding `total` events: the template repeated under session ids
    of the template's length, with payload bytes rewritten in place and the chain recomputed.
    Rows go straight into the events table (the projections are left for a rebuild)."""
    token = TOKEN.encode()
    out = 0
    with eventstore.open(path, synchronous="normal") as store:
        threshold = store.log.compress_threshold
        prev = chain.GENESIS
        position = 0
        clone = 0
        batch: list[tuple] = []
        link = chain.link
        digest_of = chain.payload_digest
        while out < total:
            clone += 1
            sid = f"S{clone:09d}"
            new = sid.encode()
            shift = clone * 86_400_000
            for stream, version, type_, schema, at, raw, mark in template:
                if out >= total:
                    break
                position += 1
                out += 1
                stored, flags = codec.compress_for(raw.replace(token, new), threshold)
                flags |= mark  # the template's commands, cloned with it
                s = stream.replace(TOKEN, sid)
                prev = link(prev, position, s, version, type_, schema, at + shift, flags, digest_of(stored))
                batch.append((position, s, version, type_, schema, at + shift, flags, stored, prev))
                if len(batch) >= chunk:
                    with store.transaction():
                        store.db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", batch)
                    batch = []
        if batch:
            with store.transaction():
                store.db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", batch)
        store.log.invalidate_cache()
    return out


def _rebuild_in_child(path: str) -> dict:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", _CHILD, path], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- time travel ------------------------------------------------------------------------------------------


def _time_travel(path: str, quick: bool) -> tuple[list[dict], list[tuple]]:
    from eventstore.debug.timetravel import clear_cache, view_at

    clock = eventstore.ManualClock(1_700_000_000_000)
    rows = []
    with eventstore.open(path, clock=clock, synchronous="normal") as store:
        started = time.perf_counter()
        build_session(store, clock, TOKEN, SESSION_EVENTS)
        built = time.perf_counter() - started
        stream = f"session:{TOKEN}"
        n = store.stream_version(stream)
        positions = random.Random(7).sample(range(1, store.last_position() + 1), 10 if quick else 20)
        positions[0] = store.last_position()
        plain, full, cached = [], [], []
        for p in positions:
            t0 = time.perf_counter()
            with store.at(p, [stream]) as view:
                _read_session(view, TOKEN)
            plain.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            with store.at(p, [stream]) as view:
                _read_everything(view)
            full.append((time.perf_counter() - t0) * 1000)
        clear_cache(store)
        t0 = time.perf_counter()
        view_at(store, store.last_position(), [stream]).close()  # writes the snapshots
        first = (time.perf_counter() - t0) * 1000
        for p in positions:
            t0 = time.perf_counter()
            with view_at(store, p, [stream]) as view:
                _read_session(view, TOKEN)
            cached.append((time.perf_counter() - t0) * 1000)
        template = template_rows(store)
    note = f"{n:,}-event session; {len(positions)} random positions"
    rows.append(row("build the session through the facades", n / built, "events/s", note=f"{n:,} events, one transaction"))
    rows.append(row("state at a position: store.at, then load the session, worst", max(plain), "ms",
                    note=note + "; for comparison"))
    rows.append(row("state at a position: store.at, then load the session, median", statistics.median(plain), "ms",
                    note=note + "; replays what the load reads", target="value <= 25"))
    rows.append(row("state at a position: store.at, then every projection, median", statistics.median(full), "ms",
                    note=note + "; replays all of them"))
    rows.append(row("state at a position: snapshots every 1,000 events, then load the session, worst", max(cached),
                    "ms", note=note, target="value <= 50"))
    rows.append(row("state at a position: snapshots, then load the session, median", statistics.median(cached), "ms",
                    note=note))
    rows.append(row("first view_at of the session (writes its snapshots)", first, "ms",
                    note="once per session and projection versions"))
    return rows, template


def _read_session(view: Any, sid: str) -> None:
    """What a reader of one session at a position reads: its row, then the session loaded
    (head, checkpoint, config; no graph walk)."""
    if view.sessions.get(sid) is not None:
        view.sessions.load(sid, graph="none")


def _read_everything(view: Any) -> None:
    """Every projection of the view replayed (a view of older code replays them all at once)."""
    materialize = getattr(view.db, "materialize", None)
    if materialize is not None:
        materialize()


def run(workdir: str, quick: bool) -> list[dict[str, Any]]:
    """The benchmark rows (see the module docstring)."""
    from eventstore.debug.export import export_to_path
    from eventstore.debug.importer import import_store

    rows, template = _time_travel(os.path.join(workdir, "session.db"), quick)
    total = 60_000 if quick else 1_000_000
    big = os.path.join(workdir, "big.db")
    started = time.perf_counter()
    n = write_clones(big, template, total)
    generated = time.perf_counter() - started
    types = len({t[2] for t in template})
    rows.append(row("generate the log (byte-level clones, chain recomputed)", n / generated, "events/s",
                    note=f"{n:,} events of {types} types, {len(template):,} per session"))
    child = _rebuild_in_child(big)
    rate = child["events"] / child["seconds"]
    growth = (child["peak_kib"] - child["base_kib"]) / 1024
    rows.append(row("offline rebuild of every projection", rate, "events/s", reference=5_400.0,
                    reference_name="eventsourcing follower (best)", note=f"{child['events']:,} events, "
                    f"{child['seconds']:.1f}s ({child['cpu']:.1f}s of CPU: on busy cores, the steadier figure)",
                    target="value >= 60000"))
    rows.append(row("rebuild: peak RSS growth over the child's baseline", growth, "MiB",
                    note=f"baseline {child['base_kib'] / 1024:.0f} MiB after open ({child['how']})", target="value <= 32"))
    sample = min(n, 20_000 if quick else 100_000)
    part = os.path.join(workdir, "part.db")
    write_clones(part, template, sample)
    with eventstore.open(part, synchronous="normal") as store:
        store.rebuild()
        exported = os.path.join(workdir, "part.jsonl")
        t0 = time.perf_counter()
        export_to_path(store, exported)
        export_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    import_store(exported, os.path.join(workdir, "imported.db"), synchronous="normal")
    import_s = time.perf_counter() - t0
    size = os.path.getsize(exported)
    rows.append(row("export (JSON lines, chain recomputed)", sample / export_s, "events/s",
                    note=f"{sample:,} events, {size / sample:.0f} bytes per event"))
    rows.append(row("import (every line checked, projections applied)", sample / import_s, "events/s",
                    note=f"{sample:,} events, one transaction"))
    return rows
