"""The data behind a session view: one JSON-ready dict per session, built from public reads.

`session_model(store, session_id)` reads the session's streams (`session:<id>`,
`session-purge:<id>` and `process:<pid>` of every process the session started or that
wakes it) with `store.read_stream`, groups their events by the command (write
transaction) that appended them with `store.command_span`, derives the conversation
tree and the lanes from those events, and takes state snapshots with `store.at(p)` at a
bounded number of command boundaries (`snapshots.py`). Everything the page shows comes
from this dict; the page never sees the store.

Rows are lists, not maps, to keep a 10,000-event page small; `EVENT_FIELDS` and
`NODE_FIELDS` name their columns (the page reads them by index).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Iterable

from ..store import Store
from .lanes import build_lanes

EVENT_FIELDS = ("position", "stream", "version", "type", "recorded_at_ms", "summary", "payload",
                "payload_chars", "command", "hash")
"""Columns of a row of `events`: `stream` indexes `streams`, `type` indexes `types`,
`command` indexes `commands`, `hash` is the chain hash in base64 (the page shows hex),
`payload` is the decoded payload as compact JSON text, cut when long (`payload_chars`
is its whole length; see fit_payloads)."""
NODE_FIELDS = ("node_id", "parent", "added", "tombstoned", "removed", "role", "text", "frame", "timestamp")
"""Columns of a row of `tree.nodes`: positions where the node was added, tombstoned and
removed (None when not yet), its role and one line of its text."""

PAYLOAD_EMBED_CHARS = 100_000
"""The longest payload text kept for one event; longer ones are cut (the page says so)."""
PAGE_BYTES = 4_800_000
"""What a page's data may weigh: payload texts get what the rest leaves (see fit_payloads)."""
MIN_PAYLOAD_CHARS = 80
"""Payloads are never cut shorter than this, even if the page then outgrows PAGE_BYTES."""
TEXT_CHARS = 120
"""The longest node text line in the tree."""


def _describe() -> Callable[[Any], str]:
    from ..debug import describe

    return describe


def _jsonable() -> Callable[[Any], Any]:
    from ..cli._common import to_jsonable

    return to_jsonable


def payload_text(data: Any) -> str:
    """An event's decoded payload as compact JSON text (bytes as {"$bytes": base64}); the
    page indents it when it is whole."""
    if data is None:
        return "null"
    return json.dumps(_jsonable()(data), ensure_ascii=False, separators=(",", ":"), default=repr)


def _weight(text: str) -> int:
    """Bytes a string costs in the page's JSON (quotes and escapes included)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def fit_payloads(models: list[dict[str, Any]], page_bytes: int = PAGE_BYTES) -> int | None:
    """Cut the payload texts of these models so that all their data fits `page_bytes`.

    Everything but the payloads is kept; the payloads share what is left, each cut to
    the same longest length (found by bisection; never below MIN_PAYLOAD_CHARS). Returns
    that length, or None when nothing had to be cut. `payload_chars` keeps each full length.
    """
    rows = [r for m in models for r in m["events"]]
    if not rows:
        return None
    total = sum(len(json.dumps(m, ensure_ascii=False, separators=(",", ":"), default=repr).encode("utf-8"))
                for m in models)
    weights = [_weight(r[6]) for r in rows]
    budget = page_bytes - (total - sum(weights))
    if sum(weights) <= budget:
        return None
    lo, hi = MIN_PAYLOAD_CHARS, max(len(r[6]) for r in rows)
    while lo < hi:  # the longest cap whose cut payloads fit the budget
        mid = (lo + hi + 1) // 2
        cost = sum(w if len(r[6]) <= mid else _weight(r[6][:mid]) for r, w in zip(rows, weights))
        if cost <= budget:
            lo = mid
        else:
            hi = mid - 1
    for r in rows:
        if len(r[6]) > lo:
            r[6] = r[6][:lo]
    return lo


# --- which streams belong to a session ---------------------------------------------------------


def related_processes(store: Any, session_id: str) -> list[tuple[str, str]]:
    """(process id, relation) of the processes the session started ("started") or that
    wake it ("wakes"), ordered by id."""
    try:
        records = store.processes.list()
    except AttributeError:  # a store without the processes domain
        return []
    out = []
    for rec in records:
        origin = rec.registration.provenance.originator
        target = rec.registration.wake_target
        if getattr(origin, "session_id", None) == session_id:
            out.append((rec.process_id, "started"))
        elif target is not None and getattr(target, "session_id", None) == session_id:
            out.append((rec.process_id, "wakes"))
    return out


def session_streams(store: Any, session_id: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The streams shown for a session, and its related processes."""
    procs = related_processes(store, session_id)
    streams = [f"session:{session_id}", f"session-purge:{session_id}"]
    streams += [f"process:{pid}" for pid, _ in procs]
    return streams, procs


