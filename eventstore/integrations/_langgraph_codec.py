"""How `EventStoreSaver` keeps a checkpoint small in its event (see
`eventstore.integrations.events` for the event itself).

* `pack` / `unpack`: the checkpoint part of `CheckpointSaved.head`: what of a LangGraph
  checkpoint the event keeps besides its channel entries, and how it is rebuilt from it.
* `split_array`: a serialized list cut into its items, after the prefix it shares with
  the list it grew from.
* `Map`: where each channel version of a checkpoint is kept, read off its event.

A conversation saves one checkpoint per step, so every byte repeated per step counts
(docs/integrations.md, "What is stored"). `pack` leaves out what the event already says or
what LangGraph's defaults say, and `unpack` puts it back: each field is left out only
when putting it back gives the same value of the same type (tests/integrations check
the round trip on arbitrary checkpoints).
"""

from __future__ import annotations

import copy
import datetime
from typing import Any, Callable

import msgpack

from .events import HEAD_DEFAULTS

__all__ = ["pack", "unpack", "same", "split_array", "array_header", "vkey", "Map"]

_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)
_US = datetime.timedelta(microseconds=1)
_SCALAR = frozenset({int, str, float, bool, type(None)})
_WHOLE = "="  # the checkpoint kept whole (it uses one of the keys below itself)
_ABSENT = "-"  # default fields the checkpoint lacks
_TS_US = "ts_us"  # ts as microseconds since the epoch
_TS_ID = "ts_id"  # ts as microseconds after the time in the checkpoint's UUID v6 id
_RESERVED = (_WHOLE, _ABSENT, _TS_US, _TS_ID)
_UUID_EPOCH_TICKS = 0x01B21DD213814000  # 100 ns ticks from 1582-10-15 to 1970-01-01
_RESERVED_SET = frozenset(_RESERVED)
_HEAD_KEYS = (*HEAD_DEFAULTS, "channel_versions")  # listed under _ABSENT when missing
_HEAD_KEYS_SET = frozenset(_HEAD_KEYS)
_MISSING = object()


def same(a: Any, b: Any) -> bool:
    """Equal with the same type, recursively for dicts and lists (1, 1.0 and True differ)."""
    if type(a) is not type(b) or a != b:
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _ts_text(us: int) -> str:
    """What `datetime.isoformat()` gives for this time in UTC (from a naive datetime, whose
    isoformat() costs half that of an aware one)."""
    return (_EPOCH_NAIVE + us * _US).isoformat() + "+00:00"


def _ts_us(ts: Any) -> int | None:
    """`ts` as integer microseconds since the epoch, when that rebuilds the same text."""
    if type(ts) is not str or not ts.endswith("+00:00"):
        return None
    text = ts[:-6]
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    # `_ts_text` of the result is `when.isoformat()` plus the suffix: the same text, or
    # the time is kept as text.
    if when.tzinfo is not None or when.isoformat() != text:
        return None
    return (when - _EPOCH_NAIVE) // _US


def _id_us(checkpoint_id: str) -> int | None:
    """The time in a UUID v6 id (LangGraph's checkpoint ids, dashed), in microseconds since
    the epoch; None for any other id."""
    if len(checkpoint_id) != 36 or checkpoint_id[14] != "6":
        return None
    try:
        n = int(checkpoint_id.replace("-", ""), 16)
    except ValueError:
        return None
    ticks = ((n >> 80) << 12) | ((n >> 64) & 0xFFF)
    return (ticks - _UUID_EPOCH_TICKS) // 10


def _versions(entries: list[Any]) -> dict[str, Any]:
    return {e[0]: e[1] for e in entries}


def _same_versions(versions: Any, entries: list[Any]) -> bool:
    """`same(versions, _versions(entries))` for flat version maps, without the recursion."""
    derived = _versions(entries)
    return (
        type(versions) is dict
        and versions == derived
        and all(type(v) is type(derived[k]) and type(v) in _SCALAR for k, v in versions.items())
    ) or same(versions, derived)


