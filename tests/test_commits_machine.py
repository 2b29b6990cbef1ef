"""The runtime commits state machine (eventstore.testing.machines.commits) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.commits import CommitMachine

TestCommitMachine = machine_test(CommitMachine, sqlite_factory())
