"""The web pages: the incident list and one incident's story, with the acknowledge and
resolve buttons, which hand a person's answer to the desk as the API does (via "web")."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from responder.domain import Answer, Verb
from responder.pipeline.answers import AlreadyAcknowledged, AnswerDesk, Refused, UnknownIncident
from responder.redact import Redactor
from responder.store import history, stats
from responder.store.db import classify, reader
from responder.store.postmortem import postmortem_markdown
from responder.store.steps import Entry, Step, steps
from responder.store.timeline import incident_timeline
from responder.web.forms import (
    BadForm,
    ListQuery,
    incident_id,
    list_query,
    posted,
)
from responder.web.html import STATIC, Templates
from responder.web.session import Sessions, User

PAGE_SIZE = 50
LIST_REFRESH = 60  # seconds: the list's live status
INCIDENT_REFRESH = 15
FACETS_SECONDS = 60.0

# What each vendor reference of an incident links to, by the key the action stored it under.
LINK_NAMES = {
    "pagerduty": "PagerDuty incident",
    "datadog_incident": "Datadog incident",
    "datadog_notebook": "Notebook",
    "notebook": "Notebook",
    "slack": "Slack thread",
    "datadog_workflow": "Datadog workflow",
}
NOTICES = {
    "acknowledge": "Acknowledgement sent: the page shows it once the pipeline has applied it.",
    "resolve": "Resolution sent: the page shows it once the pipeline has applied it.",
    "already": "Someone acknowledged this incident already.",
    "closed": "This incident is already resolved.",
    "busy": "The database is unavailable; nothing was sent. Try again.",
}


class Pages:
    def __init__(
        self, engine: sa.Engine, sessions: Sessions, desk: AnswerDesk, redactor: Redactor
    ) -> None:
        self._engine = reader(engine)
        self._sessions = sessions
        self._desk = desk
        self._redactor = redactor
        self._templates = Templates()
        self._facets: tuple[float, dict[str, Any]] | None = None

    # Shared by every page

    def gate(
        self, handler: Callable[[Request, User], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Only for a signed-in person; anyone else is sent to the login page."""

        async def endpoint(request: Request) -> Response:
            user = self._sessions.user(request)
            if user is None:
                # After logging in, back to the page; a form sent without a session is not
                # sent again on its own (its token belonged to no one).
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = "/"
                return RedirectResponse(f"/login?{_next(target)}", 303)
            try:
                return await handler(request, user)
            except BadForm as exc:
                return self.render(request, user, "error.html", {"message": str(exc)}, 400)

        return endpoint

    def render(
        self,
        request: Request,
        user: User | None,
        name: str,
        context: dict[str, Any],
        status: int = 200,
    ) -> Response:
        csrf, new_cookie = self._sessions.csrf_token(request)
        base = {"user": user, "csrf": csrf, "path": request.url.path, "refresh": None}
        response = self._templates.page(name, {**base, **context}, status)
        self._sessions.keep_csrf_cookie(response, request, new_cookie)
        return response

    async def css(self, request: Request) -> Response:
        return FileResponse(STATIC / "app.css", headers={"Cache-Control": "max-age=3600"})

    # The list

    async def incidents(self, request: Request, user: User) -> Response:
        query = list_query(request)
        items, cursor, facets = await asyncio.to_thread(self._list, query)
        context = {
            "items": items,
            "query": query,
            "next": query.params(cursor=cursor) if cursor else None,
            "first": query.params(cursor=None) if query.cursor else None,
            "facets": facets,
            "refresh": LIST_REFRESH,
        }
        return self.render(request, user, "incidents.html", context)

    def _list(self, query: ListQuery) -> tuple[list[dict[str, Any]], int | None, dict[str, Any]]:
        flt = query.filter(datetime.now(UTC), PAGE_SIZE)
        with Session(self._engine) as session:
            items, cursor = history.list_incidents(session, flt)
            facets = self._facets_now(session.connection())
        return items, cursor, facets

    def _facets_now(self, conn: sa.Connection) -> dict[str, Any]:
        # The filter choices change rarely; listing them on every refresh of every open
        # list page would cost more than the page itself at 100,000 incidents.
        now = time.monotonic()
        if self._facets is None or now - self._facets[0] > FACETS_SECONDS:
            self._facets = (now, dict(stats.facets(conn)))
        return self._facets[1]

    # One incident

    async def incident(self, request: Request, user: User) -> Response:
        number = incident_id(request.path_params["incident_id"])
        detail = await asyncio.to_thread(self._detail, number)
        if detail is None:
            message = f"There is no incident {number}."
            return self.render(request, user, "error.html", {"message": message}, 404)
        notice = NOTICES.get(_pending(request.query_params.get("notice", ""), detail))
        context = {
            **detail,
            "notice": notice,
            "reference": uuid.uuid4().hex,
            "refresh": INCIDENT_REFRESH,
        }
        return self.render(request, user, "incident.html", context)

    def _detail(self, number: int) -> dict[str, Any] | None:
        with Session(self._engine) as session:
            found = history.incident_detail(session, number)
        if found is None:
            return None
        # Nothing stored should hold a secret (the audit and runs are redacted as they are
        # written); the page redacts again, as a page is the easiest place to copy one from.
        detail: dict[str, Any] = self._redactor.redact(found)
        timeline = steps([_entry(item) for item in detail.pop("timeline")])
        alerts = [_alert_step(event) for event in detail["events"]]
        story = sorted([*alerts, *timeline], key=lambda step: step.at)
        runs = detail.pop("actions")
        for run in runs:
            run["steps"] = [step for step in timeline if step.run_id == run["id"]]
            result = run.get("result")
            reason = result.get("reason") if isinstance(result, dict) else None
            run["reason"] = run.get("last_error") or reason
        return {"incident": detail, "story": story, "runs": runs, "links": _links(detail)}

    async def report(self, request: Request, user: User) -> Response:
        """The postmortem draft, as the API's report.md gives it, to download from the page."""
        number = incident_id(request.path_params["incident_id"])
        text = await asyncio.to_thread(self._report, number)
        if text is None:
            message = f"There is no incident {number}."
            return self.render(request, user, "error.html", {"message": message}, 404)
        name = f"incident-{number}-postmortem.md"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(text, media_type="text/markdown; charset=utf-8", headers=headers)

    def _report(self, number: int) -> str | None:
        with Session(self._engine) as session:
            timeline = incident_timeline(session, number)
        if timeline is None:
            return None
        return self._redactor.redact_text(postmortem_markdown(timeline))

    # Answers

    def answer(self, verb: Verb) -> Callable[[Request, User], Awaitable[Response]]:
        async def endpoint(request: Request, user: User) -> Response:
            number = incident_id(request.path_params["incident_id"])
            fields = await posted(request)
            if not self._sessions.csrf_ok(request, fields.get("csrf")):
                return self.render(request, user, "error.html", {"message": _CSRF}, 403)
            reference = fields.get("reference", "")
            if not (reference.isascii() and reference.isalnum() and len(reference) <= 40):
                reference = uuid.uuid4().hex
            answer = Answer(
                verb=verb,
                incident_id=number,
                actor=user.name,
                via="web",
                reference=f"{number}:{reference}",
                at=datetime.now(UTC),
                note=None,
            )
            notice = verb.value
            try:
                await asyncio.to_thread(self._desk.submit, answer)
            except UnknownIncident:
                message = f"There is no incident {number}."
                return self.render(request, user, "error.html", {"message": message}, 404)
            except AlreadyAcknowledged:
                notice = "already"
            except Refused:
                notice = "closed"
            except Exception as exc:
                if not classify(exc):
                    raise
                notice = "busy"
            return RedirectResponse(f"/incidents/{number}?notice={notice}", 303)

        return endpoint


