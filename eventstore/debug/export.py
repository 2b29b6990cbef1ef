"""Export a store to JSON Lines, losslessly, and the format the importer reads back.

    with eventstore.open("prod.db") as store, open("prod.jsonl", "w") as out:
        export_store(store, out)
    import_store("prod.jsonl", "copy.db")      # eventstore.debug.importer; same checkpoint hash

One JSON object per line, ASCII only, each line carrying a `kind`:

* `header` (line 1): `format` "lash-eventstore-export", `format_version` 1, the store
  `schema`, the source `checkpoint` ("POSITION:HASH", taken in the same read snapshot as
  everything exported), the number of `events`, `stream` (null for a full export) and
  `chain` (true when the events reproduce the source chain).
* `event`: every column of one row of the log, byte for byte: `position`, `stream`,
  `version`, `type`, `schema`, `recorded_at_ms`, `flags`, `payload` (the stored, maybe
  compressed bytes, base64; null when purged), `purged_digest` (hex, for a purged
  payload: what the chain hashes instead) and `hash` (hex).
* `append_key`: an idempotency key of the log (`stream`, `key`, `digest`,
  `first_position`, `last_position`).
* `blob`: one content-addressed blob (`ref`, `flags`, `size`, `content` base64 as stored).
* `end` (last line): how many `lines`, `events`, `append_keys` and `blobs` came before.

Every line ends with `"check"`: the first 32 hex digits of SHA-256(previous line's check
+ this line without its check), the first line's previous check being empty. A changed,
dropped, added or reordered line therefore fails its own check or the next one, and
the importer names it. The check chain catches accidents and naive edits; someone who
rewrites a file on purpose can recompute it, as they can the event chain. To prove an
export holds the chain you trust, keep an anchor (`eventstore anchor`) elsewhere
and pass it to the import.

Not exported: the projections (an import rebuilds them from the events) and the
`store_meta` table, which holds the per-store secret of effect await tokens: exports
are meant to be shared, so an imported store gets a new secret (see
`eventstore/effects/awaits.py`).

A stream-filtered export (`stream=...`) is a readable extract of one stream: its events
(original positions and hashes, for reference) and the blobs their payloads name. It
cannot reproduce the chain (the other streams' rows are missing), so its header says
`"chain": false`; the importer refuses it unless told `chain=False`, which appends the
events afresh into a new store (new positions and hashes, same versions, times and
payload bytes).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
import tempfile
from typing import IO, Any, Callable, Iterator

import attrs

from .. import chain, codec
from ..errors import DiskFull, InvalidArgument, StoreError
from ..log import SCHEMA_VERSION, validate_stream
from ..logverify import stored_rows
from ..storage import Storage
from ..store import Store

FORMAT = "lash-eventstore-export"
FORMAT_VERSION = 1
PAGE = 500
"""Rows read per query: a page of rows is the most an export holds in memory."""
_CHECK_LEN = 32
_CHECK_SUFFIX = re.compile(r',"check":"([0-9a-f]{32})"\}$')
_REF = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[int, int], None]
"""progress(events_done, events_total)"""


# --- errors --------------------------------------------------------------------------------------


class ExportError(StoreError):
    """The source store cannot be exported as it is (its chain is broken, a row is unreadable)."""


class ExportTargetRefused(StoreError):
    """The export's output path is the store itself or one of its side files; nothing was written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class ImportRefused(StoreError):
    """An import was refused; the target is unchanged."""


class ImportTargetNotEmpty(ImportRefused):
    """The target store already holds events, keys or blobs."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        super().__init__(f"{path}: the target store is not empty ({what}); import only into a new store")


class BadExportLine(ImportRefused):
    """A line of the export is malformed, altered, missing or out of place."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


# --- results -------------------------------------------------------------------------------------


@attrs.frozen
class ExportReport:
    """What an export wrote."""

    lines: int
    events: int
    append_keys: int
    blobs: int
    anchor: str
    """The source's anchor `POSITION:HASH` (its newest event), recorded in the header as `checkpoint`."""
    stream: str | None


# --- the line format -------------------------------------------------------------------------------


class LineWriter:
    """Writes JSON lines with the running check (see the module docstring)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.check = ""
        self.lines = 0

    def write(self, obj: dict[str, Any]) -> None:
        """Write one object as a line; `kind` should come first for readability."""
        body = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
        self.check = line_check(self.check, body)
        self.out.write(f'{body[:-1]},"check":"{self.check}"}}\n')
        self.lines += 1


def line_check(previous: str, body: str) -> str:
    """The check of a line whose JSON without its check is `body`."""
    return hashlib.sha256((previous + body).encode()).hexdigest()[:_CHECK_LEN]


def split_check(text: str) -> tuple[str, str] | None:
    """(body without the check, check) of one line's text, or None when it has no check."""
    m = _CHECK_SUFFIX.search(text)
    if m is None:
        return None
    return text[: m.start()] + "}", m.group(1)


