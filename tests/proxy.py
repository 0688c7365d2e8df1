"""A TCP proxy between the service's processes and PostgreSQL, which a test takes down.

The machine's PostgreSQL server is shared and must never be stopped; to the service, a
proxy that drops every connection and refuses new ones is a database that went away.
`down()` does exactly that, `up()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.refused = 0  # connections to the target that failed, while up

    def __enter__(self) -> Self:
        self._thread.start()
        self.up()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def up(self) -> None:
        """Accept connections again, on the same port as before."""
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)

    def down(self) -> None:
        """Refuse new connections and cut every open one, in both directions."""
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(timeout=5)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # the listening socket: new connections are refused from now on
        for writer in list(self._open):
            writer.transport.abort()  # a reset, as a crashed server's peer sees it
        self._open.clear()

    async def _handle(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if self._server is None:
            client.transport.abort()
            return
        try:
            server_in, server = await asyncio.open_connection(*self._target)
        except OSError:
            self.refused += 1
            client.transport.abort()
            return
        self._open |= {client, server}
        try:
            await asyncio.gather(_pipe(client_in, server), _pipe(server_in, client))
        finally:
            self._open -= {client, server}
            client.transport.abort()
            server.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.transport.abort()  # one side gone: the other goes too, as with a real server
