"""The projection engine: one applier path for inline updates, rebuild, time travel and verify.

* inline: `apply_inline` runs inside every append transaction and moves each live
  projection's recorded position forward in that same transaction;
* rebuild: replay the log into a scratch file, catch up under the write lock, then
  swap the rows in with one transaction (readers see all old or all new rows);
* time travel: replay up to a position into an in-memory database;
* verify: rebuild into scratch and compare, table by table, with the live rows.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import re
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import attrs

from eventstore.storage import Storage as Database
from eventstore.storage.sqlite import create_private_file
from eventstore.errors import InvalidArgument, ProjectionStale, StoreError

from projections.base import ALL_EVENTS, Applier, Projection

STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_state ("
    " name TEXT PRIMARY KEY, version INTEGER NOT NULL, position INTEGER) WITHOUT ROWID"
)
# position NULL means "inline": applied in the same transaction as every append, so it
# is exactly the log's last position. Writing an explicit position on every append
# would cost a statement and a page write per commit for no information. A writer that
# skips a projection (its code considers it stale) first pins the position where the
# projection stopped, so the lag is recorded in the same transaction as the append
# that creates it, and the next opener running matching code catches up from there.

REPLAY_PAGE = 5_000
"""Rows per query of a time-travel replay (a stream-filtered page is sorted by position
each time, so fewer, larger pages cost less; the rows of one page are held at once)."""

Progress = Callable[[int, int], None]
"""progress(events_done, events_total)"""


class Dispatcher:
    """Applies events to a fixed set of projections on whatever database it is handed."""

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.projections = list(projections)
        self._star: list[tuple[Applier, bool]] = []
        self._by_type: dict[str, list[tuple[Applier, bool]]] = {}
        self._batch = [(p.batch, p.skip_purged) for p in self.projections if p.batch is not None]
        for p in self.projections:
            for type_name, fn in p.handlers.items():
                if type_name == ALL_EVENTS:
                    self._star.append((fn, p.skip_purged))
                else:
                    self._by_type.setdefault(type_name, []).append((fn, p.skip_purged))
        self._cache: dict[str, tuple[Applier, ...]] = {}
        self._purged_cache: dict[str, tuple[Applier, ...]] = {}
        generic = any(p.needs_data and (p.batch is not None or ALL_EVENTS in p.handlers)
                      for p in self.projections)
        self.takes_all = bool(self._star or self._batch)
        """True when some applier sees every event (a catch-all or batch applier)."""
        self.decode_types: frozenset[str] | None = None if generic else frozenset(self._by_type)
        """The event types whose data some applier reads (None: all of them)."""

    def _handlers(self, type_name: str, purged: bool) -> tuple[Applier, ...]:
        """The appliers an event of this type sees (with its payload purged, or not), cached."""
        cache = self._purged_cache if purged else self._cache
        hs = cache.get(type_name)
        if hs is None:
            hs = cache[type_name] = tuple(fn for fn, skip in self._by_type.get(type_name, []) + self._star
                                          if not (purged and skip))
        return hs

    def apply(self, db: Database, events: list[Any]) -> None:
        """Apply events, in order, to every projection that handles their types."""
        # The per-event loop of every inline append, rebuild and replay: one dict lookup
        # per event for the appliers of its type (whether to skip a purged payload is
        # decided once per type, in the cache), then the calls.
        cache = self._cache
        handlers = self._handlers
        for ev in events:
            if ev.data is None:
                hs = handlers(ev.type, True)
            else:
                hs = cache.get(ev.type)
                if hs is None:
                    hs = handlers(ev.type, False)
            for fn in hs:
                fn(db, ev)
        for batch_fn, skip_purged in self._batch:
            batch_fn(db, [e for e in events if e.data is not None] if skip_purged else events)

    def create_tables(self, db: Database) -> None:
        """Run every projection's DDL on `db`."""
        for p in self.projections:
            for stmt in p.ddl:
                db.execute(stmt)


