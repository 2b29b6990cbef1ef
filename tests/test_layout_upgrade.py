"""Store layout 3 (compact ids): a file written by layout 2 code opens, upgrades and reads
the same; new rows carry uuids as 16 bytes; the chain, export/import and copy keep working.

tests/fixtures/layout2.db.gz was written by the layout 2 code (tests/fixtures/make_layout2.py).
"""

from __future__ import annotations

import gzip
import os
import shutil
import uuid

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventstore
from eventstore import ids
from eventstore.commits import (
    Checkpoint, EventPayload, GraphAppend, ModelConfig, RuntimeCommit, SessionNode, TurnState,
)
from eventstore.copy import copy_store
from eventstore.debug.export import export_to_path
from eventstore.debug.importer import import_store
from eventstore.errors import ProjectionStale
from eventstore.leases import LeaseOwner
from eventstore.log import SCHEMA_VERSION
from projections import graph as gproj
from tests import postgres_support as pg
from tests import strategies as gen

ROWS = ("SELECT position, stream, version, type, schema, recorded_at_ms, flags, payload, hash "
        "FROM events ORDER BY position")
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "layout2.db.gz")
SESSION = "0b7e1f0c-3c1d-4e55-9a41-6f2d8e0c9a17"
NODES = ["5d0a4c2e-8f1b-4d3a-b6c7-2e9f0a1b3c4d", "9F1E2D3C-4B5A-4697-8877-665544332211", "n-short",
         "c3b2a190-7f6e-4d5c-8b4a-3928170f6e5d"]


