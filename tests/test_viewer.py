"""The static session viewer (`eventstore view`), checked in headless Chromium.

The page of the demo store and of a store with every lane ("rich", tests/viewer_support.py)
is opened from disk; the tests read the tree, the timeline, the lanes, the selected
event and the state panel through the DOM, and compare them with the store's own reads.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil

import pytest
from playwright.sync_api import sync_playwright

import eventstore
from eventstore import demo
from eventstore.cli import main
from eventstore.viewer import model as vmodel
from eventstore.viewer import open_readonly, render_html
from eventstore.viewer.page import embed_json

from viewer_support import IMG_TEXT, LONG_TEXT, SCRIPT_TEXT, SID, build_rich_store, launch

DOCS_IMG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "img")


def save_screenshot(page, tmp_dir, name: str) -> str:
    """Save a screenshot under the test's tmp dir; with EVENTSTORE_DOC_IMAGES=1 also into docs/img/."""
    path = os.path.join(str(tmp_dir), name)
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 10_000
    if os.environ.get("EVENTSTORE_DOC_IMAGES") == "1":
        os.makedirs(DOCS_IMG, exist_ok=True)
        shutil.copy(path, os.path.join(DOCS_IMG, name))
    return path


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("viewer-demo") / "demo.db")
    assert demo.run(path, say=lambda _line: None) == 0
    return path


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("viewer-rich") / "rich.db")
    return path, build_rich_store(path)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def sessions_by_name(path: str) -> dict[str, str]:
    with open_readonly(path) as store:
        return {(s.meta.name or s.session_id): s.session_id for s in store.sessions.list()}


def write_page(path: str, out: str, *extra: str) -> str:
    assert main(["view", path, "-o", out, *extra]) == 0
    return out


def open_page(browser, html_path: str, session: str | None = None, height: int = 1000):
    page = browser.new_page(viewport={"width": 1500, "height": height})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto("file://" + html_path)
    page.wait_for_selector("body[data-ready]")
    if session is not None:
        page.select_option("#session-select", session)
    return page


def tree(page) -> dict[str, set[str]]:
    """Node ids of the rendered tree by mark: all, active, head, tip, tombstoned."""
    rows = page.eval_on_selector_all("#tree .node", "els => els.map(e => [e.dataset.nodeId, e.className])")
    out: dict[str, set[str]] = {k: set() for k in ("all", "active", "head", "tip", "tombstoned")}
    for node_id, cls in rows:
        out["all"].add(node_id)
        for mark in ("active", "head", "tip", "tombstoned"):
            if mark in cls.split():
                out[mark].add(node_id)
    return out


def lane_items(page, lane: str) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        f'#lanes .lane[data-lane="{lane}"] .item',
        "els => els.map(e => ({id: e.dataset.itemId, end: e.dataset.endReason || null, "
        "label: e.dataset.label || null, hidden: e.hidden}))")


def move_slider_to(page, position: int) -> None:
    """Move the slider with the keyboard (Home, then right arrows) to the stop at `position`."""
    stops = page.evaluate("viewer.stops()")
    assert position in stops, (position, stops)
    page.focus("#slider")
    page.keyboard.press("Home")
    for _ in range(stops.index(position)):
        page.keyboard.press("ArrowRight")
    assert page.get_attribute("body", "data-position") == str(position)


# --- the page itself ------------------------------------------------------------------------------


def test_view_writes_one_self_contained_page_that_loads_nothing(demo_db, browser, tmp_path):
    """`eventstore view -o` writes one file with style, code and data inline: opening it from
    disk makes no request but the file itself."""
    out = write_page(demo_db, str(tmp_path / "demo.html"))
    text = open(out, encoding="utf-8").read()
    assert "<link" not in text and " src=" not in text.split('id="viewer-data"')[0]
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto("file://" + out)
    page.wait_for_selector("body[data-ready]")
    assert requests == ["file://" + out]
    assert page.eval_on_selector_all("#session-select option", "els => els.length") == 3
    page.close()


