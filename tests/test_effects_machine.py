"""The effect journal state machine (eventstore.testing.machines.effects) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.effects import EffectJournalMachine

TestEffectJournalMachine = machine_test(EffectJournalMachine, sqlite_factory())
