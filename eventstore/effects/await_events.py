"""Awaited external events: journaled in the scope's `effect:<scope>` stream.

    effect.await_registered   the runtime waits for an external event under (scope, key)
    effect.await_resolved     the first resolution (its payload); later ones lose
    effect.await_cancelled    the await's session was revoked before it was resolved

and, in the stream `effect-session:<session id>`,

    effect.session_revoked    the session may no longer await or be resolved

Tokens that external parties use to resolve an await are HMACs under a per-store
secret. Neither the secret nor any token is ever written to the log: the events carry
only `key_id`, a fingerprint naming which secret signed the await (see docs/api.md).
"""

from __future__ import annotations

from typing import Any

from ..events import event


def session_stream(session_id: str) -> str:
    """The stream recording the revocation of one session's awaits."""
    return f"effect-session:{session_id}"


@event("effect.await_registered")
class AwaitRegistered:
    """An await was opened under (scope, key), optionally bound to a session."""

    scope: str
    replay_key: str
    envelope: Any
    envelope_hash: str
    session_id: str | None
    key_id: str
    """Fingerprint (sha256 prefix) of the secret that signs this await's token."""
    at_ms: int


@event("effect.await_resolved")
class AwaitResolved:
    """The first resolution of an await; its payload is what every caller receives."""

    scope: str
    replay_key: str
    payload: Any
    at_ms: int


@event("effect.await_cancelled")
class AwaitCancelled:
    """An unresolved await was cancelled because its session was revoked."""

    scope: str
    replay_key: str
    reason: str
    at_ms: int


@event("effect.session_revoked")
class SessionAwaitsRevoked:
    """A session was revoked: its pending awaits were cancelled and it may not await again."""

    session_id: str
    reason: str
    cancelled: tuple[tuple[str, str], ...]
    """(scope, replay key) of every await this revocation cancelled."""
    at_ms: int
