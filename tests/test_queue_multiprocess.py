"""Four worker processes drain one queue of 1,000 batches under session leases that
expire and are taken over; every batch is completed exactly once.

Each worker, in a loop: acquire the session lease (a real clock, TTL 200 ms), claim and
complete work while renewing the lease, then release it and let another worker in. To
make leases expire and be reclaimed, every worker once *crashes* (claims a group and
walks away without completing, abandoning or releasing: the lease expires and the next
holder reclaims the rows of the dead generation) and once *stalls* (claims, sleeps past
its TTL, then tries to complete: the completion must be superseded). The parent then
reads the log: each batch has exactly one `queue.completed`, some batches were claimed
more than once, and the projections equal a rebuild.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import random
import time

import eventstore
from eventstore.leases import Acquired, SessionExecutionLeaseExpired, this_process
from eventstore.queue import (
    AgentFrameTask, DeliveryPolicy, QueuedWorkClaimSuperseded, QueuedWorkDraft, RefreshToolCatalog,
    SlotPolicy, plan_enqueue,
)
from eventstore.testing.helpers import assert_consistent

SESSION = "shared"
BATCHES = 1_000
WORKERS = 4
TTL_MS = 200
DEADLINE_S = 40.0


def _drafts() -> list[QueuedWorkDraft]:
    out = []
    for i in range(BATCHES):
        if i % 50 == 7:
            out.append(QueuedWorkDraft(SESSION, (RefreshToolCatalog(f"r{i}"),), slot_policy=SlotPolicy.EXCLUSIVE))
            continue
        slot = SlotPolicy.EXCLUSIVE if i % 3 == 0 else SlotPolicy.JOIN
        delivery = DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT if i % 11 == 0 else DeliveryPolicy.EARLIEST_SAFE_BOUNDARY
        out.append(QueuedWorkDraft(SESSION, (AgentFrameTask("frame", i),), delivery, slot))
    return out


def _claim(store: eventstore.Store, fence, rng: random.Random):
    claim = store.queue.claim_ready(fence, max_batches=rng.randint(1, 5))
    return claim if claim is not None else store.queue.claim_session_command(fence)


def worker(path: str, index: int, results: "multiprocessing.Queue") -> None:
    """Drain the queue with crashes and stalls (see the module docstring); report what it did."""
    rng = random.Random(index)
    stats = {"index": index, "completed": [], "superseded": 0, "crashed": 0, "stalled": 0, "tenures": 0}
    deadline = time.monotonic() + DEADLINE_S
    crash_at, stall_at = 2 + index % 2, 3 - index % 2  # tenure numbers (distinct), varied per worker
    with eventstore.open(path, synchronous="normal") as store:
        me = this_process(f"worker-{index}")
        while time.monotonic() < deadline:
            got = store.leases.claim(SESSION, me, TTL_MS)
            if not isinstance(got, Acquired):
                time.sleep(rng.uniform(0.005, 0.02))
                continue
            fence = got.lease.fence
            stats["tenures"] += 1
            tenure = stats["tenures"]
            empty = False
            try:
                for _ in range(rng.randint(3, 12)):
                    claim = _claim(store, fence, rng)
                    if claim is None:
                        empty = not store.queue.list_pending(SESSION)
                        break
                    if tenure == crash_at:
                        stats["crashed"] += 1
                        break  # walk away: no complete, no abandon, no release
                    if tenure == stall_at:
                        stats["stalled"] += 1
                        time.sleep(TTL_MS * 1.5 / 1000)
                    try:
                        stats["completed"].extend(store.queue.complete(claim).batch_ids)
                    except QueuedWorkClaimSuperseded:
                        stats["superseded"] += 1
                        break
                    store.leases.renew(fence, TTL_MS)
                else:
                    store.leases.release(fence)
            except SessionExecutionLeaseExpired:
                pass  # lost the lease (expired under load): acquire again
            if tenure == crash_at:
                time.sleep(TTL_MS / 1000)  # stay away while the lease expires
            elif not empty:
                store.leases.release(fence)
            if empty:
                store.leases.release(fence)
                break
            time.sleep(rng.uniform(0, 0.005))
    results.put(stats)


def test_four_processes_complete_every_batch_exactly_once_across_expiries_and_takeovers(tmp_path):
    path = str(tmp_path / "queue.db")
    with eventstore.open(path, synchronous="normal") as store:
        store.sessions.create(SESSION)
        with store.transaction():
            plan = plan_enqueue(store.db, _drafts(), store.now_ms())
            store.append(f"session:{SESSION}", list(plan.events))
        all_ids = {e.batch_id for e in plan.events}
    assert len(all_ids) == BATCHES

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(path, i, results)) for i in range(WORKERS)]
    for p in procs:
        p.start()
    stats = [results.get(timeout=DEADLINE_S + 30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    completed = [b for s in stats for b in s["completed"]]
    assert len(completed) == len(set(completed)) == BATCHES  # no batch completed twice, none left
    assert set(completed) == all_ids
    assert sum(s["crashed"] for s in stats) >= 1 and sum(s["superseded"] for s in stats) >= 1

    with eventstore.open(path, synchronous="normal") as store:
        assert store.queue.list(SESSION) == []
        settled = collections.Counter(b for e in store.read_all(types=["queue.completed"]) for b in e.data.batch_ids)
        assert set(settled.values()) == {1} and set(settled) == all_ids
        claims = collections.Counter(b for e in store.read_all(types=["queue.claimed"]) for b in e.data.batch_ids)
        assert max(claims.values()) >= 2  # some rows were reclaimed from a dead generation
        fences = [e.data.fencing_token for e in store.read_all(types=["session.lease_acquired"])]
        assert fences == sorted(fences) and len(set(fences)) == len(fences)
        assert_consistent(store)
    assert os.path.exists(path)
