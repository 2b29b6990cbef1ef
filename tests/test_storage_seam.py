"""The storage seam: SQLite implements every member of `eventstore.storage.Storage`, the
driver is imported only by the SQLite backend, and no domain reads the events table with
SQL of its own (they use the log's API)."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
from typing import Iterator

from eventstore.storage import Storage
from eventstore.storage.sqlite import Database

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOMAINS = ("sessions", "commits", "attachments", "leases", "queue", "inputs", "processes", "triggers", "effects")


def _members(cls: type) -> set[str]:
    return {n for n in vars(cls) if not n.startswith("_")} | set(getattr(cls, "__annotations__", {}))


def test_the_sqlite_backend_provides_every_member_of_the_storage_protocol(tmp_path):
    """Each method and attribute the Protocol names exists on the SQLite Database, with the
    same parameter names (a backend written against the Protocol works in its place)."""
    db = Database(str(tmp_path / "x.db"))
    try:
        for name in _members(Storage):
            assert hasattr(db, name), name
            wanted = getattr(Storage, name, None)
            if inspect.isfunction(wanted):
                got = inspect.signature(getattr(Database, name)).parameters
                assert list(inspect.signature(wanted).parameters) == list(got), name
    finally:
        db.close()


def test_only_the_sqlite_backend_imports_the_driver():
    """apsw appears in one module: a second backend replaces it without touching the rest."""
    users = [p.relative_to(ROOT).as_posix() for d in ("eventstore", "projections")
             for p in (ROOT / d).rglob("*.py") if "import apsw" in p.read_text()]
    assert users == ["eventstore/storage/sqlite.py"]


def test_no_domain_reads_the_events_table_with_its_own_sql():
    """Domains reach the log through EventLog (read_all, get, stored_payloads, ...)."""
    offenders = [p.relative_to(ROOT).as_posix() for d in DOMAINS for p in (ROOT / "eventstore" / d).rglob("*.py")
                 if "FROM events" in p.read_text() or "INTO events" in p.read_text()]
    assert offenders == []


def test_the_backend_s_own_checks_report_a_sound_new_file(tmp_path):
    """A fresh database: no integrity problems, no position ever handed out, stamp (0, 0, 0)."""
    db = Database(str(tmp_path / "x.db"))
    try:
        assert db.integrity_problems() == []
        assert db.highest_position_ever("events") is None
        assert db.read_stamp() == (0, 0, 0)
        with db.transaction():
            db.write_stamp(7, 3)
        assert db.read_stamp()[:2] == (7, 3)
    finally:
        db.close()


def test_no_contract_test_touches_the_database_directly():
    """The installable suite runs unchanged on any backend: no SQL of its own, no patched
    connection (it observes the database only through the storage seam's counters)."""
    import re

    bad = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\s+\w|PRAGMA|\.db\.\w+\s*=|setattr\([^)]*\.db\b")
    offenders = [f"{p.name}:{n}" for p in (ROOT / "eventstore" / "testing").rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert offenders == []


def _string_literals(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal of a module but its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_the_store_s_sql_outside_the_backends_is_portable_but_for_three_named_forms():
    """Upserts, conditional counts and greatest-of-two are written in SQL SQLite (3.24+) and
    PostgreSQL both run; the only SQLite forms left (table definitions, INDEXED BY hints and
    one GLOB pattern) are the ones a backend maps (docs/architecture.md)."""
    bad = re.compile(r"INSERT\s+OR\s+(IGNORE|REPLACE)|\b(max|min)\(\w+(\.\w+)?,\s*\w|\bsum\(\w+\s*(=|<>|!=|<|>)", re.I)
    offenders = [f"{p.relative_to(ROOT).as_posix()}:{n}" for d in ("eventstore", "projections")
                 for p in (ROOT / d).rglob("*.py") if "storage" not in p.parts
                 for n, text in _string_literals(p) if bad.search(text)]
    assert offenders == []
