"""`verify`: what the log core proves about a store file, beyond what a read checks.

In order, stopping at the first problem:

1. the hash chain (`chain.walk`), with the storage class of every chained column: a
   stream turned from TEXT into a BLOB of the same bytes keeps every link valid, yet
   `read_stream` no longer finds it, so the class is checked as well as the bytes;
2. the newest position SQLite's `sqlite_sequence` remembers (a cut-off tail);
3. the idempotency keys: `append_keys` is not chained, so each key is checked against
   the events it names (see `check_keys`);
4. the blobs (unless `blobs=False`): every blob's bytes hash to its ref;
5. SQLite's `PRAGMA integrity_check` (unless `check_file=False`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterator

from . import chain, codec
from .storage import Storage
from .errors import InvalidArgument, PayloadTooLarge

# stream, type and payload are read as their stored bytes: the chain hashes bytes, and a
# tampered text that is not valid UTF-8 must be reported as altered, not crash the walk.
# The last column names stream, type or payload when its storage class is wrong (the casts
# hide it from the walk), or is NULL; the walk checks the other columns' classes itself,
# from the Python types, once a link fails (a wrong class never hashes right). Only the
# three cheap tests run on every row: they cost about nothing next to the walk.
VERIFY_SQL = (
    "SELECT position, CAST(stream AS BLOB), version, CAST(type AS BLOB), schema, recorded_at_ms, "
    "flags, CAST(payload AS BLOB), "
    "CASE WHEN payload IS NULL "
    "THEN (SELECT digest FROM purged_payloads p WHERE p.position = e.position) END, "
    "hash, "
    "CASE WHEN typeof(stream) = 'text' AND typeof(type) = 'text' "
    "AND typeof(payload) IN ('blob', 'null') THEN NULL "
    "WHEN typeof(stream) <> 'text' THEN 'stream holds ' || typeof(stream) || ', not text' "
    "WHEN typeof(type) <> 'text' THEN 'type holds ' || typeof(type) || ', not text' "
    "ELSE 'payload holds ' || typeof(payload) || ', not blob' "
    "END FROM events e WHERE position >= ? ORDER BY position LIMIT ?"
)

# PostgreSQL: the columns' types are enforced (text holds valid UTF-8 only, payload is bytea),
# so the bytes are the text's encoding and no storage class can be wrong.
VERIFY_SQL_PG = (
    "SELECT position, convert_to(stream, 'UTF8'), version, convert_to(type, 'UTF8'), schema, recorded_at_ms, "
    "flags, payload, "
    "CASE WHEN payload IS NULL "
    "THEN (SELECT digest FROM purged_payloads p WHERE p.position = e.position) END, "
    "hash, NULL FROM events e WHERE position >= ? ORDER BY position LIMIT ?"
)
# The rows as stored, for the export (the same bytes the walk hashes, no class check), of the
# whole log or of one stream, per engine.
_STORED = {
    ("sqlite", False): "SELECT position, CAST(stream AS BLOB), version, CAST(type AS BLOB), schema, recorded_at_ms, "
                       "flags, CAST(payload AS BLOB), CASE WHEN payload IS NULL THEN (SELECT digest FROM "
                       "purged_payloads p WHERE p.position = e.position) END, hash FROM events e "
                       "WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?",
    ("sqlite", True): "SELECT position, CAST(stream AS BLOB), version, CAST(type AS BLOB), schema, recorded_at_ms, "
                      "flags, CAST(payload AS BLOB), CASE WHEN payload IS NULL THEN (SELECT digest FROM "
                      "purged_payloads p WHERE p.position = e.position) END, hash FROM events e "
                      "WHERE position >= ? AND position <= ? AND stream = ? ORDER BY position LIMIT ?",
    ("postgresql", False): "SELECT position, convert_to(stream, 'UTF8'), version, convert_to(type, 'UTF8'), schema, "
                           "recorded_at_ms, flags, payload, CASE WHEN payload IS NULL THEN (SELECT digest FROM "
                           "purged_payloads p WHERE p.position = e.position) END, hash FROM events e "
                           "WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?",
    ("postgresql", True): "SELECT position, convert_to(stream, 'UTF8'), version, convert_to(type, 'UTF8'), schema, "
                          "recorded_at_ms, flags, payload, CASE WHEN payload IS NULL THEN (SELECT digest FROM "
                          "purged_payloads p WHERE p.position = e.position) END, hash FROM events e "
                          "WHERE position >= ? AND position <= ? AND stream = ? ORDER BY position LIMIT ?",
}
_SEQUENCE = {"sqlite": "SQLite's sqlite_sequence", "postgresql": "the log_clock table"}
"""Where each backend keeps the largest position ever written (for the message)."""


def _dialect(db: Storage) -> str:
    return getattr(db, "dialect", "sqlite")


def stored_rows(db: Storage, first: int, last: int, stream: str | None, limit: int) -> list[tuple]:
    """At most `limit` events in [first, last] (of one stream) as stored: (position, stream
    bytes, version, type bytes, schema, recorded_at_ms, flags, payload bytes or None, the
    purge digest when purged, hash). What an export copies: the bytes the chain hashes,
    which the log's decoding reads never return."""
    sql = _STORED[(_dialect(db), stream is not None)]
    params = (first, last, limit) if stream is None else (first, last, stream, limit)
    return db.query(sql, params)


