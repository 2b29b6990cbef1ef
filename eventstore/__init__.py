"""lash-eventstore: an event-sourced, append-only SQLite store for AI-agent runtimes.

    import eventstore

    @eventstore.event("note.added")
    class NoteAdded:
        text: str

    with eventstore.open("agent.db") as store:
        store.append("notes:1", [NoteAdded("hello")])
        for ev in store.read_stream("notes:1"):
            print(ev.position, ev.data.text)
        print(store.verify())
"""

from .chain import Anchor, VerifyReport
from .clock import ManualClock, system_clock
from .codec import Limits
from .errors import (
    BlobNotFound,
    CorruptStore,
    DecodeError,
    DiskFull,
    EventTypeError,
    FileError,
    IdempotencyConflict,
    IntegrityError,
    InvalidArgument,
    MissingUpcaster,
    NotADatabase,
    NotAnEventStore,
    NotOnThisBackend,
    PayloadTooLarge,
    ProjectionError,
    ProjectionStale,
    ReadOnlyStore,
    ReadOnlyView,
    SchemaTooNew,
    StoreBusy,
    StoreClosed,
    StoreError,
    TruncatedFile,
    UnknownEventType,
    UnknownProjection,
    WrongExpectedVersion,
)
from .events import REGISTRY as EVENTS
from .events import EventRegistry, event, upcaster
from .log import ANY, NO_STREAM, STREAM_EXISTS, UNDECODED, AppendResult, RecordedEvent
from .store import Store, StoreInfo, StoreView, open, register_facade

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "UNDECODED",
    "Anchor",
    "AppendResult",
    "BlobNotFound",
    "CorruptStore",
    "DecodeError",
    "DiskFull",
    "EVENTS",
    "EventRegistry",
    "EventTypeError",
    "FileError",
    "IdempotencyConflict",
    "IntegrityError",
    "InvalidArgument",
    "Limits",
    "ManualClock",
    "MissingUpcaster",
    "NotADatabase",
    "NotAnEventStore",
    "NotOnThisBackend",
    "PayloadTooLarge",
    "ProjectionError",
    "ProjectionStale",
    "ReadOnlyStore",
    "ReadOnlyView",
    "RecordedEvent",
    "SchemaTooNew",
    "Store",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreInfo",
    "StoreView",
    "TruncatedFile",
    "UnknownEventType",
    "UnknownProjection",
    "VerifyReport",
    "WrongExpectedVersion",
    "event",
    "open",
    "register_facade",
    "system_clock",
    "upcaster",
]
