"""Export and import: lossless round trips, and refusals that name the first bad line and
leave the target unchanged."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore
from eventstore import chain
from eventstore.errors import NotAnEventStore
from eventstore.debug.export import (BadExportLine, ExportError, ImportTargetNotEmpty, export_store, export_to_path,
                               line_check, split_check)
from eventstore.debug.importer import import_store
from projections.engine import _compare
from tests import debug_store


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A rich store and its export text, built once for the module."""
    d = tmp_path_factory.mktemp("export-source")
    path = str(d / "source.db")
    debug_store.rich_store(path)
    with eventstore.open(path) as store:
        out = io.StringIO()
        export_store(store, out)
    return path, out.getvalue()


def _write(tmp_path, text: str, name: str = "x.jsonl") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _all_rows(db, sql: str) -> list[tuple]:
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in db.query(sql)]


def test_import_reproduces_every_row_blob_key_and_the_checkpoint(source, tmp_path):
    path, text = source
    target = str(tmp_path / "copy.db")
    report = import_store(_write(tmp_path, text), target)
    with eventstore.open(path) as a, eventstore.open(target) as b:
        assert report.anchor == str(a.anchor()) == str(b.anchor())
        for sql in ("SELECT * FROM events ORDER BY position", "SELECT * FROM purged_payloads ORDER BY position",
                    "SELECT * FROM append_keys ORDER BY stream, key", "SELECT * FROM blobs ORDER BY ref"):
            assert _all_rows(a.db, sql) == _all_rows(b.db, sql), sql
        assert b.db.scalar("SELECT count(*) FROM purged_payloads") == 10  # the purged session's digests
        assert b.verify().ok
        assert b.verify_projections().ok
        for p in a.engine.projections:
            for table in p.tables:
                assert _compare(a.db, b.db, table) is None, table


def test_an_imported_store_keeps_working_and_honours_idempotency_keys(source, tmp_path):
    _path, text = source
    target = str(tmp_path / "copy.db")
    import_store(_write(tmp_path, text), target)
    with eventstore.open(target) as store:
        ref = store.blobs.put(b"a loose blob " * 400)  # already there: the same ref
        again = store.append("notes", [debug_store.Note("hello", ref), debug_store.Note("again")],
                             idempotency_key="note-1")
        assert again.replayed and again.first_position == 30
        with pytest.raises(eventstore.IdempotencyConflict):
            store.append("notes", [debug_store.Note("other")], idempotency_key="note-1")
        store.append("notes", [debug_store.Note("after import")])
        assert store.verify().ok and store.verify_projections().ok


def test_import_into_a_store_with_events_is_refused_and_changes_nothing(source, tmp_path):
    _path, text = source
    target = str(tmp_path / "busy.db")
    debug_store.session_store(target)
    with eventstore.open(target) as store:
        before = store.anchor()
    with pytest.raises(ImportTargetNotEmpty, match="not empty"):
        import_store(_write(tmp_path, text), target)
    with eventstore.open(target) as store:
        assert store.anchor() == before


def test_import_into_an_existing_empty_store_works(source, tmp_path):
    _path, text = source
    target = str(tmp_path / "empty.db")
    eventstore.open(target).close()
    report = import_store(_write(tmp_path, text), target)
    assert report.events == 32


def test_import_onto_another_applications_database_is_refused_and_leaves_it_alone(source, tmp_path):
    import sqlite3

    _path, text = source
    target = tmp_path / "app.sqlite"
    con = sqlite3.connect(target)
    con.execute("CREATE TABLE notes (body TEXT)")
    con.commit()
    con.close()
    before = target.read_bytes()
    with pytest.raises(NotAnEventStore):
        import_store(_write(tmp_path, text), str(target))
    assert target.read_bytes() == before


