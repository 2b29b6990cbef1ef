"""SQLite-dialect SQL as PostgreSQL SQL: what the PostgreSQL backend runs instead of each
statement the log, the engine and the projections write (docs/postgres.md, "How the SQL
reaches PostgreSQL")."""

from __future__ import annotations

import re
from typing import Callable, Sequence, cast

from ..errors import StoreError

__all__ = ["PLAIN_INSERT", "bind", "translate"]

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?(\d*)|%")
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE", re.I)
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+([\w.]+)", re.I)
_GLOB = re.compile(r"\bGLOB\s+'([^']*)'", re.I)


def _ddl(stmt: str) -> str:
    """One SQLite CREATE TABLE in PostgreSQL's types: 64-bit integers, bytea, byte-order text."""
    stmt = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", "BIGINT PRIMARY KEY", stmt, flags=re.I)
    stmt = re.sub(r"\bINTEGER\b", "BIGINT", stmt, flags=re.I)
    stmt = re.sub(r"\bBLOB\b", "BYTEA", stmt, flags=re.I)
    # SQLite compares text by its bytes; "C" gives PostgreSQL the same order (prefix range
    # scans and the projections' ORDER BY agree across backends).
    stmt = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', stmt, flags=re.I)
    stmt = re.sub(r"\bvalue\s+ANY\b", "value BYTEA", stmt, flags=re.I)
    return re.sub(r"\)\s*WITHOUT\s+ROWID", ")", stmt, flags=re.I)


def translate(sql: str, primary_key: Callable[[str], list[str]] | None = None,
              columns: Callable[[str], list[str]] | None = None) -> tuple[str, list[int] | None]:
    """SQLite-dialect SQL as PostgreSQL SQL, and the order of its parameters.

    Returns (sql, order): `order[i]` is the index in the caller's parameters of the i-th
    `%s` (None when they are in order). `primary_key` and `columns` describe a table, for
    `INSERT OR REPLACE` (an upsert on the table's primary key).
    """
    statements = []
    for stmt in _split(sql):
        if _CREATE_TABLE.match(stmt):
            stmt = _ddl(stmt)
        stmt = re.sub(r"\s+INDEXED\s+BY\s+\w+", "", stmt, flags=re.I)
        stmt = _GLOB.sub(lambda m: "LIKE '" + m.group(1).replace("*", "%") + "'", stmt)
        m = _INSERT_OR.match(stmt)
        if m is not None:
            table = m.group(2)
            stmt = "INSERT INTO " + table + stmt[m.end():]
            if m.group(1).upper() == "IGNORE":
                stmt += " ON CONFLICT DO NOTHING"
            else:
                if primary_key is None or columns is None:
                    raise StoreError(f"INSERT OR REPLACE INTO {table}: needs the table's description")
                key = primary_key(table)
                rest = [c for c in columns(table) if c not in key]
                updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
                stmt += f" ON CONFLICT ({', '.join(key)}) " + (f"DO UPDATE SET {updates}" if rest else "DO NOTHING")
        stmt = _scalar_min_max(stmt)
        stmt = _BOOL_SUM.sub(r"sum(CAST(\1 AS INTEGER))", stmt)
        if columns is not None:
            stmt = _qualify_upsert(stmt, columns)
        statements.append(stmt)
    text = ";\n".join(statements)
    order: list[int] = []
    numbered = False

    def sub(m: re.Match[str]) -> str:
        nonlocal numbered
        token = m.group(0)
        if token == "%":
            return "%%"
        if token.startswith("'"):
            return token.replace("%", "%%")
        if m.group(1):
            numbered = True
            order.append(int(m.group(1)) - 1)
        else:
            order.append(len(order))
        return "%s"

    escaped = _PLACEHOLDER.sub(sub, text)
    if not order:  # no parameters: psycopg sends the text as it is (several statements allowed)
        return text, None
    return escaped, (order if numbered else None)


