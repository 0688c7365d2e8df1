"""Group stage: the grouping key a playbook's `group_by` gives, members joining one open
incident, recoveries held while others fire, and the summary timer's event."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.flapping import FlapStage
from responder.pipeline.grouping import GroupStage, grouping_key
from responder.pipeline.lifecycle import LifecycleStage
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.schema import Playbook
from responder.records import GroupRecord, IncidentRecord
from tests.stagekit import NOW, alert, batch, incident, item, load, registry

GROUPED = """
name: shop
match: {tags: {service: checkout}}
group_by: [service, env]
group_window: 2m
actions:
  - slack.post: {channel: "#shop"}
"""
KEY = "shop|service=checkout,env=prod"


@pytest.fixture
def playbooks(tmp_path: Path) -> list[Playbook]:
    return load(tmp_path / "pb", registry(), GROUPED)


def host(name: str, transition: str = "Triggered", **fields: Any) -> EventItem:
    return item(alert(transition, scope=f"host:{name}", **fields))


def chain(current: EventItem, shared: Batch, playbooks: list[Playbook]) -> EventItem:
    current.grouping = grouping_key(playbooks, current.alert)
    for stage in (CorrelateStage(), FlapStage(), GroupStage(), LifecycleStage()):
        assert stage(current, shared) is True
    return current


def grouped(members: int = 2, firing: int = 2) -> IncidentRecord:
    return replace(incident(incident_id=7), grouping_key=KEY, members=members, firing=firing)


def member(name: str, state: str = "Triggered") -> GroupRecord:
    return GroupRecord(
        key=f"148275622|host:{name}",
        state=state,
        changed_at=NOW - timedelta(minutes=1),
        changes=(),
        flapping_since=None,
        quiet_at=None,
        incident_id=7,
        updated_at=NOW,
        joined_at=NOW - timedelta(minutes=1),
    )


def test_the_key_names_the_playbook_and_its_tag_values(playbooks: list[Playbook]) -> None:
    assert grouping_key(playbooks, alert(tags="service:payments,env:prod")) is None
    tagged = alert(tags="env:prod,service:checkout,team:shop")
    assert grouping_key(playbooks, tagged) == KEY
    assert grouping_key(playbooks, alert(tags="service:checkout")) is None  # no env tag
    assert grouping_key(playbooks, alert("Recovered", tags="env:prod,service:checkout")) is None


def test_a_first_alert_opens_a_grouped_incident(playbooks: list[Playbook]) -> None:
    current = chain(host("web-1", tags="env:prod,service:checkout"), batch(), playbooks)
    assert current.incident is not None and current.opened
    assert (current.incident.grouping_key, current.incident.members) == (KEY, 1)
    assert current.group is not None and current.group.incident_id == current.incident.id


def test_another_host_joins_and_its_follow_ups_are_quiet(playbooks: list[Playbook]) -> None:
    open_one = grouped(members=1, firing=1)
    shared = batch(incidents=[open_one], playbooks=playbooks)
    shared.incidents.groups[member("web-1").key] = member("web-1")
    current = chain(host("web-2", tags="env:prod,service:checkout"), shared, playbooks)
    assert current.incident is not None and not current.opened
    assert current.incident.id == 7
    assert (current.incident.members, current.incident.firing) == (2, 2)
    assert current.incident.summary_at == NOW + timedelta(minutes=2)
    assert current.quiet == "grouped: new members are told in the thread together"
    assert [r.kind for r in current.records if r.kind == "incident.grouped"] == ["incident.grouped"]


def test_a_member_recovery_is_held_while_others_fire(playbooks: list[Playbook]) -> None:
    shared = batch(incidents=[grouped()])
    for name in ("web-1", "web-2"):
        shared.incidents.groups[member(name).key] = member(name)
    current = chain(host("web-2", "Recovered", tags="env:prod,service:checkout"), shared, playbooks)
    assert current.incident is not None
    assert (current.incident.status, current.incident.firing) == ("triggered", 1)
    assert current.hold == "1 of 2 grouped alerts still fire"


def test_the_last_member_recovery_resolves(playbooks: list[Playbook]) -> None:
    shared = batch(incidents=[grouped(firing=1)])
    shared.incidents.groups[member("web-1", "Recovered").key] = member("web-1", "Recovered")
    shared.incidents.groups[member("web-2").key] = member("web-2")
    current = chain(host("web-2", "Recovered", tags="env:prod,service:checkout"), shared, playbooks)
    assert current.incident is not None
    assert (current.incident.status, current.incident.firing) == ("resolved", 0)
    assert current.hold is None


def test_the_summary_timer_tells_the_new_members_once(playbooks: list[Playbook]) -> None:
    due = NOW + timedelta(minutes=2)
    known = replace(grouped(members=3, firing=3), summary_at=due, summarized=1)
    shared = batch(incidents=[known])
    for name in ("web-1", "web-2", "web-3"):
        shared.incidents.groups[member(name).key] = member(name)
    shared.incidents.groups[member("web-1").key] = replace(
        member("web-1"), joined_at=NOW - timedelta(minutes=5)
    )
    timer = replace(alert("Triggered", date=due), cause="group-summary")
    current = chain(item(timer), shared, playbooks)
    assert current.notes == ["2 more joined: host:web-2, host:web-3. 3 of 3 grouped alerts firing."]
    assert current.refresh_root
    assert current.incident is not None
    assert (current.incident.summary_at, current.incident.summarized) == (None, 3)
    assert current.incident.repeats == 0 and current.incident.status == "triggered"


def test_a_timer_event_is_no_sign_of_life_for_the_stale_timer(playbooks: list[Playbook]) -> None:
    due = NOW + timedelta(minutes=2)
    stale_at = NOW + timedelta(hours=3)
    known = replace(grouped(), summary_at=due, stale_at=stale_at)
    shared = batch(incidents=[known], playbooks=playbooks)
    timer = replace(alert("Triggered", date=due), cause="group-summary")
    current = chain(item(timer), shared, playbooks)
    assert current.incident is not None
    assert current.incident.stale_at == stale_at  # unmoved: only a delivery moves it


def test_a_members_change_is_told_with_the_others(playbooks: list[Playbook]) -> None:
    shared = batch(incidents=[grouped(firing=1)], playbooks=playbooks)
    shared.incidents.groups[member("web-1").key] = member("web-1")
    shared.incidents.groups[member("web-2", "Recovered").key] = member("web-2", "Recovered")
    again = host("web-2", tags="env:prod,service:checkout", cycle="another-cycle")
    current = chain(again, shared, playbooks)
    assert current.incident is not None
    assert (current.incident.members, current.incident.firing) == (2, 2)
    assert current.quiet == "grouped: members' changes are told in the thread together"
    assert current.incident.summary_at == NOW + timedelta(minutes=2)
