"""The session graph projection: heads, the node index, the usage ledger, turn stamps,
attachments and artifact pointers.

Node payloads are not copied here: `graph_nodes` keeps only (session, node id, parent,
position of the node_added event, tombstoned), and reads fetch the payloads from the
event rows by position. The log is the only copy of a conversation.
"""

from __future__ import annotations

from typing import Any, Iterable

import attrs
import msgpack

from eventstore import codec
from eventstore.domain.commit_events import (
    ArtifactRefSet,
    AttachmentIntentRecorded,
    AttachmentIntentsForgotten,
    GraphReplaced,
    NodeAdded,
    NodesTombstoned,
    SessionCommitted,
    SessionVacuumed,
)
from eventstore.domain.graph_model import AgentFrame, ModelConfig, SessionNode, UsageDelta
from eventstore.domain.session_events import SessionDeletedEvent, SessionPurged

from .base import REGISTRY, Projection

graph = REGISTRY.register(
    Projection(
        name="graph",
        version=1,
        tables=("graph_heads", "graph_nodes", "graph_usage", "graph_turns", "graph_attachments",
                "graph_artifact_refs"),
        ddl=(
            """CREATE TABLE IF NOT EXISTS graph_heads (
                session_id TEXT PRIMARY KEY,
                revision INTEGER NOT NULL,
                provider_id TEXT, model TEXT,
                frames BLOB,
                current_agent_frame_id TEXT,
                checkpoint_ref TEXT,
                leaf_node_id TEXT,
                live_nodes INTEGER NOT NULL,
                commit_position INTEGER NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_nodes (
                session_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                parent_node_id TEXT,
                position INTEGER NOT NULL,
                tombstoned INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (session_id, node_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX IF NOT EXISTS graph_nodes_by_position ON graph_nodes (session_id, position)",
            """CREATE TABLE IF NOT EXISTS graph_usage (
                session_id TEXT NOT NULL, position INTEGER NOT NULL, idx INTEGER NOT NULL,
                source TEXT NOT NULL, model TEXT NOT NULL,
                input INTEGER NOT NULL, output INTEGER NOT NULL, cache_read_input INTEGER NOT NULL,
                cache_write_input INTEGER NOT NULL, reasoning_output INTEGER NOT NULL,
                PRIMARY KEY (session_id, position, idx)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_turns (
                session_id TEXT NOT NULL, turn_id TEXT NOT NULL, turn_commit_hash TEXT NOT NULL,
                revision INTEGER NOT NULL, checkpoint_ref TEXT, batch_ids BLOB NOT NULL,
                committed_at_ms INTEGER NOT NULL,
                PRIMARY KEY (session_id, turn_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_attachments (
                session_id TEXT NOT NULL, attachment_id TEXT NOT NULL, blob_ref TEXT NOT NULL,
                owner_kind TEXT, owner_id TEXT, intent_at_ms INTEGER NOT NULL, committed_at_ms INTEGER,
                PRIMARY KEY (session_id, attachment_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_artifact_refs (
                namespace TEXT NOT NULL, artifact_ref TEXT NOT NULL, blob_ref TEXT NOT NULL,
                PRIMARY KEY (namespace, artifact_ref)
            ) WITHOUT ROWID""",
        ),
    )
)

_frames_codec = codec.class_codec(AgentFrame)


def _pack_frames(frames: Iterable[AgentFrame]) -> bytes:
    return msgpack.packb([_frames_codec.to_plain(f) for f in frames], use_bin_type=True)


def _ensure_head(db: Any, session_id: str, position: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO graph_heads (session_id, revision, live_nodes, commit_position) "
        "VALUES (?, 0, 0, ?)", (session_id, position))


@graph.on(NodeAdded)
def _node_added(db: Any, ev: Any) -> None:
    d = ev.data
    _ensure_head(db, d.session_id, 0)
    db.execute("INSERT INTO graph_nodes VALUES (?, ?, ?, ?, 0)",
               (d.session_id, d.node.node_id, d.node.parent_node_id, ev.position))
    db.execute("UPDATE graph_heads SET live_nodes = live_nodes + 1 WHERE session_id = ?", (d.session_id,))


@graph.on(GraphReplaced)
def _replaced(db: Any, ev: Any) -> None:
    sid = ev.data.session_id
    db.execute("DELETE FROM graph_nodes WHERE session_id = ?", (sid,))
    db.execute("UPDATE graph_heads SET live_nodes = 0 WHERE session_id = ?", (sid,))


@graph.on(SessionCommitted)
def _committed(db: Any, ev: Any) -> None:
    d: SessionCommitted = ev.data
    sid = d.session_id
    _ensure_head(db, sid, ev.position)
    db.execute(
        "UPDATE graph_heads SET revision = ?, checkpoint_ref = ?, leaf_node_id = ?, "
        "current_agent_frame_id = ?, commit_position = ? WHERE session_id = ?",
        (d.revision, d.checkpoint_ref, d.leaf_node_id, d.current_agent_frame_id, ev.position, sid))
    if d.config is not None:
        db.execute("UPDATE graph_heads SET provider_id = ?, model = ? WHERE session_id = ?",
                   (d.config.provider_id, d.config.model, sid))
    if d.frames is not None:
        db.execute("UPDATE graph_heads SET frames = ? WHERE session_id = ?", (_pack_frames(d.frames), sid))
    for i, u in enumerate(d.usage):
        db.execute("INSERT INTO graph_usage VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (sid, ev.position, i, u.source, u.model, u.input, u.output, u.cache_read_input,
                    u.cache_write_input, u.reasoning_output))
    if d.turn is not None:
        db.execute("INSERT INTO graph_turns VALUES (?,?,?,?,?,?,?)",
                   (sid, d.turn.turn_id, d.turn.turn_commit_hash, d.revision, d.checkpoint_ref,
                    msgpack.packb(list(d.enqueued_batch_ids)), ev.recorded_at_ms))
    for attachment_id in d.committed_attachment_ids:
        # COALESCE keeps the first commit's stamp; rows are never inserted here, so a
        # commit cannot revive a ref that GC or forget already removed.
        db.execute("UPDATE graph_attachments SET committed_at_ms = COALESCE(committed_at_ms, ?) "
                   "WHERE session_id = ? AND attachment_id = ?", (ev.recorded_at_ms, sid, attachment_id))
    if d.turn is not None:
        db.execute("UPDATE graph_attachments SET committed_at_ms = ? WHERE session_id = ? AND "
                   "committed_at_ms IS NULL AND owner_kind = 'turn' AND owner_id = ?",
                   (ev.recorded_at_ms, sid, d.turn.turn_id))


@graph.on(NodesTombstoned)
def _tombstoned(db: Any, ev: Any) -> None:
    d = ev.data
    for node_id in d.node_ids:
        db.execute("UPDATE graph_nodes SET tombstoned = 1 WHERE session_id = ? AND node_id = ? "
                   "AND tombstoned = 0", (d.session_id, node_id))
        if db.changes():
            db.execute("UPDATE graph_heads SET live_nodes = live_nodes - 1 WHERE session_id = ?",
                       (d.session_id,))


@graph.on(SessionVacuumed)
def _vacuumed(db: Any, ev: Any) -> None:
    db.execute("DELETE FROM graph_nodes WHERE session_id = ? AND tombstoned = 1", (ev.data.session_id,))


@graph.on(AttachmentIntentRecorded)
def _intent(db: Any, ev: Any) -> None:
    d = ev.data
    db.execute(
        "INSERT INTO graph_attachments VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (session_id, attachment_id) "
        "DO UPDATE SET blob_ref = excluded.blob_ref, owner_kind = excluded.owner_kind, "
        "owner_id = excluded.owner_id, intent_at_ms = excluded.intent_at_ms",
        (d.session_id, d.attachment_id, d.blob_ref, d.owner_kind, d.owner_id, ev.recorded_at_ms))


@graph.on(AttachmentIntentsForgotten)
def _forgotten(db: Any, ev: Any) -> None:
    for attachment_id in ev.data.attachment_ids:
        db.execute("DELETE FROM graph_attachments WHERE session_id = ? AND attachment_id = ?",
                   (ev.data.session_id, attachment_id))


@graph.on(ArtifactRefSet)
def _artifact(db: Any, ev: Any) -> None:
    d = ev.data
    if d.blob_ref is None:
        db.execute("DELETE FROM graph_artifact_refs WHERE namespace = ? AND artifact_ref = ?",
                   (d.namespace, d.artifact_ref))
    else:
        db.execute("INSERT INTO graph_artifact_refs VALUES (?, ?, ?) ON CONFLICT (namespace, artifact_ref) "
                   "DO UPDATE SET blob_ref = excluded.blob_ref", (d.namespace, d.artifact_ref, d.blob_ref))


@graph.on(SessionDeletedEvent, SessionPurged)
def _session_gone(db: Any, ev: Any) -> None:
    # A deleted session's head, graph, ledger, stamps and attachments go with it: a
    # recreated id starts empty (law 70), and its blobs stop being GC roots.
    sid = ev.data.session_id
    for table in ("graph_heads", "graph_nodes", "graph_usage", "graph_turns", "graph_attachments"):
        db.execute(f"DELETE FROM {table} WHERE session_id = ?", (sid,))


# --- reads -----------------------------------------------------------------------


@attrs.frozen
class HeadRow:
    """A session head as the projection stores it."""

    session_id: str
    revision: int
    config: ModelConfig | None
    frames: tuple[AgentFrame, ...]
    current_agent_frame_id: str | None
    checkpoint_ref: str | None
    leaf_node_id: str | None
    live_nodes: int
    commit_position: int


def head(db: Any, session_id: str) -> HeadRow | None:
    """The head of a session, or None when it has never committed."""
    row = db.one("SELECT * FROM graph_heads WHERE session_id = ?", (session_id,))
    if row is None or row[1] == 0 and row[9] == 0:
        return None
    frames: tuple[AgentFrame, ...] = ()
    if row[4] is not None:
        frames = tuple(_frames_codec.from_plain(f) for f in msgpack.unpackb(row[4], raw=False))
    config = ModelConfig(row[2], row[3]) if row[2] is not None else None
    return HeadRow(row[0], row[1], config, frames, row[5], row[6], row[7], row[8], row[9])


def revision(db: Any, session_id: str) -> int:
    """The current head revision (0 when the session has never committed)."""
    return db.scalar("SELECT revision FROM graph_heads WHERE session_id = ?", (session_id,), 0)


def node_exists(db: Any, session_id: str, node_id: str, include_tombstoned: bool = True) -> bool:
    """True when the node id is taken in this session."""
    sql = "SELECT tombstoned FROM graph_nodes WHERE session_id = ? AND node_id = ?"
    row = db.one(sql, (session_id, node_id))
    return row is not None and (include_tombstoned or row[0] == 0)


def node_positions(db: Any, session_id: str) -> list[tuple[str, int]]:
    """(node id, event position) of every live node, in graph order."""
    return db.query("SELECT node_id, position FROM graph_nodes WHERE session_id = ? AND tombstoned = 0 "
                    "ORDER BY position", (session_id,))


def path_positions(db: Any, session_id: str, leaf: str) -> list[int]:
    """Event positions of the nodes from the root down to `leaf` (empty if the leaf is unknown)."""
    rows = db.query(
        """WITH RECURSIVE path(node_id, parent, position, depth) AS (
               SELECT node_id, parent_node_id, position, 0 FROM graph_nodes
                WHERE session_id = ?1 AND node_id = ?2 AND tombstoned = 0
               UNION ALL
               SELECT n.node_id, n.parent_node_id, n.position, p.depth + 1
                 FROM graph_nodes n JOIN path p ON n.node_id = p.parent
                WHERE n.session_id = ?1 AND n.tombstoned = 0
           ) SELECT position FROM path ORDER BY depth DESC""",
        (session_id, leaf))
    return [r[0] for r in rows]


def usage_ledger(db: Any, session_id: str) -> list[UsageDelta]:
    """Usage merged per (source, model) in order of first appearance; zero totals dropped."""
    merged: dict[tuple[str, str], list[int]] = {}
    for row in db.iterate(
        "SELECT source, model, input, output, cache_read_input, cache_write_input, reasoning_output "
        "FROM graph_usage WHERE session_id = ? ORDER BY position, idx", (session_id,)
    ):
        acc = merged.setdefault((row[0], row[1]), [0, 0, 0, 0, 0])
        for i in range(5):
            acc[i] += row[2 + i]
    out = [UsageDelta(source, model, *acc) for (source, model), acc in merged.items()]
    return [u for u in out if u.total() != 0]


def turn_commit(db: Any, session_id: str, turn_id: str) -> tuple[str, int, str | None, tuple[str, ...]] | None:
    """(hash, revision, checkpoint ref, outbox batch ids) of a stamped turn, or None."""
    row = db.one("SELECT turn_commit_hash, revision, checkpoint_ref, batch_ids FROM graph_turns "
                 "WHERE session_id = ? AND turn_id = ?", (session_id, turn_id))
    if row is None:
        return None
    return row[0], row[1], row[2], tuple(msgpack.unpackb(row[3], raw=False))


def gc_roots(db: Any) -> tuple[set[str], set[str]]:
    """(checkpoint manifest refs, other blob refs) that GC must keep."""
    manifests = {r[0] for r in db.query("SELECT checkpoint_ref FROM graph_heads WHERE checkpoint_ref IS NOT NULL")}
    others = {r[0] for r in db.query("SELECT blob_ref FROM graph_artifact_refs")}
    others |= {r[0] for r in db.query("SELECT blob_ref FROM graph_attachments")}
    for (frames,) in db.query("SELECT frames FROM graph_heads WHERE frames IS NOT NULL"):
        for f in msgpack.unpackb(frames, raw=False):
            if f.get("execution_state_ref"):
                others.add(f["execution_state_ref"])
    return manifests, others


__all__ = ["graph", "HeadRow", "head", "revision", "SessionNode"]
