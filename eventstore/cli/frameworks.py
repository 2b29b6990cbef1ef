"""`eventstore threads`: LangGraph threads and OpenAI Agents SDK sessions kept in a store.

* `eventstore threads DB`: every LangGraph thread (checkpoints, newest step) and every
  Agents SDK session (items), as a table;
* `eventstore threads DB THREAD`: one LangGraph thread's checkpoints, newest first (id,
  step, source, the channels that changed, pending writes), or one Agents
  session's items; `--at P` shows them as they were at log position P.

`eventstore show DB ID` falls back to the same view when ID is not a lash session.
Neither needs LangGraph or the SDK installed: everything shown is in the events' own
fields (values stay serialized).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import EXIT_ERROR, EXIT_OK
from ._common import add_db, open_existing, print_table, printable, whole_number


def register(sub: Any) -> None:
    """Add the `threads` subcommand."""
    p = sub.add_parser("threads", help="LangGraph threads and Agents SDK sessions: list, or one's history")
    add_db(p)
    p.add_argument("thread", metavar="THREAD", nargs="?", help="a LangGraph thread id or Agents session id")
    p.add_argument(
        "--at", type=whole_number(0), metavar="P", help="as it was at log position P (time travel)"
    )
    p.set_defaults(func=_threads)


def _threads(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        if args.thread is None:
            _list_all(store, args.at)
            return EXIT_OK
        if show_thread(store, args.thread, args.at):
            return EXIT_OK
    print(
        f"eventstore threads: error: no LangGraph thread or Agents session {args.thread!r} in {args.db}",
        file=sys.stderr,
    )
    return EXIT_ERROR


def _view(store: Any, at: int | None, streams: list[str] | None = None) -> Any:
    return store.at(at, streams=streams) if at is not None else None


def _list_all(store: Any, at: int | None) -> None:
    view = _view(store, at)
    db = view.db if view is not None else store.db
    try:
        lg = db.query(
            "SELECT thread_id, count(*), count(DISTINCT checkpoint_ns) FROM langgraph_checkpoints "
            "GROUP BY thread_id ORDER BY thread_id"
        )
        ag = db.query("SELECT session_id, count(*) FROM agents_items GROUP BY session_id ORDER BY session_id")
    finally:
        if view is not None:
            view.close()
    rows = [["langgraph", printable(t), f"{n} checkpoint(s)", f"{ns} namespace(s)"] for t, n, ns in lg]
    rows += [["openai-agents", printable(s), f"{n} item(s)", ""] for s, n in ag]
    print_table(["framework", "thread / session", "holds", ""], rows, title="framework threads")


def show_thread(store: Any, thread: str, at: int | None) -> bool:
    """Print one LangGraph thread or Agents session; False when the store has neither."""
    lg_stream, ag_stream = f"langgraph:{thread}", f"agents:{thread}"
    found = [s for s in (lg_stream, ag_stream) if store.stream_info(s) is not None]
    if not found:
        return False
    view = _view(store, at, found)
    db = view.db if view is not None else store.db
    when = f" at position {at}" if at is not None else ""
    try:
        if lg_stream in found:
            rows = db.query(
                "SELECT checkpoint_ns, checkpoint_id, parent_id, position FROM langgraph_checkpoints "
                "WHERE thread_id = ? ORDER BY checkpoint_id DESC",
                (thread,),
            )
            table = []
            for ns, checkpoint_id, parent_id, position in rows:
                ev = store.get(position).data
                writes = db.scalar(
                    "SELECT count(*) FROM langgraph_writes WHERE thread_id = ? AND checkpoint_ns = ? "
                    "AND checkpoint_id = ?",
                    (thread, ns, checkpoint_id),
                    0,
                )
                changed = ", ".join(f"{e[0]}{_delta(e)}" for e in ev.channels)
                table.append(
                    [
                        position,
                        printable(ns) or "-",
                        checkpoint_id,
                        "" if ev.step is None else ev.step,
                        ev.source or "",
                        printable(changed),
                        writes,
                    ]
                )
            print_table(
                ["pos", "ns", "checkpoint", "step", "source", "changed", "writes"],
                table,
                title=f"LangGraph thread {printable(thread)}{when}: {len(rows)} checkpoint(s), newest first",
            )
        if ag_stream in found:
            rows = db.query(
                "SELECT position, idx FROM agents_items WHERE session_id = ? ORDER BY position, idx",
                (thread,),
            )
            table = [[p, i, printable(_short(store.get(p).data.items[i]))] for p, i in rows]
            print_table(
                ["added at", "#", "item"],
                table,
                title=f"Agents session {printable(thread)}{when}: {len(rows)} item(s)",
            )
    finally:
        if view is not None:
            view.close()
    return True


def _delta(entry: list) -> str:
    kind, data = entry[2], entry[3]
    if kind == "append":
        return f" +{len(data[3])}"
    if kind == "list":
        return f" [{len(data)}]"
    return " (empty)" if kind == "empty" else ""


def _short(text: str) -> str:
    try:
        item = json.loads(text)
    except ValueError:
        return text[:80]
    if isinstance(item, dict):
        content = item.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if isinstance(content, str):
            return f"{item.get('role') or item.get('type') or 'item'}: {content[:70]}"
    return text[:80]
