"""Time travel from cached snapshots equals a replay from the start, whatever happened
to the cache or the log since the snapshots were written."""

from __future__ import annotations

import os
import stat

import attrs
import pytest

import eventstore
from eventstore.storage.sqlite import Database
from eventstore.errors import InvalidArgument
from eventstore.debug.timetravel import cache_dir_of, clear_cache, view_at
from projections.base import REGISTRY as PROJECTIONS
from projections.engine import _compare
from tests import debug_store


def assert_same(store: eventstore.Store, position: int, streams=None, **kw) -> None:
    """view_at(position) holds exactly what store.at(position) holds, in every table."""
    with store.at(position, streams) as plain, view_at(store, position, streams, **kw) as fast:
        assert fast.position == position
        for p in store.engine.projections:
            for table in (*p.tables, "projection_state"):
                diff = _compare(plain.db, fast.db, table)
                assert diff is None, f"position {position} table {table}: at() {diff[0]!r}, view_at() {diff[1]!r}"


@pytest.fixture
def three(tmp_path):
    """Three sessions of three turns each (75 events), with its clock."""
    path = str(tmp_path / "three.db")
    clock = debug_store.session_store(path, sessions=("s1", "s2", "s3"))
    store = eventstore.open(path, clock=clock)
    yield store
    store.close()


def _snapshots(store: eventstore.Store) -> list[str]:
    d = cache_dir_of(store)
    return sorted(n for n in os.listdir(d) if n.endswith(".db")) if os.path.isdir(d) else []


def test_views_from_snapshots_equal_replays_at_every_position(three):
    last = three.last_position()
    view_at(three, last, ["session:s2"], every=4).close()      # writes a snapshot every 4 events of s2
    view_at(three, last, every=10).close()                     # and every 10 of the whole log
    assert len(_snapshots(three)) == 6 + 7
    for position in range(last + 1):
        assert_same(three, position, ["session:s2"], every=4)
        assert_same(three, position, every=10)


def test_snapshots_are_private_files_in_a_private_directory(three):
    view_at(three, None, every=10).close()
    d = cache_dir_of(three)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    names = _snapshots(three)
    assert names and all(stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode) == 0o600 for n in names)
    assert clear_cache(three) == len(names) and _snapshots(three) == []


def test_a_purge_after_a_snapshot_is_not_hidden_by_it(three):
    view_at(three, None, every=5).close()
    old = three.last_position()
    three.sessions.delete("s1")
    three.sessions.purge("s1")
    for position in (5, 20, old):
        assert_same(three, position, every=5)


def _fingerprints(store: eventstore.Store) -> set[str]:
    out = set()
    for name in _snapshots(store):
        db = Database(os.path.join(cache_dir_of(store), name), scratch=True)
        try:
            out.add(db.scalar("SELECT value FROM timetravel_snapshot_meta WHERE key = 'fingerprint'"))
        finally:
            db.close()
    return out


def test_a_projection_version_change_retires_old_snapshots(three, tmp_path):
    view_at(three, None, every=10).close()
    assert all("leases:1," in f for f in _fingerprints(three))
    path, clock = three.path, three.clock
    three.close()
    bumped = [attrs.evolve(p, version=p.version + 1) if p.name == "leases" else p for p in PROJECTIONS.all()]
    with eventstore.open(path, clock=clock, projections=bumped) as store:
        store.rebuild(["leases"])
        for position in (15, 40, 75):
            assert_same(store, position, every=10)
        view_at(store, None, every=10).close()
        prints = _fingerprints(store)
    assert prints and all("leases:2," in f for f in prints)


def test_a_damaged_snapshot_is_removed_and_the_view_stays_exact(three):
    view_at(three, None, every=10).close()
    d = cache_dir_of(three)
    victim = os.path.join(d, _snapshots(three)[-1])
    with open(victim, "wb") as fh:
        fh.write(b"not a database at all" * 100)
    assert_same(three, three.last_position(), every=10)
    with open(victim, "rb") as fh:
        assert fh.read(6) == b"SQLite"  # rewritten on the way


def test_an_unwritable_cache_only_costs_speed(three, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_same(three, 40, cache_dir=str(blocker / "cache"), every=5)


def test_bad_positions_are_refused(three):
    for bad in (-1, True, "3", three.last_position() + 1):
        with pytest.raises(InvalidArgument):
            view_at(three, bad)
    with pytest.raises(InvalidArgument, match="every"):
        view_at(three, 1, every=0)
    with pytest.raises(InvalidArgument, match="streams"):
        view_at(three, 1, "session:s1")


def test_a_long_filter_gets_a_bounded_number_of_snapshots(three):
    from eventstore.debug.timetravel import MAX_PER_FILTER

    view_at(three, None, every=1).close()  # 75 events: the interval doubles to 2
    names = _snapshots(three)
    assert 0 < len(names) <= MAX_PER_FILTER
    assert all(int(n.rsplit("-", 1)[1][:-3]) % 2 == 0 for n in names)
    for position in (1, 2, 37, 75):
        assert_same(three, position, every=1)


def _eager(store: eventstore.Store, position: int, streams=None):
    return store.engine.replay(position, streams)  # every projection at once, as before lazy views


@pytest.mark.parametrize("streams", [None, ["session:s2"], ["session:s1", "session:s3"]])
def test_a_lazy_view_equals_an_eager_replay_in_every_table(three, streams):
    last = three.last_position()
    projections = list(three.engine.projections)
    for position in range(0, last + 1, 3):
        eager = _eager(three, position, streams)
        try:
            # Projection by projection (each in turn replayed on its first statement), in
            # an order that changes with the position, then projection_state.
            with three.at(position, streams) as lazy:
                order = projections[position % len(projections):] + projections[:position % len(projections)]
                for p in order:
                    assert p.name in lazy.db.pending
                    for table in p.tables:
                        diff = _compare(eager, lazy.db, table)
                        assert diff is None, f"position {position} {table}: eager {diff[0]!r}, lazy {diff[1]!r}"
                    assert p.name not in lazy.db.pending
                assert _compare(eager, lazy.db, "projection_state") is None
            # All at once, through projection_state.
            with three.at(position, streams) as lazy:
                assert _compare(eager, lazy.db, "projection_state") is None
                assert lazy.db.pending == ()
                for p in projections:
                    for table in p.tables:
                        assert _compare(eager, lazy.db, table) is None
        finally:
            eager.close()


def test_a_view_replays_only_the_projections_it_reads(three):
    with three.at(three.last_position(), ["session:s1"]) as view:
        assert set(view.db.pending) == {p.name for p in three.engine.projections}
        assert view.sessions.get("s1") is not None
        assert "sessions" not in view.db.pending
        assert "queue" in view.db.pending and "graph" in view.db.pending
        view.sessions.load("s1")
        assert "graph" not in view.db.pending and "queue" in view.db.pending
        view.queue.list("s1")
        assert "queue" not in view.db.pending
        # Anything that may look at every table (here: the list of tables) replays the rest.
        tables = view.db.table_names()
        assert view.db.pending == ()
        assert {t for p in three.engine.projections for t in p.tables} <= tables


def test_a_statement_naming_a_table_in_any_case_replays_its_projection(three):
    with three.at(three.last_position()) as view, _eager_view(three) as eager:
        rows = view.db.query("select * from GRAPH_HEADS order by 1")
        assert rows == eager.query("SELECT * FROM graph_heads ORDER BY 1") and rows
        assert "graph" not in view.db.pending


class _eager_view:
    def __init__(self, store):
        self.db = _eager(store, store.last_position())

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()
