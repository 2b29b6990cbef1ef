"""The runtime's hot path runs a pinned number of SQL statements per command.

Counts, not timings: a turn commit, a lease claim and renew, and an enqueue, claim and
complete are traced through the storage seam (`Storage.trace`), and each command must
run exactly the statements listed here. A change that adds a read, a savepoint or a
second write to one of them fails this file; docs/benchmarks.md ("Statements per
command") says what each statement is for. The rest of the file pins what makes the
removed statements safe to remove: the per-transaction memo forgets everything on a
rollback, and a half-done append inside a command is undone with the command.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

import eventstore
from eventstore.commits import (
    Checkpoint,
    EventPayload,
    GraphAppend,
    ModelConfig,
    RuntimeCommit,
    SessionNode,
    TurnState,
    UsageDelta,
)
from eventstore.commits.events import SessionCommitted
from eventstore.commits.rules import commit_event
from eventstore.leases import Acquired, LeaseOwner
from eventstore.queue import AgentFrameTask, QueuedWorkDraft, SlotPolicy
from projections import REGISTRY
from projections import graph as graph_proj
from projections.base import Projection

MODEL = ModelConfig("anthropic", "claude-x")
OWNER = LeaseOwner("runtime", "inc-1")


def _traced(store: eventstore.Store, fn: Callable[[], Any]) -> list[str]:
    """The statements `fn()` ran, first word(s) kept (`SELECT ... FROM <table>` as the table)."""
    seen: list[str] = []
    store.db.trace(seen.append)
    try:
        fn()
    finally:
        store.db.trace(None)
    return [" ".join(s.split()) for s in seen]


def _kinds(statements: list[str]) -> list[str]:
    out = []
    for s in statements:
        words = s.split()
        if words[0] == "SELECT":
            out.append("SELECT " + words[words.index("FROM") + 1])
        elif words[0] in ("INSERT", "UPDATE", "DELETE"):
            table = words[words.index("INTO") + 1] if "INTO" in words else words[1] if words[0] == "UPDATE" \
                else words[2]
            out.append(f"{words[0]} {table}")
        else:
            out.append(" ".join(words[:2]) if words[0] == "BEGIN" else words[0])
    return out


def _session(store: eventstore.Store, sid: str = "s") -> Any:
    store.sessions.create(sid)
    got = store.leases.claim(sid, OWNER, 3_600_000)
    assert isinstance(got, Acquired)
    return got.lease.fence


def _turn(store: eventstore.Store, fence: Any, i: int, usage: bool = False) -> Any:
    """The benchmark's turn (tools/benches/commits.py): one node, a checkpoint, usage."""
    node = SessionNode(f"n{i}", EventPayload({"role": "user", "text": f"message {i}"}),
                       f"n{i - 1}" if i else None, timestamp="2026-03-02T09:00:00.000Z")
    return store.sessions.commit(RuntimeCommit(
        fence.session_id, fence, GraphAppend((node,), f"n{i}"), expected_head_revision=i, config=MODEL,
        checkpoint=Checkpoint(TurnState(i, {"input": 100 * i})),
        usage_deltas=(UsageDelta("turn", MODEL.model, 100, 20),) if usage else ()))


TURN = ["BEGIN IMMEDIATE", "SELECT sessions_index", "SELECT graph_nodes", "INSERT blobs", "INSERT events", "INSERT graph_nodes", "UPDATE graph_heads",
        "UPDATE catalogue_streams", "COMMIT"]


def test_a_turn_commit_runs_nine_statements(tmp_path):
    """One message, a checkpoint, under a lease with the head CAS: BEGIN, one read of the
    session, its lease and its head (a join), one lookup of every node id the delta names,
    the checkpoint blob, the event, the node index row, the head, the stream catalogue,
    COMMIT. No savepoint, no read repeated, and the applier reads nothing the command
    already read."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        for i in range(3):
            _turn(store, fence, i)
        assert _kinds(_traced(store, lambda: _turn(store, fence, 3))) == TURN


def test_the_node_lookup_probes_the_id_index_instead_of_scanning_the_session(tmp_path):
    """The one lookup of a delta's node ids (several ids in an IN list) must search the
    (skey, node_id) index: SQLite's planner, with no statistics, would otherwise scan the
    session's whole node range, and every commit would cost more as the session grows."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        for i in range(3):
            _turn(store, fence, i)
        lookups = [s for s in _traced(store, lambda: _turn(store, fence, 3)) if "FROM graph_nodes" in s]
        assert len(lookups) == 1 and lookups[0].count("?") == 3  # the session, the new id, the parent
        plan = " ".join(str(r[3]) for r in store.db.query("EXPLAIN QUERY PLAN " + lookups[0], (1, "n4", "n3")))
    assert "graph_nodes_by_id" in plan, plan


