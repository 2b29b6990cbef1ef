"""The runtime commit: one turn's results land as one atomic append (DOMAIN.md §1).

`store.sessions.commit(RuntimeCommit(...))` runs the reference's commit algorithm under
one `BEGIN IMMEDIATE` transaction. Every check passes before anything is written, or a
typed error says which failed and nothing changes:

1. the session exists and is not deleted;
2. a turn stamp for another session is a RuntimeTurnCommitConflict; an already
   committed turn id with the same hash returns the stored result (no lease check; a
   requested release is still applied); with another hash, RuntimeTurnCommitConflict;
3. the fence must be the live session lease (SessionExecutionLeaseExpired);
4. head CAS: `expected_head_revision` (None skips) must equal the stored revision;
5. every queue and turn-input completion must still own its claims (superseded errors);
6. the graph delta must keep the tree sound (InvalidGraphDelta), outbox batches must
   target this session (SessionBindingMismatch);

then checkpoint blobs are written, and the commit's events, the claim settlements, the
interrupt, the outbox and an optional lease release are appended together.
"""

from __future__ import annotations

from typing import Any, Sequence

import attrs

from ..errors import InvalidArgument
from . import checkpoints
from .commit_rules import (
    HeadRevisionConflict,
    RuntimeTurnCommitConflict,
    SessionBindingMismatch,
    check_graph_delta,
    commit_events,
)
from .graph_model import (
    AgentFrame,
    Checkpoint,
    GraphAppend,
    GraphReplace,
    GraphUnchanged,
    ModelConfig,
    RuntimeCommitResult,
    SessionNode,
    TurnStamp,
    UsageDelta,
)
from .lease_events import LeaseFence
from .queue_claims import QueuedWorkCompletion
from .queue_enqueue import QueuedWorkDraft
from .inputs import TurnInputCompletion


@attrs.frozen
class RuntimeCommit:
    """Everything one turn commits (DOMAIN.md §1's RuntimeCommit)."""

    session_id: str
    lease: LeaseFence | None
    """The session lease fence; required unless the turn stamp was already committed."""
    graph: GraphUnchanged | GraphAppend | GraphReplace = GraphUnchanged()
    expected_head_revision: int | None = None
    release_lease: bool = False
    config: ModelConfig | None = None
    agent_frames: tuple[AgentFrame, ...] = ()
    current_agent_frame_id: str | None = None
    checkpoint: Checkpoint | None = None
    """None carries the previous checkpoint forward."""
    usage_deltas: tuple[UsageDelta, ...] = ()
    turn_commit: TurnStamp | None = None
    completed_queue_claims: tuple[QueuedWorkCompletion, ...] = ()
    completed_turn_input_claims: tuple[TurnInputCompletion, ...] = ()
    enqueued_queue_batches: tuple[QueuedWorkDraft, ...] = ()
    interrupted_turn_input_turn_id: str | None = None
    committed_attachment_ids: tuple[str, ...] = ()


def _check_types(c: Any) -> RuntimeCommit:
    if not isinstance(c, RuntimeCommit):
        raise InvalidArgument(f"commit must be a RuntimeCommit, got {type(c).__name__}")
    if not isinstance(c.session_id, str) or not c.session_id:
        raise InvalidArgument(f"commit.session_id must be a non-empty string, got {c.session_id!r}")
    if c.expected_head_revision is not None and (
            isinstance(c.expected_head_revision, bool) or not isinstance(c.expected_head_revision, int)
            or c.expected_head_revision < 0):
        raise InvalidArgument(
            f"commit.expected_head_revision must be None or an integer >= 0, got {c.expected_head_revision!r}")
    if c.lease is not None and not isinstance(c.lease, LeaseFence):
        raise InvalidArgument("commit.lease must be a LeaseFence (from SessionExecutionLease.fence) or None")
    if c.config is not None and not isinstance(c.config, ModelConfig):
        raise InvalidArgument("commit.config must be a ModelConfig or None")
    if c.checkpoint is not None and not isinstance(c.checkpoint, Checkpoint):
        raise InvalidArgument("commit.checkpoint must be a Checkpoint or None")
    for name, cls in (("agent_frames", AgentFrame), ("usage_deltas", UsageDelta),
                      ("completed_queue_claims", QueuedWorkCompletion),
                      ("completed_turn_input_claims", TurnInputCompletion),
                      ("enqueued_queue_batches", QueuedWorkDraft)):
        for i, item in enumerate(getattr(c, name)):
            if not isinstance(item, cls):
                raise InvalidArgument(f"commit.{name}[{i}] must be a {cls.__name__}, got {type(item).__name__}")
    for i, frame in enumerate(c.agent_frames):
        if frame.session_id != c.session_id:
            raise SessionBindingMismatch(
                f"commit.agent_frames[{i}] ({frame.frame_id!r}) belongs to session {frame.session_id!r}, "
                f"not {c.session_id!r}")
    if c.turn_commit is not None and not isinstance(c.turn_commit, TurnStamp):
        raise InvalidArgument("commit.turn_commit must be a TurnStamp or None")
    return c


