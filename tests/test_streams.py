"""Real alert streams through the whole service, with the vendor fakes, on SQLite and
PostgreSQL: deliveries out of order, flapping, reminders, repeats the fallback must not
take, and incidents gone stale. Where a timer or remembered state matters, the service is
restarted between steps (a new process on the same database).
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
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident
from tests.fakes.pagerduty import ROUTING_KEY
from tests.harness import post, running, sample, sweep
from tests.vendors import PAYMENTS_KEY, Vendors, settle, vendors


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        all_three.datadog.finish_instances(after_polls=1)
        yield all_three


def delivery(
    samples_dir: Path,
    name: str,
    *,
    number: int,
    minutes: float = 0.0,
    transition: str | None = None,
    cycle: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """A sample as Datadog would send it again: its own id, maybe another transition, cycle
    and date (`minutes` after the sample's own date, or after sample `since`'s)."""
    body = sample(samples_dir, name)
    body["id"] = f"99{number:017d}"
    if transition is not None:
        body["alert"]["transition"] = transition
    if cycle is not None:
        body["alert"]["cycle_key"] = cycle
    base = int(sample(samples_dir, since)["date"]) if since else int(body["date"])
    body["date"] = body["last_updated"] = str(base + int(minutes * 60_000))
    return body


def send(service: Service, client: TestClient, body: dict[str, Any]) -> None:
    response = post(client, body)
    assert response.status_code == 202, response.text
    settle(service)


def incidents_of(service: Service) -> list[Incident]:
    with Session(service.engine) as session:
        return list(session.exec(select(Incident).order_by(Incident.id)).all())  # type: ignore[arg-type]


def audit_of(service: Service, kind: str) -> list[dict[str, Any]]:
    with Session(service.engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.kind == kind)).all()
        return [json.loads(row.data) for row in rows]


def runs_named(service: Service, action: str) -> list[ActionRun]:
    with Session(service.engine) as session:
        query = select(ActionRun).where(ActionRun.action == action).order_by(ActionRun.id)  # type: ignore[arg-type]
        return list(session.exec(query).all())


def texts(fakes: Vendors, channel: str) -> list[str]:
    return [m.text or "" for m in fakes.slack.messages(channel)]


# --- 1. Datadog's order, not arrival order -----------------------------------------------


def test_a_recovery_delivered_before_its_trigger_resolves_and_pages_nobody(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, sample(samples_dir, "payment-failure-rate.recovered"))
        [kept] = incidents_of(service)
        assert (kept.status, kept.resolution) == ("resolved", "recovered")
    # A restart between the two: the recovery is remembered in the database, not in memory.
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, sample(samples_dir, "payment-failure-rate.triggered"))
        assert [i.status for i in incidents_of(service)] == ["resolved"]
        [late] = audit_of(service, "event.late")
        assert late["reason"] == "its alert cycle already recovered"
        assert late["transition"] == "Triggered"
    assert fakes.pagerduty.alerts() == []  # nobody paged
    assert fakes.datadog.incidents() == [] and fakes.datadog.notebooks() == []
    assert fakes.slack.root_messages() == []


def test_the_default_template_is_ordered_by_dates(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    name = "default-template.payment-failure-rate"
    trigger = sample(samples_dir, f"{name}.triggered")
    recovery = sample(samples_dir, f"{name}.recovered")
    assert int(trigger["last_updated"]) < int(recovery["last_updated"])
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, recovery)
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, trigger)  # dated before the recovery we hold: late
        assert len(incidents_of(service)) == 1
        assert len(audit_of(service, "event.late")) == 1
        assert fakes.slack.root_messages() == []
        # A trigger dated after the recovery is a new problem, and is told.
        again = dict(trigger, id="7716548234099990001")
        again["last_updated"] = again["date"] = str(int(recovery["last_updated"]) + 60_000)
        send(service, client, again)
        assert [i.status for i in incidents_of(service)] == ["resolved", "triggered"]
    assert len(fakes.slack.root_messages("C0PAYMENTS")) == 1


def test_a_trigger_and_its_recovery_in_one_batch_meet_in_datadogs_order(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        # Both stored before the worker looks: one batch, recovery first by arrival.
        for name in ("payment-failure-rate.recovered", "payment-failure-rate.triggered"):
            assert post(client, sample(samples_dir, name)).status_code == 202
        settle(service)
        [incident] = incidents_of(service)
        assert incident.status == "resolved"
    # Ordered by Datadog's dates, the trigger came first: paged, then resolved.
    [page] = fakes.pagerduty.alerts(PAYMENTS_KEY)
    assert page.status == "resolved"


# --- 2. Flapping ---------------------------------------------------------------------------


def flaps(samples_dir: Path, cycles: int) -> list[dict[str, Any]]:
    """The checkout monitor on one host: Triggered, then Recovered a minute later, again
    and again, each cycle with its own cycle key, a minute apart."""
    out = []
    for index in range(cycles):
        cycle = f"77165482340000{index:05d}"
        for offset, name in enumerate(("triggered", "recovered")):
            out.append(
                delivery(
                    samples_dir,
                    f"checkout-error-rate.{name}",
                    number=index * 2 + offset,
                    minutes=index * 2 + offset,
                    cycle=cycle,
                    since="checkout-error-rate.triggered",
                )
            )
    return out


def test_a_flapping_monitor_is_one_incident_until_it_is_calm(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        for body in flaps(samples_dir, 10):
            send(service, client, body)
        first, held = incidents_of(service)
        # The first cycle ended before the flapping showed (4 changes within 20 minutes);
        # from the second on, one incident holds every cycle, open through each recovery.
        assert first.status == "resolved"
        assert (held.status, held.last_transition, held.event_count) == (
            "triggered",
            "Recovered",
            18,
        )
        [flapping] = audit_of(service, "incident.flapping")
        assert flapping["changes"] == 4
        suppressed = audit_of(service, "run.suppressed")
        assert suppressed and all("flapping" in s["reason"] for s in suppressed)
    assert len(fakes.pagerduty.alerts(ROUTING_KEY)) == 2  # not 10
    assert len(fakes.datadog.instances()) == 2  # the scaling workflow is not started again
    roots = fakes.slack.root_messages("C0INCIDENTS")
    assert len(roots) == 2
    notes = [m.text or "" for m in fakes.slack.replies("C0INCIDENTS", roots[1].ts)]
    assert sum("Flapping" in text for text in notes) == 1
    assert not any("Recovered" in text for text in notes)  # held recoveries are not told

    # A restart, then the quiet timer runs out: the group has been calm, recovered.
    with running(fakes.settings(migrated_url)) as (service, client):
        later = datetime.now(UTC) + timedelta(minutes=16)
        assert sweep(service, later) == 1
        assert sweep(service, later) == 0  # another worker: stored once
        settle(service)
        _, held = incidents_of(service)
        assert (held.status, held.resolution) == ("resolved", "recovered")
        assert len(audit_of(service, "incident.stable")) == 1
    assert fakes.pagerduty.open_alerts() == []
    notes = [m.text or "" for m in fakes.slack.replies("C0INCIDENTS", roots[1].ts)]
    assert sum("No longer flapping" in text for text in notes) == 1


def test_a_flapping_monitor_that_settles_firing_stays_open(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        for body in flaps(samples_dir, 3):
            send(service, client, body)
        send(
            service,
            client,
            delivery(
                samples_dir,
                "checkout-error-rate.triggered",
                number=90,
                minutes=7,
                cycle="7716548234000009999",
                since="checkout-error-rate.triggered",
            ),
        )
        later = datetime.now(UTC) + timedelta(minutes=16)
        assert sweep(service, later) == 1
        settle(service)
        *_, held = incidents_of(service)
        assert held.status == "triggered"
        [stable] = audit_of(service, "incident.stable")
        assert stable["state"] == "Triggered"
    assert len(fakes.pagerduty.open_alerts(ROUTING_KEY)) == 1
    roots = fakes.slack.root_messages("C0INCIDENTS")
    notes = [m.text or "" for m in fakes.slack.replies("C0INCIDENTS", roots[-1].ts)]
    assert any("still Triggered" in text for text in notes)


# --- 3. Reminders and repeats ------------------------------------------------------------


def test_reminders_go_at_most_once_an_interval_and_recovery_goes_first(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    fraud = "fraud-detection-down"
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, sample(samples_dir, f"{fraud}.triggered"))
        first = f"{fraud}.triggered"
        for index in range(1, 49):  # every 10 minutes for 8 hours
            renotify = f"{fraud}.renotify"
            send(
                service,
                client,
                delivery(samples_dir, renotify, number=index, minutes=index * 10, since=first),
            )
        recovery = delivery(samples_dir, f"{fraud}.recovered", number=60, minutes=490, since=first)
        send(service, client, recovery)
        [incident] = incidents_of(service)
        assert (incident.repeats, incident.status) == (48, "resolved")
        suppressed = audit_of(service, "run.suppressed")
        # 40 of the 48 came within the hour of the last reminder told: the reply and the
        # timeline entry of each are suppressed, with the reason.
        assert len(suppressed) == 80
        assert all(s["reason"].startswith("reminder interval") for s in suppressed)
    roots = fakes.slack.root_messages("C0SECURITY")
    assert len(roots) == 1
    replies = [m.text or "" for m in fakes.slack.replies("C0SECURITY", roots[0].ts)]
    assert sum("Renotify" in text for text in replies) == 8  # one an hour, not 48
    # The root says how many came and when the last did (rewritten with each reminder told,
    # and at the end as resolved).
    assert "Repeated 48 times · last" in json.dumps(roots[0].blocks, ensure_ascii=False)
    refreshed = [edit for edit in roots[0].edits if "Repeated" in json.dumps(edit)]
    assert len(refreshed) >= 8
    [dd_incident] = fakes.datadog.incidents()
    assert len(dd_incident.attachments) == 8
    assert dd_incident.state == "resolved"


def test_a_reminder_still_queued_at_recovery_is_withdrawn(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    fraud = "fraud-detection-down"
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, sample(samples_dir, f"{fraud}.triggered"))
        first = f"{fraud}.triggered"
        reminder = delivery(samples_dir, f"{fraud}.renotify", number=1, minutes=70, since=first)
        # Stored together, handled in one round: the reminder is still queued when the
        # recovery comes.
        assert post(client, reminder).status_code == 202
        recovery = delivery(samples_dir, f"{fraud}.recovered", number=2, minutes=80, since=first)
        assert post(client, recovery).status_code == 202
        settle(service)
        withdrawn = [r for r in runs_named(service, "slack.reply") if r.state == "cancelled"]
        assert len(withdrawn) == 1 and withdrawn[0].transition == "Renotify"
        reasons = [c["reason"] for c in audit_of(service, "run.cancelled") if "reason" in c]
        assert "cancelled: the incident resolved; the recovery goes out first" in reasons
    roots = fakes.slack.root_messages("C0SECURITY")
    replies = [m.text or "" for m in fakes.slack.replies("C0SECURITY", roots[0].ts)]
    assert not any("Renotify" in text for text in replies)
    assert any("Recovered" in text for text in replies)


def test_a_repeat_never_reaches_the_fallback(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, sample(samples_dir, "api-latency.warn"))
        again = delivery(
            samples_dir, "api-latency.triggered", number=5, minutes=30, transition="Re-Triggered"
        )
        send(service, client, again)
        matched = audit_of(service, "playbooks.matched")
        assert matched[-1]["not_routed"] == (
            "a repeat of an open incident: playbooks run once per incident"
        )
    assert fakes.slack.root_messages("C0UNROUTED") == []
    assert len(fakes.slack.root_messages("C0PLATFORM")) == 1


# --- 4. Stale incidents --------------------------------------------------------------------


def test_an_incident_with_no_delivery_for_a_day_is_resolved_as_stale(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, sample(samples_dir, "payment-failure-rate.triggered"))
        [incident] = incidents_of(service)
        assert incident.stale_at is not None
        assert sweep(service, incident.stale_at - timedelta(seconds=1)) == 0
    # A restart: the timer is a column, not a thread.
    with running(fakes.settings(migrated_url)) as (service, client):
        due = incident.stale_at + timedelta(seconds=1)
        assert sweep(service, due) == 1
        assert sweep(service, due) == 0  # a second worker stores nothing
        settle(service)
        [incident] = incidents_of(service)
        assert (incident.status, incident.resolution, incident.stale_at) == (
            "resolved",
            "stale",
            None,
        )
        [resolved] = audit_of(service, "incident.resolved")
        assert (resolved["resolution"], resolved["timer"]) == ("stale", "stale")
    assert fakes.pagerduty.open_alerts() == []  # the page is resolved
    assert [i.state for i in fakes.datadog.incidents()] == ["resolved"]
    [notebook] = fakes.datadog.notebooks()
    assert notebook.updates >= 1  # the resolution cell
    [root] = fakes.slack.root_messages("C0PAYMENTS")
    assert root.edits, "the root message was rewritten as resolved"


@pytest.mark.parametrize("transition", ["No Data", "Renotify"])
def test_any_delivery_moves_the_stale_timer(
    migrated_url: str, fakes: Vendors, samples_dir: Path, transition: str
) -> None:
    with running(fakes.settings(migrated_url, RESPONDER_STALE_AFTER="2h")) as (service, client):
        send(service, client, sample(samples_dir, "payment-failure-rate.triggered"))
        [before] = incidents_of(service)
        assert before.stale_at is not None
        assert before.stale_at - before.updated_at == timedelta(hours=2)
        body = delivery(
            samples_dir, "payment-failure-rate.triggered", number=3, transition=transition
        )
        send(service, client, body)
        [after] = incidents_of(service)
        assert after.stale_at is not None and after.stale_at > before.stale_at
        assert after.status == "triggered"  # No Data is not a recovery


# --- 5. Grouping ---------------------------------------------------------------------------


def on_host(body: dict[str, Any], host: str) -> dict[str, Any]:
    """The checkout monitor's delivery for another host (it alerts per host)."""
    old = body["alert"]["scope"]
    body["alert"]["scope"] = f"host:{host}"
    body["tags"] = body["tags"].replace(old, f"host:{host}")
    for key in ("event_title",):
        body[key] = body[key].replace(old, f"host:{host}")
    body["alert"]["title"] = body["alert"]["title"].replace(old, f"host:{host}")
    return body


