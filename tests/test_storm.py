"""Storm mode through the whole service, with the vendor fakes, on SQLite and PostgreSQL:
40 monitors of the security playbook trigger within seconds in one channel whose Slack
answers 429 above a message a second. The channel gets a few roots and one storm summary,
rewritten in place; each routing key is paged once for the storm; every alert is still
stored, correlated and audited, and every recovery still cleans up. The storm then ends by
itself (its quiet timer, after a restart) and the summary says so, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.main import Service
from responder.store.tables import ActionRun, AuditEntry, Incident, Storm
from tests.fakes.pagerduty import ROUTING_KEY
from tests.fakes.slack import FakeMessage
from tests.harness import post, running, sample, sweep
from tests.vendors import PAYMENTS_KEY, Vendors, settle, vendors

RATE = 3
MONITORS = 40
CHANNEL = "C0SECURITY"  # #security-alerts, where the fraud-detection-down playbook posts


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        all_three.slack.rate_limit_channels()  # 429 above one message a second per channel
        yield all_three


def fraud(samples_dir: Path, number: int, transition: str = "Triggered") -> dict[str, Any]:
    """The fraud sample as another monitor of another service: an incident of its own (the
    security playbook groups by service and env)."""
    name = "triggered" if transition == "Triggered" else "recovered"
    body = sample(samples_dir, f"fraud-detection-down.{name}")
    body["id"] = f"88{number:05d}{0 if transition == 'Triggered' else 1}"
    body["alert"].update(
        id=str(200000000 + number),
        scope=f"host:fraud-{number:02d}",
        cycle_key=f"77165482340{number:08d}",
    )
    body["tags"] = body["tags"].replace("service:fraud", f"service:fraud-{number:02d}")
    moment = int(sample(samples_dir, "fraud-detection-down.triggered")["date"]) + number * 100
    if transition != "Triggered":
        moment += 600_000
    body["date"] = body["last_updated"] = str(moment)
    return body


def deliver(service: Service, client: TestClient, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        response = post(client, body)
        assert response.status_code == 202, response.text
    settle(service)


def audit_of(service: Service, kind: str) -> list[dict[str, Any]]:
    with Session(service.engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.kind == kind)).all()
        return [json.loads(row.data) for row in rows]


def storm_row(service: Service) -> Storm:
    with Session(service.engine) as session:
        return session.exec(select(Storm)).one()


def summary_of(fakes: Vendors) -> FakeMessage:
    [summary] = [m for m in fakes.slack.root_messages(CHANNEL) if "Alert storm" in (m.text or "")]
    return summary


def test_an_alert_storm_gets_one_summary_and_one_page_per_key(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    settings = fakes.settings(migrated_url, RESPONDER_STORM_RATE=str(RATE))
    triggers = [fraud(samples_dir, number) for number in range(MONITORS)]
    with running(settings) as (service, client):
        deliver(service, client, triggers)

        with Session(service.engine) as session:
            stored = session.exec(select(Incident)).all()
            runs = session.exec(select(ActionRun)).all()
        assert len(stored) == MONITORS and {i.status for i in stored} == {"triggered"}
        assert len(audit_of(service, "incident.opened")) == MONITORS
        assert len(audit_of(service, "event.received")) == MONITORS
        [started] = audit_of(service, "storm.started")
        assert (started["channel"], started["rate"]) == ("#security-alerts", RATE)
        held = [r for r in runs if r.state == "cancelled" and r.action == "slack.post"]
        held_pages = [r for r in runs if r.state == "cancelled" and r.action == "pagerduty.trigger"]
        in_storm = MONITORS - RATE
        assert len(held) == in_storm
        assert len(held_pages) == in_storm - 1  # the first page of the storm goes
        suppressed = audit_of(service, "run.suppressed")
        assert len(suppressed) == len(held) + len(held_pages)
        reasons = {s["reason"] for s in suppressed}
        assert reasons == {
            "storm: told in the channel's storm summary",
            "storm: default already paged for this storm",
        }
        # Every incident still got its Datadog incident: storm mode holds back Slack and pages.
        assert len([r for r in runs if r.action == "datadog.incident"]) == MONITORS

        roots = fakes.slack.root_messages(CHANNEL)
        assert len(roots) == RATE + 1  # the roots before the storm, and its summary
        summary = summary_of(fakes)
        assert summary.edits, "the summary is rewritten in place, not posted again"
        figures = f"{in_storm} new incidents, {in_storm} still open, 1 page sent"
        assert figures in (summary.text or "")
        assert len(fakes.pagerduty.alerts(ROUTING_KEY)) == RATE + 1

        # Every monitor recovers: every page is resolved, the summary counts none open. (In
        # the same process: a restarted worker's pacing starts afresh, and its first post
        # may meet a 429, retried; that is not what this test is about.)
        deliver(service, client, [fraud(samples_dir, n, "Recovered") for n in range(MONITORS)])
        with Session(service.engine) as session:
            assert {i.status for i in session.exec(select(Incident)).all()} == {"resolved"}
    assert fakes.pagerduty.open_alerts() == []
    assert len([i for i in fakes.datadog.incidents() if i.state == "resolved"]) == MONITORS
    assert f"{in_storm} new incidents, 0 still open" in (summary_of(fakes).text or "")
    assert fakes.slack.rate_limited == 0  # paced below Slack's limit: never a 429

    # A restart, then the quiet timer runs out: the storm ends by itself, and says so once.
    with running(settings) as (service, client):
        later = datetime.now(UTC) + timedelta(minutes=5, seconds=1)
        assert sweep(service, later) == 1
        assert sweep(service, later) == 0  # another worker: stored once
        settle(service)
        assert sweep(service, later) == 0  # over: no timer left
        [ended] = audit_of(service, "storm.ended")
        assert (ended["incidents"], ended["open"], ended["pages"]) == (in_storm, 0, 1)
        row = storm_row(service)
        assert (row.started_at, row.quiet_at) == (None, None)
    final = summary_of(fakes)
    assert (final.text or "").startswith("✅ Alert storm over in #security-alerts")
    assert f"{in_storm} new incidents, 0 still open, 1 page sent" in (final.text or "")
    assert len(fakes.slack.root_messages(CHANNEL)) == RATE + 1
    assert fakes.slack.rate_limited == 0


def test_below_the_rate_every_incident_gets_its_own_root(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    settings = fakes.settings(migrated_url, RESPONDER_STORM_RATE=str(RATE))
    with running(settings) as (service, client):
        deliver(service, client, [fraud(samples_dir, number) for number in range(RATE)])
        assert audit_of(service, "storm.started") == []
        assert audit_of(service, "run.suppressed") == []
    assert len(fakes.slack.root_messages(CHANNEL)) == RATE
    assert len(fakes.pagerduty.alerts(ROUTING_KEY)) == RATE


def test_storm_mode_off(migrated_url: str, fakes: Vendors, samples_dir: Path) -> None:
    settings = fakes.settings(migrated_url, RESPONDER_STORM_RATE="0")
    with running(settings) as (service, client):
        deliver(service, client, [fraud(samples_dir, number) for number in range(RATE + 3)])
        assert audit_of(service, "storm.started") == []
    assert len(fakes.slack.root_messages(CHANNEL)) == RATE + 3
    assert fakes.slack.rate_limited == 0
