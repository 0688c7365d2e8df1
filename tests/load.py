"""A webhook sender for the fault tests: bodies posted at a steady rate over several
connections, each answer kept (status, or why there was none).

Each connection posts in turn the next body that is due, so a service that slows down gets
fewer requests (the rate actually reached is reported), never an unbounded pile of them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from tests.harness import TOKEN

CLIENT_TIMEOUT = 15.0  # Datadog gives up on a webhook after 15 s
Answer = int | str  # an HTTP status, or "timeout" / "error: ..." when none came


@dataclass
class Sent:
    answers: list[Answer]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else 0.0

    def count(self, answer: Answer) -> int:
        return sum(1 for a in self.answers if a == answer)

    def kinds(self) -> dict[Answer, int]:
        found: dict[Answer, int] = {}
        for answer in self.answers:
            found[answer] = found.get(answer, 0) + 1
        return found


def send(
    url: str,
    bodies: Sequence[bytes],
    rate: float,
    connections: int = 8,
    stop: threading.Event | None = None,
) -> Sent:
    """Post the bodies to `url`'s Datadog webhook in order, about `rate` a second, until all
    are sent or `stop` is set (answers then cover only those sent); blocks until done."""
    return asyncio.run(_send(url, bodies, rate, connections, stop or threading.Event()))


@dataclass
class Background:
    """`send` on a thread of its own, for a test that does something while the load runs."""

    url: str
    bodies: Sequence[bytes]
    rate: float
    connections: int = 8
    result: Sent | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> Background:
        def run() -> None:
            self.result = send(self.url, self.bodies, self.rate, self.connections, self._stop)

        self._thread = threading.Thread(target=run, name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sent:
        """Send nothing more; what was sent, once every answer is in."""
        self._stop.set()
        return self.join()

    def join(self, timeout: float = 120.0) -> Sent:
        assert self._thread is not None
        self._thread.join(timeout)
        assert self.result is not None, "the load did not finish"
        return self.result


async def _send(
    url: str, bodies: Sequence[bytes], rate: float, connections: int, stop: threading.Event
) -> Sent:
    answers: list[Answer] = ["not sent"] * len(bodies)
    target = f"{url}/webhooks/datadog"
    headers = {"Content-Type": "application/json", "X-Responder-Token": TOKEN}
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    next_index = 0
    started = time.monotonic()

    async def post_all(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(bodies) and not stop.is_set():
            index = next_index
            next_index += 1
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with session.post(target, data=bodies[index], headers=headers) as answer:
                    await answer.read()
                    answers[index] = answer.status
            except TimeoutError:
                answers[index] = "timeout"
            except aiohttp.ClientError as exc:
                answers[index] = f"error: {type(exc).__name__}"

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(post_all(session) for _ in range(connections)))
    return Sent(answers[:next_index], time.monotonic() - started)
