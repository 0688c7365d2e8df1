"""`GET /openapi.json`: the OpenAPI 3.1 description of every endpoint the app serves.

Built in code rather than kept as a JSON file: the endpoints share their error, auth and
record schemas, and the history API's records are described from the table models that
serialise them, so a new column reaches the document without anyone remembering it.
To add an endpoint, add its operation to `_paths`; tests/test_openapi.py fails until the
app's routes and this document name the same paths and methods.
"""

from __future__ import annotations

import functools
from importlib.metadata import version
from typing import Any

import orjson
from sqlmodel import SQLModel
from starlette.requests import Request
from starlette.responses import Response

from responder.domain import EventState, Transition
from responder.intake.datadog import MAX_FIELD
from responder.store.tables import ActionRun, Incident
from responder.web.ids import MAX_ID

Schema = dict[str, Any]

_NULL = {"type": "null"}
_TEXT = "a string, or a number Datadog sent unquoted; empty or a literal $VARIABLE is absent"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    answer: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str, headers: Schema | None = None) -> Schema:
    return _json(_ref("Error"), description, headers)


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_API_UNAUTHORISED = _error(
    "missing or wrong bearer token, or no RESPONDER_API_TOKEN configured (the message says which)"
)
_API_BAD_QUERY = _error("a query or path parameter is malformed; the message names it")


def _query(name: str, schema: Schema, description: str) -> Schema:
    # Every filter treats an empty value as no filter, as forms send them.
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": schema,
        "description": f"{description}; empty is the same as absent",
    }


def _id(description: str) -> Schema:
    return {"type": "integer", "minimum": 0, "maximum": MAX_ID, "description": description}


_TIME = {"type": "string", "format": "date-time"}
_FILTER = {"type": "string", "pattern": "^[^\\u0000]*$", "description": "no NUL characters"}


def _time_query(name: str, description: str) -> Schema:
    return _query(
        name, _TIME, f"{description}; ISO 8601 with a time zone, e.g. 2026-11-23T08:00:00Z"
    )


# --- the webhook's request body: what intake.datadog reads, and what it refuses --------------

_TEXT_FIELD: Schema = {
    "type": ["string", "number", "null"],
    "maxLength": MAX_FIELD,
    "description": _TEXT,
}
_TAGS: Schema = {
    "description": "comma-separated text or a list of strings",
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, _NULL],
}
_TOP_FIELDS = (
    "id",
    "event_type",
    "event_title",
    "title",
    "event_msg",
    "body",
    "text_only_msg",
    "date",
    "last_updated",
    "link",
    "snapshot",
    "hostname",
)
_ALERT_FIELDS = (
    "id",
    "title",
    "transition",
    "type",
    "priority",
    "status",
    "query",
    "metric",
    "scope",
    "cycle_key",
    "aggreg_key",
)
_FLAT_FIELDS = tuple(f"alert_{name}" for name in _ALERT_FIELDS if name != "aggreg_key")


def _payload() -> Schema:
    """Our template (nested `alert`), a flat one (`alert_*` at the top) or Datadog's default.

    Only the shape is described; that the alert has a title and a transition is judged by
    intake and answered 422 with the field named."""
    text = {name: _TEXT_FIELD for name in _TOP_FIELDS}
    return {
        "type": "object",
        "description": "Datadog's webhook payload (responder/intake/webhook-template.json)",
        "properties": {
            **text,
            "tags": _TAGS,
            # Anything but an object is ignored, as Datadog's default template has no org.
            "org": {"properties": {"id": _TEXT_FIELD, "name": _TEXT_FIELD}},
            "alert": {
                "type": ["object", "null"],
                "properties": {name: _TEXT_FIELD for name in _ALERT_FIELDS},
            },
        },
        # Without an `alert` object, `alert_*` keys at the top make a flat template.
        "if": {"required": ["alert"], "properties": {"alert": {"type": "object"}}},
        "else": {
            "if": {"propertyNames": {"not": {"pattern": "^alert_"}}},
            "else": {"properties": {name: _TEXT_FIELD for name in (*_FLAT_FIELDS, "aggreg_key")}},
        },
        "example": {
            "id": "7345188323406110722",
            "event_title": "[P1] [Triggered] Payment failure rate high",
            "date": "1795341600000",
            "alert": {
                "id": "148275309",
                "title": "[Triggered] Payment failure rate high",
                "transition": "Triggered",
                "priority": "P1",
            },
            "tags": "service:payment,env:prod",
        },
    }