def session_list(store: Any) -> list[dict[str, Any]]:
    """Every session: id, status, generation, name, model, events, last position."""
    out = []
    for s in store.sessions.list():
        meta = s.meta
        out.append({"id": s.session_id, "status": s.status, "generation": s.generation,
                    "name": meta.name if meta else None, "model": meta.model if meta else None,
                    "events": s.event_count, "last_position": s.last_position or 0})
    out.sort(key=lambda s: (-s["last_position"], s["id"]))
    return out


# --- events and commands -----------------------------------------------------------------------


def _read_events(store: Any, streams: Iterable[str]) -> list[Any]:
    events: list[Any] = []
    for stream in streams:
        events.extend(store.read_stream(stream))
    events.sort(key=lambda ev: ev.position)
    return events


def _hashes(store: Any, streams: list[str]) -> dict[int, bytes]:
    """Chain hash per position of these streams (the `hash` column of the log, docs/log-format.md)."""
    out: dict[int, bytes] = {}
    for start in range(0, len(streams), 200):
        chunk = streams[start:start + 200]
        marks = ",".join("?" * len(chunk))
        rows = store.db.query(f"SELECT position, hash FROM events WHERE stream IN ({marks})", chunk)
        out.update((p, bytes(h)) for p, h in rows)
    return out


def group_commands(store: Store, positions: list[int]) -> tuple[list[list[Any]], list[int]]:
    """The commands of these (sorted) positions: ([first, last, count of shown events] per
    command, the command index of each position). Rows without command marks become a
    command of their own (`first == last == position`, marked by a fourth column False)."""
    commands: list[list[Any]] = []
    index: list[int] = []
    span_last = -1
    for p in positions:
        if p > span_last:
            span = store.command_span(p)
            marked = span is not None
            first, last = span if span is not None else (p, p)
            commands.append([first, last, 0, marked])
            span_last = last
        commands[-1][2] += 1
        index.append(len(commands) - 1)
    return commands, index


# --- the conversation tree -----------------------------------------------------------------------


def node_line(event: Any, plugin: str | None) -> tuple[str, str]:
    """(role, one line of text) of a node's payload."""
    if plugin is not None:
        return f"plugin {plugin}", _one_line(json.dumps(_jsonable()(event), ensure_ascii=False, default=repr))
    if isinstance(event, dict):
        role = str(event.get("role", "event"))
        texts = []
        for part in event.get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                texts.append(part["content"])
            elif isinstance(part, dict) and "kind" in part:
                texts.append(f"<{part['kind']}>")
        if not texts and isinstance(event.get("text"), str):
            texts.append(event["text"])
        body = " ".join(texts) if texts else json.dumps(
            _jsonable()({k: v for k, v in event.items() if k != "role"}), ensure_ascii=False, default=repr)
        return role, _one_line(body)
    return "event", _one_line(json.dumps(_jsonable()(event), ensure_ascii=False, default=repr))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…"


