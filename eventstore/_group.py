"""Group commit: the commands of concurrent callers of one connection share a write transaction.

Every write transaction of a `Database` starts here (`_Transaction` hands its outermost
write level to `GroupCommit`). A command is one caller's write: the body of a thread's
outermost `with db.transaction():`, or a closure (`run`, `submit`) such as one
`EventLog.append`. The first command to find the writer free *leads*: it takes the
connection, says `BEGIN IMMEDIATE` and runs its own command with no savepoint. When it
is done, the commands that queued meanwhile join the same transaction one after the
other, each inside its own `SAVEPOINT cmd`; a closure is run by whichever thread holds
the connection, a thread's body runs in that thread (the connection is handed over).
The last command of the group commits for all of them and wakes every member with the
outcome; the next queued command then leads the next group. docs/architecture.md says
why it is built this way.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

if TYPE_CHECKING:
    from .storage.sqlite import Database

__all__ = ["Baton", "GroupCommit", "Ticket"]

T = TypeVar("T")

LEAD, JOIN, DONE = 1, 2, 3
"""Roles a queued ticket is woken with: start the next group, run your body inside the
open group, or: your command is finished (result or error in the ticket)."""

MAX_GROUP = 64
"""The most commands one transaction holds: a bound on how long a group's first command waits."""

_get_ident = threading.get_ident


class Baton:
    """The right to use the connection: a re-entrant lock that its holder can hand to another thread.

    A group keeps the connection from its BEGIN to its COMMIT while the commands of
    several threads run inside it; threads that only read (outside any transaction)
    must not slip in between two of them and see the group's uncommitted rows, so the
    lock is passed from thread to thread without ever being released.
    """

    __slots__ = ("_lock", "owner", "count")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner = 0
        self.count = 0

    def acquire(self) -> bool:
        """Take the connection (re-entrant for the thread that holds it)."""
        me = _get_ident()
        if self.owner == me:
            self.count += 1
            return True
        self._lock.acquire()
        self.owner = me
        self.count = 1
        return True

    def release(self) -> None:
        """Give one level back; the last level frees the connection."""
        if self.count > 1:
            self.count -= 1
            return
        self.count = 0
        self.owner = 0
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def held(self) -> bool:
        """True when the calling thread holds the connection."""
        return self.owner == _get_ident()

    def hand_to(self, thread: int) -> None:
        """Give the connection, held once by the caller, to another (waiting) thread."""
        self.owner = thread
        self.count = 1


class Ticket(Generic[T]):
    """One command waiting for, or taking part in, a group."""

    __slots__ = ("fn", "thread", "wake", "role", "result", "error", "outcome", "notify", "leader", "context")

    def __init__(self, fn: Callable[[], T] | None, thread: int,
                 notify: Callable[["Ticket[T]"], None] | None = None,
                 context: contextvars.Context | None = None) -> None:
        self.fn = fn
        self.thread = thread
        """The waiting thread (0 for an asyncio submission, which no thread waits on)."""
        self.wake = threading.Lock()
        self.wake.acquire()  # released by whoever gives this ticket a role
        self.role = 0
        self.result: Any = None
        self.error: BaseException | None = None
        """The command's own failure (its savepoint was rolled back)."""
        self.outcome: BaseException | None = None
        """The group's failure to commit (then nothing of the group is in the file)."""
        self.notify = notify
        self.leader = False
        self.context = context

    def signal(self, role: int) -> None:
        """Give the ticket its role and wake its thread (or call its notify for DONE)."""
        self.role = role
        if role == DONE and self.notify is not None:
            try:
                self.notify(self)
            except Exception:  # noqa: BLE001 - e.g. its event loop closed: the others still get theirs
                logging.getLogger("eventstore.group").warning("a command's completion callback failed",
                                                              exc_info=True)
        else:
            self.wake.release()

    def value(self) -> T:
        """The command's result once DONE; raises its error, or the group's commit failure."""
        if self.outcome is not None:
            raise self.outcome
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[no-any-return]


