"""`POST /webhooks/pagerduty`: PagerDuty V3 webhooks, signed with PAGERDUTY_WEBHOOK_SECRET.

A person's acknowledgement or resolution in PagerDuty becomes an answer in the incident's
own event stream (stored, then answered 202; the pipeline applies it); a reassignment is an
audit row. Whatever responder does not act on is answered 200 with the reason, so that
PagerDuty does not deliver it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from starlette.requests import Request
from starlette.responses import Response

from responder.domain import Answer
from responder.intake.pagerduty import (
    ANSWERS,
    PERSON,
    REASSIGNED,
    EventError,
    PagerDutyEvent,
    parse_event,
    signature_matches,
)
from responder.pipeline.answers import AlreadyAcknowledged, AnswerDesk, Refused, UnknownIncident
from responder.redact import Redactor
from responder.store import audit
from responder.store.db import transaction
from responder.web.bodies import bounded_body
from responder.web.webhook import json_response

log = structlog.get_logger(__name__)

REF_KIND = "pagerduty"  # AnswerDesk.incident_for_ref: PagerDuty's incident_key (our dedup key)
REASSIGNED_KIND = "pagerduty.reassigned"
_RETRY = {"Retry-After": "5"}


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: dict[str, Any]


class PagerDutyWebhook:
    def __init__(
        self,
        desk: AnswerDesk,
        secret: str | None,
        engine: sa.Engine,
        redactor: Redactor,
        max_body: int,
    ) -> None:
        self._desk = desk
        self._secret = secret
        self._engine = engine
        self._redactor = redactor
        self._max_body = max_body

    async def handle(self, request: Request) -> Response:
        if not self._secret:
            # Refused rather than taken unsigned: anyone could acknowledge pages otherwise.
            message = "set PAGERDUTY_WEBHOOK_SECRET to accept PagerDuty webhooks"
            return json_response({"error": message}, 401)
        body = await bounded_body(request, self._max_body)
        if isinstance(body, Response):
            return body
        if not signature_matches(body, request.headers.get("x-pagerduty-signature"), self._secret):
            return json_response({"error": "missing or wrong X-PagerDuty-Signature"}, 401)
        try:
            event = parse_event(body)
        except EventError as exc:
            return json_response({"error": str(exc)}, 400)
        try:
            reply = await asyncio.to_thread(self._take, event)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("pagerduty_webhook.store_failed", error=type(exc).__name__)
            message = "database unavailable; deliver again later"
            return json_response({"error": message}, 503, _RETRY)
        return json_response(reply.body, reply.status)

    def _take(self, event: PagerDutyEvent) -> _Reply:
        verb = ANSWERS.get(event.event_type)
        if verb is None and event.event_type != REASSIGNED:
            return _ignored(event, f"responder does not act on {event.event_type}")
        if verb is not None and event.agent_type != PERSON:
            # Our own acknowledge/resolve events come back this way, as do PagerDuty's
            # automatic resolutions: only a person's change is an answer (and no echo loops).
            return _ignored(event, f"not a person's change (agent {event.agent_type or 'none'})")
        incident_id = (
            self._desk.incident_for_ref(REF_KIND, event.incident_key)
            if event.incident_key
            else None
        )
        if incident_id is None:
            log.info(
                "pagerduty_webhook.unknown_incident",
                event_id=event.id,
                event_type=event.event_type,
                incident_key=event.incident_key,
            )
            return _ignored(event, "no responder incident has this PagerDuty incident_key")
        if verb is None:
            return self._reassigned(event, incident_id)
        answer = Answer(
            verb,
            incident_id,
            actor=event.agent or "someone",
            via="pagerduty",
            reference=event.id,
            at=event.occurred_at,
            note=event.incident_url,
        )
        try:
            accepted = self._desk.submit(answer)
        except UnknownIncident:
            return _ignored(event, "no responder incident has this PagerDuty incident_key")
        except (Refused, AlreadyAcknowledged) as exc:
            # Nothing to change (resolved or acknowledged already), nothing stored.
            return _ignored(event, str(exc))
        body: dict[str, Any] = {
            "event_id": accepted.event_id,
            "incident_id": accepted.incident_id,
            "answer": verb.value,
        }
        if not accepted.new:
            return _Reply(200, {**body, "duplicate": True})
        return _Reply(202, body)

    def _reassigned(self, event: PagerDutyEvent, incident_id: int) -> _Reply:
        record = audit.AuditRecord(
            kind=REASSIGNED_KIND,
            data={
                "reference": event.id,
                "agent": event.agent,
                "assignees": list(event.assignees),
                "occurred_at": event.occurred_at.isoformat(),
            },
            incident_id=incident_id,
        )
        with transaction(self._engine) as conn:
            new = audit.append_once(conn, record, self._redactor, reference=event.id)
        body: dict[str, Any] = {"incident_id": incident_id, "recorded": REASSIGNED_KIND}
        return _Reply(202, body) if new else _Reply(200, {**body, "duplicate": True})


def _ignored(event: PagerDutyEvent, reason: str) -> _Reply:
    return _Reply(200, {"ignored": reason, "event_type": event.event_type})
