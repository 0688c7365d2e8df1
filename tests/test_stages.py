"""The chain of stages: each stage decides in turn; one that drops an event ends its way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from responder.domain import IncidentStatus
from responder.main import build_stages
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.lifecycle import LifecycleStage
from responder.pipeline.stages import Batch, EventItem, Stage, run_chain
from responder.store.audit import AuditRecord
from tests.stagekit import MAX_AGE, alert, batch, incident, item, load, registry


@dataclass
class Recording:
    """A stage that notes its call, adds a record and answers `verdict`."""

    name: str
    verdict: bool
    calls: list[tuple[str, EventItem, Batch]] = field(default_factory=list)

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        self.calls.append((self.name, item, batch))
        item.records.append(AuditRecord(f"test.{self.name}", {"stage": self.name}))
        return self.verdict


def chain(*verdicts: bool) -> tuple[list[Recording], list[Stage]]:
    calls: list[tuple[str, EventItem, Batch]] = []
    stages = [Recording(f"s{i}", verdict, calls) for i, verdict in enumerate(verdicts)]
    return stages, list(stages)


def called(stages: list[Recording]) -> list[str]:
    return [name for name, _, _ in stages[0].calls]


def test_every_stage_runs_in_order_when_all_pass() -> None:
    recording, stages = chain(True, True, True)
    current, shared = item(alert()), batch()
    assert run_chain(stages, current, shared) is True
    assert called(recording) == ["s0", "s1", "s2"]
    assert [r.kind for r in current.records] == ["test.s0", "test.s1", "test.s2"]
    # every stage works on the same event and the same batch
    assert all(seen is current and within is shared for _, seen, within in recording[0].calls)


def test_a_stage_that_drops_the_event_stops_the_chain_and_keeps_the_records() -> None:
    recording, stages = chain(True, False, True)
    current = item(alert())
    assert run_chain(stages, current, batch()) is False
    assert called(recording) == ["s0", "s1"]
    assert [r.kind for r in current.records] == ["test.s0", "test.s1"]


def test_a_first_stage_that_drops_the_event_is_the_only_one_called() -> None:
    recording, stages = chain(False, True)
    current = item(alert())
    assert run_chain(stages, current, batch()) is False
    assert called(recording) == ["s0"]
    assert [r.kind for r in current.records] == ["test.s0"]


def test_an_empty_chain_lets_the_event_through() -> None:
    current = item(alert())
    assert run_chain([], current, batch()) is True
    assert current.records == []


def test_a_late_delivery_never_reaches_lifecycle() -> None:
    resolved = incident(incident_id=7, status=IncidentStatus.RESOLVED.value)
    after = Recording("after", True)
    current = item(alert("Re-Triggered"), event_id=3)
    stages: list[Stage] = [CorrelateStage(), LifecycleStage(), after]
    assert run_chain(stages, current, batch(incidents=[resolved])) is False
    assert current.incident is None  # lifecycle did not run
    assert after.calls == []
    assert [r.kind for r in current.records] == ["event.late"]


def test_the_services_chain_opens_matches_and_plans_in_that_order(tmp_path: Path) -> None:
    actions = registry()
    playbooks = load(
        tmp_path / "playbooks",
        actions,
        "name: notify\nactions:\n  - slack.post: {channel: '#alerts'}\n",
    )
    current = item(alert(), event_id=3)
    stages = build_stages(actions, MAX_AGE)
    assert run_chain(stages, current, batch(playbooks=playbooks)) is True
    assert [r.kind for r in current.records] == [
        "incident.opened",
        "playbooks.matched",
        "run.planned",
    ]
    assert current.opened
    assert [(r.id, r.action, r.incident_id) for r in current.runs] == [(500, "slack.post", 100)]
