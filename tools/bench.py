#!/usr/bin/env python
"""Benchmark harness: run tools/benches/*.py and print (or record) their tables.

    python tools/bench.py [--quick] [--only NAME ...] [--write-docs] [--tmp DIR]

Each module in tools/benches/ whose name does not start with "_" defines `TITLE` and
`run(workdir, quick) -> list[dict]`; every row is a dict with "work", "value", "unit",
"reference", "reference_name", "note" and optionally "target" ("ratio >= 0.5",
"value >= 200000", "value <= 32"). The harness runs each module in a fresh temporary
directory, computes ratio = value / reference and whether each target is met, prints one
table per module and the machine, and with --write-docs rewrites the generated part of
docs/benchmarks.md (between <!-- bench:begin --> and <!-- bench:end -->), one section
per module, leaving everything outside the markers as it was.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import os
import platform
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs

TOOLS = Path(__file__).resolve().parent
BENCH_DIR = TOOLS / "benches"
DOCS = TOOLS.parent / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
_MODULE_RE = re.compile(r"<!-- bench:module (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- bench:module-end (?P=name) -->\n?",
                        re.S)
_TARGET_RE = re.compile(r"^\s*(ratio|value)\s*(>=|<=)\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*$")
FIRST = "core"
"""The module listed first (the others follow in name order)."""


class BenchError(Exception):
    """A benchmark module or row breaks the interface; the message names which and why."""


# --- modules -------------------------------------------------------------------------


@attrs.frozen
class BenchModule:
    """A discovered benchmark module."""

    name: str
    title: str
    run: Callable[[str, bool], list[dict]]
    path: str


def module_names(directory: Path = BENCH_DIR) -> list[str]:
    """The benchmark modules in `directory` (files *.py not starting with "_"), core first."""
    names = [p.stem for p in Path(directory).glob("*.py") if not p.name.startswith("_")]
    return sorted(names, key=lambda n: (n != FIRST, n))


def load_module(name: str, directory: Path = BENCH_DIR) -> BenchModule:
    """Import one benchmark module and check that it has TITLE and run()."""
    directory = Path(directory).resolve()
    path = directory / f"{name}.py"
    if not path.is_file():
        raise BenchError(f"no benchmark module {name!r} in {directory} (have: {', '.join(module_names(directory))})")
    if (directory / "__init__.py").is_file():
        # Imported as <package>.<name> so that the module can be found again by name
        # (the eventsourcing library resolves event classes through their module).
        if str(directory.parent) not in sys.path:
            sys.path.insert(0, str(directory.parent))
        qualified = f"{directory.name}.{name}"
    else:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
        qualified = name
    try:
        mod = importlib.import_module(qualified)
    except Exception as exc:
        raise BenchError(f"{path}: import failed: {type(exc).__name__}: {exc}") from exc
    title = getattr(mod, "TITLE", None)
    run = getattr(mod, "run", None)
    if not isinstance(title, str) or not title:
        raise BenchError(f"{path}: TITLE must be a non-empty string")
    if not callable(run):
        raise BenchError(f"{path}: run(workdir, quick) is missing")
    return BenchModule(name, title, run, str(path))


# --- rows, ratios, targets ---------------------------------------------------------------


@attrs.frozen
class Target:
    """A goal for one row: `on` is "ratio" or "value", `op` ">=" or "<=", `limit` the bound."""

    on: str
    op: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> "Target":
        """Parse 'ratio >= 0.5' or 'value <= 32'; BenchError on anything else."""
        m = _TARGET_RE.match(text) if isinstance(text, str) else None
        if m is None:
            raise BenchError(f"target {text!r} must look like 'ratio >= 0.5' or 'value <= 32'")
        return cls(m.group(1), m.group(2), float(m.group(3).replace("_", "")))

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        """True or False from the measured figures; None when the figure is missing."""
        x = ratio if self.on == "ratio" else value
        if x is None:
            return None
        return x >= self.limit if self.op == ">=" else x <= self.limit

    def __str__(self) -> str:
        limit = format_number(self.limit)
        return f"{self.on} {self.op} {limit}{'x' if self.on == 'ratio' else ''}"


@attrs.frozen
class Row:
    """One measured row, checked against the interface."""

    work: str
    value: float | None
    unit: str = ""
    reference: float | None = None
    reference_name: str = ""
    note: str = ""
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        """value / reference, or None when either is missing (or the reference is 0)."""
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def met(self) -> bool | None:
        """Whether the row's target is met (None: no target, or nothing measured)."""
        return None if self.target is None else self.target.met(self.value, self.ratio)


