"""Errors of the session viewer (subclasses of StoreError: the CLI prints them as one line)."""

from __future__ import annotations

from ..errors import InvalidArgument, StoreError


class UnknownSession(StoreError):
    """The session asked for is not in the store."""

    def __init__(self, session_id: str, path: str) -> None:
        self.session_id = session_id
        self.path = path
        super().__init__(f"{path}: no session {session_id!r}")


class ViewerArgumentError(InvalidArgument):
    """A viewer option is out of range (a port, a snapshot bound)."""


__all__ = ["UnknownSession", "ViewerArgumentError"]
