"""Lease owners, their liveness, and lease timings: shared by session, process and effect leases.

An owner is (owner_id, incarnation_id, liveness). Two owners are the *same* only when
owner_id and incarnation_id both match: a restarted process (new incarnation) is a
different owner, even with the same owner_id.

A holder is *definitely dead* only when the holder and the claimant are both local
processes on the same host and boot, and the holder's /proc/<pid>/stat is missing or
shows another start time. Anything else (another host, another boot, an opaque owner,
an unreadable /proc) is "not proven", and a lease is never taken from a holder that is
not proven dead. The proof is read by the command side only, at decision time.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any, Callable, Generic, TypeVar

import attrs

from ..errors import InvalidArgument
from ..checks import check_text


@attrs.frozen
class OpaqueLiveness:
    """An owner that can never be proven dead (a remote worker, a test, a service)."""


@attrs.frozen
class LocalProcessLiveness:
    """An owner that is a process on this host: proven dead when its pid is gone or reused."""

    host_id: str
    boot_id: str
    pid: int
    process_start: int
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot)."""


Liveness = OpaqueLiveness | LocalProcessLiveness


@attrs.frozen
class LeaseOwner:
    """Who holds or claims a lease."""

    owner_id: str
    incarnation_id: str
    liveness: OpaqueLiveness | LocalProcessLiveness = OpaqueLiveness()

    def same_owner(self, other: "LeaseOwner") -> bool:
        """Same owner means same owner_id and same incarnation_id."""
        return self.owner_id == other.owner_id and self.incarnation_id == other.incarnation_id


MAX_OWNER_ID_BYTES = 256
"""Longest owner_id, incarnation_id, host_id or boot_id in UTF-8 bytes (as for process ids):
each is written into the log with every claim, so an unbounded one bloats it."""


def check_owner(owner: object, what: str = "owner") -> LeaseOwner:
    """Validate a LeaseOwner argument, naming the field that is wrong."""
    if isinstance(owner, LeaseOwner) and owner.liveness.__class__ is OpaqueLiveness:
        # The common owner, checked without building a field name per id: what _check_id
        # accepts first (non-empty ASCII of at most MAX_OWNER_ID_BYTES characters).
        a, b = owner.owner_id, owner.incarnation_id
        if (a.__class__ is str and 0 < len(a) <= MAX_OWNER_ID_BYTES and a.isascii()
                and b.__class__ is str and 0 < len(b) <= MAX_OWNER_ID_BYTES and b.isascii()):
            return owner
    if not isinstance(owner, LeaseOwner):
        raise InvalidArgument(f"{what} must be a LeaseOwner, got {type(owner).__name__}")
    for name in ("owner_id", "incarnation_id"):
        _check_id(getattr(owner, name), f"{what}.{name}")
    if not isinstance(owner.liveness, (OpaqueLiveness, LocalProcessLiveness)):
        raise InvalidArgument(f"{what}.liveness must be OpaqueLiveness or LocalProcessLiveness")
    if isinstance(owner.liveness, LocalProcessLiveness):
        for name in ("host_id", "boot_id"):
            _check_id(getattr(owner.liveness, name), f"{what}.liveness.{name}")
    return owner


def _check_id(value: object, what: str) -> None:
    if type(value) is str and 0 < len(value) <= MAX_OWNER_ID_BYTES and value.isascii():
        return  # non-empty ASCII: encodable, one byte a character (the common id, no encode)
    size = len(check_text(value, what).encode())
    if size > MAX_OWNER_ID_BYTES:
        raise InvalidArgument(f"{what} must be at most {MAX_OWNER_ID_BYTES} UTF-8 bytes, got {size:,} bytes")
# --- the outcome of a claim, shared by session and process leases ------------------------------

LeaseT = TypeVar("LeaseT")


@attrs.frozen
class Acquired(Generic[LeaseT]):
    """A claim or reclaim succeeded: the caller holds `lease` (session or process lease)."""

    lease: LeaseT
    reentry: bool = False
    """True when the caller already held it (same incarnation): only the expiry moved."""
    reclaimed_from: "LeaseOwner | None" = None
    """For a reclaim of a live lease: the holder that was proven dead."""

    @property
    def acquired(self) -> bool:
        """Always True (False on Busy): lets callers test either outcome the same way."""
        return True


