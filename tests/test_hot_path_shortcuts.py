"""The hot path's short paths decide exactly what the full checks decide.

The turn commit checks the common shapes (exact types, nothing optional set) in a few
comparisons and runs the full checks for anything else; its fence check compares the
fence with the lease row as read; a checkpoint that is a turn state alone is written
without building its manifest object. Each test here runs the short path and the full
path on the same input and requires the same outcome: the same value, or the same
typed error with the same message.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import attrs
import pytest

import eventstore
from eventstore.commits import (
    AgentFrame,
    Checkpoint,
    EventPayload,
    GraphAppend,
    ModelConfig,
    RuntimeCommit,
    SessionNode,
    TurnState,
    UsageDelta,
)
from eventstore.commits import checkpoints
from eventstore.commits import commit as commit_module
from eventstore.leases import Acquired, LeaseOwner, LocalProcessLiveness

MODEL = ModelConfig("anthropic", "claude-x")
OWNER = LeaseOwner("runtime", "inc-1")


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the error itself
        return (type(exc), str(exc))


class _Blobs:
    """Records what a checkpoint writes (the ref is the digest, as BlobStore.put returns)."""

    def __init__(self) -> None:
        self.puts: list[bytes] = []

    def put(self, data: bytes, *, stamp: bool = True) -> str:
        self.puts.append(data)
        return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("turn_state", [
    TurnState(3, {"input": 5}), TurnState(), TurnState(1, {"a": [1, 2]}, {"x": None}, {"o": "p"}),
    TurnState("x"), TurnState(True), TurnState(1, {1: 2}), TurnState(1, {"a": {1, 2}}),  # type: ignore[arg-type]
])
def test_a_turn_state_checkpoint_is_written_as_the_full_path_writes_it(turn_state: TurnState) -> None:
    """store_checkpoint_ref (no manifest object) writes the same bytes under the same ref as
    store_checkpoint, and refuses what it refuses with the same error."""
    short, full = _Blobs(), _Blobs()
    a = _outcome(lambda: checkpoints.store_checkpoint_ref(short, Checkpoint(turn_state)))
    b = _outcome(lambda: checkpoints.store_checkpoint(full, Checkpoint(turn_state))[0])
    assert a == b
    assert short.puts == full.puts


def test_a_checkpoint_with_snapshots_or_refs_takes_the_full_path() -> None:
    """Anything besides a turn state (snapshots, refs, a revision) is stored by the full path."""
    for cp in (Checkpoint(TurnState(1), tool_state=b"tools"), Checkpoint(TurnState(1), tool_state_ref="a" * 64),
               Checkpoint(TurnState(1), plugin_snapshot_revision=3), Checkpoint(TurnState(1), execution_state=b"x")):
        short, full = _Blobs(), _Blobs()
        assert checkpoints.store_checkpoint_ref(short, cp) == checkpoints.store_checkpoint(full, cp)[0]
        assert short.puts == full.puts


def _commits(fence: Any) -> list[Any]:
    node = SessionNode("n1", EventPayload({"text": "hi"}), None)
    good = RuntimeCommit("s", fence, GraphAppend((node,), "n1"), expected_head_revision=0, config=MODEL,
                         checkpoint=Checkpoint(TurnState(1)), usage_deltas=(UsageDelta("turn", "m", 1, 2),))
    bad_values: list[dict[str, Any]] = [
        {}, {"session_id": ""}, {"session_id": "s\x01"}, {"session_id": 7}, {"session_id": "é"},
        {"expected_head_revision": -1}, {"expected_head_revision": True}, {"expected_head_revision": 2.0},
        {"lease": "fence"}, {"lease": None}, {"release_lease": 1}, {"release_lease": True},
        {"config": ModelConfig("p", None)}, {"config": ("p", "m")}, {"config": None},  # type: ignore[arg-type]
        {"checkpoint": TurnState(1)}, {"checkpoint": None},
        {"usage_deltas": [UsageDelta("turn", "m")]}, {"usage_deltas": (UsageDelta("turn", "m", -1),)},
        {"usage_deltas": (UsageDelta("turn", "m", True),)}, {"usage_deltas": (UsageDelta("turn", 5),)},
        {"usage_deltas": (UsageDelta("turn", "m", 2 ** 63),)}, {"usage_deltas": ("x",)},
        {"agent_frames": (AgentFrame("f", "s"),)}, {"agent_frames": (AgentFrame("f", "other"),)},
        {"agent_frames": []}, {"agent_frames": "x"}, {"current_agent_frame_id": ""},
        {"current_agent_frame_id": "f"}, {"interrupted_turn_input_turn_id": 3},
        {"committed_attachment_ids": ("a",)}, {"committed_attachment_ids": ("",)},
        {"committed_attachment_ids": "a"}, {"completed_queue_claims": ("x",)},
        {"enqueued_queue_batches": ["x"]},
    ]
    return [attrs.evolve(good, **v) for v in bad_values]


def test_the_commit_shape_check_decides_as_the_full_check_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_commit on the short path and with the short path switched off: the same commit
    back, or the same error with the same message, for good and malformed commits."""
    fence = eventstore.leases.LeaseFence("s", OWNER, "token", 1)
    commits = _commits(fence)
    short = [_outcome(lambda c=c: commit_module.check_commit(c)) for c in commits]
    monkeypatch.setattr(commit_module, "_plain_commit", lambda c: False)
    full = [_outcome(lambda c=c: commit_module.check_commit(c)) for c in commits]
    assert short == full
    assert short[0] == ("ok", commits[0]) and any(o[0] != "ok" for o in short)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def test_the_commit_fence_check_refuses_what_the_full_check_refuses(tmp_path, monkeypatch) -> None:
    """A commit's fence, compared with the lease row as read, is accepted or refused as
    check_fence and check_live_holder decide, with the same error and message: a stale
    token, another owner, an expired lease, a malformed fence, a local-process owner."""
    clock = _Clock()
    with eventstore.open(tmp_path / "s.db", clock=clock) as store:
        store.sessions.create("s")
        got = store.leases.claim("s", OWNER, 60_000)
        assert isinstance(got, Acquired)
        fence = got.lease.fence
        local = LeaseOwner("runtime", "inc-1", LocalProcessLiveness("h", "b", 1, 2))
        fences = [fence, attrs.evolve(fence, lease_token="other"), attrs.evolve(fence, fencing_token=2),
                  attrs.evolve(fence, fencing_token=True), attrs.evolve(fence, owner=LeaseOwner("x", "inc-1")),
                  attrs.evolve(fence, owner=local), attrs.evolve(fence, lease_token="")]

        def run(i: int, f: Any) -> Any:
            node = SessionNode(f"n{i}", EventPayload({"text": "hi"}), None)
            return _outcome(lambda: store.sessions.commit(RuntimeCommit("s", f, GraphAppend((node,), f"n{i}"))))

        short = [run(i, f) for i, f in enumerate(fences)]
        clock.now += 120_000  # expired: refused by both paths
        short.append(run(99, fence))
    with eventstore.open(tmp_path / "t.db", clock=clock) as store:
        clock.now = 1_000_000
        store.sessions.create("s")
        got = store.leases.claim("s", OWNER, 60_000)
        assert isinstance(got, Acquired) and got.lease.fence == fence  # the same token, a fixed clock
        monkeypatch.setattr(commit_module, "_fence_is_live", lambda st, f, now: False)
        full = [run(i, f) for i, f in enumerate(fences)]
        clock.now += 120_000
        full.append(run(99, fence))
    assert [o[0] for o in short] == [o[0] for o in full]
    assert [o[1] for o in short if o[0] != "ok"] == [o[1] for o in full if o[0] != "ok"]
    assert short[0][0] == "ok" and sum(o[0] != "ok" for o in short) >= 5
