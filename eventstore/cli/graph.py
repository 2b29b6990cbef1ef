"""Session graph subcommands: `eventstore show`, `eventstore gc` and `eventstore vacuum`.

`show` only reads: the head (revision, config, frames, checkpoint, token ledger) and the
conversation as a tree, the active path marked; `--at P` shows the session as it was at
log position P (replayed with the same read code). `gc` and `vacuum` are the maintenance
commands of the store API (`store.sessions.gc()`, `store.sessions.vacuum(sid)` and
`store.sessions.vacuum_all()`); each
run is recorded in the log.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_ERROR, EXIT_OK
from ._common import add_db, dumps, open_existing, print_table, printable, whole_number

TEXT_WIDTH = 72


def register(sub: Any) -> None:
    """Add the `show`, `gc` and `vacuum` subcommands to the parser."""
    p = sub.add_parser("show", help="a session's head and conversation graph (a tree, the active path marked)")
    add_db(p)
    p.add_argument("session", metavar="SESSION", help="the session id")
    p.add_argument("--at", type=_position, metavar="P", help="as it was at log position P (time travel)")
    p.add_argument("--active-path", action="store_true", help="only the active path, from the root to the leaf")
    p.add_argument("--json", action="store_true", help="one JSON object: the loaded session (bytes as base64)")
    p.set_defaults(func=_show)

    p = sub.add_parser("gc", help="blob GC: delete blobs no head, frame, artifact pointer or attachment roots")
    add_db(p)
    p.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete and record nothing")
    p.add_argument("--min-age-ms", type=int, metavar="MS", default=None,
                   help="keep unrooted blobs put less than MS ago (default 60000)")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    p.set_defaults(func=_gc)

    p = sub.add_parser("vacuum", help="remove tombstoned nodes and terminal turn inputs of a session (or of all)")
    add_db(p)
    p.add_argument("session", metavar="SESSION", nargs="?", help="the session id (default: every active session)")
    p.add_argument("--json", action="store_true", help="JSON lines, one report per session")
    p.set_defaults(func=_vacuum)


_position = whole_number(0)


# --- show ----------------------------------------------------------------------------------


def node_text(node: Any) -> str:
    """A one-line rendering of a node's payload: a message's role and text, or a summary."""
    payload = node.payload
    if hasattr(payload, "plugin_type"):
        return f"[plugin {payload.plugin_type}] {dumps(payload.body)}"
    event = payload.event
    if isinstance(event, dict) and "role" in event:
        texts = []
        for part in event.get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                texts.append(part["content"])
            elif isinstance(part, dict) and "kind" in part:
                texts.append(f"<{part['kind']}>")
        body = " ".join(texts) if texts else dumps({k: v for k, v in event.items() if k != "role"})
        return f"{event['role']}: {body}"
    return dumps(event)


def _cut(text: str, width: int = TEXT_WIDTH) -> str:
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def _label(node: Any, active: set[str], leaf: str | None) -> Any:
    from rich.text import Text

    mark = "◆ " if node.node_id == leaf else ("● " if node.node_id in active else "○ ")
    label = Text(mark, style="bold green" if node.node_id in active else "dim")
    label.append(printable(node.node_id), style="bold" if node.node_id in active else "")
    label.append("  " + _cut(node_text(node)), style="" if node.node_id in active else "dim")
    if node.timestamp:
        label.append(f"  {printable(node.timestamp)}", style="dim")
    return label


def graph_tree(loaded: Any, active_ids: set[str], title: str) -> Any:
    """A rich Tree of the loaded nodes: children under their parents, in graph order.

    A node whose parent is not among them (a hidden or dropped parent) hangs off the root.
    """
    from rich.tree import Tree

    tree = Tree(title)
    branches: dict[str, Any] = {}
    for node in loaded.nodes:
        parent = branches.get(node.parent_node_id) if node.parent_node_id is not None else None
        where = parent if parent is not None else tree
        branches[node.node_id] = where.add(_label(node, active_ids, loaded.leaf_node_id))
    return tree


def _head_rows(loaded: Any) -> list[tuple[str, str]]:
    rows = [("revision", str(loaded.head_revision)),
            ("as of position", str(loaded.position)),
            ("config", f"{loaded.config.provider_id} / {loaded.config.model}" if loaded.config else "-"),
            ("leaf", loaded.leaf_node_id or "-"),
            ("live nodes", str(loaded.graph_node_count)),
            ("current frame", loaded.current_agent_frame_id or "-")]
    for f in loaded.agent_frames:
        snap = f"{len(f.execution_state_snapshot)} B state" if f.execution_state_snapshot is not None else "no state"
        rows.append((f"frame {f.frame_id}", f"{f.status}" + (f", after {f.previous_frame_id}" if f.previous_frame_id
                                                             else "") + f", {snap}"))
    cp = loaded.checkpoint
    if loaded.checkpoint_ref is None:
        rows.append(("checkpoint", "-"))
    elif cp is None:
        rows.append(("checkpoint", f"{loaded.checkpoint_ref[:16]}… (blob gone: collected by GC)"))
    else:
        parts = [f"turn {cp.turn_state.turn_index}"]
        for name, data in (("tool state", cp.tool_state), ("plugins", cp.plugin_snapshot),
                           ("execution state", cp.execution_state)):
            if data is not None:
                parts.append(f"{name} {len(data)} B")
        if cp.plugin_snapshot_revision is not None:
            parts.append(f"plugin revision {cp.plugin_snapshot_revision}")
        rows.append(("checkpoint", f"{loaded.checkpoint_ref[:16]}…: " + ", ".join(parts)))
    for u in loaded.token_ledger:
        rows.append((f"tokens {u.source} / {u.model}",
                     f"in {u.input}, out {u.output}, cache read {u.cache_read_input}, "
                     f"cache write {u.cache_write_input}, reasoning {u.reasoning_output}"))
    return rows


def _show(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        info = store.sessions.get(args.session)
        if info is None:
            from .frameworks import show_thread

            if show_thread(store, args.session, args.at, args.json):  # a LangGraph thread or Agents session
                return EXIT_OK
            print(f"eventstore show: error: no session {args.session!r} in {args.db}", file=sys.stderr)
            return EXIT_ERROR
        mode = "active_path" if args.active_path else "full"
        loaded = store.sessions.load(args.session, graph=mode, at=args.at)
        path = loaded if loaded is None or args.active_path else store.sessions.load(
            args.session, graph="active_path", at=args.at)
    if args.json:
        sys.stdout.write(dumps(loaded) + "\n")
        return EXIT_OK
    when = f" at position {args.at}" if args.at is not None else ""
    if loaded is None:
        print(f"session {args.session} ({info.status}) has no commits{when}")
        return EXIT_OK
    print_table(["head", ""], _head_rows(loaded), title=f"session {args.session} ({info.status}){when}")
    from rich.console import Console

    active = {n.node_id for n in path.nodes}
    what = "active path" if args.active_path else f"{len(loaded.nodes)} live node(s)"
    # Piped, each node is one whole line (never folded or cut at a guessed width), so ids grep.
    piped = not sys.stdout.isatty()
    Console(highlight=False, soft_wrap=piped, width=100_000 if piped else None).print(
        graph_tree(loaded, active, f"graph: {what} (◆ leaf, ● active path, ○ other branches)"))
    return EXIT_OK


# --- gc and vacuum ---------------------------------------------------------------------------


def _gc(args: argparse.Namespace) -> int:
    with open_existing(args.db, write=True) as store:
        report = store.sessions.gc(dry_run=args.dry_run, min_age_ms=args.min_age_ms)
    if args.json:
        sys.stdout.write(dumps(report) + "\n")
        return EXIT_OK
    if report.aborted:
        print(f"gc aborted, nothing deleted: {report.aborted}")
        return EXIT_OK
    verb = "would delete" if report.dry_run else "deleted"
    print(f"roots: {report.root_count}, blobs kept: {report.retained_blob_count}, "
          f"{verb}: {report.deleted_blob_count}")
    if report.dry_run:
        for ref in report.deleted_refs:
            print(f"  {ref}")
    return EXIT_OK


def _vacuum(args: argparse.Namespace) -> int:
    from ..commits import VacuumReport

    with open_existing(args.db, write=True) as store:
        if args.session:
            reports = [(args.session, store.sessions.vacuum(args.session))]
        else:  # store-wide: every active session in one transaction
            done = dict(store.sessions.vacuum_all().sessions)
            reports = [(s.session_id, done.get(s.session_id, VacuumReport(0, 0)))
                       for s in store.sessions.list(status="active")]
    if args.json:
        for sid, r in reports:
            sys.stdout.write(dumps({"session_id": sid, **{k: getattr(r, k) for k in (
                "removed_node_count", "removed_pending_turn_input_tombstone_count")}}) + "\n")
        return EXIT_OK
    print_table(["session", "tombstoned nodes removed", "terminal inputs removed"],
                [(sid, r.removed_node_count, r.removed_pending_turn_input_tombstone_count) for sid, r in reports],
                title=f"vacuum: {len(reports)} session(s)")
    return EXIT_OK
