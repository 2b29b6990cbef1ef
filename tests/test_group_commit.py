"""Group commit: concurrent callers of one store handle share write transactions.

The tests make groups form deterministically: one thread holds a command open inside
`store.transaction()` while others queue behind it (their tickets are counted in the
group's queue), then lets go; the queued commands join its transaction, each in its own
savepoint, and one COMMIT makes them all durable.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

import eventstore
from eventstore import codec
from eventstore.errors import StoreError, WrongExpectedVersion
from tests import strategies as gen

START, CONTINUES = codec.FLAG_COMMAND_START, codec.FLAG_COMMAND_CONTINUES


def _notes(n: int, tag: str = "n") -> list[gen.NoteAdded]:
    return [gen.NoteAdded(f"{tag}{k}") for k in range(n)]


def _marks(store: eventstore.Store) -> list[int]:
    return [r[0] & codec.COMMAND_FLAGS for r in store.db.query("SELECT flags FROM events ORDER BY position")]


class _Caller(threading.Thread):
    """Runs one call in a thread and keeps its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - kept for the test to inspect
            self.error = exc


def _wait_queued(store: eventstore.Store, n: int) -> None:
    deadline = time.monotonic() + 30
    while len(store.db.group.queue) < n:
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.001)


def _group_behind_holder(store: eventstore.Store, calls: list[Callable[[], Any]],
                         inside: Callable[[], Any] = lambda: None,
                         holder_fails: bool = False) -> list[_Caller]:
    """Hold a command open (running `inside` in it), queue `calls` behind it, then let go."""
    release = threading.Event()
    entered = threading.Event()

    def holder() -> None:
        with store.transaction():
            inside()
            entered.set()
            release.wait(30)

    h = _Caller(holder)
    h.start()
    assert entered.wait(30)
    callers = []
    for k, fn in enumerate(calls):
        c = _Caller(fn)
        c.start()
        _wait_queued(store, k + 1)  # queued in this order
        callers.append(c)
    release.set()
    h.join(30)
    for c in callers:
        c.join(30)
    assert (h.error is not None) == holder_fails
    return callers


def test_queued_commands_commit_in_one_transaction_with_their_own_results(tmp_path):
    """Commands waiting while the writer is busy form one group: one COMMIT, each its own result."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        groups = store.db.group.groups
        appends = [lambda k=k: store.append(f"s{k}", _notes(2)) for k in range(4)]
        callers = _group_behind_holder(store, appends,
                                       inside=lambda: store.append("h", _notes(1)))
        assert [c.error for c in callers] == [None] * 4
        assert [(c.result.first_position, c.result.stream_version) for c in callers] == [
            (2, 2), (4, 2), (6, 2), (8, 2)]
        assert store.db.group.groups == groups + 1  # the holder's command and the four: one transaction
        # Each caller's command stays one command: a start mark per command, not per group.
        assert _marks(store) == [START] + [START, CONTINUES] * 4
        assert [store.command_span(p) for p in (1, 2, 3, 8, 9)] == [(1, 1), (2, 3), (2, 3), (8, 9), (8, 9)]


def test_a_failing_command_rolls_back_alone_and_gets_its_own_typed_error(tmp_path):
    """An expected-version conflict and a raising block inside a group undo only themselves."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))

        def raising_block() -> None:
            with store.transaction():
                store.append("b", _notes(3, "lost"))
                raise RuntimeError("the caller's own failure")

        callers = _group_behind_holder(store, [
            lambda: store.append("a", _notes(1, "ok1"), expected_version=1),
            lambda: store.append("a", _notes(1, "late"), expected_version=1),  # the first one took version 2
            raising_block,
            lambda: store.append("b", _notes(1, "ok2"), expected_version=0),
        ])
        assert callers[0].error is None and callers[3].error is None
        assert isinstance(callers[1].error, WrongExpectedVersion) and callers[1].error.actual == 2
        assert isinstance(callers[2].error, RuntimeError)
        assert [(e.stream, e.version, e.data.text) for e in store.read_all()] == [
            ("a", 1, "n0"), ("a", 2, "ok10"), ("b", 1, "ok20")]
        assert callers[3].result.first_position == 3  # the rolled-back rows' positions were reused
        assert _marks(store) == [START, START, START]
        # The head and version caches were restored with the savepoint: the next append
        # continues the chain from the file as it is.
        store.append("b", _notes(1), expected_version=1)
        assert store.verify(check_file=False).ok
        assert store.stream_info("b").version == 2 and store.stream_info("a").event_count == 2


