"""End to end: the four sample families through webhook, pipeline, runner and the Slack fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.main import Service
from responder.store import audit
from responder.store.tables import ActionRun, AuditEntry, Incident
from tests.fakes.slack import FakeSlack
from tests.harness import API_TOKEN, SLACK_TOKEN, drain, post, running, sample, settings_for

CHANNELS = {
    "#payments-alerts": "C0PAYMENTS",
    "#security-alerts": "C0SECURITY",
    "#incidents": "C0INCIDENTS",
    "#platform-alerts": "C0PLATFORM",
    "#alerts-unrouted": "C0UNROUTED",
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=SLACK_TOKEN, channels=CHANNELS) as fake:
        yield fake


@pytest.fixture
def app(migrated_url: str, slack: FakeSlack) -> Iterator[tuple[Service, TestClient]]:
    settings = settings_for(
        migrated_url, SLACK_BOT_TOKEN=SLACK_TOKEN, RESPONDER_SLACK_API_URL=slack.base_url
    )
    with running(settings) as pair:
        yield pair


def deliver(service: Service, client: TestClient, samples_dir: Path, *names: str) -> None:
    for name in names:
        response = post(client, sample(samples_dir, name))
        assert response.status_code == 202, response.text
        drain(service)


def header_text(blocks: list[dict[str, object]] | None) -> str:
    for block in blocks or []:
        if block.get("type") == "header":
            text = block["text"]
            assert isinstance(text, dict)
            return str(text["text"])
    return ""


def test_four_families_post_reply_and_resolve(
    app: tuple[Service, TestClient], slack: FakeSlack, samples_dir: Path
) -> None:
    service, client = app
    deliver(
        service,
        client,
        samples_dir,
        "payment-failure-rate.triggered",
        "api-latency.warn",
        "fraud-detection-down.triggered",
        "checkout-error-rate.triggered",
        "api-latency.triggered",
        "fraud-detection-down.renotify",
        "payment-failure-rate.recovered",
        "checkout-error-rate.recovered",
        "api-latency.recovered",
        "fraud-detection-down.recovered",
    )
    expected_roots = {
        "C0PAYMENTS": "High Payment Failure Rate",
        "C0PLATFORM": "High API Response Time",
        "C0SECURITY": "Fraud Detection System Down",
        "C0INCIDENTS": "Error rate spike in checkout-service",
    }
    for channel, title in expected_roots.items():
        roots = slack.root_messages(channel)
        assert len(roots) == 1, f"{channel}: {[m.text for m in roots]}"
        root = roots[0]
        assert title in (root.text or "")
        # recovery: one broadcast reply in the thread, and the root turned into "resolved"
        replies = slack.replies(channel, root.ts)
        assert any(r.reply_broadcast for r in replies), channel
        assert root.edits, f"{channel}: root message was never updated"
        assert "resolved" in header_text(root.blocks).lower()
    # an escalation is a thread reply, never a second root or page; the renotify, 30
    # minutes in, is within the hour of the first message: suppressed, only recovery told
    assert len(slack.replies("C0SECURITY", slack.root_messages("C0SECURITY")[0].ts)) == 1
    assert len(slack.replies("C0PLATFORM", slack.root_messages("C0PLATFORM")[0].ts)) == 2
    assert slack.root_messages("C0UNROUTED") == []

    with Session(service.engine) as session:
        incidents = session.exec(select(Incident)).all()
        assert len(incidents) == 4
        assert {i.status for i in incidents} == {"resolved"}
        assert all(i.refs and i.refs["slack"]["ts"] for i in incidents)
        runs = session.exec(select(ActionRun)).all()
        assert {r.state for r in runs if r.action.startswith("slack.")} == {"succeeded"}
        # Without a routing key the pages are recorded as skipped, with what they would send.
        paged = [r for r in runs if r.action.startswith("pagerduty.")]
        assert paged and {r.state for r in paged} == {"skipped"}
        kinds = {a.kind for a in session.exec(select(AuditEntry)).all()}
    assert {"event.received", "incident.opened", "incident.resolved", "playbooks.matched"} <= kinds
    assert {"run.planned", "run.attempt", "run.succeeded"} <= kinds
    with service.engine.connect() as conn:
        report = audit.verify(conn)
    assert report.ok, report
    # the token reached Slack but never the audit log
    with Session(service.engine) as session:
        assert all(SLACK_TOKEN not in a.data for a in session.exec(select(AuditEntry)).all())

    detail = client.get(
        f"/api/incidents/{incidents[0].id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert detail.status_code == 200
    assert {"events", "actions", "timeline"} <= set(detail.json())


def test_redelivery_acts_once(
    app: tuple[Service, TestClient], slack: FakeSlack, samples_dir: Path
) -> None:
    service, client = app
    body = sample(samples_dir, "fraud-detection-down.triggered")
    assert post(client, body).status_code == 202
    drain(service)
    again = post(client, body)
    assert again.status_code == 200
    assert again.json()["incident_id"] is not None
    assert again.json()["playbooks"] == ["fraud-detection-down"] or again.json()["playbooks"]
    drain(service)
    assert len(slack.root_messages("C0SECURITY")) == 1


def test_slack_down_then_up_retries_and_keeps_order(
    app: tuple[Service, TestClient], slack: FakeSlack, samples_dir: Path
) -> None:
    service, client = app
    slack.fail_next("chat.postMessage", status=503, error="service_unavailable", count=1)
    deliver(service, client, samples_dir, "fraud-detection-down.triggered")
    with Session(service.engine) as session:
        run = session.exec(select(ActionRun).where(ActionRun.action == "slack.post")).one()
        assert run.state == "pending" and run.attempts == 1 and run.last_error
        # make the retry due now instead of waiting out the backoff
        run.not_before = run.created_at
        session.add(run)
        session.commit()
    deliver(service, client, samples_dir, "fraud-detection-down.recovered")
    roots = slack.root_messages("C0SECURITY")
    assert len(roots) == 1
    assert roots[0].edits, "the resolve ran after the retried post, in order"
    with Session(service.engine) as session:
        kinds = [a.kind for a in session.exec(select(AuditEntry)).all()]
    assert "run.retry" in kinds


def test_permanent_slack_error_fails_at_once_with_the_answer_audited(
    migrated_url: str, slack: FakeSlack, samples_dir: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text("name: nowhere\nactions:\n  - slack.post: {channel: '#does-not-exist'}\n")
    settings = settings_for(
        migrated_url,
        playbooks=tmp_path,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        RESPONDER_SLACK_API_URL=slack.base_url,
    )
    with running(settings) as (service, client):
        deliver(service, client, samples_dir, "checkout-error-rate.triggered")
        with Session(service.engine) as session:
            run = session.exec(select(ActionRun)).one()
            failed = session.exec(select(AuditEntry).where(AuditEntry.kind == "run.failed")).one()
    assert run.state == "failed" and run.attempts == 1
    assert "channel_not_found" in failed.data


def test_without_slack_token_runs_are_skipped_with_the_request(
    migrated_url: str, samples_dir: Path
) -> None:
    with running(settings_for(migrated_url)) as (service, client):
        deliver(service, client, samples_dir, "payment-failure-rate.triggered")
        with Session(service.engine) as session:
            run = session.exec(select(ActionRun).where(ActionRun.action == "slack.post")).one()
            page = session.exec(
                select(ActionRun).where(ActionRun.action == "pagerduty.trigger")
            ).one()
            datadog = session.exec(
                select(ActionRun).where(ActionRun.action == "datadog.incident")
            ).one()
    # Each skip names what to set, for every vendor.
    assert datadog.state == "skipped" and datadog.result is not None
    assert datadog.result["reason"] == "integration not configured: set DD_API_KEY and DD_APP_KEY"
    assert run.state == "skipped"
    assert run.result is not None
    assert run.result["reason"] == "integration not configured: set SLACK_BOT_TOKEN"
    assert run.result["request"]["channel"] == "#payments-alerts"
    # No routing key anywhere: the page is skipped too, with the event it would have sent.
    assert page.state == "skipped" and page.result is not None
    request = page.result["response"]["request"]
    assert request["event_action"] == "trigger"
    assert request["routing_key"] == "env:PAGERDUTY_PAYMENTS_KEY"
    assert request["payload"]["severity"] == "critical"
