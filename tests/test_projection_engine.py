"""The projection engine: inline == rebuild == time travel at every step, atomic rebuild
under concurrent writers, staleness, catching up, verification, and rebuilding a log
with event types the code does not know."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import eventstore
from eventstore import ManualClock
from projections import ALL_EVENTS
from projections.base import Projection
from projections.catalogue import StreamInfo, catalogue
from tests import strategies as gen
from eventstore.testing.helpers import assert_consistent

# --- a second projection with per-type appliers (the catalogue has a batch applier) -------------

totals = Projection(
    name="test_totals",
    version=1,
    tables=("test_totals_counters", "test_totals_notes"),
    ddl=(
        "CREATE TABLE IF NOT EXISTS test_totals_counters (counter TEXT PRIMARY KEY, total INTEGER NOT NULL, "
        "changes INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS test_totals_notes (stream TEXT PRIMARY KEY, notes INTEGER NOT NULL, "
        "last_text TEXT NOT NULL)",
    ),
)


@totals.on("test.counter_changed")
def _counter(db, ev) -> None:
    db.execute("INSERT INTO test_totals_counters VALUES (?, ?, 1) ON CONFLICT (counter) DO UPDATE SET "
               "total = total + excluded.total, changes = changes + 1", (ev.data.counter, ev.data.delta))


@totals.on("test.note_added")
def _note(db, ev) -> None:
    db.execute("INSERT INTO test_totals_notes VALUES (?, 1, ?) ON CONFLICT (stream) DO UPDATE SET "
               "notes = notes + 1, last_text = excluded.last_text", (ev.stream, ev.data.text))


PROJECTIONS = [catalogue, totals]


def _open(path: str, **kw) -> eventstore.Store:
    kw.setdefault("projections", PROJECTIONS)
    return gen.open_store(path, **kw)


@attrs.frozen
class Recorded:
    """What the model remembers of one appended event."""

    position: int
    stream: str
    version: int
    recorded_at_ms: int
    data: object


def model_catalogue(events: list[Recorded]) -> list[StreamInfo]:
    """The stream catalogue, computed from scratch by a pure function of the events."""
    per: dict[str, list[Recorded]] = {}
    for e in events:
        per.setdefault(e.stream, []).append(e)
    return [StreamInfo(s, evs[-1].version, len(evs), evs[0].position, evs[-1].position,
                       evs[0].recorded_at_ms, evs[-1].recorded_at_ms) for s, evs in sorted(per.items())]


def model_totals(events: list[Recorded]) -> tuple[list[tuple], list[tuple]]:
    counters: dict[str, list[int]] = {}
    notes: dict[str, list] = {}
    for e in events:
        if isinstance(e.data, gen.CounterChanged):
            c = counters.setdefault(e.data.counter, [0, 0])
            c[0] += e.data.delta
            c[1] += 1
        elif isinstance(e.data, gen.NoteAdded):
            n = notes.setdefault(e.stream, [0, ""])
            n[0] += 1
            n[1] = e.data.text
    return (sorted((k, *v) for k, v in counters.items()), sorted((k, *v) for k, v in notes.items()))


def read_totals(db) -> tuple[list[tuple], list[tuple]]:
    return (db.query("SELECT * FROM test_totals_counters ORDER BY counter"),
            db.query("SELECT * FROM test_totals_notes ORDER BY stream"))


# --- the state machine ----------------------------------------------------------------------------

STREAMS = st.sampled_from(["session:a", "session:b", "process:1", "trigger:x", "effect:é", "test:9"])
EVENTS = st.lists(gen.small_events(), min_size=1, max_size=4)


class LiveRebuildTimeTravel(RuleBasedStateMachine):
    """Appends (from two handles, in transactions, refused and rolled back), rebuilds,
    reopens and time travel; after every step live == rebuild == replay == model."""

    @initialize()
    def open_store(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="engine-machine-")
        self.path = os.path.join(self.dir, "s.db")
        self.clock = ManualClock()
        self.store = _open(self.path, clock=self.clock)
        self.other = _open(self.path, clock=self.clock)
        self.model: list[Recorded] = []

    def _version(self, stream: str) -> int:
        return sum(1 for e in self.model if e.stream == stream)

    def _record(self, stream: str, events: list, result: eventstore.AppendResult) -> None:
        base = self._version(stream)
        for i, (event, position) in enumerate(zip(events, result.positions)):
            self.model.append(Recorded(position, stream, base + i + 1, self.clock(), event))

    @rule(stream=STREAMS, events=EVENTS, second_handle=st.booleans(), ms=st.integers(0, 10_000))
    def append(self, stream, events, second_handle, ms):
        self.clock.advance(ms)
        handle = self.other if second_handle else self.store
        result = handle.append(stream, events, expected_version=self._version(stream))
        assert result.first_position == len(self.model) + 1
        self._record(stream, events, result)

    @rule(a=STREAMS, b=STREAMS, events=EVENTS)
    def append_to_two_streams_in_one_transaction(self, a, b, events):
        with self.store.transaction():
            first = self.store.append(a, events)
            self._record(a, events, first)
            second = self.store.append(b, events[:1])
            self._record(b, events[:1], second)

    @rule(stream=STREAMS, events=EVENTS, off=st.sampled_from([-1, 1, 5]))
    def refused_append(self, stream, events, off):
        expected = self._version(stream) + off
        if expected < 0:
            expected = eventstore.STREAM_EXISTS
        with pytest.raises(eventstore.WrongExpectedVersion):
            self.other.append(stream, events, expected_version=expected)

    @rule(stream=STREAMS, events=EVENTS)
    def rolled_back_transaction(self, stream, events):
        with pytest.raises(ZeroDivisionError):
            with self.store.transaction():
                self.store.append(stream, events)
                1 / 0

    @rule(names=st.sampled_from([None, ["catalogue"], ["test_totals"]]), second_handle=st.booleans())
    def rebuild(self, names, second_handle):
        report = (self.other if second_handle else self.store).rebuild(names)
        assert report.position == len(self.model) and report.events == len(self.model)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def time_travel(self, data):
        position = data.draw(st.integers(0, len(self.model)))
        before = [e for e in self.model if e.position <= position]
        with self.store.at(position) as view:
            assert view.streams() == model_catalogue(before)
            assert read_totals(view.db) == model_totals(before)
        stream = data.draw(STREAMS)
        with self.store.at(position, streams=[stream]) as view:
            assert view.streams() == model_catalogue([e for e in before if e.stream == stream])

    @rule()
    def reopen(self):
        self.store.close()
        self.store = _open(self.path, clock=self.clock)

    @invariant()
    def live_equals_rebuild_equals_replay_equals_model(self):
        assert_consistent(self.store)
        assert self.store.streams() == model_catalogue(self.model)
        assert self.other.streams() == model_catalogue(self.model)
        assert read_totals(self.store.db) == model_totals(self.model)

    def teardown(self):
        if hasattr(self, "store"):
            self.store.close()
            self.other.close()
            shutil.rmtree(self.dir, ignore_errors=True)


LiveRebuildTimeTravel.TestCase.settings = settings(max_examples=12, stateful_step_count=12)
test_live_projections_equal_rebuild_and_time_travel_after_every_step = LiveRebuildTimeTravel.TestCase


# --- rebuild under concurrent writers -----------------------------------------------------------


def test_events_appended_by_another_handle_during_a_rebuild_are_in_its_result(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path) as store, _open(path) as writer:
        for i in range(3):
            store.append(f"s:{i}", [gen.CounterChanged("c", 1) for _ in range(100)])
        appended = []

        def progress(done: int, total: int) -> None:
            if not appended:  # first call: the scan is done, the write lock not yet taken
                writer.append("late", [gen.NoteAdded("during"), gen.CounterChanged("c", 1000)])
                appended.append(done)

        report = store.rebuild(progress=progress)
        assert appended == [300]
        assert report.position == 302 and report.events == 302
        assert store.stream_info("late").event_count == 2
        assert read_totals(store.db)[0] == [("c", 1300, 301)]
        assert store.verify_projections().ok and writer.verify_projections().ok


def test_rebuild_while_another_thread_keeps_appending_loses_nothing(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path) as store:
        with store.transaction():
            for i in range(20):
                store.append(f"bulk:{i}", [gen.CounterChanged("bulk", 1) for _ in range(1000)])
    stop = threading.Event()
    errors: list[BaseException] = []
    count = [0]

    def write() -> None:
        try:
            with _open(path) as w:
                while not stop.is_set() and count[0] < 2000:
                    w.append("live", [gen.CounterChanged("live", 1)])
                    count[0] += 1
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    with _open(path) as store:
        writer.start()
        try:
            for _ in range(2):
                store.rebuild()
        finally:
            stop.set()
            writer.join(timeout=60)
        assert not errors and not writer.is_alive()
        assert store.stream_info("live").event_count == count[0]
        assert read_totals(store.db)[0] == [("bulk", 20_000, 20_000), ("live", count[0], count[0])]
        assert store.verify_projections().ok


def test_a_reader_sees_the_old_or_the_new_tables_never_a_mixture(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path) as store, _open(path) as reader:
        for i in range(6):
            store.append(f"s:{i % 3}", [gen.NoteAdded(str(i))])
        gen.edit_file(path, "UPDATE catalogue_streams SET event_count = 99")  # every row wrong
        with reader.read_transaction():
            old = reader.streams()
            assert {s.event_count for s in old} == {99}
            store.rebuild(["catalogue"])
            assert reader.streams() == old  # its snapshot still holds the old tables, whole
        assert {s.event_count for s in reader.streams()} == {2}


# --- staleness ------------------------------------------------------------------------------------

catalogue_v2 = attrs.evolve(catalogue, version=2)


def _seed(path: str, n: int = 5) -> None:
    with _open(path) as store:
        for i in range(n):
            store.append(f"s:{i % 2}", [gen.NoteAdded(str(i))])


def test_projection_with_a_changed_version_is_stale_until_rebuilt(tmp_path):
    path = str(tmp_path / "s.db")
    _seed(path)
    with _open(path, projections=[catalogue_v2, totals]) as store:
        with pytest.raises(eventstore.ProjectionStale) as info:
            store.streams()
        assert (info.value.name, info.value.stored, info.value.code) == ("catalogue", 1, 2)
        assert "rebuild" in str(info.value)
        with pytest.raises(eventstore.ProjectionStale):
            store.stream_info("s:0")
        status = {s.name: s for s in store.projection_status()}
        assert status["catalogue"].stale and not status["test_totals"].stale
        store.append("s:0", [gen.NoteAdded("while stale")])  # appends still work
        report = store.rebuild(["catalogue"])
        assert report.projections == ("catalogue",)
        assert store.stream_info("s:0").event_count == 4
        assert {s.name: (s.stored_version, s.stale) for s in store.projection_status()}["catalogue"] == (2, False)
        assert store.verify_projections().ok
    with _open(path, projections=[catalogue_v2, totals]) as store:  # the new version sticks
        assert store.stream_info("s:0").event_count == 4


def test_open_with_rebuild_stale_rebuilds_while_opening(tmp_path):
    path = str(tmp_path / "s.db")
    _seed(path)
    with _open(path, projections=[catalogue_v2, totals], rebuild_stale=True) as store:
        assert [s.event_count for s in store.streams()] == [3, 2]
        assert not any(s.stale for s in store.projection_status())


def test_projection_added_to_a_store_with_events_starts_stale(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path, projections=[catalogue]) as store:
        store.append("s", [gen.CounterChanged("c", 5), gen.CounterChanged("c", 6)])
    with _open(path) as store:
        with pytest.raises(eventstore.ProjectionStale) as info:
            store.require_fresh("test_totals")
        assert info.value.stored == 0
        store.rebuild(["test_totals"])
        store.require_fresh("test_totals")
        assert read_totals(store.db)[0] == [("c", 11, 2)]
        assert_consistent(store)


def test_projection_added_to_an_empty_store_is_live_at_once(tmp_path):
    path = str(tmp_path / "s.db")
    _open(path, projections=[catalogue]).close()
    with _open(path) as store:
        store.require_fresh("test_totals")
        store.append("s", [gen.CounterChanged("c", 1)])
        assert read_totals(store.db)[0] == [("c", 1, 1)]


def test_projection_left_behind_by_a_writer_that_found_it_stale_is_caught_up_on_open(tmp_path):
    path = str(tmp_path / "s.db")
    _seed(path)
    with _open(path, projections=[catalogue_v2, totals]) as newer:  # considers catalogue v1 stale
        for i in range(3):
            newer.append("from-newer", [gen.NoteAdded(str(i))])
        state = gen.query_file(path, "SELECT version, position FROM projection_state WHERE name = 'catalogue'")
        assert state == [(1, 5)]  # pinned where it stopped, in the same transaction as the append
    with _open(path) as older:  # code at version 1 again: catches up from position 5 while opening
        assert older.stream_info("from-newer").event_count == 3
        assert {s.name: s.position for s in older.projection_status()}["catalogue"] == 8
        assert_consistent(older)


def test_view_is_read_only_and_positions_are_checked(tmp_path):
    path = str(tmp_path / "s.db")
    _seed(path, 3)
    with _open(path) as store:
        with store.at(2) as view:
            assert view.readonly and [s.event_count for s in view.streams()] == [1, 1]
            with pytest.raises(eventstore.ReadOnlyView, match="position 2"):
                view.require_writable("test.command")
        for bad in (-1, 4, "2", True):
            with pytest.raises(eventstore.InvalidArgument, match="position"):
                store.at(bad)


# --- verification -----------------------------------------------------------------------------------

CORRUPTIONS = {
    "changed count": ("UPDATE catalogue_streams SET event_count = 7 WHERE stream = 's:1'",
                      ("s:1", 7), ("s:1", 2)),
    "deleted row": ("DELETE FROM catalogue_streams WHERE stream = 's:0'", ("s:1", 2), ("s:0", 3)),
    "extra row": ("INSERT INTO catalogue_streams VALUES ('s:00', 1, 1, 1, 1, 0, 0)", ("s:00", 1), ("s:1", 2)),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_verify_projections_reports_the_first_difference_with_a_hand_edited_row(tmp_path, case):
    path = str(tmp_path / "s.db")
    _seed(path)
    sql, live, rebuilt = CORRUPTIONS[case]
    with _open(path) as store:
        assert store.verify_projections().ok
        gen.edit_file(path, sql)
        report = store.verify_projections()
        assert not report.ok and report.position == 5
        d = report.difference
        assert (d.projection, d.table) == ("catalogue", "catalogue_streams")
        assert (d.live_row[0], d.live_row[2]) == live
        assert (d.rebuilt_row[0], d.rebuilt_row[2]) == rebuilt
        assert "catalogue_streams" in str(report)
        store.rebuild(["catalogue"])
        assert store.verify_projections().ok


def test_verify_projections_compares_every_table_of_a_projection(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path) as store:
        store.append("s", [gen.NoteAdded("a"), gen.CounterChanged("c", 3)])
        gen.edit_file(path, "UPDATE test_totals_notes SET last_text = 'forged'")
        report = store.verify_projections(["test_totals"])
        assert report.checked == ("test_totals",)
        assert report.difference.table == "test_totals_notes"
        assert report.difference.live_row == ("s", 1, "forged")


def test_unknown_projection_name_is_a_typed_error(tmp_path):
    with _open(str(tmp_path / "s.db")) as store:
        with pytest.raises(eventstore.StoreError, match="nope"):
            store.rebuild(["nope"])
        with pytest.raises(eventstore.StoreError, match="nope"):
            store.verify_projections(["nope"])


# --- event types the code does not know ---------------------------------------------------------------

ALIENS = eventstore.EventRegistry()


@eventstore.event("test.alien", registry=ALIENS)
class Alien:
    secret: str


def test_header_only_projection_rebuilds_a_log_with_unknown_event_types(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path, registry=ALIENS, projections=[catalogue]) as store:
        store.append("alien", [Alien("x"), Alien("y")])
    with _open(path, projections=[catalogue]) as store:  # gen.EVENTS has no test.alien
        store.append("known", [gen.NoteAdded("n")])
        assert store.rebuild().events == 3
        assert [(s.stream, s.event_count) for s in store.streams()] == [("alien", 2), ("known", 1)]
        assert_consistent(store)
        with pytest.raises(eventstore.UnknownEventType):
            list(store.read_all())

    everything = Projection(name="test_everything", version=1, tables=("test_everything_rows",),
                            ddl=("CREATE TABLE IF NOT EXISTS test_everything_rows (position INTEGER PRIMARY KEY)",))

    @everything.on(ALL_EVENTS)
    def _all(db, ev):
        db.execute("INSERT INTO test_everything_rows VALUES (?)", (ev.position,))

    with _open(path, projections=[catalogue, everything]) as store:  # needs data: must refuse, typed
        with pytest.raises(eventstore.UnknownEventType) as info:
            store.rebuild(["test_everything"])
        assert info.value.position == 1


# --- handles running different code on one file (a rolling upgrade) -------------------------------


def test_projection_unknown_to_a_writers_code_is_caught_up_by_code_that_knows_it(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path) as store:
        store.append("s", [gen.CounterChanged("c", 1)])
    with _open(path, projections=[catalogue]) as older:  # code from before test_totals existed
        older.append("s", [gen.CounterChanged("c", 10)])
    with _open(path) as store:
        assert read_totals(store.db)[0] == [("c", 11, 2)]
        assert_consistent(store)


def test_projection_unknown_to_a_writer_opened_before_it_was_created_is_caught_up(tmp_path):
    path = str(tmp_path / "s.db")
    with _open(path, projections=[catalogue]) as older:
        with _open(path) as newer:  # creates test_totals while the older handle is open
            newer.append("s", [gen.CounterChanged("c", 1)])
            older.append("s", [gen.CounterChanged("c", 10)])
            newer.append("s", [gen.CounterChanged("c", 100)])
    with _open(path) as store:
        assert read_totals(store.db)[0] == [("c", 111, 3)]
        assert_consistent(store)


def test_live_writer_next_to_a_writer_that_found_the_projection_stale_never_double_counts(tmp_path):
    path = str(tmp_path / "s.db")
    _seed(path)
    with _open(path) as live, _open(path, projections=[catalogue_v2, totals]) as newer:
        newer.append("n", [gen.NoteAdded("skipped by newer")])  # pins catalogue at 5
        live.append("l", [gen.NoteAdded("applied by live")])
        assert live.stream_info("n").event_count == 1  # live caught up before applying its own
        newer.append("n", [gen.NoteAdded("again")])  # pins it again, at 7
        live.append("l", [gen.NoteAdded("and again")])  # catches up 8, applies 9
        assert_consistent(live)
        newer.append("n", [gen.NoteAdded("last")])
    with _open(path) as store:
        assert [(s.stream, s.event_count) for s in store.streams()] == [("l", 2), ("n", 3), ("s:0", 3), ("s:1", 2)]
        assert_consistent(store)


def test_rebuild_removes_scratch_files_abandoned_by_dead_processes_only(tmp_path):
    import subprocess
    import sys

    path = str(tmp_path / "s.db")
    with gen.open_store(path) as store:
        store.append("s", [gen.NoteAdded("x")])
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        dead_pid = int(dead.stdout)
        files = {
            "dead": f"{path}.rebuild-{dead_pid}-1.tmp",
            "dead_wal": f"{path}.verify-{dead_pid}-2.tmp-wal",
            "dead_verify": f"{path}.verify-{dead_pid}-2.tmp",
            "live": f"{path}.rebuild-{os.getppid()}-3.tmp",
            "own": f"{path}.verify-{os.getpid()}-4.tmp",
            "unrelated": f"{path}.rebuild-notes.txt",
            "other_store": str(tmp_path / f"t.db.rebuild-{dead_pid}-5.tmp"),
        }
        for f in files.values():
            with open(f, "wb") as fh:
                fh.write(b"scratch")
        store.rebuild()
        left = {k for k, f in files.items() if os.path.exists(f)}
        assert left == {"live", "own", "unrelated", "other_store"}
        assert store.verify_projections().ok
