"""Turning stored event rows into RecordedEvents: the decoding behind every read.

`RowDecoder` owns the per-type decoder table and the hot loop that reads, replays,
rebuilds and time travel all go through; the log (`eventstore.log`) fetches pages of
rows and hands them over. It knows the registry and the size limits, nothing of SQL.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, NamedTuple

from . import codec, ids
from ._direct_decode import direct_decoder
from .errors import CorruptStore, DecodeError, PayloadTooLarge
from .events import EventRegistry

_unpackb = ids.unpackb  # compacted ids back to strings (eventstore/ids.py)
_tuple_new = tuple.__new__


def _unpack_map(payload: bytes) -> Any:
    """msgpack's parse as the read loop does it (string keys first, then any keys)."""
    try:
        return _unpackb(payload)
    except Exception:
        return _unpackb(payload, strict_map_key=False)


class _Undecoded:
    """Marker for an event whose payload was deliberately not decoded (headers only)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDECODED"


UNDECODED = _Undecoded()
_SKIP = object()
"""In a decoder table, the schema of a type the reader asked not to decode."""


class _DecoderTable(dict):
    """type name -> (schema, decoder, direct decoder, its map header, direct decoder of
    payloads holding compact ids); a type not seen yet reads as all None, so the hot loop
    does one subscript and no None test."""

    __slots__ = ()

    def __missing__(self, key: str) -> tuple[None, None, None, None, None]:
        return (None, None, None, None, None)


class RecordedEvent(NamedTuple):
    """One event as stored: where it sits in the log and its decoded data.

    A NamedTuple rather than an attrs class because every read and replay builds one per
    row; tuple construction is the cheapest immutable record Python has. `data` is the
    event instance (or, for raw reads, the decoded field map); it is None when the
    payload was purged.
    """

    position: int
    stream: str
    version: int
    type: str
    schema: int
    recorded_at_ms: int
    data: Any


class RowDecoder:
    """Decodes rows (the first 8 event columns) with the registry's classes and the limits."""

    def __init__(self, registry: EventRegistry, limits: codec.Limits) -> None:
        self.registry = registry
        self.limits = limits
        self._decoders = _DecoderTable()
        self._decoders_generation = -1

    def decode_row(self, row: tuple, raw: bool = False) -> RecordedEvent:
        """Turn one stored row (the first 8 event columns) into a RecordedEvent."""
        position, stream, version, type_, schema, at, flags, payload = row
        if payload is None:
            return RecordedEvent(position, stream, version, type_, schema, at, None)
        if payload.__class__ is not bytes:  # SQLite keeps any type in any column: an edited row
            raise CorruptStore(f"position {position} (stream {stream!r}): the payload is stored as "
                               f"{type(payload).__name__}, not bytes; the row was edited outside the store "
                               "(`eventstore verify` reports it)", position=position, stream=stream)
        if len(payload) > self.limits.max_payload_bytes:
            raise PayloadTooLarge(f"position {position} (stream {stream!r}): stored payload of "
                                  f"{len(payload)} bytes is over the limit of {self.limits.max_payload_bytes}")
        try:
            plain = codec.unpack(codec.decompress(payload, flags, self.limits.max_decompressed_bytes))
        except codec.ShapeError as exc:
            raise DecodeError(f"event {type_}: {exc}", position=position, stream=stream) from None
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"position {position} (stream {stream!r}): {exc}") from None
        if raw:
            return RecordedEvent(position, stream, version, type_, schema, at, plain)
        et = self.registry.for_name(type_, position, stream)
        return RecordedEvent(position, stream, version, type_, schema, at,
                             et.decode_plain(plain, schema, position, stream))

    def decode_pages(self, pages: Iterator[list[tuple]], raw: bool,
                     only: "frozenset[str] | None") -> Iterator[RecordedEvent]:
        """The decoding behind every read: the rows of each page in turn, lazily.

        The pages are pulled from `pages` (a generator of queries) inside the decoding
        generator itself, so each event costs one generator resume, not one per layer.
        Decoding lazily (rather than a whole page into a list) keeps few decoded events
        alive at once, which keeps the garbage collector's young-generation passes short.
        """
        return self._raw_pages(pages, only) if raw else self._typed_pages(pages, only)

    def _typed_pages(self, pages: Iterator[list[tuple]],
                     only: "frozenset[str] | None") -> Iterator[RecordedEvent]:
        # The hot loop of every read and replay. A row takes the fast line when its type
        # has a decoder at its schema and its payload is present, plain (no flags but the
        # command marks) and within the limit; anything else (first sight of a type, a
        # type not to decode, a purged or compressed payload, an old schema to upcast)
        # goes to _decode_other, and a row the fast line fails on is redone by
        # decode_row, which raises the precise typed error. On the fast line, a flat
        # class's payload is decoded straight from its bytes when it can be (direct).
        table = self._decoders if only is None else _DecoderTable()
        registry = self.registry
        unpackb = _unpackb
        make = _tuple_new
        cls = RecordedEvent
        limit = self.limits.max_payload_bytes
        skip = _SKIP
        not_plain = ~codec.COMMAND_FLAGS  # lz4 or any unknown bit: not the fast line
        unpack = _unpack_map
        # A compact id starts with msgpack's fixext 16 header (ids.ID_MARK): testing for that one
        # byte is a memchr, where testing for the two-byte mark costs about ten times more.
        fixext16 = ids.ID_MARK[0]
        for rows in pages:
            if self._decoders_generation != registry.generation:
                self._decoders.clear()  # a class was (re-)registered: build its decoder again
                table.clear()
                self._decoders_generation = registry.generation
            row = None
            try:
                for row in rows:
                    position, stream, version, type_, schema, at, flags, payload = row
                    at_schema, decode, direct, header, direct_ids = table[type_]  # all None for a type not seen yet
                    if at_schema == schema and not flags & not_plain and payload is not None and len(payload) <= limit:
                        if direct is not None and payload[0] == header and 0xFF not in payload:
                            # Straight from the bytes (see eventstore/_direct_decode.py for
                            # why the header and the 0xFF byte are checked first, and why a
                            # payload that may hold a compact id takes its own decoder).
                            try:
                                data = direct(payload) if fixext16 not in payload else direct_ids(payload)
                            except Exception:  # the careful path decides: same value, or the typed error
                                data = decode(unpack(payload))
                        else:
                            try:
                                # msgpack's default (string keys only) parses faster than
                                # strict_map_key=False; maps with other keys take the second try.
                                plain = unpackb(payload)
                            except Exception:
                                plain = unpackb(payload, strict_map_key=False)
                            data = decode(plain)
                        # tuple.__new__ directly: NamedTuple's __new__ is a Python frame per row.
                        yield make(cls, (position, stream, version, type_, schema, at, data))
                    elif at_schema is skip:
                        yield make(cls, (position, stream, version, type_, schema, at,
                                         None if payload is None else UNDECODED))
                    else:
                        yield self._decode_other(row, only, table)
            except Exception:
                if row is None:
                    raise
                yield self.decode_row(row)  # raises the typed error for this row
                # (decode_row accepted it after all: go on after it, this page then the rest)
                rest = rows[next(k for k, r in enumerate(rows) if r is row) + 1:]
                yield from self._typed_pages(itertools.chain((rest,), pages), only)
                return

    def _decode_other(self, row: tuple, only: "frozenset[str] | None", table: dict) -> RecordedEvent:
        """Decode a row the fast line did not take, and teach `table` its type."""
        type_ = row[3]
        if only is not None and type_ not in only:
            table[type_] = (_SKIP, None, None, None, None)
            return _tuple_new(RecordedEvent, (*row[:6], None if row[7] is None else UNDECODED))
        ev = self.decode_row(row)
        if type_ not in table:
            et = self.registry._by_name.get(type_)
            if et is not None:
                decode = codec.class_codec(et.cls).decoder()
                direct = direct_decoder(et.cls)
                if direct is None:
                    table[type_] = (et.schema, decode, None, None, None)
                else:
                    by_ids = direct.decode_ids
                    if by_ids is None:  # no mirror for payloads holding compact ids: the careful path
                        by_ids = lambda payload, decode=decode: decode(_unpack_map(payload))  # noqa: E731
                    table[type_] = (et.schema, decode, direct.decode, direct.header, by_ids)
        return ev

    def _raw_pages(self, pages: Iterator[list[tuple]],
                   only: "frozenset[str] | None") -> Iterator[RecordedEvent]:
        # raw=True: the decoded field maps, no classes (export, inspection); not a hot path.
        for rows in pages:
            for row in rows:
                if only is not None and row[3] not in only:
                    yield _tuple_new(RecordedEvent, (*row[:6], None if row[7] is None else UNDECODED))
                else:
                    yield self.decode_row(row, raw=True)
