"""Followers on PostgreSQL: LISTEN/NOTIFY as a wake-up hint, positions as the truth.

A write transaction that inserts events notifies the store's channel (the trigger that
keeps the commit clock calls `pg_notify`); PostgreSQL delivers the notification when the
transaction commits. A follower (`EventLog.follow`, `eventstore log --follow`) listens on
its own connection, borrowed from the handle's pool, and after every wake-up, whether a
notification or its poll interval ran out, reads by position from where it stopped. A lost
notification (a dropped listener connection, a notification queue overflow) therefore
costs at most one poll interval, never an event. docs/postgres.md, "Followers".

Why a follower reads only up to the durable head: writers commit asynchronously and flush
the WAL right after (eventstore/storage/pg_txn.py), so another session can see a commit a
moment before it is on disk. A follower that acted on such an event and then saw the
server crash would have moved past a position that the restarted server hands out again.
`durable_head()` returns the newest position whose commit is flushed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import psycopg_pool

from ..errors import StoreError

__all__ = ["CommitWaiter", "FollowerPool", "channel_for"]

POOL_SIZE = 4
"""Connections a handle keeps for its followers (more followers wait for one)."""
_FLUSH_CHECKS = 20
"""How many times (1 ms apart) a follower looks for the WAL flush before forcing one."""


def channel_for(lock_key: int) -> str:
    """The notification channel of a store (from its lock key: at most 21 characters)."""
    return f"lash_{lock_key & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _reset(conn: psycopg.Connection[Any]) -> None:
    """Back to the pool: forget the follower's LISTEN."""
    conn.execute("UNLISTEN *")


class FollowerPool:
    """The connections of one store handle's followers (psycopg-pool, opened on first use).

    Why a pool: each follower needs a connection of its own to listen on (a notification
    arrives on the connection that listens, and the handle's connection is busy with the
    handle's transactions); the pool keeps a few open between follows, so a follower that
    restarts, or an async reader that follows per request, does not connect each time.
    """

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._mu = threading.Lock()

    def get(self) -> psycopg_pool.ConnectionPool[Any]:
        """The pool (opened now if it is not yet)."""
        with self._mu:
            if self._pool is None:
                self._pool = psycopg_pool.ConnectionPool(
                    self.dsn, min_size=0, max_size=POOL_SIZE, open=True, reset=_reset,
                    kwargs={"autocommit": True, "options": f"-c search_path={self.schema}"},
                    name=f"eventstore-followers-{self.schema}")
            return self._pool

    def close(self) -> None:
        """Close every pooled connection."""
        with self._mu:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class CommitWaiter:
    """One follower's connection: listens on the store's channel and finds the durable head."""

    def __init__(self, pool: FollowerPool, channel: str, durable: bool, readonly: bool) -> None:
        self.channel = channel
        self.durable = durable
        self.readonly = readonly
        self._pool = pool.get()
        try:
            self.conn: psycopg.Connection[Any] | None = self._pool.getconn(timeout=30)
            self.conn.execute(f'LISTEN "{channel}"')
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(f"follow: cannot open a listening connection ({exc})") from None
        self.wakeups = 0
        """Notifications received (for tests)."""

    def durable_head(self) -> int:
        """The newest position whose commit is flushed to the server's WAL (0: none yet)."""
        conn = self._live()
        # One statement: its snapshot is taken first, then the insert LSN is read, so the
        # LSN is past the commit record of every transaction the snapshot sees.
        row = conn.execute("SELECT coalesce(max(position), 0), pg_current_wal_insert_lsn()::text, "
                           "pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() FROM events").fetchone()
        assert row is not None
        head, lsn, flushed = row
        if flushed or not self.durable:
            return int(head)
        for _ in range(_FLUSH_CHECKS):  # the writers flush right after they commit
            time.sleep(0.001)
            if conn.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:  # type: ignore[index]
                return int(head)
        if not self.readonly:
            # Force the flush: a synchronous commit that wrote WAL waits for everything before it.
            conn.execute("SELECT pg_logical_emit_message(true, 'lash-eventstore', '')")
            return int(head)
        while not conn.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:  # type: ignore[index]
            time.sleep(0.01)  # a read-only session cannot write: the WAL writer flushes soon
        return int(head)

    def wait(self, timeout: float, stop: threading.Event | None) -> bool:
        """Wait until a notification arrives, `timeout` seconds pass or `stop` is set;
        True when woken by a notification."""
        conn = self._live()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                return False
            # In slices, so that `stop` is noticed while no commit happens.
            got = False
            for _n in conn.notifies(timeout=min(left, 0.1), stop_after=1):
                got = True
            if got:
                for _n in conn.notifies(timeout=0.0):  # drain: one read catches up on all of them
                    pass
                self.wakeups += 1
                return True

    def _live(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise StoreError("follow: the listening connection is closed")
        return self.conn

    def close(self) -> None:
        """Give the connection back to the pool."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                self._pool.putconn(conn)
            except Exception:  # noqa: BLE001 - the handle closed its pool meanwhile: just close it
                conn.close()
