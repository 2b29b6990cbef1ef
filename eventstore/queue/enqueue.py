"""Enqueueing queued work: drafts, their validation, and the enqueue decision.

Enqueue (docs/semantics.md §4, laws 29-30, 48):
* every payload of a batch shares one work class (turn work, or session commands); an
  empty or mixed batch is refused with InvalidBatchPayloads, before anything is written
  (the reference only notices when a claim scans it);
* the batch id is `qwb:` + sha256 of the session, the source key, the time and the
  session's enqueue sequence, all recorded in the event; item ids are
  `{batch_id}:item:{i}`; the queue's order is the enqueue sequence, which is the
  stream's order;
* a source key that names a batch still in the queue returns that batch, and the new
  payload is ignored (law 29). Unlike the reference, a *settled* (completed or
  cancelled) batch's source key stays known for a retention (default 7 days, None =
  forever): replaying it returns the settled batch instead of enqueuing the work twice.

`plan_enqueue` is the function the runtime commit calls for its outbox, inside its own
transaction. The facade (`store.queue`) is in queue.py, which re-exports these names.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import attrs

from .. import codec
from ..errors import InvalidArgument
from ..checks import check_int as _check_int
from ..checks import check_text as _check_text
from .events import (
    PAYLOAD_TYPES,
    AgentFrameTask,
    DeliveryPolicy,
    MergeKey,
    ProcessWake,
    QueuedWorkEnqueued,
    RefreshToolCatalog,
    ResetSession,
    SlotPolicy,
    WorkClass,
    item_id,
    work_class_of,
)

DAY_MS = 86_400_000
DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS = 7 * DAY_MS
"""How long a settled batch's source key stays known by default: 7 days."""
DEFAULT_MAX_BATCHES = 8
MAX_BATCHES_LIMIT = 10_000


class InvalidBatchPayloads(InvalidArgument):
    """A draft's payloads are empty, of an unknown type, or mix work classes."""

    def __init__(self, session_id: str, reason: str) -> None:
        self.session_id = session_id
        self.reason = reason
        super().__init__(f"session {session_id!r}: queued work draft payloads: {reason}")


# --- drafts and results ------------------------------------------------------------------


@attrs.frozen
class QueuedWorkDraft:
    """A batch to enqueue. `available_at_ms` None means ready now."""

    session_id: str
    payloads: tuple[ProcessWake | AgentFrameTask | RefreshToolCatalog | ResetSession, ...]
    delivery_policy: DeliveryPolicy = DeliveryPolicy.EARLIEST_SAFE_BOUNDARY
    slot_policy: SlotPolicy = SlotPolicy.JOIN
    merge_key: MergeKey = MergeKey.PAYLOAD_DEFAULT
    available_at_ms: int | None = None
    source_key: str | None = None

    @classmethod
    def for_wake(cls, session_id: str, wake: ProcessWake, **kw: Any) -> "QueuedWorkDraft":
        """A draft delivering one process wake, keyed by the wake's source key."""
        return cls(session_id, (wake,), source_key=wake.source_key, **kw)


@attrs.frozen
class Enqueued:
    """What enqueue did: `created` False means a source-key replay returned an existing batch.

    `disposition` is "enqueued", "present" (the batch is still queued), "completed" or
    "cancelled" (a settled batch whose source key is still remembered).
    """

    batch: Any  # projections.queue.QueuedBatch
    created: bool
    disposition: str


@attrs.frozen
class EnqueuePlan:
    """`plan_enqueue`'s answer: one Enqueued per draft, and the events to append."""

    results: tuple[Enqueued, ...]
    events: tuple[QueuedWorkEnqueued, ...]


# --- validation --------------------------------------------------------------------------




def check_draft(draft: Any, what: str = "draft") -> WorkClass:
    """Validate a QueuedWorkDraft (naming the wrong field); returns the batch's work class."""
    return check_draft_packed(draft, what)[0]


