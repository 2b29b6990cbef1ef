"""`eventstore.aio`: the store from asyncio, with commands group-committed.

`async with eventstore.aio.open(path) as store:` gives an `AsyncStore`. Every domain
facade is there under the same name (`store.sessions`, `store.leases`, ...), each
method awaitable with the same arguments and results as the synchronous one; they are
generated from the synchronous facades, not written out one by one. Commands run on the
store's one connection, where concurrent commands share write transactions (group
commit, eventstore/_group.py): `append` is queued straight into the group from the event
loop, facade commands run in worker threads whose transactions join the groups. Reads
run in worker threads with a read connection of their own each, so they neither block
the event loop nor wait for the writer. See docs/api.md.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import os
import threading
from typing import Any, Awaitable, Callable, Generator, ParamSpec, Sequence, TypeVar

from . import store as _store
from ._group import GroupCommit, Ticket
from .storage.sqlite import Database
from .blobs import BlobStore
from .chain import Anchor, VerifyReport
from .decoding import RecordedEvent
from .errors import InvalidArgument, ReadOnlyStore, ReadOnlyView, StoreClosed
from .facades import FACADES
from .log import ANY, AppendResult, EventLog

__all__ = ["AsyncFacade", "AsyncStore", "READS", "open"]

P = ParamSpec("P")
R = TypeVar("R")

READS: dict[str, frozenset[str]] = {
    "artifacts": frozenset({"get", "list"}),
    "attachments": frozenset({"get", "holds_ref", "list_refs"}),
    "effects": frozenset({"get", "journaled", "list", "scopes"}),
    "inputs": frozenset({"get", "list", "list_pending"}),
    "leases": frozenset({"get", "list"}),
    "processes": frozenset({
        "changes_since", "count_events_through", "events_after", "get", "get_lease", "grants",
        "grants_for_process", "handovers", "has_grant", "latest_handover", "lease_state", "list",
        "list_non_terminal", "recent_events", "require", "wake_events_after"}),
    "queue": frozenset({"get", "list", "list_pending"}),
    "sessions": frozenset({"get", "list", "load", "load_node"}),
    "triggers": frozenset({"deliveries", "get", "get_by_id", "list", "occurrence", "occurrences", "receipt"}),
}
"""Facade methods that only read: they run on the reader threads' own connections. Every
other method runs on the store's connection, its transactions joining the write groups.
A read that turns out to need a write (it calls `require_writable`, which raises
ReadOnlyStore on a reader's connection before anything is written) is run again there."""

class AsyncFacade:
    """One domain facade of an AsyncStore: each method of the synchronous facade, awaitable.

    `await store.leases.claim(...)` runs `Store.leases.claim(...)` as a command (its
    transaction joins the store's write groups); methods listed in `READS` run on a
    reader thread's own connection. Attributes that are not methods (settings such as
    `queue.completed_source_key_retention_ms`) are on the synchronous facade:
    `store.sync.queue`.
    """

    def __init__(self, owner: "AsyncStore", name: str) -> None:
        self._owner = owner
        self._name = name
        self._reads = READS.get(name, frozenset())
        self._methods: dict[str, Callable[..., Awaitable[Any]]] = {}

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method.startswith("_"):
            raise AttributeError(method)
        got = self._methods.get(method)
        if got is not None:
            return got
        sync = getattr(self._owner.sync, self._name)
        target = getattr(sync, method)  # AttributeError for an unknown name, as on the Store
        if not callable(target):
            raise AttributeError(f"{self._name}.{method} is not a method: "
                                 f"use store.sync.{self._name}.{method}")
        name, read = self._name, method in self._reads
        owner = self._owner

        @functools.wraps(target)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if read:
                return await owner._read(lambda h: getattr(getattr(h, name), method)(*args, **kwargs))
            return await owner._command(lambda: getattr(getattr(owner.sync, name), method)(*args, **kwargs))

        self._methods[method] = call
        return call

    def __dir__(self) -> list[str]:
        sync = getattr(self._owner.sync, self._name)
        return [m for m in dir(sync) if not m.startswith("_") and callable(getattr(sync, m, None))]


class AsyncStore:
    """An open store for asyncio code: `await` its methods; close with `await close()` or `async with`."""

    def __init__(self, store: _store.Store, *, readers: int = 4, workers: int = 64) -> None:
        if isinstance(readers, bool) or not isinstance(readers, int) or readers < 0:
            raise InvalidArgument(f"readers must be an integer >= 0, got {readers!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidArgument(f"workers must be an integer >= 1, got {workers!r}")
        self.sync = store
        """The synchronous Store underneath (same connection, same groups)."""
        group = getattr(store.db, "group", None)
        if not isinstance(group, GroupCommit):
            raise InvalidArgument(f"eventstore.aio needs a store whose storage has group commit "
                                  f"(the SQLite backend); {type(store.db).__name__} has none")
        self._group: GroupCommit = group
        # Commands block their thread until their group is durable, so the pool must be as
        # large as the number of commands that should share one fsync.
        self._workers = concurrent.futures.ThreadPoolExecutor(workers,
                                                              thread_name_prefix="eventstore-aio-cmd")
        memory = store.path == ":memory:"  # one connection only: reads share it
        self._readers = (concurrent.futures.ThreadPoolExecutor(
            readers, thread_name_prefix="eventstore-aio-read", initializer=self._open_reader)
            if readers and not memory else None)
        self._reader_local = threading.local()
        self._reader_handles: list[_store.Store] = []
        self._handles_lock = threading.Lock()
        self._inflight: set[asyncio.Future[Any]] = set()
        """Calls running in the thread pools."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queued = 0
        """Commands queued into the write groups by `_submit` and not yet delivered."""
        self._drained: asyncio.Event | None = None
        self._deliveries: collections.deque[tuple[asyncio.Future[Any], Ticket[Any]]] = collections.deque()
        self._wake_lock = threading.Lock()
        self._flush_due = False
        self._closing = False
        self._facades: dict[str, AsyncFacade] = {}

    # --- plumbing ------------------------------------------------------------------

    def _open_reader(self) -> None:
        """Reader thread start-up: its own connection to the file, refusing commands.

        Built without `eventstore.open`, which takes the write lock to check the schema:
        a reader must start while a writer holds it. It shares the writing handle's
        projection engine, so staleness (decided by the writer, which rebuilds and
        reconciles) is one record for both."""
        s = self.sync
        db: Any
        if getattr(s.db, "dialect", "sqlite") == "postgresql":
            from .storage.postgres import PostgresDatabase

            # A read-only session of its own: the server refuses any write through it.
            db = PostgresDatabase(s.path, synchronous=s.db.synchronous, busy_timeout_ms=s.db.busy_timeout_ms,
                                  readonly=True)
        else:
            db = Database(s.path, synchronous=s.db.synchronous, busy_timeout_ms=s.db.busy_timeout_ms)
        try:
            log = EventLog(db, registry=s.log.registry, compress_threshold=s.log.compress_threshold,
                           limits=s.log.limits, clock=s.clock)
            h = _store.Store(db, log, s.engine, BlobStore(db, s.log.compress_threshold, s.log.limits),
                             s.profile, s.clock)
        except BaseException:
            db.close()
            raise
        h.readonly = True  # a command on it raises ReadOnlyStore before writing anything
        log.on_append = None
        self._reader_local.handle = h
        with self._handles_lock:
            self._reader_handles.append(h)

    def _check_open(self) -> None:
        if self._closing:
            raise StoreClosed("the async store is closed (or closing)")

    async def _in_pool(self, pool: concurrent.futures.ThreadPoolExecutor, fn: Callable[[], R]) -> R:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # contextvars reach the worker, as with asyncio.to_thread
        fut = loop.run_in_executor(pool, ctx.run, fn)
        self._inflight.add(fut)
        fut.add_done_callback(self._inflight.discard)
        return await fut

    async def _command(self, fn: Callable[[], R]) -> R:
        self._check_open()
        return await self._in_pool(self._workers, fn)

    async def _read(self, fn: Callable[[Any], R]) -> R:
        self._check_open()
        if self._readers is None:
            return await self._in_pool(self._workers, lambda: fn(self.sync))
        try:
            return await self._in_pool(self._readers, lambda: fn(self._reader_local.handle))
        except (ReadOnlyView, ReadOnlyStore):  # it needs to write: refused before writing anything
            return await self._command(lambda: fn(self.sync))

    async def _submit(self, fn: Callable[[], R], keep_context: bool = True) -> R:
        """Queue `fn` into the write groups from the event loop; its result once durable.

        Cancelled while queued, the command is withdrawn (it never runs); cancelled
        later, it still commits or fails as a whole, and nobody is told which.
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        done: asyncio.Future[Ticket[R]] = loop.create_future()
        deliveries, wake = self._deliveries, self._wake_lock

        def notify(t: Ticket[R]) -> None:  # on the thread that committed the group
            # Why batched: one call_soon_threadsafe (a pipe write and a loop turn) per
            # group rather than per command; the loop thread is what limits a busy store.
            with wake:
                deliveries.append((done, t))
                if self._flush_due:
                    return
                self._flush_due = True
            loop.call_soon_threadsafe(self._flush)

        ticket = self._group.submit(fn, notify, keep_context)
        self._queued += 1
        try:
            t = await done
        except asyncio.CancelledError:
            if self._group.withdraw(ticket):
                self._settled(1)  # it will never run: nothing to wait for when draining
            raise
        return t.value()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None and self._queued:
            raise InvalidArgument("an AsyncStore serves one event loop at a time; this one has "
                                  "commands under way on another")
        self._loop = loop
        self._drained = asyncio.Event()

    def _flush(self) -> None:
        """On the loop: hand every delivered ticket to its awaiting task."""
        with self._wake_lock:
            batch = list(self._deliveries)
            self._deliveries.clear()
            self._flush_due = False
        for done, t in batch:
            if not done.done():  # a cancelled await already has its answer
                done.set_result(t)
        self._settled(len(batch))

    def _settled(self, n: int) -> None:
        self._queued -= n
        if self._queued == 0 and self._drained is not None:
            self._drained.set()

    # --- the log -----------------------------------------------------------------------

    async def append(self, stream: str, events: Sequence[Any], *, expected_version: int | str = ANY,
                     idempotency_key: str | None = None, now_ms: int | None = None) -> AppendResult:
        """Append events to one stream atomically (see Store.append); returns once durable.

        Bad input raises here, before anything is queued. With `idempotency_key`, a retry
        after a cancellation tells whether the first attempt committed (`replayed`).
        """
        fn = self.sync.log.prepare_append(stream, events, expected_version=expected_version,
                                          idempotency_key=idempotency_key, now_ms=now_ms)
        return await self._submit(fn, keep_context=False)  # an append reads no context variable

    async def read_stream(self, stream: str, from_version: int = 1, **kw: Any) -> list[RecordedEvent]:
        """One stream's events in version order, as a list (see Store.read_stream)."""
        return await self._read(lambda h: list(h.read_stream(stream, from_version, **kw)))

    async def read_all(self, from_position: int = 1, **kw: Any) -> list[RecordedEvent]:
        """Events in position order, as a list (see Store.read_all; bound it with to_position=)."""
        return await self._read(lambda h: list(h.read_all(from_position, **kw)))

    async def get(self, position: int) -> RecordedEvent | None:
        """The event at one position, or None."""
        return await self._read(lambda h: h.get(position))

    async def last_position(self) -> int:
        """The newest position (0 when the log is empty)."""
        return await self._read(lambda h: h.last_position())

    async def stream_version(self, stream: str) -> int:
        """A stream's current version (0 when it has no events)."""
        return await self._read(lambda h: h.stream_version(stream))

    async def command_span(self, position: int) -> tuple[int, int] | None:
        """(first, last) position of the command that appended the event at `position`."""
        return await self._read(lambda h: h.command_span(position))

    async def anchor(self) -> Anchor:
        """(position, hash) of the newest event (see Store.anchor)."""
        return await self._read(lambda h: h.anchor())

    async def verify(self, anchor: Anchor | str | None = None, check_file: bool = True) -> VerifyReport:
        """Walk the hash chain (see Store.verify)."""
        return await self._read(lambda h: h.verify(anchor, check_file=check_file))

    async def stream_info(self, stream: str) -> Any:
        """The catalogue row of one stream, or None (see Store.stream_info)."""
        return await self._read(lambda h: h.stream_info(stream))

    async def streams(self, prefix: str | None = None, limit: int | None = None) -> list[Any]:
        """Catalogue rows of all streams, or those starting with `prefix`."""
        return await self._read(lambda h: h.streams(prefix, limit))

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run any synchronous store call in a command thread: `await s.call(s.sync.leases.claim, ...)`.

        Typed precisely (the facades' generated methods are typed `Any`); its
        transactions join the write groups like every command's.
        """
        return await self._command(lambda: fn(*args, **kwargs))

    def __getattr__(self, name: str) -> AsyncFacade:
        if name.startswith("_") or name not in FACADES:
            raise AttributeError(f"AsyncStore has no attribute {name!r}")
        facade = self._facades.get(name)
        if facade is None:
            facade = self._facades[name] = AsyncFacade(self, name)
        return facade

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(FACADES))

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The store file."""
        return self.sync.path

    async def close(self) -> None:
        """Refuse new calls, wait for the ones under way (their groups commit), then close.

        Closing twice is harmless.
        """
        if self._closing and not self._inflight and self.sync.db.closed:
            return
        self._closing = True
        while self._inflight or self._queued:
            if self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
            if self._queued and self._drained is not None:
                self._drained.clear()
                if self._queued:
                    await self._drained.wait()
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        # Worker threads of cancelled calls may still be running their command: shutdown
        # waits for them, so every command that started ends committed or rolled back.
        self._workers.shutdown(wait=True)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._handles_lock:
            handles, self._reader_handles = self._reader_handles, []
        for h in handles:
            h.close()
        self._group.stop_writer()
        self.sync.close()

    async def __aenter__(self) -> "AsyncStore":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class _Opening:
    """What `open()` returns: await it, or use it with `async with`."""

    def __init__(self, path: str | os.PathLike[str], readers: int, workers: int, kw: dict[str, Any]) -> None:
        self._args = (path, readers, workers, kw)
        self._store: AsyncStore | None = None

    async def _open(self) -> AsyncStore:
        path, readers, workers, kw = self._args
        # Opening reads (and may create) the file: off the event loop.
        sync = await asyncio.to_thread(lambda: _store.open(path, **kw))
        try:
            return AsyncStore(sync, readers=readers, workers=workers)
        except BaseException:
            sync.close()
            raise

    def __await__(self) -> Generator[Any, None, AsyncStore]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncStore:
        self._store = await self._open()
        return self._store

    async def __aexit__(self, *exc: Any) -> None:
        if self._store is not None:
            await self._store.close()


def open(path: str | os.PathLike[str], *, readers: int = 4, workers: int = 64, **kw: Any) -> _Opening:
    """Open a store for asyncio: `async with eventstore.aio.open(path) as store:` (or `await`).

    Keyword arguments are those of `eventstore.open`. `readers` threads (each with its own
    read connection) serve reads; up to `workers` facade commands run at once, and that
    many can share one group's fsync.
    """
    return _Opening(path, readers, workers, kw)
