"""A pure in-memory reference model of the whole store, for eventstore.testing.machines.whole_store
(its records are in model_records, its sessions part in model_sessions).

The model knows nothing of SQLite, events or projections. It is written from the
documented behaviour (docs/api.md, docs/semantics.md) and predicts, for every command the
machine sends, either the result or the typed error (`Refused(name)`), and the state
every modelled projection must show afterwards:

* sessions: status and generation (create, delete, recreate, purge);
* session leases: fencing token, holder (owner, acquisition, expiry) and the fake /proc
  that decides whether a reclaim may take a live lease;
* queued work: batches in enqueue order with their ids, claim counters and claims;
  settled source keys (a process prune forgets its wake keys); the claim rules for
  plain turn work (Join / Exclusive / session commands, one delivery policy, boundary
  Idle);
* turn inputs: rows in enqueue order, stored state, claims, source-key replays;
* the runtime commit: head revision, leaf, live and hidden node ids, checkpoint turn
  index, usage total, turn stamps; claim settlement, outbox and interrupt;
* processes: status, event count, replay keys, wake targets, grants, process lease;
  prune (with the sessions a process owns and the trigger retention it runs);
* triggers: subscription revision, incarnation, enabled, deleted, deliveries, receipts;
* effects: status, holder, attempt, expiry, outcome or error.

Two deliberate choices:

* Claims and lease acquisitions are identified by model objects, not by their strings.
  A completion is accepted only when the very claim that took a row still holds it
  under a live lease; if the store ever accepts a claim the model has declared dead
  (for instance one from before a session was deleted whose ids happen to repeat), the
  machine fails.
* Ids the API documents as derived (batch and input ids, claim ids and their lease
  tokens, subscription and occurrence ids, delivery process ids) are computed here
  from their documented formulas, so the machine checks them too.

Every method takes `now`, the manual clock's time at the command: the store's commands
read the clock once, and the clock only moves when the machine advances it. A purge also
takes the purged stream's version (read by the machine, like the clock): the queue and
input sequence counters restart above it, so that ids of a purged generation never recur.
"""


from __future__ import annotations

from typing import Any

import attrs

from eventstore.triggers import occurrence_id_for, subscription_id_for

from .model_records import Batch, Owner, Refused
from .model_sessions import SessionsModel


@attrs.define
class Process:
    """A registered process: `external` ones are EXTERNALLY_OWNED, the others RERUNNABLE."""

    external: bool
    wake_target: str | None
    updated_at: int
    status: str = "running"
    last_sequence: int = 0
    keys: dict[str, tuple] = attrs.Factory(dict)  # replay key -> (sequence, content, delivery target)
    fence: int = 0
    holder: tuple | None = None  # (owner, fencing token, expires_at)
    grants: set[str] = attrs.Factory(set)


