"""One readable line per event: a registry of renderers, with a generic fallback.

`describe(event)` turns a recorded event into a short sentence a person can read in a
log: ``lease on s1 acquired by runtime-a/inc-1 (fence 2, ttl 30s)`` instead of a dump
of fields. Each event type may register a renderer::

    @renderer("session.lease_released")
    def _released(e):
        return f"lease on {e.session_id} released (fence {e.fencing_token})"

A renderer receives the decoded event instance. Events without a renderer, renderers
that fail (a field renamed by a newer schema), raw field maps that no registered class
decodes, purged and undecoded payloads all fall back to a generic rendering built from
the fields, so `describe` never raises on anything the log can hold.

Ids that end in a long hex digest (batch ids, lease tokens, refs) are shortened to
their first 8 hex digits followed by an ellipsis; `--json` output keeps them whole.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Callable

import attrs

from .events import REGISTRY

Renderer = Callable[[Any, Any], str]
_RENDERERS: dict[str, Renderer] = {}
_HEX_TAIL = re.compile(r"^(.*?)([0-9a-f]{16,})$")
WIDTH = 160
"""The longest line `describe` returns (longer ones end with an ellipsis)."""


def renderer(*type_names: str) -> Callable[[Renderer], Renderer]:
    """Decorator: register `fn(event_instance) -> str` as the renderer of these type names."""

    def deco(fn: Renderer) -> Renderer:
        for name in type_names:
            _RENDERERS[name] = fn
        return fn

    return deco


def registered_types() -> list[str]:
    """The event type names that have a renderer of their own (sorted)."""
    return sorted(_RENDERERS)


def describe(ev: Any, width: int = WIDTH) -> str:
    """One readable line for a recorded event (instance or raw field map); never raises.

    `ev` is a `RecordedEvent` (from `read_all`, `read_stream`, `get`, with or without
    `raw=True`). The result has no position, stream or time: callers print those.
    """
    data = ev.data
    if data is None:
        return "(payload purged: only the headers and the digest remain)"
    if data.__class__.__name__ == "_Undecoded":
        return "(payload not decoded)"
    if isinstance(data, dict):
        data = _decode(ev) or data
    fn = _RENDERERS.get(ev.type)
    text = None
    if fn is not None and not isinstance(data, dict):
        try:
            text = fn(data, ev)
        except Exception:  # a renderer must never break a log listing: fall back
            text = None
    if text is None:
        text = generic(data)
    return _clip(_printable(text), width)


def _decode(ev: Any) -> Any:
    """The event instance from a raw field map, or None when no registered class reads it."""
    et = REGISTRY._by_name.get(ev.type)
    if et is None:
        return None
    try:
        return et.decode_plain(ev.data, ev.schema, ev.position, ev.stream)
    except Exception:
        return None


# --- generic rendering ----------------------------------------------------------------------


def generic(data: Any) -> str:
    """`field=value, ...` from an attrs instance or a field map, each value shortened."""
    if attrs.has(type(data)):
        items = [(f.name, getattr(data, f.name)) for f in attrs.fields(type(data))]
    elif isinstance(data, dict):
        items = list(data.items())
    else:
        return value(data)
    return ", ".join(f"{k}={value(v)}" for k, v in items)


def value(v: Any, depth: int = 0) -> str:
    """A short rendering of one field value (nested values summarised, ids shortened)."""
    if v is None or isinstance(v, bool):
        return str(v)
    if isinstance(v, enum.Enum):
        return str(v.value)
    if isinstance(v, str):
        s = short(v)
        return repr(s if len(s) <= 48 else s[:47] + "…")
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    if depth >= 2:
        return "…"
    if attrs.has(type(v)):
        inner = ", ".join(f"{f.name}={value(getattr(v, f.name), depth + 1)}" for f in attrs.fields(type(v))
                          if getattr(v, f.name) not in (None, (), ""))
        return f"{type(v).__name__}({inner})"
    if isinstance(v, dict):
        parts = [f"{k}: {value(x, depth + 1)}" for k, x in list(v.items())[:4]]
        return "{" + ", ".join(parts) + (", …" if len(v) > 4 else "") + "}"
    if isinstance(v, (list, tuple, set, frozenset)):
        seq = list(v)
        parts = [value(x, depth + 1) for x in seq[:3]]
        return "[" + ", ".join(parts) + (f", … {len(seq)} in all" if len(seq) > 3 else "") + "]"
    return type(v).__name__


# --- small helpers renderers share ------------------------------------------------------------


def short(text: Any, keep: int = 8) -> str:
    """An id with a long hex tail shortened: `qwb:1a2b3c4d…`; other text unchanged."""
    if not isinstance(text, str):
        return str(text)
    m = _HEX_TAIL.match(text)
    if m is None or len(m.group(2)) <= keep + 4:
        return text
    return m.group(1) + m.group(2)[:keep] + "…"


def ids(values: Any, limit: int = 3) -> str:
    """A few ids, shortened, and how many more."""
    seq = list(values or ())
    shown = ", ".join(short(x) for x in seq[:limit])
    return shown + (f" and {len(seq) - limit} more" if len(seq) > limit else "")


def who(owner: Any) -> str:
    """A lease owner as `owner_id/incarnation` (incarnation shortened)."""
    if owner is None:
        return "nobody"
    return f"{owner.owner_id}/{short(owner.incarnation_id, 6)}"


def duration(ms: int | None) -> str:
    """Milliseconds as a short duration: `250ms`, `1.5s`, `30s`, `2m`, `1h`."""
    if ms is None:
        return "-"
    if abs(ms) < 1000:
        return f"{ms}ms"
    s = ms / 1000
    if abs(s) < 60:
        return f"{s:g}s" if s == int(s) else f"{s:.1f}s"
    if abs(s) < 3600:
        return f"{s / 60:g}m" if s % 60 == 0 else f"{s / 60:.1f}m"
    return f"{s / 3600:g}h" if s % 3600 == 0 else f"{s / 3600:.1f}h"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 node`, `2 nodes`."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def kind(v: Any) -> str:
    """The class name of a union member (instance) or of a raw `[name, map]` pair."""
    if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
        return v[0]
    return type(v).__name__


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- sessions and leases --------------------------------------------------------------------


@renderer("session.created")
def _session_created(e: Any, ev: Any) -> str:
    m = e.meta
    extra = [f"generation {e.generation}"]
    if m.name and m.name != e.session_id:
        extra.append(f"name {m.name!r}")
    if m.model:
        extra.append(f"model {m.model}")
    if m.relation is not None:
        extra.append(f"{m.relation.kind} of {m.relation.parent_session_id}")
    verb = "created" if e.generation == 1 else "recreated"
    return f"session {e.session_id} {verb} ({', '.join(extra)})"


@renderer("session.deleted")
def _session_deleted(e: Any, ev: Any) -> str:
    return f"session {e.session_id} deleted (generation {e.generation}): lease, queue and inputs wiped"


@renderer("session.purged")
def _session_purged(e: Any, ev: Any) -> str:
    return (f"session {e.session_id} purged: {plural(e.payloads_dropped, 'payload')} dropped "
            f"through version {e.through_version} (the chain keeps their digests)")


@renderer("session.lease_acquired", "process.lease_acquired")
def _lease_acquired(e: Any, ev: Any) -> str:
    target = getattr(e, "session_id", None) or f"process {getattr(e, 'process_id', '?')}"
    text = (f"lease on {target} acquired by {who(e.owner)} "
            f"(fence {e.fencing_token}, ttl {duration(e.expires_at_ms - e.claimed_at_ms)})")
    if e.reclaimed_from is not None:
        text += (f", reclaimed from dead holder {who(e.reclaimed_from)} "
                 f"(fence {e.reclaimed_fencing_token})")
    return text


@renderer("session.lease_renewed", "process.lease_renewed")
def _lease_renewed(e: Any, ev: Any) -> str:
    target = getattr(e, "session_id", None) or f"process {getattr(e, 'process_id', '?')}"
    how = "re-entered by its holder" if e.reentry else "renewed"
    return (f"lease on {target} {how} (fence {e.fencing_token}), "
            f"now expires in {duration(e.expires_at_ms - e.renewed_at_ms)}")


@renderer("session.lease_released", "process.lease_released")
def _lease_released(e: Any, ev: Any) -> str:
    target = getattr(e, "session_id", None) or f"process {getattr(e, 'process_id', '?')}"
    return f"lease on {target} released (fence {e.fencing_token} kept)"


# --- queued work --------------------------------------------------------------------------------


def _payload_kinds(payloads: Any) -> str:
    counts: dict[str, int] = {}
    for p in payloads:
        counts[kind(p)] = counts.get(kind(p), 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items())


@renderer("queue.batch_enqueued")
def _batch_enqueued(e: Any, ev: Any) -> str:
    text = (f"batch {short(e.batch_id)} (#{e.enqueue_seq}) enqueued on {e.session_id}: "
            f"{_payload_kinds(e.payloads)}, {e.work_class.value}, {e.slot_policy.value}")
    if e.available_at_ms > e.enqueued_at_ms:
        text += f", ready in {duration(e.available_at_ms - e.enqueued_at_ms)}"
    if e.source_key:
        text += f", source key {short(e.source_key)!r}"
    return text


@renderer("queue.claimed")
def _batch_claimed(e: Any, ev: Any) -> str:
    noun = "batch" if len(e.batch_ids) == 1 else "batches"
    return (f"{noun} {ids(e.batch_ids)} on {e.session_id} claimed by {who(e.owner)} generation "
            f"{e.generation} (claim {e.claim_id}, {e.mode})")


@renderer("queue.claim_abandoned")
def _batch_abandoned(e: Any, ev: Any) -> str:
    return f"claim {e.claim_id} on {e.session_id} abandoned: {ids(e.batch_ids)} claimable again"


@renderer("queue.batch_cancelled")
def _batch_cancelled(e: Any, ev: Any) -> str:
    return f"batch {short(e.batch_id)} on {e.session_id} cancelled"


@renderer("queue.completed")
def _batch_completed(e: Any, ev: Any) -> str:
    noun = "batch" if len(e.batch_ids) == 1 else "batches"
    return f"{noun} {ids(e.batch_ids)} on {e.session_id} completed (claim {e.claim_id})"


@renderer("queue.source_keys_forgotten")
def _keys_forgotten(e: Any, ev: Any) -> str:
    return (f"settled source keys of {e.session_id} older than "
            f"{duration(e.forgotten_at_ms - e.settled_before_ms)} forgotten")


# --- pending turn inputs --------------------------------------------------------------------


@renderer("inputs.enqueued")
def _input_enqueued(e: Any, ev: Any) -> str:
    ing = e.ingress
    where = (f"for turn {ing.turn_id} at {ing.min_boundary.value}" if kind(ing) == "ActiveTurn"
             else "for the next turn")
    text = f"input {short(e.input_id)} (#{e.enqueue_seq}) on {e.session_id} {where}: {value(e.input)}"
    if e.source_key:
        text += f", source key {short(e.source_key)!r}"
    return text


@renderer("inputs.claimed")
def _inputs_claimed(e: Any, ev: Any) -> str:
    what = f"turn {e.turn_id} at {e.checkpoint.value}" if e.turn_id and e.checkpoint else "the next turn"
    return (f"{plural(len(e.input_ids), 'input')} on {e.session_id} claimed for {what} by {who(e.owner)} "
            f"generation {e.generation} (claim {e.claim_id})")


@renderer("inputs.claim_abandoned")
def _inputs_abandoned(e: Any, ev: Any) -> str:
    return f"claim {e.claim_id} on {e.session_id} abandoned: {plural(len(e.input_ids), 'input')} pending again"


@renderer("inputs.cancelled")
def _inputs_cancelled(e: Any, ev: Any) -> str:
    return f"{plural(len(e.input_ids), 'input')} on {e.session_id} cancelled: {ids(e.input_ids)}"


@renderer("inputs.completed")
def _inputs_completed(e: Any, ev: Any) -> str:
    return f"{plural(len(e.input_ids), 'input')} on {e.session_id} consumed (claim {e.claim_id})"


@renderer("inputs.turn_interrupted")
def _inputs_deferred(e: Any, ev: Any) -> str:
    return (f"turn {e.turn_id} of {e.session_id} interrupted: "
            f"{plural(len(e.input_ids), 'input')} moved to the next turn")


@renderer("inputs.vacuumed")
def _inputs_vacuumed(e: Any, ev: Any) -> str:
    return f"{plural(len(e.input_ids), 'settled input row')} of {e.session_id} vacuumed"


# --- the runtime commit ---------------------------------------------------------------------


def _node_text(node: Any) -> str:
    """`role: text` of a conversation node (a SessionNode, or the commit event's stored form)."""
    if hasattr(node, "to_node"):
        node = node.to_node()
    payload = node.payload
    if kind(payload) == "PluginPayload":
        return f"plugin {payload.plugin_type}: {value(payload.body)}"
    event = getattr(payload, "event", payload)
    if isinstance(event, dict):
        role = event.get("role") or event.get("type") or event.get("kind")
        text = event.get("text") or event.get("content")
        if role is not None and isinstance(text, str):
            return f"{role}: {value(text)}"
    return value(event)


def session_of(ev: Any, e: Any = None) -> str:
    """The session an event concerns: its `session_id` field, else the `session:<id>` stream."""
    sid = getattr(e, "session_id", None)
    if isinstance(sid, str):
        return sid
    stream = getattr(ev, "stream", "") or ""
    return stream.split(":", 1)[1] if stream.startswith("session:") else stream


@renderer("session.committed")
def _committed(e: Any, ev: Any) -> str:
    nodes = tuple(getattr(e, "nodes", ()) or ())
    parts = []
    if nodes:
        parts.append(f"{plural(len(nodes), 'node')} added ({'; '.join(_node_text(n) for n in nodes[:2])}"
                     f"{'; …' if len(nodes) > 2 else ''})")
    parts.append(f"leaf {e.leaf_node_id}" if e.leaf_node_id else "no leaf")
    usage = tuple(getattr(e, "usage", ()) or ())
    if usage:
        total = sum(sum(x for x in u[2:] if isinstance(x, int)) if isinstance(u, (tuple, list))
                    else (u.total() if hasattr(u, "total") else 0) for u in usage)
        parts.append(f"{plural(total, 'token')} used")
    if e.checkpoint_ref:
        parts.append(f"checkpoint {short(e.checkpoint_ref)}")
    d = getattr(e, "details", None)
    if d is not None:
        if getattr(d, "graph_replaced", False):
            parts.insert(0, "graph replaced")
        head = getattr(d, "head", None)
        if head is not None and head.config is not None:
            parts.append(f"model {head.config.provider_id}/{head.config.model}")
        if head is not None and head.frames:
            parts.append(plural(len(head.frames), "frame"))
        if getattr(d, "turn", None) is not None:
            parts.append(f"turn {d.turn.turn_id}")
        if getattr(d, "enqueued_batch_ids", ()):
            parts.append(f"{plural(len(d.enqueued_batch_ids), 'batch', 'batches')} enqueued")
        if getattr(d, "committed_attachment_ids", ()):
            parts.append(plural(len(d.committed_attachment_ids), "attachment") + " committed")
    return f"{session_of(ev, e)} committed revision {e.revision}: {', '.join(parts)}"


@renderer("session.nodes_tombstoned")
def _tombstoned(e: Any, ev: Any) -> str:
    return f"{plural(len(e.node_ids), 'node')} of {e.session_id} tombstoned: {ids(e.node_ids)}"


@renderer("session.vacuumed")
def _vacuumed(e: Any, ev: Any) -> str:
    return (f"{e.session_id} vacuumed: {plural(e.removed_node_count, 'tombstoned node')} and "
            f"{plural(e.removed_pending_turn_input_tombstone_count, 'settled input')} removed")


@renderer("session.attachment_intent_recorded")
def _intent(e: Any, ev: Any) -> str:
    return f"attachment {e.attachment_id} of {e.session_id} about to upload blob {short(e.blob_ref)}"


@renderer("session.attachment_intents_forgotten")
def _intents_forgotten(e: Any, ev: Any) -> str:
    return f"{plural(len(e.attachment_ids), 'uncommitted attachment intent')} of {e.session_id} forgotten"


@renderer("store.artifact_ref_set")
def _artifact(e: Any, ev: Any) -> str:
    target = f"blob {short(e.blob_ref)}" if e.blob_ref else "nothing (removed)"
    return f"artifact {e.namespace}/{e.artifact_ref} now points at {target}"


@renderer("store.blob_gc_ran")
def _gc(e: Any, ev: Any) -> str:
    return (f"blob GC: {plural(e.root_count, 'root')}, {e.retained_blob_count} blobs kept, "
            f"{e.deleted_blob_count} deleted")


# --- diffs between positions ----------------------------------------------------------------


def diff_positions(store: Any, from_position: int, to_position: int, streams: Any = None, **kw: Any) -> Any:
    """What changed between two positions, as domain facts: see `eventstore.statediff.diff`."""
    from .statediff import diff

    return diff(store, from_position, to_position, streams, **kw)


@renderer("effect.session_revoked")
def _awaits_revoked(e: Any, ev: Any) -> str:
    return (f"session {e.session_id} revoked for awaits ({e.reason}): "
            f"{plural(len(e.cancelled), 'pending await')} cancelled")


@renderer("demo.user_message")
def _demo_user(e: Any, ev: Any) -> str:
    return f"user: {value(e.text)}"


@renderer("demo.model_reply")
def _demo_reply(e: Any, ev: Any) -> str:
    return f"{e.model}: {value(e.text)} ({e.input_tokens} in, {e.output_tokens} out)"


@renderer("demo.tool_called")
def _demo_tool(e: Any, ev: Any) -> str:
    return f"tool {e.tool}({value(e.arguments)}) -> {value(e.result)}"


from . import describe_processes  # noqa: E402,F401  (registers the process, trigger and effect renderers)

__all__ = ["describe", "diff_positions", "duration", "generic", "ids", "kind", "plural", "registered_types", "renderer",
           "short", "value", "who", "WIDTH"]