def test_a_failed_group_commit_fails_every_member_and_leaves_nothing(tmp_path, monkeypatch):
    """When COMMIT fails, no member is acknowledged and the next commands start from the file."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))
        real = store.db.commit_group
        failures = [StoreError("commit: disk I/O error (simulated)")]

        def failing_commit() -> StoreError | None:
            if failures:
                store.db._conn.execute("ROLLBACK")
                store.db._notify(store.db.on_rollback)
                store.db.depth = 0
                return failures.pop()
            return real()

        monkeypatch.setattr(store.db, "commit_group", failing_commit)
        callers = _group_behind_holder(store, [lambda: store.append("a", _notes(1, "x"), expected_version=1),
                                               lambda: store.append("a", _notes(1, "y"), expected_version=2)],
                                       holder_fails=True)
        assert all(isinstance(c.error, StoreError) and "simulated" in str(c.error) for c in callers)
        assert store.last_position() == 1
        r = store.append("a", _notes(1, "z"), expected_version=1)
        assert (r.first_position, r.stream_version) == (2, 2)
        assert store.verify(check_file=False).ok


def test_a_reader_thread_never_sees_a_groups_uncommitted_rows(tmp_path):
    """Reads outside a transaction wait for the group; a group that rolls back is never seen."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))
        entered, release = threading.Event(), threading.Event()

        def doomed() -> None:
            with store.transaction():
                store.append("a", _notes(5))
                entered.set()
                release.wait(30)
                raise RuntimeError("roll back")

        h = _Caller(doomed)
        h.start()
        assert entered.wait(30)
        reader = _Caller(store.last_position)
        reader.start()
        time.sleep(0.05)  # give the reader a chance to run inside the open transaction (it must not)
        release.set()
        h.join(30)
        reader.join(30)
        assert isinstance(h.error, RuntimeError) and reader.result == 1


def test_a_lone_append_runs_no_savepoint(tmp_path):
    """A single caller with nobody waiting pays for no extra statement: BEGIN, its work, COMMIT."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))
        seen: list[str] = []
        store.db._conn.exec_trace = lambda _cursor, sql, _bindings: seen.append(sql) or True
        store.append("a", _notes(1))
        store.db._conn.exec_trace = None
        assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
        assert not any("SAVEPOINT" in s or "RELEASE" in s for s in seen)


def test_many_threads_appending_with_expected_versions_lose_nothing(tmp_path):
    """Threads hammering one handle: every append lands once, versions follow positions, chain sound."""
    threads, each = 8, 40
    with gen.open_store(str(tmp_path / "g.db"), synchronous="normal") as store:
        def work(k: int) -> list[int]:
            out = []
            for i in range(each):
                r = store.append(f"t{k}", _notes(1 + i % 2), expected_version=store.stream_version(f"t{k}"))
                out.append(r.first_position)
                store.append("shared", _notes(1))
            return out

        callers = [_Caller(lambda k=k: work(k)) for k in range(threads)]
        for c in callers:
            c.start()
        for c in callers:
            c.join(120)
        assert [c.error for c in callers] == [None] * threads
        total = threads * each * 2 + sum(threads * (1 + i % 2) for i in range(each)) - threads * each
        assert store.last_position() == total
        assert store.stream_version("shared") == threads * each
        assert store.verify(check_file=False).ok
        assert store.verify_projections().ok
        assert all(c.result == sorted(c.result) for c in callers)


def test_domain_commands_from_threads_join_groups(tmp_path):
    """Lease claims racing from threads: exactly one Acquired per session, the rest Busy."""
    from eventstore.leases import Acquired, Busy, LeaseOwner

    with eventstore.open(str(tmp_path / "g.db")) as store:
        for s in range(3):
            store.sessions.create(f"s{s}")
        callers = _group_behind_holder(store, [
            lambda k=k: store.leases.claim(f"s{k % 3}", LeaseOwner(f"o{k}", "i"), 60_000) for k in range(9)])
        assert [c.error for c in callers] == [None] * 9
        for s in range(3):
            got = [c.result for k, c in enumerate(callers) if k % 3 == s]
            assert isinstance(got[0], Acquired) and all(isinstance(g, Busy) for g in got[1:])
        assert store.verify_projections().ok


def test_a_command_cannot_see_inside_another_threads_open_command_before_it_ends(tmp_path):
    """A thread's block runs entirely before the next queued command: no interleaving."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        order: list[str] = []

        def block(tag: str) -> None:
            with store.transaction():
                order.append(f"{tag}-in")
                store.append(tag, _notes(1))
                time.sleep(0.01)
                order.append(f"{tag}-out")

        _group_behind_holder(store, [lambda t=t: block(t) for t in "abc"])
        assert order == ["a-in", "a-out", "b-in", "b-out", "c-in", "c-out"]


