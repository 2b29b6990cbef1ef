"""eventstore.aio: the asyncio API over group commit.

Commands from many tasks share write groups; reads run on reader threads' own
connections and never wait for the writer; a cancelled await leaves its command wholly
committed or not at all; `async with` drains before closing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import eventstore
import eventstore.aio
from eventstore.leases import Acquired, Busy, LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.errors import StoreClosed, WrongExpectedVersion
from eventstore.facades import FACADES
from tests import strategies as gen

pytestmark = pytest.mark.asyncio


def _note(text: str) -> list[gen.NoteAdded]:
    return [gen.NoteAdded(text)]


def _open(tmp_path: Any, **kw: Any) -> Any:
    return eventstore.aio.open(str(tmp_path / "a.db"), registry=gen.EVENTS, **kw)


class _Holder:
    """A thread that keeps a write command open on the store until released."""

    def __init__(self, store: eventstore.Store, stream: str = "held") -> None:
        self.entered, self.release = threading.Event(), threading.Event()

        def run() -> None:
            with store.transaction():
                if store.log.registry is gen.EVENTS:
                    store.append(stream, _note("held"))
                self.entered.set()
                self.release.wait(30)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.entered.wait(30)

    def done(self) -> None:
        self.release.set()
        self.thread.join(30)


async def _until(predicate: Any) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def test_appends_from_many_tasks_share_one_group_and_each_get_their_result(tmp_path):
    """Tasks queued behind a busy writer commit in one transaction, each with its own positions."""
    async with _open(tmp_path) as store:
        group = store.sync.db.group
        holder = _Holder(store.sync)
        tasks = [asyncio.create_task(store.append(f"t{k}", _note(f"{k}"), expected_version=0))
                 for k in range(6)]
        await _until(lambda: len(group.queue) == 6)
        before = group.groups
        holder.done()
        results = await asyncio.gather(*tasks)
        assert group.groups == before + 1
        assert [(r.stream, r.first_position, r.stream_version) for r in results] == [
            (f"t{k}", k + 2, 1) for k in range(6)]
        assert await store.last_position() == 7


async def test_a_conflicting_append_fails_alone_with_its_typed_error(tmp_path):
    """An expected-version conflict inside a group is that task's WrongExpectedVersion; the rest commit."""
    async with _open(tmp_path) as store:
        holder = _Holder(store.sync)
        ok = asyncio.create_task(store.append("s", _note("a"), expected_version=0))
        late = asyncio.create_task(store.append("s", _note("b"), expected_version=0))
        await _until(lambda: len(store.sync.db.group.queue) == 2)
        holder.done()
        assert (await ok).stream_version == 1
        with pytest.raises(WrongExpectedVersion):
            await late
        assert [e.data.text for e in await store.read_stream("s")] == ["a"]


async def test_facade_methods_have_the_same_names_and_results_as_the_sync_ones(tmp_path):
    """Domain commands and reads through aio give what the synchronous facades give."""
    async with eventstore.aio.open(str(tmp_path / "d.db")) as store:
        created = await store.sessions.create("s1")
        assert created.created and created.session.session_id == "s1"
        got = await asyncio.gather(*[store.leases.claim("s1", LeaseOwner(f"o{k}", "i"), 60_000)
                                     for k in range(4)])
        assert sum(isinstance(g, Acquired) for g in got) == 1 and sum(isinstance(g, Busy) for g in got) == 3
        enq = await store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f1", "x"),)))
        batch = enq.batch.batch_id
        assert await store.queue.get("s1", batch) == store.sync.queue.get("s1", batch)
        assert await store.sessions.get("s1") == store.sync.sessions.get("s1")
        assert await store.leases.get("s1") == store.sync.leases.get("s1")
        sync = store.sync.sessions
        assert sorted(dir(store.sessions)) == sorted(
            m for m in dir(sync) if not m.startswith("_") and callable(getattr(sync, m)))
        with pytest.raises(AttributeError):
            store.sessions.no_such_method


