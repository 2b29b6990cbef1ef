"""The log's own tests (tests/test_log.py), run unchanged against PostgreSQL.

Every store the imported tests open through `tests.strategies.open_store` lands in a fresh
schema of the test server instead of a SQLite file; `edit_file` (tampering behind the store's
back) edits that schema through another connection. The tests left out are listed in
`SQLITE_ONLY` with the reason. The server must be reachable: these tests fail, never skip,
without it.
"""

from __future__ import annotations

import pytest

from tests import postgres_support as pg
from tests import strategies as gen
from tests import test_log as sqlite_tests

SQLITE_ONLY = {
    # Spawns a writer process that opens a store *file* by path; the PostgreSQL concurrency
    # test (test_postgres_concurrency.py) covers writers in other processes and a follower.
    "test_follow_delivers_events_appended_by_another_process_in_order",
    # Drives the SQLite backend's Database class directly; the PostgreSQL backend's commit
    # clock has its own test (test_postgres_backend.py).
    "test_foreign_epoch_moves_for_other_connections_commits_only",
}

for _name in dir(sqlite_tests):
    if _name.startswith("test_") and _name not in SQLITE_ONLY:
        globals()[_name] = getattr(sqlite_tests, _name)


@pytest.fixture(autouse=True, scope="module")
def _on_postgres():
    """Route the imported tests' stores to PostgreSQL schemas for this module's run."""
    pg.connect().close()  # fail (not skip) at once when the server is down
    schemas = pg.SchemaMap()
    mp = pytest.MonkeyPatch()
    mp.setattr(gen, "open_store", pg.patched_open_store(gen.open_store, schemas))
    mp.setattr(gen, "edit_file", schemas.edit)
    try:
        yield
    finally:
        mp.undo()
        schemas.drop_all()
