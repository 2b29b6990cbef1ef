"""The queued-work tables: present batches, known source keys, and each session's sequence.

* `queue_batches`: one row per batch still in the queue (pending or claimed), keyed by
  (session, enqueue_seq) so that a claim's candidate scan is a short range scan in
  queue order, whatever the length of the queue. Completion and cancellation delete
  the row.
* `queue_source_keys`: one row per source key a batch was enqueued with. While the
  batch is present the row points at it; once the batch is completed or cancelled the
  row keeps a snapshot of the batch and the time it was settled, so that replaying the
  same source key (a redelivered process wake) returns the settled batch instead of
  enqueuing the work twice. `queue.source_keys_forgotten` events prune old rows, and a
  process prune (`process.pruned`) forgets the wake keys of the pruned processes (see
  `_processes_pruned`).
* `queue_sessions`: the last enqueue sequence number of each session. It survives the
  deletion of the batches (and of the session), and a purge raises it to the purged
  stream's version, so ids are never reused.

Appliers copy what the events decided. Whether a claim is *live* depends on the session
lease at the reader's `now`; readers pass the live lease generation in.
"""

from __future__ import annotations

from typing import Any, cast, Iterable, Sequence

import attrs

from eventstore import codec
from eventstore.processes.events import ProcessesPruned
from eventstore.queue.events import (
    DeliveryPolicy,
    MergeKey,
    Payload,
    QueuedSourceKeysForgotten,
    QueuedWorkCancelled,
    QueuedWorkClaimAbandoned,
    QueuedWorkClaimed,
    QueuedWorkCompleted,
    QueuedWorkEnqueued,
    SlotPolicy,
    WorkClass,
    is_wake_source_key_of,
    item_id,
    wake_source_key_prefix,
)
from eventstore.sessions.events import SessionDeletedEvent, SessionPurged

from projections._claims import CLEAR_CLAIM, SET_CLAIM, claim_values
from projections.base import REGISTRY, Projection, replace_row
from projections._rows import row_reader

PRESENT = "present"
COMPLETED = "completed"
CANCELLED = "cancelled"

queue = REGISTRY.register(
    Projection(
        name="queue",
        # 3: process prunes forget their wake keys (forget_on_settle, the wake-key index).
        version=3,
        tables=("queue_batches", "queue_source_keys", "queue_sessions"),
        ddl=(
            """CREATE TABLE IF NOT EXISTS queue_batches (
                session_id           TEXT    NOT NULL,
                enqueue_seq          INTEGER NOT NULL,
                batch_id             TEXT    NOT NULL,
                source_key           TEXT,
                delivery_policy      TEXT    NOT NULL,
                slot_policy          TEXT    NOT NULL,
                merge_key            TEXT    NOT NULL,
                available_at_ms      INTEGER NOT NULL,
                enqueued_at_ms       INTEGER NOT NULL,
                work_class           TEXT    NOT NULL,
                payloads             BLOB    NOT NULL,
                claim_fencing_token  INTEGER NOT NULL,
                claim_id             TEXT,
                claim_owner_id       TEXT,
                claim_incarnation_id TEXT,
                claim_token          TEXT,
                claim_generation     INTEGER,
                claimed_at_ms        INTEGER,
                PRIMARY KEY (session_id, enqueue_seq)
            ) WITHOUT ROWID""",
            "CREATE UNIQUE INDEX IF NOT EXISTS queue_batches_by_id ON queue_batches (session_id, batch_id)",
            "CREATE INDEX IF NOT EXISTS queue_batches_by_claim ON queue_batches (session_id, claim_id) "
            "WHERE claim_id IS NOT NULL",
            """CREATE TABLE IF NOT EXISTS queue_source_keys (
                session_id      TEXT NOT NULL,
                source_key      TEXT NOT NULL,
                batch_id        TEXT NOT NULL,
                status          TEXT NOT NULL,
                settled_at_ms   INTEGER,
                enqueue_seq     INTEGER,
                delivery_policy TEXT,
                slot_policy     TEXT,
                merge_key       TEXT,
                available_at_ms INTEGER,
                enqueued_at_ms  INTEGER,
                work_class      TEXT,
                payloads        BLOB,
                forget_on_settle INTEGER NOT NULL,
                PRIMARY KEY (session_id, source_key)
            ) WITHOUT ROWID""",
            # Process wake keys by key across sessions, for a process prune (only wake keys:
            # other keyed enqueues pay nothing). The prune's query repeats this WHERE term.
            "CREATE INDEX IF NOT EXISTS queue_source_keys_wakes ON queue_source_keys (source_key) "
            "WHERE source_key GLOB 'process:*:wake'",
            """CREATE TABLE IF NOT EXISTS queue_sessions (
                session_id       TEXT PRIMARY KEY,
                last_enqueue_seq INTEGER NOT NULL
            ) WITHOUT ROWID""",
        ),
    )
)


