"""People's answers (acknowledge, resolve) taken into the incident's own event stream.

An answer is stored as an event of our own, in the partition of the incident it is about,
so the pipeline handles it in order with Datadog's deliveries: the sequencer that owns the
incident is the only writer of its state. The request that brought the answer (an API call,
a Slack button, a PagerDuty webhook) is acknowledged once the event is committed; what the
answer sets off (PagerDuty acknowledged, the Slack root rewritten, the Datadog incident
updated) goes through the outbox like everything else. A redelivered request (same tool,
same reference) is stored once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson
import sqlalchemy as sa

from responder.domain import Alert, Answer, Transition, Verb, actor_label
from responder.pipeline.timers import own_alert
from responder.store import events, incidents
from responder.store.db import reader, transaction
from responder.store.intake import event_row


class UnknownIncident(LookupError):
    """No incident has this id."""


class Refused(Exception):
    """The answer cannot apply (the incident is resolved already); nothing was stored."""


class AlreadyAcknowledged(Exception):
    """Someone acknowledged the incident already: nothing to do, nothing was stored."""

    def __init__(self, by: str | None) -> None:
        super().__init__(f"already acknowledged by {by or 'someone'}")
        self.by = by


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: int
    incident_id: int
    status: str  # the incident's status when the answer was stored (before it is applied)
    new: bool  # False: this request was stored before (a redelivery), nothing new was added


class Silencer(Protocol):
    """Silences an incident's monitor + scope for a while (the Slack "Silence 1h" button)."""

    def silence_incident(
        self, incident_id: int, *, author: str, duration: timedelta, reason: str
    ) -> int:
        """The new silence's id; raises UnknownIncident."""
        ...


class AnswerDesk:
    def __init__(
        self,
        engine: sa.Engine,
        deal: Callable[[Alert], int],
        on_stored: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._engine = engine
        self._deal = deal  # the event's sequencer partition, as the intake deals deliveries
        self._on_stored = on_stored  # wakes an in-process worker

    def incident_for_ref(self, kind: str, value: str) -> int | None:
        """Our incident that a vendor names `value` (kind "pagerduty": its dedup key)."""
        with reader(self._engine).connect() as conn:
            return incidents.by_ref(conn, kind=kind, value=value)

    def submit(self, answer: Answer) -> Accepted:
        """Store the answer as an event of the incident's stream. Raises UnknownIncident,
        Refused (resolved already) or AlreadyAcknowledged, having stored nothing. The
        pipeline checks again when it applies the answer: another may have come between."""
        with reader(self._engine).connect() as conn:
            found = incidents.by_ids(conn, ids=[answer.incident_id]).get(answer.incident_id)
        if found is None:
            raise UnknownIncident(f"no incident {answer.incident_id}")
        if not found.is_open:
            by = f" by {found.resolved_by}" if found.resolved_by else ""
            raise Refused(f"incident {found.id} is already resolved{by}")
        if answer.verb is Verb.ACKNOWLEDGE and found.acknowledged_at is not None:
            raise AlreadyAcknowledged(found.acknowledged_by)
        transition = (
            Transition.RECOVERED
            if answer.verb is Verb.RESOLVE
            else Transition(found.last_transition)
        )
        label = actor_label(answer.actor, answer.via)
        note = f"{answer.verb.value} by {label}"
        if answer.note:
            note = f"{note}: {answer.note}"
        alert = own_alert(found, transition, answer.at, answer.verb.value, note)
        alert = replace(alert, actor=label, incident_id=found.id)
        payload = orjson.dumps(
            {
                "answer": answer.verb.value,
                "incident_id": answer.incident_id,
                "actor": answer.actor,
                "via": answer.via,
                "reference": answer.reference,
                "at": answer.at.isoformat(),
                "note": answer.note,
            }
        )
        now = datetime.now(UTC)
        row = event_row(alert, payload, payload.decode(), now, part=self._deal(alert))
        # The verb is part of it: one request id for an acknowledge and then a resolve
        # (the web page's form, a reused Idempotency-Key) is two answers, not a redelivery.
        fingerprint = f"answer:{answer.via}:{answer.verb.value[0]}:{answer.reference}"[:80]
        row["fingerprint"] = fingerprint
        with transaction(self._engine) as conn:
            stored = events.store_own(conn, [row])
            event_id = events.id_of(conn, fingerprint=fingerprint)
        if stored:
            self._on_stored(stored)
        return Accepted(event_id, found.id, found.status, bool(stored))
