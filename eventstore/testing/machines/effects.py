"""A hypothesis state machine for the effect journal: concurrent owners and lease expiry.

Three owners, each on its own connection to one store file, begin, renew, complete and
fail effects on two replay keys, run whole journaled calls, replay them strictly (only a
missing entry is refused; an entry in progress is waited for or taken over as in a
normal call) and with divergent envelopes, while a shared manual clock moves their
leases to expiry. A small pure model predicts every answer (claimed / busy / replay /
taken over / lease lost / mismatch / missing). After every step the journal rows must
equal the model, and the live
projections must equal a rebuild from the log and a time-travel replay
(eventstore.testing.helpers.assert_consistent).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

import eventstore
from eventstore.effects import EffectBusy, EffectFailed, EffectLeaseLost, EffectMismatch, EffectReplayMissing
from eventstore.leases import LeaseOwner, LeaseTimings, OpaqueLiveness
from eventstore.testing.helpers import assert_consistent
from eventstore.testing.machines import BackendMachine

TTL = 300
TIMINGS = LeaseTimings(ttl_ms=TTL, renew_every_ms=100)
OWNERS = tuple(LeaseOwner(f"worker-{n}", f"{n}-1", OpaqueLiveness()) for n in "abc")
KEYS = ("k0", "k1")
SCOPE = "run"

owners = st.integers(0, len(OWNERS) - 1)
keys = st.sampled_from(KEYS)
values = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=4), st.lists(st.integers(0, 3), max_size=2))


def envelope(key: str) -> dict:
    return {"effect": "tool", "arguments": {"key": key}}


@attrs.define
class ModelEntry:
    """The model's view of one journaled effect."""

    status: str
    holder: int
    token: str
    expires_at: int
    attempts: int
    outcome: object = None
    error: str | None = None


