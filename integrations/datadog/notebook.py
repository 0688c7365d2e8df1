"""datadog.notebook and datadog.notebook_resolve: the incident's RCA notebook (Notebooks API v1)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from integrations.datadog import cells as nb
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
    now_utc,
    ref_from,
    run_marker,
)
from integrations.datadog.client import DatadogApi, Json
from integrations.datadog.lookup import Lookup, look_for, looked
from integrations.datadog.monitor_query import graph_query
from responder.actions import (
    ActionContext,
    ActionError,
    ActionResult,
    FollowUp,
    StepParams,
    format_duration,
    incident_links,
    iso_utc,
    last_delivery_at,
    resolved_as_stale,
    stale_resolved_at,
    step_params,
    text_or_none,
)
from responder.domain import Transition

REF = "datadog_notebook"
NO_NOTEBOOK = "no RCA notebook for this incident"
ALREADY_RESOLVED = "the notebook already has a resolution note"
# Written at the end of the resolution cell; finding it again makes the resolve idempotent.
RESOLUTION_MARK = "Resolution note added by responder."
NAME_MAX = 80  # Datadog refuses longer notebook names
# Notebooks named with our marker, 100 a page (the API's default), at most 1,000 looked at.
SEARCH_PAGE = 100
SEARCH_PAGES = 10
_WINDOW = re.compile(r"^\s*(\d+)\s*(m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 1440}


class RelatedSignal(StepParams):
    """Another graph worth seeing next to the monitor's own: a metric query or a log search."""

    title: str
    query: str
    kind: Literal["metric", "logs"]


class NotebookParams(StepParams):
    """`datadog.notebook`: a root-cause notebook for this alert."""

    template: Literal["rca"] = "rca"
    title: str | None = None  # default: "RCA: <monitor name>"
    related: list[RelatedSignal] = Field(default_factory=list)
    # How far before the trigger the graphs start: minutes, or "90m", "2h", "1d".
    window_before: int = 60

    @field_validator("window_before", mode="before")
    @classmethod
    def _minutes(cls, value: object) -> int:
        if isinstance(value, bool):
            raise ValueError("window_before must be minutes, or a duration such as 2h")
        if isinstance(value, int):
            minutes = value
        else:
            match = _WINDOW.match(str(value))
            if match is None:
                raise ValueError("window_before must be minutes, or a duration such as 90m, 2h")
            minutes = int(match.group(1)) * _UNIT_MINUTES[(match.group(2) or "m").lower()]
        if not 1 <= minutes <= 7 * 1440:
            raise ValueError("window_before must be between 1 minute and 7 days")
        return minutes


class NotebookAction(DatadogAction):
    """An RCA notebook: summary and links, the monitor's graph, related signals, timeline."""

    name: ClassVar[str] = "datadog.notebook"
    params: ClassVar[type[StepParams]] = NotebookParams
    wants_runs: ClassVar[bool] = True

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(NotebookParams, ctx)
        attributes = _create_body(ctx, params, self._links)["data"]["attributes"]
        return {
            "method": "CreateNotebook",
            "name": attributes["name"],
            "time": attributes["time"],
            "cells": [nb.cell_summary(cell) for cell in attributes["cells"]],
            "search_first": run_marker(ctx) if ctx.may_have_acted else None,
        }

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(NotebookParams, ctx)
        api = self._client()
        lookup: Lookup | None = None
        if ctx.may_have_acted:
            lookup = _earlier_notebook(api, run_marker(ctx))
            if lookup.found is not None:
                return self._result(lookup.found, adopted=True, lookup=lookup)
        created = api.create_notebook(_create_body(ctx, params, self._links))
        data = as_dict(created.get("data"))
        if data.get("id") is None:
            # Created, but we cannot tell which: the retry's search finds it by its marker.
            raise ActionError("datadog CreateNotebook: answer without data.id", retryable=True)
        return self._result(data, adopted=False, lookup=lookup)

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        return FollowUp("datadog.notebook_resolve", {}) if transition.is_recovery else None

    def _result(self, data: Json, *, adopted: bool, lookup: Lookup | None) -> ActionResult:
        attributes = as_dict(data.get("attributes"))
        ref = {"id": data["id"], "url": self._links.notebook(data["id"])}
        cells = attributes.get("cells")
        response: dict[str, Any] = {
            **ref,
            "name": attributes.get("name"),
            "cells": len(cells) if isinstance(cells, list) else None,
            "adopted": adopted,
            **looked(lookup),
        }
        return ActionResult(response=response, refs={REF: ref})


