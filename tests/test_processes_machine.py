"""The process registry state machine (eventstore.testing.machines.processes) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.processes import ProcessMachine

TestProcessMachine = machine_test(ProcessMachine, sqlite_factory())
