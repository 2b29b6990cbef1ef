"""Maintenance of session state: tombstones, vacuum, blob GC and named artifact pointers.

* `tombstone_nodes` hides nodes from reads (law 60); `vacuum` removes tombstoned nodes
  and terminal turn inputs from the projections and reports exactly what it removed
  (law 61). Neither is SQLite's VACUUM: the log keeps every event.
* `gc` is mark and sweep over the blob table from the roots the projections hold, in
  one write transaction, recorded as a `store.blob_gc_ran` event on `store:gc`. A rooted
  manifest that cannot be decoded aborts the sweep and keeps everything (law 62).
* `store.artifacts` keeps named pointers (namespace, name) -> blob; every pointer is a
  GC root.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

import attrs

from ..errors import CorruptStore, InvalidArgument
from ..facades import register_facade
from . import checkpoints
from .events import ArtifactRefSet, BlobGcRan, NodesTombstoned, SessionVacuumed

if TYPE_CHECKING:
    from ..store import StoreContext

log = logging.getLogger("eventstore.gc")

GC_STREAM = "store:gc"
ARTIFACT_STREAM = "store:artifacts"
ARTIFACT_NAMESPACES = ("lashlang_module", "lashlang_artifact", "process_execution_env",
                       "lashlang_trigger_manifest")
"""The reference's namespaces; any other non-empty namespace is accepted too."""


@attrs.frozen
class VacuumReport:
    """What one vacuum removed (only rows it removed itself)."""

    removed_node_count: int
    removed_pending_turn_input_tombstone_count: int


@attrs.frozen
class StoreVacuumReport:
    """What a store-wide vacuum removed: totals, and each session it removed something from."""

    removed_node_count: int
    removed_pending_turn_input_tombstone_count: int
    sessions: tuple[tuple[str, VacuumReport], ...] = ()
    """(session id, its VacuumReport) for every session with something removed, by id."""


MAX_NAME_CHARS = 1024


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_CHARS:
        raise InvalidArgument(f"{what} is {len(value)} characters long, over the limit of {MAX_NAME_CHARS}")
    return value


def tombstone_nodes(ctx: StoreContext, session_id: str, node_ids: Sequence[str]) -> int:
    """Hide live nodes from reads; returns how many were live and are now hidden.

    Unknown and already hidden ids are ignored (the call is idempotent).
    """
    from projections import graph as gproj

    from ..sessions import check_session_id, require_live_session

    ctx.require_writable("sessions.tombstone_nodes")
    check_session_id(session_id)
    if isinstance(node_ids, (str, bytes)) or not isinstance(node_ids, (tuple, list)):
        raise InvalidArgument(f"session {session_id!r}: node_ids must be a list of node ids")
    ids = tuple(_text(n, f"session {session_id!r}: node_ids[{i}]") for i, n in enumerate(node_ids))
    with ctx.transaction():
        now = ctx.now_ms()
        ctx.require_fresh("graph")
        require_live_session(ctx.db, session_id, "tombstone_nodes")
        live = [n for n in dict.fromkeys(ids) if gproj.node_exists(ctx.db, session_id, n, include_tombstoned=False)]
        if live:
            ctx.append(f"session:{session_id}", [NodesTombstoned(session_id, tuple(live))], now_ms=now)
        return len(live)


def vacuum(ctx: StoreContext, session_id: str) -> VacuumReport:
    """Physically drop tombstoned nodes and terminal turn inputs from the projections.

    Appends nothing (and reports zeros) when there is nothing to remove.
    """
    from projections import graph as gproj

    from ..inputs import vacuum_events
    from ..sessions import check_session_id, require_live_session

    ctx.require_writable("sessions.vacuum")
    check_session_id(session_id)
    with ctx.transaction():
        now = ctx.now_ms()
        ctx.require_fresh("graph")
        ctx.require_fresh("inputs")
        require_live_session(ctx.db, session_id, "vacuum")
        nodes = gproj.tombstoned_count(ctx.db, session_id)
        input_events = vacuum_events(ctx.db, session_id, now)
        inputs = len(input_events[0].input_ids) if input_events else 0
        if nodes or inputs:
            ctx.append(f"session:{session_id}", [*input_events, SessionVacuumed(session_id, nodes, inputs)],
                       now_ms=now)
        return VacuumReport(nodes, inputs)


def vacuum_all(ctx: StoreContext) -> StoreVacuumReport:
    """Vacuum every active session in one write transaction (see `vacuum`); sessions with
    nothing to remove append nothing."""
    from projections import sessions as sproj

    ctx.require_writable("sessions.vacuum_all")
    with ctx.transaction():
        ctx.require_fresh("sessions")
        done = []
        for row in sproj.list_rows(ctx.db, sproj.ACTIVE):
            report = vacuum(ctx, row.session_id)
            if report.removed_node_count or report.removed_pending_turn_input_tombstone_count:
                done.append((row.session_id, report))
        return StoreVacuumReport(sum(r.removed_node_count for _, r in done),
                                 sum(r.removed_pending_turn_input_tombstone_count for _, r in done), tuple(done))


