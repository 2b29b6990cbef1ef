"""Session subcommands: `eventstore sessions DB` and `eventstore leases DB`.

Both only read. `leases` says whether each lease is live by the system clock at the
moment it runs (a display, not a decision: nothing is recorded).
"""

from __future__ import annotations

import argparse
from typing import Any

from . import EXIT_OK
from ._common import add_db, fmt_ms, open_existing, print_json_lines, print_table, require_session


def register(sub: Any) -> None:
    """Add the `sessions` and `leases` subcommands to the parser."""
    p = sub.add_parser("sessions", help="list sessions: meta, status, event count, last activity")
    add_db(p)
    p.add_argument("--status", choices=("active", "deleted", "purged"), help="only sessions in this status")
    p.add_argument("--json", action="store_true", help="JSON lines, one session per line")
    p.set_defaults(func=_sessions)

    p = sub.add_parser("leases", help="list session execution leases: holder, fence, expiry")
    add_db(p)
    p.add_argument("--session", metavar="S", help="only the lease of session S")
    p.add_argument("--json", action="store_true", help="JSON lines, one lease per line")
    p.set_defaults(func=_leases)


def _sessions(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        sessions = store.sessions.list(status=args.status)
    if args.json:
        print_json_lines(sessions)
        return EXIT_OK
    rows = []
    for s in sessions:
        rel = s.meta.relation
        rows.append((s.session_id, s.status, s.generation, s.meta.name, s.meta.model, s.meta.cwd,
                     f"{rel.kind} of {rel.parent_session_id}" if rel else "", s.event_count,
                     fmt_ms(s.last_activity_ms)))
    print_table(["session", "status", "gen", "name", "model", "cwd", "relation", "events", "last activity"],
                rows, title=f"{len(rows)} session(s)")
    return EXIT_OK


def _lease_status(state: Any, now_ms: int) -> str:
    if state.holder is None:
        return "released"
    return "live" if state.holder.is_live(now_ms) else "expired"


def _leases(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        if args.session is not None:
            require_session(store, args.session, args.db)
        states = store.leases.list(args.session)
        now = store.now_ms()
    if args.json:
        print_json_lines({"session_id": st.session_id, "status": _lease_status(st, now),
                          "fencing_token": st.fencing_token, "holder": st.holder} for st in states)
        return EXIT_OK
    rows = []
    for st in states:
        h = st.holder
        owner = f"{h.owner.owner_id} ({h.owner.incarnation_id})" if h else ""
        pid = getattr(h.owner.liveness, "pid", "") if h else ""
        rows.append((st.session_id, _lease_status(st, now), st.fencing_token, owner, pid,
                     fmt_ms(h.claimed_at_ms) if h else "", fmt_ms(h.expires_at_ms) if h else ""))
    print_table(["session", "status", "fence", "holder (incarnation)", "pid", "claimed", "expires"],
                rows, title=f"{len(rows)} lease(s), status as of {fmt_ms(now)}")
    return EXIT_OK
