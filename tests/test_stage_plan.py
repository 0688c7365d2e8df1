"""Plan stage: runs of new playbooks, follow-ups of earlier runs, cancellations, render errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from responder.domain import RunState, Transition
from responder.pipeline.plan import PlanStage
from responder.pipeline.planned import lane, run_records
from responder.pipeline.stages import EventItem
from responder.playbooks.schema import Playbook
from responder.records import IncidentRecord, RunRecord
from tests.stagekit import MAX_AGE, NOW, Counter, alert, batch, incident, item, load, registry, run

RESPOND = """
name: respond
actions:
  - slack.post: {channel: "#alerts", target: "{{ alert.tags.service }} <{{ alert.monitor }}>"}
  - pagerduty.trigger: {target: "{{ alert.monitor }} ({{ incident.priority }})"}
  - test.later: {target: later, after: 10m, if: incident.open}
"""
BROKEN = """
name: broken
actions:
  - test.call: {target: ok}
  - test.call: {target: "{{ alert.title ~ (1 // 0) }}"}
"""


@pytest.fixture
def respond(tmp_path: Path) -> Playbook:
    [playbook] = load(tmp_path / "respond", registry(), RESPOND)
    return playbook


def plan(
    current: EventItem,
    known: IncidentRecord,
    *,
    opened: bool,
    fresh: list[Playbook] | None = None,
    earlier: list[RunRecord] | None = None,
    ids: Counter | None = None,
) -> EventItem:
    if current.alert.transition is Transition.RECOVERED and not opened:
        known = replace(known, status="resolved", resolution="recovered")  # as lifecycle does
    # Reminders are paced from the last one told; these tests start with none told.
    current.incident = replace(known, reminded_at=None)
    current.opened = opened
    current.fresh = list(fresh or [])
    shared = batch(earlier={known.id: list(earlier or [])}, ids=ids)
    assert PlanStage(registry(), MAX_AGE)(current, shared) is True
    return current


def test_lane_is_incident_and_vendor() -> None:
    assert lane(7, "slack.post") == "7:slack"
    assert lane(7, "slack.reply") == "7:slack"
    assert lane(7, "pagerduty.trigger") == "7:pagerduty"
    assert lane(8, "slack.post") == "8:slack"
    assert lane(7, "plain") == "7:plain"


def test_a_new_playbook_becomes_one_run_per_step(respond: Playbook) -> None:
    ids = Counter()
    current = plan(
        item(alert(), 3), incident(incident_id=100), opened=True, fresh=[respond], ids=ids
    )
    assert ids.taken == [("action_run", 500), ("action_run", 501), ("action_run", 502)]
    assert [(r.id, r.action, r.step, r.lane) for r in current.runs] == [
        (500, "slack.post", 0, "100:slack"),
        (501, "pagerduty.trigger", 1, "100:pagerduty"),
        (502, "test.later", 2, "100:test"),
    ]
    for planned in current.runs:
        assert (planned.incident_id, planned.event_id, planned.parent_id) == (100, 3, None)
        assert (planned.playbook, planned.playbook_hash) == ("respond", respond.content_hash)
        assert (planned.state, planned.attempts, planned.transition) == ("pending", 0, "Triggered")
        assert planned.idempotency_key == f"p:100:respond:{planned.step}"
        assert planned.created_at == NOW
        assert planned.not_before == planned.scheduled_at
        assert planned.expires_at == planned.scheduled_at + MAX_AGE
        assert (planned.lease_owner, planned.last_error, planned.finished_at) == (None, None, None)
    assert [r.scheduled_at for r in current.runs] == [NOW, NOW, NOW + timedelta(minutes=10)]
    assert [r.condition for r in current.runs] == [None, None, "incident.open"]
    assert current.cancelled == [] and current.errors == []


def test_params_are_rendered_with_each_actions_markup(respond: Playbook) -> None:
    source = alert(name="Errors <here> & there")
    current = plan(item(source, 3), incident(incident_id=100), opened=True, fresh=[respond])
    slack, pager, later = (dict(r.params) for r in current.runs)
    # only what `{{ }}` brings in is escaped; the author's own text stays as written
    assert slack == {"channel": "#alerts", "target": "checkout <Errors &lt;here&gt; &amp; there>"}
    assert pager == {"target": "Errors <here> & there (P2)"}  # plain markup
    assert later == {"target": "later"}


def test_each_planned_run_is_recorded(respond: Playbook) -> None:
    current = plan(item(alert(), 3), incident(incident_id=100), opened=True, fresh=[respond])
    assert [(r.kind, r.run_id, r.incident_id, r.event_id) for r in current.records] == [
        ("run.planned", 500, 100, 3),
        ("run.planned", 501, 100, 3),
        ("run.planned", 502, 100, 3),
    ]
    data = dict(current.records[2].data)
    assert data == {
        "action": "test.later",
        "playbook": "respond",
        "playbook_hash": respond.content_hash,
        "step": 2,
        "params": {"target": "later"},
        "not_before": NOW + timedelta(minutes=10),
        "parent_id": None,
        "error": None,
    }


def test_a_template_that_fails_to_render_fails_its_run(tmp_path: Path) -> None:
    [broken] = load(tmp_path / "broken", registry(), BROKEN)
    current = plan(item(alert(), 3), incident(incident_id=100), opened=True, fresh=[broken])
    good, bad = current.runs
    assert (good.state, dict(good.params)) == ("pending", {"target": "ok"})
    assert bad.state == RunState.FAILED.value
    assert dict(bad.params) == {"target": "{{ alert.title ~ (1 // 0) }}"}  # as written
    error = "target: ZeroDivisionError: integer division or modulo by zero"
    assert bad.last_error == f"template error: {error}"
    assert bad.finished_at == NOW
    assert current.errors == [f"broken step 2: {error}"]
    assert [(r.kind, r.run_id) for r in current.records] == [
        ("run.planned", 500),
        ("run.failed", 501),
    ]
    assert current.records[1].data["error"] == f"template error: {error}"


def test_a_recovery_follows_earlier_steps_up_and_cancels_the_delayed_one() -> None:
    earlier = [
        run(run_id=40, action="slack.post", step=0, params={"target": "web", "channel": "#a"}),
        run(run_id=41, action="pagerduty.trigger", step=1, params={"target": "page"}),
        run(
            run_id=42,
            action="test.later",
            step=2,
            state=RunState.PENDING,
            due=NOW + timedelta(minutes=5),
        ),
    ]
    known = incident(incident_id=7)
    current = plan(item(alert("Recovered"), 9), known, opened=False, earlier=earlier)
    assert current.cancelled == [earlier[2]]
    assert [
        (r.id, r.action, r.parent_id, r.lane, r.step, r.idempotency_key) for r in current.runs
    ] == [
        (500, "slack.reply", 40, "7:slack", 0, "f:40:9"),
        (501, "pagerduty.resolve", 41, "7:pagerduty", 1, "f:41:9"),
    ]
    reply, resolve = current.runs
    assert dict(reply.params) == {"target": "web", "of": "slack.post"}
    assert dict(resolve.params) == {"target": "page", "of": "pagerduty.trigger"}
    for follow in current.runs:
        assert (follow.event_id, follow.transition, follow.state) == (9, "Recovered", "pending")
        assert (follow.scheduled_at, follow.expires_at) == (NOW, NOW + MAX_AGE)
        assert follow.playbook == "main"
    assert [(r.kind, r.run_id, r.data["parent_id"]) for r in current.records] == [
        ("run.planned", 500, 40),
        ("run.planned", 501, 41),
        ("run.cancelled", 42, None),
    ]


@pytest.mark.parametrize("state", [RunState.FAILED, RunState.CANCELLED])
def test_runs_that_failed_or_were_cancelled_are_not_followed_up(state: RunState) -> None:
    earlier = [run(run_id=41, action="pagerduty.trigger", state=state)]
    current = plan(
        item(alert("Recovered"), 9), incident(incident_id=7), opened=False, earlier=earlier
    )
    assert current.runs == [] and current.cancelled == [] and current.records == []


def test_running_and_retrying_runs_are_followed_up_not_cancelled() -> None:
    earlier = [
        run(run_id=41, action="pagerduty.trigger", state=RunState.RUNNING),
        # pending again after a failed attempt: first due long ago, next attempt later
        run(
            run_id=42,
            action="pagerduty.trigger",
            state=RunState.PENDING,
            due=NOW - timedelta(minutes=1),
            not_before=NOW + timedelta(minutes=2),
        ),
        run(run_id=43, action="pagerduty.trigger", state=RunState.PENDING, due=NOW),
    ]
    current = plan(
        item(alert("Recovered"), 9), incident(incident_id=7), opened=False, earlier=earlier
    )
    assert current.cancelled == []
    assert [(r.action, r.parent_id) for r in current.runs] == [
        ("pagerduty.resolve", 41),
        ("pagerduty.resolve", 42),
        ("pagerduty.resolve", 43),
    ]


def test_only_a_recovery_cancels_delayed_steps() -> None:
    delayed = run(
        run_id=42, action="slack.post", state=RunState.PENDING, due=NOW + timedelta(minutes=5)
    )
    current = plan(
        item(alert("Renotify"), 9), incident(incident_id=7), opened=False, earlier=[delayed]
    )
    assert current.cancelled == []
    # not cancelled, so the action decides: a Slack post is answered in its thread
    assert [(r.action, r.parent_id, r.transition) for r in current.runs] == [
        ("slack.reply", 42, "Renotify")
    ]


def test_steps_without_a_follow_up_for_the_transition_plan_nothing() -> None:
    earlier = [run(run_id=41, action="pagerduty.trigger"), run(run_id=42, action="test.undo")]
    current = plan(
        item(alert("Renotify"), 9), incident(incident_id=7), opened=False, earlier=earlier
    )
    assert current.runs == [] and current.records == []


def test_a_new_incident_follows_nothing_up() -> None:
    earlier = [run(run_id=40, incident_id=7, action="slack.post")]
    current = plan(
        item(alert("Renotify"), 9), incident(incident_id=7), opened=True, earlier=earlier
    )
    assert current.runs == []


def test_follow_up_keys_name_the_run_and_the_event() -> None:
    earlier = [run(run_id=40, action="slack.post")]
    known = incident(incident_id=7)
    again = [
        plan(item(alert("Renotify"), event), known, opened=False, earlier=earlier).runs[0]
        for event in (9, 9, 10)
    ]
    # the same event planned again (a retried batch) gives the same key: inserted once
    assert [r.idempotency_key for r in again] == ["f:40:9", "f:40:9", "f:40:10"]


def test_an_escalation_plans_the_new_playbook_and_follows_up_the_old_steps(
    respond: Playbook,
) -> None:
    earlier = [run(run_id=40, action="slack.post")]
    current = plan(
        item(alert("Renotify"), 9),
        incident(incident_id=7),
        opened=False,
        fresh=[respond],
        earlier=earlier,
    )
    assert [(r.action, r.parent_id, r.idempotency_key) for r in current.runs] == [
        ("slack.post", None, "p:7:respond:0"),
        ("pagerduty.trigger", None, "p:7:respond:1"),
        ("test.later", None, "p:7:respond:2"),
        ("slack.reply", 40, "f:40:9"),
    ]


def test_run_records_name_failed_runs_as_failed() -> None:
    pending = run(run_id=1, state=RunState.PENDING)
    failed = run(run_id=2, state=RunState.FAILED, last_error="boom")
    records = run_records([pending, failed], "run.cancelled")
    assert [(r.kind, r.run_id, r.data["error"]) for r in records] == [
        ("run.cancelled", 1, None),
        ("run.failed", 2, "boom"),
    ]


def test_steps_of_a_playbook_with_a_long_name_keep_distinct_keys(tmp_path: Path) -> None:
    name = "payments-" + "x" * 121
    document = (
        f"name: {name}\nactions:\n  - test.call: {{target: a}}\n  - test.call: {{target: b}}\n"
    )
    [long] = load(tmp_path / "long", registry(), document)
    current = plan(item(alert(), 3), incident(incident_id=100), opened=True, fresh=[long])
    keys = [r.idempotency_key for r in current.runs]
    assert all(len(key) <= 128 for key in keys)
    assert len(set(keys)) == 2


def test_a_repeat_within_the_reminder_interval_is_suppressed_with_the_reason() -> None:
    earlier = [run(run_id=40, action="slack.post")]
    current = item(alert("Renotify", date=NOW + timedelta(minutes=20)), 9)
    current.incident = replace(incident(incident_id=7), reminded_at=NOW)
    current.opened = False
    assert PlanStage(registry(), MAX_AGE)(current, batch(earlier={7: earlier})) is True
    assert current.runs == []
    [record] = current.records
    assert (record.kind, record.run_id, record.data["action"]) == (
        "run.suppressed",
        40,
        "slack.reply",
    )
    assert record.data["reason"] == (
        "reminder interval: the last went out 20m before this one (at most one per 1h)"
    )
    assert current.incident.reminded_at == NOW  # unchanged: nothing was told


def test_a_repeat_past_the_interval_is_told_and_moves_the_mark() -> None:
    earlier = [run(run_id=40, action="slack.post")]
    later = NOW + timedelta(minutes=61)
    current = item(alert("Renotify", date=later), 9)
    current.incident = replace(incident(incident_id=7), reminded_at=NOW)
    current.opened = False
    assert PlanStage(registry(), MAX_AGE)(current, batch(earlier={7: earlier})) is True
    assert [(r.action, r.parent_id) for r in current.runs] == [("slack.reply", 40)]
    assert current.incident is not None and current.incident.reminded_at == later


def test_no_reminder_once_acknowledged() -> None:
    earlier = [run(run_id=40, action="slack.post")]
    current = item(alert("Renotify", date=NOW + timedelta(hours=3)), 9)
    current.incident = replace(incident(incident_id=7), status="acknowledged", reminded_at=NOW)
    current.opened = False
    assert PlanStage(registry(), MAX_AGE)(current, batch(earlier={7: earlier})) is True
    assert current.runs == []
    assert current.records[0].data["reason"] == "acknowledged: reminders stop"


def test_a_recovery_withdraws_the_reminders_still_queued() -> None:
    reminder = replace(
        run(run_id=50, action="slack.reply", state=RunState.PENDING),
        parent_id=40,
        transition="Renotify",
    )
    earlier = [run(run_id=40, action="slack.post")]
    shared = batch(earlier={7: earlier})
    shared.queued = {7: [reminder]}
    current = item(alert("Recovered"), 9)
    current.incident = replace(incident(incident_id=7), status="resolved")
    current.opened = False
    assert PlanStage(registry(), MAX_AGE)(current, shared) is True
    assert current.withdrawn == [reminder]
    cancelled = [r for r in current.records if r.kind == "run.cancelled"]
    assert [(r.run_id, r.data["reason"]) for r in cancelled] == [
        (50, "cancelled: the incident resolved; the recovery goes out first")
    ]
