"""Runner, first part: claim due runs with a lease, audit each attempt before its call, and
settle at once what needs no call (no credentials, expired, condition false).

Claiming is one transaction for a whole batch. A worker that dies mid-call leaves an
attempt without an outcome: its lease expires, the run is marked uncertain and the next
attempt asks the vendor what exists before creating anything again. A new incident's
first runs are claimed as they are planned (`take_fresh`), so they need no claim round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from responder.actions import Action, ActionContext, Registry
from responder.domain import Alert, RunState
from responder.metrics import Metrics
from responder.pipeline.alerts import AlertSource
from responder.pipeline.jobs import Claim, Job, Taken
from responder.pipeline.outcomes import Finished, context, run_summary, settle_early
from responder.pipeline.pacing import Pacer
from responder.pipeline.record import outcome_rows
from responder.records import IncidentRecord, RunRecord
from responder.redact import Redactor
from responder.store import audit, incidents, runs
from responder.store.audit import AuditRecord, PreparedRecord
from responder.store.db import Bulk, reader, run_bulk, transaction


@dataclass(frozen=True, slots=True)
class _Prepared:
    jobs: list[Job]
    settled: list[Finished]
    records: list[PreparedRecord]  # audit records of attempts and settled runs
    finish_settled: Bulk  # the settled runs' final states, one row each, in `settled` order
    deferred: list[tuple[int, datetime]]  # due, but over a vendor's pace: until when


class Claimer:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        redactor: Redactor,
        metrics: Metrics,
        alerts: AlertSource,
        *,
        owner: str,
        lease: timedelta,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._redactor = redactor
        self._metrics = metrics
        self._alerts = alerts
        self._owner = owner
        self._lease_for = lease
        self.pacer = Pacer()

    def claim(self, limit: int, now: datetime) -> Claim:
        """Lease up to `limit` due runs; audit their attempts; settle those needing no call.

        On SQLite the runs are read and prepared before the write lock is taken (this
        process is the file's only runner); on PostgreSQL they are locked while prepared,
        with SKIP LOCKED so that several workers share them.
        """
        if self._engine.dialect.name == "sqlite":
            with reader(self._engine).connect() as conn:
                expired = runs.any_lease_expired(conn, now=now)
            if expired:
                with transaction(self._engine) as conn:
                    self._expire_leases(conn, now)
            with reader(self._engine).connect() as conn:
                ids = runs.due_ids(conn, now=now, limit=limit)
                if not ids:
                    # Most rounds find nothing due: no write lock for them, which the
                    # intake's next commit would otherwise wait behind.
                    return Claim([], [])
                prepared = self._prepare(conn, ids, now)
            with transaction(self._engine) as conn:
                return self._lease(conn, prepared, now)
        with transaction(self._engine) as conn:
            self._expire_leases(conn, now)
            ids = runs.due_ids(conn, now=now, limit=limit)
            return self._lease(conn, self._prepare(conn, ids, now), now)

    def take_fresh(
        self, run: RunRecord, incident: IncidentRecord, alert: Alert, now: datetime
    ) -> Taken | None:
        """Claim a run as it is planned (due now, first in its lane, of a new incident).

        The returned run is what to insert: leased to this runner, or settled at once when
        it needs no call. None: leave it pending for a claim round (it wants the incident's
        timeline, which only a claim reads, or it is over its vendor's pace).
        """
        action = self._registry.get(run.action)
        if action.wants_runs:
            return None
        first = replace(run, attempts=1)
        ctx = context(first, incident, alert, None)
        early = settle_early(first, incident, action, ctx, now)
        if early is None and self._wait_for_pace(action, ctx, run.id, now) is not None:
            return None
        if early is not None:
            row = outcome_rows([(first, early)], owner=self._owner, now=now).rows[0]
            settled = replace(first, **{key: row[key] for key in runs.FINISH_VALUES})
            data: dict[str, Any] = {"action": run.action, "attempt": 1}
            data.update(state=early.state, result=early.result, error=early.error)
            record = AuditRecord(early.kind, data, run.event_id, run.incident_id, run.id)
            return Taken(settled, record, None, early)
        leased = replace(
            first,
            state=RunState.RUNNING.value,
            lease_until=now + self._lease_for,
            lease_owner=self._owner,
        )
        job = Job(leased, ctx)
        return Taken(leased, self.attempt_record(job), job, None)

    def attempt_record(self, job: Job) -> AuditRecord:
        run = job.run
        data: dict[str, Any] = {"action": run.action, "attempt": run.attempts}
        data["request"] = dict(self._registry.get(run.action).describe(job.ctx))
        if job.ctx.uncertain:
            data["uncertain"] = "an earlier attempt has no recorded outcome; checking first"
        return AuditRecord("run.attempt", data, run.event_id, run.incident_id, run.id)

    def _lease(self, conn: sa.Connection, prepared: _Prepared, now: datetime) -> Claim:
        """Mark the prepared runs running (those still pending) and record what is known."""
        ids = [job.run.id for job in prepared.jobs] + [run.id for run, _ in prepared.settled]
        until = now + self._lease_for
        leased = runs.lease(conn, ids=ids, until=until, owner=self._owner)
        jobs = [job for job in prepared.jobs if job.run.id in leased]
        settled = [(run, out) for run, out in prepared.settled if run.id in leased]
        finish = prepared.finish_settled
        pairs = zip(finish.rows, prepared.settled, strict=True)
        rows = [row for row, (run, _) in pairs if run.id in leased]
        run_bulk(conn, Bulk(finish.sql, rows))  # settled runs make no call, so carry no refs
        runs.defer(conn, until=prepared.deferred)
        audit.append_prepared(conn, [r for r in prepared.records if r.run_id in leased])
        return Claim(jobs, settled)

    def _expire_leases(self, conn: sa.Connection, now: datetime) -> None:
        records = [
            AuditRecord(
                "run.lease_expired",
                {"attempt": run.attempts, "note": "worker stopped mid-call; outcome unknown"},
                run.event_id,
                run.incident_id,
                run.id,
            )
            for run in runs.expire_leases(conn, now=now)
        ]
        audit.append(conn, records, self._redactor)

    def _prepare(self, conn: sa.Connection, ids: list[int], now: datetime) -> _Prepared:
        """Contexts for the runs, outcomes for those needing no call, attempt records."""
        if not ids:
            return _Prepared([], [], [], Bulk("", []), [])
        claimed = sorted(runs.by_ids(conn, ids=ids).values(), key=lambda r: r.id)
        found = incidents.by_ids(conn, ids=(r.incident_id for r in claimed))
        parents = runs.by_ids(conn, ids=(r.parent_id for r in claimed if r.parent_id))
        alerts = self._alerts.alerts(conn, {r.event_id for r in claimed})
        wanting = {r.incident_id for r in claimed if self._registry.get(r.action).wants_runs}
        timelines = runs.timelines(conn, incident_ids=wanting)
        jobs: list[Job] = []
        settled: list[Finished] = []
        deferred: list[tuple[int, datetime]] = []
        for stored in claimed:
            run = replace(stored, attempts=stored.attempts + 1)
            incident = found[run.incident_id]
            parent = parents.get(run.parent_id) if run.parent_id else None
            action = self._registry.get(run.action)
            history = [run_summary(r) for r in timelines.get(run.incident_id, ()) if r.id != run.id]
            ctx = context(run, incident, alerts[run.event_id], parent, history)
            early = settle_early(run, incident, action, ctx, now)
            if early is not None:
                self.pacer.release(run.id)
                settled.append((run, early))
            elif (wait := self._wait_for_pace(action, ctx, run.id, now)) is not None:
                deferred.append((run.id, wait))
            else:
                jobs.append(Job(run, ctx))
        settled_rows = outcome_rows(settled, owner=self._owner, now=datetime.now(UTC))
        attempts = [self.attempt_record(job) for job in jobs]
        records = audit.prepare(attempts + settled_rows.records, self._redactor)
        finish = runs.finish(self._engine, settled_rows.rows)
        return _Prepared(jobs, settled, records, finish, deferred)

    def _wait_for_pace(
        self, action: Action, ctx: ActionContext, run_id: int, now: datetime
    ) -> datetime | None:
        pace = action.pace(ctx)
        if pace is None:
            return None
        wait = self.pacer.slot(pace.key, pace.interval, run_id, now)
        if wait is not None:
            self._metrics.paced.labels(ctx.action).inc()
        return wait
