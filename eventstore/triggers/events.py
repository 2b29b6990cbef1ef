"""Trigger events: subscriptions, command receipts, occurrences and delivery reservations.

Streams (one aggregate each):

* ``trigger:<subscription id>``: one subscription's life (registered, updated,
  enabled, disabled, deleted, revived) and the receipts of commands that changed
  nothing (``trigger.command_answered``: an Unchanged answer or a conflict), so that a
  replayed operation id returns its original answer. Every mutation event is itself the
  receipt of its operation (it carries ``operation_id`` and ``request_hash``).
* ``trigger-occurrence:<occurrence id>``: one ingested occurrence and, in the same
  append, a ``trigger.delivery_reserved`` per subscription it reached.
* ``trigger-owner:<owner scope>``: the receipts of commands that act on several
  subscriptions of one owner scope at once (``trigger.subscriptions_pruned``, the receipt
  of a prune by name; the tombstones themselves go to each subscription's stream).
* ``triggers:maintenance``: retention events (``trigger.pruned``: receipts and
  tombstones; ``trigger.occurrences_forgotten``: occurrences and their idempotency keys).

Receipts are keyed by (owner scope, operation id): the owner scope of a subscription
command is its subscription's, and a retention prune is receipted in the ``host`` scope
(`RETENTION_SCOPE`).

Ids are derived, never random: a subscription id from (owner scope, subscription key),
an occurrence id from its idempotency key, and a delivery's process id from
(subscription, incarnation, occurrence), so that the process registry can adopt a
delivery under a name anyone can recompute.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..events import event, upcaster
from ..effects.envelopes import short_id

MAINTENANCE_STREAM = "triggers:maintenance"
RETENTION_SCOPE = "host"
"""The owner scope a retention prune (`trigger.pruned`) is receipted under: retention is
the deployment's own maintenance, and `host` is the deployment's scope."""


def subscription_id_for(owner_scope: str, subscription_key: str) -> str:
    """The derived id of the subscription (owner scope, subscription key)."""
    return short_id("sub", owner_scope, subscription_key)


def subscription_stream(subscription_id: str) -> str:
    """The stream of one subscription."""
    return f"trigger:{subscription_id}"


def owner_stream(owner_scope: str) -> str:
    """The stream of the receipts of commands on several subscriptions of one owner scope."""
    return f"trigger-owner:{owner_scope}"


def occurrence_id_for(idempotency_key: str) -> str:
    """The derived id of the occurrence ingested under an idempotency key."""
    return short_id("occ", idempotency_key)


def occurrence_stream(occurrence_id: str) -> str:
    """The stream of one occurrence and its delivery reservations."""
    return f"trigger-occurrence:{occurrence_id}"


def delivery_process_id(subscription_id: str, incarnation: int, occurrence_id: str) -> str:
    """The deterministic process id of the delivery of an occurrence to one incarnation."""
    return f"trigger:{subscription_id}:{incarnation}:{occurrence_id}"


@attrs.frozen
class TriggerDefinition:
    """What a subscription listens to and what each delivery starts.

    An occurrence matches when its source_type is equal and source_key is equal (or the
    subscription's source_key is None, which matches every key of that type).
    """

    source_type: str
    source_key: str | None
    process_name: str
    """The process (workflow, tool, agent) a delivery asks the runtime to start."""
    input_template: Any = None
    """A JSON-like value copied into every delivery."""


# --- subscription lifecycle (stream trigger:<id>) ------------------------------------


@event("trigger.subscription_registered")
class SubscriptionRegistered:
    """A new subscription (or a new one under an id whose rows were pruned)."""

    subscription_id: str
    owner_scope: str
    subscription_key: str
    session_id: str | None
    """The session of a `session:` owner scope; None for host-owned subscriptions."""
    definition: TriggerDefinition
    definition_hash: str
    incarnation: int
    revision: int
    enabled: bool
    operation_id: str
    request_hash: str
    at_ms: int


@event("trigger.subscription_updated")
class SubscriptionUpdated:
    """The definition of a live subscription was replaced."""

    subscription_id: str
    definition: TriggerDefinition
    definition_hash: str
    revision: int
    operation_id: str
    request_hash: str
    at_ms: int


@event("trigger.subscription_enabled")
class SubscriptionEnabled:
    """A disabled subscription receives deliveries again."""

    subscription_id: str
    revision: int
    operation_id: str
    request_hash: str
    at_ms: int


@event("trigger.subscription_disabled")
class SubscriptionDisabled:
    """A subscription stops receiving new deliveries; reservations already made stay."""

    subscription_id: str
    revision: int
    operation_id: str
    request_hash: str
    at_ms: int


@event("trigger.subscription_deleted")
class SubscriptionDeleted:
    """A tombstone: the subscription stops matching and keeps its rows and history.

    `operation_id` is None when session cleanup (reason 'session_cleanup') or a prune by
    name (reason 'pruned', receipted by its `trigger.subscriptions_pruned`) deleted it.
    """

    subscription_id: str
    revision: int
    reason: str
    operation_id: str | None
    request_hash: str | None
    at_ms: int


@event("trigger.subscription_revived")
class SubscriptionRevived:
    """A tombstoned subscription lives again under a new incarnation."""

    subscription_id: str
    incarnation: int
    revision: int
    definition: TriggerDefinition
    definition_hash: str
    operation_id: str
    request_hash: str
    at_ms: int


@event("trigger.command_answered", schema=2)
class CommandAnswered:
    """The receipt of a command that changed nothing: Unchanged, or a conflict.

    Recorded so that replaying the operation id returns the same answer even after the
    subscription has moved on (a conflict replays as the same conflict).
    """

    owner_scope: str | None
    """The owner scope the receipt is keyed under (schema 2). None only in events written at
    schema 1, before receipts were keyed by scope; the projection then takes the scope of
    the subscription row, if it still knows one (see projections/triggers.py)."""
    operation_id: str
    request_hash: str
    command: str
    subscription_id: str | None
    outcome: str
    """'unchanged' or 'conflict'."""
    revision: int | None
    incarnation: int | None
    conflict_code: str | None
    conflict_message: str | None
    expected_revision: int | None
    actual_revision: int | None
    at_ms: int


@upcaster("trigger.command_answered", from_schema=1)
def _answered_scope(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 had no owner scope (receipts were keyed by operation id alone)."""
    return {**fields, "owner_scope": None}


# --- prune by name (stream trigger-owner:<owner scope>) -------------------------------


@event("trigger.subscriptions_pruned")
class SubscriptionsPruned:
    """The receipt of a prune by name: the named live subscriptions of one owner scope were
    tombstoned (each by a `trigger.subscription_deleted` with reason 'pruned' on its own
    stream, in the same transaction). The parallel tuples list what was tombstoned, in
    key order, so that a replay returns the original answer."""

    owner_scope: str
    operation_id: str
    request_hash: str
    requested_keys: tuple[str, ...]
    """The keys asked for, sorted and de-duplicated (missing or already deleted ones included)."""
    subscription_keys: tuple[str, ...]
    subscription_ids: tuple[str, ...]
    revisions: tuple[int, ...]
    """Each tombstone's revision (the subscription's revision before it + 1)."""
    incarnations: tuple[int, ...]
    at_ms: int


# --- maintenance (stream triggers:maintenance) ---------------------------------------


@event("trigger.pruned")
class TriggersPruned:
    """Retention: receipts older than the cutoff, and subscriptions tombstoned before it,
    leave the projection (their events stay in the log)."""

    operation_id: str
    request_hash: str
    older_than_ms: int
    subscription_ids: tuple[str, ...]
    receipts_pruned: int
    deliveries_pruned: int
    at_ms: int


@event("trigger.occurrences_forgotten")
class OccurrencesForgotten:
    """Retention: occurrences ingested before `older_than_ms` that have no delivery left
    in the projection leave it, and their idempotency keys with them (a later ingest
    under such a key records a new occurrence). Their events stay in the log.

    The command computed the cutoff from its clock; the applier only compares against it,
    so a rebuild or a time-travel replay forgets exactly the same rows.
    """

    older_than_ms: int
    forgotten: int
    """How many occurrences the command found forgettable (the applier forgets the same ones)."""
    at_ms: int


# --- occurrences (stream trigger-occurrence:<id>) ------------------------------------


@event("trigger.occurrence_recorded")
class OccurrenceRecorded:
    """An external occurrence, ingested once per idempotency key."""

    occurrence_id: str
    idempotency_key: str
    request_hash: str
    source_type: str
    source_key: str
    session_id: str | None
    payload: Any
    delivery_count: int
    at_ms: int


@event("trigger.delivery_reserved")
class DeliveryReserved:
    """A delivery of an occurrence to one subscription incarnation, reserved at ingest."""

    process_id: str
    occurrence_id: str
    subscription_id: str
    owner_scope: str
    incarnation: int
    revision_seen: int
    process_name: str
    input_template: Any
    at_ms: int
