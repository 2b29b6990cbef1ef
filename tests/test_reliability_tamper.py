"""Tampering and corruption of files written by the domain workload.

Rows are modified through a separate SQLite connection (every single-byte change of the
payload, hash, stream, type and header integers of a small file, every deleted row,
reordered pair and truncated tail; a sample of each on a larger file), and `verify`
must name the right position. Then bytes are overwritten in the closed file itself
(damaged pages): reading, verifying and rebuilding must end in a typed error or a
reported problem, never an untyped exception and never a silent wrong answer.
"""

from __future__ import annotations

import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from reliability import corruption, tamper  # noqa: E402
from reliability.common import Budget  # noqa: E402


def _totals(tallies: dict) -> tamper.Tally:
    total = tamper.Tally()
    for t in tallies.values():
        total.add(t)
    return total


def test_every_single_byte_change_deleted_row_reordered_pair_and_cut_tail_of_a_small_file_is_found_in_place(tmp_path):
    path = str(tmp_path / "small.db")
    tamper.build(path, 8, seed=1)
    tallies = tamper.run_file(path, None, (0x01, 0x80, 0xFF), random.Random(1), Budget(None))
    total = _totals(tallies)
    assert total.missed == 0 and total.wrong_place == 0, total.examples[:5]
    assert tallies["byte"].applied > 5000
    for kind in ("delete", "payload", "purge-digest", "reorder", "truncate", "rewrite"):
        assert tallies[kind].applied > 0, kind


def test_sampled_modifications_of_a_file_of_a_thousand_events_are_found_in_place(tmp_path):
    path = str(tmp_path / "large.db")
    tamper.build(path, 700, seed=2)
    tallies = tamper.run_file(path, 25, (), random.Random(2), Budget(None))
    total = _totals(tallies)
    assert total.missed == 0 and total.wrong_place == 0, total.examples[:5]
    assert tallies["byte"].applied == 25 and tallies["reorder"].applied == 25


def test_the_tamper_check_itself_reports_a_modification_verify_would_miss(tmp_path):
    """Guard against a vacuous pass: an 'edit' that changes nothing must be counted as missed."""
    path = str(tmp_path / "small.db")
    tamper.build(path, 3, seed=3)
    import eventstore

    surgeon = tamper.Surgeon(path)
    try:
        with eventstore.open(path) as store:
            noop = tamper.Tampering("byte", "no-op", (("UPDATE events SET flags = flags WHERE position = 1", ()),),
                                    (), "altered", 1)
            tally = tamper.Tally()
            tamper.check(store, surgeon, noop, store.anchor(), tally)
            assert tally.missed == 1
    finally:
        surgeon.close()


def test_damaged_pages_give_a_typed_error_or_a_reported_problem_never_a_silent_or_untyped_answer(tmp_path):
    [result] = corruption.run(str(tmp_path), quick=True, trials=60, seed=6)
    assert result.count == 60
    assert (result.undetected, result.errors) == (0, 0), result.detail


def test_text_that_is_not_utf8_in_the_log_or_a_projection_reads_as_a_typed_error(tmp_path):
    """A damaged page often leaves bytes in a TEXT column that are not UTF-8; every read
    of them must be a typed error, as every other sign of damage is."""
    import apsw

    import eventstore

    path = str(tmp_path / "text.db")
    tamper.build(path, 30, seed=4)
    conn = apsw.Connection(path)
    try:
        stream = conn.execute("SELECT stream FROM events WHERE position = 3").fetchall()[0][0]
        conn.execute("UPDATE events SET stream = CAST(X'73ff3a31' AS TEXT) WHERE position = 3")
        conn.execute("UPDATE sessions_index SET model = CAST(X'6dff' AS TEXT)")
    finally:
        conn.close()
    with eventstore.open(path) as store:
        reads = {
            "read_all": lambda: list(store.read_all(raw=True)),
            "get": lambda: store.get(3),
            "read_stream": lambda: list(store.read_stream(stream)),
            "sessions.list": lambda: store.sessions.list(),
            "verify_projections": store.verify_projections,
            "rebuild": store.rebuild,
        }
        untyped = {}
        for name, read in reads.items():
            try:
                read()
            except eventstore.StoreError:
                pass
            except Exception as exc:
                untyped[name] = f"{type(exc).__name__}: {exc}"
        assert not untyped, untyped
        report = store.verify()
        assert (report.ok, report.position) == (False, 3)
