"""Process registry value types: registrations, scopes, event-type specs,
await outputs, completion authorities and the record a reader gets back.

Everything here is a plain attrs value (no I/O, no clock), so that the event module,
the projection and the facade can all share it. Registrations and process-event
payloads carry JSON values (`Any` fields): they are hashed as canonical JSON, so the
same request always produces the same registration hash and payload hash.

Variant classes (inputs, selectors, await outputs, authorities) carry a `KIND` tag:
their JSON form is `{"type": KIND, ...fields}`, which is what hashes and payloads
use, so renaming a Python class never changes a stored hash.
"""

from __future__ import annotations

import enum
from typing import Any, cast, ClassVar

import attrs

from ..leases.owners import LeaseOwner

__all__ = [
    "AbandonEvidence", "AbandonRequest", "AbandonWriter", "Abandoned", "AwaitOutput", "Cancelled",
    "CompletionAuthority", "Const", "ConstDedupe", "DedupeKey", "Disposition", "EngineInput",
    "EventIdentityDedupe", "EventTypeSpec", "ExternalInput", "ExternalOwner", "ExternalRef", "Failure",
    "FirstStart", "GrantEntry", "HandleDescriptor", "HandleGrant", "HostScope", "INPUT_CLASSES", "OUTPUT_STATUS",
    "PayloadSchema", "PayloadValue", "Pointer", "Present", "ProcessInput", "ProcessRecord", "ProcessRegistration",
    "ProcessStatus", "Provenance", "ReconciledAbandon", "SELECTOR_CLASSES", "Scope", "Selector", "SelectorDedupe",
    "SessionScope", "SessionTurnInput", "Success", "Template", "TerminalSpec", "ToolCallInput", "WaitState",
    "WakeSpec", "WorkflowKey", "authority_to_json", "json_form", "output_from_json", "output_to_json",
]
"""Every value type and helper; `eventstore.processes` exports them all."""

# --- scopes ------------------------------------------------------------------------


@attrs.frozen
class SessionScope:
    """A session, or one agent frame inside it: scope id `session:<id>[/frame:<f>]`."""

    KIND: ClassVar[str] = "session"
    session_id: str
    frame_id: str | None = None

    @property
    def scope_id(self) -> str:
        """The scope id grants and wakes are keyed by."""
        if self.frame_id:
            return f"session:{self.session_id}/frame:{self.frame_id}"
        return f"session:{self.session_id}"


@attrs.frozen
class HostScope:
    """The host, or a named scope on it: scope id `host` or `host:<name>`."""

    KIND: ClassVar[str] = "host"
    name: str | None = None

    @property
    def scope_id(self) -> str:
        """The scope id grants are keyed by."""
        return f"host:{self.name}" if self.name else "host"

    @property
    def session_id(self) -> None:
        """Host scopes belong to no session."""
        return None


Scope = SessionScope | HostScope


# --- registration ------------------------------------------------------------------


class Disposition(enum.Enum):
    """What recovery may do with a process. There is no default: every registration says."""

    RERUNNABLE = "rerunnable"
    """May be executed again from the start."""
    OWNER_BOUND = "owner_bound"
    """Claimable until first started; after that only abandonment."""
    EXTERNALLY_OWNED = "externally_owned"
    """Run by someone else; this store never runs it."""


@attrs.frozen
class ToolCallInput:
    """A tool call to execute (needs an env_ref)."""

    KIND: ClassVar[str] = "tool_call"
    tool: str
    call_id: str
    arguments: Any = None


@attrs.frozen
class EngineInput:
    """Work for a named engine (needs an env_ref)."""

    KIND: ClassVar[str] = "engine"
    kind: str
    payload: Any = None


@attrs.frozen
class SessionTurnInput:
    """A turn in a child session (no env_ref)."""

    KIND: ClassVar[str] = "session_turn"
    create_request: Any
    turn_input: Any
    output_contract: Any = None


