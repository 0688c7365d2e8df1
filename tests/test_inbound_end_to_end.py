"""End to end: an answer from Slack or PagerDuty goes through the pipeline and the outbox to
every vendor (the fakes), and the Slack root message shows it. Real database.

The pipeline that applies answers is main's (68d5819); until this branch is merged with it
these tests are skipped (the desk's AlreadyAcknowledged is its mark).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.main import Service
from responder.pipeline import answers as desk_module
from responder.store.tables import Incident
from tests.fakes.slack import FakeMessage
from tests.harness import post, running, sample
from tests.vendors import PAYMENTS_KEY, Vendors, settle, vendors

pytestmark = pytest.mark.skipif(
    not hasattr(desk_module, "AlreadyAcknowledged"),
    reason="needs the pipeline that applies answers (main 68d5819); runs once merged",
)

SLACK_SECRET = "slack-signing-secret-e2e"
PD_SECRET = "pd-webhook-secret-e2e"
CHANNEL = "C0PAYMENTS"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        yield all_three


@pytest.fixture
def app(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> Iterator[tuple[Service, TestClient, Incident]]:
    settings = fakes.settings(
        migrated_url, SLACK_SIGNING_SECRET=SLACK_SECRET, PAGERDUTY_WEBHOOK_SECRET=PD_SECRET
    )
    with running(settings) as (service, client):
        assert (
            post(client, sample(samples_dir, "payment-failure-rate.triggered")).status_code == 202
        )
        settle(service)
        yield service, client, incident(service)


def incident(service: Service) -> Incident:
    with Session(service.engine) as session:
        return session.exec(select(Incident)).one()


def slack_headers(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash(client: TestClient, text: str, trigger: str = "e2e.1") -> str:
    form = {"user_id": "U0ALICE", "user_name": "alice", "text": text, "trigger_id": trigger}
    body = urllib.parse.urlencode(form).encode()
    response = client.post("/slack/commands", content=body, headers=slack_headers(body))
    assert response.status_code == 200, response.text
    text_: str = response.json()["text"]
    return text_


def press(client: TestClient, action_id: str, incident_id: int) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob"},
        "trigger_id": "e2e.button.1",
        "actions": [{"action_id": action_id, "value": str(incident_id), "type": "button"}],
    }
    body = urllib.parse.urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    response = client.post("/slack/interactions", content=body, headers=slack_headers(body))
    assert response.status_code == 200, response.text


def root(fakes: Vendors) -> FakeMessage:
    [message] = fakes.slack.root_messages(CHANNEL)
    return message


def button_ids(message: FakeMessage) -> list[str]:
    return [
        element["action_id"]
        for block in message.blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def shown(message: FakeMessage) -> str:
    return orjson.dumps(message.blocks).decode()


def test_slack_ack_reaches_pagerduty_and_rewrites_the_root(
    app: tuple[Service, TestClient, Incident], fakes: Vendors
) -> None:
    service, client, opened = app
    assert button_ids(root(fakes)) == ["responder.ack", "responder.resolve", "responder.silence"]
    assert "recorded" in slash(client, f"ack {opened.id}")
    settle(service)
    after = incident(service)
    assert (after.status, after.acknowledged_by) == ("acknowledged", "alice (slack)")
    [alert] = fakes.pagerduty.alerts(PAYMENTS_KEY)
    assert alert.status == "acknowledged"
    message = root(fakes)
    assert "Acknowledged by alice (slack) at " in shown(message)
    assert button_ids(message) == ["responder.resolve", "responder.silence"]
    assert "Acknowledged by alice (slack)" in slash(client, f"incident {opened.id}")
    # Someone else, a moment later: told who did, and nothing is stored.
    events = event_count(service)
    reply = slash(client, f"ack {opened.id}", trigger="e2e.2")
    assert reply == f"Incident {opened.id} is acknowledged already, by alice (slack)."
    assert event_count(service) == events


def test_a_pagerduty_acknowledgement_is_applied_and_shown_in_slack(
    app: tuple[Service, TestClient, Incident], fakes: Vendors
) -> None:
    service, client, _ = app
    [alert] = fakes.pagerduty.alerts(PAYMENTS_KEY)
    body = orjson.dumps(
        {
            "event": {
                "id": "01E2EACK",
                "event_type": "incident.acknowledged",
                "resource_type": "incident",
                "occurred_at": "2026-12-06T09:30:00Z",
                "agent": {"id": "PADA", "summary": "Ada Lovelace", "type": "user_reference"},
                "data": {"id": "PINC", "type": "incident", "incident_key": alert.dedup_key},
            }
        }
    )
    signature = "v1=" + hmac.new(PD_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhooks/pagerduty",
        content=body,
        headers={"X-PagerDuty-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    settle(service)
    after = incident(service)
    assert (after.status, after.acknowledged_by) == ("acknowledged", "Ada Lovelace (pagerduty)")
    assert "Acknowledged by Ada Lovelace (pagerduty)" in shown(root(fakes))
    # PagerDuty delivers it again after we applied it: nothing to change, nothing stored.
    events = event_count(service)
    again = client.post(
        "/webhooks/pagerduty",
        content=body,
        headers={"X-PagerDuty-Signature": signature, "Content-Type": "application/json"},
    )
    assert again.status_code == 200, again.text
    assert "already acknowledged" in again.json()["ignored"]
    assert event_count(service) == events


def test_the_resolve_button_resolves_everything(
    app: tuple[Service, TestClient, Incident], fakes: Vendors
) -> None:
    service, client, opened = app
    assert opened.id is not None
    press(client, "responder.resolve", opened.id)
    settle(service)
    after = incident(service)
    assert (after.status, after.resolved_by) == ("resolved", "bob (slack)")
    [alert] = fakes.pagerduty.alerts(PAYMENTS_KEY)
    assert alert.status == "resolved"
    message = root(fakes)
    assert button_ids(message) == []
    assert "Resolved by bob (slack)" in shown(message)
    # A second resolve from someone who has not seen it yet: refused, nothing stored.
    events = event_count(service)
    reply = slash(client, f"resolve {opened.id}")
    assert reply.startswith("Nothing done: ") and "already resolved by bob (slack)" in reply
    assert event_count(service) == events


def event_count(service: Service) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM alert_event")).scalar_one())
