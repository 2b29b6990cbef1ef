"""EventStoreSaver beyond the conformance suite: what the events hold (only changed channels,
list appends, blobs), round trips of any sequence of list edits, tombstones, time travel,
rebuilds, the configured serde, and typed errors for bad input."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

import eventstore
from eventstore.debug import describe
from eventstore.integrations import _langgraph_codec as codec
from eventstore.integrations.langgraph import EventStoreSaver


def _put(
    saver: EventStoreSaver, thread: str, i: int, values: dict, versions: dict, parent: str | None = None
) -> dict:
    c = empty_checkpoint()
    c["id"] = str(uuid6(clock_seq=i))
    c["channel_values"] = values
    c["channel_versions"] = versions
    conf: dict = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    if parent:
        conf["configurable"]["checkpoint_id"] = parent
    return saver.put(conf, c, {"source": "loop", "step": i}, versions)


def _grow(saver: EventStoreSaver, thread: str, steps: int) -> list[dict]:
    configs, parent = [], None
    for i in range(1, steps + 1):
        cfg = _put(
            saver,
            thread,
            i,
            {"messages": [f"m{k}" for k in range(i)], "step": i},
            {"messages": i, "step": i},
            parent,
        )
        parent = cfg["configurable"]["checkpoint_id"]
        configs.append(cfg)
    return configs


def test_put_records_only_changed_channels_and_each_message_once(store: Any) -> None:
    """A growing list is stored as an append of the new item; an unchanged channel's value is
    not in the event, which points at the entry holding it; every checkpoint reads back whole."""
    saver = EventStoreSaver(store)
    configs = _grow(saver, "t", 6)
    c = empty_checkpoint()
    c["id"] = str(uuid6(clock_seq=99))
    c["channel_values"] = {"messages": [f"m{k}" for k in range(6)], "step": 7}
    c["channel_versions"] = {"messages": 6, "step": 7}
    saver.put(configs[-1], c, {"step": 7}, {"step": 7})
    events = [ev.data for ev in store.read_stream("langgraph:t")]
    kinds = [[(e[0], e[2]) for e in ev.channels] for ev in events]
    assert kinds[0] == [("messages", "list"), ("step", "value")]
    assert kinds[1:6] == [[("messages", "append"), ("step", "value")]] * 5
    assert kinds[6] == [("step", "value"), ("messages", "ref")]
    positions = [ev.position for ev in store.read_stream("langgraph:t")]
    assert events[6].channels[1][3] == [positions[5], 0]
    # The id is kept as its 16 bytes, the parent as its event's position.
    assert isinstance(events[6].id, bytes) and len(events[6].id) == 16
    assert events[0].parent is None and [ev.parent for ev in events[1:]] == positions[:6]
    assert all(len(ev.channels[0][3][3]) == 1 for ev in events[1:6])
    for i, cfg in enumerate(configs, start=1):
        assert saver.get_tuple(cfg).checkpoint["channel_values"] == {
            "messages": [f"m{k}" for k in range(i)],
            "step": i,
        }
    latest = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert latest.checkpoint["channel_values"] == {"messages": [f"m{k}" for k in range(6)], "step": 7}


@given(
    lists=st.lists(
        st.lists(st.sampled_from(["a", "b", "c", "long " * 10]), max_size=8), min_size=1, max_size=8
    )
)
def test_any_sequence_of_list_values_reads_back_exactly(tmp_path_factory: Any, lists: list) -> None:
    """Whatever edits a list channel goes through (appends, removals, rewrites), every
    checkpoint reads back its own value, from the writing saver and from a fresh one."""
    path = str(tmp_path_factory.mktemp("lg") / "s.db")
    with eventstore.open(path, synchronous="normal") as store:
        saver = EventStoreSaver(store)
        configs, parent = [], None
        for i, value in enumerate(lists, start=1):
            cfg = _put(saver, "t", i, {"xs": value}, {"xs": i}, parent)
            parent = cfg["configurable"]["checkpoint_id"]
            configs.append(cfg)
        fresh = EventStoreSaver(store)
        for cfg, value in zip(configs, lists):
            assert saver.get_tuple(cfg).checkpoint["channel_values"]["xs"] == value
            assert fresh.get_tuple(cfg).checkpoint["channel_values"]["xs"] == value


_versions = st.one_of(st.integers(-5, 10**12), st.text(max_size=6), st.floats(allow_nan=False), st.booleans())
_int64 = st.integers(-(2**63), 2**63 - 1)
_plain = st.one_of(st.none(), st.booleans(), _int64, st.text(max_size=8), st.lists(_int64, max_size=2))
_UUID6_IDS = [str(uuid6(clock_seq=i)) for i in range(4)]
_keys = st.sampled_from(
    [
        "v",
        "ts",
        "channel_versions",
        "versions_seen",
        "pending_sends",
        "updated_channels",
        "ts_us",
        "ts_id",
        "-",
        "x",
    ]
)
_ts = st.one_of(
    st.datetimes(
        timezones=st.sampled_from([datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=2))])
    ).map(lambda d: d.isoformat()),
    st.text(max_size=12),
)


@given(
    fields=st.dictionaries(
        _keys, st.one_of(_plain, st.dictionaries(st.text(max_size=4), _versions, max_size=3))
    ),
    ts=st.one_of(st.none(), _ts),
    versions=st.dictionaries(st.sampled_from(["a", "b", "c"]), _versions, max_size=3),
    changed=st.lists(st.tuples(st.sampled_from(["a", "b", "d"]), _versions), max_size=3),
    checkpoint_id=st.one_of(st.sampled_from(_UUID6_IDS), st.text(max_size=40)),
)
def test_the_head_rebuilds_any_checkpoint_exactly(
    fields: dict, ts: Any, versions: dict, changed: list, checkpoint_id: str
) -> None:
    """Whatever the checkpoint's fields (defaults or not, a ts text in any form, versions of
    any type, keys the packing itself uses), the head rebuilds it with the same values of
    the same types, through the serde."""
    skeleton = dict(fields)
    if ts is not None:
        skeleton["ts"] = ts
    if versions or "channel_versions" not in skeleton:
        skeleton["channel_versions"] = versions
    entries = [[ch, v, "ref", [1, 0]] for ch, v in changed]
    entries += [[ch, v, "ref", [1, 0]] for ch, v in versions.items() if not any(c == ch for c, _ in changed)]
    serde = JsonPlusSerializer()
    kept = serde.loads_typed(serde.dumps_typed(codec.pack(skeleton, entries, checkpoint_id)))
    assert codec.same(codec.unpack(kept, entries, checkpoint_id), skeleton)


def test_large_values_go_to_the_blob_store(store: Any) -> None:
    """A value over the blob threshold is stored once in store.blobs; the event holds its ref."""
    saver = EventStoreSaver(store, blob_threshold=1024)
    big = "x" * 5000
    cfg = _put(saver, "t", 1, {"doc": big, "items": [big, "small"]}, {"doc": 1, "items": 1})
    ev = next(iter(store.read_stream("langgraph:t"))).data
    doc = ev.channels[0]
    assert doc[2] == "blob" and store.blobs.has(doc[3][1])
    assert isinstance(ev.channels[1][3][0], list) and store.blobs.has(ev.channels[1][3][0][1])
    assert saver.get_tuple(cfg).checkpoint["channel_values"] == {"doc": big, "items": [big, "small"]}


def test_delete_thread_tombstones_and_keeps_the_events(store: Any) -> None:
    """delete_thread appends a tombstone; the thread reads as empty; its events stay in the
    log and describe themselves; the id can be used again."""
    saver = EventStoreSaver(store)
    _grow(saver, "t", 3)
    saver.delete_thread("t")
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None
    assert list(saver.list({"configurable": {"thread_id": "t"}})) == []
    events = list(store.read_stream("langgraph:t"))
    assert len(events) == 4
    assert describe(events[-1]) == "thread t deleted by delete_thread (its events stay in the log)"
    _grow(saver, "t", 1)
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}).checkpoint["channel_values"]["step"] == 1
    assert store.verify().ok and store.verify_projections().ok


def test_prune_copy_and_delete_for_runs_are_events_with_readable_lines(store: Any) -> None:
    """copy_thread, prune(keep_latest) and delete_for_runs each append events naming what
    they did; the results match LangGraph's semantics."""
    saver = EventStoreSaver(store)
    _grow(saver, "src", 3)
    saver.copy_thread("src", "dst")
    saver.prune(["dst"])
    assert len(list(saver.list({"configurable": {"thread_id": "dst"}}))) == 1
    assert len(list(saver.list({"configurable": {"thread_id": "src"}}))) == 3
    lines = [describe(ev) for ev in store.read_stream("langgraph:dst")]
    assert lines == ["thread src copied to dst (3 checkpoints)", "thread dst: 2 checkpoints removed by prune"]
    run_cfg = {"configurable": {"thread_id": "r", "checkpoint_ns": "", "run_id": "run-1"}}
    c = empty_checkpoint()
    saver.put(run_cfg, c, {"run_id": "run-1"}, {})
    saver.delete_for_runs(["run-1"])
    assert saver.get_tuple({"configurable": {"thread_id": "r"}}) is None
    assert (
        describe(list(store.read_stream("langgraph:r"))[-1])
        == "thread r: 1 checkpoint removed by delete_for_runs"
    )


