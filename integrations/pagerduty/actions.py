"""pagerduty.trigger, .acknowledge, .resolve (Events API v2) and pagerduty.note (REST API v2).

One PagerDuty alert per incident: every event carries the incident's dedup key, so a retried
or redelivered trigger is deduplicated by PagerDuty instead of paging twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from integrations.pagerduty.client import EventsApi, IncidentsApi
from integrations.pagerduty.events import (
    Event,
    dedup_key,
    follow_up_event,
    recorded_dedup_key,
    trigger_event,
)
from integrations.pagerduty.params import EventParams, NoteParams, TriggerParams
from integrations.pagerduty.routing import (
    NO_ROUTING_KEY,
    Routing,
    RoutingKeys,
    recorded_reference,
)
from responder.actions import (
    Action,
    ActionContext,
    ActionError,
    ActionResult,
    FollowUp,
    Pace,
    StepParams,
    step_params,
)
from responder.domain import Transition

# PagerDuty opens the incident for an event asynchronously, usually within seconds.
INCIDENT_PENDING_RETRY = 15.0
# About 120 events a minute per routing key (VENDORS.md); a little under that.
EVENTS_INTERVAL = 0.55
# REST API v2 allows 960 requests a minute per token; a note takes up to three.
NOTE_INTERVAL = 0.2
NO_ALERT = "no PagerDuty alert was triggered for this incident"


class _EventAction(Action):
    """One Events API v2 event per run: routing, the request as audited, the call."""

    params: ClassVar[type[StepParams]]
    markup: ClassVar[str] = "plain"

    def __init__(self, events: EventsApi, routing: RoutingKeys) -> None:
        self._events = events
        self._routing = routing

    @property
    def configured(self) -> bool:
        # A step may name its own key, which only `execute` can look up: without any key
        # the run is skipped there, with the request it would have sent.
        return True

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        return _request(self._routing_for(ctx), self._event(ctx))

    def execute(self, ctx: ActionContext) -> ActionResult:
        routing, event = self._routing_for(ctx), self._event(ctx)
        if routing.key is None:
            return ActionResult(
                response={"request": _request(routing, event)}, skipped_reason=NO_ROUTING_KEY
            )
        answer = self._events.send(routing.key, event)
        response: dict[str, Any] = {**answer, "routing_key": routing.reference}
        if routing.note:
            response["note"] = routing.note
        refs = self._refs(response)
        # PagerDuty's webhooks name the incident by this key (its `incident_key`).
        names = {"pagerduty": str(response["dedup_key"])} if refs.get("pagerduty") else {}
        return ActionResult(response=response, refs=refs, names=names)

    def pace(self, ctx: ActionContext) -> Pace | None:
        try:
            routing = self._routing_for(ctx)
        except ActionError:
            return None  # invalid params: `execute` fails the run, nothing to pace
        # Keyed by the reference, never by the key itself.
        return Pace(f"pagerduty:{routing.reference}", EVENTS_INTERVAL)

    def _routing_for(self, ctx: ActionContext) -> Routing:
        raise NotImplementedError

    def _event(self, ctx: ActionContext) -> Event:
        raise NotImplementedError

    def _refs(self, response: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}


class TriggerAction(_EventAction):
    """Opens (or, on a retry, finds) the incident's PagerDuty alert."""

    name: ClassVar[str] = "pagerduty.trigger"
    params: ClassVar[type[StepParams]] = TriggerParams

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        if transition.is_recovery:
            return FollowUp("pagerduty.resolve", {"routing_key": params.get("routing_key")})
        # Repeats and escalations reach an alert that is already open: paging again would
        # only be deduplicated, and the people on call already know.
        return None

    def acknowledged(self, params: Mapping[str, Any]) -> FollowUp | None:
        # Acknowledged elsewhere (Slack, the API): the page stops escalating in PagerDuty too.
        return FollowUp("pagerduty.acknowledge", {"routing_key": params.get("routing_key")})

    def _routing_for(self, ctx: ActionContext) -> Routing:
        return self._routing.resolve(step_params(TriggerParams, ctx).routing_key)

    def _event(self, ctx: ActionContext) -> Event:
        return trigger_event(ctx, step_params(TriggerParams, ctx), dedup_key(ctx.incident))

    def _refs(self, response: Mapping[str, Any]) -> Mapping[str, Any]:
        # Follow-ups and other vendors find the alert here, by name only.
        return {
            "pagerduty": {"dedup_key": response["dedup_key"], "routing": response["routing_key"]}
        }


