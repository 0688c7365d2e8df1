"""A local fake of PagerDuty: Events API v2 (`/v2/enqueue`) and the REST API v2 incident notes.

As strict as PagerDuty about what it accepts, with PagerDuty's alert deduplication: one open
alert per (routing key, dedup key). Runs a ThreadingHTTPServer on 127.0.0.1; tests inspect
events, alerts, incidents and notes, and inject faults (tests.fakes.server) by kind of
request: "events", "incidents" or "notes" (or a path, which names its kind). `EVENTS_SPEC`
and `REST_SPEC` restate the shapes PagerDuty publishes, for `SpecShapes` to hold requests
and answers to.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import Answer, LocalServer, Request

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"  # 32 characters, like PagerDuty's
API_TOKEN = "u+FAKEPDTOKEN_0000000"
USER_EMAIL = "responder@example.com"

# What PagerDuty answers 400 "invalid event" for. Enums and required fields: PagerDuty's
# Events API v2 OpenAPI document (PagerDuty/api-schema, reference/events-v2/openapiv3.json),
# the `POST /enqueue` request body and `components/schemas/Payload`, `Links`, `Images`. The
# lengths and the size limit, which that document leaves out: the Events API v2 overview on
# developer.pagerduty.com (its table of event fields, and its limits).
EVENT_REQUIRED = ("routing_key", "event_action")
PAYLOAD_REQUIRED = ("summary", "source", "severity")
ACTIONS = ("trigger", "acknowledge", "resolve")  # event_action
SEVERITIES = ("critical", "error", "warning", "info")  # payload.severity
PAYLOAD_TEXT = ("component", "group", "class")  # optional payload strings
LINK_FIELDS = frozenset({"href", "text"})  # links[]: href required
IMAGE_FIELDS = frozenset({"src", "href", "alt"})  # images[]: src required
ROUTING_KEY_LENGTH = 32  # an integration key is exactly 32 characters
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
EVENT_MAX_BYTES = 512 * 1024
# The REST API v2 (reference/REST/openapiv3.json): the Accept header of version 2 and the
# values `components/schemas/Incident` and `IncidentNote` allow.
PD_ACCEPT = "application/vnd.pagerduty+json;version=2"
INCIDENT_STATUSES = ("triggered", "acknowledged", "resolved")
ASSIGNED_VIA = ("escalation_policy", "direct_assignment")
URGENCIES = ("high", "low")
NOTE_USER_TYPES = ("user_reference", "bot_user_reference")
WEB = "https://fake.pagerduty.com"

Headers = dict[str, str]

EVENTS = "events"  # POST /v2/enqueue
INCIDENTS = "incidents"  # GET /incidents
NOTES = "notes"  # GET and POST /incidents/{id}/notes


class _Refused(Exception):
    """An answer other than success: HTTP `status` with PagerDuty's body."""

    def __init__(self, status: int, body: Any, headers: Headers | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _invalid_event(*errors: str) -> _Refused:
    return _Refused(
        400, {"status": "invalid event", "message": "Event object is invalid", "errors": [*errors]}
    )


def _rest_error(status: int, message: str, code: int, *errors: str) -> _Refused:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = list(errors)
    return _Refused(status, {"error": body})


@dataclass
class FakeEvent:
    """One accepted event and what it did: opened, deduplicated, acknowledged, resolved, dropped."""

    routing_key: str
    body: dict[str, Any]
    outcome: str

    @property
    def action(self) -> str:
        return str(self.body["event_action"])

    @property
    def dedup_key(self) -> str:
        return str(self.body.get("dedup_key", ""))


@dataclass
class FakeIncident:
    id: str
    number: int
    title: str
    incident_key: str
    service_id: str
    status: str
    created_at: datetime
    notes: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> dict[str, Any]:
        stamp = _stamp(self.created_at)
        return {
            "id": self.id,
            "type": "incident",
            "summary": f"[#{self.number}] {self.title}",
            "self": f"{WEB.replace('fake', 'api.fake')}/incidents/{self.id}",
            "html_url": f"{WEB}/incidents/{self.id}",
            "incident_number": self.number,
            "title": self.title,
            "created_at": stamp,
            "updated_at": stamp,
            "status": self.status,
            "incident_key": self.incident_key,
            "service": {
                "id": self.service_id,
                "type": "service_reference",
                "summary": "Fake service",
                "self": f"{WEB}/services/{self.service_id}",
                "html_url": f"{WEB}/service-directory/{self.service_id}",
            },
            "assignments": [],
            "assigned_via": "escalation_policy",
            "last_status_change_at": stamp,
            "resolved_at": stamp if self.status == "resolved" else None,
            "alert_counts": {"all": 1, "triggered": 0, "resolved": 0},
            "is_mergeable": True,
            "pending_actions": [],
            "acknowledgements": [],
            "urgency": "high",
        }


@dataclass
class FakeAlert:
    """One PagerDuty alert: opened by a trigger, closed by a resolve, never reopened."""

    routing_key: str
    dedup_key: str
    summary: str
    severity: str
    status: str = "triggered"  # triggered, acknowledged, resolved
    deduplicated: int = 0  # later triggers folded into this alert
    incident: FakeIncident | None = None

    @property
    def open(self) -> bool:
        return self.status != "resolved"


class FakePagerDuty(LocalServer):
    """`with FakePagerDuty() as fake: fake.events_url, fake.api_url ...`"""

    def __init__(
        self,
        routing_keys: tuple[str, ...] = (ROUTING_KEY,),
        api_token: str = API_TOKEN,
        users: tuple[str, ...] = (USER_EMAIL,),
    ) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.api_token = api_token
        self.users = set(users)
        self._lock = threading.Lock()
        self._calls: list[tuple[str, str, dict[str, Any]]] = []
        self._events: list[FakeEvent] = []
        self._alerts: list[FakeAlert] = []
        self._incidents: list[FakeIncident] = []
        self._rate: tuple[int, float] | None = None
        self._recent: dict[str, deque[float]] = {}
        self._incidents_held = False
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests look at and control ----------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every request as (kind, path, details), rejected and faulted ones included."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, kind: str) -> list[dict[str, Any]]:
        return [details for name, _, details in self.calls if name == _kind(kind)]

    def events(self, routing_key: str | None = None) -> list[FakeEvent]:
        """Accepted events (202), oldest first."""
        with self._lock:
            return [e for e in self._events if routing_key in (None, e.routing_key)]

    def alerts(self, routing_key: str | None = None) -> list[FakeAlert]:
        with self._lock:
            return [a for a in self._alerts if routing_key in (None, a.routing_key)]

    def open_alerts(self, routing_key: str | None = None) -> list[FakeAlert]:
        return [a for a in self.alerts(routing_key) if a.open]

    def incidents(self) -> list[FakeIncident]:
        with self._lock:
            return list(self._incidents)

    def triggers(self, outcome: str | None = None) -> int:
        """Accepted triggers; with `outcome`, only those "opened" or "deduplicated"."""
        return sum(
            1 for e in self.events() if e.action == "trigger" and outcome in (None, e.outcome)
        )

    def fail_next(
        self,
        path_or_kind: str,
        status: int = 429,
        count: int = 1,
        retry_after: str | None = None,
        ratelimit_reset: str | None = None,
        body: Any = None,
    ) -> None:
        """The next `count` requests of that kind answer `status` with PagerDuty's error body."""
        kind = _kind(path_or_kind)
        headers: Headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if ratelimit_reset is not None:
            headers["ratelimit-reset"] = ratelimit_reset
        answer = body if body is not None else _fault_body(kind, status)
        self.answer_next(kind, (status, headers, answer), count)

    def route_key(self, route: str) -> str:
        return _kind(route)

    def refusal(self, route: str, status: int, message: str | None) -> Answer:
        return status, {}, _fault_body(route, status, message)

    def rate_limit(self, events: int | None, window: float = 60.0) -> None:
        """More than `events` events per routing key within `window` seconds get HTTP 429."""
        with self._lock:
            self._rate = (events, window) if events is not None else None
            self._recent.clear()

    def hold_incidents(self, held: bool = True) -> None:
        """While held, triggers open alerts but PagerDuty has not created their incidents yet."""
        with self._lock:
            self._incidents_held = held
            if not held:
                for alert in self._alerts:
                    if alert.incident is None:
                        self._open_incident(alert)

    # -- request handling ------------------------------------------------------------------

    def answer(self, request: Request) -> Answer:
        headers = dict(request.headers.items())
        return self.handle(request.method, request.target, headers, request.body)

    def handle(self, method: str, target: str, headers: Headers, body: bytes) -> Answer:
        url = urlsplit(target)
        kind = _route(method, url.path)
        details: dict[str, Any] = {"method": method, "query": parse_qs(url.query)}
        details["headers"] = {k.lower(): v for k, v in headers.items()}
        details["body"] = _loads(body)
        with self._lock:
            self._calls.append((kind, url.path, details))
        return self.respond(kind, lambda: self._dispatch(kind, method, url.path, details, body))

    def _dispatch(
        self, kind: str, method: str, path: str, details: dict[str, Any], raw: bytes
    ) -> Answer:
        try:
            if kind == EVENTS:
                return 202, {}, self._enqueue(raw)
            if kind in (INCIDENTS, NOTES):
                self._authorize(method, details["headers"])
                if kind == INCIDENTS:
                    return 200, {}, self._list_incidents(details["query"])
                incident_id = path.split("/")[2]
                if method == "GET":
                    return 200, {}, self._list_notes(incident_id)
                return 200, {}, self._add_note(incident_id, details)
            raise _rest_error(404, "Not Found", 2100)
        except _Refused as exc:
            return exc.status, exc.headers, exc.body

    # -- Events API v2 ---------------------------------------------------------------------

    def _enqueue(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > EVENT_MAX_BYTES:
            raise _invalid_event("Event object exceeds the 512 KB size limit")
        event = _loads(raw)
        if not isinstance(event, dict):
            raise _Refused(
                400,
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
            )
        routing_key = _check_event(event)
        if routing_key not in self.routing_keys:
            raise _invalid_event("Invalid routing key")
        with self._lock:
            self._check_rate(routing_key)
            dedup = event.get("dedup_key") or uuid.uuid4().hex
            outcome = self._apply(routing_key, dedup, event)
            stored = {k: v for k, v in event.items() if k != "routing_key"}
            stored.setdefault("dedup_key", dedup)
            self._events.append(FakeEvent(routing_key, stored, outcome))
        return {"status": "success", "message": "Event processed", "dedup_key": dedup}

    def _apply(self, routing_key: str, dedup: str, event: dict[str, Any]) -> str:
        alert = next(
            (
                a
                for a in self._alerts
                if a.open and a.routing_key == routing_key and a.dedup_key == dedup
            ),
            None,
        )
        action = event["event_action"]
        if action == "trigger":
            if alert is not None:
                alert.deduplicated += 1
                return "deduplicated"
            payload = event["payload"]
            alert = FakeAlert(routing_key, dedup, payload["summary"], payload["severity"])
            self._alerts.append(alert)
            if not self._incidents_held:
                self._open_incident(alert)
            return "opened"
        if alert is None:
            return "dropped"  # PagerDuty answers 202 and ignores it
        if action == "acknowledge":
            if alert.status == "acknowledged":
                return "dropped"
            alert.status = "acknowledged"
        else:
            alert.status = "resolved"
        if alert.incident is not None:
            alert.incident.status = alert.status
        return "acknowledged" if action == "acknowledge" else "resolved"

    def _open_incident(self, alert: FakeAlert) -> None:
        number = next(self._ids)
        alert.incident = FakeIncident(
            id=f"Q{number:06d}FAKE",
            number=number,
            title=alert.summary,
            incident_key=alert.dedup_key,
            service_id=f"PSVC{sorted(self.routing_keys).index(alert.routing_key):03d}",
            status=alert.status,
            created_at=datetime.now(UTC),
        )
        self._incidents.append(alert.incident)

    def _check_rate(self, routing_key: str) -> None:
        if self._rate is None:
            return
        limit, window = self._rate
        now = time.monotonic()
        recent = self._recent.setdefault(routing_key, deque())
        while recent and now - recent[0] > window:
            recent.popleft()
        if len(recent) >= limit:
            raise _Refused(429, _fault_body(EVENTS, 429))
        recent.append(now)

    # -- REST API v2 -----------------------------------------------------------------------

    def _authorize(self, method: str, headers: dict[str, str]) -> None:
        if headers.get("authorization") != f"Token token={self.api_token}":
            raise _rest_error(401, "Authentication failed", 2006)
        if PD_ACCEPT not in headers.get("accept", "") and "application/json" not in headers.get(
            "accept", ""
        ):
            raise _rest_error(406, "Not Acceptable", 2001, "Accept header must ask for JSON")
        if method == "POST":
            if not headers.get("content-type", "").startswith("application/json"):
                raise _rest_error(
                    400, "Invalid Input Provided", 2001, "Content-Type must be application/json"
                )
            sender = headers.get("from", "").strip()
            if not sender:
                raise _rest_error(
                    400,
                    "Invalid Input Provided",
                    2001,
                    'You must specify a user\'s email address in the "From" header',
                )
            if sender not in self.users:
                raise _rest_error(400, "Invalid Input Provided", 2001, "Requester User Not Found")

    def _list_incidents(self, query: dict[str, list[str]]) -> dict[str, Any]:
        keys = query.get("incident_key")
        key = keys[0] if keys else None
        limit = min(max(int((query.get("limit") or ["25"])[0]), 1), 100)
        offset = max(int((query.get("offset") or ["0"])[0]), 0)
        statuses = set(query.get("statuses[]") or [])
        everything = (query.get("date_range") or [""])[0] == "all"
        since = datetime.now(UTC) - timedelta(days=30)
        with self._lock:
            found = [
                i
                for i in self._incidents
                if key in (None, i.incident_key)
                and (not statuses or i.status in statuses)
                and (everything or i.created_at >= since)  # PagerDuty's default: one month
            ]
            page = [i.render() for i in found[offset : offset + limit]]
        return {
            "incidents": page,
            "limit": limit,
            "offset": offset,
            "more": offset + limit < len(found),
            "total": None,
        }

    def _incident(self, incident_id: str) -> FakeIncident:
        for incident in self._incidents:
            if incident.id == incident_id:
                return incident
        raise _rest_error(404, "Not Found", 2100)

    def _list_notes(self, incident_id: str) -> dict[str, Any]:
        with self._lock:
            return {"notes": list(self._incident(incident_id).notes)}

    def _add_note(self, incident_id: str, details: dict[str, Any]) -> dict[str, Any]:
        body = details["body"]
        note = body.get("note") if isinstance(body, dict) else None
        content = note.get("content") if isinstance(note, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise _rest_error(400, "Invalid Input Provided", 2001, "Note content is required")
        with self._lock:
            incident = self._incident(incident_id)
            created = {
                "id": f"PNOTE{len(incident.notes) + 1:03d}",
                "user": {
                    "id": "PUSER01",
                    "type": "user_reference",
                    "summary": details["headers"]["from"],
                    "self": f"{WEB}/users/PUSER01",
                    "html_url": f"{WEB}/users/PUSER01",
                },
                "channel": {"summary": "The PagerDuty website or APIs"},
                "content": content,
                "created_at": _stamp(datetime.now(UTC)),
                "updated_at": _stamp(datetime.now(UTC)),
            }
            incident.notes.append(created)
        return {"note": created}


def _check_event(event: dict[str, Any]) -> str:
    """The routing key of a well-formed event; `_Refused` 400 like PagerDuty's otherwise."""
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        raise _invalid_event("'routing_key' is missing or blank")
    if len(routing_key) != ROUTING_KEY_LENGTH:
        raise _invalid_event("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        raise _invalid_event(
            "'event_action' is invalid (must be one of the following: "
            "'trigger', 'acknowledge' or 'resolve')"
        )
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > DEDUP_KEY_MAX):
        raise _invalid_event("'dedup_key' is invalid (must be a string of at most 255 characters)")
    if action != "trigger":
        if not dedup:
            raise _invalid_event("'dedup_key' is missing or blank")
        return routing_key
    _check_payload(event.get("payload"))
    _check_links(event.get("links"), event.get("images"))
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            raise _invalid_event(f"'{name}' must be a string")
    return routing_key


def _check_payload(payload: object) -> None:
    if not isinstance(payload, dict):
        raise _invalid_event("'payload' is missing or blank")
    for name in PAYLOAD_REQUIRED:
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise _invalid_event(f"'payload.{name}' is missing or blank")
    if len(payload["summary"]) > SUMMARY_MAX:
        raise _invalid_event("'payload.summary' is too long (maximum is 1024 characters)")
    if payload["severity"] not in SEVERITIES:
        raise _invalid_event(
            "'payload.severity' is invalid (must be one of the following: "
            "'critical', 'warning', 'error' or 'info')"
        )
    timestamp = payload.get("timestamp")
    if timestamp is not None and not _is_timestamp(timestamp):
        raise _invalid_event("'payload.timestamp' is invalid (must be ISO 8601)")
    for name in PAYLOAD_TEXT:
        if name in payload and not isinstance(payload[name], str):
            raise _invalid_event(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        raise _invalid_event("'payload.custom_details' must be an object")


def _check_links(links: object, images: object) -> None:
    for name, items, required in (("links", links, "href"), ("images", images, "src")):
        if items is None:
            continue
        if not isinstance(items, list):
            raise _invalid_event(f"'{name}' must be an array")
        for item in items:
            if not isinstance(item, dict) or not _is_url(item.get(required)):
                raise _invalid_event(f"'{name}' entries need a '{required}' URL")
            extra = set(item) - (LINK_FIELDS if name == "links" else IMAGE_FIELDS)
            if extra or not all(isinstance(v, str) for v in item.values()):
                raise _invalid_event(f"'{name}' entries hold unknown or non-string fields")
            if name == "images" and not item["src"].startswith("https://"):
                raise _invalid_event("'images' must be served over HTTPS")


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _fault_body(kind: str, status: int, message: str | None = None) -> dict[str, Any]:
    """PagerDuty's error body for `status`; `message`, when given, in place of its words."""
    if kind == EVENTS:
        if status == 429:
            body: dict[str, Any] = {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. "
                "Please retry later.",
            }
        elif status == 400:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": []}
        else:
            body = {"status": "error", "message": "Internal server error", "errors": []}
        if message is not None:
            body.update(message=message, errors=[message])
        return body
    messages = {400: "Invalid Input Provided", 401: "Authentication failed", 403: "Forbidden"}
    messages |= {404: "Not Found", 429: "Rate Limit Exceeded"}
    codes = {400: 2001, 401: 2006, 403: 2010, 404: 2100, 429: 2020}
    error: dict[str, Any] = {
        "message": messages.get(status, "Internal Server Error"),
        "code": codes.get(status, 2000),
    }
    if message is not None:
        error.update(message=message, errors=[message])
    return {"error": error}


def _kind(path_or_kind: str) -> str:
    if path_or_kind in (EVENTS, INCIDENTS, NOTES):
        return path_or_kind
    path = urlsplit(path_or_kind).path
    if path == "/v2/enqueue":
        return EVENTS
    return NOTES if path.endswith("/notes") else INCIDENTS


def _route(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if method == "POST" and path == "/v2/enqueue":
        return EVENTS
    if method == "GET" and parts == ["incidents"]:
        return INCIDENTS
    if method in ("GET", "POST") and len(parts) == 3 and parts[::2] == ["incidents", "notes"]:
        return NOTES
    return "unknown"


def _loads(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- PagerDuty's published shapes ---------------------------------------------------------
#
# The parts of PagerDuty's two OpenAPI documents that our requests and the fake's answers
# touch, restated as types, required fields and enums. Each schema sits under the JSON pointer
# it has in PagerDuty's own document, so a failed check names the place to read there.
# Formats (date-time, url) are left out: the check below ignores them.

_STRING: dict[str, Any] = {"type": "string"}
_INTEGER: dict[str, Any] = {"type": "integer"}
_BOOLEAN: dict[str, Any] = {"type": "boolean"}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _one_of(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _document(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An OpenAPI-shaped document holding each schema at its JSON pointer."""
    document: dict[str, Any] = {}
    for pointer, schema in schemas.items():
        node = document
        *parents, last = pointer.removeprefix("#/").split("/")
        for part in parents:
            node = node.setdefault(part.replace("~1", "/").replace("~0", "~"), {})
        node[last.replace("~1", "/").replace("~0", "~")] = schema
    return document


def _reference(*types: str) -> dict[str, Any]:
    # REST `components/schemas/Reference`: the common Tag fields, with type and id required.
    fields = {"id": _STRING, "type": _one_of(types), "summary": _STRING}
    return _object(fields | {"self": _STRING, "html_url": _STRING}, ("type", "id"))


# Events API v2 (reference/events-v2/openapiv3.json).
EVENT_REQUEST = "#/paths/~1enqueue/post/requestBody/content/application~1json/schema"
EVENT_ACCEPTED = "#/components/responses/Success/content/application~1json/schema"
EVENT_REFUSED = "#/components/responses/Error/content/application~1json/schema"
_PAYLOAD = _object(  # components/schemas/Payload
    {
        "summary": _STRING,
        "timestamp": _STRING,
        "severity": {"enum": list(SEVERITIES)},
        "source": _STRING,
        **dict.fromkeys(PAYLOAD_TEXT, _STRING),
        "custom_details": {"type": "object"},
    },
    PAYLOAD_REQUIRED,
)
EVENTS_SPEC = _document(
    {
        EVENT_REQUEST: _object(
            {
                "payload": _PAYLOAD,
                "routing_key": _STRING,
                "event_action": {"enum": list(ACTIONS)},
                "dedup_key": _STRING,
                "client": _STRING,
                "client_url": _STRING,
                "links": _array(_object({"href": _STRING, "text": _STRING}, ("href",))),
                "images": _array(
                    _object({"src": _STRING, "href": _STRING, "alt": _STRING}, ("src",))
                ),
            },
            EVENT_REQUIRED,
        ),
        EVENT_ACCEPTED: _object(
            {"status": _STRING, "dedup_key": _STRING, "message": _STRING}, ("status",)
        ),
        EVENT_REFUSED: _object(
            {"status": _STRING, "message": _STRING, "errors": _array(_STRING)},
            ("status", "message"),
        ),
    }
)

# REST API v2 (reference/REST/openapiv3.json).
INCIDENT_LIST = "#/paths/~1incidents/get/responses/200/content/application~1json/schema"
NOTE_CREATED = (
    "#/paths/~1incidents~1{id}~1notes/post/responses/200/content/application~1json/schema"
)
NOTE_LIST = "#/paths/~1incidents~1{id}~1notes/get/responses/200/content/application~1json/schema"
REST_REFUSED = "#/components/responses/Conflict/content/application~1json/schema"
_INCIDENT = _object(  # components/schemas/Incident, the fields the fake answers with
    {
        "id": _STRING,
        "type": _STRING,
        "summary": _STRING,
        "self": _STRING,
        "html_url": _STRING,
        "incident_number": _INTEGER,
        "title": _STRING,
        "created_at": _STRING,
        "updated_at": _STRING,
        "status": _one_of(INCIDENT_STATUSES),
        "incident_key": _STRING,
        # A ServiceReference; the full Service only comes with include[]=services.
        "service": _reference("service_reference"),
        "assignments": {"type": "array"},
        "assigned_via": _one_of(ASSIGNED_VIA),
        "last_status_change_at": _STRING,
        "resolved_at": _STRING,
        "alert_counts": _object({"triggered": _INTEGER, "resolved": _INTEGER, "all": _INTEGER}),
        "is_mergeable": _BOOLEAN,
        "pending_actions": {"type": "array"},
        "acknowledgements": {"type": "array"},
        "urgency": _one_of(URGENCIES),
    }
)
_NOTE = _object(  # components/schemas/IncidentNote
    {
        "id": _STRING,
        "user": _reference(*NOTE_USER_TYPES),
        "channel": _object(
            {
                "summary": _STRING,
                "id": _STRING,
                "type": _STRING,
                "self": _STRING,
                "html_url": _STRING,
            },
            ("summary",),
        ),
        "content": _STRING,
        "created_at": _STRING,
        "updated_at": _STRING,
    },
    ("content",),
)
REST_SPEC = _document(
    {
        INCIDENT_LIST: _object(  # Pagination, then the page
            {
                "offset": _INTEGER,
                "limit": _INTEGER,
                "more": _BOOLEAN,
                "total": _INTEGER,
                "incidents": _array(_INCIDENT),
            },
            ("incidents",),
        ),
        NOTE_CREATED: _object({"note": _NOTE}, ("note",)),
        NOTE_LIST: _object({"notes": _array(_NOTE)}, ("notes",)),
        # PagerDuty's one error object, whatever the status.
        REST_REFUSED: _object(
            {"error": _object({"code": _INTEGER, "message": _STRING, "errors": _array(_STRING)})}
        ),
    }
)


class SpecShapes:
    """A small OpenAPI 3 schema check (types, required, enum, $ref, allOf/oneOf, items).

    Enough to hold the fake's answers and our requests to PagerDuty's published shapes
    (`EVENTS_SPEC`, `REST_SPEC`); formats are not checked and null is accepted anywhere, as
    PagerDuty sends nulls freely.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.spec = document

    def errors(self, value: Any, pointer: str) -> list[str]:
        """Problems of `value` against the schema at JSON pointer `pointer` ("#/components/...")."""
        return self._check(value, self._resolve(pointer), "$")

    def _resolve(self, pointer: str) -> dict[str, Any]:
        node: Any = self.spec
        for part in pointer.removeprefix("#/").split("/"):
            name = part.replace("~1", "/").replace("~0", "~")
            node = node[int(name)] if isinstance(node, list) else node[name]
        return dict(node)

    def _check(self, value: Any, schema: dict[str, Any], at: str) -> list[str]:
        if "$ref" in schema:
            return self._check(value, self._resolve(schema["$ref"]), at)
        if value is None:
            return []
        problems = [p for sub in schema.get("allOf", []) for p in self._check(value, sub, at)]
        choices = schema.get("oneOf") or schema.get("anyOf")
        if choices and all(self._check(value, sub, at) for sub in choices):
            problems.append(f"{at}: matches none of its oneOf/anyOf schemas")
        kind = schema.get("type")
        if kind is not None and not _is_type(value, kind):
            return [*problems, f"{at}: expected {kind}, got {type(value).__name__}"]
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{at}: {value!r} not in {schema['enum']}")
        if isinstance(value, dict):
            problems += [
                f"{at}.{name}: missing" for name in schema.get("required", []) if name not in value
            ]
            for name, sub in schema.get("properties", {}).items():
                if name in value:
                    problems += self._check(value[name], sub, f"{at}.{name}")
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                problems += self._check(item, schema["items"], f"{at}[{index}]")
        return problems


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    return isinstance(value, types.get(kind, object))