def test_demo_view_shows_the_conversation_tree_with_branch_head_and_active_path(demo_db, browser, tmp_path):
    """The billing session's tree: every live node, the edited branch indented, the head's
    leaf marked HEAD, the active path as the store loads it, branch tips marked leaf."""
    sid = sessions_by_name(demo_db)["billing support"]
    with open_readonly(demo_db) as store:
        full = store.sessions.load(sid)
        path = store.sessions.load(sid, graph="active_path")
    page = open_page(browser, write_page(demo_db, str(tmp_path / "demo.html")), sid)
    got = tree(page)
    assert got["all"] == {n.node_id for n in full.nodes}
    assert got["head"] == {full.leaf_node_id}
    assert got["active"] == {n.node_id for n in path.nodes}
    parents = {n.parent_node_id for n in full.nodes}
    assert got["tip"] == {n.node_id for n in full.nodes} - parents
    assert len(got["tip"]) == 2  # the original third turn and its edit
    assert page.eval_on_selector_all("#tree .node .branch", "els => els.length") == 1
    assert page.errors == []
    page.click("#timeline .event >> nth=-1")
    save_screenshot(page, tmp_path, "viewer-demo.png")
    page.close()


def test_demo_view_timeline_groups_the_session_events_by_command(demo_db, browser, tmp_path):
    """The timeline lists every event of the session's stream in position order under one
    header per command, and the headers' spans are Store.command_span's."""
    sid = sessions_by_name(demo_db)[next(n for n in sessions_by_name(demo_db) if n.startswith("support-"))]
    with open_readonly(demo_db) as store:
        events = list(store.read_stream(f"session:{sid}"))
        spans = sorted({store.command_span(ev.position) for ev in events})
    page = open_page(browser, write_page(demo_db, str(tmp_path / "demo.html")), sid)
    shown = page.eval_on_selector_all("#timeline .event",
                                      "els => els.map(e => [+e.dataset.position, e.dataset.type])")
    assert shown == [[ev.position, ev.type] for ev in events]
    headers = page.eval_on_selector_all("#timeline .command", "els => els.map(e => e.textContent)")
    assert len(headers) == len(spans)
    for (first, last), text in zip(spans, headers):
        assert (f"position {first} " in text) if first == last else (f"positions {first}–{last}" in text)
    # One command claimed the input and the batches together (claim_checkpoint).
    assert any("2 events" in h for h in headers)
    page.close()


def test_demo_view_lanes_show_leases_queue_and_inputs(demo_db, browser, tmp_path):
    """Lanes: the triage session's three holdings (released, taken over by a reclaim,
    released); the queue session's four batches and one input, all completed."""
    names = sessions_by_name(demo_db)
    html = write_page(demo_db, str(tmp_path / "demo.html"))
    page = open_page(browser, html, names["incident triage"])
    leases = lane_items(page, "lease")
    assert [i["end"] for i in leases] == ["released", "reclaimed", "released"]
    assert [i["label"].split(" · ")[0] for i in leases] == ["worker-a", "worker-c", "worker-d"]
    assert [i["label"].split(" · ")[1] for i in leases] == ["fence 1", "fence 2", "fence 3"]
    queue_sid = next(sid for name, sid in names.items() if name.startswith("support-"))
    page.select_option("#session-select", queue_sid)
    with open_readonly(demo_db) as store:
        batch_ids = [e.data.batch_id for e in store.read_stream(f"session:{queue_sid}")
                     if e.type == "queue.batch_enqueued"]
    batches = lane_items(page, "queue")
    assert [b["id"] for b in batches] == batch_ids and len(batch_ids) == 4
    assert {b["end"] for b in batches} == {"completed"}
    assert [i["end"] for i in lane_items(page, "inputs")] == ["completed"]
    page.close()


def test_clicking_an_event_shows_its_payload_position_hash_and_command(demo_db, browser, tmp_path):
    """A click on a commit in the timeline shows its decoded payload, position, chain hash
    and the span of the command that wrote it."""
    sid = sessions_by_name(demo_db)["billing support"]
    with open_readonly(demo_db) as store:
        commit = [e for e in store.read_stream(f"session:{sid}") if e.type == "session.committed"][1]
        digest = bytes(store.db.scalar("SELECT hash FROM events WHERE position = ?",
                                       (commit.position,))).hex()
        first, last = store.command_span(commit.position)
    page = open_page(browser, write_page(demo_db, str(tmp_path / "demo.html")), sid)
    page.click(f'#timeline .event[data-position="{commit.position}"]')
    assert page.text_content("#detail-position") == str(commit.position)
    assert page.text_content("#detail-hash") == digest
    assert page.text_content("#detail-type") == "session.committed"
    assert f"positions {first}–{last}" in page.text_content("#detail-command")
    payload = json.loads(page.text_content("#payload"))
    assert payload["revision"] == commit.data.revision
    assert [n["id"] for n in payload["nodes"]] == [n.id for n in commit.data.nodes]
    assert "selected" in page.get_attribute(f'#timeline .event[data-position="{commit.position}"]', "class")
    page.close()