async def test_every_listed_read_is_a_method_of_its_facade():
    """READS names only real facade methods (a renamed method must be reclassified)."""
    with eventstore.open(":memory:") as store:  # loads the domain (registers the facades)
        for facade, names in eventstore.aio.READS.items():
            assert facade in FACADES
            cls = type(getattr(store, facade))
            assert all(callable(getattr(cls, n, None)) for n in names), (facade, names)


async def test_reads_do_not_wait_for_the_writer(tmp_path):
    """While a command holds the store's connection, reads answer from their own connections."""
    async with _open(tmp_path) as store:
        await store.append("s", _note("committed"))
        holder = _Holder(store.sync)
        try:
            # Would wait for the holder (and fail the wait_for) if reads used its connection.
            assert await asyncio.wait_for(store.last_position(), 30) == 1
            assert [e.data.text for e in await asyncio.wait_for(store.read_all(), 30)] == ["committed"]
        finally:
            holder.done()
        assert await store.last_position() == 2


async def test_the_event_loop_runs_while_a_command_waits_for_its_group(tmp_path):
    """An awaited command never blocks the loop: other coroutines run meanwhile."""
    async with _open(tmp_path) as store:
        holder = _Holder(store.sync)
        pending = asyncio.create_task(store.append("s", _note("x")))
        ticks = 0
        while ticks < 20:
            await asyncio.sleep(0)
            ticks += 1
        assert not pending.done()
        holder.done()
        assert (await pending).first_position == 2


async def test_an_append_cancelled_while_queued_never_commits(tmp_path):
    """Cancelled before its group started, a command is withdrawn: nothing of it is written."""
    async with _open(tmp_path) as store:
        holder = _Holder(store.sync)
        doomed = asyncio.create_task(store.append("victim", _note("x"), idempotency_key="k1"))
        await _until(lambda: len(store.sync.db.group.queue) == 1)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        holder.done()
        assert await store.stream_version("victim") == 0
        r = await store.append("victim", _note("x"), idempotency_key="k1")
        assert not r.replayed


async def test_an_append_cancelled_after_it_ran_commits_wholly_and_its_key_tells(tmp_path):
    """Cancelled once inside a group, the command still commits; a retry with its key says so."""
    async with _open(tmp_path) as store:
        loop = asyncio.get_running_loop()
        log = store.sync.log
        inline = log.on_append
        victim: list[asyncio.Task[Any]] = []

        def hooked(db: Any, recorded: list[Any]) -> None:
            assert inline is not None
            inline(db, recorded)
            if recorded[0].stream == "victim":
                loop.call_soon_threadsafe(victim[0].cancel)  # arrives before the group's result

        log.on_append = hooked
        first = store.append("victim", _note("a") + _note("b"), idempotency_key="k1")
        victim.append(asyncio.create_task(first))
        with pytest.raises(asyncio.CancelledError):
            await victim[0]
        log.on_append = inline
        again = await store.append("victim", _note("a") + _note("b"), idempotency_key="k1")
        assert again.replayed and again.positions == range(1, 3)
        assert [e.data.text for e in await store.read_stream("victim")] == ["a", "b"]


async def test_async_with_drains_commands_under_way_before_closing(tmp_path):
    """Leaving `async with` waits for every started command; later calls raise StoreClosed."""
    path = str(tmp_path / "a.db")
    async with eventstore.aio.open(path, registry=gen.EVENTS) as store:
        tasks = [asyncio.create_task(store.append("s", _note(f"{k}"))) for k in range(10)]
        await asyncio.sleep(0)  # the appends are queued; the block ends with them in flight
    results = await asyncio.gather(*tasks)
    assert sorted(r.first_position for r in results) == list(range(1, 11))
    assert store.sync.db.closed
    with pytest.raises(StoreClosed):
        await store.append("s", _note("late"))
    with gen.open_store(path) as again:
        assert again.last_position() == 10


