"""Takes stored events through the stages: correlate, lifecycle, match, plan, record.

Events are processed in arrival order by one sequencer at a time (on PostgreSQL a
transaction-level advisory lock elects it), so a recovery is never handled before the
trigger it ends. There is no outside call here: a batch is a few milliseconds of SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from responder.actions import Registry
from responder.domain import Alert, EventState, RunState
from responder.intake.datadog import normalise
from responder.pipeline import correlate, lifecycle
from responder.pipeline.plan import PlanInput, plan
from responder.playbooks.matcher import select as select_playbooks
from responder.playbooks.schema import Playbook
from responder.redact import Redactor
from responder.store import audit
from responder.store.audit import AuditRecord
from responder.store.tables import ActionRun, AlertEvent, Incident

log = structlog.get_logger(__name__)

_SEQUENCER_LOCK = 0x7265737053455131  # arbitrary, fixed: "respSEQ1"
MAX_EVENT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class BatchResult:
    processed: int
    failed: int
    runs_planned: int


class EventProcessor:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        playbooks: Callable[[], Sequence[Playbook]],
        redactor: Redactor,
        max_age: timedelta,
        batch_size: int = 200,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._playbooks = playbooks
        self._redactor = redactor
        self._max_age = max_age
        self._batch_size = batch_size

    def process_batch(self) -> BatchResult:
        """Process the oldest waiting events; returns how many were handled."""
        with Session(self._engine) as session, session.begin():
            if not self._elected(session):
                return BatchResult(0, 0, 0)
            events = session.exec(
                select(AlertEvent)
                .where(AlertEvent.state == EventState.RECEIVED)
                .order_by(col(AlertEvent.id))
                .limit(self._batch_size)
            ).all()
            processed = failed = planned = 0
            playbooks = self._playbooks()
            for event in events:
                try:
                    with session.begin_nested():
                        planned += self._process(session, event, playbooks)
                    processed += 1
                except Exception as exc:  # one poisoned event must not block the queue
                    failed += 1
                    self._failed(session, event, exc)
            return BatchResult(processed, failed, planned)

    def _elected(self, session: Session) -> bool:
        if session.get_bind().dialect.name != "postgresql":
            return True  # SQLite: BEGIN IMMEDIATE already makes this the only writer
        got = session.exec(  # type: ignore[call-overload]
            sa.select(sa.func.pg_try_advisory_xact_lock(_SEQUENCER_LOCK))
        ).scalar_one()
        return bool(got)

    def _process(self, session: Session, event: AlertEvent, playbooks: Sequence[Playbook]) -> int:
        assert event.id is not None
        now = datetime.now(UTC)
        alert = normalise(orjson.loads(event.payload), event.received_at)
        records = [_received_record(event, alert)]
        found = correlate.correlate(session, alert, event.id)
        if found.late or (found.incident is None and alert.transition.is_recovery):
            reason = (
                "late delivery for a cycle that already recovered"
                if found.late
                else "recovery for an incident we never saw open"
            )
            incident_id = found.incident.id if found.incident else None
            outcome: dict[str, Any] = {"ignored": reason, "playbooks": [], "actions": []}
            records.append(AuditRecord("event.ignored", {"reason": reason}, event.id, incident_id))
            self._finish(session, event, incident_id, outcome, records)
            return 0
        incident, earlier, already = self._incident(session, alert, found, now, records, event.id)
        assert incident.id is not None
        incident_ctx = _incident_context(incident)
        matched = select_playbooks(playbooks, alert, incident_ctx)
        fresh = [p for p in matched if p.name not in already]
        result = plan(
            self._registry,
            PlanInput(event.id, alert, incident, fresh, earlier, now, self._max_age),
            {"alert": alert.as_context(), "incident": incident_ctx},
        )
        for run in result.runs:
            session.add(run)
        session.flush()
        records.append(_matched_record(event.id, incident.id, matched, fresh))
        records.extend(_run_records(result.runs, "run.planned"))
        records.extend(_run_records(result.cancelled, "run.cancelled"))
        outcome = {
            "playbooks": [p.name for p in matched],
            "actions": [{"id": r.id, "action": r.action, "state": r.state} for r in result.runs],
        }
        if result.render_errors:
            outcome["errors"] = result.render_errors
        self._finish(session, event, incident.id, outcome, records)
        return len(result.runs)

    def _incident(
        self,
        session: Session,
        alert: Alert,
        found: correlate.Correlation,
        now: datetime,
        records: list[AuditRecord],
        event_id: int,
    ) -> tuple[Incident, list[ActionRun], set[str]]:
        if found.incident is None:
            incident = lifecycle.open_incident(alert, found.key, found.group_key, now)
            session.add(incident)
            session.flush()
            records.append(
                AuditRecord(
                    "incident.opened",
                    {"key": incident.key, "status": incident.status, "title": incident.title},
                    event_id,
                    incident.id,
                )
            )
            return incident, [], set()
        incident = found.incident
        change = lifecycle.apply(incident, alert, now)
        session.add(incident)
        records.append(
            AuditRecord(
                change.kind,
                {"from": change.before, "to": change.after, "transition": alert.transition},
                event_id,
                incident.id,
            )
        )
        earlier = list(
            session.exec(
                select(ActionRun)
                .where(ActionRun.incident_id == incident.id, col(ActionRun.parent_id).is_(None))
                .order_by(col(ActionRun.id))
            ).all()
        )
        return incident, earlier, {run.playbook for run in earlier}

    def _finish(
        self,
        session: Session,
        event: AlertEvent,
        incident_id: int | None,
        outcome: dict[str, Any],
        records: list[AuditRecord],
    ) -> None:
        event.state = EventState.PROCESSED
        event.incident_id = incident_id
        event.outcome = outcome
        event.processed_at = datetime.now(UTC)
        event.attempts += 1
        session.add(event)
        session.flush()
        audit.append(session.connection(), records, self._redactor)

    def _failed(self, session: Session, event: AlertEvent, exc: Exception) -> None:
        event.attempts += 1
        message = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        log.error("event.failed", event_id=event.id, attempt=event.attempts, error=message)
        if event.attempts >= MAX_EVENT_ATTEMPTS:
            event.state = EventState.FAILED
        event.outcome = {"error": message, "attempts": event.attempts}
        session.add(event)
        session.flush()
        audit.append(
            session.connection(),
            [AuditRecord("event.failed", {"error": message, "attempt": event.attempts}, event.id)],
            self._redactor,
        )


def _incident_context(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "key": incident.key,
        "status": incident.status,
        "title": incident.title,
        "priority": incident.priority,
        "service": incident.service,
        "team": incident.team,
        "env": incident.env,
        "event_count": incident.event_count,
        "refs": dict(incident.refs or {}),
    }


def _received_record(event: AlertEvent, alert: Alert) -> AuditRecord:
    data: dict[str, Any] = {
        "source_id": alert.source_id,
        "monitor_id": alert.monitor_id,
        "title": alert.title,
        "transition": alert.transition,
        "priority": alert.priority,
        "scope": alert.scope,
        "cycle_key": alert.cycle_key,
        "template": alert.template,
        "received_at": event.received_at,
        "deliveries": event.deliveries,
    }
    if alert.notes:
        data["notes"] = list(alert.notes)
    return AuditRecord("event.received", data, event.id, at=event.received_at)


def _matched_record(
    event_id: int, incident_id: int, matched: Sequence[Playbook], fresh: Sequence[Playbook]
) -> AuditRecord:
    return AuditRecord(
        "playbooks.matched",
        {
            "matched": [{"name": p.name, "hash": p.content_hash} for p in matched],
            "new": [p.name for p in fresh],
            "already_ran": [p.name for p in matched if p not in fresh],
        },
        event_id,
        incident_id,
    )


def _run_records(runs: Sequence[ActionRun], kind: str) -> list[AuditRecord]:
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
