"""The turn inputs state machine (eventstore.testing.machines.inputs) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.inputs import InputMachine

TestInputMachine = machine_test(InputMachine, sqlite_factory())
