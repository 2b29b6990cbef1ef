"""Trigger commands, their results and errors, and the pure deciders behind them.

Every mutation goes through `store.triggers.execute(operation_id, command)`. The
deciders here are pure functions of (state, command, now): they return the events to
append and either a result or a conflict. A conflict is *recorded* (as a
`trigger.command_answered` receipt) before it is raised, so that replaying the same
operation id answers with the same conflict even after the subscription has changed.
Receipts are keyed by (owner scope, operation id): `receipt_scope(command)`.
"""

from __future__ import annotations

import re
from typing import Any, cast

import attrs

from ..errors import InvalidArgument, StoreError
from ..effects.envelopes import digest, json_value
from .events import (
    RETENTION_SCOPE,
    CommandAnswered,
    SubscriptionDeleted,
    SubscriptionDisabled,
    SubscriptionEnabled,
    SubscriptionRegistered,
    SubscriptionRevived,
    SubscriptionsPruned,
    SubscriptionUpdated,
    TriggerDefinition,
    TriggersPruned,
    subscription_id_for,
)

MAX_NAME = 256
MAX_PRUNE_KEYS = 1000
"""The most subscription keys one `PruneSubscriptions` may name (it is one transaction)."""

# --- errors --------------------------------------------------------------------------


class TriggerError(StoreError):
    """Base class of the trigger store's errors."""


class TriggerConflict(TriggerError):
    """A command could not apply to the subscription as it stands. Recorded as a receipt:
    replaying the operation id raises the same conflict again (with `replayed=True`)."""

    code = "conflict"

    def __init__(self, message: str, *, operation_id: str, subscription_id: str | None,
                 expected_revision: int | None = None, actual_revision: int | None = None,
                 replayed: bool = False) -> None:
        self.operation_id = operation_id
        self.subscription_id = subscription_id
        self.expected_revision = expected_revision
        self.actual_revision = actual_revision
        self.replayed = replayed
        self.detail = message
        suffix = f" (the recorded answer to operation {operation_id!r}, replayed)" if replayed else ""
        super().__init__(message + suffix)


class SubscriptionExists(TriggerConflict):
    """Register found the key already registered with another definition (no upsert)."""

    code = "subscription_exists"


class SubscriptionNotFound(TriggerConflict):
    """The command names a subscription that was never registered (or was pruned)."""

    code = "subscription_not_found"


class SubscriptionRevisionConflict(TriggerConflict):
    """The expected revision is not the subscription's current revision."""

    code = "revision_conflict"


class SubscriptionTombstoned(TriggerConflict):
    """The subscription is deleted: revive it first (register does not bring it back)."""

    code = "subscription_deleted"


class SubscriptionNotDeleted(TriggerConflict):
    """Revive was asked for a subscription that is not deleted."""

    code = "subscription_not_deleted"


CONFLICTS: dict[str, type[TriggerConflict]] = {c.code: c for c in (
    SubscriptionExists, SubscriptionNotFound, SubscriptionRevisionConflict, SubscriptionTombstoned,
    SubscriptionNotDeleted)}


class OperationIdConflict(TriggerError):
    """An operation id was reused, in the same owner scope, with a different request;
    nothing was written."""

    def __init__(self, operation_id: str, command: str, recorded_command: str,
                 owner_scope: str = "host") -> None:
        self.operation_id = operation_id
        self.owner_scope = owner_scope
        super().__init__(f"operation id {operation_id!r} of owner scope {owner_scope!r} was already used "
                         f"for a different {recorded_command} request; this {command} request differs "
                         f"(use a new operation id)")


class OccurrenceConflict(TriggerError):
    """An idempotency key was reused with a different occurrence; nothing was written."""

    def __init__(self, idempotency_key: str, occurrence_id: str) -> None:
        self.idempotency_key = idempotency_key
        self.occurrence_id = occurrence_id
        super().__init__(f"idempotency key {idempotency_key!r} was already ingested as occurrence "
                         f"{occurrence_id} with a different source or payload")


# --- commands ------------------------------------------------------------------------


