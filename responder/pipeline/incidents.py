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

from responder.domain import Alert, Transition, group_key
from responder.records import GroupRecord, IncidentRecord
from responder.store import groups, incidents


@dataclass(frozen=True, slots=True)
class Correlation:
    incident: IncidentRecord | None  # None: nothing open for this alert yet
    group_key: str
    key: str  # the key a new incident would get
    late: str | None = None  # why the alert must not change anything (it is out of date)
    joined: str | None = None  # why it joins an incident of another cycle (flapping, group)


def cycle_key(alert: Alert) -> str | None:
    return f"{group_key(alert)}|{alert.cycle_key}"[:400] if alert.cycle_key else None


class IncidentIndex:
    """The incidents a batch touches, by key, by id and by open group, and their groups."""

    def __init__(self) -> None:
        self.by_key: dict[str, IncidentRecord] = {}
        self.by_id: dict[int, IncidentRecord] = {}
        self.open_by_group: dict[str, IncidentRecord] = {}
        self.open_by_grouping: dict[str, IncidentRecord] = {}  # grouped incidents, by key
        self.groups: dict[str, GroupRecord] = {}
        self.stored_groups: set[str] = set()  # keys that already have a row
        self.changed_groups: set[str] = set()  # keys to write back with the batch

    @classmethod
    def load(
        cls, conn: sa.Connection, alerts: Iterable[Alert], groupings: Iterable[str] = ()
    ) -> IncidentIndex:
        keys, open_groups, all_groups = set(), set(), set()
        named: set[int] = set()  # incidents our own events name (people's answers)
        for alert in alerts:
            if alert.incident_id is not None:
                named.add(alert.incident_id)
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
        for incident in incidents.open_grouped(conn, keys=groupings):
            index.remember(incident)
        holders = {g.incident_id for g in index.groups.values() if g.incident_id is not None}
        holders |= named
        for incident in incidents.by_ids(conn, ids=holders - set(index.by_id)).values():
            index.remember(incident)
        return index

    def load_members(self, conn: sa.Connection) -> None:
        """Every member of the open grouped incidents, for their thread summaries (the
        counts live on the incident: other events never need the members)."""
        grouped = [i.id for i in self.by_id.values() if i.grouping_key and i.is_open]
        for member in groups.of_incidents(conn, ids=grouped):
            if member.key not in self.groups:
                self.groups[member.key] = member
                self.stored_groups.add(member.key)

    def remember(self, incident: IncidentRecord) -> None:
        self.by_key[incident.key] = incident
        self.by_id[incident.id] = incident
        for index, key in (
            (self.open_by_group, incident.group_key),
            (self.open_by_grouping, incident.grouping_key),
        ):
            if key is None:
                continue
            if incident.is_open:
                index[key] = incident
            elif (known := index.get(key)) is not None and known.id == incident.id:
                del index[key]

    def members(self, incident_id: int) -> list[GroupRecord]:
        """The monitor + scope groups the incident holds, as far as this batch knows them
        (all of them once `load_members` ran)."""
        return [g for g in self.groups.values() if g.incident_id == incident_id]

    def keep_group(self, group: GroupRecord) -> None:
        self.groups[group.key] = group
        self.changed_groups.add(group.key)

    def correlate(self, alert: Alert, event_id: int, grouping: str | None = None) -> Correlation:
        """`grouping`: the key of the grouped incident the alert would join, if one is open
        (its playbook's `group_by` values), when nothing of its own monitor holds it."""
        group = group_key(alert)
        if alert.incident_id is not None:  # an event of our own about one incident
            named = self.by_id.get(alert.incident_id)
            return Correlation(named, group, named.key if named else "")
        key = cycle_key(alert)
        state = self.groups.get(group)
        if key is not None:
            found = self.by_key.get(key)
            if found is not None and not found.is_open:
                # Datadog starts a new cycle key after a recovery, so this is a late or
                # out-of-order delivery of a cycle that is over.
                late = "its alert cycle already recovered"
                if found.resolved_by:
                    late = f"the incident was already resolved by {found.resolved_by}"
                return Correlation(found, group, key, late=late)
            if found is not None:
                # A recovery ends its cycle whatever its date; anything else of the cycle
                # dated before the state already applied is out of date.
                older = None if alert.transition.is_recovery else _older(alert, state)
                return Correlation(found, group, key, late=older)
            holder = self._holder(state)
            if holder is not None:
                return self._join(alert, state, holder, group, key)
            return self._grouped(alert, grouping, group, key)
        new_key = f"{group}|event:{event_id}"[:400]
        found = self.open_by_group.get(group) or self._holder(state)
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
        return self._grouped(alert, grouping, group, new_key)

    def _holder(self, state: GroupRecord | None) -> IncidentRecord | None:
        """The open incident holding this monitor + scope beyond its own cycle: a flapping
        incident, or a grouped one it is a member of."""
        if state is None or state.incident_id is None:
            return None
        holder = self.by_id.get(state.incident_id)
        if holder is None or not holder.is_open:
            return None
        return holder if state.flapping or holder.grouping_key is not None else None

    def _grouped(self, alert: Alert, grouping: str | None, group: str, key: str) -> Correlation:
        holder = self.open_by_grouping.get(grouping) if grouping else None
        if holder is None or alert.transition.is_recovery:
            return Correlation(None, group, key)
        return Correlation(holder, group, key, joined=f"grouped by {grouping}")

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
        late = _older(alert, state)
        if late is not None:
            return Correlation(incident, group, key, late=late)
        joined = None
        if state is not None and state.flapping:
            joined = "the monitor is flapping"
        elif incident.grouping_key is not None and incident.group_key != group:
            joined = f"grouped by {incident.grouping_key}"
        if incident.cycle_key is not None and alert.cycle_key == incident.cycle_key:
            joined = None
        return Correlation(incident, group, key, joined=joined)


def _older(alert: Alert, state: GroupRecord | None) -> str | None:
    """Why a state change is out of date: the monitor's state applied so far is newer."""
    if state is None or alert.cause is not None or not alert.transition.changes_state:
        return None
    if alert.date >= state.changed_at:
        return None
    return f"older than the {state.state} of {state.changed_at.isoformat()} already applied"
