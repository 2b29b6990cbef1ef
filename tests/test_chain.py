"""The hash chain: every single-byte change, deleted row and swapped pair is caught by
verify() at the right position with the right problem; anchors catch truncation and
rewriting; purging payloads keeps the chain verifiable.

Rows are edited through a separate SQLite connection, the way someone editing the file
by hand would; the store's own handle then verifies what it finds.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Iterator

import apsw
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from tests import strategies as gen
from eventstore.chain import GENESIS, Anchor

COLUMNS = ("position", "stream", "version", "type", "schema", "recorded_at_ms", "flags", "payload", "hash")
INT_FIELDS = ("version", "schema", "recorded_at_ms", "flags")


@attrs.frozen
class Tampering:
    """One edit of the file, how to undo it, and what verify must report."""

    what: str
    do: tuple[tuple[str, tuple], ...]
    undo: tuple[tuple[str, tuple], ...]
    problem: str
    position: int


class Surgeon:
    """A separate connection that applies and undoes Tamperings on a store file."""

    def __init__(self, path: str) -> None:
        self.conn = apsw.Connection(path)
        self.conn.set_busy_timeout(10_000)

    def rows(self) -> list[tuple]:
        return self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY position").fetchall()

    def run(self, statements: tuple[tuple[str, tuple], ...]) -> bool:
        """Apply statements in one transaction; False if a constraint refused them."""
        try:
            with self.conn:
                for sql, params in statements:
                    self.conn.execute(sql, params)
        except apsw.ConstraintError:
            return False
        return True

    def close(self) -> None:
        self.conn.close()


def _flip(value: int, byte: int, mask: int) -> int:
    """`value` as SQLite stores it (8-byte two's complement) with one byte XORed."""
    raw = bytearray(value.to_bytes(8, "big", signed=True))
    raw[byte] ^= mask
    return int.from_bytes(raw, "big", signed=True)


def _set(position: int, column: str, value: Any, as_text: bool = False) -> tuple[str, tuple]:
    rhs = "CAST(? AS TEXT)" if as_text else "?"
    return (f"UPDATE events SET {column} = {rhs} WHERE position = ?", (value, position))


def _insert(row: tuple) -> tuple[str, tuple]:
    return (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row)


def _swap(i: int, j: int) -> tuple[tuple[str, tuple], ...]:
    return (
        ("UPDATE events SET position = -1 WHERE position = ?", (i,)),
        ("UPDATE events SET position = ? WHERE position = ?", (i, j)),
        ("UPDATE events SET position = ? WHERE position = -1", (j,)),
    )


def _gone(position: int, last: int) -> tuple[str, int]:
    """What verify (with an anchor at the head) reports when the row at `position` vanishes."""
    return ("missing", position) if position < last else ("truncated", last)


def single_byte_changes(row: tuple, last: int, masks: tuple[int, ...]) -> Iterator[Tampering]:
    """Every single-byte change of one row's payload, hash and header fields."""
    p, stream, _version, type_, *_rest = row
    values = dict(zip(COLUMNS, row))
    for mask in masks:
        for column in ("payload", "hash"):
            data = values[column]
            for k in range(len(data)):
                changed = bytearray(data)
                changed[k] ^= mask
                yield Tampering(f"{column}[{k}]^{mask:#x} at {p}", (_set(p, column, bytes(changed)),),
                                (_set(p, column, data),), "altered", p)
        for column, text in (("stream", stream), ("type", type_)):
            data = text.encode()
            for k in range(len(data)):
                changed = bytearray(data)
                changed[k] ^= mask
                yield Tampering(f"{column}[{k}]^{mask:#x} at {p}", (_set(p, column, bytes(changed), True),),
                                (_set(p, column, text),), "altered", p)
        for column in INT_FIELDS:
            for k in range(8):
                new = _flip(values[column], k, mask)
                yield Tampering(f"{column} byte {k}^{mask:#x} at {p}", (_set(p, column, new),),
                                (_set(p, column, values[column]),), "altered", p)
        for k in range(8):
            new = _flip(p, k, mask)
            problem, where = ("missing", p) if new > last or p < last else _gone(p, last)
            yield Tampering(f"position byte {k}^{mask:#x} at {p}", (_set(p, "position", new),),
                            (("UPDATE events SET position = ? WHERE position = ?", (p, new)),), problem, where)


def structural_changes(rows: list[tuple]) -> Iterator[Tampering]:
    """Every deleted row, every swapped pair, every payload removed without a purge."""
    last = rows[-1][0]
    for row in rows:
        p = row[0]
        problem, where = _gone(p, last)
        yield Tampering(f"delete {p}", (("DELETE FROM events WHERE position = ?", (p,)),), (_insert(row),),
                        problem, where)
        yield Tampering(f"null payload at {p}", (_set(p, "payload", None),), (_set(p, "payload", row[7]),),
                        "payload_missing", p)
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            i, j = rows[a][0], rows[b][0]
            yield Tampering(f"swap {i} and {j}", _swap(i, j), _swap(i, j), "reordered", i)


def _check(store: eventstore.Store, surgeon: Surgeon, t: Tampering, anchor: Anchor) -> bool:
    """Apply, verify, undo. False when SQLite refused the edit (a unique key collision)."""
    if not surgeon.run(t.do):
        return False
    try:
        report = store.verify(anchor=anchor)
        assert not report.ok, t.what
        assert (report.problem, report.position) == (t.problem, t.position), f"{t.what}: {report}"
    finally:
        assert surgeon.run(t.undo), f"could not undo {t.what}"
    return True


def _small_log(path: str) -> None:
    with gen.open_store(path, profile="compact") as store:
        store.append("session:a", [gen.NoteAdded("hello"), gen.CounterChanged("c", 7)])
        store.append("session:é", [gen.PayloadAttached("big", b"abc" * 600)])  # lz4-compressed
        store.append("session:a", [gen.NoteAdded("")])
        store.append("process:1", [gen.CounterChanged("d", -(2**40)), gen.NoteAdded("bye")])


def test_every_single_byte_change_to_a_small_log_is_caught_at_its_row(tmp_path):
    path = str(tmp_path / "s.db")
    _small_log(path)
    surgeon = Surgeon(path)
    try:
        with gen.open_store(path) as store:
            anchor = store.checkpoint()
            rows = surgeon.rows()
            assert len(rows) == 6 and rows[2][6] == 1  # one compressed row among them
            applied = 0
            for row in rows:
                for t in single_byte_changes(row, rows[-1][0], masks=(0x01, 0x80)):
                    applied += _check(store, surgeon, t, anchor)
            assert applied > 1000
            assert store.verify(anchor=anchor).ok
            assert surgeon.rows() == rows
    finally:
        surgeon.close()


def test_every_deleted_row_swapped_pair_and_removed_payload_is_caught(tmp_path):
    path = str(tmp_path / "s.db")
    _small_log(path)
    surgeon = Surgeon(path)
    try:
        with gen.open_store(path) as store:
            anchor = store.checkpoint()
            rows = surgeon.rows()
            changes = list(structural_changes(rows))
            assert len(changes) == 6 + 6 + 15
            for t in changes:
                assert _check(store, surgeon, t, anchor), t.what
            assert surgeon.rows() == rows
    finally:
        surgeon.close()


def test_deleting_the_newest_row_is_caught_only_with_an_anchor(tmp_path):
    """Documented in docs/log-format.md: a shorter chain verifies on its own."""
    path = str(tmp_path / "s.db")
    _small_log(path)
    with gen.open_store(path) as store:
        anchor = store.checkpoint()
        gen.edit_file(path, "DELETE FROM events WHERE position = 6")
        assert store.verify().ok and store.verify().checked == 5
        report = store.verify(anchor=anchor)
        assert (report.ok, report.problem, report.position) == (False, "truncated", 6)


@st.composite
def _tampering_of(draw, rows: list[tuple]) -> Tampering:
    last = rows[-1][0]
    kind = draw(st.sampled_from(["byte", "delete", "swap", "null"]))
    if kind == "byte":
        row = draw(st.sampled_from(rows))
        changes = list(single_byte_changes(row, last, masks=(draw(st.integers(1, 255)),)))
        return draw(st.sampled_from(changes))
    if kind == "swap":
        a, b = sorted(draw(st.lists(st.integers(0, len(rows) - 1), min_size=2, max_size=2, unique=True)))
        return Tampering("swap", _swap(rows[a][0], rows[b][0]), (), "reordered", rows[a][0])
    row = draw(st.sampled_from(rows))
    p = row[0]
    if kind == "delete":
        problem, where = _gone(p, last)
        return Tampering(f"delete {p}", (("DELETE FROM events WHERE position = ?", (p,)),), (_insert(row),),
                         problem, where)
    return Tampering(f"null payload at {p}", (_set(p, "payload", None),), (_set(p, "payload", row[7]),),
                     "payload_missing", p)


@given(gen.append_batches(max_streams=5, max_appends=25, max_events=3, event_strategy=gen.events()),
       st.data())
def test_sampled_tampering_of_a_larger_log_is_caught_at_its_row(batches, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.db")
        with gen.open_store(path, profile="compact") as store:
            store.append("base", [gen.CounterChanged("n", i) for i in range(10)])  # at least 10 rows
            for b in batches:
                store.append(b.stream, list(b.events))
            anchor = store.checkpoint()
            surgeon = Surgeon(path)
            try:
                rows = surgeon.rows()
                for _ in range(3):
                    t = data.draw(_tampering_of(rows))
                    if surgeon.run(t.do):
                        report = store.verify(anchor=anchor)
                        assert (report.problem, report.position) == (t.problem, t.position), f"{t.what}: {report}"
                        assert surgeon.run(t.undo or t.do)  # a swap undoes itself
                assert store.verify(anchor=anchor).ok
            finally:
                surgeon.close()


def test_rows_swapped_far_apart_are_reported_as_reordered(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as store:
        for i in range(40):
            store.append(f"s:{i % 4}", [gen.NoteAdded(str(i))])
        surgeon = Surgeon(path)
        try:
            assert surgeon.run(_swap(3, 37))
        finally:
            surgeon.close()
        report = store.verify()
        assert (report.problem, report.position) == ("reordered", 3), str(report)


# --- anchors ---------------------------------------------------------------------------------


def _log_of(path: str, n: int) -> eventstore.Store:
    store = gen.open_store(path)
    for i in range(n):
        store.append(f"s:{i % 2}", [gen.NoteAdded(str(i))])
    return store


def test_anchor_detects_truncation_of_the_tail(tmp_path):
    path = str(tmp_path / "s.db")
    with _log_of(path, 6) as store:
        anchor = store.checkpoint()
        assert anchor.position == 6 and store.verify(anchor=anchor).ok
        assert store.verify(anchor=str(anchor)).ok
        gen.edit_file(path, "DELETE FROM events WHERE position > 3")
        report = store.verify(anchor=anchor)
        assert (report.ok, report.problem, report.position, report.checked) == (False, "truncated", 6, 3)
        assert "6" in report.detail and "3" in report.detail


def test_anchor_detects_a_rewritten_tail_even_when_it_is_as_long(tmp_path):
    path = str(tmp_path / "s.db")
    with _log_of(path, 6) as store:
        anchor = store.checkpoint()
        older = store.verify()
        gen.edit_file(path, "DELETE FROM events WHERE position > 3")
        for i in range(4):  # a different history, longer than the original
            store.append(f"s:{i % 2}", [gen.NoteAdded(f"forged {i}")])
        assert store.verify().ok  # the forged chain is internally sound...
        report = store.verify(anchor=anchor)  # ...but the anchor is no longer on it
        assert (report.ok, report.problem, report.position) == (False, "rewritten", 6)
        assert older.last_hash in report.detail


def test_anchor_below_the_head_stays_valid_as_the_log_grows(tmp_path):
    with _log_of(str(tmp_path / "s.db"), 3) as store:
        anchor = store.checkpoint()
        store.append("s:9", [gen.NoteAdded("more")])
        assert store.verify(anchor=anchor).ok
        wrong = Anchor(2, anchor.hash)
        report = store.verify(anchor=wrong)
        assert (report.problem, report.position) == ("rewritten", 2)


def test_anchor_at_position_zero_is_the_genesis(tmp_path):
    with gen.open_store(str(tmp_path / "s.db")) as store:
        assert store.checkpoint() == Anchor(0, GENESIS.hex())
        assert store.verify(anchor=store.checkpoint()).ok
        store.append("s", [gen.NoteAdded("x")])
        assert store.verify(anchor=Anchor(0, GENESIS.hex())).ok
        report = store.verify(anchor=Anchor(0, "ab" * 32))
        assert (report.ok, report.problem, report.position) == (False, "rewritten", 0)


@pytest.mark.parametrize("text", ["", "5", "x:" + "0" * 64, "5:" + "0" * 63, "5:" + "g" * 64, "-1:" + "0" * 64])
def test_malformed_anchor_text_is_invalid_argument(text):
    with pytest.raises(eventstore.InvalidArgument, match="anchor"):
        Anchor.parse(text)


# --- purging payloads --------------------------------------------------------------------------


def test_purged_payloads_keep_the_chain_verifiable_and_tampering_still_shows(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path, profile="compact") as store:
        store.append("keep", [gen.NoteAdded("a")])
        store.append("gone", [gen.NoteAdded("secret"), gen.PayloadAttached("p", b"x" * 3000)])
        store.append("keep", [gen.NoteAdded("b")])
        anchor = store.checkpoint()
        with store.transaction():
            assert store.log.purge_payloads("gone") == 2
        assert store.verify(anchor=anchor).ok
        assert [e.data for e in store.read_stream("gone")] == [None, None]
        assert [e.data.text for e in store.read_stream("keep")] == ["a", "b"]
        assert store.stream_info("gone").event_count == 2 and store.verify_projections().ok
        with store.transaction():
            assert store.log.purge_payloads("gone") == 0  # idempotent
        gen.edit_file(path, "UPDATE purged_payloads SET digest = ? WHERE position = 3", (bytes(32),))
        report = store.verify()
        assert (report.problem, report.position) == ("altered", 3)
        gen.edit_file(path, "DELETE FROM purged_payloads WHERE position = 2")
        report = store.verify()
        assert (report.problem, report.position) == ("payload_missing", 2)
