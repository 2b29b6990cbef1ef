"""Process registry behaviours a runtime moving from lash relies on: prune with any cutoff,
the whole first-start owner and the caller's times, and the caused-by prune filter."""

from __future__ import annotations

import pytest

from eventstore.errors import InvalidArgument
from eventstore.domain.processes import (
    ExternalOwner,
    ProcessStatus,
    PruneFilter,
    Success,
    UnknownProcess,
)
from tests.contract.processes import registration
from tests.contract.triggers import register
from tests.helpers import assert_consistent


class ProcessParityContract:
    """Prune cutoffs, write-once start and abandon records, caused-by pruning."""

    # --- prune: any cutoff --------------------------------------------------------------------

    def test_prune_accepts_a_cutoff_later_than_now(self, backend):
        """A cutoff in the future prunes every terminal row (even one finished this instant),
        spares running rows, respects filter and watermark, and is idempotent."""
        store, procs = backend.store, backend.store.processes
        for pid in ("done-now", "running", "done-later", "ext-done"):
            procs.register(registration(pid))
        procs.complete("done-now", Success(1), ExternalOwner("o"))
        procs.complete("ext-done", Success(3), ExternalOwner("o"))
        watermark = procs.get("ext-done").change_seq
        procs.complete("done-later", Success(2), ExternalOwner("o"))
        only = PruneFilter(statuses=(ProcessStatus.COMPLETED,), owner_scope_id="host")
        first = procs.prune(2 ** 62, filter=only, up_to_change_seq=watermark)
        assert first.pruned_processes == ("done-now", "ext-done")  # done-later is past the watermark
        assert procs.prune(2 ** 62).pruned_processes == ("done-later",)
        assert procs.prune(2 ** 62).pruned_processes == ()  # idempotent
        assert procs.get("running").status is ProcessStatus.RUNNING
        for pid in ("done-now", "ext-done", "done-later"):
            assert procs.get(pid) is None
            with pytest.raises(UnknownProcess):
                procs.require(pid)
        assert store.verify().ok
        assert_consistent(store)

    def test_prune_with_a_future_cutoff_also_drops_trigger_receipts(self, backend):
        """The prune's retention of trigger receipts follows the cutoff without refusing it."""
        store, procs = backend.store, backend.store.processes
        register(store, "op-old")
        procs.register(registration("p"))
        procs.complete("p", Success(1), ExternalOwner("o"))
        backend.clock.advance(10)
        report = procs.prune(backend.clock() + 1_000_000)
        assert report.pruned_processes == ("p",) and not report.dry_run
        assert store.triggers.receipt("op-old") is None
        assert_consistent(store)

    def test_prune_errors_speak_of_processes(self, backend):
        """A bad prune argument names processes.prune and the field, not the trigger retention."""
        procs = backend.store.processes
        for bad in ({"before_ms": -1}, {"before_ms": 1, "up_to_change_seq": -1}, {"before_ms": 1, "filter": "x"}):
            with pytest.raises(InvalidArgument) as err:
                procs.prune(**bad)
            assert "processes.prune" in str(err.value) and "trigger" not in str(err.value).lower()
