"""Executes action runs: claim with a lease, call the vendor once, record, retry or finish.

Runs of one lane (incident + vendor) go in order; everything else runs in parallel on a
thread pool. Each attempt is audited before the call, so a worker that dies mid-call
leaves an attempt without an outcome: its lease expires, the run is marked uncertain and
the next attempt asks the vendor what exists before creating anything again.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlmodel import Session

from responder.actions import ActionContext, ActionError, ActionResult, IncidentView, Registry
from responder.domain import IncidentStatus, RunState, Transition
from responder.intake.datadog import normalise
from responder.metrics import Metrics
from responder.pipeline.backoff import retry_delay
from responder.redact import Redactor
from responder.store import audit
from responder.store.audit import AuditRecord
from responder.store.db import reader
from responder.store.tables import ActionRun, AlertEvent, Incident

log = structlog.get_logger(__name__)
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Outcome:
    state: RunState
    result: dict[str, Any] | None = None
    error: str | None = None
    not_before: datetime | None = None  # set for a retry
    refs: dict[str, Any] | None = None
    kind: str = "run.succeeded"


class ActionRunner:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        redactor: Redactor,
        metrics: Metrics,
        threads: int = 8,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._redactor = redactor
        self._metrics = metrics
        self._threads = threads
        self._lease = lease
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="action")
        self._inflight = 0
        self.on_finished: Callable[[], None] = lambda: None  # wakes the loop: a lane may be free
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._inflight == 0

    def dispatch(self) -> int:
        """Claim what is due and hand it to the pool; returns how many runs were started."""
        free = self._threads - self._inflight
        if free <= 0:
            return 0
        ids = self.claim(free)
        for run_id in ids:
            with self._lock:
                self._inflight += 1
            self._pool.submit(self._guarded, run_id)
        return len(ids)

    def _guarded(self, run_id: int) -> None:
        try:
            self.execute(run_id)
        except Exception:  # the run stays leased and is retried after its lease: never lost
            log.exception("run.crashed", run_id=run_id)
        finally:
            with self._lock:
                self._inflight -= 1
            self.on_finished()

    def claim(self, limit: int) -> list[int]:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            self._expire_leases(conn, now)
            earlier = _RUNS.alias("earlier")
            blocked = (
                sa.select(earlier.c.id)
                .where(
                    earlier.c.lane == _RUNS.c.lane,
                    earlier.c.id < _RUNS.c.id,
                    earlier.c.state.in_([RunState.PENDING, RunState.RUNNING]),
                    earlier.c.scheduled_at <= _RUNS.c.scheduled_at,
                )
                .exists()
            )
            query = (
                sa.select(_RUNS.c.id)
                .where(_RUNS.c.state == RunState.PENDING, _RUNS.c.not_before <= now, ~blocked)
                .order_by(_RUNS.c.not_before, _RUNS.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=_RUNS)
            ids = list(conn.execute(query).scalars())
            if ids:
                conn.execute(
                    sa.update(_RUNS)
                    .where(_RUNS.c.id.in_(ids))
                    .values(
                        state=RunState.RUNNING,
                        lease_until=now + self._lease,
                        lease_owner=self._owner,
                        attempts=_RUNS.c.attempts + 1,
                    )
                )
        return ids

    def _expire_leases(self, conn: sa.Connection, now: datetime) -> None:
        expired = list(
            conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.state == RunState.RUNNING, _RUNS.c.lease_until < now)
                .values(state=RunState.PENDING, uncertain=True, not_before=now, lease_owner=None)
                .returning(_RUNS.c.id, _RUNS.c.incident_id, _RUNS.c.attempts)
            )
        )
        if expired:
            records = [
                AuditRecord(
                    "run.lease_expired",
                    {"attempt": attempts, "note": "worker stopped mid-call; outcome unknown"},
                    incident_id=incident_id,
                    run_id=run_id,
                )
                for run_id, incident_id, attempts in expired
            ]
            audit.append(conn, records, self._redactor)

    def execute(self, run_id: int) -> None:
        ctx, run, incident = self._load(run_id)
        action = self._registry.get(run.action)
        now = datetime.now(UTC)
        if run.condition == "incident.open" and incident.status == IncidentStatus.RESOLVED:
            reason = "incident resolved before this delayed step was due"
            self._finish(run, Outcome(RunState.SKIPPED, {"reason": reason}, kind="run.skipped"))
            return
        if now > run.expires_at:
            error = f"gave up after {run.attempts - 1} attempts: older than its maximum age"
            self._finish(run, Outcome(RunState.FAILED, error=error, kind="run.failed"))
            return
        request = dict(action.describe(ctx))
        if not action.configured:
            result = {"reason": "integration not configured", "request": request}
            self._finish(run, Outcome(RunState.SKIPPED, result, kind="run.skipped"))
            return
        self._record_attempt(run, request, ctx.uncertain)
        started = time.monotonic()
        try:
            outcome = self._outcome(action.execute(ctx))
        except ActionError as err:
            outcome = self._failure(run, err)
        except Exception as exc:  # an adapter bug: fail visibly rather than retry for hours
            error = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
            outcome = Outcome(
                RunState.FAILED, error=f"unexpected error: {error}", kind="run.failed"
            )
        self._metrics.run_latency.labels(run.action).observe(time.monotonic() - started)
        self._finish(run, outcome)

    def _outcome(self, result: ActionResult) -> Outcome:
        if result.skipped_reason:
            data = {"reason": result.skipped_reason, "response": dict(result.response)}
            return Outcome(RunState.SKIPPED, data, kind="run.skipped")
        return Outcome(RunState.SUCCEEDED, dict(result.response), refs=dict(result.refs))

    def _failure(self, run: ActionRun, err: ActionError) -> Outcome:
        error = self._redactor.redact_text(err.message)[:2000]
        response: dict[str, Any] = {"error": error, "response": err.response}
        if not err.retryable:
            return Outcome(RunState.FAILED, response, error, kind="run.failed")
        delay = retry_delay(run.attempts, err.retry_after)
        when = datetime.now(UTC) + timedelta(seconds=delay)
        if when > run.expires_at:
            error = f"{error} (no retry: next attempt would pass the run's maximum age)"
            return Outcome(RunState.FAILED, response, error, kind="run.failed")
        response["retry_in_seconds"] = int(delay * 1000) / 1000
        return Outcome(RunState.PENDING, response, error, not_before=when, kind="run.retry")

    def _load(self, run_id: int) -> tuple[ActionContext, ActionRun, Incident]:
        with Session(reader(self._engine)) as session:
            run = session.get(ActionRun, run_id)
            assert run is not None
            incident = session.get(Incident, run.incident_id)
            event = session.get(AlertEvent, run.event_id)
            assert incident is not None and event is not None
            parent = session.get(ActionRun, run.parent_id) if run.parent_id else None
            session.expunge_all()
        alert = normalise(orjson.loads(event.payload), event.received_at)
        ctx = ActionContext(
            run_id=str(run.id),
            action=run.action,
            params=dict(run.params or {}),
            incident=_view(incident),
            alert=alert.as_context(),
            transition=Transition(run.transition),
            idempotency_key=run.idempotency_key,
            attempt=run.attempts,
            uncertain=run.uncertain,
            parent=(parent.result or {}) if parent is not None else None,
        )
        return ctx, run, incident

    def _record_attempt(self, run: ActionRun, request: dict[str, Any], uncertain: bool) -> None:
        data = {"action": run.action, "attempt": run.attempts, "request": request}
        if uncertain:
            data["uncertain"] = "an earlier attempt has no recorded outcome; checking first"
        with self._engine.begin() as conn:
            audit.append(
                conn,
                [AuditRecord("run.attempt", data, run.event_id, run.incident_id, run.id)],
                self._redactor,
            )

    def _finish(self, run: ActionRun, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        final = outcome.state.is_final
        values: dict[str, Any] = {
            "state": outcome.state,
            "result": outcome.result,
            "last_error": outcome.error,
            "lease_until": None,
            "lease_owner": None,
            "uncertain": False,
        }
        if final:
            values["finished_at"] = now
        if outcome.not_before is not None:
            values["not_before"] = outcome.not_before
        with self._engine.begin() as conn:
            updated = conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.id == run.id, _RUNS.c.state == RunState.RUNNING)
                .where(_RUNS.c.lease_owner == self._owner)
                .values(**values)
            ).rowcount
            if updated and outcome.refs:
                _merge_refs(conn, run.incident_id, outcome.refs)
            data = {"action": run.action, "attempt": run.attempts, "state": outcome.state}
            data.update({"result": outcome.result, "error": outcome.error})
            if not updated:
                data["note"] = "lease lost before the outcome was recorded; another worker owns it"
            audit.append(
                conn,
                [AuditRecord(outcome.kind, data, run.event_id, run.incident_id, run.id)],
                self._redactor,
            )
        self._count(run, outcome, final, now)

    def _count(self, run: ActionRun, outcome: Outcome, final: bool, now: datetime) -> None:
        if final:
            self._metrics.runs.labels(run.action, outcome.state.value).inc()
            self._metrics.run_delay.labels(run.action).observe(
                max((now - run.scheduled_at).total_seconds(), 0.0)
            )
        elif outcome.state is RunState.PENDING:
            self._metrics.retries.labels(run.action).inc()
        log.info(
            outcome.kind,
            run_id=run.id,
            action=run.action,
            attempt=run.attempts,
            error=outcome.error,
        )


def _merge_refs(conn: sa.Connection, incident_id: int, refs: dict[str, Any]) -> None:
    query = sa.select(_INCIDENTS.c.refs).where(_INCIDENTS.c.id == incident_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # two vendors finishing at once must not lose a ref
    current = dict(conn.execute(query).scalar_one() or {})
    for name, value in refs.items():
        current.setdefault(name, value)  # the first root post stays the incident's reference
    conn.execute(sa.update(_INCIDENTS).where(_INCIDENTS.c.id == incident_id).values(refs=current))


def _view(incident: Incident) -> IncidentView:
    assert incident.id is not None
    return IncidentView(
        id=str(incident.id),
        key=incident.key,
        status=incident.status,
        title=incident.title,
        monitor_id=incident.monitor_id,
        scope=incident.scope,
        priority=incident.priority,
        opened_at=incident.opened_at.isoformat(),
        resolved_at=incident.resolved_at.isoformat() if incident.resolved_at else None,
        refs=dict(incident.refs or {}),
    )
