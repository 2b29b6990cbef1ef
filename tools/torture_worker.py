#!/usr/bin/env python
"""The child process of the reliability harness (tools/torture.py): a writer or a racer.

    python tools/torture_worker.py crash --path DB --acks FILE --mode mix|rebuild|gc|purge
                                         --prefix P --seed N [--synchronous full|normal] [--seconds S]
    python tools/torture_worker.py contend --path DB --role ROLE --index I --workers N
                                           --out FILE --go FILE [--seconds S] [--busy-timeout-ms MS]
    python tools/torture_worker.py probe --spec SPEC.json --out RESULTS.jsonl
    python tools/torture_worker.py atheris [--seconds S] [--corpus DIR]

It is started as a separate interpreter so that the harness can kill it with SIGKILL
(crash), run several at once against one file (contention), or watch it use damaged
files without being taken down by a crash or a hang (probe). Every run stops by
itself after `--seconds` if nobody kills it first.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the worker's command line."""
    parser = argparse.ArgumentParser(prog="torture_worker")
    sub = parser.add_subparsers(dest="command", required=True)
    crash = sub.add_parser("crash", help="run commands with acknowledgements until killed")
    crash.add_argument("--path", required=True)
    crash.add_argument("--acks", required=True)
    crash.add_argument("--mode", default="mix", choices=("mix", "rebuild", "gc", "purge"))
    crash.add_argument("--prefix", required=True)
    crash.add_argument("--seed", type=int, default=0)
    crash.add_argument("--synchronous", default="full", choices=("full", "normal"))
    crash.add_argument("--seconds", type=float, default=30.0)
    contend = sub.add_parser("contend", help="race other workers on one file")
    contend.add_argument("--path", required=True)
    contend.add_argument("--role", required=True)
    contend.add_argument("--index", type=int, required=True)
    contend.add_argument("--workers", type=int, required=True)
    contend.add_argument("--out", required=True)
    contend.add_argument("--go", required=True, help="start when this file exists")
    contend.add_argument("--seconds", type=float, default=20.0)
    contend.add_argument("--busy-timeout-ms", type=int, default=15_000)
    contend.add_argument("--rounds", type=int, default=20)
    probe = sub.add_parser("probe", help="use damaged copies of a store file every way and classify")
    probe.add_argument("--spec", required=True)
    probe.add_argument("--out", required=True)
    fuzz = sub.add_parser("atheris", help="run the libFuzzer target on the decoder")
    fuzz.add_argument("--seconds", type=float, default=30.0)
    fuzz.add_argument("--corpus", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the crash writer or a contention role."""
    args = parse(argv)
    if args.command == "crash":
        from reliability import crash_worker

        return crash_worker.main(args)
    if args.command == "probe":
        from reliability import corruption

        return corruption.child_main(args.spec, args.out)
    if args.command == "atheris":
        from reliability import fuzz

        return fuzz.atheris_main(args.seconds, args.corpus)
    from reliability import contention_worker

    return contention_worker.main(args)


if __name__ == "__main__":
    sys.exit(main())
