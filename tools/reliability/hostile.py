"""Hostile arguments: every public method of every facade, called with one bad argument.

The facade classes are found generically, from `eventstore.facades.FACADES` (so a new
command is covered the day it is registered) and their signatures. For each parameter of
each method, a *world* (a store in which every domain has some state: a session with a
lease, queued work and a claim, turn inputs and a claim, a process with a lease, a
trigger and an occurrence, an effect lease and an await token, an attachment) supplies
valid values for the other parameters, and the parameter gets, in turn:

* `wrong type`: an object of a private class (never JSON, never msgpack), and for
  scalar parameters a value of another scalar type (a number for a string, a string
  for a number, a string for a bool);
* `missing`: None for a parameter that is not optional;
* `oversized`: a 100,000-character identifier, a 17 MiB text (over the payload limit),
  a 70-bit integer;
* `not UTF-8`: an identifier holding a lone surrogate ("a\\ud800"), which no UTF-8
  encoder accepts.

Expected: a typed error (a StoreError subclass) whose message names the parameter
(wrong type and missing; for oversized any typed error), and the log unchanged
(`store.anchor()` equal before and after). Omitting a positional argument entirely
is Python's own TypeError, raised before any store code runs; it is not counted here.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import traceback
from typing import Any, Callable, Iterator

import attrs

import eventstore
from eventstore.facades import FACADES

SKIP = {
    ("effects", "journaled"): "a decorator factory: its arguments are checked when the decorated function is called",
    ("effects", "strict_replay"): "a context manager without arguments",
    ("effects", "configure"): "keyword options only; checked by hand-written cases",
}
"""Methods the generic sweep leaves out, and why (hand-written cases cover what matters)."""

OVERSIZED_TEXT = 17 * 1024 * 1024
LONE_SURROGATE_LABEL = "not UTF-8 (a lone surrogate)"
IDENTIFIER_WORDS = ("id", "key", "scope", "token", "name", "kind", "type", "stream", "ref")


class Alien:
    """A value of a class no store code knows: never JSON, never msgpack."""

    def __repr__(self) -> str:
        return "<Alien>"


@attrs.frozen
class Case:
    """One call with one bad argument."""

    facade: str
    method: str
    param: str
    label: str
    value: Any
    must_name: bool


@attrs.frozen
class Outcome:
    """What one call did: its error type (None: it returned), whether it was typed and
    named the parameter, whether the log stayed unchanged, and whether the bad value
    itself reached the log."""

    case: Case
    error: str | None
    typed: bool
    named: bool
    unchanged: bool
    message: str = ""
    stored_oversized: bool = False

    @property
    def ok(self) -> bool:
        """Wrong type or missing: typed, naming the parameter, nothing written. Oversized:
        never an untyped error and never stored; a lookup that simply finds nothing (or a
        command that goes on without storing the value) is a correct answer."""
        if self.case.label.startswith("oversized"):
            return (self.error is None or self.typed) and not self.stored_oversized
        return self.typed and self.unchanged and (self.named or not self.case.must_name)


# --- the world ---------------------------------------------------------------------------------


class World:
    """A store in which every facade has state to point at (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        self.store = eventstore.open(path, clock=self.clock, synchronous="normal")
        self.values: dict[str, Any] = {}

    def build(self) -> None:
        """Create the state every baseline argument refers to."""
        from eventstore.commits import RuntimeCommit, EventPayload, GraphAppend, SessionNode
        from eventstore.inputs import ActiveTurn, CheckpointKind, TurnInputDraft
        from eventstore.leases import LeaseOwner, LeaseTimings
        from eventstore.processes import (
            AppendEventRequest, Disposition, EventTypeSpec, ExternalInput, PayloadSchema,
            ProcessRegistration, Provenance, SessionScope,
        )
        from eventstore.queue import AgentFrameTask, QueuedWorkDraft
        from eventstore.sessions import SessionMeta
        from eventstore.triggers import OccurrenceRequest, RegisterSubscription, TriggerDefinition

        s = self.store
        v = self.values
        owner = LeaseOwner("runtime-a", "inc-1")
        v["owner"] = owner
        v["timings"] = LeaseTimings(30_000, 10_000)
        s.sessions.create("s1", SessionMeta(name="one"))
        s.sessions.create("s2")
        fence = s.leases.claim("s1", owner, 600_000).lease.fence
        v["fence"] = fence
        v["observed"] = s.leases.get("s1").holder
        s.sessions.commit(RuntimeCommit("s1", fence, GraphAppend((SessionNode("n1", EventPayload({"t": 1})),), "n1")))
        for i in range(3):
            s.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask(f"f{i}", {"i": i}),)))
        claim = s.queue.claim_ready(fence, max_batches=1)
        v["queue_claim"] = claim
        v["batch_id"] = claim.batch_ids[0]
        v["draft"] = QueuedWorkDraft("s1", (AgentFrameTask("f9", "new"),))
        inp = s.inputs.enqueue(TurnInputDraft("s1", {"text": "hi"}, ActiveTurn("turn-1"), source_key="ui:1")).input
        s.inputs.enqueue(TurnInputDraft("s1", {"text": "later"}, ActiveTurn("turn-1")))
        v["input_id"] = inp.input_id
        v["input_claim"] = s.inputs.claim_active(fence, "turn-1", CheckpointKind.AFTER_WORK, max_inputs=1)
        v["input_draft"] = TurnInputDraft("s1", {"text": "x"})
        progress = EventTypeSpec("tool.progress", PayloadSchema("object", ("message",)))
        reg = ProcessRegistration("p1", ExternalInput({"ci": 1}), Disposition.EXTERNALLY_OWNED,
                                  Provenance(SessionScope("s1")), (progress,))
        s.processes.register(reg)
        v["registration"] = ProcessRegistration("p2", ExternalInput({"ci": 2}), Disposition.EXTERNALLY_OWNED,
                                                Provenance(SessionScope("s1")), (progress,))
        v["process_lease"] = s.processes.claim_lease("p1", owner, 600_000).lease
        v["append_request"] = AppendEventRequest("tool.progress", {"message": "m"}, "rk-1")
        s.processes.append_event("p1", v["append_request"])
        v["append_request"] = AppendEventRequest("tool.progress", {"message": "m2"}, "rk-2")
        definition = TriggerDefinition("webhook", "github:push", "run-ci", {"b": "main"})
        v["trigger_command"] = RegisterSubscription("host", "ci", definition)
        result = s.triggers.execute("op-1", v["trigger_command"])
        v["subscription_id"] = result.subscription_id
        v["occurrence"] = OccurrenceRequest("webhook", "github:push", "occ-1", {"sha": "a"})
        got = s.triggers.ingest(v["occurrence"])
        v["occurrence_id"] = got.deliveries[0].occurrence_id if got.deliveries else "occ-1"
        v["occurrence"] = OccurrenceRequest("webhook", "github:push", "occ-2", {"sha": "b"})
        fx = s.effects
        fx.configure(owner=owner, timings=v["timings"], wait_timeout_s=0.05, poll_interval_s=0.01)
        v["effect_lease"] = fx.begin("fx", "k1", {"q": 1}, owner=owner).lease
        v["await_token"] = fx.await_token("fx", "approval", session_id="s1")
        v["blob_ref"] = s.blobs.put(b"attachment bytes")
        s.attachments.record_intent("s1", "att-1", v["blob_ref"])

    def close(self) -> None:
        """Close the store."""
        self.store.close()