def build_tree(events: list[Any]) -> dict[str, Any]:
    """The conversation tree over time, from the session's graph events.

    Each node row says where it was added, tombstoned and removed (a graph replace, a
    vacuum or a delete removes nodes); `leaf` lists (position, leaf node id) and
    `revision` (position, head revision) after each commit. The tree as of position P
    is every node added at or before P and not removed by then.
    """
    nodes: dict[str, list[Any]] = {}
    live: dict[str, list[Any]] = {}  # node id -> row, for nodes not removed yet
    leaf: list[list[Any]] = []
    revision: list[list[Any]] = []
    for ev in events:
        t, d, p = ev.type, ev.data, ev.position
        if d is None or not ev.stream.startswith("session:"):
            continue
        if t == "session.committed":
            details = d.details
            if details is not None and details.graph_replaced:
                for row in live.values():
                    row[4] = p
                live.clear()
            for n in d.nodes:
                role, text = node_line(n.event, n.plugin)
                row = [n.id, n.parent, p, None, None, role, text, n.frame, n.at]
                key = f"{n.id}@{p}"
                nodes[key] = row
                live[n.id] = row
            leaf.append([p, d.leaf_node_id])
            revision.append([p, d.revision])
        elif t == "session.nodes_tombstoned":
            for nid in d.node_ids:
                hidden = live.get(nid)
                if hidden is not None and hidden[3] is None:
                    hidden[3] = p
        elif t == "session.vacuumed":
            for nid in [nid for nid, row in live.items() if row[3] is not None]:
                live.pop(nid)[4] = p
        elif t in ("session.deleted", "session.purged"):
            for row in live.values():
                row[4] = p
            live.clear()
            leaf.append([p, None])
            revision.append([p, 0])
    return {"fields": list(NODE_FIELDS), "nodes": list(nodes.values()), "leaf": leaf, "revision": revision}


def tree_at(tree: dict[str, Any], position: int) -> tuple[set[str], str | None]:
    """(live node ids, leaf) of the tree as of `position` (the page computes the same)."""
    live = {n[0] for n in tree["nodes"] if n[2] <= position and (n[4] is None or n[4] > position)
            and (n[3] is None or n[3] > position)}
    leaf = None
    for p, node_id in tree["leaf"]:
        if p <= position:
            leaf = node_id
    return live, leaf


# --- the model -----------------------------------------------------------------------------------


def session_model(store: Store, session_id: str, *, snapshots: int | None = None) -> dict[str, Any]:
    """Everything the page shows of one session (see the module docstring).

    `snapshots`: how many `store.at` state snapshots to take (None: the default bound of
    `snapshots.MAX_SNAPSHOTS`; 0: none, as the server does, which answers each position
    on request instead).
    """
    # Why one read transaction: the reads below (streams, hashes, command spans,
    # snapshots) must all see the same log, even while other processes append.
    with store.read_transaction():
        return _session_model(store, session_id, snapshots)


def _session_model(store: Store, session_id: str, snapshots: int | None) -> dict[str, Any]:
    from .snapshots import MAX_SNAPSHOTS, check_tree, take_snapshots

    info = store.sessions.get(session_id)
    if info is None:
        from .errors import UnknownSession

        raise UnknownSession(session_id, store.path)
    describe = _describe()
    streams, procs = session_streams(store, session_id)
    events = _read_events(store, streams)
    hashes = _hashes(store, streams)
    commands, command_of = group_commands(store, [ev.position for ev in events])
    stream_ids: dict[str, int] = {}
    type_ids: dict[str, int] = {}
    rows = []
    for ev, cmd in zip(events, command_of):
        sidx = stream_ids.setdefault(ev.stream, len(stream_ids))
        full = payload_text(ev.data)
        text, chars = full[:PAYLOAD_EMBED_CHARS], len(full)
        try:
            summary = describe(ev)
        except Exception:  # describe promises not to raise; a viewer must not die on one line
            summary = ev.type
        tidx = type_ids.setdefault(ev.type, len(type_ids))
        digest = hashes.get(ev.position)
        rows.append([ev.position, sidx, ev.version, tidx, ev.recorded_at_ms, summary, text, chars, cmd,
                     None if digest is None else base64.b64encode(digest).decode()])
    tree = build_tree(events)
    model: dict[str, Any] = {
        "session": {"id": session_id, "status": info.status, "generation": info.generation,
                    "name": info.meta.name if info.meta else None,
                    "model": info.meta.model if info.meta else None,
                    "cwd": info.meta.cwd if info.meta else None},
        "last_position": store.last_position(),
        "streams": list(stream_ids),
        "types": list(type_ids),
        "event_fields": list(EVENT_FIELDS),
        "events": rows,
        "commands": commands,
        "tree": tree,
        "lanes": build_lanes(events, procs),
        "processes": [{"id": pid, "relation": rel} for pid, rel in procs],
    }
    limit = MAX_SNAPSHOTS if snapshots is None else snapshots
    model["snapshots"] = take_snapshots(store, session_id, streams, procs, commands, rows, limit)
    model["tree_check"] = check_tree(tree, model["snapshots"])
    return model