class _UpdateAction(_EventAction):
    """acknowledge / resolve: the trigger's dedup key, sent with the trigger's routing key."""

    params: ClassVar[type[StepParams]] = EventParams
    event_action: ClassVar[str]

    def _routing_for(self, ctx: ActionContext) -> Routing:
        # The trigger run's own record first (a follow-up's parent), then the step, then
        # what the incident remembers: an event for another integration would be dropped.
        reference = (
            recorded_reference(ctx.parent)
            or step_params(EventParams, ctx).routing_key
            or recorded_reference(ctx.incident.refs)
        )
        return self._routing.resolve(reference)

    def _event(self, ctx: ActionContext) -> Event:
        dedup = recorded_dedup_key(ctx.parent, ctx.incident.refs) or dedup_key(ctx.incident)
        return follow_up_event(self.event_action, dedup)


class AcknowledgeAction(_UpdateAction):
    name: ClassVar[str] = "pagerduty.acknowledge"
    event_action: ClassVar[str] = "acknowledge"


class ResolveAction(_UpdateAction):
    name: ClassVar[str] = "pagerduty.resolve"
    event_action: ClassVar[str] = "resolve"


class NoteAction(Action):
    """A note on the PagerDuty incident that the incident's trigger opened."""

    name: ClassVar[str] = "pagerduty.note"
    params: ClassVar[type[StepParams]] = NoteParams
    markup: ClassVar[str] = "plain"
    needs: ClassVar[str] = "PAGERDUTY_API_TOKEN and PAGERDUTY_FROM_EMAIL"

    def __init__(self, api: IncidentsApi | None, from_email: str | None) -> None:
        self._api = api
        self._from = from_email

    @property
    def configured(self) -> bool:
        return self._api is not None

    def pace(self, ctx: ActionContext) -> Pace | None:
        return Pace("pagerduty:rest", NOTE_INTERVAL)

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(NoteParams, ctx)
        dedup = _note_dedup_key(ctx)
        request: dict[str, Any] = {
            "method": "GET /incidents",
            "params": {"incident_key": dedup or dedup_key(ctx.incident), "date_range": "all"},
            "then": {
                "method": "POST /incidents/{id}/notes",
                "from": self._from,
                "note": {"content": params.content},
            },
        }
        if dedup is None:
            request["skip"] = NO_ALERT
        return request

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(NoteParams, ctx)
        api = self._client()
        dedup = _note_dedup_key(ctx)
        if dedup is None:
            return ActionResult(response={}, skipped_reason=NO_ALERT)
        incident = _newest(api.find_by_key(dedup))
        if incident is None:
            raise ActionError(
                f"pagerduty note: no PagerDuty incident for dedup key {dedup} yet",
                retryable=True,
                retry_after=INCIDENT_PENDING_RETRY,
                response={"error": "incident_not_found", "dedup_key": dedup},
            )
        incident_id = str(incident["id"])
        note = None
        if ctx.may_have_acted:
            # The answer to an earlier attempt may have been lost after PagerDuty saved it.
            note = _same_note(api.notes(incident_id), params.content)
        adopted = note is not None
        if note is None:
            note = api.add_note(incident_id, params.content)
        url = incident.get("html_url")
        response = {
            "dedup_key": dedup,
            "incident_id": incident_id,
            "incident_number": incident.get("incident_number"),
            "incident_url": url if isinstance(url, str) else None,
            "note_id": note.get("id"),
            "adopted": adopted,
        }
        # The trigger's reference, completed with what only the REST API knows: kept whole,
        # so a runner that replaces refs rather than merging them loses nothing.
        ref = {**(_pagerduty_ref(ctx.incident.refs) or {}), "incident_id": incident_id}
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            ref["url"] = url
        return ActionResult(response=response, refs={"pagerduty": ref})

    def _client(self) -> IncidentsApi:
        if self._api is None:
            # The runner records unconfigured runs as skipped; reaching this is a wiring bug.
            raise ActionError(
                "pagerduty.note is not configured (no API token or From email)", retryable=False
            )
        return self._api


def _request(routing: Routing, event: Event) -> dict[str, Any]:
    """The event as sent, with the routing key's reference in place of the key."""
    return {"routing_key": routing.reference, **event}


def _note_dedup_key(ctx: ActionContext) -> str | None:
    """Only an incident with a PagerDuty reference can have a PagerDuty incident to note on."""
    if _pagerduty_ref(ctx.incident.refs) is None:
        return None
    return recorded_dedup_key(ctx.incident.refs) or dedup_key(ctx.incident)


def _pagerduty_ref(refs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    ref = refs.get("pagerduty")
    return ref if isinstance(ref, Mapping) else None


def _newest(incidents: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [i for i in incidents if isinstance(i.get("id"), str) and i["id"]]
    # ISO 8601 UTC timestamps sort as text.
    return max(found, key=lambda i: str(i.get("created_at") or ""), default=None)


def _same_note(notes: list[dict[str, Any]], content: str) -> dict[str, Any] | None:
    # Same text counts as ours: adopting a twin from another run beats noting twice.
    for note in notes:
        if note.get("content") == content:
            return note
    return None
