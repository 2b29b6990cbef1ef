"""The session execution leases state machine (eventstore.testing.machines.leases) on SQLite, with its own budget."""

from eventstore.testing import sqlite_factory
from eventstore.testing.machines import machine_test
from eventstore.testing.machines.leases import LeaseMachine

TestLeaseMachine = machine_test(LeaseMachine, sqlite_factory())
