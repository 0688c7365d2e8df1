"""Match stage: which playbooks an event selects, and which of them are new to its incident.

A playbook's steps run once per incident, so one that already ran for it (its steps are
among the incident's runs) is matched but not planned again. Routing is decided per
incident, not per alert: a repeat (Renotify, Re-Triggered, ...) of an open incident never
selects playbooks, and once a regular playbook claimed the incident the fallback is out of
the question for it. A timer's event, and a recovery that arrived before its trigger,
select nothing either. Each of these is audited with its reason. An event a silence covers
is matched (and audited so) but plans nothing new; when the silence is over while the
incident fires, the event that says so is routed as a new incident's would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from responder.pipeline import lifecycle
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.matcher import explain
from responder.playbooks.schema import Playbook
from responder.records import IncidentRecord, RunRecord
from responder.store.audit import AuditRecord


class MatchStage:
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        incident = item.incident
        assert incident is not None, "lifecycle runs first"
        earlier = [] if item.opened else batch.earlier.get(incident.id, [])
        reason = _not_routed(item, incident)
        playbooks = batch.playbooks
        if reason is None and _claimed(earlier, playbooks):
            playbooks = [p for p in playbooks if not p.fallback]
        alert = item.alert
        if item.released is not None:
            # Held back by a silence now over: routed as the state it reminds of, or a
            # Renotify would never select a playbook that lists Triggered, and would page
            # nobody for as long as the incident fires.
            alert = replace(alert, transition=alert.transition.state)
        verdicts = explain(playbooks, alert, lifecycle.context(incident)) if reason is None else []
        item.matched = [playbook for playbook, matched, _ in verdicts if matched]
        already = {run.playbook for run in earlier}
        item.fresh = [p for p in item.matched if p.name not in already]
        if item.silenced is not None:
            item.fresh = []  # held back: they run when the silence ends, if it still fires
        data: dict[str, object] = {
            "matched": [{"name": p.name, "hash": p.content_hash} for p in item.matched],
            "new": [p.name for p in item.fresh],
            "already_ran": [p.name for p in item.matched if p not in item.fresh],
        }
        # Why each other playbook did not match (its failing matcher or expression): what a
        # person reading the incident asks first when an expected action never ran.
        if reason is None:
            data["not_matched"] = [
                {"name": p.name, "reason": why} for p, ok, why in verdicts if not ok
            ]
        recovery = item.alert.transition.is_recovery
        if item.silenced is not None:
            data["silenced"] = item.silenced.label
        if item.released is not None:
            data["released"] = item.released
        if reason is not None:
            data["not_routed"] = reason
        elif len(playbooks) < len(batch.playbooks) and not (item.matched or recovery):
            data["fallback"] = "not considered: a playbook already claimed this incident"
        item.records.append(AuditRecord("playbooks.matched", data, item.event.id, incident.id))
        return True


def _not_routed(item: EventItem, incident: IncidentRecord) -> str | None:
    alert = item.alert
    if item.released is not None:
        return None  # held back by a silence that is over: routed as a new incident is
    if alert.actor is not None:
        return f"{alert.cause} by {alert.actor}: a person's answer runs no playbook"
    if alert.cause is not None:
        return f"a {alert.cause} timer's event: it runs no playbook"
    if item.opened and not incident.is_open:
        return "the recovery arrived before its trigger: nothing to undo"
    if not item.opened and alert.transition.is_repeat:
        return "a repeat of an open incident: playbooks run once per incident"
    return None


def _claimed(earlier: Sequence[RunRecord], playbooks: Sequence[Playbook]) -> bool:
    """Whether a regular (not fallback) playbook already ran steps for the incident."""
    fallbacks = {playbook.name for playbook in playbooks if playbook.fallback}
    return any(run.playbook not in fallbacks for run in earlier)
