"""Assertions shared by the test modules."""

from __future__ import annotations

import eventstore
from projections.engine import _compare


def assert_consistent(store: eventstore.Store, check_chain: bool = True) -> None:
    """The invariant every property test checks after each step:

    the chain verifies; every live projection equals an offline rebuild; and a time-travel
    replay to the current position equals the live tables too.
    """
    if check_chain:
        report = store.verify()
        assert report.ok, str(report)
    check = store.verify_projections()
    assert check.ok, str(check)
    with store.at(store.last_position()) as view:
        for p in store.engine.projections:
            if p.name in store.engine.stale:
                continue
            for table in p.tables:
                diff = _compare(store.db, view.db, table)
                assert diff is None, f"time travel differs in {table}: live {diff[0]!r}, replay {diff[1]!r}"