def check_anchor(anchor: Any) -> chain.Anchor | None:
    """The anchor argument of verify as an Anchor (or None); InvalidArgument otherwise."""
    if anchor is None or isinstance(anchor, chain.Anchor):
        if anchor is not None and (isinstance(anchor.position, bool) or not isinstance(anchor.position, int)
                                   or anchor.position < 0 or not isinstance(anchor.hash, str)):
            raise InvalidArgument(f"anchor {anchor!r} must hold a position >= 0 and a hex hash")
        return anchor
    if isinstance(anchor, str):
        return chain.Anchor.parse(anchor)
    raise InvalidArgument(f"anchor must be an Anchor or 'POSITION:HASH' text, got {type(anchor).__name__} "
                          f"{anchor!r}")


def verify(db: Storage, anchor: chain.Anchor | str | None, progress: Callable[[int], None] | None,
           page_size: int, check_file: bool, check_blobs: bool, max_blob_bytes: int) -> chain.VerifyReport:
    """Run every check in the module docstring's order; the first problem is the report."""
    anchor = check_anchor(anchor)
    sql = VERIFY_SQL_PG if _dialect(db) == "postgresql" else VERIFY_SQL

    def pages() -> Iterator[list[tuple[Any, ...]]]:
        position = 1
        while True:
            rows = db.query(sql, (position, page_size))
            if not rows:
                return
            yield rows
            position = rows[-1][0] + 1

    def lookahead(position: int, n: int) -> list[tuple[Any, ...]]:
        return db.query(sql, (position, n))

    report = chain.walk(pages(), anchor, lookahead, progress)
    if not report.ok:
        return report
    # AUTOINCREMENT keeps the largest position ever written in sqlite_sequence, so a log
    # that ends before it lost its newest rows: caught without an anchor, unless whoever
    # deleted them also lowered the sequence (an anchor kept outside the file still does).
    seq = db.highest_position_ever("events")
    if seq is not None and seq > report.last_position:
        return _failed(report, report.last_position + 1, "truncated",
                       f"the store records that position {seq} was written "
                       f"({_SEQUENCE.get(_dialect(db), 'its sequence')}), but the "
                       f"log ends at {report.last_position}: its newest rows were deleted")
    problem: tuple[int | None, str, str] | None = check_keys(db)
    if problem is None and check_blobs:
        problem = check_blob_contents(db, max_blob_bytes)
    if problem is not None:
        return _failed(report, *problem)
    if check_file:
        problems = db.integrity_problems(5)
        if problems:
            return _failed(report, None, "corrupt_file", "; ".join(map(str, problems)))
    return report


