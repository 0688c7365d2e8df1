"""The local HTTP server under every vendor fake: start, stop, going down and up again, the
HTTP plumbing (read the request, send the answer), and fault injection, which every fake
shares.

A fake names each request by its route (Slack's method, PagerDuty's kind, Datadog's
operationId) and hands its normal answer to `respond`, which is where injected faults
happen: a refusal instead of the answer, the answer garbled, or the answer sent late. Tests
ask for them per route, or for any route with `ANY`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answer = tuple[int, dict[str, str], Any]  # status, headers, a JSON value (or text as it is)
ANY = "*"  # a fault for whichever request comes next, whatever its route


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: Message[str, str]  # looked up case-insensitively, as HTTP means them
    body: bytes


@dataclass
class _Queued:
    """Answers that replace the fake's own for the next `remaining` requests of a route."""

    make: Callable[[str], Answer]  # from the route actually requested (ANY can match any)
    remaining: int


@dataclass
class _Faults:
    """What tests asked for, per route; ANY entries serve when the route has none of its own."""

    answers: dict[str, list[_Queued]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    garbled: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (route, fault injected)


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 that hands each request to `answer`."""

    content_type = "application/json"  # unless an answer sets its own

    def __init__(self) -> None:
        self._stopping = threading.Event()  # set on stop(): cuts injected delays short
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._faults = _Faults()
        self._faults_lock = threading.Lock()
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

    # -- fault injection -------------------------------------------------------------------

    def route_key(self, route: str) -> str:
        """The route a test's name for it means (a fake may accept paths, say)."""
        return route

    def refusal(self, route: str, status: int, message: str | None) -> Answer:
        """How this vendor refuses a request of `route` with `status`, in its own words or
        `message`: the error body its API documents."""
        raise NotImplementedError

    def answer_next(self, route: str, answer: Answer, count: int = 1) -> None:
        """The next `count` requests of `route` get `answer` instead of being served."""
        self._queue(route, lambda _: answer, count)

    def refuse_next(
        self,
        route: str = ANY,
        status: int = 429,
        *,
        retry_after: str | None = None,
        message: str | None = None,
        count: int = 1,
    ) -> None:
        """The next `count` requests of `route` are refused as the vendor refuses: `status`
        with its error body (see `refusal`), and a Retry-After header when given."""

        def make(requested: str) -> Answer:
            code, headers, body = self.refusal(requested, status, message)
            if retry_after is not None:
                headers = {**headers, "Retry-After": retry_after}
            return code, headers, body

        self._queue(route, make, count)

    def delay_next(self, route: str, seconds: float, count: int = 1) -> None:
        """Handle the next `count` requests of `route` normally, then wait before answering.

        The work is done before the wait, like a vendor that did it and then lost the answer
        on its way back: the client times out, the vendor's state has changed.
        """
        with self._faults_lock:
            key = self._key(route)
            self._faults.delays.setdefault(key, []).extend([seconds] * count)

    def garble_next(self, route: str, count: int = 1) -> None:
        """Do the work of the next `count` requests of `route`, then answer with an HTML page,
        not JSON: what a proxy or a load balancer in between can do. The status stays."""
        with self._faults_lock:
            key = self._key(route)
            self._faults.garbled[key] = self._faults.garbled.get(key, 0) + count

    def clear_faults(self) -> None:
        """Forget every injected answer, delay and garble not yet used: the vendor is well."""
        with self._faults_lock:
            self._faults.answers.clear()
            self._faults.delays.clear()
            self._faults.garbled.clear()

    @property
    def requests(self) -> list[tuple[str, bool]]:
        """(route, whether a fault was injected into its answer) of every request, in order."""
        with self._faults_lock:
            return list(self._faults.seen)

    def pending_faults(self) -> int:
        """Injected answers, delays and garbles not yet used up."""
        with self._faults_lock:
            faults = self._faults
            return (
                sum(q.remaining for queue in faults.answers.values() for q in queue)
                + sum(len(d) for d in faults.delays.values())
                + sum(faults.garbled.values())
            )

    def respond(self, route: str, serve: Callable[[], Answer]) -> Answer:
        """The answer to one request of `route`: `serve()`'s, unless a fault was asked for."""
        with self._faults_lock:
            make = self._take_answer(route)
        answer = make(route) if make is not None else serve()
        with self._faults_lock:
            delay = self._take_delay(route)
            garbled = self._take_garbled(route)
            # Before the wait: a client that timed out already finds its request here.
            self._faults.seen.append((route, make is not None or bool(delay) or garbled))
        if garbled:
            answer = (answer[0], {"Content-Type": "text/html"}, "<html>oops</html>")
        if delay:
            self._stopping.wait(delay)
        return answer

    def _key(self, route: str) -> str:
        return route if route == ANY else self.route_key(route)

    def _queue(self, route: str, make: Callable[[str], Answer], count: int) -> None:
        with self._faults_lock:
            self._faults.answers.setdefault(self._key(route), []).append(_Queued(make, count))

    def _take_answer(self, route: str) -> Callable[[str], Answer] | None:
        # The route's own entries first: a test that named it meant that request.
        for key in (route, ANY):
            queue = self._faults.answers.get(key)
            if queue:
                head = queue[0]
                head.remaining -= 1
                if head.remaining <= 0:
                    queue.pop(0)
                return head.make
        return None

    def _take_delay(self, route: str) -> float:
        for key in (route, ANY):
            queue = self._faults.delays.get(key)
            if queue:
                return queue.pop(0)
        return 0.0

    def _take_garbled(self, route: str) -> bool:
        for key in (route, ANY):
            if self._faults.garbled.get(key, 0) > 0:
                self._faults.garbled[key] -= 1
                return True
        return False


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