def test_the_commit_state_read_looks_each_table_up_by_its_key(tmp_path):
    """The commit's one read of the session, lease and head rows searches each table by its
    primary key (a join the planner may not turn into a scan as the tables grow)."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        _turn(store, fence, 0)
        reads = [s for s in _traced(store, lambda: _turn(store, fence, 1)) if "FROM sessions_index" in s]
        assert len(reads) == 1
        plan = [str(r[3]) for r in store.db.query("EXPLAIN QUERY PLAN " + reads[0], ("s",))]
    assert len(plan) == 3 and all(p.startswith("SEARCH") and "PRIMARY KEY" in p for p in plan), plan


def test_usage_adds_one_statement_per_usage_row(tmp_path):
    """Usage is merged into the ledger with one upsert per (source, model) row."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        _turn(store, fence, 0)
        got = _kinds(_traced(store, lambda: _turn(store, fence, 1, usage=True)))
        assert got == TURN[:-2] + ["INSERT graph_usage"] + TURN[-2:]


def test_a_turn_that_settles_claims_reads_the_lease_once(tmp_path):
    """A runtime's usual turn: two nodes and usage, completing the queue claim and the turn
    input claim it ran on. The lease row is read once, with the session and the head; the
    claims' live generation is the fence's, not read again per completion. 16 statements:
    the nine of a plain turn without the blob, plus usage, each claim's rows, one more
    node row, two more event rows (one executemany) and each settling write."""
    from eventstore.inputs import NextTurn, TurnInputDraft

    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)

        def turn(t: int) -> Any:
            store.queue.enqueue(QueuedWorkDraft("s", (AgentFrameTask("main", f"step {t}"),)))
            store.inputs.enqueue(TurnInputDraft("s", {"text": f"message {t}"}, NextTurn()))
            qc = store.queue.claim_ready(fence)
            ic = store.inputs.claim_next_turn(fence)
            user = SessionNode(f"u{t}", EventPayload({"text": "hi"}), f"a{t - 1}" if t else None)
            reply = SessionNode(f"a{t}", EventPayload({"text": "ok"}), f"u{t}")
            return lambda: store.sessions.commit(RuntimeCommit(
                "s", fence, GraphAppend((user, reply), f"a{t}"), usage_deltas=(UsageDelta("turn", "m", 9, 6),),
                completed_queue_claims=(qc.completion(),), completed_turn_input_claims=(ic.completion(),)))

        for t in range(2):
            turn(t)()
        statements = _traced(store, turn(2))
        got = _kinds(statements)
    assert sum("lease_sessions" in s for s in statements) == 1  # in the session's read
    assert got == ["BEGIN IMMEDIATE", "SELECT sessions_index", "SELECT queue_batches", "SELECT inputs_pending", "SELECT graph_nodes",
                   "INSERT events", "INSERT events", "INSERT events", "INSERT graph_nodes", "INSERT graph_nodes",
                   "UPDATE graph_heads", "INSERT graph_usage", "DELETE queue_batches", "UPDATE inputs_pending",
                   "UPDATE catalogue_streams", "COMMIT"]


