"""Lifecycle stage: how a transition changes an incident (open, escalate, repeat, resolve)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from responder.actions import ACKNOWLEDGE, RESOLVE, STALE
from responder.domain import Alert, IncidentStatus, Transition
from responder.pipeline.stages import Batch, EventItem
from responder.records import IncidentRecord
from responder.store.audit import AuditRecord


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # incident.opened | incident.updated | incident.acknowledged | incident.resolved
    before: str | None
    after: str


def open_incident(
    alert: Alert, *, incident_id: int, key: str, group: str, now: datetime
) -> IncidentRecord:
    tags = alert.tag_map
    recovered = alert.transition.is_recovery
    opened_at = min(alert.date, now)  # a clock ahead of ours must not make MTTA negative
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
        # A recovery that arrives before its trigger is kept, as the resolved incident it
        # describes: the trigger, when it comes, finds its cycle over and pages nobody.
        status=(IncidentStatus.RESOLVED if recovered else IncidentStatus.TRIGGERED).value,
        last_transition=alert.transition.value,
        tags=alert.tags,
        refs={},
        event_count=1,
        opened_at=opened_at,
        acknowledged_at=None,
        resolved_at=opened_at if recovered else None,
        updated_at=now,
        seen_at=alert.date,
        repeats=1 if alert.transition.is_repeat else 0,
        last_repeat_at=alert.date if alert.transition.is_repeat else None,
        reminded_at=alert.date,  # the first message is the first reminder
        resolution="recovered" if recovered else None,
    )


def apply(
    incident: IncidentRecord, alert: Alert, now: datetime, *, hold: bool = False
) -> tuple[IncidentRecord, Change]:
    """Fold a later alert of the same cycle (or a timer's event) into the incident; `hold`
    keeps it open through a recovery (its monitor flaps)."""
    before = incident.status
    priority = incident.priority
    if alert.priority and (priority is None or alert.priority < priority):
        priority = alert.priority  # "P1" < "P2": keep the most urgent seen
    after = replace(incident, updated_at=now, priority=priority)
    if alert.cause is None:  # a delivery from Datadog, not one of our timers
        seen = incident.seen_at
        after = replace(
            after,
            event_count=incident.event_count + 1,
            last_transition=alert.transition.value,
            seen_at=alert.date if seen is None else max(seen, alert.date),
        )
    if alert.transition.is_repeat and alert.cause is None:
        last = incident.last_repeat_at
        after = replace(
            after,
            repeats=incident.repeats + 1,
            last_repeat_at=alert.date if last is None else max(last, alert.date),
        )
    if alert.cause == ACKNOWLEDGE:
        # Someone is on it: playbooks a silence held back are not run when it ends (they
        # would page the person who already answered).
        after = replace(
            after,
            status=IncidentStatus.ACKNOWLEDGED.value,
            acknowledged_at=_answered_at(incident, alert, now),
            acknowledged_by=alert.actor,
            silenced_until=None,
            silence_id=None,
        )
        return after, Change("incident.acknowledged", before, after.status)
    if alert.transition is Transition.RECOVERED and (not hold or alert.cause == RESOLVE):
        resolved_at = _answered_at(incident, alert, now)
        resolution = {STALE: STALE, RESOLVE: RESOLVE}.get(alert.cause or "", "recovered")
        after = replace(
            after,
            status=IncidentStatus.RESOLVED.value,
            resolved_at=resolved_at,
            resolution=resolution,
            resolved_by=alert.actor if alert.cause == RESOLVE else None,
            stale_at=None,
            summary_at=None,
        )
        return after, Change("incident.resolved", before, after.status)
    return after, Change("incident.updated", before, after.status)


def _answered_at(incident: IncidentRecord, alert: Alert, now: datetime) -> datetime:
    """The alert's time, never after ours nor before the opening: MTTA and MTTR never go
    negative, whatever the sender's clock says."""
    return max(min(alert.date, now), incident.opened_at)


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
            incident, change = apply(found.incident, alert, batch.now, hold=bool(item.hold))
        if incident.is_open and batch.policy.stale_after is not None and alert.cause is None:
            # Any delivery is activity, No Data included; the plan stage applies the
            # playbooks' own stale_after once it knows them.
            incident = replace(incident, stale_at=batch.now + batch.policy.stale_after)
        if item.membership is not None:
            incident = item.membership.applied(incident)
        if alert.cause == "flap-quiet" and not incident.is_open and item.group is not None:
            # Resolved once calm: the recovery itself came at the group's last change.
            recovered = min(item.group.changed_at, batch.now)
            incident = replace(incident, resolved_at=max(recovered, incident.opened_at))
        item.incident = incident
        if item.group is not None:
            item.group = replace(item.group, incident_id=incident.id)
        data: dict[str, Any] = {"from": change.before, "to": change.after}
        data["transition"] = alert.transition
        if change.kind == "incident.opened":
            data.update(key=incident.key, title=incident.title)
            if not incident.is_open:
                data["note"] = "the recovery arrived before its trigger: kept, resolved"
        if found.joined is not None:
            data["joined"] = found.joined
        if alert.cause is not None:
            data["answer" if alert.actor else "timer"] = alert.cause
        if item.hold is not None:
            data["held"] = item.hold
        if change.kind == "incident.resolved":
            data["resolution"] = incident.resolution
        if alert.actor is not None:
            data["actor"] = alert.actor
        item.records.append(AuditRecord(change.kind, data, item.event.id, incident.id))
        # What the stages before said about the incident while it had no id (opened now).
        item.records[:] = [
            replace(r, incident_id=incident.id)
            if r.incident_id is None and r.kind.startswith("incident.")
            else r
            for r in item.records
        ]
        return True