@attrs.frozen
class RegisterSubscription:
    """Create a subscription under (owner scope, key). Never overwrites one (no upsert)."""

    owner_scope: str
    subscription_key: str
    definition: TriggerDefinition
    enabled: bool = True


@attrs.frozen
class UpdateSubscription:
    """Replace the definition of a live subscription at `expected_revision`."""

    owner_scope: str
    subscription_key: str
    expected_revision: int
    definition: TriggerDefinition


@attrs.frozen
class EnableSubscription:
    """Let a disabled subscription receive deliveries again."""

    owner_scope: str
    subscription_key: str
    expected_revision: int


@attrs.frozen
class DisableSubscription:
    """Stop new deliveries to a subscription (existing reservations stay)."""

    owner_scope: str
    subscription_key: str
    expected_revision: int


@attrs.frozen
class DeleteSubscription:
    """Tombstone a subscription: it stops matching and keeps its rows and history."""

    owner_scope: str
    subscription_key: str
    expected_revision: int


@attrs.frozen
class ReviveSubscription:
    """Bring a deleted subscription back under a new incarnation (optionally redefined)."""

    owner_scope: str
    subscription_key: str
    expected_revision: int
    definition: TriggerDefinition | None = None


@attrs.frozen
class PruneSubscriptions:
    """Tombstone the named subscriptions of one owner scope, in one receipted operation.

    Each named key that is registered and not deleted is deleted at its current revision
    (no expected revision: the prune names keys, not versions); a key that is not
    registered, or already deleted, is skipped. The order and repetitions of the keys do
    not matter.
    """

    owner_scope: str
    subscription_keys: tuple[str, ...]


@attrs.frozen
class PruneTriggerHistory:
    """Retention: drop receipts recorded, and tombstones deleted, before `older_than_ms`.

    Receipted in the `host` owner scope. (Called `PruneTriggers` before; that name is
    kept as an alias.)
    """

    older_than_ms: int


PruneTriggers = PruneTriggerHistory
"""The former name of `PruneTriggerHistory`, kept so existing callers keep working."""

TriggerCommand = (RegisterSubscription | UpdateSubscription | EnableSubscription | DisableSubscription
                  | DeleteSubscription | ReviveSubscription | PruneSubscriptions | PruneTriggerHistory)

COMMAND_NAMES: dict[type, str] = {
    RegisterSubscription: "register", UpdateSubscription: "update", EnableSubscription: "enable",
    DisableSubscription: "disable", DeleteSubscription: "delete", ReviveSubscription: "revive",
    PruneSubscriptions: "prune", PruneTriggerHistory: "prune_history",
}


@attrs.frozen
class TombstonedSubscription:
    """One subscription a `PruneSubscriptions` tombstoned, at its new revision."""

    subscription_key: str
    subscription_id: str
    revision: int
    incarnation: int


@attrs.frozen
class TriggerCommandResult:
    """What a command did. `replayed` is True when the operation id had already run.

    `pruned_*` count what a `PruneTriggerHistory` dropped; `tombstoned` lists what a
    `PruneSubscriptions` deleted, in key order.
    """

    operation_id: str
    command: str
    outcome: str
    """registered, updated, enabled, disabled, deleted, revived, pruned or unchanged."""
    subscription_id: str | None
    revision: int | None
    incarnation: int | None
    replayed: bool = False
    pruned_subscriptions: int = 0
    pruned_receipts: int = 0
    pruned_deliveries: int = 0
    tombstoned: tuple[TombstonedSubscription, ...] = ()
    owner_scope: str = RETENTION_SCOPE
    """The owner scope the receipt is keyed under."""


# --- validation ----------------------------------------------------------------------

_SCOPE = re.compile(r"^(host|host:[^\x00-\x1f]+|session:[^\x00-\x1f/]+(/frame:[^\x00-\x1f]+)?)$")