def test_slider_time_travels_the_tree_and_state_to_an_earlier_position(demo_db, browser, tmp_path):
    """Moving the slider back to the second commit shows the tree as the store loads it
    at that position (4 nodes, its leaf) and the state panel's store.at snapshot there."""
    sid = sessions_by_name(demo_db)["billing support"]
    with open_readonly(demo_db) as store:
        commits = [e.position for e in store.read_stream(f"session:{sid}") if e.type == "session.committed"]
        then = store.sessions.load(sid, at=commits[1])
    page = open_page(browser, write_page(demo_db, str(tmp_path / "demo.html")), sid)
    assert len(tree(page)["all"]) == 8
    move_slider_to(page, commits[1])
    got = tree(page)
    assert got["all"] == {n.node_id for n in then.nodes} and len(got["all"]) == 4
    assert got["head"] == {then.leaf_node_id}
    assert page.text_content("#state .exact") == f"store.at({commits[1]})"
    assert f"revision {then.head_revision} " in page.text_content("#state")
    future = page.eval_on_selector_all("#timeline .event.future", "els => els.map(e => +e.dataset.position)")
    assert future == [p for p in commits if p > commits[1]]
    assert [i["hidden"] for i in lane_items(page, "lease")] == [False]
    page.close()


# --- the rich store: tombstones, processes, hostile text, long payloads -----------------------------


def test_tombstoned_node_is_marked_and_time_travel_unmarks_it(rich, browser, tmp_path):
    """a2 is shown struck through once tombstoned; before the tombstone it is a plain
    node; before its commit it is absent."""
    path, marks = rich
    page = open_page(browser, write_page(path, str(tmp_path / "rich.html")))
    assert tree(page)["tombstoned"] == {"a2"}
    assert tree(page)["head"] == {"a3"}
    move_slider_to(page, marks["branched"])
    assert tree(page)["tombstoned"] == set() and "a2" in tree(page)["all"]
    move_slider_to(page, marks["two_nodes"])
    assert tree(page)["all"] == {"u1", "a1"}
    save_screenshot(page, tmp_path, "viewer-rich.png")
    page.close()


def test_lease_lane_shows_holder_fence_and_expiry_as_of_the_slider(rich, browser, tmp_path):
    """runtime-a's holding shows the expiry its renewal set; moved back to the acquisition,
    the expiry the claim set (30 s after the claim; the renewal a second later adds 1 s)."""
    path, _ = rich
    with open_readonly(path) as store:
        acquired, renewed = [e for e in store.read_stream(f"session:{SID}")
                             if e.type in ("session.lease_acquired", "session.lease_renewed")][:2]

    def iso(ms: int) -> str:
        at = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    page = open_page(browser, write_page(path, str(tmp_path / "rich.html")))
    first = '#lanes .lane[data-lane="lease"] .item[data-item-id="lease:1"]'
    assert page.text_content(first).startswith("runtime-a · fence 1 · expires ")  # wide enough for its label
    assert page.get_attribute(first, "data-expires") == iso(renewed.data.expires_at_ms)
    move_slider_to(page, acquired.position)
    assert page.get_attribute(first, "data-expires") == iso(acquired.data.expires_at_ms)
    assert acquired.data.expires_at_ms + 1_000 == renewed.data.expires_at_ms
    page.close()


def test_process_lane_shows_the_process_the_session_started(rich, browser, tmp_path):
    """The process registered with the session as originator has a lane item that ends
    completed, and its events are in the timeline under its own stream."""
    path, marks = rich
    page = open_page(browser, write_page(path, str(tmp_path / "rich.html")))
    procs = lane_items(page, "processes")
    assert [(p["id"], p["end"]) for p in procs] == [("rich-tool-1", "completed")]
    streams = page.eval_on_selector_all("#timeline .event .stream", "els => els.map(e => e.textContent)")
    assert set(streams) == {"process:rich-tool-1"}
    assert [(i["end"]) for i in lane_items(page, "lease")] == ["released", "released"]
    page.close()


