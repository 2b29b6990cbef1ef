"""Session viewer: a 10,000-event session's page, its size, and how fast Chromium renders it.

The session is the replay benchmark's realistic one (`replay.build_session`: leases,
queued work, turn inputs, runtime commits, a tool process every 10 turns), written
through the facades, each call its own command (so the slider has a stop per command).
Measured:

* writing the page (`viewer.render_html`, what `eventstore view` does), with the default
  bound of 64 `store.at` snapshots;
* the page's size. Target: under 5 MB;
* rendering it in headless Chromium (Debian's, driven by Playwright): from `goto` of the
  file to the page marking itself ready (data parsed, tree, timeline, lanes and state
  drawn). Target: at most 2 s. The median of 3 loads in a fresh page each;
* moving the slider back to the middle of the session (tree, timeline, lanes and state
  redrawn), timed inside the page.

Run it through the harness: `python tools/bench.py --only viewer [--quick]` (quick: a
2,000-event session).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import eventstore
from eventstore.viewer import render_html

from benches import row
from benches.replay import build_session

TITLE = "Session viewer: page size and render time in headless Chromium"
SESSION_EVENTS = 10_000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _render_seconds(html_path: str, loads: int) -> tuple[float, float, dict[str, float]]:
    """(median seconds from goto to ready, median ms of one slider move, the page's own
    timings of the last load) over `loads` loads."""
    from playwright.sync_api import sync_playwright

    renders, moves, phases = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads):
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                started = time.perf_counter()
                page.goto("file://" + html_path)
                page.wait_for_selector("body[data-ready]", timeout=120_000)
                renders.append(time.perf_counter() - started)
                phases.append(page.evaluate("viewer.timings"))
                moves.append(page.evaluate(
                    "() => { const s = viewer.stops(); const t0 = performance.now(); "
                    "viewer.setPosition(s[s.length >> 1]); document.body.offsetHeight; "
                    "return performance.now() - t0; }"))
                page.close()
        finally:
            browser.close()
    return statistics.median(renders), statistics.median(moves), phases[-1]


def run(workdir: str, quick: bool) -> list[dict[str, Any]]:
    """The rows of this module (see the module docstring)."""
    events = 2_000 if quick else SESSION_EVENTS
    path = os.path.join(workdir, "viewer.db")
    clock = eventstore.ManualClock(1_700_000_000_000)
    with eventstore.open(path, clock=clock, synchronous="normal") as store:
        build_session(store, clock, "S000000000", events, one_transaction=False)
        count = store.stream_version("session:S000000000")
        started = time.perf_counter()
        page = render_html(store, ["S000000000"])
        write_s = time.perf_counter() - started
    html_path = os.path.join(workdir, "viewer.html")
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write(page)
    size_mb = os.path.getsize(html_path) / 1_000_000
    render_s, move_ms, last = _render_seconds(html_path, 3)
    what = f"{count:,}-event session"
    split = (f"in the page (ms since navigation, last load): script starts {last['start']:.0f}, "
             f"data parsed {last['parsed']:.0f}, lanes built {last['lanes']:.0f}, ready {last['ready']:.0f}")
    return [
        row(f"write the page ({what}, 64 store.at snapshots)", write_s, "s",
            note="viewer.render_html: reads, command spans, tree, lanes, snapshots"),
        row(f"page size ({what})", size_mb, "MB", target="value <= 5"),
        row(f"render in headless Chromium ({what})", render_s, "s", target="value <= 2",
            note="goto of the file to the page's ready mark (after the load event); median of 3; " + split),
        row(f"slider move to the middle ({what})", move_ms, "ms",
            note="tree, timeline, lanes and state redrawn; timed in the page"),
    ]