_CSRF = "This form has expired or did not come from this site. Reload the page and try again."


def _pending(notice: str, detail: dict[str, Any]) -> str:
    """The notice to show: "sent" ones only until the answer is applied."""
    incident = detail["incident"]
    if notice == "acknowledge" and incident.get("acknowledged_at"):
        return ""
    if notice == "resolve" and incident.get("status") == "resolved":
        return ""
    return notice


def _next(target: str) -> str:
    return urlencode({"next": target})


def _entry(item: dict[str, Any]) -> Entry:
    return Entry(datetime.fromisoformat(item["at"]), item["kind"], item["run_id"], item["data"])


def _alert_step(event: dict[str, Any]) -> Step:
    raw = event.get("outcome")
    outcome: dict[str, Any] = raw if isinstance(raw, dict) else {}
    details = [f"delivered {event['deliveries']} times"] if event.get("deliveries", 1) > 1 else []
    reason = outcome.get("reason") or outcome.get("error")
    return Step(
        datetime.fromisoformat(event["received_at"]),
        "alert",
        f"Alert: {event['transition']}: {event['title']}",
        "bad" if event["transition"] in ("Triggered", "Re-Triggered") else "info",
        str(reason) if reason else None,
        details,
    )


def _links(incident: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """Each vendor's object for the incident: a link when its address is known, else what
    names it there (PagerDuty's dedup key, until a REST look-up has found the incident)."""
    refs = incident.get("refs") or {}
    out: list[tuple[str, str | None, str | None]] = []
    for key, ref in refs.items():
        if not isinstance(ref, dict):
            continue
        name = LINK_NAMES.get(key, key.replace("_", " "))
        url = ref.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            out.append((name, url, None))
        elif isinstance(ref.get("dedup_key"), str):
            out.append((name, None, f"dedup key {ref['dedup_key']}"))
    return out