def test_a_lease_claim_and_a_renew_run_six_statements_each(tmp_path):
    """BEGIN, one read of the session and its lease row (a join), the event, the lease row,
    the catalogue, COMMIT."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        store.sessions.create("a")
        store.sessions.create("b")
        store.leases.claim("a", OWNER, 30_000)  # warm: the log's head is cached from here on
        out: list[Any] = []
        claim = _kinds(_traced(store, lambda: out.append(store.leases.claim("b", OWNER, 30_000))))
        renew = _kinds(_traced(store, lambda: store.leases.renew(out[0].lease.fence, 30_000)))
    common = ["BEGIN IMMEDIATE", "SELECT sessions_index", "INSERT events"]
    assert claim == common + ["INSERT lease_sessions", "UPDATE catalogue_streams", "COMMIT"]
    assert renew == common + ["UPDATE lease_sessions", "UPDATE catalogue_streams", "COMMIT"]


def test_an_enqueue_claim_complete_cycle_runs_eight_eight_and_seven_statements(tmp_path):
    """Enqueue: session, sequence, event, batch, sequence row, catalogue. Claim: session and
    lease (one join), candidates, event, claim row, catalogue, the claimed batch read back. Complete:
    the claim's rows (with their source keys, for the applier), the live lease, event,
    delete, catalogue."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        draft = QueuedWorkDraft("s", (AgentFrameTask("frame-1", "summarise"),),
                                slot_policy=SlotPolicy.EXCLUSIVE)
        store.queue.enqueue(draft)  # warm: the first of each also creates rows
        store.queue.complete(store.queue.claim_ready(fence, max_batches=1))
        enqueue = _kinds(_traced(store, lambda: store.queue.enqueue(draft)))
        claims: list[Any] = []
        claim = _kinds(_traced(store, lambda: claims.append(store.queue.claim_ready(fence, max_batches=1))))
        complete = _kinds(_traced(store, lambda: store.queue.complete(claims[0])))
    assert enqueue == ["BEGIN IMMEDIATE", "SELECT sessions_index", "SELECT queue_sessions", "INSERT events",
                       "INSERT queue_batches", "INSERT queue_sessions", "UPDATE catalogue_streams", "COMMIT"]
    assert claim == ["BEGIN IMMEDIATE", "SELECT sessions_index", "SELECT queue_batches", "INSERT events", "UPDATE queue_batches",
                     "UPDATE catalogue_streams", "SELECT queue_batches", "COMMIT"]
    assert complete == ["BEGIN IMMEDIATE", "SELECT queue_batches", "SELECT lease_sessions", "INSERT events",
                        "DELETE queue_batches", "UPDATE catalogue_streams", "COMMIT"]


class Boom(Exception):
    """Raised by the tests to roll a savepoint back."""


def test_a_rolled_back_savepoint_forgets_the_rows_the_memo_remembered(tmp_path):
    """A head read inside a savepoint that is then rolled back must not feed a later applier:
    the commit appended by hand afterwards builds on the head as it really is."""
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        _turn(store, fence, 0)
        with store.transaction():
            with pytest.raises(Boom):
                with store.transaction():
                    _turn(store, fence, 1)
                    graph_proj.head(store.db, "s")  # remembers revision 2's head (two nodes)
                    raise Boom
            node = SessionNode("n1", EventPayload({"text": "by hand"}), "n0")
            store.append("session:s", [commit_event(2, GraphAppend((node,), "n1"), "n0", None, None, None, (),
                                                    None, (), ())])
        head = graph_proj.head(store.db, "s")
        assert (head.revision, head.live_nodes) == (2, 2)
        assert [n.seq for n in graph_proj.nodes(store.db, "s")] == [1, 2]
        assert store.verify_projections().ok


def test_the_memo_lives_for_one_write_transaction_only(tmp_path):
    """No memo outside a write transaction; a new transaction starts with an empty one."""
    with eventstore.open(tmp_path / "s.db") as store:
        assert store.db.memo() is None
        with store.read_transaction():
            assert store.db.memo() is None
        with store.transaction():
            memo = store.db.memo()
            assert memo == {}
            memo["x"] = 1
        with store.transaction():
            assert store.db.memo() == {}


def _failing_on_commit() -> Projection:
    p = Projection(name="fails_on_commit", version=1, tables=(), ddl=())

    @p.on(SessionCommitted)
    def _fail(db: Any, ev: Any) -> None:
        raise Boom("applier failed after the event row was written")

    return p


