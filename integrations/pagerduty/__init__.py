"""PagerDuty integration: page on-call through the Events API v2, note on the incident."""

from __future__ import annotations

import functools
from collections.abc import Callable

from integrations.pagerduty.actions import (
    AcknowledgeAction,
    NoteAction,
    ResolveAction,
    TriggerAction,
)
from integrations.pagerduty.client import (
    EventsApi,
    IncidentsApi,
    build_events_client,
    build_rest_client,
    checked_base_url,
)
from integrations.pagerduty.params import EventParams, NoteParams, TriggerParams
from integrations.pagerduty.routing import DEFAULT_REFERENCE, NO_ROUTING_KEY, RoutingKeys
from responder.actions import Action

__all__ = [
    "DEFAULT_REFERENCE",
    "NO_ROUTING_KEY",
    "AcknowledgeAction",
    "EventParams",
    "NoteAction",
    "NoteParams",
    "ResolveAction",
    "TriggerAction",
    "TriggerParams",
    "pagerduty_actions",
]


def pagerduty_actions(
    *,
    routing_key: str | None,
    api_token: str | None,
    events_url: str,
    api_url: str,
    secret: Callable[[str], str | None],
    from_email: str | None = None,
    timeout: float = 10.0,
) -> list[Action]:
    """pagerduty.trigger, .acknowledge, .resolve and .note.

    `routing_key` is the default integration key; a step may name another as `env:NAME`,
    which `secret` resolves at call time. The note needs `api_token` and `from_email`.
    A base URL that is neither https:// nor local raises ValueError here, at startup.
    """
    checked_base_url(events_url)
    checked_base_url(api_url)
    token = api_token.strip() if api_token else None
    sender = from_email.strip() if from_email else None
    default_key = routing_key.strip() if routing_key else None
    # Texts that come back from PagerDuty are scrubbed of every secret we hold.
    secrets = [s for s in (token, default_key) if s]
    events = EventsApi(
        functools.partial(build_events_client, base_url=events_url, timeout=timeout), secrets
    )
    notes = (
        IncidentsApi(build_rest_client(token, sender, api_url, timeout), secrets)
        if token and sender
        else None
    )
    routing = RoutingKeys(default_key, secret)
    return [
        TriggerAction(events, routing),
        AcknowledgeAction(events, routing),
        ResolveAction(events, routing),
        NoteAction(notes, sender),
    ]
