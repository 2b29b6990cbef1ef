"""Sessions: create, read, list, delete (a permanent tombstone) and purge. `store.sessions`.

Every change is an event on `session:<id>` (the purge record excepted: see
`session_events`); the catalogue of sessions is the `sessions` projection, and the
event count and last activity come from the stream catalogue.

Rules (docs/semantics.md laws 68-70):
* an id that was never created reads as absent (`get` returns None);
* create is idempotent and never overwrites the meta or relation of an existing session;
* delete tombstones the id for good: every later command for it raises SessionDeleted,
  so a late write cannot bring it back; `create(..., recreate=True)` starts a new
  generation with no lease state (fences start at 1 again) and no inputs;
* purge drops the payload bytes of a deleted session's events (the chain keeps their
  digests and still verifies) and its projection rows, leaving a tombstone.

`require_live_session(db, session_id)` is the check other domains call inside their own
write transaction before writing anything for a session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import attrs

from ..errors import InvalidArgument, StoreError
from ..facades import register_facade
from .events import (
    SessionCreated,
    SessionDeletedEvent,
    SessionMeta,
    SessionMetaSaved,
    SessionPurged,
    SessionRelation,
    purge_stream,
    session_stream,
)

if TYPE_CHECKING:
    from ..store import Store, StoreContext

MAX_SESSION_ID_BYTES = 256
MAX_META_TEXT = 4096
MAX_RELATION_KIND = 64

# --- errors ----------------------------------------------------------------------------


class SessionError(StoreError):
    """Base class of the session lifecycle's typed errors."""

    def __init__(self, session_id: str, message: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id!r}: {message}")


class SessionNotFound(SessionError):
    """No session with this id was ever created."""

    def __init__(self, session_id: str, what: str = "") -> None:
        # "create it first" is advice only for a command that works in a session; a
        # delete, purge or vacuum of an unknown id just names it.
        hint = "" if what in _NO_CREATE_HINT else " (create it first)"
        super().__init__(session_id, f"{what + ': ' if what else ''}no such session{hint}")


_NO_CREATE_HINT = frozenset({"delete", "purge", "vacuum"})


class SessionDeleted(SessionError):
    """The session was deleted; its id is tombstoned and refuses every later command."""

    def __init__(self, session_id: str, generation: int, deleted_at_ms: int | None, what: str = "") -> None:
        self.generation = generation
        self.deleted_at_ms = deleted_at_ms
        super().__init__(
            session_id, f"{what + ': ' if what else ''}the session was deleted (generation {generation}, "
            f"at {deleted_at_ms} ms); recreate it explicitly with create(..., recreate=True)")


