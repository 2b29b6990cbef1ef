"""`eventstore serve`: the viewer as a local web UI over every session, updated live.

The standard library's ThreadingHTTPServer is enough: a handful of JSON routes for one
local user, no templates, no sessions, no uploads. Routes (GET only):

    /                           the page (the same file `eventstore view` writes, without data)
    /api/head                   {"last_position": N}: the page polls it to follow the log
    /api/sessions               every session (id, status, name, events, last position)
    /api/session?id=S           the session's model (model.session_model, without snapshots)
    /api/state?id=S&at=P        the session's state at P, from store.at(P) (snapshots.snapshot)
    /api/event?position=P       one event's whole payload text (the model cuts long ones)

Anything else is 404; on a loopback address, a request whose Host header names anything
but a loopback name is 403. The server reads no file but its own package assets, and opens
the store through `open_readonly`. One store connection serves every request, under a
lock (a connection is not shared between threads mid-read).
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from ..errors import StoreError
from .errors import UnknownSession, ViewerArgumentError

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
"""Addresses served with the Host check (see _Handler._host_allowed); any other bind
address answers every Host (binding it is a choice to be reachable)."""
POLL_MS = 1000
"""How often the page asks whether the log has grown."""


class ViewerServer(ThreadingHTTPServer):
    """The HTTP server of one store."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Any, poll_ms: int = POLL_MS) -> None:
        from .page import server_page

        super().__init__(address, _Handler)
        host, port = address[0], self.server_address[1]
        self.allowed_hosts: frozenset[str] | None = None
        if host in LOOPBACK_NAMES:
            self.allowed_hosts = frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES | {"[::1]"})
        self.store = store
        self.lock = threading.Lock()
        self.page = server_page(poll_ms).encode("utf-8")

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/" if isinstance(host, str) else f"http://{host.decode()}:{port}/"


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    if not values or not values[0]:
        raise ViewerArgumentError(f"query parameter {name!r} is required")
    return values[0]


def _position(query: dict[str, list[str]], name: str) -> int:
    text = _one(query, name)
    if not text.isdigit():
        raise ViewerArgumentError(f"query parameter {name!r} must be a position (a whole number), "
                                  f"got {text!r}")
    return int(text)


def _session(store: Any, query: dict[str, list[str]]) -> str:
    sid = _one(query, "id")
    if store.sessions.get(sid) is None:
        raise UnknownSession(sid, store.path)
    return sid


def _route_head(store: Any, query: dict[str, list[str]]) -> Any:
    return {"last_position": store.last_position()}


def _route_sessions(store: Any, query: dict[str, list[str]]) -> Any:
    from .model import session_list

    return session_list(store)


def _route_session(store: Any, query: dict[str, list[str]]) -> Any:
    from .model import fit_payloads, session_model

    model = session_model(store, _session(store, query), snapshots=0)
    fit_payloads([model])
    return model


def _route_state(store: Any, query: dict[str, list[str]]) -> Any:
    from .model import session_streams
    from .snapshots import snapshot

    sid = _session(store, query)
    at = _position(query, "at")
    last = store.last_position()
    if at > last:
        raise ViewerArgumentError(f"position {at} is beyond the end of the log ({last})")
    streams, procs = session_streams(store, sid)
    ev = store.get(at) if at > 0 else None
    return snapshot(store, sid, streams, procs, at, ev.recorded_at_ms if ev is not None else None)


def _route_event(store: Any, query: dict[str, list[str]]) -> Any:
    from .model import payload_text

    at = _position(query, "position")
    ev = store.get(at)
    if ev is None:
        raise ViewerArgumentError(f"no event at position {at}")
    return {"position": at, "payload": payload_text(ev.data)}


ROUTES: dict[str, Callable[[Any, dict[str, list[str]]], Any]] = {
    "/api/head": _route_head,
    "/api/sessions": _route_sessions,
    "/api/session": _route_session,
    "/api/state": _route_state,
    "/api/event": _route_event,
}


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "eventstore-viewer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the page polls every second."""

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        from .page import content_security_policy

        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Security-Policy", content_security_policy(serve=True))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        from .page import embed_json

        self._send(status, embed_json(value).encode("utf-8"), "application/json; charset=utf-8")

    def _host_allowed(self) -> bool:
        # Why: a web page elsewhere can point its own domain at 127.0.0.1 (DNS rebinding)
        # and then read this server as "same origin". Its requests carry that domain in
        # Host, so a loopback server answers only requests addressed to a loopback name.
        allowed = self.server.allowed_hosts
        return allowed is None or (self.headers.get("Host") or "").lower() in allowed

    def do_GET(self) -> None:
        """Answer one request (see the module docstring for the routes)."""
        if not self._host_allowed():
            self._json(HTTPStatus.FORBIDDEN,
                       {"error": "this server answers requests to a loopback address only"})
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
            return
        route = ROUTES.get(url.path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})
            return
        query = parse_qs(url.query)
        try:
            with self.server.lock:
                value = route(self.server.store, query)
        except UnknownSession as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except ViewerArgumentError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except StoreError as exc:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)})
        else:
            self._json(HTTPStatus.OK, value)

    def do_HEAD(self) -> None:
        """Refused: the viewer answers GET only."""
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "GET only"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD


def make_server(path: str, host: str = LOOPBACK, port: int = 0, poll_ms: int = POLL_MS) -> ViewerServer:
    """A server over the store file at `path` (opened read-only), bound to host:port
    (port 0: any free port; read it from `server.url`). Call serve_forever() on it."""
    from . import open_readonly

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ViewerArgumentError(f"port must be an integer from 0 to 65535, got {port!r}")
    store = open_readonly(path)
    try:
        return ViewerServer((host, port), store, poll_ms)
    except OSError as exc:
        store.close()
        raise ViewerArgumentError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(path: str, host: str = LOOPBACK, port: int = 0, ready: Callable[[str], None] | None = None) -> None:
    """Run the viewer server until interrupted; `ready(url)` is called once it listens."""
    server = make_server(path, host, port)
    try:
        if ready is not None:
            ready(server.url)
        server.serve_forever()
    finally:
        server.server_close()
        server.store.close()
