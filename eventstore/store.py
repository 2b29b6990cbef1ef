"""The public entry point: `open()` and the `Store` it returns.

A Store is one SQLite connection, its event log, its blob table, the projection engine,
and the domain facades (`store.sessions`, `store.leases`, ...): typed properties, each
built on first use. `store.at(position)` returns a read-only view of the same facades
over projections replayed up to that position (time travel). Facades registered by
other packages with `register_facade` are reached with `store.facade(name)`.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Sequence, TypeVar

import attrs

from . import codec
from .blobs import PUTS_SCHEMA as BLOB_PUTS_SCHEMA
from .storage import Storage
from .storage.sqlite import Database, check_file, create_private_file
from .blobs import SCHEMA as BLOB_SCHEMA
from .blobs import BlobStore
from .chain import Anchor, VerifyReport
from .clock import system_clock
from .errors import FileError, InvalidArgument, NotAnEventStore, NotOnThisBackend, SchemaTooNew, StoreError
from .checks import find_unencodable, guard_public_methods
from .events import EventRegistry
from .log import ANY, APPLICATION_ID, SCHEMA, SCHEMA_VERSION, AppendResult, EventLog, RecordedEvent

from .facades import FACADES as _FACADES
from .facades import register_facade

if TYPE_CHECKING:  # the projections and the domains import the core, so it imports them lazily
    from projections.base import Projection
    from projections.catalogue import StreamInfo
    from projections.engine import ProjectionEngine, ProjectionStatus, ProjectionVerifyReport, RebuildReport

    from .attachments import Attachments
    from .commits import Artifacts
    from .effects import Effects
    from .inputs import Inputs
    from .leases import Leases
    from .processes import Processes
    from .queue import Queue
    from .sessions import Sessions
    from .triggers import Triggers

DOMAIN_PROJECTIONS: dict[str, tuple[str, ...]] = {
    "sessions": ("sessions", "catalogue"),
    "leases": ("leases", "sessions"),
    "queue": ("queue", "leases"),
    "inputs": ("inputs", "leases"),
    "attachments": ("graph",),
    "artifacts": ("graph", "inputs"),
    "processes": ("processes",),
    "triggers": ("triggers",),
    "effects": ("effects",),
}
"""The projections each domain facade reads: a backend that lacks one refuses the domain."""

T = TypeVar("T")

__all__ = ["Store", "StoreContext", "StoreInfo", "StoreView", "load_domains", "open", "register_facade"]


@attrs.frozen
class StoreInfo:
    """A summary of a store file, as `eventstore info` prints it."""

    path: str
    schema_version: int
    profile: str
    synchronous: str
    events: int
    streams: int
    last_position: int
    head: str
    file_bytes: int
    blobs: int
    blob_bytes: int
    projections: tuple["ProjectionStatus", ...]


class StoreContext:
    """What a domain facade works on: a Store, or a read-only StoreView for time travel.

    The facades are typed properties, built once per store or view on first use (the
    import happens then too: a domain package loads only when it is used or the store opens).
    """

    db: Storage
    log: EventLog
    engine: "ProjectionEngine"
    blobs: BlobStore
    readonly: bool
    clock: Callable[[], int]
    profile: str
    position: int | None = None
    """The position a time-travel view shows; None on a Store (it shows the present)."""

    # --- the domain facades ---------------------------------------------------------

    @cached_property
    def sessions(self) -> Sessions:
        """Sessions: create, list, delete, purge, and the runtime commit (`commit`)."""
        self._require_domain("sessions")
        from .sessions import Sessions

        return Sessions(self)

    @cached_property
    def leases(self) -> Leases:
        """Session execution leases: claim, renew, release, reclaim."""
        self._require_domain("leases")
        from .leases import Leases

        return Leases(self)

    @cached_property
    def queue(self) -> Queue:
        """Queued work: enqueue, claim, complete, cancel, list."""
        self._require_domain("queue")
        from .queue import Queue

        return Queue(self)

    @cached_property
    def inputs(self) -> Inputs:
        """Pending turn inputs: enqueue, claim, complete, defer, cancel, interrupt."""
        self._require_domain("inputs")
        from .inputs import Inputs

        return Inputs(self)

    @cached_property
    def attachments(self) -> Attachments:
        """The attachments manifest: record and forget attachment intents."""
        self._require_domain("attachments")
        from .attachments import Attachments

        return Attachments(self)

    @cached_property
    def artifacts(self) -> Artifacts:
        """Session artifacts and maintenance: tombstones, vacuum, blob GC."""
        self._require_domain("artifacts")
        from .commits import Artifacts

        return Artifacts(self)

    @cached_property
    def processes(self) -> Processes:
        """The process registry: register, events, wakes, grants, leases, prune, change feed."""
        self._require_domain("processes")
        from .processes import Processes

        return Processes(self)

    @cached_property
    def triggers(self) -> Triggers:
        """Triggers: subscriptions, occurrences and their deliveries."""
        self._require_domain("triggers")
        from .triggers import Triggers

        return Triggers(self)

    @cached_property
    def effects(self) -> Effects:
        """The effect replay journal: journaled calls, strict replay, awaits."""
        self._require_domain("effects")
        from .effects import Effects

        return Effects(self)

    unported: frozenset[str] = frozenset()
    """Projections the store's backend does not keep yet (empty on SQLite)."""
    backend: str = "SQLite"

    def _require_domain(self, domain: str) -> None:
        """Raise NotOnThisBackend when a projection the domain reads is not kept by this backend."""
        missing = [p for p in DOMAIN_PROJECTIONS.get(domain, ()) if p in self.unported]
        if missing:
            raise NotOnThisBackend(f"the {domain} domain", self.backend,
                                   f"its projections {', '.join(missing)} are not ported")

    def facade(self, name: str) -> Any:
        """A facade registered with `register_facade(name, factory)`, built once per store."""
        built = self._facades.get(name)
        if built is None:
            factory = _FACADES.get(name)
            if factory is None:
                raise InvalidArgument(f"no facade named {name!r} is registered (known: {sorted(_FACADES)})")
            built = self._facades[name] = factory(self)
        return built

    # --- shared plumbing ------------------------------------------------------------

    _facades: dict[str, Any]

    @property
    def path(self) -> str:
        """The file this store was opened on."""
        return self.db.path

    def now_ms(self) -> int:
        """The injected clock's current time in milliseconds."""
        return self.clock()

    def transaction(self) -> ContextManager[Any]:
        """A write transaction (BEGIN IMMEDIATE); appends inside it commit together.

        The outermost one of a thread is one command: while other threads of this handle
        are writing, it joins their transaction in a savepoint of its own (group commit)
        and returns only once that transaction is durable. Nested use becomes a savepoint.
        Domain commands read projections and append inside one of these so that their
        decision and its events are atomic.
        """
        return self.db.transaction(write=True)

    def command(self) -> ContextManager[Any]:
        """The write transaction of one domain command (a savepoint when nested).

        Like `transaction()`, except that an append made directly inside it (not inside a
        further nested transaction) takes no savepoint of its own: a command lets every
        failure propagate, so its own transaction or savepoint undoes a half-done append.
        Use it only for code that never catches an exception raised by an append it made.
        """
        return _Command(self.db)

    def run_command(self, fn: Callable[[], T]) -> T:
        """Run `fn` as one domain command and return its result: `with self.command():
        return fn()`, for a command that is a closure (see `Storage.write`).

        Outside any transaction of the calling thread `fn` runs as a closure of the write
        path (`Storage.write`), which a caller alone enters and leaves with fewer steps
        than a thread's transaction. `fn` must therefore only read and write the
        database and decide everything from what it reads: group commit may roll it back
        and run it again, and may run it in another thread that holds the connection.
        Inside a transaction it runs in a `command()` level as before.
        """
        db = self.db
        if db.in_transaction:
            with _Command(db):
                return fn()
        return db.write(lambda: _run_marked(db, fn))

    def append(self, stream: str, events: Sequence[Any], *, expected_version: int | str = ANY,
               idempotency_key: str | None = None, now_ms: int | None = None) -> AppendResult:
        """Append events to one stream atomically; see EventLog.append."""
        try:
            return self.log.append(stream, events, expected_version=expected_version,
                                   idempotency_key=idempotency_key, now_ms=now_ms)
        except UnicodeEncodeError:
            # What names_unencodable_text does for the other public methods, written out
            # here: the wrapper's call layer would cost every append (docs/benchmarks.md).
            found = (find_unencodable(stream, "stream") or find_unencodable(events, "events")
                     or find_unencodable(idempotency_key, "idempotency_key"))
            if found is None:
                raise
            raise InvalidArgument(found) from None

    append.__dict__["guards_unencodable_text"] = True

    def stream_version(self, stream: str) -> int:
        """A stream's current version (0 when it has no events)."""
        return self.log.stream_version(stream)

    def require_fresh(self, projection: str) -> None:
        """Raise ProjectionStale if `projection` must be rebuilt before it is read
        (NotOnThisBackend if the store's backend does not keep it)."""
        if projection in self.unported:
            raise NotOnThisBackend(f"the {projection} projection", self.backend)
        self.engine.require_fresh(projection)

    def read_transaction(self) -> ContextManager[Any]:
        """A read transaction: every read inside sees one consistent snapshot."""
        return self.db.transaction(write=False)

    def require_writable(self, what: str) -> None:
        """Raise ReadOnlyView when called on a time-travel view (commands call this first)."""
        if self.readonly:
            from .errors import ReadOnlyView

            raise ReadOnlyView(f"{what}: this is a read-only view at position "
                               f"{getattr(self, 'position', '?')}; issue commands on the Store")

    def stream_info(self, stream: str) -> "StreamInfo | None":
        """The catalogue row of one stream (version, event count, positions), or None."""
        from projections import catalogue

        self.require_fresh("catalogue")
        return catalogue.get_stream(self.db, stream)

    def streams(self, prefix: str | None = None, limit: int | None = None) -> "list[StreamInfo]":
        """Catalogue rows of all streams (or those starting with `prefix`)."""
        from projections import catalogue

        self.require_fresh("catalogue")
        return catalogue.list_streams(self.db, prefix, limit)