def _failed(report: chain.VerifyReport, position: int | None, problem: str,
            detail: str) -> chain.VerifyReport:
    return chain.VerifyReport(False, report.checked, report.last_position, report.last_hash, position,
                              problem, detail)


def check_keys(db: Storage) -> tuple[int, str, str] | None:
    """(position, "bad_key", detail) for the first idempotency key that does not name its
    own append, or None.

    A key records the stream, the positions of the append it was given to, and a digest
    of that append's events (type, schema, codec flags and payload digest of each, as
    `EventLog.append` computes it). Each key's positions must hold events of its stream,
    those events must hash to its digest, and no two keys may claim the same position:
    one append carries at most one key. (A key moved onto an unkeyed append of
    identical events cannot be told from the original: nothing else records the key.)
    """
    claimed_until = 0
    claimed_by = ""
    kind_of_digest = "'blob'" if _dialect(db) == "postgresql" else "typeof(digest)"  # bytea: always bytes
    keys = db.query(f"SELECT stream, key, digest, first_position, last_position, {kind_of_digest} "
                    "FROM append_keys ORDER BY first_position, last_position")
    for stream, key, digest, first, last, kind in keys:
        where = f"idempotency key {key!r} of stream {stream!r} (positions {first}..{last})"
        if not isinstance(first, int) or not isinstance(last, int) or not 0 < first <= last:
            return (first if isinstance(first, int) else 0), "bad_key", f"{where}: not a range of positions"
        if first <= claimed_until:
            return first, "bad_key", f"{where}: overlaps the append of key {claimed_by}"
        rows = db.query("SELECT position, stream, type, schema, flags, payload, "
                        "(SELECT digest FROM purged_payloads p WHERE p.position = e.position) "
                        "FROM events e WHERE position BETWEEN ? AND ? ORDER BY position", (first, last))
        if len(rows) != last - first + 1 or any(r[1] != stream for r in rows):
            return first, "bad_key", f"{where}: those positions do not all hold events of its stream"
        h = hashlib.sha256()
        for _p, _s, type_, schema, flags, payload, purged in rows:
            stored = chain.payload_digest(payload) if isinstance(payload, bytes) else purged
            if not isinstance(stored, bytes):
                return first, "bad_key", f"{where}: an event in its range has no payload digest"
            h.update(f"{type_}\x00{schema}\x00{flags & ~codec.COMMAND_FLAGS}\x00".encode() + stored)
        if kind != "blob" or h.digest() != digest:
            return first, "bad_key", (f"{where}: its digest does not match those events "
                                      "(it names another append)")
        claimed_until, claimed_by = last, repr(key)
    return None


def check_blob_contents(db: Storage, max_bytes: int) -> tuple[None, str, str] | None:
    """(None, "bad_blob", detail) for the first blob whose stored bytes do not decode to
    content of its size that hashes to its ref, or None. One blob in memory at a time."""
    after = ""
    while True:
        rows = db.query("SELECT ref, flags, size, content FROM blobs WHERE ref > ? ORDER BY ref LIMIT 1",
                        (after,))
        if not rows:
            return None
        ref, flags, size, content = rows[0]
        after = ref
        try:
            if not isinstance(content, bytes) or not isinstance(flags, int):
                raise codec.ShapeError(f"content stored as {type(content).__name__}")
            data = codec.decompress(content, flags, max_bytes)
        except (codec.ShapeError, PayloadTooLarge) as exc:
            return None, "bad_blob", f"blob {ref}: its stored bytes cannot be read ({exc})"
        if chain.payload_digest(data).hex() != ref or len(data) != size:
            return None, "bad_blob", (f"blob {ref}: its bytes no longer hash to its ref "
                                      "(or differ from its size)")
