"""Schema evolution: events written at an older schema are upcast when read; anything that
cannot be read is a typed error naming its position, never skipped."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from tests import strategies as gen
from projections.base import Projection

NAME = "test.renamed"


def _v1():
    registry = eventstore.EventRegistry()

    @eventstore.event(NAME, schema=1, registry=registry)
    class Renamed:
        title: str

    return registry, Renamed


def _v2(with_upcaster: bool = True):
    registry = eventstore.EventRegistry()

    @eventstore.event(NAME, schema=2, registry=registry)
    class Renamed:
        title: str
        by: str

    if with_upcaster:
        @eventstore.upcaster(NAME, from_schema=1, registry=registry)
        def _by(fields: dict) -> dict:
            return {**fields, "by": "unknown"}

    return registry, Renamed


def _v3(upcasters: tuple[int, ...] = (1, 2)):
    registry = eventstore.EventRegistry()

    @eventstore.event(NAME, schema=3, registry=registry)
    class Renamed:
        title: str
        by: str
        words: int

    if 1 in upcasters:
        registry.add_upcaster(NAME, 1, lambda f: {**f, "by": "unknown"})
    if 2 in upcasters:
        registry.add_upcaster(NAME, 2, lambda f: {**f, "words": len(f["title"].split())})
    return registry, Renamed


def _write(path: str, writes: list[tuple[int, str, str]]) -> None:
    """Append (schema, title, by) events, each with the class of its schema."""
    makers = {1: _v1(), 2: _v2(), 3: _v3()}
    for schema, title, by in writes:
        registry, cls = makers[schema]
        fields = {"title": title, "by": by, "words": len(title.split())}
        event = cls(**{f.name: fields[f.name] for f in attrs.fields(cls)})
        with gen.open_store(path, registry=registry, projections=[]) as store:
            store.append("doc:1", [event])


def test_schema_1_events_read_back_as_schema_2_through_the_upcaster(tmp_path):
    path = str(tmp_path / "s.db")
    _write(path, [(1, "first draft", ""), (2, "second", "ann")])
    registry, Renamed = _v2()
    with gen.open_store(path, registry=registry, projections=[]) as store:
        expected = [Renamed("first draft", "unknown"), Renamed("second", "ann")]
        assert [e.data for e in store.read_all()] == expected
        assert [e.data for e in store.read_stream("doc:1")] == expected
        assert store.get(1).data == expected[0]
        assert [e.schema for e in store.read_all()] == [1, 2]  # the stored schema is reported as written


@given(st.lists(st.tuples(st.sampled_from([1, 2, 3]), gen.texts(max_size=12), gen.texts(max_size=4)),
                min_size=1, max_size=6))
def test_any_mix_of_schemas_reads_back_as_schema_3_through_every_upcaster_in_order(tmp_path_factory, writes):
    path = str(tmp_path_factory.mktemp("up") / "s.db")
    _write(path, writes)
    registry, Renamed = _v3()
    expected = [
        Renamed(title, by if schema >= 2 else "unknown", len(title.split())) for schema, title, by in writes
    ]
    with gen.open_store(path, registry=registry, projections=[]) as store:
        # read twice: the first pass builds the page decoder cache, the second uses it
        assert [e.data for e in store.read_all()] == expected
        assert [e.data for e in store.read_all(page_size=2)] == expected
        assert [store.get(p).data for p in range(1, len(writes) + 1)] == expected


def test_rebuilt_projection_sees_upcast_events(tmp_path):
    path = str(tmp_path / "s.db")
    _write(path, [(1, "a b c", ""), (3, "d", "zed")])
    registry, Renamed = _v3()
    seen = Projection(name="titles", version=1, tables=("titles_seen",),
                      ddl=("CREATE TABLE IF NOT EXISTS titles_seen (position INTEGER PRIMARY KEY, by TEXT, words INT)",))

    @seen.on(NAME)
    def _apply(db, ev):
        db.execute("INSERT INTO titles_seen VALUES (?, ?, ?)", (ev.position, ev.data.by, ev.data.words))

    with gen.open_store(path, registry=registry, projections=[seen]) as store:
        store.rebuild()
        assert store.db.query("SELECT * FROM titles_seen ORDER BY position") == [(1, "unknown", 3), (2, "zed", 1)]


@pytest.mark.parametrize("present,missing_from", [((2,), 1), ((1,), 2), ((), 1)])
def test_missing_upcaster_is_a_typed_error_naming_the_position(tmp_path, present, missing_from):
    path = str(tmp_path / "s.db")
    _write(path, [(3, "new", "x"), (missing_from, "old", "y"), (3, "newer", "z")])
    registry, _ = _v3(upcasters=present)
    with gen.open_store(path, registry=registry, projections=[]) as store:
        for read in (lambda: list(store.read_all()), lambda: list(store.read_stream("doc:1")),
                     lambda: store.get(2)):
            with pytest.raises(eventstore.MissingUpcaster) as info:
                read()
            assert info.value.position == 2
            assert "position 2" in str(info.value)
            assert f"no upcaster from schema {missing_from} to {missing_from + 1}" in str(info.value)
        assert store.get(3).data.title == "newer"  # rows around it are still readable


def test_upcaster_failing_on_a_stored_payload_is_a_decode_error_naming_the_position(tmp_path):
    path = str(tmp_path / "s.db")
    odd = eventstore.EventRegistry()

    @eventstore.event(NAME, schema=2, registry=odd)
    class Odd:  # a schema 2 payload without the `title` field the 2 -> 3 upcaster needs
        by: str

    with gen.open_store(path, registry=odd, projections=[]) as store:
        store.append("doc:1", [Odd("x")])
    registry, _ = _v3()
    with gen.open_store(path, registry=registry, projections=[]) as store:
        with pytest.raises(eventstore.DecodeError, match="position 1") as info:
            list(store.read_all())
        assert info.value.position == 1


def test_unknown_event_type_is_a_typed_error_naming_the_position_and_raw_reads_still_work(tmp_path):
    path = str(tmp_path / "s.db")
    _write(path, [(1, "kept", "")])
    with gen.open_store(path, projections=[]) as store:  # the test registry has no test.renamed
        store.append("notes", [gen.NoteAdded("before")])
        for read in (lambda: list(store.read_all()), lambda: store.get(1), lambda: list(store.read_stream("doc:1"))):
            with pytest.raises(eventstore.UnknownEventType, match=r"position 1.*test\.renamed|test\.renamed.*position 1") as info:
                read()
            assert info.value.position == 1
        assert [e.data for e in store.read_all(raw=True)] == [{"title": "kept"}, {"text": "before"}]
        assert [e.data for e in store.read_all(types=["test.note_added"])] == [gen.NoteAdded("before")]


def test_event_written_by_a_newer_schema_is_a_decode_error_not_an_upcast(tmp_path):
    path = str(tmp_path / "s.db")
    _write(path, [(2, "ok", "a"), (3, "from the future", "b")])
    registry, Renamed = _v2()
    with gen.open_store(path, registry=registry, projections=[]) as store:
        assert store.get(1).data == Renamed("ok", "a")
        with pytest.raises(eventstore.DecodeError, match="schema 3, newer") as info:
            list(store.read_all())
        assert info.value.position == 2
        assert not isinstance(info.value, (eventstore.MissingUpcaster, eventstore.UnknownEventType))
        assert "position 2" in str(info.value)


def test_registering_an_upcaster_for_an_unknown_type_is_refused():
    registry = eventstore.EventRegistry()
    with pytest.raises(eventstore.EventTypeError, match="test.nothing"):
        registry.add_upcaster("test.nothing", 1, lambda f: f)