class GroupCommit:
    """The write path of one Database: queues commands and runs them in shared transactions."""

    def __init__(self, db: "Database", max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.max_group = max_group
        self.mu = threading.Lock()
        """Guards `queue`, and `busy` when released (never held while SQL runs)."""
        self.queue: deque[Ticket[Any]] = deque()
        self.busy = threading.Lock()
        """Held from the moment a command takes the lead until the last group commits with
        nobody queued: while it is held, new commands queue instead of leading. A lock
        rather than a flag so that a caller alone can take it in one step without `mu`
        (Database.write); it is only ever released under `mu`, with the queue empty."""
        self.members: list[Ticket[Any]] = []
        """The commands of the open group (used only by the thread holding the baton)."""
        self._writer: threading.Thread | None = None
        # A SimpleQueue rather than a deque and a Condition: its put and blocking get are
        # one C call each (the writer thread is woken once per group of asyncio commands).
        self._leads: queue.SimpleQueue[Ticket[Any] | None] = queue.SimpleQueue()
        self._writer_mu = threading.Lock()
        self.groups = 0
        """Groups committed (for tests and the benchmark)."""
        self.commands = 0
        """Commands committed in those groups."""

    # --- entering ------------------------------------------------------------------

    def _enqueue(self, t: Ticket[Any]) -> bool:
        """Queue `t`, or make it the leader when the writer is free (returns True then)."""
        with self.mu:
            if self.busy.acquire(False):
                return True
            self.queue.append(t)
            return False

    def _await_role(self, t: Ticket[Any]) -> int:
        """Block until a queued ticket is given a role. Interrupted (KeyboardInterrupt
        in the main thread) before it was dequeued, the ticket leaves the queue;
        afterwards the role it was given is passed on so that the group is not stuck."""
        try:
            t.wake.acquire()
        except BaseException:
            with self.mu:
                if t in self.queue:
                    self.queue.remove(t)
                    raise
            t.wake.acquire()  # dequeued already: its role is being given right now
            if t.role == LEAD:
                self._pass_lead()
            elif t.role == JOIN:
                self._drive(None)
            raise
        return t.role

    def enter(self) -> Ticket[Any]:
        """Start the calling thread's command (its outermost write transaction); returns
        once the thread holds the connection inside the group's transaction."""
        t: Ticket[Any] = Ticket(None, _get_ident())
        role = LEAD if self._enqueue(t) else self._await_role(t)
        if role == LEAD:
            self._begin(t)
            return t
        try:
            self.db.begin_command()
        except BaseException as exc:  # the savepoint could not start: nothing of it ran
            t.error = exc
            self.members.append(t)
            outcome = self._drive(t)
            raise (outcome or exc) from exc
        return t

    def exit(self, t: Ticket[Any], exc: BaseException | None) -> None:
        """End the thread's command: keep it (exc None) or roll it back alone, then run
        or hand on the rest of the group. Returns once the group is durable; raises the
        group's commit failure. The caller re-raises `exc` itself."""
        if t.leader and exc is not None:
            self._abort_alone()
            return
        self._end_command(t, exc)
        outcome = self._drive(t)
        if outcome is not None:
            raise outcome

    def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` as one command; return its result once its group is durable.

        `fn` must only read and write the database, not block, and decide what it writes
        from what it reads: the group may roll it back and run it again (_run_plain)."""
        queued: Ticket[T] | None = None
        with self.mu:
            if not self.busy.acquire(False):
                queued = Ticket(fn, _get_ident())
                self.queue.append(queued)
        if queued is None:
            # The common case of a caller alone, written out: no ticket, no group list.
            db = self.db
            db.lock.acquire()
            try:
                db.begin_group()
            except BaseException:
                db.lock.release()
                self._pass_lead()
                raise
            try:
                result = fn()
            except BaseException:
                self._abort_alone()
                raise
            if not self.queue:  # a command queued after this look leads the next group instead
                error = db.commit_group()
                if error is None:  # counted while the connection is still ours
                    self.groups += 1
                    self.commands += 1
                db.lock.release()
                self._pass_lead()
                if error is not None:
                    raise error
                return result
            return self.carry_on(fn, result)
        if self._await_role(queued) == LEAD:
            self._lead_closure(queued)
        return queued.value()

    def carry_on(self, fn: Callable[[], T], result: T) -> T:
        """The caller led alone and ran `fn` at the transaction level; commands queued
        meanwhile: run them into the same transaction, commit, return `fn`'s result."""
        t: Ticket[T] = Ticket(fn, _get_ident())
        t.result = result
        t.leader = True
        self.members = [t]
        self._drive(t)
        return t.value()

    def submit(self, fn: Callable[[], T], notify: Callable[[Ticket[T]], None],
               keep_context: bool = True) -> Ticket[T]:
        """Queue `fn` as one command without waiting; `notify(ticket)` is called from a
        writer thread once its group is durable (or it failed). Used by eventstore.aio.
        `fn` as for run().

        With `keep_context`, `fn` runs in a copy of the caller's context variables."""
        t: Ticket[T] = Ticket(fn, 0, notify, contextvars.copy_context() if keep_context else None)
        if self._enqueue(t):
            self._lead_in_writer(t)
        return t

    def withdraw(self, t: Ticket[Any]) -> bool:
        """Take a submitted ticket out of the queue if it has not started: True then
        (it will never run). False: it runs, or ran, and its notify will be called."""
        with self.mu:
            if t in self.queue:
                self.queue.remove(t)
                return True
        return False

    # --- the group -------------------------------------------------------------------

    def _begin(self, t: Ticket[Any]) -> None:
        """Lead a new group: take the connection and BEGIN IMMEDIATE."""
        db = self.db
        db.lock.acquire()
        try:
            db.begin_group()
        except BaseException:
            db.lock.release()
            self._pass_lead()
            raise
        t.leader = True
        self.members = []

    def _end_command(self, t: Ticket[Any], exc: BaseException | None) -> None:
        if not t.leader:
            # Why a failure waits for the group: what it saw included the uncommitted
            # commands before it, so its answer is only true once they are durable.
            self.db.end_command(exc is not None)
            if exc is not None:
                t.error = exc
        self.members.append(t)

    def _abort_alone(self) -> None:
        """The leader's own command failed: nobody else is in the transaction yet."""
        self.db.abort_group()
        self.db.lock.release()
        self._pass_lead()

    def _run_closure(self, t: Ticket[Any]) -> None:
        """Run a queued closure inside its own savepoint, in the thread holding the baton."""
        db = self.db
        fn = t.fn
        assert fn is not None
        try:
            db.begin_command()
        except BaseException as exc:  # noqa: BLE001 - no savepoint, nothing of it ran
            t.error = exc
            self.members.append(t)
            return
        try:
            t.result = fn() if t.context is None else t.context.run(fn)
        except BaseException as exc:  # noqa: BLE001 - the command's own failure, delivered to it
            db.end_command(True)
            t.error = exc
        else:
            db.end_command(False)
        self.members.append(t)

    def _lead_closure(self, t: Ticket[Any]) -> None:
        """Lead a group with a closure: run it with no savepoint, then drive the group."""
        try:
            self._begin(t)
        except BaseException as exc:  # noqa: BLE001 - no transaction: nothing of it ran
            if t.notify is None:
                raise  # the caller's own thread: it gets the error
            # In the writer thread: the submitter gets the error, and the writer lives on
            # for the commands queued behind it (_begin passed the lead on).
            t.error = exc
            t.signal(DONE)
            return
        fn = t.fn
        assert fn is not None
        try:
            t.result = fn() if t.context is None else t.context.run(fn)
        except BaseException as exc:  # noqa: BLE001
            self._abort_alone()
            t.error = exc
            if t.notify is not None:
                t.signal(DONE)
            return
        self.members.append(t)
        self._drive(t)  # sets t.outcome (the committer does, whichever thread that is)

    def _drive(self, me: Ticket[Any] | None) -> BaseException | None:
        """Run the queued commands into the open group, then commit it.

        Closures run right here; a thread's command gets the connection handed to it,
        and this thread waits for the group's outcome (that thread drives on).
        """
        members = self.members
        mu = self.mu
        queue = self.queue
        while True:
            # Everything queued is taken at once: one look at the queue per batch, not per
            # command (32 threads queue faster than the leader could take them one by one).
            with mu:
                room = self.max_group - len(members)
                if not queue or room <= 0:
                    break
                if len(queue) <= room:
                    batch = list(queue)
                    queue.clear()
                else:
                    batch = [queue.popleft() for _ in range(room)]
            i, n = 0, len(batch)
            while i < n:
                t = batch[i]
                fn = t.fn
                if fn is None:
                    if i + 1 < n:  # the rest of the batch goes back, in order, for that thread
                        with mu:
                            queue.extendleft(reversed(batch[i + 1:]))
                    self.db.lock.hand_to(t.thread)
                    t.signal(JOIN)
                    if me is None or me.thread == 0:
                        return None  # nobody waits here: the committer notifies `me`
                    me.wake.acquire()
                    return me.outcome
                j = i + 1
                while j < n and batch[j].fn is not None:
                    j += 1
                self._run_plain(batch[i:j])
                i = j
        return self._commit(me)

    def _run_plain(self, run: list[Ticket[Any]]) -> None:
        """Run consecutive closures (appends) under one savepoint for them all.

        Why not one savepoint each: a command that fails before it writes (a version
        conflict, a known idempotency key) has nothing to undo, and that is how commands
        fail; two statements per command less is about a tenth of a grouped append.
        Whether it wrote is told by the connection's change counter. One that fails
        after writing (a projection's error, a full disk) cannot be undone alone without
        a savepoint: the whole run is rolled back to its savepoint and run again, one
        savepoint per command. That is sound because a closure only reads and writes the
        database and decides everything again from it each time it runs (run, submit).
        """
        db = self.db
        changes = getattr(db, "total_changes", None)
        if changes is None:
            # A backend without a change counter (PostgreSQL: its writes are sent late, with
            # the next statement that needs an answer) cannot tell a clean failure from one
            # that wrote: every command gets its own savepoint there.
            for t in run:
                self._run_closure(t)
            return
        try:
            db.begin_command("cmds", count=False)
        except BaseException as exc:  # noqa: BLE001 - no savepoint, none of them ran: each gets the error
            for t in run:
                t.error = exc
            self.members.extend(run)
            return
        for k, t in enumerate(run):
            fn = t.fn
            assert fn is not None
            db.command += 1  # each is its own command: its own start mark (log._command_flag)
            before = changes()
            try:
                t.result = fn() if t.context is None else t.context.run(fn)
            except BaseException as exc:  # noqa: BLE001 - the command's own failure, delivered to it
                if changes() == before:  # it wrote nothing: nothing to undo
                    t.error = exc
                    continue
                db.end_command(True, "cmds")  # undo the run so far, then redo it command by command
                for u in run[:k]:
                    u.result = u.error = None
                    self._run_closure(u)
                t.error = exc
                self.members.append(t)
                for u in run[k + 1:]:
                    self._run_closure(u)
                return
        db.end_command(False, "cmds")
        self.members.extend(run)

    def _commit(self, me: Ticket[Any] | None) -> BaseException | None:
        members, self.members = self.members, []
        error = self.db.commit_group()
        if error is None:  # counted while the connection is still ours
            self.groups += 1
            self.commands += len(members)
        self.db.lock.release()
        # Why the next group starts before the members wake: their wake-ups need the
        # GIL one after the other, and the next group's fsync can overlap them.
        self._pass_lead()
        for t in members:
            t.outcome = error
            if t.notify is not None:
                t.signal(DONE)
            elif t is not me:
                t.role = DONE  # Ticket.signal written out: one call less per member
                t.wake.release()
        return error

    def _pass_lead(self) -> None:
        """The connection is free: wake the first queued command to lead the next group."""
        with self.mu:
            if not self.queue:
                self.busy.release()
                return
            nxt = self.queue.popleft()
        if nxt.thread:
            # The waiting thread leads, not the writer thread: it must be woken either way,
            # and led by the writer it would need a second wake-up for its result.
            nxt.signal(LEAD)
        else:
            self._lead_in_writer(nxt)

    # --- the writer thread (asyncio submissions have no thread of their own) -------------

    def _lead_in_writer(self, t: Ticket[Any]) -> None:
        if self._writer is None:
            with self._writer_mu:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._writer_loop, name="eventstore-group-writer",
                                                    daemon=True)
                    self._writer.start()
        self._leads.put(t)

    def _writer_loop(self) -> None:
        leads = self._leads
        while True:
            t = leads.get()
            if t is None:
                return
            self._lead_closure(t)

    def stop_writer(self) -> None:
        """Stop the writer thread (after the groups it leads are done)."""
        with self._writer_mu:
            writer = self._writer
            if writer is None or writer is threading.current_thread():
                return
            self._leads.put(None)
        writer.join()
        with self._writer_mu:
            self._writer = None

    def idle(self) -> bool:
        """True when no command is running or queued."""
        with self.mu:
            return not self.busy.locked() and not self.queue
