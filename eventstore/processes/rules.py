"""The pure rules of the process registry: validation, hashing, selectors, and the
decision of what an event append records.

Nothing here reads a clock, the database or the filesystem: callers pass `now_ms`
and the current record, and get back either a typed error or the event to append.

* Registrations get the core lifecycle event types added, are validated field by field
  (errors name the field), and are hashed as canonical JSON (sorted keys, compact).
* Payloads are JSON values, checked against the declared `PayloadSchema`; the payload
  hash is sha256 of the canonical JSON of `[event_type, payload]`.
* Selectors read values out of a payload (JSON pointers, constants, templates) to
  materialise wakes and terminal outputs at append time.
"""

from __future__ import annotations

import math
from typing import Any, cast

import attrs

from ..checks import canonical_json, sha256_hex
from ..errors import InvalidArgument
from .errors import (
    InvalidProcessEvent,
    InvalidRegistration,
    ProcessAlreadyTerminal,
    ReplayKeyRequired,
)
from .events import MaterializedWake, ProcessEventAppended, TerminalOutcome, WakeDelivery
from .model import (
    INPUT_CLASSES,
    OUTPUT_STATUS,
    SELECTOR_CLASSES,
    Abandoned,
    AbandonEvidence,
    AbandonWriter,
    Cancelled,
    Const,
    ConstDedupe,
    Disposition,
    EngineInput,
    EventIdentityDedupe,
    EventTypeSpec,
    Failure,
    HostScope,
    PayloadSchema,
    PayloadValue,
    Pointer,
    Present,
    ProcessRecord,
    ProcessRegistration,
    ProcessStatus,
    Provenance,
    SelectorDedupe,
    SessionScope,
    Success,
    Template,
    TerminalSpec,
    ToolCallInput,
    WakeSpec,
    json_form,
    output_from_json,
)

MAX_ID_BYTES = 256
MAX_NAME_CHARS = 200
MAX_KEY_CHARS = 1024
MAX_JSON_DEPTH = 64
CANCEL_REQUESTED = "process.cancel_requested"
SCHEMA_TYPES = ("any", "object", "string", "number", "integer", "boolean", "array", "null")

TERMINAL_TYPES: dict[ProcessStatus, str] = {
    ProcessStatus.COMPLETED: "process.completed",
    ProcessStatus.FAILED: "process.failed",
    ProcessStatus.CANCELLED: "process.cancelled",
    ProcessStatus.ABANDONED: "process.abandoned",
}
"""The core terminal event type of each final status."""

CORE_EVENT_TYPES: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(CANCEL_REQUESTED),
    EventTypeSpec("process.waiting"),
    EventTypeSpec("process.resumed"),
    *(EventTypeSpec(name, terminal=TerminalSpec(status, Pointer("/await_output")))
      for status, name in TERMINAL_TYPES.items()),
)
"""Added to every registration that does not declare them itself."""


@attrs.frozen
class AppendEventRequest:
    """A process event to append.

    `replay_key` makes the append idempotent (required for terminal events and cancel
    requests); `wake_target` overrides the registration's default wake target.
    """

    event_type: str
    payload: Any = None
    replay_key: str | None = None
    wake_target: SessionScope | None = None


# --- JSON ----------------------------------------------------------------------------------


def json_problem(value: Any, path: str = "", depth: int = 0, allow_bytes: bool = False) -> str | None:
    """Why `value` is not a JSON value (naming the path inside it), or None when it is.

    With `allow_bytes`, byte strings are accepted too (a msgpack value, as segment
    handovers carry)."""
    where = path or "/"
    if depth > MAX_JSON_DEPTH:
        return f"{where}: nested deeper than {MAX_JSON_DEPTH} levels"
    cls = value.__class__
    if value is None or cls is bool or cls is str or (allow_bytes and cls is bytes):
        return None
    if cls is int:
        return None if -(2 ** 63) <= value < 2 ** 64 else f"{where}: integer {value} does not fit in 64 bits"
    if cls is float:
        return None if math.isfinite(value) else f"{where}: {value} is not a finite number"
    if cls is list or cls is tuple:
        for i, item in enumerate(value):
            problem = json_problem(item, f"{path}/{i}", depth + 1, allow_bytes)
            if problem:
                return problem
        return None
    if cls is dict:
        for k, item in value.items():
            if k.__class__ is not str:
                return f"{where}: object key {k!r} is not a string"
            problem = json_problem(item, f"{path}/{k}", depth + 1, allow_bytes)
            if problem:
                return problem
        return None
    return f"{where}: {type(value).__name__} is not a JSON value" + (" or bytes" if allow_bytes else "")


