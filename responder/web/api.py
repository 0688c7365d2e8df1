"""The history API: incidents, one incident's timeline, the audit log, stats (bearer token)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from responder.intake.auth import header_bytes, token_matches
from responder.store import history
from responder.store.db import reader
from responder.web.ids import row_id
from responder.web.webhook import json_response

Handler = Callable[[Request], Awaitable[Response]]


class BadQuery(ValueError):
    pass


class Unprocessable(ValueError):
    """A readable request asking for something that cannot be (422)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer other than 200 (201 for a new silence, ...)."""

    body: Any
    status: int


_MAX_BODY = 64 * 1024  # a silence is a few hundred bytes


class HistoryApi:
    def __init__(self, engine: sa.Engine, token: str | None, insecure: bool) -> None:
        self._engine = reader(engine)
        self._tokens = [token] if token else []
        self._insecure = insecure

    def _authorised(self, request: Request) -> bool:
        if self._insecure and not self._tokens:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token_matches(
            header_bytes(value.strip()), self._tokens
        )

    def refusal(self, request: Request) -> Response | None:
        """The 401 for a request without the API token; None when it may go on."""
        if self._authorised(request):
            return None
        message = (
            "missing or wrong bearer token"
            if self._tokens
            else "set RESPONDER_API_TOKEN to use the history API"
        )
        return json_response({"error": message}, 401)

    def guard(self, handler: Callable[[Request], Any]) -> Handler:
        async def endpoint(request: Request) -> Response:
            refused = self.refusal(request)
            if refused is not None:
                return refused
            if request.method == "POST":  # read here: the handler runs in a thread
                body = await request.body()
                if len(body) > _MAX_BODY:
                    return json_response({"error": f"body over {_MAX_BODY} bytes"}, 413)
                request.state.body = body
            try:
                result = await asyncio.to_thread(handler, request)
            except BadQuery as exc:
                return json_response({"error": str(exc)}, 400)
            except Unprocessable as exc:
                return json_response({"error": str(exc)}, 422)
            if result is None:
                return json_response({"error": "not found"}, 404)
            if isinstance(result, Reply):
                return json_response(result.body, result.status)
            return json_response(result, 200)

        return endpoint

    def incidents(self, request: Request) -> dict[str, Any]:
        flt = incident_filter(request, limit=50, most=500)
        with Session(self._engine) as session:
            items, cursor = history.list_incidents(session, flt)
        return {"items": items, "next_cursor": cursor}

    def incident(self, request: Request) -> dict[str, Any] | None:
        incident_id = path_id(request)
        with Session(self._engine) as session:
            return history.incident_detail(session, incident_id)

    def audit(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        after = _int(params.get("after"), "after") or 0
        limit = min(_int(params.get("limit"), "limit") or 100, 1000)
        with Session(self._engine) as session:
            items = history.list_audit(session, after, limit, _text(params.get("kind"), "kind"))
        return {"items": items, "next_after": items[-1]["seq"] if items else None}

    def stats(self, request: Request) -> dict[str, Any]:
        with Session(self._engine) as session:
            return history.stats(session, _time(request.query_params.get("since"), "since"))


def incident_filter(request: Request, *, limit: int, most: int) -> history.IncidentFilter:
    """The filters of /api/incidents (and its CSV export) from the query string."""
    params = request.query_params
    try:
        status = history.known_status(_text(params.get("status"), "status"))
    except history.UnknownStatus as exc:
        raise BadQuery(str(exc)) from None
    return history.IncidentFilter(
        status=status,
        service=_text(params.get("service"), "service"),
        team=_text(params.get("team"), "team"),
        monitor_id=_text(params.get("monitor_id"), "monitor_id"),
        priority=_text(params.get("priority"), "priority"),
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
        q=_text(params.get("q"), "q"),
        before_id=_int(params.get("cursor"), "cursor"),
        limit=min(_int(params.get("limit"), "limit") or limit, most),
    )


def path_id(request: Request) -> int:
    incident_id = _int(request.path_params["incident_id"], "id")
    if incident_id is None:
        raise BadQuery("id must be a positive integer")
    return incident_id


def _int(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    found = row_id(raw)
    if found is None:
        raise BadQuery(f"{name} must be a positive integer")
    return found


def _text(raw: str | None, name: str) -> str | None:
    # PostgreSQL refuses NUL in text outright; no stored value holds one, so say so plainly.
    if raw is not None and "\x00" in raw:
        raise BadQuery(f"{name} must not contain a NUL character")
    return raw


def _time(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name} must be an ISO 8601 time, e.g. 2026-11-23T08:00:00Z") from None
    if parsed.tzinfo is None:
        raise BadQuery(f"{name} needs a time zone, e.g. 2026-11-23T08:00:00Z")
    try:
        return parsed.astimezone(UTC)  # as the database compares it
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise BadQuery(f"{name} is out of range") from None
