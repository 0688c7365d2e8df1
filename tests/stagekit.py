"""Hand-made pieces for the stage tests: alerts from inline payloads, records, a counter for
ids, a small registry of fake actions and playbooks loaded from YAML. No database here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from responder.actions import (
    Action,
    ActionContext,
    ActionResult,
    FollowUp,
    Pace,
    Registry,
    StepParams,
)
from responder.domain import Alert, RunState, Transition, group_key
from responder.intake.datadog import normalise
from responder.metrics import Metrics
from responder.pipeline.alerts import AlertSource
from responder.pipeline.claim import Claimer
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.incidents import IncidentIndex, cycle_key
from responder.pipeline.lifecycle import open_incident
from responder.pipeline.planned import new_run
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.loader import load_playbooks
from responder.playbooks.schema import Playbook
from responder.records import IncidentRecord, RunRecord
from responder.redact import Redactor
from responder.store.events import StoredEvent

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=1)
LEASE = timedelta(seconds=30)
MONITOR_ID = "148275622"
MONITOR_NAME = "Error rate spike in checkout-service"
CYCLE = "7716548234000004444"


class Counter:
    """An `IdSource` handing out 100, 101, ... for incidents and 500, 501, ... for runs."""

    def __init__(self, incident: int = 100, action_run: int = 500) -> None:
        self.next = {"incident": incident, "action_run": action_run}
        self.taken: list[tuple[str, int]] = []

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        self.taken.append((table, value))
        return value


def payload(
    transition: str = "Triggered",
    *,
    source_id: str = "7716548234044400001",
    monitor_id: str | None = MONITOR_ID,
    name: str = MONITOR_NAME,
    scope: str = "host:web-1",
    cycle: str | None = CYCLE,
    priority: str | None = "P2",
    tags: str = "env:prod,service:checkout,team:shop",
    date: datetime = NOW,
) -> dict[str, Any]:
    """A Datadog webhook body in the README's template (the `alert` section)."""
    title = f"[{transition} on {{{scope}}}] {name}" if scope else f"[{transition}] {name}"
    section: dict[str, Any] = {"title": title, "transition": transition, "scope": scope}
    for key, value in (("id", monitor_id), ("priority", priority), ("cycle_key", cycle)):
        if value is not None:
            section[key] = value
    return {
        "id": source_id,
        "event_type": "query_alert_monitor",
        "event_title": title,
        "date": str(int(date.timestamp() * 1000)),
        "tags": tags,
        "alert": section,
    }


def default_payload(
    transition: str = "Triggered",
    *,
    source_id: str = "7716548234011234567",
    name: str = "High Payment Failure Rate",
    date: datetime = NOW,
) -> dict[str, Any]:
    """Datadog's untouched default template: a title and a body, no monitor id or cycle key."""
    return {
        "id": source_id,
        "title": f"[{transition}] {name}",
        "body": "Payment failure rate is above 5% for the last 10 minutes.",
        "event_type": "query_alert_monitor",
        "date": str(int(date.timestamp() * 1000)),
    }


def alert(transition: str = "Triggered", *, received: datetime = NOW, **fields: Any) -> Alert:
    """A real normalised alert (README template); `fields` go to `payload`."""
    return normalise(payload(transition, **fields), received)


def event(event_id: int = 1, attempts: int = 0) -> StoredEvent:
    return StoredEvent(
        id=event_id,
        alert=None,
        payload="{}",
        received_at=NOW,
        deliveries=1,
        attempts=attempts,
    )


def item(source: Alert, event_id: int = 1) -> EventItem:
    return EventItem(event(event_id), source)


def incident(
    source: Alert | None = None, *, incident_id: int = 7, event_id: int = 1, **changes: Any
) -> IncidentRecord:
    """The incident `source` (a trigger by default) opened; `changes` replace fields."""
    source = source or alert()
    key = cycle_key(source) or f"{group_key(source)}|event:{event_id}"
    opened = open_incident(
        source,
        incident_id=incident_id,
        key=key,
        group=group_key(source),
        now=source.date,
    )
    return replace(opened, **changes)


def run(
    *,
    run_id: int = 40,
    incident_id: int = 7,
    action: str = "test.call",
    playbook: str = "main",
    step: int = 0,
    state: RunState = RunState.SUCCEEDED,
    due: datetime = NOW - timedelta(minutes=5),
    params: Mapping[str, Any] | None = None,
    **changes: Any,
) -> RunRecord:
    """A primary run planned five minutes before NOW (so due), in `state`."""
    planned = new_run(
        run_id=run_id,
        incident_id=incident_id,
        event_id=1,
        transition=Transition.TRIGGERED.value,
        action=action,
        due=due,
        now=NOW - timedelta(minutes=5),
        max_age=MAX_AGE,
        playbook=playbook,
        playbook_hash="0" * 64,
        step=step,
        idempotency_key=f"p:{incident_id}:{playbook}:{step}",
        params=params if params is not None else {"target": "web"},
    )
    return replace(planned, state=state.value, **changes)