def payload_hash(event_type: str, payload: Any) -> str:
    """sha256 of the canonical JSON of `[event_type, payload]`."""
    return sha256_hex(canonical_json([event_type, payload]))


def to_text(value: Any) -> str:
    """A selected value as text: strings as they are, anything else as canonical JSON."""
    return value if isinstance(value, str) else canonical_json(value)


def truthy(value: Any) -> bool:
    """JSON truthiness: null, false, "" , [] and {} are false; numbers are true."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return True


# --- registration ------------------------------------------------------------------------------


def prepare_registration(reg: Any) -> tuple[ProcessRegistration, str]:
    """Add the core event types, validate, and hash. Returns (registration, hash)."""
    if not isinstance(reg, ProcessRegistration):
        raise InvalidRegistration("?", "registration", f"expected a ProcessRegistration, got {type(reg).__name__}")
    pid = reg.id
    if not isinstance(pid, str) or not pid.strip():
        raise InvalidRegistration(pid, "id", "must be a non-empty string")
    if "#" in pid or "\x00" in pid or len(pid.encode()) > MAX_ID_BYTES:
        raise InvalidRegistration(pid, "id", f"must not contain '#' or NUL and be at most {MAX_ID_BYTES} bytes")

    def fail(field: str, problem: str) -> InvalidRegistration:
        return InvalidRegistration(pid, field, problem)

    if not isinstance(reg.disposition, Disposition):
        raise fail("disposition", "required: one of " + ", ".join(d.value for d in Disposition)
                   + f" (there is no default), got {reg.disposition!r}")
    _check_input(reg, fail)
    _check_provenance(reg.provenance, fail)
    _check_json(reg.identity, "identity", fail)
    if reg.wake_target is not None:
        _check_scope(reg.wake_target, "wake_target", fail, sessions_only=True)
    types = reg.event_types
    if isinstance(types, (str, bytes)) or not isinstance(types, (list, tuple)):
        raise fail("event_types", f"must be a tuple of EventTypeSpec, got {type(types).__name__}")
    seen: set[str] = set()
    core = {t.name: t for t in CORE_EVENT_TYPES}
    for i, spec in enumerate(types):
        _check_event_type(spec, f"event_types[{i}]", fail)
        if spec.name in seen:
            raise fail(f"event_types[{i}].name", f"duplicate event type {spec.name!r}")
        seen.add(spec.name)
        base = core.get(spec.name)
        if base is not None:
            # complete() and the await helpers rely on the core types' terminal meaning.
            base_state = base.terminal.state if base.terminal else None
            spec_state = spec.terminal.state if spec.terminal else None
            if base_state is not spec_state:
                raise fail(f"event_types[{i}].terminal",
                           f"core event type {spec.name!r} must keep its core terminal semantics")
    prepared = attrs.evolve(reg, event_types=tuple(types) + tuple(t for t in CORE_EVENT_TYPES if t.name not in seen))
    return prepared, registration_hash(prepared)


def registration_hash(reg: ProcessRegistration) -> str:
    """sha256 of the registration's canonical JSON."""
    return sha256_hex(canonical_json(json_form(reg)))


def _check_json(value: Any, field: str, fail: Any) -> None:
    problem = json_problem(value)
    if problem:
        raise fail(field, f"not a JSON value at {problem}")


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_input(reg: ProcessRegistration, fail: Any) -> None:
    inp = reg.input
    if not isinstance(inp, INPUT_CLASSES):
        raise fail("input", "must be ToolCallInput, EngineInput, SessionTurnInput or ExternalInput, "
                   f"got {type(inp).__name__}")
    if isinstance(inp, ToolCallInput):
        if not _nonempty(inp.tool):
            raise fail("input.tool", "must be a non-empty string")
        if not isinstance(inp.call_id, str):
            raise fail("input.call_id", "must be a string")
    if isinstance(inp, EngineInput) and not _nonempty(inp.kind):
        raise fail("input.kind", "must be a non-empty string")
    for f in attrs.fields(type(inp)):
        _check_json(getattr(inp, f.name), f"input.{f.name}", fail)
    needs_env = isinstance(inp, (ToolCallInput, EngineInput))
    if needs_env and not _nonempty(reg.env_ref):
        raise fail("env_ref", f"is required for {inp.KIND} inputs (a non-empty string)")
    if not needs_env and reg.env_ref is not None:
        raise fail("env_ref", f"is not allowed for {inp.KIND} inputs")


