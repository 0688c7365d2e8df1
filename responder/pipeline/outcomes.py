"""What one attempt of a run amounts to: the context an action sees, and the outcome to record.

Pure functions over records, shared by the runner's claim, its take-over of fresh runs and
its recording of finished calls: no database and no outside calls here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from responder.actions import Action, ActionContext, ActionError, ActionResult, IncidentView
from responder.domain import Alert, IncidentStatus, RunState, Transition
from responder.pipeline.backoff import retry_delay
from responder.records import IncidentRecord, RunRecord

# Where a run that asked to be polled keeps its last answer between attempts (run.result).
POLLING = "polling"
# The `if:` of an escalation step: it runs only if nobody acknowledged the incident by then.
UNACKNOWLEDGED = "incident.unacknowledged"


@dataclass(frozen=True, slots=True)
class Outcome:
    state: RunState
    result: dict[str, Any] | None = None
    error: str | None = None
    not_before: datetime | None = None  # set for a retry or a poll
    refs: dict[str, Any] | None = None
    kind: str = "run.succeeded"
    names: dict[str, str] | None = None  # how the vendor names the incident (`ActionResult`)


Finished = tuple[RunRecord, Outcome]  # a run and what its attempt amounted to


def context(
    run: RunRecord,
    incident: IncidentRecord,
    alert: Alert,
    parent: RunRecord | None,
    runs: Sequence[Mapping[str, Any]] = (),
) -> ActionContext:
    return ActionContext(
        run_id=str(run.id),
        action=run.action,
        params=dict(run.params),
        incident=IncidentView(
            id=str(incident.id),
            key=incident.key,
            status=incident.status,
            title=incident.title,
            monitor_id=incident.monitor_id,
            scope=incident.scope,
            priority=incident.priority,
            opened_at=incident.opened_at,
            resolved_at=incident.resolved_at,
            refs=dict(incident.refs),
            repeats=incident.repeats,
            last_repeat_at=incident.last_repeat_at,
            resolution=incident.resolution,
            seen_at=incident.seen_at,
            members=incident.members,
            firing=incident.firing,
            acknowledged_at=incident.acknowledged_at,
            acknowledged_by=incident.acknowledged_by,
            resolved_by=incident.resolved_by,
        ),
        alert=alert,
        transition=Transition(run.transition),
        idempotency_key=run.idempotency_key,
        attempt=run.attempts,
        uncertain=run.uncertain,
        parent=dict(parent.result or {}) if parent is not None else None,
        previous=polled(run),
        runs=runs,
    )


def polled(run: RunRecord) -> dict[str, Any] | None:
    """The answer this run's last poll left behind, if it is being polled."""
    result = run.result
    if isinstance(result, Mapping) and isinstance(result.get(POLLING), Mapping):
        return dict(result[POLLING])
    return None


def run_summary(run: RunRecord) -> dict[str, Any]:
    """One line of an incident's timeline, as `ActionContext.runs` shows it."""
    return {
        "action": run.action,
        "playbook": run.playbook,
        "state": run.state,
        "transition": run.transition,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.last_error,
    }


def settle_early(
    run: RunRecord, incident: IncidentRecord, action: Action, ctx: ActionContext, now: datetime
) -> Outcome | None:
    """Outcomes that need no outside call: a resolved incident, an expired run, no credentials."""
    if run.condition is not None and incident.status == IncidentStatus.RESOLVED:
        reason = "incident resolved before this delayed step was due"
        return Outcome(RunState.SKIPPED, {"reason": reason}, kind="run.skipped")
    if run.condition == UNACKNOWLEDGED and incident.acknowledged_at is not None:
        who = incident.acknowledged_by or "someone"
        reason = f"acknowledged by {who} before this escalation was due"
        return Outcome(RunState.SKIPPED, {"reason": reason}, kind="run.skipped")
    if now > run.expires_at:
        error = f"gave up after {run.attempts - 1} attempts: older than its maximum age"
        return Outcome(RunState.FAILED, error=error, kind="run.failed")
    if not action.configured:
        result = {"reason": unconfigured_reason(action), "request": dict(action.describe(ctx))}
        return Outcome(RunState.SKIPPED, result, kind="run.skipped")
    return None


def unconfigured_reason(action: Action) -> str:
    needs = action.needs
    return f"integration not configured: set {needs}" if needs else "integration not configured"


def from_result(result: ActionResult, now: datetime) -> Outcome:
    if result.skipped_reason:
        data = {"reason": result.skipped_reason, "response": dict(result.response)}
        return Outcome(RunState.SKIPPED, data, kind="run.skipped")
    if result.poll_after is not None:
        # Not final yet (a workflow still running): same run, called again later with
        # this answer as `previous`. Refs are kept now so links exist while it runs.
        when = now + timedelta(seconds=max(result.poll_after, 0.0))
        return Outcome(
            RunState.PENDING,
            {POLLING: dict(result.response)},
            not_before=when,
            refs=dict(result.refs),
            kind="run.polling",
            names=dict(result.names),
        )
    return Outcome(
        RunState.SUCCEEDED,
        dict(result.response),
        refs=dict(result.refs),
        names=dict(result.names),
    )


def from_error(
    run: RunRecord, err: ActionError, error: str, now: datetime, retry_scale: float = 1.0
) -> Outcome:
    """A failed attempt: `error` is the message, already redacted. The wait before the next
    attempt is multiplied by `retry_scale` (RESPONDER_RETRY_SCALE)."""
    response: dict[str, Any] = {"error": error, "response": err.response}
    previous = polled(run)
    if previous is not None:
        response[POLLING] = previous  # a failed poll must not forget what it was polling
    if not err.retryable:
        return Outcome(RunState.FAILED, response, error, kind="run.failed")
    delay = retry_delay(run.attempts, err.retry_after) * retry_scale
    when = now + timedelta(seconds=delay)
    if when > run.expires_at:
        error = f"{error} (no retry: next attempt would pass the run's maximum age)"
        return Outcome(RunState.FAILED, response, error, kind="run.failed")
    response["retry_in_seconds"] = int(delay * 1000) / 1000
    return Outcome(RunState.PENDING, response, error, not_before=when, kind="run.retry")
