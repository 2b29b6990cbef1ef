"""The hash chain: every single-byte change, deleted row and swapped pair is caught by
verify() at the right position with the right problem; anchors catch truncation and
rewriting; purging payloads keeps the chain verifiable.

Rows are edited through a separate SQLite connection, the way someone editing the file
by hand would; the store's own handle then verifies what it finds. The edits, and what
verify must report for each, are the tamper harness's (tools/reliability/tamper.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Iterator

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from tests import strategies as gen
from eventstore.chain import GENESIS, Anchor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from reliability import tamper  # noqa: E402


def _check(store: eventstore.Store, surgeon: tamper.Surgeon, t: tamper.Tampering, anchor: Anchor) -> bool:
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


@attrs.frozen
class SmallLog:
    """The small log open for verifying, a surgeon on its file, an anchor at its head, its rows."""

    store: eventstore.Store
    surgeon: tamper.Surgeon
    anchor: Anchor
    rows: list


@pytest.fixture
def small_log(tmp_path) -> Iterator[SmallLog]:
    path = str(tmp_path / "s.db")
    _small_log(path)
    surgeon = tamper.Surgeon(path)
    try:
        with gen.open_store(path) as store:
            yield SmallLog(store, surgeon, store.anchor(), surgeon.rows())
    finally:
        surgeon.close()


def test_every_single_byte_change_to_a_small_log_is_caught_at_its_row(small_log):
    store, surgeon, anchor, rows = small_log.store, small_log.surgeon, small_log.anchor, small_log.rows
    assert len(rows) == 6 and rows[2][6] & eventstore.codec.FLAG_LZ4  # one compressed row among them
    applied = 0
    for row in rows:
        for column, k in tamper.byte_sites(row):
            for mask in (0x01, 0x80):
                applied += _check(store, surgeon, tamper.byte_change(row, rows[-1][0], column, k, mask), anchor)
    assert applied > 1000
    assert store.verify(anchor=anchor).ok
    assert surgeon.rows() == rows


def test_every_deleted_row_swapped_pair_and_removed_payload_is_caught(small_log):
    changes = list(tamper.structural(small_log.rows, {}))
    assert len(changes) == 6 + 6 + 15
    for t in changes:
        assert _check(small_log.store, small_log.surgeon, t, small_log.anchor), t.what
    assert small_log.surgeon.rows() == small_log.rows


def test_deleting_the_newest_rows_is_caught_by_the_sequence_even_without_an_anchor(small_log):
    store, anchor = small_log.store, small_log.anchor
    assert small_log.surgeon.run((("DELETE FROM events WHERE position >= 5", ()),))
    report = store.verify()
    assert (report.ok, report.problem, report.position, report.checked) == (False, "truncated", 5, 4)
    assert "position 6 was written" in report.detail
    report = store.verify(anchor=anchor)
    assert (report.ok, report.problem, report.position) == (False, "truncated", 6)


def test_deleting_the_newest_row_and_lowering_the_sequence_is_caught_only_with_an_anchor(small_log):
    """Documented in docs/log-format.md: a shorter chain with a matching sequence verifies on its own."""
    store = small_log.store
    assert small_log.surgeon.run((("DELETE FROM events WHERE position = 6", ()),
                                  ("UPDATE sqlite_sequence SET seq = 5 WHERE name = 'events'", ())))
    assert store.verify().ok and store.verify().checked == 5
    report = store.verify(anchor=small_log.anchor)
    assert (report.ok, report.problem, report.position) == (False, "truncated", 6)


def test_appending_after_the_newest_rows_were_deleted_does_not_hide_the_deletion(small_log):
    # The store appends at its head + 1; the sequence still remembers the deleted tail
    # until as many positions are written again, and an anchor catches the rewrite after.
    store = small_log.store
    assert small_log.surgeon.run((("DELETE FROM events WHERE position >= 5", ()),))
    store.append("forged", [gen.NoteAdded("x")])
    assert store.verify().problem == "truncated"
    store.append("forged", [gen.NoteAdded("y")])
    assert store.verify().ok  # as long as before: only the anchor can tell
    assert store.verify(anchor=small_log.anchor).problem == "rewritten"


@st.composite
def _tampering_of(draw, rows: list[tuple]) -> tamper.Tampering:
    last = rows[-1][0]
    kind = draw(st.sampled_from(["byte", "delete", "reorder", "payload"]))
    if kind == "reorder":
        a, b = sorted(draw(st.lists(st.integers(0, len(rows) - 1), min_size=2, max_size=2, unique=True)))
        return tamper.reorder(rows[a][0], rows[b][0])
    row = draw(st.sampled_from(rows))
    if kind == "byte":
        column, k = draw(st.sampled_from(tamper.byte_sites(row)))
        return tamper.byte_change(row, last, column, k, draw(st.integers(1, 255)))
    # The row deleted, or its payload removed without a purge.
    return next(t for t in tamper.structural([row], {}, last) if t.kind == kind)


@given(gen.append_batches(max_streams=5, max_appends=25, max_events=3, event_strategy=gen.events()),
       st.data())
def test_sampled_tampering_of_a_larger_log_is_caught_at_its_row(batches, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.db")
        with gen.open_store(path, profile="compact") as store:
            store.append("base", [gen.CounterChanged("n", i) for i in range(10)])  # at least 10 rows
            for b in batches:
                store.append(b.stream, list(b.events))
            anchor = store.anchor()
            surgeon = tamper.Surgeon(path)
            try:
                rows = surgeon.rows()
                for _ in range(3):
                    t = data.draw(_tampering_of(rows))
                    if surgeon.run(t.do):
                        report = store.verify(anchor=anchor)
                        assert (report.problem, report.position) == (t.problem, t.position), f"{t.what}: {report}"
                        assert surgeon.run(t.undo)
                assert store.verify(anchor=anchor).ok
            finally:
                surgeon.close()


def test_rows_swapped_far_apart_are_reported_as_reordered(tmp_path):
    path = str(tmp_path / "s.db")
    with gen.open_store(path) as store:
        for i in range(40):
            store.append(f"s:{i % 4}", [gen.NoteAdded(str(i))])
        surgeon = tamper.Surgeon(path)
        try:
            assert surgeon.run(tamper.reorder(3, 37).do)
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
        anchor = store.anchor()
        assert anchor.position == 6 and store.verify(anchor=anchor).ok
        assert store.verify(anchor=str(anchor)).ok
        gen.edit_file(path, "DELETE FROM events WHERE position > 3")
        report = store.verify(anchor=anchor)
        assert (report.ok, report.problem, report.position, report.checked) == (False, "truncated", 6, 3)
        assert "6" in report.detail and "3" in report.detail


def test_anchor_detects_a_rewritten_tail_even_when_it_is_as_long(tmp_path):
    path = str(tmp_path / "s.db")
    with _log_of(path, 6) as store:
        anchor = store.anchor()
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
        anchor = store.anchor()
        store.append("s:9", [gen.NoteAdded("more")])
        assert store.verify(anchor=anchor).ok
        wrong = Anchor(2, anchor.hash)
        report = store.verify(anchor=wrong)
        assert (report.problem, report.position) == ("rewritten", 2)


def test_anchor_at_position_zero_is_the_genesis(tmp_path):
    with gen.open_store(str(tmp_path / "s.db")) as store:
        assert store.anchor() == Anchor(0, GENESIS.hex())
        assert store.verify(anchor=store.anchor()).ok
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
        anchor = store.anchor()
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