def _check_scope(scope: Any, field: str, fail: Any, sessions_only: bool = False) -> None:
    allowed = (SessionScope,) if sessions_only else (SessionScope, HostScope)
    if not isinstance(scope, allowed):
        names = " or ".join(c.__name__ for c in allowed)
        raise fail(field, f"must be a {names}, got {type(scope).__name__}")
    if isinstance(scope, SessionScope):
        if not _nonempty(scope.session_id):
            raise fail(f"{field}.session_id", "must be a non-empty string")
        if scope.frame_id is not None and not _nonempty(scope.frame_id):
            raise fail(f"{field}.frame_id", "must be None or a non-empty string")
    elif scope.name is not None and not _nonempty(scope.name):
        raise fail(f"{field}.name", "must be None or a non-empty string")


def check_scope(scope: Any, what: str) -> SessionScope | HostScope:
    """Validate a grant scope argument (SessionScope or HostScope), naming `what`."""

    def fail(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"{field}: {problem}")

    _check_scope(scope, what, fail)
    return cast("SessionScope | HostScope", scope)


def _check_provenance(prov: Any, fail: Any) -> None:
    if not isinstance(prov, Provenance):
        raise fail("provenance", f"must be a Provenance, got {type(prov).__name__}")
    _check_scope(prov.originator, "provenance.originator", fail)
    if prov.caused_by is not None and not isinstance(prov.caused_by, str):
        raise fail("provenance.caused_by", "must be None or a string")


def _check_selector(sel: Any, field: str, fail: Any) -> None:
    if not isinstance(sel, SELECTOR_CLASSES):
        raise fail(field, f"must be a selector (PayloadValue, Pointer, Present, Const, Template), "
                   f"got {type(sel).__name__}")
    if isinstance(sel, (Pointer, Present)):
        if not isinstance(sel.path, str) or (sel.path and not sel.path.startswith("/")):
            raise fail(f"{field}.path", f"must be a JSON pointer ('' or starting with '/'), got {sel.path!r}")
    elif isinstance(sel, Const):
        _check_json(sel.value, f"{field}.value", fail)
    elif isinstance(sel, Template):
        if not isinstance(sel.template, str):
            raise fail(f"{field}.template", "must be a string")
        if not isinstance(sel.fields, dict):
            raise fail(f"{field}.fields", "must be a dict of name -> selector")
        for name, sub in sel.fields.items():
            if not isinstance(name, str):
                raise fail(f"{field}.fields", f"field name {name!r} is not a string")
            _check_selector(sub, f"{field}.fields[{name!r}]", fail)


def _check_schema(schema: Any, field: str, fail: Any) -> None:
    if not isinstance(schema, PayloadSchema):
        raise fail(field, f"must be a PayloadSchema, got {type(schema).__name__}")
    if schema.type not in SCHEMA_TYPES:
        raise fail(f"{field}.type", f"must be one of {', '.join(SCHEMA_TYPES)}, got {schema.type!r}")
    if not isinstance(schema.required, (tuple, list)) or not all(isinstance(r, str) for r in schema.required):
        raise fail(f"{field}.required", "must be a tuple of field names")
    if not isinstance(schema.properties, dict):
        raise fail(f"{field}.properties", "must be a dict of field name -> PayloadSchema")
    for name, sub in schema.properties.items():
        if not isinstance(name, str):
            raise fail(f"{field}.properties", f"field name {name!r} is not a string")
        _check_schema(sub, f"{field}.properties[{name!r}]", fail)
    if schema.items is not None:
        _check_schema(schema.items, f"{field}.items", fail)


