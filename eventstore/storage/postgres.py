"""The PostgreSQL backend of the storage seam (`eventstore.storage.Storage`), over psycopg 3.

A store is one schema of a PostgreSQL database: `postgresql://host/db?schema=name` (the
`schema` parameter is ours and is removed before psycopg sees the DSN; the default schema
is `eventstore`). Every statement the log, the engine and the projections write in SQLite's
dialect passes through `translate()`: `?` and `?N` placeholders become psycopg's `%s`, and
the three SQLite forms the projections keep on purpose are mapped: table definitions (types
and the WITHOUT ROWID storage option), the planner hint `INDEXED BY` (dropped) and `GLOB`
with a literal pattern (LIKE). Upserts, conditional counts and the like are written in SQL
both engines run. See docs/architecture.md, "The SQL the store writes".

Transactions (why they look like this; docs/postgres.md, "Positions", says it in full):
* A write transaction is READ COMMITTED and its first statement takes the store's
  transaction-scoped advisory lock. Every later statement takes a fresh snapshot, so the
  head the log reads after the lock includes every commit made before the lock was
  granted. (Under REPEATABLE READ the snapshot would predate the lock: the head could be
  stale.) The lock is released by COMMIT after the commit is visible, so the next writer
  chains to it, and positions become visible in commit order, without gaps.
* A read transaction is REPEATABLE READ, READ ONLY: one snapshot for all its reads, and a
  write attempted inside it (which would not hold the lock) fails instead of forking the chain.
* Nested transactions are savepoints, as on SQLite.
"""

from __future__ import annotations

import hashlib
import re
import threading
import urllib.parse
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import psycopg
import psycopg.errors
from psycopg.adapt import Dumper
from psycopg.pq import Format

from ..errors import IntegrityError, InvalidArgument, ReadOnlyStore, StoreBusy, StoreClosed, StoreError

__all__ = ["DEFAULT_SCHEMA", "PORTED_PROJECTIONS", "PostgresDatabase", "is_postgres_url", "parse_url", "translate"]

DEFAULT_SCHEMA = "eventstore"
T = TypeVar("T")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def is_postgres_url(path: str) -> bool:
    """True when `path` names a PostgreSQL store rather than a SQLite file."""
    return path.startswith(("postgresql://", "postgres://"))


def parse_url(url: str) -> tuple[str, str]:
    """(DSN for psycopg, schema name) from a store URL; InvalidArgument for a bad schema."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidArgument(f"{url}: schema must be a lower-case SQL name ([a-z_][a-z0-9_]*, "
                              f"at most 63 characters), got {schema!r}")
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), schema


def lock_key(schema: str) -> int:
    """The advisory lock key of a store: 64 bits of a hash of its schema name.

    Two schemas whose keys collide only serialise their writers together; nothing breaks.
    """
    digest = hashlib.sha256(b"lash-eventstore:" + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# --- SQL translation ------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?(\d*)|%")
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE", re.I)
_GLOB = re.compile(r"\bGLOB\s+'([^']*)'", re.I)


def _ddl(stmt: str) -> str:
    """One SQLite CREATE TABLE in PostgreSQL's types: 64-bit integers, bytea, byte-order text."""
    stmt = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", "BIGINT PRIMARY KEY", stmt, flags=re.I)
    stmt = re.sub(r"\bINTEGER\b", "BIGINT", stmt, flags=re.I)
    stmt = re.sub(r"\bBLOB\b", "BYTEA", stmt, flags=re.I)
    # SQLite compares text by its bytes; "C" gives PostgreSQL the same order (prefix range
    # scans and the projections' ORDER BY agree across backends).
    stmt = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', stmt, flags=re.I)
    stmt = re.sub(r"\bvalue\s+ANY\b", "value BYTEA", stmt, flags=re.I)
    return re.sub(r"\)\s*WITHOUT\s+ROWID", ")", stmt, flags=re.I)


