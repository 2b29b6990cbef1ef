"""The storage-layout measurement (tools/benches/_storage_layouts.py) behind the candidate
table of docs/benchmarks.md ("Storage: where a conversation's bytes go"): it must keep
running against the commits module's storage case and measure what its names say."""

from __future__ import annotations

import sys
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

from benches import _storage_layouts as layouts  # noqa: E402


def test_the_stream_key_layout_shrinks_the_stream_version_index(tmp_path: Path) -> None:
    r = layouts.measure(str(tmp_path), 120)
    assert r["nodes"] == 120 and r["events"] > 120
    got = r["layouts"]
    today = got["events, layout 3 (stream name in row and index)"]
    keyed = got["events, stream id (name kept once)"]
    # An integer and a version per entry, not `session:<uuid>` spelled out: fewer pages.
    assert keyed["sqlite_autoindex_events_1"] < today["sqlite_autoindex_events_1"]
    assert keyed["events"] < today["events"]
    nodes = got["graph nodes, one table keyed by id (parent as id)"]
    assert set(nodes) == {"graph_nodes"}  # one b-tree, no separate index by id


def test_a_repeated_leaf_id_is_left_out_and_nothing_else_changes() -> None:
    leaf = msgpack.ExtType(85, bytes(range(16)))
    other = msgpack.ExtType(85, bytes(range(1, 17)))
    repeated = msgpack.packb({"revision": 2, "nodes": [{"id": leaf}], "leaf_node_id": leaf}, use_bin_type=True)
    differs = msgpack.packb({"revision": 3, "nodes": [{"id": leaf}], "leaf_node_id": other}, use_bin_type=True)
    rows = [(1, "session:s", 1, "session.committed", 1, 0, 0, repeated, b"h" * 32),
            (2, "session:s", 2, "session.committed", 1, 0, 0, differs, b"h" * 32),
            (3, "session:s", 3, "session.created", 1, 0, 0, repeated, b"h" * 32)]
    out = layouts._without_repeated_leaf(rows)
    # The key (13 bytes with its header) and the compact id (18) go; the rest is the same map.
    assert len(out[0][7]) == len(repeated) - 31
    assert msgpack.unpackb(out[0][7], strict_map_key=False) == {"revision": 2, "nodes": [{"id": leaf}]}
    assert out[1] == rows[1] and out[2] == rows[2]
