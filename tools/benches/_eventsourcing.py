"""The eventsourcing library's side of the core benchmark (its `bench` extra).

An aggregate per stream recording the same tool-call fields as the store's
`ToolCalled`, saved one event per `Application.save`, and its notification log read
back in sections of 1,000. Imported by `core`; without eventsourcing installed,
`AVAILABLE` is False and core's table says "not installed".
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

try:
    from eventsourcing.application import Application as _ESApplication
    from eventsourcing.domain import Aggregate as _ESAggregate
    from eventsourcing.domain import event as _es_event
except ImportError:  # the `bench` extra is not installed: the table says so
    _ESApplication = None

AVAILABLE = _ESApplication is not None
"""True when the eventsourcing library is installed."""

if _ESApplication is not None:

    class AgentSession(_ESAggregate):  # type: ignore[misc, valid-type]
        """An eventsourcing aggregate recording the same tool-call events."""

        @_es_event("ToolCalled")
        def tool_called(self, session_id: str, turn: int, tool: str, arguments: dict, result: str,
                        model: str, input_tokens: int, output_tokens: int) -> None:
            """Record one tool call (the event carries the same fields as ours)."""

    class AgentApp(_ESApplication):  # type: ignore[misc, valid-type]
        """An eventsourcing application on its SQLite recorder, reading pages of 1,000."""

        log_section_size = 1000


@contextlib.contextmanager
def es_synchronous(mode: str | None) -> Iterator[None]:
    """eventsourcing has no setting for PRAGMA synchronous: wrap its connection factory."""
    if mode is None:
        yield
        return
    from eventsourcing.sqlite import SQLiteConnectionPool

    original = SQLiteConnectionPool._create_connection

    def create(self: Any) -> Any:
        conn = original(self)
        conn._sqlite_conn.execute(f"PRAGMA synchronous={mode}")
        return conn

    SQLiteConnectionPool._create_connection = create  # type: ignore[method-assign]
    try:
        yield
    finally:
        SQLiteConnectionPool._create_connection = original  # type: ignore[method-assign]


class ESWriter:
    """One eventsourcing application saving one event per call to 16 aggregates in turn."""

    def __init__(self, path: str, plains: list[dict]) -> None:
        self.app = AgentApp(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path})
        self.aggregates = [AgentSession() for _ in range(16)]
        self.app.save(*self.aggregates)
        self.plains = plains
        self.turn = 0

    def synchronous(self) -> str:
        """The PRAGMA synchronous its connections actually run with."""
        with self.app.recorder.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA synchronous")
            value = c.fetchone()[0]
        return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(value, str(value))

    def save_one_per_call(self, n: int) -> float:
        """n saves of one event each; creating the events on the aggregates is not timed."""
        save = self.app.save
        spent = 0.0
        done = 0
        while done < n:
            block = self.aggregates[: min(16, n - done)]
            for agg in block:
                agg.tool_called(**self.plains[self.turn % len(self.plains)])
                self.turn += 1
            started = time.perf_counter()
            for agg in block:
                save(agg)
            spent += time.perf_counter() - started
            done += len(block)
        return spent

    def fill(self, events: int, per_save: int = 100) -> None:
        """Write `events` events quickly (many per save) for the read benchmark."""
        written = 0
        while written < events:
            agg = self.aggregates[written // per_save % 16]
            for _ in range(min(per_save, events - written)):
                agg.tool_called(**self.plains[written % len(self.plains)])
                written += 1
            self.app.save(agg)

    def read(self) -> tuple[int, float]:
        """Read the notification log in pages of 1,000, decoding each to a domain event."""
        log = self.app.notification_log
        to_domain = self.app.mapper.to_domain_event
        started = time.perf_counter()
        start, n = 1, 0
        while True:
            notes = log.select(start, 1000)
            for note in notes:
                to_domain(note)
            n += len(notes)
            if len(notes) < 1000:
                return n, time.perf_counter() - started
            start = notes[-1].id + 1

    def close(self) -> None:
        """Close the application's connections."""
        self.app.close()
