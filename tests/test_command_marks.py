"""Command marks: every row says whether it starts its command (write transaction) or
continues the one before it, and `why` uses them to show a command exactly.

A model of the commands a test ran (which appends committed together) is compared with
the marks in the file, including transactions over several streams and rolled-back
savepoints, whose positions the transaction reuses.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from eventstore import codec
from eventstore.cli import main
from eventstore.debug.inspection import COMMAND_LIMIT, why
from eventstore.log import SCHEMA_VERSION
from tests import strategies as gen

START, CONTINUES = codec.FLAG_COMMAND_START, codec.FLAG_COMMAND_CONTINUES


def _marks(store: eventstore.Store) -> list[int]:
    return [r[0] & codec.COMMAND_FLAGS for r in store.db.query("SELECT flags FROM events ORDER BY position")]


def _notes(n: int, tag: str = "n") -> list[gen.NoteAdded]:
    return [gen.NoteAdded(f"{tag}{k}") for k in range(n)]


def test_each_append_outside_a_transaction_is_one_command():
    with gen.open_store(":memory:") as store:
        store.append("a", _notes(1))
        store.append("a", _notes(3))
        store.append("b", _notes(2))
        assert _marks(store) == [START, START, CONTINUES, CONTINUES, START, CONTINUES]


def test_a_transaction_over_several_streams_is_one_command_found_from_any_of_its_rows():
    with gen.open_store(":memory:") as store:
        store.append("a", _notes(1))
        with store.transaction():
            store.append("a", _notes(2))
            store.append("b", _notes(1))
        store.append("b", _notes(1))
        assert _marks(store) == [START, START, CONTINUES, CONTINUES, START]
        # command_span from any row of a command is the whole command
        assert [store.command_span(p) for p in range(1, 6)] == [(1, 1), (2, 4), (2, 4), (2, 4), (5, 5)]
        assert store.command_span(6) is None  # no such row
        with pytest.raises(eventstore.InvalidArgument, match="position must be an integer >= 1"):
            store.command_span(0)
        r = why(store, "b", 1)
        assert r.command_basis == "command marks (exact)" and r.command_span == (2, 4)
        assert [(e.stream, e.version) for e in r.command] == [("a", 2), ("a", 3), ("b", 1)]


def test_positions_a_rolled_back_savepoint_gave_back_are_marked_by_what_is_written_there():
    with gen.open_store(":memory:") as store:
        with store.transaction():
            with pytest.raises(RuntimeError):
                with store.transaction():
                    store.append("a", _notes(2, "lost"))
                    raise RuntimeError("undo the inner block")
            store.append("a", _notes(1))  # reuses position 1: it starts the command
            with pytest.raises(RuntimeError):
                with store.transaction():
                    store.append("b", _notes(3, "lost"))
                    raise RuntimeError("undo the inner block")
            store.append("b", _notes(1))  # position 2, after a row of this command
        assert [e.data.text for e in store.read_all()] == ["n0", "n0"]
        assert _marks(store) == [START, CONTINUES]


def test_commands_in_one_millisecond_on_one_stream_are_told_apart():
    clock = eventstore.ManualClock()
    with gen.open_store(":memory:", clock=clock) as store:
        store.append("a", _notes(2))
        store.append("a", _notes(2))  # same stream, same millisecond: the heuristic merges these
        r = why(store, "a", 3)
        assert r.command_span == (3, 4) and [e.version for e in r.command] == [3, 4]
        assert r.command_basis == "command marks (exact)"


def test_rows_without_marks_fall_back_to_the_heuristic_and_say_so():
    clock = eventstore.ManualClock()
    with gen.open_store(":memory:", clock=clock) as store:
        store.append("a", _notes(2))
        store.append("a", _notes(2))
        store.db.execute("UPDATE events SET flags = flags & 1")  # as a layout 1 writer left them
        r = why(store, "a", 3)
        assert r.command_basis.startswith("heuristic") and r.command_span == (1, 4)


def test_a_layout_1_file_is_stamped_current_on_open_and_only_new_rows_carry_marks(tmp_path, monkeypatch):
    path = str(tmp_path / "old.db")
    with monkeypatch.context() as m:
        m.setattr("eventstore.log._START", 0)  # what layout 1 wrote: no marks
        m.setattr("eventstore.log._CONTINUES", 0)
        with gen.open_store(path) as store:
            store.append("a", _notes(2))
    gen.edit_file(path, "PRAGMA user_version = 1")
    with gen.open_store(path) as store:
        assert gen.query_file(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        store.append("a", _notes(2))
        assert _marks(store) == [0, 0, START, CONTINUES]
        assert store.verify().ok
        assert why(store, "a", 1).command_basis.startswith("heuristic")
        assert why(store, "a", 4).command_span == (3, 4)


def test_a_layout_2_file_is_refused_by_code_that_knows_only_layout_1(tmp_path, monkeypatch):
    path = str(tmp_path / "new.db")
    with gen.open_store(path) as store:
        store.append("a", _notes(1))
    monkeypatch.setattr("eventstore.store.SCHEMA_VERSION", 1)
    with pytest.raises(eventstore.SchemaTooNew):
        gen.open_store(path)


def test_unknown_flag_bits_are_a_decode_error_naming_the_position():
    with gen.open_store(":memory:") as store:
        store.append("a", _notes(2))
        store.db.execute("UPDATE events SET flags = flags | 8 WHERE position = 2")
        with pytest.raises(eventstore.DecodeError, match=r"position 2.*unknown row flags 0xc"):
            list(store.read_all())


def test_a_command_larger_than_the_window_lists_the_events_around_it_with_its_full_span(tmp_path, capsys):
    path = str(tmp_path / "big.db")
    size = 2 * COMMAND_LIMIT + 200
    with gen.open_store(path) as store:
        store.append("a", _notes(1))
        store.append("a", _notes(size))
        r = why(store, "a", 700)
        assert r.command_span == (2, size + 1)
        assert [e.position for e in r.command] == list(range(700 - COMMAND_LIMIT, 700 + COMMAND_LIMIT + 1))
    assert main(["why", path, "--stream", "a", "--version", "700", "--around", "0"]) == 0
    out = capsys.readouterr().out
    assert (f"one command of {size} event(s), positions 2-{size + 1} (command marks (exact); "
            f"showing positions {700 - COMMAND_LIMIT}-{700 + COMMAND_LIMIT})") in out


def test_two_handles_taking_turns_keep_each_others_commands_apart(tmp_path):
    path = str(tmp_path / "two.db")
    with gen.open_store(path) as one, gen.open_store(path) as two:
        for k in range(4):
            writer = one if k % 2 == 0 else two
            with writer.transaction():
                writer.append("a", _notes(2))
                writer.append("b", _notes(1))
        assert _marks(one) == [START, CONTINUES, CONTINUES] * 4


@attrs.frozen
class _Step:
    """One append inside a command; a rolled-back step is undone by its own savepoint."""

    stream: str
    events: int
    rolled_back: bool


_commands = st.lists(
    st.lists(st.builds(_Step, st.sampled_from(["a", "b", "c"]), st.integers(1, 3), st.booleans()),
             min_size=1, max_size=4),
    min_size=1, max_size=8)


@given(_commands)
def test_marks_reproduce_the_commands_that_committed(commands):
    with gen.open_store(":memory:") as store:
        expected: list[int] = []
        for steps in commands:
            wrote = 0
            with store.transaction():
                for step in steps:
                    try:
                        with store.transaction():
                            store.append(step.stream, _notes(step.events))
                            if step.rolled_back:
                                raise _Undo
                    except _Undo:
                        continue
                    expected += [CONTINUES if wrote + k else START for k in range(step.events)]
                    wrote += step.events
        assert _marks(store) == expected
        position = 0
        for mark in expected:
            position += 1
            if mark == START:
                continue
            ev = store.get(position)
            first, last = why(store, ev.stream, ev.version, around=0).command_span
            assert first < position <= last and expected[first - 1] == START
            assert all(m == CONTINUES for m in expected[first:last])
            assert last == len(expected) or expected[last] == START


class _Undo(Exception):
    """Raised to roll a savepoint back."""