def _mutate(lines: list[str], kind: str, i: int, j: int, ch: str) -> tuple[list[str], int]:
    """Apply one edit; returns the new lines and the 1-based number of the first bad line."""
    out = list(lines)
    if kind == "char":
        line = out[i]
        j = j % len(line)
        if line[j] == ch:
            ch = "#" if ch != "#" else "%"
        out[i] = line[:j] + ch + line[j + 1:]
        return out, i + 1
    if kind == "drop":
        del out[i]
        return out, i + 1
    if kind == "duplicate":
        out.insert(i + 1, out[i])
        return out, i + 2
    # swap with the next line (the last line swaps with the one before it)
    k = i if i + 1 < len(out) else i - 1
    out[k], out[k + 1] = out[k + 1], out[k]
    return out, k + 1


@given(kind=st.sampled_from(["char", "drop", "duplicate", "swap"]), i=st.integers(0, 10_000),
       j=st.integers(0, 10_000), ch=st.characters(min_codepoint=32, max_codepoint=126))
def test_any_altered_line_is_refused_naming_it_and_nothing_is_written(source, tmp_path_factory, kind, i, j, ch):
    _path, text = source
    lines = text.splitlines()
    bad, expected = _mutate(lines, kind, i % len(lines), j, ch)
    d = tmp_path_factory.mktemp("tampered")
    target = str(d / "t.db")
    with pytest.raises(BadExportLine) as info:
        import_store(_write(d, "\n".join(bad) + "\n"), target)
    assert info.value.line == expected, str(info.value)
    assert not os.path.exists(target)


def _resign(lines: list[str]) -> list[str]:
    """Recompute every line check, as a forger who knows the format would."""
    out, check = [], ""
    for line in lines:
        body, _old = split_check(line)
        check = line_check(check, body)
        out.append(f'{body[:-1]},"check":"{check}"}}')
    return out


def _event_line(lines: list[str], position: int) -> int:
    return next(k for k, line in enumerate(lines) if f'"kind":"event","position":{position},' in line)


def test_an_edited_event_with_recomputed_line_checks_fails_the_event_chain(source, tmp_path):
    _path, text = source
    lines = text.splitlines()
    k = _event_line(lines, 30)
    lines[k] = lines[k].replace('"recorded_at_ms":', '"recorded_at_ms":1', 1)
    with pytest.raises(BadExportLine, match="altered") as info:
        import_store(_write(tmp_path, "\n".join(_resign(lines)) + "\n"), str(tmp_path / "t.db"))
    assert info.value.line == k + 1


def _sign(bodies: list[str]) -> list[str]:
    out, check = [], ""
    for body in bodies:
        check = line_check(check, body)
        out.append(f'{body[:-1]},"check":"{check}"}}')
    return out


def _forge(text: str, position: int) -> str:
    """Rewrite one event and recompute every link after it, the header and the checks."""
    objs = [json.loads(split_check(line)[0]) for line in text.splitlines()]
    prev = chain.GENESIS
    for obj in objs:
        if obj["kind"] != "event":
            continue
        if obj["position"] == position:
            obj["recorded_at_ms"] += 1
        digest = (hashlib.sha256(base64.b64decode(obj["payload"])).digest() if obj["payload"]
                  else bytes.fromhex(obj["purged_digest"]))
        prev = chain.link(prev, obj["position"], obj["stream"], obj["version"], obj["type"], obj["schema"],
                          obj["recorded_at_ms"], obj["flags"], digest)
        obj["hash"] = prev.hex()
        objs[0]["checkpoint"] = f"{obj['position']}:{prev.hex()}"
    return "\n".join(_sign([json.dumps(o, separators=(",", ":")) for o in objs])) + "\n"


def test_a_full_forgery_is_caught_only_by_an_anchor_kept_elsewhere(source, tmp_path):
    path, text = source
    with eventstore.open(path) as store:
        anchor = store.anchor()
    forged = _write(tmp_path, _forge(text, 5))
    assert import_store(forged, str(tmp_path / "fooled.db")).events == 32  # consistent: undetectable alone
    with pytest.raises(BadExportLine, match="anchor") as info:
        import_store(forged, str(tmp_path / "caught.db"), anchor=anchor)
    assert info.value.line == _event_line(text.splitlines(), anchor.position) + 1
    assert not os.path.exists(tmp_path / "caught.db")


