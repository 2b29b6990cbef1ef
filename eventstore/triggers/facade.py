"""`store.triggers`: trigger subscriptions, receipted commands, occurrence ingest.

    from .facade import RegisterSubscription, TriggerDefinition, OccurrenceRequest

    d = TriggerDefinition("webhook", "github:push", "run-ci", {"branch": "main"})
    store.triggers.execute("op-1", RegisterSubscription("host", "ci-on-push", d))
    got = store.triggers.ingest(OccurrenceRequest("webhook", "github:push", "delivery-77", {"sha": "abc"}))
    got.deliveries[0].process_id    # 'trigger:sub-...:1:occ-...', deterministic

Commands are decided under the write lock from the `triggers` projection, by the pure
deciders of `triggers.commands`, and appended with their receipt in the same transaction.
Receipts are keyed by (owner scope, operation id). `PruneSubscriptions` tombstones named
keys of one scope; `PruneTriggerHistory` (alias `PruneTriggers`) is retention.

Occurrence retention: an idempotency key de-duplicates re-fires for as long as its
occurrence is kept. `forget_occurrences()` forgets occurrences older than
`occurrence_retention_ms` (default 7 days; None keeps them forever) whose deliveries are
all gone from the projection (each one's process pruned, or its subscription's tombstone
pruned); a later ingest under a forgotten key records a new occurrence.
"""

from __future__ import annotations

import builtins
import datetime as _dt
from typing import TYPE_CHECKING, Any, cast

import attrs

from ..checks import check_int
from ..errors import InvalidArgument
from ..facades import register_facade
from . import commands as tc
from ..effects.envelopes import digest, json_value
from .commands import (  # noqa: F401  (re-exported: the public names of this domain)
    DeleteSubscription,
    DisableSubscription,
    EnableSubscription,
    OccurrenceConflict,
    OperationIdConflict,
    PruneSubscriptions,
    PruneTriggerHistory,
    PruneTriggers,
    RegisterSubscription,
    ReviveSubscription,
    SubscriptionExists,
    SubscriptionNotDeleted,
    SubscriptionNotFound,
    SubscriptionRevisionConflict,
    SubscriptionTombstoned,
    TombstonedSubscription,
    TriggerCommandResult,
    TriggerConflict,
    TriggerError,
    UpdateSubscription,
)
from .events import (
    MAINTENANCE_STREAM,
    DeliveryReserved,
    OccurrenceRecorded,
    OccurrencesForgotten,
    SubscriptionDeleted,
    TriggerDefinition,
    delivery_process_id,
    occurrence_id_for,
    occurrence_stream,
    owner_stream,
    subscription_id_for,
    subscription_stream,
)

if TYPE_CHECKING:
    from ..store import StoreContext
    from projections.triggers import TriggerDelivery, TriggerOccurrence

DAY_MS = 86_400_000
DEFAULT_OCCURRENCE_RETENTION_MS = 7 * DAY_MS
"""How long an occurrence (and its idempotency key) is kept by default: 7 days, like the
queue's settled source keys. Long enough for any webhook sender's retry schedule; it only
applies when `forget_occurrences()` is called, and never to an occurrence whose
deliveries are still in the projection."""

__all__ = [
    "DEFAULT_OCCURRENCE_RETENTION_MS", "DeleteSubscription", "DisableSubscription", "EnableSubscription", "IngestResult", "OccurrenceConflict",
    "OccurrenceRequest", "OperationIdConflict", "PruneSubscriptions", "PruneTriggerHistory", "PruneTriggers",
    "RegisterSubscription", "ReviveSubscription", "SessionCleanupReport", "SubscriptionExists",
    "SubscriptionNotDeleted", "SubscriptionNotFound", "SubscriptionRevisionConflict",
    "SubscriptionTombstoned",
    "TombstonedSubscription", "TriggerCommandResult", "TriggerConflict",
    "TriggerDefinition", "TriggerError", "Triggers", "UpdateSubscription",
]


@attrs.frozen
class OccurrenceRequest:
    """An external occurrence to ingest once per idempotency key.

    With `session_id`, the occurrence is session-bound: it reaches only subscriptions
    owned by that session (`session:<id>` or one of its frames).
    """

    source_type: str
    source_key: str
    idempotency_key: str
    payload: Any = None
    session_id: str | None = None


@attrs.frozen
class IngestResult:
    """The occurrence and the deliveries reserved with it.

    `status` is 'reserved' for a first ingest and 'already_reserved' for a replay of the
    same idempotency key, which returns the original deliveries and writes nothing.
    """

    occurrence: Any
    deliveries: tuple[Any, ...]
    status: str


