"""Reading projection rows defensively: a row that cannot be turned back into its value is a
damaged file, reported as the typed CorruptStore, never as a stray ValueError.

A projection's read functions trust rows their own appliers wrote. When the file has been
damaged (a bad disk, a copy cut short, a hand edit), a column may hold bytes that no
longer decode (msgpack, JSON, an enum value, invalid UTF-8) or a NULL where the code
expects a value. Decorate each row-to-value function with `@row_reader("table")`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from eventstore import codec
from eventstore.errors import CorruptStore, StoreError

F = TypeVar("F", bound=Callable[..., Any])


def row_reader(table: str) -> Callable[[F], F]:
    """Turn any decoding failure inside the decorated function into CorruptStore naming `table`."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def read(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except (StoreError, UnicodeEncodeError):
                raise  # UnicodeEncodeError: an argument (a lone surrogate), never a stored row
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, codec.ShapeError) as exc:
                raise CorruptStore(
                    f"projection table {table}: a stored row cannot be read ({type(exc).__name__}: {exc}); "
                    f"the file is damaged: run `eventstore verify --projections`, then rebuild"
                ) from None

        return read  # type: ignore[return-value]

    return deco


def text(value: Any, column: str) -> str:
    """A TEXT column that must hold a string (a NULL or a number there means damage)."""
    if not isinstance(value, str):
        raise TypeError(f"column {column} holds {type(value).__name__}, not text")
    return value
