"""The runtime commit: one turn's results land as one atomic append (docs/semantics.md §1).

`store.sessions.commit(RuntimeCommit(...))` runs the reference's commit algorithm under
one `BEGIN IMMEDIATE` transaction. Every check passes before anything is written, or a
typed error says which failed and nothing changes:

1. the session exists and is not deleted (SessionNotFound / SessionDeleted); frames
   belong to it (SessionBindingMismatch);
2. a turn stamp for another session is a RuntimeTurnCommitConflict; an already
   committed turn id with the same hash returns the stored result (no lease check; a
   requested release is still applied, laws 9 and 15); with another hash,
   RuntimeTurnCommitConflict (law 11);
3. the fence must be the live session lease (SessionExecutionLeaseExpired, law 12);
4. head CAS: `expected_head_revision` (None skips) must equal the stored revision
   (HeadRevisionConflict, law 2);
5. every queue and turn-input completion must still own its claims
   (QueuedWorkClaimSuperseded / TurnInputClaimSuperseded, law 13);
6. the graph delta must keep the tree sound (InvalidGraphDelta), outbox batches must
   target this session (SessionBindingMismatch, law 14);

then the checkpoint blobs are written and one append carries the commit event, the
claim settlements, the interrupt and the outbox; an optional lease release follows in
the same transaction. Blobs are written inside the transaction, so GC (which takes the
same write lock) never sees them before the head that roots them, and a failed append
rolls them back too.

Not checked here: the reference core's `validate_claim_settlement` (content derived
from a claim must settle that claim). Which nodes derive from which claim is known to
the runtime, not to the store; the store's part is that every completion a commit
carries is checked and settled atomically with it (see docs/api.md, "Runtime commit").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import attrs

from ..checks import INT64_MAX
from ..errors import InvalidArgument
from . import checkpoints
from .rules import (
    HeadRevisionConflict,
    RuntimeTurnCommitConflict,
    SessionBindingMismatch,
    check_graph_delta,
    check_text_ids,
    check_usage,
    commit_event,
    head_fingerprint,
)
from .model import (
    AgentFrame,
    Checkpoint,
    GraphAppend,
    GraphReplace,
    GraphUnchanged,
    ModelConfig,
    RuntimeCommitResult,
    TurnStamp,
    UsageDelta,
)
from ..inputs.rules import TurnInputCompletion, check_input_completion, interrupt_events
from ..leases.events import LeaseFence
from ..leases.facade import SessionExecutionLeaseExpired, check_fence, check_live_holder
from ..leases.owners import LeaseOwner, OpaqueLiveness
from ..sessions.facade import MAX_SESSION_ID_BYTES, check_session_id, require_live_generation
from ..queue.claims import QueuedWorkCompletion, check_queue_completion
from ..queue.enqueue import EnqueuePlan, QueuedWorkDraft, plan_enqueue

if TYPE_CHECKING:
    from ..store import StoreContext


@attrs.frozen
class RuntimeCommit:
    """Everything one turn commits (docs/semantics.md §1's RuntimeCommit).

    `config` None carries the previous config forward; `agent_frames` and
    `current_agent_frame_id` are the full new values (as in the reference);
    `checkpoint` None carries the previous checkpoint forward.
    """

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
    usage_deltas: tuple[UsageDelta, ...] = ()
    turn_commit: TurnStamp | None = None
    completed_queue_claims: tuple[QueuedWorkCompletion, ...] = ()
    completed_turn_input_claims: tuple[TurnInputCompletion, ...] = ()
    enqueued_queue_batches: tuple[QueuedWorkDraft, ...] = ()
    interrupted_turn_input_turn_id: str | None = None
    committed_attachment_ids: tuple[str, ...] = ()


def _opt_text(value: Any, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgument(f"{what} must be None or a non-empty string, got {value!r}")


def _plain_commit(c: Any) -> bool:
    """True for a commit of the common shape that `check_commit` accepts: exact types, no
    frames, stamp, claims, outbox, interrupt or attachment ids, usage rows of plain
    strings and integers. Anything else takes the full checks, which name what is wrong."""
    sid = c.session_id
    rev = c.expected_head_revision
    config = c.config
    if not (sid.__class__ is str and 0 < len(sid) <= MAX_SESSION_ID_BYTES and sid.isascii() and sid.isprintable()
            and (rev is None or (rev.__class__ is int and rev >= 0))
            and (c.lease is None or c.lease.__class__ is LeaseFence)
            and c.release_lease.__class__ is bool
            and (config is None or (config.__class__ is ModelConfig and config.provider_id.__class__ is str
                                    and config.model.__class__ is str))
            and (c.checkpoint is None or c.checkpoint.__class__ is Checkpoint)
            and c.agent_frames == () and c.completed_queue_claims == () and c.completed_turn_input_claims == ()
            and c.enqueued_queue_batches == () and c.committed_attachment_ids == ()
            and c.current_agent_frame_id is None and c.interrupted_turn_input_turn_id is None
            and c.turn_commit is None and c.usage_deltas.__class__ is tuple):
        return False
    for u in c.usage_deltas:
        if not (u.__class__ is UsageDelta and u.source.__class__ is str and u.model.__class__ is str
                and u.input.__class__ is int and 0 <= u.input <= INT64_MAX
                and u.output.__class__ is int and 0 <= u.output <= INT64_MAX
                and u.cache_read_input.__class__ is int and 0 <= u.cache_read_input <= INT64_MAX
                and u.cache_write_input.__class__ is int and 0 <= u.cache_write_input <= INT64_MAX
                and u.reasoning_output.__class__ is int and 0 <= u.reasoning_output <= INT64_MAX):
            return False
    return True


def check_commit(c: Any) -> RuntimeCommit:
    """Validate a commit's shape (types, ids, bindings of frames); pure."""
    if c.__class__ is RuntimeCommit and _plain_commit(c):
        return c
    if not isinstance(c, RuntimeCommit):
        raise InvalidArgument(f"commit must be a RuntimeCommit, got {type(c).__name__}")
    sid = check_session_id(c.session_id, "commit.session_id")
    where = f"session {sid!r}: commit"
    rev = c.expected_head_revision
    if rev is not None and (isinstance(rev, bool) or not isinstance(rev, int) or rev < 0):
        raise InvalidArgument(f"{where}.expected_head_revision must be None or an integer >= 0, got {rev!r}")
    if c.lease is not None and not isinstance(c.lease, LeaseFence):
        raise InvalidArgument(f"{where}.lease must be a LeaseFence (SessionExecutionLease.fence) or None")
    if not isinstance(c.release_lease, bool):
        raise InvalidArgument(f"{where}.release_lease must be True or False, got {c.release_lease!r}")
    if c.config is not None and not isinstance(c.config, ModelConfig):
        raise InvalidArgument(f"{where}.config must be a ModelConfig or None")
    if c.checkpoint is not None and not isinstance(c.checkpoint, Checkpoint):
        raise InvalidArgument(f"{where}.checkpoint must be a Checkpoint or None")
    for name, cls in (("agent_frames", AgentFrame), ("completed_queue_claims", QueuedWorkCompletion),
                      ("completed_turn_input_claims", TurnInputCompletion),
                      ("enqueued_queue_batches", QueuedWorkDraft)):
        items = getattr(c, name)
        if isinstance(items, (str, bytes)) or not isinstance(items, (tuple, list)):
            raise InvalidArgument(f"{where}.{name} must be a tuple")
        for i, item in enumerate(items):
            if not isinstance(item, cls):
                raise InvalidArgument(f"{where}.{name}[{i}] must be a {cls.__name__}, got {type(item).__name__}")
    seen: set[str] = set()
    for i, frame in enumerate(c.agent_frames):
        if frame.session_id != sid:
            raise SessionBindingMismatch(
                f"{where}.agent_frames[{i}] ({frame.frame_id!r}) belongs to session {frame.session_id!r}")
        if not isinstance(frame.frame_id, str) or not frame.frame_id or frame.frame_id in seen:
            raise InvalidArgument(f"{where}.agent_frames[{i}]: frame_id {frame.frame_id!r} is empty or repeated")
        seen.add(frame.frame_id)
    _opt_text(c.current_agent_frame_id, f"{where}.current_agent_frame_id")
    _opt_text(c.interrupted_turn_input_turn_id, f"{where}.interrupted_turn_input_turn_id")
    if c.turn_commit is not None:
        t = c.turn_commit
        if not isinstance(t, TurnStamp):
            raise InvalidArgument(f"{where}.turn_commit must be a TurnStamp or None")
        for name in ("session_id", "turn_id", "turn_commit_hash"):
            if not isinstance(getattr(t, name), str) or not getattr(t, name):
                raise InvalidArgument(f"{where}.turn_commit.{name} must be a non-empty string")
    check_usage(sid, c.usage_deltas)
    check_text_ids(sid, c.committed_attachment_ids, "commit.committed_attachment_ids")
    if not _plain_head(c.config, c.agent_frames, c.current_agent_frame_id):
        head_fingerprint(c.config, c.agent_frames, c.current_agent_frame_id)  # field types of the head, early
    return c


def _plain_head(config: Any, frames: Sequence[Any], current: Any) -> bool:
    """True for a head with no frames, no current frame and a config of two strings (or
    none): its encoding cannot fail, so `check_commit` need not try it."""
    return (not frames and current is None
            and (config is None or (type(config) is ModelConfig and type(config.provider_id) is str
                                    and type(config.model) is str)))


def _store_frames(blobs: Any, frames: Sequence[AgentFrame]) -> tuple[AgentFrame, ...]:
    """Move inline execution-state snapshots into blobs; the head keeps only refs."""
    out = []
    for f in frames:
        if f.execution_state_snapshot is not None:
            f = attrs.evolve(f, execution_state_ref=blobs.put(f.execution_state_snapshot, stamp=False),
                             execution_state_snapshot=None)
        out.append(f)
    return tuple(out)


_NO_OUTBOX = EnqueuePlan((), ())


def _require_fresh(ctx: StoreContext) -> None:
    if not ctx.engine.stale:  # the common case: nothing is stale, one look
        return
    for name in ("graph", "sessions", "leases", "queue", "inputs"):
        ctx.require_fresh(name)


def _replayed_turn(ctx: StoreContext, c: RuntimeCommit) -> RuntimeCommitResult | None:
    """Step 2: the stored result of an already committed turn stamp, or None."""
    import projections.graph as gproj

    stamp = c.turn_commit
    if stamp is None:
        return None
    sid = c.session_id
    if stamp.session_id != sid:
        raise RuntimeTurnCommitConflict(f"session {sid!r}: the turn stamp names session {stamp.session_id!r}")
    stored = gproj.turn_commit(ctx.db, sid, stamp.turn_id)
    if stored is None:
        return None
    if stored[0] != stamp.turn_commit_hash:
        raise RuntimeTurnCommitConflict(
            f"session {sid!r}: turn {stamp.turn_id!r} was committed with hash {stored[0]}, "
            f"not {stamp.turn_commit_hash}")
    return RuntimeCommitResult(stored[1], stored[2], stored[3], replayed=True,
                               outbox_batches=_original_batches(ctx, sid, tuple(stored[3])))


def _original_batches(ctx: Any, sid: str, batch_ids: tuple[str, ...]) -> tuple[Any, ...]:
    """The outbox batches of a replayed commit, as first enqueued, read back from the
    session's stream (they may have been claimed or settled since). Only a replay pays
    for this scan."""
    from ..queue.enqueue import batch_from_event
    from ..queue.events import QueuedWorkEnqueued

    if not batch_ids:
        return ()
    wanted, found = set(batch_ids), {}
    for rec in ctx.read_stream(f"session:{sid}"):
        if isinstance(rec.data, QueuedWorkEnqueued) and rec.data.batch_id in wanted:
            found[rec.data.batch_id] = batch_from_event(rec.data)
    return tuple(found[b] for b in batch_ids if b in found)


def _named_ids(delta: Any) -> list[str]:
    """The node ids an append-style delta's checks look up: new ids, parents, the leaf.

    A full replace looks nothing up (its nodes stand alone). Malformed parts are left to
    `check_graph_delta`, which names them."""
    if delta.__class__ is GraphAppend and delta.nodes.__class__ is tuple and len(delta.nodes) == 1:
        # The common turn: one node (written out; the same ids, in the same order).
        node = delta.nodes[0]
        one = [delta.leaf, getattr(node, "node_id", None), getattr(node, "parent_node_id", None)]
        return [i for i in dict.fromkeys(one) if i.__class__ is str or isinstance(i, str)]
    if isinstance(delta, GraphReplace):
        return []
    ids: list[Any] = [getattr(delta, "leaf", None)]
    nodes = getattr(delta, "nodes", ())
    if isinstance(nodes, (tuple, list)):
        for node in nodes:
            ids.append(getattr(node, "node_id", None))
            ids.append(getattr(node, "parent_node_id", None))
    return [i for i in dict.fromkeys(ids) if isinstance(i, str)]


def _head_changed(new: tuple[Any, Any, Any], old: tuple[Any, Any, Any]) -> bool:
    """Whether (config, frames, current frame) changed, as `head_fingerprint` defines it.

    The common case, no frames and no current frame on either side, compares the two
    configs directly (two optional strings each); anything else compares encodings."""
    if _plain_head(*new) and _plain_head(*old):
        a, b = new[0], old[0]
        if a is None or b is None:
            return a is not b
        return bool(a.provider_id != b.provider_id or a.model != b.model)
    return head_fingerprint(*new) != head_fingerprint(*old)


def run_commit(ctx: StoreContext, c: RuntimeCommit) -> RuntimeCommitResult:
    """The commit algorithm (see the module docstring). `ctx` is the Store."""
    if ctx.readonly:
        ctx.require_writable("sessions.commit")
    c = check_commit(c)
    # A command: nothing in it catches a failure of its append (see StoreContext.command).
    # It decides everything from what it reads, so it may run as the write path's closure.
    return ctx.run_command(lambda: _commit(ctx, c))


def _fence_is_live(st: tuple[Any, ...], fence: Any, now: int) -> bool:
    """True when `fence` is a well-formed fence of the live lease in a `commit_state` row:
    what `check_fence` and `check_live_holder` accept, on the common types only (a fence
    whose owner has a LocalProcessLiveness, and anything unusual, takes the full checks)."""
    import projections.graph as gcs

    owner = fence.owner
    return (fence.__class__ is LeaseFence and fence.session_id.__class__ is str and owner.__class__ is LeaseOwner
            and owner.liveness.__class__ is OpaqueLiveness
            and owner.owner_id.__class__ is str and owner.owner_id == st[gcs.CS_OWNER]
            and owner.incarnation_id.__class__ is str and owner.incarnation_id == st[gcs.CS_INCARNATION]
            and fence.lease_token.__class__ is str and fence.lease_token == st[gcs.CS_LEASE_TOKEN]
            and fence.fencing_token.__class__ is int and fence.fencing_token == st[gcs.CS_FENCING_TOKEN]
            and st[gcs.CS_EXPIRES] is not None and now < st[gcs.CS_EXPIRES])


def _commit(ctx: StoreContext, c: RuntimeCommit) -> RuntimeCommitResult:
    """The body of the commit command, inside its write transaction."""
    import projections.graph as gproj

    sid = c.session_id
    db = ctx.db
    now = ctx.now_ms()
    _require_fresh(ctx)
    # The session, its lease and its head in one read; each check below that does not
    # pass on it runs the check of its own (which reads again and raises, saying why).
    st = gproj.commit_state(db, sid)
    if st is None or st[gproj.CS_STATUS] != "active":
        require_live_generation(db, sid, "commit")  # raises SessionNotFound / SessionDeleted
        raise AssertionError("unreachable: the session is not live")  # pragma: no cover
    if c.turn_commit is not None:
        replayed = _replayed_turn(ctx, c)
        if replayed is not None:
            if c.release_lease and c.lease is not None and c.lease.session_id == sid:
                ctx.leases.release(c.lease)  # a stale fence is a silent no-op
            return replayed
    fence = c.lease
    if fence is None:
        raise SessionExecutionLeaseExpired(LeaseFence(sid, LeaseOwner("(none)", "(none)"), "", 0),
                                           "the commit carries no session lease fence", "commit")
    if fence.session_id != sid:
        raise SessionBindingMismatch(
            f"session {sid!r}: the commit carries a lease fence of session {fence.session_id!r}")
    if not _fence_is_live(st, fence, now):
        check_fence(fence)
        check_live_holder(db, fence, now, "commit")  # the session was checked above
    live = fence.fencing_token  # the live lease generation, for the claims it settles
    has_head = st[gproj.CS_SKEY] is not None
    actual = st[gproj.CS_REVISION] if has_head else 0
    if c.expected_head_revision is not None and c.expected_head_revision != actual:
        raise HeadRevisionConflict(sid, c.expected_head_revision, actual)
    settle: list[Any] = []
    completing: list[str] = []
    if c.completed_queue_claims or c.completed_turn_input_claims:
        for i, qc in enumerate(c.completed_queue_claims):
            if qc.session_id != sid:
                raise SessionBindingMismatch(
                    f"session {sid!r}: commit.completed_queue_claims[{i}] is for session {qc.session_id!r}")
            settle.append(check_queue_completion(db, qc, now, live_generation=live))
        for i, ic in enumerate(c.completed_turn_input_claims):
            if ic.session_id != sid:
                raise SessionBindingMismatch(
                    f"session {sid!r}: commit.completed_turn_input_claims[{i}] is for session {ic.session_id!r}")
            settle.append(check_input_completion(db, ic, now, live_generation=live))
            completing.extend(ic.input_ids)
    # Every node id the delta names, looked up in one statement (and remembered for
    # the applier, which needs the parents' places in the index).
    graph = c.graph
    ids = _named_ids(graph)
    known = gproj.node_seqs(db, st[gproj.CS_SKEY], ids) if has_head and ids else {}
    check_graph_delta(sid, graph, known.__contains__, lambda n: n in known and not known[n][1])
    plan = _NO_OUTBOX
    if c.enqueued_queue_batches:
        for i, draft in enumerate(c.enqueued_queue_batches):
            if draft.session_id != sid:
                raise SessionBindingMismatch(
                    f"session {sid!r}: commit.enqueued_queue_batches[{i}] targets session {draft.session_id!r}")
        plan = plan_enqueue(db, list(c.enqueued_queue_batches), now, ctx.queue.completed_source_key_retention_ms)
    interrupt = (interrupt_events(db, sid, c.interrupted_turn_input_turn_id, now, completing,
                                  live_generation=live)
                 if c.interrupted_turn_input_turn_id is not None else [])
    # Every check has passed. Writes start here: blobs first (inside this transaction,
    # so GC cannot see them unrooted), then every event in one append.
    previous_ref = st[gproj.CS_CHECKPOINT_REF]
    checkpoint_ref = previous_ref
    if c.checkpoint is not None:
        checkpoint_ref = checkpoints.store_checkpoint_ref(ctx.blobs, c.checkpoint)
    frames = _store_frames(ctx.blobs, c.agent_frames) if c.agent_frames else ()
    config = c.config if c.config is not None else gproj.head_config(st)
    new_head = (config, frames, c.current_agent_frame_id)
    changed = _head_changed_from(new_head, st)
    batch_ids = tuple(r.batch.batch_id for r in plan.results) if plan.results else ()
    event = commit_event(actual + 1, graph, st[gproj.CS_LEAF], checkpoint_ref, previous_ref,
                         new_head if changed else None, c.usage_deltas, c.turn_commit, batch_ids,
                         tuple(c.committed_attachment_ids))
    ctx.append(f"session:{sid}", [event, *settle, *interrupt, *plan.events] if settle or interrupt or plan.events
               else [event], now_ms=now)
    if c.release_lease:
        ctx.leases.release(fence)
    return RuntimeCommitResult(actual + 1, checkpoint_ref, batch_ids,
                               outbox_batches=tuple(r.batch for r in plan.results) if plan.results else ())


def _head_changed_from(new: tuple[Any, Any, Any], st: tuple[Any, ...]) -> bool:
    """`_head_changed` against the head of a `commit_state` row (no head: nothing set)."""
    import projections.graph as gproj

    if st[gproj.CS_FRAMES] is None and st[gproj.CS_CURRENT_FRAME] is None and _plain_head(*new):
        a = new[0]
        provider = st[gproj.CS_PROVIDER]
        if a is None or provider is None:
            return (a is None) != (provider is None)
        return bool(a.provider_id != provider or a.model != st[gproj.CS_MODEL])
    old = (gproj.head_config(st), gproj.head_frames(st), st[gproj.CS_CURRENT_FRAME])
    return _head_changed(new, old)


__all__ = ["RuntimeCommit", "check_commit", "run_commit"]
