"""One model of the whole store: a hypothesis state machine that drives every domain at once.

Sessions (create, delete, recreate, purge), session leases (claim, renew, release,
reclaim against a fake /proc), queued work, turn inputs, runtime commits (graph deltas,
checkpoints, usage, claim settlement, outbox, interrupts, turn stamps and their
replays, stale head revisions, lost leases), graph maintenance, processes (register,
events with replay keys and wakes delivered into session queues, grants, process
leases, completion, prune with the sessions a process owns), triggers (commands with
current and stale revisions, receipts, occurrences) and effects (lease steps, whole
journaled calls, strict replay) are driven by several owners on two connections to one
file, while a manual clock moves leases to expiry and fenced commands come from the
live holder or from stale callers. `eventstore.testing.machines.model_store` predicts every answer.

After every step (one invariant, so a failing program prints one line per step):
* every modelled projection equals the model: session status and generation; lease
  fencing token, holder, token and expiry; queue batches (ids, state, claim, claim
  counter); turn inputs (ids, effective state, claim); head revision, leaf, live node
  ids, checkpoint and usage per session; process status, event count, lease and
  grants; trigger subscriptions (revision, incarnation, enabled, deleted) and
  deliveries; effect status, holder and attempt;
* eventstore.testing.helpers.assert_consistent: the chain verifies, every live projection equals an
  offline rebuild and a time-travel replay to the current position.

Both checks run after every step on the same store: it stays small (a few hundred
events per example), so the full check costs a few milliseconds, and the step count per
example is what the profiles scale. Sizes per profile (from the loaded profile's
max_examples, which is never raised):

* default: 30 examples x 100 steps (about 23 s on the 2-core test machine, idle);
* ci (CI=true): 60 examples x 150 steps (about 70 s);
* deep, for a long run: `HYPOTHESIS_PROFILE=deep python -m pytest
  tests/test_whole_store_machine.py -q` (on SQLite) runs 2,000 examples x 250 steps (about 70
  minutes idle, more under load). Add `--hypothesis-seed=N` to explore elsewhere and
  `--hypothesis-show-statistics` to see where the time goes; a failure is saved in
  .hypothesis/ and replayed first by the next run of any profile.

Hypothesis enables a random subset of the rules in each example (swarm testing), so a
long chain (claim, delete, purge, recreate, enqueue, complete the old claim) is rare in a
default run: ci and deep run more and longer programs for that. The plain tests at the end
pin two such chains: one found a bug, the other (a process pruned and registered again)
drives a fixed bug through the rules.

A failure shrinks to a readable program of rule calls: `session_lifecycle(action='purge',
sid='s1')`, `commit_turn(caller='stale', graph='extend', sid='s1', ...)`, with leases,
claims and stamped commits as variables (`fences_0 = state.claim_lease(...)`, then
`state.renew_lease(fence=fences_0, ttl=1000)`).

The setting (owners, sessions, scopes, strategies) and the rules of processes, triggers and
effects, with the check after every step, are in `whole_store_rules`.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, multiple, rule

import eventstore
from eventstore.commits import RuntimeCommit
from eventstore.commits import (
    Checkpoint, EventPayload, GraphAppend, GraphReplace, GraphUnchanged, SessionNode, TurnState, UsageDelta,
)
from eventstore.inputs import ActiveTurn, CheckpointKind, NextTurn, TurnInputClaimSuperseded, TurnInputDraft
from eventstore.leases import Acquired, Busy, LeaseOwner, LeaseTimings, LocalProcessLiveness
from eventstore.queue import (
    AgentFrameTask, QueuedWorkClaimSuperseded, QueuedWorkDraft, RefreshToolCatalog, SlotPolicy,
)
from eventstore.sessions import SessionMeta
from eventstore.commits import stamp_turn
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine
from eventstore.testing.machines import model_records as mr
from eventstore.testing.machines import model_store as m
from eventstore.testing.machines.whole_store_rules import (
    EFFECT_TTL, HANDLE_OF, MODEL_OWNERS, OWNERS, PIDS, SESSIONS, START, WORKERS, DomainRules, Ref, callers, other_session,
    owners, picks, sids, ttls, worked,
)


class WholeStoreMachine(DomainRules, BackendMachine):
    """Every domain of one store against model_store.StoreModel."""

    fences = Bundle("fences")
    work_claims = Bundle("work_claims")
    input_claims = Bundle("input_claims")
    stamped = Bundle("stamped")

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        backend = self.open_backend(self.clock)
        self.stores = [backend.store, backend.open()]
        self.model = m.StoreModel(EFFECT_TTL)
        self.proc = self.model.sessions.proc  # the fake /proc, shared by model and store
        self.proc.update({o.liveness.pid: START for o in OWNERS.values()
                          if isinstance(o.liveness, LocalProcessLiveness)})
        for i, s in enumerate(self.stores):
            s.leases.read_process_start = self.proc.get
            s.effects.configure(owner=LeaseOwner(WORKERS[i], f"{WORKERS[i]}-1"),
                                timings=LeaseTimings(ttl_ms=EFFECT_TTL, renew_every_ms=100), wait_timeout_s=0)
        self.tokens: dict[mr.Acquisition, str] = {}  # acquisition -> the store's lease token
        self.fence_refs: dict[mr.Acquisition, Ref] = {}  # every fence handed out, oldest first
        self.batch_ids: dict[str, list[str]] = {sid: [] for sid in SESSIONS}  # every id ever issued
        self.input_ids: dict[str, list[str]] = {sid: [] for sid in SESSIONS}
        self.process_leases: dict[tuple[str, str], Any] = {}
        self.effect_leases: dict[tuple[str, str], Any] = {}
        # (owner scope, op id) -> (model command, store command)
        self.trigger_ops: dict[tuple[str, str], tuple[tuple, Any]] = {}
        self.nodes = 0

    @classmethod
    def default_settings(cls) -> settings:
        """The loaded profile's max_examples (30 default, 60 ci, 2000 deep) is the example
        count (never raised); the steps per example grow with it."""
        examples = settings().max_examples
        steps = 100 if examples <= 30 else 150 if examples <= 60 else 250
        return settings(max_examples=examples, stateful_step_count=steps)

    # --- plumbing -------------------------------------------------------------------------

    def now(self) -> int:
        """The manual clock's time (what the next command reads)."""
        return self.clock()

    def run(self, predict, act) -> tuple[bool, Any, Any]:
        """(ok, model answer, store answer); a refusal must be the same typed error, writing nothing."""
        before = self.store.last_position()
        try:
            expected = predict()
        except mr.Refused as refused:
            with pytest.raises(eventstore.StoreError) as info:
                act()
            assert type(info.value).__name__ == refused.name, (refused, info.value)
            assert self.store.last_position() == before, "a refused command wrote"
            return False, refused, info.value
        return True, expected, act()

    def _fenced(self, fence: Ref) -> eventstore.Store:
        """The connection of the fence's owner."""
        return self.stores[HANDLE_OF[repr(fence.model.owner)]]

    def _caller(self, sid: str, caller: str) -> Ref | None:
        """The fence a `caller` of session `sid` presents: the live holder's, or the newest fence
        that is not the live one (a stale caller). None (the step does nothing) when there is none."""
        s = self.model.sessions.sessions.get(sid)
        live = s.live_holder(self.now()) if s is not None else None
        if caller == "holder":
            return self.fence_refs[live] if live is not None else None
        stale = [r for r in self.fence_refs.values() if r.session_id == sid and r.model is not live]
        return stale[-1] if stale else None

    # --- the start ------------------------------------------------------------------------

    @initialize(target=fences)
    def start(self):
        """The store every example starts from: sessions s1, s2 and process-env:p1; processes
        p1 and p2 (their wakes target s1 and s2), p1 granted to s1 and to the host; trigger
        subscriptions on the host and on s1; alpha holding s1's lease and beta s2's (60 s);
        on s1 three batches (task, solo, task) and three inputs (turn t1 after work, turn t1
        before completion, next turn). Returns the two fences."""
        for sid in SESSIONS:
            self.session_lifecycle(sid, "create")
        for pid in PIDS:
            self.register_process(pid)
        for scope in ("session:s1", "host"):
            self.process_handle("p1", scope, "grant")
        for scope in ("host", "session:s1"):
            self.trigger_command(scope, "register", 0, False)
        fences = (self.claim_lease("alpha/a1", "s1", 60_000), self.claim_lease("beta/b1", "s2", 60_000))
        for kind in ("task", "solo", "task"):
            self.enqueue_work("s1", kind, None)
        for turn, boundary, text in (("t1", "after_work", "x"), ("t1", "before_completion", "y"), (None, "", "z")):
            self.enqueue_input("s1", turn, boundary, text, None)
        return multiple(*fences)

    # --- sessions and leases --------------------------------------------------------------------

    @rule(sid=sids, action=st.sampled_from(("create", "recreate", "recreate", "purge", "save_meta")))
    def session_lifecycle(self, sid, action):
        """Create (idempotent), recreate (a new generation of a deleted id), purge (a deleted id),
        save_meta (an upsert of the meta; refused for a deleted id)."""
        ss = self.model.sessions
        if action == "save_meta":
            meta = SessionMeta(model=f"m-{self.now() % 7}")
            ok, _kind, got = self.run(lambda: ss.save_meta(sid), lambda: self.store.sessions.save_meta(sid, meta))
            if ok:
                assert got.status == "active" and got.meta.model == meta.model
            return
        if action == "purge":
            version = self.store.stream_version(f"session:{sid}")
            ok, purged, got = self.run(lambda: ss.purge(sid, version), lambda: self.store.sessions.purge(sid))
            if ok:
                assert got.purged == purged
            return
        ok, kind, got = self.run(lambda: ss.create(sid, action == "recreate"),
                                 lambda: self.store.sessions.create(sid, recreate=action == "recreate"))
        if ok:
            assert (got.created, got.recreated) == (kind != "existing", kind == "recreated")

    @rule(sid=st.sampled_from(SESSIONS + ("process-env:p1",)))
    def delete_session(self, sid):
        """Delete: wipes leases, queue, inputs and graph; revokes the session's grants and wake
        targets, tombstones its trigger subscriptions, revokes its effect awaits."""
        ok, deleted, got = self.run(lambda: self.model.sessions.delete(sid, self.now()),
                                    lambda: self.store.sessions.delete(sid))
        if ok:
            assert got.deleted == deleted

    def _acquired(self, kind: str, acq: mr.Acquisition, got: Any) -> Any:
        if kind == "busy":
            assert isinstance(got, Busy), got
            assert (got.holder.fencing_token, got.holder.expires_at_ms) == (acq.fence, acq.expires_at)
            return multiple()
        assert isinstance(got, Acquired), got
        assert got.reentry == (kind == "reentry")
        assert (got.lease.fencing_token, got.lease.expires_at_ms) == (acq.fence, acq.expires_at)
        if kind == "reentry":
            assert got.lease.lease_token == self.tokens[acq]
            return multiple()
        self.tokens[acq] = got.lease.lease_token
        self.fence_refs[acq] = Ref(acq, got.lease, acq.session_id)
        return self.fence_refs[acq]

    @rule(target=fences, owner=owners, sid=sids, ttl=ttls)
    def claim_lease(self, owner, sid, ttl):
        """Claim a session's lease: acquired (fence + 1), re-entry, or busy."""
        ok, answer, got = self.run(
            lambda: self.model.sessions.claim_lease(sid, MODEL_OWNERS[owner], ttl, self.now()),
            lambda: self.stores[HANDLE_OF[owner]].leases.claim(sid, OWNERS[owner], ttl))
        return self._acquired(*answer, got) if ok else multiple()

    @rule(target=fences, owner=owners, seen=fences, look_now=st.booleans(), ttl=ttls)
    def reclaim_lease(self, owner, seen, look_now, ttl):
        """Reclaim with an observation: the holder as it is now (`look_now`), or an older fence."""
        sid = seen.session_id
        observed, observed_store = seen.model, seen.store
        s = self.model.sessions.sessions[sid]
        current = self.store.leases.get(sid)
        if look_now and s.holder is not None and current is not None and current.holder is not None:
            observed, observed_store = s.holder, current.holder
        ok, answer, got = self.run(
            lambda: self.model.sessions.reclaim_lease(sid, MODEL_OWNERS[owner], observed, ttl, self.now()),
            lambda: self.stores[HANDLE_OF[owner]].leases.reclaim(sid, OWNERS[owner], observed_store, ttl))
        return self._acquired(*answer, got) if ok else multiple()

    @rule(fence=fences, ttl=ttls)
    def renew_lease(self, fence, ttl):
        """Renew with a fence: only the live lease's fence may."""
        ok, _, got = self.run(lambda: self.model.sessions.renew_lease(fence.model, ttl, self.now()),
                              lambda: self._fenced(fence).leases.renew(fence.store.fence, ttl))
        if ok:
            assert got.expires_at_ms == self.now() + ttl

    @rule(fence=fences)
    def release_lease(self, fence):
        """Release with a fence: a stale fence is a no-op."""
        ok, released, got = self.run(lambda: self.model.sessions.release_lease(fence.model),
                                     lambda: self._fenced(fence).leases.release(fence.store.fence))
        if ok:
            assert got.released == released

    @rule(ms=st.sampled_from((1, 300, 1_000, 2_500)))
    def advance_clock(self, ms):
        """Time passes: leases, claims and effect leases expire."""
        self.clock.advance(ms)

    @rule(owner=st.sampled_from(("alpha/a1", "alpha/a2", "beta/b1")),
          fate=st.sampled_from(("dies", "pid_reused", "runs")))
    def set_process_fate(self, owner, fate):
        """What the fake /proc says about a local owner's pid (a reclaim reads it)."""
        pid = OWNERS[owner].liveness.pid
        if fate == "dies":
            self.proc.pop(pid, None)
        else:
            self.proc[pid] = START + 1 if fate == "pid_reused" else START

    # --- queued work --------------------------------------------------------------------------

    @rule(sid=sids, kind=st.sampled_from(("task", "task", "solo", "command")),
          key=st.sampled_from((None, None, "job-1", "job-2")))
    def enqueue_work(self, sid, kind, key):
        """Turn work (Join), a solo batch (Exclusive) or a session command; maybe keyed."""
        payload = RefreshToolCatalog("tools") if kind == "command" else AgentFrameTask("frame", kind)
        slot = SlotPolicy.EXCLUSIVE if kind == "solo" else SlotPolicy.JOIN
        draft = QueuedWorkDraft(sid, (payload,), slot_policy=slot, source_key=key)
        ok, answer, got = self.run(lambda: self.model.sessions.enqueue_work(sid, kind, key, self.now()),
                                   lambda: self.store.queue.enqueue(draft))
        if ok:
            batch, created, disposition = answer
            assert (got.batch.batch_id, got.created, got.disposition) == (batch.batch_id, created, disposition)
            if created:
                self.batch_ids[sid].append(batch.batch_id)

    def _claimed(self, claim: mr.Claim | None, got: Any) -> Any:
        if claim is None:
            assert got is None, got
            return multiple()
        ids = got.batch_ids if claim.family == "work" else got.input_ids
        assert (got.claim_id, ids, got.generation, got.lease_token) == (
            claim.claim_id, claim.ids, claim.generation, claim.lease_token), (got, claim)
        return Ref(claim, got, claim.session_id)

    def _claim(self, sid: str, caller: str, predict, act) -> Any:
        fence = self._caller(sid, caller)
        if fence is None:
            return multiple()
        ok, claim, got = self.run(lambda: predict(fence.model), lambda: act(self._fenced(fence), fence.store.fence))
        return self._claimed(claim, got) if ok else multiple()

    @rule(target=work_claims, sid=worked, caller=callers, max_batches=st.sampled_from((1, 2, 3, 0)))
    def claim_ready_work(self, sid, caller, max_batches):
        """Claim the ready turn work at the head of the queue (Join / Exclusive rules)."""
        return self._claim(sid, caller, lambda f: self.model.sessions.claim_ready(f, max_batches, self.now()),
                           lambda store, f: store.queue.claim_ready(f, max_batches=max_batches))

    @rule(target=work_claims, sid=worked, caller=callers)
    def claim_session_command(self, sid, caller):
        """Claim the session command at the head of the queue, if it is one."""
        return self._claim(sid, caller, lambda f: self.model.sessions.claim_command(f, self.now()),
                           lambda store, f: store.queue.claim_session_command(f))

    @rule(claim=work_claims)
    def abandon_work(self, claim):
        """Give back what a claim still holds (a stale claim holds nothing)."""
        expected = self.model.sessions.abandon_work(claim.model)
        assert set(self.store.queue.abandon(claim.store).batch_ids) == set(expected)

    @rule(sid=sids, pick=picks)
    def cancel_work(self, sid, pick):
        """Cancel one of the batches ever enqueued on the session (settled or wiped ones too)."""
        if self.batch_ids[sid]:
            batch_id = self.batch_ids[sid][pick % len(self.batch_ids[sid])]
            expected = self.model.sessions.cancel_work(sid, batch_id, self.now())
            assert (self.store.queue.cancel(sid, batch_id) is not None) == expected

    @rule(claim=work_claims)
    def complete_work(self, claim):
        """Settle a claim's batches: refused unless it still holds them under a live lease."""
        ok, ids, got = self.run(lambda: self.model.sessions.complete_work(claim.model, self.now()),
                                lambda: self.store.queue.complete(claim.store))
        if ok:
            assert got.batch_ids == ids

    # --- turn inputs ----------------------------------------------------------------------------

    @rule(sid=sids, turn=st.sampled_from(("t1", "t2", None)),
          boundary=st.sampled_from(("after_work", "before_completion")), text=st.sampled_from(("x", "y")),
          key=st.sampled_from((None, None, "ui-1")))
    def enqueue_input(self, sid, turn, boundary, text, key):
        """Record a turn input for an active turn or the next one; a source key replays or conflicts."""
        ingress = ActiveTurn(turn, CheckpointKind(boundary)) if turn else NextTurn()
        ok, answer, got = self.run(
            lambda: self.model.sessions.enqueue_input(sid, turn, boundary, text, key, self.now()),
            lambda: self.store.inputs.enqueue(TurnInputDraft(sid, text, ingress, source_key=key)))
        if ok:
            row, created = answer
            assert (got.input.input_id, got.created) == (row.input_id, created)
            if created:
                self.input_ids[sid].append(row.input_id)

    @rule(target=input_claims, sid=worked, caller=callers, turn=st.sampled_from(("t1", "t2")),
          checkpoint=st.sampled_from(("after_work", "before_completion")), max_inputs=st.sampled_from((1, 2, 3, 0)))
    def claim_active_inputs(self, sid, caller, turn, checkpoint, max_inputs):
        """Accept a turn's inputs that the checkpoint admits."""
        return self._claim(
            sid, caller, lambda f: self.model.sessions.claim_active(f, turn, checkpoint, max_inputs, self.now()),
            lambda store, f: store.inputs.claim_active(f, turn, CheckpointKind(checkpoint), max_inputs=max_inputs))

    @rule(target=input_claims, sid=worked, caller=callers, max_inputs=st.sampled_from((1, 2, 3, 0)))
    def claim_next_turn_inputs(self, sid, caller, max_inputs):
        """Claim the inputs deferred to the next turn."""
        return self._claim(sid, caller, lambda f: self.model.sessions.claim_next_turn(f, max_inputs, self.now()),
                           lambda store, f: store.inputs.claim_next_turn(f, max_inputs=max_inputs))

    @rule(sid=sids, pick=picks)
    def cancel_input(self, sid, pick):
        """Cancel one of the inputs ever enqueued on the session (terminal, vacuumed or wiped too)."""
        if self.input_ids[sid]:
            input_id = self.input_ids[sid][pick % len(self.input_ids[sid])]
            expected = self.model.sessions.cancel_input(sid, input_id, self.now())
            assert self.store.inputs.cancel(sid, input_id).outcome.value == expected

    @rule(claim=input_claims)
    def complete_inputs(self, claim):
        """Consume a claim's inputs: refused unless it still holds them under a live lease."""
        ok, ids, got = self.run(lambda: self.model.sessions.complete_inputs(claim.model, self.now()),
                                lambda: self.store.inputs.complete(claim.store))
        if ok:
            assert got.input_ids == ids

    @rule(claim=input_claims)
    def abandon_inputs(self, claim):
        """Give back what an input claim still holds."""
        expected = self.model.sessions.abandon_inputs(claim.model)
        assert set(self.store.inputs.abandon(claim.store).input_ids) == set(expected)

    # --- the runtime commit and graph maintenance -----------------------------------------------

    def _delta(self, g: mr.Graph | None, kind: str, pick: int) -> tuple[tuple, str, str | None]:
        """(nodes as (id, parent), delta kind, leaf) of one of the graph moves a commit makes."""
        everything = (g.live + g.hidden) if g is not None else []
        chosen = everything[pick % len(everything)] if everything else None
        self.nodes += 1
        fresh = f"n{self.nodes}"
        if kind == "extend":  # the next message after the leaf (refused when the leaf is hidden)
            return ((fresh, g.leaf if g else None),), "append", fresh
        if kind == "branch":  # an edit: a sibling under an earlier node, hidden ones included
            return ((fresh, chosen),), "append", fresh
        if kind == "move_leaf":
            return (), "unchanged", chosen
        if kind == "replace":
            return ((fresh, None),), "replace", fresh
        if kind == "dangling":
            return ((fresh, "ghost"),), "append", fresh
        if kind == "duplicate":
            return ((chosen or fresh, None),), "append", chosen or fresh
        return (), "unchanged", None  # keep

    def _commit(self, fence: Ref, graph: str, pick: int, expected: str, *, checkpoint: int | None = None,
                usage: int = 0, work: Ref | None = None, inputs: Ref | None = None, outbox: int = 0,
                interrupt: str | None = None, release: bool = False, stamp: str | None = None) -> Any:
        sid = fence.session_id
        g = self.model.sessions.sessions[sid].graph
        revision = g.revision if g is not None else 0
        nodes, delta, leaf = self._delta(g, graph, pick)
        store_nodes = tuple(SessionNode(n, EventPayload({"text": n}), p) for n, p in nodes)
        store_delta = (GraphUnchanged(leaf) if delta == "unchanged"
                       else (GraphReplace if delta == "replace" else GraphAppend)(store_nodes, leaf))
        expected_revision = {"current": revision, "stale": revision - 1 if revision else 1, "none": None}[expected]
        commit = RuntimeCommit(
            sid, fence.store.fence, store_delta, expected_head_revision=expected_revision,
            release_lease=release, checkpoint=Checkpoint(TurnState(checkpoint)) if checkpoint else None,
            usage_deltas=(UsageDelta("turn", "m", usage),) if usage else (),
            completed_queue_claims=(work.store.completion(),) if work else (),
            completed_turn_input_claims=(inputs.store.completion(),) if inputs else (),
            enqueued_queue_batches=tuple(QueuedWorkDraft(sid, (AgentFrameTask("frame", "follow-up"),))
                                         for _ in range(outbox)),
            interrupted_turn_input_turn_id=interrupt)
        if stamp is not None:
            commit = stamp_turn(commit, stamp)
        # What the turn hash covers: not ids, parents, the leaf, the lease or the revision.
        content = (type(store_delta).__name__, tuple(n for n, _p in nodes), checkpoint, usage,
                   commit.completed_queue_claims, commit.completed_turn_input_claims, outbox, interrupt)
        spec = mr.CommitSpec(sid, fence.model, nodes, delta, leaf, commit.expected_head_revision, checkpoint,
                            usage, work.model if work else None, inputs.model if inputs else None, outbox,
                            interrupt, release, stamp, content)
        return self._send_commit(fence, spec, commit)

    def _send_commit(self, fence: Ref, spec: mr.CommitSpec, commit: RuntimeCommit) -> Any:
        ok, answer, got = self.run(lambda: self.model.sessions.commit(spec, self.now()),
                                   lambda: self._fenced(fence).sessions.commit(commit))
        if not ok:
            return multiple()
        revision, batch_ids, replayed = answer
        assert (got.head_revision, got.enqueued_batch_ids, got.replayed) == (revision, batch_ids, replayed)
        self.batch_ids[spec.session_id].extend(b for b in batch_ids if b not in self.batch_ids[spec.session_id])
        return Ref(spec, (fence, commit), spec.session_id) if spec.stamp and not replayed else multiple()

    @rule(target=stamped, sid=worked, caller=callers,
          graph=st.sampled_from(("extend", "extend", "branch", "move_leaf", "replace", "keep", "dangling",
                                 "duplicate")),
          pick=picks, expected=st.sampled_from(("current", "current", "stale", "none")),
          checkpoint=st.sampled_from((None, 1, 2)), usage=st.sampled_from((0, 5)), outbox=st.sampled_from((0, 0, 1)),
          interrupt=st.sampled_from((None, None, "t1")), release=st.sampled_from((False, False, False, True)),
          stamp=st.sampled_from((None, None, "turn-1", "turn-2")))
    def commit_turn(self, sid, caller, graph, pick, expected, checkpoint, usage, outbox, interrupt, release, stamp):
        """A turn's commit: a graph move, head CAS, checkpoint, usage, outbox, interrupt, stamp."""
        fence = self._caller(sid, caller)
        if fence is None:
            return multiple()
        return self._commit(fence, graph, pick, expected, checkpoint=checkpoint, usage=usage, outbox=outbox,
                            interrupt=interrupt, release=release, stamp=stamp)

    @rule(target=stamped, claim=work_claims, caller=callers, elsewhere=st.sampled_from((False, False, False, True)),
          release=st.sampled_from((False, False, True)), stamp=st.sampled_from((None, "turn-1")))
    def commit_completing_work(self, claim, caller, elsewhere, release, stamp):
        """A commit settling claimed work (`elsewhere`: sent to the other session: a binding mismatch)."""
        fence = self._caller(other_session(claim.session_id) if elsewhere else claim.session_id, caller)
        if fence is None:
            return multiple()
        return self._commit(fence, "extend", 0, "none", work=claim, release=release, stamp=stamp)

    @rule(target=stamped, claim=input_claims, caller=callers, elsewhere=st.sampled_from((False, False, False, True)),
          interrupt=st.sampled_from((None, "t1", "t2")))
    def commit_completing_inputs(self, claim, caller, elsewhere, interrupt):
        """A commit consuming accepted inputs, maybe interrupting a turn."""
        fence = self._caller(other_session(claim.session_id) if elsewhere else claim.session_id, caller)
        if fence is None:
            return multiple()
        return self._commit(fence, "keep", 0, "current", inputs=claim, interrupt=interrupt)

    @rule(commit=stamped, release=st.booleans())
    def replay_stamped_commit(self, commit, release):
        """A runtime retrying a turn it already committed (maybe after its lease moved on)."""
        fence, sent = commit.store
        self._send_commit(fence, attrs.evolve(commit.model, release=release), attrs.evolve(sent, release_lease=release))

    @rule(sid=sids, action=st.sampled_from(("tombstone", "tombstone", "vacuum", "gc", "vacuum_all")), pick=picks)
    def maintain_graph(self, sid, action, pick):
        """Hide a node (or an unknown id), vacuum hidden nodes and terminal inputs (one session
        or every active one), or blob GC."""
        if action == "gc":
            assert not self.store.sessions.gc().aborted
            return
        if action == "vacuum_all":
            expected = self.model.sessions.vacuum_all()
            got = self.store.sessions.vacuum_all()
            assert {sid: (r.removed_node_count, r.removed_pending_turn_input_tombstone_count)
                    for sid, r in got.sessions} == expected
            return
        if action == "vacuum":
            ok, removed, got = self.run(lambda: self.model.sessions.vacuum(sid),
                                        lambda: self.store.sessions.vacuum(sid))
            if ok:
                assert (got.removed_node_count, got.removed_pending_turn_input_tombstone_count) == removed
            return
        s = self.model.sessions.sessions.get(sid)
        everything = (s.graph.live + s.graph.hidden) if s is not None and s.graph is not None else []
        ids = [everything[pick % len(everything)]] if everything else ["ghost"]
        ok, hidden, got = self.run(lambda: self.model.sessions.tombstone(sid, ids),
                                   lambda: self.store.sessions.tombstone_nodes(sid, ids))
        if ok:
            assert got == hidden


