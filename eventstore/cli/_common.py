"""Helpers shared by the CLI modules: opening stores, printing tables, JSON and progress."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
from typing import Any, Callable, Iterable, Iterator, Sequence

import attrs

from ..debug.describe_events import timestamp
from ..errors import FileError, NotFound
from ..store import Store, open as open_store


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum` (positions, limits, counts)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    return parse


def add_db(parser: Any) -> None:
    """Add the positional DB argument."""
    parser.add_argument("db", metavar="DB", help="path of the store file")


PROGRESS_MIN_EVENTS = 50_000
"""Commands that walk the whole log (verify, export) draw a progress display on a terminal
when the log holds more events than this."""


def open_existing(path: str, *, write: bool = False, **kw: Any) -> Store:
    """Open a store file that must already exist (the CLI never creates one by accident).

    Read-only unless `write`: a command that only reads never takes, or waits for, the
    write lock, and works on a read-only copy or a full disk.
    """
    if "://" not in path and not os.path.exists(path):  # a server URL is checked by open()
        raise FileError(path, "no such file")
    return open_store(path, create=False, readonly=not write, **kw)


def require_streams(store: Store, streams: Sequence[str] | None, db: str) -> None:
    """NotFound (exit 2, one line) for a named stream that holds no event."""
    for stream in streams or ():
        if store.stream_version(stream) == 0:
            raise NotFound(f"no stream {printable(stream)!r} in {db}")


def require_session(store: Store, session_id: str, db: str) -> None:
    """NotFound (exit 2, one line) for a session id that was never created (deleted ones exist)."""
    if store.sessions.get(session_id) is None:
        raise NotFound(f"no session {printable(session_id)!r} in {db}")


def printable(text: str) -> str:
    """Escape control characters so that stored text cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


MAX_DEPTH = 64
"""Deeper values print as a marker: stored data may nest far beyond Python's recursion limit."""


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """Convert decoded event data (attrs instances, enums, bytes, tuples) to JSON values.

    Bytes become {"$bytes": base64}, so JSON output never carries raw binary; nesting
    beyond MAX_DEPTH becomes the string "<nested too deeply>".
    """
    if depth > MAX_DEPTH:
        return "<nested too deeply>"
    d = depth + 1
    if attrs.has(type(value)):
        return {f.name: to_jsonable(getattr(value, f.name), d) for f in attrs.fields(type(value))}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, d) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, d) for v in value]
    if hasattr(value, "value") and hasattr(type(value), "__members__"):  # enum
        return to_jsonable(value.value, d)
    return value


def _escape_unprintable(text: str) -> str:
    # json escapes C0 controls itself; format characters (bidi overrides, tags), DEL and
    # C1 controls pass through with ensure_ascii=False and could drive a terminal.
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)


def dumps(value: Any) -> str:
    """One compact JSON line: non-ASCII text kept readable, anything unprintable escaped."""
    return _escape_unprintable(
        json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"), sort_keys=False))


fmt_ms = timestamp
"""A millisecond timestamp as an ISO 8601 UTC string (describe.timestamp)."""


def summarize(value: Any, width: int = 100) -> str:
    """A short one-line rendering of event data, escaped for the terminal."""
    text = printable(dumps(value))
    return text if len(text) <= width else text[: width - 1] + "…"


ID_COLUMNS = frozenset({
    "session", "process", "batch", "input", "id", "key", "scope", "owner scope", "replay key", "stream",
    "subscription", "holder", "holder (incarnation)", "claim owner", "source key", "node", "ref", "blob",
    "projection"})
"""Column names whose cells are identifiers: a terminal table never wraps or cuts them."""

MAX_WORD = 64
"""Longer words in other columns may be folded on a terminal (ids, times and hashes are shorter)."""


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Print rows, escaping every cell: a table (rich) on a terminal, plain lines otherwise.

    Piped or redirected (`eventstore sessions DB | grep ID`), the output is one line per
    row, cells separated by a tab, after a header line (and the title as a `# ` line), so
    that no cell is ever wrapped. On a terminal, identifier columns (ID_COLUMNS) and
    columns of single words never wrap, text columns wrap between words, and a table too
    wide for the terminal is drawn wider (the terminal wraps its lines, ids stay whole).
    """
    cells = [[printable("" if v is None else str(v)) for v in row] for row in rows]
    out = sys.stdout
    if not out.isatty():
        if title:
            out.write(f"# {printable(title)}\n")
        for line in ([printable(c) for c in columns], *cells):
            out.write("\t".join(line) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    needed = 1  # the left border; each column adds its cells' padding and a border
    for i, col in enumerate(columns):
        column = [col] + [row[i] for row in cells if i < len(row)]
        longest_word = max(len(word) for cell in column for word in cell.split() or [""])
        if col in ID_COLUMNS or col.endswith(" id") or all(len(cell.split()) <= 1 for cell in column[1:]):
            # ids, and columns of single words (times, numbers, states, paths): never wrapped
            width = max(len(cell) for cell in column)
            table.add_column(col, no_wrap=True, overflow="ignore", min_width=width)
        else:  # wrapped between words, never inside one (unless a word is absurdly long)
            width = min(longest_word, MAX_WORD)
            table.add_column(col, overflow="fold", min_width=width)
        needed += width + 3
    for row in cells:
        table.add_row(*row)
    console = Console(highlight=False, soft_wrap=False)
    if console.width < needed:
        # Too narrow for whole ids and readable columns: draw it wider and let the terminal
        # wrap the lines (a soft wrap: copying an id still copies it whole).
        console = Console(highlight=False, soft_wrap=False, width=needed)
    console.print(table)


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress bar with rate and ETA on stderr; yields progress(done, total).

    Standard output is left alone: rich would otherwise redirect it into the display,
    and `eventstore export DB > file` would send its lines to the terminal.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class _Rate(TextColumn):
        def render(self, task: Any) -> Any:  # events per second
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} ev/s" if speed else "")

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(""),
        TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        redirect_stdout=False, redirect_stderr=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def print_json_lines(values: Iterable[Any]) -> None:
    """Write each value as one JSON line (`dumps`) to standard output."""
    out = sys.stdout
    for value in values:
        out.write(dumps(value) + "\n")
