"""The payload codec: round trips, type checks, shape checks, lz4 by profile, size limits."""

from __future__ import annotations

import os
import pickle
import tracemalloc
from typing import Any

import attrs
import lz4.block
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from tests import strategies as gen
from eventstore import codec

PROFILES = ("low_latency", "balanced", "compact")


def _memory_store(registry: eventstore.EventRegistry, **kw: Any) -> eventstore.Store:
    return eventstore.open(":memory:", registry=registry, projections=[], **kw)


def _registry_for(cls: type, name: str = "gen.event") -> eventstore.EventRegistry:
    registry = eventstore.EventRegistry()
    registry.register(cls, name)
    return registry


# --- round trips ---------------------------------------------------------------------


@given(gen.classes_with_instances(), st.sampled_from(PROFILES))
def test_generated_event_classes_round_trip_through_the_log(class_and_instances, profile):
    cls, instances = class_and_instances
    with _memory_store(_registry_for(cls), profile=profile) as store:
        result = store.append("gen:1", instances)
        assert [e.data for e in store.read_all()] == instances
        assert [e.data for e in store.read_stream("gen:1")] == instances
        assert [store.get(p).data for p in result.positions] == instances


@given(gen.classes_with_instances())
def test_encoding_is_canonical_so_decoding_and_reencoding_gives_the_same_bytes(class_and_instances):
    cls, instances = class_and_instances
    et = _registry_for(cls).for_name("gen.event")
    for instance in instances:
        stored = et.encode(instance)
        again = et.decode_plain(codec.unpack(stored), et.schema, None, None)
        assert again == instance
        assert et.encode(again) == stored


@given(st.lists(gen.events(), min_size=1, max_size=5), st.sampled_from(PROFILES))
def test_test_event_classes_round_trip_with_every_field_kind(events, profile):
    with gen.open_store(":memory:", projections=[], profile=profile) as store:
        store.append("test:rich", events)
        assert [e.data for e in store.read_all()] == events
        assert [e.data for e in store.read_all(raw=True)] == [
            codec.class_codec(type(e)).to_plain(e) for e in events
        ]


@given(gen.rich_events(), gen.payloads_of(6000))
def test_compressed_payloads_round_trip(event, blob):
    big = attrs.evolve(event, data=blob)
    with gen.open_store(":memory:", projections=[], profile="compact") as store:
        store.append("test:big", [big])
        (flags,) = store.db.one("SELECT flags FROM events")
        assert flags & codec.FLAG_LZ4
        assert store.get(1).data == big


# --- type checks on encode -------------------------------------------------------------

RICH = gen.RichEvent(
    label=gen.Label("l", gen.Colour.RED), points=(gen.Point(1, 2),), pair=(1, "a"), tags=frozenset({"t"}),
    scores={"s": 1.5}, data=b"d", note=None, colour=None, shape=gen.Circle(gen.Point(0, 0), 1.0),
    maybe_shape=None, flags=[True], by_level={1: ()}, extra={"any": [1, "x"]},
)

BAD_FIELDS = [
    ("label", "not a label"),
    ("label", gen.Label(5, gen.Colour.RED)),  # nested field of the wrong type
    ("label", gen.Label("l", "red")),  # an enum's raw value instead of the enum
    ("points", (gen.Point(1, 2), "x")),
    ("points", gen.Point(1, 2)),
    ("pair", (1, 2)),
    ("pair", (1, "a", "b")),
    ("tags", "abc"),
    ("scores", {"s": "high"}),
    ("scores", [("s", 1.0)]),
    ("data", "text, not bytes"),
    ("note", 5),
    ("colour", "red"),
    ("shape", gen.Point(0, 0)),
    ("shape", None),
    ("maybe_shape", gen.Label("l", gen.Colour.RED)),
    ("flags", [1]),
    ("by_level", {"1": ()}),
    ("by_level", {1: (gen.Point(1, 1),)}),
    ("pair", (2**64, "a")),  # outside what msgpack carries
    ("points", (gen.Point(-(2**63) - 1, 0),)),
    ("note", "\ud800"),  # a lone surrogate cannot be UTF-8
    ("extra", object()),  # an arbitrary object is never pickled
    ("extra", {1, 2}),
]


@pytest.mark.parametrize("field,value", BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _v) in enumerate(BAD_FIELDS)])
def test_wrong_typed_field_is_invalid_argument_naming_the_field_and_nothing_is_written(field, value):
    with gen.open_store(":memory:", projections=[]) as store:
        store.append("test:ok", [RICH])
        bad = attrs.evolve(RICH, **{field: value})
        with pytest.raises(eventstore.InvalidArgument) as info:
            store.append("test:bad", [gen.NoteAdded("first"), bad])
        assert f"field {field}" in str(info.value)
        assert "test.rich" in str(info.value)
        assert store.last_position() == 1
        assert store.stream_version("test:bad") == 0