def _form() -> Schema:
    return {
        "type": "object",
        "description": (
            'Datadog\'s "encode as form": the same fields as text; `alert` and `org` as '
            "JSON objects"
        ),
        "properties": {
            **{name: {"type": "string"} for name in (*_TOP_FIELDS, "tags", *_FLAT_FIELDS)},
            "alert": {"type": "string", "contentMediaType": "application/json"},
            "org": {"type": "string", "contentMediaType": "application/json"},
        },
    }


def _webhook() -> Schema:
    stored = "the event is durably stored"
    return {
        "post": {
            "operationId": "deliverDatadogAlert",
            "summary": "Receive one Datadog monitor notification",
            "description": (
                "Authenticates, decodes, stores the event durably, then answers; the pipeline "
                "runs after the answer. Never 500 for anything a client sent."
            ),
            "security": [{"webhookHeader": []}, {"webhookBearer": []}, {"webhookBasic": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _payload()},
                    "application/x-www-form-urlencoded": {"schema": _form()},
                },
            },
            "responses": {
                "200": _json(
                    _ref("WebhookAnswer"), f"a redelivery: {stored} already; what the first led to"
                ),
                "202": _json(_ref("WebhookAnswer"), f"{stored}; the pipeline has not run yet"),
                "400": _error("unreadable body: empty, not JSON, not a URL-encoded form"),
                "401": _error(
                    "missing or wrong webhook token",
                    {"WWW-Authenticate": {"schema": {"type": "string"}}},
                ),
                "413": _error("body larger than RESPONDER_MAX_BODY_BYTES"),
                "422": _error("the body is not a usable alert; the message names the field"),
                "503": _error(
                    "the database cannot take the event now; deliver again later",
                    _RETRY_AFTER,
                ),
            },
        }
    }


# --- people's answers: PagerDuty webhooks, Slack buttons and slash command ----------------------

_TOO_LARGE = _error("body larger than RESPONDER_MAX_BODY_BYTES")
_SIGNED_BY = "a person's answer becomes an event of the incident's own stream"


def _pagerduty_event() -> Schema:
    reference = {"type": ["object", "null"], "description": "a PagerDuty reference"}
    return {
        "type": "object",
        "required": ["event"],
        "description": "PagerDuty V3 webhook: one event per delivery",
        "properties": {
            "event": {
                "type": "object",
                "required": ["id", "event_type", "occurred_at"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "event_type": {
                        "type": "string",
                        "minLength": 1,
                        "description": "incident.acknowledged and incident.resolved by a person "
                        "(agent type user_reference) are answers; incident.reassigned is "
                        "audited; others are ignored",
                    },
                    "resource_type": {"type": "string"},
                    "occurred_at": {**_TIME, "description": "ISO 8601 with a time zone"},
                    "agent": reference,
                    "data": {
                        "type": ["object", "null"],
                        "description": "the incident; `incident_key` (our dedup key) finds ours",
                        "properties": {
                            "incident_key": {"type": ["string", "null"]},
                            "html_url": {"type": ["string", "null"]},
                            "assignees": {"type": ["array", "null"], "items": reference},
                        },
                    },
                },
            }
        },
    }


