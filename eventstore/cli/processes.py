"""Process registry subcommands: `processes` (list), `process` (one process: record, events
or only the newest ones, grants, lease, segment handovers) and `prune`."""

from __future__ import annotations

import argparse
import datetime as _dt
from typing import Any

from ..errors import InvalidArgument
from . import EXIT_OK
from ._common import (add_db, dumps, fmt_ms, open_existing, print_json_lines, print_table, printable, summarize,
                      whole_number)

STATUSES = ("running", "completed", "failed", "cancelled", "abandoned")


def register(sub: Any) -> None:
    """Add the process registry subcommands to the parser."""
    p = sub.add_parser("processes", help="list registered processes (a table, or --json)")
    add_db(p)
    p.add_argument("--status", choices=STATUSES, help="only processes in this status")
    p.add_argument("--scope", metavar="SCOPE", help="only processes started by this scope id "
                   "(host, host:NAME, session:ID or session:ID/frame:F)")
    p.add_argument("--limit", type=_whole, metavar="N", help="print at most N processes")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_processes)

    p = sub.add_parser("process", help="show one process: record, events, grants, lease and segment handovers")
    add_db(p)
    p.add_argument("process_id", metavar="ID", help="the process id")
    p.add_argument("--recent", type=_whole, metavar="N", help="show only the newest N process events")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_process)

    p = sub.add_parser("prune", help="remove terminal processes last changed before a date")
    add_db(p)
    p.add_argument("--before", required=True, type=parse_date, metavar="DATE",
                   help="cutoff: ISO date or time (UTC unless it has an offset), or epoch milliseconds")
    p.add_argument("--status", action="append", choices=STATUSES[1:], dest="statuses",
                   help="only this terminal status (repeatable)")
    p.add_argument("--scope", metavar="SCOPE", help="only processes started by this scope id")
    p.add_argument("--caused-by", metavar="CAUSE",
                   help="only processes whose provenance names this cause (a trigger subscription id)")
    p.add_argument("--up-to-change-seq", type=_whole, metavar="N",
                   help="only processes whose last change is at or below this change_seq (a feed watermark)")
    p.add_argument("--dry-run", action="store_true", help="report what would be pruned, change nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_prune)


_whole = whole_number(0)


def parse_date(text: str) -> int:
    """A cutoff in epoch ms from `2024-05-01`, `2024-05-01T12:00:00Z`, an offset time, or digits (ms)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM], or epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return int(when.timestamp() * 1000)


def _row(r: Any) -> list[Any]:
    return [r.process_id, r.status.value, r.disposition.value, r.registration.input.KIND, r.owner_scope_id,
            r.last_sequence, fmt_ms(r.updated_at_ms), r.change_seq]


def _processes(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        records = store.processes.list(status=args.status, scope=args.scope, limit=args.limit)
    if args.json:
        print_json_lines(records)
        return EXIT_OK
    print_table(["id", "status", "disposition", "input", "owner scope", "events", "updated", "change"],
                [_row(r) for r in records], title=f"{len(records)} process(es)")
    return EXIT_OK


def _process(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        procs = store.processes
        with store.read_transaction():  # one snapshot: record, events, grants and lease agree
            record = procs.require(args.process_id)
            if args.recent is None:
                events = procs.events_after(args.process_id)
            else:
                events = procs.recent_events(args.process_id, args.recent)
            grants = procs.grants_for_process(args.process_id)
            lease = procs.lease_state(args.process_id)
            handovers = procs.handovers(args.process_id)
    if args.json:
        print(dumps({"record": record, "events": events, "grants": grants, "lease": lease, "handovers": handovers}))
        return EXIT_OK
    reg = record.registration
    print(f"process:      {printable(record.process_id)}")
    print(f"status:       {record.status.value}" + (f"  output: {summarize(record.await_output, 80)}"
                                                    if record.await_output is not None else ""))
    print(f"input:        {reg.input.KIND}  disposition: {reg.disposition.value}  env: {reg.env_ref or '-'}")
    print(f"owner scope:  {printable(record.owner_scope_id)}  wake target: "
          f"{printable(record.wake_target.scope_id) if record.wake_target else '-'}")
    print(f"created:      {fmt_ms(record.created_at_ms)}  updated: {fmt_ms(record.updated_at_ms)}  "
          f"change_seq: {record.change_seq}")
    for name in ("external_ref", "first_started", "abandon_request", "wait"):
        value = getattr(record, name)
        if value is not None:
            print(f"{name + ':':<13} {summarize(value, 90)}")
    print(f"hash:         {record.registration_hash}")
    rows = [[e.sequence, fmt_ms(e.occurred_at_ms), e.event_type, e.replay_key or "",
             e.terminal.status.value if e.terminal else "",
             (e.wake_delivery.target_scope_id if e.wake_delivery else "(no target)") if e.wake else "",
             summarize(e.payload, 60)] for e in events]
    shown = f"{len(events)} event(s)" if args.recent is None else \
        f"the newest {len(events)} of {record.last_sequence} event(s)"
    print_table(["seq", "time", "type", "replay key", "terminal", "wake", "payload"], rows, title=shown)
    print_table(["scope", "kind", "label", "granted"],
                [[g.scope_id, g.descriptor.kind or "", g.descriptor.label or "", fmt_ms(g.granted_at_ms)]
                 for g in grants], title=f"{len(grants)} grant(s)")
    holder = lease.holder
    if holder is None:
        print(f"lease:        free (fencing token {lease.fencing_token})")
    else:
        print(f"lease:        held by {printable(holder.owner.owner_id)}/{printable(holder.owner.incarnation_id)}, "
              f"fence {holder.fencing_token}, expires {fmt_ms(holder.expires_at_ms)}")
    print_table(["segment", "put", "payload hash", "payload"],
                [[h.segment_ordinal, fmt_ms(h.put_at_ms), h.payload_hash[:16] + "…", summarize(h.payload, 60)]
                 for h in handovers], title=f"{len(handovers)} segment handover(s)")
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    from ..processes.events import PruneFilter
    from ..processes.model import ProcessStatus

    flt = None
    if args.statuses or args.scope or args.caused_by:
        flt = PruneFilter(tuple(ProcessStatus(s) for s in args.statuses or ()), args.scope,
                          caused_by=args.caused_by)
    if args.before < 0:
        raise InvalidArgument("--before must not be before 1970")
    with open_existing(args.db, write=True) as store:
        report = store.processes.prune(args.before, filter=flt, up_to_change_seq=args.up_to_change_seq,
                                       dry_run=args.dry_run)
    if args.json:
        print(dumps(report))
        return EXIT_OK
    verb = "would prune" if report.dry_run else "pruned"
    print(f"{verb} {len(report.pruned_processes)} terminal process(es) last changed before "
          f"{fmt_ms(report.cutoff_ms)}, with {report.pruned_events} event(s)"
          + ("" if report.dry_run else f"; dropped {report.purged_payloads} payload(s), the chain still verifies"))
    for pid in report.pruned_processes:
        print(f"  {printable(pid)}")
    return EXIT_OK
