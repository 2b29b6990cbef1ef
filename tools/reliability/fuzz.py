"""Hostile payloads: rows written straight into the events table, then read back.

A row's payload is planted with plain SQL (as a tampered or imported file would hold it)
under the type name of a registered domain event, then read every way the store reads:
`get` (one row), `read_all` (the page decoder's fast path), `read_stream`, and the raw
variants. Every read must end in a decoded event or a typed error (a StoreError
subclass), within the configured limits: the store is opened with
`Limits(max_payload_bytes=1 MiB, max_decompressed_bytes=1 MiB)` and each read must take
under a second.

Kinds of payload (`cases`): random bytes; msgpack of the wrong shape for the row's event
class (missing, extra and wrong-typed fields, wrong containers); nesting bombs (arrays or
maps nested thousands deep); lz4 blocks whose size prefix claims gigabytes, or that are
truncated or garbage; a payload bigger than the limit stored uncompressed; and an
*amplification* block: a small lz4 row that inflates to the limit and decodes into
hundreds of thousands of objects (measured, see docs/reliability.md).

The libFuzzer target (`atheris_main`) drives the same decoder with coverage guidance
when atheris is installed.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Iterator

import attrs
import lz4.block
import msgpack

import eventstore

from .common import Budget, Result, worker_command

LIMIT = 1024 * 1024
"""The payload limits of the fuzzed store (1 MiB encoded and decompressed)."""
SLOW_S = 1.0


@attrs.frozen
class Verdict:
    """How reading one planted row ended."""

    kind: str
    """'decoded', 'typed' or 'untyped' (the worst over every way of reading)."""
    detail: str
    seconds: float


class Planter:
    """A scratch store whose rows the fuzzer writes directly, then reads back."""

    def __init__(self, path: str) -> None:
        self.store = eventstore.open(path, synchronous="normal",
                                     limits=eventstore.Limits(LIMIT, LIMIT), projections=[])
        self.types = sorted(eventstore.EVENTS.names())
        self.position = self.store.last_position()

    def plant(self, type_name: str, schema: int, flags: int, payload: bytes | None) -> int:
        """Insert one row (not chained: the chain is not what is tested here)."""
        self.position += 1
        p = self.position
        with self.store.transaction():
            self.store.db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)",
                                  (p, f"fuzz:{p}", 1, type_name, schema, 0, flags, payload, bytes(32)))
        self.store.log.invalidate_cache()
        return p

    def read(self, position: int) -> Verdict:
        """Read the row every way; the verdict is the worst outcome."""
        s = self.store
        worst, detail = "decoded", ""
        started = time.monotonic()
        reads = (
            ("get", lambda: s.get(position)),
            ("get raw", lambda: s.log.get(position, raw=True)),
            ("read_all", lambda: list(s.read_all(position, to_position=position))),
            ("read_all raw", lambda: list(s.read_all(position, to_position=position, raw=True))),
            ("read_stream", lambda: list(s.read_stream(f"fuzz:{position}"))),
        )
        for name, fn in reads:
            try:
                fn()
            except eventstore.StoreError as exc:
                if worst == "decoded":
                    worst, detail = "typed", f"{name}: {type(exc).__name__}"
            except RecursionError as exc:  # counted as untyped, reported apart
                worst, detail = "untyped", f"{name}: RecursionError {str(exc)[:80]}"
            except Exception as exc:
                worst, detail = "untyped", f"{name}: {type(exc).__name__}: {str(exc)[:120]}"
        return Verdict(worst, detail, time.monotonic() - started)

    def close(self) -> None:
        """Close the scratch store."""
        self.store.close()


# --- payload generators ------------------------------------------------------------------


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value (small containers, every scalar kind)."""
    pick = rng.random()
    if depth > 3 or pick < 0.5:
        return rng.choice([None, True, False, rng.randint(-2 ** 63, 2 ** 64 - 1), rng.random(), "",
                           "text", "\u00e9\u202e", rng.randbytes(rng.randint(0, 8)), -1, 0, 2 ** 31])
    if pick < 0.75:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "session_id", "owner", "payload", 1, b"k"]): random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def wrong_shape(rng: random.Random, cls: type | None) -> Any:
    """A value near the class's shape: its field names with wrong or missing values, extras."""
    names = [f.name for f in attrs.fields(cls)] if cls is not None and attrs.has(cls) else ["x"]
    pick = rng.random()
    if pick < 0.15:
        return random_value(rng)
    fields = {n: random_value(rng) for n in names if rng.random() < 0.85}
    if rng.random() < 0.3:
        fields[rng.choice(["extra", "zzz", "__class__"])] = random_value(rng)
    return fields


def depth_bomb(rng: random.Random, depth: int) -> bytes:
    """msgpack nested `depth` deep (arrays or maps), wrapped as the value of a field."""
    opener = b"\x91" if rng.random() < 0.5 else b"\x81\xa1k"
    return b"\x81\xa4text" + opener * depth + b"\xc0"


