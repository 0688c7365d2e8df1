"""Group stage: alerts of several monitors or hosts as one incident (`group_by`).

A playbook that says `group_by: [service, env]` gathers every alert it matches whose tags
agree on those keys into one open incident, whatever the monitor or host: one page, one
thread. Each monitor + scope in it is a member (its `alert_group` row points at the
incident); a member's recovery resolves nothing while others still fire, and the last one's
resolves everything, as any recovery does. New members and recoveries are not told one by
one: a durable timer (`summary_at`, the playbook's `group_window`) gathers them into one
thread message, and the root message is rewritten with the counts.

Alertmanager's `group_by` and `group_interval` are the model; there is no `group_wait`: the
first alert is told at once, and the rest join it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from responder.domain import Alert, Transition
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.matcher import matches
from responder.playbooks.schema import Playbook
from responder.records import GroupRecord, IncidentRecord, Membership
from responder.store.audit import AuditRecord

_SHOWN = 10  # members named in one summary; the rest are counted


def grouping_key(playbooks: Sequence[Playbook], alert: Alert) -> str | None:
    """The grouped incident `alert` would join: the first playbook it selects that groups,
    with the values of its `group_by` tags. None when it selects none, or lacks a tag.

    Only what can decide it is evaluated (playbooks that group, and `final` ones before
    them, which stop the rest): this runs for every event, before the match stage, and a
    `when` expression is the costliest check there is. Fallback playbooks never group.
    """
    if alert.cause is not None or alert.transition.is_recovery:
        return None
    return grouping_of(playbooks, alert)


def grouping_of(playbooks: Sequence[Playbook], alert: Alert) -> str | None:
    """The grouping key of the first grouping playbook `alert` selects, whatever its
    transition or cause (`grouping_key` says when an event actually joins by it)."""
    if alert.transition.is_recovery:
        # A recovery selects only playbooks that list it; its monitor + scope belongs with
        # the group its triggers join.
        alert = replace(alert, transition=Transition.TRIGGERED)
    for playbook in playbooks:
        if playbook.fallback or not (playbook.group_by or playbook.final):
            continue
        if not matches(playbook.match, alert)[0]:
            continue
        if not playbook.group_by:
            return None  # a final playbook without grouping stops the ones after it
        values = [(key, alert.tag(key)) for key in playbook.group_by]
        if any(value is None for _, value in values):
            return None
        return f"{playbook.name}|" + ",".join(f"{k}={v}" for k, v in values)[:280]
    return None


class GroupStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        found = item.correlation
        assert found is not None, "correlate runs first"
        incident = found.incident
        cause = item.alert.cause
        if cause == "group-summary":
            assert incident is not None, "correlate checked the timer"
            self._summary(item, batch, incident)
        elif incident is None:
            if item.grouping is not None and not item.alert.transition.is_recovery:
                before = batch.incidents.groups.get(found.group_key)
                item.group = replace(_member(item, batch, before), joined_at=batch.now)
                item.membership = Membership(item.grouping, 1, 1, None, 1)
        elif incident.grouping_key is not None and cause in (None, "flap-quiet"):
            self._member_event(item, batch, incident)
        return True

    def _member_event(self, item: EventItem, batch: Batch, incident: IncidentRecord) -> None:
        """Count the member in or out. The counts are kept on the incident and moved by each
        member's own change (its group's state before and after), so no event needs the
        other members: a grouped incident of thousands of hosts costs what one does."""
        assert item.correlation is not None and incident.grouping_key is not None
        key = item.correlation.group_key
        before = batch.incidents.groups.get(key)
        joined = before is None or before.incident_id != incident.id
        member = _member(item, batch, before)
        if joined:
            member = replace(member, joined_at=batch.now)
        item.group = member
        was_firing = 0 if joined or before is None else _firing(before)
        members = incident.members + (1 if joined else 0)
        firing = max(0, incident.firing - was_firing + _firing(member))
        summary_at = incident.summary_at
        window = _window(batch.playbooks, incident.grouping_key)
        recovered = item.alert.transition is Transition.RECOVERED
        if item.alert.cause is not None:  # a flapping member calm again: nothing to tell
            recovered = recovered and firing > 0
            joined = False
        if joined:
            data = {"member": key, "grouping": incident.grouping_key, "members": members}
            item.records.append(AuditRecord("incident.grouped", data, item.event.id, incident.id))
            item.quiet = "grouped: new members are told in the thread together"
        # A group of one is told like any incident; with several, members' changes are news
        # for the summary, not one reply each.
        changed = item.alert.cause is None and item.alert.transition.changes_state
        changed = changed and members > 1
        if changed and not joined and not (recovered and firing == 0):
            # A member firing again, warning, recovering while others fire: told together.
            item.quiet = "grouped: members' changes are told in the thread together"
        if recovered and firing > 0:
            item.hold = f"{firing} of {members} grouped alerts still fire"
            item.quiet = "grouped: recoveries are told in the thread together"
        if (joined or changed) and summary_at is None and firing > 0:
            summary_at = batch.now + window
        item.membership = Membership(
            incident.grouping_key, members, firing, summary_at, incident.summarized
        )

    def _summary(self, item: EventItem, batch: Batch, incident: IncidentRecord) -> None:
        assert incident.grouping_key is not None
        members = sorted(
            batch.incidents.members(incident.id),
            key=lambda g: (g.joined_at or g.updated_at, g.changed_at, g.key),
        )
        fresh = members[incident.summarized :]
        firing = sum(_firing(g) for g in members)
        names = [g.key.split("|", 1)[-1] or g.key for g in fresh[:_SHOWN]]
        more = f" and {len(fresh) - _SHOWN} more" if len(fresh) > _SHOWN else ""
        joined = f"{len(fresh)} more joined: {', '.join(names)}{more}. " if fresh else ""
        item.notes.append(f"{joined}{firing} of {len(members)} grouped alerts firing.")
        item.refresh_root = True
        item.membership = Membership(
            incident.grouping_key, len(members), firing, None, len(members)
        )
        data = {"members": len(members), "firing": firing, "new": len(fresh)}
        record = AuditRecord("incident.summarized", data, item.event.id, incident.id)
        item.records.append(record)


def _member(item: EventItem, batch: Batch, before: GroupRecord | None) -> GroupRecord:
    """The member's group after this event (the flap stage's, if it changed state)."""
    if item.group is not None:
        return item.group
    if before is not None:
        return before
    assert item.correlation is not None
    alert = item.alert
    return GroupRecord(
        key=item.correlation.group_key,
        state=_state_of(alert.transition).value,
        changed_at=alert.date,
        changes=(),
        flapping_since=None,
        quiet_at=None,
        incident_id=None,
        updated_at=batch.now,
        joined_at=batch.now,
    )


_BASE = {
    Transition.RE_TRIGGERED: Transition.TRIGGERED,
    Transition.RE_WARN: Transition.WARN,
    Transition.RE_NO_DATA: Transition.NO_DATA,
    Transition.RENOTIFY: Transition.TRIGGERED,
}


def _state_of(transition: Transition) -> Transition:
    """The state a repeat says the monitor is still in."""
    return _BASE.get(transition, transition)


def _firing(group: GroupRecord) -> int:
    return 0 if group.state == Transition.RECOVERED.value else 1


def _window(playbooks: Sequence[Playbook], grouping: str) -> timedelta:
    name = grouping.split("|", 1)[0]
    for playbook in playbooks:
        if playbook.name == name:
            return playbook.group_window
    return timedelta(minutes=5)
