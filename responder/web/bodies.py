"""Reading a request body no larger than a limit, for the endpoints that read it whole."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from responder.web.webhook import json_response


async def bounded_body(request: Request, limit: int) -> bytes | Response:
    """The body, or the 413 to answer: refused by its declared length before reading when
    it says, and by what arrived otherwise (a chunked body declares nothing)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return json_response({"error": f"body larger than {limit} bytes"}, 413)
    body = await request.body()
    if len(body) > limit:
        return json_response({"error": f"body larger than {limit} bytes"}, 413)
    return body
