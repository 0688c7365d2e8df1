"""Plan stage: turn matched playbooks and earlier runs into new action runs.

A playbook's steps run once per incident (their idempotency key is incident + playbook +
step), so a re-notification can never page twice. Later transitions reach earlier steps
through each action's `follow_up` (a thread reply, a resolve), and a recovery cancels
delayed steps that have not run yet: nothing of this needs writing in the playbook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from responder.actions import Registry
from responder.domain import Alert, RunState, Transition
from responder.playbooks.render import RenderError, render_params
from responder.playbooks.schema import Playbook
from responder.store.tables import ActionRun, Incident


@dataclass(slots=True)
class Plan:
    runs: list[ActionRun] = field(default_factory=list)
    cancelled: list[ActionRun] = field(default_factory=list)
    render_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PlanInput:
    event_id: int
    alert: Alert
    incident: Incident
    playbooks: Sequence[Playbook]  # matched, in order, not yet run for this incident
    earlier: Sequence[ActionRun]  # the incident's primary runs from earlier events
    now: datetime
    max_age: timedelta


def lane(incident_id: int, action: str) -> str:
    # One lane per incident and vendor: a slow Slack never holds back a page, while a
    # vendor's own calls (post before reply, trigger before resolve) stay in order.
    return f"{incident_id}:{action.split('.', 1)[0]}"


def plan(registry: Registry, item: PlanInput, context: Mapping[str, Any]) -> Plan:
    out = Plan()
    assert item.incident.id is not None
    incident_id = item.incident.id
    for playbook in item.playbooks:
        for step in playbook.actions:
            action = registry.get(step.action)
            due = item.now + (step.after or timedelta(0))
            run = _run(item, playbook, step.index, step.action, due)
            run.idempotency_key = f"p:{incident_id}:{playbook.name}:{step.index}"[:128]
            run.condition = step.condition
            try:
                run.params = render_params(step.params, context, action.markup)
            except RenderError as exc:
                run.params = dict(step.params)
                run.state = RunState.FAILED
                run.last_error = f"template error: {exc}"
                run.finished_at = item.now
                out.render_errors.append(f"{playbook.name} step {step.index + 1}: {exc}")
            out.runs.append(run)
    _follow_ups(registry, item, out)
    return out


def _follow_ups(registry: Registry, item: PlanInput, out: Plan) -> None:
    transition = item.alert.transition
    for earlier in item.earlier:
        if earlier.state in (RunState.FAILED, RunState.CANCELLED):
            continue
        if (
            transition is Transition.RECOVERED
            and earlier.state == RunState.PENDING
            and (earlier.scheduled_at > item.now)
        ):
            earlier.state = RunState.CANCELLED
            earlier.finished_at = item.now
            earlier.last_error = "cancelled: the incident recovered before this delayed step ran"
            out.cancelled.append(earlier)
            continue
        follow = registry.get(earlier.action).follow_up(transition, earlier.params or {})
        if follow is None:
            continue
        run = _run(item, None, earlier.step, follow.action, item.now)
        run.playbook, run.playbook_hash = earlier.playbook, earlier.playbook_hash
        run.parent_id = earlier.id
        run.params = dict(follow.params)
        run.idempotency_key = f"f:{earlier.id}:{item.event_id}"
        out.runs.append(run)


def _run(
    item: PlanInput, playbook: Playbook | None, step: int, action: str, due: datetime
) -> ActionRun:
    assert item.incident.id is not None
    return ActionRun(
        incident_id=item.incident.id,
        event_id=item.event_id,
        playbook=playbook.name if playbook else "",
        playbook_hash=playbook.content_hash if playbook else "",
        step=step,
        action=action,
        transition=item.alert.transition.value,
        lane=lane(item.incident.id, action),
        state=RunState.PENDING,
        idempotency_key="",
        scheduled_at=due,
        not_before=due,
        expires_at=due + item.max_age,
        created_at=item.now,
    )
