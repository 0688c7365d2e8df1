"""`POST /webhooks/pagerduty`: PagerDuty V3 webhooks signed as PagerDuty documents it
(`X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from responder.intake.pagerduty import signature_matches
from responder.main import Service
from responder.store import audit
from tests.harness import running, settings_for
from tests.inbound import answers, name_incident, open_incident, stored

SECRET = "pd-webhook-secret-7"
KEY = "responder-incident-dedup-key-1"
PATH = "/webhooks/pagerduty"

App = tuple[Service, TestClient, int]


@pytest.fixture
def app(migrated_url: str, samples_dir: Path) -> Iterator[App]:
    with running(settings_for(migrated_url, PAGERDUTY_WEBHOOK_SECRET=SECRET)) as (service, client):
        incident_id = open_incident(service, client, samples_dir)
        name_incident(service, incident_id, "pagerduty", KEY)
        yield service, client, incident_id


def event(
    event_type: str = "incident.acknowledged",
    *,
    event_id: str = "01DEN4HPBQAAAG05V5QQYBRZMF",
    key: str = KEY,
    agent_type: str = "user_reference",
) -> bytes:
    return orjson.dumps(
        {
            "event": {
                "id": event_id,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-12-06T09:14:05.123Z",
                "agent": {"id": "PLH1HKV", "summary": "Ada Lovelace", "type": agent_type},
                "client": {"name": "PagerDuty"},
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "incident_key": key,
                    "status": "acknowledged",
                    "assignees": [
                        {"id": "PTUXL6G", "summary": "Grace Hopper", "type": "user_reference"}
                    ],
                },
            }
        }
    )


def sign(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(client: TestClient, body: bytes, signature: str | bytes | None) -> Any:
    # As bytes: a header may carry what is not ASCII, and the server reads it as latin-1.
    headers = {b"content-type": b"application/json"}
    if signature is not None:
        sent = signature.encode() if isinstance(signature, str) else signature
        headers[b"x-pagerduty-signature"] = sent
    return client.post(PATH, content=body, headers=headers)


def test_a_persons_acknowledgement_is_stored_once_for_its_incident(app: App) -> None:
    service, client, incident_id = app
    before = stored(service)
    body = event()
    response = deliver(client, body, sign(body))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["incident_id"] == incident_id
    assert answer["answer"] == "acknowledge"
    (row,) = answers(service)
    assert row["fingerprint"] == "answer:pagerduty:a:01DEN4HPBQAAAG05V5QQYBRZMF"
    assert (row["answer"], row["incident_id"], row["actor"], row["via"]) == (
        "acknowledge",
        incident_id,
        "Ada Lovelace",
        "pagerduty",
    )
    assert row["at"].startswith("2026-12-06T09:14:05.123")
    with service.engine.connect() as conn:
        event_id = conn.execute(
            sa.text("SELECT id FROM alert_event WHERE fingerprint LIKE 'answer:%'")
        ).scalar_one()
    assert answer["event_id"] == event_id
    assert stored(service).events == before.events + 1

    # PagerDuty delivers again (it retries until it hears a 2xx): nothing new is stored.
    again = deliver(client, body, sign(body))
    assert again.status_code == 200, again.text
    assert again.json() == {**answer, "duplicate": True}
    assert len(answers(service)) == 1
    assert stored(service).events == before.events + 1


def test_a_persons_resolution_is_stored_as_a_resolve(app: App) -> None:
    service, client, incident_id = app
    body = event("incident.resolved", event_id="01RESOLVE")
    response = deliver(client, body, sign(body))
    assert response.status_code == 202, response.text
    (row,) = answers(service)
    assert (row["answer"], row["incident_id"]) == ("resolve", incident_id)


def test_any_of_the_signatures_of_a_rotation_is_enough(app: App) -> None:
    service, client, _ = app
    body = event()
    header = f"{sign(body, 'the-old-secret')}, v2=abc,{sign(body)}"
    assert deliver(client, body, header).status_code == 202
    assert len(answers(service)) == 1


def _signatures(body: bytes) -> dict[str, str | bytes | None]:
    other = event(event_id="another-event")
    return {
        "missing": None,
        "empty": "",
        "wrong secret": sign(body, "not-the-secret"),
        "another body's": sign(other),
        "bare hex": sign(body).removeprefix("v1="),
        "unknown version": sign(body).replace("v1=", "v0="),
        "truncated": sign(body)[:-2],
        "not ascii": ("v1=ä" + sign(body)[4:]).encode(),
    }


@pytest.mark.parametrize("case", list(_signatures(b"{}")))
def test_a_bad_or_missing_signature_is_401_and_changes_nothing(app: App, case: str) -> None:
    service, client, _ = app
    before = stored(service)
    body = event()
    response = deliver(client, body, _signatures(body)[case])
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "missing or wrong X-PagerDuty-Signature"}
    assert stored(service) == before
    assert answers(service) == []


def test_without_a_secret_every_delivery_is_refused(migrated_url: str, samples_dir: Path) -> None:
    with running(settings_for(migrated_url)) as (service, client):
        incident_id = open_incident(service, client, samples_dir)
        name_incident(service, incident_id, "pagerduty", KEY)
        before = stored(service)
        body = event()
        for signature in (sign(body), sign(body, ""), None):
            response = deliver(client, body, signature)
            assert response.status_code == 401
            assert "PAGERDUTY_WEBHOOK_SECRET" in response.json()["error"]
        assert stored(service) == before


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (event(key="nobody-knows-this-key"), "no responder incident"),
        (event("incident.priority_updated"), "does not act on incident.priority_updated"),
        (event("pagey.ping"), "does not act on pagey.ping"),
        # Our own acknowledgement through the Events API comes back as a webhook too.
        (event(agent_type="events_api_v2_inbound_integration_reference"), "not a person's"),
        (event("incident.resolved", agent_type="service_reference"), "not a person's"),
    ],
    ids=["unknown incident", "other event", "ping", "our own echo", "automatic resolve"],
)
def test_what_responder_does_not_act_on_is_200_and_stores_nothing(
    app: App, body: bytes, why: str
) -> None:
    service, client, _ = app
    before = stored(service)
    response = deliver(client, body, sign(body))
    assert response.status_code == 200, response.text
    assert why in response.json()["ignored"]
    assert stored(service) == before


def test_a_reassignment_is_audited_once(app: App) -> None:
    service, client, incident_id = app
    before = stored(service)
    body = event("incident.reassigned", event_id="01REASSIGN")
    response = deliver(client, body, sign(body))
    assert response.status_code == 202, response.text
    assert response.json() == {"incident_id": incident_id, "recorded": "pagerduty.reassigned"}
    assert deliver(client, body, sign(body)).json()["duplicate"] is True
    with service.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT incident_id, data FROM audit_entry WHERE kind = 'pagerduty.reassigned'")
        ).all()
        assert audit.verify(conn).ok
    (row,) = rows
    assert row[0] == incident_id
    data = orjson.loads(row[1])
    assert data["assignees"] == ["Grace Hopper"]
    assert data["reference"] == "01REASSIGN"
    assert stored(service) == type(before)(before.events, before.audit + 1)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"event": 1}', b'{"event": {"id": "x"}}', event()[:-1]],
    ids=["empty", "not json", "a list", "event not an object", "no type", "cut short"],
)
def test_a_signed_but_unreadable_body_is_400(app: App, body: bytes) -> None:
    service, client, _ = app
    before = stored(service)
    response = deliver(client, body, sign(body))
    assert response.status_code == 400, response.text
    assert stored(service) == before


def test_a_bad_occurred_at_is_400(app: App) -> None:
    _service, client, _ = app
    data = orjson.loads(event())
    data["event"]["occurred_at"] = "2026-12-06T09:14:05"  # no time zone
    body = orjson.dumps(data)
    response = deliver(client, body, sign(body))
    assert response.status_code == 400
    assert "time zone" in response.json()["error"]


def test_signature_matching_follows_the_documented_scheme() -> None:
    body = '{"event": {"summary": "Zürich"}}'.encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature_matches(body, f"v1={digest}", SECRET)
    assert signature_matches(body, f"v1={digest.upper()}", SECRET)  # hex is hex
    assert signature_matches(body, f"v1=00,v1={digest}", SECRET)
    assert not signature_matches(body, f"v1={digest}", "other")
    assert not signature_matches(body + b" ", f"v1={digest}", SECRET)
    assert not signature_matches(body, None, SECRET)
    assert not signature_matches(body, f"v1={digest}", "")
    # Far past any real rotation: the eleventh candidate is not looked at.
    assert not signature_matches(body, ",".join(["v1=00"] * 10 + [f"v1={digest}"]), SECRET)
