"""One incident's story for people: its audit records as sentences, its action runs as they
stand now. Read by `incidents show`, the postmortem report and the incident page alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import Session, col, select

from responder.store.history import audit_for_incident, incident_read
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
    """1d 2h 3m 4s, the zero parts left out."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts + ([f"{secs}s"] if secs or not parts else []))


# How one audit record reads: its data -> a sentence.
_Sentence = Callable[[Mapping[str, Any]], str]


def moment_of(entry: AuditEntry) -> Moment:
    data: Mapping[str, Any] = orjson.loads(entry.data)
    say = _SENTENCES.get(entry.kind)
    try:
        text = say(data) if say is not None else _generic(entry.kind, data)
    except (KeyError, TypeError, AttributeError):  # a known kind whose shape changed
        text = _generic(entry.kind, data)
    actor = data.get("actor") or data.get("acknowledged_by")
    return Moment(
        at=entry.at,
        kind=entry.kind,
        text=text,
        event_id=entry.event_id,
        run_id=entry.run_id,
        actor=actor if isinstance(actor, str) else None,
    )


def _generic(kind: str, data: Mapping[str, Any]) -> str:
    reason = data.get("reason") or data.get("note") or data.get("error")
    return f"{kind}: {reason}" if reason else kind


def _by(data: Mapping[str, Any]) -> str:
    return f" by {data['actor']}" if data.get("actor") else ""


def _opened(data: Mapping[str, Any]) -> str:
    text = f"opened ({data['transition']}): {data['title']}"
    if data.get("to") == "resolved":
        text += f"; resolved at once: {data.get('note', 'recovered')}"
    return text + _extras(data)


def _changed(verb: str) -> _Sentence:
    def say(data: Mapping[str, Any]) -> str:
        text = f"{verb}{_by(data)}: {data['from']} -> {data['to']} ({data['transition']})"
        if data.get("resolution") not in (None, "recovered"):
            text += f" as {data['resolution']}"
        return text + _extras(data)

    return say


def _extras(data: Mapping[str, Any]) -> str:
    # Why the change is not the plain one: held open, joined, a timer's doing.
    parts = [
        f"{label}: {data[key]}"
        for key, label in (("held", "held open"), ("joined", "joined"), ("timer", "timer"))
        if data.get(key)
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def _matched(data: Mapping[str, Any]) -> str:
    if data.get("not_routed"):
        return f"no playbook run: {data['not_routed']}"
    new = set(data.get("new", []))
    names = [
        f"{name} (new)" if name in new else f"{name} (already ran: no new steps)"
        for name in (m["name"] for m in data.get("matched", []))
    ]
    text = f"playbooks matched: {', '.join(names)}" if names else "no playbook matched"
    if data.get("fallback"):
        text += f"; fallback {data['fallback']}"
    if data.get("silenced"):
        text += f"; silenced: {data['silenced']}"
    # The same "why" as the incident page: each other playbook's failing matcher.
    missed = [
        f"{m['name']}: {m['reason']}"
        for m in data.get("not_matched", [])
        if isinstance(m, Mapping) and m.get("name")
    ]
    if missed:
        text += f"; not matched: {'; '.join(missed)}"
    return text


def _planned(data: Mapping[str, Any]) -> str:
    text = f"planned {data['action']} ({data['playbook']}, step {data['step']})"
    if data.get("parent_id") is not None:
        text += f", following up run {data['parent_id']}"
    if data.get("error"):
        text += f": {data['error']}"
    return text


def _attempt(data: Mapping[str, Any]) -> str:
    return f"{data['action']}: attempt {data['attempt']} started"


def _finished(verb: str) -> _Sentence:
    def say(data: Mapping[str, Any]) -> str:
        result = data.get("result") if isinstance(data.get("result"), Mapping) else {}
        state = data.get("state") or verb
        why = _run_outcome(str(state), result, data.get("error"))
        return f"{data['action']} {verb} (attempt {data['attempt']}): {why}"

    return say


def _retry(data: Mapping[str, Any]) -> str:
    result = data.get("result") if isinstance(data.get("result"), Mapping) else {}
    wait = result.get("retry_in_seconds") if isinstance(result, Mapping) else None
    later = f"; next attempt in {wait} s" if wait is not None else ""
    return f"{data['action']} attempt {data['attempt']} failed: {data['error']}{later}"


def _with_reason(verb: str) -> _Sentence:
    def say(data: Mapping[str, Any]) -> str:
        subject = f"{data['action']} " if data.get("action") else ""
        by = f" (acknowledged by {data['acknowledged_by']})" if data.get("acknowledged_by") else ""
        return f"{subject}{verb}: {data['reason']}{by}"

    return say


def _received(data: Mapping[str, Any]) -> str:
    notes = data.get("notes") or []
    text = f"{data.get('transition') or 'a'} delivery received: {data.get('title') or '-'}"
    return text + (f" ({'; '.join(map(str, notes))})" if notes else "")


_SENTENCES: dict[str, _Sentence] = {
    "event.received": _received,
    "incident.opened": _opened,
    "incident.updated": _changed("updated"),
    "incident.acknowledged": _changed("acknowledged"),
    "incident.resolved": _changed("resolved"),
    "playbooks.matched": _matched,
    "run.planned": _planned,
    "run.attempt": _attempt,
    "run.succeeded": _finished("succeeded"),
    "run.skipped": _finished("skipped"),
    "run.failed": _finished("failed"),
    "run.retry": _retry,
    "run.cancelled": _with_reason("cancelled"),
    "run.not_cancelled": _with_reason("not cancelled"),
    "run.suppressed": _with_reason("suppressed"),
    "event.ignored": _with_reason("delivery ignored"),
    "event.late": _with_reason("late delivery"),
}
