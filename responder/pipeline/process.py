"""Takes stored events through the stages: correlate, lifecycle, match, plan, record.

Events are processed in arrival order by one sequencer at a time (on PostgreSQL a
transaction-level advisory lock elects it), so a recovery is never handled before the
trigger it ends. A batch is computed first (parsing, matching, rendering, audit records,
even the ids of new rows) and then written in one short transaction of bulk statements: on
SQLite the computing happens before the write lock is taken, so the intake never waits for
it. An event whose stages raise fails alone and visibly; a batch whose write breaks is
retried one event at a time, so that only the culprit is set aside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog

from responder.actions import Registry
from responder.domain import Alert, EventState, RunState
from responder.intake.datadog import normalise
from responder.pipeline import lifecycle
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.correlate import IncidentCache
from responder.pipeline.plan import PlanInput, RunRow, plan
from responder.pipeline.rows import RowIds, run_records
from responder.pipeline.runner import ActionRunner
from responder.playbooks.matcher import select as select_playbooks
from responder.playbooks.schema import Playbook
from responder.redact import Redactor
from responder.store import audit
from responder.store.audit import AuditRecord, PreparedRecord
from responder.store.db import (
    Bulk,
    bulk_insert,
    bulk_update,
    classify,
    reader,
    run_bulk,
    transaction,
)
from responder.store.tables import ActionRun, AlertEvent, Incident

log = structlog.get_logger(__name__)

_EVENTS = AlertEvent.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
_SEQUENCER_LOCK = 0x7265737053455131  # arbitrary, fixed: "respSEQ1"
MAX_EVENT_ATTEMPTS = 5
# Pipeline-owned incident columns; `refs` belongs to the runner and is never written here.
_INCIDENT_COLUMNS = (
    "status",
    "last_transition",
    "priority",
    "event_count",
    "updated_at",
    "resolved_at",
)
_EVENT_COLUMNS = ("state", "incident_id", "outcome", "processed_at", "attempts")
_BY_ID = {"id": "id"}

_Parsed = tuple[Any, Alert | Exception]  # an event row and its alert, or why it has none


@dataclass(frozen=True, slots=True)
class BatchResult:
    processed: int
    failed: int
    runs_planned: int


@dataclass(slots=True)
class _Work:
    """One batch, computed and ready to write."""

    cache: IncidentCache
    earlier: dict[int, list[RunRow]]
    ids: RowIds
    now: datetime
    new_incidents: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)  # existing incidents to write back
    runs: list[RunRow] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    prepared: list[PreparedRecord] = field(default_factory=list)
    bulks: list[Bulk] = field(default_factory=list)
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Step:
    """What one event changes, computed before anything is written."""

    incident: lifecycle.IncidentRow | None
    new: bool
    runs: list[RunRow]
    cancelled: list[RunRow]
    records: list[AuditRecord]
    outcome: dict[str, Any]


class EventProcessor:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        playbooks: Callable[[], Sequence[Playbook]],
        redactor: Redactor,
        max_age: timedelta,
        batch_size: int = 25,
        contexts: AlertContexts | None = None,
        runner: ActionRunner | None = None,
    ) -> None:
        self._engine = engine
        self._runner = runner  # takes over new incidents' first runs as they are planned
        self._contexts = contexts or AlertContexts()
        self._registry = registry
        self._playbooks = playbooks
        self._redactor = redactor
        self._max_age = max_age
        self._batch_size = batch_size

    def process_batch(self, limit: int | None = None) -> BatchResult:
        """Process the oldest waiting events (up to `limit`); returns how many were handled."""
        try:
            return self._process(min(limit or self._batch_size, self._batch_size))
        except Exception as exc:
            if classify(exc):
                raise  # the database is unavailable: the worker backs off and retries
            # Something in the batch breaks the transaction itself: go one event at a time
            # so that only the culprit is set aside.
            log.warning("events.batch_failed", error=type(exc).__name__)
            return self._one_by_one()

    def _one_by_one(self) -> BatchResult:
        processed = failed = planned = 0
        for _ in range(self._batch_size):
            try:
                result = self._process(1)
            except Exception as exc:
                if classify(exc):
                    raise
                self._set_aside(exc)
                failed += 1
                continue
            if not (result.processed or result.failed):
                break
            processed += result.processed
            failed += result.failed
            planned += result.runs_planned
        return BatchResult(processed, failed, planned)

    def _process(self, limit: int) -> BatchResult:
        committed = False
        try:
            result = self._process_once(limit)
            committed = True
            return result
        finally:
            if self._runner is not None:
                self._runner.start_taken(committed)

    def _process_once(self, limit: int) -> BatchResult:
        if self._engine.dialect.name == "sqlite":
            # One sequencer per SQLite file (this thread), so what it reads stays true while
            # it computes; only the short write below holds the write lock.
            with reader(self._engine).connect() as conn:
                work = self._compute(conn, limit)
            if work is None:
                return BatchResult(0, 0, 0)
            with transaction(self._engine) as conn:
                self._write(conn, work)
        else:
            with transaction(self._engine) as conn:
                if not _elected(conn):
                    return BatchResult(0, 0, 0)
                work = self._compute(conn, limit)
                if work is None:
                    return BatchResult(0, 0, 0)
                self._write(conn, work)
        return BatchResult(len(work.events) - work.failed, work.failed, len(work.runs))

    def _compute(self, conn: sa.Connection, limit: int) -> _Work | None:
        rows = conn.execute(
            sa.select(
                _EVENTS.c.id,
                _EVENTS.c.payload,
                _EVENTS.c.received_at,
                _EVENTS.c.deliveries,
                _EVENTS.c.attempts,
            )
            .where(_EVENTS.c.state == EventState.RECEIVED.value)
            .order_by(_EVENTS.c.id)
            .limit(limit)
        ).all()
        if not rows:
            return None
        parsed: list[_Parsed] = []
        for row in rows:
            try:
                parsed.append((row, normalise(orjson.loads(row.payload), row.received_at)))
            except Exception as exc:  # stored by an older version, or edited by hand
                parsed.append((row, exc))
        work = self._start(conn, [a for _, a in parsed if isinstance(a, Alert)])
        playbooks = self._playbooks()
        for row, alert in parsed:
            try:
                if isinstance(alert, Exception):
                    raise alert
                step = self._step(work, row, alert, playbooks)
            except Exception as exc:  # nothing of this event was kept
                self._failed(work, row, exc)
                continue
            self._keep(work, row, step)
        self._prepare_writes(work)
        return work

    def _prepare_writes(self, work: _Work) -> None:
        """Everything the write will send, in the driver's terms, before any lock is taken."""
        engine = self._engine
        rows = {row["id"]: row for row in work.cache.by_key.values()}
        if work.new_incidents:
            new = [rows[i] for i in sorted(work.new_incidents)]
            work.bulks.append(bulk_insert(engine, _INCIDENTS, new))
        if work.dirty:
            dirty = [rows[i] for i in sorted(work.dirty)]
            work.bulks.append(bulk_update(engine, _INCIDENTS, _INCIDENT_COLUMNS, _BY_ID, dirty))
        if work.runs:
            work.bulks.append(bulk_insert(engine, _RUNS, work.runs))
        work.bulks.append(bulk_update(engine, _EVENTS, _EVENT_COLUMNS, _BY_ID, work.events))
        work.prepared = audit.prepare(work.records, self._redactor)

    def _start(self, conn: sa.Connection, alerts: list[Alert]) -> _Work:
        cache = IncidentCache()
        cache.load(conn, alerts)
        ids = sorted({row["id"] for row in cache.by_key.values()})
        earlier: dict[int, list[RunRow]] = {incident_id: [] for incident_id in ids}
        if ids:
            query = (
                sa.select(_RUNS)
                .where(_RUNS.c.incident_id.in_(ids), _RUNS.c.parent_id.is_(None))
                .order_by(_RUNS.c.id)
            )
            for run in conn.execute(query).mappings():
                earlier[run["incident_id"]].append(dict(run))
        return _Work(cache, earlier, RowIds(conn), datetime.now(UTC))

    def _step(self, work: _Work, row: Any, alert: Alert, playbooks: Sequence[Playbook]) -> _Step:
        """An event's stages, computed without writing anything."""
        records = [_received_record(row, alert)]
        found = work.cache.correlate(alert, row.id)
        if found.late or (found.incident is None and alert.transition.is_recovery):
            reason = (
                "late delivery for a cycle that already recovered"
                if found.late
                else "recovery for an incident we never saw open"
            )
            incident_id = found.incident["id"] if found.incident else None
            records.append(AuditRecord("event.ignored", {"reason": reason}, row.id, incident_id))
            ignored: dict[str, Any] = {
                "ignored": reason,
                "playbooks": [],
                "actions": [],
                "incident_id": incident_id,
            }
            return _Step(None, False, [], [], records, ignored)
        if found.incident is None:
            incident = lifecycle.open_incident(alert, found.key, found.group_key, work.now)
            incident["id"] = work.ids.take("incident")
            change = lifecycle.Change("incident.opened", None, incident["status"])
            earlier: list[RunRow] = []
        else:
            incident, change = lifecycle.apply(found.incident, alert, work.now)
            earlier = work.earlier.get(incident["id"], [])
        records.append(_change_record(change, alert, row.id, incident))
        incident_ctx = lifecycle.context(incident)
        alert_ctx = alert.as_context()
        self._contexts.put(row.id, alert)  # the runner will want it for these runs
        matched = select_playbooks(playbooks, alert, incident_ctx)
        already = {run["playbook"] for run in earlier}
        fresh = [p for p in matched if p.name not in already]
        result = plan(
            self._registry,
            PlanInput(row.id, alert, incident["id"], fresh, earlier, work.now, self._max_age),
            {"alert": alert_ctx, "incident": incident_ctx},
        )
        for run in result.runs:
            run["id"] = work.ids.take("action_run")
        records.append(_matched_record(row.id, incident["id"], matched, fresh))
        records.extend(run_records(result.runs, "run.planned"))
        records.extend(run_records(result.cancelled, "run.cancelled"))
        if self._runner is not None and found.incident is None:
            # Last, since nothing after it may fail: a run taken over will be started.
            records.extend(self._take_over(work, incident, alert, result.runs))
        outcome: dict[str, Any] = {
            "playbooks": [p.name for p in matched],
            "actions": [
                {"id": r["id"], "action": r["action"], "state": r["state"]} for r in result.runs
            ],
        }
        if result.render_errors:
            outcome["errors"] = result.render_errors
        return _Step(
            incident, found.incident is None, result.runs, result.cancelled, records, outcome
        )

    def _take_over(
        self,
        work: _Work,
        incident: lifecycle.IncidentRow,
        alert: Alert,
        runs: list[RunRow],
    ) -> list[AuditRecord]:
        """Hand a new incident's first due run of each lane straight to the runner."""
        assert self._runner is not None
        records: list[AuditRecord] = []
        lanes: set[str] = set()
        for run in runs:
            due = run["state"] == RunState.PENDING and run["scheduled_at"] <= work.now
            if due and run["lane"] not in lanes:
                lanes.add(run["lane"])
                try:
                    records.extend(self._runner.take_over(run, incident, alert, work.now))
                except Exception:  # it stays pending: the runner's own claim will try it
                    log.exception("run.take_over_failed", run_id=run["id"])
        return records

    def _keep(self, work: _Work, row: Any, step: _Step) -> None:
        """Fold a computed event into the batch, where later events of it can see it."""
        incident = step.incident
        if incident is not None:
            (work.new_incidents if step.new else work.dirty).add(incident["id"])
            work.cache.remember(incident)
            runs = work.earlier.setdefault(incident["id"], [])
            runs.extend(r for r in step.runs if r["parent_id"] is None)
        for run in step.cancelled:
            run["state"] = RunState.CANCELLED.value
            work.cancelled.append(run["id"])
        work.runs.extend(step.runs)
        work.records.extend(step.records)
        work.events.append(
            {
                "id": row.id,
                "state": EventState.PROCESSED.value,
                "incident_id": incident["id"] if incident else step.outcome.get("incident_id"),
                "outcome": step.outcome,
                "processed_at": work.now,
                "attempts": row.attempts + 1,
            }
        )

    def _failed(self, work: _Work, row: Any, exc: Exception) -> None:
        attempts = row.attempts + 1
        message = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        log.error("event.failed", event_id=row.id, attempt=attempts, error=message)
        final = attempts >= MAX_EVENT_ATTEMPTS
        work.failed += 1
        work.records.append(
            AuditRecord(
                "event.failed", {"error": message, "attempt": attempts, "final": final}, row.id
            )
        )
        work.events.append(
            {
                "id": row.id,
                "state": EventState.FAILED.value if final else EventState.RECEIVED.value,
                "incident_id": None,
                "outcome": {"error": message, "attempts": attempts},
                "processed_at": work.now if final else None,
                "attempts": attempts,
            }
        )

    def _write(self, conn: sa.Connection, work: _Work) -> None:
        """The whole batch in a handful of bulk statements."""
        for bulk in work.bulks:
            run_bulk(conn, bulk)
        if work.cancelled:
            conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.id.in_(work.cancelled), _RUNS.c.state == RunState.PENDING.value)
                .values(
                    state=RunState.CANCELLED.value,
                    finished_at=work.now,
                    last_error="cancelled: the incident recovered before this delayed step ran",
                )
            )
        audit.append_prepared(conn, work.prepared)

    def _set_aside(self, exc: Exception) -> None:
        """The oldest waiting event breaks even a batch of one: count the attempt, audited."""
        with transaction(self._engine) as conn:
            row = conn.execute(
                sa.select(_EVENTS.c.id, _EVENTS.c.attempts)
                .where(_EVENTS.c.state == EventState.RECEIVED.value)
                .order_by(_EVENTS.c.id)
                .limit(1)
            ).first()
            if row is None:
                return
            work = _Work(IncidentCache(), {}, RowIds(conn), datetime.now(UTC))
            self._failed(work, row, exc)
            run_bulk(conn, bulk_update(self._engine, _EVENTS, _EVENT_COLUMNS, _BY_ID, work.events))
            audit.append(conn, work.records, self._redactor)


def _elected(conn: sa.Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return True  # SQLite: BEGIN IMMEDIATE already makes this the only writer
    got = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_SEQUENCER_LOCK))).scalar_one()
    return bool(got)


def _received_record(row: Any, alert: Alert) -> AuditRecord:
    data: dict[str, Any] = {
        "source_id": alert.source_id,
        "monitor_id": alert.monitor_id,
        "title": alert.title,
        "transition": alert.transition,
        "priority": alert.priority,
        "scope": alert.scope,
        "cycle_key": alert.cycle_key,
        "template": alert.template,
        "received_at": row.received_at,
        "deliveries": row.deliveries,
    }
    if alert.notes:
        data["notes"] = list(alert.notes)
    return AuditRecord("event.received", data, row.id, at=row.received_at)


def _change_record(
    change: lifecycle.Change, alert: Alert, event_id: int, incident: lifecycle.IncidentRow
) -> AuditRecord:
    data = {"from": change.before, "to": change.after, "transition": alert.transition}
    if change.kind == "incident.opened":
        data.update(key=incident["key"], title=incident["title"])
    return AuditRecord(change.kind, data, event_id, incident["id"])


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
