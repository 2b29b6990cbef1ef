"""A real LangGraph agent (docs/examples/langgraph_agent.py) on the log, end to end: killed
with SIGKILL mid-turn in a subprocess, resumed from the store, then its history listed,
an earlier checkpoint time-travelled to and forked, and the thread read from the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

import eventstore
from eventstore.integrations.langgraph import EventStoreSaver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "langgraph_agent.py"
sys.path.insert(0, str(EXAMPLE.parent))
import langgraph_agent  # noqa: E402  (the example module itself)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eventstore", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def _kill_mid_turn(db: str) -> None:
    """Start the example with a slow tool; SIGKILL it while the tool of turn 1 runs."""
    env = {**os.environ, "ADD_TOOL_DELAY": "30"}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), db, "--thread", "t1", "--turns", "4"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if line.startswith("tool add(1, 10) running"):
                # LangGraph saves the step's checkpoint in a background thread while the
                # tool runs; give it a moment so the crash lands inside the tool call.
                time.sleep(1.0)
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, seen
    finally:
        proc.kill()
        proc.wait()
    assert seen[:3] == ["tool add(0, 0) running", "turn 0 done", "tool add(1, 10) running"], seen


def test_agent_killed_mid_turn_resumes_and_keeps_an_auditable_history(tmp_path: Any) -> None:
    """After SIGKILL in the middle of turn 1, a new process finishes turn 1 from its last
    checkpoint (no question asked twice), answers the remaining turns, and the history,
    time travel, fork, CLI lines and chain verification all work on the store."""
    db = str(tmp_path / "agent.db")
    _kill_mid_turn(db)
    with eventstore.open(db) as store:
        saver = EventStoreSaver(store)
        graph = langgraph_agent.build_graph(saver)
        interrupted = graph.get_state({"configurable": {"thread_id": "t1"}})
        assert interrupted.next == ("tools",)

    done = subprocess.run(
        [sys.executable, str(EXAMPLE), db, "--thread", "t1", "--turns", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "resuming at tools",
        "turn 2 done",
        "turn 3 done",
        "the sum is 0",
        "the sum is 11",
        "the sum is 22",
        "the sum is 33",
    ]

    with eventstore.open(db) as store:
        graph = langgraph_agent.build_graph(EventStoreSaver(store))
        config = {"configurable": {"thread_id": "t1"}}
        messages = graph.get_state(config).values["messages"]
        questions = [m.content for m in messages if isinstance(m, HumanMessage)]
        assert questions == [f"what is {i} + {i * 10}?" for i in range(4)]

        # History, newest first; time travel to the end of turn 0 (its answer is the last message).
        history = list(graph.get_state_history(config))
        assert len(history) >= 4 * 4
        end_of_turn0 = next(
            s
            for s in reversed(history)
            if s.values.get("messages") and s.values["messages"][-1].content == "the sum is 0"
        )
        assert [m.content for m in end_of_turn0.values["messages"]][0] == "what is 0 + 0?"
        assert len(end_of_turn0.values["messages"]) == 4

        # Fork from there: a different second question; the branch's parent is that checkpoint.
        forked = graph.invoke({"messages": [HumanMessage("what is 5 + 5?")]}, end_of_turn0.config)
        assert [m.content for m in forked["messages"] if isinstance(m, AIMessage) and m.content] == [
            "the sum is 0",
            "the sum is 10",
        ]
        branch = list(graph.get_state_history(config))
        assert any(
            s.config["configurable"]["checkpoint_id"] == end_of_turn0.config["configurable"]["checkpoint_id"]
            for s in branch
        )
        assert len(branch) > len(history)
        head_before_fork = history[0].config
        assert graph.get_state(head_before_fork).values["messages"][-1].content == "the sum is 33"
        assert store.verify().ok

    log = _cli("log", db)
    assert log.returncode == 0, log.stderr
    assert "langgraph.checkpoint_saved  thread t1 checkpoint" in log.stdout
    assert "messages +1" in log.stdout
    assert _cli("verify", db).returncode == 0
    verify_projections = _cli("verify", "--projections", db)
    assert verify_projections.returncode == 0, verify_projections.stdout + verify_projections.stderr
    replay = _cli("replay", db)
    assert "langgraph_checkpoints" in replay.stdout


def test_threads_and_show_commands_list_a_langgraph_thread_readably(tmp_path: Any) -> None:
    """`eventstore threads` lists the thread, `eventstore show DB THREAD` (and `threads DB
    THREAD --at P`) print its checkpoints with the channels that changed; an unknown id is
    one line on stderr with exit status 2."""
    db = str(tmp_path / "agent.db")
    answers = langgraph_agent.run(db, "t9", 1)
    assert answers == ["the sum is 0"]
    listing = _cli("threads", db)
    assert listing.returncode == 0 and "t9" in listing.stdout and "checkpoint(s)" in listing.stdout
    shown = _cli("show", db, "t9")
    assert shown.returncode == 0, shown.stderr
    assert "LangGraph thread t9: 5 checkpoint(s), newest first" in shown.stdout
    early = _cli("threads", db, "t9", "--at", "1")
    assert "LangGraph thread t9 at position 1: 1 checkpoint(s)" in early.stdout
    missing = _cli("threads", db, "nope")
    assert missing.returncode == 2 and missing.stdout == ""
    assert (
        missing.stderr.count("\n") == 1 and "no LangGraph thread or Agents session 'nope'" in missing.stderr
    )


def test_threads_json_lines_describe_each_checkpoint(tmp_path: Any) -> None:
    """`eventstore threads DB THREAD --json` prints one JSON object per checkpoint, newest first,
    with its step, source, changed channels and pending writes; the listing's JSON names the thread."""
    import json

    db = str(tmp_path / "agent.db")
    langgraph_agent.run(db, "t7", 1)
    out = _cli("threads", db, "t7", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["step"] for r in rows] == [3, 2, 1, 0, -1]
    assert rows[0]["framework"] == "langgraph" and rows[0]["changed"][0] == "messages +1"
    assert rows[-1]["source"] == "input"
    listing = [json.loads(line) for line in _cli("threads", db, "--json").stdout.splitlines()]
    assert listing == [{"framework": "langgraph", "id": "t7", "holds": "5 checkpoint(s) in 1 namespace(s)",
                        "checkpoints": 5}]