class SessionNotDeleted(SessionError):
    """A purge was asked for a session that is not deleted (only deleted sessions are purged)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id, "purge: the session is active; delete it before purging it")


# --- arguments and results ---------------------------------------------------------------


@attrs.frozen
class SessionInfo:
    """A session as `get` and `list` report it: the catalogue row plus stream activity."""

    session_id: str
    status: str
    """"active", "deleted" or "purged"."""
    generation: int
    """1 for the first creation, one more for each recreate after a delete."""
    meta: SessionMeta
    """Empty (all None) once the session was purged."""
    created_at_ms: int | None
    deleted_at_ms: int | None
    purged_at_ms: int | None
    event_count: int
    """Events on `session:<id>`, purged ones included (their headers remain)."""
    last_activity_ms: int | None
    """When the newest event of `session:<id>` was recorded."""
    last_position: int | None
    """The log position of that newest event."""

    @property
    def active(self) -> bool:
        """True unless the session was deleted (or purged)."""
        return self.status == "active"


@attrs.frozen
class CreateResult:
    """What `create` did: `created` is False when the session already existed (law 69)."""

    session: SessionInfo
    created: bool
    recreated: bool = False
    """True when a deleted id was recreated as a new generation."""


@attrs.frozen
class DeleteResult:
    """What `delete` did: `deleted` is False when the session was already deleted."""

    session_id: str
    deleted: bool
    generation: int


@attrs.frozen
class PurgeReport:
    """What `purge` did: how many payloads it dropped and where its record went."""

    session_id: str
    purged: bool
    """False when the session was already purged and nothing was left to drop."""
    payloads_dropped: int
    purge_stream: str
    position: int | None
    """The log position of the `session.purged` record (None when nothing was done)."""


# --- validation ----------------------------------------------------------------------------


def check_session_id(session_id: Any, what: str = "session_id") -> str:
    """Validate a session id: a non-empty string of at most 256 UTF-8 bytes, no control chars."""
    # The common id, checked in three C calls: printable ASCII is one byte a character
    # and holds no control character (ASCII's non-printables are exactly 0-31 and 127).
    if type(session_id) is str and 0 < len(session_id) <= MAX_SESSION_ID_BYTES and session_id.isascii() \
            and session_id.isprintable():
        return session_id
    if not isinstance(session_id, str) or not session_id:
        raise InvalidArgument(f"{what} must be a non-empty string, got {session_id!r}")
    if len(session_id.encode()) > MAX_SESSION_ID_BYTES:
        raise InvalidArgument(f"{what} {session_id[:40]!r}...: at most {MAX_SESSION_ID_BYTES} UTF-8 bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in session_id):
        raise InvalidArgument(f"{what} {session_id!r} must not contain control characters")
    return session_id


def _check_text(value: Any, what: str, limit: int = MAX_META_TEXT) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string or None, got {type(value).__name__}")
    if len(value) > limit or "\x00" in value:
        raise InvalidArgument(f"{what}: at most {limit} characters and no NUL")


def check_meta(meta: Any, session_id: str) -> SessionMeta:
    """Validate a SessionMeta for `session_id`, naming the field that is wrong."""
    if meta is None:
        return SessionMeta()
    if not isinstance(meta, SessionMeta):
        raise InvalidArgument(f"session {session_id!r}: meta must be a SessionMeta, got {type(meta).__name__}")
    for name in ("name", "model", "cwd"):
        _check_text(getattr(meta, name), f"session {session_id!r}: meta.{name}")
    rel = meta.relation
    if rel is not None:
        if not isinstance(rel, SessionRelation):
            raise InvalidArgument(f"session {session_id!r}: meta.relation must be a SessionRelation or None")
        check_session_id(rel.parent_session_id, f"session {session_id!r}: meta.relation.parent_session_id")
        if rel.parent_session_id == session_id:
            raise InvalidArgument(f"session {session_id!r}: meta.relation names the session as its own parent")
        if not isinstance(rel.kind, str) or not rel.kind:
            raise InvalidArgument(f"session {session_id!r}: meta.relation.kind must be a non-empty string")
        _check_text(rel.kind, f"session {session_id!r}: meta.relation.kind", MAX_RELATION_KIND)
    return meta


def check_recreate(value: Any) -> bool:
    """Validate the `recreate` flag (a real bool, so that a stray argument cannot set it)."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"recreate must be True or False, got {value!r}")
    return value


# --- the shared check other domains call ---------------------------------------------------


def require_live_session(db: Any, session_id: str, what: str = "") -> Any:
    """The `sessions` row of an active session; SessionNotFound or SessionDeleted otherwise.

    Call it inside your own write transaction (after `ctx.require_fresh("sessions")`),
    before deciding anything for the session, so that no late write reaches a deleted id.
    Returns a `projections.sessions.SessionRow`.
    """
    import projections.sessions as proj

    row = proj.get(db, session_id)
    if row is None:
        raise SessionNotFound(session_id, what)
    if row.status != proj.ACTIVE:
        raise SessionDeleted(session_id, row.generation, row.deleted_at_ms, what)
    return row


def require_live_generation(db: Any, session_id: str, what: str = "") -> int:
    """`require_live_session` for a command that needs only the session's generation:
    the same check and errors from a narrower read (no row object is built)."""
    import projections.sessions as proj

    row = proj.status(db, session_id)
    if row is None:
        raise SessionNotFound(session_id, what)
    if row[0] != proj.ACTIVE:
        raise SessionDeleted(session_id, row[1], row[2], what)
    return row[1]


# --- pure deciders ---------------------------------------------------------------------------


