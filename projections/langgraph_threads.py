"""LangGraph threads: which checkpoints, channel values and pending writes each thread has.

The rows hold no payload bytes: each points at the event (position, and the entry's
index in it) that carries the bytes, so a conversation is stored once, in the log.
The saver (`eventstore.integrations.langgraph`) reads these rows to find the events.

* `langgraph_checkpoints`: one row per (thread, namespace, checkpoint id): the event
  that holds it. That event says where each of its channel values is (its own entries,
  or refs to earlier events), so no row per channel value is needed.
* `langgraph_writes`: one row per (thread, namespace, checkpoint, task, idx).
* `langgraph_blobs`: the blob refs a thread's events hold; blob GC keeps them (roots)
  until the thread's tombstone.
"""

from __future__ import annotations

from typing import Any

from eventstore.storage import Storage

from eventstore.integrations.events import (
    CheckpointSaved,
    CheckpointsRemoved,
    ThreadCopied,
    ThreadDeleted,
    WritesSaved,
    checkpoint_id_text,
    thread_of,
)

from ._select import select_where
from .base import REGISTRY, Projection

threads = REGISTRY.register(
    Projection(
        name="langgraph",
        version=2,
        tables=("langgraph_checkpoints", "langgraph_writes", "langgraph_blobs"),
        ddl=(
            """CREATE TABLE IF NOT EXISTS langgraph_checkpoints (
                thread_id     TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                run_id        TEXT,
                position      INTEGER NOT NULL,
                PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX IF NOT EXISTS langgraph_checkpoints_run ON langgraph_checkpoints (run_id) "
            "WHERE run_id IS NOT NULL",
            """CREATE TABLE IF NOT EXISTS langgraph_writes (
                thread_id     TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                task_id       TEXT NOT NULL,
                idx           INTEGER NOT NULL,
                channel       TEXT NOT NULL,
                task_path     TEXT NOT NULL,
                position      INTEGER NOT NULL,
                entry         INTEGER NOT NULL,
                PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS langgraph_blobs (
                thread_id TEXT NOT NULL,
                ref       TEXT NOT NULL,
                PRIMARY KEY (thread_id, ref)
            ) WITHOUT ROWID""",
        ),
    )
)


@threads.on(CheckpointSaved)
def _saved(db: Storage, ev: Any) -> None:
    e: CheckpointSaved = ev.data
    thread_id = thread_of(ev.stream)
    db.execute(
        "INSERT OR REPLACE INTO langgraph_checkpoints VALUES (?,?,?,?,?)",
        (thread_id, e.ns, checkpoint_id_text(e.id), e.run, ev.position),
    )
    for entry in e.channels:
        kind, data = entry[2], entry[3]
        items = [data] if kind == "blob" else data if kind == "list" else data[3] if kind == "append" else []
        _blob_refs(db, thread_id, items)


def _blob_refs(db: Storage, thread_id: str, items: Any) -> None:
    # A serialized value is bytes, [type, bytes] or [type, ref]: only the last names a blob.
    for item in items:
        if isinstance(item, list) and isinstance(item[1], str):
            db.execute("INSERT OR IGNORE INTO langgraph_blobs VALUES (?, ?)", (thread_id, item[1]))


_REPLACE_WRITE = "INSERT OR REPLACE INTO langgraph_writes VALUES (?,?,?,?,?,?,?,?,?)"
_KEEP_WRITE = "INSERT OR IGNORE INTO langgraph_writes VALUES (?,?,?,?,?,?,?,?,?)"


@threads.on(WritesSaved)
def _writes(db: Storage, ev: Any) -> None:
    e: WritesSaved = ev.data
    for i, w in enumerate(e.writes):
        # A write of a regular channel is saved once per (task, idx): a retried task
        # repeating it changes nothing. LangGraph's special channels (idx < 0: error,
        # interrupt, resume, scheduled) keep the latest.
        db.execute(
            _REPLACE_WRITE if w[1] < 0 else _KEEP_WRITE,
            (
                e.thread_id,
                e.checkpoint_ns,
                e.checkpoint_id,
                e.task_id,
                w[1],
                w[0],
                e.task_path,
                ev.position,
                i,
            ),
        )
    _blob_refs(db, e.thread_id, [w[2] for w in e.writes])


@threads.on(CheckpointsRemoved)
def _removed(db: Storage, ev: Any) -> None:
    e: CheckpointsRemoved = ev.data
    for ns, checkpoint_id in e.checkpoints:
        key = (e.thread_id, ns, checkpoint_id)
        db.execute(
            "DELETE FROM langgraph_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
            "AND checkpoint_id = ?",
            key,
        )
        db.execute(
            "DELETE FROM langgraph_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            key,
        )


@threads.on(ThreadDeleted)
def _deleted(db: Storage, ev: Any) -> None:
    tid = ev.data.thread_id
    for table in threads.tables:
        db.execute(f"DELETE FROM {table} WHERE thread_id = ?", (tid,))


@threads.on(ThreadCopied)
def _copied(db: Storage, ev: Any) -> None:
    e: ThreadCopied = ev.data
    src, dst = e.source_thread_id, e.target_thread_id
    # The copies point at the source's events: the bytes are not duplicated, and the
    # events stay in the log whatever later happens to the source thread.
    db.execute(
        "INSERT OR REPLACE INTO langgraph_checkpoints SELECT ?, checkpoint_ns, checkpoint_id, "
        "run_id, position FROM langgraph_checkpoints WHERE thread_id = ?",
        (dst, src),
    )
    db.execute(
        "INSERT OR REPLACE INTO langgraph_writes SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx, "
        "channel, task_path, position, entry FROM langgraph_writes WHERE thread_id = ?",
        (dst, src),
    )
    db.execute(
        "INSERT OR IGNORE INTO langgraph_blobs SELECT ?, ref FROM langgraph_blobs WHERE thread_id = ?",
        (dst, src),
    )


# --- reads ---------------------------------------------------------------------------


def checkpoint_row(db: Storage, thread_id: str, ns: str, checkpoint_id: str | None) -> tuple | None:
    """(checkpoint_id, position) of one checkpoint, or of the thread's newest in `ns` when
    `checkpoint_id` is None; None when there is none."""
    if checkpoint_id is None:
        return db.one(
            "SELECT checkpoint_id, position FROM langgraph_checkpoints WHERE thread_id = ? "
            "AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id, ns),
        )
    return db.one(
        "SELECT checkpoint_id, position FROM langgraph_checkpoints WHERE thread_id = ? "
        "AND checkpoint_ns = ? AND checkpoint_id = ?",
        (thread_id, ns, checkpoint_id),
    )


def checkpoint_rows(
    db: Storage, thread_id: str | None, ns: str | None, checkpoint_id: str | None, before_id: str | None
) -> list[tuple]:
    """(thread_id, ns, checkpoint_id, position) rows, newest checkpoint id first."""
    sql, params = select_where(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, position FROM langgraph_checkpoints",
        ("thread_id = ?", thread_id),
        ("checkpoint_ns = ?", ns),
        ("checkpoint_id = ?", checkpoint_id),
        ("checkpoint_id < ?", before_id),
        order_by="checkpoint_id DESC, thread_id, checkpoint_ns",
    )
    return db.query(sql, params)


def positions(db: Storage, thread_id: str, ns: str) -> list[int]:
    """The positions of the events holding a thread's checkpoints in `ns`, newest first."""
    return [
        r[0]
        for r in db.query(
            "SELECT position FROM langgraph_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
            "ORDER BY position DESC",
            (thread_id, ns),
        )
    ]


def write_rows(db: Storage, thread_id: str, ns: str, checkpoint_id: str) -> list[tuple]:
    """(task_id, idx, task_path, position, entry) of a checkpoint's pending writes, in
    LangGraph's order (task path, task id, idx)."""
    return db.query(
        "SELECT task_id, idx, task_path, position, entry FROM langgraph_writes WHERE thread_id = ? "
        "AND checkpoint_ns = ? AND checkpoint_id = ? ORDER BY task_path, task_id, idx",
        (thread_id, ns, checkpoint_id),
    )


def has_write(db: Storage, thread_id: str, ns: str, checkpoint_id: str, task_id: str, idx: int) -> bool:
    """True when a write (task, idx) is already saved against this checkpoint."""
    return (
        db.one(
            "SELECT 1 FROM langgraph_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? "
            "AND task_id = ? AND idx = ?",
            (thread_id, ns, checkpoint_id, task_id, idx),
        )
        is not None
    )


def run_checkpoints(db: Storage, run_ids: list[str]) -> list[tuple]:
    """(thread_id, ns, checkpoint_id) of every checkpoint made by one of these runs."""
    out: list[tuple] = []
    for run_id in run_ids:
        out += db.query(
            "SELECT thread_id, checkpoint_ns, checkpoint_id FROM langgraph_checkpoints WHERE run_id = ?",
            (run_id,),
        )
    return out


def thread_checkpoints(db: Storage, thread_id: str) -> list[tuple]:
    """(ns, checkpoint_id) of every checkpoint of a thread, newest id first per namespace."""
    return db.query(
        "SELECT checkpoint_ns, checkpoint_id FROM langgraph_checkpoints WHERE thread_id = ? "
        "ORDER BY checkpoint_ns, checkpoint_id DESC",
        (thread_id,),
    )


def blob_roots(db: Storage) -> set[str]:
    """Every blob ref a live thread's events hold (blob GC must keep them)."""
    return {r[0] for r in db.query("SELECT DISTINCT ref FROM langgraph_blobs")}


def thread_ids(db: Storage) -> list[str]:
    """Every thread id with at least one checkpoint, sorted."""
    return [r[0] for r in db.query("SELECT DISTINCT thread_id FROM langgraph_checkpoints ORDER BY 1")]
