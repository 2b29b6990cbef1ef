"""The domain chapters of `eventstore demo`: sessions and leases, queued work and turn inputs,
processes, triggers and the effect journal. Each uses only the domains' public APIs."""

from __future__ import annotations

from typing import Any, Callable

from ..effects import EffectMismatch
from ..errors import StoreError
from ..inputs import ActiveTurn, CheckpointKind, TurnInputDraft
from ..leases import Acquired, Busy, LeaseOwner, LeaseTimings, LocalProcessLiveness, this_process
from ..processes import (
    AppendEventRequest, Disposition, EventTypeSpec, HandleDescriptor, PayloadSchema, Pointer, Present,
    ProcessRegistration, Provenance, SessionScope, Success, ToolCallInput, WakeSpec,
)
from ..processes import Busy as ProcessLeaseBusy
from ..queue import DAY_MS, AgentFrameTask, ProcessWake, QueuedWorkDraft, RefreshToolCatalog, SlotPolicy
from ..sessions import SessionMeta
from ..triggers import (
    OccurrenceRequest, PruneSubscriptions, RegisterSubscription, SubscriptionRevisionConflict,
    TriggerDefinition, UpdateSubscription,
)
from ..store import Store
from . import Say, chapter, demo_id, suggest


@chapter(20, "sessions and execution leases")
def _leases_chapter(store: Any, say: Callable[[str], None]) -> None:
    sid = f"triage-{demo_id()}"
    store.sessions.create(sid, SessionMeta(name="incident triage", model="demo-model", cwd="/srv/agent"))
    say(f"created session {sid!r}: {len(store.sessions.list())} session(s) in the store")
    worker = this_process("worker-a")
    timings = LeaseTimings(ttl_ms=30_000, renew_every_ms=10_000)
    got = store.leases.claim(sid, worker, timings)
    assert isinstance(got, Acquired)
    assert isinstance(worker.liveness, LocalProcessLiveness)  # this_process() gives a local one
    say(f"worker-a (pid {worker.liveness.pid}) acquired the lease: fencing token "
        f"{got.lease.fencing_token}, expires in {timings.ttl_ms // 1000}s")
    lease = store.leases.renew(got.lease.fence, timings)
    say(f"worker-a renewed it: still fencing token {lease.fencing_token}, expiring "
        f"{round((lease.expires_at_ms - store.now_ms()) / 1000)}s from now")
    intruder = LeaseOwner("worker-b", demo_id(32))
    bounced = store.leases.claim(sid, intruder, timings)
    assert isinstance(bounced, Busy)
    say(f"worker-b tried to claim it: Busy, held by {bounced.holder.owner.owner_id!r} "
        f"with fencing token {bounced.holder.fencing_token}")
    released = store.leases.release(lease.fence)
    say(f"worker-a released it (released={released.released}); the fencing token stays at "
        f"{released.fencing_token}, so the next holder gets {released.fencing_token + 1}")
    if store.path != ":memory:":
        _crashed_owner(store, sid, timings, say)


def _crashed_owner(store: Any, sid: str, timings: LeaseTimings, say: Callable[[str], None]) -> None:
    """Demo: a worker process takes the lease and dies without releasing it; the lease is
    still live (unexpired), and a reclaim proves the holder dead from /proc and takes over."""
    import subprocess
    import sys

    child = (
        "import sys, eventstore\n"
        "from eventstore.leases import this_process\n"
        "s = eventstore.open(sys.argv[1])\n"
        "s.leases.claim(sys.argv[2], this_process('worker-c'), 30_000)\n"
        "s.close()\n"
    )
    # The child exits without releasing: as far as the lease is concerned it crashed.
    subprocess.run([sys.executable, "-c", child, store.path, sid], check=True, timeout=60)
    holder = store.leases.get(sid).holder
    say(f"worker-c (pid {holder.owner.liveness.pid}) claimed the lease and crashed; the lease is still "
        f"live for {round((holder.expires_at_ms - store.now_ms()) / 1000)}s")
    rescuer = this_process("worker-d")
    plain = store.leases.claim(sid, rescuer, timings)
    say(f"worker-d's plain claim: {type(plain).__name__} (a live lease is never just taken)")
    taken = store.leases.reclaim(sid, rescuer, holder, timings)
    assert isinstance(taken, Acquired)
    say(f"worker-d reclaimed it: /proc shows pid {holder.owner.liveness.pid} is gone, so the holder is "
        f"provably dead; fencing token {taken.lease.fencing_token} fences off anything worker-c had in flight")
    store.leases.release(taken.lease.fence)


