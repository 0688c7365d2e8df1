"""People answer incidents through the API and the CLI: acknowledge and resolve reach every
vendor through the outbox, escalations stop on acknowledgement, MTTA and MTTR come from the
answers' times, and every change is audited with its actor. Real database, vendor fakes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from responder.cli import app as cli
from responder.main import Service
from responder.store import audit
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident
from tests.harness import API_TOKEN, REPO, post, running, sample
from tests.logstate import logging_kept
from tests.vendors import PAYMENTS_KEY, Vendors, settle, vendors

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PAYMENTS = "#payments-alerts"
ESCALATING = """
name: escalating
match:
  tags: {service: payment}
actions:
  - pagerduty.trigger: {severity: critical}
  - slack.post: {channel: "#payments-alerts"}
  # Nobody acknowledged in 15 minutes: page the secondary and tell #incidents.
  - pagerduty.trigger:
      routing_key: env:PAGERDUTY_PAYMENTS_KEY
      after: 15m
      if: incident.unacknowledged
  - slack.post: {channel: "#incidents", after: 15m, if: incident.unacknowledged}
"""


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        yield all_three


def only_incident(service: Service) -> Incident:
    with Session(service.engine) as session:
        return session.exec(select(Incident)).one()


def audit_kinds(service: Service, incident_id: int) -> list[tuple[str, dict[str, Any]]]:
    with Session(service.engine) as session:
        rows = session.exec(
            select(AuditEntry).where(AuditEntry.incident_id == incident_id).order_by(AuditEntry.seq)  # type: ignore[arg-type]
        ).all()
    return [(row.kind, json.loads(row.data)) for row in rows]


def runs_of(service: Service) -> list[ActionRun]:
    with Session(service.engine) as session:
        return list(session.exec(select(ActionRun).order_by(ActionRun.id)).all())  # type: ignore[arg-type]


def event_count(service: Service) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one())


def trigger(service: Service, client: TestClient, samples_dir: Path) -> Incident:
    assert post(client, sample(samples_dir, "payment-failure-rate.triggered")).status_code == 202
    settle(service)
    return only_incident(service)


def test_acknowledge_through_the_api_reaches_pagerduty_datadog_and_the_thread(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        incident = trigger(service, client, samples_dir)
        assert incident.id is not None
        [alert] = fakes.pagerduty.alerts(PAYMENTS_KEY)
        assert alert.status == "triggered"
        # PagerDuty's webhooks will name the incident by the dedup key: it is known now.
        assert service.desk.incident_for_ref("pagerduty", alert.dedup_key) == incident.id
        assert service.desk.incident_for_ref("pagerduty", "responder:other") is None

        answer = client.post(
            f"/api/incidents/{incident.id}/acknowledge",
            json={"actor": "alice", "note": "looking"},
            headers=AUTH,
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["incident_id"] == incident.id
        settle(service)

        after = only_incident(service)
        assert after.status == "acknowledged"
        assert after.acknowledged_by == "alice (api)"
        assert after.acknowledged_at is not None and after.acknowledged_at >= after.opened_at
        # PagerDuty: the same alert acknowledged through the Events API.
        acks = [e for e in fakes.pagerduty.events(PAYMENTS_KEY) if e.action == "acknowledge"]
        assert len(acks) == 1 and acks[0].dedup_key == alert.dedup_key
        assert alert.status == "acknowledged"
        # Datadog: a line on the incident's timeline naming who.
        [dd] = fakes.datadog.incidents()
        assert any(
            "Acknowledged" in a["attributes"]["attachment"]["title"]
            and "alice (api)" in a["attributes"]["attachment"]["title"]
            for a in dd.attachments
        ), dd.attachments
        # Slack: the thread is told, and the root is rewritten.
        channel = "C0PAYMENTS"
        [root] = fakes.slack.root_messages(channel)
        replies = fakes.slack.replies(channel, root.ts)
        assert any("Acknowledged by alice (api)" in (r.text or "") for r in replies), replies
        assert root.edits, "the root message was not rewritten"
        # The record: who, when, through what.
        kinds = audit_kinds(service, incident.id)
        [(_, changed)] = [(k, d) for k, d in kinds if k == "incident.acknowledged"]
        assert changed["actor"] == "alice (api)" and changed["to"] == "acknowledged"
        # Stats: MTTA exists now.
        stats = client.get("/api/stats", headers=AUTH).json()
        assert stats["mtta_seconds"] is not None and stats["mtta_seconds"] >= 0

        # Acknowledging again stores nothing and says who did.
        events_before = event_count(service)
        again = client.post(f"/api/incidents/{incident.id}/acknowledge", headers=AUTH)
        assert again.status_code == 200 and again.json()["acknowledged_by"] == "alice (api)"
        assert event_count(service) == events_before
        with service.engine.connect() as conn:
            assert audit.verify(conn).ok


def test_a_person_resolves_everything_and_the_later_recovery_acts_nowhere(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        incident = trigger(service, client, samples_dir)
        answer = client.post(
            f"/api/incidents/{incident.id}/resolve",
            json={"actor": "bob"},
            headers={**AUTH, "Idempotency-Key": "k-1"},
        )
        assert answer.status_code == 202, answer.text
        # A retried call with the same key is stored once.
        retry = client.post(
            f"/api/incidents/{incident.id}/resolve",
            json={"actor": "bob"},
            headers={**AUTH, "Idempotency-Key": "k-1"},
        )
        assert retry.status_code == 202 and retry.json()["new"] is False
        assert retry.json()["event_id"] == answer.json()["event_id"]
        settle(service)

        after = only_incident(service)
        assert after.status == "resolved"
        assert after.resolved_by == "bob (api)" and after.resolution == "resolve"
        [alert] = fakes.pagerduty.alerts(PAYMENTS_KEY)
        assert alert.status == "resolved"
        [dd] = fakes.datadog.incidents()
        assert dd.state == "resolved"
        titles = [a["attributes"]["attachment"]["title"] for a in dd.attachments]
        assert any(t.startswith("Resolved by bob (api)") for t in titles), titles
        [root] = fakes.slack.root_messages("C0PAYMENTS")
        replies = fakes.slack.replies("C0PAYMENTS", root.ts)
        assert any("Resolved by bob (api)" in (r.text or "") for r in replies), replies

        # Resolved: a further answer is refused, and nothing is stored.
        events_before = event_count(service)
        late = client.post(f"/api/incidents/{incident.id}/acknowledge", headers=AUTH)
        assert late.status_code == 409 and "bob (api)" in late.json()["error"]
        assert event_count(service) == events_before

        # Datadog's recovery comes later: recorded, acting nowhere.
        runs_before = len(runs_of(service))
        recovered = sample(samples_dir, "payment-failure-rate.recovered")
        assert post(client, recovered).status_code == 202
        settle(service)
        assert len(runs_of(service)) == runs_before
        resolves = [e for e in fakes.pagerduty.events(PAYMENTS_KEY) if e.action == "resolve"]
        assert len(resolves) == 1
        late_records = [d for k, d in audit_kinds(service, incident.id or 0) if k == "event.late"]
        assert late_records and "resolved by bob (api)" in late_records[-1]["reason"]


def test_one_request_id_for_an_acknowledge_and_then_a_resolve_is_two_answers(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        incident = trigger(service, client, samples_dir)
        key = {**AUTH, "Idempotency-Key": "page-42"}
        acked = client.post(f"/api/incidents/{incident.id}/acknowledge", headers=key)
        settle(service)
        resolved = client.post(f"/api/incidents/{incident.id}/resolve", headers=key)
        assert (acked.status_code, resolved.status_code) == (202, 202)
        assert resolved.json()["new"] is True
        assert resolved.json()["event_id"] != acked.json()["event_id"]
        settle(service)
        assert only_incident(service).status == "resolved"


def test_api_answers_need_the_token_and_a_known_incident(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        incident = trigger(service, client, samples_dir)
        before = event_count(service)
        path = f"/api/incidents/{incident.id}/acknowledge"
        assert client.post(path).status_code == 401
        assert client.post(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/api/incidents/999/acknowledge", headers=AUTH).status_code == 404
        bad = client.post(path, content=b"[1]", headers=AUTH)
        assert bad.status_code == 400 and "JSON object" in bad.json()["error"]
        extra = client.post(path, json={"actor": "a", "who": "b"}, headers=AUTH)
        assert extra.status_code == 400 and "who" in extra.json()["error"]
        assert event_count(service) == before
        assert only_incident(service).status == "triggered"


def invoke(args: list[str], env: dict[str, str]) -> Result:
    with logging_kept():  # the CLI configures logging for the whole process
        result: Result = CliRunner().invoke(
            cli, args, env={"RESPONDER_LOG_LEVEL": "warning", **env}
        )
        return result


def write_escalating(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "escalating.yaml").write_text(ESCALATING)
    return folder


def make_escalations_due(service: Service) -> int:
    """Fifteen minutes pass: the delayed steps fall due."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    runs = ActionRun.__table__  # type: ignore[attr-defined]
    with service.engine.begin() as conn:
        moved = conn.execute(
            sa.update(runs)
            .where(runs.c.condition == "incident.unacknowledged", runs.c.state == "pending")
            .values(scheduled_at=past, not_before=past)
        )
    return int(moved.rowcount)


