"""The PostgreSQL backend's write path and followers: round trips per append, the group
commit, and LISTEN/NOTIFY wake-ups with catch-up by position.

Round trips are counted on the wire side: every message psycopg sends and waits for goes
through `psycopg.Connection.execute` (or a cursor's executemany), which these tests wrap;
the backend's own `round_trips` counter must agree. These tests use the server at
EVENTSTORE_TEST_POSTGRES (default: the local one) and fail, never skip, when it is down.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator

import psycopg
import pytest

import eventstore
import eventstore.aio
from eventstore.storage.pg_follow import CommitWaiter
from tests import postgres_support as pg
from tests import strategies as gen


@pytest.fixture
def url() -> Iterator[str]:
    """The URL of a fresh schema, dropped afterwards."""
    pg.connect().close()
    schema = pg.new_schema_name()
    yield pg.url_for(schema)
    pg.drop_schemas([schema])


class Wire:
    """Counts the messages each connection sends and waits for (psycopg has no trace of its own)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: dict[int, list[str]] = {}
        original = psycopg.Connection.execute

        def execute(conn: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            self.sent.setdefault(id(conn), []).append(str(query))
            return original(conn, query, params, **kw)

        monkeypatch.setattr(psycopg.Connection, "execute", execute)
        many = psycopg.Cursor.executemany

        def executemany(cur: Any, query: Any, params: Any, **kw: Any) -> Any:
            # One pipelined message for all its rows, one wait for the answers.
            self.sent.setdefault(id(cur.connection), []).append(str(query))
            return many(cur, query, params, **kw)

        monkeypatch.setattr(psycopg.Cursor, "executemany", executemany)

    def count(self, store: eventstore.Store, action: Any) -> int:
        """Messages the store's connection sent during `action()` (checked against its counter)."""
        conn = store.db._conn
        before, counted = len(self.sent.get(id(conn), [])), store.db.round_trips
        action()
        sent = len(self.sent.get(id(conn), [])) - before
        assert store.db.round_trips - counted == sent
        return sent


def test_a_lone_one_event_append_is_two_round_trips_and_one_for_a_writer_alone(url, monkeypatch):
    """BEGIN + lock + clock + head in one message, the insert + catalogue + COMMIT + flush in
    the other; the same after another process wrote, for a stream this handle appends to.
    A handle that found nobody else writing twice in a row speculates: the lock, the check
    that nobody else wrote, the rows and the COMMIT in one message."""
    wire = Wire(monkeypatch)
    # synchronous="full": the COMMIT message also carries the statement that waits for the flush.
    with gen.open_store(url, synchronous="full") as store, gen.open_store(url) as other:
        store.append("a", [gen.CounterChanged("a", 0)])
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", 1)])) == 2
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", 2)])) == 2
        # Nobody else wrote during the last two: one message.
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", 3)])) == 1
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", 4)])) == 1
        other.append("b", [gen.CounterChanged("b", 0)])
        # The speculative message's check fails under the lock (nothing of it is kept), the
        # ROLLBACK, then the ordinary two messages.
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", 5)])) == 4
        other.append("b", [gen.CounterChanged("b", 1)])
        # Another writer committed: the head, the projection states and this handle's recent
        # streams' versions were prefetched under the lock, in the first message.
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", 6)])) == 2
        # A stream this handle never wrote: its version costs one more.
        other.append("b", [gen.CounterChanged("b", 2)])
        assert wire.count(store, lambda: store.append("c", [gen.CounterChanged("c", 0)])) == 3
        # 1,000 events: the BEGIN message, the rows (20 statements of 50 rows, pipelined), the COMMIT.
        assert wire.count(store, lambda: store.append("a", [gen.CounterChanged("a", k) for k in range(1000)])) == 3
        assert [e.position for e in store.read_all()] == list(range(1, 1012))
        assert store.verify().ok


def test_a_failing_statement_in_a_batch_aborts_the_whole_transaction(url):
    """A deferred statement's error reaches the caller at the next round trip (here the
    COMMIT) and nothing of the transaction stays."""
    with gen.open_store(url) as store:
        store.append("a", [gen.CounterChanged("a", 0)])
        with pytest.raises(eventstore.IntegrityError):
            with store.transaction():
                store.append("a", [gen.CounterChanged("a", 1)])
                store.db.execute("INSERT INTO catalogue_streams SELECT * FROM catalogue_streams")  # duplicate key
        assert store.last_position() == 1
        assert store.append("a", [gen.CounterChanged("a", 1)]).first_position == 2
        assert store.verify().ok


def test_commands_queued_behind_a_transaction_share_its_commit(url):
    """Threads that write while another thread's transaction is open queue, then join it:
    one transaction, one lock, one flush for all; a failing command is rolled back alone."""
    with gen.open_store(url) as store:
        group = store.db.group
        release = threading.Event()
        results: dict[int, Any] = {}

        def holder() -> None:
            with store.transaction():
                results[-1] = store.append("h", [gen.CounterChanged("h", 0)])
                release.wait(60)

        def caller(i: int) -> None:
            expected = 5 if i == 3 else eventstore.ANY  # the third caller's expectation fails
            try:
                results[i] = store.append(f"s{i}", [gen.CounterChanged(str(i), 0)], expected_version=expected)
            except eventstore.WrongExpectedVersion as exc:
                results[i] = exc

        first = threading.Thread(target=holder)
        first.start()
        while -1 not in results:
            threading.Event().wait(0.005)
        groups, commands = group.groups, group.commands
        callers = [threading.Thread(target=caller, args=(i,)) for i in range(5)]
        for t in callers:
            t.start()
        while len(group.queue) < 5:  # every caller queued behind the open transaction
            threading.Event().wait(0.005)
        release.set()
        first.join()
        for t in callers:
            t.join()
        assert group.groups - groups == 1
        assert group.commands - commands == 6
        assert isinstance(results[3], eventstore.WrongExpectedVersion)
        positions = sorted(r.first_position for r in results.values() if isinstance(r, eventstore.AppendResult))
        assert positions == [1, 2, 3, 4, 5]
        assert store.last_position() == 5
        assert store.stream_info("s3") is None
        assert store.verify().ok


def _follow_into(store: eventstore.Store, seen: list, stop: threading.Event, **kw: Any) -> threading.Thread:
    def run() -> None:
        for ev in store.follow(1, stop=stop, **kw):
            seen.append(ev.position)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_notification_wakes_a_follower_that_would_otherwise_sleep_an_hour(url):
    """With an hour's poll interval, only the commit's notification can deliver the events
    before the watchdog stops the follower."""
    with gen.open_store(url, synchronous="full") as writer, gen.open_store(url, synchronous="full") as follower:
        stop, seen = threading.Event(), []
        watchdog = threading.Timer(60, stop.set)
        watchdog.start()
        try:
            t = _follow_into(follower, seen, stop, poll_interval=3600)
            while not follower.db._followers._pool or not follower.db._followers._pool.get_stats().get("pool_size"):
                threading.Event().wait(0.005)  # the follower is listening
            for i in range(3):
                writer.append("a", [gen.CounterChanged("a", i)])
                while len(seen) < i + 1 and not stop.is_set():
                    threading.Event().wait(0.005)
            assert not stop.is_set(), "the follower was not woken by the commits' notifications"
            stop.set()
            t.join()
        finally:
            watchdog.cancel()
        assert seen == [1, 2, 3]


def test_a_follower_that_hears_no_notification_still_catches_up_by_position(url):
    """Notifications lost (the follower listens on a channel nobody notifies): each poll
    interval reads from where it stopped, so every event arrives, once, in order."""
    with gen.open_store(url) as writer, gen.open_store(url) as follower:
        waiters: list[CommitWaiter] = []

        def deaf() -> CommitWaiter:
            db = follower.db
            waiters.append(CommitWaiter(db._followers, "lash_nobody_notifies", True, False))
            return waiters[-1]

        follower.db.commit_waiter = deaf  # type: ignore[attr-defined]
        stop, seen = threading.Event(), []
        watchdog = threading.Timer(120, stop.set)
        watchdog.start()
        try:
            t = _follow_into(follower, seen, stop, poll_interval=0.02)
            for i in range(20):
                writer.append(f"s{i % 3}", [gen.CounterChanged("x", i)])
            while len(seen) < 20 and not stop.is_set():
                threading.Event().wait(0.005)
            stop.set()
            t.join()
        finally:
            watchdog.cancel()
        assert seen == list(range(1, 21))
        assert waiters and waiters[0].wakeups == 0


def test_asyncio_commands_share_groups_and_readers_use_read_only_sessions(url):
    """eventstore.aio on PostgreSQL: concurrent appends from the event loop are group-committed
    on the store's connection, and reads run on reader threads with read-only sessions."""

    async def main() -> tuple[list[int], Any, int]:
        async with eventstore.aio.open(url, registry=gen.EVENTS, synchronous="full") as store:
            results = await asyncio.gather(*[store.append(f"s{i}", [gen.CounterChanged("x", i)])
                                              for i in range(20)])
            got = await store.get(5)
            return sorted(r.first_position for r in results), got, await store.last_position()

    positions, got, last = asyncio.run(main())
    assert positions == list(range(1, 21))
    assert got is not None and got.position == 5
    assert last == 20


def _grouped(store: eventstore.Store, leader_writes: Any, member_writes: list[Any]) -> tuple[Any, list[Any]]:
    """A leader (a closure that waits until every member queued behind it) and members
    (closures of other threads, queued in order) sharing one group; each appends to its own
    stream, then runs its extra statement (deferred: sent with a later round trip). Returns
    (the leader's result or error, the members' results or errors)."""
    db, group = store.db, store.db.group
    release = threading.Event()
    out: dict[int, Any] = {}

    def command(i: int, extra: Any, wait: bool) -> Any:
        def fn() -> Any:
            result = store.append(f"s{i}", [gen.CounterChanged(str(i), 0)])
            extra(db)
            if wait:
                release.wait(60)
            return result
        return fn

    def call(i: int, fn: Any) -> None:
        try:
            out[i] = db.write(fn)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out[i] = exc

    leader = threading.Thread(target=call, args=(-1, command(-1, leader_writes, True)), daemon=True)
    leader.start()
    while not group.busy.locked():
        threading.Event().wait(0.005)
    members = []
    for i, extra in enumerate(member_writes):
        members.append(threading.Thread(target=call, args=(i, command(i, extra, False)), daemon=True))
        members[-1].start()
        while len(group.queue) < i + 1:  # queued in this order
            threading.Event().wait(0.005)
    release.set()
    for t in [leader, *members]:
        t.join(120)
        assert not t.is_alive(), "a command of the group never finished"
    return out[-1], [out[i] for i in range(len(member_writes))]


def _probe(value: int) -> Any:
    return lambda db: db.execute("INSERT INTO probe VALUES (?)", (value,))


@pytest.mark.parametrize("bad", [-1, 0, 2, 4])
def test_a_deferred_write_that_fails_in_a_group_fails_its_own_command_only(url, bad):
    """A grouped command's writes wait for a later round trip; when one of them fails there,
    that command alone gets the error and nothing of it stays, whether it is the group's
    leader (no savepoint), a member in the middle, or the last one (its writes travel with
    the COMMIT). Every other command is committed, and told so."""
    with gen.open_store(url, synchronous="full") as store:
        # A CHECK constraint the bad command's deferred insert violates.
        store.db.execute("CREATE TABLE probe (k BIGINT PRIMARY KEY CHECK (k >= 0))")
        groups = store.db.group.groups
        leader, members = _grouped(store, _probe(-1 if bad == -1 else 100),
                                   [_probe(-1 if i == bad else i) for i in range(5)])
        assert store.db.group.groups - groups == 1  # one group, committed
        results = {-1: leader, **dict(enumerate(members))}
        assert isinstance(results[bad], eventstore.IntegrityError), results
        good = [i for i in results if i != bad]
        assert all(isinstance(results[i], eventstore.AppendResult) for i in good), results
        # The committed commands got exactly the positions the log holds, without gaps.
        assert sorted(results[i].first_position for i in good) == list(range(1, len(good) + 1))
        assert sorted(e.stream for e in store.read_all()) == sorted(f"s{i}" for i in good)
        for i in good:
            assert [e.position for e in store.read_stream(f"s{i}")] == [results[i].first_position]
        assert store.stream_info(f"s{bad}") is None
        keys = {r[0] for r in store.db.query("SELECT k FROM probe")}
        assert keys == {100 if i == -1 else i for i in good}
        assert store.verify().ok
        # The store goes on: the next append follows the committed head.
        assert store.append("after", [gen.CounterChanged("x", 0)]).first_position == len(good) + 1


def test_a_thread_command_whose_deferred_write_fails_in_a_group_raises_it(url):
    """A `with store.transaction()` body that leads a group: its deferred write fails when the
    queued commands' round trips carry it; the body's caller gets the error, the others commit."""
    with gen.open_store(url) as store:
        store.db.execute("CREATE TABLE probe (k BIGINT PRIMARY KEY CHECK (k >= 0))")
        group = store.db.group
        release = threading.Event()
        out: dict[int, Any] = {}

        def holder() -> None:
            try:
                with store.transaction():
                    store.append("h", [gen.CounterChanged("h", 0)])
                    store.db.execute("INSERT INTO probe VALUES (-5)")
                    release.wait(60)
                out[-1] = "committed"
            except Exception as exc:  # noqa: BLE001
                out[-1] = exc

        def caller(i: int) -> None:
            out[i] = store.append(f"s{i}", [gen.CounterChanged(str(i), 0)])

        first = threading.Thread(target=holder, daemon=True)
        first.start()
        while not group.busy.locked():
            threading.Event().wait(0.005)
        callers = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(3)]
        for t in callers:
            t.start()
        while len(group.queue) < 3:
            threading.Event().wait(0.005)
        release.set()
        for t in [first, *callers]:
            t.join(120)
            assert not t.is_alive(), "a command of the group never finished"
        assert isinstance(out[-1], eventstore.IntegrityError), out
        assert sorted(out[i].first_position for i in range(3)) == [1, 2, 3]
        assert store.stream_info("h") is None
        assert store.verify().ok


