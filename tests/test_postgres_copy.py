"""`eventstore copy SRC DST` between backends: SQLite -> PostgreSQL -> SQLite keeps every
position, payload byte, flag and hash, and an anchor taken on the source verifies on the
destination. Uses the PostgreSQL test server; fails, never skips, without it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import eventstore
from eventstore.copy import copy_store
from tests import postgres_support as pg
from tests import strategies as gen

_ROWS = ("SELECT position, stream, version, type, schema, recorded_at_ms, flags, payload, hash "
         "FROM events ORDER BY position")


schema = pytest.fixture(pg.scratch_schema, name="schema")


def _fill(store: eventstore.Store) -> eventstore.Anchor:
    """A log with compressed and plain payloads, a multi-append command, a purged stream,
    an idempotency key and a blob."""
    store.append("a", [gen.NoteAdded("x" * 6000)], idempotency_key="k1")
    with store.transaction():
        store.append("b", [gen.CounterChanged("c", 1), gen.NoteAdded("é")])
        store.append("a", [gen.NoteAdded("y")])
    store.append("gone", [gen.NoteAdded("secret")])
    with store.transaction():
        store.log.purge_payloads("gone")
    store.blobs.put(b"blob bytes " * 50)
    return store.anchor()


def test_sqlite_to_postgres_to_sqlite_preserves_every_row_and_the_anchor_verifies(tmp_path, schema):
    """Rows are byte-identical on all three stores; the source's anchor verifies on each copy;
    command spans, idempotency replays, purged digests and blobs carry over."""
    first, url, last = str(tmp_path / "a.db"), pg.url_for(schema), str(tmp_path / "c.db")
    with gen.open_store(first) as src:
        anchor = _fill(src)
        rows = src.db.query(_ROWS)
        ref = src.blobs.put(b"blob bytes " * 50)
        with gen.open_store(url) as mid:
            report = copy_store(src, mid)
            assert (report.events, report.anchor, report.purged, report.keys, report.blobs) == (5, anchor, 1, 1, 1)
    with gen.open_store(url) as mid:
        assert mid.db.query(_ROWS) == rows
        assert mid.verify(anchor).ok and mid.command_span(3) == (2, 4)
        assert mid.stream_info("a").event_count == 2 and mid.verify_projections().ok
        assert mid.get(5).data is None  # still purged
        assert mid.blobs.get(ref) == b"blob bytes " * 50
        assert mid.append("a", [gen.NoteAdded("x" * 6000)], idempotency_key="k1").replayed
        mid.append("after", [gen.NoteAdded("on postgres")])
        later = mid.anchor()
        with gen.open_store(last) as dst:
            copy_store(mid, dst)
            assert dst.db.query(_ROWS) == mid.db.query(_ROWS)
            assert dst.verify(anchor).ok and dst.verify(later).ok and dst.verify_projections().ok


def test_a_destination_holding_events_is_refused_and_left_unchanged(tmp_path, schema):
    """copy never merges logs: a non-empty destination is a StoreError and keeps its events."""
    with gen.open_store(str(tmp_path / "a.db")) as src, gen.open_store(pg.url_for(schema)) as dst:
        src.append("s", [gen.NoteAdded("src")])
        dst.append("s", [gen.NoteAdded("already here")])
        before = dst.anchor()
        with pytest.raises(eventstore.StoreError, match="new, empty store"):
            copy_store(src, dst)
        assert dst.anchor() == before and dst.last_position() == 1


def test_cli_copy_prints_the_verified_anchor_and_refuses_in_one_line(tmp_path, schema):
    """`eventstore copy` exits 0 with the anchor it verified; a second copy into the same
    destination is one line on stderr with exit status 2."""
    path = str(tmp_path / "a.db")
    with eventstore.open(path) as src:
        src.sessions.create("s1")
        src.sessions.create("s2")
        anchor = src.anchor()
    url = pg.url_for(schema)
    cmd = [sys.executable, "-c", "import sys; from eventstore.cli import main; sys.exit(main())",
           "copy", path, url, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["anchor"] == str(anchor)
    with eventstore.open(url) as dst:
        assert dst.anchor() == anchor and dst.verify(anchor).ok
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stdout == ""
    assert len(again.stderr.strip().splitlines()) == 1 and "new, empty store" in again.stderr
