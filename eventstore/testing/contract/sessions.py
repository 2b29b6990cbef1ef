"""Session lifecycle laws (docs/semantics.md, laws 68-70) and the tombstone and purge rules."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.leases import Acquired, require_live_fence, LeaseOwner
from eventstore.sessions import SessionPurged
from eventstore.sessions import (
    SessionDeleted, SessionMeta, SessionNotDeleted, SessionNotFound, SessionRelation, require_live_session,
)
from eventstore.testing.helpers import assert_consistent

A = LeaseOwner("worker-a", "inc-1")
B = LeaseOwner("worker-b", "inc-1")


def claim(store: eventstore.Store, sid: str, owner: LeaseOwner = A, ttl: int = 60_000):
    """Claim the session's lease, assert it was acquired, and return the lease."""
    out = store.leases.claim(sid, owner, ttl)
    assert isinstance(out, Acquired), out
    return out.lease


class SessionContract:
    """Laws 68-70 and the lifecycle rules around them; subclass with a `backend` fixture."""

    # --- law 68 -------------------------------------------------------------------------

    def test_law_68_an_unknown_session_reads_as_absent(self, backend):
        store = backend.store
        assert store.sessions.get("never-created") is None
        store.sessions.create("other")
        assert store.sessions.get("never-created") is None
        assert [s.session_id for s in store.sessions.list()] == ["other"]
        assert store.leases.get("never-created") is None

    # --- law 69 -------------------------------------------------------------------------

    def test_law_69_create_is_idempotent_and_never_overwrites_meta_or_relation(self, backend):
        store, clock = backend.store, backend.clock
        meta = SessionMeta("triage", "model-1", "/srv/a", SessionRelation("parent", "fork"))
        first = store.sessions.create("s1", meta)
        assert first.created and first.session.meta == meta and first.session.generation == 1
        position = store.last_position()
        clock.advance(1_000)
        again = store.sessions.create("s1", SessionMeta("other", "model-2", "/tmp", SessionRelation("p2")))
        assert not again.created and again.session.meta == meta
        assert again.session.created_at_ms == first.session.created_at_ms
        assert store.last_position() == position  # nothing appended
        assert store.sessions.create("s1").session.meta == meta
        assert backend.reopen().sessions.get("s1").meta == meta

    def test_create_names_the_session_after_its_id_by_default(self, backend):
        info = backend.store.sessions.create("s1", SessionMeta(model="m")).session
        assert info.meta == SessionMeta("s1", "m", None, None)

    # --- law 70 -------------------------------------------------------------------------

    def test_law_70_delete_is_idempotent_wipes_lease_state_and_recreate_starts_at_fence_1(self, backend):
        store, clock = backend.store, backend.clock
        store.sessions.create("s1")
        for _ in range(3):  # fence climbs to 3
            store.leases.release(claim(store, "s1").fence)
        assert store.leases.get("s1").fencing_token == 3
        first = store.sessions.delete("s1")
        assert first.deleted and first.generation == 1
        position = store.last_position()
        assert not store.sessions.delete("s1").deleted
        assert store.last_position() == position
        assert store.leases.get("s1") is None
        clock.advance(10)
        recreated = store.sessions.create("s1", SessionMeta(model="new"), recreate=True)
        assert recreated.created and recreated.recreated
        assert recreated.session.generation == 2 and recreated.session.meta.model == "new"
        assert store.leases.get("s1") is None
        lease = claim(store, "s1")
        assert lease.fencing_token == 1
        assert_consistent(store)

    # --- tombstones -----------------------------------------------------------------------

    def test_a_deleted_id_is_refused_without_an_explicit_recreate(self, backend):
        store = backend.store
        store.sessions.create("s1")
        store.sessions.delete("s1")
        position = store.last_position()
        with pytest.raises(SessionDeleted, match="'s1'.*recreate=True"):
            store.sessions.create("s1")
        with pytest.raises(SessionDeleted):
            store.leases.claim("s1", A, 1_000)
        with pytest.raises(SessionDeleted):
            require_live_session(store.db, "s1")
        assert store.last_position() == position
        assert store.sessions.get("s1").status == "deleted"

    def test_a_late_fenced_write_cannot_revive_a_deleted_session(self, backend):
        store, clock = backend.store, backend.clock
        store.sessions.create("s1")
        lease = claim(store, "s1")
        store.sessions.delete("s1")
        store.sessions.create("s1", recreate=True)
        claim(store, "s1", B)  # generation 2 has its own fence 1
        with pytest.raises(eventstore.StoreError, match="superseded"):
            require_live_fence(store.db, lease.fence, clock())  # the old generation's fence 1

    def test_recreating_an_active_session_is_still_idempotent(self, backend):
        store = backend.store
        store.sessions.create("s1", SessionMeta(model="m"))
        again = store.sessions.create("s1", SessionMeta(model="x"), recreate=True)
        assert not again.created and not again.recreated and again.session.meta.model == "m"

    def test_deleting_a_session_that_never_existed_is_a_noop(self, backend):
        """delete of an unknown id reports deleted=False, generation 0, and writes nothing."""
        store = backend.store
        before = store.last_position()
        result = store.sessions.delete("ghost")
        assert (result.session_id, result.deleted, result.generation) == ("ghost", False, 0)
        assert store.last_position() == before and store.sessions.get("ghost") is None
        assert store.sessions.create("ghost").created  # the id is still free

    # --- meta: save after create, caller's created_at ---------------------------------------

    def test_save_meta_upserts_the_meta_after_create(self, backend):
        """save_meta replaces name, model, cwd and relation; create still never overwrites."""
        store, clock = backend.store, backend.clock
        created = store.sessions.create("s1", SessionMeta(model="m1")).session
        clock.advance(10)
        meta = SessionMeta("renamed", "m2", "/work", SessionRelation("parent", "fork"))
        saved = store.sessions.save_meta("s1", meta)
        assert saved.meta == meta and saved.created_at_ms == created.created_at_ms and saved.generation == 1
        position = store.last_position()
        assert store.sessions.save_meta("s1", meta).meta == meta and store.last_position() == position
        assert store.sessions.create("s1", SessionMeta(model="other")).session.meta == meta
        assert store.sessions.save_meta("s1", SessionMeta(model="m3")).meta == SessionMeta("s1", "m3")
        upserted = store.sessions.save_meta("fresh", SessionMeta(cwd="/tmp"))
        assert upserted.status == "active" and upserted.meta == SessionMeta("fresh", cwd="/tmp")
        assert backend.reopen().sessions.get("s1").meta == SessionMeta("s1", "m3")
        store = backend.store
        store.sessions.delete("s1")
        with pytest.raises(SessionDeleted):
            store.sessions.save_meta("s1", meta)
        with pytest.raises(eventstore.InvalidArgument, match="meta"):
            store.sessions.save_meta("fresh", None)
        assert_consistent(store)

    def test_create_records_the_callers_created_at_or_the_store_clock(self, backend):
        """created_at_ms given by the caller is kept (imports); absent, the clock stamps it."""
        store, clock = backend.store, backend.clock
        imported = store.sessions.create("imported", created_at_ms=1_600_000_000_000).session
        assert imported.created_at_ms == 1_600_000_000_000
        assert store.sessions.create("local").session.created_at_ms == clock()
        assert store.sessions.create("imported", created_at_ms=5).session.created_at_ms == 1_600_000_000_000
        assert backend.reopen().sessions.get("imported").created_at_ms == 1_600_000_000_000
        for bad in (-1, "now", True, 2 ** 63):
            with pytest.raises(eventstore.InvalidArgument, match="created_at_ms"):
                backend.store.sessions.create("bad", created_at_ms=bad)

    # --- purge ----------------------------------------------------------------------------

    def test_purge_drops_payloads_and_rows_and_the_chain_still_verifies(self, backend):
        store = backend.store
        store.sessions.create("s1", SessionMeta("secret name", "m"))
        store.sessions.create("keep", SessionMeta("kept", "m"))
        store.leases.renew(claim(store, "s1").fence, 60_000)
        anchor = store.anchor()
        store.sessions.delete("s1")
        report = store.sessions.purge("s1")
        assert report.purged and report.payloads_dropped == 4
        assert all(e.data is None for e in store.read_stream("session:s1"))
        records = [e.data for e in store.read_stream(report.purge_stream)]
        assert records == [SessionPurged("s1", 1, records[0].deleted_at_ms, records[0].purged_at_ms, 4, 4)]
        info = store.sessions.get("s1")
        assert info.status == "purged" and info.meta == SessionMeta() and info.event_count == 4
        assert store.leases.get("s1") is None
        assert store.sessions.get("keep").meta.name == "kept"
        assert store.verify(anchor).ok
        assert_consistent(store)
        store.rebuild()
        assert store.sessions.get("s1") == info

    def test_a_purged_id_stays_tombstoned_and_can_be_recreated_explicitly(self, backend):
        store = backend.store
        store.sessions.create("s1")
        claim(store, "s1")
        store.sessions.delete("s1")
        store.sessions.purge("s1")
        with pytest.raises(SessionDeleted):
            store.sessions.create("s1")
        store = backend.reopen()
        store.rebuild()
        with pytest.raises(SessionDeleted):
            store.leases.claim("s1", A, 1_000)
        again = store.sessions.create("s1", recreate=True)
        assert again.session.generation == 2 and again.session.status == "active"
        assert claim(store, "s1").fencing_token == 1
        assert_consistent(store)

    def test_a_failed_purge_record_leaves_every_payload_in_place(self, backend, monkeypatch):
        store = backend.store
        store.sessions.create("s1", SessionMeta(model="m"))
        store.sessions.delete("s1")
        position = store.last_position()

        def fail(*args, **kwargs):
            raise eventstore.StoreError("disk full (simulated)")

        monkeypatch.setattr(store, "append", fail)
        with pytest.raises(eventstore.StoreError, match="simulated"):
            store.sessions.purge("s1")
        monkeypatch.undo()
        assert store.last_position() == position
        assert all(e.data is not None for e in store.read_stream("session:s1"))
        assert store.sessions.get("s1").status == "deleted"
        assert store.sessions.purge("s1").payloads_dropped == 2
        assert_consistent(store)

    def test_purge_twice_is_a_noop(self, backend):
        store = backend.store
        store.sessions.create("s1")
        store.sessions.delete("s1")
        store.sessions.purge("s1")
        position = store.last_position()
        report = store.sessions.purge("s1")
        assert not report.purged and report.payloads_dropped == 0 and report.position is None
        assert store.last_position() == position

    def test_purge_refuses_active_and_unknown_sessions(self, backend):
        store = backend.store
        store.sessions.create("s1")
        position = store.last_position()
        with pytest.raises(SessionNotDeleted, match="'s1'"):
            store.sessions.purge("s1")
        with pytest.raises(SessionNotFound, match="'ghost'"):
            store.sessions.purge("ghost")
        assert store.last_position() == position
        assert store.read_stream("session:s1").__next__().data is not None

    def test_a_second_generation_is_purged_after_its_own_delete(self, backend):
        store = backend.store
        store.sessions.create("s1")
        store.sessions.delete("s1")
        store.sessions.purge("s1")
        store.sessions.create("s1", SessionMeta(model="gen2"), recreate=True)
        claim(store, "s1")
        store.sessions.delete("s1")
        report = store.sessions.purge("s1")
        assert report.payloads_dropped == 3  # created, lease acquired, deleted of generation 2
        assert store.sessions.get("s1").generation == 2
        assert len(list(store.read_stream("session-purge:s1"))) == 2
        assert_consistent(store)

    # --- list and read-only views -------------------------------------------------------

    def test_list_shows_meta_status_event_count_and_last_activity(self, backend):
        store, clock = backend.store, backend.clock
        store.sessions.create("b", SessionMeta("beta", "m-b", "/b"))
        clock.advance(100)
        store.sessions.create("a", SessionMeta("alpha", "m-a", "/a", SessionRelation("b", "subagent")))
        clock.advance(100)
        claim(store, "a")
        store.sessions.delete("b")
        listed = {s.session_id: s for s in store.sessions.list()}
        assert list(listed) == ["a", "b"]
        a, b = listed["a"], listed["b"]
        assert a.status == "active" and a.meta.relation == SessionRelation("b", "subagent")
        assert a.event_count == 2 and a.last_activity_ms == clock()
        assert b.status == "deleted" and b.event_count == 2 and b.deleted_at_ms == clock()
        assert [s.session_id for s in store.sessions.list(status="active")] == ["a"]
        assert [s.session_id for s in store.sessions.list(limit=1)] == ["a"]
        with pytest.raises(eventstore.InvalidArgument, match="status"):
            store.sessions.list(status="gone")

    def test_session_commands_refuse_on_a_time_travel_view(self, backend):
        store = backend.store
        store.sessions.create("s1")
        with store.at() as view:
            assert view.sessions.get("s1").status == "active"
            for call in (lambda: view.sessions.create("s2"), lambda: view.sessions.delete("s1"),
                         lambda: view.sessions.purge("s1")):
                with pytest.raises(eventstore.ReadOnlyView):
                    call()

    def test_time_travel_shows_a_session_before_its_delete(self, backend):
        store = backend.store
        store.sessions.create("s1", SessionMeta(model="m"))
        before = store.last_position()
        store.sessions.delete("s1")
        with store.at(before) as view:
            assert view.sessions.get("s1").status == "active"
            assert view.sessions.get("s1").meta.model == "m"

    @pytest.mark.parametrize("args,match", [
        (("",), "session_id"),
        ((7,), "session_id"),
        (("a\nb",), "control characters"),
        (("x" * 257,), "256 UTF-8 bytes"),
        (("s1", "meta"), "meta must be a SessionMeta"),
        (("s1", SessionMeta(name=3)), "meta.name"),  # type: ignore[arg-type]  # wrong on purpose
        (("s1", SessionMeta(cwd="a\x00b")), "meta.cwd"),
        (("s1", SessionMeta(relation=SessionRelation("s1"))), "its own parent"),
        (("s1", SessionMeta(relation=SessionRelation(""))), "parent_session_id"),
        (("s1", SessionMeta(relation=SessionRelation("p", ""))), "relation.kind"),
        (("s1", SessionMeta(relation="p")), "relation must be"),  # type: ignore[arg-type]  # wrong on purpose
    ])
    def test_bad_create_arguments_raise_invalid_argument_and_write_nothing(self, backend, args, match):
        store = backend.store
        with pytest.raises(eventstore.InvalidArgument, match=match):
            store.sessions.create(*args)
        assert store.last_position() == 0

    def test_recreate_must_be_a_real_bool(self, backend):
        with pytest.raises(eventstore.InvalidArgument, match="recreate"):
            backend.store.sessions.create("s1", recreate="yes")
