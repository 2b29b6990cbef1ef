"""Loading a session: the head, the checkpoint, the token ledger and the graph (docs/semantics.md §1).

The same code reads the live store and a time-travel view (`store.at(p)`): the head,
ledger and node index come from `ctx.db` (the live tables or the replayed ones), the
node payloads from the log rows the index points at, and the checkpoint and frame
snapshots from the blob table.

Why payloads are decoded by hand here: a node lives inside its commit's
`session.committed` event, next to the rest of that commit. Decoding only the msgpack
map and then only the wanted nodes (instead of the whole event as attrs instances)
keeps a 1,000-node load close to a raw SQLite select of 1,000 rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast, Sequence

import attrs

from .. import codec, ids
from ..errors import DecodeError, InvalidArgument
from . import checkpoints
from .events import SessionCommitted, StoredNode
from .model import AgentFrame, Checkpoint, EventPayload, ModelConfig, SessionNode, UsageDelta

if TYPE_CHECKING:
    from ..store import StoreContext

GRAPH_MODES = ("full", "active_path", "none")

_node_codec = codec.class_codec(StoredNode)
_unpackb = ids.unpackb  # compacted ids back to strings (eventstore/ids.py)


@attrs.frozen
class LoadedSession:
    """A session as a load returns it: the head, the checkpoint, the ledger and the graph."""

    session_id: str
    head_revision: int
    config: ModelConfig | None
    agent_frames: tuple[AgentFrame, ...]
    """With `execution_state_snapshot` hydrated from its blob (None when the blob is gone)."""
    current_agent_frame_id: str | None
    checkpoint_ref: str | None
    checkpoint: Checkpoint | None
    """Hydrated; None when there is none or its manifest blob is gone (children likewise)."""
    leaf_node_id: str | None
    graph_node_count: int
    """Live (not tombstoned) nodes."""
    token_ledger: tuple[UsageDelta, ...]
    """Merged per (source, model) in order of first appearance; zero totals dropped."""
    nodes: tuple[SessionNode, ...]
    """The full live graph in graph order, or the active path from the root down, or ()."""
    position: int
    """The log position this state is as of."""


def nodes_at(ctx: StoreContext, refs: Sequence[tuple[int, int]]) -> list[SessionNode]:
    """The nodes stored at (event position, index in the event), in the order given.

    Refs whose event payload was purged are left out.
    """
    if not refs:
        return []
    log = ctx.log  # the log of the store file, also for a time-travel view
    schema = log.registry.for_class(SessionCommitted).schema
    events: dict[int, list[Any]] = {}
    for position, row_schema, flags, payload in log.stored_payloads(sorted({p for p, _ in refs})):
        if payload is None:
            continue  # purged
        if not flags & ~codec.COMMAND_FLAGS and row_schema == schema:  # plain: no lz4, no unknown bit
            try:
                events[position] = _unpackb(payload, raw=False, strict_map_key=False)["nodes"]
                continue
            except Exception:  # malformed: the log's own decoder raises the typed error
                pass
        # compressed, written at an older schema (upcasters), or malformed: the log's full path
        recorded = log.get(position)
        assert recorded is not None  # stored_payloads just returned this position
        events[position] = list(recorded.data.nodes)
    out = []
    for position, idx in refs:
        plain = events.get(position)
        if plain is None:
            continue
        item = plain[idx]
        out.append(item.to_node() if isinstance(item, StoredNode) else _build_node(item))
    return out


# Building a SessionNode by setting its slots directly skips attrs' frozen __init__
# (object.__setattr__ per field): about half the cost of a 1,000-node load. Safe because
# both classes are plain attrs slots classes without validators or converters, and every
# value is type-checked first; anything unexpected goes through the checked codec path.
_new = object.__new__
(_SET_ID, _SET_PAYLOAD, _SET_PARENT, _SET_CAUSE, _SET_FRAME, _SET_AT) = (
    SessionNode.__dict__[n].__set__
    for n in ("node_id", "payload", "parent_node_id", "caused_by", "agent_frame_id", "timestamp"))
_SET_EVENT = EventPayload.__dict__["event"].__set__
_OPT_STR = (str, type(None))


def _build_node(d: Any) -> SessionNode:
    """A SessionNode from a StoredNode's decoded map (validated; typed error if malformed)."""
    if d.__class__ is dict and len(d) == 7 and "event" in d and d.get("plugin", 0) is None:
        nid, parent, cause, frame, at = d.get("id"), d.get("parent"), d.get("cause"), d.get("frame"), d.get("at")
        if (nid.__class__ is str and at.__class__ is str and parent.__class__ in _OPT_STR
                and cause.__class__ in _OPT_STR and frame.__class__ in _OPT_STR):
            payload = _new(EventPayload)
            _SET_EVENT(payload, d["event"])
            node = _new(SessionNode)
            _SET_ID(node, nid)
            _SET_PAYLOAD(node, payload)
            _SET_PARENT(node, parent)
            _SET_CAUSE(node, cause)
            _SET_FRAME(node, frame)
            _SET_AT(node, at)
            return node
    try:
        return cast("SessionNode", _node_codec.from_plain(d).to_node())
    except codec.ShapeError as exc:
        raise DecodeError(f"session.committed node: {exc}") from None


