"""The domain laws as contract classes that every backend subclasses.

Each module here defines a `*Contract` class whose tests take a `backend` fixture (see
`eventstore.testing.Backend`). A backend's test module subclasses the contract as
`Test...` and provides the fixture; tests/conftest.py provides it for SQLite. Test names
carry the law number: `test_law_16_reentry_keeps_token_and_fence`.
"""
