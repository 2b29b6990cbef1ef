"""The PostgreSQL backend's own behaviour: the storage seam's members, store URLs and schemas,
identity checks, SQL translation, and the same chain as SQLite for the same appends.

These tests use the server at EVENTSTORE_TEST_POSTGRES (default: the local one) and fail,
never skip, when it cannot be reached.
"""

from __future__ import annotations

import inspect

import pytest

import eventstore
from eventstore.storage import Storage
from projections.base import replace_row
from eventstore.storage.postgres import PostgresDatabase, parse_url, translate
from tests import postgres_support as pg
from tests import strategies as gen


@pytest.fixture
def schemas():
    """Schema names for the test; every one is dropped afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(pg.new_schema_name())
        return made[-1]

    pg.connect().close()
    yield new
    pg.drop_schemas(made)


def test_the_postgres_backend_provides_every_member_of_the_storage_protocol(schemas):
    """Each method and attribute the Protocol names exists on PostgresDatabase with the same
    parameter names, so the log, the engine and the projections run on it unchanged."""
    db = PostgresDatabase(pg.url_for(schemas()))
    try:
        for name in {n for n in vars(Storage) if not n.startswith("_")} | set(Storage.__annotations__):
            assert hasattr(db, name), name
            wanted = getattr(Storage, name, None)
            if inspect.isfunction(wanted):
                got = inspect.signature(getattr(PostgresDatabase, name)).parameters
                assert list(inspect.signature(wanted).parameters) == list(got), name
    finally:
        db.close()


def test_the_schema_parameter_is_ours_and_a_bad_schema_name_is_refused():
    """`schema` is taken out of the DSN (libpq would reject it); the default is `eventstore`."""
    assert parse_url("postgresql://u@h:5432/db?schema=abc&connect_timeout=3") == (
        "postgresql://u@h:5432/db?connect_timeout=3", "abc")
    assert parse_url("postgresql://u@h/db") == ("postgresql://u@h/db", "eventstore")
    for bad in ("Upper", "has space", "x;drop", "1abc", "a" * 64):
        with pytest.raises(eventstore.InvalidArgument, match="schema"):
            eventstore.open(f"postgresql://postgres@127.0.0.1/test?schema={bad}")


def test_two_schemas_are_two_independent_stores(schemas):
    """Positions, chains and catalogues of two stores in one database never mix."""
    a_url, b_url = pg.url_for(schemas()), pg.url_for(schemas())
    with gen.open_store(a_url) as a, gen.open_store(b_url) as b:
        a.append("s", [gen.NoteAdded("a1"), gen.NoteAdded("a2")])
        b.append("s", [gen.NoteAdded("b1")])
        assert [e.data.text for e in a.read_all()] == ["a1", "a2"]
        assert [(e.position, e.data.text) for e in b.read_all()] == [(1, "b1")]
        assert a.verify().ok and b.verify().ok and b.stream_info("s").event_count == 1


def test_a_schema_holding_other_tables_or_no_store_is_refused_untouched(schemas):
    """A schema of another application is NotAnEventStore; create=False on an empty schema
    is a FileError; neither writes anything."""
    foreign = schemas()
    with pg.connect() as conn:
        conn.execute(f"CREATE SCHEMA {foreign}")
        conn.execute(f"CREATE TABLE {foreign}.customers (id int)")
    with pytest.raises(eventstore.NotAnEventStore):
        eventstore.open(pg.url_for(foreign))
    empty = schemas()
    with pytest.raises(eventstore.FileError, match="create=False"):
        eventstore.open(pg.url_for(empty), create=False)
    with pg.connect() as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema IN (%s, %s)", (foreign, empty)).fetchall()
    assert tables == [(foreign, "customers")]


def test_the_same_appends_give_the_same_chain_on_sqlite_and_postgres(schemas, tmp_path, clock):
    """Same events, same clock: identical rows, hashes and anchors on both backends (one
    table layout, chain and codec), so an anchor taken on one verifies on the other."""
    events = [[gen.NoteAdded("é" * 300)], [gen.CounterChanged("c", 2), gen.NoteAdded("x" * 5000)],
              [gen.NoteAdded("last")]]
    anchors = []
    for path in (str(tmp_path / "s.db"), pg.url_for(schemas())):
        with gen.open_store(path, clock=clock) as store:
            for i, batch in enumerate(events):
                store.append(f"s{i % 2}", batch, idempotency_key=f"k{i}")
            anchors.append((store.anchor(), [(e.position, e.stream, e.version, e.data) for e in store.read_all()]))
    assert anchors[0] == anchors[1]
    with gen.open_store(pg.url_for(schemas()), clock=clock) as store:
        for i, batch in enumerate(events):
            store.append(f"s{i % 2}", batch)
        assert store.verify(anchors[0][0]).ok


def test_a_write_inside_a_read_transaction_is_refused_and_the_chain_stays_whole(schemas):
    """A read transaction holds no write lock: an append inside one fails with a StoreError
    instead of linking rows to a head another writer may be moving."""
    with gen.open_store(pg.url_for(schemas())) as store:
        store.append("s", [gen.NoteAdded("1")])
        with pytest.raises(eventstore.StoreError, match="read transaction"):
            with store.read_transaction():
                store.append("s", [gen.NoteAdded("2")])
        assert store.append("s", [gen.NoteAdded("3")]).first_position == 2
        assert store.verify().ok


def test_translation_of_placeholders_tables_upserts_and_patterns():
    """The SQLite forms the projections use become their PostgreSQL equivalents."""
    assert translate("UPDATE t SET a = ?2, b = ?1 WHERE c = ?1") == (
        "UPDATE t SET a = %s, b = %s WHERE c = %s", [1, 0, 0])
    assert translate("SELECT '%', x FROM t WHERE y LIKE '50%' AND z = ?") == (
        "SELECT '%%', x FROM t WHERE y LIKE '50%%' AND z = %s", None)
    assert translate("SELECT '?' FROM t")[0] == "SELECT '?' FROM t"  # no parameters: text unchanged
    ddl = translate("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, "
                    "c TEXT NOT NULL, value ANY) WITHOUT ROWID")[0]
    assert ddl == ('CREATE TABLE IF NOT EXISTS t (a BIGINT PRIMARY KEY, b BYTEA, c TEXT COLLATE "C" NOT NULL, '
                   "value BYTEA)")
    # Upserts are written portably by the projections and pass through unchanged.
    assert translate("INSERT INTO t VALUES (?, ?) ON CONFLICT DO NOTHING")[0] == (
        "INSERT INTO t VALUES (%s, %s) ON CONFLICT DO NOTHING")
    upsert = translate(replace_row("t", "k, a, b", "k", "VALUES (?, ?, ?)"))
    assert upsert[0] == ("INSERT INTO t (k, a, b) VALUES (%s, %s, %s) ON CONFLICT (k) "
                         "DO UPDATE SET a = excluded.a, b = excluded.b")
    assert translate("SELECT a FROM t INDEXED BY t_by_b WHERE k GLOB 'process:*:wake'")[0] == (
        "SELECT a FROM t WHERE k LIKE 'process:%:wake'")
    kept = "INSERT INTO s VALUES (1, 2) ON CONFLICT (k) DO UPDATE SET n = excluded.n WHERE excluded.n > s.n"
    assert translate(kept)[0] == kept


def test_the_commit_clock_moves_the_epoch_for_other_writers_only(schemas):
    """A handle's own commits keep its epoch (its head cache stays valid); another handle's
    append, or rows deleted through another connection, move it."""
    url = pg.url_for(schemas())
    with gen.open_store(url) as a, gen.open_store(url) as b:
        a.append("s", [gen.NoteAdded("1")])
        with a.transaction():
            first = a.db.foreign_epoch()
            a.append("s", [gen.NoteAdded("2")])
        with a.transaction():
            assert a.db.foreign_epoch() == first  # our own commit is not foreign
        b.append("s", [gen.NoteAdded("3")])
        with a.transaction():
            second = a.db.foreign_epoch()
            assert second != first
            assert a.db.foreign_epoch() == second  # stable within a transaction
        with pg.connect() as conn:
            conn.execute(f"DELETE FROM {a.db.schema}.events WHERE position = 3")
        with a.transaction():
            assert a.db.foreign_epoch() != second
        r = a.append("s", [gen.NoteAdded("again")], expected_version=2)
        assert (r.first_position, r.stream_version) == (3, 3) and a.verify().ok


def test_verify_without_an_anchor_notices_deleted_newest_rows(schemas):
    """The clock remembers the largest position ever inserted: a log cut short through another
    connection is reported truncated even without an anchor."""
    url = pg.url_for(schemas())
    with gen.open_store(url) as store:
        store.append("s", [gen.NoteAdded(str(i)) for i in range(4)])
        with pg.connect() as conn:
            conn.execute(f"DELETE FROM {store.db.schema}.events WHERE position > 2")
        report = store.verify()
        assert not report.ok and report.problem == "truncated" and "position 4" in report.detail


def test_a_domain_whose_projection_is_not_ported_is_refused_naming_it(schemas, monkeypatch):
    """With the queue projection taken off the ported list, the store does not keep it, and
    `store.queue` (and a read of the projection) raise NotOnThisBackend naming the domain and
    the backend, before anything is read or written; the log and the other domains still work."""
    import eventstore.storage.postgres as backend

    monkeypatch.setattr(backend, "PORTED_PROJECTIONS", backend.PORTED_PROJECTIONS - {"queue"})
    with eventstore.open(pg.url_for(schemas()), synchronous="normal") as store:
        head = store.anchor()
        with pytest.raises(eventstore.NotOnThisBackend) as info:
            store.queue.list("s1")
        assert (info.value.domain, info.value.backend) == ("the queue domain", "PostgreSQL")
        assert "queue" in str(info.value) and "PostgreSQL" in str(info.value)
        with pytest.raises(eventstore.NotOnThisBackend, match="the queue projection"):
            store.require_fresh("queue")
        assert store.anchor() == head and "queue_batches" not in store.db.table_names()
        store.sessions.create("s1")
        assert store.sessions.get("s1") is not None and store.verify().ok


def test_a_write_transaction_that_never_asks_the_epoch_does_not_hide_another_writer(schemas):
    """Regression: after another handle appended, a write transaction of ours that reads and
    writes nothing of the log must not make its commit clock value look like our own, or the
    next append would link to a stale cached head and collide on its position."""
    url = pg.url_for(schemas())
    with gen.open_store(url) as a, gen.open_store(url) as b:
        a.append("s", [gen.NoteAdded("a1")])  # a caches head 1
        b.append("s", [gen.NoteAdded("b2")])
        with a.transaction():  # asks nothing of the log
            a.db.execute("SELECT 1")
        r = a.append("s", [gen.NoteAdded("a3")], expected_version=2)
        assert (r.first_position, r.stream_version) == (3, 3)
        assert [e.data.text for e in b.read_all()] == ["a1", "b2", "a3"] and b.verify().ok