def check_name(value: Any, what: str) -> str:
    """A non-empty string of at most 256 characters without control characters."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise InvalidArgument(f"{what} {value[:40]!r}: at most {MAX_NAME} characters, no control characters")
    return value


def check_owner_scope(value: Any, what: str = "owner_scope") -> str:
    """`host`, `host:<s>`, `session:<id>` or `session:<id>/frame:<f>`."""
    check_name(value, what)
    if not _SCOPE.match(value):
        raise InvalidArgument(f"{what} {value!r} must be 'host', 'host:<name>', 'session:<id>' or "
                              f"'session:<id>/frame:<frame>'")
    return cast("str", value)


def session_of_scope(owner_scope: str) -> str | None:
    """The session id of a `session:` owner scope (frames included), else None."""
    if not owner_scope.startswith("session:"):
        return None
    return owner_scope[len("session:"):].split("/frame:", 1)[0]


def check_revision(value: Any, what: str = "expected_revision") -> int:
    """A revision: an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{what} must be an integer >= 1, got {value!r}")
    return value


def check_definition(d: Any, what: str = "definition") -> TriggerDefinition:
    """Validate a TriggerDefinition and its JSON-like input template."""
    if not isinstance(d, TriggerDefinition):
        raise InvalidArgument(f"{what} must be a TriggerDefinition, got {type(d).__name__}")
    check_name(d.source_type, f"{what}.source_type")
    if d.source_key is not None:
        check_name(d.source_key, f"{what}.source_key")
    check_name(d.process_name, f"{what}.process_name")
    json_value(d.input_template, "$", f"{what}.input_template")
    return d


def check_command(command: Any, now_ms: int) -> str:
    """Validate a command's fields; returns its name. Raises InvalidArgument naming the field."""
    name = COMMAND_NAMES.get(type(command))
    if name is None:
        kinds = ", ".join(c.__name__ for c in COMMAND_NAMES)
        raise InvalidArgument(f"command must be one of {kinds}, got {type(command).__name__}")
    cls = type(command).__name__
    if isinstance(command, PruneTriggerHistory):
        v = command.older_than_ms
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2 ** 63:
            raise InvalidArgument(f"{cls}.older_than_ms must be an integer >= 0, got {v!r}"[:200])
        if v > now_ms:
            raise InvalidArgument(f"{cls}.older_than_ms ({v}) is in the future (now is {now_ms})")
        return name
    check_owner_scope(command.owner_scope, f"{cls}.owner_scope")
    if isinstance(command, PruneSubscriptions):
        keys = command.subscription_keys
        if isinstance(keys, (str, bytes)) or not isinstance(keys, (tuple, list)):
            raise InvalidArgument(f"{cls}.subscription_keys must be a tuple or list of keys, "
                                  f"got {keys!r}"[:200])
        if len(keys) > MAX_PRUNE_KEYS:
            raise InvalidArgument(f"{cls}.subscription_keys names {len(keys)} keys; at most {MAX_PRUNE_KEYS} "
                                  f"per prune")
        for i, key in enumerate(keys):
            check_name(key, f"{cls}.subscription_keys[{i}]")
        return name
    check_name(command.subscription_key, f"{cls}.subscription_key")
    if hasattr(command, "expected_revision"):
        check_revision(command.expected_revision, f"{cls}.expected_revision")
    definition = getattr(command, "definition", None)
    if definition is not None or isinstance(command, (RegisterSubscription, UpdateSubscription)):
        check_definition(definition, f"{cls}.definition")
    if isinstance(command, RegisterSubscription) and not isinstance(command.enabled, bool):
        raise InvalidArgument(f"RegisterSubscription.enabled must be a bool, got {command.enabled!r}")
    return name


def receipt_scope(command: Any) -> str:
    """The owner scope a command's receipt is keyed under (with its operation id)."""
    return RETENTION_SCOPE if isinstance(command, PruneTriggerHistory) else str(command.owner_scope)


def requested_keys(command: PruneSubscriptions) -> tuple[str, ...]:
    """The keys a prune names, sorted and de-duplicated (its canonical form)."""
    return tuple(sorted(set(command.subscription_keys)))


