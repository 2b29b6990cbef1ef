"""Event classes of the queued-work domain, recorded on the session's stream `session:<id>`.

The queue table is a projection of these events: a batch exists from its
`queue.batch_enqueued` event until a `queue.batch_cancelled` or `queue.completed`
event removes it, and is claimed by the `queue.claimed` event that names it last
(until a `queue.claim_abandoned` event clears that claim). Every id, sequence number,
token and time a projection needs is in an event, decided by the command that wrote
it, so a replay rebuilds the same rows.

The value types a draft is made of (policies, merge keys, payloads) live here too,
because the events carry them. This module imports only the log core and the owner
types (projections import it).
"""

from __future__ import annotations

import enum
import re
from typing import Any, ClassVar

import attrs

from ..events import event
from ..leases.owners import LeaseOwner


class DeliveryPolicy(enum.Enum):
    """When a batch may be delivered to a turn."""

    EARLIEST_SAFE_BOUNDARY = "earliest_safe_boundary"
    """At the next safe point: an active turn's checkpoint or the idle loop."""
    AFTER_CURRENT_TURN_COMMIT = "after_current_turn_commit"
    """Only once the running turn has committed (claimable at Idle, never at a checkpoint)."""


class SlotPolicy(enum.Enum):
    """Whether a batch may share a claim with its neighbours."""

    JOIN = "join"
    """May be claimed together with adjacent Join batches of the same delivery policy and merge key."""
    EXCLUSIVE = "exclusive"
    """Always claimed alone."""


class WorkClass(enum.Enum):
    """The class every payload of one batch shares."""

    TURN_WORK = "turn_work"
    """Process wakes and agent-frame tasks: work that a turn consumes."""
    SESSION_COMMAND = "session_command"
    """Session commands (refresh the tool catalogue, reset the session): applied one batch at a time."""


class ClaimBoundary(enum.Enum):
    """Where the runtime is when it claims turn work."""

    IDLE = "idle"
    """Between turns: any ready turn work may be claimed."""
    ACTIVE_TURN_CHECKPOINT = "active_turn_checkpoint"
    """Inside a running turn: only work whose head is EARLIEST_SAFE_BOUNDARY may be claimed."""


@attrs.frozen
class MergeKey:
    """Which Join batches may share a claim: `MergeKey.NEVER`, `MergeKey.PAYLOAD_DEFAULT`
    or `MergeKey.group(name)`.

    Two adjacent Join batches join when their merge keys are equal, except NEVER, which
    never joins anything (the reference compares NEVER by equality, so two NEVER batches
    would join there; a key named "never" that joins is a trap, so we do not).
    """

    kind: str
    """"never", "payload_default" or "group"."""
    name: str | None = None
    """The group name (only for kind "group")."""

    KINDS: ClassVar[tuple[str, ...]] = ("never", "payload_default", "group")
    NEVER: ClassVar["MergeKey"]
    PAYLOAD_DEFAULT: ClassVar["MergeKey"]

    @classmethod
    def group(cls, name: str) -> "MergeKey":
        """A named merge group: Join batches of the same group may share a claim."""
        return cls("group", name)

    @property
    def wire(self) -> str:
        """The stable text form stored in the projection: `never`, `payload_default`, `group:<name>`."""
        return f"group:{self.name}" if self.kind == "group" else self.kind

    @classmethod
    def from_wire(cls, text: str) -> "MergeKey":
        """Parse the text form written by `wire`."""
        if text.startswith("group:"):
            return cls("group", text[6:])
        return cls(text)

    def joins(self, other: "MergeKey") -> bool:
        """True when a Join batch with this key may share a claim with one keyed `other`."""
        return self.kind != "never" and self == other


MergeKey.NEVER = MergeKey("never")
MergeKey.PAYLOAD_DEFAULT = MergeKey("payload_default")


# --- payloads --------------------------------------------------------------------------


@attrs.frozen
class ProcessWake:
    """Turn work: a process event woke this session (delivered by the process registry).

    `target_scope_id` and `input` come from the registry's `WakeDelivery`: the scope the
    wake is aimed at (`session:<id>` or `session:<id>/frame:<f>`) and the wake's input
    text. Both default to "" so wakes enqueued before they existed still decode.
    """

    process_id: str
    sequence: int
    """The waking event's sequence number in the process's event log."""
    wake_id: str
    event_type: str = ""
    target_scope_id: str = ""
    """`session:<id>` (the whole session) or `session:<id>/frame:<f>` (one agent frame); "" if unknown."""
    input: str = ""
    """The wake's input, as the process type's wake spec materialised it ("" for none)."""

    @property
    def source_key(self) -> str:
        """The de-duplication key of this wake: `process:{pid}:event:{seq}:wake`."""
        return f"{wake_source_key_prefix(self.process_id)}{self.sequence}:wake"

    @property
    def frame_id(self) -> str | None:
        """The agent frame the wake is aimed at, or None for a whole-session (or unknown) scope."""
        return frame_of_scope(self.target_scope_id)


_FRAME_SEPARATOR = "/frame:"


def frame_of_scope(scope_id: str) -> str | None:
    """The frame of a `session:<id>/frame:<f>` scope id; None for `session:<id>`, "" or a host scope.

    The scope is split at its first `/frame:` (as the trigger scopes are), so a session id
    that itself contains `/frame:` reads as a framed scope: the scope text cannot tell.
    """
    if not scope_id.startswith("session:"):
        return None
    _, found, frame = scope_id.partition(_FRAME_SEPARATOR)
    return frame if found and frame else None


def wake_source_key_prefix(process_id: str) -> str:
    """What every wake source key of `process_id` starts with: `process:{pid}:event:`."""
    return f"process:{process_id}:event:"