def translate(sql: str) -> tuple[str, list[int] | None]:
    """The store's SQL as PostgreSQL SQL, and the order of its parameters.

    Returns (sql, order): `order[i]` is the index in the caller's parameters of the i-th
    `%s` (None when they are in order). Besides placeholders, only three SQLite forms are
    mapped: table definitions (`_ddl`), the planner hint `INDEXED BY` (dropped) and `GLOB`
    with a literal pattern (LIKE); everything else is written portably by its callers.
    """
    statements = []
    for stmt in _split(sql):
        if _CREATE_TABLE.match(stmt):
            stmt = _ddl(stmt)
        stmt = re.sub(r"\s+INDEXED\s+BY\s+\w+", "", stmt, flags=re.I)
        stmt = _GLOB.sub(lambda m: "LIKE '" + m.group(1).replace("*", "%") + "'", stmt)
        statements.append(stmt)
    text = ";\n".join(statements)
    order: list[int] = []
    numbered = False

    def sub(m: re.Match[str]) -> str:
        nonlocal numbered
        token = m.group(0)
        if token == "%":
            return "%%"
        if token.startswith("'"):
            return token.replace("%", "%%")
        if m.group(1):
            numbered = True
            order.append(int(m.group(1)) - 1)
        else:
            order.append(len(order))
        return "%s"

    escaped = _PLACEHOLDER.sub(sub, text)
    if not order:  # no parameters: psycopg sends the text as it is (several statements allowed)
        return text, None
    return escaped, (order if numbered else None)


_PLAIN_INSERT = re.compile(r"^(INSERT INTO \w+ VALUES)\s*(\((?:%s\s*,\s*)*%s\))( ON CONFLICT DO NOTHING)?$")


def _split(sql: str) -> list[str]:
    """Statements of a script (our own DDL: no ';' inside literals)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


class _IntForBool(Dumper):
    """Python bools as integers, as SQLite stores them (projection columns are integers)."""

    format = Format.TEXT
    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _translate_error(exc: BaseException, what: str) -> StoreError:
    """A psycopg error as the store's typed error."""
    if isinstance(exc, psycopg.errors.IntegrityError):
        return IntegrityError(f"{what}: {exc}".strip())
    if isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected,
                        psycopg.errors.QueryCanceled, psycopg.errors.SerializationFailure)):
        return StoreBusy(f"{what}: the store's write lock stayed taken past the busy timeout ({exc})")
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StoreError(f"{what}: a write inside a read transaction (open a write transaction)")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(f"{what}: the PostgreSQL connection failed ({exc})".strip())
    return StoreError(f"{what}: {type(exc).__name__}: {exc}".strip())


def _what(sql: str) -> str:
    return " ".join(sql.split()[:3])