# --- payload encoding ------------------------------------------------------------------


@attrs.frozen
class _Payloads:
    items: tuple[Payload, ...]


def encode_payloads(payloads: Sequence[Any]) -> bytes:
    """The stored form of a batch's payloads (msgpack of the tagged payload list)."""
    return codec.pack(codec.class_codec(_Payloads).to_plain(_Payloads(tuple(payloads))))


def decode_payloads(data: bytes) -> tuple[Any, ...]:
    """Payload instances back from `encode_payloads`."""
    return cast("tuple[Any, ...]", codec.class_codec(_Payloads).from_plain(codec.unpack(data)).items)


# Memo (Storage.memo) of payloads an enqueue command has already encoded, to check them:
# (_PACKED, batch id) -> (the event's payload tuple, its encode_payloads bytes). The
# applier takes the bytes only for that very tuple object, so an entry can never stand
# for other payloads; rebuild, time travel and verify find no entry and encode.
_PACKED = "queue.packed"


def remember_payloads(db: Any, ev: QueuedWorkEnqueued, packed: bytes) -> None:
    """Leave `packed` (encode_payloads of `ev.payloads`) for the applier of `ev`, when
    inside a write transaction; the caller appends `ev` next, in that transaction."""
    memo = db.memo()
    if memo is not None:
        memo[(_PACKED, ev.batch_id)] = (ev.payloads, packed)


# --- appliers --------------------------------------------------------------------------


_NEW_SOURCE_KEY = replace_row(
    "queue_source_keys", "session_id, source_key, batch_id, status, settled_at_ms, enqueue_seq, delivery_policy, "
    "slot_policy, merge_key, available_at_ms, enqueued_at_ms, work_class, payloads, forget_on_settle",
    "session_id, source_key", "VALUES (?,?,?,?,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,0)")


@queue.on(QueuedWorkEnqueued)
def _enqueued(db: Any, ev: Any) -> None:
    e: QueuedWorkEnqueued = ev.data
    memo = db.memo()
    known = memo.pop((_PACKED, e.batch_id), None) if memo else None
    payloads = known[1] if known is not None and known[0] is e.payloads else encode_payloads(e.payloads)
    db.execute(
        "INSERT INTO queue_batches VALUES (?,?,?,?,?,?,?,?,?,?,?,0,NULL,NULL,NULL,NULL,NULL,NULL)",
        (e.session_id, e.enqueue_seq, e.batch_id, e.source_key, e.delivery_policy.value, e.slot_policy.value,
         e.merge_key.wire, e.available_at_ms, e.enqueued_at_ms, e.work_class.value, payloads),
    )
    db.execute(
        "INSERT INTO queue_sessions VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE "
        "SET last_enqueue_seq = excluded.last_enqueue_seq WHERE excluded.last_enqueue_seq > queue_sessions.last_enqueue_seq",
        (e.session_id, e.enqueue_seq),
    )
    if e.source_key is not None:
        # A whole-row replace: a key whose settled batch outlived its retention starts over.
        db.execute(
            _NEW_SOURCE_KEY,
            (e.session_id, e.source_key, e.batch_id, PRESENT),
        )


@queue.on(QueuedWorkClaimed)
def _claimed(db: Any, ev: Any) -> None:
    e: QueuedWorkClaimed = ev.data
    values = claim_values(e)
    db.executemany(
        f"UPDATE queue_batches SET {SET_CLAIM} WHERE session_id = ? AND batch_id = ?",
        [(*values, e.session_id, b) for b in e.batch_ids],
    )


