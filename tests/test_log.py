"""The event log: appends, reads, expected versions, idempotency, ordering, paging,
transactions, the head cache across handles, follow(), and blobs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

import attrs
import pytest
from typing import Any
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from tests import strategies as gen
from eventstore import codec

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)


def _expected_streams(batches: list[gen.Append]) -> dict[str, list]:
    per: dict[str, list] = {}
    for b in batches:
        per.setdefault(b.stream, []).extend(b.events)
    return per


# --- append and read round trip ----------------------------------------------------------


@given(gen.append_batches(event_strategy=gen.events(), max_appends=12))
def test_appended_events_read_back_identically_by_stream_position_and_filter(batches):
    with gen.open_store(":memory:") as store:
        flat = []
        for b in batches:
            r = store.append(b.stream, list(b.events))
            assert r.first_position == len(flat) + 1 and r.last_position == len(flat) + len(b.events)
            flat.extend((b.stream, e) for e in b.events)
            assert r.stream_version == store.stream_version(b.stream) and not r.replayed
        everything = list(store.read_all())
        assert [(e.stream, e.data) for e in everything] == flat
        assert [e.position for e in everything] == list(range(1, len(flat) + 1))
        assert [e.type for e in everything] == [gen.EVENTS.for_class(type(d)).name for _s, d in flat]
        for stream, events in _expected_streams(batches).items():
            read = list(store.read_stream(stream))
            assert [e.data for e in read] == events
            assert [e.version for e in read] == list(range(1, len(events) + 1))
            assert [e.data for e in store.read_stream(stream, 2)] == events[1:]
            assert [e.data for e in store.read_stream(stream, to_version=1)] == events[:1]
            assert [e.data for e in store.read_all(streams=[stream])] == events
        for e in everything:
            assert store.get(e.position) == e
        assert store.get(len(flat) + 1) is None
        half = len(flat) // 2
        assert list(store.read_all(to_position=half)) == everything[:half]
        assert list(store.read_all(half + 1)) == everything[half:]
        for type_name in {e.type for e in everything}:
            assert list(store.read_all(types=[type_name])) == [e for e in everything if e.type == type_name]
        some = sorted({s for s, _ in flat})[:2]
        assert list(store.read_all(streams=some, types=["test.note_added"])) == [
            e for e in everything if e.stream in some and e.type == "test.note_added"
        ]
        assert store.last_position() == len(flat)


@given(gen.any_stream_names())
def test_any_valid_stream_name_round_trips(stream):
    with gen.open_store(":memory:") as store:
        store.append(stream, [gen.NoteAdded("x")], expected_version=eventstore.NO_STREAM)
        assert [e.stream for e in store.read_stream(stream)] == [stream]
        assert store.stream_info(stream).event_count == 1


@pytest.mark.parametrize("stream", ["", "a\x00b", "x" * 513, "é" * 257, 5, None, b"bytes"])
def test_invalid_stream_name_is_refused_and_nothing_written(stream):
    with gen.open_store(":memory:") as store:
        with pytest.raises(eventstore.InvalidArgument, match="stream"):
            store.append(stream, [gen.NoteAdded("x")])
        assert store.last_position() == 0


def test_recorded_time_comes_from_the_injected_clock_or_now_ms(clock):
    with gen.open_store(":memory:", clock=clock) as store:
        store.append("s", [gen.NoteAdded("a")])
        clock.advance(1500)
        store.append("s", [gen.NoteAdded("b")])
        store.append("s", [gen.NoteAdded("c")], now_ms=42)
        assert [e.recorded_at_ms for e in store.read_all()] == [1_700_000_000_000, 1_700_000_001_500, 42]
        with pytest.raises(eventstore.InvalidArgument, match="now_ms"):
            store.append("s", [gen.NoteAdded("d")], now_ms=1.5)
        assert store.last_position() == 3


BAD_READS = {
    "from0": lambda s: s.read_all(0),
    "from-1": lambda s: s.read_all(-1),
    "from-str": lambda s: s.read_all("1"),
    "from-bool": lambda s: s.read_all(True),
    "version0": lambda s: s.read_stream("s", 0),
    "to-1": lambda s: s.read_all(to_position=-1),
    "to-version-str": lambda s: s.read_stream("s", to_version="2"),
    "follow0": lambda s: s.follow(0),
    "page0": lambda s: s.read_all(page_size=0),
    "page-1": lambda s: s.read_all(page_size=-1),
    "stream-page0": lambda s: s.read_stream("s", page_size=0),
    "types-str": lambda s: s.read_all(types="test.note_added"),
    "streams-str": lambda s: s.read_all(streams="s"),
    "at-streams-str": lambda s: s.at(1, streams="s"),
}


@pytest.mark.parametrize("call", list(BAD_READS.values()), ids=list(BAD_READS))
def test_invalid_read_arguments_are_refused_not_looped_on_or_misread(call):
    with gen.open_store(":memory:") as store:
        store.append("s", [gen.NoteAdded("x")])
        with pytest.raises(eventstore.InvalidArgument):
            result = call(store)
            next(iter(result))


# --- expected versions -------------------------------------------------------------------

NO, EXISTS, ANY = eventstore.NO_STREAM, eventstore.STREAM_EXISTS, eventstore.ANY

EXPECTATIONS = [
    # (events already in the stream, expected_version, succeeds)
    (0, ANY, True), (3, ANY, True),
    (0, NO, True), (2, NO, False),
    (0, EXISTS, False), (1, EXISTS, True),
    (0, 0, True), (2, 2, True), (2, 1, False), (2, 3, False), (0, 1, False), (1, 0, False),
]


@pytest.mark.parametrize("existing,expected,ok", EXPECTATIONS)
def test_expected_version_modes(existing, expected, ok):
    with gen.open_store(":memory:") as store:
        store.append("other", [gen.NoteAdded("o")])
        for i in range(existing):
            store.append("s", [gen.NoteAdded(str(i))])
        before = (store.last_position(), store.anchor(), store.stream_info("s"))
        if ok:
            r = store.append("s", [gen.NoteAdded("new"), gen.NoteAdded("new2")], expected_version=expected)
            assert r.stream_version == existing + 2
            return
        with pytest.raises(eventstore.WrongExpectedVersion) as info:
            store.append("s", [gen.NoteAdded("new"), gen.NoteAdded("new2")], expected_version=expected)
        e = info.value
        assert (e.stream, e.expected, e.actual) == ("s", expected, existing)
        assert f"expected version {expected}" in str(e) and f"at version {existing}" in str(e)
        assert (store.last_position(), store.anchor(), store.stream_info("s")) == before
        assert store.verify().ok


@given(st.integers(0, 4), st.integers(0, 6))
def test_exact_expected_version_succeeds_only_when_equal_to_the_stream_version(existing, expected):
    with gen.open_store(":memory:") as store:
        for i in range(existing):
            store.append("s", [gen.NoteAdded(str(i))])
        if expected == existing:
            assert store.append("s", [gen.NoteAdded("x")], expected_version=expected).stream_version == existing + 1
        else:
            with pytest.raises(eventstore.WrongExpectedVersion):
                store.append("s", [gen.NoteAdded("x")], expected_version=expected)
            assert store.last_position() == existing


@pytest.mark.parametrize("expected", [-1, True, "latest", 1.0, None])
def test_malformed_expected_version_is_invalid_argument(expected):
    with gen.open_store(":memory:") as store:
        with pytest.raises(eventstore.InvalidArgument, match="expected_version"):
            store.append("s", [gen.NoteAdded("x")], expected_version=expected)


# --- idempotency keys -----------------------------------------------------------------------


def test_retry_with_the_same_key_and_events_returns_the_original_positions_and_writes_nothing():
    with gen.open_store(":memory:") as store:
        events = [gen.NoteAdded("a"), gen.CounterChanged("c", 2)]
        first = store.append("s", events, idempotency_key="req-1")
        store.append("s", [gen.NoteAdded("later")])
        store.append("t", [gen.NoteAdded("elsewhere")])
        head = store.anchor()
        retry = store.append("s", events, idempotency_key="req-1", expected_version=eventstore.NO_STREAM)
        assert retry.replayed
        assert (retry.first_position, retry.last_position, retry.stream_version) == (1, 2, 2)
        assert attrs.evolve(retry, replayed=False) == first
        assert store.anchor() == head
        assert store.stream_info("s").event_count == 3


def test_same_key_with_different_events_is_a_conflict_and_writes_nothing():
    with gen.open_store(":memory:") as store:
        store.append("s", [gen.NoteAdded("a")])
        store.append("s", [gen.NoteAdded("b")], idempotency_key="k")
        head = store.anchor()
        for different in ([gen.NoteAdded("B")], [gen.NoteAdded("b"), gen.NoteAdded("b")], [gen.CounterChanged("b", 0)]):
            with pytest.raises(eventstore.IdempotencyConflict) as info:
                store.append("s", different, idempotency_key="k")
            assert (info.value.stream, info.value.key, info.value.first_position) == ("s", "k", 2)
            assert "'k'" in str(info.value) and "position 2" in str(info.value)
        assert store.anchor() == head


def test_idempotency_keys_are_scoped_to_their_stream():
    with gen.open_store(":memory:") as store:
        a = store.append("a", [gen.NoteAdded("x")], idempotency_key="k")
        b = store.append("b", [gen.NoteAdded("x")], idempotency_key="k")
        assert (a.first_position, b.first_position, b.replayed) == (1, 2, False)


def test_a_key_of_a_rolled_back_append_is_forgotten():
    with gen.open_store(":memory:") as store:
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.append("s", [gen.NoteAdded("x")], idempotency_key="k")
                raise RuntimeError("abort")
        r = store.append("s", [gen.NoteAdded("y")], idempotency_key="k")
        assert not r.replayed and r.first_position == 1
        with pytest.raises(eventstore.InvalidArgument, match="idempotency_key"):
            store.append("s", [gen.NoteAdded("y")], idempotency_key="")


# --- ordering under interleavings of handles --------------------------------------------------

OPS = st.sampled_from(["exact", "any", "wrong", "rolled_back", "no_stream"])


@given(gen.append_batches(max_appends=20), st.lists(st.tuples(st.integers(0, 2), OPS), min_size=20, max_size=20))
def test_positions_stay_gap_free_and_in_commit_order_across_three_handles(batches, schedule):
    """Three handles on one file take turns (the head cache of each must notice the others'
    commits); some appends fail or roll back. Positions stay 1..N in commit order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.db")
        handles = [gen.open_store(path) for _ in range(3)]
        try:
            versions: dict[str, int] = {}
            written: list[tuple[str, object]] = []
            for b, (h, op) in zip(batches, schedule):
                store, current = handles[h], versions.get(b.stream, 0)
                if op == "wrong" or (op == "no_stream" and current):
                    expected = current + 1 if op == "wrong" else eventstore.NO_STREAM
                    with pytest.raises(eventstore.WrongExpectedVersion) as info:
                        store.append(b.stream, list(b.events), expected_version=expected)
                    assert info.value.actual == current
                    continue
                if op == "rolled_back":
                    with pytest.raises(KeyError):
                        with store.transaction():
                            store.append(b.stream, list(b.events), expected_version=current)
                            raise KeyError("abort")
                    continue
                expected = {"exact": current, "any": eventstore.ANY, "no_stream": eventstore.NO_STREAM}[op]
                r = store.append(b.stream, list(b.events), expected_version=expected)
                assert r.first_position == len(written) + 1  # commit order == position order
                assert r.stream_version == current + len(b.events)
                versions[b.stream] = r.stream_version
                written.extend((b.stream, e) for e in b.events)
            reader = handles[0]
            events = list(reader.read_all())
            assert [e.position for e in events] == list(range(1, len(written) + 1))
            assert [(e.stream, e.data) for e in events] == written
            for stream, version in versions.items():
                assert [e.version for e in reader.read_stream(stream)] == list(range(1, version + 1))
            assert reader.verify().ok
            for store in handles:
                assert store.verify_projections().ok
        finally:
            for store in handles:
                store.close()


