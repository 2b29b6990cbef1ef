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

from ..errors import InvalidArgument, WrongExpectedVersion
from ..log import ANY
from ..store import Store, StoreView
from . import _langgraph_codec as _head
from ._langgraph_codec import Map as _Map
from ._langgraph_base import EventCache, _ns, _saved_config, _str_or_none, _thread
from ._langgraph_codec import same, split_array
from ._langgraph_codec import vkey as _vkey
from .events import (
    CheckpointSaved,
    CheckpointsRemoved,
    ThreadCopied,
    ThreadDeleted,
    WritesSaved,
    compact_id,
    thread_stream,
)

__all__ = ["EventStoreSaver", "BLOB_THRESHOLD"]

BLOB_THRESHOLD = 16 * 1024
"""Serialized values (and list items) larger than this go to `store.blobs`; events carry the ref."""

_List = list
_PRUNE_STRATEGIES = ("keep_latest", "delete")
_BODIES = 32


class EventStoreSaver(EventCache, BaseCheckpointSaver[int]):
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
        BaseCheckpointSaver.__init__(self, serde=serde)
        if not isinstance(store, (Store, StoreView)):
            raise InvalidArgument(f"EventStoreSaver needs an eventstore Store, got {type(store).__name__}")
        self.store = store
        self._log: Store = store.store if isinstance(store, StoreView) else store
        self.blob_threshold = blob_threshold
        # Why one lock: LangGraph's sync loop saves from a background thread while the
        # caller may read, and a Store is one connection whose transactions must not
        # interleave.
        self._lock = threading.RLock()
        EventCache.__init__(self, self._log, cache_size)
        # The serialized bodies of the lists written last: the next put compares against one.
        self._bodies: OrderedDict[tuple[int, int], tuple[memoryview, int]] = OrderedDict()
        # Per thread: (stream version, {namespace: (checkpoint id, position)}) of the
        # checkpoints this saver put last, while the stream is known to be at that version.
        self._heads: dict[str, tuple[int, dict[str, tuple[str, int]]]] = {}

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
        """Like `_dump`, never to the blob store (the event's head)."""
        type_, data = self.serde.dumps_typed(value)
        return data if type_ == "msgpack" else [type_, data]

    def _entry(
        self, channel: str, version: Any, values: dict[str, Any], base: _Map | None
    ) -> tuple[list[Any], tuple[memoryview, int] | None]:
        """The entry of one changed channel, and (body, item count) of its serialized list
        (if any)."""
        if channel not in values:
            return [channel, version, "empty", None], None
        value = values[channel]
        if type(value) is not _List:
            dumped = self._dump(value)
            kind = "blob" if isinstance(dumped, list) and isinstance(dumped[1], str) else "value"
            return [channel, version, kind, dumped], None
        # The parent's list of this channel: the new list is stored as an append to it.
        where = base.last.get(channel) if base is not None else None
        if where is not None and self._event(where[0]).channels[where[1]][2] not in ("list", "append"):
            where = None
        body = None
        type_, data = self.serde.dumps_typed(value)
        # One serialization of the whole list, cut at item boundaries (see split_array).
        split = (
            split_array(
                data,
                lambda: self._list_items(*where) if where is not None else (),
                self.blob_threshold,
                self.store.blobs.put,
                self._bodies.get(where) if where is not None else None,
            )
            if type_ == "msgpack"
            else None
        )
        if split is None:  # not plain msgpack (another serde): one call per item
            base_items = self._list_items(*where) if where is not None else ()
            keep, items = 0, tuple(self._dump(v) for v in value)
            for a, b in zip(base_items, items):
                if a != b:
                    break
                keep += 1
            items = items[keep:]
        else:
            keep, items, body = split
        counted = (body, keep + len(items)) if body is not None else None
        if keep and where is not None:
            return [channel, version, "append", [where[0], where[1], keep, _List(items)]], counted
        return [channel, version, "list", _List(items)], counted

    def _refs(
        self,
        thread_id: str,
        ns: str,
        checkpoint: Checkpoint,
        new_versions: ChannelVersions,
        base: _Map | None,
    ) -> list[Any]:
        """ "ref" entries for the channel versions the checkpoint has and did not change: to
        the parent's entries, else to the newest event of the thread that holds that version."""
        out = []
        for channel, version in checkpoint["channel_versions"].items():
            if channel in new_versions and same(new_versions[channel], version):
                continue
            key = (channel, _vkey(version))
            where = base.locs.get(key) if base is not None else None
            if where is None:
                where = self._find(thread_id, ns, key)
            if where is not None:
                out.append([channel, version, "ref", [where[0], where[1]]])
        return out

    def _find(self, thread_id: str, ns: str, key: tuple[str, Any]) -> tuple[int, int] | None:
        """Where the newest checkpoint of the thread that has this channel version keeps it.
        Only a put whose parent lacks a version it names (not LangGraph's own loop) asks."""
        for position in rows.positions(self.store.db, thread_id, ns):
            where = self._map(position).locs.get(key)
            if where is not None:
                return where
        return None

    def _changing(self) -> Any:
        """`_writing` for the calls that remove or copy checkpoints: they forget every
        thread's noted newest checkpoints first (the next put asks the projection)."""
        self._heads.clear()
        return self._writing()

    def _writing(self) -> Any:
        """A write command on the store (ReadOnlyView on a time-travel view). Its appends
        take no savepoint of their own: no caller here catches an error of an append
        inside it, so the command's own transaction (or savepoint) undoes a half-done one."""
        self.store.require_writable("langgraph saver write")
        return self._log.command()

    # --- the sync method set -----------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names (its newest when it names no checkpoint id), or None."""
        thread_id, ns = _thread(config), _ns(config)
        with self._lock, self.store.read_transaction():
            self.store.require_fresh("langgraph")
            row = rows.checkpoint_row(self.store.db, thread_id, ns, get_checkpoint_id(config))
            if row is None:
                return None
            return self._tuple(thread_id, ns, row[0], row[1])

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
            for thread_id, ns, checkpoint_id, position in found:
                if limit is not None and len(out) >= limit:
                    break
                if filter:
                    metadata = self._head(self._event(position))[1]
                    if any(metadata.get(k) != v for k, v in filter.items()):
                        continue
                out.append(self._tuple(thread_id, ns, checkpoint_id, position))
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
        checkpoint_id = checkpoint["id"]
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise InvalidArgument(
                f"langgraph put: checkpoint id must be a non-empty string, got {checkpoint_id!r}"
            )
        skeleton: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = skeleton.pop("channel_values", {})
        del skeleton["id"]  # the event's id field holds it
        md = get_checkpoint_metadata(config, metadata)
        args = (thread_id, ns, parent_id, checkpoint_id, skeleton, values, md, checkpoint, new_versions)
        with self._lock:
            head = self._heads.get(thread_id)
            known = head[1].get(ns) if head is not None else None
            if head is not None and known is not None and known[0] == parent_id:
                # The parent is the checkpoint this saver put last in this namespace, and
                # the stream is at the version that put (or a put_writes after it) left:
                # no event since can have removed it, so its position needs no lookup.
                # The append expects that version; should another writer have moved the
                # stream meanwhile, the whole command is undone and done again below.
                try:
                    with self._writing():
                        saved = self._put(args, known[1], head[0])
                    self._note(thread_id, ns, checkpoint_id, *saved)
                    return _saved_config(thread_id, ns, checkpoint_id)
                except WrongExpectedVersion:
                    self._heads.pop(thread_id, None)
            # One write transaction: the blobs a large value needs commit with the event
            # that refers to them, or neither does.
            with self._writing():
                saved = self._put(args, None, ANY)
            self._note(thread_id, ns, checkpoint_id, *saved)
        return _saved_config(thread_id, ns, checkpoint_id)

    def _put(
        self, args: tuple[Any, ...], parent_position: int | None, expected: int | str
    ) -> tuple[int, int, CheckpointSaved, _List[tuple[_List[Any], tuple[memoryview, int] | None]]]:
        """The body of `put` (its arguments, as `put` prepared them), inside its write
        command. `parent_position` is the parent's event when the caller knows it (then
        the append expects stream version `expected`), else None: the projection is
        asked. Returns (position, stream version, event, the entries made with their list
        bodies) for `_note`."""
        thread_id, ns, parent_id, checkpoint_id, skeleton, values, md, checkpoint, new_versions = args
        base: _Map | None = None
        parent: Any = None
        if parent_position is not None:
            parent, base = parent_position, self._map(parent_position)
        elif isinstance(parent_id, str) and parent_id:
            row = rows.checkpoint_row(self.store.db, thread_id, ns, parent_id)
            # The parent is named by the position of its event (a few bytes, not 16),
            # or by its id when the thread does not have it.
            parent = row[1] if row is not None else compact_id(parent_id)
            base = self._map(row[1]) if row is not None else None
        made = [self._entry(ch, v, values, base) for ch, v in new_versions.items()]
        entries = [entry for entry, _ in made]
        entries += self._refs(thread_id, ns, checkpoint, new_versions, base)
        ev = CheckpointSaved(
            ns,
            compact_id(checkpoint_id),
            parent,
            _str_or_none(md.get("run_id")),
            self._dump_small([_head.pack(skeleton, entries, checkpoint_id), md]),
            entries,
        )
        result = self._log.append(thread_stream(thread_id), [ev], expected_version=expected)
        return result.first_position, result.stream_version, ev, made

    def _note(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        position: int,
        version: int,
        ev: CheckpointSaved,
        made: _List[tuple[_List[Any], tuple[memoryview, int] | None]],
    ) -> None:
        """Fill the caches with a checkpoint just put, once its command is over.

        Why not inside the command: a position the log gives out is final only once its
        transaction commits. Put inside a caller's own transaction (which may yet roll
        back, and the position go to another event), the checkpoint is not noted at all.
        """
        if self.store.db.in_transaction:
            self._heads.pop(thread_id, None)
            return
        self._appended(thread_id, version, (ns, checkpoint_id, position))
        self._remember(position, thread_stream(thread_id), version, ev)
        # The items of an "append" entry are put together when a read asks for them
        # (`_list_items`): the next put compares against the body noted below instead.
        for i, entry in enumerate(ev.channels):
            if entry[2] == "list":
                self._items[(position, i)] = tuple(entry[3])
        while len(self._items) > self._cache_size:
            self._items.popitem(last=False)
        for i, (_, body) in enumerate(made):
            if body is not None:
                self._bodies[(position, i)] = body
                while len(self._bodies) > _BODIES:
                    self._bodies.popitem(last=False)

    def _appended(self, thread_id: str, version: int, saved: tuple[str, str, int] | None) -> None:
        """Note an append of this saver to the thread's stream, which is now at `version`.

        The namespaces' newest checkpoints noted before stay valid only when this append
        was the stream's next event (version + 1): then no event of anyone else came in
        between. `saved` is (namespace, checkpoint id, position) of a checkpoint it saved.
        """
        head = self._heads.get(thread_id)
        known = head[1] if head is not None and head[0] + 1 == version else {}
        if saved is not None:
            known[saved[0]] = (saved[1], saved[2])
        if known:
            self._heads[thread_id] = (version, known)
            while len(self._heads) > self._cache_size:
                self._heads.pop(next(iter(self._heads)))
        else:
            self._heads.pop(thread_id, None)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Append the task's pending writes (those not already saved) as one event."""
        thread_id, ns = _thread(config), config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = config["configurable"]["checkpoint_id"]
        with self._lock:
            with self._writing():
                # Decided under the write lock, so two savers cannot both record one write.
                out = []
                for i, (channel, value) in enumerate(writes):
                    idx = WRITES_IDX_MAP.get(channel, i)
                    if idx >= 0 and rows.has_write(self.store.db, thread_id, ns, checkpoint_id, task_id, idx):
                        continue
                    out.append([channel, idx, self._dump(value)])
                if not out:
                    return
                version = self._log.append(
                    thread_stream(thread_id), [WritesSaved(thread_id, ns, checkpoint_id, task_id, task_path, out)]
                ).stream_version
            if self.store.db.in_transaction:  # not final yet: see _note
                self._heads.pop(thread_id, None)
            else:
                self._appended(thread_id, version, None)

    def delete_thread(self, thread_id: str) -> None:
        """Tombstone a thread: its checkpoints and writes leave the projection (the events stay)."""
        with self._lock, self._changing():
            self._tombstone(thread_id, "delete_thread")

    def _tombstone(self, thread_id: str, reason: str) -> None:
        if rows.thread_checkpoints(self.store.db, thread_id) or self._log.stream_version(
            thread_stream(thread_id)
        ):
            self._log.append(thread_stream(thread_id), [ThreadDeleted(thread_id, reason)])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove every checkpoint made by one of `run_ids`, and its pending writes."""
        with self._lock, self._changing():
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
        with self._lock, self._changing():
            n = len(rows.thread_checkpoints(self.store.db, source_thread_id))
            if n:
                self._log.append(
                    thread_stream(target_thread_id), [ThreadCopied(source_thread_id, target_thread_id, n)]
                )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """ "keep_latest": keep each namespace's newest checkpoint per thread; "delete":
        tombstone the threads."""
        if strategy not in _PRUNE_STRATEGIES:
            raise InvalidArgument(
                f"prune: strategy must be one of {', '.join(_PRUNE_STRATEGIES)}, got {strategy!r}"
            )
        with self._lock, self._changing():
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
