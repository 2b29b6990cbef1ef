"""Pruning terminal processes, and the change feed.

Prune (law 86) takes terminal processes last changed before a cutoff (strictly), that
match an optional filter and whose change_seq is at most an optional watermark. In one
transaction it appends `process.pruned` events to `processes:registry` (the applier
deletes every row of the pruned processes), then drops the payload bytes of their
`process:<id>` streams with the log's `purge_payloads` (digests kept, so the hash chain
still verifies and a rebuild, which skips purged events, agrees with the live tables).
Pruned processes read as unknown; their ids may be registered again. Running processes
are never touched, and a second prune with the same arguments finds nothing to do.

The change feed (law 83) orders records by `change_seq`, the log position of the event
that last changed the row. Positions are assigned in commit order under the write lock,
so a reader that resumes from the last change_seq it saw never misses a committed change
and never sees one twice; it sees each changed row once, in its latest state. Terminal
states are final, so a terminal transition always appears (until the row is pruned: use
the watermark to prune only what every reader has consumed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from projections import processes as proj

from ..checks import check_int
from ..errors import InvalidArgument
from .base import ProcessFacadeBase
from .events import REGISTRY_STREAM, ProcessesPruned, PruneFilter, process_stream
from .model import Disposition, ProcessRecord, ProcessStatus

if TYPE_CHECKING:
    from ..store import StoreContext

PRUNE_CHUNK = 500
"""Process ids per `process.pruned` event (keeps each event small)."""


@attrs.frozen
class PruneReport:
    """What a prune removed (or, with dry_run, would remove)."""

    cutoff_ms: int
    pruned_processes: tuple[str, ...]
    pruned_events: int
    """How many process events (sequence numbers) the pruned processes had."""
    purged_payloads: int
    """How many log payloads were dropped (0 for a dry run)."""
    dry_run: bool


@attrs.frozen
class ChangePage:
    """One page of the change feed: records in change_seq order, and the cursor to resume from."""

    records: tuple[ProcessRecord, ...]
    next_cursor: int


def _check_filter(flt: Any) -> PruneFilter | None:
    if flt is None:
        return None
    if not isinstance(flt, PruneFilter):
        raise InvalidArgument(f"processes.prune: filter must be a PruneFilter, got {type(flt).__name__}")
    for s in flt.statuses:
        if not isinstance(s, ProcessStatus) or not s.is_terminal:
            raise InvalidArgument(f"processes.prune: filter.statuses: {s!r} is not a terminal ProcessStatus")
    if flt.owner_scope_id is not None and not isinstance(flt.owner_scope_id, str):
        raise InvalidArgument("processes.prune: filter.owner_scope_id must be None or a string")
    if flt.disposition is not None and not isinstance(flt.disposition, Disposition):
        raise InvalidArgument("processes.prune: filter.disposition must be None or a Disposition")
    if flt.input_kind is not None and flt.input_kind not in ("tool_call", "engine", "session_turn", "external"):
        raise InvalidArgument(f"processes.prune: filter.input_kind must be tool_call, engine, session_turn or external, "
                              f"got {flt.input_kind!r}")
    if flt.caused_by is not None and (not isinstance(flt.caused_by, str) or not flt.caused_by):
        raise InvalidArgument(f"processes.prune: filter.caused_by must be None or a non-empty string, "
                              f"got {flt.caused_by!r}"[:300])
    return attrs.evolve(flt, statuses=tuple(flt.statuses))


class ProcessPruneCommands(ProcessFacadeBase):
    """Prune and the change feed, as part of `store.processes`."""

    def prune(self, before_ms: int, *, filter: PruneFilter | None = None, up_to_change_seq: int | None = None,
              dry_run: bool = False) -> PruneReport:
        """Remove terminal processes last changed before `before_ms` (see the module docstring)."""
        cutoff = check_int(before_ms, "processes.prune: before_ms")
        if not isinstance(dry_run, bool):
            raise InvalidArgument(f"processes.prune: dry_run must be True or False, got {dry_run!r}")
        flt = _check_filter(filter)
        if up_to_change_seq is not None:
            check_int(up_to_change_seq, "processes.prune: up_to_change_seq")
        if dry_run:
            with self._read():
                found = proj.prune_candidates(self._db, cutoff, flt, up_to_change_seq)
            return PruneReport(cutoff, tuple(r[0] for r in found), sum(r[1] for r in found), 0, True)
        with self._write("prune"):
            now = self.ctx.now_ms()
            found = proj.prune_candidates(self._db, cutoff, flt, up_to_change_seq)
            if not found:
                return PruneReport(cutoff, (), 0, 0, False)
            ids = [r[0] for r in found]
            events = [ProcessesPruned(cutoff, up_to_change_seq, flt, tuple(ids[i:i + PRUNE_CHUNK]),
                                      sum(r[1] for r in found[i:i + PRUNE_CHUNK]), now)
                      for i in range(0, len(ids), PRUNE_CHUNK)]
            self.ctx.append(REGISTRY_STREAM, events, now_ms=now)
            # Same transaction as the prune events: either both the rows and the payload
            # bytes go, or neither does.
            purged = sum(self.ctx.log.purge_payloads(process_stream(pid)) for pid in ids)
            for pid in ids:
                _drop_process_sessions(self.ctx, pid)
            # Trigger receipts older than the cutoff go too. Any cutoff is allowed here, even
            # one later than now; the trigger retention refuses a future cutoff, and no
            # receipt can be newer than now, so clamping to now removes the same receipts.
            from ..triggers.commands import PruneTriggerHistory

            self.ctx.triggers.execute(f"processes.prune:{now}:{cutoff}:{ids[0]}",
                                      PruneTriggerHistory(min(cutoff, now)))
            return PruneReport(cutoff, tuple(ids), sum(r[1] for r in found), purged, False)

    def changes_since(self, cursor: int = 0, limit: int = 100) -> ChangePage:
        """Records changed after `cursor` (a change_seq), oldest change first.

        Resume with `next_cursor`; an empty page (or limit=0) returns the cursor unchanged.
        """
        check_int(cursor, "cursor")
        check_int(limit, "limit")
        if limit == 0:
            return ChangePage((), cursor)
        records = tuple(proj.changed_since(self._db, cursor, limit))
        return ChangePage(records, records[-1].change_seq if records else cursor)


PROCESS_SESSION_IDS = ("process-env:{id}", "process-session-turn:{id}")
"""The sessions a process owns (its execution environment and its session turn); law 71."""


def _drop_process_sessions(ctx: StoreContext, process_id: str) -> None:
    """Delete and purge the sessions a pruned process owned, in the prune's transaction."""
    for template in PROCESS_SESSION_IDS:
        session_id = template.format(id=process_id)
        info = ctx.sessions.get(session_id)
        if info is None or info.status == "purged":
            continue
        if info.status != "deleted":
            ctx.sessions.delete(session_id)
        ctx.sessions.purge(session_id)
