"""The storage seam: what the log, the projection engine, the projections and the domains
need from a database, as a `typing.Protocol`. Two backends implement it: SQLite
(`eventstore.storage.sqlite`) and PostgreSQL (`eventstore.storage.postgres`).

The contract, in short (docs/architecture.md, "What a backend provides", says it in full):

* statements with positional `?` parameters: `execute`, `executemany`, `execute_changes`,
  `query`, `iterate`, `one`, `scalar`; driver errors arrive as `eventstore.StoreError`
  subclasses (`StoreBusy`, `CorruptStore`, `IntegrityError`, ...), never raw;
* transactions: `transaction(write=True)` takes the write lock up front (writers queue,
  they do not fail), nests as savepoints, and calls `on_commit` / `on_rollback`;
* a per-transaction memo: `memo()` is a dict that lives for one write transaction and is
  emptied by any rollback, for copies of rows a command read and its appliers update;
* commit notification: `foreign_epoch()` moves whenever another connection committed
  since this one last asked, so caches of the file (log head, projection states) reload;
* the sequence of positions: positions are gap-free and never reused, and
  `highest_position_ever()` says the largest one ever handed out (truncation check);
* the file's identity: `read_stamp()` and `write_stamp()` (application id, layout version);
* statement tracing: `trace(callback)` sees every statement (tests pin statement counts);
* integrity: `integrity_problems()` is the engine's own check of its files;
* scratch databases and the swap for rebuild: `open_scratch(path)` makes a disposable
  database; `attach` / `detach` let one statement copy a scratch's tables into the live
  file inside one transaction; `table_names` and `table_columns` describe tables.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Iterable, Iterator, Protocol, Sequence, TypeVar

from ..errors import StoreError

__all__ = ["Params", "Storage"]

Params = Sequence[Any] | dict[str, Any]
"""Statement parameters: a sequence for `?` placeholders (a dict for named ones)."""


T = TypeVar("T")


class Storage(Protocol):
    """One connection to a store's database: statements, transactions and the rest of the seam."""

    path: str
    dialect: str
    """The engine's name ("sqlite", "postgresql"): picks the few statements written per engine
    (the raw reads of stored rows in `eventstore.logverify`)."""
    synchronous: str
    busy_timeout_ms: int
    serial: int
    """Counts outermost transactions begun on this connection."""
    depth: int
    """How many transaction levels (the transaction and its savepoints) are open."""
    command: int
    """Counts commands: outermost transactions, and the commands that join a group commit
    (the log's command marks follow it)."""
    write_serial: int
    """Counts outermost write transactions begun on this connection."""
    on_commit: list[Callable[[], None]]
    """Callbacks run after each outermost COMMIT succeeds."""
    on_rollback: list[Callable[[], None]]
    """Callbacks run after any rollback (outermost or to a savepoint)."""
    command_mark: tuple[int, int] | None
    """(thread id, transaction depth) of the innermost domain command (StoreContext.command)."""
    readonly: bool
    """Opened read-only: never writes, never takes the write lock; writes raise ReadOnlyStore."""

    # --- statements ---------------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> None:
        """Run one statement (several separated by ';' when params is empty)."""

    def execute_changes(self, sql: str, params: Params = ()) -> int:
        """Run one write statement and return how many rows it changed."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """All rows of a query."""

    def iterate(self, sql: str, params: Params = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, lazily."""

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""

    def scalar(self, sql: str, params: Params = (), default: Any = None) -> Any:
        """The first column of the first row, or `default`."""

    def changes(self) -> int:
        """Rows changed by the last statement."""

    # --- transactions and commit notification ---------------------------------------

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call `callback(sql)` before each statement the connection runs (None: stop)."""

    def transaction(self, write: bool = True) -> ContextManager[Any]:
        """A write (lock taken up front) or read transaction; a savepoint when nested."""

    def write(self, fn: Callable[[], T]) -> T:
        """Run `fn` (database work only) as one command, sharing a transaction with the
        commands of other threads waiting at the same moment (group commit); its result
        once that transaction is durable. A savepoint inside this thread's transaction.
        `fn` decides what it writes from what it reads: it may be rolled back and run again."""

    @property
    def in_transaction(self) -> bool:
        """True while the calling thread is inside a transaction of this object."""

    def foreign_epoch(self) -> int:
        """Inside a transaction: a number that moves whenever another connection committed."""

    def memo(self) -> dict[Any, Any] | None:
        """The current write transaction's memo (None outside one): emptied when the
        transaction ends and on every rollback, savepoints included."""

    def data_version(self) -> int:
        """A counter that changes whenever any connection commits (read inside a transaction)."""

    # --- identity, positions, integrity ------------------------------------------------

    def read_stamp(self) -> tuple[int, int, int]:
        """(application id, layout version, number of schema objects) of the database."""

    def write_stamp(self, application_id: int | None, version: int) -> None:
        """Record the application id (None: leave it) and the layout version."""

    def highest_position_ever(self, table: str) -> int | None:
        """The largest autoincrement key `table` ever handed out, or None when unknown."""

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """The database engine's own integrity check: an empty list when sound."""

    # --- tables, scratch databases and the rebuild swap ----------------------------------

    def table_names(self, schema: str = "main") -> set[str]:
        """Names of the tables in the main database or an attached one."""

    def table_columns(self, table: str) -> list[str]:
        """Column names of `table`, in order."""

    def table_primary_key(self, table: str) -> list[str]:
        """The primary key columns of `table` in key order (all columns when it has none)."""

    def storage_bytes(self) -> int:
        """Bytes the database occupies (for scratch and cached snapshots)."""

    def open_scratch(self, path: str) -> Storage:
        """A disposable database at `path` (":memory:" for one in memory): no durability."""

    def attach(self, path: str, alias: str) -> None:
        """Make another database's tables readable as `alias.<table>` (outside transactions)."""

    def detach(self, alias: str) -> None:
        """Undo attach()."""

    def enable_wal(self) -> None:
        """Switch the file to its concurrent-readers mode (WAL for SQLite)."""

    def close(self) -> None:
        """Close the connection; later calls raise StoreClosed."""

    @property
    def closed(self) -> bool:
        """True after close()."""

    def readonly_error(self, what: str) -> StoreError:
        """The typed error (ReadOnlyStore) for a write attempted through a read-only connection."""

    def is_constraint_error(self, exc: BaseException) -> bool:
        """True when `exc` is a unique-key (or other constraint) violation."""
