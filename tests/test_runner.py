"""The pipeline and the action runner with a scripted action: order, retries, delays, leases."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from responder.actions import (
    ActionContext,
    ActionError,
    ActionResult,
    FollowUp,
    Pace,
    Registry,
    StepParams,
)
from responder.domain import Transition
from responder.main import build_stages
from responder.metrics import Metrics
from responder.pipeline.backoff import CAP_SECONDS, retry_delay
from responder.pipeline.process import EventProcessor
from responder.pipeline.runner import ActionRunner
from responder.pipeline.wakeup import Wakeup
from responder.pipeline.worker import Worker
from responder.playbooks.loader import load_playbooks
from responder.redact import Redactor
from responder.store import audit
from responder.store.intake import IntakeWriter
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident
from tests.harness import intake_row, sample


class CallParams(StepParams):
    target: str


@dataclass
class Script:
    """What the scripted vendor answers, call by call."""

    errors: list[BaseException | None] = field(default_factory=list)
    calls: list[ActionContext] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ScriptedAction:
    name: ClassVar[str] = "test.call"
    params: ClassVar[type[StepParams]] = CallParams
    markup: ClassVar[str] = "plain"
    needs: ClassVar[str] = ""
    wants_runs: ClassVar[bool] = False

    def __init__(self, script: Script, configured: bool = True, paced: Pace | None = None) -> None:
        self.paced = paced
        self.script = script
        self._configured = configured

    @property
    def configured(self) -> bool:
        return self._configured

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        return {"target": ctx.params.get("target"), "action": self.name}

    def execute(self, ctx: ActionContext) -> ActionResult:
        with self.script.lock:
            self.script.calls.append(ctx)
            error = self.script.errors.pop(0) if self.script.errors else None
        if error is not None:
            raise error
        return ActionResult({"ok": True, "target": ctx.params.get("target")}, {"test": ctx.run_id})

    def pace(self, ctx: ActionContext) -> Pace | None:
        return self.paced

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        if self.name == "test.call" and transition.is_recovery:
            return FollowUp("test.undo", {"target": params["target"]})
        return None

    def acknowledged(self, params: Mapping[str, Any]) -> FollowUp | None:
        return None


def scripted(
    name: str, script: Script, configured: bool = True, paced: Pace | None = None
) -> ScriptedAction:
    """A scripted action under `name` (a class of its own: an action's name is its class's)."""
    kind: type[ScriptedAction] = type(f"Scripted[{name}]", (ScriptedAction,), {"name": name})
    return kind(script, configured, paced)


@dataclass
class Rig:
    engine: sa.Engine
    worker: Worker
    runner: ActionRunner
    processor: EventProcessor
    script: Script
    samples_dir: Path

    def store(self, name: str, **changes: Any) -> None:
        import orjson

        from responder.intake.datadog import normalise

        data = sample(self.samples_dir, name)
        data.update(changes)
        alert = normalise(data, datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(AlertEvent.__table__),  # type: ignore[attr-defined]
                {
                    "fingerprint": f"dd:{alert.source_id}",
                    "source_id": alert.source_id,
                    "monitor_id": alert.monitor_id,
                    "title": alert.title,
                    "transition": alert.transition.value,
                    "priority": alert.priority,
                    "scope": alert.scope,
                    "cycle_key": alert.cycle_key,
                    "template": alert.template,
                    "payload": orjson.dumps(data).decode(),
                    "received_at": datetime.now(UTC),
                    "state": "received",
                    "deliveries": 1,
                    "attempts": 0,
                },
            )

    def runs(self) -> list[ActionRun]:
        with Session(self.engine) as session:
            return list(session.exec(select(ActionRun).order_by(col(ActionRun.id))).all())

    def kinds(self) -> list[str]:
        with Session(self.engine) as session:
            return [a.kind for a in session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))]

    def make_due(self) -> None:
        with self.engine.begin() as conn:
            table = ActionRun.__table__  # type: ignore[attr-defined]
            conn.execute(
                sa.update(table)
                .where(table.c.state == "pending")
                .values(not_before=datetime.now(UTC) - timedelta(seconds=1))
            )


PLAYBOOK = """
name: scripted
actions:
  - test.call: {target: "{{ alert.tags.service }}"}
  - test.later: {target: later, after: 10m, if: incident.open}
