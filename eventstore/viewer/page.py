"""The page: one HTML file with the style, the code and the data inline.

The same template serves both uses: `render_html` embeds every chosen session's model
(a static file that opens from disk), `server_page` embeds only the mode and the page
fetches its data from the server. No part of the page loads anything from the network:
the Content-Security-Policy allows no source but the page's own script (by its hash)
and, for the server, requests to its own origin.

Why the data cannot break out: it sits in a `<script type="application/json">` element
that the browser never runs, with every `<`, `>` and `&` written as a JSON escape, so
no stored text can close that element; the code reads it with `JSON.parse` and puts
every string into the page with `textContent` (docs/viewer.md).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
from importlib import resources
from typing import Any, Sequence

from ..store import Store
from .errors import ViewerArgumentError
from .model import fit_payloads, session_list, session_model

MAX_SESSIONS = 50
"""Sessions embedded in a static page when none is named (the most recently active)."""


def asset(name: str) -> str:
    """The text of one of the page's files (package data under `assets/`)."""
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def embed_json(value: Any) -> str:
    """`value` as JSON that is safe inside a `<script type="application/json">` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def script_hash(script: str) -> str:
    """The CSP source expression allowing exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


@functools.lru_cache(maxsize=2)
def content_security_policy(serve: bool) -> str:
    """The page's policy: its own script only, no network (but its own origin when served)."""
    script = "\n" + asset("viewer.js") + "\n"
    connect = "'self'" if serve else "'none'"
    return (f"default-src 'none'; script-src {script_hash(script)}; style-src 'unsafe-inline'; "
            f"connect-src {connect}; img-src 'none'; base-uri 'none'; form-action 'none'")


def _fill(title: str, data: dict[str, Any], serve: bool) -> str:
    template = asset("viewer.html")
    # The data goes in last and alone: nothing inserted before it is searched again.
    head, tail = template.split("__DATA__", 1)
    head = (head.replace("__CSP__", html.escape(content_security_policy(serve)))
            .replace("__TITLE__", html.escape(title)).replace("__STYLE__", asset("viewer.css")))
    tail = tail.replace("__SCRIPT__", asset("viewer.js"))
    return head + embed_json(data) + tail


def render_html(store: Store, session_ids: Sequence[str] | None = None, *, snapshots: int | None = None,
                max_sessions: int = MAX_SESSIONS) -> str:
    """A self-contained page showing these sessions (default: the `max_sessions` most
    recently active), each with up to `snapshots` `store.at` snapshots (see snapshots.py)."""
    if snapshots is not None and (isinstance(snapshots, bool) or not isinstance(snapshots, int)
                                  or snapshots < 0):
        raise ViewerArgumentError(f"snapshots must be an integer >= 0, got {snapshots!r}")
    with store.read_transaction():  # one consistent view of the log for the whole page
        return _render(store, session_ids, snapshots, max_sessions)


def _render(store: Store, session_ids: Sequence[str] | None, snapshots: int | None, max_sessions: int) -> str:
    listed = session_list(store)
    if session_ids is None:
        chosen = [s["id"] for s in listed[:max_sessions]]
    else:
        chosen = list(dict.fromkeys(session_ids))
        for sid in chosen:
            if store.sessions.get(sid) is None:
                from .errors import UnknownSession

                raise UnknownSession(sid, store.path)
    models = {sid: session_model(store, sid, snapshots=snapshots) for sid in chosen}
    fit_payloads(list(models.values()))
    data = {"mode": "static", "last_position": store.last_position(),
            "sessions": [s for s in listed if s["id"] in models], "initial": chosen[0] if chosen else None,
            "models": models}
    title = f"session {chosen[0]}" if len(chosen) == 1 else "sessions"
    return _fill(f"eventstore: {title}", data, serve=False)


def server_page(poll_ms: int) -> str:
    """The page the server sends: the same code, its data fetched from the server."""
    return _fill("eventstore: sessions", {"mode": "serve", "poll_ms": poll_ms}, serve=True)
