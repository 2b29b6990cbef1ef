"""The hash chain: the exact link definition and the walk that verifies it.

Each event row's hash is

    link(p) = SHA-256( link(p-1) || header(p) || SHA-256(stored payload of p) )

with link(0) = 32 zero bytes and

    header(p) = big-endian u64 position, u64 version, u32 schema, i64 recorded_at_ms,
                u32 flags, u32 len(stream), u32 len(type), stream (UTF-8), type (UTF-8)

The payload enters only through its digest, so purging a deleted session's bytes keeps
the chain verifiable: the digest moves to `purged_payloads` and verification uses it.
docs/log-format.md states the same definition for people writing their own verifier.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Callable, Iterable

import attrs

GENESIS = bytes(32)
_header = struct.Struct(">QQIqIII").pack
_sha256 = hashlib.sha256


def payload_digest(stored: bytes) -> bytes:
    """SHA-256 of the stored (possibly compressed) payload bytes."""
    return _sha256(stored).digest()


def link(prev: bytes, position: int, stream: str | bytes, version: int, type_: str | bytes, schema: int,
         recorded_at_ms: int, flags: int, digest: bytes) -> bytes:
    """The chain hash of one row, given the previous row's hash and the payload digest.
    `stream` and `type_` are text, or their stored bytes (export checks a source as stored)."""
    # mypy does not narrow on `__class__ is`; it stays (not isinstance) on the append path for speed
    s = stream if stream.__class__ is bytes else stream.encode()  # type: ignore[union-attr]
    t = type_ if type_.__class__ is bytes else type_.encode()  # type: ignore[union-attr]
    return _sha256(
        prev + _header(position, version, schema, recorded_at_ms, flags, len(s), len(t)) + s + t + digest
    ).digest()


@attrs.frozen
class Anchor:
    """A (position, hash) pair kept outside the file to detect truncation or rewriting later."""

    position: int
    hash: str

    def __str__(self) -> str:
        return f"{self.position}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        """Parse 'POSITION:HEXHASH' as printed by `eventstore anchor`."""
        from .errors import InvalidArgument

        pos, sep, h = text.partition(":")
        if not sep or not pos.strip().isdigit() or len(h.strip()) != 64:
            raise InvalidArgument(f"anchor {text!r} must look like POSITION:HASH (64 hex digits)")
        try:
            bytes.fromhex(h.strip())
        except ValueError:
            raise InvalidArgument(f"anchor {text!r}: the hash is not hexadecimal") from None
        return cls(int(pos), h.strip().lower())


@attrs.frozen
class VerifyReport:
    """The result of walking the chain.

    `problem` is one of None, "altered", "missing", "reordered", "payload_missing",
    "wrong_type" (a chained column holds a value of the wrong storage class),
    "truncated", "rewritten", "bad_key" (an idempotency key names events that are not
    its append), "bad_blob" (a blob's bytes no longer hash to its ref; `position` is
    then None), or "corrupt_file" (SQLite's integrity check failed: a damaged page or
    index; `position` is then None); `position` is the first bad position and `detail`
    says what was found there.
    """

    ok: bool
    checked: int
    last_position: int
    last_hash: str
    position: int | None = None
    problem: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.checked} events verified, head {self.last_position}:{self.last_hash}"
        if self.position is None:  # a file-level problem, not one row
            return f"FAILED: {self.problem}: {self.detail}"
        return f"FAILED at position {self.position}: {self.problem}: {self.detail}"


Row = tuple[Any, ...]
"""(position, stream, version, type, schema, recorded_at_ms, flags, payload, digest_if_purged, hash,
wrong_type): the last is None, or what is wrong with a column's storage class."""