def test_hostile_text_is_shown_as_text_and_never_runs(rich, browser, tmp_path):
    """Stored `<script>` and `"><img onerror=…>` texts appear literally in the tree, the
    header and the payload, create no element, set no flag and open no dialog."""
    path, marks = rich
    page = open_page(browser, write_page(path, str(tmp_path / "rich.html")))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click(f'#timeline .event[data-position="{marks["four_nodes"]}"]')
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.eval_on_selector_all("img", "els => els.length") == 0
    # The only scripts are the data element and the page's own code.
    assert page.eval_on_selector_all("body script", "els => els.length") == 2
    texts = page.eval_on_selector_all("#tree .node .text", "els => els.map(e => e.textContent)")
    assert SCRIPT_TEXT in texts and IMG_TEXT in texts
    assert SCRIPT_TEXT in page.text_content("#session-info")
    assert IMG_TEXT in json.loads(page.text_content("#payload"))["nodes"][1]["event"]["parts"][0]["content"]
    assert page.errors == []
    page.close()


def test_long_payload_is_cut_with_a_way_to_expand_it(rich, browser, tmp_path):
    """A 300,000-character message shows its first 2,000 characters and a "show all"
    button; expanding shows what the file holds (100,000) and says where the rest is."""
    path, marks = rich
    page = open_page(browser, write_page(path, str(tmp_path / "rich.html")))
    page.click(f'#timeline .event[data-position="{marks["branched"]}"]')
    preview = page.text_content("#payload")
    assert len(preview) < 2100 and "more characters" in preview
    button = page.text_content("#expand")
    total = int(re.search(r"show all (\d+) characters", button).group(1))
    assert total > len(LONG_TEXT)
    page.click("#expand")
    assert len(page.text_content("#payload")) == vmodel.PAYLOAD_EMBED_CHARS
    assert "eventstore serve" in page.text_content("#payload-note")
    assert page.is_hidden("#expand")
    page.close()


def test_long_timeline_renders_only_rows_in_view_and_reveals_a_clicked_item(rich, browser, tmp_path):
    """In a short window the timeline holds only the rows in view; clicking the process in
    its lane selects its registration and scrolls it into view."""
    path, marks = rich
    page = open_page(browser, write_page(path, str(tmp_path / "rich.html")), height=420)
    page.evaluate("document.querySelector('main').style.gridTemplateRows = '160px auto'")
    page.evaluate("viewer.setPosition(viewer.position())")
    page.evaluate("document.getElementById('timeline').scrollTop = 0")
    page.wait_for_timeout(100)
    with open_readonly(path) as store:
        registered = next(e.position for e in store.read_stream("process:rich-tool-1"))
    shown = page.eval_on_selector_all("#timeline .event", "els => els.map(e => +e.dataset.position)")
    assert registered not in shown
    page.click('#lanes .lane[data-lane="processes"] .item', position={"x": 1, "y": 8})
    page.wait_for_selector(f'#timeline .event.selected[data-position="{registered}"]')
    assert page.text_content("#detail-position") == str(registered)
    page.close()


# --- the model, without a browser ----------------------------------------------------------------------


def test_tree_from_graph_events_agrees_with_store_at_at_every_command(rich, demo_db):
    """The tree the page draws from the graph events has, at every slider stop, the live
    nodes and leaf that sessions.load(at=P) (store.at) reports."""
    for path in (rich[0], demo_db):
        with open_readonly(path) as store:
            for s in store.sessions.list():
                m = vmodel.session_model(store, s.session_id, snapshots=0)
                assert m["tree_check"] == []
                for p in {row[0] for row in m["events"]}:
                    loaded = store.sessions.load(s.session_id, at=p)
                    live, leaf = vmodel.tree_at(m["tree"], p)
                    assert live == ({n.node_id for n in loaded.nodes} if loaded else set()), (s.session_id, p)
                    assert leaf == (loaded.leaf_node_id if loaded else None)
                full = vmodel.session_model(store, s.session_id)
                assert full["tree_check"] == [] and full["snapshots"]


