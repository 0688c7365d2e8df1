"""The history API: bearer auth, incident filters and cursors, one incident, audit, stats."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.main import Service
from responder.store.tables import ActionRun, AuditEntry
from tests.databases import BACKENDS, restore
from tests.harness import API_TOKEN, TOKEN, drain, post, running, sample, settings_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ENDPOINTS = ["/api/incidents", "/api/incidents/1", "/api/audit", "/api/stats"]

# The four families, in an order that opens one incident per monitor, then resolves payments.
HISTORY = [
    "payment-failure-rate.triggered",
    "api-latency.warn",
    "fraud-detection-down.triggered",
    "checkout-error-rate.triggered",
    "api-latency.triggered",
    "fraud-detection-down.renotify",
    "payment-failure-rate.recovered",
]
PAYMENTS, LATENCY, FRAUD, CHECKOUT = "148275309", "148275400", "148275511", "148275622"
NEWEST_FIRST = [CHECKOUT, FRAUD, LATENCY, PAYMENTS]


@pytest.fixture
def app(migrated_url: str) -> Iterator[tuple[Service, TestClient]]:
    # No Slack token: every run is recorded as skipped, which is all the history needs.
    with running(settings_for(migrated_url)) as pair:
        yield pair


@pytest.fixture(params=BACKENDS)
def history(
    request: pytest.FixtureRequest, samples_dir: Path
) -> Iterator[tuple[Service, TestClient]]:
    """The app on a database holding HISTORY. Delivering it through the pipeline takes most
    of a second, so it is done once per session and database, and each test gets a copy."""

    def build(url: str) -> None:
        with running(settings_for(url)) as (service, client):
            deliver(service, client, samples_dir, *HISTORY)

    url = restore(request, request.param, "api-history", build)
    with running(settings_for(url)) as pair:
        yield pair


def deliver(service: Service, client: TestClient, samples_dir: Path, *names: str) -> None:
    for name in names:
        response = post(client, sample(samples_dir, name))
        assert response.status_code == 202, response.text
        drain(service)


def get(client: TestClient, path: str, **params: str) -> Any:
    return client.get(path, params=params, headers=AUTH)


def monitors(client: TestClient, **params: str) -> list[str]:
    response = get(client, "/api/incidents", **params)
    assert response.status_code == 200, response.text
    return [item["monitor_id"] for item in response.json()["items"]]


def incident_id(client: TestClient, monitor_id: str) -> int:
    items = get(client, "/api/incidents", monitor_id=monitor_id).json()["items"]
    assert len(items) == 1
    return int(items[0]["id"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}"},  # the webhook token does not open the API
        {"Authorization": "Basic " + base64.b64encode(f"x:{API_TOKEN}".encode()).decode()},
        {"Authorization": API_TOKEN},
        {"Authorization": f"Token {API_TOKEN}"},
        {"X-Responder-Token": API_TOKEN},
    ],
    ids=["none", "wrong", "webhook-token", "basic", "no-scheme", "other-scheme", "webhook-header"],
)
def test_every_endpoint_refuses_without_the_bearer_token(
    app: tuple[Service, TestClient], headers: dict[str, str]
) -> None:
    _, client = app
    for path in ENDPOINTS:
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": "missing or wrong bearer token"}


def test_the_bearer_token_opens_every_endpoint(
    history: tuple[Service, TestClient],
) -> None:
    _, client = history
    for path in ENDPOINTS:
        for scheme in ("Bearer", "bearer"):
            response = client.get(path, headers={"Authorization": f"{scheme} {API_TOKEN}"})
            assert response.status_code == 200, (path, response.text)
            assert response.headers["content-type"] == "application/json"


def test_without_an_api_token_configured_the_api_stays_closed(migrated_url: str) -> None:
    with running(settings_for(migrated_url, RESPONDER_API_TOKEN=None)) as (_, client):
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            response = client.get("/api/incidents", headers=headers)
            assert response.status_code == 401
            assert "RESPONDER_API_TOKEN" in response.json()["error"]


def test_incidents_are_listed_newest_first(history: tuple[Service, TestClient]) -> None:
    _, client = history
    body = get(client, "/api/incidents").json()
    assert [item["monitor_id"] for item in body["items"]] == NEWEST_FIRST
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True)
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["service"] == "checkout-service" and first["team"] == "shop"
    assert first["priority"] == "P2" and first["status"] == "triggered"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "resolved"}, [PAYMENTS]),
        ({"status": "triggered"}, [CHECKOUT, FRAUD, LATENCY]),
        ({"status": "acknowledged"}, []),
        ({"service": "payment"}, [PAYMENTS]),
        ({"service": "checkout-service"}, [CHECKOUT]),
        ({"service": "pay"}, []),  # exact, not a prefix
        ({"team": "platform"}, [LATENCY]),
        ({"team": "security"}, [FRAUD]),
        ({"priority": "P1"}, [FRAUD, PAYMENTS]),
        ({"priority": "P3"}, [LATENCY]),
        ({"monitor_id": LATENCY}, [LATENCY]),
        ({"monitor_id": "1"}, []),
        ({"q": "fraud"}, [FRAUD]),
        ({"q": "HIGH"}, [LATENCY, PAYMENTS]),  # case-insensitive
        ({"q": "[Recovered]"}, []),  # the title stays the one the incident opened with
        ({"q": "[Triggered on {"}, [CHECKOUT]),
        ({"q": "%"}, []),  # LIKE wildcards are literal
        ({"q": "_"}, []),
        ({"priority": "P1", "status": "triggered"}, [FRAUD]),
        ({"team": "payments", "status": "triggered"}, []),
        ({"since": "2026-11-22T22:00:00Z"}, NEWEST_FIRST),  # inclusive
        ({"since": "2026-11-22T22:00:00.000001Z"}, []),
        ({"until": "2026-11-22T22:00:00Z"}, []),  # exclusive
        ({"until": "2026-11-22T22:00:01Z"}, NEWEST_FIRST),
        (
            {"since": "2026-11-22T23:00:00+01:00", "until": "2026-11-22T23:00:01+01:00"},
            NEWEST_FIRST,
        ),
    ],
)
def test_incident_filters(
    history: tuple[Service, TestClient], params: dict[str, str], expected: list[str]
) -> None:
    _, client = history
    assert monitors(client, **params) == expected


def test_since_and_until_bound_a_window(
    history: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = history
    later = sample(samples_dir, "checkout-error-rate.triggered")
    later["id"] = "7716548234044499999"
    later["date"] = later["last_updated"] = "1795390200000"  # 2026-11-22T23:30:00Z
    later["alert"].update(id="148275999", scope="host:ip-10-0-9-9", cycle_key="77165482349999")
    later["tags"] = later["tags"].replace("env:prod", "env:canary")  # not grouped with prod
    assert post(client, later).status_code == 202
    drain(service)
    assert monitors(client, since="2026-11-22T23:00:00Z") == ["148275999"]
    assert monitors(client, until="2026-11-22T23:00:00Z") == NEWEST_FIRST
    assert monitors(client, since="2026-11-22T22:30:00Z", until="2026-11-22T23:30:00Z") == []
    assert monitors(client, since="2026-11-22T23:30:00Z", until="2026-11-22T23:30:01Z") == [
        "148275999"
    ]
    # the same instant written in another zone
    assert monitors(client, since="2026-11-23T00:30:00+01:00") == ["148275999"]


@pytest.mark.parametrize(
    ("path", "params", "names"),
    [
        ("/api/incidents", {"since": "yesterday"}, "since must be an ISO 8601 time"),
        ("/api/incidents", {"until": "2026-13-01T00:00:00Z"}, "until must be an ISO 8601 time"),
        ("/api/incidents", {"since": "2026-11-22T22:00:00"}, "since needs a time zone"),
        ("/api/incidents", {"cursor": "abc"}, "cursor must be a positive integer"),
        ("/api/incidents", {"limit": "-1"}, "limit must be a positive integer"),
        ("/api/audit", {"after": "1.5"}, "after must be a positive integer"),
        ("/api/audit", {"limit": "ten"}, "limit must be a positive integer"),
        ("/api/stats", {"since": "22:00"}, "since must be an ISO 8601 time"),
        # Found by tests/test_api_conformance.py: each of these was a 500.
        ("/api/incidents", {"since": "0001-01-01T00:00:00+01:00"}, "since is out of range"),
        ("/api/stats", {"since": "9999-12-31T23:59:59-01:00"}, "since is out of range"),
        ("/api/incidents", {"q": "a\x00b"}, "q must not contain a NUL"),
        ("/api/incidents", {"service": "\x00"}, "service must not contain a NUL"),
        ("/api/audit", {"kind": "run.\x00"}, "kind must not contain a NUL"),
    ],
)
def test_a_bad_query_is_a_400_that_names_the_parameter(
    history: tuple[Service, TestClient], path: str, params: dict[str, str], names: str
) -> None:
    _, client = history
    response = get(client, path, **params)
    assert response.status_code == 400
    assert names in response.json()["error"]


@pytest.mark.parametrize("limit", [1, 3])
def test_cursor_pagination_walks_every_incident_once(
    history: tuple[Service, TestClient], limit: int
) -> None:
    _, client = history
    seen: list[str] = []
    pages = 0
    params = {"limit": str(limit)}
    while True:
        body = get(client, "/api/incidents", **params).json()
        pages += 1
        assert 1 <= len(body["items"]) <= limit
        seen.extend(item["monitor_id"] for item in body["items"])
        if body["next_cursor"] is None:
            break
        assert body["next_cursor"] == body["items"][-1]["id"]
        params = {"limit": str(limit), "cursor": str(body["next_cursor"])}
        assert pages < 10, "the cursor does not advance"
    assert seen == NEWEST_FIRST
    assert pages == -(-len(NEWEST_FIRST) // limit)


def test_cursor_combines_with_filters(history: tuple[Service, TestClient]) -> None:
    _, client = history
    first = get(client, "/api/incidents", status="triggered", limit="2").json()
    assert [i["monitor_id"] for i in first["items"]] == [CHECKOUT, FRAUD]
    cursor = str(first["next_cursor"])
    assert monitors(client, status="triggered", limit="2", cursor=cursor) == [LATENCY]


def test_one_incident_has_events_actions_and_timeline(
    history: tuple[Service, TestClient],
) -> None:
    _, client = history
    number = incident_id(client, PAYMENTS)
    response = get(client, f"/api/incidents/{number}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["id"] == number and detail["status"] == "resolved"
    assert datetime.fromisoformat(detail["opened_at"]).isoformat() == "2026-11-22T22:00:00+00:00"
    assert datetime.fromisoformat(detail["resolved_at"]).isoformat() == "2026-11-22T22:23:00+00:00"
    assert detail["time_to_resolve_seconds"] == 1380.0
    assert "time_to_ack_seconds" not in detail

    assert [e["transition"] for e in detail["events"]] == ["Triggered", "Recovered"]
    assert all(e["deliveries"] == 1 for e in detail["events"])

    post_run = next(run for run in detail["actions"] if run["action"] == "slack.post")
    assert post_run["state"] == "skipped"
    assert post_run["params"]["channel"] == "#payments-alerts"
    assert post_run["playbook"] == "payment-failure-rate"
    hidden = {"lease_owner", "lease_until", "idempotency_key"}
    assert all(not hidden & set(run) for run in detail["actions"])
    assert all(run["incident_id"] == number for run in detail["actions"])

    timeline = detail["timeline"]
    seqs = [entry["seq"] for entry in timeline]
    assert seqs == sorted(seqs)
    assert all(entry["incident_id"] == number for entry in timeline)
    kinds = [entry["kind"] for entry in timeline]
    assert {
        "incident.opened",
        "playbooks.matched",
        "run.planned",
        "run.skipped",
        "incident.resolved",
    } <= set(kinds)
    assert kinds.index("incident.opened") < kinds.index("incident.resolved")
    opened = timeline[kinds.index("incident.opened")]
    assert opened["data"]["title"] == "[Triggered] High Payment Failure Rate"


def test_other_incidents_have_their_own_timeline(history: tuple[Service, TestClient]) -> None:
    _, client = history
    detail = get(client, f"/api/incidents/{incident_id(client, FRAUD)}").json()
    assert [e["transition"] for e in detail["events"]] == ["Triggered", "Renotify"]
    kinds = {entry["kind"] for entry in detail["timeline"]}
    assert "incident.updated" in kinds and "incident.resolved" not in kinds
    assert detail["resolved_at"] is None and "time_to_resolve_seconds" not in detail


@pytest.mark.parametrize("raw", ["999", "0"])
def test_unknown_incident_is_404(history: tuple[Service, TestClient], raw: str) -> None:
    _, client = history
    response = get(client, f"/api/incidents/{raw}")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


@pytest.mark.parametrize("raw", ["abc", "-1", "1.0", "1e3"])
def test_non_numeric_incident_id_is_400(history: tuple[Service, TestClient], raw: str) -> None:
    _, client = history
    response = get(client, f"/api/incidents/{raw}")
    assert response.status_code == 400
    assert response.json() == {"error": "id must be a positive integer"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/incidents", {"limit": "\u00b2"}),
        ("/api/incidents/\u00b2", {}),
        ("/api/incidents/99999999999999999999", {}),
        ("/api/incidents", {"cursor": "99999999999999999999"}),
        ("/api/audit", {"after": "99999999999999999999"}),
    ],
    ids=["limit-superscript", "id-superscript", "id-huge", "cursor-huge", "after-huge"],
)
def test_out_of_range_or_exotic_numbers_are_a_client_error(
    app: tuple[Service, TestClient], path: str, params: dict[str, str]
) -> None:
    # A second client on the running app that reports a crash as the 500 it answers.
    quiet = TestClient(app[1].app, raise_server_exceptions=False)
    response = quiet.get(path, params=params, headers=AUTH)
    assert response.status_code in (400, 404), response.status_code
    assert "error" in response.json()


def test_audit_pages_through_the_whole_log(history: tuple[Service, TestClient]) -> None:
    service, client = history
    with Session(service.engine) as session:
        total = len(session.exec(select(AuditEntry)).all())
    assert total > 10
    seqs: list[int] = []
    after = 0
    while True:
        body = get(client, "/api/audit", after=str(after), limit="5").json()
        if not body["items"]:
            assert body["next_after"] is None
            break
        assert len(body["items"]) <= 5
        assert body["next_after"] == body["items"][-1]["seq"]
        seqs.extend(item["seq"] for item in body["items"])
        assert body["next_after"] > after, "next_after does not advance"
        after = body["next_after"]
    assert seqs == list(range(1, total + 1))
    first = get(client, "/api/audit", after="0", limit="5").json()["items"]
    assert len(first) == 5
    assert first[0]["kind"] == "event.received" and isinstance(first[0]["data"], dict)


def test_audit_filters_by_kind(history: tuple[Service, TestClient]) -> None:
    _, client = history
    items = get(client, "/api/audit", kind="incident.opened").json()["items"]
    assert [item["kind"] for item in items] == ["incident.opened"] * 4
    assert len({item["incident_id"] for item in items}) == 4


def test_stats_count_incidents_and_mttr(history: tuple[Service, TestClient]) -> None:
    service, client = history
    stats = get(client, "/api/stats").json()
    assert stats["incidents"] == 4
    assert stats["by_status"] == {"resolved": 1, "triggered": 3}
    assert stats["mttr_seconds"] == 1380.0
    assert stats["mtta_seconds"] is None
    with Session(service.engine) as session:
        runs = session.exec(select(ActionRun)).all()
    expected: dict[str, int] = {}
    for run in runs:
        expected[run.state] = expected.get(run.state, 0) + 1
    assert stats["action_runs"] == expected
    assert set(expected) == {"skipped"}


def test_mttr_averages_every_resolved_incident(
    history: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = history
    deliver(service, client, samples_dir, "fraud-detection-down.recovered")  # 22:00 -> 22:41
    stats = get(client, "/api/stats").json()
    assert stats["by_status"] == {"resolved": 2, "triggered": 2}
    assert stats["mttr_seconds"] == (1380.0 + 2460.0) / 2


def test_stats_since_leaves_older_incidents_out(history: tuple[Service, TestClient]) -> None:
    _, client = history
    assert get(client, "/api/stats", since="2026-11-22T22:00:00Z").json()["incidents"] == 4
    later = get(client, "/api/stats", since="2026-11-22T22:00:01Z").json()
    assert later["incidents"] == 0
    assert later["by_status"] == {}
    assert later["mttr_seconds"] is None


def test_cursor_zero_is_past_the_oldest_incident(history: tuple[Service, TestClient]) -> None:
    _, client = history
    body = get(client, "/api/incidents", cursor="0").json()
    assert body == {"items": [], "next_cursor": None}
