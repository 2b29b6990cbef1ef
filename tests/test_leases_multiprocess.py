"""Lease races between real processes on one store file (laws 22 and 25).

Workers are started with the 'spawn' context (fresh interpreters, their own SQLite
connections), meet at a barrier, and race; every wait is bounded.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_mod
import uuid
from typing import Any

import eventstore
from eventstore.leases import Acquired, LeaseOwner, read_process_start, this_process

CTX = multiprocessing.get_context("spawn")
ROUNDS = 5
WAIT_S = 60


def _claim_worker(path: str, worker: int, rounds: int, barrier: Any, results: Any) -> None:
    """Race for the first claim of session race-<r> in each round."""
    with eventstore.open(path) as store:
        owner = LeaseOwner(f"worker-{worker}", uuid.uuid4().hex)
        for r in range(rounds):
            barrier.wait(timeout=WAIT_S)
            out = store.leases.claim(f"race-{r}", owner, 600_000)
            results.put((r, worker, isinstance(out, Acquired),
                         out.lease.fencing_token if isinstance(out, Acquired) else out.holder.fencing_token))


def _doomed_holder(path: str, rounds: int) -> None:
    """Claim the lease of every session dead-<r> as this process, then exit without releasing."""
    with eventstore.open(path) as store:
        me = this_process("doomed")
        for r in range(rounds):
            assert isinstance(store.leases.claim(f"dead-{r}", me, 600_000), Acquired)


def _reclaim_worker(path: str, worker: int, observed: list, barrier: Any, results: Any) -> None:
    """Race to reclaim each dead holder's lease, as a real local process on the same host."""
    with eventstore.open(path) as store:
        me = this_process(f"rescuer-{worker}")
        for r, seen in enumerate(observed):
            barrier.wait(timeout=WAIT_S)
            out = store.leases.reclaim(f"dead-{r}", me, seen, 600_000)
            results.put((r, worker, isinstance(out, Acquired),
                         out.lease.fencing_token if isinstance(out, Acquired) else out.holder.fencing_token))


def _run(target: Any, args_for: list[tuple], barrier: Any, results: Any, expected: int) -> list[tuple]:
    procs = [CTX.Process(target=target, args=(*args, barrier, results)) for args in args_for]
    for p in procs:
        p.start()
    got = []
    try:
        for _ in range(expected):
            got.append(results.get(timeout=WAIT_S))
    except queue_mod.Empty:
        raise AssertionError(f"only {len(got)} of {expected} results arrived within {WAIT_S}s") from None
    finally:
        for p in procs:
            p.join(timeout=WAIT_S)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return got


def test_law_22_two_processes_racing_for_the_first_claim_exactly_one_wins(tmp_path):
    path = str(tmp_path / "race.db")
    with eventstore.open(path) as store:
        for r in range(ROUNDS):
            store.sessions.create(f"race-{r}")
    barrier, results = CTX.Barrier(2), CTX.Queue()
    got = _run(_claim_worker, [(path, 0, ROUNDS), (path, 1, ROUNDS)], barrier, results, 2 * ROUNDS)
    with eventstore.open(path) as store:
        for r in range(ROUNDS):
            outcomes = [g for g in got if g[0] == r]
            winners = [g for g in outcomes if g[2]]
            assert len(winners) == 1, outcomes
            assert all(g[3] == 1 for g in outcomes)  # the loser saw the winner's fence 1
            holder = store.leases.get(f"race-{r}").holder
            assert holder.owner.owner_id == f"worker-{winners[0][1]}" and holder.fencing_token == 1
        assert store.verify().ok


def test_law_25_racing_reclaims_of_a_really_dead_holder_have_exactly_one_winner(tmp_path):
    path = str(tmp_path / "reclaim.db")
    with eventstore.open(path) as store:
        for r in range(ROUNDS):
            store.sessions.create(f"dead-{r}")
    doomed = CTX.Process(target=_doomed_holder, args=(path, ROUNDS))
    doomed.start()
    doomed.join(timeout=WAIT_S)
    assert doomed.exitcode == 0
    with eventstore.open(path) as store:
        observed = [store.leases.get(f"dead-{r}").holder for r in range(ROUNDS)]
    assert all(o.owner.liveness.pid == doomed.pid for o in observed)
    # Really dead: joined, so reaped (its pid is gone, or already reused by another process).
    assert read_process_start(doomed.pid) != observed[0].owner.liveness.process_start
    barrier, results = CTX.Barrier(2), CTX.Queue()
    got = _run(_reclaim_worker, [(path, 0, observed), (path, 1, observed)], barrier, results, 2 * ROUNDS)
    with eventstore.open(path) as store:
        for r in range(ROUNDS):
            outcomes = [g for g in got if g[0] == r]
            winners = [g for g in outcomes if g[2]]
            assert len(winners) == 1, outcomes
            assert all(g[3] == 2 for g in outcomes)  # the dead holder had 1; the winner got 2
            state = store.leases.get(f"dead-{r}")
            assert state.holder.owner.owner_id == f"rescuer-{winners[0][1]}"
            assert state.holder.fencing_token == 2
        assert store.verify().ok and store.verify_projections().ok
