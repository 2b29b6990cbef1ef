"""The process registry: `store.processes`.

A process is registered once (idempotently, law 73), then gets an append-only event log
with per-process sequence numbers, replay keys (laws 76-77) and wakes (law 78), row
changes (external ref, first start, abandon request, wait: laws 74, 80, 82), handle
grants (law 75), a lease (law 84), segment handovers (`handovers.py`), and
exactly one terminal event, written by `complete_with_lease` (law 85) or `complete` with
an authority (law 81). Terminal processes can be pruned (law 86); the change feed
follows every record change (law 83).

Each process has its own stream `process:<id>`; the tables a reader sees are the
`processes` projection. Every command reads the projection and decides inside one
write transaction, and appends nothing when it raises.

Users import these names from `eventstore.processes` (the package's public API).
"""

from __future__ import annotations

import builtins
import time
from typing import Any, Callable

import attrs

from projections import processes as proj

from ..checks import canonical_json, check_int
from ..errors import InvalidArgument
from ..facades import register_facade
from ..leases.owners import LeaseOwner, check_owner
from .base import AppendEventResult, ProcessEvent, check_process_id
from .errors import (
    AwaitTimeout,
    CompletionAuthorityRejected,
    ExternalRefConflict,
    ProcessAlreadyTerminal,
    RegistrationConflict,
    ReplayKeyConflict,
)
from .events import (
    ProcessAbandonRequested,
    ProcessExternalRefSet,
    ProcessFirstStarted,
    ProcessLease,
    ProcessRegistered,
    ProcessWaitCleared,
    ProcessWaitSet,
    ProcessWakeAcked,
    WakeDelivery,
)
from .grants import ProcessGrantCommands
from .handovers import ProcessHandoverCommands
from .leases import ProcessLeaseCommands
from .model import (
    AbandonRequest, Abandoned, Disposition, ExternalOwner, ExternalRef, FirstStart, OUTPUT_STATUS,
    ProcessRecord, ProcessRegistration, ProcessStatus, ReconciledAbandon, WaitState, WorkflowKey,
    authority_to_json, json_form, output_from_json, output_to_json,
)
from .prune import ProcessPruneCommands
from .rules import (
    MAX_ID_BYTES,
    TERMINAL_TYPES,
    AppendEventRequest,
    check_request,
    decide_append,
    json_problem,
    payload_hash,
    prepare_registration,
)

AUTHORITIES = (ExternalOwner, WorkflowKey, ReconciledAbandon)


@attrs.frozen
class AppendAndEnqueueResult:
    """What `append_event_and_enqueue` did: the append, and the queue's answer (None: no delivery)."""

    append: AppendEventResult
    enqueued: Any
    """`eventstore.queue.facade.Enqueued` (batch, created, disposition), or None without a wake delivery."""


def terminal_request(process_id: str, output: Any, authority: Any = None) -> AppendEventRequest:
    """The terminal append a completion makes: replay key `process:<id>:terminal:<type>`,
    payload `{"await_output": ..., "completion_authority": ...}`."""
    event_type = TERMINAL_TYPES[OUTPUT_STATUS[type(output)]]
    payload: dict[str, Any] = {"await_output": output_to_json(output)}
    if authority is not None:
        payload["completion_authority"] = authority_to_json(authority)
    return AppendEventRequest(event_type, payload, f"process:{process_id}:terminal:{event_type}")


def check_authority(record: ProcessRecord, authority: Any, output: Any) -> None:
    """Raise CompletionAuthorityRejected unless `authority` may complete this process
    with `output`, judged against the record's live disposition (law 81). Pure."""
    d = record.disposition
    name = getattr(authority, "KIND", "?")
    if isinstance(authority, ExternalOwner):
        if d is not Disposition.EXTERNALLY_OWNED:
            raise CompletionAuthorityRejected(record.process_id, name, d.value,
                                              "only externally owned processes are completed by their owner")
    elif isinstance(authority, WorkflowKey):
        if d is Disposition.EXTERNALLY_OWNED:
            raise CompletionAuthorityRejected(record.process_id, name, d.value,
                                              "this store never ran it, so no workflow can complete it")
    elif isinstance(authority, ReconciledAbandon):
        if d is not Disposition.EXTERNALLY_OWNED:
            raise CompletionAuthorityRejected(record.process_id, name, d.value,
                                              "reconciled abandonment applies to externally owned processes")
        if not isinstance(output, Abandoned):
            raise CompletionAuthorityRejected(record.process_id, name, d.value,
                                              "reconciled abandonment writes only an Abandoned output")


