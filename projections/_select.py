"""Read queries with optional filters: the WHERE, ORDER BY and LIMIT every list query builds.

A list query takes a few optional filters (a scope, a status, ...); each one asked for
adds its condition, AND-ed with the others::

    sql, params = select_where(f"SELECT {_COLS} FROM effects_entries",
                               ("scope=?", scope), ("status=?", status),
                               order_by="scope, started_at_ms, replay_key", limit=limit)
    rows = db.query(sql, params)
"""

from __future__ import annotations

from typing import Any


def select_where(select: str, *filters: tuple[str, Any] | str | None, order_by: str = "",
                 limit: int | None = None) -> tuple[str, list[Any]]:
    """`select` with the filters that apply, then ORDER BY and LIMIT; and the parameters.

    A filter is `(condition, value)`: the condition with one `?` for the value, left out
    when the value is None (the filter was not asked for); a bare string is a condition
    without parameters, and None stands for one not asked for.
    """
    where, params = [], []
    for f in filters:
        if isinstance(f, str):
            where.append(f)
        elif f is not None and f[1] is not None:
            where.append(f[0])
            params.append(f[1])
    sql = select
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order_by:
        sql += " ORDER BY " + order_by
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params
