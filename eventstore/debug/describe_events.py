"""One readable line per event: a registry of renderers, with a generic fallback.

`describe(event)` turns a recorded event into a short sentence a person can read in a
log: ``lease on s1 acquired by runtime-a/inc-1 (fence 2, ttl 30s)`` instead of a dump
of fields. Each event type may register a renderer::

    @renderer("session.lease_released")
    def _released(e):
        return f"lease on {e.session_id} released (fence {e.fencing_token})"

Most sentences are plain templates over the event's fields, registered as a table::

    templates({"session.deleted": "session {session_id} deleted (generation {generation})",
               "inputs.cancelled": "{input_ids:count input} on {session_id} cancelled: {input_ids:ids}"})

A renderer receives the decoded event instance. Events without a renderer, renderers
that fail (a field renamed by a newer schema), raw field maps that no registered class
decodes, purged and undecoded payloads all fall back to a generic rendering built from
the fields, so `describe` never raises on anything the log can hold.

Ids that end in a long hex digest (batch ids, lease tokens, refs) are shortened to
their first 8 hex digits followed by an ellipsis; `--json` output keeps them whole.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
import string
from typing import Any, Callable

import attrs

from ..queue.events import describe_wake_frames
from ..errors import InvalidArgument
from ..events import REGISTRY

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
        said = message_text(v)
        if said is not None:
            return said
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


def timestamp(ms: int | None) -> str:
    """A millisecond timestamp as an ISO 8601 UTC string: `2026-03-02T09:00:00.000Z`."""
    if ms is None:
        return "-"
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
    return f"{n} {_noun(n, word, words)}"


def _noun(n: int, word: str, words: str | None = None) -> str:
    return word if n == 1 else (words or word + "s")


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


# --- sentence templates ---------------------------------------------------------------------

_HELPERS: dict[str, Callable[..., Any]] = {
    "short": short, "value": value, "who": who, "kind": kind, "duration": duration, "time": timestamp,
    "enum": lambda v: getattr(v, "value", v),
    "scope": lambda v: getattr(v, "scope_id", None) or value(v),
    "count": lambda v, *words: plural(len(v), *words),
    "plural": lambda v, *words: plural(v, *words),
    "ids": lambda v, *words: f"{_noun(len(v), *words)} {ids(v)}" if words else ids(v),
}
"""What a template's format spec may name: `{f:short}` is `short(e.f)`. `count` and `plural`
take the word (and its plural after a slash): `{ids:count input}`, `{n:plural delivery/deliveries}`;
`ids` may take one: `{batch_ids:ids batch/batches}` is `batches qwb:1a2b3c4d…, qwb:5e6f7a8b…`."""
_WORDS = {"count": True, "plural": True, "ids": None}
"""The helpers that must (True) or may (None) be followed by a word; the others take none."""

_FIELD_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_CONVERSIONS: dict[str | None, Callable[[Any], Any]] = {None: lambda v: v, "r": repr}


@attrs.frozen
class _Slot:
    """The literal text of a template up to one `{field!r:helper words!r}`, and that field."""

    literal: str
    path: tuple[str, ...]
    """The dotted field path (empty for the text after the last field)."""
    convert: Callable[[Any], Any]
    helper: Callable[[Any], Any] | None
    quote: bool
    """`!r` at the end of the spec: the helper's result in quotes (`repr`)."""

    def render(self, e: Any) -> str:
        """The literal, then the field of event `e` as the slot formats it."""
        if not self.path:
            return self.literal
        v = e
        for name in self.path:
            v = getattr(v, name)
        v = self.convert(v)
        if self.helper is not None:
            v = self.helper(v)
        return self.literal + format(repr(v) if self.quote else v, "")


def _slot(type_name: str, literal: str, field: str | None, spec: str | None, conversion: str | None) -> _Slot:
    if field is None:
        return _Slot(literal, (), _CONVERSIONS[None], None, False)
    where = f"describe template of {type_name}: {{{field}}}"
    if not _FIELD_PATH.match(field) or conversion not in _CONVERSIONS:
        raise InvalidArgument(f"{where} must name a field (a dotted path), optionally with !r")
    assert spec is not None  # string.Formatter.parse gives every field a (possibly empty) spec
    quote = spec.endswith("!r")
    name, _, arg = (spec[:-2] if quote else spec).partition(" ")
    helper = None
    if name:
        fn = _HELPERS.get(name)
        wants_word = _WORDS.get(name, False)
        if fn is None or (wants_word is not None and wants_word != bool(arg)):
            raise InvalidArgument(f"{where}: format spec {spec!r} must be one of {', '.join(sorted(_HELPERS))} "
                                  f"(count and plural followed by a word, ids optionally)")
        words = tuple(arg.split("/")) if arg else ()
        helper = (lambda v, fn=fn, words=words: fn(v, *words)) if words else fn
    return _Slot(literal, tuple(field.split(".")), _CONVERSIONS[conversion], helper, quote)


