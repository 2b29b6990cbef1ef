"""The turn commit hash (docs/semantics.md §1): what it covers and what it ignores."""

from __future__ import annotations

import attrs
import pytest

import eventstore
from eventstore.commits import RuntimeCommit
from eventstore.commits import (
    AgentFrame, Checkpoint, EventPayload, GraphAppend, GraphReplace, ModelConfig, SessionNode, TurnStamp,
    TurnState, UsageDelta,
)
from eventstore.leases import LeaseFence, LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.commits import stamp_turn, turn_commit_hash

FENCE = LeaseFence("s1", LeaseOwner("runtime", "i1"), "token", 3)


def message(msg_id: str, part_id: str, text: str) -> dict:
    return {"role": "assistant", "id": msg_id,
            "parts": [{"kind": "text", "id": part_id, "content": text, "prune_state": "keep"}]}


def commit(node_id: str = "n1", msg_id: str = "m1", part_id: str = "p1", text: str = "hello",
           timestamp: str = "2026-01-01T00:00:00Z", **kw) -> RuntimeCommit:
    node = SessionNode(node_id, EventPayload(message(msg_id, part_id, text)), "root", timestamp=timestamp)
    return RuntimeCommit("s1", FENCE, GraphAppend((node,), node_id), config=ModelConfig("p", "m"),
                         checkpoint=Checkpoint(TurnState(2), tool_state=b"\x00\x01"),
                         usage_deltas=(UsageDelta("turn", "m", 5, 6),), **kw)


def test_the_hash_is_a_stable_sha256_hex_of_the_canonical_commit():
    h = turn_commit_hash(commit())
    assert len(h) == 64 and int(h, 16) >= 0
    # A golden value: changing the canonical form changes every stored stamp, which would
    # turn every retried turn of an upgraded runtime into a conflict.
    assert h == GOLDEN


def test_the_hash_ignores_the_expected_revision_the_lease_and_the_stamp():
    c = commit()
    same = [attrs.evolve(c, expected_head_revision=9), attrs.evolve(c, lease=None),
            attrs.evolve(c, release_lease=True), attrs.evolve(c, turn_commit=TurnStamp("s1", "t", "x")),
            attrs.evolve(c, lease=LeaseFence("s1", LeaseOwner("other", "i9"), "t2", 44))]
    assert {turn_commit_hash(x) for x in same} == {turn_commit_hash(c)}


def test_the_hash_ignores_node_ids_timestamps_and_message_and_part_ids():
    base = turn_commit_hash(commit())
    assert turn_commit_hash(commit(node_id="n-other", timestamp="2030-05-05T00:00:00Z")) == base
    assert turn_commit_hash(commit(msg_id="m-retry", part_id="p-retry")) == base


def test_ids_of_objects_that_are_neither_messages_nor_parts_count():
    frame = AgentFrame("f1", "s1", assignment={"id": "task-1", "goal": "x"})
    a = turn_commit_hash(commit(agent_frames=(frame,)))
    b = turn_commit_hash(commit(agent_frames=(attrs.evolve(frame, assignment={"id": "task-2", "goal": "x"}),)))
    assert a != b


def test_the_content_counts():
    base = turn_commit_hash(commit())
    changed = [commit(text="goodbye"), attrs.evolve(commit(), usage_deltas=()), attrs.evolve(commit(), checkpoint=None),
               attrs.evolve(commit(), config=ModelConfig("p", "other")),
               commit(enqueued_queue_batches=(QueuedWorkDraft("s1", (AgentFrameTask("f", "x"),)),)),
               commit(interrupted_turn_input_turn_id="t0"), commit(committed_attachment_ids=("a",)),
               attrs.evolve(commit(), graph=GraphReplace(commit().graph.nodes, "n1"))]
    hashes = [turn_commit_hash(c) for c in changed]
    assert base not in hashes and len(set(hashes)) == len(hashes)


def test_stamp_turn_sets_the_stamp_from_the_hash():
    c = stamp_turn(commit(expected_head_revision=3), "turn-7")
    assert c.turn_commit == TurnStamp("s1", "turn-7", turn_commit_hash(commit()))
    assert stamp_turn(c, "turn-7") == c  # stamping is idempotent: the stamp is not hashed
    with pytest.raises(eventstore.InvalidArgument):
        stamp_turn(commit(), "")


GOLDEN = "74b8028f05ee741b10ef59579480d1d45e5c3a0a2946a35921fee8e1532af603"