def check_draft_packed(draft: Any, what: str = "draft") -> tuple[WorkClass, bytes]:
    """`check_draft`, also returning the payloads in the form the queue table stores
    (`projections.queue.encode_payloads`): they are encoded once, to check them and to
    store them (see `plan_checked`'s `packed`)."""
    from projections.queue import encode_payloads

    from ..sessions.facade import check_session_id

    if not isinstance(draft, QueuedWorkDraft):
        raise InvalidArgument(f"{what} must be a QueuedWorkDraft, got {type(draft).__name__}")
    sid = check_session_id(draft.session_id, f"{what}.session_id")
    payloads = draft.payloads
    if not isinstance(payloads, (tuple, list)):
        raise InvalidBatchPayloads(sid, f"must be a tuple of payloads, got {type(payloads).__name__}")
    if not payloads:
        raise InvalidBatchPayloads(sid, "a batch needs at least one payload")
    for i, p in enumerate(payloads):
        if not isinstance(p, PAYLOAD_TYPES):
            names = ", ".join(t.__name__ for t in PAYLOAD_TYPES)
            raise InvalidBatchPayloads(sid, f"payloads[{i}] is a {type(p).__name__}, not one of {names}")
        if isinstance(p, ProcessWake):
            _check_wake_scope(sid, p.target_scope_id, f"{what}.payloads[{i}].target_scope_id")
    try:
        packed = encode_payloads(payloads)  # all of them at once: the common, valid batch
    except Exception:  # noqa: BLE001 - one of them does not encode: find it and name it
        for i, p in enumerate(payloads):
            try:
                codec.pack(codec.class_codec(type(p)).to_plain(p))
            except codec.ShapeError as exc:
                raise InvalidArgument(f"{what}.payloads[{i}] ({type(p).__name__}): {exc}") from None
        raise
    classes = {work_class_of(p) for p in payloads}
    if len(classes) > 1:
        kinds = ", ".join(f"{type(p).__name__}={work_class_of(p).value}" for p in payloads)
        raise InvalidBatchPayloads(sid, f"mixes turn work and session commands ({kinds}); enqueue them as "
                                   "separate batches")
    for name, kind in (("delivery_policy", DeliveryPolicy), ("slot_policy", SlotPolicy)):
        if not isinstance(getattr(draft, name), kind):
            raise InvalidArgument(f"{what}.{name} must be a {kind.__name__}, got {getattr(draft, name)!r}")
    mk = draft.merge_key
    if not isinstance(mk, MergeKey) or mk.kind not in MergeKey.KINDS:
        raise InvalidArgument(f"{what}.merge_key must be MergeKey.NEVER, MergeKey.PAYLOAD_DEFAULT or "
                              f"MergeKey.group(name), got {mk!r}")
    if (mk.kind == "group") != (isinstance(mk.name, str) and bool(mk.name)) or (mk.kind != "group" and mk.name):
        raise InvalidArgument(f"{what}.merge_key: a group needs a non-empty name and only a group has one, got {mk!r}")
    if draft.available_at_ms is not None:
        _check_int(draft.available_at_ms, f"{what}.available_at_ms")
    if draft.source_key is not None:
        _check_text(draft.source_key, f"{what}.source_key")
    return classes.pop(), packed


def _check_wake_scope(session_id: str, scope_id: str, what: str) -> None:
    """A wake's scope must be "" (not recorded), the draft's session, or a frame of it."""
    whole = f"session:{session_id}"
    if scope_id in ("", whole) or (scope_id.startswith(whole + "/frame:") and len(scope_id) > len(whole) + 7):
        return
    raise InvalidArgument(f"{what} {scope_id!r} is not {whole!r} or '{whole}/frame:<frame>': a wake is "
                          f"enqueued into the session it is aimed at")


def check_retention(value: Any) -> int | None:
    """A source-key retention: None (forever) or an integer of milliseconds >= 0."""
    if value is None:
        return None
    return _check_int(value, "completed_source_key_retention_ms")


# --- pure deciders -------------------------------------------------------------------------


def derive_batch_id(session_id: str, source_key: str | None, now_ms: int, enqueue_seq: int) -> str:
    """`qwb:` + sha256 of `{session}:{source_key!r}:{now}:{seq}` (all recorded in the event)."""
    return "qwb:" + hashlib.sha256(f"{session_id}:{source_key!r}:{now_ms}:{enqueue_seq}".encode()).hexdigest()


def batch_from_event(e: QueuedWorkEnqueued) -> Any:
    """The QueuedBatch an enqueue event creates (pending, unclaimed)."""
    from projections.queue import QueuedBatch, QueuedItem

    items = tuple(QueuedItem(item_id(e.batch_id, i), p) for i, p in enumerate(e.payloads))
    return QueuedBatch(e.session_id, e.batch_id, e.enqueue_seq, e.source_key, e.delivery_policy, e.slot_policy,
                       e.merge_key, e.available_at_ms, e.enqueued_at_ms, e.work_class, items)