def templates(table: dict[str, str]) -> None:
    """Register a renderer per type name that fills in the name's template from the event.

    A template is `str.format` text over the event's fields (`{owner.owner_id}`, `{key!r}`)
    whose format specs name helpers instead of formats: `{owner:who}`, `{batch_id:short}`,
    `{input_ids:count input}`, `{ref:short!r}` (the helper's result quoted); see `_HELPERS`.
    A field the event lacks makes `describe` fall back to the generic rendering.
    """
    if not isinstance(table, dict):
        raise InvalidArgument(f"describe templates: expected a dict of type name to template, "
                              f"got {type(table).__name__}")
    compiled = {type_name: _compile(type_name, template) for type_name, template in table.items()}
    for type_name, slots in compiled.items():  # registered only once every template is valid
        # a def, not a lambda: mypy cannot infer a lambda with a default against Renderer
        def render(e: Any, ev: Any, slots: tuple[_Slot, ...] = slots) -> str:
            return "".join(s.render(e) for s in slots)

        _RENDERERS[type_name] = render


def _compile(type_name: str, template: str) -> tuple[_Slot, ...]:
    try:
        parts = list(string.Formatter().parse(template))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"describe template of {type_name}: {exc}") from None
    return tuple(_slot(type_name, *part) for part in parts)


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


@renderer("session.meta_saved")
def _session_meta_saved(e: Any, ev: Any) -> str:
    m = e.meta
    parts = [f"name {m.name!r}"] + ([f"model {m.model}"] if m.model else []) + ([f"cwd {m.cwd}"] if m.cwd else [])
    if m.relation is not None:
        parts.append(f"{m.relation.kind} of {m.relation.parent_session_id}")
    return f"session {e.session_id} meta saved ({', '.join(parts)})"


def _lease_target(e: Any) -> str:
    """What a lease event is about: the session id, else `process <id>`."""
    return getattr(e, "session_id", None) or f"process {getattr(e, 'process_id', '?')}"


@renderer("session.lease_acquired", "process.lease_acquired")
def _lease_acquired(e: Any, ev: Any) -> str:
    text = (f"lease on {_lease_target(e)} acquired by {who(e.owner)} "
            f"(fence {e.fencing_token}, ttl {duration(e.expires_at_ms - e.claimed_at_ms)})")
    if e.reclaimed_from is not None:
        text += (f", reclaimed from dead holder {who(e.reclaimed_from)} "
                 f"(fence {e.reclaimed_fencing_token})")
    return text


@renderer("session.lease_renewed", "process.lease_renewed")
def _lease_renewed(e: Any, ev: Any) -> str:
    how = "re-entered by its holder" if e.reentry else "renewed"
    return (f"lease on {_lease_target(e)} {how} (fence {e.fencing_token}), "
            f"now expires in {duration(e.expires_at_ms - e.renewed_at_ms)}")


@renderer("session.lease_released", "process.lease_released")
def _lease_released(e: Any, ev: Any) -> str:
    return f"lease on {_lease_target(e)} released (fence {e.fencing_token} kept)"


# --- queued work and pending turn inputs ----------------------------------------------------


