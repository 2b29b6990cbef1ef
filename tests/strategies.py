"""Shared hypothesis strategies (and the test event classes they generate).

Import it the way the suite imports its other helpers (`python -m pytest` from the
repository root puts the root on sys.path)::

    from tests import strategies as gen

    @given(gen.append_batches())
    def test_something(batches):
        with gen.open_store(":memory:") as store: ...

What is here:

* **Test event classes** registered in a private registry, `EVENTS`, so that they never
  appear in the global `eventstore.EVENTS` (which the domain, the docs and the catalogue
  checks enumerate). Open a store that can read them with `open_store(path)` (or pass
  `registry=EVENTS` to `eventstore.open` yourself). They cover every field kind the codec
  supports: nested attrs classes, enums, bytes, tuples (fixed and variable), lists,
  frozensets, dicts, optional fields, unions of attrs classes, `Any`.
* **Values**: `texts()`, `ints()`, `floats()`, `json_like()`: what msgpack carries
  exactly (no surrogates, no NaN, 64-bit integers).
* **Stream names**: `stream_names()` (`kind:id`, the shape the domain uses, with
  unicode ids) and `any_stream_names()` (any valid name, up to the 512-byte limit).
* **Event instances**: `events()` (any of the test classes), `rich_events()`,
  `small_events()` (cheap ones for long interleavings), `payloads_of(size)`.
* **Generated classes**: `field_types()` draws an annotation together with a strategy
  for its values (recursively: optional, tuple, list, frozenset, dict, nested attrs
  classes, unions of attrs classes); `event_classes()` builds a fresh attrs class from
  a few of them and `classes_with_instances()` draws a class and instances of it. Use
  these for codec properties: they reach shapes no hand-written class does.
* **Appends**: `append_batches()` draws a list of `Append(stream, events)` spread over a
  pool of streams, for interleaving, gap-freedom and projection properties.
* **File surgery**: `edit_file(path, sql, params)` changes a store file through a
  separate SQLite connection (as an attacker or a careless operator would), and
  `query_file` reads it the same way.
"""

from __future__ import annotations

import enum
import itertools
import typing
from typing import Any

import apsw
import attrs
from hypothesis import strategies as st

import eventstore

EVENTS = eventstore.EventRegistry()
"""The private registry of the test event classes below."""


def open_store(path: Any, **kw: Any) -> eventstore.Store:
    """Open a store whose registry knows the test event classes.

    Defaults differ from `eventstore.open` in three ways: `registry=EVENTS`,
    `synchronous="normal"` (tests need no power-loss durability and fsyncs would
    dominate their runtime) and `projections=[catalogue]` (the core's own projection
    only; pass `projections=None` for every registered one). Every handle on one file
    should keep the same projections. Other keyword arguments go to `eventstore.open`.
    """
    from projections.catalogue import catalogue

    kw.setdefault("registry", EVENTS)
    kw.setdefault("synchronous", "normal")
    kw.setdefault("projections", [catalogue])
    return eventstore.open(path, **kw)


# --- the test event classes ------------------------------------------------------


class Colour(enum.Enum):
    """A string-valued enum."""

    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(enum.Enum):
    """An int-valued enum."""

    LOW = 1
    MID = 2
    HIGH = 3


@attrs.frozen
class Point:
    """A nested attrs class with two ints."""

    x: int
    y: int


@attrs.frozen
class Label:
    """A nested attrs class holding an enum and an optional nested class."""

    text: str
    colour: Colour
    anchor: Point | None = None


@attrs.frozen
class Circle:
    """One member of a union of attrs classes."""

    centre: Point
    radius: float


@attrs.frozen
class Square:
    """The other member of the union."""

    corner: Point
    side: int
    level: Level


@eventstore.event("test.note_added", registry=EVENTS)
class NoteAdded:
    """The simplest event: one string."""

    text: str


@eventstore.event("test.counter_changed", registry=EVENTS)
class CounterChanged:
    """A counter moved by `delta` (the test projection sums these)."""

    counter: str
    delta: int


@eventstore.event("test.payload_attached", registry=EVENTS)
class PayloadAttached:
    """Bytes of a chosen size (for compression and size-limit tests)."""

    name: str
    content: bytes


@eventstore.event("test.rich", registry=EVENTS)
class RichEvent:
    """Every field kind the codec supports, in one class."""

    label: Label
    points: tuple[Point, ...]
    pair: tuple[int, str]
    tags: frozenset[str]
    scores: dict[str, float]
    data: bytes
    note: str | None
    colour: Colour | None
    shape: Circle | Square
    maybe_shape: Circle | Square | None
    flags: list[bool]
    by_level: dict[int, tuple[Label, ...]]
    extra: Any


