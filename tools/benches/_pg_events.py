"""The event class the PostgreSQL benchmark appends through the store."""

from __future__ import annotations

import eventstore


@eventstore.event("bench.pg_note")
class BenchNote:
    """A note of about 120 bytes, the size of the raw variants' payload."""

    text: str