def decide_enqueue(draft: QueuedWorkDraft, work_class: WorkClass, last_seq: int, key_row: Any, present: Any,
                   retention_ms: int | None, now_ms: int) -> tuple[Enqueued, QueuedWorkEnqueued | None]:
    """Decide one enqueue from the source key's row (and its present batch). Pure.

    A key naming a present batch returns it (law 29); a settled one returns its snapshot
    while `now < settled_at + retention`; otherwise a new batch with sequence last + 1.
    """
    if key_row is not None:
        if key_row.status == "present" and present is not None:
            return Enqueued(present, False, "present"), None
        if key_row.status != "present" and key_row.batch is not None and (
                retention_ms is None or now_ms < key_row.settled_at_ms + retention_ms):
            return Enqueued(key_row.batch, False, key_row.status), None
    seq = last_seq + 1
    ev = QueuedWorkEnqueued(
        draft.session_id, derive_batch_id(draft.session_id, draft.source_key, now_ms, seq), seq, draft.source_key,
        draft.delivery_policy, draft.slot_policy, draft.merge_key,
        now_ms if draft.available_at_ms is None else draft.available_at_ms, now_ms, work_class,
        tuple(draft.payloads))
    return Enqueued(batch_from_event(ev), True, "enqueued"), ev


def plan_enqueue(db: Any, drafts: Sequence[QueuedWorkDraft], now_ms: int,
                 retention_ms: int | None = DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS) -> EnqueuePlan:
    """Decide several enqueues against the live tables (the runtime commit's outbox).

    Call inside your write transaction after `require_live_session` for each draft's
    session, then append each event to `session:<event.session_id>`. Drafts are decided
    in order as if appended one by one: sequence numbers follow each other and a source
    key repeated within `drafts` returns the batch the earlier draft created.
    """
    return plan_checked(db, [(draft, check_draft(draft, f"drafts[{i}]")) for i, draft in enumerate(drafts)],
                        now_ms, retention_ms)


def plan_checked(db: Any, drafts: Sequence[tuple[QueuedWorkDraft, WorkClass]], now_ms: int,
                 retention_ms: int | None = DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS,
                 packed: Sequence[bytes] | None = None) -> EnqueuePlan:
    """`plan_enqueue` for drafts that already passed `check_draft`, each with the work
    class it returned (a draft is validated, and its payloads encoded to check them, once).

    `packed`, from `check_draft_packed` (one per draft), is for a caller that appends the
    plan's events right away in the same transaction, with no code of its caller in
    between: the queue applier then stores these bytes instead of encoding the payloads
    again (`projections.queue.remember_payloads`)."""
    import projections.leases as lease_proj
    import projections.queue as proj

    results: list[Enqueued] = []
    events: list[QueuedWorkEnqueued] = []
    seqs: dict[str, int] = {}
    fresh: dict[tuple[str, str], Enqueued] = {}
    for n, (draft, work_class) in enumerate(drafts):
        sid, key = draft.session_id, draft.source_key
        if key is not None and (sid, key) in fresh:
            results.append(attrs.evolve(fresh[(sid, key)], created=False, disposition="present"))
            continue
        key_row = proj.get_source_key(db, sid, key) if key is not None else None
        present = None
        if key_row is not None and key_row.status == "present":
            present = proj.get_batch(db, sid, key_row.batch_id, lease_proj.live_generation(db, sid, now_ms))
        last = seqs[sid] if sid in seqs else proj.last_enqueue_seq(db, sid)
        result, ev = decide_enqueue(draft, work_class, last, key_row, present, retention_ms, now_ms)
        results.append(result)
        if ev is not None:
            seqs[sid] = ev.enqueue_seq
            events.append(ev)
            if packed is not None:
                proj.remember_payloads(db, ev, packed[n])
            if key is not None:
                fresh[(sid, key)] = result
    return EnqueuePlan(tuple(results), tuple(events))


__all__ = [
    "DAY_MS",
    "DEFAULT_COMPLETED_SOURCE_KEY_RETENTION_MS",
    "Enqueued",
    "EnqueuePlan",
    "InvalidBatchPayloads",
    "QueuedWorkDraft",
    "batch_from_event",
    "check_draft",
    "check_draft_packed",
    "check_retention",
    "decide_enqueue",
    "derive_batch_id",
    "plan_checked",
    "plan_enqueue",
]
