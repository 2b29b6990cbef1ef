"""The process registry across real OS processes (multiprocessing, 'spawn' context).

* a second process blocks in `wait_for` and sees the completion the first one commits;
* two processes appending to one process's log get one gap-free sequence;
* a change-feed follower sees every terminal transition written concurrently by two
  other processes exactly once;
* a lease held by a process that exited is reclaimed with the /proc proof of death;
* two processes putting different handovers for the same segment of 20 processes: one
  put per process wins, the other gets HandoverConflict, and the winner's payload stays.

Every wait is bounded; a child that hangs fails the test instead of blocking it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import eventstore
from eventstore.processes import (
    Acquired, AppendEventRequest, Disposition, EngineInput, EventTypeSpec, ExternalInput, ExternalOwner,
    HandoverConflict, HostScope, ProcessRegistration, Provenance, Success,
)
from eventstore.leases import this_process

CTX = mp.get_context("spawn")
WAIT_S = 60


def _registration(pid: str) -> ProcessRegistration:
    return ProcessRegistration(pid, ExternalInput(), Disposition.EXTERNALLY_OWNED, Provenance(HostScope()),
                               (EventTypeSpec("job.line"),))


def _await_in_child(path: str, pid: str, ready, results) -> None:
    with eventstore.open(path) as store:
        ready.set()
        try:
            results.put(("ok", store.processes.wait_for(pid, timeout_s=WAIT_S, poll_interval_s=0.01)))
        except Exception as exc:  # report, do not hang the parent
            results.put(("error", repr(exc)))


def _append_in_child(path: str, pid: str, writer: int, count: int, start) -> None:
    start.wait(WAIT_S)
    with eventstore.open(path) as store:
        for i in range(count):
            store.processes.append_event(pid, AppendEventRequest("job.line", {"writer": writer, "i": i}))


def _register_and_complete_in_child(path: str, writer: int, count: int, start) -> None:
    start.wait(WAIT_S)
    with eventstore.open(path) as store:
        for i in range(count):
            pid = f"w{writer}-{i:02d}"
            store.processes.register(_registration(pid))
            store.processes.append_event(pid, AppendEventRequest("job.line", {"i": i}))
            store.processes.complete(pid, Success(i), ExternalOwner("writer"))


def _lease_in_child(path: str, pid: str, results) -> None:
    with eventstore.open(path) as store:
        outcome = store.processes.claim_lease(pid, this_process("child-worker"), 600_000)
        results.put(outcome.lease)


def _put_handovers_in_child(path: str, pids: list, writer: int, start, results) -> None:
    start.wait(WAIT_S)
    won = []
    with eventstore.open(path) as store:
        for pid in pids:
            try:
                store.processes.put_handover(pid, 1, {"writer": writer})
                won.append(pid)
            except HandoverConflict:
                pass
    results.put((writer, won))


def _finish(proc) -> None:
    proc.join(WAIT_S)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
        raise AssertionError("child process did not finish in time")
    assert proc.exitcode == 0, f"child exited with {proc.exitcode}"


def test_await_from_a_second_process_sees_the_completion(tmp_path):
    path = str(tmp_path / "await.db")
    with eventstore.open(path) as store:
        store.processes.register(_registration("p"))
        ready, results = CTX.Event(), CTX.Queue()
        child = CTX.Process(target=_await_in_child, args=(path, "p", ready, results))
        child.start()
        try:
            assert ready.wait(WAIT_S), "the awaiting process did not start"
            store.processes.complete("p", Success({"rows": 3}), ExternalOwner("session:s1"))
            status, value = results.get(timeout=WAIT_S)
        finally:
            _finish(child)
    assert (status, value) == ("ok", Success({"rows": 3}))


def test_two_processes_appending_share_one_gap_free_sequence(tmp_path):
    path = str(tmp_path / "appends.db")
    count = 40
    with eventstore.open(path) as store:
        store.processes.register(_registration("p"))
        start = CTX.Event()
        children = [CTX.Process(target=_append_in_child, args=(path, "p", w, count, start)) for w in range(2)]
        for c in children:
            c.start()
        start.set()
        for c in children:
            _finish(c)
        events = store.processes.events_after("p")
    assert [e.sequence for e in events] == list(range(1, 2 * count + 1))
    assert sorted((e.payload["writer"], e.payload["i"]) for e in events) == [(w, i) for w in range(2)
                                                                             for i in range(count)]
    for w in range(2):  # each writer's own events keep their order
        assert [e.payload["i"] for e in events if e.payload["writer"] == w] == list(range(count))


def test_change_feed_follower_sees_every_concurrent_terminal_transition_once(tmp_path):
    path = str(tmp_path / "feed.db")
    count = 15
    expected = {f"w{w}-{i:02d}" for w in range(2) for i in range(count)}
    with eventstore.open(path) as store:
        store.processes.register(_registration("warm-up"))  # create the file before the writers start
        start = CTX.Event()
        children = [CTX.Process(target=_register_and_complete_in_child, args=(path, w, count, start))
                    for w in range(2)]
        for c in children:
            c.start()
        start.set()
        terminal_seen: dict[str, int] = {}
        cursor, deadline = 0, time.monotonic() + WAIT_S
        try:
            while set(terminal_seen) != expected or any(c.is_alive() for c in children):
                assert time.monotonic() < deadline, "the follower did not see every terminal transition in time"
                page = store.processes.changes_since(cursor, limit=2)
                if not page.records:
                    time.sleep(0.005)
                    continue
                assert page.next_cursor > cursor
                cursor = page.next_cursor
                for record in page.records:
                    if record.is_terminal:
                        terminal_seen[record.process_id] = terminal_seen.get(record.process_id, 0) + 1
        finally:
            for c in children:
                _finish(c)
        assert store.processes.changes_since(cursor).records == ()
    assert terminal_seen == {pid: 1 for pid in expected}


def test_lease_of_an_exited_process_is_reclaimed_with_proof_of_death(tmp_path):
    path = str(tmp_path / "lease.db")
    with eventstore.open(path) as store:
        store.processes.register(ProcessRegistration("p", EngineInput("e"), Disposition.RERUNNABLE,
                                                     Provenance(HostScope()), env_ref="env:1"))
        results = CTX.Queue()
        child = CTX.Process(target=_lease_in_child, args=(path, "p", results))
        child.start()
        held = results.get(timeout=WAIT_S)
        _finish(child)
        assert held.owner.liveness.pid == child.pid != os.getpid()
        me = this_process("parent-worker")
        taken = store.processes.reclaim_lease("p", me, held, 60_000)
        assert isinstance(taken, Acquired)
        assert taken.lease.fencing_token == held.fencing_token + 1
        assert store.processes.get_lease("p").owner == me


def test_racing_handover_puts_have_one_winner_per_segment(tmp_path):
    path = str(tmp_path / "handovers.db")
    pids = [f"p{i:02d}" for i in range(20)]
    with eventstore.open(path) as store:
        for pid in pids:
            store.processes.register(_registration(pid))
        start, results = CTX.Event(), CTX.Queue()
        children = [CTX.Process(target=_put_handovers_in_child, args=(path, pids, w, start, results))
                    for w in range(2)]
        for c in children:
            c.start()
        start.set()
        won = dict(results.get(timeout=WAIT_S) for _ in children)
        for c in children:
            _finish(c)
        assert sorted(won[0] + won[1]) == pids  # exactly one winner per process and segment
        for pid in pids:
            [kept] = store.processes.handovers(pid)
            assert pid in won[kept.payload["writer"]]