DEFAULT_GC_MIN_AGE_MS = 60_000
"""GC's default grace: an unrooted blob put (on its own) less than this ago is kept."""


def gc(ctx: StoreContext, dry_run: bool = False, min_age_ms: int = DEFAULT_GC_MIN_AGE_MS) -> checkpoints.GcReport:
    """Mark and sweep the blob table; see the module docstring. Safe to call any time.

    With `dry_run`, nothing is deleted or recorded and the report says what would go.
    An unrooted blob put less than `min_age_ms` ago is spared (`spared_young_count`).
    """
    from projections import graph as gproj

    if not isinstance(dry_run, bool):
        raise InvalidArgument(f"dry_run must be True or False, got {dry_run!r}")
    if isinstance(min_age_ms, bool) or not isinstance(min_age_ms, int) or not 0 <= min_age_ms < 2 ** 62:
        raise InvalidArgument(f"gc: min_age_ms must be an integer >= 0, got {min_age_ms!r}")
    ctx.require_writable("sessions.gc")
    # Why one write transaction: a commit writes its blobs and the head that roots them
    # under the same lock, so the mark sees every root of every blob it may sweep.
    with ctx.transaction() if not dry_run else ctx.read_transaction():
        now = ctx.now_ms()
        ctx.require_fresh("graph")
        manifests, others = gproj.gc_roots(ctx.db)
        try:
            marked, unmarked = checkpoints.mark_and_sweep(ctx.db, ctx.blobs, manifests, others)
        except (checkpoints.CheckpointDecodeError, CorruptStore) as exc:
            # Conservative: a root we cannot read might protect anything. Keep everything.
            log.warning("blob GC aborted, nothing deleted: %s", exc)
            return checkpoints.GcReport(0, 0, 0, dry_run=dry_run, aborted=str(exc))
        # The grace: another process may have put a blob a moment ago and be about to
        # root it (record an intent, commit a head); its put time keeps it this round.
        young = ctx.blobs.put_after(now - min_age_ms) if min_age_ms else set()
        spared = [r for r in unmarked if r in young]
        unmarked = [r for r in unmarked if r not in young]
        retained = sum(1 for r in marked if ctx.blobs.has(r)) + len(spared)
        report = checkpoints.GcReport(len(manifests | others), retained, len(unmarked), tuple(sorted(unmarked)),
                                      dry_run, spared_young_count=len(spared))
        if dry_run:
            return report
        ctx.blobs.delete(unmarked)
        ctx.append(GC_STREAM, [BlobGcRan(report.root_count, retained, len(unmarked),
                                         checkpoints.deleted_digest(unmarked))], now_ms=now)
        return report


# --- named artifact pointers ----------------------------------------------------------------


class Artifacts:
    """`store.artifacts`: named pointers (namespace, name) -> blob ref, each a GC root."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx

    def set(self, namespace: str, name: str, blob_ref: str | None) -> None:
        """Point (namespace, name) at a blob, or remove the pointer with None.

        Setting the value it already has appends nothing.
        """
        from projections import graph as gproj

        from ..blobs import check_ref

        self.ctx.require_writable("artifacts.set")
        _text(namespace, "namespace")
        _text(name, "name")
        if blob_ref is not None:
            check_ref(blob_ref)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self.ctx.require_fresh("graph")
            if gproj.artifact_ref(self.ctx.db, namespace, name) != blob_ref:
                self.ctx.append(ARTIFACT_STREAM, [ArtifactRefSet(namespace, name, blob_ref)], now_ms=now)

    def get(self, namespace: str, name: str) -> str | None:
        """The blob ref a pointer points at, or None."""
        from projections import graph as gproj

        self.ctx.require_fresh("graph")
        return gproj.artifact_ref(self.ctx.db, _text(namespace, "namespace"), _text(name, "name"))

    def list(self, namespace: str | None = None) -> list[tuple[str, str, str]]:
        """(namespace, name, blob ref) of every pointer, or of one namespace, ordered."""
        from projections import graph as gproj

        if namespace is not None:
            _text(namespace, "namespace")
        self.ctx.require_fresh("graph")
        return gproj.artifact_refs(self.ctx.db, namespace)


register_facade("artifacts", Artifacts)

__all__ = ["ARTIFACT_NAMESPACES", "Artifacts", "DEFAULT_GC_MIN_AGE_MS", "GC_STREAM", "StoreVacuumReport",
           "VacuumReport", "gc", "tombstone_nodes", "vacuum", "vacuum_all"]