@attrs.frozen
class ProjectionStatus:
    """One projection's state in the file versus the code."""

    name: str
    code_version: int
    stored_version: int
    position: int
    stale: bool


@attrs.frozen
class RebuildReport:
    """What a rebuild did."""

    projections: tuple[str, ...]
    events: int
    position: int
    seconds: float


@attrs.frozen
class ProjectionDifference:
    """The first difference found between a live table and its rebuild."""

    projection: str
    table: str
    live_row: tuple | None
    rebuilt_row: tuple | None
    note: str = ""
    """Set when the projection could not be compared at all (stale): says why."""

    def __str__(self) -> str:
        if self.note:
            return f"projection {self.projection!r}: {self.note}"
        return (f"projection {self.projection!r} table {self.table}: live has {self.live_row!r}, "
                f"rebuild has {self.rebuilt_row!r}")


@attrs.frozen
class ProjectionVerifyReport:
    """The result of comparing live projections with a rebuild from the log."""

    ok: bool
    position: int
    checked: tuple[str, ...]
    difference: ProjectionDifference | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {len(self.checked)} projections equal a rebuild at position {self.position}"
        return f"MISMATCH at position {self.position}: {self.difference}"


class ProjectionEngine:
    """Keeps a store's projections: which are live, applying, rebuilding, replaying, verifying."""

    def __init__(self, db: Database, log: Any, projections: Sequence[Projection]) -> None:
        self.db = db
        self.log = log
        self.projections = list(projections)
        self.by_name = {p.name: p for p in self.projections}
        self.stale: dict[str, int] = {}
        # projection_state is reconciled on the first append of a transaction when another
        # connection committed since we last looked (Database.foreign_epoch moved), as the
        # log's head cache does: other handles, maybe running other code, may have created,
        # rebuilt or pinned projections meanwhile.
        self._checked_epoch = -1
        db.on_rollback.append(self._forget_check)
        self._set_live()

    # --- opening -----------------------------------------------------------------

    def _set_live(self) -> None:
        live = [p for p in self.projections if p.name not in self.stale]
        self.dispatcher = Dispatcher(live)

    def open(self, last_position: int) -> None:
        """Inside the opening write transaction: create missing tables, find stale ones,
        and catch up projections that lag behind the log (written by older code)."""
        db = self.db
        db.execute(STATE_DDL)
        stored = {r[0]: (r[1], last_position if r[2] is None else r[2])
                  for r in db.query("SELECT name, version, position FROM projection_state")}
        self.stale = {}
        lagging: list[tuple[Projection, int]] = []
        for p in self.projections:
            version, position = stored.get(p.name, (None, 0))
            if version is None:
                for stmt in p.ddl:
                    db.execute(stmt)
                if last_position == 0:
                    db.execute("INSERT INTO projection_state VALUES (?, ?, NULL)", (p.name, p.version))
                else:
                    # A projection added to a store that already has events must be built
                    # from the log before anyone reads it.
                    db.execute("INSERT INTO projection_state VALUES (?, 0, 0)", (p.name,))
                    self.stale[p.name] = 0
            elif version != p.version:
                self.stale[p.name] = version
            elif position < last_position:
                lagging.append((p, position))
        for p, position in lagging:
            self._catch_up(db, p, position, None)
        self._set_live()

    def open_readonly(self, last_position: int) -> None:
        """Inside the read-only opener's read transaction: find the projections that can be
        read. One this handle would have to create, rebuild or catch up (each a write) is
        stale for it: reads of it raise ProjectionStale."""
        stored = {r[0]: (r[1], last_position if r[2] is None else r[2])
                  for r in self.db.query("SELECT name, version, position FROM projection_state")}
        self.stale = {}
        for p in self.projections:
            version, position = stored.get(p.name, (0, 0))
            if version != p.version or position < last_position:
                self.stale[p.name] = version
        self._set_live()

    def _catch_up(self, db: Database, p: Projection, position: int, to_position: int | None) -> None:
        """Apply the events after `position` (up to `to_position`) to one projection, then
        mark it inline again (position NULL), in the caller's write transaction."""
        d = Dispatcher([p])
        batch: list[Any] = []
        for ev in self.log.read_all(position + 1, to_position=to_position, only_decode=d.decode_types):
            batch.append(ev)
            if len(batch) >= 10_000:
                d.apply(db, batch)
                batch = []
        if batch:
            d.apply(db, batch)
        db.execute("UPDATE projection_state SET position = NULL WHERE name = ?", (p.name,))

    # --- inline ------------------------------------------------------------------

    def apply_inline(self, db: Database, events: list[Any]) -> None:
        """Called by the log inside each append transaction."""
        epoch = db.foreign_epoch()
        if epoch != self._checked_epoch:
            self._reconcile(db, events[0].position)
            self._checked_epoch = epoch
        self.dispatcher.apply(db, events)

    def _reconcile(self, db: Database, first_position: int) -> None:
        """Line this handle up with projection_state as other handles left it.

        A projection this code does not keep live (unknown to it, or recorded at another
        version) is pinned where it stopped, before this append, so that code which keeps
        it catches up from there. A live projection that another handle left pinned is
        caught up now, before this append's events are applied on top of it (applying
        them to a projection with a hole, and replaying them again later, would count
        them twice). A version change made by another handle's rebuild flips staleness.
        """
        before = first_position - 1
        changed = False
        for name, version, position in db.query("SELECT name, version, position FROM projection_state"):
            p = self.by_name.get(name)
            keep = p is not None and version == p.version
            if p is not None and keep == (name in self.stale):
                changed = True
                if keep:
                    del self.stale[name]
                else:
                    self.stale[name] = version
            if not keep:
                if position is None:
                    db.execute("UPDATE projection_state SET position = ? WHERE name = ?", (before, name))
            elif position is not None:
                self._catch_up(db, p, position, before)
        if changed:
            self._set_live()

    def _forget_check(self) -> None:
        # A rollback may have undone the pins and catch-ups: check again next time.
        self._checked_epoch = -1

    def require_fresh(self, name: str) -> None:
        """Raise ProjectionStale if the projection cannot be read until rebuilt."""
        if name in self.stale:
            raise ProjectionStale(name, self.stale[name], self.by_name[name].version)

    def status(self) -> list[ProjectionStatus]:
        """Each projection's stored version and position against the code version."""
        last = self.log.last_position()
        stored = {r[0]: (r[1], last if r[2] is None else r[2])
                  for r in self.db.query("SELECT name, version, position FROM projection_state")}
        out = []
        for p in self.projections:
            version, position = stored.get(p.name, (0, 0))
            out.append(ProjectionStatus(p.name, p.version, version, position, p.name in self.stale))
        return out

    # --- scratch builds ------------------------------------------------------------

    def _select(self, names: Iterable[str] | None) -> list[Projection]:
        if names is None:
            return list(self.projections)
        out = []
        for n in names:
            if n not in self.by_name:
                known = ", ".join(self.by_name)
                raise InvalidArgument(f"no projection named {n!r} (known: {known})")
            out.append(self.by_name[n])
        return out

    def _scratch_path(self, kind: str) -> str:
        base = self.db.path
        # A read-only handle may sit in a read-only directory, and a server store ("://") has
        # no directory: their scratch goes to the temporary directory.
        if base == ":memory:" or base.startswith("file:") or self.db.readonly or "://" in base:
            fd, path = tempfile.mkstemp(prefix=f"eventstore-{kind}-", suffix=".db")
            os.close(fd)
            os.unlink(path)
            return path
        remove_abandoned_scratch(base)
        return f"{base}.{kind}-{os.getpid()}-{time.monotonic_ns()}.tmp"

    def _build(self, scratch: Database, dispatcher: Dispatcher, from_position: int,
               to_position: int | None, total: int, progress: Progress | None,
               done: int = 0, chunk: int = 10_000, group: int = 1_000) -> tuple[int, int]:
        """Apply log events into `scratch`: `group` events per dispatch, `chunk` per
        transaction. Returns (last position, count)."""
        # Two sizes because they cost different things: the decoded events of one group
        # are held in memory at once (about 1 KiB each, so small groups keep the peak
        # low), while a transaction's size sets how often the pages that every event
        # touches (heads, per-session counters, the catalogue) are written out.
        position = from_position - 1
        events = self.log.read_all(from_position, to_position=to_position, only_decode=dispatcher.decode_types)
        more = True
        with collector_paused():
            while more:
                applied = 0
                with scratch.transaction():
                    while applied < chunk:
                        batch = list(itertools.islice(events, group))
                        if not batch:
                            more = False
                            break
                        dispatcher.apply(scratch, batch)
                        applied += len(batch)
                        position = batch[-1].position
                done += applied
                if progress and applied:
                    progress(done, max(total, done))
        return position, done

    def rebuild(self, names: Iterable[str] | None = None, progress: Progress | None = None) -> RebuildReport:
        """Rebuild projections from the whole log and swap them in atomically.

        Writers keep appending while the log is scanned (their inline updates go to the
        old tables); only the final catch-up and swap hold the write lock.
        """
        if self.db.in_transaction:
            raise StoreError("rebuild cannot run inside a transaction")
        targets = self._select(names)
        started = time.monotonic()
        path = self._scratch_path("rebuild")
        create_private_file(path)  # 0600 like the store: it holds the same data
        scratch = self.db.open_scratch(path)
        try:
            dispatcher = Dispatcher(targets)
            with scratch.transaction():
                dispatcher.create_tables(scratch)
            total = self.log.last_position()
            position, done = self._build(scratch, dispatcher, 1, None, total, progress)
            attached = getattr(self.db, "dialect", "sqlite") == "sqlite"
            if attached:
                self.db.attach(path, "rebuild_src")
            try:
                with self.db.transaction():  # write lock: writers queue from here to COMMIT
                    last = self.log.last_position()
                    self._swap(targets, None if attached else scratch)
                    if last > position:
                        # Events committed since the scan are applied to the swapped-in rows
                        # here, through this connection. Not to the scratch file: BEGIN
                        # IMMEDIATE holds a write lock on every attached database, so the
                        # scratch connection could not write it until this commits.
                        position, done = self._build(self.db, dispatcher, position + 1, last, last,
                                                     progress, done)
                    position = last
                    for p in targets:
                        self.db.execute(
                            "INSERT INTO projection_state VALUES (?, ?, NULL) ON CONFLICT(name) "
                            "DO UPDATE SET version = excluded.version, position = NULL",
                            (p.name, p.version),
                        )
            finally:
                if attached:
                    self.db.detach("rebuild_src")
        finally:
            scratch.close()
            _remove(path)
        for p in targets:
            self.stale.pop(p.name, None)
        self._set_live()
        return RebuildReport(tuple(p.name for p in targets), done, position, time.monotonic() - started)

    def _swap(self, targets: list[Projection], scratch: Database | None = None) -> None:
        """Replace the targets' live tables by the rebuilt ones: from the attached scratch file
        in one statement per table, or (a backend that cannot attach it) row by row from
        `scratch` through this process, still inside the caller's write transaction."""
        db = self.db
        for p in targets:
            for table in p.tables:
                db.execute(f"DROP TABLE IF EXISTS {'main.' if scratch is None else ''}{table}")
            for stmt in p.ddl:
                db.execute(stmt)
            for table in p.tables:
                if scratch is None:
                    db.execute(f"INSERT INTO main.{table} SELECT * FROM rebuild_src.{table}")
                    continue
                marks = ",".join("?" * len(scratch.table_columns(table)))
                batch: list[tuple[Any, ...]] = []
                for row in scratch.iterate(f"SELECT * FROM {table}"):
                    batch.append(row)
                    if len(batch) >= 1000:
                        db.executemany(f"INSERT INTO {table} VALUES ({marks})", batch)
                        batch = []
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", batch)

    def replay(self, to_position: int | None = None, streams: Sequence[str] | None = None,
               names: Iterable[str] | None = None, lazy: bool = False) -> Database:
        """Time travel: a fresh in-memory database holding the projections as they were
        at `to_position` (only the given streams' events, when `streams` is set).

        With `lazy`, each projection is replayed when a statement first names one of its
        tables (`projections.lazy.LazyReplay`): the same rows, paid for only by readers."""
        from projections.lazy import LazyReplay

        targets = self._select(names)
        # Bad arguments are refused now, not at a lazy view's first read: read_all checks
        # them when called (it reads nothing until iterated).
        self.log.read_all(1, to_position=to_position, streams=streams or None)
        mem = self.db.open_scratch(":memory:")
        with mem.transaction():
            mem.execute(STATE_DDL)
        if lazy:
            return LazyReplay(self, mem, targets, to_position, streams)  # type: ignore[return-value]
        position = self.replay_into(mem, targets, to_position, streams)
        with mem.transaction():
            for p in targets:
                mem.execute("INSERT INTO projection_state VALUES (?, ?, ?)", (p.name, p.version, position))
        return mem

    def replay_into(self, mem: Database, targets: Sequence[Projection], to_position: int | None,
                    streams: Sequence[str] | None) -> int:
        """Create the targets' tables in `mem` and apply the log's events up to
        `to_position` (only `streams`' events when set) to them, in one transaction.
        Returns the position of the last event read (0 when there was none)."""
        dispatcher = Dispatcher(targets)
        # Projections that name their event types (no catch-all or batch applier) need
        # no other rows: the type filter runs in SQL, so those rows are never fetched.
        types = None if dispatcher.takes_all else sorted(dispatcher.decode_types or ())
        position = 0
        with mem.transaction():
            dispatcher.create_tables(mem)
            if types == []:
                return self._last_read(to_position, streams)
            batch: list[Any] = []
            for ev in self.log.read_all(1, to_position=to_position, streams=streams or None, types=types,
                                        only_decode=dispatcher.decode_types, page_size=REPLAY_PAGE):
                batch.append(ev)
                if len(batch) >= 10_000:
                    dispatcher.apply(mem, batch)
                    position = batch[-1].position
                    batch = []
            if batch:
                dispatcher.apply(mem, batch)
                position = batch[-1].position
        return position if types is None else self._last_read(to_position, streams)

    def _last_read(self, to_position: int | None, streams: Sequence[str] | None) -> int:
        """The position of the last event at or before `to_position` (of `streams`), 0 if none."""
        upper = "" if to_position is None else f" AND position <= {int(to_position)}"
        if not streams:
            return int(self.db.scalar(f"SELECT max(position) FROM events WHERE 1 = 1{upper}", (), 0))
        marks = ",".join("?" * len(streams))
        return int(self.db.scalar(f"SELECT max(position) FROM events WHERE stream IN ({marks}){upper}",
                                  tuple(streams), 0))

    def verify(self, names: Iterable[str] | None = None, progress: Progress | None = None) -> ProjectionVerifyReport:
        """Rebuild into scratch and compare every table with the live rows.

        A selected projection that cannot be compared (recorded at another version than
        the code's, or behind the log) is a failure naming it, not a projection left out.
        """
        selected = self._select(names)
        with self.db.transaction(write=False):  # the state as it is now, not as seen at open
            last = self.log.last_position()
            stored = {r[0]: (r[1], r[2])
                      for r in self.db.query("SELECT name, version, position FROM projection_state")}
        for p in selected:
            version, position = stored.get(p.name, (None, None))
            if version != p.version or (position is not None and position < last):
                why = ("it has no state row" if version is None else
                       f"stored version {version}, code version {p.version}" if version != p.version else
                       f"it stops at position {position}, the log at {last}")
                difference = ProjectionDifference(
                    p.name, "projection_state", (p.name, version, position), (p.name, p.version, None),
                    f"cannot be compared with a rebuild: it is stale ({why}); run `eventstore rebuild`")
                return ProjectionVerifyReport(False, last, tuple(x.name for x in selected), difference)
        targets = selected
        path = self._scratch_path("verify")
        create_private_file(path)  # 0600 like the store: it holds the same data
        scratch = self.db.open_scratch(path)
        try:
            dispatcher = Dispatcher(targets)
            with scratch.transaction():
                dispatcher.create_tables(scratch)
            position, done = self._build(scratch, dispatcher, 1, None, self.log.last_position(), progress)
            with self.db.transaction(write=False):  # one read snapshot for catch-up and compare
                last = self.log.last_position()
                if last > position:
                    self._build(scratch, dispatcher, position + 1, last, last, progress, done)
                for p in targets:
                    for table in p.tables:
                        diff = _compare(self.db, scratch, table)
                        if diff is not None:
                            return ProjectionVerifyReport(False, last, tuple(x.name for x in targets),
                                                          ProjectionDifference(p.name, table, *diff))
            return ProjectionVerifyReport(True, last, tuple(p.name for p in targets))
        finally:
            scratch.close()
            _remove(path)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (restored after it, also on errors).

    A scan allocates millions of short-lived, acyclic objects (rows, events, parameter
    tuples), freed by reference counting as soon as their chunk is applied. The cyclic
    collector finds nothing among them, but the chunk held in `batch` survives enough
    young-generation passes to be promoted, and the full passes that promotion
    triggers walk every object of the process: 13-15% of a rebuild's CPU time.
    It is one process-wide switch: another thread's cycles wait for the end of the
    scan (whichever paused scan ends first turns it back on, never off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compare(live: Database, rebuilt: Database, table: str) -> tuple[tuple | None, tuple | None] | None:
    """Compare two tables row by row in a total order; the first differing pair, or None."""
    ncols = len(rebuilt.table_columns(table))
    # NULLS FIRST: SQLite's order for NULLs, asked of every backend (PostgreSQL puts them last).
    order = ", ".join(f"{i} NULLS FIRST" for i in range(1, ncols + 1))
    sql = f"SELECT * FROM {table} ORDER BY {order}"
    a = live.iterate(sql)
    b = rebuilt.iterate(sql)
    while True:
        x = next(a, None)
        y = next(b, None)
        if x is None and y is None:
            return None
        if x != y:
            return (x, y)


def remove_abandoned_scratch(store_path: str) -> list[str]:
    """Delete the scratch files (`<store>.rebuild-<pid>-<n>.tmp`, `.verify-...`) left
    beside `store_path` by processes that no longer run; returns the paths removed.

    A rebuild or verify killed mid-way cannot remove its own scratch file, which can be
    as large as the projections. Files of a live process (this one included: another
    thread may be rebuilding) are left alone; a pid that was reused by an unrelated
    process keeps its file until that process ends, which errs on the safe side.
    """
    directory = os.path.dirname(os.path.abspath(store_path))
    prefix = os.path.basename(store_path) + "."
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        if not name.startswith(prefix):
            continue
        m = _SCRATCH_NAME.fullmatch(name[len(prefix):])
        if m is None or int(m.group(2)) == os.getpid() or _process_alive(int(m.group(2))):
            continue
        path = os.path.join(directory, name)
        try:
            _remove(path)
        except OSError:  # a read-only directory, another cleaner racing us: not our problem
            continue
        removed.append(path)
    return removed


_SCRATCH_NAME = re.compile(r"(rebuild|verify)-([0-9]+)-([0-9]+)\.tmp")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def _remove(path: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
