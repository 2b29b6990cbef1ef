"""Leases across hosts on PostgreSQL: two runtime hosts (different host ids) share one store,
each with its own clock, and the clocks differ by a known skew.

A holder on another host is opaque: no liveness proof from this host can free its lease,
only expiry can, and expiry is judged by the claimant's clock against the expiry the
holder's clock wrote. docs/postgres.md ("Leases across hosts") says what the TTL must allow.
These tests use the server at EVENTSTORE_TEST_POSTGRES and fail, never skip, when it is down.
"""

from __future__ import annotations

from typing import Iterator

import pytest

import eventstore
from eventstore.leases import Acquired, Busy, LeaseOwner, SessionExecutionLeaseExpired
from eventstore.leases.owners import LocalProcessLiveness
from tests import postgres_support as pg

SKEW_MS = 5_000
"""Host B's clock runs this far ahead of host A's."""
TTL_MS = 30_000
DEAD_PID = 4_194_000  # above the kernel's pid_max default: no such process


def _owner(host: str, name: str) -> LeaseOwner:
    return LeaseOwner(name, f"{name}-1", LocalProcessLiveness(host, "same-boot", DEAD_PID, 12345))


@pytest.fixture
def hosts() -> Iterator[tuple[eventstore.Store, eventstore.ManualClock, eventstore.Store, eventstore.ManualClock]]:
    """Host A's and host B's handles on one fresh schema, B's clock SKEW_MS ahead of A's."""
    pg.connect().close()
    schema = pg.new_schema_name()
    clock_a = eventstore.ManualClock(1_700_000_000_000)
    clock_b = eventstore.ManualClock(1_700_000_000_000 + SKEW_MS)
    a = eventstore.open(pg.url_for(schema), clock=clock_a)
    b = eventstore.open(pg.url_for(schema), clock=clock_b)
    # Both hosts' /proc say the holder's pid is gone: only the host ids keep B from using it.
    a.leases.read_process_start = lambda pid: None
    b.leases.read_process_start = lambda pid: None
    try:
        yield a, clock_a, b, clock_b
    finally:
        a.close()
        b.close()
        pg.drop_schemas([schema])


def _advance(ms: int, *clocks: eventstore.ManualClock) -> None:
    for c in clocks:
        c.advance(ms)


def test_a_holder_on_another_host_is_reclaimed_only_after_expiry_by_the_claimants_clock(hosts):
    """B cannot reclaim A's lease by a liveness proof, however dead A's pid looks; it gets
    it once its own clock passes the expiry A's clock wrote, which with B ahead by SKEW_MS
    is SKEW_MS earlier than A's clock says."""
    a, clock_a, b, clock_b = hosts
    a.sessions.create("s1")
    got = a.leases.claim("s1", _owner("host-a", "runtime-a"), TTL_MS)
    assert isinstance(got, Acquired)
    held = got.lease
    assert held.expires_at_ms == clock_a() + TTL_MS
    claimant = _owner("host-b", "runtime-b")
    assert isinstance(b.leases.reclaim("s1", claimant, held, TTL_MS), Busy)
    assert isinstance(b.leases.claim("s1", claimant, TTL_MS), Busy)
    # Just before the expiry by B's clock: still A's, and A (by its own clock) has SKEW_MS more.
    _advance(TTL_MS - SKEW_MS - 1, clock_a, clock_b)
    assert clock_b() == held.expires_at_ms - 1
    assert isinstance(b.leases.reclaim("s1", claimant, held, TTL_MS), Busy)
    _advance(1, clock_a, clock_b)
    taken = b.leases.claim("s1", claimant, TTL_MS)
    assert isinstance(taken, Acquired)
    # A's clock says its lease has SKEW_MS left, yet it is gone: its renewal is refused.
    assert held.expires_at_ms - clock_a() == SKEW_MS
    with pytest.raises(SessionExecutionLeaseExpired):
        a.leases.renew(held.fence, TTL_MS)
    assert b.leases.get("s1").holder.owner == claimant


def test_a_holder_renewing_with_margin_for_the_skew_keeps_its_lease(hosts):
    """A renews every TTL - 2 x SKEW ms by its clock: B, SKEW_MS ahead, never sees it expire."""
    a, clock_a, b, clock_b = hosts
    a.sessions.create("s1")
    got = a.leases.claim("s1", _owner("host-a", "runtime-a"), TTL_MS)
    assert isinstance(got, Acquired)
    fence = got.lease.fence
    claimant = _owner("host-b", "runtime-b")
    for _ in range(5):
        _advance(TTL_MS - 2 * SKEW_MS, clock_a, clock_b)
        assert isinstance(b.leases.claim("s1", claimant, TTL_MS), Busy)
        a.leases.renew(fence, TTL_MS)
    assert b.leases.get("s1").holder.owner.owner_id == "runtime-a"


def test_the_same_host_id_makes_the_liveness_proof_count(hosts):
    """The contrast that shows the host id is what stops B: a claimant on A's host (same
    host id and boot) proves the holder dead and reclaims at once."""
    a, _clock_a, b, _clock_b = hosts
    a.sessions.create("s1")
    got = a.leases.claim("s1", _owner("host-a", "runtime-a"), TTL_MS)
    assert isinstance(got, Acquired)
    assert isinstance(b.leases.reclaim("s1", _owner("host-a", "runtime-a2"), got.lease, TTL_MS), Acquired)
