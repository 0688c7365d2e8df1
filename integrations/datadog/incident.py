"""datadog.incident, datadog.incident_timeline and datadog.incident_resolve (Incidents API v2)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from integrations.datadog import markdown as md
from integrations.datadog.base import (
    AppLinks,
    DatadogAction,
    NoParams,
    alert_links,
    alert_title,
    as_dict,
    as_list,
    ended_at,
    event_url,
    monitor_url,
    ref_from,
    run_marker,
)
from integrations.datadog.client import DatadogApi, Json
from integrations.datadog.lookup import Lookup, floor, look_for, looked
from responder.actions import (
    ACKNOWLEDGE,
    RESOLVE,
    STALE,
    ActionContext,
    ActionError,
    ActionResult,
    FollowUp,
    StepParams,
    incident_links,
    iso_utc,
    no_data_words,
    parse_time,
    resolved_as_stale,
    resolved_by_person,
    stale_resolved_at,
    stale_summary,
    step_params,
    text_or_none,
)
from responder.domain import Transition

Severity = Literal["SEV-1", "SEV-2", "SEV-3", "SEV-4", "SEV-5", "UNKNOWN"]
REF = "datadog_incident"
NO_INCIDENT = "no Datadog incident for this incident"
# Every incident, 100 a page (the API's maximum), at most 2,000 looked at.
SEARCH_PAGE = 100
SEARCH_PAGES = 20
SEARCH_QUERY = "state:(active OR stable OR resolved)"
_TITLE_MAX = 200


class IncidentParams(StepParams):
    """`datadog.incident`: declare a Datadog incident for this alert."""

    severity: Severity | None = None  # None: from the alert's priority (P1 -> SEV-1), or UNKNOWN
    title: str | None = None  # default: the monitor's name
    customer_impacted: bool = False
    customer_impact_scope: str | None = None
    teams: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)  # default: the alert's `service` tag
    # Datadog's commander is a user (a UUID), not a team; the team is listed first in `teams`.
    commander_team: str | None = None

    @model_validator(mode="after")
    def _scope_with_impact(self) -> IncidentParams:
        # Datadog: customer_impact_scope is required when customer_impacted is true.
        if self.customer_impacted and not (self.customer_impact_scope or "").strip():
            raise ValueError("customer_impacted: true needs customer_impact_scope")
        return self


class IncidentAction(DatadogAction):
    """A Datadog incident, declared once per run even across crashes and lost answers."""

    name: ClassVar[str] = "datadog.incident"
    params: ClassVar[type[StepParams]] = IncidentParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(IncidentParams, ctx)
        attributes = _create_body(ctx, params, self._links)["data"]["attributes"]
        return {
            "method": "CreateIncident",
            "title": attributes["title"],
            "fields": attributes["fields"],
            "customer_impacted": attributes["customer_impacted"],
            "customer_impact_scope": attributes.get("customer_impact_scope"),
            "search_first": SEARCH_QUERY if ctx.may_have_acted else None,
        }

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(IncidentParams, ctx)
        api = self._client()
        lookup: Lookup | None = None
        if ctx.may_have_acted:
            lookup = _earlier_incident(api, ctx)
            if lookup.found is not None:
                return self._result(
                    lookup.found, adopted=True, impacted=params.customer_impacted, lookup=lookup
                )
        created = api.create_incident(_create_body(ctx, params, self._links))
        data = created.get("data")
        if not isinstance(data, dict) or not data.get("id"):
            # Created, but we cannot tell which: the retry's search finds it by its marker.
            raise ActionError("datadog CreateIncident: answer without data.id", retryable=True)
        return self._result(data, adopted=False, impacted=params.customer_impacted, lookup=lookup)

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        if transition.is_recovery:
            return FollowUp("datadog.incident_resolve", {})
        # Repeats, and Triggered/Warn/No Data reaching an open incident (an escalation),
        # belong on the incident's timeline.
        return FollowUp("datadog.incident_timeline", {})

    def acknowledged(self, params: Mapping[str, Any]) -> FollowUp | None:
        return FollowUp("datadog.incident_timeline", {})

    def _result(
        self, data: Json, *, adopted: bool, impacted: bool, lookup: Lookup | None
    ) -> ActionResult:
        attributes = as_dict(data.get("attributes"))
        public_id = attributes.get("public_id")
        ref = {
            "id": str(data["id"]),
            "public_id": public_id,
            "url": self._links.incident(public_id if public_id is not None else data["id"]),
        }
        response: dict[str, Any] = {
            **ref,
            "title": attributes.get("title"),
            "severity": _field(attributes, "severity") or attributes.get("severity"),
            "customer_impacted": bool(attributes.get("customer_impacted", impacted)),
            "adopted": adopted,
            **looked(lookup),
        }
        return ActionResult(response=response, refs={REF: ref})


class IncidentTimelineAction(DatadogAction):
    """A later transition, added to the incident as a link to that notification's event.

    The v2 spec has no call that writes a timeline cell after creation (`initial_cells`
    exists only on create; the timeline routes in the spec belong to Cases). A `link`
    attachment is the closest: it carries a line of text and the Datadog event it is about,
    and Datadog lists it on the incident. A todo would wrongly ask someone to do something.
    """

    name: ClassVar[str] = "datadog.incident_timeline"
    params: ClassVar[type[StepParams]] = NoParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        step_params(NoParams, ctx)
        ref = ref_from(ctx, REF)
        title, url = _timeline_entry(ctx, self._links, ref)
        request: dict[str, Any] = {
            "method": "CreateIncidentAttachment",
            "incident_id": str(ref["id"]) if ref else None,
            "attachment_type": "link",
            "title": title,
            "documentUrl": url,
        }
        if ref is None:
            request["skip"] = NO_INCIDENT
        return request

    def execute(self, ctx: ActionContext) -> ActionResult:
        step_params(NoParams, ctx)
        ref = ref_from(ctx, REF)
        if ref is None:
            return ActionResult(response={}, skipped_reason=NO_INCIDENT)
        api = self._client()
        incident_id = str(ref["id"])
        title, url = _timeline_entry(ctx, self._links, ref)
        attachment_id, adopted = _attach_link(api, incident_id, title, url, ctx.may_have_acted)
        # No refs: the incident's Datadog reference stays the incident itself.
        return ActionResult(
            response={
                "incident_id": incident_id,
                "attachment_id": attachment_id,
                "title": title,
                "url": url,
                "adopted": adopted,
            }
        )


class IncidentResolveAction(DatadogAction):
    """The incident set to resolved; a retry sends the same update, so it is idempotent.

    Resolved as stale (nothing arrived, Datadog never said it recovered), it first says so
    on the incident, as a link attachment like the timeline's: without it, the incident
    would read as recovered to anyone who opens it.
    """

    name: ClassVar[str] = "datadog.incident_resolve"
    params: ClassVar[type[StepParams]] = NoParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        step_params(NoParams, ctx)
        ref = ref_from(ctx, REF)
        request: dict[str, Any] = {
            "method": "UpdateIncident",
            "incident_id": str(ref["id"]) if ref else None,
            "attributes": _resolve_attributes(ctx, ref),
        }
        note = _ending_note(ctx, self._links, ref)
        if note is not None:
            title, url = note
            request["first"] = {
                "method": "CreateIncidentAttachment",
                "attachment_type": "link",
                "title": title,
                "documentUrl": url,
            }
        if ref is None:
            request["skip"] = NO_INCIDENT
        return request

    def execute(self, ctx: ActionContext) -> ActionResult:
        step_params(NoParams, ctx)
        ref = ref_from(ctx, REF)
        if ref is None:
            return ActionResult(response={}, skipped_reason=NO_INCIDENT)
        api = self._client()
        incident_id = str(ref["id"])
        # Nobody saw a stale incident recover: the audit says when we gave up, and what we wrote.
        ending: dict[str, Any] = {"recovered_at": iso_utc(ended_at(ctx))}
        note = _ending_note(ctx, self._links, ref)
        if note is not None:
            # Before the update: a retry after a failed update finds the line and adds no twin.
            title, url = note
            attachment_id, adopted = _attach_link(api, incident_id, title, url, ctx.may_have_acted)
            stale = resolved_as_stale(ctx)
            ending = {
                "resolution": STALE if stale else RESOLVE,
                "resolved_at": iso_utc(stale_resolved_at(ctx)),
                "note": title,
                "note_attachment_id": attachment_id,
                "note_adopted": adopted,
            }
        body = {
            "data": {
                "id": incident_id,
                "type": "incidents",
                "attributes": _resolve_attributes(ctx, ref),
            }
        }
        answer = api.update_incident(incident_id, body)
        attributes = as_dict(as_dict(answer.get("data")).get("attributes"))
        return ActionResult(
            response={
                "id": incident_id,
                "public_id": ref.get("public_id"),
                "url": ref.get("url"),
                "state": _field(attributes, "state") or attributes.get("state"),
                "resolved": attributes.get("resolved"),
                **ending,
            }
        )


def _create_body(ctx: ActionContext, params: IncidentParams, links: AppLinks) -> Json:
    marker = run_marker(ctx)
    fields: dict[str, Any] = {
        "severity": {"type": "dropdown", "value": params.severity or _severity(ctx)},
        "state": {"type": "dropdown", "value": "active"},
        "detection_method": {"type": "dropdown", "value": "monitor"},
    }
    teams = _unique([params.commander_team or "", *params.teams])
    if teams:
        fields["teams"] = {"type": "autocomplete", "value": teams}
    services = _unique(params.services or [ctx.alert.tag("service") or ""])
    if services:
        fields["services"] = {"type": "autocomplete", "value": services}
    attributes: dict[str, Any] = {
        "title": f"{(params.title or alert_title(ctx)).strip()[:_TITLE_MAX]} [{marker}]",
        "customer_impacted": params.customer_impacted,
        "fields": fields,
        "initial_cells": [
            {"cell_type": "markdown", "content": {"content": _summary(ctx, links, marker)}}
        ],
    }
    if params.customer_impacted:
        attributes["customer_impact_scope"] = (params.customer_impact_scope or "").strip()
    return {"data": {"type": "incidents", "attributes": attributes}}


def _severity(ctx: ActionContext) -> Severity:
    priority = (ctx.priority or "").upper()
    mapping: dict[str, Severity] = {
        "P1": "SEV-1",
        "P2": "SEV-2",
        "P3": "SEV-3",
        "P4": "SEV-4",
        "P5": "SEV-5",
    }
    return mapping.get(priority, "UNKNOWN")


def _summary(ctx: ActionContext, links: AppLinks, marker: str) -> str:
    """The incident's first timeline cell: what fired, and where to look."""
    alert = ctx.alert
    lines = [f"**{md.escape(alert_title(ctx))}** ({md.escape(ctx.transition.value)})"]
    if alert.status_text:
        lines.append(md.escape(alert.status_text))
    facts = [
        ("Priority", ctx.priority),
        ("Scope", ctx.scope or "(all)"),
        ("Service", alert.tag("service")),
        ("Env", alert.tag("env")),
    ]
    lines.append(" · ".join(f"{name}: {md.escape(value)}" for name, value in facts if value))
    line = md.link_line([*alert_links(ctx, links), *incident_links(ctx.incident.refs, exclude=REF)])
    if line:
        lines.append(line)
    if alert.message:
        lines.append(md.fenced(alert.message))
    lines.append(f"_Declared by responder for incident {md.escape(ctx.incident.id)} ({marker})._")
    return "\n\n".join(lines)


