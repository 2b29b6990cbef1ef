"""`store.attachments`: the per-session write-ahead manifest of uploads (DOMAIN.md §6).

The protocol, and why each step is there:

1. `record_intent(session, attachment_id, ref, owner)` *before* uploading the bytes: from
   then on the ref is a GC root, so a GC running between the upload and the commit
   cannot reap the bytes;
2. upload with `store.blobs.put(data)` (the ref is the SHA-256 of the bytes);
3. name the attachment in the turn's commit (`committed_attachment_ids`), which stamps
   `committed_at`. The stamp only updates existing rows, never inserts, so a commit
   cannot revive a row that was forgotten (and whose bytes GC may have reaped); the
   first stamp wins;
4. `forget_aged_intents(session, cutoff)` drops intents never committed whose owner is
   provably gone: no owner; a turn owner superseded by a later stamped commit of a
   different turn; a process owner the process registry (`store.processes`, in the same
   file) no longer knows. While the registry cannot be read, process-owned rows are kept.

`holds_ref` guards the session boundary: a session may read a ref only if its own
manifest holds it (law 64). Intents and commits are both GC roots (`list_refs`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

import attrs

from ..errors import InvalidArgument, StoreError
from ..facades import register_facade
from ..commits.events import AttachmentIntentRecorded, AttachmentIntentsForgotten

if TYPE_CHECKING:
    from ..store import StoreContext

log = logging.getLogger("eventstore.attachments")

OWNER_KINDS = ("turn", "process")


class AttachmentConflict(StoreError):
    """An attachment id is already recorded for another blob ref; nothing was written."""

    def __init__(self, session_id: str, attachment_id: str, recorded: str, requested: str) -> None:
        self.session_id = session_id
        self.attachment_id = attachment_id
        super().__init__(f"session {session_id!r}: attachment {attachment_id!r} is recorded for blob {recorded}, "
                         f"not {requested}; an attachment id names one blob for good")


@attrs.frozen
class AttachmentRef:
    """One row of the attachment manifest."""

    session_id: str
    attachment_id: str
    blob_ref: str
    owner_kind: str | None
    owner_id: str | None
    intent_at_ms: int
    committed_at_ms: int | None
    """When a commit first named it (None: still an intent)."""


MAX_ATTACHMENT_ID = 256
"""The longest attachment id (in UTF-8 bytes) the manifest records."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}"[:300])
    if len(value.encode()) > MAX_ATTACHMENT_ID:
        raise InvalidArgument(f"{what} {value[:40]!r}...: at most {MAX_ATTACHMENT_ID} UTF-8 bytes")
    return value


