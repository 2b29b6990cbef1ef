"""The SQLite backend of the storage seam (`eventstore.storage.Storage`): every call into
the SQLite driver (apsw), and every SQLite-only statement outside table definitions and
queries (PRAGMA, sqlite_sequence, sqlite_schema, ATTACH), lives here.

Nothing outside this module imports apsw. A second backend (PostgreSQL) provides a class
with the same surface as `Database` (see the Protocol and docs/architecture.md).

Transactions (why they look like this):
* apsw never opens a transaction behind our back, so every write path says
  `BEGIN IMMEDIATE` itself. IMMEDIATE takes the write lock up front, which turns a
  read-then-write race into a queue on SQLite's busy handler instead of a
  SQLITE_BUSY_SNAPSHOT failure at the first write.
* A nested `transaction()` becomes a SAVEPOINT, so a domain command can wrap several
  appends and an inner failure undoes only its own part when the caller catches it.
* A thread's outermost write transaction (and `write(fn)`) is one *command* of a group:
  commands of concurrent threads share one BEGIN IMMEDIATE ... COMMIT, each in its own
  savepoint (eventstore/_group.py). `lock` is the Baton that group hands from thread to
  thread, so no other thread's statement runs inside (or sees) an open transaction.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import stat
import time
import urllib.parse
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar, cast

import apsw

from .._group import Baton, GroupCommit, Ticket
from ..errors import (
    CorruptStore,
    DiskFull,
    FileError,
    IntegrityError,
    NotADatabase,
    ReadOnlyStore,
    StoreBusy,
    StoreClosed,
    StoreError,
    TruncatedFile,
)

SQLITE_MAGIC = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT_MS = 15_000
SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
T = TypeVar("T")
_get_ident = threading.get_ident



def _translate(exc: BaseException, what: str) -> StoreError:
    """Map a driver exception to the store's typed errors."""
    if isinstance(exc, (apsw.BusyError, apsw.LockedError)):
        return StoreBusy(f"{what}: the database stayed locked past the busy timeout ({exc})")
    if isinstance(exc, (apsw.CorruptError, apsw.NotADBError)):
        return CorruptStore(f"{what}: the database file is damaged ({exc})")
    if isinstance(exc, apsw.ConstraintError):
        return IntegrityError(f"{what}: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return CorruptStore(f"{what}: stored text is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                            "the file was damaged or edited")
    if isinstance(exc, apsw.FullError):
        return DiskFull(f"{what}: the disk is full ({exc}); nothing was committed")
    return StoreError(f"{what}: {type(exc).__name__}: {exc}")


def _what(sql: str) -> str:
    """The first words of a statement, to say in an error what was being done."""
    return " ".join(sql.split()[:3])


