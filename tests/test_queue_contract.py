"""The queued-work contract (laws 28-48 and the store's improvements) on the SQLite backend."""

import json

import attrs
import pytest

import eventstore
from eventstore.cli import EXIT_ERROR, EXIT_OK, main
from eventstore.debug.describe_events import describe
from eventstore.queue import (
    DeliveryPolicy, MergeKey, QueuedWorkEnqueued, WorkClass, describe_wake_frames, frame_of_scope,
)
from eventstore.events import EventRegistry, event
from eventstore.inputs import ActiveTurn, TurnInputDraft
from eventstore.leases import LeaseOwner
from eventstore.processes import AppendEventRequest, SessionScope
from eventstore.queue import AgentFrameTask, ProcessWake, QueuedWorkDraft, SlotPolicy
from eventstore.testing.contract.processes import registration, wake_type
from eventstore.testing.contract.queue import QueueContract, fence_of
from eventstore.testing.helpers import assert_consistent


class TestQueueContractSqlite(QueueContract):
    """Every queued-work law, run against SQLite (the `backend` fixture of tests/conftest.py)."""

    # --- the command line (SQLite files) -----------------------------------------------------

    def test_cli_queue_shows_pending_and_claimed_batches_with_owner_and_generation(self, tmp_path, capsys,
                                                                                   monkeypatch):
        path = _cli_store(str(tmp_path / "cli.db"))
        monkeypatch.setenv("COLUMNS", "250")  # rich folds cells to the terminal width
        assert main(["queue", path, "--session", "s1"]) == EXIT_OK
        out = capsys.readouterr().out
        for text in ("claimed", "pending", "runtime-a (inc-1)", "live lease generation 1", "2 batch(es)",
                     "process:p1:event:3:wake", "ProcessWake"):
            assert text in out, text
        assert main(["queue", path, "--session", "s1", "--pending", "--json"]) == EXIT_OK
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["state"] for r in rows] == ["pending"] and rows[0]["claim"] is None

    def test_cli_inputs_and_time_travel(self, tmp_path, capsys, monkeypatch):
        path = _cli_store(str(tmp_path / "cli.db"))
        monkeypatch.setenv("COLUMNS", "250")
        assert main(["inputs", path, "--session", "s1", "--json"]) == EXIT_OK
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["state"], r["input"]) for r in rows] == [("pending_active", {"text": "hi"})]
        assert main(["queue", path, "--session", "s1", "--at", "1", "--json"]) == EXIT_OK
        assert capsys.readouterr().out == ""  # position 1 created the session: no batch yet
        assert main(["queue", path, "--session", "s1", "--at", "2", "--json"]) == EXIT_OK
        assert [json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()] == ["pending"]
        assert main(["queue", path, "--session", "nope"]) == EXIT_ERROR  # an unknown session
        assert capsys.readouterr().err.strip().endswith("no session 'nope' in " + path)
        assert main(["queue", str(tmp_path / "missing.db"), "--session", "s1"]) == EXIT_ERROR

    def test_cli_queue_shows_the_frame_a_wake_is_aimed_at_and_only_then(self, tmp_path, capsys, monkeypatch):
        path = str(tmp_path / "frames.db")
        with eventstore.open(path) as store:
            store.sessions.create("s1")
            store.queue.enqueue(QueuedWorkDraft.for_wake("s1", ProcessWake("p1", 1, "w1", "", "session:s1")))
            framed = ProcessWake("p1", 2, "w2", "", "session:s1/frame:f1", "go")
            store.queue.enqueue(QueuedWorkDraft.for_wake("s1", framed))
            store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f9", "x"),)))
        monkeypatch.setenv("COLUMNS", "250")
        assert main(["queue", path, "--session", "s1"]) == EXIT_OK
        lines = capsys.readouterr().out.splitlines()
        cells = [next(line for line in lines if f"process:p1:event:{n}:wake" in line) for n in (1, 2)]
        assert "1 ProcessWake (frame f1)" in cells[1] and "frame" not in cells[0]
        assert not any("(frame f9)" in line for line in lines)  # a frame task's cell is unchanged
        assert main(["queue", path, "--session", "s1", "--json"]) == EXIT_OK
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        payload = rows[1]["items"][0]["payload"]
        assert (payload["target_scope_id"], payload["input"]) == ("session:s1/frame:f1", "go")

    def test_describe_names_the_frame_of_a_framed_wake_and_nothing_more_otherwise(self, backend):
        store = backend.store
        store.sessions.create("s1")
        for pid, frame in (("whole", None), ("framed", "f1")):
            store.processes.register(registration(pid, wake_type(), wake_target=SessionScope("s1", frame)))
            store.processes.append_event_and_enqueue(pid, AppendEventRequest("producer.wake", {"wake_input": "x"}))
        appended = [describe(ev) for ev in store.read_all(types=["process.event_appended"])]
        enqueued = [describe(ev) for ev in store.read_all(types=["queue.batch_enqueued"])]
        assert appended[0].endswith("wakes session s1") and appended[1].endswith("wakes session s1 frame f1")
        assert "frame" not in enqueued[0] and ": 1 ProcessWake, for frame f1, turn_work" in enqueued[1]

    def test_a_wake_queued_before_wakes_carried_scope_and_input_still_decodes(self, tmp_path):
        # The queue event as it was recorded before ProcessWake gained target_scope_id and
        # input (a copy of the classes in a registry of their own): the store reads it back
        # with the defaults, and rebuilding the queue from it gives the same rows.
        path = str(tmp_path / "old.db")
        with eventstore.open(path) as store:
            store.sessions.create("s1")
        old_wake = _Old.ProcessWake("p1", 3, "wake:p1:3", "process.completed")
        old = _Old.QueuedWorkEnqueued("s1", "qwb:old", 1, "process:p1:event:3:wake",
                                      DeliveryPolicy.EARLIEST_SAFE_BOUNDARY, SlotPolicy.JOIN, MergeKey.PAYLOAD_DEFAULT, 10, 10, WorkClass.TURN_WORK,
                                      (old_wake,))
        with eventstore.open(path, registry=_OLD_REGISTRY, projections=[]) as store:
            store.append("session:s1", [old])
        with eventstore.open(path, rebuild_stale=True) as store:
            [raw] = [ev.data for ev in store.read_stream("session:s1", raw=True) if ev.type == "queue.batch_enqueued"]
            assert raw["payloads"] == [["ProcessWake", {"process_id": "p1", "sequence": 3, "wake_id": "wake:p1:3",
                                                        "event_type": "process.completed"}]]  # the old shape
            [recorded] = [ev.data for ev in store.read_stream("session:s1") if ev.type == "queue.batch_enqueued"]
            wake = ProcessWake("p1", 3, "wake:p1:3", "process.completed")
            assert recorded.payloads == (wake,) and (wake.target_scope_id, wake.input, wake.frame_id) == ("", "", None)
            [batch] = store.queue.list("s1")
            assert batch.payloads == (wake,) and batch.source_key == wake.source_key
            claim = store.queue.claim_ready(fence_of(store, "s1", LeaseOwner("runtime", "i1")))
            assert claim.batches[0].payloads == (wake,)
            assert_consistent(store)


