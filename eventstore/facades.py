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
    if isinstance(factory, type):
        # Why here: every facade method takes ids that reach SQLite, hashing or msgpack, all
        # of which encode text as UTF-8; one wrapper names the argument a lone surrogate is in.
        from .checks import guard_public_methods

        guard_public_methods(factory)
    FACADES[name] = factory
