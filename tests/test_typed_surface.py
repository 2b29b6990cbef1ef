"""The typed public surface: facades are typed properties of the Store (no dynamic lookup),
`@eventstore.event` is a dataclass transform, and extension facades are reached by name."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.store import StoreContext

FACADES = ("sessions", "leases", "queue", "inputs", "attachments", "artifacts", "processes", "triggers",
           "effects")


def test_the_store_has_no_dynamic_attribute_lookup_so_a_misspelt_facade_is_an_error():
    """A type checker sees every facade (no __getattr__ fallback), and a typo fails at runtime too."""
    assert not hasattr(eventstore.Store, "__getattr__")
    with eventstore.open(":memory:") as store, pytest.raises(AttributeError):
        store.queu  # type: ignore[attr-defined]  # noqa: B018


def test_each_facade_property_is_annotated_with_the_class_it_returns():
    """`store.queue` is typed `Queue`, and so on: the annotation names the class actually built."""
    with eventstore.open(":memory:") as store:
        for name in FACADES:
            annotation = getattr(StoreContext, name).func.__annotations__["return"]
            built = getattr(store, name)
            assert annotation == type(built).__name__, name
            assert type(built).__module__.startswith("eventstore."), name
            assert getattr(store, name) is built, f"{name} is built once per store"


def test_a_time_travel_view_builds_its_own_read_only_facades():
    """`store.at(p).queue` is a facade over the view, not the store's own facade."""
    with eventstore.open(":memory:") as store:
        view = store.at(0)
        assert view.queue is not store.queue and view.queue.ctx is view
        view.close()


def test_the_event_decorator_is_a_dataclass_transform():
    """`@eventstore.event` carries typing.dataclass_transform, so `NoteAdded("hello")` type-checks."""
    spec = getattr(eventstore.event, "__dataclass_transform__", None)
    assert spec is not None
    # Python 3.11 keeps the newer frozen_default keyword under "kwargs".
    assert spec.get("frozen_default", spec["kwargs"].get("frozen_default")) is True


def test_an_extension_facade_is_reached_by_name_and_an_unknown_name_is_a_typed_error():
    """`register_facade(name, factory)` makes `store.facade(name)` build it once; unknown names raise."""

    class Notes:
        def __init__(self, ctx: StoreContext) -> None:
            self.ctx = ctx

    eventstore.register_facade("test_notes", Notes)
    with eventstore.open(":memory:") as store:
        notes = store.facade("test_notes")
        assert isinstance(notes, Notes) and notes.ctx is store and store.facade("test_notes") is notes
        with pytest.raises(eventstore.InvalidArgument, match="no_such_facade"):
            store.facade("no_such_facade")
