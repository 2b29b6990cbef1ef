"""The shared argument checks and canonical encodings (eventstore.checks): integers outside
SQLite's signed 64 bits are typed errors everywhere, and the encodings keep the bytes that
recorded hashes and tokens were made from."""

from __future__ import annotations

import hashlib

import pytest

import eventstore
from eventstore import checks
from eventstore.leases import LeaseOwner
from eventstore.leases import lease_token as session_token
from eventstore.processes import handover_hash
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.queue import lease_token as claim_token


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**70])
def test_check_int_rejects_integers_outside_the_store_range_with_a_typed_error(value):
    """Every integer argument must fit SQLite's signed 64 bits, even without an explicit bound."""
    with pytest.raises(eventstore.InvalidArgument, match="n must be an integer"):
        checks.check_int(value, "n", low=-(2**64))


def test_check_int_accepts_the_range_ends_and_refuses_bools():
    """The largest and smallest 64-bit values pass; True is not an integer argument."""
    assert checks.check_int(2**63 - 1, "n") == 2**63 - 1
    assert checks.check_int(-(2**63), "n", low=-(2**63)) == -(2**63)
    with pytest.raises(eventstore.InvalidArgument):
        checks.check_int(True, "n")


def test_a_draft_available_beyond_the_integer_range_is_rejected_and_nothing_is_written(tmp_path):
    """Regression: `available_at_ms=2**63` escaped as a raw OverflowError from the projection."""
    with eventstore.open(str(tmp_path / "s.db")) as store:
        store.sessions.create("s1")
        before = store.anchor()
        draft = QueuedWorkDraft("s1", (AgentFrameTask("frame", "work"),), available_at_ms=2**63)
        with pytest.raises(eventstore.InvalidArgument, match="available_at_ms"):
            store.queue.enqueue(draft)
        assert store.anchor() == before


def test_a_trigger_retention_beyond_the_integer_range_is_a_typed_error(tmp_path):
    """The triggers' own integer checks use the shared one (same range, same error type)."""
    with eventstore.open(str(tmp_path / "s.db")) as store:
        with pytest.raises(eventstore.InvalidArgument, match="occurrence_retention_ms"):
            store.triggers.occurrence_retention_ms = 2**63


def test_canonical_json_sorts_keys_keeps_unicode_and_refuses_nan():
    """Equal JSON content has equal text; NaN is not JSON."""
    assert checks.canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'
    with pytest.raises(ValueError):
        checks.canonical_json(float("nan"))


def test_the_two_msgpack_key_orders_differ_only_where_recorded_hashes_need_them():
    """canonical_msgpack orders keys by packed bytes (short keys first); handover hashes keep
    Python's text order, so a handover hash recorded before stays the same."""
    value = {"bb": 1, "a": 2, "c": {"zz": 1, "y": 2}}
    assert checks.canonical_msgpack(value) != checks.text_keyed_msgpack(value)
    assert checks.canonical_msgpack({"b": 1, "a": 2}) == checks.canonical_msgpack({"a": 2, "b": 1})
    expected = hashlib.sha256(eventstore.codec.pack({"a": 2, "bb": 1, "c": {"y": 2, "zz": 1}})).hexdigest()
    assert handover_hash(value) == expected


def test_derived_tokens_keep_each_domain_s_recorded_format():
    """Session lease tokens are the joined parts; claim tokens their SHA-256; effect tokens a
    prefixed, cut digest over NUL-joined parts."""
    owner = LeaseOwner("w", "inc")
    assert session_token("s1", owner, 5, 2, 1) == "s1:w:inc:5:2:1"
    assert claim_token("s1", owner, "qwc:1:1", 5) == hashlib.sha256(b"s1:w:inc:qwc:1:1:5").hexdigest()
    token = checks.derived_token("a", "b", sep="\x00", prefix="efl-", length=32)
    assert token == "efl-" + hashlib.sha256(b"a\x00b").hexdigest()[:32]
