"""Event classes: registration under a stable type name and schema version, and upcasting.

An event class is an attrs frozen class registered with::

    @eventstore.event("session.created", schema=1)
    class SessionCreated:
        session_id: str
        name: str

The type name is what the log stores (never a Python import path), so classes can be
moved or renamed freely. When a class changes shape, bump ``schema`` and register an
upcaster from the old version; reading an old row runs the upcasters in order::

    @eventstore.upcaster("session.created", from_schema=1)
    def _add_name(fields: dict) -> dict:
        return {**fields, "name": fields["session_id"]}
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, TypeVar, dataclass_transform

import attr
import attrs

from . import codec
from .errors import DecodeError, EventTypeError, InvalidArgument, MissingUpcaster, UnknownEventType

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.define(eq=False)
class EventType:
    """What the registry knows of one event type: its class, schema and upcasters."""

    name: str
    schema: int
    cls: type
    upcasters: dict[int, Upcaster] = attrs.field(factory=dict)

    def encode(self, event: Any) -> bytes:
        """Encode an instance of the class to msgpack bytes (not yet compressed)."""
        try:
            plain = codec.class_codec(self.cls).to_plain(event)
        except codec.ShapeError as exc:
            raise InvalidArgument(f"event {self.name}: field {exc}") from None
        try:
            return codec.pack(plain)
        except InvalidArgument as exc:
            # The annotation check passed but msgpack cannot carry a value (an int beyond
            # 64 bits, a lone surrogate, an object in an Any field): name the field.
            for field, value in plain.items():
                try:
                    codec.pack(value)
                except InvalidArgument:
                    raise InvalidArgument(f"event {self.name}: field {field}: {exc}") from None
            raise InvalidArgument(f"event {self.name}: {exc}") from None

    def decode_plain(self, plain: Any, schema: int, position: int | None, stream: str | None) -> Any:
        """Build the current class from a decoded map written at `schema`, upcasting first."""
        if schema != self.schema:
            if schema > self.schema:
                raise DecodeError(
                    f"event {self.name} was written at schema {schema}, newer than this code's "
                    f"{self.schema}",
                    position=position,
                    stream=stream,
                )
            for version in range(schema, self.schema):
                up = self.upcasters.get(version)
                if up is None:
                    raise MissingUpcaster(
                        f"event {self.name} schema {schema}: no upcaster from schema {version} "
                        f"to {version + 1}",
                        position=position,
                        stream=stream,
                    )
                if plain.__class__ is not dict:
                    break
                try:
                    plain = up(plain)
                except Exception as exc:  # the stored fields are not what the upcaster expects
                    raise DecodeError(
                        f"event {self.name}: the upcaster from schema {version} failed on the stored "
                        f"fields ({type(exc).__name__}: {exc})",
                        position=position,
                        stream=stream,
                    ) from exc
        try:
            return codec.class_codec(self.cls).from_plain(plain)
        except codec.ShapeError as exc:
            raise codec.wrap_decode_error(exc, position, stream, f"event {self.name} payload") from None


class EventRegistry:
    """Maps type names to event classes and back. The store uses `REGISTRY` by default."""

    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type, EventType] = {}
        self.generation = 0
        """Counts registrations, so that caches of class -> registration know when to refresh."""

    def register(self, cls: type, name: str, schema: int = 1) -> EventType:
        """Register an attrs class under a dotted type name and schema version."""
        if not TYPE_NAME.match(name):
            raise EventTypeError(
                f"event type name {name!r} must be dotted lower-case words, like 'session.created'"
            )
        if not isinstance(schema, int) or schema < 1:
            raise EventTypeError(f"event type {name!r}: schema must be an integer >= 1, got {schema!r}")
        if not attrs.has(cls):
            raise EventTypeError(f"event type {name!r}: {cls.__name__} is not an attrs class")
        existing = self._by_name.get(name)
        if existing is not None and existing.cls is not cls:
            # Re-registering under the same name is allowed only for a class of the same
            # qualified name (a module reloaded in tests); anything else is a clash.
            if existing.cls.__qualname__ != cls.__qualname__ or existing.cls.__module__ != cls.__module__:
                raise EventTypeError(
                    f"event type {name!r} is already registered to {existing.cls.__qualname__}"
                )
            self._by_class.pop(existing.cls, None)
        upcasters = existing.upcasters if existing else {}
        et = EventType(name=name, schema=schema, cls=cls, upcasters=upcasters)
        self._by_name[name] = et
        self._by_class[cls] = et
        self.generation += 1
        return et

    def add_upcaster(self, name: str, from_schema: int, fn: Upcaster) -> None:
        """Register `fn` to turn fields written at `from_schema` into `from_schema + 1`."""
        et = self._by_name.get(name)
        if et is None:
            raise EventTypeError(f"cannot add an upcaster: event type {name!r} is not registered")
        et.upcasters[from_schema] = fn

    def for_class(self, cls: type) -> EventType:
        """The registration of an event class; EventTypeError if it has none."""
        et = self._by_class.get(cls)
        if et is None:
            raise EventTypeError(
                f"{cls.__qualname__} is not a registered event class (decorate it with @eventstore.event)"
            )
        return et

    def for_name(self, name: str, position: int | None = None, stream: str | None = None) -> EventType:
        """The registration of a type name; UnknownEventType (naming the position) if none."""
        et = self._by_name.get(name)
        if et is None:
            raise UnknownEventType(f"unknown event type {name!r}", position=position, stream=stream)
        return et

    def names(self) -> list[str]:
        """All registered type names, sorted."""
        return sorted(self._by_name)

    def types(self) -> Iterable[EventType]:
        """All registrations."""
        return list(self._by_name.values())


REGISTRY = EventRegistry()
"""The default registry that `@event` writes to and stores read from."""


_C = TypeVar("_C", bound=type)


# dataclass_transform tells type checkers that the decorated class gets an attrs-made
# __init__ from its annotated fields (frozen), so `NoteAdded("hello")` type-checks.
@dataclass_transform(frozen_default=True, field_specifiers=(attrs.field, attr.ib))
def event(name: str, schema: int = 1, *, registry: EventRegistry | None = None) -> Callable[[_C], _C]:
    """Class decorator: make the class attrs-frozen (if it is not already) and register it."""

    def deco(cls: _C) -> _C:
        if not attrs.has(cls):
            # Dict-backed rather than slotted: decoding can then adopt msgpack's map as the
            # instance's __dict__ in one step (see codec.ClassCodec), which is most of what
            # reading an event costs beyond msgpack itself.
            cls = attrs.frozen(cls, slots=False)
            setattr(cls, "__eventstore_plain_dict__", cls)  # noqa: B010 (cls is typed as a TypeVar of type)
        (registry or REGISTRY).register(cls, name, schema)
        return cls

    return deco


def upcaster(name: str, from_schema: int, *, registry: EventRegistry | None = None) -> Callable[[Upcaster], Upcaster]:
    """Function decorator: register an upcaster for `name` from `from_schema` to the next."""

    def deco(fn: Upcaster) -> Upcaster:
        (registry or REGISTRY).add_upcaster(name, from_schema, fn)
        return fn

    return deco
