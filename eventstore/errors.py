"""Typed errors. Every error the store raises on purpose is a subclass of StoreError.

Each error carries the facts a caller needs to react (the stream, the position,
the expected and actual values) as attributes, and a message that names them.
"""

from __future__ import annotations

from typing import cast


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


# --- opening files -------------------------------------------------------------------


class FileError(StoreError):
    """The file at the given path cannot be used as an event store."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NotAnEventStore(FileError):
    """The file is a SQLite database, but not one written by this store."""


class NotADatabase(FileError):
    """The file is not a SQLite database at all (garbage, or another format)."""


class TruncatedFile(FileError):
    """The file is shorter than its own header says: it was cut off."""


class SchemaTooNew(FileError):
    """The file was written by a newer version of the store than this one."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path, f"written by store schema version {found}; this version supports up to {supported}"
        )


class CorruptStore(StoreError):
    """The file is damaged: SQLite reported it, or a stored value has an impossible type.

    `position` (and `stream`) name the event row when the damage is in one.
    """

    def __init__(self, message: str, position: int | None = None, stream: str | None = None) -> None:
        self.position = position
        self.stream = stream
        super().__init__(message)


class IntegrityError(StoreError):
    """SQLite refused a write as a constraint violation (a unique key taken, say).

    Under the store's own transactions this means the file was changed behind its back.
    """


class StoreBusy(StoreError):
    """Another connection held the write lock for longer than the busy timeout."""


class DiskFull(StoreError):
    """A write failed because the disk (or the file system's quota) is full; nothing was committed."""


class ReadOnlyStore(StoreError):
    """A write was attempted through a store opened with readonly=True."""


class StoreClosed(StoreError):
    """The store was used after close()."""


class ReadOnlyView(StoreError):
    """A command was issued on a time-travel view, which only reads."""


class NotOnThisBackend(StoreError):
    """A domain (or a store operation) is not available yet on the store's backend.

    Raised before anything is read or written, naming the domain and the backend.
    """

    def __init__(self, domain: str, backend: str, reason: str = "") -> None:
        self.domain = domain
        self.backend = backend
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{domain} is not available on the {backend} backend yet{detail}; "
                         f"use a SQLite store for it (docs/postgres.md lists what is ported)")


# --- appends ---------------------------------------------------------------------


class WrongExpectedVersion(StoreError):
    """An append's expected stream version did not hold; nothing was written."""

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r}: expected version {expected}, but the stream is at version {actual}"
        )


class IdempotencyConflict(StoreError):
    """An idempotency key was reused with different events."""

    def __init__(self, stream: str, key: str, first_position: int) -> None:
        self.stream = stream
        self.key = key
        self.first_position = first_position
        super().__init__(
            f"stream {stream!r}: idempotency key {key!r} was first used at position "
            f"{first_position} with different events"
        )


class NotFound(StoreError, LookupError):
    """A named stream or session does not exist in the store (the command line's lookups)."""


class InvalidArgument(StoreError, ValueError):
    """An argument has the wrong type, shape or value; the message names it."""


# --- events and codec ------------------------------------------------------------


class EventTypeError(StoreError):
    """An event class or type name is not registered, or registered twice."""


class DecodeError(StoreError):
    """A stored payload cannot be turned back into its event; names the position."""

    def __init__(self, message: str, position: int | None = None, stream: str | None = None) -> None:
        self.position = position
        self.stream = stream
        where = ""
        if position is not None:
            where = f"position {position}"
            if stream is not None:
                where += f" (stream {stream!r})"
            where += ": "
        super().__init__(where + message)


class UnknownEventType(DecodeError):
    """The log holds an event type that no registered class handles."""


class MissingUpcaster(DecodeError):
    """An event was written at an older schema and no upcaster leads to the current one."""


class PayloadTooLarge(StoreError):
    """An encoded or decompressed payload exceeds the configured limit."""


# --- projections -----------------------------------------------------------------


class ProjectionError(StoreError):
    """A projection cannot be read or applied."""


class ProjectionStale(ProjectionError):
    """A projection's stored version differs from the code: rebuild it before reading."""

    def __init__(self, name: str, stored: int, code: int) -> None:
        self.name = name
        self.stored = stored
        self.code = code
        super().__init__(
            f"projection {name!r} is stale (stored version {stored}, code version {code}); "
            f"run `eventstore rebuild DB --projection {name}` or open with rebuild_stale=True"
        )


class UnknownProjection(ProjectionError):
    """No projection of that name is registered."""


# --- blobs -----------------------------------------------------------------------


class BlobNotFound(StoreError, KeyError):
    """No blob is stored under that ref."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no blob stored under ref {ref!r}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return cast("str", self.args[0])