def test_time_travel_view_reads_the_past_and_refuses_writes(store: Any) -> None:
    """A saver on store.at(p) lists the checkpoints that existed at p (even of a thread
    deleted since) and raises ReadOnlyView on put."""
    saver = EventStoreSaver(store)
    _grow(saver, "t", 4)
    at_two = list(store.read_stream("langgraph:t"))[1].position
    saver.delete_thread("t")
    with store.at(at_two) as view:
        past = EventStoreSaver(view)
        found = list(past.list({"configurable": {"thread_id": "t"}}))
        assert [t.checkpoint["channel_values"]["step"] for t in found] == [2, 1]
        with pytest.raises(eventstore.ReadOnlyView):
            _put(past, "t", 9, {"step": 9}, {"step": 9})


def test_rebuilt_projection_serves_the_same_checkpoints(store: Any) -> None:
    """After `store.rebuild(["langgraph"])`, a fresh saver reads the same tuples."""
    saver = EventStoreSaver(store)
    configs = _grow(saver, "t", 5)
    saver.put_writes(configs[-1], [("messages", "pending")], "task-1")
    before = [saver.get_tuple(c) for c in configs]
    store.rebuild(["langgraph"])
    after = [EventStoreSaver(store).get_tuple(c) for c in configs]
    assert after == before
    assert after[-1].pending_writes == [("task-1", "messages", "pending")]