@attrs.frozen
class Busy(Generic[LeaseT]):
    """A claim or reclaim lost: someone else holds a live lease, here it is."""

    holder: LeaseT

    @property
    def acquired(self) -> bool:
        """Always False (True on Acquired)."""
        return False


@attrs.frozen
class ObservedHolder:
    """What a reclaim needs to know of the holder it saw: the owner and the fencing token.

    Any lease value (`SessionExecutionLease`, `ProcessLease`, a session `LeaseFence`) has
    both and may be passed instead.
    """

    owner: "LeaseOwner"
    fencing_token: int


def check_observed(observed: Any, what: str = "observed") -> ObservedHolder:
    """The (owner, fencing token) of an observed holder; InvalidArgument naming the field."""
    owner = getattr(observed, "owner", None)
    fence = getattr(observed, "fencing_token", None)
    if owner is None or fence is None:
        raise InvalidArgument(f"{what} must be the holder you saw: an ObservedHolder(owner, fencing_token) or a "
                              f"lease, got {type(observed).__name__}")
    check_owner(owner, f"{what}.owner")
    if isinstance(fence, bool) or not isinstance(fence, int) or fence < 1:
        raise InvalidArgument(f"{what}.fencing_token must be an integer >= 1, got {fence!r}")
    return ObservedHolder(owner, fence)


def holder_matches(holder: Any, observed: ObservedHolder) -> bool:
    """Is the live `holder` still the one observed? Same owner (id and incarnation) and the
    same fencing token: the rule both lease families use before a reclaim takes over."""
    return bool(holder.owner.same_owner(observed.owner) and holder.fencing_token == observed.fencing_token)


def read_process_start(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when the process does not exist.

    Raises OSError for any other read problem (which callers treat as 'not proven').
    """
    try:
        with open(f"{proc}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or
    # parentheses, so split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19])  # fields 3.. are rest[0..]; field 22 is rest[19]


ProcessStartReader = Callable[[int], "int | None"]


def definitely_dead(holder: LeaseOwner, claimant: LeaseOwner,
                    read_start: ProcessStartReader = read_process_start) -> bool:
    """True only when the holder is provably dead, as the module docstring describes."""
    h, c = holder.liveness, claimant.liveness
    if not isinstance(h, LocalProcessLiveness) or not isinstance(c, LocalProcessLiveness):
        return False
    if h.host_id != c.host_id or h.boot_id != c.boot_id:
        return False
    try:
        start = read_start(h.pid)
    except (OSError, ValueError, IndexError):
        return False
    return start is None or start != h.process_start


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown-boot"


def _host_id() -> str:
    # host_id must be unique per PID namespace; the hostname plus the namespace inode
    # tells apart containers sharing a hostname.
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return f"{socket.gethostname()}:{ns}"


def this_process(owner_id: str, incarnation_id: str | None = None) -> LeaseOwner:
    """A LeaseOwner for the calling process, with local-process liveness."""
    pid = os.getpid()
    start = read_process_start(pid)
    liveness = LocalProcessLiveness(_host_id(), _boot_id(), pid, start if start is not None else 0)
    return LeaseOwner(owner_id, incarnation_id or uuid.uuid4().hex, liveness)


@attrs.frozen
class LeaseTimings:
    """How long a lease lasts and how often its holder renews it.

    The TTL must be at least three renew intervals (a holder may miss two renewals
    before losing the lease), and both must be at least 1 ms.
    """

    ttl_ms: int = 30_000
    renew_every_ms: int = 10_000

    def __attrs_post_init__(self) -> None:
        for name in ("ttl_ms", "renew_every_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"LeaseTimings.{name} must be an integer >= 1 ms, got {value!r}")
        if self.ttl_ms < 3 * self.renew_every_ms:
            raise InvalidArgument(
                f"LeaseTimings.ttl_ms ({self.ttl_ms}) must be at least 3x renew_every_ms "
                f"({self.renew_every_ms})"
            )
