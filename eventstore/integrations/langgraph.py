"""A LangGraph checkpoint saver on the event log: `EventStoreSaver` (sync and async).

    import eventstore
    from eventstore.integrations.langgraph import EventStoreSaver

    store = eventstore.open("agent.db")
    graph = builder.compile(checkpointer=EventStoreSaver(store))

A thread is the stream `langgraph:<thread_id>`; what each event holds is described in
`eventstore.integrations.events`, and docs/integrations.md says why. Reads go
through the `langgraph` projection (`projections.langgraph_threads`), which points at the
events that hold the bytes. Values are serialized by the saver's serde (LangGraph's
`JsonPlusSerializer` unless another is passed): nothing is pickled unless it says so.

Requires the `langgraph` extra (`pip install 'lash-eventstore[langgraph]'`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any, AsyncIterator, Iterator, Sequence

import msgpack
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
)

from projections import langgraph_threads as rows

from ..errors import CorruptStore, InvalidArgument
from ..store import Store, StoreView
from .events import (
    CheckpointSaved,
    CheckpointsRemoved,
    ThreadCopied,
    ThreadDeleted,
    WritesSaved,
    thread_stream,
)

__all__ = ["EventStoreSaver", "BLOB_THRESHOLD"]

BLOB_THRESHOLD = 16 * 1024
"""Serialized values (and list items) larger than this go to `store.blobs`; events carry the ref."""

_List = list
_PRUNE_STRATEGIES = ("keep_latest", "delete")


class EventStoreSaver(BaseCheckpointSaver[int]):
    """LangGraph's `BaseCheckpointSaver` (both method sets) on an eventstore `Store`.

    The saver does not own the store: close the store yourself. One saver may be shared
    by threads and by an asyncio loop; its calls are serialized on the store's connection.
    Given a time-travel view (`store.at(position)`) it reads the threads as they were
    then and refuses writes with ReadOnlyView.
    """

    def __init__(
        self,
        store: Store | StoreView,
        *,
        serde: SerializerProtocol | None = None,
        blob_threshold: int = BLOB_THRESHOLD,
        cache_size: int = 4096,
    ) -> None:
        super().__init__(serde=serde)
        if not isinstance(store, (Store, StoreView)):
            raise InvalidArgument(f"EventStoreSaver needs an eventstore Store, got {type(store).__name__}")
        self.store = store
        self._log: Store = store.store if isinstance(store, StoreView) else store
        self.blob_threshold = blob_threshold
        # Why one lock: LangGraph's sync loop saves from a background thread while the
        # caller may read, and a Store is one connection whose transactions must not
        # interleave.
        self._lock = threading.RLock()
        # Both caches are keyed by log position, which never changes meaning: an entry
        # can never be stale, whoever appends meanwhile.
        self._events: OrderedDict[int, Any] = OrderedDict()
        self._items: OrderedDict[tuple[int, int], tuple[Any, ...]] = OrderedDict()
        self._cache_size = cache_size
        # The newest list entry this saver wrote per (thread, ns, channel): what the next
        # put of that channel appends to. Bounded like the caches (least recently used out).
        self._latest: OrderedDict[tuple[str, str, str], tuple[int, int, tuple[Any, ...]]] = OrderedDict()

    # --- encoding ------------------------------------------------------------------

    def _dump(self, value: Any) -> Any:
        """The serde's bytes alone when its type is "msgpack" (the common case, so the tag is
        not repeated in every item), else [type, bytes]; [type, ref] when the bytes went
        to the blob store."""
        type_, data = self.serde.dumps_typed(value)
        if len(data) > self.blob_threshold:
            return [type_, self.store.blobs.put(data)]
        return data if type_ == "msgpack" else [type_, data]

    def _dump_small(self, value: Any) -> Any:
        """Like `_dump`, never to the blob store (checkpoint skeletons and metadata)."""
        type_, data = self.serde.dumps_typed(value)
        return data if type_ == "msgpack" else [type_, data]

    def _load(self, item: Any) -> Any:
        if isinstance(item, bytes):
            return self.serde.loads_typed(("msgpack", item))
        type_, data = item[0], item[1]
        if isinstance(data, str):
            data = self.store.blobs.get(data)
        return self.serde.loads_typed((type_, data))

    def _entry(
        self, thread_id: str, ns: str, channel: str, version: Any, values: dict[str, Any]
    ) -> list[Any]:
        if channel not in values:
            return [channel, version, "empty", None]
        value = values[channel]
        if type(value) is not _List:
            dumped = self._dump(value)
            kind = "blob" if isinstance(dumped, list) and isinstance(dumped[1], str) else "value"
            return [channel, version, kind, dumped]
        base = self._base(thread_id, ns, channel, version)
        split = self._split_list(value, base[2] if base is not None else ())
        if split is None:  # not plain msgpack (another serde): one call per item
            keep, items = 0, tuple(self._dump(v) for v in value)
            if base is not None:
                for a, b in zip(base[2], items):
                    if a != b:
                        break
                    keep += 1
                items = items[keep:]
        else:
            keep, items = split
        if keep and base is not None:
            return [channel, version, "append", [base[0], base[1], keep, _List(items)]]
        return [channel, version, "list", _List(items)]

    def _split_list(
        self, value: list[Any], base_items: tuple[Any, ...]
    ) -> tuple[int, tuple[Any, ...]] | None:
        """(how many leading items equal `base_items`, the serialized items after them), from
        one serialization of the whole list; None when the serde's type is not "msgpack".

        A msgpack array is a header followed by each item's own encoding, so the list is
        serialized in one call (as fast as LangGraph's own savers) and cut at item
        boundaries; the prefix shared with the base list is found by comparing bytes, so
        the old messages of a conversation are never cut or copied again.
        """
        type_, data = self.serde.dumps_typed(value)
        if type_ != "msgpack":
            return None
        unpacker = msgpack.Unpacker()
        unpacker.feed(data)
        try:
            n = unpacker.read_array_header()
        except Exception:  # not an array: let the per-item path handle it
            return None
        offset = unpacker.tell()
        keep = 0
        for item in base_items:
            if keep >= n or type(item) is not bytes or not data.startswith(item, offset):
                break
            offset += len(item)
            keep += 1
        unpacker = msgpack.Unpacker()  # offsets below count from the first item not kept
        unpacker.feed(memoryview(data)[offset:])
        items: _List[Any] = []
        start = 0
        for _ in range(n - keep):
            unpacker.skip()
            end = unpacker.tell()
            chunk = data[offset + start : offset + end]
            items.append(
                chunk if len(chunk) <= self.blob_threshold else ["msgpack", self.store.blobs.put(chunk)]
            )
            start = end
        return keep, tuple(items)

    def _base(
        self, thread_id: str, ns: str, channel: str, version: Any
    ) -> tuple[int, int, tuple[Any, ...]] | None:
        """A stored list entry of this channel to append to: the newest one this saver
        wrote, else the newest in the projection (a list only)."""
        key = (thread_id, ns, channel)
        cached = self._latest.get(key)
        if cached is not None:
            # A checkpoint saved again with the same version must not append to itself.
            return None if self._event(cached[0]).channels[cached[1]][1] == version else cached
        row = rows.latest_value(self.store.db, thread_id, ns, channel)
        if row is None or row[2] == rows.version_key(version):
            return None
        kind = self._event(row[0]).channels[row[1]][2]
        if kind not in ("list", "append"):
            return None
        return row[0], row[1], self._list_items(row[0], row[1])

    # --- reading events ------------------------------------------------------------

    def _event(self, position: int) -> Any:
        ev = self._events.get(position)
        if ev is None:
            rec = self._log.get(position)
            if rec is None or rec.data is None:
                raise CorruptStore(
                    f"langgraph: the event at position {position} that a projection row points "
                    f"at is missing or purged"
                )
            ev = rec.data
            self._events[position] = ev
            if len(self._events) > self._cache_size:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(position)
        return ev

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
            entry = self._event(pos).channels[idx]
            if entry[2] == "list":
                items = tuple(entry[3])
                self._items[(pos, idx)] = items
                break
            if entry[2] != "append" or len(chain) > 1_000_000:
                raise CorruptStore(f"langgraph: entry {idx} of the event at position {pos} is not a list")
            base_pos, base_idx, keep, suffix = entry[3]
            chain.append((pos, idx, suffix, keep))
            pos, idx = base_pos, base_idx
        for pos, idx, suffix, keep in reversed(chain):
            items = items[:keep] + tuple(suffix)
            self._items[(pos, idx)] = items
        while len(self._items) > self._cache_size:
            self._items.popitem(last=False)
        return items

    def _value(self, position: int, index: int) -> tuple[bool, Any]:
        entry = self._event(position).channels[index]
        kind = entry[2]
        if kind == "empty":
            return False, None
        if kind in ("value", "blob"):
            return True, self._load(entry[3])
        items = self._list_items(position, index)
        if all(type(item) is bytes for item in items):
            # A msgpack array is its header followed by its items' encodings: one decode
            # of the whole list instead of one per item.
            return True, self._load(_array_header(len(items)) + b"".join(items))
        return True, [self._load(item) for item in items]

    def _tuple(
        self, thread_id: str, ns: str, checkpoint_id: str, parent_id: str | None, position: int
    ) -> CheckpointTuple:
        db = self.store.db
        ev: CheckpointSaved = self._event(position)
        checkpoint = self._load(ev.checkpoint)
        checkpoint["id"] = ev.checkpoint_id
        values: dict[str, Any] = {}
        for channel, version in checkpoint["channel_versions"].items():
            where = rows.value_location(db, thread_id, ns, channel, version)
            if where is None:
                continue
            present, value = self._value(where[0], where[1])
            if present:
                values[channel] = value
        checkpoint["channel_values"] = values
        writes = []
        for task_id, _idx, _path, wpos, windex in rows.write_rows(db, thread_id, ns, checkpoint_id):
            w = self._event(wpos).writes[windex]
            writes.append((task_id, w[0], self._load(w[2])))
        parent: RunnableConfig | None = (
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent_id}}
            if parent_id
            else None
        )
        return CheckpointTuple(
            config={
                "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
            },
            checkpoint=checkpoint,
            metadata=self._load(ev.metadata),
            parent_config=parent,
            pending_writes=writes,
        )

    def _writing(self) -> Any:
        """A write transaction on the store (ReadOnlyView on a time-travel view)."""
        self.store.require_writable("langgraph saver write")
        return self._log.transaction()

    # --- the sync method set -----------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names (its newest when it names no checkpoint id), or None."""
        thread_id, ns = _thread(config), _ns(config)
        with self._lock, self.store.read_transaction():
            self.store.require_fresh("langgraph")
            row = rows.checkpoint_row(self.store.db, thread_id, ns, get_checkpoint_id(config))
            if row is None:
                return None
            return self._tuple(thread_id, ns, row[0], row[1], row[2])

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of one thread (and namespace, if the config names
        one) or of all threads, metadata matching `filter`, older than `before`."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise InvalidArgument(f"list: limit must be an integer or None, got {limit!r}")
        conf = (config or {}).get("configurable", {})
        before_id = get_checkpoint_id(before) if before else None
        with self._lock, self.store.read_transaction():
            self.store.require_fresh("langgraph")
            found = rows.checkpoint_rows(
                self.store.db,
                conf.get("thread_id"),
                conf.get("checkpoint_ns"),
                conf.get("checkpoint_id"),
                before_id,
            )
            out: _List[CheckpointTuple] = []
            for thread_id, ns, checkpoint_id, parent_id, position in found:
                if limit is not None and len(out) >= limit:
                    break
                if filter:
                    metadata = self._load(self._event(position).metadata)
                    if any(metadata.get(k) != v for k, v in filter.items()):
                        continue
                out.append(self._tuple(thread_id, ns, checkpoint_id, parent_id, position))
        # Built inside one read transaction (a consistent snapshot), handed out after it.
        return iter(out)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Append one `langgraph.checkpoint_saved` event: the checkpoint, its metadata and
        the values of the channels in `new_versions` only."""
        thread_id, ns = _thread(config), config["configurable"].get("checkpoint_ns", "")
        parent_id = config["configurable"].get("checkpoint_id")
        c = dict(checkpoint)
        values: dict[str, Any] = c.pop("channel_values", {})  # type: ignore[assignment]
        del c["id"]  # the event's checkpoint_id field holds it
        md = get_checkpoint_metadata(config, metadata)
        # One write transaction: the blobs a large value needs commit with the event that
        # refers to them, or neither does.
        with self._lock, self._writing():
            entries = [self._entry(thread_id, ns, ch, v, values) for ch, v in new_versions.items()]
            ev = CheckpointSaved(
                thread_id,
                ns,
                checkpoint["id"],
                parent_id,
                _str_or_none(md.get("run_id")),
                _int_or_none(md.get("step")),
                _str_or_none(md.get("source")),
                self._dump_small(c),
                self._dump_small(md),
                entries,
            )
            result = self._log.append(thread_stream(thread_id), [ev])
            position = result.first_position
            for i, entry in enumerate(entries):
                if entry[2] in ("list", "append"):
                    items = (
                        tuple(entry[3])
                        if entry[2] == "list"
                        else self._list_items(entry[3][0], entry[3][1])[: entry[3][2]] + tuple(entry[3][3])
                    )
                    self._items[(position, i)] = items
                    while len(self._items) > self._cache_size:
                        self._items.popitem(last=False)
                    key = (thread_id, ns, entry[0])
                    self._latest[key] = (position, i, items)
                    self._latest.move_to_end(key)
                    if len(self._latest) > self._cache_size:
                        self._latest.popitem(last=False)
                else:
                    self._latest.pop((thread_id, ns, entry[0]), None)
        return {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}
        }

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Append the task's pending writes (those not already saved) as one event."""
        thread_id, ns = _thread(config), config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = config["configurable"]["checkpoint_id"]
        with self._lock, self._writing():
            # Decided under the write lock, so two savers cannot both record one write.
            out = []
            for i, (channel, value) in enumerate(writes):
                idx = WRITES_IDX_MAP.get(channel, i)
                if idx >= 0 and rows.has_write(self.store.db, thread_id, ns, checkpoint_id, task_id, idx):
                    continue
                out.append([channel, idx, self._dump(value)])
            if out:
                self._log.append(
                    thread_stream(thread_id),
                    [WritesSaved(thread_id, ns, checkpoint_id, task_id, task_path, out)],
                )

    def delete_thread(self, thread_id: str) -> None:
        """Tombstone a thread: its checkpoints and writes leave the projection (the events stay)."""
        with self._lock, self._writing():
            self._tombstone(thread_id, "delete_thread")

    def _tombstone(self, thread_id: str, reason: str) -> None:
        if rows.thread_checkpoints(self.store.db, thread_id) or self._log.stream_version(
            thread_stream(thread_id)
        ):
            self._log.append(thread_stream(thread_id), [ThreadDeleted(thread_id, reason)])
        for key in [k for k in self._latest if k[0] == thread_id]:
            del self._latest[key]

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove every checkpoint made by one of `run_ids`, and its pending writes."""
        with self._lock, self._writing():
            by_thread: dict[str, _List[_List[str]]] = {}
            for thread_id, ns, checkpoint_id in rows.run_checkpoints(self.store.db, _List(run_ids)):
                by_thread.setdefault(thread_id, []).append([ns, checkpoint_id])
            for thread_id, checkpoints in sorted(by_thread.items()):
                self._log.append(
                    thread_stream(thread_id), [CheckpointsRemoved(thread_id, checkpoints, "delete_for_runs")]
                )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Give the target thread a copy of every checkpoint and write of the source."""
        if source_thread_id == target_thread_id:
            raise InvalidArgument(f"copy_thread: source and target are the same thread {source_thread_id!r}")
        with self._lock, self._writing():
            n = len(rows.thread_checkpoints(self.store.db, source_thread_id))
            if n:
                self._log.append(
                    thread_stream(target_thread_id), [ThreadCopied(source_thread_id, target_thread_id, n)]
                )
            for key in [k for k in self._latest if k[0] == target_thread_id]:
                del self._latest[key]

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """ "keep_latest": keep each namespace's newest checkpoint per thread; "delete":
        tombstone the threads."""
        if strategy not in _PRUNE_STRATEGIES:
            raise InvalidArgument(
                f"prune: strategy must be one of {', '.join(_PRUNE_STRATEGIES)}, got {strategy!r}"
            )
        with self._lock, self._writing():
            for thread_id in thread_ids:
                if strategy == "delete":
                    self._tombstone(thread_id, "prune")
                    continue
                drop, seen = [], set()
                for ns, checkpoint_id in rows.thread_checkpoints(self.store.db, thread_id):
                    if ns in seen:
                        drop.append([ns, checkpoint_id])
                    seen.add(ns)
                if drop:
                    self._log.append(thread_stream(thread_id), [CheckpointsRemoved(thread_id, drop, "prune")])

    # --- the async method set ----------------------------------------------------
    # Each call is one short local SQLite transaction; it runs in a worker thread so
    # that an fsync never stalls the event loop.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async `get_tuple`."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async `list`."""
        found = await asyncio.to_thread(
            lambda: _List(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async `put`."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Async `put_writes`."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async `delete_thread`."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async `delete_for_runs`."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async `copy_thread`."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async `prune`."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


def _array_header(n: int) -> bytes:
    """The msgpack header of an array of n elements."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


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


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