def test_nobody_acknowledges_so_the_escalation_runs_once_after_a_restart(
    migrated_url: str, fakes: Vendors, samples_dir: Path, tmp_path: Path
) -> None:
    settings = fakes.settings(migrated_url, write_escalating(tmp_path))
    with running(settings) as (service, client):
        trigger(service, client, samples_dir)
    assert len(fakes.pagerduty.events(PAYMENTS_KEY)) == 0
    with running(settings) as (service, client):  # restarted: the timers are in the database
        assert make_escalations_due(service) == 2
        settle(service)
        settle(service)
        pages = [e for e in fakes.pagerduty.events(PAYMENTS_KEY) if e.action == "trigger"]
        assert len(pages) == 1
        assert len(fakes.slack.root_messages("C0INCIDENTS")) == 1
        assert make_escalations_due(service) == 0  # ran, never to run again


def test_an_acknowledgement_calls_off_the_escalation_audited(
    migrated_url: str, fakes: Vendors, samples_dir: Path, tmp_path: Path
) -> None:
    settings = fakes.settings(migrated_url, write_escalating(tmp_path))
    with running(settings) as (service, client):
        incident = trigger(service, client, samples_dir)
    with running(settings) as (service, client):  # restarted between the steps
        env = {
            "DATABASE_URL": migrated_url,
            "RESPONDER_PLAYBOOKS": str(settings.playbooks),
        }
        done = invoke(
            ["incidents", "ack", str(incident.id), "--actor", "carol", "--wait", "0"], env=env
        )
        assert done.exit_code == 0, done.output
        settle(service)
        assert only_incident(service).acknowledged_by == "carol (cli)"
        escalations = [r for r in runs_of(service) if r.condition == "incident.unacknowledged"]
        assert [r.state for r in escalations] == ["cancelled", "cancelled"]
        called_off = [
            d
            for k, d in audit_kinds(service, incident.id or 0)
            if k == "run.cancelled" and "acknowledged" in d.get("reason", "")
        ]
        assert len(called_off) == 2 and called_off[0]["acknowledged_by"] == "carol (cli)"
    with running(settings) as (service, client):
        assert make_escalations_due(service) == 0
        settle(service)
        assert fakes.pagerduty.events(PAYMENTS_KEY) == []
        assert fakes.slack.root_messages("C0INCIDENTS") == []


def opened(service: Service, timeout: float = 30.0) -> Incident:
    """The incident, once the worker thread has opened it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(service.engine) as session:
            found = session.exec(select(Incident)).first()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError("no incident opened in time")


def test_cli_resolve_waits_for_the_worker_and_says_what_happened(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url), worker_thread=True) as (service, client):
        # The worker runs in its own thread here, as in `serve`: the test never steps it.
        assert (
            post(client, sample(samples_dir, "payment-failure-rate.triggered")).status_code == 202
        )
        incident = opened(service)
        env = {"DATABASE_URL": migrated_url, "RESPONDER_PLAYBOOKS": str(REPO / "playbooks")}
        done = invoke(["incidents", "resolve", str(incident.id), "--actor", "dave"], env=env)
        assert done.exit_code == 0, done.output
        assert f"incident {incident.id} resolved by dave (cli)" in done.output
        again = invoke(["incidents", "ack", str(incident.id)], env=env)
        assert again.exit_code == 1 and "already resolved by dave (cli)" in again.output
        missing = invoke(["incidents", "ack", "4242"], env=env)
        assert missing.exit_code == 1 and "no incident 4242" in missing.output
