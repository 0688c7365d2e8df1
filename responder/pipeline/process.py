"""Takes stored events through the stages: correlate, lifecycle, match, plan, record.

Events are processed in arrival order by one sequencer at a time (on PostgreSQL a
transaction-level advisory lock elects it), so a recovery is never handled before the
trigger it ends. A batch is one transaction of plain SQL (no outside call, no ORM). An event
whose stages raise fails alone and visibly; a batch that breaks while writing is retried one
event at a time, so that only the culprit is set aside.
"""

from __future__ import annotations

import time
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
from responder.pipeline.correlate import IncidentCache
from responder.pipeline.plan import PlanInput, RunRow, plan
from responder.playbooks.matcher import select as select_playbooks
from responder.playbooks.schema import Playbook
from responder.redact import Redactor
from responder.store import audit
from responder.store.audit import AuditRecord
from responder.store.db import classify, reader, transaction, urgent_waiting
from responder.store.tables import ActionRun, AlertEvent, Incident

log = structlog.get_logger(__name__)

_EVENTS = AlertEvent.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
_INSERT_INCIDENT = sa.insert(_INCIDENTS).returning(_INCIDENTS.c.id)
_INSERT_RUNS = sa.insert(_RUNS).returning(_RUNS.c.id, sort_by_parameter_order=True)
_SEQUENCER_LOCK = 0x7265737053455131  # arbitrary, fixed: "respSEQ1"
MAX_EVENT_ATTEMPTS = 5
# How long a write transaction may go on once the intake waits for the lock: long enough
# to amortise a commit over several events, short next to the ack's latency budget.
_HOLD_SECONDS = 0.002
# Pipeline-owned incident columns; `refs` belongs to the runner and is never written here.
_INCIDENT_COLUMNS = (
    "status",
    "last_transition",
    "title",
    "priority",
    "event_count",
    "updated_at",
    "resolved_at",
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    processed: int
    failed: int
    runs_planned: int


_Parsed = tuple[Any, Alert | Exception]  # an event row and its alert, or why it has none


@dataclass(frozen=True, slots=True)
class _Decision:
    incident: lifecycle.IncidentRow | None  # a new one has no "id" yet
    change: lifecycle.Change | None
    earlier: list[RunRow]
    matched: list[Playbook]
    fresh: list[Playbook]
    ignored: str | None  # why the event changes nothing


@dataclass(slots=True)
class _Batch:
    """What one transaction accumulates before writing it in bulk."""

    cache: IncidentCache
    earlier: dict[int, list[RunRow]]
    now: datetime
    records: list[AuditRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    dirty: set[int] = field(default_factory=set)  # incidents to write back
    planned: int = 0
    failed: int = 0

    def flushed(self) -> None:
        """Forget what the last transaction wrote; keep what later events must know."""
        self.records, self.events, self.dirty = [], [], set()


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
        try:
            return self._process(self._batch_size)
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
        if self._engine.dialect.name == "sqlite":
            return self._process_sqlite(limit)
        with transaction(self._engine) as conn:
            if not _elected(conn):
                return BatchResult(0, 0, 0)
            parsed, batch = self._read(conn, limit)
            handled = self._handle(conn, batch, parsed, yield_early=False)
            self._write(conn, batch)
        return BatchResult(handled - batch.failed, batch.failed, batch.planned)

    def _process_sqlite(self, limit: int) -> BatchResult:
        """Read and parse without the write lock, then write in short transactions.

        SQLite has one writer at a time and this thread is the only sequencer, so what it
        read stays true while it writes (the runner changes only run states and `refs`,
        which the writes here are guarded against). Each write transaction ends as soon as
        the intake waits for the lock, so an acknowledgement never queues behind a batch.
        """
        with reader(self._engine).connect() as conn:
            parsed, batch = self._read(conn, limit)
        handled = 0
        while handled < len(parsed):
            with transaction(self._engine) as conn:
                handled += self._handle(conn, batch, parsed[handled:], yield_early=True)
                self._write(conn, batch)
            batch.flushed()
        return BatchResult(handled - batch.failed, batch.failed, batch.planned)

    def _read(self, conn: sa.Connection, limit: int) -> tuple[list[_Parsed], _Batch]:
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
        parsed: list[_Parsed] = []
        for row in rows:
            try:
                parsed.append((row, normalise(orjson.loads(row.payload), row.received_at)))
            except Exception as exc:  # stored by an older version, or edited by hand
                parsed.append((row, exc))
        return parsed, self._start(conn, [a for _, a in parsed if isinstance(a, Alert)])

    def _handle(
        self, conn: sa.Connection, batch: _Batch, parsed: list[_Parsed], *, yield_early: bool
    ) -> int:
        """Take events through the stages in order; returns how many were handled."""
        playbooks = self._playbooks()
        handled = 0
        started = time.monotonic()
        for row, alert in parsed:
            if (
                yield_early
                and time.monotonic() - started > _HOLD_SECONDS
                and urgent_waiting(self._engine)
            ):
                break  # commit what is done: an acknowledgement is waiting for the lock
            handled += 1
            if isinstance(alert, Exception):
                self._failed(batch, row, alert)
                continue
            try:
                step = self._decide(batch, row, alert, playbooks)
            except Exception as exc:  # nothing written yet for this event
                self._failed(batch, row, exc)
                continue
            # A failure from here on aborts the transaction, and the batch is retried one
            # event at a time (see process_batch): no half-written event can survive.
            self._apply(conn, batch, row, alert, step)
        return handled

    def _start(self, conn: sa.Connection, alerts: list[Alert]) -> _Batch:
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
        return _Batch(cache, earlier, datetime.now(UTC))

    def _decide(
        self, batch: _Batch, row: Any, alert: Alert, playbooks: Sequence[Playbook]
    ) -> _Decision:
        """The pure part of an event's stages: correlate, lifecycle, match."""
        found = batch.cache.correlate(alert, row.id)
        if found.late or (found.incident is None and alert.transition.is_recovery):
            reason = (
                "late delivery for a cycle that already recovered"
                if found.late
                else "recovery for an incident we never saw open"
            )
            return _Decision(found.incident, None, [], [], [], reason)
        if found.incident is None:
            incident = lifecycle.open_incident(alert, found.key, found.group_key, batch.now)
            change = lifecycle.Change("incident.opened", None, incident["status"])
            earlier: list[RunRow] = []
        else:
            incident, change = lifecycle.apply(found.incident, alert, batch.now)
            earlier = batch.earlier.get(incident["id"], [])
        matched = select_playbooks(playbooks, alert, lifecycle.context(incident))
        already = {run["playbook"] for run in earlier}
        fresh = [p for p in matched if p.name not in already]
        return _Decision(incident, change, earlier, matched, fresh, None)

    def _apply(
        self, conn: sa.Connection, batch: _Batch, row: Any, alert: Alert, step: _Decision
    ) -> None:
        """Write an event's outcome: the incident, its planned runs, its audit records."""
        records = [_received_record(row, alert)]
        incident = step.incident
        if step.ignored is not None:
            incident_id = incident["id"] if incident else None
            records.append(
                AuditRecord("event.ignored", {"reason": step.ignored}, row.id, incident_id)
            )
            ignored = {"ignored": step.ignored, "playbooks": [], "actions": []}
            self._done(batch, row, incident_id, ignored, records)
            return
        assert incident is not None and step.change is not None
        if "id" not in incident:
            incident["id"] = conn.execute(_INSERT_INCIDENT, incident).scalar_one()
        records.append(_change_record(step.change, alert, row.id, incident))
        result = plan(
            self._registry,
            PlanInput(
                row.id, alert, incident["id"], step.fresh, step.earlier, batch.now, self._max_age
            ),
            {"alert": alert.as_context(), "incident": lifecycle.context(incident)},
        )
        if result.runs:
            ids = conn.execute(_INSERT_RUNS, result.runs).scalars()
            for run, run_id in zip(result.runs, ids, strict=True):
                run["id"] = run_id
        if result.cancelled:
            conn.execute(
                sa.update(_RUNS)
                .where(
                    _RUNS.c.id.in_([run["id"] for run in result.cancelled]),
                    _RUNS.c.state == RunState.PENDING.value,
                )
                .values(
                    state=RunState.CANCELLED.value,
                    finished_at=batch.now,
                    last_error="cancelled: the incident recovered before this delayed step ran",
                )
            )
            for run in result.cancelled:
                run["state"] = RunState.CANCELLED.value
        records.append(_matched_record(row.id, incident["id"], step.matched, step.fresh))
        records.extend(_run_records(result.runs, "run.planned"))
        records.extend(_run_records(result.cancelled, "run.cancelled"))
        outcome: dict[str, Any] = {
            "playbooks": [p.name for p in step.matched],
            "actions": [
                {"id": r["id"], "action": r["action"], "state": r["state"]} for r in result.runs
            ],
        }
        if result.render_errors:
            outcome["errors"] = result.render_errors
        runs = batch.earlier.setdefault(incident["id"], step.earlier)
        runs.extend(r for r in result.runs if r["parent_id"] is None)
        batch.cache.remember(incident)
        batch.dirty.add(incident["id"])
        batch.planned += len(result.runs)
        self._done(batch, row, incident["id"], outcome, records)

    def _done(
        self,
        batch: _Batch,
        row: Any,
        incident_id: int | None,
        outcome: dict[str, Any],
        records: list[AuditRecord],
    ) -> None:
        batch.records.extend(records)
        batch.events.append(
            {
                "b_id": row.id,
                "state": EventState.PROCESSED.value,
                "incident_id": incident_id,
                "outcome": outcome,
                "processed_at": batch.now,
                "attempts": row.attempts + 1,
            }
        )

    def _failed(self, batch: _Batch, row: Any, exc: Exception) -> None:
        attempts = row.attempts + 1
        message = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        log.error("event.failed", event_id=row.id, attempt=attempts, error=message)
        final = attempts >= MAX_EVENT_ATTEMPTS
        batch.failed += 1
        batch.records.append(
            AuditRecord(
                "event.failed", {"error": message, "attempt": attempts, "final": final}, row.id
            )
        )
        batch.events.append(
            {
                "b_id": row.id,
                "state": EventState.FAILED.value if final else EventState.RECEIVED.value,
                "incident_id": None,
                "outcome": {"error": message, "attempts": attempts},
                "processed_at": batch.now if final else None,
                "attempts": attempts,
            }
        )

    def _write(self, conn: sa.Connection, batch: _Batch) -> None:
        if batch.events:
            conn.execute(
                sa.update(_EVENTS)
                .where(_EVENTS.c.id == sa.bindparam("b_id"))
                .values(
                    state=sa.bindparam("state"),
                    incident_id=sa.bindparam("incident_id"),
                    outcome=sa.bindparam("outcome"),
                    processed_at=sa.bindparam("processed_at"),
                    attempts=sa.bindparam("attempts"),
                ),
                batch.events,
            )
        incidents = [
            {"b_id": row["id"], **{c: row[c] for c in _INCIDENT_COLUMNS}}
            for row in batch.cache.by_key.values()
            if row["id"] in batch.dirty
        ]
        if incidents:
            conn.execute(
                sa.update(_INCIDENTS)
                .where(_INCIDENTS.c.id == sa.bindparam("b_id"))
                .values({c: sa.bindparam(c) for c in _INCIDENT_COLUMNS}),
                incidents,
            )
        audit.append(conn, batch.records, self._redactor)

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
            batch = _Batch(IncidentCache(), {}, datetime.now(UTC))
            self._failed(batch, row, exc)
            conn.execute(
                sa.update(_EVENTS)
                .where(_EVENTS.c.id == row.id)
                .values({k: v for k, v in batch.events[0].items() if k != "b_id"})
            )
            audit.append(conn, batch.records, self._redactor)


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


def _run_records(runs: Sequence[RunRow], kind: str) -> list[AuditRecord]:
    return [
        AuditRecord(
            kind if run["state"] != RunState.FAILED else "run.failed",
            {
                "action": run["action"],
                "playbook": run["playbook"],
                "step": run["step"],
                "params": run["params"],
                "not_before": run["not_before"],
                "parent_id": run["parent_id"],
                "error": run["last_error"],
            },
            run["event_id"],
            run["incident_id"],
            run["id"],
        )
        for run in runs
    ]