def b64(data: bytes) -> str:
    """Bytes as base64 text."""
    return base64.b64encode(data).decode("ascii")


# --- export ----------------------------------------------------------------------------------------



def export_store(store: Store, out: IO[str], *, stream: str | None = None,
                 progress: Progress | None = None) -> ExportReport:
    """Write the whole log (or one stream's events) with keys and blobs to `out` as JSON lines.

    Memory stays bounded (rows are read page by page); everything is read in one read
    snapshot, so writers may keep appending meanwhile. The source chain is recomputed
    on the way: a broken chain raises ExportError naming the position (verify it first).
    """
    if stream is not None:
        validate_stream(stream)
    w = LineWriter(out)
    db = store.db
    with store.read_transaction():
        anchor = store.anchor()
        total = anchor.position if stream is None else store.log.count([stream], anchor.position)
        if stream is not None and total == 0:
            raise InvalidArgument(f"stream {stream!r} has no events to export")
        w.write({"kind": "header", "format": FORMAT, "format_version": FORMAT_VERSION,
                 "schema": SCHEMA_VERSION, "checkpoint": str(anchor), "events": total,
                 "stream": stream, "chain": stream is None, "exported_at_ms": store.now_ms()})
        events = 0
        refs: set[str] = set()
        for row in _event_rows(store, anchor.position, stream):
            w.write(_event_line(row))
            events += 1
            if stream is not None and row[7] is not None:
                refs.update(_refs_in(store, row))
            if progress is not None and events % 10_000 == 0:
                progress(events, total)
        keys = 0
        if stream is None:
            for key_row in _paged(db, "SELECT stream, key, digest, first_position, last_position FROM append_keys "
                                      "WHERE (stream, key) > (?, ?) ORDER BY stream, key LIMIT ?", ("", ""),
                                  lambda r: (r[0], r[1])):
                w.write({"kind": "append_key", "stream": key_row[0], "key": key_row[1],
                         "digest": bytes(key_row[2]).hex(), "first_position": key_row[3],
                         "last_position": key_row[4]})
                keys += 1
        blobs = 0
        if stream is not None:
            refs = _ref_closure(store, refs)
        for blob in _blob_rows(store, None if stream is None else refs):
            w.write({"kind": "blob", "ref": blob[0], "flags": blob[1], "size": blob[2],
                     "content": b64(bytes(blob[3]))})
            blobs += 1
        w.write({"kind": "end", "lines": w.lines + 1, "events": events, "append_keys": keys, "blobs": blobs})
    if progress is not None:
        progress(events, total)
    return ExportReport(w.lines, events, keys, blobs, str(anchor), stream)


def _event_rows(store: Store, last: int, stream: str | None) -> Iterator[tuple[Any, ...]]:
    """The rows up to `last` (of one stream), with the source chain recomputed when whole."""
    prev = chain.GENESIS
    position = 1
    while True:
        # Stream, type and payload as stored bytes, as verify reads them: the export must
        # carry exactly what the chain hashes.
        rows = stored_rows(store.db, position, last, stream, PAGE)
        for row in rows:
            if stream is None:
                prev = _check_link(prev, row)
            yield row
        if len(rows) < PAGE:
            return
        position = rows[-1][0] + 1


def _check_link(prev: bytes, row: tuple[Any, ...]) -> bytes:
    position, s, version, t, schema, at, flags, payload, purged, stored = row
    digest = purged if payload is None else chain.payload_digest(bytes(payload))
    if digest is None:
        raise ExportError(f"position {position}: the payload is gone without a purge record; "
                          f"run `eventstore verify` on the source")
    try:
        h = chain.link(prev, position, bytes(s), version, bytes(t), schema, at, flags, bytes(digest))
    except Exception:
        h = None
    if h != bytes(stored):
        raise ExportError(f"position {position}: the source chain is broken here (the row does not hash to "
                          f"its stored link); run `eventstore verify` on the source")
    return h


def _event_line(row: tuple[Any, ...]) -> dict[str, Any]:
    position, s, version, t, schema, at, flags, payload, purged, stored = row
    try:
        stream_text, type_text = bytes(s).decode(), bytes(t).decode()
    except UnicodeDecodeError:
        raise ExportError(f"position {position}: the stream or type is not valid UTF-8") from None
    return {"kind": "event", "position": position, "stream": stream_text, "version": version,
            "type": type_text, "schema": schema, "recorded_at_ms": at, "flags": flags,
            "payload": None if payload is None else b64(bytes(payload)),
            "purged_digest": None if payload is not None or purged is None else bytes(purged).hex(),
            "hash": bytes(stored).hex()}


