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

RunRow = dict[str, Any]  # the columns of one action_run row


@dataclass(slots=True)
class Plan:
    runs: list[RunRow] = field(default_factory=list)
    cancelled: list[RunRow] = field(default_factory=list)  # earlier runs, now cancelled
    render_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PlanInput:
    event_id: int
    alert: Alert
    incident_id: int
    playbooks: Sequence[Playbook]  # matched, in order, not yet run for this incident
    earlier: Sequence[RunRow]  # the incident's primary runs from earlier events
    now: datetime
    max_age: timedelta


def lane(incident_id: int, action: str) -> str:
    # One lane per incident and vendor: a slow Slack never holds back a page, while a
    # vendor's own calls (post before reply, trigger before resolve) stay in order.
    return f"{incident_id}:{action.split('.', 1)[0]}"


def plan(registry: Registry, item: PlanInput, context: Mapping[str, Any]) -> Plan:
    out = Plan()
    for playbook in item.playbooks:
        for step in playbook.actions:
            action = registry.get(step.action)
            run = _run(item, step.action, item.now + (step.after or timedelta(0)))
            run.update(
                playbook=playbook.name,
                playbook_hash=playbook.content_hash,
                step=step.index,
                condition=step.condition,
                idempotency_key=f"p:{item.incident_id}:{playbook.name}:{step.index}"[:128],
            )
            try:
                run["params"] = render_params(step.params, context, action.markup)
            except RenderError as exc:
                run.update(
                    params=dict(step.params),
                    state=RunState.FAILED.value,
                    last_error=f"template error: {exc}",
                    finished_at=item.now,
                )
                out.render_errors.append(f"{playbook.name} step {step.index + 1}: {exc}")
            out.runs.append(run)
    _follow_ups(registry, item, out)
    return out


def _follow_ups(registry: Registry, item: PlanInput, out: Plan) -> None:
    transition = item.alert.transition
    for earlier in item.earlier:
        if earlier["state"] in (RunState.FAILED, RunState.CANCELLED):
            continue
        if (
            transition is Transition.RECOVERED
            and earlier["state"] == RunState.PENDING
            and earlier["scheduled_at"] > item.now
        ):
            out.cancelled.append(earlier)
            continue
        follow = registry.get(earlier["action"]).follow_up(transition, earlier["params"] or {})
        if follow is None:
            continue
        run = _run(item, follow.action, item.now)
        run.update(
            playbook=earlier["playbook"],
            playbook_hash=earlier["playbook_hash"],
            step=earlier["step"],
            parent_id=earlier["id"],
            params=dict(follow.params),
            idempotency_key=f"f:{earlier['id']}:{item.event_id}",
        )
        out.runs.append(run)


def follow_on(
    parent: RunRow,
    action: str,
    params: Mapping[str, Any],
    *,
    event_id: int,
    idempotency_key: str,
    now: datetime,
    max_age: timedelta,
) -> RunRow:
    """A run that continues `parent` because of what another run did (not a new event)."""
    run = _row(parent["incident_id"], event_id, parent["transition"], action, now, max_age, now)
    run.update(
        playbook=parent["playbook"],
        playbook_hash=parent["playbook_hash"],
        step=parent["step"],
        parent_id=parent["id"],
        params=dict(params),
        idempotency_key=idempotency_key[:128],
    )
    return run


def _run(item: PlanInput, action: str, due: datetime) -> RunRow:
    transition = item.alert.transition.value
    return _row(item.incident_id, item.event_id, transition, action, due, item.max_age, item.now)


def _row(
    incident_id: int,
    event_id: int,
    transition: str,
    action: str,
    due: datetime,
    max_age: timedelta,
    now: datetime,
) -> RunRow:
    return {
        "incident_id": incident_id,
        "event_id": event_id,
        "parent_id": None,
        "playbook": "",
        "playbook_hash": "",
        "step": 0,
        "action": action,
        "params": {},
        "condition": None,
        "transition": transition,
        "lane": lane(incident_id, action),
        "state": RunState.PENDING.value,
        "idempotency_key": "",
        "attempts": 0,
        "uncertain": False,
        "scheduled_at": due,
        "not_before": due,
        "expires_at": due + max_age,
        "lease_until": None,
        "lease_owner": None,
        "last_error": None,
        "result": None,
        "created_at": now,
        "finished_at": None,
    }