def _store_frames(blobs: Any, frames: Sequence[AgentFrame]) -> tuple[AgentFrame, ...]:
    """Move inline execution-state snapshots into blobs; the head keeps only refs."""
    out = []
    for f in frames:
        if f.execution_state_snapshot is not None:
            f = attrs.evolve(f, execution_state_ref=blobs.put(f.execution_state_snapshot),
                             execution_state_snapshot=None)
        out.append(f)
    return tuple(out)


def run_commit(ctx: Any, c: RuntimeCommit) -> RuntimeCommitResult:
    """The commit algorithm (see the module docstring). `ctx` is the Store."""
    from projections import graph as gproj

    from .inputs import check_input_completion, interrupt_events
    from .leases import require_live_fence
    from .queue_claims import check_queue_completion
    from .queue_enqueue import plan_enqueue
    from .sessions import require_live_session

    ctx.require_writable("sessions.commit")
    c = _check_types(c)
    sid = c.session_id
    db = ctx.db
    with ctx.transaction():
        now = ctx.now_ms()
        ctx.require_fresh("graph")
        require_live_session(db, sid, "commit")
        # 2. idempotent turn stamps
        if c.turn_commit is not None:
            stamp = c.turn_commit
            if stamp.session_id != sid:
                raise RuntimeTurnCommitConflict(
                    f"session {sid!r}: the turn stamp names session {stamp.session_id!r}")
            stored = gproj.turn_commit(db, sid, stamp.turn_id)
            if stored is not None:
                if stored[0] != stamp.turn_commit_hash:
                    raise RuntimeTurnCommitConflict(
                        f"session {sid!r}: turn {stamp.turn_id!r} was committed with hash {stored[0]}, "
                        f"not {stamp.turn_commit_hash}")
                if c.release_lease and c.lease is not None:
                    ctx.leases.release(c.lease)  # a stale fence is a silent no-op
                return RuntimeCommitResult(stored[1], stored[2], stored[3], replayed=True)
        # 3. the fence
        if c.lease is None:
            from .leases import SessionExecutionLeaseExpired

            raise SessionExecutionLeaseExpired(sid, "commit carries no session lease fence")
        if c.lease.session_id != sid:
            raise SessionBindingMismatch(f"commit for session {sid!r} carries a fence of {c.lease.session_id!r}")
        require_live_fence(db, c.lease, now, "commit")
        # 4. head CAS
        actual = gproj.revision(db, sid)
        if c.expected_head_revision is not None and c.expected_head_revision != actual:
            raise HeadRevisionConflict(sid, c.expected_head_revision, actual)
        # 5. claims still owned
        settle: list[Any] = []
        for i, qc in enumerate(c.completed_queue_claims):
            if qc.session_id != sid:
                raise SessionBindingMismatch(f"commit.completed_queue_claims[{i}] is for session {qc.session_id!r}")
            settle.append(check_queue_completion(db, qc, now))
        completing: list[str] = []
        for i, ic in enumerate(c.completed_turn_input_claims):
            if ic.session_id != sid:
                raise SessionBindingMismatch(
                    f"commit.completed_turn_input_claims[{i}] is for session {ic.session_id!r}")
            settle.append(check_input_completion(db, ic, now))
            completing.extend(ic.input_ids)
        # 6. graph and outbox
        check_graph_delta(sid, c.graph, lambda n: gproj.node_exists(db, sid, n),
                          lambda n: gproj.node_exists(db, sid, n, include_tombstoned=False))
        for i, draft in enumerate(c.enqueued_queue_batches):
            if draft.session_id != sid:
                raise SessionBindingMismatch(
                    f"commit.enqueued_queue_batches[{i}] targets session {draft.session_id!r}, not {sid!r}")
        head = gproj.head(db, sid)
        # Writes start here: blobs first (inside this transaction, so GC cannot see them
        # unrooted), then every event in one append.
        checkpoint_ref = head.checkpoint_ref if head is not None else None
        if c.checkpoint is not None:
            checkpoint_ref, _manifest = checkpoints.store_checkpoint(ctx.blobs, c.checkpoint)
        frames = _store_frames(ctx.blobs, c.agent_frames)
        plan = plan_enqueue(db, list(c.enqueued_queue_batches), now, ctx.queue.completed_source_key_retention_ms)
        batch_ids = tuple(r.batch.batch_id for r in plan.results)
        config = c.config if head is None or c.config != head.config else None
        new_frames = frames if head is None or frames != head.frames else None
        events = commit_events(
            sid, actual + 1, c.graph, head.leaf_node_id if head is not None else None, checkpoint_ref,
            config, new_frames, c.current_agent_frame_id, tuple(c.usage_deltas), c.turn_commit,
            batch_ids, tuple(c.committed_attachment_ids))
        events.extend(settle)
        if c.interrupted_turn_input_turn_id is not None:
            events.extend(interrupt_events(db, sid, c.interrupted_turn_input_turn_id, now, completing))
        events.extend(plan.events)
        ctx.append(f"session:{sid}", events, now_ms=now)
        if c.release_lease:
            ctx.leases.release(c.lease)
        return RuntimeCommitResult(actual + 1, checkpoint_ref, batch_ids)