class NotebookResolveAction(DatadogAction):
    """A resolution cell appended to the RCA notebook: time to resolve, who acked, timeline."""

    name: ClassVar[str] = "datadog.notebook_resolve"
    params: ClassVar[type[StepParams]] = NoParams
    wants_runs: ClassVar[bool] = True

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        step_params(NoParams, ctx)
        ref = ref_from(ctx, REF)
        request: dict[str, Any] = {
            "method": "GetNotebook, then UpdateNotebook (existing cells + 1)",
            "notebook_id": ref.get("id") if ref else None,
            "cell": nb.cell_summary(nb.markdown_cell(_resolution_text(ctx))),
        }
        if ref is None:
            request["skip"] = NO_NOTEBOOK
        return request

    def execute(self, ctx: ActionContext) -> ActionResult:
        step_params(NoParams, ctx)
        ref = ref_from(ctx, REF)
        if ref is None:
            return ActionResult(response={}, skipped_reason=NO_NOTEBOOK)
        api = self._client()
        notebook_id = _notebook_id(ref.get("id"))
        url = self._links.notebook(notebook_id)
        attributes = as_dict(as_dict(api.get_notebook(notebook_id).get("data")).get("attributes"))
        existing = attributes.get("cells")
        cells = existing if isinstance(existing, list) else []
        response: dict[str, Any] = {"id": notebook_id, "url": url}
        if any(RESOLUTION_MARK in nb.cell_text(cell) for cell in cells):
            return ActionResult(
                response={**response, "cells_added": 0}, skipped_reason=ALREADY_RESOLVED
            )
        # PUT replaces the notebook: every existing cell goes back with its id, then ours.
        kept = [
            {"id": cell["id"], "type": "notebook_cells", "attributes": cell.get("attributes")}
            for cell in cells
            if isinstance(cell, dict) and cell.get("id")
        ]
        update: dict[str, Any] = {
            "name": attributes.get("name") or "",
            "time": attributes.get("time") or {"live_span": "1d"},
            "cells": [*kept, nb.markdown_cell(_resolution_text(ctx))],
        }
        for optional in ("metadata", "template_variables", "status"):
            if attributes.get(optional) is not None:
                update[optional] = attributes[optional]
        api.update_notebook(notebook_id, {"data": {"type": "notebooks", "attributes": update}})
        seconds = _seconds_to_resolve(ctx)
        return ActionResult(
            response={
                **response,
                "cells_added": 1,
                "time_to_resolve_seconds": seconds,
            }
        )


def _create_body(ctx: ActionContext, params: NotebookParams, links: AppLinks) -> Json:
    marker = run_marker(ctx)
    opened = ctx.incident.opened_at
    start = opened - timedelta(minutes=params.window_before)
    cells = [nb.markdown_cell(_summary(ctx, links))]
    graph = graph_query(ctx.alert.query)
    if graph is not None:
        title = "Monitor query" if graph.kind == "metric" else "Monitor log search"
        if graph.kind == "metric":
            cells.append(nb.timeseries_cell(title, graph.query, graph.marker))
        else:
            cells.append(nb.log_stream_cell(title, graph.query))
    for signal in params.related:
        cells.append(nb.signal_cell(signal.kind, signal.title, signal.query))
    cells.append(nb.markdown_cell(_timeline_text(ctx.runs, _utc(opened))))
    attributes = {
        "name": _name(params.title or f"RCA: {alert_title(ctx)}", marker),
        "status": "published",
        "metadata": {"type": "investigation"},
        # From before the trigger to now, and kept live so that the recovery shows up too.
        "time": {"start": iso_utc(start), "end": iso_utc(max(now_utc(), opened)), "live": True},
        "cells": cells,
    }
    return {"data": {"type": "notebooks", "attributes": attributes}}


def _name(title: str, marker: str) -> str:
    suffix = f" [{marker}]"
    room = NAME_MAX - len(suffix)
    base = " ".join(title.split())
    if len(base) > room:
        base = base[: room - 1] + "…"
    return base + suffix


