"""The triggers projection: subscriptions, command receipts, occurrences, deliveries.

Tables (all derived from the `trigger:*`, `trigger-occurrence:*` and
`triggers:maintenance` streams):

* ``triggers_subscriptions``: one row per subscription id, tombstones included
  (``deleted = 1``) until a prune retires them;
* ``triggers_retired``: the incarnation and revision (and owner scope) of each pruned
  subscription, so a later registration under the same id continues its numbering;
* ``triggers_receipts``: one row per (owner scope, operation id) with the answer it got
  (until a retention prune drops receipts older than its cutoff). The same operation id
  in two owner scopes is two independent receipts. A receipt recorded before receipts
  were keyed by scope (a schema-1 ``trigger.command_answered`` for a subscription this
  projection does not know) has the owner scope ``''`` (`LEGACY_SCOPE`): it answers for
  its operation id in every scope, as it did when it was written;
* ``triggers_occurrences`` and ``triggers_deliveries``: ingested occurrences and the
  deliveries reserved with them, keyed by their deterministic process id. A delivery
  row leaves when its process is pruned from the registry or its subscription's
  tombstone is pruned; an occurrence row (and with it its idempotency key) leaves when
  `trigger.occurrences_forgotten` names a cutoff after it *and* none of its deliveries
  is left (see `FORGETTABLE`).
"""

from __future__ import annotations

import json
from typing import Any, cast

import attrs

from eventstore.checks import canonical_json
from eventstore.triggers.events import (
    RETENTION_SCOPE,
    CommandAnswered,
    DeliveryReserved,
    OccurrenceRecorded,
    OccurrencesForgotten,
    SubscriptionDeleted,
    SubscriptionDisabled,
    SubscriptionEnabled,
    SubscriptionRegistered,
    SubscriptionRevived,
    SubscriptionUpdated,
    TriggerDefinition,
    SubscriptionsPruned,
    TriggersPruned,
)
from eventstore.triggers.commands import TombstonedSubscription

from eventstore.processes.events import ProcessesPruned
from eventstore.storage import Storage

from projections.base import REGISTRY, Projection, replace_row
from projections._rows import row_reader
from projections._select import select_where