@attrs.frozen
class ExternalInput:
    """Something running elsewhere, tracked here (no env_ref)."""

    KIND: ClassVar[str] = "external"
    metadata: Any = None


ProcessInput = ToolCallInput | EngineInput | SessionTurnInput | ExternalInput
INPUT_CLASSES = (ToolCallInput, EngineInput, SessionTurnInput, ExternalInput)


@attrs.frozen
class Provenance:
    """Who started the process (the host or a session scope) and, optionally, what caused it."""

    originator: HostScope | SessionScope
    caused_by: str | None = None


class ProcessStatus(enum.Enum):
    """A process is running until exactly one terminal event moves it to a final status."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"

    @property
    def is_terminal(self) -> bool:
        """Every status but RUNNING is final."""
        return self is not ProcessStatus.RUNNING


@attrs.frozen
class PayloadSchema:
    """A small JSON schema for process-event payloads.

    `type` is one of any, object, string, number, integer, boolean, array, null. For
    objects, `required` names fields that must be present and `properties` gives the
    schema of fields (when present); for arrays, `items` gives the element schema.
    """

    type: str = "any"
    required: tuple[str, ...] = ()
    properties: dict[str, PayloadSchema] = attrs.field(factory=dict)
    items: PayloadSchema | None = None


# Value selectors: how a wake input, a wake condition, a dedupe key or an await output
# is taken from an event's payload. Evaluated by the appending command, never by appliers.


@attrs.frozen
class PayloadValue:
    """The whole payload."""

    KIND: ClassVar[str] = "payload"


@attrs.frozen
class Pointer:
    """The value at a JSON pointer (RFC 6901) such as `/result/text`; missing is an error."""

    KIND: ClassVar[str] = "pointer"
    path: str


@attrs.frozen
class Present:
    """True when the JSON pointer exists in the payload, else False."""

    KIND: ClassVar[str] = "present"
    path: str


@attrs.frozen
class Const:
    """A constant JSON value."""

    KIND: ClassVar[str] = "const"
    value: Any


@attrs.frozen
class Template:
    """A string with `{name}` placeholders filled from other selectors."""

    KIND: ClassVar[str] = "template"
    template: str
    fields: dict[str, PayloadValue | Pointer | Present | Const | Template] = attrs.field(factory=dict)


Selector = PayloadValue | Pointer | Present | Const | Template
SELECTOR_CLASSES = (PayloadValue, Pointer, Present, Const, Template)


@attrs.frozen
class EventIdentityDedupe:
    """Dedupe key `<process id>:<sequence>`: every event wakes once."""

    KIND: ClassVar[str] = "event_identity"


@attrs.frozen
class SelectorDedupe:
    """Dedupe key taken from the payload: events with the same key wake once."""

    KIND: ClassVar[str] = "selector"
    selector: PayloadValue | Pointer | Present | Const | Template


@attrs.frozen
class ConstDedupe:
    """A constant dedupe key: the process wakes its target once, ever."""

    KIND: ClassVar[str] = "const"
    value: str


DedupeKey = EventIdentityDedupe | SelectorDedupe | ConstDedupe


@attrs.frozen
class TerminalSpec:
    """The event ends the process with `state`; `await_output` selects the output
    (required for every state but COMPLETED, whose default is the whole payload)."""

    state: ProcessStatus
    await_output: PayloadValue | Pointer | Present | Const | Template | None = None


@attrs.frozen
class WakeSpec:
    """The event wakes the target session when `when` is truthy (always, when None)."""

    input: PayloadValue | Pointer | Present | Const | Template
    when: PayloadValue | Pointer | Present | Const | Template | None = None
    dedupe_key: EventIdentityDedupe | SelectorDedupe | ConstDedupe = EventIdentityDedupe()


@attrs.frozen
class EventTypeSpec:
    """A process-event type a registration declares: name, payload schema, semantics."""

    name: str
    payload_schema: PayloadSchema = PayloadSchema()
    terminal: TerminalSpec | None = None
    wake: WakeSpec | None = None


@attrs.frozen
class ProcessRegistration:
    """Everything needed to start or recover a process. Hashed as canonical JSON.

    `disposition` has no default. `env_ref` is required for tool calls and engine
    inputs and forbidden for session turns and external inputs. The core lifecycle
    event types are added on registration (see `CORE_EVENT_TYPES`).
    """

    id: str
    input: ToolCallInput | EngineInput | SessionTurnInput | ExternalInput
    disposition: Disposition
    provenance: Provenance
    event_types: tuple[EventTypeSpec, ...] = ()
    identity: Any = None
    """The caller's identity metadata for the process (a JSON value; part of the hash)."""
    env_ref: str | None = None
    wake_target: SessionScope | None = None


