"""Projections: pure appliers from events to table rows, and the engine that runs them.

A projection is declared with `Projection(...)`, its appliers attached with
`@projection.on(EventClass)`, and registered in `REGISTRY`. The engine applies it
inline, rebuilds it, replays it into memory for time travel, and verifies it.
"""

from projections.base import ALL_EVENTS, REGISTRY, Projection, ProjectionRegistry
from projections.engine import (
    Dispatcher,
    ProjectionDifference,
    ProjectionEngine,
    ProjectionStatus,
    ProjectionVerifyReport,
    RebuildReport,
)

def _load_all() -> None:
    # Every module of this package declares and registers one projection; importing
    # them here means a store always keeps every projection the code knows.
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in ("base", "engine") and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_all()

__all__ = [
    "ALL_EVENTS",
    "REGISTRY",
    "Projection",
    "ProjectionRegistry",
    "Dispatcher",
    "ProjectionDifference",
    "ProjectionEngine",
    "ProjectionStatus",
    "ProjectionVerifyReport",
    "RebuildReport",
]
