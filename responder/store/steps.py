"""An incident's audit rows told as steps a person reads: what happened, when, and why.

One telling for every reader (the incident page, `incidents show`, the postmortem report),
so each gives the same reason. Each audit kind has its sentence; a kind without one is
still shown, by its name and its reason or error, so a new kind of record never disappears.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Data = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime
    kind: str
    title: str
    tone: str  # ok, bad, skip, info: the step's colour on the page
    reason: str | None = None
    details: Sequence[str] = field(default_factory=tuple)
    run_id: int | None = None

    @property
    def sentence(self) -> str:
        """The step on one line, for text: title, why, details."""
        text = f"{self.title}: {self.reason}" if self.reason else self.title
        return f"{text} ({'; '.join(self.details)})" if self.details else text


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row as the page needs it (`store.history.audit_read` gives these keys)."""

    at: datetime
    kind: str
    run_id: int | None
    data: Data


def steps(entries: Sequence[Entry]) -> list[Step]:
    return [step(entry) for entry in entries]


def step(entry: Entry) -> Step:
    describe = _KINDS.get(entry.kind)
    if describe is not None:
        return describe(entry)
    if entry.kind.startswith("run."):
        return _run_outcome(entry)
    reason = _text(entry.data.get("reason") or entry.data.get("error") or entry.data.get("note"))
    return Step(entry.at, entry.kind, entry.kind.replace(".", " "), "info", reason)


def _received(entry: Entry) -> Step:
    d = entry.data
    title = f"Alert received: {d.get('transition', '?')}"
    if d.get("actor"):
        title = f"{str(d.get('answer', 'answer')).capitalize()} from {d['actor']}"
    elif d.get("timer"):
        title = f"Timer fired: {d['timer']}"
    details = [f"Datadog's date {d['date']}"] if d.get("date") else []
    if d.get("deliveries", 1) and int(d.get("deliveries", 1)) > 1:
        details.append(f"delivered {d['deliveries']} times")
    details.extend(str(note) for note in d.get("notes") or ())
    return Step(entry.at, entry.kind, title, "info", None, details)


def _incident(entry: Entry) -> Step:
    d = entry.data
    verb = entry.kind.removeprefix("incident.")
    title = f"Incident {verb}"
    if d.get("from") != d.get("to") and d.get("to"):
        title += f": {d.get('from') or 'new'} → {d['to']}"
    if d.get("transition"):
        title += f" ({d['transition']})"
    if d.get("actor"):
        title += f" by {d['actor']}"
    tone = {"acknowledged": "ok", "resolved": "ok", "opened": "bad"}.get(verb, "info")
    details = [f"resolution: {d['resolution']}"] if d.get("resolution") else []
    for key in ("joined", "held", "timer", "note"):
        if d.get(key):
            details.append(f"{key}: {_text(d[key])}")
    return Step(entry.at, entry.kind, title, tone, None, details)


def _matched(entry: Entry) -> Step:
    d = entry.data
    matched = [str(item.get("name")) for item in d.get("matched") or () if isinstance(item, dict)]
    title = f"Playbooks matched: {', '.join(matched)}" if matched else "No playbook matched"
    details = []
    if d.get("already_ran"):
        details.append(f"already ran for this incident: {', '.join(d['already_ran'])}")
    for item in d.get("not_matched") or ():
        if isinstance(item, dict):
            details.append(f"{item.get('name')} did not match: {item.get('reason')}")
    if d.get("silenced"):
        details.append(f"silenced: {d['silenced']}")
    reason = _text(d.get("not_routed") or d.get("fallback"))
    return Step(entry.at, entry.kind, title, "ok" if matched else "skip", reason, details)


def _planned(entry: Entry) -> Step:
    d = entry.data
    title = f"Planned {d.get('action')} (playbook {d.get('playbook')}, step {d.get('step')})"
    details = []
    due = _time(d.get("not_before"))
    if due is not None and (due - entry.at).total_seconds() >= 1:  # a delayed step
        details.append(f"not before {due.isoformat(sep=' ', timespec='seconds')}")
    if d.get("condition"):
        details.append(f"only if {d['condition']}")
    if d.get("parent_id"):
        details.append(f"follows run {d['parent_id']}")
    return Step(entry.at, entry.kind, title, "info", _text(d.get("error")), details, entry.run_id)


def _attempt(entry: Entry) -> Step:
    d = entry.data
    title = f"Attempt {d.get('attempt')} of {d.get('action')}"
    return Step(entry.at, entry.kind, title, "info", _text(d.get("uncertain")), (), entry.run_id)


_TONES = {
    "succeeded": "ok",
    "failed": "bad",
    "retry": "bad",
    "take_over_failed": "bad",
    "lease_expired": "bad",
    "skipped": "skip",
    "suppressed": "skip",
    "cancelled": "skip",
    "not_cancelled": "info",
    "polling": "info",
}


def _run_outcome(entry: Entry) -> Step:
    d = entry.data
    what = entry.kind.removeprefix("run.").replace("_", " ")
    action = d.get("action") or "run"
    title = f"{action} {what}"
    if d.get("attempt"):
        title += f" (attempt {d['attempt']})"
    raw = d.get("result")
    result: Data = raw if isinstance(raw, dict) else {}
    reason = _text(d.get("reason") or d.get("error") or result.get("reason") or d.get("note"))
    details = []
    if d.get("acknowledged_by"):
        details.append(f"acknowledged by {d['acknowledged_by']}")
    if result.get("skip"):
        details.append(str(result["skip"]))
    tone = _TONES.get(entry.kind.removeprefix("run."), "info")
    return Step(entry.at, entry.kind, title, tone, reason, details, entry.run_id)


def _late(entry: Entry) -> Step:
    d = entry.data
    title = "Alert ignored" if entry.kind == "event.ignored" else "Late alert dropped"
    details = [f"Datadog's date {d['date']}"] if d.get("date") else []
    return Step(entry.at, entry.kind, title, "skip", _text(d.get("reason")), details)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


_KINDS: dict[str, Callable[[Entry], Step]] = {
    "event.received": _received,
    "incident.opened": _incident,
    "incident.updated": _incident,
    "incident.acknowledged": _incident,
    "incident.resolved": _incident,
    "incident.flapping": _incident,
    "incident.stable": _incident,
    "incident.grouped": _incident,
    "playbooks.matched": _matched,
    "run.planned": _planned,
    "run.attempt": _attempt,
    "event.late": _late,
    "event.ignored": _late,
}
