"""Events API v2 bodies built from an incident: the dedup key, the trigger payload, its links.

Pure functions of the run's context, so `describe` shows exactly what `execute` sends and a
retry sends the same event again. Builders clip to PagerDuty's limits and never raise.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from integrations.pagerduty.params import TriggerParams
from responder.actions import ActionContext, IncidentView, incident_links, parse_time

Event = dict[str, Any]

CLIENT = "responder"
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
TEXT_MAX = 1024  # source, component, group, class: PagerDuty shows them in one line each
MESSAGE_MAX = 8000
# PagerDuty refuses events over 512 KB; stay clear of it with room for the routing key.
EVENT_MAX_BYTES = 500 * 1024

_SEVERITY_BY_PRIORITY = {
    "P1": "critical",
    "P2": "error",
    "P3": "warning",
    "P4": "info",
    "P5": "info",
}
DEFAULT_SEVERITY = "error"  # no priority set: high-urgency by default, short of "critical"
_MONITOR_ID = re.compile(r"^[0-9]{1,20}$")
_ELLIPSIS = "…"


def dedup_key(incident: IncidentView) -> str:
    """Stable across retries and redeliveries, different for every incident.

    The incident key already holds the monitor, the scope and Datadog's alert cycle (or our
    event id when Datadog sent no cycle key); the opening time is folded in as well, so a
    key reused by a later incident can never land on an older PagerDuty alert. Hashed
    because keys run to 400 characters and PagerDuty takes 255.
    """
    digest = hashlib.sha256(f"{incident.key}\n{_utc(incident.opened_at)}".encode()).hexdigest()
    monitor = incident.monitor_id if _MONITOR_ID.match(incident.monitor_id or "") else None
    # The monitor id is there for people reading PagerDuty's alert details, not for uniqueness.
    return f"responder:{monitor}:{digest[:40]}" if monitor else f"responder:{digest[:40]}"


def recorded_dedup_key(*sources: Mapping[str, Any] | None) -> str | None:
    """The dedup key an earlier trigger used, from its response or the incident's refs.

    Preferred over deriving it again: a resolve must reach the alert its trigger opened
    even if a later release derives keys differently.
    """
    for source in sources:
        if not source:
            continue
        nested = source.get("pagerduty")
        for value in (
            source.get("dedup_key"),
            nested.get("dedup_key") if isinstance(nested, Mapping) else None,
        ):
            if isinstance(value, str) and 0 < len(value) <= DEDUP_KEY_MAX:
                return value
    return None


def severity_for(priority: object) -> str:
    return _SEVERITY_BY_PRIORITY.get(str(priority or "").strip().upper(), DEFAULT_SEVERITY)


def trigger_event(ctx: ActionContext, params: TriggerParams, dedup: str) -> Event:
    """The trigger event for the incident, without its routing key."""
    alert, incident = ctx.alert, ctx.incident
    tags = _tags(alert)
    monitor_url = _monitor_url(alert, incident)
    payload: dict[str, Any] = {
        "summary": clip(params.summary or _text(alert.get("title")) or incident.title, SUMMARY_MAX),
        "source": clip(_source(alert, incident), TEXT_MAX),
        "severity": params.severity or severity_for(alert.get("priority") or incident.priority),
        "timestamp": _timestamp(alert.get("date")) or _utc(incident.opened_at),
        "component": params.component or _text(tags.get("service")),
        "group": params.group or _text(tags.get("team")),
        "class": params.class_ or _text(alert.get("metric")) or _text(alert.get("event_type")),
        "custom_details": {**_details(ctx, tags), **(params.custom_details or {})},
    }
    for name in ("component", "group", "class"):
        if payload[name] is None:
            del payload[name]
        else:
            payload[name] = clip(payload[name], TEXT_MAX)
    event: Event = {
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": payload,
        "client": CLIENT,
    }
    if monitor_url:
        event["client_url"] = monitor_url
    links = _links(ctx, monitor_url)
    if links:
        event["links"] = links
    images = _images(alert)
    if images:
        event["images"] = images
    return _fit(event, ctx, tags)


def follow_up_event(action: str, dedup: str) -> Event:
    """An acknowledge or resolve: PagerDuty needs nothing but the dedup key."""
    return {"event_action": action, "dedup_key": dedup}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _details(ctx: ActionContext, tags: Mapping[str, Any]) -> dict[str, Any]:
    alert, incident = ctx.alert, ctx.incident
    message = _text(alert.get("message"))
    details: dict[str, Any] = {
        "monitor": _text(alert.get("monitor")) or incident.title,
        "monitor_id": _text(alert.get("monitor_id")) or incident.monitor_id,
        "query": _text(alert.get("query")),
        "scope": _text(alert.get("scope")) or incident.scope or None,
        "tags": dict(tags),
        "priority": _text(alert.get("priority")) or incident.priority,
        "transition": _text(alert.get("transition")) or ctx.transition.value,
        "status": _text(alert.get("status")),
        "message": clip(message, MESSAGE_MAX) if message else None,
        "incident": incident.id,
    }
    return {name: value for name, value in details.items() if value not in (None, {})}


def _fit(event: Event, ctx: ActionContext, tags: Mapping[str, Any]) -> Event:
    """Drop the author's custom details, then ours, if the event would pass 512 KB."""
    if _size(event) <= EVENT_MAX_BYTES:
        return event
    payload = event["payload"]
    payload["custom_details"] = {**_details(ctx, tags), "note": "custom_details cut to fit"}
    if _size(event) > EVENT_MAX_BYTES:
        payload["custom_details"] = {"note": "custom_details dropped: event over 512 KB"}
    return event


