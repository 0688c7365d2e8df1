"""Flap stage: a monitor + scope that keeps changing state is one incident, not one a cycle.

Every state change is kept on the group (`GroupRecord`) by Datadog's dates. More changes
than the rule allows within its window (`flapping:` of the incident's playbooks, else the
service's default) make the group flapping: from then on its incident holds every cycle,
a recovery does not resolve it, and its follow-ups (thread replies, timeline entries) are
suppressed, each audited. The thread hears once when flapping starts and once when the
group has been calm for the quiet period (a durable timer, `quiet_at`): the incident then
resolves if the monitor is recovered, or stays open if it still fires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from responder.actions import format_duration
from responder.domain import Alert, Transition
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.schema import FlapSpec, Playbook
from responder.records import GroupRecord
from responder.store.audit import AuditRecord


class FlapStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        found, alert = item.correlation, item.alert
        assert found is not None, "correlate runs first"
        group = batch.incidents.groups.get(found.group_key)
        if alert.cause == "flap-quiet":
            assert group is not None, "correlate checked the timer"
            self._calm(item, group)
        elif alert.cause == "stale":
            if group is not None and group.flapping:
                item.group = _settled(group)
        elif alert.cause is not None:
            pass  # another timer's event: no state change of the monitor
        elif alert.transition.changes_state:
            self._change(item, batch, group, alert, found.group_key)
        elif group is not None and group.flapping:
            item.quiet = "the monitor is flapping: the thread hears again once it is calm"
        return True

    def _change(
        self,
        item: EventItem,
        batch: Batch,
        group: GroupRecord | None,
        alert: Alert,
        key: str,
    ) -> None:
        rule = _rule(batch, group, item)
        if group is not None and alert.date < group.changed_at:
            return  # an older state of a cycle we know: the newer one stands
        changed = group is None or group.state != alert.transition.value
        since = alert.date - rule.window
        changes = tuple(c for c in (group.changes if group else ()) if c > since)
        if changed:
            changes += (alert.date,)
        flapping_since = group.flapping_since if group is not None else None
        if flapping_since is not None and not _held_here(item, group):
            flapping_since = None  # the incident that held its flapping is over: start afresh
        started = (
            rule.enabled and flapping_since is None and changed and len(changes) > rule.changes
        )
        if started:
            flapping_since = batch.now
        updated = GroupRecord(
            key=key,
            state=alert.transition.value,
            changed_at=alert.date,
            changes=changes,
            flapping_since=flapping_since,
            quiet_at=batch.now + rule.quiet if flapping_since is not None else None,
            incident_id=group.incident_id if group is not None else None,
            updated_at=batch.now,
        )
        item.group = updated
        if flapping_since is None:
            return
        item.quiet = "the monitor is flapping: the thread hears again once it is calm"
        if alert.transition is Transition.RECOVERED:
            item.hold = f"the monitor is flapping: resolved once calm for {_span(rule.quiet)}"
        if started:
            window, quiet = _span(rule.window), _span(rule.quiet)
            data = {"changes": len(changes), "window": window, "quiet": quiet}
            record = AuditRecord("incident.flapping", data, item.event.id, _incident_id(item))
            item.records.append(record)
            if not _in_group(item):  # a grouped incident's thread hears its members together
                item.notes.append(
                    f"🔁 Flapping: {len(changes)} state changes within {window}. This"
                    f" incident stays open and holds every change; the thread hears again"
                    f" once the monitor has been calm for {quiet}."
                )

    def _calm(self, item: EventItem, group: GroupRecord) -> None:
        # Our clock on both sides: the timer's due time, and when the last change was applied
        # (its Datadog date may be on another clock, or a delivery late).
        calm_for = _span(item.alert.date - group.updated_at)
        still = item.alert.transition is not Transition.RECOVERED
        item.group = _settled(group)
        data = {"calm_for": calm_for, "state": group.state}
        record = AuditRecord("incident.stable", data, item.event.id, _incident_id(item))
        item.records.append(record)
        if still:
            item.quiet = "flapping is over while it still fires: the note says so"
        if _in_group(item):
            return
        if still:
            item.notes.append(f"✅ No longer flapping: calm for {calm_for}, still {group.state}.")
        else:
            item.notes.append(f"✅ No longer flapping: recovered and calm for {calm_for}.")


def _in_group(item: EventItem) -> bool:
    """Whether the event is one member's among several of a grouped incident, whose thread
    hears its members together (a group of one is told like any incident)."""
    found = item.correlation.incident if item.correlation else None
    return found is not None and found.grouping_key is not None and found.members > 1


def _held_here(item: EventItem, group: GroupRecord | None) -> bool:
    """Whether the event reached the open incident holding the group's flapping."""
    found = item.correlation.incident if item.correlation else None
    return (
        group is not None and found is not None and found.is_open and found.id == group.incident_id
    )


def _incident_id(item: EventItem) -> int | None:
    """The incident the event reached, if it existed before it (a new one has no id yet)."""
    found = item.correlation.incident if item.correlation else None
    return found.id if found is not None else None


def _settled(group: GroupRecord) -> GroupRecord:
    return replace(group, changes=(), flapping_since=None, quiet_at=None)


def _rule(batch: Batch, group: GroupRecord | None, item: EventItem) -> FlapSpec:
    """The flapping rule of the playbooks that ran for this incident, or for the group's
    last one (a new cycle has none of its own yet)."""
    incident = item.correlation.incident if item.correlation else None
    holder = incident.id if incident is not None else (group.incident_id if group else None)
    names = {run.playbook for run in batch.earlier.get(holder, [])} if holder else set()
    return batch.policy.flapping_for(_named(batch.playbooks, names))


def _named(playbooks: Iterable[Playbook], names: set[str]) -> list[Playbook]:
    return [playbook for playbook in playbooks if playbook.name in names]


def _span(delta: timedelta) -> str:
    return format_duration(delta.total_seconds())
