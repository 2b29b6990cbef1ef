"""EventStoreSaver.put's fast path: what it serializes, what it looks up, and that it
falls back to the projection whenever the thread's stream moved or a put was undone."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from eventstore.integrations.langgraph import EventStoreSaver
from projections import langgraph_threads


def _checkpoint(i: int, messages: list, step: int) -> dict:
    c = empty_checkpoint()
    c["id"] = str(uuid6(clock_seq=i))
    c["channel_values"] = {"messages": messages, "step": step}
    c["channel_versions"] = {"messages": len(messages), "step": step}
    return c


def _config(thread: str, parent: str | None = None) -> dict:
    conf: dict = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    if parent:
        conf["configurable"]["checkpoint_id"] = parent
    return conf


def _grow(saver: EventStoreSaver, thread: str, steps: int) -> list[dict]:
    """Steps 1..steps of a conversation, each adding one message; the saved configs."""
    configs, parent = [], None
    for i in range(1, steps + 1):
        c = _checkpoint(i, [f"message {k}" for k in range(i)], i)
        cfg = saver.put(_config(thread, parent), c, {"step": i}, {"messages": i, "step": i})
        parent = cfg["configurable"]["checkpoint_id"]
        configs.append(cfg)
    return configs


class Counting(JsonPlusSerializer):
    """LangGraph's serde, recording what it is asked to serialize."""

    def __init__(self) -> None:
        super().__init__()
        self.dumped: list[Any] = []

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.dumped.append(obj)
        return super().dumps_typed(obj)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The projection lookups of a parent checkpoint made while putting."""
    seen: list[tuple] = []
    real = langgraph_threads.checkpoint_row

    def counting(db: Any, thread_id: str, ns: str, checkpoint_id: str | None) -> Any:
        seen.append((thread_id, checkpoint_id))
        return real(db, thread_id, ns, checkpoint_id)

    monkeypatch.setattr(langgraph_threads, "checkpoint_row", counting)
    return seen


def test_a_put_serializes_the_changed_channels_once_each_and_no_other(store: Any) -> None:
    """Each changed channel's value goes through the serde once, whole (the list is not
    serialized item by item); an unchanged channel's value not at all; plus the head."""
    serde = Counting()
    saver = EventStoreSaver(store, serde=serde)
    configs = _grow(saver, "t", 3)
    messages = [f"message {k}" for k in range(4)]
    c = _checkpoint(4, messages, 4)
    serde.dumped.clear()
    cfg = saver.put(configs[-1], c, {"step": 4}, {"messages": 4, "step": 4})
    assert [d for d in serde.dumped if d is messages] == [messages]
    assert 4 in serde.dumped
    assert len(serde.dumped) == 3  # messages, step, the head
    # Only `step` changed: the message list is not serialized again.
    c = _checkpoint(5, messages, 5)
    c["channel_versions"]["messages"] = 4
    serde.dumped.clear()
    saver.put(cfg, c, {"step": 5}, {"step": 5})
    assert not any(d is messages or isinstance(d, str) for d in serde.dumped)
    assert len(serde.dumped) == 2  # step, the head
    assert saver.get_tuple(_config("t")).checkpoint["channel_values"] == {"messages": messages, "step": 5}


def test_a_put_after_this_savers_own_put_does_not_look_the_parent_up(store: Any, lookups: list) -> None:
    """LangGraph's loop puts each checkpoint with the previous one as parent: the saver
    knows where that one is, so the projection is asked only for the first parent."""
    saver = EventStoreSaver(store)
    configs = _grow(saver, "t", 5)
    assert lookups == []
    events = list(store.read_stream("langgraph:t"))
    assert [ev.data.parent for ev in events[1:]] == [ev.position for ev in events[:-1]]
    # Another saver (no notes of its own) asks the projection once, then knows.
    other = EventStoreSaver(store)
    c = _checkpoint(6, [f"message {k}" for k in range(6)], 6)
    cfg = other.put(configs[-1], c, {"step": 6}, {"messages": 6, "step": 6})
    assert lookups == [("t", configs[-1]["configurable"]["checkpoint_id"])]
    c = _checkpoint(7, [f"message {k}" for k in range(7)], 7)
    other.put(cfg, c, {"step": 7}, {"messages": 7, "step": 7})
    assert len(lookups) == 1


