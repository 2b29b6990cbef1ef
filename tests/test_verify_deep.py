"""What `verify` must see beyond the hash links, and typed errors for rows it reads.

Each test edits the file through a separate SQLite connection (as an attacker or a
damaged disk would) and checks that `verify` (the API and the CLI) names the problem:
storage classes of chained columns, stale projections, idempotency keys pointing at the
wrong events, blobs whose bytes no longer hash to their ref, a bad anchor argument, and a
payload stored with a type no writer produces.
"""

from __future__ import annotations

import sqlite3

import pytest

import eventstore
from eventstore.cli import main
from tests import debug_store
from tests.debug_store import Note


def _tamper(path: str, *statements: str) -> None:
    con = sqlite3.connect(path)
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()


@pytest.fixture
def notes_db(tmp_path) -> str:
    """A store of three notes on two streams, closed."""
    path = str(tmp_path / "notes.db")
    with eventstore.open(path) as store:
        store.append("notes:a", [Note("one")])
        store.append("notes:b", [Note("two")])
        store.append("notes:a", [Note("three")])
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- item 7: storage classes --------------------------------------------------------------------------------

@pytest.mark.parametrize("column, sql, stored", [
    ("stream", "UPDATE events SET stream = CAST(stream AS BLOB) WHERE position = 2", "blob"),
    ("type", "UPDATE events SET type = CAST(type AS BLOB) WHERE position = 2", "blob"),
    ("payload", "UPDATE events SET payload = CAST(payload AS TEXT) WHERE position = 2", "text"),
    ("hash", "UPDATE events SET hash = hex(hash) WHERE position = 2", "text"),
    ("version", "UPDATE events SET version = 'one' WHERE position = 2", "text"),
    ("flags", "UPDATE events SET flags = flags + 0.5 WHERE position = 2", "real"),
])
def test_verify_names_a_chained_column_stored_with_the_wrong_type_even_with_the_same_bytes(
        notes_db, capsys, column, sql, stored):
    """A TEXT stream turned into a BLOB of the same bytes (or a BLOB payload into TEXT) keeps
    every hash link valid; verify must still report it at its position, with and without an anchor."""
    with eventstore.open(notes_db) as store:
        anchor = store.anchor()
    _tamper(notes_db, sql)
    with eventstore.open(notes_db) as store:
        for report in (store.verify(), store.verify(anchor)):
            assert not report.ok and report.position == 2 and report.problem == "wrong_type", report
            assert column in report.detail and stored in report.detail
    assert main(["verify", notes_db, "--anchor", str(anchor)]) == 1
    assert "FAILED at position 2: wrong_type" in capsys.readouterr().out


# --- item 8: stale projections ------------------------------------------------------------------------------

def test_verify_projections_fails_naming_a_projection_whose_stored_version_was_changed(tmp_path, capsys):
    """A projection that cannot be compared with a rebuild (its recorded version differs from
    the code's) is a failure that names it, not a projection silently left out."""
    path = str(tmp_path / "s.db")
    debug_store.session_store(path)
    _tamper(path, "UPDATE projection_state SET version = version + 7 WHERE name = 'sessions'")
    with eventstore.open(path) as store:
        report = store.verify_projections()
    assert not report.ok and report.difference is not None
    assert report.difference.projection == "sessions" and "stale" in str(report)
    assert main(["verify", path, "--projections"]) == 1
    assert "'sessions'" in capsys.readouterr().out


def test_verify_projections_sees_a_version_changed_while_the_handle_was_open(tmp_path):
    """The check reads projection_state in the verify snapshot, not what was seen at open."""
    path = str(tmp_path / "s.db")
    debug_store.session_store(path)
    with eventstore.open(path) as store:
        assert store.verify_projections().ok
        _tamper(path, "UPDATE projection_state SET version = version + 1 WHERE name = 'catalogue'")
        report = store.verify_projections()
    assert not report.ok and report.difference.projection == "catalogue"  # type: ignore[union-attr]


# --- item 9: idempotency keys -------------------------------------------------------------------------------

