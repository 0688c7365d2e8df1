"""Incident history as files people take elsewhere: the list as CSV (streamed), one incident's
postmortem draft as Markdown. Same bearer token and filters as the history API."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from responder.redact import Redactor
from responder.store import history
from responder.store.db import reader
from responder.store.postmortem import postmortem_markdown
from responder.store.timeline import incident_timeline
from responder.web.api import BadQuery, HistoryApi, incident_filter, path_id
from responder.web.webhook import json_response

COLUMNS = (
    "id",
    "status",
    "priority",
    "title",
    "monitor_id",
    "monitor_name",
    "scope",
    "service",
    "team",
    "env",
    "opened_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "resolution",
    "time_to_ack_seconds",
    "time_to_resolve_seconds",
)
_PAGE = 500
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); a
# leading apostrophe makes it text. Tab and carriage return start formulas in some too.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_lines(rows: Iterable[dict[str, Any]]) -> str:
    """RFC 4180: CRLF line ends, fields with a comma, quote or line break in double quotes."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows([safe_cell(row.get(name)) for name in COLUMNS] for row in rows)
    return out.getvalue()


class Exports:
    def __init__(self, engine: sa.Engine, api: HistoryApi, redactor: Redactor) -> None:
        self._engine = reader(engine)
        self._api = api
        self._redactor = redactor

    async def incidents_csv(self, request: Request) -> Response:
        refused = self._api.refusal(request)
        if refused is not None:
            return refused
        try:
            flt = incident_filter(request, limit=2**31 - 1, most=2**31 - 1)
        except BadQuery as exc:
            return json_response({"error": str(exc)}, 400)
        return StreamingResponse(
            self._stream(flt),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="incidents.csv"'},
        )

    async def _stream(self, flt: history.IncidentFilter) -> AsyncIterator[bytes]:
        yield csv_lines([{name: name for name in COLUMNS}]).encode()
        left, cursor = flt.limit, flt.before_id
        while left > 0:
            page = replace(flt, before_id=cursor, limit=min(_PAGE, left))
            items, cursor = await asyncio.to_thread(self._page, page)
            yield csv_lines(items).encode()
            left -= len(items)
            if cursor is None:
                return

    def _page(self, flt: history.IncidentFilter) -> tuple[list[dict[str, Any]], int | None]:
        with Session(self._engine) as session:
            return history.list_incidents(session, flt)

    async def report(self, request: Request) -> Response:
        refused = self._api.refusal(request)
        if refused is not None:
            return refused
        try:
            incident_id = path_id(request)
        except BadQuery as exc:
            return json_response({"error": str(exc)}, 400)
        text = await asyncio.to_thread(self._report, incident_id)
        if text is None:
            return json_response({"error": "not found"}, 404)
        return Response(text, media_type="text/markdown; charset=utf-8")

    def _report(self, incident_id: int) -> str | None:
        with Session(self._engine) as session:
            timeline = incident_timeline(session, incident_id)
        # Redacted as the page's copy is: alert text could quote anything.
        return (
            None if timeline is None else self._redactor.redact_text(postmortem_markdown(timeline))
        )