@queue.on(QueuedWorkClaimAbandoned)
def _abandoned(db: Any, ev: Any) -> None:
    e: QueuedWorkClaimAbandoned = ev.data
    db.executemany(
        f"UPDATE queue_batches SET {CLEAR_CLAIM} "
        "WHERE session_id = ? AND batch_id = ? AND claim_id = ? AND claim_token = ?",
        [(e.session_id, b, e.claim_id, e.lease_token) for b in e.batch_ids],
    )


# Memo (Storage.memo) of the source keys of the batches a completion check read
# (`claim_holdings`): (_KEYS, session_id) -> {batch_id: source_key}. A batch's source key
# never changes while its row exists; `_settle` takes each entry as it removes the row,
# and deleting or purging a session drops the session's entries.
_KEYS = "queue.keys"
_UNKNOWN = object()


def _settle(db: Any, session_id: str, batch_ids: Iterable[str], status: str, at_ms: int) -> None:
    """Remove batches from the queue; their source keys keep a snapshot of them (unless
    their process was pruned meanwhile: then the key is forgotten, see `_processes_pruned`)."""
    memo = db.memo()
    known = memo.get((_KEYS, session_id)) if memo else None
    for batch_id in batch_ids:
        key = known.pop(batch_id, _UNKNOWN) if known else _UNKNOWN
        if key is _UNKNOWN:
            key = db.scalar("SELECT source_key FROM queue_batches WHERE session_id = ? AND batch_id = ?",
                            (session_id, batch_id))
        if key is not None:
            db.execute("DELETE FROM queue_source_keys WHERE session_id = ? AND source_key = ? AND batch_id = ? "
                       "AND forget_on_settle = 1", (session_id, key, batch_id))
            # Numbered parameters: ?1 session, ?2 batch, ?3 status, ?4 time, ?5 source key.
            db.execute(
                "UPDATE queue_source_keys SET status = ?3, settled_at_ms = ?4, (enqueue_seq, delivery_policy, "
                "slot_policy, merge_key, available_at_ms, enqueued_at_ms, work_class, payloads) = "
                "(SELECT enqueue_seq, delivery_policy, slot_policy, merge_key, available_at_ms, enqueued_at_ms, "
                "work_class, payloads FROM queue_batches b WHERE b.session_id = ?1 AND b.batch_id = ?2) "
                "WHERE session_id = ?1 AND source_key = ?5 AND batch_id = ?2",
                (session_id, batch_id, status, at_ms, key),
            )
        db.execute("DELETE FROM queue_batches WHERE session_id = ? AND batch_id = ?", (session_id, batch_id))


@queue.on(QueuedWorkCancelled)
def _cancelled(db: Any, ev: Any) -> None:
    e: QueuedWorkCancelled = ev.data
    _settle(db, e.session_id, (e.batch_id,), CANCELLED, e.cancelled_at_ms)


@queue.on(QueuedWorkCompleted)
def _completed(db: Any, ev: Any) -> None:
    e: QueuedWorkCompleted = ev.data
    _settle(db, e.session_id, e.batch_ids, COMPLETED, e.completed_at_ms)


@queue.on(QueuedSourceKeysForgotten)
def _forgotten(db: Any, ev: Any) -> None:
    e: QueuedSourceKeysForgotten = ev.data
    db.execute("DELETE FROM queue_source_keys WHERE session_id = ? AND status <> ? AND settled_at_ms < ?",
               (e.session_id, PRESENT, e.settled_before_ms))