def _size(event: Event) -> int:
    return len(json.dumps(event, ensure_ascii=False, default=str).encode())


def _source(alert: Mapping[str, Any], incident: IncidentView) -> str:
    # PagerDuty wants "the unique location of the affected system": host, then the group.
    return (
        _text(alert.get("hostname"))
        or _text(alert.get("scope"))
        or incident.scope
        or _text(alert.get("monitor"))
        or incident.title
        or "datadog"
    )


def _links(ctx: ActionContext, monitor_url: str | None) -> list[dict[str, str]]:
    candidates = [
        (monitor_url, "Datadog monitor"),
        (_text(ctx.alert.get("link")), "Datadog event"),
        *(
            (link.url, link.title)
            for link in incident_links(ctx.incident.refs, exclude="pagerduty")
        ),
    ]
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for href, text in candidates:
        if href and _is_web_url(href) and href not in seen:
            seen.add(href)
            links.append({"href": href, "text": clip(text, TEXT_MAX)})
    return links


def _images(alert: Mapping[str, Any]) -> list[dict[str, str]]:
    snapshot = _text(alert.get("snapshot"))
    # PagerDuty only shows images served over HTTPS.
    if not snapshot or not snapshot.startswith("https://"):
        return []
    return [{"src": snapshot, "href": snapshot, "alt": "Datadog graph snapshot"}]


def _monitor_url(alert: Mapping[str, Any], incident: IncidentView) -> str | None:
    monitor_id = _text(alert.get("monitor_id")) or incident.monitor_id
    link = _text(alert.get("link"))
    if not monitor_id or not _MONITOR_ID.match(monitor_id) or not link:
        return None
    parts = urlsplit(link)
    if parts.scheme != "https" or not parts.netloc:
        return None
    # The event link's host is the org's Datadog site (app.datadoghq.eu, a custom subdomain).
    return f"https://{parts.netloc}/monitors/{monitor_id}"


def _tags(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = alert.get("tags")
    return tags if isinstance(tags, Mapping) else {}


def _timestamp(value: object) -> str | None:
    moment = parse_time(value)
    return moment.isoformat() if moment else None


def _utc(value: str) -> str:
    # One spelling of the instant, whatever the database handed back (naive, offset, µs).
    return _timestamp(value) or value


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