def _hydrate_frames(blobs: Any, frames: Sequence[AgentFrame]) -> tuple[AgentFrame, ...]:
    out = []
    for f in frames:
        ref = f.execution_state_ref
        if ref is not None and f.execution_state_snapshot is None and blobs.has(ref):
            f = attrs.evolve(f, execution_state_snapshot=blobs.get(ref))
        out.append(f)
    return tuple(out)


def load_session(ctx: StoreContext, session_id: str, graph: str = "full", leaf: str | None = None) -> LoadedSession | None:
    """Read a session's state from `ctx` (the store, or a time-travel view); None when the
    session has never committed. `graph` is "full", "active_path" (from `leaf`, or the
    head's leaf, up to the root) or "none"."""
    from projections import graph as gproj

    if graph not in GRAPH_MODES:
        raise InvalidArgument(f"graph must be 'full', 'active_path' or 'none', got {graph!r}")
    if leaf is not None and (not isinstance(leaf, str) or not leaf):
        raise InvalidArgument(f"leaf must be None or a non-empty node id, got {leaf!r}")
    if leaf is not None and graph != "active_path":
        raise InvalidArgument("leaf is only meaningful with graph='active_path'")
    ctx.require_fresh("graph")
    with ctx.read_transaction():
        head = gproj.head(ctx.db, session_id)
        if head is None:
            return None
        if graph == "full":
            refs = gproj.node_refs(ctx.db, session_id)
        elif graph == "active_path":
            target = leaf if leaf is not None else head.leaf_node_id
            refs = gproj.path_refs(ctx.db, session_id, target) if target is not None else []
        else:
            refs = []
        nodes = tuple(nodes_at(ctx, refs))
        ledger = tuple(gproj.usage_ledger(ctx.db, session_id))
        position = ctx.position if getattr(ctx, "position", None) is not None else ctx.log.last_position()
        checkpoint = checkpoints.load_checkpoint(ctx.blobs, head.checkpoint_ref)
        frames = _hydrate_frames(ctx.blobs, head.frames)
    # An explicit leaf is the leaf the caller asked to see: report it, not the head's.
    shown_leaf = leaf if leaf is not None else head.leaf_node_id
    return LoadedSession(session_id, head.revision, head.config, frames, head.current_agent_frame_id,
                         head.checkpoint_ref, checkpoint, shown_leaf, head.live_nodes, ledger, nodes,
                         position)


def load_node(ctx: StoreContext, session_id: str, node_id: str) -> SessionNode | None:
    """One live node by id; tombstoned (and vacuumed, and unknown) nodes read as None (law 60)."""
    from projections import graph as gproj

    if not isinstance(node_id, str) or not node_id:
        raise InvalidArgument(f"node_id must be a non-empty string, got {node_id!r}")
    ctx.require_fresh("graph")
    with ctx.read_transaction():
        row = gproj.node(ctx.db, session_id, node_id)
        if row is None or row.tombstoned:
            return None
        found = nodes_at(ctx, [(row.position, row.idx)])
    return found[0] if found else None


__all__ = ["GRAPH_MODES", "LoadedSession", "load_node", "load_session", "nodes_at"]