def _earlier_incident(api: DatadogApi, ctx: ActionContext) -> Lookup:
    """Our incident from an attempt whose answer was lost, found by the marker in its title.

    The search API filters by facets only (state, severity...), not by title, so it pages
    through all incidents newest first until ours, or one declared before our incident.
    """
    marker = f"[{run_marker(ctx)}]"
    since = floor(ctx)

    def read(page: int) -> list[Json]:
        answer = api.search_incidents(
            SEARCH_QUERY, page_size=SEARCH_PAGE, page_offset=page * SEARCH_PAGE
        )
        found = as_dict(as_dict(answer.get("data")).get("attributes")).get("incidents")
        return [as_dict(as_dict(item).get("data")) for item in as_list(found)]

    def ours(incident: Json) -> Json | None:
        title = as_dict(incident.get("attributes")).get("title")
        mine = isinstance(title, str) and marker in title and incident.get("id")
        return incident if mine else None

    def older(incident: Json) -> bool:
        created = parse_time(as_dict(incident.get("attributes")).get("created"))
        return created is not None and created < since

    return look_for(
        "incident", read, ours, page_size=SEARCH_PAGE, max_pages=SEARCH_PAGES, older=older
    )


def _timeline_entry(
    ctx: ActionContext, links: AppLinks, ref: Mapping[str, Any] | None
) -> tuple[str, str]:
    """(title, documentUrl) of the link attachment for this transition."""
    moment = ctx.alert.date.astimezone(UTC)
    if ctx.alert.cause == ACKNOWLEDGE:
        title = f"Acknowledged at {moment:%H:%M} UTC by {ctx.alert.actor or 'someone'}"
        own = text_or_none(ref.get("url")) if ref else None
        return title[:_TITLE_MAX], own or links.app_url
    what = ctx.alert.status_text or alert_title(ctx)
    no_data = no_data_words(ctx.transition)
    if no_data is not None:
        # Said in words: "No Data" alone reads like "nothing wrong" to some, worse to others.
        what = f"{no_data} ({what})"
    title = " ".join(f"{ctx.transition.value} at {moment:%H:%M} UTC: {what}".split())
    if len(title) > _TITLE_MAX:
        title = title[: _TITLE_MAX - 1] + "…"
    fallback = text_or_none(ref.get("url")) if ref else None
    return title, event_url(ctx) or monitor_url(ctx, links) or fallback or links.app_url