class ProcessesModel:
    """The process registry, wired to the sessions model for wakes, session cleanup and prune."""

    def __init__(self, sessions: SessionsModel, triggers: "TriggersModel") -> None:
        self.sessions = sessions
        self.triggers = triggers
        self.procs: dict[str, Process] = {}
        sessions.on_delete.append(self.session_deleted)

    def require(self, pid: str) -> Process:
        """The process, or UnknownProcess (never registered, or pruned)."""
        p = self.procs.get(pid)
        if p is None:
            raise Refused("UnknownProcess", pid)
        return p

    def register(self, pid: str, external: bool, wake_target: str | None, now: int) -> bool:
        """True when the id is new (the same registration again is a no-op)."""
        if pid in self.procs:
            return False
        self.procs[pid] = Process(external, wake_target, now)
        return True

    def append(self, pid: str, kind: str, n: int, key: str | None, now: int) -> tuple[int, bool, Any]:
        """(sequence, replayed, wake enqueue result or None) of append_event_and_enqueue."""
        p = self.require(pid)
        content = (kind, n)
        if key is not None and key in p.keys:
            sequence, stored, target = p.keys[key]
            if stored != content:
                raise Refused("ReplayKeyConflict", key)
            woke = self._deliver(pid, sequence, target, now) if target is not None else None
            return sequence, True, woke
        sequence = p.last_sequence + 1
        target = p.wake_target if kind == "wake" else None
        woke = self._deliver(pid, sequence, target, now) if target is not None else None  # may refuse
        p.last_sequence, p.updated_at = sequence, now
        if key is not None:
            p.keys[key] = (sequence, content, target)
        return sequence, False, woke

    def _deliver(self, pid: str, sequence: int, target: str, now: int) -> tuple[Batch, bool, str]:
        self.sessions.live(target, "queue.enqueue")
        return self.sessions.enqueue(target, "wake", f"process:{pid}:event:{sequence}:wake", now)

    def complete(self, pid: str, content: tuple, now: int, lease_owner: Owner | None = None,
                 lease_fence: int | None = None) -> None:
        """A terminal completion; `content` tells apart outputs and authority vs lease completions."""
        p = self.require(pid)
        key = f"process:{pid}:terminal:process.completed"
        if key in p.keys:
            if p.keys[key][1] != content:
                raise Refused("ReplayKeyConflict", key)
            return
        if lease_owner is not None:
            h = p.holder
            if h is None or h[0] != lease_owner or h[1] != lease_fence or not now < h[2]:
                raise Refused("ProcessLeaseExpired", pid)
        if p.status != "running":
            raise Refused("ProcessAlreadyTerminal", pid)
        p.last_sequence += 1
        p.keys[key] = (p.last_sequence, content, None)
        p.status, p.updated_at = "completed", now
        if lease_owner is not None:
            p.holder = None

    def claim_lease(self, pid: str, owner: Owner, ttl: int, now: int) -> tuple[str, int]:
        """(acquired | busy, fencing token) of a process lease claim."""
        p = self.require(pid)
        holder = p.holder
        live = holder is not None and now < holder[2]
        if holder is not None and live and holder[0] != owner:
            return "busy", holder[1]
        if not live:
            p.fence += 1
        p.holder = (owner, p.fence, now + ttl)
        return "acquired", p.fence

    def release_lease(self, pid: str, owner: Owner, fence: int) -> bool:
        """Clear the holder if it is (owner, fence); False otherwise."""
        p = self.procs.get(pid)
        if p is None or p.holder is None or p.holder[:2] != (owner, fence):
            return False
        p.holder = None
        return True

    def grant(self, pid: str, scope: str) -> None:
        """Grant a handle to a scope (upsert)."""
        self.require(pid).grants.add(scope)

    def revoke(self, pid: str, scope: str) -> bool:
        """Revoke a grant; False when there was none."""
        p = self.procs.get(pid)
        if p is None or scope not in p.grants:
            return False
        p.grants.discard(scope)
        return True

    def session_deleted(self, sid: str, now: int) -> None:
        """A session delete revokes its grants (frames too) and clears wake targets at it."""
        for p in self.procs.values():
            p.grants = {g for g in p.grants if g != f"session:{sid}" and not g.startswith(f"session:{sid}/")}
            if p.wake_target == sid:
                p.wake_target, p.updated_at = None, now

    def prune(self, cutoff: int, now: int, stream_versions: dict[str, int]) -> list[str]:
        """Terminal processes last changed before the cutoff go, with their wake keys
        (`forget_process_wake_keys`) and their two sessions (deleted if active, then purged;
        `stream_versions` are their streams' versions before the prune), and the trigger
        retention runs with the same cutoff."""
        ids = sorted(pid for pid, p in self.procs.items() if p.status != "running" and p.updated_at < cutoff)
        for pid in ids:
            del self.procs[pid]
            self.sessions.forget_process_wake_keys(pid)
        for pid in ids:
            for sid in (f"process-env:{pid}", f"process-session-turn:{pid}"):
                s = self.sessions.sessions.get(sid)
                if s is None or s.status == "purged":
                    continue
                version = stream_versions.get(sid, 0)
                if s.status == "active":
                    self.sessions.delete(sid, now)
                    version += 1  # the delete's own event
                self.sessions.purge(sid, version)
        if ids:
            self.triggers.prune(cutoff, now)
        return ids


# --- triggers -------------------------------------------------------------------------------


@attrs.define
class Subscription:
    """A trigger subscription; `definition` is (source type, source key or None, process name)."""

    scope: str
    key: str
    definition: tuple
    incarnation: int
    revision: int
    enabled: bool = True
    deleted: bool = False
    deleted_at: int | None = None


