"""Positions on PostgreSQL under concurrent writers from many processes: gap-free, in commit
order, never reused, and a follower reading by position never misses or reorders an event.

Eight writer processes open the same (new) schema at once, so they also race to create it,
and append one- and three-event commands with exact expected versions; a follower in this
process reads by position while they write. Writers and follower run with
synchronous="full": the writers' flush after the lock, the follower's durable head.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import eventstore
from tests import postgres_support as pg
from tests import strategies as gen
from tests.test_log import ROOT, TESTS_DIR

WRITERS = 8
COMMANDS = 200

_WRITER = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from tests import strategies as gen
import time
url, w, n, burst = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
with gen.open_store(url, synchronous="full") as store:
    version = 0
    for i in range(n):
        if burst and i % burst == 0:
            time.sleep(0.002 * ((w * 7 + i) % 11))  # writers take turns: some commands find they write alone
        # Every seventh command appends three events: they must stay contiguous.
        events = [gen.CounterChanged(str(w), version + k) for k in range(3 if i % 7 == 6 else 1)]
        r = store.append(f"w:{w}", events, expected_version=version)
        version = r.stream_version
print(version, store.db.speculations, store.db.misfires)
"""


def _expected_events_per_writer() -> int:
    return sum(3 if i % 7 == 6 else 1 for i in range(COMMANDS))


@pytest.mark.parametrize("burst", [0, 10])
def test_eight_writer_processes_and_a_follower_see_gap_free_commit_ordered_positions(burst):
    """The follower gets every position exactly once, 1..N in order, while eight processes
    append; each writer's events keep their order and every multi-event command is contiguous.
    With bursts (a pause every ten commands), writers find themselves alone at times and
    speculate (one message: lock, check, rows, COMMIT), and the check fails when another
    process wrote after all: nothing of such an attempt may show, and the command is redone."""
    pg.connect().close()
    schema = pg.new_schema_name()
    url = pg.url_for(schema)
    per_writer = _expected_events_per_writer()
    total = WRITERS * per_writer
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, TESTS_DIR, ROOT, url, str(w), str(COMMANDS), str(burst)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(WRITERS)]
    try:
        with gen.open_store(url, synchronous="full") as follower:
            stop = threading.Event()
            watchdog = threading.Timer(240, stop.set)  # bounded: never hang the suite
            watchdog.start()
            seen: list[eventstore.RecordedEvent] = []
            try:
                for ev in follower.follow(1, stop=stop, poll_interval=0.005, idle_timeout=120):
                    seen.append(ev)
                    if len(seen) == total:
                        break
            finally:
                watchdog.cancel()
            outputs = [p.communicate(timeout=240) for p in procs]
            assert [p.returncode for p in procs] == [0] * WRITERS, [o[1][-2000:] for o in outputs]
            assert [int(o[0].split()[0]) for o in outputs] == [per_writer] * WRITERS
            assert [e.position for e in seen] == list(range(1, total + 1))
            for w in range(WRITERS):
                mine = [e for e in seen if e.stream == f"w:{w}"]
                assert [e.data.delta for e in mine] == list(range(per_writer))
                assert [e.version for e in mine] == list(range(1, per_writer + 1))
            # A three-event command occupies three consecutive positions, marked as one command.
            by_delta = {(e.stream, e.data.delta): e.position for e in seen}
            for w in range(WRITERS):
                version = 0
                for i in range(COMMANDS):
                    size = 3 if i % 7 == 6 else 1
                    if size == 3:
                        first = by_delta[(f"w:{w}", version)]
                        assert [by_delta[(f"w:{w}", version + k)] for k in range(3)] == [first, first + 1, first + 2]
                        assert follower.command_span(first + 1) == (first, first + 2)
                    version += size
            assert follower.last_position() == total
            assert follower.verify().ok
            assert follower.stream_info("w:0").event_count == per_writer
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        pg.drop_schemas([schema])
