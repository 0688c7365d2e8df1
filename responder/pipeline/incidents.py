"""The incidents one batch of events touches, and which of them an alert belongs to
(monitor + scope + alert cycle), in Datadog's order rather than the order of arrival.

Loaded in a few queries per batch and kept in memory, so that a trigger and its recovery
arriving in the same batch meet the same incident. Beside the incidents, each monitor +
scope's group (`GroupRecord`): the state Datadog last put it in and when, which is how a
delivery dated before what we already hold is known to be late, and whether it flaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from responder.domain import Alert, Transition
from responder.records import GroupRecord, IncidentRecord
from responder.store import groups, incidents


@dataclass(frozen=True, slots=True)
class Correlation:
    incident: IncidentRecord | None  # None: nothing open for this alert yet
    group_key: str
    key: str  # the key a new incident would get
    late: str | None = None  # why the alert must not change anything (it is out of date)
    joined: str | None = None  # why it joins an incident of another cycle (flapping)


def group_key(alert: Alert) -> str:
    # Datadog's default template has no monitor id: the monitor name is the best we have.
    monitor = alert.monitor_id or f"title:{alert.monitor_name.lower()}"
    return f"{monitor}|{alert.scope}"[:300]


def cycle_key(alert: Alert) -> str | None:
    return f"{group_key(alert)}|{alert.cycle_key}"[:400] if alert.cycle_key else None


class IncidentIndex:
    """The incidents a batch touches, by key, by id and by open group, and their groups."""

    def __init__(self) -> None:
        self.by_key: dict[str, IncidentRecord] = {}
        self.by_id: dict[int, IncidentRecord] = {}
        self.open_by_group: dict[str, IncidentRecord] = {}
        self.groups: dict[str, GroupRecord] = {}
        self.stored_groups: set[str] = set()  # keys that already have a row
        self.changed_groups: set[str] = set()  # keys to write back with the batch

    @classmethod
    def load(cls, conn: sa.Connection, alerts: Iterable[Alert]) -> IncidentIndex:
        keys, open_groups, all_groups = set(), set(), set()
        for alert in alerts:
            group = group_key(alert)
            all_groups.add(group)
            key = cycle_key(alert)
            if key is not None:
                keys.add(key)
            else:
                open_groups.add(group)
        index = cls()
        index.groups = groups.for_keys(conn, keys=all_groups)
        index.stored_groups = set(index.groups)
        for incident in incidents.for_alerts(conn, keys=keys, open_groups=open_groups):
            index.remember(incident)
        holders = {g.incident_id for g in index.groups.values() if g.incident_id is not None}
        for incident in incidents.by_ids(conn, ids=holders - set(index.by_id)).values():
            index.remember(incident)
        return index

    def remember(self, incident: IncidentRecord) -> None:
        self.by_key[incident.key] = incident
        self.by_id[incident.id] = incident
        if incident.is_open:
            self.open_by_group[incident.group_key] = incident
        else:
            known = self.open_by_group.get(incident.group_key)
            if known is not None and known.id == incident.id:
                del self.open_by_group[incident.group_key]

    def keep_group(self, group: GroupRecord) -> None:
        self.groups[group.key] = group
        self.changed_groups.add(group.key)

    def correlate(self, alert: Alert, event_id: int) -> Correlation:
        group = group_key(alert)
        key = cycle_key(alert)
        state = self.groups.get(group)
        if key is not None:
            found = self.by_key.get(key)
            if found is not None and not found.is_open:
                # Datadog starts a new cycle key after a recovery, so this is a late or
                # out-of-order delivery of a cycle that is over.
                return Correlation(found, group, key, late="its alert cycle already recovered")
            if found is not None:
                return Correlation(found, group, key)
            holder = self._flapping_holder(state)
            if holder is not None:
                return self._join(alert, state, holder, group, key)
            return Correlation(None, group, key)
        new_key = f"{group}|event:{event_id}"[:400]
        found = self.open_by_group.get(group)
        if found is not None:
            return self._join(alert, state, found, group, new_key)
        last = self.by_id.get(state.incident_id) if state and state.incident_id else None
        if (
            state is not None
            and last is not None
            and state.state == Transition.RECOVERED.value
            and alert.date <= state.changed_at
            and alert.cause is None
        ):
            # No cycle key to go by (Datadog's default template): the dates say it.
            when = state.changed_at.isoformat()
            return Correlation(last, group, new_key, late=f"dated before the recovery at {when}")
        return Correlation(None, group, new_key)

    def _flapping_holder(self, state: GroupRecord | None) -> IncidentRecord | None:
        if state is None or not state.flapping or state.incident_id is None:
            return None
        holder = self.by_id.get(state.incident_id)
        return holder if holder is not None and holder.is_open else None

    def _join(
        self,
        alert: Alert,
        state: GroupRecord | None,
        incident: IncidentRecord,
        group: str,
        key: str,
    ) -> Correlation:
        """An alert joining an open incident that is not its own cycle's: a state change
        older than the one already applied is late, not news."""
        older = (
            state is not None
            and alert.cause is None
            and alert.transition.changes_state
            and alert.date < state.changed_at
        )
        if older:
            assert state is not None
            late = f"older than the {state.state} of {state.changed_at.isoformat()} already applied"
            return Correlation(incident, group, key, late=late)
        joined = "the monitor is flapping" if state is not None and state.flapping else None
        if incident.cycle_key is not None and alert.cycle_key == incident.cycle_key:
            joined = None
        return Correlation(incident, group, key, joined=joined)
