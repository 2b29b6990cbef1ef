"""What a projection is: a name, a version, the DDL of its tables, and appliers.

An applier is a pure function ``(db, event) -> None`` that turns one recorded event
into row changes with plain SQL on unqualified table names. It must not read the clock,
the filesystem or anything but `db` and `event`: the same applier serves inline
updates, rebuilds, time travel and verification, and they must all agree.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import attrs

from eventstore.errors import UnknownProjection
from eventstore.events import REGISTRY as EVENT_REGISTRY

Applier = Callable[[Any, Any], None]
ALL_EVENTS = "*"


def replace_row(table: str, columns: str, key: str, rows: str) -> str:
    """The statement that writes whole rows of `table` (`rows`: a VALUES list or a SELECT
    with a WHERE clause), each replacing the row with the same `key`.

    SQLite's `INSERT OR REPLACE`, written as the upsert SQLite (3.24+) and PostgreSQL both
    run; equivalent only for a table whose one unique key is `key`. `columns` names every
    column in table order. Build it once, at import: appliers run it per event."""
    names = [c.strip() for c in columns.split(",")]
    keys = [k.strip() for k in key.split(",")]
    sets = ", ".join(f"{c} = excluded.{c}" for c in names if c not in keys)
    return f"INSERT INTO {table} ({', '.join(names)}) {rows} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"


@attrs.define(eq=False)
class Projection:
    """A named, versioned set of tables kept up to date from the log."""

    name: str
    version: int
    tables: tuple[str, ...]
    ddl: tuple[str, ...]
    skip_purged: bool = True
    """When True, appliers never see events whose payload was purged (data is None)."""
    needs_data: bool = True
    """False when the ALL_EVENTS/batch appliers use only headers (position, stream,
    version, type, time): then rebuilds need not decode events of types no applier
    names, and a store with event types this code does not know still rebuilds."""
    handlers: dict[str, Applier] = attrs.field(factory=dict)
    batch: Callable[[Any, list[Any]], None] | None = None
    """Optional applier that takes a whole list of events at once (every type). Used
    instead of per-event appliers when a projection can aggregate, like the catalogue."""

    def __attrs_post_init__(self) -> None:
        for stmt in self.ddl:
            if "IF NOT EXISTS" not in stmt.upper():
                raise ValueError(f"projection {self.name}: DDL must use IF NOT EXISTS: {stmt[:60]}")

    def on(self, *event_types: type | str) -> Callable[[Applier], Applier]:
        """Decorator: register the function as this projection's applier for the given
        event classes (or type names, or ALL_EVENTS)."""

        def deco(fn: Applier) -> Applier:
            for et in event_types:
                name = et if isinstance(et, str) else EVENT_REGISTRY.for_class(et).name
                if name in self.handlers:
                    raise ValueError(f"projection {self.name}: two appliers for {name}")
                self.handlers[name] = fn
            return fn

        return deco

    def on_batch(self, fn: Callable[[Any, list[Any]], None]) -> Callable[[Any, list[Any]], None]:
        """Decorator: register `fn(db, events)` as this projection's batch applier."""
        self.batch = fn
        return fn

    def handles(self) -> set[str]:
        """The event type names this projection applies."""
        return set(self.handlers)


class ProjectionRegistry:
    """The projections a store keeps; domain modules register theirs on import."""

    def __init__(self) -> None:
        self._items: dict[str, Projection] = {}

    def register(self, projection: Projection) -> Projection:
        """Add a projection (replacing one of the same name, for reloaded modules)."""
        self._items[projection.name] = projection
        return projection

    def get(self, name: str) -> Projection:
        """The projection called `name`; UnknownProjection if there is none."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownProjection(f"no projection named {name!r} (known: {known})") from None

    def all(self) -> list[Projection]:
        """All projections in registration order."""
        return list(self._items.values())

    def select(self, names: Iterable[str] | None) -> list[Projection]:
        """The named projections (all when names is None)."""
        if names is None:
            return self.all()
        return [self.get(n) for n in names]


REGISTRY = ProjectionRegistry()
"""The default projection registry."""
