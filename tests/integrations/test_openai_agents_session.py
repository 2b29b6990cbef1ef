"""EventStoreSession against the Agents SDK's own SQLiteSession: the same calls give the same
answers (hypothesis), every call is an event, and the history can be read back in time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents.memory import SQLiteSession
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from eventstore.debug import describe
from eventstore.integrations.openai_agents import EventStoreSession

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
item = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                              "content": st.text(max_size=30)}, optional={"extra": json_value})
op = st.one_of(
    st.tuples(st.just("add"), st.lists(item, max_size=4)),
    st.tuples(st.just("get"), st.one_of(st.none(), st.integers(-3, 8))),
    st.tuples(st.just("pop"), st.none()),
    st.tuples(st.just("clear"), st.none()),
)


async def _apply(session: Any, name: str, arg: Any) -> Any:
    if name == "add":
        return await session.add_items(arg)
    if name == "get":
        return await session.get_items(arg)
    if name == "pop":
        return await session.pop_item()
    return await session.clear_session()


@given(ops=st.lists(op, max_size=25))
def test_same_answers_as_sqlite_session_on_any_call_sequence(tmp_path_factory: Any, ops: list) -> None:
    """Every call of a random sequence answers exactly as the SDK's SQLiteSession does,
    and the final histories are equal."""
    path = str(tmp_path_factory.mktemp("agents") / "s.db")

    async def run() -> None:
        ref = SQLiteSession("s1")
        with eventstore.open(path, synchronous="normal") as store:
            ours = EventStoreSession("s1", store)
            for name, arg in ops:
                assert await _apply(ours, name, arg) == await _apply(ref, name, arg), (name, arg)
            assert await ours.get_items() == await ref.get_items()
        ref.close()

    asyncio.run(run())


def test_sessions_are_isolated_and_survive_reopening(tmp_path: Any) -> None:
    """Two session ids in one store never see each other's items; a reopened store has them all."""
    path = str(tmp_path / "s.db")

    async def run() -> None:
        with eventstore.open(path) as store:
            a, b = EventStoreSession("a", store), EventStoreSession("b", store)
            await a.add_items([{"role": "user", "content": "to a"}])
            await b.add_items([{"role": "user", "content": "to b"}, {"role": "assistant", "content": "b2"}])
            assert await a.pop_item() == {"role": "user", "content": "to a"}
        with eventstore.open(path) as store:
            assert await EventStoreSession("a", store).get_items() == []
            assert [i["content"] for i in await EventStoreSession("b", store).get_items()] == ["to b", "b2"]

    asyncio.run(run())


def test_history_is_auditable_and_time_travellable(tmp_path: Any) -> None:
    """Each call is an event with a readable description; a cleared session's items can be
    read at the position before the clear, and the chain verifies."""
    path = str(tmp_path / "s.db")

    async def run() -> None:
        with eventstore.open(path) as store:
            s = EventStoreSession("chat", store)
            await s.add_items([{"role": "user", "content": "hello"}])
            await s.add_items([{"role": "assistant", "content": "hi there"}])
            before_clear = store.last_position()
            await s.clear_session()
            assert await s.get_items() == []
            lines = [describe(ev) for ev in store.read_stream("agents:chat")]
            assert lines == ["session chat: 1 item(s) added: user: 'hello'",
                             "session chat: 1 item(s) added: assistant: 'hi there'",
                             "session chat cleared (2 items removed; events stay in the log)"]
            with store.at(before_clear, streams=["agents:chat"]) as view:
                past = EventStoreSession("chat", view)
                assert await past.get_items() == [{"role": "user", "content": "hello"},
                                                  {"role": "assistant", "content": "hi there"}]
                with pytest.raises(eventstore.ReadOnlyView):
                    await past.pop_item()
            assert store.verify().ok
            assert store.verify_projections().ok

    asyncio.run(run())


def test_non_json_item_is_refused_and_nothing_is_written(tmp_path: Any) -> None:
    """An item JSON cannot hold raises InvalidArgument naming the session; the log is unchanged."""
    with eventstore.open(str(tmp_path / "s.db")) as store:
        s = EventStoreSession("x", store)
        before = store.last_position()
        with pytest.raises(eventstore.InvalidArgument, match="session x"):
            asyncio.run(s.add_items([{"role": "user", "content": object()}]))
        assert store.last_position() == before
