"""The event log: one append-only table, hash-chained, with typed reads.

This module knows streams, versions, positions and bytes. It knows nothing of
sessions, leases or any other domain; projections plug in through `on_append`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable, cast, Iterator, Sequence

import attrs

from . import chain, codec
from .storage import Storage as Database
from .decoding import UNDECODED, RecordedEvent, RowDecoder
from .errors import (
    IdempotencyConflict,
    InvalidArgument,
    PayloadTooLarge,
    StoreError,
    WrongExpectedVersion,
)
from .checks import check_utf8
from .events import REGISTRY, EventRegistry

__all__ = [
    "ANY", "APPLICATION_ID", "MAX_STREAM_BYTES", "NO_STREAM", "PAGE", "SCHEMA", "SCHEMA_VERSION",
    "STREAM_EXISTS", "UNDECODED", "AppendResult", "EventLog", "RecordedEvent", "validate_stream",
]

_sha256 = hashlib.sha256
_get_ident = threading.get_ident

SCHEMA_VERSION = 3
"""The layout version of the store file, stamped in PRAGMA user_version. Version 2 added
the command marks in `flags` (rows written by version 1 have none); version 3 the compact
ids in payloads (eventstore/ids.py; rows written before keep their ids as strings).
Opening an older file stamps it 3 and changes no row (docs/log-format.md)."""

APPLICATION_ID = 0x4C415348  # "LASH": marks a SQLite file as an event store (PRAGMA application_id)

ANY = "any"
NO_STREAM = "no_stream"
STREAM_EXISTS = "stream_exists"

MAX_STREAM_BYTES = 512
_SHORT_STREAM = MAX_STREAM_BYTES // 4  # this many characters always fit: UTF-8 takes at most 4 bytes each
PAGE = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream          TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    schema          INTEGER NOT NULL,
    recorded_at_ms  INTEGER NOT NULL,
    flags           INTEGER NOT NULL,
    payload         BLOB,
    hash            BLOB    NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS purged_payloads (
    position INTEGER PRIMARY KEY,
    digest   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS append_keys (
    stream         TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    digest         BLOB    NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    PRIMARY KEY (stream, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_meta (
    key   TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID;
"""

_COLUMNS = "position, stream, version, type, schema, recorded_at_ms, flags, payload"
_HEADER_COLUMNS = "position, stream, version, type, schema, recorded_at_ms, flags, substr(payload, 1, 0)"
"""The columns when no payload is decoded: an empty payload (NULL when purged) instead of the bytes."""
_INSERT = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"
_START = codec.FLAG_COMMAND_START
_CONTINUES = codec.FLAG_COMMAND_CONTINUES
_tuple_new = tuple.__new__


@attrs.frozen
class AppendResult:
    """Where an append landed: the positions of its events and the stream's new version."""

    stream: str
    first_position: int
    last_position: int
    stream_version: int
    replayed: bool = False
    """True when an idempotency key matched an earlier append and nothing was written."""

    @property
    def positions(self) -> range:
        """The positions of the appended events, in order."""
        return range(self.first_position, self.last_position + 1)


def _result_builder() -> Callable[[str, int, int, int], AppendResult]:
    # An AppendResult built by setting its slots directly: attrs' frozen __init__ goes
    # through object.__setattr__ once per field, a third of a microsecond on every append.
    new = object.__new__
    s_stream, s_first, s_last, s_version, s_replayed = (
        AppendResult.__dict__[f.name].__set__ for f in attrs.fields(AppendResult))

    def build(stream: str, first: int, last: int, version: int) -> AppendResult:
        r = new(AppendResult)
        s_stream(r, stream)
        s_first(r, first)
        s_last(r, last)
        s_version(r, version)
        s_replayed(r, False)
        return r

    return build


_appended = _result_builder()
"""AppendResult(stream, first, last, version) for a fresh (not replayed) append."""

Encoded = tuple  # (type_name, schema, stored_bytes, flags, digest, event)


def validate_stream(stream: Any) -> str:
    """Check a stream name: a non-empty string of at most 512 UTF-8 bytes with no NUL."""
    if not isinstance(stream, str) or not stream:
        raise InvalidArgument(f"stream must be a non-empty string, got {stream!r}")
    if len(check_utf8(stream, "stream").encode()) > MAX_STREAM_BYTES or "\x00" in stream:
        raise InvalidArgument(f"stream {stream[:40]!r}...: at most {MAX_STREAM_BYTES} bytes and no NUL")
    return stream