@pytest.mark.parametrize("scope, frame", [
    ("session:s1/frame:f1", "f1"),
    ("session:s1", None),
    ("", None),
    ("host", None),
    ("host:a/frame:b", None),
    ("session:s1/frame:", None),
    ("session:s1/frame:a/frame:b", "a/frame:b"),
])
def test_frame_of_scope_reads_the_frame_of_a_session_scope_only(scope, frame):
    assert frame_of_scope(scope) == frame
    assert ProcessWake("p", 1, "w", "", scope).frame_id == frame


def test_describe_wake_frames_lists_each_framed_wake_once_and_ignores_frame_tasks():
    wakes = [ProcessWake("p", n, "w", "", f"session:s/frame:{f}") for n, f in enumerate(("b", "a", "b"))]
    assert describe_wake_frames(wakes) == "frames b, a"
    assert describe_wake_frames(wakes[:1] + [ProcessWake("p", 9, "w", "", "session:s")]) == "frame b"
    assert describe_wake_frames([AgentFrameTask("f", "x"), ProcessWake("p", 1, "w")]) == ""


_OLD_REGISTRY = EventRegistry()


class _Old:
    """The queue payload and enqueue event as they were before wakes carried scope and input."""

    @attrs.frozen
    class ProcessWake:
        process_id: str
        sequence: int
        wake_id: str
        event_type: str = ""


# The enqueue event with the same fields, but payloads of the old ProcessWake shape.
_Old.QueuedWorkEnqueued = event("queue.batch_enqueued", registry=_OLD_REGISTRY)(type(
    "QueuedWorkEnqueued", (), {
        "__module__": __name__,
        "__qualname__": "_Old.QueuedWorkEnqueued",
        "__annotations__": {**QueuedWorkEnqueued.__annotations__,
                            "payloads": "tuple[_Old.ProcessWake | AgentFrameTask, ...]"},
    }))


def _cli_store(path: str) -> str:
    """A store (system clock, as the CLI uses) with one claimed and one pending batch and an input."""
    with eventstore.open(path) as store:
        store.sessions.create("s1")
        store.queue.enqueue(QueuedWorkDraft.for_wake("s1", ProcessWake("p1", 3, "w")))
        store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", "x"),), slot_policy=SlotPolicy.EXCLUSIVE))
        fence = store.leases.claim("s1", LeaseOwner("runtime-a", "inc-1"), 3_600_000).lease.fence
        store.queue.claim_ready(fence)
        store.inputs.enqueue(TurnInputDraft("s1", {"text": "hi"}, ActiveTurn("t1")))
    return path
