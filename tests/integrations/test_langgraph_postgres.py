"""EventStoreSaver on the PostgreSQL backend: LangGraph's conformance suite (all 8
capabilities) against stores opened with `eventstore.open("postgresql://...")`, each in a
fresh schema of the test server. Fails, never skips, when the server is down.

The async method set runs here; the sync set runs the same statements (the async methods
call the sync ones in a worker thread) and passes the suite on SQLite
(test_langgraph_conformance.py), so it is not run a second time against the server."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

import eventstore
from eventstore.integrations.langgraph import EventStoreSaver
from tests.integrations.test_langgraph_conformance import _assert_all_capabilities_pass
from tests.postgres_support import connect, drop_schemas, new_schema_name, url_for


def _run_suite_on_postgres(saver_class: type[EventStoreSaver]) -> tuple[Any, list[str]]:
    connect().close()  # a clear failure when the server is down
    failures: list[str] = []
    schemas: list[str] = []

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}/{test}: {error}")

    @checkpointer_test(name=f"eventstore-postgres-{saver_class.__name__}")
    async def factory() -> AsyncIterator[EventStoreSaver]:
        schema = new_schema_name()
        schemas.append(schema)
        store = eventstore.open(url_for(schema))
        try:
            yield saver_class(store)
        finally:
            store.close()

    try:
        report = asyncio.run(validate(factory, progress=ProgressCallbacks(on_test_result=on_result)))
    finally:
        drop_schemas(schemas)
    return report, failures


def test_conformance_on_postgres_async_methods() -> None:
    """The async method set passes all 8 capabilities on a PostgreSQL store."""
    _assert_all_capabilities_pass(*_run_suite_on_postgres(EventStoreSaver))
