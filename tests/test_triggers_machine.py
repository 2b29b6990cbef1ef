"""The trigger store state machine (eventstore.testing.machines.triggers) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.triggers import TriggerStoreMachine

TestTriggerStoreMachine = machine_test(TriggerStoreMachine, sqlite_factory())