def decide_create(row: Any, session_id: str, meta: SessionMeta, recreate: bool,
                  now_ms: int) -> tuple[str, list[Any]]:
    """Decide a create from the current row: ("existing" | "created" | "recreated", events).

    Raises SessionDeleted for a deleted id unless `recreate` is set.
    """
    if meta.name is None:
        meta = attrs.evolve(meta, name=session_id)
    if row is None:
        return "created", [SessionCreated(session_id, meta, 1, now_ms)]
    if row.status == "active":
        return "existing", []  # law 69: never overwrite the meta or relation
    if not recreate:
        raise SessionDeleted(row.session_id, row.generation, row.deleted_at_ms, "create")
    return "recreated", [SessionCreated(session_id, meta, row.generation + 1, now_ms)]


def decide_save_meta(row: Any, session_id: str, meta: SessionMeta, now_ms: int) -> tuple[str, list[Any]]:
    """Decide a meta save: ("created" | "saved" | "unchanged", events). Raises SessionDeleted
    for a deleted id. An unknown id is created with the meta (an upsert)."""
    if meta.name is None:
        meta = attrs.evolve(meta, name=session_id)
    if row is None:
        return "created", [SessionCreated(session_id, meta, 1, now_ms)]
    if row.status != "active":
        raise SessionDeleted(row.session_id, row.generation, row.deleted_at_ms, "save_meta")
    if row.meta == meta:
        return "unchanged", []
    return "saved", [SessionMetaSaved(session_id, meta, now_ms)]


def decide_delete(row: Any, session_id: str, now_ms: int) -> tuple[DeleteResult, list[Any]]:
    """Decide a delete: a tombstone event, or nothing when already deleted or never
    created (idempotent; generation 0 for an id that never existed)."""
    if row is None:
        return DeleteResult(session_id, False, 0), []
    if row.status != "active":
        return DeleteResult(session_id, False, row.generation), []
    return DeleteResult(session_id, True, row.generation), [SessionDeletedEvent(session_id, row.generation, now_ms)]


def decide_purge(row: Any, session_id: str, stream_version: int, now_ms: int) -> SessionPurged | None:
    """Decide a purge: the record to write, or None when the session is already purged.

    The record's `payloads_dropped` is filled in by the command once the bytes are gone.
    """
    if row is None:
        raise SessionNotFound(session_id, "purge")
    if row.status == "active":
        raise SessionNotDeleted(session_id)
    if row.status == "purged":
        return None  # nothing can have been written since: every command refuses a deleted id
    return SessionPurged(session_id, row.generation, row.deleted_at_ms, now_ms, 0, stream_version)


# --- the facade ------------------------------------------------------------------------------


