"""Correlate stage: which incident an alert belongs to (monitor + scope + alert cycle)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from responder.domain import Alert, IncidentStatus
from responder.store.tables import Incident


@dataclass(frozen=True, slots=True)
class Correlation:
    incident: Incident | None  # None: nothing open for this alert yet
    group_key: str
    key: str  # the key a new incident would get
    late: bool = False  # the alert's cycle already ended: it must not reopen anything


def group_key(alert: Alert) -> str:
    # Datadog's default template has no monitor id: the monitor name is the best we have.
    monitor = alert.monitor_id or f"title:{alert.monitor_name.lower()}"
    return f"{monitor}|{alert.scope}"[:300]


def correlate(session: Session, alert: Alert, event_id: int) -> Correlation:
    group = group_key(alert)
    if alert.cycle_key:
        key = f"{group}|{alert.cycle_key}"[:400]
        found = session.exec(select(Incident).where(Incident.key == key)).first()
        if found is not None and found.status == IncidentStatus.RESOLVED:
            # Datadog starts a new cycle key after a recovery, so this is a late or
            # out-of-order delivery of the old cycle.
            return Correlation(found, group, key, late=True)
        return Correlation(found, group, key)
    open_incident = session.exec(
        select(Incident)
        .where(Incident.group_key == group, Incident.status != IncidentStatus.RESOLVED)
        .order_by(sa.desc(col(Incident.id)))
        .limit(1)
    ).first()
    return Correlation(open_incident, group, f"{group}|event:{event_id}"[:400])
