"""The `eventstore` command line.

Each module of this package (other than those starting with `_`) adds its
subcommands through a `register(subparsers)` function, so that each domain owns its
commands. Errors print as one line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from ..errors import StoreError

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (verify failed, mismatch)
EXIT_ERROR = 2  # the command could not run (bad arguments, unreadable file)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="eventstore",
        description="An event-sourced SQLite store for AI-agent runtimes: inspect, verify, "
        "rebuild and time-travel a store file.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"eventstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by the console script)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # parse_args would report them with the top-level usage; the subcommand's usage is
        # the one that lists the options the user can give instead.
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        status = args.func(args)
    except StoreError as exc:
        print(f"eventstore {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `eventstore log DB | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"eventstore {args.command}: interrupted", file=sys.stderr)
        return 130
    return EXIT_OK if status is None else int(status)


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of subcommand `command` (or `parser` itself if there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices.get(command, parser)
            return found
    return parser


def run() -> None:
    """Entry point for `python -m eventstore`."""
    sys.exit(main())
