"""Executes action runs: claim with a lease, call the vendor once, record, retry or finish.

Runs of one lane (incident + vendor) go in order; everything else runs in parallel on a
thread pool. Claiming is one transaction for a whole batch and also audits each attempt
before its call, so a worker that dies mid-call leaves an attempt without an outcome: its
lease expires, the run is marked uncertain and the next attempt asks the vendor what exists
before creating anything again. Outcomes are written back in groups, one transaction each.
"""

from __future__ import annotations

import functools
import os
import queue
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

from responder.actions import Action, ActionContext, ActionError, Registry
from responder.domain import Alert, RunState
from responder.intake.datadog import normalise
from responder.metrics import Metrics
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.notices import ROOT_POST, Notice, new_links
from responder.pipeline.outcomes import (
    Outcome,
    context,
    from_error,
    from_result,
    run_summary,
    settle_early,
)
from responder.pipeline.pacing import Pacer
from responder.redact import Redactor
from responder.store import audit
from responder.store.audit import AuditRecord, PreparedRecord
from responder.store.db import Bulk, bulk_update, reader, run_bulk, transaction
from responder.store.tables import ActionRun, AlertEvent, Incident

log = structlog.get_logger(__name__)
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_EVENTS = AlertEvent.__table__  # type: ignore[attr-defined]
_SET_REFS = (
    sa.update(_INCIDENTS)
    .where(_INCIDENTS.c.id == sa.bindparam("b_id"))
    .values(refs=sa.bindparam("refs"))
)
_DEFER = (
    sa.update(_RUNS)
    .where(_RUNS.c.id == sa.bindparam("b_id"), _RUNS.c.state == RunState.PENDING.value)
    .values(not_before=sa.bindparam("not_before"))
)
_FINISH_VALUES = (
    "state",
    "result",
    "last_error",
    "not_before",
    "finished_at",
    "lease_until",
    "lease_owner",
    "uncertain",
)
# Only the lease holder records an outcome: a run whose lease expired belongs to another.
_FINISH_WHERE = {"id": "id", "state": "was_state", "lease_owner": "was_owner"}


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed run, ready to call: its row as claimed and the context the action sees."""

    run: dict[str, Any]
    ctx: ActionContext


@dataclass(frozen=True, slots=True)
class _Prepared:
    jobs: list[Job]
    settled: list[tuple[dict[str, Any], Outcome]]
    records: list[PreparedRecord]  # audit records of attempts and settled runs
    finish_settled: Bulk  # the settled runs' final states, one row each, in `settled` order
    deferred: list[dict[str, Any]]  # {"b_id", "not_before"}: due, but over a vendor's pace


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[Job]  # leased, to be called
    settled: int  # claimed and finished at once (no credentials, expired, condition false)


class ActionRunner:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        redactor: Redactor,
        metrics: Metrics,
        threads: int = 8,
        lease: timedelta = timedelta(seconds=60),
        contexts: AlertContexts | None = None,
    ) -> None:
        self._engine = engine
        self._contexts = contexts or AlertContexts()
        self._registry = registry
        self._redactor = redactor
        self._metrics = metrics
        self._lease_for = lease
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="action")
        self._pacer = Pacer()
        self._notices: list[Notice] = []
        # Calls in flight, queued ones included: a few per thread keeps claims batched while
        # every queued call still starts well within its lease (calls time out in seconds).
        self._capacity = threads * 4
        self._inflight = 0
        # Taken over from the pipeline, waiting for its commit: calls to start, and runs
        # settled at once (to count in the metrics).
        self._taken: list[Job] = []
        self._taken_settled: list[tuple[dict[str, Any], Outcome]] = []
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[tuple[dict[str, Any], Outcome]] = queue.SimpleQueue()
        self.on_finished: Callable[[], None] = lambda: None  # wakes the loop to record

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self.record()

    @property
    def idle(self) -> bool:
        with self._lock:
            busy = self._inflight > 0 or not self._done.empty()
        return not busy and not self._pacer.waiting(datetime.now(UTC))

    def take_over(
        self,
        run: dict[str, Any],
        incident: dict[str, Any],
        alert: Alert,
        now: datetime,
    ) -> list[AuditRecord]:
        """Claim a run as it is planned, so that it needs no claim round of its own.

        Called by the pipeline for a run that is due now and first in its lane: the run row
        is changed in place (leased to this runner, or settled at once when it needs no
        call) before it is inserted; after the insert commits, `start_taken` calls it. This
        is what keeps the time from webhook to Slack short. Returns the audit records.
        """
        action = self._registry.get(run["action"])
        if action.wants_runs:
            return []  # it needs the incident's timeline, which only a claim reads
        # Everything that can fail comes first, so a failure leaves the run as it was.
        ctx = context({**run, "attempts": 1}, incident, alert, None)
        early = settle_early(run, incident, action, ctx, now)
        if early is None and self._wait_for_pace(action, ctx, run["id"], now) is not None:
            return []  # over the vendor's pace: the claim that finds it books its turn
        if early is not None:
            row = self._outcome_rows([({**run, "attempts": 1}, early)])[0][0]
            data: dict[str, Any] = {"action": run["action"], "attempt": 1}
            data.update(state=early.state, result=early.result, error=early.error)
            record = AuditRecord(early.kind, data, run["event_id"], run["incident_id"], run["id"])
            run.update({key: row[key] for key in _FINISH_VALUES}, attempts=1)
            self._taken_settled.append((run, early))
            return [record]
        leased = {
            **run,
            "attempts": 1,
            "state": RunState.RUNNING.value,
            "lease_until": now + self._lease_for,
            "lease_owner": self._owner,
        }
        job = Job(leased, ctx)
        record = self._attempt_record(job)
        run.update(leased)
        self._taken.append(job)
        return [record]

    def start_taken(self, committed: bool) -> None:
        """Start the runs taken over since the last call, once their rows are committed."""
        jobs, self._taken = self._taken, []
        settled, self._taken_settled = self._taken_settled, []
        if not committed:
            return  # the rows never landed: the runs will be planned again
        for run, outcome in settled:
            self._count(run, outcome)
        for job in jobs:
            with self._lock:
                self._inflight += 1
            self._pool.submit(self._call, job)

    def dispatch(self, rounds: int = 20) -> int:
        """Record finished calls, claim what is due and start it; returns the progress made."""
        progress = self.record()
        for _ in range(rounds):  # bounded, so that new events get their turn
            with self._lock:
                free = self._capacity - self._inflight
            if free <= 0:
                break
            claim = self.claim(free)
            for job in claim.jobs:
                with self._lock:
                    self._inflight += 1
                self._pool.submit(self._call, job)
            progress += len(claim.jobs) + claim.settled
            if not claim.jobs and not claim.settled:
                break
        return progress

    def claim(self, limit: int) -> Claim:
        """Lease up to `limit` due runs; audit their attempts; settle those needing no call.

        On SQLite the runs are read and prepared before the write lock is taken (this
        process is the file's only runner); on PostgreSQL they are locked while prepared,
        with SKIP LOCKED so that several workers share them.
        """
        now = datetime.now(UTC)
        if self._engine.dialect.name == "sqlite":
            with reader(self._engine).connect() as conn:
                expired = conn.execute(_EXPIRED, {"now": now}).first() is not None
            if expired:
                with transaction(self._engine) as conn:
                    audit.append(conn, self._expire_leases(conn, now), self._redactor)
            with reader(self._engine).connect() as conn:
                ids = _due_ids(conn, now, limit)
                if not ids:
                    # Most rounds find nothing due: no write lock for them, which the
                    # intake's next commit would otherwise wait behind.
                    return Claim([], 0)
                prepared = self._prepare(conn, ids, now)
            with transaction(self._engine) as conn:
                return self._lease(conn, prepared, now)
        with transaction(self._engine) as conn:
            audit.append(conn, self._expire_leases(conn, now), self._redactor)
            ids = _due_ids(conn, now, limit)
            return self._lease(conn, self._prepare(conn, ids, now), now)

    def record(self) -> int:
        """Write every outcome that finished calls left behind, in one transaction."""
        finished: list[tuple[dict[str, Any], Outcome]] = []
        while True:
            try:
                finished.append(self._done.get_nowait())
            except queue.Empty:
                break
        if not finished:
            return 0
        rows, refs, records = self._outcome_rows(finished)
        prepared = audit.prepare(records, self._redactor)
        bulk = bulk_update(self._engine, _RUNS, _FINISH_VALUES, _FINISH_WHERE, rows)
        with transaction(self._engine) as conn:
            linked = _write_outcomes(conn, bulk, refs)
            audit.append_prepared(conn, prepared)
        for run, outcome in finished:
            self._count(run, outcome)
        self._notices.extend(_notices(finished, linked))
        return len(finished)

    def take_notices(self) -> list[Notice]:
        """What finished runs want told in their incident's thread, since the last call."""
        notices, self._notices = self._notices, []
        return notices

    def _lease(self, conn: sa.Connection, prepared: _Prepared, now: datetime) -> Claim:
        """Mark the prepared runs running (those still pending) and record what is known."""
        ids = [job.run["id"] for job in prepared.jobs] + [r["id"] for r, _ in prepared.settled]
        leased: set[int] = set()
        if ids:
            leased = set(
                conn.execute(
                    sa.update(_RUNS)
                    .where(_RUNS.c.id.in_(ids), _RUNS.c.state == RunState.PENDING.value)
                    .values(
                        state=RunState.RUNNING.value,
                        lease_until=now + self._lease_for,
                        lease_owner=self._owner,
                        attempts=_RUNS.c.attempts + 1,
                    )
                    .returning(_RUNS.c.id)
                ).scalars()
            )
        jobs = [job for job in prepared.jobs if job.run["id"] in leased]
        settled = [(run, out) for run, out in prepared.settled if run["id"] in leased]
        finish = prepared.finish_settled
        pairs = zip(finish.rows, prepared.settled, strict=True)
        rows = [row for row, (run, _) in pairs if run["id"] in leased]
        run_bulk(conn, Bulk(finish.sql, rows))  # settled runs make no call, so carry no refs
        if prepared.deferred:
            conn.execute(_DEFER, prepared.deferred)
        audit.append_prepared(conn, [r for r in prepared.records if r.run_id in leased])
        for run, outcome in settled:
            self._count(run, outcome)
        return Claim(jobs, len(settled))

    def _expire_leases(self, conn: sa.Connection, now: datetime) -> list[AuditRecord]:
        expired = conn.execute(
            sa.update(_RUNS)
            .where(_RUNS.c.state == RunState.RUNNING.value, _RUNS.c.lease_until < now)
            .values(state=RunState.PENDING.value, uncertain=True, not_before=now, lease_owner=None)
            .returning(_RUNS.c.id, _RUNS.c.incident_id, _RUNS.c.event_id, _RUNS.c.attempts)
        ).all()
        return [
            AuditRecord(
                "run.lease_expired",
                {"attempt": attempts, "note": "worker stopped mid-call; outcome unknown"},
                event_id,
                incident_id,
                run_id,
            )
            for run_id, incident_id, event_id, attempts in expired
        ]

    def _prepare(self, conn: sa.Connection, ids: list[int], now: datetime) -> _Prepared:
        """Contexts for the runs, outcomes for those needing no call, attempt records."""
        if not ids:
            return _Prepared([], [], [], Bulk("", []), [])
        runs = [
            dict(r) for r in conn.execute(sa.select(_RUNS).where(_RUNS.c.id.in_(ids))).mappings()
        ]
        incidents = _by_id(conn, _INCIDENTS, {r["incident_id"] for r in runs})
        parents = _by_id(conn, _RUNS, {r["parent_id"] for r in runs if r["parent_id"]})
        alerts = self._alerts(conn, {r["event_id"] for r in runs})
        timelines = _timelines(
            conn, {r["incident_id"] for r in runs if self._registry.get(r["action"]).wants_runs}
        )
        jobs: list[Job] = []
        settled: list[tuple[dict[str, Any], Outcome]] = []
        deferred: list[dict[str, Any]] = []
        for run in sorted(runs, key=lambda r: r["id"]):
            run["attempts"] += 1
            incident = incidents[run["incident_id"]]
            parent = parents.get(run["parent_id"]) if run["parent_id"] else None
            action = self._registry.get(run["action"])
            history = [r for r in timelines.get(run["incident_id"], ()) if r["id"] != run["id"]]
            ctx = context(
                run, incident, alerts[run["event_id"]], parent, [run_summary(r) for r in history]
            )
            early = settle_early(run, incident, action, ctx, now)
            if early is not None:
                self._pacer.release(run["id"])
                settled.append((run, early))
            elif (wait := self._wait_for_pace(action, ctx, run["id"], now)) is not None:
                deferred.append({"b_id": run["id"], "not_before": wait})
            else:
                jobs.append(Job(run, ctx))
        rows, _, settled_records = self._outcome_rows(settled)
        attempts = [self._attempt_record(job) for job in jobs]
        records = audit.prepare(attempts + settled_records, self._redactor)
        finish = bulk_update(self._engine, _RUNS, _FINISH_VALUES, _FINISH_WHERE, rows)
        return _Prepared(jobs, settled, records, finish, deferred)

    def _wait_for_pace(
        self, action: Action, ctx: ActionContext, run_id: int, now: datetime
    ) -> datetime | None:
        pace = action.pace(ctx)
        if pace is None:
            return None
        wait = self._pacer.slot(pace.key, pace.interval, run_id, now)
        if wait is not None:
            self._metrics.paced.labels(ctx.action).inc()
        return wait

    def _alerts(self, conn: sa.Connection, event_ids: set[int]) -> dict[int, Alert]:
        alerts = self._contexts.take(event_ids)
        missing = sorted(event_ids - alerts.keys())
        if missing:
            query = sa.select(_EVENTS.c.id, _EVENTS.c.payload, _EVENTS.c.received_at)
            for event_id, payload, received_at in conn.execute(
                query.where(_EVENTS.c.id.in_(missing))
            ):
                alert = normalise(orjson.loads(payload), received_at)
                alerts[event_id] = alert
                self._contexts.put(event_id, alert)
        return alerts

    def _attempt_record(self, job: Job) -> AuditRecord:
        run = job.run
        request = dict(self._registry.get(run["action"]).describe(job.ctx))
        data: dict[str, Any] = {"action": run["action"], "attempt": run["attempts"]}
        data["request"] = request
        if job.ctx.uncertain:
            data["uncertain"] = "an earlier attempt has no recorded outcome; checking first"
        return AuditRecord("run.attempt", data, run["event_id"], run["incident_id"], run["id"])

    def _call(self, job: Job) -> None:
        action = self._registry.get(job.run["action"])
        started = time.monotonic()
        try:
            outcome = from_result(action.execute(job.ctx), datetime.now(UTC))
        except ActionError as err:
            error = self._redactor.redact_text(err.message)[:2000]
            outcome = from_error(job.run, err, error, datetime.now(UTC))
        except Exception as exc:  # an adapter bug: fail visibly rather than retry for hours
            error = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
            outcome = Outcome(
                RunState.FAILED, error=f"unexpected error: {error}", kind="run.failed"
            )
        self._metrics.run_latency.labels(job.run["action"]).observe(time.monotonic() - started)
        self._done.put((job.run, outcome))
        with self._lock:
            self._inflight -= 1
        self.on_finished()

    def _outcome_rows(
        self, finished: list[tuple[dict[str, Any], Outcome]]
    ) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]], list[AuditRecord]]:
        """Row updates, incident references and audit records for finished runs."""
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        refs: dict[int, dict[str, Any]] = {}
        records: list[AuditRecord] = []
        for run, outcome in finished:
            rows.append(
                {
                    "id": run["id"],
                    "was_state": RunState.RUNNING.value,
                    "was_owner": self._owner,
                    "lease_until": None,
                    "lease_owner": None,
                    "uncertain": False,
                    "state": outcome.state.value,
                    "result": outcome.result,
                    "last_error": outcome.error,
                    "not_before": outcome.not_before or run["not_before"],
                    "finished_at": now if outcome.state.is_final else None,
                }
            )
            if outcome.refs:
                refs.setdefault(run["incident_id"], {}).update(outcome.refs)
            data: dict[str, Any] = {"action": run["action"], "attempt": run["attempts"]}
            data.update(state=outcome.state, result=outcome.result, error=outcome.error)
            records.append(
                AuditRecord(outcome.kind, data, run["event_id"], run["incident_id"], run["id"])
            )
        return rows, refs, records

    def _count(self, run: dict[str, Any], outcome: Outcome) -> None:
        if outcome.state.is_final:
            self._metrics.runs.labels(run["action"], outcome.state.value).inc()
            waited = (datetime.now(UTC) - run["scheduled_at"]).total_seconds()
            self._metrics.run_delay.labels(run["action"]).observe(max(waited, 0.0))
        elif outcome.kind == "run.retry":
            self._metrics.retries.labels(run["action"]).inc()
        log.info(
            outcome.kind,
            run_id=run["id"],
            action=run["action"],
            attempt=run["attempts"],
            error=outcome.error,
        )


