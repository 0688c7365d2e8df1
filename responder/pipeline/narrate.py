"""The log's story of what the pipeline decided, once it is committed: a delivery received,
an incident opened or changed, the playbooks that matched, each action planned, cancelled
or held back and why; every line names its incident. Outcomes are told by `record.count`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from responder.store.audit import AuditRecord

log = structlog.get_logger("responder.narrate")

# The fields each told kind carries, from its audit record's data.
_FIELDS: dict[str, tuple[str, ...]] = {
    "event.received": ("transition", "monitor_id", "title", "actor"),
    "event.ignored": ("reason",),
    "event.late": ("reason",),
    "incident.opened": ("to", "title"),
    "incident.updated": ("from", "to", "transition"),
    "incident.acknowledged": ("from", "to", "actor"),
    "incident.resolved": ("from", "to", "resolution", "actor"),
    "playbooks.matched": ("new", "not_routed"),
    "run.planned": ("action", "playbook", "step", "parent_id"),
    "run.cancelled": ("action", "reason"),
    "run.suppressed": ("action", "reason"),
}


def narrate(records: Sequence[AuditRecord]) -> None:
    """Log the told kinds among `records` (one batch's, committed), in order."""
    incident_of = {
        r.event_id: r.incident_id
        for r in records
        if r.event_id is not None and r.incident_id is not None
    }
    for record in records:
        fields = _FIELDS.get(record.kind)
        if fields is None:
            continue
        incident_id = record.incident_id
        if incident_id is None and record.event_id is not None:
            incident_id = incident_of.get(record.event_id)  # the delivery's, decided later
        ids = {"incident_id": incident_id, "event_id": record.event_id, "run_id": record.run_id}
        known = {name: value for name, value in ids.items() if value is not None}
        log.info(record.kind, **known, **_picked(record.data, fields))


def _picked(data: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    # "event" is structlog's own key for the line's name: a field so named would clash.
    return {
        ("from_status" if name == "from" else name): data[name]
        for name in fields
        if data.get(name) not in (None, "", [])
    }
