"""Transactions of the PostgreSQL backend: few round trips, the write lock held briefly.

`PgTransactions` is the half of `PostgresDatabase` that talks to the server about
transactions; `eventstore/storage/postgres.py` has the other half (statements, tables).
docs/postgres.md ("Round trips") says why it is built this way; in short:

* Nothing is sent when a transaction begins. Its BEGIN (and, for a write transaction,
  the advisory lock and the commit clock read) waits in `_pending` and travels with the
  first statement whose answer the caller needs.
* A statement whose answer nobody needs (an insert, an update, a savepoint) is bound on
  the client (psycopg's ClientCursor) and waits in `_pending` too. The pending text and
  the statement that needs an answer go in one simple-query message: one round trip.
* COMMIT travels with the statements still pending. A lone append is therefore two round
  trips (BEGIN + lock + clock + head; insert + catalogue + COMMIT), and the lock is held
  from the first one's execution to the second's commit.
* A statement that fails in a batch aborts the transaction: its error reaches the caller
  at the next round trip (at latest the COMMIT), and nothing of the transaction is kept.
* A handle that wrote alone twice in a row speculates: the lock, a check that the commit
  clock did not move, the rows and the COMMIT in one message; when the check fails the
  command is run again the ordinary way (`_guard`, `write`).

Write transactions are commands of an in-process group commit (eventstore/_group.py), as on
SQLite: callers of one store handle who write at the same moment share one transaction,
one lock acquisition and one WAL flush, each command inside its own savepoint. Before a
command joins, the previous one's pending writes are sent (`_confirm`): a deferred failure
is reported to the command that caused it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import psycopg
import psycopg.errors

from .._group import Baton, GroupCommit, Ticket
from ..errors import StoreError
from .pg_sql import GUARD_HEAD, GUARD_SQL, HeadMoved, translate_error

__all__ = ["CLOCK_SQL", "HEAD_SQL", "STATES_SQL", "VERSION_SQL", "HeadMoved", "PgTransactions", "translate_error"]

T = TypeVar("T")
_get_ident = threading.get_ident

HEAD_SQL = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
"""The log's head query, exactly as eventstore/log.py writes it: answered from the prefetch."""
STATES_SQL = "SELECT name, version, position FROM projection_state"
"""The engine's projection_state query, exactly as projections/engine.py writes it."""
CLOCK_SQL = ("SELECT c.last_xact, txid_current(), h.position, h.hash FROM log_clock c "
             "LEFT JOIN LATERAL (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) h ON true")
"""The commit clock and the head, read under the lock in the BEGIN round trip."""
VERSION_SQL = "SELECT max(version) FROM events WHERE stream=?"
"""The log's stream version query, exactly as eventstore/log.py writes it."""
RECENT_STREAMS = 8
"""How many of the streams this handle asked the version of are prefetched under the lock."""
SPECULATE_AFTER = 2
"""Write transactions in a row that found nobody else had written before this handle
speculates that the next one will find the same (see PgTransactions._guard)."""
MAX_PENDING = 256
"""Statements that may wait for a round trip; more are sent on their own first."""


class _Transaction:
    """Context manager returned by PostgresDatabase.transaction()."""

    __slots__ = ("db", "write", "name", "ticket", "mark")

    def __init__(self, db: "PgTransactions", write: bool) -> None:
        self.db = db
        self.write = write
        self.name = ""
        self.ticket: Ticket[Any] | None = None
        self.mark = (0, 0)

    def __enter__(self) -> Any:
        db = self.db
        db._live()
        if self.write and db.readonly:
            raise db.readonly_error("a write transaction")
        if self.write and db.lock.owner != _get_ident():
            # The thread's outermost write: one command of a group (eventstore/_group.py).
            self.ticket = db.group.enter()
            return db
        db.lock.acquire()
        if db.depth == 0:
            db._begin(write=self.write)
        else:
            self.name = f"sp{db.depth}"
            self.mark = db._savepoint(self.name)
        db.depth += 1
        return db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        db = self.db
        if self.ticket is not None:
            db.group.exit(self.ticket, exc)
            if exc is None and self.ticket.error is not None:
                # Its writes failed when they were sent, after the body had ended (_confirm).
                raise self.ticket.error
            return
        try:
            db.depth -= 1
            if self.name:
                db._end_savepoint(self.name, self.mark, failed=exc_type is not None)
                return
            if exc_type is not None:
                db._rollback()
                return
            error = db._commit()
            if error is not None:
                raise error
        finally:
            db.lock.release()