def _lookup(value: Any, what: str, optional: bool = False) -> None:
    """A read's key: a string (None too when optional). An unknown key simply finds nothing."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string{' or None' if optional else ''}, got {value!r}"[:300])


def _ids(session_id: str, ids: Any) -> tuple[str, ...]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (tuple, list)):
        raise InvalidArgument(f"session {session_id!r}: attachment_ids must be a list of ids")
    return tuple(_text(a, f"session {session_id!r}: attachment_ids[{i}]") for i, a in enumerate(ids))


def decide_forget_aged(rows: Sequence[AttachmentRef], cutoff_ms: int, turn_superseded: Any,
                       process_known: Any) -> tuple[str, ...]:
    """The attachment ids an aged-intent sweep drops. Pure, given the two owner probes:
    `turn_superseded(turn_id, intent_at_ms)` and `process_known(process_id)` (None when
    the registry cannot be read: keep)."""
    dead = []
    for r in rows:
        if r.committed_at_ms is not None or r.intent_at_ms > cutoff_ms:
            continue
        if r.owner_kind is None:
            dead.append(r.attachment_id)
        elif r.owner_kind == "turn" and turn_superseded(r.owner_id, r.intent_at_ms):
            dead.append(r.attachment_id)
        elif r.owner_kind == "process" and process_known(r.owner_id) is False:
            dead.append(r.attachment_id)
    return tuple(dead)


class Attachments:
    """`store.attachments`: see the module docstring."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx

    def _session(self, session_id: str, what: str) -> None:
        from ..sessions.facade import check_session_id, require_live_session

        check_session_id(session_id)
        self.ctx.require_fresh("graph")
        require_live_session(self.ctx.db, session_id, what)

    def record_intent(self, session_id: str, attachment_id: str, blob_ref: str,
                      owner: tuple[str, str] | None = None) -> AttachmentRef:
        """Record (or refresh) an upload intent before the bytes are uploaded.

        `owner` is ("turn", turn_id) or ("process", process_id): kind and id together, or
        None. A repeat refreshes the time and the owner and keeps a commit stamp (law 66);
        the same id with another ref raises AttachmentConflict.
        """
        from ..blobs import check_ref

        self.ctx.require_writable("attachments.record_intent")
        _text(attachment_id, "attachment_id")
        check_ref(blob_ref)
        if owner is not None:
            if (not isinstance(owner, tuple) or len(owner) != 2 or owner[0] not in OWNER_KINDS
                    or not isinstance(owner[1], str) or not owner[1]):
                raise InvalidArgument(f"owner must be None, ('turn', id) or ('process', id), got {owner!r}")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._session(session_id, "attachments.record_intent")
            existing = self.get(session_id, attachment_id)
            if existing is not None and existing.blob_ref != blob_ref:
                raise AttachmentConflict(session_id, attachment_id, existing.blob_ref, blob_ref)
            kind, oid = owner if owner is not None else (None, None)
            self.ctx.append(f"session:{session_id}",
                            [AttachmentIntentRecorded(session_id, attachment_id, blob_ref, kind, oid)], now_ms=now)
            return self.get(session_id, attachment_id)  # type: ignore[return-value]

    def get(self, session_id: str, attachment_id: str) -> AttachmentRef | None:
        """One manifest row, or None."""
        from projections import graph as gproj

        _lookup(session_id, "session_id")
        _lookup(attachment_id, "attachment_id")
        self.ctx.require_fresh("graph")
        rows = gproj.attachment_rows(self.ctx.db, session_id, attachment_id)
        return AttachmentRef(*rows[0]) if rows else None

    def holds_ref(self, session_id: str, blob_ref: str) -> bool:
        """True when this session's manifest holds the ref (intent or commit): the session
        boundary check before serving bytes to a session."""
        from projections import graph as gproj

        _lookup(session_id, "session_id")
        _lookup(blob_ref, "blob_ref")
        self.ctx.require_fresh("graph")
        return gproj.holds_ref(self.ctx.db, session_id, blob_ref)

    def list_refs(self, session_id: str | None = None) -> list[AttachmentRef]:
        """Every manifest row (intents and commits: the attachment GC roots), of one session or all."""
        from projections import graph as gproj

        _lookup(session_id, "session_id", optional=True)
        self.ctx.require_fresh("graph")
        return [AttachmentRef(*r) for r in gproj.attachment_rows(self.ctx.db, session_id)]

    def forget(self, session_id: str, attachment_ids: Sequence[str]) -> int:
        """Remove rows from the manifest (and so from the GC roots); returns how many went."""
        self.ctx.require_writable("attachments.forget")
        ids = _ids(session_id, attachment_ids)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._session(session_id, "attachments.forget")
            present = tuple(a for a in dict.fromkeys(ids) if self.get(session_id, a) is not None)
            if present:
                self.ctx.append(f"session:{session_id}", [AttachmentIntentsForgotten(session_id, present)],
                                now_ms=now)
            return len(present)

    def forget_aged_intents(self, session_id: str, cutoff_ms: int) -> int:
        """Drop uncommitted intents recorded at or before `cutoff_ms` whose owner is dead
        (see the module docstring), in one event. Returns how many were dropped."""
        from projections import graph as gproj

        self.ctx.require_writable("attachments.forget_aged_intents")
        if isinstance(cutoff_ms, bool) or not isinstance(cutoff_ms, int):
            raise InvalidArgument(f"cutoff_ms must be an integer of milliseconds, got {cutoff_ms!r}")
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._session(session_id, "attachments.forget_aged_intents")
            db = self.ctx.db
            dead = decide_forget_aged(
                self.list_refs(session_id), cutoff_ms,
                lambda turn_id, since: gproj.turn_committed_after(db, session_id, turn_id, since),
                self._process_known)
            if dead:
                self.ctx.append(f"session:{session_id}", [AttachmentIntentsForgotten(session_id, dead)], now_ms=now)
            return len(dead)

    def _process_known(self, process_id: str) -> bool | None:
        """Whether the process registry knows the process; None when it cannot be read."""
        try:
            from projections import processes
        except ImportError:  # no registry in this build: process-owned rows are kept
            return None
        if "processes" in self.ctx.engine.stale or not hasattr(processes, "get_record"):
            return None
        return processes.get_record(self.ctx.db, process_id) is not None


register_facade("attachments", Attachments)

__all__ = ["AttachmentConflict", "AttachmentRef", "Attachments", "OWNER_KINDS", "decide_forget_aged"]
