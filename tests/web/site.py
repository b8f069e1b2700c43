"""The built example app served from its own origin, as a static host or a back end serves it.

``/`` and the assets are the files of ``examples/react/dist``.  ``/rendered?user=...`` is what a
back end that renders the page does: it evaluates the user's client-side flags with the Python
SDK (:func:`flagstaff.sdk.browser.browser_bootstrap`) and writes them, with the flag server's
address and the client-side key, into the page, so the first paint needs no request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MARKER = "<!--flagstaff-bootstrap-->"

Render = Callable[[dict[str, str]], str]


class _Handler(SimpleHTTPRequestHandler):
    render: Render | None = None

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/rendered" and self.render is not None:
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body = self.render(query).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return


class Site:
    """``start()``, use ``origin``, ``stop()``."""

    def __init__(self, directory: Path, render: Render | None = None) -> None:
        handler = type("Handler", (_Handler,), {"render": staticmethod(render) if render else None})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0),
                                           partial(handler, directory=str(directory)))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Site:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def rendered_page(template: str, *, config: dict[str, Any], bootstrap_script: str) -> str:
    """The example's ``index.html`` with the page config and the bootstrap written in."""
    config_text = json.dumps(config).replace("<", "\\u003c")
    head = (f'<script type="application/json" id="flagstaff-config">{config_text}</script>'
            + bootstrap_script)
    if MARKER not in template:
        raise ValueError(f"the page template has no {MARKER} placeholder")
    return template.replace(MARKER, head)
