"""Reads decode flat event classes straight from the payload bytes (msgspec), and that
fast line must agree with the careful path (msgpack + the generated decoder) on every
payload: the same value, or a DecodeError for both.

The careful path is `RowDecoder.decode_row`; the fast line is the read loop, which takes
a type's direct decoder from its second row on (the first row teaches it the type).
"""

from __future__ import annotations

import enum
import typing
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventstore
from eventstore import codec
from eventstore._direct_decode import direct_decoder
from eventstore.decoding import RowDecoder
from tests import strategies as gen

_FLAT_LEAVES = [f for f in gen.LEAF_TYPES]
_SCALAR_LEAVES = [f for f in gen.LEAF_TYPES if f.annotation in (str, int, bool, bytes, float, type(None))]


def _flat_field_types() -> st.SearchStrategy[gen.FieldType]:
    """The annotations the direct decoder takes: leaves, optional scalars, sequences of
    scalars and dict[str, Any]."""
    scalars = st.sampled_from(_SCALAR_LEAVES)
    return st.one_of(
        st.sampled_from(_FLAT_LEAVES),
        scalars.map(lambda f: gen.FieldType(typing.Optional[f.annotation], st.none() | f.values)),
        scalars.map(lambda f: gen.FieldType(tuple[f.annotation, ...], st.lists(f.values, max_size=3).map(tuple))),
        scalars.map(lambda f: gen.FieldType(list[f.annotation], st.lists(f.values, max_size=3))),
        scalars.filter(lambda f: f.hashable).map(
            lambda f: gen.FieldType(frozenset[f.annotation], st.frozensets(f.values, max_size=3))),
        st.just(gen.FieldType(dict[str, Any], st.dictionaries(gen.texts(max_size=4), gen.json_like(4), max_size=3))),
    )


_ANY_VALUE = gen.json_like(4) | st.sampled_from([msgpack.ExtType(5, b"xy"), msgpack.Timestamp(7, 0)]) | \
    st.dictionaries(gen.ints(), gen.ints(), max_size=2)


@st.composite
def _flat_class_and_payload(draw: Any) -> tuple[type, bytes, bytes]:
    """A flat class, a valid payload of it, and a payload that may be anything near it."""
    cls, values = gen.make_event_class(draw(st.lists(_flat_field_types(), min_size=1, max_size=5)))
    plain = codec.class_codec(cls).to_plain(draw(values))
    valid = codec.pack(plain)
    other = dict(plain)
    names = list(other)
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["retype", "drop", "add", "rename"]))
        if change == "retype" and names:
            other[draw(st.sampled_from(names))] = draw(_ANY_VALUE)
        elif change == "drop" and other:
            other.pop(draw(st.sampled_from(list(other))))
        elif change == "add":
            other[draw(gen.texts(max_size=3))] = draw(_ANY_VALUE)
        elif change == "rename" and other:
            key = draw(st.sampled_from(list(other)))
            other[key + "_"] = other.pop(key)
    return cls, valid, msgpack.packb(other, use_bin_type=True)