@chapter(30, "queued work and turn inputs")
def _queue_chapter(store: Any, say: Callable[[str], None]) -> None:
    sid = f"support-{demo_id()}"
    store.sessions.create(sid)
    suggest(f"eventstore queue {{db}} --session {sid}")
    suggest(f"eventstore inputs {{db}} --session {sid}")
    wake = ProcessWake("proc-build-42", 7, "wake:build-42:7", "process.completed")
    first = store.queue.enqueue(QueuedWorkDraft.for_wake(sid, wake))
    again = store.queue.enqueue(QueuedWorkDraft.for_wake(sid, wake))
    say(f"a build process woke session {sid!r}; the wake was delivered twice and queued once "
        f"(created={first.created}, then created={again.created}, same batch {first.batch.batch_id[:16]}…)")
    for text in ("summarise the build log", "draft the release note"):
        store.queue.enqueue(QueuedWorkDraft(sid, (AgentFrameTask("frame-main", text),)))
    store.queue.enqueue(QueuedWorkDraft(sid, (RefreshToolCatalog("new deploy tool"),),
                                        slot_policy=SlotPolicy.EXCLUSIVE))
    typed = store.inputs.enqueue(TurnInputDraft(sid, {"text": "also mention the flaky test"},
                                                ActiveTurn("turn-1"), source_key="ui:msg-1"))
    say(f"queued {len(store.queue.list(sid))} batches (3 turn work that may join, 1 session command) and "
        f"the user typed an input for the running turn ({typed.input.input_id[:16]}…)")
    lease = store.leases.claim(sid, this_process("runtime"), 30_000).lease
    got = store.queue.claim_checkpoint(lease.fence, "turn-1", CheckpointKind.AFTER_WORK, max_batches=8)
    say(f"at the turn's checkpoint one transaction claimed {len(got.inputs.inputs)} input and "
        f"{len(got.queue.batches)} joined batches under lease generation {got.queue.generation} "
        f"(claim {got.queue.claim_id})")
    store.queue.complete(got.queue)
    store.inputs.complete(got.inputs)
    cmd = store.queue.claim_session_command(lease.fence)
    store.queue.complete(cmd)
    say(f"completed them, then the session command alone ({cmd.claim_id}); the queue is now "
        f"{len(store.queue.list(sid))} batches long")
    replay = store.queue.enqueue(QueuedWorkDraft.for_wake(sid, wake))
    say(f"a late redelivery of the same wake is recognised: disposition {replay.disposition!r}, nothing queued "
        f"(source keys of settled work are kept {store.queue.completed_source_key_retention_ms // DAY_MS} days)")
    store.leases.release(lease.fence)
    say(f"inspect it: eventstore queue {store.path} --session {sid}; "
        f"eventstore inputs {store.path} --session {sid}")



@chapter(50, "processes")
def _processes_chapter(store: Any, say: Say) -> None:
    """A tool-call process: registered, granted, leased, emitting a wake, completed under its lease."""
    procs = store.processes
    pid = "demo-tool-call-1"
    session = SessionScope("demo-session")
    progress = EventTypeSpec("tool.progress", PayloadSchema("object", ("message",)),
                             wake=WakeSpec(Pointer("/message"), when=Present("/notify")))
    reg = ProcessRegistration(pid, ToolCallInput("run_tests", "call-1", {"target": "tests/"}), Disposition.RERUNNABLE,
                              Provenance(session), (progress,), env_ref="env:python-3.11", wake_target=session)
    record = procs.register(reg)
    say(f"registered process {pid!r} ({record.registration.input.KIND}, {record.disposition.value}), "
        f"registration hash {record.registration_hash[:12]}…")
    if record.is_terminal:
        say(f"already {record.status.value} from an earlier run: {record.await_output}")
        return
    procs.grant(session, pid, HandleDescriptor("tool", "run_tests"))
    owner = this_process("demo-worker")
    outcome = procs.claim_lease(pid, owner, LeaseTimings().ttl_ms)
    if isinstance(outcome, ProcessLeaseBusy):
        say(f"lease busy (held by {outcome.holder.owner.owner_id}); leaving the process running")
        return
    lease = outcome.lease
    say(f"claimed the process lease: fence {lease.fencing_token}")
    procs.record_first_started(pid, owner)
    procs.append_event(pid, AppendEventRequest("tool.progress", {"message": "collected 120 tests"}, "progress-1"))
    woke = procs.append_event(pid, AppendEventRequest("tool.progress", {"message": "3 tests failed", "notify": True},
                                                      "progress-2"))
    d = woke.wake_delivery
    say(f"event {woke.event.sequence} woke session {d.target_session_id!r}: {d.input!r} ({d.wake_id[:17]}…)")
    done = procs.complete_with_lease(lease, Success({"passed": 117, "failed": 3}))
    say(f"completed under the lease: {done.status.value}, output {procs.wait_for(pid, timeout_s=1)}")
    page = procs.changes_since(0)
    say(f"change feed: {len(page.records)} changed process(es), resume from cursor {page.next_cursor}")