_SEQUENCE = re.compile(r"-?[0-9]+")


def is_wake_source_key_of(process_id: str, source_key: str) -> bool:
    """True when `source_key` is `ProcessWake(process_id, n, ...).source_key` for an integer n.

    Exact, although process ids may hold `:` (and `%` or `_`): `p1` owns neither `p10`'s
    keys nor `process:p1:event:1:event:2:wake`, which belongs to the id `p1:event:1`.
    """
    prefix = wake_source_key_prefix(process_id)
    if not (source_key.startswith(prefix) and source_key.endswith(":wake")):
        return False
    return _SEQUENCE.fullmatch(source_key[len(prefix):-len(":wake")]) is not None


def wake_frames(payloads: Any) -> tuple[str, ...]:
    """The frames the `ProcessWake`s among `payloads` are aimed at, in order, each once."""
    frames: dict[str, None] = {}
    for p in payloads:
        if isinstance(p, ProcessWake) and p.frame_id is not None:
            frames[p.frame_id] = None
    return tuple(frames)


def describe_wake_frames(payloads: Any) -> str:
    """`frame f1` or `frames f1, f2` for the frames of `wake_frames(payloads)`; "" for none."""
    frames = wake_frames(payloads)
    if not frames:
        return ""
    return f"frame{'s' if len(frames) > 1 else ''} {', '.join(frames)}"


@attrs.frozen
class AgentFrameTask:
    """Turn work: a task for an agent frame (any msgpack-encodable value)."""

    frame_id: str
    task: Any
    protocol_turn_options: dict[str, Any] | None = None


@attrs.frozen
class RefreshToolCatalog:
    """Session command: reload the session's tool catalogue."""

    reason: str = ""


@attrs.frozen
class ResetSession:
    """Session command: reset the session's conversation state."""

    reason: str = ""


Payload = ProcessWake | AgentFrameTask | RefreshToolCatalog | ResetSession
PAYLOAD_TYPES: tuple[type, ...] = (ProcessWake, AgentFrameTask, RefreshToolCatalog, ResetSession)


def work_class_of(payload: Any) -> WorkClass:
    """The work class of one payload."""
    if isinstance(payload, (RefreshToolCatalog, ResetSession)):
        return WorkClass.SESSION_COMMAND
    return WorkClass.TURN_WORK


def item_id(batch_id: str, index: int) -> str:
    """The id of a batch's `index`-th item: `{batch_id}:item:{index}`."""
    return f"{batch_id}:item:{index}"


# --- events ----------------------------------------------------------------------------


@event("queue.batch_enqueued")
class QueuedWorkEnqueued:
    """A batch joined the session's queue.

    `enqueue_seq` is the session's queue sequence (1, 2, ...): the queue's order is this
    order, which is also the stream's order. `batch_id` is derived from the session, the
    source key, the time and the sequence, all recorded here.
    """

    session_id: str
    batch_id: str
    enqueue_seq: int
    source_key: str | None
    delivery_policy: DeliveryPolicy
    slot_policy: SlotPolicy
    merge_key: MergeKey
    available_at_ms: int
    enqueued_at_ms: int
    work_class: WorkClass
    payloads: tuple[Payload, ...]


@event("queue.claimed")
class QueuedWorkClaimed:
    """A claim took batches, under the session lease generation `generation`.

    The claim is live exactly while the session lease is held, unexpired, with fencing
    token `generation`. `fencing_token` is the head batch's claim counter plus one;
    each named batch's own counter goes up by one.
    """

    session_id: str
    claim_id: str
    lease_token: str
    fencing_token: int
    generation: int
    owner: LeaseOwner
    batch_ids: tuple[str, ...]
    claimed_at_ms: int
    mode: str
    """How the batches were chosen: "ready", "session_command", "by_ids" or "checkpoint"."""
    claimant: LeaseOwner | None = None
    """Who took the claim, when the caller named someone other than the lease holder
    (`owner`); None: the lease holder itself (and in events written before it existed)."""


@event("queue.claim_abandoned")
class QueuedWorkClaimAbandoned:
    """A claim's holder gave back the named batches: they are claimable again (counters kept)."""

    session_id: str
    claim_id: str
    lease_token: str
    batch_ids: tuple[str, ...]
    abandoned_at_ms: int


@event("queue.batch_cancelled")
class QueuedWorkCancelled:
    """A batch that was unclaimed, or whose claim was not live, was removed from the queue."""

    session_id: str
    batch_id: str
    cancelled_at_ms: int


@event("queue.completed")
class QueuedWorkCompleted:
    """A claim's batches were completed and left the queue (their source keys stay known)."""

    session_id: str
    claim_id: str
    lease_token: str
    batch_ids: tuple[str, ...]
    completed_at_ms: int


@event("queue.source_keys_forgotten")
class QueuedSourceKeysForgotten:
    """Source keys of batches settled before `settled_before_ms` were forgotten (retention)."""

    session_id: str
    settled_before_ms: int
    forgotten_at_ms: int


__all__ = [
    "AgentFrameTask",
    "ClaimBoundary",
    "DeliveryPolicy",
    "MergeKey",
    "PAYLOAD_TYPES",
    "Payload",
    "ProcessWake",
    "QueuedSourceKeysForgotten",
    "QueuedWorkCancelled",
    "QueuedWorkClaimAbandoned",
    "QueuedWorkClaimed",
    "QueuedWorkCompleted",
    "QueuedWorkEnqueued",
    "RefreshToolCatalog",
    "ResetSession",
    "SlotPolicy",
    "WorkClass",
    "describe_wake_frames",
    "frame_of_scope",
    "is_wake_source_key_of",
    "item_id",
    "wake_frames",
    "wake_source_key_prefix",
    "work_class_of",
]
