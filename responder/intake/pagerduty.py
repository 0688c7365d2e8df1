"""PagerDuty V3 webhooks: the `X-PagerDuty-Signature` check and the few fields of an
incident event that responder reads (which incident, what happened, who did it)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from responder.domain import Verb

# The event types that are a person's answer; `incident.reassigned` is recorded only.
PERSON = "user_reference"  # the agent type of a person
ANSWERS = {"incident.acknowledged": Verb.ACKNOWLEDGE, "incident.resolved": Verb.RESOLVE}
REASSIGNED = "incident.reassigned"
_SIGNATURE_VERSION = "v1="
_MAX_SIGNATURES = 10  # a header of thousands of candidates is an attack, not a rotation


EVENT_ID_MAX = 60  # PagerDuty's are 26


class EventError(ValueError):
    """The body is not a V3 webhook event responder can read; the message says why."""


@dataclass(frozen=True, slots=True)
class PagerDutyEvent:
    id: str  # the event's own id: the same on every redelivery
    event_type: str  # "incident.acknowledged", ...
    occurred_at: datetime
    agent: str | None  # who did it: the agent's summary (a user's name)
    # "user_reference" for a person; an integration (our own Events API calls among them) or
    # PagerDuty itself (auto-resolve) otherwise, or None.
    agent_type: str | None
    incident_key: str | None  # the dedup key our trigger sent: how we find our incident
    incident_url: str | None
    assignees: tuple[str, ...]  # names, for a reassignment


def signature_matches(body: bytes, header: str | None, secret: str) -> bool:
    """True when one of the header's `v1=<hex>` signatures is the HMAC-SHA256 of the raw
    body keyed with `secret`. PagerDuty sends several during a rotation of its secret."""
    if not header or not secret:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().encode()
    matched = False
    for raw in header.split(",")[:_MAX_SIGNATURES]:
        item = raw.strip()
        if not item.startswith(_SIGNATURE_VERSION):
            continue  # a later signature version this code does not know
        presented = item[len(_SIGNATURE_VERSION) :].lower().encode("latin-1", "replace")
        matched |= hmac.compare_digest(presented, expected)
    return matched


def parse_event(body: bytes) -> PagerDutyEvent:
    """The event of a webhook body; raises EventError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EventError("unreadable body: not JSON") from None
    event = data.get("event") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise EventError("no `event` object: not a PagerDuty V3 webhook")
    event_id, event_type = event.get("id"), event.get("event_type")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EventError("event.id is missing")
    if len(event_id.strip()) > EVENT_ID_MAX:
        # The answer's fingerprint keeps it whole: a longer one would be cut, and two
        # events sharing the first characters would count as one.
        raise EventError(f"event.id is longer than {EVENT_ID_MAX} characters")
    if not isinstance(event_type, str) or not event_type.strip():
        raise EventError("event.event_type is missing")
    incident = event.get("data")
    incident = incident if isinstance(incident, dict) else {}
    return PagerDutyEvent(
        id=event_id.strip(),
        event_type=event_type.strip(),
        occurred_at=_time(event.get("occurred_at")),
        agent=_summary(event.get("agent")),
        agent_type=_text(agent.get("type"))
        if isinstance(agent := event.get("agent"), dict)
        else None,
        incident_key=_text(incident.get("incident_key")),
        incident_url=_text(incident.get("html_url")),
        assignees=tuple(
            name
            for name in (_summary(item) for item in _list(incident.get("assignees")))
            if name is not None
        ),
    )


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise EventError("event.occurred_at is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError("event.occurred_at is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise EventError("event.occurred_at has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise EventError("event.occurred_at is out of range") from None


def _summary(value: Any) -> str | None:
    """A PagerDuty reference's human name (`summary`, or a user's `name`)."""
    if not isinstance(value, dict):
        return None
    return _text(value.get("summary")) or _text(value.get("name"))


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
