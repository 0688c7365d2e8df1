"""BatchWrite.keep: how the events of one batch are folded together for its single write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from responder.domain import EventState, IncidentStatus, RunState
from responder.pipeline.batch import BatchWrite
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.lifecycle import LifecycleStage
from responder.pipeline.match import MatchStage
from responder.pipeline.plan import PlanStage
from responder.pipeline.stages import Batch, EventItem, Stage, run_chain
from responder.pipeline.takeover import TakeOverStage
from responder.playbooks.schema import Playbook
from responder.redact import Redactor
from responder.store import audit as audit_log
from responder.store.audit import AuditRecord
from responder.store.db import create_engine, transaction
from responder.store.events import EventResult
from responder.store.tables import ActionRun, AuditEntry
from tests.stagekit import (
    CYCLE,
    MAX_AGE,
    MONITOR_ID,
    NOW,
    Counter,
    alert,
    batch,
    claimer_for,
    event,
    incident,
    item,
    load,
    registry,
)

KEY = f"{MONITOR_ID}|host:web-1|{CYCLE}"
POSTS = """
name: posts
actions:
  - slack.post: {channel: "#alerts", target: now}
  - slack.post: {channel: "#alerts", target: later, after: 10m}
"""


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    # keep() never touches the database; the write only needs an engine to exist.
    created = sa.create_engine("sqlite://")
    yield created
    created.dispose()


@pytest.fixture
def playbooks(tmp_path: Path) -> list[Playbook]:
    return load(tmp_path / "playbooks", registry(), POSTS)


def stages() -> list[Stage]:
    return [CorrelateStage(), LifecycleStage(), MatchStage(), PlanStage(registry(), MAX_AGE)]


def through(
    write: BatchWrite, shared: Batch, current: EventItem, chain: list[Stage] | None = None
) -> EventItem:
    """One event through the chain and into the write, as the processor does it."""
    run_chain(stages() if chain is None else chain, current, shared)
    write.keep(current, shared)
    return current


def test_an_incident_opened_and_changed_in_one_batch_is_inserted_once_as_last_seen(
    engine: sa.Engine, playbooks: list[Playbook]
) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    shared = batch(playbooks=playbooks)
    through(write, shared, item(alert("Warn", priority="P3", date=NOW - timedelta(minutes=2)), 1))
    through(write, shared, item(alert("Triggered", priority="P1"), 2))
    through(write, shared, item(alert("Recovered", date=NOW - timedelta(seconds=1)), 3))
    assert list(write.opened) == [100]
    assert write.changed == {}
    last = write.opened[100]
    assert (last.status, last.event_count, last.priority) == ("resolved", 3, "P1")
    assert last.opened_at == NOW - timedelta(minutes=2)
    assert last.resolved_at == NOW - timedelta(seconds=1)
    # later events of the batch saw it: it was one incident throughout
    assert shared.incidents.by_key == {KEY: last}
    assert shared.incidents.open_by_group == {}
    assert [(r.id, r.incident_id, r.state) for r in write.results] == [
        (1, 100, "processed"),
        (2, 100, "processed"),
        (3, 100, "processed"),
    ]


def test_a_known_incident_changed_twice_is_updated_once_as_last_seen(
    engine: sa.Engine,
) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    known = incident(incident_id=7, opened_at=NOW - timedelta(hours=1))
    shared = batch(incidents=[known], earlier={7: []})
    through(write, shared, item(alert("Re-Triggered", priority="P3"), 1))
    through(write, shared, item(alert("Re-Triggered", priority="P1"), 2))
    assert write.opened == {}
    assert list(write.changed) == [7]
    assert (write.changed[7].event_count, write.changed[7].priority) == (3, "P1")
    assert shared.incidents.open_by_group[known.group_key] == write.changed[7]


def test_later_events_see_the_runs_planned_before_them_but_not_follow_ups(
    engine: sa.Engine, playbooks: list[Playbook]
) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    shared = batch(playbooks=playbooks)
    first = through(write, shared, item(alert(), 1))
    reminder = alert("Renotify", date=NOW + timedelta(hours=2))  # past the reminder interval
    second = through(write, shared, item(reminder, 2))
    assert [r.id for r in first.runs] == [500, 501]
    assert [(r.id, r.action, r.parent_id) for r in second.runs] == [
        (502, "slack.reply", 500),
        (503, "slack.reply", 501),
    ]
    assert second.fresh == []  # the playbook already ran, in this very batch
    assert [r.id for r in shared.earlier[100]] == [500, 501]
    assert [r.id for r in write.runs] == [500, 501, 502, 503]


def test_a_run_cancelled_by_an_event_is_not_followed_up_by_a_later_one(
    engine: sa.Engine, playbooks: list[Playbook]
) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    shared = batch(playbooks=playbooks)
    through(write, shared, item(alert(), 1))
    recovery = through(write, shared, item(alert("Recovered"), 2))
    assert [r.id for r in recovery.cancelled] == [501]
    assert [(r.action, r.parent_id) for r in recovery.runs] == [("slack.reply", 500)]
    assert write.cancelled == [501]
    cancelled = shared.earlier[100][1]
    assert (cancelled.id, cancelled.state, cancelled.finished_at) == (501, "cancelled", NOW)
    # a later event of the batch reaching the incident (planned by hand: the real chain
    # drops it as late) neither cancels the run again nor follows it up
    later = item(alert("Recovered"), 3)
    later.incident = write.opened[100]
    through(write, shared, later, [PlanStage(registry(), MAX_AGE)])
    assert later.cancelled == []
    assert [(r.action, r.parent_id) for r in later.runs] == [("slack.reply", 500)]
    assert write.cancelled == [501]


def test_a_late_event_after_the_recovery_in_the_same_batch_is_dropped(
    engine: sa.Engine, playbooks: list[Playbook]
) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    shared = batch(playbooks=playbooks)
    through(write, shared, item(alert(), 1))
    through(write, shared, item(alert("Recovered"), 2))
    late = through(write, shared, item(alert("Re-Triggered"), 3))
    assert late.incident is None and late.runs == []
    assert [r.kind for r in late.records] == ["event.late"]
    result = write.results[2]
    assert (result.id, result.incident_id, result.state) == (3, 100, "processed")
    assert result.outcome == {
        "late": "its alert cycle already recovered",
        "playbooks": [],
        "actions": [],
        "incident_id": 100,
    }
    assert write.opened[100].event_count == 2  # the late event did not count


def test_a_recovery_before_its_trigger_is_kept_and_the_trigger_is_late(
    engine: sa.Engine, playbooks: list[Playbook]
) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    shared = batch(playbooks=playbooks)
    early = through(write, shared, item(alert("Recovered"), 4))
    assert early.opened and early.runs == [] and early.matched == []
    kept = write.opened[100]
    assert (kept.status, kept.resolution, kept.resolved_at) == ("resolved", "recovered", NOW)
    trigger = through(write, shared, item(alert("Triggered", date=NOW - timedelta(minutes=5)), 5))
    assert trigger.runs == [] and trigger.incident is None
    assert write.results[1].outcome["late"] == "its alert cycle already recovered"
    assert write.runs == []  # nobody paged, nothing posted


def test_the_result_lists_playbooks_runs_and_errors(engine: sa.Engine, tmp_path: Path) -> None:
    broken = load(
        tmp_path / "broken",
        registry(),
        "name: broken\nactions:\n  - test.call: {target: ok}\n"
        "  - test.call: {target: '{{ 1 // 0 }}'}\n",
    )
    write = BatchWrite(engine, Redactor([]), NOW)
    current = EventItem(event(6, attempts=2), alert())
    through(write, batch(playbooks=broken), current)
    [result] = write.results
    assert result == EventResult(
        id=6,
        state=EventState.PROCESSED.value,
        incident_id=100,
        outcome={
            "playbooks": ["broken"],
            "actions": [
                {"id": 500, "action": "test.call", "state": "pending"},
                {"id": 501, "action": "test.call", "state": "failed"},
            ],
            "errors": [
                "broken step 2: target: ZeroDivisionError: integer division or modulo by zero"
            ],
        },
        processed_at=NOW,
        attempts=3,
    )
    assert [r.kind for r in write.records] == [
        "incident.opened",
        "playbooks.matched",
        "run.planned",
        "run.failed",
    ]


def test_runs_taken_over_are_kept_and_followed_up_as_taken(
    engine: sa.Engine, playbooks: list[Playbook]
) -> None:
    actions = registry()
    claimer = claimer_for(engine, actions)
    chain = [*stages(), TakeOverStage(claimer)]
    write = BatchWrite(engine, Redactor([]), NOW)
    shared = batch(playbooks=playbooks)
    opened = through(write, shared, item(alert(), 1), chain)
    assert [t.run.id for t in write.taken] == [500]
    assert [(r.id, r.state) for r in write.runs] == [(500, "running"), (501, "pending")]
    assert shared.earlier[100][0].state == RunState.RUNNING.value
    recovery = through(write, shared, item(alert("Recovered"), 2), chain)
    # the taken run is in flight: it is followed up, not cancelled; the delayed one is
    assert [(r.action, r.parent_id) for r in recovery.runs] == [("slack.reply", 500)]
    assert [r.id for r in recovery.cancelled] == [501]
    assert recovery.taken == []  # the incident was not new to this event
    assert opened.taken == write.taken


def test_a_failed_event_is_counted_and_recorded(engine: sa.Engine) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    result = EventResult(7, EventState.RECEIVED.value, None, {"error": "boom"}, None, 1)
    write.fail(result, {"error": "boom", "attempt": 1, "final": False})
    assert write.failed == 1
    assert write.results == [result]
    assert write.records == [
        AuditRecord("event.failed", {"error": "boom", "attempt": 1, "final": False}, 7)
    ]


def test_a_resolved_incident_stays_out_of_the_open_groups(engine: sa.Engine) -> None:
    write = BatchWrite(engine, Redactor([]), NOW)
    known = incident(incident_id=7)
    shared = batch(incidents=[known], earlier={7: []})
    through(write, shared, item(alert("Recovered"), 1))
    assert write.changed[7].status == IncidentStatus.RESOLVED.value
    assert shared.incidents.open_by_group == {}
    # a new cycle of the same monitor and scope opens a new incident
    fresh = through(write, shared, item(alert(cycle="cycle-2"), 2))
    assert fresh.opened
    assert fresh.incident is not None and fresh.incident.id == 100
    assert set(write.opened) == {100} and set(write.changed) == {7}


def test_a_run_leased_before_the_write_is_not_recorded_as_cancelled(
    migrated_url: str, playbooks: list[Playbook]
) -> None:
    engine = create_engine(migrated_url)
    try:
        first = BatchWrite(engine, Redactor([]), NOW)
        opened = through(first, batch(playbooks=playbooks), item(alert(), 1))
        first.prepare()
        with transaction(engine) as conn:
            first.apply(conn)
        delayed = opened.runs[1]
        assert delayed.scheduled_at > NOW  # the `after: 10m` step
        runs_table = ActionRun.__table__  # type: ignore[attr-defined]
        shared = batch(
            incidents=[first.opened[100]],
            earlier={100: list(opened.runs)},
            ids=Counter(incident=200, action_run=600),
        )
        second = BatchWrite(engine, Redactor([]), NOW)
        recovery = through(second, shared, item(alert("Recovered"), 2))
        assert [r.id for r in recovery.cancelled] == [delayed.id]
        second.prepare()
        with transaction(engine) as conn:  # a worker leases it between decision and write
            conn.execute(
                sa.update(runs_table).where(runs_table.c.id == delayed.id).values(state="running")
            )
            second.apply(conn)
        entries = AuditEntry.__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            state = conn.execute(
                sa.select(runs_table.c.state).where(runs_table.c.id == delayed.id)
            ).scalar_one()
            kinds = list(
                conn.execute(
                    sa.select(entries.c.kind).where(entries.c.run_id == delayed.id)
                ).scalars()
            )
            assert audit_log.verify(conn).ok
        assert state == "running"  # left to finish
        assert "run.cancelled" not in kinds and kinds[-1] == "run.not_cancelled"
    finally:
        engine.dispose()