@queue.on(ProcessesPruned)
def _processes_pruned(db: Any, ev: Any) -> None:
    # A pruned process id may be registered again, and its sequence numbers then restart
    # at 1: its wakes reuse the old process's source keys (`process:<id>:event:<seq>:wake`,
    # the reference's format, kept). So the settled keys of the pruned processes are
    # forgotten, in every session, or the new process's first wakes would read as already
    # completed and never be enqueued.
    #
    # A key whose batch is still queued (pending or claimed) is kept with its batch: that
    # is real work, and the reference returns a present batch for its key (law 29), so a
    # wake of the re-registered id with the same key joins it. It is marked instead, so
    # that it is forgotten, not remembered, when the batch settles: a wake of the new
    # process arriving after that enqueues again rather than being lost.
    #
    # Keys are matched exactly, never with LIKE (ids may hold `%`, `_` or `:`): a range on
    # the prefix (`;` follows `:`, so [prefix, prefix with `;` for its last `:`) holds
    # exactly the keys that start with it), then `is_wake_source_key_of`, so `p1` touches
    # neither `p10`'s keys nor those of the id `p1:event:1`.
    for process_id in ev.data.process_ids:
        low = wake_source_key_prefix(process_id)
        rows = db.query("SELECT session_id, source_key, status FROM queue_source_keys "
                        "INDEXED BY queue_source_keys_wakes WHERE source_key GLOB 'process:*:wake' "
                        "AND source_key >= ? AND source_key < ?", (low, low[:-1] + ";"))
        mine = [(sid, key, status) for sid, key, status in rows if is_wake_source_key_of(process_id, key)]
        db.executemany("DELETE FROM queue_source_keys WHERE session_id = ? AND source_key = ?",
                       [(sid, key) for sid, key, status in mine if status != PRESENT])
        db.executemany("UPDATE queue_source_keys SET forget_on_settle = 1 WHERE session_id = ? AND source_key = ?",
                       [(sid, key) for sid, key, status in mine if status == PRESENT])


def _forget_keys(db: Any, session_id: str) -> None:
    memo = db.memo()
    if memo:
        memo.pop((_KEYS, session_id), None)


@queue.on(SessionDeletedEvent)
def _session_deleted(db: Any, ev: Any) -> None:
    # A deleted session's work is gone with it; its sequence counter stays, so that a
    # recreated session never reuses a batch id.
    sid = ev.data.session_id
    _forget_keys(db, sid)
    db.execute("DELETE FROM queue_batches WHERE session_id = ?", (sid,))
    db.execute("DELETE FROM queue_source_keys WHERE session_id = ?", (sid,))


@queue.on(SessionPurged)
def _session_purged(db: Any, ev: Any) -> None:
    # After a purge a rebuild sees none of the session's events (their payloads are
    # gone), so everything derived from them must go. The counter is not dropped but
    # raised to the stream's version at the purge, which the purge record carries (so a
    # rebuild derives the same value): every enqueue added an event to the stream, so a
    # recreated session never reissues a sequence number, hence never a batch id, a claim
    # id or a claim lease token of the purged generation (a stale claim could settle them).
    sid = ev.data.session_id
    _forget_keys(db, sid)
    for table in ("queue_batches", "queue_source_keys"):
        db.execute(f"DELETE FROM {table} WHERE session_id = ?", (sid,))
    db.execute("INSERT INTO queue_sessions VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE "
               "SET last_enqueue_seq = excluded.last_enqueue_seq WHERE excluded.last_enqueue_seq > queue_sessions.last_enqueue_seq",
               (sid, ev.data.through_version))


# --- reads -----------------------------------------------------------------------------


@attrs.frozen
class QueuedItem:
    """One payload of a batch, with its derived id `{batch_id}:item:{index}`."""

    item_id: str
    payload: Payload


@attrs.frozen
class BatchClaim:
    """Who claimed a batch and under which session lease generation."""

    claim_id: str
    owner_id: str
    incarnation_id: str
    generation: int
    claimed_at_ms: int
    live: bool
    """True when the generation is the session's live lease generation at the read's `now`."""


@attrs.frozen
class QueuedBatch:
    """A batch of queued work.

    `state` is "pending" (no claim, or a claim that is not live), "claimed" (a live
    claim holds it), or, for a source-key replay of settled work, "completed" or
    "cancelled".
    """

    session_id: str
    batch_id: str
    enqueue_seq: int
    source_key: str | None
    delivery_policy: DeliveryPolicy
    slot_policy: SlotPolicy
    merge_key: MergeKey
    available_at_ms: int
    enqueued_at_ms: int
    work_class: WorkClass
    items: tuple[QueuedItem, ...]
    state: str = "pending"
    claim: BatchClaim | None = None
    claim_fencing_token: int = 0
    """How many times the batch was claimed (the next claim's fencing token is this + 1)."""
    settled_at_ms: int | None = None

    @property
    def payloads(self) -> tuple[Payload, ...]:
        """The items' payloads, in order."""
        return tuple(i.payload for i in self.items)


