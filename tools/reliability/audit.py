"""Static and environmental checks: no pickle, SQL built only from identifiers and
placeholders, private file modes, and a terminal-safe command line.

* `pickle_uses()`: every import or use of pickle (or its relatives: cPickle, dill,
  shelve, marshal, cloudpickle, jsonpickle) in eventstore/ and projections/.
* `sql_interpolations()`: every place where Python builds an SQL string (an f-string,
  `%`, `+` or `.format` whose literal text reads as SQL) and what it interpolates. Table
  and column names, placeholder lists (`?, ?, ?`) and `int(...)` casts are accepted
  automatically; anything else is returned for review (the test keeps a list of the
  reviewed ones, each with the reason it is safe).
* `file_modes(workdir)`: the permission bits of a new store file, its WAL and shared
  memory files, and the scratch files of a rebuild and a projection verify, created
  under a permissive umask.
* `terminal_output(workdir)`: stored text full of control characters (ANSI escapes,
  C1 controls, bidi overrides) printed by every read-only CLI command, text and JSON:
  the raw characters that reached the output.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import stat
import threading
from typing import Iterator

import attrs

from .common import ROOT

PACKAGES = ("eventstore", "projections")
PICKLE_LIKE = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "cloudpickle", "jsonpickle"}
SQL_TEXT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WHERE|FROM|VALUES|LIMIT|ORDER BY|GROUP BY|"
                      r"PRAGMA|ATTACH|DETACH|SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT|JOIN|INDEXED BY|SET)\b"
                      r"|^\s*(AND|OR)\s|\b[a-z_]+\s*(<=|>=|<>|!=|=|<|>)\s*$|\bIN\s*\($")
IDENTIFIER_NAMES = re.compile(r"^(_?[A-Z][A-Z0-9_]*|table|tables|t|column|columns|col|cols|alias|schema|"
                              r"marks|placeholders|sql|"
                              r"self\._?[A-Z0-9_]+|[a-z_]+\._?[A-Z][A-Z0-9_]*)$")
"""Interpolations accepted without review: upper-case constants (column lists), names that
hold a table or column name, placeholder lists (`marks`), and `sql`, the statement being
accumulated (each piece appended to it is itself checked where it is built)."""

REVIEWED: dict[tuple[str, str], str] = {
    ("eventstore/log.py", "order"): "'position' or 'version', chosen in code by read_all",
    ("eventstore/storage/sqlite.py", "name"): "a savepoint name eventstore/_group.py passes as a literal ('cmd', 'cmds')",
    ("projections/leases.py", "', '.join(('l.' + c.strip() for c in _COLUMNS.split(',')))"):
        "the module's constant column list _COLUMNS, each name prefixed with the join's alias",
    ("projections/engine.py", "upper"): "empty, or ' AND position <= ' and int(to_position)",
    ("eventstore/copy.py", "', '.join(key)"): "the destination table's primary key column names, from its own description",
    ("eventstore/copy.py", "sets"): "'c = excluded.c' for the destination table's own column names",
    ("projections/base.py", "', '.join(names)"): "column names a projection module passes as a literal",
    ("projections/base.py", "', '.join(keys)"): "key column names a projection module passes as a literal",
    ("projections/base.py", "sets"): "'c = excluded.c' for the literal column names above",
    ("projections/base.py", "rows"): "a literal VALUES list of ? placeholders or a literal SELECT with ? parameters",
    ("eventstore/logverify.py", "kind_of_digest"): "one of two literals chosen by the backend's dialect",
    ("eventstore/storage/postgres.py", "db.lock_key"): "an int: a 64-bit hash of the validated schema name",
    ("eventstore/storage/postgres.py", "begin"): "the literal BEGIN statement above with its int lock key",
    ("eventstore/storage/postgres.py", "db.schema"):
        "the schema name, checked against [a-z_][a-z0-9_]* (at most 63 characters) by parse_url",
    ("eventstore/storage/postgres.py", "self.name"): "a savepoint name the class generates itself: f'sp{depth}'",
    ("eventstore/storage/postgres.py", "sync"): "'on' or 'off' (and the validated schema name, an int timeout)",
    ("eventstore/storage/postgres.py", "s"): "the schema name, validated by parse_url",
    ("eventstore/storage/pg_sql.py", "updates"):
        "column names read from the table's own description (primary key and columns), not values",
    ("eventstore/storage/pg_txn.py", "name"): "a savepoint name the class generates itself: f'sp{depth}' or 'cmd'",
    ("eventstore/storage/pg_txn.py", "self.schema"):
        "the schema name, checked against [a-z_][a-z0-9_]* (at most 63 characters) by parse_url",
    ("eventstore/storage/postgres.py", "self.schema"):
        "the schema name, checked against [a-z_][a-z0-9_]* (at most 63 characters) by parse_url",
    ("eventstore/storage/postgres.py", "channel_for(self.lock_key)"):
        "'lash_' and 16 hex digits of the int lock key (pg_follow.channel_for)",
    ("eventstore/testing/postgres.py", "name"): "schema names the test factory generates itself (t_<hex>)",
    ("projections/engine.py", "'main.' if scratch is None else ''"):
        "a literal prefix; the table name comes from a projection's own declaration",
    ("eventstore/storage/sqlite.py", "SYNCHRONOUS[self.synchronous]"):
        "a pragma keyword looked up in a fixed dict; the key was validated against it first",
    ("eventstore/storage/sqlite.py", "self.name"): "a savepoint name the class generates itself: f'sp{depth}'",
    ("eventstore/log.py", "' AND '.join(where)"):
        "fragments that are literals with ? placeholders, or an int() cast (read_all)",
    ("eventstore/log.py", "upper"): "'' or ' AND version <= ' + an int() cast (read_stream)",
    ("eventstore/debug/inspection.py", "where"):
        "row_dict's where clause; every caller passes a literal with ? placeholders",
    ("eventstore/debug/inspection.py", "by"): "a column name chosen from the fixed tuple ('status', 'state')",
    ("eventstore/debug/statediff.py", "where"): "'' or a literal condition (no values)",
    ("eventstore/debug/statediff.py", "order"): "the table's primary key column names, read from PRAGMA table_info",
    ("eventstore/debug/describe_events.py", "len(v)"): "not SQL: display text '<N bytes>'",
    ("eventstore/debug/statediff.py", "len(v)"): "not SQL: display text '<N bytes>'",
    ("eventstore/effects/envelopes.py", "child_path(path, k)"): "not SQL: a mismatch report 'path: a != b'",
    ("eventstore/effects/envelopes.py", "_show(a[k])"): "not SQL: a mismatch report 'path: a != b'",
    ("projections/engine.py", "order"): "column ordinals '1, 2, ...' computed from PRAGMA table_info",
    ("projections/_select.py", "' AND '.join(where)"):
        "conditions the callers pass as literals with ? placeholders (values go to params)",
    ("projections/_select.py", "order_by"): "a literal column list every caller passes",
    ("projections/processes.py", "' AND '.join(where)"):
        "literal conditions with ? placeholders and ?-placeholder lists",
    ("projections/inputs.py", "state"): "'' or the literal \"state = 'accepted', \"",
    ("projections/inputs.py", "boundary"): "'' or the literal \" AND min_boundary = 'after_work'\"",
}
"""Interpolations into SQL reviewed by hand, with the reason each is safe. A new one fails
the test until someone reviews it and adds it here."""


def python_files() -> Iterator[str]:
    """Every .py file of the packages, as a path relative to the repository root."""
    for pkg in PACKAGES:
        for base, _dirs, files in os.walk(os.path.join(ROOT, pkg)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(base, name), ROOT)


def _tree(rel: str) -> ast.AST:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
        return ast.parse(fh.read(), rel)


def pickle_uses() -> list[str]:
    """`file:line: what` for every import or attribute use of a pickle-like module."""
    out = []
    for rel in python_files():
        for node in ast.walk(_tree(rel)):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                names = [node.value.id] if node.value.id in PICKLE_LIKE and node.attr in ("loads", "load") else []
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
                names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            for n in names:
                if n in PICKLE_LIKE:
                    out.append(f"{rel}:{node.lineno}: {n}")
    return out


@attrs.frozen
class Interpolation:
    """One expression interpolated into an SQL string."""

    file: str
    line: int
    expression: str
    sql: str
    """The literal text around it (abridged), to show what statement it builds."""


def _literal(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return ""


def _accepted(expr: ast.AST) -> bool:
    """Identifiers, placeholder lists and int() casts (see the module docstring)."""
    text = ast.unparse(expr)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "int":
        return True
    if "'?'" in text or '"?"' in text:
        return True  # a placeholder list: ','.join('?' * n)
    return bool(IDENTIFIER_NAMES.match(text))


def sql_interpolations() -> tuple[list[Interpolation], list[Interpolation]]:
    """(accepted, for review): every expression interpolated into SQL text."""
    accepted, review = [], []
    for rel in python_files():
        for node in ast.walk(_tree(rel)):
            parts: list[ast.AST] = []
            text = ""
            if isinstance(node, ast.JoinedStr):
                text = _literal(node)
                parts = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
            elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
                left, right = _literal(node.left), _literal(node.right)
                text = left or right
                if isinstance(node.op, ast.Mod) and left:
                    parts = [node.right]
                elif left and not right and not isinstance(node.right, (ast.JoinedStr, ast.Constant)):
                    parts = [node.right]
                elif right and not left and not isinstance(node.left, (ast.JoinedStr, ast.Constant, ast.BinOp)):
                    parts = [node.left]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
                  and _literal(node.func.value)):
                text = _literal(node.func.value)
                parts = list(node.args) + [k.value for k in node.keywords]
            if not parts or not SQL_TEXT.search(text):
                continue
            for expr in parts:
                item = Interpolation(rel, node.lineno, ast.unparse(expr), " ".join(text.split())[:80])
                (accepted if _accepted(expr) else review).append(item)
    return accepted, review


# --- file modes --------------------------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def file_modes(workdir: str) -> dict[str, int]:
    """Permission bits of every file the store creates, under umask 022 (see module docstring)."""
    import eventstore
    from eventstore.demo import UserMessage

    path = os.path.join(workdir, "modes.db")
    modes: dict[str, int] = {}

    def note(pattern: str) -> None:
        for name in os.listdir(workdir):
            if re.match(pattern, name):
                kind = re.sub(r"-\d+-\d+\.tmp", ".tmp", name)
                modes[kind] = stat.S_IMODE(os.stat(os.path.join(workdir, name)).st_mode)

    with _umask(0o022):
        store = eventstore.open(path)
        try:
            for i in range(200):
                store.append("modes", [UserMessage(f"event {i}")])
            store.sessions.create("s1")
            note(r"modes\.db(-wal|-shm)?$")
            store.rebuild(progress=lambda done, total: note(r"modes\.db\.rebuild-.*\.tmp$"))
            store.verify_projections(progress=lambda done, total: note(r"modes\.db\.verify-.*\.tmp$"))
        finally:
            store.close()
    return modes


# --- terminal output ----------------------------------------------------------------------------

HOSTILE_TEXT = "red\x1b[31m bell\x07 csi\x9b2J del\x7f bidi\u202eevil\u2066 bs\x08 cr\r nl\n tag\U000e0041 end"
"""Stored text that would drive a terminal: ANSI and C1 escapes, bidi controls, backspace..."""
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")
"""Characters that must never reach a terminal raw (newline and tab are the CLI's own)."""


def hostile_store(path: str) -> dict[str, str]:
    """A store whose stored text (in every domain that has text) carries HOSTILE_TEXT;
    returns the ids the CLI commands need."""
    import eventstore
    from eventstore.demo import ToolCalled, UserMessage
    from eventstore.inputs import NextTurn, TurnInputDraft
    from eventstore.leases import LeaseOwner
    from eventstore.processes import (
        AppendEventRequest, Disposition, EventTypeSpec, ExternalInput, PayloadSchema,
        ProcessRegistration, Provenance, SessionScope,
    )
    from eventstore.queue import AgentFrameTask, QueuedWorkDraft
    from eventstore.sessions import SessionMeta
    from eventstore.triggers import RegisterSubscription, TriggerDefinition

    h = HOSTILE_TEXT
    with eventstore.open(path) as store:
        store.append("notes\x1b[2J\u202e", [UserMessage(h), ToolCalled(h, {h: h}, h)])
        store.sessions.create("s1", SessionMeta(name=h, model=h, cwd=h))
        store.leases.claim("s1", LeaseOwner("owner" + h.replace("\n", ""), "inc"), 60_000)
        store.queue.enqueue(QueuedWorkDraft("s1", (AgentFrameTask("frame", h),)))
        store.inputs.enqueue(TurnInputDraft("s1", h, NextTurn()))
        spec = EventTypeSpec("tool.progress", PayloadSchema("object", ("message",)))
        store.processes.register(ProcessRegistration("p1", ExternalInput({h: h}), Disposition.EXTERNALLY_OWNED,
                                                     Provenance(SessionScope("s1")), (spec,)))
        store.processes.append_event("p1", AppendEventRequest("tool.progress", {"message": h}))
        store.triggers.execute("op-1", RegisterSubscription("host", "key", TriggerDefinition("webhook", "src",
                                                                                             "proc", {"x": h})))
        store.effects.call("scope", "key", {"q": h}, lambda: {"a": h})
        return {"position": str(store.last_position())}


def cli_commands(path: str, ids: dict[str, str]) -> list[list[str]]:
    """Every read-only command that prints stored text, in text and JSON form."""
    base = [["log", path], ["log", path, "--json"], ["log", path, "--stream", "notes\x1b[2J\u202e"],
            ["info", path], ["sessions", path], ["sessions", path, "--json"], ["leases", path],
            ["leases", path, "--json"], ["queue", path, "--session", "s1"], ["queue", path, "--session", "s1", "--json"],
            ["inputs", path, "--session", "s1"], ["inputs", path, "--session", "s1", "--json"],
            ["processes", path], ["processes", path, "--json"], ["process", path, "p1"],
            ["process", path, "p1", "--json"], ["triggers", path], ["triggers", path, "--json"],
            ["effects", path], ["effects", path, "--json"], ["replay", path], ["replay", path, "--json"],
            ["diff", path, "--from", "1"], ["diff", path, "--from", "1", "--json"],
            ["why", path, "--stream", "notes\x1b[2J\u202e", "--version", "1"],
            ["why", path, "--stream", "notes\x1b[2J\u202e", "--version", "1", "--json"], ["export", path]]
    from eventstore.cli import build_parser

    known = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    return [c for c in base if c[0] in known]


def terminal_output(workdir: str) -> dict[str, list[str]]:
    """For each CLI command: the raw control characters it printed (empty when none)."""
    from eventstore.cli import main

    path = os.path.join(workdir, "hostile.db")
    ids = hostile_store(path)
    found: dict[str, list[str]] = {}
    lock = threading.Lock()
    for argv in cli_commands(path, ids):
        out, err = io.StringIO(), io.StringIO()
        with lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse
                status = exc.code
        text = out.getvalue() + err.getvalue()
        bad = sorted({repr(c) for c in RAW_CONTROL.findall(text)})
        label = " ".join(a if a != path else "DB" for a in argv)
        found[label] = bad + ([f"exit status {status}"] if status not in (0, None) else [])
    return found