def _pagerduty() -> Schema:
    return {
        "post": {
            "operationId": "deliverPagerDutyEvent",
            "summary": "Receive a PagerDuty V3 webhook (acknowledged, resolved, reassigned)",
            "description": (
                f"Verifies X-PagerDuty-Signature, then stores: {_SIGNED_BY}. Refused (401) "
                "while PAGERDUTY_WEBHOOK_SECRET is unset."
            ),
            "security": [{"pagerdutySignature": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _pagerduty_event()}},
            },
            "responses": {
                "200": _json(
                    _ref("PagerDutyAnswer"),
                    "nothing new: ignored (`ignored` says why: not an incident of ours, not a "
                    "person's change, an event type responder does not act on) or a "
                    "redelivery (`duplicate`)",
                ),
                "202": _json(_ref("PagerDutyAnswer"), "stored: the answer, or the reassignment"),
                "400": _error("not a readable V3 webhook event; the message says why"),
                "401": _error(
                    "missing or wrong X-PagerDuty-Signature, or no PAGERDUTY_WEBHOOK_SECRET"
                ),
                "413": _TOO_LARGE,
                "503": _error("the database cannot take it now; deliver again later", _RETRY_AFTER),
            },
        }
    }


def _slack(operation_id: str, summary: str, form: Schema) -> Schema:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": (
                "Verified as Slack signs requests (X-Slack-Signature over "
                "X-Slack-Request-Timestamp and the raw body, five minutes of tolerance), "
                f"then answered within Slack's three seconds; {_SIGNED_BY}. Refused (401) "
                "while SLACK_SIGNING_SECRET is unset."
            ),
            "security": [{"slackSignature": []}],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": form}},
            },
            "responses": {
                "200": _json(_ref("SlackReply"), "the text shown to the person who asked"),
                "400": _error("signed, but not a request responder can read"),
                "401": _error(
                    "missing, wrong or stale Slack signature, or no SLACK_SIGNING_SECRET"
                ),
                "413": _TOO_LARGE,
            },
        }
    }


def _inbound_paths() -> dict[str, Schema]:
    command_fields = ("command", "text", "user_id", "user_name", "trigger_id", "team_id")
    return {
        "/webhooks/pagerduty": _pagerduty(),
        "/slack/interactions": _slack(
            "pressSlackButton",
            "A press of an incident's Acknowledge, Resolve or Silence 1h button",
            {
                "type": "object",
                "required": ["payload"],
                "properties": {
                    "payload": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "Slack's block_actions payload",
                    }
                },
            },
        ),
        "/slack/commands": _slack(
            "runSlashCommand",
            "The /responder slash command: ack, resolve, silence, incident, history, help",
            {
                "type": "object",
                "required": ["user_id", "trigger_id"],
                "properties": {name: {"type": "string"} for name in command_fields},
            },
        ),
    }


# --- the history API ---------------------------------------------------------------------------


def _api(
    operation_id: str, summary: str, ok: Schema, parameters: list[Schema], *, found: bool = False
) -> Schema:
    responses = {"200": ok, "400": _API_BAD_QUERY, "401": _API_UNAUTHORISED}
    if found:
        responses["404"] = _error("no such incident")
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [{"apiBearer": []}],
            "parameters": parameters,
            "responses": responses,
        }
    }


def _history_paths() -> dict[str, Schema]:
    return {
        "/api/incidents": _api(
            "listIncidents",
            "Incidents, newest first, filtered; page on with `cursor`",
            _json(_ref("IncidentPage"), "a page of incidents"),
            [
                *(
                    _query(name, _FILTER, f"exactly this {name}")
                    for name in ("status", "service", "team", "monitor_id", "priority")
                ),
                _time_query("since", "opened at or after"),
                _time_query("until", "opened before"),
                _query("q", _FILTER, "text the title contains, any case"),
                _query("cursor", _id("the `next_cursor` of the page before"), "page on"),
                _query("limit", _id("0 or none: 50; more than 500: 500"), "page size"),
            ],
        ),
        "/api/incidents/{incident_id}": _api(
            "getIncident",
            "One incident with its events, action runs and audit timeline",
            _json(_ref("IncidentDetail"), "the incident"),
            [{"name": "incident_id", "in": "path", "required": True, "schema": _id("incident id")}],
            found=True,
        ),
        "/api/audit": _api(
            "listAudit",
            "The audit log in order; page on with `after`",
            _json(_ref("AuditPage"), "a page of audit entries"),
            [
                _query(
                    "after", _id("the `next_after` of the page before"), "entries after this seq"
                ),
                _query("limit", _id("0 or none: 100; more than 1000: 1000"), "page size"),
                _query("kind", _FILTER, "only entries of this kind"),
            ],
        ),
        "/api/stats": _api(
            "getStats",
            "Incident counts, MTTA and MTTR, action runs by state",
            _json(_ref("Stats"), "the figures"),
            [_time_query("since", "incidents opened at or after")],
        ),
    }


