"""A hypothesis state machine over the process registry, checked against a small pure model.

Rules register processes (idempotently, or conflicting), append events (with replay keys,
replays and conflicts, terminal and cancel events), complete with an authority or under a
lease, claim/renew/release leases from two owners, grant and revoke handles, put segment
handovers (repeats, conflicts, the predecessor rule) and delete them, advance the clock
and prune. After every step:

* at most one terminal event per process, and sequences are gap-free from 1;
* records, leases, grants and retained handovers (and `latest_handover`) equal the model;
  `recent_events` and `count_events_through` agree with the model's event types;
* the change feed, followed from zero in small pages, returns exactly the processes the
  step changed, each once, in increasing change_seq order;
* eventstore.testing.helpers.assert_consistent: the chain verifies, live projections equal a rebuild
  and a time-travel replay.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

import eventstore
from eventstore.processes import (
    Acquired, AppendEventRequest, Busy, CompletionAuthorityRejected, Disposition, EngineInput,
    EventTypeSpec, ExternalInput, ExternalOwner, HandoverConflict, Pointer, ProcessAlreadyTerminal,
    ProcessLeaseExpired, ProcessRegistration, ProcessStatus, Provenance, RegistrationConflict,
    ReplayKeyConflict, ReplayKeyRequired, SessionScope, Success, UnknownProcess, WakeSpec, WorkflowKey,
    HostScope,
)
from eventstore.leases import LeaseOwner
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine

PIDS = ("p0", "p1", "p2")
OWNERS = ("a", "b")
SCOPES = (SessionScope("s1"), SessionScope("s1", "f"), HostScope())
KEYS = (None, "k0", "k1")
TYPES = ("job.line", "job.wake", "process.cancel_requested", "process.completed")
TTL = 1_000


def make_registration(pid: str, variant: int, external: bool) -> ProcessRegistration:
    """A registration; a different `variant` under the same id is a conflicting one."""
    types = (EventTypeSpec("job.line"),
             EventTypeSpec("job.wake", wake=WakeSpec(Pointer("/n"), when=Pointer("/wake"))))
    if external:
        return ProcessRegistration(pid, ExternalInput({"v": variant}), Disposition.EXTERNALLY_OWNED,
                                   Provenance(HostScope()), types, wake_target=SessionScope("s1"))
    return ProcessRegistration(pid, EngineInput("engine", {"v": variant}), Disposition.RERUNNABLE,
                               Provenance(SessionScope("s1")), types, env_ref="env:1")


def payload_for(event_type: str, n: int) -> dict:
    if event_type == "process.completed":
        return {"await_output": {"type": "success", "value": n}}
    return {"n": n, "wake": n == 1}


@attrs.define
class ModelProcess:
    """What the model knows of one registered process."""

    variant: int
    external: bool
    status: ProcessStatus = ProcessStatus.RUNNING
    last_sequence: int = 0
    updated_at: int = 0
    keys: dict = attrs.field(factory=dict)  # replay key -> (sequence, event type, payload)
    fence: int = 0
    holder: tuple | None = None  # (owner name, fencing token, expires_at)
    grants: set = attrs.field(factory=set)
    types: list = attrs.field(factory=list)  # the event type of each sequence number
    handovers: dict = attrs.field(factory=dict)  # retained segment ordinal -> payload
    first_started: tuple | None = None  # (owner name, started_at) of the first start: written once
    abandon_request: tuple | None = None  # (requested_by, requested_at): written once


class ProcessMachine(BackendMachine):
    """Drives the registry and the model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        self.store = self.open_backend(self.clock).store
        self.procs = self.store.processes
        self.model: dict[str, ModelProcess] = {}
        self.leases: dict[tuple[str, str], object] = {}
        self.changed: set[str] = set()
        self.cursor = 0


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(stateful_step_count=30)

    def _touch(self, pid: str) -> None:
        self.model[pid].updated_at = self.clock()
        self.changed.add(pid)

    # --- rules ------------------------------------------------------------------------------

    @initialize()
    def register_two(self):
        """Start with an externally owned and a rerunnable process; p2 is left to `register`."""
        for pid, external in (("p0", True), ("p1", False)):
            self.procs.register(make_registration(pid, 0, external))
            self.model[pid] = ModelProcess(0, external)
            self._touch(pid)

    @rule(pid=st.sampled_from(PIDS), variant=st.integers(0, 1), external=st.booleans())
    def register(self, pid, variant, external):
        m = self.model.get(pid)
        if m is not None and (m.variant, m.external) != (variant, external):
            with pytest.raises(RegistrationConflict):
                self.procs.register(make_registration(pid, variant, external))
            return
        record = self.procs.register(make_registration(pid, variant, external))
        if m is None:
            self.model[pid] = ModelProcess(variant, external)
            self._touch(pid)
        assert record.status is self.model[pid].status

    @rule(pid=st.sampled_from(PIDS), event_type=st.sampled_from(TYPES), n=st.integers(0, 2),
          key=st.sampled_from(KEYS))
    def append(self, pid, event_type, n, key):
        m = self.model.get(pid)
        request = AppendEventRequest(event_type, payload_for(event_type, n), key)
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.append_event(pid, request)
            return
        if key is not None and key in m.keys:
            seq, stored_type, stored_payload = m.keys[key]
            if (stored_type, stored_payload) == (event_type, request.payload):
                result = self.procs.append_event(pid, request)
                assert result.replayed and result.event.sequence == seq
            else:
                with pytest.raises(ReplayKeyConflict):
                    self.procs.append_event(pid, request)
            return
        needs_key = event_type in ("process.cancel_requested", "process.completed")
        if needs_key and key is None:
            with pytest.raises(ReplayKeyRequired):
                self.procs.append_event(pid, request)
            return
        if event_type == "process.completed" and m.status.is_terminal:
            with pytest.raises(ProcessAlreadyTerminal):
                self.procs.append_event(pid, request)
            return
        result = self.procs.append_event(pid, request)
        m.last_sequence += 1
        m.types.append(event_type)
        assert result.event.sequence == m.last_sequence and not result.replayed
        if key is not None:
            m.keys[key] = (m.last_sequence, event_type, request.payload)
        if event_type == "process.completed":
            m.status = ProcessStatus.COMPLETED
        expect_delivery = event_type == "job.wake" and m.external and n == 1  # only external ones have a target
        assert (result.wake_delivery is not None) == expect_delivery
        self._touch(pid)

    @rule(pid=st.sampled_from(PIDS), n=st.integers(0, 1), as_owner=st.booleans())
    def complete(self, pid, n, as_owner):
        m = self.model.get(pid)
        authority = ExternalOwner("o") if as_owner else WorkflowKey("wf")
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.complete(pid, Success(n), authority)
            return
        if as_owner != m.external:
            with pytest.raises(CompletionAuthorityRejected):
                self.procs.complete(pid, Success(n), authority)
            return
        key = f"process:{pid}:terminal:process.completed"
        payload = {"await_output": {"type": "success", "value": n},
                   "completion_authority": {"authority": authority.KIND, **attrs.asdict(authority)}}
        if key in m.keys:
            if m.keys[key][2] == payload:
                assert self.procs.complete(pid, Success(n), authority).status is ProcessStatus.COMPLETED
            else:
                with pytest.raises(ReplayKeyConflict):
                    self.procs.complete(pid, Success(n), authority)
            return
        if m.status.is_terminal:
            with pytest.raises(ProcessAlreadyTerminal):
                self.procs.complete(pid, Success(n), authority)
            return
        self.procs.complete(pid, Success(n), authority)
        m.last_sequence += 1
        m.types.append("process.completed")
        m.keys[key] = (m.last_sequence, "process.completed", payload)
        m.status = ProcessStatus.COMPLETED
        self._touch(pid)

    @rule(pid=st.sampled_from(PIDS), who=st.sampled_from(OWNERS))
    def claim(self, pid, who):
        m = self.model.get(pid)
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.claim_lease(pid, LeaseOwner(who, "i"), TTL)
            return
        now = self.clock()
        outcome = self.procs.claim_lease(pid, LeaseOwner(who, "i"), TTL)
        live = m.holder is not None and m.holder[2] > now
        if live and m.holder[0] != who:
            assert isinstance(outcome, Busy) and outcome.holder.owner.owner_id == m.holder[0]
            return
        assert isinstance(outcome, Acquired)
        if not live:
            m.fence += 1
        assert outcome.lease.fencing_token == m.fence
        m.holder = (who, m.fence, now + TTL)
        self.leases[(pid, who)] = outcome.lease

    @rule(pid=st.sampled_from(PIDS), who=st.sampled_from(OWNERS), action=st.sampled_from(("renew", "release")))
    def use_lease(self, pid, who, action):
        lease = self.leases.get((pid, who))
        m = self.model.get(pid)
        if lease is None or m is None:
            return
        now = self.clock()
        current = m.holder is not None and m.holder[:2] == (who, lease.fencing_token)
        if action == "renew":
            if current and m.holder[2] > now:
                self.procs.renew_lease(lease, TTL)
                m.holder = (who, lease.fencing_token, now + TTL)
            else:
                with pytest.raises(ProcessLeaseExpired):
                    self.procs.renew_lease(lease, TTL)
        else:
            assert self.procs.release_lease(lease) is current
            if current:
                m.holder = None

    @rule(pid=st.sampled_from(PIDS), who=st.sampled_from(OWNERS), n=st.integers(0, 1))
    def complete_with_lease(self, pid, who, n):
        lease = self.leases.get((pid, who))
        m = self.model.get(pid)
        if lease is None or m is None:
            return
        key = f"process:{pid}:terminal:process.completed"
        payload = {"await_output": {"type": "success", "value": n}}
        if key in m.keys:
            if m.keys[key][2] == payload:
                self.procs.complete_with_lease(lease, Success(n))
            else:
                with pytest.raises(ReplayKeyConflict):
                    self.procs.complete_with_lease(lease, Success(n))
            return
        now = self.clock()
        live = m.holder is not None and m.holder[:2] == (who, lease.fencing_token) and m.holder[2] > now
        if not live:
            with pytest.raises(ProcessLeaseExpired):
                self.procs.complete_with_lease(lease, Success(n))
            return
        if m.status.is_terminal:
            with pytest.raises(ProcessAlreadyTerminal):
                self.procs.complete_with_lease(lease, Success(n))
            return
        self.procs.complete_with_lease(lease, Success(n))
        m.last_sequence += 1
        m.types.append("process.completed")
        m.keys[key] = (m.last_sequence, "process.completed", payload)
        m.status = ProcessStatus.COMPLETED
        m.holder = None
        self._touch(pid)

    @rule(pid=st.sampled_from(PIDS), scope=st.sampled_from(SCOPES), grant=st.booleans())
    def grant_or_revoke(self, pid, scope, grant):
        m = self.model.get(pid)
        if grant:
            if m is None:
                with pytest.raises(UnknownProcess):
                    self.procs.grant(scope, pid)
                return
            self.procs.grant(scope, pid)
            m.grants.add(scope.scope_id)
        else:
            assert self.procs.revoke(scope, pid) is (m is not None and scope.scope_id in m.grants)
            if m is not None:
                m.grants.discard(scope.scope_id)

    @rule(pid=st.sampled_from(PIDS), ordinal=st.integers(0, 4), variant=st.integers(0, 1))
    def put_handover(self, pid, ordinal, variant):
        m = self.model.get(pid)
        payload = {"segment": ordinal, "state": bytes([variant])}
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.put_handover(pid, ordinal, payload)
            return
        if ordinal in m.handovers:
            if m.handovers[ordinal] == payload:
                assert self.procs.put_handover(pid, ordinal, payload).replayed
            else:
                with pytest.raises(HandoverConflict):
                    self.procs.put_handover(pid, ordinal, payload)
            return
        if m.status.is_terminal:
            with pytest.raises(ProcessAlreadyTerminal):
                self.procs.put_handover(pid, ordinal, payload)
            return
        result = self.procs.put_handover(pid, ordinal, payload)
        dropped = sorted(o for o in m.handovers if o < ordinal - 1)
        assert not result.replayed and result.dropped_ordinals == tuple(dropped)
        for o in dropped:
            del m.handovers[o]
        m.handovers[ordinal] = payload  # not a record change: the change feed must not show it

    @rule(pid=st.sampled_from(PIDS))
    def delete_handovers(self, pid):
        m = self.model.get(pid)
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.delete_handovers(pid)
            return
        assert self.procs.delete_handovers(pid) == len(m.handovers)
        m.handovers.clear()

    @rule(ms=st.sampled_from((1, 400, 1_500)))
    def advance(self, ms):
        self.clock.advance(ms)

    @rule(pid=st.sampled_from(PIDS), who=st.sampled_from(OWNERS), back=st.sampled_from((None, 0, 5_000)))
    def record_first_started(self, pid, who, back):
        """Write-once: the first start (the whole owner, the caller's time) wins."""
        m = self.model.get(pid)
        at = None if back is None else self.clock() - back
        owner = LeaseOwner(who, "i1")
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.record_first_started(pid, owner, at)
            return
        record = self.procs.record_first_started(pid, owner, at)
        if m.first_started is None:
            m.first_started = (who, self.clock() if at is None else at)
            self._touch(pid)
        assert record.first_started.owner == LeaseOwner(m.first_started[0], "i1")
        assert record.first_started.started_at_ms == m.first_started[1]

    @rule(pid=st.sampled_from(PIDS), who=st.sampled_from(OWNERS), back=st.sampled_from((None, 7)))
    def request_abandon(self, pid, who, back):
        """Write-once; a terminal process refuses."""
        m = self.model.get(pid)
        at = None if back is None else self.clock() - back
        if m is None:
            with pytest.raises(UnknownProcess):
                self.procs.request_abandon(pid, who, requested_at_ms=at)
            return
        if m.status.is_terminal:
            with pytest.raises(ProcessAlreadyTerminal):
                self.procs.request_abandon(pid, who, requested_at_ms=at)
            return
        record = self.procs.request_abandon(pid, who, requested_at_ms=at)
        if m.abandon_request is None:
            m.abandon_request = (who, self.clock() if at is None else at)
            self._touch(pid)
        req = record.abandon_request
        assert (req.requested_by, req.requested_at_ms) == m.abandon_request

    @precondition(lambda self: any(m.status.is_terminal for m in self.model.values()))
    @rule(ahead=st.sampled_from((0, 0, 10 ** 9)))
    def prune(self, ahead):
        """Any cutoff, now or far ahead of the clock."""
        cutoff = self.clock() + ahead
        expected = sorted(p for p, m in self.model.items() if m.status.is_terminal and m.updated_at < cutoff)
        report = self.procs.prune(cutoff)
        assert list(report.pruned_processes) == expected
        for pid in expected:
            del self.model[pid]
            for who in OWNERS:
                self.leases.pop((pid, who), None)
            self.changed.discard(pid)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def registry_matches_the_model(self):
        assert sorted(r.process_id for r in self.procs.list()) == sorted(self.model)
        for pid, m in self.model.items():
            record = self.procs.get(pid)
            events = self.procs.events_after(pid)
            assert [e.sequence for e in events] == list(range(1, m.last_sequence + 1))
            assert sum(1 for e in events if e.terminal is not None) == (1 if m.status.is_terminal else 0)
            assert record.status is m.status and record.last_sequence == m.last_sequence
            state = self.procs.lease_state(pid)
            assert state.fencing_token == m.fence
            holder = None if state.holder is None else (state.holder.owner.owner_id, state.holder.fencing_token,
                                                        state.holder.expires_at_ms)
            assert holder == m.holder
            assert {g.scope_id for g in self.procs.grants_for_process(pid)} == m.grants
            assert {h.segment_ordinal: h.payload for h in self.procs.handovers(pid)} == m.handovers
            latest = self.procs.latest_handover(pid)
            assert (None if latest is None else latest.segment_ordinal) == (max(m.handovers) if m.handovers else None)
            assert [e.sequence for e in self.procs.recent_events(pid, 2)] == [e.sequence for e in events[-2:]]
            for through in (1, m.last_sequence):
                assert self.procs.count_events_through(pid, through) == len(m.types[:through])
                assert self.procs.count_events_through(pid, through, "job.line") == m.types[:through].count("job.line")

    @invariant()
    def change_feed_shows_each_change_once(self):
        seen: list = []
        while True:
            page = self.procs.changes_since(self.cursor, limit=2)
            if not page.records:
                assert page.next_cursor == self.cursor
                break
            assert page.next_cursor > self.cursor
            seen.extend(page.records)
            self.cursor = page.next_cursor
        ids = [r.process_id for r in seen]
        assert len(ids) == len(set(ids)) and set(ids) == self.changed
        assert [r.change_seq for r in seen] == sorted(r.change_seq for r in seen)
        for r in seen:
            assert r.status is self.model[r.process_id].status
        self.changed = set()

    @invariant()
    def projections_are_consistent(self):
        assert_consistent(self.store)