def request_hash(command: Any) -> str:
    """SHA-256 of the canonical JSON of the command's name and fields (what a replay of an
    operation id must match)."""
    if isinstance(command, PruneTriggerHistory):
        # Hashed under its name before the rename ('prune'), so that a retention prune
        # receipted by earlier code still replays instead of conflicting.
        return digest({"command": "prune", "fields": attrs.asdict(command)})
    if isinstance(command, PruneSubscriptions):
        fields = {"owner_scope": command.owner_scope, "subscription_keys": list(requested_keys(command))}
        return digest({"command": "prune_subscriptions", "fields": fields})
    return digest({"command": COMMAND_NAMES[type(command)], "fields": attrs.asdict(command)})


def definition_hash(d: TriggerDefinition) -> str:
    """SHA-256 of the canonical JSON of a definition ('same definition' means equal hashes)."""
    return digest(attrs.asdict(d))


# --- deciders ------------------------------------------------------------------------


@attrs.frozen
class Decision:
    """Events to append, and either the result to return or the conflict to raise."""

    events: tuple[Any, ...]
    result: TriggerCommandResult | None = None
    conflict: TriggerConflict | None = None


def decide(current: Any, retired: tuple[int, int] | None, command: Any, operation_id: str, req_hash: str,
           now: int) -> Decision:
    """Decide a subscription command against the subscription's current row (or None)."""
    name = COMMAND_NAMES[type(command)]
    sid = subscription_id_for(command.owner_scope, command.subscription_key)
    where = f"subscription {command.owner_scope!r}/{command.subscription_key!r} ({sid})"

    def conflict(cls: type[TriggerConflict], message: str, expected: int | None = None) -> Decision:
        actual = None if current is None else current.revision
        err = cls(message, operation_id=operation_id, subscription_id=sid, expected_revision=expected,
                  actual_revision=actual)
        ev = CommandAnswered(command.owner_scope, operation_id, req_hash, name, sid, "conflict", actual,
                             None if current is None else current.incarnation, cls.code, message, expected,
                             actual, now)
        return Decision((ev,), conflict=err)

    def done(outcome: str, event: Any | None, revision: int, incarnation: int) -> Decision:
        result = TriggerCommandResult(operation_id, name, outcome, sid, revision, incarnation,
                                      owner_scope=command.owner_scope)
        if event is None:  # nothing changed: record the answer only
            event = CommandAnswered(command.owner_scope, operation_id, req_hash, name, sid, "unchanged",
                                    revision, incarnation, None, None, None, None, now)
        return Decision((event,), result=result)

    if isinstance(command, RegisterSubscription):
        dhash = definition_hash(command.definition)
        if current is None:
            incarnation, revision = (retired[0] + 1, retired[1] + 1) if retired else (1, 1)
            ev: SubscriptionRegistered | SubscriptionRevived | SubscriptionUpdated = SubscriptionRegistered(
                sid, command.owner_scope, command.subscription_key, session_of_scope(command.owner_scope),
                command.definition, dhash, incarnation, revision, command.enabled, operation_id, req_hash, now)
            return done("registered", ev, revision, incarnation)
        if current.deleted:
            return conflict(SubscriptionTombstoned, f"{where} is deleted (revision {current.revision}); "
                                                    f"revive it instead of registering it again")
        if current.definition_hash == dhash:
            return done("unchanged", None, current.revision, current.incarnation)
        return conflict(SubscriptionExists, f"{where} is already registered with a different definition "
                                            f"(revision {current.revision}); register does not upsert, "
                                            f"use UpdateSubscription")

    expected = command.expected_revision
    if current is None:
        return conflict(SubscriptionNotFound, f"{where} is not registered", expected)
    if current.revision != expected:
        return conflict(SubscriptionRevisionConflict,
                        f"{where}: expected revision {expected}, but it is at revision {current.revision}",
                        expected)
    rev = current.revision + 1
    inc = current.incarnation
    if isinstance(command, ReviveSubscription):
        if not current.deleted:
            return conflict(SubscriptionNotDeleted, f"{where} is not deleted; only a deleted subscription "
                                                    f"can be revived", expected)
        d = command.definition or current.definition
        ev = SubscriptionRevived(sid, inc + 1, rev, d, definition_hash(d), operation_id, req_hash, now)
        return done("revived", ev, rev, inc + 1)
    if isinstance(command, DeleteSubscription):
        if current.deleted:
            return done("unchanged", None, current.revision, inc)
        return done("deleted", SubscriptionDeleted(sid, rev, "deleted", operation_id, req_hash, now), rev, inc)
    if current.deleted:
        return conflict(SubscriptionTombstoned, f"{where} is deleted; revive it before the {name}", expected)
    if isinstance(command, UpdateSubscription):
        dhash = definition_hash(command.definition)
        if dhash == current.definition_hash:
            return done("unchanged", None, current.revision, inc)
        ev = SubscriptionUpdated(sid, command.definition, dhash, rev, operation_id, req_hash, now)
        return done("updated", ev, rev, inc)
    enable = isinstance(command, EnableSubscription)
    if current.enabled == enable:
        return done("unchanged", None, current.revision, inc)
    cls = SubscriptionEnabled if enable else SubscriptionDisabled
    return done("enabled" if enable else "disabled", cls(sid, rev, operation_id, req_hash, now), rev, inc)