def _layout2(tmp_path) -> str:
    path = str(tmp_path / "old.db")
    with gzip.open(FIXTURE, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _node_ids(store: eventstore.Store) -> list[str]:
    """Every node id of the session's graph index, tombstoned ones too, in graph order."""
    return [n.node_id for n in gproj.nodes(store.db, SESSION, include_tombstoned=True)]


def _commit(store: eventstore.Store, nid: str, parent: str | None) -> None:
    fence = store.leases.claim(SESSION, LeaseOwner("fixture", "i1"), 3_600_000).lease.fence
    loaded = store.sessions.load(SESSION)
    revision = loaded.head_revision if loaded is not None else 0
    node = SessionNode(nid, EventPayload({"role": "user", "text": "after the upgrade"}), parent,
                       timestamp="2026-03-02T09:00:00.000Z")
    store.sessions.commit(RuntimeCommit(SESSION, fence, GraphAppend((node,), nid),
                                        expected_head_revision=revision, config=ModelConfig("anthropic", "claude-x"),
                                        checkpoint=Checkpoint(TurnState(9, {}))))


def test_a_layout_2_store_opens_upgrades_and_reads_the_same(tmp_path):
    path = _layout2(tmp_path)
    assert gen.query_file(path, "PRAGMA user_version") == [(2,)]
    stored = gen.query_file(path, "SELECT position, payload, hash FROM events ORDER BY position")
    with eventstore.open(path) as store:
        anchor = store.anchor()
        assert gen.query_file(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        # The graph projection's layout changed (ids as keys): it is stale until rebuilt. (Other
        # projections whose version moved since the fixture was written are stale too.)
        assert "graph" in [p.name for p in store.projection_status() if p.stale]
        with pytest.raises(ProjectionStale):
            store.sessions.load(SESSION)
        store.rebuild(["graph"])
        assert _node_ids(store) == NODES
        assert [n.node_id for n in store.sessions.load(SESSION).nodes] == [NODES[0], NODES[1], NODES[3]]
        assert store.sessions.load(SESSION).leaf_node_id == NODES[-1]
        assert store.verify(anchor).ok
        # The upgrade rewrote no row: the chain still covers the bytes layout 2 stored.
        assert gen.query_file(path, "SELECT position, payload, hash FROM events ORDER BY position") == stored
        assert all(b"\xd8U" not in p for _, p, _ in stored if p)
        new = str(uuid.uuid4())
        _commit(store, new, NODES[-1])
        assert _node_ids(store) == [*NODES, new]
        last = store.log.get(store.last_position())
        assert last.data.leaf_node_id == new
        assert store.verify(anchor).ok and store.verify().ok


def test_an_upgraded_store_reopens_rebuilds_and_round_trips_through_export_and_copy(tmp_path):
    path = _layout2(tmp_path)
    with eventstore.open(path, rebuild_stale=True) as store:
        new = str(uuid.uuid4())
        _commit(store, new, NODES[-1])
        before = [(e.position, e.stream, e.type, e.data) for e in store.read_all()]
        export_to_path(store, str(tmp_path / "dump.jsonl"))
        anchor = store.anchor()
    # Mixed rows: layout 2's string ids and layout 3's compact ones, in one chain.
    payloads = [p for (p,) in gen.query_file(path, "SELECT payload FROM events WHERE type = 'session.committed'")]
    assert sum(b"\xd8U" in p for p in payloads) == 1
    import_store(str(tmp_path / "dump.jsonl"), str(tmp_path / "imported.db"))
    with eventstore.open(str(tmp_path / "imported.db")) as copy:
        assert copy.anchor() == anchor
        assert [(e.position, e.stream, e.type, e.data) for e in copy.read_all()] == before
        assert _node_ids(copy) == [*NODES, new]
    with eventstore.open(path) as store, eventstore.open(str(tmp_path / "copied.db")) as dst:
        copy_store(store, dst)
        assert dst.anchor() == anchor and dst.verify(anchor).ok
        assert _node_ids(dst) == [*NODES, new]


def test_only_canonical_uuids_are_compacted_and_every_spelling_reads_back_exactly(tmp_path):
    canonical = str(uuid.uuid4())
    spellings = [canonical, canonical.upper(), canonical.replace("-", ""), "{" + canonical + "}",
                 canonical[:35] + "g", canonical[:8] + " " + canonical[9:], "x" * 36, "é" * 36,
                 "0123456789abcdef", canonical[:7] + "-" + canonical[7] + canonical[9:]]
    path = str(tmp_path / "s.db")
    with eventstore.open(path) as store:
        store.sessions.create(SESSION)
        parent = None
        for nid in dict.fromkeys(spellings):
            _commit(store, nid, parent)
            parent = nid
        assert _node_ids(store) == list(dict.fromkeys(spellings))
        for nid in spellings:
            assert store.sessions.load_node(SESSION, nid).node_id == nid
    rows = gen.query_file(path, "SELECT payload FROM events WHERE type = 'session.committed' ORDER BY position")
    compacted = [msgpack.unpackb(p, strict_map_key=False)["nodes"][0]["id"] for (p,) in rows]
    assert compacted[0] == msgpack.ExtType(ids.EXT_ID, uuid.UUID(canonical).bytes)
    assert compacted[1:] == list(dict.fromkeys(spellings))[1:]
    keys = gen.query_file(path, "SELECT node_id FROM graph_nodes ORDER BY seq")
    assert keys[0] == (uuid.UUID(canonical).bytes,)
    assert [ids.id_from_key(k) for (k,) in keys] == list(dict.fromkeys(spellings))


def test_other_extension_types_still_read_back_as_msgpack_ext_values():
    other = msgpack.ExtType(5, b"\x00" * 16)
    assert ids.ext_hook(5, b"\x00" * 16) == other
    assert ids.ext_hook(ids.EXT_ID, b"\x00" * 15) == msgpack.ExtType(ids.EXT_ID, b"\x00" * 15)
    assert ids.unpackb(msgpack.packb({"a": other})) == {"a": other}


schema = pytest.fixture(pg.scratch_schema, name="schema")


def test_postgres_stores_the_same_bytes_and_keys_the_node_index_by_bytea(tmp_path, schema):
    """An upgraded store (string ids of layout 2, compact ids of layout 3 in one chain)
    copied to PostgreSQL and back: the same rows, the anchor verifies, the node index holds
    the same 16-byte keys and every id reads back as written."""
    path = _layout2(tmp_path)
    with eventstore.open(path, rebuild_stale=True) as src:
        new = str(uuid.uuid4())
        _commit(src, new, NODES[-1])
        anchor = src.anchor()
        rows = src.db.query(ROWS)
        keys = src.db.query("SELECT node_id FROM graph_nodes ORDER BY seq")
        with eventstore.open(pg.url_for(schema)) as mid:
            copy_store(src, mid)
    with eventstore.open(pg.url_for(schema)) as mid:
        assert mid.db.query(ROWS) == rows and mid.verify(anchor).ok
        assert [(bytes(k),) for (k,) in mid.db.query("SELECT node_id FROM graph_nodes ORDER BY seq")] == keys
        assert _node_ids(mid) == [*NODES, new]
        assert mid.sessions.load_node(SESSION, new).node_id == new
        again = str(uuid.uuid4())
        _commit(mid, again, new)
        assert _node_ids(mid) == [*NODES, new, again]
        with eventstore.open(str(tmp_path / "back.db")) as back:
            copy_store(mid, back)
            assert back.verify(mid.anchor()).ok and _node_ids(back) == [*NODES, new, again]


_IDS = st.text(max_size=40) | st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | \
    st.binary(min_size=16, max_size=16).map(lambda b: b.hex()[:16])


@settings(max_examples=200, deadline=None)
@given(_IDS, st.lists(_IDS, max_size=3), st.one_of(st.none(), _IDS))
def test_any_string_round_trips_exactly_through_a_payload_and_an_id_key(text, items, maybe):
    from eventstore import codec
    from eventstore.commits.events import NodesTombstoned, StoredNode

    node = StoredNode(text, maybe, None, None, text, {text: text})
    for value in (node, NodesTombstoned(text, tuple(items))):
        c = codec.class_codec(type(value))
        assert c.from_plain(codec.unpack(codec.pack(c.to_plain(value)))) == value
    assert ids.id_from_key(ids.id_key(text)) == text
    assert len(ids.id_key(text)) == 16 if ids.is_canonical_uuid(text) else len(ids.id_key(text)) != 16


def test_uuid_ids_inside_projection_blobs_read_back_too(tmp_path):
    """Agent frames (kept packed in the graph head) with uuid ids, a uuid current frame and
    a uuid parent session: the head, the loaded session and the log all give them back."""
    from eventstore.commits import AgentFrame

    frame, parent = str(uuid.uuid4()), str(uuid.uuid4())
    frames = (AgentFrame(frame, SESSION, previous_frame_id=parent, caused_by=frame.upper()),)
    with eventstore.open(str(tmp_path / "s.db")) as store:
        store.sessions.create(SESSION)
        fence = store.leases.claim(SESSION, LeaseOwner("fixture", "i1"), 3_600_000).lease.fence
        node = SessionNode(NODES[0], EventPayload({"frame": frame}), None, agent_frame_id=frame,
                           timestamp="2026-03-02T09:00:00.000Z")
        store.sessions.commit(RuntimeCommit(SESSION, fence, GraphAppend((node,), NODES[0]), agent_frames=frames,
                                            current_agent_frame_id=frame, config=ModelConfig("a", "b")))
        loaded = store.sessions.load(SESSION)
        assert loaded.agent_frames == frames and loaded.current_agent_frame_id == frame
        assert loaded.nodes[0].agent_frame_id == frame and loaded.nodes[0].payload.event == {"frame": frame}
        assert [e.data for e in store.read_all(types=["session.committed"])][0].details.head.frames == frames


def test_an_idempotent_retry_across_the_upgrade_with_a_uuid_in_it_is_a_conflict(tmp_path, monkeypatch):
    """The key's digest covers the payload as stored: the same event, first encoded as layout
    2 did (the uuid as a string) and retried by layout 3 code, is refused, not replayed."""
    note = gen.NoteAdded(str(uuid.uuid4()))
    with gen.open_store(str(tmp_path / "s.db")) as store:
        with monkeypatch.context() as m:
            m.setattr(ids, "_uuid_bytes", lambda v: None)  # what layout 2 wrote: no compact ids
            ids.compacted.clear()
            first = store.append("a", [note], idempotency_key="k")
        ids.compacted.clear()
        with pytest.raises(eventstore.IdempotencyConflict):
            store.append("a", [note], idempotency_key="k")
        assert store.get(first.first_position).data == note
        again = store.append("b", [note], idempotency_key="k")  # written now: replays exactly
        assert store.append("b", [note], idempotency_key="k").replayed and not again.replayed