@attrs.frozen
class CandidateRow:
    """The claim-relevant columns of one batch row (no payload decoding)."""

    enqueue_seq: int
    batch_id: str
    delivery_policy: DeliveryPolicy
    slot_policy: SlotPolicy
    merge_key: MergeKey
    work_class: WorkClass
    available_at_ms: int
    claim_fencing_token: int
    claim_id: str | None
    claim_token: str | None
    claim_generation: int | None


_BATCH_COLUMNS = ("session_id, enqueue_seq, batch_id, source_key, delivery_policy, slot_policy, merge_key, "
                  "available_at_ms, enqueued_at_ms, work_class, payloads, claim_fencing_token, claim_id, "
                  "claim_owner_id, claim_incarnation_id, claim_generation, claimed_at_ms")
_CANDIDATE_COLUMNS = ("enqueue_seq, batch_id, delivery_policy, slot_policy, merge_key, work_class, available_at_ms, "
                      "claim_fencing_token, claim_id, claim_token, claim_generation")


@row_reader("queue_batches")
def _items(batch_id: str, payloads: bytes) -> tuple[QueuedItem, ...]:
    return tuple(QueuedItem(item_id(batch_id, i), p) for i, p in enumerate(decode_payloads(payloads)))


@row_reader("queue_batches")
def _batch(r: tuple[Any, ...], live_generation: int | None) -> QueuedBatch:
    claim = None
    state = "pending"
    if r[12] is not None:
        live = live_generation is not None and r[15] == live_generation
        claim = BatchClaim(r[12], r[13], r[14], r[15], r[16], live)
        state = "claimed" if live else "pending"
    return QueuedBatch(r[0], r[2], r[1], r[3], DeliveryPolicy(r[4]), SlotPolicy(r[5]), MergeKey.from_wire(r[6]),
                       r[7], r[8], WorkClass(r[9]), _items(r[2], r[10]), state, claim, r[11])


_DELIVERY = {e.value: e for e in DeliveryPolicy}
_SLOT = {e.value: e for e in SlotPolicy}
_CLASS = {e.value: e for e in WorkClass}
_MERGE: dict[str, MergeKey] = {}


def _merge_key(wire: str) -> MergeKey:
    # Dict lookups instead of Enum() and MergeKey parsing: a claim decodes max + 32 rows.
    key = _MERGE.get(wire)
    if key is None:
        key = MergeKey.from_wire(wire)
        if len(_MERGE) < 10_000:
            _MERGE[wire] = key
    return key


@row_reader("queue_batches")
def _candidate(r: tuple[Any, ...]) -> CandidateRow:
    return CandidateRow(r[0], r[1], _DELIVERY[r[2]], _SLOT[r[3]], _merge_key(r[4]), _CLASS[r[5]], r[6], r[7], r[8],
                        r[9], r[10])


def list_batches(db: Any, session_id: str, live_generation: int | None, *, pending_only: bool = False,
                 limit: int | None = None) -> list[QueuedBatch]:
    """The session's batches in enqueue order; with `pending_only`, those without a live claim."""
    sql = f"SELECT {_BATCH_COLUMNS} FROM queue_batches WHERE session_id = ?"
    params: list[Any] = [session_id]
    if pending_only and live_generation is not None:
        sql += " AND (claim_token IS NULL OR claim_generation <> ?)"
        params.append(live_generation)
    sql += " ORDER BY enqueue_seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_batch(r, live_generation) for r in db.query(sql, params)]


def get_batch(db: Any, session_id: str, batch_id: str, live_generation: int | None) -> QueuedBatch | None:
    """One present batch, or None."""
    r = db.one(f"SELECT {_BATCH_COLUMNS} FROM queue_batches WHERE session_id = ? AND batch_id = ?",
               (session_id, batch_id))
    return None if r is None else _batch(r, live_generation)


def get_batches(db: Any, session_id: str, batch_ids: Sequence[str], live_generation: int | None) -> list[QueuedBatch]:
    """Present batches by id, in enqueue order (missing ids are left out)."""
    out = []
    for b in batch_ids:
        batch = get_batch(db, session_id, b, live_generation)
        if batch is not None:
            out.append(batch)
    return sorted(out, key=lambda x: x.enqueue_seq)


