"""Tampering: modify stored rows the way someone editing the file would, and measure what
`verify` catches, and whether it names the right position.

Modifications (through a separate SQLite connection, each undone before the next):

* every single-byte change (XOR with a mask) of every row's payload, hash, stream and
  type bytes and of each byte of its 64-bit header integers (position, version, schema,
  recorded_at_ms, flags);
* every deleted row, every reordered pair of rows, every payload removed without a
  purge record, every changed purge digest;
* every truncated tail (the last k rows deleted) checked against an external anchor
  taken before, and a tail rewritten with the same length (a forged chain).

On a small file (a realistic domain workload of a few dozen events) every modification
is tried; on a large one (thousands of events) a random sample. A modification SQLite
itself refuses (a unique key collision) is counted apart: it never reaches the file.
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any, Iterator

import apsw
import attrs

import eventstore

from .common import Budget, Result, remove_store
from .workload import Workload

COLUMNS = ("position", "stream", "version", "type", "schema", "recorded_at_ms", "flags", "payload", "hash")
INT_FIELDS = ("version", "schema", "recorded_at_ms", "flags")
Statement = tuple[str, tuple]


@attrs.frozen
class Tampering:
    """One modification, how to undo it, and what verify must report (problem, position)."""

    kind: str
    what: str
    do: tuple[Statement, ...]
    undo: tuple[Statement, ...]
    problem: str
    position: int


@attrs.define
class Tally:
    """How many modifications were tried, caught at the right place, caught elsewhere, missed."""

    applied: int = 0
    right: int = 0
    relabelled: int = 0
    """Caught at the right position, but named as another problem (see `labels`)."""
    wrong_place: int = 0
    missed: int = 0
    refused: int = 0
    examples: list = attrs.Factory(list)
    labels: list = attrs.Factory(list)

    def add(self, other: "Tally") -> None:
        """Accumulate another tally."""
        self.applied += other.applied
        self.right += other.right
        self.relabelled += other.relabelled
        self.labels.extend(other.labels)
        self.wrong_place += other.wrong_place
        self.missed += other.missed
        self.refused += other.refused
        self.examples.extend(other.examples)


class Surgeon:
    """A separate, unsynchronised connection that applies and undoes modifications."""

    def __init__(self, path: str) -> None:
        self.conn = apsw.Connection(path)
        self.conn.set_busy_timeout(10_000)
        self.conn.execute("PRAGMA synchronous=OFF")  # speed: the harness owns the file

    def rows(self) -> list[tuple]:
        """Every event row, in position order."""
        return self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY position").fetchall()

    def run(self, statements: tuple[Statement, ...]) -> bool:
        """Apply statements in one transaction; False when SQLite refused them (constraint)."""
        try:
            with self.conn:
                for sql, params in statements:
                    self.conn.execute(sql, params)
        except apsw.ConstraintError:
            return False
        return True

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _flip(value: int, byte: int, mask: int) -> int:
    raw = bytearray(value.to_bytes(8, "big", signed=True))
    raw[byte] ^= mask
    return int.from_bytes(raw, "big", signed=True)


def _set(position: int, column: str, value: Any, as_text: bool = False) -> Statement:
    rhs = "CAST(? AS TEXT)" if as_text else "?"
    return (f"UPDATE events SET {column} = {rhs} WHERE position = ?", (value, position))


def _insert(row: tuple) -> Statement:
    return (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row)


def _swap(i: int, j: int) -> tuple[Statement, ...]:
    return (("UPDATE events SET position = -1 WHERE position = ?", (i,)),
            ("UPDATE events SET position = ? WHERE position = ?", (i, j)),
            ("UPDATE events SET position = ? WHERE position = -1", (j,)))


def reorder(i: int, j: int) -> Tampering:
    """The rows at positions i < j swapped (the same statements swap them back)."""
    return Tampering("reorder", f"swap {i} and {j}", _swap(i, j), _swap(i, j), "reordered", i)


def _gone(position: int, last: int) -> tuple[str, int]:
    """What verify with an anchor at the head reports when the row at `position` vanishes."""
    return ("missing", position) if position < last else ("truncated", last)


def byte_sites(row: tuple) -> list[tuple[str, int]]:
    """Every (column, byte index) of one row that a single-byte change can hit."""
    values = dict(zip(COLUMNS, row))
    sites = []
    for column in ("payload", "hash"):
        if values[column] is not None:
            sites += [(column, k) for k in range(len(values[column]))]
    for column in ("stream", "type"):
        sites += [(column, k) for k in range(len(values[column].encode()))]
    for column in ("position",) + INT_FIELDS:
        sites += [(column, k) for k in range(8)]
    return sites


def byte_change(row: tuple, last: int, column: str, k: int, mask: int) -> Tampering:
    """The single-byte change XOR `mask` at byte `k` of `column` in `row`."""
    values = dict(zip(COLUMNS, row))
    p = row[0]
    what = f"{column}[{k}]^{mask:#04x} at {p}"
    if column in ("payload", "hash"):
        data = bytearray(values[column])
        data[k] ^= mask
        return Tampering("byte", what, (_set(p, column, bytes(data)),), (_set(p, column, values[column]),),
                         "altered", p)
    if column in ("stream", "type"):
        data = bytearray(values[column].encode())
        data[k] ^= mask
        return Tampering("byte", what, (_set(p, column, bytes(data), True),), (_set(p, column, values[column]),),
                         "altered", p)
    if column == "position":
        new = _flip(p, k, mask)
        problem, where = ("missing", p) if new > last or p < last else _gone(p, last)
        return Tampering("byte", what, (_set(p, "position", new),),
                         (("UPDATE events SET position = ? WHERE position = ?", (p, new)),), problem, where)
    new = _flip(values[column], k, mask)
    return Tampering("byte", what, (_set(p, column, new),), (_set(p, column, values[column]),), "altered", p)


def structural(rows: list[tuple], purged: dict[int, bytes], last: int | None = None) -> Iterator[Tampering]:
    """Every deleted row, removed payload, changed purge digest and reordered pair
    (`last`: the log's last position, when `rows` are not all of it)."""
    last = rows[-1][0] if last is None else last
    for row in rows:
        p = row[0]
        problem, where = _gone(p, last)
        yield Tampering("delete", f"delete {p}", (("DELETE FROM events WHERE position = ?", (p,)),), (_insert(row),),
                        problem, where)
        if row[7] is not None:
            yield Tampering("payload", f"payload of {p} removed", (_set(p, "payload", None),),
                            (_set(p, "payload", row[7]),), "payload_missing", p)
        elif p in purged:
            digest = purged[p]
            yield Tampering("purge-digest", f"purge digest of {p} changed",
                            (("UPDATE purged_payloads SET digest = ? WHERE position = ?", (bytes(32), p)),),
                            (("UPDATE purged_payloads SET digest = ? WHERE position = ?", (digest, p)),),
                            "altered", p)
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            i, j = rows[a][0], rows[b][0]
            yield reorder(i, j)


def truncations(rows: list[tuple], ks: Any = None) -> Iterator[Tampering]:
    """Every tail of the log cut off (or the tails of lengths `ks`), against an anchor at the head."""
    last = rows[-1][0]
    for k in ks or range(1, len(rows) + 1):
        tail = rows[-k:]
        yield Tampering("truncate", f"last {k} rows cut", (("DELETE FROM events WHERE position > ?", (last - k,)),),
                        tuple(_insert(r) for r in tail), "truncated", last)


def check(store: eventstore.Store, surgeon: Surgeon, t: Tampering, anchor: Any, tally: Tally) -> None:
    """Apply `t`, verify against the anchor, classify, undo."""
    if not surgeon.run(t.do):
        tally.refused += 1
        return
    try:
        report = store.verify(anchor=anchor)
        tally.applied += 1
        if report.ok:
            tally.missed += 1
            tally.examples.append(f"MISSED {t.what}")
        elif (report.problem, report.position) == (t.problem, t.position):
            tally.right += 1
        elif report.position == t.position:
            tally.relabelled += 1
            tally.labels.append(f"{t.what}: reported as {report.problem}")
        else:
            tally.wrong_place += 1
            tally.examples.append(f"{t.what}: expected {t.problem} at {t.position}, got {report}")
    finally:
        if not surgeon.run(t.undo):
            raise RuntimeError(f"could not undo {t.what}")


def build(path: str, ops: int, seed: int) -> None:
    """A store filled by the domain workload (compact profile: some rows are lz4), with a
    deleted and purged session so that purged rows are part of the file."""
    with eventstore.open(path, profile="compact", synchronous="normal") as store:
        workload = Workload(store, random.Random(seed), f"tamper{seed}")
        for _ in range(ops):
            op = workload.next_op()
            try:
                op.run()
            except eventstore.StoreError as exc:
                workload.observe(op, exc)
        store.sessions.create("to-purge")
        store.sessions.delete("to-purge")
        store.sessions.purge("to-purge")


def _rewritten_tail(store: eventstore.Store, path: str, surgeon: Surgeon, rows: list[tuple], anchor: Any,
                    tally: Tally) -> None:
    """Cut the last rows and append as many forged ones through the API: the anchor catches it."""
    from eventstore.demo import UserMessage

    last = rows[-1][0]
    for k in range(1, min(len(rows), 5) + 1):
        assert surgeon.run((("DELETE FROM events WHERE position > ?", (last - k,)),))
        store.log.invalidate_cache()
        for _ in range(k):
            store.log.append("forged", [UserMessage("forged")])  # the log only: projections are not the point
        report = store.verify(anchor=anchor)
        tally.applied += 1
        if report.ok:
            tally.missed += 1
        elif (report.problem, report.position) == ("rewritten", last):
            tally.right += 1
        else:
            tally.wrong_place += 1
            tally.examples.append(f"rewritten tail of {k}: {report}")
        surgeon.run((("DELETE FROM events WHERE position > ?", (last - k,)),) + tuple(_insert(r) for r in rows[-k:]))
        store.log.invalidate_cache()


def run_file(path: str, sample: int | None, masks: tuple[int, ...], rng: random.Random,
             budget: Budget) -> dict[str, Tally]:
    """Tamper with one file: everything when `sample` is None, else `sample` of each kind."""
    tallies = {k: Tally() for k in ("byte", "delete", "payload", "purge-digest", "reorder", "truncate", "rewrite")}
    surgeon = Surgeon(path)
    try:
        with eventstore.open(path, synchronous="normal") as store:
            anchor = store.anchor()
            rows = surgeon.rows()
            last = rows[-1][0]
            purged = dict(surgeon.conn.execute("SELECT position, digest FROM purged_payloads").fetchall())
            if sample is None:
                changes: Iterator[Tampering] = (byte_change(row, last, c, k, m) for row in rows
                                                for c, k in byte_sites(row) for m in masks)
                others: Iterator[Tampering] = iter(list(structural(rows, purged)) + list(truncations(rows)))
            else:
                def sampled_bytes() -> Iterator[Tampering]:
                    for _ in range(sample):
                        row = rng.choice(rows)
                        column, k = rng.choice(byte_sites(row))
                        yield byte_change(row, last, column, k, rng.randint(1, 255))

                def sampled_others() -> Iterator[Tampering]:
                    for _ in range(sample):
                        a, b = sorted(rng.sample(range(len(rows)), 2))
                        yield reorder(rows[a][0], rows[b][0])
                        row = rng.choice(rows)
                        yield from (t for t in structural([row], purged, last) if t.kind != "reorder")
                        yield from truncations(rows, [rng.randint(1, min(len(rows), 50))])

                changes, others = sampled_bytes(), sampled_others()
            for t in changes:
                if budget.expired():
                    break
                check(store, surgeon, t, anchor, tallies["byte"])
            for t in others:
                if budget.expired():
                    break
                check(store, surgeon, t, anchor, tallies[t.kind])
            _rewritten_tail(store, path, surgeon, rows, anchor, tallies["rewrite"])
            final = store.verify(anchor=anchor)
            if not final.ok or surgeon.rows() != rows:
                raise RuntimeError(f"the file was not restored after tampering: {final}")
    finally:
        surgeon.close()
    return tallies


def _result(name: str, tallies: dict[str, Tally], size: int) -> Result:
    total = Tally()
    for t in tallies.values():
        total.add(t)
    parts = [f"{k} {t.right + t.relabelled}/{t.applied}" for k, t in tallies.items() if t.applied]
    found = total.right + total.relabelled
    rate = 100.0 * found / total.applied if total.applied else 0.0
    detail = (f"{size} events; detected at the right position: {rate:.2f}% ({', '.join(parts)}); "
              f"{total.refused} edits refused by SQLite constraints")
    if total.relabelled:
        detail += (f"; {total.relabelled} caught at the right position under another name "
                   f"(e.g. {total.labels[0]})")
    if total.examples:
        detail += "; " + " / ".join(total.examples[:3])
    return Result("tamper", name, total.applied, "modifications", 0, 0, total.missed + total.wrong_place, 0, detail)


def run(workdir: str | None = None, quick: bool = False, budget: Budget | None = None, seed: int = 7) -> list[Result]:
    """The small exhaustive file and the large sampled one."""
    budget = budget or Budget(None)
    rng = random.Random(seed)
    out = []
    with tempfile.TemporaryDirectory(prefix="torture-tamper-", dir=workdir) as tmp:
        small = os.path.join(tmp, "small.db")
        build(small, 6 if quick else 12, seed)
        masks = (0x01, 0x80, 0xFF) if quick else tuple(range(1, 256))
        with eventstore.open(small) as s:
            size = s.last_position()
        label = "3 masks" if quick else "all 255 values"
        out.append(_result(f"every single-byte change ({label}), deleted row, reordered pair, truncated tail: "
                           f"small file, exhaustive", run_file(small, None, masks, rng, budget.share(0.6)), size))
        remove_store(small)
        large = os.path.join(tmp, "large.db")
        build(large, 400 if quick else 4000, seed + 1)
        with eventstore.open(large) as s:
            size = s.last_position()
        out.append(_result("the same kinds, sampled: large file", run_file(large, 30 if quick else 400, (), rng,
                                                                            budget), size))
    return out
