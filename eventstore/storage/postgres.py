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

from .pg_follow import CommitWaiter, FollowerPool, channel_for
from .pg_sql import PLAIN_INSERT, bind, translate
from .pg_txn import PgTransactions, translate_error
from ..errors import IntegrityError, InvalidArgument, ReadOnlyStore, StoreClosed, StoreError

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


class _IntForBool(Dumper):
    """Python bools as integers, as SQLite stores them (projection columns are integers)."""

    format = Format.TEXT
    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


CHUNK = 50
"""Rows per statement of a bulk insert (one trigger firing, the clock's, per statement)."""


def _what(sql: str) -> str:
    return " ".join(sql.split()[:3])


class PostgresDatabase(PgTransactions):
    """One PostgreSQL connection on one store's schema, with the store's transaction rules."""

    dialect = "postgresql"

    def __init__(self, url: str, *, synchronous: str = "full", busy_timeout_ms: int = 15_000,
                 readonly: bool = False) -> None:
        dsn, schema = parse_url(url)
        self.path = url
        self.dsn = dsn
        self.schema = schema
        self.lock_key = lock_key(schema)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.depth = 0
        self.serial = 0
        self.write_serial = 0
        """Counts outermost write transactions begun on this connection."""
        self.command = 0
        """Counts commands: outermost transactions, and the commands that join a group commit."""
        self.readonly = readonly
        """Opened with readonly=True: every transaction is READ ONLY, writes raise ReadOnlyStore."""
        self.on_commit: list[Callable[[], None]] = []
        self.on_rollback: list[Callable[[], None]] = []
        self._init_transactions()
        self._sql: dict[str, tuple[str, list[int] | None]] = {}
        self._rowcount = 0
        self.command_mark: tuple[int, int] | None = None
        """(thread id, depth) of the innermost domain command's transaction level (see the Storage protocol)."""
        # A rollback (to a savepoint too) may undo rows a memo entry describes: forget them all.
        self.on_rollback.append(self._memo.clear)
        self._tracer: Callable[[str], None] | None = None
        self._followers = FollowerPool(dsn, schema)
        try:
            self._conn: psycopg.Connection[Any] | None = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"{url}: cannot connect to PostgreSQL ({str(exc).strip()})") from None
        self._conn.adapters.register_dumper(bool, _IntForBool)
        self._client = psycopg.ClientCursor(self._conn)
        """Binds the parameters of statements that wait for a round trip (see pg_txn)."""
        # "normal" keeps SQLite's meaning: a crash of the server may lose the newest commits,
        # never half of one (PostgreSQL's asynchronous commit).
        sync = "on" if synchronous == "full" else "off"
        # standard_conforming_strings: pg_sql.bind writes literals for it (the default since 9.1).
        self._conn.execute(f"SET search_path TO {schema}; SET synchronous_commit TO {sync}; "
                           "SET standard_conforming_strings TO on; "
                           f"SET lock_timeout TO {int(busy_timeout_ms)}")
        if readonly:  # the server refuses every write of this session, statements outside transactions too
            self._conn.execute("SET default_transaction_read_only TO on")

    # --- statements --------------------------------------------------------------------

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise StoreClosed("the store is closed")
        return self._conn

    def _mogrify(self, text: str, params: Any) -> str:
        if params.__class__ is dict:
            return self._client.mogrify(text, params)
        return bind(text, params, self._client.mogrify)

    def _prepare(self, sql: str, params: Any) -> tuple[str, Any]:
        hit = self._sql.get(sql)
        if hit is None:
            hit = self._sql[sql] = translate(sql)
        text, order = hit
        if order is not None:
            params = [params[i] for i in order]
        return text, params

    def _error(self, exc: psycopg.Error, sql: str) -> StoreError:
        if self.readonly and isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return self.readonly_error(_what(sql))
        return translate_error(exc, _what(sql))

    def _run(self, sql: str, params: Any) -> psycopg.Cursor[Any]:
        """Run a statement whose answer is needed now, after whatever is pending."""
        text, params = self._prepare(sql, params)
        if self._tracer is not None:
            self._tracer(sql)
        if self._answers and not text.lstrip()[:6].upper() == "SELECT":
            self._invalidate(text)
        try:
            cur = self._flush(text, params)
        except psycopg.Error as exc:
            raise self._error(exc, sql) from None
        assert cur is not None
        self._rowcount = cur.rowcount
        return cur

    def _deferring(self) -> bool:
        """True inside a write transaction of the calling thread: writes wait for the next round trip."""
        return self.depth > 0 and self._write and self.lock.owner == threading.get_ident()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
        """Run one statement (or several separated by ';' when params is empty). Inside a
        write transaction it is sent with the next statement that needs an answer (at the
        latest the COMMIT), and its error is raised there."""
        with self.lock:
            if not self._deferring():
                self._run(sql, params)
                return
            text, params = self._prepare(sql, params)
            if self._tracer is not None:
                self._tracer(sql)
            self._defer(self._mogrify(text, params) if params else text)
            self._rowcount = -1

    def execute_changes(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement and return how many rows it changed."""
        with self.lock:
            return max(self._run(sql, params).rowcount, 0)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row (plain inserts: one statement per CHUNK rows)."""
        rows = list(rows)
        if not rows:
            return
        text, _ = self._prepare(sql, rows[0])
        if self._tracer is not None:
            self._tracer(sql)
        order = self._sql[sql][1]
        if order is not None:
            rows = [[r[i] for i in order] for r in rows]
        m = PLAIN_INSERT.match(text)
        with self.lock:
            deferring = self._deferring()
            try:
                if m is not None and len(rows) > 1:
                    # One statement per chunk of rows, not one per row: one trigger firing (the
                    # commit clock) and one plan per chunk. Not for upserts: a row may not be
                    # updated twice by one statement.
                    values = m.group(2)

                    def statement(n: int) -> str:
                        return f"{m.group(1)} {', '.join([values] * n)}{m.group(3) or ''}"

                    if deferring and len(rows) <= 8:
                        self._defer(self._mogrify(statement(len(rows)), [v for r in rows for v in r]))
                        return
                    # Chunks of CHUNK rows, sent now with their parameters apart (binding
                    # hundreds of rows into the text on the client costs more than a round
                    # trip), all full chunks in one pipelined round trip: one statement text,
                    # short enough for psycopg to parse once and cache.
                    self._flush()
                    full = len(rows) - len(rows) % CHUNK
                    if full:
                        self.round_trips += 1
                        with self._live().cursor() as cur:
                            cur.executemany(statement(CHUNK), [[v for r in rows[i:i + CHUNK] for v in r]
                                                               for i in range(0, full, CHUNK)])
                    if full < len(rows):
                        rest = rows[full:]
                        self._flush(statement(len(rest)), [v for r in rest for v in r])
                    self._rowcount = len(rows)
                    return
                if deferring:
                    for r in rows:
                        self._defer(self._mogrify(text, r))
                    return
                self._flush()
                self.round_trips += 1
                with self._live().cursor() as cur:
                    cur.executemany(text, rows)
                    self._rowcount = cur.rowcount
            except psycopg.Error as exc:
                raise translate_error(exc, _what(sql)) from None

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call `callback(sql)` (the statement as the store wrote it, before translation)
        before each statement run through this object's statement methods; None stops.
        Transaction control (BEGIN, SAVEPOINT, COMMIT) is not reported on this backend."""
        self._tracer = callback

    def _answer(self, sql: str, params: Any) -> list[tuple[Any, ...]] | None:
        """A query's rows as prefetched in this write transaction's first round trip, or None."""
        if not self._deferring():
            return None
        if self._answers:
            rows = self._answers.get((sql, tuple(params)))
            if rows is not None:
                return rows
        self._asked(sql, params)
        return None

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples."""
        with self.lock:
            rows = self._answer(sql, params)
            if rows is not None:
                return list(rows)
            try:
                return self._run(sql, params).fetchall()
            except psycopg.Error as exc:
                raise translate_error(exc, _what(sql)) from None

    def iterate(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query (fetched at once: callers page their reads already)."""
        return iter(self.query(sql, params))

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with self.lock:
            rows = self._answer(sql, params)
            if rows is not None:
                return rows[0] if rows else None
            try:
                return self._run(sql, params).fetchone()
            except psycopg.Error as exc:
                raise translate_error(exc, _what(sql)) from None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), default: Any = None) -> Any:
        """The first column of the first row, or `default`."""
        row = self.one(sql, params)
        return default if row is None or row[0] is None else row[0]

    def changes(self) -> int:
        """Rows changed by the last statement (sends the statements waiting for a round trip)."""
        with self.lock:
            if self._rowcount < 0 and self._pending:
                try:
                    cur = self._flush()
                except psycopg.Error as exc:
                    raise translate_error(exc, "changes") from None
                self._rowcount = cur.rowcount if cur is not None else 0
        return max(self._rowcount, 0)

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
        names = self.table_names()
        self._states = "projection_state" in names
        fresh = "log_clock" not in names
        if fresh:
            s = self.schema
            self.execute(f"""
CREATE TABLE {s}.log_clock (id SMALLINT PRIMARY KEY CHECK (id = 1), last_xact BIGINT NOT NULL,
                            highest BIGINT NOT NULL);
INSERT INTO {s}.log_clock SELECT 1, 0, coalesce(max(position), 0) FROM {s}.events;
CREATE FUNCTION {s}.log_clock_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {s}.log_clock SET last_xact = txid_current();
    RETURN NULL;
END $$;
CREATE TRIGGER log_clock_change AFTER UPDATE OR DELETE OR TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_clock_touch();
CREATE TRIGGER log_clock_states AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.projection_state
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_clock_touch();
""")
        # Every open (a store created before followers listened gets it): the insert trigger
        # also notifies the store's channel, delivered when the transaction commits.
        self.execute(f"""
CREATE OR REPLACE FUNCTION {self.schema}.log_clock_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {self.schema}.log_clock SET last_xact = txid_current(),
        highest = greatest(highest, (SELECT coalesce(max(position), 0) FROM new_rows));
    PERFORM pg_notify('{channel_for(self.lock_key)}', '');
    RETURN NULL;
END $$""")
        if fresh:
            self.execute(f"CREATE TRIGGER log_clock_insert AFTER INSERT ON {self.schema}.events "
                         f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                         f"EXECUTE FUNCTION {self.schema}.log_clock_insert()")
        self._clock = True

    def commit_waiter(self) -> CommitWaiter:
        """A follower's connection (from the handle's pool): LISTEN for commits, durable head."""
        return CommitWaiter(self._followers, channel_for(self.lock_key),
                            durable=self.synchronous == "full", readonly=self.readonly)

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
        self._followers.close()
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
