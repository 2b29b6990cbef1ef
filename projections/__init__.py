"""Projections: pure appliers from events to table rows, and the engine that runs them.

A projection is declared with `Projection(...)`, its appliers attached with
`@projection.on(EventClass)`, and registered in `REGISTRY`. The engine applies it
inline, rebuilds it, replays it into memory for time travel, and verifies it.
"""

from .base import ALL_EVENTS, REGISTRY, Projection, ProjectionRegistry
from .engine import (
    Dispatcher,
    ProjectionDifference,
    ProjectionEngine,
    ProjectionStatus,
    ProjectionVerifyReport,
    RebuildReport,
)
from . import catalogue  # noqa: F401  (registers the stream catalogue)

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
