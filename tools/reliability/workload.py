"""A realistic mix of domain commands, driven by a seeded random generator.

The crash and contention harnesses need a writer that does what a runtime does: create
sessions, claim and renew their leases, enqueue and claim queued work, commit turns
(graph nodes, checkpoints with blobs, usage, queue completions, an outbox), register
processes and append their events, enqueue turn inputs, register triggers and ingest
occurrences, and append plain multi-event commands to the log. `Workload.next_op()`
picks the next command from the state the workload has seen so far and returns it as
an `Op`: a name and a zero-argument callable. The caller decides how to run it (the
crash worker wraps it with an acknowledgement protocol, see crash_worker.py).

Commands that the domain may legitimately refuse (a lease that expired, a claim that
was superseded) raise typed errors; the workload's `observe` turns them back into
state changes, so that the next command is plausible again.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Callable

import attrs

import eventstore
from eventstore.demo import ModelReply, ToolCalled, UserMessage
from eventstore.commits import RuntimeCommit
from eventstore.commits import Checkpoint, EventPayload, GraphAppend, SessionNode, TurnState, UsageDelta
from eventstore.inputs import ActiveTurn, NextTurn, TurnInputDraft
from eventstore.leases import Acquired, LeaseOwner
from eventstore.processes import (
    AppendEventRequest, Disposition, EventTypeSpec, ExternalInput, PayloadSchema, ProcessRegistration,
    Provenance, SessionScope, Success,
)
from eventstore.queue import AgentFrameTask, ProcessWake, QueuedWorkDraft
from eventstore.triggers import OccurrenceRequest, RegisterSubscription, TriggerDefinition

RAW_STREAM_PREFIX = "torture-raw:"
"""Plain multi-event commands go to `torture-raw:<prefix>`; their events carry their op id."""


@attrs.frozen
class Op:
    """One command of the workload: what it is, how to run it, how many events a raw one appends."""

    kind: str
    run: Callable[[], Any]
    raw_events: int | None = None
    """For a plain log append: the exact number of events it appends (known beforehand)."""


@attrs.define
class SessionPlay:
    """What the workload knows of one session it drives."""

    session_id: str
    fence: Any = None
    revision: int = 0
    nodes: int = 0
    leaf: str | None = None
    queue_claim: Any = None
    enqueued: int = 0


@attrs.define
class ProcessPlay:
    """A process the workload registered: its events so far and its lease, if any."""

    process_id: str
    session_id: str
    events: int = 0
    lease: Any = None
    done: bool = False


_PROGRESS = EventTypeSpec("tool.progress", PayloadSchema("object", ("message",)))


def raw_event(op: int, index: int, count: int, rng: random.Random) -> Any:
    """One event of a plain command: its text names the op and its place in the command."""
    tag = json.dumps({"op": op, "i": index, "n": count})
    pick = rng.random()
    if pick < 0.4:
        return UserMessage(tag)
    if pick < 0.8:
        return ModelReply(tag, "torture-model", rng.randint(1, 4000), rng.randint(1, 800))
    return ToolCalled("search", {"q": tag, "pad": "x" * rng.randint(0, 6000)}, tag)


def raw_tag(data: Any) -> dict | None:
    """The {"op", "i", "n"} tag of an event written by `raw_event` (raw or decoded data), or None."""
    text = None
    if isinstance(data, dict):
        text = data.get("text") or data.get("result")
    else:
        text = getattr(data, "text", None) or getattr(data, "result", None)
    if not isinstance(text, str) or not text.startswith("{"):
        return None
    try:
        tag = json.loads(text)
    except ValueError:
        return None
    return tag if isinstance(tag, dict) and {"op", "i", "n"} <= set(tag) else None


class Workload:
    """Drives one store with a plausible sequence of domain commands (see the module docstring)."""

    def __init__(self, store: eventstore.Store, rng: random.Random, prefix: str, *,
                 ttl_ms: int = 600_000, blob_bytes: int = 4096, weights: dict[str, float] | None = None) -> None:
        self.store = store
        self.rng = rng
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.blob_bytes = blob_bytes
        self.owner = LeaseOwner(f"torture-{prefix}", hashlib.sha256(prefix.encode()).hexdigest()[:16])
        self.sessions: list[SessionPlay] = []
        self.processes: list[ProcessPlay] = []
        self.op_counter = 0
        self.raw_version = 0
        self.triggers = 0
        self.occurrences = 0
        self.inputs = 0
        self.weights = weights or {
            "create": 1.0, "claim": 2.0, "renew": 1.0, "release": 0.3, "enqueue": 2.0, "claim_work": 1.5,
            "complete_work": 1.0, "commit": 3.0, "process": 1.5, "input": 1.0, "trigger": 0.5, "raw": 2.0,
        }

    # --- choosing ----------------------------------------------------------------------

    def next_op(self) -> Op:
        """The next command to run, chosen among those that make sense in the current state."""
        self.op_counter += 1
        if not self.sessions:
            return self._create()
        choices = {k: w for k, w in self.weights.items() if self._possible(k)}
        kind = self.rng.choices(list(choices), weights=list(choices.values()))[0]
        return getattr(self, f"_{kind}")()

    def _possible(self, kind: str) -> bool:
        held = [s for s in self.sessions if s.fence is not None]
        if kind in ("renew", "release", "claim_work", "commit"):
            return bool(held)
        if kind == "complete_work":
            return any(s.queue_claim is not None for s in self.sessions)
        if kind == "claim":
            return any(s.fence is None for s in self.sessions)
        if kind == "create":
            return len(self.sessions) < 6
        return True

    def _session(self, held: bool | None = None) -> SessionPlay:
        pool = [s for s in self.sessions if held is None or (s.fence is not None) == held]
        return self.rng.choice(pool)

    # --- the commands ------------------------------------------------------------------

    def _create(self) -> Op:
        play = SessionPlay(f"{self.prefix}-s{len(self.sessions) + 1}")

        def run() -> Any:
            result = self.store.sessions.create(play.session_id)
            self.sessions.append(play)
            return result

        return Op("sessions.create", run)

    def _claim(self) -> Op:
        play = self._session(held=False)

        def run() -> Any:
            out = self.store.leases.claim(play.session_id, self.owner, self.ttl_ms)
            if isinstance(out, Acquired):
                play.fence = out.lease.fence
            return out

        return Op("leases.claim", run)

    def _renew(self) -> Op:
        play = self._session(held=True)

        def run() -> Any:
            return self.store.leases.renew(play.fence, self.ttl_ms)

        return Op("leases.renew", run)

    def _release(self) -> Op:
        play = self._session(held=True)

        def run() -> Any:
            fence, play.fence, play.queue_claim = play.fence, None, None
            return self.store.leases.release(fence)

        return Op("leases.release", run)

    def _enqueue(self) -> Op:
        play = self._session()
        rng = self.rng
        play.enqueued += 1
        n = play.enqueued
        if rng.random() < 0.3:
            wake = ProcessWake(f"{self.prefix}-p{n}", n, f"wake:{self.prefix}:{n}", "tool.progress")
            draft = QueuedWorkDraft.for_wake(play.session_id, wake)
        else:
            draft = QueuedWorkDraft(play.session_id, (AgentFrameTask(f"frame-{n}", {"step": n, "note": "x" * rng.randint(0, 300)}),))
        return Op("queue.enqueue", lambda: self.store.queue.enqueue(draft))

    def _claim_work(self) -> Op:
        play = self._session(held=True)

        def run() -> Any:
            claim = self.store.queue.claim_ready(play.fence, max_batches=self.rng.randint(1, 4))
            if claim is not None:
                play.queue_claim = claim
            return claim

        return Op("queue.claim_ready", run)

    def _complete_work(self) -> Op:
        play = self.rng.choice([s for s in self.sessions if s.queue_claim is not None])

        def run() -> Any:
            claim, play.queue_claim = play.queue_claim, None
            return self.store.queue.complete(claim.completion())

        return Op("queue.complete", run)

    def _commit(self) -> Op:
        play = self._session(held=True)
        rng = self.rng
        nodes = []
        parent = play.leaf
        for _ in range(rng.randint(1, 3)):
            play.nodes += 1
            node_id = f"n{play.nodes}"
            text = "y" * rng.randint(0, 2000)
            nodes.append(SessionNode(node_id, EventPayload({"role": "assistant", "text": text}), parent))
            parent = node_id
        checkpoint = None
        if rng.random() < 0.5:
            checkpoint = Checkpoint(TurnState(turn_index=play.revision + 1),
                                    tool_state=rng.randbytes(rng.randint(16, self.blob_bytes)))
        claims = ()
        if play.queue_claim is not None and rng.random() < 0.5:
            claims = (play.queue_claim.completion(),)
        outbox = ()
        if rng.random() < 0.3:
            outbox = (QueuedWorkDraft(play.session_id, (AgentFrameTask("follow-up", play.nodes),)),)
        commit = RuntimeCommit(
            play.session_id, play.fence, GraphAppend(tuple(nodes), parent),
            expected_head_revision=play.revision, checkpoint=checkpoint,
            usage_deltas=(UsageDelta("model", "torture-model", rng.randint(1, 900), rng.randint(1, 300)),),
            completed_queue_claims=claims, enqueued_queue_batches=outbox)

        def run() -> Any:
            result = self.store.sessions.commit(commit)
            play.revision = result.head_revision
            play.leaf = parent
            if claims:
                play.queue_claim = None
            return result

        return Op("sessions.commit", run)

    def _process(self) -> Op:
        live = [p for p in self.processes if not p.done]
        rng = self.rng
        if not live or rng.random() < 0.25:
            play = ProcessPlay(f"{self.prefix}-proc{len(self.processes) + 1}", self._session().session_id)
            reg = ProcessRegistration(play.process_id, ExternalInput({"job": play.process_id}),
                                      Disposition.RERUNNABLE, Provenance(SessionScope(play.session_id)),
                                      (_PROGRESS,))

            def register() -> Any:
                record = self.store.processes.register(reg)
                self.processes.append(play)
                return record

            return Op("processes.register", register)
        play = rng.choice(live)
        if play.lease is None and rng.random() < 0.3:
            def claim() -> Any:
                out = self.store.processes.claim_lease(play.process_id, self.owner, self.ttl_ms)
                if isinstance(out, Acquired):
                    play.lease = out.lease
                return out

            return Op("processes.claim_lease", claim)
        if play.lease is not None and rng.random() < 0.3:
            def complete() -> Any:
                play.done = True
                return self.store.processes.complete_with_lease(play.lease, Success({"events": play.events}))

            return Op("processes.complete_with_lease", complete)
        play.events += 1
        request = AppendEventRequest("tool.progress", {"message": f"step {play.events}", "pad": "z" * rng.randint(0, 500)},
                                     f"{play.process_id}:{play.events}")
        return Op("processes.append_event", lambda: self.store.processes.append_event(play.process_id, request))

    def _input(self) -> Op:
        play = self._session()
        self.inputs += 1
        ingress = ActiveTurn(f"turn-{play.revision}") if self.rng.random() < 0.5 else NextTurn()
        draft = TurnInputDraft(play.session_id, {"text": f"input {self.inputs}"}, ingress,
                               source_key=f"{self.prefix}:in:{self.inputs}")
        return Op("inputs.enqueue", lambda: self.store.inputs.enqueue(draft))

    def _trigger(self) -> Op:
        rng = self.rng
        if self.triggers == 0 or rng.random() < 0.3:
            self.triggers += 1
            key = f"{self.prefix}-t{self.triggers}"
            definition = TriggerDefinition("webhook", f"{self.prefix}:push", "run-ci", {"n": self.triggers})
            command = RegisterSubscription("host", key, definition)
            return Op("triggers.execute", lambda: self.store.triggers.execute(f"{key}:register", command))
        self.occurrences += 1
        request = OccurrenceRequest("webhook", f"{self.prefix}:push", f"{self.prefix}:occ:{self.occurrences}",
                                    {"sha": hashlib.sha1(str(self.occurrences).encode()).hexdigest()})
        return Op("triggers.ingest", lambda: self.store.triggers.ingest(request))

    def _raw(self) -> Op:
        count = self.rng.randint(1, 5)
        op = self.op_counter
        events = [raw_event(op, i, count, self.rng) for i in range(count)]
        stream = RAW_STREAM_PREFIX + self.prefix
        expected = self.raw_version

        def run() -> Any:
            result = self.store.append(stream, events, expected_version=expected)
            self.raw_version = result.stream_version
            return result

        return Op("log.append", run, raw_events=count)

    # --- refusals ----------------------------------------------------------------------

    def observe(self, op: Op, error: BaseException) -> None:
        """A command was refused with a typed error: forget the state it relied on."""
        name = type(error).__name__
        if name in ("SessionExecutionLeaseExpired", "QueuedWorkClaimSuperseded", "HeadRevisionConflict"):
            for s in self.sessions:
                if name == "HeadRevisionConflict" and getattr(error, "session_id", None) == s.session_id:
                    s.revision = error.actual
                if name == "SessionExecutionLeaseExpired" and getattr(error, "session_id", None) == s.session_id:
                    s.fence, s.queue_claim = None, None
                if name == "QueuedWorkClaimSuperseded" and getattr(error, "session_id", None) == s.session_id:
                    s.queue_claim = None
        if name == "ProcessLeaseExpired":
            for p in self.processes:
                p.lease = None
        if name == "WrongExpectedVersion":
            self.raw_version = error.actual
