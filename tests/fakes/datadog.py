"""A local fake of the Datadog API: incidents (v2), notebooks (v1), workflow instances (v2).

Runs a ThreadingHTTPServer on 127.0.0.1 and checks requests against what Datadog's OpenAPI
specs require (required fields, types, enums, lengths), written down below as constants that
name the schema they come from; answers have the shapes of the SDK repository's recorded
cassettes. Tests inspect the state and inject faults (tests.fakes.server) by operationId.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import Answer, LocalServer, Request

Query = dict[str, str]

USER = {
    "uuid": "3ad549bf-eba0-11e9-a77a-0705486660d0",
    "handle": "responder@example.com",
    "email": "responder@example.com",
    "name": "responder",
    "icon": "https://secure.gravatar.com/avatar/0?s=48&d=retro",
}

# What the API accepts. Schema names are those of Datadog's OpenAPI documents as the
# datadog-api-client SDK (2.62) ships them: `.generator/schemas/v1/openapi.yaml` (notebooks)
# and `v2/openapi.yaml` (incidents, workflow instances), `components/schemas/<name>`.
# v2 IncidentSeverity
SEVERITIES = ("UNKNOWN", "SEV-0", "SEV-1", "SEV-2", "SEV-3", "SEV-4", "SEV-5")
# The fields every organisation has, with their kind and (for dropdowns) their options: the
# spec leaves fields to each organisation's settings, so these are Datadog's defaults as the
# SDK's recorded incident scenarios show them.
INCIDENT_FIELDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "severity": ("dropdown", SEVERITIES),
    "state": ("dropdown", ("active", "stable", "resolved")),
    "detection_method": ("dropdown", ("customer", "employee", "monitor", "other", "unknown")),
    "root_cause": ("textbox", None),
    "summary": ("textbox", None),
    "services": ("autocomplete", None),
    "teams": ("autocomplete", None),
}
# v2 IncidentFieldAttributesSingleValueType and IncidentFieldAttributesValueType
SINGLE_KINDS = ("dropdown", "textbox")
MULTI_KINDS = ("multiselect", "textarray", "metrictag", "autocomplete")
SEARCH_SORTS = ("created", "-created")  # v2 IncidentSearchSortOrder
ATTACHMENT_TYPES = ("postmortem", "link")  # v2 AttachmentDataAttributesAttachmentType
PAGE_SIZE_MAX = 100  # v2 parameters PageSize: "the maximum allowed value is 100"
LIVE_SPANS = frozenset(  # v1 WidgetLiveSpan
    ("1m", "5m", "10m", "15m", "30m", "1h", "4h", "1d", "2d", "1w", "1mo", "3mo", "6mo")
) | {"week_to_date", "month_to_date", "1y", "alert"}
# v1 NotebookCellCreateRequestAttributes: the definitions a cell may hold.
CELL_TYPES = ("markdown", "timeseries", "toplist", "heatmap", "distribution", "log_stream")
NOTEBOOK_NAME_MAX = 80  # v1 NotebookCreateDataAttributes.name maxLength
NOTEBOOK_STATUSES = ("published",)  # v1 NotebookStatus
NOTEBOOK_TYPES = ("postmortem", "runbook", "investigation", "documentation", "report")  # v1
GRAPH_SIZES = ("xs", "s", "m", "l", "xl")  # v1 NotebookGraphSize
DISPLAY_TYPES = ("area", "bars", "line", "overlay")  # v1 WidgetDisplayType
MESSAGE_DISPLAYS = ("inline", "expanded-md", "expanded-lg")  # v1 WidgetMessageDisplay
# v1 WidgetSort, and the values v1 ListNotebooks' parameters sort_dir and sort_field describe.
SORT_ORDERS = ("asc", "desc")
NOTEBOOK_SORT_FIELDS = ("modified", "name", "created")
# Workflow instance states, as the SDK's recorded workflow instance scenarios answer them.
RUNNING, SUCCEEDED, FAILED, CANCELED = "IN_PROGRESS", "SUCCEEDED", "FAILED", "CANCELED"
STATUS_NAMES = {RUNNING: "Running", SUCCEEDED: "Succeeded", FAILED: "Failed", CANCELED: "Canceled"}
DEFAULT_ERRORS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not found",
    429: "Too many requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class DatadogError(Exception):
    """An error answer: HTTP `status` with {"errors": errors}."""

    def __init__(self, status: int, *errors: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = list(errors) or [DEFAULT_ERRORS.get(status, "Error")]
        self.headers = headers or {}


def _bad(message: str) -> DatadogError:
    return DatadogError(400, message)


@dataclass
class FakeCall:
    """One request as received, keys excluded."""

    route: str  # the operationId, or "unknown"
    method: str
    path: str
    query: Query
    body: Any


@dataclass
class FakeIncident:
    id: str
    public_id: int
    attributes: dict[str, Any]
    initial_cells: list[dict[str, Any]]
    attachments: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return str(self.attributes["title"])

    @property
    def state(self) -> str:
        return str(self.attributes["fields"]["state"]["value"])


@dataclass
class FakeNotebook:
    id: int
    name: str
    cells: list[dict[str, Any]]
    time: dict[str, Any]
    extra: dict[str, Any]  # status, metadata, template_variables as sent
    created: str
    modified: str
    updates: int = 0

    def markdown(self) -> list[str]:
        return [
            c["attributes"]["definition"]["text"]
            for c in self.cells
            if c["attributes"]["definition"]["type"] == "markdown"
        ]


@dataclass
class FakeInstance:
    id: str
    workflow_id: str
    payload: dict[str, Any]
    started: str
    status: str = RUNNING
    ended: str | None = None
    polls: int = 0
    # Finish with `final` once `finish_after` polls (GETs) have been answered.
    final: str | None = None
    finish_after: int = 0


class FakeDatadog(LocalServer):
    """`with FakeDatadog(workflows={"wf-id"}) as fake: fake.base_url ...`"""

    def __init__(
        self,
        api_key: str = "dd-api-test",
        app_key: str = "dd-app-test",
        workflows: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.api_key, self.app_key = api_key, app_key
        self.workflows = set(workflows or ())
        self._lock = threading.Lock()
        self._calls: list[FakeCall] = []
        self._incidents: dict[str, FakeIncident] = {}
        self._notebooks: dict[int, FakeNotebook] = {}
        self._instances: dict[str, FakeInstance] = {}
        self._public_id = 100
        self._notebook_id = 774480
        self._plan: tuple[str | None, int] = (None, 0)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests look at and control ----------------------------------------------------

    @property
    def calls(self) -> list[FakeCall]:
        """Every request, rejected ones included, without its keys."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, route: str) -> list[FakeCall]:
        return [call for call in self.calls if call.route == route]

    def incidents(self) -> list[FakeIncident]:
        with self._lock:
            return list(self._incidents.values())

    def notebooks(self) -> list[FakeNotebook]:
        with self._lock:
            return list(self._notebooks.values())

    def instances(self) -> list[FakeInstance]:
        with self._lock:
            return list(self._instances.values())

    def fail_next(
        self,
        route: str,
        status: int = 429,
        *,
        count: int = 1,
        retry_after: str | None = None,
        rate_limit_reset: str | None = None,
        errors: list[Any] | None = None,
    ) -> None:
        """The next `count` calls of `route` (an operationId) answer `status` {"errors": ...}."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if rate_limit_reset is not None:
            headers.update({"X-RateLimit-Limit": "60", "X-RateLimit-Period": "60"})
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": rate_limit_reset})
        body = errors if errors is not None else [DEFAULT_ERRORS.get(status, "Error")]
        self.answer_next(route, (status, headers, {"errors": body}), count)

    def refusal(self, route: str, status: int, message: str | None) -> Answer:
        return status, {}, {"errors": [message or DEFAULT_ERRORS.get(status, "Error")]}

    def finish_instances(self, status: str | None = SUCCEEDED, after_polls: int = 0) -> None:
        """Instances created from now on end with `status` after `after_polls` GETs."""
        with self._lock:
            self._plan = (status, after_polls)

    def set_instance_status(self, instance_id: str, status: str) -> None:
        with self._lock:
            self._set_status(self._instances[instance_id], status)

    def add_instance(
        self, workflow_id: str, payload: dict[str, Any], started: datetime | None = None
    ) -> str:
        """An instance somebody else started (for adoption tests), now or at `started`."""
        with self._lock:
            instance = self._new_instance(workflow_id, payload)
            if started is not None:
                instance.started = _iso(started, z=True)
            return instance.id

    def add_incident(self, title: str, created: datetime | None = None) -> str:
        """An incident somebody else declared, now or at `created`, as CreateIncident does."""
        attributes = {"title": title, "customer_impacted": False}
        body = {"data": {"type": "incidents", "attributes": attributes}}
        with self._lock:
            incident = self._CreateIncident(query={}, body=body)[2]["data"]
            if created is not None:
                self._incidents[incident["id"]].attributes["created"] = _iso(created)
            return str(incident["id"])

    def add_notebook(self, name: str) -> int:
        """A notebook somebody else wrote, as CreateNotebook makes it."""
        text = {"type": "markdown", "text": name}
        cell = {"type": "notebook_cells", "attributes": {"definition": text}}
        attributes = {"name": name, "cells": [cell], "time": {"live_span": "1d"}}
        with self._lock:
            answer = self._CreateNotebook(
                query={}, body={"data": {"type": "notebooks", "attributes": attributes}}
            )
            return int(answer[2]["data"]["id"])

    # -- request handling ------------------------------------------------------------------

    def answer(self, request: Request) -> Answer:
        headers = {key.lower(): value for key, value in request.headers.items()}
        return self.handle(request.method, request.target, request.body, headers)

    def handle(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> Answer:
        url = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        route, handler, args = self._route(method, url.path)
        try:
            parsed: Any = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = body.decode(errors="replace")
        with self._lock:
            self._calls.append(FakeCall(route, method, url.path, query, parsed))
        return self.respond(route, lambda: self._dispatch(handler, args, query, parsed, headers))

    def _route(
        self, method: str, path: str
    ) -> tuple[str, Callable[..., Answer] | None, tuple[str, ...]]:
        for verb, pattern, name in ROUTES:
            match = pattern.fullmatch(path.rstrip("/"))
            if match and verb == method:
                return name, getattr(self, f"_{name}"), match.groups()
        return "unknown", None, ()

    def _dispatch(
        self,
        handler: Callable[..., Answer] | None,
        args: tuple[str, ...],
        query: Query,
        body: Any,
        headers: dict[str, str],
    ) -> Answer:
        try:
            # Datadog answers 403 for a missing or wrong key, before anything else.
            if headers.get("dd-api-key") != self.api_key:
                raise DatadogError(403, "Forbidden")
            if headers.get("dd-application-key") != self.app_key:
                raise DatadogError(403, "Forbidden")
            if handler is None:
                raise DatadogError(404, "Not found")
            with self._lock:
                return handler(*args, query=query, body=body)
        except DatadogError as exc:
            return exc.status, exc.headers, {"errors": exc.errors}

    # -- incidents (called with the lock held) ---------------------------------------------

    def _CreateIncident(self, *, query: Query, body: Any) -> Answer:
        data = _data(body, "incidents")
        attributes = _obj(data.get("attributes"), "data.attributes")
        _only(attributes, "data.attributes", _CREATE_KEYS)
        title = _str(_req(attributes, "title", "data.attributes"), "data.attributes.title")
        if not title.strip():
            raise _bad("data.attributes.title: must not be empty")
        impacted = _bool(
            _req(attributes, "customer_impacted", "data.attributes"),
            "data.attributes.customer_impacted",
        )
        scope = attributes.get("customer_impact_scope")
        if scope is not None:
            _str(scope, "data.attributes.customer_impact_scope")
        if impacted and not scope:
            raise _bad("data.attributes.customer_impact_scope: required when customer_impacted")
        fields = _fields(attributes.get("fields"), "data.attributes.fields")
        cells = _initial_cells(attributes.get("initial_cells"))
        if "relationships" in data:
            _relationships(data["relationships"])
        now = _now()
        self._public_id += 1
        incident = FakeIncident(
            id=str(uuid.uuid4()),
            public_id=self._public_id,
            attributes={
                "public_id": self._public_id,
                "title": title,
                "created": now,
                "modified": now,
                "detected": now,
                "declared": now,
                "resolved": None,
                "customer_impacted": impacted,
                "customer_impact_scope": scope,
                "customer_impact_start": now if impacted else None,
                "customer_impact_end": None,
                "customer_impact_duration": 0,
                "time_to_detect": 0,
                "time_to_internal_response": 0,
                "time_to_repair": 0,
                "time_to_resolve": 0,
                "fields": {**_default_fields(), **fields},
                "is_test": bool(attributes.get("is_test", False)),
                "incident_type_uuid": "41d2e10b-4108-4736-92d7-791d00ea0702",
                "notification_handles": attributes.get("notification_handles"),
                "visibility": "organization",
                "archived": None,
                "case_id": None,
                "non_datadog_creator": None,
                "creation_idempotency_key": None,
            },
            initial_cells=cells,
        )
        self._sync_state(incident, now)
        self._incidents[incident.id] = incident
        return 201, {}, {"data": self._incident_json(incident)}

    def _GetIncident(self, incident_id: str, *, query: Query, body: Any) -> Answer:
        return 200, {}, {"data": self._incident_json(self._incident(incident_id))}

    def _UpdateIncident(self, incident_id: str, *, query: Query, body: Any) -> Answer:
        incident = self._incident(incident_id)
        data = _data(body, "incidents")
        if data.get("id") != incident_id:
            raise _bad("data.id: must match the incident in the path")
        attributes = _obj(data.get("attributes", {}), "data.attributes")
        _only(attributes, "data.attributes", _UPDATE_KEYS)
        for key in ("customer_impact_end", "customer_impact_start", "detected"):
            if attributes.get(key) is not None:
                _datetime(attributes[key], f"data.attributes.{key}")
        if "title" in attributes:
            _str(attributes["title"], "data.attributes.title")
        if "customer_impacted" in attributes:
            _bool(attributes["customer_impacted"], "data.attributes.customer_impacted")
        fields = _fields(attributes.get("fields"), "data.attributes.fields")
        incident.patches.append(data)
        now = _now()
        changes = {k: v for k, v in attributes.items() if k != "fields"}
        incident.attributes.update(changes)
        incident.attributes["fields"].update(fields)
        incident.attributes["modified"] = now
        self._sync_state(incident, now)
        return 200, {}, {"data": self._incident_json(incident)}

    def _SearchIncidents(self, *, query: Query, body: Any) -> Answer:
        text = query.get("query")
        if not text:
            raise _bad("query: required")
        sort = query.get("sort", "created")
        if sort not in SEARCH_SORTS:
            raise _bad(f"sort: must be one of {', '.join(SEARCH_SORTS)}, not {sort!r}")
        size, offset = _page(query)
        match = _search_filter(text)
        found = sorted(
            (i for i in self._incidents.values() if match(i)),
            key=lambda i: (_when(i.attributes["created"]), i.public_id),
            reverse=sort == "-created",
        )
        page = [{"data": self._incident_json(i)} for i in found[offset : offset + size]]
        states = [i.state for i in found]
        facets = {"state": [{"name": s, "count": states.count(s)} for s in sorted(set(states))]}
        return (
            200,
            {},
            {
                "data": {
                    "type": "incidents_search_results",
                    "attributes": {"facets": facets, "incidents": page, "total": len(found)},
                }
            },
        )

    def _CreateIncidentAttachment(self, incident_id: str, *, query: Query, body: Any) -> Answer:
        incident = self._incident(incident_id)
        data = _data(body, "incident_attachments")
        attributes = _obj(data.get("attributes"), "data.attributes")
        kind = _str(
            _req(attributes, "attachment_type", "data.attributes"),
            "data.attributes.attachment_type",
        )
        if kind not in ATTACHMENT_TYPES:
            raise _bad(
                f"data.attributes.attachment_type: must be one of {', '.join(ATTACHMENT_TYPES)}"
            )
        attachment = _obj(attributes.get("attachment"), "data.attributes.attachment")
        url = _str(_req(attachment, "documentUrl", "data.attributes.attachment"), "documentUrl")
        if not url.startswith(("https://", "http://")):
            raise _bad("data.attributes.attachment.documentUrl: must be a URL")
        title = _str(_req(attachment, "title", "data.attributes.attachment"), "title")
        item = {
            "type": "incident_attachments",
            "id": str(uuid.uuid4()),
            "attributes": {
                "attachment": {"documentUrl": url, "title": title},
                "attachment_type": kind,
                "modified": _now(),
            },
            "relationships": {
                "incident": {"data": {"id": incident.id, "type": "incidents"}},
                "last_modified_by_user": {"data": {"id": USER["uuid"], "type": "users"}},
            },
        }
        incident.attachments.append(item)
        return 201, {}, {"data": item}

    def _ListIncidentAttachments(self, incident_id: str, *, query: Query, body: Any) -> Answer:
        incident = self._incident(incident_id)
        return 200, {}, {"data": list(incident.attachments)}

    def _incident(self, incident_id: str) -> FakeIncident:
        incident = self._incidents.get(incident_id)
        if incident is None:
            raise DatadogError(404, "Not found")
        return incident

    def _sync_state(self, incident: FakeIncident, now: str) -> None:
        attributes = incident.attributes
        fields = attributes["fields"]
        attributes["severity"] = fields["severity"]["value"]
        attributes["state"] = fields["state"]["value"]
        if attributes["state"] == "resolved":
            attributes["resolved"] = attributes["resolved"] or now
        else:
            attributes["resolved"] = None

    def _incident_json(self, incident: FakeIncident) -> dict[str, Any]:
        user = {"data": {"type": "users", "id": USER["uuid"]}}
        return {
            "type": "incidents",
            "id": incident.id,
            "attributes": json.loads(json.dumps(incident.attributes)),
            "relationships": {
                "created_by_user": user,
                "last_modified_by_user": user,
                "declared_by_user": user,
                "commander_user": {"data": None},
                "user_defined_fields": {"data": []},
                "integrations": {"data": []},
                "attachments": {
                    "data": [
                        {"type": "incident_attachments", "id": a["id"]}
                        for a in incident.attachments
                    ]
                },
                "responders": {"data": []},
                "impacts": {"data": []},
            },
        }

    # -- notebooks ---------------------------------------------------------------------------

    def _CreateNotebook(self, *, query: Query, body: Any) -> Answer:
        attributes = _notebook_attributes(body)
        now = _now()
        self._notebook_id += 1
        notebook = FakeNotebook(
            id=self._notebook_id,
            name=attributes["name"],
            cells=[_with_id(c) for c in _cells(attributes["cells"], known=set())],
            time=attributes["time"],
            extra=_notebook_extra(attributes),
            created=now,
            modified=now,
        )
        self._notebooks[notebook.id] = notebook
        return 200, {}, {"data": self._notebook_json(notebook, cells=True)}

    def _GetNotebook(self, notebook_id: str, *, query: Query, body: Any) -> Answer:
        return 200, {}, {"data": self._notebook_json(self._notebook(notebook_id), cells=True)}

    def _UpdateNotebook(self, notebook_id: str, *, query: Query, body: Any) -> Answer:
        notebook = self._notebook(notebook_id)
        attributes = _notebook_attributes(body)
        known = {c["id"] for c in notebook.cells}
        # PUT replaces: cells sent with an id keep it, the others are new, missing ones go.
        notebook.cells = [_with_id(c) for c in _cells(attributes["cells"], known=known)]
        notebook.name = attributes["name"]
        notebook.time = attributes["time"]
        notebook.extra = _notebook_extra(attributes)
        notebook.modified = _now()
        notebook.updates += 1
        return 200, {}, {"data": self._notebook_json(notebook, cells=True)}

    def _ListNotebooks(self, *, query: Query, body: Any) -> Answer:
        count = _int(query.get("count", "100"), "count", low=0)
        start = _int(query.get("start", "0"), "start", low=0)
        cells = _flag(query.get("include_cells", "true"), "include_cells")
        sort_field = query.get("sort_field", "modified")
        if sort_field not in NOTEBOOK_SORT_FIELDS:
            raise _bad(f"sort_field: must be one of {', '.join(NOTEBOOK_SORT_FIELDS)}")
        sort_dir = query.get("sort_dir", "desc")
        if sort_dir not in SORT_ORDERS:
            raise _bad(f"sort_dir: must be one of {', '.join(SORT_ORDERS)}")
        wanted = (query.get("query") or "").lower()
        found = [
            n
            for n in self._notebooks.values()
            if wanted in n.name.lower() or wanted in str(USER["handle"]).lower()
        ]
        found.sort(key=lambda n: (getattr(n, sort_field), n.id), reverse=sort_dir == "desc")
        page = found[start : start + count]
        return (
            200,
            {},
            {
                "data": [self._notebook_json(n, cells=cells) for n in page],
                "meta": {
                    "page": {
                        "total_count": len(self._notebooks),
                        "total_filtered_count": len(found),
                    }
                },
            },
        )

    def _notebook(self, notebook_id: str) -> FakeNotebook:
        notebook = self._notebooks.get(int(notebook_id)) if notebook_id.isdigit() else None
        if notebook is None:
            raise DatadogError(404, "Notebook not found")
        return notebook

    def _notebook_json(self, notebook: FakeNotebook, *, cells: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "name": notebook.name,
            "status": "published",
            "created": notebook.created,
            "modified": notebook.modified,
            "author": {**USER, "title": None, "verified": True, "disabled": False},
            "metadata": {"is_template": False, "take_snapshots": False, "type": None},
        }
        attributes.update(json.loads(json.dumps(notebook.extra)))
        attributes["author"].pop("uuid", None)
        if cells:
            attributes["cells"] = json.loads(json.dumps(notebook.cells))
            attributes["time"] = dict(notebook.time)
        return {"type": "notebooks", "id": notebook.id, "attributes": attributes}

    # -- workflow instances --------------------------------------------------------------------

    def _CreateWorkflowInstance(self, workflow_id: str, *, query: Query, body: Any) -> Answer:
        self._workflow(workflow_id)
        request = _obj(body, "body")
        meta = _obj(request.get("meta", {}), "meta")
        payload = _obj(meta.get("payload", {}), "meta.payload")
        instance = self._new_instance(workflow_id, payload)
        answer = {"data": {"attributes": {}, "id": instance.id, "type": "instances"}}
        return 200, {}, {**answer, "meta": {"workflowId": workflow_id}}

    def _GetWorkflowInstance(
        self, workflow_id: str, instance_id: str, *, query: Query, body: Any
    ) -> Answer:
        self._workflow(workflow_id)
        instance = self._instances.get(instance_id)
        if instance is None or instance.workflow_id != workflow_id:
            raise DatadogError(
                404, {"code": "INSTANCE_NOT_FOUND", "detail": f"instance {instance_id} not found"}
            )
        instance.polls += 1
        if instance.final and instance.status == RUNNING and instance.polls > instance.finish_after:
            self._set_status(instance, instance.final)
        attributes = self._instance_attributes(instance)
        attributes.update(
            {
                "inputs": json.loads(json.dumps(instance.payload)),
                "outputs": {},
                "stepStateAssociations": [],
                "trigger": {},
                "sourceForTemplating": {
                    "initiator": {"email": USER["email"], "id": USER["uuid"], "name": USER["name"]},
                    "type": "api",
                    "url": f"https://app.datadoghq.com/workflow/{workflow_id}?instance={instance_id}",
                },
            }
        )
        return (
            200,
            {},
            {
                "data": {
                    "attributes": attributes,
                    "id": instance.id,
                    "relationships": {
                        "workflow": {"data": {"id": workflow_id, "type": "workflows"}}
                    },
                    "type": "instances",
                },
                "meta": {"outputsTooBig": False, "sourceTooBig": False, "triggerTooBig": False},
            },
        )

    def _ListWorkflowInstances(self, workflow_id: str, *, query: Query, body: Any) -> Answer:
        self._workflow(workflow_id)
        size = _int(query.get("page[size]", "10"), "page[size]", low=1, high=PAGE_SIZE_MAX)
        number = _int(query.get("page[number]", "0"), "page[number]", low=0)
        mine = [i for i in self._instances.values() if i.workflow_id == workflow_id]
        # Newest first, as Datadog lists them; started at the same moment, last made first.
        order = {instance.id: n for n, instance in enumerate(self._instances.values())}
        mine.sort(key=lambda i: (_when(i.started), order[i.id]), reverse=True)
        page = mine[number * size : (number + 1) * size]
        statuses = [i.status for i in mine]
        return (
            200,
            {},
            {
                "data": [
                    {"attributes": self._instance_attributes(i), "id": i.id, "type": "instances"}
                    for i in page
                ],
                "meta": {
                    "canceledCount": statuses.count(CANCELED),
                    "failedCount": statuses.count(FAILED),
                    "succeededCount": statuses.count(SUCCEEDED),
                    "page": {"totalCount": len(mine), "totalFilteredCount": len(mine)},
                },
            },
        )

    def _workflow(self, workflow_id: str) -> None:
        if workflow_id not in self.workflows:
            raise DatadogError(
                404, {"code": "WORKFLOW_NOT_FOUND", "detail": f"workflow {workflow_id} not found"}
            )

    def _new_instance(self, workflow_id: str, payload: dict[str, Any]) -> FakeInstance:
        final, after = self._plan
        instance = FakeInstance(
            id=str(uuid.uuid4()),
            workflow_id=workflow_id,
            payload=json.loads(json.dumps(payload)),
            started=_now(z=True),
            final=final,
            finish_after=after,
        )
        self._instances[instance.id] = instance
        return instance

    def _set_status(self, instance: FakeInstance, status: str) -> None:
        instance.status = status
        instance.ended = None if status == RUNNING else _now(z=True)

    def _instance_attributes(self, instance: FakeInstance) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "instanceStatus": {
                "detailsKind": instance.status,
                "displayName": STATUS_NAMES.get(instance.status, instance.status.title()),
            },
            "source": {
                "api": {
                    "actingUser": {
                        "userEmail": USER["email"],
                        "userName": USER["name"],
                        "userUuid": USER["uuid"],
                    }
                }
            },
            "startTimestamp": instance.started,
        }
        if instance.ended:
            attributes["endTimestamp"] = instance.ended
        return attributes


# -- request checks, after the specs (constants above) ------------------------------------

# (method, path, operationId); the handler of an operation is the method `_<operationId>`.
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(path), name)
    for method, path, name in (
        ("POST", r"/api/v2/incidents", "CreateIncident"),
        ("GET", r"/api/v2/incidents/search", "SearchIncidents"),
        ("GET", r"/api/v2/incidents/([^/]+)", "GetIncident"),
        ("PATCH", r"/api/v2/incidents/([^/]+)", "UpdateIncident"),
        ("POST", r"/api/v2/incidents/([^/]+)/attachments", "CreateIncidentAttachment"),
        ("GET", r"/api/v2/incidents/([^/]+)/attachments", "ListIncidentAttachments"),
        ("POST", r"/api/v1/notebooks", "CreateNotebook"),
        ("GET", r"/api/v1/notebooks", "ListNotebooks"),
        ("GET", r"/api/v1/notebooks/([^/]+)", "GetNotebook"),
        ("PUT", r"/api/v1/notebooks/([^/]+)", "UpdateNotebook"),
        ("POST", r"/api/v2/workflows/([^/]+)/instances", "CreateWorkflowInstance"),
        ("GET", r"/api/v2/workflows/([^/]+)/instances", "ListWorkflowInstances"),
        ("GET", r"/api/v2/workflows/([^/]+)/instances/([^/]+)", "GetWorkflowInstance"),
    )
]
_CREATE_KEYS = frozenset(
    {
        "title",
        "customer_impacted",
        "customer_impact_scope",
        "fields",
        "initial_cells",
        "is_test",
        "incident_type_uuid",
        "notification_handles",
    }
)
_UPDATE_KEYS = frozenset(
    {
        "customer_impact_end",
        "customer_impact_scope",
        "customer_impact_start",
        "customer_impacted",
        "detected",
        "fields",
        "notification_handles",
        "title",
    }
)
_NOTEBOOK_KEYS = frozenset({"name", "cells", "time", "status", "metadata", "template_variables"})


def _data(body: Any, kind: str) -> dict[str, Any]:
    data = _obj(_req(_obj(body, "body"), "data", "body"), "data")
    if _req(data, "type", "data") != kind:
        raise _bad(f"data.type: must be {kind!r}")
    return data


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{path}: expected an object")
    return value


def _req(obj: dict[str, Any], key: str, path: str) -> Any:
    if obj.get(key) is None:
        raise _bad(f"{path}.{key}: required")
    return obj[key]


def _str(value: Any, path: str, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise _bad(f"{path}: expected a string")
    if max_len is not None and len(value) > max_len:
        raise _bad(f"{path}: longer than {max_len} characters")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{path}: expected a boolean")
    return value


def _list(value: Any, path: str, min_items: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(f"{path}: expected an array")
    if len(value) < min_items:
        raise _bad(f"{path}: needs at least {min_items} item(s)")
    return value


def _only(obj: dict[str, Any], path: str, allowed: frozenset[str]) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _bad(f"{path}: unknown attribute(s) {', '.join(unknown)}")


def _datetime(value: Any, path: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value, path).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{path}: expected a date-time") from None
    if moment.tzinfo is None:
        raise _bad(f"{path}: date-time needs a time zone")
    return moment


def _int(value: str, path: str, low: int | None = None, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{path}: expected an integer") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise _bad(f"{path}: out of range")
    return number


def _flag(value: str, path: str) -> bool:
    if value not in ("true", "false"):
        raise _bad(f"{path}: expected true or false")
    return value == "true"


def _page(query: Query) -> tuple[int, int]:
    size = _int(query.get("page[size]", "10"), "page[size]", low=1, high=PAGE_SIZE_MAX)
    return size, _int(query.get("page[offset]", "0"), "page[offset]", low=0)


def _fields(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    out: dict[str, Any] = {}
    for name, sent in _obj(value, path).items():
        where = f"{path}.{name}"
        if name not in INCIDENT_FIELDS:
            raise _bad(f"{where}: no such incident field")
        kind, options = INCIDENT_FIELDS[name]
        item = _obj(sent, where)
        sent_kind = item.get("type", "dropdown")
        if sent_kind not in SINGLE_KINDS + MULTI_KINDS:
            raise _bad(f"{where}.type: unknown field type {sent_kind!r}")
        if sent_kind != kind:
            raise _bad(f"{where}.type: must be {kind!r}, not {sent_kind!r}")
        raw = item.get("value")
        if kind in SINGLE_KINDS:
            if raw is not None and not isinstance(raw, str):
                raise _bad(f"{where}.value: expected a string")
            if options is not None and raw not in options:
                raise _bad(f"{where}.value: {raw!r} is not one of {', '.join(options)}")
        elif raw is not None:
            values = _list(raw, f"{where}.value")
            if not all(isinstance(v, str) and v for v in values):
                raise _bad(f"{where}.value: expected non-empty strings")
        out[name] = {"type": kind, "value": raw}
    return out


def _default_fields() -> dict[str, Any]:
    defaults = {"severity": "UNKNOWN", "state": "active", "detection_method": "unknown"}
    return {
        name: {"type": kind, "value": defaults.get(name)}
        for name, (kind, _) in INCIDENT_FIELDS.items()
    }


def _initial_cells(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    cells = _list(value, "data.attributes.initial_cells")
    for index, sent in enumerate(cells):
        where = f"data.attributes.initial_cells[{index}]"
        cell = _obj(sent, where)
        if _req(cell, "cell_type", where) != "markdown":
            raise _bad(f"{where}.cell_type: must be 'markdown'")
        content = _obj(_req(cell, "content", where), f"{where}.content")
        _str(_req(content, "content", f"{where}.content"), f"{where}.content.content")
        if "important" in cell:
            _bool(cell["important"], f"{where}.important")
    return [dict(c) for c in cells]


def _relationships(value: Any) -> None:
    relationships = _obj(value, "data.relationships")
    commander = _obj(_req(relationships, "commander_user", "data.relationships"), "commander_user")
    data = commander.get("data")
    if data is not None and (_obj(data, "commander_user.data").get("type") != "users"):
        raise _bad("data.relationships.commander_user.data.type: must be 'users'")


def _search_filter(text: str) -> Callable[[FakeIncident], bool]:
    """`state:(active OR stable) AND severity:SEV-1 AND words`: facets and title words."""
    facets: dict[str, set[str]] = {}
    words: list[str] = []
    for term in re.split(r"\s+AND\s+", text.strip()):
        facet = re.fullmatch(r"([a-z_]+):(?:\(([^()]+)\)|(\S+))", term.strip())
        if facet is not None:
            if facet.group(1) not in INCIDENT_FIELDS:
                raise _bad(f"query: unknown facet {facet.group(1)!r}")
            values = (facet.group(2) or facet.group(3)).split(" OR ")
            facets[facet.group(1)] = {v.strip() for v in values}
        elif term.strip() and not re.search(r"[():]", term):
            words.append(term.strip().strip('"').lower())
        else:
            raise _bad(f"query: cannot parse {term!r}")

    def match(incident: FakeIncident) -> bool:
        fields = incident.attributes["fields"]
        return all(str(fields[n]["value"]) in vs for n, vs in facets.items()) and all(
            w in incident.title.lower() for w in words
        )

    return match


def _notebook_attributes(body: Any) -> dict[str, Any]:
    data = _data(body, "notebooks")
    attributes = _obj(data.get("attributes"), "data.attributes")
    _only(attributes, "data.attributes", _NOTEBOOK_KEYS)
    where = "data.attributes"
    _str(_req(attributes, "name", where), f"{where}.name", max_len=NOTEBOOK_NAME_MAX)
    _list(_req(attributes, "cells", where), f"{where}.cells")
    _time(_req(attributes, "time", where), f"{where}.time", nullable=False)
    if attributes.get("status", "published") not in NOTEBOOK_STATUSES:
        raise _bad(f"{where}.status: must be 'published'")
    metadata = attributes.get("metadata")
    if metadata is not None:
        kind = _obj(metadata, f"{where}.metadata").get("type")
        if kind is not None and kind not in NOTEBOOK_TYPES:
            raise _bad(f"{where}.metadata.type: {kind!r} is not a notebook type")
    return attributes


def _notebook_extra(attributes: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "metadata", "template_variables")
    return {k: attributes[k] for k in keys if attributes.get(k) is not None}


def _time(value: Any, path: str, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    time = _obj(value, path)
    if "live_span" in time:
        if time["live_span"] not in LIVE_SPANS:
            raise _bad(f"{path}.live_span: {time['live_span']!r} is not a live span")
        return
    start = _datetime(_req(time, "start", path), f"{path}.start")
    end = _datetime(_req(time, "end", path), f"{path}.end")
    if start >= end:
        raise _bad(f"{path}: start must be before end")
    if "live" in time:
        _bool(time["live"], f"{path}.live")


def _cells(cells: list[Any], *, known: set[str]) -> list[dict[str, Any]]:
    out = []
    for index, sent in enumerate(cells):
        where = f"data.attributes.cells[{index}]"
        cell = _obj(sent, where)
        if _req(cell, "type", where) != "notebook_cells":
            raise _bad(f"{where}.type: must be 'notebook_cells'")
        if "id" in cell and cell["id"] not in known:
            raise _bad(f"{where}.id: no cell {cell['id']!r} in this notebook")
        _cell_attributes(_obj(_req(cell, "attributes", where), f"{where}.attributes"), where)
        out.append(cell)
    return out


def _cell_attributes(attributes: dict[str, Any], where: str) -> None:
    definition = _obj(_req(attributes, "definition", f"{where}.attributes"), "definition")
    kind = _req(definition, "type", f"{where}.attributes.definition")
    path = f"{where}.attributes.definition"
    if kind not in CELL_TYPES:
        raise _bad(f"{path}.type: {kind!r} is not a notebook cell type")
    allowed = {"definition"}
    if kind == "markdown":
        _str(_req(definition, "text", path), f"{path}.text")
    elif kind == "log_stream":
        allowed |= {"graph_size", "time"}
        _log_stream(definition, path)
    else:
        allowed |= {"graph_size", "split_by", "time"}
        requests = _list(_req(definition, "requests", path), f"{path}.requests", min_items=1)
        for number, sent in enumerate(requests):
            request = _obj(sent, f"{path}.requests[{number}]")
            if request.get("display_type", "line") not in DISPLAY_TYPES:
                raise _bad(f"{path}.requests[{number}].display_type: not a display type")
            if "q" in request:
                _str(request["q"], f"{path}.requests[{number}].q")
        for number, marker in enumerate(_list(definition.get("markers", []), f"{path}.markers")):
            _str(_req(_obj(marker, "marker"), "value", f"{path}.markers[{number}]"), "value")
    unknown = sorted(set(attributes) - allowed)
    if unknown:
        raise _bad(f"{where}.attributes: {kind} cells take no {', '.join(unknown)}")
    if attributes.get("graph_size", "m") not in GRAPH_SIZES:
        raise _bad(f"{where}.attributes.graph_size: not a graph size")
    if "split_by" in attributes:
        split = _obj(attributes["split_by"], f"{where}.attributes.split_by")
        _list(_req(split, "keys", f"{where}.attributes.split_by"), "split_by.keys")
        _list(_req(split, "tags", f"{where}.attributes.split_by"), "split_by.tags")
    _time(attributes.get("time"), f"{where}.attributes.time", nullable=True)


def _log_stream(definition: dict[str, Any], path: str) -> None:
    if "query" in definition:
        _str(definition["query"], f"{path}.query")
    for key in ("indexes", "columns"):
        if key in definition and not all(
            isinstance(v, str) for v in _list(definition[key], f"{path}.{key}")
        ):
            raise _bad(f"{path}.{key}: expected strings")
    if definition.get("message_display", "inline") not in MESSAGE_DISPLAYS:
        raise _bad(f"{path}.message_display: not a message display")
    if "sort" in definition:
        sort = _obj(definition["sort"], f"{path}.sort")
        _str(_req(sort, "column", f"{path}.sort"), f"{path}.sort.column")
        if _req(sort, "order", f"{path}.sort") not in SORT_ORDERS:
            raise _bad(f"{path}.sort.order: must be asc or desc")


def _with_id(cell: dict[str, Any]) -> dict[str, Any]:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    cell_id = cell.get("id") or "".join(secrets.choice(alphabet) for _ in range(8))
    return {"id": cell_id, "type": "notebook_cells", "attributes": cell["attributes"]}


def _now(z: bool = False) -> str:
    return _iso(datetime.now(UTC), z=z)


def _iso(moment: datetime, z: bool = False) -> str:
    text = moment.astimezone(UTC).isoformat()
    # Workflow instances print Go-style "...Z" times; the other APIs "+00:00".
    return text.replace("+00:00", "Z") if z else text


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)
