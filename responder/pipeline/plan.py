"""Plan stage: turn new playbooks and the incident's earlier runs into new action runs.

A playbook's steps run once per incident (their idempotency key is incident + playbook +
step), so a re-notification can never page twice. Later transitions reach earlier steps
through each action's `follow_up` (a thread reply, a resolve), and a recovery cancels
delayed steps that have not run yet: nothing of this needs writing in the playbook.

Follow-ups are paced for people, not for the stream: a repeat is told at most once per
reminder interval (by Datadog's dates) and never once someone acknowledged; a recovery
withdraws reminders still queued so that it goes out first; while the monitor flaps none
are sent. Every follow-up not planned is audited as suppressed, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from responder.actions import ACKNOWLEDGE, Conversation, Registry, format_duration
from responder.domain import IncidentStatus, RunState, answer_via
from responder.pipeline import lifecycle
from responder.pipeline.outcomes import UNACKNOWLEDGED
from responder.pipeline.planned import new_run, run_records, step_key
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.render import RenderError, render_params
from responder.records import IncidentRecord, RunRecord
from responder.store.audit import AuditRecord

WITHDRAWN_REASON = "cancelled: the incident resolved; the recovery goes out first"
CALLED_OFF_REASON = "cancelled: someone acknowledged the incident before this escalation"


class PlanStage:
    def __init__(
        self, registry: Registry, max_age: timedelta, conversation: Conversation | None = None
    ) -> None:
        self._registry = registry
        self._max_age = max_age
        self._conversation = conversation

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        incident = item.incident
        assert incident is not None, "lifecycle runs first"
        self._steps(item, batch, incident)
        earlier = [] if item.opened else batch.earlier.get(incident.id, [])
        if earlier:
            self._follow_ups(item, batch, earlier)
        self._notes(item, batch, [*earlier, *item.runs])
        self._stale_timer(item, batch, earlier)
        item.records.extend(run_records(item.runs, "run.planned"))
        item.records.extend(run_records(item.cancelled, "run.cancelled"))
        for reason, runs in (
            (WITHDRAWN_REASON, item.withdrawn),
            (CALLED_OFF_REASON, item.called_off),
        ):
            for run in runs:
                data = {"action": run.action, "playbook": run.playbook, "step": run.step}
                data.update(reason=reason, parent_id=run.parent_id)
                if run in item.called_off:
                    data["acknowledged_by"] = item.alert.actor
                item.records.append(
                    AuditRecord("run.cancelled", data, item.event.id, run.incident_id, run.id)
                )
        return True

    def _steps(self, item: EventItem, batch: Batch, incident: IncidentRecord) -> None:
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

    def _follow_ups(self, item: EventItem, batch: Batch, earlier: list[RunRecord]) -> None:
        alert, incident = item.alert, item.incident
        assert incident is not None
        transition = alert.transition
        resolved = not incident.is_open
        if alert.cause == ACKNOWLEDGE:
            self._acknowledged(item, batch, earlier)
            return
        if alert.cause is not None and not resolved:
            return  # a timer's event that resolves nothing: its note says what there is
        if resolved:
            item.withdrawn.extend(batch.queued.get(incident.id, []))
        suppressed = item.hold or item.quiet
        reminder = transition.is_repeat and suppressed is None
        if reminder:
            suppressed = self._reminder_suppressed(incident, item, batch)
        planned = False
        for run in earlier:
            if run.state in (RunState.FAILED, RunState.CANCELLED):
                continue
            if resolved and run.state == RunState.PENDING and run.scheduled_at > batch.now:
                item.cancelled.append(run)
                continue
            follow = self._registry.get(run.action).follow_up(transition, run.params)
            if follow is None:
                continue
            reason = self._echo(item, follow.action) or suppressed
            if reason is not None:
                self._suppressed(item, run, follow.action, reason)
                continue
            key = f"f:{run.id}:{item.event.id}"
            item.runs.append(self._continuing(item, batch, run, follow.action, key, follow.params))
            planned = True
            if reminder and self._conversation and run.action == self._conversation.root:
                item.runs.append(self._refresh(item, batch, run))
        if reminder and planned:
            item.incident = replace(incident, reminded_at=alert.date)

    def _acknowledged(self, item: EventItem, batch: Batch, earlier: list[RunRecord]) -> None:
        """Someone acknowledged: escalations still to come are called off, every vendor that
        keeps the incident hears it (PagerDuty acknowledged, a Datadog timeline entry), and
        the thread is told and its root rewritten to show who."""
        for run in earlier:
            if (
                run.condition == UNACKNOWLEDGED
                and run.state == RunState.PENDING
                and run.scheduled_at > batch.now
            ):
                item.called_off.append(run)
                continue
            if not run.is_primary or run.state in (RunState.FAILED, RunState.CANCELLED):
                continue
            if run.state == RunState.PENDING and run.scheduled_at > batch.now:
                continue  # a delayed step not started: nothing of it to acknowledge yet
            follow = self._registry.get(run.action).acknowledged(run.params)
            if follow is None:
                continue
            reason = self._echo(item, follow.action)
            if reason is not None:
                self._suppressed(item, run, follow.action, reason)
                continue
            key = f"a:{run.id}:{item.event.id}"
            item.runs.append(self._continuing(item, batch, run, follow.action, key, follow.params))
        item.notes.append(f"✋ Acknowledged by {item.alert.actor or 'someone'}")
        item.refresh_root = True

    def _echo(self, item: EventItem, action: str) -> str | None:
        """Why a person's answer is not sent back to the tool it came from (PagerDuty already
        holds an acknowledgement made in PagerDuty); the conversation is always told."""
        via = answer_via(item.alert)
        vendor = action.split(".", 1)[0]
        talk = self._conversation
        if via is None or vendor != via or (talk is not None and vendor == talk.vendor):
            return None
        return f"answered in {via} itself: nothing to send back"

    def _suppressed(self, item: EventItem, run: RunRecord, action: str, reason: str) -> None:
        data = {"action": action, "playbook": run.playbook, "step": run.step, "reason": reason}
        item.records.append(
            AuditRecord("run.suppressed", data, item.event.id, run.incident_id, run.id)
        )

    def _reminder_suppressed(
        self, incident: IncidentRecord, item: EventItem, batch: Batch
    ) -> str | None:
        if incident.status == IncidentStatus.ACKNOWLEDGED.value:
            return "acknowledged: reminders stop"
        interval = batch.policy.reminder_interval
        last = incident.reminded_at
        if last is not None and item.alert.date - last < interval:
            ago = format_duration((item.alert.date - last).total_seconds())
            return (
                f"reminder interval: the last went out {ago} before this one"
                f" (at most one per {format_duration(interval.total_seconds())})"
            )
        return None

    def _refresh(self, item: EventItem, batch: Batch, root: RunRecord) -> RunRecord:
        """The root message rewritten, so it shows the repeats so far."""
        assert self._conversation is not None
        key = f"f:refresh:{root.id}:{item.event.id}"
        run = self._continuing(item, batch, root, self._conversation.refresh, key, root.params)
        # The root's own event: the root is rebuilt from the alert that opened it, not
        # from the reminder's (whose title reads "[Renotify] ...").
        return replace(run, event_id=root.event_id)

    def _notes(self, item: EventItem, batch: Batch, runs: list[RunRecord]) -> None:
        talk = self._conversation
        wanted = item.notes or item.refresh_root
        if not wanted or talk is None or talk.reply not in self._registry.names():
            return
        root = next(
            (
                run
                for run in runs
                if run.action == talk.root
                and run.is_primary
                and run.state not in (RunState.FAILED, RunState.CANCELLED)
            ),
            None,
        )
        if root is None:
            return  # no thread: the audit log holds what the note would have said
        for index, note in enumerate(item.notes):
            key = f"n:note:{root.id}:{item.event.id}:{index}"
            params = {"channel": root.params.get("channel", ""), "notice": note}
            item.runs.append(self._continuing(item, batch, root, talk.reply, key, params))
        if item.refresh_root and talk.refresh in self._registry.names():
            item.runs.append(self._refresh(item, batch, root))

    def _stale_timer(self, item: EventItem, batch: Batch, earlier: list[RunRecord]) -> None:
        """The stale timer from the incident's own playbooks, once they are known."""
        incident = item.incident
        assert incident is not None
        if not incident.is_open or item.alert.cause is not None:
            return  # only a delivery moves it: a timer's own event is no sign of life
        names = {run.playbook for run in earlier} | {p.name for p in item.matched}
        chosen = [p for p in batch.playbooks if p.name in names]
        after = batch.policy.stale_after_for(chosen)
        stale_at = batch.now + after if after is not None else None
        if stale_at != incident.stale_at:
            item.incident = replace(incident, stale_at=stale_at)

    def _continuing(
        self,
        item: EventItem,
        batch: Batch,
        parent: RunRecord,
        action: str,
        key: str,
        params: Mapping[str, Any],
    ) -> RunRecord:
        """A run due now that continues `parent` (a follow-up, a note, a refresh)."""
        run = self._run(
            item,
            batch,
            action,
            due=batch.now,
            playbook=(parent.playbook, parent.playbook_hash, parent.step),
            key=key,
            parent_id=parent.id,
        )
        return replace(run, params=dict(params))

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
