"""The alerts of stored events, as intake normalised them: from this process's recent ones
when it has them, else from the database."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import sqlalchemy as sa

from responder.domain import Alert, alert_from_json
from responder.intake.datadog import normalise
from responder.pipeline.contexts import AlertContexts
from responder.store import events
from responder.store.events import StoredEvent


def stored_alert(event: StoredEvent) -> Alert:
    """The alert stored with the event, else (a Datadog delivery, or a row from before the
    alert was kept) its payload normalised as intake did: same input, same received_at."""
    if event.alert is not None:
        return alert_from_json(event.alert)
    return normalise(orjson.loads(event.payload), event.received_at)


class AlertSource:
    def __init__(self, recent: AlertContexts) -> None:
        self.recent = recent

    def alerts(self, conn: sa.Connection, event_ids: Iterable[int]) -> dict[int, Alert]:
        wanted = set(event_ids)
        found = self.recent.take(wanted)
        missing = wanted - found.keys()
        for event_id, event in events.alerts_of(conn, ids=missing).items():
            found[event_id] = alert = stored_alert(event)
            self.recent.put(event_id, alert)
        return found
