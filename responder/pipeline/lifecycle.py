"""Lifecycle stage: how a transition changes an incident (open, escalate, repeat, resolve)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from responder.domain import Alert, IncidentStatus, Transition
from responder.pipeline.stages import Batch, EventItem
from responder.records import IncidentRecord
from responder.store.audit import AuditRecord


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # incident.opened | incident.updated | incident.resolved
    before: str | None
    after: str


def open_incident(
    alert: Alert, *, incident_id: int, key: str, group: str, now: datetime
) -> IncidentRecord:
    tags = alert.tag_map
    return IncidentRecord(
        id=incident_id,
        key=key,
        group_key=group,
        cycle_key=alert.cycle_key[:128] if alert.cycle_key else None,
        monitor_id=alert.monitor_id[:64] if alert.monitor_id else None,
        monitor_name=alert.monitor_name,
        title=alert.title,
        scope=alert.scope,
        priority=alert.priority,
        service=(tags.get("service") or None) and tags["service"][:128],
        team=(tags.get("team") or None) and tags["team"][:128],
        env=(tags.get("env") or None) and tags["env"][:64],
        status=IncidentStatus.TRIGGERED.value,
        last_transition=alert.transition.value,
        tags=alert.tags,
        refs={},
        event_count=1,
        opened_at=min(alert.date, now),  # a clock ahead of ours must not make MTTA negative
        acknowledged_at=None,
        resolved_at=None,
        updated_at=now,
    )


def apply(incident: IncidentRecord, alert: Alert, now: datetime) -> tuple[IncidentRecord, Change]:
    """Fold a later alert of the same cycle into the incident."""
    before = incident.status
    priority = incident.priority
    if alert.priority and (priority is None or alert.priority < priority):
        priority = alert.priority  # "P1" < "P2": keep the most urgent seen
    after = replace(
        incident,
        event_count=incident.event_count + 1,
        last_transition=alert.transition.value,
        updated_at=now,
        priority=priority,
    )
    if alert.transition is Transition.RECOVERED:
        resolved_at = max(min(alert.date, now), incident.opened_at)
        after = replace(after, status=IncidentStatus.RESOLVED.value, resolved_at=resolved_at)
        return after, Change("incident.resolved", before, after.status)
    return after, Change("incident.updated", before, after.status)


def context(incident: IncidentRecord) -> dict[str, Any]:
    """What playbook expressions and templates see as `incident`."""
    return {
        "id": incident.id,
        "key": incident.key,
        "status": incident.status,
        "title": incident.title,
        "priority": incident.priority,
        "service": incident.service,
        "team": incident.team,
        "env": incident.env,
        "event_count": incident.event_count,
        "refs": dict(incident.refs),
    }


class LifecycleStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        found, alert = item.correlation, item.alert
        assert found is not None, "correlate runs first"
        if found.incident is None:
            incident = open_incident(
                alert,
                incident_id=batch.ids.take("incident"),
                key=found.key,
                group=found.group_key,
                now=batch.now,
            )
            change = Change("incident.opened", None, incident.status)
            item.opened = True
        else:
            incident, change = apply(found.incident, alert, batch.now)
        item.incident = incident
        data: dict[str, Any] = {"from": change.before, "to": change.after}
        data["transition"] = alert.transition
        if change.kind == "incident.opened":
            data.update(key=incident.key, title=incident.title)
        item.records.append(AuditRecord(change.kind, data, item.event.id, incident.id))
        return True