def test_head_cache_sees_a_version_written_by_another_handle(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as a, gen.open_store(path) as b:
        a.append("s", [gen.NoteAdded("1")], expected_version=0)  # a caches s@1, head 1
        b.append("s", [gen.NoteAdded("2")], expected_version=1)
        r = a.append("s", [gen.NoteAdded("3")], expected_version=2)  # a must see b's commit
        assert (r.first_position, r.stream_version) == (3, 3)
        with pytest.raises(eventstore.WrongExpectedVersion):
            b.append("s", [gen.NoteAdded("x")], expected_version=2)
        b.append("t", [gen.NoteAdded("4")])
        assert a.append("s", [gen.NoteAdded("5")], expected_version=3).first_position == 5
        assert a.verify().ok and [e.position for e in b.read_all()] == [1, 2, 3, 4, 5]


def test_head_cache_notices_rows_removed_behind_its_back(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as store:
        store.append("s", [gen.NoteAdded(str(i)) for i in range(3)])
        gen.edit_file(path, "DELETE FROM events WHERE position = 3")
        r = store.append("s", [gen.NoteAdded("again")], expected_version=2)
        assert (r.first_position, r.stream_version) == (3, 3)
        assert store.verify().ok


def test_threads_with_their_own_handles_append_without_gaps(tmp_path):
    path = str(tmp_path / "s.db")
    gen.open_store(path).close()
    results: list[list[eventstore.AppendResult]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=30)

    def work(i: int) -> None:
        try:
            with gen.open_store(path) as store:
                start.wait()  # all handles open before anyone appends, so appends interleave
                for n in range(40):
                    results[i].append(store.append(f"t:{i}", [gen.CounterChanged(str(i), n)]))
                    time.sleep(0.001)  # let the others take the write lock in between
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    for mine in results:
        assert [r.stream_version for r in mine] == list(range(1, 41))
        assert [r.first_position for r in mine] == sorted(r.first_position for r in mine)
    with gen.open_store(path) as store:
        assert sorted(r.first_position for mine in results for r in mine) == list(range(1, 161))
        assert [e.position for e in store.read_all()] == list(range(1, 161))
        assert store.verify().ok and store.verify_projections().ok


# --- paging ----------------------------------------------------------------------------------


@given(st.integers(1, 30), st.integers(1, 7), st.integers(1, 31))
def test_reads_page_through_any_length_without_loss_or_duplication(n, page, start):
    with gen.open_store(":memory:") as store:
        for i in range(n):
            store.append("even" if i % 2 == 0 else "odd", [gen.CounterChanged("c", i)])
        assert [e.data.delta for e in store.read_all(page_size=page)] == list(range(n))
        assert [e.position for e in store.read_all(start, page_size=page)] == list(range(start, n + 1))
        assert [e.data.delta for e in store.read_stream("even", page_size=page)] == list(range(0, n, 2))
        assert [e.data.delta for e in store.read_all(streams=["odd"], page_size=page)] == list(range(1, n, 2))
        assert [e.position for e in store.read_all(to_position=min(start, n), page_size=page)] == list(
            range(1, min(start, n) + 1))


def test_read_all_is_lazy_and_sees_events_appended_after_the_first_page():
    with gen.open_store(":memory:") as store:
        for i in range(5):
            store.append("s", [gen.NoteAdded(str(i))])
        it = store.read_all(page_size=2)
        assert next(it).position == 1
        store.append("s", [gen.NoteAdded("late")])
        assert [e.position for e in it] == [2, 3, 4, 5, 6]


def test_maps_with_integer_keys_read_back_from_every_read():
    # The read loop parses with msgpack's string-keys-only default first (it is faster)
    # and must retry, not fail, when a map has integer keys.
    registry = eventstore.EventRegistry()

    @eventstore.event("test.int_keyed", registry=registry)
    class IntKeyed:
        by_id: dict[int, str]
        attrs_: dict[str, Any]

    events = [IntKeyed({i: str(i), -i - 1: "neg"}, {"k": i}) for i in range(5)]
    with gen.open_store(":memory:", registry=registry) as store:
        store.append("s", events)
        store.append("s", [IntKeyed({}, {})])
        assert [e.data for e in store.read_all()] == [*events, IntKeyed({}, {})]
        assert [e.data for e in store.read_stream("s")] == [*events, IntKeyed({}, {})]


def test_a_map_field_with_a_non_string_key_is_a_decode_error_naming_the_position(tmp_path):
    registry = eventstore.EventRegistry()

    @eventstore.event("test.str_keyed", registry=registry)
    class StrKeyed:
        labels: dict[str, Any]

    path = str(tmp_path / "s.db")
    with gen.open_store(path, registry=registry) as store:
        store.append("s", [StrKeyed({"a": 1}), StrKeyed({"b": 2})])
    bad = codec.pack({"labels": {1: "x"}})  # well-formed msgpack, wrong key type
    gen.edit_file(path, "UPDATE events SET payload = ? WHERE position = 2", (bad,))
    with gen.open_store(path, registry=registry) as store:
        it = store.read_all()
        assert next(it).data == StrKeyed({"a": 1})
        with pytest.raises(eventstore.DecodeError, match="position 2"):
            next(it)


def _register_reloadable(registry: eventstore.EventRegistry) -> type:
    # Same qualified name every call: what a reloaded module registers again.
    @eventstore.event("test.reloadable", registry=registry)
    class Reloadable:
        value: int

    return Reloadable


def test_a_class_registered_again_replaces_the_old_one_for_appends_and_reads():
    registry = eventstore.EventRegistry()
    old = _register_reloadable(registry)
    with gen.open_store(":memory:", registry=registry) as store:
        store.append("s", [old(1)])
        assert type(next(iter(store.read_all())).data) is old  # caches filled
        new = _register_reloadable(registry)
        assert type(next(iter(store.read_all())).data) is new
        store.append("s", [new(2)])
        with pytest.raises(eventstore.EventTypeError):
            store.append("s", [old(3)])  # no longer registered: refused, not encoded from a cache
        assert [(type(e.data), e.data.value) for e in store.read_all()] == [(new, 1), (new, 2)]


def test_foreign_epoch_moves_for_other_connections_commits_only(tmp_path):
    from eventstore.storage.sqlite import Database

    path = str(tmp_path / "e.db")
    a, b = Database(path), Database(path)
    try:
        a.enable_wal()
        a.execute("CREATE TABLE t (x)")
        with a.transaction():
            first = a.foreign_epoch()
            a.execute("INSERT INTO t VALUES (1)")
        with a.transaction():
            assert a.foreign_epoch() == first  # our own commit is not foreign
        with b.transaction():
            b.execute("INSERT INTO t VALUES (2)")
        with a.transaction():  # a transaction that does not ask, then commits itself
            a.execute("INSERT INTO t VALUES (3)")
        with a.transaction():
            second = a.foreign_epoch()
            assert second != first  # b's commit, though a committed since
            assert a.foreign_epoch() == second  # stable within a transaction
        with a.transaction():
            assert a.foreign_epoch() == second
            with pytest.raises(ZeroDivisionError):
                with a.transaction():  # a savepoint rolled back
                    a.execute("INSERT INTO t VALUES (4)")
                    1 / 0
            a.execute("INSERT INTO t VALUES (5)")
        with a.transaction():
            assert a.foreign_epoch() == second  # asked, then committed: still no foreign commit
    finally:
        a.close()
        b.close()


# --- transactions -----------------------------------------------------------------------------


def test_nested_transaction_failure_rolls_back_only_the_inner_part():
    with gen.open_store(":memory:") as store:
        with store.transaction():
            store.append("a", [gen.NoteAdded("kept 1")])
            with pytest.raises(ValueError):
                with store.transaction():
                    store.append("b", [gen.NoteAdded("dropped"), gen.NoteAdded("dropped")])
                    store.append("a", [gen.NoteAdded("dropped")])
                    raise ValueError("inner")
            with pytest.raises(eventstore.WrongExpectedVersion):
                store.append("a", [gen.NoteAdded("refused")], expected_version=5)
            r = store.append("a", [gen.NoteAdded("kept 2")], expected_version=1)
            assert (r.first_position, r.stream_version) == (2, 2)
        assert [(e.position, e.stream, e.data.text) for e in store.read_all()] == [
            (1, "a", "kept 1"), (2, "a", "kept 2")]
        assert store.stream_info("b") is None and store.stream_info("a").event_count == 2
        assert store.verify().ok and store.verify_projections().ok
        assert store.append("b", [gen.NoteAdded("now")], expected_version=eventstore.NO_STREAM).first_position == 3


def test_outer_transaction_failure_rolls_back_everything_including_projections():
    with gen.open_store(":memory:") as store:
        store.append("a", [gen.NoteAdded("before")])
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.append("a", [gen.NoteAdded("x")])
                with store.transaction():
                    store.append("c", [gen.NoteAdded("y")])
                raise RuntimeError("outer")
        assert store.last_position() == 1 and store.streams() == [store.stream_info("a")]
        assert store.append("a", [gen.NoteAdded("after")], expected_version=1).first_position == 2
        assert store.verify().ok


def test_appends_inside_one_transaction_are_invisible_to_another_handle_until_commit(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as a, gen.open_store(path) as b:
        with a.transaction():
            a.append("s", [gen.NoteAdded("1")])
            a.append("t", [gen.NoteAdded("2")])
            assert b.last_position() == 0
        assert b.last_position() == 2


def test_writer_waiting_past_its_busy_timeout_gets_store_busy_and_writes_nothing(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as holder, gen.open_store(path, busy_timeout_ms=50) as impatient:
        with holder.transaction():
            holder.append("s", [gen.NoteAdded("holding the write lock")])
            with pytest.raises(eventstore.StoreBusy, match="busy timeout"):
                impatient.append("s", [gen.NoteAdded("refused")])
        assert impatient.append("s", [gen.NoteAdded("now")], expected_version=1).first_position == 2
        assert [e.data.text for e in holder.read_all()] == ["holding the write lock", "now"]


def test_rebuild_inside_a_transaction_is_refused_and_a_closed_store_says_so():
    store = gen.open_store(":memory:")
    store.append("s", [gen.NoteAdded("x")])
    with store.transaction():
        with pytest.raises(eventstore.StoreError, match="inside a transaction"):
            store.rebuild()
    store.close()
    store.close()  # closing twice is harmless
    for call in (lambda: store.append("s", [gen.NoteAdded("y")]), lambda: list(store.read_all()),
                 store.verify, store.last_position):
        with pytest.raises(eventstore.StoreClosed):
            call()


# --- follow() ---------------------------------------------------------------------------------

_WRITER = """
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from tests import strategies as gen
with gen.open_store(sys.argv[3]) as store:
    for i in range(int(sys.argv[4])):
        store.append(f"w:{i % 3}", [gen.NoteAdded(str(i)) if i % 2 else gen.CounterChanged("w", i)])
        time.sleep(0.002)
"""


def test_follow_delivers_events_appended_by_another_process_in_order(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as store:
        store.append("mine", [gen.NoteAdded("before")])
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, TESTS_DIR, ROOT, path, "60"])
        try:
            stop = threading.Event()
            watchdog = threading.Timer(60, stop.set)  # bounded: never hang the suite
            watchdog.start()
            seen = []
            counters = []
            for ev in store.follow(1, stop=stop, poll_interval=0.01, idle_timeout=30):
                seen.append(ev.position)
                if len(seen) == 61:
                    stop.set()
            for ev in store.follow(1, types=["test.counter_changed"], idle_timeout=0.2):
                counters.append(ev.data.delta)
            watchdog.cancel()
        finally:
            assert proc.wait(timeout=60) == 0
    assert seen == list(range(1, 62))
    assert counters == list(range(0, 60, 2))


def test_follow_stops_after_idle_timeout_and_when_stop_is_set():
    with gen.open_store(":memory:") as store:
        store.append("s", [gen.NoteAdded("a"), gen.NoteAdded("b"), gen.NoteAdded("c")])
        assert [e.position for e in store.follow(2, idle_timeout=0.05, poll_interval=0.01)] == [2, 3]
        stop = threading.Event()
        got = []
        for ev in store.follow(1, stop=stop):
            got.append(ev.position)
            stop.set()  # stop right after the first event, although more are there
        assert got == [1]


def test_follow_returns_when_stop_is_set_while_it_waits():
    with gen.open_store(":memory:") as store:
        stop = threading.Event()
        done = threading.Event()

        def tail() -> None:
            for _ev in store.follow(1, stop=stop, poll_interval=0.01):
                pass
            done.set()

        t = threading.Thread(target=tail)
        t.start()
        stop.set()
        t.join(timeout=10)
        assert done.is_set() and not t.is_alive()


# --- blobs ------------------------------------------------------------------------------------


@given(st.binary(max_size=5000) | gen.payloads_of(5000), st.sampled_from(["low_latency", "balanced", "compact"]))
def test_blob_put_get_round_trip_and_ref_is_the_sha256(data, profile):
    import hashlib

    with gen.open_store(":memory:", profile=profile) as store:
        ref = store.blobs.put(data)
        assert ref == hashlib.sha256(data).hexdigest()
        assert store.blobs.has(ref) and store.blobs.get(ref) == data
        info = store.blobs.info(ref)
        assert info.size == len(data)
        threshold = codec.PROFILES[profile]
        if info.compressed:
            assert threshold is not None and len(data) >= threshold and info.stored_size < len(data)
        else:
            assert info.stored_size == len(data)


def test_blob_stored_twice_is_one_row_and_compressed_by_profile():
    content = b"checkpoint state " * 500
    with gen.open_store(":memory:", profile="compact") as store:
        ref = store.blobs.put(content)
        assert store.blobs.put(bytearray(content)) == ref and store.blobs.put(memoryview(content)) == ref
        assert store.blobs.stats() == (1, len(content), store.blobs.info(ref).stored_size)
        assert store.blobs.info(ref).compressed
        assert list(store.blobs.refs()) == [ref]
    with gen.open_store(":memory:", profile="low_latency") as store:
        assert not store.blobs.info(store.blobs.put(content)).compressed


def test_missing_blob_and_malformed_refs_are_typed_errors():
    with gen.open_store(":memory:") as store:
        absent = "0" * 64
        with pytest.raises(eventstore.BlobNotFound, match=absent) as info:
            store.blobs.get(absent)
        assert isinstance(info.value, KeyError) and info.value.ref == absent
        assert not store.blobs.has(absent) and store.blobs.info(absent) is None
        for bad in ("xyz", "A" * 64, 5, None):
            with pytest.raises(eventstore.InvalidArgument, match="ref"):
                store.blobs.get(bad)
        with pytest.raises(eventstore.InvalidArgument, match="bytes"):
            store.blobs.put("text")


def test_compressed_blob_claiming_a_huge_size_is_refused_naming_the_ref(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path, profile="compact") as store:
        ref = store.blobs.put(b"z" * 5000)
        assert store.blobs.info(ref).compressed
        forged = (1 << 31).to_bytes(4, "little") + store.db.scalar("SELECT content FROM blobs")[4:]
        gen.edit_file(path, "UPDATE blobs SET content = ?", (forged,))
        with pytest.raises(eventstore.PayloadTooLarge, match=ref):
            store.blobs.get(ref)


def test_blob_over_the_size_limit_is_refused():
    limits = eventstore.Limits(max_payload_bytes=1000, max_decompressed_bytes=1000)
    with gen.open_store(":memory:", limits=limits) as store:
        store.blobs.put(bytes(1000))
        with pytest.raises(eventstore.PayloadTooLarge):
            store.blobs.put(bytes(1001))
        assert store.blobs.stats()[0] == 1


@pytest.mark.parametrize("profile", ["low_latency", "compact"])
def test_corrupt_blob_bytes_are_detected(tmp_path, profile):
    path = str(tmp_path / "s.db")
    with gen.open_store(path, profile=profile) as store:
        ref = store.blobs.put(b"important bytes " * 200)
        stored = store.db.scalar("SELECT content FROM blobs")
        for corrupt in (stored[:-1] + bytes([stored[-1] ^ 1]), stored[:10], b""):
            gen.edit_file(path, "UPDATE blobs SET content = ?", (corrupt,))
            with pytest.raises(eventstore.CorruptStore, match=ref):
                store.blobs.get(ref)


def test_blob_put_inside_a_rolled_back_transaction_is_gone():
    with gen.open_store(":memory:") as store:
        with pytest.raises(RuntimeError):
            with store.transaction():
                ref = store.blobs.put(b"temporary")
                raise RuntimeError("abort")
        assert not store.blobs.has(ref)
