"""Effect replay journal laws (docs/semantics.md §10, law 88) as a backend contract.

Each part of law 88 has a `test_law_88_*` test; the other tests cover strict replay,
sleeps, awaited external events, the decorator, lease renewal and validation.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

import eventstore
from eventstore.effects import (
    AwaitSessionRevoked, AwaitTimeout, AwaitTokenInvalid, EffectBusy, EffectFailed, EffectLeaseLost,
    EffectMismatch, EffectReplayMissing,
)
from eventstore.effects import SCHEDULER, THREAD_NAME
from eventstore.leases import LeaseOwner, LeaseTimings, LocalProcessLiveness, OpaqueLiveness, this_process
from eventstore.testing.helpers import assert_consistent

TIMINGS = LeaseTimings(ttl_ms=300, renew_every_ms=100)
A = LeaseOwner("worker-a", "a-1", OpaqueLiveness())
B = LeaseOwner("worker-b", "b-1", OpaqueLiveness())


class Counter:
    """A simulated effect that counts how often it really runs."""

    def __init__(self, result: object = "ok") -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> object:
        self.calls += 1
        return self.result


def never() -> object:
    raise AssertionError("the executor must not run during a replay")


def configured(store: eventstore.Store, **kw: object) -> eventstore.Store:
    store.effects.configure(timings=TIMINGS, **kw)
    return store


def clock_sleeper(clock: eventstore.ManualClock) -> object:
    """A sleep function that moves the manual clock instead of waiting, and records pauses."""
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.advance(max(1, round(seconds * 1000)))

    sleep.pauses = pauses  # type: ignore[attr-defined]
    return sleep


class EffectContract:
    """The effect host contract: every part of law 88, and the rest of §6's journal."""

    # --- law 88 ------------------------------------------------------------------

    def test_law_88_replay_never_calls_the_executor(self, backend):
        store = configured(backend.store)
        effect = Counter({"forecast": "rain"})
        boom = Counter()
        boom_fn = lambda: (boom(), 1 / 0)  # noqa: E731
        assert store.effects.call("run", "weather", {"city": "Lyon"}, effect) == {"forecast": "rain"}
        with pytest.raises(EffectFailed):
            store.effects.call("run", "boom", {}, boom_fn)
        assert store.effects.call("run", "weather", {"city": "Lyon"}, never) == {"forecast": "rain"}
        with pytest.raises(EffectFailed, match="ZeroDivisionError") as replayed:
            store.effects.call("run", "boom", {}, never)
        assert replayed.value.replayed
        other = configured(backend.open())  # another connection, another owner
        assert other.effects.call("run", "weather", {"city": "Lyon"}, never) == {"forecast": "rain"}
        with other.effects.strict_replay():
            assert other.effects.call("run", "weather", {"city": "Lyon"}, never) == {"forecast": "rain"}
        assert (effect.calls, boom.calls) == (1, 1)
        assert store.effects.get("run", "weather").attempts == 1
        assert_consistent(store)

    def test_law_88_a_divergent_envelope_fails(self, backend):
        store = configured(backend.store)

        @store.effects.journaled(scope="run", key="weather")
        def weather(city: str, units: str = "metric") -> dict:
            return {"city": city}

        weather("Paris")
        position = store.last_position()
        with pytest.raises(EffectMismatch) as err:
            weather("Lyon")
        assert "$.arguments.city: 'Paris' != 'Lyon'" in str(err.value)
        assert err.value.differences == ("$.arguments.city: 'Paris' != 'Lyon'",)
        with pytest.raises(EffectMismatch, match=r"\$\.arguments\.units: 'metric' != 'imperial'"):
            weather("Paris", units="imperial")
        with pytest.raises(EffectMismatch, match="journaled as a call, requested as a sleep"):
            store.effects.sleep("run", "weather", 10)
        assert store.last_position() == position
        assert store.effects.get("run", "weather").outcome == {"city": "Paris"}

    def test_law_88_a_renewed_lease_blocks_competitors(self, backend):
        store, clock = configured(backend.store), backend.clock
        other = configured(backend.open())
        a = store.effects.begin("run", "model:1", {"prompt": "hi"}, owner=A)
        assert a.status == "claimed"
        clock.advance(200)
        renewed = store.effects.renew(a.lease)
        assert renewed.expires_at_ms == clock() + TIMINGS.ttl_ms
        clock.advance(200)  # past the first expiry, inside the renewed one
        busy = other.effects.begin("run", "model:1", {"prompt": "hi"}, owner=B)
        assert busy.status == "busy" and busy.entry.holder == A
        clock.advance(TIMINGS.ttl_ms)
        taken = other.effects.begin("run", "model:1", {"prompt": "hi"}, owner=B)
        assert taken.status == "claimed" and taken.taken_over and taken.lease.attempt == 2
        assert_consistent(store)

    def test_law_88_a_stolen_lease_fails_finalisation(self, backend):
        store, clock = configured(backend.store), backend.clock
        other = configured(backend.open())
        a = store.effects.begin("run", "tool:search", {"q": "x"}, owner=A).lease
        clock.advance(TIMINGS.ttl_ms)
        b = other.effects.begin("run", "tool:search", {"q": "x"}, owner=B).lease
        position = store.last_position()
        with pytest.raises(EffectLeaseLost, match="taken over by worker-b"):
            store.effects.complete(a, {"hits": 1})
        with pytest.raises(EffectLeaseLost):
            store.effects.fail(a, "RuntimeError", "late")
        with pytest.raises(EffectLeaseLost):
            store.effects.renew(a)
        assert store.last_position() == position
        other.effects.complete(b, {"hits": 2})
        assert store.effects.call("run", "tool:search", {"q": "x"}, never) == {"hits": 2}
        with pytest.raises(EffectLeaseLost, match="already completed"):
            other.effects.complete(b, {"hits": 3})
        assert_consistent(store)

    def test_law_88_an_expired_lease_fails_finalisation(self, backend):
        store, clock = configured(backend.store), backend.clock
        a = store.effects.begin("run", "tool:slow", {}, owner=A).lease
        clock.advance(TIMINGS.ttl_ms)  # expiry is exclusive: expires_at <= now is expired
        with pytest.raises(EffectLeaseLost, match="expired"):
            store.effects.renew(a)
        with pytest.raises(EffectLeaseLost, match="expired"):
            store.effects.complete(a, "late")
        entry = store.effects.get("run", "tool:slow")
        assert entry.status == "in_progress" and entry.outcome is None
        assert_consistent(store)

    def test_a_lease_is_expired_from_the_instant_of_its_expiry(self, backend):
        store, clock = configured(backend.store), backend.clock
        first = store.effects.begin("run", "k", {}, owner=A).lease
        clock.advance(TIMINGS.ttl_ms - 1)
        assert store.effects.begin("run", "k", {}, owner=B).status == "busy"
        clock.advance(1)  # now == expires_at: expired, for successors and for the holder alike
        assert store.effects.begin("run", "k", {}, owner=B).status == "claimed"
        with pytest.raises(EffectLeaseLost):
            store.effects.complete(first, "late")

    def test_law_88_an_expired_row_is_reclaimed_by_a_successor(self, backend):
        store, clock = configured(backend.store), backend.clock
        store.effects.begin("run", "tool:crashy", {"n": 1}, owner=A)  # A crashes: never finishes
        clock.advance(TIMINGS.ttl_ms + 1)
        successor = configured(backend.open(), owner=B)
        effect = Counter("recovered")
        assert successor.effects.call("run", "tool:crashy", {"n": 1}, effect) == "recovered"
        entry = store.effects.get("run", "tool:crashy")
        assert (entry.status, entry.attempts, entry.holder, effect.calls) == ("completed", 2, B, 1)
        types = [ev.type for ev in store.read_stream("effect:run")]
        assert types == ["effect.started", "effect.taken_over", "effect.completed"]
        assert_consistent(store)

    # --- waiting, takeover by proof of death ---------------------------------------

    def test_an_in_progress_effect_under_a_live_lease_is_waited_for(self, backend):
        store = configured(backend.store)
        a = store.effects.begin("run", "model:2", {"p": 1}, owner=A).lease
        waiter = configured(backend.open(), owner=B)
        polls = []

        def holder_finishes_while_we_wait(seconds: float) -> None:
            polls.append(seconds)
            if len(polls) == 2:
                store.effects.complete(a, {"text": "from A"})

        waiter.effects.configure(sleep=holder_finishes_while_we_wait)
        assert waiter.effects.call("run", "model:2", {"p": 1}, never) == {"text": "from A"}
        assert len(polls) == 2

    def test_waiting_is_bounded_and_names_the_holder(self, backend):
        store = configured(backend.store)
        store.effects.begin("run", "model:3", {}, owner=A)
        waiter = configured(backend.open(), owner=B, wait_timeout_s=0.05, poll_interval_s=0.01)
        with pytest.raises(EffectBusy, match="worker-a") as err:
            waiter.effects.call("run", "model:3", {}, never)
        assert err.value.holder == A

    def test_a_provably_dead_holder_is_taken_over_before_its_lease_expires(self, backend):
        store = configured(backend.store)
        me = this_process("worker-c", "c-1")
        live = me.liveness
        dead_pid = next(p for p in range(4_000_000, 3_000_000, -1) if not os.path.exists(f"/proc/{p}"))
        ghost = LeaseOwner("worker-ghost", "g-1", LocalProcessLiveness(live.host_id, live.boot_id, dead_pid, 1))
        store.effects.begin("run", "tool:x", {}, owner=ghost)
        taken = store.effects.begin("run", "tool:x", {}, owner=me)
        assert taken.status == "claimed" and taken.taken_over
        assert list(store.read_stream("effect:run"))[-1].data.reason == "holder_dead"
        # an opaque holder is never proven dead: it stays busy until expiry
        store.effects.begin("run", "tool:y", {}, owner=A)
        assert store.effects.begin("run", "tool:y", {}, owner=me).status == "busy"

    # --- strict replay -------------------------------------------------------------

    def test_strict_replay_of_a_missing_entry_is_an_error_and_writes_nothing(self, backend):
        """A key the journal lacks (call, sleep or await) means the run diverged: refused,
        nothing runs, nothing is written."""
        store = configured(backend.store)
        store.effects.call("run", "tool:done", {}, Counter(1))
        position = store.last_position()
        with store.effects.strict_replay():
            with pytest.raises(EffectReplayMissing, match="nothing was journaled"):
                store.effects.call("run", "tool:new", {}, never)
            with pytest.raises(EffectReplayMissing):
                store.effects.sleep("run", "nap", 10)
            with pytest.raises(EffectReplayMissing):
                store.effects.await_event("run", "approval")
            with pytest.raises(EffectReplayMissing):
                store.effects.begin("run", "tool:new", {})
        assert store.last_position() == position and store.effects.get("run", "tool:new") is None
        assert store.effects.call("run", "tool:new", {}, Counter(7)) == 7  # strict mode ended with the block

    def test_strict_replay_waits_for_an_in_progress_entry_and_replays_its_outcome(self, backend):
        """An entry in progress under a live lease is part of the recorded run: strict replay
        waits for its holder, as a normal call does, and returns the outcome it records."""
        store = configured(backend.store)
        a = store.effects.begin("run", "model:1", {"p": 1}, owner=A).lease
        polls = []

        def holder_finishes_while_we_wait(seconds: float) -> None:
            polls.append(seconds)
            if len(polls) == 2:
                store.effects.complete(a, {"text": "from A"})

        replayer = configured(backend.open(), owner=B, sleep=holder_finishes_while_we_wait)
        with replayer.effects.strict_replay():
            assert replayer.effects.call("run", "model:1", {"p": 1}, never) == {"text": "from A"}
        assert len(polls) == 2 and store.effects.get("run", "model:1").attempts == 1
        store.effects.begin("run", "model:2", {}, owner=A)
        impatient = configured(backend.open(), owner=B, wait_timeout_s=0)
        with impatient.effects.strict_replay(), pytest.raises(EffectBusy, match="worker-a"):
            impatient.effects.call("run", "model:2", {}, never)  # bounded, like any wait
        assert_consistent(store)

    def test_strict_replay_takes_over_an_in_progress_entry_whose_lease_expired(self, backend):
        """An abandoned attempt (lease expired) is taken over and run, as in normal mode:
        strict replay refuses only keys the recorded run never journaled."""
        store, clock = configured(backend.store), backend.clock
        store.effects.begin("run", "tool:half", {"q": 1}, owner=A)
        clock.advance(TIMINGS.ttl_ms)
        successor = configured(backend.open(), owner=B)
        effect = Counter("finished by B")
        with successor.effects.strict_replay():
            assert successor.effects.call("run", "tool:half", {"q": 1}, effect) == "finished by B"
            with pytest.raises(EffectMismatch):  # the envelope is still checked
                successor.effects.call("run", "tool:half", {"q": 2}, never)
        entry = store.effects.get("run", "tool:half")
        assert (effect.calls, entry.status, entry.attempts, entry.holder) == (1, "completed", 2, B)
        types = [e.type for e in store.read_stream("effect:run")]
        assert types[-2:] == ["effect.taken_over", "effect.completed"]
        assert_consistent(store)

    def test_strict_replay_in_a_time_travel_view_cannot_wait_or_take_over(self, backend):
        """A view never changes and never writes: an unfinished entry or await there raises
        ReadOnlyView, in strict replay as outside it."""
        store, clock = configured(backend.store), backend.clock
        store.effects.begin("run", "tool:half", {}, owner=A)
        store.effects.await_token("run", "approval")
        with store.at(store.last_position()) as view:
            for strict in (True, False):
                with view.effects.strict_replay() if strict else contextlib.nullcontext():
                    with pytest.raises(eventstore.ReadOnlyView):
                        view.effects.call("run", "tool:half", {}, never)
                    with pytest.raises(eventstore.ReadOnlyView, match="unresolved"):
                        view.effects.await_event("run", "approval")
            clock.advance(TIMINGS.ttl_ms)
            with view.effects.strict_replay(), pytest.raises(eventstore.ReadOnlyView):
                view.effects.call("run", "tool:half", {}, never)

    def test_strict_replay_is_per_thread(self, backend):
        store = configured(backend.store)
        seen = {}

        def other_thread() -> None:
            seen["value"] = store.effects.call("run", "k", {}, Counter("ran"))

        with store.effects.strict_replay():
            t = threading.Thread(target=other_thread)
            t.start()
            t.join(timeout=30)
        assert seen["value"] == "ran"

    def test_a_time_travel_view_replays_in_strict_mode_and_refuses_to_record(self, backend):
        store = configured(backend.store)
        store.effects.call("run", "k1", {}, Counter("first"))
        position = store.last_position()
        store.effects.call("run", "k2", {}, Counter("second"))
        with store.at(position) as view:
            with view.effects.strict_replay():
                assert view.effects.call("run", "k1", {}, never) == "first"
                with pytest.raises(EffectReplayMissing):
                    view.effects.call("run", "k2", {}, never)
            with pytest.raises(eventstore.ReadOnlyView):
                view.effects.call("run", "k2", {}, never)

    # --- outcomes and errors --------------------------------------------------------

    def test_an_effect_error_is_journaled_and_raised_as_effect_failed_with_its_cause(self, backend):
        store = configured(backend.store)

        def refuse() -> None:
            raise PermissionError("tool denied")

        with pytest.raises(EffectFailed, match="PermissionError: tool denied") as err:
            store.effects.call("run", "tool:rm", {"path": "/"}, refuse)
        assert isinstance(err.value.__cause__, PermissionError) and not err.value.replayed
        entry = store.effects.get("run", "tool:rm")
        assert (entry.status, entry.error_type, entry.error_message) == ("failed", "PermissionError", "tool denied")

    def test_an_outcome_that_is_not_json_like_is_journaled_as_a_failure(self, backend):
        store = configured(backend.store)
        with pytest.raises(EffectFailed, match=r"outcome \$\.when: set is not JSON-like") as err:
            store.effects.call("run", "k", {}, lambda: {"when": {1, 2}})
        assert isinstance(err.value.__cause__, eventstore.InvalidArgument)
        with pytest.raises(EffectFailed):
            store.effects.call("run", "k", {}, never)

    def test_first_call_and_replay_return_the_same_json_value(self, backend):
        store = configured(backend.store)
        first = store.effects.call("run", "k", {}, lambda: {"b": (1, 2), "a": [{"z": None, "y": 1.5}]})
        again = store.effects.call("run", "k", {}, never)
        assert first == again == {"b": [1, 2], "a": [{"z": None, "y": 1.5}]}
        assert list(first) == list(again) == ["b", "a"]  # key order kept

    def test_an_interrupted_effect_stays_in_progress_for_a_successor(self, backend):
        store, clock = configured(backend.store, owner=A), backend.clock

        def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.effects.call("run", "k", {}, interrupted)
        assert store.effects.get("run", "k").status == "in_progress"
        clock.advance(TIMINGS.ttl_ms)
        successor = configured(backend.open(), owner=B)
        assert successor.effects.call("run", "k", {}, Counter("done")) == "done"

    # --- sleeps --------------------------------------------------------------------

    def test_a_sleep_records_its_due_time_and_a_replay_waits_only_until_then(self, backend):
        store, clock = configured(backend.store), backend.clock
        sleeper = clock_sleeper(clock)
        store.effects.configure(sleep=sleeper)
        start = clock()
        due = store.effects.sleep("run", "nap", 1_000)
        assert due == start + 1_000 and clock() >= due
        assert store.effects.get("run", "nap").due_at_ms == due
        sleeper.pauses.clear()
        assert store.effects.sleep("run", "nap", 1_000) == due and sleeper.pauses == []  # already due
        clock.set(due - 250)  # a replay before the due time waits only for the rest
        assert store.effects.sleep("run", "nap", 1_000) == due
        assert abs(sum(sleeper.pauses) - 0.25) < 0.002

    def test_a_sleep_taken_over_keeps_its_original_due_time(self, backend):
        store, clock = configured(backend.store), backend.clock
        first = store.effects.begin("run", "nap", {"duration_ms": 5_000}, kind="sleep", duration_ms=5_000, owner=A)
        due = first.lease.due_at_ms
        clock.advance(TIMINGS.ttl_ms)
        successor = configured(backend.open(), owner=B, sleep=clock_sleeper(clock))
        assert successor.effects.sleep("run", "nap", 5_000) == due

    # --- awaited external events ---------------------------------------------------

    def test_await_tokens_are_hmac_signed_and_a_forged_token_is_refused(self, backend):
        store = configured(backend.store)
        token = store.effects.await_token("run", "approval")
        assert token == store.effects.await_token("run", "approval")
        assert token == configured(backend.open()).effects.await_token("run", "approval")  # one secret per store
        prefix, scope, key, mac = token.split(".")
        forged = ".".join((prefix, scope, key, mac[:-4] + ("AAAA" if mac[-4:] != "AAAA" else "BBBB")))
        for bad in (forged, "aw1.x.y", "hello", 42):
            with pytest.raises(AwaitTokenInvalid):
                store.effects.resolve(bad, {"ok": True})
        assert store.effects.get("run", "approval").status == "waiting"

    def test_the_await_secret_and_tokens_never_enter_the_log(self, backend):
        store = configured(backend.store)
        token = store.effects.await_token("run", "approval", session_id="s1")
        store.effects.resolve(token, {"ok": True})
        secret = store.effects._secret()  # the per-store key, read through the facade
        mac = token.split(".")[3]
        for _position, _schema, _flags, payload in store.log.stored_payloads(range(1, store.last_position() + 1)):
            assert payload is not None
            assert bytes(secret) not in payload and mac.encode() not in payload
        assert store.effects.get("run", "approval").key_id  # only the fingerprint is recorded

    def test_the_first_resolution_wins(self, backend):
        store = configured(backend.store)
        token = store.effects.await_token("run", "approval")
        other = configured(backend.open())
        first = store.effects.resolve(token, {"approved": True})
        second = other.effects.resolve(token, {"approved": False})
        assert first.won and not second.won and second.payload == {"approved": True}
        assert other.effects.await_event("run", "approval") == {"approved": True}
        with store.effects.strict_replay():
            assert store.effects.await_event("run", "approval") == {"approved": True}
        assert_consistent(store)

    def test_await_event_waits_for_a_resolution_and_is_bounded(self, backend):
        store = configured(backend.store)
        token = store.effects.await_token("run", "approval")
        resolver = configured(backend.open())
        polls = []

        def resolution_arrives(seconds: float) -> None:
            polls.append(seconds)
            resolver.effects.resolve(token, "yes")

        store.effects.configure(sleep=resolution_arrives)
        assert store.effects.await_event("run", "approval") == "yes" and len(polls) == 1
        store.effects.configure(sleep=time.sleep)
        store.effects.await_token("run", "other")
        with pytest.raises(AwaitTimeout):
            store.effects.await_event("run", "other", timeout_s=0.02)
        with store.effects.strict_replay(), pytest.raises(AwaitTimeout):  # an open await is waited for
            store.effects.await_event("run", "other", timeout_s=0.02)

    def test_strict_replay_waits_for_an_open_await_like_a_normal_call(self, backend):
        """An await the recorded run opened but nobody has resolved yet is waited for in
        strict replay; only an await the journal never opened is refused."""
        store = configured(backend.store)
        token = store.effects.await_token("run", "approval")
        resolver = configured(backend.open())
        store.effects.configure(sleep=lambda seconds: resolver.effects.resolve(token, "yes"))
        with store.effects.strict_replay():
            assert store.effects.await_event("run", "approval") == "yes"
            with pytest.raises(EffectReplayMissing):
                store.effects.await_event("run", "never-opened")

    def test_a_revoked_session_cancels_its_awaits_and_refuses_new_ones(self, backend):
        store = configured(backend.store)
        t1 = store.effects.await_token("run", "a1", session_id="s1")
        t2 = store.effects.await_token("run", "a2", session_id="s1")
        kept = store.effects.await_token("run", "a3", session_id="s2")
        store.effects.resolve(t1, "done")
        report = store.effects.revoke_session("s1", "user logged out")
        assert report.cancelled == (("run", "a2"),) and not report.already_revoked
        assert store.effects.revoke_session("s1").already_revoked
        with pytest.raises(AwaitSessionRevoked, match="user logged out"):
            store.effects.await_event("run", "a2", session_id="s1")
        with pytest.raises(AwaitSessionRevoked):
            store.effects.resolve(t2, "late")
        with pytest.raises(AwaitSessionRevoked):
            store.effects.await_token("run", "a4", session_id="s1")
        assert store.effects.await_event("run", "a1", session_id="s1") == "done"  # resolved before: kept
        assert store.effects.resolve(kept, "fine").won
        assert [e.status for e in store.effects.list("run")] == ["completed", "cancelled", "completed"]
        assert_consistent(store)

    def test_an_await_is_bound_to_its_session(self, backend):
        store = configured(backend.store)
        store.effects.await_token("run", "approval", session_id="s1")
        with pytest.raises(EffectMismatch, match=r"\$\.session_id: 's1' != 's2'"):
            store.effects.await_token("run", "approval", session_id="s2")

    # --- decorator, renewal, validation --------------------------------------------

    def test_the_journaled_decorator_keys_by_template_or_callable_and_leaves_out_self(self, backend):
        store = configured(backend.store)
        calls = []

        class Tools:
            @store.effects.journaled(scope=lambda self, city: f"run-{self.run}", key="weather:{city}")
            def weather(self, city: str) -> dict:
                calls.append(city)
                return {"city": city}

            run = 7

        tools = Tools()
        assert tools.weather("Oslo") == tools.weather(city="Oslo") == {"city": "Oslo"}
        assert calls == ["Oslo"]
        entry = store.effects.get("run-7", "weather:Oslo")
        assert entry.envelope == {"effect": "EffectContract.test_the_journaled_decorator_keys_by_template_or_"
                                            "callable_and_leaves_out_self.<locals>.Tools.weather",
                                  "arguments": {"city": "Oslo"}}

        @store.effects.journaled(scope="run", key="{missing}")
        def broken(x: int) -> int:
            return x

        with pytest.raises(eventstore.InvalidArgument, match="missing"):
            broken(1)

    def test_the_lease_is_renewed_in_the_background_while_the_effect_runs(self, backend):
        store = backend.store
        store.effects.configure(timings=LeaseTimings(ttl_ms=3_000, renew_every_ms=5))
        reader = backend.open()

        def slow_effect() -> str:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # bounded: returns once a renewal is in the log
                if any(ev.type == "effect.lease_renewed" for ev in reader.read_stream("effect:run")):
                    return "done"
                time.sleep(0.005)
            raise AssertionError("no lease renewal within 20 s")

        assert store.effects.call("run", "slow", {}, slow_effect) == "done"
        types = [ev.type for ev in store.read_stream("effect:run")]
        assert types[0] == "effect.started" and types[-1] == "effect.completed"
        assert "effect.lease_renewed" in types
        assert store.effects.get("run", "slow").renewals == types.count("effect.lease_renewed")
        count = store.last_position()
        time.sleep(0.05)  # ten renew intervals
        assert store.last_position() == count  # renewal stopped with the effect
        deadline = time.monotonic() + 20
        while SCHEDULER.active() or any(t.name == THREAD_NAME for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the idle renewal thread did not exit"
            time.sleep(0.05)
        assert_consistent(store)

    def test_an_effect_whose_lease_was_taken_over_while_running_cannot_record_its_outcome(self, backend):
        store, clock = backend.store, backend.clock
        store.effects.configure(owner=A, timings=LeaseTimings(ttl_ms=3_000, renew_every_ms=1_000))
        thief = configured(backend.open(), owner=B)

        def overtaken() -> str:
            clock.advance(3_000)
            assert thief.effects.begin("run", "k", {}).status == "claimed"
            return "too late"

        with pytest.raises(EffectLeaseLost, match="taken over by worker-b"):
            store.effects.call("run", "k", {}, overtaken)
        assert store.effects.get("run", "k").status == "in_progress"

    @pytest.mark.parametrize("scope, key, request_, what", [
        ("", "k", {}, "scope"),
        ("run", "bad\x00key", {}, "replay_key"),
        ("run", "k", {"when": object()}, r"request \$\.when"),
        ("run", "k", {1: "x"}, "keys must be strings"),
        ("x" * 401, "k", {}, "scope"),
    ])
    def test_bad_arguments_raise_invalid_argument_and_append_nothing(self, backend, scope, key, request_, what):
        store = configured(backend.store)
        with pytest.raises(eventstore.InvalidArgument, match=what):
            store.effects.call(scope, key, request_, never)
        assert store.last_position() == 0

    def test_bad_options_and_callables_are_refused(self, backend):
        store = backend.store
        with pytest.raises(eventstore.InvalidArgument, match="unknown option"):
            store.effects.configure(ttl=5)
        with pytest.raises(eventstore.InvalidArgument, match="wait_timeout_s"):
            store.effects.configure(wait_timeout_s=-1)
        with pytest.raises(eventstore.InvalidArgument, match="fn must be callable"):
            store.effects.call("run", "k", {}, "not a function")
        with pytest.raises(eventstore.InvalidArgument, match="duration_ms"):
            store.effects.sleep("run", "nap", -5)
        assert store.last_position() == 0

    def test_the_journal_survives_a_reopen(self, backend):
        store = configured(backend.store)
        store.effects.call("run", "k", {"a": 1}, Counter({"v": 1}))
        store = configured(backend.reopen())
        assert store.effects.call("run", "k", {"a": 1}, never) == {"v": 1}
        assert [s.scope for s in store.effects.scopes()] == ["run"]