class Sessions:
    """`store.sessions`: the session lifecycle. Commands refuse on time-travel views."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self.auto_gc_every_commits = 0
        """Run blob GC after every N commits made through this handle (0: never)."""
        self._commits_since_gc = 0

    def _info(self, row: Any) -> SessionInfo:
        from projections import catalogue

        cat = catalogue.get_stream(self.ctx.db, session_stream(row.session_id))
        return SessionInfo(row.session_id, row.status, row.generation, row.meta, row.created_at_ms,
                           row.deleted_at_ms, row.purged_at_ms,
                           cat.event_count if cat else 0,
                           cat.last_recorded_at_ms if cat else None,
                           cat.last_position if cat else None)

    def _row(self, session_id: str) -> Any:
        import projections.sessions as proj

        self.ctx.require_fresh("sessions")
        self.ctx.require_fresh("catalogue")
        return proj.get(self.ctx.db, session_id)

    # --- commands ---

    def create(self, session_id: str, meta: SessionMeta | None = None, *, recreate: bool = False,
               created_at_ms: int | None = None) -> CreateResult:
        """Create a session (idempotent: an existing session is returned unchanged, law 69).

        A deleted id raises SessionDeleted unless `recreate=True`, which starts a new
        generation with no lease state (law 70). `created_at_ms` is the creation time to
        record (for sessions imported from elsewhere); the store's clock when None.
        """
        self.ctx.require_writable("sessions.create")
        check_session_id(session_id)
        meta = check_meta(meta, session_id)
        check_recreate(recreate)
        if created_at_ms is not None and (isinstance(created_at_ms, bool) or not isinstance(created_at_ms, int)
                                          or not 0 <= created_at_ms < 2 ** 62):
            raise InvalidArgument(f"session {session_id!r}: created_at_ms must be None or an integer of "
                                  f"milliseconds >= 0, got {created_at_ms!r}")
        with self.ctx.transaction():  # decide under the write lock
            now = self.ctx.now_ms()
            kind, events = decide_create(self._row(session_id), session_id, meta, recreate,
                                         now if created_at_ms is None else created_at_ms)
            if events:
                self.ctx.append(session_stream(session_id), events, now_ms=now)
            info = self._info(self._row(session_id))
        return CreateResult(info, kind != "existing", kind == "recreated")

    def save_meta(self, session_id: str, meta: SessionMeta) -> SessionInfo:
        """Replace the session's meta (name, model, cwd, relation); an upsert.

        An unknown id is created with this meta; saving the meta it already has appends
        nothing; a deleted id raises SessionDeleted. `name` None means the session id.
        """
        self.ctx.require_writable("sessions.save_meta")
        check_session_id(session_id)
        if meta is None:
            raise InvalidArgument(f"session {session_id!r}: meta must be a SessionMeta, got None")
        meta = check_meta(meta, session_id)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            _kind, events = decide_save_meta(self._row(session_id), session_id, meta, now)
            if events:
                self.ctx.append(session_stream(session_id), events, now_ms=now)
            return self._info(self._row(session_id))

    def delete(self, session_id: str) -> DeleteResult:
        """Delete a session: tombstone its id for good and wipe its lease state (idempotent;
        an id that never existed is a no-op with `deleted` False and generation 0)."""
        self.ctx.require_writable("sessions.delete")
        check_session_id(session_id)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            result, events = decide_delete(self._row(session_id), session_id, now)
            if events:
                self.ctx.append(session_stream(session_id), events, now_ms=now)
                # What other domains hold for this session goes in the same transaction:
                # its process grants and wake targets, its trigger subscriptions (host-
                # owned ones are spared) and its pending awaited events.
                self.ctx.processes.delete_session_process_state(session_id)
                self.ctx.triggers.delete_session_subscriptions(session_id)
                self.ctx.effects.revoke_session(session_id, "session deleted")
        return result

    def purge(self, session_id: str) -> PurgeReport:
        """Drop the payload bytes of a deleted session's events and its projection rows.

        The chain still verifies (each purged row keeps its payload digest). The record
        goes to `session-purge:<id>`, which is never purged, so it stays readable. Only a
        deleted session can be purged (SessionNotDeleted otherwise); purging twice is a no-op.
        """
        self.ctx.require_writable("sessions.purge")
        check_session_id(session_id)
        stream = session_stream(session_id)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            record = decide_purge(self._row(session_id), session_id, self.ctx.stream_version(stream), now)
            if record is None:
                return PurgeReport(session_id, False, 0, purge_stream(session_id), None)
            # Both in this one transaction: after a crash either the bytes are still there
            # and no record exists, or the bytes are gone and the record says so.
            dropped = self.ctx.log.purge_payloads(stream)
            # an @event class is attrs at runtime; mypy's attrs plugin sees only its dataclass_transform
            record = attrs.evolve(record, payloads_dropped=dropped)  # type: ignore[misc]
            result = self.ctx.append(purge_stream(session_id), [record], now_ms=now)
        return PurgeReport(session_id, True, dropped, purge_stream(session_id), result.last_position)

    # --- reads ---

    def get(self, session_id: str) -> SessionInfo | None:
        """A session by id (deleted and purged ones too, with their status); None if never created."""
        check_session_id(session_id)
        with self.ctx.db.transaction(write=False):  # one snapshot for the row and its activity
            row = self._row(session_id)
            return None if row is None else self._info(row)

    def list(self, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        """Sessions ordered by id, with meta, status, event count and last activity.

        `status` keeps only "active", "deleted" or "purged" sessions.
        """
        import projections.sessions as proj

        if status is not None and status not in proj.STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(proj.STATUSES)} or None, got {status!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidArgument(f"limit must be an integer >= 1 or None, got {limit!r}")
        self.ctx.require_fresh("sessions")
        self.ctx.require_fresh("catalogue")
        with self.ctx.db.transaction(write=False):  # one snapshot for the row and its activity
            return [self._info(r) for r in proj.list_rows(self.ctx.db, status, limit)]


    # --- the runtime commit and its reads (eventstore.commits: commit.py, reads.py, maintenance.py) ---

    def commit(self, commit: Any) -> Any:
        """Land one turn's results atomically: see `eventstore.commits.commit.run_commit`.

        Returns a RuntimeCommitResult; raises HeadRevisionConflict, SessionBindingMismatch,
        RuntimeTurnCommitConflict, SessionExecutionLeaseExpired, QueuedWorkClaimSuperseded,
        TurnInputClaimSuperseded or InvalidGraphDelta with nothing written. With
        `auto_gc_every_commits = N` (> 0), every Nth commit through this handle runs GC
        after committing; a GC failure is logged, never raised (the commit stands).
        """
        # An absolute import: a relative one resolves its package through a Python-level
        # property on every call (the commit imports this module, so it cannot move up).
        import eventstore.commits.commit as commit_module

        every = self.auto_gc_every_commits
        if every.__class__ is not int and (isinstance(every, bool) or not isinstance(every, int)) or every < 0:
            raise InvalidArgument(f"sessions.auto_gc_every_commits must be an integer >= 0, got {every!r}")
        result = commit_module.run_commit(self.ctx, commit)
        if every and not result.replayed:
            self._commits_since_gc += 1
            if self._commits_since_gc >= every:
                self._commits_since_gc = 0
                try:
                    self.gc()
                except StoreError as exc:  # the commit is durable; GC will run again later
                    import logging

                    logging.getLogger("eventstore.gc").warning("automatic blob GC failed: %s", exc)
        return result

    def load(self, session_id: str, *, graph: str = "full", leaf: str | None = None,
             at: int | None = None) -> Any:
        """A session's head, checkpoint, token ledger and graph ("full", "active_path" from
        `leaf` or the head's leaf, or "none"), as of now or, with `at`, as of that log
        position (the session's stream replayed with the same read code). A LoadedSession,
        or None when the session has never committed (at that position)."""
        from ..commits import load_session

        check_session_id(session_id)
        if at is not None and (isinstance(at, bool) or not isinstance(at, int) or at < 0):
            raise InvalidArgument(f"at must be None or a log position (an integer >= 0), got {at!r}")
        if at is None:
            return load_session(self.ctx, session_id, graph, leaf)
        # a view (StoreView.store) travels through its Store; a Store is its own
        store = cast("Store", getattr(self.ctx, "store", self.ctx))
        with store.at(at, streams=[session_stream(session_id)]) as view:
            return load_session(view, session_id, graph, leaf)

    def load_node(self, session_id: str, node_id: str) -> Any:
        """One live node by id, or None (tombstoned and unknown nodes read as None, law 60)."""
        from ..commits import load_node

        check_session_id(session_id)
        return load_node(self.ctx, session_id, node_id)

    def tombstone_nodes(self, session_id: str, node_ids: Any) -> int:
        """Hide nodes from reads until vacuum removes them; returns how many were hidden."""
        from ..commits import tombstone_nodes

        return tombstone_nodes(self.ctx, session_id, node_ids)

    def vacuum(self, session_id: str) -> Any:
        """Remove tombstoned nodes and terminal turn inputs; a VacuumReport of what went (law 61)."""
        from ..commits import vacuum

        return vacuum(self.ctx, session_id)

    def vacuum_all(self) -> Any:
        """Vacuum every active session in one transaction: a StoreVacuumReport (totals and
        the sessions something was removed from)."""
        from ..commits.maintenance import vacuum_all

        return vacuum_all(self.ctx)

    def gc(self, *, dry_run: bool = False, min_age_ms: int | None = None) -> Any:
        """Blob GC (mark and sweep from the projections' roots), recorded as an event; a GcReport.

        Unrooted blobs put less than `min_age_ms` ago (default 60 s) are spared."""
        from ..commits.maintenance import DEFAULT_GC_MIN_AGE_MS, gc

        return gc(self.ctx, dry_run, DEFAULT_GC_MIN_AGE_MS if min_age_ms is None else min_age_ms)


register_facade("sessions", Sessions)

__all__ = [
    "CreateResult",
    "DeleteResult",
    "PurgeReport",
    "SessionDeleted",
    "SessionError",
    "SessionInfo",
    "SessionMeta",
    "SessionNotDeleted",
    "SessionNotFound",
    "SessionRelation",
    "Sessions",
    "check_session_id",
    "decide_create",
    "decide_delete",
    "decide_purge",
    "require_live_session",
]
