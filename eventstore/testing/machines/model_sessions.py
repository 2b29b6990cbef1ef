"""The sessions part of the whole-store model (eventstore.testing.machines.model_store):
sessions with their leases, queued work, turn inputs and graph, and the fake /proc."""

from __future__ import annotations

import re
from typing import Any

from .model_records import (
    RETENTION_MS, SCAN_SURPLUS, Acquisition, Batch, Claim, CommitSpec, Graph, Input, Owner, Refused, Session, sha,
)


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
