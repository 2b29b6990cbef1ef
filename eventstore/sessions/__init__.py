"""Sessions: create, list, delete and purge sessions (the `session:<id>` stream's lifecycle).

This module is the domain's public API: import from `eventstore.sessions`, not its submodules.
"""

from __future__ import annotations

from .events import (
    purge_stream,
    PURGE_STREAM_PREFIX,
    session_stream,
    SESSION_STREAM_PREFIX,
    SessionCreated,
    SessionDeletedEvent,
    SessionMeta,
    SessionMetaSaved,
    SessionPurged,
    SessionRelation,
)
from .facade import (
    check_session_id,
    CreateResult,
    decide_create,
    decide_delete,
    decide_purge,
    DeleteResult,
    PurgeReport,
    require_live_session,
    require_live_generation,
    SessionDeleted,
    SessionError,
    SessionInfo,
    SessionNotDeleted,
    SessionNotFound,
    Sessions,
)

__all__ = [
    "check_session_id",
    "CreateResult",
    "decide_create",
    "decide_delete",
    "decide_purge",
    "DeleteResult",
    "purge_stream",
    "PURGE_STREAM_PREFIX",
    "PurgeReport",
    "require_live_session",
    "require_live_generation",
    "session_stream",
    "SESSION_STREAM_PREFIX",
    "SessionCreated",
    "SessionDeleted",
    "SessionDeletedEvent",
    "SessionError",
    "SessionInfo",
    "SessionMeta",
    "SessionMetaSaved",
    "SessionNotDeleted",
    "SessionNotFound",
    "SessionPurged",
    "SessionRelation",
    "Sessions",
]