def batch(
    *,
    incidents: Iterable[IncidentRecord] = (),
    earlier: Mapping[int, Sequence[RunRecord]] | None = None,
    playbooks: Sequence[Playbook] = (),
    ids: Counter | None = None,
    now: datetime = NOW,
) -> Batch:
    index = IncidentIndex()
    for known in incidents:
        index.remember(known)
    primary = {key: list(value) for key, value in (earlier or {}).items()}
    return Batch(now, ids or Counter(), index, primary, playbooks)


# --- fake actions ------------------------------------------------------------------------


class TargetParams(StepParams):
    target: str = ""
    channel: str = ""
    notice: str = ""


class FakeAction:
    """An action that records nothing and calls nobody; subclasses name it."""

    name: ClassVar[str] = "test.call"
    params: ClassVar[type[StepParams]] = TargetParams
    markup: ClassVar[str] = "plain"
    needs: ClassVar[str] = ""
    wants_runs: ClassVar[bool] = False
    # transition -> the action following this step up when the incident takes it
    follows: ClassVar[Mapping[Transition, str]] = {}
    acks: ClassVar[str | None] = None  # the action following this step up on acknowledgement

    def __init__(self, *, configured: bool = True, pace: Pace | None = None) -> None:
        self._configured = configured
        self._pace = pace

    @property
    def configured(self) -> bool:
        return self._configured

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        return {"action": self.name, "target": ctx.params.get("target")}

    def execute(self, ctx: ActionContext) -> ActionResult:
        return ActionResult({"ok": True})

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        follower = self.follows.get(transition)
        if follower is None:
            return None
        return FollowUp(follower, {"target": params.get("target", ""), "of": self.name})

    def acknowledged(self, params: Mapping[str, Any]) -> FollowUp | None:
        if self.acks is None:
            return None
        return FollowUp(self.acks, {"target": params.get("target", ""), "of": self.name})

    def pace(self, ctx: ActionContext) -> Pace | None:
        return self._pace


class CallAction(FakeAction):
    name: ClassVar[str] = "test.call"
    follows: ClassVar[Mapping[Transition, str]] = {Transition.RECOVERED: "test.undo"}


class UndoAction(FakeAction):
    name: ClassVar[str] = "test.undo"


class LaterAction(FakeAction):
    name: ClassVar[str] = "test.later"


class SlackPost(FakeAction):
    name: ClassVar[str] = "slack.post"
    markup: ClassVar[str] = "slack"
    follows: ClassVar[Mapping[Transition, str]] = {
        Transition.RECOVERED: "slack.reply",
        Transition.RENOTIFY: "slack.reply",
    }


class SlackReply(FakeAction):
    name: ClassVar[str] = "slack.reply"
    markup: ClassVar[str] = "slack"


class SlackUpdate(FakeAction):
    name: ClassVar[str] = "slack.update"
    markup: ClassVar[str] = "slack"


class PagerTrigger(FakeAction):
    name: ClassVar[str] = "pagerduty.trigger"
    follows: ClassVar[Mapping[Transition, str]] = {Transition.RECOVERED: "pagerduty.resolve"}
    acks: ClassVar[str | None] = "pagerduty.acknowledge"


class PagerAcknowledge(FakeAction):
    name: ClassVar[str] = "pagerduty.acknowledge"


class PagerResolve(FakeAction):
    name: ClassVar[str] = "pagerduty.resolve"


class Timeline(FakeAction):
    name: ClassVar[str] = "datadog.timeline"
    wants_runs: ClassVar[bool] = True


def registry(*replacing: Action) -> Registry:
    """Every fake action, configured and unpaced, except those given in `replacing`."""
    actions: dict[str, Action] = {
        cls.name: cls()
        for cls in (
            CallAction,
            UndoAction,
            LaterAction,
            SlackPost,
            SlackReply,
            SlackUpdate,
            PagerTrigger,
            PagerResolve,
            PagerAcknowledge,
            Timeline,
        )
    }
    actions.update({action.name: action for action in replacing})
    return Registry(list(actions.values()))


def load(folder: Path, actions: Registry, *documents: str) -> list[Playbook]:
    """Playbooks from YAML documents, one file each, in the order given."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, text in enumerate(documents):
        (folder / f"{index:02d}.yaml").write_text(text, encoding="utf-8")
    return load_playbooks(folder, actions.params_models())


def claimer_for(engine: sa.Engine, actions: Registry) -> Claimer:
    """A claimer of worker-1 over `actions`, with an alert cache of its own."""
    return Claimer(
        engine,
        actions,
        Redactor([]),
        Metrics(),
        AlertSource(AlertContexts()),
        owner="worker-1",
        lease=LEASE,
    )