# A value of each scalar kind that the annotation must refuse.
_WRONG = {
    str: st.integers() | st.binary(),
    int: st.text() | st.booleans() | st.floats(allow_nan=False),
    bool: st.integers() | st.text(),
    bytes: st.text() | st.integers(),
    float: st.text() | st.binary(),
    gen.Colour: st.sampled_from(["red", "green"]) | st.sampled_from(gen.Level),
    gen.Level: st.sampled_from([1, 2]) | st.sampled_from(gen.Colour),
}


@st.composite
def _class_with_one_bad_field(draw):
    kinds = draw(st.lists(st.sampled_from(list(_WRONG)), min_size=1, max_size=5))
    fields = [next(f for f in gen.LEAF_TYPES if f.annotation is k) for k in kinds]
    cls, values = gen.make_event_class(fields)
    good = draw(values)
    index = draw(st.integers(0, len(kinds) - 1))
    bad = attrs.evolve(good, **{f"f{index}": draw(_WRONG[kinds[index]])})
    return cls, good, bad, f"f{index}"


@given(_class_with_one_bad_field())
def test_generated_class_with_one_wrong_scalar_is_refused_naming_that_field(case):
    cls, good, bad, field = case
    et = _registry_for(cls).for_name("gen.event")
    et.encode(good)
    with pytest.raises(eventstore.InvalidArgument, match=rf"field {field}\b"):
        et.encode(bad)


def test_unregistered_class_and_non_list_events_are_refused():
    @attrs.frozen
    class Stray:
        x: int

    with gen.open_store(":memory:", projections=[]) as store:
        with pytest.raises(eventstore.EventTypeError, match="Stray"):
            store.append("test:x", [Stray(1)])
        with pytest.raises(eventstore.InvalidArgument, match="list"):
            store.append("test:x", gen.NoteAdded("a"))
        with pytest.raises(eventstore.InvalidArgument, match="empty"):
            store.append("test:x", [])
        assert store.last_position() == 0


# --- decoding checks the shape again ------------------------------------------------------


_WRITER = eventstore.EventRegistry()


@eventstore.event("test.shape", registry=_WRITER)
class _Written:
    a: int
    b: str


def _reader(**fields: Any) -> eventstore.EventRegistry:
    registry = eventstore.EventRegistry()
    cls = attrs.make_class("Shape", {k: attrs.field(type=v) for k, v in fields.items()}, frozen=True)
    registry.register(cls, "test.shape")
    return registry


WRONG_READERS = {
    "field type changed": _reader(a=str, b=str),
    "field missing in class": _reader(a=int),
    "field added to class": _reader(a=int, b=str, c=int),
    "nested class expected": _reader(a=gen.Point, b=str),
    "enum expected": _reader(a=gen.Colour, b=str),
    "union expected": _reader(a=gen.Circle | gen.Square, b=str),
    "sequence expected": _reader(a=tuple[int, ...], b=str),
}


@pytest.mark.parametrize("reader", list(WRONG_READERS), ids=list(WRONG_READERS))
def test_payload_of_the_wrong_shape_for_its_class_is_decode_error_naming_the_position(tmp_path, reader):
    path = str(tmp_path / "s.db")
    with gen.open_store(path, registry=_WRITER, projections=[]) as store:
        store.append("shape:1", [_Written(1, "x")])
        store.append("shape:2", [_Written(2, "y"), _Written(3, "z")])
    with gen.open_store(path, registry=WRONG_READERS[reader], projections=[]) as store:
        for read in (lambda: list(store.read_all(2)), lambda: list(store.read_stream("shape:2")),
                     lambda: store.get(2)):
            with pytest.raises(eventstore.DecodeError) as info:
                read()
            assert info.value.position == 2
            assert "position 2" in str(info.value) and "shape:2" in str(info.value)


GARBAGE = {
    "not msgpack": (b"\xc1\xc1\xc1", 0),
    "truncated msgpack": (msgpack.packb({"a": 1, "b": "xyz"})[:-2], 0),
    "an array, not a map": (msgpack.packb([1, "x"]), 0),
    "trailing bytes": (msgpack.packb({"a": 1, "b": "x"}) + b"\x00", 0),
    "lz4 flag on bytes that are no lz4 block": (b"\x05\x00\x00\x00\xff\xff\xff", codec.FLAG_LZ4),
    "lz4 block shorter than its prefix": (b"\x01\x02", codec.FLAG_LZ4),
    "lz4 size prefix lies": ((10).to_bytes(4, "little") + lz4.block.compress(b"x" * 50, store_size=False),
                             codec.FLAG_LZ4),
    "msgpack ext type": (msgpack.packb({"a": msgpack.ExtType(5, b"\x00"), "b": "x"}), 0),
}


