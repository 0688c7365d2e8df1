"""Plan stage: turn new playbooks and the incident's earlier runs into new action runs.

A playbook's steps run once per incident (their idempotency key is incident + playbook +
step), so a re-notification can never page twice. Later transitions reach earlier steps
through each action's `follow_up` (a thread reply, a resolve), and a recovery cancels
delayed steps that have not run yet: nothing of this needs writing in the playbook.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from responder.actions import Registry
from responder.domain import RunState, Transition
from responder.pipeline import lifecycle
from responder.pipeline.planned import new_run, run_records, step_key
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.render import RenderError, render_params
from responder.records import RunRecord


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
                    key=step_key(incident.id, playbook.name, step.index),
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
