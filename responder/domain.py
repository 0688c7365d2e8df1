"""Plain typed data the whole service shares: alerts, transitions, states. No I/O here."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import orjson


class Transition(enum.StrEnum):
    """Datadog's `$ALERT_TRANSITION` values."""

    TRIGGERED = "Triggered"
    RE_TRIGGERED = "Re-Triggered"
    WARN = "Warn"
    RE_WARN = "Re-Warn"
    NO_DATA = "No Data"
    RE_NO_DATA = "Re-No Data"
    RENOTIFY = "Renotify"
    RECOVERED = "Recovered"

    @property
    def is_recovery(self) -> bool:
        return self is Transition.RECOVERED

    @property
    def changes_state(self) -> bool:
        """Whether it moves the monitor to a state (a repeat only says it is still there)."""
        return self not in _REPEATS

    @property
    def is_repeat(self) -> bool:
        """A reminder about a problem we already know of: never a reason to page again."""
        return self in _REPEATS

    @property
    def state(self) -> Transition:
        """The state a repeat is a reminder of (Renotify: Triggered, Re-Warn: Warn); a
        state-changing transition is its own."""
        return _STATE_OF.get(self, self)


_REPEATS = frozenset(
    {Transition.RE_TRIGGERED, Transition.RE_WARN, Transition.RE_NO_DATA, Transition.RENOTIFY}
)
_STATE_OF = {
    Transition.RE_TRIGGERED: Transition.TRIGGERED,
    Transition.RENOTIFY: Transition.TRIGGERED,
    Transition.RE_WARN: Transition.WARN,
    Transition.RE_NO_DATA: Transition.NO_DATA,
}


