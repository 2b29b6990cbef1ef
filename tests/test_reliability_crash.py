"""Crash safety, measured with real SIGKILLs (a few trials; `python tools/torture.py crash`
runs hundreds). A writer process runs a realistic mix of domain commands and writes an
acknowledgement outside the store after each returns; it is killed at a random moment,
and the reopened file is audited: every acknowledged command present with the chain hash
the writer saw, the in-flight command whole or absent, the chain sound, every projection
equal to a rebuild, and rebuild, GC and purge runnable again after being interrupted.

The audit itself is tested first, on fabricated acknowledgements, so that a green run
means something.
"""

from __future__ import annotations

import os
import sys

import pytest

import eventstore
from eventstore.demo import UserMessage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from reliability import crash  # noqa: E402
from reliability.common import Budget  # noqa: E402
from reliability.crash_worker import marker_event  # noqa: E402
from reliability.workload import raw_event  # noqa: E402


def _plan(mode: str, synchronous: str, trials: int, **kw) -> crash.CrashPlan:
    defaults = {"mix": (0.05, 0.6), "rebuild": (0.0, 0.3), "gc": (0.0, 0.03), "purge": (0.0, 0.03)}
    targets = {"rebuild": "rebuild", "gc": "sessions.gc", "purge": "sessions.purge"}
    return crash.CrashPlan(mode, synchronous, trials, defaults[mode], target=targets.get(mode), **kw)


# --- the audit can fail ----------------------------------------------------------------------


def _store_with_two_ops(path: str) -> tuple[eventstore.Store, list[dict]]:
    """A store holding one plain op (2 events) and one marked domain op, with their records."""
    import random

    store = eventstore.open(path, synchronous="normal")
    rng = random.Random(1)
    records = [{"phase": "start", "last": 0}, {"phase": "intent", "op": 1, "kind": "log.append", "raw": 2}]
    r = store.append("torture-raw:t", [raw_event(1, 0, 2, rng), raw_event(1, 1, 2, rng)])
    head = store.anchor()
    records.append({"phase": "ack", "op": 1, "first": r.first_position, "last": r.last_position, "marker": None,
                    "head": head.position, "hash": head.hash, "outcome": "ok"})
    records.append({"phase": "intent", "op": 2, "kind": "sessions.create", "raw": None})
    with store.transaction():
        store.sessions.create("s1")
        m = store.append("torture-ops:t", [marker_event(2, 3, 3)]).last_position
    head = store.anchor()
    records.append({"phase": "ack", "op": 2, "first": 3, "last": 3, "marker": m, "head": head.position,
                    "hash": head.hash, "outcome": "ok"})
    return store, records


def test_audit_accepts_a_log_that_matches_its_acknowledgements(tmp_path):
    store, records = _store_with_two_ops(str(tmp_path / "a.db"))
    with store:
        audit = crash.Audit()
        crash.audit_acks(store, records, audit)
        assert (audit.acked, audit.lost, audit.partial, audit.errors) == (2, 0, 0, 0), audit.problems


def test_audit_counts_an_acknowledged_op_whose_row_changed_as_lost(tmp_path):
    store, records = _store_with_two_ops(str(tmp_path / "a.db"))
    with store:
        records[2] = {**records[2], "hash": "00" * 32}  # the writer saw another hash there
        audit = crash.Audit()
        crash.audit_acks(store, records, audit)
        assert audit.lost == 1


def test_audit_counts_events_no_op_accounts_for_as_partial(tmp_path):
    store, records = _store_with_two_ops(str(tmp_path / "a.db"))
    with store:
        store.append("stray", [UserMessage("half of something")])  # no intent, no marker
        audit = crash.Audit()
        crash.audit_acks(store, records, audit)
        assert audit.partial == 1


def test_audit_counts_an_in_flight_plain_append_that_landed_in_part_as_partial(tmp_path):
    import random

    store, records = _store_with_two_ops(str(tmp_path / "a.db"))
    with store:
        records.append({"phase": "intent", "op": 3, "kind": "log.append", "raw": 3})
        store.append("torture-raw:t", [raw_event(3, 0, 3, random.Random(2))])  # 1 of the 3 it announced
        audit = crash.Audit()
        crash.audit_acks(store, records, audit)
        assert audit.partial == 1 and audit.in_flight == "log.append:partial"


