"""Debugging subcommands: replay, diff, why, export, import.

* `eventstore replay DB --at P [--stream S]`: the state at position P, summarised per domain;
* `eventstore diff DB --from P1 --to P2 [--stream S]`: what changed, as domain facts;
* `eventstore why DB --stream S --version V`: an event, its command, its neighbours;
* `eventstore export DB [--stream S] > file.jsonl` and `eventstore import FILE NEWDB`.

All but `import` only read. `replay` and `diff` keep time-travel snapshots in
`DB.replay-cache/` (a cache: `--no-cache` skips it, deleting it is always safe).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import FileError
from . import EXIT_OK
from ._common import (PROGRESS_MIN_EVENTS, add_db, dumps, fmt_ms, open_existing, printable, progress_bar,
                      require_streams, whole_number)


def register(sub: Any) -> None:
    """Add the debugging subcommands to the parser."""
    p = sub.add_parser("replay", help="the state at a log position (time travel), summarised per domain")
    add_db(p)
    p.add_argument("--at", type=_position, dest="position", metavar="POSITION",
                   help="log position to replay to (default: the head)")
    _add_streams(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-cache", action="store_true", help="replay from the start, without snapshots")
    p.set_defaults(func=_replay)

    p = sub.add_parser("diff", help="what changed between two log positions, as domain facts")
    add_db(p)
    p.add_argument("--from", type=_position, required=True, dest="from_position", metavar="P1",
                   help="the log position to compare from (0: the empty store)")
    p.add_argument("--to", type=_position, dest="to_position", metavar="P2", help="default: the head")
    _add_streams(p)
    p.add_argument("--limit", type=_position, default=200, metavar="N", help="list at most N events (default 200)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-cache", action="store_true", help="replay from the start, without snapshots")
    p.set_defaults(func=_diff)

    p = sub.add_parser("why", help="an event, the command that appended it, and its neighbours")
    add_db(p)
    p.add_argument("--stream", required=True, metavar="S", help="the stream the event is on")
    p.add_argument("--version", required=True, type=_position, metavar="V", help="the event's stream version")
    p.add_argument("--around", type=_position, default=3, metavar="N", help="neighbours on each side (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_why)

    p = sub.add_parser("export", help="write the log, keys and blobs as JSON lines (lossless)")
    add_db(p)
    p.add_argument("--stream", metavar="S", help="only this stream: a readable extract (imports only with --no-chain)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: standard output)")
    p.set_defaults(func=_export)

    p = sub.add_parser("import", help="create a store from an export, checking every line")
    p.add_argument("source", metavar="FILE", help="an export file (- for standard input)")
    p.add_argument("db", metavar="NEWDB", help="the store file to create (must not hold events)")
    p.add_argument("--no-chain", action="store_true",
                   help="append the events afresh (new positions and hashes): for a --stream extract")
    p.add_argument("--anchor", metavar="POSITION:HASH", help="an anchor that must lie on the imported chain")
    p.add_argument("--json", action="store_true", help="print the ImportReport as JSON")
    p.set_defaults(func=_import)


_position = whole_number(0)


def _add_streams(p: Any) -> None:
    p.add_argument("--stream", action="append", dest="streams", metavar="S",
                   help="replay only this stream (repeatable; default: the whole log)")


# --- replay -----------------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    from ..debug.inspection import state_at

    with open_existing(args.db) as store:
        require_streams(store, args.streams, args.db)
        summary = state_at(store, args.position, args.streams, cache=not args.no_cache)
    if args.json:
        print(dumps(summary))
        return EXIT_OK
    out = sys.stdout
    scope = ", ".join(summary.streams) if summary.streams else "the whole store"
    out.write(f"state of {printable(scope)} at position {summary.position} (recorded {fmt_ms(summary.as_of_ms)})\n")
    for s in summary.sessions:
        _print_session(out, s)
    if summary.sessions_total > len(summary.sessions):
        out.write(f"... and {summary.sessions_total - len(summary.sessions)} more sessions\n")
    out.write("projection tables:\n")
    empty = 0
    for t in summary.tables:
        if not t.rows:
            empty += 1
            continue
        groups = ""
        if t.groups:
            groups = " (" + ", ".join(f"{n} {printable(k)}" for k, n in t.groups.items()) + ")"
        out.write(f"  {t.projection:<11} {t.table:<26} {t.rows:>7} {'row' if t.rows == 1 else 'rows'}{groups}\n")
    if empty:
        out.write(f"  ({empty} empty tables not shown)\n")
    return EXIT_OK


def _print_session(out: Any, s: Any) -> None:
    name = f", name {printable(s.name)!r}" if s.name and s.name != s.session_id else ""
    out.write(f"session {printable(s.session_id)}: {s.status}, generation {s.generation}{name}\n")
    lease = s.lease
    if lease is None:
        out.write("  lease:  never claimed\n")
    elif lease.holder is None:
        out.write(f"  lease:  released (fence {lease.fencing_token})\n")
    else:
        state = "live" if lease.live else "expired"
        out.write(f"  lease:  held by {printable(lease.holder)}, fence {lease.fencing_token}, "
                  f"expires {fmt_ms(lease.expires_at_ms)} ({state})\n")
    queue = ", ".join(f"{n} {k}" for k, n in s.queue.items()) or "empty"
    out.write(f"  queue:  {queue}\n")
    inputs = ", ".join(f"{n} {k}" for k, n in s.inputs.items()) or "none"
    out.write(f"  inputs: {inputs}\n")
    if s.head is not None:
        h = s.head
        out.write(f"  head:   revision {h.get('revision')}, leaf {printable(str(h.get('leaf_node_id') or '-'))}, "
                  f"{h.get('live_nodes', '?')} nodes\n")


# --- diff -------------------------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    from ..debug.statediff import diff

    with open_existing(args.db) as store:
        require_streams(store, args.streams, args.db)
        to = store.last_position() if args.to_position is None else args.to_position
        d = diff(store, args.from_position, to, args.streams, cache=not args.no_cache, event_limit=args.limit)
    if args.json:
        print(dumps(d))
        return EXIT_OK
    out = sys.stdout
    scope = f" of {', '.join(d.streams)}" if d.streams else ""
    out.write(f"from position {d.from_position} to {d.to_position}{printable(scope)}: {d.events_total} events\n")
    out.write("facts:\n")
    for fact in d.facts or ("(no domain fact changed)",):
        out.write(f"  {printable(fact)}\n")
    if d.events:
        out.write("events:\n")
        for e in d.events:
            out.write(f"  {e.position:>8}  {printable(e.stream)}@{e.version}  {e.type}  {e.text}\n")
        if d.events_total > len(d.events):
            out.write(f"  ... and {d.events_total - len(d.events)} more events\n")
    if d.tables:
        out.write("rows:\n")
        for t in d.tables:
            counts = ", ".join(f"{n} {w}" for n, w in ((t.added, "added"), (t.removed, "removed"),
                                                         (t.changed, "changed")) if n)
            out.write(f"  {t.table}: {counts}\n")
            for ex in t.examples:
                out.write(f"    {printable(ex)}\n")
            hidden = t.added + t.removed + t.changed - len(t.examples)
            if hidden > 0:
                out.write(f"    ... and {hidden} more {'row' if hidden == 1 else 'rows'}\n")
    return EXIT_OK


# --- why --------------------------------------------------------------------------------------------


def _why(args: argparse.Namespace) -> int:
    from ..debug.inspection import why

    with open_existing(args.db) as store:
        require_streams(store, [args.stream], args.db)
        r = why(store, args.stream, args.version, around=args.around)
    if args.json:
        print(dumps(r))
        return EXIT_OK
    out = sys.stdout
    e = r.event
    out.write(f"event {printable(e.stream)}@{e.version} at position {e.position}, recorded "
              f"{fmt_ms(e.recorded_at_ms)}\n")
    out.write(f"  {e.type} (schema {e.schema}): {e.text}\n")
    out.write(f"  hash {e.hash}\n")
    out.write(f"  data {printable(dumps(e.data))}\n")
    first, last = r.command_span
    shown = "" if len(r.command) == last - first + 1 else \
        f"; showing positions {r.command[0].position}-{r.command[-1].position}"
    out.write(f"appended by one command of {last - first + 1} event(s), positions {first}-{last} "
              f"({r.command_basis}{shown}):\n")
    for c in r.command:
        mark = ">" if c.position == e.position else " "
        out.write(f"  {mark}{c.position:>7}  {printable(c.stream)}@{c.version}  {c.type}  {c.text}\n")
    for title, items in (("before it on the stream", r.before), ("after it on the stream", r.after)):
        if items:
            out.write(f"{title}:\n")
            for c in items:
                out.write(f"  {c.position:>8}  {fmt_ms(c.recorded_at_ms)}  @{c.version}  {c.type}  {c.text}\n")
    return EXIT_OK


# --- export and import ------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from ..debug.export import check_output, export_store, export_to_path

    if args.output:
        _check_output(args.output)
        check_output(args.db, args.output)  # before the store is even opened
    else:
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError):  # not a file (captured)
            fd = None
        if fd is not None:  # `export DB >> DB` would append the lines to the store itself
            check_output(args.db, f"/dev/fd/{fd}")
    with open_existing(args.db) as store:
        total = store.last_position()
        with progress_bar("export", total > PROGRESS_MIN_EVENTS) as progress:
            if args.output:
                try:
                    report = export_to_path(store, args.output, stream=args.stream, progress=progress)
                except OSError as exc:  # a full disk, a permission denied: one line, exit 2
                    raise FileError(args.output, exc.strerror or str(exc)) from None
            else:
                report = export_store(store, sys.stdout, stream=args.stream, progress=progress)
                sys.stdout.flush()
    print(f"exported {report.events:,} events, {report.append_keys:,} keys and {report.blobs:,} blobs "
          f"({report.lines:,} lines), source anchor {report.anchor}", file=sys.stderr)
    return EXIT_OK


def _check_output(path: str) -> None:
    """FileError (one line, exit 2) for an output path that is a directory or in no directory."""
    if os.path.isdir(path):
        raise FileError(path, "is a directory: give the path of the file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileError(path, f"no such directory {folder!r}: create it first")


def _import(args: argparse.Namespace) -> int:
    from ..debug.importer import import_store

    source = sys.stdin.buffer if args.source == "-" else args.source
    with progress_bar("import", True) as progress:
        report = import_store(source, args.db, chain_mode=not args.no_chain, anchor=args.anchor,
                              progress=progress)
    if args.json:
        print(dumps(report))
        return EXIT_OK
    how = "chain reproduced" if report.chained else "appended afresh (new chain)"
    print(f"imported {report.events:,} events, {report.append_keys:,} keys and {report.blobs:,} blobs into "
          f"{report.path} ({how}); anchor {report.anchor}")
    return EXIT_OK
