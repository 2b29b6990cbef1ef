"""Argument checks shared by the domain facades: each raises InvalidArgument naming the argument."""

from __future__ import annotations

from typing import Any

from .errors import InvalidArgument


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
    return value
