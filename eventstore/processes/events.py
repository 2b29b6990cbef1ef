"""Process registry events, and the values they carry.

Streams:

* `process:<id>`: everything that happens to one process: its registration, its
  event log (`process.event_appended`, one per sequence number), row changes (external
  ref, first start, abandon request, wait), handle grants, wake acks, its lease and its
  segment handovers.
* `processes:registry`: registry-wide facts that must outlive the processes they name:
  prunes. A prune drops the payload bytes of the pruned processes' streams, so its own
  record has to live on a stream that is never purged.

Every decision an append needed (the sequence number, the materialised wake and its
delivery, the terminal output, lease tokens and expiries) is computed by the command
and recorded here, so appliers only copy facts and a replay rebuilds the same tables.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..events import event
from ..leases.owners import LeaseOwner
from ..queue.events import wake_source_key_prefix
from .model import (
    Abandoned,
    AbandonRequest,
    Cancelled,
    Disposition,
    ExternalRef,
    Failure,
    FirstStart,
    HandleDescriptor,
    HostScope,
    ProcessRegistration,
    ProcessStatus,
    SessionScope,
    Success,
    WaitState,
)

REGISTRY_STREAM = "processes:registry"
"""The stream of registry-wide events (prunes); never purged."""


def process_stream(process_id: str) -> str:
    """The stream holding one process's events."""
    return f"process:{process_id}"


# --- values recorded in events -------------------------------------------------------------


@attrs.frozen
class MaterializedWake:
    """The wake an event carries: its input text and dedupe key (present even without a target)."""

    input: str
    dedupe_key: str


@attrs.frozen
class WakeDelivery:
    """A wake addressed to a session scope, for the caller to put into that session's queue.

    `wake_id` is `"wake:" + sha256([target_scope_id, dedupe_key])`, so the same wake for
    the same scope always has the same id, and `queue_source_key` is the source key the
    queue de-duplicates on.
    """

    wake_id: str
    target_session_id: str
    target_scope_id: str
    process_id: str
    sequence: int
    event_type: str
    dedupe_key: str
    input: str
    created_at_ms: int

    @property
    def queue_source_key(self) -> str:
        """The queue source key of this wake: `process:<id>:event:<sequence>:wake`."""
        return f"{wake_source_key_prefix(self.process_id)}{self.sequence}:wake"


@attrs.frozen
class TerminalOutcome:
    """What a terminal event did: the final status and the await output."""

    status: ProcessStatus
    await_output: Success | Failure | Cancelled | Abandoned


@attrs.frozen
class ProcessLease:
    """A process lease as held: owner, token, fencing token and times. May be expired."""

    process_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    claimed_at_ms: int
    expires_at_ms: int

    def is_live(self, now_ms: int) -> bool:
        """Live means unexpired: `now_ms < expires_at_ms` (a TTL of 0 is born expired)."""
        return now_ms < self.expires_at_ms


@attrs.frozen
class PruneFilter:
    """Which terminal processes a prune may take (every given condition must hold)."""

    statuses: tuple[ProcessStatus, ...] = ()
    """Only these terminal statuses (empty: any terminal status)."""
    owner_scope_id: str | None = None
    disposition: Disposition | None = None
    input_kind: str | None = None
    """`tool_call`, `engine`, `session_turn` or `external`."""
    caused_by: str | None = None
    """Only processes whose provenance names this cause (a trigger subscription id)."""


# --- events on process:<id> ------------------------------------------------------------------


@event("process.registered")
class ProcessRegistered:
    """A process was registered (with the core event types already added)."""

    process_id: str
    registration: ProcessRegistration
    registration_hash: str
    registered_at_ms: int


@event("process.event_appended")
class ProcessEventAppended:
    """One entry of the process's own event log, with the semantics materialised at append."""

    process_id: str
    sequence: int
    event_type: str
    payload: Any
    payload_hash: str
    replay_key: str | None
    occurred_at_ms: int
    terminal: TerminalOutcome | None = None
    wake: MaterializedWake | None = None
    wake_delivery: WakeDelivery | None = None


@event("process.external_ref_set")
class ProcessExternalRefSet:
    """The process's external ref was set (once: the first value sticks)."""

    process_id: str
    external_ref: ExternalRef
    set_at_ms: int


@event("process.first_started")
class ProcessFirstStarted:
    """The process was started for the first time (written once)."""

    process_id: str
    first_start: FirstStart


@event("process.abandon_requested")
class ProcessAbandonRequested:
    """Someone asked for the process to be abandoned (written once)."""

    process_id: str
    request: AbandonRequest