class _Command:
    """The context manager of `StoreContext.command()`: a write transaction level that
    records itself in `db.command_mark` while it is the innermost command."""

    __slots__ = ("db", "txn", "saved")

    def __init__(self, db: Storage) -> None:
        self.db = db

    def __enter__(self) -> Any:
        db = self.db
        self.txn = db.transaction(write=True)
        entered = self.txn.__enter__()
        # Set after the level is open, by the thread that holds it: no other thread's
        # statement runs on the connection until this level is left (see the storage seam).
        self.saved = db.command_mark
        db.command_mark = (threading.get_ident(), db.depth)
        return entered

    def __exit__(self, *exc: Any) -> Any:
        self.db.command_mark = self.saved
        return self.txn.__exit__(*exc)


def _run_marked(db: Storage, fn: Callable[[], T]) -> T:
    """Run a command's closure at the level the write path opened for it, recorded in
    `db.command_mark` as `_Command` does (by the thread running it, which holds the
    connection: a group may run a queued closure in its leader's thread)."""
    saved = db.command_mark
    db.command_mark = (threading.get_ident(), db.depth)
    try:
        return fn()
    finally:
        db.command_mark = saved


class Store(StoreContext):
    """An open event store file. Use as a context manager, or call close()."""

    def __init__(self, db: Storage, log: EventLog, engine: "ProjectionEngine", blobs: BlobStore,
                 profile: str, clock: Callable[[], int]) -> None:
        self.db = db
        self.log = log
        self.engine = engine
        self.blobs = blobs
        self.profile = profile
        self.clock = clock
        self.readonly = db.readonly
        """True when opened with readonly=True: commands raise ReadOnlyStore."""
        self._facades = {}
        log.on_append = engine.apply_inline

    def require_writable(self, what: str) -> None:
        """Raise ReadOnlyStore when the store was opened with readonly=True."""
        if self.readonly:
            raise self.db.readonly_error(what)

    # --- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Close the connection. Closing twice is harmless."""
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the log -----------------------------------------------------------------

    def read_stream(self, stream: str, from_version: int = 1, **kw: Any) -> Iterator[RecordedEvent]:
        """Yield one stream's events in version order (lazy, paged)."""
        return self.log.read_stream(stream, from_version, **kw)

    def read_all(self, from_position: int = 1, **kw: Any) -> Iterator[RecordedEvent]:
        """Yield all events in position order (lazy, paged); filter with types= or streams=."""
        return self.log.read_all(from_position, **kw)

    def follow(self, from_position: int = 1, **kw: Any) -> Iterator[RecordedEvent]:
        """Yield events as they commit, from any process; see EventLog.follow."""
        return self.log.follow(from_position, **kw)

    def get(self, position: int) -> RecordedEvent | None:
        """The event at one position, or None."""
        return self.log.get(position)

    def last_position(self) -> int:
        """The newest position (0 when the log is empty)."""
        return self.log.last_position()

    def command_span(self, position: int) -> tuple[int, int] | None:
        """(first, last) position of the command (one caller's write) that appended the
        event at `position`; None for a row written before command marks existed."""
        return self.log.command_span(position)

    def anchor(self) -> Anchor:
        """(position, hash) of the newest event: keep it outside the file and pass it to
        `verify(anchor)` later to prove the log up to it was neither changed nor cut off."""
        return self.log.anchor()

    def checkpoint(self) -> Anchor:
        """Deprecated alias of `anchor()` (a session's checkpoint is another thing)."""
        import warnings

        warnings.warn("Store.checkpoint() is renamed Store.anchor(); checkpoint() will be removed",
                      DeprecationWarning, stacklevel=2)
        return self.log.anchor()

    def verify(self, anchor: Anchor | str | None = None,
               progress: Callable[[int], None] | None = None, check_file: bool = True,
               blobs: bool = True) -> VerifyReport:
        """Walk the hash chain (and check the anchor, if given), the storage class of every
        chained column and the idempotency keys; then, unless turned off, every blob's
        bytes against its ref (`blobs`) and SQLite's own integrity check (`check_file`)."""
        return self.log.verify(anchor, progress, check_file=check_file, check_blobs=blobs)

    # --- projections -------------------------------------------------------------

    def rebuild(self, projections: Sequence[str] | None = None,
                progress: Callable[[int, int], None] | None = None) -> "RebuildReport":
        """Rebuild projections from the log into fresh tables and swap them in."""
        self.require_writable("rebuild")
        return self.engine.rebuild(projections, progress)

    def verify_projections(self, projections: Sequence[str] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> "ProjectionVerifyReport":
        """Rebuild into scratch and compare with the live tables."""
        return self.engine.verify(projections, progress)

    def projection_status(self) -> "list[ProjectionStatus]":
        """Each projection's code version, stored version, position and staleness."""
        return self.engine.status()

    def at(self, position: int | None = None, streams: Sequence[str] | None = None) -> "StoreView":
        """Time travel: a read-only view of every projection as it was at `position`.

        With `streams`, only those streams' events are replayed (faster, and enough
        to inspect one session or process). Each projection is replayed when the view
        first reads it, so a reader pays only for what it reads.
        """
        if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
            raise InvalidArgument(f"position must be an integer >= 0, got {position!r}")
        last = self.last_position()
        if position is None:
            position = last
        if position > last:
            raise InvalidArgument(f"position {position} is beyond the end of the log ({last})")
        # Lazy: each projection is replayed when the view first reads it (projections/lazy.py).
        mem = self.engine.replay(position, streams, lazy=True)
        return StoreView(self, mem, position)

    def info(self) -> StoreInfo:
        """A summary of the file: events, streams, size, blobs and projection status."""
        from projections import catalogue

        streams, _events = catalogue.totals(self.db) if "catalogue" not in self.engine.stale else (0, 0)
        head = self.anchor()
        nblobs, _logical, stored = self.blobs.stats()
        size = 0
        if "://" in self.path:  # a server store: what its tables and indexes occupy
            size = self.db.storage_bytes()
        elif self.path != ":memory:":
            for suffix in ("", "-wal"):
                try:
                    size += os.path.getsize(self.path + suffix)
                except OSError:
                    pass
        return StoreInfo(self.path, SCHEMA_VERSION, self.profile, self.db.synchronous, head.position,
                         streams, head.position, head.hash, size, nblobs, stored,
                         tuple(self.projection_status()))


class StoreView(StoreContext):
    """A read-only view over projections replayed to a position (from `Store.at`)."""

    position: int
    """The log position the view shows (never None on a view)."""

    def __init__(self, store: Store, db: Storage, position: int) -> None:
        self.store = store
        self.db = db
        self.log = store.log
        self.engine = store.engine
        self.blobs = store.blobs
        self.clock = store.clock
        self.profile = store.profile
        self.position = position
        self.readonly = True
        self.unported = store.unported
        self.backend = store.backend
        self._facades = {}

    @property
    def path(self) -> str:
        """The file of the store this view was taken from."""
        return self.store.path

    def require_fresh(self, projection: str) -> None:
        """A replayed view is always fresh: it was built by the current code (NotOnThisBackend
        for a projection the store's backend does not keep)."""
        if projection in self.unported:
            raise NotOnThisBackend(f"the {projection} projection", self.backend)

    def now_ms(self) -> int:
        """The store's clock (views never decide anything; provided for symmetry)."""
        return self.store.now_ms()

    def close(self) -> None:
        """Free the in-memory database."""
        self.db.close()

    def __enter__(self) -> "StoreView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# A lone surrogate in a stream name or key fails deep inside (chain hashing, SQLite);
# the guard turns that UnicodeEncodeError into InvalidArgument naming the argument.
# The plumbing every domain command calls several times (the clock, its transaction,
# the staleness and writability checks) takes no caller text and encodes none: it is
# left unwrapped, a Python call less each (marked as if already guarded).
for _cls in (StoreContext, Store, StoreView):
    for _name in ("now_ms", "transaction", "command", "run_command", "read_transaction", "require_fresh", "require_writable"):
        _fn = _cls.__dict__.get(_name)
        if _fn is not None:
            _fn.guards_unencodable_text = True
guard_public_methods(Store)
guard_public_methods(StoreView)


def open(
    path: str | os.PathLike[str],
    *,
    profile: str = "balanced",
    synchronous: str = "full",
    clock: Callable[[], int] | None = None,
    rebuild_stale: bool = False,
    busy_timeout_ms: int = 15_000,
    limits: codec.Limits | None = None,
    registry: EventRegistry | None = None,
    projections: "Sequence[Projection] | None" = None,
    create: bool = True,
    readonly: bool = False,
) -> Store:
    """Open (or create, 0600) an event store file and return a Store.

    readonly=True opens an existing store without ever writing it or waiting for the
    write lock (it works on a read-only file, directory or mount, and on a full disk);
    every write through it raises ReadOnlyStore. create=False (implied by readonly)
    refuses a missing or empty file instead of making it a store.

    profile: "low_latency" (never compress), "balanced" (lz4 at 4 KiB) or "compact"
    (lz4 at 1 KiB). synchronous: "full" (an acknowledged append survives power loss)
    or "normal" (survives a process crash; the last commits may be lost on power loss).
    A newer schema, a foreign SQLite file, garbage or a truncated file raise typed
    errors and leave the file untouched.
    """
    from projections import REGISTRY as PROJECTIONS
    from projections.engine import ProjectionEngine

    load_domains()
    if profile not in codec.PROFILES:
        raise InvalidArgument(f"profile must be one of {sorted(codec.PROFILES)}, got {profile!r}")
    if synchronous not in ("full", "normal"):
        raise InvalidArgument(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
    if clock is not None and not callable(clock):
        raise InvalidArgument("clock must be a callable returning integer milliseconds")
    path = os.fspath(path)
    if path.startswith(("postgresql://", "postgres://")):
        return _open_postgres(path, profile=profile, synchronous=synchronous, clock=clock,
                              rebuild_stale=rebuild_stale, busy_timeout_ms=busy_timeout_ms, limits=limits,
                              registry=registry, projections=projections, create=create, readonly=readonly)
    memory = path == ":memory:"
    if readonly:
        if memory:
            raise InvalidArgument("readonly=True needs a store file, not ':memory:'")
        if rebuild_stale:
            raise InvalidArgument("rebuild_stale=True writes the file; it cannot go with readonly=True")
        create = False
    if not memory and check_file(path):  # True: the file is missing or empty
        if not os.path.exists(path):
            if not create:
                raise FileError(path, "no such store file (and create=False)")
            create_private_file(path)
        elif not create:
            # SQLite would take an empty file for an empty database and make it a store.
            raise NotAnEventStore(path, "an empty file (0 bytes) is not an event store; it was left as it is")
    if readonly:
        return _open_readonly(path, busy_timeout_ms, clock, limits, registry, projections, profile)
    db = Database(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    try:
        # One read transaction: the identity is three reads, and another process creating
        # the file may commit between them (tables seen, stamp not yet seen otherwise).
        with db.transaction(write=False):
            _identify(db, path)
        if not memory:
            db.enable_wal()
        limits = limits or codec.Limits()
        threshold = codec.PROFILES[profile]
        log = EventLog(db, registry=registry, compress_threshold=threshold, limits=limits,
                       clock=clock or system_clock)
        engine = ProjectionEngine(db, log, projections if projections is not None else PROJECTIONS.all())
        with db.transaction():
            # Checked again under the write lock: many processes may race to create the file.
            if _identify(db, path):
                db.execute(SCHEMA)
                db.execute(BLOB_SCHEMA)
                db.write_stamp(APPLICATION_ID, SCHEMA_VERSION)
            elif db.read_stamp()[1] < SCHEMA_VERSION:
                # Version 1 -> 2 (the command marks in `flags`) and 2 -> 3 (compact ids in
                # payloads) need no data change: rows already written keep flags without
                # marks and ids as strings, which this code reads as before, and their
                # hashes cover their bytes as stored. Stamped so that older code refuses
                # the file rather than misread the new flags or the id extension.
                db.write_stamp(None, SCHEMA_VERSION)
            # Every open, not only a new file's: stores written before the table existed get it.
            db.execute(BLOB_PUTS_SCHEMA)
            engine.open(log.last_position())
        store = Store(db, log, engine, BlobStore(db, threshold, limits, clock or system_clock), profile,
                      clock or system_clock)
        if rebuild_stale and engine.stale:
            store.rebuild(list(engine.stale))
        return store
    except BaseException:
        db.close()
        raise


def _open_postgres(url: str, *, profile: str, synchronous: str, clock: Callable[[], int] | None,
                   rebuild_stale: bool, busy_timeout_ms: int, limits: codec.Limits | None,
                   registry: EventRegistry | None, projections: "Sequence[Projection] | None",
                   create: bool, readonly: bool) -> Store:
    """open() for a `postgresql://` URL: one schema of a PostgreSQL database (docs/postgres.md)."""
    from projections import REGISTRY as PROJECTIONS
    from projections.engine import ProjectionEngine

    try:
        from .storage.postgres import PORTED_PROJECTIONS, PostgresDatabase
    except ImportError as exc:
        raise StoreError(f"{url}: the PostgreSQL backend needs psycopg: pip install "
                         f"'lash-eventstore[postgres]' ({exc})") from None
    if readonly and rebuild_stale:
        raise InvalidArgument("rebuild_stale=True writes the store; it cannot go with readonly=True")
    wanted = list(projections) if projections is not None else PROJECTIONS.all()
    kept = [p for p in wanted if p.name in PORTED_PROJECTIONS]
    unported = frozenset(p.name for p in PROJECTIONS.all() if p.name not in PORTED_PROJECTIONS)
    db = PostgresDatabase(url, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms, readonly=readonly)
    try:
        with db.transaction(write=False):
            new = _identify(db, url)
        if new and (not create or readonly):
            raise FileError(url, "no event store in this schema (and create=False)")
        limits = limits or codec.Limits()
        threshold = codec.PROFILES[profile]
        log = EventLog(db, registry=registry, compress_threshold=threshold, limits=limits,
                       clock=clock or system_clock)
        engine = ProjectionEngine(db, log, kept)
        if readonly:
            # Nothing is created, caught up or stamped: a projection that would need it is stale here.
            with db.transaction(write=False):
                engine.open_readonly(log.last_position())
        else:
            with db.transaction():  # the advisory lock: concurrent openers create the schema once
                if _identify(db, url):
                    db.execute(SCHEMA)
                    db.execute(BLOB_SCHEMA)
                    db.write_stamp(APPLICATION_ID, SCHEMA_VERSION)
                elif db.read_stamp()[1] < SCHEMA_VERSION:
                    db.write_stamp(None, SCHEMA_VERSION)
                db.execute(BLOB_PUTS_SCHEMA)  # every open, as on SQLite
                engine.open(log.last_position())
                db.ensure_clock()
        store = Store(db, log, engine, BlobStore(db, threshold, limits, clock or system_clock), profile,
                      clock or system_clock)
        store.unported = unported
        store.backend = "PostgreSQL"
        if rebuild_stale and engine.stale:
            store.rebuild(list(engine.stale))
        return store
    except BaseException:
        db.close()
        raise


def _open_readonly(path: str, busy_timeout_ms: int, clock: Callable[[], int] | None,
                   limits: codec.Limits | None, registry: EventRegistry | None,
                   projections: "Sequence[Projection] | None", profile: str) -> Store:
    """open(readonly=True): identify the file and read the projections' state in one read
    transaction; no WAL switch, no schema, no catch-up (each of those writes)."""
    from projections import REGISTRY as PROJECTIONS
    from projections.engine import ProjectionEngine

    db = Database(path, busy_timeout_ms=busy_timeout_ms, readonly=True)
    try:
        limits = limits or codec.Limits()
        threshold = codec.PROFILES[profile]
        log = EventLog(db, registry=registry, compress_threshold=threshold, limits=limits,
                       clock=clock or system_clock)
        engine = ProjectionEngine(db, log, projections if projections is not None else PROJECTIONS.all())
        with db.transaction(write=False):
            if _identify(db, path):
                raise NotAnEventStore(path, "a SQLite database without the event store's tables")
            engine.open_readonly(log.last_position())
        return Store(db, log, engine, BlobStore(db, threshold, limits), profile, clock or system_clock)
    except BaseException:
        db.close()
        raise


def load_domains() -> None:
    """Import every domain package: registers their event classes, projections and facades.

    The log core knows no domain; this, called by `open()`, is the one place that lists
    them. Importing an already imported package is a dictionary lookup.
    """
    import projections  # noqa: F401  (registers every projection and, through them, most events)

    from . import attachments, commits, effects, inputs, leases, processes, queue, sessions, triggers  # noqa: F401


def _identify(db: Storage, path: str) -> bool:
    """Read the file's identity without writing. True when it is new (empty)."""
    app_id, version, objects = db.read_stamp()
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(path, version, SCHEMA_VERSION)
        if version < 1:
            raise NotAnEventStore(path, f"event store stamp present but schema version is {version}")
        return False
    if app_id == 0 and version == 0 and objects == 0:
        return True
    raise NotAnEventStore(
        path, f"a SQLite database of another application (application_id {app_id}, "
        f"user_version {version}, {objects} schema objects)"
    )