def _check_output(output: Any) -> Any:
    if type(output) not in OUTPUT_STATUS:
        raise InvalidArgument(f"output must be Success, Failure, Cancelled or Abandoned, got {type(output).__name__}")
    as_json = output_to_json(output)
    problem = json_problem(as_json)
    if problem:
        raise InvalidArgument(f"output is not JSON-encodable at {problem}")
    # The terminal event stores the JSON form and reads it back: a field of the wrong type
    # (a non-string code, an int writer) would otherwise come back as a different output.
    if type(output_from_json(as_json)) is not type(output):
        raise InvalidArgument(f"output {output!r} has a field of the wrong type "
                              "(strings for class, code and message; an AbandonWriter and int epoch_ms)")
    return output


class Processes(ProcessLeaseCommands, ProcessGrantCommands, ProcessHandoverCommands, ProcessPruneCommands):
    """The process registry facade (`store.processes`); see the module docstring."""

    # --- registration and reads ---------------------------------------------------------

    def register(self, registration: ProcessRegistration) -> ProcessRecord:
        """Register a process. The same id with the same registration returns the existing
        record; a different registration under that id raises RegistrationConflict."""
        prepared, reg_hash = prepare_registration(registration)
        with self._write("register"):
            now = self.ctx.now_ms()
            existing = proj.get_record(self._db, prepared.id)
            if existing is not None:
                if existing.registration_hash == reg_hash:
                    return existing
                raise RegistrationConflict(prepared.id, existing.registration_hash, reg_hash)
            self._append(prepared.id, [ProcessRegistered(prepared.id, prepared, reg_hash, now)], now)
            return self._require(prepared.id)

    def list(self, *, status: ProcessStatus | str | None = None, scope: Any = None, waiting: bool | None = None,
             after_id: str | None = None, limit: int | None = None) -> list[ProcessRecord]:
        """Records ordered by id; filter by status, owner scope (a scope or scope id) and wait state."""
        if isinstance(status, str):
            try:
                status = ProcessStatus(status)
            except ValueError:
                raise InvalidArgument(f"status must be one of {[s.value for s in ProcessStatus]}, "
                                      f"got {status!r}") from None
        if status is not None and not isinstance(status, ProcessStatus):
            raise InvalidArgument(f"status must be a ProcessStatus, got {status!r}")
        scope_id = scope if scope is None or isinstance(scope, str) else getattr(scope, "scope_id", None)
        if scope is not None and not isinstance(scope_id, str):
            raise InvalidArgument(f"scope must be a scope id, SessionScope or HostScope, got {scope!r}")
        if limit is not None:
            check_int(limit, "limit")
        if waiting is not None and not isinstance(waiting, bool):
            raise InvalidArgument(f"waiting must be True, False or None, got {waiting!r}")
        if after_id is not None and not isinstance(after_id, str):
            raise InvalidArgument(f"after_id must be a process id or None, got {type(after_id).__name__}")
        return proj.list_records(self._db, status=status.value if status else None, scope_id=scope_id,
                                 waiting=waiting, after_id=after_id, limit=limit)

    def list_non_terminal(self) -> builtins.list[ProcessRecord]:
        """Running processes, ordered by id."""
        return self.list(status=ProcessStatus.RUNNING)

    # --- row changes --------------------------------------------------------------------

    def set_external_ref(self, process_id: str, external_ref: ExternalRef) -> ProcessRecord:
        """Set the external ref. The first value sticks: an identical repeat is a no-op, a
        different one (metadata included) raises ExternalRefConflict (law 74)."""
        check_process_id(process_id)
        if not isinstance(external_ref, ExternalRef):
            raise InvalidArgument(f"external_ref must be an ExternalRef, got {type(external_ref).__name__}")
        for name in ("backend", "id"):
            if not isinstance(getattr(external_ref, name), str) or not getattr(external_ref, name):
                raise InvalidArgument(f"external_ref.{name} must be a non-empty string")
        problem = json_problem(external_ref.metadata)
        if problem:
            raise InvalidArgument(f"external_ref.metadata is not a JSON value at {problem}")
        with self._write("set_external_ref"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            if record.external_ref is not None:
                if canonical_json(json_form(record.external_ref)) == canonical_json(json_form(external_ref)):
                    return record
                raise ExternalRefConflict(process_id)
            self._append(process_id, [ProcessExternalRefSet(process_id, external_ref, now)], now)
            return self._require(process_id)

    def record_first_started(self, process_id: str, owner: LeaseOwner | str,
                             started_at_ms: int | None = None) -> ProcessRecord:
        """Record the first start: the starting owner (a LeaseOwner, kept whole, or just an
        owner id) and the caller's `started_at_ms` (default: now). The first writer wins;
        later calls change nothing and return the record."""
        check_process_id(process_id)
        if isinstance(owner, LeaseOwner):
            check_owner(owner)
            owner_id, whole = owner.owner_id, owner
        else:
            owner_id, whole = owner, None
        if not isinstance(owner_id, str) or not owner_id or len(owner_id.encode()) > MAX_ID_BYTES:
            raise InvalidArgument(f"owner must be a LeaseOwner or a non-empty owner id of at most {MAX_ID_BYTES} "
                                  f"bytes, got {owner!r}"[:300])
        if started_at_ms is not None:
            check_int(started_at_ms, "started_at_ms")
        with self._write("record_first_started"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            if record.first_started is not None:
                return record
            start = FirstStart(owner_id, now if started_at_ms is None else started_at_ms, whole)
            self._append(process_id, [ProcessFirstStarted(process_id, start)], now)
            return self._require(process_id)

    def request_abandon(self, process_id: str, requested_by: str, reason: str | None = None, *,
                        requested_at_ms: int | None = None) -> ProcessRecord:
        """Ask for the process to be abandoned, at the caller's `requested_at_ms` (default:
        now). Written once: the first request wins; a terminal process refuses (law 80)."""
        check_process_id(process_id)
        if not isinstance(requested_by, str) or not requested_by:
            raise InvalidArgument(f"requested_by must be a non-empty string, got {requested_by!r}")
        if reason is not None and not isinstance(reason, str):
            raise InvalidArgument(f"reason must be None or a string, got {reason!r}")
        if requested_at_ms is not None:
            check_int(requested_at_ms, "requested_at_ms")
        with self._write("request_abandon"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            if record.is_terminal:
                raise ProcessAlreadyTerminal(process_id, record.status.value, "an abandon request")
            if record.abandon_request is not None:
                return record
            at = now if requested_at_ms is None else requested_at_ms
            self._append(process_id, [ProcessAbandonRequested(process_id, AbandonRequest(requested_by, reason, at))],
                         now)
            return self._require(process_id)

    def set_wait(self, process_id: str, wait: WaitState) -> ProcessRecord:
        """Put a running process into a wait state (`since_ms` defaults to now)."""
        check_process_id(process_id)
        if not isinstance(wait, WaitState) or not isinstance(wait.kind, str) or not wait.kind:
            raise InvalidArgument("wait must be a WaitState with a non-empty kind")
        if wait.since_ms is not None:
            check_int(wait.since_ms, "wait.since_ms")
        problem = json_problem(wait.detail)
        if problem:
            raise InvalidArgument(f"wait.detail is not a JSON value at {problem}")
        with self._write("set_wait"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            if record.is_terminal:
                raise ProcessAlreadyTerminal(process_id, record.status.value, "entering a wait state")
            stamped = wait if wait.since_ms is not None else attrs.evolve(wait, since_ms=now)
            self._append(process_id, [ProcessWaitSet(process_id, stamped)], now)
            return self._require(process_id)

    def clear_wait(self, process_id: str) -> ProcessRecord:
        """Leave the wait state (no-op when not waiting)."""
        check_process_id(process_id)
        with self._write("clear_wait"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            if record.wait is None:
                return record
            self._append(process_id, [ProcessWaitCleared(process_id, now)], now)
            return self._require(process_id)

    # --- the event log ------------------------------------------------------------------

    def append_event(self, process_id: str, request: AppendEventRequest) -> AppendEventResult:
        """Append a process event; see `process_rules.decide_append` for the rules.

        A replay key already stored with the same type and payload appends nothing and
        returns the stored event and wake delivery; with a different one it raises
        ReplayKeyConflict.
        """
        check_process_id(process_id)
        check_request(process_id, request)
        with self._write("append_event"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            return self._append_locked(record, request, now)

    def append_event_and_deliver(self, process_id: str, request: AppendEventRequest,
                                 deliver: Callable[[WakeDelivery], Any]) -> AppendEventResult:
        """Append an event and hand its wake delivery to `deliver` in the same transaction.

        `deliver` runs inside the write transaction (for example, enqueueing the wake into
        the target session's queue in this same store); if it raises, the event is not
        appended either. Replays call it again with the same delivery, so it must be
        idempotent (the queue de-duplicates on `delivery.queue_source_key`).
        """
        if not callable(deliver):
            raise InvalidArgument("deliver must be a callable taking a WakeDelivery")
        check_process_id(process_id)
        check_request(process_id, request)
        with self._write("append_event_and_deliver"):
            result = self.append_event(process_id, request)
            if result.wake_delivery is not None:
                deliver(result.wake_delivery)
            return result

    def append_event_and_enqueue(self, process_id: str, request: AppendEventRequest,
                                 **draft_options: Any) -> "AppendAndEnqueueResult":
        """Append an event and enqueue its wake into the target session's queue
        (`store.queue`, same store), in one transaction.

        The wake becomes a `ProcessWake` batch keyed by `delivery.queue_source_key`, carrying
        the delivery's `target_scope_id` and `input`, so a replayed append finds the batch
        already queued (or settled) instead of adding a second one. `draft_options` go to
        `QueuedWorkDraft.for_wake` (delivery policy, slot policy, ...). If the enqueue fails
        (for example SessionNotFound for a target session that was never created), the
        event is not appended either.
        """
        from ..queue import QueuedWorkDraft
        from ..queue import ProcessWake

        enqueued: list[Any] = []

        def enqueue(d: WakeDelivery) -> None:
            # The scope and input travel with the wake: the runtime that claims it needs
            # to know which agent frame it is for and what it carries.
            wake = ProcessWake(d.process_id, d.sequence, d.wake_id, d.event_type, d.target_scope_id, d.input)
            enqueued.append(self.ctx.queue.enqueue(QueuedWorkDraft.for_wake(d.target_session_id, wake,
                                                                            **draft_options)))

        result = self.append_event_and_deliver(process_id, request, enqueue)
        return AppendAndEnqueueResult(result, enqueued[0] if enqueued else None)

    def _append_locked(self, record: ProcessRecord, request: AppendEventRequest, now: int) -> AppendEventResult:
        pid = record.process_id
        if request.replay_key is not None:
            stored = proj.event_by_replay_key(self._db, pid, request.replay_key)
            if stored is not None:
                sequence, stored_hash, position, _version = stored
                if stored_hash != payload_hash(request.event_type, request.payload):
                    raise ReplayKeyConflict(pid, request.replay_key, sequence)
                event = self._event_at(pid, position)
                return AppendEventResult(event, event.wake_delivery, True)
        appended = decide_append(record, request, now)
        result = self._append(pid, [appended], now)
        return AppendEventResult(ProcessEvent.from_appended(appended, result.last_position),
                                 appended.wake_delivery, False)

    def events_after(self, process_id: str, after_sequence: int = 0, limit: int | None = None) -> builtins.list[ProcessEvent]:
        """Process events with a sequence above `after_sequence` (never the cursor itself), in order."""
        check_int(after_sequence, "after_sequence")
        if limit is not None:
            check_int(limit, "limit")
        with self._read():
            self._require(process_id)
            return self._load_events(process_id, proj.event_index(self._db, process_id, after_sequence, limit))

    def recent_events(self, process_id: str, limit: int) -> builtins.list[ProcessEvent]:
        """The newest `limit` process events, oldest first (ascending sequence, as the reference
        returns them): a bounded activity tail that does not read the whole history."""
        check_int(limit, "limit")
        with self._read():
            self._require(process_id)
            return self._load_events(process_id, proj.recent_event_index(self._db, process_id, limit))

    def count_events_through(self, process_id: str, sequence: int, event_type: str | None = None) -> int:
        """How many of the process's events have a sequence <= `sequence` (of `event_type` only,
        when given: the reference's signal-ordinal query, "the Nth occurrence of a signal")."""
        check_int(sequence, "sequence")
        if event_type is not None and (not isinstance(event_type, str) or not event_type):
            raise InvalidArgument(f"event_type must be None or a non-empty string, got {event_type!r}"[:300])
        with self._read():
            record = self._require(process_id)
            if event_type is None:
                # Sequences are gap-free from 1 (the append decides last + 1 under the write
                # lock), so the count is arithmetic: no scan of a long history.
                return min(sequence, record.last_sequence)
            return proj.count_events_of_type(self._db, process_id, event_type, sequence)

    def wake_events_after(self, process_id: str, after_sequence: int = 0) -> builtins.list[ProcessEvent]:
        """Events after `after_sequence` that carry a wake which was not acked."""
        check_int(after_sequence, "after_sequence")
        with self._read():
            self._require(process_id)
            return self._load_events(process_id, proj.event_index(self._db, process_id, after_sequence,
                                                                  wakes_only=True))

    def ack_wake(self, process_id: str, sequence: int) -> bool:
        """Mark an event's wake consumed (insert-or-ignore: False when it already was)."""
        check_int(sequence, "sequence", 1)
        with self._write("ack_wake"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            if sequence > record.last_sequence:
                raise InvalidArgument(f"process {process_id!r} has no event {sequence} "
                                      f"(last sequence {record.last_sequence})")
            if proj.wake_acked(self._db, process_id, sequence):
                return False
            self._append(process_id, [ProcessWakeAcked(process_id, sequence, now)], now)
            return True

    # --- completion and await -------------------------------------------------------------

    def complete(self, process_id: str, output: Any, authority: Any) -> ProcessRecord:
        """Write the terminal event under a completion authority, checked against the live
        disposition in the same transaction (law 81); a rejection appends nothing.

        ExternalOwner: externally owned only. WorkflowKey: rerunnable or owner bound.
        ReconciledAbandon: externally owned, Abandoned output only. The authority is
        recorded in the payload as `completion_authority`. An exact replay returns the record.
        """
        check_process_id(process_id)
        _check_output(output)
        if not isinstance(authority, AUTHORITIES):
            raise InvalidArgument(f"authority must be ExternalOwner, WorkflowKey or ReconciledAbandon, "
                                  f"got {type(authority).__name__}")
        with self._write("complete"):
            now = self.ctx.now_ms()
            record = self._require(process_id)
            check_authority(record, authority, output)
            self._append_locked(record, terminal_request(process_id, output, authority), now)
            return self._require(process_id)

    def complete_with_lease(self, lease: ProcessLease, output: Any) -> ProcessRecord:
        """Write the terminal event and release the lease, atomically (law 85).

        An exact replay of an earlier completion returns the record without looking at
        the lease. Otherwise the lease must be the live one (ProcessLeaseExpired if it is
        stale, superseded or expired) and the event and the release are one append.
        """
        if not isinstance(lease, ProcessLease):
            raise InvalidArgument(f"lease must be a ProcessLease, got {type(lease).__name__}")
        _check_output(output)
        pid = lease.process_id
        request = terminal_request(pid, output)
        assert request.replay_key is not None  # a terminal request always carries its replay key
        with self._write("complete_with_lease"):
            now = self.ctx.now_ms()
            record = self._require(pid)
            stored = proj.event_by_replay_key(self._db, pid, request.replay_key)
            if stored is not None:
                if stored[1] != payload_hash(request.event_type, request.payload):
                    raise ReplayKeyConflict(pid, request.replay_key, stored[0])
                return record
            release = self._check_completion_lease(lease, now)
            appended = decide_append(record, request, now)
            self._append(pid, [appended, *release], now)
            return self._require(pid)

    def await_output(self, process_id: str) -> Any:
        """The await output of a terminal process, or None while it runs. UnknownProcess if unknown."""
        return self._require(process_id).await_output

    def wait_for(self, process_id: str, timeout_s: float = 30.0, poll_interval_s: float = 0.05) -> Any:
        """Block until the process is terminal and return its await output.

        Polls the projection (each poll is a fresh read, so commits from any process
        are seen); raises AwaitTimeout after `timeout_s`, UnknownProcess if the process
        is unknown or gets pruned meanwhile.
        """
        if not isinstance(timeout_s, (int, float)) or timeout_s < 0:
            raise InvalidArgument(f"timeout_s must be a number >= 0, got {timeout_s!r}")
        if not isinstance(poll_interval_s, (int, float)) or poll_interval_s <= 0:
            raise InvalidArgument(f"poll_interval_s must be a number > 0, got {poll_interval_s!r}")
        deadline = time.monotonic() + timeout_s
        while True:
            output = self.await_output(process_id)
            if output is not None:
                return output
            left = deadline - time.monotonic()
            if left <= 0:
                raise AwaitTimeout(process_id, timeout_s)
            time.sleep(min(poll_interval_s, left))


register_facade("processes", Processes)


__all__ = ["AUTHORITIES", "AppendAndEnqueueResult", "Processes", "check_authority", "terminal_request"]