triggers = REGISTRY.register(Projection(
    name="triggers",
    # 2: `trigger.occurrences_forgotten` (occurrence retention) and the occurrence age index.
    # 3: receipts keyed by (owner scope, operation id); `trigger.subscriptions_pruned`.
    version=3,
    tables=("triggers_subscriptions", "triggers_retired", "triggers_receipts",
            "triggers_occurrences", "triggers_deliveries"),
    ddl=(
        """CREATE TABLE IF NOT EXISTS triggers_subscriptions (
            subscription_id  TEXT PRIMARY KEY,
            owner_scope      TEXT NOT NULL,
            subscription_key TEXT NOT NULL,
            session_id       TEXT,
            source_type      TEXT NOT NULL,
            source_key       TEXT,
            process_name     TEXT NOT NULL,
            input_json       TEXT NOT NULL,
            definition_hash  TEXT NOT NULL,
            incarnation      INTEGER NOT NULL,
            revision         INTEGER NOT NULL,
            enabled          INTEGER NOT NULL,
            deleted          INTEGER NOT NULL,
            created_at_ms    INTEGER NOT NULL,
            updated_at_ms    INTEGER NOT NULL,
            deleted_at_ms    INTEGER,
            deliveries       INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS triggers_subscriptions_source "
        "ON triggers_subscriptions (source_type, source_key)",
        "CREATE INDEX IF NOT EXISTS triggers_subscriptions_session ON triggers_subscriptions (session_id)",
        """CREATE TABLE IF NOT EXISTS triggers_retired (
            subscription_id TEXT PRIMARY KEY,
            incarnation     INTEGER NOT NULL,
            revision        INTEGER NOT NULL,
            owner_scope     TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS triggers_receipts (
            owner_scope       TEXT NOT NULL,
            operation_id      TEXT NOT NULL,
            request_hash      TEXT NOT NULL,
            command           TEXT NOT NULL,
            subscription_id   TEXT,
            outcome           TEXT NOT NULL,
            revision          INTEGER,
            incarnation       INTEGER,
            conflict_code     TEXT,
            conflict_message  TEXT,
            expected_revision INTEGER,
            actual_revision   INTEGER,
            pruned_subscriptions INTEGER,
            pruned_receipts   INTEGER,
            pruned_deliveries INTEGER,
            tombstoned_json   TEXT,
            recorded_at_ms    INTEGER NOT NULL,
            PRIMARY KEY (owner_scope, operation_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS triggers_receipts_age ON triggers_receipts (recorded_at_ms)",
        """CREATE TABLE IF NOT EXISTS triggers_occurrences (
            occurrence_id   TEXT PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            request_hash    TEXT NOT NULL,
            source_type     TEXT NOT NULL,
            source_key      TEXT NOT NULL,
            session_id      TEXT,
            payload_json    TEXT NOT NULL,
            delivery_count  INTEGER NOT NULL,
            occurred_at_ms  INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS triggers_deliveries (
            process_id      TEXT PRIMARY KEY,
            occurrence_id   TEXT NOT NULL,
            subscription_id TEXT NOT NULL,
            owner_scope     TEXT NOT NULL,
            incarnation     INTEGER NOT NULL,
            revision_seen   INTEGER NOT NULL,
            process_name    TEXT NOT NULL,
            input_json      TEXT NOT NULL,
            reserved_at_ms  INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS triggers_deliveries_subscription ON triggers_deliveries (subscription_id)",
        "CREATE INDEX IF NOT EXISTS triggers_deliveries_occurrence ON triggers_deliveries (occurrence_id)",
        "CREATE INDEX IF NOT EXISTS triggers_occurrences_age ON triggers_occurrences (occurred_at_ms)",
    ),
))


# --- appliers ----------------------------------------------------------------------


LEGACY_SCOPE = ""
"""The owner scope of a receipt whose scope could not be recovered (see the module doc)."""

_RECEIPT_COLS = ("owner_scope, operation_id, request_hash, command, subscription_id, outcome, revision, "
                 "incarnation, conflict_code, conflict_message, expected_revision, actual_revision, "
                 "pruned_subscriptions, pruned_receipts, pruned_deliveries, tombstoned_json, recorded_at_ms")
_RETIRE = replace_row("triggers_retired", "subscription_id, incarnation, revision, owner_scope", "subscription_id",
                      "SELECT subscription_id, incarnation, revision, owner_scope FROM triggers_subscriptions "
                      "WHERE subscription_id=?")
_INSERT_RECEIPT = f"INSERT INTO triggers_receipts ({_RECEIPT_COLS}) VALUES ({', '.join('?' * 17)})"


def _scope_of(db: Any, subscription_id: str | None) -> str:
    """The owner scope of a subscription id this projection knows (live, tombstoned or
    retired), else LEGACY_SCOPE. Every subscription event after its registration finds its
    row: only the scope of a schema-1 answer about an unknown id is lost."""
    if subscription_id is None:
        return LEGACY_SCOPE
    for table in ("triggers_subscriptions", "triggers_retired"):
        scope = db.scalar(f"SELECT owner_scope FROM {table} WHERE subscription_id=?", (subscription_id,))
        if scope is not None:
            break
    return LEGACY_SCOPE if scope is None else str(scope)


def _receipt(db: Any, operation_id: str | None, request_hash: str | None, command: str,
             subscription_id: str | None, outcome: str, revision: int | None, incarnation: int | None,
             at_ms: int) -> None:
    if operation_id is None:
        return
    db.execute(_INSERT_RECEIPT, (_scope_of(db, subscription_id), operation_id, request_hash, command,
                                 subscription_id, outcome, revision, incarnation, None, None, None, None,
                                 None, None, None, None, at_ms))


def _incarnation(db: Any, subscription_id: str) -> int:
    incarnation: int = db.scalar("SELECT incarnation FROM triggers_subscriptions WHERE subscription_id=?",
                                 (subscription_id,), 0)
    return incarnation


@triggers.on(SubscriptionRegistered)
def _registered(db: Any, ev: Any) -> None:
    e = ev.data
    d = e.definition
    db.execute("DELETE FROM triggers_retired WHERE subscription_id=?", (e.subscription_id,))
    db.execute(
        "INSERT INTO triggers_subscriptions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,?,?,NULL,0)",
        (e.subscription_id, e.owner_scope, e.subscription_key, e.session_id, d.source_type, d.source_key,
         d.process_name, canonical_json(d.input_template), e.definition_hash, e.incarnation, e.revision,
         int(e.enabled), e.at_ms, e.at_ms),
    )
    _receipt(db, e.operation_id, e.request_hash, "register", e.subscription_id, "registered",
             e.revision, e.incarnation, e.at_ms)


@triggers.on(SubscriptionUpdated)
def _updated(db: Any, ev: Any) -> None:
    e = ev.data
    d = e.definition
    db.execute(
        "UPDATE triggers_subscriptions SET source_type=?, source_key=?, process_name=?, input_json=?, "
        "definition_hash=?, revision=?, updated_at_ms=? WHERE subscription_id=?",
        (d.source_type, d.source_key, d.process_name, canonical_json(d.input_template), e.definition_hash,
         e.revision, e.at_ms, e.subscription_id),
    )
    _receipt(db, e.operation_id, e.request_hash, "update", e.subscription_id, "updated", e.revision,
             _incarnation(db, e.subscription_id), e.at_ms)


@triggers.on(SubscriptionEnabled, SubscriptionDisabled)
def _toggled(db: Any, ev: Any) -> None:
    e = ev.data
    enabled = isinstance(e, SubscriptionEnabled)
    db.execute("UPDATE triggers_subscriptions SET enabled=?, revision=?, updated_at_ms=? WHERE subscription_id=?",
               (int(enabled), e.revision, e.at_ms, e.subscription_id))
    _receipt(db, e.operation_id, e.request_hash, "enable" if enabled else "disable", e.subscription_id,
             "enabled" if enabled else "disabled", e.revision, _incarnation(db, e.subscription_id), e.at_ms)


@triggers.on(SubscriptionDeleted)
def _deleted(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute("UPDATE triggers_subscriptions SET deleted=1, revision=?, updated_at_ms=?, deleted_at_ms=? "
               "WHERE subscription_id=?", (e.revision, e.at_ms, e.at_ms, e.subscription_id))
    _receipt(db, e.operation_id, e.request_hash, "delete", e.subscription_id, "deleted", e.revision,
             _incarnation(db, e.subscription_id), e.at_ms)


@triggers.on(SubscriptionRevived)
def _revived(db: Any, ev: Any) -> None:
    e = ev.data
    d = e.definition
    db.execute(
        "UPDATE triggers_subscriptions SET source_type=?, source_key=?, process_name=?, input_json=?, "
        "definition_hash=?, incarnation=?, revision=?, enabled=1, deleted=0, deleted_at_ms=NULL, "
        "updated_at_ms=? WHERE subscription_id=?",
        (d.source_type, d.source_key, d.process_name, canonical_json(d.input_template), e.definition_hash,
         e.incarnation, e.revision, e.at_ms, e.subscription_id),
    )
    _receipt(db, e.operation_id, e.request_hash, "revive", e.subscription_id, "revived", e.revision,
             e.incarnation, e.at_ms)


@triggers.on(CommandAnswered)
def _answered(db: Any, ev: Any) -> None:
    e = ev.data
    scope = e.owner_scope if e.owner_scope is not None else _scope_of(db, e.subscription_id)
    db.execute(_INSERT_RECEIPT, (scope, e.operation_id, e.request_hash, e.command, e.subscription_id,
                                 e.outcome, e.revision, e.incarnation, e.conflict_code, e.conflict_message,
                                 e.expected_revision, e.actual_revision, None, None, None, None, e.at_ms))


@triggers.on(SubscriptionsPruned)
def _pruned_by_name(db: Any, ev: Any) -> None:
    # Only the receipt: each tombstone is its own `trigger.subscription_deleted`.
    e = ev.data
    done = [list(t) for t in zip(e.subscription_keys, e.subscription_ids, e.revisions, e.incarnations)]
    db.execute(_INSERT_RECEIPT, (e.owner_scope, e.operation_id, e.request_hash, "prune",
                                 None, "pruned" if done else "unchanged", None, None, None, None, None, None,
                                 None, None, None, json.dumps(done), e.at_ms))


@triggers.on(TriggersPruned)
def _pruned(db: Any, ev: Any) -> None:
    e = ev.data
    # Order matters: drop the old receipts first, so the prune's own receipt (recorded
    # now) is never caught by its own cutoff.
    db.execute("DELETE FROM triggers_receipts WHERE recorded_at_ms < ?", (e.older_than_ms,))
    for sid in e.subscription_ids:
        db.execute(_RETIRE, (sid,))
        db.execute("DELETE FROM triggers_subscriptions WHERE subscription_id=?", (sid,))
        db.execute("DELETE FROM triggers_deliveries WHERE subscription_id=?", (sid,))
    db.execute(_INSERT_RECEIPT, (RETENTION_SCOPE, e.operation_id, e.request_hash, "prune_history", None,
                                 "pruned", None, None, None, None, None, None, len(e.subscription_ids),
                                 e.receipts_pruned, e.deliveries_pruned, None, e.at_ms))


# The retention rule, shared by the command that counts and the applier that deletes, so
# both always agree: an occurrence is forgettable when it was ingested before the cutoff
# and no delivery of it is left. A delivery row stays until its process is pruned from the
# registry (only terminal processes are, law 86) or its subscription's tombstone is
# pruned, so an occurrence whose delivery was never started, or is still running, is
# never forgotten. This also keeps re-fires safe: a re-fired key derives the same
# occurrence id and, for the same subscription incarnation, the same delivery process id,
# which is only free again once the old process has been pruned.
FORGETTABLE = ("occurred_at_ms < ? AND NOT EXISTS (SELECT 1 FROM triggers_deliveries d "
               "WHERE d.occurrence_id = triggers_occurrences.occurrence_id)")


@triggers.on(OccurrencesForgotten)
def _forgotten(db: Any, ev: Any) -> None:
    db.execute(f"DELETE FROM triggers_occurrences WHERE {FORGETTABLE}", (ev.data.older_than_ms,))


@triggers.on(OccurrenceRecorded)
def _occurred(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute("INSERT INTO triggers_occurrences VALUES (?,?,?,?,?,?,?,?,?)",
               (e.occurrence_id, e.idempotency_key, e.request_hash, e.source_type, e.source_key, e.session_id,
                canonical_json(e.payload), e.delivery_count, e.at_ms))


@triggers.on(DeliveryReserved)
def _reserved(db: Any, ev: Any) -> None:
    e = ev.data
    db.execute("INSERT INTO triggers_deliveries VALUES (?,?,?,?,?,?,?,?,?)",
               (e.process_id, e.occurrence_id, e.subscription_id, e.owner_scope, e.incarnation, e.revision_seen,
                e.process_name, canonical_json(e.input_template), e.at_ms))
    db.execute("UPDATE triggers_subscriptions SET deliveries = deliveries + 1 WHERE subscription_id=?",
               (e.subscription_id,))


# --- read models -------------------------------------------------------------------


@attrs.frozen
class TriggerSubscription:
    """One subscription as the projection holds it (tombstones included)."""

    subscription_id: str
    owner_scope: str
    subscription_key: str
    session_id: str | None
    definition: TriggerDefinition
    definition_hash: str
    incarnation: int
    revision: int
    enabled: bool
    deleted: bool
    created_at_ms: int
    updated_at_ms: int
    deleted_at_ms: int | None
    deliveries: int

    @property
    def state(self) -> str:
        """'deleted', 'enabled' or 'disabled'."""
        return "deleted" if self.deleted else ("enabled" if self.enabled else "disabled")


@attrs.frozen
class TriggerReceipt:
    """The answer an operation id got in one owner scope, kept until retention prunes it.

    `owner_scope` is '' (LEGACY_SCOPE) for a receipt whose scope an old log did not record.
    `tombstoned` lists what a prune by name deleted.
    """

    owner_scope: str
    operation_id: str
    request_hash: str
    command: str
    subscription_id: str | None
    outcome: str
    revision: int | None
    incarnation: int | None
    conflict_code: str | None
    conflict_message: str | None
    expected_revision: int | None
    actual_revision: int | None
    pruned_subscriptions: int | None
    pruned_receipts: int | None
    pruned_deliveries: int | None
    tombstoned: tuple[TombstonedSubscription, ...]
    recorded_at_ms: int


@attrs.frozen
class TriggerOccurrence:
    """An ingested occurrence."""

    occurrence_id: str
    idempotency_key: str
    request_hash: str
    source_type: str
    source_key: str
    session_id: str | None
    payload: Any
    delivery_count: int
    occurred_at_ms: int


@attrs.frozen
class TriggerDelivery:
    """A delivery reserved for one subscription incarnation; the runtime starts `process_id`."""

    process_id: str
    occurrence_id: str
    subscription_id: str
    owner_scope: str
    incarnation: int
    revision_seen: int
    process_name: str
    input_template: Any
    reserved_at_ms: int


# --- queries -----------------------------------------------------------------------

_SUB_COLS = ("subscription_id, owner_scope, subscription_key, session_id, source_type, source_key, process_name, "
             "input_json, definition_hash, incarnation, revision, enabled, deleted, created_at_ms, updated_at_ms, "
             "deleted_at_ms, deliveries")


@row_reader("triggers_subscriptions")
def _sub(row: tuple[Any, ...]) -> TriggerSubscription:
    (sid, scope, key, session, stype, skey, pname, input_json, dhash, inc, rev, enabled, deleted,
     created, updated, deleted_at, deliveries) = row
    return TriggerSubscription(sid, scope, key, session, TriggerDefinition(stype, skey, pname, json.loads(input_json)),
                               dhash, inc, rev, bool(enabled), bool(deleted), created, updated, deleted_at,
                               deliveries)


def get_subscription(db: Any, subscription_id: str) -> TriggerSubscription | None:
    """One subscription by id (tombstoned ones included), or None."""
    row = db.one(f"SELECT {_SUB_COLS} FROM triggers_subscriptions WHERE subscription_id=?", (subscription_id,))
    return None if row is None else _sub(row)


def list_subscriptions(db: Any, owner_scope: str | None = None, session_id: str | None = None,
                       include_deleted: bool = True) -> list[TriggerSubscription]:
    """Subscriptions ordered by owner scope and key, optionally of one scope or one session."""
    sql, params = select_where(f"SELECT {_SUB_COLS} FROM triggers_subscriptions", ("owner_scope=?", owner_scope),
                               ("session_id=?", session_id), None if include_deleted else "deleted=0",
                               order_by="owner_scope, subscription_key")
    return [_sub(r) for r in db.query(sql, params)]


def matching_subscriptions(db: Any, source_type: str, source_key: str,
                           session_id: str | None) -> list[TriggerSubscription]:
    """Enabled, live subscriptions an occurrence reaches, in subscription id order.

    With a session id, only subscriptions owned by that session (or its frames) match.
    """
    sql = (f"SELECT {_SUB_COLS} FROM triggers_subscriptions WHERE enabled=1 AND deleted=0 AND source_type=? "
           "AND (source_key IS NULL OR source_key=?)")
    params: list[Any] = [source_type, source_key]
    if session_id is not None:
        sql += " AND session_id=?"
        params.append(session_id)
    return [_sub(r) for r in db.query(sql + " ORDER BY subscription_id", params)]


def retired(db: Any, subscription_id: str) -> tuple[int, int] | None:
    """(incarnation, revision) of a pruned subscription id, or None."""
    return cast("tuple[int, int] | None", db.one("SELECT incarnation, revision FROM triggers_retired WHERE subscription_id=?", (subscription_id,)))


@row_reader("triggers_receipts")
def get_receipt(db: Any, owner_scope: str, operation_id: str) -> TriggerReceipt | None:
    """The receipt of an operation id in an owner scope, or None (never used there, or
    pruned by retention). A legacy receipt of unknown scope answers for every scope."""
    # ORDER BY owner_scope DESC: the scope's own receipt sorts before the legacy '' one.
    row = db.one(f"SELECT {_RECEIPT_COLS} FROM triggers_receipts WHERE operation_id=? "
                 "AND owner_scope IN (?, ?) ORDER BY owner_scope DESC LIMIT 1",
                 (operation_id, owner_scope, LEGACY_SCOPE))
    if row is None:
        return None
    fields = list(row)
    fields[15] = () if row[15] is None else tuple(TombstonedSubscription(*t) for t in json.loads(row[15]))
    return TriggerReceipt(*fields)


def count_receipts(db: Any, older_than_ms: int | None = None) -> int:
    """How many receipts are kept (only those recorded before `older_than_ms`, if given)."""
    if older_than_ms is None:
        return cast("int", db.scalar("SELECT count(*) FROM triggers_receipts", (), 0))
    return cast("int", db.scalar("SELECT count(*) FROM triggers_receipts WHERE recorded_at_ms < ?", (older_than_ms,), 0))


def tombstoned_before(db: Storage, older_than_ms: int) -> list[tuple[str, int]]:
    """(subscription id, delivery rows) of subscriptions deleted before the cutoff."""
    return db.query(
        "SELECT s.subscription_id, (SELECT count(*) FROM triggers_deliveries d "
        "WHERE d.subscription_id = s.subscription_id) FROM triggers_subscriptions s "
        "WHERE s.deleted=1 AND s.deleted_at_ms < ? ORDER BY s.subscription_id", (older_than_ms,))


@row_reader("triggers_occurrences")
def _occ(row: tuple[Any, ...]) -> TriggerOccurrence:
    # one starred tuple: the same bytecode, and mypy can count it (it miscounts *a, x, *b)
    return TriggerOccurrence(*(*row[:6], json.loads(row[6]), *row[7:]))


def get_occurrence(db: Any, idempotency_key: str) -> TriggerOccurrence | None:
    """The occurrence ingested under an idempotency key, or None."""
    row = db.one("SELECT * FROM triggers_occurrences WHERE idempotency_key=?", (idempotency_key,))
    return None if row is None else _occ(row)


def list_occurrences(db: Any, limit: int | None = None) -> list[TriggerOccurrence]:
    """Occurrences, newest first."""
    sql = "SELECT * FROM triggers_occurrences ORDER BY occurred_at_ms DESC, occurrence_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_occ(r) for r in db.query(sql)]


def count_forgettable_occurrences(db: Any, older_than_ms: int) -> int:
    """How many occurrences a forget with this cutoff would drop (see `FORGETTABLE`)."""
    return cast("int", db.scalar(f"SELECT count(*) FROM triggers_occurrences WHERE {FORGETTABLE}", (older_than_ms,), 0))


@row_reader("triggers_deliveries")
def _dlv(row: tuple[Any, ...]) -> TriggerDelivery:
    return TriggerDelivery(*(*row[:7], json.loads(row[7]), row[8]))  # one starred tuple, as in _occ


def list_deliveries(db: Any, subscription_id: str | None = None,
                    occurrence_id: str | None = None) -> list[TriggerDelivery]:
    """Reserved deliveries, in reservation order, optionally of one subscription or occurrence."""
    sql, params = select_where("SELECT * FROM triggers_deliveries", ("subscription_id=?", subscription_id),
                               ("occurrence_id=?", occurrence_id), order_by="reserved_at_ms, process_id")
    return [_dlv(r) for r in db.query(sql, params)]


@triggers.on(ProcessesPruned)
def _processes_pruned(db: Any, ev: Any) -> None:
    # docs/semantics.md §8 (Prune): a pruned process's trigger deliveries go with it.
    for process_id in ev.data.process_ids:
        db.execute("DELETE FROM triggers_deliveries WHERE process_id = ?", (process_id,))
