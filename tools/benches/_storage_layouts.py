"""Storage layouts not (yet) taken, measured on the commits module's uuid conversation.

The commits module's storage row grows one uuid session by one-message turns. This
script takes the rows that run stored (events; the graph projection's node index) and
writes them again, one transaction per turn as the store commits them, into bare SQLite
files holding only the table under test in today's layout and in each candidate layout,
then reports the bytes of pages per b-tree (SQLite's dbstat). It measures what a layout
would save per turn without implementing it: the candidates and the reasons they are
not in the store yet are in docs/benchmarks.md, "Storage: where a conversation's bytes go".

Not a benchmark module (the harness skips files starting with "_"). Run:
`python tools/benches/_storage_layouts.py [turns]` (default 500).
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import tempfile
from typing import Any, Callable, Iterable

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import msgpack  # noqa: E402

from benches import commits  # noqa: E402
from eventstore.codec import COMMAND_FLAGS  # noqa: E402

Insert = Callable[[sqlite3.Connection, tuple], None]

EVENTS_3 = """CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,
 version INTEGER NOT NULL, type TEXT NOT NULL, schema INTEGER NOT NULL, recorded_at_ms INTEGER NOT NULL,
 flags INTEGER NOT NULL, payload BLOB, hash BLOB NOT NULL, UNIQUE (stream, version));"""
STREAMS = "CREATE TABLE streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
TYPES = "CREATE TABLE types (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
EVENTS_KEYED = """CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, stream_id INTEGER NOT NULL,
 version INTEGER NOT NULL, type ANY NOT NULL, schema INTEGER NOT NULL, recorded_at_ms INTEGER NOT NULL,
 flags INTEGER NOT NULL, payload BLOB, hash BLOB NOT NULL, UNIQUE (stream_id, version));"""
NODES_3 = """CREATE TABLE graph_nodes (skey INTEGER NOT NULL, seq INTEGER NOT NULL, node_id BLOB NOT NULL,
 parent_seq INTEGER, position INTEGER NOT NULL, idx INTEGER NOT NULL, tombstoned INTEGER NOT NULL,
 PRIMARY KEY (skey, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX graph_nodes_by_id ON graph_nodes (skey, node_id);"""
NODES_BY_ID = """CREATE TABLE graph_nodes (skey INTEGER NOT NULL, node_id BLOB NOT NULL, seq INTEGER NOT NULL,
 parent_id BLOB, position INTEGER NOT NULL, idx INTEGER NOT NULL, tombstoned INTEGER NOT NULL,
 PRIMARY KEY (skey, node_id)) WITHOUT ROWID;"""


def _key(db: sqlite3.Connection, table: str, name: str) -> int:
    """The integer key of `name` in a name table, inserted on first sight."""
    row = db.execute(f"SELECT id FROM {table} WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return int(row[0])
    return int(db.execute(f"INSERT INTO {table} (name) VALUES (?)", (name,)).lastrowid or 0)


def _keyed(types: bool) -> Insert:
    def insert(db: sqlite3.Connection, r: tuple) -> None:
        type_ = _key(db, "types", r[3]) if types else r[3]
        db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", (r[0], _key(db, "streams", r[1]), r[2],
                                                                      type_, *r[4:]))
    return insert


def _without_repeated_leaf(rows: list[tuple]) -> list[tuple]:
    """The rows with each commit payload's `leaf_node_id` left out where it repeats the id of
    the commit's last node (as a commit event that names its leaf only when it differs
    would store it). Measurement only: the hashes are not recomputed (32 bytes either way)."""
    out = []
    for r in rows:
        payload = r[7]
        if r[3] == "session.committed" and payload is not None and not r[6] & ~COMMAND_FLAGS:
            d = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            nodes = d.get("nodes") or []
            if nodes and d.get("leaf_node_id") == nodes[-1].get("id"):
                del d["leaf_node_id"]
                payload = msgpack.packb(d, use_bin_type=True)
        out.append((*r[:7], payload, r[8]))
    return out


def _btrees(workdir: str, name: str, ddl: str, rows: Iterable[tuple], insert: Insert) -> dict[str, int]:
    """Bytes of pages per b-tree after writing `rows`, one transaction each."""
    path = os.path.join(workdir, name + ".db")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(ddl)
        for r in rows:
            db.execute("BEGIN")
            insert(db, r)
            db.execute("COMMIT")
        return {n: int(b) for n, b in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
                if not n.startswith("sqlite_s")}  # sqlite_schema, sqlite_sequence: one page either way
    finally:
        db.close()


def measure(workdir: str, turns: int = 500) -> dict[str, Any]:
    """Run the commits module's uuid storage case, then write its rows in each layout."""
    m = commits.storage(workdir, turns, True)
    src = sqlite3.connect(os.path.join(workdir, "storage-uuid.db"))
    try:
        events = src.execute("SELECT position, stream, version, type, schema, recorded_at_ms, flags, payload, hash "
                             "FROM events ORDER BY position").fetchall()
        nodes = src.execute("SELECT skey, seq, node_id, parent_seq, position, idx, tombstoned FROM graph_nodes "
                            "ORDER BY skey, seq").fetchall()
    finally:
        src.close()
    ids = {(r[0], r[1]): r[2] for r in nodes}
    plain: Insert = lambda db, r: db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", r)  # noqa: E731
    node3: Insert = lambda db, r: db.execute("INSERT INTO graph_nodes VALUES (?,?,?,?,?,?,?)", r)  # noqa: E731
    node_by_id: Insert = lambda db, r: db.execute(  # noqa: E731
        "INSERT INTO graph_nodes VALUES (?,?,?,?,?,?,?)", (r[0], r[2], r[1], ids.get((r[0], r[3])), *r[4:]))
    layouts = {
        "events, layout 3 (stream name in row and index)": _btrees(workdir, "e3", EVENTS_3, events, plain),
        "events, stream id (name kept once)": _btrees(workdir, "e4", STREAMS + EVENTS_KEYED, events, _keyed(False)),
        "events, stream id and type id": _btrees(workdir, "e4t", STREAMS + TYPES + EVENTS_KEYED, events, _keyed(True)),
        "events, layout 3, no repeated leaf id": _btrees(workdir, "e3l", EVENTS_3, _without_repeated_leaf(events),
                                                         plain),
        "events, stream id, no repeated leaf id": _btrees(workdir, "e4l", STREAMS + EVENTS_KEYED,
                                                          _without_repeated_leaf(events), _keyed(False)),
        "graph nodes, layout 3 (by seq + index by id)": _btrees(workdir, "n3", NODES_3, nodes, node3),
        "graph nodes, one table keyed by id (parent as id)": _btrees(workdir, "n4", NODES_BY_ID, nodes, node_by_id),
    }
    return {"turns": turns, "growth": m["growth"], "payload": m["payload"], "events": len(events),
            "nodes": len(nodes), "layouts": layouts}


_NAMES = re.compile(r"^(streams|types|sqlite_autoindex_(streams|types)_1)$")


def main() -> None:
    """Print the measurement as a table."""
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as wd:
        r = measure(wd, turns)
    t = r["turns"]
    print(f"{t} turns, uuid ids: growth {r['growth']:,} B ({r['growth'] / t:.0f} B per turn), "
          f"{r['growth'] / r['payload']:.2f}x the message bytes; {r['events']} events, {r['nodes']} nodes")
    base = {"events": None, "graph": None}
    for name, btrees in r["layouts"].items():
        # The name tables hold one row per stream or type, not per turn: an empty store
        # would already have their pages, so they are shown but not counted.
        total = sum(b for n, b in btrees.items() if not _NAMES.search(n))
        kind = "events" if name.startswith("events") else "graph"
        if base[kind] is None:
            base[kind] = total
        saved = (base[kind] or 0) - total
        parts = ", ".join(f"{n} {b:,}" for n, b in sorted(btrees.items(), key=lambda kv: -kv[1]))
        print(f"- {name}: {total:,} B ({saved / t:+.0f} B per turn saved; {parts})")


if __name__ == "__main__":
    main()
