"""The registry of domain facades reachable as attributes of a Store (`store.leases`, ...).

Kept in its own module, free of imports, so that domain modules can register their
facade without importing the store (which would make an import cycle).
"""

from __future__ import annotations

from typing import Any, Callable

FACADES: dict[str, Callable[[Any], Any]] = {}


def register_facade(name: str, factory: Callable[[Any], Any]) -> None:
    """Make `factory(store_or_view)` reachable as `store.<name>` (built once per store).

    The factory receives the Store, or a read-only StoreView for time travel; a facade
    must refuse commands when `ctx.readonly` is True.
    """
    FACADES[name] = factory
