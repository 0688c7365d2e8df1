"""Correlate stage: which incident an alert belongs to (monitor + scope + alert cycle).

A batch of events is correlated against incidents loaded in one query and kept in memory,
so that a trigger and its recovery arriving in the same batch meet the same incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from responder.domain import Alert, IncidentStatus
from responder.pipeline.lifecycle import IncidentRow
from responder.store.tables import Incident

_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Correlation:
    incident: IncidentRow | None  # None: nothing open for this alert yet
    group_key: str
    key: str  # the key a new incident would get
    late: bool = False  # the alert's cycle already ended: it must not reopen anything


def group_key(alert: Alert) -> str:
    # Datadog's default template has no monitor id: the monitor name is the best we have.
    monitor = alert.monitor_id or f"title:{alert.monitor_name.lower()}"
    return f"{monitor}|{alert.scope}"[:300]


def cycle_key(alert: Alert) -> str | None:
    return f"{group_key(alert)}|{alert.cycle_key}"[:400] if alert.cycle_key else None


class IncidentCache:
    """The incidents a batch touches, by key and by open group."""

    def __init__(self) -> None:
        self.by_key: dict[str, IncidentRow] = {}
        self.open_by_group: dict[str, IncidentRow] = {}

    def load(self, conn: sa.Connection, alerts: Iterable[Alert]) -> None:
        keys, groups = set(), set()
        for alert in alerts:
            key = cycle_key(alert)
            if key is not None:
                keys.add(key)
            else:
                groups.add(group_key(alert))
        rows: list[IncidentRow] = []
        for chunk in _chunks(sorted(keys)):
            rows += _rows(conn, _INCIDENTS.c.key.in_(chunk))
        for chunk in _chunks(sorted(groups)):
            rows += _rows(
                conn,
                sa.and_(
                    _INCIDENTS.c.group_key.in_(chunk),
                    _INCIDENTS.c.status != IncidentStatus.RESOLVED.value,
                ),
            )
        for row in sorted(rows, key=lambda r: r["id"]):
            self.remember(row)

    def remember(self, row: IncidentRow) -> None:
        self.by_key[row["key"]] = row
        if row["status"] != IncidentStatus.RESOLVED:
            self.open_by_group[row["group_key"]] = row
        elif self.open_by_group.get(row["group_key"], {}).get("id") == row["id"]:
            del self.open_by_group[row["group_key"]]

    def correlate(self, alert: Alert, event_id: int) -> Correlation:
        group = group_key(alert)
        key = cycle_key(alert)
        if key is not None:
            found = self.by_key.get(key)
            if found is not None and found["status"] == IncidentStatus.RESOLVED:
                # Datadog starts a new cycle key after a recovery, so this is a late or
                # out-of-order delivery of the old cycle.
                return Correlation(found, group, key, late=True)
            return Correlation(found, group, key)
        return Correlation(self.open_by_group.get(group), group, f"{group}|event:{event_id}"[:400])


def _rows(conn: sa.Connection, where: sa.ColumnElement[bool]) -> list[IncidentRow]:
    return [dict(row) for row in conn.execute(sa.select(_INCIDENTS).where(where)).mappings()]


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