def _number(x: Any, what: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise BenchError(f"{what} must be a number or None, got {x!r}")
    return float(x)


def make_row(raw: dict, where: str) -> Row:
    """Check one row dict returned by a module and turn it into a Row."""
    if not isinstance(raw, dict):
        raise BenchError(f"{where}: a row must be a dict, got {type(raw).__name__}")
    if not isinstance(raw.get("work"), str) or not raw["work"]:
        raise BenchError(f"{where}: 'work' must be a non-empty string")
    if "value" not in raw:
        raise BenchError(f"{where} ({raw['work']}): 'value' is missing")
    target = raw.get("target")
    return Row(
        work=raw["work"],
        value=_number(raw["value"], f"{where} ({raw['work']}): value"),
        unit=str(raw.get("unit") or ""),
        reference=_number(raw.get("reference"), f"{where} ({raw['work']}): reference"),
        reference_name=str(raw.get("reference_name") or ""),
        note=str(raw.get("note") or ""),
        target=Target.parse(target) if target else None,
    )


def format_number(x: float | None) -> str:
    """Figures for people: thousands separators for big ones, 2-3 significant digits for small."""
    if x is None:
        return "—"
    ax = abs(x)
    if ax >= 100 or (x == int(x) and ax < 1e15):
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def format_ratio(r: float | None) -> str:
    """A ratio as '0.53x' ('' when there is none)."""
    return "" if r is None else f"{r:.2f}x"


def format_target(row: Row) -> str:
    """'ratio >= 0.5x: met' / 'NOT met' / 'not measured'; '' without a target."""
    if row.target is None:
        return ""
    met = row.met
    verdict = "not measured" if met is None else ("met" if met else "NOT met")
    return f"{row.target}: {verdict}"


@attrs.frozen
class ModuleResult:
    """What running one module produced."""

    name: str
    title: str
    rows: tuple[Row, ...]
    seconds: float
    quick: bool
    date: str
    error: str | None = None


def run_module(module: BenchModule, quick: bool, tmp_parent: str | None = None) -> ModuleResult:
    """Run one module in a fresh temporary directory (also the working directory), then remove it."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    workdir = tempfile.mkdtemp(prefix=f"bench-{module.name}-", dir=tmp_parent)
    cwd = os.getcwd()
    started = time.perf_counter()
    try:
        os.chdir(workdir)
        raw_rows = module.run(workdir, quick)
        if not isinstance(raw_rows, (list, tuple)):
            raise BenchError(f"{module.path}: run() must return a list of row dicts")
        rows = tuple(make_row(r, f"{module.name} row {i + 1}") for i, r in enumerate(raw_rows))
        error = None
    except Exception as exc:
        rows = ()
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        os.chdir(cwd)
        shutil.rmtree(workdir, ignore_errors=True)
    return ModuleResult(module.name, module.title, rows, time.perf_counter() - started, quick, date, error)


# --- the machine ---------------------------------------------------------------------------


@attrs.frozen
class Machine:
    """Where the figures were measured."""

    cpu: str
    cores: int
    python: str
    sqlite: str
    apsw: str
    filesystem: str
    fsync_ms: float | None
    system: str
    date: str

    def items(self) -> list[tuple[str, str]]:
        """(label, text) pairs in display order."""
        fsync = "" if self.fsync_ms is None else f"; fsync of a 4 KiB write: {self.fsync_ms:.2f} ms (median of 30)"
        return [("CPU", f"{self.cpu}, {self.cores} cores"), ("Python", self.python),
                ("SQLite", self.sqlite), ("apsw", self.apsw), ("filesystem", self.filesystem + fsync),
                ("system", self.system), ("date", self.date)]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _filesystem(path: str) -> str:
    """The filesystem type and device of the mount holding `path` (Linux), or 'unknown'."""
    path = os.path.realpath(path)
    best = ("", "unknown", "")
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                device, mount, fstype = line.split()[:3]
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best[0]):
                    best = (mount, fstype, device)
    except OSError:
        return "unknown"
    return f"{best[1]} ({best[2]} on {best[0]})" if best[0] else "unknown"


def _fsync_ms(directory: str, n: int = 30) -> float | None:
    """Median time to write 4 KiB and fsync it, in ms: what one durable commit costs here."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            for i in range(n):
                os.pwrite(fd, os.urandom(4096), i * 4096)
                started = time.perf_counter()
                os.fsync(fd)
                times.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)
            os.unlink(path)
    except OSError:
        return None
    return statistics.median(times)


def machine(tmp_parent: str | None = None) -> Machine:
    """Describe this machine: CPU, cores, Python, SQLite/apsw versions, filesystem, date."""
    try:
        import apsw

        apsw_text = f"{apsw.apsw_version()} (bundles SQLite {apsw.sqlite_lib_version()})"
        sqlite_text = f"{apsw.sqlite_lib_version()} through apsw; stdlib sqlite3 links {sqlite3.sqlite_version}"
    except ImportError:
        apsw_text = "not installed"
        sqlite_text = f"stdlib sqlite3 links {sqlite3.sqlite_version}"
    probe_dir = tempfile.mkdtemp(prefix="bench-probe-", dir=tmp_parent)
    try:
        fs = _filesystem(probe_dir)
        fsync = _fsync_ms(probe_dir)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    return Machine(
        cpu=_cpu_model(), cores=os.cpu_count() or 0,
        python=f"{platform.python_version()} ({platform.python_implementation()})",
        sqlite=sqlite_text, apsw=apsw_text, filesystem=fs, fsync_ms=fsync,
        system=f"{platform.system()} {platform.release()}",
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


# --- output ----------------------------------------------------------------------------------

COLUMNS = ("work", "value", "unit", "reference", "ratio", "target", "note")


def table_cells(row: Row) -> list[str]:
    """The printed cells of one row, in COLUMNS order."""
    ref = ""
    if row.reference is not None:
        ref = format_number(row.reference) + (f" ({row.reference_name})" if row.reference_name else "")
    return [row.work, format_number(row.value), row.unit, ref, format_ratio(row.ratio), format_target(row), row.note]


def _md(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def module_markdown(result: ModuleResult) -> str:
    """The docs section of one module: heading, how it ran, and its table."""
    mode = "quick run (reduced sizes)" if result.quick else "full run"
    lines = [f"### {result.title}", "", f"`{result.name}`: {mode}, {result.date}, {result.seconds:.0f} s.", ""]
    if result.error:
        lines += [f"The module failed: {_md(result.error)}", ""]
    else:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_md(c) for c in table_cells(r)) + " |" for r in result.rows]
        lines.append("")
    return "\n".join(lines)


