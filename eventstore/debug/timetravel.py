"""Fast time travel: replays that start from periodic projection snapshots.

`store.at(position, streams)` replays every event of the streams from position 1. For
a 10,000-event session that is about 100 ms here. `view_at` does the same replay but
keeps a snapshot of the replayed projections every `every` events (1,000 by default)
in a cache directory beside the store file, and later starts from the nearest snapshot
at or before the wanted position: at most `every` events are replayed, so a view of
any position of a 10,000-event session costs about 15 ms once its snapshots exist
(`tools/benches/replay.py` has the figures).

The cache (`<store file>.replay-cache/`, mode 0700, files 0600: snapshots hold the same
data as the store) is only a cache: delete it at any time. A snapshot is used only when
everything it was built from still holds:

* the projection names and versions of the running code (a projection bug fixed and
  its version bumped invalidates every snapshot of it);
* the chain hash of the event at the snapshot's position (a different file at the same
  path, or a rewritten log, has other hashes);
* the number of purged payloads at or before that position (a purge drops payloads the
  snapshot was built from, and replays skip purged events).

Snapshot positions are deterministic: for one replay filter, the snapshot after its
k*every-th event. Writing a snapshot that fails (a read-only directory, a full disk)
is skipped silently: the view is still exact, only slower next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Sequence

from ..storage import Storage as Database
from ..storage.sqlite import create_private_file
from ..errors import InvalidArgument, StoreError
from ..store import Store, StoreView

DEFAULT_EVERY = 1000
"""Events replayed between two snapshots of one replay filter."""
MAX_PER_FILTER = 64
"""Snapshots per replay filter: the interval doubles (2000, 4000, ... events) as the
filter's events grow beyond `every` * 64, so a long log never fills the disk."""
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
"""A replayed database larger than this is not written (a whole-store replay of a big
store: copying it would cost more than it saves)."""
MAX_FILES = 256
MAX_CACHE_BYTES = 1024 * 1024 * 1024
"""Files and bytes kept per cache directory (the least recently used go first)."""
_META = "timetravel_snapshot_meta"


def cache_dir_of(store: Store) -> str | None:
    """The snapshot directory of a store file (None for in-memory and URI stores)."""
    path = store.path
    if path == ":memory:" or path.startswith("file:"):
        return None
    return os.path.abspath(path) + ".replay-cache"


