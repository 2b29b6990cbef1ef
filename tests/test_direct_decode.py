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
from eventstore import codec, ids
from eventstore._direct_decode import direct_decoder
from eventstore.decoding import RowDecoder
from tests import strategies as gen

_UUIDS = st.uuids().map(str)
"""Canonical uuid strings: the encoder stores them as compact ids (msgpack extension 85)."""
_ID_LEAVES = [gen.FieldType(str, gen.texts(max_size=8) | _UUIDS, True) if f.annotation is str else f
              for f in gen.LEAF_TYPES]
"""The generated classes' leaves, with strings that are often uuids."""
_FLAT_LEAVES = list(_ID_LEAVES)
_SCALAR_LEAVES = [f for f in _ID_LEAVES if f.annotation in (str, int, bool, bytes, float, type(None))]


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
    st.dictionaries(gen.ints(), gen.ints(), max_size=2) | \
    st.binary(min_size=16, max_size=16).map(lambda b: msgpack.ExtType(ids.EXT_ID, b)) | \
    st.sampled_from([msgpack.ExtType(ids.EXT_ID, b"short"), msgpack.ExtType(ids.EXT_ID + 1, bytes(16))])
"""A value put anywhere in a payload; the last ones are compact ids, valid or not."""


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
        return found._replace(decode=lambda payload: calls.append(1) or found.decode(payload))

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
    assert found is not None and found.header == 0x80 | len(attrs.fields(cls))


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
    assert found is not None and found.header == 0x80 | len(attrs.fields(cls))


def _maps(value: Any) -> list[dict]:
    """Every map inside a plain value (the payload's own first)."""
    if isinstance(value, dict):
        return [value] + [m for v in value.values() for m in _maps(v)]
    if isinstance(value, list):
        return [m for v in value for m in _maps(v)]
    return []


def _id_field_types() -> st.SearchStrategy[gen.FieldType]:
    """Any annotation the codec supports (gen.field_types), its strings often uuids."""
    return st.recursive(st.sampled_from(_ID_LEAVES), gen._wrap, max_leaves=6)


@st.composite
def _nested_class_and_payload(draw: Any) -> tuple[type, bytes, bytes]:
    """Any codec class, a valid payload of it, and that payload changed at any depth."""
    cls, values = draw(st.lists(_id_field_types(), min_size=1, max_size=4).map(gen.make_event_class))
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


# --- payloads holding compact ids ----------------------------------------------------


@eventstore.event("gen.tool_called", registry=gen.EVENTS)
class _ToolCalled:
    session_id: str
    turn: int
    tool: str
    arguments: dict[str, Any]
    parent: typing.Optional[str]
    tags: tuple[str, ...]


_SESSION = "0b6f4c1e-5d7a-4b8e-9f21-3c4d5e6f7a8b"


def test_a_payload_holding_compact_ids_is_read_by_its_direct_decoder_not_the_careful_path(monkeypatch):
    by_ids: list[int] = []
    careful: list[int] = []

    def counting(cls: type) -> Any:
        found = direct_decoder(cls)
        assert found is not None and found.decode_ids is not None
        decode_ids = found.decode_ids
        return found._replace(decode_ids=lambda payload: by_ids.append(1) or decode_ids(payload))

    def counted(real: Any) -> Any:
        return lambda *a, **kw: careful.append(1) or real(*a, **kw)

    written = [_ToolCalled(_SESSION, n, "search", {"run": str(uuid_n)}, None if n % 2 else str(uuid_n),
                           (_SESSION, "x", str(uuid_n)))
               for n, uuid_n in enumerate(f"00000000-0000-4000-8000-{k:012d}" for k in range(10))]
    with gen.open_store(":memory:", projections=[]) as store:
        store.append("c", written)
        assert all(ids.ID_MARK in payload for (payload,) in store.db.query("SELECT payload FROM events"))
        monkeypatch.setattr("eventstore.decoding.direct_decoder", counting)
        monkeypatch.setattr("eventstore.decoding._unpack_map", counted(eventstore.decoding._unpack_map))
        monkeypatch.setattr("eventstore.decoding._unpackb", counted(eventstore.decoding._unpackb))
        read = [e.data for e in store.read_all()]
    assert read == written
    assert all(e.session_id.__class__ is str and e.tags[0].__class__ is str for e in read)
    assert len(by_ids) == 9 and careful == []  # the first row teaches the loop the type


def test_payloads_with_and_without_compact_ids_read_alike_through_either_decoder():
    found = direct_decoder(_ToolCalled)
    assert found is not None and found.decode_ids is not None
    plain = codec.class_codec(_ToolCalled).to_plain(_ToolCalled(_SESSION, 1, "t", {}, _SESSION, (_SESSION,)))
    payload = codec.pack(plain)
    assert payload.count(ids.ID_MARK) == 3
    careful = codec.class_codec(_ToolCalled).from_plain(codec.unpack(payload))
    assert found.decode_ids(payload) == careful == _ToolCalled(_SESSION, 1, "t", {}, _SESSION, (_SESSION,))
    text = codec.pack(dict(plain, session_id="s", parent=None, tags=["a"]))  # no compact id in it
    assert found.decode(text) == found.decode_ids(text) == _ToolCalled("s", 1, "t", {}, None, ("a",))


@pytest.mark.parametrize("field, value", [
    ("session_id", msgpack.ExtType(ids.EXT_ID, b"short")),         # not 16 bytes
    ("session_id", msgpack.ExtType(ids.EXT_ID + 1, bytes(16))),    # another extension
    ("turn", msgpack.ExtType(ids.EXT_ID, bytes(16))),              # a compact id where an int belongs
    ("tags", [msgpack.ExtType(ids.EXT_ID, b"short")]),
    ("parent", msgpack.ExtType(7, bytes(16))),
], ids=["short", "other-code", "in-an-int", "short-in-a-tuple", "other-code-optional"])
def test_a_wrong_extension_where_a_string_belongs_is_the_careful_paths_decode_error(field, value):
    plain = codec.class_codec(_ToolCalled).to_plain(_ToolCalled(_SESSION, 1, "t", {}, None, ()))
    valid = codec.pack(plain)
    bad = msgpack.packb(dict(plain, **{field: value}), use_bin_type=True)
    decoder = _decoder_for(_ToolCalled)
    careful = _outcome(lambda: decoder.decode_row(_row(2, bad)).data)
    assert careful[0] == "DecodeError"
    assert _outcome(lambda: _fast_read(_decoder_for(_ToolCalled), valid, bad)) == careful


def test_a_compact_id_in_an_any_value_reads_as_its_string_on_both_paths():
    plain = codec.class_codec(_ToolCalled).to_plain(_ToolCalled(_SESSION, 1, "t", {}, None, ()))
    payload = msgpack.packb(dict(plain, arguments={"k": [msgpack.ExtType(ids.EXT_ID, bytes(range(16)))]}),
                            use_bin_type=True)
    careful = _decoder_for(_ToolCalled).decode_row(_row(2, payload)).data
    fast = _fast_read(_decoder_for(_ToolCalled), payload, payload)
    assert fast == careful and fast.arguments == {"k": ["00010203-0405-0607-0809-0a0b0c0d0e0f"]}
