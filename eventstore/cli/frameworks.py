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
from ..debug.describe_integrations import step_and_source
from ..integrations.events import checkpoint_id_text
from ._common import add_db, open_existing, print_json_lines, print_table, printable, whole_number


def register(sub: Any) -> None:
    """Add the `threads` subcommand."""
    p = sub.add_parser("threads", help="LangGraph threads and Agents SDK sessions: list, or one's history")
    add_db(p)
    p.add_argument("thread", metavar="THREAD", nargs="?", help="a LangGraph thread id or Agents session id")
    p.add_argument(
        "--at", type=whole_number(0), metavar="P", help="as it was at log position P (time travel)"
    )
    p.add_argument("--json", action="store_true", help="JSON lines, one per thread, checkpoint or item")
    p.set_defaults(func=_threads)


def _threads(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        if args.thread is None:
            rows = list_threads(store, args.at)
            if args.json:
                print_json_lines(rows)
            else:
                table = [[r["framework"], printable(r["id"]), r["holds"]] for r in rows]
                print_table(["framework", "thread / session", "holds"], table, title="framework threads")
            return EXIT_OK
        if show_thread(store, args.thread, args.at, args.json):
            return EXIT_OK
    print(
        f"eventstore threads: error: no LangGraph thread or Agents session {args.thread!r} in {args.db}",
        file=sys.stderr,
    )
    return EXIT_ERROR


def _view(store: Any, at: int | None, streams: list[str] | None = None) -> Any:
    return store.at(at, streams=streams) if at is not None else None


def list_threads(store: Any, at: int | None) -> list[dict[str, Any]]:
    """One dict per LangGraph thread and per Agents session: framework, id, what it holds."""
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
    rows = [
        {
            "framework": "langgraph",
            "id": t,
            "holds": f"{n} checkpoint(s) in {ns} namespace(s)",
            "checkpoints": n,
        }
        for t, n, ns in lg
    ]
    rows += [{"framework": "openai-agents", "id": s, "holds": f"{n} item(s)", "items": n} for s, n in ag]
    return rows


def thread_rows(store: Any, thread: str, at: int | None) -> dict[str, list[dict[str, Any]]] | None:
    """{"langgraph": checkpoints newest first, "openai-agents": items oldest first} of one id
    (only the frameworks that have it); None when neither has it."""
    lg_stream, ag_stream = f"langgraph:{thread}", f"agents:{thread}"
    found = [s for s in (lg_stream, ag_stream) if store.stream_info(s) is not None]
    if not found:
        return None
    view = _view(store, at, found)
    db = view.db if view is not None else store.db
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        if lg_stream in found:
            out["langgraph"] = []
            for ns, checkpoint_id, position in db.query(
                "SELECT checkpoint_ns, checkpoint_id, position FROM langgraph_checkpoints "
                "WHERE thread_id = ? ORDER BY checkpoint_id DESC",
                (thread,),
            ):
                ev = store.get(position).data
                parent = store.get(ev.parent).data.id if type(ev.parent) is int else ev.parent
                step, source = step_and_source(ev.head)
                writes = db.scalar(
                    "SELECT count(*) FROM langgraph_writes WHERE thread_id = ? AND checkpoint_ns = ? "
                    "AND checkpoint_id = ?",
                    (thread, ns, checkpoint_id),
                    0,
                )
                out["langgraph"].append(
                    {
                        "position": position,
                        "checkpoint_ns": ns,
                        "checkpoint_id": checkpoint_id,
                        "parent_checkpoint_id": checkpoint_id_text(parent),
                        "step": step,
                        "source": source,
                        "changed": [f"{e[0]}{_delta(e)}" for e in ev.channels if e[2] != "ref"],
                        "pending_writes": writes,
                    }
                )
        if ag_stream in found:
            out["openai-agents"] = [
                {"added_at": p, "index": i, "item": store.get(p).data.items[i]}
                for p, i in db.query(
                    "SELECT position, idx FROM agents_items WHERE session_id = ? ORDER BY position, idx",
                    (thread,),
                )
            ]
    finally:
        if view is not None:
            view.close()
    return out


def show_thread(store: Any, thread: str, at: int | None, as_json: bool = False) -> bool:
    """Print one LangGraph thread or Agents session (a table, or JSON lines); False when the
    store has neither."""
    found = thread_rows(store, thread, at)
    if found is None:
        return False
    if as_json:
        print_json_lines({"framework": k, **row} for k, rows in found.items() for row in rows)
        return True
    when = f" at position {at}" if at is not None else ""
    if "langgraph" in found:
        rows = found["langgraph"]
        table = [
            [
                r["position"],
                printable(r["checkpoint_ns"]) or "-",
                r["checkpoint_id"],
                "" if r["step"] is None else r["step"],
                r["source"] or "",
                printable(", ".join(r["changed"])),
                r["pending_writes"],
            ]
            for r in rows
        ]
        print_table(
            ["pos", "ns", "checkpoint", "step", "source", "changed", "writes"],
            table,
            title=f"LangGraph thread {printable(thread)}{when}: {len(rows)} checkpoint(s), newest first",
        )
    if "openai-agents" in found:
        items = found["openai-agents"]
        table = [[r["added_at"], r["index"], printable(_short(r["item"]))] for r in items]
        print_table(
            ["added at", "#", "item"],
            table,
            title=f"Agents session {printable(thread)}{when}: {len(items)} item(s)",
        )
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
