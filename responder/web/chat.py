"""`POST /slack/interactions` (the incident's buttons) and `POST /slack/commands` (the
`/responder` slash command), both signed with SLACK_SIGNING_SECRET.

Slack waits three seconds: the handler verifies the request (through the injected
`ChatGate`), stores the answer and replies with a short ephemeral text. What the answer sets
off goes through the outbox. A bad, stale or missing signature is 401 and changes nothing.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
import structlog
from starlette.requests import Request
from starlette.responses import Response

from responder.actions import ChatGate, ChatRequest, ChatUnreadable, ChatUnverified
from responder.web.bodies import bounded_body
from responder.web.commands import Commands
from responder.web.webhook import json_response

log = structlog.get_logger(__name__)

_UNAVAILABLE = "responder cannot store that right now (its database is unavailable); try again."


class ChatEndpoints:
    def __init__(self, gate: ChatGate, commands: Commands, max_body: int) -> None:
        self._gate = gate
        self._commands = commands
        self._max_body = max_body

    async def interactions(self, request: Request) -> Response:
        return await self._handle(request, button=True)

    async def slash_command(self, request: Request) -> Response:
        return await self._handle(request, button=False)

    async def _handle(self, request: Request, *, button: bool) -> Response:
        body = await bounded_body(request, self._max_body)
        if isinstance(body, Response):
            return body
        headers = {name.lower(): value for name, value in request.headers.items()}
        asked: ChatRequest | None
        try:
            if button:
                asked = self._gate.button(body, headers)
            else:
                asked = self._gate.command(body, headers)
        except ChatUnverified as exc:
            return json_response({"error": str(exc)}, 401)
        except ChatUnreadable as exc:
            return json_response({"error": str(exc)}, 400)
        if asked is None:
            return _ephemeral("Nothing for responder to do with that.")
        try:
            text = await asyncio.to_thread(self._commands.run, asked)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("chat.store_failed", error=type(exc).__name__)
            text = _UNAVAILABLE
        return _ephemeral(text)


def _ephemeral(text: str) -> Response:
    # Shown to the asker only. Slack shows this body for a slash command; for a button it
    # is an acknowledgement only, and the incident's message itself is rewritten.
    return json_response({"response_type": "ephemeral", "text": text}, 200)
