"""What the PostgreSQL tests share: the server to use, fresh schemas, and the mapping that runs
tests written for SQLite store files against PostgreSQL schemas.

The server is the one at EVENTSTORE_TEST_POSTGRES (default: the local server,
postgresql://postgres@127.0.0.1:5432/test). A test that cannot reach it FAILS: these tests
are never skipped (.ci/run starts the local server first).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any, Iterator, Sequence

import psycopg

import eventstore
from eventstore.storage.postgres import translate
from eventstore.testing.postgres import PostgresBackend

SERVER = os.environ.get("EVENTSTORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def connect() -> psycopg.Connection[Any]:
    """An autocommit connection to the test server; a clear failure when it is down."""
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise AssertionError(
            f"the PostgreSQL tests need a server at {SERVER} (set EVENTSTORE_TEST_POSTGRES to use "
            f"another one; .ci/run starts the local one): {exc}") from None


def url_for(schema: str) -> str:
    """The store URL of one schema of the test server."""
    sep = "&" if "?" in SERVER else "?"
    return f"{SERVER}{sep}schema={schema}"


def new_schema_name() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:16]}"


def scratch_schema() -> Iterator[str]:
    """A schema name for one test, dropped afterwards; fails at once without the server.
    Bind it as a fixture: `schema = pytest.fixture(pg.scratch_schema, name="schema")`."""
    connect().close()
    name = new_schema_name()
    yield name
    drop_schemas([name])


def drop_schemas(names: Sequence[str]) -> None:
    """Drop the given schemas (and everything in them)."""
    if not names:
        return
    with connect() as conn:
        for name in names:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


class SchemaMap:
    """Maps the paths SQLite tests use to PostgreSQL store URLs.

    ":memory:" gets a fresh schema per store, dropped when the store closes (a memory store
    is gone when closed too); a file path gets one schema per path, shared by every handle
    opened on it (as handles on one file share it), dropped by `drop_all`.
    """

    def __init__(self) -> None:
        self.by_path: dict[str, str] = {}

    def url(self, path: Any) -> tuple[str, str | None]:
        """(URL, schema to drop when the store closes or None)."""
        path = os.fspath(path)
        if path == ":memory:":
            schema = new_schema_name()
            return url_for(schema), schema
        schema = self.by_path.get(path)
        if schema is None:
            digest = hashlib.sha256(f"{path}:{uuid.uuid4()}".encode()).hexdigest()[:16]
            schema = self.by_path[path] = f"t_{digest}"
        return url_for(schema), None

    def edit(self, path: str, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement on a path's schema through a separate connection (tampering)."""
        text, order = translate(sql)
        if order is not None:
            params = [params[i] for i in order]
        with connect() as conn:
            conn.execute(f"SET search_path TO {self.by_path[os.fspath(path)]}")
            return conn.execute(text, list(params) or None).rowcount

    def drop_all(self) -> None:
        """Drop every schema handed out for a path."""
        drop_schemas(list(self.by_path.values()))
        self.by_path.clear()


def patched_open_store(original: Any, schemas: SchemaMap) -> Any:
    """`tests.strategies.open_store` that opens PostgreSQL schemas instead of files."""

    def open_store(path: Any, **kw: Any) -> eventstore.Store:
        url, own = schemas.url(path)
        store = original(url, **kw)
        if own is not None:
            close = store.close

            def close_and_drop() -> None:
                if not store.db.closed:
                    close()
                    drop_schemas([own])

            store.close = close_and_drop  # type: ignore[method-assign]
        return store

    return open_store


def fresh_store(**kw: Any) -> Iterator[eventstore.Store]:
    """A store in a fresh schema, dropped afterwards (for fixtures)."""
    schema = new_schema_name()
    store = eventstore.open(url_for(schema), **kw)
    try:
        yield store
    finally:
        store.close()
        drop_schemas([schema])



def backend(clock: eventstore.ManualClock) -> PostgresBackend:
    """The contract suite's PostgreSQL backend on the test server (a fresh schema)."""
    return PostgresBackend(SERVER, clock)
