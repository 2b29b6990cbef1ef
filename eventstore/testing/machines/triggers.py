"""A hypothesis state machine for the trigger store against a small pure model.

Two connections issue subscription commands (with current or stale expected
revisions), prune named keys of one owner scope, replay earlier operation ids, reuse
ids with other content in the same owner scope and freely in another one (receipts
are keyed by owner scope and operation id), ingest and re-ingest occurrences (some
session-bound), clean up sessions, prune history with moving cutoffs, forget
occurrences (for real or as a dry run) and re-fire forgotten keys. The model predicts
every answer and every delivery. After every step the projection rows must equal the
model, and the live projections must equal a rebuild from the log and a time-travel
replay (eventstore.testing.helpers.assert_consistent).
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

import eventstore
from eventstore.triggers import session_of_scope, occurrence_id_for, subscription_id_for
from eventstore.triggers import (
    DeleteSubscription, DisableSubscription, EnableSubscription, OccurrenceConflict, OccurrenceRequest,
    OperationIdConflict, PruneSubscriptions, PruneTriggerHistory, RegisterSubscription, ReviveSubscription,
    SubscriptionExists, SubscriptionNotDeleted, SubscriptionNotFound, SubscriptionRevisionConflict,
    SubscriptionTombstoned, TriggerConflict, TriggerDefinition, UpdateSubscription,
)
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine
from projections.triggers import count_receipts

SCOPES = ("host", "host:eu", "session:s1", "session:s2/frame:f")
SUBS = (("host", "a"), ("host", "b"), ("host:eu", "a"), ("session:s1", "a"), ("session:s1", "b"),
        ("session:s2/frame:f", "a"))
DEFS = (TriggerDefinition("webhook", "x", "p1"), TriggerDefinition("webhook", None, "p2", {"n": 1}),
        TriggerDefinition("cron", "daily", "p3"))
SOURCES = (("webhook", "x"), ("webhook", "y"), ("cron", "daily"))
KINDS = ("update", "enable", "disable", "delete", "revive", "revive_same")
stale_revisions = st.sampled_from((False, False, False, True))


@attrs.define
class MSub:
    """The model's subscription."""

    scope: str
    key: str
    definition: TriggerDefinition
    incarnation: int
    revision: int
    enabled: bool = True
    deleted: bool = False
    deleted_at: int | None = None


