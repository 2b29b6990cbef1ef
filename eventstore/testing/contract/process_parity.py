"""Process registry behaviours a runtime moving from lash relies on: prune with any cutoff,
the whole first-start owner and the caller's times, and the caused-by prune filter."""

from __future__ import annotations

import pytest

from eventstore.errors import InvalidArgument
from eventstore.leases import LeaseOwner, LocalProcessLiveness
from eventstore.processes import (
    ExternalOwner,
    HostScope,
    ProcessStatus,
    Provenance,
    PruneFilter,
    Success,
    UnknownProcess,
)
from eventstore.testing.contract.processes import registration
from eventstore.testing.contract.triggers import register
from eventstore.testing.helpers import assert_consistent


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
        assert store.triggers.receipt("host", "op-old") is None
        assert_consistent(store)

    def test_prune_errors_speak_of_processes(self, backend):
        """A bad prune argument names processes.prune and the field, not the trigger retention."""
        procs = backend.store.processes
        for bad in ({"before_ms": -1}, {"before_ms": 1, "up_to_change_seq": -1}, {"before_ms": 1, "filter": "x"}):
            with pytest.raises(InvalidArgument) as err:
                procs.prune(**bad)
            assert "processes.prune" in str(err.value) and "trigger" not in str(err.value).lower()

    # --- first start and abandon request: the caller's facts, written once ---------------------

    def test_first_start_keeps_the_whole_owner_and_the_callers_time_once(self, backend):
        """record_first_started stores owner id, incarnation and liveness and the given
        started_at_ms; a later call changes nothing. A bare owner id still works."""
        store, procs, clock = backend.store, backend.store.processes, backend.clock
        procs.register(registration("p"))
        starter = LeaseOwner("worker-a", "inc-7", LocalProcessLiveness("host", "boot", 4242, 99))
        first = procs.record_first_started("p", starter, clock() - 5_000).first_started
        assert (first.owner, first.owner_id, first.started_at_ms) == (starter, "worker-a", clock() - 5_000)
        position = store.last_position()
        clock.advance(10)
        again = procs.record_first_started("p", LeaseOwner("worker-b", "inc-1"), clock()).first_started
        assert again == first and store.last_position() == position
        assert procs.get("p").updated_at_ms == clock() - 10  # the store's time of the change, not the caller's
        procs.register(registration("q"))
        bare = procs.record_first_started("q", "worker-c").first_started
        assert (bare.owner_id, bare.owner, bare.started_at_ms) == ("worker-c", None, clock())
        assert backend.reopen().processes.get("p").first_started == first
        with pytest.raises(InvalidArgument, match="started_at_ms"):
            backend.store.processes.record_first_started("q", starter, -1)
        assert_consistent(backend.store)

    def test_the_abandon_request_keeps_the_callers_time_once(self, backend):
        """request_abandon stores requested_at_ms as given; the first request wins."""
        procs, clock = backend.store.processes, backend.clock
        procs.register(registration("p"))
        first = procs.request_abandon("p", "ops", "stuck", requested_at_ms=clock() - 60_000).abandon_request
        assert (first.requested_by, first.reason, first.requested_at_ms) == ("ops", "stuck", clock() - 60_000)
        clock.advance(5)
        assert procs.request_abandon("p", "other", requested_at_ms=clock()).abandon_request == first
        procs.register(registration("q"))
        assert procs.request_abandon("q", "ops").abandon_request.requested_at_ms == clock()
        with pytest.raises(InvalidArgument, match="requested_at_ms"):
            procs.request_abandon("q", "ops", requested_at_ms="yesterday")

    # --- prune by cause ------------------------------------------------------------------------

    def test_prune_filter_takes_only_processes_caused_by_a_subscription(self, backend):
        """PruneFilter(caused_by=...) prunes only processes whose provenance names that cause."""
        procs = backend.store.processes
        for pid, cause in (("by-ci", "sub-ci"), ("by-cron", "sub-cron"), ("by-hand", None)):
            procs.register(registration(pid, provenance=Provenance(HostScope(), caused_by=cause)))
            procs.complete(pid, Success(pid), ExternalOwner("o"))
        cutoff = backend.clock.advance(1)
        assert procs.prune(cutoff, filter=PruneFilter(caused_by="sub-ci")).pruned_processes == ("by-ci",)
        assert procs.prune(cutoff, filter=PruneFilter(caused_by="sub-ci")).pruned_processes == ()
        assert procs.prune(cutoff).pruned_processes == ("by-cron", "by-hand")
        with pytest.raises(InvalidArgument, match="caused_by"):
            procs.prune(cutoff, filter=PruneFilter(caused_by=""))
        assert_consistent(backend.store)
