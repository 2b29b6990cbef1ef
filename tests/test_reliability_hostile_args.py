"""Hostile arguments and hygiene: every public facade method with one bad argument, a set
of inconsistent argument combinations, and the static checks (no pickle, SQL built only
from identifiers and placeholders, private file modes, a terminal-safe command line).

The facade methods are discovered from `eventstore.facades.FACADES` (see
tools/reliability/hostile.py), so a command registered tomorrow is swept tomorrow.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

import attrs
import pytest

import eventstore
from eventstore.demo import UserMessage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from reliability import audit, hostile  # noqa: E402


# --- every facade method, one bad argument at a time -----------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return hostile.run_all(str(tmp_path_factory.mktemp("hostile")))


def test_the_sweep_covers_every_registered_facade_and_its_public_methods(sweep):
    import inspect

    from eventstore.facades import FACADES

    swept = {(o.case.facade, o.case.method) for o in sweep}
    with_arguments = {(f, m) for f, m, fn in hostile.methods() if len(inspect.signature(fn).parameters) > 1}
    assert swept == with_arguments
    assert {f for f, _m in swept} == set(FACADES)
    assert len(sweep) > 500


def test_bad_arguments_to_facade_methods_raise_typed_errors_naming_the_argument_and_write_nothing(sweep):
    bad = [hostile.describe(o) for o in sweep if not o.ok]
    assert not bad, f"{len(bad)} calls misbehaved:\n" + "\n".join(bad)


def test_the_sweep_judges_an_accepted_bad_value_as_a_failure():
    """Guard against a vacuous pass: the verdict logic itself."""
    case = hostile.Case("x", "y", "session_id", "wrong type (an unknown object)", hostile.Alien(), True)
    assert not hostile.Outcome(case, None, False, False, True).ok  # returned normally
    assert not hostile.Outcome(case, "TypeError", False, False, True).ok  # untyped
    assert not hostile.Outcome(case, "InvalidArgument", True, False, True).ok  # does not name it
    assert not hostile.Outcome(case, "InvalidArgument", True, True, False).ok  # wrote something
    assert hostile.Outcome(case, "InvalidArgument", True, True, True).ok


# --- inconsistent arguments -------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path):
    w = hostile.World(str(tmp_path / "world.db"))
    w.build()
    yield w
    w.close()


def _inconsistent(w: hostile.World) -> list[tuple[str, object]]:
    """(what, zero-argument call) pairs whose arguments contradict each other or the store."""
    from eventstore.commits import RuntimeCommit
    from eventstore.commits import AgentFrame, EventPayload, GraphAppend, GraphUnchanged, SessionNode
    from eventstore.inputs import TurnInputDraft
    from eventstore.leases import LeaseTimings
    from eventstore.processes import AppendEventRequest, ExternalOwner, Success, WorkflowKey
    from eventstore.queue import AgentFrameTask, QueuedWorkDraft, RefreshToolCatalog

    s, v = w.store, w.values
    fence = v["fence"]
    other_fence = attrs.evolve(fence, session_id="s2")
    stale_token = attrs.evolve(fence, lease_token="not-the-token")
    claim = v["queue_claim"].completion()
    lease = v["process_lease"]
    return [
        ("a fence for a session nobody leased", lambda: s.queue.claim_ready(other_fence)),
        ("a fence with another lease token", lambda: s.leases.renew(stale_token, 30_000)),
        ("a completion of another session's claim", lambda: s.queue.complete(attrs.evolve(claim, session_id="s2"))),
        ("a completion with another lease token", lambda: s.queue.complete(attrs.evolve(claim, lease_token="x"))),
        ("a completion naming a batch the claim does not hold",
         lambda: s.queue.complete(attrs.evolve(claim, batch_ids=("qwb:nope",)))),
        ("a batch mixing turn work and a session command",
         lambda: s.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", 1), RefreshToolCatalog("r"))))),
        ("work for a session that does not exist",
         lambda: s.queue.enqueue(QueuedWorkDraft("nope", (AgentFrameTask("f", 1),)))),
        ("an input completion of another claim",
         lambda: s.inputs.complete(attrs.evolve(v["input_claim"].completion(), claim_id="tic:9:9"))),
        ("an input for a deleted-never-created session", lambda: s.inputs.enqueue(TurnInputDraft("nope", "x"))),
        ("a commit carrying another session's fence",
         lambda: s.sessions.commit(RuntimeCommit("s1", other_fence, GraphUnchanged()))),
        ("a commit with an agent frame of another session",
         lambda: s.sessions.commit(RuntimeCommit("s1", fence, GraphUnchanged(), agent_frames=(AgentFrame("f", "s2"),)))),
        ("a commit expecting a head revision it does not have",
         lambda: s.sessions.commit(RuntimeCommit("s1", fence, GraphAppend((SessionNode("n9", EventPayload(1), "n1"),),
                                                                          "n9"), expected_head_revision=7))),
        ("a commit adding a node under a parent that does not exist",
         lambda: s.sessions.commit(RuntimeCommit("s1", fence, GraphAppend((SessionNode("n8", EventPayload(1), "zz"),),
                                                                          "n8")))),
        ("a process lease with another token",
         lambda: s.processes.complete_with_lease(attrs.evolve(lease, lease_token="x"), Success(1))),
        ("a completion authority the disposition forbids",
         lambda: s.processes.complete("p1", Success(1), WorkflowKey("wf"))),
        ("an event type the registration does not declare",
         lambda: s.processes.append_event("p1", AppendEventRequest("tool.unknown", {}))),
        ("a payload that does not fit the declared schema",
         lambda: s.processes.append_event("p1", AppendEventRequest("tool.progress", {"no_message": 1}))),
        ("an effect lease for another key",
         lambda: s.effects.complete(attrs.evolve(v["effect_lease"], replay_key="other"), {"x": 1})),
        ("a forged await token", lambda: s.effects.resolve(v["await_token"][:-4] + "AAAA", {"ok": 1})),
        ("lease timings whose TTL is shorter than three renewals", lambda: LeaseTimings(1_000, 1_000)),
        ("a log append expecting a version the stream is not at",
         lambda: s.append("session:s1", [UserMessage("x")], expected_version=1)),
        ("an external owner completing a process granted to no one",
         lambda: s.processes.complete("nope", Success(1), ExternalOwner("ci"))),
    ]


def test_inconsistent_arguments_raise_typed_errors_and_write_nothing(world):
    failures = []
    for what, call in _inconsistent(world):
        before = world.store.anchor()
        try:
            call()
            failures.append(f"{what}: accepted")
        except eventstore.StoreError as exc:
            if not str(exc):
                failures.append(f"{what}: {type(exc).__name__} without a message")
        except Exception as exc:
            failures.append(f"{what}: untyped {type(exc).__name__}: {exc}")
        if world.store.anchor() != before:
            failures.append(f"{what}: the log changed")
    assert not failures, "\n".join(failures)


def test_a_trigger_conflict_writes_only_its_receipt(world):
    """By design (receipts make a conflict replayable), a refused trigger command records the
    answer; nothing else is written."""
    from eventstore.triggers import SubscriptionRevisionConflict, UpdateSubscription

    s = world.store
    before = s.anchor()
    definition = world.values["trigger_command"].definition
    with pytest.raises(SubscriptionRevisionConflict):
        s.triggers.execute("op-stale", UpdateSubscription("host", "ci", 99, definition))
    written = [e.type for e in s.read_all(before.position + 1)]
    assert written == ["trigger.command_answered"]


# --- static checks --------------------------------------------------------------------------------


def test_no_pickle_anywhere_in_the_store_or_the_projections():
    assert audit.pickle_uses() == []


def test_the_pickle_scan_finds_a_planted_import(tmp_path, monkeypatch):
    pkg = tmp_path / "eventstore"
    pkg.mkdir()
    (pkg / "bad.py").write_text("import pickle\nx = pickle.loads(b'')\n")
    monkeypatch.setattr(audit, "ROOT", str(tmp_path))
    monkeypatch.setattr(audit, "PACKAGES", ("eventstore",))
    assert audit.pickle_uses() == ["eventstore/bad.py:1: pickle", "eventstore/bad.py:2: pickle"]


def test_sql_is_built_only_from_identifiers_placeholders_and_reviewed_fragments():
    _accepted, review = audit.sql_interpolations()
    unreviewed = [f"{r.file}:{r.line}: {{{r.expression}}} in {r.sql!r}" for r in review
                  if (r.file, r.expression) not in audit.REVIEWED]
    assert not unreviewed, ("SQL built with interpolated values; use ? parameters, or review the fragment and "
                            "add it to reliability.audit.REVIEWED with the reason it is safe:\n" + "\n".join(unreviewed))


def test_the_sql_scan_flags_a_value_formatted_into_a_statement(tmp_path, monkeypatch):
    pkg = tmp_path / "projections"
    pkg.mkdir()
    (pkg / "bad.py").write_text("def f(db, name):\n    db.query(f\"SELECT * FROM t WHERE name = '{name}'\")\n"
                                "    db.query(\"SELECT * FROM t WHERE id = %s\" % name)\n")
    monkeypatch.setattr(audit, "ROOT", str(tmp_path))
    monkeypatch.setattr(audit, "PACKAGES", ("projections",))
    _accepted, review = audit.sql_interpolations()
    assert [(r.line, r.expression) for r in review] == [(2, "name"), (3, "name")]


def test_store_files_and_scratch_files_are_created_private(tmp_path):
    modes = audit.file_modes(str(tmp_path))
    assert {"modes.db", "modes.db-wal", "modes.db-shm", "modes.db.rebuild.tmp", "modes.db.verify.tmp"} <= set(modes)
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose, f"readable or writable by others: {loose}"


# --- the terminal -----------------------------------------------------------------------------------


def test_the_cli_never_prints_raw_control_characters_from_stored_text(tmp_path):
    printed = audit.terminal_output(str(tmp_path))
    assert len(printed) >= 10
    leaking = {cmd: chars for cmd, chars in printed.items() if chars}
    assert not leaking, leaking


def test_the_cli_prints_a_deeply_nested_stored_value_without_a_traceback(tmp_path):
    """A payload nested 1,000 deep (msgpack decodes up to about 1,000 levels) is only
    possible in a tampered file; the CLI must still answer in one line, never a traceback."""
    import apsw
    import msgpack

    from eventstore.cli import main
    from eventstore.demo import ToolCalled

    path = str(tmp_path / "deep.db")
    with eventstore.open(path) as store:
        store.append("deep", [ToolCalled("t", {"a": 1}, "r")])
    payload = (b"\x83" + msgpack.packb("tool") + msgpack.packb("t") + msgpack.packb("arguments") + b"\x81\xa1a"
               + b"\x91" * 1000 + b"\xc0" + msgpack.packb("result") + msgpack.packb("r"))
    conn = apsw.Connection(path)
    conn.execute("UPDATE events SET payload = ? WHERE position = 1", (payload,))
    conn.close()
    for argv in (["log", path], ["log", path, "--json"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except RecursionError:
                status = "RecursionError escaped"
        assert status in (0, 2), (argv, status)
        assert "Traceback" not in err.getvalue()