def machine_markdown(m: Machine) -> str:
    """The machine as a two-column markdown table."""
    lines = ["### Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_md(v)} |" for k, v in m.items()]
    return "\n".join(lines) + "\n"


def update_docs(text: str, results: Sequence[ModuleResult], m: Machine) -> str:
    """Rewrite the generated block of docs/benchmarks.md.

    Text outside the markers is kept byte for byte. Inside, the machine is replaced and
    each module that ran gets its own section (replacing its previous one); sections of
    modules that did not run this time, or that failed, stay as they were.
    """
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        head, rest = text.split(BEGIN, 1)
        inner, tail = rest.split(END, 1)
    else:
        head, inner, tail = text.rstrip("\n") + "\n\n", "", "\n"
    sections = {mt.group("name"): mt.group(0) for mt in _MODULE_RE.finditer(inner)}
    for r in results:
        if r.error is None or r.name not in sections:
            sections[r.name] = f"<!-- bench:module {r.name} -->\n{module_markdown(r)}<!-- bench:module-end {r.name} -->\n"
    ordered = sorted(sections, key=lambda n: (n != FIRST, n))
    body = [BEGIN, "<!-- generated by `python tools/bench.py --write-docs`: edit outside the markers only -->", "",
            machine_markdown(m).rstrip("\n")] + ["\n".join(["", sections[n].rstrip("\n")]) for n in ordered]
    return head + "\n".join(body) + "\n" + END + tail


def print_results(results: Sequence[ModuleResult], m: Machine) -> None:
    """Print the machine and one rich table per module."""
    from rich.console import Console
    from rich.table import Table

    # Not a terminal (a log file, CI): wide enough that each row stays on one line.
    console = Console() if sys.stdout.isatty() else Console(width=150)
    mt = Table(title="Machine", show_header=False)
    mt.add_column(style="bold")
    mt.add_column()
    for k, v in m.items():
        mt.add_row(k, v)
    console.print(mt)
    for r in results:
        mode = "quick" if r.quick else "full"
        if r.error:
            console.print(f"[red]{r.title} ({r.name}): failed after {r.seconds:.0f} s: {r.error}[/red]")
            continue
        # Notes are long: they go under the table, keyed by row number, so that the
        # figures stay on one line each even in an 80-column terminal.
        t = Table(title=f"{r.title} ({mode} run, {r.seconds:.0f} s)")
        t.add_column("#", justify="right")
        for col in COLUMNS[:-1]:
            t.add_column(col, justify="right" if col in ("value", "ratio") else "left", overflow="fold")
        notes = []
        for i, row in enumerate(r.rows, 1):
            cells = table_cells(row)[:-1]
            if row.met is not None:
                cells[5] = f"[{'green' if row.met else 'red'}]{cells[5]}[/]"
            t.add_row(str(i), *cells)
            if row.note:
                notes.append(f"  {i}. {row.note}")
        console.print(t)
        if notes:
            console.print("\n".join(notes), highlight=False, markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 when a module failed)."""
    parser = argparse.ArgumentParser(description="Run the benchmarks in tools/benches/ and print their tables.")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (a smoke run, seconds not minutes)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this module (repeatable)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the generated part of docs/benchmarks.md")
    parser.add_argument("--tmp", metavar="DIR", help="where to create the temporary working directories")
    parser.add_argument("--docs", metavar="FILE", default=str(DOCS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = module_names(BENCH_DIR)
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            parser.error(f"no benchmark module named {', '.join(unknown)} (have: {', '.join(names)})")
        names = [n for n in names if n in args.only]
    m = machine(args.tmp)
    results = []
    for name in names:
        print(f"running {name}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        try:
            module = load_module(name, BENCH_DIR)
        except BenchError as exc:
            results.append(ModuleResult(name, name, (), 0.0, args.quick, m.date, str(exc)))
            continue
        results.append(run_module(module, args.quick, args.tmp))
    print_results(results, m)
    if args.write_docs:
        path = Path(args.docs)
        old = path.read_text() if path.exists() else "# Benchmarks\n"
        path.write_text(update_docs(old, results, m))
        print(f"wrote {path}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