@event("process.wait_set")
class ProcessWaitSet:
    """The running process entered a wait state (`wait.since_ms` is filled in)."""

    process_id: str
    wait: WaitState


@event("process.wait_cleared")
class ProcessWaitCleared:
    """The process left its wait state."""

    process_id: str
    cleared_at_ms: int


@event("process.handle_granted")
class ProcessHandleGranted:
    """A scope was granted the process handle (an upsert of its descriptor)."""

    process_id: str
    scope: SessionScope | HostScope
    descriptor: HandleDescriptor
    granted_at_ms: int


@event("process.handle_revoked")
class ProcessHandleRevoked:
    """A scope's grant was revoked."""

    process_id: str
    scope_id: str
    revoked_at_ms: int


@event("process.handle_transferred")
class ProcessHandleTransferred:
    """A grant moved from one scope to another, keeping its descriptor."""

    process_id: str
    from_scope_id: str
    to_scope: SessionScope | HostScope
    transferred_at_ms: int


@event("process.session_detached")
class ProcessSessionDetached:
    """A session's process state was deleted: its grants on this process were revoked and,
    if the default wake target pointed at it, that target was cleared. Wake acks stay."""

    process_id: str
    session_id: str
    revoked_scope_ids: tuple[str, ...]
    wake_target_cleared: bool
    detached_at_ms: int


@event("process.wake_acked")
class ProcessWakeAcked:
    """The wake of one event was consumed; it no longer shows in `wake_events_after`."""

    process_id: str
    sequence: int
    acked_at_ms: int


@event("process.lease_acquired")
class ProcessLeaseAcquired:
    """A process lease was acquired (claim of a free or expired lease, or a reclaim of a
    live lease whose holder was proven dead). The fencing token is the previous one + 1."""

    process_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    claimed_at_ms: int
    expires_at_ms: int
    reclaimed_from: LeaseOwner | None = None
    reclaimed_fencing_token: int | None = None
    dead_process_start: int | None = None
    """For a reclaim: what /proc showed for the dead holder's pid (None: no such process)."""


@event("process.lease_renewed")
class ProcessLeaseRenewed:
    """A live process lease's expiry moved (renew, or a re-entrant claim)."""

    process_id: str
    lease_token: str
    fencing_token: int
    renewed_at_ms: int
    expires_at_ms: int
    reentry: bool = False


@event("process.lease_released")
class ProcessLeaseReleased:
    """The holder released the lease (also done by a leased completion); the fence is kept."""

    process_id: str
    lease_token: str
    fencing_token: int
    released_at_ms: int


@event("process.handover_put")
class ProcessHandoverPut:
    """A segment handover was stored: the opaque continuation the process's next execution
    segment resumes from. The retained handovers below `segment_ordinal - 1` are dropped
    (`dropped_ordinals`, decided by the command). Registry-internal state, not a process
    event: no sequence number, and the record's change_seq does not move."""

    process_id: str
    segment_ordinal: int
    payload: Any
    payload_hash: str
    """sha256 of the payload's canonical msgpack (see `process_handovers.handover_hash`)."""
    put_at_ms: int
    dropped_ordinals: tuple[int, ...] = ()


@event("process.handovers_deleted")
class ProcessHandoversDeleted:
    """Every retained segment handover of the process was deleted (their payloads stay in the log)."""

    process_id: str
    segment_ordinals: tuple[int, ...]
    deleted_at_ms: int


# --- events on processes:registry -------------------------------------------------------------


@event("process.pruned")
class ProcessesPruned:
    """Terminal processes were pruned: their rows are removed and their streams' payload
    bytes dropped (digests kept, so the chain still verifies)."""

    cutoff_ms: int
    up_to_change_seq: int | None
    filter: PruneFilter | None
    process_ids: tuple[str, ...]
    pruned_events: int
    """How many process events (sequence numbers) the pruned processes had."""
    pruned_at_ms: int


LIFECYCLE_EVENTS = (
    ProcessRegistered, ProcessEventAppended, ProcessExternalRefSet, ProcessFirstStarted,
    ProcessAbandonRequested, ProcessWaitSet, ProcessWaitCleared, ProcessHandleGranted,
    ProcessHandleRevoked, ProcessHandleTransferred, ProcessSessionDetached, ProcessWakeAcked,
    ProcessLeaseAcquired, ProcessLeaseRenewed, ProcessLeaseReleased, ProcessHandoverPut, ProcessHandoversDeleted,
    ProcessesPruned,
)
