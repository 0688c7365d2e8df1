"""New action runs: their record as planned, their lane, and the audit record of planning."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from responder.domain import RunState
from responder.records import RunRecord
from responder.store.audit import AuditRecord


def lane(incident_id: int, action: str) -> str:
    # One lane per incident and vendor: a slow Slack never holds back a page, while a
    # vendor's own calls (post before reply, trigger before resolve) stay in order.
    return f"{incident_id}:{action.split('.', 1)[0]}"


def new_run(
    *,
    run_id: int,
    incident_id: int,
    event_id: int,
    transition: str,
    action: str,
    due: datetime,
    now: datetime,
    max_age: timedelta,
    playbook: str,
    playbook_hash: str,
    step: int,
    idempotency_key: str,
    params: Mapping[str, Any],
    parent_id: int | None = None,
    condition: str | None = None,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        incident_id=incident_id,
        event_id=event_id,
        parent_id=parent_id,
        playbook=playbook,
        playbook_hash=playbook_hash,
        step=step,
        action=action,
        params=dict(params),
        condition=condition,
        transition=transition,
        lane=lane(incident_id, action),
        state=RunState.PENDING.value,
        idempotency_key=idempotency_key[:128],
        attempts=0,
        uncertain=False,
        scheduled_at=due,
        not_before=due,
        expires_at=due + max_age,
        lease_until=None,
        lease_owner=None,
        last_error=None,
        result=None,
        created_at=now,
        finished_at=None,
    )


def step_key(incident_id: int, playbook: str, step: int) -> str:
    """The idempotency key of a playbook step for an incident: it runs once per incident.

    Keys are stored in 128 characters; a playbook name long enough to be cut there is
    replaced by its digest, so that its steps keep keys of their own."""
    key = f"p:{incident_id}:{playbook}:{step}"
    if len(key) <= 128:
        return key
    digest = hashlib.sha256(playbook.encode()).hexdigest()[:40]
    return f"p:{incident_id}:{digest}:{step}"


def run_records(runs: list[RunRecord], kind: str) -> list[AuditRecord]:
    return [
        AuditRecord(
            kind if run.state != RunState.FAILED else "run.failed",
            {
                "action": run.action,
                "playbook": run.playbook,
                # The content hash of the playbook that planned it (a follow-up: its
                # parent's), so the audit log says which version of a reloaded file acted.
                "playbook_hash": run.playbook_hash,
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
