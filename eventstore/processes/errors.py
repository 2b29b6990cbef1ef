"""The process registry's typed errors. Every one is a StoreError; input errors are also
InvalidArgument (a ValueError). Each names the process and, where it applies, the field,
the replay key or the scope, and carries them as attributes.
"""

from __future__ import annotations

from ..errors import InvalidArgument, StoreError

class ProcessError(StoreError):
    """Base class of the process registry's typed errors."""


class UnknownProcess(ProcessError, LookupError):
    """No process is registered under that id (or it was pruned)."""

    def __init__(self, process_id: str) -> None:
        self.process_id = process_id
        super().__init__(f"unknown process {process_id!r}")


class InvalidRegistration(ProcessError, InvalidArgument):
    """A registration failed validation; `field` names the offending field."""

    def __init__(self, process_id: object, field: str, problem: str) -> None:
        self.process_id = process_id
        self.field = field
        super().__init__(f"process {process_id!r}: registration field {field}: {problem}")


class RegistrationConflict(ProcessError):
    """The id is registered with a different registration (law 73)."""

    def __init__(self, process_id: str, existing_hash: str, new_hash: str) -> None:
        self.process_id = process_id
        self.existing_hash = existing_hash
        self.new_hash = new_hash
        super().__init__(f"process {process_id!r} is already registered with hash {existing_hash[:16]}…, "
                         f"this registration hashes to {new_hash[:16]}…")


class InvalidProcessEvent(ProcessError, InvalidArgument):
    """An event append request is malformed: undeclared type, bad payload, missing key."""

    def __init__(self, process_id: str, event_type: object, problem: str, field: str | None = None) -> None:
        self.process_id = process_id
        self.event_type = event_type
        self.field = field
        super().__init__(f"process {process_id!r} event {event_type!r}: {problem}")


class ReplayKeyRequired(InvalidProcessEvent):
    """Terminal events and cancel requests must carry a replay key (law 77)."""


class ReplayKeyConflict(ProcessError):
    """A replay key was reused with a different event type or payload (law 76)."""

    def __init__(self, process_id: str, replay_key: str, sequence: int) -> None:
        self.process_id = process_id
        self.replay_key = replay_key
        self.sequence = sequence
        super().__init__(f"process {process_id!r}: replay key {replay_key!r} was first used by event "
                         f"{sequence} with a different type or payload")


class ProcessAlreadyTerminal(ProcessError):
    """The process is terminal and the request needs a running one (laws 80, 82)."""

    def __init__(self, process_id: str, status: str, what: str) -> None:
        self.process_id = process_id
        self.status = status
        super().__init__(f"process {process_id!r} is already {status}: {what} is rejected")


class ExternalRefConflict(ProcessError):
    """The process already has a different external ref; the first value sticks (law 74)."""

    def __init__(self, process_id: str) -> None:
        self.process_id = process_id
        super().__init__(f"process {process_id!r} already has a different external_ref (the first one sticks)")


class HandoverConflict(ProcessError):
    """A segment handover was put again at the same ordinal with a different payload."""

    def __init__(self, process_id: str, segment_ordinal: int, existing_hash: str, new_hash: str) -> None:
        self.process_id = process_id
        self.segment_ordinal = segment_ordinal
        self.existing_hash = existing_hash
        self.new_hash = new_hash
        super().__init__(f"process {process_id!r}: segment {segment_ordinal} already has a handover with hash "
                         f"{existing_hash[:16]}…, this one hashes to {new_hash[:16]}… (a put is write-once)")


class CompletionAuthorityRejected(ProcessError):
    """The completion authority does not fit the process's live disposition (law 81)."""

    def __init__(self, process_id: str, authority: str, disposition: str, why: str) -> None:
        self.process_id = process_id
        self.authority = authority
        self.disposition = disposition
        super().__init__(f"process {process_id!r}: authority {authority} cannot complete a {disposition} "
                         f"process: {why}")


class HandleNotGranted(ProcessError):
    """A transfer named a process that is not granted to the source scope."""

    def __init__(self, process_id: str, scope_id: str) -> None:
        self.process_id = process_id
        self.scope_id = scope_id
        super().__init__(f"process handle {process_id!r} is not granted to scope {scope_id!r}")


class ProcessLeaseExpired(ProcessError):
    """The presented process lease is missing, expired, or superseded (law 84)."""

    def __init__(self, process_id: str, why: str = "") -> None:
        self.process_id = process_id
        super().__init__(f"process {process_id!r}: lease missing or expired" + (f" ({why})" if why else ""))


class AwaitTimeout(ProcessError, TimeoutError):
    """`wait_for` gave up before the process became terminal."""

    def __init__(self, process_id: str, timeout_s: float) -> None:
        self.process_id = process_id
        self.timeout_s = timeout_s
        super().__init__(f"process {process_id!r} was still running after {timeout_s:g}s")