def session_of_scope(scope: str) -> str | None:
    """`session:<id>` and `session:<id>/frame:<f>` belong to session <id>; host scopes to none."""
    if not scope.startswith("session:"):
        return None
    return scope[len("session:"):].split("/frame:", 1)[0]


class TriggersModel:
    """Subscriptions, receipts, occurrences and deliveries."""

    def __init__(self, sessions: SessionsModel) -> None:
        self.subs: dict[str, Subscription] = {}
        self.retired: dict[str, tuple[int, int]] = {}  # pruned id -> (incarnation, revision)
        # (owner scope, op id) -> (at, command, answer): receipts are keyed per owner scope
        self.receipts: dict[tuple[str, str], tuple[int, tuple, tuple]] = {}
        self.occurrences: dict[str, tuple[tuple, tuple[str, ...]]] = {}  # key -> (request, process ids)
        self.deliveries: dict[str, list[str]] = {}  # subscription id -> delivery process ids
        sessions.on_delete.append(self.session_deleted)

    def execute(self, op: str, cmd: tuple, now: int) -> tuple[tuple, bool]:
        """(answer, replayed): the answer is ('result', outcome, revision, incarnation) or
        ('conflict', error name), recorded as a receipt either way; a kept receipt of the
        same owner scope and op id replays (other scopes' receipts never interfere).

        `cmd` is (kind, scope, key, expected revision or None, definition or None); a prune
        by name is ('prune', scope, sorted distinct keys, None, None) and answers
        ('pruned', outcome, ((key, revision), ...)) for the keys it tombstoned."""
        known = self.receipts.get((cmd[1], op))
        if known is not None:
            if known[1] != cmd:
                raise Refused("OperationIdConflict", op)
            return known[2], True
        answer = self._decide(cmd, now)
        self.receipts[(cmd[1], op)] = (now, cmd, answer)
        return answer, False

    def _decide(self, cmd: tuple, now: int) -> tuple:
        kind, scope, key, expected, definition = cmd
        if kind == "prune":
            done = []
            for k in key:
                s = self.subs.get(subscription_id_for(scope, k))
                if s is not None and not s.deleted:
                    s.revision, s.deleted, s.deleted_at = s.revision + 1, True, now
                    done.append((k, s.revision))
            return ("pruned", "pruned" if done else "unchanged", tuple(done))
        sid = subscription_id_for(scope, key)
        cur = self.subs.get(sid)
        if kind == "register":
            if cur is None:
                inc, rev = self.retired.pop(sid, (0, 0))
                self.subs[sid] = Subscription(scope, key, definition, inc + 1, rev + 1)
                return ("result", "registered", rev + 1, inc + 1)
            if cur.deleted:
                return ("conflict", "SubscriptionTombstoned")
            if cur.definition == definition:
                return ("result", "unchanged", cur.revision, cur.incarnation)
            return ("conflict", "SubscriptionExists")
        if cur is None:
            return ("conflict", "SubscriptionNotFound")
        if cur.revision != expected:
            return ("conflict", "SubscriptionRevisionConflict")
        if kind == "revive":
            if not cur.deleted:
                return ("conflict", "SubscriptionNotDeleted")
            cur.incarnation, cur.revision = cur.incarnation + 1, cur.revision + 1
            cur.definition = definition or cur.definition
            cur.enabled, cur.deleted, cur.deleted_at = True, False, None
            return ("result", "revived", cur.revision, cur.incarnation)
        if kind == "delete":
            if cur.deleted:
                return ("result", "unchanged", cur.revision, cur.incarnation)
            cur.revision, cur.deleted, cur.deleted_at = cur.revision + 1, True, now
            return ("result", "deleted", cur.revision, cur.incarnation)
        if cur.deleted:
            return ("conflict", "SubscriptionTombstoned")
        if kind == "update":
            if definition == cur.definition:
                return ("result", "unchanged", cur.revision, cur.incarnation)
            cur.revision, cur.definition = cur.revision + 1, definition
            return ("result", "updated", cur.revision, cur.incarnation)
        enable = kind == "enable"
        if cur.enabled == enable:
            return ("result", "unchanged", cur.revision, cur.incarnation)
        cur.revision, cur.enabled = cur.revision + 1, enable
        return ("result", "enabled" if enable else "disabled", cur.revision, cur.incarnation)

    def ingest(self, request: tuple) -> tuple[str, tuple[str, ...]]:
        """`request` is (source type, source key, idempotency key, payload, session id)."""
        source_type, source_key, idem, _payload, session = request
        seen = self.occurrences.get(idem)
        if seen is not None:
            if seen[0] != request:
                raise Refused("OccurrenceConflict", idem)
            return "already_reserved", seen[1]
        occ = occurrence_id_for(idem)
        out = []
        for sid in sorted(self.subs):
            s = self.subs[sid]
            st, sk, _name = s.definition
            if (s.enabled and not s.deleted and st == source_type and sk in (None, source_key)
                    and (session is None or session_of_scope(s.scope) == session)):
                out.append(f"trigger:{sid}:{s.incarnation}:{occ}")
                self.deliveries.setdefault(sid, []).append(out[-1])
        self.occurrences[idem] = (request, tuple(out))
        return "reserved", tuple(out)

    def session_deleted(self, session: str, now: int) -> None:
        """A session delete tombstones the live subscriptions its scopes own."""
        for s in self.subs.values():
            if session_of_scope(s.scope) == session and not s.deleted:
                s.deleted, s.deleted_at, s.revision = True, now, s.revision + 1

    def prune(self, cutoff: int, now: int) -> None:
        """Retention: receipts recorded and tombstones deleted before the cutoff go."""
        for sid in sorted(sid for sid, s in self.subs.items() if s.deleted and s.deleted_at is not None and s.deleted_at < cutoff):
            s = self.subs.pop(sid)
            self.retired[sid] = (s.incarnation, s.revision)
            self.deliveries.pop(sid, None)
        self.receipts = {op: r for op, r in self.receipts.items() if r[0] >= cutoff}


