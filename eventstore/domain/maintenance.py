"""Maintenance of session state: tombstones, vacuum, blob GC, artifact pointers, attachments.

* `tombstone_nodes` hides nodes from reads (law 60); `vacuum` removes tombstoned nodes
  and terminal turn inputs from the projections and reports exactly what it removed
  (law 61). Neither is SQLite's VACUUM: the log keeps every event.
* `gc` is mark and sweep over the blob table from the roots the projections hold, in
  one write transaction, recorded as a `store.blob_gc_ran` event on `store:gc`. A rooted
  manifest that cannot be decoded aborts the sweep and keeps everything (law 62).
* The attachment manifest is a write-ahead record of uploads: an intent makes a ref a
  GC root before its bytes arrive; a commit stamps it; `forget_aged_intents` drops
  uncommitted intents whose owner is provably gone.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import attrs

from ..errors import InvalidArgument
from ..facades import register_facade
from . import checkpoints
from .commit_events import (
    ArtifactRefSet,
    AttachmentIntentRecorded,
    AttachmentIntentsForgotten,
    BlobGcRan,
    NodesTombstoned,
    SessionVacuumed,
)

log = logging.getLogger("eventstore.gc")

GC_STREAM = "store:gc"
ARTIFACT_STREAM = "store:artifacts"
ARTIFACT_NAMESPACES = ("lashlang_module", "lashlang_artifact", "process_execution_env",
                       "lashlang_trigger_manifest")


@attrs.frozen
class VacuumReport:
    """What one vacuum removed (only rows it removed itself)."""

    removed_node_count: int
    removed_pending_turn_input_tombstone_count: int


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    return value


def tombstone_nodes(ctx: Any, session_id: str, node_ids: Sequence[str]) -> int:
    """Hide live nodes from reads; returns how many were live and are now hidden."""
    from .sessions import require_live_session

    ctx.require_writable("sessions.tombstone_nodes")
    ids = tuple(_text(n, f"node_ids[{i}]") for i, n in enumerate(node_ids))
    with ctx.transaction():
        now = ctx.now_ms()
        require_live_session(ctx.db, session_id, "tombstone_nodes")
        live = [n for n in dict.fromkeys(ids) if ctx.db.one(
            "SELECT 1 FROM graph_nodes WHERE session_id = ? AND node_id = ? AND tombstoned = 0", (session_id, n))]
        if live:
            ctx.append(f"session:{session_id}", [NodesTombstoned(session_id, tuple(live))], now_ms=now)
        return len(live)


def vacuum(ctx: Any, session_id: str) -> VacuumReport:
    """Physically drop tombstoned nodes and terminal turn inputs from the projections."""
    from .inputs import vacuum_events
    from .sessions import require_live_session

    ctx.require_writable("sessions.vacuum")
    with ctx.transaction():
        now = ctx.now_ms()
        require_live_session(ctx.db, session_id, "vacuum")
        nodes = ctx.db.scalar("SELECT count(*) FROM graph_nodes WHERE session_id = ? AND tombstoned = 1",
                              (session_id,), 0)
        input_events = vacuum_events(ctx.db, session_id, now)
        inputs = len(input_events[0].input_ids) if input_events else 0
        if nodes or inputs:
            ctx.append(f"session:{session_id}", [*input_events, SessionVacuumed(session_id, nodes, inputs)],
                       now_ms=now)
        return VacuumReport(nodes, inputs)


def gc(ctx: Any, dry_run: bool = False) -> checkpoints.GcReport:
    """Mark and sweep the blob table; see the module docstring. Safe to call any time."""
    from projections import graph as gproj

    if not dry_run:
        ctx.require_writable("sessions.gc")
    with ctx.transaction() if not dry_run else ctx.read_transaction():
        now = ctx.now_ms()
        ctx.require_fresh("graph")
        manifests, others = gproj.gc_roots(ctx.db)
        try:
            marked, unmarked = checkpoints.mark_and_sweep(ctx.db, ctx.blobs, manifests, others)
        except checkpoints.CheckpointDecodeError as exc:
            # Conservative: a root we cannot read might protect anything. Keep everything.
            log.warning("blob GC aborted, nothing deleted: %s", exc)
            return checkpoints.GcReport(0, 0, 0, dry_run=dry_run)
        retained = len([r for r in marked if ctx.blobs.has(r)])
        report = checkpoints.GcReport(len(manifests | others), retained, len(unmarked), tuple(sorted(unmarked)),
                                      dry_run)
        if dry_run:
            return report
        ctx.blobs.delete(unmarked)
        ctx.append(GC_STREAM, [BlobGcRan(report.root_count, retained, len(unmarked),
                                         checkpoints.deleted_digest(unmarked))], now_ms=now)
        return report


def set_artifact_ref(ctx: Any, namespace: str, artifact_ref: str, blob_ref: str | None) -> None:
    """Point (namespace, name) at a blob (a GC root), or remove the pointer with None."""
    from ..blobs import check_ref

    ctx.require_writable("artifacts.set")
    _text(namespace, "namespace")
    _text(artifact_ref, "artifact_ref")
    if blob_ref is not None:
        check_ref(blob_ref)
    with ctx.transaction():
        ctx.append(ARTIFACT_STREAM, [ArtifactRefSet(namespace, artifact_ref, blob_ref)])


def get_artifact_ref(ctx: Any, namespace: str, artifact_ref: str) -> str | None:
    """The blob a named pointer points at, or None."""
    return ctx.db.scalar("SELECT blob_ref FROM graph_artifact_refs WHERE namespace = ? AND artifact_ref = ?",
                         (namespace, artifact_ref))


# --- attachments ------------------------------------------------------------------------------


@attrs.frozen
class AttachmentRef:
    """One row of the attachment manifest."""

    session_id: str
    attachment_id: str
    blob_ref: str
    owner_kind: str | None
    owner_id: str | None
    intent_at_ms: int
    committed_at_ms: int | None


class Attachments:
    """`store.attachments`: the per-session write-ahead manifest of uploads."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def record_intent(self, session_id: str, attachment_id: str, blob_ref: str,
                      owner: tuple[str, str] | None = None) -> None:
        """Record (or refresh) an upload intent before the bytes are uploaded.

        `owner` is ("turn", turn_id) or ("process", process_id): kind and id together.
        """
        from ..blobs import check_ref
        from .sessions import require_live_session

        self.ctx.require_writable("attachments.record_intent")
        _text(attachment_id, "attachment_id")
        check_ref(blob_ref)
        if owner is not None:
            if (not isinstance(owner, tuple) or len(owner) != 2 or owner[0] not in ("turn", "process")
                    or not isinstance(owner[1], str) or not owner[1]):
                raise InvalidArgument(f"owner must be ('turn', id) or ('process', id), got {owner!r}")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            require_live_session(self.ctx.db, session_id, "attachments.record_intent")
            kind, oid = owner if owner is not None else (None, None)
            self.ctx.append(f"session:{session_id}",
                            [AttachmentIntentRecorded(session_id, attachment_id, blob_ref, kind, oid)], now_ms=now)

    def get(self, session_id: str, attachment_id: str) -> AttachmentRef | None:
        """One manifest row, or None."""
        row = self.ctx.db.one("SELECT * FROM graph_attachments WHERE session_id = ? AND attachment_id = ?",
                              (session_id, attachment_id))
        return None if row is None else AttachmentRef(*row)

    def holds_ref(self, session_id: str, blob_ref: str) -> bool:
        """True when this session recorded the ref (guards the session boundary)."""
        return self.ctx.db.one("SELECT 1 FROM graph_attachments WHERE session_id = ? AND blob_ref = ?",
                               (session_id, blob_ref)) is not None

    def list_refs(self, session_id: str | None = None) -> list[AttachmentRef]:
        """Every manifest row (intents and commits), of one session or of all."""
        sql = "SELECT * FROM graph_attachments"
        params: tuple = ()
        if session_id is not None:
            sql += " WHERE session_id = ?"
            params = (session_id,)
        return [AttachmentRef(*r) for r in self.ctx.db.query(sql + " ORDER BY session_id, attachment_id", params)]

    def forget(self, session_id: str, attachment_ids: Sequence[str]) -> int:
        """Remove rows from the manifest (and so from the GC roots); returns how many went."""
        self.ctx.require_writable("attachments.forget")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            present = [a for a in dict.fromkeys(attachment_ids) if self.get(session_id, a) is not None]
            if present:
                self.ctx.append(f"session:{session_id}", [AttachmentIntentsForgotten(session_id, tuple(present))],
                                now_ms=now)
            return len(present)

    def forget_aged_intents(self, session_id: str, cutoff_ms: int) -> int:
        """Drop uncommitted intents recorded at or before `cutoff_ms` whose owner is dead:
        no owner; a turn owner superseded by a later commit of a different turn; a process
        owner the registry no longer knows. Returns how many were dropped."""
        self.ctx.require_writable("attachments.forget_aged_intents")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            rows = self.ctx.db.query(
                "SELECT attachment_id, owner_kind, owner_id, intent_at_ms FROM graph_attachments "
                "WHERE session_id = ? AND committed_at_ms IS NULL AND intent_at_ms <= ?", (session_id, cutoff_ms))
            dead = [r[0] for r in rows if self._owner_dead(session_id, r[1], r[2], r[3])]
            if dead:
                self.ctx.append(f"session:{session_id}", [AttachmentIntentsForgotten(session_id, tuple(dead))],
                                now_ms=now)
            return len(dead)

    def _owner_dead(self, session_id: str, kind: str | None, owner_id: str | None, intent_at: int) -> bool:
        db = self.ctx.db
        if kind is None:
            return True
        if kind == "turn":
            return db.one("SELECT 1 FROM graph_turns WHERE session_id = ? AND turn_id != ? AND committed_at_ms >= ?",
                          (session_id, owner_id, intent_at)) is not None
        if kind == "process":
            try:
                from projections import processes
            except ImportError:  # no registry in this build: process-owned rows are kept
                return False
            known = getattr(processes, "process_exists", None)
            return known is not None and not known(db, owner_id)
        return False


register_facade("attachments", Attachments)
