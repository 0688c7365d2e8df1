"""Lifecycle stage: opening an incident, folding later alerts in, and the times it keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from responder.domain import IncidentStatus, Transition
from responder.intake.datadog import normalise
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.lifecycle import LifecycleStage, apply, context, open_incident
from tests.stagekit import (
    CYCLE,
    MONITOR_ID,
    NOW,
    Counter,
    alert,
    batch,
    default_payload,
    incident,
    item,
)

GROUP = f"{MONITOR_ID}|host:web-1"
KEY = f"{GROUP}|{CYCLE}"


def test_open_incident_takes_its_fields_from_the_alert() -> None:
    source = alert("Warn", priority="P3")
    opened = open_incident(source, incident_id=12, key="k", group="g", now=NOW)
    assert (opened.id, opened.key, opened.group_key) == (12, "k", "g")
    assert opened.cycle_key == CYCLE
    assert opened.monitor_id == MONITOR_ID
    assert opened.monitor_name == "Error rate spike in checkout-service"
    assert opened.scope == "host:web-1"
    assert (opened.service, opened.team, opened.env) == ("checkout", "shop", "prod")
    assert opened.priority == "P3"
    assert opened.status == IncidentStatus.TRIGGERED.value  # a warning opens it too
    assert opened.last_transition == "Warn"
    assert opened.tags == ("env:prod", "service:checkout", "team:shop")
    assert dict(opened.refs) == {}
    assert opened.event_count == 1
    assert (opened.acknowledged_at, opened.resolved_at) == (None, None)
    assert (opened.opened_at, opened.updated_at) == (NOW, NOW)


def test_open_incident_caps_long_values_and_drops_empty_tags() -> None:
    source = alert(cycle="c" * 200, monitor_id="9" * 80, tags="service:" + "s" * 200 + ",team:")
    opened = open_incident(source, incident_id=1, key="k", group="g", now=NOW)
    assert opened.cycle_key == "c" * 128
    assert opened.monitor_id == "9" * 64
    assert opened.service == "s" * 128
    assert opened.team is None  # "team:" has no value
    assert opened.env is None


def test_opened_at_is_the_alert_date_when_it_is_past() -> None:
    source = alert(date=NOW - timedelta(minutes=3))
    opened = open_incident(source, incident_id=1, key="k", group="g", now=NOW)
    assert opened.opened_at == NOW - timedelta(minutes=3)
    assert opened.updated_at == NOW


def test_opened_at_is_never_ahead_of_now() -> None:
    source = alert(date=NOW + timedelta(hours=2))  # the sender's clock runs ahead
    opened = open_incident(source, incident_id=1, key="k", group="g", now=NOW)
    assert opened.opened_at == NOW


def test_apply_counts_the_event_and_keeps_the_status_open() -> None:
    known = incident(last_transition="Warn")
    later = NOW + timedelta(minutes=1)
    after, change = apply(known, alert("Triggered"), later)
    assert (change.kind, change.before, change.after) == (
        "incident.updated",
        "triggered",
        "triggered",
    )
    assert after.event_count == 2
    assert after.last_transition == "Triggered"
    assert after.updated_at == later
    assert after.resolved_at is None
    assert known.event_count == 1  # the record it was given is unchanged


@pytest.mark.parametrize(
    ("held", "seen", "kept"),
    [
        ("P3", "P1", "P1"),
        ("P1", "P3", "P1"),
        (None, "P2", "P2"),
        ("P2", None, "P2"),
        (None, None, None),
    ],
)
def test_apply_keeps_the_most_urgent_priority(
    held: str | None, seen: str | None, kept: str | None
) -> None:
    after, _ = apply(incident(priority=held), alert("Re-Triggered", priority=seen), NOW)
    assert after.priority == kept


def test_a_recovery_resolves_at_the_alert_date() -> None:
    known = incident(opened_at=NOW - timedelta(minutes=30))
    after, change = apply(known, alert("Recovered", date=NOW - timedelta(minutes=2)), NOW)
    assert (change.kind, change.before, change.after) == (
        "incident.resolved",
        "triggered",
        "resolved",
    )
    assert after.status == IncidentStatus.RESOLVED.value
    assert after.resolved_at == NOW - timedelta(minutes=2)
    assert after.last_transition == "Recovered"
    assert not after.is_open


def test_resolved_at_is_never_before_opened_at() -> None:
    known = incident(opened_at=NOW - timedelta(minutes=5))
    after, _ = apply(known, alert("Recovered", date=NOW - timedelta(hours=1)), NOW)
    assert after.resolved_at == NOW - timedelta(minutes=5)


def test_resolved_at_is_never_in_the_future() -> None:
    known = incident(opened_at=NOW - timedelta(minutes=5))
    after, _ = apply(known, alert("Recovered", date=NOW + timedelta(hours=1)), NOW)
    assert after.resolved_at == NOW


def test_context_shows_what_expressions_see() -> None:
    known = incident(incident_id=7, refs={"slack": {"ts": "1.2"}}, event_count=3)
    assert context(known) == {
        "id": 7,
        "key": KEY,
        "status": "triggered",
        "title": "[Triggered on {host:web-1}] Error rate spike in checkout-service",
        "priority": "P2",
        "service": "checkout",
        "team": "shop",
        "env": "prod",
        "event_count": 3,
        "refs": {"slack": {"ts": "1.2"}},
    }


def test_stage_opens_an_incident_with_a_new_id_and_records_it() -> None:
    ids = Counter()
    current = item(alert(), event_id=3)
    shared = batch(ids=ids)
    assert CorrelateStage()(current, shared)
    assert LifecycleStage()(current, shared) is True
    assert ids.taken == [("incident", 100)]
    assert current.opened is True
    assert current.incident is not None
    assert (current.incident.id, current.incident.key, current.incident.group_key) == (
        100,
        KEY,
        GROUP,
    )
    [record] = current.records
    assert (record.kind, record.event_id, record.incident_id) == ("incident.opened", 3, 100)
    assert dict(record.data) == {
        "from": None,
        "to": "triggered",
        "transition": Transition.TRIGGERED,
        "key": KEY,
        "title": "[Triggered on {host:web-1}] Error rate spike in checkout-service",
    }


def test_stage_opens_a_default_template_incident_under_the_event_key() -> None:
    current = item(normalise(default_payload(), NOW), event_id=9)
    shared = batch()
    assert CorrelateStage()(current, shared)
    assert LifecycleStage()(current, shared)
    assert current.incident is not None
    assert current.incident.key == "title:high payment failure rate||event:9"
    assert current.incident.cycle_key is None
    assert current.incident.monitor_id is None


def test_stage_updates_a_known_incident_without_taking_an_id() -> None:
    ids = Counter()
    known = incident(incident_id=7)
    current = item(alert("Re-Triggered"), event_id=4)
    shared = batch(incidents=[known], ids=ids)
    assert CorrelateStage()(current, shared)
    assert LifecycleStage()(current, shared)
    assert ids.taken == []
    assert current.opened is False
    assert current.incident is not None
    assert (current.incident.id, current.incident.event_count) == (7, 2)
    [record] = current.records
    assert (record.kind, record.incident_id) == ("incident.updated", 7)
    assert dict(record.data) == {
        "from": "triggered",
        "to": "triggered",
        "transition": Transition.RE_TRIGGERED,
    }


def test_stage_resolves_on_recovery() -> None:
    known = incident(incident_id=7, opened_at=NOW - timedelta(minutes=10))
    current = item(alert("Recovered", date=NOW - timedelta(minutes=1)), event_id=4)
    shared = batch(incidents=[known])
    assert CorrelateStage()(current, shared)
    assert LifecycleStage()(current, shared)
    assert current.incident is not None
    assert current.incident.status == "resolved"
    assert current.incident.resolved_at == NOW - timedelta(minutes=1)
    [record] = current.records
    assert record.kind == "incident.resolved"
    assert (record.data["from"], record.data["to"]) == ("triggered", "resolved")