class WholeStoreChains:
    """Two chains the machine rarely builds, pinned as plain tests. A backend subclasses this
    class (as it does the contract classes) and provides a `backend_factory` fixture."""

    def test_a_claim_from_before_a_purge_cannot_settle_work_of_the_recreated_session(self, backend_factory):
        """Found by this machine's model: a purge used to reset the queue's and the inputs'
        sequence counters, so a session recreated in the same millisecond reissued the purged
        generation's batch, input and claim ids and claim lease tokens, and a stale claim from
        before the purge completed the new generation's work."""
        backend = backend_factory(eventstore.ManualClock(1_700_000_000_000))  # the clock never moves
        try:
            store = backend.store
            alpha = LeaseOwner("alpha", "a1")
            store.sessions.create("s1")
            store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", "old"),)))
            store.inputs.enqueue(TurnInputDraft("s1", "old", ActiveTurn("t1")))
            fence = store.leases.claim("s1", alpha, 60_000).lease.fence
            old_work = store.queue.claim_ready(fence)
            old_inputs = store.inputs.claim_active(fence, "t1")
            store.sessions.delete("s1")
            store.sessions.purge("s1")
            store.sessions.create("s1", recreate=True)
            new_batch = store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("f", "new"),))).batch
            store.inputs.enqueue(TurnInputDraft("s1", "new", ActiveTurn("t1")))
            fence = store.leases.claim("s1", alpha, 60_000).lease.fence
            store.queue.claim_ready(fence)
            store.inputs.claim_active(fence, "t1")
            assert new_batch.batch_id not in old_work.batch_ids
            with pytest.raises(QueuedWorkClaimSuperseded):
                store.queue.complete(old_work.completion())
            with pytest.raises(TurnInputClaimSuperseded):
                store.inputs.complete(old_inputs.completion())
            assert_consistent(store)
        finally:
            backend.close()

    def test_a_pruned_process_registered_again_wakes_its_session_again_in_model_and_store(self, backend_factory):
        """A chain the machine rarely builds (wake, settle, complete, prune, register again,
        wake), run through its rules so that model and store must agree at every step: a
        pruned id registered again restarts its sequences, and its wakes used to match the
        pruned process's settled source keys and were silently not enqueued. The prune now
        forgets those keys; a wake still queued at the prune keeps its key until it settles."""
        bound = type("WholeStoreMachineChain", (WholeStoreMachine,), {"backend_factory": staticmethod(backend_factory)})
        machine = bound()
        try:
            machine.start()
            check = machine.store_equals_model_and_is_consistent
            machine.append_process_event("p1", "wake", 1, None)  # p1 event 1 wakes s1: batch 4
            machine.append_process_event("p1", "wake", 0, None)  # event 2: batch 5, still queued at the prune
            machine.cancel_work("s1", 3)  # settles event 1's wake: its key is remembered
            machine.complete_process("p1", 0, "authority", "alpha/a1")
            machine.advance_clock(1)
            machine.prune_processes()
            check()
            machine.register_process("p1")
            machine.append_process_event("p1", "wake", 1, None)  # the new event 1: enqueued again
            assert len(machine.batch_ids["s1"]) == 6
            machine.cancel_work("s1", 4)  # the old event 2's wake settles after the prune: key forgotten
            machine.append_process_event("p1", "wake", 1, None)  # the new event 2: enqueued too
            assert len(machine.batch_ids["s1"]) == 7
            check()
        finally:
            machine.teardown()
