"""The queued work state machine (eventstore.testing.machines.queue) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.queue import QueueMachine

TestQueueMachine = machine_test(QueueMachine, sqlite_factory())
