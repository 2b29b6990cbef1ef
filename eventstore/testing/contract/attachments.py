"""Attachments as a runtime uses them: put/get/release with media type and label, commit
stamps outside a runtime commit, id-keyed holds_ref and forget, canonical URIs in the
manifest, and the minimum-age grace of blob GC."""

from __future__ import annotations

import pytest

from eventstore.attachments import BLOB_URI_PREFIX, AttachmentConflict
from eventstore.commits import DEFAULT_GC_MIN_AGE_MS
from eventstore.errors import InvalidArgument
from eventstore.testing.helpers import assert_consistent

PNG = b"\x89PNG fake image bytes"


class AttachmentContract:
    """The attachment store API; subclass with a `backend` fixture."""

    def sessions(self, backend, *ids: str):
        for sid in ids:
            backend.store.sessions.create(sid)
        return backend.store

    # --- (a) put / get / release / reclaim ------------------------------------------------------

    def test_put_keeps_media_type_and_label_with_the_ref_and_get_reads_the_bytes(self, backend):
        """put returns id, uri, media type, size and label; get reads the bytes back in the
        same session only; the row survives a reopen."""
        store = self.sessions(backend, "s1", "s2")
        ref = store.attachments.put("s1", PNG, "image/png", "screenshot.png")
        assert ref.id == ref.attachment_id and ref.uri == BLOB_URI_PREFIX + ref.blob_ref
        assert (ref.media_type, ref.size, ref.label, ref.committed_at_ms) == ("image/png", len(PNG),
                                                                                "screenshot.png", None)
        assert store.attachments.get("s1", ref.id) == PNG
        assert store.attachments.get("s2", ref.id) is None  # the session boundary
        assert store.attachments.holds_ref("s1", ref.id) and not store.attachments.holds_ref("s2", ref.id)
        store = backend.reopen()
        assert store.attachments.ref("s1", ref.id) == ref
        assert_consistent(store)

    def test_release_then_reclaim_collects_only_unreferenced_blobs_older_than_the_minimum_age(self, backend):
        """A released blob goes at a reclaim once older than the minimum age; a blob another
        session still holds stays."""
        store, clock = self.sessions(backend, "s1", "s2"), backend.clock
        shared = store.attachments.put("s1", b"shared", "text/plain")
        store.attachments.put("s2", b"shared", "text/plain", "copy")
        alone = store.attachments.put("s1", b"alone", "text/plain")
        assert store.attachments.release("s1", alone.id) and not store.attachments.release("s1", alone.id)
        assert store.attachments.release("s1", shared.id)
        assert store.attachments.reclaim(10_000).deleted_blob_count == 0  # put just now: too young
        assert store.blobs.has(alone.blob_ref)
        clock.advance(10_000)
        report = store.attachments.reclaim(10_000)
        assert report.deleted_refs == (alone.blob_ref,)
        assert store.attachments.get("s2", shared.id) == b"shared" and store.attachments.get("s1", alone.id) is None

    def test_put_validates_its_arguments(self, backend):
        """Bad data, media type, label or owner raise InvalidArgument naming the field; nothing is written."""
        store = self.sessions(backend, "s1")
        before = store.last_position()
        for args, kw, field in ((("s1", "text", "text/plain"), {}, "data"), (("s1", b"x", ""), {}, "media_type"),
                                (("s1", b"x", "text/plain", 7), {}, "label"),
                                (("s1", b"x", "text/plain"), {"owner": ("nobody", "x")}, "owner")):
            with pytest.raises(InvalidArgument, match=field):
                store.attachments.put(*args, **kw)
        assert store.last_position() == before

    # --- (b) commit_refs ------------------------------------------------------------------------

    def test_commit_refs_stamps_existing_intents_without_a_lease_or_a_head_revision(self, backend):
        """commit_refs sets committed_at on existing rows, never inserts, needs no lease and
        writes no head revision; the first stamp wins."""
        store, clock = self.sessions(backend, "s1"), backend.clock
        ref = store.blobs.put(b"upload")
        store.attachments.record_intent("s1", "att", ref, ("turn", "t1"))
        assert store.attachments.commit_refs("s1", ["att", "never-recorded"]) == 1
        stamped = store.attachments.ref("s1", "att").committed_at_ms
        assert stamped == clock()
        assert store.attachments.ref("s1", "never-recorded") is None  # no insert
        assert store.sessions.load("s1") is None and store.leases.get("s1") is None  # no head, no lease
        clock.advance(5)
        assert store.attachments.commit_refs("s1", ["att"]) == 0
        assert store.attachments.ref("s1", "att").committed_at_ms == stamped
        assert_consistent(store)

    def test_a_commit_refs_stamp_survives_another_sessions_intent_and_a_repeated_intent(self, backend):
        """The stamp is per session and a later intent for the same id refreshes the row but keeps it."""
        store, clock = self.sessions(backend, "s1", "s2"), backend.clock
        ref = store.blobs.put(b"same bytes")
        store.attachments.record_intent("s1", "att", ref)
        store.attachments.commit_refs("s1", ["att"])
        stamped = store.attachments.ref("s1", "att").committed_at_ms
        clock.advance(7)
        store.attachments.record_intent("s2", "att", ref)
        store.attachments.record_intent("s1", "att", ref, ("turn", "t9"))
        row = store.attachments.ref("s1", "att")
        assert row.committed_at_ms == stamped and row.owner_id == "t9" and row.intent_at_ms == clock()
        assert store.attachments.ref("s2", "att").committed_at_ms is None
        store = backend.reopen()
        assert store.attachments.ref("s1", "att").committed_at_ms == stamped

    # --- (c) holds_ref and forget by id ---------------------------------------------------------

    def test_holds_ref_and_forget_are_keyed_by_attachment_id(self, backend):
        """holds_ref takes an attachment id; forget takes one id or a list; holds_blob answers by blob."""
        store = self.sessions(backend, "s1")
        ref = store.blobs.put(b"doc")
        store.attachments.record_intent("s1", "doc-1", ref)
        store.attachments.record_intent("s1", "doc-2", ref)
        assert store.attachments.holds_ref("s1", "doc-1") and not store.attachments.holds_ref("s1", ref)
        assert store.attachments.forget("s1", "doc-1") == 1
        assert not store.attachments.holds_ref("s1", "doc-1") and store.attachments.holds_blob("s1", ref)
        assert store.attachments.forget("s1", ["doc-2", "doc-1"]) == 1
        assert not store.attachments.holds_blob("s1", ref)

    # --- (d) canonical URIs ---------------------------------------------------------------------

    def test_the_manifest_accepts_canonical_attachment_uris(self, backend):
        """An intent may name its bytes by URI: ours roots the blob, a foreign one is listed
        for the caller's own GC; a malformed one is refused."""
        store = self.sessions(backend, "s1")
        ref = store.blobs.put(b"ours")
        foreign = "lash-attachment://s1/att-7"
        row = store.attachments.record_intent("s1", "att-7", foreign, ("turn", "t1"))
        assert (row.uri, row.blob_ref) == (foreign, None)
        ours = store.attachments.record_intent("s1", "att-8", BLOB_URI_PREFIX + ref)
        assert (ours.uri, ours.blob_ref) == (BLOB_URI_PREFIX + ref, ref)
        assert store.attachments.commit_refs("s1", ["att-7"]) == 1
        assert {r.uri for r in store.attachments.list_refs("s1")} == {foreign, BLOB_URI_PREFIX + ref}
        with pytest.raises(AttachmentConflict):
            store.attachments.record_intent("s1", "att-7", "lash-attachment://s1/other")
        for bad in ("not a uri", "no-scheme", BLOB_URI_PREFIX + "xyz"):
            with pytest.raises(InvalidArgument, match="blob_ref"):
                store.attachments.record_intent("s1", "att-9", bad)
        assert store.sessions.gc(min_age_ms=0).deleted_blob_count == 0  # att-8 roots the blob
        assert store.attachments.get("s1", "att-8") == b"ours" and store.attachments.get("s1", "att-7") is None
        assert_consistent(store)

    # --- (e) GC grace ---------------------------------------------------------------------------

    def test_gc_spares_a_blob_put_a_moment_ago_from_another_handle(self, backend):
        """A blob put on its own and not yet referenced survives a GC run by another handle
        until it is older than the minimum age."""
        store, clock = backend.store, backend.clock
        other = backend.open()  # another connection: as a GC in another process
        ref = store.blobs.put(b"uploaded, intent not yet recorded")
        report = other.sessions.gc()
        assert report.deleted_blob_count == 0 and report.spared_young_count == 1 and store.blobs.has(ref)
        clock.advance(DEFAULT_GC_MIN_AGE_MS - 1)
        assert other.sessions.gc().deleted_blob_count == 0
        store.blobs.put(b"uploaded, intent not yet recorded")  # a repeated put refreshes the grace
        clock.advance(DEFAULT_GC_MIN_AGE_MS - 1)
        assert other.sessions.gc().deleted_blob_count == 0
        clock.advance(1)
        assert other.sessions.gc().deleted_refs == (ref,) and not store.blobs.has(ref)
        with pytest.raises(InvalidArgument, match="min_age_ms"):
            other.sessions.gc(min_age_ms=-1)
