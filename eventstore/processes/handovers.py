"""Segment handovers: the one bounded continuation a process keeps between execution segments.

A runtime that runs a process in segments (it yields at a boundary, and a later execution
resumes it) puts the state the next segment starts from as a *handover*, numbered by
segment ordinal (docs/semantics.md §8, "Segment handovers"):

* a put at an ordinal that already holds the same payload is a no-op (`replayed=True`);
  a different payload there raises `HandoverConflict`, and nothing is written;
* a put at ordinal n drops the retained handovers below n - 1 (the predecessor stays, so
  a segment that crashed after its put can still be redriven from the one before);
* `latest_handover` returns the highest retained ordinal; `handover(id, n)` one ordinal.

The payload is opaque to the store: any msgpack value built from None, booleans, 64-bit
integers, finite floats, strings, bytes, lists and maps with string keys (engine state is
typically bytes, or a map holding some). "Identical" is decided on `payload_hash`, the
sha256 of the payload's canonical msgpack (map keys sorted at every level, tuples as
lists), so the decision never depends on map order.

Choices where the reference leaves room, following the other process-row operations:
an unknown (never registered, or pruned) process raises `UnknownProcess` for puts and
reads alike; a put on a terminal process raises `ProcessAlreadyTerminal` (a finished
process has no next segment), except an identical repeat, which stays a no-op like a
replayed terminal event. Handovers are registry-internal execution state, not process
events: they take no sequence number and do not move the record's `change_seq`. A put
is a `process.handover_put` event on the process's stream; the `processes` projection
indexes the retained ones and the payloads are read back from the log. A prune removes
them with every other row of the process (law 86); `delete_handovers` drops them early.
"""

from __future__ import annotations

from typing import Any, Sequence

import attrs

from projections import processes as proj

from ..checks import sha256_hex, text_keyed_msgpack
from ..checks import check_int
from ..errors import CorruptStore, InvalidArgument
from .base import ProcessFacadeBase, check_process_id
from .errors import HandoverConflict, ProcessAlreadyTerminal
from .events import ProcessHandoverPut, ProcessHandoversDeleted
from .model import ProcessRecord
from .rules import json_problem

HandoverRow = tuple[int, int, str, int]
"""(segment ordinal, log position, payload hash, put_at_ms), as the projection indexes it."""


@attrs.frozen
class SegmentHandover:
    """A stored segment handover: the payload the segment after `segment_ordinal` resumes from."""

    process_id: str
    segment_ordinal: int
    payload: Any
    payload_hash: str
    put_at_ms: int
    position: int
    """Where the `process.handover_put` event sits in the log."""


@attrs.frozen
class PutHandoverResult:
    """What a put did: the stored handover, whether it was already there, and what it dropped."""

    handover: SegmentHandover
    replayed: bool
    """True when the same payload was already stored at that ordinal and nothing was written."""
    dropped_ordinals: tuple[int, ...]
    """The retained ordinals below `segment_ordinal - 1` that this put removed."""


def handover_hash(payload: Any) -> str:
    """sha256 (hex) of the payload's canonical msgpack: map keys sorted at every level."""
    return sha256_hex(text_keyed_msgpack(payload))


def check_handover_payload(payload: Any) -> str:
    """Validate a handover payload (a msgpack value with string map keys); returns its hash."""
    problem = json_problem(payload, allow_bytes=True)
    if problem:
        raise InvalidArgument(f"payload is not a msgpack value (JSON values and bytes) at {problem}")
    return handover_hash(payload)


def decide_put_handover(record: ProcessRecord, retained: Sequence[HandoverRow], segment_ordinal: int,
                        payload: Any, payload_hash: str, now_ms: int) -> ProcessHandoverPut | None:
    """The event a put records, None for an identical repeat, or a typed error. Pure.

    Checks, in order: an ordinal already retained must hold the same payload hash (then
    the put is a no-op) or the put conflicts; a terminal process takes no new handover.
    The event lists the retained ordinals below `segment_ordinal - 1`, which it drops.
    """
    pid = record.process_id
    for ordinal, _position, stored_hash, _at in retained:
        if ordinal == segment_ordinal:
            if stored_hash == payload_hash:
                return None
            raise HandoverConflict(pid, segment_ordinal, stored_hash, payload_hash)
    if record.is_terminal:
        raise ProcessAlreadyTerminal(pid, record.status.value, f"a segment {segment_ordinal} handover")
    dropped = tuple(row[0] for row in retained if row[0] < segment_ordinal - 1)
    return ProcessHandoverPut(pid, segment_ordinal, payload, payload_hash, now_ms, dropped)