# --- await outputs and completion authorities ------------------------------------------


@attrs.frozen
class Success:
    """The process completed with a value."""

    KIND: ClassVar[str] = "success"
    value: Any = None


@attrs.frozen
class Failure:
    """The process failed."""

    KIND: ClassVar[str] = "failure"
    failure_class: str
    code: str
    message: str
    raw: Any = None


@attrs.frozen
class Cancelled:
    """The process was cancelled."""

    KIND: ClassVar[str] = "cancelled"
    message: str
    raw: Any = None


class AbandonWriter(enum.Enum):
    """Who wrote an abandonment."""

    OWNER_DRAIN = "owner_drain"
    SWEEP = "sweep"
    RECONCILED_REQUEST = "reconciled_request"


@attrs.frozen
class AbandonEvidence:
    """Why a process was abandoned, by whom, and when (epoch ms)."""

    writer: AbandonWriter
    owner: str | None = None
    epoch_ms: int = 0


@attrs.frozen
class Abandoned:
    """The process was abandoned, with evidence."""

    KIND: ClassVar[str] = "abandoned"
    evidence: AbandonEvidence


AwaitOutput = Success | Failure | Cancelled | Abandoned
OUTPUT_STATUS: dict[type, ProcessStatus] = {
    Success: ProcessStatus.COMPLETED,
    Failure: ProcessStatus.FAILED,
    Cancelled: ProcessStatus.CANCELLED,
    Abandoned: ProcessStatus.ABANDONED,
}


@attrs.frozen
class ExternalOwner:
    """Completion by the external owner of an EXTERNALLY_OWNED process."""

    KIND: ClassVar[str] = "external_owner"
    granted_to: str


@attrs.frozen
class WorkflowKey:
    """Completion by the workflow that ran a RERUNNABLE or OWNER_BOUND process."""

    KIND: ClassVar[str] = "workflow_key"
    workflow_key: str


@attrs.frozen
class ReconciledAbandon:
    """Abandonment of an EXTERNALLY_OWNED process after reconciliation (Abandoned only)."""

    KIND: ClassVar[str] = "reconciled_abandon"


CompletionAuthority = ExternalOwner | WorkflowKey | ReconciledAbandon


# --- row values ------------------------------------------------------------------------


@attrs.frozen
class ExternalRef:
    """Where the process runs outside this store (a job id in some backend)."""

    backend: str
    id: str
    metadata: Any = None


@attrs.frozen
class FirstStart:
    """The first start of a process: who started it and when. Written once."""

    owner_id: str
    started_at_ms: int
    """The caller's start time (the store's clock when the caller gave none)."""
    owner: LeaseOwner | None = None
    """The whole starting owner (id, incarnation, liveness); None when only an id was given
    (and in records written before it was kept)."""


@attrs.frozen
class AbandonRequest:
    """A request to abandon a process: who asked, why, and when. Written once."""

    requested_by: str
    reason: str | None
    requested_at_ms: int
    """The caller's request time (the store's clock when the caller gave none)."""


@attrs.frozen
class WaitState:
    """What a running process waits for (a signal, a timer, a child); cleared by a terminal event."""

    kind: str
    detail: Any = None
    since_ms: int | None = None
    """When the wait began; the command fills it in from its clock when None."""