@attrs.frozen
class LoadedSession:
    """A session as a load returns it: the head, the checkpoint, the ledger and the graph."""

    session_id: str
    head_revision: int
    config: ModelConfig | None
    agent_frames: tuple[AgentFrame, ...]
    current_agent_frame_id: str | None
    checkpoint_ref: str | None
    checkpoint: Checkpoint | None
    leaf_node_id: str | None
    graph_node_count: int
    token_ledger: tuple[UsageDelta, ...]
    nodes: tuple[SessionNode, ...]
    position: int
    """The log position this state is as of."""


def nodes_at(ctx: Any, positions: Sequence[int]) -> list[SessionNode]:
    """The nodes stored by the node_added events at these positions, in the same order."""
    found: dict[int, SessionNode] = {}
    log = ctx.log
    for start in range(0, len(positions), 500):
        chunk = positions[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = log.db.query(f"SELECT position, stream, version, type, schema, recorded_at_ms, flags, payload "
                            f"FROM events WHERE position IN ({marks})", chunk)
        for ev in log.decode_page(rows):
            if ev.data is not None:
                found[ev.position] = ev.data.node
    return [found[p] for p in positions if p in found]


def load_session(ctx: Any, session_id: str, graph: str = "full", leaf: str | None = None) -> LoadedSession | None:
    """Read a session's state from `ctx` (the store, or a time-travel view)."""
    from projections import graph as gproj

    if graph not in ("full", "active_path", "none"):
        raise InvalidArgument(f"graph must be 'full', 'active_path' or 'none', got {graph!r}")
    ctx.require_fresh("graph")
    with ctx.read_transaction():
        head = gproj.head(ctx.db, session_id)
        if head is None:
            return None
        if graph == "full":
            positions = [p for _n, p in gproj.node_positions(ctx.db, session_id)]
        elif graph == "active_path":
            target = leaf if leaf is not None else head.leaf_node_id
            positions = gproj.path_positions(ctx.db, session_id, target) if target is not None else []
        else:
            positions = []
        nodes = tuple(nodes_at(ctx, positions))
        ledger = tuple(gproj.usage_ledger(ctx.db, session_id))
        position = getattr(ctx, "position", None) or ctx.log.last_position()
    checkpoint = checkpoints.load_checkpoint(ctx.blobs, head.checkpoint_ref)
    return LoadedSession(session_id, head.revision, head.config, head.frames, head.current_agent_frame_id,
                         head.checkpoint_ref, checkpoint, head.leaf_node_id, head.live_nodes, ledger, nodes,
                         position)


def load_node(ctx: Any, session_id: str, node_id: str) -> SessionNode | None:
    """One live node by id (tombstoned nodes read as absent, law 60)."""
    from projections import graph as gproj

    row = ctx.db.one("SELECT position FROM graph_nodes WHERE session_id = ? AND node_id = ? AND tombstoned = 0",
                     (session_id, node_id))
    if row is None:
        return None
    found = nodes_at(ctx, [row[0]])
    _ = gproj  # the projection module owns the table read above
    return found[0] if found else None