PLAIN_INSERT = re.compile(r"^(INSERT INTO \w+ VALUES)\s*(\((?:%s\s*,\s*)*%s\))( ON CONFLICT DO NOTHING)?$")
_BOOL_SUM = re.compile(r"\bsum\((\w+\s*(?:=|<>|!=|<|>|<=|>=)\s*(?:'[^']*'|\w+))\)", re.I)
_MIN_MAX = re.compile(r"\b(max|min)\(", re.I)
_UPSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\b.*?\bON\s+CONFLICT\b.*?\bDO\s+UPDATE\s+SET\s+", re.I | re.S)


def _closing(text: str, start: int) -> tuple[int, bool]:
    """(index of the parenthesis closing the one before `start`, whether a top-level comma
    occurs inside), skipping string literals."""
    depth, comma, i = 0, False, start
    while i < len(text):
        ch = text[i]
        if ch == "'":
            i = text.index("'", i + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i, comma
            depth -= 1
        elif ch == "," and depth == 0:
            comma = True
        i += 1
    return len(text), comma


def _scalar_min_max(stmt: str) -> str:
    """SQLite's scalar max(a, b, ...) and min(...) are PostgreSQL's greatest() and least()
    (one argument: the aggregate, left alone)."""
    out, pos = [], 0
    for m in _MIN_MAX.finditer(stmt):
        _end, comma = _closing(stmt, m.end())
        if comma:
            out.append(stmt[pos:m.start()])
            out.append("greatest(" if m.group(1).lower() == "max" else "least(")
            pos = m.end()
    out.append(stmt[pos:])
    return "".join(out)


def _qualify_upsert(stmt: str, columns: Callable[[str], list[str]]) -> str:
    """In `ON CONFLICT ... DO UPDATE SET c = expr`, a bare column in `expr` means the existing
    row on SQLite and is ambiguous on PostgreSQL: qualify it with the table name."""
    m = _UPSERT.match(stmt)
    if m is None:
        return stmt
    table = m.group(1)
    names = set(columns(table))
    head, tail = stmt[:m.end()], stmt[m.end():]
    word = re.compile(r"'(?:[^']|'')*'|(?<![.\w])([A-Za-z_]\w*)(?![\w(])")
    assignments = re.split(r",(?![^()]*\))", tail)
    fixed = []
    for a in assignments:
        lhs, eq, rhs = a.partition("=")
        rhs = word.sub(lambda w: f"{table}.{w.group(1)}" if w.group(1) in names else w.group(0), rhs)
        fixed.append(lhs + eq + rhs)
    return head + ",".join(fixed)


def _split(sql: str) -> list[str]:
    """Statements of a script (our own DDL: no ';' inside literals)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


_PIECES: dict[str, list[str]] = {}


def _literal(v: object) -> str | None:
    """`v` as an SQL literal for the common types, or None (then psycopg quotes it).

    Why it is safe: the connection runs with standard_conforming_strings on (set at
    connect), so inside '...' only a quote is special, and it is doubled; bytes go as hex."""
    cls = v.__class__
    if cls is int:
        return str(v)
    if cls is str:
        return "'" + cast(str, v).replace("'", "''") + "'"
    if cls is bytes:
        return "'\\x" + cast(bytes, v).hex() + "'::bytea"
    if v is None:
        return "NULL"
    if cls is bool:
        return "1" if v else "0"
    return None


def bind(text: str, params: Sequence[object], fallback: Callable[[str, Sequence[object]], str]) -> str:
    """A translated statement (`%s` placeholders, `%%` for a percent sign) with its parameters
    bound as literals, for statements sent together in one message; `fallback` (psycopg's
    ClientCursor.mogrify) binds a statement with any other type of parameter."""
    pieces = _PIECES.get(text)
    if pieces is None:
        if len(_PIECES) > 2000:
            _PIECES.clear()
        pieces = _PIECES[text] = [p.replace("%%", "%") for p in text.split("%s")]
    if len(pieces) != len(params) + 1:
        return fallback(text, params)
    out = [pieces[0]]
    for value, piece in zip(params, pieces[1:]):
        lit = _literal(value)
        if lit is None:
            return fallback(text, params)
        out.append(lit)
        out.append(piece)
    return "".join(out)
