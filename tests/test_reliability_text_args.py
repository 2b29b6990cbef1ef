"""Text arguments that cannot be stored: a lone surrogate ("a\\ud800") in an identifier, and
lease owner ids of any size.

A lone surrogate is a valid Python str that no UTF-8 encoder accepts, so it used to escape
as a raw UnicodeEncodeError from SQLite or the chain hashing. Every public entry point now
raises InvalidArgument naming the argument (or the field inside it) and writes nothing. The
facade methods are swept generically by tests/test_reliability_hostile_args.py (the
"not UTF-8" case); this module covers the log and the drafts that carry ids inside them.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

import eventstore
from eventstore import InvalidArgument
from eventstore.demo import UserMessage
from eventstore.inputs import TurnInputDraft
from eventstore.leases import MAX_OWNER_ID_BYTES, LeaseOwner, LocalProcessLiveness
from eventstore.queue import AgentFrameTask, QueuedWorkDraft
from eventstore.triggers import OccurrenceRequest

BAD = "a\ud800"


def _calls(store: eventstore.Store) -> dict[str, tuple[str, Callable[[], Any]]]:
    """name -> (the text the error must name, the call)."""
    return {
        "append stream": ("stream", lambda: store.append(BAD, [UserMessage("hi")])),
        "append long stream": ("stream", lambda: store.append("s" * 100 + BAD, [UserMessage("hi")])),
        "append idempotency key": ("idempotency_key",
                                   lambda: store.append("s", [UserMessage("hi")], idempotency_key=BAD)),
        "read_stream": ("stream", lambda: list(store.read_stream(BAD))),
        "read_all streams filter": ("streams", lambda: list(store.read_all(streams=[BAD]))),
        "read_all types filter": ("types", lambda: list(store.read_all(types=[BAD]))),
        "stream_version": ("stream", lambda: store.stream_version(BAD)),
        "stream_info": ("stream", lambda: store.stream_info(BAD)),
        "sessions.create": ("session_id", lambda: store.sessions.create(BAD)),
        "sessions.get": ("session_id", lambda: store.sessions.get(BAD)),
        "leases.claim owner_id": ("owner.owner_id",
                                  lambda: store.leases.claim("s1", LeaseOwner(BAD, "inc"), 30_000)),
        "leases.claim incarnation_id": ("owner.incarnation_id",
                                        lambda: store.leases.claim("s1", LeaseOwner("w", BAD), 30_000)),
        "queue.enqueue source_key": ("draft.source_key", lambda: store.queue.enqueue(
            QueuedWorkDraft("s1", (AgentFrameTask("f1", {}),), source_key=BAD))),
        "queue.enqueue session_id": ("draft.session_id", lambda: store.queue.enqueue(
            QueuedWorkDraft(BAD, (AgentFrameTask("f1", {}),)))),
        "inputs.enqueue source_key": ("draft.source_key", lambda: store.inputs.enqueue(
            TurnInputDraft("s1", {"text": "x"}, source_key=BAD))),
        "triggers.ingest idempotency_key": ("request.idempotency_key", lambda: store.triggers.ingest(
            OccurrenceRequest("webhook", "github:push", BAD))),
        "effects.begin scope": ("scope", lambda: store.effects.begin(BAD, "k", {})),
    }


@pytest.fixture
def world(tmp_path, clock):
    with eventstore.open(str(tmp_path / "s.db"), clock=clock) as store:
        store.sessions.create("s1")
        yield store


NAMES = [
    "append stream", "append long stream", "append idempotency key", "read_stream", "read_all streams filter",
    "read_all types filter", "stream_version", "stream_info", "sessions.create", "sessions.get",
    "leases.claim owner_id", "leases.claim incarnation_id", "queue.enqueue source_key",
    "queue.enqueue session_id", "inputs.enqueue source_key", "triggers.ingest idempotency_key",
    "effects.begin scope",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_lone_surrogate_in_an_id_raises_invalid_argument_naming_it_and_writes_nothing(world, name):
    """Each entry point: InvalidArgument (not UnicodeEncodeError) naming the argument; log unchanged."""
    what, call = _calls(world)[name]
    before = world.anchor()
    with pytest.raises(InvalidArgument) as info:
        call()
    assert what in str(info.value)
    assert "surrogate" in str(info.value)
    assert world.anchor() == before


# --- lease owner ids have a size limit ------------------------------------------------------------


@pytest.mark.parametrize("field", ["owner_id", "incarnation_id"])
def test_an_oversized_lease_owner_id_is_refused_and_not_written(world, field):
    """A 1,000,000-character owner or incarnation id is InvalidArgument naming the field; nothing written."""
    big = "x" * 1_000_000
    owner = LeaseOwner(big, "inc") if field == "owner_id" else LeaseOwner("worker", big)
    before = world.anchor()
    with pytest.raises(InvalidArgument, match=rf"owner\.{field} must be at most {MAX_OWNER_ID_BYTES}"):
        world.leases.claim("s1", owner, 30_000)
    assert world.anchor() == before


def test_an_owner_id_at_the_limit_is_accepted(world):
    """The limit is inclusive: a 256-byte owner id claims the lease."""
    owner = LeaseOwner("w" * MAX_OWNER_ID_BYTES, "i" * MAX_OWNER_ID_BYTES)
    assert world.leases.claim("s1", owner, 30_000).lease.fence.owner == owner


def test_an_oversized_host_id_of_a_local_owner_is_refused(world):
    """The local-process liveness ids are written with the owner, so they are capped as well."""
    owner = LeaseOwner("w", "i", LocalProcessLiveness("h" * 10_000, "boot", 1, 1))
    with pytest.raises(InvalidArgument, match=r"owner\.liveness\.host_id"):
        world.leases.claim("s1", owner, 30_000)


def test_an_oversized_effect_lease_owner_is_refused(world):
    """The effect journal checks its owner with the same rule."""
    with pytest.raises(InvalidArgument, match=r"owner\.owner_id must be at most"):
        world.effects.begin("fx", "k1", {}, owner=LeaseOwner("x" * 300, "inc"))
