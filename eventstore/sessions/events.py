"""Event classes of the session lifecycle: created, deleted, purged.

Where each event goes (the stream is the aggregate):

* `session.created` and `session.deleted` go to the session's own stream
  `session:<id>`, like every other change of the session (leases, commits, queue).
* `session.purged` goes to `session-purge:<id>`, a stream of its own. A purge drops
  the payload bytes of every event on `session:<id>` (the chain keeps their digests),
  so an event recorded there would be unreadable the moment it is written. The purge
  record must stay readable: it is what tells a rebuild that the id is tombstoned,
  and which generation it had reached, once the session's own events are gone.

Every event carries the session id and the time its decision used, so appliers need
neither the stream name nor a clock.

This module imports only the log core (projections import it).
"""

from __future__ import annotations

import attrs

from ..events import event

SESSION_STREAM_PREFIX = "session:"
PURGE_STREAM_PREFIX = "session-purge:"


def session_stream(session_id: str) -> str:
    """The stream holding a session's events: `session:<id>`."""
    return SESSION_STREAM_PREFIX + session_id


def purge_stream(session_id: str) -> str:
    """The stream holding a session's purge records: `session-purge:<id>`."""
    return PURGE_STREAM_PREFIX + session_id


@attrs.frozen
class SessionRelation:
    """How a session relates to another one (its parent)."""

    parent_session_id: str
    kind: str = "child"
    """A free label for the relation: "child", "fork", "subagent", ..."""


@attrs.frozen
class SessionMeta:
    """What a session is: a display name, the model, its working directory, its parent.

    Every field is optional; `name` defaults to the session id when the session is
    created. Create writes it once and never overwrites it; `sessions.save_meta` replaces it.
    """

    name: str | None = None
    model: str | None = None
    cwd: str | None = None
    relation: SessionRelation | None = None


@event("session.created")
class SessionCreated:
    """A session came into being (generation 1) or was recreated after a delete (2, 3, ...)."""

    session_id: str
    meta: SessionMeta
    generation: int
    """1 for the first creation; one more each time a deleted id is recreated."""
    created_at_ms: int


@event("session.meta_saved")
class SessionMetaSaved:
    """The session's meta was replaced by an explicit save (create never overwrites it)."""

    session_id: str
    meta: SessionMeta
    saved_at_ms: int


@event("session.deleted")
class SessionDeletedEvent:
    """A session was deleted: its id is tombstoned, its lease state and inputs wiped.

    (Named with a suffix because `SessionDeleted` is the error later commands raise.)
    """

    session_id: str
    generation: int
    deleted_at_ms: int


@event("session.purged")
class SessionPurged:
    """A deleted session's payload bytes were dropped (recorded on `session-purge:<id>`)."""

    session_id: str
    generation: int
    """The generation that was deleted (a recreate continues from generation + 1)."""
    deleted_at_ms: int
    purged_at_ms: int
    payloads_dropped: int
    """How many event payloads of `session:<id>` this purge dropped."""
    through_version: int
    """The version of `session:<id>` when it was purged: every event up to it is purged."""


__all__ = [
    "PURGE_STREAM_PREFIX",
    "SESSION_STREAM_PREFIX",
    "SessionCreated",
    "SessionDeletedEvent",
    "SessionMeta",
    "SessionMetaSaved",
    "SessionPurged",
    "SessionRelation",
    "purge_stream",
    "session_stream",
]
