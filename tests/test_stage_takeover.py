"""Take-over stage: a new incident's first due run of each lane is claimed as it is planned."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from responder.actions import Pace
from responder.domain import Alert, RunState
from responder.metrics import Metrics
from responder.pipeline.alerts import AlertSource
from responder.pipeline.claim import Claimer
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.jobs import Taken
from responder.pipeline.stages import EventItem
from responder.pipeline.takeover import TakeOverStage
from responder.records import IncidentRecord, RunRecord
from responder.redact import Redactor
from tests.stagekit import (
    LEASE,
    NOW,
    SlackPost,
    Timeline,
    alert,
    batch,
    claimer_for,
    incident,
    item,
    registry,
    run,
)


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    # Taking over never touches the database; the claimer only needs an engine to exist.
    created = sa.create_engine("sqlite://")
    yield created
    created.dispose()


def pending(run_id: int, action: str, *, delay: timedelta = timedelta(0)) -> RunRecord:
    """A run just planned for incident 100, due `delay` after NOW."""
    return run(
        run_id=run_id,
        incident_id=100,
        action=action,
        state=RunState.PENDING,
        due=NOW + delay,
        idempotency_key=f"p:100:main:{run_id}",
    )


def take_over(
    claimer: Claimer, runs: list[RunRecord], *, opened: bool = True
) -> tuple[EventItem, IncidentRecord]:
    known = incident(incident_id=100)
    current = item(alert(), event_id=3)
    current.incident, current.opened, current.runs = known, opened, list(runs)
    assert TakeOverStage(claimer)(current, batch()) is True
    return current, known


def states(current: EventItem) -> list[tuple[int, str, int]]:
    return [(r.id, r.state, r.attempts) for r in current.runs]


def test_the_first_due_run_of_each_lane_is_leased(engine: sa.Engine) -> None:
    runs = [
        pending(500, "slack.post"),
        pending(501, "slack.reply"),  # same lane, after 500
        pending(502, "pagerduty.trigger"),
        pending(503, "test.later", delay=timedelta(minutes=10)),
    ]
    current, _ = take_over(claimer_for(engine, registry()), runs)
    assert states(current) == [
        (500, "running", 1),
        (501, "pending", 0),
        (502, "running", 1),
        (503, "pending", 0),
    ]
    for leased in (current.runs[0], current.runs[2]):
        assert (leased.lease_owner, leased.lease_until) == ("worker-1", NOW + LEASE)
    assert current.runs[1] == runs[1] and current.runs[3] == runs[3]
    assert [(t.run.id, t.settled) for t in current.taken] == [(500, None), (502, None)]
    assert [(r.kind, r.run_id, r.incident_id, r.event_id) for r in current.records] == [
        ("run.attempt", 500, 100, 1),
        ("run.attempt", 502, 100, 1),
    ]
    assert dict(current.records[0].data) == {
        "action": "slack.post",
        "attempt": 1,
        "request": {"action": "slack.post", "target": "web"},
    }


def test_a_taken_run_carries_what_its_call_needs(engine: sa.Engine) -> None:
    current, _ = take_over(claimer_for(engine, registry()), [pending(500, "slack.post")])
    [taken] = current.taken
    assert taken.job is not None
    assert taken.job.run == current.runs[0]
    ctx = taken.job.ctx
    assert (ctx.run_id, ctx.action, ctx.attempt, ctx.uncertain) == ("500", "slack.post", 1, False)
    assert ctx.idempotency_key == "p:100:main:500"
    assert ctx.incident.id == "100"
    assert ctx.alert.cycle_key == "7716548234000004444"
    assert ctx.parent is None and ctx.previous is None


def test_nothing_is_taken_for_an_incident_that_was_already_open(engine: sa.Engine) -> None:
    runs = [pending(500, "slack.reply")]
    current, _ = take_over(claimer_for(engine, registry()), runs, opened=False)
    assert current.runs == runs
    assert current.taken == [] and current.records == []


def test_an_event_without_an_incident_passes(engine: sa.Engine) -> None:
    current = item(alert("Recovered"), event_id=3)
    assert TakeOverStage(claimer_for(engine, registry()))(current, batch()) is True
    assert current.taken == [] and current.records == []


def test_a_failed_or_delayed_first_run_leaves_the_lane_to_the_next(engine: sa.Engine) -> None:
    failed = replace(pending(500, "slack.post"), state=RunState.FAILED.value)
    runs = [
        failed,
        pending(501, "slack.post"),
        pending(502, "pagerduty.trigger", delay=timedelta(minutes=5)),
        pending(503, "pagerduty.trigger"),
    ]
    current, _ = take_over(claimer_for(engine, registry()), runs)
    assert states(current) == [
        (500, "failed", 0),
        (501, "running", 1),
        (502, "pending", 0),
        (503, "running", 1),
    ]


def test_an_unconfigured_action_is_settled_as_skipped(engine: sa.Engine) -> None:
    actions = registry(SlackPost(configured=False))
    runs = [pending(500, "slack.post"), pending(501, "slack.reply")]
    current, _ = take_over(claimer_for(engine, actions), runs)
    skipped = current.runs[0]
    assert (skipped.state, skipped.attempts, skipped.finished_at) == ("skipped", 1, NOW)
    assert (skipped.lease_owner, skipped.lease_until) == (None, None)
    assert skipped.result == {
        "reason": "integration not configured",
        "request": {"action": "slack.post", "target": "web"},
    }
    # only the first due run of a lane is taken, even when it needed no call
    assert states(current)[1] == (501, "pending", 0)
    [taken] = current.taken
    assert taken.job is None
    assert taken.settled is not None
    assert (taken.settled.state, taken.settled.kind) == (RunState.SKIPPED, "run.skipped")
    [record] = current.records
    assert (record.kind, record.run_id) == ("run.skipped", 500)
    assert (record.data["attempt"], record.data["state"]) == (1, RunState.SKIPPED)


def test_an_action_wanting_the_timeline_is_left_to_the_claim_and_holds_its_lane(
    engine: sa.Engine,
) -> None:
    runs = [pending(500, "datadog.timeline"), pending(501, "datadog.timeline")]
    current, _ = take_over(claimer_for(engine, registry(Timeline())), runs)
    assert current.runs == runs
    assert current.taken == [] and current.records == []


def test_a_run_over_its_vendors_pace_stays_pending_with_a_booked_slot(engine: sa.Engine) -> None:
    pace = Pace("C0ALERTS", 1.0)
    claimer = claimer_for(engine, registry(SlackPost(pace=pace)))
    assert claimer.pacer.slot(pace.key, pace.interval, 999, NOW) is None  # slot just used
    current, _ = take_over(claimer, [pending(500, "slack.post"), pending(501, "pagerduty.trigger")])
    assert states(current) == [(500, "pending", 0), (501, "running", 1)]
    assert [t.run.id for t in current.taken] == [501]
    # the claim round will find run 500 booked for the next slot
    assert claimer.pacer.slot(pace.key, pace.interval, 500, NOW) == NOW + timedelta(seconds=1)


class BrokenClaimer(Claimer):
    def take_fresh(
        self, run: RunRecord, incident: IncidentRecord, alert: Alert, now: datetime
    ) -> Taken | None:
        if run.action == "slack.post":
            raise RuntimeError("boom")
        return super().take_fresh(run, incident, alert, now)


def test_a_take_over_that_raises_leaves_the_run_pending_and_goes_on(engine: sa.Engine) -> None:
    claimer = BrokenClaimer(
        engine,
        registry(),
        Redactor([]),
        Metrics(),
        AlertSource(AlertContexts()),
        owner="worker-1",
        lease=LEASE,
    )
    runs = [pending(500, "slack.post"), pending(501, "slack.reply"), pending(502, "test.call")]
    current, _ = take_over(claimer, runs)
    assert states(current) == [(500, "pending", 0), (501, "pending", 0), (502, "running", 1)]
    assert [t.run.id for t in current.taken] == [502]
