"""An effect whose return value cannot be journaled (a set, an object) has already run.

The rule: the journal records that the effect ran without a replayable outcome (error type
`eventstore.EffectOutcomeNotJournaled`), never as if the function had raised, and never
leaves it in progress for a successor to run again. The first call and every replay raise
EffectOutcomeNotJournaled (an EffectFailed). The way out is explicit: fix the function,
then `store.effects.forget(scope, key)`; the next call runs the effect again.
"""

from __future__ import annotations

import pytest

import eventstore
from eventstore.effects import EffectFailed, EffectNotFinished, EffectOutcomeNotJournaled, OUTCOME_NOT_JOURNALED
from eventstore.leases import LeaseOwner
from eventstore.testing.helpers import assert_consistent


@pytest.fixture
def fx_store(tmp_path, clock):
    with eventstore.open(str(tmp_path / "fx.db"), clock=clock) as store:
        yield store


def test_an_unjournalable_return_value_is_recorded_as_such_and_replayed_as_such(fx_store):
    """A set return: the function runs once; the first call and each replay raise
    EffectOutcomeNotJournaled naming the path, and the entry is not a failure of the function."""
    runs = []

    @fx_store.effects.journaled(scope="run-1", key="tags")
    def tags() -> object:
        runs.append(1)
        return {"a", "b"}

    with pytest.raises(EffectOutcomeNotJournaled) as first:
        tags()
    assert isinstance(first.value, EffectFailed) and not first.value.replayed
    assert "$" in str(first.value) and "forget('run-1', 'tags')" in str(first.value)
    with pytest.raises(EffectOutcomeNotJournaled) as again:
        tags()
    assert again.value.replayed and len(runs) == 1
    entry = fx_store.effects.get("run-1", "tags")
    assert entry.status == "failed" and entry.error_type == OUTCOME_NOT_JOURNALED


def test_a_function_that_raises_is_still_an_ordinary_failure(fx_store):
    """Only an unjournalable outcome gets the new error; an exception stays EffectFailed."""
    def boom() -> None:
        raise ValueError("no")

    with pytest.raises(EffectFailed) as info:
        fx_store.effects.call("run-1", "boom", {}, boom)
    assert not isinstance(info.value, EffectOutcomeNotJournaled) and info.value.error_type == "ValueError"


def test_forget_lets_the_fixed_function_run_again(fx_store):
    """After forget(), the next call runs the (fixed) effect once and later calls replay it."""
    runs = []
    result: list[object] = [{1, 2}]

    def effect() -> object:
        runs.append(1)
        return result[0]

    with pytest.raises(EffectOutcomeNotJournaled):
        fx_store.effects.call("run-1", "k", {"q": 1}, effect)
    result[0] = [1, 2]  # the fix
    with pytest.raises(EffectOutcomeNotJournaled):
        fx_store.effects.call("run-1", "k", {"q": 1}, effect)
    assert len(runs) == 1
    assert fx_store.effects.forget("run-1", "k") is True
    assert fx_store.effects.get("run-1", "k") is None
    assert fx_store.effects.call("run-1", "k", {"q": 1}, effect) == [1, 2]
    assert fx_store.effects.call("run-1", "k", {"q": 1}, effect) == [1, 2]
    assert len(runs) == 2
    types = [ev.type for ev in fx_store.read_stream("effect:run-1")]
    assert types == ["effect.started", "effect.failed", "effect.forgotten",
                     "effect.started", "effect.completed"]
    assert_consistent(fx_store)


def test_forget_refuses_an_entry_in_progress_and_ignores_a_missing_one(fx_store):
    """An in-progress entry may still be running: EffectNotFinished, nothing written."""
    fx_store.effects.begin("run-1", "busy", {}, owner=LeaseOwner("w", "i"))
    before = fx_store.anchor()
    with pytest.raises(EffectNotFinished, match="in_progress"):
        fx_store.effects.forget("run-1", "busy")
    assert fx_store.effects.forget("run-1", "never") is False
    assert fx_store.anchor() == before


def test_forget_is_refused_on_a_time_travel_view(fx_store):
    """A view only reads."""
    fx_store.effects.call("run-1", "k", {}, lambda: 1)
    with fx_store.at() as view:
        with pytest.raises(eventstore.ReadOnlyView):
            view.effects.forget("run-1", "k")


def test_the_forget_effect_command_forgets_a_finished_effect(tmp_path, capsys):
    """`eventstore forget-effect DB --scope S --key K`: exit 0 and the entry is gone; an unknown
    one is a one-line error, exit 2; one in progress is refused, exit 2."""
    from eventstore.cli import main

    path = str(tmp_path / "cli.db")
    with eventstore.open(path) as store:
        with pytest.raises(EffectOutcomeNotJournaled):
            store.effects.call("run-1", "tags", {}, lambda: {"a"})
        store.effects.begin("run-1", "busy", {}, owner=LeaseOwner("w", "i"))
    assert main(["forget-effect", path, "--scope", "run-1", "--key", "tags", "--json"]) == 0
    assert '"forgotten":true' in capsys.readouterr().out
    with eventstore.open(path) as store:
        assert store.effects.get("run-1", "tags") is None
    assert main(["forget-effect", path, "--scope", "run-1", "--key", "tags"]) == 2
    assert "no effect 'tags' in scope 'run-1'" in capsys.readouterr().err
    assert main(["forget-effect", path, "--scope", "run-1", "--key", "busy"]) == 2
    assert "in_progress" in capsys.readouterr().err