def check_file(path: str) -> bool:
    """Inspect a path before SQLite touches it. Returns True when the file is new or empty.

    Raises NotADatabase for garbage and TruncatedFile for a cut-off SQLite file, without
    writing anything.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise FileError(path, f"cannot inspect: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(path, "is a directory, not a store file")
    if st.st_size == 0:
        return True
    wal = _wal_size(path)
    if wal:
        # A WAL with frames in it holds committed pages the main file may not have yet:
        # a checkpoint interrupted by a crash leaves page 1 claiming more pages than the
        # file has, and SQLite completes it from the WAL. Only the magic is checked then.
        _inspect_header(path, check_size=False)
        return False
    # Another process may be writing the file right now: creating it, or checkpointing its
    # WAL, which writes page 1 (with the new page count) before the pages after it. A file
    # that looks cut off is therefore looked at again a few times before it is called so.
    for attempt in range(5):
        truncated = _inspect_header(path)
        if truncated is None:
            return False
        if attempt < 4:
            time.sleep(0.02)
    assert truncated is not None  # each pass above returned unless it found one
    raise truncated


def _wal_size(path: str) -> int:
    try:
        return os.stat(path + "-wal").st_size
    except OSError:
        return 0


def _inspect_header(path: str, check_size: bool = True) -> TruncatedFile | None:
    """Check the SQLite header; raise for garbage, return (not raise) a TruncatedFile."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size  # measured after the header was read
    except OSError as exc:
        raise FileError(path, f"cannot read: {exc.strerror or exc}") from None
    if not header.startswith(SQLITE_MAGIC[: min(len(header), 16)]):
        raise NotADatabase(path, "not a SQLite database (bad magic header)")
    if len(header) < 100:
        return TruncatedFile(path, f"only {size} bytes, shorter than a SQLite header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise NotADatabase(path, f"invalid SQLite page size {page_size}")
    if not check_size:
        return None
    pages = int.from_bytes(header[28:32], "big")
    change_counter = int.from_bytes(header[24:28], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    # The in-header size is trustworthy only when 'version-valid-for' matches the change
    # counter (SQLite's own rule); older writers leave it stale.
    if pages and valid_for == change_counter and size < pages * page_size:
        return TruncatedFile(path, f"{size} bytes, but its header records {pages} pages of {page_size} bytes")
    if size % page_size:
        return TruncatedFile(path, f"{size} bytes is not a whole number of {page_size}-byte pages")
    return None


def create_private_file(path: str) -> None:
    """Create an empty file readable and writable by its owner only (0600)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:  # a missing directory, no permission, a read-only file system
        raise FileError(path, f"cannot create: {exc.strerror or exc}") from None
    os.close(fd)


class _Transaction:
    """Context manager returned by Database.transaction(); see the module docstring."""

    __slots__ = ("db", "write", "name", "ticket")

    def __init__(self, db: "Database", write: bool) -> None:
        self.db = db
        self.write = write
        self.name = ""
        self.ticket: Ticket[Any] | None = None

    def __enter__(self) -> "Database":
        db = self.db
        conn = db._conn
        if conn is None:
            raise StoreClosed("the store is closed")
        if self.write and db.readonly:
            raise db.readonly_error("a write transaction")
        lock = db.lock
        if self.write and lock.owner != _get_ident():
            # The thread's outermost write: one command of a group (eventstore/_group.py).
            self.ticket = db.group.enter()
            return db
        # One connection, many threads: the baton is held from BEGIN to COMMIT, so another
        # thread's statements wait instead of running inside (or seeing) this transaction.
        lock.acquire()
        try:
            if db.depth == 0:
                conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
                db.serial += 1
                db.command += 1
                db.write_serial += self.write
                db._write = self.write
            else:
                self.name = f"sp{db.depth}"
                conn.execute(f"SAVEPOINT {self.name}")
        except apsw.Error as exc:
            lock.release()
            raise db.translate(exc, "begin transaction") from None
        except BaseException:
            lock.release()
            raise
        db.depth += 1
        return db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # One method, no helper calls on the common path: every append pays for it.
        db = self.db
        if self.ticket is not None:
            db.group.exit(self.ticket, exc)
            return
        conn = db._conn
        assert conn is not None  # __enter__ found it open; close() during a transaction is misuse
        try:
            db.depth -= 1
            if self.name:
                if exc_type is None:
                    conn.execute(f"RELEASE {self.name}")
                else:
                    conn.execute(f"ROLLBACK TO {self.name}")
                    conn.execute(f"RELEASE {self.name}")
                    db._notify(db.on_rollback)
                return
            if exc_type is not None:
                if not conn.get_autocommit():
                    conn.execute("ROLLBACK")
                db._epoch_dv = None
                db._notify(db.on_rollback)
                return
            error = db._commit()
            if error is not None:
                raise error
        finally:
            db.lock.release()


class Database:
    """One SQLite connection with the store's settings and a careful transaction helper."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        readonly: bool = False,
        scratch: bool = False,
    ) -> None:
        self.path = path
        self.depth = 0
        self.lock = Baton()
        """Serialises threads sharing this connection (held for a whole transaction, and
        handed from command to command inside a group)."""
        self.group = GroupCommit(self)
        """The write path: concurrent commands share transactions (eventstore/_group.py)."""
        self.serial = 0
        """Counts outermost transactions begun on this connection."""
        self.command = 0
        """Counts commands: outermost transactions and the commands that join a group."""
        self.write_serial = 0
        """Counts outermost write transactions begun on this connection."""
        self.on_commit: list[Any] = []
        """Callbacks run after each outermost COMMIT succeeds."""
        self.on_rollback: list[Any] = []
        """Callbacks run after any rollback (outermost or to a savepoint)."""
        self._epoch = 0
        self._epoch_dv: int | None = None
        self._epoch_serial = -1
        self._write = False
        self._memo: dict[Any, Any] = {}
        self._memo_serial = -1
        # A rollback (outermost or to a savepoint) may undo rows the memo describes.
        self.on_rollback.append(self._memo.clear)
        self.command_mark: tuple[int, int] | None = None
        """(thread id, depth) of the innermost domain command's transaction level, set by
        `StoreContext.command()`; the log appends directly at that level without a savepoint."""
        self.busy_timeout_ms = busy_timeout_ms
        self.readonly = readonly
        """Opened with readonly=True: every write raises ReadOnlyStore."""
        self.immutable = False
        """Read-only and opened as immutable (see _open_readonly): no locks, no WAL."""
        if readonly:
            self._conn: apsw.Connection | None = self._open_readonly(path)
        else:
            flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
            if path != ":memory:" and not scratch:
                flags |= apsw.SQLITE_OPEN_URI if path.startswith("file:") else 0
            try:
                self._conn = apsw.Connection(path, flags=flags)
            except apsw.Error as exc:
                raise FileError(path, f"cannot open: {exc}") from None
        self._conn.set_busy_timeout(busy_timeout_ms)
        if scratch:
            # Scratch databases (rebuild, verify, time travel) are disposable: no journal,
            # no fsync. A crash loses the scratch file, never the store: a rebuild reaches
            # the store only through the swap, one transaction of the store's own
            # (journalled, synced) connection that copies the finished scratch tables in.
            # Not locking_mode=EXCLUSIVE: the store's connection must attach the file for
            # that swap. The default 2 MiB page cache is enough: a 1M-event rebuild
            # misses it about 5,000 times in 10.5M page reads (docs/benchmarks.md).
            self._conn.execute("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF")
        elif synchronous not in SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {sorted(SYNCHRONOUS)}, got {synchronous!r}")
        self.synchronous = synchronous

    def _open_readonly(self, path: str) -> apsw.Connection:
        """A read-only connection that never writes the file and never takes the write lock.

        `mode=ro` first: it reads a WAL store like any reader, seeing every commit, but
        SQLite must then open (or create) DB-shm and DB-wal beside it. Where it cannot (a
        read-only directory or mount, a full disk) the file is opened `immutable=1`:
        no locks and no WAL at all, which is right only when no DB-wal holds commits, so
        a non-empty DB-wal makes the open refuse instead of silently missing them.
        docs/reliability.md spells out the costs.
        """
        base = "file:" + urllib.parse.quote(os.path.abspath(path))
        flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
        conn = None
        try:
            conn = apsw.Connection(base + "?mode=ro", flags=flags)
            # A reader meets the busy handler only while another connection rebuilds the
            # WAL index (never for a writer's transaction): wait that out, as writers do.
            conn.set_busy_timeout(self.busy_timeout_ms)
            # The connection opens lazily: the first read is what maps DB-shm.
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
            return conn
        except (apsw.CantOpenError, apsw.IOError, apsw.ReadOnlyError) as exc:
            first = exc
        except apsw.Error as exc:
            if conn is not None:
                conn.close()
            raise FileError(path, f"cannot open read-only: {_translate(exc, 'open')}") from None
        if conn is not None:
            conn.close()
        if _wal_size(path):
            raise FileError(path, f"cannot open read-only ({first}): SQLite cannot open {path}-shm here "
                                  f"(a read-only directory or a full disk), and {path}-wal holds commits "
                                  "that a read without it would miss; copy the file with its -wal and "
                                  "-shm to a writable directory")
        try:
            conn = apsw.Connection(base + "?immutable=1", flags=flags)
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        except apsw.Error as exc:
            raise FileError(path, f"cannot open read-only: {exc}") from None
        self.immutable = True
        return conn

    def translate(self, exc: BaseException, what: str) -> StoreError:
        """_translate, knowing this connection: a write through a read-only handle, and an
        I/O error that the OS reported as a full disk (SQLite calls a failed DB-shm
        extension an I/O error, not SQLITE_FULL)."""
        if isinstance(exc, apsw.ReadOnlyError) and self.readonly:
            return self.readonly_error(what)
        if isinstance(exc, apsw.IOError) and self._conn is not None and \
                self._conn.system_errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(f"{what}: the disk is full ({exc}); nothing was committed")
        return _translate(exc, what)

    def readonly_error(self, what: str) -> ReadOnlyStore:
        """The typed error for a write attempted through a read-only handle."""
        return ReadOnlyStore(f"{what}: the store {self.path} was opened with readonly=True, "
                             "which never writes; open it without readonly to change it")

    # --- settings --------------------------------------------------------------

    def enable_wal(self) -> None:
        """Switch to WAL, retrying by hand: SQLite skips the busy handler for this switch."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.001
        while True:
            try:
                mode = self._live().execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
                break
            except (apsw.BusyError, apsw.LockedError) as exc:
                if time.monotonic() > deadline:
                    raise self.translate(exc, "switch to WAL") from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.05)
            except apsw.Error as exc:  # a damaged file, a full disk, ...
                raise self.translate(exc, "switch to WAL") from None
        if str(mode).lower() != "wal" and self.path != ":memory:":
            raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        self.execute(f"PRAGMA synchronous={SYNCHRONOUS[self.synchronous]}")

    def foreign_epoch(self) -> int:
        """Inside a write transaction: a number that changes whenever another connection
        has committed since this connection last asked, in an earlier transaction.

        Caches of what the file holds (the log's head, the engine's projection states)
        remember the epoch they were filled at and reload when it moves. Asked once per
        transaction; apsw's data_version counts this connection's own commits too, so
        the value is taken again right after a commit of ours (see _Transaction.__exit__).
        """
        if self._epoch_serial != self.serial:
            self._epoch_serial = self.serial
            dv = (self._conn or self._closed()).data_version()
            if dv != self._epoch_dv:
                self._epoch += 1
                self._epoch_dv = dv
        return self._epoch

    def memo(self) -> dict[Any, Any] | None:
        """The current write transaction's memo, or None outside a write transaction.

        A dict that lives until the transaction ends or anything in it rolls back (to a
        savepoint too): a command that has read a projection row may leave a copy here for
        the applier that updates the row in the same transaction, which then need not read
        it again. Whoever writes a remembered row must drop or update its entry.
        """
        if not self.depth or not self._write or self.lock.owner != _get_ident():
            return None  # not inside a write transaction of the calling thread
        if self._memo_serial != self.serial:
            self._memo.clear()
            self._memo_serial = self.serial
        return self._memo

    def data_version(self) -> int:
        """A counter that changes whenever any connection commits to the file.

        Refreshed by SQLite at the start of each transaction, so read inside one: an
        unchanged value since our own last commit proves nobody else wrote meanwhile.
        """
        return self._live().data_version()

    # --- the group's steps (called by eventstore/_group.py, holding the baton) ----------

    def begin_group(self) -> None:
        """BEGIN IMMEDIATE for a group; its leader's command runs at this level."""
        try:
            (self._conn or self._closed()).execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise self.translate(exc, "begin transaction") from None
        self.serial += 1
        self.write_serial += 1
        self.command += 1
        self._write = True
        self.depth = 1

    def begin_command(self, name: str = "cmd", count: bool = True) -> None:
        """Start a command that joins the open group: its own savepoint (`count`: one
        command; a run of several commands sharing one savepoint counts each itself)."""
        try:
            (self._conn or self._closed()).execute(f"SAVEPOINT {name}")
        except apsw.Error as exc:
            raise self.translate(exc, "begin command") from None
        self.command += count
        self.depth = 2

    def end_command(self, failed: bool, name: str = "cmd") -> None:
        """Keep a joined command, or roll it back alone (then caches reload: on_rollback)."""
        conn = self._conn or self._closed()
        self.depth = 1
        try:
            if failed:
                conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        except apsw.Error as exc:
            raise self.translate(exc, "end command") from None
        if failed:
            self._notify(self.on_rollback)

    def total_changes(self) -> int:
        """Rows inserted, updated or deleted on this connection so far (a statement that
        failed counts none): unchanged across a command means it wrote nothing."""
        return (self._conn or self._closed()).total_changes()

    def abort_group(self) -> None:
        """Roll the whole transaction back (its leader failed before anyone joined)."""
        conn = self._conn
        self.depth = 0
        if conn is not None and not conn.get_autocommit():
            conn.execute("ROLLBACK")
        self._epoch_dv = None
        self._notify(self.on_rollback)

    def commit_group(self) -> StoreError | None:
        """COMMIT the group's transaction; the error (everything rolled back) or None."""
        self.depth = 0
        return self._commit()

    def _commit(self) -> StoreError | None:
        conn = self._conn or self._closed()
        try:
            conn.execute("COMMIT")
        except apsw.Error as err:
            return self._commit_failed(conn, err)
        if self._epoch_serial == self.serial:
            # Our own commit moved apsw's data_version. Nobody else could commit inside a
            # write transaction (BEGIN IMMEDIATE holds the write lock), and apsw refreshes
            # the value only when a transaction starts, so this is still "no foreign commit
            # since the epoch was confirmed". In a read transaction others may have
            # committed meanwhile: forget the value, so the next check moves the epoch.
            self._epoch_dv = conn.data_version() if self._write else None
        if self.on_commit:
            self._notify(self.on_commit)
        return None

    def _commit_failed(self, conn: apsw.Connection, err: apsw.Error) -> StoreError:
        """COMMIT failed: roll back what is left, tell the caches, return the typed error."""
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        self._epoch_dv = None
        self._notify(self.on_rollback)
        return self.translate(err, "commit")

    def write(self, fn: Callable[[], T]) -> T:
        """Run `fn` as one command; see _group.py. `fn` must only read and write the
        database, not block, and decide what it writes from what it reads: a group may
        roll it back and run it again. Inside a transaction of this thread it runs in a
        savepoint of that transaction."""
        lock = self.lock
        me = _get_ident()
        if self.readonly:
            raise self.readonly_error("a write")
        if lock.owner == me:
            with self.transaction():
                return fn()
        group = self.group
        if not group.busy.acquire(False):
            return group.run(fn)  # queues behind the writer (or leads, should it be free again)
        # Why this is written out here instead of calling GroupCommit.run: it is the path
        # of every append by a caller alone (nobody writing, nobody queued), and each call
        # layer costs it about 1% (docs/benchmarks.md, "Core"). It does what run() does
        # for a leader: take the connection, BEGIN IMMEDIATE, run fn at the transaction
        # level, COMMIT, then free the writer; commands that queued meanwhile join instead.
        lock._lock.acquire()  # a reader outside any transaction holds it for one statement
        lock.owner = me
        lock.count = 1
        conn = self._conn
        try:
            if conn is None:
                raise StoreClosed("the store is closed")
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            lock.release()
            group._pass_lead()
            if isinstance(exc, apsw.Error):
                raise self.translate(exc, "begin transaction") from None
            raise
        self.serial += 1
        self.write_serial += 1
        self.command += 1
        self._write = True
        self.depth = 1
        try:
            result = fn()
        except BaseException:
            group._abort_alone()
            raise
        if group.queue:  # a command queued after BEGIN: it joins, and this one waits for it
            return group.carry_on(fn, result)
        self.depth = 0
        try:
            conn.execute("COMMIT")
        except apsw.Error as err:
            error: StoreError | None = self._commit_failed(conn, err)
        else:
            error = None
            group.groups += 1  # counted while the connection is still ours
            group.commands += 1
            if self._epoch_serial == self.serial:  # see _commit
                self._epoch_dv = conn.data_version()
            if self.on_commit:
                self._notify(self.on_commit)
        lock.count = 0
        lock.owner = 0
        lock._lock.release()
        with group.mu:  # GroupCommit._pass_lead, its common case written out
            idle = not group.queue
            if idle:
                group.busy.release()
        if not idle:
            group._pass_lead()
        if error is not None:
            raise error
        return result

    @staticmethod
    def _notify(callbacks: list[Any]) -> None:
        for cb in callbacks:
            cb()

    # --- statements --------------------------------------------------------------

    def _live(self) -> apsw.Connection:
        if self._conn is None:
            raise StoreClosed("the store is closed")
        return self._conn

    # The statement methods below write `self._conn or self._closed()` rather than call
    # _live(): one Python call less on every statement of every append.
    @staticmethod
    def _closed() -> apsw.Connection:
        raise StoreClosed("the store is closed")

    # Each statement method runs straight through when the calling thread holds the
    # connection (every statement inside a transaction: the hot path), and otherwise takes
    # it for the one statement (through the same method again).

    def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> None:
        """Run one statement (or several separated by ';' when params is empty)."""
        lock = self.lock
        if lock.owner != _get_ident():
            with lock:
                return self.execute(sql, params)
        try:
            for _ in (self._conn or self._closed()).execute(sql, params):
                pass
        except (apsw.Error, UnicodeDecodeError) as exc:
            raise self.translate(exc, _what(sql)) from None

    def execute_changes(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run one write statement and return how many rows it changed."""
        lock = self.lock
        if lock.owner != _get_ident():
            with lock:
                return self.execute_changes(sql, params)
        try:
            conn = (self._conn or self._closed())
            for _ in conn.execute(sql, params):
                pass
            return conn.changes()
        except (apsw.Error, UnicodeDecodeError) as exc:
            raise self.translate(exc, _what(sql)) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        lock = self.lock
        if lock.owner != _get_ident():
            with lock:
                return self.executemany(sql, rows)
        try:
            for _ in (self._conn or self._closed()).executemany(sql, rows):
                pass
        except (apsw.Error, UnicodeDecodeError) as exc:
            raise self.translate(exc, _what(sql)) from None

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[tuple]:
        """Run a query and return all rows as tuples."""
        lock = self.lock
        if lock.owner != _get_ident():
            with lock:
                return self.query(sql, params)
        try:
            return (self._conn or self._closed()).execute(sql, params).fetchall()
        except (apsw.Error, UnicodeDecodeError) as exc:
            raise self.translate(exc, _what(sql)) from None

    def iterate(self, sql: str, params: Sequence[Any] | dict = ()) -> Iterator[tuple]:
        """Run a query and yield rows lazily (keep the loop short: it holds a read snapshot)."""
        try:
            with self.lock:
                cursor = (self._conn or self._closed()).execute(sql, params)
            while True:
                with self.lock:
                    row = next(cursor, None)
                if row is None:
                    return
                yield row
        except (apsw.Error, UnicodeDecodeError) as exc:
            raise self.translate(exc, _what(sql)) from None

    def one(self, sql: str, params: Sequence[Any] | dict = ()) -> tuple | None:
        """The first row of a query, or None."""
        lock = self.lock
        if lock.owner != _get_ident():
            with lock:
                return self.one(sql, params)
        try:
            for row in (self._conn or self._closed()).execute(sql, params):
                return cast("tuple[Any, ...] | None", row)
        except (apsw.Error, UnicodeDecodeError) as exc:
            raise self.translate(exc, _what(sql)) from None
        return None

    def scalar(self, sql: str, params: Sequence[Any] | dict = (), default: Any = None) -> Any:
        """The first column of the first row, or `default`."""
        row = self.one(sql, params)
        return default if row is None or row[0] is None else row[0]

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call `callback(sql)` before each statement this connection runs (BEGIN, SAVEPOINT
        and COMMIT included); None stops. For tests and profiling: it slows every statement."""
        conn = self._live()
        if callback is None:
            conn.exec_trace = None
            return

        def tracer(_cursor: Any, sql: str, _bindings: Any) -> bool:
            callback(sql)
            return True

        conn.exec_trace = tracer

    def transaction(self, write: bool = True) -> _Transaction:
        """A transaction: BEGIN IMMEDIATE (or deferred BEGIN for reads); SAVEPOINT when nested."""
        return _Transaction(self, write)

    @property
    def in_transaction(self) -> bool:
        """True while the calling thread is inside a transaction of this object."""
        return self.depth > 0 and self.lock.owner == _get_ident()

    def changes(self) -> int:
        """Rows changed by the last statement."""
        return self._live().changes()

    def table_names(self, schema: str = "main") -> set[str]:
        """Names of the tables in the given schema."""
        return {r[0] for r in self.query(f"SELECT name FROM {schema}.sqlite_schema WHERE type='table'")}

    def table_columns(self, table: str) -> list[str]:
        """Column names of `table`, in order (`table` is a name the caller chose, not input)."""
        return [r[1] for r in self.query(f"PRAGMA table_info({table})")]

    def table_primary_key(self, table: str) -> list[str]:
        """The primary key columns of `table` in key order (all columns when it has none)."""
        info = self.query(f"PRAGMA table_info({table})")
        pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        return pk or [r[1] for r in info]

    def storage_bytes(self) -> int:
        """Bytes the database occupies: pages times page size."""
        return int(self.scalar("PRAGMA page_count", (), 0)) * int(self.scalar("PRAGMA page_size", (), 0))

    # --- identity, positions, integrity -------------------------------------------

    def read_stamp(self) -> tuple[int, int, int]:
        """(application_id, user_version, number of schema objects): the file's identity."""
        app_id = self.scalar("PRAGMA application_id", (), 0)
        version = self.scalar("PRAGMA user_version", (), 0)
        objects = self.scalar("SELECT count(*) FROM sqlite_schema", (), 0)
        return app_id, version, objects

    def write_stamp(self, application_id: int | None, version: int) -> None:
        """Stamp PRAGMA application_id (unless None) and user_version (integers only)."""
        if application_id is not None:
            self.execute(f"PRAGMA application_id = {int(application_id)}")
        self.execute(f"PRAGMA user_version = {int(version)}")

    def highest_position_ever(self, table: str) -> int | None:
        """AUTOINCREMENT keeps the largest key ever written in sqlite_sequence; None if absent."""
        if "sqlite_sequence" not in self.table_names():  # no AUTOINCREMENT table yet
            return None
        seq = self.scalar("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,), None)
        return seq if isinstance(seq, int) else None

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """SQLite's `PRAGMA integrity_check(limit)`: an empty list when the file is sound."""
        problems = [str(r[0]) for r in self.query(f"PRAGMA integrity_check({int(limit)})")]
        return [] if problems == ["ok"] else problems

    def open_scratch(self, path: str) -> "Database":
        """A disposable database (no journal, no fsync) at `path` or in memory."""
        return Database(path, scratch=True)

    def is_constraint_error(self, exc: BaseException) -> bool:
        """True when `exc` is a constraint violation (unique key and the like)."""
        return is_constraint_error(exc)

    def attach(self, path: str, alias: str) -> None:
        """Attach another database file under `alias` (not allowed inside a transaction)."""
        self.execute("ATTACH DATABASE ? AS " + alias, (path,))

    def detach(self, alias: str) -> None:
        """Detach a database attached with attach()."""
        self.execute("DETACH DATABASE " + alias)

    def close(self) -> None:
        """Close the connection; later calls raise StoreClosed."""
        if self._conn is not None:
            self.group.stop_writer()
            self._conn.close()
            self._conn = None

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._conn is None


def is_constraint_error(exc: BaseException) -> bool:
    """True when `exc` is a constraint violation (unique key and the like)."""
    return isinstance(exc, (IntegrityError, apsw.ConstraintError))