@pytest.mark.parametrize("case", list(GARBAGE), ids=list(GARBAGE))
def test_undecodable_stored_payload_is_decode_error_naming_the_position(tmp_path, case):
    path = str(tmp_path / "s.db")
    payload, flags = GARBAGE[case]
    with gen.open_store(path, registry=_WRITER, projections=[]) as store:
        store.append("shape:1", [_Written(1, "x"), _Written(2, "y"), _Written(3, "z")])
        gen.edit_file(path, "UPDATE events SET payload = ?, flags = ? WHERE position = 2", (payload, flags))
        with pytest.raises(eventstore.DecodeError, match="position 2") as info:
            list(store.read_all())
        assert info.value.position == 2
        with pytest.raises(eventstore.DecodeError, match="position 2"):
            store.get(2)
        if case not in ("msgpack ext type", "an array, not a map"):
            # Raw reads show what is stored without checking it against a class; only
            # bytes that are no msgpack (or no lz4 block) at all fail there.
            with pytest.raises(eventstore.DecodeError, match="position 2"):
                list(store.read_all(raw=True))
        assert [e.data for e in store.read_all(3)] == [_Written(3, "z")]


# --- lz4 by profile ---------------------------------------------------------------------

_PAYLOAD = gen.EVENTS.for_class(gen.PayloadAttached)
_OVERHEAD = len(_PAYLOAD.encode(gen.PayloadAttached("", b"x" * 2000))) - 2000


