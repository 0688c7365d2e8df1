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
from responder.actions import ActionContext, IncidentView, incident_links, iso_utc

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
    # One spelling of the instant, whatever zone it was read in: keys must not change.
    opened = iso_utc(incident.opened_at)
    digest = hashlib.sha256(f"{incident.key}\n{opened}".encode()).hexdigest()
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


def severity_for(priority: str | None) -> str:
    return _SEVERITY_BY_PRIORITY.get((priority or "").upper(), DEFAULT_SEVERITY)


def trigger_event(ctx: ActionContext, params: TriggerParams, dedup: str) -> Event:
    """The trigger event for the incident, without its routing key."""
    alert = ctx.alert
    monitor_url = _monitor_url(ctx)
    payload: dict[str, Any] = {
        "summary": clip(params.summary or alert.title or ctx.incident.title, SUMMARY_MAX),
        "source": clip(_source(ctx), TEXT_MAX),
        "severity": params.severity or severity_for(ctx.priority),
        "timestamp": iso_utc(alert.date),
        "component": params.component or alert.tag("service"),
        "group": params.group or alert.tag("team"),
        "class": params.class_ or alert.metric or alert.event_type,
        "custom_details": {**_details(ctx), **(params.custom_details or {})},
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
    images = _images(alert.snapshot)
    if images:
        event["images"] = images
    return _fit(event, ctx)


def follow_up_event(action: str, dedup: str) -> Event:
    """An acknowledge or resolve: PagerDuty needs nothing but the dedup key."""
    return {"event_action": action, "dedup_key": dedup}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _details(ctx: ActionContext) -> dict[str, Any]:
    alert = ctx.alert
    details: dict[str, Any] = {
        "monitor": alert.monitor_name or ctx.incident.title,
        "monitor_id": ctx.monitor_id,
        "query": alert.query,
        "scope": ctx.scope or None,
        "tags": dict(alert.tag_map),
        "priority": ctx.priority,
        "transition": alert.transition.value,
        "status": alert.status_text,
        "message": clip(alert.message, MESSAGE_MAX) if alert.message else None,
        "incident": ctx.incident.id,
    }
    return {name: value for name, value in details.items() if value not in (None, {})}


def _fit(event: Event, ctx: ActionContext) -> Event:
    """Drop the author's custom details, then ours, if the event would pass 512 KB."""
    if _size(event) <= EVENT_MAX_BYTES:
        return event
    payload = event["payload"]
    payload["custom_details"] = {**_details(ctx), "note": "custom_details cut to fit"}
    if _size(event) > EVENT_MAX_BYTES:
        payload["custom_details"] = {"note": "custom_details dropped: event over 512 KB"}
    return event


def _size(event: Event) -> int:
    return len(json.dumps(event, ensure_ascii=False, default=str).encode())


def _source(ctx: ActionContext) -> str:
    # PagerDuty wants "the unique location of the affected system": host, then the group.
    return (
        ctx.alert.hostname or ctx.scope or ctx.alert.monitor_name or ctx.incident.title or "datadog"
    )


def _links(ctx: ActionContext, monitor_url: str | None) -> list[dict[str, str]]:
    candidates = [
        (monitor_url, "Datadog monitor"),
        (ctx.alert.link, "Datadog event"),
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


def _images(snapshot: str | None) -> list[dict[str, str]]:
    # PagerDuty only shows images served over HTTPS.
    if not snapshot or not snapshot.startswith("https://"):
        return []
    return [{"src": snapshot, "href": snapshot, "alt": "Datadog graph snapshot"}]


def _monitor_url(ctx: ActionContext) -> str | None:
    monitor_id, link = ctx.monitor_id, ctx.alert.link
    if not monitor_id or not _MONITOR_ID.match(monitor_id) or not link:
        return None
    parts = urlsplit(link)
    if parts.scheme != "https" or not parts.netloc:
        return None
    # The event link's host is the org's Datadog site (app.datadoghq.eu, a custom subdomain).
    return f"https://{parts.netloc}/monitors/{monitor_id}"


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc)