# --- effects ------------------------------------------------------------------------------


@attrs.define
class Effect:
    """A journaled effect."""

    status: str
    holder: str
    attempt: int
    expires_at: int
    outcome: Any = None
    error: str | None = None


class EffectsModel:
    """The effect journal of one scope: begin / finish / call / strict replay."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self.entries: dict[str, Effect] = {}

    def begin(self, owner: str, key: str, now: int) -> str:
        """claimed | taken_over | replay | busy (and the state change of a claim)."""
        e = self.entries.get(key)
        if e is None:
            self.entries[key] = Effect("in_progress", owner, 1, now + self.ttl)
            return "claimed"
        if e.status != "in_progress":
            return "replay"
        if e.expires_at > now:
            return "busy"
        self.entries[key] = Effect("in_progress", owner, e.attempt + 1, now + self.ttl)
        return "taken_over"

    def holds(self, owner: str, key: str, attempt: int, now: int) -> bool:
        """Does `owner` still hold the lease of this attempt, unexpired?"""
        e = self.entries.get(key)
        return (e is not None and e.status == "in_progress" and e.holder == owner and e.attempt == attempt
                and e.expires_at > now)

    def finish(self, owner: str, key: str, attempt: int, value: Any, error: str | None, now: int) -> None:
        """Record the outcome or error, if the lease is still held; EffectLeaseLost otherwise."""
        if not self.holds(owner, key, attempt, now):
            raise Refused("EffectLeaseLost", key)
        e = self.entries[key]
        e.status, e.outcome, e.error = ("failed", None, error) if error else ("completed", value, None)

    def call(self, owner: str, key: str, value: Any, now: int, strict: bool = False) -> tuple[str, Any]:
        """('ran', value) | ('replay', outcome) | ('failed', error) | ('busy', None), or in
        strict replay ('missing', None) for a key never journaled (an entry in progress is
        busy or taken over there too)."""
        if strict and key not in self.entries:
            return "missing", None
        began = self.begin(owner, key, now)
        if began == "busy":
            return "busy", None
        if began == "replay":
            e = self.entries[key]
            return ("failed", e.error) if e.status == "failed" else ("replay", e.outcome)
        self.entries[key].status, self.entries[key].outcome = "completed", value
        return "ran", value


class StoreModel:
    """The whole store: one model per domain, wired the way the store wires them."""

    def __init__(self, effect_ttl: int) -> None:
        self.sessions = SessionsModel()
        self.triggers = TriggersModel(self.sessions)
        self.processes = ProcessesModel(self.sessions, self.triggers)
        self.effects = EffectsModel(effect_ttl)