# --- real kills -------------------------------------------------------------------------------


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_sigkill_during_mixed_commands_loses_no_acknowledged_command_and_leaves_none_in_part(tmp_path, synchronous):
    result = crash.run_plan(_plan("mix", synchronous, 5), str(tmp_path), Budget(None), seed=3)
    assert result.count == 5
    assert (result.lost, result.corrupt, result.errors) == (0, 0, 0), result.extra["problems"]
    assert result.extra["acked"] > 20  # the writer really worked before each kill


def test_sigkill_during_a_projection_rebuild_leaves_a_sound_store_and_rebuild_runs_again(tmp_path):
    plan = _plan("rebuild", "normal", 3, trials_per_file=3, populate_ops=150, populate_raw=3_000)
    result = crash.run_plan(plan, str(tmp_path), Budget(None), seed=4)
    assert (result.count, result.lost, result.corrupt, result.errors) == (3, 0, 0, 0), result.extra["problems"]
    assert result.extra["landed"].get("rebuild", 0) >= 1  # at least one kill landed inside a rebuild


def test_sigkill_around_blob_gc_sweeps_no_rooted_blob_and_gc_runs_again(tmp_path):
    result = crash.run_plan(_plan("gc", "full", 3), str(tmp_path), Budget(None), seed=5)
    assert (result.count, result.lost, result.corrupt, result.errors) == (3, 0, 0, 0), result.extra["problems"]


def test_sigkill_around_a_session_purge_leaves_it_all_or_nothing_and_purge_runs_again(tmp_path):
    result = crash.run_plan(_plan("purge", "normal", 3), str(tmp_path), Budget(None), seed=6)
    assert (result.count, result.lost, result.corrupt, result.errors) == (3, 0, 0, 0), result.extra["problems"]


# --- a checkpoint cut short ---------------------------------------------------------------------


def _wal_page_one(wal_path: str) -> tuple[bytes, int]:
    """The newest committed copy of page 1 in a WAL file, and the page size (SQLite's format:
    a 32-byte header, then frames of a 24-byte header and one page)."""
    with open(wal_path, "rb") as fh:
        wal = fh.read()
    page_size = int.from_bytes(wal[8:12], "big")
    salt = wal[16:24]
    committed, pending, offset = None, None, 32
    while offset + 24 + page_size <= len(wal):
        frame = wal[offset:offset + 24]
        if frame[8:16] != salt:
            break
        if int.from_bytes(frame[0:4], "big") == 1:
            pending = wal[offset + 24:offset + 24 + page_size]
        if int.from_bytes(frame[4:8], "big") and pending is not None:  # a commit frame
            committed = pending
        offset += 24 + page_size
    assert committed is not None, "no committed copy of page 1 in the WAL"
    return committed, page_size


def test_a_store_killed_in_the_middle_of_a_checkpoint_reopens_with_everything_committed(tmp_path):
    """The state a SIGKILL leaves when it lands inside a WAL checkpoint (found by the crash
    harness at synchronous=normal): page 1, with the grown page count, is already copied
    into the file, the pages after it are not. SQLite recovers such a file from its WAL,
    so the store must open it, not refuse it as truncated."""
    import shutil

    live = str(tmp_path / "live.db")
    store = eventstore.open(live, synchronous="normal")
    try:
        store.append("before", [UserMessage("checkpointed")])
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.db.execute("PRAGMA wal_autocheckpoint=0")  # everything below stays in the WAL
        for i in range(300):
            store.append("grow", [UserMessage(f"{i} " + "x" * 2000)])
        expected = store.anchor()
        image = str(tmp_path / "image.db")
        for suffix in ("", "-wal"):  # a crash image: the files as the killed process left them
            shutil.copyfile(live + suffix, image + suffix)
    finally:
        store.close()
    page_one, page_size = _wal_page_one(image + "-wal")
    with open(image, "r+b") as fh:
        fh.write(page_one)  # the checkpoint copied page 1, then the process died
    header_pages = int.from_bytes(page_one[28:32], "big")
    assert os.path.getsize(image) < header_pages * page_size  # the header claims pages not yet written

    with eventstore.open(image, synchronous="normal") as reopened:
        assert reopened.anchor() == expected
        assert reopened.verify().ok and reopened.verify_projections().ok
        assert reopened.stream_version("grow") == 300
