"""Copy a store's log to another store, on the same or another backend (`eventstore copy`).

Rows are copied as stored: every position, stream, version, type, schema, time, flag
(command marks included), payload byte and hash, plus the digests of purged payloads,
the idempotency keys, the blobs and the store's metadata. The destination's projections are
applied from the copied events in the same transaction, so the destination is a complete
store the moment the copy commits, and an anchor taken on the source verifies on it.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from .chain import Anchor
from .errors import StoreError

__all__ = ["CopyReport", "copy_store"]

_EVENTS = ("SELECT position, stream, version, type, schema, recorded_at_ms, flags, payload, hash "
           "FROM events WHERE position >= ? ORDER BY position LIMIT ?")


@attrs.frozen
class CopyReport:
    """What a copy did: events copied and the source's anchor, verified on the destination."""

    events: int
    anchor: Anchor
    purged: int
    keys: int
    blobs: int


def copy_store(src: Any, dst: Any, *, page_size: int = 1000,
               progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy the whole log of `src` into `dst`, which must hold no event yet.

    One write transaction on `dst`: a failure leaves it as it was. The source is read in
    one read transaction, so the copy is the log as of one instant even while others append.
    Raises StoreError when `dst` is not empty or the copied chain does not verify against
    the source's anchor.
    """
    if dst.last_position() != 0 or dst.db.scalar("SELECT count(*) FROM append_keys", (), 0):
        raise StoreError(f"{dst.path}: the destination of a copy must be a new, empty store "
                         f"(it has {dst.last_position()} events)")
    sdb, ddb = src.db, dst.db
    dispatcher = dst.engine.dispatcher
    decode = dst.log.decoder.decode_pages
    copied = 0
    with sdb.transaction(write=False), ddb.transaction():
        anchor = src.log.anchor()
        total = anchor.position
        position = 1
        while True:
            rows = sdb.query(_EVENTS, (position, page_size))
            if not rows:
                break
            ddb.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", rows)
            # The destination's projections, from the same rows (headers only for types
            # no applier reads), as the inline path would have applied them.
            dispatcher.apply(ddb, list(decode(iter([[r[:8] for r in rows]]), False, dispatcher.decode_types)))
            copied += len(rows)
            position = rows[-1][0] + 1
            if progress:
                progress(copied, total)
        purged = _copy_table(sdb, ddb, "purged_payloads", 2)
        keys = _copy_table(sdb, ddb, "append_keys", 5)
        blobs = _copy_table(sdb, ddb, "blobs", 4)
        _copy_table(sdb, ddb, "store_meta", 2, replace=True)
    dst.log.invalidate_cache()
    report = dst.verify(anchor, check_file=False)
    if not report.ok:
        raise StoreError(f"{dst.path}: the copied log does not verify against the source's anchor "
                         f"{anchor}: {report}")
    return CopyReport(copied, anchor, purged, keys, blobs)


def _copy_table(src: Any, dst: Any, table: str, ncols: int, replace: bool = False) -> int:
    """Copy every row of one small core table; returns the number of rows."""
    rows = src.query(f"SELECT * FROM {table}")
    if rows:
        sql = f"INSERT INTO {table} VALUES ({','.join('?' * ncols)})"
        if replace:  # the destination's row with the same key gives way to the source's
            key = dst.table_primary_key(table)
            sets = ", ".join(f"{c} = excluded.{c}" for c in dst.table_columns(table) if c not in key)
            sql += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        dst.executemany(sql, rows)
    return len(rows)