def test_a_command_whose_append_fails_half_way_leaves_nothing_behind(tmp_path):
    """The append inside a command has no savepoint of its own: when an applier fails after
    the event row and other projections' rows were written, the command's level (here a
    savepoint inside the caller's transaction, which catches the error and commits) is
    rolled back whole. The log, the projections and the blobs are as before."""
    projections = [*REGISTRY.all(), _failing_on_commit()]
    with eventstore.open(tmp_path / "s.db", projections=projections) as store:
        fence = _session(store)
        before = store.last_position()
        blobs = store.blobs.stats()
        with store.transaction():
            with pytest.raises(Boom):
                _turn(store, fence, 0)
            store.sessions.create("after")  # the caller goes on and commits
        assert store.last_position() == before + 1
        assert [e.type for e in store.read_all(before + 1)] == ["session.created"]
        assert graph_proj.head(store.db, "s") is None
        assert store.blobs.stats() == blobs
        assert store.verify().ok and store.verify_projections().ok


def test_an_enqueue_encodes_its_payloads_once(tmp_path, monkeypatch):
    """The enqueue command encodes the payloads once, to check them, and the queue applier
    stores those bytes; a plan whose events are appended later (or by hand) is encoded
    by the applier itself. Either way the row equals a rebuild's."""
    from projections import queue as queue_proj

    calls: list[int] = []
    real = queue_proj.encode_payloads

    def counting(payloads: Any) -> bytes:
        calls.append(1)
        return real(payloads)

    monkeypatch.setattr(queue_proj, "encode_payloads", counting)
    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        store.sessions.create("s")
        store.queue.enqueue(QueuedWorkDraft("s", (AgentFrameTask("f", {"step": 1}),)))
        assert len(calls) == 1
        from eventstore.queue import plan_enqueue

        with store.transaction():
            plan = plan_enqueue(store.db, [QueuedWorkDraft("s", (AgentFrameTask("f", {"step": 2}),))],
                                store.now_ms())
            store.append("session:s", list(plan.events))
        assert len(calls) == 3  # checked once, then encoded by the applier
        assert [b.payloads[0].task for b in store.queue.list("s")] == [{"step": 1}, {"step": 2}]
        assert store.verify_projections().ok


def test_the_lean_checks_raise_what_the_full_ones_do(tmp_path):
    """`require_live_generation` and `check_live_holder` (the commands' narrow reads) refuse
    exactly what `require_live_session` and `require_live_holder` refuse, with the same errors."""
    from eventstore.leases import SessionExecutionLeaseExpired, check_live_holder, require_live_holder
    from eventstore.sessions import SessionDeleted, SessionNotFound, require_live_generation, require_live_session

    def same_error(lean: Callable[[], Any], full: Callable[[], Any]) -> None:
        with pytest.raises(Exception) as a:
            lean()
        with pytest.raises(Exception) as b:
            full()
        assert type(a.value) is type(b.value) and str(a.value) == str(b.value)

    with eventstore.open(tmp_path / "s.db", synchronous="normal") as store:
        fence = _session(store)
        db, now = store.db, store.now_ms()
        with store.read_transaction():
            assert require_live_generation(db, "s") == require_live_session(db, "s").generation
            check_live_holder(db, fence, now)
            same_error(lambda: require_live_generation(db, "nope", "x"), lambda: require_live_session(db, "nope", "x"))
            same_error(lambda: check_live_holder(db, fence, fence_expiry(store) + 1, "x"),
                       lambda: require_live_holder(db, fence, fence_expiry(store) + 1, "x"))
        store.leases.release(fence)
        newer = store.leases.claim("s", LeaseOwner("other", "inc-2"), 60_000)
        assert isinstance(newer, Acquired)
        with store.read_transaction():
            with pytest.raises(SessionExecutionLeaseExpired):
                check_live_holder(db, fence, now)
            same_error(lambda: check_live_holder(db, fence, now, "x"), lambda: require_live_holder(db, fence, now, "x"))
        store.sessions.delete("s")
        with store.read_transaction():
            with pytest.raises(SessionDeleted):
                require_live_generation(db, "s")
            same_error(lambda: require_live_generation(db, "s", "x"), lambda: require_live_session(db, "s", "x"))
            with pytest.raises(SessionNotFound):
                require_live_generation(db, "never")


def fence_expiry(store: eventstore.Store) -> int:
    """The expiry of session "s"'s live lease."""
    state = store.leases.get("s")
    assert state is not None and state.holder is not None
    return state.holder.expires_at_ms
