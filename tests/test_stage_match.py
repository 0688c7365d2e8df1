"""Match stage: matched playbooks, and which of them are new to the incident."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from responder.domain import RunState
from responder.pipeline.match import MatchStage
from responder.pipeline.stages import EventItem
from responder.playbooks.schema import Playbook
from responder.records import IncidentRecord, RunRecord
from tests.stagekit import alert, batch, incident, item, load, registry, run

NOTIFY = """
name: notify
actions:
  - slack.post: {channel: "#alerts"}
"""
PAGE = """
name: page
match: {priority: [P1, P2]}
actions:
  - pagerduty.trigger: {target: "{{ alert.tags.service }}"}
"""
URGENT = """
name: urgent
match: {priority: P1}
actions:
  - test.call: {target: urgent}
"""
REPEATED = """
name: repeated
match: {when: "incident.event_count > 1"}
actions:
  - test.call: {target: repeated}
"""
ON_RECOVERY = """
name: on-recovery
match: {transition: [Recovered]}
actions:
  - test.call: {target: recovered}
"""


@pytest.fixture
def playbooks(tmp_path: Path) -> list[Playbook]:
    return load(tmp_path / "playbooks", registry(), NOTIFY, PAGE, URGENT, REPEATED, ON_RECOVERY)


def matched(
    current: EventItem,
    playbooks: list[Playbook],
    known: IncidentRecord,
    *,
    opened: bool,
    earlier: list[RunRecord] | None = None,
) -> dict[str, object]:
    current.incident = known
    current.opened = opened
    shared = batch(playbooks=playbooks, earlier={known.id: earlier or []})
    assert MatchStage()(current, shared) is True
    [record] = current.records
    assert (record.kind, record.event_id, record.incident_id) == (
        "playbooks.matched",
        current.event.id,
        known.id,
    )
    return dict(record.data)


def test_a_new_incident_plans_every_matched_playbook(playbooks: list[Playbook]) -> None:
    current = item(alert(priority="P2"), event_id=3)
    data = matched(current, playbooks, incident(incident_id=100), opened=True)
    assert [p.name for p in current.matched] == ["notify", "page"]
    assert current.fresh == current.matched
    by_name = {p.name: p.content_hash for p in playbooks}
    assert data == {
        "matched": [
            {"name": "notify", "hash": by_name["notify"]},
            {"name": "page", "hash": by_name["page"]},
        ],
        "new": ["notify", "page"],
        "already_ran": [],
        # Why each other playbook did not match: the matcher that failed it.
        "not_matched": [
            {"name": "urgent", "reason": "priority 'P2' not in [P1]"},
            {"name": "repeated", "reason": "when is false: incident.event_count > 1"},
            {"name": "on-recovery", "reason": "transition 'Triggered' not in [Recovered]"},
        ],
    }


def test_a_playbook_that_ran_for_the_incident_is_not_new(playbooks: list[Playbook]) -> None:
    known = incident(incident_id=7, priority="P2")
    earlier = [run(incident_id=7, playbook="notify", action="slack.post")]
    current = item(alert("Triggered", priority="P2"), event_id=4)
    data = matched(current, playbooks, replace(known, event_count=2), opened=False, earlier=earlier)
    assert [p.name for p in current.matched] == ["notify", "page", "repeated"]
    assert [p.name for p in current.fresh] == ["page", "repeated"]
    assert data["new"] == ["page", "repeated"]
    assert data["already_ran"] == ["notify"]


@pytest.mark.parametrize("transition", ["Re-Triggered", "Renotify", "Re-Warn", "Re-No Data"])
def test_a_repeat_of_an_open_incident_selects_nothing(
    playbooks: list[Playbook], transition: str
) -> None:
    known = replace(incident(incident_id=7, priority="P1"), event_count=2)
    current = item(alert(transition, priority="P1"), event_id=4)
    data = matched(current, playbooks, known, opened=False)
    assert current.matched == [] and current.fresh == []
    assert data["not_routed"] == "a repeat of an open incident: playbooks run once per incident"


def test_a_repeat_that_opens_the_incident_is_routed(playbooks: list[Playbook]) -> None:
    current = item(alert("Renotify", priority="P2"), event_id=4)
    matched(current, playbooks, incident(incident_id=7), opened=True)
    assert [p.name for p in current.fresh] == ["notify", "page"]


def test_the_fallback_is_decided_once_per_incident(tmp_path: Path) -> None:
    fallback = """
