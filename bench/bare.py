"""The ceiling: the same stack as the service (Starlette, uvicorn, uvloop, httptools, orjson)
with nothing behind the webhook route, so `run.py` can say what durability costs.

    python bench/bare.py --port 18000
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

ACK = orjson.dumps({"ok": True})


async def webhook(request: Request) -> Response:
    # Read and parse the whole body, as the service must, so the ceiling is not flattered by
    # skipping the work every webhook handler has to do anyway.
    orjson.loads(await request.body())
    return Response(ACK, 202, media_type="application/json")


app = Starlette(routes=[Route("/webhooks/datadog", webhook, methods=["POST"])])


def serve(asgi: ASGIApp, host: str, port: int) -> None:
    """The same server settings as `responder serve`, so the comparison is like for like."""
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        workers=1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    args = parser.parse_args()
    serve(app, args.host, args.port)


if __name__ == "__main__":
    main()