def test_a_stream_moved_by_another_writer_sends_the_put_to_the_projection(store: Any, lookups: list) -> None:
    """When another saver deleted the thread since this saver's last put, the parent is no
    longer in the thread: the put must notice (the stream moved), not point at the old event."""
    saver = EventStoreSaver(store)
    configs = _grow(saver, "t", 3)
    EventStoreSaver(store).delete_thread("t")
    c = _checkpoint(4, [f"message {k}" for k in range(4)], 4)
    saver.put(configs[-1], c, {"step": 4}, {"messages": 4, "step": 4})
    assert lookups == [("t", configs[-1]["configurable"]["checkpoint_id"])]
    last = list(store.read_stream("langgraph:t"))[-1].data
    assert not isinstance(last.parent, int)  # kept as the parent's id: the thread lacks it
    assert [e[2] for e in last.channels][0] == "list"  # not an append to a deleted checkpoint
    tup = saver.get_tuple(_config("t"))
    assert tup.checkpoint["channel_values"]["messages"] == [f"message {k}" for k in range(4)]
    assert tup.parent_config["configurable"]["checkpoint_id"] == configs[-1]["configurable"]["checkpoint_id"]


def test_a_put_undone_by_the_callers_transaction_is_not_taken_as_the_next_parent(store: Any) -> None:
    """A put inside the caller's transaction that rolls back leaves no note: its position
    goes to the next event appended, which must not be taken for the undone checkpoint."""
    saver = EventStoreSaver(store)
    configs = _grow(saver, "t", 2)
    undone = _checkpoint(3, ["message 0", "message 1", "message 2"], 3)
    with pytest.raises(RuntimeError):
        with store.transaction():
            saver.put(configs[-1], undone, {"step": 3}, {"messages": 3, "step": 3})
            raise RuntimeError("the caller gives up")
    # Another writer takes the position (and stream version) the undone put had.
    EventStoreSaver(store).put_writes(configs[-1], [("messages", "pending")], "task-1")
    c = _checkpoint(4, [f"message {k}" for k in range(4)], 4)
    saver.put(_config("t", undone["id"]), c, {"step": 4}, {"messages": 4, "step": 4})
    last = list(store.read_stream("langgraph:t"))[-1].data
    assert not isinstance(last.parent, int)
    tup = saver.get_tuple(_config("t"))
    assert tup.checkpoint["channel_values"]["messages"] == [f"message {k}" for k in range(4)]
    assert tup.parent_config["configurable"]["checkpoint_id"] == undone["id"]


def test_a_large_item_added_to_a_list_goes_to_the_blob_store(store: Any) -> None:
    """The one-new-item path still sends an item over the threshold to the blob store."""
    saver = EventStoreSaver(store, blob_threshold=64)
    first = saver.put(_config("t"), _checkpoint(1, ["short"], 1), {}, {"messages": 1, "step": 1})
    big = "x" * 500
    saver.put(first, _checkpoint(2, ["short", big], 2), {}, {"messages": 2, "step": 2})
    entry = list(store.read_stream("langgraph:t"))[-1].data.channels[0]
    assert entry[2] == "append" and entry[3][2] == 1
    assert isinstance(entry[3][3][0], list) and isinstance(entry[3][3][0][1], str)  # [type, ref]
    for reader in (saver, EventStoreSaver(store)):
        assert reader.get_tuple(_config("t")).checkpoint["channel_values"]["messages"] == ["short", big]
