"""Match stage: which playbooks an event selects, and which of them are new to its incident.

A playbook's steps run once per incident, so one that already ran for it (its steps are
among the incident's runs) is matched but not planned again.
"""

from __future__ import annotations

from responder.pipeline import lifecycle
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.matcher import select
from responder.store.audit import AuditRecord


class MatchStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        incident = item.incident
        assert incident is not None, "lifecycle runs first"
        item.matched = select(batch.playbooks, item.alert, lifecycle.context(incident))
        earlier = [] if item.opened else batch.earlier.get(incident.id, [])
        already = {run.playbook for run in earlier}
        item.fresh = [p for p in item.matched if p.name not in already]
        item.records.append(
            AuditRecord(
                "playbooks.matched",
                {
                    "matched": [{"name": p.name, "hash": p.content_hash} for p in item.matched],
                    "new": [p.name for p in item.fresh],
                    "already_ran": [p.name for p in item.matched if p not in item.fresh],
                },
                item.event.id,
                incident.id,
            )
        )
        return True
