"""Contention between real processes on one store file (short runs; `python tools/torture.py
contention` runs longer ones at 4 and 8 processes).

Each scenario starts worker interpreters that wait for a common "go", race for a bounded
time, write their results, and exit; the harness then audits the file and the results
(see tools/reliability/contention.py for what each audit checks). No worker may see an
untyped exception, nor StoreBusy under the default busy timeout.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest

import eventstore
from eventstore.demo import UserMessage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from reliability import contention  # noqa: E402

SECONDS = 1.0


def _scenario(name: str, workers: int = 4) -> contention.Scenario:
    found = [s for s in contention.scenarios(workers, SECONDS, quick=True) if s.name.startswith(name)]
    assert len(found) == 1, name
    return found[0]


def test_eight_processes_racing_for_one_lease_get_one_holder_per_generation_and_increasing_fences(tmp_path):
    result = contention.run_scenario(_scenario("racing lease claims", 8), str(tmp_path))
    assert result.ok, (result.detail, result.extra["problems"])
    assert result.extra["generations"] > 8 and result.extra["busy"] > 0, result.detail  # they really raced
    assert result.extra["workers_acquiring"] >= 2, result.detail


def test_four_processes_draining_a_shared_queue_complete_every_batch_exactly_once(tmp_path):
    scenario = contention.Scenario("shared work queue", [("queue", 4)], 4.0, contention._queue_setup(600),
                                   contention._queue_audit)
    result = contention.run_scenario(scenario, str(tmp_path))
    assert result.ok, (result.detail, result.extra["problems"])
    assert result.extra["completed"] == result.extra["enqueued"] == 600
    assert result.extra["workers_completing"] >= 2, result.detail


def test_four_processes_committing_with_stale_head_revisions_have_one_winner_per_revision(tmp_path):
    result = contention.run_scenario(_scenario("commits with stale head revisions"), str(tmp_path))
    assert result.ok, (result.detail, result.extra["problems"])
    assert result.extra["wins"] == result.extra["head"] > 0


def test_four_processes_appending_with_stale_expected_versions_have_one_winner_per_version(tmp_path):
    result = contention.run_scenario(_scenario("appends with stale expected versions"), str(tmp_path))
    assert result.ok, (result.detail, result.extra["problems"])
    assert result.extra["wins"] == result.extra["head"] > 0


def test_contention_past_a_tiny_busy_timeout_is_the_typed_store_busy_and_nothing_else(tmp_path):
    result = contention.run_scenario(_scenario("tiny busy timeout"), str(tmp_path))
    assert result.ok, (result.detail, result.extra["problems"])
    assert result.extra["busy"] > 0 and result.extra["ok"] > 0
    assert "busy timeout" in result.extra["sample"]


def test_readers_beside_writers_never_see_a_gap_or_a_command_in_part(tmp_path):
    result = contention.run_scenario(_scenario("readers beside writers"), str(tmp_path))
    assert result.ok, (result.detail, result.extra["problems"])
    assert all(n > 0 for n in result.extra["seen"].values()), result.extra["seen"]


def test_store_busy_message_says_the_lock_was_held_past_the_busy_timeout(tmp_path):
    path = str(tmp_path / "busy.db")
    holder = eventstore.open(path)
    waiter = eventstore.open(path, busy_timeout_ms=20)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            holder.append("a", [UserMessage("holding the write lock")])
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        before = waiter.anchor()
        with pytest.raises(eventstore.StoreBusy, match="locked past the busy timeout"):
            waiter.append("b", [UserMessage("waits 20 ms, then gives up")])
        assert waiter.anchor() == before
    finally:
        release.set()
        thread.join(10)
        holder.close()
        waiter.close()
