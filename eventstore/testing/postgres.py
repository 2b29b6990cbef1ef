"""The PostgreSQL backend of the installable contract suite (needs the `postgres` extra).

    import pytest
    from eventstore.testing.postgres import PostgresBackend
    from eventstore.testing.contract.queue import QueueContract

    @pytest.fixture
    def backend():
        b = PostgresBackend("postgresql://postgres@127.0.0.1:5432/test", eventstore.ManualClock(0))
        yield b
        b.close()

    class TestQueueOnPostgres(QueueContract):
        pass

Each backend object makes a fresh schema on the given server (the user must be allowed to
create schemas), opens every handle on it, and drops it on close(). A server that cannot be
reached is an AssertionError naming it: the suite fails, it never skips.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

import eventstore
from eventstore.testing import Backend, BackendFactory

__all__ = ["PostgresBackend", "connect", "drop_schemas", "postgres_factory", "url_for"]


def connect(server: str) -> psycopg.Connection[Any]:
    """An autocommit connection to `server`; an AssertionError naming it when it is down."""
    try:
        return psycopg.connect(server, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise AssertionError(f"the PostgreSQL tests need a server at {server} "
                             f"(EVENTSTORE_TEST_POSTGRES names another one): {exc}") from None


def url_for(server: str, schema: str) -> str:
    """The store URL of one schema of `server`."""
    return f"{server}{'&' if '?' in server else '?'}schema={schema}"


def drop_schemas(server: str, names: list[str]) -> None:
    """Drop the given schemas of `server` and everything in them."""
    if names:
        with connect(server) as conn:
            for name in names:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


class PostgresBackend:
    """Handles on one fresh schema of a PostgreSQL server, for the contract suite."""

    def __init__(self, server: str, clock: eventstore.ManualClock) -> None:
        connect(server).close()
        self.server = server
        self.clock = clock
        self.schema = f"t_{uuid.uuid4().hex[:16]}"
        self.url = url_for(server, self.schema)
        self._handles: list[eventstore.Store] = []
        self.store = self.open()

    def open(self) -> eventstore.Store:
        """Another handle (another connection) on the same schema."""
        handle = eventstore.open(self.url, clock=self.clock, synchronous="normal")
        self._handles.append(handle)
        return handle

    def reopen(self) -> eventstore.Store:
        """Close the main handle and open it again."""
        self.store.close()
        self.store = self.open()
        return self.store

    def close(self) -> None:
        """Close every handle and drop the schema."""
        for h in self._handles:
            h.close()
        drop_schemas(self.server, [self.schema])


def postgres_factory(server: str) -> BackendFactory:
    """A factory of PostgreSQL backends on `server`, each on a fresh schema (for the state
    machines of `eventstore.testing.machines`); the server is checked on every call."""

    def make(clock: eventstore.ManualClock) -> Backend:
        return PostgresBackend(server, clock)

    return make
