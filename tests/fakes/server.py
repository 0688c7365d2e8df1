"""The local HTTP server under every vendor fake: start, stop, and going down and up again."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 whose handler reaches this object as `server.fake`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._handler = handler
        self._stopping = threading.Event()  # set on stop(): cuts injected delays short
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> Self:
        self._stopping.clear()
        self._listen()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.down()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def down(self) -> None:
        """Close the listening socket: clients get "connection refused" until `up()`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def up(self) -> None:
        """Listen again on the same port, so the fake's URLs stay valid."""
        if self._server is None:
            self._listen()

    def _listen(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._server = server
        # A short poll keeps down()/stop() quick; shutdown() waits for the loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