async def test_awaiting_open_gives_a_store_to_close_yourself(tmp_path):
    """`await eventstore.aio.open(...)` works without `async with`; close() twice is harmless."""
    store = await _open(tmp_path, readers=0)
    await store.append("s", _note("x"))
    assert await store.get(1) is not None and (await store.anchor()).position == 1
    assert await store.call(store.sync.stream_version, "s") == 1
    await store.close()
    await store.close()


async def test_memory_store_reads_share_the_one_connection(tmp_path):
    """An in-memory store has one connection: reads go through it and still see every commit."""
    async with eventstore.aio.open(":memory:", registry=gen.EVENTS) as store:
        await asyncio.gather(*[store.append("m", _note(f"{k}")) for k in range(5)])
        assert await store.stream_version("m") == 5
        assert (await store.verify(check_file=False)).ok


async def test_a_facade_command_cancelled_while_it_waits_in_its_thread_still_commits_wholly(tmp_path):
    """A domain command already running in its worker thread finishes (and commits) after its
    await is cancelled; closing the store waits for it."""
    path = str(tmp_path / "c.db")
    async with eventstore.aio.open(path) as store:
        holder = _Holder(store.sync)
        task = asyncio.create_task(store.sessions.create("late"))
        await _until(lambda: len(store.sync.db.group.queue) == 1)  # its transaction is queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.done()
    with eventstore.open(path) as again:
        info = again.sessions.get("late")
        assert info is not None and info.event_count == 1


async def test_a_method_listed_as_a_read_that_needs_to_write_runs_again_as_a_command(tmp_path, monkeypatch):
    """A listed read that calls require_writable is refused on the reader's connection before
    writing anything, then runs on the store's connection as a command."""
    monkeypatch.setitem(eventstore.aio.READS, "sessions", eventstore.aio.READS["sessions"] | {"create"})
    async with eventstore.aio.open(str(tmp_path / "r.db")) as store:
        result = await store.sessions.create("s1")
        assert result.created
        assert store.sync.sessions.get("s1") is not None


async def test_no_task_resumes_before_the_commit_holding_its_append(tmp_path, monkeypatch):
    """An awaited append is visible to another connection as soon as the await returns,
    however the group's members are woken (one loop wake-up for all of them)."""
    import apsw

    async with _open(tmp_path, synchronous="full") as store:
        real = store.sync.db.commit_group

        def late() -> Any:
            time.sleep(0.003)  # a member woken before COMMIT would look before its rows exist
            return real()

        monkeypatch.setattr(store.sync.db, "commit_group", late)
        other = apsw.Connection(store.path, flags=apsw.SQLITE_OPEN_READONLY)
        missing: list[tuple[int, int]] = []

        async def task(k: int) -> None:
            for i in range(20):
                r = await store.append(f"s{k}", _note(f"{k}-{i}"))
                seen = other.execute("SELECT count(*) FROM events WHERE position = ?",
                                     (r.first_position,)).fetchall()[0][0]
                if seen != 1:
                    missing.append((k, i))

        await asyncio.gather(*[task(k) for k in range(16)])
        other.close()
        assert missing == []
        group = store.sync.db.group
        assert group.commands > group.groups


async def test_a_group_that_cannot_begin_fails_its_leader_and_the_next_ones_still_run(tmp_path):
    """BEGIN IMMEDIATE refused (another connection holds the write lock past the busy
    timeout): the append that led gets the typed error, and the writer thread that led it
    lives on to run the appends after it."""
    import apsw

    from eventstore.errors import StoreBusy

    store = await _open(tmp_path, busy_timeout_ms=50)
    try:
        await store.append("a", _note("first"))
        other = apsw.Connection(store.path)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreBusy):  # (a dead writer thread would leave it waiting: the timeout)
            await asyncio.wait_for(store.append("a", _note("refused")), 30)
        other.execute("ROLLBACK")
        other.close()
        r = await asyncio.wait_for(store.append("a", _note("after")), 30)
        assert (r.first_position, r.stream_version) == (2, 2)
        assert [e.data.text for e in await store.read_stream("a")] == ["first", "after"]
    finally:
        await asyncio.wait_for(store.close(), 30)
