"""`store.attachments`: the per-session write-ahead manifest of uploads (docs/semantics.md §6).

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

`holds_ref` guards the session boundary: a session may read an attachment only if its
own manifest holds it (law 64). Intents and commits are both GC roots (`list_refs`).

The runtime-facing API on top: `put` stores the bytes and records the row (media type,
label, size) in one transaction, so the blob is rooted from the moment it exists; `get`
reads the bytes back through the session boundary; `release` drops the session's row;
`commit_refs` stamps rows committed outside a runtime commit; `reclaim` collects blobs no
root holds that are older than a minimum age. A manifest row names its bytes by a
canonical URI: `attachment://sha256/<blob ref>` for bytes stored here, or any absolute
URI the caller gives (bytes kept elsewhere; such rows are roots for the caller's own GC).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Sequence

import attrs

from ..errors import InvalidArgument, StoreError
from ..facades import register_facade
from ..commits.events import AttachmentIntentRecorded, AttachmentIntentsForgotten, AttachmentsCommitted

if TYPE_CHECKING:
    from ..store import StoreContext

log = logging.getLogger("eventstore.attachments")

OWNER_KINDS = ("turn", "process")


class AttachmentConflict(StoreError):
    """An attachment id is already recorded for another blob ref; nothing was written."""

    def __init__(self, session_id: str, attachment_id: str, recorded: str, requested: str) -> None:
        self.session_id = session_id
        self.attachment_id = attachment_id
        super().__init__(f"session {session_id!r}: attachment {attachment_id!r} is recorded for {recorded}, "
                         f"not {requested}; an attachment id names the same bytes for good")


@attrs.frozen
class AttachmentRef:
    """One row of the attachment manifest (what `put` returns: `id`, `uri`, `media_type`,
    `size`, `label`, and the manifest fields)."""

    session_id: str
    attachment_id: str
    blob_ref: str | None
    """The blob holding the bytes in this store; None when the URI names bytes kept elsewhere."""
    owner_kind: str | None
    owner_id: str | None
    intent_at_ms: int
    committed_at_ms: int | None
    """When a commit first named it (None: still an intent)."""
    uri: str = ""
    """The canonical URI: `attachment://sha256/<blob ref>`, or the URI the caller recorded."""
    media_type: str | None = None
    label: str | None = None
    size: int | None = None
    """Byte count (known for `put`; None for an intent recorded by ref or URI)."""

    @property
    def id(self) -> str:
        """The attachment id (`attachment_id`)."""
        return self.attachment_id


BLOB_URI_PREFIX = "attachment://sha256/"
"""The canonical URI of bytes stored as a blob here: this prefix, then the blob ref."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_URI = 2048
"""The longest canonical URI (in UTF-8 bytes) the manifest records."""
MAX_MEDIA_TYPE = 255


