"""Trigger and effect subcommands: `eventstore triggers DB`, `eventstore prune-subscriptions
DB`, `eventstore prune-trigger-history DB`, `eventstore forget-occurrences DB`,
`eventstore effects DB` and `eventstore forget-effect DB --scope S --key K`.

`triggers` and `effects` only read the projections. `prune-subscriptions` runs
`PruneSubscriptions` (tombstone named keys of one owner scope) and `prune-trigger-history`
runs `PruneTriggerHistory` (retention of receipts and tombstones), each receipted under an
operation id. `forget-occurrences` is `store.triggers.forget_occurrences` (occurrence
retention), with a `--dry-run`. `effects` shows each journaled effect's status, attempts
and a one-line summary of its outcome or error.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from ..errors import InvalidArgument, NotFound
from ..triggers import PruneSubscriptions, PruneTriggerHistory
from . import EXIT_OK
from ._common import add_db, dumps, fmt_ms, open_existing, print_table, summarize
from .processes import parse_date


def register(sub: Any) -> None:
    """Add the trigger and effect subcommands to the parser."""
    p = sub.add_parser("triggers", help="list trigger subscriptions: owner, key, state, revision, deliveries")
    add_db(p)
    p.add_argument("--scope", metavar="SCOPE", help="only subscriptions of this owner scope (host, session:<id>, ...)")
    p.add_argument("--json", action="store_true", help="JSON lines, one subscription per line")
    p.set_defaults(func=_triggers)

    p = sub.add_parser("prune-subscriptions",
                       help="tombstone the named trigger subscriptions of one owner scope (receipted)")
    add_db(p)
    p.add_argument("keys", nargs="+", metavar="KEY", help="subscription keys to tombstone (right after DB)")
    p.add_argument("--scope", required=True, metavar="SCOPE",
                   help="their owner scope (host, session:<id>, ...)")
    p.add_argument("--operation-id", metavar="OP",
                   help="the operation id to receipt it under; the same id and keys again replay the answer "
                        "(default: a new random id)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_prune_subscriptions)

    p = sub.add_parser("prune-trigger-history",
                       help="retention: drop trigger receipts, and tombstones deleted, before a cutoff")
    add_db(p)
    p.add_argument("--older-than", type=parse_date, required=True, metavar="DATE",
                   help="cutoff: ISO date or time (UTC unless it has an offset), or epoch milliseconds")
    p.add_argument("--operation-id", metavar="OP",
                   help="the operation id to receipt it under (default: random)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_prune_trigger_history)

    p = sub.add_parser("forget-occurrences",
                       help="forget trigger occurrences (and their idempotency keys) older than a cutoff")
    add_db(p)
    p.add_argument("--older-than", type=parse_date, metavar="DATE",
                   help="cutoff: ISO date or time (UTC unless it has an offset), or epoch milliseconds "
                        "(default: now minus the 7-day retention)")
    p.add_argument("--dry-run", action="store_true", help="report how many would be forgotten, change nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_forget_occurrences)

    p = sub.add_parser("effects", help="list journaled effects: status, attempts, outcome summary")
    add_db(p)
    p.add_argument("--scope", metavar="S", help="only the effects of execution scope S")
    p.add_argument("--status", choices=("in_progress", "completed", "failed", "waiting", "cancelled"),
                   help="only effects in this status")
    p.add_argument("--json", action="store_true", help="JSON lines, one effect per line")
    p.set_defaults(func=_effects)

    p = sub.add_parser("forget-effect", help="forget a finished journaled effect, so that its next call runs "
                       "it again (store.effects.forget)")
    add_db(p)
    p.add_argument("--scope", required=True, metavar="S", help="the effect's execution scope")
    p.add_argument("--key", required=True, metavar="K", help="the effect's replay key")
    p.add_argument("--json", action="store_true", help='print {"scope", "replay_key", "forgotten"}')
    p.set_defaults(func=_forget_effect)


def _triggers(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        subs = store.triggers.list(owner_scope=args.scope)
        occurrences = len(store.triggers.occurrences())
    if args.json:
        out = sys.stdout
        for s in subs:
            out.write(dumps({"subscription_id": s.subscription_id, "owner_scope": s.owner_scope,
                             "subscription_key": s.subscription_key, "state": s.state,
                             "incarnation": s.incarnation, "revision": s.revision, "definition": s.definition,
                             "deliveries": s.deliveries, "created_at_ms": s.created_at_ms,
                             "updated_at_ms": s.updated_at_ms, "deleted_at_ms": s.deleted_at_ms}) + "\n")
        return EXIT_OK
    rows = []
    for s in subs:
        d = s.definition
        source = f"{d.source_type}:{d.source_key if d.source_key is not None else '*'}"
        # The id shortened like a git hash (the full id is in --json and in every process id).
        rows.append((s.owner_scope, s.subscription_key, s.subscription_id[:12] + "…", s.state, s.incarnation,
                     s.revision, source, d.process_name, s.deliveries))
    print_table(["owner scope", "key", "id", "state", "inc", "rev", "source", "process", "deliveries"],
                rows, title=f"{len(rows)} subscription(s), {occurrences} occurrence(s) ingested")
    return EXIT_OK


def _execute(args: argparse.Namespace, command: Any, prefix: str) -> Any:
    op = args.operation_id if args.operation_id is not None else f"cli:{prefix}:{uuid.uuid4().hex}"
    with open_existing(args.db, write=True) as store:
        return store.triggers.execute(op, command)


def _prune_subscriptions(args: argparse.Namespace) -> int:
    r = _execute(args, PruneSubscriptions(args.scope, tuple(args.keys)), "prune-subscriptions")
    if args.json:
        print(dumps({"operation_id": r.operation_id, "owner_scope": r.owner_scope, "outcome": r.outcome,
                     "replayed": r.replayed, "tombstoned": list(r.tombstoned)}))
        return EXIT_OK
    done = ", ".join(f"{t.subscription_key} (revision {t.revision})" for t in r.tombstoned) or "nothing"
    again = " (replayed: the recorded answer of this operation id)" if r.replayed else ""
    print(f"operation {r.operation_id} in {r.owner_scope}: tombstoned {done}{again}")
    return EXIT_OK


def _prune_trigger_history(args: argparse.Namespace) -> int:
    if args.older_than < 0:
        raise InvalidArgument("--older-than must not be before 1970")
    r = _execute(args, PruneTriggerHistory(args.older_than), "prune-trigger-history")
    if args.json:
        print(dumps({"operation_id": r.operation_id, "older_than_ms": args.older_than, "replayed": r.replayed,
                     "pruned_subscriptions": r.pruned_subscriptions, "pruned_receipts": r.pruned_receipts,
                     "pruned_deliveries": r.pruned_deliveries}))
        return EXIT_OK
    again = " (replayed)" if r.replayed else ""
    print(f"before {fmt_ms(args.older_than)}: dropped {r.pruned_receipts} receipt(s), retired "
          f"{r.pruned_subscriptions} tombstone(s) with {r.pruned_deliveries} delivery row(s){again}")
    return EXIT_OK


def _forget_occurrences(args: argparse.Namespace) -> int:
    if args.older_than is not None and args.older_than < 0:
        raise InvalidArgument("--older-than must not be before 1970")
    with open_existing(args.db, write=True) as store:
        if args.older_than is not None and args.older_than > store.now_ms():
            raise InvalidArgument(f"--older-than {fmt_ms(args.older_than)} is in the future (now is "
                                  f"{fmt_ms(store.now_ms())}): nothing ingested then can be forgotten")
        t = store.triggers
        # The cutoff is fixed here so the report names the one the command used.
        cutoff = args.older_than if args.older_than is not None else max(
            0, store.now_ms() - (t.occurrence_retention_ms or 0))
        n = t.forget_occurrences(cutoff, dry_run=args.dry_run)
    if args.json:
        print(dumps({"dry_run": args.dry_run, "older_than_ms": cutoff, "forgotten": n}))
        return EXIT_OK
    verb = "would forget" if args.dry_run else "forgot"
    print(f"{verb} {n} occurrence(s) ingested before {fmt_ms(cutoff)} with no delivery left")
    return EXIT_OK


def _forget_effect(args: argparse.Namespace) -> int:
    with open_existing(args.db, write=True) as store:
        if store.effects.get(args.scope, args.key) is None:
            raise NotFound(f"no effect {args.key!r} in scope {args.scope!r} in {args.db}")
        forgotten = store.effects.forget(args.scope, args.key)
    if args.json:
        print(dumps({"scope": args.scope, "replay_key": args.key, "forgotten": forgotten}))
    else:
        print(f"forgot effect {args.key!r} in scope {args.scope!r}: its next call runs it again")
    return EXIT_OK


def _summary(e: Any) -> str:
    if e.kind == "sleep" and e.status in ("completed", "in_progress"):
        return f"{'slept' if e.status == 'completed' else 'sleeping'} until {fmt_ms(e.due_at_ms)}"
    if e.status == "completed":
        return summarize(e.outcome, 60)
    if e.status in ("failed", "cancelled"):
        return summarize(f"{e.error_type}: {e.error_message}", 60)
    if e.status == "waiting":
        return "waiting for resolution"
    return f"lease expires {fmt_ms(e.lease_expires_at_ms)}"


def _effects(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        entries = store.effects.list(scope=args.scope, status=args.status)
    if args.json:
        out = sys.stdout
        for e in entries:
            out.write(dumps({"scope": e.scope, "replay_key": e.replay_key, "kind": e.kind, "status": e.status,
                             "attempts": e.attempts, "renewals": e.renewals, "envelope": e.envelope,
                             "outcome": e.outcome, "error_type": e.error_type, "error_message": e.error_message,
                             "holder": e.holder.owner_id if e.holder else None,
                             "lease_expires_at_ms": e.lease_expires_at_ms, "due_at_ms": e.due_at_ms,
                             "session_id": e.session_id, "started_at_ms": e.started_at_ms,
                             "finished_at_ms": e.finished_at_ms}) + "\n")
        return EXIT_OK
    rows = []
    for e in entries:
        holder = e.holder.owner_id if e.holder else ""
        rows.append((e.scope, e.replay_key, e.kind, e.status, e.attempts, holder, _summary(e)))
    scopes = len({e.scope for e in entries})
    print_table(["scope", "replay key", "kind", "status", "attempts", "holder", "outcome"],
                rows, title=f"{len(rows)} effect(s) in {scopes} scope(s)")
    return EXIT_OK