def _check_event_type(spec: Any, field: str, fail: Any) -> None:
    if not isinstance(spec, EventTypeSpec):
        raise fail(field, f"must be an EventTypeSpec, got {type(spec).__name__}")
    if not _nonempty(spec.name) or len(spec.name) > MAX_NAME_CHARS:
        raise fail(f"{field}.name", f"must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    _check_schema(spec.payload_schema, f"{field}.payload_schema", fail)
    term = spec.terminal
    if term is not None:
        if not isinstance(term, TerminalSpec):
            raise fail(f"{field}.terminal", f"must be a TerminalSpec, got {type(term).__name__}")
        if not isinstance(term.state, ProcessStatus) or not term.state.is_terminal:
            raise fail(f"{field}.terminal.state", f"must be a terminal ProcessStatus, got {term.state!r}")
        if term.await_output is None:
            if term.state is not ProcessStatus.COMPLETED:
                raise fail(f"{field}.terminal.await_output",
                           f"a {term.state.value} terminal event must declare an await-output selector")
        else:
            _check_selector(term.await_output, f"{field}.terminal.await_output", fail)
    wake = spec.wake
    if wake is not None:
        if not isinstance(wake, WakeSpec):
            raise fail(f"{field}.wake", f"must be a WakeSpec, got {type(wake).__name__}")
        _check_selector(wake.input, f"{field}.wake.input", fail)
        if wake.when is not None:
            _check_selector(wake.when, f"{field}.wake.when", fail)
        dk = wake.dedupe_key
        if isinstance(dk, SelectorDedupe):
            _check_selector(dk.selector, f"{field}.wake.dedupe_key.selector", fail)
        elif isinstance(dk, ConstDedupe):
            if not isinstance(dk.value, str):
                raise fail(f"{field}.wake.dedupe_key.value", "must be a string")
        elif not isinstance(dk, EventIdentityDedupe):
            raise fail(f"{field}.wake.dedupe_key", "must be EventIdentityDedupe, SelectorDedupe or ConstDedupe")


# --- payloads and selectors ------------------------------------------------------------------


def schema_problem(schema: PayloadSchema, value: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, problem) when `value` does not fit `schema`, else None."""
    t = schema.type
    cls = value.__class__
    ok = {
        "any": True,
        "object": cls is dict,
        "string": cls is str,
        "number": cls is int or cls is float,
        "integer": cls is int,
        "boolean": cls is bool,
        "array": cls is list or cls is tuple,
        "null": value is None,
    }[t]
    if not ok:
        return (path or "/", f"expected {t}, got {_json_type(value)}")
    if cls is dict:
        for name in schema.required:
            if name not in value:
                return (f"{path}/{name}", "required field is missing")
        for name, sub in schema.properties.items():
            if name in value:
                problem = schema_problem(sub, value[name], f"{path}/{name}")
                if problem:
                    return problem
    if (cls is list or cls is tuple) and schema.items is not None:
        for i, item in enumerate(value):
            problem = schema_problem(schema.items, item, f"{path}/{i}")
            if problem:
                return problem
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            tuple: "array", dict: "object"}.get(value.__class__, type(value).__name__)


class SelectorMiss(Exception):
    """Internal: a JSON pointer matched nothing (turned into InvalidProcessEvent)."""


_MISSING = object()


def pointer_get(doc: Any, path: str) -> Any:
    """The value at a JSON pointer, or `_MISSING`."""
    if path == "":
        return doc
    for raw in path[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            if token not in doc:
                return _MISSING
            doc = doc[token]
        elif isinstance(doc, (list, tuple)):
            if not token.isdigit() or (token != "0" and token.startswith("0")) or int(token) >= len(doc):
                return _MISSING
            doc = doc[int(token)]
        else:
            return _MISSING
    return doc


def select(payload: Any, sel: Any) -> Any:
    """Evaluate a selector against a payload; SelectorMiss when a pointer matches nothing."""
    if isinstance(sel, PayloadValue):
        return payload
    if isinstance(sel, Pointer):
        value = pointer_get(payload, sel.path)
        if value is _MISSING:
            raise SelectorMiss(f"payload pointer {sel.path!r} matched nothing")
        return value
    if isinstance(sel, Present):
        return pointer_get(payload, sel.path) is not _MISSING
    if isinstance(sel, Const):
        return sel.value
    text = sel.template
    for name in sorted(sel.fields):
        text = text.replace("{" + name + "}", to_text(select(payload, sel.fields[name])))
    return text


def materialize_terminal(spec: TerminalSpec, payload: Any, now_ms: int) -> TerminalOutcome:
    """The final status and await output a terminal event records."""
    if spec.await_output is None:
        return TerminalOutcome(spec.state, Success(payload))
    selected = select(payload, spec.await_output)
    parsed = output_from_json(selected)
    if parsed is None or OUTPUT_STATUS[type(parsed)] is not spec.state:
        if spec.state is ProcessStatus.COMPLETED:
            parsed = Success(selected)
        elif spec.state is ProcessStatus.FAILED:
            parsed = Failure("execution", "process_failed", to_text(selected), selected)
        elif spec.state is ProcessStatus.CANCELLED:
            parsed = Cancelled(to_text(selected), selected)
        else:
            parsed = Abandoned(AbandonEvidence(AbandonWriter.OWNER_DRAIN, None, now_ms))
    return TerminalOutcome(spec.state, parsed)


def materialize_wake(spec: WakeSpec, process_id: str, sequence: int, payload: Any) -> MaterializedWake | None:
    """The wake an event carries, or None when its `when` selector is falsy."""
    if spec.when is not None and not truthy(select(payload, spec.when)):
        return None
    text = to_text(select(payload, spec.input))
    dk = spec.dedupe_key
    if isinstance(dk, SelectorDedupe):
        key = to_text(select(payload, dk.selector))
    elif isinstance(dk, ConstDedupe):
        key = dk.value
    else:
        key = f"{process_id}:{sequence}"
    return MaterializedWake(text, key)


def wake_id(target_scope_id: str, dedupe_key: str) -> str:
    """The deterministic id of a wake: `"wake:" + sha256([scope id, dedupe key])`."""
    return "wake:" + sha256_hex(canonical_json([target_scope_id, dedupe_key]))


# --- the append decision -----------------------------------------------------------------------


def check_request(process_id: str, request: Any) -> AppendEventRequest:
    """Validate the shape of an append request (before any lookup)."""
    if not isinstance(request, AppendEventRequest):
        raise InvalidProcessEvent(process_id, "?", f"expected an AppendEventRequest, got {type(request).__name__}")
    et = request.event_type
    if not isinstance(et, str) or not et:
        raise InvalidProcessEvent(process_id, et, "event_type must be a non-empty string", "event_type")
    key = request.replay_key
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS):
        raise InvalidProcessEvent(process_id, et, f"replay_key must be None or a non-empty string of at most "
                                  f"{MAX_KEY_CHARS} characters", "replay_key")
    if request.wake_target is not None:
        def fail(field: str, problem: str) -> InvalidProcessEvent:
            return InvalidProcessEvent(process_id, et, f"{field}: {problem}", field)

        _check_scope(request.wake_target, "wake_target", fail, sessions_only=True)
    problem = json_problem(request.payload)
    if problem:
        raise InvalidProcessEvent(process_id, et, f"payload is not a JSON value at {problem}", "payload")
    return request


def decide_append(record: ProcessRecord, request: AppendEventRequest, now_ms: int) -> ProcessEventAppended:
    """The event a (non-replayed) append records, or a typed error. Pure.

    Checks, in order: the type is declared; terminal events and cancel requests carry a
    replay key (law 77); the payload fits the schema; the selectors match; a terminal
    event needs a running process. Then materialises the terminal output and the wake,
    and the delivery when a target exists (the request's, else the record's).
    """
    pid = record.process_id
    et = request.event_type
    spec = next((t for t in record.registration.event_types if t.name == et), None)
    if spec is None:
        raise InvalidProcessEvent(pid, et, "event type is not declared by the registration", "event_type")
    if (spec.terminal is not None or et == CANCEL_REQUESTED) and not request.replay_key:
        raise ReplayKeyRequired(pid, et, "terminal events and cancel requests need a deterministic replay key",
                                "replay_key")
    problem = schema_problem(spec.payload_schema, request.payload)
    if problem:
        raise InvalidProcessEvent(pid, et, f"payload field {problem[0]}: {problem[1]}", problem[0])
    sequence = record.last_sequence + 1
    try:
        terminal = None if spec.terminal is None else materialize_terminal(spec.terminal, request.payload, now_ms)
        wake = None if spec.wake is None else materialize_wake(spec.wake, pid, sequence, request.payload)
    except SelectorMiss as exc:
        raise InvalidProcessEvent(pid, et, str(exc), "payload") from None
    if terminal is not None and record.is_terminal:
        raise ProcessAlreadyTerminal(pid, record.status.value, f"terminal event {et!r}")
    delivery = None
    target = request.wake_target or record.wake_target
    if wake is not None and target is not None:
        delivery = WakeDelivery(wake_id(target.scope_id, wake.dedupe_key), target.session_id, target.scope_id,
                                pid, sequence, et, wake.dedupe_key, wake.input, now_ms)
    return ProcessEventAppended(pid, sequence, et, request.payload, payload_hash(et, request.payload),
                                request.replay_key, now_ms, terminal, wake, delivery)