def _export_paths() -> dict[str, Schema]:
    filters = _history_paths()["/api/incidents"]["get"]["parameters"]
    csv = _api(
        "exportIncidentsCsv",
        "The incidents /api/incidents lists, as CSV (RFC 4180), streamed, newest first",
        {
            "description": "a header line, then one incident a line; a cell that a spreadsheet "
            "would run as a formula (starting with = + - @) starts with an apostrophe",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        [p for p in filters if p["name"] != "limit"]
        + [_query("limit", _id("0 or none: every incident"), "at most this many")],
    )
    report = _api(
        "getIncidentReport",
        "A postmortem draft from the audit log: summary, timeline (UTC), actions, who answered",
        {
            "description": "Markdown; alert text escaped",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        },
        [{"name": "incident_id", "in": "path", "required": True, "schema": _id("incident id")}],
        found=True,
    )
    return {"/api/incidents.csv": csv, "/api/incidents/{incident_id}/report.md": report}


def _answer_paths() -> dict[str, Schema]:
    return {
        f"/api/incidents/{{incident_id}}/{verb}": _answer_op(verb, summary)
        for verb, summary in (
            ("acknowledge", "Acknowledge an incident: reminders and escalations stop"),
            ("resolve", "Resolve an incident by hand: every vendor is cleaned up"),
        )
    }


def _answer_op(verb: str, summary: str) -> Schema:
    body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "actor": {"type": "string", "maxLength": 190, "description": "who answers"},
            "note": {"type": "string", "maxLength": 500},
        },
    }
    responses = {
        "202": _json(_ref("AnswerAccepted"), "stored; the pipeline applies it in order"),
        "400": _error("a malformed id, body or Idempotency-Key; the message says which"),
        "401": _API_UNAUTHORISED,
        "404": _error("no such incident"),
        "409": _error("the incident is already resolved"),
        "503": _error("the database cannot take the answer now; try again", _RETRY_AFTER),
    }
    if verb == "acknowledge":
        responses["200"] = _json(_ref("AlreadyAcknowledged"), "acknowledged before: nothing new")
    return {
        "post": {
            "operationId": f"{verb}Incident",
            "summary": summary,
            "security": [{"apiBearer": []}],
            "parameters": [
                {"name": "incident_id", "in": "path", "required": True, "schema": _id("id")},
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 50},
                    "description": "a retried call with the same key counts once",
                },
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": body}},
            },
            "responses": responses,
        }
    }


