"""Plumbing shared by the process registry facade's parts (records, grants, leases, prune):
the context, transactions, record lookup, and reading process events back from the log.

The facade (`store.processes`) is assembled in `facade.py` from mixins defined in
`grants.py`, `leases.py`, `handovers.py` and `prune.py`,
each on top of `ProcessFacadeBase`. The context is the Store, or a read-only `StoreView` for time
travel: every command calls `_write()` first, which refuses on a view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import attrs

from projections import processes as proj

from ..errors import InvalidArgument
from .errors import UnknownProcess
from .events import (
    MaterializedWake,
    ProcessEventAppended,
    TerminalOutcome,
    WakeDelivery,
    process_stream,
)
from .model import ProcessRecord

if TYPE_CHECKING:
    from ..store import StoreContext

PROJECTION = "processes"


@attrs.frozen
class ProcessEvent:
    """One entry of a process's event log, as `events_after` returns it."""

    process_id: str
    sequence: int
    event_type: str
    payload: Any
    payload_hash: str
    replay_key: str | None
    occurred_at_ms: int
    terminal: TerminalOutcome | None
    wake: MaterializedWake | None
    wake_delivery: WakeDelivery | None
    position: int
    """Where the event sits in the store's log."""

    @classmethod
    def from_appended(cls, e: ProcessEventAppended, position: int) -> "ProcessEvent":
        """Build from the stored `process.event_appended` event and its log position."""
        return cls(e.process_id, e.sequence, e.event_type, e.payload, e.payload_hash, e.replay_key,
                   e.occurred_at_ms, e.terminal, e.wake, e.wake_delivery, position)


@attrs.frozen
class AppendEventResult:
    """What an append did: the event (new or replayed) and the wake delivery, if any.

    The caller puts `wake_delivery` into the target session's queue (see
    `Processes.append_event_and_deliver` for doing both in one transaction).
    """

    event: ProcessEvent
    wake_delivery: WakeDelivery | None
    replayed: bool
    """True when the replay key matched a stored event and nothing was appended."""


def check_process_id(process_id: Any) -> str:
    """Validate a process id argument."""
    if not isinstance(process_id, str) or not process_id:
        raise InvalidArgument(f"process_id must be a non-empty string, got {process_id!r}")
    return process_id


class ProcessFacadeBase:
    """Context access and helpers for the process registry facade."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx

    # --- transactions -------------------------------------------------------------------

    def _write(self, what: str) -> Any:
        """A write transaction for command `what` (ReadOnlyView on a time-travel view)."""
        self.ctx.require_writable(f"processes.{what}")
        return self.ctx.transaction()

    def _read(self) -> Any:
        """A read transaction: one snapshot for the reads inside it."""
        self.ctx.require_fresh(PROJECTION)
        return self.ctx.db.transaction(write=False)

    @property
    def _db(self) -> Any:
        self.ctx.require_fresh(PROJECTION)
        return self.ctx.db

    def _append(self, process_id: str, events: Sequence[Any], now_ms: int) -> Any:
        return self.ctx.append(process_stream(process_id), list(events), now_ms=now_ms)

    # --- records ------------------------------------------------------------------------

    def _require(self, process_id: str) -> ProcessRecord:
        """The record of a registered process, or UnknownProcess."""
        record = proj.get_record(self._db, check_process_id(process_id))
        if record is None:
            raise UnknownProcess(process_id)
        return record

    def get(self, process_id: str) -> ProcessRecord | None:
        """A process's record, or None when it is unknown (never registered, or pruned)."""
        return proj.get_record(self._db, check_process_id(process_id))

    def require(self, process_id: str) -> ProcessRecord:
        """A process's record; UnknownProcess when there is none."""
        return self._require(process_id)

    # --- events ---------------------------------------------------------------------------

    def _load_events(self, process_id: str, index: Sequence[tuple[int, int, int]]) -> list[ProcessEvent]:
        """Read indexed events (sequence, position, version) back from the process's stream."""
        if not index:
            return []
        wanted = {row[1] for row in index}
        out = []
        # One ranged read of the stream by version (indexed), keeping only the indexed
        # events: grants, lease and ack events in between are skipped.
        for ev in self.ctx.log.read_stream(process_stream(process_id), index[0][2], to_version=index[-1][2]):
            if ev.position in wanted and isinstance(ev.data, ProcessEventAppended):
                out.append(ProcessEvent.from_appended(ev.data, ev.position))
        return out

    def _event_at(self, process_id: str, position: int) -> ProcessEvent:
        ev = self.ctx.log.get(position)
        assert ev is not None, position  # the projection indexes only positions the log holds
        return ProcessEvent.from_appended(ev.data, ev.position)