class TriggerStoreMachine(BackendMachine):
    """Commands, replays, occurrences, cleanup and prune against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        backend = self.open_backend(self.clock)
        self.stores = [backend.store, backend.open()]
        self.subs: dict[str, MSub] = {}
        self.retired: dict[str, tuple[int, int]] = {}
        # (owner scope, op id) -> (recorded at, command, answer)
        self.receipts: dict[tuple[str, str], tuple[int, Any, tuple]] = {}
        self.occurrences: dict[str, tuple[OccurrenceRequest, tuple[str, ...]]] = {}
        self.deliveries: dict[str, list[str]] = {}  # subscription id -> process ids in the projection
        self.occurred_at: dict[str, int] = {}  # idempotency key -> ingest time of the kept occurrence
        self.forgotten: dict[str, OccurrenceRequest] = {}  # forgotten keys, to re-fire
        self.next_key = 0
        self.ops = 0


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(max_examples=20, stateful_step_count=30)

    # --- the model's decider -------------------------------------------------------

    def predict(self, cmd: Any) -> tuple:
        """('result', outcome, revision, incarnation) or ('conflict', class); applies the change."""
        now = self.clock()
        if isinstance(cmd, PruneTriggerHistory):
            return ("result", "pruned", None, None)
        if isinstance(cmd, PruneSubscriptions):
            done = []
            for key in sorted(set(cmd.subscription_keys)):
                sid = subscription_id_for(cmd.owner_scope, key)
                cur = self.subs.get(sid)
                if cur is not None and not cur.deleted:
                    cur.revision += 1
                    cur.deleted, cur.deleted_at = True, now
                    done.append((key, sid, cur.revision, cur.incarnation))
            return ("pruned", "pruned" if done else "unchanged", tuple(done))
        sid = subscription_id_for(cmd.owner_scope, cmd.subscription_key)
        cur = self.subs.get(sid)
        if isinstance(cmd, RegisterSubscription):
            if cur is None:
                inc, rev = (self.retired[sid][0] + 1, self.retired[sid][1] + 1) if sid in self.retired else (1, 1)
                self.retired.pop(sid, None)
                self.subs[sid] = MSub(cmd.owner_scope, cmd.subscription_key, cmd.definition, inc, rev)
                return ("result", "registered", rev, inc)
            if cur.deleted:
                return ("conflict", SubscriptionTombstoned)
            if cur.definition == cmd.definition:
                return ("result", "unchanged", cur.revision, cur.incarnation)
            return ("conflict", SubscriptionExists)
        if cur is None:
            return ("conflict", SubscriptionNotFound)
        if cur.revision != cmd.expected_revision:
            return ("conflict", SubscriptionRevisionConflict)
        if isinstance(cmd, ReviveSubscription):
            if not cur.deleted:
                return ("conflict", SubscriptionNotDeleted)
            cur.incarnation += 1
            cur.revision += 1
            cur.definition = cmd.definition or cur.definition
            cur.enabled, cur.deleted, cur.deleted_at = True, False, None
            return ("result", "revived", cur.revision, cur.incarnation)
        if isinstance(cmd, DeleteSubscription):
            if cur.deleted:
                return ("result", "unchanged", cur.revision, cur.incarnation)
            cur.revision += 1
            cur.deleted, cur.deleted_at = True, now
            return ("result", "deleted", cur.revision, cur.incarnation)
        if cur.deleted:
            return ("conflict", SubscriptionTombstoned)
        if isinstance(cmd, UpdateSubscription):
            if cmd.definition == cur.definition:
                return ("result", "unchanged", cur.revision, cur.incarnation)
            cur.revision += 1
            cur.definition = cmd.definition
            return ("result", "updated", cur.revision, cur.incarnation)
        enable = isinstance(cmd, EnableSubscription)
        if cur.enabled == enable:
            return ("result", "unchanged", cur.revision, cur.incarnation)
        cur.revision += 1
        cur.enabled = enable
        return ("result", "enabled" if enable else "disabled", cur.revision, cur.incarnation)

    def run(self, handle: int, op: str, cmd: Any) -> tuple:
        """Execute on the store and return the answer in the model's shape."""
        try:
            r = self.stores[handle].triggers.execute(op, cmd)
        except TriggerConflict as exc:
            return ("conflict", type(exc))
        return self.shape(r)

    @staticmethod
    def shape(r: Any) -> tuple:
        """A command result in the model's shape."""
        if r.command == "prune":
            done = tuple((t.subscription_key, t.subscription_id, t.revision, t.incarnation)
                         for t in r.tombstoned)
            return ("pruned", r.outcome, done)
        return ("result", r.outcome, r.revision, r.incarnation)

    @staticmethod
    def scope_of(cmd: Any) -> str:
        """The owner scope a command's receipt is keyed under."""
        return "host" if isinstance(cmd, PruneTriggerHistory) else cmd.owner_scope

    # --- rules -------------------------------------------------------------------

    @rule(handle=st.integers(0, 1), sub=st.sampled_from(SUBS), d=st.sampled_from(DEFS),
          borrow=st.integers(0, 60))
    def register(self, handle: int, sub: tuple[str, str], d: TriggerDefinition, borrow: int) -> None:
        self.execute(handle, RegisterSubscription(sub[0], sub[1], d), borrow)

    @rule(handle=st.integers(0, 1), scope=st.sampled_from(SCOPES),
          keys=st.lists(st.sampled_from(("a", "b", "c")), max_size=4), borrow=st.integers(0, 60))
    def prune_by_name(self, handle: int, scope: str, keys: list[str], borrow: int) -> None:
        self.execute(handle, PruneSubscriptions(scope, tuple(keys)), borrow)

    @rule(handle=st.integers(0, 1), sub=st.sampled_from(SUBS), kind=st.sampled_from(KINDS),
          d=st.sampled_from(DEFS), stale=stale_revisions)
    def command(self, handle: int, sub: tuple[str, str], kind: str, d: TriggerDefinition, stale: bool) -> None:
        scope, key = sub
        cur = self.subs.get(subscription_id_for(scope, key))
        expected = (cur.revision if cur else 1) + (3 if stale else 0)
        cmd = {
            "update": lambda: UpdateSubscription(scope, key, expected, d),
            "enable": lambda: EnableSubscription(scope, key, expected),
            "disable": lambda: DisableSubscription(scope, key, expected),
            "delete": lambda: DeleteSubscription(scope, key, expected),
            "revive": lambda: ReviveSubscription(scope, key, expected, d),
            "revive_same": lambda: ReviveSubscription(scope, key, expected),
        }[kind]()
        self.execute(handle, cmd)

    def execute(self, handle: int, cmd: Any, borrow: int = 60) -> None:
        """Run `cmd` under a new operation id, or (small `borrow`) under one an earlier
        command used in another owner scope: receipts of other scopes never interfere."""
        scope = self.scope_of(cmd)
        elsewhere = sorted({op for (s, op) in self.receipts if s != scope} - {op for (s, op) in self.receipts
                                                                              if s == scope})
        if borrow < 20 and elsewhere:
            op = elsewhere[borrow % len(elsewhere)]
        else:
            self.ops += 1
            op = f"op-{self.ops}"
        answer = self.predict(cmd)
        assert self.run(handle, op, cmd) == answer
        self.receipts[(scope, op)] = (self.clock(), cmd, answer)

    @rule(handle=st.integers(0, 1), pick=st.integers(0, 1_000))
    def replay_operation(self, handle: int, pick: int) -> None:
        if not self.receipts:
            return
        scope, op = sorted(self.receipts)[pick % len(self.receipts)]
        _at, cmd, answer = self.receipts[(scope, op)]
        if isinstance(cmd, PruneSubscriptions):  # the same request, keys in another order
            cmd = PruneSubscriptions(cmd.owner_scope, tuple(reversed(cmd.subscription_keys)))
        position = self.stores[0].last_position()
        try:
            r = self.stores[handle].triggers.execute(op, cmd)
        except TriggerConflict as exc:
            assert answer == ("conflict", type(exc)) and exc.replayed
        else:
            assert r.replayed and self.shape(r) == answer
        assert self.stores[0].last_position() == position

    @rule(pick=st.integers(0, 1_000))
    def reuse_operation_id_with_other_content(self, pick: int) -> None:
        if not self.receipts:
            return
        scope, op = sorted(self.receipts)[pick % len(self.receipts)]
        cmd = self.receipts[(scope, op)][1]
        # Another request in the same owner scope (a retention prune's scope is host).
        other = (RegisterSubscription(scope, "z", DEFS[0]) if isinstance(cmd, PruneSubscriptions)
                 else PruneSubscriptions(scope, ("z",)))
        position = self.stores[0].last_position()
        with pytest.raises(OperationIdConflict):
            self.stores[0].triggers.execute(op, other)
        assert self.stores[0].last_position() == position

    @rule(handle=st.integers(0, 1), source=st.sampled_from(SOURCES), session=st.sampled_from((None, "s1", "s2")),
          again=st.integers(0, 20), change=st.booleans(), refire=st.booleans())
    def ingest(self, handle: int, source: tuple[str, str], session: str | None, again: int, change: bool,
               refire: bool) -> None:
        request = OccurrenceRequest(source[0], source[1], f"o{self.next_key}", {"v": 0}, session)
        if refire and self.forgotten:  # re-fire a forgotten key: a new occurrence
            request = self.forgotten.pop(sorted(self.forgotten)[again % len(self.forgotten)])
        elif again < len(self.occurrences):  # re-send an earlier occurrence, as it was or changed
            earlier = self.occurrences[sorted(self.occurrences)[again]][0]
            request = attrs.evolve(earlier, payload={"v": 1}) if change else earlier
        else:
            self.next_key += 1
        idem = request.idempotency_key
        seen = self.occurrences.get(idem)
        if seen is not None:
            if seen[0] != request:
                with pytest.raises(OccurrenceConflict):
                    self.stores[handle].triggers.ingest(request)
                return
            got = self.stores[handle].triggers.ingest(request)
            assert got.status == "already_reserved"
            assert tuple(d.process_id for d in got.deliveries) == seen[1]
            return
        occ = occurrence_id_for(idem)
        expected = []
        for sid in sorted(self.subs):
            s = self.subs[sid]
            d = s.definition
            if (s.enabled and not s.deleted and d.source_type == request.source_type
                    and d.source_key in (None, request.source_key)
                    and (request.session_id is None or session_of_scope(s.scope) == request.session_id)):
                expected.append(f"trigger:{sid}:{s.incarnation}:{occ}")
                self.deliveries.setdefault(sid, []).append(expected[-1])
        got = self.stores[handle].triggers.ingest(request)
        assert got.status == "reserved"
        assert sorted(d.process_id for d in got.deliveries) == sorted(expected)
        self.occurrences[idem] = (request, tuple(d.process_id for d in got.deliveries))
        self.occurred_at[idem] = self.clock()

    @rule(back=st.sampled_from((0, 1, 500, 5_000)), dry_run=st.booleans())
    def forget_occurrences(self, back: int, dry_run: bool) -> None:
        cutoff = self.clock() - back
        left = {pid.rsplit(":", 1)[1] for pids in self.deliveries.values() for pid in pids}
        expected = sorted(k for k, at in self.occurred_at.items() if at < cutoff and occurrence_id_for(k) not in left)
        assert self.stores[1].triggers.forget_occurrences(cutoff, dry_run=dry_run) == len(expected)
        if not dry_run:
            for k in expected:
                self.forgotten[k] = self.occurrences.pop(k)[0]
                del self.occurred_at[k]

    @rule(session=st.sampled_from(("s1", "s2", "s3")))
    def session_cleanup(self, session: str) -> None:
        now = self.clock()
        expected = []
        for sid, s in self.subs.items():
            if session_of_scope(s.scope) == session and not s.deleted:
                s.deleted, s.deleted_at, s.revision = True, now, s.revision + 1
                expected.append(sid)
        report = self.stores[1].triggers.delete_session_subscriptions(session)
        assert sorted(report.deleted) == sorted(expected)

    @rule(back=st.sampled_from((0, 1, 500, 5_000)))
    def prune(self, back: int) -> None:
        now = self.clock()
        cutoff = now - back
        retire = sorted(sid for sid, s in self.subs.items() if s.deleted and s.deleted_at is not None and s.deleted_at < cutoff)
        old = [key for key, (at, _c, _a) in self.receipts.items() if at < cutoff]
        dropped = sum(len(self.deliveries.get(sid, [])) for sid in retire)
        self.ops += 1
        op = f"op-{self.ops}"
        cmd = PruneTriggerHistory(cutoff)
        r = self.stores[0].triggers.execute(op, cmd)
        assert (r.pruned_subscriptions, r.pruned_receipts, r.pruned_deliveries) == (len(retire), len(old), dropped)
        for sid in retire:
            s = self.subs.pop(sid)
            self.retired[sid] = (s.incarnation, s.revision)
            self.deliveries.pop(sid, None)
        for o in old:
            del self.receipts[o]
        self.receipts[("host", op)] = (now, cmd, ("result", "pruned", None, None))

    @rule(ms=st.sampled_from((1, 400, 3_000)))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def projection_matches_model(self) -> None:
        store = self.stores[0]
        got = {s.subscription_id: (s.owner_scope, s.subscription_key, s.definition, s.incarnation, s.revision,
                                   s.enabled, s.deleted) for s in store.triggers.list()}
        want = {sid: (s.scope, s.key, s.definition, s.incarnation, s.revision, s.enabled, s.deleted)
                for sid, s in self.subs.items()}
        assert got == want
        for sid in self.subs:
            assert sorted(d.process_id for d in store.triggers.deliveries(subscription_id=sid)) == \
                sorted(self.deliveries.get(sid, []))
        # The kept receipts are exactly the model's: each one answers, and there are no others.
        missing = [key for key in self.receipts if store.triggers.receipt(*key) is None]
        assert not missing, missing
        assert count_receipts(store.db) == len(self.receipts)
        assert {o.idempotency_key for o in store.triggers.occurrences()} == set(self.occurrences)

    @invariant()
    def projections_equal_rebuild_and_time_travel(self) -> None:
        assert_consistent(self.stores[0])

