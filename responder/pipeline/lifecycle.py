"""Lifecycle stage: how a transition changes an incident (open, escalate, repeat, resolve)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from responder.domain import Alert, IncidentStatus, Transition
from responder.store.tables import Incident


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # incident.opened | incident.updated | incident.resolved
    before: str | None
    after: str


def open_incident(alert: Alert, key: str, group: str, now: datetime) -> Incident:
    tags = alert.tag_map
    return Incident(
        key=key,
        group_key=group,
        cycle_key=alert.cycle_key,
        monitor_id=alert.monitor_id,
        monitor_name=alert.monitor_name,
        title=alert.title,
        scope=alert.scope,
        priority=alert.priority,
        service=tags.get("service") or None,
        team=tags.get("team") or None,
        env=tags.get("env") or None,
        status=IncidentStatus.TRIGGERED,
        last_transition=alert.transition.value,
        tags=list(alert.tags),
        refs={},
        event_count=1,
        opened_at=min(alert.date, now),  # a clock ahead of ours must not make MTTA negative
        updated_at=now,
    )


def apply(incident: Incident, alert: Alert, now: datetime) -> Change:
    """Fold a later alert of the same cycle into the incident."""
    before = incident.status
    incident.event_count += 1
    incident.last_transition = alert.transition.value
    incident.updated_at = now
    incident.title = alert.title
    if alert.priority and (incident.priority is None or alert.priority < incident.priority):
        incident.priority = alert.priority  # "P1" < "P2": keep the most urgent seen
    if alert.transition is Transition.RECOVERED:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = max(min(alert.date, now), incident.opened_at)
        return Change("incident.resolved", before, incident.status)
    return Change("incident.updated", before, incident.status)
