"""`POST /api/incidents/{id}/acknowledge` and `/resolve`: a person's answer through the API.

The answer is stored as an event of the incident's stream and applied by the pipeline in
order with Datadog's deliveries (`pipeline.answers`), so the answer is 202: accepted, with
the event that carries it. An `Idempotency-Key` header makes a retried call count once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from responder.domain import ACTOR_MAX, Answer, Verb
from responder.pipeline.answers import AlreadyAcknowledged, AnswerDesk, Refused, UnknownIncident
from responder.store.db import classify
from responder.web.ids import row_id
from responder.web.webhook import json_response

_MAX_BODY = 16_384
_NOTE_MAX = 500
_REFERENCE_MAX = 50  # the fingerprint keeps 80 characters, "answer:api:" included


class BadAnswer(ValueError):
    pass


def answer_endpoint(
    desk: AnswerDesk, verb: Verb, authorised: Callable[[Request], Response | None]
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for one verb; `authorised` answers the 401 itself, or None to go on."""

    async def endpoint(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        try:
            answer = _answer(request, verb, await request.body())
        except BadAnswer as exc:
            return json_response({"error": str(exc)}, 400)
        try:
            accepted = await asyncio.to_thread(desk.submit, answer)
        except UnknownIncident as exc:
            return json_response({"error": str(exc)}, 404)
        except Refused as exc:
            return json_response({"error": str(exc)}, 409)
        except AlreadyAcknowledged as exc:
            body = {"incident_id": answer.incident_id, "status": "acknowledged"}
            return json_response({**body, "note": str(exc), "acknowledged_by": exc.by}, 200)
        except Exception as exc:
            if classify(exc):
                return json_response(
                    {"error": "the database is unavailable; try again"}, 503, {"Retry-After": "5"}
                )
            raise
        return json_response(
            {
                "event_id": accepted.event_id,
                "incident_id": accepted.incident_id,
                "answer": verb.value,
                "new": accepted.new,
            },
            202,
        )

    return endpoint


def _answer(request: Request, verb: Verb, body: bytes) -> Answer:
    raw_id = request.path_params["incident_id"]
    incident_id = row_id(raw_id)
    if incident_id is None:
        raise BadAnswer("incident id must be a positive integer")
    if len(body) > _MAX_BODY:
        raise BadAnswer(f"body larger than {_MAX_BODY} bytes")
    data: dict[str, Any] = {}
    if body.strip():
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadAnswer('body must be JSON: {"actor": ..., "note": ...}') from None
        if not isinstance(parsed, dict):
            raise BadAnswer("body must be a JSON object")
        unknown = sorted(set(parsed) - {"actor", "note"})
        if unknown:
            raise BadAnswer(f"unknown field(s): {', '.join(unknown)} (known: actor, note)")
        data = parsed
    actor = _text(data.get("actor"), "actor", ACTOR_MAX - 10) or "someone"
    note = _text(data.get("note"), "note", _NOTE_MAX)
    key = request.headers.get("idempotency-key", "").strip()
    if len(key) > _REFERENCE_MAX or not key.isprintable():
        raise BadAnswer(f"Idempotency-Key must be printable and at most {_REFERENCE_MAX} long")
    reference = f"{raw_id}:{key}" if key else uuid.uuid4().hex
    return Answer(
        verb=verb,
        incident_id=incident_id,
        actor=actor,
        via="api",
        reference=reference,
        at=datetime.now(UTC),
        note=note,
    )


def _text(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadAnswer(f"{name} must be a string")
    if "\x00" in value:
        raise BadAnswer(f"{name} must not contain a NUL character")
    if len(value) > limit:
        raise BadAnswer(f"{name} must be at most {limit} characters")
    return value.strip() or None