def walk(pages: Iterable[list[Row]], anchor: Anchor | None = None,
         lookahead: Callable[[int, int], list[Row]] | None = None,
         progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Verify rows delivered in position order, page by page.

    `lookahead(position, n)` returns up to n rows from `position` on; it is used only
    after a mismatch, to tell a reordering from an alteration.
    """
    prev = GENESIS
    expected = 1
    checked = 0
    anchor_seen = anchor is None
    if anchor is not None and anchor.position == 0:
        if anchor.hash != GENESIS.hex():
            return _fail(0, 0, prev, 0, "rewritten", "an anchor at position 0 must carry the all-zero hash")
        anchor_seen = True
    for page in pages:
        for row in page:
            position, stream, version, type_, schema, at, flags, payload, purged_digest, stored, bad = row
            if position != expected:
                return _fail(checked, expected - 1, prev, expected, "missing",
                             f"the row at position {expected} is gone (next row is {position})")
            if bad is not None:
                return _fail(checked, position - 1, prev, position, "wrong_type",
                             f"column {bad}: the row was edited outside the store")
            if payload is None:
                if purged_digest is None:
                    return _fail(checked, position - 1, prev, position, "payload_missing",
                                 "the payload was removed without a purge record")
                digest = purged_digest
            else:
                digest = _sha256(payload).digest()
            # stream and type arrive as their stored bytes (the verify query casts them), so
            # a tampered value that is no valid UTF-8 is still hashed, not a crash.
            s = stream if stream.__class__ is bytes else stream.encode()
            t = type_ if type_.__class__ is bytes else type_.encode()
            try:
                h = _sha256(prev + _header(position, version, schema, at, flags, len(s), len(t))
                            + s + t + digest).digest()
            except (struct.error, TypeError):  # a header value out of range or of the wrong type
                h = None
            if h is None or h != stored:  # the hash column is NOT NULL: the same test, narrowed
                wrong = _wrong_class(row)
                if wrong is not None:
                    return _fail(checked, position - 1, prev, position, "wrong_type",
                                 f"column {wrong}: the row was edited outside the store")
                return _diagnose(checked, prev, row, lookahead)
            if not anchor_seen and anchor is not None and position == anchor.position:
                if h.hex() != anchor.hash:
                    return _fail(checked, position, h, position, "rewritten",
                                 f"the anchor says hash {anchor.hash} here, the file has {h.hex()}")
                anchor_seen = True
            prev = h
            expected += 1
            checked += 1
        if progress is not None:
            progress(checked)
    if not anchor_seen and anchor is not None:
        return _fail(checked, expected - 1, prev, anchor.position, "truncated",
                     f"the anchor is at position {anchor.position} but the log ends at {expected - 1}")
    return VerifyReport(True, checked, expected - 1, prev.hex())


_SQLITE_CLASS = {int: "integer", float: "real", str: "text", bytes: "blob", type(None): "null"}


def _wrong_class(row: Row) -> str | None:
    """'<column> holds <class>, not <class>' for the first integer column or hash of a row
    whose SQLite storage class is wrong, from the Python types the driver returned."""
    for name, value in (("version", row[2]), ("schema", row[4]), ("recorded_at_ms", row[5]),
                        ("flags", row[6])):
        if value.__class__ is not int:
            return f"{name} holds {_SQLITE_CLASS.get(value.__class__, '?')}, not integer"
    if row[9].__class__ is not bytes:
        return f"hash holds {_SQLITE_CLASS.get(row[9].__class__, '?')}, not blob"
    return None


def _fail(checked: int, last: int, prev: bytes, position: int, problem: str, detail: str) -> VerifyReport:
    return VerifyReport(False, checked, last, prev.hex(), position, problem, detail)


def _diagnose(checked: int, prev: bytes, row: Row, lookahead: Callable[[int, int], list[Row]] | None) -> VerifyReport:
    """A row's hash does not match: was it altered, or does it belong elsewhere?"""
    position = row[0]
    if lookahead is not None:
        # A reordering moves a row's whole content, its stored hash included. If some
        # later row's content links correctly at this position, the rows were swapped.
        # Every later row is tried (page by page): a swap can span any distance, and this
        # runs once, only after a mismatch.
        start = position + 1
        while True:
            page = lookahead(start, 1000)
            for other in page:
                if other[8] is None and other[7] is None:
                    continue
                digest = other[8] if other[7] is None else payload_digest(other[7])
                try:
                    # one starred tuple: the same bytecode as link(prev, position, *other[1:7], digest),
                    # which mypy miscounts as too many arguments
                    h = link(*(prev, position, *other[1:7], digest))
                except (struct.error, TypeError, AttributeError):
                    continue
                if h == other[9]:
                    return _fail(checked, position - 1, prev, position, "reordered",
                                 f"the event stored at position {other[0]} belongs at position {position}")
            if len(page) < 1000:
                break
            start = page[-1][0] + 1
    stream = row[1].decode(errors="replace") if isinstance(row[1], bytes) else row[1]
    return _fail(checked, position - 1, prev, position, "altered",
                 f"stream {stream!r} version {row[2]}: the stored hash does not match the row's content")
