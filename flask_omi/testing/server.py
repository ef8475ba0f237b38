"""Serve a WSGI app on a loopback port from a background thread, for tests and the demo."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

#: The host names a development server on loopback answers to.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def answer_loopback_hosts_only(app: Flask) -> None:
    """Refuse requests whose ``Host`` is not a loopback name. A server on 127.0.0.1 is still
    reachable from any web page through DNS rebinding (a name the attacker controls, pointed at
    127.0.0.1); the ``Host`` it sends is then the attacker's name, and is refused here."""

    @app.before_request
    def loopback_only() -> Response | None:
        if (urlsplit("//" + request.host).hostname or "") in LOOPBACK_HOSTS:
            return None
        return Response(
            "This development server answers only 127.0.0.1 and localhost.", 400, mimetype="text/plain"
        )


class LiveServer:
    """``with LiveServer(app) as server: requests.get(server.url)``; only ever binds 127.0.0.1."""

    def __init__(self, wsgi_app: Any, port: int = 0) -> None:
        self.wsgi_app = wsgi_app
        self._port = port
        self._server: BaseWSGIServer | None = None

    @property
    def running(self) -> bool:
        """Whether the server is bound."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port it is bound to."""
        if self._server is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._server.server_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def bind(self) -> LiveServer:
        """Reserve the port without serving yet, so its URL can be configured first."""
        if self._server is None:
            self._server = make_server("127.0.0.1", self._port, self.wsgi_app, threaded=True)
        return self

    def start(self) -> LiveServer:
        """Serve from a background thread."""
        self.bind()
        assert self._server is not None
        # A short poll interval makes stop() quick; idle cost is a select() every 50 ms.
        thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="live-server", daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
