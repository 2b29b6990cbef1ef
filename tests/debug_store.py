"""Stores for the replay, diff, why and export tests: real domain events, written through
the facades with a manual clock, so every run builds the same log.

Import it the way the suite imports its other helpers: `from tests import debug_store`.
"""

from __future__ import annotations

from typing import Any

import eventstore
from eventstore.commits import RuntimeCommit, Checkpoint, EventPayload, GraphAppend, SessionNode, UsageDelta
from eventstore.inputs import NextTurn, TurnInputDraft
from eventstore.leases import LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.sessions import SessionMeta

RUNTIME_A = LeaseOwner("runtime-a", "inc-1")
RUNTIME_B = LeaseOwner("runtime-b", "inc-7")
START_MS = 1_700_000_000_000


@eventstore.event("debugtest.note")
class Note:
    """A plain event of the tests' own (no projection reads it)."""

    text: str
    ref: str | None = None


def turns(store: eventstore.Store, clock: eventstore.ManualClock, sid: str, owners: list[LeaseOwner],
          *, checkpoint_every: int = 0, minute: int = 60_000, first_turn: int = 0) -> str | None:
    """One turn per owner on session `sid`, a minute apart (leases last 30 s, so each turn
    claims afresh): claim, enqueue work and a question, claim both, commit two nodes
    (`u<turn>`, `a<turn>`). Returns the leaf."""
    leaf = None if first_turn == 0 else f"a{first_turn - 1}"
    for i, owner in enumerate(owners):
        turn = first_turn + i
        clock.advance(minute)
        lease = store.leases.claim(sid, owner, 30_000).lease
        store.queue.enqueue(QueuedWorkDraft(sid, (AgentFrameTask("main", f"step {turn}"),)))
        store.inputs.enqueue(TurnInputDraft(sid, f"question {turn}", NextTurn()))
        work = store.queue.claim_ready(lease.fence)
        asked = store.inputs.claim_next_turn(lease.fence)
        user = SessionNode(f"u{turn}", EventPayload({"role": "user", "text": f"question {turn}"}),
                           parent_node_id=leaf)
        reply = SessionNode(f"a{turn}", EventPayload({"role": "assistant", "text": f"answer {turn}"}),
                            parent_node_id=user.node_id)
        leaf = reply.node_id
        checkpoint = None
        if checkpoint_every and i % checkpoint_every == 0:
            checkpoint = Checkpoint(tool_state=f"tool state {turn} ".encode() * 50)
        store.sessions.commit(RuntimeCommit(
            sid, lease.fence, GraphAppend((user, reply), leaf), checkpoint=checkpoint,
            usage_deltas=(UsageDelta("turn", "model-1", 120, 40),),
            completed_queue_claims=(work.completion(),), completed_turn_input_claims=(asked.completion(),)))
    return leaf


def session_store(path: str, sessions: tuple[str, ...] = ("triage",), owners: Any = None) -> eventstore.ManualClock:
    """A store at `path` with three turns per session (A, A, B). Returns its clock."""
    clock = eventstore.ManualClock(START_MS)
    with eventstore.open(path, clock=clock, synchronous="normal") as store:
        for sid in sessions:
            store.sessions.create(sid, SessionMeta(name=f"{sid} session", model="model-1"))
            turns(store, clock, sid, owners or [RUNTIME_A, RUNTIME_A, RUNTIME_B])
    return clock


def rich_store(path: str) -> eventstore.ManualClock:
    """Everything an export must carry: domain events, checkpoint blobs, a purged session
    (payloads gone, digests kept), an idempotency key, a loose blob, plain events."""
    clock = eventstore.ManualClock(START_MS)
    with eventstore.open(path, clock=clock, synchronous="normal") as store:
        store.sessions.create("keep", SessionMeta(name="kept"))
        turns(store, clock, "keep", [RUNTIME_A, RUNTIME_B], checkpoint_every=1)
        store.sessions.create("gone")
        turns(store, clock, "gone", [RUNTIME_A])
        store.sessions.delete("gone")
        store.sessions.purge("gone")
        ref = store.blobs.put(b"a loose blob " * 400)
        store.append("notes", [Note("hello", ref), Note("again")], idempotency_key="note-1")
        store.append("notes", [Note("\x1b[31mred\x1b[0m")])
    return clock


__all__ = ["Note", "RUNTIME_A", "RUNTIME_B", "START_MS", "rich_store", "session_store", "turns"]
