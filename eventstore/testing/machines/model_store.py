"""A pure in-memory reference model of the whole store, for eventstore.testing.machines.whole_store.

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

import hashlib
import re
from typing import Any

import attrs

from eventstore.triggers import occurrence_id_for, subscription_id_for

RETENTION_MS = 7 * 86_400_000
"""How long a settled batch's source key is remembered (the queue's default)."""
SCAN_SURPLUS = 32


class Refused(Exception):
    """The model's prediction: the command raises the typed error `name` and writes nothing."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(f"{name}: {why}" if why else name)
        self.name = name


def sha(text: str) -> str:
    """sha256 hex of a text (the documented id derivations use it)."""
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class Owner:
    """A lease owner. `pid` None is a remote worker whose death can never be proven."""

    owner_id: str
    incarnation: str
    pid: int | None = None

    def __repr__(self) -> str:
        return f"{self.owner_id}/{self.incarnation}"


# --- sessions, leases, queue, inputs, graph ---------------------------------------------


@attrs.define(eq=False)
class Acquisition:
    """One acquisition of a session lease (a fence); identity, not its token, is what counts."""

    session_id: str
    epoch: int  # the session generation it was taken in
    owner: Owner
    fence: int
    expires_at: int


@attrs.define(eq=False)
class Claim:
    """A queue or input claim as issued; rows point at the Claim object that holds them."""

    family: str  # "work" or "inputs"
    session_id: str
    epoch: int
    generation: int  # the lease fencing token it was taken under
    claim_id: str
    lease_token: str
    owner: Owner
    ids: tuple[str, ...]
    mode: str
    turn_id: str | None = None


@attrs.define
class Batch:
    """A queued batch: kind is task (Join), solo (Exclusive), command, or wake (Join)."""

    batch_id: str
    seq: int
    kind: str
    source_key: str | None = None
    claim_count: int = 0
    claim: Claim | None = None
    forget_key_on_settle: bool = False  # its process was pruned while it was queued

    @property
    def turn_work(self) -> bool:
        """Turn work (not a session command)."""
        return self.kind != "command"


@attrs.define
class Input:
    """A turn input row: `content` is what a source-key replay is compared with."""

    input_id: str
    seq: int
    source_key: str | None
    content: tuple
    turn_id: str | None
    boundary: str | None  # "after_work" | "before_completion" for active-turn rows
    state: str  # stored: pending_active, deferred_next_turn, accepted, cancelled, completed
    claim_count: int = 0
    claim: Claim | None = None


@attrs.define
class Graph:
    """A session's head and graph (exists once the session committed in this generation)."""

    revision: int = 0
    leaf: str | None = None
    live: list[str] = attrs.Factory(list)
    hidden: list[str] = attrs.Factory(list)
    checkpoint: int | None = None
    usage: int = 0
    turns: dict[str, tuple] = attrs.Factory(dict)  # turn id -> (content, result)


@attrs.define
class Session:
    """Everything the model keeps per session id."""

    status: str = "active"
    generation: int = 1
    fence: int = 0
    holder: Acquisition | None = None
    queue_seq: int = 0  # survive a delete; a purge resets them
    input_seq: int = 0
    batches: dict[str, Batch] = attrs.Factory(dict)
    keys: dict[str, tuple] = attrs.Factory(dict)  # source key -> ("present", batch) | (status, batch, at)
    inputs: dict[str, Input] = attrs.Factory(dict)
    graph: Graph | None = None

    def live_holder(self, now: int) -> Acquisition | None:
        """The holder while its lease is unexpired at `now`, else None."""
        return self.holder if self.holder is not None and now < self.holder.expires_at else None

    def live_gen(self, now: int) -> int | None:
        """The fencing token of the live lease (the live claim generation), or None."""
        h = self.live_holder(now)
        return h.fence if h is not None else None

    def holds(self, claim: Claim | None, now: int) -> bool:
        """Is `claim` live: taken in this generation under the lease that is live now?"""
        return (claim is not None and self.status == "active" and claim.epoch == self.generation
                and self.live_gen(now) == claim.generation)

    def wipe(self) -> None:
        """What a delete wipes (the sequence counters stay)."""
        self.fence, self.holder, self.graph = 0, None, None
        self.batches, self.keys, self.inputs = {}, {}, {}