class EffectJournalMachine(BackendMachine):
    """Owners race for effects on separate connections; the model predicts each answer."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = eventstore.ManualClock(1_700_000_000_000)
        backend = self.open_backend(self.clock)
        self.stores = [backend.store] + [backend.open() for _ in OWNERS[1:]]
        for i, store in enumerate(self.stores):
            store.effects.configure(owner=OWNERS[i], timings=TIMINGS, wait_timeout_s=0)
        self.model: dict[str, ModelEntry] = {}
        self.held: dict[tuple[int, str], Any] = {}  # the last lease each owner obtained per key
        self.runs = 0  # how often a full call() really executed its function


    @classmethod
    def default_settings(cls) -> settings:
        """The budget on SQLite."""
        return settings(max_examples=25, stateful_step_count=20)

    # --- helpers -----------------------------------------------------------------

    def holds(self, owner: int, key: str) -> bool:
        m = self.model.get(key)
        lease = self.held.get((owner, key))
        return (m is not None and lease is not None and m.status == "in_progress" and m.holder == owner
                and m.token == lease.lease_token and m.expires_at > self.clock())

    def predicted_begin(self, key: str) -> str:
        m = self.model.get(key)
        if m is None:
            return "claimed"
        if m.status in ("completed", "failed"):
            return "replay"
        return "busy" if m.expires_at > self.clock() else "taken_over"

    def record_claim(self, owner: int, key: str, lease: Any) -> None:
        m = self.model.get(key)
        self.model[key] = ModelEntry("in_progress", owner, lease.lease_token, self.clock() + TTL,
                                     1 if m is None else m.attempts + 1)
        self.held[(owner, key)] = lease

    # --- rules -------------------------------------------------------------------

    @rule(owner=owners, key=keys)
    def begin(self, owner: int, key: str) -> None:
        expected = self.predicted_begin(key)
        got = self.stores[owner].effects.begin(SCOPE, key, envelope(key))
        if expected in ("claimed", "taken_over"):
            assert got.status == "claimed" and got.taken_over == (expected == "taken_over"), got
            assert got.lease is not None and got.lease.attempt == (self.model[key].attempts + 1 if key in self.model else 1)
            self.record_claim(owner, key, got.lease)
        else:
            assert got.status == expected, (got, expected)

    @rule(owner=owners, key=keys)
    def renew(self, owner: int, key: str) -> None:
        lease = self.held.get((owner, key))
        if lease is None:
            return
        if self.holds(owner, key):
            renewed = self.stores[owner].effects.renew(lease)
            assert renewed.expires_at_ms == self.clock() + TTL
            self.model[key].expires_at = self.clock() + TTL
            self.held[(owner, key)] = renewed
        else:
            try:
                self.stores[owner].effects.renew(lease)
            except EffectLeaseLost:
                return
            raise AssertionError(f"owner {owner} renewed a lease on {key} it no longer holds")

    @rule(owner=owners, key=keys, value=values, fail=st.booleans())
    def finish(self, owner: int, key: str, value: object, fail: bool) -> None:
        lease = self.held.get((owner, key))
        if lease is None:
            return
        fx = self.stores[owner].effects
        if self.holds(owner, key):
            if fail:
                fx.fail(lease, "ToolError", f"broken {value!r}")
                self.model[key].status, self.model[key].error = "failed", f"ToolError: broken {value!r}"
            else:
                fx.complete(lease, value)
                self.model[key].status, self.model[key].outcome = "completed", value
        else:
            position = self.stores[0].last_position()
            try:
                fx.fail(lease, "ToolError", "late") if fail else fx.complete(lease, value)
            except EffectLeaseLost:
                assert self.stores[0].last_position() == position  # a lost lease records nothing
                return
            raise AssertionError(f"owner {owner} finished {key} without holding its lease")

    @rule(owner=owners, key=keys, value=values)
    def call(self, owner: int, key: str, value: object) -> None:
        expected = self.predicted_begin(key)
        ran = []

        def effect() -> object:
            ran.append(1)
            return value

        try:
            got = self.stores[owner].effects.call(SCOPE, key, envelope(key), effect)
        except EffectBusy:
            assert expected == "busy"
            return
        except EffectFailed as exc:
            assert expected == "replay" and self.model[key].status == "failed" and exc.replayed
            assert not ran
            return
        if expected == "replay":
            assert not ran and got == self.model[key].outcome
            return
        assert expected in ("claimed", "taken_over") and ran == [1] and got == value
        m = self.model.get(key)
        self.model[key] = ModelEntry("completed", owner, "", 0, 1 if m is None else m.attempts + 1, value)
        self.runs += 1

    @rule(owner=owners, key=keys, value=values)
    def strict_replay(self, owner: int, key: str, value: object) -> None:
        """Strict replay refuses only a key never journaled; an entry in progress is busy
        (live lease) or taken over and run (expired), exactly as a normal call."""
        m = self.model.get(key)
        expected = self.predicted_begin(key)
        fx = self.stores[owner].effects
        ran = []

        def effect() -> object:
            ran.append(1)
            return value

        position = self.stores[0].last_position()
        with fx.strict_replay():
            try:
                got = fx.call(SCOPE, key, envelope(key), effect)
            except EffectReplayMissing:
                assert m is None and self.stores[0].last_position() == position
                return
            except EffectBusy:
                assert expected == "busy" and not ran
                return
            except EffectFailed as exc:
                assert expected == "replay" and m is not None and m.status == "failed" and exc.replayed and not ran
                assert f"{exc.error_type}: {exc.error_message}" == m.error
                return
        if expected == "replay":
            assert m is not None and m.status == "completed" and got == m.outcome and not ran
            return
        assert expected == "taken_over" and ran == [1] and got == value and m is not None
        self.model[key] = ModelEntry("completed", owner, "", 0, m.attempts + 1, value)
        self.runs += 1

    @rule(owner=owners, key=keys)
    def divergent_envelope(self, owner: int, key: str) -> None:
        if key not in self.model:
            return
        position = self.stores[0].last_position()
        try:
            self.stores[owner].effects.begin(SCOPE, key, {"effect": "tool", "arguments": {"key": key + "!"}})
        except EffectMismatch as exc:
            assert f"$.arguments.key: '{key}' != '{key}!'" in str(exc)
            assert self.stores[0].last_position() == position
            return
        raise AssertionError("a divergent envelope was accepted")

    @rule(ms=st.sampled_from([1, 50, 150, TTL - 1, TTL, TTL + 1]))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def journal_matches_model(self) -> None:
        store = self.stores[0]
        for key in KEYS:
            entry = store.effects.get(SCOPE, key)
            m = self.model.get(key)
            if m is None:
                assert entry is None
                continue
            assert (entry.status, entry.attempts, entry.holder) == (m.status, m.attempts, OWNERS[m.holder])
            if m.status == "in_progress":
                assert (entry.lease_token, entry.lease_expires_at_ms) == (m.token, m.expires_at)
            if m.status == "completed":
                assert entry.outcome == m.outcome

    @invariant()
    def projections_equal_rebuild_and_time_travel(self) -> None:
        assert_consistent(self.stores[0])

