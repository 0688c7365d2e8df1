"""One incident's story for people: its audit records as sentences, its action runs as they
stand now. Read by `incidents show` and the postmortem report; the incident page tells the
same records with the same steps (`store.steps`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import Session, col, select

from responder.actions import format_duration
from responder.store.history import audit_for_incident, incident_read
from responder.store.steps import Entry, step
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident


@dataclass(frozen=True, slots=True)
class Moment:
    """One thing that happened, said in a sentence, with who did it when a person did."""

    at: datetime
    kind: str
    text: str
    event_id: int | None = None
    run_id: int | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class RunLine:
    """An action run as it stands now: its state is the run's current one, never the one
    an event's outcome saw when it was planned."""

    id: int
    action: str
    playbook: str
    transition: str
    state: str
    attempts: int
    planned_at: datetime
    finished_at: datetime | None
    outcome: str  # why it was skipped, what failed, or what it made


@dataclass(frozen=True, slots=True)
class IncidentTimeline:
    # As the history API reads it (`incident_read`), with `current_title`: the newest
    # delivery's title, where `title` keeps the opening one.
    incident: dict[str, Any]
    moments: list[Moment]
    runs: list[RunLine]

    @property
    def acknowledged_by(self) -> str | None:
        return self.incident.get("acknowledged_by")

    @property
    def resolved_by(self) -> str | None:
        return self.incident.get("resolved_by")

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "timeline": [
                {
                    "at": moment.at.isoformat(),
                    "kind": moment.kind,
                    "text": moment.text,
                    "event_id": moment.event_id,
                    "run_id": moment.run_id,
                    "actor": moment.actor,
                }
                for moment in self.moments
            ],
            "actions": [
                {
                    "id": run.id,
                    "action": run.action,
                    "playbook": run.playbook,
                    "transition": run.transition,
                    "state": run.state,
                    "attempts": run.attempts,
                    "planned_at": run.planned_at.isoformat(),
                    "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                    "outcome": run.outcome,
                }
                for run in self.runs
            ],
        }


def incident_timeline(session: Session, incident_id: int) -> IncidentTimeline | None:
    """The incident's timeline from its audit records and runs; None when there is no such id."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        return None
    runs = session.exec(
        select(ActionRun).where(ActionRun.incident_id == incident_id).order_by(col(ActionRun.id))
    ).all()
    moments = [moment_of(entry) for entry in audit_for_incident(session, incident_id)]
    read = incident_read(incident)
    read["current_title"] = current_title(session, incident_id) or incident.title
    return IncidentTimeline(read, moments, [run_line(run) for run in runs])


def current_title(session: Session, incident_id: int) -> str | None:
    """The title of the incident's newest delivery (the incident keeps its first one)."""
    return session.exec(
        select(AlertEvent.title)
        .where(AlertEvent.incident_id == incident_id)
        .order_by(col(AlertEvent.id).desc())
        .limit(1)
    ).first()


def run_line(run: ActionRun) -> RunLine:
    assert run.id is not None
    return RunLine(
        id=run.id,
        action=run.action,
        playbook=run.playbook,
        transition=run.transition,
        state=run.state,
        attempts=run.attempts,
        planned_at=run.created_at,
        finished_at=run.finished_at,
        outcome=_run_outcome(run.state, run.result, run.last_error),
    )


def _run_outcome(state: str, result: Any, error: str | None) -> str:
    result = result if isinstance(result, Mapping) else {}
    if state == "skipped":
        return str(result.get("reason") or "skipped")
    if state == "failed":
        return error or str(result.get("error") or "failed")
    if state == "succeeded":
        made = [f"{key} {value}" for key, value in result.items() if _is_reference(key, value)]
        return ", ".join(made) if made else "done"
    if error:  # pending again after a failed attempt: the next one is planned
        return f"retrying after: {error}"
    return state


def _is_reference(key: str, value: Any) -> bool:
    # What a vendor made is named by an id, a key or a link; the rest of an answer is noise.
    named = key.endswith(("_id", "id", "url", "ts", "key"))
    return named and isinstance(value, str | int) and len(str(value)) <= 200


def utc(value: datetime | str | None) -> str:
    """A time as people read it, with its zone: 2026-11-22 22:00:00 UTC."""
    if value is None:
        return "-"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """As every other reader says a span (`actions.format_duration`); "-" for none."""
    return "-" if seconds is None else format_duration(round(seconds))


def moment_of(entry: AuditEntry) -> Moment:
    """One audit record as the incident page tells it (`store.steps`), on one line."""
    data: Mapping[str, Any] = orjson.loads(entry.data)
    told = step(Entry(entry.at, entry.kind, entry.run_id, data))
    actor = data.get("actor") or data.get("acknowledged_by")
    return Moment(
        at=entry.at,
        kind=entry.kind,
        text=told.sentence,
        event_id=entry.event_id,
        run_id=entry.run_id,
        actor=actor if isinstance(actor, str) else None,
    )