def test_a_checkout_outage_on_60_hosts_is_one_incident(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    hosts = [f"ip-10-0-9-{n}" for n in range(60)]
    trigger = "checkout-error-rate.triggered"
    with running(fakes.settings(migrated_url)) as (service, client):
        for n, host in enumerate(hosts):  # 60 hosts within 5 seconds
            body = on_host(delivery(samples_dir, trigger, number=n, minutes=n / 720), host)
            assert post(client, body).status_code == 202
        settle(service)
        [incident] = incidents_of(service)
        assert (incident.members, incident.firing, incident.status) == (60, 60, "triggered")
        assert len(audit_of(service, "incident.grouped")) == 59
        assert incident.summary_at is not None
    assert len(fakes.pagerduty.alerts(ROUTING_KEY)) == 1
    assert len(fakes.datadog.instances()) == 1  # one scale-out
    [root] = fakes.slack.root_messages("C0INCIDENTS")
    assert fakes.slack.replies("C0INCIDENTS", root.ts) == []  # not a reply per host

    # A restart, then the group window runs out: the new members are told in one message.
    with running(fakes.settings(migrated_url)) as (service, client):
        later = incident.summary_at + timedelta(seconds=1)
        assert sweep(service, later) == 1
        settle(service)
        assert sweep(service, later) == 0
        [summary] = [m.text or "" for m in fakes.slack.replies("C0INCIDENTS", root.ts)]
        assert summary.startswith("59 more joined: host:ip-10-0-9-1, host:ip-10-0-9-2")
        assert "and 49 more. 60 of 60 grouped alerts firing." in summary
        assert "60 alerts grouped · 60 firing" in json.dumps(root.edits, ensure_ascii=False)

        # Recoveries: nothing resolves while one host still fires; the last resolves all.
        recovered = "checkout-error-rate.recovered"
        for n, host in enumerate(hosts):
            body = on_host(delivery(samples_dir, recovered, number=100 + n, minutes=n), host)
            assert post(client, body).status_code == 202
            if n == 58:
                settle(service)
                [incident] = incidents_of(service)
                assert (incident.status, incident.firing) == ("triggered", 1)
                assert len(fakes.pagerduty.open_alerts(ROUTING_KEY)) == 1
        settle(service)
        [incident] = incidents_of(service)
        assert (incident.status, incident.firing) == ("resolved", 0)
        with Session(service.engine) as session:
            events = session.exec(
                select(AlertEvent).where(AlertEvent.incident_id == incident.id)
            ).all()
        # the record holds every member's alerts, and the summary timer's own event
        assert sum(e.source_id is not None for e in events) == 120
        assert sum(e.fingerprint.startswith("timer:summary:") for e in events) == 1
    assert fakes.pagerduty.open_alerts() == []
    assert "resolved" in json.dumps(root.blocks).lower()


def host_event(
    samples_dir: Path, name: str, host: str, number: int, minutes: float, cycle: str
) -> dict[str, Any]:
    trigger = "checkout-error-rate.triggered"
    body = delivery(samples_dir, name, number=number, minutes=minutes, cycle=cycle, since=trigger)
    return on_host(body, host)


@pytest.mark.parametrize("flapper", ["a", "b"])  # the member that opened it, or one that joined
def test_a_flapping_member_calm_again_resolves_nothing_while_another_fires(
    migrated_url: str, fakes: Vendors, samples_dir: Path, flapper: str
) -> None:
    trigger, recovery = "checkout-error-rate.triggered", "checkout-error-rate.recovered"
    other = "b" if flapper == "a" else "a"
    with running(fakes.settings(migrated_url)) as (service, client):
        send(service, client, host_event(samples_dir, trigger, "a", 1, 0, "7716548230000000001"))
        send(service, client, host_event(samples_dir, trigger, "b", 2, 0.5, "7716548230000000002"))
        # The flapper: recovered, fired again, recovered again: flapping, held.
        send(
            service,
            client,
            host_event(
                samples_dir,
                recovery,
                flapper,
                3,
                1,
                f"77165482300000000{1 if flapper == 'a' else 2}",
            ),
        )
        send(
            service, client, host_event(samples_dir, trigger, flapper, 4, 2, "7716548230000000003")
        )
        send(
            service, client, host_event(samples_dir, recovery, flapper, 5, 3, "7716548230000000003")
        )
        assert len(audit_of(service, "incident.flapping")) == 1
        [grouped] = incidents_of(service)
        assert (grouped.members, grouped.firing, grouped.status) == (2, 1, "triggered")
    with running(fakes.settings(migrated_url)) as (service, client):
        later = datetime.now(UTC) + timedelta(minutes=16)
        assert sweep(service, later) >= 1
        settle(service)
        assert len(audit_of(service, "incident.stable")) == 1
        [grouped] = incidents_of(service)
        assert grouped.status == "triggered", f"host {other} still fires"
        assert len(fakes.pagerduty.open_alerts(ROUTING_KEY)) == 1
        # The other recovers: now the incident resolves, with everything it did.
        send(
            service,
            client,
            host_event(
                samples_dir, recovery, other, 6, 20, f"77165482300000000{1 if other == 'a' else 2}"
            ),
        )
        [grouped] = incidents_of(service)
        assert (grouped.status, grouped.firing) == ("resolved", 0)
    assert fakes.pagerduty.open_alerts() == []