@attrs.frozen
class SessionCleanupReport:
    """What `delete_session_subscriptions` did: the subscriptions it tombstoned."""

    session_id: str
    deleted: tuple[str, ...]
    already_deleted: int


def _projection() -> Any:
    from projections import triggers as p

    return p


class Triggers:
    """The trigger store facade (`store.triggers`)."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self._retention: int | None = DEFAULT_OCCURRENCE_RETENTION_MS

    @property
    def occurrence_retention_ms(self) -> int | None:
        """How long (ms) `forget_occurrences()` keeps an occurrence and its idempotency key;
        None: forever (then only an explicit cutoff forgets)."""
        return self._retention

    @occurrence_retention_ms.setter
    def occurrence_retention_ms(self, value: int | None) -> None:
        """Set it: an integer of ms >= 0, or None (InvalidArgument otherwise)."""
        if value is not None:
            check_int(value, "occurrence_retention_ms")
        self._retention = value

    # --- commands ----------------------------------------------------------------

    def execute(self, operation_id: str, command: Any) -> TriggerCommandResult:
        """Run one trigger command, receipted under (its owner scope, `operation_id`).

        A replay of the same request returns the original result (`replayed=True`) or
        raises the original conflict again; the same id with another request in the same
        owner scope raises OperationIdConflict (another scope's receipts are independent).
        Conflicts are TriggerConflict subclasses, raised after their receipt is committed.
        `PruneTriggerHistory` is receipted in the `host` scope.
        """
        ctx = self.ctx
        ctx.require_writable("triggers.execute")
        tc.check_name(operation_id, "operation_id")
        p = _projection()
        with ctx.transaction():  # BEGIN IMMEDIATE: receipt lookup, decision and append are atomic
            now = ctx.now_ms()
            name = tc.check_command(command, now)
            req_hash = tc.request_hash(command)
            ctx.require_fresh("triggers")
            scope = tc.receipt_scope(command)
            receipt = p.get_receipt(ctx.db, scope, operation_id)
            if receipt is not None:
                if receipt.request_hash != req_hash:
                    raise OperationIdConflict(operation_id, name, receipt.command, scope)
                return tc.replay_receipt(receipt, scope)
            if isinstance(command, PruneSubscriptions):
                rows = [p.get_subscription(ctx.db, subscription_id_for(scope, key))
                        for key in tc.requested_keys(command)]
                known = [r for r in rows if r is not None]
                tombstones, decision = tc.decide_prune_subscriptions(command, known, operation_id, req_hash,
                                                                     now)
                # One transaction: every tombstone and the receipt commit (or fail) together.
                for sid, tombstone in tombstones:
                    ctx.append(subscription_stream(sid), [tombstone], now_ms=now)
                stream = owner_stream(scope)
            elif isinstance(command, PruneTriggerHistory):
                decision = tc.decide_prune(command, p.tombstoned_before(ctx.db, command.older_than_ms),
                                           p.count_receipts(ctx.db, command.older_than_ms), operation_id,
                                           req_hash, now)
                stream = MAINTENANCE_STREAM
            else:
                sid = subscription_id_for(command.owner_scope, command.subscription_key)
                current = p.get_subscription(ctx.db, sid)
                decision = tc.decide(current, p.retired(ctx.db, sid), command, operation_id, req_hash, now)
                stream = subscription_stream(sid)
            ctx.append(stream, list(decision.events), now_ms=now)
        # Raised after COMMIT on purpose: the conflict's receipt must survive the raise.
        if decision.conflict is not None:
            raise decision.conflict
        assert decision.result is not None
        return decision.result

    def ingest(self, request: OccurrenceRequest) -> IngestResult:
        """Record an occurrence and, in the same append, reserve a delivery for every
        enabled, live subscription it matches. Idempotent per idempotency key: a replay
        returns the original deliveries; a different request raises OccurrenceConflict."""
        ctx = self.ctx
        ctx.require_writable("triggers.ingest")
        _check_request(request)
        payload = json_value(request.payload, "$", "OccurrenceRequest.payload")
        req_hash = digest({"source_type": request.source_type, "source_key": request.source_key,
                           "session_id": request.session_id, "payload": payload})
        occurrence_id = occurrence_id_for(request.idempotency_key)
        p = _projection()
        with ctx.transaction():
            now = ctx.now_ms()
            ctx.require_fresh("triggers")
            existing = p.get_occurrence(ctx.db, request.idempotency_key)
            if existing is not None:
                if existing.request_hash != req_hash:
                    raise OccurrenceConflict(request.idempotency_key, existing.occurrence_id)
                return self._recorded(existing.occurrence_id)
            subs = p.matching_subscriptions(ctx.db, request.source_type, request.source_key, request.session_id)
            deliveries = [DeliveryReserved(delivery_process_id(s.subscription_id, s.incarnation, occurrence_id),
                                           occurrence_id, s.subscription_id, s.owner_scope, s.incarnation,
                                           s.revision, s.definition.process_name, s.definition.input_template,
                                           now) for s in subs]
            occurrence = OccurrenceRecorded(occurrence_id, request.idempotency_key, req_hash, request.source_type,
                                            request.source_key, request.session_id, payload, len(deliveries), now)
            # One append: the occurrence and every reservation commit (or fail) together.
            ctx.append(occurrence_stream(occurrence_id), [occurrence, *deliveries], now_ms=now)
            return IngestResult(p.get_occurrence(ctx.db, request.idempotency_key),
                                tuple(p.list_deliveries(ctx.db, occurrence_id=occurrence_id)), "reserved")

    def forget_occurrences(self, older_than_ms: int | None = None, dry_run: bool = False) -> int:
        """Forget occurrences ingested before the cutoff whose deliveries are all gone from
        the projection; returns how many. Their idempotency keys go with them: a later
        ingest under one records a new occurrence. The cutoff is `older_than_ms`, or now
        minus `occurrence_retention_ms` (None retention and no cutoff: forgets nothing).

        Appends one `trigger.occurrences_forgotten` event carrying the cutoff (none when
        nothing is forgettable); the log keeps the occurrences' events, so time travel to
        before the forget still shows them. `dry_run=True` only counts.
        """
        ctx = self.ctx
        if not isinstance(dry_run, bool):
            raise InvalidArgument(f"dry_run must be True or False, got {dry_run!r}"[:200])
        if older_than_ms is not None:
            check_int(older_than_ms, "forget_occurrences: older_than_ms")
        if not dry_run:
            ctx.require_writable("triggers.forget_occurrences")
        p = _projection()
        if dry_run:
            ctx.require_fresh("triggers")
            cutoff = self._cutoff(older_than_ms, ctx.now_ms())
            return 0 if cutoff is None else p.count_forgettable_occurrences(ctx.db, cutoff)
        with ctx.transaction():  # BEGIN IMMEDIATE: the count and the event see the same rows
            now = ctx.now_ms()
            cutoff = self._cutoff(older_than_ms, now)
            if cutoff is None:
                return 0
            ctx.require_fresh("triggers")
            n = p.count_forgettable_occurrences(ctx.db, cutoff)
            # Nothing to forget writes nothing, so a periodic call on a quiet store adds no events.
            if n:
                ctx.append(MAINTENANCE_STREAM, [OccurrencesForgotten(cutoff, n, now)], now_ms=now)
        return cast("int", n)

    def _cutoff(self, older_than_ms: int | None, now: int) -> int | None:
        """The forget cutoff: the explicit one (not in the future), or now - retention."""
        if older_than_ms is not None:
            if older_than_ms > now:
                raise InvalidArgument(f"forget_occurrences: older_than_ms ({older_than_ms}, "
                                      f"{_iso(older_than_ms)}) is in the future "
                                      f"(now is {_iso(now)})")
            return older_than_ms
        return None if self._retention is None else max(0, now - self._retention)

    def _recorded(self, occurrence_id: str) -> IngestResult:
        """The original answer of an ingest, read back from its stream (deliveries that a
        prune later retired from the projection are still reported). A key ingested again
        after its occurrence was forgotten has several recordings in the stream: the
        latest one (the one the projection holds) and its deliveries are the answer."""
        p = _projection()
        occurrence: TriggerOccurrence | None = None
        deliveries: builtins.list[TriggerDelivery] = []
        for ev in self.ctx.log.read_stream(occurrence_stream(occurrence_id)):
            e = ev.data
            if isinstance(e, OccurrenceRecorded):
                deliveries = []
                occurrence = p.TriggerOccurrence(e.occurrence_id, e.idempotency_key, e.request_hash, e.source_type,
                                                 e.source_key, e.session_id, e.payload, e.delivery_count, e.at_ms)
            elif isinstance(e, DeliveryReserved):
                deliveries.append(p.TriggerDelivery(e.process_id, e.occurrence_id, e.subscription_id,
                                                    e.owner_scope, e.incarnation, e.revision_seen, e.process_name,
                                                    e.input_template, e.at_ms))
        return IngestResult(occurrence, tuple(deliveries), "already_reserved")

    def delete_session_subscriptions(self, session_id: str) -> SessionCleanupReport:
        """Session cleanup: tombstone every live subscription owned by the session (or its
        frames). Host-owned subscriptions are never touched; deliveries and history stay."""
        ctx = self.ctx
        ctx.require_writable("triggers.delete_session_subscriptions")
        tc.check_name(session_id, "session_id")
        p = _projection()
        with ctx.transaction():
            now = ctx.now_ms()
            ctx.require_fresh("triggers")
            rows = p.list_subscriptions(ctx.db, session_id=session_id)
            live = [s for s in rows if not s.deleted]
            for s in live:
                ctx.append(subscription_stream(s.subscription_id),
                           [SubscriptionDeleted(s.subscription_id, s.revision + 1, "session_cleanup", None, None,
                                                now)], now_ms=now)
        return SessionCleanupReport(session_id, tuple(s.subscription_id for s in live), len(rows) - len(live))

    # --- reads -------------------------------------------------------------------

    def get(self, owner_scope: str, subscription_key: str) -> Any:
        """The subscription (owner scope, key), tombstoned or not, or None."""
        tc.check_owner_scope(owner_scope)
        tc.check_name(subscription_key, "subscription_key")
        return self.get_by_id(subscription_id_for(owner_scope, subscription_key))

    def get_by_id(self, subscription_id: str) -> Any:
        """A subscription by its derived id, or None."""
        _check_key(subscription_id, "subscription_id")
        self.ctx.require_fresh("triggers")
        return _projection().get_subscription(self.ctx.db, subscription_id)

    def list(self, owner_scope: str | None = None, session_id: str | None = None,
             include_deleted: bool = True) -> list[Any]:
        """Subscriptions ordered by owner scope and key."""
        _check_key(owner_scope, "owner_scope", optional=True)
        _check_key(session_id, "session_id", optional=True)
        if not isinstance(include_deleted, bool):
            raise InvalidArgument(f"include_deleted must be True or False, got {include_deleted!r}")
        self.ctx.require_fresh("triggers")
        return cast("list[Any]", _projection().list_subscriptions(self.ctx.db, owner_scope, session_id, include_deleted))

    def receipt(self, owner_scope: str, operation_id: str) -> Any:
        """The receipt of an operation id in an owner scope (None if unknown there, or
        pruned). A retention prune's receipt is in the `host` scope."""
        tc.check_owner_scope(owner_scope)
        _check_key(operation_id, "operation_id")
        self.ctx.require_fresh("triggers")
        return _projection().get_receipt(self.ctx.db, owner_scope, operation_id)

    def occurrence(self, idempotency_key: str) -> Any:
        """The occurrence ingested under an idempotency key, or None."""
        _check_key(idempotency_key, "idempotency_key")
        self.ctx.require_fresh("triggers")
        return _projection().get_occurrence(self.ctx.db, idempotency_key)

    def occurrences(self, limit: int | None = None) -> builtins.list[TriggerOccurrence]:
        """Ingested occurrences, newest first."""
        if limit is not None:
            check_int(limit, "limit", 1)
        self.ctx.require_fresh("triggers")
        found: builtins.list[TriggerOccurrence] = _projection().list_occurrences(self.ctx.db, limit)
        return found

    def deliveries(self, subscription_id: str | None = None,
                   occurrence_id: str | None = None) -> builtins.list[TriggerDelivery]:
        """Reserved deliveries, optionally of one subscription or one occurrence."""
        _check_key(subscription_id, "subscription_id", optional=True)
        _check_key(occurrence_id, "occurrence_id", optional=True)
        self.ctx.require_fresh("triggers")
        found: builtins.list[TriggerDelivery] = _projection().list_deliveries(self.ctx.db, subscription_id,
                                                                              occurrence_id)
        return found


def _check_key(value: Any, what: str, optional: bool = False) -> None:
    """A lookup key must be a string (None too when optional); an unknown key finds nothing."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string{' or None' if optional else ''}, got {value!r}"[:200])


def _check_request(r: Any) -> None:
    if not isinstance(r, OccurrenceRequest):
        raise InvalidArgument(f"request must be an OccurrenceRequest, got {type(r).__name__}")
    tc.check_name(r.source_type, "OccurrenceRequest.source_type")
    tc.check_name(r.source_key, "OccurrenceRequest.source_key")
    tc.check_name(r.idempotency_key, "OccurrenceRequest.idempotency_key")
    if r.session_id is not None:
        tc.check_name(r.session_id, "OccurrenceRequest.session_id")


def _iso(ms: int) -> str:
    """`2099-01-01T00:00:00.000Z` for an error message (the CLI's time format)."""
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


register_facade("triggers", Triggers)

