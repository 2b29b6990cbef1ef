"""An OpenAI Agents SDK `Session` on the event log: `EventStoreSession`.

    import eventstore
    from agents import Runner
    from eventstore.integrations.openai_agents import EventStoreSession

    store = eventstore.open("agent.db")
    result = await Runner.run(agent, "hi", session=EventStoreSession("user-42", store))

Each call is an event on the stream `agents:<session_id>` (see
`eventstore.integrations.events`), so the history is auditable (`eventstore
show`, `verify`) and time-travellable (`store.at(position)`). Reads go through the
`agent_sessions` projection. Behaviour follows the SDK's `SQLiteSession`: items are
stored as JSON text, `get_items(limit)` returns the newest `limit` in order (a negative
limit, like SQLite's `LIMIT -1`, means all), `pop_item` removes the newest.

Requires the `openai-agents` extra (`pip install 'lash-eventstore[openai-agents]'`).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from typing import Any

from agents.memory.session import SessionABC
from agents.memory.session_settings import SessionSettings, coerce_session_settings, resolve_session_limit

from projections import openai_agents as rows

from ..errors import CorruptStore, InvalidArgument
from ..store import Store, StoreView
from .events import ItemPopped, ItemsAdded, SessionCleared, session_stream

__all__ = ["EventStoreSession"]


class EventStoreSession(SessionABC):
    """The Agents SDK's session protocol (async) over an eventstore `Store`.

    The session does not own the store: close the store yourself. Given a time-travel
    view (`store.at(position)`) it reads the history as it was then and refuses writes.
    """

    def __init__(
        self,
        session_id: str,
        store: Store | StoreView,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise InvalidArgument(f"session_id must be a non-empty string, got {session_id!r}")
        if not isinstance(store, (Store, StoreView)):
            raise InvalidArgument(f"EventStoreSession needs an eventstore Store, got {type(store).__name__}")
        self.session_id = session_id
        self.store = store
        self._log = store.store if isinstance(store, StoreView) else store
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self._stream = session_stream(session_id)
        # Why a lock: the SDK awaits these from one loop, but each runs in a worker
        # thread, and the Store's one connection must not interleave transactions.
        self._lock = threading.RLock()
        self._events: OrderedDict[int, list[str]] = OrderedDict()

    # --- sync bodies ---------------------------------------------------------------

    def _texts(self, position: int) -> list[str]:
        texts = self._events.get(position)
        if texts is None:
            rec = self._log.get(position)
            if rec is None or rec.data is None:
                raise CorruptStore(
                    f"agents session {self.session_id}: the event at position {position} "
                    f"holding its items is missing or purged"
                )
            texts = self._events[position] = rec.data.items
            if len(self._events) > 1024:
                self._events.popitem(last=False)
        return texts

    def get_items_sync(self, limit: int | None = None) -> list[Any]:
        """`get_items`, blocking."""
        n = resolve_session_limit(limit, self.session_settings)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise InvalidArgument(f"get_items: limit must be an integer or None, got {n!r}")
        with self._lock, self.store.read_transaction():
            self.store.require_fresh("agent_sessions")
            found = rows.newest(self.store.db, self.session_id, None if n is not None and n < 0 else n)
            return [json.loads(self._texts(p)[i]) for p, i in found]

    def add_items_sync(self, items: list[Any]) -> None:
        """`add_items`, blocking: one `agents.items_added` event."""
        if not items:
            return
        try:
            texts = [json.dumps(item) for item in items]
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"add_items on session {self.session_id}: an item is not JSON: {exc}"
            ) from None
        self.store.require_writable("agents session add_items")
        with self._lock:
            self._log.append(self._stream, [ItemsAdded(self.session_id, texts)])

    def pop_item_sync(self) -> Any:
        """`pop_item`, blocking: the newest item, removed, or None when there is none."""
        self.store.require_writable("agents session pop_item")
        with self._lock, self._log.transaction():
            # Decided under the write lock: two poppers never both take the same item.
            found = rows.newest(self.store.db, self.session_id, 1)
            if not found:
                return None
            position, index = found[0]
            item = json.loads(self._texts(position)[index])
            self._log.append(self._stream, [ItemPopped(self.session_id, position, index)])
            return item

    def clear_session_sync(self) -> None:
        """`clear_session`, blocking: one `agents.session_cleared` event (none if already empty)."""
        self.store.require_writable("agents session clear_session")
        with self._lock, self._log.transaction():
            n = rows.count(self.store.db, self.session_id)
            if n:
                self._log.append(self._stream, [SessionCleared(self.session_id, n)])

    # --- the SDK's async protocol ----------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The history oldest first; only the newest `limit` items when given."""
        return await asyncio.to_thread(self.get_items_sync, limit)

    async def add_items(self, items: list[Any]) -> None:
        """Append items to the history."""
        await asyncio.to_thread(self.add_items_sync, list(items))

    async def pop_item(self) -> Any:
        """Remove and return the newest item (None when the session is empty)."""
        return await asyncio.to_thread(self.pop_item_sync)

    async def clear_session(self) -> None:
        """Remove every item of the session."""
        await asyncio.to_thread(self.clear_session_sync)
