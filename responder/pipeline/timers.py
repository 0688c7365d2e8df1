"""Durable timers: an incident gone stale, a flapping monitor calm again, a grouped
incident's new members to summarise, a channel's alert storm over, a silence over a firing
incident ended.

A timer is a column in the database (`incident.stale_at`, `alert_group.quiet_at`,
`incident.summary_at`, `storm.quiet_at`, `incident.silenced_until`), so it survives
restarts. When one runs out, the sweep stores an event of our own making into the same
stream as Datadog's deliveries, keyed by timer and due time: however many workers sweep,
the event is stored once (the fingerprint is unique), and the pipeline then handles it in
order with everything else, audited like any delivery. An event whose reason went away
meanwhile (a delivery came, the monitor changed state, the channel got busy again, the
silence was extended) is ignored when processed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
import structlog

from responder.actions import format_duration
from responder.domain import Alert, Transition, tag_map
from responder.pipeline.alerts import stored_alert
from responder.pipeline.silence import UNSILENCED
from responder.pipeline.storm import STORM_QUIET
from responder.records import GroupRecord, IncidentRecord, StormRecord
from responder.store import events, groups, incidents, storms
from responder.store.db import reader, transaction
from responder.store.intake import event_row

log = structlog.get_logger(__name__)
_BATCH = 100


class TimerSweep:
    def __init__(self, engine: sa.Engine, deal: Callable[[Alert], int], every: float = 1.0) -> None:
        self._engine = engine
        self._deal = deal  # the event's sequencer partition, as the intake deals deliveries
        self._every = every
        self._last = 0.0

    def due(self) -> bool:
        """Whether a sweep is due (at most one per `every` seconds; the queries are cheap,
        but a busy worker would otherwise run them every round)."""
        return time.monotonic() - self._last >= self._every

    def sweep(self, now: datetime | None = None) -> int:
        """Store an event for every timer that ran out by `now`; returns how many are new."""
        self._last = time.monotonic()
        now = now or datetime.now(UTC)
        # Read first, write only when something is due: on SQLite a write transaction
        # takes the write lock, which every second would put the intake's commits behind it.
        with reader(self._engine).connect() as conn:
            due = [_stale_event(incident) for incident in _stale(conn, now)]
            for group, holder in _calm(conn, now):
                due.append(_quiet_event(group, holder))
            for incident in incidents.summary_due(conn, now=now, limit=_BATCH):
                due.append(_summary_event(incident))
            for storm, holder in _storms_over(conn, now):
                due.append(_storm_event(storm, holder))
            due += _unsilenced(conn, now)
        if not due:
            return 0
        rows = [self._row(event, now) for event in due]
        with transaction(self._engine) as conn:  # the unique fingerprint stores each once
            stored = events.store_own(conn, rows)
        if stored:
            log.info("timers.fired", events=stored)
        return stored

    def _row(self, due: _Due, now: datetime) -> dict[str, object]:
        """The event row as intake stores a delivery, keyed by timer and due time."""
        alert, fingerprint, about = due
        payload = orjson.dumps({"timer": alert.cause, "due": alert.date.isoformat(), **about})
        row = event_row(alert, payload, payload.decode(), now, part=self._deal(alert))
        return {**row, "fingerprint": fingerprint[:80]}


# A timer's event: its alert, its fingerprint (timer and due time) and what it is about.
_Due = tuple[Alert, str, dict[str, object]]


def _stale(conn: sa.Connection, now: datetime) -> list[IncidentRecord]:
    return incidents.stale_due(conn, now=now, limit=_BATCH)


def _calm(conn: sa.Connection, now: datetime) -> list[tuple[GroupRecord, IncidentRecord]]:
    due = groups.quiet_due(conn, now=now, limit=_BATCH)
    holders = incidents.by_ids(conn, ids=[g.incident_id for g in due if g.incident_id])
    return [(g, holders[g.incident_id]) for g in due if g.incident_id in holders]


def _storms_over(conn: sa.Connection, now: datetime) -> list[tuple[StormRecord, IncidentRecord]]:
    due = storms.quiet_due(conn, now=now, limit=_BATCH)
    ids = [s.summary_incident_id for s in due if s.summary_incident_id is not None]
    holders = incidents.by_ids(conn, ids=ids)
    return [(s, holders[s.summary_incident_id]) for s in due if s.summary_incident_id in holders]


def _unsilenced(conn: sa.Connection, now: datetime) -> list[_Due]:
    held = incidents.unsilence_due(conn, now=now, limit=_BATCH)
    last = events.last_deliveries(conn, incident_ids=[incident.id for incident, _ in held])
    found = []
    for incident, ended in held:
        delivered = last.get(incident.id)
        alert = stored_alert(delivered) if delivered is not None else None
        found.append(_unsilenced_event(incident, ended, alert))
    return found


def _unsilenced_event(incident: IncidentRecord, ended: datetime, last: Alert | None) -> _Due:
    """The end of a silence over a firing incident: its playbooks run as for a new incident,
    so the event reads as its newest delivery did (templates see its message and tags)."""
    note = f"the silence over it ended at {ended.isoformat()} while it still fires"
    state = Transition(incident.last_transition).state
    alert = own_alert(incident, state, ended, UNSILENCED, note)
    if last is not None:
        state = last.transition.state
        alert = replace(
            last,
            source_id=None,
            transition=state,
            date=ended,
            template=alert.template,
            notes=(note,),
            cause=UNSILENCED,
            actor=None,
        )
    fingerprint = f"timer:unsilenced:{incident.id}:{ended.timestamp()}"
    return alert, fingerprint, {"incident_id": incident.id, "silence_id": incident.silence_id}


# A repeat says the monitor is still in a state; the playbooks run for that state.
def _stale_event(incident: IncidentRecord) -> _Due:
    assert incident.stale_at is not None
    since = incident.seen_at or incident.opened_at
    quiet = format_duration((incident.stale_at - incident.updated_at).total_seconds())
    note = f"no delivery for {quiet} (last at {since.isoformat()}): resolved as stale"
    alert = own_alert(incident, Transition.RECOVERED, incident.stale_at, "stale", note)
    key = f"{incident.id}:{incident.stale_at.timestamp()}"
    return alert, f"timer:stale:{key}", {"incident_id": incident.id}


def _quiet_event(group: GroupRecord, holder: IncidentRecord) -> _Due:
    assert group.quiet_at is not None
    note = f"no state change since {group.changed_at.isoformat()}: flapping is over"
    state = Transition(group.state)
    # About the flapping monitor + scope itself, which need not be the one that opened its
    # incident (a member of a grouped incident): correlated through the group, not a cycle.
    monitor, _, scope = group.key.partition("|")
    named = monitor.removeprefix("title:") if monitor.startswith("title:") else None
    alert = replace(
        own_alert(holder, state, group.quiet_at, "flap-quiet", note),
        monitor_id=None if named is not None else monitor,
        monitor_name=named if named is not None else holder.monitor_name,
        scope=scope,
        cycle_key=None,
    )
    digest = hashlib.sha256(group.key.encode()).hexdigest()[:24]
    fingerprint = f"timer:calm:{digest}:{group.quiet_at.timestamp()}"
    return alert, fingerprint, {"incident_id": holder.id, "group": group.key}


def _summary_event(incident: IncidentRecord) -> _Due:
    assert incident.summary_at is not None
    note = "new members of a grouped incident: told in the thread together"
    # Triggered, neither a repeat nor a recovery: the event changes nothing but the thread.
    alert = own_alert(incident, Transition.TRIGGERED, incident.summary_at, "group-summary", note)
    fingerprint = f"timer:summary:{incident.id}:{incident.summary_at.timestamp()}"
    return alert, fingerprint, {"incident_id": incident.id}


def _storm_event(storm: StormRecord, holder: IncidentRecord) -> _Due:
    """The storm's end, about the incident that carries its summary (the event needs an
    incident to read as; the storm stage takes it by its channel, whatever that incident's
    state by now)."""
    assert storm.quiet_at is not None
    note = f"no more than the storm rate of new incidents in {storm.name}: the storm is over"
    alert = own_alert(holder, Transition(holder.last_transition), storm.quiet_at, STORM_QUIET, note)
    digest = hashlib.sha256(storm.channel.encode()).hexdigest()[:24]
    fingerprint = f"timer:storm:{digest}:{storm.quiet_at.timestamp()}"
    about = {"incident_id": holder.id, "channel": storm.channel}
    return alert, fingerprint, about


def own_alert(
    incident: IncidentRecord, transition: Transition, date: datetime, cause: str, note: str
) -> Alert:
    """An event of our own about `incident`, correlating to it as its deliveries do."""
    return Alert(
        source_id=None,
        monitor_id=incident.monitor_id,
        monitor_name=incident.monitor_name,
        title=incident.title,
        transition=transition,
        alert_type=None,
        priority=incident.priority,
        status_text=note,
        query=None,
        metric=None,
        scope=incident.scope,
        cycle_key=incident.cycle_key,
        aggreg_key=None,
        hostname=None,
        tags=incident.tags,
        tag_map=tag_map(incident.tags),
        message=None,
        link=None,
        snapshot=None,
        date=date,
        org_id=None,
        org_name=None,
        event_type=None,
        template="responder",
        notes=(note,),
        cause=cause,
    )
