"""The domain: event classes (`*_events` modules) and facades with pure deciders.

Event modules import only the log core, so that projections can import them. Facade
modules may import anything; `load()` imports them all, once, when a store opens.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load() -> None:
    """Import every domain module (registering events, projections and facades)."""
    global _loaded
    if _loaded:
        return
    import projections  # noqa: F401  (registers every projection)

    from .. import demo  # noqa: F401  (the demo's event classes: demo files must stay readable)

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True
