"""Correlate stage: which incident an alert belongs to (`IncidentIndex`). An alert whose cycle
already ended, or a recovery for nothing open, is dropped here: it stops the chain and is
recorded as ignored.
"""

from __future__ import annotations

from responder.pipeline.stages import Batch, EventItem
from responder.store.audit import AuditRecord


class CorrelateStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        found = batch.incidents.correlate(item.alert, item.event.id)
        item.correlation = found
        if not (found.late or (found.incident is None and item.alert.transition.is_recovery)):
            return True
        reason = (
            "late delivery for a cycle that already recovered"
            if found.late
            else "recovery for an incident we never saw open"
        )
        incident_id = found.incident.id if found.incident else None
        item.records.append(
            AuditRecord("event.ignored", {"reason": reason}, item.event.id, incident_id)
        )
        item.outcome = {
            "ignored": reason,
            "playbooks": [],
            "actions": [],
            "incident_id": incident_id,
        }
        return False