def view_at(store: Store, position: int | None = None, streams: Sequence[str] | None = None, *,
            cache: bool = True, cache_dir: str | None = None, every: int = DEFAULT_EVERY) -> StoreView:
    """A read-only view of every projection at `position` (default: the head), like
    `store.at(position, streams)`, replayed from the nearest cached snapshot.

    With `cache=False` (or for an in-memory store) this is exactly `store.at`.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InvalidArgument(f"every must be an integer >= 1, got {every!r}")
    if streams is not None:
        if isinstance(streams, str) or not all(isinstance(s, str) and s for s in streams):
            raise InvalidArgument(f"streams must be a list of stream names, got {streams!r}")
        streams = sorted(set(streams))
    directory = cache_dir if cache_dir is not None else cache_dir_of(store)
    if not cache or directory is None:
        return store.at(position, streams)
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
        raise InvalidArgument(f"position must be an integer >= 0, got {position!r}")
    last = store.last_position()
    position = last if position is None else position
    if position > last:
        raise InvalidArgument(f"position {position} is beyond the end of the log ({last})")
    return SnapshotReplay(store, directory, streams, every).view(position)


class SnapshotReplay:
    """Replays one filter (a set of streams, or the whole log) with cached snapshots."""

    def __init__(self, store: Store, directory: str, streams: Sequence[str] | None, every: int) -> None:
        from projections.engine import Dispatcher

        self.store = store
        self.directory = directory
        self.streams = list(streams) if streams else None
        self.every = every
        self.projections = list(store.engine.projections)
        self.dispatcher = Dispatcher(self.projections)
        self.versions = ",".join(f"{p.name}:{p.version}" for p in self.projections)
        self.filter_key = hashlib.sha256(json.dumps(self.streams).encode()).hexdigest()[:16]

    # --- the replay ---------------------------------------------------------------------------

    def view(self, position: int) -> StoreView:
        """The projections at `position`, as a StoreView over a private in-memory database."""
        mem = self._fresh()
        try:
            base, ordinal = self._load_best(mem, position)
            interval = self.every
            total = self._count(position)
            while total > interval * MAX_PER_FILTER:
                interval *= 2
            applied = self._replay(mem, base, ordinal, position, interval)
            with mem.transaction():
                # As store.at records it: the position of the last event applied.
                for p in self.projections:
                    mem.execute("INSERT INTO projection_state VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                                "SET version = excluded.version, position = excluded.position",
                                (p.name, p.version, applied))
        except BaseException:
            mem.close()
            raise
        return StoreView(self.store, mem, position)

    def _fresh(self) -> Database:
        from projections.engine import STATE_DDL

        mem = self.store.db.open_scratch(":memory:")
        with mem.transaction():
            self.dispatcher.create_tables(mem)
            mem.execute(STATE_DDL)
            mem.execute(f"CREATE TABLE IF NOT EXISTS {_META} (key TEXT PRIMARY KEY, value ANY)")
        return mem

    def _count(self, position: int) -> int:
        """How many events of the filter lie at or before `position`."""
        if self.streams is None:
            return position  # positions are gap-free
        return self.store.log.count(self.streams, position)

    def _replay(self, mem: Database, base: int, ordinal: int, position: int, interval: int) -> int:
        """Apply the filter's events in (base, position], saving a snapshot after every
        `interval`-th event of the filter (counted from the start of the log). Returns the
        position of the last event applied (`base` when there was none)."""
        applied = base
        if base >= position:
            return applied
        events = self.store.log.read_all(base + 1, to_position=position, streams=self.streams,
                                         only_decode=self.dispatcher.decode_types)
        batch: list[Any] = []
        for ev in events:
            batch.append(ev)
            applied = ev.position
            ordinal += 1
            if ordinal % interval == 0:
                with mem.transaction():
                    self.dispatcher.apply(mem, batch)
                batch = []
                if ev.position < position:  # the wanted position itself is not worth a file
                    self._save(mem, ev.position, ordinal)
        if batch:
            with mem.transaction():
                self.dispatcher.apply(mem, batch)
        return applied

    # --- snapshot files -------------------------------------------------------------------------

    def _fingerprint(self, position: int) -> str:
        """What a snapshot at `position` depends on besides the code: the chain hash there and
        the purges at or before it."""
        log = self.store.log
        h = log.hash_at(position) or b""
        return f"{self.versions}|{h.hex()}|{log.purged_through(position)}"

    def _path(self, position: int) -> str:
        return os.path.join(self.directory, f"{self.filter_key}-{position:012d}.db")

    def _candidates(self, position: int) -> list[tuple[int, str]]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        out = []
        prefix = self.filter_key + "-"
        for name in names:
            if name.startswith(prefix) and name.endswith(".db"):
                try:
                    p = int(name[len(prefix):-3])
                except ValueError:
                    continue
                if p <= position:
                    out.append((p, os.path.join(self.directory, name)))
        return sorted(out, reverse=True)

    def _load_best(self, mem: Database, position: int) -> tuple[int, int]:
        """Copy the newest valid snapshot at or before `position` into `mem`.
        Returns (its position, the filter's event count up to it); (0, 0) without one."""
        for snap_position, path in self._candidates(position):
            try:
                mem.attach(path, "snap")
            except StoreError:
                _unlink(path)
                continue
            try:
                meta = dict(mem.query(f"SELECT key, value FROM snap.{_META}"))
                if meta.get("fingerprint") != self._fingerprint(snap_position) or "ordinal" not in meta:
                    valid = False
                else:
                    valid = True
                    with mem.transaction():
                        for p in self.projections:
                            for table in p.tables:
                                mem.execute(f"INSERT INTO main.{table} SELECT * FROM snap.{table}")
            except StoreError:
                valid = False
            finally:
                mem.detach("snap")
            if valid:
                _touch(path)
                return snap_position, int(meta["ordinal"])
            _unlink(path)
        return 0, 0

    def _save(self, mem: Database, position: int, ordinal: int) -> None:
        """Write the replayed tables as the snapshot at `position` (best effort)."""
        path = self._path(position)
        if os.path.exists(path):
            return
        tmp = f"{path}.{os.getpid()}-{time.monotonic_ns()}.tmp"
        try:
            size = mem.storage_bytes()
            if size > MAX_SNAPSHOT_BYTES:
                return
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            with mem.transaction():
                mem.execute(f"DELETE FROM {_META}")
                mem.execute(f"INSERT INTO {_META} VALUES ('fingerprint', ?), ('ordinal', ?)",
                            (self._fingerprint(position), ordinal))
            create_private_file(tmp)  # 0600 first: VACUUM INTO would create it with the umask
            mem.execute("VACUUM INTO ?", (tmp,))
            os.replace(tmp, path)  # atomic: a concurrent reader sees no file or a whole one
            self._evict()
        except (OSError, StoreError):
            _unlink(tmp)

    def _evict(self) -> None:
        try:
            entries = [os.path.join(self.directory, n) for n in os.listdir(self.directory) if n.endswith(".db")]
        except OSError:
            return
        entries.sort(key=lambda p: _mtime(p), reverse=True)  # newest (most recently used) first
        kept = total = 0
        for path in entries:
            size = _size(path)
            if kept < MAX_FILES and total + size <= MAX_CACHE_BYTES:
                kept += 1
                total += size
            else:
                _unlink(path)


def clear_cache(store: Store, cache_dir: str | None = None) -> int:
    """Delete every snapshot file of a store's cache; returns how many were removed."""
    directory = cache_dir if cache_dir is not None else cache_dir_of(store)
    if directory is None or not os.path.isdir(directory):
        return 0
    n = 0
    for name in os.listdir(directory):
        if name.endswith(".db") or name.endswith(".tmp"):
            _unlink(os.path.join(directory, name))
            n += 1
    return n


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _touch(path: str) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


__all__ = ["DEFAULT_EVERY", "SnapshotReplay", "cache_dir_of", "clear_cache", "view_at"]
