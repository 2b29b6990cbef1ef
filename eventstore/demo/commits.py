"""The demo chapter of the runtime commit: an agent conversation with a branch, checkpoints
and usage, then time travel to an earlier turn (`eventstore demo`, chapter 40)."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from . import chapter, demo_id, suggest
from ..commits.commit import RuntimeCommit
from ..commits.model import (
    AgentFrame,
    Checkpoint,
    EventPayload,
    GraphAppend,
    ModelConfig,
    SessionNode,
    TurnState,
    UsageDelta,
)
from ..leases.facade import Acquired
from ..leases.owners import this_process
from ..sessions.events import SessionMeta
from ..commits.turn_hash import stamp_turn

MODEL = ModelConfig("anthropic", "claude-demo")


def _message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "id": demo_id(32),
            "parts": [{"kind": "text", "content": text, "prune_state": "keep"}]}


class _Conversation:
    """Builds nodes with fresh ids and RFC 3339 times for the demo's turns."""

    def __init__(self, store: Any, sid: str) -> None:
        self.store = store
        self.sid = sid
        self.n = 0

    def node(self, role: str, text: str, parent: str | None) -> SessionNode:
        self.n += 1
        stamp = f"2026-03-02T09:{self.n:02d}:00Z"
        return SessionNode(f"{role[0]}{self.n}-{demo_id(6)}", EventPayload(_message(role, text)), parent,
                           agent_frame_id="main", timestamp=stamp)


@chapter(40, "runtime commits: a conversation, a branch, checkpoints and time travel")
def _commit_chapter(store: Any, say: Callable[[str], None]) -> None:
    sid = f"support-{demo_id()}"
    store.sessions.create(sid, SessionMeta(name="billing support", model=MODEL.model, cwd="/srv/agent"))
    got = store.leases.claim(sid, this_process("runtime"), 60_000)
    assert isinstance(got, Acquired)
    fence = got.lease.fence
    conv = _Conversation(store, sid)
    frame = AgentFrame("main", sid, assignment={"goal": "answer the customer"}, created_at="2026-03-02T09:00:00Z")
    turns = [
        ("I was charged twice for my March invoice.",
         "I can see two charges of $49 on March 1st. I will refund the duplicate.", (1_210, 64)),
        ("How long does the refund take?",
         "Refunds reach your card in 5 to 10 business days.", (1_402, 31)),
        ("Can you also cancel my subscription?",
         "Done: your subscription ends on March 31st; you keep access until then.", (1_650, 42)),
    ]
    leaf: str | None = None
    positions = []
    user_nodes = []
    commits = []
    for i, (question, answer, (tokens_in, tokens_out)) in enumerate(turns, start=1):
        user = conv.node("user", question, leaf)
        reply = conv.node("assistant", answer, user.node_id)
        user_nodes.append(user)
        commit = stamp_turn(RuntimeCommit(
            sid, fence, GraphAppend((user, reply), reply.node_id), expected_head_revision=i - 1, config=MODEL,
            agent_frames=(frame,), current_agent_frame_id="main",
            checkpoint=Checkpoint(TurnState(i, {"input": tokens_in, "output": tokens_out}),
                                  tool_state=b'{"refunds_issued": %d}' % min(i, 1)),
            usage_deltas=(UsageDelta("turn", MODEL.model, tokens_in, tokens_out),)), f"turn-{i}")
        result = store.sessions.commit(commit)
        commits.append(commit)
        positions.append(store.last_position())
        leaf = reply.node_id
        say(f"turn {i}: committed revision {result.head_revision} (user + assistant message, checkpoint "
            f"{result.checkpoint_ref[:12]}…, {tokens_in}+{tokens_out} tokens)")
    # The customer edits their third message: a sibling of the original, under the same parent.
    edited = conv.node("user", "Actually, pause my subscription for a month instead.", user_nodes[2].parent_node_id)
    reply = conv.node("assistant", "Paused until April 30th; billing resumes on May 1st.", edited.node_id)
    store.sessions.commit(RuntimeCommit(
        sid, fence, GraphAppend((edited, reply), reply.node_id), expected_head_revision=3, config=MODEL,
        agent_frames=(frame,), current_agent_frame_id="main",
        checkpoint=Checkpoint(TurnState(4), tool_state=b'{"refunds_issued": 1, "paused": true}'),
        usage_deltas=(UsageDelta("turn", MODEL.model, 1_580, 29), UsageDelta("tool", "billing-api", 120, 0))))
    now = store.sessions.load(sid)
    path = store.sessions.load(sid, graph="active_path")
    say(f"the user edited their last message: {now.graph_node_count} nodes on two branches, "
        f"the active path has {len(path.nodes)}:")
    for node in path.nodes:
        ev = node.payload.event
        say(f"    {ev['role']:>9}: {ev['parts'][0]['content']}")
    ledger = ", ".join(f"{u.source}/{u.model} {u.input}+{u.output}" for u in now.token_ledger)
    say(f"head: revision {now.head_revision}, checkpoint turn {now.checkpoint.turn_state.turn_index}, "
        f"tokens {ledger}")
    retry = store.sessions.commit(attrs.evolve(commits[1], lease=None, expected_head_revision=None))
    say(f"a crashed runtime retries turn 2 with the same content (no lease, no revision): replayed={retry.replayed}, "
        f"the original revision {retry.head_revision} comes back and nothing is written")
    gc = store.sessions.gc()
    say(f"blob GC: kept {gc.retained_blob_count} blob(s) of the live checkpoint, deleted {gc.deleted_blob_count} "
        f"superseded one(s)")
    then = store.sessions.load(sid, graph="active_path", at=positions[1])
    say(f"time travel to position {positions[1]} (after turn 2): revision {then.head_revision}, "
        f"{then.graph_node_count} nodes, tokens {then.token_ledger[0].input}+{then.token_ledger[0].output}, "
        f"checkpoint {'gone (collected by GC)' if then.checkpoint is None else 'present'}:")
    for node in then.nodes:
        ev = node.payload.event
        say(f"    {ev['role']:>9}: {ev['parts'][0]['content']}")
    say(f"try: eventstore show {store.path} {sid}   (and --at {positions[1]}, --active-path)")
    # The closing suggestions revisit the position this narration used.
    suggest(f"eventstore show {{db}} {sid} --at {positions[1]} --active-path")
    suggest(f"eventstore replay {{db}} --at {positions[1]} --stream session:{sid}")
    suggest(f"eventstore diff {{db}} --from {positions[1]} --stream session:{sid}")