def test_a_speculative_append_that_finds_another_writer_keeps_nothing_and_is_redone(url):
    """A handle that wrote alone speculates; when another handle wrote meanwhile, its check
    fails under the lock, nothing of the attempt stays, and the append is redone after the
    other's events: positions gap-free, versions exact, the chain intact."""
    with gen.open_store(url, synchronous="full") as store, gen.open_store(url) as other:
        for i in range(4):
            store.append("a", [gen.CounterChanged("a", i)])
        spec, miss = store.db.speculations, store.db.misfires
        other.append("a", [gen.CounterChanged("b", 0)], expected_version=4)
        r = store.append("a", [gen.CounterChanged("a", 5)], expected_version=5)
        assert (store.db.speculations - spec, store.db.misfires - miss) == (1, 1)
        assert (r.first_position, r.stream_version) == (6, 6)
        with pytest.raises(eventstore.WrongExpectedVersion):
            # Speculating again would be wrong: the handle just learnt it is not alone.
            other.append("a", [gen.CounterChanged("b", 1)], expected_version=5)
        assert [e.position for e in store.read_all()] == [1, 2, 3, 4, 5, 6]
        assert [e.data.delta for e in store.read_stream("a")] == [0, 1, 2, 3, 0, 5]
        assert store.verify().ok and other.verify().ok
