"""The durable floor: the least any endpoint must do to acknowledge a webhook durably.

    python bench/floor.py --port 18001 --database sqlite:////tmp/floor.db
    python bench/floor.py --port 18001 --database postgresql://postgres@127.0.0.1/floor

Parse the JSON body, put it in a queue, and answer 202 once a writer thread has committed
it with every other body that arrived meanwhile (group commit) and the commit is on disk.
No authentication, no normalising, no deduplication, no columns but the body. `run.py`
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
from collections.abc import Callable

import orjson
import psycopg
from bare import serve  # the same server settings as the ceiling it is compared with
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ACK = orjson.dumps({"ok": True})
MAX_BATCH = 500

_Item = tuple[bytes, asyncio.Future[None], asyncio.AbstractEventLoop]


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
        write([body for body, _, _ in batch])
        loop = batch[0][2]
        loop.call_soon_threadsafe(_settle, [future for _, future, _ in batch])


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def make_app(write: Callable[[list[bytes]], None]) -> Starlette:
    inbox: queue.Queue[_Item] = queue.Queue()
    threading.Thread(target=run_writer, args=(write, inbox), daemon=True).start()

    async def webhook(request: Request) -> Response:
        body = await request.body()
        orjson.loads(body)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        inbox.put((body, future, loop))
        await future
        return Response(ACK, 202, media_type="application/json")

    return Starlette(routes=[Route("/webhooks/datadog", webhook, methods=["POST"])])


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