def decide_prune(command: PruneTriggerHistory, tombstones: list[tuple[str, int]], receipts_older: int,
                 operation_id: str, req_hash: str, now: int) -> Decision:
    """Decide a retention prune from the tombstones and the receipt count before the cutoff."""
    ids = tuple(sid for sid, _n in tombstones)
    deliveries = sum(n for _sid, n in tombstones)
    ev = TriggersPruned(operation_id, req_hash, command.older_than_ms, ids, receipts_older, deliveries, now)
    result = TriggerCommandResult(operation_id, "prune_history", "pruned", None, None, None, False, len(ids),
                                  receipts_older, deliveries)
    return Decision((ev,), result=result)


def decide_prune_subscriptions(command: PruneSubscriptions, rows: list[Any], operation_id: str, req_hash: str,
                               now: int) -> tuple[list[tuple[str, Any]], Decision]:
    """Decide a prune by name from the current rows of the named keys (a key never
    registered has none). Returns the tombstones, as (subscription id, event) in key
    order, and the decision whose one event is the receipt."""
    scope = command.owner_scope
    live = sorted((r for r in rows if not r.deleted and r.owner_scope == scope),
                  key=lambda r: r.subscription_key)
    tombstones = [(r.subscription_id,
                   SubscriptionDeleted(r.subscription_id, r.revision + 1, "pruned", None, None, now))
                  for r in live]
    done = tuple(TombstonedSubscription(r.subscription_key, r.subscription_id, r.revision + 1, r.incarnation)
                 for r in live)
    receipt = SubscriptionsPruned(scope, operation_id, req_hash, requested_keys(command),
                                  tuple(t.subscription_key for t in done),
                                  tuple(t.subscription_id for t in done), tuple(t.revision for t in done),
                                  tuple(t.incarnation for t in done), now)
    result = TriggerCommandResult(operation_id, "prune", "pruned" if done else "unchanged", None, None, None,
                                  tombstoned=done, owner_scope=scope)
    return tombstones, Decision((receipt,), result=result)


def replay_receipt(receipt: Any, owner_scope: str) -> TriggerCommandResult:
    """The original answer of an operation id: its result, or its conflict raised again."""
    if receipt.outcome == "conflict":
        cls = CONFLICTS.get(receipt.conflict_code or "", TriggerConflict)
        raise cls(receipt.conflict_message or "conflict", operation_id=receipt.operation_id,
                  subscription_id=receipt.subscription_id, expected_revision=receipt.expected_revision,
                  actual_revision=receipt.actual_revision, replayed=True)
    return TriggerCommandResult(receipt.operation_id, receipt.command, receipt.outcome, receipt.subscription_id,
                                receipt.revision, receipt.incarnation, True, receipt.pruned_subscriptions or 0,
                                receipt.pruned_receipts or 0, receipt.pruned_deliveries or 0,
                                receipt.tombstoned, owner_scope)
