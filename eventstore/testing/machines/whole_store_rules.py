"""The whole-store machine's setting and the rules of its last three domains.

`eventstore.testing.machines.whole_store.WholeStoreMachine` is split in two modules: this
one holds the owners, sessions, scopes and strategies every rule draws from, and
`DomainRules`, the rules for processes, triggers and effects and the check after every
step, which the machine inherits (hypothesis collects rules from base classes too).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

import eventstore
from eventstore.effects import EffectBusy, EffectFailed, EffectReplayMissing
from eventstore.commits import UsageDelta
from eventstore.leases import LeaseOwner, LocalProcessLiveness, OpaqueLiveness
from eventstore.processes import (
    AppendEventRequest, Disposition, EngineInput, EventTypeSpec, ExternalInput, ExternalOwner, HostScope,
    Pointer, ProcessRegistration, Provenance, SessionScope, Success, WakeSpec, WorkflowKey,
)
from eventstore.triggers import subscription_id_for
from eventstore.triggers import (
    DeleteSubscription, DisableSubscription, EnableSubscription, OccurrenceRequest, PruneSubscriptions,
    RegisterSubscription, ReviveSubscription, TriggerConflict, TriggerDefinition, UpdateSubscription,
)
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import model_records as mr
from eventstore.testing.machines import model_store as m

START = 1_000  # every local owner's process start time while it runs (model_store.SessionsModel.dead)
OWNERS = {
    "alpha/a1": LeaseOwner("alpha", "a1", LocalProcessLiveness("host", "boot", 101, START)),
    "alpha/a2": LeaseOwner("alpha", "a2", LocalProcessLiveness("host", "boot", 102, START)),
    "beta/b1": LeaseOwner("beta", "b1", LocalProcessLiveness("host", "boot", 103, START)),
    "gamma/g1": LeaseOwner("gamma", "g1", OpaqueLiveness()),  # a remote worker: never provably dead
}
MODEL_OWNERS = {k: mr.Owner(o.owner_id, o.incarnation_id, getattr(o.liveness, "pid", None)) for k, o in OWNERS.items()}
HANDLE_OF = {"alpha/a1": 0, "alpha/a2": 1, "beta/b1": 1, "gamma/g1": 0}  # each owner's connection
SESSIONS = ("s1", "s2", "process-env:p1")  # the last is owned by process p1: pruning p1 drops it
PIDS = ("p1", "p2")
HANDLE_SCOPES = ("session:s1", "session:s1/frame:f", "session:s2", "host")
TRIGGER_SCOPES = ("host", "session:s1", "session:s2/frame:f")
DEFINITIONS = (("webhook", "push", "ci"), ("webhook", None, "audit"), ("cron", "daily", "report"))
SOURCES = (("webhook", "push"), ("webhook", "tag"), ("cron", "daily"))
WORKERS = ("worker-a", "worker-b")  # effect owners, one per connection
EFFECT_TTL = 300
SCOPE = "run"

owners = st.sampled_from(sorted(OWNERS))
sids = st.sampled_from(("s1", "s1", "s2", "process-env:p1"))
worked = st.sampled_from(("s1", "s1", "s2"))  # where fenced work mostly happens
ttls = st.sampled_from((0, 1_000, 60_000, 60_000, 60_000, 60_000))
picks = st.integers(0, 7)
callers = st.sampled_from(("holder", "holder", "holder", "stale"))
"""Who sends a fenced command: the session's live lease holder, or a stale caller (the newest
fence that is not the live one: released, expired, taken over, or of a deleted generation)."""


@attrs.frozen(repr=False)
class Ref:
    """A bundle value: the model's object and the store's, side by side."""

    model: Any
    store: Any
    session_id: str = ""

    def __repr__(self) -> str:
        return f"<{type(self.model).__name__} on {self.session_id}>"


def registration(pid: str) -> ProcessRegistration:
    """p1: externally owned, wakes s1; p2: rerunnable, owned by s2's scope, wakes s2."""
    types = (EventTypeSpec("job.line"), EventTypeSpec("job.wake", wake=WakeSpec(Pointer("/n"), when=Pointer("/wake"))))
    if pid == "p1":
        return ProcessRegistration(pid, ExternalInput({"job": pid}), Disposition.EXTERNALLY_OWNED,
                                   Provenance(HostScope()), types, wake_target=SessionScope("s1"))
    return ProcessRegistration(pid, EngineInput("engine", {"job": pid}), Disposition.RERUNNABLE,
                               Provenance(SessionScope("s2")), types, env_ref="env:1",
                               wake_target=SessionScope("s2"))


