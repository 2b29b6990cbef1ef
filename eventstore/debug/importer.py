"""Import an export (see `eventstore.debug.export` for the format) into a new store.

The whole import is one write transaction on the target: every line is checked before
the transaction commits, and any bad line rolls everything back, so a refused import
leaves the target as it was (a target file the import created is removed again, and a
target that was an empty file is given back its zero length and times).

Checks, line by line, naming the first bad line:
* the line check chain (any altered, dropped, added or reordered line);
* for a chained export, the event chain itself: each event must sit at the next
  position and hash, from the previous link and its own content, to its stored link;
  the last link must equal the header's checkpoint, and an `anchor` given by the caller
  must lie on the chain;
* blobs must hash to their ref and have their stated size; append keys must name
  events of their stream; the end line's counts must match.

Projections are applied in the same transaction, by the same appliers as every append,
so the imported store's projections equal a rebuild from its log.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import IO, Any, Iterator, NoReturn

import attrs

from .. import chain, codec
from ..chain import Anchor
from ..errors import FileError, StoreError
from .export import (FORMAT, FORMAT_VERSION, STORE_SIDE_FILES, BadExportLine, ImportTargetNotEmpty, Progress,
                     line_check, split_check)
from ..log import SCHEMA_VERSION
from ..store import Store
from ..store import open as open_store

CHUNK = 2000
"""Event rows inserted (and applied to the projections) per statement batch."""


@attrs.frozen
class ImportReport:
    """What an import wrote."""

    path: str
    lines: int
    events: int
    append_keys: int
    blobs: int
    anchor: str
    """The target's anchor `POSITION:HASH` after the import (equal to the source's for a chained import)."""
    chained: bool
    """True when the source chain was reproduced; False for a `chain=False` extract."""


def import_store(source: str | IO[bytes], target: str, *, chain_mode: bool = True,
                 anchor: Anchor | str | None = None, progress: Progress | None = None,
                 **open_kw: Any) -> ImportReport:
    """Import an export file (a path, or a binary stream) into the store file `target`.

    The target must not exist, or be a store without events, keys or blobs
    (ImportTargetNotEmpty otherwise). Any bad line raises BadExportLine naming it, and
    the target is left unchanged. With `chain_mode=False` the events are appended afresh
    (new positions and hashes), which is how a stream-filtered export is imported.
    `anchor` ("POSITION:HASH" from `eventstore anchor`) must lie on the imported chain.
    """
    if isinstance(anchor, str):
        anchor = Anchor.parse(anchor)
    if isinstance(source, str):
        try:
            fh = open(source, "rb")
        except OSError as exc:
            raise FileError(source, f"cannot read the export: {exc.strerror or exc}") from None
        with fh:
            return import_store(fh, target, chain_mode=chain_mode, anchor=anchor, progress=progress, **open_kw)
    before = _existing_files(target)
    try:
        store = open_store(target, **open_kw)
    except BaseException:
        _restore_files(target, before)
        raise
    try:
        with store.transaction():
            report = _Importer(store, chain_mode, anchor, progress).run(source)
        store.log.invalidate_cache()  # rows went in beside EventLog.append: forget the cached head
    except BaseException:
        store.close()
        _restore_files(target, before)
        raise
    store.close()
    return report


def _existing_files(path: str) -> dict[str, os.stat_result]:
    """The store file and side files that exist before an import, with their stat."""
    found: dict[str, os.stat_result] = {}
    for suffix in STORE_SIDE_FILES:
        try:
            found[path + suffix] = os.stat(path + suffix)
        except OSError:
            pass
    return found


def _restore_files(path: str, before: dict[str, os.stat_result]) -> None:
    """After a failed import: remove the files it created, and give a target that was an
    empty file back its zero length and times. A target that already was a store was
    only changed inside the rolled-back transaction, so it (and its side files, which
    another process may be using) is left to SQLite."""
    main = before.get(path)
    if main is not None and main.st_size > 0:
        return
    for suffix in STORE_SIDE_FILES:
        name = path + suffix
        st = before.get(name)
        try:
            if st is None:
                os.unlink(name)
            elif suffix == "" and st.st_size == 0:
                os.truncate(name, 0)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError:
            pass


class _Importer:
    """One import in progress, inside the target's write transaction."""

    def __init__(self, store: Store, chain_mode: bool, anchor: Anchor | None, progress: Progress | None) -> None:
        self.store = store
        self.db = store.db
        self.chain_mode = chain_mode
        self.anchor = anchor
        self.progress = progress
        self.check = ""
        self.line = 0
        self.header: dict[str, Any] = {}
        self.prev = chain.GENESIS
        self.position = 0
        self.versions: dict[str, int] = {}
        self.counts = {"event": 0, "append_key": 0, "blob": 0}
        self.pending: list[tuple[Any, ...]] = []
        self.pending_lines: list[int] = []
        self.purged: list[tuple[Any, ...]] = []
        self.anchor_seen = anchor is None or anchor.position == 0
        self.limit = store.log.limits.max_decompressed_bytes

    # --- the walk ---------------------------------------------------------------------------------

    def run(self, source: IO[bytes]) -> ImportReport:
        self._require_empty()
        ended = False
        for obj in self._lines(source):
            if ended:
                self._bad("there is a line after the end line")
            kind = obj.get("kind")
            if self.line == 1:
                if kind != "header":
                    self._bad(f"the first line must be the header, found kind {kind!r}")
                self._header(obj)
            elif kind == "event":
                self._event(obj)
            elif kind in ("append_key", "blob"):
                self._flush()
                if self.counts["event"] < self.header["events"]:
                    self._bad(f"a {kind} line before all {self.header['events']} events "
                              f"(only {self.counts['event']} so far)")
                (self._append_key if kind == "append_key" else self._blob)(obj)
            elif kind == "end":
                self._flush()
                self._end(obj)
                ended = True
            else:
                self._bad(f"unknown line kind {kind!r}")
        if not ended:
            self._bad(f"the export ends without its end line (truncated after line {self.line})",
                      line=self.line + 1)
        anchor = self.store.anchor()
        return ImportReport(self.store.path, self.line, self.counts["event"], self.counts["append_key"],
                            self.counts["blob"], str(anchor), self.chain_mode)

    def _lines(self, source: IO[bytes]) -> Iterator[dict[str, Any]]:
        for raw in source:
            self.line += 1
            try:
                text = raw.decode("ascii").rstrip("\r\n")
            except UnicodeDecodeError:
                self._bad("not ASCII text (an export is pure ASCII JSON)")
            parts = split_check(text)
            if parts is None:
                self._bad("the line has no check at its end (not an export line, or cut off)")
            body, check = parts
            expected = line_check(self.check, body)
            if check != expected:
                self._bad("the line check does not match: this line (or the one before it) was altered, "
                          "or a line was added, dropped or moved here")
            self.check = check
            try:
                obj = json.loads(body)
            except ValueError as exc:
                self._bad(f"not valid JSON ({exc})")
            if not isinstance(obj, dict):
                self._bad("not a JSON object")
            yield obj

    def _bad(self, reason: str, line: int | None = None) -> NoReturn:
        raise BadExportLine(self.line if line is None else line, reason)

    def _require_empty(self) -> None:
        db = self.db
        for table, what in (("events", "events"), ("append_keys", "idempotency keys"), ("blobs", "blobs")):
            n = db.scalar(f"SELECT count(*) FROM {table}", (), 0)
            if n:
                raise ImportTargetNotEmpty(self.store.path, f"{n} {what}")

    # --- line kinds ---------------------------------------------------------------------------

    def _header(self, obj: dict[str, Any]) -> None:
        if obj.get("format") != FORMAT:
            self._bad(f"not an event store export (format {obj.get('format')!r}, expected {FORMAT!r})")
        version = obj.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            self._bad(f"export format version {version!r}; this code reads versions up to {FORMAT_VERSION}")
        schema = obj.get("schema")
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            self._bad(f"written by store schema {schema!r}; this code supports up to {SCHEMA_VERSION}")
        events = obj.get("events")
        if not isinstance(events, int) or events < 0:
            self._bad(f"the header's event count must be an integer >= 0, got {events!r}")
        try:
            Anchor.parse(str(obj.get("checkpoint")))
        except StoreError:
            self._bad(f"the header's checkpoint {obj.get('checkpoint')!r} is not POSITION:HASH")
        if not obj.get("chain") and self.chain_mode:
            self._bad(f"a stream-filtered export (stream {obj.get('stream')!r}) cannot reproduce the source "
                      "chain; import it with chain_mode=False (`eventstore import --no-chain`) to append "
                      "its events afresh")
        self.header = obj

    def _event(self, obj: dict[str, Any]) -> None:
        try:
            position = _int(obj, "position")
            stream, type_ = _text(obj, "stream"), _text(obj, "type")
            version, schema = _int(obj, "version"), _int(obj, "schema")
            at, flags = _int(obj, "recorded_at_ms", signed=True), _int(obj, "flags")
            payload = None if obj.get("payload") is None else _b64(obj, "payload")
            purged = None if payload is not None else _hex(obj, "purged_digest", 32)
            stored = _hex(obj, "hash", 32)
        except ValueError as exc:
            self._bad(f"event: {exc}")
        digest = purged if payload is None else chain.payload_digest(payload)
        assert digest is not None  # purged was read (or refused) whenever the payload is absent
        if self.chain_mode:
            if position != self.position + 1:
                self._bad(f"event at position {position}, expected position {self.position + 1} "
                          f"(an event is missing or out of order)")
            try:
                h = chain.link(self.prev, position, stream, version, type_, schema, at, flags, digest)
            except Exception as exc:
                self._bad(f"event {position}: a header value is out of range ({exc})")
            if h != stored:
                self._bad(f"event {position} (stream {stream!r} version {version}): its content does not "
                          f"hash to its chain link: the event was altered")
            if not self.anchor_seen and self.anchor is not None and position == self.anchor.position:
                if h.hex() != self.anchor.hash:
                    self._bad(f"event {position}: the anchor says hash {self.anchor.hash}, "
                              f"the export has {h.hex()}")
                self.anchor_seen = True
        else:
            position = self.position + 1  # appended afresh: the next position of the new store
            h = chain.link(self.prev, position, stream, version, type_, schema, at, flags, digest)
        expected_version = self.versions.get(stream, 0) + 1
        if version != expected_version:
            self._bad(f"event of stream {stream!r} has version {version}, expected {expected_version}")
        self.versions[stream] = version
        self.prev, self.position = h, position
        self.pending.append((position, stream, version, type_, schema, at, flags, payload, h))
        self.pending_lines.append(self.line)
        if payload is None:
            self.purged.append((position, digest))
        self.counts["event"] += 1
        if len(self.pending) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        """Insert the pending rows and apply them to the projections, as an append would."""
        if not self.pending:
            return
        rows, lines = self.pending, self.pending_lines
        self.pending, self.pending_lines = [], []
        db = self.db
        try:
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", rows)
            if self.purged:
                db.executemany("INSERT INTO purged_payloads VALUES (?,?)", self.purged)
        except Exception as exc:  # a constraint: cannot happen after the checks above
            raise BadExportLine(lines[0], f"the events from this line on cannot be stored ({exc})") from None
        self.purged = []
        engine = self.store.engine
        try:
            recorded = self.store.log.decode_page([r[:8] for r in rows], False, engine.dispatcher.decode_types)
            engine.apply_inline(db, recorded)
        except StoreError as exc:
            bad = getattr(exc, "position", None)
            line = next((ln for r, ln in zip(rows, lines) if r[0] == bad), lines[0])
            raise BadExportLine(line, f"the event cannot be applied to the projections: {exc}") from None
        if self.progress is not None:
            self.progress(self.counts["event"], self.header.get("events", 0))

    def _append_key(self, obj: dict[str, Any]) -> None:
        if not self.chain_mode:
            self.counts["append_key"] += 1  # positions changed: the keys no longer apply
            return
        try:
            stream, key = _text(obj, "stream"), _text(obj, "key")
            digest = _hex(obj, "digest", 32)
            first, last = _int(obj, "first_position"), _int(obj, "last_position")
        except ValueError as exc:
            self._bad(f"append_key: {exc}")
        log = self.store.log
        streams = {ev.stream for p in {first, last} if 1 <= p <= self.position
                   for ev in log.read_all(p, to_position=p, only_decode=frozenset())}
        if not first <= last <= self.position or streams != {stream}:
            self._bad(f"append_key {key!r}: positions {first}..{last} are not events of stream {stream!r}")
        try:
            self.db.execute("INSERT INTO append_keys VALUES (?,?,?,?,?)", (stream, key, digest, first, last))
        except Exception:
            self._bad(f"append_key {key!r} of stream {stream!r} appears twice")
        self.counts["append_key"] += 1

    def _blob(self, obj: dict[str, Any]) -> None:
        try:
            ref = _text(obj, "ref")
            flags, size = _int(obj, "flags"), _int(obj, "size")
            content = _b64(obj, "content")
            data = codec.decompress(content, flags, self.limit)
        except (ValueError, codec.ShapeError, StoreError) as exc:
            self._bad(f"blob: {exc}")
        if chain.payload_digest(data).hex() != ref or len(data) != size:
            self._bad(f"blob {ref[:16]}…: its bytes do not hash to its ref (or differ from its size): altered")
        self.db.execute("INSERT INTO blobs VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (ref, flags, size, content))
        self.counts["blob"] += 1

    def _end(self, obj: dict) -> None:
        for name, have in (("lines", self.line), ("events", self.counts["event"]),
                           ("append_keys", self.counts["append_key"]), ("blobs", self.counts["blob"])):
            if obj.get(name) != have:
                self._bad(f"the end line counts {obj.get(name)!r} {name}, the export has {have}")
        if self.counts["event"] != self.header["events"]:
            self._bad(f"the header announces {self.header['events']} events, the export has {self.counts['event']}")
        if self.chain_mode:
            head = f"{self.position}:{self.prev.hex()}"
            if head != self.header["checkpoint"]:
                self._bad(f"the imported chain ends at {head}, but the header's checkpoint is "
                          f"{self.header['checkpoint']}")
            if not self.anchor_seen and self.anchor is not None:  # anchor_seen starts True without one
                self._bad(f"the anchor at position {self.anchor.position} is beyond the export's last "
                          f"event ({self.position})")


# --- field checks --------------------------------------------------------------------------------


def _int(obj: dict[str, Any], name: str, signed: bool = False) -> int:
    v = obj.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or (v < 0 and not signed):
        raise ValueError(f"field {name} must be an integer{'' if signed else ' >= 0'}, got {v!r}")
    return v


def _text(obj: dict[str, Any], name: str) -> str:
    v = obj.get(name)
    if not isinstance(v, str) or not v:
        raise ValueError(f"field {name} must be a non-empty string, got {v!r}")
    return v


def _b64(obj: dict[str, Any], name: str) -> bytes:
    v = obj.get(name)
    if not isinstance(v, str):
        raise ValueError(f"field {name} must be base64 text, got {type(v).__name__}")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"field {name} is not valid base64") from None


def _hex(obj: dict[str, Any], name: str, size: int) -> bytes:
    v = obj.get(name)
    try:
        out = bytes.fromhex(v) if isinstance(v, str) else None
    except ValueError:
        out = None
    if out is None or len(out) != size:
        raise ValueError(f"field {name} must be {size * 2} hex digits, got {v!r}")
    return out


__all__ = ["ImportReport", "import_store"]
