"""Lifecycle stage: how a transition changes an incident (open, escalate, repeat, resolve).

Incidents travel through the pipeline as plain column mappings (cheap to copy and to write
in bulk); these functions are pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from responder.domain import Alert, IncidentStatus, Transition

IncidentRow = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # incident.opened | incident.updated | incident.resolved
    before: str | None
    after: str


def open_incident(alert: Alert, key: str, group: str, now: datetime) -> IncidentRow:
    tags = alert.tag_map
    return {
        "key": key,
        "group_key": group,
        "cycle_key": alert.cycle_key[:128] if alert.cycle_key else None,
        "monitor_id": alert.monitor_id[:64] if alert.monitor_id else None,
        "monitor_name": alert.monitor_name,
        "title": alert.title,
        "scope": alert.scope,
        "priority": alert.priority,
        "service": (tags.get("service") or None) and tags["service"][:128],
        "team": (tags.get("team") or None) and tags["team"][:128],
        "env": (tags.get("env") or None) and tags["env"][:64],
        "status": IncidentStatus.TRIGGERED.value,
        "last_transition": alert.transition.value,
        "tags": list(alert.tags),
        "refs": {},
        "event_count": 1,
        "opened_at": min(alert.date, now),  # a clock ahead of ours must not make MTTA negative
        "acknowledged_at": None,
        "resolved_at": None,
        "updated_at": now,
    }


def apply(incident: IncidentRow, alert: Alert, now: datetime) -> tuple[IncidentRow, Change]:
    """Fold a later alert of the same cycle into a copy of the incident."""
    after = dict(incident)
    before = incident["status"]
    after["event_count"] = incident["event_count"] + 1
    after["last_transition"] = alert.transition.value
    after["updated_at"] = now
    if alert.priority and (incident["priority"] is None or alert.priority < incident["priority"]):
        after["priority"] = alert.priority  # "P1" < "P2": keep the most urgent seen
    if alert.transition is Transition.RECOVERED:
        after["status"] = IncidentStatus.RESOLVED.value
        after["resolved_at"] = max(min(alert.date, now), incident["opened_at"])
        return after, Change("incident.resolved", before, after["status"])
    return after, Change("incident.updated", before, after["status"])


def context(incident: IncidentRow) -> dict[str, Any]:
    """What playbook expressions and templates see as `incident`."""
    return {
        "id": incident.get("id"),
        "key": incident["key"],
        "status": incident["status"],
        "title": incident["title"],
        "priority": incident["priority"],
        "service": incident["service"],
        "team": incident["team"],
        "env": incident["env"],
        "event_count": incident["event_count"],
        "refs": dict(incident.get("refs") or {}),
    }
