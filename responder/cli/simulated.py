"""How `playbooks test` shows what one simulated delivery did, audit record by record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from responder.pipeline.simulate import Outcome


def outcome_lines(outcome: Outcome, *, verbose: bool) -> list[str]:
    alert = outcome.alert
    lines = [
        f"#{outcome.number} {Path(outcome.source).name}  {alert.transition} {alert.title!r} "
        f"priority={alert.priority or '-'} date={alert.date.isoformat()}"
    ]
    if outcome.redelivery_of is not None:
        lines.append(f"   redelivery of #{outcome.redelivery_of}: recognised, nothing done again")
    for record in outcome.records:
        try:
            shown = _RECORDS.get(record["kind"], _generic)(record, outcome, verbose)
        except (KeyError, TypeError, AttributeError):
            shown = _generic(record, outcome, verbose)  # a known kind whose shape changed
        lines += [f"   {line}" for line in shown]
    return lines


# How one audit record reads: (record, the delivery's outcome, verbose) -> lines.
_Renderer = Callable[[dict[str, Any], "Outcome", bool], list[str]]


def _generic(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    """Any kind without a renderer of its own, as it is: a kind added later still shows."""
    return [f"{record['kind']}: {json.dumps(record['data'], ensure_ascii=False)}"]


def _received(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    return [f"note: {note}" for note in record["data"].get("notes", [])]


def _incident_change(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data, verb = record["data"], record["kind"].removeprefix("incident.")
    if verb == "opened":
        line = f"incident {record['incident_id']} opened (key {data['key']})"
        if data["to"] == "resolved":
            line += f", resolved: {data.get('note', 'recovered')}"
    else:
        line = f"incident {record['incident_id']} {verb}: {data['from']} -> {data['to']}"
    # Why the change is not the plain one: held open, joined, resolved by a timer.
    for key, label in (("held", "held open"), ("joined", "joined"), ("timer", "timer")):
        if data.get(key):
            line += f" ({label}: {data[key]})"
    if verb == "resolved" and data.get("resolution") not in (None, "recovered"):
        line += f" as {data['resolution']}"
    return [line]


def _matched(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    new = set(data["new"])
    shown = [
        f"{name} (new)" if name in new else f"{name} (already ran: no new steps)"
        for name in (m["name"] for m in data["matched"])
    ]
    if data.get("not_routed"):
        return [f"playbooks: not routed: {data['not_routed']}"]
    lines = [f"playbooks: {', '.join(shown) if shown else 'none matched'}"]
    if data.get("fallback"):
        lines.append(f"fallback {data['fallback']}")
    if verbose:
        lines += [f"   no {name}: {reason}" for name, reason in outcome.not_matched]
    return lines


def _planned(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    planned = outcome.run(record["run_id"])
    if planned is None:
        return _generic(record, outcome, verbose)
    run = planned.run
    params = json.dumps(dict(planned.params), ensure_ascii=False)
    failed = f"  FAILED: {run.last_error}" if record["kind"] == "run.failed" else ""
    if planned.parent is not None:
        parent = planned.parent
        of = f" of #{planned.parent_delivery}" if planned.parent_delivery else ""
        to = f"(to {parent.action}, run {parent.id}{of})"
        return [f"follow-up -> {run.action} {params} {to}{failed}"]
    after = _duration((run.scheduled_at - run.created_at).total_seconds())
    extra = (f" after {after}" if after else "") + (f" if {run.condition}" if run.condition else "")
    return [f"-> {run.action}{extra} {params}{failed}"]


def _duration(seconds: float) -> str:
    whole = round(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s" if whole else ""


def _cancelled(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    why = f": {data['reason']}" if data.get("reason") else ""
    return [f"cancelled: {data['action']} (run {record['run_id']}, {data['playbook']}){why}"]


def _with_reason(label: str, field: str | None = None) -> _Renderer:
    def render(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
        data = record["data"]
        subject = f"{data[field]}: " if field else ""
        return [f"{label}: {subject}{data['reason']}"]

    return render


def _flapping(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [
        f"flapping: {data['changes']} state changes within {data['window']};"
        f" one incident holds it until calm for {data['quiet']}"
    ]


def _stable(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [f"no longer flapping: calm for {data['calm_for']}, {data['state']}"]


def _grouped(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [
        f"grouped: {data['member']} joins ({data['grouping']}; {data['members']} alerts),"
        " told in the thread together"
    ]


def _summarized(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [f"summary: {data['new']} new, {data['firing']} of {data['members']} firing"]


def _silenced(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    by = f"window {data['window']}" if data.get("window") else f"silence {data.get('silence_id')}"
    return [f"silenced by {by} until {data['until']}: {data['reason']}"]


def _failed(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    return [f"failed: {record['data']['error']}"]


_RECORDS: dict[str, _Renderer] = {
    "event.received": _received,
    "incident.opened": _incident_change,
    "incident.updated": _incident_change,
    "incident.resolved": _incident_change,
    "playbooks.matched": _matched,
    "run.planned": _planned,
    "run.failed": _planned,
    "run.cancelled": _cancelled,
    "event.ignored": _with_reason("ignored"),
    "event.late": _with_reason("late"),
    "run.suppressed": _with_reason("suppressed", "action"),
    "incident.flapping": _flapping,
    "incident.stable": _stable,
    "incident.grouped": _grouped,
    "incident.summarized": _summarized,
    "event.failed": _failed,
    "event.silenced": _silenced,
    "incident.unsilenced": _with_reason("unsilenced"),
}