def _silence_paths() -> dict[str, Schema]:
    secured: Schema = {"security": [{"apiBearer": []}]}
    common: Schema = {"401": _API_UNAUTHORISED, "413": _error("body larger than 64 KiB")}
    unusable = _error("a readable request that cannot be a silence; the message names the field")
    return {
        "/api/silences": {
            "get": {
                "operationId": "listSilences",
                "summary": "Silences not over yet (running or to come), newest first",
                **secured,
                "parameters": [
                    _query(
                        "all",
                        {"enum": ["", "0", "1", "true", "false", "yes", "no"]},
                        "1: every silence, ended and expired ones too",
                    )
                ],
                "responses": {
                    "200": _json(_ref("SilencePage"), "the silences"),
                    "400": _API_BAD_QUERY,
                    "401": _API_UNAUTHORISED,
                },
            },
            "post": {
                "operationId": "createSilence",
                "summary": "Silence alerts matching these from now (or starts_at) for a while",
                "description": (
                    "Matching alerts are stored, correlated and audited as silenced; their "
                    "playbooks do not run. If the silence ends while the incident still fires, "
                    "its playbooks run then. Give either ends_at or duration."
                ),
                **secured,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SilenceRequest")}},
                },
                "responses": {
                    "201": _json(_ref("Silence"), "the new silence"),
                    "400": _error("the body is not a JSON object"),
                    **common,
                    "422": unusable,
                },
            },
        },
        "/api/silences/{silence_id}/expire": {
            "post": {
                "operationId": "expireSilence",
                "summary": "End a silence now; one already over is left as it is",
                "description": (
                    "Incidents it held that still fire run their playbooks then. The body "
                    "is optional."
                ),
                **secured,
                "parameters": [
                    {
                        "name": "silence_id",
                        "in": "path",
                        "required": True,
                        "schema": _id("silence id"),
                    }
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("ExpireRequest")}},
                },
                "responses": {
                    "200": _json(_ref("Silence"), "the silence, as it is now"),
                    "400": _error("a malformed id, or a body that is not a JSON object"),
                    **common,
                    "404": _error("no such silence"),
                    "422": _error("an unusable author"),
                },
            },
        },
    }


def _silence_schemas() -> dict[str, Schema]:
    text = {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": "^[^\\u0000]*$"}
    glob = {"type": "string", "minLength": 1}
    globs = {"anyOf": [glob, {"type": "array", "items": glob, "minItems": 1}]}
    monitor_id = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
    matchers: Schema = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "description": "every key given must hold; within one, any value will do",
        "properties": {
            "tags": {
                "type": "object",
                "minProperties": 1,
                "description": "tag name -> glob(s) its value must match (service: pay*)",
                "propertyNames": {"pattern": "^[^:]+$", "minLength": 1},
                "additionalProperties": globs,
            },
            "monitor_id": {
                "anyOf": [monitor_id, {"type": "array", "items": monitor_id, "minItems": 1}]
            },
            "monitor": {**globs, "description": "monitor name glob(s), any case"},
            "scope": {**globs, "description": "the monitor's exact scope (host:web-1)"},
        },
    }
    stored_matchers = {
        "type": "object",
        "properties": {
            "tags": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            **{
                key: {"type": "array", "items": {"type": "string"}}
                for key in ("monitor_id", "monitor", "scope")
            },
        },
    }
    when = {"type": "string", "description": "ISO 8601 with a time zone, e.g. 2026-11-23T08:00Z"}
    return {
        "SilenceRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["matchers", "reason", "author"],
            "properties": {
                "matchers": matchers,
                "starts_at": {**when, "description": f"{when['description']}; absent: now"},
                "ends_at": when,
                "duration": {"type": "string", "description": "instead of ends_at: 30m, 2h, 1d"},
                "reason": text,
                "author": text,
            },
        },
        "ExpireRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"author": {**text, "description": "who expires it (default: api)"}},
        },
        "Silence": {
            "type": "object",
            "required": [
                "id",
                "state",
                "matchers",
                "starts_at",
                "ends_at",
                "reason",
                "author",
                "created_at",
                "expired_at",
                "expired_by",
            ],
            "properties": {
                "id": {"type": "integer"},
                "state": {"enum": ["pending", "active", "ended", "expired"]},
                "matchers": stored_matchers,
                "starts_at": _TIME,
                "ends_at": _TIME,
                "reason": {"type": "string"},
                "author": {"type": "string"},
                "created_at": _TIME,
                "expired_at": {"anyOf": [_TIME, _NULL]},
                "expired_by": _nullable("string"),
            },
        },
        "SilencePage": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ref("Silence")}},
        },
    }


def _plain_get(operation_id: str, summary: str, responses: Schema) -> Schema:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": responses,
        }
    }