class EventLog:
    """Append, read, follow and verify the event table of one Database."""

    def __init__(
        self,
        db: Database,
        *,
        registry: EventRegistry | None = None,
        compress_threshold: int | None = 4096,
        limits: codec.Limits | None = None,
        clock: Callable[[], int],
    ) -> None:
        self.db = db
        self.registry = registry or REGISTRY
        self.compress_threshold = compress_threshold
        self.limits = limits or codec.Limits()
        self.clock = clock
        self.decoder = RowDecoder(self.registry, self.limits)
        """Decodes fetched rows; shared by every read of this log."""
        self.on_append: Callable[[Database, list[RecordedEvent]], None] | None = None
        # Head cache: the newest (position, hash) and the versions of recently written
        # streams. Valid only while no other connection has committed since it was filled,
        # which Database.foreign_epoch() tells us once we hold the write lock.
        self._head: tuple[int, bytes] | None = None
        self._versions: dict[str, int] = {}
        self._cache_epoch = -1
        # Command marks: (transaction serial, position of the first row this log wrote in
        # that transaction). See _command_flag.
        self._command: tuple[int, int] = (-1, 0)
        self._encoders: dict[type, tuple[str, int, Callable[[Any], dict], Any]] = {}
        self._encoders_generation = -1
        db.on_rollback.append(self.invalidate_cache)

    def invalidate_cache(self) -> None:
        """Forget the cached head; the next append reads it from the file."""
        self._head = None
        self._versions.clear()
        self._cache_epoch = -1

    def _head_and_version(self, stream: str) -> tuple[int, bytes, int]:
        """(last position, last hash, stream version), from the cache when it is provably current."""
        db = self.db
        epoch = db.foreign_epoch()
        if epoch != self._cache_epoch:
            self._head = None
            self._versions.clear()
            self._cache_epoch = epoch
        head = self._head
        if head is None:
            row = db.one("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
            head = self._head = row if row is not None else (0, chain.GENESIS)
        current = self._versions.get(stream)
        if current is None:
            current = db.scalar("SELECT max(version) FROM events WHERE stream=?", (stream,), 0)
        return head[0], head[1], current

    # --- appending ---------------------------------------------------------------

    def encode(self, events: Sequence[Any]) -> list[Encoded]:
        """Encode and compress events (done before taking the write lock)."""
        if events.__class__ is not list and events.__class__ is not tuple:
            if isinstance(events, (str, bytes)) or not isinstance(events, (list, tuple)):
                raise InvalidArgument(f"events must be a list of event instances, got {type(events).__name__}")
        if not events:
            raise InvalidArgument("events must not be empty")
        out = []
        limit = self.limits.max_payload_bytes
        threshold = self.compress_threshold
        if self._encoders_generation != self.registry.generation:
            self._encoders.clear()  # a class was (re-)registered since the cache was filled
            self._encoders_generation = self.registry.generation
        encoders = self._encoders
        pack = codec.packer()
        keep = codec.PACKER_BUFFER_BYTES
        for i, ev in enumerate(events):
            enc = encoders.get(ev.__class__)
            if enc is None:
                enc = self._encoder_for(ev.__class__)
            name, schema, to_plain, et = enc
            try:
                raw = pack(to_plain(ev))
            except Exception:
                # The fast path declined (a field of the wrong shape, a value msgpack cannot
                # carry): the careful path raises the typed error naming the field.
                raw = et.encode(ev)
            if len(raw) > keep:
                codec.drop_packer()  # do not keep a buffer this big for the thread's life
                pack = codec.packer()
            if len(raw) > limit:
                raise PayloadTooLarge(
                    f"event {i} ({name}) encodes to {len(raw)} bytes, over the limit of {limit}"
                )
            if threshold is not None and len(raw) >= threshold:
                stored, flags = codec.compress_for(raw, threshold)
            else:
                stored, flags = raw, 0
            out.append((name, schema, stored, flags, _sha256(stored).digest(), ev))
        return out

    def _encoder_for(self, cls: type) -> tuple[str, int, Callable[[Any], dict], Any]:
        """(type name, schema, generated to_plain, EventType) of a registered class, cached."""
        et = self.registry.for_class(cls)  # EventTypeError for an unregistered class
        enc = (et.name, et.schema, codec.class_codec(cls).encoder(), et)
        self._encoders[cls] = enc
        return enc

    def append(
        self,
        stream: str,
        events: Sequence[Any],
        *,
        expected_version: int | str = ANY,
        idempotency_key: str | None = None,
        now_ms: int | None = None,
    ) -> AppendResult:
        """Append events to one stream atomically and apply them to the projections.

        `expected_version` is ANY, NO_STREAM, STREAM_EXISTS or the exact current version
        (0 for an empty stream). A failed expectation raises WrongExpectedVersion and
        writes nothing. With `idempotency_key`, a retry carrying the same events returns
        the original result (replayed=True); different events raise IdempotencyConflict.
        """
        command = self.prepare_append(stream, events, expected_version=expected_version,
                                      idempotency_key=idempotency_key, now_ms=now_ms)
        db = self.db
        mark = db.command_mark
        if mark is not None and mark[1] == db.depth and mark[0] == _get_ident():
            # Directly inside a domain command's transaction level (StoreContext.command):
            # the command lets any failure propagate and its level is rolled back, so the
            # append needs no savepoint of its own (two statements less per command).
            return command()
        return db.write(command)

    def prepare_append(self, stream: str, events: Sequence[Any], *, expected_version: int | str = ANY,
                       idempotency_key: str | None = None,
                       now_ms: int | None = None) -> Callable[[], AppendResult]:
        """Check and encode an append now; return the command that writes it (for a group).

        Raises the same typed errors for bad input as `append`, before anything queues.
        """
        # The common call (a short stream name, ANY, no key) is checked inline: every
        # append pays for these lines, and the full checks below cost a call each.
        if stream.__class__ is not str or not 0 < len(stream) <= _SHORT_STREAM or "\x00" in stream:
            validate_stream(stream)
        if expected_version != ANY:
            _check_expected(expected_version)
        if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
            raise InvalidArgument(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")
        if idempotency_key is not None:
            check_utf8(idempotency_key, "idempotency_key")
        encoded = self.encode(events)
        at = self.clock() if now_ms is None else now_ms
        if at.__class__ is not int and not isinstance(at, int):
            raise InvalidArgument(f"now_ms must be an integer of milliseconds, got {at!r}")
        key = idempotency_key
        return lambda: self._append_locked(stream, encoded, expected_version, key, at)

    def _append_locked(self, stream: str, encoded: list[Encoded], expected: int | str,
                       key: str | None, at: int, retry: bool = True) -> AppendResult:
        db = self.db
        request_digest = b""
        if key is not None:
            h = hashlib.sha256()
            for name, schema, _stored, flags, digest, _ev in encoded:
                h.update(f"{name}\x00{schema}\x00{flags}\x00".encode() + digest)
            request_digest = h.digest()
            row = db.one(
                "SELECT digest, first_position, last_position FROM append_keys WHERE stream=? AND key=?",
                (stream, key),
            )
            if row is not None:
                if row[0] != request_digest:
                    raise IdempotencyConflict(stream, key, row[1])
                version = db.scalar("SELECT version FROM events WHERE position=?", (row[2],))
                return AppendResult(stream, row[1], row[2], version, replayed=True)
        last, prev, current = self._head_and_version(stream)
        if expected != ANY:
            if expected == NO_STREAM:
                ok = current == 0
            elif expected == STREAM_EXISTS:
                ok = current > 0
            else:
                ok = current == expected
            if not ok:
                raise WrongExpectedVersion(stream, expected, current)
        rows = []
        recorded = []
        link = chain.link
        position, version = last, current
        mark = self._command_flag(db.command, last + 1)
        for name, schema, stored, flags, digest, ev in encoded:
            position += 1
            version += 1
            flags |= mark
            mark = _CONTINUES
            prev = link(prev, position, stream, version, name, schema, at, flags, digest)
            rows.append((position, stream, version, name, schema, at, flags, stored, prev))
            recorded.append(_tuple_new(RecordedEvent, (position, stream, version, name, schema, at, ev)))
        try:
            if len(rows) == 1:
                db.execute(_INSERT, rows[0])
            else:
                db.executemany(_INSERT, rows)
        except Exception as exc:
            if not self.db.is_constraint_error(exc):
                raise
            if not retry:
                # Under BEGIN IMMEDIATE this means the file was edited behind our back.
                raise StoreError(f"stream {stream!r}: version or position already taken ({exc})") from None
            # Belt and braces: should the head cache ever be stale, undo the rows this
            # executemany did insert (SQLite undid only the failing one), then decide the
            # append again from the file, expectation included.
            db.executemany("DELETE FROM events WHERE position = ? AND hash = ?", [(r[0], r[8]) for r in rows])
            self.invalidate_cache()
            return self._append_locked(stream, encoded, expected, key, at, retry=False)
        if self._command[0] != db.command:
            self._command = (db.command, last + 1)
        self._head = (position, prev)
        if len(self._versions) > 10_000:
            self._versions.clear()
        self._versions[stream] = version
        if key is not None:
            db.execute(
                "INSERT INTO append_keys VALUES (?,?,?,?,?)",
                (stream, key, request_digest, last + 1, position),
            )
        if self.on_append is not None:
            self.on_append(db, recorded)
        return _appended(stream, last + 1, position, version)

    def _command_flag(self, serial: int, first: int) -> int:
        """The command mark of the first row an append writes at position `first`.

        A command is one caller's write: everything one append, one domain command or one
        `store.transaction()` block appends, whether it had a transaction to itself or
        shared one with other callers' commands (group commit, each in its own
        savepoint). Its first row gets FLAG_COMMAND_START, every later row
        FLAG_COMMAND_CONTINUES, so `why` finds a command's rows exactly. The row before
        `first` belongs to this command exactly when this log already wrote at or before
        it in this command: the commands of a group run one after the other on one
        connection, BEGIN IMMEDIATE keeps every other writer out until COMMIT, and
        positions a rolled-back savepoint gave back are reused by this transaction alone.
        (`serial` is Database.command, which counts commands; the pair is recorded only
        after an insert succeeded, so a failed attempt leaves no trace.)
        """
        txn, txn_first = self._command
        return _CONTINUES if txn == serial and first > txn_first else _START

    def command_span(self, position: int) -> tuple[int, int] | None:
        """(first, last) position of the command (write transaction) that appended the
        event at `position`, from the rows' command marks; None when that row has no
        marks (written under store layout 1) or does not exist."""
        _check_position(position, "position")
        db = self.db
        with db.transaction(write=False):
            flags = db.scalar("SELECT flags FROM events WHERE position = ?", (position,), 0)
            if not flags & codec.COMMAND_FLAGS:
                return None
            # Back to the row that starts the command, forward to the last row that
            # continues it: each walks the rowid b-tree outwards, a step per row.
            first = position if flags & _START else db.scalar(
                "SELECT position FROM events WHERE position < ? AND (flags & ?) <> 0 "
                "ORDER BY position DESC LIMIT 1",
                (position, _START), position)
            after = db.scalar("SELECT position FROM events WHERE position > ? AND (flags & ?) = 0 "
                              "ORDER BY position LIMIT 1", (position, _CONTINUES), None)
            last = after - 1 if after is not None else self.last_position()
        return first, last

    # --- reading -----------------------------------------------------------------

    def decode_row(self, row: tuple, raw: bool = False) -> RecordedEvent:
        """Turn one stored row (the first 8 event columns) into a RecordedEvent."""
        return self.decoder.decode_row(row, raw)

    def decode_page(self, rows: list[tuple], raw: bool = False,
                    only: "frozenset[str] | None" = None) -> list[RecordedEvent]:
        """Decode a page of rows into a list (see iter_decode)."""
        return list(self.iter_decode(rows, raw, only))

    def iter_decode(self, rows: list[tuple], raw: bool = False,
                    only: "frozenset[str] | None" = None) -> Iterator[RecordedEvent]:
        """Decode rows (the first 8 event columns) one at a time as the consumer pulls them.

        With `only`, events of other types carry `UNDECODED` as data (headers only).
        """
        return self.decoder.decode_pages(iter((rows,)), raw, only)

    def _pages(self, sql: str, params: list[Any], key_column: int, page_size: int) -> Iterator[list[tuple]]:
        """Run a keyset-paged query: `params[0]` is the lower bound of the key, which moves
        past the last row of each page (`key_column` is the key's index in a row)."""
        query = self.db.query
        while True:
            # Each page is its own statement: no read snapshot stays open between pages,
            # so a slow consumer never blocks WAL checkpoints.
            rows = query(sql, params)
            if rows:
                yield rows
            if len(rows) < page_size:
                return
            params[0] = rows[-1][key_column] + 1

    def read_all(self, from_position: int = 1, *, to_position: int | None = None,
                 types: Sequence[str] | None = None, streams: Sequence[str] | None = None,
                 raw: bool = False, page_size: int = PAGE,
                 only_decode: "frozenset[str] | None" = None) -> Iterator[RecordedEvent]:
        """Yield events in global order from `from_position`, page by page (bounded memory).

        `types` and `streams` filter by type name and stream; `to_position` stops after it.
        `raw=True` yields the decoded field maps instead of event instances. With
        `only_decode`, events of other types carry `UNDECODED` as data (headers only).
        """
        _check_position(from_position, "from_position")
        _check_position(page_size, "page_size")
        _check_names(types, "types")
        _check_names(streams, "streams")
        where = ["position >= ?"]
        params: list[Any] = [from_position]
        if to_position is not None:
            _check_position(to_position, "to_position", allow_zero=True)
            where.append(f"position <= {int(to_position)}")
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        order = "position"
        if streams and len(set(streams)) == 1:
            # One stream: its versions rise with its positions, so the (stream, version)
            # index yields the rows in position order and no page is sorted (a time-travel
            # replay of one session reads it once per projection).
            where.append("stream = ?")
            params.append(streams[0])
            order = "version"
        elif streams:
            where.append(f"stream IN ({','.join('?' * len(streams))})")
            params.extend(streams)
        # Reading nothing but headers (a catalogue-only replay), the payload bytes stay in the file.
        columns = _HEADER_COLUMNS if only_decode is not None and not only_decode and not raw else _COLUMNS
        sql = f"SELECT {columns} FROM events WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {int(page_size)}"
        return self.decoder.decode_pages(self._pages(sql, params, 0, page_size), raw, only_decode)

    def read_stream(self, stream: str, from_version: int = 1, *, to_version: int | None = None,
                    raw: bool = False, page_size: int = PAGE) -> Iterator[RecordedEvent]:
        """Yield one stream's events in version order from `from_version` (bounded memory)."""
        validate_stream(stream)
        _check_position(from_version, "from_version")
        _check_position(page_size, "page_size")
        if to_version is not None:
            _check_position(to_version, "to_version", allow_zero=True)
        upper = "" if to_version is None else f" AND version <= {int(to_version)}"
        sql = (f"SELECT {_COLUMNS} FROM events WHERE version >= ? AND stream = ?{upper} "
               f"ORDER BY version LIMIT {int(page_size)}")
        return self.decoder.decode_pages(self._pages(sql, [from_version, stream], 2, page_size), raw, None)

    def get(self, position: int, raw: bool = False) -> RecordedEvent | None:
        """The event at one position, or None."""
        row = self.db.one(f"SELECT {_COLUMNS} FROM events WHERE position = ?", (position,))
        return None if row is None else self.decode_row(row, raw)

    def stored_payloads(self, positions: Sequence[int]) -> Iterator[tuple[int, int, int, bytes | None]]:
        """(position, schema, flags, stored payload bytes or None when purged) of the events
        at `positions`, in no particular order; missing positions are left out.

        For readers that decode one known class's plain payload themselves (the session
        graph's node loader); anything else should use get() or read_all().
        """
        wanted = list(positions)
        for start in range(0, len(wanted), 500):  # keep each statement's parameter list small
            chunk = wanted[start:start + 500]
            yield from self.db.query(f"SELECT position, schema, flags, payload FROM events "
                                     f"WHERE position IN ({','.join('?' * len(chunk))})", chunk)

    def last_position(self) -> int:
        """The position of the newest event (0 for an empty log)."""
        return cast("int", self.db.scalar("SELECT max(position) FROM events", (), 0))

    def stream_version(self, stream: str) -> int:
        """The current version of a stream (0 when it has no events)."""
        return cast("int", self.db.scalar("SELECT max(version) FROM events WHERE stream=?", (validate_stream(stream),), 0))

    def follow(self, from_position: int = 1, *, stop: threading.Event | None = None,
               poll_interval: float = 0.05, idle_timeout: float | None = None,
               types: Sequence[str] | None = None, raw: bool = False) -> Iterator[RecordedEvent]:
        """Yield events from `from_position` on, then wait for new ones as any process commits them.

        Stops when `stop` is set, or after `idle_timeout` seconds without a new event.
        Commits are atomic and positions are assigned in commit order, so a follower
        never sees a gap or half of a command.
        """
        _check_position(from_position, "from_position")
        position = from_position
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            got = False
            # Read the head first: with a type filter we may skip ahead to it, and an
            # event committed after this read has a larger position, so none is skipped.
            head = self.last_position() if types else 0
            for ev in self.read_all(position, types=types, raw=raw):
                got = True
                position = ev.position + 1
                yield ev
                if stop is not None and stop.is_set():
                    return
            if types:
                position = max(position, head + 1)
            if got:
                idle_since = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                return
            if stop is not None:
                stop.wait(poll_interval)
            else:
                time.sleep(poll_interval)

    # --- chain -------------------------------------------------------------------

    def anchor(self) -> chain.Anchor:
        """The (position, hash) of the newest event, to keep outside the file."""
        row = self.db.one("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        if row is None:
            return chain.Anchor(0, chain.GENESIS.hex())
        return chain.Anchor(row[0], row[1].hex())

    def verify(self, anchor: chain.Anchor | str | None = None,
               progress: Callable[[int], None] | None = None, page_size: int = 5000,
               check_file: bool = True, check_blobs: bool = True) -> chain.VerifyReport:
        """Walk the whole chain; report the first altered, missing, reordered or mistyped row,
        then check the idempotency keys, the blobs (`check_blobs`) and the file (`check_file`).

        With an `anchor` from an earlier anchor(), also prove that the anchor is
        still on the chain: a shorter log is 'truncated', a different hash 'rewritten'.
        Without one, a log that ends before the largest position SQLite's
        sqlite_sequence says was written is 'truncated' too. The file check is SQLite's
        `PRAGMA integrity_check`: the chain proves every event row, but a damaged index
        page could still make an indexed read answer wrongly ('corrupt_file').
        See eventstore/logverify.py for the order of the checks.
        """
        from . import logverify

        return logverify.verify(self.db, anchor, progress, page_size, check_file, check_blobs,
                                self.limits.max_decompressed_bytes)

    def purge_payloads(self, stream: str) -> int:
        """Drop the payload bytes of every event of `stream`, keeping their digests.

        Must run inside the caller's write transaction, together with the event that
        records the purge. Returns the number of payloads dropped.
        """
        db = self.db
        rows = db.query("SELECT position, payload FROM events WHERE stream=? AND payload IS NOT NULL", (stream,))
        db.executemany("INSERT OR IGNORE INTO purged_payloads VALUES (?,?)",
                       [(p, chain.payload_digest(b)) for p, b in rows])
        db.execute("UPDATE events SET payload = NULL WHERE stream=? AND payload IS NOT NULL", (stream,))
        return len(rows)


def _check_expected(expected: Any) -> None:
    if expected in (ANY, NO_STREAM, STREAM_EXISTS):
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InvalidArgument(
            f"expected_version must be ANY, NO_STREAM, STREAM_EXISTS or a version >= 0, got {expected!r}"
        )


def _check_names(value: Any, name: str) -> None:
    # A bare string would be read as a list of one-character names and match nothing.
    if value is not None and (isinstance(value, (str, bytes)) or not all(isinstance(v, str) for v in value)):
        raise InvalidArgument(f"{name} must be a list of names, got {value!r}")
    for v in value or ():
        check_utf8(v, name)


def _check_position(value: Any, name: str, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise InvalidArgument(f"{name} must be an integer >= {0 if allow_zero else 1}, got {value!r}")
