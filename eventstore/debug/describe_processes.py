"""Readable lines for process, trigger and effect events (see `eventstore.debug.describe_events`).

Registered on import; `eventstore.debug.describe_events` imports this module, so `describe()` knows
them. Every renderer reads only the event's fields; a renderer that fails falls back to
the generic rendering. Most of them are templates (`describe.templates`); the functions
below are the sentences with parts that depend on the event.
"""

from __future__ import annotations

from typing import Any

from .describe_events import ids, renderer, short, templates, value
from ..queue.events import frame_of_scope


# --- sentences with optional parts ----------------------------------------------------------


@renderer("process.event_appended")
def _process_event(e: Any, ev: Any) -> str:
    text = f"process {e.process_id} event #{e.sequence} {e.event_type}"
    if e.terminal is not None:
        text += f": terminal, {getattr(e.terminal.status, 'value', e.terminal.status)}"
    if e.wake_delivery is not None:
        text += f", wakes session {e.wake_delivery.target_session_id}"
        frame = frame_of_scope(e.wake_delivery.target_scope_id)
        if frame:
            text += f" frame {frame}"
    if e.replay_key:
        text += f" (replay key {short(e.replay_key)!r})"
    return text


@renderer("process.abandon_requested")
def _abandon_requested(e: Any, ev: Any) -> str:
    r = e.request
    why = f": {value(r.reason)}" if r.reason else ""
    return f"process {e.process_id}: {r.requested_by} asked to abandon it{why}"


@renderer("process.handover_put")
def _handover_put(e: Any, ev: Any) -> str:
    text = f"process {e.process_id} handed over segment {e.segment_ordinal} (payload {short(e.payload_hash)})"
    if e.dropped_ordinals:
        text += f", dropping segment{'s' if len(e.dropped_ordinals) > 1 else ''} {ids(e.dropped_ordinals)}"
    return text


@renderer("trigger.subscription_updated", "trigger.subscription_enabled",
          "trigger.subscription_disabled", "trigger.subscription_deleted")
def _subscription_changed(e: Any, ev: Any) -> str:
    return f"trigger {short(e.subscription_id)} {type(e).__name__[len('Subscription'):].lower()} (revision {e.revision})"


@renderer("trigger.command_answered")
def _answered(e: Any, ev: Any) -> str:
    target = f" on trigger {short(e.subscription_id)}" if e.subscription_id else ""
    text = f"trigger command {e.command}{target} answered {e.outcome}"
    if e.conflict_code:
        text += f" ({e.conflict_code}: {value(e.conflict_message)})"
    return text


@renderer("effect.await_registered")
def _await(e: Any, ev: Any) -> str:
    return f"await {e.scope}/{e.replay_key} opened" + (f" for session {e.session_id}" if e.session_id else "")


# --- the sentences that only fill in fields -------------------------------------------------

_SUBSCRIPTION_REGISTERED = ("trigger {subscription_id:short} registered: on {definition.source_type} start "
                            "{definition.process_name} (revision {revision}, incarnation {incarnation})")

templates({
    "process.registered": "process {process_id} registered: {registration.input:kind}, {registration.disposition:enum}",
    "process.external_ref_set": ("process {process_id} runs outside as {external_ref.backend} job "
                                 "{external_ref.id:short!r}"),
    "process.first_started": "process {process_id} first started by {first_start.owner_id}",
    "process.wait_set": "process {process_id} waiting: {wait:value}",
    "process.wait_cleared": "process {process_id} no longer waiting",
    "process.handle_granted": "process {process_id} handle granted to {scope:scope}",
    "process.handle_revoked": "process {process_id} handle revoked from {scope_id}",
    "process.handle_transferred": "process {process_id} handle moved from {from_scope_id} to {to_scope:scope}",
    "process.session_detached": ("process {process_id} detached from session {session_id} "
                                 "({revoked_scope_ids:count grant} revoked)"),
    "process.wake_acked": "process {process_id} wake of event #{sequence} acknowledged",
    "process.handovers_deleted": "process {process_id}: {segment_ordinals:count segment handover} deleted",
    "process.pruned": ("{process_ids:count terminal process/terminal processes} pruned "
                       "({pruned_events:plural event}): {process_ids:ids}"),

    "trigger.subscription_registered": _SUBSCRIPTION_REGISTERED,
    "trigger.subscription_revived": _SUBSCRIPTION_REGISTERED,
    "trigger.occurrences_forgotten": ("occurrence retention: {forgotten:plural occurrence} ingested before "
                                      "{older_than_ms:time} forgotten (their idempotency keys with them)"),
    "trigger.pruned": ("trigger retention: {subscription_ids:count deleted subscription}, "
                       "{receipts_pruned:plural receipt} and {deliveries_pruned:plural delivery/deliveries} pruned "
                       "from the projection"),
    "trigger.subscriptions_pruned": ("trigger prune by name in {owner_scope}: "
                                     "{subscription_ids:count subscription} tombstoned, of "
                                     "{requested_keys:count key} named"),
    "trigger.occurrence_recorded": ("occurrence {occurrence_id:short} of {source_type} {source_key!r} recorded: "
                                    "{delivery_count:plural delivery/deliveries}"),
    "trigger.delivery_reserved": ("occurrence {occurrence_id:short} delivered to trigger {subscription_id:short}: "
                                  "process {process_id} ({process_name})"),

    "effect.started": "effect {scope}/{replay_key} ({kind}) started by {owner:who}, attempt {attempt}",
    "effect.taken_over": ("effect {scope}/{replay_key} taken over from {previous_owner:who} by {owner:who} "
                          "(attempt {attempt}, {reason})"),
    "effect.lease_renewed": "effect {scope}/{replay_key} lease renewed",
    "effect.completed": "effect {scope}/{replay_key} completed: {outcome:value}",
    "effect.failed": "effect {scope}/{replay_key} failed: {error_type}: {error_message:value}",
    "effect.await_resolved": "await {scope}/{replay_key} resolved: {payload:value}",
    "effect.await_cancelled": "await {scope}/{replay_key} cancelled: {reason}",
})