def _event_of_encoded_size(size: int, compressible: bool = True) -> gen.PayloadAttached:
    n = size - _OVERHEAD
    content = (b"abcd" * (n // 4 + 1))[:n] if compressible else os.urandom(n)
    ev = gen.PayloadAttached("", content)
    assert len(_PAYLOAD.encode(ev)) == size
    return ev


@pytest.mark.parametrize("profile,threshold", [("balanced", 4096), ("compact", 1024)])
def test_profile_compresses_from_its_threshold_on(profile, threshold):
    with gen.open_store(":memory:", projections=[], profile=profile) as store:
        store.append("test:z", [_event_of_encoded_size(threshold - 1), _event_of_encoded_size(threshold),
                                _event_of_encoded_size(threshold * 4)])
        flags = [r[0] & codec.FLAG_LZ4 for r in store.db.query("SELECT flags FROM events ORDER BY position")]
        assert flags == [0, codec.FLAG_LZ4, codec.FLAG_LZ4]
        sizes = [r[0] for r in store.db.query("SELECT length(payload) FROM events ORDER BY position")]
        assert sizes[1] < threshold and sizes[2] < threshold
        assert [len(e.data.content) for e in store.read_all()] == [threshold - 1 - _OVERHEAD,
                                                                  threshold - _OVERHEAD,
                                                                  threshold * 4 - _OVERHEAD]


def test_low_latency_profile_never_compresses():
    with gen.open_store(":memory:", projections=[], profile="low_latency") as store:
        store.append("test:z", [_event_of_encoded_size(60_000)])
        assert store.db.one("SELECT flags & 1, length(payload) FROM events") == (0, 60_000)


@pytest.mark.parametrize("profile", ["balanced", "compact"])
def test_incompressible_payload_is_stored_plain_because_lz4_would_not_save_bytes(profile):
    with gen.open_store(":memory:", projections=[], profile=profile) as store:
        ev = _event_of_encoded_size(8192, compressible=False)
        store.append("test:z", [ev])
        assert store.db.one("SELECT flags & 1, length(payload) FROM events") == (0, 8192)
        assert store.get(1).data == ev


@given(st.binary(max_size=3000) | gen.payloads_of(3000), st.sampled_from([None, 1, 1024, 4096]))
def test_compress_for_obeys_threshold_saves_bytes_and_round_trips(data, threshold):
    stored, flags = codec.compress_for(data, threshold)
    if threshold is None or len(data) < threshold:
        assert (stored, flags) == (data, 0)
    if flags:
        assert len(stored) < len(data)
    else:
        assert stored == data
    assert codec.decompress(stored, flags, len(data)) == data


# --- the per-thread msgpack packer -------------------------------------------------------


def test_a_failed_pack_leaves_the_threads_packer_clean_for_the_next_event():
    with gen.open_store(":memory:", projections=[]) as store:
        with pytest.raises(eventstore.InvalidArgument):
            store.append("test:p", [gen.CounterChanged("c", 2**64)])  # an int, but msgpack cannot carry it
        store.append("test:p", [gen.NoteAdded("after")])
        assert [e.data for e in store.read_stream("test:p")] == [gen.NoteAdded("after")]
        assert codec.pack({"a": 1}) == msgpack.packb({"a": 1}, use_bin_type=True)


def test_packing_a_large_event_does_not_leave_its_buffer_with_the_thread():
    big = gen.PayloadAttached("big", bytes(4 * 1024 * 1024))
    with gen.open_store(":memory:", projections=[], profile="low_latency") as store:
        store.append("test:p", [gen.NoteAdded("warm")])
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            store.append("test:p", [big])
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert held < 1024 * 1024, f"{held} bytes still held after packing a 4 MiB event"
        store.append("test:p", [gen.NoteAdded("small")])
        assert [e.data for e in store.read_stream("test:p")][1:] == [big, gen.NoteAdded("small")]


def test_each_thread_packs_with_its_own_packer():
    import threading

    packers = []
    threads = [threading.Thread(target=lambda: packers.append(codec.packer())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p.__self__) for p in packers}) == 3
    assert codec.packer() is codec.packer()


# --- size limits ------------------------------------------------------------------------


def test_event_over_the_payload_limit_is_refused_before_anything_is_written():
    limits = eventstore.Limits(max_payload_bytes=2000, max_decompressed_bytes=2000)
    with gen.open_store(":memory:", projections=[], limits=limits, profile="compact") as store:
        store.append("test:z", [_event_of_encoded_size(2000)])  # exactly the limit is fine
        with pytest.raises(eventstore.PayloadTooLarge, match=r"event 1 \(test.payload_attached\).*2001"):
            store.append("test:z", [gen.NoteAdded("ok"), _event_of_encoded_size(2001)])
        assert store.last_position() == 1


def test_default_limit_refuses_a_17_mib_event():
    with gen.open_store(":memory:", projections=[]) as store:
        with pytest.raises(eventstore.PayloadTooLarge):
            store.append("test:z", [gen.PayloadAttached("big", bytes(17 * 1024 * 1024))])
        assert store.last_position() == 0


def test_lz4_block_claiming_a_huge_size_is_refused_before_allocation(tmp_path):
    path = str(tmp_path / "s.db")
    limits = eventstore.Limits(max_payload_bytes=1 << 20, max_decompressed_bytes=1 << 20)
    with gen.open_store(path, projections=[]) as store:
        store.append("test:z", [gen.NoteAdded("a"), gen.NoteAdded("b")])
    # A genuine lz4 block of 32 MiB of zeros: about 130 KB stored, 32 MiB when inflated.
    bomb = lz4.block.compress(bytes(32 << 20), store_size=True)
    gen.edit_file(path, "UPDATE events SET payload = ?, flags = 1 WHERE position = 2", (bomb,))
    with gen.open_store(path, projections=[], limits=limits) as store:
        tracemalloc.start()
        try:
            with pytest.raises(eventstore.PayloadTooLarge, match="position 2"):
                store.get(2)
            with pytest.raises(eventstore.PayloadTooLarge):
                list(store.read_all())
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, f"{peak} bytes allocated while refusing the block"
        forged = (0xFFFFFFFF).to_bytes(4, "little") + b"\x00" * 16
        gen.edit_file(path, "UPDATE events SET payload = ? WHERE position = 2", (forged,))
        with pytest.raises(eventstore.PayloadTooLarge, match="4294967295"):
            store.get(2)
        assert store.get(1).data == gen.NoteAdded("a")


# --- no pickle ----------------------------------------------------------------------------


class _Detonator:
    """Unpickling this would create a file: proof that a payload was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_planted_in_a_payload_is_a_decode_error_and_never_executed(tmp_path):
    path = str(tmp_path / "s.db")
    marker = str(tmp_path / "exploded")
    with gen.open_store(path, projections=[]) as store:
        store.append("test:p", [gen.NoteAdded("a")])
        gen.edit_file(path, "UPDATE events SET payload = ?", (pickle.dumps(_Detonator(marker)),))
        with pytest.raises(eventstore.DecodeError, match="position 1"):
            store.get(1)
        with pytest.raises(eventstore.DecodeError):
            list(store.read_all(raw=True))
    assert not os.path.exists(marker)


def test_codec_modules_never_import_pickle():
    import eventstore.blobs
    import eventstore.events
    import eventstore.log

    for module in (codec, eventstore.events, eventstore.log, eventstore.blobs):
        with open(module.__file__, encoding="utf-8") as fh:
            source = fh.read()
        assert "pickle" not in source, module.__name__
