"""Argument checks shared by the domain facades: each raises InvalidArgument naming the argument."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable, TypeVar

import attrs

from .errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])


def check_int(value: Any, what: str, low: int = 0, high: int | None = None) -> int:
    """An integer (not a bool) in [low, high]; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f" and <= {high}" if high is not None else ""
        raise InvalidArgument(f"{what} must be an integer >= {low}{bound}, got {value!r}")
    return value


def check_text(value: Any, what: str) -> str:
    """A non-empty string; returns it."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    return check_utf8(value, what)


def check_utf8(value: str, what: str) -> str:
    """A string that UTF-8 can encode (no lone surrogate such as "\\ud800"); returns it."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidArgument(_not_utf8(what, value, exc.start)) from None
    return value


def _not_utf8(what: str, value: str, index: int) -> str:
    return (f"{what} is not valid text: it holds a lone surrogate {value[index]!r} at index {index} "
            f"(UTF-8 cannot encode it), got {value[:40]!r}")


def find_unencodable(value: Any, what: str, depth: int = 0) -> str | None:
    """The message naming the first string inside `value` (attrs fields, dicts, lists,
    tuples) that UTF-8 cannot encode, with its path from `what`; None when there is none."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return _not_utf8(what, value, exc.start)
        return None
    if depth > 8:
        return None
    items: Iterable[tuple[str, Any]] = ()
    if attrs.has(type(value)):
        items = ((f"{what}.{f.name}", getattr(value, f.name, None)) for f in attrs.fields(type(value)))
    elif isinstance(value, dict):
        items = (entry for k, v in value.items()
                 for entry in ((f"{what} key {k!r}", k), (f"{what}[{k!r}]", v)))
    elif isinstance(value, (list, tuple)):
        items = ((f"{what}[{i}]", v) for i, v in enumerate(value))
    for path, item in items:
        found = find_unencodable(item, path, depth + 1)
        if found is not None:
            return found
    return None


def names_unencodable_text(fn: F) -> F:
    """Wrap `fn` so that a UnicodeEncodeError raised inside it (SQLite, hashing, msgpack all
    encode text as UTF-8) becomes InvalidArgument naming the argument that holds the string.

    The check runs only when the error is raised, so a valid call pays nothing for it.
    """
    signature = inspect.signature(fn)

    def explain(args: tuple[Any, ...], kw: dict[str, Any], exc: UnicodeEncodeError) -> InvalidArgument | None:
        try:
            bound = signature.bind(*args, **kw)
        except TypeError:
            return None
        for name, value in list(bound.arguments.items())[1:]:  # [0] is self
            found = find_unencodable(value, name)
            if found is not None:
                return InvalidArgument(found)
        return None

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kw: Any) -> Any:
            try:
                return (yield from fn(*args, **kw))
            except UnicodeEncodeError as exc:
                err = explain(args, kw, exc)
                if err is None:
                    raise
                raise err from None

        gen.__dict__["guards_unencodable_text"] = True
        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except UnicodeEncodeError as exc:
            err = explain(args, kw, exc)
            if err is None:
                raise
            raise err from None

    call.__dict__["guards_unencodable_text"] = True
    return call  # type: ignore[return-value]


def guard_public_methods(cls: type) -> type:
    """Apply `names_unencodable_text` to every public plain method of `cls` (own or inherited)."""
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_") and not getattr(member, "guards_unencodable_text", False):
            setattr(cls, name, names_unencodable_text(member))
    return cls