def _outcome(read: typing.Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", read()
    except eventstore.DecodeError:
        return "DecodeError", None


def _decoder_for(cls: type) -> RowDecoder:
    registry = eventstore.EventRegistry()
    registry.register(cls, "gen.flat")
    return RowDecoder(registry, codec.Limits())


def _row(position: int, payload: bytes) -> tuple:
    return (position, "s", position, "gen.flat", 1, 0, codec.FLAG_COMMAND_START, payload)


def _fast_read(decoder: RowDecoder, valid: bytes, payload: bytes) -> Any:
    events = decoder.decode_pages(iter([[_row(1, valid), _row(2, payload)]]), False, None)
    return list(events)[1].data


@given(_flat_class_and_payload())
def test_the_direct_and_the_careful_decoding_agree_on_any_payload(case):
    cls, valid, payload = case
    assert direct_decoder(cls) is not None
    careful = _outcome(lambda: _decoder_for(cls).decode_row(_row(2, payload)).data)
    fast = _outcome(lambda: _fast_read(_decoder_for(cls), valid, payload))
    assert fast == careful
    if fast[0] == "ok":
        assert type(fast[1]) is cls and attrs.asdict(fast[1], recurse=False) == attrs.asdict(careful[1], recurse=False)


def test_reads_of_a_flat_class_go_through_its_direct_decoder(monkeypatch):
    calls = []

    def counting(cls: type) -> Any:
        found = direct_decoder(cls)
        if found is None:
            return None
        decode, header = found
        return (lambda payload: calls.append(1) or decode(payload)), header

    monkeypatch.setattr("eventstore.decoding.direct_decoder", counting)
    with gen.open_store(":memory:", projections=[]) as store:
        store.append("c", [gen.CounterChanged("k", n) for n in range(10)])
        assert [e.data.delta for e in store.read_all()] == list(range(10))
    assert len(calls) == 9  # the first row teaches the loop the type


class _Mixed(enum.Enum):
    A = "a"
    B = 2


@attrs.frozen
class _Inner:
    x: int


def _cls(**fields: Any) -> type:
    return attrs.make_class("C", {k: (v if isinstance(v, attrs.Attribute) or hasattr(v, "validator") else
                                      attrs.field(type=v)) for k, v in fields.items()}, frozen=True)


@pytest.mark.parametrize("cls", [
    _cls(a=int, b=str, c=dict[str, Any], d=tuple[int, ...], e=gen.Colour, f=typing.Optional[bytes]),
    gen.NoteAdded, gen.CounterChanged, gen.PayloadAttached,
], ids=["generated", "NoteAdded", "CounterChanged", "PayloadAttached"])
def test_flat_classes_get_a_direct_decoder(cls):
    found = direct_decoder(cls)
    assert found is not None and found[1] == 0x80 | len(attrs.fields(cls))


@pytest.mark.parametrize("cls", [
    _cls(a=attrs.field(type=int, validator=attrs.validators.gt(0))),  # init logic
    _cls(a=_Mixed),                                             # an enum msgspec cannot decode by value
    _cls(**{f"f{i}": int for i in range(16)}),                  # more than a fixmap header counts
    _cls(),                                                     # no fields
], ids=["validator", "mixed-enum", "16-fields", "empty"])
def test_other_classes_stay_on_the_careful_path(cls):
    assert direct_decoder(cls) is None


@pytest.mark.parametrize("cls", [
    _cls(a=int, b=attrs.field(type=str, default="")),          # a default: every field is required all the same
    _cls(a=_Inner, b=typing.Optional[_Inner], c=tuple[_Inner, ...]),  # nested: unknown keys are refused inside
    _cls(a=typing.Union[_Inner, gen.Point]),                    # a union of classes: its bytes go the careful way
    _cls(a=dict[int, str]),                                     # non-str keys: likewise
], ids=["default", "nested", "union", "int-keys"])
def test_classes_with_nested_classes_get_a_mirror_decoder(cls):
    found = direct_decoder(cls)
    assert found is not None and found[1] == 0x80 | len(attrs.fields(cls))


def _maps(value: Any) -> list[dict]:
    """Every map inside a plain value (the payload's own first)."""
    if isinstance(value, dict):
        return [value] + [m for v in value.values() for m in _maps(v)]
    if isinstance(value, list):
        return [m for v in value for m in _maps(v)]
    return []


@st.composite
def _nested_class_and_payload(draw: Any) -> tuple[type, bytes, bytes]:
    """Any codec class, a valid payload of it, and that payload changed at any depth."""
    cls, values = draw(gen.event_classes().filter(lambda cv: len(attrs.fields(cv[0])) > 0))
    plain = codec.class_codec(cls).to_plain(draw(values))
    valid = codec.pack(plain)
    other = msgpack.unpackb(valid, strict_map_key=False)
    for _ in range(draw(st.integers(0, 2))):
        maps = [m for m in _maps(other) if all(isinstance(k, str) for k in m)]
        target = draw(st.sampled_from(maps))
        change = draw(st.sampled_from(["retype", "drop", "add", "rename"]))
        if change == "retype" and target:
            target[draw(st.sampled_from(list(target)))] = draw(_ANY_VALUE)
        elif change == "drop" and target:
            target.pop(draw(st.sampled_from(list(target))))
        elif change == "add":
            target[draw(gen.texts(max_size=3))] = draw(_ANY_VALUE)
        elif change == "rename" and target:
            key = draw(st.sampled_from(list(target)))
            target[key + "_"] = target.pop(key)
    return cls, valid, msgpack.packb(other, use_bin_type=True)


@settings(max_examples=150, deadline=None)
@given(_nested_class_and_payload())
def test_the_mirror_and_the_careful_decoding_agree_on_any_payload_at_any_depth(case):
    cls, valid, payload = case
    careful = _outcome(lambda: _decoder_for(cls).decode_row(_row(2, payload)).data)
    fast = _outcome(lambda: _fast_read(_decoder_for(cls), valid, payload))
    assert fast == careful
    if fast[0] == "ok":
        assert type(fast[1]) is cls and repr(fast[1]) == repr(careful[1])


def test_an_unknown_field_in_a_flat_payload_is_a_decode_error_naming_the_position(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path, projections=[]) as store:
        store.append("c", [gen.CounterChanged("a", 1), gen.CounterChanged("b", 2), gen.CounterChanged("c", 3)])
    # Same entry count as the class's fields, one of them unknown (msgspec alone would
    # miss it if the missing field had a default); and one entry too many.
    gen.edit_file(path, "UPDATE events SET payload = ? WHERE position = 2",
                  (msgpack.packb({"counter": "b", "deltaa": 2}),))
    gen.edit_file(path, "UPDATE events SET payload = ? WHERE position = 3",
                  (msgpack.packb({"counter": "c", "delta": 3, "extra": 1}),))
    with gen.open_store(path, projections=[]) as store:
        with pytest.raises(eventstore.DecodeError, match="position 2"):
            list(store.read_all())
        with pytest.raises(eventstore.DecodeError, match="position 3.*unknown fields: extra"):
            list(store.read_all(3))


def test_a_timestamp_extension_in_an_any_value_reads_as_the_careful_path_reads_it():
    registry = eventstore.EventRegistry()

    @eventstore.event("gen.any", registry=registry)
    class Holder:
        value: dict[str, Any]

    stamp = msgpack.packb({"value": {"at": msgpack.Timestamp(7, 0)}})
    rows = [(p, "s", p, "gen.any", 1, 0, 0, stamp) for p in (1, 2)]
    read = list(RowDecoder(registry, codec.Limits()).decode_pages(iter([rows]), False, None))
    assert [e.data.value["at"] for e in read] == [msgpack.Timestamp(7, 0)] * 2  # not a datetime


@attrs.frozen
class _WithDefault:
    x: int
    y: int = 0


@pytest.mark.parametrize("inner", [
    {"x": 1, "y": 2, "extra": 3},  # an unknown key inside a nested map
    {"x": 1, "y_": 2},      # a key renamed: the field with a default is missing, an unknown one is there
    {},                     # a required key missing
    {"x": True},            # a bool where an int belongs
], ids=["unknown", "renamed", "missing", "bool"])
def test_a_nested_map_the_careful_path_refuses_is_refused_by_the_mirror_too(inner):
    cls = _cls(a=_WithDefault, b=typing.Optional[_WithDefault], c=tuple[_WithDefault, ...])
    assert direct_decoder(cls) is not None
    good = {"x": 1, "y": 2}
    valid = codec.pack({"a": good, "b": good, "c": [good, good]})
    for payload in ({"a": inner, "b": good, "c": [good]}, {"a": good, "b": inner, "c": [good]},
                    {"a": good, "b": None, "c": [good, inner]}):
        packed = msgpack.packb(payload, use_bin_type=True)
        careful = _outcome(lambda packed=packed: _decoder_for(cls).decode_row(_row(2, packed)).data)
        assert careful[0] == "DecodeError"
        assert _outcome(lambda packed=packed: _fast_read(_decoder_for(cls), valid, packed)) == careful
    # and the valid payload reads the same both ways, through the mirror
    fast = _fast_read(_decoder_for(cls), valid, valid)
    assert fast == _decoder_for(cls).decode_row(_row(2, valid)).data == cls(
        _WithDefault(1, 2), _WithDefault(1, 2), (_WithDefault(1, 2), _WithDefault(1, 2)))


@pytest.mark.parametrize("member", [
    ["_Inner", {"x": 1, "y": 2}],     # an unknown key inside the member's map
    ["Nope", {"x": 1}],               # an unknown member name
    ["_Inner", {"x": 1}, 3],          # not a pair
    ["Point", {"x": 1}],              # a member's field missing
], ids=["unknown-key", "unknown-name", "triple", "missing"])
def test_a_union_member_the_careful_path_refuses_is_refused_by_the_mirror_too(member):
    cls = _cls(a=typing.Union[_Inner, gen.Point], b=tuple[typing.Union[_Inner, gen.Point], ...])
    valid = codec.pack({"a": ["_Inner", {"x": 1}], "b": [["Point", {"x": 1, "y": 2}]]})
    for payload in ({"a": member, "b": []}, {"a": ["_Inner", {"x": 1}], "b": [member]}):
        packed = msgpack.packb(payload, use_bin_type=True)
        careful = _outcome(lambda packed=packed: _decoder_for(cls).decode_row(_row(2, packed)).data)
        assert careful[0] == "DecodeError"
        assert _outcome(lambda packed=packed: _fast_read(_decoder_for(cls), valid, packed)) == careful
    assert _fast_read(_decoder_for(cls), valid, valid) == cls(_Inner(1), (gen.Point(1, 2),))