class IncidentStatus(enum.StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EventState(enum.StrEnum):
    RECEIVED = "received"  # stored and acknowledged, not yet through the pipeline
    PROCESSED = "processed"
    FAILED = "failed"  # the pipeline raised; kept for a retry and for the record


class RunState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (RunState.PENDING, RunState.RUNNING)


class Verb(enum.StrEnum):
    """What a person can answer about an incident."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer to an incident: who, through which tool, and the request's own id
    (a Slack action, a PagerDuty webhook event, an API call), so a redelivery counts once."""

    verb: Verb
    incident_id: int
    actor: str  # the person, as the tool they used names them
    via: str  # "api", "cli", "slack", "pagerduty"
    reference: str  # unique per request of that tool; at most 60 characters are kept
    at: datetime
    note: str | None = None


ACTOR_MAX = 200


def actor_label(actor: str, via: str) -> str:
    """How the record names who answered: "alice (slack)"."""
    return f"{actor.strip() or 'someone'} ({via})"[:ACTOR_MAX]


def answer_via(alert: Alert) -> str | None:
    """The tool a person's answer came through ("slack"), for the events answers make."""
    if alert.actor is None or not alert.actor.endswith(")"):
        return None
    return alert.actor.rsplit("(", 1)[-1].rstrip(")") or None


@dataclass(frozen=True, slots=True)
class Alert:
    """One Datadog notification, normalised from whichever payload template sent it."""

    source_id: str | None  # Datadog `$ID`, unique per notification
    monitor_id: str | None
    monitor_name: str  # title without the "[Triggered on {...}]" prefix
    title: str
    transition: Transition
    alert_type: str | None
    priority: str | None  # "P1".."P5"
    status_text: str | None
    query: str | None
    metric: str | None
    scope: str  # normalised "k:v,k:v" sorted, "" for a simple alert
    cycle_key: str | None
    aggreg_key: str | None
    hostname: str | None
    tags: tuple[str, ...]
    tag_map: dict[str, str]
    message: str | None
    link: str | None
    snapshot: str | None
    date: datetime
    org_id: str | None
    org_name: str | None
    event_type: str | None
    template: str  # "responder" (our template), "flat" or "default" (Datadog's untouched one)
    notes: tuple[str, ...] = field(default_factory=tuple)  # what was missing or guessed
    # Set on the events responder makes itself when a timer fires ("stale", "flap-quiet"):
    # no Datadog delivery, but a step of the incident's story all the same.
    cause: str | None = None
    # Who made it, for the events a person's answer makes (cause "acknowledge", "resolve"):
    # "alice (slack)", "bob@example.com (api)".
    actor: str | None = None
    # The incident an event of our own is about, when it names one (a person's answer): the
    # pipeline then acts on that incident only, never on another of the same monitor.
    incident_id: int | None = None

    def tag(self, key: str) -> str | None:
        """The value of tag `key`; None when absent or bare (a `monitor` tag has no value)."""
        return self.tag_map.get(key) or None

    def as_context(self) -> dict[str, Any]:
        """What playbook expressions and templates see as `alert`."""
        return {
            "id": self.source_id,
            "monitor_id": self.monitor_id,
            "monitor": self.monitor_name,
            "title": self.title,
            "transition": self.transition.value,
            "type": self.alert_type,
            "priority": self.priority,
            "status": self.status_text,
            "query": self.query,
            "metric": self.metric,
            "scope": self.scope,
            "cycle_key": self.cycle_key,
            "hostname": self.hostname,
            "tags": dict(self.tag_map),
            "tag_list": list(self.tags),
            "message": self.message,
            "link": self.link,
            "snapshot": self.snapshot,
            "date": self.date.isoformat(),
            "org": self.org_name,
            "event_type": self.event_type,
            "template": self.template,
        }


_ALERT_FIELDS = tuple(f.name for f in fields(Alert) if f.name != "tag_map")


def group_key(alert: Alert) -> str:
    """The monitor + scope an alert is about, whatever its cycle: what flapping, correlation
    and the event partitions are keyed by."""
    # Datadog's default template has no monitor id: the monitor name is the best we have.
    monitor = alert.monitor_id or f"title:{alert.monitor_name.lower()}"
    return f"{monitor}|{alert.scope}"[:300]


def alert_to_json(alert: Alert) -> bytes:
    """The normalised alert as stored beside its raw payload: intake normalises once, and the
    worker and runner read this back instead of parsing the payload again."""
    data = {name: getattr(alert, name) for name in _ALERT_FIELDS}
    return orjson.dumps(data)  # the date becomes RFC 3339 text, tuples lists


def alert_from_json(encoded: bytes | str) -> Alert:
    data = orjson.loads(encoded)
    tags = tuple(data["tags"])
    data.update(
        transition=Transition(data["transition"]),
        date=datetime.fromisoformat(data["date"]),
        tags=tags,
        tag_map=tag_map(tags),
        notes=tuple(data["notes"]),
    )
    return Alert(**data)


def tag_map(tags: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`["env:prod", "monitor"]` -> `{"env": "prod", "monitor": ""}`; first value of a key wins."""
    out: dict[str, str] = {}
    for tag in tags:
        key, _, value = tag.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


_LONGEST_DURATION = timedelta(days=3650)
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: object, what: str = "after") -> timedelta:
    """`30s`, `10m`, `2h`, `1d`, or combined like `1h30m`; `what` names it in the error."""
    text = value.strip() if isinstance(value, str) else ""
    found = _DURATION.fullmatch(text) if text else None
    if found is None:
        raise ValueError(f"bad duration {value!r} for {what} (use e.g. 30s, 10m, 2h, 1h30m)")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    try:
        delay: timedelta | None = timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds
        )
    except OverflowError:
        delay = None
    # Added to today's date, a much longer one would pass the year 9999 datetime can hold.
    if delay is None or delay > _LONGEST_DURATION:
        raise ValueError(f"{what} must be at most 3650d (ten years), got {value!r}")
    if delay <= timedelta(0):
        raise ValueError(f"{what} must be longer than zero, got {value!r}")
    return delay