def test_rebuild_inside_a_thread_is_not_refused_because_another_thread_holds_a_transaction(tmp_path):
    """`in_transaction` is about the calling thread, not about another thread's group."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))
        entered, release = threading.Event(), threading.Event()

        def holder() -> None:
            with store.transaction():
                entered.set()
                release.wait(30)

        h = _Caller(holder)
        h.start()
        assert entered.wait(30)
        assert not store.db.in_transaction
        release.set()
        h.join(30)
        with store.transaction():
            assert store.db.in_transaction


@pytest.mark.parametrize("n", [1, 3])
def test_nested_transactions_inside_a_group_member_stay_its_own(tmp_path, n):
    """A joined command's inner savepoint rolls back only its inner block."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        def member() -> None:
            with store.transaction():
                store.append("m", _notes(1, "keep"))
                try:
                    with store.transaction():
                        store.append("m", _notes(n, "undo"))
                        raise RuntimeError
                except RuntimeError:
                    pass
                store.append("m", _notes(1, "keep2"))

        callers = _group_behind_holder(store, [member, member])
        assert [c.error for c in callers] == [None, None]
        assert [e.data.text for e in store.read_stream("m")] == ["keep0", "keep20"] * 2
        assert _marks(store) == [START, CONTINUES] * 2


def test_queued_appends_share_one_savepoint_not_one_each(tmp_path):
    """Appends that queued behind a command run under one savepoint for the run of them."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))
        seen: list[str] = []

        def trace() -> None:
            store.db._conn.exec_trace = lambda _cursor, sql, _bindings: seen.append(sql) or True

        callers = _group_behind_holder(store, [lambda k=k: store.append(f"s{k}", _notes(1)) for k in range(4)],
                                       inside=trace)
        store.db._conn.exec_trace = None
        assert [c.error for c in callers] == [None] * 4
        assert [s for s in seen if "SAVEPOINT" in s or "RELEASE" in s] == ["SAVEPOINT cmds", "RELEASE cmds"]
        assert seen[-1] == "COMMIT"
        assert _marks(store) == [START] * 5


def test_an_append_that_fails_after_writing_is_undone_alone_and_the_run_is_redone(tmp_path):
    """A failure after the rows were written (here: in the projections) undoes that command
    only: the run is rolled back to its savepoint and run again, one savepoint each."""
    with gen.open_store(str(tmp_path / "g.db")) as store:
        store.append("a", _notes(1))
        real = store.log.on_append
        assert real is not None

        def on_append(db: Any, events: list) -> None:
            real(db, events)
            if events[0].stream == "bad":
                raise RuntimeError("a projection failed after the rows were written")

        store.log.on_append = on_append
        callers = _group_behind_holder(store, [
            lambda: store.append("b", _notes(1, "b")),
            lambda: store.append("c", _notes(2, "c"), expected_version=0),
            lambda: store.append("bad", _notes(1, "lost")),
            lambda: store.append("c", _notes(1, "late"), expected_version=0),  # c is at 2 by then
            lambda: store.append("d", _notes(1, "d")),
        ])
        store.log.on_append = real
        assert [c.error is None for c in callers] == [True, True, False, False, True]
        assert isinstance(callers[2].error, RuntimeError)
        assert isinstance(callers[3].error, WrongExpectedVersion) and callers[3].error.actual == 2
        assert [(c.result.first_position, c.result.stream_version) for c in callers if c.error is None] == [
            (2, 1), (3, 2), (5, 1)]
        assert [(e.stream, e.version) for e in store.read_all()] == [
            ("a", 1), ("b", 1), ("c", 1), ("c", 2), ("d", 1)]
        assert _marks(store) == [START, START, START, CONTINUES, START]
        assert store.stream_info("bad") is None and store.stream_info("c").event_count == 2
        assert store.verify(check_file=False).ok
        assert store.verify_projections().ok


def _slow_commits(store: eventstore.Store, monkeypatch: Any, seconds: float = 0.003) -> None:
    """Make every group's COMMIT start late, so a member woken before it would notice."""
    real = store.db.commit_group

    def late() -> Any:
        time.sleep(seconds)
        return real()

    monkeypatch.setattr(store.db, "commit_group", late)


def test_no_caller_returns_before_the_commit_holding_its_command(tmp_path, monkeypatch):
    """Each of many threads' appends is visible to another connection the moment it returns:
    a caller woken before its group's COMMIT would look and miss its own rows."""
    import apsw

    path = str(tmp_path / "g.db")
    with gen.open_store(path, synchronous="full") as store:
        _slow_commits(store, monkeypatch)
        missing: list[tuple[str, int]] = []

        def caller(k: int) -> None:
            other = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
            for i in range(25):
                r = store.append(f"s{k}", _notes(2, f"{k}-{i}"))
                seen = other.execute("SELECT count(*) FROM events WHERE position BETWEEN ? AND ?",
                                     (r.first_position, r.last_position)).fetchall()[0][0]
                if seen != 2:
                    missing.append((f"s{k}", i))
            other.close()

        callers = [_Caller(lambda k=k: caller(k)) for k in range(8)]
        for c in callers:
            c.start()
        for c in callers:
            c.join(60)
        assert [c.error for c in callers] == [None] * 8
        assert missing == []
        group = store.db.group
        assert group.commands > group.groups  # commands did share transactions
        assert store.verify(check_file=False).ok
