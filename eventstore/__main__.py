"""`python -m eventstore` runs the command line."""

from .cli import run

run()
