"""Time travel that replays a projection only when something reads it.

`store.at(position, streams)` hands out a view whose database is a `LazyReplay`: an
in-memory database that starts empty. The first statement that names one of a
projection's tables replays that projection (and any other the statement names) up to
the position, through the same engine and appliers as an eager replay, then runs.
A reader of one session's head therefore pays for the graph projection's events only,
not for the queue, the inputs, the leases and the rest.

Why it gives the same rows as replaying everything at once: projections are
independent (an applier reads and writes its own projection's tables only, which is
also what lets `rebuild` and catch-up work on one projection at a time), and each one
sees the same events in the same order either way.

What triggers a replay, so that no reader ever sees a table before its rows are in:

* a statement (execute, query, one, ...) whose text names a pending table, as a whole
  word and in any case: a false match (a table name inside a string literal) only
  replays early;
* `projection_state`, `table_columns` of a pending table, and any other method of the
  storage seam (table listings, sizes, attach, ...): everything pending is replayed
  first, in one pass.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from eventstore.storage import Storage as Database

from projections.base import Projection

if TYPE_CHECKING:
    from projections.engine import ProjectionEngine

STATE_TABLE = "projection_state"


class LazyReplay:
    """A Storage over an in-memory database whose projections are replayed on first use."""

    def __init__(self, engine: "ProjectionEngine", mem: Database, targets: Sequence[Projection],
                 to_position: int | None, streams: Sequence[str] | None) -> None:
        self._engine = engine
        self._mem = mem
        self._to_position = to_position
        self._streams = list(streams) if streams else None
        self._targets = list(targets)
        self._pending: dict[str, Projection] = {p.name: p for p in targets}
        self._owner: dict[str, str] = {t.lower(): p.name for p in targets for t in p.tables}
        self._owner[STATE_TABLE] = ""  # "": every projection (its rows say where each one stands)
        names = sorted(self._owner, key=len, reverse=True)
        self._pattern: re.Pattern[str] | None = re.compile(
            r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
        self._position = 0
        self._lock = threading.Lock()  # two threads reading one view replay a projection once

    # --- replaying ------------------------------------------------------------------------

    @property
    def pending(self) -> tuple[str, ...]:
        """The projections not replayed yet."""
        return tuple(self._pending)

    def materialize(self, names: Iterable[str] | None = None) -> None:
        """Replay the named projections (all pending ones when None) now."""
        with self._lock:
            wanted = list(self._pending) if names is None else [n for n in names if n in self._pending]
            if wanted:
                self._replay(wanted)

    def _replay(self, wanted: list[str]) -> None:
        targets = [self._pending[n] for n in wanted]
        # One pass for all of them; removed from `pending` only once their rows are in,
        # so a replay that fails (a damaged event) fails again on the next read.
        self._position = self._engine.replay_into(self._mem, targets, self._to_position, self._streams)
        for n in wanted:
            del self._pending[n]
        if not self._pending:
            self._pattern = None
            with self._mem.transaction():
                for p in self._targets:
                    self._mem.execute("INSERT INTO projection_state VALUES (?, ?, ?)",
                                      (p.name, p.version, self._position))

    def _need(self, sql: str) -> None:
        pattern = self._pattern
        if pattern is None:
            return
        owners = {self._owner[m.lower()] for m in pattern.findall(sql)}
        if not owners:
            return
        self.materialize(None if "" in owners else owners)

    # --- the statements of the storage seam ---------------------------------------------------

    def execute(self, sql: str, params: Any = ()) -> None:
        """Run one statement (replaying what it names first)."""
        self._need(sql)
        self._mem.execute(sql, params)

    def execute_changes(self, sql: str, params: Any = ()) -> int:
        """Run one write statement; how many rows it changed."""
        self._need(sql)
        return self._mem.execute_changes(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        self._need(sql)
        self._mem.executemany(sql, rows)

    def query(self, sql: str, params: Any = ()) -> list[tuple]:
        """All rows of a query."""
        self._need(sql)
        return self._mem.query(sql, params)

    def iterate(self, sql: str, params: Any = ()) -> Iterator[tuple]:
        """The rows of a query, lazily."""
        self._need(sql)
        return self._mem.iterate(sql, params)

    def one(self, sql: str, params: Any = ()) -> tuple | None:
        """The first row of a query, or None."""
        self._need(sql)
        return self._mem.one(sql, params)

    def scalar(self, sql: str, params: Any = (), default: Any = None) -> Any:
        """The first column of the first row, or `default`."""
        self._need(sql)
        return self._mem.scalar(sql, params, default)

    def table_columns(self, table: str) -> list[str]:
        """A table's column names (replaying its projection first)."""
        self._need(table)
        return self._mem.table_columns(table)

    def table_primary_key(self, table: str) -> list[str]:
        """A table's primary key columns (replaying its projection first)."""
        self._need(table)
        return self._mem.table_primary_key(table)

    def memo(self) -> None:
        """No write transaction's memo: a view is read-only."""
        return None

    def close(self) -> None:
        """Free the in-memory database (nothing is replayed)."""
        self._pending.clear()
        self._pattern = None
        self._mem.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._mem.closed

    def __getattr__(self, name: str) -> Any:
        # Anything else of the seam (table listings, sizes, attach, ...) may look at every
        # table: replay everything pending first. Transactions and settings say nothing of
        # the rows, so they pass straight through (reads open a read transaction first).
        mem = self.__dict__.get("_mem")
        if mem is None or name.startswith("__"):
            raise AttributeError(name)
        if name not in _PASSTHROUGH:
            self.materialize()
        return getattr(mem, name)


_PASSTHROUGH = frozenset({
    "transaction", "in_transaction", "path", "readonly", "dialect", "synchronous", "busy_timeout_ms",
    "trace", "foreign_epoch", "data_version", "on_rollback", "translate", "readonly_error",
    "is_constraint_error",
})
