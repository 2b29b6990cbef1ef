"""Viewer subcommands: `eventstore view` (one self-contained HTML file) and `eventstore serve`
(a local web UI over every session, following the log). See docs/viewer.md."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import FileError
from . import EXIT_OK
from ._common import add_db, whole_number


def register(sub: Any) -> None:
    """Add the `view` and `serve` subcommands to the parser."""
    p = sub.add_parser("view", help="write a session viewer as one self-contained HTML file")
    add_db(p)
    p.add_argument("--session", action="append", metavar="ID",
                   help="the session to show (repeatable; default: the 50 most recently active)")
    p.add_argument("-o", "--output", metavar="FILE.html",
                   help="where to write the page (default: standard output)")
    p.add_argument("--snapshots", type=whole_number(0), metavar="N",
                   help="store.at state snapshots per session (default 64; the slider uses the nearest one)")
    p.set_defaults(func=_view)

    p = sub.add_parser("serve", help="a local web UI over every session, updated live as the log grows")
    add_db(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=whole_number(0), default=8765, help="port (default 8765; 0: any free port)")
    p.set_defaults(func=_serve)


def _view(args: argparse.Namespace) -> int:
    from ..viewer import open_readonly, render_html

    with open_readonly(args.db) as store:
        page = render_html(store, args.session, snapshots=args.snapshots)
    if args.output is None:
        sys.stdout.write(page)
        return EXIT_OK
    tmp = f"{args.output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, args.output)  # a reader never sees half a page
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FileError(args.output, f"cannot write the page: {exc.strerror or exc}") from None
    print(f"wrote {args.output} ({len(page.encode('utf-8')):,} bytes)", file=sys.stderr)
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from ..viewer import serve

    def ready(url: str) -> None:
        print(f"serving {args.db} read-only at {url} (Ctrl-C stops)", flush=True)

    try:
        serve(args.db, args.host, args.port, ready)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