def _refs_in(store: Store, row: tuple[Any, ...]) -> set[str]:
    """Blob refs that one event's payload names: every 64-hex string (or 32-byte value) in
    its fields that is a stored blob (a stream extract carries the checkpoints and snapshots it points at)."""
    try:
        ev = store.log.decode_row(row[:8], raw=True)
    except StoreError:
        return set()
    found: set[str] = set()
    _walk_refs(ev.data, found)
    return {r for r in found if store.blobs.has(r)}


def _walk_refs(v: Any, found: set[str]) -> None:
    """Add every 64-hex string inside a decoded value to `found`."""
    stack = [v]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _REF.match(v):
                found.add(v)
        elif isinstance(v, bytes) and len(v) == 32:
            found.add(v.hex())  # refs stored as raw SHA-256 bytes (the commit's checkpoint ref)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)


def _ref_closure(store: Store, refs: set[str]) -> set[str]:
    """`refs` and the blobs they name in turn: a checkpoint manifest blob (msgpack) names
    its tool-state and execution-state blobs."""
    seen = set(refs)
    todo = list(refs)
    while todo:
        ref = todo.pop()
        try:
            plain = codec.unpack(store.blobs.get(ref))
        except (StoreError, codec.ShapeError, ValueError, TypeError):
            continue  # not msgpack: an opaque blob names nothing
        found: set[str] = set()
        _walk_refs(plain, found)
        for r in found - seen:
            if store.blobs.has(r):
                seen.add(r)
                todo.append(r)
    return seen


def _blob_rows(store: Store, only: set[str] | None) -> Iterator[tuple[Any, ...]]:
    sql = "SELECT ref, flags, size, content FROM blobs WHERE ref > ? ORDER BY ref LIMIT ?"
    if only is not None:
        for ref in sorted(only):
            row = store.db.one("SELECT ref, flags, size, content FROM blobs WHERE ref = ?", (ref,))
            if row is not None:
                yield row
        return
    # Blobs may be large: a small page keeps memory bounded.
    yield from _paged(store.db, sql, ("",), lambda r: (r[0],), page=16)


def _paged(db: Storage, sql: str, start: tuple[Any, ...], key: Callable[[tuple[Any, ...]], tuple[Any, ...]],
           page: int = PAGE) -> Iterator[tuple[Any, ...]]:
    after = start
    while True:
        rows = db.query(sql, (*after, page))
        yield from rows
        if len(rows) < page:
            return
        after = key(rows[-1])


def import_store(source: Any, target: str, **kw: Any) -> Any:
    """Import an export into a new store file: see `eventstore.debug.importer.import_store`."""
    from .importer import import_store as run

    return run(source, target, **kw)


STORE_SIDE_FILES = ("", "-wal", "-shm", "-journal")
"""The store file and the files SQLite keeps beside it."""


def check_output(store_path: str, output: str) -> None:
    """Raise ExportTargetRefused when `output` is the store at `store_path` or one of its
    side files: the same path once links are resolved, or the same file (device and inode,
    which also catches a hard link)."""
    if store_path == ":memory:" or store_path.startswith("file:"):
        return
    target = os.path.realpath(output)
    try:
        st = os.stat(output)
    except OSError:
        st = None
    for suffix in STORE_SIDE_FILES:
        side = store_path + suffix
        same = os.path.realpath(side) == target
        if not same and st is not None:
            try:
                other = os.stat(side)
            except OSError:
                continue
            same = (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
        if same:
            what = "the store file" if not suffix else f"the store's {suffix[1:]} file"
            raise ExportTargetRefused(output, f"is the store being exported ({what} {side}); "
                                              "choose another output path")


def export_to_path(store: Store, path: str, **kw: Any) -> ExportReport:
    """export_store into a new file at `path`, mode 0600 (it holds every payload of the store).

    Written to a temporary file created exclusively in the same directory (never through
    a link planted there), then renamed over `path`. An output that is the store or one of
    its side files raises ExportTargetRefused before anything is written.
    """
    check_output(store.path, path)
    directory, name = os.path.split(os.path.abspath(path))
    # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW and mode 0600 under a random name:
    # nothing planted beside the output can redirect the write, and the file is private
    # from its first byte (os.replace keeps the mode).
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as fh:
            report = export_store(store, fh, **kw)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not publish a file whose bytes are not on disk yet
        check_output(store.path, path)  # again: the output may have been swapped for a link meanwhile
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"{path}: the disk is full; the export was not written ({exc.strerror})") from None
        raise
    return report


__all__ = ["BadExportLine", "ExportError", "ExportReport", "ExportTargetRefused", "FORMAT", "FORMAT_VERSION",
           "ImportRefused", "ImportTargetNotEmpty", "LineWriter", "STORE_SIDE_FILES", "check_output",
           "export_store", "export_to_path", "import_store", "line_check", "split_check"]