"""


@pytest.fixture
def rig(engine: sa.Engine, tmp_path: Path, samples_dir: Path) -> Iterator[Rig]:
    (tmp_path / "scripted.yaml").write_text(PLAYBOOK)
    script = Script()
    registry = Registry(
        [
            scripted("test.call", script),
            scripted("test.undo", script),
            scripted("test.later", script),
        ]
    )
    playbooks = load_playbooks(tmp_path, registry.params_models())
    redactor = Redactor(["sup3r-secret-value"])
    processor = EventProcessor(
        engine, build_stages(registry, timedelta(hours=1)), lambda: playbooks, redactor
    )
    wakeup = Wakeup()
    runner = ActionRunner(engine, registry, redactor, Metrics(), wakeup, threads=4)
    worker = Worker(engine, processor, runner, Metrics(), wakeup, poll_seconds=0.05)
    yield Rig(engine, worker, runner, processor, script, samples_dir)
    runner.shutdown()


def test_trigger_then_recovery_runs_undo_and_cancels_the_delayed_step(rig: Rig) -> None:
    rig.store("checkout-error-rate.triggered")
    assert rig.worker.drain()
    runs = rig.runs()
    assert [(r.action, r.state) for r in runs] == [
        ("test.call", "succeeded"),
        ("test.later", "pending"),  # due in ten minutes
    ]
    assert runs[0].params == {"target": "checkout-service"}
    rig.store("checkout-error-rate.recovered")
    assert rig.worker.drain()
    states = [(r.action, r.state, r.parent_id) for r in rig.runs()]
    assert states == [
        ("test.call", "succeeded", None),
        ("test.later", "cancelled", None),
        ("test.undo", "succeeded", runs[0].id),
    ]
    assert "run.cancelled" in rig.kinds()
    with Session(rig.engine) as session:
        incident = session.exec(select(Incident)).one()
    assert incident.status == "resolved"
    assert incident.refs == {"test": str(runs[0].id)}


def test_a_delayed_step_is_skipped_when_the_incident_resolved_meanwhile(rig: Rig) -> None:
    rig.store("checkout-error-rate.triggered")
    assert rig.worker.drain()
    with Session(rig.engine) as session:
        incident = session.exec(select(Incident)).one()
        incident.status = "resolved"  # resolved by something other than a recovery event
        session.add(incident)
        session.commit()
    rig.make_due()
    assert rig.worker.drain()
    later = rig.runs()[1]
    assert later.state == "skipped"
    assert later.result == {"reason": "incident resolved before this delayed step was due"}


def test_renotify_never_repeats_a_step(rig: Rig) -> None:
    rig.store("fraud-detection-down.triggered")
    rig.store("fraud-detection-down.renotify")
    assert rig.worker.drain()
    calls = [r for r in rig.runs() if r.action == "test.call"]
    assert len(calls) == 1
    assert len([c for c in rig.script.calls if c.action == "test.call"]) == 1


def test_retry_after_is_honoured_and_the_retry_succeeds(rig: Rig) -> None:
    rig.script.errors = [ActionError("slow down", retryable=True, retry_after=120)]
    rig.store("checkout-error-rate.triggered")
    before = datetime.now(UTC)
    assert rig.worker.drain()
    run = rig.runs()[0]
    assert run.state == "pending" and run.attempts == 1
    wait = (run.not_before - before).total_seconds()
    assert 120 <= wait <= 120 * 1.1 + 5
    assert run.result is not None and run.result["retry_in_seconds"] >= 120
    rig.make_due()
    assert rig.worker.drain()
    run = rig.runs()[0]
    assert run.state == "succeeded" and run.attempts == 2
    assert rig.kinds().count("run.retry") == 1


def test_permanent_error_fails_at_once(rig: Rig) -> None:
    rig.script.errors = [ActionError("bad request", retryable=False, response={"status": 400})]
    rig.store("checkout-error-rate.triggered")
    assert rig.worker.drain()
    run = rig.runs()[0]
    assert run.state == "failed" and run.attempts == 1
    assert run.result == {"error": "bad request", "response": {"status": 400}}


def test_a_run_past_its_maximum_age_fails_visibly(rig: Rig) -> None:
    rig.script.errors = [ActionError("down", retryable=True)]
    rig.store("checkout-error-rate.triggered")
    assert rig.worker.drain()
    with rig.engine.begin() as conn:
        table = ActionRun.__table__  # type: ignore[attr-defined]
        conn.execute(
            sa.update(table)
            .where(table.c.action == "test.call")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    rig.make_due()
    assert rig.worker.drain()
    run = rig.runs()[0]
    assert run.state == "failed"
    assert run.last_error is not None and "maximum age" in run.last_error


def test_an_adapter_bug_fails_the_run_and_leaks_no_secret(rig: Rig) -> None:
    rig.script.errors = [RuntimeError("boom with sup3r-secret-value inside")]
    rig.store("checkout-error-rate.triggered")
    assert rig.worker.drain()
    run = rig.runs()[0]
    assert run.state == "failed"
    assert run.last_error is not None and "RuntimeError" in run.last_error
    assert "sup3r-secret-value" not in run.last_error
    with Session(rig.engine) as session:
        assert all("sup3r-secret-value" not in a.data for a in session.exec(select(AuditEntry)))


def test_runs_of_one_lane_wait_for_the_earlier_one(rig: Rig) -> None:
    rig.script.errors = [ActionError("down", retryable=True)]
    rig.store("fraud-detection-down.triggered")
    rig.store("fraud-detection-down.recovered")
    assert rig.worker.drain()
    call, _later, undo = rig.runs()
    assert call.state == "pending"  # waiting for its retry
    assert undo.state == "pending" and undo.attempts == 0  # held back behind it: same lane
    rig.make_due()
    assert rig.worker.drain()
    assert [r.state for r in rig.runs()] == ["succeeded", "cancelled", "succeeded"]
    order = [c.action for c in rig.script.calls]
    assert order == ["test.call", "test.call", "test.undo"]


def test_an_expired_lease_makes_the_run_uncertain_and_it_runs_again(rig: Rig) -> None:
    rig.store("checkout-error-rate.triggered")
    rig.processor.process_batch()
    claimed = rig.runner.claim(10)
    assert len(claimed.jobs) == 1  # the delayed step is not due
    with rig.engine.begin() as conn:  # the worker that claimed it died: its lease runs out
        table = ActionRun.__table__  # type: ignore[attr-defined]
        conn.execute(sa.update(table).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert rig.worker.drain()
    assert "run.lease_expired" in rig.kinds()
    (ctx,) = rig.script.calls
    assert ctx.uncertain is True and ctx.attempt == 2
    assert rig.runs()[0].state == "succeeded"


def test_unconfigured_actions_are_skipped_with_the_request(
    engine: sa.Engine, tmp_path: Path, samples_dir: Path
) -> None:
    (tmp_path / "p.yaml").write_text("name: p\nactions:\n  - test.call: {target: x}\n")
    script = Script()
    registry = Registry([scripted("test.call", script, configured=False)])
    playbooks = load_playbooks(tmp_path, registry.params_models())
    processor = EventProcessor(
        engine, build_stages(registry, timedelta(1)), lambda: playbooks, Redactor([])
    )
    wakeup = Wakeup()
    runner = ActionRunner(engine, registry, Redactor([]), Metrics(), wakeup, threads=2)
    worker = Worker(engine, processor, runner, Metrics(), wakeup, poll_seconds=0.05)
    rig = Rig(engine, worker, runner, processor, script, samples_dir)
    rig.store("api-latency.warn")
    assert worker.drain()
    runner.shutdown()
    (run,) = rig.runs()
    assert run.state == "skipped"
    assert run.result == {
        "reason": "integration not configured",
        "request": {"target": "x", "action": "test.call"},
    }
    assert script.calls == []


def test_recovery_without_a_known_incident_is_kept_as_resolved(rig: Rig) -> None:
    rig.store("api-latency.recovered")
    assert rig.worker.drain()
    with Session(rig.engine) as session:
        event = session.exec(select(AlertEvent)).one()
        (incident,) = session.exec(select(Incident)).all()
        assert session.exec(select(ActionRun)).all() == []  # nothing to undo, nothing run
    assert (incident.status, incident.resolution) == ("resolved", "recovered")
    assert (event.state, event.incident_id) == ("processed", incident.id)
    with rig.engine.connect() as conn:
        assert audit.verify(conn).ok


def test_escalation_warn_to_triggered_stays_one_incident(rig: Rig) -> None:
    rig.store("api-latency.warn")
    rig.store("api-latency.triggered")
    assert rig.worker.drain()
    with Session(rig.engine) as session:
        (incident,) = session.exec(select(Incident)).all()
    assert incident.event_count == 2
    assert incident.last_transition == "Triggered"


def test_default_template_events_correlate_on_the_title(rig: Rig) -> None:
    rig.store("default-template.payment-failure-rate.triggered")
    recovered = sample(rig.samples_dir, "default-template.payment-failure-rate.triggered")
    rig.store(
        "default-template.payment-failure-rate.triggered",
        id="7716548234011299998",
        title=recovered["title"].replace("[Triggered]", "[Recovered]"),
    )
    assert rig.worker.drain()
    with Session(rig.engine) as session:
        (incident,) = session.exec(select(Incident)).all()
    assert incident.status == "resolved"
    assert incident.monitor_id == "148275309"  # from the monitor link in the message


def test_a_poisoned_event_does_not_block_the_ones_after_it(rig: Rig) -> None:
    rig.store("checkout-error-rate.triggered")
    with rig.engine.begin() as conn:
        table = AlertEvent.__table__  # type: ignore[attr-defined]
        conn.execute(sa.update(table).values(payload='{"alert": "garbage"}'))
    rig.store("fraud-detection-down.triggered")
    for _ in range(6):
        rig.processor.process_batch()
    with Session(rig.engine) as session:
        events = session.exec(select(AlertEvent).order_by(col(AlertEvent.id))).all()
    assert [e.state for e in events] == ["failed", "processed"]
    assert events[0].outcome is not None and "alert" in events[0].outcome["error"]
    assert "event.failed" in rig.kinds()


def test_backoff_grows_with_jitter_and_respects_the_cap() -> None:
    import random

    rng = random.Random(7)
    for attempt in range(1, 12):
        delay = retry_delay(attempt, None, rng)
        ceiling = min(CAP_SECONDS, 2.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert 30 <= retry_delay(3, 30.0, rng) <= 33


def test_intake_writer_groups_rows_and_answers_each(engine: sa.Engine) -> None:
    import asyncio

    sizes: list[int] = []
    writer = IntakeWriter(engine, on_batch=sizes.append)
    writer.start()

    def row(i: int) -> dict[str, Any]:
        # 50 of the 200 are redeliveries
        return intake_row(f"dd:group-{i % 150}", str(i))

    async def many() -> list[Any]:
        return await asyncio.gather(*(writer.submit(row(i)) for i in range(200)))

    results = asyncio.run(many())
    writer.stop()
    assert sum(not r.duplicate for r in results) == 150
    assert sum(r.duplicate for r in results) == 50
    assert len({r.event_id for r in results}) == 150
    assert sum(sizes) == 200 and len(sizes) < 200  # several rows per commit
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, fingerprint FROM alert_event")).all()
        stored: dict[int, str] = {row[0]: row[1] for row in rows}
    for i, result in enumerate(results):  # every answer names the row of its own delivery
        assert stored[result.event_id] == f"dd:group-{i % 150}"


class PollingAction:
    """Starts a job on the first call, then reports it running once and finished after."""

    name: ClassVar[str] = "test.job"
    params: ClassVar[type[StepParams]] = CallParams
    markup: ClassVar[str] = "plain"
    needs: ClassVar[str] = ""
    wants_runs: ClassVar[bool] = True

    def __init__(self) -> None:
        self.seen: list[ActionContext] = []

    @property
    def configured(self) -> bool:
        return True

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        return {"target": ctx.params.get("target")}

    def execute(self, ctx: ActionContext) -> ActionResult:
        self.seen.append(ctx)
        if ctx.previous is None:
            return ActionResult({"job": "j-1", "polls": 0}, {"job": {"id": "j-1"}}, poll_after=0)
        polls = int(ctx.previous["polls"]) + 1
        if polls < 2:
            return ActionResult({"job": ctx.previous["job"], "polls": polls}, poll_after=0)
        return ActionResult({"job": ctx.previous["job"], "status": "done", "polls": polls})

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        return None

    def acknowledged(self, params: Mapping[str, Any]) -> FollowUp | None:
        return None

    def pace(self, ctx: ActionContext) -> Pace | None:
        return None


def test_a_polled_run_keeps_its_answer_between_calls_and_sees_the_timeline(
    engine: sa.Engine, tmp_path: Path, samples_dir: Path
) -> None:
    (tmp_path / "job.yaml").write_text(
        "name: job\nactions:\n  - test.call: {target: first}\n  - test.job: {target: scale}\n"
    )
    script = Script()
    job = PollingAction()
    registry = Registry([scripted("test.call", script), job])
    playbooks = load_playbooks(tmp_path, registry.params_models())
    processor = EventProcessor(
        engine, build_stages(registry, timedelta(hours=1)), lambda: playbooks, Redactor([])
    )
    wakeup = Wakeup()
    runner = ActionRunner(engine, registry, Redactor([]), Metrics(), wakeup, threads=2)
    worker = Worker(engine, processor, runner, Metrics(), wakeup, poll_seconds=0.05)
    rig = Rig(engine, worker, runner, processor, script, samples_dir)
    try:
        rig.store("checkout-error-rate.triggered")
        assert worker.drain()
        for _ in range(20):  # polls are due "now"; a few more rounds reach the end
            if rig.runs()[-1].state == "succeeded":
                break
            assert worker.drain()
        last = rig.runs()[-1]
        assert (last.action, last.state) == ("test.job", "succeeded")
        assert last.result == {"job": "j-1", "status": "done", "polls": 2}
        assert [ctx.previous for ctx in job.seen] == [
            None,
            {"job": "j-1", "polls": 0},
            {"job": "j-1", "polls": 1},
        ]
        # The timeline it was given holds the other run of the incident, not itself.
        assert [r["action"] for r in job.seen[0].runs] == ["test.call"]
        kinds = rig.kinds()
        assert kinds.count("run.polling") == 2
        assert "run.retry" not in kinds
        with Session(engine) as session:
            incident = session.exec(select(Incident)).one()
        assert incident.refs is not None
        assert incident.refs["job"] == {"id": "j-1"}
    finally:
        runner.shutdown()


def test_calls_sharing_a_pace_go_one_per_interval_in_order(
    engine: sa.Engine, tmp_path: Path, samples_dir: Path
) -> None:
    (tmp_path / "paced.yaml").write_text(
        "name: paced\nactions:\n  - test.call: {target: '{{ alert.tags.service }}'}\n"
    )
    script = Script()
    registry = Registry([scripted("test.call", script, paced=Pace("chan", 0.3))])
    playbooks = load_playbooks(tmp_path, registry.params_models())
    processor = EventProcessor(
        engine, build_stages(registry, timedelta(hours=1)), lambda: playbooks, Redactor([])
    )
    metrics = Metrics()
    wakeup = Wakeup()
    runner = ActionRunner(engine, registry, Redactor([]), metrics, wakeup, threads=4)
    worker = Worker(engine, processor, runner, metrics, wakeup, poll_seconds=0.02)
    rig = Rig(engine, worker, runner, processor, script, samples_dir)
    try:
        for name in (
            "checkout-error-rate.triggered",
            "api-latency.triggered",
            "fraud-detection-down.triggered",
        ):
            rig.store(name)  # three incidents: three lanes, one shared pace
        assert worker.drain()
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while any(r.state != "succeeded" for r in rig.runs()) and datetime.now(UTC) < deadline:
            assert worker.drain()
        runs = rig.runs()
        assert [r.state for r in runs] == ["succeeded"] * 3
        started = [ctx for ctx in script.calls]
        assert [int(ctx.run_id) for ctx in started] == [r.id for r in runs]  # in order
        # Held back, not failed: the second and third were booked later slots.
        assert runs[1].not_before - runs[0].not_before >= timedelta(seconds=0.29)
        assert runs[2].not_before - runs[1].not_before >= timedelta(seconds=0.29)
        assert metrics.paced.labels("test.call")._value.get() >= 2
        assert "run.retry" not in rig.kinds()
    finally:
        runner.shutdown()


def test_in_a_storm_the_worker_takes_small_batches(rig: Rig) -> None:
    import time

    from responder.pipeline.worker import STORM_BATCH

    for n in range(STORM_BATCH + 5):
        rig.store("api-latency.triggered", id=f"storm-{n}")
    rig.worker.wake(50_000)  # the intake just stored a flood
    time.sleep(0.3)
    rig.worker.step()  # measures the arrival rate first: a storm
    with Session(rig.engine) as session:
        done = session.exec(select(AlertEvent).where(AlertEvent.state == "processed")).all()
    assert rig.worker.storm and rig.worker.arrival_rate >= 1000
    assert len(done) == STORM_BATCH
    assert rig.worker.drain()  # and it catches up


def test_under_load_the_worker_rests_in_proportion_to_arrivals(rig: Rig) -> None:
    from responder.pipeline.worker import BUSY_RATE, STORM_RATE, YIELD_FACTOR

    worker = rig.worker
    worker.storm, worker.arrival_rate = False, BUSY_RATE / 2
    assert worker._rest(0.01) == 0.0  # a quiet moment: no rest at all
    worker.storm, worker.arrival_rate = True, STORM_RATE / 2
    assert worker._rest(0.01) == 0.01 * YIELD_FACTOR / 2
    worker.arrival_rate = STORM_RATE * 5
    assert worker._rest(0.01) == 0.01 * YIELD_FACTOR  # never more than the storm's share


def test_a_claim_with_nothing_due_does_not_wait_for_the_write_lock(rig: Rig) -> None:
    import threading

    from responder.store.db import transaction

    if rig.engine.dialect.name != "sqlite":
        pytest.skip("the write lock is SQLite's; PostgreSQL claims in one transaction")
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with transaction(rig.engine, urgent=True):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert held.wait(5)
        # The intake's commits queue on this lock: an idle round must not join the queue.
        claimer = threading.Thread(target=rig.runner.claim, args=(5,))
        claimer.start()
        claimer.join(3)
        assert not claimer.is_alive()
    finally:
        release.set()
        holder.join()
