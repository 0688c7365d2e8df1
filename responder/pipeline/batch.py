"""One batch of processed events, gathered for its single write: the incidents opened and
changed, the runs planned and cancelled, the groups and storms changed, each event's result
and the audit records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from responder.domain import EventState, RunState, Transition
from responder.pipeline.incidents import IncidentIndex
from responder.pipeline.jobs import Taken
from responder.pipeline.plan import CALLED_OFF_REASON, WITHDRAWN_REASON
from responder.pipeline.stages import Batch, EventItem
from responder.pipeline.stormbook import StormBook
from responder.records import IncidentRecord, RunRecord
from responder.redact import Redactor
from responder.store import audit, events, groups, incidents, runs, storms
from responder.store.audit import AuditRecord, PreparedRecord
from responder.store.db import Bulk, run_bulk
from responder.store.events import EventResult

CANCELLED_REASON = "cancelled: the incident recovered before this delayed step ran"


class BatchWrite:
    def __init__(self, engine: sa.Engine, redactor: Redactor, now: datetime) -> None:
        self._engine = engine
        self._index: IncidentIndex | None = None  # the batch's, whose changed groups it writes
        self._storms: StormBook | None = None  # the batch's, whose changed storms it writes
        self._redactor = redactor
        self.now = now
        self.opened: dict[int, IncidentRecord] = {}
        self.changed: dict[int, IncidentRecord] = {}  # existing incidents to write back
        self.runs: list[RunRecord] = []
        self.cancelled: list[int] = []
        self.withdrawn: list[int] = []
        self.called_off: list[int] = []
        self.results: list[EventResult] = []
        self.records: list[AuditRecord] = []
        self.taken: list[Taken] = []
        self.failed = 0
        self._bulks: list[Bulk] = []
        self._prepared: list[PreparedRecord] = []

    def keep(self, item: EventItem, batch: Batch) -> None:
        """Fold a computed event in, where later events of the batch can see it."""
        incident = item.incident
        if incident is not None:
            if item.opened or incident.id in self.opened:
                self.opened[incident.id] = incident
            else:
                self.changed[incident.id] = incident
            batch.incidents.remember(incident)
            primary = batch.earlier.setdefault(incident.id, [])
            primary.extend(run for run in item.runs if run.is_primary)
            for run in [*item.cancelled, *item.called_off]:
                # Later events of this batch must not cancel or follow it up again.
                primary[primary.index(run)] = _cancelled(run, self.now)
        self.cancelled.extend(run.id for run in item.cancelled)
        self.called_off.extend(run.id for run in item.called_off)
        self.withdrawn.extend(run.id for run in item.withdrawn)
        self._index = batch.incidents
        if item.group is not None:
            batch.incidents.keep_group(item.group)
        self._keep_storms(item, batch)
        if incident is not None:
            if item.withdrawn:
                batch.queued.pop(incident.id, None)  # nothing left for a later recovery
            reminders = [r for r in item.runs if not r.is_primary and _is_repeat(r.transition)]
            if reminders:  # a recovery later in this batch withdraws these too
                batch.queued.setdefault(incident.id, []).extend(reminders)
        self.runs.extend(item.runs)
        self.records.extend(item.records)
        self.taken.extend(item.taken)
        incident_id = incident.id if incident else None
        outcome = item.outcome if item.outcome is not None else _outcome(item)
        if incident_id is None:
            incident_id = outcome.get("incident_id")
        self.results.append(
            EventResult(
                id=item.event.id,
                state=EventState.PROCESSED.value,
                incident_id=incident_id,
                outcome=outcome,
                processed_at=self.now,
                attempts=item.event.attempts + 1,
            )
        )

    def _keep_storms(self, item: EventItem, batch: Batch) -> None:
        self._storms = batch.storms
        batch.storms.took(item.storms.values(), (run.id for run in item.runs), item.refreshed)

    def fail(self, result: EventResult, data: Mapping[str, Any]) -> None:
        self.failed += 1
        self.records.append(AuditRecord("event.failed", data, result.id))
        self.results.append(result)

    def prepare(self) -> None:
        """Everything the write will send, in the driver's terms, before any lock is taken."""
        if self.opened:
            self._bulks.append(incidents.insert(self._engine, list(self.opened.values())))
        if self.changed:
            ordered = [self.changed[i] for i in sorted(self.changed)]
            self._bulks.append(incidents.update(self._engine, ordered))
        refreshed = dict(self._storms.params) if self._storms is not None else {}
        if refreshed:
            # A summary update planned by this very batch is inserted with its newest figures.
            self.runs = [
                replace(run, params=refreshed.pop(run.id)) if run.id in refreshed else run
                for run in self.runs
            ]
        if self.runs:
            self._bulks.append(runs.insert(self._engine, self.runs))
        if refreshed:
            rows = [{"id": run_id, "params": params} for run_id, params in refreshed.items()]
            self._bulks.append(runs.refresh_params(self._engine, rows))
        if self._storms is not None and self._storms.changed:
            self._bulks.append(storms.upsert(self._engine, self._storms.changed_storms()))
        if self._index is not None:
            index = self._index
            changed = [index.groups[key] for key in sorted(index.changed_groups)]
            new = [g for g in changed if g.key not in index.stored_groups]
            old = [g for g in changed if g.key in index.stored_groups]
            if new:
                self._bulks.append(groups.insert(self._engine, new))
            if old:
                self._bulks.append(groups.update(self._engine, old))
        self._bulks.append(events.record_results(self._engine, self.results))
        self._prepared = audit.prepare(self.records, self._redactor)

    def apply(self, conn: sa.Connection) -> None:
        """The whole batch in a handful of bulk statements."""
        for bulk in self._bulks:
            run_bulk(conn, bulk)
        wanted = {
            CANCELLED_REASON: self.cancelled,
            WITHDRAWN_REASON: self.withdrawn,
            CALLED_OFF_REASON: self.called_off,
        }
        missed: set[int] = set()
        for reason, ids in wanted.items():
            done = runs.cancel_pending(conn, ids=ids, now=self.now, reason=reason)
            missed |= set(ids) - done
        audit.append_prepared(conn, self._told(missed))

    def _told(self, missed: set[int]) -> list[PreparedRecord]:
        """The audit records, true to what the write did: a run a worker leased between the
        decision and this write was not cancelled, and the record says it went on."""
        if not missed:
            return self._prepared
        dropped = {
            r.run_id: r for r in self._prepared if r.kind == "run.cancelled" and r.run_id in missed
        }
        kept = [r for r in self._prepared if r.run_id not in dropped or r.kind != "run.cancelled"]
        late = [
            AuditRecord(
                "run.not_cancelled",
                {"reason": "it had already started when the cancellation was written"},
                record.event_id,
                record.incident_id,
                run_id,
            )
            for run_id, record in sorted(dropped.items(), key=lambda pair: pair[0] or 0)
        ]
        return kept + audit.prepare(late, self._redactor)


def _outcome(item: EventItem) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "playbooks": [p.name for p in item.matched],
        "actions": [{"id": r.id, "action": r.action, "state": r.state} for r in item.runs],
    }
    if item.errors:
        outcome["errors"] = item.errors
    return outcome


def _is_repeat(transition: str) -> bool:
    return Transition(transition).is_repeat


def _cancelled(run: RunRecord, now: datetime) -> RunRecord:
    return replace(run, state=RunState.CANCELLED.value, finished_at=now)
