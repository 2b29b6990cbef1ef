"""The session graph projection: heads, the node index, the usage ledger, turn stamps,
attachments and artifact pointers.

Node payloads are not copied here. `graph_nodes` is an index: for each node its id,
its parent, and where its payload sits in the log (the position of the
`session.committed` event and the node's index in it); reads fetch payloads from the
event rows. The log is the only copy of a conversation.

Why the keys look like this: a session is keyed in the per-node and per-usage rows by
`skey`, the log position of the event that created its head row (an integer of a few
bytes instead of a repeated text id), and a node's parent by the parent's `seq` (its
place in graph order) instead of the parent's id. The key is a position, so a rebuild,
a full time-travel replay and a replay of only the session's stream all derive the
same keys. A node's id is stored as `eventstore.ids.id_key` (16 bytes for a uuid) in the
table and in its index. The usage ledger is kept merged per (source, model): the deltas themselves
stay in the log, append-only.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence, cast

import attrs
import msgpack

from eventstore import codec
from eventstore.ids import id_from_key, id_key, unpackb as unpackb_ids
from eventstore.commits.events import (
    ArtifactRefSet,
    AttachmentIntentRecorded,
    AttachmentIntentsForgotten,
    AttachmentsCommitted,
    NodesTombstoned,
    SessionCommitted,
    SessionVacuumed,
    session_of,
)
from eventstore.commits.model import AgentFrame, ModelConfig, UsageDelta
from eventstore.sessions.events import SessionDeletedEvent, SessionPurged
from eventstore.storage import Storage

from projections.base import REGISTRY, Projection

graph = REGISTRY.register(
    Projection(
        name="graph",
        version=4,
        tables=("graph_heads", "graph_nodes", "graph_usage", "graph_turns", "graph_attachments",
                "graph_artifact_refs"),
        ddl=(
            """CREATE TABLE IF NOT EXISTS graph_heads (
                session_id TEXT PRIMARY KEY,
                skey INTEGER NOT NULL,
                revision INTEGER NOT NULL,
                provider_id TEXT, model TEXT,
                frames BLOB,
                current_agent_frame_id TEXT,
                checkpoint_ref TEXT,
                leaf_node_id TEXT,
                live_nodes INTEGER NOT NULL,
                next_seq INTEGER NOT NULL,
                commit_position INTEGER NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_nodes (
                skey INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                node_id BLOB NOT NULL,
                parent_seq INTEGER,
                position INTEGER NOT NULL,
                idx INTEGER NOT NULL,
                tombstoned INTEGER NOT NULL,
                PRIMARY KEY (skey, seq)
            ) WITHOUT ROWID""",
            "CREATE UNIQUE INDEX IF NOT EXISTS graph_nodes_by_id ON graph_nodes (skey, node_id)",
            """CREATE TABLE IF NOT EXISTS graph_usage (
                skey INTEGER NOT NULL, source TEXT NOT NULL, model TEXT NOT NULL,
                first_position INTEGER NOT NULL, first_idx INTEGER NOT NULL,
                input INTEGER NOT NULL, output INTEGER NOT NULL, cache_read_input INTEGER NOT NULL,
                cache_write_input INTEGER NOT NULL, reasoning_output INTEGER NOT NULL,
                PRIMARY KEY (skey, source, model)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_turns (
                skey INTEGER NOT NULL, turn_id TEXT NOT NULL, turn_commit_hash TEXT NOT NULL,
                revision INTEGER NOT NULL, checkpoint_ref TEXT, batch_ids BLOB NOT NULL,
                committed_at_ms INTEGER NOT NULL,
                PRIMARY KEY (skey, turn_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS graph_attachments (
                session_id TEXT NOT NULL, attachment_id TEXT NOT NULL, blob_ref TEXT,
                owner_kind TEXT, owner_id TEXT, intent_at_ms INTEGER NOT NULL, committed_at_ms INTEGER,
                uri TEXT NOT NULL, media_type TEXT, label TEXT, size INTEGER,
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
    return cast("bytes", msgpack.packb([_frames_codec.to_plain(f) for f in frames], use_bin_type=True))


def _unpack_frames(blob: bytes | None) -> tuple[AgentFrame, ...]:
    if blob is None:
        return ()
    return tuple(_frames_codec.from_plain(f) for f in unpackb_ids(blob, raw=False))


# --- appliers ----------------------------------------------------------------------------


# Memo keys (Storage.memo: one write transaction's copies of rows a command read). A
# command that reads a head (`head`) or looks nodes up (`node_seqs`) leaves their values
# for `_committed`, which then does not read them again. Every applier that writes a
# head or node row drops the entries of its session (`_forget`), so an entry is always
# the row as it stands.
_HEAD = "graph.head"   # (_HEAD, session_id) -> (skey, next_seq, live_nodes, checkpoint_ref)
_SEQS = "graph.seqs"   # (_SEQS, skey) -> {node_id: seq}


def _forget(db: Any, session_id: str, skey: int | None) -> None:
    memo = db.memo()
    if memo:
        memo.pop((_HEAD, session_id), None)
        memo.pop((_SEQS, skey), None)


@graph.on(SessionCommitted)
def _committed(db: Any, ev: Any) -> None:
    sid = session_of(ev.stream)
    if sid is None:
        return  # appended by hand to another stream: not a session's commit
    d: SessionCommitted = ev.data
    memo = db.memo()
    row = memo.pop((_HEAD, sid), None) if memo else None
    if row is None:
        row = db.one("SELECT skey, next_seq, live_nodes, checkpoint_ref FROM graph_heads "
                     "WHERE session_id = ?", (sid,))
    if row is None:
        skey, next_seq, live, checkpoint_ref = ev.position, 1, 0, None
        db.execute("INSERT INTO graph_heads VALUES (?, ?, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, ?)",
                   (sid, skey, ev.position))
    else:
        skey, next_seq, live, checkpoint_ref = row
    known = memo.pop((_SEQS, skey), None) if memo else None
    details = d.details
    if details is not None and details.graph_replaced:
        db.execute("DELETE FROM graph_nodes WHERE skey = ?", (skey,))
        live = 0
        known = None
    if d.nodes:
        rows = []
        added: dict[str, int] = {}
        for idx, node in enumerate(d.nodes):
            parent_seq = None
            parent = node.parent
            if parent is not None:
                # An earlier node of this commit, a node the command looked up, or the index.
                parent_seq = added.get(parent)
                if parent_seq is None and known is not None:
                    parent_seq = known.get(parent)
                if parent_seq is None:
                    parent_seq = db.scalar("SELECT seq FROM graph_nodes WHERE skey = ? AND node_id = ?",
                                           (skey, id_key(parent)))
            rows.append((skey, next_seq, id_key(node.id), parent_seq, ev.position, idx))
            added[node.id] = next_seq
            next_seq += 1
            live += 1
        if len(rows) == 1:
            db.execute("INSERT INTO graph_nodes VALUES (?, ?, ?, ?, ?, ?, 0)", rows[0])
        else:
            db.executemany("INSERT INTO graph_nodes VALUES (?, ?, ?, ?, ?, ?, 0)", rows)
    h = details.head if details is not None else None
    if h is None:
        db.execute("UPDATE graph_heads SET revision = ?, leaf_node_id = ?, live_nodes = ?, next_seq = ?, "
                   "commit_position = ?, checkpoint_ref = coalesce(?, checkpoint_ref) WHERE session_id = ?",
                   (d.revision, d.leaf_node_id, live, next_seq, ev.position, d.checkpoint_ref, sid))
    else:
        # The head's config and frames changed too: the same row, one statement.
        db.execute("UPDATE graph_heads SET revision = ?, leaf_node_id = ?, live_nodes = ?, next_seq = ?, "
                   "commit_position = ?, checkpoint_ref = coalesce(?, checkpoint_ref), provider_id = ?, "
                   "model = ?, frames = ?, current_agent_frame_id = ? WHERE session_id = ?",
                   (d.revision, d.leaf_node_id, live, next_seq, ev.position, d.checkpoint_ref,
                    h.config.provider_id if h.config else None, h.config.model if h.config else None,
                    _pack_frames(h.frames) if h.frames else None, h.current_agent_frame_id, sid))
    if d.checkpoint is not None:
        checkpoint_ref = d.checkpoint_ref
    for idx, u in enumerate(d.usage):
        db.execute(
            "INSERT INTO graph_usage VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (skey, source, model) DO UPDATE SET "
            "input = graph_usage.input + excluded.input, output = graph_usage.output + excluded.output, "
            "cache_read_input = graph_usage.cache_read_input + excluded.cache_read_input, "
            "cache_write_input = graph_usage.cache_write_input + excluded.cache_write_input, "
            "reasoning_output = graph_usage.reasoning_output + excluded.reasoning_output",
            (skey, u[0], u[1], ev.position, idx, *u[2:]))
    if details is None:
        return
    if details.turn is not None:
        db.execute("INSERT INTO graph_turns VALUES (?,?,?,?,?,?,?)",
                   (skey, details.turn.turn_id, details.turn.turn_commit_hash, d.revision, checkpoint_ref,
                    msgpack.packb(list(details.enqueued_batch_ids)), ev.recorded_at_ms))
    for attachment_id in details.committed_attachment_ids:
        # COALESCE keeps the first commit's stamp; rows are never inserted here, so a
        # commit cannot revive a ref that GC or forget already removed (law 66).
        db.execute("UPDATE graph_attachments SET committed_at_ms = COALESCE(committed_at_ms, ?) "
                   "WHERE session_id = ? AND attachment_id = ?", (ev.recorded_at_ms, sid, attachment_id))
    if details.turn is not None:
        db.execute("UPDATE graph_attachments SET committed_at_ms = ? WHERE session_id = ? AND "
                   "committed_at_ms IS NULL AND owner_kind = 'turn' AND owner_id = ?",
                   (ev.recorded_at_ms, sid, details.turn.turn_id))


def _skey(db: Any, session_id: str) -> int | None:
    return cast("int | None", db.scalar("SELECT skey FROM graph_heads WHERE session_id = ?", (session_id,)))


@graph.on(NodesTombstoned)
def _tombstoned(db: Any, ev: Any) -> None:
    d = ev.data
    skey = _skey(db, d.session_id)
    if skey is None:
        return
    _forget(db, d.session_id, skey)
    hidden = 0
    for node_id in d.node_ids:
        db.execute("UPDATE graph_nodes SET tombstoned = 1 WHERE skey = ? AND node_id = ? AND tombstoned = 0",
                   (skey, id_key(node_id)))
        hidden += db.changes()
    db.execute("UPDATE graph_heads SET live_nodes = live_nodes - ? WHERE session_id = ?", (hidden, d.session_id))


@graph.on(SessionVacuumed)
def _vacuumed(db: Any, ev: Any) -> None:
    skey = _skey(db, ev.data.session_id)
    if skey is not None:
        _forget(db, ev.data.session_id, skey)
        db.execute("DELETE FROM graph_nodes WHERE skey = ? AND tombstoned = 1", (skey,))


BLOB_URI_PREFIX = "attachment://sha256/"
"""The canonical URI of an attachment whose bytes are a blob of this store: prefix + blob ref."""


@graph.on(AttachmentIntentRecorded)
def _intent(db: Any, ev: Any) -> None:
    d = ev.data
    uri = d.uri if d.uri is not None else BLOB_URI_PREFIX + (d.blob_ref or "")
    # A repeated intent refreshes the time, owner and description and keeps the commit
    # stamp (committed_at_ms is not in the update list), law 66.
    db.execute(
        "INSERT INTO graph_attachments VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?) "
        "ON CONFLICT (session_id, attachment_id) "
        "DO UPDATE SET blob_ref = excluded.blob_ref, owner_kind = excluded.owner_kind, "
        "owner_id = excluded.owner_id, intent_at_ms = excluded.intent_at_ms, uri = excluded.uri, "
        "media_type = excluded.media_type, label = excluded.label, size = excluded.size",
        (d.session_id, d.attachment_id, d.blob_ref, d.owner_kind, d.owner_id, ev.recorded_at_ms,
         uri, d.media_type, d.label, d.size))


@graph.on(AttachmentsCommitted)
def _attachments_committed(db: Any, ev: Any) -> None:
    # Update in place only, first stamp wins: never inserts, so it cannot revive a row
    # that forget or the aged-intent sweep removed.
    db.executemany("UPDATE graph_attachments SET committed_at_ms = COALESCE(committed_at_ms, ?) "
                   "WHERE session_id = ? AND attachment_id = ?",
                   [(ev.recorded_at_ms, ev.data.session_id, a) for a in ev.data.attachment_ids])


@graph.on(AttachmentIntentsForgotten)
def _forgotten(db: Any, ev: Any) -> None:
    db.executemany("DELETE FROM graph_attachments WHERE session_id = ? AND attachment_id = ?",
                   [(ev.data.session_id, a) for a in ev.data.attachment_ids])


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
    skey = _skey(db, sid)
    _forget(db, sid, skey)
    if skey is not None:
        for table in ("graph_nodes", "graph_usage", "graph_turns"):
            db.execute(f"DELETE FROM {table} WHERE skey = ?", (skey,))
    db.execute("DELETE FROM graph_heads WHERE session_id = ?", (sid,))
    db.execute("DELETE FROM graph_attachments WHERE session_id = ?", (sid,))


# --- reads -------------------------------------------------------------------------------


@attrs.frozen
class HeadRow:
    """A session head as the projection stores it."""

    session_id: str
    skey: int
    revision: int
    config: ModelConfig | None
    frames: tuple[AgentFrame, ...]
    current_agent_frame_id: str | None
    checkpoint_ref: str | None
    leaf_node_id: str | None
    live_nodes: int
    commit_position: int
    """The log position of the newest commit."""


@attrs.frozen
class NodeRow:
    """One node of the index: where its payload is in the log, and its place in the tree."""

    node_id: str
    seq: int
    parent_seq: int | None
    position: int
    idx: int
    tombstoned: bool


def head(db: Any, session_id: str) -> HeadRow | None:
    """The head of a session, or None when it has never committed."""
    row = db.one("SELECT session_id, skey, revision, provider_id, model, frames, current_agent_frame_id, "
                 "checkpoint_ref, leaf_node_id, live_nodes, commit_position, next_seq FROM graph_heads "
                 "WHERE session_id = ?", (session_id,))
    if row is None:
        return None
    memo = db.memo()
    if memo is not None:  # inside a write transaction: a commit's applier may need these
        memo[(_HEAD, session_id)] = (row[1], row[11], row[9], row[7])
    config = ModelConfig(row[3], row[4]) if row[3] is not None else None
    return HeadRow(row[0], row[1], row[2], config, _unpack_frames(row[5]), row[6], row[7], row[8], row[9], row[10])


_COMMIT_STATE = (
    "SELECT s.status, s.generation, s.deleted_at_ms, l.owner_id, l.incarnation_id, l.lease_token, "
    "l.fencing_token, l.expires_at_ms, h.skey, h.revision, h.provider_id, h.model, h.frames, "
    "h.current_agent_frame_id, h.checkpoint_ref, h.leaf_node_id, h.live_nodes, h.next_seq "
    "FROM sessions_index s LEFT JOIN lease_sessions l ON l.session_id = s.session_id "
    "LEFT JOIN graph_heads h ON h.session_id = s.session_id WHERE s.session_id = CAST(? AS TEXT)")
# Why the CAST: SQLite propagates a bound value compared with a join column into the
# other join terms, and a statement whose plan used a bound value is prepared again at
# every execution (several times the cost of running it). A CAST is an expression it
# does not propagate; the three key lookups stay (a test pins the plan).

# Columns of a `commit_state` row.
CS_STATUS, CS_GENERATION, CS_DELETED_AT = 0, 1, 2
CS_OWNER, CS_INCARNATION, CS_LEASE_TOKEN, CS_FENCING_TOKEN, CS_EXPIRES = 3, 4, 5, 6, 7
CS_SKEY, CS_REVISION, CS_PROVIDER, CS_MODEL, CS_FRAMES, CS_CURRENT_FRAME = 8, 9, 10, 11, 12, 13
CS_CHECKPOINT_REF, CS_LEAF, CS_LIVE_NODES, CS_NEXT_SEQ = 14, 15, 16, 17


def commit_state(db: Any, session_id: str) -> tuple[Any, ...] | None:
    """What a runtime commit decides from, in one statement: the session's catalogue
    status, its lease row and its head, as one row (see the CS_* column numbers), or
    None when the session id was never created. The lease and head columns are None
    when the session has no lease row or has never committed.

    The `sessions` and `leases` projections own the first two tables (their own reads
    say what the columns mean); this join reads them where a commit needs all three.
    Inside a write transaction the head's values are remembered for the commit's
    applier, as `head` does.
    """
    row: tuple[Any, ...] | None = db.one(_COMMIT_STATE, (session_id,))
    if row is not None and row[CS_SKEY] is not None:
        memo = db.memo()
        if memo is not None:
            memo[(_HEAD, session_id)] = (row[CS_SKEY], row[CS_NEXT_SEQ], row[CS_LIVE_NODES], row[CS_CHECKPOINT_REF])
    return row


def head_config(row: tuple[Any, ...]) -> ModelConfig | None:
    """The config of a `commit_state` row's head (None: no head, or no config)."""
    return ModelConfig(row[CS_PROVIDER], row[CS_MODEL]) if row[CS_PROVIDER] is not None else None


def head_frames(row: tuple[Any, ...]) -> tuple[AgentFrame, ...]:
    """The agent frames of a `commit_state` row's head."""
    return _unpack_frames(row[CS_FRAMES])


def revision(db: Any, session_id: str) -> int:
    """The current head revision (0 when the session has never committed)."""
    return cast("int", db.scalar("SELECT revision FROM graph_heads WHERE session_id = ?", (session_id,), 0))


def node(db: Any, session_id: str, node_id: str) -> NodeRow | None:
    """The index row of a node (tombstoned ones too, until vacuum), or None."""
    row = db.one("SELECT n.node_id, n.seq, n.parent_seq, n.position, n.idx, n.tombstoned FROM graph_heads h "
                 "JOIN graph_nodes n ON n.skey = h.skey WHERE h.session_id = ? AND n.node_id = ?",
                 (session_id, id_key(node_id)))
    return None if row is None else NodeRow(node_id, row[1], row[2], row[3], row[4], bool(row[5]))


# The lookup of n ids, by n (up to 500). INDEXED BY: with two ids or more and no
# statistics the planner would scan the session's whole node range by the primary key
# (skey) instead of probing each id.
_NODE_SEQS: dict[int, str] = {}


def node_seqs(db: Any, skey: int, node_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
    """{node id: (seq, tombstoned)} of those of `node_ids` the session (by its head's
    `skey`) has; one statement per 500 ids. Inside a write transaction the seqs are
    remembered for the commit that follows (see `_committed`)."""
    out: dict[str, tuple[int, bool]] = {}
    wanted = node_ids if node_ids.__class__ is list else list(node_ids)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500] if len(wanted) > 500 else wanted
        sql = _NODE_SEQS.get(len(chunk))
        if sql is None:
            sql = _NODE_SEQS[len(chunk)] = (
                "SELECT node_id, seq, tombstoned FROM graph_nodes INDEXED BY graph_nodes_by_id "
                f"WHERE skey = ? AND node_id IN ({','.join('?' * len(chunk))})")
        for node_id, seq, tombstoned in db.query(sql, (skey, *[id_key(i) for i in chunk])):
            out[id_from_key(node_id)] = (seq, bool(tombstoned))
    memo = db.memo()
    if memo is not None and out:
        seqs = memo.get((_SEQS, skey))
        if seqs is None:
            seqs = memo[(_SEQS, skey)] = {}
        for node_id, (seq, _t) in out.items():
            seqs[node_id] = seq
    return out


def node_exists(db: Any, session_id: str, node_id: str, include_tombstoned: bool = True) -> bool:
    """True when the node id is taken in this session (live only, unless include_tombstoned)."""
    found = node(db, session_id, node_id)
    return found is not None and (include_tombstoned or not found.tombstoned)


def nodes(db: Any, session_id: str, include_tombstoned: bool = False) -> list[NodeRow]:
    """The index rows of the session's nodes in graph order (live ones only by default)."""
    skey = _skey(db, session_id)
    if skey is None:
        return []
    sql = "SELECT node_id, seq, parent_seq, position, idx, tombstoned FROM graph_nodes WHERE skey = ?"
    if not include_tombstoned:
        sql += " AND tombstoned = 0"
    return [NodeRow(id_from_key(r[0]), r[1], r[2], r[3], r[4], bool(r[5]))
            for r in db.query(sql + " ORDER BY seq", (skey,))]


def node_refs(db: Any, session_id: str) -> list[tuple[int, int]]:
    """(event position, index in the event) of every live node, in graph order."""
    skey = _skey(db, session_id)
    if skey is None:
        return []
    return cast("list[tuple[int, int]]", db.query("SELECT position, idx FROM graph_nodes WHERE skey = ? AND tombstoned = 0 ORDER BY seq", (skey,)))


def path_refs(db: Storage, session_id: str, leaf: str) -> list[tuple[int, int]]:
    """(event position, index) of the live nodes from the root down to `leaf`; empty when the
    leaf is unknown or tombstoned. A tombstoned ancestor ends the path (it is hidden)."""
    return db.query(
        """WITH RECURSIVE path(skey, seq, parent_seq, position, idx, depth) AS (
               SELECT n.skey, n.seq, n.parent_seq, n.position, n.idx, 0
                 FROM graph_heads h JOIN graph_nodes n ON n.skey = h.skey
                WHERE h.session_id = ?1 AND n.node_id = ?2 AND n.tombstoned = 0
               UNION ALL
               SELECT n.skey, n.seq, n.parent_seq, n.position, n.idx, p.depth + 1
                 FROM path p JOIN graph_nodes n ON n.skey = p.skey AND n.seq = p.parent_seq
                WHERE n.tombstoned = 0
           ) SELECT position, idx FROM path ORDER BY depth DESC""",
        (session_id, id_key(leaf)))


def tombstoned_count(db: Any, session_id: str) -> int:
    """How many tombstoned nodes vacuum would remove."""
    skey = _skey(db, session_id)
    if skey is None:
        return 0
    return cast("int", db.scalar("SELECT count(*) FROM graph_nodes WHERE skey = ? AND tombstoned = 1", (skey,), 0))


def usage_ledger(db: Any, session_id: str) -> list[UsageDelta]:
    """Usage merged per (source, model) in order of first appearance; zero totals dropped."""
    skey = _skey(db, session_id)
    if skey is None:
        return []
    rows = db.query("SELECT source, model, input, output, cache_read_input, cache_write_input, reasoning_output "
                    "FROM graph_usage WHERE skey = ? ORDER BY first_position, first_idx", (skey,))
    return [UsageDelta(*r) for r in rows if sum(r[2:]) != 0]


def turn_commit(db: Any, session_id: str, turn_id: str) -> tuple[str, int, str | None, tuple[str, ...]] | None:
    """(hash, revision, checkpoint ref, outbox batch ids) of a stamped turn, or None."""
    row = db.one("SELECT t.turn_commit_hash, t.revision, t.checkpoint_ref, t.batch_ids FROM graph_heads h "
                 "JOIN graph_turns t ON t.skey = h.skey WHERE h.session_id = ? AND t.turn_id = ?",
                 (session_id, turn_id))
    if row is None:
        return None
    return row[0], row[1], row[2], tuple(msgpack.unpackb(row[3], raw=False))


def turn_committed_after(db: Any, session_id: str, turn_id: str, since_ms: int) -> bool:
    """True when a turn other than `turn_id` was committed (stamped) at or after `since_ms`."""
    return db.one("SELECT 1 FROM graph_heads h JOIN graph_turns t ON t.skey = h.skey WHERE h.session_id = ? "
                  "AND t.turn_id != ? AND t.committed_at_ms >= ? LIMIT 1", (session_id, turn_id, since_ms)) is not None


def gc_roots(db: Any) -> tuple[set[str], set[str]]:
    """(checkpoint manifest refs, other blob refs) that GC must keep: every head's
    checkpoint, every frame's execution-state snapshot, artifact pointers, attachments."""
    manifests = {r[0] for r in db.query("SELECT checkpoint_ref FROM graph_heads WHERE checkpoint_ref IS NOT NULL")}
    others = {r[0] for r in db.query("SELECT blob_ref FROM graph_artifact_refs")}
    others |= {r[0] for r in db.query("SELECT blob_ref FROM graph_attachments WHERE blob_ref IS NOT NULL")}
    from .langgraph_threads import blob_roots  # the LangGraph saver's large values

    others |= blob_roots(db)
    for (frames,) in db.query("SELECT frames FROM graph_heads WHERE frames IS NOT NULL"):
        for f in unpackb_ids(frames, raw=False):
            if f.get("execution_state_ref"):
                others.add(f["execution_state_ref"])
    return manifests, others


def artifact_ref(db: Storage, namespace: str, name: str) -> str | None:
    """The blob a named pointer points at, or None."""
    ref: str | None = db.scalar("SELECT blob_ref FROM graph_artifact_refs WHERE namespace = ? AND artifact_ref = ?",
                     (namespace, name))
    return ref


def artifact_refs(db: Storage, namespace: str | None = None) -> list[tuple[str, str, str]]:
    """(namespace, name, blob ref) of every pointer (of one namespace), ordered."""
    if namespace is None:
        return cast("list[tuple[str, str, str]]", db.query("SELECT namespace, artifact_ref, blob_ref FROM graph_artifact_refs ORDER BY 1, 2"))
    return db.query("SELECT namespace, artifact_ref, blob_ref FROM graph_artifact_refs WHERE namespace = ? "
                    "ORDER BY 2", (namespace,))


ATTACHMENT_COLUMNS = ("session_id, attachment_id, blob_ref, owner_kind, owner_id, intent_at_ms, committed_at_ms, "
                      "uri, media_type, label, size")


def attachment_rows(db: Any, session_id: str | None = None, attachment_id: str | None = None) -> list[tuple[Any, ...]]:
    """Manifest rows (session, attachment, blob ref, owner kind, owner id, intent time, commit time,
    uri, media type, label, size)."""
    sql = f"SELECT {ATTACHMENT_COLUMNS} FROM graph_attachments"
    params: tuple[Any, ...] = ()
    if session_id is not None and attachment_id is not None:
        sql, params = sql + " WHERE session_id = ? AND attachment_id = ?", (session_id, attachment_id)
    elif session_id is not None:
        sql, params = sql + " WHERE session_id = ?", (session_id,)
    return cast("list[tuple[Any, ...]]", db.query(sql + " ORDER BY session_id, attachment_id", params))


def holds_blob(db: Any, session_id: str, blob_ref: str) -> bool:
    """True when the session's manifest has a row whose bytes are the blob `blob_ref`."""
    return db.one("SELECT 1 FROM graph_attachments WHERE session_id = ? AND blob_ref = ? LIMIT 1",
                  (session_id, blob_ref)) is not None


def holds_ref(db: Any, session_id: str, attachment_id: str) -> bool:
    """True when the session's manifest has a row (intent or commit) for the attachment id."""
    return db.one("SELECT 1 FROM graph_attachments WHERE session_id = ? AND attachment_id = ?",
                  (session_id, attachment_id)) is not None


def attachment_blob_refs(db: Any) -> set[str]:
    """Every blob some manifest row (of any session) points at."""
    return {r[0] for r in db.query("SELECT DISTINCT blob_ref FROM graph_attachments WHERE blob_ref IS NOT NULL")}


__all__ = [
    "HeadRow",
    "NodeRow",
    "artifact_ref",
    "artifact_refs",
    "attachment_rows",
    "gc_roots",
    "graph",
    "head",
    "holds_blob",
    "holds_ref",
    "node",
    "node_exists",
    "node_seqs",
    "node_refs",
    "nodes",
    "path_refs",
    "revision",
    "tombstoned_count",
    "turn_commit",
    "turn_committed_after",
    "usage_ledger",
]
