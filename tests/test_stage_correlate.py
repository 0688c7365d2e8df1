"""Correlate stage: keys, the batch's incident index, late deliveries and orphan recoveries."""

from __future__ import annotations

from dataclasses import replace

from responder.domain import IncidentStatus, Transition, group_key
from responder.intake.datadog import normalise
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.incidents import IncidentIndex, cycle_key
from tests.stagekit import CYCLE, MONITOR_ID, NOW, alert, batch, default_payload, incident, item

GROUP = f"{MONITOR_ID}|host:web-1"
KEY = f"{GROUP}|{CYCLE}"


def test_group_key_is_monitor_and_scope() -> None:
    assert group_key(alert()) == GROUP
    assert group_key(alert(scope="")) == f"{MONITOR_ID}|"


def test_group_key_without_monitor_id_uses_the_lowercased_monitor_name() -> None:
    source = normalise(default_payload(name="High Payment Failure Rate"), NOW)
    assert source.monitor_id is None
    assert group_key(source) == "title:high payment failure rate|"


def test_cycle_key_adds_the_cycle_and_is_none_without_one() -> None:
    assert cycle_key(alert()) == KEY
    assert cycle_key(alert(cycle=None)) is None
    assert cycle_key(normalise(default_payload(), NOW)) is None


def test_keys_are_capped_to_their_columns() -> None:
    long = alert(scope="host:" + "a" * 500, cycle="c" * 200)
    assert len(group_key(long)) == 300
    key = cycle_key(long)
    assert key is not None
    assert len(key) == 400
    assert key.startswith(group_key(long) + "|ccc")


def test_index_remembers_open_incidents_by_key_and_group() -> None:
    index = IncidentIndex()
    known = incident(incident_id=7)
    index.remember(known)
    assert index.by_key == {KEY: known}
    assert index.open_by_group == {GROUP: known}


def test_index_forgets_the_open_group_when_its_incident_resolves() -> None:
    index = IncidentIndex()
    known = incident(incident_id=7)
    index.remember(known)
    resolved = replace(known, status=IncidentStatus.RESOLVED.value)
    index.remember(resolved)
    assert index.by_key == {KEY: resolved}
    assert index.open_by_group == {}


def test_a_resolved_incident_does_not_close_another_open_one_of_its_group() -> None:
    index = IncidentIndex()
    newer = incident(alert(cycle="cycle-2"), incident_id=8)
    index.remember(newer)
    older = incident(incident_id=7, status=IncidentStatus.RESOLVED.value)
    index.remember(older)
    assert index.open_by_group == {GROUP: newer}
    assert set(index.by_key) == {KEY, f"{GROUP}|cycle-2"}


def test_correlate_by_cycle_key_finds_the_open_incident() -> None:
    index = IncidentIndex()
    known = incident(incident_id=7)
    index.remember(known)
    found = index.correlate(alert("Re-Triggered"), event_id=3)
    assert found.incident == known
    assert (found.group_key, found.key, found.late) == (GROUP, KEY, None)


def test_correlate_by_cycle_key_ignores_an_open_incident_of_another_cycle() -> None:
    index = IncidentIndex()
    index.remember(incident(incident_id=7))
    found = index.correlate(alert(cycle="cycle-2"), event_id=3)
    assert found.incident is None
    assert found.key == f"{GROUP}|cycle-2"
    assert not found.late


def test_a_resolved_cycle_makes_its_alerts_late() -> None:
    index = IncidentIndex()
    resolved = incident(incident_id=7, status=IncidentStatus.RESOLVED.value)
    index.remember(resolved)
    found = index.correlate(alert("Triggered"), event_id=3)
    assert found.late
    assert found.incident == resolved


def test_without_a_cycle_key_the_open_group_is_the_incident() -> None:
    source = normalise(default_payload(), NOW)
    index = IncidentIndex()
    known = incident(source, incident_id=7, event_id=1)
    index.remember(known)
    found = index.correlate(normalise(default_payload("Recovered"), NOW), event_id=9)
    assert found.incident == known
    assert not found.late
    # the key a new incident would get names the event, so each trigger can open one
    assert found.key == "title:high payment failure rate||event:9"


def test_without_a_cycle_key_a_resolved_group_is_not_late_but_unknown() -> None:
    source = normalise(default_payload(), NOW)
    index = IncidentIndex()
    index.remember(incident(source, incident_id=7, status=IncidentStatus.RESOLVED.value))
    found = index.correlate(source, event_id=9)
    assert found.incident is None
    assert not found.late


def test_stage_passes_a_new_trigger_on_without_records() -> None:
    current = item(alert(), event_id=3)
    assert CorrelateStage()(current, batch()) is True
    assert current.correlation is not None
    assert current.correlation.incident is None
    assert current.correlation.key == KEY
    assert current.records == []
    assert current.outcome is None


def test_stage_passes_a_recovery_of_an_open_incident_on() -> None:
    known = incident(incident_id=7)
    current = item(alert("Recovered"), event_id=3)
    assert CorrelateStage()(current, batch(incidents=[known])) is True
    assert current.correlation is not None
    assert current.correlation.incident == known
    assert current.records == []


def test_stage_drops_a_late_delivery_and_records_it() -> None:
    resolved = incident(incident_id=7, status=IncidentStatus.RESOLVED.value)
    late = alert("Re-Triggered")
    current = item(late, event_id=3)
    assert CorrelateStage()(current, batch(incidents=[resolved])) is False
    reason = "its alert cycle already recovered"
    [record] = current.records
    assert (record.kind, dict(record.data)) == (
        "event.late",
        {"reason": reason, "transition": Transition.RE_TRIGGERED, "date": late.date},
    )
    assert (record.event_id, record.incident_id, record.run_id) == (3, 7, None)
    assert current.outcome == {"late": reason, "playbooks": [], "actions": [], "incident_id": 7}


def test_stage_drops_a_late_recovery_as_late() -> None:
    resolved = incident(incident_id=7, status=IncidentStatus.RESOLVED.value)
    current = item(alert("Recovered"), event_id=3)
    assert CorrelateStage()(current, batch(incidents=[resolved])) is False
    assert current.outcome is not None
    assert current.outcome["late"] == "its alert cycle already recovered"
    assert current.outcome["incident_id"] == 7


def test_stage_keeps_a_recovery_that_arrives_before_its_trigger() -> None:
    current = item(alert("Recovered"), event_id=4)
    assert CorrelateStage()(current, batch()) is True
    assert current.correlation is not None and current.correlation.incident is None
    assert current.records == [] and current.outcome is None


def test_stage_keeps_a_default_template_recovery_for_a_group_with_nothing_open() -> None:
    source = normalise(default_payload(), NOW)
    resolved = incident(source, incident_id=7, status=IncidentStatus.RESOLVED.value)
    current = item(normalise(default_payload("Recovered"), NOW), event_id=5)
    assert CorrelateStage()(current, batch(incidents=[resolved])) is True
    assert current.correlation is not None and current.correlation.incident is None