def _ending_note(
    ctx: ActionContext, links: AppLinks, ref: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """The line saying why the incident ended when Datadog never said it recovered: resolved
    as stale, or by a person. None after a recovery, which speaks for itself."""
    if resolved_as_stale(ctx):
        return _stale_entry(ctx, links, ref)
    person = resolved_by_person(ctx)
    if person is None:
        return None
    moment = stale_resolved_at(ctx)  # our resolved_at, else the answer's own time
    title = f"Resolved by {person} at {moment:%H:%M} UTC, before Datadog reported a recovery"
    fallback = text_or_none(ref.get("url")) if ref else None
    return title[:_TITLE_MAX], monitor_url(ctx, links) or fallback or links.app_url


def _stale_entry(
    ctx: ActionContext, links: AppLinks, ref: Mapping[str, Any] | None
) -> tuple[str, str]:
    """(title, documentUrl) of the line saying the incident was resolved as stale."""
    moment = stale_resolved_at(ctx)
    summary = stale_summary(ctx).removeprefix("Resolved as stale: ")
    title = f"Resolved as stale at {moment:%H:%M} UTC: {summary}; Datadog never reported a recovery"
    fallback = text_or_none(ref.get("url")) if ref else None
    # Our own event has no Datadog event to link to: the monitor shows what it is doing now.
    return title[:_TITLE_MAX], monitor_url(ctx, links) or fallback or links.app_url


def _attach_link(
    api: DatadogApi, incident_id: str, title: str, url: str, check_first: bool
) -> tuple[str | None, bool]:
    """(attachment id, adopted): a link attachment on the incident, once even across retries."""
    if check_first:
        # Cheap to check, and a doubled line would confuse whoever reads the incident.
        found = _find_attachment(api.list_incident_attachments(incident_id), title, url)
        if found is not None:
            return found, True
    body = {
        "data": {
            "type": "incident_attachments",
            "attributes": {
                "attachment_type": "link",
                "attachment": {"documentUrl": url, "title": title},
            },
        }
    }
    data = api.create_incident_attachment(incident_id, body).get("data")
    return (str(data.get("id")) if isinstance(data, dict) else None), False


def _find_attachment(answer: Json, title: str, url: str) -> str | None:
    items = answer.get("data")
    for item in items if isinstance(items, list) else []:
        attributes = item.get("attributes") if isinstance(item, dict) else None
        attachment = attributes.get("attachment") if isinstance(attributes, dict) else None
        if (
            isinstance(attachment, dict)
            and attachment.get("title") == title
            and attachment.get("documentUrl") == url
            and item.get("id")
        ):
            return str(item["id"])
    return None


def _resolve_attributes(ctx: ActionContext, ref: Mapping[str, Any] | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"fields": {"state": {"type": "dropdown", "value": "resolved"}}}
    if ref is not None and ref.get("customer_impacted") is True:
        # Datadog computes the customer impact duration from start and end.
        attributes["customer_impact_end"] = iso_utc(ended_at(ctx))
    return attributes


def _field(attributes: Mapping[str, Any], name: str) -> Any:
    fields = attributes.get("fields")
    field = fields.get(name) if isinstance(fields, dict) else None
    return field.get("value") if isinstance(field, dict) else None


def _unique(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        cleaned = value.strip()
        if cleaned and cleaned not in out:
            out.append(cleaned)
    return out
