"""Awaited external events: HMAC-signed tokens, first resolution wins, session revocation.

A runtime that must wait for the outside world (a human approval, a webhook) asks for a
token, hands it out, and waits::

    token = store.effects.await_token("run-7", "approval", session_id="s1")
    ...                                   # the approver's service calls, later:
    store.effects.resolve(token, {"approved": True})
    store.effects.await_event("run-7", "approval", session_id="s1")   # -> {"approved": True}

The token is `aw1.<scope>.<key>.<mac>` (base64url parts), where the MAC is an
HMAC-SHA256 of the scope and key under a random 32-byte secret kept per store.

Where the secret lives: in the core's `store_meta` table, written once (INSERT OR
IGNORE under the write lock), and never in the event log or in a projection. The log
is tamper-evident and meant to be exported and shared for debugging: a secret inside it
would let anyone holding a copy forge resolutions, and purging it would not unshare
copies already made. A projection is rebuilt from the log alone, so it cannot hold
anything the log does not. The trade-off: the secret is not covered by the hash chain,
and a store restored from the log alone gets a new secret, so tokens handed out before
the restore no longer verify (each await records `key_id`, a fingerprint of its secret,
so that error says so plainly). Await and resolution *events* carry no secret and no
token, so replaying a journaled run needs neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidArgument
from .await_events import AwaitCancelled, AwaitRegistered, AwaitResolved, SessionAwaitsRevoked, session_stream
from .envelopes import digest, json_value
from .events import effect_stream
from .leases import EffectError, EffectReplayMissing, check_matches, check_scope_key, check_text

if TYPE_CHECKING:
    from ..store import StoreContext
    from .facade import EffectOptions

SECRET_KEY = "effects.await_secret.v1"
TOKEN_PREFIX = "aw1"


class AwaitTokenInvalid(EffectError):
    """A resolution token is malformed, forged, or names no await of this store."""


class AwaitSessionRevoked(EffectError):
    """The await's session was revoked: it can neither wait nor be resolved."""


class AwaitTimeout(EffectError):
    """await_event gave up waiting for a resolution (the await stays open)."""


@attrs.frozen
class AwaitResolution:
    """The answer to `resolve`: `won` is False when an earlier resolution had already won,
    and `payload` is always the winning payload."""

    scope: str
    replay_key: str
    won: bool
    payload: Any
    resolved_at_ms: int


@attrs.frozen
class RevocationReport:
    """What `revoke_session` did: the awaits it cancelled (none when already revoked)."""

    session_id: str
    cancelled: tuple[tuple[str, str], ...]
    already_revoked: bool


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, scope: str, replay_key: str) -> bytes:
    return hmac.new(secret, b"await\x00" + scope.encode() + b"\x00" + replay_key.encode(), hashlib.sha256).digest()


def key_id_of(secret: bytes) -> str:
    """The public fingerprint of a secret (recorded in await events instead of the secret)."""
    return hashlib.sha256(b"await-key-id\x00" + secret).hexdigest()[:16]


