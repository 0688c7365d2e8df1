"""The four sample families through the whole service, with Slack, PagerDuty and Datadog fakes.

Each family is posted in order (trigger, repeats, recovery); afterwards every vendor holds
exactly what the example playbooks promise, recovery has cleaned up after each, and the
audit log and the history API tell the same story.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.main import Service
from responder.store import audit
from responder.store.tables import ActionRun, AuditEntry, Incident
from tests.fakes.pagerduty import ROUTING_KEY
from tests.harness import API_TOKEN, post, running, sample
from tests.vendors import PAYMENTS_KEY, SECRETS, WORKFLOW_ID, Vendors, settle, vendors

ORDER = (
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


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        all_three.datadog.finish_instances(after_polls=1)  # the scaling workflow succeeds
        yield all_three


@pytest.fixture
def lived(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> Iterator[tuple[Service, TestClient, Vendors]]:
    """The ten deliveries, each followed by the pipeline settling, as an on-call night.
    Reminders every 10 minutes, so that the Renotify (30 minutes in) is told."""
    settings = fakes.settings(migrated_url, RESPONDER_REMINDER_INTERVAL="10m")
    with running(settings) as (service, client):
        for name in ORDER:
            response = post(client, sample(samples_dir, name))
            assert response.status_code == 202, response.text
            settle(service)
        yield service, client, fakes


def runs_of(service: Service, incident: Incident) -> list[ActionRun]:
    with Session(service.engine) as session:
        query = select(ActionRun).where(ActionRun.incident_id == incident.id)
        return list(session.exec(query.order_by(ActionRun.id)).all())  # type: ignore[arg-type]


def incident_for(service: Service, monitor_id: str) -> Incident:
    with Session(service.engine) as session:
        return session.exec(select(Incident).where(Incident.monitor_id == monitor_id)).one()


def links_in(blocks: list[dict[str, Any]] | None) -> str:
    return json.dumps(blocks or [], ensure_ascii=False)


def test_pagerduty_pages_once_per_incident_and_recovery_resolves_each(
    lived: tuple[Service, TestClient, Vendors],
) -> None:
    _, _, fakes = lived
    pd = fakes.pagerduty
    # payments on its own key; fraud and checkout on the default; api-latency never pages
    assert [a.routing_key for a in pd.alerts(PAYMENTS_KEY)] == [PAYMENTS_KEY]
    assert len(pd.alerts(ROUTING_KEY)) == 2
    assert pd.open_alerts() == []  # every page resolved by its recovery
    assert pd.triggers("opened") == 3
    assert pd.triggers("deduplicated") == 0  # the Renotify did not page again
    actions = [(e.routing_key, e.action) for e in pd.events()]
    assert sorted(actions) == sorted(
        [(PAYMENTS_KEY, "trigger"), (PAYMENTS_KEY, "resolve")]
        + [(ROUTING_KEY, "trigger"), (ROUTING_KEY, "resolve")] * 2
    )
    payments = pd.alerts(PAYMENTS_KEY)[0]
    assert payments.severity == "critical"
    assert "High Payment Failure Rate" in payments.summary


def test_datadog_incidents_notebook_and_workflow_are_made_and_cleaned_up(
    lived: tuple[Service, TestClient, Vendors],
) -> None:
    service, _, fakes = lived
    dd = fakes.datadog
    incidents = dd.incidents()
    assert len(incidents) == 2  # payments and fraud; checkout and api-latency open none
    assert {i.state for i in incidents} == {"resolved"}
    fraud = next(i for i in incidents if "Fraud" in i.title)
    payments = next(i for i in incidents if "Payment" in i.title)
    assert len(fraud.attachments) == 1, "the Renotify is a timeline entry"
    assert payments.attachments == []

    (notebook,) = dd.notebooks()
    texts = "\n".join(notebook.markdown())
    assert "High Payment Failure Rate" in texts
    assert "Resolution note added by responder." in texts  # appended on recovery
    kinds = [c["attributes"]["definition"]["type"] for c in notebook.cells]
    assert "timeseries" in kinds and "log_stream" in kinds

    (instance,) = dd.instances()
    assert instance.workflow_id == WORKFLOW_ID
    assert instance.payload["service"] == "checkout-service"
    assert instance.payload["host"] == "ip-10-0-3-17"
    assert instance.payload["replicas"] == 6
    checkout = incident_for(service, "148275622")
    workflow = [r for r in runs_of(service, checkout) if r.action == "datadog.workflow"]
    assert [(r.state, (r.result or {}).get("status")) for r in workflow] == [
        ("succeeded", "succeeded")
    ]


def test_slack_threads_carry_the_story_and_the_root_links_everything(
    lived: tuple[Service, TestClient, Vendors],
) -> None:
    _, _, fakes = lived
    slack, dd = fakes.slack, fakes.datadog
    for channel in ("C0PAYMENTS", "C0SECURITY", "C0INCIDENTS", "C0PLATFORM"):
        (root,) = slack.root_messages(channel)
        replies = slack.replies(channel, root.ts)
        assert any(r.reply_broadcast for r in replies), channel  # "Recovered after ..."
        assert (root.text or "").startswith("✅ Resolved"), channel
    assert slack.root_messages("C0UNROUTED") == []

    # The payments root, as it ends, links the Datadog incident and the notebook.
    (root,) = slack.root_messages("C0PAYMENTS")
    shown = links_in(root.blocks)
    (notebook,) = dd.notebooks()
    assert f"/notebook/{notebook.id}" in shown
    assert "|Datadog incident>" in shown and "|RCA notebook>" in shown
    # Renotify and escalation: a reply each, never a second root.
    (fraud_root,) = slack.root_messages("C0SECURITY")
    first_reply = slack.replies("C0SECURITY", fraud_root.ts)[0]
    assert (first_reply.text or "").startswith("Renotify")


def test_every_run_succeeded_and_the_record_says_so(
    lived: tuple[Service, TestClient, Vendors],
) -> None:
    service, client, _ = lived
    with Session(service.engine) as session:
        runs = session.exec(select(ActionRun)).all()
        bad = [(r.action, r.state, r.last_error) for r in runs if r.state != "succeeded"]
        assert bad == []
        entries = session.exec(select(AuditEntry)).all()
    with service.engine.connect() as conn:
        assert audit.verify(conn).ok
    stored = "\n".join(e.data for e in entries)
    for secret in SECRETS:
        assert secret not in stored

    payments = incident_for(service, "148275309")
    detail = client.get(
        f"/api/incidents/{payments.id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ).json()
    by_action = {run["action"]: run["state"] for run in detail["actions"]}
    assert by_action == {
        "pagerduty.trigger": "succeeded",
        "datadog.incident": "succeeded",
        "datadog.notebook": "succeeded",
        "slack.post": "succeeded",
        "slack.refresh": "succeeded",
        "pagerduty.resolve": "succeeded",
        "datadog.incident_resolve": "succeeded",
        "datadog.notebook_resolve": "succeeded",
        "slack.resolve": "succeeded",
    }
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert kinds.count("run.succeeded") >= len(detail["actions"])
    assert {"incident.opened", "playbooks.matched", "incident.resolved"} <= set(kinds)


def test_a_trigger_after_recovery_is_a_new_incident_with_a_new_page(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        for name in ("payment-failure-rate.triggered", "payment-failure-rate.recovered"):
            assert post(client, sample(samples_dir, name)).status_code == 202
            settle(service)
        again = sample(samples_dir, "payment-failure-rate.triggered")
        again["id"] = "7716548234099999999"  # a new notification...
        again["alert"]["cycle_key"] = "7716548234000002222"  # ...of a new alert cycle
        assert post(client, again).status_code == 202
        settle(service)
        with Session(service.engine) as session:
            incidents = session.exec(select(Incident).order_by(Incident.id)).all()  # type: ignore[arg-type]
    assert [i.status for i in incidents] == ["resolved", "triggered"]
    alerts = fakes.pagerduty.alerts(PAYMENTS_KEY)
    assert [a.status for a in alerts] == ["resolved", "triggered"]
    assert alerts[0].dedup_key != alerts[1].dedup_key
    assert [i.state for i in fakes.datadog.incidents()] == ["resolved", "active"]
    assert len(fakes.slack.root_messages("C0PAYMENTS")) == 2