def test_a_truncated_export_names_the_first_missing_line(source, tmp_path):
    _path, text = source
    lines = text.splitlines()[:-1]
    with pytest.raises(BadExportLine, match="truncated") as info:
        import_store(_write(tmp_path, "\n".join(lines) + "\n"), str(tmp_path / "t.db"))
    assert info.value.line == len(lines) + 1


def test_an_export_from_a_newer_format_is_refused_on_line_one(source, tmp_path):
    _path, text = source
    lines = text.splitlines()
    lines[0] = lines[0].replace('"format_version":1', '"format_version":2')
    with pytest.raises(BadExportLine, match="format version 2") as info:
        import_store(_write(tmp_path, "\n".join(_resign(lines)) + "\n"), str(tmp_path / "t.db"))
    assert info.value.line == 1


def test_a_stream_extract_imports_only_afresh_with_its_blobs(source, tmp_path):
    path, _text = source
    with eventstore.open(path) as store:
        out = io.StringIO()
        report = export_store(store, out, stream="session:keep")
        originals = [(e.stream, e.version, e.type, e.recorded_at_ms) for e in store.read_stream("session:keep")]
    assert report.stream == "session:keep" and report.blobs == 4  # two checkpoints, each manifest + tool state
    extract = _write(tmp_path, out.getvalue())
    with pytest.raises(BadExportLine, match="stream-filtered") as info:
        import_store(extract, str(tmp_path / "refused.db"))
    assert info.value.line == 1 and not os.path.exists(tmp_path / "refused.db")
    fresh = import_store(extract, str(tmp_path / "extract.db"), chain_mode=False)
    assert not fresh.chained
    with eventstore.open(str(tmp_path / "extract.db")) as store:
        assert [(e.stream, e.version, e.type, e.recorded_at_ms) for e in store.read_all()] == originals
        assert store.verify().ok and store.verify_projections().ok
        assert store.sessions.load("keep").checkpoint is not None


def test_export_refuses_a_source_whose_chain_is_broken(source, tmp_path):
    path, _text = source
    broken = str(tmp_path / "broken.db")
    debug_store.session_store(broken)
    with eventstore.open(broken) as store:
        with store.transaction():
            store.db.execute("UPDATE events SET recorded_at_ms = recorded_at_ms + 1 WHERE position = 4")
        with pytest.raises(ExportError, match="position 4"):
            export_store(store, io.StringIO())


def test_export_to_a_path_leaves_no_file_when_it_fails(tmp_path):
    broken = str(tmp_path / "broken.db")
    debug_store.session_store(broken)
    with eventstore.open(broken) as store:
        with store.transaction():
            store.db.execute("UPDATE events SET version = 99 WHERE position = 2")
        with pytest.raises(ExportError):
            export_to_path(store, str(tmp_path / "out.jsonl"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith("out.jsonl")]


def test_export_memory_stays_bounded_on_a_long_log(tmp_path):
    path = str(tmp_path / "long.db")
    with eventstore.open(path, synchronous="normal") as store:
        with store.transaction():
            for i in range(20):
                store.append(f"notes-{i}", [debug_store.Note("x" * 600) for _ in range(1000)])
    out = str(tmp_path / "long.jsonl")
    with eventstore.open(path) as store:
        tracemalloc.start()
        try:
            export_to_path(store, out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    size = os.path.getsize(out)
    assert size > 16 * 1024 * 1024
    assert peak < size / 4, f"export peaked at {peak:,} bytes of Python memory for a {size:,}-byte file"


def test_exporting_a_stream_that_has_no_events_is_refused(source):
    path, _text = source
    with eventstore.open(path) as store, pytest.raises(eventstore.InvalidArgument, match="'session:nobody'"):
        export_store(store, io.StringIO(), stream="session:nobody")
