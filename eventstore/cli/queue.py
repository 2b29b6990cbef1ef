"""Queue subcommands: `eventstore queue DB --session S` and `eventstore inputs DB --session S`.

Both only read. Whether a claim is live is judged by the system clock when the command
runs (a display, not a decision: nothing is recorded); with `--at POSITION` the view is
replayed to that position and judged at the time that event was recorded.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence

from ..queue.events import describe_wake_frames
from . import EXIT_OK
from ._common import (add_db, dumps, fmt_ms, open_existing, print_json_lines, print_table, require_session,
                      whole_number)


def register(sub: Any) -> None:
    """Add the `queue` and `inputs` subcommands to the parser."""
    _add_listing(sub, "queue", "a session's queued work: pending and claimed batches, claim owner and generation",
                 "only batches no live claim holds", "batch", _queue)
    _add_listing(sub, "inputs", "a session's pending turn inputs: state, ingress, claim owner and generation",
                 "only pending and deferred inputs no live claim holds", "input", _inputs)


def _add_listing(sub: Any, name: str, help: str, pending_help: str, noun: str,
                 func: Callable[[argparse.Namespace], int]) -> None:
    """One subcommand listing a session's `name` (`--session`, `--pending`, `--at`, `--json`)."""
    p = sub.add_parser(name, help=help)
    add_db(p)
    p.add_argument("--session", required=True, metavar="S", help=f"the session whose {name} to show")
    p.add_argument("--pending", action="store_true", help=pending_help)
    p.add_argument("--at", type=_position, metavar="P", help="as it was at log position P (time travel)")
    p.add_argument("--json", action="store_true", help=f"JSON lines, one {noun} per line")
    p.set_defaults(func=func)


_position = whole_number(1)


def _read(args: argparse.Namespace, facade: str) -> tuple[list[Any], int, int | None]:
    """(rows, the time liveness was judged at, the live lease generation) for the command."""
    with open_existing(args.db) as store:
        require_session(store, args.session, args.db)
        view: Any = store
        now = store.now_ms()
        if args.at is not None:
            view = store.at(args.at, streams=[f"session:{args.session}"])
            ev = store.get(args.at)
            now = ev.recorded_at_ms if ev is not None else now
        try:
            reader = getattr(view, facade)
            rows = (reader.list_pending if args.pending else reader.list)(args.session, now_ms=now)
            lease = view.leases.get(args.session)
            holder = lease.live_holder(now) if lease is not None else None
        finally:
            if view is not store:
                view.close()
    return rows, now, holder.fencing_token if holder is not None else None


def _short(ident: str) -> str:
    """An id cut for the table (JSON output keeps it whole)."""
    return ident if len(ident) <= 16 else ident[:15] + "…"


def _claim_cells(claim: Any) -> tuple[str, str]:
    if claim is None:
        return "", ""
    return f"{claim.owner_id} ({claim.incarnation_id})", f"{claim.generation}" + ("" if claim.live else " (not live)")


_CLASS = {"turn_work": "turn", "session_command": "command"}
_DELIVERY = {"earliest_safe_boundary": "safe", "after_current_turn_commit": "after-commit"}


def _show(args: argparse.Namespace, facade: str, noun: str, columns: Sequence[str],
          row: Callable[[Any, int], tuple[Any, ...]]) -> int:
    """Print the session's rows of `facade` as JSON lines (`--json`) or as a table of `row(item, now)`."""
    items, now, live = _read(args, facade)
    if args.json:
        print_json_lines(items)
        return EXIT_OK
    rows = [row(item, now) for item in items]
    lease = f"live lease generation {live}" if live is not None else "no live lease"
    print_table(columns, rows, title=f"session {args.session}: {len(rows)} {noun}; {lease} as of {fmt_ms(now)}")
    return EXIT_OK


def _batch_row(b: Any, now: int) -> tuple[Any, ...]:
    kinds = ", ".join(sorted({type(i.payload).__name__ for i in b.items}))
    work = f"{_CLASS[b.work_class.value]} {b.slot_policy.value} {_DELIVERY[b.delivery_policy.value]}"
    if b.merge_key.kind != "payload_default":
        work += f" {b.merge_key.wire}"
    state = b.state if b.available_at_ms <= now else f"{b.state}, ready {fmt_ms(b.available_at_ms)}"
    frames = describe_wake_frames(b.payloads)  # only wakes aimed at a frame add to the cell
    if frames:
        kinds += f" ({frames})"
    return (b.enqueue_seq, _short(b.batch_id), state, work, f"{len(b.items)} {kinds}", b.source_key or "",
            *_claim_cells(b.claim))


def _input_row(i: Any, now: int) -> tuple[Any, ...]:
    turn = getattr(i.ingress, "turn_id", None)
    where = f"turn {turn} ({i.ingress.min_boundary.value})" if turn is not None else "next turn"
    text = dumps(i.input)
    return (i.enqueue_seq, _short(i.input_id), i.state.value, where, text if len(text) <= 40 else text[:39] + "…",
            i.source_key or "", *_claim_cells(i.claim))


def _queue(args: argparse.Namespace) -> int:
    return _show(args, "queue", "batch(es)",
                 ["seq", "batch", "state", "work", "items", "source key", "claim owner", "gen"], _batch_row)


def _inputs(args: argparse.Namespace) -> int:
    return _show(args, "inputs", "input(s)",
                 ["seq", "input", "state", "ingress", "input", "source key", "claim owner", "gen"], _input_row)
