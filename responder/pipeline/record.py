"""Runner, third part: write what finished calls amount to (run state, result, incident
references, audit) in one transaction per round, and say what the thread should hear."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog

from responder.domain import RunState
from responder.metrics import Metrics
from responder.pipeline.notices import Notice, NoticeRules
from responder.pipeline.outcomes import Finished, Outcome
from responder.records import RunRecord
from responder.redact import Redactor
from responder.store import audit, incidents, runs
from responder.store.audit import AuditRecord
from responder.store.db import run_bulk, transaction

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutcomeRows:
    rows: list[dict[str, Any]]  # run updates, as `runs.finish` takes them
    refs: dict[int, dict[str, Any]]  # new vendor references, by incident
    records: list[AuditRecord]
    names: dict[int, dict[str, str]]  # how vendors name each incident (`ActionResult.names`)


def outcome_rows(finished: Sequence[Finished], *, owner: str, now: datetime) -> OutcomeRows:
    """Row updates, incident references and audit records for finished runs."""
    out = OutcomeRows([], {}, [], {})
    for run, outcome in finished:
        out.rows.append(
            {
                "id": run.id,
                "was_state": RunState.RUNNING.value,
                "was_owner": owner,
                "lease_until": None,
                "lease_owner": None,
                "uncertain": False,
                "state": outcome.state.value,
                "result": outcome.result,
                "last_error": outcome.error,
                "not_before": outcome.not_before or run.not_before,
                "finished_at": now if outcome.state.is_final else None,
            }
        )
        if outcome.refs:
            out.refs.setdefault(run.incident_id, {}).update(outcome.refs)
        if outcome.names:
            out.names.setdefault(run.incident_id, {}).update(outcome.names)
        data: dict[str, Any] = {"action": run.action, "attempt": run.attempts}
        data.update(state=outcome.state, result=outcome.result, error=outcome.error)
        out.records.append(AuditRecord(outcome.kind, data, run.event_id, run.incident_id, run.id))
    return out


def count(metrics: Metrics, run: RunRecord, outcome: Outcome) -> None:
    """Metrics and a log line for an outcome, once it is committed."""
    if outcome.state.is_final:
        metrics.runs.labels(run.action, outcome.state.value).inc()
        waited = (datetime.now(UTC) - run.scheduled_at).total_seconds()
        metrics.run_delay.labels(run.action).observe(max(waited, 0.0))
    elif outcome.kind == "run.retry":
        metrics.retries.labels(run.action).inc()
    reason = (outcome.result or {}).get("reason") if outcome.kind == "run.skipped" else None
    log.info(
        outcome.kind,
        incident_id=run.incident_id,
        run_id=run.id,
        action=run.action,
        attempt=run.attempts,
        **({"reason": reason} if reason else {}),
        **({"error": outcome.error} if outcome.error else {}),
    )


class Recorder:
    def __init__(
        self,
        engine: sa.Engine,
        redactor: Redactor,
        metrics: Metrics,
        owner: str,
        rules: NoticeRules | None,
    ) -> None:
        self._engine = engine
        self._redactor = redactor
        self._metrics = metrics
        self._owner = owner
        self._rules = rules

    def record(self, finished: Sequence[Finished]) -> list[Notice]:
        """Write these outcomes; returns what the incidents' threads should be told."""
        if not finished:
            return []
        now = datetime.now(UTC)
        out = outcome_rows(finished, owner=self._owner, now=now)
        prepared = audit.prepare(out.records, self._redactor)
        bulk = runs.finish(self._engine, out.rows)
        with transaction(self._engine) as conn:
            run_bulk(conn, bulk)
            changes = incidents.merge_refs(conn, added=out.refs)
            for incident_id, names in sorted(out.names.items()):
                incidents.add_refs(conn, incident_id=incident_id, names=names, now=now)
            audit.append_prepared(conn, prepared)
        for run, outcome in finished:
            count(self._metrics, run, outcome)
        if self._rules is None:
            return []
        return self._rules.notices(finished, changes)
