"""`eventstore serve`: the same views over HTTP, live updates, and what the server refuses.

The server runs as a subprocess (`python -m eventstore serve DB --port 0`) on loopback;
the page is driven in headless Chromium like the static one (tests/test_viewer.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

from eventstore.cli import main
from eventstore.viewer import open_readonly

from test_viewer import lane_items, move_slider_to, save_screenshot, tree
from viewer_support import IMG_TEXT, LONG_TEXT, SCRIPT_TEXT, SID, append_turn, build_rich_store, launch


class Server:
    """A running `eventstore serve` subprocess and its URL."""

    def __init__(self, path: str, *extra: str) -> None:
        command = [sys.executable, "-m", "eventstore", "serve", path, "--port", "0", *extra]
        self.proc = subprocess.Popen(command,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert " at http://" in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = line.split(" at ", 1)[1].split(" ", 1)[0]

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def rich(tmp_path):
    path = str(tmp_path / "rich.db")
    return path, build_rich_store(path)


@pytest.fixture
def server(rich):
    s = Server(rich[0])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def open_served(browser, server: Server):
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#state .exact")
    return page


def test_serve_binds_loopback_and_shows_the_same_views(rich, server, browser, tmp_path):
    """On 127.0.0.1 by default, the served page shows the rich session's tree (branch,
    HEAD, tombstone), timeline, lanes and a clicked event's payload and hash."""
    path, marks = rich
    assert server.url.startswith("http://127.0.0.1:")
    page = open_served(browser, server)
    got = tree(page)
    assert got["all"] == {"u1", "a1", "u2", "a2", "u3", "a3"}
    assert got["head"] == {"a3"} and got["tombstoned"] == {"a2"} and got["active"] == {"u1", "a1", "u3", "a3"}
    with open_readonly(path) as store:
        positions = [e.position for e in store.read_stream(f"session:{SID}")]
        digest = bytes(store.db.scalar("SELECT hash FROM events WHERE position = ?",
                                       (marks["four_nodes"],))).hex()
    shown = page.eval_on_selector_all("#timeline .event", "els => els.map(e => +e.dataset.position)")
    assert [p for p in shown if p in positions] == positions
    assert [i["end"] for i in lane_items(page, "lease")] == ["released", "released"]
    assert [(i["id"], i["end"]) for i in lane_items(page, "processes")] == [("rich-tool-1", "completed")]
    page.click(f'#timeline .event[data-position="{marks["four_nodes"]}"]')
    assert page.text_content("#detail-hash") == digest
    assert json.loads(page.text_content("#payload"))["revision"] == 2
    assert page.errors == []
    save_screenshot(page, tmp_path, "viewer-serve.png")
    page.close()


def test_served_slider_asks_the_server_for_store_at_of_that_position(rich, server, browser):
    """Moving the slider back shows the earlier tree and the state panel's exact
    store.at(P), answered by the server for that very position."""
    path, marks = rich
    page = open_served(browser, server)
    move_slider_to(page, marks["two_nodes"])
    assert tree(page)["all"] == {"u1", "a1"}
    want = f"store.at({marks['two_nodes']})"
    page.wait_for_function(f"() => document.querySelector('#state .exact') && "
                           f"document.querySelector('#state .exact').textContent === '{want}'")
    assert "revision 1 " in page.text_content("#state")
    page.close()


def test_served_page_updates_live_when_another_process_appends(rich, server, browser):
    """With the page open at the latest position, a commit by another process shows up in
    the tree (as the new HEAD) and the timeline without a reload."""
    path, _ = rich
    page = open_served(browser, server)
    before = page.eval_on_selector_all("#timeline .event", "els => els.length")
    append_turn(path, "live-1", "appended while the page was open")
    page.wait_for_selector('#tree .node.head[data-node-id="live-1"]', timeout=30_000)
    with open_readonly(path) as store:
        last = store.last_position()
    page.wait_for_function(f"() => document.body.dataset.position === '{last}'")
    assert page.eval_on_selector_all("#timeline .event", "els => els.length") > before
    # The live line comes from the next poll of /api/head, which may land after the
    # session reload that moved the view: wait for it rather than racing it.
    page.wait_for_function(f"() => document.getElementById('live').textContent === 'live · position {last}'")
    assert page.text_content("#live") == f"live · position {last}"
    page.close()