@attrs.frozen
class HandleDescriptor:
    """What a grant shows its holder about the process handle."""

    kind: str | None = None
    label: str | None = None


@attrs.frozen
class HandleGrant:
    """A process handle granted to a scope."""

    scope_id: str
    process_id: str
    session_id: str | None
    descriptor: HandleDescriptor
    granted_at_ms: int


@attrs.frozen
class ProcessRecord:
    """A process as the registry projection holds it."""

    process_id: str
    registration: ProcessRegistration
    registration_hash: str
    status: ProcessStatus
    await_output: Success | Failure | Cancelled | Abandoned | None
    created_at_ms: int
    updated_at_ms: int
    change_seq: int
    """Log position of the event that last changed this record (the change-feed clock)."""
    last_sequence: int
    """The sequence of the newest process event (0 before the first)."""
    external_ref: ExternalRef | None = None
    first_started: FirstStart | None = None
    abandon_request: AbandonRequest | None = None
    wait: WaitState | None = None
    wake_target: SessionScope | None = None
    """The default wake target (from the registration, cleared when its session's state is deleted)."""

    @property
    def is_terminal(self) -> bool:
        """True once a terminal event was recorded."""
        return self.status.is_terminal

    @property
    def disposition(self) -> Disposition:
        """The registration's recovery disposition."""
        return self.registration.disposition

    @property
    def owner_scope_id(self) -> str:
        """The originator's scope id: `host`, `host:<s>`, `session:<id>` or `session:<id>/frame:<f>`."""
        return self.registration.provenance.originator.scope_id


@attrs.frozen
class GrantEntry:
    """A grant together with the record of the process it points at."""

    grant: HandleGrant
    record: ProcessRecord


# --- JSON form ---------------------------------------------------------------------------


def json_form(value: Any) -> Any:
    """The JSON form of a value: attrs classes become maps (tagged `type` for variants),
    enums their value, tuples lists. Used for hashing and for process-event payloads."""
    cls = type(value)
    if attrs.has(cls):
        out: dict[str, Any] = {}
        kind = getattr(cls, "KIND", None)
        if kind is not None:
            out["type"] = kind
        for f in attrs.fields(cls):
            out[f.name] = json_form(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [json_form(v) for v in value]
    if isinstance(value, dict):
        return {k: json_form(v) for k, v in value.items()}
    return value


def output_to_json(output: AwaitOutput) -> dict[str, Any]:
    """An await output as a JSON map (`{"type": "success", "value": ...}` and so on)."""
    return cast("dict[Any, Any]", json_form(output))


def output_from_json(value: Any) -> AwaitOutput | None:
    """Parse a JSON map written by `output_to_json`; None when it is not one."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    try:
        if kind == "success" and set(value) <= {"type", "value"}:
            return Success(value.get("value"))
        if kind == "failure" and set(value) <= {"type", "failure_class", "code", "message", "raw"}:
            fc, code, msg = value.get("failure_class"), value.get("code"), value.get("message")
            if isinstance(fc, str) and isinstance(code, str) and isinstance(msg, str):
                return Failure(fc, code, msg, value.get("raw"))
        if kind == "cancelled" and set(value) <= {"type", "message", "raw"} and isinstance(value.get("message"), str):
            return Cancelled(value["message"], value.get("raw"))
        if kind == "abandoned" and set(value) <= {"type", "evidence"}:
            ev = value.get("evidence")
            if isinstance(ev, dict) and set(ev) <= {"writer", "owner", "epoch_ms"}:
                owner, epoch = ev.get("owner"), ev.get("epoch_ms", 0)
                if (owner is None or isinstance(owner, str)) and type(epoch) is int:
                    return Abandoned(AbandonEvidence(AbandonWriter(ev.get("writer")), owner, epoch))
    except ValueError:
        return None
    return None


def authority_to_json(authority: CompletionAuthority) -> dict[str, Any]:
    """A completion authority as recorded in the terminal event's payload."""
    out = json_form(authority)
    out["authority"] = out.pop("type")
    return cast("dict[Any, Any]", out)

