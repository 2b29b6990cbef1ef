"""describe.templates(): sentences registered as templates over an event's fields."""

from __future__ import annotations

import pytest

import eventstore
from eventstore.debug import describe_events as describe_module
from eventstore.debug.describe_events import describe, templates
from eventstore.errors import InvalidArgument
from eventstore.log import RecordedEvent
from tests import debug_store


@eventstore.event("debugtest.templated")
class Templated:
    """An event of this file's own: a name, some ids and a count."""

    name: str
    item_ids: tuple[str, ...]
    retries: int


@pytest.fixture(autouse=True)
def _own_renderers(monkeypatch):
    """Each test registers into a copy, so the process's renderers stay as they were."""
    monkeypatch.setattr(describe_module, "_RENDERERS", dict(describe_module._RENDERERS))


def _note(text: str, ref: str | None = None) -> RecordedEvent:
    return RecordedEvent(1, "notes", 1, "debugtest.note", 1, 0, debug_store.Note(text, ref))


def test_a_template_fills_in_fields_through_the_helpers_its_specs_name():
    templates({"debugtest.templated": "{name!r}: {item_ids:count item} ({item_ids:ids batch/batches}), "
                                      "{retries:plural retry/retries}, first {item_ids:ids!r}"})
    one = RecordedEvent(1, "t", 1, "debugtest.templated", 1, 0, Templated("n", ("qwb:" + "ab" * 16,), 1))
    assert describe(one) == "'n': 1 item (batch qwb:abababab…), 1 retry, first 'qwb:abababab…'"
    four = RecordedEvent(1, "t", 1, "debugtest.templated", 1, 0, Templated("m", ("a", "b", "c", "d"), 2))
    assert describe(four) == "'m': 4 items (batches a, b, c and 1 more), 2 retries, first 'a, b, c and 1 more'"


def test_a_template_with_an_unknown_helper_is_refused_and_registers_nothing():
    with pytest.raises(InvalidArgument, match=r"debugtest\.bad: \{text\}: format spec 'bogus'"):
        templates({"debugtest.good": "{text}", "debugtest.bad": "{text:bogus}"})
    assert "debugtest.good" not in describe_module.registered_types()


@pytest.mark.parametrize("template", ["{text:count}", "{text:short x}", "{text[0]}", "{}", "{text:>5}", "{text"])
def test_a_malformed_template_is_refused_naming_the_type(template):
    with pytest.raises(InvalidArgument, match=r"describe template of debugtest\.note"):
        templates({"debugtest.note": template})


def test_a_template_naming_a_field_the_event_lacks_falls_back_to_the_fields():
    templates({"debugtest.note": "note {missing}"})
    assert describe(_note("hello")) == "text='hello', ref=None"
