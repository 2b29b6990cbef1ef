"""Law 2 across processes: two processes commit to one session with the same expected
head revision at the same moment; exactly one wins, the other gets HeadRevisionConflict,
and exactly one graph is persisted.

Each round, both workers (spawned processes with their own connections) hold the same
live fence (one runtime's lease, as two threads of a runtime that forgot to coordinate
would), wait on a shared start event, then commit a different branch with the expected
revision they both read. The parent checks the outcomes, the log (one commit event per
round, carrying the winner's nodes only) and the projections.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module

import eventstore
from eventstore.commits import HeadRevisionConflict, RuntimeCommit, EventPayload, GraphAppend, SessionNode
from eventstore.leases import Acquired, LeaseOwner
from eventstore.testing.helpers import assert_consistent

SESSION = "race"
ROUNDS = 3
WAIT_S = 30.0


def worker(path: str, name: str, fence, rounds, start, results) -> None:
    """For each round: wait for the start signal, commit one node, report the outcome."""
    with eventstore.open(path, synchronous="normal") as store:
        for rnd in range(ROUNDS):
            expected = rounds.get(timeout=WAIT_S)
            start.wait(WAIT_S)
            nid = f"{name}-{rnd}"
            node = SessionNode(nid, EventPayload({"role": "assistant", "parts": [{"kind": "text", "content": nid}]}),
                               None, timestamp="2026-01-01T00:00:00Z")
            try:
                result = store.sessions.commit(RuntimeCommit(SESSION, fence, GraphAppend((node,), nid),
                                                             expected_head_revision=expected))
                results.put((rnd, name, "won", result.head_revision))
            except HeadRevisionConflict as exc:
                results.put((rnd, name, "conflict", (exc.expected, exc.actual)))
            except Exception as exc:  # reported, so that the parent fails with the reason
                results.put((rnd, name, "error", repr(exc)))


def test_law_02_two_processes_with_the_same_expected_revision_exactly_one_wins(tmp_path):
    path = str(tmp_path / "race.db")
    with eventstore.open(path, synchronous="normal") as store:
        store.sessions.create(SESSION)
        got = store.leases.claim(SESSION, LeaseOwner("runtime", "i1"), 600_000)
        assert isinstance(got, Acquired)
        fence = got.lease.fence
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    names = ("alpha", "beta")
    rounds = {n: ctx.Queue() for n in names}
    starts = [ctx.Event() for _ in range(ROUNDS)]
    procs = [ctx.Process(target=_run, args=(path, n, fence, rounds[n], starts, results)) for n in names]
    for p in procs:
        p.start()
    outcomes = []
    try:
        for rnd in range(ROUNDS):
            for n in names:
                rounds[n].put(rnd)  # the expected revision: both read the same head
            starts[rnd].set()
            got_round = [results.get(timeout=WAIT_S) for _ in names]
            outcomes.append(sorted(got_round, key=lambda r: r[2], reverse=True))
    finally:
        for p in procs:
            p.join(WAIT_S)
            if p.is_alive():
                p.kill()
    for rnd, pair in enumerate(outcomes):
        kinds = sorted(o[2] for o in pair)
        assert kinds == ["conflict", "won"], pair
        won = next(o for o in pair if o[2] == "won")
        lost = next(o for o in pair if o[2] == "conflict")
        assert won[3] == rnd + 1 and lost[3] == (rnd, rnd + 1)
    with eventstore.open(path, synchronous="normal") as store:
        loaded = store.sessions.load(SESSION)
        winners = [f"{next(o for o in pair if o[2] == 'won')[1]}-{rnd}" for rnd, pair in enumerate(outcomes)]
        assert loaded.head_revision == ROUNDS and [n.node_id for n in loaded.nodes] == winners
        commits = [e for e in store.read_stream(f"session:{SESSION}") if e.type == "session.committed"]
        assert [[n.id for n in e.data.nodes] for e in commits] == [[w] for w in winners]
        assert_consistent(store)
    for p in procs:
        assert p.exitcode == 0


def _run(path, name, fence, rounds, starts, results) -> None:
    """Process entry point: one start event per round."""
    events = iter(starts)

    class _Start:
        def wait(self, timeout: float) -> None:
            next(events).wait(timeout)

    try:
        worker(path, name, fence, rounds, _Start(), results)
    except queue_module.Empty:
        results.put((-1, name, "error", "timed out waiting for a round"))