def lz4_claiming(size: int, body: bytes) -> bytes:
    """An lz4 'block' whose 4-byte prefix claims `size` bytes."""
    return size.to_bytes(4, "little") + body


def amplification(n: int) -> bytes:
    """lz4 of a msgpack array of `n` empty arrays: about 64 bytes of Python objects per byte."""
    raw = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    return lz4.block.compress(raw, store_size=True)


def cases(rng: random.Random, types: list[str]) -> Iterator[tuple[str, str, int, int, bytes | None]]:
    """(kind, type name, schema, flags, payload) forever, cycling through the kinds."""
    classes = {n: eventstore.EVENTS.for_name(n).cls for n in types}
    while True:
        t = rng.choice(types)
        schema = eventstore.EVENTS.for_name(t).schema
        yield "random bytes", t, schema, 0, rng.randbytes(rng.randint(0, 600))
        plain = wrong_shape(rng, classes[t])
        yield "wrong shape", t, schema, 0, msgpack.packb(plain, use_bin_type=True)
        data = msgpack.packb(wrong_shape(rng, classes[t]), use_bin_type=True)
        yield "wrong shape, lz4", t, schema, 1, lz4.block.compress(data, store_size=True)
        yield "nesting bomb", t, schema, 0, depth_bomb(rng, rng.choice((600, 1100, 5000, 100_000)))
        yield "lz4 claiming a huge size", t, schema, 1, lz4_claiming(rng.choice((LIMIT + 1, 2 ** 31, 2 ** 32 - 1)),
                                                                   rng.randbytes(rng.randint(0, 64)))
        yield "lz4 garbage", t, schema, 1, lz4_claiming(rng.randint(0, LIMIT), rng.randbytes(rng.randint(0, 300)))
        yield "lz4 truncated", t, schema, 1, lz4.block.compress(data, store_size=True)[:-rng.randint(1, 4)]
        yield "unknown flags or schema", t, rng.choice((0, schema + 1, 99)), rng.choice((2, 4, 255)), data
        yield "unknown type", rng.choice(("no.such_type", "x", "")), 1, 0, data


def special_cases() -> Iterator[tuple[str, str, int, int, bytes | None]]:
    """The few expensive cases, once each: oversized rows and the amplification block."""
    t = "demo.user_message"
    yield "oversized, stored uncompressed (2 MiB, limit 1 MiB)", t, 1, 0, msgpack.packb({"text": "x" * (2 * LIMIT)})
    yield "oversized, lz4 inflating past the limit", t, 1, 1, lz4.block.compress(
        msgpack.packb({"text": "x" * (2 * LIMIT)}), store_size=True)
    yield "amplification: 1 MiB of empty arrays in 4 KiB of lz4", t, 1, 1, amplification(LIMIT - 5)


def run_cases(workdir: str, seconds: float, seed: int = 3, max_cases: int | None = None) -> dict:
    """Plant and read cases for `seconds` after the special cases (or `max_cases`); counts by kind."""
    rng = random.Random(seed)
    planter = Planter(os.path.join(workdir, "fuzz.db"))
    counts: dict[str, dict[str, int]] = {}
    bad: list[str] = []
    slow = 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    peak_by_case: dict[str, int] = {}
    try:
        for kind, t, schema, flags, payload in special_cases():
            tracemalloc.reset_peak()
            v = planter.read(planter.plant(t, schema, flags, payload))
            peak_by_case[kind] = tracemalloc.get_traced_memory()[1]
            _count(counts, kind, v, bad)
        tracemalloc.stop()
        budget = Budget(seconds)
        n = 0
        for kind, t, schema, flags, payload in cases(rng, planter.types):
            if budget.expired() or (max_cases is not None and n >= max_cases):
                break
            v = planter.read(planter.plant(t, schema, flags, payload))
            slow += v.seconds > SLOW_S
            _count(counts, kind, v, bad)
            n += 1
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        planter.close()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    return {"counts": counts, "bad": bad, "slow": slow, "peaks": peak_by_case, "rss_growth_kib": rss_growth}


def _count(counts: dict, kind: str, v: Verdict, bad: list[str]) -> None:
    c = counts.setdefault(kind, {"decoded": 0, "typed": 0, "untyped": 0})
    c[v.kind] += 1
    if v.kind == "untyped":
        bad.append(f"{kind}: {v.detail}")


# --- atheris --------------------------------------------------------------------------------