class PgTransactions:
    """Transactions, the pending statements, the group commit's steps and the commit clock."""

    readonly: bool
    synchronous: str
    depth: int
    serial: int
    command: int
    write_serial: int
    lock_key: int
    schema: str
    on_commit: list[Callable[[], None]]
    on_rollback: list[Callable[[], None]]
    _conn: psycopg.Connection[Any] | None

    def _init_transactions(self) -> None:
        self.lock = Baton()
        """Serialises threads sharing this connection (held for a whole transaction, and
        handed from command to command inside a group)."""
        self.group = GroupCommit(self)  # type: ignore[arg-type]  # the same steps as SQLite's Database
        """The write path: concurrent commands share transactions (eventstore/_group.py)."""
        self.round_trips = 0
        """Messages sent to the server that waited for its answer (docs/postgres.md, "Round trips")."""
        self._pending: list[tuple[str, Callable[[Any], None] | None]] = []
        self._on_server = False
        """True once the current transaction's BEGIN has been sent."""
        self._answers: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}
        """Rows prefetched in the write transaction's first round trip, by (query, parameters)."""
        self._recent: dict[str, None] = {}
        """The streams whose version this handle asked for lately (oldest first)."""
        self._write = False
        self._schema_ready = False
        self._clock = False
        """True once the store's commit clock (log_clock and its triggers) is known to exist."""
        self._states = False
        """True once projection_state is known to exist (its rows are prefetched)."""
        self._txn_clock: tuple[int, int] | None = None
        """(clock value, our transaction id) read when the current write transaction began."""
        self._known: tuple[int, ...] = ()
        """Clock values that mean "no other writer since our last write transaction"."""
        self._epoch = 0
        self._epoch_serial = -1
        self._memo: dict[Any, Any] = {}
        self._memo_serial = -1
        self.speculations = 0
        """Commands run speculatively (one message; see _guard), for tests and the benchmark."""
        self.misfires = 0
        """Speculative runs whose check failed and were run again."""
        self._calm = 0
        """Write transactions in a row that found nobody else had written (see _guard)."""
        self._speculate = False
        """True while a command run by write() may skip the first round trip (foreign_epoch)."""
        self._cmd_open = False
        """True while the group's last joined command's RELEASE (and maybe writes) is pending."""
        self._cmds: list[Any] = []
        """The open group's members (eventstore/_group.py's list), for blaming a failed command."""

    if TYPE_CHECKING:
        # Provided by the class this mixin is part of (PostgresDatabase): the open
        # connection, the read-only refusal and the client-side binding of parameters.
        def _live(self) -> psycopg.Connection[Any]: ...

        def readonly_error(self, what: str) -> StoreError: ...

        def _mogrify(self, text: str, params: Any) -> str: ...

    # --- the pending statements and the round trip ---------------------------------------

    def _defer(self, text: str) -> None:
        """Queue a statement whose answer nobody needs (bound already) for the next round trip."""
        if len(self._pending) >= MAX_PENDING:
            self._flush()
        self._pending.append((text, None))
        if self._answers:
            self._invalidate(text)

    def _invalidate(self, text: str) -> None:
        """Forget the prefetched rows a write statement may change (by the table it names)."""
        low = text.lower()
        for key in list(self._answers):
            if ("projection_state" if key[0] is STATES_SQL else "events") in low:
                del self._answers[key]

    def _flush(self, final: str | None = None, params: Any = None) -> psycopg.Cursor[Any] | None:
        """Send the pending statements and then `final` in one round trip; the cursor is
        left on `final`'s result. Raises psycopg's error (the transaction is then aborted)."""
        conn = self._live()
        pending = self._pending
        if not pending:
            if final is None:
                return None
            self.round_trips += 1
            return conn.execute(final, params if params else None)
        batch = list(pending)
        pending.clear()
        if final is not None:
            batch.append((self._mogrify(final, params) if params else final, None))
        if self.depth:
            self._on_server = True
        self.round_trips += 1
        cur = conn.execute("; ".join(text for text, _ in batch))
        # Entries that capture a result (the clock, the states) are single statements at
        # the head of a transaction's first batch; a later entry may hold several (a
        # schema script), so the cursor is then simply moved to the very last result.
        for _text, capture in batch:
            if capture is not None:
                capture(cur)
            cur.nextset()
        while cur.nextset():
            pass
        return cur

    # --- transactions ----------------------------------------------------------------------

    def _begin(self, write: bool) -> None:
        """Queue BEGIN (and, for a write, the lock and the clock read) for the first round trip."""
        self._pending.clear()
        self._answers.clear()
        self._on_server = False
        self._txn_clock = None
        self.serial += 1
        self.command += 1
        self.write_serial += write
        self._write = write
        if not write:
            self._pending.append(("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None))
            return
        # Why READ COMMITTED and the lock first: every later statement takes a fresh
        # snapshot, so the head read after the lock includes every commit made before the
        # lock was granted; COMMIT releases the lock after the commit is visible. The clock
        # and the head are read by a later statement of the same round trip (docs/postgres.md).
        self._pending.append(("BEGIN ISOLATION LEVEL READ COMMITTED", None))
        if self.synchronous == "full":
            # Why: the WAL flush must not happen under the lock (see _commit).
            self._pending.append(("SET LOCAL synchronous_commit TO off", None))
        self._pending.append((f"SELECT pg_advisory_xact_lock({int(self.lock_key)})", None))
        if not self._schema_ready:
            self._pending.append((f"CREATE SCHEMA IF NOT EXISTS {self.schema}", None))
        if self._clock:
            self._pending.append((CLOCK_SQL, self._take_clock))
            if self._states:
                self._pending.append((STATES_SQL, self._take_states))
            if self._recent:
                # The versions of the streams this handle appended to lately: when another
                # writer committed meanwhile, the log asks for them again (one index probe
                # each here, a round trip each otherwise).
                self._pending.append((self._mogrify(
                    "SELECT s, (SELECT max(version) FROM events WHERE stream = s) FROM unnest(%s::text[]) AS s",
                    [list(self._recent)]), self._take_versions))

    def _take_clock(self, cur: psycopg.Cursor[Any]) -> None:
        row = cur.fetchone()
        assert row is not None
        self._txn_clock = (row[0], row[1])
        self._answers[HEAD_SQL, ()] = [(row[2], row[3])] if row[2] is not None else []

    def _take_states(self, cur: psycopg.Cursor[Any]) -> None:
        self._answers[STATES_SQL, ()] = cur.fetchall()

    def _take_versions(self, cur: psycopg.Cursor[Any]) -> None:
        for stream, version in cur.fetchall():
            self._answers[VERSION_SQL, (stream,)] = [(version,)]

    def _asked(self, sql: str, params: Any) -> None:
        """Remember the streams whose version the log asked for (see _begin)."""
        if sql == VERSION_SQL:
            recent = self._recent
            recent.pop(params[0], None)
            recent[params[0]] = None
            if len(recent) > RECENT_STREAMS:
                del recent[next(iter(recent))]

    def _savepoint(self, name: str) -> tuple[int, int]:
        """Queue a savepoint; returns where it sits (round trip count, pending index)."""
        mark = (self.round_trips, len(self._pending))
        self._defer(f"SAVEPOINT {name}")
        return mark

    def _end_savepoint(self, name: str, mark: tuple[int, int], failed: bool) -> None:
        """Release a savepoint, or roll back to it (then caches reload: on_rollback)."""
        if not failed:
            self._defer(f"RELEASE SAVEPOINT {name}")
            return
        self._answers.clear()
        if mark[0] == self.round_trips:
            # Nothing since the savepoint reached the server: forget its statements unsent.
            del self._pending[mark[1]:]
        else:
            try:
                self._flush()
            except psycopg.Error:
                pass  # a statement of the level being undone failed: ROLLBACK TO undoes it too
            try:
                self._flush(f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")
            except psycopg.Error as exc:
                raise translate_error(exc, "rollback to savepoint") from None
        self._notify(self.on_rollback)

    def _rollback(self) -> None:
        """Roll the outermost transaction back (nothing to send when it never reached the server)."""
        self._pending.clear()
        self._answers.clear()
        self._known = ()
        self._calm = 0
        conn = self._live()
        if self._on_server and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.round_trips += 1
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass  # the connection is gone: the server rolled back for us
        self._on_server = False
        self._notify(self.on_rollback)

    def _commit(self, last: list[Any] | None = None) -> StoreError | None:
        """COMMIT with whatever is still pending, in one round trip; the error or None.

        `last`: the group's members when its last command joined in a savepoint whose
        RELEASE is pending: a failure before the COMMIT is then that command's alone."""
        self._answers.clear()
        if not self._on_server and not self._has_work():
            self._pending.clear()  # nothing reached the server and nothing would change there
            if self.on_commit:
                self._notify(self.on_commit)
            return None
        # Why the flush comes after the COMMIT, in the same message: the write transaction
        # commits asynchronously, so PostgreSQL makes it visible and releases the advisory
        # lock as soon as its commit record is in the WAL buffers, without waiting for the
        # disk. The next statement runs in a transaction of its own with the session's
        # synchronous_commit (on): it writes a WAL record, so its commit waits until the
        # WAL is flushed past it, and therefore past ours (the WAL is one sequence). The
        # caller hears back only then: an acknowledged commit is durable, and the writers of
        # all processes share flushes instead of queueing one flush each behind the lock.
        final = "COMMIT"
        if self._write and self.synchronous == "full":
            final = "COMMIT; SELECT pg_logical_emit_message(true, 'lash-eventstore', '')"
        try:
            self._flush(final)
        except psycopg.Error as err:
            conn = self._live()
            if last and not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                # A statement before the COMMIT failed (the COMMIT did not run): the last
                # command's, since every earlier one's writes were confirmed (_confirm).
                try:
                    self._flush("ROLLBACK TO SAVEPOINT cmd; RELEASE SAVEPOINT cmd")
                except psycopg.Error:
                    pass  # the transaction cannot be saved: everything is rolled back below
                else:
                    last[-1].error = translate_error(err, "a grouped command's writes")
                    self._notify(self.on_rollback)
                    return self._commit()
            if self._write and not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE \
                    and not isinstance(err, (psycopg.errors.IntegrityError, psycopg.errors.SyntaxError)):
                # (A syntax error anywhere in the message stops it before its first statement
                # runs: nothing was committed then, though the session is idle too.)
                # The COMMIT ran and the flush statement after it failed (a lost connection
                # closes the handle instead): the transaction is in; caches reload.
                self._known = ()
                self._on_server = False
                return translate_error(err, "commit (committed; its flush was not confirmed)")
            self._on_server = True
            self._rollback()
            return translate_error(err, "commit")
        self._on_server = False
        if self._write:
            self._schema_ready = True
            # Nobody else wrote while we held the lock: the clock now holds either the
            # value we read (we changed nothing it watches) or our own transaction id.
            # Those values mean "nothing foreign" next time only if the value we read was
            # itself accounted for: compared by foreign_epoch() in this transaction (which
            # moved the epoch if it was foreign), or already known. Otherwise another
            # writer's change is not reflected in the epoch yet: forget, so it moves.
            clock = self._txn_clock
            if clock is not None and (self._epoch_serial == self.serial or clock[0] in self._known):
                self._calm = self._calm + 1 if clock[0] in self._known else 0
                self._known = tuple(clock)
            else:
                self._known = ()
                self._calm = 0
        if self.on_commit:
            self._notify(self.on_commit)
        return None

    def _has_work(self) -> bool:
        """True when a pending statement is more than BEGIN, the lock or the clock read."""
        return any(not text.startswith(("BEGIN", "SELECT pg_advisory_xact_lock", "CREATE SCHEMA IF NOT EXISTS",
                                        "SET LOCAL", "SAVEPOINT", "RELEASE SAVEPOINT"))
                   and capture is None for text, capture in self._pending)

    # --- the group's steps (called by eventstore/_group.py, holding the baton) ------------

    def begin_group(self) -> None:
        """Begin a group's write transaction (queued: see _begin); its leader's command runs at this level."""
        self._live()
        self._begin(write=True)
        self._cmd_open = False
        self.depth = 1

    def begin_command(self) -> None:
        """Start a command that joins the open group: its own savepoint. The previous
        command's writes still waiting for a round trip are sent first (see _confirm)."""
        if self._has_work() or (not self._on_server and self._txn_clock is None and self._clock):
            # Also when the leader sent nothing yet: its lock and clock read (or its
            # speculative check) must hold before anyone joins.
            self._confirm()
        self._cmds = self.group.members
        self._cmd_mark = self._savepoint("cmd")
        self.command += 1
        self.depth = 2

    def _confirm(self) -> None:
        """Send the previous command's pending writes (and its RELEASE) now, before the next
        command starts: a failure among them is then that command's alone.

        Why here and not with the next command's first statement: the next command may
        already have decided what to write from the failed command's effects (a cached head,
        a version), so it must not start before they are known to hold. The group's members
        list ends with the previous command (eventstore/_group.py appends each command when
        it ends): that ticket gets the error. A joined command's writes are undone by rolling
        back to its savepoint; the leader's have no savepoint (it ran at the transaction
        level), so the transaction is rolled back and a new one begun for the commands after it.
        """
        joined = self._cmd_open
        self._cmd_open = False
        try:
            self._flush()
            return
        except psycopg.Error as exc:
            error = translate_error(exc, "a grouped command's writes")
        members = self.group.members
        if joined:
            try:
                self._flush("ROLLBACK TO SAVEPOINT cmd; RELEASE SAVEPOINT cmd")
            except psycopg.Error as exc:
                raise translate_error(exc, "rollback to savepoint") from None
            self._answers.clear()
            self._notify(self.on_rollback)
        else:
            self._on_server = True
            self._rollback()
            self._begin(write=True)
        if members:
            members[-1].error = error

    def end_command(self, failed: bool) -> None:
        """Keep a joined command, or roll it back alone (then caches reload: on_rollback)."""
        self.depth = 1
        self._end_savepoint("cmd", self._cmd_mark, failed)
        self._cmd_open = not failed

    def abort_group(self) -> None:
        """Roll the whole transaction back (its leader failed before anyone joined)."""
        self.depth = 0
        self._rollback()

    def commit_group(self) -> StoreError | None:
        """COMMIT the group's transaction; the error (everything rolled back) or None. When
        the last joined command's pending writes fail, that command alone is rolled back
        (its ticket gets the error) and the others commit."""
        self.depth = 0
        last = self._cmds if self._cmd_open else None
        self._cmd_open = False
        return self._commit(last)

    # --- the seam's transaction surface --------------------------------------------------

    def transaction(self, write: bool = True) -> _Transaction:
        """A write transaction (advisory lock first) or a read one (one snapshot); savepoint when nested."""
        return _Transaction(self, write)

    def write(self, fn: Callable[[], T]) -> T:
        """Run `fn` (database work only, no blocking) as one command: concurrent callers of
        this handle share one transaction (group commit). A savepoint inside this thread's transaction."""
        if self.readonly:
            raise self.readonly_error("a write")
        if self.lock.owner == _get_ident():
            with self.transaction():
                return fn()
        if self._calm < SPECULATE_AFTER:
            return self.group.run(fn)
        self.speculations += 1
        try:
            return self.group.run(lambda: self._speculating(fn))
        except HeadMoved:
            self.misfires += 1
            # Another writer committed since our last write: nothing of the attempt was
            # kept, and the caches were dropped (_known too): this run reads under the lock.
            return self.group.run(fn)

    def _speculating(self, fn: Callable[[], T]) -> T:
        """Run a write() command that may skip the first round trip (see _guard)."""
        self._speculate = True
        try:
            return fn()
        except HeadMoved:
            raise
        except BaseException:
            # Why: the command may have failed on a cached answer (a stream's version: a
            # WrongExpectedVersion) that another writer made stale. Its failure stands only
            # once the check says nobody else wrote; otherwise it is run again.
            if any(text.startswith(GUARD_HEAD) for text, _ in self._pending):
                try:
                    self._flush()
                except psycopg.Error as exc:
                    error = translate_error(exc, "speculative check")
                    if isinstance(error, HeadMoved):
                        raise error from None
            raise
        finally:
            self._speculate = False

    @property
    def in_transaction(self) -> bool:
        """True while the calling thread is inside a transaction of this object."""
        return self.depth > 0 and self.lock.owner == _get_ident()

    def memo(self) -> dict[Any, Any] | None:
        """The current write transaction's memo, or None outside a write transaction of the
        calling thread: emptied when the transaction ends and on every rollback."""
        if not self.depth or not self._write or self.lock.owner != _get_ident():
            return None
        if self._memo_serial != self.serial:
            self._memo.clear()
            self._memo_serial = self.serial
        return self._memo

    def foreign_epoch(self) -> int:
        """Inside a write transaction: a number that moves when another connection has changed
        the log or the projection states since this connection's previous write transaction.

        The commit clock (`log_clock`, kept by triggers: the id of the last transaction that
        changed `events` or `projection_state`) is read under the lock in the transaction's
        first round trip; it proves "nobody else" when it still holds what our previous
        transaction left there. Anywhere else (a read transaction, a store without the clock) it moves.
        """
        if self._epoch_serial != self.serial:
            speculative = False
            if self._write and self._txn_clock is None and self._clock and self.depth:
                if self._speculate and self._known and self.depth == 1 and not self._on_server:
                    speculative = self._guard()
                if not speculative:
                    try:
                        self._flush()  # the BEGIN round trip: lock, clock and head
                    except psycopg.Error as exc:
                        raise translate_error(exc, "begin transaction") from None
            self._epoch_serial = self.serial
            clock = self._txn_clock if self._write else None
            if not speculative and (clock is None or clock[0] not in self._known):
                self._epoch += 1
        return self._epoch

    def _guard(self) -> bool:
        """Turn the pending clock read into the speculative check (GUARD_SQL); False when
        there is none to turn. Why: a handle that was the last writer assumes it still is
        and sends the lock, the check, its rows and the COMMIT in one message; the check
        runs under the lock, and when it fails nothing of the transaction is kept and the
        command runs again the ordinary way (write()). docs/postgres.md, "Round trips"."""
        for i, (text, capture) in enumerate(self._pending):
            if text is CLOCK_SQL:
                known = ",".join(str(int(k)) for k in self._known)
                self._pending[i] = (GUARD_SQL.format(known=known), capture)
                return True
        return False

    def data_version(self) -> int:
        """A number that changes whenever any connection commits (here: at every call)."""
        return self.foreign_epoch()

    @staticmethod
    def _notify(callbacks: list[Callable[[], None]]) -> None:
        for cb in callbacks:
            cb()