def baseline(world: World, facade: str, method: str, param: str) -> Any:
    """A valid value for `param` of `facade.method` in `world` (KeyError when unknown)."""
    from eventstore.commits import RuntimeCommit, EventPayload, GraphAppend, SessionNode
    from eventstore.inputs import CheckpointKind
    from eventstore.processes import (
        ExternalRef, ExternalOwner, HandleDescriptor, PruneFilter, SessionScope, Success, WaitState,
    )
    from eventstore.queue import ClaimBoundary
    from eventstore.sessions import SessionMeta

    v = world.values
    specific: dict[tuple[str, str], Callable[[], Any]] = {
        ("sessions", "commit"): lambda: RuntimeCommit("s1", v["fence"], GraphAppend(
            (SessionNode("n2", EventPayload({"t": 2}), "n1"),), "n2")),
        ("sessions", "meta"): lambda: SessionMeta(name="three"),
        ("sessions", "session_id"): lambda: "s3" if method == "create" else "s1",
        ("sessions", "status"): lambda: "active",
        ("sessions", "graph"): lambda: "full",
        ("sessions", "node_ids"): lambda: ("n1",),
        ("leases", "session_id"): lambda: "s1",
        ("leases", "fence"): lambda: v["fence"],
        ("leases", "lease"): lambda: v["observed"],
        ("queue", "claim"): lambda: v["queue_claim"],
        ("queue", "claims"): lambda: [v["queue_claim"]],
        ("queue", "completion"): lambda: v["queue_claim"].completion(),
        ("queue", "draft"): lambda: v["draft"],
        ("queue", "batch_ids"): lambda: [v["batch_id"]],
        ("queue", "boundary"): lambda: ClaimBoundary.IDLE,
        ("queue", "checkpoint"): lambda: CheckpointKind.AFTER_WORK,
        ("queue", "source_key"): lambda: "src-1",
        ("inputs", "claim"): lambda: v["input_claim"],
        ("inputs", "completion"): lambda: v["input_claim"].completion(),
        ("inputs", "draft"): lambda: v["input_draft"],
        ("inputs", "checkpoint"): lambda: CheckpointKind.AFTER_WORK,
        ("inputs", "targets"): lambda: [v["input_id"]],
        ("inputs", "source_key"): lambda: "ui:1",
        ("inputs", "anchor"): lambda: v["input_id"],
        ("processes", "process_id"): lambda: "p1",
        ("processes", "registration"): lambda: v["registration"],
        ("processes", "request"): lambda: v["append_request"],
        ("processes", "lease"): lambda: v["process_lease"],
        ("processes", "observed"): lambda: v["process_lease"],
        ("processes", "scope"): lambda: SessionScope("s1"),
        ("processes", "from_scope"): lambda: SessionScope("s1"),
        ("processes", "to_scope"): lambda: SessionScope("s2"),
        ("processes", "process_ids"): lambda: ["p1"],
        ("processes", "descriptor"): lambda: HandleDescriptor("ci", "label"),
        ("processes", "external_ref"): lambda: ExternalRef("ci", "job-1", {}),
        ("processes", "wait"): lambda: WaitState("approval", "waiting"),
        ("processes", "output"): lambda: Success({"ok": True}),
        ("processes", "authority"): lambda: ExternalOwner("ci-bot"),
        ("processes", "filter"): lambda: PruneFilter(),
        ("processes", "deliver"): lambda: (lambda delivery: None),
        ("processes", "read_start"): lambda: (lambda pid: None),
        ("processes", "status"): lambda: None,
        ("processes", "sequence"): lambda: 1,
        ("processes", "owner_id"): lambda: "worker-1",
        ("processes", "requested_by"): lambda: "operator",
        ("processes", "segment_ordinal"): lambda: 0,
        ("processes", "payload"): lambda: {"state": b"x"},
        ("processes", "event_type"): lambda: None,
        ("triggers", "command"): lambda: v["trigger_command"],
        ("triggers", "request"): lambda: v["occurrence"],
        ("triggers", "operation_id"): lambda: "op-2",
        ("triggers", "owner_scope"): lambda: "host",
        ("triggers", "subscription_key"): lambda: "ci",
        ("triggers", "subscription_id"): lambda: v["subscription_id"],
        ("triggers", "occurrence_id"): lambda: v["occurrence_id"],
        ("triggers", "idempotency_key"): lambda: "occ-1",
        ("effects", "scope"): lambda: "fx",
        ("effects", "replay_key"): lambda: {"begin": "k2", "call": "k2", "sleep": "k2", "await_token": "k2",
                                            "await_event": "approval"}.get(method, "k1"),
        ("effects", "request"): lambda: {"q": 2},
        ("effects", "fn"): lambda: (lambda: {"done": True}),
        ("effects", "lease"): lambda: v["effect_lease"],
        ("effects", "outcome"): lambda: {"hits": 1},
        ("effects", "error_type"): lambda: "ValueError",
        ("effects", "message"): lambda: "boom",
        ("effects", "token"): lambda: v["await_token"],
        ("effects", "payload"): lambda: {"approved": True},
        ("effects", "session_id"): lambda: "s1",
        ("effects", "duration_ms"): lambda: 10,
        ("effects", "timeout_s"): lambda: 0.01,
        ("effects", "kind"): lambda: "call",
        ("effects", "reason"): lambda: "revoked",
        ("effects", "status"): lambda: None,
        ("attachments", "attachment_id"): lambda: "att-2" if method == "record_intent" else "att-1",
        ("attachments", "attachment_ids"): lambda: ["att-1"],
        ("attachments", "blob_ref"): lambda: v["blob_ref"],
        ("attachments", "owner"): lambda: None,
        ("attachments", "cutoff_ms"): lambda: 0,
        ("attachments", "data"): lambda: b"attached bytes",
        ("attachments", "media_type"): lambda: "text/plain",
        ("attachments", "label"): lambda: "notes.txt",
        ("attachments", "min_age_ms"): lambda: 0,
        ("artifacts", "namespace"): lambda: "lashlang_module",
        ("artifacts", "name"): lambda: "mod-1",
        ("artifacts", "blob_ref"): lambda: v["blob_ref"],
    }
    generic: dict[str, Callable[[], Any]] = {
        "session_id": lambda: "s1",
        "owner": lambda: v["owner"],
        "ttl_ms": lambda: 30_000,
        "observed": lambda: v["observed"],
        "fence": lambda: v["fence"],
        "turn_id": lambda: "turn-1",
        "input_id": lambda: v["input_id"],
        "batch_id": lambda: v["batch_id"],
        "max_batches": lambda: 2,
        "max_inputs": lambda: 2,
        "limit": lambda: 10,
        "now_ms": lambda: None,
        "after_sequence": lambda: 0,
        "cursor": lambda: 0,
        "before_ms": lambda: 0,
        "up_to_change_seq": lambda: None,
        "dry_run": lambda: True,
        "live_only": lambda: False,
        "after_id": lambda: None,
        "waiting": lambda: None,
        "timeout_s": lambda: 0.01,
        "poll_interval_s": lambda: 0.005,
        "include_deleted": lambda: True,
        "reason": lambda: None,
        "recreate": lambda: False,
        "leaf": lambda: None,
        "at": lambda: None,
        "node_id": lambda: "n1",
        "graph": lambda: "full",
    }
    key = (facade, param)
    if key in specific:
        return specific[key]()
    return generic[param]()


