"""The typed public surface: facades are typed properties of the Store (no dynamic lookup),
`@eventstore.event` is a dataclass transform, and extension facades are reached by name."""

from __future__ import annotations

import pathlib
import tomllib

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


def test_an_extension_facade_is_reached_by_name_and_an_unknown_name_is_a_typed_error(monkeypatch):
    """`register_facade(name, factory)` makes `store.facade(name)` build it once; unknown names raise."""
    from eventstore.facades import FACADES

    class Notes:
        def __init__(self, ctx: StoreContext) -> None:
            self.ctx = ctx

    # The registry is process-wide: monkeypatch takes the name out again afterwards, so a
    # later test on the same worker (the hostile-argument sweep of every facade) never meets it.
    monkeypatch.setitem(FACADES, "test_notes", None)
    eventstore.register_facade("test_notes", Notes)
    with eventstore.open(":memory:") as store:
        notes = store.facade("test_notes")
        assert isinstance(notes, Notes) and notes.ctx is store and store.facade("test_notes") is notes
        with pytest.raises(eventstore.InvalidArgument, match="no_such_facade"):
            store.facade("no_such_facade")


ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_no_product_module_is_exempt_from_the_type_checker():
    """pyproject.toml has no mypy override that ignores errors (or skips checking) in the
    product's own modules: every module of eventstore and projections must type-check."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(config["files"]) == {"eventstore", "projections"}
    for override in config.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        ours = [m for m in modules if m.split(".")[0] in ("eventstore", "projections")]
        if ours:
            assert not override.get("ignore_errors", False), f"ignore_errors for {ours}"
            assert override.get("follow_imports", "normal") not in ("skip", "silent"), ours


SNIPPET = """\
import eventstore
from eventstore.queue import QueuedWorkDraft


@eventstore.event("note.added")
class NoteAdded:
    text: str


def use(store: eventstore.Store, draft: QueuedWorkDraft) -> None:
    NoteAdded("hello")
    store.queue.enqueue(draft)
    store.queue.enqueu(draft)
"""


def test_mypy_reports_a_misspelt_facade_method_and_accepts_the_readme_event(tmp_path):
    """Facades are typed all the way down: `store.queue.enqueu(...)` is a mypy error (not Any),
    while `NoteAdded("hello")` and `store.queue.enqueue(draft)` type-check."""
    from mypy import api

    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    out, err, status = api.run([str(source), "--config-file", str(ROOT / "pyproject.toml"),
                                "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, (out, err)
    assert len(errors) == 1, out
    assert errors[0].startswith(f"{source}:13:") and '"Queue" has no attribute "enqueu"' in errors[0], out
