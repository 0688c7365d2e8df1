"""The incidents one batch of events touches, and which of them an alert belongs to
(monitor + scope + alert cycle).

Loaded in one query per batch and kept in memory, so that a trigger and its recovery
arriving in the same batch meet the same incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from responder.domain import Alert
from responder.records import IncidentRecord
from responder.store import incidents


@dataclass(frozen=True, slots=True)
class Correlation:
    incident: IncidentRecord | None  # None: nothing open for this alert yet
    group_key: str
    key: str  # the key a new incident would get
    late: bool = False  # the alert's cycle already ended: it must not reopen anything


def group_key(alert: Alert) -> str:
    # Datadog's default template has no monitor id: the monitor name is the best we have.
    monitor = alert.monitor_id or f"title:{alert.monitor_name.lower()}"
    return f"{monitor}|{alert.scope}"[:300]


def cycle_key(alert: Alert) -> str | None:
    return f"{group_key(alert)}|{alert.cycle_key}"[:400] if alert.cycle_key else None


class IncidentIndex:
    """The incidents a batch touches, by key and by open group."""

    def __init__(self) -> None:
        self.by_key: dict[str, IncidentRecord] = {}
        self.open_by_group: dict[str, IncidentRecord] = {}

    @classmethod
    def load(cls, conn: sa.Connection, alerts: Iterable[Alert]) -> IncidentIndex:
        keys, groups = set(), set()
        for alert in alerts:
            key = cycle_key(alert)
            if key is not None:
                keys.add(key)
            else:
                groups.add(group_key(alert))
        index = cls()
        for incident in incidents.for_alerts(conn, keys=keys, open_groups=groups):
            index.remember(incident)
        return index

    def remember(self, incident: IncidentRecord) -> None:
        self.by_key[incident.key] = incident
        if incident.is_open:
            self.open_by_group[incident.group_key] = incident
        else:
            known = self.open_by_group.get(incident.group_key)
            if known is not None and known.id == incident.id:
                del self.open_by_group[incident.group_key]

    def correlate(self, alert: Alert, event_id: int) -> Correlation:
        group = group_key(alert)
        key = cycle_key(alert)
        if key is not None:
            found = self.by_key.get(key)
            if found is not None and not found.is_open:
                # Datadog starts a new cycle key after a recovery, so this is a late or
                # out-of-order delivery of the old cycle.
                return Correlation(found, group, key, late=True)
            return Correlation(found, group, key)
        return Correlation(self.open_by_group.get(group), group, f"{group}|event:{event_id}"[:400])