def _summary(ctx: ActionContext, links: AppLinks) -> str:
    alert = ctx.alert
    lines = [f"## {md.escape(alert_title(ctx), 200)}"]
    if alert.status_text:
        lines.append(md.escape(alert.status_text))
    facts = [
        ("Transition", ctx.transition.value),
        ("Priority", ctx.priority),
        ("Scope", ctx.scope or "(all)"),
        ("Service", alert.tag("service")),
        ("Env", alert.tag("env")),
        ("Opened", f"{_utc(ctx.incident.opened_at):%Y-%m-%d %H:%M} UTC"),
    ]
    lines.append(" · ".join(f"**{name}**: {md.escape(value)}" for name, value in facts if value))
    line = md.link_line([*alert_links(ctx, links), *incident_links(ctx.incident.refs, exclude=REF)])
    if line:
        lines.append(line)
    if alert.query and graph_query(alert.query) is None:
        lines.append("The monitor's query cannot be graphed here:\n\n" + md.fenced(alert.query))
    if alert.message:
        lines.append(md.fenced(alert.message))
    return "\n\n".join(lines)


def _timeline_text(runs: Sequence[Mapping[str, Any]], opened: datetime) -> str:
    return (
        f"## Timeline\n\nIncident opened {opened:%Y-%m-%d %H:%M:%S} UTC. "
        f"What responder did so far:\n\n{md.runs_list(runs)}"
    )


def _resolution_text(ctx: ActionContext) -> str:
    acked = _acknowledged_by(ctx)
    lines = [
        "## Resolution",
        _ending(ctx),
        f"Acknowledged by: {md.escape(acked) if acked else 'not recorded'}.",
        "### Timeline",
        md.runs_list(ctx.runs),
        f"_{RESOLUTION_MARK}_",
    ]
    return "\n\n".join(lines)


def _ending(ctx: ActionContext) -> str:
    """How the incident ended: Datadog's recovery, or our stale timer, which must never read
    as a recovery (Datadog never said so; the problem may have gone on unnotified)."""
    opened = f"opened {_utc(ctx.incident.opened_at):%Y-%m-%d %H:%M:%S} UTC"
    if resolved_as_stale(ctx):
        resolved = stale_resolved_at(ctx)
        last = last_delivery_at(ctx)
        quiet = max((resolved - last).total_seconds(), 0)
        return (
            f"Resolved as stale at {resolved:%Y-%m-%d %H:%M:%S} UTC (no delivery for "
            f"{format_duration(quiet)}, since {last:%Y-%m-%d %H:%M:%S} UTC; {opened}). "
            "Datadog never reported a recovery."
        )
    seconds = _seconds_to_resolve(ctx)
    took = f" after {format_duration(seconds)}" if seconds is not None else ""
    return f"Recovered at {_utc(ended_at(ctx)):%Y-%m-%d %H:%M:%S} UTC{took} ({opened})."


def _seconds_to_resolve(ctx: ActionContext) -> int | None:
    took = ctx.time_to_recover
    return int(took.total_seconds()) if took is not None else None


def _utc(moment: datetime) -> datetime:
    # What people read is labelled UTC, whatever zone the time was read in.
    return moment.astimezone(UTC)


def _acknowledged_by(ctx: ActionContext) -> str | None:
    """Whoever acknowledged, if any vendor's ref recorded it (e.g. a PagerDuty acknowledger)."""
    for source in ctx.incident.refs.values():
        if isinstance(source, Mapping):
            who = text_or_none(source.get("acknowledged_by"))
            if who:
                return who
    return None


def _earlier_notebook(api: DatadogApi, marker: str) -> Lookup:
    """Our notebook from an attempt whose answer was lost: its name carries the marker.

    Datadog's search matches the marker anywhere in a name (or author handle), so clones
    and notes about ours match too; oldest first, the first named as ours is the original.
    """
    tag = f"[{marker}]"

    def read(page: int) -> list[Json]:
        answer = api.list_notebooks(marker, count=SEARCH_PAGE, start=page * SEARCH_PAGE)
        return [as_dict(item) for item in as_list(answer.get("data"))]

    def ours(notebook: Json) -> Json | None:
        name = as_dict(notebook.get("attributes")).get("name")
        mine = isinstance(name, str) and tag in name and notebook.get("id") is not None
        return notebook if mine else None

    return look_for("notebook", read, ours, page_size=SEARCH_PAGE, max_pages=SEARCH_PAGES)


def _notebook_id(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ActionError(
            f"datadog: notebook id {value!r} is not a number", retryable=False
        ) from None