@chapter(58, "triggers")
def _triggers_chapter(store: Any, say: Say) -> None:
    t = store.triggers
    d = TriggerDefinition("webhook", "incident:opened", "triage-incident", {"priority": "high"})
    first = t.execute("demo-op-register-triage", RegisterSubscription("host", "triage", d))
    again = t.execute("demo-op-register-triage-again", RegisterSubscription("host", "triage", d))
    say(f"registered subscription {first.subscription_id} (revision {first.revision}); "
        f"registering the same definition again: {again.outcome}")
    t.execute("demo-op-register-session", RegisterSubscription("session:demo", "notify", d))
    got = t.ingest(OccurrenceRequest("webhook", "incident:opened", "incident-103", {"id": "INC-103"}))
    replay = t.ingest(OccurrenceRequest("webhook", "incident:opened", "incident-103", {"id": "INC-103"}))
    say(f"occurrence incident-103 reserved {len(got.deliveries)} deliveries "
        f"(processes {', '.join(x.process_id for x in got.deliveries)}); a retry: {replay.status}")
    sub = t.get("host", "triage")
    try:
        t.execute("demo-op-stale-update", UpdateSubscription("host", "triage", sub.revision + 5, d))
    except SubscriptionRevisionConflict as exc:
        say(f"a stale update is refused: {exc}")
    pruned = t.execute("demo-op-prune", PruneSubscriptions("session:demo", ("notify", "never-registered")))
    other = t.execute("demo-op-prune", PruneSubscriptions("session:other", ("notify",)))
    say(f"prune by name in session:demo tombstoned {[x.subscription_key for x in pruned.tombstoned]}; "
        f"the same operation id in session:other is its own operation ({other.outcome}, "
        f"replayed={other.replayed})")


@chapter(60, "effect replay journal")
def _effects_chapter(store: Store, say: Say) -> None:
    fx = store.effects
    scope = f"demo-agent-run-{demo_id()}"
    calls = {"model": 0, "weather": 0}

    @fx.journaled(scope=scope, key="model:{turn}")
    def model(turn: int, prompt: str) -> dict[str, Any]:
        calls["model"] += 1  # a simulated model: counts how often it is really called
        if turn == 1:
            return {"text": "I will check the weather in Lyon first.", "tool": "weather", "city": "Lyon",
                    "usage": {"input": 42, "output": 11}}
        return {"text": "Rain is likely: take the picnic indoors.", "usage": {"input": 77, "output": 9}}

    @fx.journaled(scope=scope, key="tool:weather:{city}")
    def weather(city: str) -> dict[str, Any]:
        calls["weather"] += 1
        return {"city": city, "forecast": "rain", "high_c": 14}

    def run_agent() -> list[Any]:
        plan = model(1, "Plan a picnic in Lyon tomorrow.")
        forecast = weather(plan["city"])
        fx.sleep(scope, "rate-limit-pause", 20)
        answer = model(2, f"Forecast for {forecast['city']}: {forecast['forecast']}, high {forecast['high_c']}C.")
        return [plan, forecast, answer]

    first = run_agent()
    recorded = dict(calls)
    say(f"journaled run {scope!r}: {recorded['model']} model calls, {recorded['weather']} tool call, 1 sleep; "
        f"answer: {first[-1]['text']!r}")
    with fx.strict_replay():
        again = run_agent()
    if again != first or calls != recorded:
        raise StoreError(f"demo: strict replay diverged (calls {calls} != {recorded})")
    say(f"strict replay of the whole run: identical results, simulated functions called "
        f"{calls['model'] - recorded['model']} + {calls['weather'] - recorded['weather']} more times")
    try:
        with fx.strict_replay():
            model(1, "Plan a picnic in Paris tomorrow.")
    except EffectMismatch as exc:
        say(f"a diverging replay is caught: {exc}")
    token = fx.await_token(scope, "approval")
    fx.resolve(token, {"approved": True, "by": "ops-lead"})
    late = fx.resolve(token, {"approved": False})
    say(f"awaited approval resolved by HMAC token; a second resolution lost (won={late.won}), "
        f"await_event returns {fx.await_event(scope, 'approval')}")