def test_verify_finds_an_idempotency_key_pointed_at_another_appends_events(notes_db, capsys):
    """A key moved onto other events would make a retry return them as `replayed`."""
    with eventstore.open(notes_db) as store:
        first = store.append("notes:a", [Note("keyed one")], idempotency_key="k1")
        second = store.append("notes:a", [Note("keyed two")], idempotency_key="k2")
        assert store.verify().ok
    _tamper(notes_db, f"UPDATE append_keys SET first_position = {second.first_position}, "
                      f"last_position = {second.last_position} WHERE key = 'k1'")
    with eventstore.open(notes_db) as store:
        report = store.verify()
        assert not report.ok and report.problem == "bad_key" and "'k1'" in report.detail
        assert report.position == second.first_position
        assert first.first_position != second.first_position
    assert main(["verify", notes_db]) == 1
    assert "bad_key" in capsys.readouterr().out


def test_verify_finds_an_idempotency_key_pointed_at_another_stream(notes_db):
    """A key whose positions hold events of another stream is reported."""
    with eventstore.open(notes_db) as store:
        store.append("notes:a", [Note("keyed")], idempotency_key="k1")
    _tamper(notes_db, "UPDATE append_keys SET first_position = 2, last_position = 2 WHERE key = 'k1'")
    with eventstore.open(notes_db) as store:
        report = store.verify()
    assert not report.ok and report.problem == "bad_key" and report.position == 2


def test_verify_finds_two_keys_claiming_the_same_identical_events(notes_db):
    """Two appends of identical events under two keys: moving one key onto the other's
    events keeps its digest right, but two keys then claim one append."""
    with eventstore.open(notes_db) as store:
        store.append("notes:c", [Note("same")], idempotency_key="k1")
        second = store.append("notes:c", [Note("same")], idempotency_key="k2")
    _tamper(notes_db, f"UPDATE append_keys SET first_position = {second.first_position}, "
                      f"last_position = {second.last_position} WHERE key = 'k1'")
    with eventstore.open(notes_db) as store:
        report = store.verify()
    assert not report.ok and report.problem == "bad_key" and "k1" in report.detail


# --- item 10: blobs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["low_latency", "compact"])
def test_verify_finds_a_blob_whose_bytes_no_longer_hash_to_its_ref(tmp_path, capsys, profile):
    """Blob contents are checked by verify (by default), not only when the blob is read."""
    path = str(tmp_path / "b.db")
    with eventstore.open(path, profile=profile) as store:
        good = store.blobs.put(b"kept " * 600)
        ref = store.blobs.put(b"x" * 5000)
        store.append("notes:a", [Note("blob", ref)])
        assert store.verify().ok
    _tamper(path, f"UPDATE blobs SET content = zeroblob(length(content)) WHERE ref = '{ref}'")
    with eventstore.open(path) as store:
        report = store.verify()
        assert not report.ok and report.problem == "bad_blob"
        assert ref in report.detail and good not in report.detail
        assert store.verify(blobs=False).ok
    assert main(["verify", path]) == 1
    assert f"bad_blob: blob {ref}" in capsys.readouterr().out
    assert main(["verify", path, "--no-blobs"]) == 0


# --- item 12: the anchor argument ---------------------------------------------------------------------------

@pytest.mark.parametrize("anchor", [123, 1.5, b"1:00", ["1", "x"]])
def test_verify_with_an_anchor_that_is_not_an_anchor_raises_invalid_argument(store, anchor):
    store.append("notes:a", [Note("x")])
    with pytest.raises(eventstore.InvalidArgument, match="anchor"):
        store.verify(anchor)


# --- item 13: payloads of an impossible type ----------------------------------------------------------------

@pytest.mark.parametrize("value", ["42", "'some text'", "1.5"])
def test_a_payload_stored_as_a_non_blob_raises_corrupt_store_naming_its_position(notes_db, capsys, value):
    """Every read path (typed, raw, by stream, one position) raises CorruptStore at position 2;
    `eventstore log` prints one line and exits 2."""
    _tamper(notes_db, f"UPDATE events SET payload = {value} WHERE position = 2")
    with eventstore.open(notes_db) as store:
        for read in (lambda: list(store.read_all()), lambda: list(store.read_all(raw=True)),
                     lambda: list(store.read_stream("notes:b")), lambda: store.get(2)):
            with pytest.raises(eventstore.CorruptStore, match="position 2") as info:
                read()
            assert info.value.position == 2 and info.value.stream == "notes:b"
    assert main(["log", notes_db]) == 2
    assert "position 2" in _one_error_line(capsys)
