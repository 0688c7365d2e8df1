"""The durable floor: the least any endpoint must do to acknowledge a webhook durably.

    python bench/floor.py --port 18001 --database sqlite:////tmp/floor.db
    python bench/floor.py --port 18001 --database postgresql://postgres@127.0.0.1/floor

Parse the JSON body, put it in a queue, and answer 202 once a writer thread has committed
it with every other body that arrived meanwhile (group commit) and the commit is on disk.
No authentication, no normalising, no deduplication, no columns but the body; a plain ASGI
app, as the service's webhook is, so no framework cost either. `run.py`
measures it beside the bare endpoint and the service, so the report can tell what
durability itself costs on this machine from what the service adds on top of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable

import orjson
import psycopg
from bare import serve  # the same server settings as the ceiling it is compared with
from starlette.types import Receive, Scope, Send

ACK = orjson.dumps({"ok": True})
MAX_BATCH = 500
MAX_WAITING = 20_000  # as the service's intake: past this, 503 rather than an endless queue

_Item = tuple[bytes, asyncio.Future[None], asyncio.AbstractEventLoop]
_Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def sqlite_writer(path: str) -> Callable[[list[bytes]], None]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # as the service: fsync the WAL ourselves
    conn.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, body TEXT)")

    def write(bodies: list[bytes]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO inbox (body) VALUES (?)", [(b.decode(),) for b in bodies])
        conn.execute("COMMIT")
        fd = os.open(f"{path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    return write


def postgres_writer(url: str) -> Callable[[list[bytes]], None]:
    conn = psycopg.connect(url)
    conn.execute("CREATE TABLE IF NOT EXISTS inbox (id bigserial PRIMARY KEY, body text)")
    conn.commit()

    def write(bodies: list[bytes]) -> None:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO inbox (body) VALUES (%s)", [(b.decode(),) for b in bodies])
        conn.commit()  # synchronous_commit: on disk when this returns

    return write


def run_writer(write: Callable[[list[bytes]], None], inbox: queue.Queue[_Item]) -> None:
    while True:
        batch = [inbox.get()]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(inbox.get_nowait())
            except queue.Empty:
                break
        error: Exception | None = None
        try:
            write([body for body, _, _ in batch])
        except Exception as exc:  # the requests hear of it (503); the writer carries on
            error = exc
        loop = batch[0][2]
        loop.call_soon_threadsafe(_settle, [future for _, future, _ in batch], error)


def _settle(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("not committed in time"))


def make_app(write: Callable[[list[bytes]], None]) -> _Asgi:
    inbox: queue.Queue[_Item] = queue.Queue(maxsize=MAX_WAITING)
    threading.Thread(target=run_writer, args=(write, inbox), daemon=True).start()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            orjson.loads(body)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            inbox.put_nowait((body, future, loop))
            timer = loop.call_later(10.0, _expire, future)  # cheaper than wait_for's task
            try:
                await future
            finally:
                timer.cancel()
            status, answer = 202, ACK
        except orjson.JSONDecodeError:
            status, answer = 400, b'{"error":"not JSON"}'
        except Exception:  # queue full, no commit within 10 s, or the commit failed
            status, answer = 503, b'{"error":"not stored"}'
        headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--database", required=True, help="sqlite:///PATH or postgresql://...")
    args = parser.parse_args()
    url: str = args.database
    if url.startswith("sqlite:///"):
        write = sqlite_writer(url.removeprefix("sqlite:///"))
    else:
        write = postgres_writer(url)
    serve(make_app(write), args.host, args.port)


if __name__ == "__main__":
    main()
