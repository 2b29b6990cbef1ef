"""The part of `EventStoreSaver` that reads checkpoints back from their events: its caches
keyed by log position, the decoding of values and heads, and the helpers that read a
LangGraph config."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, SerializerProtocol

from projections import langgraph_threads as rows

from ..errors import CorruptStore, InvalidArgument
from ..store import Store, StoreView
from . import _langgraph_codec as _head
from ._langgraph_codec import Map as _Map
from ._langgraph_codec import array_header
from ._langgraph_codec import vkey as _vkey
from .events import CheckpointSaved, checkpoint_id_text

_List = list


class EventCache:
    """The events a saver wrote or read, what it derived from them, and the checkpoints
    read back from them.

    Every cache is keyed by log position, which never changes meaning once its
    transaction committed: an entry can never be stale, whoever appends meanwhile. Each
    is bounded (least recently used out).
    """

    # Set by the saver.
    serde: SerializerProtocol
    store: Store | StoreView

    def __init__(self, log: Store, cache_size: int) -> None:
        self._log = log
        self._events: OrderedDict[int, tuple[str, int, Any]] = OrderedDict()  # (stream, version, data)
        self._items: OrderedDict[tuple[int, int], tuple[Any, ...]] = OrderedDict()
        self._maps: OrderedDict[int, _Map] = OrderedDict()
        self._cache_size = cache_size

    def _record(self, position: int) -> tuple[str, int, Any]:
        rec = self._events.get(position)
        if rec is None:
            got = self._log.get(position)
            if got is None or got.data is None:
                raise CorruptStore(
                    f"langgraph: the event at position {position} that the thread refers to is "
                    f"missing or purged"
                )
            rec = self._remember(position, got.stream, got.version, got.data)
        else:
            self._events.move_to_end(position)
        return rec

    def _remember(self, position: int, stream: str, version: int, data: Any) -> tuple[str, int, Any]:
        rec = self._events[position] = (stream, version, data)
        if len(self._events) > self._cache_size:
            self._events.popitem(last=False)
        return rec

    def _event(self, position: int) -> Any:
        return self._record(position)[2]

    def _prefetch(self, position: int) -> None:
        """Read the events of the thread before `position` in one query (a cold read of a
        long conversation follows one append per step back through them)."""
        stream, version, _ = self._record(position)
        low = max(1, version - min(self._cache_size // 2, 1024))
        for rec in self._log.read_stream(stream, low, to_version=version - 1):
            if rec.data is not None and rec.position not in self._events:
                self._remember(rec.position, rec.stream, rec.version, rec.data)

    def _map(self, position: int) -> _Map:
        """Where each channel version of the checkpoint held by this event is kept."""
        found = self._maps.get(position)
        if found is not None:
            self._maps.move_to_end(position)
            return found
        found = _Map(position, self._event(position).channels)
        self._maps[position] = found
        if len(self._maps) > self._cache_size:
            self._maps.popitem(last=False)
        return found

    def _list_items(self, position: int, index: int) -> tuple[Any, ...]:
        """The serialized items of the list held by one entry, following append bases."""
        chain: _List[tuple[int, int, _List[Any], int]] = []
        items: tuple[Any, ...] | None = None
        pos, idx = position, index
        while True:
            cached = self._items.get((pos, idx))
            if cached is not None:
                items = cached
                break
            if pos not in self._events and chain:
                self._prefetch(chain[-1][0])
            entry = self._event(pos).channels[idx]
            if entry[2] == "list":
                items = tuple(entry[3])
                break
            if entry[2] != "append" or len(chain) > 1_000_000:
                raise CorruptStore(f"langgraph: entry {idx} of the event at position {pos} is not a list")
            base_pos, base_idx, keep, suffix = entry[3]
            chain.append((pos, idx, suffix, keep))
            pos, idx = base_pos, base_idx
        self._items[(pos, idx)] = items
        for pos, idx, suffix, keep in reversed(chain):
            items = items[:keep] + tuple(suffix)
            self._items[(pos, idx)] = items
        while len(self._items) > self._cache_size:
            self._items.popitem(last=False)
        return items

    def _load(self, item: Any) -> Any:
        if isinstance(item, bytes):
            return self.serde.loads_typed(("msgpack", item))
        type_, data = item[0], item[1]
        if isinstance(data, str):
            data = self.store.blobs.get(data)
        return self.serde.loads_typed((type_, data))

    def _value(self, position: int, index: int) -> tuple[bool, Any]:
        entry = self._event(position).channels[index]
        kind = entry[2]
        if kind == "ref":
            return self._value(entry[3][0], entry[3][1])
        if kind == "empty":
            return False, None
        if kind in ("value", "blob"):
            return True, self._load(entry[3])
        items = self._list_items(position, index)
        if all(type(item) is bytes for item in items):
            # A msgpack array is its header followed by its items' encodings: one decode
            # of the whole list instead of one per item.
            return True, self._load(array_header(len(items)) + b"".join(items))
        return True, [self._load(item) for item in items]

    def _head(self, ev: CheckpointSaved) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the checkpoint without id and channel values, the metadata) of one event."""
        kept, metadata = self._load(ev.head)
        return _head.unpack(kept, ev.channels, checkpoint_id_text(ev.id)), metadata

    def _parent_id(self, ev: CheckpointSaved) -> str | None:
        """The parent checkpoint id of one event (`parent` may be the parent's position)."""
        parent = ev.parent
        if type(parent) is int:
            parent = self._event(parent).id
        return checkpoint_id_text(parent)  # type: ignore[no-any-return]

    def _tuple(self, thread_id: str, ns: str, checkpoint_id: str, position: int) -> CheckpointTuple:
        ev: CheckpointSaved = self._event(position)
        checkpoint, metadata = self._head(ev)
        checkpoint["id"] = checkpoint_id
        index: dict[tuple[str, Any], int] = {}
        for i, entry in enumerate(ev.channels):
            index.setdefault((entry[0], _vkey(entry[1])), i)
        values: dict[str, Any] = {}
        for channel, version in checkpoint.get("channel_versions", {}).items():
            i = index.get((channel, _vkey(version)), -1)
            if i >= 0:
                present, value = self._value(position, i)
                if present:
                    values[channel] = value
        checkpoint["channel_values"] = values
        writes = []
        for task_id, _idx, _path, wpos, windex in rows.write_rows(
            self.store.db, thread_id, ns, checkpoint_id
        ):
            w = self._event(wpos).writes[windex]
            writes.append((task_id, w[0], self._load(w[2])))
        parent_id = self._parent_id(ev)
        parent: RunnableConfig | None = (
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent_id}}
            if parent_id
            else None
        )
        return CheckpointTuple(
            config={
                "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
            },
            checkpoint=checkpoint,  # type: ignore[arg-type]
            metadata=metadata,  # type: ignore[arg-type]
            parent_config=parent,
            pending_writes=writes,
        )


def _thread(config: RunnableConfig) -> str:
    try:
        thread_id = config["configurable"]["thread_id"]
    except (KeyError, TypeError):
        raise InvalidArgument("langgraph config: configurable.thread_id is required") from None
    if not isinstance(thread_id, str) or not thread_id:
        raise InvalidArgument(f"langgraph config: thread_id must be a non-empty string, got {thread_id!r}")
    return thread_id


def _ns(config: RunnableConfig) -> str:
    ns = config["configurable"].get("checkpoint_ns", "")
    return ns if isinstance(ns, str) else str(ns)


def _saved_config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None
