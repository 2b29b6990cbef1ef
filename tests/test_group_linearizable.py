"""Group commit is linearizable: commands run concurrently from threads give the log, and
every result, that running the same commands one at a time in some order gives.

Hypothesis draws commands (appends with expected versions, lease claims and renewals,
queue enqueues with source keys, runtime commits with expected head revisions) and
deals them out to threads that start together on one store handle, so they meet in
groups. Each command records the number the connection gave it when it ran
(`Database.command`, which follows the order commands ran in, group or not). The same
commands are then run serially in that order on a fresh store: every result (or typed
error) must be equal, and so must the two files' event rows (flags and hashes included):
each command atomic, each still one command.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventstore
from eventstore.demo import UserMessage
from eventstore.commits import EventPayload, GraphAppend, RuntimeCommit, SessionNode
from eventstore.leases import LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.errors import StoreError

SESSIONS = ("s0", "s1")
RUNTIME = LeaseOwner("runtime", "i1")


@attrs.frozen
class Cmd:
    """One command: its kind and arguments (all plain values)."""

    kind: str
    target: str
    arg: Any


_commands = st.one_of(
    st.builds(Cmd, st.just("append"), st.sampled_from(["a", "b"]), st.sampled_from(["any", 0, 1, 2, 3])),
    st.builds(Cmd, st.just("claim"), st.sampled_from(SESSIONS), st.sampled_from(["o1", "o2"])),
    st.builds(Cmd, st.just("renew"), st.just("s0"), st.integers(1_000, 90_000)),
    st.builds(Cmd, st.just("enqueue"), st.sampled_from(SESSIONS), st.sampled_from([None, "k1", "k2"])),
    st.builds(Cmd, st.just("commit"), st.just("s0"), st.sampled_from([None, 0, 1, 2])),
    st.builds(Cmd, st.just("doomed"), st.sampled_from(["a", "b"]), st.integers(1, 3)),
)


class _Doomed(Exception):
    """Raised by a command after it appended: its whole command must roll back."""


def _setup(store: eventstore.Store) -> Any:
    """The same starting state for both runs: two sessions, s0 leased by the runtime."""
    for s in SESSIONS:
        store.sessions.create(s)
    return store.leases.claim("s0", RUNTIME, 600_000).lease.fence


def _run(store: eventstore.Store, fence: Any, i: int, cmd: Cmd) -> tuple[int, Any]:
    """Run command `i` as one command; (its command number, its result or error)."""
    if cmd.kind == "append":
        seen: list[int] = []
        log = store.log
        inner = log._append_locked

        def fn() -> Any:
            seen.append(store.db.command)
            expected = "any" if cmd.arg == "any" else cmd.arg
            return inner(cmd.target, encoded, expected, None, store.now_ms())

        encoded = log.encode([UserMessage(f"c{i}")])
        try:
            result: Any = store.db.write(fn)  # the closure path Store.append takes
        except StoreError as exc:
            result = (type(exc).__name__, str(exc))
        return seen[0], result
    if cmd.kind == "doomed":  # appends, then fails: in a group, only its own savepoint goes
        try:
            with store.transaction():
                number = store.db.command
                store.append(cmd.target, [UserMessage(f"lost{i}-{k}") for k in range(cmd.arg)])
                raise _Doomed
        except _Doomed:
            return number, "doomed"
    with store.transaction():  # one command (the facade's own transaction nests inside)
        number = store.db.command
        try:
            if cmd.kind == "claim":
                result = store.leases.claim(cmd.target, LeaseOwner(cmd.arg, "i"), 60_000)
            elif cmd.kind == "renew":
                result = store.leases.renew(fence, cmd.arg)
            elif cmd.kind == "enqueue":
                result = store.queue.enqueue(QueuedWorkDraft(cmd.target, (AgentFrameTask(f"f{i}", "x"),),
                                                             source_key=cmd.arg))
            else:
                node = SessionNode(f"n{i}", EventPayload({"role": "user", "parts": []}), None,
                                   timestamp="2026-01-01T00:00:00Z")
                result = store.sessions.commit(RuntimeCommit(cmd.target, fence, GraphAppend((node,), f"n{i}"),
                                                             expected_head_revision=cmd.arg))
        except StoreError as exc:
            result = (type(exc).__name__, str(exc))
    return number, result


def _rows(store: eventstore.Store) -> list[tuple]:
    return store.db.query("SELECT * FROM events ORDER BY position")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_commands, min_size=2, max_size=24), st.integers(2, 4))
def test_concurrent_commands_equal_a_serial_run_in_the_order_they_ran(commands, threads):
    clock = eventstore.ManualClock(1_700_000_000_000)
    results: dict[int, tuple[int, Any]] = {}
    with eventstore.open(":memory:", clock=clock) as store:
        fence = _setup(store)
        start = threading.Barrier(threads)
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            try:
                start.wait(30)
                for i in range(k, len(commands), threads):
                    results[i] = _run(store, fence, i, commands[i])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not errors, errors
        concurrent_rows = _rows(store)
        assert store.verify(check_file=False).ok and store.verify_projections().ok

    order = sorted(results, key=lambda i: results[i][0])
    assert len({results[i][0] for i in order}) == len(order)  # each command ran as its own command
    with eventstore.open(":memory:", clock=clock) as serial:
        fence = _setup(serial)
        for i in order:
            _number, expected = _run(serial, fence, i, commands[i])
            assert results[i][1] == expected, (i, commands[i])
        assert _rows(serial) == concurrent_rows
