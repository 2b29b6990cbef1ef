"""The rebuild scan's settings: the cyclic garbage collector paused while events are
applied (and always switched back), and the scratch file's page cache."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import eventstore
from projections.base import Projection
from projections.catalogue import catalogue
from tests import strategies as gen

seen: list[bool] = []
"""gc.isenabled() as each probe applier saw it."""

probe = Projection(
    name="test_gc_probe",
    version=1,
    tables=("test_gc_probe_rows",),
    ddl=("CREATE TABLE IF NOT EXISTS test_gc_probe_rows (stream TEXT PRIMARY KEY, n INTEGER NOT NULL)",),
)


@probe.on("test.note_added")
def _note(db: Any, ev: Any) -> None:
    seen.append(gc.isenabled())
    if ev.data.text == "boom" and failing:
        raise RuntimeError("applier failed on purpose")
    db.execute("INSERT INTO test_gc_probe_rows VALUES (?, 1) ON CONFLICT (stream) DO UPDATE SET n = n + 1",
               (ev.stream,))


failing = False


def _store(tmp_path: Any) -> eventstore.Store:
    store = gen.open_store(str(tmp_path / "s.db"), projections=[catalogue, probe])
    for i in range(12):
        store.append(f"s:{i % 3}", [gen.NoteAdded("boom" if i == 7 else str(i))])
    return store


@pytest.fixture(autouse=True)
def _reset() -> Any:
    global failing
    failing = False
    seen.clear()
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_rebuild_and_verify_apply_events_with_the_collector_paused_and_switch_it_back_on(tmp_path):
    """A rebuild and a verify run their appliers with the cyclic collector off (it walks
    every object of the process for nothing during a scan) and turn it back on after."""
    gc.enable()
    with _store(tmp_path) as store:
        seen.clear()
        report = store.rebuild()
        assert report.events == 12
        assert seen and not any(seen)  # every applier call of the scan ran with it paused
        assert gc.isenabled()
        assert store.db.query("SELECT * FROM test_gc_probe_rows ORDER BY stream") == [
            ("s:0", 4), ("s:1", 4), ("s:2", 4)]
        seen.clear()
        assert store.verify_projections().ok
        assert seen and not any(seen)
        assert gc.isenabled()


def test_a_failing_rebuild_still_switches_the_collector_back_on(tmp_path):
    """An applier that raises mid-scan aborts the rebuild, but the collector is on again."""
    gc.enable()
    with _store(tmp_path) as store:
        global failing
        failing = True
        with pytest.raises(RuntimeError, match="on purpose"):
            store.rebuild()
        assert gc.isenabled()
        failing = False
        assert store.verify_projections().ok  # the failed rebuild swapped nothing in


def test_a_rebuild_leaves_a_collector_the_caller_turned_off_off(tmp_path):
    """A caller that runs with the collector disabled keeps it disabled after a rebuild."""
    with _store(tmp_path) as store:
        gc.disable()
        store.rebuild()
        assert not gc.isenabled()