@attrs.frozen
class CommitSpec:
    """A runtime commit as the model sees it (the machine builds the RuntimeCommit from it)."""

    session_id: str
    fence: Acquisition
    nodes: tuple[tuple[str, str | None], ...] = ()  # (node id, parent id)
    delta: str = "unchanged"  # unchanged | append | replace
    leaf: str | None = None
    expected_revision: int | None = None
    checkpoint: int | None = None
    usage: int = 0
    work: Claim | None = None
    inputs: Claim | None = None
    outbox: int = 0
    interrupt: str | None = None
    release: bool = False
    stamp: str | None = None
    content: Any = None  # equal exactly when the turn hash is equal


class SessionsModel:
    """Sessions with their leases, queue, inputs and graph, and the fake /proc."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.proc: dict[int, int] = {}  # pid -> start time (absent: no such process)
        self.on_delete: list[Any] = []  # callbacks(session id, now) of other domains

    # --- sessions ---

    def live(self, sid: str, what: str = "") -> Session:
        """The active session `sid`, or SessionNotFound / SessionDeleted."""
        s = self.sessions.get(sid)
        if s is None:
            raise Refused("SessionNotFound", f"{what} {sid}")
        if s.status != "active":
            raise Refused("SessionDeleted", f"{what} {sid}")
        return s

    def create(self, sid: str, recreate: bool) -> str:
        """created | existing | recreated (a new generation of a deleted id), or SessionDeleted."""
        s = self.sessions.get(sid)
        if s is None:
            self.sessions[sid] = Session()
            return "created"
        if s.status == "active":
            return "existing"
        if not recreate:
            raise Refused("SessionDeleted", sid)
        s.status, s.generation = "active", s.generation + 1
        return "recreated"

    def save_meta(self, sid: str) -> str:
        """An upsert of the meta: creates an unknown id; SessionDeleted for a deleted one."""
        s = self.sessions.get(sid)
        if s is None:
            self.sessions[sid] = Session()
            return "created"
        if s.status != "active":
            raise Refused("SessionDeleted", sid)
        return "saved"

    def delete(self, sid: str, now: int) -> bool:
        """Tombstone the id and wipe what it held; the other domains clean up (on_delete)."""
        s = self.sessions.get(sid)
        if s is None:
            return False  # an id that never existed: a no-op
        if s.status != "active":
            return False
        s.status = "deleted"
        s.wipe()
        for callback in self.on_delete:
            callback(sid, now)
        return True

    def purge(self, sid: str, stream_version: int) -> bool:
        """`stream_version` is the version of `session:<id>` when the purge runs (an input the
        machine reads, like the clock): the sequence counters restart above it, so no batch,
        input or claim id of the purged generation is ever issued again."""
        s = self.sessions.get(sid)
        if s is None:
            raise Refused("SessionNotFound", sid)
        if s.status == "active":
            raise Refused("SessionNotDeleted", sid)
        if s.status == "purged":
            return False
        s.status = "purged"
        s.queue_seq, s.input_seq = max(s.queue_seq, stream_version), max(s.input_seq, stream_version)
        return True

    # --- leases ---

    def dead(self, holder: Owner, claimant: Owner) -> bool:
        """Proven dead: both local (same host and boot) and the holder's pid gone or reused."""
        if holder.pid is None or claimant.pid is None:
            return False
        return self.proc.get(holder.pid) != 1_000

    def claim_lease(self, sid: str, owner: Owner, ttl: int, now: int) -> tuple[str, Acquisition]:
        """(acquired | reentry | busy, the holder) of a plain session lease claim."""
        s = self.live(sid, "leases.claim")
        live = s.live_holder(now)
        if live is None:
            s.fence += 1
            s.holder = Acquisition(sid, s.generation, owner, s.fence, now + ttl)
            return "acquired", s.holder
        if live.owner == owner:
            live.expires_at = now + ttl
            return "reentry", live
        return "busy", live

    def reclaim_lease(self, sid: str, owner: Owner, observed: Acquisition, ttl: int,
                      now: int) -> tuple[str, Acquisition]:
        """A claim that may take a live lease it observed whose holder is proven dead."""
        s = self.live(sid, "leases.reclaim")
        live = s.live_holder(now)
        if live is None:
            return self.claim_lease(sid, owner, ttl, now)
        if observed is live and self.dead(live.owner, owner):
            s.fence += 1
            s.holder = Acquisition(sid, s.generation, owner, s.fence, now + ttl)
            return "acquired", s.holder
        return "busy", live

    def require_fence(self, fence: Acquisition, now: int, what: str) -> Session:
        """The session, if `fence` is its live lease; SessionExecutionLeaseExpired otherwise."""
        s = self.live(fence.session_id, what)
        if s.holder is not fence or not now < fence.expires_at:
            raise Refused("SessionExecutionLeaseExpired", what)
        return s

    def renew_lease(self, fence: Acquisition, ttl: int, now: int) -> None:
        """Move the live lease's expiry to now + ttl."""
        self.require_fence(fence, now, "leases.renew")
        fence.expires_at = now + ttl

    def release_lease(self, fence: Acquisition) -> bool:
        """Clear the holder if `fence` is it (expired or not); False for a stale fence."""
        s = self.live(fence.session_id, "leases.release")
        if s.holder is not fence:
            return False
        s.holder = None
        return True

    # --- queued work ---

    def enqueue(self, sid: str, kind: str, key: str | None, now: int) -> tuple[Batch, bool, str]:
        """Decide one enqueue (the session was checked live by the caller)."""
        s = self.sessions[sid]
        known = s.keys.get(key) if key is not None else None
        if known is not None:
            if known[0] == "present":
                return known[1], False, "present"
            if now < known[2] + RETENTION_MS:
                return known[1], False, known[0]
        s.queue_seq += 1
        batch = Batch("qwb:" + sha(f"{sid}:{key!r}:{now}:{s.queue_seq}"), s.queue_seq, kind, key)
        s.batches[batch.batch_id] = batch
        if key is not None:
            s.keys[key] = ("present", batch)
        return batch, True, "enqueued"

    def enqueue_work(self, sid: str, kind: str, key: str | None, now: int) -> tuple[Batch, bool, str]:
        """store.queue.enqueue: (batch, created, disposition)."""
        self.live(sid, "queue.enqueue")
        return self.enqueue(sid, kind, key, now)

    def _take(self, s: Session, fence: Acquisition, rows: list, family: str, prefix: str, mode: str,
              now: int, turn_id: str | None = None) -> Claim | None:
        if not rows:
            return None
        head = rows[0]
        claim_id = f"{prefix}:{head.seq}:{head.claim_count + 1}"
        o = fence.owner
        token = sha(f"{fence.session_id}:{o.owner_id}:{o.incarnation}:{claim_id}:{now}")
        ids = tuple(r.batch_id if family == "work" else r.input_id for r in rows)
        claim = Claim(family, fence.session_id, s.generation, fence.fence, claim_id, token, o, ids, mode, turn_id)
        for r in rows:
            r.claim_count += 1
            r.claim = claim
            if family == "inputs" and mode == "active_turn":
                r.state = "accepted"
        return claim

    def _work_candidates(self, s: Session, gen: int, limit: int) -> list[Batch]:
        rows = [b for b in s.batches.values() if not (b.claim is not None and b.claim.generation == gen)]
        return sorted(rows, key=lambda b: b.seq)[:limit]

    def claim_ready(self, fence: Acquisition, max_batches: int, now: int) -> Claim | None:
        """store.queue.claim_ready at the Idle boundary: the claim, or None."""
        s = self.require_fence(fence, now, "queue.claim_ready")
        if max_batches == 0:
            return None
        cands = self._work_candidates(s, fence.fence, max_batches + SCAN_SURPLUS)
        take: list[Batch] = []
        if cands and cands[0].turn_work:
            take.append(cands[0])
            if cands[0].kind != "solo":  # a Join head extends through the following Join turn work
                for b in cands[1:]:
                    if len(take) >= max_batches or b.kind not in ("task", "wake"):
                        break
                    take.append(b)
        return self._take(s, fence, take, "work", "qwc", "ready", now)

    def claim_command(self, fence: Acquisition, now: int) -> Claim | None:
        """store.queue.claim_session_command: the head batch if it is a session command."""
        s = self.require_fence(fence, now, "queue.claim_session_command")
        cands = self._work_candidates(s, fence.fence, 1)
        take = cands if cands and not cands[0].turn_work else []
        return self._take(s, fence, take, "work", "qwc", "session_command", now)

    def abandon_work(self, claim: Claim) -> tuple[str, ...]:
        """The batch ids the claim still held, now unclaimed."""
        s = self.sessions[claim.session_id]
        held = [b for b in s.batches.values() if b.claim is claim and b.batch_id in claim.ids]
        for b in held:
            b.claim = None
        return tuple(b.batch_id for b in held)

    def cancel_work(self, sid: str, batch_id: str, now: int) -> bool:
        """True when the batch was queued and no live claim held it (it is cancelled)."""
        s = self.sessions.get(sid)
        b = s.batches.get(batch_id) if s is not None else None
        if s is None or b is None or s.holds(b.claim, now):
            return False
        self._settle(s, b, "cancelled", now)
        return True

    def _settle(self, s: Session, b: Batch, status: str, now: int) -> None:
        del s.batches[b.batch_id]
        if b.source_key is not None and s.keys.get(b.source_key, (None, None))[1] is b:
            if b.forget_key_on_settle:
                del s.keys[b.source_key]
            else:
                s.keys[b.source_key] = (status, b, now)
        b.claim = None

    def forget_process_wake_keys(self, pid: str) -> None:
        """A process prune: every session forgets the settled wake keys of `pid` (its id
        may be registered again, with sequences from 1); a key whose batch is still queued
        stays, and is forgotten when that batch settles."""
        prefix = f"process:{pid}:event:"
        for s in self.sessions.values():
            for key, known in list(s.keys.items()):
                if not (key.startswith(prefix) and re.fullmatch(r"-?[0-9]+:wake", key[len(prefix):])):
                    continue
                if known[0] == "present":
                    known[1].forget_key_on_settle = True
                else:
                    del s.keys[key]

    def check_work_completion(self, claim: Claim, now: int) -> Session:
        """The session, if the claim still holds every batch under a live lease."""
        s = self.sessions[claim.session_id]
        for bid in claim.ids:
            b = s.batches.get(bid)
            if b is None or b.claim is not claim or not s.holds(claim, now):
                raise Refused("QueuedWorkClaimSuperseded", claim.claim_id)
        return s

    def complete_work(self, claim: Claim, now: int) -> tuple[str, ...]:
        """Settle the claim's batches (their source keys remember them)."""
        s = self.check_work_completion(claim, now)
        for bid in claim.ids:
            self._settle(s, s.batches[bid], "completed", now)
        return claim.ids

    # --- turn inputs ---

    def enqueue_input(self, sid: str, turn: str | None, boundary: str, text: str, key: str | None,
                      now: int) -> tuple[Input, bool]:
        """store.inputs.enqueue: (row, created), or a source-key conflict."""
        s = self.live(sid, "inputs.enqueue")
        content = (turn, boundary if turn else None, text)
        if key is not None:
            for row in s.inputs.values():
                if row.source_key == key:
                    if row.content != content:
                        raise Refused("PendingTurnInputSourceKeyConflict", key)
                    return row, False
        s.input_seq += 1
        row = Input("ti:" + sha(f"{sid}:{key!r}:{now}:{s.input_seq}"), s.input_seq, key, content, turn,
                    content[1], "pending_active" if turn else "deferred_next_turn")
        s.inputs[row.input_id] = row
        return row, True

    def claim_active(self, fence: Acquisition, turn: str, checkpoint: str, max_inputs: int, now: int) -> Claim | None:
        """store.inputs.claim_active: the turn's admitted inputs become accepted."""
        s = self.require_fence(fence, now, "inputs.claim_active")
        if max_inputs == 0:
            return None
        rows = [r for r in s.inputs.values()
                if r.turn_id == turn and r.state in ("pending_active", "accepted")
                and not (r.claim is not None and r.claim.generation == fence.fence)
                and (checkpoint == "before_completion" or r.boundary == "after_work")]
        return self._take(s, fence, rows[:max_inputs], "inputs", "tic", "active_turn", now, turn)

    def claim_next_turn(self, fence: Acquisition, max_inputs: int, now: int) -> Claim | None:
        """store.inputs.claim_next_turn: deferred inputs, their state unchanged."""
        s = self.require_fence(fence, now, "inputs.claim_next_turn")
        if max_inputs == 0:
            return None
        rows = [r for r in s.inputs.values() if r.state == "deferred_next_turn"
                and not (r.claim is not None and r.claim.generation == fence.fence)]
        return self._take(s, fence, rows[:max_inputs], "inputs", "tic", "next_turn", now)

    def cancel_input(self, sid: str, input_id: str, now: int) -> str:
        """The cancel outcome's value (cancelled, already_claimed, ... not_found)."""
        s = self.sessions.get(sid)
        row = s.inputs.get(input_id) if s is not None else None
        if s is None or row is None:
            return "not_found"
        if row.state in ("cancelled", "completed"):
            return f"already_{row.state}"
        if s.holds(row.claim, now):
            return "already_claimed"
        row.state, row.claim = "cancelled", None
        return "cancelled"

    def check_input_completion(self, claim: Claim, now: int) -> Session:
        """The session, if the claim still holds every input under a live lease."""
        s = self.sessions[claim.session_id]
        for iid in claim.ids:
            row = s.inputs.get(iid)
            if row is None or row.claim is not claim or not s.holds(claim, now):
                raise Refused("TurnInputClaimSuperseded", claim.claim_id)
        return s

    def complete_inputs(self, claim: Claim, now: int) -> tuple[str, ...]:
        """The claim's inputs become completed."""
        s = self.check_input_completion(claim, now)
        for iid in claim.ids:
            s.inputs[iid].state, s.inputs[iid].claim = "completed", None
        return claim.ids

    def abandon_inputs(self, claim: Claim) -> tuple[str, ...]:
        """The input ids the claim still held; accepted ones are pending again."""
        s = self.sessions[claim.session_id]
        held = [r for r in s.inputs.values() if r.claim is claim and r.input_id in claim.ids]
        for r in held:
            r.claim = None
            if r.state == "accepted":
                r.state = "pending_active"
        return tuple(r.input_id for r in held)

    def effective_input_state(self, s: Session, row: Input, now: int) -> str:
        """The state a read shows: accepted under a dead claim reads as pending_active."""
        if row.state == "accepted" and not s.holds(row.claim, now):
            return "pending_active"
        return row.state

    # --- the runtime commit and graph maintenance ---

    def commit(self, c: CommitSpec, now: int) -> tuple[int, tuple[str, ...], bool]:
        """(head revision, outbox batch ids, replayed), or Refused; see commits.py's order of checks."""
        sid = c.session_id
        s = self.live(sid, "commit")
        g = s.graph or Graph()
        if c.stamp is not None and c.stamp in g.turns:
            content, result = g.turns[c.stamp]
            if content != c.content:
                raise Refused("RuntimeTurnCommitConflict", c.stamp)
            if c.release and s.holder is c.fence:
                s.holder = None
            return (*result, True)
        self.require_fence(c.fence, now, "commit")
        if c.expected_revision is not None and c.expected_revision != g.revision:
            raise Refused("HeadRevisionConflict", f"{c.expected_revision} != {g.revision}")
        for claim, check in ((c.work, self.check_work_completion), (c.inputs, self.check_input_completion)):
            if claim is not None:
                if claim.session_id != sid:
                    raise Refused("SessionBindingMismatch", claim.claim_id)
                check(claim, now)
        self._check_delta(g, c)
        # every check passed: apply, in the commit's order
        s.graph = g
        g.revision += 1
        new = [n for n, _p in c.nodes]
        if c.delta == "replace":
            g.live, g.hidden, g.leaf = new, [], c.leaf
        else:
            g.live += new
            g.leaf = c.leaf if c.leaf is not None else g.leaf
        g.checkpoint = c.checkpoint if c.checkpoint is not None else g.checkpoint
        g.usage += c.usage
        completing: tuple[str, ...] = ()
        if c.work is not None:
            self.complete_work(c.work, now)
        if c.inputs is not None:
            completing = self.complete_inputs(c.inputs, now)
        if c.interrupt is not None:
            self.defer_turn(s, c.interrupt, completing, now)
        batch_ids = tuple(self.enqueue(sid, "task", None, now)[0].batch_id for _ in range(c.outbox))
        if c.stamp is not None:
            g.turns[c.stamp] = (c.content, (g.revision, batch_ids))
        if c.release:
            s.holder = None
        return g.revision, batch_ids, False

    def _check_delta(self, g: Graph, c: CommitSpec) -> None:
        live = set(g.live)
        exists = live | set(g.hidden)
        if c.delta == "unchanged":
            if c.leaf is not None and c.leaf not in live:
                raise Refused("InvalidGraphDelta", f"leaf {c.leaf}")
            return
        replace = c.delta == "replace"
        new: set[str] = set()
        for node_id, parent in c.nodes:
            if node_id in new or (not replace and node_id in exists):
                raise Refused("InvalidGraphDelta", f"duplicate {node_id}")
            if parent is not None and parent not in new and (replace or parent not in live):
                raise Refused("InvalidGraphDelta", f"parent {parent}")
            new.add(node_id)
        if c.leaf is not None and c.leaf not in new and (replace or c.leaf not in live):
            raise Refused("InvalidGraphDelta", f"leaf {c.leaf}")

    def defer_turn(self, s: Session, turn: str, completing: tuple[str, ...], now: int) -> None:
        """An interrupt: the turn's inputs no live claim holds move to the next turn."""
        for r in s.inputs.values():
            if r.turn_id == turn and r.input_id not in completing and (
                    r.state == "pending_active" or (r.state == "accepted" and not s.holds(r.claim, now))):
                r.state, r.turn_id, r.boundary, r.claim = "deferred_next_turn", None, None, None

    def tombstone(self, sid: str, node_ids: list[str]) -> int:
        """Hide live nodes; returns how many were live."""
        s = self.live(sid, "tombstone_nodes")
        g = s.graph
        if g is None:
            return 0
        hidden = [n for n in dict.fromkeys(node_ids) if n in g.live]
        for n in hidden:
            g.live.remove(n)
            g.hidden.append(n)
        return len(hidden)

    def vacuum(self, sid: str) -> tuple[int, int]:
        """(hidden nodes removed, terminal inputs removed)."""
        s = self.live(sid, "vacuum")
        nodes = len(s.graph.hidden) if s.graph is not None else 0
        if s.graph is not None:
            s.graph.hidden = []
        gone = [i for i, r in s.inputs.items() if r.state in ("cancelled", "completed")]
        for i in gone:
            del s.inputs[i]
        return nodes, len(gone)

    def vacuum_all(self) -> dict[str, tuple[int, int]]:
        """Every active session vacuumed: {session id: (nodes, inputs)} for those with something removed."""
        out = {}
        for sid, s in sorted(self.sessions.items()):
            if s.status == "active":
                removed = self.vacuum(sid)
                if any(removed):
                    out[sid] = removed
        return out


# --- processes ---------------------------------------------------------------------------


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