def scope_of(scope_id: str) -> Any:
    """The HostScope / SessionScope an owner scope id names."""
    if scope_id == "host":
        return HostScope()
    sid, _, frame = scope_id[len("session:"):].partition("/frame:")
    return SessionScope(sid, frame or None)


def _claimed_by(claim: mr.Claim | None) -> tuple | None:
    """(claim id, owner id, incarnation) of the claim that holds a row, as the store lists it."""
    return None if claim is None else (claim.claim_id, claim.owner.owner_id, claim.owner.incarnation)


def other_session(sid: str) -> str:
    return "s2" if sid == "s1" else "s1"


class DomainRules:
    """Processes, triggers and effects, and the invariant, as rules of WholeStoreMachine."""

    # Set up by WholeStoreMachine (its __init__, its plumbing).
    model: m.StoreModel
    stores: list[eventstore.Store]
    trigger_ops: dict[tuple[str, str], tuple[tuple, Any]]
    now: Callable[[], int]

    @property
    def store(self) -> eventstore.Store:
        """The first connection: reads and the commands no owner sends."""
        return self.stores[0]

    # --- processes ------------------------------------------------------------------------------

    @rule(pid=st.sampled_from(PIDS))
    def register_process(self, pid):
        """Register (idempotent; a pruned id registers afresh)."""
        self.model.processes.register(pid, pid == "p1", "s1" if pid == "p1" else "s2", self.now())
        assert self.store.processes.register(registration(pid)).status.value == self.model.processes.procs[pid].status

    @rule(pid=st.sampled_from(PIDS), kind=st.sampled_from(("line", "wake", "wake")), n=st.integers(0, 1),
          key=st.sampled_from((None, "r1", "r2")))
    def append_process_event(self, pid, kind, n, key):
        """An event appended and its wake enqueued into the target session's queue, atomically."""
        payload = {"n": n, "wake": True} if kind == "wake" else {"n": n}
        request = AppendEventRequest(f"job.{kind}", payload, key)
        ok, answer, got = self.run(lambda: self.model.processes.append(pid, kind, n, key, self.now()),
                                   lambda: self.store.processes.append_event_and_enqueue(pid, request))
        if not ok:
            return
        sequence, replayed, woke = answer
        assert (got.append.event.sequence, got.append.replayed) == (sequence, replayed)
        if woke is None:
            assert got.enqueued is None
            return
        batch, created, disposition = woke
        assert (got.enqueued.batch.batch_id, got.enqueued.created, got.enqueued.disposition) == (
            batch.batch_id, created, disposition)
        if created:
            self.batch_ids[got.append.wake_delivery.target_session_id].append(batch.batch_id)

    @rule(pid=st.sampled_from(PIDS), n=st.integers(0, 1), how=st.sampled_from(("authority", "lease")), owner=owners)
    def complete_process(self, pid, n, how, owner):
        """Complete under the disposition's authority, or with the owner's process lease."""
        procs = self.model.processes
        if how == "authority":
            authority = ExternalOwner("ops") if pid == "p1" else WorkflowKey("wf")
            self.run(lambda: procs.complete(pid, ("authority", n), self.now()),
                     lambda: self.store.processes.complete(pid, Success(n), authority))
            return
        lease = self.process_leases.get((pid, owner))
        if lease is not None:
            self.run(lambda: procs.complete(pid, ("lease", n), self.now(), MODEL_OWNERS[owner], lease.fencing_token),
                     lambda: self.stores[HANDLE_OF[owner]].processes.complete_with_lease(lease, Success(n)))

    @rule(owner=owners, pid=st.sampled_from(PIDS), action=st.sampled_from(("claim", "claim", "release")))
    def process_lease(self, owner, pid, action):
        """Claim (acquired, re-entry, busy) or release a process lease."""
        procs = self.model.processes
        if action == "release":
            lease = self.process_leases.get((pid, owner))
            if lease is not None:
                expected = procs.release_lease(pid, MODEL_OWNERS[owner], lease.fencing_token)
                assert self.stores[HANDLE_OF[owner]].processes.release_lease(lease) is expected
            return
        store = self.stores[HANDLE_OF[owner]]
        ok, answer, got = self.run(lambda: procs.claim_lease(pid, MODEL_OWNERS[owner], 1_000, self.now()),
                                   lambda: store.processes.claim_lease(pid, OWNERS[owner], 1_000))
        if ok:
            outcome, fence = answer
            assert type(got).__name__ == outcome.capitalize(), (got, outcome)
            assert (got.lease if outcome == "acquired" else got.holder).fencing_token == fence
            if outcome == "acquired":
                self.process_leases[(pid, owner)] = got.lease

    @rule(pid=st.sampled_from(PIDS), scope=st.sampled_from(HANDLE_SCOPES), action=st.sampled_from(("grant", "revoke")))
    def process_handle(self, pid, scope, action):
        """Grant or revoke a handle; a session delete revokes its scopes' grants."""
        if action == "grant":
            self.run(lambda: self.model.processes.grant(pid, scope),
                     lambda: self.store.processes.grant(scope_of(scope), pid))
        else:
            assert self.store.processes.revoke(scope_of(scope), pid) is self.model.processes.revoke(pid, scope)

    @rule()
    def prune_processes(self):
        """Terminal processes last changed before now go, with the sessions they own."""
        now = self.now()
        versions = {f"process-env:{pid}": self.store.stream_version(f"session:process-env:{pid}") for pid in PIDS}
        ids = self.model.processes.prune(now, now, versions)
        assert list(self.store.processes.prune(now).pruned_processes) == ids
        for key in [k for k in self.process_leases if k[0] in ids]:
            del self.process_leases[key]

    # --- triggers -------------------------------------------------------------------------------

    def _execute(self, scoped_op: tuple[str, str]) -> None:
        """Run a trigger command; conflicts are answers too (recorded, then raised)."""
        op = scoped_op[1]
        cmd, store_cmd = self.trigger_ops[scoped_op]
        answer, replayed = self.model.triggers.execute(op, cmd, self.now())
        try:
            r = self.store.triggers.execute(op, store_cmd)
        except TriggerConflict as exc:
            got: tuple[Any, bool] = (("conflict", type(exc).__name__), exc.replayed)
        else:
            shape = (("pruned", r.outcome, tuple((t.subscription_key, t.revision) for t in r.tombstoned))
                     if r.command == "prune" else ("result", r.outcome, r.revision, r.incarnation))
            got = (shape, r.replayed)
        assert got == (answer, replayed), (got, answer, replayed)

    def _new_op(self, scope: str, borrow: int) -> tuple[str, str]:
        """A fresh (scope, op id), or (small `borrow`) an op id another scope already used."""
        mine = {op for s, op in self.trigger_ops if s == scope}
        elsewhere = sorted({op for s, op in self.trigger_ops if s != scope} - mine)
        if borrow < 2 and elsewhere:
            return scope, elsewhere[borrow % len(elsewhere)]
        return scope, f"op-{len(self.trigger_ops) + 1}"

    @rule(scope=st.sampled_from(TRIGGER_SCOPES),
          kind=st.sampled_from(("register", "register", "update", "enable", "disable", "delete", "revive",
                                "prune")),
          d=st.integers(0, len(DEFINITIONS) - 1), stale=st.sampled_from((False, False, True)),
          borrow=st.integers(0, 5))
    def trigger_command(self, scope, kind, d, stale, borrow=5):
        """A subscription command under a new operation id of its scope (sometimes one another
        scope used), with the current or a stale revision; or a prune of the key by name."""
        cur = self.model.triggers.subs.get(subscription_id_for(scope, "t"))
        rev = (cur.revision if cur else 1) + (3 if stale else 0)
        dfn = TriggerDefinition(*DEFINITIONS[d])
        store_cmd = {"register": lambda: RegisterSubscription(scope, "t", dfn),
                     "update": lambda: UpdateSubscription(scope, "t", rev, dfn),
                     "enable": lambda: EnableSubscription(scope, "t", rev),
                     "disable": lambda: DisableSubscription(scope, "t", rev),
                     "delete": lambda: DeleteSubscription(scope, "t", rev),
                     "revive": lambda: ReviveSubscription(scope, "t", rev, dfn),
                     "prune": lambda: None}[kind]()
        cmd = (kind, scope, "t", None if kind == "register" else rev,
               DEFINITIONS[d] if kind in ("register", "update", "revive") else None)
        if kind == "prune":
            store_cmd = PruneSubscriptions(scope, ("t", "t", "u"))
            cmd = ("prune", scope, ("t", "u"), None, None)
        scoped_op = self._new_op(scope, borrow)
        self.trigger_ops[scoped_op] = (cmd, store_cmd)
        self._execute(scoped_op)

    @rule(pick=picks)
    def replay_trigger_operation(self, pick):
        """Re-send an earlier operation id: its receipt replays, or (pruned) it runs afresh."""
        if self.trigger_ops:
            self._execute(sorted(self.trigger_ops)[pick % len(self.trigger_ops)])

    @rule(source=st.sampled_from(SOURCES), session=st.sampled_from((None, "s1", "s2")), again=st.integers(0, 4),
          change=st.booleans())
    def ingest_occurrence(self, source, session, again, change):
        """A new occurrence, or an earlier one re-sent as it was or with another payload."""
        known = sorted(self.model.triggers.occurrences)
        request = (source[0], source[1], f"o{len(known)}", 0, session)
        if again < len(known):
            request = self.model.triggers.occurrences[known[again]][0]
            request = request[:3] + (1,) + request[4:] if change else request
        store_request = OccurrenceRequest(request[0], request[1], request[2], {"v": request[3]}, request[4])
        ok, answer, got = self.run(lambda: self.model.triggers.ingest(request),
                                   lambda: self.store.triggers.ingest(store_request))
        if ok:
            assert (got.status, sorted(d.process_id for d in got.deliveries)) == (answer[0], sorted(answer[1]))

    # --- effects --------------------------------------------------------------------------------

    @rule(worker=st.integers(0, 1), key=st.sampled_from(("k0", "k1")),
          step=st.sampled_from(("begin", "begin", "complete", "fail")), value=st.sampled_from((None, 1, "ok")))
    def effect_lease_step(self, worker, key, step, value):
        """The journal's lease protocol by hand: begin (claim, take over, replay, busy), finish."""
        fx, who = self.stores[worker].effects, WORKERS[worker]
        if step == "begin":
            expected = self.model.effects.begin(who, key, self.now())
            got = fx.begin(SCOPE, key, {"tool": key})
            if expected in ("claimed", "taken_over"):
                assert got.status == "claimed" and got.taken_over == (expected == "taken_over"), got
                assert got.lease.attempt == self.model.effects.entries[key].attempt
                self.effect_leases[(who, key)] = got.lease
            else:
                assert got.status == expected, (got, expected)
            return
        lease = self.effect_leases.get((who, key))
        if lease is not None:
            error = "ToolError: broken" if step == "fail" else None
            self.run(lambda: self.model.effects.finish(who, key, lease.attempt, value, error, self.now()),
                     lambda: fx.fail(lease, "ToolError", "broken") if error else fx.complete(lease, value))

    @rule(worker=st.integers(0, 1), key=st.sampled_from(("k0", "k1")), value=st.sampled_from((None, 2, "done")),
          strict=st.booleans())
    def journaled_call(self, worker, key, value, strict):
        """A whole journaled call (runs once, then replays; busy while another holds it), in
        normal mode or in strict replay (where a key never journaled is refused)."""
        fx = self.stores[worker].effects
        kind, expected = self.model.effects.call(WORKERS[worker], key, value, self.now(), strict)
        ran = []
        try:
            with fx.strict_replay() if strict else contextlib.nullcontext():
                got = fx.call(SCOPE, key, {"tool": key}, lambda: ran.append(1) or value)
        except EffectReplayMissing:
            assert kind == "missing" and not ran
            return
        except EffectBusy:
            assert kind == "busy"
            return
        except EffectFailed as exc:
            assert kind == "failed" and exc.replayed and f"{exc.error_type}: {exc.error_message}" == expected
            return
        assert (kind in ("ran", "replay"), got, bool(ran)) == (True, expected, kind == "ran")

    # --- after every step -----------------------------------------------------------------------

    @invariant()
    def store_equals_model_and_is_consistent(self):
        """Each modelled projection equals the model; the chain, a rebuild and a replay agree."""
        self.check_sessions_leases_queue_and_inputs()
        self.check_heads_and_graphs()
        self.check_processes_triggers_and_effects()
        assert_consistent(self.store)

    def check_sessions_leases_queue_and_inputs(self):
        """Sessions, leases, queues and inputs of every session id equal the model."""
        now, ss = self.now(), self.model.sessions
        for sid in SESSIONS:
            s = ss.sessions.get(sid)
            info = self.store.sessions.get(sid)
            assert (info and (info.status, info.generation)) == (s and (s.status, s.generation)), sid
            state = self.store.leases.get(sid)
            if s is None or s.fence == 0:
                assert state is None, (sid, state)
            else:
                h, got = s.holder, state.holder
                holder = got and (got.owner, got.fencing_token, got.expires_at_ms, got.lease_token)
                assert (state.fencing_token, holder) == (
                    s.fence, h and (OWNERS[repr(h.owner)], h.fence, h.expires_at, self.tokens[h])), sid
            batches = [] if s is None else sorted(s.batches.values(), key=lambda b: b.seq)
            assert [(b.batch_id, b.state, b.claim and (b.claim.claim_id, b.claim.owner_id, b.claim.incarnation_id),
                     b.claim_fencing_token) for b in self.store.queue.list(sid)] == [
                (b.batch_id, "claimed" if s.holds(b.claim, now) else "pending", _claimed_by(b.claim), b.claim_count)
                for b in batches], sid
            rows = [] if s is None else list(s.inputs.values())
            assert [(r.input_id, r.state.value,
                     r.claim and (r.claim.claim_id, r.claim.owner_id, r.claim.incarnation_id))
                    for r in self.store.inputs.list(sid)] == [
                (r.input_id, ss.effective_input_state(s, r, now), _claimed_by(r.claim)) for r in rows], sid

    def check_heads_and_graphs(self):
        """Every session's head, graph, checkpoint and usage equal the model."""
        for sid in SESSIONS:
            s = self.model.sessions.sessions.get(sid)
            g = s.graph if s is not None else None
            loaded = self.store.sessions.load(sid)
            if g is None:
                assert loaded is None, sid
                continue
            assert (loaded.head_revision, loaded.leaf_node_id, [n.node_id for n in loaded.nodes]) == (
                g.revision, g.leaf, g.live), sid
            turn_index = loaded.checkpoint.turn_state.turn_index if loaded.checkpoint is not None else None
            assert turn_index == g.checkpoint, sid
            assert loaded.token_ledger == ((UsageDelta("turn", "m", g.usage),) if g.usage else ()), sid

    def check_processes_triggers_and_effects(self):
        """Processes, trigger subscriptions and deliveries, effects equal the model."""
        procs = self.model.processes.procs
        assert sorted(r.process_id for r in self.store.processes.list()) == sorted(procs)
        for pid, p in procs.items():
            record = self.store.processes.get(pid)
            assert (record.status.value, record.last_sequence) == (p.status, p.last_sequence), pid
            state = self.store.processes.lease_state(pid)
            h = state.holder
            holder = h and (MODEL_OWNERS[f"{h.owner.owner_id}/{h.owner.incarnation_id}"], h.fencing_token,
                            h.expires_at_ms)
            assert (state.fencing_token, holder) == (p.fence, p.holder), pid
            assert {g.scope_id for g in self.store.processes.grants_for_process(pid)} == p.grants, pid
        subs = self.model.triggers.subs
        assert {s.subscription_id: (s.incarnation, s.revision, s.enabled, s.deleted)
                for s in self.store.triggers.list()} == {
            sid: (s.incarnation, s.revision, s.enabled, s.deleted) for sid, s in subs.items()}
        for sid in subs:
            assert sorted(d.process_id for d in self.store.triggers.deliveries(subscription_id=sid)) == sorted(
                self.model.triggers.deliveries.get(sid, [])), sid
        for key in ("k0", "k1"):
            entry, e = self.store.effects.get(SCOPE, key), self.model.effects.entries.get(key)
            assert (entry and (entry.status, entry.attempts, entry.holder.owner_id)) == (
                e and (e.status, e.attempt, e.holder)), key
