"""The store's SQL as PostgreSQL SQL: what the PostgreSQL backend runs instead of each
statement the log, the engine and the projections write (docs/postgres.md, "How the SQL
reaches PostgreSQL")."""

from __future__ import annotations

import re
from typing import Callable, Sequence, cast

import psycopg
import psycopg.errors

from ..errors import StoreBusy, StoreError

__all__ = ["GUARD_SQL", "PLAIN_INSERT", "HeadMoved", "bind", "translate", "translate_error"]

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?(\d*)|%")
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE", re.I)
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


def translate(sql: str) -> tuple[str, list[int] | None]:
    """The store's SQL as PostgreSQL SQL, and the order of its parameters.

    Returns (sql, order): `order[i]` is the index in the caller's parameters of the i-th
    `%s` (None when they are in order). Besides placeholders, only three SQLite forms are
    mapped: table definitions (`_ddl`), the planner hint `INDEXED BY` (dropped) and `GLOB`
    with a literal pattern (LIKE); everything else is written portably by its callers.
    """
    statements = []
    for stmt in _split(sql):
        if _CREATE_TABLE.match(stmt):
            stmt = _ddl(stmt)
        stmt = re.sub(r"\s+INDEXED\s+BY\s+\w+", "", stmt, flags=re.I)
        stmt = _GLOB.sub(lambda m: "LIKE '" + m.group(1).replace("*", "%") + "'", stmt)
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


# --- the speculative check and the errors of the backend ---------------------------------

MOVED = "lash-eventstore: another writer committed since the last write of this handle"
"""The text of the error the speculative guard raises (see PgTransactions.foreign_epoch)."""
GUARD_SQL = ("SELECT c.last_xact, txid_current(), h.position, h.hash, "
             "CASE WHEN c.last_xact = ANY(ARRAY[{known}]::bigint[]) THEN 0 "
             f"ELSE ('{MOVED} (clock ' || c.last_xact || ')')::int END FROM log_clock c "
             "LEFT JOIN LATERAL (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) h ON true")
"""CLOCK_SQL that fails, under the lock, unless the clock still holds a value this handle
knows (nobody else wrote): the check of a speculative write transaction. The failing branch
depends on the row, so the planner cannot fold it into an error up front."""
GUARD_HEAD = GUARD_SQL[:60]
"""How a pending statement is recognised as the check."""


class HeadMoved(StoreBusy):
    """A speculative write transaction found that another writer had committed: nothing of
    it was kept. `PgTransactions.write` runs the command again, reading the head under the lock."""


def translate_error(exc: BaseException, what: str) -> StoreError:
    """A psycopg error as the store's typed error."""
    from ..errors import IntegrityError

    if isinstance(exc, psycopg.errors.InvalidTextRepresentation) and MOVED in str(exc):
        return HeadMoved(f"{what}: {MOVED}")
    if isinstance(exc, psycopg.errors.IntegrityError):
        return IntegrityError(f"{what}: {exc}".strip())
    if isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected,
                        psycopg.errors.QueryCanceled, psycopg.errors.SerializationFailure)):
        return StoreBusy(f"{what}: the store's write lock stayed taken past the busy timeout ({exc})")
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StoreError(f"{what}: a write inside a read transaction (open a write transaction)")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(f"{what}: the PostgreSQL connection failed ({exc})".strip())
    return StoreError(f"{what}: {type(exc).__name__}: {exc}".strip())