def _payload_kinds(payloads: Any) -> str:
    counts: dict[str, int] = {}
    for p in payloads:
        counts[kind(p)] = counts.get(kind(p), 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def _wake_frames(payloads: Any) -> str:
    """`, for frame f1` when wakes of the batch are aimed at frames; "" otherwise."""
    frames = describe_wake_frames(payloads)
    return f", for {frames}" if frames else ""


def _with_source_key(text: str, e: Any) -> str:
    """The sentence of an enqueue, followed by its source key when it has one."""
    return (text + f", source key {short(e.source_key)!r}") if e.source_key else text


@renderer("queue.batch_enqueued")
def _batch_enqueued(e: Any, ev: Any) -> str:
    text = (f"batch {short(e.batch_id)} (#{e.enqueue_seq}) enqueued on {e.session_id}: "
            f"{_payload_kinds(e.payloads)}{_wake_frames(e.payloads)}, {e.work_class.value}, {e.slot_policy.value}")
    if e.available_at_ms > e.enqueued_at_ms:
        text += f", ready in {duration(e.available_at_ms - e.enqueued_at_ms)}"
    return _with_source_key(text, e)


@renderer("queue.source_keys_forgotten")
def _keys_forgotten(e: Any, ev: Any) -> str:
    return (f"settled source keys of {e.session_id} older than "
            f"{duration(e.forgotten_at_ms - e.settled_before_ms)} forgotten")


@renderer("inputs.enqueued")
def _input_enqueued(e: Any, ev: Any) -> str:
    ing = e.ingress
    where = (f"for turn {ing.turn_id} at {ing.min_boundary.value}" if kind(ing) == "ActiveTurn"
             else "for the next turn")
    return _with_source_key(f"input {short(e.input_id)} (#{e.enqueue_seq}) on {e.session_id} {where}: "
                            f"{value(e.input)}", e)


@renderer("inputs.claimed")
def _inputs_claimed(e: Any, ev: Any) -> str:
    what = f"turn {e.turn_id} at {e.checkpoint.value}" if e.turn_id and e.checkpoint else "the next turn"
    return (f"{plural(len(e.input_ids), 'input')} on {e.session_id} claimed for {what} by {who(e.owner)} "
            f"generation {e.generation} (claim {e.claim_id})")


# --- the runtime commit ---------------------------------------------------------------------


def message_text(v: Any) -> str | None:
    """`role: 'text'` for a chat message (`{"role", "parts": [...]}` with text parts, or
    `{"role", "content": str}`, or `text` for content); None for anything else.

    The text parts are joined with a space; a part of another kind shows as `[kind]`.
    """
    if not isinstance(v, dict):
        return None
    role = v.get("role")
    if not isinstance(role, str):
        return None
    parts = v.get("parts")
    if isinstance(parts, (list, tuple)):
        pieces = []
        for part in parts:
            if isinstance(part, dict) and isinstance(piece := part.get("content", part.get("text")), str):
                pieces.append(piece)
            elif isinstance(part, dict):
                pieces.append(f"[{part.get('kind') or part.get('type') or 'part'}]")
        return f"{role}: {value(' '.join(pieces))}" if pieces else f"{role}: (no parts)"
    text = v.get("content", v.get("text"))
    if isinstance(text, str):
        return f"{role}: {value(text)}"
    return None


def _node_text(node: Any) -> str:
    """`role: text` of a conversation node (a SessionNode, or the commit event's stored form)."""
    if hasattr(node, "to_node"):
        node = node.to_node()
    payload = node.payload
    if kind(payload) == "PluginPayload":
        return f"plugin {payload.plugin_type}: {value(payload.body)}"
    event = getattr(payload, "event", payload)
    said = message_text(event)
    if said is not None:
        return said
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


@renderer("store.artifact_ref_set")
def _artifact(e: Any, ev: Any) -> str:
    target = f"blob {short(e.blob_ref)}" if e.blob_ref else "nothing (removed)"
    return f"artifact {e.namespace}/{e.artifact_ref} now points at {target}"


# --- the sentences that only fill in fields -------------------------------------------------

templates({
    "session.deleted": "session {session_id} deleted (generation {generation}): lease, queue and inputs wiped",
    "session.purged": ("session {session_id} purged: {payloads_dropped:plural payload} dropped through version "
                       "{through_version} (the chain keeps their digests)"),
    "queue.claimed": ("{batch_ids:ids batch/batches} on {session_id} claimed by {owner:who} generation "
                      "{generation} (claim {claim_id}, {mode})"),
    "queue.completed": "{batch_ids:ids batch/batches} on {session_id} completed (claim {claim_id})",
    "queue.claim_abandoned": "claim {claim_id} on {session_id} abandoned: {batch_ids:ids} claimable again",
    "queue.batch_cancelled": "batch {batch_id:short} on {session_id} cancelled",
    "inputs.claim_abandoned": "claim {claim_id} on {session_id} abandoned: {input_ids:count input} pending again",
    "inputs.cancelled": "{input_ids:count input} on {session_id} cancelled: {input_ids:ids}",
    "inputs.completed": "{input_ids:count input} on {session_id} consumed (claim {claim_id})",
    "inputs.turn_interrupted": ("turn {turn_id} of {session_id} interrupted: {input_ids:count input} moved to the "
                                "next turn"),
    "inputs.vacuumed": "{input_ids:count settled input row} of {session_id} vacuumed",
    "session.nodes_tombstoned": "{node_ids:count node} of {session_id} tombstoned: {node_ids:ids}",
    "session.vacuumed": ("{session_id} vacuumed: {removed_node_count:plural tombstoned node} and "
                         "{removed_pending_turn_input_tombstone_count:plural settled input} removed"),
    "session.attachment_intent_recorded": ("attachment {attachment_id} of {session_id} about to upload blob "
                                           "{blob_ref:short}"),
    "session.attachment_intents_forgotten": ("{attachment_ids:count uncommitted attachment intent} of {session_id} "
                                             "forgotten"),
    "session.attachments_committed": "{attachment_ids:count attachment} of {session_id} stamped committed",
    "store.blob_gc_ran": ("blob GC: {root_count:plural root}, {retained_blob_count} blobs kept, "
                          "{deleted_blob_count} deleted"),
    "effect.session_revoked": ("session {session_id} revoked for awaits ({reason}): {cancelled:count pending await} "
                               "cancelled"),
    "demo.user_message": "user: {text:value}",
    "demo.model_reply": "{model}: {text:value} ({input_tokens} in, {output_tokens} out)",
    "demo.tool_called": "tool {tool}({arguments:value}) -> {result:value}",
})


# --- diffs between positions ----------------------------------------------------------------


def diff_positions(store: Any, from_position: int, to_position: int, streams: Any = None, **kw: Any) -> Any:
    """What changed between two positions, as domain facts: see `eventstore.debug.statediff.diff`."""
    from .statediff import diff

    return diff(store, from_position, to_position, streams, **kw)


from . import describe_processes  # noqa: E402,F401  (registers the process, trigger and effect renderers)
from . import describe_integrations  # noqa: E402,F401  (the LangGraph and Agents SDK renderers)

__all__ = ["describe", "diff_positions", "duration", "generic", "ids", "kind", "plural", "registered_types", "renderer",
           "short", "templates", "value", "who", "WIDTH"]
