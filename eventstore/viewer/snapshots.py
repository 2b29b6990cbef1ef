"""State snapshots of a session at chosen positions, read through the store's own time travel.

A snapshot is what `store.at(position, streams)` shows of the session at that position:
its head (revision, leaf, live nodes, checkpoint turn), its lease (holder, fence,
expiry, live or not), its queued batches and turn inputs with their states, and the
status of each related process. Liveness is judged at the time the event at that
position was recorded, the moment the snapshot describes.

A static page carries snapshots at up to `MAX_SNAPSHOTS` command boundaries (all of them
when the session has no more commands than that, evenly spread otherwise); the server
takes one on request for any position. Each `store.at` replays the session's streams
from position 1, so the cost of a page grows with snapshots times events.
"""

from __future__ import annotations

from typing import Any

import tempfile

from ..errors import StoreError
from .model import tree_at

MAX_SNAPSHOTS = 64
"""The default bound on snapshots embedded in a static page."""


def stops(commands: list[list[Any]], rows: list[list[Any]]) -> list[int]:
    """The slider's stops: for each command, the last position of its shown events."""
    last: dict[int, int] = {}
    for row in rows:
        last[row[8]] = row[0]
    return [last[i] for i in range(len(commands)) if i in last]


def choose(positions: list[int], limit: int) -> list[int]:
    """Up to `limit` of `positions` (sorted), evenly spread, always with the last one."""
    if limit <= 0 or not positions:
        return []
    if len(positions) <= limit:
        return list(positions)
    if limit == 1:
        return [positions[-1]]
    picked = {positions[round(i * (len(positions) - 1) / (limit - 1))] for i in range(limit)}
    return sorted(picked)


SETTLED = frozenset({"completed", "cancelled"})
PROCESS_SETTLED = frozenset({"completed", "failed", "cancelled", "abandoned", "not registered yet"})
OPEN_ROWS = 50
"""Queue and input rows still in play listed per snapshot (settled ones are only counted)."""


def snapshot(store: Any, session_id: str, streams: list[str], procs: list[tuple[str, str]], position: int,
             as_of_ms: int | None, view: Any = None) -> dict[str, Any]:
    """The session's state at `position`, read from `store.at(position, streams)` (or from
    `view`, a time-travel view at that position made by the caller)."""
    if view is None:
        with store.at(position, streams=streams) as fresh:
            return snapshot(store, session_id, streams, procs, position, as_of_ms, fresh)
    out: dict[str, Any] = {"position": position, "as_of_ms": as_of_ms}
    out["head"] = _guard(lambda: _head(view, session_id))
    out["lease"] = _guard(lambda: _lease(view, session_id, as_of_ms))
    out["queue"] = _guard(lambda: _rows([(b.batch_id, b.state, b.enqueue_seq)
                                         for b in view.queue.list(session_id, now_ms=as_of_ms)]))
    out["inputs"] = _guard(lambda: _rows([(i.input_id, i.state.value, i.enqueue_seq)
                                          for i in view.inputs.list(session_id, now_ms=as_of_ms)]))
    out["processes"] = _guard(lambda: _rows([(pid, _process_status(view, pid), k + 1)
                                             for k, (pid, _) in enumerate(procs)], PROCESS_SETTLED))
    return out


def _rows(rows: list[tuple[str, str, int]], settled: frozenset[str] = SETTLED) -> dict[str, Any]:
    """{"counts": rows per state, "open": the first OPEN_ROWS rows not settled}."""
    counts: dict[str, int] = {}
    for _, state, _ in rows:
        counts[state] = counts.get(state, 0) + 1
    return {"counts": counts, "open": [list(r) for r in rows if r[1] not in settled][:OPEN_ROWS]}


def _guard(read: Any) -> Any:
    """A read's value, or {"error": message} when the domain refuses it at that position
    (a deleted session's queue, for one): the page shows the message."""
    try:
        return read()
    except StoreError as exc:
        return {"error": str(exc)}


def _head(view: Any, session_id: str) -> dict[str, Any] | None:
    info = view.sessions.get(session_id)
    loaded = view.sessions.load(session_id, graph="none") if info is not None and info.active else None
    head: dict[str, Any] = {"status": info.status if info is not None else "absent"}
    if loaded is not None:
        cp = loaded.checkpoint
        head.update(revision=loaded.head_revision, leaf=loaded.leaf_node_id,
                    live_nodes=loaded.graph_node_count,
                    checkpoint_turn=cp.turn_state.turn_index if cp is not None else None,
                    model=loaded.config.model if loaded.config is not None else None)
    return head


def _lease(view: Any, session_id: str, as_of_ms: int | None) -> dict[str, Any] | None:
    state = view.leases.get(session_id)
    if state is None:
        return None
    h = state.holder
    return {"fence": state.fencing_token, "holder": None if h is None else h.owner.owner_id,
            "expires_ms": None if h is None else h.expires_at_ms,
            "live": bool(h is not None and as_of_ms is not None and h.is_live(as_of_ms))}


def _process_status(view: Any, pid: str) -> str:
    rec = view.processes.get(pid)
    return "not registered yet" if rec is None else str(rec.status.value)


def take_snapshots(store: Any, session_id: str, streams: list[str], procs: list[tuple[str, str]],
                   commands: list[list[Any]], rows: list[list[Any]], limit: int) -> list[dict[str, Any]]:
    """Snapshots at up to `limit` of the slider's stops."""
    recorded = {row[0]: row[4] for row in rows}
    chosen = choose(stops(commands, rows), limit)
    from ..debug import timetravel

    # Why a private cache: `view_at` is store.at replayed from the nearest cached
    # projection snapshot, so ascending positions cost one pass over the session instead
    # of one pass each. Its cache lives in a temporary directory removed afterwards:
    # nothing is written beside the store.
    out = []
    every = max(100, -(-len(rows) // max(1, len(chosen))))  # about one cached snapshot per chosen position
    with tempfile.TemporaryDirectory(prefix="eventstore-viewer-") as cache:
        for p in chosen:
            with timetravel.view_at(store, p, streams, cache_dir=cache, every=every) as view:
                out.append(snapshot(store, session_id, streams, procs, p, recorded.get(p), view))
    return out


def check_tree(tree: dict[str, Any], snaps: list[dict[str, Any]]) -> list[list[Any]]:
    """Where the tree read off the graph events disagrees with `store.at`'s head (live
    node count or leaf): [[position, what]]; empty when they agree at every snapshot."""
    problems: list[list[Any]] = []
    for snap in snaps:
        head = snap.get("head")
        if not isinstance(head, dict) or "revision" not in head:
            continue
        live, leaf = tree_at(tree, snap["position"])
        if len(live) != head["live_nodes"]:
            problems.append([snap["position"],
                             f"tree has {len(live)} live nodes, store.at has {head['live_nodes']}"])
        if leaf != head["leaf"]:
            problems.append([snap["position"], f"tree leaf {leaf!r}, store.at leaf {head['leaf']!r}"])
    return problems