# Built once: the claim runs every round, and a statement built afresh each time costs more
# to construct and key for SQLAlchemy's cache than the query costs SQLite to answer.
_NOW = sa.bindparam("now", type_=_RUNS.c.not_before.type)
_EXPIRED = (
    sa.select(_RUNS.c.id)
    .where(_RUNS.c.state == RunState.RUNNING.value, _RUNS.c.lease_until < _NOW)
    .limit(1)
)


@functools.cache
def _due(dialect: str) -> sa.Select[int]:
    """Pending runs that are due and not queued behind an earlier run of their lane."""
    earlier = _RUNS.alias("earlier")
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.lane == _RUNS.c.lane,
            earlier.c.id < _RUNS.c.id,
            earlier.c.state.in_([RunState.PENDING.value, RunState.RUNNING.value]),
            earlier.c.scheduled_at <= _RUNS.c.scheduled_at,
        )
        .exists()
    )
    query = (
        sa.select(_RUNS.c.id)
        .where(_RUNS.c.state == RunState.PENDING.value, _RUNS.c.not_before <= _NOW, ~blocked)
        .order_by(_RUNS.c.not_before, _RUNS.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_RUNS)
    return query


def _due_ids(conn: sa.Connection, now: datetime, limit: int) -> list[int]:
    return list(conn.execute(_due(conn.dialect.name), {"now": now, "limit": limit}).scalars())


def _by_id(conn: sa.Connection, table: sa.Table, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(table).where(table.c.id.in_(sorted(ids)))).mappings()
    return {row["id"]: dict(row) for row in rows}


def _write_outcomes(conn: sa.Connection, bulk: Bulk, refs: dict[int, dict[str, Any]]) -> set[int]:
    """Write outcomes and merge references; returns the incidents that gained a link."""
    run_bulk(conn, bulk)
    if not refs:
        return set()
    query = sa.select(_INCIDENTS.c.id, _INCIDENTS.c.refs).where(_INCIDENTS.c.id.in_(sorted(refs)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # two workers finishing at once must not lose a ref
    merged = []
    linked: set[int] = set()
    for incident_id, current in conn.execute(query).all():
        known = dict(current or {})
        if new_links(known, refs[incident_id]):
            linked.add(incident_id)
        for name, value in refs[incident_id].items():
            earlier = known.get(name)
            if isinstance(earlier, dict) and isinstance(value, dict):
                # What is known stays (the first root post remains the thread); new fields
                # of the same vendor's reference join it (a PagerDuty incident's URL).
                known[name] = {**value, **earlier}
            else:
                known.setdefault(name, value)
        merged.append({"b_id": incident_id, "refs": known})
    conn.execute(_SET_REFS, merged)
    return linked


def _timelines(conn: sa.Connection, incident_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Every run of these incidents, oldest first (for actions that write a timeline)."""
    if not incident_ids:
        return {}
    query = (
        sa.select(_RUNS).where(_RUNS.c.incident_id.in_(sorted(incident_ids))).order_by(_RUNS.c.id)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(query).mappings():
        out.setdefault(row["incident_id"], []).append(dict(row))
    return out


def _notices(finished: list[tuple[dict[str, Any], Outcome]], linked: set[int]) -> list[Notice]:
    notices: list[Notice] = []
    for run, outcome in finished:
        if run["action"] == ROOT_POST and outcome.state is RunState.SUCCEEDED:
            # The thread exists only now: what failed or got linked before it is told now.
            notices.append(
                Notice("root", run["id"], run["incident_id"], run["event_id"], ROOT_POST)
            )
        if run["action"].startswith("slack."):
            continue  # a thread cannot be told that the thread failed
        common = (run["id"], run["incident_id"], run["event_id"], run["action"])
        if outcome.state is RunState.FAILED:
            notices.append(Notice("failed", *common, error=outcome.error))
        elif run["incident_id"] in linked and outcome.refs:
            notices.append(Notice("linked", *common))
    return notices
