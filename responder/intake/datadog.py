"""Datadog webhook payloads -> `Alert`: our template, Datadog's default one and flat variants.

Datadog fills `$VARIABLES` into whatever template the user pasted, leaves unknown ones as
their literal text, and sends numbers as strings. Everything here is pure and strict about
shape (a clear 422 beats a wrong page) but lenient about values Datadog itself varies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from responder.domain import Alert, Transition, tag_map
from responder.intake.limits import MAX_DEPTH, may_be_too_deep, too_deep

MAX_FIELD = 64 * 1024  # any single text field; the whole body is capped by the web layer

_TRANSITIONS = {t.value.lower(): t for t in Transition}
_TRANSITIONS.update({"retriggered": Transition.RE_TRIGGERED, "nodata": Transition.NO_DATA})
_TYPE_TRANSITION = {
    "error": Transition.TRIGGERED,
    "warning": Transition.WARN,
    "success": Transition.RECOVERED,
}
# "[P1] [Triggered on {host:a,b}] Name" -> prefixes in brackets, then the monitor name.
_PREFIX = re.compile(r"^\s*\[([^\]]*)\]\s*")
_PREFIX_TRANSITION = re.compile(r"^(?P<t>[A-Za-z -]+?)(?:\s+on\s+\{(?P<scope>.*)\})?$")
_PRIORITY = re.compile(r"^[Pp]?([1-5])$")
_MONITOR_LINK = re.compile(r"/monitors/(\d+)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class PayloadError(ValueError):
    """The payload cannot become an alert; the message says which field and why."""


def decode(body: bytes, content_type: str) -> tuple[Any, str]:
    """A webhook body (JSON, or Datadog's "encode as form") decoded, and the JSON text we
    store for it."""
    if not body.strip():
        raise PayloadError("unreadable body: it is empty")
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = dict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            )
        except (UnicodeDecodeError, ValueError):
            raise PayloadError("unreadable body: not a valid URL-encoded form") from None
        data: Any = _form_to_payload(form)
        _check_depth(data)  # before dumping it, which refuses more than 254 levels
        return data, orjson.dumps(data).decode()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson's own, at 1024 levels
            raise PayloadError(_TOO_DEEP) from None
        raise PayloadError(f"unreadable body: not valid JSON ({exc})") from None
    if may_be_too_deep(body):
        _check_depth(data)
    return data, body.decode("utf-8")


_TOO_DEEP = f"unreadable body: JSON nested deeper than {MAX_DEPTH} levels"


def _check_depth(data: Any) -> None:
    if too_deep(data):
        raise PayloadError(_TOO_DEEP)


def _form_to_payload(form: dict[str, str]) -> dict[str, Any]:
    """Datadog's "encode as form" flattens the template; nested values arrive as JSON text."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        stripped = value.strip()
        if stripped.startswith("{") and key in ("alert", "org"):
            try:
                out[key] = orjson.loads(stripped)
                continue
            except orjson.JSONDecodeError:
                pass
        out[key] = value
    return out


def normalise(data: Mapping[str, Any], received_at: datetime) -> Alert:
    """Build an `Alert` from a decoded webhook body (a JSON object or a form)."""
    if not isinstance(data, Mapping):
        raise PayloadError(f"expected a JSON object, got {type(data).__name__}")
    nested = data.get("alert")
    if nested is not None and not isinstance(nested, Mapping):
        raise PayloadError("field 'alert' must be an object")
    if isinstance(nested, Mapping):
        return _from_fields(_Fields(data, nested, _NESTED), "responder", received_at)
    # The flat template's own keys first: scanning every key is the rare default template's cost.
    if "alert_transition" in data or any(key.startswith("alert_") for key in data):
        return _from_fields(_Fields(data, data, _FLAT), "flat", received_at)
    return _from_fields(_Fields(data, {}, {}), "default", received_at)


_ALERT_VARIABLES = (
    "title",
    "transition",
    "type",
    "scope",
    "id",
    "priority",
    "status",
    "query",
    "metric",
    "cycle_key",
    "aggreg_key",
)
# Where each alert variable is in the two templates that have them: (key, name in errors).
_NESTED = {name: (name, f"alert.{name}") for name in _ALERT_VARIABLES}
_FLAT = {
    name: (key, key)
    for name in _ALERT_VARIABLES
    for key in ["aggreg_key" if name == "aggreg_key" else f"alert_{name}"]
}


class _Fields:
    """Reads variables from the top level or the alert section, treating `$X` and "" as absent."""

    __slots__ = ("alert", "keys", "top")

    def __init__(
        self,
        top: Mapping[str, Any],
        alert: Mapping[str, Any],
        keys: Mapping[str, tuple[str, str]],
    ) -> None:
        self.top, self.alert, self.keys = top, alert, keys

    def top_str(self, *names: str, multiline: bool = False) -> str | None:
        for name in names:
            value = _text(self.top.get(name), name, multiline=multiline)
            if value is not None:
                return value
        return None

    def alert_str(self, name: str) -> str | None:
        where = self.keys.get(name)
        if where is None:
            return None  # Datadog's default template has no alert variables
        return _text(self.alert.get(where[0]), where[1])


def _text(value: Any, field: str, *, multiline: bool = False) -> str | None:
    if type(value) is not str:  # the common case first: this runs ~20 times per webhook
        if value is None:
            return None
        value = _coerce(value, field)
    if len(value) > MAX_FIELD:
        raise PayloadError(f"field '{field}' is longer than {MAX_FIELD} characters")
    # A message keeps its text as sent (it is escaped where it is shown); a one-line field
    # loses control characters, which have no business in a title, tag or key.
    clean = multiline or value.isprintable()
    text: str = (value if clean else _CONTROL.sub("", value)).strip()
    if not text or (text[0] == "$" and text[1:].replace("_", "").isalnum()):
        return None  # Datadog leaves a variable that does not apply as its literal name
    return text


def _coerce(value: Any, field: str) -> str:
    """Datadog sends numbers as strings, but a hand-made template may not."""
    if isinstance(value, bool):
        raise PayloadError(f"field '{field}' must be a string, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        return value
    raise PayloadError(f"field '{field}' must be a string, got {type(value).__name__}")


def _from_fields(f: _Fields, template: str, received_at: datetime) -> Alert:
    notes: list[str] = []
    title = f.alert_str("title") or f.top_str("event_title", "title")
    if title is None:
        raise PayloadError(
            "payload has no title: expected 'alert.title', 'event_title' or 'title' "
            "(is the webhook payload template the one from the README?)"
        )
    prefixes, monitor_name = _split_title(title)
    transition = _transition(f, prefixes)
    scope = _scope(f.alert_str("scope"), prefixes)
    tags = _tags(f.top.get("tags"))
    monitor_id = f.alert_str("id")
    message = f.top_str("event_msg", "body", "text_only_msg", multiline=True)
    if template == "default":
        notes.append(
            "minimal payload (Datadog's default template): no monitor id, priority, tags or "
            "scope; correlated on the title"
        )
        found = _MONITOR_LINK.search(message or "")
        if found:
            monitor_id = found.group(1)
            notes.append("monitor id taken from the monitor link in the message")
    date = _datadog_date(f, received_at, notes)
    return Alert(
        source_id=f.top_str("id"),
        monitor_id=monitor_id,
        monitor_name=monitor_name or title,
        title=title,
        transition=transition,
        alert_type=f.alert_str("type"),
        priority=_priority(f.alert_str("priority"), prefixes, notes),
        status_text=f.alert_str("status"),
        query=f.alert_str("query"),
        metric=f.alert_str("metric"),
        scope=scope,
        cycle_key=f.alert_str("cycle_key"),
        aggreg_key=f.alert_str("aggreg_key"),
        hostname=f.top_str("hostname"),
        tags=tags,
        tag_map=tag_map(tags),
        message=message,
        link=f.top_str("link"),
        snapshot=f.top_str("snapshot"),
        date=date,
        org_id=_org(f.top, "id"),
        org_name=_org(f.top, "name"),
        event_type=f.top_str("event_type"),
        template=template,
        notes=tuple(notes),
    )


def _split_title(title: str) -> tuple[list[str], str]:
    prefixes: list[str] = []
    rest = title
    while (found := _PREFIX.match(rest)) is not None:
        prefixes.append(found.group(1).strip())
        rest = rest[found.end() :]
    return prefixes, rest.strip()


def _transition(f: _Fields, prefixes: list[str]) -> Transition:
    raw = f.alert_str("transition")
    if raw is not None:
        known = _TRANSITIONS.get(raw.lower())
        if known is not None:
            return known
    for prefix in prefixes:
        found = _PREFIX_TRANSITION.match(prefix)
        if found and (known := _TRANSITIONS.get(found.group("t").strip().lower())) is not None:
            return known
    by_type = _TYPE_TRANSITION.get((f.alert_str("type") or "").lower())
    if by_type is not None:
        return by_type
    if raw is not None:
        raise PayloadError(
            f"unknown alert transition {raw[:40]!r}; expected one of "
            + ", ".join(t.value for t in Transition)
        )
    raise PayloadError(
        "cannot tell the transition: no 'alert.transition' and no [Triggered]/[Recovered] "
        "prefix in the title"
    )


def _scope(raw: str | None, prefixes: list[str]) -> str:
    if raw is None:
        for prefix in prefixes:
            found = _PREFIX_TRANSITION.match(prefix)
            if found and found.group("scope"):
                raw = found.group("scope")
                break
    if not raw:
        return ""
    return ",".join(sorted({part.strip() for part in raw.split(",") if part.strip()}))


def _tags(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        parts = [] if raw.startswith("$") else raw.split(",")
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        parts = raw
    else:
        raise PayloadError("field 'tags' must be a comma-separated string or a list of strings")
    seen: dict[str, None] = {}
    for part in parts:
        tag = (part if part.isprintable() else _CONTROL.sub("", part)).strip()
        if tag:
            seen.setdefault(tag[:200], None)
    return tuple(seen)


def _priority(raw: str | None, prefixes: list[str], notes: list[str]) -> str | None:
    candidates = [raw] if raw is not None else prefixes
    for candidate in candidates:
        found = _PRIORITY.match(candidate.strip())
        if found:
            return f"P{found.group(1)}"
    if raw is not None:
        notes.append(f"priority {raw[:20]!r} is not P1-P5; treated as none")
    return None


def _datadog_date(f: _Fields, received_at: datetime, notes: list[str]) -> datetime:
    """Datadog's time of this event, which orders a monitor's events: the later of
    `last_updated` and `date`. Which of the two moves with a reminder is not documented;
    the later one is the event's own time either way, so a Renotify is never dated back to
    the state change it repeats (and reminder pacing never sees it as older than it is)."""
    updated, made = f.top_str("last_updated"), f.top_str("date")
    if updated is None or made is None:
        return _date(updated or made, received_at, notes)
    return max(_date(updated, received_at, notes), _date(made, received_at, notes))


def _date(raw: str | None, received_at: datetime, notes: list[str]) -> datetime:
    if raw is None:
        notes.append("no date in the payload; using the time it was received")
        return received_at
    try:
        number = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            notes.append(f"date {raw[:40]!r} is not epoch milliseconds; using the time received")
            return received_at
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    # Datadog sends epoch milliseconds; a value this small can only be seconds.
    seconds = number / 1000 if number > 1e11 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        notes.append(f"date {raw[:40]!r} is out of range; using the time received")
        return received_at


def _org(top: Mapping[str, Any], key: str) -> str | None:
    org = top.get("org")
    if not isinstance(org, Mapping):
        return None
    return _text(org.get(key), f"org.{key}")
