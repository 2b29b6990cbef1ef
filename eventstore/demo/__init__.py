"""`eventstore demo`: a realistic agent deployment on an embedded SQLite file.

The demo is a sequence of chapters. The core chapter below appends a small agent
conversation as plain log events; `chapters.py` and `commits.py` add one chapter per
domain with `@chapter(order)`, using only the domains' public APIs. After the chapters the demo tails
the log, verifies the chain, rebuilds every projection and checks it against a rebuild.

The demo is not part of the product path: a store opened with `eventstore.open()` does not
register the demo's event types; importing this package (as `eventstore demo` does) does.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from typing import Any, Callable


from ..events import event
from ..store import Store
from ..store import open as open_store

Say = Callable[[str], None]
_CHAPTERS: list[tuple[int, str, Callable[[Store, Say], None]]] = []
_SUGGESTIONS: list[str] = []
_IDS = random.Random(0)


def demo_id(digits: int = 8) -> str:
    """A hex id for a chapter's sessions, scopes and nodes: the same in every run with the
    same seed (see `run`), so that documented commands name ids that exist."""
    return f"{_IDS.getrandbits(4 * digits):0{digits}x}"


def suggest(command: str) -> None:
    """Let a chapter add a command to the "Try next" list; `{db}` stands for the file."""
    if command not in _SUGGESTIONS:
        _SUGGESTIONS.append(command)


def chapter(order: int, title: str) -> Callable[[Callable[[Store, Say], None]], Callable[[Store, Say], None]]:
    """Register `fn(store, say)` as a demo chapter; chapters run in `order`."""

    def deco(fn: Callable[[Store, Say], None]) -> Callable[[Store, Say], None]:
        _CHAPTERS[:] = [c for c in _CHAPTERS if c[1] != title]
        _CHAPTERS.append((order, title, fn))
        _CHAPTERS.sort(key=lambda c: c[0])
        return fn

    return deco


@event("demo.user_message")
class UserMessage:
    """A user's message in the demo conversation."""

    text: str


@event("demo.model_reply")
class ModelReply:
    """A model reply in the demo conversation, with token usage."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int


@event("demo.tool_called")
class ToolCalled:
    """A tool call and its result."""

    tool: str
    arguments: dict[str, Any]
    result: str


@chapter(10, "the log")
def _log_chapter(store: Store, say: Say) -> None:
    stream = "demo:conversation"
    turns = [
        UserMessage("Summarise the open incidents and draft a status update."),
        ToolCalled("list_incidents", {"status": "open"}, "INC-101 db latency; INC-102 login errors"),
        ModelReply("Two incidents are open: INC-101 (database latency) and INC-102 (login errors).",
                   "demo-model", 812, 64),
        UserMessage("Draft the update for INC-102 only."),
        ModelReply("Status: login errors for 3% of users since 09:12 UTC; mitigation rolling out.",
                   "demo-model", 903, 41),
    ]
    version = store.stream_version(stream)
    for ev in turns:
        store.append(stream, [ev], expected_version=version)
        version += 1
    say(f"appended a {len(turns)}-event conversation to stream {stream!r} "
        f"(positions up to {store.last_position()})")


def run(path: str | None, say: Say = print, seed: int | None = None) -> int:
    """Run every chapter on `path` (a fresh temporary file when None); returns an exit status.

    Ids come from `seed`; by default the number of events already in the file, so a new
    file always gets the same ids (those in the docs) and a second run into the same file
    gets new ones.
    """
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="eventstore-demo-"), "demo.db")
    started = time.monotonic()
    _SUGGESTIONS.clear()
    say(f"demo store: {path}")
    with open_store(path) as store:
        anchor_before = store.anchor()
        _IDS.seed(anchor_before.position if seed is None else seed)
        for _order, title, fn in list(_CHAPTERS):
            say(f"\n== {title}")
            fn(store, say)
        say("\n== tail")
        stop = threading.Event()
        seen = 0
        for _ev in store.follow(max(1, anchor_before.position + 1), stop=stop, idle_timeout=0.2):
            seen += 1
        say(f"follow() delivered the {seen} events appended by this run, in order, with no gaps")
        say("\n== verify")
        report = store.verify(anchor=anchor_before)
        say(f"chain: {report}")
        rebuilt = store.rebuild()
        say(f"rebuilt {len(rebuilt.projections)} projections from {rebuilt.events} events "
            f"in {rebuilt.seconds:.2f}s")
        check = store.verify_projections()
        say(f"projections: {check}")
        anchor = store.anchor()
        ok = report.ok and check.ok
    say(f"\nfinished in {time.monotonic() - started:.1f}s. Try next:")
    commands = [
        f"eventstore info {path}",
        f"eventstore log {path} --limit 20",
        f"eventstore sessions {path}",
        f"eventstore processes {path}",
        f"eventstore triggers {path}",
        f"eventstore effects {path}",
        *(c.format(db=path) for c in _SUGGESTIONS),
        f"eventstore verify {path} --anchor {anchor}",
        f"eventstore rebuild {path}",
    ]
    for cmd in commands:
        say(f"  {cmd}")
    say("\nThe same from Python: `store = eventstore.open(path)`, then store.read_all(), store.sessions,")
    say("store.leases, store.queue, store.inputs, store.processes, store.triggers, store.effects")
    say("and store.at(position) for time travel.")
    say("Docs (in the project's docs/ folder): api.md (the Python API), cli.md (every command),")
    say("debugging.md (replay, diff and why, step by step) and concepts.md (leases, fencing, effects).")
    return 0 if ok else 1


# The domain chapters register themselves on import; they need `chapter` and `suggest` above.
from . import chapters, commits  # noqa: E402,F401

__all__ = ["ModelReply", "Say", "ToolCalled", "UserMessage", "chapter", "demo_id", "run", "suggest"]