class _Transaction:
    """Context manager returned by PostgresDatabase.transaction(); see the module docstring."""

    __slots__ = ("db", "write", "name")

    def __init__(self, db: "PostgresDatabase", write: bool) -> None:
        self.db = db
        self.write = write
        self.name = ""

    def __enter__(self) -> "PostgresDatabase":
        db = self.db
        conn = db._live()
        if self.write and db.readonly:
            raise db.readonly_error("a write transaction")
        db.lock.acquire()
        try:
            if db.depth == 0:
                db._txn_clock = None
                if self.write:
                    # One round trip: BEGIN, the lock, and the commit clock. The clock (and the
                    # head, later) are read by statements after the lock: each takes a fresh
                    # READ COMMITTED snapshot, which includes the previous writer's commit.
                    begin = f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({db.lock_key})"
                    if db._clock:
                        cur = conn.execute(begin + "; SELECT last_xact, txid_current() FROM log_clock")
                        cur.nextset()
                        cur.nextset()
                        db._txn_clock = cur.fetchone()
                    else:
                        conn.execute(begin)
                    if not db._schema_ready:
                        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {db.schema}")
                else:
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                db.serial += 1
                db.command += 1
                db.write_serial += self.write
                db._owner = threading.get_ident()
                db._write = self.write
            else:
                self.name = f"sp{db.depth}"
                conn.execute(f"SAVEPOINT {self.name}")
        except psycopg.Error as exc:
            self._abort(conn)
            db.lock.release()
            raise _translate_error(exc, "begin transaction") from None
        except BaseException:
            self._abort(conn)
            db.lock.release()
            raise
        db.depth += 1
        return db

    def _abort(self, conn: psycopg.Connection[Any]) -> None:
        if self.db.depth == 0 and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        db = self.db
        conn = db._live()
        try:
            db.depth -= 1
            if self.name:
                if exc_type is None:
                    conn.execute(f"RELEASE SAVEPOINT {self.name}")
                else:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {self.name}")
                    conn.execute(f"RELEASE SAVEPOINT {self.name}")
                    db._notify(db.on_rollback)
                return
            if exc_type is not None:
                db._known = ()
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                db._notify(db.on_rollback)
                return
            try:
                conn.execute("COMMIT")
            except psycopg.Error as err:
                db._known = ()
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                db._notify(db.on_rollback)
                raise _translate_error(err, "commit") from None
            if self.write:
                db._schema_ready = True
                # Nobody else wrote while we held the lock: the clock now holds either the
                # value we read (we changed nothing it watches) or our own transaction id.
                # Those values mean "nothing foreign" next time only if the value we read was
                # itself accounted for: compared by foreign_epoch() in this transaction (which
                # moved the epoch if it was foreign), or already known. Otherwise another
                # writer's change is not reflected in the epoch yet: forget, so it moves.
                clock = db._txn_clock
                if clock is not None and (db._epoch_serial == db.serial or clock[0] in db._known):
                    db._known = tuple(clock)
                else:
                    db._known = ()
            if db.on_commit:
                db._notify(db.on_commit)
        except psycopg.Error as err:
            raise _translate_error(err, "end transaction") from None
        finally:
            db.lock.release()


