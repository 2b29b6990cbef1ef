"""Hostile payloads written straight into rows, read back every way the store reads.

Each hypothesis example plants rows (random bytes, msgpack of the wrong shape for a
registered domain event class, nesting bombs, lz4 blocks that lie about their size)
into a scratch store opened with 1 MiB payload limits, then reads them with `get`,
`read_all` (the page decoder's fast path), `read_stream` and the raw variants. Every read
ends in a decoded event or a typed error, never anything else, and within a second.
The libFuzzer run (atheris) is in `python tools/torture.py fuzz`.
"""

from __future__ import annotations

import os
import sys
import tempfile

import lz4.block
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from reliability import fuzz  # noqa: E402

TYPES = None


@pytest.fixture(scope="module")
def planter():
    with tempfile.TemporaryDirectory() as tmp:
        p = fuzz.Planter(os.path.join(tmp, "fuzz.db"))
        yield p
        p.close()


def _types() -> list[str]:
    global TYPES
    if TYPES is None:
        from eventstore.store import load_domains

        load_domains()
        TYPES = sorted(eventstore.EVENTS.names())
    return TYPES


type_names = st.builds(lambda i: _types()[i % len(_types())], st.integers(0, 10_000))
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10) | st.integers(-(2 ** 63), 2 ** 63 - 1), inner, max_size=4),
    max_leaves=20)


def _assert_typed(planter, type_name: str, schema: int, flags: int, payload: bytes) -> fuzz.Verdict:
    v = planter.read(planter.plant(type_name, schema, flags, payload))
    assert v.kind in ("decoded", "typed"), f"{type_name} flags={flags}: {v.detail}"
    assert v.seconds < fuzz.SLOW_S, f"{type_name}: {v.seconds:.2f}s"
    return v


@given(st.lists(st.tuples(type_names, st.binary(max_size=400)), min_size=1, max_size=20))
def test_random_bytes_as_payloads_end_in_a_typed_error_or_an_event(planter, rows):
    for type_name, payload in rows:
        _assert_typed(planter, type_name, eventstore.EVENTS.for_name(type_name).schema, 0, payload)


@given(st.lists(st.tuples(type_names, st.dictionaries(st.text(max_size=12), msgpack_values, max_size=6)
                          | msgpack_values, st.booleans()), min_size=1, max_size=20))
def test_msgpack_of_the_wrong_shape_for_registered_event_classes_is_a_typed_error(planter, rows):
    for type_name, value, compress in rows:
        et = eventstore.EVENTS.for_name(type_name)
        # Start from the class's own field names, so that shapes come close to valid ones.
        if isinstance(value, dict) and value:
            import attrs

            names = [f.name for f in attrs.fields(et.cls)]
            value = {names[i % len(names)] if names else k: v for i, (k, v) in enumerate(value.items())}
        data = msgpack.packb(value, use_bin_type=True)
        flags = 0
        if compress:
            data, flags = lz4.block.compress(data, store_size=True), 1
        _assert_typed(planter, type_name, et.schema, flags, data)


@given(st.integers(500, 200_000), st.sampled_from([b"\x91", b"\x81\xa1k", b"\x92\xc0"]))
def test_nesting_bombs_are_a_typed_error_or_a_plain_event_without_a_recursion_error(planter, depth, opener):
    _assert_typed(planter, "demo.tool_called", 1, 0, b"\x83\xa4tool\xa1t\xa9arguments\x81\xa1a" + opener * depth
                  + b"\xc0\xa6result\xa1r")


@given(st.integers(fuzz.LIMIT + 1, 2 ** 32 - 1), st.binary(max_size=64))
def test_lz4_blocks_claiming_more_than_the_limit_are_refused_before_allocating(planter, size, body):
    v = _assert_typed(planter, "demo.user_message", 1, 1, fuzz.lz4_claiming(size, body))
    assert v.kind == "typed" and "PayloadTooLarge" in v.detail


@given(st.integers(0, fuzz.LIMIT), st.binary(max_size=300))
def test_garbage_lz4_blocks_are_a_typed_error(planter, size, body):
    _assert_typed(planter, "demo.user_message", 1, 1, fuzz.lz4_claiming(size, body))


def test_unknown_type_names_and_newer_schemas_are_typed_errors(planter):
    data = msgpack.packb({"text": "hello"})
    for type_name, schema in (("no.such_type", 1), ("demo.user_message", 99), ("", 1)):
        v = _assert_typed(planter, type_name, schema, 0, data)
        assert v.kind == "typed", type_name


def test_an_event_over_the_payload_limit_is_refused_before_anything_is_written(planter):
    from eventstore.demo import UserMessage

    before = planter.store.anchor()
    with pytest.raises(eventstore.PayloadTooLarge):
        planter.store.append("big", [UserMessage("x" * (fuzz.LIMIT + 1))])
    assert planter.store.anchor() == before


def test_a_stored_payload_over_the_limit_is_refused_on_read_even_uncompressed(planter):
    data = msgpack.packb({"text": "x" * (2 * fuzz.LIMIT)})
    v = _assert_typed(planter, "demo.user_message", 1, 0, data)
    assert v.kind == "typed" and "PayloadTooLarge" in v.detail, v


def _peak(planter, row: bytes) -> tuple[fuzz.Verdict, int]:
    import tracemalloc

    position = planter.plant("demo.user_message", 1, 1, row)
    tracemalloc.start()
    try:
        v = planter.read(position)
        return v, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_decoding_memory_follows_the_configured_limit_not_the_size_of_the_row():
    """A few kilobytes of lz4 can inflate to megabytes of empty msgpack arrays. Past the limit
    the row is refused before anything is inflated; within it, Python objects cost about 130
    bytes per inflated byte (the figure docs/reliability.md gives), never more."""
    with tempfile.TemporaryDirectory() as tmp:
        planter = fuzz.Planter(os.path.join(tmp, "amp.db"))
        try:
            over = fuzz.amplification(4 * fuzz.LIMIT)
            v, peak = _peak(planter, over)
            assert v.kind == "typed" and "PayloadTooLarge" in v.detail, v
            assert peak < fuzz.LIMIT, f"a refused {len(over)}-byte row still allocated {peak} bytes"
            within = fuzz.amplification(fuzz.LIMIT // 4)
            v, peak = _peak(planter, within)
            assert v.kind in ("decoded", "typed"), v
            assert peak < 160 * (fuzz.LIMIT // 4), f"{peak / 2 ** 20:.0f} MiB for {fuzz.LIMIT // 4} inflated bytes"
        finally:
            planter.close()