def parse_target(value: Any, what: str = "blob_ref") -> tuple[str | None, str | None]:
    """(blob ref, uri) of what an intent names: a 64-hex blob ref, our own
    `attachment://sha256/<ref>` URI, or any other absolute URI (bytes kept elsewhere)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a blob ref (64 lower-case hex digits) or an absolute URI, "
                              f"got {value!r}"[:300])
    if _HEX.match(value):
        return value, None
    if len(value.encode()) > MAX_URI:
        raise InvalidArgument(f"{what} {value[:40]!r}...: a URI is at most {MAX_URI} UTF-8 bytes")
    if not _URI.match(value):
        raise InvalidArgument(f"{what} must be a blob ref (64 lower-case hex digits) or an absolute URI "
                              f"(scheme:rest, no spaces), got {value!r}"[:300])
    if value.startswith(BLOB_URI_PREFIX):
        ref = value[len(BLOB_URI_PREFIX):]
        if not _HEX.match(ref):
            raise InvalidArgument(
                f"{what} {value!r}: an {BLOB_URI_PREFIX} URI ends in a 64-hex blob ref"[:300])
        return ref, value
    return None, value


MAX_ATTACHMENT_ID = 256
"""The longest attachment id (in UTF-8 bytes) the manifest records."""


def _text(value: Any, what: str, limit: int = MAX_ATTACHMENT_ID) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}"[:300])
    if len(value.encode()) > limit:
        raise InvalidArgument(f"{what} {value[:40]!r}...: at most {limit} UTF-8 bytes")
    return value


def _check_owner(owner: Any) -> None:
    if owner is not None:
        if (not isinstance(owner, tuple) or len(owner) != 2 or owner[0] not in OWNER_KINDS
                or not isinstance(owner[1], str) or not owner[1]):
            raise InvalidArgument(f"owner must be None, ('turn', id) or ('process', id), got {owner!r}")


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
        from ..sessions import check_session_id, require_live_session

        check_session_id(session_id)
        self.ctx.require_fresh("graph")
        require_live_session(self.ctx.db, session_id, what)

    def _record(self, session_id: str, attachment_id: str, blob_ref: str | None, uri: str | None,
                owner: tuple[str, str] | None, what: str, media_type: str | None = None,
                label: str | None = None, size: int | None = None) -> AttachmentRef:
        """Append one intent (inside the caller's transaction) after the conflict check."""
        now = self.ctx.now_ms()
        self._session(session_id, what)
        existing = self.ref(session_id, attachment_id)
        wanted = uri if uri is not None else BLOB_URI_PREFIX + (blob_ref or "")
        if existing is not None and existing.uri != wanted:
            raise AttachmentConflict(session_id, attachment_id, existing.uri, wanted)
        kind, oid = owner if owner is not None else (None, None)
        self.ctx.append(f"session:{session_id}",
                        [AttachmentIntentRecorded(session_id, attachment_id, blob_ref, kind, oid, uri,
                                                  media_type, label, size)], now_ms=now)
        return self.ref(session_id, attachment_id)  # type: ignore[return-value]

    def record_intent(self, session_id: str, attachment_id: str, blob_ref: str,
                      owner: tuple[str, str] | None = None) -> AttachmentRef:
        """Record (or refresh) an upload intent before the bytes are uploaded.

        `blob_ref` names the bytes: a blob ref of this store, or a canonical attachment URI
        (`attachment://sha256/<ref>`, or any absolute URI for bytes kept elsewhere).
        `owner` is ("turn", turn_id) or ("process", process_id): kind and id together, or
        None. A repeat refreshes the time and the owner and keeps a commit stamp (law 66);
        the same id naming other bytes raises AttachmentConflict.
        """
        self.ctx.require_writable("attachments.record_intent")
        _text(attachment_id, "attachment_id")
        ref, uri = parse_target(blob_ref)
        _check_owner(owner)
        with self.ctx.transaction():
            return self._record(session_id, attachment_id, ref, uri, owner, "attachments.record_intent")

    def put(self, session_id: str, data: bytes, media_type: str, label: str | None = None, *,
            owner: tuple[str, str] | None = None) -> AttachmentRef:
        """Store `data` for the session and record it in the manifest, in one transaction.

        Returns the row: `id` (the blob ref of the bytes), `uri`, `media_type`, `size`,
        `label`. The same bytes put again refresh the row (media type, label, owner, time)
        and keep a commit stamp.
        """
        from ..blobs import ref_of

        self.ctx.require_writable("attachments.put")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"attachments.put: data must be bytes, got {type(data).__name__}")
        _text(media_type, "attachments.put: media_type", MAX_MEDIA_TYPE)
        if label is not None and not isinstance(label, str):
            raise InvalidArgument(f"attachments.put: label must be None or a string, got {label!r}"[:300])
        if label is not None and len(label.encode()) > MAX_URI:
            raise InvalidArgument(f"attachments.put: label is over {MAX_URI} UTF-8 bytes")
        _check_owner(owner)
        data = bytes(data)
        ref = ref_of(data)
        with self.ctx.transaction():
            # The blob and the row that roots it commit together: no GC can see one without the other.
            self.ctx.blobs.put(data)
            return self._record(session_id, ref, ref, BLOB_URI_PREFIX + ref, owner, "attachments.put",
                                media_type, label, len(data))

    def get(self, session_id: str, attachment_id: str) -> bytes | None:
        """The attachment's bytes, or None when this session's manifest does not hold it
        (the session boundary) or its bytes are not stored here."""
        from ..errors import BlobNotFound

        row = self.ref(session_id, attachment_id)
        if row is None or row.blob_ref is None:
            return None
        try:
            return self.ctx.blobs.get(row.blob_ref)
        except BlobNotFound:
            return None

    def release(self, session_id: str, attachment_id: str) -> bool:
        """Drop the session's row for the attachment; True when there was one. The bytes go
        at a later GC or `reclaim`, once no session holds them."""
        return self.forget(session_id, attachment_id) == 1

    def commit_refs(self, session_id: str, attachment_ids: Sequence[str]) -> int:
        """Stamp existing rows committed, outside a runtime commit; returns how many rows
        got a new stamp. Never inserts, needs no lease, and writes no head revision; the
        first stamp wins and survives later intents for the same id."""
        self.ctx.require_writable("attachments.commit_refs")
        ids = _ids(session_id, attachment_ids)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._session(session_id, "attachments.commit_refs")
            fresh = []
            for a in dict.fromkeys(ids):
                row = self.ref(session_id, a)
                if row is not None and row.committed_at_ms is None:
                    fresh.append(a)
            if fresh:
                self.ctx.append(f"session:{session_id}", [AttachmentsCommitted(session_id, tuple(fresh))],
                                now_ms=now)
            return len(fresh)

    def ref(self, session_id: str, attachment_id: str) -> AttachmentRef | None:
        """One manifest row, or None."""
        from projections import graph as gproj

        _lookup(session_id, "session_id")
        _lookup(attachment_id, "attachment_id")
        self.ctx.require_fresh("graph")
        rows = gproj.attachment_rows(self.ctx.db, session_id, attachment_id)
        return AttachmentRef(*rows[0]) if rows else None

    def holds_ref(self, session_id: str, attachment_id: str) -> bool:
        """True when this session's manifest holds the attachment id (intent or commit): the
        session boundary check before serving an attachment to a session."""
        from projections import graph as gproj

        _lookup(session_id, "session_id")
        _lookup(attachment_id, "attachment_id")
        self.ctx.require_fresh("graph")
        return gproj.holds_ref(self.ctx.db, session_id, attachment_id)

    def holds_blob(self, session_id: str, blob_ref: str) -> bool:
        """True when some row of this session's manifest has its bytes in blob `blob_ref`."""
        from projections import graph as gproj

        _lookup(session_id, "session_id")
        _lookup(blob_ref, "blob_ref")
        self.ctx.require_fresh("graph")
        return gproj.holds_blob(self.ctx.db, session_id, blob_ref)

    def list_refs(self, session_id: str | None = None) -> list[AttachmentRef]:
        """Every manifest row (intents and commits: the attachment GC roots), of one session or all."""
        from projections import graph as gproj

        _lookup(session_id, "session_id", optional=True)
        self.ctx.require_fresh("graph")
        return [AttachmentRef(*r) for r in gproj.attachment_rows(self.ctx.db, session_id)]

    def forget(self, session_id: str, attachment_ids: str | Sequence[str]) -> int:
        """Remove rows (one id or a list) from the manifest, and so from `holds_ref` and the
        GC roots; returns how many went."""
        self.ctx.require_writable("attachments.forget")
        ids = _ids(session_id, [attachment_ids] if isinstance(attachment_ids, str) else attachment_ids)
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self._session(session_id, "attachments.forget")
            present = tuple(a for a in dict.fromkeys(ids) if self.ref(session_id, a) is not None)
            if present:
                self.ctx.append(f"session:{session_id}", [AttachmentIntentsForgotten(session_id, present)],
                                now_ms=now)
            return len(present)

    def reclaim(self, min_age_ms: int, *, dry_run: bool = False) -> Any:
        """Collect blobs no root holds (no manifest row of any session, no head, no pointer)
        that were put at least `min_age_ms` ago: the store's blob GC with that grace."""
        from ..commits.maintenance import gc

        return gc(self.ctx, dry_run=dry_run, min_age_ms=min_age_ms)

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

__all__ = ["AttachmentConflict", "AttachmentRef", "Attachments", "BLOB_URI_PREFIX", "OWNER_KINDS",
           "decide_forget_aged", "parse_target"]