GUESSED: set[str] = set()
"""facade.method(param) whose valid value was guessed from the annotation (no baseline yet)."""


def guess(facade: str, method: str, param: inspect.Parameter, annotation: str) -> Any:
    """A plausible valid value for a parameter nobody wrote a baseline for (noted in GUESSED)."""
    GUESSED.add(f"{facade}.{method}({param.name})")
    if param.default is not inspect.Parameter.empty:
        return param.default
    parts = set(annotation.replace(" ", "").split("|"))
    if "None" in parts:
        return None
    if "str" in parts:
        return "x"
    if "int" in parts:
        return 0
    if "bool" in parts:
        return False
    return None


def _annotation(fn: Any, param: inspect.Parameter) -> str:
    ann = param.annotation
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def hostile_values(param: inspect.Parameter, annotation: str) -> Iterator[tuple[str, Any, bool]]:
    """(label, value, must the error name the parameter) for one parameter."""
    a = annotation.replace(" ", "")
    parts = set(a.split("|"))
    optional = "None" in parts or param.default is None
    yield "wrong type (an unknown object)", Alien(), True
    if parts & {"str"} and not parts & {"Any", "int"}:
        yield "wrong type (a number for a string)", 12345, True
        yield "wrong type (bytes for a string)", b"bytes", True
    if parts & {"int"} and not parts & {"Any", "str"}:
        yield "wrong type (a string for an integer)", "12", True
        yield "wrong type (a float for an integer)", 1.5, True
    if parts & {"float"} and not parts & {"Any"}:
        yield "wrong type (a string for a number)", "1.5", True
    if a == "bool":
        yield "wrong type (a string for a bool)", "yes", True
    if not optional and "Any" not in parts:  # None is a valid JSON value for an Any parameter
        yield "missing (None)", None, True
    if parts & {"str"} and not parts & {"Any"}:
        if any(param.name == w or param.name.endswith("_" + w) for w in IDENTIFIER_WORDS):
            yield "oversized (a 100,000-character identifier)", "x" * 100_000, True
        yield "oversized (17 MiB of text)", "x" * OVERSIZED_TEXT, False
        if any(param.name == w or param.name.endswith("_" + w) for w in IDENTIFIER_WORDS):
            yield LONE_SURROGATE_LABEL, "a\ud800", True
    if parts & {"Any"} and param.name not in ("fn", "deliver", "read_start"):
        yield "oversized (17 MiB of text)", "x" * OVERSIZED_TEXT, False
    if parts & {"int"} and not parts & {"Any", "str"}:
        yield "oversized (a 70-bit integer)", 2 ** 70, False