class AwaitsMixin:
    """The await half of the Effects facade (needs ctx, _projection(), _strict(), _sleep)."""

    ctx: StoreContext
    _secret_cache: bytes | None = None

    if TYPE_CHECKING:  # provided by Effects, the one class that mixes this in
        options: EffectOptions

        def _projection(self) -> Any: ...

        def _strict(self) -> bool: ...

        def _sleep(self, seconds: float) -> None: ...

    def _secret(self) -> bytes:
        """The store's await secret, created on first use (see the module docstring)."""
        if self._secret_cache is None:
            # store_meta lives in the file, not in the projections: a time-travel view
            # (whose db is an in-memory replay) reads it through its store.
            db = getattr(self.ctx, "store", self.ctx).db
            secret = db.scalar("SELECT value FROM store_meta WHERE key=?", (SECRET_KEY,))
            if secret is None:
                self.ctx.require_writable("effects: creating the await secret")
                with self.ctx.transaction():  # write lock: concurrent first users agree on one secret
                    db.execute("INSERT INTO store_meta VALUES (?, ?) ON CONFLICT DO NOTHING", (SECRET_KEY, os.urandom(32)))
                    secret = db.scalar("SELECT value FROM store_meta WHERE key=?", (SECRET_KEY,))
            self._secret_cache = bytes(secret)
        return self._secret_cache

    def _register_await(self, scope: str, replay_key: str, session_id: str | None) -> Any:
        """Open the await if it is not journaled yet; return its entry."""
        check_scope_key(scope, replay_key)
        if session_id is not None:
            check_text(session_id, "session_id", 256)
        envelope = {"session_id": session_id}
        env_hash = digest(envelope)
        p = self._projection()
        entry = p.get_entry(self.ctx.db, scope, replay_key)
        if entry is not None:  # an await's identity never changes once journaled
            check_matches(entry, scope, replay_key, "await", envelope, env_hash)
            return entry
        if self._strict():
            raise EffectReplayMissing(scope, replay_key)
        self.ctx.require_writable("effects.await")
        key_id = key_id_of(self._secret())
        with self.ctx.transaction():
            now = self.ctx.now_ms()
            self.ctx.require_fresh("effects")
            entry = p.get_entry(self.ctx.db, scope, replay_key)
            if entry is None:
                if session_id is not None and p.is_revoked(self.ctx.db, session_id):
                    raise AwaitSessionRevoked(f"session {session_id!r} was revoked: it cannot await "
                                              f"{replay_key!r} in scope {scope!r}", scope, replay_key)
                ev = AwaitRegistered(scope, replay_key, envelope, env_hash, session_id, key_id, now)
                self.ctx.append(effect_stream(scope), [ev], now_ms=now)
                entry = p.get_entry(self.ctx.db, scope, replay_key)
            else:
                check_matches(entry, scope, replay_key, "await", envelope, env_hash)
        return entry

    def await_token(self, scope: str, replay_key: str, *, session_id: str | None = None) -> str:
        """Open the await (idempotent) and return the token that resolves it."""
        self._register_await(scope, replay_key, session_id)
        mac = _mac(self._secret(), scope, replay_key)
        return ".".join((TOKEN_PREFIX, _b64(scope.encode()), _b64(replay_key.encode()), _b64(mac)))

    def await_event(self, scope: str, replay_key: str, *, session_id: str | None = None,
                    timeout_s: float | None = None) -> Any:
        """Wait for the await's resolution and return its payload (immediately on replay).

        Raises AwaitSessionRevoked if it was cancelled, AwaitTimeout after `timeout_s`
        (default: the facade's wait timeout). In strict replay an await the journal never
        opened raises EffectReplayMissing; an open one is waited for as outside it.
        """
        if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                      or not timeout_s >= 0):
            raise InvalidArgument(f"timeout_s must be None or a number of seconds >= 0, got {timeout_s!r}")
        entry = self._register_await(scope, replay_key, session_id)
        limit = self.options.wait_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        delay = 0.005
        while True:
            if entry.status == "completed":
                return entry.outcome
            if entry.status == "cancelled":
                raise AwaitSessionRevoked(f"await {replay_key!r} in scope {scope!r} was cancelled: "
                                          f"{entry.error_message}", scope, replay_key)
            # A time-travel view never changes: waiting there could only time out.
            self.ctx.require_writable(f"effects.await_event: await {replay_key!r} in scope {scope!r} is "
                                      f"unresolved and waiting for it")
            waited = time.monotonic() - started
            if waited >= limit:
                raise AwaitTimeout(f"await {replay_key!r} in scope {scope!r} was not resolved within "
                                   f"{limit:.1f}s", scope, replay_key)
            self._sleep(min(delay, max(limit - waited, 0.0)))
            delay = min(delay * 2, self.options.poll_interval_s)
            entry = self._projection().get_entry(self.ctx.db, scope, replay_key)

    def resolve(self, token: str, payload: Any = None) -> AwaitResolution:
        """Resolve an await with its token. The first resolution wins; later ones return
        won=False and the winning payload. A forged token raises AwaitTokenInvalid."""
        self.ctx.require_writable("effects.resolve")
        scope, replay_key = self._verify(token)
        value = json_value(payload, "$", "payload")
        p = self._projection()
        with self.ctx.transaction():  # decide the race for "first resolution" under the write lock
            now = self.ctx.now_ms()
            self.ctx.require_fresh("effects")
            entry = p.get_entry(self.ctx.db, scope, replay_key)
            if entry is None or entry.kind != "await":
                raise AwaitTokenInvalid(f"token names await {replay_key!r} in scope {scope!r}, which this store "
                                        f"never opened", scope, replay_key)
            if entry.status == "cancelled" or (entry.session_id and p.is_revoked(self.ctx.db, entry.session_id)):
                raise AwaitSessionRevoked(f"await {replay_key!r} in scope {scope!r} belongs to revoked session "
                                          f"{entry.session_id!r}", scope, replay_key)
            if entry.status == "completed":
                return AwaitResolution(scope, replay_key, False, entry.outcome, entry.finished_at_ms)
            self.ctx.append(effect_stream(scope), [AwaitResolved(scope, replay_key, value, now)], now_ms=now)
        stored = p.get_entry(self.ctx.db, scope, replay_key)
        return AwaitResolution(scope, replay_key, True, stored.outcome, now)

    def _verify(self, token: Any) -> tuple[str, str]:
        if not isinstance(token, str) or token.count(".") != 3 or not token.startswith(TOKEN_PREFIX + "."):
            raise AwaitTokenInvalid(f"malformed await token {str(token)[:40]!r}", "?", "?")
        try:
            _p, s, k, m = token.split(".")
            scope, replay_key, mac = _unb64(s).decode(), _unb64(k).decode(), _unb64(m)
        except (ValueError, UnicodeDecodeError):
            raise AwaitTokenInvalid(f"malformed await token {token[:40]!r}", "?", "?") from None
        secret = self._secret()
        if not hmac.compare_digest(mac, _mac(secret, scope, replay_key)):
            entry = self._projection().get_entry(self.ctx.db, scope, replay_key)
            hint = ""
            if entry is not None and entry.key_id and entry.key_id != key_id_of(secret):
                hint = (f"; the await was opened under secret {entry.key_id}, this store's secret is "
                        f"{key_id_of(secret)} (was the store restored from an export?)")
            raise AwaitTokenInvalid(f"token for await {replay_key!r} in scope {scope!r} is not signed by this "
                                    f"store's secret{hint}", scope, replay_key)
        return scope, replay_key

    def revoke_session(self, session_id: str, reason: str = "session revoked") -> RevocationReport:
        """Revoke a session: cancel its unresolved awaits, refuse its future awaits and
        resolutions. Idempotent (a second call reports already_revoked)."""
        self.ctx.require_writable("effects.revoke_session")
        check_text(session_id, "session_id", 256)
        if not isinstance(reason, str):
            raise InvalidArgument(f"reason must be a string, got {type(reason).__name__}")
        p = self._projection()
        with self.ctx.transaction():  # the revocation and every cancellation commit together
            now = self.ctx.now_ms()
            self.ctx.require_fresh("effects")
            if p.is_revoked(self.ctx.db, session_id):
                return RevocationReport(session_id, (), True)
            pending = [tuple(r) for r in p.waiting_awaits_of_session(self.ctx.db, session_id)]
            for scope, key in pending:
                self.ctx.append(effect_stream(scope), [AwaitCancelled(scope, key, reason, now)], now_ms=now)
            self.ctx.append(session_stream(session_id),
                            [SessionAwaitsRevoked(session_id, reason, tuple(pending), now)], now_ms=now)
        return RevocationReport(session_id, tuple(pending), False)