def test_snapshots_are_bounded_and_spread_over_the_commands(rich):
    """--snapshots N keeps at most N store.at snapshots, always including the last stop."""
    path, marks = rich
    with open_readonly(path) as store:
        m = vmodel.session_model(store, SID, snapshots=3)
    assert [s["position"] for s in m["snapshots"]][-1] == marks["last"]
    assert len(m["snapshots"]) == 3
    assert m["snapshots"][0]["position"] == 1


def test_embedded_json_cannot_close_its_script_element():
    """Stored text holding `</script>` stays inside the data element: <, > and & are escaped."""
    text = embed_json({"t": "</script><script>alert(1)</script>&amp;\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"t": "</script><script>alert(1)</script>&amp;\u2028"}


def test_view_of_a_store_without_sessions_says_so(browser, tmp_path):
    """A store with events but no session gives a page that loads without errors and says
    there is nothing to show."""
    path = str(tmp_path / "empty.db")
    with eventstore.open(path) as store:
        store.append("notes:1", [demo.UserMessage("hello")])
    page = open_page(browser, write_page(path, str(tmp_path / "empty.html")))
    assert page.text_content("#session-info") == "this store has no sessions"
    assert page.eval_on_selector_all("#session-select option", "els => els.length") == 0
    assert page.errors == []
    page.close()


def test_view_of_an_unknown_session_is_a_one_line_error(demo_db, tmp_path, capsys):
    """`eventstore view DB --session nope` exits 2 with one line on stderr and writes no file."""
    out = tmp_path / "x.html"
    assert main(["view", demo_db, "--session", "nope", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no session 'nope'" in err
    assert not out.exists()


def test_view_of_a_missing_file_is_a_one_line_error_and_creates_nothing(tmp_path, capsys):
    """The viewer never creates a store: a missing DB is a one-line error."""
    missing = tmp_path / "missing.db"
    assert main(["view", str(missing)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not missing.exists()


def test_render_html_names_the_chosen_sessions_only(rich):
    """render_html with session ids embeds exactly those sessions."""
    path, _ = rich
    with eventstore.open(path) as store:
        page = render_html(store, [SID], snapshots=0)
    data = json.loads(re.search(r'application/json">(.*?)</script>', page, re.S).group(1))
    assert list(data["models"]) == [SID] and data["initial"] == SID


def test_a_deleted_and_purged_session_still_has_a_page(tmp_path, browser):
    """A purged session's events keep their headers only: its page lists them (payloads
    null), its tree is empty (the nodes lived in the purged payloads), and nothing fails."""
    path = str(tmp_path / "purged.db")
    marks = build_rich_store(path)
    with eventstore.open(path) as store:
        store.sessions.delete(SID)
        store.sessions.purge(SID)
        m = vmodel.session_model(store, SID)
        events = list(store.read_stream(f"session:{SID}"))
    session_rows = [r for r in m["events"] if m["streams"][r[1]] == f"session:{SID}"]
    assert [r[0] for r in session_rows] == [e.position for e in events]
    assert {r[6] for r in session_rows} == {"null"}
    assert m["tree"]["nodes"] == [] and m["tree_check"] == []
    page = open_page(browser, write_page(path, str(tmp_path / "purged.html")))
    assert tree(page)["all"] == set()
    assert "purged" in page.text_content("#session-info")
    assert page.errors == []
    assert marks["last"] < m["last_position"]
    page.close()


def test_open_readonly_uses_the_stores_readonly_mode_when_it_has_one(rich, monkeypatch):
    """Every viewer open goes through open_readonly: with an `open(..., readonly=True)` it
    asks for it; without one it opens the existing file (never creating one)."""
    from eventstore import store as store_module

    calls: list[dict] = []
    real_open = store_module.open

    def open_with_readonly(path, *, create=True, readonly=False, **kw):
        calls.append({"create": create, "readonly": readonly})
        return real_open(path, create=create, **kw)

    monkeypatch.setattr(store_module, "open", open_with_readonly)
    with open_readonly(rich[0]) as store:
        assert store.sessions.get(SID) is not None
    assert calls == [{"create": False, "readonly": True}]
    monkeypatch.undo()
    with pytest.raises(eventstore.FileError):
        open_readonly(rich[0] + ".missing")
