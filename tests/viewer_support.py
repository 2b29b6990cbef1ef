"""Shared by the viewer tests: a store with every lane, hostile text, and a headless browser.

`build_rich_store(path)` writes one session ("rich") that has a lease handed from one
holder to another, queued work and turn inputs claimed and completed, a conversation
with a branch and a tombstoned node, a process the session started, a 300,000-character
message, and text meant to run script if a page ever parsed it as HTML.

`launch(playwright)` starts Debian's chromium through Playwright's own driver (no
browser download). A missing chromium makes the viewer tests fail, never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import eventstore
from eventstore.commits import EventPayload, GraphAppend, RuntimeCommit, SessionNode
from eventstore.inputs import ActiveTurn, CheckpointKind, TurnInputDraft
from eventstore.leases import LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.sessions import SessionMeta

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCRIPT_TEXT = "<script>window.__pwned = 'script';</script>"
IMG_TEXT = '"><img src=x onerror="window.__pwned = \'img\'; alert(1)">'
LONG_TEXT = "long " * 60_000
SID = "rich"


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless, through Playwright (fails when it is not installed)."""
    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _node(node_id: str, role: str, text: str, parent: str | None) -> SessionNode:
    payload = EventPayload({"role": role, "parts": [{"kind": "text", "content": text}]})
    return SessionNode(node_id, payload, parent, agent_frame_id="main", timestamp="2026-03-02T09:00:00Z")


def build_rich_store(path: str) -> dict[str, int]:
    """Write the "rich" session (see the module docstring); returns named positions."""
    from eventstore import processes as p

    marks: dict[str, int] = {}
    clock = eventstore.ManualClock(1_700_000_000_000)
    with eventstore.open(path, clock=clock, synchronous="normal") as store:
        store.sessions.create(SID, SessionMeta(name=f"rich {SCRIPT_TEXT}", model="m-1", cwd="/srv"))
        first = store.leases.claim(SID, LeaseOwner("runtime-a", "inc-1"), 30_000).lease
        clock.advance(1_000)
        store.leases.renew(first.fence, 30_000)
        store.leases.release(first.fence)
        clock.advance(1_000)
        lease = store.leases.claim(SID, LeaseOwner("runtime-b", "inc-2"), 30_000).lease
        store.queue.enqueue(QueuedWorkDraft(SID, (AgentFrameTask("main", IMG_TEXT),)))
        store.inputs.enqueue(TurnInputDraft(SID, {"text": SCRIPT_TEXT}, ActiveTurn("turn-1")))
        got = store.queue.claim_checkpoint(lease.fence, "turn-1", CheckpointKind.AFTER_WORK, max_batches=8)
        turns = [("u1", "user", "What is the weather in Lyon?", None),
                 ("a1", "assistant", "Rain until noon.", "u1"),
                 ("u2", "user", SCRIPT_TEXT, "a1"),
                 ("a2", "assistant", IMG_TEXT, "u2")]
        store.sessions.commit(RuntimeCommit(
            SID, lease.fence, GraphAppend(tuple(_node(*t) for t in turns[:2]), "a1"),
            expected_head_revision=0,
            completed_queue_claims=(got.queue.completion(),),
            completed_turn_input_claims=(got.inputs.completion(),)))
        marks["two_nodes"] = store.last_position()
        store.sessions.commit(RuntimeCommit(
            SID, lease.fence, GraphAppend(tuple(_node(*t) for t in turns[2:]), "a2"),
            expected_head_revision=1))
        marks["four_nodes"] = store.last_position()
        # A branch: the user edits u2; the old branch stays, the leaf moves to the new one.
        store.sessions.commit(RuntimeCommit(
            SID, lease.fence,
            GraphAppend((_node("u3", "user", LONG_TEXT, "a1"), _node("a3", "assistant", "ok", "u3")), "a3"),
            expected_head_revision=2))
        marks["branched"] = store.last_position()
        store.sessions.tombstone_nodes(SID, ["a2"])
        marks["tombstoned"] = store.last_position()
        tool = p.ToolCallInput("run_tests", "call-1", {"target": "tests/"})
        reg = p.ProcessRegistration("rich-tool-1", tool,
                                    p.Disposition.RERUNNABLE, p.Provenance(p.SessionScope(SID)), (),
                                    env_ref="env:python")
        store.processes.register(reg)
        store.processes.record_first_started("rich-tool-1", "worker-1")
        store.processes.complete("rich-tool-1", p.Success({"passed": 3}), p.WorkflowKey("wf-1"))
        marks["process_done"] = store.last_position()
        store.leases.release(lease.fence)
        marks["last"] = store.last_position()
    return marks


def append_turn(path: str, node_id: str, text: str) -> None:
    """In another process: claim the lease of "rich" and commit one more message."""
    code = (
        "import sys, eventstore\n"
        "from eventstore.commits import EventPayload, GraphAppend, RuntimeCommit, SessionNode\n"
        "from eventstore.leases import LeaseOwner\n"
        "with eventstore.open(sys.argv[1]) as s:\n"
        "    lease = s.leases.claim('rich', LeaseOwner('runtime-c', 'inc-3'), 30_000).lease\n"
        "    head = s.sessions.load('rich', graph='none')\n"
        "    node = SessionNode(sys.argv[2], EventPayload({'role': 'user', 'parts': [{'kind': 'text', "
        "'content': sys.argv[3]}]}), head.leaf_node_id)\n"
        "    s.sessions.commit(RuntimeCommit('rich', lease.fence, GraphAppend((node,), sys.argv[2]), "
        "release_lease=True))\n"
    )
    subprocess.run([sys.executable, "-c", code, path, node_id, text], check=True, timeout=120)
