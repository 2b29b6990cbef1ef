"""Process handle grants: which scopes (a session, an agent frame, the host) may address a
process, and what happens to them when a session's process state is deleted.

Grants are keyed by (scope id, process id) and carry a descriptor. Each change is an
event on the process's stream; none of them is a *process event* (the sequence-numbered
log that `events_after` reads), so moving addressability never shows up there.
"""

from __future__ import annotations

from typing import Any, Iterable

import attrs

from projections import processes as proj

from ..errors import InvalidArgument
from .base import ProcessFacadeBase, check_process_id
from .errors import HandleNotGranted, UnknownProcess
from .events import (
    ProcessHandleGranted,
    ProcessHandleRevoked,
    ProcessHandleTransferred,
    ProcessSessionDetached,
)
from .model import GrantEntry, HandleDescriptor, HandleGrant, HostScope, SessionScope
from .rules import check_scope


@attrs.frozen
class SessionProcessStateReport:
    """What `delete_session_process_state` did.

    `orphaned`: running processes that lost their last grant; `preserved`: running
    processes that lost this session's grants but are still granted elsewhere.
    Wake acks are kept: consumed wakes must stay consumed for the remaining holders.
    """

    session_id: str
    revoked_grants: int
    orphaned: tuple[str, ...]
    preserved: tuple[str, ...]
    cleared_wake_targets: tuple[str, ...]


def _check_descriptor(descriptor: Any) -> HandleDescriptor:
    if not isinstance(descriptor, HandleDescriptor):
        raise InvalidArgument(f"descriptor must be a HandleDescriptor, got {type(descriptor).__name__}")
    for name in ("kind", "label"):
        value = getattr(descriptor, name)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"descriptor.{name} must be None or a string, got {value!r}")
    return descriptor


class ProcessGrantCommands(ProcessFacadeBase):
    """The grant part of `store.processes`."""

    def grant(self, scope: SessionScope | HostScope, process_id: str,
              descriptor: HandleDescriptor = HandleDescriptor()) -> HandleGrant:
        """Grant the process handle to a scope (an upsert of the descriptor; identical: no-op)."""
        check_scope(scope, "scope")
        check_process_id(process_id)
        _check_descriptor(descriptor)
        with self._write("grant"):
            now = self.ctx.now_ms()
            self._require(process_id)
            existing = proj.get_grant(self._db, scope.scope_id, process_id)
            if existing is not None and existing.descriptor == descriptor:
                return existing
            self._append(process_id, [ProcessHandleGranted(process_id, scope, descriptor, now)], now)
            granted = proj.get_grant(self._db, scope.scope_id, process_id)
            assert granted is not None  # the append above applied it, in this transaction
            return granted

    def revoke(self, scope: SessionScope | HostScope, process_id: str) -> bool:
        """Revoke a scope's grant. False (nothing written) when there was none."""
        check_scope(scope, "scope")
        check_process_id(process_id)
        with self._write("revoke"):
            now = self.ctx.now_ms()
            if proj.get_grant(self._db, scope.scope_id, process_id) is None:
                return False
            self._append(process_id, [ProcessHandleRevoked(process_id, scope.scope_id, now)], now)
            return True

    def has_grant(self, scope: SessionScope | HostScope, process_id: str) -> bool:
        """True when the scope holds a grant on a (known) process."""
        check_scope(scope, "scope")
        check_process_id(process_id)
        return proj.get_grant(self._db, scope.scope_id, process_id) is not None

    def grants(self, scope: SessionScope | HostScope, *, live_only: bool = False) -> list[GrantEntry]:
        """The grants a scope holds, with their records, ordered by process id.

        `live_only=True` keeps running processes only (the "live" listing).
        """
        check_scope(scope, "scope")
        if not isinstance(live_only, bool):
            raise InvalidArgument(f"live_only must be True or False, got {live_only!r}")
        with self._read():
            return [GrantEntry(g, r) for g, r in proj.grants_for_scope(self._db, scope.scope_id, live_only)]

    def grants_for_process(self, process_id: str) -> list[HandleGrant]:
        """Every grant on a process, ordered by session id then scope id. UnknownProcess if unregistered."""
        with self._read():
            self._require(process_id)
            return proj.grants_for_process(self._db, process_id)

    def transfer(self, from_scope: SessionScope | HostScope, to_scope: SessionScope | HostScope,
                 process_ids: Iterable[str]) -> int:
        """Move grants from one scope to another, keeping descriptors; all or nothing.

        HandleNotGranted (and nothing moved) when any process is not granted to
        `from_scope`. Returns how many grants moved. Appends no process events.
        """
        check_scope(from_scope, "from_scope")
        check_scope(to_scope, "to_scope")
        if isinstance(process_ids, str) or not hasattr(process_ids, "__iter__"):
            raise InvalidArgument(f"process_ids must be a list of ids, got {type(process_ids).__name__}")
        ids = list(dict.fromkeys(check_process_id(p) for p in process_ids))
        with self._write("transfer"):
            now = self.ctx.now_ms()
            for pid in ids:  # every check before the first append
                if proj.get_grant(self._db, from_scope.scope_id, pid) is None:
                    raise HandleNotGranted(pid, from_scope.scope_id)
            if from_scope.scope_id == to_scope.scope_id:
                return 0
            for pid in ids:
                self._append(pid, [ProcessHandleTransferred(pid, from_scope.scope_id, to_scope, now)], now)
            return len(ids)

    def delete_session_process_state(self, session_id: str) -> SessionProcessStateReport:
        """Forget a session in the registry: revoke every grant it (or any of its frames)
        holds, clear default wake targets pointing at it, keep wake acks.

        One `process.session_detached` event per affected process, all in one transaction.
        """
        if not isinstance(session_id, str) or not session_id:
            raise InvalidArgument(f"session_id must be a non-empty string, got {session_id!r}")
        with self._write("delete_session_process_state"):
            now = self.ctx.now_ms()
            db = self._db
            revoked: dict[str, list[str]] = {}
            for g in proj.grants_for_session(db, session_id):
                revoked.setdefault(g.process_id, []).append(g.scope_id)
            targeted = set(proj.wake_targeted(db, session_id))
            orphaned: list[str] = []
            preserved: list[str] = []
            for pid in sorted(revoked):
                record = proj.get_record(db, pid)
                if record is None:
                    raise UnknownProcess(pid)  # a grant without a record: the projection is damaged
                if not record.is_terminal:
                    remaining = proj.count_grants(db, pid) - len(revoked[pid])
                    (orphaned if remaining == 0 else preserved).append(pid)
            for pid in sorted(set(revoked) | targeted):
                self._append(pid, [ProcessSessionDetached(pid, session_id, tuple(revoked.get(pid, ())),
                                                          pid in targeted, now)], now)
            return SessionProcessStateReport(session_id, sum(len(v) for v in revoked.values()), tuple(orphaned),
                                             tuple(preserved), tuple(sorted(targeted)))