def candidates(db: Any, session_id: str, now_ms: int, generation: int, limit: int) -> list[CandidateRow]:
    """Ready rows not held by `generation`, in enqueue order, at most `limit` of them.

    Rows held by the current generation are filtered *before* the limit (law 44), and
    rows that are not ready yet are skipped, never blocking the rows behind them. The
    primary key makes this a range scan from the head of the session's queue.
    """
    rows = db.query(
        f"SELECT {_CANDIDATE_COLUMNS} FROM queue_batches WHERE session_id = ? AND available_at_ms <= ? "
        "AND (claim_token IS NULL OR claim_generation <> ?) ORDER BY enqueue_seq LIMIT ?",
        (session_id, now_ms, generation, limit),
    )
    return [_candidate(r) for r in rows]


def candidate_rows(db: Any, session_id: str, batch_ids: Sequence[str]) -> list[CandidateRow | None]:
    """The claim columns of the named batches, in the order given (None for a missing id)."""
    out: list[CandidateRow | None] = []
    for b in batch_ids:
        r = db.one(f"SELECT {_CANDIDATE_COLUMNS} FROM queue_batches WHERE session_id = ? AND batch_id = ?",
                   (session_id, b))
        out.append(None if r is None else _candidate(r))
    return out


def claim_holdings(db: Any, session_id: str, claim_id: str) -> list[tuple[str, str, int]]:
    """(batch_id, lease token, generation) of every row the claim `claim_id` holds.

    Inside a write transaction the rows' source keys are remembered for the settling
    applier (`_settle`), which then need not read them again."""
    rows = db.query(
        # INDEXED BY: without statistics the planner prefers the primary key's session range.
        "SELECT batch_id, claim_token, claim_generation, source_key FROM queue_batches "
        "INDEXED BY queue_batches_by_claim WHERE session_id = ? AND claim_id = ?",
        (session_id, claim_id))
    memo = db.memo()
    if memo is not None and rows:
        keys = memo.get((_KEYS, session_id))
        if keys is None:
            keys = memo[(_KEYS, session_id)] = {}
        for r in rows:
            keys[r[0]] = r[3]
    return [(r[0], r[1], r[2]) for r in rows]


def last_enqueue_seq(db: Any, session_id: str) -> int:
    """The session's last enqueue sequence number (0 before its first batch)."""
    return cast("int", db.scalar("SELECT last_enqueue_seq FROM queue_sessions WHERE session_id = ?", (session_id,), 0))


@attrs.frozen
class SourceKeyRow:
    """What a source key points at: a present batch, or the snapshot of a settled one."""

    session_id: str
    source_key: str
    batch_id: str
    status: str
    settled_at_ms: int | None
    batch: QueuedBatch | None
    """The settled batch's snapshot (None while the batch is present: read it from the queue)."""


def get_source_key(db: Any, session_id: str, source_key: str) -> SourceKeyRow | None:
    """The row of one source key, or None if it is unknown (never used, or forgotten)."""
    r = db.one("SELECT session_id, source_key, batch_id, status, settled_at_ms, enqueue_seq, delivery_policy, "
               "slot_policy, merge_key, available_at_ms, enqueued_at_ms, work_class, payloads "
               "FROM queue_source_keys WHERE session_id = ? AND source_key = ?", (session_id, source_key))
    if r is None:
        return None
    batch = None
    if r[3] != PRESENT and r[5] is not None:
        batch = QueuedBatch(r[0], r[2], r[5], r[1], DeliveryPolicy(r[6]), SlotPolicy(r[7]), MergeKey.from_wire(r[8]),
                            r[9], r[10], WorkClass(r[11]), _items(r[2], r[12]), r[3], None, 0, r[4])
    return SourceKeyRow(r[0], r[1], r[2], r[3], r[4], batch)


def count_settled_source_keys(db: Any, session_id: str, settled_before_ms: int | None = None) -> int:
    """How many settled source keys the session remembers (settled before the cutoff, if given)."""
    sql = "SELECT count(*) FROM queue_source_keys WHERE session_id = ? AND status <> ?"
    params: list[Any] = [session_id, PRESENT]
    if settled_before_ms is not None:
        sql += " AND settled_at_ms < ?"
        params.append(settled_before_ms)
    return cast("int", db.scalar(sql, params, 0))


def session_ids(db: Any) -> list[str]:
    """Every session that has batches in the queue, ordered."""
    return [r[0] for r in db.query("SELECT DISTINCT session_id FROM queue_batches ORDER BY session_id")]
