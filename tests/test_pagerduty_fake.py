"""The PagerDuty fake answers like PagerDuty: what it accepts and rejects, and how it dedups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.fakes.pagerduty import (
    API_TOKEN,
    EVENTS_SPEC,
    PD_ACCEPT,
    REST_SPEC,
    ROUTING_KEY,
    USER_EMAIL,
    FakePagerDuty,
    SpecShapes,
)

OTHER_KEY = "R0UT1NGKEY0000000000000000000002"
EVENT_OK = "#/components/responses/Success/content/application~1json/schema"
EVENT_ERROR = "#/components/responses/Error/content/application~1json/schema"
EVENT_BODY = "#/paths/~1enqueue/post/requestBody/content/application~1json/schema"
INCIDENTS_OK = "#/paths/~1incidents/get/responses/200/content/application~1json/schema"
NOTE_OK = "#/paths/~1incidents~1{id}~1notes/post/responses/200/content/application~1json/schema"
NOTES_OK = "#/paths/~1incidents~1{id}~1notes/get/responses/200/content/application~1json/schema"
REST_ERROR = "#/components/responses/Conflict/content/application~1json/schema"


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(routing_keys=(ROUTING_KEY, OTHER_KEY)) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def events_spec() -> SpecShapes:
    return SpecShapes(EVENTS_SPEC)


@pytest.fixture(scope="module")
def rest_spec() -> SpecShapes:
    return SpecShapes(REST_SPEC)


def trigger(dedup_key: str | None = "k-1", routing_key: str = ROUTING_KEY, **payload: Any) -> Any:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {"summary": "Disk full", "source": "db-1", "severity": "critical", **payload},
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def update(action: str, dedup_key: str = "k-1", routing_key: str = ROUTING_KEY) -> Any:
    return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}


def send(fake: FakePagerDuty, http: httpx2.Client, event: Any) -> httpx2.Response:
    return http.post(f"{fake.events_url}/v2/enqueue", json=event)


def rest_headers(token: str = API_TOKEN, sender: str | None = USER_EMAIL) -> dict[str, str]:
    headers = {"Authorization": f"Token token={token}", "Accept": PD_ACCEPT}
    if sender is not None:
        headers["From"] = sender
    return headers


def errors_of(response: httpx2.Response) -> list[str]:
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    return list(body["errors"])


# -- Events API: what it accepts -----------------------------------------------------------


def test_trigger_is_accepted_with_the_spec_shape(
    fake: FakePagerDuty, http: httpx2.Client, events_spec: SpecShapes
) -> None:
    event = trigger(
        component="postgres",
        group="payments",
        **{"class": "disk", "timestamp": "2026-11-22T10:00:00+00:00"},
    )
    event |= {
        "links": [{"href": "https://app.datadoghq.com/monitors/1", "text": "Monitor"}],
        "images": [{"src": "https://p.datadoghq.com/x.png", "alt": "graph"}],
        "client": "responder",
        "client_url": "https://app.datadoghq.com/monitors/1",
    }
    assert events_spec.errors(event, EVENT_BODY) == []
    answer = send(fake, http, event)
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "k-1"}
    assert events_spec.errors(answer.json(), EVENT_OK) == []
    (stored,) = fake.events()
    assert "routing_key" not in stored.body
    assert (stored.action, stored.dedup_key, stored.outcome) == ("trigger", "k-1", "opened")


def test_trigger_without_a_dedup_key_gets_one(fake: FakePagerDuty, http: httpx2.Client) -> None:
    answer = send(fake, http, trigger(dedup_key=None))
    assert answer.status_code == 202
    key = answer.json()["dedup_key"]
    assert len(key) == 32
    assert [a.dedup_key for a in fake.alerts()] == [key]


# -- Events API: what it rejects -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"routing_key": None}, "'routing_key' is missing or blank"),
        ({"routing_key": ""}, "'routing_key' is missing or blank"),
        ({"routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({"routing_key": "X" * 32}, "Invalid routing key"),
        ({"event_action": "open"}, "'event_action' is invalid"),
        ({"event_action": None}, "'event_action' is invalid"),
        ({"dedup_key": "d" * 256}, "'dedup_key' is invalid"),
        ({"payload": None}, "'payload' is missing or blank"),
        ({"links": [{"text": "no href"}]}, "'links' entries need a 'href' URL"),
        ({"images": [{"src": "http://plain.example/x.png"}]}, "served over HTTPS"),
        ({"images": "nope"}, "'images' must be an array"),
    ],
)
def test_malformed_events_are_invalid(
    fake: FakePagerDuty,
    http: httpx2.Client,
    events_spec: SpecShapes,
    change: dict[str, Any],
    error: str,
) -> None:
    event = trigger()
    for name, value in change.items():
        if value is None:
            event.pop(name, None)
        else:
            event[name] = value
    answer = send(fake, http, event)
    assert answer.status_code == 400
    assert events_spec.errors(answer.json(), EVENT_ERROR) == []
    (message,) = errors_of(answer)
    assert message.startswith(error) or error in message
    assert fake.events() == [] and fake.alerts() == []
    assert len(fake.calls_to("events")) == 1  # rejected requests are still recorded


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"severity": "fatal"}, "'payload.severity' is invalid"),
        ({"severity": None}, "'payload.severity' is missing or blank"),
        ({"summary": None}, "'payload.summary' is missing or blank"),
        ({"summary": "  "}, "'payload.summary' is missing or blank"),
        ({"summary": "s" * 1025}, "'payload.summary' is too long"),
        ({"source": None}, "'payload.source' is missing or blank"),
        ({"timestamp": "yesterday"}, "'payload.timestamp' is invalid"),
        ({"custom_details": ["a"]}, "'payload.custom_details' must be an object"),
    ],
)
def test_bad_payloads_are_invalid(
    fake: FakePagerDuty, http: httpx2.Client, payload: dict[str, Any], error: str
) -> None:
    event = trigger()
    for name, value in payload.items():
        if value is None:
            del event["payload"][name]
        else:
            event["payload"][name] = value
    answer = send(fake, http, event)
    assert answer.status_code == 400
    assert errors_of(answer)[0].startswith(error)
    assert fake.alerts() == []


def test_summary_of_exactly_1024_is_fine(fake: FakePagerDuty, http: httpx2.Client) -> None:
    assert send(fake, http, trigger(summary="s" * 1024)).status_code == 202


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_updates_need_a_dedup_key(fake: FakePagerDuty, http: httpx2.Client, action: str) -> None:
    event = update(action)
    del event["dedup_key"]
    answer = send(fake, http, event)
    assert answer.status_code == 400
    assert errors_of(answer) == ["'dedup_key' is missing or blank"]


def test_a_body_that_is_not_json_is_unrecognized(
    fake: FakePagerDuty, http: httpx2.Client, events_spec: SpecShapes
) -> None:
    answer = http.post(
        f"{fake.events_url}/v2/enqueue",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": ["JSON parse error"],
    }
    assert events_spec.errors(answer.json(), EVENT_ERROR) == []


def test_only_the_v2_path_takes_events(fake: FakePagerDuty, http: httpx2.Client) -> None:
    assert http.post(f"{fake.events_url}/enqueue", json=trigger()).status_code == 404
    assert http.get(f"{fake.events_url}/v2/enqueue").status_code == 404
    assert fake.alerts() == []


# -- Events API: deduplication -------------------------------------------------------------


def test_a_second_trigger_is_deduplicated(fake: FakePagerDuty, http: httpx2.Client) -> None:
    for _ in range(3):
        assert send(fake, http, trigger()).status_code == 202
    (alert,) = fake.alerts()
    assert (alert.status, alert.deduplicated) == ("triggered", 2)
    assert [e.outcome for e in fake.events()] == ["opened", "deduplicated", "deduplicated"]
    assert (fake.triggers(), fake.triggers("opened"), fake.triggers("deduplicated")) == (3, 1, 2)
    assert len(fake.incidents()) == 1


def test_acknowledge_then_resolve_close_the_alert(fake: FakePagerDuty, http: httpx2.Client) -> None:
    send(fake, http, trigger())
    send(fake, http, update("acknowledge"))
    (alert,) = fake.open_alerts()
    assert alert.status == "acknowledged"
    assert alert.incident is not None and alert.incident.status == "acknowledged"
    send(fake, http, update("acknowledge"))  # already acknowledged: nothing changes
    send(fake, http, update("resolve"))
    assert fake.open_alerts() == []
    assert [e.outcome for e in fake.events()] == ["opened", "acknowledged", "dropped", "resolved"]


def test_after_resolve_a_trigger_opens_a_new_alert(
    fake: FakePagerDuty, http: httpx2.Client
) -> None:
    send(fake, http, trigger())
    send(fake, http, update("resolve"))
    for action in ("acknowledge", "resolve"):  # nothing open: PagerDuty drops them (202)
        assert send(fake, http, update(action)).status_code == 202
    send(fake, http, trigger())
    first, second = fake.alerts()
    assert (first.status, second.status) == ("resolved", "triggered")
    assert [e.outcome for e in fake.events()] == [
        "opened",
        "resolved",
        "dropped",
        "dropped",
        "opened",
    ]


def test_updates_for_an_unknown_key_are_dropped(fake: FakePagerDuty, http: httpx2.Client) -> None:
    assert send(fake, http, update("resolve", "never-seen")).status_code == 202
    assert fake.alerts() == []
    assert [e.outcome for e in fake.events()] == ["dropped"]


def test_dedup_is_per_routing_key(fake: FakePagerDuty, http: httpx2.Client) -> None:
    send(fake, http, trigger())
    send(fake, http, trigger(routing_key=OTHER_KEY))
    send(fake, http, update("resolve", routing_key=OTHER_KEY))
    assert [a.status for a in fake.alerts(ROUTING_KEY)] == ["triggered"]
    assert [a.status for a in fake.alerts(OTHER_KEY)] == ["resolved"]
    assert len(fake.events(OTHER_KEY)) == 2


# -- Events API: faults --------------------------------------------------------------------


def test_rate_limit_per_routing_key(fake: FakePagerDuty, http: httpx2.Client) -> None:
    fake.rate_limit(2, window=60)
    assert [send(fake, http, trigger(f"k-{i}")).status_code for i in range(3)] == [202, 202, 429]
    assert send(fake, http, trigger("k-9", routing_key=OTHER_KEY)).status_code == 202
    assert len(fake.alerts(ROUTING_KEY)) == 2


def test_fail_next_answers_then_recovers(fake: FakePagerDuty, http: httpx2.Client) -> None:
    fake.fail_next("/v2/enqueue", status=503, count=2, retry_after="7")
    first = send(fake, http, trigger())
    assert (first.status_code, first.headers["Retry-After"]) == (503, "7")
    assert send(fake, http, trigger()).status_code == 503
    assert send(fake, http, trigger()).status_code == 202
    assert len(fake.calls_to("events")) == 3
    assert fake.triggers("opened") == 1


def test_delay_next_does_the_work_then_answers_late(fake: FakePagerDuty) -> None:
    fake.delay_next("events", 1.0)
    with (
        httpx2.Client(timeout=0.2) as impatient,
        pytest.raises(httpx2.ReadTimeout),
    ):
        send(fake, impatient, trigger())
    assert len(fake.alerts()) == 1


def test_down_refuses_connections_until_up(fake: FakePagerDuty, http: httpx2.Client) -> None:
    fake.down()
    with pytest.raises(httpx2.ConnectError):
        send(fake, http, trigger())
    fake.up()
    assert send(fake, http, trigger()).status_code == 202


# -- REST API ------------------------------------------------------------------------------


def open_incident(fake: FakePagerDuty, http: httpx2.Client, dedup_key: str = "k-1") -> str:
    assert send(fake, http, trigger(dedup_key)).status_code == 202
    answer = http.get(
        f"{fake.api_url}/incidents", params={"incident_key": dedup_key}, headers=rest_headers()
    )
    (incident,) = answer.json()["incidents"]
    return str(incident["id"])


def test_incidents_are_found_by_incident_key(
    fake: FakePagerDuty, http: httpx2.Client, rest_spec: SpecShapes
) -> None:
    send(fake, http, trigger("k-1"))
    send(fake, http, trigger("k-2"))
    answer = http.get(
        f"{fake.api_url}/incidents",
        params={"incident_key": "k-2", "date_range": "all"},
        headers=rest_headers(sender=None),  # reads need no From
    )
    assert answer.status_code == 200
    body = answer.json()
    assert rest_spec.errors(body, INCIDENTS_OK) == []
    (incident,) = body["incidents"]
    assert incident["incident_key"] == "k-2"
    assert incident["title"] == "Disk full"
    assert incident["status"] == "triggered"
    assert incident["html_url"].startswith("https://")
    assert (body["limit"], body["offset"], body["more"]) == (25, 0, False)


def test_no_incident_while_pagerduty_is_still_creating_it(
    fake: FakePagerDuty, http: httpx2.Client
) -> None:
    fake.hold_incidents()
    send(fake, http, trigger("k-1"))
    answer = http.get(
        f"{fake.api_url}/incidents", params={"incident_key": "k-1"}, headers=rest_headers()
    )
    assert answer.json()["incidents"] == []
    fake.hold_incidents(False)
    answer = http.get(
        f"{fake.api_url}/incidents", params={"incident_key": "k-1"}, headers=rest_headers()
    )
    assert len(answer.json()["incidents"]) == 1


def test_note_is_added_with_from(
    fake: FakePagerDuty, http: httpx2.Client, rest_spec: SpecShapes
) -> None:
    incident_id = open_incident(fake, http)
    answer = http.post(
        f"{fake.api_url}/incidents/{incident_id}/notes",
        json={"note": {"content": "Rolled back"}},
        headers=rest_headers(),
    )
    assert answer.status_code == 200
    assert rest_spec.errors(answer.json(), NOTE_OK) == []
    assert answer.json()["note"]["content"] == "Rolled back"
    listed = http.get(f"{fake.api_url}/incidents/{incident_id}/notes", headers=rest_headers())
    assert rest_spec.errors(listed.json(), NOTES_OK) == []
    assert [n["content"] for n in listed.json()["notes"]] == ["Rolled back"]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        (rest_headers(sender=None), 400, "Invalid Input Provided"),
        (rest_headers(sender="stranger@example.com"), 400, "Invalid Input Provided"),
        (rest_headers(token="wrong"), 401, "Authentication failed"),
        ({"Accept": PD_ACCEPT}, 401, "Authentication failed"),
    ],
)
def test_notes_are_refused_like_pagerduty(
    fake: FakePagerDuty,
    http: httpx2.Client,
    rest_spec: SpecShapes,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    incident_id = open_incident(fake, http)
    answer = http.post(
        f"{fake.api_url}/incidents/{incident_id}/notes",
        json={"note": {"content": "x"}},
        headers=headers,
    )
    assert answer.status_code == status
    assert answer.json()["error"]["message"] == error
    assert rest_spec.errors(answer.json(), REST_ERROR) == []
    assert fake.incidents()[0].notes == []


def test_missing_from_says_so(fake: FakePagerDuty, http: httpx2.Client) -> None:
    incident_id = open_incident(fake, http)
    answer = http.post(
        f"{fake.api_url}/incidents/{incident_id}/notes",
        json={"note": {"content": "x"}},
        headers=rest_headers(sender=None),
    )
    assert "From" in answer.json()["error"]["errors"][0]


def test_note_needs_content_and_a_known_incident(fake: FakePagerDuty, http: httpx2.Client) -> None:
    incident_id = open_incident(fake, http)
    empty = http.post(
        f"{fake.api_url}/incidents/{incident_id}/notes",
        json={"note": {"content": " "}},
        headers=rest_headers(),
    )
    assert empty.status_code == 400
    unknown = http.post(
        f"{fake.api_url}/incidents/PNOPE/notes",
        json={"note": {"content": "x"}},
        headers=rest_headers(),
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, 2100)


def test_bad_token_on_lookups(fake: FakePagerDuty, http: httpx2.Client) -> None:
    answer = http.get(f"{fake.api_url}/incidents", headers=rest_headers(token="nope"))
    assert answer.status_code == 401


def test_rest_rate_limit_carries_ratelimit_reset(
    fake: FakePagerDuty, http: httpx2.Client, rest_spec: SpecShapes
) -> None:
    fake.fail_next("incidents", status=429, ratelimit_reset="12")
    answer = http.get(f"{fake.api_url}/incidents", headers=rest_headers())
    assert (answer.status_code, answer.headers["ratelimit-reset"]) == (429, "12")
    assert answer.json()["error"]["message"] == "Rate Limit Exceeded"
    assert rest_spec.errors(answer.json(), REST_ERROR) == []
    assert http.get(f"{fake.api_url}/incidents", headers=rest_headers()).status_code == 200


# -- the published shapes themselves -------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"routing_key": None}, "$.routing_key: missing"),
        ({"event_action": "open"}, "$.event_action: 'open' not in"),
        ({"dedup_key": 7}, "$.dedup_key: expected string"),
        ({"links": [{"text": "no href"}]}, "$.links[0].href: missing"),
        ({"images": {"src": "https://x"}}, "$.images: expected array"),
    ],
)
def test_the_event_shape_refuses_what_pagerduty_documents_as_invalid(
    events_spec: SpecShapes, change: dict[str, Any], where: str
) -> None:
    event = trigger()
    for name, value in change.items():
        if value is None:
            del event[name]
        else:
            event[name] = value
    assert events_spec.errors(trigger(), EVENT_BODY) == []
    problems = events_spec.errors(event, EVENT_BODY)
    assert len(problems) == 1 and problems[0].startswith(where), problems


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"severity": "fatal"}, "$.payload.severity: 'fatal' not in"),
        ({"summary": None}, "$.payload.summary: missing"),
        ({"source": 3}, "$.payload.source: expected string"),
        ({"custom_details": ["a"]}, "$.payload.custom_details: expected object"),
    ],
)
def test_the_payload_shape_refuses_what_pagerduty_documents_as_invalid(
    events_spec: SpecShapes, payload: dict[str, Any], where: str
) -> None:
    event = trigger()
    for name, value in payload.items():
        if value is None:
            del event["payload"][name]
        else:
            event["payload"][name] = value
    problems = events_spec.errors(event, EVENT_BODY)
    assert len(problems) == 1 and problems[0].startswith(where), problems


def test_the_rest_shapes_refuse_answers_pagerduty_would_not_give(rest_spec: SpecShapes) -> None:
    user = {"id": "PUSER01", "type": "user_reference"}
    assert rest_spec.errors({"note": {"content": "x", "user": user}}, NOTE_OK) == []
    assert rest_spec.errors({"note": {"user": user}}, NOTE_OK) == ["$.note.content: missing"]
    assert rest_spec.errors({"notes": [{"content": 1}]}, NOTES_OK) == [
        "$.notes[0].content: expected string, got int"
    ]
    listed = {"incidents": [{"id": "Q1", "status": "open", "urgency": "high"}], "more": False}
    assert rest_spec.errors(listed, INCIDENTS_OK) == [
        "$.incidents[0].status: 'open' not in ['triggered', 'acknowledged', 'resolved']"
    ]
    assert rest_spec.errors({"error": {"code": "2001"}}, REST_ERROR) == [
        "$.error.code: expected integer, got str"
    ]
