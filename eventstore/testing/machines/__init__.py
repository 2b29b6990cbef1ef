"""The hypothesis state machines of the domains, parameterised by a backend factory.

Each module holds one machine (a `RuleBasedStateMachine` with its own small model) that
drives a domain, or the whole store, through its public API and checks after every step
that the store agrees with the model and that `eventstore.testing.helpers.assert_consistent`
holds (chain sound, projections equal a rebuild and a time-travel replay):

* `leases.LeaseMachine`: one session's execution lease under several owners;
* `queue.QueueMachine`, `inputs.InputMachine`: queued work and turn inputs under claims;
* `commits.CommitMachine`: runtime commits by two writers with leases lost and retaken;
* `effects.EffectJournalMachine`, `processes.ProcessMachine`, `triggers.TriggerStoreMachine`;
* `whole_store.WholeStoreMachine`: every domain at once against `model_store.StoreModel`.

A machine never opens a store itself: hypothesis makes a new machine for every example,
and each one asks the class's `backend_factory` for a backend on a fresh store (handles
from `backend.open()`, everything closed by `backend.close()` at teardown). A backend runs
every machine by binding it to its factory in a test module, the way SQLite's do:

    from eventstore.testing import sqlite_factory
    from eventstore.testing.machines import machine_test
    from eventstore.testing.machines.queue import QueueMachine

    TestQueueMachine = machine_test(QueueMachine, sqlite_factory())

`machine_test(..., settings=...)` replaces the machine's own budget (`default_settings()`,
which follows the loaded hypothesis profile), e.g. fewer examples on a slower backend.
"""

from __future__ import annotations

import unittest
from typing import Any, ClassVar, TypeVar, cast

from hypothesis import settings as Settings
from hypothesis.stateful import RuleBasedStateMachine

import eventstore
from eventstore.testing import Backend, BackendFactory

__all__ = ["BackendMachine", "machine_test"]

M = TypeVar("M", bound="BackendMachine")


class BackendMachine(RuleBasedStateMachine):
    """A state machine whose stores come from `backend_factory` (bound by `machine_test`)."""

    backend_factory: ClassVar[BackendFactory | None] = None

    def open_backend(self, clock: eventstore.ManualClock) -> Backend:
        """A backend on a fresh store whose handles read `clock`; `self.backend` is set."""
        factory = type(self).backend_factory
        if factory is None:
            raise TypeError(f"{type(self).__name__} has no backend: run it through "
                            "eventstore.testing.machines.machine_test(machine, factory)")
        self.backend = factory(clock)
        return self.backend

    def teardown(self) -> None:
        """Close every handle of the example's backend (and drop its store)."""
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()

    @classmethod
    def default_settings(cls) -> Settings:
        """The machine's budget on SQLite, read when `machine_test` binds it (so that it
        follows the hypothesis profile loaded by then)."""
        return Settings()


def machine_test(machine: type[M], factory: BackendFactory, settings: Settings | None = None,
                 name: str | None = None) -> type[unittest.TestCase]:
    """`machine` bound to `factory`, as the unittest TestCase pytest collects.

    The machine class itself is not changed: a subclass carries the factory, so one
    machine can be bound to several backends in one session. `settings` defaults to the
    machine's `default_settings()`."""
    attrs: dict[str, Any] = {"backend_factory": staticmethod(factory), "__module__": machine.__module__}
    bound = cast("type[BackendMachine]", type(name or f"{machine.__name__}Bound", (machine,), attrs))
    case = bound.TestCase
    case.settings = settings if settings is not None else machine.default_settings()
    return case