def pack(skeleton: dict[str, Any], entries: list[Any], checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint (without id and channel values) as the event keeps it."""
    if not _RESERVED_SET.isdisjoint(skeleton):
        return {_WHOLE: skeleton}
    out: dict[str, Any] = {}
    for key, value in skeleton.items():
        default = HEAD_DEFAULTS.get(key, _MISSING)
        if default is not _MISSING:
            if value is default or same(value, default):
                continue
        elif key == "channel_versions":
            if _same_versions(value, entries):
                continue  # the entries say the same: [channel, version, ...] each
        elif key == "ts":
            us = _ts_us(value)
            if us is not None:
                # LangGraph takes the id and the ts from the clock within microseconds:
                # the difference is a byte or two where the time itself takes nine.
                base = _id_us(checkpoint_id)
                if base is None:
                    out[_TS_US] = us
                else:
                    out[_TS_ID] = us - base
                continue
        out[key] = value
    if len(skeleton) < len(_HEAD_KEYS) or not _HEAD_KEYS_SET.issubset(skeleton):
        absent = [k for k in _HEAD_KEYS if k not in skeleton]
        if absent:
            out[_ABSENT] = absent
    return out


def unpack(kept: dict[str, Any], entries: list[Any], checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint (without id and channel values) that `pack` was given."""
    if _WHOLE in kept:
        return dict(kept[_WHOLE])
    out = dict(kept)
    absent = out.pop(_ABSENT, ())
    us = out.pop(_TS_US, None)
    if us is not None:
        out["ts"] = _ts_text(us)
    after = out.pop(_TS_ID, None)
    if after is not None:
        out["ts"] = _ts_text(after + (_id_us(checkpoint_id) or 0))
    for key, value in HEAD_DEFAULTS.items():
        if key not in out and key not in absent:
            out[key] = copy.copy(value)
    if "channel_versions" not in out and "channel_versions" not in absent:
        out["channel_versions"] = _versions(entries)
    return out


def split_array(
    data: bytes,
    base_items: Callable[[], tuple[Any, ...]],
    threshold: int,
    put_blob: Callable[[bytes], str],
    base_body: tuple[memoryview, int] | None = None,
) -> tuple[int, tuple[Any, ...], memoryview | None] | None:
    """(how many leading items equal the base list's, the items after them, the array's
    body) of a msgpack array; an item longer than `threshold` goes to `put_blob` and is
    kept as ["msgpack", ref]. None when `data` is not an array.

    `base_items()` gives the base list's serialized items; it is called only when
    `base_body` does not settle the question. `base_body` is (body, item count) of the
    base list as this function returned it for that list: the body (`data` past its
    header, None when an item went to the blob store) is the concatenation of the
    array's items.

    A msgpack array is a header followed by each item's own encoding, so the list is
    serialized in one call (as fast as LangGraph's own savers) and cut at item boundaries;
    the prefix shared with the base list is found by comparing bytes, so the old messages
    of a conversation are never cut or copied again.
    """
    header = _array_length(data)
    if header is None:  # not an array: the caller serializes item by item
        return None
    n, offset = header
    keep, start_of_items = 0, offset
    if base_body is not None and base_body[1] <= n and data.startswith(base_body[0], offset):
        # The usual case, a list that grew at its end: one comparison in C, and the base
        # list's items are not even looked at.
        keep, offset = base_body[1], offset + len(base_body[0])
    else:
        items = base_items()
        try:
            whole: bytes | None = b"".join(items)  # TypeError when an item went to the blob store
        except TypeError:
            whole = None
        if whole is not None and len(items) <= n and data.startswith(whole, offset):
            keep, offset = len(items), offset + len(whole)
        else:
            for item in items:
                if keep >= n or type(item) is not bytes or not data.startswith(item, offset):
                    break
                offset += len(item)
                keep += 1
    if n - keep == 1 and len(data) - offset <= threshold:
        # One new item (a conversation's step): it is the rest of the array, no parse needed.
        return keep, (data[offset:],), memoryview(data)[start_of_items:]
    unpacker = msgpack.Unpacker()  # offsets below count from the first item not kept
    unpacker.feed(memoryview(data)[offset:])
    out: list[Any] = []
    start = 0
    whole_body = True
    for _ in range(n - keep):
        unpacker.skip()
        end = unpacker.tell()
        chunk = data[offset + start : offset + end]
        if len(chunk) <= threshold:
            out.append(chunk)
        else:
            out.append(["msgpack", put_blob(chunk)])
            whole_body = False
        start = end
    return keep, tuple(out), memoryview(data)[start_of_items:] if whole_body else None


def _array_length(data: bytes) -> tuple[int, int] | None:
    """(length, header size) of the msgpack array `data` starts with; None if it does not."""
    if not data:
        return None
    first = data[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F, 1
    if first == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    if first == 0xDD and len(data) >= 5:
        return int.from_bytes(data[1:5], "big"), 5
    return None


def array_header(n: int) -> bytes:
    """The msgpack header of an array of n elements."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def vkey(version: Any) -> tuple[type, Any]:
    """A channel version as a dict key that keeps 1, 1.0, True and "1" apart."""
    return (version.__class__, version)


class Map:
    """Where each channel version of one checkpoint is kept: (position, entry index) of the
    entry holding its value (a "ref" entry is followed to it)."""

    __slots__ = ("locs", "last")

    def __init__(self, position: int, channels: list[Any]) -> None:
        self.locs: dict[tuple[str, Any], tuple[int, int]] = {}
        self.last: dict[str, tuple[int, int]] = {}
        for i, entry in enumerate(channels):
            where = (entry[3][0], entry[3][1]) if entry[2] == "ref" else (position, i)
            self.locs.setdefault((entry[0], vkey(entry[1])), where)
            self.last[entry[0]] = where