def decide_delete_handovers(record: ProcessRecord, retained: Sequence[HandoverRow],
                            now_ms: int) -> ProcessHandoversDeleted | None:
    """The event that deletes every retained handover, or None when there is none. Pure."""
    if not retained:
        return None
    return ProcessHandoversDeleted(record.process_id, tuple(row[0] for row in retained), now_ms)


class ProcessHandoverCommands(ProcessFacadeBase):
    """The segment handover part of `store.processes` (see the module docstring)."""

    def put_handover(self, process_id: str, segment_ordinal: int, payload: Any) -> PutHandoverResult:
        """Store the handover of `segment_ordinal` and drop retained ordinals below it minus one.

        An identical repeat is a no-op; another payload at a stored ordinal raises
        HandoverConflict; a terminal process raises ProcessAlreadyTerminal.
        """
        check_process_id(process_id)
        check_int(segment_ordinal, "segment_ordinal")
        digest = check_handover_payload(payload)
        with self._write("put_handover"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            retained = proj.handover_index(self._db, process_id)
            put = decide_put_handover(record, retained, segment_ordinal, payload, digest, now)
            if put is None:
                stored = next(row for row in retained if row[0] == segment_ordinal)
                return PutHandoverResult(self._handover_at(process_id, stored), True, ())
            result = self._append(process_id, [put], now)
            handover = SegmentHandover(process_id, segment_ordinal, payload, digest, now, result.last_position)
            return PutHandoverResult(handover, False, put.dropped_ordinals)

    def handover(self, process_id: str, segment_ordinal: int) -> SegmentHandover | None:
        """The retained handover at one ordinal, or None. UnknownProcess if the process is unknown."""
        check_int(segment_ordinal, "segment_ordinal")
        return self._retained_handover(process_id, segment_ordinal)

    def latest_handover(self, process_id: str) -> SegmentHandover | None:
        """The retained handover with the highest ordinal, or None. UnknownProcess if unknown."""
        return self._retained_handover(process_id, latest=True)

    def handovers(self, process_id: str) -> list[SegmentHandover]:
        """Every retained handover of the process, by ordinal. UnknownProcess if unknown."""
        with self._read():
            self._require(process_id)
            return [self._handover_at(process_id, row) for row in proj.handover_index(self._db, process_id)]

    def delete_handovers(self, process_id: str) -> int:
        """Delete every retained handover (a running or a terminal process); returns how many.

        Nothing is written when there is none. The payloads stay in the log until a prune.
        """
        check_process_id(process_id)
        with self._write("delete_handovers"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            deleted = decide_delete_handovers(record, proj.handover_index(self._db, process_id), now)
            if deleted is None:
                return 0
            self._append(process_id, [deleted], now)
            return len(deleted.segment_ordinals)

    # --- helpers ------------------------------------------------------------------------------

    def _retained_handover(self, process_id: str, segment_ordinal: int | None = None,
               latest: bool = False) -> SegmentHandover | None:
        with self._read():
            self._require(process_id)
            rows = proj.handover_index(self._db, process_id, segment_ordinal, latest)
            return self._handover_at(process_id, rows[0]) if rows else None

    def _handover_at(self, process_id: str, row: HandoverRow) -> SegmentHandover:
        """Read an indexed handover's payload back from the log."""
        ev = self.ctx.log.get(row[1])
        e = None if ev is None else ev.data
        if ev is None or not isinstance(e, ProcessHandoverPut) or e.process_id != process_id \
                or e.segment_ordinal != row[0]:
            raise CorruptStore(f"process {process_id!r}: the handover of segment {row[0]} indexed at position "
                               f"{row[1]} is not in the log: run `eventstore verify --projections`, then rebuild")
        return SegmentHandover(e.process_id, e.segment_ordinal, e.payload, e.payload_hash, e.put_at_ms, ev.position)
