"""Content-addressed blobs: large immutable bytes that events refer to by hash.

A ref is the SHA-256 hex digest of the *logical* (uncompressed) bytes, so the same
content always has the same ref whatever the profile compressed it to, and storing it
twice costs nothing (`ON CONFLICT DO NOTHING`: the first encoding wins). Events carry refs;
the bytes live in the `blobs` table. GC (mark and sweep from the roots the projections
hold) belongs to the sessions domain and records its run as an event.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Iterable, Iterator

import attrs

from . import codec
from .storage import Storage as Database
from .errors import BlobNotFound, CorruptStore, InvalidArgument, PayloadTooLarge

SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    ref     TEXT PRIMARY KEY,
    flags   INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    content BLOB NOT NULL
) WITHOUT ROWID;
"""

PUTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_puts (
    ref       TEXT PRIMARY KEY,
    put_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""
"""When a blob was last put on its own (outside the commit that roots it): GC's minimum-age
grace spares a blob put less than the grace ago, which a root may be about to name. The
table is created on open, so stores written before it get it too (their blobs have no
row: they count as old)."""

_REF = re.compile(r"^[0-9a-f]{64}$")


def ref_of(data: bytes) -> str:
    """The ref that `data` is stored under: its SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()


def check_ref(ref: object) -> str:
    """Validate a ref (64 lower-case hex digits) and return it."""
    if not isinstance(ref, str) or not _REF.match(ref):
        raise InvalidArgument(f"blob ref must be 64 lower-case hex digits, got {ref!r}")
    return ref


@attrs.frozen
class BlobInfo:
    """A stored blob's ref, logical size and stored size."""

    ref: str
    size: int
    stored_size: int
    compressed: bool


class BlobStore:
    """Put and get content-addressed bytes in one store file."""

    def __init__(self, db: Database, compress_threshold: int | None, limits: codec.Limits,
                 clock: Callable[[], int] | None = None) -> None:
        self.db = db
        self.compress_threshold = compress_threshold
        self.limits = limits
        self.clock = clock

    def put(self, data: bytes, *, stamp: bool = True) -> str:
        """Store bytes (compressed by profile) and return their ref; idempotent.

        The put time is recorded for GC's minimum-age grace (a repeated put refreshes it);
        `stamp=False` is for a put whose root is written in the same transaction.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"blob data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) > self.limits.max_decompressed_bytes:
            raise PayloadTooLarge(
                f"blob of {len(data)} bytes is over the limit of {self.limits.max_decompressed_bytes}"
            )
        ref = ref_of(data)
        stored, flags = codec.compress_for(data, self.compress_threshold)
        db = self.db
        if (not stamp or self.clock is None) and db.in_transaction:
            # One statement is atomic by itself: inside a transaction it needs no savepoint.
            db.execute("INSERT INTO blobs VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (ref, flags, len(data), stored))
            return ref
        with self.db.transaction():
            self.db.execute("INSERT INTO blobs VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (ref, flags, len(data), stored))
            if stamp and self.clock is not None:
                self.db.execute("INSERT INTO blob_puts VALUES (?, ?) ON CONFLICT (ref) DO UPDATE "
                                "SET put_at_ms = excluded.put_at_ms WHERE excluded.put_at_ms > blob_puts.put_at_ms", (ref, self.clock()))
        return ref

    def put_after(self, after_ms: int) -> set[str]:
        """Refs put (on their own) after `after_ms`: the ones GC's grace spares."""
        return {r[0] for r in self.db.query("SELECT ref FROM blob_puts WHERE put_at_ms > ?", (after_ms,))}


    def get(self, ref: str) -> bytes:
        """The bytes stored under `ref`; BlobNotFound if absent, CorruptStore if they no
        longer hash to their ref."""
        row = self.db.one("SELECT flags, content FROM blobs WHERE ref = ?", (check_ref(ref),))
        if row is None:
            raise BlobNotFound(ref)
        try:
            data = codec.decompress(row[1], row[0], self.limits.max_decompressed_bytes)
        except codec.ShapeError as exc:
            raise CorruptStore(f"blob {ref}: {exc}") from None
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"blob {ref}: {exc}") from None
        if ref_of(data) != ref:
            raise CorruptStore(f"blob {ref}: its bytes no longer hash to its ref")
        return data

    def has(self, ref: str) -> bool:
        """True when a blob is stored under `ref`."""
        return self.db.one("SELECT 1 FROM blobs WHERE ref = ?", (check_ref(ref),)) is not None

    def info(self, ref: str) -> BlobInfo | None:
        """Sizes of a stored blob, or None."""
        row = self.db.one("SELECT ref, size, length(content), flags FROM blobs WHERE ref = ?", (check_ref(ref),))
        return None if row is None else BlobInfo(row[0], row[1], row[2], bool(row[3] & codec.FLAG_LZ4))

    def refs(self) -> Iterator[str]:
        """Every stored ref, in order (paged)."""
        after = ""
        while True:
            rows = self.db.query("SELECT ref FROM blobs WHERE ref > ? ORDER BY ref LIMIT 1000", (after,))
            for (ref,) in rows:
                yield ref
            if len(rows) < 1000:
                return
            after = rows[-1][0]

    def delete(self, refs: Iterable[str]) -> int:
        """Delete blobs by ref (used by GC inside its own transaction); returns how many went."""
        n = 0
        for ref in refs:
            self.db.execute("DELETE FROM blobs WHERE ref = ?", (check_ref(ref),))
            n += self.db.changes()
            self.db.execute("DELETE FROM blob_puts WHERE ref = ?", (ref,))
        return n

    def stats(self) -> tuple[int, int, int]:
        """(count, logical bytes, stored bytes) over all blobs."""
        row = self.db.one("SELECT count(*), coalesce(sum(size),0), coalesce(sum(length(content)),0) FROM blobs")
        return (row[0], row[1], row[2]) if row else (0, 0, 0)
