"""What changed between two positions, as domain facts.

`diff(store, p1, p2, streams)` replays the projections at both positions and reports:

* facts: sentences about the domain, read from the two states (and the events between):
  ``lease on session s1 moved from runtime-a/inc-1 (fence 3) to runtime-b/inc-2 (fence 4)``,
  ``2 nodes added to session s1 (revision 3 -> 4, leaf n6 -> n8)``,
  ``queue of session s1: 2 batches enqueued, 2 completed; 0 -> 0 queued``; and, for any
  table with a `status` or `state` column that no domain fact covers (processes,
  effects, triggers, domains added later), each row whose status changed;
* events: the events between the positions, one readable line each (`describe`);
* tables: a row-level diff of every projection table (added, removed and changed rows,
  keyed by the table's primary key), the fallback for anything the facts do not know.

Both replays go through `timetravel.view_at`, so their snapshots are reused; the row
diff walks both tables in key order and holds only a few example rows in memory.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, cast

import attrs

from .describe_events import plural, short
from ..errors import InvalidArgument
from ..ids import id_from_key
from .inspection import EventInfo, as_of, columns, event_info, primary_key, _check_streams
from ..store import Store
from .timetravel import view_at

EXAMPLES = 5
"""Example rows kept per table and kind of change."""
STATUS_FACTS = 20
"""Status-change facts listed per table before "and N more"."""
COVERED = frozenset({"sessions_index", "lease_sessions", "graph_heads", "queue_batches", "queue_source_keys",
                     "inputs_pending"})
"""Tables whose changes the domain facts below already tell (no generic status facts)."""


@attrs.frozen
class TableChange:
    """How one projection table differs between the two positions."""

    projection: str
    table: str
    added: int
    removed: int
    changed: int
    examples: tuple[str, ...]


@attrs.frozen
class StateDiff:
    """What changed between two positions."""

    from_position: int
    to_position: int
    streams: tuple[str, ...] | None
    facts: tuple[str, ...]
    events: tuple[EventInfo, ...]
    """The first `event_limit` events between the positions (the rest are only counted)."""
    events_total: int
    tables: tuple[TableChange, ...]
    """Only the tables that changed."""


def diff(store: Store, from_position: int, to_position: int, streams: Sequence[str] | None = None, *,
         cache: bool = True, event_limit: int = 200) -> StateDiff:
    """Compare the projections at `from_position` and `to_position` (from <= to)."""
    for name, value in (("from_position", from_position), ("to_position", to_position)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name} must be an integer >= 0, got {value!r}")
    if from_position > to_position:
        raise InvalidArgument(f"from_position {from_position} is after to_position {to_position}; "
                              f"a diff runs forwards (swap them)")
    streams = _check_streams(streams)
    events: list[EventInfo] = []
    activity: dict[str, dict[str, int]] = {}
    total = 0
    for ev in store.read_all(from_position + 1, to_position=to_position, streams=streams, raw=True) \
            if to_position > from_position else ():
        total += 1
        if len(events) < event_limit:
            events.append(event_info(store, ev))
        if ev.stream.startswith("session:") and ev.type.split(".")[0] in ("queue", "inputs"):
            per = activity.setdefault(ev.stream[len("session:"):], {})
            per[ev.type] = per.get(ev.type, 0) + 1
    with view_at(store, from_position, streams, cache=cache) as before, \
            view_at(store, to_position, streams, cache=cache) as after:
        a, b = before.db, after.db
        facts = (_session_facts(a, b) + _lease_facts(a, b) + _graph_facts(a, b)
                 + _work_facts(a, b, activity) + _status_facts(store, a, b))
        tables = []
        for p in store.engine.projections:
            for table in p.tables:
                change = table_change(a, b, p.name, table)
                if change is not None:
                    tables.append(change)
    return StateDiff(from_position, to_position, tuple(streams) if streams else None, tuple(facts),
                     tuple(events), total, tuple(tables))


# --- domain facts ----------------------------------------------------------------------------------


def _rows(db: Any, table: str, key: str) -> dict[Any, dict]:
    names = columns(db, table)
    if key not in names:
        return {}
    return {r[names.index(key)]: dict(zip(names, r)) for r in db.query(f"SELECT * FROM {table}")}


def _session_facts(a: Any, b: Any) -> list[str]:
    before, after = _rows(a, "sessions_index", "session_id"), _rows(b, "sessions_index", "session_id")
    out = []
    for sid in sorted(set(before) | set(after)):
        x, y = before.get(sid), after.get(sid)
        if x is None and y is not None:
            out.append(f"session {sid} created (generation {y.get('generation')}, {y.get('status')})")
        elif x is not None and y is not None and x.get("generation") != y.get("generation"):
            out.append(f"session {sid} recreated: generation {x.get('generation')} -> {y.get('generation')}")
        elif x is not None and y is not None and x.get("status") != y.get("status"):
            out.append(f"session {sid} {x.get('status')} -> {y.get('status')}")
    return out


def _holder(row: dict | None) -> str | None:
    if row is None or row.get("owner_id") is None:
        return None
    return f"{row['owner_id']}/{short(row.get('incarnation_id'), 6)}"


def _lease_facts(a: Any, b: Any) -> list[str]:
    before, after = _rows(a, "lease_sessions", "session_id"), _rows(b, "lease_sessions", "session_id")
    out = []
    for sid in sorted(set(before) | set(after)):
        x, y = before.get(sid), after.get(sid)
        hx, hy = _holder(x), _holder(y)
        fx = None if x is None else x.get("fencing_token")
        fy = None if y is None else y.get("fencing_token")
        if y is None:
            out.append(f"lease state of session {sid} wiped (the session was deleted or purged)")
        elif hx is None and hy is not None:
            was = "" if x is None else f" (was released at fence {fx})"
            out.append(f"lease on session {sid} acquired by {hy} (fence {fy}){was}")
        elif hx is not None and hy is None:
            out.append(f"lease on session {sid} released by {hx} (fence {fx}, kept)")
        elif hx is not None and hy is not None and (hx != hy or fx != fy):
            out.append(f"lease on session {sid} moved from {hx} (fence {fx}) to {hy} (fence {fy})")
        elif hx is not None and x is not None and y is not None and x.get("expires_at_ms") != y.get("expires_at_ms"):
            out.append(f"lease on session {sid} renewed by {hy} (fence {fy})")
    return out


def _graph_facts(a: Any, b: Any) -> list[str]:
    before, after = _rows(a, "graph_heads", "session_id"), _rows(b, "graph_heads", "session_id")
    out = []
    for sid in sorted(set(before) | set(after)):
        x, y = before.get(sid) or {}, after.get(sid) or {}
        if not y:
            if x:
                out.append(f"head of session {sid} dropped (the session was deleted or purged)")
            continue
        rx, ry = x.get("revision", 0), y.get("revision", 0)
        nx, ny = x.get("live_nodes", 0) or 0, y.get("live_nodes", 0) or 0
        lx, ly = x.get("leaf_node_id"), y.get("leaf_node_id")
        if rx == ry and nx == ny and lx == ly:
            continue
        delta = ny - nx
        what = (f"{plural(delta, 'node')} added to session {sid}" if delta > 0 else
                f"{plural(-delta, 'node')} removed from session {sid}" if delta < 0 else f"session {sid} head moved")
        out.append(f"{what} (revision {rx} -> {ry}, leaf {lx or '-'} -> {ly or '-'})")
    return out


_WORK = (("queue", "queue_batches", "batch", "batches",
          (("queue.batch_enqueued", "enqueued", "enqueued"), ("queue.claimed", "claim", "claims"),
           ("queue.claim_abandoned", "abandon", "abandons"), ("queue.completed", "completion", "completions"),
           ("queue.batch_cancelled", "cancellation", "cancellations"))),
         ("inputs", "inputs_pending", "input", "inputs",
          (("inputs.enqueued", "enqueued", "enqueued"), ("inputs.claimed", "claim", "claims"),
           ("inputs.claim_abandoned", "abandon", "abandons"), ("inputs.completed", "completion", "completions"),
           ("inputs.cancelled", "cancellation", "cancellations"), ("inputs.turn_interrupted", "interrupt", "interrupts"),
           ("inputs.vacuumed", "vacuum", "vacuums"))))


def _work_facts(a: Any, b: Any, activity: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for sid in sorted(activity):
        per = activity[sid]
        for label, table, one, many, types in _WORK:
            parts = [plural(per[t], word, words) for t, word, words in types if per.get(t)]
            if not parts:
                continue
            counts = [_open_count(db, table, sid) for db in (a, b)]
            out.append(f"{label} of session {sid}: {', '.join(parts)}; "
                       f"{counts[0]} -> {plural(counts[1], one, many)} open")
    return out


def _open_count(db: Any, table: str, sid: str) -> int:
    names = columns(db, table)
    if "session_id" not in names:
        return 0
    where = " AND state NOT IN ('completed', 'cancelled')" if "state" in names else ""
    return cast("int", db.scalar(f"SELECT count(*) FROM {table} WHERE session_id = ?{where}", (sid,), 0))


def _status_facts(store: Store, a: Any, b: Any) -> list[str]:
    """Rows whose status/state changed, in tables no domain fact covers."""
    out = []
    for p in store.engine.projections:
        for table in p.tables:
            if table in COVERED:
                continue
            names = columns(b, table)
            col = next((c for c in ("status", "state") if c in names), None)
            if col is None:
                continue
            pk = primary_key(b, table)
            found = 0
            for x, y in _pairs(a, b, table, pk):
                sx = None if x is None else x[names.index(col)]
                sy = None if y is None else y[names.index(col)]
                if sx == sy:
                    continue
                found += 1
                if found <= STATUS_FACTS:
                    key = _key_text((x or y), names, pk)
                    out.append(f"{table} {key}: {sx if x is not None else '(new)'} -> "
                               f"{sy if y is not None else '(gone)'}")
            if found > STATUS_FACTS:
                out.append(f"{table}: and {found - STATUS_FACTS} more status changes")
    return out


# --- row diff --------------------------------------------------------------------------------------


def table_change(a: Any, b: Any, projection: str, table: str) -> TableChange | None:
    """How `table` differs from database `a` to database `b` (None when equal)."""
    names = columns(b, table)
    if not names:
        return None
    pk = primary_key(b, table)
    key_text = _key_renderer(a, b, names, pk)
    added = removed = changed = 0
    examples: list[str] = []
    for x, y in _pairs(a, b, table, pk):
        if x == y:
            continue
        if x is None:
            added += 1
            if added <= EXAMPLES:
                examples.append(f"+ {key_text(y)}")
        elif y is None:
            removed += 1
            if removed <= EXAMPLES:
                examples.append(f"- {key_text(x)}")
        else:
            changed += 1
            if changed <= EXAMPLES:
                cols = [f"{n} {_cell(u)} -> {_cell(v)}" for n, u, v in zip(names, x, y) if u != v]
                examples.append(f"~ {key_text(y)}: {', '.join(cols[:4])}")
    if not (added or removed or changed):
        return None
    return TableChange(projection, table, added, removed, changed, tuple(examples))


def _pairs(a: Any, b: Any, table: str, pk: list[str]) -> Iterator[tuple[tuple | None, tuple | None]]:
    """(row before, row after) for every key of either table, walking both in key order."""
    names = columns(b, table)
    idx = [names.index(k) for k in pk]
    order = ", ".join(pk)
    sql = f"SELECT * FROM {table} ORDER BY {order}"
    # Lazy cursors on both (private, in-memory) databases: memory stays bounded.
    xs = a.iterate(sql) if columns(a, table) else iter(())
    ys = b.iterate(sql)
    x, y = next(xs, None), next(ys, None)
    while x is not None or y is not None:
        kx = None if x is None else _sort_key([x[i] for i in idx])
        ky = None if y is None else _sort_key([y[i] for i in idx])
        if ky is None or (kx is not None and kx < ky):
            yield x, None
            x = next(xs, None)
        elif kx is None or ky < kx:
            yield None, y
            y = next(ys, None)
        else:
            yield x, y
            x, y = next(xs, None), next(ys, None)


def _sort_key(values: list[Any]) -> tuple:
    # SQLite's order of mixed types: NULL, numbers, text, blobs. Text compares as UTF-8
    # bytes, which orders like Python's code points.
    out = []
    for v in values:
        if v is None:
            out.append((0, 0))
        elif isinstance(v, (int, float)):
            out.append((1, v))
        elif isinstance(v, str):
            out.append((2, v))
        else:
            out.append((3, bytes(v)))
    return tuple(out)


def _key_text(row: tuple, names: list[str], pk: list[str]) -> str:
    return "(" + ", ".join(_key_cell(row[names.index(k)]) for k in pk) + ")"


def _key_renderer(a: Any, b: Any, names: list[str], pk: list[str]) -> Callable[[tuple[Any, ...]], str]:
    """A row's key as a person knows it: the graph tables key their rows by `skey` (an
    internal number per session head) and `seq` (per node); shown as the session id and
    the node id instead."""
    if "skey" not in pk:
        return lambda row: _key_text(row, names, pk)
    sessions: dict[int, str] = {}
    for db in (a, b):
        if columns(db, "graph_heads"):
            sessions.update(db.iterate("SELECT skey, session_id FROM graph_heads"))
    shown = [("node_id" if k == "seq" and "node_id" in names else k) for k in pk]

    def render(row: tuple[Any, ...]) -> str:
        cells = []
        for k in shown:
            v = row[names.index(k)]
            if k == "node_id" and isinstance(v, (bytes, bytearray, memoryview)):
                v = id_from_key(bytes(v))  # the graph's id key (eventstore/ids.py)
            cells.append(sessions.get(v, f"skey {v}") if k == "skey" else _key_cell(v))
        return "(" + ", ".join(cells) + ")"

    return render


def _key_cell(v: Any) -> str:
    # Keys are ids: shortened only where a long hex tail would be (short()), never cut.
    return short(v) if isinstance(v, str) else _cell(v)


def _cell(v: Any) -> str:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    if isinstance(v, str):
        s = short(v)
        return s if len(s) <= 40 else s[:39] + "…"
    return str(v)


def as_of_pair(store: Store, diff_: StateDiff) -> tuple[int | None, int | None]:
    """The recorded times of the two positions of a diff."""
    return as_of(store, diff_.from_position), as_of(store, diff_.to_position)


__all__ = ["StateDiff", "TableChange", "as_of_pair", "diff", "table_change"]
