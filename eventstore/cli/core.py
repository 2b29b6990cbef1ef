"""Core subcommands: demo, info, log, verify, rebuild, anchor (alias: checkpoint), copy."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..chain import Anchor
from . import EXIT_FAILED, EXIT_OK
from ..debug.describe_events import describe
from ..errors import InvalidArgument
from ._common import (PROGRESS_MIN_EVENTS, add_db, dumps, fmt_ms, open_existing, print_table, printable,
                      progress_bar, require_streams, whole_number)


def register(sub: Any) -> None:
    """Add the core subcommands to the parser."""
    p = sub.add_parser("demo", help="run a realistic agent session on a SQLite file, ending with a verify")
    p.add_argument("db", nargs="?", metavar="DB", help="store file (default: a new temporary file)")
    p.add_argument("--seed", type=whole_number(0), metavar="N",
                   help="derive the session ids and scopes from N (default: the number of events already "
                        "in DB, so a new file always gets the ids the docs use)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("info", help="summarise a store file")
    add_db(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_info)

    p = sub.add_parser("log", help="print events, one per line")
    add_db(p)
    p.add_argument("--stream", help="only this stream")
    p.add_argument("--type", action="append", dest="types", metavar="TYPE", help="only this type (repeatable)")
    p.add_argument("--from", type=_positive, default=1, dest="from_position", metavar="P",
                   help="start at position P (default 1)")
    p.add_argument("--limit", type=_positive, metavar="N", help="print at most N events")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.add_argument("--follow", "-f", action="store_true",
                   help="after the existing events, print new ones as any process commits them (Ctrl-C stops)")
    p.add_argument("--idle-timeout", type=_seconds, metavar="SECONDS",
                   help="with --follow: stop after this many seconds without a new event")
    p.set_defaults(func=_log)

    p = sub.add_parser("verify", help="verify the hash chain (exit 0 sound, 1 not)")
    add_db(p)
    p.add_argument("--anchor", metavar="POSITION:HASH", help="an anchor from `eventstore anchor`")
    p.add_argument("--projections", action="store_true", help="also compare projections with a rebuild")
    p.add_argument("--no-blobs", action="store_true",
                   help="skip hashing every blob's bytes against its ref (checked by default)")
    p.add_argument("--json", action="store_true",
                   help='print {"ok", "chain", "projections"} as one JSON object')
    p.set_defaults(func=_verify)

    p = sub.add_parser("rebuild", help="rebuild projections from the log and swap them in")
    add_db(p)
    p.add_argument("--projection", action="append", dest="projections", metavar="NAME",
                   help="only this projection (repeatable; default all)")
    p.add_argument("--json", action="store_true", help="print the RebuildReport as JSON")
    p.set_defaults(func=_rebuild)

    p = sub.add_parser("copy", help="copy a store's log (positions, payloads, hashes) into a new store, "
                       "on the same or another backend, and verify it there")
    p.add_argument("src", metavar="SRC", help="the store to copy: a file path or a postgresql:// URL")
    p.add_argument("dst", metavar="DST", help="a new, empty store: a file path or a postgresql:// URL")
    p.add_argument("--json", action="store_true", help='print {"events", "anchor", "purged", "keys", "blobs"}')
    p.set_defaults(func=_copy)

    # `checkpoint` was this command's first name; a session's checkpoint is another thing.
    p = sub.add_parser("anchor", aliases=["checkpoint"], help="print POSITION:HASH of the newest event, "
                       "to keep outside the file for verify --anchor")
    add_db(p)
    p.add_argument("--json", action="store_true", help='print {"position", "hash", "anchor"}')
    p.set_defaults(func=_anchor)


_positive = whole_number(1)


def _seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive, finite number of seconds")
    return value


def _copy(args: argparse.Namespace) -> int:
    from ..copy import copy_store
    from ..store import open as open_store

    with open_existing(args.src) as src, open_store(args.dst) as dst:
        report = copy_store(src, dst)
    if args.json:
        print(dumps({"events": report.events, "anchor": str(report.anchor), "purged": report.purged,
                     "keys": report.keys, "blobs": report.blobs}))
    else:
        print(f"copied {report.events:,} events ({report.purged:,} purged payload digests, "
              f"{report.keys:,} idempotency keys, {report.blobs:,} blobs); "
              f"anchor {report.anchor} verified on {printable(args.dst)}")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from ..demo import run

    return run(args.db, seed=args.seed)


def _info(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        info = store.info()
    if args.json:
        print(dumps(info))
        return EXIT_OK
    print(f"file:         {info.path} ({info.file_bytes:,} bytes)")
    print(f"schema:       {info.schema_version}")
    print(f"events:       {info.events:,} in {info.streams:,} streams")
    print(f"head:         {info.last_position}:{info.head}")
    print(f"blobs:        {info.blobs:,} ({info.blob_bytes:,} bytes stored)")
    rows = [(p.name, p.code_version, p.stored_version, p.position, "STALE" if p.stale else "ok")
            for p in info.projections]
    print_table(["projection", "code version", "stored version", "position", "state"], rows)
    return EXIT_OK


def _log(args: argparse.Namespace) -> int:
    if args.idle_timeout is not None and not args.follow:
        raise InvalidArgument("--idle-timeout only applies with --follow")
    with open_existing(args.db) as store:
        if args.stream and not args.follow:
            require_streams(store, [args.stream], args.db)
        if args.follow:
            # follow() reads what is there, then waits for commits from any process; the
            # stream filter is applied here (follow filters by type only).
            events = store.follow(args.from_position, types=args.types, raw=True, idle_timeout=args.idle_timeout)
        elif args.stream:
            events = store.read_stream(args.stream, raw=True)
        else:
            events = store.read_all(args.from_position, types=args.types, raw=True)
        try:
            return _print_events(args, events)
        except KeyboardInterrupt:
            if args.follow:
                return EXIT_OK  # Ctrl-C is how a follow ends
            raise


def _print_events(args: argparse.Namespace, events: Any) -> int:
    n = 0
    out = sys.stdout
    for ev in events:
        if args.stream and (ev.stream != args.stream or ev.position < args.from_position
                            or (args.types and ev.type not in args.types)):
            continue
        if args.json:
            out.write(dumps({"position": ev.position, "stream": ev.stream, "version": ev.version,
                             "type": ev.type, "schema": ev.schema, "recorded_at_ms": ev.recorded_at_ms,
                             "data": ev.data}) + "\n")
        else:
            data = describe(ev)
            out.write(f"{ev.position:>8}  {fmt_ms(ev.recorded_at_ms)}  "
                      f"{printable(ev.stream)}@{ev.version}  {ev.type}  {data}\n")
        if args.follow:
            out.flush()  # a follower's reader (a pipe, `grep`) sees each event as it commits
        n += 1
        if args.limit and n >= args.limit:
            break
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    anchor = Anchor.parse(args.anchor) if args.anchor else None
    check = None
    with open_existing(args.db) as store:
        total = store.last_position()
        with progress_bar("verify", total > PROGRESS_MIN_EVENTS) as progress:
            report = store.verify(anchor, progress=lambda done: progress(done, total),
                                  blobs=not args.no_blobs)
        if not args.json:
            print(str(report))
        ok = report.ok
        if args.projections and ok:
            with progress_bar("rebuild into scratch", total > PROGRESS_MIN_EVENTS) as progress:
                check = store.verify_projections(progress=progress)
            if not args.json:
                print(f"projections {check}")
            ok = check.ok
    if args.json:
        print(dumps({"ok": ok, "chain": report, "projections": check}))
    return EXIT_OK if ok else EXIT_FAILED


def _rebuild(args: argparse.Namespace) -> int:
    with open_existing(args.db, write=True) as store:
        total = store.last_position()
        with progress_bar("rebuild", total > 10_000) as progress:
            report = store.rebuild(args.projections, progress)
    if args.json:
        print(dumps(report))
        return EXIT_OK
    print(f"rebuilt {', '.join(report.projections)} from {report.events:,} events "
          f"up to position {report.position} in {report.seconds:.2f}s")
    return EXIT_OK


def _anchor(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        anchor = store.anchor()
    if args.json:
        print(dumps({"position": anchor.position, "hash": anchor.hash, "anchor": str(anchor)}))
    else:
        print(anchor)
    return EXIT_OK