def test_the_configured_serde_writes_every_value(store: Any) -> None:
    """Values go through the serde the saver was given (here one that records its calls)."""
    seen: list[Any] = []

    class Recording(JsonPlusSerializer):
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            seen.append(obj)
            return super().dumps_typed(obj)

    saver = EventStoreSaver(store, serde=Recording())
    cfg = _put(saver, "t", 1, {"note": {"k": 1}}, {"note": 1})
    assert {"k": 1} in seen
    assert saver.get_tuple(cfg).checkpoint["channel_values"] == {"note": {"k": 1}}


def test_bad_input_raises_typed_errors_and_writes_nothing(store: Any) -> None:
    """A config without thread_id, an unknown prune strategy, copying a thread onto itself
    and a non-store argument raise InvalidArgument naming the problem; the log is unchanged."""
    saver = EventStoreSaver(store)
    _grow(saver, "t", 1)
    before = store.last_position()
    with pytest.raises(eventstore.InvalidArgument, match="thread_id is required"):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(eventstore.InvalidArgument, match="strategy must be one of"):
        saver.prune(["t"], strategy="oldest")
    with pytest.raises(eventstore.InvalidArgument, match="same thread"):
        asyncio.run(saver.acopy_thread("t", "t"))
    with pytest.raises(eventstore.InvalidArgument, match="needs an eventstore Store"):
        EventStoreSaver("agent.db")  # type: ignore[arg-type]
    assert store.last_position() == before


def test_blob_gc_keeps_a_live_threads_blobs_and_frees_a_deleted_ones(store: Any) -> None:
    """store.sessions.gc() never deletes a blob a live LangGraph thread holds; after the
    thread's tombstone the blob is collectable."""
    saver = EventStoreSaver(store, blob_threshold=1024)
    cfg = _put(saver, "t", 1, {"doc": "y" * 5000}, {"doc": 1})
    ref = next(iter(store.read_stream("langgraph:t"))).data.channels[0][3][1]
    store.sessions.gc(min_age_ms=0)  # no grace: only the thread roots it
    assert store.blobs.has(ref)
    assert saver.get_tuple(cfg).checkpoint["channel_values"]["doc"] == "y" * 5000
    saver.delete_thread("t")
    store.sessions.gc(min_age_ms=0)
    assert not store.blobs.has(ref)


def test_caches_stay_bounded_and_evicted_entries_read_back_from_the_log(store: Any) -> None:
    """With a cache of 2 entries, 5 threads each growing a list still read back exactly: what
    fell out of the caches is read again from the events."""
    saver = EventStoreSaver(store, cache_size=2)
    configs = {t: _grow(saver, t, 3) for t in ("a", "b", "c", "d", "e")}
    assert len(saver._maps) <= 2 and len(saver._items) <= 2 and len(saver._events) <= 2
    for cfgs in configs.values():
        for i, cfg in enumerate(cfgs, start=1):
            assert saver.get_tuple(cfg).checkpoint["channel_values"]["messages"] == [
                f"m{k}" for k in range(i)
            ]
