"""Correlate stage: which incident an alert belongs to (`IncidentIndex`), in Datadog's order.

A delivery that is out of date (its cycle already recovered, or it is dated before a state
we already hold) is recorded as late and stops here: it pages nobody and changes nothing.
A timer's event (stale, flap-quiet) whose reason went away meanwhile stops here too.
"""

from __future__ import annotations

from typing import Any

from responder.actions import ACKNOWLEDGE, RESOLVE
from responder.pipeline.silence import UNSILENCED, unsilence_gone
from responder.pipeline.stages import Batch, EventItem
from responder.records import IncidentRecord
from responder.store.audit import AuditRecord


class CorrelateStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        found = batch.incidents.correlate(item.alert, item.event.id, item.grouping)
        item.correlation = found
        incident_id = found.incident.id if found.incident else None
        if found.late is not None:
            data: dict[str, Any] = {"reason": found.late, "transition": item.alert.transition}
            data["date"] = item.alert.date
            item.records.append(AuditRecord("event.late", data, item.event.id, incident_id))
            item.outcome = _dropped("late", found.late, incident_id)
            return False
        reason = _timer_gone(item, batch)
        if reason is not None:
            data = {"reason": reason, "timer": item.alert.cause}
            item.records.append(AuditRecord("event.ignored", data, item.event.id, incident_id))
            item.outcome = _dropped("ignored", reason, incident_id)
            return False
        return True


ANSWERS = (ACKNOWLEDGE, RESOLVE)


def _timer_gone(item: EventItem, batch: Batch) -> str | None:
    """Why a timer's event no longer applies, if it does not."""
    cause, found = item.alert.cause, item.correlation
    if cause is None:
        return None
    assert found is not None
    incident = found.incident
    if cause in ANSWERS:
        return _answer_gone(cause, incident)
    if incident is None or not incident.is_open:
        return "the incident is already resolved"
    if cause == "stale" and (incident.stale_at is None or incident.stale_at > item.alert.date):
        return "a delivery came since: the incident is not stale"
    if cause == "group-summary" and (
        incident.summary_at is None or incident.summary_at > item.alert.date
    ):
        return "no summary of new members is due"
    if cause == UNSILENCED:
        return unsilence_gone(incident, item.alert.date, batch.silences)
    if cause == "flap-quiet":
        group = batch.incidents.groups.get(found.group_key)
        if group is None or group.quiet_at is None or group.quiet_at > item.alert.date:
            return "the monitor changed state since: it is not calm yet"
    return None


def _answer_gone(cause: str, incident: IncidentRecord | None) -> str | None:
    """Why a person's answer changes nothing: the incident is over, or already acknowledged."""
    if incident is None:
        return "no such incident"
    if not incident.is_open:
        by = f" by {incident.resolved_by}" if incident.resolved_by else ""
        return f"the incident is already resolved{by}"
    if cause == ACKNOWLEDGE and incident.acknowledged_at is not None:
        return f"already acknowledged by {incident.acknowledged_by or 'someone'}"
    return None


def _dropped(kind: str, reason: str, incident_id: int | None) -> dict[str, Any]:
    return {kind: reason, "playbooks": [], "actions": [], "incident_id": incident_id}
