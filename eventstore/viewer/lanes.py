"""Lanes of a session view: the lease, queued work, turn inputs and processes over time.

Each lane is a list of items; an item is one lease holding, one queued batch, one turn
input or one process, from the position of the event that began it (`start`) to the
one that ended it (`end`, None while it is still open), with `marks` at the positions
of what happened in between (renewals, claims, process events). Items that overlap in
time are packed into sub-rows (`row`) so that none hides another.

The lanes are read off the session's events, in log order; what an event means is the
domain's (a claim, a completion), so an event type this module does not know is simply
not drawn in a lane (it still shows in the timeline).
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable

ITEM_FIELDS = ("id", "label", "start", "end", "end_reason", "row", "marks", "detail", "lapsed", "expiries")
"""Columns of a lane item as the page gets it (a list per item keeps a long session's page small).
`lapsed`: for a lease holding, the first event recorded after its expiry while it was
still held; `expiries`: the holding's [position, expires_at_ms] after its acquisition
and each renewal."""
MAX_ROWS = 8
"""Sub-rows per lane; more overlapping items share the last sub-row."""


def _iso(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC."""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _short(text: str, keep: int = 12) -> str:
    """An id cut to `keep` characters (lanes are narrow; the title attribute has it whole)."""
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def _item(item_id: str, label: str, start: int, detail: str) -> dict[str, Any]:
    return {"id": item_id, "label": label, "start": start, "end": None, "end_reason": None, "marks": [],
            "detail": detail, "row": 0}


class _Lane:
    """Items of one lane, keyed by id while they are open."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, dict[str, Any]] = {}

    def begin(self, item: dict[str, Any]) -> dict[str, Any]:
        old = self.open.pop(item["id"], None)
        if old is not None:  # the same id begun again: close the earlier one there
            self.finish_item(old, item["start"], "replaced")
        self.items.append(item)
        self.open[item["id"]] = item
        return item

    def mark(self, item_id: str, position: int, text: str) -> None:
        item = self.open.get(item_id)
        if item is not None:
            item["marks"].append([position, text])

    def finish(self, item_id: str, position: int, reason: str) -> None:
        item = self.open.pop(item_id, None)
        if item is not None:
            self.finish_item(item, position, reason)

    @staticmethod
    def finish_item(item: dict[str, Any], position: int, reason: str) -> None:
        item["end"] = position
        item["end_reason"] = reason

    def finish_all(self, position: int, reason: str) -> None:
        for item in list(self.open.values()):
            self.finish_item(item, position, reason)
        self.open.clear()


def pack_rows(items: list[dict[str, Any]], max_rows: int = MAX_ROWS) -> int:
    """Give each item a sub-row so that items sharing a row do not overlap; returns the
    number of rows used. Open items (end None) run to the end of the view."""
    ends: list[float] = []
    for item in sorted(items, key=lambda i: i["start"]):
        end = float("inf") if item["end"] is None else item["end"]
        for r, last in enumerate(ends):
            if last < item["start"]:
                ends[r] = end
                item["row"] = r
                break
        else:
            if len(ends) < max_rows:
                ends.append(end)
                item["row"] = len(ends) - 1
            else:
                item["row"] = max_rows - 1
                ends[-1] = max(ends[-1], end)
    return max(1, len(ends))


def _payload_kinds(payloads: Iterable[Any]) -> str:
    return ", ".join(type(p).__name__ for p in payloads)


def build_lanes(events: list[Any], processes: list[tuple[str, str]]) -> dict[str, Any]:
    """The four lanes of a session from its events (sorted by position) and its related
    processes ((process id, "started" or "wakes"))."""
    lease, queue, inputs, procs = _Lane(), _Lane(), _Lane(), _Lane()
    relation = dict(processes)
    holding: dict[str, Any] | None = None
    for ev in events:
        t, d, p = ev.type, ev.data, ev.position
        if holding is not None and holding["end"] is None and "lapsed" not in holding \
                and ev.recorded_at_ms >= holding["expires_ms"]:
            holding["lapsed"] = p  # the first event recorded after the expiry
        if d is None:
            continue
        if t == "session.lease_acquired":
            if holding is not None and holding["end"] is None:
                lease.finish_item(holding, p, "reclaimed" if d.reclaimed_from is not None else "expired")
                lease.open.clear()
            who = d.owner.owner_id
            detail = (f"holder {who} (incarnation {d.owner.incarnation_id}), fence {d.fencing_token}, "
                      f"claimed {_iso(d.claimed_at_ms)}")
            if d.reclaimed_from is not None:
                detail += f"; reclaimed from {d.reclaimed_from.owner_id} (fence {d.reclaimed_fencing_token})"
            label = f"{who} · fence {d.fencing_token}"
            holding = lease.begin(_item(f"lease:{d.fencing_token}", label, p, detail))
            holding.update(expires_ms=d.expires_at_ms, expiries=[[p, d.expires_at_ms]])
        elif t == "session.lease_renewed" and holding is not None:
            holding["expires_ms"] = d.expires_at_ms
            holding["expiries"].append([p, d.expires_at_ms])
            holding.pop("lapsed", None)
            holding["marks"].append([p, f"renewed: expires {_iso(d.expires_at_ms)}"])
        elif t == "session.lease_released" and holding is not None:
            lease.finish(holding["id"], p, "released")
        elif t == "queue.batch_enqueued":
            queue.begin(_item(d.batch_id, f"#{d.enqueue_seq} {_payload_kinds(d.payloads)}", p,
                              f"{d.work_class.value}, source key {d.source_key}"))
        elif t == "queue.claimed":
            for b in d.batch_ids:
                queue.mark(b, p, f"claimed ({d.mode}) by {d.owner.owner_id}, generation {d.generation}")
        elif t == "queue.claim_abandoned":
            for b in d.batch_ids:
                queue.mark(b, p, "claim abandoned")
        elif t == "queue.completed":
            for b in d.batch_ids:
                queue.finish(b, p, "completed")
        elif t == "queue.batch_cancelled":
            queue.finish(d.batch_id, p, "cancelled")
        elif t == "inputs.enqueued":
            ingress = type(d.ingress).__name__
            inputs.begin(_item(d.input_id, f"#{d.enqueue_seq} {ingress}", p,
                               f"source key {d.source_key}"))
        elif t == "inputs.claimed":
            for i in d.input_ids:
                inputs.mark(i, p, f"claimed ({d.mode}) by {d.owner.owner_id}, generation {d.generation}")
        elif t == "inputs.claim_abandoned":
            for i in d.input_ids:
                inputs.mark(i, p, "claim abandoned")
        elif t == "inputs.turn_interrupted":
            for i in d.input_ids:
                inputs.mark(i, p, f"deferred to the next turn (turn {d.turn_id} interrupted)")
        elif t == "inputs.completed":
            for i in d.input_ids:
                inputs.finish(i, p, "completed")
        elif t == "inputs.cancelled":
            for i in d.input_ids:
                inputs.finish(i, p, "cancelled")
        elif t == "session.deleted":
            for lane in (lease, queue, inputs):
                lane.finish_all(p, "session deleted")
        elif t.startswith("process."):
            _process_event(procs, relation, t, d, p)
    lanes = {"lease": lease.items, "queue": queue.items, "inputs": inputs.items, "processes": procs.items}
    out: dict[str, Any] = {"fields": list(ITEM_FIELDS)}
    for name, items in lanes.items():
        rows = pack_rows(items)
        out[name] = {"items": [[i.get(f) for f in ITEM_FIELDS] for i in items], "rows": rows}
    return out


_PROCESS_MARKS = frozenset({"process.first_started", "process.lease_acquired", "process.lease_released",
                            "process.wait_set", "process.wait_cleared", "process.abandon_requested",
                            "process.external_ref_set"})


def _process_event(procs: _Lane, relation: dict[str, str], t: str, d: Any, p: int) -> None:
    pid = d.process_id if hasattr(d, "process_id") else None
    if t == "process.registered":
        reg = d.registration
        kind = getattr(reg.input, "KIND", type(reg.input).__name__)
        rel = relation.get(d.process_id, "")
        procs.begin(_item(d.process_id, f"{_short(d.process_id, 20)} ({kind})", p,
                          f"{kind}, {reg.disposition.value}, {rel} this session"))
    elif pid is None:
        return
    elif t == "process.event_appended":
        if d.terminal is not None:
            procs.mark(pid, p, f"#{d.sequence} {d.event_type}")
            status = d.terminal.status
            procs.finish(pid, p, str(getattr(status, "value", status)))
        else:
            procs.mark(pid, p, f"#{d.sequence} {d.event_type}" + (" (wakes)" if d.wake is not None else ""))
    elif t in _PROCESS_MARKS:
        procs.mark(pid, p, t.split(".", 1)[1].replace("_", " "))