class PostgresDatabase:
    """One PostgreSQL connection on one store's schema, with the store's transaction rules."""

    dialect = "postgresql"

    def __init__(self, url: str, *, synchronous: str = "full", busy_timeout_ms: int = 15_000,
                 readonly: bool = False) -> None:
        dsn, schema = parse_url(url)
        self.path = url
        self.schema = schema
        self.lock_key = lock_key(schema)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.depth = 0
        self.serial = 0
        self.write_serial = 0
        """Counts outermost write transactions begun on this connection."""
        self.command = 0
        """Counts commands (here: outermost transactions; no group commit on this backend yet)."""
        self._owner = 0
        self.readonly = readonly
        """Opened with readonly=True: every transaction is READ ONLY, writes raise ReadOnlyStore."""
        self.lock = threading.RLock()
        self.on_commit: list[Callable[[], None]] = []
        self.on_rollback: list[Callable[[], None]] = []
        self._epoch = 0
        self._epoch_serial = -1
        self._write = False
        self._schema_ready = False
        self._sql: dict[str, tuple[str, list[int] | None]] = {}
        self._clock = False
        """True once the store's commit clock (log_clock and its triggers) is known to exist."""
        self._txn_clock: tuple[int, int] | None = None
        """(clock value, our transaction id) read when the current write transaction began."""
        self._known: tuple[int, ...] = ()
        """Clock values that mean "no other writer since our last write transaction"."""
        self._rowcount = 0
        self.command_mark: tuple[int, int] | None = None
        """(thread id, depth) of the innermost domain command's transaction level (see the Storage protocol)."""
        self._memo: dict[Any, Any] = {}
        self._memo_serial = -1
        # A rollback (to a savepoint too) may undo rows a memo entry describes: forget them all.
        self.on_rollback.append(self._memo.clear)
        self._tracer: Callable[[str], None] | None = None
        try:
            self._conn: psycopg.Connection[Any] | None = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"{url}: cannot connect to PostgreSQL ({str(exc).strip()})") from None
        self._conn.adapters.register_dumper(bool, _IntForBool)
        # "normal" keeps SQLite's meaning: a crash of the server may lose the newest commits,
        # never half of one (PostgreSQL's asynchronous commit).
        sync = "on" if synchronous == "full" else "off"
        self._conn.execute(f"SET search_path TO {schema}; SET synchronous_commit TO {sync}; "
                           f"SET lock_timeout TO {int(busy_timeout_ms)}")
        if readonly:  # the server refuses every write of this session, statements outside transactions too
            self._conn.execute("SET default_transaction_read_only TO on")

    # --- statements --------------------------------------------------------------------

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise StoreClosed("the store is closed")
        return self._conn

    def _prepare(self, sql: str, params: Any) -> tuple[str, Any]:
        hit = self._sql.get(sql)
        if hit is None:
            hit = self._sql[sql] = translate(sql)
        text, order = hit
        if order is not None:
            params = [params[i] for i in order]
        return text, params

    def _run(self, sql: str, params: Any) -> psycopg.Cursor[Any]:
        text, params = self._prepare(sql, params)
        conn = self._live()
        if self._tracer is not None:
            self._tracer(sql)
        try:
            cur = conn.execute(text, params if params else None)
        except psycopg.Error as exc:
            if self.readonly and isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
                raise self.readonly_error(_what(sql)) from None
            raise _translate_error(exc, _what(sql)) from None
        self._rowcount = cur.rowcount
        return cur

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
        """Run one statement (or several separated by ';' when params is empty)."""
        with self.lock:
            self._run(sql, params)

    def execute_changes(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement and return how many rows it changed."""
        with self.lock:
            return max(self._run(sql, params).rowcount, 0)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row (pipelined by psycopg)."""
        rows = list(rows)
        if not rows:
            return
        text, _ = self._prepare(sql, rows[0])
        if self._tracer is not None:
            self._tracer(sql)
        order = self._sql[sql][1]
        if order is not None:
            rows = [[r[i] for i in order] for r in rows]
        m = _PLAIN_INSERT.match(text)
        if m is not None and len(rows) > 1:
            # One statement per chunk of rows, not one per row: one trigger firing (the
            # commit clock) and one plan per chunk. Not for upserts: a row may not be
            # updated twice by one statement.
            values = m.group(2)
            with self.lock:
                try:
                    for start in range(0, len(rows), 500):
                        chunk = rows[start:start + 500]
                        flat = [v for r in chunk for v in r]
                        self._rowcount = self._live().execute(
                            f"{m.group(1)} {', '.join([values] * len(chunk))}{m.group(3) or ''}", flat).rowcount
                except psycopg.Error as exc:
                    raise _translate_error(exc, _what(sql)) from None
            return
        with self.lock:
            try:
                with self._live().cursor() as cur:
                    cur.executemany(text, rows)
                    self._rowcount = cur.rowcount
            except psycopg.Error as exc:
                raise _translate_error(exc, _what(sql)) from None

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call `callback(sql)` (the statement as the store wrote it, before translation)
        before each statement run through this object's statement methods; None stops.
        Transaction control (BEGIN, SAVEPOINT, COMMIT) is not reported on this backend."""
        self._tracer = callback

    def memo(self) -> dict[Any, Any] | None:
        """The current write transaction's memo, or None outside a write transaction of the
        calling thread: emptied when the transaction ends and on every rollback."""
        if not self.depth or not self._write or self._owner != threading.get_ident():
            return None
        if self._memo_serial != self.serial:
            self._memo.clear()
            self._memo_serial = self.serial
        return self._memo

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples."""
        with self.lock:
            try:
                return self._run(sql, params).fetchall()
            except psycopg.Error as exc:
                raise _translate_error(exc, _what(sql)) from None

    def iterate(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query (fetched at once: callers page their reads already)."""
        return iter(self.query(sql, params))

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with self.lock:
            try:
                return self._run(sql, params).fetchone()
            except psycopg.Error as exc:
                raise _translate_error(exc, _what(sql)) from None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), default: Any = None) -> Any:
        """The first column of the first row, or `default`."""
        row = self.one(sql, params)
        return default if row is None or row[0] is None else row[0]

    def changes(self) -> int:
        """Rows changed by the last statement."""
        return max(self._rowcount, 0)

    # --- transactions -------------------------------------------------------------------

    def transaction(self, write: bool = True) -> _Transaction:
        """A write transaction (advisory lock first) or a read one (one snapshot); savepoint when nested."""
        return _Transaction(self, write)

    def write(self, fn: Callable[[], T]) -> T:
        """Run `fn` as one command in a write transaction of its own (a savepoint inside this
        thread's transaction). Commands of other threads wait for the connection: this backend
        has no group commit yet."""
        with self.transaction(write=True):
            return fn()

    @property
    def in_transaction(self) -> bool:
        """True while the calling thread is inside a transaction of this object."""
        return self.depth > 0 and self._owner == threading.get_ident()

    def foreign_epoch(self) -> int:
        """Inside a write transaction: a number that moves when another connection has changed
        the log or the projection states since this connection's previous write transaction.

        The commit clock (`log_clock`, kept by triggers: the id of the last transaction that
        changed `events` or `projection_state`) is read under the lock when the transaction
        begins; it proves "nobody else" when it still holds what our previous transaction
        left there. Anywhere else (a read transaction, a store without the clock) it moves.
        """
        if self._epoch_serial != self.serial:
            self._epoch_serial = self.serial
            clock = self._txn_clock if self._write else None
            if clock is None or clock[0] not in self._known:
                self._epoch += 1
        return self._epoch

    def data_version(self) -> int:
        """A number that changes whenever any connection commits (here: at every call)."""
        return self.foreign_epoch()

    @staticmethod
    def _notify(callbacks: list[Callable[[], None]]) -> None:
        for cb in callbacks:
            cb()

    # --- identity, positions, integrity ---------------------------------------------------

    def read_stamp(self) -> tuple[int, int, int]:
        """(application id, layout version, number of tables) of the store's schema."""
        objects = self.scalar("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = ?",
                              (self.schema,), 0)
        if not objects or "store_stamp" not in self.table_names():
            return 0, 0, int(objects)
        row = self.one("SELECT application_id, version FROM store_stamp")
        return (int(row[0]), int(row[1]), int(objects)) if row else (0, 0, int(objects))

    def write_stamp(self, application_id: int | None, version: int) -> None:
        """Record the application id (None: keep it) and the layout version in store_stamp."""
        self.execute("CREATE TABLE IF NOT EXISTS store_stamp (application_id BIGINT NOT NULL, "
                     "version BIGINT NOT NULL)")
        current = self.one("SELECT application_id FROM store_stamp")
        app = int(application_id) if application_id is not None else (current[0] if current else 0)
        self.execute("DELETE FROM store_stamp")
        self.execute("INSERT INTO store_stamp VALUES (?, ?)", (app, int(version)))

    def highest_position_ever(self, table: str) -> int | None:
        """The largest position ever inserted into `events` (kept by the commit clock's trigger);
        None for another table or a store without the clock."""
        if table != "events" or "log_clock" not in self.table_names():
            return None
        value = self.scalar("SELECT highest FROM log_clock", (), None)
        return int(value) if value is not None else None

    def ensure_clock(self) -> None:
        """Inside the opening write transaction: create the commit clock when it is missing.

        `log_clock` holds one row: the id of the last transaction that changed `events` or
        `projection_state` (statement-level triggers), and the largest position ever inserted.
        Created once per store; later opens only find it.
        """
        if "log_clock" not in self.table_names():
            s = self.schema
            self.execute(f"""
CREATE TABLE {s}.log_clock (id SMALLINT PRIMARY KEY CHECK (id = 1), last_xact BIGINT NOT NULL,
                            highest BIGINT NOT NULL);
INSERT INTO {s}.log_clock SELECT 1, 0, coalesce(max(position), 0) FROM {s}.events;
CREATE FUNCTION {s}.log_clock_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {s}.log_clock SET last_xact = txid_current(),
        highest = greatest(highest, (SELECT coalesce(max(position), 0) FROM new_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION {s}.log_clock_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {s}.log_clock SET last_xact = txid_current();
    RETURN NULL;
END $$;
CREATE TRIGGER log_clock_insert AFTER INSERT ON {s}.events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_clock_insert();
CREATE TRIGGER log_clock_change AFTER UPDATE OR DELETE OR TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_clock_touch();
CREATE TRIGGER log_clock_states AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.projection_state
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_clock_touch();
""")
        self._clock = True

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """PostgreSQL checks its pages itself (checksums when enabled): nothing more here."""
        return []

    # --- tables ---------------------------------------------------------------------------

    def table_names(self, schema: str = "main") -> set[str]:
        """Names of the tables in the store's schema."""
        return {r[0] for r in self.query("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = ?",
                                         (self.schema,))}

    def table_columns(self, table: str) -> list[str]:
        """Column names of `table`, in order."""
        return [r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", (self.schema, table))]

    def table_primary_key(self, table: str) -> list[str]:
        """The primary key columns of `table` in key order (all columns when it has none)."""
        rows = self.query(
            "SELECT a.attname FROM pg_catalog.pg_index i "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = CAST(? AS regclass) AND i.indisprimary "
            "ORDER BY array_position(CAST(i.indkey AS int2[]), a.attnum)", (f"{self.schema}.{table}",))
        return [r[0] for r in rows] or self.table_columns(table)

    def storage_bytes(self) -> int:
        """Bytes the schema's tables and indexes occupy."""
        return int(self.scalar(
            "SELECT coalesce(sum(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0) "
            "FROM pg_catalog.pg_tables WHERE schemaname = ?", (self.schema,), 0))

    def open_scratch(self, path: str) -> Any:
        """A disposable SQLite database: rebuilds, verification and time travel replay into it
        with the projections' own SQL."""
        from .sqlite import Database

        return Database(path, scratch=True)

    def attach(self, path: str, alias: str) -> None:
        """Not available: a PostgreSQL connection cannot read a scratch file's tables."""
        raise StoreError("attach: a PostgreSQL store cannot attach a SQLite scratch database")

    def detach(self, alias: str) -> None:
        """Not available (see attach)."""
        raise StoreError("detach: a PostgreSQL store has nothing attached")

    def enable_wal(self) -> None:
        """Nothing to do: PostgreSQL readers never block writers."""

    def close(self) -> None:
        """Close the connection; later calls raise StoreClosed."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._conn is None

    def readonly_error(self, what: str) -> ReadOnlyStore:
        """The typed error for a write attempted through a read-only store."""
        return ReadOnlyStore(f"{what}: the store {self.path} was opened with readonly=True, "
                             "which never writes; open it without readonly to change it")

    def is_constraint_error(self, exc: BaseException) -> bool:
        """True when `exc` is a constraint violation (unique key and the like)."""
        return isinstance(exc, (IntegrityError, psycopg.errors.IntegrityError))


PORTED_PROJECTIONS = frozenset({"catalogue", "sessions", "leases", "queue", "inputs", "graph", "processes",
                                "triggers", "effects", "langgraph", "agent_sessions"})
"""The projections whose SQL runs on PostgreSQL (through `translate`) and whose domain's
contract suite passes there (tests/test_postgres_contract.py). A store on PostgreSQL keeps
only these: a projection another package registers is not kept until it is tested and
listed, and a domain that reads one that is not kept is refused (`NotOnThisBackend`)."""