name: unrouted
fallback: true
actions:
  - slack.post: {channel: "#unrouted"}
"""
    warn_only = """
name: latency
match: {transition: [Warn]}
actions:
  - slack.post: {channel: "#latency"}
"""
    playbooks = load(tmp_path / "pb", registry(), warn_only, fallback)
    earlier = [run(incident_id=7, playbook="latency", action="slack.post")]
    # A Triggered the claiming playbook leaves out: the fallback would match it alone.
    current = item(alert("Triggered"), event_id=5)
    data = matched(current, playbooks, incident(incident_id=7), opened=False, earlier=earlier)
    assert current.matched == []
    assert data["fallback"] == "not considered: a playbook already claimed this incident"
    # An incident only the fallback took keeps getting it (its steps run once anyway).
    only = [run(incident_id=8, playbook="unrouted", action="slack.post")]
    again = item(alert("Triggered"), event_id=6)
    matched(again, playbooks, incident(incident_id=8), opened=False, earlier=only)
    assert [p.name for p in again.matched] == ["unrouted"] and again.fresh == []


@pytest.mark.parametrize("state", [RunState.FAILED, RunState.CANCELLED, RunState.PENDING])
def test_a_playbook_counts_as_ran_whatever_its_runs_became(
    playbooks: list[Playbook], state: RunState
) -> None:
    earlier = [run(incident_id=7, playbook="notify", action="slack.post", state=state)]
    current = item(alert("Triggered", priority="P3"), event_id=4)
    data = matched(current, playbooks, incident(incident_id=7), opened=False, earlier=earlier)
    assert data["already_ran"] == ["notify"]
    assert current.fresh == []


def test_an_escalation_brings_in_the_playbook_of_the_new_priority(
    playbooks: list[Playbook],
) -> None:
    earlier = [
        run(run_id=40, incident_id=7, playbook="notify", action="slack.post"),
        run(run_id=41, incident_id=7, playbook="page", action="pagerduty.trigger"),
    ]
    current = item(alert("Triggered", priority="P1"), event_id=5)
    data = matched(current, playbooks, incident(incident_id=7), opened=False, earlier=earlier)
    assert [p.name for p in current.fresh] == ["urgent"]
    assert data["already_ran"] == ["notify", "page"]


def test_when_sees_the_incident_as_lifecycle_left_it(playbooks: list[Playbook]) -> None:
    first = item(alert(priority="P3"), event_id=1)
    matched(first, playbooks, incident(incident_id=7), opened=True)
    assert "repeated" not in [p.name for p in first.matched]
    second = item(alert("Warn", priority="P3"), event_id=2)
    matched(second, playbooks, incident(incident_id=7, event_count=2), opened=False)
    assert [p.name for p in second.matched] == ["notify", "repeated"]


def test_a_recovery_matches_only_playbooks_that_list_it(playbooks: list[Playbook]) -> None:
    earlier = [run(incident_id=7, playbook="notify", action="slack.post")]
    current = item(alert("Recovered", priority="P1"), event_id=6)
    data = matched(current, playbooks, incident(incident_id=7), opened=False, earlier=earlier)
    assert [p.name for p in current.fresh] == ["on-recovery"]
    assert data["already_ran"] == []


def test_earlier_runs_of_other_incidents_do_not_count(playbooks: list[Playbook]) -> None:
    current = item(alert(priority="P3"), event_id=3)
    current.incident = incident(incident_id=7)
    shared = batch(
        playbooks=playbooks,
        earlier={8: [run(incident_id=8, playbook="notify", action="slack.post")]},
    )
    assert MatchStage()(current, shared)
    assert [p.name for p in current.fresh] == ["notify"]


def test_a_new_incident_never_counts_earlier_runs(playbooks: list[Playbook]) -> None:
    # ids are new for a new incident; runs filed under it elsewhere must not hide playbooks
    earlier = [run(incident_id=100, playbook="notify", action="slack.post")]
    current = item(alert(priority="P3"), event_id=3)
    data = matched(current, playbooks, incident(incident_id=100), opened=True, earlier=earlier)
    assert [p.name for p in current.fresh] == ["notify"]
    assert data["already_ran"] == []
