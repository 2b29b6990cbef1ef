#!/usr/bin/env python
"""Reliability harness: crashes, contention, tampering and hostile input, measured.

    python tools/torture.py crash|contention|tamper|fuzz|all [--trials N] [--quick]
                            [--seconds S] [--json] [--markdown] [--tmp DIR]

* crash       a writer doing a realistic mix of domain commands is killed with SIGKILL
              at random moments, at synchronous=full and normal; also during a
              projection rebuild, blob GC and a session purge. After each kill the
              file is reopened and audited (acknowledged commands present, no partial
              command, chain sound, projections equal a rebuild, the interrupted
              operation runs again).
* contention  4 and 8 processes on one file: racing lease claims, a shared work queue,
              commits and appends with stale revisions, a tiny busy timeout, readers
              beside writers.
* tamper      every single-byte change, deleted row, reordered pair and truncated tail
              of a small file (exhaustive) and a large one (sampled), and damaged pages.
* fuzz        hostile payloads planted in rows (random bytes, wrong shapes, nesting
              bombs, lying lz4 blocks), atheris when installed, bad arguments to every
              facade method, and the static checks (no pickle, SQL parameters, file
              modes, terminal-safe CLI).

`--trials N` sets the crash trials per suite and the damaged-page trials; `--seconds S`
bounds the whole run (suites stop early and report what they ran); `--quick` runs a
small version of everything. The run always ends by itself. Exit status: 0 when every
row is ok, 1 otherwise. The figures in docs/reliability.md come from `all`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from reliability.common import Budget, Result, dumps, format_markdown, format_table  # noqa: E402

SUITES = ("crash", "contention", "tamper", "fuzz")
SHARE = {"crash": 0.45, "contention": 0.2, "tamper": 0.2, "fuzz": 0.15}
"""How a --seconds budget is split when `all` runs (a suite's unused time goes to the next)."""


def run_crash(args: argparse.Namespace, tmp: str, budget: Budget) -> list[Result]:
    """The crash suites."""
    from reliability import crash

    return crash.run(tmp, quick=args.quick, trials=args.trials, budget=budget)


def run_contention(args: argparse.Namespace, tmp: str, budget: Budget) -> list[Result]:
    """The contention scenarios at 4 and 8 processes."""
    from reliability import contention

    return contention.run(tmp, quick=args.quick, budget=budget)


def run_tamper(args: argparse.Namespace, tmp: str, budget: Budget) -> list[Result]:
    """Row tampering (exhaustive and sampled) and damaged pages."""
    from reliability import corruption, tamper

    out = tamper.run(tmp, quick=args.quick, budget=budget.share(0.6))
    out += corruption.run(tmp, quick=args.quick, trials=args.trials, budget=budget)
    return out


def run_fuzz(args: argparse.Namespace, tmp: str, budget: Budget) -> list[Result]:
    """Planted payloads, atheris, hostile arguments and the static checks."""
    from reliability import audit, fuzz, hostile

    seconds = 5.0 if args.quick else 60.0
    out = fuzz.run(tmp, quick=args.quick, seconds=min(seconds, max(budget.left() / 3, 2.0)), budget=budget)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        outcomes = hostile.run_all(work)
    s = hostile.summary(outcomes)
    detail = (f"{s['methods']} methods of {len({o.case.facade for o in outcomes})} facades; {s['untyped']} untyped "
              f"errors, {s['accepted']} bad values accepted, {s['unnamed']} messages not naming the argument, "
              f"{s['written']} calls that changed the log; {time.monotonic() - started:.0f}s")
    if s["bad"]:
        detail += "; e.g. " + " / ".join(hostile.describe(o)[:160] for o in s["bad"][:3])
    out.append(Result("fuzz", "bad arguments to every facade method (wrong type, missing, oversized)",
                      s["cases"], "calls", 0, 0, 0, len(s["bad"]), detail))
    pickles = audit.pickle_uses()
    _accepted, review = audit.sql_interpolations()
    unreviewed = [r for r in review if (r.file, r.expression) not in audit.REVIEWED]
    out.append(Result("fuzz", "static: no pickle, SQL only with parameters", 2, "checks", 0, 0, 0,
                      len(pickles) + len(unreviewed),
                      f"pickle uses: {pickles or 'none'}; {len(_accepted)} interpolations of identifiers, "
                      f"placeholder lists or int casts; {len(review) - len(unreviewed)} reviewed by hand; "
                      f"unreviewed: {[f'{r.file}:{r.line} {r.expression}' for r in unreviewed] or 'none'}"))
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        modes = audit.file_modes(work)
    loose = {k: oct(v) for k, v in modes.items() if v & 0o077}
    out.append(Result("fuzz", "files created private (0600) under umask 022", len(modes), "files", 0, 0, 0,
                      len(loose), f"modes: { {k: oct(v) for k, v in modes.items()} }"
                      + (f"; readable by others: {loose}" if loose else "")))
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        printed = audit.terminal_output(work)
    leaking = {k: v for k, v in printed.items() if v}
    out.append(Result("fuzz", "CLI never prints raw control characters from stored text", len(printed), "commands",
                      0, 0, 0, len(leaking), f"leaking: {leaking}" if leaking else "every command escapes them"))
    return out


RUNNERS = {"crash": run_crash, "contention": run_contention, "tamper": run_tamper, "fuzz": run_fuzz}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites, print the table (or JSON), exit 0 when everything is ok."""
    parser = argparse.ArgumentParser(prog="torture", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=SUITES + ("all",))
    parser.add_argument("--trials", type=int, default=None, help="crash trials per suite, damaged-page trials")
    parser.add_argument("--quick", action="store_true", help="a small version of everything")
    parser.add_argument("--seconds", type=float, default=None, help="time budget for the whole run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the results as a Markdown table")
    parser.add_argument("--tmp", default=None, help="directory for scratch files (default: the system's)")
    args = parser.parse_args(argv)
    if args.trials is not None and args.trials < 1:
        parser.error("--trials must be at least 1")
    budget = Budget(args.seconds)
    suites = SUITES if args.suite == "all" else (args.suite,)
    started = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="torture-", dir=args.tmp) as tmp:
        for i, name in enumerate(suites):
            if budget.expired():
                print(f"time budget spent: {name} not run", file=sys.stderr)
                continue
            left = sum(SHARE[s] for s in suites[i:])
            share = budget.share(SHARE[name] / left) if len(suites) > 1 else budget
            if not args.json:
                print(f"running {name} ...", file=sys.stderr, flush=True)
            results.extend(RUNNERS[name](args, tmp, share))
    if args.json:
        print(dumps(results))
    elif args.markdown:
        print(format_markdown(results))
    else:
        print(format_table(results))
        print(f"\n{sum(r.ok for r in results)}/{len(results)} ok in {time.monotonic() - started:.0f}s "
              f"on {platform.machine()} {platform.system()}, Python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