# --- values --------------------------------------------------------------------

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1


def texts(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    """Unicode text that UTF-8 can carry (no surrogates)."""
    return st.text(st.characters(blacklist_categories=("Cs",)), min_size=min_size, max_size=max_size)


def ints() -> st.SearchStrategy[int]:
    """Integers msgpack can carry: signed 64-bit up to unsigned 64-bit."""
    return st.integers(INT64_MIN, UINT64_MAX)


def floats() -> st.SearchStrategy[float]:
    """Floats that compare equal to themselves (no NaN)."""
    return st.floats(allow_nan=False)


def json_like(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Values an `Any` field round-trips unchanged: scalars, bytes, lists and str-keyed maps."""
    scalars = st.none() | st.booleans() | ints() | floats() | texts(max_size=8) | st.binary(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(max_size=5), inner, max_size=3),
        max_leaves=max_leaves,
    )


# --- stream names ----------------------------------------------------------------

STREAM_KINDS = ("session", "process", "trigger", "effect", "test")


def stream_names(kinds: typing.Sequence[str] = STREAM_KINDS) -> st.SearchStrategy[str]:
    """Stream names shaped like the domain's: `kind:id`, with unicode ids."""
    ident = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
    return st.builds(lambda k, i: f"{k}:{i}", st.sampled_from(list(kinds)), ident)


def any_stream_names() -> st.SearchStrategy[str]:
    """Any valid stream name: non-empty, no NUL, at most 512 UTF-8 bytes."""
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    return st.text(chars, min_size=1, max_size=160).filter(lambda s: len(s.encode()) <= 512) | st.just(
        "x" * 512
    )


# --- instances of the test classes -------------------------------------------------

points = st.builds(Point, ints(), ints())
labels = st.builds(Label, texts(max_size=8), st.sampled_from(Colour), st.none() | points)
shapes = st.one_of(
    st.builds(Circle, points, floats()),
    st.builds(Square, points, ints(), st.sampled_from(Level)),
)


def rich_events() -> st.SearchStrategy[RichEvent]:
    """Instances of RichEvent with every field drawn."""
    return st.builds(
        RichEvent,
        label=labels,
        points=st.lists(points, max_size=3).map(tuple),
        pair=st.tuples(ints(), texts(max_size=5)),
        tags=st.frozensets(texts(max_size=5), max_size=4),
        scores=st.dictionaries(texts(max_size=5), floats(), max_size=3),
        data=st.binary(max_size=40),
        note=st.none() | texts(),
        colour=st.none() | st.sampled_from(Colour),
        shape=shapes,
        maybe_shape=st.none() | shapes,
        flags=st.lists(st.booleans(), max_size=4),
        by_level=st.dictionaries(st.sampled_from([1, 2, 3]), st.lists(labels, max_size=2).map(tuple), max_size=2),
        extra=json_like(),
    )


def small_events() -> st.SearchStrategy[Any]:
    """Cheap events (notes and counter changes) for long interleavings."""
    return st.one_of(
        st.builds(NoteAdded, texts(max_size=12)),
        st.builds(CounterChanged, st.sampled_from(["a", "b", "c"]), st.integers(-1000, 1000)),
    )


def events() -> st.SearchStrategy[Any]:
    """Any instance of the test event classes."""
    return st.one_of(
        small_events(),
        st.builds(PayloadAttached, texts(max_size=8), st.binary(max_size=64)),
        rich_events(),
    )


def payloads_of(size: int, compressible: bool = True) -> st.SearchStrategy[bytes]:
    """Exactly `size` bytes: repetitive (lz4 shrinks it) or random (it cannot)."""
    if compressible:
        return st.binary(min_size=1, max_size=8).map(lambda b: (b * (size // len(b) + 1))[:size])
    return st.randoms(use_true_random=False).map(lambda r: r.randbytes(size))


# --- generated classes ---------------------------------------------------------------


@attrs.frozen
class FieldType:
    """An annotation and a strategy for values of it (`hashable`: usable in a frozenset)."""

    annotation: Any
    values: st.SearchStrategy
    hashable: bool = False


_class_names = (f"Gen{i}" for i in itertools.count())

LEAF_TYPES = [  # the scalar annotations that generated classes are built from
    FieldType(str, texts(max_size=8), True),
    FieldType(int, ints(), True),
    FieldType(bool, st.booleans(), True),
    FieldType(bytes, st.binary(max_size=8), True),
    FieldType(float, floats()),
    FieldType(type(None), st.none()),
    FieldType(Any, json_like(4)),
    FieldType(Colour, st.sampled_from(Colour), True),
    FieldType(Level, st.sampled_from(Level), True),
]


def make_event_class(fields: list[FieldType]) -> tuple[type, st.SearchStrategy]:
    """A fresh attrs frozen class with one field `f<i>` per FieldType, and a strategy for
    its instances (class names are unique: union members must have distinct names)."""
    name = next(_class_names)
    cls = attrs.make_class(
        name, {f"f{i}": attrs.field(type=f.annotation) for i, f in enumerate(fields)}, frozen=True
    )
    return cls, st.builds(cls, **{f"f{i}": f.values for i, f in enumerate(fields)})


@st.composite
def _nested_class(draw: Any, inner: st.SearchStrategy[FieldType]) -> FieldType:
    cls, values = make_event_class(draw(st.lists(inner, min_size=1, max_size=3)))
    return FieldType(cls, values, False)


@st.composite
def _union_of_classes(draw: Any, inner: st.SearchStrategy[FieldType]) -> FieldType:
    a, av = make_event_class(draw(st.lists(inner, min_size=1, max_size=2)))
    b, bv = make_event_class(draw(st.lists(inner, min_size=1, max_size=2)))
    return FieldType(typing.Union[a, b], av | bv)


def _wrap(inner: st.SearchStrategy[FieldType]) -> st.SearchStrategy[FieldType]:
    hashable_inner = inner.filter(lambda f: f.hashable)
    return st.one_of(
        inner.map(lambda f: FieldType(typing.Optional[f.annotation], st.none() | f.values)),
        inner.map(lambda f: FieldType(tuple[f.annotation, ...], st.lists(f.values, max_size=3).map(tuple))),
        inner.map(lambda f: FieldType(list[f.annotation], st.lists(f.values, max_size=3))),
        hashable_inner.map(lambda f: FieldType(frozenset[f.annotation], st.frozensets(f.values, max_size=3))),
        st.tuples(inner, inner).map(
            lambda ab: FieldType(tuple[ab[0].annotation, ab[1].annotation], st.tuples(ab[0].values, ab[1].values))
        ),
        st.tuples(st.sampled_from([str, int]), inner).map(
            lambda kv: FieldType(
                dict[kv[0], kv[1].annotation],
                st.dictionaries(texts(max_size=4) if kv[0] is str else ints(), kv[1].values, max_size=3),
            )
        ),
        _nested_class(inner),
        _union_of_classes(inner),
    )


def field_types(max_leaves: int = 6) -> st.SearchStrategy[FieldType]:
    """An annotation the codec supports, with a strategy for its values (recursive)."""
    return st.recursive(st.sampled_from(LEAF_TYPES), _wrap, max_leaves=max_leaves)


def event_classes(max_fields: int = 4) -> st.SearchStrategy[tuple[type, st.SearchStrategy]]:
    """A fresh attrs frozen class with generated fields, and a strategy for its instances."""
    return st.lists(field_types(), min_size=0, max_size=max_fields).map(make_event_class)


@st.composite
def classes_with_instances(draw: Any, max_instances: int = 3) -> tuple[type, list[Any]]:
    """A generated class and a few instances of it."""
    cls, values = draw(event_classes())
    return cls, draw(st.lists(values, min_size=1, max_size=max_instances))


# --- appends ---------------------------------------------------------------------------


@attrs.frozen
class Append:
    """One append call: a stream and the events it appends."""

    stream: str
    events: tuple[Any, ...]


@st.composite
def append_batches(draw: Any, max_streams: int = 6, max_appends: int = 25, max_events: int = 4,
                   event_strategy: st.SearchStrategy | None = None) -> list[Append]:
    """A list of appends spread over a pool of distinct streams (in the order to run them)."""
    pool = draw(st.lists(stream_names(), min_size=1, max_size=max_streams, unique=True))
    evs = event_strategy if event_strategy is not None else small_events()
    return draw(
        st.lists(
            st.builds(Append, st.sampled_from(pool), st.lists(evs, min_size=1, max_size=max_events).map(tuple)),
            min_size=1,
            max_size=max_appends,
        )
    )


# --- file surgery ------------------------------------------------------------------------


def edit_file(path: str, sql: str, params: typing.Sequence[Any] = ()) -> int:
    """Run one statement on a store file through a separate apsw connection and commit it.

    Returns the number of rows it changed. Used to tamper with rows the way someone
    editing the file by hand would (the store's own handle must notice by itself).
    """
    conn = apsw.Connection(str(path))
    try:
        conn.set_busy_timeout(10_000)
        with conn:
            conn.execute(sql, params)
            return conn.changes()
    finally:
        conn.close()


def query_file(path: str, sql: str, params: typing.Sequence[Any] = ()) -> list[tuple]:
    """Read rows from a store file through a separate apsw connection."""
    conn = apsw.Connection(str(path))
    try:
        conn.set_busy_timeout(10_000)
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