def atheris_available() -> str | None:
    """None when atheris imports, else why not."""
    try:
        import atheris  # noqa: F401  (only whether it imports)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def atheris_main(seconds: float, corpus: str | None) -> int:
    """The libFuzzer target: bytes -> (type, schema, flags, payload) -> every decoder path.

    Anything but a StoreError escaping the decoder is a crash for libFuzzer, which then
    prints the input and exits non-zero. Memory is capped by libFuzzer's -rss_limit_mb.
    """
    import atheris

    # The store is imported already: instrument every loaded function (coverage guidance).
    atheris.instrument_all()
    store = eventstore.open(":memory:", limits=eventstore.Limits(LIMIT, LIMIT), projections=[])
    types = sorted(eventstore.EVENTS.names())
    decode_row, decode_page = store.log.decode_row, store.log.decode_page

    def one(data: bytes) -> None:
        if len(data) < 3:
            return
        type_name = types[data[0] % len(types)] if data[0] < 250 else "no.such_type"
        row = (1, "fuzz:1", 1, type_name, data[1] % 4, 0, data[2] % 4, data[3:])
        for fn in (lambda: decode_row(row), lambda: decode_row(row, raw=True), lambda: decode_page([row]),
                   lambda: decode_page([row], raw=True)):
            try:
                fn()
            except eventstore.StoreError:
                pass

    args = [sys.argv[0], f"-max_total_time={int(seconds)}", "-rss_limit_mb=1024", "-timeout=5",
            "-print_final_stats=1", "-max_len=8192"]
    if corpus:
        args.append(corpus)
    atheris.Setup(args, one)
    atheris.Fuzz()
    return 0


def seed_corpus(directory: str, types: list[str]) -> None:
    """Valid payloads of real domain events (from the workload), in the target's input format."""
    from .workload import Workload

    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with eventstore.open(os.path.join(tmp, "seed.db"), synchronous="normal", profile="compact") as store:
            workload = Workload(store, random.Random(5), "seed")
            for _ in range(150):
                op = workload.next_op()
                try:
                    op.run()
                except eventstore.StoreError as exc:
                    workload.observe(op, exc)
            rows = store.db.query("SELECT type, schema, flags, payload FROM events WHERE payload IS NOT NULL")
    for i, (t, schema, flags, payload) in enumerate(rows):
        if t in types:
            with open(os.path.join(directory, f"seed-{i}"), "wb") as fh:
                fh.write(bytes([types.index(t), schema, flags]) + payload)


def run_atheris(workdir: str, seconds: float) -> Result:
    """Run the libFuzzer target for `seconds` in a child process; one Result."""
    missing = atheris_available()
    if missing is not None:
        return Result("fuzz", "atheris (libFuzzer) on the decoder", 0, "runs", detail=f"not run: atheris does not "
                      f"import here ({missing}); install it with `pip install atheris`")
    from eventstore.store import load_domains

    load_domains()  # the target indexes the same sorted list of every registered type
    corpus = os.path.join(workdir, "corpus")
    seed_corpus(corpus, sorted(eventstore.EVENTS.names()))
    seeds = len(os.listdir(corpus))
    proc = subprocess.run(worker_command("atheris", "--seconds", str(seconds), "--corpus", corpus),
                          capture_output=True, text=True, timeout=seconds + 120)
    out = proc.stdout + proc.stderr
    runs = 0
    for line in out.splitlines():
        if line.startswith("stat::number_of_executed_units:"):
            runs = int(line.split(":")[-1])
    crashed = proc.returncode != 0
    detail = f"{seeds} seed payloads from the workload, {seconds:.0f}s, exit {proc.returncode}"
    if crashed:
        tail = [line for line in out.splitlines() if "Error" in line or "Exception" in line][:3]
        detail += f"; crash: {' / '.join(tail) or out[-400:]}"
    return Result("fuzz", "atheris (libFuzzer) on the decoder", runs, "runs", 0, 0, 0, int(crashed), detail)


def run(workdir: str | None = None, quick: bool = False, seconds: float | None = None,
        budget: Budget | None = None) -> list[Result]:
    """The planted-row fuzz and the atheris run."""
    budget = budget or Budget(None)
    fuzz_s = seconds if seconds is not None else (5.0 if quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="torture-fuzz-", dir=workdir) as tmp:
        report = run_cases(tmp, min(fuzz_s, budget.left()))
        total = sum(sum(c.values()) for c in report["counts"].values())
        untyped = sum(c["untyped"] for c in report["counts"].values())
        by_kind = "; ".join(f"{k}: {c['typed']} typed, {c['decoded']} decoded, {c['untyped']} untyped"
                            for k, c in report["counts"].items())
        peaks = ", ".join(f"{k}: peak {v / 2 ** 20:.0f} MiB" for k, v in report["peaks"].items())
        detail = (f"limits 1 MiB; {by_kind}; {report['slow']} reads over {SLOW_S:.0f}s; memory: {peaks}")
        if report["bad"]:
            detail += "; e.g. " + " / ".join(report["bad"][:3])
        out = [Result("fuzz", "planted payloads read back (random bytes, wrong shapes, bombs, lz4 lies)", total,
                      "rows", 0, 0, 0, untyped + report["slow"], detail)]
        out.append(run_atheris(tmp, fuzz_s if not budget.expired() else 5.0))
    return out
