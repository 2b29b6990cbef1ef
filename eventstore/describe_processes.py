"""Readable lines for process, trigger, effect and demo events (see `eventstore.describe`).

Registered with `@renderer` on import; `eventstore.describe` imports this module, so
`describe()` knows them. Every renderer reads only the event's fields; a renderer that
fails falls back to the generic rendering.
"""

from __future__ import annotations

from typing import Any

from .describe import ids, kind, plural, renderer, short, value, who


# --- processes ------------------------------------------------------------------------------


@renderer("process.registered")
def _process_registered(e: Any, ev: Any) -> str:
    reg = e.registration
    return (f"process {e.process_id} registered: {kind(reg.input)}, "
            f"{getattr(reg.disposition, 'value', reg.disposition)}")


@renderer("process.event_appended")
def _process_event(e: Any, ev: Any) -> str:
    text = f"process {e.process_id} event #{e.sequence} {e.event_type}"
    if e.terminal is not None:
        text += f": terminal, {getattr(e.terminal.status, 'value', e.terminal.status)}"
    if e.wake_delivery is not None:
        text += f", wakes session {e.wake_delivery.target_session_id}"
    if e.replay_key:
        text += f" (replay key {short(e.replay_key)!r})"
    return text


@renderer("process.external_ref_set")
def _external_ref(e: Any, ev: Any) -> str:
    return f"process {e.process_id} runs outside as {e.external_ref.backend} job {short(e.external_ref.id)!r}"


@renderer("process.first_started")
def _first_started(e: Any, ev: Any) -> str:
    return f"process {e.process_id} first started by {e.first_start.owner_id}"


@renderer("process.abandon_requested")
def _abandon_requested(e: Any, ev: Any) -> str:
    r = e.request
    why = f": {value(r.reason)}" if r.reason else ""
    return f"process {e.process_id}: {r.requested_by} asked to abandon it{why}"


@renderer("process.wait_set")
def _process_wait(e: Any, ev: Any) -> str:
    return f"process {e.process_id} waiting: {value(e.wait)}"


@renderer("process.wait_cleared")
def _process_wait_cleared(e: Any, ev: Any) -> str:
    return f"process {e.process_id} no longer waiting"


@renderer("process.handle_granted")
def _grant(e: Any, ev: Any) -> str:
    scope = getattr(e.scope, "scope_id", None) or value(e.scope)
    return f"process {e.process_id} handle granted to {scope}"


@renderer("process.handle_revoked")
def _revoke(e: Any, ev: Any) -> str:
    return f"process {e.process_id} handle revoked from {e.scope_id}"


@renderer("process.handle_transferred")
def _transfer(e: Any, ev: Any) -> str:
    to = getattr(e.to_scope, "scope_id", None) or value(e.to_scope)
    return f"process {e.process_id} handle moved from {e.from_scope_id} to {to}"


@renderer("process.session_detached")
def _detached(e: Any, ev: Any) -> str:
    return (f"process {e.process_id} detached from session {e.session_id} "
            f"({plural(len(e.revoked_scope_ids), 'grant')} revoked)")


@renderer("process.wake_acked")
def _wake_acked(e: Any, ev: Any) -> str:
    return f"process {e.process_id} wake of event #{e.sequence} acknowledged"


@renderer("process.pruned")
def _pruned(e: Any, ev: Any) -> str:
    return (f"{plural(len(e.process_ids), 'terminal process', 'terminal processes')} pruned "
            f"({plural(e.pruned_events, 'event')}): {ids(e.process_ids)}")


# --- triggers -------------------------------------------------------------------------------


@renderer("trigger.subscription_registered", "trigger.subscription_revived")
def _subscription(e: Any, ev: Any) -> str:
    d = e.definition
    return (f"trigger {short(e.subscription_id)} registered: on {d.source_type} start {d.process_name} "
            f"(revision {e.revision}, incarnation {e.incarnation})")


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


@renderer("trigger.pruned")
def _triggers_pruned(e: Any, ev: Any) -> str:
    return (f"trigger retention: {plural(len(e.subscription_ids), 'deleted subscription')}, "
            f"{plural(e.receipts_pruned, 'receipt')} and {plural(e.deliveries_pruned, 'delivery', 'deliveries')} "
            f"pruned from the projection")


@renderer("trigger.occurrence_recorded")
def _occurrence(e: Any, ev: Any) -> str:
    return (f"occurrence {short(e.occurrence_id)} of {e.source_type} {e.source_key!r} recorded: "
            f"{plural(e.delivery_count, 'delivery', 'deliveries')}")


@renderer("trigger.delivery_reserved")
def _delivery(e: Any, ev: Any) -> str:
    return (f"occurrence {short(e.occurrence_id)} delivered to trigger {short(e.subscription_id)}: "
            f"process {e.process_id} ({e.process_name})")


# --- effects --------------------------------------------------------------------------------


@renderer("effect.started")
def _effect_started(e: Any, ev: Any) -> str:
    return f"effect {e.scope}/{e.replay_key} ({e.kind}) started by {who(e.owner)}, attempt {e.attempt}"


@renderer("effect.taken_over")
def _effect_taken(e: Any, ev: Any) -> str:
    return (f"effect {e.scope}/{e.replay_key} taken over from {who(e.previous_owner)} by {who(e.owner)} "
            f"(attempt {e.attempt}, {e.reason})")


@renderer("effect.lease_renewed")
def _effect_renewed(e: Any, ev: Any) -> str:
    return f"effect {e.scope}/{e.replay_key} lease renewed"


@renderer("effect.completed")
def _effect_completed(e: Any, ev: Any) -> str:
    return f"effect {e.scope}/{e.replay_key} completed: {value(e.outcome)}"


@renderer("effect.failed")
def _effect_failed(e: Any, ev: Any) -> str:
    return f"effect {e.scope}/{e.replay_key} failed: {e.error_type}: {value(e.error_message)}"


@renderer("effect.await_registered")
def _await(e: Any, ev: Any) -> str:
    return f"await {e.scope}/{e.replay_key} opened" + (f" for session {e.session_id}" if e.session_id else "")


@renderer("effect.await_resolved")
def _await_resolved(e: Any, ev: Any) -> str:
    return f"await {e.scope}/{e.replay_key} resolved: {value(e.payload)}"


@renderer("effect.await_cancelled")
def _await_cancelled(e: Any, ev: Any) -> str:
    return f"await {e.scope}/{e.replay_key} cancelled: {e.reason}"
