"""The local HTTP server under every vendor fake: start, stop, going down and up again, and
the HTTP plumbing (read the request, send the answer) that every fake shares."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answer = tuple[int, dict[str, str], Any]  # status, headers, a JSON value (or text as it is)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: Message[str, str]  # looked up case-insensitively, as HTTP means them
    body: bytes


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 that hands each request to `answer`."""

    content_type = "application/json"  # unless an answer sets its own

    def __init__(self) -> None:
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
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._server = server
        # A short poll keeps down()/stop() quick; shutdown() waits for the loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): one connection per request, so that down() refuses the very
    # next call instead of a pooled keep-alive connection still reaching a handler thread.

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: LocalServer = self.server.fake  # type: ignore[attr-defined]
        status, extra, payload = fake.answer(Request(self.command, self.path, self.headers, body))
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if "Content-Type" not in extra:
                self.send_header("Content-Type", fake.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test); a vendor would not care either

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass
