"""The Agents SDK example (docs/examples/openai_agents_session.py): a real `Runner` with a fake
model keeps its conversation in the log across runs, readable from the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import eventstore
from eventstore.integrations.openai_agents import EventStoreSession

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "examples"))
import openai_agents_session  # noqa: E402  (the example module itself)


def test_runner_continues_the_conversation_from_the_store_and_the_cli_shows_it(tmp_path: Any) -> None:
    """A second run sees the first run's turns (the model counts them); every item is an
    event that `eventstore log` and `eventstore show` print readably; the chain verifies."""
    db = str(tmp_path / "agents.db")
    first = asyncio.run(openai_agents_session.chat(db, "u1", ["hello", "how are you?"]))
    assert first == ["turn 1: you said 'hello'", "turn 2: you said 'how are you?'"]
    second = asyncio.run(openai_agents_session.chat(db, "u1", ["again"]))
    assert second == ["turn 3: you said 'again'"]
    with eventstore.open(db) as store:
        items = asyncio.run(EventStoreSession("u1", store).get_items())
        assert [i.get("role") for i in items] == ["user", "assistant"] * 3
        assert store.verify().ok and store.verify_projections().ok
    log = subprocess.run(
        [sys.executable, "-m", "eventstore", "log", db], capture_output=True, text=True, cwd=ROOT
    )
    assert "session u1: 1 item(s) added: assistant: \"turn 3: you said 'again'\"" in log.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "eventstore", "show", db, "u1"], capture_output=True, text=True, cwd=ROOT
    )
    assert shown.returncode == 0 and "Agents session u1: 6 item(s)" in shown.stdout
