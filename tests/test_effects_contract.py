"""The effect journal contract (law 88) on the SQLite backend, the `eventstore effects` CLI,
and a race between real processes."""

from __future__ import annotations

import json
import multiprocessing

from eventstore.cli import main
from eventstore.testing.contract.effects import EffectContract, configured


class TestEffectContractSqlite(EffectContract):
    """Every effect journal law, run against SQLite (the `backend` fixture of tests/conftest.py)."""


def test_cli_effects_shows_status_attempts_and_outcome_summary(backend, capsys):
    store = configured(backend.store)
    store.effects.call("run-1", "model:1", {"prompt": "hi"}, lambda: {"text": "hello"})
    store.effects.call("run-2", "tool:x", {}, lambda: "x")
    store.effects.begin("run-1", "model:2", {"prompt": "again"})
    store.close()
    assert main(["effects", backend.path, "--scope", "run-1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["replay_key"], r["status"], r["attempts"], r["outcome"]) for r in rows] == [
        ("model:1", "completed", 1, {"text": "hello"}), ("model:2", "in_progress", 1, None)]
    assert main(["effects", backend.path, "--status", "completed"]) == 0
    out = capsys.readouterr().out
    assert "2 effect(s) in 2 scope(s)" in out and "hello" in out


def _race(path: str, keys: int, offset: int, start: object, queue: "multiprocessing.Queue[object]") -> None:
    """Child process: run every key's effect (or replay it), starting at `offset` so the
    processes collide; report which effects ran here and what each call returned."""
    import os
    import time

    import eventstore
    from eventstore.leases import LeaseTimings

    ran: list[int] = []
    seen: dict[int, object] = {}
    with eventstore.open(path, synchronous="normal") as store:
        store.effects.configure(timings=LeaseTimings(ttl_ms=30_000, renew_every_ms=10_000), poll_interval_s=0.01)
        start.wait(timeout=60)  # type: ignore[attr-defined]
        for i in range(keys):
            k = (i + offset) % keys

            def effect(k: int = k) -> dict:
                ran.append(k)
                time.sleep(0.01)  # long enough for the others to find it in progress
                return {"key": k, "ran_in": os.getpid()}

            seen[k] = store.effects.call("race", f"k{k}", {"k": k}, effect)
    queue.put((ran, seen))


def test_processes_racing_for_the_same_effects_run_each_exactly_once(tmp_path):
    import eventstore

    path = str(tmp_path / "race.db")
    eventstore.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_race, args=(path, 24, i * 5, start, queue)) for i in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ran = sorted(k for r, _seen in results for k in r)
    assert ran == list(range(24))  # every effect ran once, in exactly one process
    for _ran, seen in results:  # and every process got the one recorded outcome
        assert seen == results[0][1]
    with eventstore.open(path) as store:
        assert all(e.status == "completed" and e.attempts == 1 for e in store.effects.list("race"))
