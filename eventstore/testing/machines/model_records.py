"""The records of the whole-store model (eventstore.testing.machines.model_store): owners,
acquisitions, claims, batches, inputs, graphs, sessions and commit specs, and the model's
refusal. Plain data: the models that change them are in model_sessions and model_store."""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

RETENTION_MS = 7 * 86_400_000
"""How long a settled batch's source key is remembered (the queue's default)."""
SCAN_SURPLUS = 32


class Refused(Exception):
    """The model's prediction: the command raises the typed error `name` and writes nothing."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(f"{name}: {why}" if why else name)
        self.name = name


def sha(text: str) -> str:
    """sha256 hex of a text (the documented id derivations use it)."""
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class Owner:
    """A lease owner. `pid` None is a remote worker whose death can never be proven."""

    owner_id: str
    incarnation: str
    pid: int | None = None

    def __repr__(self) -> str:
        return f"{self.owner_id}/{self.incarnation}"


# --- sessions, leases, queue, inputs, graph ---------------------------------------------


@attrs.define(eq=False)
class Acquisition:
    """One acquisition of a session lease (a fence); identity, not its token, is what counts."""

    session_id: str
    epoch: int  # the session generation it was taken in
    owner: Owner
    fence: int
    expires_at: int


@attrs.define(eq=False)
class Claim:
    """A queue or input claim as issued; rows point at the Claim object that holds them."""

    family: str  # "work" or "inputs"
    session_id: str
    epoch: int
    generation: int  # the lease fencing token it was taken under
    claim_id: str
    lease_token: str
    owner: Owner
    ids: tuple[str, ...]
    mode: str
    turn_id: str | None = None


@attrs.define
class Batch:
    """A queued batch: kind is task (Join), solo (Exclusive), command, or wake (Join)."""

    batch_id: str
    seq: int
    kind: str
    source_key: str | None = None
    claim_count: int = 0
    claim: Claim | None = None
    forget_key_on_settle: bool = False  # its process was pruned while it was queued

    @property
    def turn_work(self) -> bool:
        """Turn work (not a session command)."""
        return self.kind != "command"


@attrs.define
class Input:
    """A turn input row: `content` is what a source-key replay is compared with."""

    input_id: str
    seq: int
    source_key: str | None
    content: tuple
    turn_id: str | None
    boundary: str | None  # "after_work" | "before_completion" for active-turn rows
    state: str  # stored: pending_active, deferred_next_turn, accepted, cancelled, completed
    claim_count: int = 0
    claim: Claim | None = None


@attrs.define
class Graph:
    """A session's head and graph (exists once the session committed in this generation)."""

    revision: int = 0
    leaf: str | None = None
    live: list[str] = attrs.Factory(list)
    hidden: list[str] = attrs.Factory(list)
    checkpoint: int | None = None
    usage: int = 0
    turns: dict[str, tuple] = attrs.Factory(dict)  # turn id -> (content, result)


@attrs.define
class Session:
    """Everything the model keeps per session id."""

    status: str = "active"
    generation: int = 1
    fence: int = 0
    holder: Acquisition | None = None
    queue_seq: int = 0  # survive a delete; a purge resets them
    input_seq: int = 0
    batches: dict[str, Batch] = attrs.Factory(dict)
    keys: dict[str, tuple] = attrs.Factory(dict)  # source key -> ("present", batch) | (status, batch, at)
    inputs: dict[str, Input] = attrs.Factory(dict)
    graph: Graph | None = None

    def live_holder(self, now: int) -> Acquisition | None:
        """The holder while its lease is unexpired at `now`, else None."""
        return self.holder if self.holder is not None and now < self.holder.expires_at else None

    def live_gen(self, now: int) -> int | None:
        """The fencing token of the live lease (the live claim generation), or None."""
        h = self.live_holder(now)
        return h.fence if h is not None else None

    def holds(self, claim: Claim | None, now: int) -> bool:
        """Is `claim` live: taken in this generation under the lease that is live now?"""
        return (claim is not None and self.status == "active" and claim.epoch == self.generation
                and self.live_gen(now) == claim.generation)

    def wipe(self) -> None:
        """What a delete wipes (the sequence counters stay)."""
        self.fence, self.holder, self.graph = 0, None, None
        self.batches, self.keys, self.inputs = {}, {}, {}


@attrs.frozen
class CommitSpec:
    """A runtime commit as the model sees it (the machine builds the RuntimeCommit from it)."""

    session_id: str
    fence: Acquisition
    nodes: tuple[tuple[str, str | None], ...] = ()  # (node id, parent id)
    delta: str = "unchanged"  # unchanged | append | replace
    leaf: str | None = None
    expected_revision: int | None = None
    checkpoint: int | None = None
    usage: int = 0
    work: Claim | None = None
    inputs: Claim | None = None
    outbox: int = 0
    interrupt: str | None = None
    release: bool = False
    stamp: str | None = None
    content: Any = None  # equal exactly when the turn hash is equal