def methods() -> Iterator[tuple[str, str, Any]]:
    """(facade name, method name, function) for every public method of every facade."""
    from eventstore.store import load_domains

    load_domains()
    for name in sorted(FACADES):
        cls = FACADES[name]
        for mname, fn in sorted(inspect.getmembers(cls, inspect.isfunction)):
            if mname.startswith("_") or (name, mname) in SKIP:
                continue
            yield name, mname, fn


def cases(world: World) -> Iterator[tuple[Case, dict[str, Any]]]:
    """Every generic case, with the valid arguments for the other parameters."""
    for facade, mname, fn in methods():
        params = [p for p in list(inspect.signature(fn).parameters.values())[1:]
                  if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
        valid = {}
        for p in params:
            try:
                valid[p.name] = baseline(world, facade, mname, p.name)
            except KeyError:
                valid[p.name] = guess(facade, mname, p, _annotation(fn, p))
        for p in params:
            for label, value, must_name in hostile_values(p, _annotation(fn, p)):
                yield Case(facade, mname, p.name, label, value, must_name), {**valid, p.name: value}


def call(world: World, case: Case, kwargs: dict[str, Any]) -> Outcome:
    """Make the call and judge it."""
    facade = getattr(world.store, case.facade)
    fn = getattr(facade, case.method)
    sig = inspect.signature(fn)
    args, kw = [], {}
    for p in sig.parameters.values():
        if p.name not in kwargs:
            continue
        if p.kind == inspect.Parameter.KEYWORD_ONLY:
            kw[p.name] = kwargs[p.name]
        else:
            args.append(kwargs[p.name])
    before = world.store.anchor()
    error, typed, message = None, False, ""
    try:
        result = fn(*args, **kw)
        if inspect.isgenerator(result):
            list(result)
    except eventstore.StoreError as exc:
        error, typed, message = type(exc).__name__, True, str(exc)
    except Exception as exc:  # an untyped error is a finding
        error, message = type(exc).__name__, "".join(traceback.format_exception_only(type(exc), exc)).strip()
    after = world.store.anchor()
    low = message.lower()
    named = any(n in low for n in {case.param.lower(), case.param.replace("_", " ").lower()})
    stored = after != before and case.label.startswith("oversized") and _stores_oversized(world.store, before.position)
    return Outcome(case, error, typed, named, before == after, message[:300], stored)


def _stores_oversized(store: eventstore.Store, after_position: int) -> bool:
    """True when an event after `after_position` carries a string or bytes of 100,000+ items."""
    def big(value: Any) -> bool:
        if isinstance(value, (str, bytes)):
            return len(value) >= 100_000
        if isinstance(value, dict):
            return any(big(k) or big(x) for k, x in value.items())
        if isinstance(value, (list, tuple)):
            return any(big(x) for x in value)
        return False

    return any(big(ev.stream) or big(ev.data) for ev in store.read_all(after_position + 1, raw=True))


def run_all(workdir: str, progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Run every case; the world is rebuilt from a pristine copy whenever a case wrote."""
    pristine = os.path.join(workdir, "pristine.db")
    live = os.path.join(workdir, "world.db")
    world = World(pristine)
    world.build()
    values = world.values  # plain attrs data (fences, claims, leases): valid in every copy
    world.close()
    out = []

    def fresh() -> World:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(live + suffix):
                os.unlink(live + suffix)
        shutil.copyfile(pristine, live)
        w = World(live)
        w.values = values
        w.store.effects.configure(owner=values["owner"], timings=values["timings"], wait_timeout_s=0.05,
                                  poll_interval_s=0.01)
        return w

    world = fresh()
    try:
        for case, kwargs in list(cases(world)):
            outcome = call(world, case, kwargs)
            out.append(outcome)
            if progress:
                progress(len(out))
            if not outcome.unchanged:
                world.close()
                world = fresh()
    finally:
        world.close()
    return out


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts for the result table."""
    bad = [o for o in outcomes if not o.ok]
    return {
        "cases": len(outcomes),
        "methods": len({(o.case.facade, o.case.method) for o in outcomes}),
        "untyped": sum(1 for o in bad if o.error is not None and not o.typed),
        "accepted": sum(1 for o in bad if o.error is None),
        "unnamed": sum(1 for o in bad if o.typed and o.case.must_name and not o.named),
        "written": sum(1 for o in bad if not o.unchanged),
        "bad": bad,
    }


def describe(o: Outcome) -> str:
    """One line per finding."""
    c = o.case
    what = "returned normally" if o.error is None else f"{o.error}: {o.message}"
    flags = []
    if o.stored_oversized:
        flags.append("OVERSIZED VALUE STORED")
    elif not o.unchanged:
        flags.append("LOG CHANGED")
    if o.typed and c.must_name and not o.named:
        flags.append("message does not name the argument")
    if o.error is not None and not o.typed:
        flags.append("UNTYPED")
    return f"{c.facade}.{c.method}({c.param}={c.label}): {what} [{', '.join(flags) or 'accepted'}]"


def main() -> None:
    """Print every finding (a maintainer's tool: `python -m reliability.hostile` from tools/)."""
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = run_all(tmp)
    s = summary(outcomes)
    for o in s["bad"]:
        print(describe(o))
    print({k: v for k, v in s.items() if k != "bad"}, len(s["bad"]), "findings")


if __name__ == "__main__":
    main()