def _paths() -> dict[str, Schema]:
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    return {
        "/webhooks/datadog": _webhook(),
        **_inbound_paths(),
        **_history_paths(),
        **_export_paths(),
        **_answer_paths(),
        **_silence_paths(),
        "/healthz": _plain_get(
            "health",
            "The process is up",
            {"200": _json({**status, "properties": {"status": {"const": "ok"}}}, "up")},
        ),
        "/readyz": _plain_get(
            "ready",
            "The database is reachable and its schema current",
            {
                "200": _json({**status, "properties": {"status": {"const": "ready"}}}, "ready"),
                "503": _json(
                    {
                        "type": "object",
                        "required": ["status", "reason"],
                        "properties": {
                            "status": {"const": "unavailable"},
                            "reason": {"type": "string"},
                        },
                    },
                    "not ready; `reason` says why",
                ),
            },
        ),
        "/metrics": _plain_get(
            "metrics",
            "Prometheus metrics",
            {
                "200": {
                    "description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": _plain_get(
            "openapi",
            "This document",
            {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI 3.1")},
        ),
    }


# --- shared schemas ----------------------------------------------------------------------------


def _model(model: type[SQLModel], *, without: tuple[str, ...] = ()) -> Schema:
    schema = model.model_json_schema(mode="serialization")
    for name in without:
        schema["properties"].pop(name)
        if name in schema.get("required", ()):
            schema["required"].remove(name)
    return schema


def _nullable(kind: str) -> Schema:
    return {"type": [kind, "null"]}


def _components() -> Schema:
    incident = _model(Incident)
    incident["properties"]["time_to_ack_seconds"] = {"type": "number"}
    incident["properties"]["time_to_resolve_seconds"] = {"type": "number"}
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "securitySchemes": {
            "webhookHeader": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Responder-Token",
                "description": "RESPONDER_WEBHOOK_TOKEN (any of its comma-separated tokens)",
            },
            "webhookBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "RESPONDER_WEBHOOK_TOKEN as a bearer token",
            },
            "webhookBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "any user name, RESPONDER_WEBHOOK_TOKEN as the password",
            },
            "pagerdutySignature": {
                "type": "apiKey",
                "in": "header",
                "name": "X-PagerDuty-Signature",
                "description": "v1=<hex HMAC-SHA256 of the raw body keyed with "
                "PAGERDUTY_WEBHOOK_SECRET>, comma-separated when PagerDuty rotates its secret",
            },
            "slackSignature": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Slack-Signature",
                "description": "v0=<hex HMAC-SHA256 of v0:{X-Slack-Request-Timestamp}:{raw "
                "body} keyed with SLACK_SIGNING_SECRET>; the timestamp within five minutes",
            },
            "apiBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "RESPONDER_API_TOKEN; the API is closed while it is unset",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "additionalProperties": False,
                "properties": {"error": {"type": "string"}},
            },
            "AnswerAccepted": {
                "type": "object",
                "required": ["event_id", "incident_id", "answer", "new"],
                "properties": {
                    "event_id": {"type": "integer"},
                    "incident_id": {"type": "integer"},
                    "answer": {"enum": ["acknowledge", "resolve"]},
                    "new": {"type": "boolean", "description": "false: a retry, stored before"},
                },
            },
            "AlreadyAcknowledged": {
                "type": "object",
                "required": ["incident_id", "status", "note", "acknowledged_by"],
                "properties": {
                    "incident_id": {"type": "integer"},
                    "status": {"const": "acknowledged"},
                    "note": {"type": "string"},
                    "acknowledged_by": {"type": ["string", "null"]},
                },
            },
            "WebhookAnswer": {
                "type": "object",
                "required": ["event_id", "incident_id", "playbooks", "actions", "state"],
                "properties": {
                    "event_id": {"type": "integer"},
                    "incident_id": _nullable("integer"),
                    "playbooks": {"type": ["array", "null"], "items": {"type": "string"}},
                    "actions": {"type": ["array", "null"], "items": {"type": "object"}},
                    "state": {"enum": [state.value for state in EventState]},
                    "notes": {"type": "array", "items": {"type": "string"}},
                    "duplicate": {"const": True},
                },
            },
            "PagerDutyAnswer": {
                "type": "object",
                "properties": {
                    "event_id": {"type": "integer"},
                    "incident_id": {"type": "integer"},
                    "answer": {"enum": ["acknowledge", "resolve"]},
                    "recorded": {"const": "pagerduty.reassigned"},
                    "duplicate": {"const": True},
                    "ignored": {"type": "string"},
                    "event_type": {"type": "string"},
                },
            },
            "SlackReply": {
                "type": "object",
                "required": ["response_type", "text"],
                "properties": {
                    "response_type": {"const": "ephemeral"},
                    "text": {"type": "string"},
                },
            },
            "Incident": incident,
            "ActionRun": _model(
                ActionRun, without=("lease_owner", "lease_until", "idempotency_key")
            ),
            "IncidentPage": {
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": _ref("Incident")},
                    "next_cursor": _nullable("integer"),
                },
            },
            "IncidentDetail": {
                "allOf": [
                    _ref("Incident"),
                    {
                        "type": "object",
                        "required": ["events", "actions", "timeline"],
                        "properties": {
                            "events": {"type": "array", "items": _ref("IncidentEvent")},
                            "actions": {"type": "array", "items": _ref("ActionRun")},
                            "timeline": {"type": "array", "items": _ref("AuditEntry")},
                        },
                    },
                ]
            },
            "IncidentEvent": {
                "type": "object",
                "required": ["id", "transition", "title", "received_at", "deliveries", "outcome"],
                "properties": {
                    "id": {"type": "integer"},
                    "transition": {"enum": [t.value for t in Transition]},
                    "title": {"type": "string"},
                    "received_at": _TIME,
                    "deliveries": {"type": "integer"},
                    "outcome": _nullable("object"),
                },
            },
            "AuditEntry": {
                "type": "object",
                "required": ["seq", "at", "kind", "event_id", "incident_id", "run_id", "data"],
                "properties": {
                    "seq": {"type": "integer"},
                    "at": _TIME,
                    "kind": {"type": "string"},
                    "event_id": _nullable("integer"),
                    "incident_id": _nullable("integer"),
                    "run_id": _nullable("integer"),
                    "data": {"description": "the entry's canonical JSON, as hashed"},
                },
            },
            "AuditPage": {
                "type": "object",
                "required": ["items", "next_after"],
                "properties": {
                    "items": {"type": "array", "items": _ref("AuditEntry")},
                    "next_after": _nullable("integer"),
                },
            },
            **_silence_schemas(),
            "Stats": {
                "type": "object",
                "required": [
                    "incidents",
                    "by_status",
                    "mtta_seconds",
                    "mttr_seconds",
                    "action_runs",
                    "by_service",
                    "by_team",
                ],
                "properties": {
                    "incidents": {"type": "integer"},
                    "by_status": counts,
                    "mtta_seconds": _nullable("number"),
                    "mttr_seconds": _nullable("number"),
                    "action_runs": counts,
                    "by_service": {"type": "object", "additionalProperties": _ref("Figures")},
                    "by_team": {"type": "object", "additionalProperties": _ref("Figures")},
                },
            },
            "Figures": {
                "type": "object",
                "required": ["incidents", "mtta_seconds", "mttr_seconds"],
                "properties": {
                    "incidents": {"type": "integer"},
                    "mtta_seconds": _nullable("number"),
                    "mttr_seconds": _nullable("number"),
                },
            },
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document; built once, it describes code that does not change at run time."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "responder",
            "version": version("responder"),
            "description": (
                "Datadog alert webhook, people's answers from PagerDuty and Slack, incident "
                "history API, health and metrics."
            ),
        },
        "paths": _paths(),
        "components": _components(),
    }


async def openapi(request: Request) -> Response:
    return Response(orjson.dumps(document()), media_type="application/json")
