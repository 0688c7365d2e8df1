"""Plan stage: turn new playbooks and the incident's earlier runs into new action runs.

A playbook's steps run once per incident (their idempotency key is incident + playbook +
step), so a re-notification can never page twice. Later transitions reach earlier steps
through each action's `follow_up` (a thread reply, a resolve), and a recovery cancels
delayed steps that have not run yet: nothing of this needs writing in the playbook.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from responder.actions import Registry
from responder.domain import RunState, Transition
from responder.pipeline import lifecycle
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.render import RenderError, render_params
from responder.records import RunRecord
from responder.store.audit import AuditRecord


def lane(incident_id: int, action: str) -> str:
    # One lane per incident and vendor: a slow Slack never holds back a page, while a
    # vendor's own calls (post before reply, trigger before resolve) stay in order.
    return f"{incident_id}:{action.split('.', 1)[0]}"


def new_run(
    *,
    run_id: int,
    incident_id: int,
    event_id: int,
    transition: str,
    action: str,
    due: datetime,
    now: datetime,
    max_age: timedelta,
    playbook: str,
    playbook_hash: str,
    step: int,
    idempotency_key: str,
    params: Mapping[str, Any],
    parent_id: int | None = None,
    condition: str | None = None,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        incident_id=incident_id,
        event_id=event_id,
        parent_id=parent_id,
        playbook=playbook,
        playbook_hash=playbook_hash,
        step=step,
        action=action,
        params=dict(params),
        condition=condition,
        transition=transition,
        lane=lane(incident_id, action),
        state=RunState.PENDING.value,
        idempotency_key=idempotency_key[:128],
        attempts=0,
        uncertain=False,
        scheduled_at=due,
        not_before=due,
        expires_at=due + max_age,
        lease_until=None,
        lease_owner=None,
        last_error=None,
        result=None,
        created_at=now,
        finished_at=None,
    )


def run_records(runs: list[RunRecord], kind: str) -> list[AuditRecord]:
    return [
        AuditRecord(
            kind if run.state != RunState.FAILED else "run.failed",
            {
                "action": run.action,
                "playbook": run.playbook,
                "step": run.step,
                "params": run.params,
                "not_before": run.not_before,
                "parent_id": run.parent_id,
                "error": run.last_error,
            },
            run.event_id,
            run.incident_id,
            run.id,
        )
        for run in runs
    ]


class PlanStage:
    def __init__(self, registry: Registry, max_age: timedelta) -> None:
        self._registry = registry
        self._max_age = max_age

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        incident = item.incident
        assert incident is not None, "lifecycle runs first"
        context = {"alert": item.alert.as_context(), "incident": lifecycle.context(incident)}
        for playbook in item.fresh:
            for step in playbook.actions:
                run = self._run(
                    item,
                    batch,
                    step.action,
                    due=batch.now + (step.after or timedelta(0)),
                    playbook=(playbook.name, playbook.content_hash, step.index),
                    key=f"p:{incident.id}:{playbook.name}:{step.index}",
                    condition=step.condition,
                )
                markup = self._registry.get(step.action).markup
                try:
                    run = replace(run, params=render_params(step.params, context, markup))
                except RenderError as exc:
                    run = replace(
                        run,
                        params=dict(step.params),
                        state=RunState.FAILED.value,
                        last_error=f"template error: {exc}",
                        finished_at=batch.now,
                    )
                    item.errors.append(f"{playbook.name} step {step.index + 1}: {exc}")
                item.runs.append(run)
        if not item.opened:
            self._follow_ups(item, batch, batch.earlier.get(incident.id, []))
        item.records.extend(run_records(item.runs, "run.planned"))
        item.records.extend(run_records(item.cancelled, "run.cancelled"))
        return True

    def _follow_ups(self, item: EventItem, batch: Batch, earlier: list[RunRecord]) -> None:
        transition = item.alert.transition
        for run in earlier:
            if run.state in (RunState.FAILED, RunState.CANCELLED):
                continue
            if (
                transition is Transition.RECOVERED
                and run.state == RunState.PENDING
                and run.scheduled_at > batch.now
            ):
                item.cancelled.append(run)
                continue
            follow = self._registry.get(run.action).follow_up(transition, run.params)
            if follow is None:
                continue
            follow_up = self._run(
                item,
                batch,
                follow.action,
                due=batch.now,
                playbook=(run.playbook, run.playbook_hash, run.step),
                key=f"f:{run.id}:{item.event.id}",
                parent_id=run.id,
            )
            item.runs.append(replace(follow_up, params=dict(follow.params)))

    def _run(
        self,
        item: EventItem,
        batch: Batch,
        action: str,
        *,
        due: datetime,
        playbook: tuple[str, str, int],  # name, content hash, step index
        key: str,
        parent_id: int | None = None,
        condition: str | None = None,
    ) -> RunRecord:
        assert item.incident is not None
        name, content_hash, step = playbook
        return new_run(
            run_id=batch.ids.take("action_run"),
            incident_id=item.incident.id,
            event_id=item.event.id,
            transition=item.alert.transition.value,
            action=action,
            due=due,
            now=batch.now,
            max_age=self._max_age,
            playbook=name,
            playbook_hash=content_hash,
            step=step,
            idempotency_key=key,
            params={},
            parent_id=parent_id,
            condition=condition,
        )