def test_served_session_list_follows_sessions_created_by_another_process(rich, server, browser):
    """A session created by another process while the page is open joins the session list,
    and choosing it shows its timeline."""
    path, _ = rich
    page = open_served(browser, server)
    code = "import sys, eventstore\nwith eventstore.open(sys.argv[1]) as s:\n    s.sessions.create('late')\n"
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=120)
    page.wait_for_selector('#session-select option[value="late"]', state="attached", timeout=30_000)
    page.select_option("#session-select", "late")
    page.wait_for_function("() => document.getElementById('session-info').textContent.startsWith('late ')")
    assert page.eval_on_selector_all("#timeline .event", "els => els.map(e => e.dataset.type)") == [
        "session.created"]
    page.close()


def test_served_page_never_runs_stored_text(rich, server, browser):
    """The hostile texts are shown literally by the served page too; nothing runs."""
    page = open_served(browser, server)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    texts = page.eval_on_selector_all("#tree .node .text", "els => els.map(e => e.textContent)")
    assert SCRIPT_TEXT in texts and IMG_TEXT in texts
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.eval_on_selector_all("img", "els => els.length") == 0
    page.close()


def test_served_long_payload_expands_to_the_whole_text(rich, server, browser):
    """The server's model cuts a long payload like the file does; "show all" fetches it whole."""
    _, marks = rich
    page = open_served(browser, server)
    page.click(f'#timeline .event[data-position="{marks["branched"]}"]')
    page.click("#expand")
    page.wait_for_function(f"() => document.getElementById('payload').textContent.length > {len(LONG_TEXT)}")
    assert LONG_TEXT in json.loads(page.text_content("#payload"))["nodes"][0]["event"]["parts"][0]["content"]
    page.close()


def test_server_serves_only_its_page_and_api(server):
    """No file is served but the page: paths that name files, traversal and unknown routes
    are 404; other methods are refused; bad parameters are 400 with a JSON error."""
    status, body = server.get("/")
    assert status == 200 and b"eventstore session viewer" in body
    with urllib.request.urlopen(server.url, timeout=30) as resp:
        policy = resp.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "script-src 'sha256-", "connect-src 'self'"):
        assert directive in policy
    for path in ("/viewer.js", "/assets/viewer.js", "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/api/../../etc/passwd", "/rich.db", "/api/nope"):
        status, body = server.get(path)
        assert status == 404, path
        assert b"root:" not in body
    assert server.get("/api/head", method="POST")[0] == 405
    assert server.get("/api/session?id=nope")[0] == 404
    status, body = server.get("/api/state?id=rich&at=x")
    assert status == 400 and "must be a position" in json.loads(body)["error"]
    assert server.get("/api/state?id=rich&at=999999")[0] == 400


def test_loopback_server_refuses_requests_addressed_to_another_host(server):
    """A request whose Host names another domain (a rebinding page) gets 403 and no data;
    the loopback names get the page."""
    port = server.url.rsplit(":", 1)[1].rstrip("/")
    for host, want in ((f"evil.example:{port}", 403), (f"127.0.0.1.evil.example:{port}", 403),
                       (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)):
        req = urllib.request.Request(server.url + "api/sessions", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        assert status == want, host
        if want == 403:
            assert SID.encode() not in body


def test_server_writes_nothing(rich):
    """Serving and answering every route leaves the log, the projections and the
    directory as they were (no new file, no new event)."""
    path, _ = rich
    directory = os.path.dirname(path)
    with open_readonly(path) as store:
        before = (store.checkpoint(), [(s.session_id, s.status) for s in store.sessions.list()])
    files = sorted(f for f in os.listdir(directory) if not f.endswith(("-wal", "-shm")))
    s = Server(path)
    try:
        for route in ("/", "/api/head", "/api/sessions", f"/api/session?id={SID}",
                      f"/api/state?id={SID}&at=5", "/api/event?position=3"):
            assert s.get(route)[0] == 200, route
    finally:
        s.stop()
    with open_readonly(path) as store:
        after = (store.checkpoint(), [(s.session_id, s.status) for s in store.sessions.list()])
    assert after == before
    assert sorted(f for f in os.listdir(directory) if not f.endswith(("-wal", "-shm"))) == files


def test_serve_on_a_port_it_cannot_use_is_a_one_line_error(rich, capsys):
    """A port out of range is one line on stderr and exit status 2."""
    assert main(["serve", rich[0], "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port" in err
