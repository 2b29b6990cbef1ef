"""The debugging tools on any backend: they read the log through its API, so a backend that
passes the log contract gets why, as-of, cached time travel and stream export for free."""

from __future__ import annotations

import io

import eventstore
from eventstore.debug import export_store, view_at, why
from eventstore.debug.inspection import as_of
from eventstore.queue import AgentFrameTask, QueuedWorkDraft

S1, S2 = "session:s1", "session:s2"


def _history(store: eventstore.Store, clock: eventstore.ManualClock) -> None:
    """Two sessions with queued work, a few milliseconds apart, then s2 deleted and purged."""
    for sid in ("s1", "s2"):
        store.sessions.create(sid)
        clock.advance(5)
        for n in range(3):
            store.queue.enqueue(QueuedWorkDraft(sid, (AgentFrameTask("f", f"{sid}-{n}"),)))
            clock.advance(1)
    store.sessions.delete("s2")
    store.sessions.purge("s2")


class DebugToolsContract:
    """What the debugging tools read, through the log's API, on the backend under test."""

    def test_the_log_answers_hash_count_and_purges_at_a_position(self, backend):
        store = backend.store
        _history(store, backend.clock)
        head = store.anchor()
        assert store.log.hash_at(head.position) == bytes.fromhex(head.hash)
        assert store.log.hash_at(head.position + 1) is None
        s1 = [ev.position for ev in store.read_stream(S1)]
        assert store.log.count([S1], head.position) == len(s1)
        assert store.log.count([S1], s1[1]) == 2
        assert store.log.count([S1, S2], 0) == 0
        purged = [ev.position for ev in store.read_stream(S2) if ev.data is None]
        assert purged and store.log.purged_through(head.position) == len(purged)
        assert store.log.purged_through(purged[0] - 1) == 0

    def test_why_and_as_of_read_the_event_its_command_and_its_neighbours(self, backend):
        store = backend.store
        _history(store, backend.clock)
        target = list(store.read_stream(S1))[2]
        report = why(store, S1, 3, around=1)
        assert (report.event.position, report.event.version) == (target.position, 3)
        assert report.event.hash == store.log.hash_at(target.position).hex()
        assert [e.version for e in report.before] == [2] and [e.version for e in report.after] == [4]
        assert report.command_span[0] <= target.position <= report.command_span[1]
        assert as_of(store, target.position) == target.recorded_at_ms
        assert as_of(store, 0) is None

    def test_cached_time_travel_of_one_stream_equals_the_store_s_own_replay(self, backend, tmp_path):
        store = backend.store
        _history(store, backend.clock)
        middle = list(store.read_stream(S1))[2].position
        for _ in range(2):  # the second view starts from the snapshots the first one saved
            with view_at(store, middle, [S1], cache_dir=str(tmp_path), every=1) as cached, \
                    store.at(middle, [S1]) as replayed:
                assert cached.position == replayed.position
                assert [b.batch_id for b in cached.queue.list("s1")] == [b.batch_id for b in replayed.queue.list("s1")]
            assert any(tmp_path.iterdir()), "no snapshot was saved"

    def test_a_stream_export_counts_and_writes_the_stream_s_events(self, backend):
        store = backend.store
        _history(store, backend.clock)
        out = io.StringIO()
        report = export_store(store, out, stream=S1)
        assert report.events == len(list(store.read_stream(S1))) == 4
        assert report.anchor == str(store.anchor())
