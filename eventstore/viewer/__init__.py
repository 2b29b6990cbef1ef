"""The session viewer: see a session instead of reading it.

    html = viewer.render_html(store, ["s1"])        # one self-contained page (inline CSS/JS/data)
    viewer.serve("agent.db", port=8765)             # a local web UI over every session, live

`eventstore view DB` writes the page, `eventstore serve DB` runs the UI; docs/viewer.md
shows both and says how each view is computed. The page's code and style are package
data (`assets/`); the data comes from `model.session_model`, built only from public
store reads (`read_stream`, `command_span`, `at`, the domain facades).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..errors import FileError
from ..store import Store
from .errors import UnknownSession, ViewerArgumentError
from .model import session_list, session_model
from .page import render_html
from .server import make_server, serve


def open_readonly(path: str) -> Store:
    """Open an existing store for reading only, in the least-writing way this version offers.

    With an `open(..., readonly=True)` mode it is used; without one the ordinary open
    of an existing file is used, which writes nothing unless the file needs it (an
    older schema stamp, stale projections catching up). Every viewer open goes through
    here, so that switching to a stricter mode is one change.
    """
    from .. import store as store_module

    if not os.path.exists(path):
        raise FileError(path, "no such file")
    opener: Any = store_module.open
    if "readonly" in inspect.signature(opener).parameters:
        return opener(path, create=False, readonly=True)  # type: ignore[no-any-return]
    return store_module.open(path, create=False)


__all__ = ["UnknownSession", "ViewerArgumentError", "make_server", "open_readonly", "render_html", "serve",
           "session_list", "session_model"]
