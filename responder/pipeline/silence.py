"""Silence stage: an alert a silence or maintenance window covers runs no playbook.

The event is still stored, correlated and folded into its incident (opened, updated,
resolved as usual) and audited `event.silenced`, naming the silence or window, its end and
its reason; no playbook step is planned for it and the incident's follow-ups (thread
replies, reminders) are suppressed, each audited. A recovery's follow-ups still go: they
close what was opened before the silence began.

While it fires under a silence, the incident keeps when that silence ends
(`incident.silenced_until`, with `silence_id`): a durable timer. When it runs out (or the
silence is expired early) the timer sweep stores an event of our own (cause `unsilenced`);
if no silence covers the incident then, its playbooks run as for a new incident, once.
Placed after the lifecycle stage, so that the incident exists to be audited and held, and
before the match stage, which then plans nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from responder.domain import Alert
from responder.pipeline.silencebook import Covered, SilenceBook
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.maintenance import MaintenanceWindow, covering
from responder.playbooks.matcher import silence_mismatch
from responder.records import IncidentRecord
from responder.store.audit import AuditRecord

UNSILENCED = "unsilenced"  # Alert.cause of the timer's event when a silence is over


def covered(
    alert: Alert, at: datetime, book: SilenceBook, windows: Sequence[MaintenanceWindow]
) -> Covered | None:
    """What covers `alert` at `at`, if anything: the silence or window ending last."""
    found = [
        Covered(s.ended_at, s.reason, silence_id=s.id, author=s.author)
        for s in book.all()
        if s.covers(at) and silence_mismatch(s.matchers, alert) is None
    ]
    found += [
        Covered(ends, window.reason, window=window.name)
        for window, ends in covering(windows, at)
        if silence_mismatch(window.matchers, alert) is None
    ]
    return max(found, key=lambda c: (c.until, c.silence_id or 0), default=None)


def unsilence_gone(incident: IncidentRecord, at: datetime, book: SilenceBook) -> str | None:
    """Why an `unsilenced` timer's event dated `at` no longer applies, if it does not (the
    correlate stage drops it then)."""
    if incident.silenced_until is None:
        if incident.acknowledged_at is not None:
            return f"acknowledged by {incident.acknowledged_by or 'someone'} during the silence"
        return "the incident is no longer held by a silence"
    ended = incident.silenced_until
    if incident.silence_id is not None:
        silence = book.get(incident.silence_id)
        if silence is not None:
            ended = min(ended, silence.ended_at)
    if ended > at:
        return "its silence was extended: it is not over yet"
    return None


class SilenceStage:
    def __init__(self, windows: Callable[[], Sequence[MaintenanceWindow]] = tuple) -> None:
        self._windows = windows  # the running set's, read per event: a reload swaps them

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        incident, alert = item.incident, item.alert
        assert incident is not None, "lifecycle runs first"
        if alert.cause is None or alert.cause == UNSILENCED:
            # A delivery counts by when we handle it; our own event by its due time.
            at = batch.now if alert.cause is None else alert.date
            found = covered(alert, at, batch.silences, self._windows())
            if found is not None:
                self._silence(item, incident, found)
            elif incident.silenced_until is not None and incident.is_open:
                self._release(item, incident)
        if item.incident is not None and not item.incident.is_open:
            item.incident = _unheld(item.incident)  # resolved: nothing left to run later
        return True

    def _silence(self, item: EventItem, incident: IncidentRecord, found: Covered) -> None:
        item.silenced = found
        data = {**found.record(), "transition": item.alert.transition}
        if item.alert.cause == UNSILENCED:
            data["note"] = "still silenced when the earlier silence ended"
        if incident.is_open:
            item.incident = replace(
                incident, silenced_until=found.until, silence_id=found.silence_id
            )
        if not item.alert.transition.is_recovery:
            item.quiet = f"silenced by {found.label} until {found.until.isoformat()}"
            item.notes.clear()
            item.refresh_root = False
        item.records.append(AuditRecord("event.silenced", data, item.event.id, incident.id))

    def _release(self, item: EventItem, incident: IncidentRecord) -> None:
        held = "silence" if incident.silence_id is not None else "maintenance window"
        item.released = f"the {held} ended while it still fires: its playbooks run now"
        data: dict[str, Any] = {"reason": item.released, "silence_id": incident.silence_id}
        data["was_until"] = incident.silenced_until
        item.incident = _unheld(incident)
        item.records.append(AuditRecord("incident.unsilenced", data, item.event.id, incident.id))


def _unheld(incident: IncidentRecord) -> IncidentRecord:
    if incident.silenced_until is None and incident.silence_id is None:
        return incident
    return replace(incident, silenced_until=None, silence_id=None)
